/* Unit tests of libk's pure functions: byte order, sizes, zero detection,
 * and the cloop parser against images built here in memory. */
#include "block/bsrc.h"
#include "core/bytes.h"
#include "core/err.h"
#include "core/sha256.h"
#include "core/sys.h"
#include "core/xio.h"
#include "guest/boot.h"
#include "guest/guest.h"
#include "guest/jail.h"
#include "guest/payload.h"
#include "image/cloop.h"
#include "image/cow.h"
#include "image/fdiff.h"
#include "net/dhcp.h"
#include "net/net.h"
#include "net/switchproto.h"
#include "net/vnet.h"
#include "net/vxlan.h"
#include "remote/http.h"
#include "remote/index.h"
#include "share/sftp.h"
#include "vhost/vhost.h"
#include "tcpcheck.h"

#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

static int failed;

#define T(name, cond) do { \
	if (cond) printf("PASS: %s\n", name); \
	else { printf("FAIL: %s (%s:%d: %s)\n", name, __FILE__, __LINE__, #cond); failed++; } \
} while (0)
#define T2(fmt, arg, cond) do { \
	char name_[200]; \
	snprintf(name_, sizeof(name_), fmt, arg); \
	T(name_, cond); \
} while (0)

/* A V2 or V4 image of NB blocks of BS bytes, block i filled with byte i. */
static uint8_t *mkcloop(int version, int footer, uint32_t bs, uint32_t nb, size_t *len)
{
	uint8_t **blk = calloc(nb, sizeof(*blk));
	size_t *bl = calloc(nb, sizeof(*bl));
	uint8_t *raw = malloc(bs);
	size_t data = 0;

	for (uint32_t i = 0; i < nb; i++) {
		memset(raw, (int)i, bs);
		uLongf n = compressBound(bs);
		blk[i] = malloc(n);
		compress2(blk[i], &n, raw, bs, 9);
		bl[i] = n;
		data += n;
	}
	size_t idx = (nb + 1) * 8;
	*len = CLOOP_HEAD_SIZE + idx + data;
	uint8_t *f = calloc(1, *len);
	size_t hpos = footer ? *len - CLOOP_HEAD_SIZE : 0;
	size_t ipos = footer ? data : CLOOP_HEAD_SIZE;
	size_t pos = footer ? 0 : CLOOP_HEAD_SIZE + idx;
	cloop_make_head(f + hpos, version, bs, nb);
	for (uint32_t i = 0; i < nb; i++) {
		k_put_be64(f + ipos + i * 8, pos);
		memcpy(f + pos, blk[i], bl[i]);
		pos += bl[i];
		free(blk[i]);
	}
	k_put_be64(f + ipos + nb * 8, pos);
	free(blk);
	free(bl);
	free(raw);
	return f;
}

static int open_mem(struct cloop *c, struct ksrc *s, const uint8_t *f, size_t n)
{
	ksrc_mem(s, f, n, "mem");
	return cloop_open(c, s);
}

/* ---- block sources: a cloop inflated on demand and a COW layer over it,
 * against the bytes they must give, from several threads at once. */

#define PBS 4096u
#define PNB 40u
static uint8_t pattern(uint64_t o) { return (uint8_t)(o * 31 + (o >> 12) * 7); }

static struct bsrc *pattern_cloop(uint64_t *count)
{
	size_t idx = (PNB + 1) * 8, cap = CLOOP_HEAD_SIZE + idx + PNB * compressBound(PBS);
	uint8_t *f = calloc(1, cap), raw[PBS];
	size_t pos = CLOOP_HEAD_SIZE + idx;

	cloop_make_head(f, 2, PBS, PNB);
	for (uint32_t b = 0; b < PNB; b++) {
		for (uint32_t i = 0; i < PBS; i++)
			raw[i] = pattern((uint64_t)b * PBS + i);
		uLongf n = compressBound(PBS);
		compress2(f + pos, &n, raw, PBS, 6);
		k_put_be64(f + CLOOP_HEAD_SIZE + 8 * b, pos);
		pos += n;
	}
	k_put_be64(f + CLOOP_HEAD_SIZE + 8 * PNB, pos);
	int fd = memfd_create("unit.cloop", 0);
	if (fd < 0 || full_write(fd, f, pos) != (ssize_t)pos)
		abort();
	free(f);
	struct bsrc *file = bsrc_file(fd, "unit.cloop", 0, pos, 0, count);
	struct bsrc *c = bsrc_cloop(file, 6 * PBS, 2);     /* a tiny cache: eviction happens */
	if (!c)
		printf("FAIL: cloop source: %s\n", k_errmsg());
	return c;
}

struct reader { struct bsrc *s; unsigned seed; int bad; };

static void *random_reads(void *arg)
{
	struct reader *r = arg;
	uint8_t buf[9000];

	for (int i = 0; i < 400; i++) {
		uint64_t off = rand_r(&r->seed) % (PNB * PBS);
		size_t n = 1 + rand_r(&r->seed) % sizeof(buf);
		if (n > PNB * PBS - off)
			n = PNB * PBS - off;
		if (bsrc_read(r->s, buf, n, off) < 0) {
			r->bad++;
			continue;
		}
		for (size_t k = 0; k < n; k++)
			r->bad += buf[k] != pattern(off + k);
	}
	return NULL;
}

static void bsrc_tests(void)
{
	uint64_t count = 0;
	struct bsrc *c = pattern_cloop(&count);
	uint8_t buf[PBS * 3];
	int bad = 0;

	if (!c)
		return;
	T("cloop source: its size", c->size == PNB * PBS && c->readonly);
	for (uint64_t off = 0; off < c->size; off += 3000) {
		size_t n = c->size - off < 3000 ? (size_t)(c->size - off) : 3000;
		bad += bsrc_read(c, buf, n, off) < 0;
		for (size_t k = 0; k < n; k++)
			bad += buf[k] != pattern(off + k);
	}
	T("cloop source: read in sequence, with read-ahead", bad == 0);
	pthread_t th[4];
	struct reader rd[4];
	for (int i = 0; i < 4; i++) {
		rd[i] = (struct reader){ c, (unsigned)i * 7919u + 1, 0 };
		pthread_create(&th[i], NULL, random_reads, &rd[i]);
	}
	bad = 0;
	for (int i = 0; i < 4; i++) {
		pthread_join(th[i], NULL);
		bad += rd[i].bad;
	}
	T("cloop source: random reads from 4 threads at once", bad == 0);
	T("cloop source: reads past the end refused", bsrc_read(c, buf, 2, c->size - 1) < 0 &&
	  strstr(k_errmsg(), "past its end"));
	T("cloop source: writes refused", bsrc_write(c, buf, 512, 0) < 0);

	/* A COW layer over it, in an unnamed file, against a reference copy. */
	int cfd = memfd_create("unit.cow", 0);
	struct bsrc *w = bsrc_cow(NULL, cfd, c, "/images/unit.img", 1234567, 1);
	uint8_t *ref = malloc(PNB * PBS);
	for (uint64_t o = 0; o < PNB * PBS; o++)
		ref[o] = pattern(o);
	unsigned seed = 42;
	bad = 0;
	for (int i = 0; i < 300; i++) {
		uint64_t sec = rand_r(&seed) % (PNB * PBS / 512);
		size_t n = 512 * (1 + rand_r(&seed) % 8);
		if (n > PNB * PBS - sec * 512)
			n = PNB * PBS - sec * 512;
		for (size_t k = 0; k < n; k++)
			buf[k] = (uint8_t)rand_r(&seed);
		bad += bsrc_write(w, buf, n, sec * 512) < 0;
		memcpy(ref + sec * 512, buf, n);
		uint64_t roff = rand_r(&seed) % (PNB * PBS - 5000);
		bad += bsrc_read(w, buf, 5000, roff) < 0;
		bad += memcmp(buf, ref + roff, 5000) != 0;
	}
	T("cow source: random writes read back over the cloop", bad == 0 && w->size == PNB * PBS);
	T("cow source: a write of part of a sector refused", bsrc_write(w, buf, 100, 512) < 0 &&
	  strstr(k_errmsg(), "whole 512-byte sectors"));
	T("cow source: flush", bsrc_flush(w) == 0);
	/* The file is the kernel's format: header, bitmap and data agree. */
	struct ksrc k;
	struct cow cw;
	memset(&k, 0, sizeof(k));
	k.fd = cfd;
	k.size = (uint64_t)lseek(cfd, 0, SEEK_END);
	k.name = "unit.cow";
	int ok = cow_open(&cw, &k) == 0 && cw.version == 3 && cw.size == PNB * PBS && cw.mtime == 1234567 &&
		 !strcmp(cw.backing, "/images/unit.img") && cw.sectorsize == 512;
	bad = !ok;
	for (uint64_t s = 0; ok && s < cw.nsectors; s++) {
		uint8_t sec[512];
		if (!cow_test(&cw, s))
			continue;               /* read from the cloop: checked above */
		bad += full_pread(cfd, sec, 512, cw.data_off + s * 512) != 512 || memcmp(sec, ref + s * 512, 512);
	}
	T("cow source: the file parses as a v3 COW file whose bitmap marks the written data",
	  bad == 0 && cow_count(&cw) > 0);
	if (ok)
		cow_close(&cw);
	free(ref);
	bsrc_close(w);          /* and the cloop and the file beneath */
	T("the file source counted what it read", count > 0);
}

