#!/usr/bin/env bash
# service.sh start|stop|restart|status NAME   (NAME: containerd or kubelet)
#
# Runs a daemon of the Kubernetes rootfs the way the host can: with systemd when the host
# runs it (/run/systemd/system exists; the units are in /etc/systemd/system), otherwise
# under a supervisor of ours: a restart loop in its own session, its pid in
# /run/sealos/NAME.pid and its output in /var/log/sealos/NAME.log. The kubelet's loop runs
# the command line of kubeadm's systemd drop-in (10-kubeadm.conf), with the files it names
# read again at each start, and waits for /var/lib/kubelet/config.yaml, which kubeadm
# init/join writes.
#
# start is a no-op for a running service; status exits 0 when it runs; stop stops the loop
# and the daemon (containerd's shims and containers keep running, as with systemd's
# KillMode=process).
set -euo pipefail

PIDS=/run/sealos
LOGS=/var/log/sealos
export PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin

usage() { echo "usage: service.sh start|stop|restart|status containerd|kubelet" >&2; exit 2; }

have_systemd() { [ -d /run/systemd/system ] && command -v systemctl >/dev/null; }

# ---- systemd --------------------------------------------------------------------------

systemd_start() {
	systemctl daemon-reload
	systemctl enable "$1.service" >/dev/null 2>&1 || true
	systemctl start "$1.service"
}

systemd_restart() {
	systemctl daemon-reload
	systemctl enable "$1.service" >/dev/null 2>&1 || true
	systemctl restart "$1.service"
}

systemd_stop() {
	# A unit that was never installed is stopped already.
	systemctl stop "$1.service" 2>/dev/null || true
}

# ---- our supervisor -------------------------------------------------------------------

pidfile() { echo "$PIDS/$1.pid"; }

# loop_pid NAME: the pid of NAME's running restart loop, or nothing. The loop's argv[0]
# is "sealos-service-NAME", so a recycled pid is not taken for it.
loop_pid() {
	local f pid
	f=$(pidfile "$1")
	[ -f "$f" ] || return 0
	pid=$(cat "$f" 2>/dev/null || true)
	case "$pid" in '' | *[!0-9]*) return 0 ;; esac
	local cmdline
	cmdline=$(tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null) || return 0
	case "$cmdline" in *" sealos-service-$1 $1 ") echo "$pid" ;; esac
}

# The loop's body: bash -c LOOP sealos-service-NAME NAME. Each start runs the daemon in
# the foreground; 1-2 s pass between starts so a daemon that fails at once does not spin.
# shellcheck disable=SC2016
LOOP='
name=$1
# kubelet_cmd: the ExecStart of the drop-in with its Environment= and EnvironmentFile=
# values, as systemd would build it ($VAR unbraced splits on white space).
kubelet_cmd() {
	local dropin=/etc/systemd/system/kubelet.service.d/10-kubeadm.conf line exec=
	unset KUBELET_KUBECONFIG_ARGS KUBELET_CONFIG_ARGS KUBELET_KUBEADM_ARGS KUBELET_EXTRA_ARGS
	while IFS= read -r line; do
		case "$line" in
		Environment=*) line=${line#Environment=}; line=${line#\"}; line=${line%\"}; export "$line" ;;
		EnvironmentFile=*) line=${line#EnvironmentFile=}; line=${line#-}
			if [ -f "$line" ]; then set -a; . "$line"; set +a; fi ;;
		ExecStart=?*) exec=${line#ExecStart=} ;;
		esac
	done <"$dropin"
	[ -n "$exec" ] || exec=/usr/local/bin/kubelet
	eval "cmd=($exec)"
}
waited=
while :; do
	case "$name" in
	containerd) cmd=(/usr/local/bin/containerd --config /etc/containerd/config.toml) ;;
	kubelet)
		if [ ! -f /var/lib/kubelet/config.yaml ]; then
			[ -n "$waited" ] || echo "$(date -Is) kubelet: waiting for /var/lib/kubelet/config.yaml (kubeadm init/join writes it)"
			waited=1
			sleep 1
			continue
		fi
		waited=
		kubelet_cmd ;;
	esac
	echo "$(date -Is) starting: ${cmd[*]}"
	"${cmd[@]}" &
	child=$!
	# stop sends TERM to the loop: pass it on and end.
	trap "kill -TERM $child 2>/dev/null; wait $child; exit 0" TERM INT
	wait "$child" && rc=0 || rc=$?
	trap - TERM INT
	echo "$(date -Is) $name exited with status $rc; starting again"
	sleep 1.5
done
'

loop_start() {
	local name=$1 pid
	pid=$(loop_pid "$name")
	[ -z "$pid" ] || return 0
	mkdir -p "$PIDS" "$LOGS"
	# setsid: its own session and process group, out of the caller's (an SSH session ends
	# without waiting for it); every descriptor goes to the log.
	setsid nohup bash -c "$LOOP" "sealos-service-$name" "$name" \
		</dev/null >>"$LOGS/$name.log" 2>&1 &
	echo $! >"$(pidfile "$name")"
}

loop_stop() {
	local name=$1 pid
	pid=$(loop_pid "$name")
	if [ -n "$pid" ]; then
		kill -TERM "$pid" 2>/dev/null || true
		# bounded: containerd and the kubelet stop in well under 10 s
		for _ in $(seq 1 100); do
			kill -0 "$pid" 2>/dev/null || break
			sleep 0.1
		done
		# the loop's process group: the loop and the daemon it started (shims have their own)
		kill -KILL -- "-$pid" 2>/dev/null || true
	fi
	rm -f "$(pidfile "$name")"
}

[ $# -eq 2 ] || usage
action=$1 name=$2
case "$name" in containerd | kubelet) ;; *) usage ;; esac

if have_systemd; then
	case "$action" in
	start) systemd_start "$name" ;;
	restart) systemd_restart "$name" ;;
	stop) systemd_stop "$name" ;;
	status) systemctl is-active --quiet "$name.service" ;;
	*) usage ;;
	esac
else
	case "$action" in
	start) loop_start "$name" ;;
	restart) loop_stop "$name"; loop_start "$name" ;;
	stop) loop_stop "$name" ;;
	status) [ -n "$(loop_pid "$name")" ] ;;
	*) usage ;;
	esac
fi
