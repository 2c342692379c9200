#!/bin/sh
# The README's first command ends here: with the single-file release,
# boot the tiny KNOPPIX-style live CD (an ISO whose root filesystem is one
# cloop file) as a User Mode Linux guest, as an ordinary program would:
# run commands in it, keep a change in a COW file, and put two guests on
# one private network.
#
# Usage: release/demo.sh [UMLK] [ISO]     (defaults: build/release/umlk,
#                                          build/rootfs/tiny.iso)
set -eu
umlk=${1:-build/release/umlk}
iso=${2:-build/rootfs/tiny.iso}
work=$(mktemp -d)
export XDG_CACHE_HOME="$work/cache" XDG_RUNTIME_DIR="$work/run"
mkdir -m 700 "$work/run"
trap 'for f in "$work"/run/umlk/*.pid; do [ -f "$f" ] && kill "$(cat "$f")"; done; rm -rf "$work"' EXIT
step() { printf '\n== %s\n' "$*"; }

step "$umlk: $(stat -c %s "$umlk") bytes, one static file with its UML kernel inside"
"$umlk" kernel-info | sed 's/^/   /'

step "umlk boot $iso -- uname -a    (the cloop is read where it lies, nothing extracted)"
start=$(date +%s%N)
"$umlk" boot "$iso" -- uname -a
echo "   ($(( ($(date +%s%N) - start) / 1000000 )) ms)"

step "the same again, warm"
start=$(date +%s%N)
"$umlk" boot "$iso" -- sh -c 'echo "hostname $(hostname), root on $(grep " / " /proc/mounts | cut -d" " -f1)"'
echo "   ($(( ($(date +%s%N) - start) / 1000000 )) ms)"

step "a change kept in a COW file, seen by the next boot"
"$umlk" boot --cow "$work/demo.cow" "$iso" -- sh -c 'echo "written on $(date)" > /root/note'
"$umlk" boot --cow "$work/demo.cow" "$iso" -- cat /root/note
"$umlk" cow-merge --info "$work/demo.cow" | sed 's/^/   /'

step "two guests on a private network (a switch and a DHCP server, started on demand)"
"$umlk" boot --net auto "$iso" -- sh -c 'echo "$(hostname): $(ip -4 -o addr show eth0 | grep -o "inet [0-9./]*")"; sleep 3' &
sleep 1.5
"$umlk" boot --net auto "$iso" -- sh -c 'echo "$(hostname): $(ip -4 -o addr show eth0 | grep -o "inet [0-9./]*")";
	ping -c 2 10.0.2.15 | grep "bytes from"'
wait

step "interactive: umlk boot $iso   (the guest's own init on this terminal; 'poweroff' to leave)"
