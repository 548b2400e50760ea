# shellcheck shell=bash disable=SC2034  # variables are used by the drivers that source this
# Shared part of the bench/ drivers (sourced by bash, never run): the servers,
# starting and stopping them by PID, the build of an older commit for the
# "before" column, the run matrix and the tables. Everything listens on
# 127.0.0.1; every process started here is stopped by PID on exit.
#
# Servers (BENCH_SERVERS, in the order of the columns):
#   sse            bench/fanout_server.lua on this tree's library, Lua's default GC
#   sse-gcN        the same with collectgarbage("setpause", N), e.g. sse-gc100
#   sse-before     the same script on the library of BENCH_BEFORE=<commit>
#                  (built once in build/before/<sha>/); sse-before-gcN likewise
#   nchan          nginx + Nchan, one worker (bench/nchan/nginx.conf.in)
#   nchan-oldest   the same; storm clients start at the oldest message kept
#   luv            bench/luv_fanout_server.lua, a hand-written luv server
#   sse-bare       bench/bare_server.lua: this tree's Hub and Stream with no
#                  sse.http (the floor under the sse column)
# With BENCH_BEFORE set, sse-before is added after sse when it is not listed.
#
# Common environment: BENCH_RUNS (runs of each server, interleaved), BENCH_LUA
# (lua5.4), BENCH_PORT (first port to try), BENCH_KEEP=1 (keep logs),
# SSE_SERVER_ARGS (extra arguments of the sse servers).
set -u

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT" || exit 1

LUA=${BENCH_LUA:-${FANOUT_LUA:-lua5.4}}
RUNS=${BENCH_RUNS:-3}
SSE_SCRIPT=${BENCH_SSE_SERVER:-bench/fanout_server.lua}
PORT=${BENCH_PORT:-$((10000 + ($$ % 150) * 100))}
PHASE_TIMEOUT=${BENCH_TIMEOUT:-60}
SSE_SERVER_ARGS=${SSE_SERVER_ARGS:-}
NCHAN_BUFLEN=1000          # messages Nchan keeps (nchan-oldest: NCHAN_OLDEST_BUFLEN)

TMP=$(mktemp -d /tmp/bench.XXXXXX) || exit 1
chmod 755 "$TMP"
RESULTS=$TMP/results
: > "$RESULTS"
PIDS=()

bench_cleanup() {
	local p
	for p in "${PIDS[@]}"; do kill -TERM "$p" 2>/dev/null; done
	[ ${#PIDS[@]} -gt 0 ] && sleep 0.3
	for p in "${PIDS[@]}"; do kill -KILL "$p" 2>/dev/null; done
	if [ "${BENCH_KEEP:-0}" = 1 ]; then echo "logs kept in $TMP"; else rm -rf "$TMP"; fi
}
trap bench_cleanup EXIT
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

# stop PID...: TERM, then KILL after 3 s. Only one server runs at a time: this
# forgets PIDS, so that the cleanup never signals a PID reused by someone else.
stop() {
	local p alive
	PIDS=()
	for p in "$@"; do kill -TERM "$p" 2>/dev/null; done
	for _ in $(seq 1 30); do
		alive=0
		for p in "$@"; do kill -0 "$p" 2>/dev/null && alive=1; done
		[ $alive = 0 ] && return 0
		sleep 0.1
	done
	for p in "$@"; do kill -KILL "$p" 2>/dev/null; done
}

# The library tree an sse server name runs on: this tree, or the BENCH_BEFORE build.
sse_tree() {
	case $1 in
	sse-before*) echo "$BEFORE_DIR" ;;
	*) echo "$ROOT" ;;
	esac
}

# The --gc-pause of an sse server name (sse-gc100 -> 100), or nothing.
sse_gc() {
	case $1 in
	*-gc[0-9]*) echo "${1##*-gc}" ;;
	esac
}

# before_build: builds BENCH_BEFORE (a commit) once, from `git archive`, in
# build/before/<sha>/ of this tree; sets BEFORE_DIR and BEFORE_SHA, or returns 1.
before_build() {
	local sha dir
	sha=$(git rev-parse --verify --quiet "${BENCH_BEFORE}^{commit}") || {
		echo "BENCH_BEFORE=$BENCH_BEFORE is not a commit here"; return 1; }
	dir=$ROOT/build/before/$sha
	if [ ! -f "$dir/.extracted" ]; then
		rm -rf "$dir"
		mkdir -p "$dir"
		git archive "$sha" | tar -x -C "$dir" || { echo "git archive $sha failed"; return 1; }
		touch "$dir/.extracted"
	fi
	if ! make -s -C "$dir" LUA="$LUA" all > "$TMP/make-before.log" 2>&1; then
		echo "'make LUA=$LUA' of $sha failed:"; tail -n 20 "$TMP/make-before.log"; return 1
	fi
	BEFORE_DIR=$dir
	BEFORE_SHA=$sha
}

