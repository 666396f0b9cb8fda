#!/usr/bin/env bash
# bench-registry: push and pull, in one run, (a) 1 GiB in four layers and (b) 64 layers of
# 1 MiB, with sealos against the hub (`sealos registry serve`) and with crane against the
# stock distribution registry, both on a filesystem directory of the same disk. Prints
# median seconds and MB/s, each run's ratio (crane time / sealos time of the back-to-back
# pair: > 1 means sealos is faster) with their median, the time of a re-push of an
# unchanged image, and floor lines (the large layers written with dd + fsync, and read back
# with O_DIRECT).
#
# Concurrency: sealos push/pull move 8 blobs at once by default (-j), crane 4 (ggcr's
# remote default; `crane push` and `crane pull` have no flag to change it), so the default
# rows favour sealos wherever more streams help; the "-j 4" rows run sealos at crane's 4.
# Before every timed command: `sync` and, as root, the page cache dropped
# (hack/bench-lib.sh), and a `sync` at its end, inside the time; the tools take turns at
# going first.
#
# usage: hack/bench-registry.sh SEALOS_BIN
# env: BENCH_RUNS (or RUNS, default 3), LARGE (default 4x256MiB), SMALL (default 64x1MiB),
# BENCH_VERBOSE=1 prints every timing, BENCH_KEEP=1 keeps the data
# needs: crane and registry (distribution) in PATH or $(go env GOPATH)/bin:
#   go install github.com/google/go-containerregistry/cmd/crane@v0.22.1
#   go install github.com/distribution/distribution/v3/cmd/registry@v3.1.2
set -euo pipefail

SEALOS=${1:?usage: $0 SEALOS_BIN}
SEALOS=$(readlink -f "$SEALOS")
HERE=$(cd "$(dirname "$0")/.." && pwd)
. "$HERE/hack/bench-lib.sh"
export PATH="$PATH:$(go env GOPATH)/bin"
for t in crane registry; do
	command -v "$t" >/dev/null || { echo "bench-registry: $t not found; see the header of $0" >&2; exit 1; }
done

WORK=${BENCH_DIR:-$(mktemp -d "${TMPDIR:-/tmp}/bench-registry.XXXXXX")}
mkdir -p "$WORK"
PIDS=()
cleanup() {
	for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
	wait 2>/dev/null || true
	[ -n "${BENCH_KEEP:-}" ] || rm -rf "$WORK"
}
trap cleanup EXIT

now() { date +%s.%N; }
secs() { awk -v a="$1" -v b="$2" 'BEGIN{printf "%.3f", b-a}'; }
median() { sort -n | awk '{ r[NR] = $1 } END { printf "%.2f", (NR % 2) ? r[(NR + 1) / 2] : (r[NR / 2] + r[NR / 2 + 1]) / 2 }'; }

echo "== preparing data in $WORK"
go build -o "$WORK/benchdata" "$HERE/hack/benchdata"
"$WORK/benchdata" -out "$WORK/layouts" -store "$WORK/root" -ref-prefix "bench/" \
	-images "large=${LARGE:-4x256MiB},small=${SMALL:-64x1MiB}" >"$WORK/images.txt"
cat "$WORK/images.txt"

# The hub (sealos) and the stock distribution registry, each on its own empty directory.
bench_sealos_hub "$SEALOS" "$WORK"
bench_stock_registry "$WORK"

# A VM whose balloon reports freed memory to its host (free page reporting) gets those
# pages back slowly: each first touch faults on the host. Here a 1 GiB write into the page
# cache took 0.2-0.9 s or 2.6-5 s depending on which pages it got, for either tool, so the
# pulls (which fill the page cache) swing most. The kernel's counter, where it has one,
# says how much of that happened during the run.
REPORTED=/sys/module/page_reporting/parameters/reported_kib
reported_kib() { cat "$REPORTED" 2>/dev/null || echo 0; }
reported_at_start=$(reported_kib)

RUNS=${BENCH_RUNS:-${RUNS:-3}}
declare -A T
size_of() { du -sb "$WORK/layouts/$1/blobs" | awk '{print $1}'; }
# run KEY CMD...: times CMD (settled before, synced at the end), appends the time to
# $WORK/KEY.times and keeps the best of all runs under KEY.
run() {
	local key=$1; shift
	[ -z "${BEFORE:-}" ] || eval "$BEFORE"
	bench_settle
	local s e t
	s=$(now)
	"$@" >"$WORK/$key.out" 2>"$WORK/$key.err" || { echo "FAILED: $*" >&2; cat "$WORK/$key.err" >&2; exit 1; }
	sync
	e=$(now)
	t=$(secs "$s" "$e")
	[ -z "${BENCH_VERBOSE:-}" ] || echo "   $key: $t s" >&2
	echo "$t" >>"$WORK/$key.times"
	if [ -z "${T[$key]:-}" ] || awk -v a="$t" -v b="${T[$key]}" 'BEGIN{exit !(a<b)}'; then T[$key]=$t; fi
}

