#!/bin/sh
# Run every test: the libk unit tests, each test/*.test against the static
# musl build and against the ASan/UBSan build, and each fuzz target for a
# while.  Ends with "N passed, N failed, N skipped"; exits non-zero if
# anything failed.
#
# A test file fails as a whole (a FAIL: line saying which) when it exits
# with a status other than 0, when it stops before its end (the line the
# runner adds after its last command never comes), or when it runs out of
# time.  So a syntax error, an early 'exit' or a hang cannot pass as green.
#
# A test file runs once per build flavour unless a line of its own says
# otherwise ("# flavours: musl": the guest-heavy suites, whose parsing and
# serving the sanitizer flavour already covers elsewhere).  The summary
# lists each file's duration, longest first.
#
# Environment: TESTS="cloop ..." runs only those test files;
#              FUZZ_SECONDS (default 90): the fuzzers' whole time, shared
#              by the targets, two at a time; 0 to skip them;
#              TEST_TIMEOUT (default 1200) seconds per test file;
#              FLAVOURS (default "musl san") the builds to test;
#              SERIAL=1: one job at a time (else two side by side);
#              UNIT=0 skips the unit tests;
#              TEST_DIR (default test/) where the *.test files are;
#              CI: set on CI, where a section that needs root must run
#              (CI runs as root), so skipping one is a failure.
set -u
top=$(cd "$(dirname "$0")/.." && pwd)
build=${BUILD:-$top/build}
testdir=${TEST_DIR:-$top/test}
log=$(mktemp)
main=$log
trap 'rm -f "$main"*' EXIT
: > "$main.times"

export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1:abort_on_error=0}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}

# The line a test file's wrapper prints after its last command.
end_mark='END-OF-TEST-FILE'

run_part() {            # LABEL WHOLE COMMAND...: run, echo, record PASS/FAIL/SKIP lines
	label=$1 whole=$2
	shift 2
	echo "== $label"
	: > "$log.part"
	started=$(date +%s)
	{ timeout -k 10 "${TEST_TIMEOUT:-1200}" "$@" 2>&1; echo "rc=$?" > "$log.rc"; } |
		sed "s/^\(PASS\|FAIL\|SKIP\): /\1: [$label] /" | tee -a "$log.part" | grep -v "^PASS\|^$end_mark\$" || true
	rc=$(sed -n 's/^rc=//p' "$log.rc" 2>/dev/null)
	echo "$(($(date +%s) - started)) $label" >> "$main.times"
	rm -f "$log.rc"
	grep -v "^$end_mark\$" "$log.part" >> "$log"
	case ${rc:-?} in
	0) ;;
	124|137) echo "FAIL: [$label] timed out after ${TEST_TIMEOUT:-1200} s" | tee -a "$log" ;;
	*) echo "FAIL: [$label] exited with status ${rc:-unknown}" | tee -a "$log" ;;
	esac
	if [ "$whole" = whole ] && [ "${rc:-?}" != 124 ] && [ "${rc:-?}" != 137 ] &&
		! grep -q "^$end_mark\$" "$log.part"; then
		echo "FAIL: [$label] stopped before its end (an exit or an error part-way)" | tee -a "$log"
	fi
}

if [ "${UNIT:-1}" != 0 ]; then
	run_part unit part "$build/unit"
fi

tests=${TESTS:-$(cd "$testdir" && ls *.test | sed 's/\.test$//')}

# One test file in one flavour, into the log LOG.
run_test() {
	flavour=$1 t=$2 log=$3
	case $flavour in
	musl) umlk=$build/umlk ;;
	san) umlk=$build/san/umlk ;;
	*) echo "run.sh: unknown flavour $flavour" >&2; exit 2 ;;
	esac
	T=$(mktemp -d "${TMPDIR:-/tmp}/umlk-test.XXXXXX")
	export T UMLK="$umlk" FLAVOUR="$flavour" TOP="$top"
	# 'set -e' is not used: a test file runs every case; but the file
	# itself must reach its end.
	run_part "$flavour $t" whole sh -c ". '$top/test/lib.sh'; . '$testdir/$t.test'; echo '$end_mark'"
	rm -rf "$T"
}

# nothing_left DIR: true if DIR is empty, else says what is in it.
nothing_left() {
	[ -z "$(ls -A "$1")" ] && return
	echo "left behind in its TMPDIR: $(ls -A "$1" | tr '\n' ' ')"
	return 1
}

