#!/usr/bin/env bash
# tests/getting-started/run.sh: book/src/getting-started.md, followed as a
# reader follows it, in a fresh crate.
#
# The chapter is read, not copied: a change to it changes what runs here.
#   - its ```sh blocks run in order, each line as written (a line ending in
#     `\` goes on with the next), in a temp dir: `cargo new ...`, `cargo run
#     -- make:migration ...`, `migrate`, `user:create`, `TOKEN=$(... token:create
#     ...)`, `audit:verify`, ... Three kinds of line are run differently:
#       `cargo run &`  serve in the background (log in the temp dir); then
#                      wait until it listens (or fail if it exits)
#       `curl ...`     run with -sS, the status and body captured: a POST must
#                      answer 201, a GET 200, unless the chapter's next line
#                      is a comment starting with the status it shows
#                      (`# 422 {...}`): then that status
#       a comment      skipped
#   - its ```toml blocks go into Cargo.toml (the empty `[dependencies]` of
#     `cargo new` gives way to the chapter's), with each `path = ".../X"`
#     pointed at X in this clone: nothing else is added;
#   - a ```rust block preceded by `<!-- getting-started: FILE -->` is written
#     to FILE (src/main.rs, build.rs), rustdoc's hidden `# ` lines included.
# The chapter must make at least one POST answer 201 and one bad POST answer
# 422, or this fails.
#
# Build time: the workspace's Cargo.lock is copied into the fresh crate
# before the first build (the same versions as the workspace), and
# CARGO_TARGET_DIR (the caller's; default: this clone's target/) is used, so
# the dependencies built by an earlier run are reused. A cold target dir
# costs a full build of the dependencies (6-8 minutes on 2 cores); a warm
# one the fresh crate alone.
#
# The server listens on a free loopback port (PLATFORM_ADDR), and the
# chapter's http://127.0.0.1:8080 is rewritten to it. No PLATFORM_* or
# DATABASE_URL variable of the caller reaches the crate: the reader starts
# with none. An EXIT trap stops the server and removes the temp dir.
#
# Knobs (environment):
#   PLATFORM_GETTING_STARTED_KEEP=1   keep the temp dir (crate, database, logs)
#   PLATFORM_GETTING_STARTED_CHAPTER  another chapter file to follow (for testing this script)
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(cd "$HERE/../.." && pwd)
CHAPTER=${PLATFORM_GETTING_STARTED_CHAPTER:-$ROOT/book/src/getting-started.md}
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$ROOT/target}
# The reader's environment: none of the caller's configuration.
unset DATABASE_URL
while IFS= read -r v; do unset "$v"; done < <(compgen -e | grep '^PLATFORM_' | grep -v '^PLATFORM_GETTING_STARTED_' || true)
export NO_COLOR=1 RUST_LOG=${RUST_LOG:-warn}

. "$HERE/../lib/demo-run.sh"
demo_run_traps 'getting-started' PLATFORM_GETTING_STARTED_KEEP
WORK=$(mktemp -d /tmp/platform-getting-started.XXXXXX)
STEPS=$WORK/steps
SERVE_LOG=$WORK/demo.log # shown by the trap when the run fails

PORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
export PLATFORM_ADDR=127.0.0.1:$PORT

# ---------------------------------------------------------------- the chapter, as steps
# One file per step, in the chapter's order: NNNN.sh (run as written),
# NNNN.serve, NNNN.curl (first line: the expected status), NNNN.toml,
# NNNN.file (first line: the path).
phase "reading $(basename "$CHAPTER")"
mkdir -p "$STEPS"
python3 - "$CHAPTER" "$STEPS" <<'PY'
import os, re, sys

