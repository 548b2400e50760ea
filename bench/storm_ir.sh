#!/usr/bin/env bash
# User-space instructions per storm client, counted by callgrind: a figure
# the shared machine's noise does not move (CPU time per delivery swings by
# up to 1.5x between minutes; instruction counts repeat to ~1 %). Kernel work
# (accept, read, send, the loopback delivery) is not in it: bench/storm.sh
# measures the whole.
#
#   bench/storm_ir.sh                  this tree, 1,000 and 2,000 storm clients x 100
#   bench/storm_ir.sh TREE...          each tree (a checkout with build/lua5.4 built)
#
# How: the storm server (bench/fanout_server.lua, Lua's default GC) runs under
# valgrind --tool=callgrind; a storm of N clients resumes after the warm-up
# event (100 replayed each), then the clients hold their streams while the
# counts are dumped. The figure is (Ir at 2N - Ir at N) / N: start-up and the
# warm-up cancel out. Environment: STORM_IR_N (1000), STORM_REPLAY (100).
set -u
ROOT=$(cd "$(dirname "$0")/.." && pwd)
N=${STORM_IR_N:-1000}
REPLAY=${STORM_REPLAY:-100}
command -v valgrind > /dev/null || { echo "storm_ir: needs valgrind (apt-get install valgrind)"; exit 1; }
if [ ! -x "$ROOT/build/loadclient" ] || [ "$ROOT/bench/loadclient.c" -nt "$ROOT/build/loadclient" ]; then
	mkdir -p "$ROOT/build" && cc -O2 -Wall -Wextra -o "$ROOT/build/loadclient" "$ROOT/bench/loadclient.c" || exit 1
fi
TMP=$(mktemp -d /tmp/storm_ir.XXXXXX) || exit 1
PIDS=()
cleanup() {
	for p in "${PIDS[@]}"; do kill -9 "$p" 2> /dev/null; done
	rm -rf "$TMP"
}
trap cleanup EXIT

free_port() {
	local p=$((20000 + RANDOM % 20000))
	while (echo > "/dev/tcp/127.0.0.1/$p") 2> /dev/null; do p=$((p + 1)); done
	echo "$p"
}

# total_ir TREE CLIENTS -> the server's instruction count up to the end of a storm
total_ir() {
	local tree=$1 n=$2 port out srv cli
	port=$(free_port)
	out=$TMP/cg.$port
	LUA_PATH="$tree/lua/?.lua;$tree/lua/?/init.lua;;" LUA_CPATH="$tree/build/lua5.4/?.so;;" \
		valgrind --tool=callgrind --callgrind-out-file="$out" \
		lua5.4 "$tree/bench/fanout_server.lua" --port "$port" > "$TMP/srv.$port.log" 2>&1 &
	srv=$!
	PIDS+=("$srv")
	for _ in $(seq 1 150); do
		(echo > "/dev/tcp/127.0.0.1/$port") 2> /dev/null && break
		sleep 0.2
	done
	timeout 300 "$ROOT/build/loadclient" --port "$port" -n 1 -m 0 --rate 0 --settle 500 \
		--storm "$n" --replay "$REPLAY" --storm-pending 1024 --storm-ramp 0 --timeout 120 \
		--hold 60 --label ir > "$TMP/cli.$port.log" 2>&1 &
	cli=$!
	PIDS+=("$cli")
	for _ in $(seq 1 900); do
		grep -q "connect -> caught up" "$TMP/cli.$port.log" && break
		sleep 0.2
	done
	if ! grep -q "storm: $n clients x $REPLAY replayed events: $n caught up" "$TMP/cli.$port.log"; then
		echo "storm_ir: the storm of $n did not complete on $tree:" >&2
		tail -n 5 "$TMP/cli.$port.log" >&2
		return 1
	fi
	sleep 1
	callgrind_control -d "$srv" > /dev/null 2>&1
	sleep 1
	kill "$cli" 2> /dev/null
	kill -9 "$srv" 2> /dev/null
	wait "$srv" 2> /dev/null
	awk '/^summary:/ {print $2}' "$out".* | head -n 1
}

[ $# -gt 0 ] || set -- "$ROOT"
echo "user-space instructions per storm client (callgrind; $N and $((2 * N)) clients x $REPLAY replayed)"
for tree in "$@"; do
	tree=$(cd "$tree" && pwd)
	a=$(total_ir "$tree" "$N") || continue
	b=$(total_ir "$tree" $((2 * N))) || continue
	awk -v a="$a" -v b="$b" -v n="$N" -v t="$tree" \
		'BEGIN {printf "%-40s %8.1fk instructions per client\n", t, (b - a) / n / 1000}'
done