# One fuzz target for SECS seconds, its PASS or FAIL line into LOG.
fuzz_one() {
	f=$1 secs=$2 log=$3
	name=$(basename "$f")
	corpus=$(mktemp -d)
	started=$(date +%s)
	[ -d "$top/test/fuzz/$name.seeds" ] && cp "$top/test/fuzz/$name.seeds"/* "$corpus/" 2>/dev/null
	# Crash inputs go beside the log, never into the working directory;
	# the target's own temporary files into a directory that must be
	# empty again when it ends.
	mkdir "$corpus.tmp"
	if TMPDIR=$corpus.tmp "$f" -max_total_time="$secs" -seed=1 -rss_limit_mb=2048 \
		-artifact_prefix="$corpus." "$corpus" >"$corpus.log" 2>&1 &&
		nothing_left "$corpus.tmp" >>"$corpus.log"; then
		echo "PASS: [fuzz] $name ($(grep -o 'stat::number_of_executed_units: [0-9]*' "$corpus.log" | grep -o '[0-9]*$' || grep -Eo '#[0-9]+' "$corpus.log" | tail -n 1) runs in $secs s)" > "$corpus.result"
	else
		{
			echo "FAIL: [fuzz] $name"
			tail -n 40 "$corpus.log"
			for a in "$corpus".crash-*; do
				[ -f "$a" ] && cp "$a" "$build/" && echo "    kept $build/$(basename "$a")"
			done
		} > "$corpus.result"
	fi
	grep -v '^PASS' "$corpus.result"
	grep '^\(PASS\|FAIL\): ' "$corpus.result" >> "$log"
	echo "$(($(date +%s) - started)) fuzz $name" >> "$main.times"
	rm -rf "$corpus" "$corpus.log" "$corpus".crash-* "$corpus.result" "$corpus.tmp"
}

# The jobs: each test file in each flavour it runs in (the musl-only ones
# first: the guest-heavy suites, the longest), then each fuzz target for
# its share of FUZZ_SECONDS (0: no fuzzing; libFuzzer would take 0 as
# "for ever").
jobs=$(mktemp -d)
n=0
add_job() { n=$((n + 1)); printf '%s\n' "$*" > "$jobs/$(printf %04d $n)"; }
for only in 1 0; do
	for t in $tests; do
		fl=$(sed -n 's/^# flavours: //p' "$testdir/$t.test" | head -n 1)
		if [ $only = 1 ]; then [ -n "$fl" ] || continue; else [ -z "$fl" ] || continue; fi
		for flavour in ${FLAVOURS:-musl san}; do
			case " ${fl:-$flavour} " in *" $flavour "*) add_job test "$flavour" "$t" ;; esac
		done
	done
done
targets=$(ls "$build"/fuzz/fuzz_* 2>/dev/null | while read -r f; do [ -x "$f" ] && echo "$f"; done)
ntargets=$(echo "$targets" | grep -c . || true)
total=${FUZZ_SECONDS:-90}
if [ "$ntargets" -gt 0 ] && [ "$total" -gt 0 ]; then
	each=$((total * 2 / ntargets))
	[ "$each" -ge 5 ] || each=5
	for f in $targets; do
		add_job fuzz "$f" "$each"
	done
fi

# Two workers (this machine's cores; the tests wait on their guests much
# of the time), each taking the next job not yet taken (a claim is a
# mkdir, which only one can make), each with a log of its own.
worker() {
	wlog=$1
	: > "$wlog"
	for job in "$jobs"/[0-9]*; do
		mkdir "$job.taken" 2>/dev/null || continue
		set -- $(cat "$job")
		case $1 in
		test) run_test "$2" "$3" "$wlog" ;;
		fuzz) fuzz_one "$2" "$3" "$wlog" ;;
		esac
	done
}
if [ "${SERIAL:-0}" = 1 ]; then
	worker "$main.w1"
else
	worker "$main.w1" &
	worker "$main.w2" &
	wait
fi
log=$main
for w in "$main.w1" "$main.w2"; do
	[ -f "$w" ] && cat "$w" >> "$main"
done
rm -rf "$jobs"

p=$(grep -c '^PASS' "$log")
f=$(grep -c '^FAIL' "$log")
s=$(grep -c '^SKIP' "$log")
echo "durations (s):"
sort -rn "$main.times" | sed 's/^/  /'
grep '^SKIP' "$log" || true
grep '^FAIL' "$log" || true
echo "$p passed, $f failed, $s skipped"
[ "$f" -eq 0 ] && [ "$p" -gt 0 ]