/* Ethernet/IP codecs: text forms, checksums (RFC 1071's example), a UDP
 * frame built and parsed back, and lies in length fields refused. */
static void net_tests(void)
{
	uint8_t mac[6], f[NET_FRAME_MAX];
	uint32_t ip, mask;
	char buf[18];

	T("mac parse/format", net_parse_mac("52:54:0A:bc:de:f0", mac) == 0 &&
	  !strcmp(net_fmt_mac(mac, buf), "52:54:0a:bc:de:f0"));
	T("mac refuses short and long", net_parse_mac("52:54:0a:bc:de", mac) < 0 &&
	  net_parse_mac("52:54:0a:bc:de:f0:11", mac) < 0 && net_parse_mac("5:54:0a:bc:de:f0", mac) < 0);
	T("ip parse/format", net_parse_ip("10.0.2.15", &ip) == 0 && ip == 0x0a00020f &&
	  !strcmp(net_fmt_ip(ip, buf), "10.0.2.15"));
	T("ip refuses 256, 1.2.3, 1.2.3.4.5, 01234", net_parse_ip("1.2.3.256", &ip) < 0 &&
	  net_parse_ip("1.2.3", &ip) < 0 && net_parse_ip("1.2.3.4.5", &ip) < 0 && net_parse_ip("1.2.3.1234", &ip) < 0);
	T("mask as bits and dotted", net_parse_mask("24", &mask) == 0 && mask == 0xffffff00 &&
	  net_parse_mask("255.255.0.0", &mask) == 0 && net_mask_bits(mask) == 16);
	T("non-contiguous mask refused", net_parse_mask("255.0.255.0", &mask) < 0 && net_parse_mask("33", &mask) < 0);
	static const uint8_t rfc1071[] = { 0x00, 0x01, 0xf2, 0x03, 0xf4, 0xf5, 0xf6, 0xf7 };
	T("internet checksum (RFC 1071 example)", net_sum_fold(net_sum(0, rfc1071, 8)) == (uint16_t)~0xddf2);
	/* The word-at-a-time sum against the byte-pair one of tcpcheck.h, at
	 * every length and start up to 80 and for a 64 KiB buffer of 0xff. */
	static uint8_t big[65536];
	int sums_ok = 1;
	for (size_t i = 0; i < sizeof(big); i++)
		big[i] = (uint8_t)(i * 2654435761u >> 13);
	for (size_t at = 0; at < 8; at++)
		for (size_t len = 0; len <= 80; len++)
			sums_ok &= net_sum_fold(net_sum(7, big + at, len)) == net_sum_fold(tc_add(7, big + at, len));
	sums_ok &= net_sum_fold(net_sum(0, big, sizeof(big))) == net_sum_fold(tc_add(0, big, sizeof(big)));
	memset(big, 0xff, sizeof(big));
	sums_ok &= net_sum_fold(net_sum(0xffff, big, sizeof(big) - 1)) ==
		   net_sum_fold(tc_add(0xffff, big, sizeof(big) - 1));
	T("internet checksum: eight bytes at a time, any length and alignment", sums_ok);

	struct net_ends e = { { 2, 0, 0, 0, 0, 1 }, { 2, 0, 0, 0, 0, 2 }, 0x0a000201, 0x0a000202, 1234, 68 };
	struct net_pkt p;
	size_t n = net_build_udp(f, sizeof(f), &e, "hello", 5);
	T("udp frame padded to 60", n == 60);
	T("udp frame parses back", net_parse(&p, f, n) == 0 && p.ethertype == NET_ETH_IPV4 &&
	  p.proto == NET_IP_UDP && p.saddr == e.saddr && p.daddr == e.daddr && p.sport == 1234 &&
	  p.dport == 68 && p.datalen == 5 && !memcmp(p.data, "hello", 5));
	f[14 + 20 + 8] ^= 1;
	T("udp checksum checked", net_parse(&p, f, n) < 0 && strstr(k_errmsg(), "UDP checksum"));
	f[14 + 20 + 8] ^= 1;
	f[14 + 3] = 200;
	T("ip total length past the frame", net_parse(&p, f, n) < 0 && strstr(k_errmsg(), "do not fit"));
	T("runt frame", net_parse(&p, f, 13) < 0);
	n = net_build_tcp(f, sizeof(f), &e, 1000, 2000, NET_TCP_SYN, 65535, 1460, NULL, 0);
	T("tcp syn with mss parses back", net_parse(&p, f, n) == 0 && p.proto == NET_IP_TCP &&
	  p.seq == 1000 && p.tcp_flags == NET_TCP_SYN && p.mss == 1460 && p.datalen == 0);
	f[14 + 20 + 12] = 0xf0;                 /* header length 60 > segment */
	T("tcp header length checked", net_parse(&p, f, n) < 0);
	n = net_build_arp(f, sizeof(f), NET_ARP_REQUEST, net_broadcast_mac, e.src_mac, e.saddr, mac, e.daddr);
	T("arp round trip", net_parse(&p, f, n) == 0 && p.arp.op == NET_ARP_REQUEST &&
	  p.arp.spa == e.saddr && p.arp.tpa == e.daddr);
}

/* DHCP: a message round trip, option overload, lies refused, and the
 * server's DORA, exhaustion, NAK, RELEASE and DECLINE. */
