#!/usr/bin/env bash
# binaries.sh: builds the Kubernetes binaries of the rootfs image from the Go module proxy,
# cached by version outside the work tree, and prints the directory that holds them.
#
#   KUBE_VERSION   Kubernetes release (default v1.34.4)
#   ETCD_VERSION   etcd release (default v3.6.5)
#   CRICTL_VERSION cri-tools release (default v1.34.0)
#   KUBE_CACHE     cache root (default /var/cache/sealos-kube)
#
# k8s.io/kubernetes replaces its k8s.io/* staging modules with ./staging paths that its
# module zip does not hold: the replaces are pointed at the published k8s.io/* modules of
# the same minor (v0.X.Y for v1.X.Y) and the build resolves them with -mod=mod.
# A second run with the same versions only checks the cache.
set -euo pipefail

KUBE_VERSION=${KUBE_VERSION:-v1.34.4}
ETCD_VERSION=${ETCD_VERSION:-v3.6.5}
CRICTL_VERSION=${CRICTL_VERSION:-v1.34.0}
CACHE=${KUBE_CACHE:-/var/cache/sealos-kube}
OUT="$CACHE/kubernetes-$KUBE_VERSION-etcd-$ETCD_VERSION-crictl-$CRICTL_VERSION"
KUBE_BINS="kubeadm kubelet kubectl kube-apiserver kube-controller-manager kube-scheduler kube-proxy"
ALL="$KUBE_BINS etcd etcdctl crictl"

log() { echo "kube-binaries: $*" >&2; }

complete() {
	local b
	for b in $ALL; do [ -x "$OUT/$b" ] || return 1; done
}

mkdir -p "$CACHE"
# One builder at a time per cache (tests and make targets may start this side by side).
exec 9>"$CACHE/.lock"
flock 9
if complete; then echo "$OUT"; exit 0; fi

work=$(mktemp -d "$CACHE/.work.XXXXXX")
trap 'chmod -R u+w "$work" 2>/dev/null; rm -rf "$work"' EXIT
mkdir -p "$work/out"
export CGO_ENABLED=0 GOFLAGS=-buildvcs=false GOWORK=off

# module_copy MOD@VER DIR: a writable copy of a module's source.
module_copy() {
	local src
	src=$(go mod download -json "$1" | sed -n 's/^[[:space:]]*"Dir": "\(.*\)",$/\1/p')
	[ -n "$src" ] || { log "cannot download $1"; exit 1; }
	cp -r "$src" "$2"
	chmod -R u+w "$2"
}

build_kubernetes() {
	local src="$work/kubernetes" minor staging
	log "building Kubernetes $KUBE_VERSION (about 15-20 minutes on 2 cores, once)"
	module_copy "k8s.io/kubernetes@$KUBE_VERSION" "$src"
	staging="v0.${KUBE_VERSION#v1.}"
	# k8s.io/foo => ./staging/src/k8s.io/foo   becomes   k8s.io/foo => k8s.io/foo v0.X.Y
	sed -i -E "s#^([[:space:]]*)(k8s\.io/[A-Za-z0-9._/-]+) => \./staging/src/k8s\.io/[A-Za-z0-9._/-]+#\1\2 => \2 $staging#" "$src/go.mod"
	if grep -q '=> ./staging' "$src/go.mod"; then
		log "go.mod still names ./staging after the rewrite:"; grep '=> ./staging' "$src/go.mod" >&2; exit 1
	fi
	local major=${KUBE_VERSION#v}; major=${major%%.*}
	minor=${KUBE_VERSION#v*.}; minor=${minor%%.*}
	local date; date=$(date -u +%Y-%m-%dT%H:%M:%SZ)
	local ld="-s -w" p
	for p in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
		ld="$ld -X $p.gitVersion=$KUBE_VERSION -X $p.gitMajor=$major -X $p.gitMinor=$minor"
		ld="$ld -X $p.gitTreeState=clean -X $p.buildDate=$date"
	done
	local pkgs=() b
	for b in $KUBE_BINS; do pkgs+=("./cmd/$b"); done
	(cd "$src" && go build -mod=mod -trimpath -tags providerless,dockerless -ldflags "$ld" -o "$work/out/" "${pkgs[@]}")
}

build_etcd() {
	local src="$work/etcd"
	log "building etcd $ETCD_VERSION and etcdctl"
	mkdir -p "$src/etcd" "$src/etcdctl"
	cat >"$src/go.mod" <<MOD
module sealos.local/etcd

go 1.24
MOD
	# A main of ours around the server's own entry point; etcdctl is its module's main.
	cat >"$src/etcd/main.go" <<'GO'
package main

import (
	"os"

	"go.etcd.io/etcd/server/v3/etcdmain"
)

func main() { etcdmain.Main(os.Args) }
GO
	cat >"$src/etcdctl/main.go" <<'GO'
package main

import "go.etcd.io/etcd/etcdctl/v3/ctlv3"

func main() { ctlv3.MustStart() }
GO
	(cd "$src" &&
		go get "go.etcd.io/etcd/server/v3@$ETCD_VERSION" "go.etcd.io/etcd/etcdctl/v3@$ETCD_VERSION" &&
		go mod tidy &&
		go build -trimpath -ldflags '-s -w' -o "$work/out/" ./etcd ./etcdctl)
}

build_crictl() {
	local src="$work/cri-tools"
	log "building crictl $CRICTL_VERSION"
	module_copy "sigs.k8s.io/cri-tools@$CRICTL_VERSION" "$src"
	local mod=mod
	[ -f "$src/vendor/modules.txt" ] && mod=vendor
	(cd "$src" && go build -mod=$mod -trimpath -ldflags "-s -w -X sigs.k8s.io/cri-tools/pkg/version.Version=$CRICTL_VERSION" -o "$work/out/" ./cmd/crictl)
}

start=$(date +%s)
[ -x "$OUT/kubeadm" ] && for b in $KUBE_BINS; do cp -a "$OUT/$b" "$work/out/"; done
[ -x "$work/out/kubeadm" ] || build_kubernetes
[ -x "$OUT/etcd" ] && cp -a "$OUT/etcd" "$OUT/etcdctl" "$work/out/"
[ -x "$work/out/etcd" ] || build_etcd
[ -x "$OUT/crictl" ] && cp -a "$OUT/crictl" "$work/out/"
[ -x "$work/out/crictl" ] || build_crictl
rm -rf "$OUT"
mv "$work/out" "$OUT"
log "built in $(( $(date +%s) - start ))s: $OUT"
echo "$OUT"
