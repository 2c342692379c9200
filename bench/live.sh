#!/bin/sh
# Live systems from the command to their login prompt on a terminal of
# their own (bench/tools/login.pl), on the host's clock: the live-build Debian ISO
# (rootfs/live.sh: bookworm, systemd; "debian-live login:", which
# live-config answers with its autologin), and the roots of
# rootfs/inits.sh (trixie with systemd, bookworm with sysvinit: "NAME
# login:").  umlk boot --isolated, the default (fast mode, the kernel in
# its jail) and the same without the jail (--no-jail --trusted: what the
# jail costs); and the live ISO under QEMU's TCG emulator
# (qemu-system-x86, no KVM) booting its own kernel and initrd with the
# same parameters, its console on a serial line.  One run each (RUNS=N:
# best of N rounds, the three modes in turn).  Goals:
# trixie at most 5 s in the default mode; the jail at most 5%.
set -eu
. "$(dirname "$0")/lib.sh"
U=$umlk
K=$kernel
iso=$top/build/rootfs/live.iso
[ -f "$iso" ] || { echo "live: skipped ($iso missing: make rootfs)"; exit 0; }
command -v script >/dev/null || { echo "live: skipped (no script(1): util-linux)"; exit 0; }
at_exit '[ -s "$w/q.pid" ] && kill "$(cat "$w/q.pid")" 2>/dev/null'

export XDG_RUNTIME_DIR="$w/run"
mkdir -m 700 "$w/run"

# login IMAGE PROMPT SHELL ARGS...: seconds from the command to PROMPT on
# its terminal (bench/tools/login.pl: the guest's console a terminal of its
# own, read as it comes); then (once SHELL shows, or after a login as root)
# power off.
login() {
	img=$1 prompt=$2 shell=$3
	shift 3
	sudo=; [ "$shell" = 'user@debian-live' ] && sudo=1
	perl "$top/bench/tools/login.pl" "$prompt" "$shell" "$sudo" "$U boot -q --kernel $K $* $img"
}
# min A B: the smaller (A may be empty; "timeout" is the larger).
min() {
	if [ -z "$1" ] || [ "$1" = timeout ]; then echo "$2"
	elif [ "$2" = timeout ] || awk -v a="$1" -v b="$2" 'BEGIN { exit !(a <= b) }'; then echo "$1"
	else echo "$2"; fi
}
live_runs=${RUNS:-1}
# row NAME IMAGE PROMPT SHELL: one line of the table, best of RUNS rounds
# (1 unless RUNS says otherwise: each is a minute or more).
row() {
	[ -f "$2" ] || { printf "  %-34s (skipped: %s missing, make rootfs)\n" "$1" "$2"; return 0; }
	a= b= c= r=0
	while [ $r -lt "$live_runs" ]; do       # the three in turn, best of each
		a=$(min "$a" "$(login "$2" "$3" "$4" --isolated)")
		b=$(min "$b" "$(login "$2" "$3" "$4")")
		c=$(min "$c" "$(login "$2" "$3" "$4" --no-jail --trusted)")
		r=$((r + 1))
	done
	printf "  %-34s %9s %9s %9s %12s\n" "$1" "$a" "$b" "$c" \
		"$(awk -v b="$b" -v c="$c" 'BEGIN { v = c > 0 ? 100 * (b - c) / c : 0; printf "%+.1f%%", v }')"
	table "$1 to login: default vs --isolated" "$b s" "$a s" "$(ratio "$a" "$b")x" ""
	table "$1 to login: jail vs --no-jail" "$b s" "$c s" "$(ratio "$c" "$b")x" ">= 0.95x"
}
echo "Live systems to their login prompt on the terminal, host clock (seconds, best of $live_runs):"
printf "  %-34s %9s %9s %9s %12s\n" "" "isolated" "default" "no jail" "jail's cost"
row "live-build ISO (systemd 252)" "$iso" 'debian-live login:' 'user@debian-live'
liso=$b lisolated=$a
row "trixie, systemd" "$top/build/rootfs/trixie-systemd.sqfs" 'trixie-systemd login:' ''
row "bookworm, sysvinit" "$top/build/rootfs/bookworm-sysv.sqfs" 'bookworm-sysv login:' ''
a=$lisolated b=$liso
if command -v qemu-system-x86_64 >/dev/null && command -v xorriso >/dev/null; then
	xorriso -osirrox on -indev "$iso" -extract /live/vmlinuz "$w/vmlinuz" -extract /live/initrd.img "$w/initrd" 2>/dev/null
	t0=$(now_ns)
	qemu-system-x86_64 -accel tcg -m 1024 -smp 2 -display none -serial "file:$w/serial" -no-reboot \
		-kernel "$w/vmlinuz" -initrd "$w/initrd" -cdrom "$iso" \
		-append "boot=live components hostname=debian-live username=user console=ttyS0" &
	echo $! > "$w/q.pid"
	i=0
	until grep -aq 'debian-live login:' "$w/serial" 2>/dev/null; do
		[ $i -ge 6000 ] && break
		sleep 0.1
		i=$((i + 1))
	done
	t1=$(now_ns)
	kill "$(cat "$w/q.pid")" 2>/dev/null || true
	q=$(awk -v t=$((t1 - t0)) 'BEGIN { printf "%.1f\n", t / 1e9 }')
	[ $i -ge 6000 ] && q="timeout (600 s)"
	echo "  live-build ISO under QEMU TCG (qemu-system-x86_64, 2 CPUs): ${q} s"
	echo "  umlk is $(ratio "$q" "$a")x faster isolated, $(ratio "$q" "$b")x in the default mode"
	table "live-build ISO to login: default vs QEMU TCG" "$b s" "$q s" "$(ratio "$q" "$b")x" ""
else
	echo "  (QEMU: skipped, qemu-system-x86 is not installed)"
fi
