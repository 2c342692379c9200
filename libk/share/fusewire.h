/* fusewire: the FUSE protocol's messages (7.x, as virtio-fs carries
 * them), for the filesystems umlk serves (fuse.c: a host directory;
 * sftpfs.c: a directory over SFTP).  A request is parsed into a struct
 * fuse_req, checked; replies are built in the caller's buffer. */
#ifndef UMLK_FUSEWIRE_H
#define UMLK_FUSEWIRE_H

#include <stddef.h>
#include <stdint.h>
#include <sys/stat.h>

/* Opcodes */
enum {
	OP_LOOKUP = 1, OP_FORGET = 2, OP_GETATTR = 3, OP_SETATTR = 4, OP_READLINK = 5,
	OP_SYMLINK = 6, OP_MKNOD = 8, OP_MKDIR = 9, OP_UNLINK = 10, OP_RMDIR = 11,
	OP_RENAME = 12, OP_LINK = 13, OP_OPEN = 14, OP_READ = 15, OP_WRITE = 16, OP_STATFS = 17,
	OP_RELEASE = 18, OP_FSYNC = 20, OP_FLUSH = 25, OP_INIT = 26, OP_OPENDIR = 27,
	OP_READDIR = 28, OP_RELEASEDIR = 29, OP_FSYNCDIR = 30, OP_ACCESS = 34, OP_CREATE = 35,
	OP_INTERRUPT = 36, OP_DESTROY = 38, OP_BATCH_FORGET = 42, OP_FALLOCATE = 43,
	OP_READDIRPLUS = 44, OP_RENAME2 = 45, OP_LSEEK = 46,
};

#define FUSE_HDR_IN 40
#define FUSE_HDR_OUT 16
#define FUSE_MAX_WRITE (1u << 20)       /* what INIT offers */

#define ROOT_ID 1
#define ATTR_OUT 88                     /* struct fuse_attr */
#define ENTRY_OUT (40 + ATTR_OUT)       /* struct fuse_entry_out */

/* INIT flags */
#define F_ASYNC_READ (1u << 0)
#define F_ATOMIC_O_TRUNC (1u << 3)
#define F_BIG_WRITES (1u << 5)
#define F_AUTO_INVAL_DATA (1u << 12)
#define F_DO_READDIRPLUS (1u << 13)
#define F_READDIRPLUS_AUTO (1u << 14)
#define F_PARALLEL_DIROPS (1u << 18)
#define F_MAX_PAGES (1u << 22)
#define F_HANDLE_KILLPRIV_V2 (1u << 28)

#define FOPEN_KEEP_CACHE (1u << 1)       /* OPEN's open_flags */
#define FOPEN_IN_KILL_SUIDGID (1u << 0)  /* OPEN's and CREATE's open_flags in the request */
#define FWRITE_KILL_SUIDGID (1u << 2)    /* WRITE's write_flags */

/* SETATTR valid bits */
#define FA_MODE (1u << 0)
#define FA_UID (1u << 1)
#define FA_GID (1u << 2)
#define FA_SIZE (1u << 3)
#define FA_ATIME (1u << 4)
#define FA_MTIME (1u << 5)
#define FA_FH (1u << 6)
#define FA_ATIME_NOW (1u << 7)
#define FA_MTIME_NOW (1u << 8)
#define FA_KILL_SUIDGID (1u << 11)

struct iovec;

struct fuse_req {
	void *ctx;                      /* the filesystem's */
	uint32_t op;
	uint64_t unique, nodeid;
	const uint8_t *arg;             /* after the header */
	size_t arglen;
	uint8_t *out;
	size_t cap, len;                /* of OUT, the header included */
	const struct iovec *data;       /* READ/WRITE data in the guest's buffers, or NULL */
	unsigned ndata;
	size_t datalen;                 /* bytes there */
	size_t extra;                   /* READ: bytes put there, counted in the reply's length */
	uint64_t valid_secs;            /* how long the guest may trust names and attributes */
};

