#!/usr/bin/env bash
# Fan-out benchmark: the sse library's server, Nchan and a hand-written luv server,
# measured side by side in one run by the same C load client (bench/loadclient.c).
#
#   bench/fanout.sh                    N = 1000 and 10000, burst of 100, 5 ev/s for 10 s
#   FANOUT_SHORT=1 bench/fanout.sh     N = 200, burst of 20, 5 ev/s for 2 s (CI smoke)
#   FANOUT_HOLD=1 bench/fanout.sh      19,000 live subscribers per server, held 10 s
#
# Environment (all optional):
#   FANOUT_SERVERS  servers to run, in order ("sse nchan luv")
#   FANOUT_N        subscriber counts ("1000 10000")
#   FANOUT_M        burst size in events (100)
#   FANOUT_RATE     fixed-rate phase, events per second (5)
#   FANOUT_SECS     fixed-rate phase length in seconds (10)
#   FANOUT_PAYLOAD  event data bytes (40)
#   FANOUT_RAMP     new connections per second (5000)
#   FANOUT_HOLD_N   subscribers in hold mode (19000); FANOUT_HOLD_SECS (10)
#   FANOUT_PORT     first TCP port to try (10000..24900 by PID); busy ports are skipped
#   FANOUT_LUA      Lua interpreter for the Lua servers (lua5.4)
#   FANOUT_SSE_SERVER  script of the sse server (bench/fanout_server.lua)
#   FANOUT_KEEP=1   keep the temp directory with logs and raw client output
#
# Server figures come from /proc/<pid> of the server process only (for nginx: its
# one worker). Everything listens on 127.0.0.1; every process started here is
# stopped by PID on exit.
set -u

ROOT=$(cd "$(dirname "$0")/.." && pwd)
cd "$ROOT" || exit 1

LUA=${FANOUT_LUA:-lua5.4}
SSE_SERVER=${FANOUT_SSE_SERVER:-bench/fanout_server.lua}
SERVERS=${FANOUT_SERVERS:-sse nchan luv}
PAYLOAD=${FANOUT_PAYLOAD:-40}
RAMP=${FANOUT_RAMP:-5000}
# ports below the ephemeral range, spread by PID so that two runs do not collide
PORT=${FANOUT_PORT:-$((10000 + ($$ % 150) * 100))}
HOLD=0
if [ "${FANOUT_HOLD:-0}" = 1 ]; then
	NS=${FANOUT_HOLD_N:-19000}; M=${FANOUT_M:-100}; RATE=${FANOUT_RATE:-5}
	SECS=${FANOUT_SECS:-10}; HOLD=${FANOUT_HOLD_SECS:-10}; MODE=hold
elif [ "${FANOUT_SHORT:-0}" = 1 ]; then
	NS=${FANOUT_N:-200}; M=${FANOUT_M:-20}; RATE=${FANOUT_RATE:-5}; SECS=${FANOUT_SECS:-2}
	MODE=short
else
	NS=${FANOUT_N:-1000 10000}; M=${FANOUT_M:-100}; RATE=${FANOUT_RATE:-5}
	SECS=${FANOUT_SECS:-10}; MODE=full
fi
PHASE_TIMEOUT=60

TMP=$(mktemp -d /tmp/fanout.XXXXXX) || exit 1
chmod 755 "$TMP"
RESULTS=$TMP/results
: > "$RESULTS"
PIDS=()

