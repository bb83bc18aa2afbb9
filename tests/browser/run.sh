#!/usr/bin/env bash
# tests/browser/run.sh: the end-to-end browser suite of the admin panel.
#
#   1. installs Debian's `chromium` when /usr/bin/chromium is missing (apt-get)
#   2. `npm ci` here (playwright-core only; npm's cache kept outside the clone)
#   3. `cargo build -p demo` (honours CARGO_TARGET_DIR)
#   4. starts the demo on a free loopback port with a fresh SQLite database in
#      a temp dir, seeded with $PLATFORM_E2E_INVOICES invoices (its storage
#      disk, for imports and product images, in the same temp dir)
#   5. runs `node --test` on tests/browser/*.test.mjs (Chromium driven by
#      playwright-core with executablePath /usr/bin/chromium)
# An EXIT trap stops the demo and removes the temp dir, whatever happened.
# Exits non-zero when anything fails.
#
# Knobs (environment):
#   UPDATE_SCREENSHOTS=1      rewrite book/src/images/*.png (1280x800, light)
#   PLATFORM_E2E_INVOICES     invoices to seed (default 300: 12 pages of 25)
#   PLATFORM_E2E_NPM_CACHE    npm's cache (default /var/cache/platform-ci/npm)
#   PLATFORM_E2E_DEMO_BIN     a demo binary to use instead of building one
#   PLATFORM_E2E_KEEP=1       keep the temp dir (database, demo log) for a look
#   PLATFORM_TEST_SMTP_URL, PLATFORM_TEST_SMTP_MAILDIR (set by .ci/run): the
#                             demo mails through that SMTP server and the
#                             password reset test reads the Maildir (without
#                             them that test skips; under CI it fails)
#   Extra arguments go to `node --test` (e.g. a file name to run only it).
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(cd "$HERE/../.." && pwd)
export DEBIAN_FRONTEND=noninteractive
unset DATABASE_URL # sqlx offline builds (DESIGN.md, Databases)

. "$HERE/../lib/demo-run.sh"
demo_run_traps 'browser suite' PLATFORM_E2E_KEEP

SUDO=''
[ "$(id -u)" = 0 ] || SUDO=sudo

# ---------------------------------------------------------------- Chromium
if [ ! -x /usr/bin/chromium ]; then
  phase "installing Debian's chromium (apt-get)"
  $SUDO apt-get -o DPkg::Lock::Timeout=600 update -qq
  $SUDO apt-get -o DPkg::Lock::Timeout=600 install -y -qq --no-install-recommends chromium >/dev/null
  done_phase
fi
# (the wrapper script prints a harmless "[: unexpected operator" on stderr)
say "chromium: $(/usr/bin/chromium --version 2>/dev/null || echo '?')"
# Screenshots for the book: the panel's icons (the bell) are emoji, which the
# default DejaVu fonts lack; the tests themselves do not need it.
if [ "${UPDATE_SCREENSHOTS:-}" = 1 ] &&
  ! dpkg-query -W -f='${Status}' fonts-noto-color-emoji 2>/dev/null | grep -q 'install ok installed'; then
  phase "installing fonts-noto-color-emoji for the screenshots (apt-get)"
  $SUDO apt-get -o DPkg::Lock::Timeout=600 update -qq
  $SUDO apt-get -o DPkg::Lock::Timeout=600 install -y -qq --no-install-recommends fonts-noto-color-emoji >/dev/null
  done_phase
fi

# ---------------------------------------------------------------- Node, npm ci
command -v node >/dev/null || { say "node (20 or newer) is required" >&2; exit 1; }
NODE_MAJOR=$(node -p 'process.versions.node.split(".")[0]')
((NODE_MAJOR >= 20)) || { say "node 20 or newer is required, found $(node --version)" >&2; exit 1; }
NPM_CACHE=${PLATFORM_E2E_NPM_CACHE:-/var/cache/platform-ci/npm}
if ! mkdir -p "$NPM_CACHE" 2>/dev/null || [ ! -w "$NPM_CACHE" ]; then
  NPM_CACHE=${XDG_CACHE_HOME:-$HOME/.cache}/platform-ci/npm
  mkdir -p "$NPM_CACHE"
