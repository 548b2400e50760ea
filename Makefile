# sse - build, test, run, bench, install.  `make help` lists the targets.
# Every variable below can be overridden: make LUA=luajit, make SAN=1, ...

LUA        ?= lua5.4
# pkg-config package of the Lua headers: lua5.4, lua5.1, or luajit for LuaJIT 2.1
LUA_PC     ?= $(if $(filter luajit%,$(notdir $(LUA))),luajit,$(notdir $(LUA)))
# LUA_INCDIR (given by luarocks, or by hand) names the headers' directory instead
LUA_CFLAGS ?= $(if $(LUA_INCDIR),-I$(LUA_INCDIR),$(shell pkg-config --cflags $(LUA_PC)))
LUA_VER    ?= $(if $(filter luajit%,$(notdir $(LUA))),5.1,$(shell $(LUA) -e 'io.write((_VERSION:gsub("Lua ","")))' 2>/dev/null || echo 5.4))
UV_CFLAGS  ?= $(shell pkg-config --cflags libuv 2>/dev/null)
UV_LIBS    ?= $(shell pkg-config --libs libuv 2>/dev/null || echo -luv)
# zlib: compressed streams (csrc/core/gzip.c)
Z_CFLAGS   ?= $(shell pkg-config --cflags zlib 2>/dev/null)
Z_LIBS     ?= $(shell pkg-config --libs zlib 2>/dev/null || echo -lz)

CC         ?= cc
OPT        ?= -O2
CFLAGS     ?= $(OPT) -g
WARN       := -Wall -Wextra -Wshadow -Wpointer-arith -Wstrict-prototypes \
              -Wmissing-prototypes -Wno-missing-field-initializers
SAN_FLAGS  := -fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=all
ALL_CFLAGS := -std=gnu99 -fPIC -fvisibility=hidden $(WARN) $(CFLAGS) $(if $(SAN),$(SAN_FLAGS)) \
              -Icsrc/core $(LUA_CFLAGS) $(UV_CFLAGS) $(Z_CFLAGS)
# The module is not linked against liblua: the host interpreter provides it.
LDFLAGS    ?=
ALL_LDFLAGS := -shared $(if $(SAN),$(SAN_FLAGS)) $(LDFLAGS)

# One build directory per Lua ABI (objects of one never link into another's
# module); a luarocks build is named by its headers' directory.
BUILD      ?= $(if $(LUA_INCDIR),build/rock-$(notdir $(LUA_INCDIR)),build/$(LUA))$(if $(SAN),-san)
MODULE     := $(BUILD)/sse/core.so

