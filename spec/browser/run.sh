#!/bin/sh
# Browser test of the demo hub's dashboard: installs playwright-core (npm, no browser
# download) into spec/browser/node_modules, then drives Debian's chromium against
# examples/hub/server.lua. Needs: node >= 20, npm, /usr/bin/chromium, a built
# build/lua5.4/sse/core.so (run `make` first). Prints "browser: N passed, M failed".
set -eu
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
cd "$here"

fail() { echo "browser: $*" >&2; echo "browser: 0 passed, 1 failed"; exit 1; }

command -v node >/dev/null 2>&1 || fail "node not found (apt-get install nodejs npm)"
command -v npm >/dev/null 2>&1 || fail "npm not found (apt-get install npm)"
[ -x "${CHROMIUM:-/usr/bin/chromium}" ] || fail "${CHROMIUM:-/usr/bin/chromium} not found (apt-get install chromium)"
if [ -z "${SSE_HUB_CMD:-}" ]; then
  [ -f "$root/build/lua5.4/sse/core.so" ] || fail "build/lua5.4/sse/core.so missing (run make first)"
  [ -f "$root/examples/hub/server.lua" ] || fail "examples/hub/server.lua missing"
fi

# Install only when the locked version is not there already. Never downloads a browser:
# playwright-core has no install script, and PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD guards anyway.
want=$(node -e 'console.log(require("./package-lock.json").packages["node_modules/playwright-core"].version)')
have=$(node -e 'try{console.log(require("./node_modules/playwright-core/package.json").version)}catch(e){console.log("")}')
if [ "$want" != "$have" ]; then
  PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD=1 timeout 120 npm ci --no-audit --no-fund --loglevel=error >"${TMPDIR:-/tmp}/sse-browser-npm.log" 2>&1 \
    || { cat "${TMPDIR:-/tmp}/sse-browser-npm.log" >&2; fail "npm ci failed"; }
fi

# The tests bound themselves (BROWSER_TEST_TIMEOUT_MS, 55 s; 45 s); timeout is the last resort.
rc=0
timeout -k 5 90 node dashboard.test.mjs || rc=1
# compressed streams (issue 14): a gzip stream read by Chromium's EventSource
timeout -k 5 60 node compress.test.mjs || rc=1
exit $rc
