#!/bin/sh
# Synthetic live ISOs in the layouts distributions use, made with xorriso
# from the tiny image (the distributions' own ISOs cannot be fetched here;
# the layouts are what umlk reads):
#
#   live.iso       Debian Live: live/filesystem.squashfs and live/top.squashfs
#                  over it; isolinux/live.cfg and boot/grub/grub.cfg entries
#   casper.iso     Ubuntu's layered casper: minimal.squashfs under
#                  minimal.standard.squashfs
#   liveos.iso     Fedora: LiveOS/squashfs.img holding LiveOS/rootfs.img (ext2)
#   arch.iso       Arch: arch/x86_64/airootfs.sfs
#   knoppix2.iso   KNOPPIX/KNOPPIX with KNOPPIX/KNOPPIX1 (cloops) stacked on it
#   knoppix-ro.iso KNOPPIX/KNOPPIX a cloop holding iso9660 (stock KNOPPIX)
#   custom.iso     the root where no layout puts it (custom/root.sfs)
#
# The upper layers hold /etc/hostname ("top") and /etc/layer-top.
#
# Usage: rootfs/layouts.sh UMLK DIR   (DIR holds tiny.img, tiny.cloop and
#        tiny.sqfs from rootfs/tiny.sh; the ISOs are written there)
set -eu
umlk=$1 d=$2
w=$(mktemp -d)
trap 'rm -rf "$w"' EXIT
iso() { xorriso -as mkisofs -quiet -R -J -o "$1" "$2" 2>/dev/null; }

mkdir -p "$w/top/etc"
echo top > "$w/top/etc/hostname"
echo "from the top layer" > "$w/top/etc/layer-top"
mksquashfs "$w/top" "$w/top.sqfs" -quiet -noappend -all-root >/dev/null
mke2fs -q -F -t ext2 -d "$w/top" "$w/top.img" 4M >/dev/null 2>&1
"$umlk" make-cloop -q "$w/top.img" "$w/top.cloop"

mkdir -p "$w/live/live" "$w/live/isolinux" "$w/live/boot/grub"
cp "$d/tiny.sqfs" "$w/live/live/filesystem.squashfs"
cp "$w/top.sqfs" "$w/live/live/top.squashfs"
printf 'label live\n  menu label Live\n  kernel /live/vmlinuz\n  append initrd=/live/initrd.img boot=live components quiet splash\n' \
	> "$w/live/isolinux/live.cfg"
printf 'menuentry "Live" {\n\tlinux\t/live/vmlinuz boot=live components quiet splash vga=791 $extra\n\tinitrd\t/live/initrd.img\n}\n' \
	> "$w/live/boot/grub/grub.cfg"
iso "$d/live.iso" "$w/live"

mkdir -p "$w/casper/casper"
cp "$d/tiny.sqfs" "$w/casper/casper/minimal.squashfs"
cp "$w/top.sqfs" "$w/casper/casper/minimal.standard.squashfs"
iso "$d/casper.iso" "$w/casper"

mkdir -p "$w/liveos-sq/LiveOS" "$w/liveos/LiveOS"
cp "$d/tiny.img" "$w/liveos-sq/LiveOS/rootfs.img"
mksquashfs "$w/liveos-sq" "$w/liveos/LiveOS/squashfs.img" -quiet -noappend -all-root >/dev/null
iso "$d/liveos.iso" "$w/liveos"

mkdir -p "$w/arch/arch/x86_64"
cp "$d/tiny.sqfs" "$w/arch/arch/x86_64/airootfs.sfs"
iso "$d/arch.iso" "$w/arch"

mkdir -p "$w/kn/KNOPPIX"
cp "$d/tiny.cloop" "$w/kn/KNOPPIX/KNOPPIX"
cp "$w/top.cloop" "$w/kn/KNOPPIX/KNOPPIX1"
iso "$d/knoppix2.iso" "$w/kn"

# Stock KNOPPIX keeps iso9660 in its cloop: the tree from the ext2 image.
mkdir -p "$w/tree" "$w/kro/KNOPPIX"
unsquashfs -q -f -d "$w/tree" "$d/tiny.sqfs" >/dev/null
xorriso -as mkisofs -quiet -R -o "$w/ro.iso9660" "$w/tree" 2>/dev/null
"$umlk" make-cloop -q "$w/ro.iso9660" "$w/kro/KNOPPIX/KNOPPIX"
iso "$d/knoppix-ro.iso" "$w/kro"

mkdir -p "$w/custom/custom"
cp "$d/tiny.sqfs" "$w/custom/custom/root.sfs"
iso "$d/custom.iso" "$w/custom"
