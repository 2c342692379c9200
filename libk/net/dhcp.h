/* dhcp: DHCP messages (RFC 2131, options from RFC 2132) and the server's
 * lease table.
 *
 * dhcp_parse() reads a BOOTP/DHCP message as hostile input: the fixed part,
 * the magic cookie, then options with every length checked, including
 * options carried in the 'file' and 'sname' fields when option 52
 * (overload) says so.  Only the options umlk uses are kept; strings are
 * NUL-terminated, truncated to their buffers, and never trusted to be
 * terminated on the wire.  dhcp_build() writes a message from the same
 * struct.
 *
 * The server (struct dhcps) hands out addresses from a pool and static
 * leases by MAC, remembers who has what (and, with a lease file, across
 * restarts: the file is rewritten whole under a temporary name and renamed),
 * and answers DISCOVER, REQUEST, DECLINE, RELEASE and INFORM.
 */
#ifndef UMLK_DHCP_H
#define UMLK_DHCP_H

#include <stddef.h>
#include <stdint.h>
#include <time.h>

#define DHCP_SERVER_PORT 67
#define DHCP_CLIENT_PORT 68
#define DHCP_MAX_MSG 1024       /* what we write; we read up to the MTU */

/* Option codes (RFC 2132) umlk reads or writes. */
enum dhcp_option {
	DHO_PAD = 0, DHO_SUBNET_MASK = 1, DHO_ROUTER = 3, DHO_DNS = 6, DHO_HOSTNAME = 12,
	DHO_DOMAIN = 15, DHO_MTU = 26, DHO_BROADCAST = 28, DHO_REQUESTED_IP = 50, DHO_LEASE_TIME = 51,
	DHO_OVERLOAD = 52, DHO_MSG_TYPE = 53, DHO_SERVER_ID = 54, DHO_PARAM_LIST = 55,
	DHO_MESSAGE = 56, DHO_MAX_SIZE = 57, DHO_T1 = 58, DHO_T2 = 59, DHO_CLIENT_ID = 61,
	DHO_END = 255,
};

enum dhcp_type {
	DHCPDISCOVER = 1, DHCPOFFER, DHCPREQUEST, DHCPDECLINE,
	DHCPACK, DHCPNAK, DHCPRELEASE, DHCPINFORM,
};

/* Options present, as bits of struct dhcp_msg.have */
enum {
	DH_MASK = 1 << 0, DH_ROUTER = 1 << 1, DH_DNS = 1 << 2, DH_HOSTNAME = 1 << 3,
	DH_DOMAIN = 1 << 4, DH_REQIP = 1 << 5, DH_LEASE = 1 << 6, DH_SERVERID = 1 << 7,
	DH_T1 = 1 << 8, DH_T2 = 1 << 9, DH_CLIENTID = 1 << 10, DH_MESSAGE = 1 << 11,
	DH_BROADCAST_ADDR = 1 << 12, DH_MTU = 1 << 13,
};

struct dhcp_msg {
	uint8_t op;                     /* 1 request, 2 reply */
	uint32_t xid;
	uint16_t secs, flags;           /* flags & 0x8000: reply by broadcast */
	uint32_t ciaddr, yiaddr, siaddr, giaddr;
	uint8_t chaddr[6];              /* Ethernet only (htype 1, hlen 6) */
	uint8_t type;                   /* option 53; 0 for plain BOOTP */
	unsigned have;                  /* DH_* */
	uint32_t mask, router, reqip, serverid, lease, t1, t2, bcast;
	uint16_t mtu;                   /* option 26, the interface MTU */
	uint32_t dns[4];
	int ndns;
	char hostname[64];
	char domain[64];
	char message[128];              /* option 56, on a NAK */
	uint8_t clientid[64];
	size_t clientid_len;
};

/* -1 with k_seterr() when the message is malformed. */
int dhcp_parse(struct dhcp_msg *m, const uint8_t *buf, size_t len);
/* Write M into BUF (at least DHCP_MAX_MSG bytes); returns the length. */
size_t dhcp_build(uint8_t *buf, const struct dhcp_msg *m);
const char *dhcp_type_name(int type);

/* ---- the server */

struct dhcp_static {
	uint8_t mac[6];
	uint32_t ip;
	char hostname[64];
};

struct dhcps_conf {
	uint32_t server_ip, pool_first, pool_last, mask, router, bcast;
	uint32_t dns[4];
	int ndns;
	uint32_t lease_secs;
	uint16_t mtu;                   /* offered as option 26; 0: none */
	char domain[64];
	char hostname_prefix[32];       /* "" : hand out no names but static ones */
	const char *lease_file;         /* NULL: leases live in memory only */
	struct dhcp_static *statics;
	int nstatics;
	/* Log lines (one per event); NULL: quiet. */
	void (*log)(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
};

enum lease_state { LEASE_FREE, LEASE_OFFERED, LEASE_BOUND, LEASE_DECLINED };

struct lease {
	uint8_t mac[6];
	uint32_t ip;
	time_t expires;
	int state;
	char hostname[64];
};

struct dhcps {
	struct dhcps_conf c;
	struct lease *leases;
	size_t n, cap;
	int dirty;                      /* the lease file needs writing */
	/* Indexes, so a lease is found in constant time however many there
	 * are: the pool's addresses (an array: index + 1 of the one record
	 * holding each, 0 for none), and MACs (open addressing, insert-only,
	 * as records are never removed). */
	uint32_t *by_ip;
	uint32_t *by_mac;
	size_t mac_slots;
	uint32_t cursor;                /* where the search for a never-used address resumes */
};

/* Check the configuration (pool inside the subnet, server outside the
 * pool, static leases inside the subnet, ...): -1 with k_seterr(). */
int dhcps_init(struct dhcps *s, const struct dhcps_conf *c);
/* Read the lease file, if one is configured and exists: -1 with k_seterr()
 * naming the file and line when it is damaged. */
int dhcps_load(struct dhcps *s, time_t now);
/* Write it (temporary file, fsync, rename) when leases changed. */
int dhcps_save(struct dhcps *s);
/* Answer IN: 1 with OUT filled when there is a reply to send, else 0. */
int dhcps_handle(struct dhcps *s, const struct dhcp_msg *in, struct dhcp_msg *out, time_t now);
void dhcps_free(struct dhcps *s);

/* Where a server reply goes (RFC 2131 4.1): to the relay (IN->giaddr, port
 * 67), broadcast, or to OUT->yiaddr or IN->ciaddr at the client's MAC.
 * Sets *ip; 1 when broadcast.  Relays in the served subnet are answered. */
int dhcps_reply_dest(const struct dhcp_msg *in, const struct dhcp_msg *out, uint32_t *ip);

#endif
