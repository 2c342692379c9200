#!/bin/sh
# Build the tiny KNOPPIX-style test image from Debian's busybox-static:
# a root filesystem (ext2) with busybox and its applet links, compressed
# to cloop, placed at KNOPPIX/KNOPPIX in an ISO made with xorriso.
#
# Usage: rootfs/tiny.sh UMLK OUTDIR      (writes OUTDIR/tiny.img, tiny.sqfs,
#        OUTDIR/tiny.cloop, OUTDIR/tiny.iso, OUTDIR/tiny-plain.iso)
# tiny.iso has Rock Ridge and Joliet names; tiny-plain.iso has neither.
set -eu
umlk=$1 out=$2
root=$(mktemp -d)
trap 'rm -rf "$root"' EXIT
mkdir -p "$out" "$root/bin" "$root/sbin" "$root/usr/bin" "$root/usr/sbin" "$root/etc" \
	"$root/root" "$root/tmp" "$root/proc" "$root/sys" "$root/dev" "$root/home" "$root/var/log"
chmod 1777 "$root/tmp"
cp /bin/busybox "$root/bin/busybox"
for app in $(/bin/busybox --list-full); do
	[ -e "$root/$app" ] || ln -s /bin/busybox "$root/$app"
done
printf 'root:x:0:0:root:/root:/bin/sh\n' > "$root/etc/passwd"
printf 'root:x:0:\n' > "$root/etc/group"
printf 'tiny\n' > "$root/etc/hostname"
cat > "$root/etc/inittab" <<'TAB'
::sysinit:/bin/mount -t proc proc /proc
::askfirst:-/bin/sh
::ctrlaltdel:/sbin/poweroff
::shutdown:/bin/umount -a -r
TAB
printf 'umlk tiny test image (busybox %s)\n' "$(/bin/busybox | head -n 1 | cut -d' ' -f2)" > "$root/etc/issue"
rm -f "$out/tiny.img"
mke2fs -q -F -t ext2 -b 4096 -d "$root" -L tiny "$out/tiny.img" 16M
"$umlk" make-cloop -q "$out/tiny.img" "$out/tiny.cloop"
mkdir -p "$root.iso/KNOPPIX"
trap 'rm -rf "$root" "$root.iso"' EXIT
cp "$out/tiny.cloop" "$root.iso/KNOPPIX/KNOPPIX"
echo "umlk tiny live CD" > "$root.iso/README.txt"
xorriso -as mkisofs -quiet -R -J -V UMLK_TINY -o "$out/tiny.iso" "$root.iso" 2>/dev/null
xorriso -as mkisofs -quiet -V UMLK_TINY -o "$out/tiny-plain.iso" "$root.iso" 2>/dev/null
# The same tree as squashfs, for the read-only roots and the live layouts.
rm -f "$out/tiny.sqfs"
mksquashfs "$root" "$out/tiny.sqfs" -quiet -noappend -all-root >/dev/null
