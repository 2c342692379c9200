/* Parallel cloop creation.  The calling thread reads the raw image block by
 * block and writes compressed blocks in order; workers deflate.
 *
 * Where the blocks go depends on what is known in advance:
 *  - input size known and output seekable: header first, blocks written in
 *    place after a reserved index, index filled in at the end;
 *  - otherwise V4.0: "footer" layout, streamed: blocks, index, header;
 *  - otherwise V2.0 (which must start with its header): blocks go to a spool
 *    file, then header, index and the spooled blocks are written out.
 */
#include "core/err.h"
#include "core/pipeline.h"
#include "core/progress.h"
#include "image/cloop.h"

#include <fcntl.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

struct mctx {
	const struct cloop_make_opts *o;
	z_stream *zs;           /* one per worker */
	size_t cap;
	/* Compressed form of an all-zero block, made once: sparse images are
	 * mostly that, and deflating megabytes of zeros again is wasted time. */
	pthread_mutex_t zlock;
	uint8_t *zbuf;
	size_t zsize;
	int zcomp;
	_Atomic int zready;
};

static int deflate_into(z_stream *zs, int level, const uint8_t *in, size_t n,
			uint8_t *out, size_t cap, size_t *outlen)
{
	if (!zs->state) {
		/* zlib's defaults, as compress2() and create_compressed_fs use
		 * them: memLevel 9 is no better, and often worse, on real images. */
		if (deflateInit2(zs, level, Z_DEFLATED, 15, 8, Z_DEFAULT_STRATEGY) != Z_OK)
			return -1;
	} else if (deflateReset(zs) != Z_OK) {
		return -1;
	}
	zs->next_in = (Bytef *)in;
	zs->avail_in = n;
	zs->next_out = out;
	zs->avail_out = cap;
	if (deflate(zs, Z_FINISH) != Z_STREAM_END)
		return -1;
	*outlen = zs->total_out;
	return 0;
}

static void deflate_block(void *arg, int w, struct pl_slot *s)
{
	struct mctx *m = arg;
	uint32_t bs = m->o->block_size;
	int zero = k_iszero(s->in, bs);

	if (zero && atomic_load_explicit(&m->zready, memory_order_acquire)) {
		memcpy(s->out, m->zbuf, m->zsize);
		s->outlen = m->zsize;
		s->flags = m->zcomp;
		return;
	}
	if (deflate_into(&m->zs[w], m->o->level, s->in, bs, s->out, m->cap, &s->outlen) < 0) {
		s->err = 1;
		snprintf(s->errmsg, sizeof(s->errmsg), "zlib cannot compress block %" PRIu64,
			 s->index);
		return;
	}
	s->flags = CLOOP_ZLIB;
	if (m->o->v4 && s->outlen >= bs) {      /* compression does not help */
		memcpy(s->out, s->in, bs);
		s->outlen = bs;
		s->flags = CLOOP_NONE;
	}
	if (zero) {
		pthread_mutex_lock(&m->zlock);
		if (!atomic_load(&m->zready)) {
			memcpy(m->zbuf, s->out, s->outlen);
			m->zsize = s->outlen;
			m->zcomp = s->flags;
			atomic_store_explicit(&m->zready, 1, memory_order_release);
		}
		pthread_mutex_unlock(&m->zlock);
	}
}

/* Append to a growing offset table. */
struct index {
	uint64_t *v;
	size_t n, cap;
};

static void index_add(struct index *ix, uint64_t v)
{
	if (ix->n == ix->cap) {
		ix->cap = ix->cap ? ix->cap * 2 : 4096;
		ix->v = xrealloc(ix->v, ix->cap * sizeof(*ix->v));
	}
	ix->v[ix->n++] = v;
}

static uint8_t *index_bytes(const struct index *ix, uint64_t base)
{
	uint8_t *b = xmalloc(ix->n * 8);

	for (size_t i = 0; i < ix->n; i++)
		k_put_be64(b + i * 8, ix->v[i] + base);
	return b;
}

static void xcopy_fd(int from, int to, uint64_t n, const char *name)
{
	char *buf = xmalloc(1 << 20);

	if (lseek(from, 0, SEEK_SET) < 0)
		xdie("spool file:");
	while (n) {
		size_t chunk = n < (1 << 20) ? n : (1 << 20);
		ssize_t r = full_read(from, buf, chunk);
		if (r != (ssize_t)chunk)
			xdie("spool file: short read");
		if (full_write(to, buf, chunk) < 0)
			xdie("%s: write failed:", name);
		n -= chunk;
	}
	free(buf);
}

/* The input: its descriptor (standard input for "-"), its name for
 * messages, and its size when it can be known before reading it. */
struct input {
	int fd;
	const char *name;
	uint64_t size;
	int size_known;
};

static void xinput_open(struct input *in, const char *path)
{
	struct stat st;

	memset(in, 0, sizeof(*in));
	in->fd = STDIN_FILENO;
	in->name = "standard input";
	if (strcmp(path, "-")) {
		in->name = path;
		in->fd = open(path, O_RDONLY | O_CLOEXEC);
		if (in->fd < 0)
			xdie("%s:", path);
	}
	if (fstat(in->fd, &st) < 0)
		xdie("%s:", in->name);
	if (S_ISDIR(st.st_mode))
		xdie("%s: is a directory", in->name);
	if (S_ISREG(st.st_mode) || S_ISBLK(st.st_mode)) {
		off_t end = S_ISREG(st.st_mode) ? st.st_size : lseek(in->fd, 0, SEEK_END);
		off_t cur = lseek(in->fd, 0, S_ISREG(st.st_mode) ? SEEK_CUR : SEEK_SET);
		if (end >= 0 && cur >= 0) {
			in->size = end - cur;
			in->size_known = 1;
		}
	}
}

