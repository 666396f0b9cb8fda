# bench-lib.sh: what every hack/bench-*.sh shares, sourced, not run.
#
# The rules the benchmarks keep, so a figure compares the tools and not the machine's mood:
#   - bench_settle before every timed command: `sync` (nobody pays for the dirty pages of
#     whoever ran before) and, as root, drop the page cache (both tools start from the
#     same cold cache; BENCH_DROP_CACHES=0 keeps it, then both read a warm cache).
#   - every timed command ends with a `sync` inside its time: a tool is done when its
#     bytes are on disk, so one that leaves gigabytes dirty (or fsyncs less) gains nothing.
#   - bench_order alternates which tool goes first from one run to the next.
#   - RUNS runs (default 3); the figure is the median of the per-run ratios peer/ours
#     (the two tools of a run ran back to back), the times beside it are medians.
#   - a floor line: the same bytes through the plainest path on this machine, and our
#     multiple of it.
#   - results also as machine-readable lines, on stdout and appended to $BENCH_RESULTS when
#     set (hack/bench-all.sh collects them into one markdown table):
#       RESULT|bench|row|peer|ours_s|peer_s|ratio|floor_s|note
#     ratio = median of per-run peer/ours (> 1: sealos is faster); "-" where there is none.

bench_now() { date +%s.%N; }
bench_secs() { awk -v a="$1" -v b="$2" 'BEGIN{printf "%.3f", b-a}'; }

# bench_settle: write back dirty pages, and drop the page cache as root (see above).
bench_settle() {
	sync
	if [ "${BENCH_DROP_CACHES:-1}" != 0 ] && [ "$(id -u)" = 0 ]; then
		echo 3 >/proc/sys/vm/drop_caches 2>/dev/null || true
	fi
}
bench_cache_state() {
	if [ "${BENCH_DROP_CACHES:-1}" != 0 ] && [ "$(id -u)" = 0 ]; then echo "sync + page cache dropped before every timed command, sync at its end (timed)"
	else echo "sync before every timed command (page cache kept: BENCH_DROP_CACHES=0 or not root), sync at its end (timed)"; fi
}

# bench_timed FILE CMD...: settle, run CMD (stdout and stderr to FILE.out/.err) and `sync`,
# append the seconds of both to FILE. Exits the script when CMD fails.
bench_timed() {
	local f=$1; shift
	bench_settle
	local s e
	s=$(bench_now)
	"$@" >"$f.out" 2>"$f.err" || { echo "FAILED: $*" >&2; tail -30 "$f.err" >&2; exit 1; }
	sync
	e=$(bench_now)
	echo "$(bench_secs "$s" "$e")" >>"$f"
	[ -z "${BENCH_VERBOSE:-}" ] || echo "   $(basename "$f"): $(tail -1 "$f") s" >&2
}

# bench_order RUN FIRST SECOND: odd runs FIRST then SECOND, even runs the other way round.
bench_order() {
	if [ $(($1 % 2)) -eq 1 ]; then "$2"; "$3"; else "$3"; "$2"; fi
}

# bench_median: the median of the numbers on stdin, one a line ("-" when there are none).
bench_median() {
	sort -g | awk '{ r[NR] = $1 } END { if (NR == 0) { print "-"; exit }
		printf "%.3f", (NR % 2) ? r[(NR + 1) / 2] : (r[NR / 2] + r[NR / 2 + 1]) / 2 }'
}
bench_med() { if [ -s "$1" ]; then bench_median <"$1"; else echo -; fi; }

# bench_ratios OURS_FILE PEER_FILE: the per-run ratios peer/ours, one a line.
bench_ratios() { paste "$1" "$2" | awk '$1 > 0 && $2 != "" { printf "%.2f\n", $2 / $1 }'; }

