#!/bin/sh
# Build umlk's UML kernel from Debian's newest linux-source-7.x (from sid).
#
# Usage: kernel/build.sh OUT        (OUT: the kernel binary to write)
#
# The source package is fetched with 'apt-get download' through a private
# apt configuration (its own sources list, lists and cache directories
# under the cache), so the host's own apt never sees sid and nothing is
# installed.  The newest linux-source-7.N the archive offers is taken, so
# the build keeps working when Debian replaces 7.2 by 7.3.  The tree is
# patched with kernel/patches/*.patch in name order (patch -p1), configured
# as 'ARCH=um defconfig' plus kernel/config.fragment and built
# (kernel/make-tree.sh).
# The result is cached in $UMLK_CACHE/linux-KEY, KEY being a hash of the
# source package's name and version, the patches, the fragment and this script: a second
# build is a copy.  With no network, the newest source already downloaded
# is used.
set -eu
out=$1
here=$(cd "$(dirname "$0")" && pwd)
cache=${UMLK_CACHE:-$HOME/.cache/umlk-build}
mirror=${UMLK_DEBIAN_MIRROR:-http://deb.debian.org/debian}
apt=$cache/apt-sid
mkdir -p "$apt/lists/partial" "$apt/cache/archives/partial" "$apt/debs"
echo "deb [signed-by=/usr/share/keyrings/debian-archive-keyring.gpg] $mirror sid main" >"$apt/sources.list"
aptopts="-o Dir::Etc::SourceList=$apt/sources.list -o Dir::Etc::SourceParts=/dev/null
 -o Dir::State::Lists=$apt/lists -o Dir::Cache=$apt/cache -o Debug::NoLocking=1
 -o APT::Sandbox::User=root"

pkg= ver=
if apt-get $aptopts -qq update >"$apt/update.log" 2>&1; then
	pkg=$(apt-cache $aptopts pkgnames linux-source-7. | grep -E '^linux-source-7\.[0-9]+$' |
		sort -t. -k2,2n | tail -n 1)
	[ -n "$pkg" ] && ver=$(apt-cache $aptopts show "$pkg" | sed -n 's/^Version: //p' | sort -V | tail -n 1)
else
	echo "kernel: cannot reach $mirror (see $apt/update.log); using a downloaded source" >&2
fi
if [ -n "$pkg" ] && [ -n "$ver" ]; then
	deb=$apt/debs/${pkg}_$(echo "$ver" | sed 's/^[0-9]*://')_all.deb
	if [ ! -s "$deb" ]; then
		echo "kernel: downloading $pkg $ver from sid" >&2
		(cd "$apt/debs" && apt-get $aptopts -qq download "$pkg=$ver") >&2
	fi
else
	deb=$(ls "$apt"/debs/linux-source-7.*_all.deb 2>/dev/null | sort -V | tail -n 1)
	if [ -z "$deb" ]; then
		echo "kernel/build.sh: no linux-source-7.x in sid at $mirror and none downloaded before" >&2
		exit 1
	fi
	pkg=$(basename "$deb" | cut -d_ -f1) ver=$(basename "$deb" | cut -d_ -f2)
fi
[ -s "$deb" ] || { echo "kernel/build.sh: download of $pkg $ver failed" >&2; exit 1; }

patches=$(ls "$here"/patches/*.patch 2>/dev/null | sort)
key=$( (echo "$pkg $ver"; cat $patches "$here/config.fragment" "$here/build.sh" "$here/make-tree.sh") | sha256sum | cut -c1-16)
cached=$cache/linux-$key

if [ ! -x "$cached/linux" ]; then
	work=$cache/linux-build.$$
	trap 'rm -rf "$work"' EXIT
	rm -rf "$work"
	mkdir -p "$work"
	echo "kernel: unpacking $pkg $ver" >&2
	dpkg-deb -x "$deb" "$work/pkg"
	tar -C "$work" -xf "$work/pkg/usr/src/$pkg.tar.xz"
	rm -rf "$work/pkg"
	tree=$work/$pkg
	# (A patch is a speed-up: one that no longer applies to a newer
	# source is left out, saying so, rather than failing the build.)
	applied=
	for p in $patches; do
		if patch -s -p1 --dry-run -d "$tree" < "$p" >/dev/null 2>&1; then
			echo "kernel: applying $(basename "$p")" >&2
			patch -s -p1 -d "$tree" < "$p" >&2
			applied="$applied $(basename "$p")"
		else
			echo "kernel: $(basename "$p") does not apply to $pkg $ver: built without it" >&2
		fi
	done
	UMLK_PATCHES_APPLIED=$applied sh "$here/make-tree.sh" "$tree" "$here/config.fragment" "$cached"
fi
mkdir -p "$(dirname "$out")"
cp "$cached/linux" "$out.tmp"
mv "$out.tmp" "$out"
cp "$cached/release" "$(dirname "$out")/linux.release"
# (which of kernel/patches/ it has: tests of a patch's effect skip without it)
cp "$cached/patches" "$(dirname "$out")/linux.patches"
