/* swprobe: a test client for umlk umlswitch, uml_switch and umlk dhcpd.
 *
 *   swprobe join SOCKET [VDE]      register a port (the kernel's 124-byte
 *                                  request, or VDE's 250 with a description);
 *                                  prints "ok" and the reply's size, or
 *                                  "refused" when the switch hangs up
 *   swprobe ctl SOCKET ATTACK      bad-magic | bad-version | bad-type | short |
 *                                  silent: prints "closed after N s" when the
 *                                  switch hangs up, "open" if it does not;
 *                                  many: 100 silent connections, prints how
 *                                  many the switch closed within a second
 *   swprobe hog SOCKET SECONDS     register, then never read a frame
 *   swprobe flood SOCKET N [SECS]  send N broadcast frames (from 02:00:00:00:f1:00)
 *                                  as fast as it can, then stay SECS seconds
 *   swprobe dhcp SOCKET MAC [NAME] get a lease: prints "IP/BITS HOSTNAME"
 *   swprobe lease SOCKET MAC       get a lease: prints its time and options
 *   swprobe reboot SOCKET MAC IP   INIT-REBOOT request for IP: "ACK IP" or "NAK why"
 *   swprobe bad-dhcp SOCKET        send every kind of malformed DHCP packet
 *   swprobe vhog SOCKET SECONDS    join as a virtio-net guest (a vhost-user front
 *                                  end with both queues set up), then never give
 *                                  the switch a receive buffer
 *   swprobe vbad SOCKET            join as a virtio-net guest and send frames with
 *                                  lying headers: prints "sent N"
 *
 * Exit status 0 when the probe did what it says (even when the answer is
 * "closed" or "NAK"), 1 when it could not.
 */
#include "core/bytes.h"
#include "core/err.h"
#include "core/sys.h"
#include "net/dhcp.h"
#include "net/dhcpc.h"
#include "net/net.h"
#include "net/netif.h"
#include "net/switchproto.h"
#include "net/vnet.h"
#include "vhost/vhost.h"

#include <errno.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

static int connect_ctl(const char *path)
{
	struct sockaddr_un a;
	int fd = socket(AF_UNIX, SOCK_STREAM, 0);

	if (k_unix_addr(&a, path) < 0) {
		fprintf(stderr, "%s\n", k_errmsg());
		exit(1);
	}
	if (fd < 0 || connect(fd, (struct sockaddr *)&a, sizeof(a)) < 0) {
		perror(path);
		exit(1);
	}
	return fd;
}

/* Seconds until the peer closes FD (reads and drops anything it sends), or -1. */
static int wait_close(int fd, int limit)
{
	time_t t0 = time(NULL);
	char buf[512];

	while (time(NULL) - t0 < limit) {
		struct pollfd p = { .fd = fd, .events = POLLIN };
		if (poll(&p, 1, 250) > 0) {
			ssize_t n = read(fd, buf, sizeof(buf));
			if (n <= 0)
				return (int)(time(NULL) - t0);
		}
	}
	return -1;
}

static int cmd_ctl(const char *sock, const char *attack)
{
	uint8_t req[SW_REQ_VDE];
	struct sockaddr_un me;
	uint32_t v;

	memset(&me, 0, sizeof(me));
	me.sun_family = AF_UNIX;
	sw_build_request(req, SW_REQ_NEW_CONTROL, &me);
	if (!strcmp(attack, "many")) {
		/* More half-open connections than the switch keeps. */
		int fds[100];
		for (int i = 0; i < 100; i++)
			fds[i] = connect_ctl(sock);
		sleep(1);
		int closed = 0;
		for (int i = 0; i < 100; i++) {
			struct pollfd p = { .fd = fds[i], .events = POLLIN };
			char c;
			if (poll(&p, 1, 0) > 0 && read(fds[i], &c, 1) == 0)
				closed++;
		}
		printf("%d\n", closed);
		for (int i = 0; i < 100; i++)
			close(fds[i]);
		return 0;
	}
	int fd = connect_ctl(sock);
	size_t n = SW_REQ_KERNEL;
	if (!strcmp(attack, "bad-magic")) {
		v = 0xdeadbeef;
		memcpy(req, &v, 4);
	} else if (!strcmp(attack, "bad-version")) {
		v = 2;
		memcpy(req + 4, &v, 4);
	} else if (!strcmp(attack, "bad-type")) {
		v = 7;
		memcpy(req + 8, &v, 4);
	} else if (!strcmp(attack, "short")) {
		n = 50;
	} else if (!strcmp(attack, "silent")) {
		n = 0;
	} else {
		fprintf(stderr, "swprobe: unknown attack %s\n", attack);
		return 1;
	}
	if (n && write(fd, req, n) != (ssize_t)n) {
		perror("write");
		return 1;
	}
	int s = wait_close(fd, 10);
	if (s < 0)
		printf("open\n");
	else
		printf("closed after %d s\n", s);
	return 0;
}

