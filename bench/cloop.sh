#!/bin/sh
# extract-cloop and make-cloop against cloop-utils, on the same image, in
# the same run.  Prints times, the ratio peer/umlk (above 1: umlk faster),
# and the sizes that matter.  BENCH_MB sets the content (default 300 MiB).
set -eu
. "$(dirname "$0")/lib.sh"
cd "$w"

mb=${BENCH_MB:-300}
sh "$top/rootfs/content-tree.sh" tree "$mb"
mke2fs -q -F -t ext2 -b 4096 -d tree img $((mb * 5 / 4 + 16))M
rm -rf tree
nonzero_kb=$(du -k img | cut -f1)
echo "image: $(stat -c %s img) bytes, $nonzero_kb KiB allocated (its nonzero data), $(nproc) CPUs"

create_compressed_fs -q -B 65536 -t 2 -L 9 img peer.cloop >/dev/null 2>&1
echo
echo "extract (64 KiB blocks, zlib 9, image made by create_compressed_fs)"
tp=$(best_of "$runs" sh -c 'rm -f p.out; extract_compressed_fs peer.cloop p.out')
tu=$(best_of "$runs" sh -c "rm -f u.out; $umlk extract-cloop peer.cloop u.out")
echo "  extract_compressed_fs   ${tp}s   output $(du -k p.out | cut -f1) KiB on disk"
echo "  umlk extract-cloop      ${tu}s   output $(du -k u.out | cut -f1) KiB on disk"
echo "  speed ratio (peer/umlk): $(ratio "$tp" "$tu")x   (target: >= 2)"
table "extract-cloop vs extract_compressed_fs" "${tu} s" "${tp} s" "$(ratio "$tp" "$tu")x" ">= 2x"
echo "  umlk disk use / image nonzero data: $(ratio "$(du -k u.out | cut -f1)" "$nonzero_kb")   (target: <= 1)"
rm -f p.out u.out

echo
echo "make (64 KiB blocks, zlib level 9, 2 threads)"
tp=$(best_of "$runs" sh -c 'rm -f p.cloop; create_compressed_fs -q -B 65536 -t 2 -L 9 img p.cloop')
tu=$(best_of "$runs" sh -c "rm -f u.cloop; $umlk make-cloop -j 2 -B 65536 -L 9 img u.cloop")
sp=$(stat -c %s p.cloop) su=$(stat -c %s u.cloop)
echo "  create_compressed_fs -t 2   ${tp}s   $sp bytes"
echo "  umlk make-cloop -j 2        ${tu}s   $su bytes"
echo "  speed ratio (peer/umlk): $(ratio "$tp" "$tu")x   (target: >= 1)"
table "make-cloop -j 2 vs create_compressed_fs -t 2" "${tu} s" "${tp} s" "$(ratio "$tp" "$tu")x" ">= 1x"
echo "  size ratio (umlk/peer): $(ratio "$su" "$sp")   (target: <= 1)"

echo
echo "binary: build/umlk is $(stat -c %s "$umlk") bytes stripped (goal: well under 1 MB)"
