# mk/ngx.mk - OpenResty (issue 11): the nginx specs (in `make test`), the demo
# hub in nginx, the nginx benchmark. Included by the Makefile.
#
#   make spec-ngx                    busted on LuaJIT driving a real nginx (spec/ngx_spec.lua)
#   make run-openresty [PORT=8080] [WORKERS=2] [ARGS='--jwt-secret S --presence ...']
#                                    the demo hub in nginx (examples/openresty/), make run's flags
#   make bench-ngx                   sse.ngx vs Nchan vs a hand-written fan-out (bench/ngx_fanout.sh)
NGX_PKGS := nginx libnginx-mod-http-lua luajit2 libluajit2-5.1-dev
WORKERS  ?= 2

.PHONY: spec-ngx run-openresty bench-ngx bench-ngx-short

spec-ngx:
	$(MAKE) --no-print-directory LUA=luajit SAN= all
	SSE_NGX_SPEC=1 $(call test_env,build/luajit) $(BUSTED) --lua=luajit spec/ngx_spec.lua spec/ngx_app_spec.lua spec/redis_ngx_spec.lua

run-openresty:
	@SSE_EXTRA_PKGS="$(NGX_PKGS)" sh .ci/deps.sh run
	$(MAKE) --no-print-directory LUA=luajit SAN= all
	bash examples/openresty/run.sh $(HOST) $(PORT) $(WORKERS) $(ARGS)

bench-ngx:
	$(MAKE) --no-print-directory LUA=luajit SAN= all
	bash bench/ngx_fanout.sh

bench-ngx-short:
	$(MAKE) --no-print-directory LUA=luajit SAN= all
	NGX_SHORT=1 bash bench/ngx_fanout.sh