static void dhcp_tests(void)
{
	uint8_t b[DHCP_MAX_MSG];
	struct dhcp_msg m, r, out;

	memset(&m, 0, sizeof(m));
	m.op = 1;
	m.type = DHCPREQUEST;
	m.xid = 0xabcdef01;
	memcpy(m.chaddr, "\x02\0\0\0\0\x01", 6);
	m.reqip = 0x0a00020f;
	m.have = DH_REQIP | DH_HOSTNAME;
	strcpy(m.hostname, "box");
	size_t n = dhcp_build(b, &m);
	T("dhcp build/parse", n == 300 && dhcp_parse(&r, b, n) == 0 && r.type == DHCPREQUEST &&
	  r.xid == m.xid && r.reqip == m.reqip && !strcmp(r.hostname, "box"));
	T("dhcp short message", dhcp_parse(&r, b, 239) < 0 && strstr(k_errmsg(), "too short"));
	b[243 + 0] = 12, b[243 + 1] = 200;      /* an option running past the end */
	T("dhcp option past the end", dhcp_parse(&r, b, 300) < 0 && strstr(k_errmsg(), "past the end"));
	n = dhcp_build(b, &m);
	/* Overload: the host name lives in 'file'. */
	memcpy(b + 240, "\x35\x01\x01\x34\x01\x01\xff", 7);
	memset(b + 108, 0, 128);
	memcpy(b + 108, "\x0c\x04" "file" "\xff", 7);      /* split: \x04f would be one escape */
	T("dhcp option overload (file)", dhcp_parse(&r, b, n) == 0 && r.type == DHCPDISCOVER &&
	  !strcmp(r.hostname, "file"));
	b[109] = 200;
	T("dhcp overloaded option past 'file'", dhcp_parse(&r, b, n) < 0);
	b[109] = 4;
	b[246 - 1] = 7;                         /* overload value 7 */
	T("dhcp bad overload value", dhcp_parse(&r, b, n) < 0 && strstr(k_errmsg(), "option 52"));

	struct dhcps s;
	struct dhcps_conf c;
	memset(&c, 0, sizeof(c));
	c.server_ip = 0x0a000202;
	c.mask = 0xffffff00;
	c.pool_first = 0x0a00020f;
	c.pool_last = 0x0a000210;               /* two addresses */
	c.lease_secs = 600;
	strcpy(c.hostname_prefix, "g");
	T("server config ok", dhcps_init(&s, &c) == 0);
	struct dhcps bad;
	c.pool_last = 0x0a000302;
	T("pool outside the subnet refused", dhcps_init(&bad, &c) < 0);
	c.pool_last = 0x0a000210;

	struct dhcp_msg in;
	memset(&in, 0, sizeof(in));
	in.op = 1;
	in.type = DHCPDISCOVER;
	for (int i = 0; i < 3; i++) {
		in.chaddr[0] = 2, in.chaddr[5] = (uint8_t)(i + 1);
		in.type = DHCPDISCOVER;
		int got = dhcps_handle(&s, &in, &out, 1000);
		if (i < 2) {
			T("offer", got == 1 && out.type == DHCPOFFER && out.yiaddr == 0x0a00020f + (uint32_t)i &&
			  !strcmp(out.hostname, i ? "g16" : "g15"));
			in.type = DHCPREQUEST;
			in.reqip = out.yiaddr;
			in.serverid = c.server_ip;
			in.have = DH_REQIP | DH_SERVERID;
			T("ack", dhcps_handle(&s, &in, &out, 1001) == 1 && out.type == DHCPACK &&
			  out.lease == 600 && out.t1 == 300);
			in.have = 0;
		} else {
			T("pool exhausted: no offer", got == 0);
		}
	}
	in.type = DHCPREQUEST;                  /* INIT-REBOOT for a taken address */
	in.reqip = 0x0a00020f;
	in.have = DH_REQIP;
	T("taken address: NAK", dhcps_handle(&s, &in, &out, 1002) == 1 && out.type == DHCPNAK);
	in.chaddr[5] = 1;
	in.type = DHCPRELEASE;
	in.ciaddr = 0x0a00020f;
	in.have = 0;
	dhcps_handle(&s, &in, &out, 1003);
	in.chaddr[5] = 3;
	in.type = DHCPDISCOVER;
	in.ciaddr = 0;
	T("released address offered to the next", dhcps_handle(&s, &in, &out, 1004) == 1 &&
	  out.yiaddr == 0x0a00020f);
	in.chaddr[5] = 2;
	in.type = DHCPDECLINE;
	in.reqip = 0x0a000210;
	in.have = DH_REQIP;
	dhcps_handle(&s, &in, &out, 1005);
	in.type = DHCPDISCOVER;
	in.have = 0;
	/* .15 is on offer to the third client, .16 declined: nothing is free. */
	T("declined address kept out of the pool", dhcps_handle(&s, &in, &out, 1006) == 0);
	dhcps_free(&s);

	/* Expiry: a pool of one, A's lease of 600 s taken at 1000. */
	c.pool_last = c.pool_first;
	dhcps_init(&s, &c);
	memset(&in, 0, sizeof(in));
	in.op = 1;
	in.chaddr[0] = 2, in.chaddr[5] = 0xa;
	in.type = DHCPREQUEST;                  /* INIT-REBOOT straight to a lease */
	in.reqip = c.pool_first;
	in.have = DH_REQIP;
	T("init-reboot binds a free address", dhcps_handle(&s, &in, &out, 1000) == 1 && out.type == DHCPACK);
	in.chaddr[5] = 0xb;
	in.type = DHCPDISCOVER;
	in.have = 0;
	T("held until it expires", dhcps_handle(&s, &in, &out, 1599) == 0);
	T("an expired lease is reused", dhcps_handle(&s, &in, &out, 1601) == 1 && out.yiaddr == c.pool_first);
	dhcps_free(&s);

	/* The switch's request parser. */
	uint8_t req[SW_REQ_VDE];
	struct sw_request sr;
	struct sockaddr_un a;
	memset(&a, 0, sizeof(a));
	a.sun_family = AF_UNIX;
	sw_build_request(req, SW_REQ_NEW_CONTROL, &a);
	T("switch request: kernel size", sw_parse_request(&sr, req, SW_REQ_KERNEL) == 1);
	T("switch request: not yet complete", sw_parse_request(&sr, req, 100) == 0);
	req[0] ^= 1;
	T("switch request: bad magic refused at 4 bytes", sw_parse_request(&sr, req, 4) < 0);
}

/* ---- virtio-net: a TCP segment offload cut into frames */

struct segs { int n, bad, fin_early; uint32_t seq[8]; size_t len[8]; };

static void seg_emit(void *ctx, const uint8_t *f, size_t n)
{
	struct segs *s = ctx;
	if (tcp_frame_ok(f, n) != 1)
		s->bad++;
	if (s->n < 8) {
		s->seq[s->n] = k_be32(f + 14 + 20 + 4);
		s->len[s->n] = n;
	}
	s->n++;
	if (f[14 + 20 + 13] & 1)
		s->fin_early = s->n;            /* which one carried FIN */
}

/* Segments cut by vnet_plain, kept whole for vnet_merge to put together. */
struct cuts { int n; size_t len[16]; uint8_t f[16][1600]; };

static void cut_emit(void *ctx, const uint8_t *f, size_t n)
{
	struct cuts *c = ctx;
	if (c->n < 16 && n <= sizeof(c->f[0])) {
		memcpy(c->f[c->n], f, n);
		c->len[c->n] = n;
	}
	c->n++;
}

/* A TCP segment offload of LEN bytes of data (IPv6 when V6), PSH and
 * ACK, a timestamp option, into F; its length returned. */
static size_t gso_frame(uint8_t *f, int v6, size_t len)
{
	size_t l4 = v6 ? 54 : 34, n = l4 + 32 + len;
	memset(f, 0, n);
	memcpy(f, v6 ? "\x52\0\0\0\0\1\x52\0\0\0\0\2\x86\xdd" : "\x52\0\0\0\0\1\x52\0\0\0\0\2\x08\x00", 14);
	uint8_t *ip = f + 14, *tcp = f + l4;
	if (v6) {
		ip[0] = 0x60;
		k_put_be16(ip + 4, (uint16_t)(n - l4));
		ip[6] = 6;
		ip[7] = 64;
		ip[8] = 0xfd;
		ip[23] = 1;
		ip[24] = 0xfd;
		ip[39] = 2;
	} else {
		ip[0] = 0x45;
		k_put_be16(ip + 2, (uint16_t)(n - 14));
		k_put_be16(ip + 4, 777);
		ip[6] = 0x40;                   /* DF */
		ip[8] = 64;
		ip[9] = 6;
		k_put_be32(ip + 12, 0x0a00020f);
		k_put_be32(ip + 16, 0x0a000210);
	}
	k_put_be16(tcp, 40000);
	k_put_be16(tcp + 2, 5001);
	k_put_be32(tcp + 4, 0xfffff000);        /* the sequence wraps inside */
	k_put_be32(tcp + 8, 4242);
	tcp[12] = 8 << 4;
	tcp[13] = 0x18;                         /* PSH, ACK */
	k_put_be16(tcp + 14, 512);
	memcpy(tcp + 20, "\x01\x01\x08\x0a\0\0\0\x07\0\0\0\x09", 12);  /* NOP NOP timestamps */
	for (size_t i = 0; i < len; i++)
		f[l4 + 32 + i] = (uint8_t)(i * 13 + (i >> 8));
	return n;
}

static void test_vnet_merge(void)
{
	static uint8_t f[65600], scratch[VNET_FRAME_MAX];
	static struct cuts c, again;
	static struct vnet_merge m;
	struct vnet_hdr h, got;

	for (int v6 = 0; v6 <= 1; v6++) {
		const char *fam = v6 ? "IPv6" : "IPv4";
		size_t l4 = v6 ? 54 : 34, n = gso_frame(f, v6, 10000);
		h = (struct vnet_hdr){ VNET_F_NEEDS_CSUM, v6 ? VNET_GSO_TCPV6 : VNET_GSO_TCPV4, 0, 1400,
				       (uint16_t)l4, 16, 0 };
		c.n = 0;
		vnet_plain(&h, f, n, scratch, 1500, cut_emit, &c);
		int joined = 1;
		m.n = 0;
		for (int i = 0; i < c.n; i++)
			joined &= vnet_merge_add(&m, c.f[i], c.len[i]) == 1;
		T2("vnet merge (%s): the 8 segments of a cut offload join one run", fam, c.n == 8 && joined && m.segs == 8);
		T2("vnet merge (%s): nothing joins after PSH", fam, vnet_merge_add(&m, c.f[1], c.len[1]) == 0);
		size_t k = vnet_merge_take(&m, &got);
		T2("vnet merge (%s): one offload of the whole data, checksum left to the port", fam,
		   k == n && got.gso_type == h.gso_type && got.gso_size == 1400 && got.flags == VNET_F_NEEDS_CSUM &&
		   got.csum_start == l4 && got.csum_offset == 16 && vnet_check(&got, m.frame, k) == 0 && m.n == 0);
		T2("vnet merge (%s): same headers, data and PSH as the offload", fam,
		   !memcmp(m.frame, f, 14) && !memcmp(m.frame + l4, f + l4, 16) && m.frame[l4 + 13] == 0x18 &&
		   !memcmp(m.frame + l4 + 18, f + l4 + 18, n - l4 - 18));
		again.n = 0;
		vnet_plain(&got, m.frame, k, scratch, 1500, cut_emit, &again);
		int same = again.n == c.n;
		for (int i = 0; same && i < c.n; i++)
			same = again.len[i] == c.len[i] && !memcmp(again.f[i], c.f[i], c.len[i]);
		T2("vnet merge (%s): cut again, the same segments byte for byte", fam, same);

		T2("vnet merge (%s): a gap in the sequence ends the run", fam,
		   vnet_merge_add(&m, c.f[0], c.len[0]) == 1 && vnet_merge_add(&m, c.f[2], c.len[2]) == 0 &&
		   vnet_merge_take(&m, &got) == c.len[0] && vnet_is_plain(&got) && !memcmp(m.frame, c.f[0], c.len[0]));
		c.f[1][c.len[1] - 1] ^= 1;
		T2("vnet merge (%s): a damaged segment joins nothing", fam, vnet_merge_add(&m, c.f[1], c.len[1]) == -1);
		c.f[1][c.len[1] - 1] ^= 1;
		memcpy(scratch, c.f[1], c.len[1]);
		scratch[l4 + 1] ^= 1;                   /* another source port */
		T2("vnet merge (%s): another flow's segment does not join", fam,
		   vnet_merge_add(&m, c.f[0], c.len[0]) == 1 && vnet_merge_add(&m, scratch, c.len[1]) != 1);
		m.n = 0;
		memcpy(scratch, c.f[0], c.len[0]);
		scratch[l4 + 13] = 0x12;                /* SYN, ACK */
		T2("vnet merge (%s): a SYN joins nothing", fam, vnet_merge_add(&m, scratch, c.len[0]) == -1);
		T2("vnet merge (%s): an acknowledgement without data joins nothing", fam,
		   vnet_merge_add(&m, c.f[0], l4 + 32) == -1);
		T2("vnet merge (%s): a frame shorter than its IP length joins nothing", fam,
		   vnet_merge_add(&m, c.f[0], c.len[0] - 1) == -1 && m.n == 0);
	}
}

