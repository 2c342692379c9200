#!/bin/sh
# The live-build Debian ISO (rootfs/live.sh: bookworm, systemd) from the
# command to its login prompt on the user's terminal ("debian-live
# login:", which live-config answers with its autologin on tty1), on the
# host's clock:
# umlk boot, isolated and --trusted, against QEMU's TCG emulator
# (qemu-system-x86, no KVM) booting the same ISO's own kernel and initrd
# with the same parameters, its console on a serial line.  One run each.
set -eu
top=$(cd "$(dirname "$0")/.." && pwd)
. "$top/bench/lib.sh"
U=${UMLK:-$top/build/umlk}
K=$top/build/linux
iso=$top/build/rootfs/live.iso
[ -f "$iso" ] || { echo "live: skipped ($iso missing: make rootfs)"; exit 0; }
command -v tmux >/dev/null || { echo "live: skipped (no tmux)"; exit 0; }
w=$(mktemp -d)
trap 'tmux -S "$w/t" kill-server 2>/dev/null; [ -s "$w/q.pid" ] && kill "$(cat "$w/q.pid")" 2>/dev/null; rm -rf "$w"' EXIT
export XDG_RUNTIME_DIR="$w/run"
mkdir -m 700 "$w/run"

# umlk ARGS...: seconds from the command to the autologin line, then poweroff.
umlk_login() {
	tmux -S "$w/t" kill-server 2>/dev/null || true
	t0=$(now_ns)
	tmux -S "$w/t" new-session -d -s g -x 150 -y 40 "$U boot -q --kernel $K $* $iso; sleep 30"
	i=0
	until tmux -S "$w/t" capture-pane -t g -p | grep -q 'debian-live login:'; do
		[ $i -ge 3000 ] && { echo "timeout"; return 0; }
		sleep 0.1
		i=$((i + 1))
	done
	t1=$(now_ns)
	i=0
	until tmux -S "$w/t" capture-pane -t g -p | grep -q 'user@debian-live'; do   # the shell
		[ $i -ge 600 ] && break
		sleep 0.1
		i=$((i + 1))
	done
	tmux -S "$w/t" send-keys -t g 'sudo poweroff' Enter
	sleep 3
	awk -v t=$((t1 - t0)) 'BEGIN { printf "%.1f\n", t / 1e9 }'
}
echo "live-build Debian ISO (systemd) to its login prompt on the terminal, host clock:"
a=$(umlk_login)
echo "  umlk boot (isolated, 1 CPU)             ${a} s"
b=$(umlk_login --trusted --cpus 2)
echo "  umlk boot --trusted --cpus 2            ${b} s"
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
	echo "  QEMU TCG (qemu-system-x86_64, 2 CPUs)   ${q} s"
	echo "  umlk is $(ratio "$q" "$a")x faster isolated, $(ratio "$q" "$b")x with --trusted"
else
	echo "  (QEMU: skipped, qemu-system-x86 is not installed)"
fi
