#!/bin/sh
# Network benchmarks, each against its peer in the same run:
#
# 1. TCP between two guests through 'umlk umlswitch': large writes over
#    virtio-net (7.x kernel, --isolated and the default mode) against the
#    6.12 kernel's daemon transport and the host's loopback with the same
#    tools; the switch's CPU time; and small writes (busybox nc), labelled
#    as what they measure.  Targets: 5x the daemon path, half of loopback
#    in the default mode.
# 2. DHCP with Kea's perfdhcp (a relay agent simulating many clients) on a
#    veth pair into a network namespace: umlk dhcpd --interface against
#    dnsmasq on the same interface: exchanges per second at an offered rate
#    of BENCH_DHCP_RATE, and DISCOVER->OFFER, REQUEST->ACK delays at a gentle
#    100/s.  Also umlk dhcpd on a switch, reached through umlswitch -tap.
# 3. The same large-write TCP between two guests on two switches joined by
#    VXLAN, each switch in a network namespace of its own ("two hosts") on
#    a veth pair, against the two guests on one switch (part 1's default
#    mode figure).  Goal: >= 300 MB/s and >= 0.5 of one switch.
#
# Needs root for parts 2 and 3 (namespaces, veth, tap); part 1 runs as
# anyone.  PARTS (default "tcp dhcp vxlan") picks parts: PARTS=vxlan runs
# only the tunnel against one switch.
set -eu
. "$(dirname "$0")/lib.sh"
mb=${BENCH_NET_MB:-64}
ns=umlkbench$$
cleanup() {
	for f in "$w"/*.pid; do [ -f "$f" ] && kill "$(cat "$f")" 2>/dev/null; done
	for n in "$ns" "${ns}a" "${ns}b"; do ip netns del "$n" 2>/dev/null || true; done
	ip link del ub1$$ 2>/dev/null || true
}
at_exit cleanup
cd "$w"
export XDG_CACHE_HOME="$w/cache"
sh "$top/rootfs/tiny.sh" "$umlk" img >/dev/null 2>&1
B="$umlk boot -q --kernel $kernel --no-dhcp"
# (RUNS runs of each, alternating, best kept)

# CPU seconds (user + system) a process has used so far.
cpu() { awk -v t="$(getconf CLK_TCK)" '{ printf "%.2f\n", ($14 + $15) / t }' "/proc/$1/stat"; }

# Guest-to-guest TCP, large writes: bash's 'dd bs=1M > /dev/tcp/IP/PORT'
# into a perl reader doing 1 MiB sysreads (Debian image).  The time is the
# host's (a guest's clock runs slow under load): the receiver's lines
# "accepted" and "received N" are stamped as they reach the host.
# $1: switch socket, $2: MiB, $3: boot options for both guests,
# $4/$5: extra options of the receiver/sender (the 6.12 kernel's daemon
# transport needs its own eth0= each).  Prints MB/s.
recv_pl='use Socket; $| = 1; socket(S, PF_INET, SOCK_STREAM, 0) or die;
setsockopt(S, SOL_SOCKET, SO_REUSEADDR, 1); bind(S, sockaddr_in(5001, INADDR_ANY)) or die "bind: $!";
listen(S, 1); print "ready\n"; accept(C, S) or die; print "accepted\n"; my ($n, $b) = (0);
while (1) { my $r = sysread(C, $b, 1048576); last if !$r; $n += $r; } print "received $n\n";'
stamp() { while IFS= read -r l; do echo "$(date +%s.%N) $l"; done; }
large() {
	rm -f recv.out
	$3 ${4:-} "$top/build/rootfs/debian.iso" -- sh -c "ip addr add 10.1.0.1/24 dev eth0; ip link set eth0 up;
		perl -e '$recv_pl'" 2>&1 | stamp > recv.out &
	i=0; while ! grep -q ready recv.out 2>/dev/null && [ $i -lt 300 ]; do sleep 0.1; i=$((i + 1)); done
	$3 ${5:-} "$top/build/rootfs/debian.iso" -- bash -c "ip addr add 10.1.0.2/24 dev eth0; ip link set eth0 up;
		sleep 1; dd if=/dev/zero bs=1M count=$2 2>/dev/null > /dev/tcp/10.1.0.1/5001"
	wait
	awk -v want=$(($2 * 1048576)) '/accepted/ { t0 = $1 } /received/ {
		if ($3 != want) { print "bench: received " $3 " bytes, not " want > "/dev/stderr"; exit 1 }
		printf "%.1f\n", $3 / 1048576 / ($1 - t0) }' recv.out
}
# The same tools on the host's loopback: the ceiling.
loopback() {
	rm -f recv.out
	perl -e "$(echo "$recv_pl" | sed 's/5001/5009/')" | stamp > recv.out &
	i=0; while ! grep -q ready recv.out 2>/dev/null && [ $i -lt 100 ]; do sleep 0.1; i=$((i + 1)); done
	bash -c "dd if=/dev/zero bs=1M count=$1 2>/dev/null > /dev/tcp/127.0.0.1/5009"
	wait
	awk '/accepted/ { t0 = $1 } /received/ { printf "%.1f\n", $3 / 1048576 / ($1 - t0) }' recv.out
}

# Small writes: busybox nc in tiny guests (BENCH_NET_MB MiB of zeros).  This
# measures UML's cost per system call more than the network.  Prints the
# seconds the receiving guest took (its /proc/uptime, 10 ms resolution).
small() {
	rm -f recv.out
	$2 ${3:-} img/tiny.iso -- sh -c 'ifconfig eth0 10.1.0.1 up; echo ready;
		nc -l -p 5001 -e sh -c "t0=\$(cut -d\" \" -f1 /proc/uptime); n=\$(wc -c);
			t1=\$(cut -d\" \" -f1 /proc/uptime); echo \$n \$t0 \$t1 >&2"' > recv.out 2>&1 &
	r=$!
	i=0; while ! grep -q ready recv.out 2>/dev/null && [ $i -lt 100 ]; do sleep 0.1; i=$((i + 1)); done
	sleep 0.3
	$2 ${4:-} img/tiny.iso -- sh -c "ifconfig eth0 10.1.0.2 up; sleep 0.2;
		dd if=/dev/zero bs=65536 count=$((mb * 16)) 2>/dev/null | nc 10.1.0.1 5001"
	wait $r
	awk -v want=$((mb * 1048576)) 'NF == 3 && $1 ~ /^[0-9]+$/ {
		if ($1 != want) { print "bench: received " $1 " bytes, not " want > "/dev/stderr"; exit 1 }
		printf "%.1f\n", ($3 > $2 ? want / 1048576 / ($3 - $2) : 0) }' recv.out
}

parts=" ${PARTS:-tcp dhcp vxlan} "
want() { case "$parts" in *" $1 "*) return 0 ;; esac; return 1; }

best() { if [ -z "$1" ] || awk -v a="$2" -v b="$1" 'BEGIN { exit !(a > b) }'; then echo "$2"; else echo "$1"; fi; }

big=${BENCH_NET_BIG_MB:-1000}
if want tcp; then
# The 6.12 kernel with UML's daemon transport, built from the cache like
# the current one: the path guests took before virtio-net.
echo "building the 6.12 kernel for comparison (cached)" >&2
sh "$top/bench/kernel-6.12/build.sh" "$w/linux-6.12" >&2
old="$umlk boot -q --isolated --no-jail --kernel $w/linux-6.12 --no-dhcp"      # (as umlk ran it then)
daemon_r="--append eth0=daemon,52:54:00:00:01:01,unix,$w/k.ctl"
daemon_s="--append eth0=daemon,52:54:00:00:01:02,unix,$w/k.ctl"

"$umlk" umlswitch -q -daemon -unix "$w/k.ctl" -pidfile "$w/k.pid"
k0=$(cpu "$(cat k.pid)")
v= vt= lo= d=
i=0
while [ $i -lt "$runs" ]; do
	v=$(best "$v" "$(large "$w/k.ctl" "$big" "$B --isolated --net $w/k.ctl")")
	vt=$(best "$vt" "$(large "$w/k.ctl" "$big" "$B --net $w/k.ctl")")
	lo=$(best "$lo" "$(loopback $((big * 4)))")
	i=$((i + 1))
done
k1=$(cpu "$(cat k.pid)")
d=$(large "$w/k.ctl" 200 "$old" "$daemon_r" "$daemon_s")
sw_cpu=$(awk -v a="$k0" -v b="$k1" -v n="$runs" -v mb="$big" 'BEGIN { printf "%.2f", (b - a) / (2 * n) }')
echo "TCP between two guests through umlk umlswitch, large writes (dd bs=1M into /dev/tcp,"
echo "perl reading 1 MiB at a time; $big MiB; best of $runs):"
echo "  virtio-net (7.x, --isolated)          $v MB/s   switch CPU $sw_cpu s per transfer"
echo "  virtio-net (7.x, the default mode)    $vt MB/s"
echo "  daemon transport (6.12, 200 MiB)      $d MB/s"
echo "  host loopback, same tools             $lo MB/s"
echo "  virtio / daemon: $(ratio "$v" "$d")x (target >= 5)"
echo "  virtio / loopback: the default mode $(ratio "$vt" "$lo") (goal >= 0.5), --isolated $(ratio "$v" "$lo")"
table "guest to guest TCP (default mode) vs host loopback" "$vt MB/s" "$lo MB/s" "$(ratio "$vt" "$lo")" ">= 0.5"
table "guest to guest TCP (--isolated) vs the 6.12 daemon transport" "$v MB/s" "$d MB/s" "$(ratio "$v" "$d")x" ">= 5x"
s7= s6=
i=0
while [ $i -lt "$runs" ]; do
	s7=$(best "$s7" "$(small "$w/k.ctl" "$B --net $w/k.ctl")")
	s6=$(best "$s6" "$(small "$w/k.ctl" "$old" "$daemon_r" "$daemon_s")")
	i=$((i + 1))
done
echo "Small writes (busybox nc, $mb MiB; this measures UML's cost per system call more"
echo "than the network):"
echo "  virtio-net (7.x)        $s7 MB/s"
echo "  daemon transport (6.12) $s6 MB/s"
kill "$(cat k.pid)"; rm -f k.pid
fi

if ! want vxlan; then
	:
elif [ "$(id -u)" = 0 ]; then
	ip netns add "${ns}a"
	ip netns add "${ns}b"
	ip -n "${ns}a" link add vxa type veth peer name vxb netns "${ns}b"
	ip -n "${ns}a" addr add 10.77.0.1/24 dev vxa
	ip -n "${ns}b" addr add 10.77.0.2/24 dev vxb
	for n in a b; do ip -n "$ns$n" link set "vx$n" up; ip -n "$ns$n" link set lo up; done
	ip netns exec "${ns}a" "$umlk" umlswitch -q -daemon -unix "$w/va.ctl" -pidfile "$w/va.pid" \
		-vxlan 42 -vxlan-remote 10.77.0.2
	ip netns exec "${ns}b" "$umlk" umlswitch -q -daemon -unix "$w/vb.ctl" -pidfile "$w/vb.pid" \
		-vxlan 42 -vxlan-remote 10.77.0.1
	# The same guests on one switch (A's), alternating with the tunnel,
	# so both see the same moment of this machine.
	vx= one=
	i=0
	while [ $i -lt "$runs" ]; do
		vx=$(best "$vx" "$(large "$w/va.ctl" "$big" "$B" "--net $w/va.ctl" "--net $w/vb.ctl")")
		one=$(best "$one" "$(large "$w/va.ctl" "$big" "$B --net $w/va.ctl")")
		i=$((i + 1))
	done
	batches=$("$umlk" umlswitch -status -unix "$w/vb.ctl" | sed -n 's/^vxlan batches: \([0-9]* datagrams out in [0-9]* sends\).*/\1/p')
	joins=$("$umlk" umlswitch -status -unix "$w/va.ctl" | sed -n 's/^vxlan batches: .*; \(.*\)/\1/p')
	mtu=$("$umlk" umlswitch -status -unix "$w/va.ctl" | sed -n 's/.*vxlan: .*mtu \([0-9]*\).*/\1/p')
	kill "$(cat va.pid)" "$(cat vb.pid)"; rm -f va.pid vb.pid
	ip netns del "${ns}a"; ip netns del "${ns}b"
	echo "TCP between two guests on two switches joined by VXLAN over a veth pair (MTU $mtu,"
	echo "$big MiB, best of $runs): $vx MB/s, against the same guests on one switch $one MB/s:" \
		"$(ratio "$vx" "$one") (targets >= 300 MB/s, >= 0.5)"
	echo "  sending switch: $batches; receiving switch: $joins"
	table "guest to guest TCP across VXLAN vs one switch" "$vx MB/s" "$one MB/s" "$(ratio "$vx" "$one")" ">= 0.5"
else
	echo "VXLAN: skipped (needs root for the namespaces)"
fi

if ! want dhcp; then
	exit 0
fi
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
