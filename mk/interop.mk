# mk/interop.mk - `make interop` (in `make test`): the project's output read by clients it
# did not write (spec/interop/: eventsource-parser, npm eventsource, Chromium).
# INTEROP_STRICT=1 fails on the checks tagged known; INTEROP_SEED=n picks the streams.
.PHONY: interop

interop:
	$(MAKE) --no-print-directory LUA=lua5.4 SAN= all
	$(MAKE) --no-print-directory LUA=luajit SAN= all   # the nginx demo hub's
	sh spec/interop/run.sh
