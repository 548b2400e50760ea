# Tables for bench/fanout.sh: reads "server=S n=N key=value ..." lines (the
# loadclient RESULT lines) and prints, per N, the servers side by side, the
# ratios, and issue 4's targets for the sse server against Nchan.
# Variables: servers (run order), rate, secs, m, payload.

function has(s, n) { return ((s SUBSEP n SUBSEP "n") in R) && !((s SUBSEP n SUBSEP "died") in R) }
function raw(s, n, k) { return ((s SUBSEP n SUBSEP k) in R) ? R[s, n, k] + 0 : -1 }
function val(s, n, what,    v, e) {
	if (!has(s, n)) return -1
	if (what == "est") return raw(s, n, "established")
	if (what == "dps") return raw(s, n, "burst_dps")
	if (what == "cpu") return raw(s, n, "burst_sched_us_per_del")
	if (what == "tick") return raw(s, n, "burst_cpu_us_per_del")
	if (what == "idle") return raw(s, n, "idle_b_per_sub")
	if (what == "grow") { v = raw(s, n, "burst_growth_kb"); return v < 0 ? v : v / 1024 }
	if (what == "bp50") { v = raw(s, n, "burst_p50_us"); return v < 0 ? v : v / 1000 }
	if (what == "bp99") { v = raw(s, n, "burst_p99_us"); return v < 0 ? v : v / 1000 }
	if (what == "rp50") { v = raw(s, n, "rate_p50_us"); return v < 0 ? v : v / 1000 }
	if (what == "rp99") { v = raw(s, n, "rate_p99_us"); return v < 0 ? v : v / 1000 }
	if (what == "rcpu") return raw(s, n, "rate_sched_us_per_del")
	if (what == "rtick") return raw(s, n, "rate_cpu_us_per_del")
	if (what == "ccpu") return raw(s, n, "rate_client_cpu_us_per_del")
	if (what == "err") {
		e = raw(s, n, "n") - raw(s, n, "established")
		e += raw(s, n, "conn_errors") + raw(s, n, "bad_status") + raw(s, n, "proto_errors")
		e += raw(s, n, "closed") + raw(s, n, "missing") + raw(s, n, "dups")
		e += raw(s, n, "unparsed") + raw(s, n, "pub_err") + raw(s, n, "timeouts")
		return e
	}
	return -1
}
function fmt(v, d) { return v < 0 ? "-" : sprintf("%." d "f", v) }
function ratio(a, b) { return (a < 0 || b <= 0) ? "-" : sprintf("%.2fx", a / b) }
function target(label, a, b, limit, unit, d,    r, ok) {
	if (a < 0 || b <= 0) { printf "  %-40s n/a\n", label; return }
	r = a / b
	ok = r <= limit ? "met" : "NOT met"
	printf "  %-40s %s: %s vs %s %s, ratio %.2f (target <= %.2f)\n", label, ok, fmt(a, d), fmt(b, d), unit, r, limit
}

{
	delete kv
	for (i = 1; i <= NF; i++) {
		eq = index($i, "=")
		if (eq) kv[substr($i, 1, eq - 1)] = substr($i, eq + 1)
	}
	s = kv["server"]; n = kv["n"]
	for (k in kv) R[s, n, k] = kv[k]
	if (!(n in seen)) { seen[n] = 1; order[++nn] = n }
}

END {
	ns = split(servers, S, " ")
	npair = 0
	split("sse:nchan sse:luv luv:nchan", P, " ")
	for (i = 1; i <= 3; i++) {
		split(P[i], ab, ":")
		if (index(" " servers " ", " " ab[1] " ") && index(" " servers " ", " " ab[2] " ")) {
			npair++; PA[npair] = ab[1]; PB[npair] = ab[2]
		}
	}
	nm = split("est dps cpu tick idle grow bp50 bp99 rp50 rp99 rcpu rtick ccpu err", MET, " ")
	L["est"] = "subscribers established";          D["est"] = 0
	L["dps"] = "deliveries/s in the burst";        D["dps"] = 0
	L["cpu"] = "server CPU us/delivery, burst";    D["cpu"] = 2
	L["tick"] = "  same, from utime+stime (10 ms ticks)"; D["tick"] = 2
	L["idle"] = "server RSS per idle subscriber, B"; D["idle"] = 0
	L["grow"] = "server RSS growth idle->peak, MB"; D["grow"] = 1
	L["bp50"] = "latency p50 in the burst, ms";    D["bp50"] = 0
	L["bp99"] = "latency p99 in the burst, ms";    D["bp99"] = 0
	L["rp50"] = "latency p50 at fixed rate, ms";   D["rp50"] = 2
	L["rp99"] = "latency p99 at fixed rate, ms";   D["rp99"] = 2
	L["rcpu"] = "server CPU us/delivery, fixed rate"; D["rcpu"] = 2
	L["rtick"] = "  same, from utime+stime (10 ms ticks)"; D["rtick"] = 2
	L["ccpu"] = "  load client CPU us/delivery, rate"; D["ccpu"] = 2
	L["err"] = "errors (all kinds)";               D["err"] = 0
	for (j = 1; j <= nn; j++) {
		n = order[j]
		printf "\n== %s subscribers: burst of %s events, %s events/s for %s s, %s-byte data\n", \
			n, m, rate, secs, payload
		printf "%-38s", ""
		for (i = 1; i <= ns; i++) printf " %10s", S[i]
		for (i = 1; i <= npair; i++) printf " %10s", PA[i] "/" PB[i]
		printf "\n"
		for (k = 1; k <= nm; k++) {
			w = MET[k]
			printf "%-38s", L[w]
			for (i = 1; i <= ns; i++)
				printf " %10s", (w == "est" && ((S[i] SUBSEP n SUBSEP "died") in R)) ? "died" : fmt(val(S[i], n, w), D[w])
			if (w != "est" && w != "err" && w != "ccpu" && w != "tick" && w != "rtick")
				for (i = 1; i <= npair; i++) printf " %10s", ratio(val(PA[i], n, w), val(PB[i], n, w))
			printf "\n"
		}
		if (has("sse", n) && has("nchan", n)) {
			printf "issue 4 targets (stated at 10,000 subscribers), sse vs nchan:\n"
			target("server CPU per delivery in the burst", val("sse", n, "cpu"), val("nchan", n, "cpu"), 1 / 3, "us", 2)
			target("p99 latency at the fixed rate", val("sse", n, "rp99"), val("nchan", n, "rp99"), 1 / 3, "ms", 1)
			target("RSS growth during the burst", val("sse", n, "grow"), val("nchan", n, "grow"), 1 / 4, "MB", 1)
			v = val("sse", n, "idle")
			printf "  %-40s %s: %s B (target <= 1536 B)\n", "RSS per idle subscriber", \
				(v >= 0 && v <= 1536) ? "met" : "NOT met", fmt(v, 0)
		}
	}
}
