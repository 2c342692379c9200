/* mconsole: UML's management console (arch/um/drivers/mconsole_*.c).
 *
 * The kernel listens on a datagram socket at UML_DIR/UMID/mconsole.  A
 * request is magic 0xcafebabe, version 2, a length and up to 512 bytes of
 * command text ("cad", "halt", "sysrq s", "version"...), in host byte
 * order; the answer comes back to the sender's address in one or more
 * replies (err, more, len, data).  umlk boot uses it to stop a guest
 * cleanly when it is told to stop.
 */
#ifndef UMLK_MCONSOLE_H
#define UMLK_MCONSOLE_H

#include <stddef.h>

/* Send CMD and collect the reply text into REPLY (may be NULL).  0 when the
 * kernel says it worked, -1 with k_seterr() otherwise (no socket, no answer
 * within TIMEOUT_MS, or the kernel's error text). */
int mconsole_cmd(const char *sock, const char *cmd, char *reply, size_t cap, int timeout_ms);

#endif