static void test_vnet(void)
{
	static uint8_t f[14 + 20 + 20 + 4000], scratch[VNET_FRAME_MAX];
	memset(f, 0, sizeof(f));
	memcpy(f, "\x52\0\0\0\0\1\x52\0\0\0\0\2\x08\x00", 14);
	uint8_t *ip = f + 14, *tcp = ip + 20;
	ip[0] = 0x45;
	ip[8] = 64;
	ip[9] = 6;
	k_put_be32(ip + 12, 0x0a00020f);
	k_put_be32(ip + 16, 0x0a000210);
	k_put_be16(tcp, 1234);
	k_put_be16(tcp + 2, 80);
	k_put_be32(tcp + 4, 1000);
	tcp[12] = 5 << 4;
	tcp[13] = 0x19;                         /* FIN, PSH, ACK */
	for (size_t i = 0; i < 4000; i++)
		f[54 + i] = (uint8_t)(i * 7);
	struct vnet_hdr h = { VNET_F_NEEDS_CSUM, VNET_GSO_TCPV4, 54, 1448, 34, 16, 0 };
	T("vnet: a TCPv4 offload passes the checks", vnet_check(&h, f, sizeof(f)) == 0);
	struct segs s = { 0 };
	int k = vnet_plain(&h, f, sizeof(f), scratch, 1514, seg_emit, &s);
	T("vnet: 4000 bytes at 1448 a segment: 3 frames", k == 3 && s.n == 3);
	T("vnet: every segment's IP and TCP checksums right", s.bad == 0);
	T("vnet: sequence numbers follow the data", s.seq[0] == 1000 && s.seq[1] == 2448 && s.seq[2] == 3896);
	T("vnet: frame sizes", s.len[0] == 1502 && s.len[1] == 1502 && s.len[2] == 54 + 4000 - 2 * 1448);
	T("vnet: FIN only on the last", s.fin_early == 3);
	T("vnet: segments larger than the port takes refused",
	  vnet_plain(&h, f, sizeof(f), scratch, 1000, seg_emit, &s) < 0);
	h.gso_size = 20;
	T("vnet: a segment size under the minimum refused", vnet_check(&h, f, sizeof(f)) < 0);
	h.gso_size = 1448;
	h.gso_type = VNET_GSO_TCPV6;
	T("vnet: a TCPv6 offload of an IPv4 packet refused", vnet_check(&h, f, sizeof(f)) < 0);
	h.gso_type = 3;
	T("vnet: UDP fragmentation offload (not offered) refused", vnet_check(&h, f, sizeof(f)) < 0);
	struct vnet_hdr c = { VNET_F_NEEDS_CSUM, VNET_GSO_NONE, 0, 0, 34, 16, 0 };
	T("vnet: a checksum place past the frame refused", vnet_check(&c, f, 34 + 17) < 0);
	/* The switch checks the headers in a copy of the frame's start. */
	h.gso_type = VNET_GSO_TCPV4;
	T("vnet: the headers alone pass as the whole frame does", vnet_check_head(&h, f, VNET_HEAD_MAX, sizeof(f)) == 0);
	T("vnet: ... and a checksum place past the whole frame is refused from them",
	  vnet_check_head(&c, f, VNET_HEAD_MAX, 34 + 17) < 0);
	T("vnet: fewer bytes than the longest headers are not enough to judge",
	  vnet_check_head(&h, f, VNET_HEAD_MAX - 1, sizeof(f)) < 0);
	tcp[12] = 15 << 4;                      /* a TCP header longer than the frame's start */
	T("vnet: a TCP header past a short frame refused from the headers alone",
	  vnet_check_head(&h, f, 60, 60) < 0 && vnet_check(&h, f, 60) < 0);
	tcp[12] = 5 << 4;
	/* Checksum only: one frame, its TCP checksum completed from the
	 * pseudo-header sum the guest left in the field. */
	size_t n = 54 + 1000;
	k_put_be16(ip + 2, (uint16_t)(n - 14));
	k_put_be16(ip + 10, 0);
	k_put_be16(ip + 10, net_sum_fold(net_sum(0, ip, 20)));
	uint8_t ph[12];
	memcpy(ph, ip + 12, 8);
	ph[8] = 0;
	ph[9] = 6;
	k_put_be16(ph + 10, (uint16_t)(n - 34));
	k_put_be16(tcp + 16, (uint16_t)~net_sum_fold(net_sum(0, ph, 12)));
	struct segs one = { 0 };
	T("vnet: checksum offload: one frame", vnet_plain(&c, f, n, scratch, 1514, seg_emit, &one) == 1 &&
	  one.n == 1 && one.bad == 0);
}

/* ---- the escapes on an interactive guest's terminal */

static int esc_run(struct boot_escape *e, const char *in, char *out)
{
	size_t k;
	int a = boot_escape(e, (const uint8_t *)in, strlen(in), (uint8_t *)out, &k);
	out[k] = 0;
	return a;
}

static void test_escape(void)
{
	struct boot_escape e = { .line_start = 1 };
	char out[64];
	T("escape: ~. at the start halts", esc_run(&e, "~.", out) == BOOT_ESC_HALT && !out[0]);
	e = (struct boot_escape){ .line_start = 1 };
	T("escape: a ~ inside a line goes on", esc_run(&e, "ls ~/x\r", out) == 0 && !strcmp(out, "ls ~/x\r"));
	T("escape: ~~ after Enter is one ~", esc_run(&e, "~~", out) == 0 && !strcmp(out, "~"));
	T("escape: ~. not after Enter goes on", esc_run(&e, "~.", out) == 0 && !strcmp(out, "~."));
	e = (struct boot_escape){ .line_start = 1 };
	T("escape: ~ and another byte both go on", esc_run(&e, "~a", out) == 0 && !strcmp(out, "~a"));
	e = (struct boot_escape){ .line_start = 1 };
	T("escape: ~ held across reads", esc_run(&e, "\r~", out) == 0 && !strcmp(out, "\r") &&
	  esc_run(&e, ".", out) == BOOT_ESC_HALT);
	e = (struct boot_escape){ .line_start = 1 };
	T("escape: a cursor report after Enter keeps the line start",
	  esc_run(&e, "\r\033[11;5R~.", out) == BOOT_ESC_HALT && !strcmp(out, "\r\033[11;5R"));
	e = (struct boot_escape){ .line_start = 1 };
	T("escape: ~? shows the help", esc_run(&e, "~?", out) == BOOT_ESC_HELP && !out[0]);
}

