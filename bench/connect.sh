#!/usr/bin/env bash
# Connection set-up and idle memory: CONNECT_N subscribers connect (no
# Last-Event-ID) and stay idle. Figures: server CPU per connection accepted,
# HTTP-parsed and attached (and so connections per second of server CPU), and
# server RSS per idle subscriber, with Lua's default GC (sse) and with
# collectgarbage("setpause", 100) (sse-gc100), beside Nchan and a bare luv server.
#
#   bench/connect.sh                  10,000 subscribers, 3 runs per server
#   CONNECT_SHORT=1 bench/connect.sh  1,000 subscribers, 1 run (CI)
#   BENCH_BEFORE=main bench/connect.sh   adds the sse-before column (main's library)
#
# Environment: CONNECT_N (10000), CONNECT_RAMP (connections/s, 5000),
# CONNECT_PENDING (handshakes in flight, 256), BENCH_SERVERS
# ("sse sse-gc100 nchan luv"), and those of bench/lib.sh.
#
# How: server CPU (schedstat run time, utime+stime beside it) from before the
# first connect until every subscriber is established and the server's CPU time
# has stopped moving; RSS (VmRSS) before the first connect and at that point,
# divided by the subscribers. It includes everything the server keeps per
# connection (for sse: the luv handle, the stream, the C hub's subscriber).
if [ "${CONNECT_SHORT:-0}" = 1 ]; then
	: "${CONNECT_N:=1000}" "${BENCH_RUNS:=1}"
fi
N=${CONNECT_N:-10000}
RAMP=${CONNECT_RAMP:-5000}
PENDING=${CONNECT_PENDING:-256}
# shellcheck source=bench/lib.sh
. "$(dirname "$0")/lib.sh"

pick_servers "${BENCH_SERVERS:-sse sse-gc100 nchan luv}"
[ -n "$RUN_SERVERS" ] || { echo "no server can run"; exit 1; }
header "connection set-up and idle RSS: $N subscribers at <= $RAMP/s, $PENDING handshakes in flight"

run_matrix connect $((N / RAMP + PHASE_TIMEOUT * 8 + 60)) -n "$N" -m 0 --rate 0 \
	--ramp "$RAMP" --pending "$PENDING" --timeout "$PHASE_TIMEOUT"

table connect "connection set-up and idle RSS: $N subscribers (median [min..max] of $RUNS)" \
"established|subscribers established||0;\
connect_sched_us_per_conn|server CPU us per connection (accept, parse, attach)||1;\
connect_us_per_conn|  same, from utime+stime (10 ms ticks)||1;\
connect_sched_us_per_conn|connections per second of server CPU|inv:1000000|0;\
connect_s|connect phase wall time, s||2;\
idle_b_per_sub|server RSS per idle subscriber, B||0;\
warm_b_per_sub|  same after one event to each, B||0;\
rss_idle_kb|server RSS with every subscriber idle, MB|0.0009765625|1;\
errors|errors (all kinds)||0" "sse/nchan sse/luv sse/sse-gc100 sse/sse-before"
echo "(issue 10's targets for sse: <= 1.0 KB per idle subscriber with Lua's default GC; set-up CPU before vs after)"
