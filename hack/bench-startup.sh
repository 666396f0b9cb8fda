#!/usr/bin/env bash
# bench-startup: what a short command costs before it does anything: wall time and peak
# RSS (ru_maxrss: the binary's pages it touched, the heap and the runtime) of whole
# processes, medians of STARTUP_RUNS runs (default 20), sealos and a peer taking turns at going
# first, with a floor line: a Go program that starts and exits (hack/benchstart -noop).
#
#   sealos version                      vs crane version
#   sealos images / inspect / tag       vs buildah images / inspect / tag (vfs driver: its
#                                          lightest start, no overlay probing)
#   sealos push (unchanged, to the hub) vs crane push of the same OCI layout (unchanged,
#                                          to the stock distribution registry)
#
# The page cache is kept (warm: scripts call these in loops); bench-registry has the
# re-push from a cold cache. Targets (issue 20): each under 25 ms and 20 MiB.
#
# usage: hack/bench-startup.sh SEALOS_BIN
# needs: crane and registry (distribution) as for bench-registry, buildah; Go.
set -euo pipefail

SEALOS=$(readlink -f "${1:?usage: $0 SEALOS_BIN}")
HERE=$(cd "$(dirname "$0")/.." && pwd)
. "$HERE/hack/bench-lib.sh"
bench_need bench-startup crane registry buildah
RUNS=${STARTUP_RUNS:-20}
bench_workdir bench-startup

go build -o "$WORK/benchdata" "$HERE/hack/benchdata"
go build -o "$WORK/benchstart" "$HERE/hack/benchstart"
"$WORK/benchdata" -out "$WORK/layouts" -store "$WORK/root" -ref-prefix "bench/" -images "small=8x256KiB" >/dev/null

bench_sealos_hub "$SEALOS" "$WORK"
bench_stock_registry "$WORK"

S="$SEALOS --root $WORK/root"
B="buildah --root $WORK/buildah --runroot $WORK/buildah-run --storage-driver vfs"
$S push -q bench/small:v1 "$HUB/bench/small:v1" >/dev/null
crane push --insecure "$WORK/layouts/small" "$STOCK/bench/small:v1" >/dev/null 2>&1
$B pull -q --tls-verify=false "docker://$STOCK/bench/small:v1" >/dev/null
$B tag "$STOCK/bench/small:v1" bench/small:v1

bs() { "$WORK/benchstart" -runs "$RUNS" "$@" | tee -a "$WORK/out"; }
echo "bench-startup: $RUNS runs each, tools taking turns at going first, page cache warm"
bs -row version -ours "$S version" -peer-name crane -peer "crane version"
bs -row images -ours "$S images" -peer-name "buildah (vfs)" -peer "$B images"
bs -row inspect -ours "$S inspect bench/small:v1" -peer-name "buildah (vfs)" -peer "$B inspect --type image bench/small:v1"
bs -row tag -ours "$S tag bench/small:v1 bench/small:v2" -peer-name "buildah (vfs)" -peer "$B tag bench/small:v1 bench/small:v2"
bs -row "re-push unchanged" -ours "$S push -q bench/small:v1 $HUB/bench/small:v1" -peer-name "crane + distribution" \
	-peer "crane push --insecure $WORK/layouts/small $STOCK/bench/small:v1"
[ -z "${BENCH_RESULTS:-}" ] || grep '^RESULT|' "$WORK/out" >>"$BENCH_RESULTS"
bench_note bench-startup "wall and peak RSS of whole processes, medians of $RUNS; floor: a Go program that starts and exits; buildah with the vfs driver"
