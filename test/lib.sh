# Helpers for test/*.test, sourced by test/run.sh.
#
#   testing NAME COMMAND EXPECTED [INFILE [STDIN]]
#       runs COMMAND with sh -c in a scratch directory ($T), with INFILE
#       written to ./input and STDIN on its standard input; passes when its
#       standard output (plus "rc=N" if the exit status is not 0) equals
#       EXPECTED.  Like toybox's and busybox's testsuites.
#   check NAME COMMAND...
#       passes when COMMAND exits 0.
#   fails NAME PATTERN COMMAND...
#       passes when COMMAND exits non-zero and its standard error has PATTERN
#       (a grep -E pattern) on its first line.
#
# Results go to standard output as "PASS: NAME" or "FAIL: NAME" lines, with
# details after a failure.  $UMLK is the binary under test.

pass() { echo "PASS: $1"; }
fail() { echo "FAIL: $1"; shift; [ $# -gt 0 ] && printf '%s\n' "$@" | sed 's/^/    /'; return 0; }

testing() {
	name=$1 cmd=$2 want=$3
	printf '%b' "${4:-}" > "$T/input"
	got=$(cd "$T" && printf '%b' "${5:-}" | sh -c "$cmd" 2>"$T/stderr"; rc=$?; [ $rc -ne 0 ] && echo "rc=$rc"; true)
	want=$(printf '%b' "$want")
	if [ "$got" = "$want" ]; then
		pass "$name"
	else
		fail "$name" "command: $cmd" "expected: $want" "got:      $got" "stderr: $(head -c 400 "$T/stderr")"
	fi
}

check() {
	name=$1
	shift
	if (cd "$T" && "$@") >"$T/out" 2>&1; then
		pass "$name"
	else
		fail "$name" "command: $*" "$(tail -n 15 "$T/out")"
	fi
}

fails() {
	name=$1 pattern=$2
	shift 2
	if (cd "$T" && "$@") >"$T/out" 2>"$T/err"; then
		fail "$name" "command: $*" "succeeded, but should have failed"
	elif head -n 1 "$T/err" | grep -Eq -- "$pattern"; then
		pass "$name"
	else
		fail "$name" "command: $*" "expected stderr matching: $pattern" "got: $(head -c 400 "$T/err")"
	fi
}

# True when the regular files (or blocks devices) have the same bytes.
same() { cmp -s "$1" "$2"; }
# Allocated kilobytes of a file.
kb_used() { du -k "$1" | cut -f1; }
