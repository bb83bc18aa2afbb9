#!/usr/bin/env bash
# Admin panel figures, side by side in one run: the demo's invoice list page
# (`GET /admin/invoices`, HTML, signed-in session) against the same page
# served by the raw axum + sqlx baseline (benches/src/bin/baseline.rs,
# `GET /admin/invoices`) over the same database.
#
#   benches/panel.sh [sqlite|postgres] [invoices]     (default: sqlite 1000000)
#
# The issue's figures: with 1,000,000 invoices and 32 connections, the list
# page (25 rows, search + sort + filter) has p99 under 25 ms and at least
# 0.7x the baseline's throughput.
#
# The database is the one benches/http.sh uses (seeded by the demo on first
# use, then reused). The session: benches/src/bin/panel_session.rs signs a
# super_admin user in through the core API (two-factor set up and passed)
# before the load and prints the cookie's token; both servers get the same
# `Cookie: platform_session=...` (the baseline looks the session up by its
# hashed token too). Both pages are checked first (200, 25 table rows).
# Load: wrk, 32 connections, 10 s per run after a 3 s warm-up (WRK_DURATION,
# WRK_CONNECTIONS, WRK_WARMUP), baseline and panel alternating for
# PANEL_ROUNDS rounds (default 3; medians shown with the req/s range, since
# other work on the machine disturbs single runs), with the server process's
# CPU time per request (a figure others' load disturbs less); then the
# latency at a fixed rate below saturation (open loop,
# benches/src/bin/load.rs, OPEN_LOOP_RATE requests/s, default 40), where a
# closed loop's own queueing (32 requests in flight / throughput) does not
# count.
set -euo pipefail
BACKEND=${1:-sqlite}
ROWS=${2:-1000000}
# shellcheck source=benches/common.sh
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"
WARMUP=${WRK_WARMUP:-3s}
cargo build --release -q -p demo -p platform-benches --bin demo --bin baseline --bin load --bin panel_session

start_demo
SESSION=$("$TARGET/release/panel_session")
COOKIE="Cookie: platform_session=$SESSION"
start_baseline
sleep 2 # let the demo's sealer finish sealing the seed's audit entries

SEARCH='/admin/invoices?search=INV-0004&filter%5Bstatus%5D=paid&sort=-amount_cents&page%5Bsize%5D=25'
LIST='/admin/invoices?page%5Bsize%5D=25'

# check NAME URL: 200 with the table and 25 rows, else the answer and exit.
check() {
  local name=$1 url=$2 file="$BENCH_DIR/panel-check-$1.html" code rows
  code=$(curl -s -o "$file" -w '%{http_code}' -H "$COOKIE" "$url")
  rows=$(grep -c 'name="ids"' "$file" || true)
  if [[ $code != 200 ]] || ! grep -q 'data-list-table' "$file" || [[ $rows != 25 ]]; then
    echo "$name: $url answered $code with $rows rows (a 303 means the session was not accepted):" >&2
    curl -s -D - -o /dev/null -H "$COOKIE" "$url" >&2
    head -c 2000 "$file" >&2
    exit 1
  fi
  printf '%-9s %s -> 200, %s rows, %s bytes of HTML\n' "$name" "$url" "$rows" "$(wc -c <"$file")"
}
check panel "http://127.0.0.1:$PORT_P$SEARCH"
check baseline "http://127.0.0.1:$PORT_B$SEARCH"

ROUNDS=${PANEL_ROUNDS:-3}
# Compilers others run on the machine (they disturb the figures).
others() { ps -eo comm= | grep -cE '^(rustc|cargo|cc|ld|cc1)$' || true; }
LOAD_BEFORE=$(cut -d' ' -f1-3 /proc/loadavg)
# one NAME PID [wrk args...] URL: a warm-up, then one measured run; appends
# "name rps p50_ms p99_ms non2xx cpu_ms_per_request" to $RESULTS.
one() {
  local name=$1 pid=$2; shift 2
  wrk -t1 -c"$CONNS" -d"$WARMUP" "$@" >/dev/null 2>&1 || true
  local t0 t1 out rps p50 p99 bad n
  t0=$(cpu_ticks "$pid")
  out=$(wrk -t1 -c"$CONNS" -d"$DURATION" --timeout 5s --latency "$@" 2>&1)
  t1=$(cpu_ticks "$pid")
  rps=$(awk '/Requests\/sec/ {print $2}' <<<"$out")
  p50=$(awk '$1=="50%" {print $2}' <<<"$out")
  p99=$(awk '$1=="99%" {print $2}' <<<"$out")
  n=$(awk '/requests in/ {print $1}' <<<"$out")
  bad=$(awk '/Non-2xx/ {print $NF}' <<<"$out"); bad=${bad:-0}
  awk -v name="$name" -v rps="$rps" -v p50="$(ms "$p50")" -v p99="$(ms "$p99")" -v bad="$bad" \
    -v ticks=$((t1 - t0)) -v hz="$(getconf CLK_TCK)" -v n="$n" \
    'BEGIN { printf "%s|%s|%s|%s|%s|%.2f\n", name, rps, p50, p99, bad, ticks * 1000 / hz / n }' >>"$RESULTS"
}
RESULTS=$(mktemp)
echo
echo "measuring: $ROUNDS rounds, baseline and panel alternating (wrk -c$CONNS, $DURATION each after $WARMUP warm-up)"
for r in $(seq "$ROUNDS"); do
  one "baseline  page: search+filter+sort 25" "$PID_B" -H "$COOKIE" "http://127.0.0.1:$PORT_B$SEARCH"
  one "panel     page: search+filter+sort 25" "$PID_P" -H "$COOKIE" "http://127.0.0.1:$PORT_P$SEARCH"
  one "baseline  page: first 25" "$PID_B" -H "$COOKIE" "http://127.0.0.1:$PORT_B$LIST"
  one "panel     page: first 25" "$PID_P" -H "$COOKIE" "http://127.0.0.1:$PORT_P$LIST"
  echo "  round $r done (load average $(cut -d' ' -f1 /proc/loadavg), which the run itself raises to about 5; $(others) other compiler processes)"
