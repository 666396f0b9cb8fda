#!/usr/bin/env bash
# bench-sync: copy 20 repositories (~1 GB: each bench/rNN with tag v1 = 3 x 16 MiB layers
# and tag v2 = v1 + 1 MiB) from a source hub to an empty destination hub, in one run, with
#   sealos registry sync SRC DST/sealos
#   skopeo sync --src docker --dest docker SRC/bench/rNN DST/skopeo/bench   (once per repository)
#   skopeo sync --src yaml --dest docker (every repository in one invocation, for reference)
# cold (empty destination) and again with nothing changed. All hubs are `sealos registry
# serve` on their own directories of the same disk. Prints seconds, MB/s and the ratio
# (skopeo time / sealos time: > 1 means sealos is faster), then checks that every digest
# arrived unchanged. Targets: cold >= 2x, nothing-changed sealos < 1 s.
#
# usage: hack/bench-sync.sh SEALOS_BIN        needs: skopeo, curl, python3
set -euo pipefail

SEALOS=${1:?usage: $0 SEALOS_BIN}
SEALOS=$(readlink -f "$SEALOS")
HERE=$(cd "$(dirname "$0")/.." && pwd)
command -v skopeo >/dev/null || { echo "bench-sync: skopeo not found (apt-get install skopeo)" >&2; exit 1; }
REPOS=${BENCH_REPOS:-20}

WORK=${BENCH_DIR:-$(mktemp -d /tmp/bench-sync.XXXXXX)}
mkdir -p "$WORK"
PIDS=()
cleanup() {
	for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
	wait 2>/dev/null || true
	[ -n "${BENCH_KEEP:-}" ] || rm -rf "$WORK"
}
trap cleanup EXIT

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
wait_up() { for _ in $(seq 100); do curl -fs "http://$1/v2/" >/dev/null 2>&1 && return 0; sleep 0.1; done; echo "registry $1 did not start" >&2; exit 1; }
now() { date +%s.%N; }
secs() { awk -v a="$1" -v b="$2" 'BEGIN{printf "%.3f", b-a}'; }
hub() { # name -> host:port
	local port
	port=$(free_port)
	"$SEALOS" registry serve filesystem "$WORK/$1" --port "$port" --address 127.0.0.1 >"$WORK/$1.log" 2>&1 &
	PIDS+=($!)
	wait_up "127.0.0.1:$port"
	echo "127.0.0.1:$port"
}

SRC=$(hub src)
DST=$(hub dst)
DSTY=$(hub dsty)
echo "== seeding $REPOS repositories into $SRC"
go run "$HERE/hack/benchsync" -registry "$SRC" -repos "$REPOS" >"$WORK/digests.txt"
BYTES=$(du -sb "$WORK/src/docker/registry/v2/blobs" | awk '{print $1}')
echo "   $(wc -l <"$WORK/digests.txt") tags, $BYTES bytes of blobs"

declare -A T
run() { # key cmd...
	local key=$1; shift
	sync
	local s e
	s=$(now)
	"$@" >"$WORK/$key.out" 2>"$WORK/$key.err" || { echo "FAILED: $*" >&2; tail -20 "$WORK/$key.err" >&2; exit 1; }
	e=$(now)
	T[$key]=$(secs "$s" "$e")
}
skopeo_docker() {
	for i in $(seq -f '%02g' 1 "$REPOS"); do
		skopeo sync --preserve-digests --src docker --dest docker --src-tls-verify=false --dest-tls-verify=false \
			"$SRC/bench/r$i" "$DST/skopeo/bench"
	done
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

for pass in cold unchanged; do
	run "sealos-$pass" "$SEALOS" registry sync -q -o json "$SRC" "$DST/sealos"
	run "skopeo-$pass" skopeo_docker
	run "skopeoyaml-$pass" skopeo_yaml
done

# Digests must be identical everywhere.
while read -r ref digest; do
	for where in "$DST/sealos/$ref" "$DST/skopeo/$ref" "$DSTY/skopeo-yaml/${ref#bench/}"; do
		got=$(curl -fsI -H 'Accept: application/vnd.oci.image.manifest.v1+json' "http://${where%%/*}/v2/$(echo "${where#*/}" | sed 's/:\([^:]*\)$/\/manifests\/\1/')" | tr -d '\r' | awk -F': ' 'tolower($1)=="docker-content-digest"{print $2}')
		[ "$got" = "$digest" ] || { echo "digest mismatch at $where: want $digest, got '$got'" >&2; exit 1; }
	done
done <"$WORK/digests.txt"
python3 - "$WORK/sealos-unchanged.out" <<'PY'
import json, sys
r = json.load(open(sys.argv[1]))
print(f"sealos nothing-changed: {r['skipped']} tags skipped, {r['blobs']} blobs sent, "
      f"{r['destinationRequests']} destination requests ({r['destinationHeads']} HEADs)")
PY

echo
printf '%-34s %10s %10s %10s %10s %8s\n' "sync of $REPOS repositories" "bytes" "sealos s" "MB/s" "skopeo s" "ratio"
for pass in cold unchanged; do
	s=${T[sealos-$pass]}
	for peer in skopeo skopeoyaml; do
		c=${T[$peer-$pass]}
		label="$pass vs skopeo --src yaml"
		[ "$peer" = skopeo ] && label="$pass vs skopeo --src docker"
		awk -v l="$label" -v b="$BYTES" -v s="$s" -v c="$c" -v p="$pass" 'BEGIN{
			mbs = (p == "cold") ? sprintf("%10.1f", b/s/1e6) : sprintf("%10s", "-")
			printf "%-34s %10d %10.3f %s %10.3f %7.2fx\n", l, (p == "cold") ? b : 0, s, mbs, c, c/s }'
	done
done
echo "(times include process start; targets: cold >= 2x faster than skopeo, nothing-changed sealos < 1 s)"
