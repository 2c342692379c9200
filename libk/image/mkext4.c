/* mkext4: an empty ext4 filesystem, written by umlk itself, so that an
 * upper layer (--cow on a read-only root) or a home image can be made on
 * a host without e2fsprogs.
 *
 * What it makes is deliberately plain, and what e2fsck and the kernel
 * both take as it is: 4 KiB blocks, 32768 blocks a group, an inode per
 * 16 KiB, 256-byte inodes; features ext_attr, dir_index, has_journal
 * (compat), filetype, extents (incompat), sparse_super, large_file,
 * huge_file, dir_nlink, extra_isize (ro_compat); no group checksums, no
 * flex_bg, no reserved GDT blocks (it cannot be grown online).  The
 * journal (inode 8, one extent) lies in group 0 after the root directory
 * and lost+found.
 *
 * Only metadata is written: the file is fresh and sparse, so the inode
 * tables and the journal's body, which must be zero, already read as
 * zero and take no room. */
#include "image/mkext4.h"
#include "core/bytes.h"
#include "core/err.h"
#include "core/sys.h"
#include "core/xio.h"

#include <inttypes.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define BS 4096u
#define BPG 32768u              /* blocks per group: one bitmap block */
#define ISZ 256u
#define JSB_MAGIC 0xC03B3998u

struct geo {
	uint64_t blocks;
	uint32_t groups, ipg, itb, gdtb;        /* inodes per group, inode table blocks, GDT blocks */
	uint32_t jblocks;
};

/* Groups 0, 1 and powers of 3, 5 and 7 keep a copy of the superblock. */
static int has_super(uint32_t g)
{
	if (g <= 1)
		return 1;
	for (uint32_t b = 3; b <= 7; b += 2) {
		uint64_t p = b;
		while (p < g)
			p *= b;
		if (p == g)
			return 1;
	}
	return 0;
}

static uint32_t group_blocks(const struct geo *G, uint32_t g)
{
	uint64_t left = G->blocks - (uint64_t)g * BPG;
	return left < BPG ? (uint32_t)left : BPG;
}

/* The first block after group G's superblock copy and descriptors. */
static uint64_t meta_start(const struct geo *G, uint32_t g)
{
	return (uint64_t)g * BPG + (has_super(g) ? 1 + G->gdtb : 0);
}

static int geometry(struct geo *G, uint64_t size)
{
	G->blocks = size / BS;
	if (G->blocks < 2048 || G->blocks > (1ULL << 32) - 1)
		return k_seterr("an ext4 filesystem of %" PRIu64 " bytes: umlk makes them from 8 MiB to 16 TiB", size);
	for (;;) {
		G->groups = (uint32_t)((G->blocks + BPG - 1) / BPG);
		uint64_t inodes = G->blocks * BS / 16384;
		uint64_t ipg = (inodes / G->groups + 15) / 16 * 16;
		G->ipg = (uint32_t)(ipg < 32 ? 32 : ipg > BPG ? BPG : ipg);
		G->itb = G->ipg * ISZ / BS;
		G->gdtb = (G->groups * 32 + BS - 1) / BS;
		/* A last group too small for its own metadata is left out, as
		 * mke2fs does. */
		uint32_t last = group_blocks(G, G->groups - 1);
		uint32_t need = (has_super(G->groups - 1) ? 1 + G->gdtb : 0) + 2 + G->itb + 64;
		if (G->groups == 1 || last >= need)
			break;
		G->blocks -= last;
	}
	G->jblocks = G->blocks < 32768 ? 1024 : G->blocks < 262144 ? 4096 : G->blocks < 524288 ? 8192 : 16384;
	/* Group 0 must hold its metadata, two directories and the journal. */
	if (meta_start(G, 0) + 2 + G->itb + 5 + G->jblocks > group_blocks(G, 0))
		return k_seterr("an ext4 filesystem of %" PRIu64 " bytes is too small for its journal", size);
	return 0;
}

