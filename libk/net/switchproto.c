#include "net/switchproto.h"
#include "core/err.h"
#include "core/sys.h"
#include "core/xio.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

/* The wire layout is the host's: UML and the switch run on the same
 * machine, and the kernel writes its struct as it is in memory. */
static uint32_t host32(const uint8_t *p)
{
	uint32_t v;
	memcpy(&v, p, 4);
	return v;
}

int sw_parse_request(struct sw_request *r, const uint8_t *buf, size_t n)
{
	memset(r, 0, sizeof(*r));
	if (n >= 4 && host32(buf) != SW_MAGIC)
		return k_seterr("bad magic 0x%08x (not a UML switch request)", host32(buf));
	if (n < SW_REQ_MIN)
		return 0;
	r->magic = host32(buf);
	r->version = host32(buf + 4);
	r->type = host32(buf + 8);
	if (r->version != SW_VERSION)
		return k_seterr("protocol version %u is not supported (only %d)", r->version, SW_VERSION);
	if (r->type != SW_REQ_NEW_CONTROL && r->type != SW_REQ_STATUS)
		return k_seterr("request type %u is unknown", r->type);
	memcpy(&r->addr, buf + 12, sizeof(r->addr));
	if (r->type == SW_REQ_NEW_CONTROL && r->addr.sun_family != AF_UNIX)
		return k_seterr("the port's address family %u is not AF_UNIX", r->addr.sun_family);
	if (n >= SW_REQ_VDE) {
		memcpy(r->descr, buf + SW_REQ_MIN, 128);
		r->descr[128] = 0;
	}
	return 1;
}

size_t sw_build_request(uint8_t buf[SW_REQ_KERNEL], uint32_t type, const struct sockaddr_un *addr)
{
	uint32_t v[3] = { SW_MAGIC, SW_VERSION, type };

	memset(buf, 0, SW_REQ_KERNEL);
	memcpy(buf, v, sizeof(v));
	memcpy(buf + 12, addr, sizeof(*addr));
	return SW_REQ_KERNEL;
}

int sw_addr_match(const struct sockaddr_un *from, socklen_t fromlen, const struct sockaddr_un *reg)
{
	size_t off = offsetof(struct sockaddr_un, sun_path);

	if (fromlen <= off || fromlen > sizeof(*from))
		return 0;
	size_t n = fromlen - off;
	if (from->sun_path[0] == 0)     /* abstract: every byte of the name counts */
		return !memcmp(from->sun_path, reg->sun_path, n);
	/* a path: up to its NUL */
	return !strncmp(from->sun_path, reg->sun_path, n) &&
	       strnlen(reg->sun_path, sizeof(reg->sun_path)) == strnlen(from->sun_path, n);
}

static int ctl_connect(const char *path, int *fd)
{
	struct sockaddr_un a;

	*fd = -1;
	if (k_unix_addr(&a, path) < 0)
		return -1;
	*fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (*fd < 0)
		return k_seterr("socket:");
	if (connect(*fd, (struct sockaddr *)&a, sizeof(a)) < 0) {
		int e = errno;
		close(*fd);
		*fd = -1;
		errno = e;
		return k_seterr("%s: no switch answers:", path);
	}
	return 0;
}

int sw_alive(const char *ctl_path)
{
	int fd;

	if (ctl_connect(ctl_path, &fd) < 0)
		return 0;
	close(fd);
	return 1;
}

/* Read exactly N bytes within TIMEOUT_MS, on a blocking or non-blocking FD. */
static int read_within(int fd, void *buf, size_t n, int timeout_ms)
{
	size_t got = 0;

	while (got < n) {
		struct pollfd p = { .fd = fd, .events = POLLIN };
		int r = poll(&p, 1, timeout_ms);
		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0) {
			errno = r == 0 ? ETIMEDOUT : errno;
			return -1;
		}
		ssize_t m = read(fd, (char *)buf + got, n - got);
		if (m < 0 && (errno == EINTR || errno == EAGAIN))
			continue;
		if (m <= 0) {
			errno = m == 0 ? ECONNRESET : errno;
			return -1;
		}
		got += (size_t)m;
	}
	return 0;
}

const char *sw_addr_service(const struct sockaddr_un *a, char *buf, size_t cap)
{
	const char *n = a->sun_path + 1;
	size_t tl = strlen(SW_SERVICE_TAG);

	if (a->sun_path[0] || memcmp(n, SW_SERVICE_TAG, tl))
		return NULL;
	size_t i = 0;
	for (const char *c = n + tl; i + 1 < cap && c < a->sun_path + sizeof(a->sun_path) &&
	     ((*c >= 'a' && *c <= 'z') || (*c >= '0' && *c <= '9') || *c == '-'); c++)
		buf[i++] = *c;
	buf[i] = 0;
	return buf;
}

