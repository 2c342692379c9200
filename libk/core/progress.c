#include "core/progress.h"
#include "core/sys.h"
#include "core/xio.h"

#include <stdio.h>
#include <stdlib.h>
#include <time.h>
#include <unistd.h>

int k_quiet;

void prog_start(struct progress *p, const char *label, uint64_t total)
{
	const char *term = getenv("TERM");

	p->label = label;
	p->total = total;
	p->start_ns = p->last_ns = k_now_ns();
	p->on = !k_quiet && isatty(STDERR_FILENO) && !(term && !*term);
}

void prog_update(struct progress *p, uint64_t done)
{
	char a[16], b[16], r[16];
	uint64_t now;

	if (!p->on)
		return;
	now = k_now_ns();
	if (now - p->last_ns < 100000000u && done != p->total)
		return;
	p->last_ns = now;
	double secs = (now - p->start_ns) / 1e9;
	uint64_t rate = secs > 0 ? (uint64_t)(done / secs) : 0;
	k_human(done, a, sizeof(a));
	k_human(rate, r, sizeof(r));
	if (p->total) {
		int pct = (int)(done * 100 / p->total);
		int fill = pct * 30 / 100;
		fprintf(stderr, "\r%s [%-30.*s] %3d%% %s / %s  %s/s \033[K", p->label, fill,
			"##############################", pct, a,
			k_human(p->total, b, sizeof(b)), r);
	} else {
		fprintf(stderr, "\r%s %s  %s/s \033[K", p->label, a, r);
	}
}

void prog_end(struct progress *p)
{
	if (p->on)
		fputs("\r\033[K", stderr);
	p->on = 0;
}
