#include "core/args.h"
#include "core/err.h"
#include "core/xio.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

const struct kopt *k_usage_opts;

/* getopt's tables for OPTS, made once per table (parsing is one thread's,
 * at the start). */
struct gtables {
	const struct kopt *from;
	char shortopts[2 * KOPT_MAX + 2];
	struct option longopts[KOPT_MAX + 1];
	char names[KOPT_MAX][40];
	int only;
};

static void xmake_tables(struct gtables *t, const struct kopt *opts)
{
	size_t ns = 0;
	int nl = 0;

	memset(t, 0, sizeof(*t));
	t->from = opts;
	t->shortopts[ns++] = ':';       /* tell a missing value (':') from an unknown option ('?') */
	for (const struct kopt *o = opts; o->names; o++) {
		if (!o->id)
			continue;
		char words[128];
		snprintf(words, sizeof(words), "%s", o->names);
		for (char *save, *w = strtok_r(words, " ", &save); w; w = strtok_r(NULL, " ", &save)) {
			if (w[0] == '-' && w[1] && w[1] != '-' && !w[2]) {
				if (w[1] != o->id || ns + 3 > sizeof(t->shortopts))
					xdie("option table: '%s' is not its id's letter", w);
				t->shortopts[ns++] = w[1];
				if (o->arg)
					t->shortopts[ns++] = ':';
				continue;
			}
			const char *name = w + (w[1] == '-' ? 2 : 1);
			t->only |= w[1] != '-';
			if (nl == KOPT_MAX || strlen(name) >= sizeof(t->names[0]))
				xdie("option table: too many options, or '%s' too long", w);
			memcpy(t->names[nl], name, strlen(name) + 1);
			t->longopts[nl] = (struct option){ t->names[nl], o->arg ? required_argument : no_argument,
							   NULL, o->id };
			nl++;
		}
	}
}

int xkopt_next(int argc, char **argv, const struct kopt *opts)
{
	static struct gtables t;

	if (t.from != opts)
		xmake_tables(&t, opts);
	opterr = 0;
	int c = t.only ? getopt_long_only(argc, argv, t.shortopts, t.longopts, NULL)
		       : getopt_long(argc, argv, t.shortopts, t.longopts, NULL);
	if (c == '?') {
		if (optopt)
			xusage("unknown option '-%c'", optopt);
		xusage("unknown option '%s'", argv[optind - 1]);
	}
	if (c == ':') {
		if (optopt && optopt < 128 && strchr(t.shortopts + 1, optopt))
			xusage("option '-%c' needs a value", optopt);
		xusage("option '%s' needs a value", argv[optind - 1]);
	}
	return c;
}

/* "  -j, --jobs N" (or "      --info"), the left column of an option. */
static int left_of(const struct kopt *o, int indent, char *buf, size_t cap)
{
	char words[128], shorts[64] = "", longs[96] = "";
	snprintf(words, sizeof(words), "%s", o->names);
	for (char *save, *w = strtok_r(words, " ", &save); w; w = strtok_r(NULL, " ", &save)) {
		int is_short = w[0] == '-' && w[1] && w[1] != '-' && !w[2];
		char *to = is_short ? shorts : longs;
		size_t n = strlen(to);
		snprintf(to + n, (is_short ? sizeof(shorts) : sizeof(longs)) - n, "%s%s", n ? ", " : "", w);
	}
	return snprintf(buf, cap, "  %s%s%s%s%s%s", shorts, shorts[0] && longs[0] ? ", " : "",
			!shorts[0] && indent ? "    " : "", longs, o->arg ? " " : "", o->arg ? o->arg : "");
}

static void print_opt(FILE *f, const struct kopt *o, int indent, int col)
{
	char left[160];
	int w = left_of(o, indent, left, sizeof(left));

	fprintf(f, "%s%*s", left, w + 2 > col ? 2 : col - w, "");
	for (const char *h = o->help; *h; h++) {
		fputc(*h, f);
		if (*h == '\n')
			fprintf(f, "%*s", col, "");
	}
	fputc('\n', f);
}

void kopt_usage(FILE *f, const char *text, const struct kopt *opts)
{
	static const struct kopt help = { 'h', "--help", NULL, "show this text" };
	static const struct kopt none[] = { { 0 } };
	char left[160];
	int indent = 0, col = 16;

	if (!opts)
		opts = none;
	fprintf(f, "%s\n", text);
	for (const struct kopt *o = opts; o->names; o++)
		indent |= o->names[0] == '-' && o->names[1] != '-' && (o->names[2] == ' ' || !o->names[2]);
	for (const struct kopt *o = opts; o->names; o++) {
		int w = o->help ? left_of(o, indent, left, sizeof(left)) : 0;
		if (w + 2 > col && w + 2 <= 24)
			col = w + 2;
	}
	for (const struct kopt *o = opts; o->names; o++)
		if (o->help)            /* (NULL: an option kept for old command lines, not shown) */
			print_opt(f, o, indent, col);
	print_opt(f, &help, indent, col);
}

void xusage(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	k_vwarn(fmt, ap);
	va_end(ap);
	if (k_usage_text)
		kopt_usage(stderr, k_usage_text, k_usage_opts);
	k_die_hook(2);
	abort();
}

long long xarg_num(const char *opt, const char *val, long long min, long long max)
{
	char *end;

	errno = 0;
	long long v = strtoll(val, &end, 10);
	if (errno || end == val || *end || v < min || v > max)
		xusage("%s: '%s' is not a number from %lld to %lld", opt, val, min, max);
	return v;
}

uint64_t xarg_size(const char *opt, const char *val, uint64_t min, uint64_t max)
{
	uint64_t v;

	if (k_parse_size(val, &v) < 0)
		xusage("%s: %s", opt, k_errmsg());
	if (v < min || v > max)
		xusage("%s: '%s' is not a size from %llu to %llu", opt, val,
		       (unsigned long long)min, (unsigned long long)max);
	return v;
}

void xarg_count(int argc, char **argv, int min, int max)
{
	int n = argc - optind;

	(void)argv;
	if (n < min)
		xusage(n ? "too few arguments" : "missing argument");
	if (n > max)
		xusage("too many arguments ('%s' is one too many)", argv[optind + max]);
}
