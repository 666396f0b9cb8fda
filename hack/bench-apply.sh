#!/usr/bin/env bash
# bench-apply: ship a ~1 GB rootfs (many small files and a few large ones) to three test
# nodes with `sealos run`, and the same directory with `scp -r` to all three nodes at once
# (one scp per node, in parallel, as sealos works on every node at once: --parallel 16), in
# the same run; print both times, the ratio, an unchanged re-run of sealos, and a floor:
# `tar -c | ssh node tar -x` to the three nodes at once.
#
# Fairness: every timed command ends with `sync` (on this machine the nodes' disks are this
# machine's disk: nobody leaves the next tool its dirty pages), starts after `sync` and, as
# root, a dropped page cache (hack/bench-lib.sh); the tools alternate going first; each run
# starts from a reset cluster and empty scp targets; RUNS runs (default 3), the ratio is the
# median of the per-run ratios scp/sealos.
# Still in sealos' favour: scp has no incremental mode, so the unchanged re-run has no peer
# (rsync would be one; it is not installed here).
#
#   hack/bench-apply.sh [SEALOS_BINARY]      (needs root: test nodes are sshd in namespaces)
#
# env: SIZE_MB (default 1000: 40 % small files, 60 % in 6 large ones), RUNS (or BENCH_RUNS,
# default 3), BENCH_DIR (default .bench/apply) keeps the generated data between runs.
set -euo pipefail
cd "$(dirname "$0")/.."
. hack/bench-lib.sh
BIN=$(realpath "${1:-bin/sealos}")
WORK=$(realpath -m "${BENCH_DIR:-.bench/apply}")
SIZE_MB=${SIZE_MB:-1000}
RUNS=${BENCH_RUNS:-${RUNS:-3}}
DATA=$WORK/data-$SIZE_MB
[ "$(id -u)" = 0 ] || { echo "bench-apply: needs root (test nodes)" >&2; exit 1; }
[ -x "$BIN" ] || { echo "bench-apply: no sealos binary at $BIN (make build)" >&2; exit 1; }
command -v scp >/dev/null || { echo "bench-apply: needs scp (openssh-client)" >&2; exit 1; }

if [ ! -f "$DATA/.done" ]; then
	echo "generating ~$SIZE_MB MB of test data in $DATA" >&2
	rm -rf "$DATA"; mkdir -p "$DATA/big"
	# 40 % in small files (16 KiB of base64 text each, in 16 directories)...
	per_dir=$((SIZE_MB * 1024 * 40 / 100 / 16 * 3 / 4)) # KiB of random bytes, base64 makes 4/3
	for d in $(seq -w 0 15); do
		mkdir -p "$DATA/small/$d"
		head -c "${per_dir}K" /dev/urandom | base64 -w 100 | split -b 16k -a 4 - "$DATA/small/$d/f"
	done
	# ...and 60 % in 6 files of incompressible data (binaries, image blobs).
	for i in 1 2 3 4 5 6; do head -c $((SIZE_MB * 1024 * 10 / 100))K /dev/urandom >"$DATA/big/blob$i"; done
	touch "$DATA/.done"
fi
files=$(find "$DATA" -type f ! -name .done | wc -l)
size=$(du -sm --exclude=.done "$DATA" | cut -f1)
echo "data: $files files, $size MiB" >&2

ROOT=$WORK/root
rm -rf "$ROOT"
go run ./apply/internal/benchimage -root "$ROOT" -dir "$DATA" -ref bench/rootfs:v1

export NODES_DIR=/var/tmp/sealos-bench-nodes NODES_PREFIX=127.0.9.
reset_cluster() { "$BIN" --root "$ROOT" reset --cluster bench --force >/dev/null 2>&1 || true; }
cleanup() {
	reset_cluster
	testdata/nodes.sh stop || true
	rm -rf "$NODES_DIR" "$T"
}
T=$(mktemp -d "${TMPDIR:-/tmp}/bench-apply.XXXXXX")
trap cleanup EXIT
eval "$(testdata/nodes.sh start 3 2>/dev/null)"
read -r N1 N2 N3 <<<"$NODES_IPS"
SSH_OPTS=(-i "$NODES_KEY" -o StrictHostKeyChecking=no -o UserKnownHostsFile=/dev/null -o LogLevel=ERROR)
# the nodes' /var/lib/sealos, seen from here
node_dir() { echo "$NODES_DIR/node$1/sealos"; }

sealos_run() { "$BIN" --root "$ROOT" run bench/rootfs:v1 --cluster bench --masters "$N1" --nodes "$N2,$N3" -i "$NODES_KEY" >/dev/null && sync; }
sealos_rerun() { "$BIN" --root "$ROOT" run bench/rootfs:v1 --cluster bench -i "$NODES_KEY" >/dev/null && sync; }
scp_all() {
	local ip pids=()
	for ip in $N1 $N2 $N3; do
		scp -r -q "${SSH_OPTS[@]}" "$DATA" "root@$ip:/var/lib/sealos/scp-bench" & pids+=($!)
	done
	for p in "${pids[@]}"; do wait "$p"; done
	sync
}
floor_all() {
	local ip pids=()
	for ip in $N1 $N2 $N3; do
		tar -C "$DATA" -cf - . | ssh "${SSH_OPTS[@]}" "root@$ip" 'mkdir -p /var/lib/sealos/floor && tar -x -C /var/lib/sealos/floor -f -' & pids+=($!)
	done
	for p in "${pids[@]}"; do wait "$p"; done
	sync
}
ours() { reset_cluster; bench_timed "$T/run.ours" sealos_run; bench_timed "$T/rerun.ours" sealos_rerun; }
peer() { for i in 1 2 3; do rm -rf "$(node_dir $i)/scp-bench"; done; bench_timed "$T/run.peer" scp_all; }

for r in $(seq 1 "$RUNS"); do
	echo "run $r of $RUNS ..." >&2
	bench_order "$r" ours peer
	for i in 1 2 3; do rm -rf "$(node_dir $i)/floor"; done
	bench_timed "$T/run.floor" floor_all
	for i in 1 2 3; do rm -rf "$(node_dir $i)/floor" "$(node_dir $i)/scp-bench"; done
	[ -z "${BENCH_VERBOSE:-}" ] || echo "  sealos $(tail -1 "$T/run.ours")s scp $(tail -1 "$T/run.peer")s floor $(tail -1 "$T/run.floor")s" >&2
done

# Check sealos' copy on a node against the source.
want=$(cd "$DATA" && find . -type f ! -name .done | sort | xargs -d '\n' cat | sha256sum | cut -c1-16)
got=$(cd "$(node_dir 3)/data/bench/rootfs" && find . -type f ! -name .done | sort | xargs -d '\n' cat | sha256sum | cut -c1-16)
[ "$want" = "$got" ] || { echo "bench-apply: node3's rootfs differs from the source" >&2; exit 1; }

echo "bench-apply: $files files, $size MiB to 3 nodes; $RUNS runs, tools alternating first; $(bench_cache_state); every timed command ends with sync"
bench_note bench-apply "peer: $(ssh -V 2>&1)"
bench_result bench-apply "ship to 3 nodes (first run)" "scp -r, 3 nodes at once" "$T/run.ours" "$T/run.peer" "$T/run.floor" \
	"sealos: plan + ship; floor: tar -c | ssh tar -x, 3 nodes at once, + sync"
bench_result bench-apply "unchanged re-run" "-" "$T/rerun.ours" - - "no peer: scp has no incremental mode"
echo "  target: ratio scp/sealos >= 2x"
