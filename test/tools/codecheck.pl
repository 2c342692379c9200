#!/usr/bin/perl
# codecheck.pl: what test/code.test checks in the C sources of libk/ and
# applets/, read as text (the code's own style makes that reliable: a
# function opens with '{' and closes with '}' in column 0).
#
#   codecheck.pl long MAX FILE...     functions over MAX lines
#   codecheck.pl contract FILE...     names that break the error contract
#                                     (core/err.h): an x-name that never
#                                     exits, another name that can
#   codecheck.pl layers MAP FILE...   includes of a folder drawn above the
#                                     including one in MAP's layer line
#   codecheck.pl paths FILE...        paths the text names (in a header,
#                                     its comments) that do not exist:
#                                     TOP/DIR/... paths from the top of the
#                                     tree, DIR/... of libk's folders, and
#                                     bare file names (name.c) anywhere in
#                                     the tree; placeholders (NAME, KEY) and
#                                     patterns (*) are not paths
#
# Each prints one line per finding ("FILE:LINE: what") and exits 1 if it
# found any.
use strict;
use warnings;

my $mode = shift // die "usage: codecheck.pl long|contract|layers ...\n";

# Every function definition: file, line, name, static, noreturn, body.
sub functions {
	my @fns;
	for my $file (@_) {
		open my $fh, '<', $file or die "$file: $!\n";
		my @lines = <$fh>;
		close $fh;
		my ($in, $start, $name, $static, $noret, $body, $head) = (0);
		for my $i (0 .. $#lines) {
			my $l = $lines[$i];
			if (!$in) {
				if ($l =~ /^[A-Za-z_]/ && $l !~ /^(?:struct|union|enum|typedef)\b[^(]*[{;]\s*$/) {
					$head = ($l =~ /^[A-Za-z_][^;=]*\(/) ? $l : ($head && $l !~ /;\s*$/ ? $head . $l : undef);
					$head = undef if $l =~ /;\s*$/ && $l !~ /\(/;
				} elsif ($l =~ /^\{/ && defined $head) {
					($name) = $head =~ /(\w+)\s*\([^()]*(?:\([^()]*\)[^()]*)*\)?\s*(?:__attribute__.*)?$/s;
					($name) = $head =~ /(\w+)\s*\(/ unless $name;
					$static = $head =~ /^static\b/ ? 1 : 0;
					$noret = $head =~ /_Noreturn/ ? 1 : 0;
					($in, $start, $body) = (1, $i + 1, '');
				} elsif ($l !~ /^\s/ || $l =~ /^\s*$/) {
					$head = undef unless $l =~ /^\s+\S/;
				}
				if ($l =~ /^\s+\S/ && defined $head && $head !~ /\)\s*$/) {
					$head .= $l;
				}
				next;
			}
			if ($l =~ /^\}/) {
				push @fns, { file => $file, line => $start, name => $name, static => $static,
					     noret => $noret, body => $body, len => $i + 1 - $start + 1 };
				($in, $head) = (0, undef);
				next;
			}
			$body .= $l;
		}
	}
	return @fns;
}

my @found;

if ($mode eq 'long') {
	my $max = shift;
	for my $f (functions(@ARGV)) {
		push @found, "$f->{file}:$f->{line}: $f->{name} is $f->{len} lines (at most $max)"
			if $f->{len} > $max;
	}
} elsif ($mode eq 'contract') {
	my @fns = functions(@ARGV);
	my (%global, %static);
	for my $f (@fns) {
		if ($f->{static}) { $static{"$f->{file}\0$f->{name}"} = $f } else { $global{$f->{name}} = $f }
	}
	# Out of memory ends the program wherever it happens (err.h): those
	# do not make their callers x-functions.
	my %oom = map { $_ => 1 } qw(xmalloc xcalloc xrealloc xstrdup k_oom);
	my %ends = map { $_ => 1 } qw(xdie xusage exit);
	for my $f (@fns) {
		my $b = $f->{body};
		$b =~ s{/\*.*?\*/}{}gs;
		$b =~ s{"(?:[^"\\]|\\.)*"}{""}g;
		my %calls;
		$calls{$1} = 1 while $b =~ /\b(\w+)\s*\(/g;
		$f->{calls} = [ keys %calls ];
	}
	my $changed = 1;
	# An x-named function declared _Noreturn ends the program by its
	# nature (jail.c's xfail, ending a child before exec).
	for my $f (@fns) { $f->{exits} = ($f->{noret} && $f->{name} =~ /^x/) || grep { $ends{$_} } @{ $f->{calls} } }
	while ($changed) {
		$changed = 0;
		for my $f (@fns) {
			next if $f->{exits};
			for my $c (@{ $f->{calls} }) {
				next if $oom{$c};
				my $g = $static{"$f->{file}\0$c"} // $global{$c};
				next unless $g && $g->{exits} && $g->{name} ne 'main' && $g->{name} !~ /_main$/;
				$f->{exits} = 1;
				$changed = 1;
				last;
			}
		}
	}
	for my $f (@fns) {
		my $n = $f->{name};
		next if $n eq 'main' || $n =~ /_main$/ || $f->{noret} || $oom{$n} || $ends{$n};
		if ($n =~ /^x/ && !$f->{exits}) {
			push @found, "$f->{file}:$f->{line}: $n is named as an x-function but never exits";
		} elsif ($n !~ /^x/ && $f->{exits}) {
			push @found, "$f->{file}:$f->{line}: $n can exit (through xdie or a function that does) but its name has no x";
		}
	}
} elsif ($mode eq 'layers') {
	my $map = shift;
	open my $fh, '<', $map or die "$map: $!\n";
	my @order;
	while (<$fh>) {
		if (/^Layers, bottom up: (.*)$/) { @order = split /\s+/, $1; last }
	}
	die "$map: no line 'Layers, bottom up: ...'\n" unless @order;
	my %rank;
	@rank{@order} = 0 .. $#order;
	for my $file (@ARGV) {
		my ($dir) = $file =~ m{libk/(\w+)/} or next;
		die "$file: folder $dir is not in the layers of ${map}\n" unless exists $rank{$dir};
		open my $in, '<', $file or die "$file: $!\n";
		while (<$in>) {
			next unless /^#include "(\w+)\//;
			push @found, "$file:$.: includes $1/, which lies above $dir/ in " . $map
				if !exists $rank{$1} || $rank{$1} > $rank{$dir};
		}
	}
} elsif ($mode eq 'paths') {
	my @tracked = split /\n/, `git ls-files`;
	die "codecheck.pl: git ls-files found nothing\n" unless @tracked;
	my %base;
	for (@tracked) { my ($b) = m{([^/]+)$}; $base{$b} = 1 }
	my $top = qr{(?:\.ci|applets|bench|kernel|libk|release|rootfs|test)};
	my $lib = qr{(?:core|image|block|merge|share|remote|vhost|net|guest)};
	for my $file (@ARGV) {
		open my $in, '<', $file or die "$file: $!\n";
		my $text = do { local $/; <$in> };
		close $in;
		# A header: its comments only (the code names system headers).
		if ($file =~ /\.h$/) {
			my $c = '';
			$c .= "$1\n" while $text =~ m{/\*(.*?)\*/}gs;
			$text = $c;
		}
		my %seen;
		while ($text =~ m{(?<![\w/.\$~-])((?:$top|$lib)/[\w./-]*[\w])}g) {
			my $p = $1;
			next if $seen{$p}++ || $p =~ /[A-Z]{2,}/ || $p =~ m{/\.\.?(/|$)};
			my $where = $p =~ m{^$top/} ? $p : "libk/$p";
			push @found, "$file: names $p, which does not exist" unless -e $where || -e $p;
		}
		while ($text =~ m{(?<![\w/.\$~-])([a-z][\w-]*\.(?:c|h|sh|test|pl))\b}g) {
			my $b = $1;
			next if $seen{$b}++;
			push @found, "$file: names $b, which no file in the tree is called" unless $base{$b};
		}
	}
} else {
	die "codecheck.pl: no mode '$mode'\n";
}
print STDERR "$_\n" for @found;
exit(@found ? 1 : 0);
