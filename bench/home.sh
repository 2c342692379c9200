#!/bin/sh
# The guest's shared home: umlk's virtio-fs server against hostfs, the UML
# filesystem it replaced (a kernel with hostfs is built for this, from the
# same source and fragment plus CONFIG_HOSTFS=y, and cached like the main
# one).  Inside the guest, on the host's clock: write a 200 MB file, read
# it back, and untar a source tree of many small files (busybox tar).
# Each time is a boot doing the work less the same boot doing nothing.
# Then the home over ssh: --home ssh:// against Debian's sshfs on the host
# (the guest using that mount as --home DIR), both to the same sshd of the
# bench's own, on loopback and through bench/tools/linkem.pl as a 20
# Mbit/s link with 40 ms each way (there the files are 20 MB, SSH_WAN_MB,
# not 200: each write or read of 200 MB would take 80 s).  PARTS=ssh runs
# only that part, PARTS=hostfs only the first; SSH_LINKS (default "lo wan")
# and SSH_WORK (default "write read untar") narrow the ssh part.
# (Debian's virtiofsd cannot be measured with UML: the QEMU-era virtiofsd
# in bookworm does not answer GET_CONFIG, so the UML front end never
# learns the filesystem's tag and the probe fails.)
set -eu
. "$(dirname "$0")/lib.sh"
U=$umlk
export XDG_RUNTIME_DIR="$w/run" XDG_CACHE_HOME="$w/cache"
mkdir -m 700 "$w/run" "$w/share"

parts=${PARTS:-hostfs ssh}
case " $parts " in *" hostfs "*) ;; *) skip_hostfs=1 ;; esac
# The hostfs kernel: kernel/ copied, the fragment given hostfs back.
cp -r "$top/kernel" "$w/kernel"
sed -i 's/^CONFIG_HOSTFS=n$/CONFIG_HOSTFS=y/' "$w/kernel/config.fragment"
if [ -z "${skip_hostfs:-}" ]; then
	echo "building (or finding in the cache) a kernel with hostfs..." >&2
	sh "$w/kernel/build.sh" "$w/linux-hostfs" >&2
fi
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
label_of() {
	case $1 in
	write) echo "write $2 MB" ;;
	read) echo "read $2 MB" ;;
	untar) echo "untar $files files" ;;
	esac
}
if [ -z "${skip_hostfs:-}" ]; then
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
	label=$(label_of "$what" 200)
	printf '%-28s %9ss %9ss %7sx\n' "$label" "$t_umlk" "$t_hostfs" "$(ratio "$t_hostfs" "$t_umlk")"
	table "home: $label vs hostfs" "${t_umlk} s" "${t_hostfs} s" "$(ratio "$t_hostfs" "$t_umlk")x" ">= 1x"
done
echo "(ratio: hostfs time over umlk's; goal at least 1.0)"
fi

# ---- over ssh
case " $parts " in *" ssh "*) ;; *) exit 0 ;; esac
if [ ! -x /usr/sbin/sshd ] || [ ! -x /usr/bin/sshfs ] || [ ! -e /dev/fuse ]; then
	echo "home over ssh: skipped (needs openssh-server, sshfs and /dev/fuse: sh test/deps.sh)" >&2
	exit 0
fi
S=$w/ssh
mkdir -p "$S/srv" "$S/mnt-lo" "$S/mnt-wan"
[ "$(id -u)" = 0 ] && mkdir -p /run/sshd
SP=$(free_port)
LP=$(free_port)
ssh-keygen -q -t ed25519 -N '' -f "$S/hostkey"
ssh-keygen -q -t ed25519 -N '' -f "$S/id"
cp "$S/id.pub" "$S/authorized_keys"
cat > "$S/sshd_config" <<EOF
ListenAddress 127.0.0.1
Port $SP
HostKey $S/hostkey
AuthorizedKeysFile $S/authorized_keys
PidFile $S/sshd.pid
UsePAM no
StrictModes no
PermitRootLogin prohibit-password
PasswordAuthentication no
Subsystem sftp /usr/lib/openssh/sftp-server
EOF
{ echo "[127.0.0.1]:$SP $(cat "$S/hostkey.pub")"; echo "[127.0.0.1]:$LP $(cat "$S/hostkey.pub")"; } > "$S/known_hosts"
cat > "$S/ssh_config" <<EOF
Host lo wan
	HostName 127.0.0.1
	User $(id -un)
	IdentityFile $S/id
	IdentitiesOnly yes
	UserKnownHostsFile $S/known_hosts
	StrictHostKeyChecking yes
	BatchMode yes
Host lo
	Port $SP
Host wan
	Port $LP
EOF
/usr/sbin/sshd -f "$S/sshd_config" -E "$S/sshd.log"
at_exit 'kill $(cat "$S/sshd.pid") 2>/dev/null'
perl "$top/bench/tools/linkem.pl" "$LP" 127.0.0.1 "$SP" 20 40 "$S/link.ready" & echo $! > "$S/link.pid"
at_exit 'kill $(cat "$S/link.pid") 2>/dev/null'
i=0; while [ ! -e "$S/link.ready" ] && [ $i -lt 100 ]; do sleep 0.1; i=$((i + 1)); done
cp "$w/src.tar" "$S/srv/src.tar"
for h in lo wan; do
	sshfs -F "$S/ssh_config" "$h:$S/srv" "$S/mnt-$h"
	at_exit "fusermount -u '$S/mnt-$h' 2>/dev/null"
done
mb_lo=200 mb_wan=${SSH_WAN_MB:-20}
swork() { work "$1" | sed "s/count=200/count=$2/"; }
run_ssh_umlk() { $U boot -q --kernel "$top/build/linux" --home "ssh://$1$S/srv" --ssh-command "ssh -F $S/ssh_config" "$img" -- sh -c "D=/home; $(swork "$2" "$3")"; }
run_ssh_sshfs() { $U boot -q --kernel "$top/build/linux" --home "$S/mnt-$1" "$img" -- sh -c "D=/home; $(swork "$2" "$3")"; }
printf '%-34s %10s %10s %8s\n' "the guest's home over ssh" "umlk" "sshfs" ratio
for h in ${SSH_LINKS:-lo wan}; do
	eval "mb=\$mb_$h"
	for kind in umlk sshfs; do
		eval "base_$kind=\$(best_of $runs run_ssh_$kind $h none $mb)"
	done
	run_ssh_umlk "$h" write "$mb" >/dev/null 2>&1          # the file the reads read
	for what in ${SSH_WORK:-write read untar}; do
		for kind in umlk sshfs; do
			t=$(best_of "$runs" "run_ssh_$kind" "$h" "$what" "$mb")
			eval "b=\$base_$kind"
			eval "t_$kind=\$(awk -v a=$t -v b=$b 'BEGIN { printf \"%.3f\", a - b }')"
		done
		label="$(label_of "$what" "$mb") ($h)"
		printf '%-34s %9ss %9ss %7sx\n' "$label" "$t_umlk" "$t_sshfs" "$(ratio "$t_sshfs" "$t_umlk")"
		table "home over ssh: $label vs sshfs" "${t_umlk} s" "${t_sshfs} s" "$(ratio "$t_sshfs" "$t_umlk")x" \
			"$([ "$h$what" = wanuntar ] && echo '>= 2x' || echo '>= 1x')"
	done
done
echo "(lo: loopback; wan: 20 Mbit/s, 40 ms each way; ratio: sshfs time over umlk's; goal at least 1.0, 2.0 for untar on wan)"
