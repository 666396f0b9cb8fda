#!/usr/bin/env bash
# bench-store: the local image store against buildah's containers-storage (the store the
# original sealos v5 uses), in one run, on the same data and disk:
#   load    an oci-archive of ~1 GiB (4 x 256 MiB layers), cold and again unchanged
#           (sealos load  vs  buildah pull oci-archive:)
#   save    that image to an oci-archive and to a docker-archive
#           (sealos save  vs  buildah push IMAGE oci-archive:/docker-archive:, and
#           buildah push -D: buildah gzips the layers it pushes unless told not to, sealos
#           writes the stored blobs as they are, so the -D row is the like-for-like one)
#   images  list a store of that image plus 100 small ones
#           (sealos images  vs  buildah images)
# buildah runs with the overlay driver (as bench-build does; vfs would copy every layer in
# full). Before every timed command: `sync` and, as root, the page cache dropped
# (hack/bench-lib.sh), and a `sync` at its end, inside the time; the tools alternate going first from run to run; RUNS runs (default
# 3), the ratio is the median of the per-run ratios buildah/sealos (> 1: sealos is faster).
# Floor lines: the same bytes through `cp` + `sha256sum` + `sync` (load: the archive read,
# hashed and written once) and `tar -c` of the OCI layout + `sync` (save).
#
# usage: hack/bench-store.sh SEALOS_BIN
# env: RUNS (or BENCH_RUNS, default 3), LAYERS (default 4x256MiB: the large image),
# SMALL_IMAGES (default 100 small images), BENCH_DIR, BENCH_KEEP=1
# needs: buildah and skopeo (Debian packages of the same names), Go to build the data
# generator (hack/benchdata). Run as root (buildah's storage, dropping the page cache).
set -euo pipefail

SEALOS=${1:?usage: $0 SEALOS_BIN}
SEALOS=$(readlink -f "$SEALOS")
HERE=$(cd "$(dirname "$0")/.." && pwd)
. "$HERE/hack/bench-lib.sh"
for t in buildah skopeo go; do
	command -v "$t" >/dev/null || { echo "bench-store: $t not found (apt-get install $t)" >&2; exit 1; }
done
RUNS=${BENCH_RUNS:-${RUNS:-3}}
LAYERS=${LAYERS:-4x256MiB}
SMALL=${SMALL_IMAGES:-100}

WORK=${BENCH_DIR:-$(mktemp -d "${TMPDIR:-/tmp}/bench-store.XXXXXX")}
mkdir -p "$WORK"
BUILDAH=(buildah --root "$WORK/buildah" --runroot "$WORK/buildah-run" --storage-driver overlay)
clean_buildah() {
	"${BUILDAH[@]}" rmi -a -f >/dev/null 2>&1 || true
	# overlay leaves mounts behind after an interrupted run
	grep -o "$WORK/buildah[^ ]*" /proc/mounts 2>/dev/null | sort -r | xargs -r -n1 umount -l 2>/dev/null || true
	rm -rf "$WORK/buildah" "$WORK/buildah-run"
}
cleanup() {
	clean_buildah
	[ -n "${BENCH_KEEP:-}" ] || rm -rf "$WORK"
}
trap cleanup EXIT

echo "== preparing data in $WORK"
go build -o "$WORK/benchdata" "$HERE/hack/benchdata"
"$WORK/benchdata" -out "$WORK/layouts" -images "large=$LAYERS" >/dev/null
REF=docker.io/bench/large:v1
skopeo copy -q "oci:$WORK/layouts/large" "oci-archive:$WORK/in.tar:$REF"
ls -la "$WORK/in.tar"
S=("$SEALOS" --root "$WORK/sealos")
T=$WORK/times
mkdir -p "$T"