# Plain C data structures (no Lua), then the Lua bindings.
CORE_SRCS  := $(addprefix csrc/core/,utf8.c encode.c frame.c parse.c httphead.c ring.c hub.c gap.c attach.c envelope.c resp.c gzip.c)
BIND_SRCS  := $(addprefix csrc/lua/,lsse.c lua_encode.c lua_parse.c lua_http.c lua_ring.c lua_stream.c lua_reader.c lua_listen.c lua_hub.c lua_resp.c)
CORE_HDRS  := $(wildcard csrc/core/*.h)
BIND_HDRS  := $(wildcard csrc/lua/*.h)
OBJS       := $(patsubst csrc/%.c,$(BUILD)/obj/%.o,$(CORE_SRCS) $(BIND_SRCS))

# sse.jwt_core (JWT verification with libcrypto): a module of its own, so
# sse.core does not link libcrypto; bench-jwt, bench-topics (mk/auth.mk)
include mk/auth.mk
.DEFAULT_GOAL := all
MODULES    := $(MODULE) $(JWT_MODULE)

# C unit tests of the plain data structures, no Lua involved.
CTESTS     := utf8 encode parse httphead ring hub envelope resp
CTEST_BINS := $(patsubst %,$(BUILD)/ctest/test_%,$(CTESTS))

# make install: PREFIX, DESTDIR (a staging root), and each directory on its own
PREFIX     ?= /usr/local
BINDIR     ?= $(PREFIX)/bin
LUA_LIBDIR ?= $(PREFIX)/lib/lua/$(LUA_VER)
LUA_SHAREDIR ?= $(PREFIX)/share/lua/$(LUA_VER)
# yes: the installed sse-hub puts LUA_SHAREDIR and LUA_LIBDIR first on its
# search path, so it runs from any PREFIX (luarocks wraps it itself: no)
HUB_PATHS  ?= yes

# The checkout's Lua search path, for specs, `make run` and benchmarks alike.
LUA_SRC_PATH := lua/?.lua;lua/?/init.lua;spec/?.lua;;
# $(call lua_env,BUILD_DIR): run Lua from the checkout with BUILD_DIR's modules
lua_env     = LUA_PATH="$(LUA_SRC_PATH)" LUA_CPATH="$(1)/?.so;;"
BENCH_ENV   = $(call lua_env,$(BUILD))

BUSTED     ?= busted
# $(call test_env,BUILD_DIR): the environment specs run in
test_env    = $(call lua_env,$(1)) SSE_BUILD="$(1)" SSE_LUA="$(LUA)"
TEST_ENV    = $(call test_env,$(BUILD))

HOST ?= 127.0.0.1
PORT ?= 8080

.PHONY: all help test check ctest lint spec spec-luajit spec-san rock-test browser install uninstall \
        run bench bench-encode bench-parse bench-encode-compare bench-replay bench-envelope bench-hub bench-fanout bench-fanout-short \
        bench-fanout-hold clean deps

all: $(MODULES)

help:
	@echo "make               build $(MODULE) for LUA=$(LUA)"
	@echo "make test          the full check: deps, build, lint, C tests, specs (5.4, LuaJIT, ASan), rock install"
	@echo "make spec          busted specs on Lua 5.4"
	@echo "make spec-luajit   the same specs on LuaJIT (make LUA=luajit build)"
	@echo "make spec-san      the specs against an ASan+UBSan build"
	@echo "make ctest         C unit tests of the core under ASan+UBSan"
	@echo "make rock-test     the rock for Lua 5.1, 5.4, LuaJIT and make install/uninstall, from fresh trees"
	@echo "make browser       the dashboard in headless Chromium (spec/browser/)"
	@echo "make interop       our streams read by eventsource-parser, npm eventsource, Chromium"
	@echo "make fuzz          libFuzzer on every target (FUZZ_TIME=s); fuzz-short for CI"
	@echo "make valgrind      end-to-end specs under valgrind memcheck"
	@echo "make fault         fault and abuse specs (SSE_FAULT_FULL=1: the full form)"
	@echo "make lint          luacheck lua/ spec/ bench/ examples/"
	@echo "make run           start the demo hub (HOST=$(HOST) PORT=$(PORT) ARGS='--token T ...')"
	@echo "make bench         benchmarks that print figures (encode, parse, replay, hub);"
	@echo "                   make bench-fanout: the fan-out benchmark against Nchan"
	@echo "                   make bench-jwt: the cost of verifying one token per algorithm"
	@echo "                   make bench-topics: heap bytes per topic in the C hub"
	@echo "                   make bench-metrics: rendering /metrics at 100,000 topics"
	@echo "                   make bench-gzip: a compressed stream's memory, ratio and CPU per event"
	@echo "make install       install the modules, the Lua layer and the sse-hub and sse-pub commands"
	@echo "                   into PREFIX=$(PREFIX) (DESTDIR=stage, LUA=lua5.1|luajit); make uninstall"

$(BUILD)/obj/%.o: csrc/%.c $(CORE_HDRS) $(BIND_HDRS)
	@mkdir -p $(dir $@)
	$(CC) $(ALL_CFLAGS) -c $< -o $@

$(MODULE): $(OBJS)
	@mkdir -p $(dir $@)
	$(CC) $(ALL_LDFLAGS) -o $@ $(OBJS) $(UV_LIBS) $(Z_LIBS)

# --- tests ---------------------------------------------------------------
deps:
	@sh .ci/deps.sh

test: deps
	$(MAKE) all lint ctest spec spec-luajit spec-san spec-ngx rock-test browser interop

check: test

$(BUILD)/ctest/test_%: csrc/test/test_%.c $(wildcard csrc/test/*.h) $(CORE_SRCS) $(CORE_HDRS)
	@mkdir -p $(dir $@)
	$(CC) -std=gnu99 $(WARN) -O1 -g $(SAN_FLAGS) -Icsrc/core $(UV_CFLAGS) -o $@ $< $(CORE_SRCS) $(UV_LIBS) $(Z_LIBS)

ctest: $(CTEST_BINS) $(JWT_CTEST)
	@set -e; for t in $(CTEST_BINS) $(JWT_CTEST); do echo "== $$t"; $$t; done

lint:
	luacheck -q lua spec bin/sse-hub bin/sse-pub $(shell find bench examples -name "*.lua")

spec: $(MODULES)
	$(TEST_ENV) $(BUSTED) --lua=$(LUA) spec

spec-luajit:
	$(MAKE) LUA=luajit spec

ASAN_RT = $(shell $(CC) -print-file-name=libasan.so):$(shell $(CC) -print-file-name=libubsan.so)
spec-san:
	$(MAKE) SAN=1 all
	LD_PRELOAD="$(ASAN_RT)" ASAN_OPTIONS=detect_leaks=0:abort_on_error=1 \
	UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
	  $(call test_env,build/$(LUA)-san) $(BUSTED) --lua=$(LUA) spec

# the rock for Lua 5.1, 5.4 and LuaJIT from fresh trees, make install/uninstall
rock-test:
	bash .ci/rock-test.sh

# the dashboard in headless Chromium against the demo hub (spec/browser/)
browser:
	$(MAKE) LUA=lua5.4 SAN= all
	sh spec/browser/run.sh

# --- install -------------------------------------------------------------
# every Lua module under lua/sse/ (and the demo hub's dashboard and its browser module, found
# beside sse.app on the Lua search path), relative to lua/
LUA_FILES  := $(patsubst lua/%,%,$(shell find lua/sse -name '*.lua' -o -name '*.html' -o -name '*.js'))

# The installed commands (bin/): the demo hub and the publish command.
COMMANDS   := sse-hub sse-pub
# The commands run the interpreter they were installed for (LUA).
HUB_SHEBANG = $(if $(findstring /,$(LUA)),$(LUA),/usr/bin/env $(LUA))

install: $(MODULES)
	install -d $(DESTDIR)$(LUA_LIBDIR)/sse $(DESTDIR)$(BINDIR)
	install -m 755 $(MODULE) $(DESTDIR)$(LUA_LIBDIR)/sse/core.so
	install -m 755 $(JWT_MODULE) $(DESTDIR)$(LUA_LIBDIR)/sse/jwt_core.so
	@set -e; for f in $(LUA_FILES); do install -D -m 644 lua/$$f $(DESTDIR)$(LUA_SHAREDIR)/$$f; done
	@set -e; for c in $(COMMANDS); do \
	  { echo '#!$(HUB_SHEBANG)'; \
	    if [ "$(HUB_PATHS)" = yes ]; then \
	      echo 'package.path = "$(LUA_SHAREDIR)/?.lua;$(LUA_SHAREDIR)/?/init.lua;" .. package.path'; \
	      echo 'package.cpath = "$(LUA_LIBDIR)/?.so;" .. package.cpath'; \
	    fi; tail -n +2 bin/$$c; } >$(DESTDIR)$(BINDIR)/$$c.tmp; \
	  chmod 755 $(DESTDIR)$(BINDIR)/$$c.tmp; \
	  mv $(DESTDIR)$(BINDIR)/$$c.tmp $(DESTDIR)$(BINDIR)/$$c; \
	done

# removes what install wrote, then the directories it leaves empty
uninstall:
	rm -f $(addprefix $(DESTDIR)$(BINDIR)/,$(COMMANDS)) $(DESTDIR)$(LUA_LIBDIR)/sse/core.so $(DESTDIR)$(LUA_LIBDIR)/sse/jwt_core.so \
	  $(addprefix $(DESTDIR)$(LUA_SHAREDIR)/,$(LUA_FILES))
	@for d in $$(printf '%s\n' $(sort $(dir $(addprefix $(DESTDIR)$(LUA_SHAREDIR)/,$(LUA_FILES)))) | sort -r) \
	  $(DESTDIR)$(LUA_LIBDIR)/sse; do rmdir "$$d" 2>/dev/null || true; done

# --- run and bench -------------------------------------------------------
run:
	@sh .ci/deps.sh run
	$(MAKE) all
	$(call lua_env,$(BUILD)) $(LUA) examples/hub/server.lua --host $(HOST) --port $(PORT) $(ARGS)

bench: bench-encode bench-parse bench-replay bench-hub

bench-replay: $(MODULE)
	$(BENCH_ENV) $(LUA) bench/replay_bench.lua

# envelope mode: fan-out and replay, plain against envelope subscribers
bench-envelope: $(MODULE)
	$(BENCH_ENV) $(LUA) bench/envelope_bench.lua

$(BUILD)/bench/hub_sim: bench/hub_sim.c $(CORE_SRCS) $(CORE_HDRS)
	@mkdir -p $(dir $@)
	$(CC) -std=gnu99 $(WARN) -O2 -g -Icsrc/core $(UV_CFLAGS) -o $@ $< $(CORE_SRCS) $(UV_LIBS) $(Z_LIBS)

bench-hub: $(BUILD)/bench/hub_sim
	$(BUILD)/bench/hub_sim

# the fan-out benchmark against Nchan and a hand-written luv server
# (FANOUT_SHORT=1 for the short form; see bench/README.md)
bench-fanout: $(MODULE)
	$(BENCH_ENV) bash bench/fanout.sh

bench-fanout-short: $(MODULE)
	$(BENCH_ENV) FANOUT_SHORT=1 bash bench/fanout.sh

bench-fanout-hold: $(MODULE)
	$(BENCH_ENV) FANOUT_HOLD=1 bash bench/fanout.sh

# issue 10's speed and memory harnesses (bench/README.md); each prints figures,
# sse beside Nchan (and luv); BENCH_BEFORE=<commit> adds an sse-before column
.PHONY: bench-storm bench-storm-short bench-storm-ir bench-connect bench-connect-short bench-large bench-large-short
bench-storm: $(MODULE)
	bash bench/storm.sh

bench-storm-short: $(MODULE)
	STORM_SHORT=1 bash bench/storm.sh

# the storm server's user-space instructions per client (callgrind): a figure
# the machine's noise does not move (bench/README.md)
bench-storm-ir: $(MODULE)
	bash bench/storm_ir.sh

bench-connect: $(MODULE)
	bash bench/connect.sh

bench-connect-short: $(MODULE)
	CONNECT_SHORT=1 bash bench/connect.sh

bench-large: $(MODULE)
	bash bench/large.sh

bench-large-short: $(MODULE)
	LARGE_SHORT=1 bash bench/large.sh

# issue 12: fan-out through Redis, sse against Nchan, one instance against two
.PHONY: bench-redis bench-redis-short bench-redis-backend
bench-redis: $(MODULE)
	bash bench/redis_fanout.sh

bench-redis-short: $(MODULE)
	REDIS_SHORT=1 bash bench/redis_fanout.sh

bench-redis-backend: $(MODULE)
	$(BENCH_ENV) $(LUA) bench/redis_backend_bench.lua

bench-encode: $(MODULE)
	$(BENCH_ENV) $(LUA) bench/encode_bench.lua

# the client-side parser: ASCII, multi-byte and ill-formed bodies
bench-parse: $(MODULE)
	$(BENCH_ENV) $(LUA) bench/parse_bench.lua

# the encoder on Lua 5.4 and LuaJIT against an older revision's, in one run
# (ENCODE_BEFORE_REV=<git rev>, default the encoder before issue 11's fix)
bench-encode-compare:
	sh bench/encode_compare.sh

clean:
	rm -rf build

# fuzzing, valgrind and fault specs (issue 6)
include mk/robust.mk
include mk/interop.mk
include mk/ngx.mk
# metrics, compression, catalogue, pipe, commands (issue 14)
include mk/ops.mk
