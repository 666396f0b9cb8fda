#!/usr/bin/env bash
# bench-sync: copy 20 repositories (~1 GB: each bench/rNN with tag v1 = 3 x 16 MiB layers
# and tag v2 = v1 + 1 MiB) from a source hub to an empty destination hub, in one run, with
#   sealos registry sync SRC DST/sealos                 (--image-jobs 8, --jobs 8)
#   skopeo sync --src docker --dest docker SRC/bench/rNN DST/skopeo/bench, one per
#       repository, 8 at once (sealos' --image-jobs; each copies its layers in parallel)
#   skopeo sync --src yaml --dest docker (every repository in one invocation: one image at
#       a time, skopeo 1.9 has no flag for more, so this row favours sealos)
# cold (empty destination: fresh hubs every run) and again with nothing changed. All hubs
# are `sealos registry serve` on their own directories of the same disk. Before every timed
# command: `sync` and, as root, the page cache dropped (hack/bench-lib.sh), and a `sync` at
# its end, inside the time; sealos and the skopeo peers alternate going first; RUNS runs
# (default 3), the ratio is the median of the per-run ratios skopeo/sealos (> 1 means
# sealos is faster). Then checks that every digest arrived unchanged. Floor line: the
# source's blobs through `cp` + `sha256sum` (+ sync). Targets: cold >= 2x, nothing-changed
# sealos < 1 s.
#
# usage: hack/bench-sync.sh SEALOS_BIN        needs: skopeo, curl, python3
# env: BENCH_REPOS (default 20), LAYER_SIZE (bytes, default 16 MiB), RUNS (or BENCH_RUNS,
# default 3), JOBS (default 8), BENCH_DIR, BENCH_KEEP=1
set -euo pipefail

SEALOS=${1:?usage: $0 SEALOS_BIN}
SEALOS=$(readlink -f "$SEALOS")
HERE=$(cd "$(dirname "$0")/.." && pwd)
command -v skopeo >/dev/null || { echo "bench-sync: skopeo not found (apt-get install skopeo)" >&2; exit 1; }
REPOS=${BENCH_REPOS:-20}
RUNS=${BENCH_RUNS:-${RUNS:-3}}
JOBS=${JOBS:-8}
LAYER_SIZE=${LAYER_SIZE:-16777216}
. "$HERE/hack/bench-lib.sh"

WORK=${BENCH_DIR:-$(mktemp -d "${TMPDIR:-/tmp}/bench-sync.XXXXXX")}
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
declare -A HUBPID
hub() { # NAME: (re)start the hub NAME on an empty directory; sets HUB to its host:port
	local port
	[ -z "${HUBPID[$1]:-}" ] || { kill "${HUBPID[$1]}"; wait "${HUBPID[$1]}" 2>/dev/null || true; }
	[ "$1" = src ] || rm -rf "${WORK:?}/$1"
	port=$(bench_free_port)
	"$SEALOS" registry serve filesystem "$WORK/$1" --port "$port" --address 127.0.0.1 >"$WORK/$1.log" 2>&1 &
	PIDS+=($!)
	HUBPID[$1]=$!
	bench_wait_up "127.0.0.1:$port"
	HUB=127.0.0.1:$port
}

hub src; SRC=$HUB
echo "== seeding $REPOS repositories into $SRC"
go run "$HERE/hack/benchsync" -registry "$SRC" -repos "$REPOS" -size "$LAYER_SIZE" >"$WORK/digests.txt"
BYTES=$(du -sb "$WORK/src/docker/registry/v2/blobs" | awk '{print $1}')
echo "   $(wc -l <"$WORK/digests.txt") tags, $BYTES bytes of blobs"

T=$WORK/times
mkdir -p "$T"
skopeo_docker() { # one skopeo sync per repository, JOBS at once
	seq -f '%02g' 1 "$REPOS" | xargs -P "$JOBS" -I{} skopeo sync --preserve-digests --src docker --dest docker \
		--src-tls-verify=false --dest-tls-verify=false "$SRC/bench/r{}" "$DST/skopeo/bench"
}
cat >"$WORK/sync.yaml" <<YAML
$SRC:
  tls-verify: false
  images:
