#!/bin/bash
# Runs on every host before init.sh: fails early on hosts that cannot take the cluster.
set -euo pipefail
command -v install >/dev/null || { echo "check: coreutils 'install' missing" >&2; exit 1; }