/* How the blocks reach OUT: straight to their place after the index (a
 * size known and OUT seekable); in order with the index after them (V4's
 * footer); or through a spool file, the index first (V2 to a pipe). */
enum layout { DIRECT, FOOTER, SPOOL };

/* Read IN block by block, compress on the pipeline's threads, write each
 * block in order to DATAFD from *POS, and note its offset in IX.  Returns
 * the number of blocks. */
static uint64_t xcompress_all(const struct cloop_make_opts *o, struct input *in, struct mctx *m,
			      enum layout mode, int datafd, const char *dataname, uint64_t *pos, struct index *ix)
{
	const uint32_t bs = o->block_size;
	struct pipeline *pl = xpl_start(o->threads, bs, m->cap, deflate_block, m);
	struct progress prog;
	int eof = 0;
	uint64_t nread = 0, nwritten = 0;

	prog_start(&prog, "make-cloop", in->size);
	index_add(ix, *pos);
	for (;;) {
		struct pl_slot *s;
		while (!eof && (s = pl_next_free(pl))) {
			ssize_t r = full_read(in->fd, s->in, bs);
			if (r < 0)
				xdie("%s: read error:", in->name);
			if (r == 0) {
				eof = 1;
				break;
			}
			if ((size_t)r < bs) {   /* the last block: pad with zeros */
				memset(s->in + r, 0, bs - r);
				eof = 1;
			}
			if (++nread > UINT32_MAX)
				xdie("%s: too large for cloop at block size %" PRIu32, in->name, bs);
			pl_submit(pl, s);
		}
		s = pl_next_done(pl);
		if (!s)
			break;
		if (s->err)
			xdie("%s", s->errmsg);
		int r = mode == DIRECT ? full_pwrite(datafd, s->out, s->outlen, *pos)
				       : full_write(datafd, s->out, s->outlen);
		if (r < 0)
			xdie("%s: write failed:", dataname);
		*pos += s->outlen;
		/* The compressor goes in the top bits of the block's own offset. */
		if (o->v4)
			ix->v[ix->n - 1] |= (uint64_t)s->flags << 60;
		index_add(ix, *pos);
		pl_release(pl, s);
		nwritten++;
		prog_update(&prog, nwritten * bs);
	}
	prog_end(&prog);
	pl_stop(pl);
	return nwritten;
}

/* The header and the index, where the layout puts them; a spool's data
 * after them. */
static void xfinish(const struct cloop_make_opts *o, struct kout *out, enum layout mode, int datafd,
		    uint64_t pos, struct index *ix, uint64_t nblocks)
{
	uint8_t head[CLOOP_HEAD_SIZE];

	cloop_make_head(head, o->v4 ? 4 : 2, o->block_size, (uint32_t)nblocks);
	/* A spool's offsets were counted from the start of the spool file. */
	uint8_t *idx = index_bytes(ix, mode == SPOOL ? CLOOP_HEAD_SIZE + ix->n * 8 : 0);
	int r;
	if (mode == DIRECT)
		r = full_pwrite(out->fd, head, sizeof(head), 0) < 0 ||
		    full_pwrite(out->fd, idx, ix->n * 8, CLOOP_HEAD_SIZE) < 0;
	else if (mode == FOOTER)
		r = full_write(out->fd, idx, ix->n * 8) < 0 || full_write(out->fd, head, sizeof(head)) < 0;
	else
		r = full_write(out->fd, head, sizeof(head)) < 0 || full_write(out->fd, idx, ix->n * 8) < 0;
	if (r)
		xdie("%s: write failed:", out->name);
	free(idx);
	if (mode == SPOOL) {
		xcopy_fd(datafd, out->fd, pos, out->name);
		close(datafd);
	}
}

void xcloop_make(const struct cloop_make_opts *o, const char *inpath, struct kout *out)
{
	const uint32_t bs = o->block_size;
	struct input in;

	xinput_open(&in, inpath);
	uint64_t nblocks = in.size_known ? (in.size + bs - 1) / bs : 0;
	if (nblocks > UINT32_MAX)
		xdie("%s: too large for cloop at block size %" PRIu32 " (more than 2^32 blocks)",
		     in.name, bs);
	enum layout mode = in.size_known && out->seekable ? DIRECT : o->v4 ? FOOTER : SPOOL;
	int datafd = mode == SPOOL ? xtmpfile() : out->fd;
	uint64_t pos = mode == DIRECT ? CLOOP_HEAD_SIZE + (nblocks + 1) * 8 : 0;

	struct mctx m;
	memset(&m, 0, sizeof(m));
	m.o = o;
	m.cap = cloop_max_csize(bs);
	m.zs = xcalloc(o->threads, sizeof(*m.zs));
	m.zbuf = xmalloc(m.cap);
	pthread_mutex_init(&m.zlock, NULL);
	struct index ix = { 0 };
	uint64_t nwritten = xcompress_all(o, &in, &m, mode, datafd, mode == SPOOL ? "spool file" : out->name,
					  &pos, &ix);
	if (in.size_known && nwritten != nblocks)
		xdie("%s: changed size while being read", in.name);
	xfinish(o, out, mode, datafd, pos, &ix, nwritten);
	if (in.fd != STDIN_FILENO)
		close(in.fd);
	for (int i = 0; i < o->threads; i++)
		if (m.zs[i].state)
			deflateEnd(&m.zs[i]);
	free(m.zs);
	free(m.zbuf);
	free(ix.v);
	pthread_mutex_destroy(&m.zlock);
}
