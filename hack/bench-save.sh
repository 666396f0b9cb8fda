#!/usr/bin/env bash
# bench-save: save 10 images (~1 GB) from a local upstream hub with `sealos registry save`
# and with skopeo, in the same run, cold and with nothing changed, and print the times and
# the ratios.
#
# Peers, each at least at sealos' concurrency (--max-pull-procs, default 8 blobs at once):
#   - `skopeo sync --src yaml --dest dir` of every image in one invocation: skopeo's own
#     tool for the job (it copies one image, and in a dir: destination one blob, at a time:
#     skopeo 1.9 has no concurrency flag, so this row still favours sealos);
#   - `skopeo copy docker://UPSTREAM/img dir:DIR`, one per image, 8 at once (a dir:
#     destination takes one blob at a time, so 8 processes move 8 blobs at once, as sealos
#     does): stores manifests and blobs as they are (no recompression, digests kept, every
#     blob verified), the cheapest way for skopeo to put the same bytes on disk; skopeo has
#     no incremental mode for dir:, so its "nothing changed" run copies everything again;
#   - `skopeo copy --preserve-digests docker://UPSTREAM/img docker://HUB2/img`, 8 at once,
#     into a second hub (a fresh one every run): the same artifact as `registry save` (a
#     served distribution directory), and it skips blobs the hub already has.
# Before every timed command: `sync` and, as root, the page cache dropped
# (hack/bench-lib.sh), and a `sync` at its end, inside the time; sealos and the skopeo peers alternate going first; RUNS runs
# (default 3), the ratio is the median of the per-run ratios skopeo/sealos.
# Floor line: the same blobs through `cp` + `sha256sum` + `sync`.
#
# usage: hack/bench-save.sh [path/to/sealos]
# env: IMAGES=10 MB_PER_IMAGE=100 RUNS=3 (or BENCH_RUNS) JOBS=8 KEEP=1
set -euo pipefail

SEALOS=${1:-bin/sealos}
SEALOS=$(cd "$(dirname "$SEALOS")" && pwd)/$(basename "$SEALOS")
IMAGES=${IMAGES:-10}
MB=${MB_PER_IMAGE:-100}
RUNS=${BENCH_RUNS:-${RUNS:-3}}
JOBS=${JOBS:-8}
. "$(dirname "$0")/bench-lib.sh"
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

PORT=$(bench_free_port)
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

T=$W/times
mkdir -p "$T"
skopeo_dir() { # copy every image to dir:, JOBS at once
	for r in "${REFS[@]}"; do echo "${r%@*}"; done |
		xargs -P "$JOBS" -I{} sh -c 'n={}; skopeo --insecure-policy copy -q --src-tls-verify=false "docker://$0/$n" "dir:$1/$(echo "$n" | tr / _)" >/dev/null' "$UPSTREAM" "$W/skopeo"
}
cat >"$W/sync.yaml" <<YAML
$UPSTREAM:
  tls-verify: false
  images:
$(for r in "${REFS[@]}"; do n=${r%@*}; echo "    ${n%:*}: [${n##*:}]"; done)
YAML
skopeo_sync() { skopeo --insecure-policy sync --preserve-digests --src yaml --dest dir "$W/sync.yaml" "$W/skopeo-sync" >/dev/null; }
skopeo_hub() { # copy every image into the second hub, JOBS at once
	for r in "${REFS[@]}"; do echo "${r%@*}"; done |
		xargs -P "$JOBS" -I{} skopeo --insecure-policy copy -q --src-tls-verify=false --dest-tls-verify=false --preserve-digests \
			"docker://$UPSTREAM/{}" "docker://$HUB2/{}"
}
sealos_save() {
	"$SEALOS" --root "$W/root" registry save --max-pull-procs "$JOBS" "$CTX" 2>>"$W/save.log" >/dev/null
}
HUB2_PID=
start_hub2() { # a fresh second hub on an empty directory
	[ -z "$HUB2_PID" ] || { kill "$HUB2_PID"; wait "$HUB2_PID" 2>/dev/null || true; }
	rm -rf "$W/hub2"
	local port; port=$(bench_free_port)
	"$SEALOS" registry serve filesystem "$W/hub2" --address 127.0.0.1 --port "$port" 2>"$W/hub2.log" &
	HUB2_PID=$!
	PIDS+=($!)
	for _ in $(seq 1 100); do curl -fs "http://127.0.0.1:$port/v2/" >/dev/null && break; sleep 0.1; done
	HUB2=127.0.0.1:$port
}
floor() { cp -r "$V2/blobs" "$W/floor" && find "$W/floor" -type f -print0 | xargs -0 sha256sum >/dev/null; }

