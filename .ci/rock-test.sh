#!/bin/bash
# rock-test (make rock-test, part of make test): the packaging, as a user
# meets it.
#  1. `luarocks make` into fresh trees for every Lua the rock claims: the
#     luarocks default (Lua 5.1 here), 5.1, 5.4 and LuaJIT 2.1. Each tree's
#     module loads in its interpreter, encodes, delivers Hub -> Stream on luv
#     (.ci/rock-smoke.lua), and its sse-hub command serves / and /events.
#  2. `make install` into a temp PREFIX (5.4, LuaJIT, 5.1), and with DESTDIR:
#     the sse-hub command runs from there with a clean environment; `make
#     uninstall` removes every file.
#  3. The checkout is left as it was: no csrc/*.o, no sse/core.so, nothing
#     new outside build/ (luarocks' builtin backend used to compile in place).
#  Also: the Makefile spells the Lua search path once.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
spec=$(ls rockspec/*.rockspec | head -n1)
work=$(mktemp -d /tmp/sse-rock.XXXXXX)
hub_pid= sub=
cleanup() {
  [ -n "$hub_pid" ] && kill "$hub_pid" 2>/dev/null
  [ -n "$sub" ] && kill "$sub" 2>/dev/null
  rm -rf "$work"
}
trap cleanup EXIT
fail() { echo "rock-test: FAILED: $*" >&2; exit 1; }
CLEAN_ENV=(env -i PATH=/usr/local/bin:/usr/bin:/bin HOME="$work")

# --- the Makefile's one Lua search path --------------------------------------
n=$(cat Makefile mk/*.mk | grep -o 'lua/?\.lua' | wc -l)
[ "$n" -eq 1 ] || fail "the checkout's Lua search path is spelled $n times in Makefile and mk/*.mk (use \$(LUA_SRC_PATH))"

# --- what the checkout holds besides tracked files (ignored ones included) --
# build/ is where builds belong; node_modules/ is npm's
leftovers() {
  git ls-files --others --directory 2>/dev/null | grep -v -e '^build/' -e 'node_modules/' | sort || true
}
in_git=no
git rev-parse --is-inside-work-tree >/dev/null 2>&1 && in_git=yes
before=$(leftovers)

# --- the demo hub command ----------------------------------------------------
# hub_check NAME CMD...: starts CMD --port 0 in a clean environment (outside
# the checkout), checks the dashboard, a subscription with a Last-Event-ID
# of invalid UTF-8 (the gap event carries it escaped: U+FFFD), a publish the
# subscriber receives, then SIGTERM: exit 0.
hub_check() {
  local name=$1; shift
  local out=$work/hub-$name.out
  (cd "$work" && exec "${CLEAN_ENV[@]}" "$@" --port 0 >"$out" 2>&1) &
  hub_pid=$!
  local port="" i
  for i in $(seq 1 100); do
    port=$(sed -n 's|^sse hub listening on http://127\.0\.0\.1:\([0-9]*\)/$|\1|p' "$out")
    [ -n "$port" ] && break
    kill -0 "$hub_pid" 2>/dev/null || break
    sleep 0.1
  done
  [ -n "$port" ] || { cat "$out"; fail "$name: sse-hub did not print its URL"; }
  local base=http://127.0.0.1:$port
  curl -fsS --max-time 5 "$base/" -o "$work/page.html" || fail "$name: GET / failed"
  grep -q 'src="sse-subscriber.js"' "$work/page.html" || fail "$name: GET / is not the dashboard"
  # to a file first: with pipefail, grep -q leaving early fails curl (23)
  curl -fsS --max-time 5 "$base/sse-subscriber.js" -o "$work/module.js" || fail "$name: GET /sse-subscriber.js failed"
  grep -q "class SseSubscriber" "$work/module.js" || fail "$name: GET /sse-subscriber.js is not the browser module"
  curl -sSN --max-time 3 -H "$(printf 'Last-Event-ID: \377x')" "$base/events?topic=news" \
    >"$work/events-$name.txt" 2>/dev/null &
  sub=$!
  # subscribed once the gap event has arrived
  for i in $(seq 1 50); do
    grep -q '^event: sse-gap$' "$work/events-$name.txt" 2>/dev/null && break
    sleep 0.1
  done
  local answer
  answer=$(curl -fsS --max-time 5 -d topic=news -d event=headline -d data=hello "$base/publish") \
    || fail "$name: POST /publish failed"
  local id
  id=$(printf '%s' "$answer" | sed -n 's/.*"id":"\([^"]*\)".*/\1/p')
  [ -n "$id" ] || fail "$name: no id in the publish answer $answer"
  for i in $(seq 1 50); do
    grep -q '^data: hello$' "$work/events-$name.txt" && break
    sleep 0.1
  done
  kill "$sub" 2>/dev/null || true
  wait "$sub" 2>/dev/null || true
  sub=
  grep -q "^data: {\"last_event_id\":\"$(printf '\357\277\275')x\"" "$work/events-$name.txt" \
    || { od -c "$work/events-$name.txt" | head -20; fail "$name: no gap event carrying the escaped Last-Event-ID"; }
  grep -A2 '^event: headline$' "$work/events-$name.txt" | tr '\n' '|' | grep -q "^event: headline|id: $id|data: hello|" \
    || { cat "$work/events-$name.txt"; fail "$name: the subscriber did not get the published event"; }
  kill -TERM "$hub_pid"
  local rc=0
  wait "$hub_pid" || rc=$?
  hub_pid=
  [ "$rc" -eq 0 ] || { cat "$out"; fail "$name: sse-hub exited $rc after SIGTERM"; }
  echo "rock-test: $name: sse-hub served /, /events (gap, live event) and /publish, exit 0 on SIGTERM"
}

