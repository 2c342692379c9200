#include "net/switch.h"
#include "core/daemon.h"
#include "core/err.h"
#include "core/sys.h"
#include "core/xio.h"
#include "net/net.h"
#include "net/switchproto.h"

#include <errno.h>
#include <fcntl.h>
#include <net/if.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

/* From <linux/if_tun.h>, which musl's headers do not carry (stable ABI). */
#ifndef TUNSETIFF
#define TUNSETIFF _IOW('T', 202, int)
#endif
#define K_IFF_TAP 0x0002
#define K_IFF_NO_PI 0x1000

#define BATCH 32
#define MAX_PENDING 32
#define PENDING_MS 5000
#define MAC_SLOTS 4096                  /* a power of two */
#define MAC_PROBE 16

/* Frames waiting for a port whose socket is full (UML's data socket holds
 * only net.unix.max_dgram_qlen datagrams, 10 by default).  Queued, not
 * dropped, so TCP between guests does not see losses on every burst; but
 * bounded, so a port that never reads costs only its own frames. */
#define TXQ 512
struct txq {
	unsigned head, n;
	uint16_t len[TXQ];
	uint8_t (*buf)[NET_FRAME_MAX + 4];      /* allocated when first needed */
};

struct port {
	int used;
	int ctl;                        /* control connection; -1 for the tap */
	int tap;                        /* the host tap device's fd, or -1 */
	int probe;                      /* connected to the port: POLLOUT when it has room */
	struct txq q;
	struct sockaddr_un addr;
	socklen_t addrlen;              /* what we send to */
	unsigned gen;                   /* bumped when the slot is reused */
	time_t since;
	unsigned long long in, out, drops;
	char descr[129];                /* VDE's description, or the tap's name */
	char service[32];               /* a umlk service port (dhcpd), or "" */
};

struct pending {
	int fd;
	size_t n;
	long long deadline;
	uint8_t buf[SW_REQ_VDE];
};

struct mac_entry {
	uint8_t mac[6];
	int port;                       /* -1: never used */
	unsigned gen;
	long long seen;                 /* ms */
};

struct sw {
	const struct switch_conf *c;
	int listen, data;
	struct sockaddr_un data_addr;
	struct port *ports;
	int nports;
	struct pending pend[MAX_PENDING];
	int npend;
	struct mac_entry macs[MAC_SLOTS];
	long long age_ms;
	time_t started;
	unsigned long long frames_in, forwarded, flooded, dropped, strangers, malformed, refused;
	int last_port;                  /* the port the previous datagram came from */
};

static volatile sig_atomic_t stopping;
static void on_stop(int sig) { (void)sig; stopping = 1; }

#define LOG(...) do { if (s->c->log) s->c->log(__VA_ARGS__); } while (0)

/* ---- MAC learning */


static int mac_live(struct sw *s, const struct mac_entry *e, long long now)
{
	return e->port >= 0 && s->ports[e->port].used && s->ports[e->port].gen == e->gen &&
	       now - e->seen < s->age_ms;
}

static int mac_lookup(struct sw *s, const uint8_t m[6], long long now)
{
	unsigned h = net_mac_hash(m);
	for (int i = 0; i < MAC_PROBE; i++) {
		struct mac_entry *e = &s->macs[(h + i) & (MAC_SLOTS - 1)];
		if (e->port < 0)
			return -1;
		if (!memcmp(e->mac, m, 6))
			return mac_live(s, e, now) ? e->port : -1;
	}
	return -1;
}

