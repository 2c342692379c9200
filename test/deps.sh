#!/bin/sh
# Install what umlk needs to build, test and benchmark on Debian 12
# (bookworm).  Run as root.  The kernel's source comes from sid, fetched by
# kernel/build.sh into its cache; linux-source-6.12 is for the benchmarks
# that compare with the kernel umlk used before.  Adds a deb-src entry so
# 'apt-get source zlib' can fetch the zlib source that is built for musl.
set -eu
export DEBIAN_FRONTEND=noninteractive
if ! grep -Rqs -e '^Types:.*deb-src' -e '^deb-src' /etc/apt/sources.list /etc/apt/sources.list.d/; then
	cat > /etc/apt/sources.list.d/umlk-deb-src.sources <<'SRC'
Types: deb-src
URIs: http://deb.debian.org/debian
Suites: bookworm
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg
SRC
fi
apt-get update -qq
apt-get install -y -qq --no-install-recommends \
	make gcc libc6-dev musl-tools zlib1g-dev dpkg-dev patch file perl \
	clang libclang-rt-14-dev \
	linux-source-6.12 bc flex bison xz-utils \
	cloop-utils uml-utilities busybox-static e2fsprogs xorriso \
	util-linux procps iproute2 ethtool cpio strace squashfs-tools passwd tmux \
	isc-dhcp-client debootstrap dpkg live-build \
	xnest xvfb xserver-xephyr x11-apps x11-utils xauth imagemagick \
	kea-admin dnsmasq-base \
	qemu-system-common qemu-utils qemu-block-extra qemu-system-x86 \
	nginx-light curl openssh-client openssh-server openssh-sftp-server sshfs >/dev/null
# Installing nginx or openssh-server starts it (on port 80, 22) where an
# init system runs; the tests run their own, as the user, on a free port.
for service in nginx ssh; do
	if command -v systemctl >/dev/null 2>&1 && systemctl is-active -q $service 2>/dev/null; then
		systemctl disable -q --now $service 2>/dev/null || true
	fi
done