# available SERVER: 0 if it can run here, else prints why and returns 1
available() {
	case $1 in
	nchan|nchan-oldest)
		command -v nginx > /dev/null && [ -f /usr/lib/nginx/modules/ngx_nchan_module.so ] && return 0
		echo "skip $1: nginx or libnginx-mod-nchan is not installed"; return 1 ;;
	luv)
		"$LUA" -e 'require("luv")' 2> /dev/null && return 0
		echo "skip luv: $LUA cannot load luv"; return 1 ;;
	sse-before|sse-before-gc[0-9]*)
		[ -n "${BENCH_BEFORE:-}" ] || { echo "skip $1: BENCH_BEFORE is not set"; return 1; }
		[ -n "${BEFORE_DIR:-}" ] || before_build || { echo "skip $1"; return 1; }
		return 0 ;;
	sse-bare)
		[ "${SSE_BUILT:-0}" = 1 ] && return 0
		if ! make -s LUA="$LUA" all > "$TMP/make.log" 2>&1; then
			echo "skip $1: 'make LUA=$LUA' failed:"; tail -n 20 "$TMP/make.log"; return 1
		fi
		SSE_BUILT=1
		return 0 ;;
	sse|sse-gc[0-9]*)
		[ -f "$SSE_SCRIPT" ] || { echo "skip $1: $SSE_SCRIPT does not exist"; return 1; }
		[ "${SSE_BUILT:-0}" = 1 ] && return 0
		if ! make -s LUA="$LUA" all > "$TMP/make.log" 2>&1; then
			echo "skip $1: 'make LUA=$LUA' failed:"; tail -n 20 "$TMP/make.log"; return 1
		fi
		SSE_BUILT=1
		return 0 ;;
	*)
		echo "skip $1: unknown server (known: sse sse-gcN sse-before sse-before-gcN sse-bare nchan nchan-oldest luv)"
		return 1 ;;
	esac
}

# start_server NAME PORT LOG: sets SRV_PID (to stop) and MEAS_PID (to measure), or returns 1
start_server() {
	local name=$1 port=$2 log=$3 tree gc pre buflen
	SRV_PID='' MEAS_PID=''
	case $name in
	nchan*)
		pre=$TMP/$name-$port
		mkdir -p "$pre/conf" "$pre/logs" "$pre/tmp"
		chmod -R 755 "$pre"
		buflen=$NCHAN_BUFLEN
		[ "$name" = nchan-oldest ] && buflen=${NCHAN_OLDEST_BUFLEN:-$NCHAN_BUFLEN}
		sed -e "s|@PREFIX@|$pre|g" -e "s|@PORT@|$port|g" -e "s|@BUFLEN@|$buflen|g" \
			bench/nchan/nginx.conf.in > "$pre/conf/nginx.conf"
		nginx -p "$pre/" -c conf/nginx.conf > "$log" 2>&1 &
		SRV_PID=$!
		PIDS+=("$SRV_PID")
		wait_port "$port" "$SRV_PID" || return 1
		for _ in $(seq 1 50); do
			MEAS_PID=$(pgrep -P "$SRV_PID" | head -n 1)
			[ -n "$MEAS_PID" ] && break
			sleep 0.05
		done
		[ -n "$MEAS_PID" ] || return 1
		PIDS+=("$MEAS_PID") ;;
	luv)
		"$LUA" bench/luv_fanout_server.lua --port "$port" > "$log" 2>&1 &
		SRV_PID=$!
		MEAS_PID=$SRV_PID
		PIDS+=("$SRV_PID")
		wait_port "$port" "$SRV_PID" || return 1 ;;
	sse-bare)
		LUA_PATH="$ROOT/lua/?.lua;$ROOT/lua/?/init.lua;;" LUA_CPATH="$ROOT/build/$LUA/?.so;;" \
			"$LUA" bench/bare_server.lua --port "$port" > "$log" 2>&1 &
		SRV_PID=$!
		MEAS_PID=$SRV_PID
		PIDS+=("$SRV_PID")
		wait_port "$port" "$SRV_PID" || return 1 ;;
	sse*)
		tree=$(sse_tree "$name")
		gc=$(sse_gc "$name")
		# shellcheck disable=SC2086 # SSE_SERVER_ARGS is a list of words
		LUA_PATH="$tree/lua/?.lua;$tree/lua/?/init.lua;;" LUA_CPATH="$tree/build/$LUA/?.so;;" \
			SSE_GC_PAUSE='' "$LUA" "$SSE_SCRIPT" --port "$port" ${gc:+--gc-pause "$gc"} \
			$SSE_SERVER_ARGS > "$log" 2>&1 &
		SRV_PID=$!
		MEAS_PID=$SRV_PID
		PIDS+=("$SRV_PID")
		wait_port "$port" "$SRV_PID" || return 1 ;;
	esac
}