static void mac_learn(struct sw *s, const uint8_t m[6], int port, long long now)
{
	unsigned h = net_mac_hash(m);
	struct mac_entry *reuse = NULL;

	for (int i = 0; i < MAC_PROBE; i++) {
		struct mac_entry *e = &s->macs[(h + i) & (MAC_SLOTS - 1)];
		if (e->port >= 0 && !memcmp(e->mac, m, 6)) {
			if (e->port != port || e->gen != s->ports[port].gen)
				LOG("%02x:%02x:%02x:%02x:%02x:%02x is on port %d", m[0], m[1], m[2], m[3],
				    m[4], m[5], port);
			e->port = port;
			e->gen = s->ports[port].gen;
			e->seen = now;
			return;
		}
		if (!reuse && (e->port < 0 || !mac_live(s, e, now)))
			reuse = e;
		if (e->port < 0)
			break;                  /* the chain ends here */
	}
	if (!reuse) {                           /* all live: take the stalest */
		reuse = &s->macs[h & (MAC_SLOTS - 1)];
		for (int i = 1; i < MAC_PROBE; i++) {
			struct mac_entry *e = &s->macs[(h + i) & (MAC_SLOTS - 1)];
			if (e->seen < reuse->seen)
				reuse = e;
		}
	}
	memcpy(reuse->mac, m, 6);
	reuse->port = port;
	reuse->gen = s->ports[port].gen;
	reuse->seen = now;
}

/* ---- sending */

static int enqueue(struct sw *s, struct port *pt, const uint8_t *frame, size_t n)
{
	struct txq *q = &pt->q;

	if (q->n == TXQ || n > sizeof(q->buf[0]) ||
	    (!q->buf && !(q->buf = malloc(TXQ * sizeof(q->buf[0]))))) {
		pt->drops++;
		s->dropped++;
		return -1;
	}
	unsigned i = (q->head + q->n++) % TXQ;
	memcpy(q->buf[i], frame, n);
	q->len[i] = (uint16_t)n;
	return 0;
}

/* One frame to the port, now: 1 sent, 0 it has no room (try later), -1 lost. */
static int send_now(struct sw *s, struct port *pt, const uint8_t *frame, size_t n)
{
	ssize_t r;

	if (pt->tap >= 0)
		r = write(pt->tap, frame, n);
	else
		r = sendto(s->data, frame, n, MSG_DONTWAIT, (struct sockaddr *)&pt->addr, pt->addrlen);
	if (r == (ssize_t)n) {
		pt->out++;
		return 1;
	}
	if (r < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == ENOBUFS))
		return 0;
	pt->drops++;                    /* gone, or refused: this frame is lost */
	s->dropped++;
	return -1;
}

/* Send what is queued for the port, in order, as far as it has room. */
static void drain(struct sw *s, struct port *pt)
{
	struct txq *q = &pt->q;

	while (q->n) {
		if (send_now(s, pt, q->buf[q->head], q->len[q->head]) == 0)
			return;
		q->head = (q->head + 1) % TXQ;
		q->n--;
	}
}

static void send_to(struct sw *s, int p, const uint8_t *frame, size_t n)
{
	struct port *pt = &s->ports[p];

	if (pt->q.n || send_now(s, pt, frame, n) == 0)
		enqueue(s, pt, frame, n);       /* behind what already waits */
}

static void forward(struct sw *s, int in, const uint8_t *frame, size_t n, long long now)
{
	s->frames_in++;
	s->ports[in].in++;
	if (n < NET_ETH_HLEN || n > NET_FRAME_MAX + 4) {
		s->malformed++;
		return;
	}
	const uint8_t *dst = frame, *src = frame + 6;
	if (!net_mac_is_group(src))
		mac_learn(s, src, in, now);
	int to = -1;
	if (!s->c->hub && !net_mac_is_group(dst))
		to = mac_lookup(s, dst, now);
	if (to == in) {                 /* both ends behind the same port */
		s->dropped++;
		return;
	}
	if (to >= 0) {
		s->forwarded++;
		send_to(s, to, frame, n);
		return;
	}
	s->flooded++;
	for (int p = 0; p < s->nports; p++)
		if (s->ports[p].used && p != in)
			send_to(s, p, frame, n);
}

/* ---- ports and control connections */

