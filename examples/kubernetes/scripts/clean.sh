#!/usr/bin/env bash
# clean.sh: runs on each host on `sealos reset` and `sealos delete` (as root, in
# <rootfs>/scripts). Undoes kubeadm and init.sh: the node leaves the cluster, pods and
# containers go, the daemons stop, their mounts, network devices, routes and iptables
# chains go, and every file init.sh or kubeadm wrote is removed.
#
# Each step goes on after a failure (a half-installed host is cleaned as far as possible),
# and a host that is already clean is left as it is: the script never fails.
set -uo pipefail
cd "$(dirname "$0")/.." 2>/dev/null || true
export PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
: "${criData:=/var/lib/containerd}"

SOCK=unix:///run/containerd/containerd.sock
BIN=/usr/local/bin
# Everything init.sh installs in $BIN (and whatever else this image's bin/ has).
OURS="kubeadm kubelet kubectl crictl containerd containerd-shim-runc-v2 ctr runc"
SERVICE=$PWD/scripts/service.sh

log() { echo "clean: $(hostname): $*" >&2; }
have() { command -v "$1" >/dev/null 2>&1; }

# service ACTION NAME: scripts/service.sh, or what it does, if the rootfs is gone already.
service() {
	if [ -x "$SERVICE" ]; then "$SERVICE" "$@"; return; fi
	if [ -d /run/systemd/system ] && have systemctl; then systemctl "$1" "$2" 2>/dev/null; return; fi
	local pid
	pid=$(cat "/run/sealos/$2.pid" 2>/dev/null) || return 0
	kill -TERM "$pid" 2>/dev/null; sleep 1; kill -KILL -- "-$pid" 2>/dev/null
	rm -f "/run/sealos/$2.pid"
}

kubeadm_reset() {
	have kubeadm || return 0
	# It stops the kubelet, removes the static pods' containers, /etc/kubernetes' files
	# and the local etcd member's data. Bounded: it may try to reach a cluster that is gone.
	timeout 180 kubeadm reset -f --cri-socket "$SOCK" >&2 || log "kubeadm reset failed (going on)"
}

remove_pods() {
	if have crictl && crictl --runtime-endpoint "$SOCK" --timeout 5s info >/dev/null 2>&1; then
		timeout 120 crictl --runtime-endpoint "$SOCK" --timeout 30s rmp -fa >&2 || log "crictl rmp -fa failed (going on)"
	fi
}