static void set_bits(uint8_t *bm, uint32_t from, uint32_t to)
{
	for (uint32_t i = from; i < to; i++)
		bm[i / 8] |= (uint8_t)(1u << (i % 8));
}

/* An inode using one run of blocks (START, N) through an extent. */
static void put_inode(uint8_t *p, uint16_t mode, uint16_t links, uint64_t size, uint64_t start, uint32_t n,
		      uint32_t now)
{
	memset(p, 0, ISZ);
	k_put_le16(p + 0, mode);
	k_put_le32(p + 4, (uint32_t)size);
	k_put_le32(p + 8, now);
	k_put_le32(p + 12, now);
	k_put_le32(p + 16, now);
	k_put_le16(p + 26, links);
	k_put_le32(p + 28, n * (BS / 512));
	k_put_le32(p + 32, 0x80000);            /* EXT4_EXTENTS_FL */
	uint8_t *eh = p + 40;
	k_put_le16(eh + 0, 0xF30A);
	k_put_le16(eh + 2, 1);
	k_put_le16(eh + 4, 4);
	k_put_le32(eh + 12, 0);                 /* first logical block */
	k_put_le16(eh + 16, (uint16_t)n);
	k_put_le16(eh + 18, (uint16_t)(start >> 32));
	k_put_le32(eh + 20, (uint32_t)start);
	k_put_le32(p + 108, (uint32_t)(size >> 32));
	k_put_le16(p + 128, 32);                /* i_extra_isize */
	k_put_le32(p + 144, now);               /* i_crtime */
}

static size_t put_dirent(uint8_t *p, uint32_t ino, uint16_t rec_len, const char *name, uint8_t type)
{
	size_t n = strlen(name);
	k_put_le32(p, ino);
	k_put_le16(p + 4, rec_len);
	p[6] = (uint8_t)n;
	p[7] = type;
	memcpy(p + 8, name, n);
	return rec_len;
}

static int wr(int fd, uint64_t base, const void *buf, size_t n, uint64_t off)
{
	if (full_pwrite(fd, buf, n, base + off) < 0)
		return k_seterr("writing the ext4 filesystem:");
	return 0;
}

/* One filesystem being written. */
struct mk {
	struct geo G;
	int fd;
	uint64_t base;
	uint32_t now;
	uint8_t uuid[16], seed[16];
	/* Group 0's data: the root directory, lost+found, the journal. */
	uint64_t it0, root_blk, lpf_blk, j_blk, used0_end;
	uint8_t *gdt, *blk, *ibm;       /* the descriptors; a block; an inode bitmap */
	uint64_t free_blocks;
	uint8_t jinode[60];             /* the journal inode's block map, copied into the superblock */
};

/* Each group's bitmaps, and its descriptor in m->gdt. */
static int write_groups(struct mk *m)
{
	const struct geo *G = &m->G;

	for (uint32_t g = 0; g < G->groups; g++) {
		uint64_t ms = meta_start(G, g), first = (uint64_t)g * BPG;
		uint32_t n = group_blocks(G, g);
		uint64_t used_end = g == 0 ? m->used0_end : ms + 2 + G->itb;
		/* Block bitmap: metadata (and group 0's data) in use, and the
		 * bits past the end of a short last group. */
		memset(m->blk, 0, BS);
		set_bits(m->blk, 0, (uint32_t)(used_end - first));
		set_bits(m->blk, n, BPG);
		if (wr(m->fd, m->base, m->blk, BS, ms * BS) < 0)
			return -1;
		/* Inode bitmap: 1..11 taken in group 0; bits past the group's
		 * inodes set, as e2fsck wants. */
		memset(m->ibm, 0, BS);
		if (g == 0)
			set_bits(m->ibm, 0, 11);
		set_bits(m->ibm, G->ipg, BS * 8);
		if (wr(m->fd, m->base, m->ibm, BS, (ms + 1) * BS) < 0)
			return -1;
		uint32_t fb = n - (uint32_t)(used_end - first);
		m->free_blocks += fb;
		uint8_t *d = m->gdt + (size_t)g * 32;
		k_put_le32(d + 0, (uint32_t)ms);
		k_put_le32(d + 4, (uint32_t)(ms + 1));
		k_put_le32(d + 8, (uint32_t)(ms + 2));
		k_put_le16(d + 12, (uint16_t)fb);
		k_put_le16(d + 14, (uint16_t)(g == 0 ? G->ipg - 11 : G->ipg));
		k_put_le16(d + 16, g == 0 ? 2 : 0);
	}
	return 0;
}

