/* sftp: a client of the SSH File Transfer Protocol, version 3 (the one
 * OpenSSH's sftp-server speaks), over the user's own ssh.
 *
 * The session is an ssh process started as "ssh [OPTIONS] -s HOST sftp"
 * (so the user's keys, agent, ~/.ssh/config and known_hosts apply),
 * talked to over a socket pair.  Many requests are in flight at once:
 * any thread sends, one reader thread hands each reply to the thread
 * that waits for it, by id.
 *
 * A dead link never hangs a caller: every request has a deadline (the
 * session's timeout); one that passes, or the ssh process ending, loses
 * the connection: every request in flight fails with EIO at once, one
 * line on standard error says what happened, and the next request
 * starts ssh again (in batch mode: no question can be asked then).
 * Handles belong to the connection that opened them (the GEN that
 * sftp_expect_handle gives): a handle from a lost connection is refused,
 * never sent on a new one.
 *
 * Replies are hostile input: a length beyond the limit, an id never sent,
 * a reply of the wrong kind end the connection with a line naming the
 * server and what was wrong. */
#ifndef UMLK_SFTP_H
#define UMLK_SFTP_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

/* Packet types. */
enum {
	SFTP_INIT = 1, SFTP_VERSION = 2, SFTP_OPEN = 3, SFTP_CLOSE = 4, SFTP_READ = 5, SFTP_WRITE = 6,
	SFTP_LSTAT = 7, SFTP_FSTAT = 8, SFTP_SETSTAT = 9, SFTP_FSETSTAT = 10, SFTP_OPENDIR = 11,
	SFTP_READDIR = 12, SFTP_REMOVE = 13, SFTP_MKDIR = 14, SFTP_RMDIR = 15, SFTP_REALPATH = 16,
	SFTP_STAT = 17, SFTP_RENAME = 18, SFTP_READLINK = 19, SFTP_SYMLINK = 20,
	SFTP_STATUS = 101, SFTP_HANDLE = 102, SFTP_DATA = 103, SFTP_NAME = 104, SFTP_ATTRS = 105,
	SFTP_EXTENDED = 200, SFTP_EXTENDED_REPLY = 201,
};

/* SSH_FXF_* open flags. */
#define SFTP_O_READ 0x01
#define SFTP_O_WRITE 0x02
#define SFTP_O_APPEND 0x04
#define SFTP_O_CREAT 0x08
#define SFTP_O_TRUNC 0x10
#define SFTP_O_EXCL 0x20

/* SSH_FILEXFER_ATTR_* */
#define SFTP_A_SIZE 0x1
#define SFTP_A_UIDGID 0x2
#define SFTP_A_PERM 0x4
#define SFTP_A_TIMES 0x8
#define SFTP_A_EXTENDED 0x80000000u

/* Status codes. */
#define SFTP_OK 0
#define SFTP_EOF 1
#define SFTP_NO_SUCH_FILE 2
#define SFTP_PERMISSION_DENIED 3
#define SFTP_FAILURE 4
#define SFTP_BAD_MESSAGE 5
#define SFTP_OP_UNSUPPORTED 8

struct sftp_attr {
	uint32_t flags;                 /* SFTP_A_* present */
	uint64_t size;
	uint32_t uid, gid, perm;        /* perm: st_mode, its type bits too (OpenSSH sends them) */
	uint32_t atime, mtime;
};

/* Extensions the server offered, that a filesystem needs. */
#define SFTP_X_POSIX_RENAME (1u << 0)
#define SFTP_X_STATVFS (1u << 1)
#define SFTP_X_HARDLINK (1u << 2)
#define SFTP_X_FSYNC (1u << 3)
#define SFTP_X_LIMITS (1u << 4)
#define SFTP_X_LSETSTAT (1u << 5)

/* Where: ssh://[USER@]HOST[:PORT]/PATH.  PATH is absolute, or relative
 * to the login's home when it starts "~/" ("~" alone: the home). */
struct sftp_target {
	char user[64], host[256], path[1024];
	unsigned port;                  /* 0: ssh's own choice */
};
/* Parse URL into T: 0, or -1 with k_seterr() naming what is wrong. */
int sftp_parse_url(const char *url, struct sftp_target *t);

struct sftp;

/* Connect to T with the command SSH_COMMAND (NULL: "ssh"; split at
 * blanks, as sshfs's ssh_command), each request waiting at most TIMEOUT
 * seconds.  INTERACTIVE: ssh may ask on the terminal (password, host
 * key); otherwise it runs in batch mode.  The path must be a directory;
 * it is resolved on the server (sftp_root).  NULL with k_seterr(), ssh's
 * own last line in it, when it fails. */
struct sftp *sftp_connect(const struct sftp_target *t, const char *ssh_command, unsigned timeout,
			  int interactive);
/* The same over FD, a connected socket to a server (tests, fuzzing):
 * never connected again when lost.  NAME is for messages. */
