# mk/robust.mk - robustness targets (issue 6), included at the end of the
# Makefile: `include mk/robust.mk`. Uses LUA, BUILD, BUSTED, CC, WARN,
# CORE_SRCS, UV_CFLAGS, UV_LIBS and test_env from it. docs/RELIABILITY.md
# says what each target tries and what it found.
#
#   make fuzz [FUZZ_TIME=60]   every csrc/fuzz/fuzz_*.c under libFuzzer, FUZZ_TIME s each
#   make fuzz-short            the same for FUZZ_SHORT_TIME (6) s each (CI: under a minute in all)
#   make valgrind              VALGRIND_SPECS under memcheck, no leak allowed
#   make fault                 spec/fault_spec.lua (SSE_FAULT_FULL=1: the full form)
#   make fault-san             the fault specs against the ASan+UBSan build

.PHONY: fuzz fuzz-short fuzz-build valgrind fault fault-san

# --- fuzzing ---------------------------------------------------------------
FUZZ_CC         ?= clang
FUZZ_TIME       ?= 60
FUZZ_SHORT_TIME ?= 6
FUZZ_FLAGS      ?= -g -O1 -std=gnu99 -fsanitize=fuzzer,address,undefined \
                   -fno-sanitize-recover=all -fno-omit-frame-pointer
# extra libFuzzer options, e.g. FUZZ_ARGS=-jobs=2
FUZZ_ARGS       ?=
FUZZ_DIR        := $(BUILD)/fuzz
FUZZ_TARGETS    := $(patsubst csrc/fuzz/fuzz_%.c,%,$(wildcard csrc/fuzz/fuzz_*.c))
FUZZ_BINS       := $(patsubst %,$(FUZZ_DIR)/fuzz_%,$(FUZZ_TARGETS))

# Each target is linked with the whole core (one rule for all; the linker
# keeps what it uses).
$(FUZZ_DIR)/fuzz_%: csrc/fuzz/fuzz_%.c $(CORE_SRCS) $(CORE_HDRS)
	@mkdir -p $(dir $@)
	$(FUZZ_CC) $(FUZZ_FLAGS) $(WARN) -Icsrc/core $(UV_CFLAGS) -o $@ $< $(CORE_SRCS) $(UV_LIBS) $(Z_LIBS)

fuzz-build: $(FUZZ_BINS)

# $(call fuzz_run,SECONDS): run every target for SECONDS on its scratch
# corpus $(FUZZ_DIR)/corpus/NAME (kept between runs; new inputs go there)
# plus the repository's csrc/fuzz/corpus/NAME (read only). A crash, leak or
# sanitizer report fails the target; its input is left in $(FUZZ_DIR)/
# artifacts/, and becomes a regression spec or a seed once understood.
define fuzz_run
	@set -e; for t in $(FUZZ_TARGETS); do \
	  mkdir -p $(FUZZ_DIR)/corpus/$$t $(FUZZ_DIR)/artifacts csrc/fuzz/corpus/$$t; \
	  log=$(FUZZ_DIR)/$$t.log; \
	  if ! $(FUZZ_DIR)/fuzz_$$t -max_total_time=$(1) -timeout=10 -rss_limit_mb=2048 \
	       -print_final_stats=1 -artifact_prefix=$(FUZZ_DIR)/artifacts/$$t- $(FUZZ_ARGS) \
	       $(FUZZ_DIR)/corpus/$$t csrc/fuzz/corpus/$$t >$$log 2>&1; then \
	    tail -n 40 $$log; echo "fuzz_$$t: FAILED (log: $$log, input: $(FUZZ_DIR)/artifacts/)"; exit 1; \
	  fi; \
	  runs=$$(sed -n 's/^stat::number_of_executed_units: *//p' $$log); \
	  cov=$$(grep -o 'cov: [0-9]*' $$log | tail -n 1); \
	  echo "fuzz_$$t: $$runs runs in $(1) s, $$cov, corpus $$(ls $(FUZZ_DIR)/corpus/$$t | wc -l) + $$(ls csrc/fuzz/corpus/$$t | wc -l) inputs, no crash"; \
	done
endef

fuzz: $(FUZZ_BINS)
	$(call fuzz_run,$(FUZZ_TIME))

fuzz-short: $(FUZZ_BINS)
	$(call fuzz_run,$(FUZZ_SHORT_TIME))

# --- valgrind --------------------------------------------------------------
# A plain -O1 -g build (no sanitizer) of the module; busted is run by the
# interpreter itself (--ignore-lua: no re-exec through a shell) so memcheck
# sees the whole process. Lua frees everything at lua_close (busted exits
# with os.exit(code, true)), so any block still unreachable then is a leak.
VALGRIND        ?= valgrind
VG_BUILD        ?= build/$(LUA)-vg
VALGRIND_SPECS  ?= spec/app_spec.lua spec/hub_spec.lua spec/attach_spec.lua spec/reentry_spec.lua spec/stream_spec.lua \
                   spec/jwt_spec.lua spec/encode_spec.lua spec/event_spec.lua spec/builder_spec.lua spec/compress_spec.lua \
                   spec/listen_spec.lua
VALGRIND_FLAGS  ?= --leak-check=full --show-leak-kinds=definite --errors-for-leak-kinds=definite \
                   --error-exitcode=99 --num-callers=30 --suppressions=mk/valgrind.supp
VALGRIND_LOG    := $(VG_BUILD)/valgrind.log

valgrind:
	$(MAKE) --no-print-directory BUILD=$(VG_BUILD) OPT=-O1 SAN= all
	@echo "valgrind: $(VALGRIND_SPECS) (log: $(VALGRIND_LOG))"
	@$(call test_env,$(VG_BUILD)) $(VALGRIND) $(VALGRIND_FLAGS) --log-file=$(VALGRIND_LOG) \
	  $(LUA) $$(command -v $(BUSTED)) --ignore-lua $(VALGRIND_SPECS) \
	  || { tail -n 60 $(VALGRIND_LOG); echo "valgrind: FAILED"; exit 1; }
	@grep -E "ERROR SUMMARY|definitely lost|All heap blocks were freed" $(VALGRIND_LOG) | sed 's/^==[0-9]*== */valgrind: /'
	@grep -qE "definitely lost: 0 bytes|All heap blocks were freed" $(VALGRIND_LOG) \
	  || { echo "valgrind: no leak summary in $(VALGRIND_LOG)"; exit 1; }

# --- fault specs -------------------------------------------------------------
# FAULT_ARGS: more busted options, e.g. --exclude-tags=known (the specs of
# the open problems in docs/RELIABILITY.md, which fail until they are fixed)
FAULT_ARGS      ?=

fault: $(MODULE)
	SSE_FAULT=1 $(TEST_ENV) $(BUSTED) --lua=$(LUA) $(FAULT_ARGS) spec/fault_spec.lua

fault-san:
	$(MAKE) SAN=1 all
	SSE_FAULT=1 LD_PRELOAD="$(ASAN_RT)" ASAN_OPTIONS=detect_leaks=0:abort_on_error=1 \
	UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
	  $(call test_env,build/$(LUA)-san) $(BUSTED) --lua=$(LUA) $(FAULT_ARGS) spec/fault_spec.lua
