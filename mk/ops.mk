# mk/ops.mk - issue 14 (metrics, compressed streams, typed events, streaming
# from code, commands), included by the Makefile after its variables; uses
# LUA, BUILD, MODULE, BENCH_ENV.
#
#   make bench-metrics   sse.metrics.render and GET /metrics at 20 and 100,000
#                        topics, beside GET /stats (bench/metrics_bench.lua)

.PHONY: bench-metrics
bench-metrics: $(MODULE)
	$(BENCH_ENV) $(LUA) bench/metrics_bench.lua