done

# The median of the rounds for each figure (and the range of req/s).
summary() {
  awk -F'|' -v want="$1" '
    function median(a, n,   i, j, t) {
      for (i = 2; i <= n; i++) { t = a[i]; for (j = i - 1; j >= 1 && a[j] > t; j--) a[j+1] = a[j]; a[j+1] = t }
      return (n % 2) ? a[(n+1)/2] : (a[n/2] + a[n/2+1]) / 2
    }
    $1 == want { n++; rps[n] = $2; p50[n] = $3; p99[n] = $4; bad += $5; cpu[n] = $6
                 if (n == 1 || $2 < lo) lo = $2; if (n == 1 || $2 > hi) hi = $2 }
    END { printf "%-40s %9.1f %9.2f %9.2f %9.2f %15s %5d\n", want, median(rps, n), median(p50, n), median(p99, n), median(cpu, n), sprintf("%.0f-%.0f", lo, hi), bad }' "$RESULTS"
}
printf '\n%-40s %9s %9s %9s %9s %15s %5s\n' "$BACKEND, $ROWS inv., c=$CONNS, median of $ROUNDS" "req/s" "p50 ms" "p99 ms" "cpu ms/r" "req/s range" "!2xx"
for name in "baseline  page: search+filter+sort 25" "panel     page: search+filter+sort 25" "baseline  page: first 25" "panel     page: first 25"; do
  summary "$name"
done
med() { awk -F'|' -v want="$1" -v col="$2" '$1 == want { v[++n] = $col } END { for (i = 2; i <= n; i++) { t = v[i]; for (j = i - 1; j >= 1 && v[j] > t; j--) v[j+1] = v[j]; v[j+1] = t }; print (n % 2) ? v[(n+1)/2] : (v[n/2] + v[n/2+1]) / 2 }' "$RESULTS"; }
B1=$(med "baseline  page: search+filter+sort 25" 2); P1=$(med "panel     page: search+filter+sort 25" 2)
B2=$(med "baseline  page: first 25" 2); P2=$(med "panel     page: first 25" 2)
P1_P99=$(med "panel     page: search+filter+sort 25" 4)
B1_CPU=$(med "baseline  page: search+filter+sort 25" 6); P1_CPU=$(med "panel     page: search+filter+sort 25" 6)
B2_CPU=$(med "baseline  page: first 25" 6); P2_CPU=$(med "panel     page: first 25" 6)
echo "(cpu ms/r: user + system time of the server process per request; PostgreSQL's own work is not in it)"
echo

# Latency at a fixed rate (open loop, measured from when each request was due).
RATE=${OPEN_LOOP_RATE:-40}
open_row() {
  local name=$1; shift
  read -r sent ok rps p50 p90 p99 max < <("$TARGET/release/load" "$@")
  printf '%-40s %9s %9s %9s %9s\n' "$name" "$rps" "$p50" "$p99" "$((sent - ok))"
}
printf '%-40s %9s %9s %9s %9s\n' "open loop: $RATE req/s, $CONNS conn., 10 s" "req/s" "p50 ms" "p99 ms" "failed"
open_row "baseline  search+filter+sort" "http://127.0.0.1:$PORT_B$SEARCH" "$RATE" 10 "$CONNS" "$COOKIE"
open_row "panel     search+filter+sort" "http://127.0.0.1:$PORT_P$SEARCH" "$RATE" 10 "$CONNS" "$COOKIE"

echo
awk -v a="$P1" -v b="$B1" 'BEGIN { printf "ratio panel/baseline, search+filter+sort: %.2fx (target >= 0.70x)\n", a/b }'
awk -v a="$P2" -v b="$B2" 'BEGIN { printf "ratio panel/baseline, first page:         %.2fx\n", a/b }'
awk -v a="$P1_CPU" -v b="$B1_CPU" 'BEGIN { printf "process CPU per request, panel/baseline:  search+filter+sort %.2fx,", a/b }'
awk -v a="$P2_CPU" -v b="$B2_CPU" 'BEGIN { printf " first page %.2fx\n", a/b }'
awk -v p="$P1_P99" 'BEGIN { printf "panel p99, search+filter+sort:            %.2f ms (target < 25 ms)\n", p }'
echo "load average before the run: $LOAD_BEFORE, after: $(cut -d' ' -f1-3 /proc/loadavg) on $(nproc) cores (others' work disturbs the figures)"
rm -f "$RESULTS"
