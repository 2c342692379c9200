#!/usr/bin/perl
# cow-old.pl V3COW OUT VERSION: rewrite a version-3 COW file (as the
# kernel writes it) as version 1 or 2, same backing, bitmap and data, laid
# out as the kernel's cow_sizes() expects those versions.
use strict;
my ($in, $out, $ver) = @ARGV;
open(my $f, '<:raw', $in) or die "$in: $!";
local $/;
my $d = <$f>;
my ($magic, $v, $mtime, $size, $ss, $align) = unpack('N N N Q> N N', substr($d, 0, 28));
my $path = unpack('Z*', substr($d, 32, 4096));
my $bmoff3 = int((4128 + $align - 1) / $align) * $align;
my $nsec = int(($size + $ss - 1) / $ss);
my $bmlen3 = int(($nsec + 7) / 8);
my $data3 = int(($bmoff3 + $bmlen3 + $align - 1) / $align) * $align;
my ($hdr, $bmoff);
if ($ver == 2) {
	$hdr = pack('N N a4096 N Q> N', 0x4f4f4f4d, 2, $path, $mtime, $size, $ss);
} else {
	# v1: host byte order (little-endian), 256-byte path
	$hdr = pack('V V a256 V Q< V', 0x4f4f4f4d, 1, $path, $mtime, $size, $ss);
}
$bmoff = length($hdr);
my $bmlen = int(($size + $ss - 1) / (8 * $ss));     # the kernel's rounding
my $data = int(($bmoff + $bmlen + $ss - 1) / $ss) * $ss;
my $o = $hdr . substr($d, $bmoff3, $bmlen);
$o .= "\0" x ($data - length($o));
$o .= substr($d, $data3);
open(my $g, '>:raw', $out) or die "$out: $!";
print $g $o;
