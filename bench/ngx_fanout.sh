#!/usr/bin/env bash
# OpenResty fan-out benchmark (issue 11): sse.ngx, Nchan and a hand-written
# OpenResty fan-out, each in the same nginx with one worker, measured side by
# side in one run by the same load client (bench/loadclient.c); then the
# cross-worker delay of sse.ngx with two workers (bench/ngx_xworker.lua).
#
#   bench/ngx_fanout.sh               N = 10000, burst of 100, 5 events/s for 10 s
#   NGX_SHORT=1 bench/ngx_fanout.sh   N = 500, burst of 20, 5 events/s for 2 s (CI smoke)
#
# Servers (NGX_SERVERS, in the order of the columns; "ngx ngx-hand nchan ngx-bare"):
#   ngx        bench/ngx_sse.lua: sse.ngx.stream + sse.ngx.hub over the shared-dict log
#   ngx-hand   bench/ngx_hand.lua: a semaphore and a queue per subscriber, one
#              ngx.print + ngx.flush(true) per event
#   nchan      nginx + Nchan (bench/nchan/nginx.conf.in), as in bench/fanout.sh
#   ngx-bare   bench/ngx_bare.lua: the floor of a lua-nginx handler (one shared
#              semaphore, one shared event list, nothing per subscriber, no abort)
#   ngx-NAME   any other bench/ngx_NAME.lua with init_worker/sub/pub (A/B runs)
# Environment: NGX_N, NGX_M (burst), NGX_RATE, NGX_SECS, NGX_PAYLOAD (40),
# NGX_RAMP (connections/s, 5000), NGX_XW=0 (skip the cross-worker phase),
# NGX_XW_SUBS (200), NGX_XW_EVENTS (200), NGX_XW_RATE (20/s), and those of
# bench/lib.sh (BENCH_RUNS: 1 here).
#
# Server figures come from /proc/<pid> of the one nginx worker.
: "${BENCH_RUNS:=1}"
export BENCH_RUNS
if [ "${NGX_SHORT:-0}" = 1 ]; then
	: "${NGX_N:=500}" "${NGX_M:=20}" "${NGX_SECS:=2}" "${NGX_XW_EVENTS:=50}" "${NGX_XW_SUBS:=50}"
fi
NS=${NGX_N:-10000}
M=${NGX_M:-100}
RATE=${NGX_RATE:-5}
SECS=${NGX_SECS:-10}
PAYLOAD=${NGX_PAYLOAD:-40}
RAMP=${NGX_RAMP:-5000}
# shellcheck source=bench/lib.sh
. "$(dirname "$0")/lib.sh"

# lib.sh's available/start_server, extended with the two OpenResty servers
eval "$(declare -f available | sed '1s/available/lib_available/')"
eval "$(declare -f start_server | sed '1s/start_server/lib_start_server/')"

available() {
	case $1 in
	ngx|ngx-*)
		command -v nginx > /dev/null && [ -f /usr/lib/nginx/modules/ngx_http_lua_module.so ] || {
			echo "skip $1: nginx or libnginx-mod-http-lua is not installed"; return 1; }
		[ -f build/luajit/sse/core.so ] || { echo "skip $1: build/luajit/sse/core.so (make LUA=luajit)"; return 1; }
		return 0 ;;
	*) lib_available "$1" ;;
	esac
}

# ngx_start NAME PORT LOG WORKERS [LISTEN_OPTS]: sets SRV_PID and MEAS_PID (the first worker)
ngx_start() {
	local name=$1 port=$2 log=$3 workers=$4 lopts=${5:-} pre module
	module=ngx_sse
	# ngx-NAME runs bench/ngx_NAME.lua
	[ "$name" != ngx ] && module=ngx_${name#ngx-}
	pre=$TMP/$name-$port
	mkdir -p "$pre/conf" "$pre/logs" "$pre/tmp"
	chmod -R 755 "$pre"
	sed -e "s|@PREFIX@|$pre|g" -e "s|@PORT@|$port|g" -e "s|@ROOT@|$ROOT|g" -e "s|@MODULE@|$module|g" \
		-e "s|@WORKERS@|$workers|g" -e "s|@LISTEN_OPTS@|$lopts|g" \
		bench/ngx_nginx.conf.in > "$pre/conf/nginx.conf"
	nginx -p "$pre/" -c conf/nginx.conf > "$log" 2>&1 &
	SRV_PID=$!
	PIDS+=("$SRV_PID")
	wait_port "$port" "$SRV_PID" || return 1
	MEAS_PID=''
	for _ in $(seq 1 50); do
		[ "$(pgrep -P "$SRV_PID" | wc -l)" -ge "$workers" ] && break
		sleep 0.05
	done
	MEAS_PID=$(pgrep -P "$SRV_PID" | head -n 1)
	[ -n "$MEAS_PID" ] || return 1
	for p in $(pgrep -P "$SRV_PID"); do PIDS+=("$p"); done
}

start_server() {
	case $1 in
	ngx|ngx-*) ngx_start "$1" "$2" "$3" 1 ;;
	*) lib_start_server "$@" ;;
	esac
}

