/* progress: a one-line progress bar on stderr, only when stderr is a terminal.
 * Updates are rate-limited, so calling prog_update() per block is cheap. */
#ifndef UMLK_PROGRESS_H
#define UMLK_PROGRESS_H

#include <stdint.h>

struct progress {
	const char *label;
	uint64_t total;         /* 0: unknown */
	uint64_t start_ns, last_ns;
	int on;                 /* stderr is a terminal */
};

void prog_start(struct progress *p, const char *label, uint64_t total);
void prog_update(struct progress *p, uint64_t done);
void prog_end(struct progress *p);      /* clears the line */
extern int k_quiet;                     /* -q: never show progress */

#endif
