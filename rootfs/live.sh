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
# the ISO is cached as $UMLK_CACHE/live-KEY.iso (rootfs/lb.sh).  Needs
# root (live-build does) and a Debian mirror: UMLK_DEBIAN_MIRROR, default
# deb.debian.org.
set -eu
mkdir -p "$1"
out=$(cd "$1" && pwd)
cache=${UMLK_CACHE:-$HOME/.cache/umlk-build}
mirror=${UMLK_DEBIAN_MIRROR:-http://deb.debian.org/debian}
. "$(cd "$(dirname "$0")" && pwd)/lb.sh"
lb_iso live UMLK_LIVE "boot=live components hostname=debian-live username=user" \
	"live-boot live-config live-config-systemd systemd-sysv sudo user-setup procps iproute2 iputils-ping"