static int port_by_addr(struct sw *s, const struct sockaddr_un *a, socklen_t len)
{
	int l = s->last_port;

	if (l >= 0 && l < s->nports && s->ports[l].used && s->ports[l].tap < 0 &&
	    sw_addr_match(a, len, &s->ports[l].addr))
		return l;
	for (int p = 0; p < s->nports; p++) {
		if (s->ports[p].used && s->ports[p].tap < 0 && sw_addr_match(a, len, &s->ports[p].addr)) {
			s->last_port = p;
			/* Send back with the length the port really bound with. */
			if (s->ports[p].addrlen != len) {
				s->ports[p].addrlen = len;
				if (s->ports[p].probe >= 0)
					connect(s->ports[p].probe, (struct sockaddr *)&s->ports[p].addr, len);
			}
			return p;
		}
	}
	return -1;
}

static void port_remove(struct sw *s, int p, const char *why)
{
	struct port *pt = &s->ports[p];

	LOG("port %d: %s (frames in %llu, out %llu, dropped %llu)", p, why, pt->in, pt->out, pt->drops);
	if (pt->ctl >= 0)
		close(pt->ctl);
	if (pt->tap >= 0)
		close(pt->tap);
	if (pt->probe >= 0)
		close(pt->probe);
	free(pt->q.buf);
	memset(&pt->q, 0, sizeof(pt->q));
	pt->used = 0;
	pt->ctl = pt->tap = pt->probe = -1;
	pt->gen++;
}

static int port_new(struct sw *s)
{
	for (int p = 0; p < s->nports; p++) {
		if (!s->ports[p].used) {
			struct port *pt = &s->ports[p];
			unsigned gen = pt->gen;
			memset(pt, 0, sizeof(*pt));
			pt->gen = gen;
			pt->used = 1;
			pt->ctl = pt->tap = pt->probe = -1;
			pt->since = time(NULL);
			return p;
		}
	}
	return -1;
}

static void pending_close(struct sw *s, int i)
{
	close(s->pend[i].fd);
	s->pend[i] = s->pend[--s->npend];
}

static char *status_text(struct sw *s, size_t *len)
{
	char *buf = NULL;
	size_t sz = 0;
	FILE *f = open_memstream(&buf, &sz);
	long long now = k_now_ms();
	int used = 0;

	if (!f)
		return NULL;
	for (int p = 0; p < s->nports; p++)
		used += s->ports[p].used;
	fprintf(f, "umlk umlswitch on %s: %s, pid %d, up %lld s\n", s->c->ctl_path,
		s->c->hub ? "hub" : "switch", (int)getpid(), (long long)(time(NULL) - s->started));
	fprintf(f, "ports: %d of %d\n", used, s->nports);
	for (int p = 0; p < s->nports; p++) {
		struct port *pt = &s->ports[p];
		if (!pt->used)
			continue;
		fprintf(f, "  port %d: %s%s%s%s, up %lld s, frames in %llu, out %llu, dropped %llu, queued %u\n", p,
			pt->tap >= 0 ? "tap " : pt->service[0] ? "service " : "uml",
			pt->tap >= 0 ? pt->descr : pt->service,
			pt->tap < 0 && pt->descr[0] ? " " : "", pt->tap < 0 ? pt->descr : "",
			(long long)(time(NULL) - pt->since), pt->in, pt->out, pt->drops, pt->q.n);
	}
	int nmac = 0;
	for (int i = 0; i < MAC_SLOTS; i++)
		nmac += mac_live(s, &s->macs[i], now);
	fprintf(f, "macs: %d (forgotten after %d s)\n", nmac, s->c->age_secs);
	for (int i = 0; i < MAC_SLOTS; i++) {
		struct mac_entry *e = &s->macs[i];
		char m[18];
		if (mac_live(s, e, now))
			fprintf(f, "  %s port %d, seen %lld s ago\n", net_fmt_mac(e->mac, m), e->port,
				(now - e->seen) / 1000);
	}
	fprintf(f, "frames: in %llu, forwarded %llu, flooded %llu, dropped %llu, malformed %llu,"
		" from strangers %llu\n", s->frames_in, s->forwarded, s->flooded, s->dropped,
		s->malformed, s->strangers);
	fprintf(f, "control: requests refused %llu\n", s->refused);
	fclose(f);
	*len = sz;
	return buf;
}