# stop_containerd: containerd, then what it leaves running by design (containers and their
# shims), found through runc's state under /run/containerd: only this host's, even where
# several test hosts share one process table.
stop_containerd() {
	service stop containerd || true
	local root id pid ns
	if have runc; then
		for root in /run/containerd/runc/*/; do
			[ -d "$root" ] || continue
			for id in $(runc --root "$root" list -q 2>/dev/null); do
				runc --root "$root" delete -f "$id" >/dev/null 2>&1 || true
			done
		done
	fi
	# Shims of this host: containerd-shim-runc-v2 processes in our mount namespace, whose
	# address is our socket.
	ns=$(readlink /proc/self/ns/mnt)
	for pid in $(pgrep -f 'containerd-shim-runc-v2 .*-address /run/containerd/containerd.sock' 2>/dev/null); do
		[ "$(readlink "/proc/$pid/ns/mnt" 2>/dev/null)" = "$ns" ] && kill -KILL "$pid" 2>/dev/null
	done
	return 0
}

# unmount_below DIR: unmounts every mount strictly below DIR, deepest first (DIR itself
# may be a mount of the host's own, e.g. a disk for containerd: it stays).
unmount_below() {
	local d=$1 m
	[ -d "$d" ] || return 0
	# /proc/self/mountinfo field 5 is the mount point, with octal escapes (\040 = space).
	awk -v d="$d/" 'index($5, d) == 1 { print $5 }' /proc/self/mountinfo |
		while IFS= read -r m; do printf '%b\n' "$m"; done |
		awk '{ print gsub("/", "/"), $0 }' | sort -rn | cut -d' ' -f2- |
		while IFS= read -r m; do
			umount "$m" 2>/dev/null || umount -l "$m" 2>/dev/null || log "cannot unmount $m"
		done
}

# remove PATH...: removes each path; a directory that is itself a mount point is emptied
# instead. --one-file-system: never through a mount left below it.
remove() {
	local p
	for p in "$@"; do
		[ -e "$p" ] || [ -L "$p" ] || continue
		if [ -d "$p" ] && [ ! -L "$p" ] && mountpoint -q "$p" 2>/dev/null; then
			find "$p" -mindepth 1 -maxdepth 1 -exec rm -rf --one-file-system {} + 2>/dev/null ||
				log "cannot empty $p"
		else
			rm -rf --one-file-system "$p" 2>/dev/null || log "cannot remove $p"
		fi
	done
}

# network: the CNI bridge and its veths, and the pod routes the apply engine added between
# nodes (proto 233).
network() {
	have ip || return 0
	local l
	for l in $(ip -o link show master cni0 2>/dev/null | awk -F': ' '{ print $2 }' | cut -d@ -f1); do
		ip link del "$l" 2>/dev/null || true
	done
	ip link del cni0 2>/dev/null || true
	# veths the bridge plugin made (veth + 8 hex digits) whose bridge is gone already
	for l in $(ip -o link show type veth 2>/dev/null | awk -F': ' '{ print $2 }' | cut -d@ -f1 | grep -E '^veth[0-9a-f]{8}$'); do
		ip link del "$l" 2>/dev/null || true
	done
	ip route flush proto 233 2>/dev/null || true
	# pod network namespaces containerd could not remove (it was down): /run/netns/cni-*
	local n
	for n in /run/netns/cni-*; do
		[ -e "$n" ] || continue
		umount "$n" 2>/dev/null || umount -l "$n" 2>/dev/null || true
		rm -f "$n" 2>/dev/null || true
	done
}

# iptables_clean SAVE RESTORE: removes the chains named KUBE-* and CNI-* (kube-proxy, the
# kubelet, the CNI plugins) and the rules that jump to them from other chains, in the
# filter, nat and mangle tables, with one iptables-restore per table.
iptables_clean() {
	local save=$1 restore=$2 t script
	have "$save" && have "$restore" || return 0
	for t in filter nat mangle; do
		script=$("$save" -t "$t" 2>/dev/null | awk -v t="$t" '
			/^:(KUBE-|CNI-)/ { ours[++n] = substr($1, 2) }
			/^-A / && $2 !~ /^(KUBE-|CNI-)/ {
				for (i = 3; i < NF; i++) if (($i == "-j" || $i == "-g") && $(i + 1) ~ /^(KUBE-|CNI-)/) { del[++m] = "-D" substr($0, 3); break }
			}
			END {
				if (n == 0 && m == 0) exit
				print "*" t
				for (i = 1; i <= m; i++) print del[i]
				for (i = 1; i <= n; i++) print "-F " ours[i]
				for (i = 1; i <= n; i++) print "-X " ours[i]
				print "COMMIT"
			}')
		[ -n "$script" ] || continue
		echo "$script" | "$restore" --noflush 2>/dev/null || log "$restore: could not remove every KUBE-/CNI- chain of table $t"
	done
}

# firewall: both iptables back ends. The legacy one only where its tables exist already:
# reading them would create them, and iptables-nft then warns about them forever.
firewall() {
	local v
	for v in "" -nft -legacy; do
		legacy_unused iptables$v /proc/net/ip_tables_names || iptables_clean "iptables$v-save" "iptables$v-restore"
		legacy_unused ip6tables$v /proc/net/ip6_tables_names || iptables_clean "ip6tables$v-save" "ip6tables$v-restore"
	done
}

# legacy_unused TOOL NAMES: TOOL is the legacy back end and NAMES (the kernel's list of
# its tables) is empty.
legacy_unused() {
	have "$1" || return 1
	case "$("$1" --version 2>/dev/null)" in *legacy*) ;; *) return 1 ;; esac
	[ -z "$(cat "$2" 2>/dev/null)" ] # (procfs files have no size: read it)
}

files() {
	local b
	for b in $OURS $(ls bin 2>/dev/null); do
		[ "$b" = cni ] || remove "$BIN/$b"
	done
	remove /etc/kubernetes /var/lib/kubelet /var/lib/etcd /etc/cni/net.d /opt/cni/bin /var/lib/cni \
		/etc/containerd /etc/crictl.yaml /etc/sysctl.d/99-sealos-kubernetes.conf \
		/etc/systemd/system/containerd.service /etc/systemd/system/kubelet.service \
		/etc/systemd/system/kubelet.service.d /root/.kube \
		"$criData" /run/containerd /run/sealos/containerd.pid /run/sealos/kubelet.pid
	if [ -d /run/systemd/system ] && have systemctl; then
		systemctl disable containerd.service kubelet.service >/dev/null 2>&1 || true
		systemctl daemon-reload 2>/dev/null || true
	fi
}

# The kubelet first: with it stopped nothing recreates the static pods kubeadm removes
# (kubeadm stops it itself only through systemd), and the running apiserver still lets
# kubeadm take the node's etcd member out.
service stop kubelet || true
kubeadm_reset
remove_pods
stop_containerd
for d in /var/lib/kubelet /run/containerd "$criData"; do unmount_below "$d"; done
network
firewall
files
log "cleaned"
exit 0
