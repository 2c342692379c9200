#!/bin/sh
# A whole desktop from a web server: the original system's headline case
# (a KNOPPIX XFce desktop under UML in 35 s on a 100 Mbit LAN reading
# 18 MB, about 50 s over WAN links).  The image is rootfs/xfce.sh's
# bookworm live ISO (XFce, no display manager); under Xvfb:
#   1. 'umlk index --profile --xnest': the profile of the desktop's start,
#      recorded by booting it once here and closing the window when the
#      desktop is up;
#   2. 'umlk xnest-launch URL' with nginx behind bench/tools/linkem.pl as
#      in bench/remote.sh (LAN 100 Mbit/s 1 ms round trip, WAN 20 Mbit/s
#      40 ms), cold chunk cache, with and without the profile, and from
#      the local file: the time to the desktop drawn (the xfce4-panel and
#      xfdesktop windows viewable on the Xnest display, seen from the host
#      with xwininfo) and the bytes nginx sent;
#   3. the same ISO under QEMU's TCG emulator with its own kernel and
#      initrd (its autologin starts X on the emulated screen), to the
#      panel seen in its screen (QEMU's screendump).
# Screenshots of both desktops go to $DESKTOP_OUT (default build/bench):
# desktop-umlk.png, desktop-qemu.png.  The last line is
#   desktop: LAN S s B MiB, WAN S s B MiB
# (with the profile).  One run each; goals LAN <= 10 s, WAN <= 15 s,
# bytes <= 10% of the ISO.  DESKTOP_QEMU=0 leaves QEMU out; DESKTOP_CHUNK
# sets the indexes' chunk size (umlk index --chunk-size; default umlk's).
set -eu
. "$(dirname "$0")/lib.sh"
U=$umlk
K=$kernel
iso=$top/build/rootfs/xfce.iso
out=${DESKTOP_OUT:-$top/build/bench}
mem=1024M
[ -f "$iso" ] || { echo "desktop: skipped ($iso missing: make rootfs-desktop, as root)"; exit 0; }
for t in nginx xwd convert xkill; do
	command -v $t >/dev/null 2>&1 || [ -x /usr/sbin/$t ] || { echo "desktop: skipped (no $t)"; exit 0; }
done
xvfb_start || { echo "desktop: skipped (Xvfb, Xnest or xwininfo is not installed)"; exit 0; }
export XDG_RUNTIME_DIR="$w/run"
mkdir -m 700 "$w/run"
mkdir -p "$out" "$w/www/p"
web_start
ln "$iso" "$w/www/xfce.iso" 2>/dev/null || cp "$iso" "$w/www/xfce.iso"
ln "$iso" "$w/www/p/xfce.iso" 2>/dev/null || cp "$iso" "$w/www/p/xfce.iso"
isz=$(stat -c %s "$iso")
h() { sed -n 's/^sha256: //p' "$1"; }
mib() { awk -v b="$1" 'BEGIN { printf "%.1f", b / 1048576 }'; }
secs() { awk -v t="$1" 'BEGIN { printf "%.1f", t / 1e9 }'; }