/* A diff of files: paths, and entries that read back as written. */
static void test_fdiff(void)
{
	T("fdiff: a plain path", fdiff_path_ok("etc/passwd", 10));
	T("fdiff: no leading /", !fdiff_path_ok("/etc", 4));
	T("fdiff: no trailing /", !fdiff_path_ok("etc/", 4));
	T("fdiff: no //", !fdiff_path_ok("etc//x", 6));
	T("fdiff: no ..", !fdiff_path_ok("a/../b", 6) && !fdiff_path_ok("..", 2));
	T("fdiff: no .", !fdiff_path_ok("./a", 3));
	T("fdiff: ... and .x are names", fdiff_path_ok(".../.x", 6));
	T("fdiff: no NUL", !fdiff_path_ok("a\0b", 3));
	T("fdiff: no empty path", !fdiff_path_ok("", 0));

	struct fdent *e = calloc(1, sizeof(*e)), *r = calloc(1, sizeof(*r));
	uint8_t *buf = malloc(1 << 20);
	size_t n = 0;
	e->type = 'd';
	e->mode = 0755;
	e->mtime = -5;
	strcpy(e->path, "etc");
	fdent_add_xattr(e, "trusted.overlay.opaque", "y", 1);
	n += fdent_format(e, buf + n);
	memset(e, 0, sizeof(*e));
	e->type = 'f';
	e->mode = 04755;
	e->uid = 1000;
	e->mtime_ns = 999999999;
	e->datalen = 3;
	strcpy(e->path, "etc/ping");
	fdent_add_xattr(e, "security.capability", "\1\0\0\2", 4);
	T("fdiff: entry size", fdent_size(e) == FDIFF_HEAD + 8 + 5 + 19 + 4);
	n += fdent_format(e, buf + n);
	memcpy(buf + n, "abc", 3);
	n += 3;
	memset(e, 0, sizeof(*e));
	e->type = 'l';
	strcpy(e->path, "etc/l");
	strcpy(e->target, "/nowhere/../x");
	n += fdent_format(e, buf + n);
	e->type = 'w';
	strcpy(e->path, "etc/gone");
	n += fdent_format(e, buf + n);
	memset(buf + n, 0, FDIFF_HEAD);
	buf[n] = FDIFF_END;
	n += FDIFF_HEAD;
	uint64_t count = 0;
	T("fdiff: a stream reads back", fdiff_check_mem(buf, n, "t", &count) == 0 && count == 4);
	T("fdiff: cut short", fdiff_check_mem(buf, n - 1, "t", NULL) < 0);
	buf[n] = 0;
	T("fdiff: bytes after the end mark", fdiff_check_mem(buf, n + 1, "t", NULL) < 0);
	size_t first = FDIFF_HEAD + 3 + 5 + 22 + 1;
	buf[first + 48] = '.';
	buf[first + 49] = '.';
	buf[first + 50] = '/';
	T("fdiff: a .. path is refused", fdiff_check_mem(buf, n, "t", NULL) < 0 && strstr(k_errmsg(), "bad path"));
	buf[first + 48] = 'e';
	buf[first + 49] = 't';
	buf[first + 50] = 'c';
	T("fdiff: ... and mended, it reads", fdiff_check_mem(buf, n, "t", NULL) == 0);
	buf[first + 47] = 4;           /* data length 4: the next entry starts a byte late */
	T("fdiff: a wrong data length is caught", fdiff_check_mem(buf, n, "t", NULL) < 0);
	buf[first + 47] = 3;
	buf[0] = 'x';
	T("fdiff: an unknown type", fdiff_check_mem(buf, n, "t", NULL) < 0 && strstr(k_errmsg(), "unknown type"));
	free(e);
	free(r);
	free(buf);
}

static void test_http(void)
{
	struct http_resp r;
	const char *h206 = "HTTP/1.1 206 Partial Content\r\nContent-Length: 10\r\ncontent-range:  bytes 100-109/5000 \r\n\r\nBODY";
	T("http: a 206 head, its length consumed", http_parse_head(&r, h206, strlen(h206)) == (int)strlen(h206) - 4);
	T("http: its range and length", r.status == 206 && r.has_range && r.first == 100 && r.last == 109 &&
	  r.total == 5000 && r.has_length && r.length == 10 && r.keep_alive);
	T("http: a head cut short asks for more", http_parse_head(&r, h206, 40) == 0);
	const char *h10 = "HTTP/1.0 200 OK\nTransfer-Encoding: chunked\nContent-Length: 5\n\n";
	T("http: 1.0, bare LF, chunked wins over a length", http_parse_head(&r, h10, strlen(h10)) > 0 &&
	  !r.keep_alive && r.chunked && !r.has_length);
	const char *bad[] = {
		"HTTP/1.1 206 X\r\nContent-Range: bytes 9-5/100\r\n\r\n",
		"HTTP/1.1 206 X\r\nContent-Range: bytes 0-100/100\r\n\r\n",
		"HTTP/1.1 200 X\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\n",
		"HTTP/1.1 200 X\r\nContent-Length: -5\r\n\r\n",
		"HTTP/1.1 200 X\r\nTransfer-Encoding: gzip, chunked\r\n\r\n",
		"HTTP/1.1 200 X\r\n folded\r\n\r\n",
		"HTTP/2 200\r\n\r\n",
		"HTTP/1.1 99 X\r\n\r\n",
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		char name[64];
		snprintf(name, sizeof(name), "http: malformed head %zu refused", i);
		T(name, http_parse_head(&r, bad[i], strlen(bad[i])) < 0);
	}
	uint8_t body[] = "4\r\nWiki\r\n5;x=y\r\npedia\r\nE\r\n in\r\n\r\nchunks.\r\n0\r\nX-T: 1\r\n\r\nNEXT";
	struct http_chunked c = { 0 };
	size_t n = sizeof(body) - 1, used;
	T("http: chunked body decoded", http_chunked_feed(&c, body, &n, &used) == 0 && c.done &&
	  n == 23 && !memcmp(body, "Wikipedia in\r\n\r\nchunks.", 23) && used == sizeof(body) - 1 - 4);
	uint8_t lie[] = "3\r\nabcdef\r\n";
	struct http_chunked c2 = { 0 };
	n = sizeof(lie) - 1;
	T("http: a chunk longer than its size refused", http_chunked_feed(&c2, lie, &n, &used) < 0);
	struct url u;
	T("url: host, port, path, fragment", url_parse(&u, "http://Mirror.example:8080/live/d.iso#sha256=ab") == 0 &&
	  !strcmp(u.host, "Mirror.example") && !strcmp(u.port, "8080") && !strcmp(u.path, "/live/d.iso") &&
	  !strcmp(u.frag, "sha256=ab"));
	T("url: IPv6, default port, root path", url_parse(&u, "http://[::1]") == 0 && !strcmp(u.host, "::1") &&
	  !strcmp(u.port, "80") && !strcmp(u.path, "/"));
	T("url: https refused", url_parse(&u, "https://a/b") < 0);
	T("url: a password refused", url_parse(&u, "http://u:p@a/b") < 0);
	T("url: port 0 refused", url_parse(&u, "http://a:0/b") < 0);
	T("url: a space refused", url_parse(&u, "http://a/b c") < 0);
	/* An index round trip, and its checks. */
	struct kidx x = { .chunk = 4096, .size = 10000, .nchunks = 3 };
	x.hash = xcalloc(3, 32);
	x.hash[40] = 7;
	x.profile = xmalloc(8);
	x.profile[0] = 2;
	x.profile[1] = 0;
	x.nprofile = 2;
	size_t len;
	uint8_t *ib = kidx_serialize(&x, &len);
	struct kidx y;
	T("index: round trip", kidx_parse(&y, ib, len, "t") == 0 && y.nchunks == 3 && y.size == 10000 &&
	  y.nprofile == 2 && y.profile[0] == 2 && y.hash[40] == 7 && !memcmp(x.self, y.self, 32));
	T("index: the last chunk's length", kidx_chunk_len(&y, 2) == 10000 - 8192);
	kidx_free(&y);
	ib[24] = 4;             /* four chunks for 10000 bytes */
	T("index: a chunk count that does not fit the size refused", kidx_parse(&y, ib, len, "t") < 0);
	ib[24] = 3;
	k_put_le32(ib + 64 + 96, 3);    /* a profile entry past the chunks */
	T("index: a profile entry past the chunks refused", kidx_parse(&y, ib, len, "t") < 0);
	free(ib);
	kidx_free(&x);

	/* A recorded profile, as boot --record-profile writes it. */
	uint32_t *pl, pn;
	const char *good = "7\n0\n3\n";
	T("profile text: read in order", kidx_profile_text((const uint8_t *)good, strlen(good), 8, "p", &pl, &pn) == 0 &&
	  pn == 3 && pl[0] == 7 && pl[1] == 0 && pl[2] == 3);
	free(pl);
	T("profile text: empty is no profile", kidx_profile_text((const uint8_t *)"", 0, 8, "p", &pl, &pn) == 0 &&
	  pn == 0 && !pl);
	static const char *const badp[] = { "8\n", "1\n1\n", "1", "x\n", "\n", "1 \n", "-1\n",
					   "99999999999\n", "2\n3", "4294967296\n" };
	int refused = 0;
	for (size_t i = 0; i < sizeof(badp) / sizeof(badp[0]); i++)
		refused += kidx_profile_text((const uint8_t *)badp[i], strlen(badp[i]), 8, "p", &pl, &pn) < 0 && !pl;
	T("profile text: past the chunks, twice, no newline, not a number: refused",
	  refused == (int)(sizeof(badp) / sizeof(badp[0])));
	T("profile text: the error names the file and line",
	  kidx_profile_text((const uint8_t *)"1\n9\n", 4, 8, "rec", &pl, &pn) < 0 &&
	  !strcmp(k_errmsg(), "rec: line 2: past the image's chunks"));
}

