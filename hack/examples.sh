#!/usr/bin/env bash
# Builds every Kubefile under examples/ into a throwaway store and shows what was built:
# the main job of sealos, end to end. Usage: hack/examples.sh [SEALOS_BIN]
# Needs root (the embedded BuildKit) and, for examples/busybox, Debian's busybox-static
# and runc; without them that example is skipped with a message.
set -euo pipefail

here=$(cd "$(dirname "$0")/.." && pwd)
sealos=${1:-$here/bin/sealos}
[ -x "$sealos" ] || { echo "examples: no sealos binary at $sealos (run make build)" >&2; exit 1; }

work=$(mktemp -d /tmp/sealos-examples.XXXXXX)
trap 'rm -rf "$work"' EXIT
root="$work/root"
run() { echo "+ sealos $*" >&2; "$sealos" --root "$root" "$@"; }

built=()
for dir in "$here"/examples/*/; do
    name=$(basename "$dir")
    ctx=$dir
    if [ "$name" = busybox ]; then
        bb=$(command -v busybox || true)
        if [ -z "$bb" ] || ! command -v runc >/dev/null; then
            echo "examples: skipping busybox (needs busybox-static and runc: apt-get install busybox-static runc)" >&2
            continue
        fi
        # The busybox binary is not committed: copy the example and add it.
        ctx="$work/ctx-busybox"
        cp -r "$dir" "$ctx"
        cp "$bb" "$ctx/busybox"
    fi
    run build --progress plain -t "example-$name:v1" "$ctx"
    built+=("example-$name:v1")
done

echo
run images
for img in "${built[@]}"; do
    echo
    run inspect --format '{{.Names}} type={{.Type}} valid={{.Valid}}
  labels={{json .Labels}}
  env={{json .Env}}
  cmd={{json .Cmd}}' "$img"
done

echo
echo "Unchanged rebuild (every step should be CACHED):"
start=$(date +%s.%N)
run build --progress plain -t example-app:v1 "$here/examples/app" 2>&1 | grep -E 'CACHED|DONE [0-9.]+s$|^#[0-9]+ \[' || true
end=$(date +%s.%N)
printf 'rebuild of examples/app took %.2f s\n' "$(echo "$end - $start" | bc)"