static int cmd_join(const char *sock, int vde)
{
	uint8_t req[SW_REQ_VDE];
	struct sockaddr_un me, sw;
	int fd = connect_ctl(sock);
	int d = socket(AF_UNIX, SOCK_DGRAM, 0);

	memset(&me, 0, sizeof(me));
	me.sun_family = AF_UNIX;
	snprintf(me.sun_path + 1, sizeof(me.sun_path) - 1, "swprobe-%d", (int)getpid());
	if (bind(d, (struct sockaddr *)&me, sizeof(me)) < 0) {
		perror("bind");
		return 1;
	}
	memset(req, 0, sizeof(req));
	sw_build_request(req, SW_REQ_NEW_CONTROL, &me);
	size_t n = SW_REQ_KERNEL;
	if (vde) {
		/* VDE's packed layout: no padding after the sockaddr, then 128
		 * bytes of description. */
		memmove(req + SW_REQ_MIN, "vde-probe", 10);
		memset(req + SW_REQ_MIN + 10, 0, 118);
		n = SW_REQ_VDE;
	}
	if (write(fd, req, n) != (ssize_t)n) {
		perror("write");
		return 1;
	}
	struct pollfd p = { .fd = fd, .events = POLLIN };
	if (poll(&p, 1, 5000) <= 0) {
		printf("no answer\n");
		return 1;
	}
	ssize_t r = read(fd, &sw, sizeof(sw));
	if (r == 0) {
		printf("refused\n");   /* closed without an answer */
		return 0;
	}
	printf("%s %zd\n", r == (ssize_t)sizeof(sw) && sw.sun_family == AF_UNIX ? "ok" : "bad", r);
	/* Stay a moment, so a status request can see the port. */
	if (vde)
		sleep(2);
	return 0;
}

static void join_or_die(struct netif *ni, const char *sock, const char *macs)
{
	uint8_t mac[6];

	if (net_parse_mac(macs, mac) < 0) {
		fprintf(stderr, "swprobe: bad MAC %s\n", macs);
		exit(1);
	}
	if (netif_open_switch(ni, sock, mac, NULL) < 0) {
		fprintf(stderr, "swprobe: %s\n", k_errmsg());
		exit(1);
	}
}

static int cmd_dhcp(const char *sock, const char *macs, const char *name)
{
	struct netif ni;
	struct dhcpc_lease l;
	char a[16];

	join_or_die(&ni, sock, macs);
	if (dhcpc_acquire(&ni, name, 4000, &l) < 0) {
		printf("%s\n", k_errmsg());
		return 0;
	}
	printf("%s/%d %s\n", net_fmt_ip(l.ip, a), net_mask_bits(l.mask), l.hostname[0] ? l.hostname : "-");
	return 0;
}

static int cmd_lease(const char *sock, const char *macs)
{
	struct netif ni;
	struct dhcpc_lease l;
	char a[16], b[16];

	join_or_die(&ni, sock, macs);
	if (dhcpc_acquire(&ni, NULL, 4000, &l) < 0) {
		printf("%s\n", k_errmsg());
		return 0;
	}
	printf("%s lease=%u t1=%u t2=%u router=%s domain=%s\n", net_fmt_ip(l.ip, a), l.lease, l.t1, l.t2,
	       l.router ? net_fmt_ip(l.router, b) : "-", l.domain[0] ? l.domain : "-");
	return 0;
}

