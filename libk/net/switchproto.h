/* switchproto: the control protocol of UML's "daemon" network transport
 * (arch/um/drivers/daemon_user.c), spoken by uml_switch (uml-utilities)
 * and 'umlk umlswitch'.
 *
 * A port connects a stream socket to the switch's control socket and
 * writes one request: magic 0xfeedface, version 3, type REQ_NEW_CONTROL
 * (0), and the struct sockaddr_un its own datagram socket is bound to.
 * The switch answers with the struct sockaddr_un (110 bytes) of its
 * datagram socket.  From then on every Ethernet frame is one datagram
 * between the two sockets, and closing the control connection removes the
 * port.  The kernel declares the request unpacked, 124 bytes (122 and 2 of
 * padding); VDE's packed variant appends a 128-byte description (250).
 * Both are accepted.
 *
 * umlk adds one request type of its own, SW_REQ_STATUS: the switch
 * answers with a text report and closes the connection.
 */
#ifndef UMLK_SWITCHPROTO_H
#define UMLK_SWITCHPROTO_H

#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>
#include <sys/types.h>
#include <sys/un.h>

#define SW_MAGIC 0xfeedfaceu
#define SW_VERSION 3
#define SW_REQ_NEW_CONTROL 0
#define SW_REQ_STATUS 0x756d6c6bu       /* "umlk" */
#define SW_REQ_MIN 122                  /* magic, version, type, sockaddr_un */
#define SW_REQ_KERNEL 124               /* as the kernel sends it */
#define SW_REQ_VDE 250                  /* packed, with a description */
#define SW_DEFAULT_CTL "/tmp/uml.ctl"   /* the kernel's default */

struct sw_request {
	uint32_t magic, version, type;
	struct sockaddr_un addr;
	char descr[129];                /* VDE's description, if any */
};

/* Parse the N bytes a client sent: 1 when complete (SW_REQ_MIN bytes or
 * more), 0 when more must come, -1 with k_seterr() when it is not a
 * request this switch serves (bad magic, version, type, address family). */
int sw_parse_request(struct sw_request *r, const uint8_t *buf, size_t n);
/* The kernel's 124-byte layout, for clients and tests. */
size_t sw_build_request(uint8_t buf[SW_REQ_KERNEL], uint32_t type, const struct sockaddr_un *addr);

/* Two socket addresses name the same port: the datagram's source address
 * (FROM, FROMLEN from recvfrom) against the one a port registered. */
int sw_addr_match(const struct sockaddr_un *from, socklen_t fromlen, const struct sockaddr_un *reg);

/* A port on a switch, as UML's kernel opens one: a control connection and
 * a datagram socket bound to an abstract address. */
struct sw_port {
	int ctl, data;
	struct sockaddr_un sw;          /* the switch's datagram socket */
};
/* -1 with k_seterr() naming CTL_PATH on failure.  Both sockets are
 * non-blocking and close-on-exec.  SERVICE, when not NULL, names a port
 * that serves the network (dhcpd) rather than being a guest: it is put in
 * the port's abstract address ("\0umlk-svc:NAME:..."), so the wire protocol
 * stays the kernel's, and umlk umlswitch shows it and does not count it
 * as a guest for -idle-exit. */
int sw_port_open(struct sw_port *p, const char *ctl_path, const char *service);
#define SW_SERVICE_TAG "umlk-svc:"
/* The service name in a registered address, or NULL for a guest. */
const char *sw_addr_service(const struct sockaddr_un *a, char *buf, size_t cap);
/* Send one frame; -1 with errno (EAGAIN when the switch is busy). */
ssize_t sw_port_send(struct sw_port *p, const void *frame, size_t n);
/* Receive one frame from the switch (datagrams from others are dropped):
 * bytes, 0 when none is waiting, -1 with errno. */
ssize_t sw_port_recv(struct sw_port *p, void *frame, size_t cap);
void sw_port_close(struct sw_port *p);

/* Ask the switch at CTL_PATH for its status report; -1 with k_seterr(). */
int sw_status(const char *ctl_path, char **text);

/* 1 when something accepts connections on CTL_PATH. */
int sw_alive(const char *ctl_path);

#endif
