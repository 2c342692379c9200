#!/bin/sh
# cow-merge against uml_moo: a 1 GiB ext2 backing image, a COW file with a
# few MB written by the real UML kernel, merged into a new image by each,
# in the same run.  Prints times, the ratio uml_moo/umlk (above 1: umlk
# faster; target >= 2) and the disk each new image uses (target: no more).
set -eu
. "$(dirname "$0")/lib.sh"
cd "$w"
sh "$top/rootfs/content-tree.sh" tree 200
mke2fs -q -F -t ext2 -b 4096 -d tree base.img 1G
rm -rf tree
sh "$top/rootfs/writer-initramfs.sh" guest.gz
timeout 120 "$top/build/linux" mem=64M initrd=guest.gz ubda=c.cow,base.img umlk.test=one quiet \
	con0=fd:0,fd:1 con=null </dev/null >/dev/null 2>&1
changed=$("$umlk" cow-merge --info c.cow | sed -n 's/^changed bytes: //p')
echo "backing: 1 GiB ext2 with 200 MiB of files, $(du -k base.img | cut -f1) KiB on disk; COW changes: $changed"
tm=$(best_of "$runs" sh -c 'rm -f moo.img; uml_moo c.cow moo.img')
tu=$(best_of "$runs" sh -c "rm -f u.img; $umlk cow-merge c.cow u.img")
cmp moo.img u.img || { echo "bench: the merged images differ" >&2; exit 1; }
echo "  uml_moo COW NEW          ${tm}s   $(du -k moo.img | cut -f1) KiB on disk"
echo "  umlk cow-merge COW NEW   ${tu}s   $(du -k u.img | cut -f1) KiB on disk"
echo "  speed ratio (uml_moo/umlk): $(ratio "$tm" "$tu")x   (target: >= 2)"
table "cow-merge vs uml_moo, 1 GiB image" "${tu} s" "${tm} s" "$(ratio "$tm" "$tu")x" ">= 2x"
echo "  disk ratio (umlk/uml_moo): $(ratio "$(du -k u.img | cut -f1)" "$(du -k moo.img | cut -f1)")   (target: <= 1)"
