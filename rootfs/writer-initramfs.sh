#!/bin/sh
# Build OUT: a gzip'ed initramfs whose /init is a busybox script that mounts
# /dev/ubda (ext2), makes a change chosen by "umlk.test=STEP" on the kernel
# command line, unmounts and powers off.  Tests and benchmarks use it to get
# COW files written by the real UML kernel.
#   one: a text file, 3 MB of random data, a copied binary, a deletion
#   two: another text file and 1 MB of zeros
# Usage: rootfs/writer-initramfs.sh OUT
set -eu
out=$1
g=$(mktemp -d)
trap 'rm -rf "$g"' EXIT
mkdir -p "$g/bin" "$g/dev" "$g/mnt" "$g/proc"
cp /bin/busybox "$g/bin/busybox"
cat > "$g/init" <<'INIT'
#!/bin/busybox sh
/bin/busybox mount -t devtmpfs dev /dev
/bin/busybox mount -t proc proc /proc
/bin/busybox mount -t ext2 /dev/ubda /mnt || /bin/busybox poweroff -f
cd /mnt
step=$(/bin/busybox sed -n 's/.*umlk.test=\([a-z0-9]*\).*/\1/p' /proc/cmdline)
case $step in
one)    echo "hello from the guest" > hello.txt
        /bin/busybox dd if=/dev/urandom of=random.bin bs=1024 count=3000 2>/dev/null
        /bin/busybox mkdir -p deep/dir && /bin/busybox cp /bin/busybox deep/dir/
        /bin/busybox rm -f removed.txt ;;
two)    echo "second change" > second.txt
        /bin/busybox dd if=/dev/zero of=zeros.bin bs=1024 count=1000 2>/dev/null ;;
esac
cd /
/bin/busybox umount /mnt
/bin/busybox sync
/bin/busybox poweroff -f
INIT
chmod +x "$g/init"
(cd "$g" && find . | cpio -o -H newc 2>/dev/null | gzip) > "$out"