# pick_servers LIST: sets RUN_SERVERS to those of LIST that can run (plus
# sse-before after sse when BENCH_BEFORE is set)
pick_servers() {
	local s list=$1
	if [ -n "${BENCH_BEFORE:-}" ] && ! [[ " $list " == *" sse-before "* ]]; then
		list=$(echo " $list " | sed 's/ sse / sse sse-before /')
		[[ " $list " == *" sse-before "* ]] || list="$list sse-before"
	fi
	RUN_SERVERS=
	for s in $list; do
		if available "$s"; then RUN_SERVERS="$RUN_SERVERS $s"; fi
	done
	RUN_SERVERS=${RUN_SERVERS# }
}

# run_matrix TAG LIMIT_S ARGS...: BENCH_RUNS rounds; in each, every server of
# RUN_SERVERS is started, measured by `build/loadclient ARGS --pid --label`
# (plus the words `client_args SERVER` prints, when the driver defines it),
# and stopped. Its RESULT line goes to $RESULTS as "tag=TAG server=S run=R ...".
run_matrix() {
	local tag=$1 limit=$2 r s log out rc extra
	shift 2
	for r in $(seq 1 "$RUNS"); do
		for s in $RUN_SERVERS; do
			log=$TMP/$tag-$s-$r.server.log
			out=$TMP/$tag-$s-$r.client.log
			while port_busy "$PORT"; do PORT=$((PORT + 1)); done
			echo "== $tag: $s, run $r of $RUNS (port $PORT)"
			extra=
			if declare -F client_args > /dev/null; then extra=$(client_args "$s"); fi
			if ! start_server "$s" "$PORT" "$log" || ! sleep 0.2 || ! kill -0 "$MEAS_PID" 2>/dev/null; then
				echo "!! $s did not start on port $PORT; its log:"
				tail -n 20 "$log"
				stop "$SRV_PID" ${MEAS_PID:+"$MEAS_PID"}
				echo "tag=$tag server=$s run=$r died=1" >> "$RESULTS"
				PORT=$((PORT + 1))
				continue
			fi
			# shellcheck disable=SC2086 # extra is a list of words
			timeout -k 5 "$((limit + 10))" build/loadclient --port "$PORT" "$@" $extra \
				--max-time "$limit" --pid "$MEAS_PID" --label "$s" > "$out" 2>&1 &
			PIDS+=("$!")    # waited in the background, so that a signal is handled at once
			wait "$!"
			rc=$?
			grep -v '^RESULT' "$out" | sed 's/^/   /'
			[ $rc = 0 ] || echo "!! loadclient exit status $rc"
			if kill -0 "$MEAS_PID" 2>/dev/null; then
				grep '^RESULT' "$out" | sed "s/^RESULT /tag=$tag server=$s run=$r /" >> "$RESULTS"
			else
				echo "!! the $s server died during the run (its figures are dropped); its log:"
				tail -n 20 "$log"
				echo "tag=$tag server=$s run=$r died=1" >> "$RESULTS"
			fi
			stop "$SRV_PID" "$MEAS_PID"
			PORT=$((PORT + 1))
		done
	done
}

# header TEXT: the first line of a driver's output, with the machine
header() {
	echo "$* -- servers: $RUN_SERVERS; $RUNS run(s) each; $(nproc) CPUs; $(uname -r);" \
	     "load $(cut -d' ' -f1-3 /proc/loadavg)"
	echo "tree: $(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null)$(git -C "$ROOT" diff --quiet HEAD 2>/dev/null || echo '+dirty')${BEFORE_SHA:+; sse-before: ${BEFORE_SHA:0:10}}"
}

# table TAG TITLE ROWS [PAIRS]: the figures of TAG, servers side by side, as
# median [min..max] over the runs, and the ratios of the medians for PAIRS
# ("sse/nchan sse/sse-before"). ROWS: "key|label|scale|decimals" entries
# separated by ";" (see bench/table.awk).
table() {
	awk -v tag="$1" -v title="$2" -v rows="$3" -v pairs="${4:-}" -v servers="$RUN_SERVERS" \
		-f bench/table.awk "$RESULTS"
}