static void test_vxlan(void)
{
	struct vxlan_addr a, b;
	char buf[64];
	uint8_t d[VXLAN_HLEN + 60];
	size_t flen = 0;
	int r = -1;

	T("vxlan: ADDR takes the default port",
	  vxlan_parse_addr("10.0.0.1", VXLAN_PORT, &a) == 0 && !strcmp(vxlan_fmt_addr(&a, buf), "10.0.0.1:4789"));
	T("vxlan: ADDR:PORT", vxlan_parse_addr("10.0.0.1:8472", VXLAN_PORT, &a) == 0 &&
				      !strcmp(vxlan_fmt_addr(&a, buf), "10.0.0.1:8472"));
	T("vxlan: [ADDR6]:PORT", vxlan_parse_addr("[fd00::1]:5000", VXLAN_PORT, &a) == 0 &&
					 !strcmp(vxlan_fmt_addr(&a, buf), "[fd00::1]:5000"));
	T("vxlan: a bare IPv6 address", vxlan_parse_addr("fd00::1", VXLAN_PORT, &a) == 0 &&
						!strcmp(vxlan_fmt_addr(&a, buf), "[fd00::1]:4789"));
	T("vxlan: port 0 refused", vxlan_parse_addr("10.0.0.1:0", VXLAN_PORT, &a) < 0);
	T("vxlan: port 65536 refused", vxlan_parse_addr("10.0.0.1:65536", VXLAN_PORT, &a) < 0);
	T("vxlan: a name refused (nothing is looked up)", vxlan_parse_addr("host.example", VXLAN_PORT, &a) < 0);
	T("vxlan: an unclosed bracket refused", vxlan_parse_addr("[fd00::1", VXLAN_PORT, &a) < 0);
	vxlan_parse_addr("10.0.0.1:1", VXLAN_PORT, &a);
	vxlan_parse_addr("[::ffff:10.0.0.1]:2", VXLAN_PORT, &b);
	T("vxlan: an IPv4 host and its v4-mapped form are one host, whatever the ports", vxlan_same_host(&a, &b));
	vxlan_parse_addr("10.0.0.2", VXLAN_PORT, &b);
	T("vxlan: two IPv4 hosts differ", !vxlan_same_host(&a, &b));

	struct vxlan_conf c;
	memset(&c, 0, sizeof(c));
	c.vni = 42;
	vxlan_parse_addr("10.0.0.1", VXLAN_PORT, &c.remote[c.nremotes++]);
	T("vxlan: MTU 1450 over IPv4", vxlan_mtu(&c) == 1450);
	vxlan_parse_addr("fd00::2", VXLAN_PORT, &c.remote[c.nremotes++]);
	T("vxlan: MTU 1430 with an IPv6 remote", vxlan_mtu(&c) == 1430);
	c.mtu = 9000;
	T("vxlan: -vxlan-mtu wins", vxlan_mtu(&c) == 9000);

	memset(d, 0, sizeof(d));
	vxlan_header(d, 42);
	T("vxlan: the header (I flag, VNI in bytes 4-6)", d[0] == 0x08 && d[4] == 0 && d[5] == 0 && d[6] == 42 && d[7] == 0);
	memcpy(d + VXLAN_HLEN + 6, "\x02\0\0\0\0\x01", 6);
	T("vxlan: a good datagram", vxlan_check(42, d, sizeof(d), 1514, &flen) == VX_OK && flen == 60);
	T("vxlan: from a remote, which one", vxlan_receive(&c, &a, d, sizeof(d), 1514, &r, &flen) == VX_OK && r == 0);
	T("vxlan: from a stranger", vxlan_receive(&c, &b, d, sizeof(d), 1514, &r, &flen) == VX_STRANGER);
	T("vxlan: shorter than header and Ethernet header", vxlan_check(42, d, VXLAN_HLEN + 13, 1514, &flen) == VX_SHORT);
	T("vxlan: another VNI", vxlan_check(43, d, sizeof(d), 1514, &flen) == VX_VNI);
	T("vxlan: over the frame limit", vxlan_check(42, d, sizeof(d), 59, &flen) == VX_SIZE);
	d[0] = 0x08 | 0x80;
	T("vxlan: reserved flag bits ignored (RFC 7348)", vxlan_check(42, d, sizeof(d), 1514, &flen) == VX_OK);
	d[0] = 0;
	T("vxlan: no I flag", vxlan_check(42, d, sizeof(d), 1514, &flen) == VX_FLAGS);
	d[0] = 0x08;
	d[VXLAN_HLEN + 6] = 0x01;
	T("vxlan: a group source MAC", vxlan_check(42, d, sizeof(d), 1514, &flen) == VX_SOURCE);
}

static void test_sftp_url(void)
{
	struct sftp_target t;

	T("sftp: user, host, port, absolute path",
	  sftp_parse_url("ssh://me@srv.example:2222/data/home", &t) == 0 && !strcmp(t.user, "me") &&
		  !strcmp(t.host, "srv.example") && t.port == 2222 && !strcmp(t.path, "/data/home"));
	T("sftp: a path below the login's home", sftp_parse_url("ssh://srv/~/lab", &t) == 0 && !strcmp(t.path, "lab") &&
							  !t.user[0] && !t.port);
	T("sftp: the login's home itself", sftp_parse_url("ssh://srv/~", &t) == 0 && !strcmp(t.path, "."));
	T("sftp: [IPv6]:port", sftp_parse_url("ssh://[::1]:22/x", &t) == 0 && !strcmp(t.host, "::1") && t.port == 22);
	T("sftp: no path refused", sftp_parse_url("ssh://srv", &t) < 0);
	T("sftp: a host that is an option refused", sftp_parse_url("ssh://-oProxyCommand=x/y", &t) < 0);
	T("sftp: a user that is an option refused", sftp_parse_url("ssh://-l@srv/y", &t) < 0);
	T("sftp: a blank in the host refused", sftp_parse_url("ssh://a b/y", &t) < 0);
	T("sftp: port 0 and 65536 refused",
	  sftp_parse_url("ssh://srv:0/y", &t) < 0 && sftp_parse_url("ssh://srv:65536/y", &t) < 0);
	T("sftp: not ssh://", sftp_parse_url("sftp://srv/y", &t) < 0);

	/* Replies read past their end are caught, not read. */
	uint8_t b[] = { 0, 0, 0, 9, 'a' };
	struct sftp_in in = { b, sizeof(b), 0 };
	size_t n;
	T("sftp: a string longer than its reply is refused", !si_bytes(&in, &n) && in.bad);
	uint8_t at[] = { 0x80, 0, 0, 0, 0xff, 0xff, 0xff, 0xff };
	struct sftp_attr a;
	in = (struct sftp_in){ at, sizeof(at), 0 };
	si_attr(&in, &a);
	T("sftp: attributes claiming 4G extensions end at the reply's end", in.bad);
}

/* A front end that goes away: at its end of file, and when it resets the
 * connection (closed with our reply unread, as a kernel that exits does),
 * vu_serve_one() says "gone" (0) and sets no error, so umlk prints nothing
 * at a guest's power-off; a message cut short is still an error. */
/* vu_iov_to_iov (the switch's copy from one guest's buffers into
 * another's) against the same bytes through a flat buffer, over vectors
 * cut at every size from 1 to 7 bytes, empty ones among them. */