# bench_result BENCH ROW PEER OURS_FILE PEER_FILE FLOOR_FILE [NOTE]: prints the row for
# people and the RESULT line. PEER_FILE and FLOOR_FILE may be "-" (no peer, no floor).
bench_result() {
	local bench=$1 row=$2 peer=$3 of=$4 pf=$5 ff=$6 note=${7:-}
	local o p fl ratios r
	o=$(bench_med "$of")
	p=-; r=-; ratios=
	if [ "$pf" != - ]; then
		p=$(bench_med "$pf")
		ratios=$(bench_ratios "$of" "$pf")
		r=$(bench_median <<<"$ratios")
		[ "$r" = - ] || r=$(awk -v r="$r" 'BEGIN{printf "%.2f", r}')
	fi
	fl=-
	[ "$ff" = - ] || fl=$(bench_med "$ff")
	printf '  %-44s sealos %8ss' "$row" "$o"
	[ "$pf" = - ] || printf '  %s %8ss  ratio %sx (per run: %s)' "$peer" "$p" "$r" "$(tr '\n' ' ' <<<"$ratios" | sed 's/ $//')"
	[ "$ff" = - ] || printf '  floor %ss (sealos = %sx floor)' "$fl" "$(awk -v o="$o" -v f="$fl" 'BEGIN{ if (f > 0) printf "%.2f", o/f; else print "-" }')"
	printf '\n'
	[ -z "$note" ] || printf '  %-44s (%s)\n' "" "$note"
	local line="RESULT|$bench|$row|$peer|$o|$p|$r|$fl|$note"
	echo "$line"
	[ -z "${BENCH_RESULTS:-}" ] || echo "$line" >>"$BENCH_RESULTS"
}

# bench_note BENCH TEXT: a remark for the reader (what a floor measures, what still favours
# sealos), as a NOTE line that hack/bench-all.sh prints under the table.
bench_note() {
	echo "NOTE|$1|$2"
	[ -z "${BENCH_RESULTS:-}" ] || echo "NOTE|$1|$2" >>"$BENCH_RESULTS"
}

# bench_free_port prints a loopback port nothing listens on (bash only: no python needed),
# below the kernel's ephemeral range: a port there may be the source port of a client's
# connection, which a connect test does not see and a bind then fails on.
bench_free_port() {
	local p low
	low=$(awk '{print $1}' /proc/sys/net/ipv4/ip_local_port_range 2>/dev/null || echo 32768)
	for _ in $(seq 200); do
		p=$((10000 + RANDOM % (low - 10000)))
		if ! (exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null; then echo "$p"; return; fi
	done
	echo "no free port" >&2; exit 1
}

# bench_wait_up HOST:PORT waits until a registry answers /v2/ there.
bench_wait_up() {
	for _ in $(seq 100); do curl -fs "http://$1/v2/" >/dev/null 2>&1 && return 0; sleep 0.1; done
	echo "registry $1 did not start" >&2; exit 1
}

# bench_stock_registry DIR: starts the stock distribution registry (`registry serve`) on
# the filesystem directory DIR/stock, deletes enabled, no logs or tracing; adds its pid to
# PIDS and sets STOCK to its host:port once it answers.
bench_stock_registry() {
	local port; port=$(bench_free_port)
	cat >"$1/stock.yml" <<YAML
version: 0.1
log:
  level: error
  accesslog:
    disabled: true
storage:
  filesystem:
    rootdirectory: $1/stock
  delete:
    enabled: true
  cache:
    blobdescriptor: inmemory
http:
  addr: 127.0.0.1:$port
YAML
	OTEL_TRACES_EXPORTER=none OTEL_METRICS_EXPORTER=none OTEL_LOGS_EXPORTER=none registry serve "$1/stock.yml" >"$1/stock.log" 2>&1 &
	PIDS+=($!)
	STOCK=127.0.0.1:$port
	bench_wait_up "$STOCK"
}

# bench_sealos_hub SEALOS DIR: starts the hub (`sealos registry serve filesystem DIR/hub`);
# adds its pid to PIDS and sets HUB to its host:port once it answers.
bench_sealos_hub() {
	local port; port=$(bench_free_port)
	"$1" registry serve filesystem "$2/hub" --port "$port" --address 127.0.0.1 >"$2/hub.log" 2>&1 &
	PIDS+=($!)
	HUB=127.0.0.1:$port
	bench_wait_up "$HUB"
}

# bench_need NAME TOOL...: exits unless every TOOL is on PATH (GOPATH/bin added).
bench_need() {
	local name=$1; shift
	export PATH="$PATH:$(go env GOPATH)/bin"
	for t in "$@"; do
		command -v "$t" >/dev/null || { echo "$name: $t not found (make deps)" >&2; exit 1; }
	done
}

# bench_workdir NAME: a scratch directory in WORK, and an exit trap that stops what the
# script started (PIDS), prints the tails of its logs if it failed, and removes WORK.
bench_workdir() {
	WORK=$(mktemp -d "${TMPDIR:-/tmp}/$1.XXXXXX")
	PIDS=()
	trap bench_cleanup EXIT
}
bench_cleanup() {
	local rc=$?
	for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
	wait 2>/dev/null || true
	if [ "$rc" != 0 ]; then
		for f in "$WORK"/*.log; do [ -e "$f" ] && { echo "== $f"; tail -5 "$f"; }; done >&2
	fi
	rm -rf "$WORK"
}
