#include "applets.h"
#include "core/args.h"
#include "core/err.h"
#include "core/progress.h"
#include "core/sha256.h"
#include "core/xio.h"
#include "guest/boot.h"
#include "guest/xnest.h"
#include "remote/http.h"
#include "remote/index.h"

#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static const char usage[] =
	"Usage: umlk index [OPTIONS] IMAGE\n"
	"       umlk index --profile [OPTIONS] IMAGE -- COMMAND [ARGS...]\n"
	"       umlk index --profile --xnest [OPTIONS] IMAGE [-- 'COMMAND']\n"
	"       umlk index --show INDEX\n"
	"\n"
	"Publish IMAGE (an ISO, cloop, squashfs or ext2/3/4 image) for booting\n"
	"from a web server: write its verification index, IMAGE.umlkidx (the\n"
	"SHA-256 of every chunk), and print the index's own SHA-256 and the URL to\n"
	"boot, http://HOST/PATH/IMAGE#sha256=HEX.  Copy both files to the same\n"
	"directory of any web server that serves byte ranges; 'umlk boot URL'\n"
	"then fetches only what the guest reads and checks every byte.  The\n"
	"fragment after '#' never reaches the server: whoever has the URL has\n"
	"the hash, and a changed image or index is refused.\n"
	"\n"
	"With --profile, IMAGE is first booted here to COMMAND (as 'umlk boot\n"
	"IMAGE -- COMMAND'), and the chunks that boot read, in order, go into\n"
	"the index: a boot from the web fetches them from its start, in that\n"
	"order and in parallel, while the guest boots.  With\n"
	"--xnest, the profile's boot is 'umlk xnest-launch IMAGE' on this host's\n"
	"$DISPLAY (the image's X session, or the shell COMMAND as with --run);\n"
	"it ends when the session ends or the window is closed: close it once\n"
	"the desktop is up to record what a desktop's start reads.\n";

static const struct kopt opts[] = {
	{ 'o', "-o --output", "FILE", "write the index to FILE (default IMAGE.umlkidx)" },
	{ 'c', "--chunk-size", "SIZE", "bytes per verified chunk, a power of two from 4K\nto 16M (default 64K; 32K with --profile)" },
	{ 'u', "--url-base", "URL", "print the URL to boot as URL/IMAGE#sha256=HEX" },
	{ 'p', "--profile", NULL, "record a boot profile (needs -- COMMAND)" },
	{ 'x', "--xnest", NULL, "record the profile through xnest-launch (an X desktop)" },
	{ 'k', "--kernel", "PATH", "for the profile's boot, as in 'umlk boot'" },
	{ 'm', "--mem", "SIZE", "the same" },
	{ 'R', "--root", "PATH", "the same" },
	{ 'A', "--append", "'PARAMS'", "the same" },
	{ 'T', "--trusted", NULL, "the same" },
	{ 'L', "--isolated", NULL, "the same" },
	{ 'i', "--init", "PATH", "the same" },
	{ 's', "--show", NULL, "print what the index named by the operand holds" },
	{ 'q', "-q --quiet", NULL, "no progress bar and no notes" },
	{ 0 },
};

APPLET(index, "index", "publish an image for booting from a web server (its verified index)", usage, opts);

static int xshow(const char *path)
{
	size_t n;
	uint8_t *b = xread_file(path, &n);
	struct kidx x;
	char hex[65], a[16];

	if (kidx_parse(&x, b, n, path) < 0)
		xdie("%s", k_errmsg());
	printf("format: umlk index, version 1\n");
	printf("image size: %" PRIu64 " bytes (%s)\n", x.size, k_human(x.size, a, sizeof(a)));
	sha256_hex(x.image_sha, hex);
	printf("image sha256: %s\n", hex);
	printf("chunk size: %u bytes\n", x.chunk);
	printf("chunks: %u\n", x.nchunks);
	uint64_t pb = 0;
	for (uint32_t i = 0; i < x.nprofile; i++)
		pb += kidx_chunk_len(&x, x.profile[i]);
	printf("profile: %u chunks (%s)\n", x.nprofile, k_human(pb, a, sizeof(a)));
	sha256_hex(x.self, hex);
	printf("index sha256: %s\n", hex);
	kidx_free(&x);
	free(b);
	return 0;
}

/* The profile of a desktop's boot: xnest-launch IMAGE, its boot recording
 * into a file (boot's --record-profile) that is read back here, each
 * number checked against the image's NCHUNKS.  Returns xnest-launch's
 * status. */
static int xprofile_xnest(const struct boot_opts *bo, const char *image, const char *run,
			  uint32_t chunk, uint32_t nchunks, uint32_t **list, uint32_t *n)
{
	char dir[] = "/tmp/umlk-profile.XXXXXX", path[64], rec[96], mem[32];
	struct xnest_opts o = { .net = "auto", .geometry = "1024x768", .image = image, .run = run };

	if (!mkdtemp(dir))
		xdie("%s:", dir);
	snprintf(path, sizeof(path), "%s/profile", dir);
	snprintf(rec, sizeof(rec), "%u:%s", chunk, path);
	snprintf(mem, sizeof(mem), "%llu", (unsigned long long)bo->mem);
	o.record_profile = rec;
	o.kernel = bo->kernel;
	o.init = bo->init;
	o.mem = mem;
	o.trusted = bo->trusted;
	o.isolated = bo->isolated;
	int status = xnest_launch(&o);

	size_t len = 0;
	uint8_t *text = k_read_file(path, &len);        /* none when the boot failed */
	unlink(path);
	rmdir(dir);
	*list = NULL;
	*n = 0;
	if (text && kidx_profile_text(text, len, nchunks, path, list, n) < 0)
		xdie("%s", k_errmsg());
	free(text);
	return status;
}

