#!/bin/sh
# Wall-clock from starting the UML kernel to the guest /init's marker line
# and power-off: build/linux directly, and the kernel embedded in the
# release file (unpacked once into the cache).  Target: under 2 s each.
# Then 'umlk boot tiny.iso -- true', medians: the release file as users
# run it against the build tree (goal at most 1.05x), the default mode
# against --isolated (goal at most 1.0x, and the default at most 0.25 s).
# Then 'umlk boot IMAGE -- true' for the tiny and the Debian image, warm
# and cold (the image's pages dropped first).
set -eu
. "$(dirname "$0")/lib.sh"
runs=${RUNS:-5}
# The release file made from this tree's umlk and kernel (make bench does
# it too; run alone, an older one would be measured against a newer tree).
make -s -C "$top" release >&2
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

# The release file and the modes, to -- true.
sh "$top/rootfs/tiny.sh" "$top/build/umlk" "$w/img" >/dev/null 2>&1
export XDG_CACHE_HOME="$w/cache"
tiny=$w/img/tiny.iso
"$top/build/release/umlk" boot -q "$tiny" -- true      # its kernel unpacked into the cache, once
# and checked, as on a user's machine where that was long ago (a file
# changed in the last 2 s is checked at every use: payload.c).
sleep 2
"$top/build/release/umlk" boot -q "$tiny" -- true
# The three in turn, RUNS rounds; medians.
i=0
while [ $i -lt "$runs" ]; do
	turn tree "$top/build/umlk" boot -q --kernel "$top/build/linux" "$tiny" -- true
	turn release "$top/build/release/umlk" boot -q "$tiny" -- true
	turn isolated "$top/build/umlk" boot -q --isolated --kernel "$top/build/linux" "$tiny" -- true
	i=$((i + 1))
done
mt=$(turn_median tree) mr=$(turn_median release) mi=$(turn_median isolated)
echo
echo "umlk boot tiny.iso -- true, medians of $runs (the three in turn):"
echo "  build/umlk + build/linux (the default mode)   ${mt}s   (goal: at most 0.25 s)"
echo "  build/release/umlk                            ${mr}s   release / tree $(ratio "$mr" "$mt") (goal <= 1.05; round by round, the middle half $(turn_spread release tree))"
echo "  build/umlk --isolated                         ${mi}s   default / isolated $(ratio "$mt" "$mi") (goal <= 1.0; round by round, the middle half $(turn_spread tree isolated))"
table "boot -- true: release file vs build tree" "${mr} s" "${mt} s" "$(ratio "$mr" "$mt")" "<= 1.05"
table "boot -- true: default mode vs --isolated" "${mt} s" "${mi} s" "$(ratio "$mt" "$mi")" "<= 1.0, default <= 0.25 s"

# umlk boot, from the command to the guest command's exit: the tiny image
# and the Debian mini live CD, warm (the image in the host's page cache)
# and cold (its pages dropped first).  Nothing is extracted either way.
iso_tiny=$w/img/tiny.iso
iso_debian=$top/build/rootfs/debian.iso
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
