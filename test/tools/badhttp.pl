#!/usr/bin/perl
# A web server that misbehaves, for remote.test: it serves FILE.umlkidx
# properly (so a boot gets as far as reading chunks) and answers every
# other request in the way MODE names:
#   norange  200 with the whole file, ignoring Range
#   404      404 Not Found
#   500      500 Internal Server Error
#   stall    reads the request, then sends nothing for 30 s
# Usage: badhttp.pl PORT MODE DIR   (writes DIR/badhttp.port when listening)
use strict;
use warnings;
use IO::Socket::INET;
use POSIX ();

my ($port, $mode, $dir) = @ARGV;
$SIG{CHLD} = 'IGNORE';
$SIG{PIPE} = 'IGNORE';
my $srv = IO::Socket::INET->new(LocalAddr => '127.0.0.1', LocalPort => $port, Listen => 16, ReuseAddr => 1)
	or die "badhttp: listen on $port: $!\n";
open(my $ready, '>', "$dir/badhttp.ready") or die "badhttp: $dir: $!\n";
close($ready);

sub whole {
	my ($path) = @_;
	open(my $f, '<', $path) or return undef;
	binmode($f);
	local $/;
	my $d = <$f>;
	return $d;
}

while (my $c = $srv->accept) {
	my $pid = fork();
	next if $pid;
	binmode($c);
	while (1) {
		my $head = '';
		while ($head !~ /\r\n\r\n/) {
			my $n = sysread($c, my $b, 4096);
			POSIX::_exit(0) unless $n;
			$head .= $b;
		}
		my ($path) = $head =~ m{^GET (\S+) HTTP/1\.1};
		$path //= '/';
		$path =~ s{^http://[^/]+}{};
		my $file = "$dir/www$path";
		if ($path =~ /\.umlkidx$/ && defined(my $d = whole($file))) {
			print $c "HTTP/1.1 200 OK\r\nContent-Length: " . length($d) . "\r\n\r\n$d";
			next;
		}
		if ($mode eq 'stall') {
			sleep 30;      # then goes: the test has long timed out
		} elsif ($mode eq '404') {
			print $c "HTTP/1.1 404 Not Found\r\nContent-Length: 9\r\n\r\nnot found";
		} elsif ($mode eq '500') {
			print $c "HTTP/1.1 500 Internal Server Error\r\nContent-Length: 5\r\n\r\noops!";
		} elsif ($mode eq 'norange') {
			my $size = -s $file;
			print $c "HTTP/1.1 200 OK\r\nContent-Length: $size\r\n\r\n";
			open(my $f, '<', $file) or POSIX::_exit(0);
			binmode($f);
			while (read($f, my $b, 65536)) {
				print $c $b or POSIX::_exit(0);
			}
		}
	}
}
