/* umlk: the multi-call dispatcher.
 *
 * "umlk APPLET ARGS" and a link named APPLET both run the applet.  --help
 * for every applet is answered here, from the table, so each applet's
 * usage text is written once. */
#include "applets.h"
#include "core/err.h"

#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#ifndef UMLK_VERSION
#define UMLK_VERSION "unknown"
#endif

/* Every applet's entry, gathered by the linker (applets.h), and the same
 * sorted by name. */
extern const struct applet __start_umlk_applets[], __stop_umlk_applets[];
static const struct applet *applets[32];
static size_t napplets;

static void collect(void)
{
	for (const struct applet *a = __start_umlk_applets; a < __stop_umlk_applets && napplets < 32; a++) {
		size_t i = napplets++;
		while (i > 0 && strcmp(applets[i - 1]->name, a->name) > 0) {
			applets[i] = applets[i - 1];
			i--;
		}
		applets[i] = a;
	}
}


static const char umlk_usage[] =
	"Usage: umlk APPLET [ARGS...]   (or a link named APPLET)\n"
	"       umlk --list | --install DIR | --help | --version\n"
	"\n"
	"Run a KNOPPIX-style live CD under User Mode Linux; one static file holds\n"
	"every tool.  'umlk APPLET --help' describes each applet.\n"
	"\n"
	"  --list         print the applet names, one a line\n"
	"  --install DIR  make a symlink DIR/APPLET to this file for every applet\n"
	"\n"
	"Applets:\n";

static const struct applet *find(const char *name)
{
	for (size_t i = 0; i < napplets; i++)
		if (!strcmp(applets[i]->name, name))
			return applets[i];
	return NULL;
}

static void print_usage(FILE *f)
{
	fputs(umlk_usage, f);
	for (size_t i = 0; i < napplets; i++)
		fprintf(f, "  %-14s %s\n", applets[i]->name, applets[i]->summary);
}

/* Flush stdout and treat a failed write (a full disk, a closed pipe) as an error. */
static int finish(int status)
{
	if (fflush(stdout) || ferror(stdout)) {
		k_warn("write error on standard output:");
		k_cleanup_run();
		return status ? status : 1;
	}
	return status;
}

static int xinstall(const char *dir)
{
	char self[PATH_MAX], link[PATH_MAX];
	ssize_t n = readlink("/proc/self/exe", self, sizeof(self) - 1);
	int status = 0;

	if (n < 0)
		xdie("cannot find this program's own path (/proc/self/exe):");
	self[n] = 0;
	for (size_t i = 0; i < napplets; i++) {
		snprintf(link, sizeof(link), "%s/%s", dir, applets[i]->name);
		char cur[PATH_MAX];
		ssize_t m = readlink(link, cur, sizeof(cur) - 1);
		if (m >= 0) {
			cur[m] = 0;
			if (!strcmp(cur, self))
				continue;       /* already there */
			if (unlink(link) < 0) {
				k_warn("%s:", link);
				status = 1;
				continue;
			}
		}
		if (symlink(self, link) < 0) {
			k_warn("%s:", link);
			status = 1;
		}
	}
	return status;
}

static int run(const struct applet *a, int argc, char **argv)
{
	static char prog[64];

	snprintf(prog, sizeof(prog), "umlk %s", a->name);
	k_progname = prog;
	k_usage_text = a->usage;
	k_usage_opts = a->opts;
	for (int i = 1; i < argc && strcmp(argv[i], "--"); i++) {
		if (!strcmp(argv[i], "--help")) {
			kopt_usage(stdout, a->usage, a->opts);
			return finish(0);
		}
	}
	k_catch_signals();
	return finish(a->main(argc, argv));
}

int main(int argc, char **argv)
{
	const char *base = argv[0] ? strrchr(argv[0], '/') : NULL;
	const struct applet *a;

	collect();
	base = base ? base + 1 : (argv[0] ? argv[0] : "umlk");
	if ((a = find(base)))
		return run(a, argc, argv);
	k_usage_text = NULL;
	if (argc < 2) {
		print_usage(stderr);
		return 2;
	}
	const char *arg = argv[1];
	if ((a = find(arg)))
		return run(a, argc - 1, argv + 1);
	if (!strcmp(arg, "--help") || !strcmp(arg, "-h")) {
		print_usage(stdout);
		return finish(0);
	}
	if (!strcmp(arg, "--version")) {
		printf("umlk %s\n", UMLK_VERSION);
		return finish(0);
	}
	if (!strcmp(arg, "--list")) {
		for (size_t i = 0; i < napplets; i++)
			puts(applets[i]->name);
		return finish(0);
	}
	if (!strcmp(arg, "--install")) {
		if (argc != 3) {
			fprintf(stderr, "umlk: --install needs one directory\n");
			print_usage(stderr);
			return 2;
		}
		return finish(xinstall(argv[2]));
	}
	fprintf(stderr, "umlk: unknown applet '%s'\n", arg);
	print_usage(stderr);
	return 2;
}
