#!/usr/bin/env bash
# Large events: LARGE_N subscribers, a burst of LARGE_M events of LARGE_PAYLOAD
# bytes each, pipelined in one write. Figures: server CPU per delivery and in
# all, latency p50/p99/max from publish to receipt, the burst's wall time, RSS
# growth. Shows whether one subscriber's backlog holds the others up.
#
#   bench/large.sh                  5,000 subscribers, 50 x 16 KB, 3 runs per server
#   LARGE_SHORT=1 bench/large.sh    500 subscribers, 20 x 16 KB, 1 run (CI)
#   BENCH_BEFORE=main bench/large.sh     adds the sse-before column (main's library)
#
# Environment: LARGE_N (5000), LARGE_M (50), LARGE_PAYLOAD (16384 bytes of data),
# LARGE_OUTBOX (the sse servers' per-subscriber outbox limit, 4 MiB: the whole
# burst fits, so nobody is dropped, as nobody is in Nchan), BENCH_SERVERS
# ("sse nchan"), and those of bench/lib.sh.
if [ "${LARGE_SHORT:-0}" = 1 ]; then
	: "${LARGE_N:=500}" "${LARGE_M:=20}" "${BENCH_RUNS:=1}"
fi
N=${LARGE_N:-5000}
M=${LARGE_M:-50}
PAYLOAD=${LARGE_PAYLOAD:-16384}
SSE_SERVER_ARGS="${SSE_SERVER_ARGS:-} --outbox-limit ${LARGE_OUTBOX:-4194304}"
# shellcheck source=bench/lib.sh
. "$(dirname "$0")/lib.sh"

pick_servers "${BENCH_SERVERS:-sse nchan}"
[ -n "$RUN_SERVERS" ] || { echo "no server can run"; exit 1; }
header "large events: $N subscribers, burst of $M x $PAYLOAD-byte events"

run_matrix large $((N / 5000 + PHASE_TIMEOUT * 8 + 60)) -n "$N" -m "$M" --rate 0 \
	--payload "$PAYLOAD" --timeout "$PHASE_TIMEOUT"

table large "large events: $N subscribers, burst of $M x $PAYLOAD B (median [min..max] of $RUNS)" \
"burst_deliveries|deliveries||0;\
burst_sched_us_per_del|server CPU us per delivery||2;\
burst_cpu_us_per_del|  same, from utime+stime (10 ms ticks)||2;\
burst_cpu_us|server CPU in the burst, s|1e-6|2;\
burst_s|burst wall time (send -> last delivery), s||2;\
burst_p50_us|latency p50, ms|1e-3|0;\
burst_p99_us|latency p99, ms|1e-3|0;\
burst_max_us|latency max, ms|1e-3|0;\
burst_first_p50_us|each subscriber's first event, p50 ms|1e-3|0;\
burst_first_p99_us|each subscriber's first event, p99 ms|1e-3|0;\
burst_growth_kb|server RSS growth idle -> peak, MB|0.0009765625|1;\
burst_client_cpu_us|load client CPU in the burst, s|1e-6|2;\
errors|errors (all kinds)||0" "sse/nchan sse/sse-before"
echo "(issue 10's target for sse: p99 no worse than Nchan's, CPU no worse than before)"