struct sftp *sftp_attach(int fd, const char *name, const char *path, unsigned timeout);
void sftp_close(struct sftp *s);
const char *sftp_root(const struct sftp *s);    /* absolute, resolved by the server */
unsigned sftp_extensions(const struct sftp *s);
/* The most one READ or WRITE carries (the server's limits, if it gave
 * them; else 32 KiB), and the largest packet. */
uint32_t sftp_max_read(const struct sftp *s);
uint32_t sftp_max_write(const struct sftp *s);

/* ---- requests
 *
 * A request's arguments are built in a struct sftp_out (after the id the
 * session adds); an optional DATA tail (a WRITE's bytes, as iovecs) is
 * sent after them without a copy.  A reply is a struct sftp_in over its
 * payload (after its id). */
struct sftp_out {
	uint8_t buf[4096 + 256];
	size_t len;
	int over;                       /* something did not fit */
};
void so_init(struct sftp_out *o);
void so_u32(struct sftp_out *o, uint32_t v);
void so_u64(struct sftp_out *o, uint64_t v);
void so_bytes(struct sftp_out *o, const void *p, size_t n);     /* a string: length, bytes */
void so_str(struct sftp_out *o, const char *s);
void so_attr(struct sftp_out *o, const struct sftp_attr *a);

struct sftp_in {
	const uint8_t *p;
	size_t n;
	int bad;                        /* read past the end */
};
uint32_t si_u32(struct sftp_in *i);
uint64_t si_u64(struct sftp_in *i);
/* A string: a pointer into the reply and its length (NULL when bad). */
const uint8_t *si_bytes(struct sftp_in *i, size_t *len);
void si_attr(struct sftp_in *i, struct sftp_attr *a);

struct sftp_reply {
	uint8_t type;
	uint8_t *buf;                   /* owned: sftp_reply_free */
	size_t cap;                     /* its size */
	struct sftp_in in;              /* the payload, after the id */
};
void sftp_reply_free(struct sftp_reply *r);

struct sftp_call;
/* Send a request of TYPE with the arguments O and DATA (NDATA iovecs,
 * DATALEN bytes; none when NDATA is 0) on the current connection,
 * starting a new one if it was lost.  If GEN is not 0 the request is for
 * that connection only (a handle's): EIO if it is gone.  NULL with
 * *ERR (an errno) when it cannot be sent. */
struct iovec;
struct sftp_call *sftp_send(struct sftp *s, uint8_t type, const struct sftp_out *o, const struct iovec *data,
			    unsigned ndata, size_t datalen, unsigned gen, int *err);
/* Wait for C's reply (C is freed): 0 with *R filled, or an errno (EIO
 * when the connection was lost or the deadline passed). */
int sftp_wait(struct sftp *s, struct sftp_call *c, struct sftp_reply *r);
/* Nobody will wait for C: its answer, whatever it is, is thrown away
 * when it comes (a CLOSE whose answer changes nothing).  No deadline
 * applies to it. */
void sftp_forget(struct sftp *s, struct sftp_call *c);
/* The connection C was sent on (a handle it opens is good there). */
unsigned sftp_call_gen(const struct sftp_call *c);
/* sftp_send, then sftp_wait. */
int sftp_call(struct sftp *s, uint8_t type, const struct sftp_out *o, unsigned gen, struct sftp_reply *r);

/* An errno for a reply that was not the kind hoped for: a STATUS's code
 * (OK gives 0), or EIO for a reply of another type. */
int sftp_status_errno(struct sftp_reply *r);
/* The common shapes: a STATUS that should be OK; a HANDLE (copied to H,
 * room for 256 bytes, its length in *HLEN); ATTRS. */
int sftp_expect_ok(struct sftp *s, uint8_t type, const struct sftp_out *o, unsigned gen);
int sftp_expect_handle(struct sftp *s, uint8_t type, const struct sftp_out *o, uint8_t *h, size_t *hlen,
		       unsigned *gen);
int sftp_expect_attr(struct sftp *s, uint8_t type, const struct sftp_out *o, unsigned gen, struct sftp_attr *a);
/* The same shapes read from a reply R (not freed).  Where a reply's
 * STATUS is FAILURE these return -1, for the caller to name. */
int sftp_reply_ok(struct sftp_reply *r);
int sftp_reply_handle(struct sftp_reply *r, uint8_t *h, size_t *hlen);
int sftp_reply_attr(struct sftp_reply *r, struct sftp_attr *a);
/* And awaited: the reply of C, sent earlier with sftp_send (NULL when it
 * could not be sent, E then its errno), waited for and freed.  Requests
 * are answered in the order they were sent (OpenSSH's sftp-server does
 * one at a time), so a request sent right after another, without waiting,
 * sees what the first one did: one round trip for both. */
int sftp_wait_ok(struct sftp *s, struct sftp_call *c, int e);
int sftp_wait_handle(struct sftp *s, struct sftp_call *c, int e, uint8_t *h, size_t *hlen, unsigned *gen);
int sftp_wait_attr(struct sftp *s, struct sftp_call *c, int e, struct sftp_attr *a);

#endif
