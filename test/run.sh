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
# Environment: TESTS="cloop ..." runs only those test files;
#              FUZZ_SECONDS (default 20) per fuzz target, 0 to skip them;
#              TEST_TIMEOUT (default 1200) seconds per test file;
#              FLAVOURS (default "musl san") the builds to test;
#              UNIT=0 skips the unit tests;
#              TEST_DIR (default test/) where the *.test files are;
#              CI: set on CI, where a section that needs root must run
#              (CI runs as root), so skipping one is a failure.
set -u
top=$(cd "$(dirname "$0")/.." && pwd)
build=${BUILD:-$top/build}
testdir=${TEST_DIR:-$top/test}
log=$(mktemp)
trap 'rm -f "$log" "$log.rc" "$log.part"' EXIT

export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1:abort_on_error=0}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}

# The line a test file's wrapper prints after its last command.
end_mark='END-OF-TEST-FILE'

run_part() {            # LABEL WHOLE COMMAND...: run, echo, record PASS/FAIL/SKIP lines
	label=$1 whole=$2
	shift 2
	echo "== $label"
	: > "$log.part"
	{ timeout -k 10 "${TEST_TIMEOUT:-1200}" "$@" 2>&1; echo "rc=$?" > "$log.rc"; } |
		sed "s/^\(PASS\|FAIL\|SKIP\): /\1: [$label] /" | tee -a "$log.part" | grep -v "^PASS\|^$end_mark\$" || true
	rc=$(sed -n 's/^rc=//p' "$log.rc" 2>/dev/null)
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
for flavour in ${FLAVOURS:-musl san}; do
	case $flavour in
	musl) umlk=$build/umlk ;;
	san) umlk=$build/san/umlk ;;
	*) echo "run.sh: unknown flavour $flavour" >&2; exit 2 ;;
	esac
	for t in $tests; do
		T=$(mktemp -d "${TMPDIR:-/tmp}/umlk-test.XXXXXX")
		export T UMLK="$umlk" FLAVOUR="$flavour" TOP="$top"
		# 'set -e' is not used: a test file runs every case; but the
		# file itself must reach its end.
		run_part "$flavour $t" whole sh -c ". '$top/test/lib.sh'; . '$testdir/$t.test'; echo '$end_mark'"
		rm -rf "$T"
	done
done

for f in "$build"/fuzz/fuzz_*; do
	[ -x "$f" ] || continue
	[ "${FUZZ_SECONDS:-20}" -gt 0 ] || break       # 0: no fuzzing (libFuzzer would take it as "forever")
	name=$(basename "$f")
	corpus=$(mktemp -d)
	[ -d "$top/test/fuzz/$name.seeds" ] && cp "$top/test/fuzz/$name.seeds"/* "$corpus/" 2>/dev/null
	# Crash inputs go beside the log, never into the working directory.
	if "$f" -max_total_time="${FUZZ_SECONDS:-20}" -seed=1 -rss_limit_mb=2048 \
		-artifact_prefix="$corpus.crash-" "$corpus" >"$corpus.log" 2>&1; then
		echo "PASS: [fuzz] $name ($(grep -o 'stat::number_of_executed_units: [0-9]*' "$corpus.log" | grep -o '[0-9]*$' || grep -Eo '#[0-9]+' "$corpus.log" | tail -n 1) runs)" | tee -a "$log"
	else
		echo "FAIL: [fuzz] $name" | tee -a "$log"
		tail -n 40 "$corpus.log"
		for a in "$corpus".crash-*; do
			[ -f "$a" ] && cp "$a" "$build/" && echo "    kept $build/$(basename "$a")"
		done
	fi
	rm -rf "$corpus" "$corpus.log" "$corpus".crash-*
done

p=$(grep -c '^PASS' "$log")
f=$(grep -c '^FAIL' "$log")
s=$(grep -c '^SKIP' "$log")
grep '^SKIP' "$log" || true
grep '^FAIL' "$log" || true
echo "$p passed, $f failed, $s skipped"
[ "$f" -eq 0 ] && [ "$p" -gt 0 ]
