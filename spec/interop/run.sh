#!/bin/sh
# The interop suite (make interop): the project's output read by clients it did not
# write -- eventsource-parser@3 and npm eventsource@4 (Node >= 20) and Debian's Chromium
# (driven by playwright-core; no browser download). Installs the locked npm packages
# into spec/interop/node_modules with `npm ci` when they are missing, runs gen.lua (the
# Lua side: streams and what our parser and sse.client make of them), then
# interop.test.mjs. Needs a built $SSE_BUILD/sse/core.so (default build/lua5.4).
# Prints "interop: N passed, M failed (K known) in T ms".
set -eu
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
LUA=${LUA:-lua5.4}
SSE_BUILD=${SSE_BUILD:-build/lua5.4}
export LUA SSE_BUILD

fail() { echo "interop: $*" >&2; echo "interop: 0 passed, 1 failed"; exit 1; }

command -v node >/dev/null 2>&1 || fail "node not found (apt-get install nodejs npm)"
command -v npm >/dev/null 2>&1 || fail "npm not found (apt-get install npm)"
node -e 'process.exit(Number(process.versions.node.split(".")[0]) >= 20 ? 0 : 1)' || fail "node >= 20 needed"
[ -x "${CHROMIUM:-/usr/bin/chromium}" ] || fail "${CHROMIUM:-/usr/bin/chromium} not found (apt-get install chromium)"
(cd "$root" && [ -f "$SSE_BUILD/sse/core.so" ]) || fail "$SSE_BUILD/sse/core.so missing (run make first)"

# npm ci only when an installed version differs from the lockfile's. Never downloads a
# browser: playwright-core has no install script, and the variable guards anyway.
cd "$here"
stale=$(node -e '
  const lock = require("./package-lock.json").packages;
  for (const k of Object.keys(lock).filter((k) => k.startsWith("node_modules/"))) {
    let have = "";
    try { have = require("./" + k + "/package.json").version; } catch (e) {}
    if (have !== lock[k].version) { console.log(k); break; }
  }')
if [ -n "$stale" ]; then
  log="${TMPDIR:-/tmp}/sse-interop-npm.$$.log"
  PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD=1 timeout 180 npm ci --no-audit --no-fund --loglevel=error >"$log" 2>&1 \
    || { cat "$log" >&2; rm -f "$log"; fail "npm ci failed"; }
  rm -f "$log"
fi

cases=$(mktemp "${TMPDIR:-/tmp}/sse-interop-cases.XXXXXX")
trap 'rm -f "$cases"' EXIT INT TERM
cd "$root"
LUA_PATH="lua/?.lua;lua/?/init.lua;spec/?.lua;;" LUA_CPATH="$SSE_BUILD/?.so;;" \
  timeout -k 5 60 "$LUA" spec/interop/gen.lua "$cases" ${INTEROP_SEED:-} || fail "gen.lua failed"
# The test bounds itself (INTEROP_TIMEOUT_MS, 90 s); timeout is the last resort.
timeout -k 5 120 node spec/interop/interop.test.mjs "$cases"
