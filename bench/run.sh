#!/bin/sh
# Run every benchmark.  Each prints ratios against its peer tool measured in
# the same run; nothing here passes or fails on timing.
set -eu
top=$(cd "$(dirname "$0")/.." && pwd)
for b in "$top"/bench/boot.sh "$top"/bench/disk.sh "$top"/bench/home.sh "$top"/bench/cloop.sh "$top"/bench/cow.sh "$top"/bench/net.sh "$top"/bench/kernel.sh "$top"/bench/remote.sh "$top"/bench/live.sh \
	"$top"/bench/xnest.sh; do
	echo "=== $(basename "$b")"
	sh "$b"
done
