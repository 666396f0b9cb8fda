#!/bin/bash
# Runs on every host when the cluster is reset: undoes init.sh.
set -euo pipefail
rm -f /usr/local/bin/cluster-info
rm -rf /etc/example-rootfs
