#!/usr/bin/env bash
# Fan-out through Redis: sse instances on sse.redis.backend against Nchan
# instances on its Redis backend, measured side by side in one run by the
# same C load client (bench/loadclient.c), one instance against two.
#
#   bench/redis_fanout.sh                  N = 10000, burst of 100, 5 ev/s for 10 s
#   REDIS_SHORT=1 bench/redis_fanout.sh    N = 200, burst of 20, 5 ev/s for 2 s (CI smoke)
#
# Columns (REDIS_SERVERS, in this order by default):
#   sse-x2    two sse processes (bench/redis_fanout_server.lua) on one Redis:
#             subscribers alternate between them, events are published on the first
#   nchan-x2  two nginx + Nchan (one worker each) on one Redis (bench/nchan/redis.conf.in)
#   sse-x1, nchan-x1   the same with one instance holding every subscriber
#   sse-mem   one sse process on the in-memory ring (bench/fanout_server.lua): no Redis
# Each run starts a fresh redis-server (no persistence) on a free port. Server
# CPU is the sum over the instances (schedstat of their threads); Redis CPU is
# measured around the whole client run and divided by the events published.
# The "pubrate" table: 2 subscribers (one per instance), a burst of
# REDIS_PUB_M events pipelined on one connection: events/s end to end.
#
# Environment: REDIS_ONLY ("fanout pubrate": the tables to measure), REDIS_N (10000), REDIS_M (100), REDIS_RATE (5), REDIS_SECS (10),
# REDIS_PAYLOAD (40), REDIS_RAMP (5000), REDIS_PUB_M (20000), BENCH_RUNS (1),
# BENCH_KEEP=1 (keep logs), BENCH_LUA (lua5.4).
: "${BENCH_RUNS:=1}"
export BENCH_RUNS
PAYLOAD=${REDIS_PAYLOAD:-40}
RAMP=${REDIS_RAMP:-5000}
if [ "${REDIS_SHORT:-0}" = 1 ]; then
	N=${REDIS_N:-200}; M=${REDIS_M:-20}; RATE=${REDIS_RATE:-5}; SECS=${REDIS_SECS:-2}
	PUB_M=${REDIS_PUB_M:-2000}; MODE=short
else
	N=${REDIS_N:-10000}; M=${REDIS_M:-100}; RATE=${REDIS_RATE:-5}; SECS=${REDIS_SECS:-10}
	PUB_M=${REDIS_PUB_M:-20000}; MODE=full
fi
# shellcheck source=bench/lib.sh
. "$(dirname "$0")/lib.sh"

command -v redis-server > /dev/null || { echo "redis-server is not installed"; exit 1; }
RUN_SERVERS=
for s in ${REDIS_SERVERS:-sse-x2 nchan-x2 sse-x1 nchan-x1 sse-mem}; do
	case $s in
	nchan-*)
		if command -v nginx > /dev/null && [ -f /usr/lib/nginx/modules/ngx_nchan_module.so ]; then
			RUN_SERVERS="$RUN_SERVERS $s"
		else
			echo "skip $s: nginx or libnginx-mod-nchan is not installed"
		fi ;;
	sse-*) RUN_SERVERS="$RUN_SERVERS $s" ;;
	*) echo "skip $s: unknown (known: sse-x1 sse-x2 nchan-x1 nchan-x2 sse-mem)" ;;
	esac
