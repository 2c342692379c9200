#!/bin/sh
# Two small Debian roots for booting the guest's own init, as squashfs
# images (the kind of root a live system has):
#   trixie-systemd.sqfs   Debian 13 (trixie), minbase + systemd as init
#   bookworm-sysv.sqfs    Debian 12 (bookworm), minbase + sysvinit-core,
#                         KNOPPIX's style of init (inittab, rc scripts)
# Both let root log in on the console without a password, which is what
# the tests do at the login prompt.
#
# Usage: rootfs/inits.sh OUTDIR [NAME...]   (default: both)
#
# Each image is cached as $UMLK_CACHE/NAME-KEY.sqfs, KEY hashing this
# script, the suite, the package list and debootstrap's version, so a
# second build is a copy.  The first needs root (debootstrap does) and a
# Debian mirror: UMLK_DEBIAN_MIRROR, default deb.debian.org.
set -eu
out=$1
shift
here=$(cd "$(dirname "$0")" && pwd)
cache=${UMLK_CACHE:-$HOME/.cache/umlk-build}
mirror=${UMLK_DEBIAN_MIRROR:-http://deb.debian.org/debian}

build() {
	name=$1 suite=$2 packages=$3
	key=$( (cat "$here/inits.sh"; echo "$name $suite $packages"; dpkg-query -W -f '${Version}' debootstrap) |
		sha256sum | cut -c1-16)
	img=$cache/$name-$key.sqfs
	if [ ! -s "$img" ]; then
		if [ "$(id -u)" != 0 ]; then
			echo "rootfs/inits.sh: debootstrap needs root; run it once as root to fill $cache" >&2
			exit 1
		fi
		mkdir -p "$cache"
		. "$here/trees.sh"
		tree_sweep "$cache/$name-tree"
		tree=$cache/$name-tree.$$
		trap 'tree_release "$tree"; rm -f "$tree.log" "$img.tmp"' EXIT
		tree_signals
		echo "inits: debootstrap $suite (minbase + $packages)" >&2
		debootstrap --variant=minbase --include="$packages" "$suite" "$tree" "$mirror" >"$tree.log" 2>&1 || {
			tail -n 30 "$tree.log" >&2
			exit 1
		}
		echo "$name" > "$tree/etc/hostname"
		printf '127.0.0.1\tlocalhost\n127.0.1.1\t%s\n' "$name" > "$tree/etc/hosts"
		: > "$tree/etc/fstab"
		# root without a password, on the console only (a test image).
		chroot "$tree" passwd -d root >/dev/null
		rm -rf "$tree"/var/lib/apt/lists/* "$tree"/var/cache/apt/*.bin "$tree"/var/cache/apt/archives/*.deb
		# (squashfs keeps security.* xattrs, file capabilities among them;
		# its complaint about systemd's ACLs under /var/log is dropped.)
		mksquashfs "$tree" "$img.tmp" -comp zstd -noappend -quiet >"$tree.log" 2>&1 || {
			cat "$tree.log" >&2
			exit 1
		}
		mv "$img.tmp" "$img"
		tree_release "$tree"
		rm -f "$tree.log"
		trap - EXIT
	fi
	mkdir -p "$out"
	cp "$img" "$out/$name.sqfs.tmp"
	mv "$out/$name.sqfs.tmp" "$out/$name.sqfs"
}

[ $# -gt 0 ] || set -- trixie-systemd bookworm-sysv
for n in "$@"; do
	case $n in
	trixie-systemd) build trixie-systemd trixie "systemd-sysv,login,passwd" ;;
	bookworm-sysv) build bookworm-sysv bookworm "sysvinit-core,login,passwd" ;;
	*) echo "rootfs/inits.sh: no image called $n" >&2; exit 2 ;;
	esac
done
