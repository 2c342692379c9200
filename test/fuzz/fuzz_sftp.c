/* libFuzzer target: a hostile SFTP server, against the SFTP client and
 * the filesystem served from it (--home ssh://).
 *
 * A thread plays the server on a socket pair.  It answers the session's
 * setup (INIT, limits, REALPATH, STAT) as OpenSSH would, then answers
 * each request with the input's next chunk: a u16 length and that many
 * bytes, the first the reply's type, the second odd when the next four
 * bytes are the id to use (else the request's own id), the rest the
 * reply's body.  When the input ends, the server hangs up.  Meanwhile
 * the guest's side runs a fixed round of FUSE requests (lookups, a
 * listing, reads in pieces, writes, links, renames, statfs): whatever
 * the server says, each gets an answer, and nothing is read out of
 * bounds. */
#include "core/bytes.h"
#include "share/sftpfs.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

struct server {
	int fd;
	const uint8_t *data;
	size_t size, at;
};

static int read_all(int fd, uint8_t *p, size_t n)
{
	while (n) {
		ssize_t k = read(fd, p, n);
		if (k <= 0)
			return -1;
		p += k;
		n -= (size_t)k;
	}
	return 0;
}

static void send_reply(int fd, uint8_t type, uint32_t id, const uint8_t *body, size_t n, int with_id)
{
	uint8_t *b = malloc(n + 9);
	size_t h = with_id ? 9 : 5;
	k_put_be32(b, (uint32_t)(n + h - 4));
	b[4] = type;
	k_put_be32(b + 5, id);
	memcpy(b + h, body, n);
	send(fd, b, n + h, MSG_NOSIGNAL);
	free(b);
}

static size_t put_str(uint8_t *p, const char *s)
{
	k_put_be32(p, (uint32_t)strlen(s));
	memcpy(p + 4, s, strlen(s));
	return 4 + strlen(s);
}

static void *serve(void *arg)
{
	struct server *sv = arg;
	uint8_t hdr[4], body[8192];
	int setup = 1;

	for (;;) {
		if (read_all(sv->fd, hdr, 4) < 0)
			break;
		uint32_t len = k_be32(hdr);
		uint8_t *req = malloc(len ? len : 1);
		if (read_all(sv->fd, req, len) < 0 || len < 5) {
			free(req);
			break;
		}
		uint8_t type = req[0];
		uint32_t id = k_be32(req + 1);
		size_t n = 0;
		if (type == SFTP_INIT) {
			k_put_be32(body, 3);
			n = 4;
			const char *ext[] = { "posix-rename@openssh.com", "statvfs@openssh.com", "hardlink@openssh.com",
					      "fsync@openssh.com", "limits@openssh.com", "lsetstat@openssh.com" };
			for (size_t i = 0; i < 6; i++) {
				n += put_str(body + n, ext[i]);
				n += put_str(body + n, "1");
			}
			send_reply(sv->fd, SFTP_VERSION, 0, body, n, 0);
			free(req);
			continue;
		}
		if (setup && type == SFTP_EXTENDED) {           /* limits */
			memset(body, 0, 32);
			k_put_be64(body, 262144);
			k_put_be64(body + 8, 100000);
			k_put_be64(body + 16, 100000);
			send_reply(sv->fd, SFTP_EXTENDED_REPLY, id, body, 32, 1);
		} else if (setup && type == SFTP_REALPATH) {
			k_put_be32(body, 1);
			n = 4 + put_str(body + 4, "/srv");
			n += put_str(body + n, "");
			k_put_be32(body + n, 0);
			send_reply(sv->fd, SFTP_NAME, id, body, n + 4, 1);
		} else if (setup && type == SFTP_STAT) {
			k_put_be32(body, SFTP_A_PERM);
			k_put_be32(body + 4, 040755);
			send_reply(sv->fd, SFTP_ATTRS, id, body, 8, 1);
			setup = 0;
		} else {
			if (sv->at + 2 > sv->size) {
				free(req);
				break;
			}
			size_t l = k_be16(sv->data + sv->at);
			sv->at += 2;
			if (l > sv->size - sv->at)
				l = sv->size - sv->at;
			const uint8_t *c = sv->data + sv->at;
			sv->at += l;
			if (l >= 2) {
				uint32_t use = id;
				size_t skip = 2;
				if ((c[1] & 1) && l >= 6) {
					use = k_be32(c + 2);
					skip = 6;
				}
				send_reply(sv->fd, c[0], use, c + skip, l - skip, 1);
			} else {
				send_reply(sv->fd, SFTP_STATUS, id, (const uint8_t *)"\0\0\0\4", 4, 1);
			}
		}
		free(req);
	}
	shutdown(sv->fd, SHUT_RDWR);
	return NULL;
}