# drawn: the desktop is up on the nested display :$ND (the panel and
# xfdesktop's window viewable).
drawn() {
	for _n in xfce4-panel Desktop; do
		XAUTHORITY="$XA" xwininfo -display ":$ND" -name "$_n" 2>/dev/null | grep -q IsViewable || return 1
	done
}
# colours PPM: how many distinct colours the picture has.
colours() { convert "$1" -format %k info:; }
# close_window PID: close xnest-launch's window (as its user would: the
# window's client is killed), so it halts the guest, and wait for it.
close_window() {
	_id=$(xwininfo -root -tree | awk '/"umlk: / { print $1; exit }')
	[ -n "$_id" ] && xkill -id "$_id" >/dev/null 2>&1
	wait "$1" || true
}
# to_desktop PID SECONDS: until the desktop of xnest-launch PID (its stderr
# in $w/xerr) is drawn; says why not and returns 1.
to_desktop() {
	if ! xnest_display "$w/xerr" "$1"; then
		echo "  xnest-launch ended before its window: $(tail -n 3 "$w/xerr" | tr '\n' ' ')"
		return 1
	fi
	if ! wait_for_x "$1" "$2" drawn; then
		echo "  no desktop within $2 s: $(tail -n 3 "$w/xerr" | tr '\n' ' ')"
		return 1
	fi
}
# launch IMAGE-or-URL [ARGS...]: xnest-launch to the desktop drawn, cold
# cache; sets T (nanoseconds) or says why not and returns 1.  The window
# stays open: close_window $LP ends it.
launch() {
	rm -rf "$w/cache"
	: > "$w/access.log"
	sync
	_t0=$(now_ns)
	XDG_CACHE_HOME="$w/cache" "$U" xnest-launch -q --kernel "$K" --mem $mem "$@" 2> "$w/xerr" &
	LP=$!
	if ! to_desktop $LP 300; then
		close_window $LP
		return 1
	fi
	T=$(( $(now_ns) - _t0 ))
}
# shot FILE: the nested display's picture once it has settled (the windows
# are mapped before they are painted): more than 16 colours and the same
# in two looks a second apart, up to 30 s; 1 when it does not settle.
shot() {
	_k=0 _last=
	while [ $_k -lt 30 ]; do
		sleep 1
		_k=$((_k + 1))
		XAUTHORITY="$XA" xwd -silent -root -display ":$ND" -out "$w/shot.xwd" 2>/dev/null || continue
		_sum=$(convert "xwd:$w/shot.xwd" rgb:- 2>/dev/null | md5sum)
		if [ "$_sum" = "$_last" ] && convert "xwd:$w/shot.xwd" "$1" 2>/dev/null && [ "$(colours "$1")" -gt 16 ]; then
			return 0
		fi
		_last=$_sum
	done
	return 1
}

echo "XFce live ISO, $(mib "$isz") MiB: from the command to the desktop drawn, host clock, cold cache"

# 1. The indexes: plain, and with the profile of the desktop's start.
chunk=${DESKTOP_CHUNK:+--chunk-size $DESKTOP_CHUNK}
"$U" index -q $chunk "$w/www/xfce.iso" > "$w/plain.idx"
rm -rf "$w/c0"
XDG_CACHE_HOME="$w/c0" "$U" index -q $chunk --profile --xnest --kernel "$K" --mem $mem "$w/www/p/xfce.iso" \
	> "$w/prof.idx" 2> "$w/xerr" &
pp=$!
to_desktop $pp 600 || { echo "desktop: the profile's boot failed"; exit 1; }
sleep 3                         # what the desktop reads just after its windows show
close_window $pp
rm -rf "$w/c0"
[ -s "$w/prof.idx" ] || { echo "desktop: no profile recorded: $(tail -n 3 "$w/xerr" | tr '\n' ' ')"; exit 1; }
"$U" index --show "$w/www/p/xfce.iso.umlkidx" | sed -n 's/^profile: /  the profile: /p'

# 2. umlk: the local file, then the two links.
printf '  %-40s %8s %10s %7s\n' "" "seconds" "fetched" "of ISO"
if launch "$iso"; then
	printf '  %-40s %8s\n' "the local file (no network)" "$(secs $T)"
	if shot "$out/desktop-umlk.png"; then
		echo "  screenshot: $out/desktop-umlk.png ($(colours "$out/desktop-umlk.png") colours)"
	else
		echo "  the desktop's window did not settle on a picture of many colours within 30 s"
	fi
	close_window $LP