# Each tool's side of a run: a cold load into an empty store, the same load again
# (unchanged), then the saves out of that store.
ours() {
	rm -rf "$WORK/sealos"
	bench_timed "$T/load.ours" "${S[@]}" load -i "$WORK/in.tar"
	bench_timed "$T/reload.ours" "${S[@]}" load -i "$WORK/in.tar"
	rm -f "$WORK/s-oci.tar" "$WORK/s-docker.tar"
	bench_timed "$T/save-oci.ours" "${S[@]}" save -o "$WORK/s-oci.tar" "$REF"
	rm -f "$WORK/s-oci.tar"
	bench_timed "$T/save-docker.ours" "${S[@]}" save -o "$WORK/s-docker.tar" --format docker-archive "$REF"
	rm -f "$WORK/s-docker.tar"
	cp "$T/save-oci.ours" "$T/save-oci-D.ours"
}
peer() {
	clean_buildah
	bench_timed "$T/load.peer" "${BUILDAH[@]}" pull -q "oci-archive:$WORK/in.tar"
	bench_timed "$T/reload.peer" "${BUILDAH[@]}" pull -q "oci-archive:$WORK/in.tar"
	rm -f "$WORK/b-oci.tar" "$WORK/b-docker.tar"
	bench_timed "$T/save-oci.peer" "${BUILDAH[@]}" push -q "$REF" "oci-archive:$WORK/b-oci.tar"
	rm -f "$WORK/b-oci.tar"
	bench_timed "$T/save-oci-D.peer" "${BUILDAH[@]}" push -q -D "$REF" "oci-archive:$WORK/b-oci.tar"
	rm -f "$WORK/b-oci.tar"
	bench_timed "$T/save-docker.peer" "${BUILDAH[@]}" push -q "$REF" "docker-archive:$WORK/b-docker.tar:$REF"
	rm -f "$WORK/b-docker.tar"
}
floor_load() { cp "$WORK/in.tar" "$WORK/floor.tar" && sha256sum "$WORK/floor.tar" && sync; }
floor_save() { tar -C "$WORK/layouts/large" -cf "$WORK/floor.tar" . && sync; }
for r in $(seq 1 "$RUNS"); do
	echo "== run $r of $RUNS"
	bench_order "$r" ours peer
	bench_timed "$T/load.floor" floor_load; rm -f "$WORK/floor.tar"
	bench_timed "$T/save.floor" floor_save; rm -f "$WORK/floor.tar"
done

# Both stores get the same small images (one oci-archive each) on top of the large one,
# then list: RUNS x 5 listings each, alternating.
echo "== $SMALL small images into both stores"
"${S[@]}" load -i "$WORK/in.tar" >/dev/null
"${BUILDAH[@]}" pull -q "oci-archive:$WORK/in.tar" >/dev/null
"$WORK/benchdata" -out "$WORK/small" -images "$(for i in $(seq "$SMALL"); do printf 's%d=1x4KiB,' "$i"; done | sed 's/,$//')" >/dev/null
for i in $(seq "$SMALL"); do
	skopeo copy -q "oci:$WORK/small/s$i" "oci-archive:$WORK/small-$i.tar:docker.io/bench/s$i:v1"
	"${S[@]}" load -i "$WORK/small-$i.tar" >/dev/null
	"${BUILDAH[@]}" pull -q "oci-archive:$WORK/small-$i.tar" >/dev/null
done
list_ours() { bench_timed "$T/images.ours" "${S[@]}" images; }
list_peer() { bench_timed "$T/images.peer" "${BUILDAH[@]}" images; }
for r in $(seq $((RUNS * 5))); do bench_order "$r" list_ours list_peer; done

size=$(du -sm "$WORK/in.tar" | cut -f1)
echo
echo "== bench-store: $size MiB oci-archive ($LAYERS); $RUNS runs, tools alternating first; $(bench_cache_state)"
echo "   times are medians; ratio = median of per-run buildah/sealos (> 1: sealos is faster)"
bench_note bench-store "peer: $(buildah --version); $(skopeo --version) made the archives"
P="buildah (overlay)"
bench_result bench-store "load oci-archive (cold)" "$P pull" "$T/load.ours" "$T/load.peer" "$T/load.floor" "floor: cp + sha256sum of the archive + sync"
bench_result bench-store "load again (unchanged)" "$P pull" "$T/reload.ours" "$T/reload.peer" -
bench_result bench-store "save oci-archive" "$P push (gzips layers)" "$T/save-oci.ours" "$T/save-oci.peer" "$T/save.floor" \
	"favours sealos: buildah gzips layers unless -D (next row); floor: tar -c of the OCI layout + sync"
bench_result bench-store "save oci-archive, buildah not compressing" "$P push -D" "$T/save-oci-D.ours" "$T/save-oci-D.peer" "$T/save.floor" "like for like"
bench_result bench-store "save docker-archive" "$P push" "$T/save-docker.ours" "$T/save-docker.peer" "$T/save.floor" "docker-archive layers are uncompressed for both"
bench_result bench-store "images ($((SMALL + 1)) images)" "$P images" "$T/images.ours" "$T/images.peer" -
