#!/usr/bin/env bash
# bench-build: build one ~1 GB context (many small files and a few large ones) with
# `sealos build` and with Debian's `buildah bud` in the same run, cold and unchanged, and
# print both times and the ratios.
#
# Both build the same Kubefile (FROM scratch, COPY of the whole context, labels, CMD).
#   sealos: the embedded BuildKit, exporting into its OCI store with its default layer
#           compression (zstd level 1); also cold with --compression uncompressed.
#   buildah: `buildah bud --layers` into a private containers-storage (overlay driver),
#           which keeps layers uncompressed; --layers is buildah's build cache, without it
#           an unchanged rebuild redoes everything (that is what sealos v5 runs).
# "cold" starts from empty state (engine cache and store / containers-storage). Before every
# timed build: `sync` and, as root, the page cache dropped (hack/bench-lib.sh), so both tools
# read the context from the same cold cache; every timed build ends with `sync` (timed). Every run alternates which tool goes first.
# The figure is the median of the per-run ratios buildah/sealos (wall time).
# Floor lines: the same context through `tar -c | zstd -1 > file; sync` (what the zstd-1
# cold build has to do at least) and `tar -c > file; sync` (the uncompressed build).
# Each tool runs with its default layer format: sealos compresses (zstd-1, more CPU, fewer
# bytes written), buildah stores uncompressed; the uncompressed row is the like-for-like one.
# Nothing here is known to favour sealos.
#
# usage: hack/bench-build.sh [path/to/sealos]   (env: SIZE_MB=1024 KEEP=1 RUNS=3)
set -euo pipefail

SEALOS=${1:-bin/sealos}
SEALOS=$(cd "$(dirname "$SEALOS")" && pwd)/$(basename "$SEALOS")
SIZE_MB=${SIZE_MB:-1024}
RUNS=${BENCH_RUNS:-${RUNS:-3}}
[ "$(id -u)" = 0 ] || { echo "bench-build: run as root (the embedded BuildKit and buildah need it)" >&2; exit 1; }
command -v buildah >/dev/null || { echo "bench-build: buildah is needed (apt-get install buildah)" >&2; exit 1; }
[ -x "$SEALOS" ] || { echo "bench-build: $SEALOS is not built (make build)" >&2; exit 1; }

HERE=$(cd "$(dirname "$0")/.." && pwd)
. "$HERE/hack/bench-lib.sh"
CTX=$HERE/.bench/build-context-$SIZE_MB
W=$(mktemp -d "${TMPDIR:-/tmp}/bench-build.XXXXXX")
cleanup() { [ -n "${KEEP:-}" ] && echo "kept $W" || rm -rf "$W"; }
trap cleanup EXIT

now() { date +%s.%N; }
elapsed() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.2f", b - a }'; }
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (b > 0) printf "%.1fx", a / b; else print "inf" }'; }

# The context: 40 % in ~20,000 small files (1-40 KiB, in 200 directories, like charts,
# manifests and a registry's metadata) and 60 % in 6 large files (like image layers).
# Random bytes: registry blobs are already compressed.
if [ ! -f "$CTX/.complete" ]; then
	echo "generating a ${SIZE_MB} MB context in $CTX ..." >&2
	rm -rf "$CTX"
	mkdir -p "$CTX"
	python3 - "$CTX" "$SIZE_MB" <<'PY'
import os, random, sys
ctx, size_mb = sys.argv[1], int(sys.argv[2])
rnd = random.Random(42)
small_total = size_mb * 1024 * 1024 * 40 // 100
n, written = 0, 0
while written < small_total:
    d = os.path.join(ctx, "registry", "docker", "registry", "v2", "repositories", "d%03d" % (n % 200))
    os.makedirs(d, exist_ok=True)
    size = rnd.randint(1024, 40 * 1024)
    with open(os.path.join(d, "f%05d" % n), "wb") as f:
        f.write(os.urandom(size))
    n += 1
    written += size
big = size_mb * 1024 * 1024 * 60 // 100 // 6
os.makedirs(os.path.join(ctx, "registry", "blobs"), exist_ok=True)
for i in range(6):
    with open(os.path.join(ctx, "registry", "blobs", "layer%d" % i), "wb") as f:
        left = big
        while left > 0:
            chunk = min(left, 8 << 20)
            f.write(os.urandom(chunk))
            left -= chunk
os.makedirs(os.path.join(ctx, "manifests"), exist_ok=True)
with open(os.path.join(ctx, "manifests", "app.yaml"), "w") as f:
    f.write("apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: bench\n")
with open(os.path.join(ctx, "Kubefile"), "w") as f:
    f.write('FROM scratch\nLABEL sealos.io.type=application\nCOPY . .\nCMD ["kubectl apply -f manifests/"]\n')
print("files:", n + 6 + 2, file=sys.stderr)
PY
	touch "$CTX/.complete"
fi
files=$(find "$CTX" -type f | wc -l)
bytes=$(du -sb "$CTX" | cut -f1)
echo "context: $CTX, $files files, $((bytes / 1024 / 1024)) MB" >&2