for r in $(seq "$RUNS"); do
	echo "== run $r of $RUNS"
	# Each run pushes to new repositories, so every blob is sent again. The tools take
	# turns at going first: this disk slows down as a run writes more, and the first
	# writer of a run has the faster disk.
	# pair KEY SEALOS_CMD... -- CRANE_CMD... [-- SEALOS_J4_CMD...]: odd runs sealos, (sealos
	# -j 4,) crane; even runs the other way round.
	pair() {
		local key=$1; shift
		local s=() c=() j=()
		while [ "$1" != "--" ]; do s+=("$1"); shift; done
		shift
		while [ $# -gt 0 ] && [ "$1" != "--" ]; do c+=("$1"); shift; done
		if [ $# -gt 0 ]; then shift; j=("$@"); fi
		if [ $((r % 2)) -eq 1 ]; then
			run "sealos-$key" "${s[@]}"
			[ ${#j[@]} -eq 0 ] || run "sealosj4-$key" "${j[@]}"
			run "crane-$key" "${c[@]}"
		else
			run "crane-$key" "${c[@]}"
			[ ${#j[@]} -eq 0 ] || run "sealosj4-$key" "${j[@]}"
			run "sealos-$key" "${s[@]}"
		fi
	}
	for img in large small; do
		pair "push-$img" "$SEALOS" --root "$WORK/root" push -q "bench/$img:v1" "$HUB/bench/$img-$r:v1" \
			-- crane push --insecure "$WORK/layouts/$img" "$STOCK/bench/$img-$r:v1" \
			-- "$SEALOS" --root "$WORK/root" push -q -j 4 "bench/$img:v1" "$HUB/bench/$img-j4-$r:v1"
	done
	# Before each pull (untimed), the last pull's output is deleted, so both tools of a
	# pair write into memory in the same state: the second no longer runs with the
	# first's 1 GiB still in the page cache (free page reporting, above, makes memory
	# that was freed a while ago slow to touch again).
	BEFORE='rm -rf "$WORK/pullroot" "$WORK/cranepull"'
	for img in large small; do
		pair "pull-$img" "$SEALOS" --root "$WORK/pullroot" pull -q "$HUB/bench/$img-$r:v1" \
			-- crane pull --insecure --format oci "$STOCK/bench/$img-$r:v1" "$WORK/cranepull" \
			-- "$SEALOS" --root "$WORK/pullroot" pull -q -j 4 "$HUB/bench/$img-j4-$r:v1"
	done
	BEFORE=
	# the small pull once more, untimed, for the time it takes inside sealos (after
	# process start), from its debug log
	rm -rf "$WORK/pullroot"
	"$SEALOS" --root "$WORK/pullroot" --debug pull -q "$HUB/bench/small-$r:v1" 2>&1 >/dev/null |
		grep -o 'pull: done.*elapsed=[0-9.]*[mµ]*s' | sed 's/.*elapsed=//' >>"$WORK/pull-inner.txt" || true
	rm -rf "$WORK/pullroot"
	pair "repush-small" "$SEALOS" --root "$WORK/root" --debug push -q "bench/small:v1" "$HUB/bench/small-$r:v1" \
		-- crane push --insecure "$WORK/layouts/small" "$STOCK/bench/small-$r:v1"
	# the push itself, without process start: from the debug log of that run
	grep -o 'manifest already.*elapsed=[0-9.]*[mµ]*s' "$WORK/sealos-repush-small.err" | sed 's/.*elapsed=//' >>"$WORK/repush-inner.txt" || true
	# References, measured in the same run: the large image's layers copied with dd and
	# one fsync each at the end (what a registry that writes first and syncs last costs on
	# this disk), and process start.
	mkdir -p "$WORK/floor"
	run "ref-disk" bash -c 'for f in "$@"; do dd if="$f" of="$0/$(basename "$f")" bs=1M conv=fsync status=none & done; wait' \
		"$WORK/floor" $(find "$WORK/layouts/large/blobs" -type f -size +1M)
	rm -rf "$WORK/floor"
	# and the same layers read back from the hub's disk with O_DIRECT: the hub stages big
	# blobs with O_DIRECT (durable.DirectWriter), so the first pull after a push reads
	# them from the disk, where the stock registry's are still in the page cache
	run "ref-disk-read" bash -c 'for f in "$@"; do h=$(basename "$f"); dd if="$0/${h:0:2}/$h/data" of=/dev/null bs=1M iflag=direct status=none & done; wait' \
		"$WORK/hub/docker/registry/v2/blobs/sha256" $(find "$WORK/layouts/large/blobs" -type f -size +1M)
	run "ref-start-sealos" "$SEALOS" version
	run "ref-start-crane" crane version
done
rm -rf "$WORK/pullroot" "$WORK/cranepull"

# Digests must be identical everywhere.
for img in large small; do
	want=$(awk -v n="$img" '$1==n{print $3}' "$WORK/images.txt")
	got=$(crane digest --insecure "$HUB/bench/$img-1:v1")
	[ "$want" = "$got" ] || { echo "digest mismatch for $img: built $want, hub has $got" >&2; exit 1; }
done

echo
echo "bench-registry: $RUNS runs, tools taking turns at going first; $(bench_cache_state)"
echo "  times are medians; ratio = median of the per-run crane/sealos ratios (> 1: sealos is faster)"
bench_note bench-registry "peer: crane $(crane version), $(registry --version 2>/dev/null | head -1)"
for op in push pull; do
	for img in large small; do
		b=$(size_of "$img")
		fl=-
		[ "$img" != large ] || { [ "$op" = push ] && fl=$WORK/ref-disk.times || fl=$WORK/ref-disk-read.times; }
		fn="floor: dd of the large layers, in parallel, conv=fsync"
		[ "$op" = push ] || fn="floor: the large layers read from the hub's disk with dd iflag=direct, in parallel"
		mbs() { awk -v b="$b" -v s="$(bench_med "$1")" 'BEGIN{ if (s > 0) printf "%.1f", b/s/1e6 }'; }
		note="$b bytes; sealos $(mbs "$WORK/sealos-$op-$img.times") MB/s, crane $(mbs "$WORK/crane-$op-$img.times") MB/s; favours sealos: 8 blobs at once against crane's 4"
		[ "$img" != large ] || note="$note; $fn"
		bench_result bench-registry "$op $img" "crane + distribution" "$WORK/sealos-$op-$img.times" "$WORK/crane-$op-$img.times" "$fl" "$note"
		bench_result bench-registry "$op $img, sealos -j 4" "crane + distribution (4 at once)" "$WORK/sealosj4-$op-$img.times" "$WORK/crane-$op-$img.times" "$fl" \
			"equal concurrency; sealos $(mbs "$WORK/sealosj4-$op-$img.times") MB/s"
	done
done
bench_result bench-registry "re-push unchanged small" "crane + distribution" "$WORK/sealos-repush-small.times" "$WORK/crane-repush-small.times" - \
	"includes process start and the registry handshake"
[ -s "$WORK/pull-inner.txt" ] && echo "pull small inside sealos (after process start), per run: $(tr '\n' ' ' <"$WORK/pull-inner.txt")"
# The small pull with each tool's process start (its best `version` time: a single start
# can swing by 100 ms here) taken off: what the transfer costs, apart from the ~20 ms
# sealos spends in package init (Helm's dependencies are half of it; chart rendering is
# in-process by design).
ratios=$(paste "$WORK/crane-pull-small.times" "$WORK/sealos-pull-small.times" |
	awk -v cs="${T[ref-start-crane]}" -v ss="${T[ref-start-sealos]}" '{ printf "%.2f\n", ($1 - cs) / ($2 - ss) }')
printf '%-28s per-run ratios: %s(median %sx)\n' "pull small - process start" "$(sed 's/$/x/' <<<"$ratios" | tr '\n' ' ')" \
	"$(median <<<"$ratios")"
[ -s "$WORK/repush-inner.txt" ] && echo "re-push inside sealos (connect + one manifest HEAD), per run: $(tr '\n' ' ' <"$WORK/repush-inner.txt")"
awk -v d="${T[ref-disk]}" -v s="${T[sealos-push-large]}" -v c="${T[crane-push-large]}" -v b="$(size_of large)" 'BEGIN{
	printf "disk (best runs): the large layers copied with dd conv=fsync (in parallel, one fsync each at the end): %.3f s (%.1f MB/s); push large takes %.2fx that with sealos, %.2fx with crane\n", d, b/d/1e6, s/d, c/d }'
awk -v d="${T[ref-disk-read]}" -v s="${T[sealos-pull-large]}" -v b="$(size_of large)" 'BEGIN{
	printf "disk: the same layers read from the hub'"'"'s disk with dd iflag=direct (in parallel): %.3f s (%.1f MB/s); pull large takes %.2fx that with sealos (best runs; the page cache is dropped before every timed command unless BENCH_DROP_CACHES=0, so both tools'"'"' pulls read the blobs from the disk)\n", d, b/d/1e6, s/d }'
awk -v s="${T[ref-start-sealos]}" -v c="${T[ref-start-crane]}" 'BEGIN{
	printf "process start (version): sealos %.0f ms, crane %.0f ms\n", s*1000, c*1000 }'
if [ -r "$REPORTED" ]; then
	awk -v k=$(($(reported_kib) - reported_at_start)) 'BEGIN{
		printf "free page reporting: this VM gave %.1f GiB of freed memory back to its host during the run (see the note above reported_kib() in this script)\n", k/1048576 }'
fi
echo "(targets: large push >= 1.5x, small push and pull >= 2x, re-push < 50 ms)"
