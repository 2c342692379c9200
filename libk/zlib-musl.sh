#!/bin/sh
# Build a static zlib for musl from Debian's zlib source package.
#
# Debian's own libz.a is compiled against glibc (its gz* functions call
# __snprintf_chk), so linking it into a musl binary is wrong.  This script
# fetches the source with 'apt-get source' (needs a deb-src line for
# bookworm), builds it with musl-gcc and installs it under DEST.  The result
# is cached under $UMLK_CACHE, keyed by the zlib package version, the musl
# version and this script, so it is built once per machine.
#
# Usage: libk/zlib-musl.sh DEST
set -eu
dest=$1
cache=${UMLK_CACHE:-$HOME/.cache/umlk-build}
here=$(cd "$(dirname "$0")" && pwd)

zver=$(dpkg-query -W -f '${Version}' zlib1g 2>/dev/null || echo unknown)
mver=$(dpkg-query -W -f '${Version}' musl-dev 2>/dev/null || echo unknown)
key=$( (echo "$zver $mver"; cat "$here/zlib-musl.sh") | sha256sum | cut -c1-16)
cached=$cache/zlib-musl-$key

if [ ! -f "$cached/lib/libz.a" ]; then
	work=$(mktemp -d)
	trap 'rm -rf "$work"' EXIT
	echo "zlib-musl: fetching Debian's zlib source ($zver)" >&2
	if ! (cd "$work" && apt-get source --download-only "zlib=$zver" >/dev/null 2>&1 ||
	      apt-get source --download-only zlib >/dev/null 2>&1); then
		echo "zlib-musl: 'apt-get source zlib' failed; add a deb-src line for bookworm" >&2
		echo "  (see README.md, 'Building') and run 'apt-get update'" >&2
		exit 1
	fi
	tar -C "$work" -xf "$work"/zlib_*.orig.tar.*
	src=$(find "$work" -maxdepth 1 -type d -name 'zlib-*' | head -n 1)
	echo "zlib-musl: building with musl-gcc" >&2
	# Debian's own flags on amd64: -O3, and UNALIGNED_OK, which picks the
	# faster longest_match (same output, measured ~3% less CPU).
	case $(uname -m) in x86_64|i?86) unaligned=-DUNALIGNED_OK ;; *) unaligned= ;; esac
	(cd "$src" && CC=musl-gcc CFLAGS="-O3 $unaligned" ./configure --static --prefix="$work/inst" >/dev/null &&
	 make -j"$(nproc)" libz.a >/dev/null && make install >/dev/null)
	mkdir -p "$cache"
	rm -rf "$cached.tmp"
	mkdir -p "$cached.tmp/lib" "$cached.tmp/include"
	cp "$work/inst/lib/libz.a" "$cached.tmp/lib/"
	cp "$work/inst/include/zlib.h" "$work/inst/include/zconf.h" "$cached.tmp/include/"
	rm -rf "$cached"
	mv "$cached.tmp" "$cached"
fi
mkdir -p "$dest"
cp -r "$cached/lib" "$cached/include" "$dest/"
