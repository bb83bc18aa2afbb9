#!/usr/bin/env bash
# HTTP figures, side by side in one run: the demo's JSON API against the raw
# axum + sqlx baseline (benches/src/bin/baseline.rs) over the same database.
#
#   benches/http.sh [sqlite|postgres] [invoices]      (default: sqlite 1000000)
#
# PostgreSQL needs PLATFORM_BENCH_POSTGRES_URL (or PLATFORM_TEST_POSTGRES_URL):
# a server URL; the script uses database `platform_bench_http`.
# The seeded database is kept under target/platform-bench/ (or on the server)
# and reused by later runs. Load: wrk (installed from Debian if missing),
# 32 connections, 10 s per endpoint (WRK_DURATION, WRK_CONNECTIONS).
set -euo pipefail
BACKEND=${1:-sqlite}
ROWS=${2:-1000000}
DURATION=${WRK_DURATION:-10s}
CONNS=${WRK_CONNECTIONS:-32}
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT"
unset DATABASE_URL
TARGET=${CARGO_TARGET_DIR:-$ROOT/target}
BENCH_DIR=$ROOT/target/platform-bench
mkdir -p "$BENCH_DIR"

command -v wrk >/dev/null || { apt-get update -qq && apt-get install -y -qq wrk >/dev/null; }
cargo build --release -q -p demo -p platform-benches --bin demo --bin baseline --bin load

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }
wait_port() { for _ in $(seq 14400); do (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null && return 0; sleep 0.5; done; echo "port $1 never opened" >&2; return 1; }

case "$BACKEND" in
  sqlite)
    URL="sqlite://$BENCH_DIR/http-$ROWS.sqlite?mode=rwc" ;;
  postgres)
    SERVER=${PLATFORM_BENCH_POSTGRES_URL:-${PLATFORM_TEST_POSTGRES_URL:?set PLATFORM_BENCH_POSTGRES_URL}}
    DB=platform_bench_http_$ROWS
    psql "$SERVER" -tAc "SELECT 1 FROM pg_database WHERE datname = '$DB'" | grep -q 1 || psql "$SERVER" -qc "CREATE DATABASE $DB"
    URL="${SERVER%/*}/$DB" ;;
  *) echo "backend must be sqlite or postgres" >&2; exit 2 ;;
esac

export PLATFORM_DATABASE_URL=$URL
export PLATFORM_APP_KEY=base64:AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=
export PLATFORM_ADMIN_PASSWORD=bench-admin-password
export PLATFORM_SEED_INVOICES=$ROWS
export RUST_LOG=warn
PIDS=()
cleanup() { for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; }
trap cleanup EXIT

PORT_P=$(free_port)
echo "starting the demo on $BACKEND (seeding $ROWS invoices on first use; this can take minutes)"
"$TARGET/release/demo" serve --addr "127.0.0.1:$PORT_P" >"$BENCH_DIR/demo.log" 2>&1 &
PIDS+=($!)
wait_port "$PORT_P"
TOKEN=$("$TARGET/release/demo" token:create --email admin@example.com --name bench)
PORT_B=$(free_port)
"$TARGET/release/baseline" "$URL" "127.0.0.1:$PORT_B" >"$BENCH_DIR/baseline.log" 2>&1 &
PIDS+=($!)
wait_port "$PORT_B"
sleep 2 # let the demo's sealer finish sealing the seed's audit entries

LIST='/api/invoices?page%5Bsize%5D=25'
SEARCH='/api/invoices?search=INV-0004&filter%5Bstatus%5D=paid&sort=-amount_cents&page%5Bsize%5D=25'

cat >"$BENCH_DIR/create.lua" <<'LUA'
local counter = 0
math.randomseed(os.time())
local id = string.format("%x%x", os.time() % 65536, math.random(0, 4095))
request = function()
  counter = counter + 1
  local body = string.format('{"customer_id": 1, "number": "W%s-%d", "status": "draft", "amount_cents": 1250, "issued_on": "2024-05-01", "notes": "load"}', id, counter)
  return wrk.format("POST", nil, {["Content-Type"] = "application/json", ["Authorization"] = wrk.headers["Authorization"]}, body)