/* Inodes 2 (root), 8 (journal) and 11 (lost+found), the two directories'
 * blocks, and the journal's superblock (big-endian, jbd2 v2), empty and
 * clean. */
static int write_root_and_journal(struct mk *m)
{
	uint8_t *blk = m->blk;

	memset(blk, 0, BS);
	put_inode(blk + 1 * ISZ, 040755, 3, BS, m->root_blk, 1, m->now);
	put_inode(blk + 7 * ISZ, 0100600, 1, (uint64_t)m->G.jblocks * BS, m->j_blk, m->G.jblocks, m->now);
	put_inode(blk + 10 * ISZ, 040700, 2, 4 * BS, m->lpf_blk, 4, m->now);
	if (wr(m->fd, m->base, blk, BS, m->it0 * BS) < 0)
		return -1;
	memcpy(m->jinode, blk + 7 * ISZ + 40, 60);

	memset(blk, 0, BS);
	size_t o = put_dirent(blk, 2, 12, ".", 2);
	o += put_dirent(blk + o, 2, 12, "..", 2);
	put_dirent(blk + o, 11, (uint16_t)(BS - o), "lost+found", 2);
	if (wr(m->fd, m->base, blk, BS, m->root_blk * BS) < 0)
		return -1;
	memset(blk, 0, BS);
	o = put_dirent(blk, 11, 12, ".", 2);
	put_dirent(blk + o, 2, (uint16_t)(BS - o), "..", 2);
	if (wr(m->fd, m->base, blk, BS, m->lpf_blk * BS) < 0)
		return -1;
	memset(blk, 0, BS);
	k_put_le16(blk + 4, BS);                /* an empty block: one unused entry */
	for (int i = 1; i < 4; i++)
		if (wr(m->fd, m->base, blk, BS, (m->lpf_blk + i) * BS) < 0)
			return -1;

	memset(blk, 0, BS);
	k_put_be32(blk + 0, JSB_MAGIC);
	k_put_be32(blk + 4, 4);
	k_put_be32(blk + 12, BS);
	k_put_be32(blk + 16, m->G.jblocks);
	k_put_be32(blk + 20, 1);                /* s_first */
	k_put_be32(blk + 24, 1);                /* s_sequence */
	memcpy(blk + 48, m->uuid, 16);
	k_put_be32(blk + 64, 1);                /* s_nr_users */
	memcpy(blk + 256, m->uuid, 16);         /* s_users[0] */
	return wr(m->fd, m->base, blk, BS, m->j_blk * BS);
}

