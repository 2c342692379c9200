#!/bin/sh
# A Debian Live ISO with an XFce desktop, for bench/desktop.sh: the
# original system's headline case (a KNOPPIX XFce desktop over the
# network), made with Debian's live-build like rootfs/live.sh, plus
# xfce4-session, xfwm4, xfce4-panel, xfdesktop4, xfce4-settings,
# xfce4-terminal and Thunar, D-Bus, and an X server for real screens.
# No recommends (so no Mesa with its LLVM: XFce draws without GL), no
# display manager: under 'umlk xnest-launch' the session runs on the
# Xnest window; on a real or emulated screen the autologin on tty1 starts
# X (rootfs/xfce/etc/profile.d/zz-desktop.sh).  The session's clients
# (xfwm4, xfsettingsd, the panel, Thunar's daemon, xfdesktop) start in one
# group, not five (rootfs/xfce/etc/xdg/xfce4/xfconf/.../xfce4-session.xml).
#
# Usage: rootfs/xfce.sh OUTDIR    (writes OUTDIR/xfce.iso)
#
# Built by 'make bench' and 'make rootfs-desktop', not by 'make check'
# (it takes longer than CI's budget); cached as $UMLK_CACHE/xfce-KEY.iso
# (rootfs/lb.sh).  Needs root and a Debian mirror (UMLK_DEBIAN_MIRROR).
set -eu
mkdir -p "$1"
out=$(cd "$1" && pwd)
here=$(cd "$(dirname "$0")" && pwd)
cache=${UMLK_CACHE:-$HOME/.cache/umlk-build}
mirror=${UMLK_DEBIAN_MIRROR:-http://deb.debian.org/debian}
. "$here/lb.sh"
lb_iso xfce UMLK_XFCE "boot=live components hostname=debian-xfce username=user" \
	"live-boot live-config live-config-systemd systemd-sysv sudo user-setup procps iproute2
	dbus dbus-x11 libpam-systemd
	xfce4-session xfwm4 xfce4-panel xfdesktop4 xfce4-settings xfce4-terminal thunar
	adwaita-icon-theme fonts-dejavu-core
	xinit xserver-xorg-core xserver-xorg-input-libinput" "$here/xfce"