fi
phase "npm ci (node $(node --version), cache $NPM_CACHE)"
(cd "$HERE" && npm ci --cache "$NPM_CACHE" --prefer-offline --no-audit --no-fund --loglevel=error)
done_phase

# ---------------------------------------------------------------- the demo
if [ -n "${PLATFORM_E2E_DEMO_BIN:-}" ]; then
  DEMO=$PLATFORM_E2E_DEMO_BIN
else
  phase "cargo build -p demo"
  (cd "$ROOT" && cargo build -p demo)
  TARGET_DIR=$(cd "$ROOT" && cargo metadata --format-version 1 --no-deps |
    node -e 'let s="";process.stdin.on("data",d=>s+=d).on("end",()=>console.log(JSON.parse(s).target_directory))')
  DEMO=$TARGET_DIR/debug/demo
  done_phase
fi
[ -x "$DEMO" ] || { say "no demo binary at $DEMO" >&2; exit 1; }

WORK=$(mktemp -d /tmp/platform-e2e.XXXXXX)
PORT=$(node -e 'const s=require("net").createServer();s.listen(0,"127.0.0.1",()=>{console.log(s.address().port);s.close()})')
ADMIN_PASSWORD="e2e-$(od -An -N9 -tx1 /dev/urandom | tr -d ' \n')"
INVOICES=${PLATFORM_E2E_INVOICES:-300}

MAIL_ENV=()
if [ -n "${PLATFORM_TEST_SMTP_URL:-}" ]; then
  MAIL_ENV=(PLATFORM_MAIL_URL="$PLATFORM_TEST_SMTP_URL" PLATFORM_MAIL_FROM="Platform <noreply@example.com>")
fi
phase "starting the demo on 127.0.0.1:$PORT ($INVOICES invoices, $WORK/demo.db, mail ${PLATFORM_TEST_SMTP_URL:-logged only})"
env -u PLATFORM_APP_KEY -u PLATFORM_MAIL_URL -u PLATFORM_URL -u PLATFORM_PREVIOUS_KEYS -u PLATFORM_SECURE_COOKIES -u PLATFORM_DB_MAX_CONNECTIONS \
  PLATFORM_ENV=development \
  PLATFORM_DATABASE_URL="sqlite://$WORK/demo.db?mode=rwc" \
  PLATFORM_KEY_FILE="$WORK/platform.key" \
  PLATFORM_STORAGE_PUBLIC_URL="file://$WORK/media" \
  PLATFORM_ADDR="127.0.0.1:$PORT" \
  PLATFORM_ADMIN_PASSWORD="$ADMIN_PASSWORD" \
  PLATFORM_SEED=1 \
  PLATFORM_SEED_INVOICES="$INVOICES" \
  RUST_LOG="${RUST_LOG:-warn}" \
  "${MAIL_ENV[@]}" \
  "$DEMO" >"$WORK/demo.log" 2>&1 </dev/null &
DEMO_PID=$!
for ((i = 0; ; i++)); do
  if ! kill -0 "$DEMO_PID" 2>/dev/null; then
    wait "$DEMO_PID" || true
    DEMO_PID=''
    say "the demo exited before it listened" >&2
    exit 1
  fi
  (exec 3<>"/dev/tcp/127.0.0.1/$PORT") 2>/dev/null && break
  if ((i > 1200)); then say "the demo did not listen on $PORT within 120 s" >&2; exit 1; fi
  sleep 0.1
done
done_phase

# ---------------------------------------------------------------- the tests
phase "node --test (Chromium $(/usr/bin/chromium --version 2>/dev/null | awk '{print $2}'))"
mkdir -p "$WORK/state"
cd "$HERE"
if (($#)); then FILES=("$@"); else FILES=(*.test.mjs); fi
PLATFORM_E2E_BASE_URL="http://127.0.0.1:$PORT" \
  PLATFORM_E2E_ADMIN_PASSWORD="$ADMIN_PASSWORD" \
  PLATFORM_E2E_STATE_DIR="$WORK/state" \
  PLATFORM_E2E_MAILDIR="${PLATFORM_TEST_SMTP_MAILDIR:-}" \
  node --test --test-concurrency=1 --test-timeout=240000 --test-reporter=spec "${FILES[@]}"
done_phase
