#include "guest/cookie.h"
#include "core/err.h"

#include <stdio.h>
#include <string.h>
#include <sys/random.h>

#define FAMILY_WILD 0xffff

static uint8_t *field(uint8_t *p, const void *data, size_t n)
{
	*p++ = (uint8_t)(n >> 8);
	*p++ = (uint8_t)n;
	memcpy(p, data, n);
	return p + n;
}

size_t cookie_entry(uint8_t *buf, size_t cap, int display, const uint8_t cookie[COOKIE_LEN])
{
	static const char name[] = "MIT-MAGIC-COOKIE-1";
	char num[16];
	int nl = snprintf(num, sizeof(num), "%d", display);
	size_t need = 2 + 2 + 0 + 2 + (size_t)nl + 2 + strlen(name) + 2 + COOKIE_LEN;

	if (cap < need || nl < 0)
		return 0;
	uint8_t *p = buf;
	*p++ = FAMILY_WILD >> 8;
	*p++ = FAMILY_WILD & 0xff;
	p = field(p, "", 0);                    /* any address */
	p = field(p, num, (size_t)nl);
	p = field(p, name, strlen(name));
	p = field(p, cookie, COOKIE_LEN);
	return (size_t)(p - buf);
}

int cookie_new(uint8_t cookie[COOKIE_LEN])
{
	if (getrandom(cookie, COOKIE_LEN, 0) != COOKIE_LEN)
		return k_seterr("no random bytes for an X cookie");
	return 0;
}

void cookie_hex(const uint8_t cookie[COOKIE_LEN], char *hex)
{
	for (int i = 0; i < COOKIE_LEN; i++)
		snprintf(hex + 2 * i, 3, "%02x", cookie[i]);
}

int cookie_unhex(const char *hex, uint8_t cookie[COOKIE_LEN])
{
	if (strlen(hex) != 2 * COOKIE_LEN)
		return -1;
	for (int i = 0; i < COOKIE_LEN; i++) {
		unsigned v;
		if (sscanf(hex + 2 * i, "%2x", &v) != 1 || !((hex[2 * i] >= '0' && hex[2 * i] <= '9') ||
		    (hex[2 * i] >= 'a' && hex[2 * i] <= 'f')))
			return -1;
		cookie[i] = (uint8_t)v;
	}
	return 0;
}