static void send_dhcp(struct netif *ni, const uint8_t *msg, size_t n, uint32_t saddr)
{
	uint8_t f[NET_FRAME_MAX];
	struct net_ends e;

	memcpy(e.src_mac, ni->mac, 6);
	memcpy(e.dst_mac, net_broadcast_mac, 6);
	e.saddr = saddr;
	e.daddr = 0xffffffff;
	e.sport = DHCP_CLIENT_PORT;
	e.dport = DHCP_SERVER_PORT;
	size_t fl = net_build_udp(f, sizeof(f), &e, msg, n);
	if (!fl || netif_send(ni, f, fl) < 0)
		perror("send");
}

static int cmd_reboot(const char *sock, const char *macs, const char *ips)
{
	struct netif ni;
	struct dhcp_msg m;
	uint8_t buf[DHCP_MAX_MSG], f[NET_FRAME_MAX + 64];

	join_or_die(&ni, sock, macs);
	memset(&m, 0, sizeof(m));
	m.op = 1;
	m.xid = 0x12345678;
	m.type = DHCPREQUEST;
	memcpy(m.chaddr, ni.mac, 6);
	if (net_parse_ip(ips, &m.reqip) < 0)
		return 1;
	m.have = DH_REQIP;
	send_dhcp(&ni, buf, dhcp_build(buf, &m), 0);
	for (;;) {
		ssize_t n = netif_wait(&ni, f, sizeof(f), 3000);
		if (n <= 0) {
			printf("no answer\n");
			return 0;
		}
		struct net_pkt p;
		struct dhcp_msg r;
		if (net_parse(&p, f, (size_t)n) < 0 || p.proto != NET_IP_UDP || p.dport != DHCP_CLIENT_PORT ||
		    dhcp_parse(&r, p.data, p.datalen) < 0 || r.xid != m.xid)
			continue;
		char a[16];
		if (r.type == DHCPACK)
			printf("ACK %s\n", net_fmt_ip(r.yiaddr, a));
		else
			printf("%s %s\n", dhcp_type_name(r.type), r.message);
		return 0;
	}
}

static int cmd_bad_dhcp(const char *sock)
{
	struct netif ni;
	struct dhcp_msg m;
	uint8_t good[DHCP_MAX_MSG], b[DHCP_MAX_MSG + 600];
	int sent = 0;

	join_or_die(&ni, sock, "02:00:00:00:0b:ad");
	memset(&m, 0, sizeof(m));
	m.op = 1;
	m.xid = 1;
	m.type = DHCPDISCOVER;
	memcpy(m.chaddr, ni.mac, 6);
	size_t n = dhcp_build(good, &m);

	/* Truncated: the fixed part only, and shorter still. */
	send_dhcp(&ni, good, 239, 0), sent++;
	send_dhcp(&ni, good, 20, 0), sent++;
	send_dhcp(&ni, good, 0, 0), sent++;
	/* An option whose length runs past the end. */
	memcpy(b, good, n);
	b[240] = 12;
	b[241] = 250;
	send_dhcp(&ni, b, 260, 0), sent++;
	/* A message type option of the wrong length, and an unknown type. */
	memcpy(b, good, n);
	b[240] = 53, b[241] = 4;
	send_dhcp(&ni, b, n, 0), sent++;
	memcpy(b, good, n);
	b[242] = 99;
	send_dhcp(&ni, b, n, 0), sent++;
	/* Option overload: 'file' and 'sname' full of options that lie. */
	memcpy(b, good, n);
	memcpy(b + 240, (uint8_t[]){ 53, 1, 1, 52, 1, 3, 255 }, 7);
	memset(b + 44, 0xee, 64 + 128);
	b[108] = 12, b[109] = 200;              /* a hostname longer than 'file' */
	send_dhcp(&ni, b, n, 0), sent++;
	memcpy(b + 240, (uint8_t[]){ 53, 1, 1, 52, 1, 9, 255 }, 7);
	send_dhcp(&ni, b, n, 0), sent++;
	/* A huge host name: 255 bytes, then the same option again and again. */
	memcpy(b, good, 240);
	size_t i = 240;
	memcpy(b + i, (uint8_t[]){ 53, 1, 1 }, 3), i += 3;
	for (int k = 0; k < 5 && i + 257 < sizeof(b); k++) {
		b[i] = 12, b[i + 1] = 255;
		memset(b + i + 2, 'h', 255);
		i += 257;
	}
	b[i++] = 255;
	send_dhcp(&ni, b, i > 1472 ? 1472 : i, 0), sent++;
	/* Not Ethernet; a bad cookie. */
	memcpy(b, good, n);
	b[1] = 6;
	send_dhcp(&ni, b, n, 0), sent++;
	memcpy(b, good, n);
	b[236] = 0;
	send_dhcp(&ni, b, n, 0), sent++;
	/* Broken below DHCP: IP and UDP lengths that lie, a bad checksum. */
	uint8_t f[NET_FRAME_MAX];
	struct net_ends e;
	memcpy(e.src_mac, ni.mac, 6);
	memcpy(e.dst_mac, net_broadcast_mac, 6);
	e.saddr = 0;
	e.daddr = 0xffffffff;
	e.sport = DHCP_CLIENT_PORT;
	e.dport = DHCP_SERVER_PORT;
	size_t fl = net_build_udp(f, sizeof(f), &e, good, n);
	uint8_t g[NET_FRAME_MAX];
	memcpy(g, f, fl);
	g[14 + 2] = 0xff, g[14 + 3] = 0xff;     /* IP total length */
	netif_send(&ni, g, fl), sent++;
	memcpy(g, f, fl);
	g[14 + 20 + 4] = 0xff;                  /* UDP length */
	netif_send(&ni, g, fl), sent++;
	memcpy(g, f, fl);
	g[fl - 1] ^= 0x55;                      /* checksum no longer adds up */
	netif_send(&ni, g, fl), sent++;
	memcpy(g, f, fl);
	netif_send(&ni, g, 20), sent++;         /* a runt */
	printf("sent %d\n", sent);
	return 0;
}

