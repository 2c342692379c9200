#!/bin/sh
# Booting from a web server, over emulated networks: Debian's nginx on
# loopback behind bench/tools/linkem.pl, a relay that acts as a link (every
# byte delayed each way, one shared rate each way), in two profiles:
#   LAN  100 Mbit/s, 1 ms round trip
#   WAN   20 Mbit/s, 40 ms round trip
# (tc netem would do the same in a network namespace; this host's kernel
# has no netem, and the relay needs neither it nor root.)
# For each, with a cold chunk cache, time to '-- true' on the host's clock
# and the bytes nginx sent:
#   1. umlk boot http://.../debian.iso#sha256=  (the Debian mini ISO), without
#      and with a boot profile in the index;
#   2. downloading the whole ISO with curl first (the download alone: the
#      boot after it is local);
#   3. the ISO's root (its cloop extracted: an ext2 image) served raw to the
#      same kernel by umlk and by qemu-storage-daemon with QEMU's curl
#      driver (Debian's qemu-block-extra);
#   4. the desktop case of the original paper: xnest-launch of the URL to
#      the guest's first window (xclock) mapped, under Xvfb, with the
#      profile's index.
# One run each.
set -eu
. "$(dirname "$0")/lib.sh"
U=$umlk
K=$kernel
iso=$top/build/rootfs/debian.iso
for t in nginx curl qemu-storage-daemon; do
	command -v $t >/dev/null 2>&1 || [ -x /usr/sbin/$t ] || { echo "bench/remote.sh: no $t; skipped"; exit 0; }
done
export XDG_RUNTIME_DIR="$w/run"
mkdir -m 700 "$w/run"
mkdir -p "$w/www/p" "$w/www/raw"

# The images and their indexes.
cp "$iso" "$w/www/debian.iso"
cp "$iso" "$w/www/p/debian.iso"
$U index -q "$w/www/debian.iso" > "$w/plain.idx"
XDG_CACHE_HOME="$w/c0" $U index -q --profile --kernel "$K" "$w/www/p/debian.iso" -- true > "$w/prof.idx"
$U extract-cloop -q "$iso" "$w/www/raw/root.img"
$U index -q "$w/www/raw/root.img" > "$w/raw.idx"
h() { sed -n 's/^sha256: //p' "$1"; }
isz=$(stat -c %s "$iso")
rsz=$(stat -c %s "$w/www/raw/root.img")

web_start

# run LABEL SIZE PATH COMMAND...: time it cold, print seconds, bytes sent and the share of SIZE
run() {
	label=$1 size=$2 path=$3
	shift 3
	rm -rf "$w/cache"
	: > "$w/access.log"
	sync
	t0=$(now_ns)
	if ! XDG_CACHE_HOME="$w/cache" "$@" > "$w/out" 2>&1; then
		echo "  $label: failed: $(tail -n 2 "$w/out" | tr '\n' ' ')"
		return 0
	fi
	t1=$(now_ns)
	b=$(sent "$path")
	secs=$(awk -v t=$((t1 - t0)) 'BEGIN { printf "%.2f", t / 1e9 }')
	printf '  %-44s %7ss  %6s KiB  %5s%%\n' "$label" "$secs" $((b / 1024)) \
		"$(awk -v a="$b" -v s="$size" 'BEGIN { printf "%.1f", 100 * a / s }')"
	eval "last_secs=$secs last_bytes=$b"
}

# desktop URL: xnest-launch to xclock mapped, cold; prints seconds and bytes
desktop() {
	rm -rf "$w/cache"
	: > "$w/access.log"
	t0=$(now_ns)
	XDG_CACHE_HOME="$w/cache" "$U" xnest-launch -q --kernel "$K" --run xclock "$1" 2> "$w/xerr" &
	lp=$!
	xnest_display "$w/xerr" $lp || true
	if ! wait_for_x $lp 120 x_has_window xclock; then
		echo "  xnest-launch: no guest window within 120 s: $(tail -n 2 "$w/xerr" | tr '\n' ' ')"
		return 0
	fi
	t=$(( $(now_ns) - t0 ))
	kill $lp                # xnest-launch halts the guest and closes the window
	wait $lp || true
	b=$(sent "$2")
	printf '  %-44s %7ss  %6s KiB  %5s%%\n' "xnest-launch URL, to xclock's window" \
		"$(awk -v t="$t" 'BEGIN { printf "%.2f", t / 1e9 }')" $((b / 1024)) \
		"$(awk -v a="$b" -v s="$isz" 'BEGIN { printf "%.1f", 100 * a / s }')"
}
X=
xvfb_start && X=1

B="$U boot -q --kernel $K"
for prof in "LAN 100 0.5" "WAN 20 20"; do
	set -- $prof
	shape "$2" "$3"
	echo "$1: $2 Mbit/s, $(awk -v d="$3" 'BEGIN { print 2 * d }') ms round trip; cold cache; time to '-- true', bytes sent, share of the image"
	run "umlk boot http://.../debian.iso" "$isz" /debian.iso $B "$S/debian.iso#sha256=$(h "$w/plain.idx")" -- true
	umlk_t=$last_secs umlk_b=$last_bytes
	run "  ... with a boot profile in the index" "$isz" /p/debian.iso $B "$S/p/debian.iso#sha256=$(h "$w/prof.idx")" -- true
	run "curl, the whole ISO first (download only)" "$isz" /debian.iso curl -sf -o "$w/dl.iso" "$S/debian.iso"
	curl_t=$last_secs
	rm -f "$w/dl.iso"
	echo "    umlk to a command in $(ratio "$umlk_t" "$curl_t") of the full download's time (goal on WAN: at most 0.10)"
	table "web boot to -- true ($1) vs downloading the ISO" "$umlk_t s" "$curl_t s" "$(ratio "$umlk_t" "$curl_t")" "<= 0.10 (WAN)"
	run "umlk, the ext2 root served raw" "$rsz" /raw/root.img $B "$S/raw/root.img#sha256=$(h "$w/raw.idx")" -- true
	own_t=$last_secs own_b=$last_bytes
	run "qemu-storage-daemon, curl driver, same image" "$rsz" /raw/root.img env UMLK_TEST_DISK_SERVER=qemu-storage-daemon \
		$B "$S/raw/root.img#sha256=$(h "$w/raw.idx")" -- true
	echo "    qemu-storage-daemon / umlk: time $(ratio "$last_secs" "$own_t")x, bytes $(ratio "$last_bytes" "$own_b")x (goal: above 1 on both)"
	table "web boot, raw root ($1) vs qemu-storage-daemon curl" "$own_t s" "$last_secs s" "$(ratio "$last_secs" "$own_t")x" "> 1x"
	echo "    (the qemu-storage-daemon run includes umlk's own first reads of the image, to learn its kind: the index and 64 KiB)"
	if [ -n "$X" ]; then
		desktop "$S/p/debian.iso#sha256=$(h "$w/prof.idx")" /p/debian.iso
	else
		echo "  (xnest-launch: skipped, no Xvfb, Xnest or xwininfo)"
	fi
done
