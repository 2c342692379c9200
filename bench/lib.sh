# What every bench/*.sh starts with, and its helpers: wall-clock timing,
# best of N runs, ratios.  Sourcing it sets
#   top     the top of the tree          umlk    the binary (UMLK to choose)
#   kernel  build/linux                  runs    RUNS, default 3
#   fast_args  the default mode's kernel arguments (seccomp, CPUs)
#   w       a work directory, removed when the bench ends, after what
#           at_exit CMD registered (servers to stop, namespaces to remove)
top=$(cd "$(dirname "$0")/.." && pwd)
umlk=${UMLK:-$top/build/umlk}
kernel=$top/build/linux
runs=${RUNS:-3}
# The kernel arguments of umlk's default (fast) mode, for peers that boot
# the kernel themselves (ubd, hostfs), so both sides run alike: seccomp
# stubs and as many CPUs as umlk gives (the host's, at most 4).
fast_cpus=$(n=$(nproc); [ "$n" -gt 4 ] && n=4; echo "$n")
fast_args="seccomp=on ncpus=$fast_cpus"
w=$(mktemp -d "${TMPDIR:-/var/tmp}/umlk-bench.XXXXXX")
at_exit_cmds=
at_exit() { at_exit_cmds="$at_exit_cmds
$1"; }
trap 'eval "$at_exit_cmds"; rm -rf "$w"' EXIT

now_ns() { date +%s%N; }

# best_of N COMMAND...: run N times, print the fastest wall-clock in seconds.
best_of() {
	n=$1
	shift
	best=
	i=0
	while [ $i -lt "$n" ]; do
		sync
		t0=$(now_ns)
		"$@" >/dev/null 2>&1 || { echo "bench: command failed: $*" >&2; return 1; }
		t1=$(now_ns)
		t=$((t1 - t0))
		if [ -z "$best" ] || [ $t -lt "$best" ]; then best=$t; fi
		i=$((i + 1))
	done
	awk -v t="$best" 'BEGIN { printf "%.3f\n", t / 1e9 }'
}

# median_of N COMMAND...: run N times, print the median wall-clock in seconds.
median_of() {
	n=$1
	shift
	i=0
	while [ $i -lt "$n" ]; do
		t0=$(now_ns)
		"$@" >/dev/null 2>&1 || { echo "bench: command failed: $*" >&2; return 1; }
		t1=$(now_ns)
		echo $((t1 - t0))
		i=$((i + 1))
	done | sort -n | awk '{ t[NR] = $1 } END { printf "%.3f\n", t[int((NR + 1) / 2)] / 1e9 }'
}

# table WHAT UMLK PEER RATIO GOAL: a row of the table bench/run.sh prints
# at the end (when it runs the bench: BENCH_TABLE names its file).
table() {
	[ -n "${BENCH_TABLE:-}" ] && printf '%s|%s|%s|%s|%s\n' "$@" >> "$BENCH_TABLE"
	return 0
}

ratio() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.2f\n", (b > 0) ? a / b : 0 }'; }
