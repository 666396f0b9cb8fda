#!/bin/bash
# Runs on every host when the cluster is created: installs the binaries and the rendered
# configuration (the *.tmpl files are rendered with the image env before this runs).
set -euo pipefail
cd "$(dirname "$0")/.."
install -m 0755 bin/cluster-info /usr/local/bin/cluster-info
mkdir -p /etc/example-rootfs
cp etc/registry.yml etc/hosts.example /etc/example-rootfs/
echo "example-rootfs ${rootfsVersion:-unknown} installed"
