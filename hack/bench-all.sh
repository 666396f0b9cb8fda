#!/usr/bin/env bash
# bench-all: run every whole-tool benchmark (hack/bench-*.sh) one after the other and write
# one markdown table of every figure: the date, the machine (cores, memory, the disk the
# benchmarks write to and its filesystem), the sealos version, then one row per figure
# (sealos, the peer, the median of the per-run ratios, the floor and sealos' multiple of
# it), the notes each benchmark gives (what a floor is, what still favours sealos) and
# each benchmark's full output beside the table (LOGS/).
#
#   hack/bench-all.sh [SEALOS_BINARY]          (make bench; as root for build, store, apply)
#
# env:
#   BENCH_OUT     the markdown file (default .bench/results-DATE.md); printed at the end too
#   BENCH_ONLY    benchmarks to run, by name (default "build registry save sync store apply
#                 startup hub-s3")
#   BENCH_KUBE=1  also bench-kube (needs the Kubernetes image: make kube-binaries)
#   BENCH_TMP     where the benchmarks' scratch directories go (default .bench/scratch): the
#                 disk the table names
#   every script's own knobs pass through: RUNS (default 3 everywhere but bench-kube, which
#   takes BENCH_RUNS, default 1, and bench-startup, STARTUP_RUNS, default 20), SIZE_MB (build and apply), IMAGES and MB_PER_IMAGE (save),
#   BENCH_REPOS and LAYER_SIZE (sync), LAYERS and SMALL_IMAGES (store), LARGE and SMALL (registry),
#   BENCH_DROP_CACHES=0 (keep the page cache between timed commands).
# Benchmarks never run at once: they would time each other.
set -euo pipefail
cd "$(dirname "$0")/.."
HERE=$(pwd)
BIN=$(realpath "${1:-bin/sealos}")
[ -x "$BIN" ] || { echo "bench-all: no sealos binary at $BIN (make build)" >&2; exit 1; }
STAMP=$(date +%Y-%m-%d-%H%M%S)
OUT=$(realpath -m "${BENCH_OUT:-.bench/results-$STAMP.md}")
LOGS=${OUT%.md}-logs
TMP=$(realpath -m "${BENCH_TMP:-.bench/scratch}")
ONLY=${BENCH_ONLY:-build registry save sync store apply startup hub-s3}
[ "${BENCH_KUBE:-}" != 1 ] || ONLY="$ONLY kube"
mkdir -p "$(dirname "$OUT")" "$LOGS" "$TMP"
export TMPDIR=$TMP
RESULTS=$LOGS/results.txt
: >"$RESULTS"

# The machine, before anything runs.
cores=$(nproc)
cpu=$(awk -F': ' '/^model name/{print $2; exit}' /proc/cpuinfo)
mem=$(awk '/^MemTotal/{printf "%.1f GiB", $2/1048576}' /proc/meminfo)
disk=$(df -hT "$TMP" | awk 'NR==2{printf "%s (%s), %s, %s free", $1, $2, $3, $5}')
kernel=$(uname -r)
load=$(cut -d' ' -f1-3 /proc/loadavg)
version=$("$BIN" version 2>/dev/null | sed -n 1p)
rev=$(git describe --tags --always --dirty 2>/dev/null || echo unknown)

declare -A STATUS
for b in $ONLY; do
	script=hack/bench-$b.sh
	[ -x "$script" ] || { echo "bench-all: no $script" >&2; STATUS[$b]="no script"; continue; }
	if [ "$(id -u)" != 0 ] && [[ " build store apply kube " == *" $b "* ]]; then
		echo "bench-all: bench-$b needs root: skipped" >&2; STATUS[$b]="skipped (needs root)"; continue
	fi
	echo "== bench-$b ($(date +%T)), log: $LOGS/bench-$b.log" >&2
	start=$(date +%s)
	if BENCH_RESULTS=$RESULTS "./$script" "$BIN" >"$LOGS/bench-$b.log" 2>&1; then
		STATUS[$b]="ok, $(($(date +%s) - start)) s"
	else
		STATUS[$b]="FAILED (exit $?, see bench-$b.log)"
		tail -20 "$LOGS/bench-$b.log" >&2
	fi
	grep -v '^RESULT|\|^NOTE|' "$LOGS/bench-$b.log" | tail -n 30 >&2 || true
done

md() { sed 's/|/\\|/g'; } # a table cell
{
	echo "# sealos benchmarks, $(date '+%Y-%m-%d %H:%M %Z')"
	echo
	echo "- machine: $cores cores ($cpu), $mem memory, kernel $kernel, load at start $load"
	echo "- disk (the benchmarks' scratch, $TMP): $disk"
	echo "- sealos: $version ($rev)"
	echo "- runs: ${RUNS:-${BENCH_RUNS:-3}} per benchmark (bench-kube: ${BENCH_RUNS:-1}); page cache $([ "${BENCH_DROP_CACHES:-1}" != 0 ] && [ "$(id -u)" = 0 ] && echo "dropped" || echo "kept") and \`sync\` before every timed command, \`sync\` at its end (timed); tools alternate going first"
	knobs=$(for k in SIZE_MB IMAGES MB_PER_IMAGE BENCH_REPOS LAYER_SIZE LAYERS SMALL_IMAGES LARGE SMALL JOBS; do [ -z "${!k:-}" ] || printf '%s=%s ' "$k" "${!k}"; done)
	[ -z "$knobs" ] || echo "- sizes: $knobs(defaults otherwise)"
	echo "- sealos/floor: sealos' time as a multiple of the same bytes through the plainest path on this machine"
	echo
	echo "| bench | figure | peer | sealos s | peer s | peer/sealos (median of runs) | floor s | sealos/floor | note |"
	echo "|---|---|---|---:|---:|---:|---:|---:|---|"
	while IFS='|' read -r tag bench row peer ours peer_s ratio floor note; do
		[ "$tag" = RESULT ] || continue
		mult=$(awk -v o="$ours" -v f="$floor" 'BEGIN{ if (f != "-" && f > 0 && o != "-") printf "%.2fx", o/f; else print "-" }')
		[ "$ratio" = - ] || ratio=${ratio}x
		printf '| %s | %s | %s | %s | %s | %s | %s | %s | %s |\n' "$bench" "$(md <<<"$row")" "$(md <<<"$peer")" "$ours" "$peer_s" "$ratio" "$floor" "$mult" "$(md <<<"$note")"
	done <"$RESULTS"
	echo
	echo "| benchmark | status |"
	echo "|---|---|"
	for b in $ONLY; do echo "| bench-$b | ${STATUS[$b]:-not run} |"; done
	if grep -q '^NOTE|' "$RESULTS"; then
		echo
		echo "Notes:"
		grep '^NOTE|' "$RESULTS" | while IFS='|' read -r _ bench text; do echo "- $bench: $text"; done
	fi
	echo
	echo "Full output of each benchmark: $LOGS/"
} >"$OUT"
cat "$OUT"
echo "(written to $OUT)" >&2
for b in $ONLY; do [[ "${STATUS[$b]:-}" != FAILED* ]] || exit 1; done
