#!/usr/bin/perl
# login: time a guest to its login prompt on a terminal of its own.
# Runs COMMAND under script(1), whose pseudo-terminal the guest's console
# is, answers what a terminal is asked (the cursor's position), and reads
# what the terminal shows as it comes: the time is taken on
# the host's clock when PROMPT arrives (a poll of the screen every 0.1 s
# had made steps of 12% of trixie's 0.85 s).  Then it logs in as root
# when SHELL is empty (a getty's prompt), waits for the shell's prompt
# (SHELL, or ":~#"), powers the guest off (SUDO non-empty: with sudo, as
# the live ISO's autologin user) and waits for COMMAND to end.
# Prints the seconds to PROMPT, or "timeout".
# Usage: login.pl PROMPT SHELL SUDO COMMAND
use strict;
use warnings;
use IPC::Open2;
use Time::HiRes qw(time);
use POSIX qw(WNOHANG);

my ($prompt, $shell, $sudo, $cmd) = @ARGV;
die "usage: login.pl PROMPT SHELL SUDO COMMAND\n" unless defined $cmd;
$SIG{PIPE} = 'IGNORE';
my $t0 = time;
# (A terminal of 40 rows of 150 columns, as the screen the bench had.)
my $pid = open2(my $out, my $in, 'script', '-qfec', "stty rows 40 cols 150; exec $cmd", '/dev/null');
my $seen = '';

# upto(TEXT, SECONDS): read until TEXT has been shown; 1, or 0 when the
# time ran out or the terminal closed.
sub upto {
	my ($text, $limit) = @_;
	my $end = time + $limit;
	for (;;) {
		my $i = index($seen, $text);
		if ($i >= 0) {
			$seen = substr($seen, $i + length($text));
			return 1;
		}
		$seen = substr($seen, -4096) if length($seen) > 65536;
		my $left = $end - time;
		return 0 if $left <= 0;
		my $rin = '';
		vec($rin, fileno($out), 1) = 1;
		return 0 if select(my $rout = $rin, undef, undef, $left) <= 0;
		my $n = sysread($out, my $chunk, 65536);
		return 0 unless $n;
		# The guest asks where the cursor is (systemd and agetty do, to
		# learn the terminal's size: the cursor sent to 32766;32766 and
		# back): answered as a 40x150 terminal would.  Unanswered, each
		# question waits out its timeout (about 0.35 s).
		# (The last 3 bytes before: a question split between reads.)
		my $asked = () = (substr($seen, -3) . $chunk) =~ /\e\[6n/g;
		syswrite($in, "\e[40;150R") for 1 .. $asked;
		$seen .= $chunk;
	}
}

sub say_line {
	syswrite($in, "$_[0]\r");
}

my $got = upto($prompt, 300);
my $t1 = time;
if ($got) {
	if ($shell eq '') {
		say_line('root');
		$shell = ':~#';
	}
	upto($shell, 60);
	say_line(($sudo ne '' ? 'sudo ' : '') . 'poweroff');
}
# The guest ends; one that has not (a timeout, or no power-off within
# 30 s) is ended with script(1).
upto("\0never", 30) if $got;
close($in);
kill 'TERM', $pid if !$got || waitpid($pid, WNOHANG) == 0;
waitpid($pid, 0);
print $got ? sprintf("%.3f\n", $t1 - $t0) : "timeout\n";