# --- rocks -------------------------------------------------------------------
# pub_check NAME PATH: the installed sse-pub runs with a clean environment:
# --help, and a publish to a closed port fails with the connection's error.
pub_check() {
  local name=$1 cmd=$2 out rc
  out=$("${CLEAN_ENV[@]}" "$cmd" --help 2>&1) || fail "$name: sse-pub --help exited $?: $out"
  case $out in "usage: sse-pub"*) ;; *) fail "$name: sse-pub --help printed: $out" ;; esac
  rc=0
  out=$("${CLEAN_ENV[@]}" "$cmd" http://127.0.0.1:1 news hello 2>&1) || rc=$?
  [ "$rc" -eq 1 ] && case $out in *"cannot connect to 127.0.0.1:1"*) true ;; *) false ;; esac \
    || fail "$name: sse-pub to a closed port: exit $rc, $out"
  echo "rock-test: $name: sse-pub runs (usage, connection error)"
}

# rock NAME LUA_VERSION|default INTERPRETER [luarocks config lines]
rock() {
  local name=$1 ver=$2 interp=$3 config=${4:-}
  local tree=$work/tree-$name log=$work/rock-$name.log
  local args=()
  [ "$ver" = default ] || args+=(--lua-version="$ver")
  local cfg=/dev/null
  if [ -n "$config" ]; then
    cfg=$work/$name.config.lua
    printf '%s\n' "$config" >"$cfg"
  fi
  [ -n "$config" ] && export LUAROCKS_CONFIG=$cfg
  luarocks "${args[@]}" make "$spec" --tree "$tree" >"$log" 2>&1 \
    || { cat "$log"; fail "$name: luarocks make failed"; }
  unset LUAROCKS_CONFIG
  local v
  v=$(ls "$tree/lib/lua")
  for m in core jwt_core; do
    [ -f "$tree/lib/lua/$v/sse/$m.so" ] || fail "$name: no sse/$m.so in $tree/lib/lua/$v"
  done
  [ -f "$tree/share/lua/$v/sse/app/dashboard.html" ] || fail "$name: the dashboard is not installed beside sse.app"
  (cd "$work" && SSE_TREE=$tree LUA_PATH="$tree/share/lua/$v/?.lua;$tree/share/lua/$v/?/init.lua;;" \
    LUA_CPATH="$tree/lib/lua/$v/?.so;;" "$interp" "$ROOT/.ci/rock-smoke.lua") || fail "$name: smoke test"
  hub_check "rock-$name" "$tree/bin/sse-hub"
  pub_check "rock-$name" "$tree/bin/sse-pub"
}

