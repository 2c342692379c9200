/* daemon: long-running servers (umlswitch, dhcpd): log lines, and going
 * into the background only once set-up has worked.
 *
 * k_log() writes "umlk APPLET: message" to stderr, or, once daemonized
 * with a log file, "YYYY-mm-dd HH:MM:SS umlk APPLET[PID]: message".
 * xdaemonize() is meant to be called at the moment the server is ready
 * (sockets bound): the parent exits 0 there, so "umlk umlswitch -daemon
 * && next-command" never races the switch.  The child leaves the
 * terminal, sends its output to LOGFILE (or /dev/null) and writes PIDFILE.
 */
#ifndef UMLK_DAEMON_H
#define UMLK_DAEMON_H

void k_log(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void xdaemonize(const char *logfile, const char *pidfile);
/* SIGINT and SIGTERM call HANDLER (without SA_RESTART, so a blocked poll()
 * returns); SIGPIPE is ignored: a peer that went away is an error, not
 * the end. */
void k_on_stop(void (*handler)(int));
/* Write our pid to PATH (temporary file and rename); -1 with k_seterr(). */
int k_write_pidfile(const char *path);

#endif
