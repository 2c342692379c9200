/* upperdiff: 'cow-merge --export' and '--apply' for an overlay's upper
 * layer (upper.h), as a diff of files (fdiff.h).
 *
 * The host does not read ext4; the guest kernel does.  So both run a
 * guest that never mounts the root: umlk's init mounts the upper layer's
 * ext4 and walks it (export), or fills a new one (apply), through one
 * more disk, the job disk (serial GUEST_JOB_SERIAL): a 4 KiB header
 * ("UMLKJOB1", the stream's length, big-endian) and the stream of
 * entries from byte 4096.  The host checks every byte of what the guest
 * wrote as it checks any diff before it puts it in the container, and
 * checks a diff it is given (and the image's SHA-256) before any guest
 * or output exists. */
#ifndef UMLK_UPPERDIFF_H
#define UMLK_UPPERDIFF_H

#include "guest/guest.h"

#define GUEST_JOB_SERIAL "umlk-job"
#define JOB_MAGIC "UMLKJOB1"
#define JOB_DATA 4096

/* Host: write the upper layer UPPER (over BACKING, or the image its
 * header names when NULL) as a diff of files at DIFFPATH. */
struct upper_guest {
	const char *kernel, *init;      /* as 'umlk boot --kernel/--init'; NULL: the default */
};
void xupper_export(const struct upper_guest *g, const char *upper, const char *backing, const char *diffpath);
/* Host: a new upper layer OUT over BACKING holding the NDIFFS diffs of
 * files, in order (a later diff's entry replaces an earlier one's). */
void xupper_apply(const struct upper_guest *g, const char *const *diffs, int ndiffs, const char *backing,
		  const char *out);
/* Is PATH a diff of files?  1 yes, 0 another kind (or unreadable: the
 * caller's reader will say why). */
int upper_is_fdiff(const char *path);

/* Guest (process 1): do the job C names ("export" or "apply") and return
 * the status to report: 0, or 1 after saying why. */
int guest_upper_job(const struct guest_conf *c);

#endif