/* ---- a minimal vhost-user front end, as a guest's virtio_uml is */

static void vu_send(int fd, uint32_t req, const void *payload, uint32_t size, int passfd)
{
	uint8_t m[VU_HDR + 256];
	k_put_le32(m, req);
	k_put_le32(m + 4, VU_VERSION);
	k_put_le32(m + 8, size);
	if (size)
		memcpy(m + VU_HDR, payload, size);
	struct iovec iov = { m, VU_HDR + size };
	union { struct cmsghdr h; char b[CMSG_SPACE(sizeof(int))]; } cm;
	struct msghdr mh = { .msg_iov = &iov, .msg_iovlen = 1 };
	if (passfd >= 0) {
		mh.msg_control = cm.b;
		mh.msg_controllen = sizeof(cm.b);
		struct cmsghdr *c = CMSG_FIRSTHDR(&mh);
		c->cmsg_level = SOL_SOCKET;
		c->cmsg_type = SCM_RIGHTS;
		c->cmsg_len = CMSG_LEN(sizeof(int));
		memcpy(CMSG_DATA(c), &passfd, sizeof(int));
	}
	if (sendmsg(fd, &mh, 0) != (ssize_t)iov.iov_len) {
		perror("swprobe: sendmsg");
		exit(1);
	}
}

#define VMEM (1 << 20)
struct vfront {
	int sock, kick[2];
	uint8_t *mem;
};

/* Connect, negotiate, hand over 1 MiB of memory and two rings of 64
 * (queue Q's at Q * 64 KiB: descriptors, then avail at +4 KiB, used at
 * +8 KiB), nothing in them yet. */
