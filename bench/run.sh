#!/bin/sh
# Run every benchmark.  Each prints ratios against its peer tool measured in
# the same run; nothing here passes or fails on timing.
set -eu
top=$(cd "$(dirname "$0")/.." && pwd)
# Each bench adds its headline rows (umlk, its peer, the ratio, the goal)
# to one table, printed at the end.
BENCH_TABLE=$(mktemp)
export BENCH_TABLE
trap 'rm -f "$BENCH_TABLE"' EXIT
for b in "$top"/bench/boot.sh "$top"/bench/disk.sh "$top"/bench/home.sh "$top"/bench/cloop.sh "$top"/bench/cow.sh "$top"/bench/net.sh "$top"/bench/kernel.sh "$top"/bench/remote.sh "$top"/bench/live.sh \
	"$top"/bench/xnest.sh "$top"/bench/desktop.sh; do
	echo "=== $(basename "$b")"
	sh "$b" || echo "  ($(basename "$b") failed)"
done
echo
echo "=== every figure against its peer, measured in this run"
awk -F'|' 'BEGIN { printf "%-58s %14s %14s %10s  %s\n", "", "umlk", "peer", "ratio", "goal" }
	{ printf "%-58s %14s %14s %10s  %s\n", $1, $2, $3, $4, $5 }' "$BENCH_TABLE"