echo "upstream: $IMAGES images, ${TOTAL} MB on $UPSTREAM" >&2
ours() {
	rm -rf "$W/root" "$CTX/registry"
	bench_timed "$T/cold.ours" sealos_save
	bench_timed "$T/warm.ours" sealos_save
}
peers() {
	rm -rf "$W/skopeo" "$W/skopeo-sync"; mkdir -p "$W/skopeo"
	bench_timed "$T/cold.sync" skopeo_sync
	# skopeo sync refuses to overwrite a dir: destination: emptied first (untimed)
	rm -rf "$W/skopeo-sync"
	bench_timed "$T/warm.sync" skopeo_sync
	bench_timed "$T/cold.dir" skopeo_dir
	bench_timed "$T/warm.dir" skopeo_dir
	start_hub2
	bench_timed "$T/cold.hub" skopeo_hub
	bench_timed "$T/warm.hub" skopeo_hub
	rm -rf "$W/skopeo" "$W/skopeo-sync"
}
for r in $(seq 1 "$RUNS"); do
	echo "run $r of $RUNS ..." >&2
	bench_order "$r" ours peers
	bench_timed "$T/floor" floor; rm -rf "$W/floor"
done

# Check: every saved image, served by the hub, has its upstream digest.
SPORT=$(bench_free_port)
"$SEALOS" registry serve filesystem "$CTX/registry" --address 127.0.0.1 --port "$SPORT" --read-only 2>"$W/saved.log" &
PIDS+=($!)
for _ in $(seq 1 100); do curl -fs "http://127.0.0.1:$SPORT/v2/" >/dev/null && break; sleep 0.1; done
for r in "${REFS[@]}"; do
	name=${r%@*}
	want=${r#*@}
	got=sha256:$(skopeo inspect --raw --tls-verify=false "docker://127.0.0.1:$SPORT/$name" | sha256sum | cut -d' ' -f1)
	[ "$got" = "$want" ] || { echo "bench-save: $name saved with digest $got, upstream $want" >&2; exit 1; }
done

echo
echo "bench-save: $IMAGES images, ${TOTAL} MB; $RUNS runs, sealos and skopeo alternating first; $(bench_cache_state)"
echo "  sealos --max-pull-procs $JOBS; times are medians, ratio = median of per-run skopeo/sealos; digests of all saved images checked"
bench_note bench-save "peer: $(skopeo --version)"
FL="floor: cp + sha256sum of the blobs + sync"
bench_result bench-save "cold" "skopeo sync yaml to dir" "$T/cold.ours" "$T/cold.sync" "$T/floor" "favours sealos: skopeo sync copies one blob at a time; $FL"
bench_result bench-save "cold" "skopeo copy to dir, $JOBS at once" "$T/cold.ours" "$T/cold.dir" "$T/floor" "$FL"
bench_result bench-save "cold" "skopeo copy to a 2nd hub, $JOBS at once" "$T/cold.ours" "$T/cold.hub" "$T/floor" "same artifact; $FL"
bench_result bench-save "nothing changed" "skopeo sync yaml to dir" "$T/warm.ours" "$T/warm.sync" - "skopeo sync will not overwrite dir:, so it runs on an emptied destination"
bench_result bench-save "nothing changed" "skopeo copy to dir, $JOBS at once" "$T/warm.ours" "$T/warm.dir" - "skopeo copies everything again"
bench_result bench-save "nothing changed" "skopeo copy to a 2nd hub, $JOBS at once" "$T/warm.ours" "$T/warm.hub" - "skopeo skips blobs the hub has"