/* The superblock (its group number left for the caller). */
static void make_super(const struct mk *m, const char *label, uint8_t sb[1024])
{
	const struct geo *G = &m->G;
	uint32_t inodes = G->ipg * G->groups, now = m->now;

	memset(sb, 0, 1024);
	k_put_le32(sb + 0, inodes);
	k_put_le32(sb + 4, (uint32_t)G->blocks);
	k_put_le32(sb + 8, (uint32_t)(G->blocks / 20));         /* 5% reserved for root */
	k_put_le32(sb + 12, (uint32_t)m->free_blocks);
	k_put_le32(sb + 16, inodes - 11);
	k_put_le32(sb + 20, 0);                 /* s_first_data_block */
	k_put_le32(sb + 24, 2);                 /* 1024 << 2 */
	k_put_le32(sb + 28, 2);
	k_put_le32(sb + 32, BPG);
	k_put_le32(sb + 36, BPG);
	k_put_le32(sb + 40, G->ipg);
	k_put_le32(sb + 48, now);               /* s_wtime */
	k_put_le16(sb + 54, 0xffff);            /* s_max_mnt_count: -1, no forced checks */
	k_put_le16(sb + 56, 0xEF53);
	k_put_le16(sb + 58, 1);                 /* clean */
	k_put_le16(sb + 60, 1);                 /* errors: continue */
	k_put_le32(sb + 64, now);               /* s_lastcheck */
	k_put_le32(sb + 76, 1);                 /* dynamic revision */
	k_put_le32(sb + 84, 11);                /* s_first_ino */
	k_put_le16(sb + 88, ISZ);
	k_put_le32(sb + 92, 0x4 | 0x8 | 0x20);  /* has_journal, ext_attr, dir_index */
	k_put_le32(sb + 96, 0x2 | 0x40);        /* filetype, extents */
	k_put_le32(sb + 100, 0x1 | 0x2 | 0x8 | 0x20 | 0x40);
	memcpy(sb + 104, m->uuid, 16);
	strncpy((char *)sb + 120, label, 16);
	k_put_le32(sb + 224, 8);                /* s_journal_inum */
	memcpy(sb + 236, m->seed, 16);          /* s_hash_seed */
	sb[252] = 1;                            /* half_md4 */
	sb[253] = 1;                            /* s_jnl_backup_type: the inode's blocks */
	k_put_le32(sb + 256, 0x4 | 0x8);        /* default mount options: user_xattr, acl */
	k_put_le32(sb + 264, now);              /* s_mkfs_time */
	memcpy(sb + 268, m->jinode, 60);        /* s_jnl_blocks[0..14] */
	k_put_le32(sb + 268 + 64, G->jblocks * BS);     /* [16]: i_size */
	k_put_le16(sb + 348, 32);               /* s_min_extra_isize */
	k_put_le16(sb + 350, 32);               /* s_want_extra_isize */
	k_put_le32(sb + 352, 0x1);              /* s_flags: signed directory hash (x86) */
}

int k_mkext4(int fd, uint64_t base, uint64_t size, const char *label)
{
	struct mk m = { .fd = fd, .base = base, .now = (uint32_t)time(NULL) };
	if (geometry(&m.G, size) < 0)
		return -1;
	k_random(m.uuid, sizeof(m.uuid));
	k_random(m.seed, sizeof(m.seed));
	m.uuid[6] = (uint8_t)((m.uuid[6] & 0x0f) | 0x40);       /* a version 4 UUID */
	m.uuid[8] = (uint8_t)((m.uuid[8] & 0x3f) | 0x80);
	m.it0 = meta_start(&m.G, 0) + 2;
	m.root_blk = m.it0 + m.G.itb;
	m.lpf_blk = m.root_blk + 1;
	m.j_blk = m.lpf_blk + 4;
	m.used0_end = m.j_blk + m.G.jblocks;

	m.gdt = calloc(m.G.gdtb, BS);
	m.blk = malloc(BS);
	m.ibm = malloc(BS);
	int r = -1;
	if (!m.gdt || !m.blk || !m.ibm) {
		k_seterr("out of memory");
		goto out;
	}
	if (write_groups(&m) < 0 || write_root_and_journal(&m) < 0)
		goto out;
	/* The superblock, at byte 1024 and at the start of each group that
	 * keeps a copy, with the descriptors after it. */
	uint8_t sb[1024];
	make_super(&m, label, sb);
	for (uint32_t g = 0; g < m.G.groups; g++) {
		if (!has_super(g))
			continue;
		uint64_t at = (uint64_t)g * BPG * BS;
		k_put_le16(sb + 90, (uint16_t)g);       /* s_block_group_nr */
		if (wr(fd, base, sb, sizeof(sb), g == 0 ? 1024 : at) < 0 ||
		    wr(fd, base, m.gdt, (size_t)m.G.gdtb * BS, at + BS) < 0)
			goto out;
	}
	r = 0;
out:
	free(m.gdt);
	free(m.blk);
	free(m.ibm);
	return r;
}
