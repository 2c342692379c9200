#include "net/tcpgw.h"
#include "core/err.h"
#include "core/sys.h"
#include "core/xio.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#define MAX_LISTEN 8
#define MAX_CONN 256
#define RBUF (64u << 10)                /* guest -> host, what we advertise */
#define SBUF (256u << 10)               /* host -> guest, until acknowledged */
#define RTO_MIN 200
#define RTO_MAX 4000
#define MAX_TRIES 10
#define OUR_MSS 1460

enum { C_FREE, C_SYN_RCVD, C_OPEN };

struct conn {
	int state;
	uint8_t mac[6];
	uint32_t ip;
	uint16_t port, lport;
	int fd;                         /* the host socket */
	uint32_t iss, snd_una, snd_nxt, rcv_nxt;
	uint32_t data_seq;              /* sequence number of sbuf[0] */
	uint32_t snd_wnd;
	uint16_t mss;
	uint8_t *sbuf, *rbuf;
	size_t slen, rlen;
	int host_eof;                   /* the host side has no more to send */
	int fin_sent, fin_acked;
	int peer_fin;                   /* the guest has no more to send */
	int shut_host;                  /* we told the host so */
	long long rto_at;               /* 0: no timer */
	int rto, tries, dupacks;
	int window_was_zero;            /* we advertised 0: say when there is room */
};

struct listener {
	uint16_t port;
	char path[108];
};

struct tcpgw {
	struct netif *ni;
	void (*log)(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
	struct listener ls[MAX_LISTEN];
	int nls;
	struct conn c[MAX_CONN];
	unsigned accepted;
};

#define SEQ_LT(a, b) ((int32_t)((a) - (b)) < 0)
#define SEQ_LEQ(a, b) ((int32_t)((a) - (b)) <= 0)

struct tcpgw *tcpgw_new(struct netif *ni)
{
	struct tcpgw *g = calloc(1, sizeof(*g));

