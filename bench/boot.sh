#!/bin/sh
# Wall-clock from starting the UML kernel to the guest /init's marker line
# and power-off: build/linux directly, and the kernel embedded in the
# release file (inflated into a memfd first).  Target: under 2 s each.
set -eu
top=$(cd "$(dirname "$0")/.." && pwd)
. "$top/bench/lib.sh"
runs=${RUNS:-5}
w=$(mktemp -d)
trap 'rm -rf "$w"' EXIT
"$top/build/umlk" initramfs "$w/init.gz"
args="mem=64M initrd=$w/init.gz quiet con0=fd:0,fd:1 con=null"
# shellcheck disable=SC2086
tk=$(best_of "$runs" sh -c "'$top/build/linux' $args </dev/null | grep -q '^umlk-init: up'")
# shellcheck disable=SC2086
tr=$(best_of "$runs" sh -c "'$top/build/release/umlk' linux $args </dev/null | grep -q '^umlk-init: up'")
echo "boot to guest /init and power off (best of $runs):"
echo "  build/linux                    ${tk}s   (target: < 2 s)"
echo "  build/release/umlk (payload)   ${tr}s   (target: < 2 s)"
echo "  payload overhead: $(awk -v a="$tr" -v b="$tk" 'BEGIN { printf "%.0f ms\n", (a - b) * 1000 }')"
