#!/bin/sh
# Fill DIR with about MB megabytes of real files copied from this host's
# /usr (programs, libraries, documentation), for test images with content
# that compresses like a real system does.
#
# Usage: rootfs/content-tree.sh DIR MB
set -eu
dir=$1 mb=$2
mkdir -p "$dir"
list=$(mktemp)
trap 'rm -f "$list"' EXIT
# Regular files under 8 MiB, in a stable order, until the budget is spent.
find /usr/bin /usr/lib /usr/share -xdev -type f -size -8M -printf '%s %p\n' 2>/dev/null |
	sort -k2 | awk -v max=$((mb * 1024 * 1024)) '{ if (sum + $1 > max) exit; sum += $1; print substr($0, index($0, " ") + 1) }' > "$list"
tar -cf - --no-recursion -T "$list" 2>/dev/null | tar -xf - -C "$dir"
