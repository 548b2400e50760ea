#!/usr/bin/env bash
# Reconnect storm: STORM_N clients connect at once, each with a Last-Event-ID
# STORM_REPLAY events behind, so each replays that many events from the
# server's buffer, then stays live. Figures: server CPU per replayed delivery
# (and per client), the wall time of the storm, connect -> caught up per client.
#
#   bench/storm.sh                  10,000 clients x 100 events, 3 runs per server
#   STORM_SHORT=1 bench/storm.sh    1,000 clients x 100 events, sse and nchan, 1 run (CI)
#   BENCH_BEFORE=main bench/storm.sh     adds the sse-before column (main's library)
#
# Environment: STORM_N (10000), STORM_REPLAY (100), STORM_PENDING (handshakes in
# flight, 1024), STORM_RAMP (connections/s, 0 = as fast as they complete),
# BENCH_SERVERS ("sse nchan nchan-oldest"), and those of bench/lib.sh.
#
# How: one subscriber gets a warm-up event and learns its id; STORM_REPLAY events
# are published (pipelined) and stored; once the server is idle, the storm
# clients connect with "Last-Event-ID: <warm-up id>" (nchan-oldest: none, on a
# location with nchan_subscriber_first_message oldest and a buffer of exactly
# STORM_REPLAY messages). Each must receive exactly those events, in order.
# Server CPU is counted from the first storm connect until the server is idle
# again, so it includes accepting and parsing each connection.
if [ "${STORM_SHORT:-0}" = 1 ]; then
	: "${STORM_N:=1000}" "${BENCH_RUNS:=1}" "${BENCH_SERVERS:=sse nchan}"
fi
N=${STORM_N:-10000}
REPLAY=${STORM_REPLAY:-100}
PENDING=${STORM_PENDING:-1024}
RAMP=${STORM_RAMP:-0}
# shellcheck source=bench/lib.sh
. "$(dirname "$0")/lib.sh"
NCHAN_OLDEST_BUFLEN=$REPLAY

client_args() {
	case $1 in
	nchan-oldest) echo "--storm-path /sub_oldest --storm-lastid 0" ;;
	esac
}

pick_servers "${BENCH_SERVERS:-sse nchan nchan-oldest}"
[ -n "$RUN_SERVERS" ] || { echo "no server can run"; exit 1; }
header "reconnect storm: $N clients x $REPLAY replayed events, $PENDING handshakes in flight"

run_matrix storm $((PHASE_TIMEOUT * 8 + 60)) -n 1 -m 0 --rate 0 --settle 200 \
	--storm "$N" --replay "$REPLAY" --storm-pending "$PENDING" --storm-ramp "$RAMP" \
	--timeout "$PHASE_TIMEOUT"

table storm "reconnect storm: $N clients, each replaying $REPLAY events (median [min..max] of $RUNS)" \
"storm_done|clients caught up||0;\
storm_deliveries|replayed deliveries||0;\
storm_sched_us_per_del|server CPU us per replayed delivery||3;\
storm_cpu_us_per_del|  same, from utime+stime (10 ms ticks)||3;\
storm_sched_us_per_client|server CPU us per client (accept, parse, attach, replay)||1;\
storm_s|storm wall time, s||2;\
storm_p50_us|connect -> caught up, p50 ms|1e-3|1;\
storm_p99_us|connect -> caught up, p99 ms|1e-3|1;\
storm_client_cpu_us|load client CPU during the storm, s|1e-6|2;\
errors|errors (all kinds)||0" "sse/nchan sse/nchan-oldest sse/sse-before"
echo "(issue 10's target for sse: <= 0.4 us of server CPU per replayed delivery)"