done
RUN_SERVERS=${RUN_SERVERS# }
make -s LUA="$LUA" all > "$TMP/make.log" 2>&1 || { tail -n 20 "$TMP/make.log"; exit 1; }

# free_port: the next port from $PORT on that nothing listens on
free_port() {
	while port_busy "$PORT"; do PORT=$((PORT + 1)); done
	echo "$PORT"
	PORT=$((PORT + 1))
}

# start_redis: sets REDIS_PORT and REDIS_PID
start_redis() {
	REDIS_PORT=$(free_port)
	redis-server --port "$REDIS_PORT" --bind 127.0.0.1 --save '' --appendonly no \
		--daemonize no --protected-mode no --dir "$TMP" > "$TMP/redis-$REDIS_PORT.log" 2>&1 &
	REDIS_PID=$!
	PIDS+=("$REDIS_PID")
	wait_port "$REDIS_PORT" "$REDIS_PID"
}

# start_instance KIND PORT LOG: sets INST_PID (the process to measure) and
# INST_STOP (the processes to stop)
start_instance() {
	local kind=$1 port=$2 log=$3 pre pid
	case $kind in
	nchan)
		pre=$TMP/nchan-$port
		mkdir -p "$pre/conf" "$pre/logs" "$pre/tmp"
		chmod -R 755 "$pre"
		sed -e "s|@PREFIX@|$pre|g" -e "s|@PORT@|$port|g" -e "s|@BUFLEN@|$NCHAN_BUFLEN|g" \
			-e "s|@REDIS_PORT@|$REDIS_PORT|g" bench/nchan/redis.conf.in > "$pre/conf/nginx.conf"
		nginx -p "$pre/" -c conf/nginx.conf > "$log" 2>&1 &
		pid=$!
		PIDS+=("$pid")
		wait_port "$port" "$pid" || return 1
		INST_PID=''
		for _ in $(seq 1 50); do
			INST_PID=$(pgrep -P "$pid" | head -n 1)
			[ -n "$INST_PID" ] && break
			sleep 0.05
		done
		[ -n "$INST_PID" ] || return 1
		PIDS+=("$INST_PID")
		INST_STOP="$pid $INST_PID" ;;
	sse)
		LUA_PATH="$ROOT/lua/?.lua;$ROOT/lua/?/init.lua;;" LUA_CPATH="$ROOT/build/$LUA/?.so;;" \
			"$LUA" bench/redis_fanout_server.lua --port "$port" \
			--redis "redis://127.0.0.1:$REDIS_PORT" > "$log" 2>&1 &
		INST_PID=$!
		PIDS+=("$INST_PID")
		INST_STOP=$INST_PID
		wait_port "$port" "$INST_PID" || return 1 ;;
	mem)
		LUA_PATH="$ROOT/lua/?.lua;$ROOT/lua/?/init.lua;;" LUA_CPATH="$ROOT/build/$LUA/?.so;;" \
			"$LUA" bench/fanout_server.lua --port "$port" > "$log" 2>&1 &
		INST_PID=$!
		PIDS+=("$INST_PID")
		INST_STOP=$INST_PID
		wait_port "$port" "$INST_PID" || return 1 ;;
	esac
}

# utime+stime of a process in microseconds
cpu_us() {
	awk -v hz="$(getconf CLK_TCK)" '{ sub(/^.*\) /, ""); print ($12 + $13) * 1000000 / hz }' "/proc/$1/stat"
}