pick_servers "${NGX_SERVERS:-ngx ngx-hand nchan ngx-bare}"
[ -n "$RUN_SERVERS" ] || { echo "no server can run"; exit 1; }
header "OpenResty fan-out: N = $NS, one nginx worker; burst $M events; $RATE events/s for $SECS s;" \
	"$PAYLOAD-byte payload"

for n in $NS; do
	run_matrix "ngx-$n" $((n / RAMP + 8 * PHASE_TIMEOUT + SECS + 30)) -n "$n" -m "$M" \
		--rate "$RATE" --duration "$SECS" --payload "$PAYLOAD" --ramp "$RAMP" \
		--timeout "$PHASE_TIMEOUT" --hold 0
done

for n in $NS; do
	table "ngx-$n" "$n subscribers on one worker: burst of $M events, $RATE events/s for $SECS s, $PAYLOAD-byte data (median [min..max] of $RUNS)" \
"established|subscribers established||0;\
burst_dps|deliveries/s in the burst||0;\
burst_sched_us_per_del|server CPU us/delivery, burst||2;\
burst_cpu_us_per_del|  same, from utime+stime (10 ms ticks)||2;\
idle_b_per_sub|server RSS per idle subscriber, B||0;\
warm_b_per_sub|  same after one event to each, B||0;\
burst_growth_kb|server RSS growth idle->peak, MB|0.0009765625|1;\
burst_p50_us|latency p50 in the burst, ms|1e-3|0;\
burst_p99_us|latency p99 in the burst, ms|1e-3|0;\
rate_p50_us|latency p50 at fixed rate, ms|1e-3|2;\
rate_p99_us|latency p99 at fixed rate, ms|1e-3|2;\
rate_sched_us_per_del|server CPU us/delivery, fixed rate||2;\
missing|events missing||0;\
errors|errors (all kinds, with unparsed: the sse-join event of each sse client)||0" \
	"ngx/nchan ngx/ngx-hand ngx-hand/nchan ngx/ngx-bare ngx-bare/nchan"
done
echo "(issue 11's targets for ngx: burst CPU/delivery <= 1/3 of nchan's; p99 at $RATE/s <= nchan's;" \
	"RSS per subscriber <= ngx-hand's and nchan's; ngx-bare: what any lua-nginx handler costs at least)"

# --- cross-worker delay: two workers, publisher pinned to one -------------
[ "${NGX_XW:-1}" = 1 ] || exit 0
available ngx > /dev/null || exit 0
while port_busy "$PORT"; do PORT=$((PORT + 1)); done
echo "== cross-worker delay: ngx with 2 workers (port $PORT)"
log=$TMP/xw.server.log
if ! ngx_start ngx "$PORT" "$log" 2 reuseport; then
	echo "!! ngx (2 workers) did not start; its log:"; tail -n 20 "$log"; exit 0
fi
LUA_PATH="$ROOT/lua/?.lua;$ROOT/lua/?/init.lua;$ROOT/spec/?.lua;;" LUA_CPATH="$ROOT/build/luajit/?.so;;" \
	timeout 120 luajit bench/ngx_xworker.lua --port "$PORT" --subs "${NGX_XW_SUBS:-200}" \
	--events "${NGX_XW_EVENTS:-200}" --rate "${NGX_XW_RATE:-20}" \
	|| echo "!! bench/ngx_xworker.lua failed"
stop "$SRV_PID" $(pgrep -P "$SRV_PID")
