#!/usr/bin/env bash
# Fan-out benchmark: the sse library's server, Nchan and a hand-written luv server,
# measured side by side in one run by the same C load client (bench/loadclient.c).
#
#   bench/fanout.sh                    N = 1000 and 10000, burst of 100, 5 ev/s for 10 s
#   FANOUT_SHORT=1 bench/fanout.sh     N = 200, burst of 20, 5 ev/s for 2 s (CI smoke)
#   FANOUT_HOLD=1 bench/fanout.sh      19,000 live subscribers per server, held 10 s
#   BENCH_BEFORE=main bench/fanout.sh  adds the sse-before column (main's library)
#
# Environment (all optional):
#   FANOUT_SERVERS  servers to run, in order ("sse nchan luv"; names: bench/lib.sh)
#   FANOUT_N        subscriber counts ("1000 10000")
#   FANOUT_M        burst size in events (100)
#   FANOUT_RATE     fixed-rate phase, events per second (5)
#   FANOUT_SECS     fixed-rate phase length in seconds (10)
#   FANOUT_PAYLOAD  event data bytes (40)
#   FANOUT_RAMP     new connections per second (5000)
#   FANOUT_HOLD_N   subscribers in hold mode (19000); FANOUT_HOLD_SECS (10)
#   FANOUT_PORT, FANOUT_LUA, FANOUT_SSE_SERVER, FANOUT_KEEP=1: as BENCH_PORT,
#   BENCH_LUA, BENCH_SSE_SERVER, BENCH_KEEP of bench/lib.sh
#   BENCH_RUNS      runs of each server (1 here)
#
# Server figures come from /proc/<pid> of the server process only (for nginx: its
# one worker). The sse column runs with Lua's default GC; the figures in
# bench/README.md taken before 2026-11-21's harness change used pause 100
# (FANOUT_SERVERS="sse-gc100 nchan luv" reproduces that).
: "${BENCH_RUNS:=1}"
: "${BENCH_PORT:=${FANOUT_PORT:-}}" "${BENCH_SSE_SERVER:=${FANOUT_SSE_SERVER:-}}"
: "${BENCH_KEEP:=${FANOUT_KEEP:-0}}"
[ -n "$BENCH_PORT" ] || unset BENCH_PORT
[ -n "$BENCH_SSE_SERVER" ] || unset BENCH_SSE_SERVER
export BENCH_RUNS BENCH_KEEP
PAYLOAD=${FANOUT_PAYLOAD:-40}
RAMP=${FANOUT_RAMP:-5000}
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
# shellcheck source=bench/lib.sh
. "$(dirname "$0")/lib.sh"

pick_servers "${FANOUT_SERVERS:-${BENCH_SERVERS:-sse nchan luv}}"
[ -n "$RUN_SERVERS" ] || { echo "no server can run"; exit 1; }
header "fan-out benchmark ($MODE): N = $NS; burst $M events; $RATE events/s for $SECS s;" \
	"$PAYLOAD-byte payload"

for n in $NS; do
	run_matrix "fanout-$n" $((n / RAMP + 8 * PHASE_TIMEOUT + SECS + HOLD + 30)) -n "$n" -m "$M" \
		--rate "$RATE" --duration "$SECS" --payload "$PAYLOAD" --ramp "$RAMP" \
		--timeout "$PHASE_TIMEOUT" --hold "$HOLD"
done

for n in $NS; do
	table "fanout-$n" "$n subscribers: burst of $M events, $RATE events/s for $SECS s, $PAYLOAD-byte data (median [min..max] of $RUNS)" \
"established|subscribers established||0;\
burst_dps|deliveries/s in the burst||0;\
burst_sched_us_per_del|server CPU us/delivery, burst||2;\
burst_cpu_us_per_del|  same, from utime+stime (10 ms ticks)||2;\
idle_b_per_sub|server RSS per idle subscriber, B||0;\
burst_growth_kb|server RSS growth idle->peak, MB|0.0009765625|1;\
burst_p50_us|latency p50 in the burst, ms|1e-3|0;\
burst_p99_us|latency p99 in the burst, ms|1e-3|0;\
rate_p50_us|latency p50 at fixed rate, ms|1e-3|2;\
rate_p99_us|latency p99 at fixed rate, ms|1e-3|2;\
rate_sched_us_per_del|server CPU us/delivery, fixed rate||2;\
rate_cpu_us_per_del|  same, from utime+stime (10 ms ticks)||2;\
rate_client_cpu_us_per_del|  load client CPU us/delivery, rate||2;\
errors|errors (all kinds)||0" "sse/nchan sse/luv luv/nchan sse/sse-before"
done
