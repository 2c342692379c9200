#!/usr/bin/perl
# linkem: a TCP relay that behaves like a network link between its clients
# and one server: every byte is delayed by DELAY_MS each way and the link
# carries at most RATE_MBIT megabits a second each way, shared by all
# connections (bytes queue behind one another as on a wire).  For the
# benchmarks, on a host whose kernel has no tc netem.
# Usage: linkem.pl LISTEN_PORT SERVER_HOST SERVER_PORT RATE_MBIT DELAY_MS READY_FILE
use strict;
use warnings;
use IO::Socket::INET;
use IO::Select;
use Time::HiRes qw(time);

my ($lport, $shost, $sport, $mbit, $delay_ms, $ready) = @ARGV;
$SIG{PIPE} = 'IGNORE';
my $bps = $mbit * 1e6 / 8;
my $delay = $delay_ms / 1000;
my $l = IO::Socket::INET->new(LocalAddr => '127.0.0.1', LocalPort => $lport, Listen => 64, ReuseAddr => 1)
	or die "linkem: listen: $!\n";
open(my $r, '>', $ready) or die "linkem: $ready: $!\n";
close($r);
my $sel = IO::Select->new($l);
my %peer;       # socket -> the other end
my %queue;      # socket -> [ [due, data], ... ] to write to it
my %free = (up => 0, down => 0);        # when each direction's wire is free
my %dir;        # socket -> 'up' (a server socket: written toward it) or 'down'
my %closing;    # socket -> due time of its close, after its queue
my %obj;        # its name -> the socket

sub drop {
	my ($s) = @_;
	$sel->remove($s);
	close($s);
	delete $queue{$s};
	delete $peer{$s};
	delete $dir{$s};
	delete $closing{$s};
	delete $obj{$s};
}

while (1) {
	my $now = time;
	my $next = 1;
	for my $s (keys %queue) {
		next unless @{$queue{$s}};
		my $t = $queue{$s}[0][0] - $now;
		$next = $t if $t < $next;
	}
	$next = 0 if $next < 0;
	my @can = $sel->can_read($next);
	$now = time;
	for my $s (@can) {
		if ($s == $l) {
			my $c = $l->accept or next;
			my $u = IO::Socket::INET->new(PeerAddr => $shost, PeerPort => $sport) or do { close($c); next };
			$peer{$c} = $u;
			$peer{$u} = $c;
			$dir{$c} = 'down';
			$dir{$u} = 'up';
			$queue{$c} = [];
			$queue{$u} = [];
			$obj{$c} = $c;
			$obj{$u} = $u;
			$sel->add($c, $u);
			next;
		}
		my $o = $peer{$s} or next;
		my $n = sysread($s, my $buf, 65536);
		my $d = $dir{$o};
		if (!$n) {
			$sel->remove($s);
			$closing{$o} = 1;
			push @{$queue{$o}}, [ ($free{$d} > $now ? $free{$d} : $now) + $delay, undef ];
			next;
		}
		# On the wire after what is queued, then the delay.
		my $start = $free{$d} > $now ? $free{$d} : $now;
		$free{$d} = $start + $n / $bps;
		push @{$queue{$o}}, [ $free{$d} + $delay, $buf ];
	}
	for my $k (keys %queue) {
		my $sock = $obj{$k} or next;
		while ($queue{$k} && @{$queue{$k}} && $queue{$k}[0][0] <= $now) {
			my $item = shift @{$queue{$k}};
			if (!defined $item->[1]) {
				my $other = $peer{$sock};
				drop($sock);
				drop($other) if $other && $obj{$other};
				last;
			}
			my $off = 0;
			while ($off < length($item->[1])) {
				my $w = syswrite($sock, $item->[1], length($item->[1]) - $off, $off);
				if (!defined $w) { drop($sock); last; }
				$off += $w;
			}
		}
	}
}
