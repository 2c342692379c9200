#!/bin/sh
# The README's first command ends here: boot a guest from the single-file
# release and show what it prints.
set -eu
umlk=${1:-build/release/umlk}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
echo "== $umlk: $(stat -c %s "$umlk") bytes, one file"
"$umlk" kernel-info | sed 's/^/   /'
"$umlk" initramfs "$work/initramfs.gz"
echo "== booting the embedded kernel; the guest's /init is umlk itself"
start=$(date +%s%N)
timeout 60 "$umlk" linux mem=64M initrd="$work/initramfs.gz" quiet con0=fd:0,fd:1 con=null </dev/null
end=$(date +%s%N)
echo "== guest powered off after $(( (end - start) / 1000000 )) ms"