static void test_vu_iov(void)
{
	static uint8_t src[256], dst[256], want[256], flat[256];
	struct iovec sv[512], dv[512];
	int bad = 0, short_copies = 0;

	for (size_t i = 0; i < sizeof(src); i++)
		src[i] = (uint8_t)(i * 13 + 1);
	for (unsigned cs = 1; cs <= 7; cs++) {
		for (unsigned cd = 1; cd <= 7; cd++) {
			unsigned ns = 0, nd = 0;
			for (size_t o = 0; o < sizeof(src); o += cs) {
				if (ns % 5 == 2)
					sv[ns++] = (struct iovec){ src + o, 0 };
				sv[ns++] = (struct iovec){ src + o, o + cs <= sizeof(src) ? cs : sizeof(src) - o };
			}
			for (size_t o = 0; o < sizeof(dst); o += cd) {
				if (nd % 3 == 1)
					dv[nd++] = (struct iovec){ dst + o, 0 };
				dv[nd++] = (struct iovec){ dst + o, o + cd <= sizeof(dst) ? cd : sizeof(dst) - o };
			}
			for (size_t sskip = 0; sskip < 20; sskip += 3) {
				for (size_t dskip = 0; dskip < 20; dskip += 4) {
					size_t len = 200 - sskip;
					memset(dst, 0xee, sizeof(dst));
					memset(want, 0xee, sizeof(want));
					vu_iov_to_buf(sv, ns, sskip, flat, len);
					vu_buf_to_iov(dv, nd, dskip, flat, len);
					memcpy(want, dst, sizeof(want));
					memset(dst, 0xee, sizeof(dst));
					size_t got = vu_iov_to_iov(dv, nd, dskip, sv, ns, sskip, len);
					bad += got != len || memcmp(dst, want, sizeof(dst)) != 0;
					/* more than either side holds: what fits */
					got = vu_iov_to_iov(dv, nd, dskip, sv, ns, sskip, 1000);
					short_copies += got == sizeof(src) - (sskip > dskip ? sskip : dskip);
				}
			}
		}
	}
	T("vhost: a copy between two chains' vectors equals one through a flat buffer", bad == 0);
	T("vhost: ... and stops where either chain ends", short_copies == 7 * 7 * 7 * 5);
}

static void test_vu_gone(void)
{
	static const struct vu_ops ops = { .features = 0, .nqueues = 1 };
	uint8_t msg[VU_HDR] = { 0 };
	struct vu_dev d;
	int sv[2];

	signal(SIGPIPE, SIG_IGN);               /* as umlk runs its servers */
	k_put_le32(msg, VU_GET_FEATURES);
	k_put_le32(msg + 4, 1);                 /* version 1 */
	if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) < 0) {
		T("socketpair", 0);
		return;
	}
	vu_init(&d, "t", &ops, NULL);
	d.sock = sv[0];
	T("vu: a request answered", write(sv[1], msg, sizeof(msg)) == (ssize_t)sizeof(msg) && vu_serve_one(&d) == 1);
	/* a second request, then the front end closes with both replies unread */
	k_seterr("none");
	T("vu: queued", write(sv[1], msg, sizeof(msg)) == (ssize_t)sizeof(msg));
	close(sv[1]);
	int r1 = vu_serve_one(&d);
	int r2 = r1 == 1 ? vu_serve_one(&d) : r1;
	T2("vu: a front end that reset the connection is gone, quietly (%d)", r2, r2 == 0 && !strcmp(k_errmsg(), "none"));
	close(sv[0]);
	d.sock = -1;
	vu_free(&d);

	if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) < 0)
		return;
	vu_init(&d, "t", &ops, NULL);
	d.sock = sv[0];
	T("vu: a message cut short", write(sv[1], msg, 5) == 5 && close(sv[1]) == 0 && vu_serve_one(&d) < 0 &&
	  strstr(k_errmsg(), "cut short"));
	close(sv[0]);
	d.sock = -1;
	vu_free(&d);
}

/* The protocol features umlk's devices offer include BACKEND_REQ, which
 * nothing sends on: without it, 6.12's UML front end takes the timer's
 * interrupt line for the device and the guest has no disk. */
static void test_vu_backend_req(void)
{
	static const struct vu_ops ops = { .features = 0, .nqueues = 1 };
	uint8_t reply[VU_HDR + 64];
	size_t rl = 0;
	struct vu_dev d;

	vu_init(&d, "t", &ops, NULL);
	vu_message(&d, VU_GET_PROTOCOL_FEATURES, 1, NULL, 0, NULL, 0, reply, &rl);
	T("vu: BACKEND_REQ offered (6.12's front end needs it)",
	  rl == VU_HDR + 8 && (k_le64(reply + VU_HDR) >> VU_PROTO_BACKEND_REQ & 1));
	vu_free(&d);
}

/* Run the jail's classic BPF filter F (N instructions) on one system
 * call, as the host's kernel would: its result, or 1 when the program
 * reads outside the call's data, jumps out of itself or ends without a
 * return (the kernel refuses such a filter). */
static uint32_t bpf_run(const struct jail_insn *f, int n, uint32_t arch, uint32_t nr, int *steps)
{
	uint32_t acc = 0;
	*steps = 0;
	for (long pc = 0; pc >= 0 && pc < n; pc++) {
		const struct jail_insn *i = &f[pc];
		++*steps;
		switch (i->code) {
		case JAIL_BPF_LD_W_ABS:
			if (i->k != JAIL_SD_NR && i->k != JAIL_SD_ARCH)
				return 1;
			acc = i->k == JAIL_SD_NR ? nr : arch;
			break;
		case JAIL_BPF_JA: pc += i->k; break;
		case JAIL_BPF_JEQ_K: pc += acc == i->k ? i->jt : i->jf; break;
		case JAIL_BPF_JGE_K: pc += acc >= i->k ? i->jt : i->jf; break;
		case JAIL_BPF_RET_K: return i->k;
		default: return 1;
		}
	}
	return 1;
}

/* The initramfs made in a memfd, the program copied in by the host's
 * kernel, is byte for byte the one built in memory: programs of each
 * length modulo 4 (the padding), this one, and the release file (whose
 * kernel payload stays out). */
static int same_initramfs(const char *init, const struct guest_conf *conf)
{
	uint8_t *img;
	size_t len;
	xinitramfs_build(init, conf, 0, &img, &len);
	int fd = xinitramfs_memfd(init, conf), same = 0;
	struct stat st;
	if (fstat(fd, &st) == 0 && (size_t)st.st_size == len) {
		uint8_t *got = xmalloc(len);
		same = pread(fd, got, len, 0) == (ssize_t)len && !memcmp(got, img, len);
		free(got);
	}
	close(fd);
	free(img);
	return same;
}

static void test_initramfs(void)
{
	struct guest_conf conf;
	char *argv[] = { "sh", "-c", "echo hi", NULL };
	memset(&conf, 0, sizeof(conf));
	conf.command = 1;
	conf.argv = argv;
	snprintf(conf.hostname, sizeof(conf.hostname), "unit");
	int ok = 0;
	for (int n = 1001; n <= 1004; n++) {
		char path[] = "/tmp/umlk-unit-initXXXXXX";
		int fd = mkstemp(path);
		uint8_t buf[1004];
		for (int i = 0; i < n; i++)
			buf[i] = (uint8_t)(i * 7 + n);
		if (fd >= 0 && full_write(fd, buf, (size_t)n) == n)
			ok += same_initramfs(path, &conf);
		if (fd >= 0)
			close(fd), unlink(path);
	}
	T2("initramfs in a memfd: the same bytes, programs of 1001 to 1004 bytes (%d of 4)", ok, ok == 4);
	T("initramfs in a memfd: the same bytes, this program, no configuration", same_initramfs(NULL, NULL));
	const char *top = getenv("TOP");
	char rel[4096];
	snprintf(rel, sizeof(rel), "%s/build/release/umlk", top ? top : ".");
	struct payload p;
	if (access(rel, R_OK) == 0 && payload_find(rel, &p) > 0)
		T("initramfs in a memfd: the same bytes, the release file without its payload",
		  same_initramfs(rel, &conf));
	else
		printf("SKIP: initramfs from the release file (no %s)\n", rel);
}

/* The jail's filter gives every x86-64 call its verdict from the list,
 * refuses i386 and x32 calls, and stays short on the way. */
static void test_jail_filter(void)
{
	struct jail_insn f[JAIL_FILTER_MAX];
	const uint32_t deny = JAIL_RET_ERRNO | 1;
	int n = jail_filter(f, JAIL_FILTER_MAX, deny), steps, most = 0, wrong = 0, allowed = 0;

	T("jail filter: it fits", n > 0 && n <= JAIL_FILTER_MAX);
	T("jail filter: too little room is said", jail_filter(f, 20, deny) < 0);
	n = jail_filter(f, JAIL_FILTER_MAX, deny);
	for (uint32_t nr = 0; nr < 1024; nr++) {
		uint32_t want = jail_allowed(nr) ? JAIL_RET_ALLOW : deny;
		allowed += want == JAIL_RET_ALLOW;
		wrong += bpf_run(f, n, JAIL_AUDIT_ARCH_X86_64, nr, &steps) != want;
		most = steps > most ? steps : most;
		wrong += bpf_run(f, n, JAIL_AUDIT_ARCH_X86_64, JAIL_X32_BIT | nr, &steps) != deny;
		wrong += bpf_run(f, n, 0x40000003u /* i386 */, nr, &steps) != (JAIL_RET_ERRNO | EPERM);
	}
	wrong += bpf_run(f, n, JAIL_AUDIT_ARCH_X86_64, 0xffffffffu, &steps) != deny;
	T2("jail filter: every call number's verdict is the list's (%d allowed)", allowed, !wrong && allowed > 100);
	T2("jail filter: at most 24 instructions a call (%d)", most, most <= 24);
}