	if (!g)
		return NULL;
	g->ni = ni;
	for (int i = 0; i < MAX_CONN; i++)
		g->c[i].fd = -1;
	return g;
}

static void conn_free(struct conn *c)
{
	if (c->fd >= 0)
		close(c->fd);
	free(c->sbuf);
	free(c->rbuf);
	memset(c, 0, sizeof(*c));
	c->fd = -1;
}

void tcpgw_free(struct tcpgw *g)
{
	if (!g)
		return;
	for (int i = 0; i < MAX_CONN; i++)
		if (g->c[i].state != C_FREE)
			conn_free(&g->c[i]);
	free(g);
}

int tcpgw_listen(struct tcpgw *g, uint16_t port, const char *path)
{
	if (g->nls == MAX_LISTEN)
		return k_seterr("gateway: at most %d forwarded ports", MAX_LISTEN);
	if (strlen(path) >= sizeof(g->ls[0].path))
		return k_seterr("%s: socket path too long", path);
	g->ls[g->nls].port = port;
	strcpy(g->ls[g->nls].path, path);
	g->nls++;
	return 0;
}

void tcpgw_set_log(struct tcpgw *g, void (*log)(const char *fmt, ...))
{
	g->log = log;
}

#define LOG(...) do { if (g->log) g->log(__VA_ARGS__); } while (0)

static const char *who(const struct conn *c, char *buf)
{
	char a[16];
	snprintf(buf, 40, "%s:%u->:%u", net_fmt_ip(c->ip, a), c->port, c->lport);
	return buf;
}

unsigned tcpgw_accepted(const struct tcpgw *g)
{
	return g->accepted;
}

/* What must hold of a connection's send side whatever a guest sends:
 * snd_una <= snd_nxt; snd_una is data_seq - 1 (our SYN unacknowledged),
 * data_seq, or data_seq + 1 (our FIN acknowledged); snd_nxt is at most
 * one past the data (the FIN).  Fuzz builds check it after every step. */
#ifdef FUZZING_BUILD_MODE_UNSAFE_FOR_PRODUCTION
static void invariants(const struct conn *c, const char *where)
{
	uint32_t d = c->snd_una - c->data_seq;

	if (c->state == C_FREE)
		return;
	if (!SEQ_LEQ(c->snd_una, c->snd_nxt) || !(d == 0 || d == 1 || d == 0xffffffffu) ||
	    !SEQ_LEQ(c->snd_nxt, c->data_seq + (uint32_t)c->slen + 1) || c->slen > SBUF || c->rlen > RBUF) {
		fprintf(stderr, "tcpgw: broken after %s: state %d una %u nxt %u data_seq %u slen %zu fin %d/%d\n",
			where, c->state, c->snd_una, c->snd_nxt, c->data_seq, c->slen, c->fin_sent, c->fin_acked);
		abort();
	}
}
#else
#define invariants(c, where) ((void)0)
#endif

/* ---- sending segments */

static uint16_t our_window(const struct conn *c)
{
	size_t room = RBUF - c->rlen;
	return (uint16_t)(room > 65535 ? 65535 : room);
}

static void segment(struct tcpgw *g, struct conn *c, uint32_t seq, uint8_t flags, uint16_t mss,
		    const uint8_t *data, size_t n)
{
	uint8_t f[NET_FRAME_MAX];
	struct net_ends e;

	memcpy(e.src_mac, g->ni->mac, 6);
	memcpy(e.dst_mac, c->mac, 6);
	e.saddr = g->ni->ip;
	e.daddr = c->ip;
	e.sport = c->lport;
	e.dport = c->port;
	uint16_t win = our_window(c);
	c->window_was_zero = win == 0;
	size_t fl = net_build_tcp(f, sizeof(f), &e, seq, c->rcv_nxt, flags, win, mss, data, n);
	if (fl)
		netif_send(g->ni, f, fl);
}

static void ack_now(struct tcpgw *g, struct conn *c)
{
	segment(g, c, c->snd_nxt, NET_TCP_ACK, 0, NULL, 0);
}

/* A RST for a segment that belongs to no connection (RFC 793, "reset
 * generation"). */
static void reset_for(struct tcpgw *g, const struct net_pkt *p)
{
	struct conn tmp;

	memset(&tmp, 0, sizeof(tmp));
	memcpy(tmp.mac, p->src, 6);
	tmp.ip = p->saddr;
	tmp.port = p->sport;
	tmp.lport = p->dport;
	tmp.rlen = RBUF;                /* window 0 */
	if (p->tcp_flags & NET_TCP_ACK) {
		tmp.rcv_nxt = 0;
		segment(g, &tmp, p->ack, NET_TCP_RST, 0, NULL, 0);
	} else {
		tmp.rcv_nxt = p->seq + (uint32_t)p->datalen + !!(p->tcp_flags & NET_TCP_SYN) +
			      !!(p->tcp_flags & NET_TCP_FIN);
		segment(g, &tmp, 0, NET_TCP_RST | NET_TCP_ACK, 0, NULL, 0);
	}
}

static void abort_conn(struct tcpgw *g, struct conn *c, const char *why)
{
	char w[40];

	LOG("gateway: %s reset: %s", who(c, w), why);
	segment(g, c, c->snd_nxt, NET_TCP_RST | NET_TCP_ACK, 0, NULL, 0);
	conn_free(c);
}

static void arm(struct conn *c)
{
	if (!c->rto_at)
		c->rto_at = k_now_ms() + c->rto;
}

/* Send what the guest's window allows: data from the host, then our FIN. */
static void output(struct tcpgw *g, struct conn *c)
{
	if (c->state != C_OPEN)
		return;
	for (;;) {
		size_t off = c->snd_nxt - c->data_seq;          /* into sbuf */
		if (off > c->slen)
			break;                  /* only the FIN is beyond the data */
		size_t inflight = c->snd_nxt - c->snd_una;
		size_t wnd = c->snd_wnd;
		if (off < c->slen) {
			size_t room = wnd > inflight ? wnd - inflight : 0;
			if (!room && inflight == 0)
				room = 1;       /* a zero window: probe it, a byte at a time */
			size_t n = c->slen - off;
			if (n > c->mss)
				n = c->mss;
			if (n > room)
				n = room;
			if (!n)
				break;
			segment(g, c, c->snd_nxt, NET_TCP_ACK | (off + n == c->slen ? NET_TCP_PSH : 0), 0,
				c->sbuf + off, n);
			c->snd_nxt += (uint32_t)n;
			arm(c);
			continue;
		}
		if (c->host_eof && !c->fin_sent) {
			segment(g, c, c->snd_nxt, NET_TCP_FIN | NET_TCP_ACK, 0, NULL, 0);
			c->snd_nxt++;
			c->fin_sent = 1;
			arm(c);
		}
		break;
	}
}

/* ---- the host side of a connection */

/* The host socket for a new connection: its descriptor, -1 when nothing
 * listens there, -2 when the listener's backlog is full for now (a Unix
 * socket says EAGAIN: no connection was made). */
static int host_connect(const char *path)
{
	struct sockaddr_un a;
	if (k_unix_addr(&a, path) < 0)
		return -1;
	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -1;
	if (connect(fd, (struct sockaddr *)&a, sizeof(a)) < 0 && errno != EINPROGRESS) {
		int busy = errno == EAGAIN;
		close(fd);
		return busy ? -2 : -1;
	}
	return fd;
}

/* Move what the guest sent on to the host, as far as it takes it. */
static void flush_to_host(struct tcpgw *g, struct conn *c)
{
	int was_full = c->window_was_zero;

	while (c->rlen) {
		ssize_t w = send(c->fd, c->rbuf, c->rlen, MSG_NOSIGNAL | MSG_DONTWAIT);
		if (w < 0 && errno == EINTR)
			continue;
		if (w < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
			break;
		if (w <= 0) {
			abort_conn(g, c, "the host socket refused data");
			return;
		}
		memmove(c->rbuf, c->rbuf + w, c->rlen - (size_t)w);
		c->rlen -= (size_t)w;
	}
	if (was_full && c->rlen < RBUF / 2)
		ack_now(g, c);                  /* tell the guest there is room again */
	if (c->peer_fin && !c->rlen && !c->shut_host) {
		shutdown(c->fd, SHUT_WR);
		c->shut_host = 1;
	}
}

static void read_from_host(struct tcpgw *g, struct conn *c)
{
	while (!c->host_eof && c->slen < SBUF) {
		ssize_t r = recv(c->fd, c->sbuf + c->slen, SBUF - c->slen, MSG_DONTWAIT);
		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
			break;
		if (r < 0) {
			abort_conn(g, c, strerror(errno));
			return;
		}
		if (r == 0) {
			char w[40];
			LOG("gateway: %s: the host side closed", who(c, w));
			c->host_eof = 1;
			break;
		}
		c->slen += (size_t)r;
	}
	output(g, c);
}

/* ---- segments from guests */

static struct conn *find(struct tcpgw *g, const struct net_pkt *p)
{
	for (int i = 0; i < MAX_CONN; i++) {
		struct conn *c = &g->c[i];
		if (c->state != C_FREE && c->ip == p->saddr && c->port == p->sport && c->lport == p->dport)
			return c;
	}
	return NULL;
}

static void accept_syn(struct tcpgw *g, const struct net_pkt *p)
{
	const struct listener *l = NULL;
	struct conn *c = NULL;

	for (int i = 0; i < g->nls; i++)
		if (g->ls[i].port == p->dport)
			l = &g->ls[i];
	for (int i = 0; i < MAX_CONN && !c; i++)
		if (g->c[i].state == C_FREE)
			c = &g->c[i];
	int fd = l && c ? host_connect(l->path) : -1;
	char a[16];
	if (fd == -2) {
		LOG("gateway: SYN from %s:%u: %s is busy, the guest will try again",
		    net_fmt_ip(p->saddr, a), p->sport, l->path);
		return;         /* no answer, and the guest sends its SYN again */
	}
	if (fd < 0) {
		LOG("gateway: SYN from %s:%u to port %u refused: %s", net_fmt_ip(p->saddr, a), p->sport,
		    p->dport, !l ? "not a forwarded port" : !c ? "too many connections" : strerror(errno));
		reset_for(g, p);                /* nothing listens there, or no room */
		return;
	}
	memset(c, 0, sizeof(*c));
	c->fd = fd;
	c->sbuf = malloc(SBUF);
	c->rbuf = malloc(RBUF);
	if (!c->sbuf || !c->rbuf) {
		conn_free(c);
		reset_for(g, p);
		return;
	}
#ifdef FUZZING_BUILD_MODE_UNSAFE_FOR_PRODUCTION
	c->iss = 0;                     /* a fuzzer must be able to finish the handshake */
#else
	if (getrandom(&c->iss, sizeof(c->iss), GRND_NONBLOCK) != sizeof(c->iss))
		c->iss = (uint32_t)k_now_ms() * 2654435761u;
#endif
	memcpy(c->mac, p->src, 6);
	c->ip = p->saddr;
	c->port = p->sport;
	c->lport = p->dport;
	c->state = C_SYN_RCVD;
	c->rcv_nxt = p->seq + 1;
	c->snd_una = c->iss;
	c->snd_nxt = c->iss + 1;
	c->data_seq = c->iss + 1;
	c->snd_wnd = p->window;
	c->mss = p->mss ? (p->mss < OUR_MSS ? p->mss : OUR_MSS) : 536;
	c->rto = RTO_MIN;
	g->accepted++;
	LOG("gateway: %s:%u->:%u opened, to %s", net_fmt_ip(p->saddr, a), p->sport, p->dport, l->path);
	segment(g, c, c->iss, NET_TCP_SYN | NET_TCP_ACK, OUR_MSS, NULL, 0);
	arm(c);
}

static void tcp_input(struct tcpgw *g, const struct net_pkt *p)
{
	struct conn *c = find(g, p);
	uint8_t fl = p->tcp_flags;

	if (!c) {
		if ((fl & NET_TCP_SYN) && !(fl & (NET_TCP_ACK | NET_TCP_RST)))
			accept_syn(g, p);
		else if (!(fl & NET_TCP_RST))
			reset_for(g, p);
		return;
	}
	if (fl & NET_TCP_RST) {
		char w[40];
		LOG("gateway: %s reset by the guest", who(c, w));
		conn_free(c);
		return;
	}
	if (fl & NET_TCP_SYN) {
		/* Our SYN-ACK was lost: say it again. */
		if (c->state == C_SYN_RCVD && p->seq + 1 == c->rcv_nxt)
			segment(g, c, c->iss, NET_TCP_SYN | NET_TCP_ACK, OUR_MSS, NULL, 0);
		else
			ack_now(g, c);
		return;
	}
	if (!(fl & NET_TCP_ACK))
		return;
	/* Acknowledgements. */
	uint32_t ack = p->ack;
	if (c->state == C_SYN_RCVD) {
		if (ack != c->iss + 1) {
			char w[40];
			LOG("gateway: %s: the handshake's ACK is for another sequence", who(c, w));
			reset_for(g, p);
			return;
		}
		c->state = C_OPEN;
		c->snd_una = ack;
		c->rto_at = 0;
		c->tries = 0;
	} else if (ack - c->snd_una != 0 && ack - c->snd_una <= c->snd_nxt - c->snd_una) {
		/* Distances, unsigned: a signed comparison cannot tell which way
		 * round two numbers 2^31 apart are, and a guest may send that. */
		uint32_t data_end = c->data_seq + (uint32_t)c->slen;
		uint32_t upto = SEQ_LT(data_end, ack) ? data_end : ack;
		size_t done = upto - c->data_seq;
		memmove(c->sbuf, c->sbuf + done, c->slen - done);
		c->slen -= done;
		c->data_seq = upto;
		if (c->fin_sent && ack == c->snd_nxt)
			c->fin_acked = 1;
		c->snd_una = ack;
		invariants(c, "an acknowledgement");
		c->dupacks = 0;
		c->tries = 0;
		c->rto = RTO_MIN;
		c->rto_at = 0;
		if (c->snd_una != c->snd_nxt)
			arm(c);
	} else if (ack == c->snd_una && c->snd_una != c->snd_nxt && !p->datalen &&
		   !(fl & NET_TCP_FIN) && p->window == c->snd_wnd) {
		if (++c->dupacks == 3) {        /* fast retransmit */
			c->snd_nxt = c->snd_una;
			if (c->fin_sent && !c->fin_acked)
				c->fin_sent = 0;
			c->rto_at = 0;
		}
	}
	c->snd_wnd = p->window;

	/* Data, in order only; what overlaps what we have is trimmed. */
	int need_ack = 0;
	if (p->datalen) {
		need_ack = 1;
		uint32_t seq = p->seq;
		const uint8_t *d = p->data;
		size_t n = p->datalen;
		if (SEQ_LT(seq, c->rcv_nxt)) {
			uint32_t skip = c->rcv_nxt - seq;
			if (skip >= n)
				n = 0;
			else {
				d += skip;
				n -= skip;
				seq = c->rcv_nxt;
			}
		}
		if (n && seq == c->rcv_nxt && !c->peer_fin) {
			size_t room = RBUF - c->rlen;
			if (n > room)
				n = room;       /* the rest comes again, when there is room */
			memcpy(c->rbuf + c->rlen, d, n);
			c->rlen += n;
			c->rcv_nxt += (uint32_t)n;
		}
	}
	if ((fl & NET_TCP_FIN) && p->seq + (uint32_t)p->datalen == c->rcv_nxt && !c->peer_fin) {
		c->peer_fin = 1;
		c->rcv_nxt++;
		need_ack = 1;
	} else if (fl & NET_TCP_FIN) {
		need_ack = 1;
	}
	if (c->rlen || c->peer_fin)
		flush_to_host(g, c);
	if (c->state == C_FREE)
		return;
	output(g, c);
	if (need_ack)
		ack_now(g, c);
	invariants(c, "a segment");
	if (c->peer_fin && c->fin_acked && !c->rlen) {
		char w[40];
		LOG("gateway: %s closed", who(c, w));
		conn_free(c);                   /* both ways closed */
	}
}

void tcpgw_frame(struct tcpgw *g, const uint8_t *frame, size_t n)
{
	struct net_pkt p;

	if (net_parse_ex(&p, frame, n, !g->ni->csum_partial) < 0)
		return;
	if (netif_answer(g->ni, &p))
		return;
	if (p.ethertype == NET_ETH_IPV4 && !p.fragment && p.proto == NET_IP_TCP && p.daddr == g->ni->ip)
		tcp_input(g, &p);
}

/* ---- timers and the poll loop */

static void timers(struct tcpgw *g)
{
	long long now = k_now_ms();

	for (int i = 0; i < MAX_CONN; i++) {
		struct conn *c = &g->c[i];
		if (c->state == C_FREE || !c->rto_at || c->rto_at > now)
			continue;
		if (++c->tries > MAX_TRIES) {
			abort_conn(g, c, "no acknowledgement after 10 tries");
			continue;
		}
		c->rto = c->rto * 2 > RTO_MAX ? RTO_MAX : c->rto * 2;
		c->rto_at = 0;
		if (c->state == C_SYN_RCVD) {
			segment(g, c, c->iss, NET_TCP_SYN | NET_TCP_ACK, OUR_MSS, NULL, 0);
			arm(c);
			continue;
		}
		/* Go back to the first unacknowledged byte and send again. */
		c->snd_nxt = c->snd_una;
		if (c->fin_sent && !c->fin_acked)
			c->fin_sent = 0;
		output(g, c);
		arm(c);
		invariants(c, "a retransmission");
	}
}

int tcpgw_pollfds(struct tcpgw *g, struct pollfd *pf, int max, int *timeout)
{
	int n = 0;
	long long next = 0, now = k_now_ms();

	if (max < 2)
		return 0;
	pf[n++] = (struct pollfd){ .fd = netif_fd(g->ni), .events = POLLIN };
	pf[n++] = (struct pollfd){ .fd = netif_ctl_fd(g->ni), .events = POLLIN };
	for (int i = 0; i < MAX_CONN && n < max; i++) {
		struct conn *c = &g->c[i];
		if (c->state == C_FREE)
			continue;
		short ev = 0;
		if (c->state == C_OPEN && !c->host_eof && c->slen < SBUF)
			ev |= POLLIN;
		if (c->rlen)
			ev |= POLLOUT;
		/* Nothing to wait for: left out (-1), or a hung-up socket would
		 * report POLLHUP on every call. */
		pf[n++] = (struct pollfd){ .fd = ev ? c->fd : -1, .events = ev };
		if (c->rto_at && (!next || c->rto_at < next))
			next = c->rto_at;
	}
	*timeout = next ? (int)(next > now ? next - now : 0) : -1;
	return n;
}

int tcpgw_run(struct tcpgw *g, const struct pollfd *pf, int n)
{
	static uint8_t frame[NET_FRAME_MAX + 64];

	if (n >= 2 && pf[1].fd >= 0 && pf[1].revents) {
		char junk[256];
		ssize_t r = read(pf[1].fd, junk, sizeof(junk));
		if (r == 0 || (r < 0 && errno != EAGAIN && errno != EINTR))
			return k_seterr("%s: the switch went away", g->ni->name);
	}
	for (int k = 0; k < 256; k++) {
		ssize_t r = netif_recv(g->ni, frame, sizeof(frame));
		if (r <= 0)
			break;
		tcpgw_frame(g, frame, (size_t)r);
	}
	for (int i = 2; i < n; i++) {
		if (!pf[i].revents)
			continue;
		struct conn *c = NULL;
		for (int k = 0; k < MAX_CONN && !c; k++)
			if (g->c[k].state != C_FREE && g->c[k].fd == pf[i].fd)
				c = &g->c[k];
		if (!c)
			continue;               /* closed while handling frames */
		if (pf[i].revents & POLLOUT)
			flush_to_host(g, c);
		if (c->state != C_FREE && (pf[i].revents & (POLLIN | POLLHUP | POLLERR)))
			read_from_host(g, c);
		if (c->state != C_FREE && c->peer_fin && c->fin_acked && !c->rlen)
			conn_free(c);
	}
	timers(g);
	return 0;
}
