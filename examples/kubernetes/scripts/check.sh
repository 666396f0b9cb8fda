#!/usr/bin/env bash
# check.sh: runs on every host before init.sh and fails early, with a reason, on a host
# that cannot take this rootfs. Light on purpose: the apply engine checks ports and swap
# itself, and kubeadm runs its own preflight checks later.
set -euo pipefail
cd "$(dirname "$0")/.."

fail() { echo "check: $(hostname): $*" >&2; exit 1; }

[ "$(uname -s)" = Linux ] || fail "not Linux ($(uname -s)): this image carries linux/amd64 binaries"
[ "$(uname -m)" = x86_64 ] || fail "not amd64 ($(uname -m)): this image carries linux/amd64 binaries"
[ "$(id -u)" = 0 ] || fail "not root: init.sh installs binaries, units and configuration"

# containerd and runc are Debian's builds (dynamically linked: glibc, and libseccomp for
# runc): see that they run here before anything is installed.
for b in runc containerd; do
	if [ -x "bin/$b" ] && ! "bin/$b" --version >/dev/null 2>&1; then
		fail "bin/$b does not run here (it needs glibc >= 2.36$([ "$b" = runc ] && echo " and libseccomp2")): $("bin/$b" --version 2>&1 | head -n 1)"
	fi
done

# Tools kubeadm's preflight requires (mount, losetup, cp) and the apply engine's pod
# routes use (ip): say which is missing now rather than halfway.
for t in mount losetup cp ip; do
	command -v "$t" >/dev/null || fail "$t not found (util-linux, mount, coreutils, iproute2)"
done
# The CNI bridge (masquerade) and portmap plugins run the host's iptables for every pod.
command -v iptables >/dev/null || fail "iptables not found (apt-get install iptables): pods get no network without it"
echo "check: $(hostname): ok"
