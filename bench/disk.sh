#!/bin/sh
# The guest's disk, served by umlk over vhost-user, against the peers:
#  1. cold boot of the Debian mini ISO to '-- true' (the ISO's pages
#     dropped first): umlk reading the ISO where it lies, against the old
#     way (extract-cloop, then the kernel's ubd driver on the copy);
#     bytes read and disk used;
#  2. a 300 MB file read in sequence in the guest, and 4 KiB reads at
#     random offsets of the disk (O_DIRECT): umlk's server, the kernel's
#     ubd driver, and qemu-storage-daemon, all serving the same raw ext2
#     image under a COW layer (qcow2 for QEMU), warm in the host's cache;
#  3. the serving side's memory.
# Times are on the host's clock: the cold boot's whole; in part 2, between
# lines the guest prints before and after the reads, as they reach the
# host (a boot's own time varies by more than the reads on CPU 0 take).
set -eu
. "$(dirname "$0")/lib.sh"
U=$umlk
K=$kernel
iso=$top/build/rootfs/debian.iso
export XDG_RUNTIME_DIR="$w/run" XDG_CACHE_HOME="$w/cache"
mkdir -m 700 "$w/run"
B="$U boot -q --kernel $K"

# The ubd path's guest: busybox as /init, mounting /dev/ubda and running
# "umlk.run=WHAT" from the kernel's command line.  Like umlk's init, it
# waits until every CPU is up first: the kernel brings the second one up
# while init starts, and a reader that ran before it came measured a
# guest of one CPU (where a request costs no crossing between host CPUs:
# 3000 random reads 0.05 s against 0.25 s, by hand), not the peer.
mkdir -p "$w/i/bin" "$w/i/dev" "$w/i/proc" "$w/i/sys" "$w/i/mnt"
cp /bin/busybox "$w/i/bin/busybox"
cat > "$w/i/init" <<'INIT'
#!/bin/busybox sh
/bin/busybox mount -t devtmpfs dev /dev
/bin/busybox mount -t proc proc /proc
/bin/busybox mount -t sysfs sys /sys
c=/sys/devices/system/cpu n=0
while [ "$(/bin/busybox cat $c/online)" != "$(/bin/busybox cat $c/present)" ] && [ $n -lt 2000 ]; do
	/bin/busybox usleep 1000
	n=$((n + 1))
