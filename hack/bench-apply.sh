#!/usr/bin/env bash
# bench-apply: ship a ~1 GB rootfs (many small files and a few large ones) to three test
# nodes with `sealos run`, and the same directory with `scp -r` to each node in turn, in
# the same run; print both times, the ratio, and an unchanged re-run of sealos.
#
#   hack/bench-apply.sh [SEALOS_BINARY]      (needs root: test nodes are sshd in namespaces)
#
# BENCH_DIR (default .bench/apply) keeps the generated data between runs.
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=$(realpath "${1:-bin/sealos}")
WORK=$(realpath -m "${BENCH_DIR:-.bench/apply}")
DATA=$WORK/data
[ "$(id -u)" = 0 ] || { echo "bench-apply: needs root (test nodes)" >&2; exit 1; }
[ -x "$BIN" ] || { echo "bench-apply: no sealos binary at $BIN (make build)" >&2; exit 1; }
command -v scp >/dev/null || { echo "bench-apply: needs scp (openssh-client)" >&2; exit 1; }

now() { date +%s.%N; }
since() { awk -v a="$1" -v b="$(now)" 'BEGIN{printf "%.2f", b-a}'; }

if [ ! -f "$DATA/.done" ]; then
	echo "generating ~1 GB of test data in $DATA" >&2
	rm -rf "$DATA"; mkdir -p "$DATA/big"
	# ~400 MB of small files (16 KiB of base64 text each, ~25k files in 16 directories)...
	for d in $(seq -w 0 15); do
		mkdir -p "$DATA/small/$d"
		head -c 19M /dev/urandom | base64 -w 100 | split -b 16k -a 3 - "$DATA/small/$d/f"
	done
	# ...and 6 x 100 MB of incompressible data (binaries, image blobs).
	for i in 1 2 3 4 5 6; do head -c 100M /dev/urandom >"$DATA/big/blob$i"; done
	touch "$DATA/.done"
fi
files=$(find "$DATA" -type f ! -name .done | wc -l)
size=$(du -sm --exclude=.done "$DATA" | cut -f1)
echo "data: $files files, $size MiB" >&2

ROOT=$WORK/root
rm -rf "$ROOT"
go run ./apply/internal/benchimage -root "$ROOT" -dir "$DATA" -ref bench/rootfs:v1

export NODES_DIR=/var/tmp/sealos-bench-nodes NODES_PREFIX=127.0.9.
cleanup() {
	"$BIN" --root "$ROOT" reset --cluster bench --force >/dev/null 2>&1 || true
	testdata/nodes.sh stop || true
	rm -rf "$NODES_DIR"
}
trap cleanup EXIT
eval "$(testdata/nodes.sh start 3 2>/dev/null)"
read -r N1 N2 N3 <<<"$NODES_IPS"

t=$(now)
"$BIN" --root "$ROOT" run bench/rootfs:v1 --cluster bench --masters "$N1" --nodes "$N2,$N3" -i "$NODES_KEY" >/dev/null
sealos_s=$(since "$t")

t=$(now)
"$BIN" --root "$ROOT" run bench/rootfs:v1 --cluster bench -i "$NODES_KEY" >/dev/null
rerun_s=$(since "$t")

t=$(now)
for ip in $N1 $N2 $N3; do
	scp -r -q -i "$NODES_KEY" -o StrictHostKeyChecking=no -o UserKnownHostsFile=/dev/null \
		"$DATA" "root@$ip:/var/lib/sealos/scp-bench"
done
scp_s=$(since "$t")

# Check sealos' copy on a node against the source.
want=$(cd "$DATA" && find . -type f ! -name .done | sort | xargs -d '\n' cat | sha256sum | cut -c1-16)
got=$(cd "$NODES_DIR/node3/sealos/data/bench/rootfs" && find . -type f ! -name .done | sort | xargs -d '\n' cat | sha256sum | cut -c1-16)
[ "$want" = "$got" ] || { echo "bench-apply: node3's rootfs differs from the source" >&2; exit 1; }

echo "bench-apply: $files files, $size MiB to 3 nodes"
printf '  %-38s %8ss\n' "sealos run (plan + ship, first run)" "$sealos_s"
printf '  %-38s %8ss\n' "scp -r to each node in turn" "$scp_s"
printf '  %-38s %8ss\n' "sealos run, unchanged re-run" "$rerun_s"
awk -v s="$sealos_s" -v c="$scp_s" 'BEGIN{printf "  ratio scp/sealos: %.2fx (target >= 2x)\n", c/s}'