end
local shown = 0
response = function(status, headers, body)
  if status >= 300 and shown < 3 then
    io.stderr:write(string.format("unexpected %d: %s\n", status, body))
    shown = shown + 1
  end
end
LUA

# run NAME URL [extra wrk args...] -> "rps p50_ms p99_ms non2xx"
measure() {
  local out
  out=$(wrk -t1 -c"$CONNS" -d"$DURATION" --timeout 5s --latency "$@" 2>&1)
  local rps p50 p99 bad
  rps=$(awk '/Requests\/sec/ {print $2}' <<<"$out")
  p50=$(awk '$1=="50%" {print $2}' <<<"$out")
  p99=$(awk '$1=="99%" {print $2}' <<<"$out")
  bad=$(awk '/Non-2xx/ {print $NF}' <<<"$out"); bad=${bad:-0}
  echo "$rps $p50 $p99 $bad"
}
ms() { awk -v v="$1" 'BEGIN { if (v ~ /us$/) { sub(/us/,"",v); printf "%.2f", v/1000 } else if (v ~ /ms$/) { sub(/ms/,"",v); printf "%.2f", v } else if (v ~ /s$/) { sub(/s/,"",v); printf "%.2f", v*1000 } else print v }'; }

printf '\n%-44s %10s %9s %9s %7s\n' "$BACKEND, $ROWS invoices, c=$CONNS, $DURATION" "req/s" "p50 ms" "p99 ms" "non-2xx"
row() {
  local name=$1; shift
  read -r rps p50 p99 bad < <(measure "$@")
  printf '%-44s %10s %9s %9s %7s\n' "$name" "$rps" "$(ms "$p50")" "$(ms "$p99")" "$bad"
  echo "$rps" >"$BENCH_DIR/last-$name.rps" 2>/dev/null || true
  LAST_RPS=$rps
}
row "baseline  GET list 25" "http://127.0.0.1:$PORT_B$LIST"; B1=$LAST_RPS
row "platform  GET list 25" -H "Authorization: Bearer $TOKEN" "http://127.0.0.1:$PORT_P$LIST"; P1=$LAST_RPS
row "baseline  GET search+filter+sort 25" "http://127.0.0.1:$PORT_B$SEARCH"; B2=$LAST_RPS
row "platform  GET search+filter+sort 25" -H "Authorization: Bearer $TOKEN" "http://127.0.0.1:$PORT_P$SEARCH"; P2=$LAST_RPS
row "baseline  POST create + audit row" -s "$BENCH_DIR/create.lua" -H "Authorization: none" "http://127.0.0.1:$PORT_B/api/invoices"; B3=$LAST_RPS
row "platform  POST create (full write path)" -s "$BENCH_DIR/create.lua" -H "Authorization: Bearer $TOKEN" "http://127.0.0.1:$PORT_P/api/invoices"; P3=$LAST_RPS

# Latency at a fixed rate (open loop, measured from when each request was due).
RATE=${OPEN_LOOP_RATE:-200}
open_row() {
  local name=$1; shift
  read -r sent ok rps p50 p90 p99 max < <("$TARGET/release/load" "$@")
  printf '%-44s %10s %9s %9s %7s\n' "$name" "$rps" "$p50" "$p99" "$((sent - ok))"
}
open_row "baseline  search at ${RATE}/s (open loop)" "http://127.0.0.1:$PORT_B$SEARCH" "$RATE" 10 "$CONNS"
open_row "platform  search at ${RATE}/s (open loop)" "http://127.0.0.1:$PORT_P$SEARCH" "$RATE" 10 "$CONNS" "Authorization: Bearer $TOKEN"

echo
awk -v a="$P1" -v b="$B1" 'BEGIN { printf "ratio platform/baseline, list 25:            %.2fx\n", a/b }'
awk -v a="$P2" -v b="$B2" 'BEGIN { printf "ratio platform/baseline, search+filter+sort: %.2fx\n", a/b }'
awk -v a="$P3" -v b="$B3" 'BEGIN { printf "ratio platform/baseline, create:             %.2fx\n", a/b }'
