# mk/auth.mk - issue 13 (authorization, JWT, limits), included by the Makefile
# after its variables; uses BUILD, CC, WARN, ALL_CFLAGS, ALL_LDFLAGS,
# SAN_FLAGS, CORE_SRCS, UV_CFLAGS, UV_LIBS.
#
# sse.jwt_core: JWT verification (csrc/core/jwt.c, json.c, utf8.c) with
# libcrypto, as a module of its own so that sse.core does not depend on it.
#
#   make bench-jwt     the cost of one verification per algorithm (bench/jwt_bench.lua)
#   make bench-topics  heap bytes per topic and per subscription in the C hub

CRYPTO_CFLAGS ?= $(shell pkg-config --cflags libcrypto 2>/dev/null)
CRYPTO_LIBS   ?= $(shell pkg-config --libs libcrypto 2>/dev/null || echo -lcrypto)

JWT_CORE_SRCS := csrc/core/jwt.c csrc/core/json.c csrc/core/utf8.c
JWT_SRCS      := $(JWT_CORE_SRCS) csrc/lua/lua_jwt.c
JWT_MODULE    := $(BUILD)/sse/jwt_core.so
JWT_OBJS      := $(patsubst csrc/%.c,$(BUILD)/obj/%.o,$(JWT_SRCS))
JWT_CTEST     := $(BUILD)/ctest/test_jwt

$(JWT_OBJS): ALL_CFLAGS += $(CRYPTO_CFLAGS)

$(JWT_MODULE): $(JWT_OBJS)
	@mkdir -p $(dir $@)
	$(CC) $(ALL_LDFLAGS) -o $@ $(JWT_OBJS) $(CRYPTO_LIBS) -lm

$(JWT_CTEST): csrc/test/test_jwt.c csrc/test/check.h $(JWT_CORE_SRCS) csrc/core/jwt.h csrc/core/json.h
	@mkdir -p $(dir $@)
	$(CC) -std=gnu99 $(WARN) -O1 -g $(SAN_FLAGS) -Icsrc/core $(CRYPTO_CFLAGS) -o $@ $< \
	  $(JWT_CORE_SRCS) $(CRYPTO_LIBS) -lm

# the fuzz target needs libcrypto (the pattern rule of mk/robust.mk does not link it)
$(BUILD)/fuzz/fuzz_jwt: csrc/fuzz/fuzz_jwt.c $(JWT_CORE_SRCS) csrc/core/jwt.h csrc/core/json.h
	@mkdir -p $(dir $@)
	$(FUZZ_CC) $(FUZZ_FLAGS) $(WARN) -Icsrc/core $(CRYPTO_CFLAGS) -o $@ $< $(JWT_CORE_SRCS) \
	  $(CRYPTO_LIBS) -lm

.PHONY: bench-jwt
bench-jwt: $(JWT_MODULE)
	$(BENCH_ENV) $(LUA) bench/jwt_bench.lua

$(BUILD)/bench/topic_mem: bench/topic_mem.c $(CORE_SRCS) $(CORE_HDRS)
	@mkdir -p $(dir $@)
	$(CC) -std=gnu99 $(WARN) -O2 -g -Icsrc/core $(UV_CFLAGS) -o $@ $< $(CORE_SRCS) $(UV_LIBS) $(Z_LIBS)

.PHONY: bench-topics
bench-topics: $(BUILD)/bench/topic_mem
	$(BUILD)/bench/topic_mem
