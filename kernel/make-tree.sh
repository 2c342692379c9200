#!/bin/sh
# Configure and build an unpacked UML kernel tree, and store the result;
# shared by kernel/build.sh and bench/kernel-6.12/build.sh.
#
# Usage: kernel/make-tree.sh TREE FRAGMENT CACHED
#
# TREE is configured as 'ARCH=um defconfig' plus FRAGMENT, every CONFIG_
# line of which must have taken effect (else it stops, naming them), then
# built; CACHED/ gets linux (stripped), linux.debug (symbols, for
# backtraces), config, release and patches (the names in
# UMLK_PATCHES_APPLIED, one a line: what kernel/build.sh applied), made
# in CACHED.tmp and renamed.
set -eu
tree=$1 fragment=$2 cached=$3

echo "kernel: configuring" >&2
make -s -C "$tree" ARCH=um defconfig >/dev/null
"$tree/scripts/kconfig/merge_config.sh" -m -O "$tree" "$tree/.config" "$fragment" >/dev/null
make -s -C "$tree" ARCH=um olddefconfig >/dev/null
missing=$(grep -E '^CONFIG_' "$fragment" | while IFS= read -r line; do
	opt=${line%%=*} val=${line#*=}
	if [ "$val" = n ]; then
		if grep -q "^$opt=" "$tree/.config"; then echo "$line"; fi
	elif ! grep -qx "$line" "$tree/.config"; then
		echo "$line"
	fi
done)
if [ -n "$missing" ]; then
	echo "kernel: these fragment lines did not take effect:" >&2
	echo "$missing" >&2
	exit 1
fi
echo "kernel: building (a few minutes on 2 cores)" >&2
make -s -C "$tree" ARCH=um -j"$(nproc)" linux >"$tree/build.log" 2>&1 || {
	tail -n 40 "$tree/build.log" >&2
	exit 1
}
rm -rf "$cached.tmp"
mkdir -p "$cached.tmp"
cp "$tree/linux" "$cached.tmp/linux.debug"
strip -o "$cached.tmp/linux" "$tree/linux"
cp "$tree/.config" "$cached.tmp/config"
make -s -C "$tree" ARCH=um kernelrelease > "$cached.tmp/release"
for p in ${UMLK_PATCHES_APPLIED:-}; do echo "$p"; done > "$cached.tmp/patches"
rm -rf "$cached"
mv "$cached.tmp" "$cached"
