#!/bin/sh
# Build a real Debian Live ISO with Debian's own live-build: bookworm,
# systemd, live-boot and live-config (the "user" account, autologin,
# sudo), root in live/filesystem.squashfs, boot loader entries with
# "boot=live components".  What a user downloads from debian.org, made
# small: no recommends, no firmware, no installer, no security or updates
# archives (a test image, rebuilt from the same inputs).
#
# Usage: rootfs/live.sh OUTDIR    (writes OUTDIR/live.iso)
#
# Slow (several minutes: packages come from the mirror, then squashfs), so
# the ISO is cached as $UMLK_CACHE/live-KEY.iso, KEY hashing this script
# and live-build's and debootstrap's versions.  Needs root (live-build
# does) and a Debian mirror: UMLK_DEBIAN_MIRROR, default deb.debian.org.
set -eu
# OUTDIR made absolute: the build below changes into its work tree.
mkdir -p "$1"
out=$(cd "$1" && pwd)
here=$(cd "$(dirname "$0")" && pwd)
cache=${UMLK_CACHE:-$HOME/.cache/umlk-build}
mirror=${UMLK_DEBIAN_MIRROR:-http://deb.debian.org/debian}
packages="live-boot live-config live-config-systemd systemd-sysv sudo user-setup procps iproute2 iputils-ping"

key=$( (cat "$here/live.sh"; echo "$mirror";
	dpkg-query -W -f '${Version} ' live-build debootstrap) | sha256sum | cut -c1-16)
iso=$cache/live-$key.iso

if [ ! -s "$iso" ]; then
	if [ "$(id -u)" != 0 ]; then
		echo "rootfs/live.sh: live-build needs root; run it once as root to fill $cache" >&2
		exit 1
	fi
	command -v lb >/dev/null || { echo "rootfs/live.sh: live-build is not installed (test/deps.sh)" >&2; exit 1; }
	mkdir -p "$cache"
	. "$here/trees.sh"
	tree_sweep "$cache/live-tree"
	w=$cache/live-tree.$$
	trap 'cd /; [ -d "$w" ] && (cd "$w" && lb clean --purge >/dev/null 2>&1); tree_release "$w"; rm -f "$iso.tmp"' EXIT
	tree_signals
	mkdir -p "$w"
	cd "$w"
	echo "live: live-build bookworm (systemd, live-boot, live-config) into $iso" >&2
	lb config --mode debian --distribution bookworm --archive-areas main \
		--mirror-bootstrap "$mirror" --mirror-chroot "$mirror" --mirror-binary "$mirror" \
		--parent-mirror-bootstrap "$mirror" --parent-mirror-chroot "$mirror" --parent-mirror-binary "$mirror" \
		--security false --updates false --backports false \
		--apt-recommends false --apt-indices false --cache false \
		--binary-image iso --bootloaders syslinux --debian-installer none --memtest none \
		--firmware-binary false --firmware-chroot false --win32-loader false \
		--chroot-squashfs-compression-type zstd \
		--iso-volume UMLK_LIVE \
		--bootappend-live "boot=live components hostname=debian-live username=user" \
		> lb.log 2>&1
	echo "$packages" | tr ' ' '\n' > config/package-lists/umlk.list.chroot
	if ! lb build >> lb.log 2>&1 || ! [ -s live-image-amd64.iso ]; then
		tail -n 40 lb.log >&2
		exit 1
	fi
	mv live-image-amd64.iso "$iso.tmp"
	mv "$iso.tmp" "$iso"
fi
mkdir -p "$out"
cp "$iso" "$out/live.iso.tmp"
mv "$out/live.iso.tmp" "$out/live.iso"
