#!/usr/bin/env bash
# The create figure over HTTP, measured from outside: the demo's JSON API
# (`POST /api/invoices`, the full write path, the demo's default
# configuration: access log on, audit sealer on, outbox) against the raw
# axum + sqlx baseline (benches/src/bin/baseline.rs: one transaction with
# the insert and its audit row) over the same database, alternating the two
# programs ROUNDS times so that both see the same machine, and printing the
# median of the per-round ratios.
#
#   benches/http_create.sh [sqlite|postgres] [invoices] [rounds]
#                                              (default: postgres 100000 4)
#
# Load: wrk, 32 connections, 10 s per run (WRK_CONNECTIONS, WRK_DURATION).
set -euo pipefail
BACKEND=${1:-postgres}
ROWS=${2:-100000}
ROUNDS=${3:-4}
# shellcheck source=benches/common.sh
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"
cargo build --release -q -p demo -p platform-benches --bin demo --bin baseline

start_demo
TOKEN=$("$TARGET/release/demo" token:create --email admin@example.com --name bench)
start_baseline
sleep 2 # let the demo's sealer finish sealing the seed's audit entries

printf '\n%-10s %-10s %10s %9s %9s %7s %9s\n' round program "req/s" "p50 ms" "p99 ms" non-2xx "cpu s"
RATIOS=()
for round in $(seq "$ROUNDS"); do
  for prog in baseline platform; do
    if [ "$prog" = baseline ]; then
      pid=$PID_B url="http://127.0.0.1:$PORT_B/api/invoices" auth="Authorization: none"
    else
      pid=$PID_P url="http://127.0.0.1:$PORT_P/api/invoices" auth="Authorization: Bearer $TOKEN"
    fi
    t0=$(cpu_ticks "$pid")
    read -r rps p50 p99 bad < <(measure -s "$ROOT/benches/create.lua" -H "$auth" "$url")
    t1=$(cpu_ticks "$pid")
    cpu=$(awk -v a="$t0" -v b="$t1" -v hz="$(getconf CLK_TCK)" 'BEGIN { printf "%.1f", (b - a) / hz }')
    printf '%-10s %-10s %10s %9s %9s %7s %9s\n' "$round" "$prog" "$rps" "$(ms "$p50")" "$(ms "$p99")" "$bad" "$cpu"
    if [ "$prog" = baseline ]; then B=$rps; else RATIOS+=("$(awk -v a="$rps" -v b="$B" 'BEGIN { printf "%.3f", a/b }')"); fi
  done
done
echo
printf 'ratios platform/baseline per round: %s\n' "${RATIOS[*]}"
printf '%s\n' "${RATIOS[@]}" | sort -n | awk '{ a[NR] = $1 } END { m = (NR % 2) ? a[(NR + 1) / 2] : (a[NR / 2] + a[NR / 2 + 1]) / 2; printf "median ratio, create over HTTP: %.2fx\n", m }'
