#include "guest/mconsole.h"
#include "core/err.h"
#include "core/sys.h"
#include "core/xio.h"

#include <errno.h>
#include <poll.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#define MC_MAGIC 0xcafebabeu
#define MC_VERSION 2
#define MC_MAX 512

struct mc_request { uint32_t magic, version, len; char data[MC_MAX]; };
struct mc_reply { uint32_t err, more, len; char data[MC_MAX]; };

int mconsole_cmd(const char *sock, const char *cmd, char *reply, size_t cap, int timeout_ms)
{
	struct sockaddr_un to, me;
	struct mc_request rq;
	size_t n = strlen(cmd), used = 0;

	if (n >= MC_MAX)
		return k_seterr("mconsole: command too long");
	if (k_unix_addr(&to, sock) < 0)
		return -1;
	int fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return k_seterr("socket:");
	/* An address of our own (autobound, abstract): the kernel answers to it. */
	memset(&me, 0, sizeof(me));
	me.sun_family = AF_UNIX;
	if (bind(fd, (struct sockaddr *)&me, sizeof(me.sun_family)) < 0) {
		close(fd);
		return k_seterr("mconsole: bind:");
	}
	memset(&rq, 0, sizeof(rq));
	rq.magic = MC_MAGIC;
	rq.version = MC_VERSION;
	rq.len = (uint32_t)n;
	memcpy(rq.data, cmd, n);
	if (sendto(fd, &rq, sizeof(rq), 0, (struct sockaddr *)&to, sizeof(to)) < 0) {
		int e = errno;
		close(fd);
		errno = e;
		return k_seterr("%s:", sock);
	}
	if (reply && cap)
		reply[0] = 0;
	for (;;) {
		struct pollfd p = { .fd = fd, .events = POLLIN };
		int r = poll(&p, 1, timeout_ms);
		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0) {
			close(fd);
			return k_seterr("%s: no answer to '%s'", sock, cmd);
		}
		struct mc_reply rp;
		ssize_t got = recv(fd, &rp, sizeof(rp), 0);
		if (got < (ssize_t)offsetof(struct mc_reply, data)) {
			close(fd);
			return k_seterr("%s: a short answer to '%s'", sock, cmd);
		}
		size_t len = rp.len;
		if (len > (size_t)got - offsetof(struct mc_reply, data))
			len = (size_t)got - offsetof(struct mc_reply, data);
		if (reply && used + 1 < cap) {
			size_t k = len < cap - used - 1 ? len : cap - used - 1;
			memcpy(reply + used, rp.data, k);
			used += k;
			reply[used] = 0;
		}
		if (rp.err) {
			close(fd);
			return k_seterr("%s: '%s' failed: %.*s", sock, cmd, (int)len, rp.data);
		}
		if (!rp.more)
			break;
	}
	close(fd);
	return 0;
}
