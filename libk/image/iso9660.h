/* iso9660: find a file inside an ISO image without mounting it.
 *
 * Reads the primary volume descriptor (sector 16 on), walks directory
 * records from the root, and matches names the way a user writes them:
 * the Rock Ridge name (SUSP "NM") when there is one, else the ISO name
 * without its ";1" version and trailing dot, case-insensitively.  Files
 * over 4 GiB are stored as several extents; contiguous ones are joined.
 * Every record, extent and length is checked against the image size.
 */
#ifndef UMLK_ISO9660_H
#define UMLK_ISO9660_H

#include <stdint.h>

#include "core/xio.h"

#define ISO_SECTOR 2048

/* 1 if SRC starts like an ISO9660 image ("CD001" at sector 16). */
int iso_detect(const struct ksrc *src);
/* Find PATH ("KNOPPIX/KNOPPIX"): 1 and its byte range, 0 if absent,
 * -1 with k_seterr() when the image is damaged. */
int iso_find(const struct ksrc *src, const char *path, uint64_t *off, uint64_t *len);

/* Call FN with the name of every file (not directory) in directory DIR
 * ("live"), in the order the directory holds them: 1 done, 0 no such
 * directory, -1 with k_seterr() when the image is damaged. */
int iso_list(const struct ksrc *src, const char *dir, void (*fn)(const char *name, void *ctx), void *ctx);

/* If SRC is an ISO image, narrow it to its KNOPPIX/KNOPPIX file (the
 * cloop a KNOPPIX-style live CD keeps its root in): 1 when it did, 0 when
 * SRC is no ISO image, -1 with k_seterr() when it is one without that
 * file, or a damaged one. */
int iso_open_knoppix(struct ksrc *src);

#endif