chapter, out = sys.argv[1], sys.argv[2]
lines = open(chapter, encoding="utf-8").read().split("\n")
steps = []
marker = None
i = 0
while i < len(lines):
    line = lines[i]
    m = re.match(r"\s*<!--\s*getting-started:\s*(\S+)", line)
    if m:
        marker = m.group(1)
        i += 1
        continue
    fence = re.match(r"(\s*)```(.*)$", line)
    if not fence:
        if line.strip():
            marker = None  # a marker names the block right after it
        i += 1
        continue
    indent, info = len(fence.group(1)), fence.group(2).strip()
    body = []
    i += 1
    while i < len(lines) and not re.match(r"\s*```\s*$", lines[i]):
        body.append(lines[i][indent:] if lines[i][:indent].strip() == "" else lines[i])
        i += 1
    i += 1
    lang = re.split(r"[, ]", info)[0]
    if lang == "sh":
        # Join continued lines, keep comments (a `# 422` after a curl says
        # what it answers).
        cmds, cur = [], ""
        for b in body:
            if b.rstrip().endswith("\\"):
                cur += b.rstrip()[:-1] + " "
                continue
            cmds.append(cur + b)
            cur = ""
        if cur:
            cmds.append(cur)
        for n, c in enumerate(cmds):
            s = c.strip()
            if not s or s.startswith("#"):
                continue
            if re.fullmatch(r"cargo run\b(.*[^&>])?\s*&", s):
                steps.append(("serve", s))
            elif s.startswith("curl "):
                method = "POST" if re.search(r"-X\s*POST|\s-d\s|--data", s) else "GET"
                want = "201" if method == "POST" else "200"
                for later in cmds[n + 1:]:
                    t = later.strip()
                    if not t:
                        continue
                    shown = re.match(r"#\s*(\d{3})\b", t)
                    if shown:
                        want = shown.group(1)
                    break
                steps.append(("curl", want + "\n" + s))
            else:
                steps.append(("sh", s))
    elif lang == "toml":
        steps.append(("toml", "\n".join(body)))
    elif lang == "rust" and marker:
        code = []
        for b in body:
            if b == "#":
                code.append("")
            elif b.startswith("# "):
                code.append(b[2:])
            else:
                code.append(b)
        steps.append(("file", marker + "\n" + "\n".join(code) + "\n"))
    marker = None

kinds = [k for k, _ in steps]
for need in ("toml", "file", "serve", "curl"):
    if need not in kinds:
        sys.exit(f"{chapter}: no {need} step found (the chapter changed shape?)")
files = [t.split("\n", 1)[0] for k, t in steps if k == "file"]
if "src/main.rs" not in files:
    sys.exit(f"{chapter}: no block marked <!-- getting-started: src/main.rs -->")
for n, (k, t) in enumerate(steps):
    with open(os.path.join(out, f"{n:04d}.{k}"), "w", encoding="utf-8") as f:
        f.write(t)
print(f"    {len(steps)} steps: " + ", ".join(f"{kinds.count(k)} {k}" for k in dict.fromkeys(kinds)))
PY
done_phase

# ---------------------------------------------------------------- running them
# DEMO_PID: the server, stopped by the EXIT trap (tests/lib/demo-run.sh) too.
stop_serve() {
  local i
  [ -n "$DEMO_PID" ] || return 0
  kill "$DEMO_PID" 2>/dev/null || true
  for ((i = 0; i < 100; i++)); do kill -0 "$DEMO_PID" 2>/dev/null || break; sleep 0.1; done
  if kill -0 "$DEMO_PID" 2>/dev/null; then
    say "the server did not stop in 10 s after SIGTERM" >&2
    return 1
  fi
  wait "$DEMO_PID" || { say "the server exited with status $? after SIGTERM" >&2; return 1; }
  DEMO_PID=''
}

