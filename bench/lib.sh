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
trap '{ eval "$at_exit_cmds"; } || true; rm -rf "$w"' EXIT

now_ns() { date +%s%N; }

# fastest N MEASURE COMMAND...: N runs of MEASURE COMMAND..., which
# prints one run's nanoseconds (a failure ends it); the fastest, in seconds.
fastest() {
	n=$1
	m=$2
	shift 2
	best=
	i=0
	while [ $i -lt "$n" ]; do
		t=$("$m" "$@") || return 1
		if [ -z "$best" ] || [ "$t" -lt "$best" ]; then best=$t; fi
		i=$((i + 1))
	done
	awk -v t="$best" 'BEGIN { printf "%.4f\n", t / 1e9 }'
}

# One run's wall-clock, output dropped.
wall_ns() {
	sync
	t0=$(now_ns)
	"$@" >/dev/null 2>&1 || { echo "bench: command failed: $*" >&2; return 1; }
	echo $(( $(now_ns) - t0 ))
}

# One run's time between the lines "start" and "done" COMMAND prints, on
# the host's clock as the lines arrive: the work alone, not the boot
# around it (a guest's own clock runs slow under load).
between_ns() {
	t=$("$@" 2>/dev/null | perl -MTime::HiRes=time -ne '$s = time if /^start\r?$/;
		$d = time - $s if /^done\r?$/ && defined $s; END { printf "%.0f\n", $d * 1e9 if defined $d }')
	[ -n "$t" ] || { echo "bench: no start and done from: $*" >&2; return 1; }
	echo "$t"
}

# best_of N COMMAND...: run N times, print the fastest wall-clock in seconds.
best_of() { _n=$1; shift; fastest "$_n" wall_ns "$@"; }
# best_between N COMMAND...: the fastest of N runs' between_ns, in seconds.
best_between() { _n=$1; shift; fastest "$_n" between_ns "$@"; }

# Variants measured in turn, round by round, so that a slow moment of this
# shared machine falls on all of them alike:
# turn LABEL COMMAND...: run COMMAND once (output dropped; a failure ends
# the bench) and record its wall-clock time under LABEL;
# turn_best LABEL, turn_median LABEL: LABEL's fastest and median times so
# far, in seconds, to 0.1 ms (a boot of 35 ms rounded to whole ms moved
# the ratios made of it by up to 3%).
turn() {
	_l=$1
	shift
	sync
	_t0=$(now_ns)
	"$@" >/dev/null 2>&1 || { echo "bench: command failed: $*" >&2; exit 1; }
	echo "$_l $(( $(now_ns) - _t0 ))" >> "$w/turns"
}
turn_best() {
	awk -v v="$1" '$1 == v && (b == "" || $2 < b) { b = $2 } END { printf "%.4f\n", b / 1e9 }' "$w/turns"
}
# turn_spread A B: the ratio A/B round by round (the Nth turn of A over
# the Nth of B), its middle half ("0.97 to 1.03"): how far a ratio of
# medians can be trusted on a shared machine.
turn_spread() {
	awk -v a="$1" -v b="$2" '$1 == a { x[++n] = $2 } $1 == b { y[++m] = $2 }
		END { for (i = 1; i <= n && i <= m; i++) if (y[i] > 0) print x[i] / y[i] }' "$w/turns" | sort -n |
		awk '{ r[NR] = $1 } END { if (NR) printf "%.2f to %.2f\n", r[int((NR + 3) / 4)], r[int((3 * NR + 3) / 4)] }'
}
turn_median() {
	awk -v v="$1" '$1 == v { print $2 }' "$w/turns" | sort -n |
		awk '{ t[NR] = $1 } END { printf "%.4f\n", t[int((NR + 1) / 2)] / 1e9 }'
}

# table WHAT UMLK PEER RATIO GOAL: a row of the table bench/run.sh prints
# at the end (when it runs the bench: BENCH_TABLE names its file).
table() {
	[ -n "${BENCH_TABLE:-}" ] && printf '%s|%s|%s|%s|%s\n' "$@" >> "$BENCH_TABLE"
	return 0
}

ratio() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.2f\n", (b > 0) ? a / b : 0 }'; }

# free_port: a free TCP port on 127.0.0.1.
free_port() { perl -MIO::Socket::INET -e 'print IO::Socket::INET->new(Listen => 1, LocalAddr => "127.0.0.1:0")->sockport'; }

# web_start: Debian's nginx on 127.0.0.1:$NP serving $w/www, logging each
# request's path, status and body bytes to $w/access.log (sent() sums
# them); stopped at exit.
web_start() {
	NGINX=$(command -v nginx || echo /usr/sbin/nginx)
	NP=$(free_port)
	mkdir -p "$w/www"
	cat > "$w/nginx.conf" <<CONF
$( [ "$(id -u)" = 0 ] && echo "user root;" )
worker_processes 2;
pid $w/nginx.pid;
error_log $w/error.log;
events { worker_connections 256; }
http {
	log_format bytes '\$request_uri \$status \$body_bytes_sent';
	access_log $w/access.log bytes;
	client_body_temp_path $w;
	proxy_temp_path $w;
	fastcgi_temp_path $w;
	uwsgi_temp_path $w;
	scgi_temp_path $w;
	sendfile on;
	server { listen 127.0.0.1:$NP; root $w/www; }
}
CONF
	"$NGINX" -c "$w/nginx.conf" -p "$w" -e "$w/error.log"
	at_exit '"$NGINX" -c "$w/nginx.conf" -p "$w" -e "$w/error.log" -s stop 2>/dev/null || true
[ -s "$w/link.pid" ] && kill "$(cat "$w/link.pid")" 2>/dev/null'
}

# shape MBIT ONE-WAY-MS: a fresh emulated link (bench/tools/linkem.pl) to
# nginx, its base URL in $S.
shape() {
	[ -s "$w/link.pid" ] && kill "$(cat "$w/link.pid")" 2>/dev/null
	LP=$(free_port)
	rm -f "$w/link.ready"
	perl "$top/bench/tools/linkem.pl" "$LP" 127.0.0.1 "$NP" "$1" "$2" "$w/link.ready" & echo $! > "$w/link.pid"
	_i=0; while [ ! -e "$w/link.ready" ] && [ $_i -lt 50 ]; do sleep 0.1; _i=$((_i + 1)); done
	S=http://127.0.0.1:$LP
}

# sent PREFIX: the body bytes nginx sent for paths starting with PREFIX.
sent() { awk -v p="$1" 'index($1, p) == 1 { s += $3 } END { print s + 0 }' "$w/access.log"; }

# xvfb_start: an Xvfb (1280x1024x24) on a free display, DISPLAY set to it;
# stopped at exit.  Returns 1 when Xvfb, Xnest or xwininfo is missing.
xvfb_start() {
	for _p in Xvfb Xnest xwininfo; do command -v $_p >/dev/null || return 1; done
	_d=90
	while [ -e /tmp/.X11-unix/X$_d ] || [ -e /tmp/.X$_d-lock ]; do _d=$((_d + 1)); done
	Xvfb :$_d -screen 0 1280x1024x24 -nolisten tcp >/dev/null 2>&1 &
	echo $! > "$w/xvfb.pid"
	at_exit 'kill "$(cat "$w/xvfb.pid")" 2>/dev/null'
	# Until it listens: its socket file appears at bind(), a moment
	# before listen(), and a client connecting between the two is refused.
	_i=0
	until grep -q " 00010000 [0-9]* [0-9]* [0-9]* /tmp/.X11-unix/X$_d\$" /proc/net/unix || [ $_i -ge 100 ]; do
		sleep 0.1
		_i=$((_i + 1))
	done
	export DISPLAY=:$_d
}

# xnest_display ERRFILE PID: wait for 'umlk xnest-launch' (PID, its stderr
# in ERRFILE) to name its display; sets ND (the nested display's number)
# and XA (its cookie file).  Returns 1 when it exits first.
xnest_display() {
	_i=0
	while ! grep -q 'cookie in ' "$1"; do
		kill -0 "$2" 2>/dev/null && [ $_i -lt 6000 ] || return 1
		sleep 0.01
		_i=$((_i + 1))
	done
	ND=$(sed -n 's/.*display is :\([0-9]*\) .*/\1/p' "$1")
	XA=$(sed -n 's/.*cookie in \(.*\))$/\1/p' "$1")
}

# wait_for_x PID SECONDS TEST...: until the command TEST succeeds (checking
# every 0.02 s), while PID (an xnest-launch) runs, for up to SECONDS;
# returns 1 when PID ended or the time ran out.
wait_for_x() {
	_pid=$1 _limit=$(( $2 * 50 ))
	shift 2
	_k=0
	until "$@"; do
		kill -0 "$_pid" 2>/dev/null && [ $_k -lt $_limit ] || return 1
		sleep 0.02
		_k=$((_k + 1))
	done
}
# x_has_window NAME: the nested display :$ND has a window named NAME.
x_has_window() { XAUTHORITY="$XA" xwininfo -display ":$ND" -root -tree 2>/dev/null | grep -q "\"$1\""; }
