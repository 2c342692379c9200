# Sourced by the live ISO builders (rootfs/live.sh, rootfs/xfce.sh): one
# Debian Live ISO from Debian's own live-build, cached by its recipe.
#
# lb_iso NAME VOLUME APPEND PACKAGES [INCLUDES]
#   Builds (or finds) $cache/NAME-KEY.iso and copies it to $out/NAME.iso.
#   The ISO: bookworm, systemd, live-boot and live-config (the "user"
#   account, autologin, sudo), root in live/filesystem.squashfs (zstd),
#   syslinux entries with APPEND, the packages PACKAGES (space-separated)
#   with no recommends, no firmware, no installer, no security or updates
#   archives.  INCLUDES, a directory, is copied over the root (live-build's
#   includes.chroot).  KEY hashes this file, the arguments, the files
#   under INCLUDES, the mirror and live-build's and debootstrap's versions.
# Needs $out, $cache and $mirror set; root (live-build does) for a build.
. "$(dirname "$0")/trees.sh"

lb_iso() {
	_name=$1 _vol=$2 _append=$3 _pkgs=$4 _inc=${5:-}
	_key=$( (cat "$(dirname "$0")/lb.sh"; printf '%s\n' "$_name" "$_vol" "$_append" "$_pkgs" "$mirror"
		if [ -n "$_inc" ]; then (cd "$_inc" && find . -type f | LC_ALL=C sort | xargs sha256sum); fi
		dpkg-query -W -f '${Version} ' live-build debootstrap) | sha256sum | cut -c1-16)
	_iso=$cache/$_name-$_key.iso
	if [ ! -s "$_iso" ]; then
		if [ "$(id -u)" != 0 ]; then
			echo "rootfs: live-build needs root; run it once as root to fill $cache" >&2
			exit 1
		fi
		command -v lb >/dev/null || { echo "rootfs: live-build is not installed (test/deps.sh)" >&2; exit 1; }
		mkdir -p "$cache"
		tree_sweep "$cache/$_name-tree"
		_w=$cache/$_name-tree.$$
		trap 'cd /; [ -d "$_w" ] && (cd "$_w" && lb clean --purge >/dev/null 2>&1); tree_release "$_w"; rm -f "$_iso.tmp"' EXIT
		tree_signals
		mkdir -p "$_w"
		cd "$_w"
		echo "$_name: live-build bookworm ($_pkgs) into $_iso" >&2
		lb config --mode debian --distribution bookworm --archive-areas main \
			--mirror-bootstrap "$mirror" --mirror-chroot "$mirror" --mirror-binary "$mirror" \
			--parent-mirror-bootstrap "$mirror" --parent-mirror-chroot "$mirror" --parent-mirror-binary "$mirror" \
			--security false --updates false --backports false \
			--apt-recommends false --apt-indices false --cache false \
			--binary-image iso --bootloaders syslinux --debian-installer none --memtest none \
			--firmware-binary false --firmware-chroot false --win32-loader false \
			--chroot-squashfs-compression-type zstd \
			--iso-volume "$_vol" --bootappend-live "$_append" > lb.log 2>&1
		echo $_pkgs | tr " " "\n" > config/package-lists/umlk.list.chroot
		[ -n "$_inc" ] && cp -a "$_inc/." config/includes.chroot/
		if ! lb build >> lb.log 2>&1 || ! [ -s live-image-amd64.iso ]; then
			tail -n 40 lb.log >&2
			exit 1
		fi
		mv live-image-amd64.iso "$_iso.tmp"
		mv "$_iso.tmp" "$_iso"
		cd /
	fi
	mkdir -p "$out"
	cp "$_iso" "$out/$_name.iso.tmp"
	mv "$out/$_name.iso.tmp" "$out/$_name.iso"
}
