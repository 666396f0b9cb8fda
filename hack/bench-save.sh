#!/usr/bin/env bash
# bench-save: save 10 images (~1 GB) from a local upstream hub with `sealos registry save`
# and with one `skopeo copy` per image in a row, in the same run, cold and with nothing
# changed, and print both times and the ratio.
#
# Peer (the ratio): `skopeo copy docker://UPSTREAM/img dir:DIR` for each image, one after
# the other: the dir: transport stores manifests and blobs as they are (no recompression,
# digests kept, every blob verified): the cheapest way for skopeo to put the same bytes on
# disk. skopeo has no incremental mode for dir:, so its "nothing changed" run copies
# everything again. Also shown: `skopeo copy --preserve-digests docker://UPSTREAM/img
# docker://HUB2/img` into a second hub, which produces the same artifact as `registry save`
# (a served distribution directory) and skips blobs the hub already has.
#
# usage: hack/bench-save.sh [path/to/sealos]   (env: IMAGES=10 MB_PER_IMAGE=100 KEEP=1)
set -euo pipefail

SEALOS=${1:-bin/sealos}
SEALOS=$(cd "$(dirname "$SEALOS")" && pwd)/$(basename "$SEALOS")
IMAGES=${IMAGES:-10}
MB=${MB_PER_IMAGE:-100}
command -v skopeo >/dev/null || { echo "bench-save: skopeo is needed (apt-get install skopeo)" >&2; exit 1; }
[ -x "$SEALOS" ] || { echo "bench-save: $SEALOS is not built (make build)" >&2; exit 1; }

W=$(mktemp -d "${TMPDIR:-/tmp}/bench-save.XXXXXX")
UP=$W/upstream
PIDS=()
cleanup() {
	for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; wait "$p" 2>/dev/null || true; done
	[ -n "${KEEP:-}" ] && echo "kept $W" || rm -rf "$W"
}
trap cleanup EXIT

now() { date +%s.%N; }
elapsed() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.2f", b - a }'; }
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (b > 0) printf "%.1fx", a / b; else print "inf" }'; }
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

V2=$UP/docker/registry/v2
# put_blob FILE: move FILE into the upstream's blob store, print its hex digest.
put_blob() {
	local hex
	hex=$(sha256sum "$1" | cut -d' ' -f1)
	mkdir -p "$V2/blobs/sha256/${hex:0:2}/$hex"
	mv "$1" "$V2/blobs/sha256/${hex:0:2}/$hex/data"
	echo "$hex"
}
link() { mkdir -p "$(dirname "$1")"; printf 'sha256:%s' "$2" >"$1"; }

# The upstream is written directly in the distribution layout (fast to seed), then served
# by `sealos registry serve filesystem`. Each image: 5 layers of 40/30/15/10/5 % of MB.
echo "seeding $IMAGES images of ${MB} MB into $UP ..." >&2
REFS=()
for i in $(seq 1 "$IMAGES"); do
	repo="bench/app$i"
	layers=""
	diffs=""
	hexes=()
	for pct in 40 30 15 10 5; do
		f=$W/layer.tmp
		head -c $((MB * 1024 * 1024 * pct / 100)) /dev/urandom >"$f"
		size=$(stat -c %s "$f")
		hex=$(put_blob "$f")
		hexes+=("$hex")
		layers+="${layers:+,}{\"mediaType\":\"application/vnd.oci.image.layer.v1.tar+gzip\",\"digest\":\"sha256:$hex\",\"size\":$size}"
		diffs+="${diffs:+,}\"sha256:$hex\""
	done
	printf '{"architecture":"amd64","os":"linux","config":{},"rootfs":{"type":"layers","diff_ids":[%s]}}' "$diffs" >"$W/config.tmp"
	csize=$(stat -c %s "$W/config.tmp")
	chex=$(put_blob "$W/config.tmp")
	hexes+=("$chex")
	printf '{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","config":{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"sha256:%s","size":%s},"layers":[%s]}' "$chex" "$csize" "$layers" >"$W/manifest.tmp"
	mhex=$(put_blob "$W/manifest.tmp")
	for h in "${hexes[@]}"; do link "$V2/repositories/$repo/_layers/sha256/$h/link" "$h"; done
	link "$V2/repositories/$repo/_manifests/revisions/sha256/$mhex/link" "$mhex"
	link "$V2/repositories/$repo/_manifests/tags/v1/index/sha256/$mhex/link" "$mhex"
	link "$V2/repositories/$repo/_manifests/tags/v1/current/link" "$mhex"
	REFS+=("$repo:v1@sha256:$mhex")
done
TOTAL=$(du -sm "$V2/blobs" | cut -f1)