sealos_build() { # ROOT [extra flags]
	local root=$1; shift
	"$SEALOS" --root "$root" build --progress quiet -t bench:v1 "$@" "$CTX" >/dev/null
}
buildah_build() { # STORAGE [extra flags]
	local st=$1; shift
	buildah --root "$st/storage" --runroot "$st/run" --storage-driver overlay \
		bud --layers --quiet -t bench:v1 "$@" -f "$CTX/Kubefile" "$CTX" >/dev/null
}
clean_buildah() { buildah --root "$1/storage" --runroot "$1/run" --storage-driver overlay rm -a >/dev/null 2>&1 || true
	buildah --root "$1/storage" --runroot "$1/run" --storage-driver overlay rmi -af >/dev/null 2>&1 || true
	rm -rf "$1"; }
# floor_build FILE [zstd]: the context as one tar stream (zstd -1 with "zstd"), written and synced.
floor_build() {
	if [ "${2:-}" = zstd ]; then tar -C "$CTX" -cf - . | zstd -q -1 -T1 >"$1"; else tar -C "$CTX" -cf - . >"$1"; fi
	sync
}

# Every run: each pair back to back (cold and unchanged rebuild, uncompressed, --squash),
# the order alternating between runs; then the floors. T=$W/times/KEY.{ours,peer,floor}.
T=$W/times
mkdir -p "$T"
s_cold() { rm -rf "$W/sealos"; bench_timed "$T/cold.ours" sealos_build "$W/sealos"
	bench_timed "$T/rebuild.ours" sealos_build "$W/sealos"; rm -rf "$W/sealos"; }
b_cold() { clean_buildah "$W/buildah"; bench_timed "$T/cold.peer" buildah_build "$W/buildah"
	bench_timed "$T/rebuild.peer" buildah_build "$W/buildah"; clean_buildah "$W/buildah"
	# buildah's cold time is the peer of the uncompressed row too
	tail -1 "$T/cold.peer" >>"$T/cold-u.peer"; }
s_cold_u() { rm -rf "$W/sealos-u"; bench_timed "$T/cold-u.ours" sealos_build "$W/sealos-u" --compression uncompressed; rm -rf "$W/sealos-u"; }
s_sq() { rm -rf "$W/sealos"; bench_timed "$T/squash.ours" sealos_build "$W/sealos" --squash; rm -rf "$W/sealos"; }
b_sq() { clean_buildah "$W/buildah"; bench_timed "$T/squash.peer" buildah_build "$W/buildah" --squash; clean_buildah "$W/buildah"; }
for r in $(seq 1 "$RUNS"); do
	echo "run $r/$RUNS ..." >&2
	bench_order "$r" s_cold b_cold
	# (the uncompressed row's peer is buildah's cold build of this run, just above)
	s_cold_u
	bench_order "$r" b_sq s_sq
	bench_timed "$T/floor-zstd" floor_build "$W/floor.tar.zst" zstd; rm -f "$W/floor.tar.zst"
	bench_timed "$T/floor-tar" floor_build "$W/floor.tar"; rm -f "$W/floor.tar"
	for k in cold rebuild cold-u squash; do
		printf '  %-9s sealos %ss buildah %ss\n' "$k" "$(tail -1 "$T/$k.ours")" "$(tail -1 "$T/$k.peer")" >&2
	done
done
cp "$T/floor-zstd" "$T/cold.floor"; cp "$T/floor-tar" "$T/cold-u.floor"; cp "$T/floor-zstd" "$T/squash.floor"

echo
echo "bench-build: $((bytes / 1024 / 1024)) MB context, $files files; $RUNS runs, tools alternating first; $(nproc) CPUs, load $(cut -d' ' -f1 /proc/loadavg)"
echo "  $(bench_cache_state); times are medians, ratio = median of per-run buildah/sealos wall times (above 1: sealos is faster)"
bench_note bench-build "peer: $(buildah --version)"
bench_result bench-build "cold build (sealos zstd-1 layers)" "buildah bud --layers (overlay)" "$T/cold.ours" "$T/cold.peer" "$T/cold.floor" \
	"sealos writes zstd-1 layers, buildah uncompressed ones; floor: tar | zstd -1 > file; sync"
bench_result bench-build "cold build (sealos uncompressed layers)" "buildah bud --layers (overlay)" "$T/cold-u.ours" "$T/cold-u.peer" "$T/cold-u.floor" \
	"like for like; floor: tar > file; sync"
bench_result bench-build "unchanged rebuild" "buildah bud --layers (overlay)" "$T/rebuild.ours" "$T/rebuild.peer" -
bench_result bench-build "cold --squash (sealos zstd-1)" "buildah bud --layers --squash (overlay)" "$T/squash.ours" "$T/squash.peer" "$T/squash.floor"
echo "targets: cold no slower than buildah; unchanged rebuild < 1 s and >= 10x faster than buildah"
