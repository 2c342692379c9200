#!/bin/sh
# Network benchmarks, each against its peer in the same run:
#
# 1. TCP throughput between two tiny guests (busybox nc, BENCH_NET_MB (64) of
#    zeros) through 'umlk umlswitch' and through Debian's uml_switch, with
#    the CPU time each switch used.  Target: umlk at least as fast.
# 2. DHCP with Kea's perfdhcp (a relay agent simulating many clients) on a
#    veth pair into a network namespace: umlk dhcpd --interface against
#    dnsmasq on the same interface: exchanges per second at an offered rate
#    of BENCH_DHCP_RATE, and DISCOVER->OFFER, REQUEST->ACK delays at a gentle
#    100/s.  Also umlk dhcpd on a switch, reached through umlswitch -tap.
#
# Needs root for part 2 (namespaces, veth, tap); part 1 runs as anyone.
set -eu
top=$(cd "$(dirname "$0")/.." && pwd)
. "$top/bench/lib.sh"
umlk=${UMLK:-$top/build/umlk}
kernel=$top/build/linux
runs=${RUNS:-3}
mb=${BENCH_NET_MB:-64}
w=$(mktemp -d "${TMPDIR:-/var/tmp}/umlk-bench.XXXXXX")
ns=umlkbench$$
cleanup() {
	for f in "$w"/*.pid; do [ -f "$f" ] && kill "$(cat "$f")" 2>/dev/null; done
	ip netns del "$ns" 2>/dev/null || true
	ip link del ub1$$ 2>/dev/null || true
	rm -rf "$w"
}
trap cleanup EXIT
cd "$w"
export XDG_CACHE_HOME="$w/cache"
sh "$top/rootfs/tiny.sh" "$umlk" img >/dev/null 2>&1
B="$umlk boot -q --kernel $kernel --no-dhcp"

# CPU seconds (user + system) a process has used so far.
cpu() { awk -v t="$(getconf CLK_TCK)" '{ printf "%.2f\n", ($14 + $15) / t }' "/proc/$1/stat"; }

# One transfer through the switch at $1: prints the seconds the receiving
# guest took from accepting the connection to the last byte (/proc/uptime,
# 10 ms resolution).  The receiver's nc runs a program on the connection:
# busybox nc -l would hang up on its own stdin's end of file.
transfer() {
	rm -f recv.out
	$B --net "$1" img/tiny.iso -- sh -c 'ifconfig eth0 10.1.0.1 up; echo ready;
		nc -l -p 5001 -e sh -c "t0=\$(cut -d\" \" -f1 /proc/uptime); n=\$(wc -c);
			t1=\$(cut -d\" \" -f1 /proc/uptime); echo \$n \$t0 \$t1 >&2"' > recv.out 2>&1 &
	r=$!
	i=0; while ! grep -q ready recv.out 2>/dev/null && [ $i -lt 100 ]; do sleep 0.1; i=$((i + 1)); done
	sleep 0.3
	$B --net "$1" img/tiny.iso -- sh -c "ifconfig eth0 10.1.0.2 up; sleep 0.2;
		dd if=/dev/zero bs=65536 count=$((mb * 16)) 2>/dev/null | nc 10.1.0.1 5001"
	wait $r
	awk -v want=$((mb * 1048576)) 'NF == 3 && $1 ~ /^[0-9]+$/ {
		if ($1 != want) { print "bench: received " $1 " bytes, not " want > "/dev/stderr"; exit 1 }
		printf "%.2f\n", $3 - $2 }' recv.out
}

# The two switches take turns, run by run, so a busy moment on this shared
# machine does not land on one of them only; best of $runs each.
best() { if [ -z "$1" ] || awk -v a="$2" -v b="$1" 'BEGIN { exit !(a < b) }'; then echo "$2"; else echo "$1"; fi; }
mbps() { awk -v mb="$mb" -v t="$1" 'BEGIN { printf "%.1f\n", (t > 0 ? mb / t : 0) }'; }

echo "TCP, $mb MiB from one tiny guest to another through the switch (best of $runs, alternating):"
uml_switch -unix "$w/u.ctl" </dev/null >/dev/null 2>&1 &
echo $! > u.pid
i=0; while [ ! -S u.ctl ] && [ $i -lt 50 ]; do sleep 0.1; i=$((i + 1)); done
"$umlk" umlswitch -q -daemon -unix "$w/k.ctl" -pidfile "$w/k.pid"
pu0=$(cpu "$(cat u.pid)") pk0=$(cpu "$(cat k.pid)")
tu= tk=
i=0
while [ $i -lt "$runs" ]; do
	tu=$(best "$tu" "$(transfer "$w/u.ctl")")
	tk=$(best "$tk" "$(transfer "$w/k.ctl")")
	i=$((i + 1))
done
pu1=$(cpu "$(cat u.pid)") pk1=$(cpu "$(cat k.pid)")
peer_rate=$(mbps "$tu") umlk_rate=$(mbps "$tk")
peer_cpu=$(awk -v a="$pu0" -v b="$pu1" -v n="$runs" 'BEGIN { printf "%.2f", (b - a) / n }')
umlk_cpu=$(awk -v a="$pk0" -v b="$pk1" -v n="$runs" 'BEGIN { printf "%.2f", (b - a) / n }')
kill "$(cat u.pid)" "$(cat k.pid)"; rm -f u.pid k.pid
echo "  uml_switch          $peer_rate MB/s   switch CPU ${peer_cpu} s per transfer"
echo "  umlk umlswitch      $umlk_rate MB/s   switch CPU ${umlk_cpu} s per transfer"
echo "  speed ratio (umlk/uml_switch): $(ratio "$umlk_rate" "$peer_rate")x   (target: >= 1)"
echo "  switch CPU ratio (umlk/uml_switch): $(ratio "$umlk_cpu" "$peer_cpu")"

if [ "$(id -u)" != 0 ] || ! command -v perfdhcp >/dev/null || ! command -v dnsmasq >/dev/null; then
	echo
	echo "DHCP: skipped (needs root, perfdhcp from kea-admin, and dnsmasq)"
	exit 0
fi

rate=${BENCH_DHCP_RATE:-20000}
ip netns add "$ns"
ip link add ub1$$ type veth peer name ub0
ip link set ub0 netns "$ns"
ip addr add 10.3.0.1/16 dev ub1$$
ip link set ub1$$ up
ip -n "$ns" addr add 10.3.0.2/16 dev ub0
ip -n "$ns" link set ub0 up
ip -n "$ns" link set lo up
# perfdhcp: "Rate: N 4-way exchanges/second" and the two average delays.
perf() {
	ip netns exec "$ns" perfdhcp -4 -l "$1" -r "$2" -R 60000 -p 5 "$3" 2>&1 | awk '
		/^Rate:/ { rate = $2 }
		/^avg delay:/ && $3 != "n/a" { d[++n] = $3 }
		END { printf "%.0f %s %s\n", rate, (d[1] ? d[1] : "-"), (d[2] ? d[2] : "-") }'
}
range="10.3.1.0-10.3.250.250"
"$umlk" dhcpd -q --daemon --interface ub1$$ --pool "$range" --pidfile "$w/d.pid"
set -- $(perf ub0 "$rate" 10.3.0.1); umlk_max=$1
set -- $(perf ub0 100 10.3.0.1); umlk_do=$2 umlk_ra=$3
kill "$(cat d.pid)"; sleep 0.5
dnsmasq --no-daemon --user=root --port=0 --interface=ub1$$ --bind-interfaces --no-ping \
	--dhcp-range=10.3.1.0,10.3.250.250,1h --dhcp-lease-max=200000 --dhcp-leasefile="$w/dnsmasq.leases" \
	--quiet-dhcp --log-facility=/dev/null 2>/dev/null &
echo $! > q.pid
sleep 0.5
set -- $(perf ub0 "$rate" 10.3.0.1); peer_max=$1
set -- $(perf ub0 100 10.3.0.1); peer_do=$2 peer_ra=$3
kill "$(cat q.pid)"; rm -f q.pid

# umlk dhcpd on a switch, perfdhcp in the namespace behind umlswitch -tap.
"$umlk" umlswitch -q -daemon -unix "$w/t.ctl" -tap ut$$ -pidfile "$w/t.pid"
ip link set ut$$ netns "$ns"
ip -n "$ns" addr add 10.4.0.5/16 dev ut$$
ip -n "$ns" link set ut$$ up
"$umlk" dhcpd -q --daemon --switch "$w/t.ctl" --address 10.4.0.1/16 --pool 10.4.1.0-10.4.250.250 --pidfile "$w/td.pid"
set -- $(perf ut$$ "$rate" 10.4.0.1); sw_max=$1
set -- $(perf ut$$ 100 10.4.0.1); sw_do=$2 sw_ra=$3

echo
echo "DHCP with perfdhcp, up to 60000 simulated clients, offered $rate/s for 5 s (delays at 100/s):"
echo "  dnsmasq --interface             $peer_max exchanges/s   DISCOVER-OFFER ${peer_do} ms, REQUEST-ACK ${peer_ra} ms"
echo "  umlk dhcpd --interface          $umlk_max exchanges/s   DISCOVER-OFFER ${umlk_do} ms, REQUEST-ACK ${umlk_ra} ms"
echo "  umlk dhcpd on umlswitch -tap    $sw_max exchanges/s   DISCOVER-OFFER ${sw_do} ms, REQUEST-ACK ${sw_ra} ms"
echo "  rate ratio (umlk/dnsmasq): $(ratio "$umlk_max" "$peer_max")x"
