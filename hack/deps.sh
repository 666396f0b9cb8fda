#!/usr/bin/env bash
# Installs what the test suite, the examples and the benchmarks drive for real, on Debian
# as root. Safe to run again: apt and go install skip what is already there.
set -euo pipefail
export DEBIAN_FRONTEND=noninteractive

# System packages:
#   runc            RUN steps in the embedded BuildKit
#   busybox-static  a base image for RUN examples (no public registry is reachable)
#   skopeo buildah  interoperability clients (read our archives, pull from our hub) and peers in benchmarks
#   openssh-server  target nodes for the apply engine; openssl/perl hash their passwords
#   containerd      ctr, a real client behind mirror-config; containerd in test hosts
#   iproute2 util-linux  mount namespaces (unshare) for test nodes
#   iptables        test hosts (nodes.sh NODES_NETNS=1): FORWARD DROP rules at their bridge
#   curl zstd       the registry check of apply, zstd-compressed shipping
#   python3 bc      benchmark scripts
#   procps kmod     sysctl, pgrep and (best effort) modprobe in the Kubernetes image's scripts
#   redis-server    the Redis that hub replicas share (their tests start their own)
#   chromium fonts-liberation  headless browser (and a font for its screenshots) for the web
#                   view's browser tests (registry/ui)
#   containernetworking-plugins  the Kubernetes rootfs image (make kube-image) ships its CNI
#                   plugins, like Debian's containerd and runc, and kube-proxy's image Debian's
#                   iptables (hack/kube/image.sh)
if [ "$(id -u)" = 0 ]; then
  apt-get update
  apt-get install -y --no-install-recommends \
    runc busybox-static skopeo buildah openssh-server openssh-client openssl containerd \
    iproute2 util-linux iptables ca-certificates git make tar curl zstd python3 bc \
    containernetworking-plugins procps kmod chromium fonts-liberation redis-server
else
  echo "deps: not root: skipping apt-get (the build and node tests need root)" >&2
fi

# Go tools the interop tests and benchmarks use, at pinned versions, into $(go env GOPATH)/bin
# (the tests look there too).
go install github.com/google/go-containerregistry/cmd/crane@v0.22.1
go install github.com/regclient/regclient/cmd/regctl@v0.11.7
go install github.com/distribution/distribution/v3/cmd/registry@v3.1.2
# an S3-compatible server (posix backend) for the hub's replicas on one bucket
go install github.com/versity/versitygw/cmd/versitygw@v1.8.0
# the OCI distribution-spec conformance suite (a main package; the binary is "conformance")
go install github.com/opencontainers/distribution-spec/conformance@v0.0.0-20260831232431-97274622c111
