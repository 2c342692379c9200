#!/bin/sh
# Build the 6.12 UML kernel umlk used before (for the benchmarks that
# compare it with the current one) from Debian's linux-source-6.12 package.
#
# Usage: kernel/build.sh OUT        (OUT: the kernel binary to write)
#
# The tree is unpacked from /usr/src/linux-source-6.12.tar.xz, patched with
# kernel/patches/*.patch, configured as 'ARCH=um defconfig' plus
# kernel/config.fragment, and built.  The result is cached in
# $UMLK_CACHE/linux-KEY, KEY being a hash of the source package version,
# the fragment, the patches and this script: a second build is a copy.
set -eu
out=$1
here=$(cd "$(dirname "$0")" && pwd)
top=$(cd "$here/../.." && pwd)
cache=${UMLK_CACHE:-$HOME/.cache/umlk-build}
tarball=/usr/src/linux-source-6.12.tar.xz

if [ ! -f "$tarball" ]; then
	echo "kernel/build.sh: $tarball missing; install it: apt-get install linux-source-6.12" >&2
	exit 1
fi
srcver=$(dpkg-query -W -f '${Version}' linux-source-6.12)
key=$( (echo "$srcver"; cat "$here/config.fragment" "$here/build.sh" "$top/kernel/make-tree.sh" "$here"/patches/*.patch) |
	sha256sum | cut -c1-16)
cached=$cache/linux-$key

if [ ! -x "$cached/linux" ]; then
	work=$cache/linux-build.$$
	trap 'rm -rf "$work"' EXIT
	rm -rf "$work"
	mkdir -p "$work"
	echo "kernel: unpacking linux-source-6.12 $srcver" >&2
	tar -C "$work" -xf "$tarball"
	tree=$work/linux-source-6.12
	for p in "$here"/patches/*.patch; do
		echo "kernel: applying $(basename "$p")" >&2
		patch -s -d "$tree" -p1 < "$p"
	done
	sh "$top/kernel/make-tree.sh" "$tree" "$here/config.fragment" "$cached"
fi
mkdir -p "$(dirname "$out")"
cp "$cached/linux" "$out.tmp"
mv "$out.tmp" "$out"
cp "$cached/release" "$(dirname "$out")/linux.release"
