# Helpers for test/*.test, sourced by test/run.sh.
#
#   testing NAME COMMAND EXPECTED [INFILE [STDIN]]
#       runs COMMAND with sh -c in a scratch directory ($T), with INFILE
#       written to ./input and STDIN on its standard input; passes when its
#       standard output (plus "rc=N" if the exit status is not 0) equals
#       EXPECTED.  Like toybox's and busybox's testsuites.
#   check NAME COMMAND...
#       passes when COMMAND exits 0 (and returns 1 when it failed, so a
#       section can depend on it).
#   fails NAME PATTERN COMMAND...
#       passes when COMMAND exits non-zero and its standard error has PATTERN
#       (a grep -E pattern) on its first line.
#   skip NAME WHY
#       records that a case or section did not run, and why ("SKIP: ").
#   as_root NAME
#       true when running as root; otherwise a skip of section NAME, which
#       on CI ($CI set; CI runs as root) is a failure instead:
#           if as_root "DHCP clients in a network namespace"; then ... fi
#   wait_for, stop, screen, wait_screen: waiting on files, daemons and a
#       tmux session (below).
#
# Results go to standard output as "PASS: NAME", "FAIL: NAME" or "SKIP:
# NAME (WHY)" lines, with details after a failure.  $UMLK is the binary
# under test.

pass() { echo "PASS: $1"; }
fail() { echo "FAIL: $1"; shift; [ $# -gt 0 ] && printf '%s\n' "$@" | sed 's/^/    /'; return 0; }

skip() { echo "SKIP: $1 ($2)"; }

as_root() {
	[ "$(id -u)" = 0 ] && return 0
	if [ -n "${CI:-}" ]; then
		fail "$1" "needs root, and CI runs as root: something is wrong with this machine"
	else
		skip "$1" "needs root"
	fi
	return 1
}

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
		return 1
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

# wait_for FILE PATTERN [TENTHS]: until PATTERN (grep) is in FILE, for up
# to TENTHS tenths of a second (200); false if it never comes.
wait_for() {
	i=0
	while ! grep -q -- "$2" "$1" 2>/dev/null; do
		[ $i -ge "${3:-200}" ] && return 1
		sleep 0.1
		i=$((i + 1))
	done
}

# listening SOCKET: until a process listens on the unix stream socket at
# SOCKET (an absolute path), for up to 30 s; false if none does.  Its file
# appears at bind(), a moment before listen(), and a connect between the two
# is refused: waiting for the file alone races the daemon's start.
listening() { wait_for /proc/net/unix " 00010000 [0-9]* [0-9]* [0-9]* $1\$" 300; }

# kernel_of PID: the kernel process of the boot PID (its run directory,
# wherever that is, is boot-PID), once it is there (up to 10 s).
kernel_of() {
	ki=0 kk=
	while [ -z "$kk" ] && [ $ki -lt 100 ]; do
		sleep 0.1
		kk=$(pgrep -f "virtio_uml.device=.*/boot-$1/" | head -n 1)
		ki=$((ki + 1))
	done
	echo "$kk"
}

# stop PIDFILE: stop that daemon, wait (up to 5 s) for it to go, remove the file.
stop() {
	pid=$(cat "$1" 2>/dev/null) || return 0
	kill "$pid" 2>/dev/null
	i=0
	while kill -0 "$pid" 2>/dev/null && [ $i -lt 50 ]; do sleep 0.1; i=$((i + 1)); done
	rm -f "$1"
}

# tmux_end: end the tmux server at $sock and wait (up to 10 s) until it
# and what ran in it are gone: kill-server returns before they exit, and
# both still carry the command line a "nothing left running" check seeks.
tmux_end() {
	tpid=$(tmux -S "$sock" display-message -p '#{pid}' 2>/dev/null)
	ppid=$(tmux -S "$sock" display-message -p -t g '#{pane_pid}' 2>/dev/null)
	tmux -S "$sock" kill-server 2>/dev/null
	i=0
	while [ $i -lt 100 ] && { { [ -n "$tpid" ] && kill -0 "$tpid" 2>/dev/null; } ||
			{ [ -n "$ppid" ] && kill -0 "$ppid" 2>/dev/null; }; }; do
		sleep 0.1
		i=$((i + 1))
	done
}

# The tmux session "g" on the server at $sock: screen prints what it
# shows; wait_screen PATTERN waits up to 30 s for PATTERN to show.
screen() { tmux -S "$sock" capture-pane -t g -p 2>/dev/null; }
wait_screen() {
	i=0
	while ! screen | grep -q -- "$1"; do
		[ $i -ge 300 ] && return 1
		sleep 0.1
		i=$((i + 1))
	done
}

# True when the regular files (or blocks devices) have the same bytes.
same() { cmp -s "$1" "$2"; }
# Allocated kilobytes of a file.
kb_used() { du -k "$1" | cut -f1; }