/* One FUSE request: header, then ARGS. */
static void req(struct sftpfs *f, uint32_t op, uint64_t node, const void *args, size_t n)
{
	static uint8_t out[(1u << 20) + 4096];
	uint8_t in[4096];
	if (n > sizeof(in) - 40)
		return;
	memset(in, 0, 40);
	k_put_le32(in, (uint32_t)(40 + n));
	k_put_le32(in + 4, op);
	k_put_le64(in + 8, 1);
	k_put_le64(in + 16, node);
	if (n)
		memcpy(in + 40, args, n);
	/* (FORGET with no room for an answer, as the guest sends it.) */
	sftpfs_serve(f, in, 40 + n, NULL, 0, 0, out, fw_unanswered(op) ? 0 : sizeof(out));
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	int sp[2];
	if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sp) < 0)
		return 0;
	struct server sv = { sp[1], data, size, 0 };
	pthread_t t;
	if (pthread_create(&t, NULL, serve, &sv) != 0) {
		close(sp[0]);
		close(sp[1]);
		return 0;
	}
	struct sftp *c = sftp_attach(sp[0], "fuzz", "/srv", 2);
	if (c) {
		struct sftpfs *f = sftpfs_open(c, FSHARE_CACHE_AUTO);
		uint8_t a[256];
		memset(a, 0, sizeof(a));
		k_put_le32(a, 7);
		k_put_le32(a + 4, 31);
		req(f, OP_INIT, 0, a, 64);
		req(f, OP_LOOKUP, 1, "a", 2);
		req(f, OP_LOOKUP, 1, "d", 2);
		req(f, OP_GETATTR, 2, a, 16);
		req(f, OP_READLINK, 2, NULL, 0);
		req(f, OP_OPENDIR, 1, a, 8);
		memset(a, 0, sizeof(a));
		k_put_le32(a + 16, 65536);
		req(f, OP_READDIRPLUS, 1, a, 40);
		req(f, OP_READDIR, 1, a, 40);
		req(f, OP_RELEASEDIR, 1, a, 16);
		memset(a, 0, sizeof(a));
		k_put_le32(a, 2);                               /* O_RDWR */
		req(f, OP_OPEN, 2, a, 8);
		memset(a, 0, sizeof(a));
		k_put_le32(a + 16, 300000);                     /* READ: pieces of 100000 */
		req(f, OP_READ, 2, a, 40);
		uint8_t w[40 + 1000];
		memset(w, 'x', sizeof(w));
		memset(w, 0, 40);
		k_put_le32(w + 16, 1000);
		req(f, OP_WRITE, 2, w, sizeof(w));
		req(f, OP_FSYNC, 2, a, 16);
		k_put_le32(w + 20, 4);                          /* FWRITE_KILL_SUIDGID */
		req(f, OP_WRITE, 2, w, sizeof(w));
		req(f, OP_FLUSH, 2, a, 24);                     /* the writes' answers */
		memset(a, 0, sizeof(a));
		k_put_le32(a, 1 | 8 | 16 | 32);                 /* mode, size, times */
		k_put_le32(a + 68, 0644);
		req(f, OP_SETATTR, 2, a, 88);
		memset(a, 0, sizeof(a));
		k_put_le32(a, 2 | 4 | (1u << 11));              /* uid, gid, kill set-user-ID */
		req(f, OP_SETATTR, 2, a, 88);
		req(f, OP_STATFS, 1, NULL, 0);
		memset(a, 0, sizeof(a));
		k_put_le32(a, 0755);
		memcpy(a + 8, "newdir", 7);
		req(f, OP_MKDIR, 1, a, 15);
		req(f, OP_SYMLINK, 1, "ln\0/etc", 8);
		memset(a, 0, sizeof(a));
		k_put_le64(a, 1);
		memcpy(a + 8, "a\0b", 4);
		req(f, OP_RENAME, 1, a, 12);
		memset(a, 0, sizeof(a));
		k_put_le64(a, 2);
		memcpy(a + 8, "hl", 3);
		req(f, OP_LINK, 1, a, 11);
		memset(a, 0, sizeof(a));
		k_put_le32(a, 0101 | 0200);                     /* O_WRONLY|O_CREAT|O_EXCL */
		k_put_le32(a + 4, 0600);
		memcpy(a + 16, "new", 4);
		req(f, OP_CREATE, 1, a, 20);
		req(f, OP_UNLINK, 1, "b", 2);
		req(f, OP_RMDIR, 1, "newdir", 7);
		memset(a, 0, sizeof(a));
		req(f, OP_RELEASE, 2, a, 8);
		k_put_le64(a, 1);
		req(f, OP_FORGET, 2, a, 8);
		sftpfs_close(f);
	}
	pthread_join(t, NULL);
	close(sp[1]);
	return 0;
}
