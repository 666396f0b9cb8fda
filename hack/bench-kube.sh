#!/usr/bin/env bash
# bench-kube: seconds from `sealos run` of the Kubernetes rootfs image (make kube-image) and
# the test application (hack/kube/app-image.sh) to every node Ready, for 1 master + 1 node
# and 3 masters + 1 node on test hosts with their own network namespace (testdata/nodes.sh,
# NODES_NETNS=1), split into the apply's steps; then the unchanged re-run; and a floor
# line: the same rootfs through plain `tar | ssh` to the same hosts at once.
#
#   hack/bench-kube.sh [SEALOS_BINARY]        (needs root)
#
# BENCH_RUNS (default 1) runs per topology; caches are dropped before every timed run.
# No peer tool runs here: the real sealos needs systemd on its hosts and its images from
# the internet, neither of which this machine has, so the floor line is the comparison.
set -euo pipefail
cd "$(dirname "$0")/.."
. hack/bench-lib.sh # for bench_result only: the timing below is this script's own
BIN=$(realpath "${1:-bin/sealos}")
RUNS=${BENCH_RUNS:-1}
[ "$(id -u)" = 0 ] || { echo "bench-kube: needs root (test hosts, embedded BuildKit)" >&2; exit 1; }
[ -x "$BIN" ] || { echo "bench-kube: no sealos binary at $BIN (make build)" >&2; exit 1; }

WORK=$(mktemp -d /var/tmp/sealos-bench-kube.XXXXXX)
export SEALOS_ROOT=$WORK/root
export NODES_DIR=$WORK/nodes NODES_PREFIX=127.0.44. NODES_NETNS=1
cleanup() {
	"$BIN" reset --cluster bench --force >/dev/null 2>&1 || true
	testdata/nodes.sh stop >/dev/null 2>&1 || true
	rm -rf "$WORK"
}
trap cleanup EXIT

now() { date +%s.%N; }
since() { awk -v a="$1" -v b="$(now)" 'BEGIN{printf "%.1f", b-a}'; }
drop() { sync; echo 3 >/proc/sys/vm/drop_caches; }

kube=$(hack/kube/image.sh "$BIN" | tail -n1)
app=$(hack/kube/app-image.sh "$BIN" | tail -n1)

# step LOG NAME: the seconds the apply's log gives a step ("step ship: 8.7s",
# "kubernetes: init done in 15.5s").
step() {
	sed -n -e "s/^step $2: \([0-9.]*\)s$/\1/p" -e "s/^kubernetes: $2 done in \([0-9.]*\)s$/\1/p" "$1" | tail -n1
}

bench() {
	local masters=$1 nodes=$2 n=$(($1 + $2)) run
	for run in $(seq 1 "$RUNS"); do
		eval "$(testdata/nodes.sh start "$n" 2>/dev/null)"
		local ips=($NODES_IPS)
		local m; m=$(IFS=,; echo "${ips[*]:0:$masters}")
		local w; w=$(IFS=,; echo "${ips[*]:$masters}")
		drop
		local t0; t0=$(now)
		"$BIN" run "$kube" "$app" --cluster bench --masters "$m" --nodes "$w" -i "$NODES_KEY" >/dev/null 2>"$WORK/run.log" ||
			{ tail -40 "$WORK/run.log" >&2; exit 1; }
		local total; total=$(since "$t0")
		echo "$total" >>"$WORK/ready-$masters-$nodes"
		t0=$(now)
		"$BIN" run "$kube" "$app" --cluster bench >/dev/null 2>"$WORK/rerun.log"
		local rerun; rerun=$(since "$t0")
		echo "$rerun" >>"$WORK/rerun-$masters-$nodes"
		local l=$WORK/run.log
		printf '%s+%s run %s: Ready with the app in %ss (ship %ss, registry %ss, scripts %ss, kubeadm init %ss, joins %ss, network %ss, wait Ready %ss, app %ss); unchanged re-run %ss\n' \
			"$masters" "$nodes" "$run" "$total" "$(step "$l" ship)" "$(step "$l" registry)" "$(step "$l" scripts)" \
			"$(step "$l" init)" "$(step "$l" joins)" "$(step "$l" network)" "$(step "$l" 'wait Ready')" "$(step "$l" commands)" "$rerun"
		# The floor: the rendered rootfs, unpacked on this machine by the run, through tar
		# and ssh to every host at once, as many streams as the run used.
		# (kept out of the cluster's state, which reset removes)
		local rootfs=$WORK/rootfs
		rm -rf "$rootfs"
		mv "$(ls -d "$SEALOS_ROOT"/clusters/bench/work/rootfs-* | grep -v manifest | head -n1)" "$rootfs"
		local mib; mib=$(du -sm "$rootfs" | cut -f1)
		"$BIN" reset --cluster bench >/dev/null 2>&1
		drop
		t0=$(now)
		for ip in "${ips[@]}"; do
			tar -C "$rootfs" -cf - . | ssh -i "$NODES_KEY" -o StrictHostKeyChecking=no -o UserKnownHostsFile=/dev/null -o LogLevel=ERROR \
				"root@$ip" 'mkdir -p /var/lib/sealos/floor && tar -x -C /var/lib/sealos/floor -f - && sync' &
		done
		wait
		local floor_s; floor_s=$(since "$t0")
		echo "$floor_s" >>"$WORK/floor-$masters-$nodes"
		printf '%s+%s floor (ship): tar | ssh of the rootfs (%s MiB) to %s hosts at once: %ss\n' "$masters" "$nodes" "$mib" "$n" "$floor_s"
		testdata/nodes.sh stop >/dev/null 2>&1
	done
	# Machine-readable lines (hack/bench-all.sh): no peer; the floor is the ship step's.
	bench_result bench-kube "$masters+$nodes: run to every node Ready" - "$WORK/ready-$masters-$nodes" - "$WORK/floor-$masters-$nodes" \
		"no peer tool; floor: tar | ssh of the rootfs to every host at once (the ship step only)"
	bench_result bench-kube "$masters+$nodes: unchanged re-run" - "$WORK/rerun-$masters-$nodes" - -
}

bench 1 1
bench 3 1