int sw_port_open(struct sw_port *p, const char *ctl_path, const char *service)
{
	struct sockaddr_un me;
	struct timeval tv;
	struct { char zero; int pid; int usecs; } name;
	uint8_t req[SW_REQ_KERNEL];

	p->ctl = p->data = -1;
	if (ctl_connect(ctl_path, &p->ctl) < 0)
		return -1;
	/* An abstract address, the full sockaddr_un long, as the kernel binds. */
	memset(&me, 0, sizeof(me));
	memset(&name, 0, sizeof(name));
	me.sun_family = AF_UNIX;
	gettimeofday(&tv, NULL);
	name.pid = getpid();
	name.usecs = (int)tv.tv_usec;
	if (service)
		snprintf(me.sun_path + 1, sizeof(me.sun_path) - 1, "%s%s:%d:%d", SW_SERVICE_TAG, service,
			 name.pid, name.usecs);
	else
		memcpy(me.sun_path, &name, sizeof(name));
	p->data = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
	if (p->data < 0 || bind(p->data, (struct sockaddr *)&me, sizeof(me)) < 0) {
		k_seterr("datagram socket for %s:", ctl_path);
		goto fail;
	}
	if (service) {
		/* A server answers many: room for a burst. */
		int sz = 1 << 20;
		setsockopt(p->data, SOL_SOCKET, SO_RCVBUF, &sz, sizeof(sz));
	}
	sw_build_request(req, SW_REQ_NEW_CONTROL, &me);
	if (full_write(p->ctl, req, sizeof(req)) < 0) {
		k_seterr("%s: sending the port request:", ctl_path);
		goto fail;
	}
	if (read_within(p->ctl, &p->sw, sizeof(p->sw), 5000) < 0) {
		k_seterr("%s: the switch did not answer the port request:", ctl_path);
		goto fail;
	}
	if (p->sw.sun_family != AF_UNIX) {
		k_seterr("%s: the switch answered with a bad address", ctl_path);
		goto fail;
	}
	/* Frames go to an abstract socket name, which is private to a network
	 * namespace: a switch in another one takes the request on its path but
	 * would never hear a frame. */
	int probe = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	if (probe < 0 || connect(probe, (struct sockaddr *)&p->sw, sizeof(p->sw)) < 0) {
		k_seterr("%s: the switch's frame socket cannot be reached from here (is the switch "
			 "in another network namespace?):", ctl_path);
		if (probe >= 0)
			close(probe);
		goto fail;
	}
	close(probe);
	fcntl(p->ctl, F_SETFL, fcntl(p->ctl, F_GETFL) | O_NONBLOCK);
	return 0;
fail:
	sw_port_close(p);
	return -1;
}

ssize_t sw_port_send(struct sw_port *p, const void *frame, size_t n)
{
	return sendto(p->data, frame, n, MSG_DONTWAIT, (struct sockaddr *)&p->sw, sizeof(p->sw));
}

ssize_t sw_port_recv(struct sw_port *p, void *frame, size_t cap)
{
	for (;;) {
		struct sockaddr_un from;
		socklen_t fl = sizeof(from);
		ssize_t r = recvfrom(p->data, frame, cap, MSG_DONTWAIT | MSG_TRUNC,
				     (struct sockaddr *)&from, &fl);
		if (r < 0)
			return (errno == EAGAIN || errno == EWOULDBLOCK) ? 0 : -1;
		if ((size_t)r > cap)
			continue;               /* too big to be a frame: dropped */
		if (!sw_addr_match(&from, fl, &p->sw))
			continue;               /* not from our switch */
		return r;
	}
}

void sw_port_close(struct sw_port *p)
{
	if (p->ctl >= 0)
		close(p->ctl);
	if (p->data >= 0)
		close(p->data);
	p->ctl = p->data = -1;
}

int sw_status(const char *ctl_path, char **text)
{
	struct sockaddr_un none;
	uint8_t req[SW_REQ_KERNEL];
	int fd;

	if (ctl_connect(ctl_path, &fd) < 0)
		return -1;
	memset(&none, 0, sizeof(none));
	none.sun_family = AF_UNIX;
	sw_build_request(req, SW_REQ_STATUS, &none);
	if (full_write(fd, req, sizeof(req)) < 0) {
		close(fd);
		return k_seterr("%s:", ctl_path);
	}
	size_t cap = 4096, len = 0;
	char *buf = xmalloc(cap);
	for (;;) {
		struct pollfd pf = { .fd = fd, .events = POLLIN };
		int r = poll(&pf, 1, 5000);
		if (r < 0 && errno == EINTR)
			continue;
		if (r == 0) {
			close(fd);
			free(buf);
			return k_seterr("%s: no status report (is it uml_switch? only umlk umlswitch reports)",
					ctl_path);
		}
		if (len + 1 >= cap)
			buf = xrealloc(buf, cap *= 2);
		ssize_t n = read(fd, buf + len, cap - len - 1);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			break;
		len += (size_t)n;
	}
	close(fd);
	buf[len] = 0;
	if (!len) {
		free(buf);
		return k_seterr("%s: the switch closed the connection without a report"
				" (is it uml_switch? only umlk umlswitch reports)", ctl_path);
	}
	*text = buf;
	return 0;
}
