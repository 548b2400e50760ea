#!/bin/sh
# Proves the rockspec installs a working module into a fresh tree, and that
# require("sse") works from that tree alone (no source checkout on the path).
set -e
cd "$(dirname "$0")/.."
spec=$(ls rockspec/*.rockspec | head -n1)

# The rockspec must list every C source and Lua module the Makefile builds.
for f in $(make -s print-srcs); do
  grep -q "\"$f\"" "$spec" || { echo "rock-test: $f is in the Makefile but not in $spec"; exit 1; }
done
for f in $(find lua/sse -name '*.lua' | sort); do
  grep -q "\"$f\"" "$spec" || { echo "rock-test: $f is missing from $spec"; exit 1; }
done

tree=$(mktemp -d /tmp/sse-rock.XXXXXX)
trap 'rm -rf "$tree"' EXIT
luarocks --lua-version=5.4 make "$spec" --tree "$tree" >"$tree.log" 2>&1 || { cat "$tree.log"; exit 1; }
rm -f "$tree.log"
[ -f "$tree/share/lua/5.4/sse/app/dashboard.html" ] \
  || { echo "rock-test: the dashboard is not installed beside sse.app"; exit 1; }
cd /tmp
LUA_PATH="$tree/share/lua/5.4/?.lua;$tree/share/lua/5.4/?/init.lua" \
LUA_CPATH="$tree/lib/lua/5.4/?.so" \
lua5.4 -e '
  local sse = require("sse")
  assert(package.searchpath("sse.core", package.cpath):find("sse-rock", 1, true))
  local out = sse.encode({ id = "1", data = "a\nb" })
  assert(out == "id: 1\ndata: a\ndata: b\n\n", out)
  assert(package.searchpath("sse.jwt_core", package.cpath):find("sse-rock", 1, true))
  local jc = require("sse.jwt_core")
  local v = jc.verifier({ assert(jc.key_secret(("k"):rep(32))) }, { "HS256" }, 8192, 0, true)
  assert(select(2, v:verify("a.b.c", 0)) == "bad base64url in header")
  print("rock-test: require(\"sse\") " .. sse.version .. " works from the rock tree")
'
