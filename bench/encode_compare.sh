#!/bin/sh
# bench/encode_compare.sh - the encoder benchmark on Lua 5.4 and LuaJIT, each
# against the encoder of an older revision loaded into the same process (the
# "before" column), in one run. Prints figures; asserts nothing.
#
#   make bench-encode-compare [ENCODE_BEFORE_REV=857abf0] [BENCH_SECONDS=1]
#
# The old revision is exported with `git archive` and built in a temporary
# directory; the current tree's modules come from `make` (build/<lua>/).
set -eu
REV=${ENCODE_BEFORE_REV:-857abf0}
LUAS=${ENCODE_LUAS:-"lua5.4 luajit"}
TMP=$(mktemp -d)
trap 'rm -rf "$TMP"' EXIT INT TERM

git archive "$REV" | tar -x -C "$TMP"
echo "before: $(git log -1 --format='%h %s' "$REV" | cut -c1-90)"
echo "now:    $(git log -1 --format='%h %s' HEAD | cut -c1-90)$(git diff --quiet HEAD -- csrc lua || echo ' (+ uncommitted changes)')"
for lua in $LUAS; do
  make -s -C "$TMP" LUA="$lua" >/dev/null
  make -s LUA="$lua" >/dev/null
  echo
  SSE_ENCODE_BEFORE="$TMP/build/$lua/sse/core.so" \
  LUA_PATH="lua/?.lua;lua/?/init.lua;;" LUA_CPATH="build/$lua/?.so;;" \
    "$lua" bench/encode_bench.lua
done
