#include "image/live.h"
#include "core/err.h"
#include "image/iso9660.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define CONFIG_MAX (256 << 10)          /* a boot loader config or module list larger is refused */
#define NAMES_MAX 256                   /* files in live/ or casper/ looked at */

/* ---- kernel parameters from the boot loader */

/* Words that mean nothing to a UML guest, or only to the boot loader. */
static int dropped(const char *w, size_t n)
{
	static const char *const prefix[] = { "initrd=", "BOOT_IMAGE=", "vga=", "video=", "console=" };
	static const char *const word[] = { "splash", "nomodeset", "---", "--" };

	for (size_t i = 0; i < sizeof(prefix) / sizeof(prefix[0]); i++)
		if (n >= strlen(prefix[i]) && !strncmp(w, prefix[i], strlen(prefix[i])))
			return 1;
	for (size_t i = 0; i < sizeof(word) / sizeof(word[0]); i++)
		if (n == strlen(word[i]) && !strncmp(w, word[i], n))
			return 1;
	/* GRUB variables and anything unprintable: not ours to expand. */
	for (size_t i = 0; i < n; i++)
		if (w[i] == '$' || !isprint((unsigned char)w[i]))
			return 1;
	return 0;
}

int live_params(const char *text, size_t n, int grub, char *out, size_t cap)
{
	size_t i = 0;

	if (cap)
		out[0] = 0;
	while (i < n) {
		size_t end = i;
		while (end < n && text[end] != '\n')
			end++;
		/* Words of this line. */
		size_t p = i, nw = 0;
		int want = 0;
		size_t len = 0;
		while (p < end) {
			while (p < end && (text[p] == ' ' || text[p] == '\t' || text[p] == '\r'))
				p++;
			size_t w = p;
			while (p < end && text[p] != ' ' && text[p] != '\t' && text[p] != '\r')
				p++;
			if (p == w)
				break;
			size_t wl = p - w;
			if (nw == 0) {
				if (grub)
					want = (wl == 5 && !strncmp(text + w, "linux", 5)) ||
					       (wl == 8 && !strncmp(text + w, "linuxefi", 8));
				else
					want = wl == 6 && !strncasecmp(text + w, "append", 6);
				if (!want)
					break;
			} else if (want && !(grub && nw == 1) && !dropped(text + w, wl)) {
				/* (GRUB's second word is the kernel's path.) */
				if (len + (len > 0) + wl + 1 > cap)
					break;
				if (len)
					out[len++] = ' ';
				memcpy(out + len, text + w, wl);
				len += wl;
				out[len] = 0;
			}
			nw++;
		}
		if (want)
			return 1;
		i = end + 1;
	}
	return 0;
}

/* ---- layouts */

static int read_small(const struct ksrc *iso, const char *path, char **text, size_t *n)
{
	uint64_t off, len;
	int r = iso_find(iso, path, &off, &len);

	if (r <= 0)
		return r;
	if (len > CONFIG_MAX)
		return k_seterr("%s: %s is %llu bytes, too large for what it should be", iso->name, path,
				(unsigned long long)len);
	*text = malloc(len + 1);
	if (!*text)
		return k_seterr("out of memory");
	if (ksrc_read(iso, *text, len, off) < 0) {
		free(*text);
		return k_seterr("%s: %s cannot be read", iso->name, path);
	}
	(*text)[len] = 0;
	*n = (size_t)len;
	return 1;
}

/* Add PATH as the next layer up: 1 added, 0 absent, -1 error. */
static int add_layer(const struct ksrc *iso, struct live_layout *L, const char *path)
{
	uint64_t off, len;
	int r = iso_find(iso, path, &off, &len);

	if (r <= 0)
		return r;
	if (L->nlayers == LIVE_LAYERS_MAX)
		return k_seterr("%s: more than %d root layers (at %s)", iso->name, LIVE_LAYERS_MAX, path);
	if (strlen(path) >= LIVE_PATH_MAX)
		return k_seterr("%s: a layer's name is too long", iso->name);
	struct live_layer *l = &L->layer[L->nlayers++];
	snprintf(l->path, sizeof(l->path), "%s", path);
	l->off = off;
	l->len = len;
	return 1;
}

