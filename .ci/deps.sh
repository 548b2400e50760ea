#!/bin/sh
# Installs the Debian packages sse needs to build, test and run, when missing.
# Used by `make deps` (and so by `make test` and `make run`) and by .ci/run.
set -e
# Profiles: "run" (build and start the demo hub) or "test" (everything the
# checks, benchmarks and peers need; the default).
PROFILE=${1:-test}
PKGS="build-essential pkg-config lua5.4 liblua5.4-dev lua-luv libuv1-dev lua-cjson libssl-dev"
if [ "$PROFILE" = test ]; then
  PKGS="$PKGS lua-luv-dev lua-busted lua-check luarocks luajit2 libluajit2-5.1-dev
nginx libnginx-mod-http-lua libnginx-mod-nchan redis-server redis-tools valgrind clang libclang-rt-14-dev
curl procps chromium iproute2 python3 openssl python3-jwt python3-cryptography
lua5.1 liblua5.1-0-dev
lua-nginx-redis libhiredis-dev zlib1g-dev prometheus python3-jsonschema systemd"
  # lua5.1 + headers: the rock is built and tested for PUC 5.1 (rock-test).
  # Coming issues: Redis from OpenResty (lua-nginx-redis, which brings
  # nginx-extras) and from C (hiredis' reader), gzip (zlib), metrics
  # (promtool check metrics), the event catalogue (python3-jsonschema, an
  # independent JSON Schema validator), the systemd unit example
  # (systemd-analyze). JWT: libssl-dev (above), PyJWT for tokens.
  # Node.js and npm (for the headless-browser test) may come from another
  # repository (nodesource bundles npm): install Debian's only when missing.
  command -v node >/dev/null 2>&1 || PKGS="$PKGS nodejs"
  command -v npm >/dev/null 2>&1 || PKGS="$PKGS npm"
fi
[ -n "$SSE_EXTRA_PKGS" ] && PKGS="$PKGS $SSE_EXTRA_PKGS"
# Debian's plain LuaJIT conflicts with OpenResty's fork (luajit2): apt would
# remove the nginx Lua module to install it.
for p in $PKGS; do
  case "$p" in luajit|libluajit-5.1-dev|libluajit-5.1-2)
    echo "sse deps: refusing $p (use luajit2 / libluajit2-5.1-dev)" >&2; exit 1 ;;
  esac
done
missing=""
for p in $PKGS; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "ok installed" || missing="$missing $p"
done
[ -z "$missing" ] && exit 0
echo "sse: installing Debian packages:$missing"
SUDO=""
[ "$(id -u)" -ne 0 ] && SUDO="sudo"
$SUDO apt-get update -qq
DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends $missing
