#!/bin/sh
# Run every test: the libk unit tests, each test/*.test against the static
# musl build and against the ASan/UBSan build, and each fuzz target for a
# while.  Ends with "N passed, N failed"; exits non-zero if anything failed.
#
# Environment: TESTS="cloop ..." runs only those test files;
#              FUZZ_SECONDS (default 20) per fuzz target, 0 to skip them;
#              TEST_TIMEOUT (default 1200) seconds per test file.
set -u
top=$(cd "$(dirname "$0")/.." && pwd)
build=${BUILD:-$top/build}
log=$(mktemp)
trap 'rm -f "$log" "$log.rc"' EXIT

. "$top/test/lib.sh"
export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1:abort_on_error=0}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}

run_part() {            # LABEL COMMAND...: run, echo, record PASS/FAIL lines
	label=$1
	shift
	echo "== $label"
	# A test file that hangs is a failure, not a hung run.
	{ timeout -k 10 "${TEST_TIMEOUT:-1200}" "$@" 2>&1; echo "rc=$?" > "$log.rc"; } |
		sed "s/^\(PASS\|FAIL\): /\1: [$label] /" | tee -a "$log" | grep -v '^PASS' || true
	if grep -q '^rc=124$' "$log.rc" 2>/dev/null; then
		echo "FAIL: [$label] timed out after ${TEST_TIMEOUT:-1200} s" | tee -a "$log"
	fi
	rm -f "$log.rc"
}

run_part unit "$build/unit"

tests=${TESTS:-$(cd "$top/test" && ls *.test | sed 's/\.test$//')}
for flavour in musl san; do
	case $flavour in
	musl) umlk=$build/umlk ;;
	san) umlk=$build/san/umlk ;;
	esac
	for t in $tests; do
		T=$(mktemp -d "${TMPDIR:-/tmp}/umlk-test.XXXXXX")
		export T UMLK="$umlk" FLAVOUR="$flavour" TOP="$top"
		run_part "$flavour $t" sh -c ". '$top/test/lib.sh'; . '$top/test/$t.test'; echo 'PASS: ran to the end'"
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
grep '^FAIL' "$log" || true
echo "$p passed, $f failed"
[ "$f" -eq 0 ] && [ "$p" -gt 0 ]