cleanup() {
	local p
	for p in "${PIDS[@]}"; do kill -TERM "$p" 2>/dev/null; done
	sleep 0.3
	for p in "${PIDS[@]}"; do kill -KILL "$p" 2>/dev/null; done
	if [ "${FANOUT_KEEP:-0}" = 1 ]; then echo "logs kept in $TMP"; else rm -rf "$TMP"; fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

ulimit -n "$(ulimit -Hn)" 2>/dev/null

mkdir -p build
if [ ! -x build/loadclient ] || [ bench/loadclient.c -nt build/loadclient ]; then
	cc -O2 -Wall -Wextra -o build/loadclient bench/loadclient.c || exit 1
fi
build/loadclient --selftest > /dev/null || { echo "loadclient --selftest failed"; exit 1; }

# wait_port PORT PID: 0 once PORT accepts connections, 1 if PID died or 10 s passed
wait_port() {
	for _ in $(seq 1 200); do
		kill -0 "$2" 2>/dev/null || return 1
		if (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; then return 0; fi
		sleep 0.05
	done
	return 1
}

# port_busy PORT: 0 if something already listens on 127.0.0.1:PORT
port_busy() {
	(exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null
}

# stop PID...: TERM, then KILL after 3 s (only one server runs at a time: this
# forgets PIDS, so that cleanup never signals a PID reused by someone else)
stop() {
	local p
	PIDS=()
	for p in "$@"; do kill -TERM "$p" 2>/dev/null; done
	for _ in $(seq 1 30); do
		local alive=0
		for p in "$@"; do kill -0 "$p" 2>/dev/null && alive=1; done
		[ $alive = 0 ] && return 0
		sleep 0.1
	done
	for p in "$@"; do kill -KILL "$p" 2>/dev/null; done
}

# start_<server> PORT LOG: sets SRV_PID (to stop) and MEAS_PID (to measure), or returns 1
start_nchan() {
	local pre=$TMP/nchan-$1
	mkdir -p "$pre/conf" "$pre/logs" "$pre/tmp"
	chmod -R 755 "$pre"
	sed -e "s|@PREFIX@|$pre|g" -e "s|@PORT@|$1|g" bench/nchan/nginx.conf.in > "$pre/conf/nginx.conf"
	nginx -p "$pre/" -c conf/nginx.conf > "$2" 2>&1 &
	SRV_PID=$!
	PIDS+=("$SRV_PID")
	wait_port "$1" "$SRV_PID" || return 1
	MEAS_PID=
	for _ in $(seq 1 50); do
		MEAS_PID=$(pgrep -P "$SRV_PID" | head -n 1)
		[ -n "$MEAS_PID" ] && break
		sleep 0.05
	done
	[ -n "$MEAS_PID" ] || return 1
	PIDS+=("$MEAS_PID")
}

start_luv() {
	"$LUA" bench/luv_fanout_server.lua --port "$1" > "$2" 2>&1 &
	SRV_PID=$!
	MEAS_PID=$SRV_PID
	PIDS+=("$SRV_PID")
	wait_port "$1" "$SRV_PID"
}

start_sse() {
	# the GC pause this benchmark's figures were always taken with (the other
	# drivers show Lua's default beside it)
	LUA_PATH="lua/?.lua;lua/?/init.lua;;" LUA_CPATH="build/$LUA/?.so;;" \
		SSE_GC_PAUSE=${SSE_GC_PAUSE:-100} "$LUA" "$SSE_SERVER" --port "$1" > "$2" 2>&1 &
	SRV_PID=$!
	MEAS_PID=$SRV_PID
	PIDS+=("$SRV_PID")
	wait_port "$1" "$SRV_PID"
}

# available SERVER: 0 if it can run here, else prints why and returns 1
available() {
	case $1 in
	nchan)
		command -v nginx > /dev/null && [ -f /usr/lib/nginx/modules/ngx_nchan_module.so ] && return 0
		echo "skip nchan: nginx or libnginx-mod-nchan is not installed"; return 1 ;;
	luv)
		"$LUA" -e 'require("luv")' 2> /dev/null && return 0
		echo "skip luv: $LUA cannot load luv"; return 1 ;;
	sse)
		if [ ! -f "$SSE_SERVER" ]; then
			echo "skip sse: $SSE_SERVER does not exist yet"; return 1
		fi
		if ! make -s LUA="$LUA" > "$TMP/make.log" 2>&1; then
			echo "skip sse: 'make LUA=$LUA' failed (see below)"; tail -n 20 "$TMP/make.log"; return 1
		fi
		return 0 ;;
	*)
		echo "skip $1: unknown server (known: sse nchan luv)"; return 1 ;;
	esac
}

RUN_SERVERS=
for s in $SERVERS; do
	if available "$s"; then RUN_SERVERS="$RUN_SERVERS $s"; fi
done

echo "fan-out benchmark ($MODE): servers:$RUN_SERVERS; N = $NS; burst $M events;" \
     "$RATE events/s for $SECS s; $PAYLOAD-byte payload; $(nproc) CPUs; $(uname -r)"

for n in $NS; do
	for s in $RUN_SERVERS; do
		log=$TMP/$s-$n.server.log
		out=$TMP/$s-$n.client.log
		while port_busy "$PORT"; do PORT=$((PORT + 1)); done
		echo
		echo "== $s, $n subscribers (port $PORT)"
		SRV_PID='' MEAS_PID=''
		if ! "start_$s" "$PORT" "$log" || ! sleep 0.2 || ! kill -0 "$MEAS_PID" 2>/dev/null; then
			echo "!! $s did not start on port $PORT; its log:"
			tail -n 20 "$log"
			stop "$SRV_PID" ${MEAS_PID:+"$MEAS_PID"}
			echo "server=$s n=$n died=1" >> "$RESULTS"
			PORT=$((PORT + 1))
			continue
		fi
		limit=$((n / RAMP + 6 * PHASE_TIMEOUT + SECS + HOLD + 30))
		timeout -k 5 "$((limit + 10))" build/loadclient --port "$PORT" -n "$n" -m "$M" \
			--rate "$RATE" --duration "$SECS" --payload "$PAYLOAD" --ramp "$RAMP" \
			--timeout "$PHASE_TIMEOUT" --hold "$HOLD" --max-time "$limit" \
			--pid "$MEAS_PID" --label "$s" > "$out" 2>&1 &
		PIDS+=("$!")    # waited in the background, so that a signal is handled at once
		wait "$!"
		rc=$?
		grep -v '^RESULT' "$out"
		[ $rc = 0 ] || echo "!! loadclient exit status $rc"
		if kill -0 "$MEAS_PID" 2>/dev/null; then
			grep '^RESULT' "$out" | sed "s/^RESULT /server=$s /" >> "$RESULTS"
		else
			echo "!! the $s server died during the run (its figures are dropped); its log:"
			tail -n 20 "$log"
			echo "server=$s n=$n died=1" >> "$RESULTS"
		fi
		stop "$SRV_PID" "$MEAS_PID"
		PORT=$((PORT + 1))
	done
done

[ -s "$RESULTS" ] || { echo "no results"; exit 1; }

# The tables: one per N, servers side by side, then the ratios and the targets.
awk -v servers="$RUN_SERVERS" -v mode="$MODE" -v rate="$RATE" -v secs="$SECS" -v m="$M" \
    -v payload="$PAYLOAD" -f bench/fanout_table.awk "$RESULTS"
