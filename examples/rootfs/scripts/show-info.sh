#!/bin/bash
set -euo pipefail
/usr/local/bin/cluster-info
