#!/usr/bin/env bash
# nodes.sh: target nodes for apply tests and benchmarks, on this machine.
#
#   nodes.sh start N     start N nodes: one sshd each on ${NODES_PREFIX}X (X = 11, 12, ...)
#   nodes.sh stop        stop every node and everything running inside them
#   nodes.sh kill I      kill node I (1-based): its sshd and every session in it
#   nodes.sh restart I   start node I again with the same state (after kill)
#   nodes.sh env         print the connection settings (KEY=VALUE, for scripts and tests)
#   nodes.sh sh I CMD..  run CMD inside node I (its namespaces and, with NODES_NETNS=1, its
#                        cgroups), printing its output
#
# Each node is an sshd in its own mount namespace (unshare -m, private propagation) with
# overlays over /etc, /usr/local and /opt and bind mounts over /var/lib/sealos, /etc/hosts,
# /root/.ssh, /etc/shadow and /tmp, so what an apply writes there stays per node. Root logs in with the generated key
# (id_ed25519), with the passphrase key (id_ed25519_pass, passphrase in ./passphrase) or with
# the password in ./password. Needs root, openssh-server, unshare, and openssl or perl.
#
# With NODES_NETNS=1 each node is a "host", enough of a machine for containerd, kubelet and
# pods (see the "Hosts" section below): its own network, UTS and cgroup namespaces, sysfs,
# /run, /var/lib/{containerd,kubelet,etcd,cni,registry}, /var/log and /root/.kube. Its sshd
# listens on 10.250.O.X (O = third octet of NODES_PREFIX) behind the bridge sealos-brO. Needs
# iproute2 and iptables too. kill I kills everything in the host (a power cut); restart I
# boots it again in the same network namespace with the same disks (a fresh /run).
#
# Settings (environment):
#   NODES_DIR     state directory (default /var/tmp/sealos-nodes); must not be under /tmp,
#                 which every node replaces by its own
#   NODES_PREFIX  address prefix (default 127.0.0.), so several sets can run side by side
#   NODES_PORT    sshd port (default 22)
#   NODES_NETNS   1: hosts in their own network namespaces (start remembers it in NODES_DIR)
set -euo pipefail

DIR=${NODES_DIR:-/var/tmp/sealos-nodes}
PREFIX=${NODES_PREFIX:-127.0.0.}
PORT=${NODES_PORT:-22}
SSHD=${SSHD:-/usr/sbin/sshd}

die() { echo "nodes.sh: $*" >&2; exit 1; }

