#!/bin/sh
# Build the Debian "mini live CD": bookworm from debootstrap --variant=minbase
# with a few real packages and a small X setup (twm, xterm, xclock,
# xdpyinfo), as an ext2 image, compressed to cloop, at KNOPPIX/KNOPPIX in
# an ISO made with xorriso.
#
# Usage: rootfs/debian.sh UMLK OUTDIR    (writes OUTDIR/debian.iso)
#
# The ext2 image is the slow part (a few minutes: packages come from the
# mirror); it is cached as $UMLK_CACHE/debian-KEY.img, KEY hashing this
# script, the package list and debootstrap's version, so a second build
# only redoes the cloop and the ISO (seconds).  Needs root (debootstrap
# does) and a Debian mirror: UMLK_DEBIAN_MIRROR, default deb.debian.org.
set -eu
umlk=$1 out=$2
here=$(cd "$(dirname "$0")" && pwd)
cache=${UMLK_CACHE:-$HOME/.cache/umlk-build}
mirror=${UMLK_DEBIAN_MIRROR:-http://deb.debian.org/debian}
suite=bookworm
# Real packages for the tests (dpkg, networking tools) and the X demo.
packages="iproute2,iputils-ping,procps,less,netbase,ifupdown,xterm,twm,x11-apps,x11-utils,xauth"

key=$( (cat "$here/debian.sh"; echo "$packages $suite"; dpkg-query -W -f '${Version}' debootstrap) |
	sha256sum | cut -c1-16)
img=$cache/debian-$key.img

if [ ! -s "$img" ]; then
	if [ "$(id -u)" != 0 ]; then
		echo "rootfs/debian.sh: debootstrap needs root; run it once as root to fill $cache" >&2
		exit 1
	fi
	mkdir -p "$cache"
	. "$here/trees.sh"
	tree_sweep "$cache/debian-tree"
	tree=$cache/debian-tree.$$
	trap 'tree_release "$tree"; rm -f "$tree.log" "$img.tmp"' EXIT
	tree_signals
	echo "debian: debootstrap $suite (minbase + $packages)" >&2
	debootstrap --variant=minbase --include="$packages" "$suite" "$tree" "$mirror" >"$tree.log" 2>&1 || {
		tail -n 30 "$tree.log" >&2
		rm -f "$tree.log"
		exit 1
	}
	rm -f "$tree.log"
	echo debian-live > "$tree/etc/hostname"
	printf '127.0.0.1\tlocalhost\n127.0.1.1\tdebian-live\n' > "$tree/etc/hosts"
	printf 'umlk Debian mini live CD (%s, minbase)\n' "$suite" > "$tree/etc/issue"
	: > "$tree/etc/fstab"
	# The X session xnest-launch starts when no program is named: a
	# window manager and a terminal.
	cat > "$tree/root/.xsession" <<'XS'
#!/bin/sh
xterm -geometry 80x24+10+10 -title "umlk guest" &
exec twm
XS
	chmod 755 "$tree/root/.xsession"
	# Smaller: no package lists or downloaded archives in the image.
	rm -rf "$tree"/var/lib/apt/lists/* "$tree"/var/cache/apt/*.bin "$tree"/var/cache/apt/archives/*.deb
	# Room to install packages: the tree plus 256 MiB, in 4 KiB blocks.
	kb=$(du -sk "$tree" | cut -f1)
	mke2fs -q -F -t ext2 -b 4096 -d "$tree" -L debian-live "$img.tmp" $(( (kb * 5 / 4 + 262144) / 1024 ))M
	mv "$img.tmp" "$img"
	tree_release "$tree"
fi

mkdir -p "$out"
iso=$(mktemp -d)
trap 'rm -rf "$iso"' EXIT
mkdir "$iso/KNOPPIX"
"$umlk" make-cloop -q -L 6 "$img" "$iso/KNOPPIX/KNOPPIX"
echo "umlk Debian mini live CD" > "$iso/README.txt"
xorriso -as mkisofs -quiet -R -J -V UMLK_DEBIAN -o "$out/debian.iso.tmp" "$iso" 2>/dev/null
mv "$out/debian.iso.tmp" "$out/debian.iso"