int main(void)
{
	uint8_t b[8];
	uint64_t v;

	k_put_be64(b, 0x0102030405060708ULL);
	T("be64 round trip", k_be64(b) == 0x0102030405060708ULL && b[0] == 1 && b[7] == 8);
	k_put_be32(b, 0xdeadbeef);
	T("be32 round trip", k_be32(b) == 0xdeadbeef && b[0] == 0xde);
	T("parse 64K", k_parse_size("64K", &v) == 0 && v == 65536);
	T("parse 1MiB", k_parse_size("1MiB", &v) == 0 && v == 1 << 20);
	T("parse 512", k_parse_size("512", &v) == 0 && v == 512);
	T("parse 2GiB", k_parse_size("2GiB", &v) == 0 && v == 2ULL << 30);
	T("parse 3MB", k_parse_size("3MB", &v) == 0 && v == 3 << 20);
	T("parse 0", k_parse_size("0", &v) == 0 && v == 0);
	T("reject 1X", k_parse_size("1X", &v) < 0);
	T("reject 5i", k_parse_size("5i", &v) < 0);
	T("reject 5B (no unit before the B)", k_parse_size("5B", &v) < 0);
	T("reject 1.5G", k_parse_size("1.5G", &v) < 0);
	T("reject empty", k_parse_size("", &v) < 0);
	T("reject a leading space", k_parse_size(" 5", &v) < 0);
	T("reject +5", k_parse_size("+5", &v) < 0);
	T("reject 1Gx", k_parse_size("1Gx", &v) < 0);
	T("reject -1", k_parse_size("-1", &v) < 0);
	errno = ENOENT;
	k_seterr("a message ending in a colon:");
	T("k_seterr: a ':' at the end adds strerror", !strcmp(k_errmsg(), "a message ending in a colon: No such file or directory"));
	k_seterr("a %s:-free message", "colon");
	T("k_seterr: only at the end", !strcmp(k_errmsg(), "a colon:-free message"));
	k_put_le32(b, 0x11223344);
	T("le32 round trip", k_le32(b) == 0x11223344 && b[0] == 0x44);
	k_put_be16(b, 0xabcd);
	T("be16", k_be16(b) == 0xabcd && b[0] == 0xab);
	char h1[17], h2[17];
	k_random_hex(h1, 16);
	k_random_hex(h2, 16);
	T("random names differ", strlen(h1) == 16 && strcmp(h1, h2));
	T("reject overflow", k_parse_size("99999999999999999999", &v) < 0);
	T("reject 2^64 via suffix", k_parse_size("17179869184G", &v) < 0);

	uint8_t z[100] = { 0 };
	T("iszero all zero", k_iszero(z, sizeof(z)));
	z[99] = 1;
	T("iszero last byte", !k_iszero(z, sizeof(z)));
	z[99] = 0, z[3] = 1;
	T("iszero early byte", !k_iszero(z, sizeof(z)));
	T("iszero short", k_iszero(z, 3) && !k_iszero(z, 4));
	T("iszero empty", k_iszero(z, 0));

	struct cloop c;
	struct ksrc s;
	size_t n;
	uint8_t *out = malloc(65536);
	z_stream zs = { 0 };
	for (int ver = 2; ver <= 4; ver += 2) {
		for (int foot = 0; foot <= (ver == 4); foot++) {
			uint8_t *f = mkcloop(ver, foot, 4096, 5, &n);
			char name[64];
			snprintf(name, sizeof(name), "open V%d %s", ver, foot ? "footer" : "header");
			T(name, open_mem(&c, &s, f, n) == 0 && c.version == ver && c.footer == foot &&
			  c.num_blocks == 5 && c.block_size == 4096);
			int ok = 1;
			for (uint32_t i = 0; i < c.num_blocks && ok; i++) {
				ok = !cloop_decode(&zs, c.comp[i], f + c.ofs[i], c.ofs[i + 1] - c.ofs[i], out, 4096);
				ok = ok && out[0] == i && out[4095] == i;
			}
			snprintf(name, sizeof(name), "decode V%d %s", ver, foot ? "footer" : "header");
			T(name, ok);
			cloop_close(&c);
			free(f);
		}
	}

	uint8_t *f = mkcloop(2, 0, 4096, 3, &n);
	T("empty input", open_mem(&c, &s, f, 0) < 0 && strstr(k_errmsg(), "only 0 bytes"));
	T("index past end", open_mem(&c, &s, f, 150) < 0 && strstr(k_errmsg(), "index"));
	k_put_be32(f + 132, 0xffffffff);
	T("huge block count", open_mem(&c, &s, f, n) < 0 && strstr(k_errmsg(), "block count 4294967295"));
	k_put_be32(f + 132, 3);
	uint64_t o1 = k_be64(f + 136 + 8);
	k_put_be64(f + 136 + 8, k_be64(f + 136 + 16) + 1);
	T("offsets backwards", open_mem(&c, &s, f, n) < 0 && strstr(k_errmsg(), "goes backwards"));
	k_put_be64(f + 136 + 8, k_be64(f + 136));
	T("empty block", open_mem(&c, &s, f, n) < 0 && strstr(k_errmsg(), "block 0 is empty"));
	k_put_be64(f + 136 + 8, o1);
	T("restored opens", open_mem(&c, &s, f, n) == 0);
	cloop_close(&c);
	/* Corrupt the zlib stream of block 1. */
	f[o1 + 2] ^= 0xff;
	f[o1 + 3] ^= 0xff;
	T("corrupt block detected", open_mem(&c, &s, f, n) == 0 &&
	  cloop_decode(&zs, CLOOP_ZLIB, f + c.ofs[1], c.ofs[2] - c.ofs[1], out, 4096) != NULL);
	cloop_close(&c);
	T("inflates to more than a block", cloop_decode(&zs, CLOOP_ZLIB, f + k_be64(f + 136),
	  o1 - k_be64(f + 136), out, 2048) != NULL);
	T("raw block size checked", cloop_decode(&zs, CLOOP_NONE, f, 100, out, 4096) != NULL);
	T("xz refused", cloop_decode(&zs, CLOOP_XZ, f, 100, out, 4096) != NULL);
	free(f);
	cloop_zfree(&zs);
	free(out);

	/* SHA-256 against the FIPS 180-4 examples. */
	struct sha256 h;
	uint8_t d[32];
	char hex[65];
	sha256_init(&h);
	sha256_final(&h, d);
	sha256_hex(d, hex);
	T("sha256 empty", !strcmp(hex, "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"));
	sha256_init(&h);
	sha256_update(&h, "abc", 3);
	sha256_final(&h, d);
	sha256_hex(d, hex);
	T("sha256 abc", !strcmp(hex, "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"));
	sha256_init(&h);
	sha256_update(&h, "abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq", 56);
	sha256_final(&h, d);
	sha256_hex(d, hex);
	T("sha256 two blocks", !strcmp(hex, "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1"));
	sha256_init(&h);
	for (int i = 0; i < 1000000; i += 1000) {       /* uneven pieces */
		static char a[1000];
		memset(a, 'a', sizeof(a));
		sha256_update(&h, a, 7);
		sha256_update(&h, a, 993);
	}
	sha256_final(&h, d);
	sha256_hex(d, hex);
	T("sha256 a million a", !strcmp(hex, "cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0"));

	/* COW headers: a v3 header written here parses back the same. */
	struct cow cw, back;
	uint8_t hdr[COW_HEADER_MAX] = { 0 };
	cow_init_v3(&cw, "/images/base.img", 50331648, 1234567);
	cow_header_v3(&cw, hdr);
	T("cow v3 round trip", cow_parse_header(hdr, COW_V3_HEADER, "t", &back) == 0 &&
	  back.version == 3 && !back.broken && back.size == 50331648 && back.mtime == 1234567 &&
	  back.bitmap_off == 8192 && back.data_off == 20480 && !strcmp(back.backing, "/images/base.img"));
	T("cow short header", cow_parse_header(hdr, 100, "t", &back) < 0 && strstr(k_errmsg(), "truncated"));
	hdr[24] = 0, hdr[25] = 0, hdr[26] = 0x0b, hdr[27] = 0xb8;     /* alignment 3000 */
	T("cow bad alignment", cow_parse_header(hdr, COW_V3_HEADER, "t", &back) < 0 && strstr(k_errmsg(), "alignment"));
	cow_close(&cw);

	net_tests();
	dhcp_tests();
	bsrc_tests();
	test_vnet();
	test_vnet_merge();
	test_escape();
	test_fdiff();
	test_http();
	test_vxlan();
	test_sftp_url();
	test_vu_iov();
	test_vu_gone();
	test_vu_backend_req();
	test_jail_filter();
	test_initramfs();
	return failed != 0;
}