[ "$(id -u)" = 0 ] || die "needs root (mount namespaces, sshd as root)"
case "$DIR" in /tmp|/tmp/*) die "NODES_DIR=$DIR: must not be under /tmp (each node mounts its own /tmp)";; esac
[ -x "$SSHD" ] || die "$SSHD not found: apt-get install -y openssh-server"

# netns: hosts mode, asked for now or remembered from start (so stop, kill, sh need no flag).
netns() { [ "${NODES_NETNS:-}" = 1 ] || [ -f "$DIR/netns" ]; }

# The set's number O, third octet of the prefix: it names the bridge, the subnet
# 10.250.O.0/24, the network namespaces and the cgroups of the set's hosts.
OCT=$(echo "$PREFIX" | cut -d. -f3)
case "$OCT" in '' | *[!0-9]*) OCT=x ;; esac
if netns; then [ "$OCT" != x ] && [ "$OCT" -le 255 ] || die "NODES_PREFIX=$PREFIX: no third octet"; fi
SUBNET=10.250.$OCT
BRIDGE=sealos-br$OCT # interface names are at most 15 characters

addr() { if netns; then echo "$SUBNET.$((10 + $1))"; else echo "${PREFIX}$((10 + $1))"; fi; }
hostname_of() { if netns; then echo "node$1-$OCT"; else echo "node$1"; fi; }

# start_node I: starts node I's sshd in a new mount namespace and records its pid.
start_node() {
	local i=$1 n="$DIR/node$1"
	[ -d "$n" ] || die "node $i was never set up (run start first)"
	mkdir -p /var/lib/sealos /run/sshd
	[ -d /root/.ssh ] || install -d -m 700 /root/.ssh
	setsid unshare -m --propagation private sh -c '
		set -e
		n=$1
		# Writes to /etc, /usr/local and /opt stay in the node (overlays; best effort).
		for d in etc usr/local opt; do
			u="$n/overlay/$(echo $d | tr / _)"
			mkdir -p "$u/upper" "$u/work" "/$d"
			mount -t overlay overlay -o "lowerdir=/$d,upperdir=$u/upper,workdir=$u/work" "/$d" ||
				echo "nodes.sh: no overlay over /$d: writes there reach this machine" >&2
		done
		mount --bind "$n/sealos" /var/lib/sealos
		mount --bind "$n/hosts" /etc/hosts
		mount --bind "$n/ssh" /root/.ssh
		mount --bind "$n/shadow" /etc/shadow
		mount --bind "$n/tmp" /tmp
		# A node is a fresh machine: root gets the stock Debian shell startup files, not those
		# of this machine (a .bashrc may run tools that take global locks, e.g. pyenv rehash).
		for f in .bashrc .profile; do
			if [ -e "/root/$f" ]; then mount --bind "$n/home$f" "/root/$f"; fi
		done
		exec "$2" -D -e -f "$n/sshd_config"
	' node "$n" "$SSHD" </dev/null >>"$n/sshd.log" 2>&1 &
	local pid=$!
	echo "$pid" >"$n/pid"
	wait_sshd "$i" "$pid"
	readlink "/proc/$pid/ns/mnt" >"$n/ns"
}

# wait_sshd I PID: waits (bounded) until node I answers on its port.
wait_sshd() {
	local a; a=$(addr "$1")
	for _ in $(seq 1 100); do
		if (exec 3<>"/dev/tcp/$a/$PORT") 2>/dev/null; then return 0; fi
		kill -0 "$2" 2>/dev/null || break
		sleep 0.05
	done
	cat "$DIR/node$1/sshd.log" >&2 || true
	die "node $1 ($a:$PORT) did not start"
}

# kill_node I: kills every process in node I's mount namespace (its sshd and sessions).
kill_node() {
	local n="$DIR/node$1"
	[ -f "$n/ns" ] || return 0
	local ns; ns=$(cat "$n/ns")
	local p pids=()
	for p in /proc/[0-9]*; do
		[ "$(readlink "$p/ns/mnt" 2>/dev/null)" = "$ns" ] && pids+=("${p#/proc/}")
	done
	[ ${#pids[@]} -eq 0 ] || kill -9 "${pids[@]}" 2>/dev/null || true
	rm -f "$n/ns" "$n/pid"
}

# ---- Hosts (NODES_NETNS=1) ---------------------------------------------------------------
#
# Host I of set O is:
#   network  netns sealos-O-I (a named one, in /run/netns, so it is configured before the
#            host boots and outlives kill/restart): lo, eth0 = 10.250.O.(10+I)/24, default
#            route via the bridge sealos-brO (10.250.O.1) in this machine's netns, which
#            routes nothing further (ip_forward stays as it is, FORWARD DROP rules for
#            traffic that would leave the bridge).
#   cgroups  sealos-nodes/O-I in every hierarchy under /sys/fs/cgroup, which the host sees
#            as / (cgroup namespace + its own cgroup mounts): a kubelet inside puts kubepods
#            there, and stop finds every process of the host, containers too.
#   mounts   a mount namespace like a node's, plus its own sysfs (for its netns), cgroup
#            mounts, /run, and per-host directories for the daemons' state.
#   uts      hostname node<I>-<O>.

# Per-host directories: mount point -> name under $DIR/nodeI.
HOST_DIRS="/var/lib/containerd:containerd /var/lib/kubelet:kubelet /var/lib/etcd:etcd
/var/lib/cni:cni /var/lib/registry:registry /var/log:log /root/.kube:kube"

# Sysctls a host may set, each a per-host file that starts (at every boot) with this machine's
# value: machine-wide ones kubelet sets at start (and fails if it cannot), which would
# otherwise change this machine; nf_conntrack_max, which kube-proxy sets (and fails if it
# cannot) but is read-only outside the first network namespace.
HOST_SYSCTLS="vm/overcommit_memory vm/panic_on_oom kernel/panic kernel/panic_on_oops
kernel/keys/root_maxkeys kernel/keys/root_maxbytes net/netfilter/nf_conntrack_max"

netns_name() { echo "sealos-$OCT-$1"; }
veth_name() { echo "sealos${OCT}h$1"; } # this machine's end; the host's end is eth0

# cgroup_mounts: this machine's cgroup hierarchies (v1 and the v2 one), one mount point each.
cgroup_mounts() { awk '$2 ~ "^/sys/fs/cgroup/" && ($3 == "cgroup" || $3 == "cgroup2") { print $2 }' /proc/self/mounts; }

# host_cgroups I: host I's cgroup in every hierarchy.
host_cgroups() { local m; for m in $(cgroup_mounts); do echo "$m/sealos-nodes/$OCT-$1"; done; }

# make_cgroups I: creates host I's cgroups. A cpuset cgroup takes no process before its cpus
# and mems are set: copy them from the parent.
make_cgroups() {
	local m c f
	for m in $(cgroup_mounts); do
		c="$m/sealos-nodes/$OCT-$1"
		mkdir -p "$c"
		[ -f "$m/cpuset.cpus" ] || continue
		for f in cpuset.cpus cpuset.mems; do
			[ -n "$(cat "$m/sealos-nodes/$f")" ] || cat "$m/$f" >"$m/sealos-nodes/$f"
			[ -n "$(cat "$c/$f")" ] || cat "$m/sealos-nodes/$f" >"$c/$f"
		done
	done
}

# join_cgroups I PID: moves PID into host I's cgroups.
join_cgroups() { local c; for c in $(host_cgroups "$1"); do echo "$2" >"$c/cgroup.procs"; done; }

# host_pids I: every process in host I's cgroups (sub-cgroups too: containers).
host_pids() {
	local c
	for c in $(host_cgroups "$1"); do
		if [ -d "$c" ]; then find "$c" -name cgroup.procs -exec cat {} +; fi
	done | sort -un
}

# thaw_host I: thaws host I's frozen cgroups (paused containers): a frozen process dies of
# SIGKILL only once thawed.
thaw_host() {
	local c f
	for c in $(host_cgroups "$1"); do
		[ -f "$c/freezer.state" ] || continue
		find "$c" -name freezer.state | while read -r f; do
			[ "$(cat "$f")" = THAWED ] || echo THAWED >"$f" 2>/dev/null || true
		done
	done
}

# kill_host I: kills every process of host I (with cgroup.kill where the kernel has it, and
# one by one), loops (bounded) until none is left, since they may fork meanwhile, then
# removes its cgroups, deepest first.
kill_host() {
	local i=$1 pids c
	for _ in $(seq 1 100); do
		pids=$(host_pids "$i")
		[ -n "$pids" ] || break
		thaw_host "$i"
		for c in $(host_cgroups "$i"); do
			if [ -f "$c/cgroup.kill" ]; then echo 1 >"$c/cgroup.kill" 2>/dev/null || true; fi
		done
		# shellcheck disable=SC2086
		kill -9 $pids 2>/dev/null || true
		sleep 0.05
	done
	pids=$(host_pids "$i")
	[ -z "$pids" ] || echo "nodes.sh: host $i: processes left:" $pids >&2
	for c in $(host_cgroups "$i"); do
		[ -d "$c" ] || continue
		for _ in $(seq 1 50); do # an emptied cgroup can stay busy for a moment
			find "$c" -depth -type d -exec rmdir {} + 2>/dev/null || true
			[ -d "$c" ] || break
			sleep 0.05
		done
		[ ! -d "$c" ] || echo "nodes.sh: host $i: cannot remove $c" >&2
	done
	rm -f "$DIR/node$i/pid"
}

# bridge_up: the set's bridge, and rules so that nothing arriving on it is routed elsewhere,
# nor anything routed onto it (bridged traffic between hosts passes).
bridge_up() {
	if ! ip link show "$BRIDGE" >/dev/null 2>&1; then
		ip link add "$BRIDGE" type bridge
		ip addr add "$SUBNET.1/24" dev "$BRIDGE"
	fi
	ip link set "$BRIDGE" up
	local t r
	for t in iptables ip6tables; do
		command -v $t >/dev/null || { [ $t = ip6tables ] && continue; die "iptables not found: apt-get install -y iptables"; }
		while read -r r; do
			# shellcheck disable=SC2086
			$t -C FORWARD $r 2>/dev/null || $t -I FORWARD $r
		done <<<"$(forward_rules)"
	done
}

forward_rules() {
	echo "-i $BRIDGE ! -o $BRIDGE -m comment --comment sealos-nodes -j DROP"
	echo "! -i $BRIDGE -o $BRIDGE -m comment --comment sealos-nodes -j DROP"
}

# bridge_down: removes the rules and the bridge.
bridge_down() {
	local t r
	for t in iptables ip6tables; do
		command -v $t >/dev/null || continue
		while read -r r; do
			# shellcheck disable=SC2086
			while $t -C FORWARD $r 2>/dev/null; do $t -D FORWARD $r; done
		done <<<"$(forward_rules)"
	done
	ip link del "$BRIDGE" 2>/dev/null || true
}

# host_net_up I: host I's network namespace, plugged into the bridge.
host_net_up() {
	local i=$1 ns veth; ns=$(netns_name "$1") veth=$(veth_name "$1")
	[ -e "/run/netns/$ns" ] || ip netns add "$ns"
	if ! ip link show "$veth" >/dev/null 2>&1; then
		ip link add "$veth" type veth peer name eth0 netns "$ns"
		ip link set "$veth" master "$BRIDGE" up
		ip -n "$ns" link set lo up
		ip -n "$ns" addr add "$(addr "$i")/24" dev eth0
		ip -n "$ns" link set eth0 up
		ip -n "$ns" route add default via "$SUBNET.1"
	fi
	# Pods on the host need forwarding and bridged traffic through iptables (kubeadm checks
	# both); both are per network namespace here. The second needs br_netfilter.
	nsenter --net="/run/netns/$ns" sh -c '
		echo 1 >/proc/sys/net/ipv4/ip_forward
		echo 1 >/proc/sys/net/bridge/bridge-nf-call-iptables 2>/dev/null ||
			echo "nodes.sh: no net.bridge.bridge-nf-call-iptables in the host (br_netfilter)" >&2
	'
}

# host_net_down I: removes host I's network namespace and veth.
host_net_down() {
	ip link del "$(veth_name "$1")" 2>/dev/null || true
	ip netns del "$(netns_name "$1")" 2>/dev/null || true
}

# The first process of a host: runs in the host's cgroups and network namespace, in new mount,
# UTS and cgroup namespaces; sets the host up, then becomes its sshd.
# Arguments: state dir, hostname, sshd, per-host dirs, per-host sysctls.
HOST_INIT='
set -e
n=$1
echo "$2" >/proc/sys/kernel/hostname
# The cgroup mounts of this machine (type, mount point, options) and links (cpu -> cpu,cpuacct),
# read before a new sysfs hides them.
cg=$(awk '\''$2 ~ "^/sys/fs/cgroup/" && ($3 == "cgroup" || $3 == "cgroup2") { print $3, $2, $4 }'\'' /proc/self/mounts)
links=$(find /sys/fs/cgroup -mindepth 1 -maxdepth 1 -type l -printf "%f %l\n")
# Mounts (and their submounts) this machine has on a path, detached: the hidden ones would
# still be listed in mountinfo (cgroups with root /../.., which confuse runc and kubelet;
# the network namespaces of other hosts, kept alive by /run/netns).
mounts_on() { awk -v d="$1" '\''$2 == d || index($2, d "/") == 1 { print $2 }'\'' /proc/self/mounts | sort -r; }
for m in $(mounts_on /sys) $(mounts_on /run); do umount -l "$m" 2>/dev/null || true; done
# A sysfs of this network namespace: /sys/class/net shows the host interfaces.
mount -t sysfs -o nosuid,nodev,noexec sysfs /sys
# The same hierarchies as on this machine, mounted in the cgroup namespace: / is the host.
mount -t tmpfs -o nosuid,nodev,noexec,mode=755 tmpfs /sys/fs/cgroup
echo "$cg" | while read -r type dir opts; do
	mkdir -p "$dir"
	opts=$(echo "$opts" | tr , "\n" | grep -v "^release_agent=" | paste -sd,)
	mount -t "$type" -o "$opts" cgroup "$dir"
done
echo "$links" | while read -r name target; do [ -z "$name" ] || ln -s "$target" "/sys/fs/cgroup/$name"; done
mount -t tmpfs -o nosuid,nodev,mode=755 tmpfs /run
mkdir -p /run/sshd /run/lock
# Writes to /etc, /usr/local and /opt stay in the host (overlays).
for d in etc usr/local opt; do
	u="$n/overlay/$(echo $d | tr / _)"
	mkdir -p "$u/upper" "$u/work" "/$d"
	mount -t overlay overlay -o "lowerdir=/$d,upperdir=$u/upper,workdir=$u/work" "/$d"
done
echo "$2" >/etc/hostname
[ -s "$n/machine-id" ] || od -An -N16 -tx1 /dev/urandom | tr -d " \n" >"$n/machine-id"
cp "$n/machine-id" /etc/machine-id
mount --bind "$n/sealos" /var/lib/sealos
mount --bind "$n/hosts" /etc/hosts
mount --bind "$n/ssh" /root/.ssh
mount --bind "$n/shadow" /etc/shadow
mount --bind "$n/tmp" /tmp
for f in .bashrc .profile; do
	if [ -e "/root/$f" ]; then mount --bind "$n/home$f" "/root/$f"; fi
done
for m in $4; do mount --bind "$n/${m#*:}" "${m%%:*}"; done
for s in $5; do
	[ -f "/proc/sys/$s" ] || continue
	f="$n/sysctl/$(echo "$s" | tr / .)"
	cat "/proc/sys/$s" >"$f"
	mount --bind "$f" "/proc/sys/$s"
done
# Mounts are shared inside the host, as on a systemd machine (containerd, kubelet and CSI
# expect it); they stay private to the host.
mount --make-rshared /
exec "$3" -D -e -f "$n/sshd_config"
'

# start_host I: boots host I and records the pid of its sshd (its first process).
start_host() {
	local i=$1 n="$DIR/node$1" m
	[ -d "$n" ] || die "host $i was never set up (run start first)"
	# Mount points on this machine (empty directories; removing them later could detach the
	# mounts of hosts of other sets).
	mkdir -p /var/lib/sealos
	[ -d /root/.ssh ] || install -d -m 700 /root/.ssh
	for m in $HOST_DIRS; do mkdir -p "${m%%:*}" "$n/${m#*:}"; done
	mkdir -p "$n/sysctl"
	bridge_up
	host_net_up "$i"
	make_cgroups "$i"
	# The subshell joins the host's cgroups, then execs (same pid) into the namespaces: the
	# cgroup namespace made then has the host's cgroups as its root.
	(
		join_cgroups "$i" "$BASHPID"
		exec setsid nsenter --net="/run/netns/$(netns_name "$i")" -- \
			unshare -m -u -C --propagation private -- \
			bash -c "$HOST_INIT" host "$n" "$(hostname_of "$i")" "$SSHD" "$HOST_DIRS" "$HOST_SYSCTLS"
	) </dev/null >>"$n/sshd.log" 2>&1 &
	local pid=$!
	echo "$pid" >"$n/pid"
	wait_sshd "$i" "$pid"
}

# host_ids: the hosts of this set that have cgroups or a network namespace, also those a
# crashed run left behind.
host_ids() {
	{
		seq 1 "$(cat "$DIR/count" 2>/dev/null || echo 0)"
		local m
		for m in $(cgroup_mounts); do
			find "$m/sealos-nodes" -mindepth 1 -maxdepth 1 -name "$OCT-*" -printf "%f\n" 2>/dev/null | sed "s/^$OCT-//" || true
		done
		ip netns list 2>/dev/null | awk '{ print $1 }' | sed -n "s/^sealos-$OCT-\([0-9]*\)$/\1/p"
	} | sort -un
}

# stop_hosts: kills every host of the set and removes everything made for them; each step
# goes on after errors (it cleans up after crashed runs too).
stop_hosts() {
	local i m
	for i in $(host_ids); do kill_host "$i" || true; done
	for i in $(host_ids); do host_net_down "$i" || true; done
	bridge_down || true
	for m in $(cgroup_mounts); do rmdir "$m/sealos-nodes" 2>/dev/null || true; done # other sets may use it
}

# sh_host I CMD...: runs CMD in host I: its cgroups first (what CMD starts is the host's, and
# stop finds it), then its namespaces.
sh_host() {
	local i=$1; shift
	local pid; pid=$(cat "$DIR/node$i/pid" 2>/dev/null) && kill -0 "$pid" 2>/dev/null || die "host $i is not running"
	join_cgroups "$i" "$BASHPID"
	exec nsenter -t "$pid" -m -u -n -C -- "$@"
}

# sh_node I CMD...: runs CMD in node I's mount namespace.
sh_node() {
	local i=$1; shift
	local pid; pid=$(cat "$DIR/node$i/pid" 2>/dev/null) && kill -0 "$pid" 2>/dev/null || die "node $i is not running"
	exec nsenter -t "$pid" -m -- "$@"
}

setup() {
	local count=$1
	mkdir -p "$DIR"
	chmod 700 "$DIR"
	if netns; then : >"$DIR/netns"; fi
	[ -f "$DIR/id_ed25519" ] || ssh-keygen -q -t ed25519 -N '' -C sealos-nodes -f "$DIR/id_ed25519"
	[ -f "$DIR/passphrase" ] || { head -c 12 /dev/urandom | od -An -tx1 | tr -d ' \n' >"$DIR/passphrase"; }
	[ -f "$DIR/id_ed25519_pass" ] || ssh-keygen -q -t ed25519 -N "$(cat "$DIR/passphrase")" -C sealos-nodes-pass -f "$DIR/id_ed25519_pass"
	[ -f "$DIR/password" ] || { head -c 12 /dev/urandom | od -An -tx1 | tr -d ' \n' >"$DIR/password"; }
	chmod 600 "$DIR/password" "$DIR/passphrase"
	local hash
	if command -v openssl >/dev/null; then
		hash=$(openssl passwd -6 "$(cat "$DIR/password")")
	else # perl-base is always there on Debian; its crypt is libc's
		hash=$(PW="$(cat "$DIR/password")" perl -e 'print crypt($ENV{PW}, "\$6\$" . join("", map { ("a".."z")[rand 26] } 1..16) . "\$")')
	fi
	local i
	for i in $(seq 1 "$count"); do
		local n="$DIR/node$i" a; a=$(addr "$i")
		mkdir -p "$n/sealos" "$n/ssh" "$n/tmp" "$n/hostkeys"
		chmod 700 "$n/ssh"
		chmod 1777 "$n/tmp"
		cat "$DIR/id_ed25519.pub" "$DIR/id_ed25519_pass.pub" >"$n/ssh/authorized_keys"
		chmod 600 "$n/ssh/authorized_keys"
		printf '127.0.0.1\tlocalhost\n%s\t%s\n' "$a" "$(hostname_of "$i")" >"$n/hosts"
		# root's password only inside the node: a private copy of /etc/shadow.
		awk -F: -v OFS=: -v h="$hash" '$1=="root"{$2=h} {print}' /etc/shadow >"$n/shadow"
		chmod 640 "$n/shadow"
		for f in .bashrc .profile; do
			if [ -f "/etc/skel/$f" ]; then cp "/etc/skel/$f" "$n/home$f"; else : >"$n/home$f"; fi
		done
		[ -f "$n/hostkeys/ssh_host_ed25519_key" ] || ssh-keygen -q -t ed25519 -N '' -f "$n/hostkeys/ssh_host_ed25519_key"
		cat >"$n/sshd_config" <<EOF
ListenAddress $a
Port $PORT
HostKey $n/hostkeys/ssh_host_ed25519_key
PidFile none
PermitRootLogin yes
PasswordAuthentication yes
PubkeyAuthentication yes
KbdInteractiveAuthentication no
# With PAM, Debian's pam_unix refuses root's password from our private shadow copy.
UsePAM no
StrictModes yes
AuthorizedKeysFile /root/.ssh/authorized_keys
Subsystem sftp internal-sftp
MaxSessions 64
MaxStartups 64:30:128
LogLevel ERROR
EOF
	done
	echo "$count" >"$DIR/count"
}

print_env() {
	local count; count=$(cat "$DIR/count" 2>/dev/null || echo 0)
	local ips=() i
	for i in $(seq 1 "$count"); do ips+=("$(addr "$i")"); done
	echo "NODES_IPS=\"${ips[*]}\""
	echo "NODES_PORT=$PORT"
	echo "NODES_KEY=$DIR/id_ed25519"
	echo "NODES_KEY_PASS=$DIR/id_ed25519_pass"
	echo "NODES_PASSPHRASE=$(cat "$DIR/passphrase")"
	echo "NODES_PASSWORD=$(cat "$DIR/password")"
	echo "NODES_DIR=$DIR"
	if netns; then
		echo "NODES_NETNS=1"
		echo "NODES_BRIDGE=$BRIDGE"
		echo "NODES_GATEWAY=$SUBNET.1"
	fi
}

case "${1:-}" in
start)
	count=${2:?usage: nodes.sh start N}
	"$0" stop >/dev/null 2>&1 || true
	setup "$count"
	for i in $(seq 1 "$count"); do
		if netns; then start_host "$i"; else start_node "$i"; fi
	done
	print_env
	echo "# connect: ssh -i $DIR/id_ed25519 -p $PORT -o StrictHostKeyChecking=no root@$(addr 1)" >&2
	;;
stop)
	count=$(cat "$DIR/count" 2>/dev/null || echo 0)
	for i in $(seq 1 "$count"); do kill_node "$i"; done
	if netns; then stop_hosts; rm -f "$DIR/netns"; fi
	;;
kill)
	if netns; then kill_host "${2:?usage: nodes.sh kill I}"; else kill_node "${2:?usage: nodes.sh kill I}"; fi
	;;
restart)
	if netns; then
		kill_host "${2:?usage: nodes.sh restart I}"
		start_host "$2"
	else
		kill_node "${2:?usage: nodes.sh restart I}"
		start_node "$2"
	fi
	;;
sh)
	[ $# -ge 3 ] || die "usage: nodes.sh sh I CMD..."
	i=$2; shift 2
	if netns; then sh_host "$i" "$@"; else sh_node "$i" "$@"; fi
	;;
env) print_env ;;
*) sed -n '2,30p' "$0" >&2; exit 2 ;;
esac
