#!/bin/sh
# The guest's shared home: umlk's virtio-fs server against hostfs, the UML
# filesystem it replaced (a kernel with hostfs is built for this, from the
# same source and fragment plus CONFIG_HOSTFS=y, and cached like the main
# one).  Inside the guest, on the host's clock: write a 200 MB file, read
# it back, and untar a source tree of many small files (busybox tar).
# Each time is a boot doing the work less the same boot doing nothing.
# (Debian's virtiofsd cannot be measured with UML: the QEMU-era virtiofsd
# in bookworm does not answer GET_CONFIG, so the UML front end never
# learns the filesystem's tag and the probe fails.)
set -eu
. "$(dirname "$0")/lib.sh"
U=$umlk
export XDG_RUNTIME_DIR="$w/run" XDG_CACHE_HOME="$w/cache"
mkdir -m 700 "$w/run" "$w/share"

# The hostfs kernel: kernel/ copied, the fragment given hostfs back.
cp -r "$top/kernel" "$w/kernel"
sed -i 's/^CONFIG_HOSTFS=n$/CONFIG_HOSTFS=y/' "$w/kernel/config.fragment"
echo "building (or finding in the cache) a kernel with hostfs..." >&2
sh "$w/kernel/build.sh" "$w/linux-hostfs" >&2
sh "$top/rootfs/tiny.sh" "$U" "$w/img" >/dev/null 2>&1
img=$w/img/tiny.iso
# A source tree: the kernel's own arch/um (about 400 small files), as a tar.
tar -C "$w" -xf /usr/src/linux-source-6.12.tar.xz linux-source-6.12/arch/um linux-source-6.12/fs/fuse 2>/dev/null
tar -C "$w" -cf "$w/src.tar" linux-source-6.12
files=$(tar -tf "$w/src.tar" | wc -l)
rm -rf "$w/linux-source-6.12"
cp "$w/src.tar" "$w/share/src.tar"

# work NAME: the guest command for one piece of work, on /home (umlk) or
# /mnt (hostfs, mounted first).
work() {
	case $1 in
	none) echo "true" ;;
	write) echo "dd if=/dev/zero of=\$D/big bs=1M count=200 2>/dev/null && sync" ;;
	read) echo "dd if=\$D/big of=/dev/null bs=1M 2>/dev/null" ;;
	untar) echo "rm -rf \$D/t && mkdir \$D/t && tar -C \$D/t -xf \$D/src.tar && sync" ;;
	esac
}
run_umlk() { $U boot -q --kernel "$top/build/linux" --home "$w/share" "$img" -- sh -c "D=/home; $(work "$1")"; }
# hostfs opens host paths itself, so its kernel runs without the jail, in
# the same fast mode (seccomp stubs, as many CPUs) as umlk's default.
run_hostfs() {
	$U boot -q --no-jail --trusted --kernel "$w/linux-hostfs" "$img" -- sh -c "mkdir -p /mnt && mount -t hostfs none /mnt -o $w/share && D=/mnt; $(work "$1")"
}
printf '%-28s %10s %10s %8s\n' "in the guest's home" umlk hostfs ratio
for kind in umlk hostfs; do
	eval "base_$kind=\$(best_of $runs run_$kind none)"
done
run_umlk write >/dev/null 2>&1          # the file the reads read
for what in write read untar; do
	for kind in umlk hostfs; do
		t=$(best_of "$runs" "run_$kind" "$what")
		eval "b=\$base_$kind"
		eval "t_$kind=\$(awk -v a=$t -v b=$b 'BEGIN { printf \"%.3f\", a - b }')"
	done
	case $what in
	write) label="write 200 MB" ;;
	read) label="read 200 MB" ;;
	untar) label="untar $files files" ;;
	esac
	printf '%-28s %9ss %9ss %7sx\n' "$label" "$t_umlk" "$t_hostfs" "$(ratio "$t_hostfs" "$t_umlk")"
	table "home: $label vs hostfs" "${t_umlk} s" "${t_hostfs} s" "$(ratio "$t_hostfs" "$t_umlk")x" ">= 1x"
done
echo "(ratio: hostfs time over umlk's; goal at least 1.0)"
