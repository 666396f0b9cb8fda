#!/usr/bin/env bash
# image.sh [SEALOS_BIN]: builds the Kubernetes rootfs cluster image
# sealos.hub/kubernetes:$KUBE_VERSION into the local store and prints its name as the last
# line of stdout (progress goes to stderr). `make kube-image` runs it.
#
#   KUBE_VERSION  Kubernetes release (default v1.34.4; binaries.sh reads it too, with
#                 ETCD_VERSION and CRICTL_VERSION)
#   KUBE_CACHE    cache root (default /var/cache/sealos-kube): binaries, staging contexts
#   SEALOS_ROOT   the store (sealos --root; default /var/lib/sealos)
#   KUBE_IMAGE    the name to build (default sealos.hub/kubernetes:$KUBE_VERSION)
#
# Steps: the binaries (hack/kube/binaries.sh, cached); our pause program; one image FROM
# scratch per control-plane image kubeadm lists for the version (CoreDNS is not built),
# tagged with kubeadm's names; those images pushed into the rootfs context's registry/
# through a hub of ours on loopback, under repositories without the registry host
# (kube-apiserver, etcd, pause, ...), the way containerd's mirror asks the cluster's hub;
# then examples/kubernetes, staged under the cache with bin/ and registry/ added, built
# with sealos build.
#
# The image carries a label with a digest of everything it was made from: when the store
# already has the image with the same digest, nothing is built (a cached run takes
# seconds). One run at a time per cache (flock), so tests and make targets may start it
# side by side.
set -euo pipefail

here=$(cd "$(dirname "$0")/../.." && pwd)
SEALOS=${1:-$here/bin/sealos}
export KUBE_VERSION=${KUBE_VERSION:-v1.34.4}
CACHE=${KUBE_CACHE:-/var/cache/sealos-kube}
export KUBE_CACHE=$CACHE
ROOT=${SEALOS_ROOT:-/var/lib/sealos}
IMAGE=${KUBE_IMAGE:-sealos.hub/kubernetes:$KUBE_VERSION}
CONTEXT=$here/examples/kubernetes
INPUTS_LABEL=kube-image.inputs
# The rootfs gets these from Debian's packages (dynamically linked, like Debian ships them).
DEB_BINS="/usr/bin/containerd /usr/bin/containerd-shim-runc-v2 /usr/bin/ctr /usr/sbin/runc"
CNI_PLUGINS="bridge host-local loopback portmap"
CNI_DIR=/usr/lib/cni
XT_LIB=/usr/lib/x86_64-linux-gnu/xtables

log() { echo "kube-image: $*" >&2; }
die() { log "$*"; exit 1; }
sealos() { "$SEALOS" --root "$ROOT" "$@"; }

[ "$(id -u)" = 0 ] || die "needs root (the embedded BuildKit)"
[ -x "$SEALOS" ] || die "no sealos binary at $SEALOS (make build)"
for f in $DEB_BINS /usr/sbin/xtables-nft-multi /usr/sbin/xtables-legacy-multi; do
	[ -x "$f" ] || die "$f missing: apt-get install -y containerd runc iptables containernetworking-plugins (or make deps)"
done
for p in $CNI_PLUGINS; do
	[ -x "$CNI_DIR/$p" ] || die "$CNI_DIR/$p missing: apt-get install -y containernetworking-plugins"
done

mkdir -p "$CACHE"
# Not binaries.sh's lock (.lock): it takes that one itself, below.
exec 8>"$CACHE/.image.lock"
flock 8