/* Whether a request of OP is never answered (FORGET, BATCH_FORGET): the
 * guest gives it no room for an answer. */
static inline int fw_unanswered(uint32_t op)
{
	return op == OP_FORGET || op == OP_BATCH_FORGET;
}

/* Parse the request IN into R (replies to OUT): 0, or -1 when there is
 * not even a header to answer (nothing to reply); 1 when the header's
 * length is wrong (answer fw_reply(R, EINVAL)).  FORGET and BATCH_FORGET,
 * which are never answered, are parsed with no room for an answer. */
int fw_parse(struct fuse_req *r, void *ctx, const uint8_t *in, size_t inlen, const struct iovec *data,
	     unsigned ndata, size_t datalen, uint8_t *out, size_t outcap);
/* Finish the reply with ERR (an errno, 0 for success): its length. */
size_t fw_reply(struct fuse_req *r, int err);
/* Room for N more bytes of reply, zeroed: a pointer to them, or NULL. */
uint8_t *fw_room(struct fuse_req *r, size_t n);
/* A struct fuse_attr at P for node ID. */
void fw_put_attr(uint8_t *p, uint64_t id, const struct stat *st);
/* A struct fuse_entry_out at P (ENTRY_OUT bytes, zeroed). */
void fw_put_entry(const struct fuse_req *r, uint8_t *p, uint64_t id, const struct stat *st);
size_t fw_reply_entry(struct fuse_req *r, uint64_t id, const struct stat *st);
size_t fw_reply_attr(struct fuse_req *r, uint64_t id, const struct stat *st);
/* A LOOKUP that found nothing (E: its errno): for ENOENT, where names may
 * be kept, an entry of node 0 that lets the guest keep "no such name"
 * for a second, however long names live (a loop waiting for a file the
 * host makes sees it soon): enough for the create that follows a
 * lookup, which the guest kernel's patch 0003 then sends to the server
 * without asking again (the server refuses if something is there).
 * Else E. */
size_t fw_reply_missing(struct fuse_req *r, int e);
/* The set-user-ID and set-group-ID bits a write, truncation or chown by
 * a user without CAP_FSETID clears from a file of MODE (st_mode, type
 * bits too), as Linux does: set-group-ID only with group execute, and
 * none but for a regular file.  0 when nothing is to go. */
uint32_t fw_suidgid_bits(uint32_t mode);
/* A name at OFF of the arguments: one NUL-terminated path component that
 * is not "." or "..".  NULL when it is not; *END is past its NUL. */
const char *fw_name_at(const struct fuse_req *r, size_t off, size_t *end);
/* INIT's reply, offering WANT of the guest's flags. */
size_t fw_init(struct fuse_req *r, uint32_t want, uint32_t max_write);
/* A STATFS reply. */
size_t fw_reply_statfs(struct fuse_req *r, uint64_t blocks, uint64_t bfree, uint64_t bavail, uint64_t files,
		       uint64_t ffree, uint32_t bsize, uint32_t namelen, uint32_t frsize);
/* The entries of a FORGET or BATCH_FORGET: FN(ctx, node, count) each. */
void fw_forget(struct fuse_req *r, void (*fn)(void *ctx, uint64_t node, uint64_t count));
/* A directory entry (READDIR's fuse_dirent, after the entry of a
 * READDIRPLUS) at P, zeroed: its record's size comes from fw_dirent_size. */
size_t fw_dirent_size(int plus, size_t namelen);
void fw_put_dirent(uint8_t *p, uint64_t ino, uint64_t next, const char *name, size_t namelen, unsigned type);

/* A filesystem served over FUSE: answer the request IN (INLEN bytes) in
 * OUT (room for OUTCAP), as fshare_request_data does (share/fuse.h):
 * the reply's length, 0 for none.  Safe from several threads at once. */
typedef size_t fuse_serve_fn(void *ctx, const uint8_t *in, size_t inlen, const struct iovec *data, unsigned ndata,
			     size_t datalen, uint8_t *out, size_t outcap);

#endif
