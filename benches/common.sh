# Shared set-up of the HTTP benchmark scripts (sourced by benches/http.sh,
# benches/http_create.sh and benches/panel.sh; not run on its own).
#
# Expects BACKEND and ROWS; sets ROOT, TARGET, BENCH_DIR, URL, DURATION,
# CONNS, the demo's environment (PLATFORM_DATABASE_URL, ...), PIDS and an
# EXIT trap ending what was started; defines free_port, wait_port,
# start_demo, start_baseline, measure, ms.
#
# Both scripts use the same seeded database (SQLite file
# target/platform-bench/http-<rows>.sqlite, or database
# platform_bench_http_<rows> on the PostgreSQL server), seeded by the demo
# on first use and reused afterwards.

DURATION=${WRK_DURATION:-10s}
CONNS=${WRK_CONNECTIONS:-32}
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT"
unset DATABASE_URL
TARGET=${CARGO_TARGET_DIR:-$ROOT/target}
BENCH_DIR=$ROOT/target/platform-bench
mkdir -p "$BENCH_DIR"

command -v wrk >/dev/null || { apt-get update -qq && apt-get install -y -qq wrk >/dev/null; }

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

# start_demo -> PORT_P, PID_P (seeds $ROWS invoices on first use)
start_demo() {
  PORT_P=$(free_port)
  echo "starting the demo on $BACKEND (seeding $ROWS invoices on first use; this can take minutes)"
  "$TARGET/release/demo" serve --addr "127.0.0.1:$PORT_P" >"$BENCH_DIR/demo.log" 2>&1 &
  PID_P=$!
  PIDS+=($!)
  wait_port "$PORT_P"
}

# start_baseline -> PORT_B, PID_B
start_baseline() {
  PORT_B=$(free_port)
  "$TARGET/release/baseline" "$URL" "127.0.0.1:$PORT_B" >"$BENCH_DIR/baseline.log" 2>&1 &
  PID_B=$!
  PIDS+=($!)
  wait_port "$PORT_B"
}

# measure [extra wrk args...] URL -> "rps p50 p99 non2xx"
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
# cpu_ticks PID -> user + system clock ticks the process has used so far
cpu_ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }

# wrk's latency (`812.00us`, `3.10ms`, `1.02s`) in milliseconds.
ms() { awk -v v="$1" 'BEGIN { if (v ~ /us$/) { sub(/us/,"",v); printf "%.2f", v/1000 } else if (v ~ /ms$/) { sub(/ms/,"",v); printf "%.2f", v } else if (v ~ /s$/) { sub(/s/,"",v); printf "%.2f", v*1000 } else print v }'; }
