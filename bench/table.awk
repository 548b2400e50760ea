# Tables of the bench/ drivers (bench/lib.sh `table`). Reads the RESULT lines
# "tag=T server=S run=R key=value ..." and prints, for tag, one row per entry of
# rows ("key|label|scale|decimals;..."), one column per server: the median over
# the runs, with [min..max] when there are several, then the ratios of the
# medians for each pair "a/b" of pairs (space-separated) where both ran.
#   scale: a factor (1e-3: us -> ms), or inv:K for K/value (a rate from a cost)
#   key "errors": the sum of every error counter of the run, plus missing
#   connections and phase timeouts
function errors(kv,    e) {
	e = kv["n"] + kv["storm_clients"] - kv["established"]
	e += kv["conn_errors"] + kv["bad_status"] + kv["proto_errors"] + kv["closed"]
	e += kv["missing"] + kv["dups"] + kv["unparsed"] + kv["pub_err"] + kv["timeouts"]
	return e
}
function scaled(v, scale) {
	if (v < 0) return -1
	if (scale ~ /^inv:/) return v > 0 ? substr(scale, 5) / v : -1
	return v * scale
}
function fmt(v, d) { return v < 0 ? "-" : sprintf("%." d "f", v) }
# sorts a[1..n] numerically (n is small)
function isort(a, n,    i, j, t) {
	for (i = 2; i <= n; i++) {
		t = a[i]
		for (j = i - 1; j >= 1 && a[j] > t; j--) a[j + 1] = a[j]
		a[j + 1] = t
	}
}
# median of row r's values for server s; sets MIN and MAX
function median(s, r,    a, n, i) {
	n = CNT[s, r]
	if (!n) return -1
	for (i = 1; i <= n; i++) a[i] = V[s, r, i]
	isort(a, n)
	MIN = a[1]; MAX = a[n]
	return n % 2 ? a[(n + 1) / 2] : (a[n / 2] + a[n / 2 + 1]) / 2
}

$1 == "tag=" tag {
	delete kv
	for (i = 1; i <= NF; i++) {
		eq = index($i, "=")
		if (eq) kv[substr($i, 1, eq - 1)] = substr($i, eq + 1)
	}
	s = kv["server"]
	if ("died" in kv) { DIED[s]++; next }
	RUNS[s]++
	for (r = 1; r <= nr; r++) {
		k = KEY[r]
		if (k == "errors") v = errors(kv)
		else if (k in kv) v = scaled(kv[k] + 0, SCALE[r])
		else continue
		if (v < 0) continue
		CNT[s, r] = CNT[s, r] + 1
		V[s, r, CNT[s, r]] = v
	}
}

BEGIN {
	nr = split(rows, ROW, ";")
	for (r = 1; r <= nr; r++) {
		split(ROW[r], f, "|")
		KEY[r] = f[1]; LABEL[r] = f[2]; SCALE[r] = f[3] == "" ? 1 : f[3]; DEC[r] = f[4] == "" ? 0 : f[4]
	}
	ns = split(servers, S, " ")
}

END {
	w = 0
	for (r = 1; r <= nr; r++) if (length(LABEL[r]) > w) w = length(LABEL[r])
	np = 0
	n2 = split(pairs, PP, " ")
	for (i = 1; i <= n2; i++) {
		split(PP[i], ab, "/")
		if (RUNS[ab[1]] > 0 && RUNS[ab[2]] > 0) { np++; PA[np] = ab[1]; PB[np] = ab[2] }
	}
	# cells first, so that each column is as wide as its widest cell
	for (i = 1; i <= ns; i++) CW[i] = length(S[i])
	for (i = 1; i <= np; i++) PW[i] = length(PA[i] "/" PB[i])
	for (r = 1; r <= nr; r++) {
		k = KEY[r]
		delete MED
		for (i = 1; i <= ns; i++) {
			m = median(S[i], r)
			if (m < 0) cell = RUNS[S[i]] ? "-" : "died"
			else if (CNT[S[i], r] == 1) cell = fmt(m, DEC[r])
			else cell = fmt(m, DEC[r]) " [" fmt(MIN, DEC[r]) ".." fmt(MAX, DEC[r]) "]"
			MED[S[i]] = m
			C[r, i] = cell
			if (length(cell) > CW[i]) CW[i] = length(cell)
		}
		for (i = 1; i <= np; i++) {
			a = MED[PA[i]]; b = MED[PB[i]]
			cell = (k == "errors" || a < 0 || b <= 0) ? "" : sprintf("%.2fx", a / b)
			PC[r, i] = cell
			if (length(cell) > PW[i]) PW[i] = length(cell)
		}
	}
	printf "\n== %s\n", title
	printf "%-" w "s", ""
	for (i = 1; i <= ns; i++) printf " | %" CW[i] "s", S[i]
	for (i = 1; i <= np; i++) printf " | %" PW[i] "s", PA[i] "/" PB[i]
	printf "\n"
	for (r = 1; r <= nr; r++) {
		printf "%-" w "s", LABEL[r]
		for (i = 1; i <= ns; i++) printf " | %" CW[i] "s", C[r, i]
		for (i = 1; i <= np; i++) printf " | %" PW[i] "s", PC[r, i]
		printf "\n"
	}
	for (i = 1; i <= ns; i++)
		if (DIED[S[i]]) printf "(%s: %d run(s) did not start or died; not counted)\n", S[i], DIED[S[i]]
}
