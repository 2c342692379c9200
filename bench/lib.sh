# Helpers for bench/*.sh: wall-clock timing, best of N runs.

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

ratio() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.2f\n", (b > 0) ? a / b : 0 }'; }
