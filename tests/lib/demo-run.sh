# Sourced by tests/browser/run.sh and tests/schemathesis/run.sh: timing
# helpers, and an EXIT trap that stops the demo they started (DEMO_PID),
# shows the end of its log (WORK/demo.log) when the run failed, removes the
# run's temp dir WORK (unless the keep variable is 1) and prints
# "<label>: ok|FAILED in N s<suffix>".
#
#   demo_run_traps LABEL KEEP_VARIABLE_NAME   (call once, early)
#   RUN_SUFFIX=' (seed 42)'                   (optional, printed last)

T0=$(date +%s.%N)
elapsed() { awk -v a="$1" -v b="$(date +%s.%N)" 'BEGIN { printf "%.1f", b - a }'; }
say() { printf '%s\n' "$*"; }
phase() { PHASE_T0=$(date +%s.%N); say "--- $*"; }
done_phase() { say "    ($(elapsed "$PHASE_T0") s)"; }

WORK=''
DEMO_PID=''
RUN_SUFFIX=${RUN_SUFFIX:-}

demo_run_cleanup() {
  local rc=$? i
  set +e
  trap - EXIT INT TERM
  if [ -n "$DEMO_PID" ] && kill -0 "$DEMO_PID" 2>/dev/null; then
    kill "$DEMO_PID" 2>/dev/null
    for ((i = 0; i < 100; i++)); do kill -0 "$DEMO_PID" 2>/dev/null || break; sleep 0.1; done
    kill -0 "$DEMO_PID" 2>/dev/null && kill -9 "$DEMO_PID" 2>/dev/null
    wait "$DEMO_PID" 2>/dev/null
  fi
  if ((rc)) && [ -n "$WORK" ] && [ -s "$WORK/demo.log" ]; then
    say "--- last lines of the demo's log"
    tail -n 40 "$WORK/demo.log"
  fi
  if [ -n "$WORK" ]; then
    if [ "${!DEMO_RUN_KEEP:-}" = 1 ]; then say "kept $WORK"; else rm -rf "$WORK"; fi
  fi
  say "$DEMO_RUN_LABEL: $( ((rc)) && echo FAILED || echo ok) in $(elapsed "$T0") s$RUN_SUFFIX"
  exit "$rc"
}

demo_run_traps() {
  DEMO_RUN_LABEL=$1
  DEMO_RUN_KEEP=$2
  trap demo_run_cleanup EXIT
  trap 'exit 130' INT
  trap 'exit 143' TERM
}
