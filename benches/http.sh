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
# shellcheck source=benches/common.sh
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"
cargo build --release -q -p demo -p platform-benches --bin demo --bin baseline --bin load

start_demo
TOKEN=$("$TARGET/release/demo" token:create --email admin@example.com --name bench)
start_baseline
sleep 2 # let the demo's sealer finish sealing the seed's audit entries

LIST='/api/invoices?page%5Bsize%5D=25'
SEARCH='/api/invoices?search=INV-0004&filter%5Bstatus%5D=paid&sort=-amount_cents&page%5Bsize%5D=25'

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
row "baseline  POST create + audit row" -s "$ROOT/benches/create.lua" -H "Authorization: none" "http://127.0.0.1:$PORT_B/api/invoices"; B3=$LAST_RPS
row "platform  POST create (full write path)" -s "$ROOT/benches/create.lua" -H "Authorization: Bearer $TOKEN" "http://127.0.0.1:$PORT_P/api/invoices"; P3=$LAST_RPS

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