# measure TAG LIMIT EVENTS ARGS...: every server of RUN_SERVERS, BENCH_RUNS
# times; EVENTS is the number of events the client publishes (for Redis CPU)
measure() {
	local tag=$1 limit=$2 events=$3 r s kind count log out rc p1 p2 pid1 pid2 stops r0 r1 extra
	shift 3
	for r in $(seq 1 "$RUNS"); do
		for s in $RUN_SERVERS; do
			kind=${s%-*} count=${s##*-x}
			[ "$s" = sse-mem ] && kind=mem count=1
			stops=''
			echo "== $tag: $s, run $r of $RUNS"
			if [ "$kind" != mem ] && ! start_redis; then
				echo "!! redis-server did not start"; continue
			fi
			p1=$(free_port)
			log=$TMP/$tag-$s-$r
			if ! start_instance "$kind" "$p1" "$log.1.log"; then
				echo "!! $s did not start; its log:"; tail -n 20 "$log.1.log"
				stop ${INST_STOP:-} ${REDIS_PID:-}; continue
			fi
			pid1=$INST_PID stops=$INST_STOP extra=''
			if [ "$count" = 2 ]; then
				p2=$(free_port)
				if ! start_instance "$kind" "$p2" "$log.2.log"; then
					echo "!! $s (second instance) did not start; its log:"; tail -n 20 "$log.2.log"
					stop $stops ${INST_STOP:-} ${REDIS_PID:-}; continue
				fi
				pid2=$INST_PID stops="$stops $INST_STOP"
				extra="--sub-port2 $p2 --pids $pid2"
			fi
			sleep 0.3
			out=$TMP/$tag-$s-$r.client.log
			r0=0
			[ "$kind" != mem ] && r0=$(cpu_us "$REDIS_PID")
			# shellcheck disable=SC2086 # extra is a list of words
			timeout -k 5 "$((limit + 10))" build/loadclient --port "$p1" "$@" $extra \
				--max-time "$limit" --pid "$pid1" --label "$s" > "$out" 2>&1 &
			PIDS+=("$!")
			wait "$!"
			rc=$?
			grep -v '^RESULT' "$out" | sed 's/^/   /'
			[ $rc = 0 ] || echo "!! loadclient exit status $rc"
			if [ "$kind" != mem ]; then
				r1=$(cpu_us "$REDIS_PID")
				redis_us=$(awk -v a="$r0" -v b="$r1" -v n="$events" 'BEGIN { printf "%.2f", (b - a) / n }')
			else
				redis_us=0
			fi
			grep '^RESULT' "$out" | sed "s/^RESULT /tag=$tag server=$s run=$r redis_us_per_ev=$redis_us /" >> "$RESULTS"
			# shellcheck disable=SC2086 # stops is a list of PIDs
			stop $stops ${REDIS_PID:-}
			REDIS_PID=''
		done
	done
}

header "fan-out through Redis ($MODE): N = $N over 1 or 2 instances; burst $M; $RATE events/s" \
	"for $SECS s; $PAYLOAD-byte payload; publish rate: burst of $PUB_M"

ONLY=${REDIS_ONLY:-fanout pubrate}
[[ " $ONLY " == *" fanout "* ]] && measure "redis-$N" $((N / RAMP + 8 * PHASE_TIMEOUT + SECS + 30)) $((1 + M + RATE * SECS)) \
	-n "$N" -m "$M" --rate "$RATE" --duration "$SECS" --payload "$PAYLOAD" --ramp "$RAMP" \
	--timeout "$PHASE_TIMEOUT"
[[ " $ONLY " == *" pubrate "* ]] && measure "pubrate" $((8 * PHASE_TIMEOUT + 30)) $((1 + PUB_M)) \
	-n 2 -m "$PUB_M" --rate 0 --payload "$PAYLOAD" --timeout "$PHASE_TIMEOUT"

[[ " $ONLY " == *" fanout "* ]] && table "redis-$N" "$N subscribers through Redis: burst of $M events, $RATE events/s for $SECS s (median [min..max] of $RUNS)" \
"established|subscribers established||0;\
burst_dps|deliveries/s in the burst||0;\
burst_sched_us_per_del|server CPU us/delivery, burst (all instances)||2;\
burst_p50_us|latency p50 in the burst, ms|1e-3|0;\
burst_p99_us|latency p99 in the burst, ms|1e-3|0;\
rate_p50_us|latency p50 at fixed rate, ms|1e-3|2;\
rate_p99_us|latency p99 at fixed rate, ms|1e-3|2;\
rate_sched_us_per_del|server CPU us/delivery, fixed rate||2;\
redis_us_per_ev|Redis CPU us per published event||1;\
errors|errors (all kinds)||0" "sse-x2/nchan-x2 sse-x1/nchan-x1 sse-x2/sse-x1 nchan-x2/nchan-x1"

# (not "[[ ]] && table": with REDIS_ONLY=fanout the script's status would be 1)
[[ " $ONLY " == *" pubrate "* ]] || exit 0
table "pubrate" "Publish rate: $PUB_M events pipelined on one connection to the first instance, 2 subscribers (median of $RUNS)" \
"burst_dps|deliveries/s (2 per event)||0;\
burst_sched_us_per_del|server CPU us/delivery (all instances)||2;\
burst_p99_us|latency p99, ms|1e-3|0;\
redis_us_per_ev|Redis CPU us per published event||1;\
errors|errors (all kinds)||0" "sse-x2/nchan-x2 sse-x1/nchan-x1"