static void pending_input(struct sw *s, int i)
{
	struct pending *pd = &s->pend[i];
	ssize_t r = read(pd->fd, pd->buf + pd->n, sizeof(pd->buf) - pd->n);

	if (r < 0 && (errno == EAGAIN || errno == EINTR))
		return;
	if (r <= 0) {
		pending_close(s, i);
		return;
	}
	pd->n += (size_t)r;
	struct sw_request req;
	int ok = sw_parse_request(&req, pd->buf, pd->n);
	if (ok == 0 && pd->n < sizeof(pd->buf))
		return;
	if (ok <= 0) {
		s->refused++;
		LOG("control connection refused: %s", ok < 0 ? k_errmsg() : "request too long");
		pending_close(s, i);
		return;
	}
	if (req.type == SW_REQ_STATUS) {
		size_t len;
		char *text = status_text(s, &len);
		if (text) {
			/* Best effort, never blocking: a reader that cannot take
			 * the report gets part of it. */
			if (write(pd->fd, text, len) < 0)
				s->refused++;
			free(text);
		}
		pending_close(s, i);
		return;
	}
	int p = port_new(s);
	if (p < 0) {
		s->refused++;
		LOG("port refused: all %d ports are in use", s->nports);
		pending_close(s, i);
		return;
	}
	struct port *pt = &s->ports[p];
	pt->ctl = pd->fd;
	pt->addr = req.addr;
	pt->addrlen = sizeof(pt->addr);
	if (!sw_addr_service(&pt->addr, pt->service, sizeof(pt->service)))
		pt->service[0] = 0;
	/* A socket connected to the port, never sent on: poll() says POLLOUT
	 * on it when the port's receive queue has room again. */
	pt->probe = socket(AF_UNIX, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (pt->probe >= 0 && connect(pt->probe, (struct sockaddr *)&pt->addr, pt->addrlen) < 0) {
		close(pt->probe);
		pt->probe = -1;         /* then queued frames are retried on a timer */
	}
	/* A client's words go into our log: printable characters only. */
	for (size_t k = 0; k < sizeof(req.descr) && req.descr[k]; k++)
		pt->descr[k] = (req.descr[k] >= 32 && req.descr[k] < 127) ? req.descr[k] : '?';
	/* The answer: our data socket's address, exactly sizeof(sockaddr_un). */
	if (write(pt->ctl, &s->data_addr, sizeof(s->data_addr)) != (ssize_t)sizeof(s->data_addr)) {
		s->pend[i] = s->pend[--s->npend];
		port_remove(s, p, "could not answer its request");
		return;
	}
	s->pend[i] = s->pend[--s->npend];
	LOG("port %d: new%s%s%s%s", p, pt->service[0] ? ", service " : "", pt->service,
	    pt->descr[0] ? ", " : "", pt->descr);
}

static void accept_one(struct sw *s)
{
	int fd = accept4(s->listen, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);

	if (fd < 0)
		return;
	if (s->npend == MAX_PENDING) {
		/* Too many half-made connections: drop the oldest. */
		int old = 0;
		for (int i = 1; i < s->npend; i++)
			if (s->pend[i].deadline < s->pend[old].deadline)
				old = i;
		s->refused++;
		/* Once a second at most: this is what a flood looks like. */
		static time_t last;
		if (time(NULL) != last) {
			last = time(NULL);
			LOG("more than %d unfinished control connections: closing the oldest", MAX_PENDING);
		}
		pending_close(s, old);
	}
	s->pend[s->npend].fd = fd;
	s->pend[s->npend].n = 0;
	s->pend[s->npend].deadline = k_now_ms() + PENDING_MS;
	s->npend++;
}

static void ctl_input(struct sw *s, int p)
{
	char junk[512];
	ssize_t r = read(s->ports[p].ctl, junk, sizeof(junk));

	if (r < 0 && (errno == EAGAIN || errno == EINTR))
		return;
	if (r <= 0)
		port_remove(s, p, "left");
	/* Anything a port says on its control connection is ignored, as
	 * uml_switch does. */
}

/* ---- frames */

static void data_input(struct sw *s)
{
	static uint8_t bufs[BATCH][NET_FRAME_MAX + 64];
	struct mmsghdr m[BATCH];
	struct iovec v[BATCH];
	struct sockaddr_un from[BATCH];

	for (int round = 0; round < 8; round++) {
		for (int i = 0; i < BATCH; i++) {
			v[i].iov_base = bufs[i];
			v[i].iov_len = sizeof(bufs[i]);
			memset(&m[i].msg_hdr, 0, sizeof(m[i].msg_hdr));
			m[i].msg_hdr.msg_name = &from[i];
			m[i].msg_hdr.msg_namelen = sizeof(from[i]);
			m[i].msg_hdr.msg_iov = &v[i];
			m[i].msg_hdr.msg_iovlen = 1;
		}
		int n = recvmmsg(s->data, m, BATCH, MSG_DONTWAIT, NULL);
		if (n <= 0)
			break;
		long long now = k_now_ms();
		for (int i = 0; i < n; i++) {
			if (m[i].msg_hdr.msg_flags & MSG_TRUNC) {
				s->malformed++;
				continue;
			}
			int p = port_by_addr(s, &from[i], m[i].msg_hdr.msg_namelen);
			if (p < 0) {
				s->strangers++;
				continue;
			}
			forward(s, p, bufs[i], m[i].msg_len, now);
		}
		if (n < BATCH)
			break;
	}
}

static void tap_input(struct sw *s, int p)
{
	static uint8_t buf[NET_FRAME_MAX + 64];

	for (int i = 0; i < BATCH; i++) {
		ssize_t r = read(s->ports[p].tap, buf, sizeof(buf));
		if (r <= 0)
			break;
		forward(s, p, buf, (size_t)r, k_now_ms());
	}
}

/* ---- set-up */

static int open_tap(const char *name)
{
	struct ifreq ifr;
	int fd = open("/dev/net/tun", O_RDWR | O_NONBLOCK | O_CLOEXEC);

	if (fd < 0)
		return k_seterr("-tap %s: /dev/net/tun:", name);
	memset(&ifr, 0, sizeof(ifr));
	ifr.ifr_flags = K_IFF_TAP | K_IFF_NO_PI;
	snprintf(ifr.ifr_name, sizeof(ifr.ifr_name), "%s", name);
	if (ioctl(fd, TUNSETIFF, &ifr) < 0) {
		int e = errno;
		close(fd);
		return k_seterr("-tap %s: %s%s", name, strerror(e),
				e == EPERM ? " (creating a tap device needs root or CAP_NET_ADMIN,"
					     " or a persistent tap owned by you: ip tuntap add NAME mode tap user YOU)"
					   : "");
	}
	/* Bring it up if we may; an unprivileged user's persistent tap is
	 * brought up by whoever made it. */
	int sk = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	if (sk >= 0) {
		if (ioctl(sk, SIOCGIFFLAGS, &ifr) == 0) {
			ifr.ifr_flags |= IFF_UP;
			ioctl(sk, SIOCSIFFLAGS, &ifr);
		}
		close(sk);
	}
	return fd;
}

static int bind_ctl(const char *path)
{
	struct sockaddr_un a;
	struct stat st;

	if (k_unix_addr(&a, path) < 0)
		return -1;
	if (lstat(path, &st) == 0) {
		if (!S_ISSOCK(st.st_mode))
			return k_seterr("%s: exists and is not a socket", path);
		if (sw_alive(path))
			return k_seterr("%s: a switch is already running there", path);
		unlink(path);           /* left over from a switch that died */
	}
	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return k_seterr("socket:");
	if (bind(fd, (struct sockaddr *)&a, sizeof(a)) < 0 || listen(fd, 64) < 0) {
		int e = errno;
		close(fd);
		errno = e;
		return k_seterr("%s:", path);
	}
	return fd;
}

static int bind_data(struct sw *s)
{
	struct timeval tv;
	struct { char zero; char tag[11]; int pid; int usecs; } name;

	s->data = socket(AF_UNIX, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (s->data < 0)
		return k_seterr("socket:");
	/* An abstract name as long as the whole sockaddr_un: UML sends to
	 * what we answer with sizeof(struct sockaddr_un), every byte counting. */
	memset(&s->data_addr, 0, sizeof(s->data_addr));
	memset(&name, 0, sizeof(name));
	memcpy(name.tag, "umlk-switch", sizeof(name.tag));
	gettimeofday(&tv, NULL);
	name.pid = getpid();
	name.usecs = (int)tv.tv_usec;
	s->data_addr.sun_family = AF_UNIX;
	memcpy(s->data_addr.sun_path, &name, sizeof(name));
	if (bind(s->data, (struct sockaddr *)&s->data_addr, sizeof(s->data_addr)) < 0)
		return k_seterr("binding the data socket:");
	/* Room for bursts from many ports. */
	int sz = 4 << 20;
	setsockopt(s->data, SOL_SOCKET, SO_RCVBUF, &sz, sizeof(sz));
	setsockopt(s->data, SOL_SOCKET, SO_SNDBUF, &sz, sizeof(sz));
	return 0;
}

int switch_run(const struct switch_conf *c)
{
	struct sw *s = calloc(1, sizeof(*s));
	int ret = -1;

	if (!s)
		return k_seterr("out of memory");
	s->c = c;
	s->listen = s->data = -1;
	s->last_port = -1;
	s->nports = c->max_ports + (c->tap != NULL);
	s->ports = calloc((size_t)s->nports, sizeof(*s->ports));
	s->age_ms = (long long)c->age_secs * 1000;
	s->started = time(NULL);
	for (int i = 0; i < MAC_SLOTS; i++)
		s->macs[i].port = -1;
	if (!s->ports) {
		k_seterr("out of memory");
		goto out;
	}
	for (int p = 0; p < s->nports; p++)
		s->ports[p].ctl = s->ports[p].tap = s->ports[p].probe = -1;
	if (c->tap) {
		int fd = open_tap(c->tap);
		if (fd < 0)
			goto out;
		int p = port_new(s);
		s->ports[p].tap = fd;
		snprintf(s->ports[p].descr, sizeof(s->ports[p].descr), "%s", c->tap);
	}
	if (bind_data(s) < 0)
		goto out;
	if ((s->listen = bind_ctl(c->ctl_path)) < 0)
		goto out;

	k_on_stop(on_stop);
	if (c->ready)
		c->ready();
	LOG("%s on %s, up to %d ports%s%s", c->hub ? "hub" : "switch", c->ctl_path, c->max_ports,
	    c->tap ? ", tap " : "", c->tap ? c->tap : "");

	/* Each poll entry says what it is: */
	enum { W_LISTEN, W_DATA, W_PENDING, W_CTL, W_TAP, W_PROBE };
	struct who { int kind, idx; };
	size_t maxfds = 2 + MAX_PENDING + 2 * (size_t)s->nports;
	struct pollfd *pf = calloc(maxfds, sizeof(*pf));
	struct who *who = calloc(maxfds, sizeof(*who));
	if (!pf || !who) {
		free(pf);
		free(who);
		k_seterr("out of memory");
		goto out;
	}
	long long idle_since = k_now_ms();
	while (!stopping) {
		int n = 0, stuck = 0;
		if (c->idle_exit) {
			int guests = 0;
			for (int p = 0; p < s->nports; p++)
				guests += s->ports[p].used && !s->ports[p].service[0] && s->ports[p].tap < 0;
			if (guests)
				idle_since = k_now_ms();
			else if (k_now_ms() - idle_since >= c->idle_exit * 1000LL) {
				LOG("no guests for %d s", c->idle_exit);
				break;
			}
		}
#define ADD(fd_, ev, k, i) (pf[n] = (struct pollfd){ .fd = (fd_), .events = (ev) }, \
			    who[n++] = (struct who){ (k), (i) })
		ADD(s->listen, POLLIN, W_LISTEN, 0);
		ADD(s->data, POLLIN, W_DATA, 0);
		for (int i = 0; i < s->npend; i++)
			ADD(s->pend[i].fd, POLLIN, W_PENDING, i);
		for (int p = 0; p < s->nports; p++) {
			struct port *pt = &s->ports[p];
			if (!pt->used)
				continue;
			if (pt->tap >= 0)
				ADD(pt->tap, POLLIN | (pt->q.n ? POLLOUT : 0), W_TAP, p);
			else
				ADD(pt->ctl, POLLIN, W_CTL, p);
			if (pt->tap < 0 && pt->q.n) {
				if (pt->probe >= 0)
					ADD(pt->probe, POLLOUT, W_PROBE, p);
				else
					stuck = 1;
			}
		}
#undef ADD
		long long now = k_now_ms(), wait = c->idle_exit ? 1000 : -1;
		if (stuck)
			wait = 10;
		for (int i = 0; i < s->npend; i++) {
			long long left = s->pend[i].deadline - now;
			if (wait < 0 || left < wait)
				wait = left < 0 ? 0 : left;
		}
		int r = poll(pf, (nfds_t)n, (int)wait);
		if (r < 0 && errno != EINTR) {
			k_seterr("poll:");
			free(pf);
			free(who);
			goto out;
		}
		/* Room first (queued frames go before new ones), then frames,
		 * then control; pending indexes shift when one closes, so those
		 * are walked from the end. */
		for (int i = 0; i < n && r > 0; i++) {
			struct port *pt = &s->ports[who[i].idx];
			if ((who[i].kind == W_PROBE || who[i].kind == W_TAP) && (pf[i].revents & POLLOUT) &&
			    pt->used)
				drain(s, pt);
		}
		if (stuck)
			for (int p = 0; p < s->nports; p++)
				if (s->ports[p].used && s->ports[p].q.n && s->ports[p].probe < 0)
					drain(s, &s->ports[p]);
		for (int i = 0; i < n && r > 0; i++) {
			if (!(pf[i].revents & (POLLIN | POLLERR | POLLHUP)))
				continue;
			if (who[i].kind == W_DATA)
				data_input(s);
			else if (who[i].kind == W_TAP && s->ports[who[i].idx].used &&
				 s->ports[who[i].idx].tap == pf[i].fd)
				tap_input(s, who[i].idx);
		}
		for (int i = n - 1; i >= 0 && r > 0; i--) {
			if (!(pf[i].revents & (POLLIN | POLLERR | POLLHUP)))
				continue;
			int k = who[i].idx;
			if (who[i].kind == W_LISTEN)
				accept_one(s);
			else if (who[i].kind == W_PENDING && k < s->npend && s->pend[k].fd == pf[i].fd)
				pending_input(s, k);
			else if (who[i].kind == W_CTL && s->ports[k].used && s->ports[k].ctl == pf[i].fd)
				ctl_input(s, k);
		}
		now = k_now_ms();
		for (int i = s->npend - 1; i >= 0; i--) {
			if (s->pend[i].deadline <= now) {
				s->refused++;
				LOG("control connection closed: no complete request within %d s", PENDING_MS / 1000);
				pending_close(s, i);
			}
		}
	}
	free(pf);
	free(who);
	LOG("stopping");
	ret = 0;
out:
	if (s->listen >= 0) {
		close(s->listen);
		unlink(c->ctl_path);
	}
	if (s->data >= 0)
		close(s->data);
	for (int p = 0; s->ports && p < s->nports; p++) {
		if (s->ports[p].ctl >= 0)
			close(s->ports[p].ctl);
		if (s->ports[p].tap >= 0)
			close(s->ports[p].tap);
		if (s->ports[p].probe >= 0)
			close(s->ports[p].probe);
		free(s->ports[p].q.buf);
	}
	for (int i = 0; i < s->npend; i++)
		close(s->pend[i].fd);
	free(s->ports);
	free(s);
	return ret;
}