static void vfront_open(struct vfront *v, const char *sock)
{
	v->sock = connect_ctl(sock);
	uint8_t p[64];
	vu_send(v->sock, VU_GET_FEATURES, NULL, 0, -1);
	uint8_t r[VU_HDR + 8];
	if (read(v->sock, r, sizeof(r)) != (ssize_t)sizeof(r)) {
		fprintf(stderr, "swprobe: no answer to GET_FEATURES\n");
		exit(1);
	}
	uint64_t want = 1ULL << VIRTIO_F_VERSION_1 | 1ULL << VIRTIO_NET_F_CSUM | 1ULL << VIRTIO_NET_F_HOST_TSO4;
	k_put_le64(p, k_le64(r + VU_HDR) & want);
	vu_send(v->sock, VU_SET_FEATURES, p, 8, -1);
	vu_send(v->sock, VU_SET_OWNER, NULL, 0, -1);
	int mfd = memfd_create("vfront", 0);
	if (mfd < 0 || ftruncate(mfd, VMEM) < 0 ||
	    (v->mem = mmap(NULL, VMEM, PROT_READ | PROT_WRITE, MAP_SHARED, mfd, 0)) == MAP_FAILED) {
		perror("swprobe: memory");
		exit(1);
	}
	memset(p, 0, sizeof(p));
	k_put_le32(p, 1);
	k_put_le64(p + 8, 0);                           /* guest-physical address */
	k_put_le64(p + 16, VMEM);
	k_put_le64(p + 24, (uint64_t)(uintptr_t)v->mem);   /* front-end address */
	k_put_le64(p + 32, 0);
	vu_send(v->sock, VU_SET_MEM_TABLE, p, 40, mfd);
	close(mfd);
	for (int q = 0; q < 2; q++) {
		uint64_t base = (uint64_t)(uintptr_t)v->mem + (uint64_t)q * 65536;
		k_put_le32(p, (uint32_t)q);
		k_put_le32(p + 4, 64);
		vu_send(v->sock, VU_SET_VRING_NUM, p, 8, -1);
		memset(p, 0, 40);
		k_put_le32(p, (uint32_t)q);
		k_put_le64(p + 8, base);
		k_put_le64(p + 16, base + 8192);
		k_put_le64(p + 24, base + 4096);
		vu_send(v->sock, VU_SET_VRING_ADDR, p, 40, -1);
		k_put_le32(p, (uint32_t)q);
		k_put_le32(p + 4, 0);
		vu_send(v->sock, VU_SET_VRING_BASE, p, 8, -1);
		int call = eventfd(0, EFD_NONBLOCK);
		k_put_le64(p, (uint64_t)q);
		vu_send(v->sock, VU_SET_VRING_CALL, p, 8, call);
		close(call);
		v->kick[q] = eventfd(0, EFD_NONBLOCK);
		vu_send(v->sock, VU_SET_VRING_KICK, p, 8, v->kick[q]);
	}
}

/* Put one frame (header included) in the transmit ring and kick. */
static void vfront_tx(struct vfront *v, unsigned slot, const uint8_t *f, size_t n)
{
	uint8_t *q = v->mem + 65536;
	size_t data = 32768 + (size_t)(slot % 8) * 2048;
	memcpy(v->mem + 65536 + data, f, n);
	struct vring_desc d = { 65536 + data, (uint32_t)n, 0, 0 };
	memcpy(q + 16 * (slot % 64), &d, sizeof(d));
	uint16_t *avail = (uint16_t *)(q + 4096);
	avail[2 + slot % 64] = (uint16_t)(slot % 64);
	__atomic_store_n(&avail[1], (uint16_t)(slot + 1), __ATOMIC_RELEASE);
	uint64_t one = 1;
	if (write(v->kick[1], &one, 8) != 8)
		perror("swprobe: kick");
}

