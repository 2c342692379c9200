/* dhcpc: a DHCP client, for the guest's eth0 (and for any netif).
 *
 * dhcpc_acquire() runs DISCOVER, OFFER, REQUEST, ACK with the usual
 * backoff (1, 2, 4, 8 s between tries, until the deadline); a NAK starts
 * over.  dhcpc_renew() asks the same server to extend the lease.
 * dhcpc_configure() sets the address, netmask, broadcast and default
 * route on a host interface (ioctls, no ip/ifconfig needed).
 */
#ifndef UMLK_DHCPC_H
#define UMLK_DHCPC_H

#include <stdint.h>

#include "net/netif.h"

struct dhcpc_lease {
	uint32_t ip, mask, bcast, router, server;
	uint8_t server_mac[6];
	uint32_t dns[4];
	int ndns;
	uint32_t lease, t1, t2;         /* seconds */
	uint16_t mtu;                   /* 0: none offered */
	char hostname[64], domain[64];
};

/* SEND_NAME: the host name to tell the server (option 12), or NULL.
 * -1 with k_seterr() when no lease came within TIMEOUT_MS. */
int dhcpc_acquire(struct netif *ni, const char *send_name, int timeout_ms, struct dhcpc_lease *l);
int dhcpc_renew(struct netif *ni, struct dhcpc_lease *l, int timeout_ms);
/* Give the address back (DHCPRELEASE, unicast to the server): for clients
 * whose MAC will not come again (a live CD's temporary COW, a gateway). */
int dhcpc_release(struct netif *ni, const struct dhcpc_lease *l);
int dhcpc_configure(const char *ifname, const struct dhcpc_lease *l);
/* resolv.conf text for the lease (NULL when it names no DNS server). */
char *dhcpc_resolv_text(const struct dhcpc_lease *l);

#endif