$(for i in $(seq -f '%02g' 1 "$REPOS"); do echo "    bench/r$i: []"; done)
YAML
skopeo_yaml() {
	skopeo sync --preserve-digests --src yaml --dest docker --dest-tls-verify=false "$WORK/sync.yaml" "$DSTY/skopeo-yaml"
}
floor() { cp -r "$WORK/src/docker/registry/v2/blobs" "$WORK/floor" && find "$WORK/floor" -type f -print0 | xargs -0 sha256sum >/dev/null; }
ours() {
	bench_timed "$T/cold.ours" "$SEALOS" registry sync -q -o json --image-jobs "$JOBS" -j "$JOBS" "$SRC" "$DST/sealos"
	bench_timed "$T/unchanged.ours" "$SEALOS" registry sync -q -o json --image-jobs "$JOBS" -j "$JOBS" "$SRC" "$DST/sealos"
}
peers() {
	bench_timed "$T/cold.docker" skopeo_docker
	bench_timed "$T/unchanged.docker" skopeo_docker
	bench_timed "$T/cold.yaml" skopeo_yaml
	bench_timed "$T/unchanged.yaml" skopeo_yaml
}
for r in $(seq 1 "$RUNS"); do
	echo "== run $r of $RUNS"
	hub dst; DST=$HUB
	hub dsty; DSTY=$HUB
	bench_order "$r" ours peers
	bench_timed "$T/floor" floor; rm -rf "$WORK/floor"
done

# Digests must be identical everywhere.
while read -r ref digest; do
	for where in "$DST/sealos/$ref" "$DST/skopeo/$ref" "$DSTY/skopeo-yaml/${ref#bench/}"; do
		got=$(curl -fsI -H 'Accept: application/vnd.oci.image.manifest.v1+json' "http://${where%%/*}/v2/$(echo "${where#*/}" | sed 's/:\([^:]*\)$/\/manifests\/\1/')" | tr -d '\r' | awk -F': ' 'tolower($1)=="docker-content-digest"{print $2}')
		[ "$got" = "$digest" ] || { echo "digest mismatch at $where: want $digest, got '$got'" >&2; exit 1; }
	done
done <"$WORK/digests.txt"
python3 - "$T/unchanged.ours.out" <<'PY'
import json, sys
r = json.load(open(sys.argv[1]))
print(f"sealos nothing-changed: {r['skipped']} tags skipped, {r['blobs']} blobs sent, "
      f"{r['destinationRequests']} destination requests ({r['destinationHeads']} HEADs)")
PY

echo
echo "bench-sync: $REPOS repositories, $BYTES bytes of blobs; $RUNS runs, sealos and skopeo alternating first; $(bench_cache_state)"
echo "  times include process start; medians; ratio = median of per-run skopeo/sealos (> 1: sealos is faster)"
bench_note bench-sync "peer: $(skopeo --version)"
mbs=$(awk -v b="$BYTES" -v s="$(bench_med "$T/cold.ours")" 'BEGIN{ if (s > 0) printf "%.1f", b/s/1e6 }')
bench_result bench-sync "cold" "skopeo sync per repository, $JOBS at once" "$T/cold.ours" "$T/cold.docker" "$T/floor" "sealos $mbs MB/s; floor: cp + sha256sum of the source blobs"
bench_result bench-sync "cold" "skopeo sync --src yaml (one invocation)" "$T/cold.ours" "$T/cold.yaml" "$T/floor" "favours sealos: skopeo copies one image at a time"
bench_result bench-sync "nothing changed" "skopeo sync per repository, $JOBS at once" "$T/unchanged.ours" "$T/unchanged.docker" -
bench_result bench-sync "nothing changed" "skopeo sync --src yaml (one invocation)" "$T/unchanged.ours" "$T/unchanged.yaml" -
echo "(targets: cold >= 2x faster than skopeo, nothing-changed sealos < 1 s)"