static int cmd_vbad(const char *sock)
{
	struct vfront v;
	vfront_open(&v, sock);
	uint8_t f[VNET_HDR_LEN + 200];
	int sent = 0;
	/* Each a lie of its own: a GSO type not offered, a segment size of 1,
	 * a checksum place past the end, flags unknown, a TCPv4 offload of a
	 * UDP packet, a runt. */
	static const uint8_t lies[][6] = {
		{ 0, 3, 0, 0, 0, 0 }, { 0, VNET_GSO_TCPV4, 1, 0, 0, 0 }, { VNET_F_NEEDS_CSUM, 0, 0, 0, 190, 20 },
		{ 0x80, 0, 0, 0, 0, 0 }, { VNET_F_NEEDS_CSUM, VNET_GSO_TCPV4, 0x40, 0x05, 34, 6 },
	};
	for (unsigned i = 0; i < sizeof(lies) / sizeof(lies[0]); i++) {
		memset(f, 0, sizeof(f));
		struct vnet_hdr h = { lies[i][0], lies[i][1], 0, (uint16_t)(lies[i][2] | lies[i][3] << 8),
				      lies[i][4], lies[i][5], 0 };
		vnet_hdr_put(&h, f);
		uint8_t *e = f + VNET_HDR_LEN;
		memset(e, 0xff, 6);                     /* broadcast */
		memcpy(e + 6, "\x02\0\0\0\xba\xd0", 6);
		e[12] = 0x08;                           /* IPv4, UDP */
		e[14] = 0x45;
		e[14 + 9] = 17;
		vfront_tx(&v, (unsigned)sent, f, sizeof(f));
		sent++;
	}
	memset(f, 0, sizeof(f));
	vfront_tx(&v, (unsigned)sent++, f, VNET_HDR_LEN + 6);
	sleep(1);
	printf("sent %d\n", sent);
	return 0;
}

int main(int argc, char **argv)
{
	if (argc < 3) {
		fprintf(stderr, "usage: swprobe COMMAND SOCKET ... (see the source)\n");
		return 1;
	}
	const char *cmd = argv[1], *sock = argv[2];
	if (!strcmp(cmd, "join"))
		return cmd_join(sock, argc > 3);
	if (!strcmp(cmd, "ctl") && argc == 4)
		return cmd_ctl(sock, argv[3]);
	if (!strcmp(cmd, "dhcp") && argc >= 4)
		return cmd_dhcp(sock, argv[3], argc > 4 ? argv[4] : NULL);
	if (!strcmp(cmd, "lease") && argc == 4)
		return cmd_lease(sock, argv[3]);
	if (!strcmp(cmd, "reboot") && argc == 5)
		return cmd_reboot(sock, argv[3], argv[4]);
	if (!strcmp(cmd, "bad-dhcp"))
		return cmd_bad_dhcp(sock);
	if (!strcmp(cmd, "vhog") && argc == 4) {
		struct vfront v;
		vfront_open(&v, sock);
		printf("hogging\n");
		fflush(stdout);
		sleep((unsigned)atoi(argv[3]));
		return 0;
	}
	if (!strcmp(cmd, "vbad"))
		return cmd_vbad(sock);
	if (!strcmp(cmd, "hog") && argc == 4) {
		struct sw_port p;
		if (sw_port_open(&p, sock, NULL) < 0) {
			fprintf(stderr, "swprobe: %s\n", k_errmsg());
			return 1;
		}
		int sz = 4096;  /* a tiny receive buffer, soon full */
		setsockopt(p.data, SOL_SOCKET, SO_RCVBUF, &sz, sizeof(sz));
		printf("hogging\n");
		fflush(stdout);
		sleep((unsigned)atoi(argv[3]));
		return 0;
	}
	if (!strcmp(cmd, "flood") && (argc == 4 || argc == 5)) {
		struct sw_port p;
		uint8_t f[NET_ETH_MIN + 400];
		if (sw_port_open(&p, sock, NULL) < 0) {
			fprintf(stderr, "swprobe: %s\n", k_errmsg());
			return 1;
		}
		memset(f, 0, sizeof(f));
		memcpy(f, net_broadcast_mac, 6);
		memcpy(f + 6, (uint8_t[]){ 0x02, 0, 0, 0, 0xf1, 0x00 }, 6);
		f[12] = 0x88, f[13] = 0xb5;     /* an experimental ethertype */
		long n = atol(argv[3]), ok = 0;
		for (long i = 0; i < n; i++) {
			if (sw_port_send(&p, f, sizeof(f)) == (ssize_t)sizeof(f))
				ok++;
			else if (errno == EAGAIN)
				usleep(100);
		}
		printf("sent %ld of %ld\n", ok, n);
		fflush(stdout);
		if (argc == 5)
			sleep((unsigned)atoi(argv[4]));        /* stay a port meanwhile */
		return 0;
	}
	fprintf(stderr, "swprobe: bad command %s\n", cmd);
	return 1;
}