# `.../platform-core` -> this clone's platform-core.
toml_step() {
  python3 - "$1" "$ROOT" Cargo.toml <<'PY'
import os, re, sys

block, root, manifest = open(sys.argv[1]).read(), sys.argv[2], sys.argv[3]

def repoint(m):
    target = os.path.join(root, os.path.basename(m.group(2).rstrip("/")))
    if not os.path.isfile(os.path.join(target, "Cargo.toml")):
        sys.exit(f"{m.group(2)}: no {os.path.basename(target)} in {root}")
    return f'{m.group(1)}"{target}"'

block = re.sub(r'(\bpath\s*=\s*)"([^"]*)"', repoint, block)
text = open(manifest).read()
# `cargo new` ends with an empty [dependencies]; the chapter's takes its place.
for table in re.findall(r"^\[[^\]]+\]\s*$", block, re.M):
    text = re.sub(r"^" + re.escape(table.strip()) + r"\s*\Z", "", text, flags=re.M)
open(manifest, "w").write(text.rstrip("\n") + "\n\n" + block.strip("\n") + "\n")
PY
  say "    Cargo.toml:"
  sed 's/^/      /' Cargo.toml
  if [ ! -e Cargo.lock ]; then
    cp "$ROOT/Cargo.lock" Cargo.lock
    say "    copied the workspace's Cargo.lock"
  fi
}

wait_for_serve() {
  local i
  for ((i = 0; ; i++)); do
    (exec 3<>"/dev/tcp/127.0.0.1/$PORT") 2>/dev/null && return 0
    if ! kill -0 "$DEMO_PID" 2>/dev/null; then
      say "the server exited before listening on $PORT" >&2
      return 1
    fi
    if ((i > 1800)); then say "the server did not listen on $PORT within 180 s" >&2; return 1; fi
    sleep 0.1
  done
}

CREATED=0 REFUSED=0
curl_step() { # curl_step expected-status command
  local want=$1 cmd=$2 got
  cmd=${cmd//127.0.0.1:8080/127.0.0.1:$PORT}
  cmd=${cmd//localhost:8080/127.0.0.1:$PORT}
  cmd="curl -sS --max-time 30 -o \"\$WORK/response\" -w '%{http_code}' ${cmd#curl }"
  got=$(eval "$cmd") || { say "curl failed: $cmd" >&2; return 1; }
  say "    -> $got $(head -c 400 "$WORK/response")"
  if [ "$got" != "$want" ]; then
    say "expected $want, got $got" >&2
    return 1
  fi
  case "$want" in
  201) CREATED=$((CREATED + 1)) ;;
  422) REFUSED=$((REFUSED + 1)) ;;
  esac
}

cd "$WORK"
for f in "$STEPS"/*; do
  kind=${f##*.}
  case "$kind" in
  sh)
    cmd=$(cat "$f")
    cmd=${cmd//127.0.0.1:8080/127.0.0.1:$PORT}
    phase "\$ $cmd"
    eval "$cmd" || { say "failed: $cmd (in $PWD)" >&2; exit 1; }
    done_phase
    ;;
  toml)
    phase "Cargo.toml: the chapter's lines"
    toml_step "$f"
    done_phase
    ;;
  file)
    path=$(head -1 "$f")
    phase "$path: the chapter's block"
    mkdir -p "$(dirname "$path")"
    tail -n +2 "$f" >"$path"
    done_phase
    ;;
  serve)
    phase "\$ $(cat "$f")   (PLATFORM_ADDR=$PLATFORM_ADDR, log: $SERVE_LOG)"
    cmd=$(cat "$f")
    eval "${cmd%&} >\"\$SERVE_LOG\" 2>&1 &"
    DEMO_PID=$!
    wait_for_serve
    done_phase
    ;;
  curl)
    want=$(head -1 "$f")
    cmd=$(tail -n +2 "$f")
    phase "\$ $cmd   (must answer $want)"
    curl_step "$want" "$cmd"
    done_phase
    ;;
  esac
done

if ((CREATED < 1 || REFUSED < 1)); then
  say "the chapter made $CREATED request(s) answer 201 and $REFUSED answer 422; it must make both" >&2
  exit 1
fi
phase "stopping the server (SIGTERM)"
stop_serve
done_phase
say "--- the chapter's POSTs: $CREATED answered 201, $REFUSED (bad input) 422"
