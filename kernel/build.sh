#!/bin/sh
# Build the UML kernel from Debian's linux-source-6.12 package.
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
cache=${UMLK_CACHE:-$HOME/.cache/umlk-build}
tarball=/usr/src/linux-source-6.12.tar.xz

if [ ! -f "$tarball" ]; then
	echo "kernel/build.sh: $tarball missing; install it: apt-get install linux-source-6.12" >&2
	exit 1
fi
srcver=$(dpkg-query -W -f '${Version}' linux-source-6.12)
key=$( (echo "$srcver"; cat "$here/config.fragment" "$here/build.sh" "$here"/patches/*.patch) |
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
	echo "kernel: configuring" >&2
	make -s -C "$tree" ARCH=um defconfig >/dev/null
	"$tree/scripts/kconfig/merge_config.sh" -m -O "$tree" "$tree/.config" "$here/config.fragment" >/dev/null
	make -s -C "$tree" ARCH=um olddefconfig >/dev/null
	# Every line of the fragment must have taken effect.
	missing=$(grep -E '^CONFIG_' "$here/config.fragment" | while IFS= read -r line; do
		opt=${line%%=*} val=${line#*=}
		if [ "$val" = n ]; then
			grep -q "^$opt=" "$tree/.config" && echo "$line"
		else
			grep -qx "$line" "$tree/.config" || echo "$line"
		fi
	done; true)
	if [ -n "$missing" ]; then
		echo "kernel: these fragment lines did not take effect:" >&2
		echo "$missing" >&2
		exit 1
	fi
	echo "kernel: building (a few minutes on 2 cores)" >&2
	make -s -C "$tree" ARCH=um -j"$(nproc)" linux >"$work/build.log" 2>&1 || {
		tail -n 40 "$work/build.log" >&2
		exit 1
	}
	mkdir -p "$cached.tmp"
	cp "$tree/linux" "$cached.tmp/linux.debug"     # symbols, for backtraces
	strip -o "$cached.tmp/linux" "$tree/linux"
	cp "$tree/.config" "$cached.tmp/config"
	make -s -C "$tree" ARCH=um kernelrelease > "$cached.tmp/release"
	rm -rf "$cached"
	mv "$cached.tmp" "$cached"
fi
mkdir -p "$(dirname "$out")"
cp "$cached/linux" "$out.tmp"
mv "$out.tmp" "$out"
cp "$cached/release" "$(dirname "$out")/linux.release"
