/* libFuzzer target: FUSE requests from a hostile guest, against a shared
 * directory on the host, with an oracle for confinement.
 *
 * The input is a sequence of requests, each a u16 length and that many
 * bytes (the FUSE header and arguments).  The share is a fresh directory
 * holding a few files, a directory, and links (one absolute, one "..")
 * leading out of it; beside it lies a marker file.  After every input the
 * marker must be unchanged and nothing else must have appeared beside
 * the share: whatever the requests did, they did it inside.  Writes are
 * capped (RLIMIT_FSIZE) so the fuzzer cannot fill the disk. */
#include "core/bytes.h"
#include "share/fuse.h"

#include <dirent.h>
#include <fcntl.h>
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

static void setup(void)
{
	struct rlimit rl = { 1 << 20, 1 << 20 };

	setrlimit(RLIMIT_FSIZE, &rl);
	signal(SIGXFSZ, SIG_IGN);
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
	fs = fshare_open(share);
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

	if (!fs)
		setup();
	for (size_t at = 0; at + 2 <= size;) {
		size_t n = k_le16(data + at);
		at += 2;
		if (n > size - at)
			n = size - at;
		fshare_request(fs, data + at, n, out, sizeof(out));
		at += n;
	}
	oracle();
	return 0;
}
