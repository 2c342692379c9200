#!/bin/sh
# Wall-clock from starting the UML kernel to the guest /init's marker line
# and power-off: build/linux directly, and the kernel embedded in the
# release file (inflated into a memfd first).  Target: under 2 s each.
# Then 'umlk boot IMAGE -- true' for the tiny and the Debian image, warm
# (extracted image cached) and cold (extraction included).
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

# umlk boot, from the command to the guest command's exit: the tiny image
# and the Debian mini live CD, warm (the image in the host's page cache)
# and cold (its pages dropped first).  Nothing is extracted either way.
iso_tiny=$w/img/tiny.iso
iso_debian=$top/build/rootfs/debian.iso
sh "$top/rootfs/tiny.sh" "$top/build/umlk" "$w/img" >/dev/null 2>&1
export XDG_CACHE_HOME="$w/cache"
B="$top/build/umlk boot -q --kernel $top/build/linux"
echo
echo "umlk boot IMAGE -- true, to the command's exit (best of $runs):"
for name in tiny debian; do
	eval iso=\$iso_$name
	if [ ! -f "$iso" ]; then
		echo "  $name: $iso missing (make rootfs)"
		continue
	fi
	cold=$(best_of "$runs" sh -c "dd if='$iso' iflag=nocache count=0 2>/dev/null; $B '$iso' -- true")
	warm=$(best_of "$runs" sh -c "$B '$iso' -- true")
	printf '  %-7s warm %ss   cold %ss (%s MiB ISO, read where it lies)\n' "$name" "$warm" "$cold" \
		"$(( $(stat -c %s "$iso") / 1048576 ))"
done
echo "  (the original design: 35 s to an XFce desktop over NFS)"
