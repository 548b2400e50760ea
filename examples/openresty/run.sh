#!/usr/bin/env bash
# make run-openresty: the demo hub in nginx, from a temporary prefix, in the
# foreground. Ctrl-C (or SIGTERM) stops nginx and removes the prefix.
#
#   bash examples/openresty/run.sh [HOST] [PORT] [WORKERS] [FLAGS...]   (defaults 127.0.0.1 8080 2)
#   FLAGS: those of `make run` (--jwt-secret S, --presence, --cors A,B, --max-topics N, ...;
#          make run-openresty ARGS='...'), handed to nginx as SSE_HUB_ARGS, one a line
#   SSE_HUB_TOKEN=secret ...: /publish, /stats and /admin need that bearer token
#   SSE_HUB_REDIS=redis://127.0.0.1:6379 ...: ids, replay and fan-out shared through Redis
set -e
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
HOST=${1:-127.0.0.1}
PORT=${2:-8080}
WORKERS=${3:-2}
shift $(($# < 3 ? $# : 3))
SSE_HUB_ARGS=""
for a in "$@"; do SSE_HUB_ARGS+="$a"$'\n'; done
export SSE_HUB_ARGS
BUILD=${SSE_NGX_BUILD:-$ROOT/build/luajit}
for m in ndk_http_module ngx_http_lua_module; do
	[ -f /usr/lib/nginx/modules/$m.so ] || {
		echo "run-openresty: /usr/lib/nginx/modules/$m.so is missing:" \
			"apt-get install nginx libnginx-mod-http-lua" >&2; exit 1; }
done
[ -f "$BUILD/sse/core.so" ] || { echo "run-openresty: $BUILD/sse/core.so is missing: make LUA=luajit" >&2; exit 1; }

PREFIX=$(mktemp -d /tmp/sse-openresty.XXXXXX)
mkdir -p "$PREFIX/conf" "$PREFIX/logs" "$PREFIX/tmp"
chmod -R 755 "$PREFIX"   # workers run as nobody when nginx is started as root
sed -e "s|@PREFIX@|$PREFIX|g" -e "s|@WORKERS@|$WORKERS|g" -e "s|@LISTEN@|$HOST:$PORT|g" \
	-e "s|@LUA_PATH@|$ROOT/lua/?.lua;$ROOT/lua/?/init.lua;$ROOT/examples/openresty/?.lua|g" \
	-e "s|@LUA_CPATH@|$BUILD/?.so|g" \
	"$ROOT/examples/openresty/nginx.conf" > "$PREFIX/conf/nginx.conf"

nginx -p "$PREFIX/" -c conf/nginx.conf &
PID=$!
stop() {
	trap - INT TERM EXIT
	kill -TERM "$PID" 2>/dev/null || true
	wait "$PID" 2>/dev/null || true
	rm -rf "$PREFIX"
}
trap 'stop; exit 0' INT TERM
trap stop EXIT

# wait until it listens (or died)
i=0
until (exec 3<>"/dev/tcp/$HOST/$PORT") 2>/dev/null; do
	kill -0 "$PID" 2>/dev/null || { echo "run-openresty: nginx did not start" >&2; exit 1; }
	i=$((i + 1)); [ $i -lt 100 ] || { echo "run-openresty: nginx does not listen on $HOST:$PORT" >&2; exit 1; }
	sleep 0.1
done

BASE="http://$HOST:$PORT/"
AUTH=""
[ -n "${SSE_HUB_TOKEN:-}" ] && AUTH=" -H 'Authorization: Bearer $SSE_HUB_TOKEN'"
echo "sse hub (nginx, $WORKERS workers) listening on $BASE"
echo "  dashboard  $BASE"
echo "  subscribe  curl -N '${BASE}events?topic=news'"
echo "  publish    curl$AUTH -d topic=news -d event=headline -d data=hello ${BASE}publish"
echo "  stats      curl$AUTH ${BASE}stats"
echo "  metrics    curl$AUTH ${BASE}metrics"
case " $* " in *" --jwt-secret"*|*" --jwt-key"*)
	echo "  tokens     /events and /publish need a JWT granting the topics: -H 'Authorization: Bearer JWT'" ;;
esac
echo "  (Ctrl-C stops nginx; its prefix is $PREFIX)"
wait "$PID"
