/* libFuzzer target: FUSE requests from a hostile guest, against a shared
 * directory on the host, with an oracle for confinement.
 *
 * The input is a sequence of requests, each a u16 length and that many
 * bytes (the FUSE header and arguments).  The share is a fresh directory
 * holding a few files, a directory, and links (one absolute, one "..")
 * leading out of it; beside it lies a marker file.  After every input the
 * marker must be unchanged and nothing else must have appeared beside
 * the share: whatever the requests did, they did it inside.  Writes are
 * capped (RLIMIT_FSIZE) and the share is made afresh every few hundred
 * inputs and removed at exit, so the fuzzer cannot fill the disk with
 * files either. */
#include "core/bytes.h"
#include "share/fuse.h"

#include <dirent.h>
#include <fcntl.h>
#include <ftw.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

static char top[256], share[300], marker[300];
static struct fshare *fs;
static struct stat marker_st;

static int open_up(const char *p, const struct stat *st, int type, struct FTW *w)
{
	(void)st, (void)w;
	if (type == FTW_D || type == FTW_DNR)
		chmod(p, 0700);                 /* so that its entries can go */
	return 0;
}

static int remove_one(const char *p, const struct stat *st, int type, struct FTW *w)
{
	(void)st, (void)w;
	if (type == FTW_DP)
		rmdir(p);
	else
		unlink(p);
	return 0;
}

static void teardown(void)
{
	if (fs)
		fshare_close(fs);
	fs = NULL;
	if (!top[0])
		return;
	nftw(top, open_up, 16, FTW_PHYS);
	nftw(top, remove_one, 16, FTW_PHYS | FTW_DEPTH);
	top[0] = 0;
}

static void setup(void)
{
	struct rlimit rl = { 1 << 20, 1 << 20 };
	static int once;

	if (!once) {
		once = 1;
		setrlimit(RLIMIT_FSIZE, &rl);
		signal(SIGXFSZ, SIG_IGN);
		atexit(teardown);
	}
	snprintf(top, sizeof(top), "%s/fuzz-fuse-XXXXXX", getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp");
	if (!mkdtemp(top))
		abort();
	snprintf(share, sizeof(share), "%s/share", top);
	snprintf(marker, sizeof(marker), "%s/marker", top);
	mkdir(share, 0755);
	FILE *f = fopen(marker, "w");
	fputs("outside the share\n", f);
	fclose(f);
	char p[400], q[400];
	snprintf(p, sizeof(p), "%s/dir", share);
	mkdir(p, 0755);
	snprintf(p, sizeof(p), "%s/file", share);
	f = fopen(p, "w");
	fputs("inside\n", f);
	fclose(f);
	snprintf(q, sizeof(q), "%s/dir/hard", share);
	link(p, q);
	snprintf(p, sizeof(p), "%s/abs", share);
	symlink("/", p);
	snprintf(p, sizeof(p), "%s/up", share);
	symlink("../marker", p);
	stat(marker, &marker_st);
	fs = fshare_open(share, FSHARE_CACHE_AUTO);
	if (!fs)
		abort();
}

static void oracle(void)
{
	struct stat st;
	DIR *d = opendir(top);
	struct dirent *e;

	if (stat(marker, &st) < 0 || st.st_size != marker_st.st_size ||
	    st.st_mtim.tv_sec != marker_st.st_mtim.tv_sec || st.st_mtim.tv_nsec != marker_st.st_mtim.tv_nsec ||
	    st.st_mode != marker_st.st_mode || st.st_nlink != marker_st.st_nlink)
		abort();                        /* the marker outside was touched */
	while (d && (e = readdir(d)))
		if (strcmp(e->d_name, ".") && strcmp(e->d_name, "..") && strcmp(e->d_name, "share") &&
		    strcmp(e->d_name, "marker"))
			abort();                /* something appeared outside */
	if (d)
		closedir(d);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static uint8_t out[(1 << 16) + 4096];
	static unsigned runs;

	if (fs && ++runs % 256 == 0)
		teardown();                     /* what earlier inputs made goes */
	if (!fs)
		setup();
	for (size_t at = 0; at + 2 <= size;) {
		size_t n = k_le16(data + at);
		at += 2;
		if (n > size - at)
			n = size - at;
		/* FORGET comes with no room for an answer, as from the guest. */
		uint32_t op = n >= 8 ? k_le32(data + at + 4) : 0;
		fshare_request(fs, data + at, n, out, fw_unanswered(op) ? 0 : sizeof(out));
		at += n;
	}
	oracle();
	return 0;
}
