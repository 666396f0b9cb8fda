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
# "cold" starts from empty state (engine cache and store / containers-storage); the
# context is generated once under .bench/ and stays in the page cache for both tools.
#
# usage: hack/bench-build.sh [path/to/sealos]   (env: SIZE_MB=1024 KEEP=1 RUNS=3)
set -euo pipefail

SEALOS=${1:-bin/sealos}
SEALOS=$(cd "$(dirname "$SEALOS")" && pwd)/$(basename "$SEALOS")
SIZE_MB=${SIZE_MB:-1024}
RUNS=${RUNS:-3}
[ "$(id -u)" = 0 ] || { echo "bench-build: run as root (the embedded BuildKit and buildah need it)" >&2; exit 1; }
command -v buildah >/dev/null || { echo "bench-build: buildah is needed (apt-get install buildah)" >&2; exit 1; }
[ -x "$SEALOS" ] || { echo "bench-build: $SEALOS is not built (make build)" >&2; exit 1; }

HERE=$(cd "$(dirname "$0")/.." && pwd)
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
# timeit CMD...: prints "WALL CPU" in seconds, after a sync (CPU = user + sys of CMD and its children:
# on a loaded machine the CPU time is the steadier figure).
timeit() {
	local f=$W/time.out TIMEFORMAT='%R %U %S'
	# Write back what earlier runs left dirty first: otherwise the first fsync of this run
	# waits for gigabytes of someone else's data (ext4 ordered mode).
	sync
	{ time "$@" 2>"$W/cmd.err" || { cat "$W/cmd.err" >&2; exit 1; }; } 2>"$f"
	awk '{ printf "%.2f %.2f\n", $1, $2 + $3 }' "$f"
}
clean_buildah() { buildah --root "$1/storage" --runroot "$1/run" --storage-driver overlay rm -a >/dev/null 2>&1 || true
	buildah --root "$1/storage" --runroot "$1/run" --storage-driver overlay rmi -af >/dev/null 2>&1 || true
	rm -rf "$1"; }

# Runs alternate between the tools so both see the same machine load; the best run of each
# is reported (wall time; the CPU time of that same run beside it).
best() { sort -n | head -1; }
declare -A T
for r in $(seq 1 "$RUNS"); do
	echo "run $r/$RUNS ..." >&2
	rm -rf "$W/sealos"; T[s_cold]+="$(timeit sealos_build "$W/sealos")"$'\n'
	T[s_re]+="$(timeit sealos_build "$W/sealos")"$'\n'
	rm -rf "$W/sealos"
	clean_buildah "$W/buildah"; T[b_cold]+="$(timeit buildah_build "$W/buildah")"$'\n'
	T[b_re]+="$(timeit buildah_build "$W/buildah")"$'\n'
	clean_buildah "$W/buildah"
	rm -rf "$W/sealos-u"; T[s_cold_u]+="$(timeit sealos_build "$W/sealos-u" --compression uncompressed)"$'\n'
	rm -rf "$W/sealos-u"
	# --squash, as sealos users pass it: buildah first this time, so the order alternates.
	clean_buildah "$W/buildah"; T[b_sq]+="$(timeit buildah_build "$W/buildah" --squash)"$'\n'
	clean_buildah "$W/buildah"
	rm -rf "$W/sealos"; T[s_sq]+="$(timeit sealos_build "$W/sealos" --squash)"$'\n'
	rm -rf "$W/sealos"
	for k in s_cold s_re s_cold_u s_sq b_cold b_re b_sq; do printf '  %-9s %s\n' "$k" "$(printf '%s' "${T[$k]}" | tail -1)" >&2; done
done
for k in s_cold s_re s_cold_u s_sq b_cold b_re b_sq; do
	line=$(printf '%s' "${T[$k]}" | best)
	eval "${k}_wall=${line%% *}; ${k}_cpu=${line##* }"
done

echo
echo "bench-build: $((bytes / 1024 / 1024)) MB context, $files files; best of $RUNS runs; $(nproc) CPUs, load $(cut -d' ' -f1 /proc/loadavg)"
printf '%-36s %16s %16s %10s\n' "" "sealos wall/cpu" "buildah wall/cpu" "ratio"
row() { printf '%-36s %7ss/%6ss %7ss/%6ss %10s\n' "$1" "$2" "$3" "$4" "$5" "$(ratio "$4" "$2")"; }
row "cold (sealos: zstd-1 layers)" "$s_cold_wall" "$s_cold_cpu" "$b_cold_wall" "$b_cold_cpu"
row "cold (sealos: uncompressed layers)" "$s_cold_u_wall" "$s_cold_u_cpu" "$b_cold_wall" "$b_cold_cpu"
row "unchanged rebuild" "$s_re_wall" "$s_re_cpu" "$b_re_wall" "$b_re_cpu"
row "cold --squash" "$s_sq_wall" "$s_sq_cpu" "$b_sq_wall" "$b_sq_cpu"
echo "ratio = buildah wall / sealos wall (above 1: sealos is faster)"
echo "targets: cold no slower than buildah; unchanged rebuild < 1 s and >= 10x faster than buildah"