done
[ -n "${sched:-}" ] && echo "$sched" > /sys/block/ubda/queue/scheduler
/bin/busybox mount /dev/ubda /mnt || /bin/busybox poweroff -f
run=$(/bin/busybox sed -n 's/.*umlk.run=\([a-z0-9]*\).*/\1/p' /proc/cmdline)
case $run in
seq)  echo start; /bin/busybox dd if=/mnt/big of=/dev/null bs=1M 2>/dev/null; echo done ;;
rand*) /mnt/randread /dev/ubda 3000 ${run#rand} ;;
esac
/bin/busybox umount /mnt
/bin/busybox poweroff -f
INIT
chmod +x "$w/i/init"
(cd "$w/i" && find . | cpio -o -H newc 2>/dev/null | gzip) > "$w/ubd.gz"
# ubd IMAGE WHAT [SCHED]: a script that boots the kernel with ubd over
# IMAGE (a fresh COW file) and runs WHAT (seq, rand, or nothing), in the
# mode umlk boots in by default (no jail: ubd opens host files itself),
# with the I/O scheduler SCHED on ubda if given (the kernel's default,
# mq-deadline, if not: a UML guest's as users run it).
ubd() {
	cat > "$w/ubd-$2${3:-}.sh" <<UBD
rm -f '$w/u.cow'
'$K' mem=256M $fast_args 'ubda=$w/u.cow,$1' initrd='$w/ubd.gz' umlk.run=$2 ${3:+sched=$3} quiet con0=null,fd:1 con=null </dev/null
UBD
	echo "$w/ubd-$2${3:-}.sh"
}

echo "1. cold boot of the Debian mini ISO to '-- true' (best of $runs)"
if [ -f "$iso" ]; then
	size=$(stat -c %s "$iso")
	new=$(best_of "$runs" sh -c "dd if='$iso' iflag=nocache count=0 2>/dev/null; $B '$iso' -- true")
	cat > "$w/old.sh" <<OLD
dd if='$iso' iflag=nocache count=0 2>/dev/null
rm -f '$w/x.img'
'$U' extract-cloop -q '$iso' '$w/x.img'
sh '$(ubd "$w/x.img" none)'
OLD
	old=$(best_of "$runs" sh "$w/old.sh")
	extracted=$(du -k "$w/x.img" | cut -f1)
	rm -f "$w/x.img"
	dd if="$iso" iflag=nocache count=0 2>/dev/null
	$U boot -v --kernel "$K" "$iso" -- true 2> "$w/v.err" >/dev/null
	res=$(fincore --bytes --noheadings --output RES "$iso")
	own=$(sed -n 's/^umlk boot: read \(.*\) of .*(\(.*\))$/\1 (\2)/p' "$w/v.err")
	mem=$(sed -n 's/^umlk boot: at most \(.*\) resident.*/\1/p' "$w/v.err")
	echo "  umlk, reading the ISO where it lies   ${new}s, no disk used"
	echo "  extract-cloop, then ubd on the copy   ${old}s, $((extracted / 1024)) MiB written"
	echo "  umlk is $(ratio "$old" "$new")x faster cold (goal: 3x)"
	table "Debian ISO to -- true, cold, vs extract + ubd" "${new} s" "${old} s" "$(ratio "$old" "$new")x" ">= 3x"
	echo "  read from the ISO: umlk counted $own; in the host's page cache $((res / 1024)) KiB of" \
		"$((size / 1024)) KiB ($(awk -v a="$res" -v b="$size" 'BEGIN { printf "%.1f", 100 * a / b }')%; goal: at most 5%)"
	echo "  the serving side: $mem resident at most (the default 32 MiB cloop cache)"
else
	echo "  $iso missing (make rootfs)"
fi

echo
echo "2. a 300 MB file in sequence, and 3000 random 4 KiB reads (O_DIRECT), same raw image, warm"
mkdir -p "$w/tree"
sh "$top/rootfs/tiny.sh" "$U" "$w/img" >/dev/null 2>&1
debugfs -R "rdump / $w/tree" "$w/img/tiny.img" >/dev/null 2>&1
dd if=/dev/urandom of="$w/tree/big" bs=1M count=300 2>/dev/null
musl-gcc -static -O2 -o "$w/tree/randread" "$top/bench/tools/randread.c"
mke2fs -q -F -t ext2 -d "$w/tree" "$w/raw.img" 400M
rm -rf "$w/tree"
cat "$w/raw.img" > /dev/null     # warm in the host's cache
Q="env UMLK_TEST_DISK_SERVER=qemu-storage-daemon $B"
# The random reads twice, the reader kept on the guest's CPU 0 (where the
# device's interrupts are handled) and then on CPU 1: a request from CPU 1
# crosses between host CPUs twice more (the kick, the wake-up after the
# interrupt), and where the guest's scheduler puts an unpinned reader is
# chance (one run in three or so lands on CPU 0, at a fifth of the time).
rands=rand0
[ "$fast_cpus" -gt 1 ] && rands="rand0 rand1"
for what in seq $rands; do
	case $what in
	seq) cmd="echo start; dd if=/big of=/dev/null bs=1M 2>/dev/null; echo done" label="sequential read" ;;
	rand*) cmd="/randread /dev/vda 3000 ${what#rand}" label="random reads on CPU ${what#rand}" ;;
	esac
	u=$(best_between "$runs" $B "$w/raw.img" -- sh -c "$cmd")
	q=$(best_between "$runs" $Q "$w/raw.img" -- sh -c "$cmd")
	b=$(best_between "$runs" sh "$(ubd "$w/raw.img" "$what")")
	case $what in
	seq) echo "  sequential 300 MB: umlk ${u}s ($(awk -v t="$u" 'BEGIN { printf "%.0f", 300 / t }') MB/s), ubd ${b}s, qemu-storage-daemon ${q}s" ;;
	rand*) echo "  3000 random 4 KiB reads on CPU ${what#rand}: umlk ${u}s, ubd ${b}s, qemu-storage-daemon ${q}s" ;;
	esac
	echo "    umlk vs ubd $(ratio "$b" "$u")x, vs qemu-storage-daemon $(ratio "$q" "$u")x (goal: at least 1.0 each)"
	if [ "$what" = rand0 ]; then
		# umlk's disks have a queue for each guest CPU, and so no I/O
		# scheduler in the guest (as QEMU's); ubd's one queue gets the
		# kernel's mq-deadline.  The device against the device:
		n=$(best_between "$runs" sh "$(ubd "$w/raw.img" "$what" none)")
		echo "    ubd with no I/O scheduler either ${n}s: umlk vs that $(ratio "$n" "$u")x"
		table "disk: $label vs ubd, no I/O scheduler on either" "${u} s" "${n} s" "$(ratio "$n" "$u")x" "no goal"
	fi
	table "disk: $label vs ubd" "${u} s" "${b} s" "$(ratio "$b" "$u")x" ">= 1x"
	table "disk: $label vs qemu-storage-daemon" "${u} s" "${q} s" "$(ratio "$q" "$u")x" ">= 1x"
done