PORT=$(free_port)
"$SEALOS" registry serve filesystem "$UP" --address 127.0.0.1 --port "$PORT" 2>"$W/upstream.log" &
PIDS+=($!)
for _ in $(seq 1 100); do curl -fs "http://127.0.0.1:$PORT/v2/" >/dev/null && break; sleep 0.1; done
curl -fs "http://127.0.0.1:$PORT/v2/" >/dev/null || { cat "$W/upstream.log" >&2; exit 1; }
UPSTREAM=127.0.0.1:$PORT

# The build context: an image list naming every image by tag.
CTX=$W/context
mkdir -p "$CTX/images/shim"
for r in "${REFS[@]}"; do echo "$UPSTREAM/${r%@*}"; done >"$CTX/images/shim/bench"
sync

skopeo_all() {
	for r in "${REFS[@]}"; do
		name=${r%@*}
		skopeo --insecure-policy copy -q --src-tls-verify=false "docker://$UPSTREAM/$name" "dir:$W/skopeo/${name//\//_}" >/dev/null
	done
}
sealos_save() {
	"$SEALOS" --root "$W/root" registry save "$CTX" 2>>"$W/save.log" >/dev/null
}

echo "upstream: $IMAGES images, ${TOTAL} MB on $UPSTREAM" >&2

echo "cold: skopeo copy x$IMAGES ..." >&2
mkdir -p "$W/skopeo"
t0=$(now); skopeo_all; t1=$(now); SK_COLD=$(elapsed "$t0" "$t1")
sync
echo "cold: sealos registry save ..." >&2
t0=$(now); sealos_save; t1=$(now); SE_COLD=$(elapsed "$t0" "$t1")
sync

# The same artifact with skopeo: a second hub's directory.
HPORT=$(free_port)
"$SEALOS" registry serve filesystem "$W/hub2" --address 127.0.0.1 --port "$HPORT" 2>"$W/hub2.log" &
PIDS+=($!)
for _ in $(seq 1 100); do curl -fs "http://127.0.0.1:$HPORT/v2/" >/dev/null && break; sleep 0.1; done
skopeo_hub() {
	for r in "${REFS[@]}"; do
		name=${r%@*}
		skopeo --insecure-policy copy -q --src-tls-verify=false --dest-tls-verify=false --preserve-digests \
			"docker://$UPSTREAM/$name" "docker://127.0.0.1:$HPORT/$name" >/dev/null
	done
}
echo "cold: skopeo copy x$IMAGES to a second hub ..." >&2
t0=$(now); skopeo_hub; t1=$(now); SH_COLD=$(elapsed "$t0" "$t1")
sync

echo "nothing changed: skopeo copy x$IMAGES ..." >&2
t0=$(now); skopeo_all; t1=$(now); SK_WARM=$(elapsed "$t0" "$t1")
echo "nothing changed: skopeo copy x$IMAGES to a second hub ..." >&2
t0=$(now); skopeo_hub; t1=$(now); SH_WARM=$(elapsed "$t0" "$t1")
echo "nothing changed: sealos registry save ..." >&2
t0=$(now); sealos_save; t1=$(now); SE_WARM=$(elapsed "$t0" "$t1")

# Check: every saved image, served by the hub, has its upstream digest.
SPORT=$(free_port)
"$SEALOS" registry serve filesystem "$CTX/registry" --address 127.0.0.1 --port "$SPORT" --read-only 2>"$W/saved.log" &
PIDS+=($!)
for _ in $(seq 1 100); do curl -fs "http://127.0.0.1:$SPORT/v2/" >/dev/null && break; sleep 0.1; done
for r in "${REFS[@]}"; do
	name=${r%@*}
	want=${r#*@}
	got=sha256:$(skopeo inspect --raw --tls-verify=false "docker://127.0.0.1:$SPORT/$name" | sha256sum | cut -d' ' -f1)
	[ "$got" = "$want" ] || { echo "bench-save: $name saved with digest $got, upstream $want" >&2; exit 1; }
done

printf '\n%-34s %10s %10s %8s\n' "bench-save ($IMAGES images, ${TOTAL} MB)" "skopeo" "sealos" "ratio"
printf '%-34s %9ss %9ss %8s\n' "cold" "$SK_COLD" "$SE_COLD" "$(ratio "$SK_COLD" "$SE_COLD")"
printf '%-34s %9ss %9ss %8s\n' "nothing changed" "$SK_WARM" "$SE_WARM" "$(ratio "$SK_WARM" "$SE_WARM")"
printf '%-34s %9ss %9ss %8s\n' "cold, skopeo to a 2nd hub" "$SH_COLD" "$SE_COLD" "$(ratio "$SH_COLD" "$SE_COLD")"
printf '%-34s %9ss %9ss %8s\n' "nothing changed, skopeo to 2nd hub" "$SH_WARM" "$SE_WARM" "$(ratio "$SH_WARM" "$SE_WARM")"
echo "peer: one 'skopeo copy docker://... dir:...' (rows 1-2) or '... docker://hub2/...' (rows 3-4) per image in a row; digests of all saved images checked" >&2