fi
# row LABEL PATH URL: one cold launch from the web server
row() {
	if launch "$3"; then
		_b=$(sent "$2")         # by the time the desktop was drawn
		printf '  %-40s %8s %6s MiB %6s%%\n' "$1" "$(secs $T)" "$(mib "$_b")" \
			"$(awk -v a="$_b" -v s="$isz" 'BEGIN { printf "%.1f", 100 * a / s }')"
		close_window $LP
		R="$(secs $T) s $(mib "$_b") MiB"
	else
		R="failed"
	fi
}
for prof in "LAN 100 0.5" "WAN 20 20"; do
	set -- $prof
	shape "$2" "$3"
	echo "  $1: $2 Mbit/s, $(awk -v d="$3" 'BEGIN { print 2 * d }') ms round trip"
	row "  xnest-launch URL" /xfce.iso "$S/xfce.iso#sha256=$(h "$w/plain.idx")"
	row "  ... with the desktop's profile" /p/xfce.iso "$S/p/xfce.iso#sha256=$(h "$w/prof.idx")"
	eval "r_$1=\$R"
done

# 3. QEMU TCG, the ISO's own kernel, to the panel on its screen.
q=skipped
if [ "${DESKTOP_QEMU:-1}" != 0 ] && command -v qemu-system-x86_64 >/dev/null && command -v xorriso >/dev/null; then
	xorriso -osirrox on -indev "$iso" -extract /live/vmlinuz "$w/vmlinuz" -extract /live/initrd.img "$w/initrd" 2>/dev/null
	at_exit '[ -s "$w/q.pid" ] && kill "$(cat "$w/q.pid")" 2>/dev/null'
	t0=$(now_ns)
	qemu-system-x86_64 -accel tcg -m $mem -smp 2 -vga std -display none -no-reboot \
		-monitor "unix:$w/qmon,server,nowait" -serial "file:$w/serial" \
		-kernel "$w/vmlinuz" -initrd "$w/initrd" -cdrom "$iso" \
		-append "boot=live components hostname=debian-xfce username=user" &
	echo $! > "$w/q.pid"
	# The panel is up when the screen has many colours and its top strip
	# has the panel's menu text and icons (the console has a few colours;
	# the desktop's background alone, one: the panel's own colour changes
	# with the theme's version, light before, dark in bookworm's today).
	q="timeout (600 s)"
	while [ $(( $(now_ns) - t0 )) -lt 600000000000 ]; do
		sleep 2
		rm -f "$w/q.ppm"
		perl -MIO::Socket::UNIX -e '
			my $s = IO::Socket::UNIX->new(Peer => $ARGV[0]) or exit 1;
			print $s "screendump $ARGV[1]\n"; sleep 1; close $s' \
			"$w/qmon" "$w/q.ppm" 2>/dev/null || continue
		[ -s "$w/q.ppm" ] || continue
		n=$(colours "$w/q.ppm" 2>/dev/null || echo 0)
		top=$(convert "$w/q.ppm" -crop "400x16+0+2" +repage -format %k info: 2>/dev/null || echo 0)
		if [ "$n" -gt 64 ] && [ "$top" -gt 16 ]; then
			t1=$(now_ns)
			q=$(secs $((t1 - t0)))
			convert "$w/q.ppm" "$out/desktop-qemu.png"
			echo "  QEMU screenshot: $out/desktop-qemu.png ($n colours)"
			break
		fi
	done
	kill "$(cat "$w/q.pid")" 2>/dev/null || true
fi
echo "  QEMU TCG (its own kernel, 2 CPUs, $mem), to the panel on its screen: $q s"
echo "  the original (KNOPPIX 3.x under UML, 2003): LAN 35 s 18 MB, WAN about 50 s 19-21 MB"
table "XFce desktop from a web server, LAN (profile)" "$r_LAN" "35 s 18 MB (2003)" "" "<= 10 s"
table "XFce desktop from a web server, WAN (profile)" "$r_WAN" "50 s 21 MB (2003)" "" "<= 15 s"
table "XFce live ISO to its desktop: umlk LAN vs QEMU TCG" "${r_LAN%% s*} s" "$q s" "$(ratio "$q" "${r_LAN%% s*}")x" ""
echo "desktop: LAN $r_LAN, WAN $r_WAN"