/* The profile's options and the words from "--" on (TAIL: 0 without it). */
static void xcheck_profile_args(int profile, int xnest, const struct boot_opts *bo, int tail)
{
	if (xnest && !profile)
		xusage("--xnest is for --profile");
	if (xnest && tail > 2)
		xusage("--xnest runs one shell command: -- 'COMMAND ARGS'");
	if (xnest && (bo->root || bo->append))
		xusage("--root and --append: not with --xnest");
	if (profile && tail == 1)
		xusage("no command after '--'");
	if (profile && !xnest && tail < 2)
		xusage("--profile needs the command a boot runs to: -- COMMAND");
}

int index_main(int argc, char **argv)
{
	const char *out = NULL, *base = NULL;
	uint32_t chunk = 0;
	int profile = 0, xnest = 0, do_show = 0, c, end = argc;
	struct boot_opts bo = { .mem = 256ULL << 20 };

	for (int i = 1; i < argc; i++) {
		if (!strcmp(argv[i], "--")) {
			end = i;
			break;
		}
	}
	while ((c = xkopt_next(end, argv, opts)) != -1) {
		switch (c) {
		case 'o': out = optarg; break;
		case 'c': {
			uint64_t v = xarg_size("--chunk-size", optarg, KIDX_CHUNK_MIN, KIDX_CHUNK_MAX);
			if (v & (v - 1))
				xusage("--chunk-size: %s is not a power of two", optarg);
			chunk = (uint32_t)v;
			break;
		}
		case 'u': base = optarg; break;
		case 'p': profile = 1; break;
		case 'x': xnest = 1; break;
		case 'k': bo.kernel = optarg; break;
		case 'm': bo.mem = xarg_size("--mem", optarg, 16ULL << 20, 64ULL << 30); break;
		case 'R': bo.root = optarg; break;
		case 'A': bo.append = optarg; break;
		case 'T': bo.trusted = 1; break;
		case 'L': bo.isolated = 1; break;
		case 'i': bo.init = optarg; break;
		case 's': do_show = 1; break;
		case 'q': k_quiet = 1; break;
		}
	}
	xarg_count(end, argv, 1, 1);
	const char *image = argv[optind];
	if (do_show) {
		if (end < argc || profile || out)
			xusage("--show reads an index: nothing else goes with it");
		return xshow(image);
	}
	xcheck_profile_args(profile, xnest, &bo, argc - end);
	if (!chunk)
		chunk = profile ? KIDX_CHUNK_PROFILE : KIDX_CHUNK_DEFAULT;
	if (!profile && end < argc)
		xusage("a command after '--' is for --profile");
	if (url_is_http(image))
		xusage("%s: index a file here, then copy it and its index to the server", image);

	int fd = open(image, O_RDONLY | O_CLOEXEC);
	struct stat st;
	if (fd < 0 || fstat(fd, &st) < 0)
		xdie("%s:", image);
	if (!S_ISREG(st.st_mode))
		xdie("%s: not a regular file", image);
	struct kidx x;
	if (kidx_make(&x, fd, (uint64_t)st.st_size, chunk, image) < 0)
		xdie("%s", k_errmsg());
	close(fd);

	if (profile) {
		uint32_t *list = NULL, n = 0;
		int status;
		if (xnest) {
			status = xprofile_xnest(&bo, image, end + 1 < argc ? argv[end + 1] : NULL, chunk,
						x.nchunks, &list, &n);
		} else {
			bo.image = image;
			bo.cmd = argv + end + 1;
			bo.trace_chunk = chunk;
			bo.trace_list = &list;
			bo.trace_n = &n;
			status = xboot(&bo);
		}
		if (status)
			xdie("the profile's boot of %s ended with status %d: no index written", image, status);
		if (!list)
			xdie("the profile's boot of %s recorded nothing", image);
		free(x.profile);
		x.profile = list;
		x.nprofile = n;
	}

	char def[4096];
	if (!out) {
		if (strlen(image) + 9 > sizeof(def))
			xdie("%s: name too long", image);
		snprintf(def, sizeof(def), "%s.umlkidx", image);
		out = def;
	}
	size_t len;
	uint8_t *b = kidx_serialize(&x, &len);
	if (kout_write_file(out, b, len, 0644, 1) < 0)
		xdie("%s", k_errmsg());
	free(b);
	char hex[65], a[16];
	sha256_hex(x.self, hex);
	const char *name = strrchr(image, '/') ? strrchr(image, '/') + 1 : image;
	if (!k_quiet) {
		uint64_t pb = 0;
		for (uint32_t i = 0; i < x.nprofile; i++)
			pb += kidx_chunk_len(&x, x.profile[i]);
		fprintf(stderr, "umlk index: %s: %u chunks of %s", out, x.nchunks, k_human(chunk, a, sizeof(a)));
		if (profile)
			fprintf(stderr, ", a boot profile of %u chunks (%s)", x.nprofile, k_human(pb, a, sizeof(a)));
		fprintf(stderr, "; publish %s and %s side by side\n", name,
			strrchr(out, '/') ? strrchr(out, '/') + 1 : out);
	}
	printf("sha256: %s\n", hex);
	if (base)
		printf("url: %s%s%s#sha256=%s\n", base, base[strlen(base) - 1] == '/' ? "" : "/", name, hex);
	else
		printf("url: http://HOST/PATH/%s#sha256=%s\n", name, hex);
	kidx_free(&x);
	return 0;
}
