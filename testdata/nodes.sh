#!/usr/bin/env bash
# nodes.sh: target nodes for apply tests and benchmarks, on this machine.
#
#   nodes.sh start N     start N nodes: one sshd each on ${NODES_PREFIX}X (X = 11, 12, ...)
#   nodes.sh stop        stop every node and everything running inside them
#   nodes.sh kill I      kill node I (1-based): its sshd and every session in it
#   nodes.sh restart I   start node I again with the same state (after kill)
#   nodes.sh env         print the connection settings (KEY=VALUE, for scripts and tests)
#
# Each node is an sshd in its own mount namespace (unshare -m, private propagation) with
# overlays over /etc, /usr/local and /opt and bind mounts over /var/lib/sealos, /etc/hosts,
# /root/.ssh, /etc/shadow and /tmp, so what an apply writes there stays per node. Root logs in with the generated key
# (id_ed25519), with the passphrase key (id_ed25519_pass, passphrase in ./passphrase) or with
# the password in ./password. Needs root, openssh-server, unshare, and openssl or perl.
#
# Settings (environment):
#   NODES_DIR     state directory (default /var/tmp/sealos-nodes); must not be under /tmp,
#                 which every node replaces by its own
#   NODES_PREFIX  address prefix (default 127.0.0.), so several sets can run side by side
#   NODES_PORT    sshd port (default 22)
set -euo pipefail

DIR=${NODES_DIR:-/var/tmp/sealos-nodes}
PREFIX=${NODES_PREFIX:-127.0.0.}
PORT=${NODES_PORT:-22}
SSHD=${SSHD:-/usr/sbin/sshd}

die() { echo "nodes.sh: $*" >&2; exit 1; }

[ "$(id -u)" = 0 ] || die "needs root (mount namespaces, sshd as root)"
case "$DIR" in /tmp|/tmp/*) die "NODES_DIR=$DIR: must not be under /tmp (each node mounts its own /tmp)";; esac
[ -x "$SSHD" ] || die "$SSHD not found: apt-get install -y openssh-server"

addr() { echo "${PREFIX}$((10 + $1))"; }

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
	# Wait (bounded) until the node answers on its port.
	local a; a=$(addr "$i")
	for _ in $(seq 1 100); do
		if (exec 3<>"/dev/tcp/$a/$PORT") 2>/dev/null; then
			readlink "/proc/$pid/ns/mnt" >"$n/ns"
			return 0
		fi
		kill -0 "$pid" 2>/dev/null || break
		sleep 0.05
	done
	cat "$n/sshd.log" >&2 || true
	die "node $i ($a:$PORT) did not start"
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

setup() {
	local count=$1
	mkdir -p "$DIR"
	chmod 700 "$DIR"
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
		printf '127.0.0.1\tlocalhost\n%s\tnode%s\n' "$a" "$i" >"$n/hosts"
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
}

case "${1:-}" in
start)
	count=${2:?usage: nodes.sh start N}
	"$0" stop >/dev/null 2>&1 || true
	setup "$count"
	for i in $(seq 1 "$count"); do start_node "$i"; done
	print_env
	echo "# connect: ssh -i $DIR/id_ed25519 -p $PORT -o StrictHostKeyChecking=no root@$(addr 1)" >&2
	;;
stop)
	count=$(cat "$DIR/count" 2>/dev/null || echo 0)
	for i in $(seq 1 "$count"); do kill_node "$i"; done
	;;
kill) kill_node "${2:?usage: nodes.sh kill I}" ;;
restart)
	kill_node "${2:?usage: nodes.sh restart I}"
	start_node "$2"
	;;
env) print_env ;;
*) sed -n '2,20p' "$0" >&2; exit 2 ;;
esac
