/* cookie: X authority files (the format libXau reads and xauth writes), for
 * the MIT-MAGIC-COOKIE-1 that lets only one guest draw on one display.
 *
 * An entry is family (16 bits), then address, display number, auth name
 * and auth data, each a 16-bit length and the bytes, all big-endian.  umlk
 * writes one entry of family FamilyWild, which matches any address: the
 * host side (Xnest -auth FILE) only needs the cookie, and the guest reaches
 * the display through the gateway's address.
 */
#ifndef UMLK_COOKIE_H
#define UMLK_COOKIE_H

#include <stddef.h>
#include <stdint.h>

#define COOKIE_LEN 16

/* Write the entry for DISPLAY (its number) into BUF; returns the length,
 * 0 if CAP is too small. */
size_t cookie_entry(uint8_t *buf, size_t cap, int display, const uint8_t cookie[COOKIE_LEN]);
/* A new random cookie; -1 with k_seterr() when there is no randomness. */
int cookie_new(uint8_t cookie[COOKIE_LEN]);
/* Cookie to and from 32 hex digits (HEX has room for 33). */
void cookie_hex(const uint8_t cookie[COOKIE_LEN], char *hex);
int cookie_unhex(const char *hex, uint8_t cookie[COOKIE_LEN]);

#endif
