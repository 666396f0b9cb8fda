#!/usr/bin/env bash
# init.sh: runs on every host (as root, in <rootfs>/scripts, with the image env exported;
# the apply engine has rendered etc/**/*.tmpl next to the templates). Installs the
# container runtime and the Kubernetes node binaries and configuration, then starts
# containerd and the kubelet service and waits until containerd answers. kubeadm init/join
# comes after, from the apply engine.
#
# Idempotent: files are written only when their content differs, and a daemon is restarted
# only when something it reads changed. A second run changes nothing and restarts nothing.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOTFS=$PWD
export PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin

# Defaults of the image ENV, for a run outside the apply engine.
: "${criData:=/var/lib/containerd}" "${sandboxImage:=registry.k8s.io/pause:3.10.1}"
: "${registryDomain:=sealos.hub}" "${registryPort:=5000}"
export criData sandboxImage registryDomain registryPort

BIN=/usr/local/bin # not /usr/bin: hosts of the test harness overlay /usr/local per host
CNI_BIN=/opt/cni/bin
SOCK=unix:///run/containerd/containerd.sock

log() { echo "init: $(hostname): $*" >&2; }

# What changed, for the restarts at the end.
containerd_changed=
kubelet_changed=

# put SRC DST MODE: installs SRC as DST when the content or mode differs (a new file renamed
# over the old one: a running binary is never written in place). Returns 0 if it wrote.
put() {
	local src=$1 dst=$2 mode=$3
	if [ -f "$dst" ] && cmp -s "$src" "$dst" && [ "$(stat -c %a "$dst")" = "${mode#0}" ]; then
		return 1
	fi
	mkdir -p "$(dirname "$dst")"
	cp "$src" "$dst.sealos-new"
	chmod "$mode" "$dst.sealos-new"
	mv -f "$dst.sealos-new" "$dst"
	log "installed $dst"
}

# render_missing: renders etc/**/*.tmpl that have no output yet ({{ .key }} -> $key), for
# runs outside the apply engine, which renders them itself (and better: Go templates).
render_missing() {
	local t
	while IFS= read -r -d '' t; do
		[ -f "${t%.tmpl}" ] && continue
		perl -pe 's/\{\{\s*\.(\w+)\s*\}\}/$ENV{$1} \/\/ ""/ge' "$t" >"${t%.tmpl}"
	done < <(find etc -name '*.tmpl' -type f -print0)
}

install_binaries() {
	local b
	for b in containerd containerd-shim-runc-v2 ctr runc; do
		if put "bin/$b" "$BIN/$b" 0755; then containerd_changed=1; fi
	done
	for b in kubeadm kubectl crictl; do
		put "bin/$b" "$BIN/$b" 0755 || true
	done
	if put bin/kubelet "$BIN/kubelet" 0755; then kubelet_changed=1; fi
	# CNI plugins are run per pod: new ones take effect without a restart.
	for b in bin/cni/*; do
		put "$b" "$CNI_BIN/$(basename "$b")" 0755 || true
	done
}

# oom_config FILE: containerd's config as this host needs it. Where root cannot lower
# oom_score_adj (no CAP_SYS_RESOURCE, e.g. in some sandboxes), runc fails every container
# that asks for a lower value than its parent ("can't get final child's PID from pipe:
# EOF"), the critical pods first: restrict_oom_score_adj makes containerd ask for no less
# than its own.
oom_config() {
	if (echo -999 >/proc/self/oom_score_adj) 2>/dev/null; then
		cat "$1"
	else
		log "root cannot lower oom_score_adj here (no CAP_SYS_RESOURCE): containerd gets restrict_oom_score_adj = true"
		sed 's/^\([[:space:]]*restrict_oom_score_adj[[:space:]]*=[[:space:]]*\)false/\1true/' "$1"
	fi
}

install_config() {
	local tmp f rel
	tmp=$(mktemp)
	oom_config etc/containerd/config.toml >"$tmp"
	if put "$tmp" /etc/containerd/config.toml 0644; then containerd_changed=1; fi
	rm -f "$tmp"
	# hosts.toml per registry: containerd reads them at each pull, no restart needed. Ours
	# replace a previous run's; other registries' files are left alone.
	while IFS= read -r -d '' f; do
		rel=${f#etc/containerd/certs.d/}
		put "$f" "/etc/containerd/certs.d/$rel" 0644 || true
	done < <(find etc/containerd/certs.d -name hosts.toml -type f -print0)
	put etc/crictl.yaml /etc/crictl.yaml 0644 || true
	put etc/sysctl.d/99-sealos-kubernetes.conf /etc/sysctl.d/99-sealos-kubernetes.conf 0644 || true
	if put etc/systemd/system/containerd.service /etc/systemd/system/containerd.service 0644; then containerd_changed=1; fi
	if put etc/systemd/system/kubelet.service /etc/systemd/system/kubelet.service 0644; then kubelet_changed=1; fi
	if put etc/systemd/system/kubelet.service.d/10-kubeadm.conf /etc/systemd/system/kubelet.service.d/10-kubeadm.conf 0644; then kubelet_changed=1; fi
	mkdir -p /etc/cni/net.d /etc/kubernetes/manifests /var/lib/kubelet "$criData"
}

# kernel: modules and sysctls pods need, best effort: a host may be a container or a
# namespace without /lib/modules; kubeadm's preflight says what is missing.
kernel() {
	# A module built into the kernel shows as /sys/module/overlay or, for br_netfilter, as
	# its sysctls.
	[ -d /sys/module/overlay ] || modprobe overlay 2>/dev/null || log "could not load the kernel module overlay"
	[ -e /proc/sys/net/bridge/bridge-nf-call-iptables ] || modprobe br_netfilter 2>/dev/null ||
		log "could not load the kernel module br_netfilter"
	# Written straight to /proc/sys (procps may be missing); a key the kernel lacks (the
	# bridge ones without br_netfilter) is skipped.
	local key value
	while IFS='= ' read -r key value; do
		case "$key" in '' | '#'*) continue ;; esac
		echo "$value" >"/proc/sys/${key//.//}" 2>/dev/null || log "could not set $key = $value"
	done </etc/sysctl.d/99-sealos-kubernetes.conf
	[ "$(cat /proc/sys/net/ipv4/ip_forward 2>/dev/null)" = 1 ] || log "net.ipv4.ip_forward is not 1: pods will not reach other hosts"
}

# wait_containerd: up to 60 s for containerd's CRI to answer.
wait_containerd() {
	for _ in $(seq 1 60); do
		if crictl --runtime-endpoint "$SOCK" --timeout 2s info >/dev/null 2>&1; then
			log "containerd answers on $SOCK"
			return 0
		fi
		sleep 1
	done
	log "containerd did not answer on $SOCK within 60 s:"
	crictl --runtime-endpoint "$SOCK" --timeout 2s info >&2 || true
	[ ! -f /var/log/sealos/containerd.log ] || tail -n 20 /var/log/sealos/containerd.log >&2
	return 1
}

render_missing
install_binaries
install_config
kernel
# A service is restarted when what it reads changed, else only started (a no-op when it
# runs).
if [ -n "$containerd_changed" ]; then scripts/service.sh restart containerd; else scripts/service.sh start containerd; fi
wait_containerd
if [ -n "$kubelet_changed" ]; then scripts/service.sh restart kubelet; else scripts/service.sh start kubelet; fi
log "containerd and kubelet are installed and started (Kubernetes ${kubeVersion:-}; $ROOTFS)"
