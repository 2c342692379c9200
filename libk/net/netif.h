/* netif: one network endpoint in user space, with its own MAC and IPv4
 * address, on a switch port (see switchproto.h) or on a host interface
 * (an AF_PACKET socket, which needs root or CAP_NET_RAW).
 *
 * dhcpd, the guest's DHCP client and xnest-launch's X gateway each sit on
 * one.  netif_answer() handles what any host on a segment must: ARP
 * requests for its address and ping.  Everything else goes to the caller.
 */
#ifndef UMLK_NETIF_H
#define UMLK_NETIF_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "net/net.h"
#include "net/switchproto.h"

struct netif {
	int on_switch;                  /* else a packet socket */
	struct sw_port port;
	int pfd;                        /* the packet socket */
	int ifindex;
	char name[128];                 /* the socket path or interface, for messages */
	uint8_t mac[6];
	uint32_t ip, mask;              /* ip 0: not configured yet */
	int answer_arp;                 /* 0 on a host interface: the host does it */
	int csum_partial;               /* the last frame's L4 checksum is not filled in yet */
};

/* -1 with k_seterr() naming the socket or interface. */
/* SERVICE: see sw_port_open(). */
int netif_open_switch(struct netif *ni, const char *ctl_path, const uint8_t mac[6], const char *service);
int netif_open_packet(struct netif *ni, const char *ifname);
void netif_close(struct netif *ni);

/* The descriptor to poll for frames. */
int netif_fd(const struct netif *ni);
/* A descriptor that becomes readable when the switch goes away, or -1. */
int netif_ctl_fd(const struct netif *ni);

/* One frame: its length, 0 when none is waiting, -1 with errno.  Parse it
 * with net_parse_ex(..., !ni->csum_partial). */
ssize_t netif_recv(struct netif *ni, uint8_t *buf, size_t cap);
/* Wait up to TIMEOUT_MS for a frame: length, 0 on timeout, -1 on error. */
ssize_t netif_wait(struct netif *ni, uint8_t *buf, size_t cap, int timeout_ms);
int netif_send(struct netif *ni, const uint8_t *frame, size_t n);

/* Answer P if it is an ARP request for our address or a ping to it:
 * 1 when it was (and is done with), else 0. */
int netif_answer(struct netif *ni, const struct net_pkt *p);

/* A stable, locally administered unicast MAC from a name. */
void netif_mac_from(const char *name, const char *salt, uint8_t mac[6]);

/* Host interface helpers (ioctls): bring IFNAME up; read its MAC, address
 * and netmask.  -1 with k_seterr(). */
int netif_if_up(const char *ifname);
/* Set the interface's MAC (while it is down). */
int netif_set_mac(const char *ifname, const uint8_t mac[6]);
int netif_if_info(const char *ifname, uint8_t mac[6], uint32_t *ip, uint32_t *mask);

#endif