struct names {
	int n;
	char *name[NAMES_MAX];
	const char *suffix;
};

static void collect(const char *name, void *ctx)
{
	struct names *s = ctx;
	size_t n = strlen(name), k = strlen(s->suffix);

	if (s->n < NAMES_MAX && n > k && !strcmp(name + n - k, s->suffix))
		s->name[s->n++] = strdup(name);
}

static int by_name(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

static void names_free(struct names *s)
{
	for (int i = 0; i < s->n; i++)
		free(s->name[i]);
	s->n = 0;
}

/* Debian Live: live/filesystem.module, else every NAME.squashfs. */
static int debian_live(const struct ksrc *iso, struct live_layout *L)
{
	char *text;
	size_t n;
	int r = read_small(iso, "live/filesystem.module", &text, &n);

	if (r < 0)
		return -1;
	if (r > 0) {
		for (char *line = text, *next; line && *line; line = next) {
			next = strchr(line, '\n');
			if (next)
				*next++ = 0;
			line[strcspn(line, "\r")] = 0;
			if (!*line || *line == '#')
				continue;
			char path[LIVE_PATH_MAX];
			if (strchr(line, '/') || strlen(line) + 6 >= sizeof(path)) {
				/* (The message quotes the line: made before its buffer goes.) */
				k_seterr("%s: live/filesystem.module names '%.60s', not a file in live/", iso->name,
					 line);
				free(text);
				return -1;
			}
			snprintf(path, sizeof(path), "live/%s", line);
			int a = add_layer(iso, L, path);
			if (a <= 0) {
				free(text);
				return a < 0 ? -1 : k_seterr("%s: live/filesystem.module names %s, which is not"
							     " in the ISO", iso->name, path);
			}
		}
		free(text);
		return L->nlayers > 0 ? 1 : k_seterr("%s: live/filesystem.module names no image", iso->name);
	}
	struct names s = { .suffix = ".squashfs" };
	if (iso_list(iso, "live", collect, &s) < 0)
		return -1;
	qsort(s.name, (size_t)s.n, sizeof(s.name[0]), by_name);
	r = add_layer(iso, L, "live/filesystem.squashfs");
	for (int i = 0; r >= 0 && i < s.n; i++) {
		if (strcmp(s.name[i], "filesystem.squashfs")) {
			char path[LIVE_PATH_MAX];
			snprintf(path, sizeof(path), "live/%s", s.name[i]);
			r = add_layer(iso, L, path);
		}
	}
	names_free(&s);
	return r < 0 ? -1 : L->nlayers > 0;
}

/* casper: filesystem.squashfs, or the deepest of the layered images and
 * each image its name extends ("minimal" < "minimal.standard" < ...). */
static int casper(const struct ksrc *iso, struct live_layout *L)
{
	int r = add_layer(iso, L, "casper/filesystem.squashfs");
	if (r)
		return r;
	struct names s = { .suffix = ".squashfs" };
	if (iso_list(iso, "casper", collect, &s) < 0)
		return -1;
	qsort(s.name, (size_t)s.n, sizeof(s.name[0]), by_name);
	int deepest = -1, depth = -1;
	for (int i = 0; i < s.n; i++) {
		int d = 0;
		for (const char *c = s.name[i]; *c; c++)
			d += *c == '.';
		if (d > depth) {
			depth = d;
			deepest = i;
		}
	}
	r = 0;
	if (deepest >= 0) {
		/* Its prefixes at each '.', bottom first. */
		const char *name = s.name[deepest];
		size_t stem = strlen(name) - strlen(".squashfs");
		for (size_t i = 0; i <= stem && r >= 0; i++) {
			if (i == stem || name[i] == '.') {
				char path[LIVE_PATH_MAX];
				snprintf(path, sizeof(path), "casper/%.*s.squashfs", (int)i, name);
				r = add_layer(iso, L, path);
				if (r == 0)
					r = k_seterr("%s: %s is layered on %s, which is missing", iso->name, name,
						     path);
			}
		}
	}
	names_free(&s);
	return r < 0 ? -1 : L->nlayers > 0;
}

static void find_params(const struct ksrc *iso, struct live_layout *L)
{
	static const struct { const char *path; int grub; } cfg[] = {
		{ "boot/grub/grub.cfg", 1 }, { "isolinux/live.cfg", 0 }, { "isolinux/txt.cfg", 0 },
		{ "isolinux/isolinux.cfg", 0 }, { "syslinux/syslinux.cfg", 0 },
		{ "boot/isolinux/isolinux.cfg", 0 }, { "boot/syslinux/syslinux.cfg", 0 },
	};
	for (size_t i = 0; i < sizeof(cfg) / sizeof(cfg[0]); i++) {
		char *text;
		size_t n;
		if (read_small(iso, cfg[i].path, &text, &n) <= 0)
			continue;               /* absent or unreadable: the next */
		int r = live_params(text, n, cfg[i].grub, L->params, sizeof(L->params));
		free(text);
		if (r > 0) {
			snprintf(L->params_from, sizeof(L->params_from), "%s", cfg[i].path);
			return;
		}
	}
}

int live_find(const struct ksrc *iso, const char *root, struct live_layout *L)
{
	int r;

	memset(L, 0, sizeof(*L));
	if (root) {
		while (*root == '/')
			root++;
		r = add_layer(iso, L, root);
		if (r == 0)
			return k_seterr("%s: --root %s: no such file in the ISO", iso->name, root);
		if (r < 0)
			return -1;
		snprintf(L->kind, sizeof(L->kind), "--root");
	} else if ((r = add_layer(iso, L, "KNOPPIX/KNOPPIX")) != 0) {
		if (r < 0)
			return -1;
		snprintf(L->kind, sizeof(L->kind), "KNOPPIX");
		for (int i = 1; r > 0 && i < 100; i++) {
			char path[32];
			snprintf(path, sizeof(path), "KNOPPIX/KNOPPIX%d", i);
			r = add_layer(iso, L, path);
		}
		if (r < 0)
			return -1;
	} else if ((r = debian_live(iso, L)) != 0) {
		if (r < 0)
			return -1;
		snprintf(L->kind, sizeof(L->kind), "Debian Live");
	} else if ((r = casper(iso, L)) != 0) {
		if (r < 0)
			return -1;
		snprintf(L->kind, sizeof(L->kind), "Ubuntu casper");
	} else {
		/* One image where the distribution puts it. */
		static const struct { const char *path, *kind; } single[] = {
			{ "LiveOS/squashfs.img", "Fedora LiveOS" },
			{ "arch/x86_64/airootfs.sfs", "Arch" },
			{ "sysresccd/x86_64/airootfs.sfs", "SystemRescue" },
		};
		for (size_t i = 0; i < sizeof(single) / sizeof(single[0]) && !r; i++) {
			if ((r = add_layer(iso, L, single[i].path)) < 0)
				return -1;
			snprintf(L->kind, sizeof(L->kind), "%s", single[i].kind);
		}
		if (!r)
			return k_seterr("%s: an ISO image with no root filesystem umlk knows where to find"
					" (KNOPPIX/KNOPPIX, live/*.squashfs, casper/*.squashfs, LiveOS/squashfs.img,"
					" arch/ or sysresccd/x86_64/airootfs.sfs); name it with --root PATH", iso->name);
	}
	find_params(iso, L);
	return 0;
}
