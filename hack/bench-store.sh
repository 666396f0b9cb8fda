#!/usr/bin/env bash
# bench-store: the local image store against buildah's containers-storage (the store the
# original sealos v5 uses), in one run, on the same data and disk:
#   load    an oci-archive of ~1 GiB (4 x 256 MiB layers), cold and again unchanged
#           (sealos load  vs  buildah pull oci-archive:)
#   save    that image to an oci-archive and to a docker-archive
#           (sealos save  vs  buildah push IMAGE oci-archive:/docker-archive:)
#   images  list a store of that image plus 100 small ones
#           (sealos images  vs  buildah images)
# Prints seconds for each tool and the ratio (buildah / sealos: > 1 means sealos is faster).
#
# usage: hack/bench-store.sh SEALOS_BIN
# needs: buildah and skopeo (Debian packages of the same names), Go to build the data
# generator (hack/benchdata). Run as root (buildah's vfs storage).
set -euo pipefail

SEALOS=${1:?usage: $0 SEALOS_BIN}
SEALOS=$(readlink -f "$SEALOS")
HERE=$(cd "$(dirname "$0")/.." && pwd)
for t in buildah skopeo go; do
	command -v "$t" >/dev/null || { echo "bench-store: $t not found (apt-get install $t)" >&2; exit 1; }
done

WORK=${BENCH_DIR:-$(mktemp -d /tmp/bench-store.XXXXXX)}
mkdir -p "$WORK"
cleanup() {
	buildah --root "$WORK/buildah" --runroot "$WORK/buildah-run" --storage-driver vfs rmi -a -f >/dev/null 2>&1 || true
	[ -n "${BENCH_KEEP:-}" ] || rm -rf "$WORK"
}
trap cleanup EXIT

BUILDAH=(buildah --root "$WORK/buildah" --runroot "$WORK/buildah-run" --storage-driver vfs)
now() { date +%s.%N; }
secs() { awk -v a="$1" -v b="$2" 'BEGIN{printf "%.3f", b-a}'; }
ratio() { awk -v s="$1" -v b="$2" 'BEGIN{ if (s > 0) printf "%.2f", b/s; else print "inf" }'; }
ROWS=()
# timeit VAR CMD...: runs CMD with output discarded, stores the seconds in VAR.
timeit() {
	local __v=$1; shift
	sync
	local t0; t0=$(now)
	"$@" >/dev/null 2>"$WORK/last.err" || { echo "FAILED: $*" >&2; cat "$WORK/last.err" >&2; exit 1; }
	local t1; t1=$(now)
	printf -v "$__v" '%s' "$(secs "$t0" "$t1")"
}
row() { ROWS+=("$(printf '%-34s %9s %9s %7s' "$1" "$2" "$3" "$(ratio "$2" "$3")")"); echo "${ROWS[-1]}"; }

echo "== preparing data in $WORK"
go build -o "$WORK/benchdata" "$HERE/hack/benchdata"
"$WORK/benchdata" -out "$WORK/layouts" -images large=4x256MiB >/dev/null
REF=docker.io/bench/large:v1
skopeo copy -q "oci:$WORK/layouts/large" "oci-archive:$WORK/in.tar:$REF"
ls -la "$WORK/in.tar"

S=("$SEALOS" --root "$WORK/sealos")
printf '%-34s %9s %9s %7s\n' "step" "sealos" "buildah" "ratio"

timeit s "${S[@]}" load -i "$WORK/in.tar"
timeit b "${BUILDAH[@]}" pull -q "oci-archive:$WORK/in.tar"
row "load 1 GiB oci-archive (cold)" "$s" "$b"

timeit s "${S[@]}" load -i "$WORK/in.tar"
timeit b "${BUILDAH[@]}" pull -q "oci-archive:$WORK/in.tar"
row "load again (unchanged)" "$s" "$b"

timeit s "${S[@]}" save -o "$WORK/s-oci.tar" "$REF"
timeit b "${BUILDAH[@]}" push -q "$REF" "oci-archive:$WORK/b-oci.tar"
row "save oci-archive" "$s" "$b"

timeit s "${S[@]}" save -o "$WORK/s-docker.tar" --format docker-archive "$REF"
timeit b "${BUILDAH[@]}" push -q "$REF" "docker-archive:$WORK/b-docker.tar:$REF"
row "save docker-archive" "$s" "$b"

# Both stores get the same 100 small images (one oci-archive each), then list.
"$WORK/benchdata" -out "$WORK/small" -images "$(for i in $(seq 100); do printf 's%d=1x4KiB,' "$i"; done | sed 's/,$//')" >/dev/null
for i in $(seq 100); do
	skopeo copy -q "oci:$WORK/small/s$i" "oci-archive:$WORK/small-$i.tar:docker.io/bench/s$i:v1"
	"${S[@]}" load -i "$WORK/small-$i.tar" >/dev/null
	"${BUILDAH[@]}" pull -q "oci-archive:$WORK/small-$i.tar" >/dev/null
done
# Listing is quick: best of 5 runs each.
best() { awk 'BEGIN{m=""} {if (m=="" || $1<m) m=$1} END{print m}'; }
s=$(for _ in 1 2 3 4 5; do timeit t "${S[@]}" images; echo "$t"; done | best)
b=$(for _ in 1 2 3 4 5; do timeit t "${BUILDAH[@]}" images; echo "$t"; done | best)
row "images (101 images, best of 5)" "$s" "$b"

echo
echo "== summary (seconds; ratio = buildah / sealos, > 1 means sealos is faster)"
printf '%-34s %9s %9s %7s\n' "step" "sealos" "buildah" "ratio"
printf '%s\n' "${ROWS[@]}"