default_ver=$(luarocks config lua_version 2>/dev/null || echo 5.1)
# `luarocks make rockspec/... --tree T`, as the README says: luarocks' default Lua
rock default default "lua$default_ver"
[ "$default_ver" = 5.1 ] || rock lua5.1 5.1 lua5.1
rock lua5.4 5.4 lua5.4
rock luajit 5.1 luajit 'lua_interpreter = "luajit"
variables = { LUA_INCDIR = "/usr/include/luajit-2.1", LUA_BINDIR = "/usr/bin" }'

# --- make install / uninstall ------------------------------------------------
# install_check LUA: into a temp PREFIX (the command finds its modules there
# by itself), then staged with DESTDIR; uninstall leaves no file behind.
install_check() {
  local lua=$1 p=$work/prefix-$1 stage=$work/stage-$1
  make -s install LUA="$lua" PREFIX="$p" >"$work/install.log" 2>&1 || { cat "$work/install.log"; fail "make install LUA=$lua"; }
  local v
  v=$(ls "$p/lib/lua")
  for f in bin/sse-hub bin/sse-pub "lib/lua/$v/sse/core.so" "lib/lua/$v/sse/jwt_core.so" "share/lua/$v/sse/init.lua" \
    "share/lua/$v/sse/app/dashboard.html" "share/lua/$v/sse/app/sse-subscriber.js"; do
    [ -f "$p/$f" ] || fail "make install LUA=$lua: no $f in PREFIX"
  done
  head -n1 "$p/bin/sse-hub" | grep -qx "#!/usr/bin/env $lua" || fail "make install LUA=$lua: sse-hub's interpreter line is $(head -n1 "$p/bin/sse-hub")"
  hub_check "make-install-$lua" "$p/bin/sse-hub"
  pub_check "make-install-$lua" "$p/bin/sse-pub"
  make -s uninstall LUA="$lua" PREFIX="$p" >/dev/null
  [ -z "$(find "$p" -type f)" ] || fail "make uninstall LUA=$lua left: $(find "$p" -type f | tr '\n' ' ')"
  [ ! -e "$p/share/lua/$v/sse" ] && [ ! -e "$p/lib/lua/$v/sse" ] || fail "make uninstall LUA=$lua left the sse directories"

  make -s install LUA="$lua" DESTDIR="$stage" PREFIX=/usr >/dev/null
  [ -f "$stage/usr/bin/sse-hub" ] && [ -f "$stage/usr/lib/lua/$v/sse/core.so" ] \
    && [ -f "$stage/usr/share/lua/$v/sse/app/dashboard.html" ] || fail "make install DESTDIR: files not staged under DESTDIR"
  grep -q "\"/usr/share/lua/$v/?.lua;" "$stage/usr/bin/sse-hub" || fail "make install DESTDIR: sse-hub's search path is not PREFIX's"
  make -s uninstall LUA="$lua" DESTDIR="$stage" PREFIX=/usr >/dev/null
  [ -z "$(find "$stage" -type f)" ] || fail "make uninstall DESTDIR left: $(find "$stage" -type f | tr '\n' ' ')"
  echo "rock-test: make install/uninstall LUA=$lua (PREFIX and DESTDIR): ok"
}
install_check lua5.4
install_check luajit
install_check lua5.1

# --- the checkout is as it was -----------------------------------------------
if [ "$in_git" = yes ]; then
  after=$(leftovers)
  if [ "$before" != "$after" ]; then
    echo "rock-test: files the builds left in the checkout:"
    diff <(echo "$before") <(echo "$after") | sed -n 's/^> /  /p'
    fail "the checkout is not as it was (builds belong under build/)"
  fi
  echo "rock-test: the checkout is as it was (nothing new outside build/)"
fi
echo "rock-test: all passed"
