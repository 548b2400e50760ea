# mk/ops.mk - issue 14 (metrics, compressed streams, typed events, streaming
# from code, commands), included by the Makefile after its variables; uses
# LUA, BUILD, MODULE, BENCH_ENV.
#
#   make bench-metrics   sse.metrics.render and GET /metrics at 20 and 100,000
#                        topics, beside GET /stats (bench/metrics_bench.lua)
#   make bench-gzip      a compressed stream's memory, ratio and CPU per
#                        delivery on JSON events, per setting (bench/gzip_bench.c)

.PHONY: bench-metrics
bench-metrics: $(MODULE)
	$(BENCH_ENV) $(LUA) bench/metrics_bench.lua

$(BUILD)/bench/gzip_bench: bench/gzip_bench.c csrc/core/gzip.c csrc/core/gzip.h
	@mkdir -p $(dir $@)
	$(CC) -std=gnu99 $(WARN) -O2 -g -Icsrc/core $(Z_CFLAGS) -o $@ $< csrc/core/gzip.c $(Z_LIBS)

.PHONY: bench-gzip
bench-gzip: $(BUILD)/bench/gzip_bench
	$(BUILD)/bench/gzip_bench