bins=$("$here/hack/kube/binaries.sh" | tail -n 1)
[ -x "$bins/kubeadm" ] || die "binaries.sh gave no kubeadm in '$bins'"
mapfile -t images < <("$bins/kubeadm" config images list --kubernetes-version "$KUBE_VERSION")
[ ${#images[@]} -gt 0 ] || die "kubeadm config images list printed nothing"

# inputs: a digest of everything the image is made from. Large files by size and mtime
# (the cache's binaries, Debian's), small ones by content.
inputs() {
	{
		echo "$KUBE_VERSION $IMAGE ${images[*]}"
		go version
		dpkg-query -W containerd runc iptables containernetworking-plugins libc6 2>/dev/null || true
		# shellcheck disable=SC2086 # a list of paths
		stat -L -c '%n %s %Y' "$bins"/* $DEB_BINS
		cd "$here"
		# (README.md is not in the image: .dockerignore)
		find hack/kube/image.sh hack/kube/pause examples/kubernetes -type f ! -name README.md -print0 | sort -z | xargs -0 sha256sum
	} | sha256sum | cut -d' ' -f1
}
key=sha256:$(inputs)
have=$(sealos inspect --format "{{ index .Labels \"$INPUTS_LABEL\" }}" "$IMAGE" 2>/dev/null || true)
if [ "$have" = "$key" ]; then
	log "$IMAGE is up to date in $ROOT"
	echo "$IMAGE"
	exit 0
fi

start=$(date +%s)
STAGE=$CACHE/stage-$KUBE_VERSION
rm -rf "$STAGE"
mkdir -p "$STAGE"
hub_pid=
cleanup() {
	if [ -n "$hub_pid" ]; then kill "$hub_pid" 2>/dev/null || true; wait "$hub_pid" 2>/dev/null || true; fi
}
trap cleanup EXIT

# link SRC DST: a hard link into a staging context (the cache's big binaries are not copied
# again), a copy across file systems.
link() { ln -f "$1" "$2" 2>/dev/null || cp -L "$1" "$2"; }

# ---- control-plane images --------------------------------------------------------------

# base_rootfs DIR: what every image of ours has: /tmp (1777), CA certificates, and the
# /lib, /lib64 links of a merged-/usr system.
base_rootfs() {
	local r=$1
	mkdir -p "$r/tmp" "$r/etc/ssl/certs" "$r/usr/local/bin"
	chmod 1777 "$r/tmp"
	if [ -f /etc/ssl/certs/ca-certificates.crt ]; then cp /etc/ssl/certs/ca-certificates.crt "$r/etc/ssl/certs/"; fi
	printf 'root:x:0:0:root:/root:/sbin/nologin\nnobody:x:65534:65534:nobody:/nonexistent:/sbin/nologin\n' >"$r/etc/passwd"
	printf 'root:x:0:\nnogroup:x:65534:\n' >"$r/etc/group"
}

# copy_lib FILE ROOTFS: FILE (symlinks followed) at its path in ROOTFS, /lib and /lib64
# paths put under /usr (the rootfs has the merged-/usr links).
copy_lib() {
	local f=$1 r=$2 dst
	dst=$f
	case "$dst" in /lib/* | /lib64/*) dst=/usr$dst ;; esac
	[ -e "$r$dst" ] && return 0
	mkdir -p "$(dirname "$r$dst")"
	cp -L "$f" "$r$dst"
}

# add_iptables ROOTFS: Debian's iptables, nft and legacy (the multi-call binaries and
# their names), its extensions, and every shared library they load, with the loader.
# iptables, iptables-save, iptables-restore and the ip6tables ones are the nft variants,
# like Debian's default alternatives.
add_iptables() {
	local r=$1 f l target name
	# /run: iptables-legacy locks /run/xtables.lock (kube-proxy's pod mounts the host's there)
	mkdir -p "$r/usr/sbin" "$r/usr/lib64" "$r/run"
	ln -sfn usr/lib "$r/lib"
	ln -sfn usr/lib64 "$r/lib64"
	cp /usr/sbin/xtables-nft-multi /usr/sbin/xtables-legacy-multi "$r/usr/sbin/"
	# Every name the package gives to the two binaries (iptables-nft, ip6tables-legacy-save,
	# ...), as relative links.
	while IFS= read -r f; do
		[ -L "$f" ] || continue
		target=$(basename "$(readlink -f "$f")")
		case "$target" in xtables-nft-multi | xtables-legacy-multi) ln -sfn "$target" "$r/usr/sbin/$(basename "$f")" ;; esac
	done < <(dpkg -L iptables | grep '^/usr/sbin/')
	for name in iptables ip6tables; do
		for l in "" -save -restore; do
			[ -e "$r/usr/sbin/$name-nft$l" ] || die "iptables: no $name-nft$l in Debian's package"
			ln -sfn "$name-nft$l" "$r/usr/sbin/$name$l"
		done
	done
	mkdir -p "$r$XT_LIB"
	cp -a "$XT_LIB"/. "$r$XT_LIB/"
	# Shared libraries: of the binaries and of every extension (ldd lists the loader too).
	while IFS= read -r l; do
		copy_lib "$l" "$r"
	done < <(ldd /usr/sbin/xtables-nft-multi /usr/sbin/xtables-legacy-multi "$XT_LIB"/*.so 2>/dev/null |
		awk '/=> \// { print $3 } /^[[:space:]]*\/[^ ]+ \(/ { print $1 }' | sort -u)
	# Protocol and service names (-p tcp, --dport http) without NSS modules: glibc's files.
	for f in /etc/protocols /etc/services; do
		if [ -f "$f" ]; then cp "$f" "$r/etc/"; fi
	done
	# Checks that it runs where kube-proxy will run it: in this file system alone.
	for name in iptables iptables-save ip6tables-restore iptables-legacy iptables-nft; do
		chroot "$r" "/usr/sbin/$name" --version >/dev/null 2>&1 ||
			die "iptables: chroot $r /usr/sbin/$name --version fails: $(chroot "$r" "/usr/sbin/$name" --version 2>&1 | head -n 3)"
	done
	log "kube-proxy: $(chroot "$r" /usr/sbin/iptables --version), $(chroot "$r" /usr/sbin/iptables-legacy --version)"
}

# kubefile DIR ENTRYPOINT [USER]: the Kubefile of a control-plane image in DIR.
kubefile() {
	{
		echo "# Generated by hack/kube/image.sh: a control-plane image of Kubernetes $KUBE_VERSION."
		echo "FROM scratch"
		echo "COPY rootfs/ /"
		echo "ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
		echo "ENTRYPOINT [\"$2\"]"
		if [ -n "${3:-}" ]; then echo "USER $3"; fi
	} >"$1/Kubefile"
}

# image REF: stages and builds the control-plane image REF (registry.k8s.io/NAME:TAG).
image() {
	local ref=$1 name ctx r b
	name=${ref#registry.k8s.io/}
	name=${name%%:*}
	ctx=$STAGE/images/$name
	r=$ctx/rootfs
	mkdir -p "$r"
	base_rootfs "$r"
	case "$name" in
	kube-apiserver | kube-controller-manager | kube-scheduler | kube-proxy)
		link "$bins/$name" "$r/usr/local/bin/$name"
		[ "$name" != kube-proxy ] || add_iptables "$r"
		kubefile "$ctx" "/usr/local/bin/$name"
		;;
	etcd)
		for b in etcd etcdctl; do link "$bins/$b" "$r/usr/local/bin/$b"; done
		mkdir -p "$r/var/lib/etcd"
		kubefile "$ctx" /usr/local/bin/etcd
		;;
	pause)
		# Our own pause (hack/kube/pause): containerd runs the image's ENTRYPOINT as the
		# sandbox's process. 65535, like the upstream image: it needs no privilege.
		(cd "$here" && CGO_ENABLED=0 GOFLAGS=-buildvcs=false go build -trimpath -ldflags '-s -w' -o "$r/pause" ./hack/kube/pause)
		kubefile "$ctx" /pause 65535:65535
		;;
	*) die "kubeadm lists $ref, which this script does not know how to build" ;;
	esac
	# Each binary runs in the image's file system alone (static, or with its libraries).
	for b in "$r"/usr/local/bin/* "$r"/pause; do
		[ -e "$b" ] || continue
		b=${b#"$r"}
		chroot "$r" "$b" --version >/dev/null 2>&1 || chroot "$r" "$b" version >/dev/null 2>&1 ||
			die "$ref: neither '$b --version' nor '$b version' runs in the image's file system"
	done
	log "building $ref"
	# gzip: these images are run by container runtimes, which all take gzip layers.
	sealos build --progress quiet --save-image=false --compression gzip -t "$ref" "$ctx" >&2
}

built=()
for ref in "${images[@]}"; do
	case "$ref" in
	*/coredns:* | */coredns/*) log "skipping $ref (CoreDNS is not built: the cluster runs without it)"; continue ;;
	esac
	image "$ref"
	built+=("$ref")
done

# ---- the rootfs context ------------------------------------------------------------------

ctx=$STAGE/rootfs
cp -a "$CONTEXT" "$ctx"
mkdir -p "$ctx/bin/cni" "$ctx/registry"
for b in kubeadm kubelet kubectl crictl; do link "$bins/$b" "$ctx/bin/$b"; done
for f in $DEB_BINS; do cp -L "$f" "$ctx/bin/"; done
for p in $CNI_PLUGINS; do cp -L "$CNI_DIR/$p" "$ctx/bin/cni/"; done

# registry/: a hub of ours on loopback serving it, and the images pushed into it.
"$SEALOS" registry serve filesystem "$ctx/registry" -p 0 --address 127.0.0.1 >"$STAGE/hub.log" 2>&1 &
hub_pid=$!
hub=
for _ in $(seq 1 100); do
	hub=$(sed -n 's#^registry serving .* on http://\(127\.0\.0\.1:[0-9]*\)$#\1#p' "$STAGE/hub.log")
	if [ -n "$hub" ] && curl -fsS "http://$hub/v2/" >/dev/null 2>&1; then break; fi
	kill -0 "$hub_pid" 2>/dev/null || { cat "$STAGE/hub.log" >&2; die "the hub did not start"; }
	hub=
	sleep 0.1
done
[ -n "$hub" ] || { cat "$STAGE/hub.log" >&2; die "the hub did not answer /v2/ within 10 s"; }
for ref in "${built[@]}"; do
	repo=${ref#registry.k8s.io/}
	log "pushing $ref as $hub/$repo"
	sealos push -q "$ref" "$hub/$repo" >&2
done
cleanup
hub_pid=
rm -f "$STAGE/hub.log"
# What the hub keeps for itself (gc lock and intent, upload staging) is no image content.
rm -rf "$ctx/registry"/.sealos-*
[ -d "$ctx/registry/docker/registry/v2/repositories" ] || die "the hub left no docker/registry/v2 layout in $ctx/registry"

log "building $IMAGE"
sealos build --progress plain --save-image=false --build-arg "kubeVersion=$KUBE_VERSION" \
	--label "$INPUTS_LABEL=$key" -t "$IMAGE" "$ctx" >&2
# The staging copies are rebuilt from the cache when needed.
rm -rf "$STAGE"
log "built $IMAGE in $(($(date +%s) - start))s"
echo "$IMAGE"
