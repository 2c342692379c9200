/* jailprobe: a "kernel" that does what a compromised guest kernel would,
 * for jail.test: run as 'umlk boot --kernel jailprobe --append "probe.X=Y
 * ..." IMAGE', in the jail umlk puts a kernel in, it tries to reach the
 * user's things and says on stderr, one line each, "NAME: refused (why)"
 * or "NAME: REACHED".  The test checks from outside too.
 *
 *   probe.file=PATH   read it (a file in the user's home; /etc/passwd)
 *   probe.dir=DIR     create DIR/planted
 *   probe.tcp=PORT    connect to 127.0.0.1:PORT
 *   probe.abstract=NAME  connect to the abstract unix socket @NAME
 *   probe.unix=PATH   connect to the unix socket PATH
 *   probe.pid=PID     signal it (SIGTERM), then PTRACE_ATTACH it
 *   probe.tiocsti=TEXT  push TEXT into the input of every terminal it holds
 *                     (descriptors 0 to 1023, and /dev/tty)
 */
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/ptrace.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

static void say(const char *name, int reached, int e)
{
	if (reached)
		fprintf(stderr, "%s: REACHED\n", name);
	else
		fprintf(stderr, "%s: refused (%s)\n", name, strerror(e));
}

static void try_file(const char *path)
{
	char buf[64], name[300];
	int fd = open(path, O_RDONLY);
	ssize_t n = fd >= 0 ? read(fd, buf, sizeof(buf)) : -1;
	snprintf(name, sizeof(name), "read %s", path);
	say(name, n > 0, errno);
}

static void try_create(const char *dir)
{
	char p[4096];
	snprintf(p, sizeof(p), "%s/planted", dir);
	int fd = open(p, O_WRONLY | O_CREAT | O_EXCL, 0600);
	say("create a file in a host directory", fd >= 0, errno);
}

static void try_connect(const char *name, int family, const void *a, socklen_t len)
{
	int s = socket(family, SOCK_STREAM, 0);
	int r = s >= 0 ? connect(s, a, len) : -1;
	say(name, r == 0, errno);
}

static void try_tiocsti(const char *text)
{
	int pushed = 0, e = ENOTTY;
	for (int fd = 0; fd < 1024; fd++) {
		if (!isatty(fd))
			continue;
		for (const char *c = text; *c; c++)
			if (ioctl(fd, TIOCSTI, c) == 0)
				pushed = 1;
			else
				e = errno;
	}
	int t = open("/dev/tty", O_RDWR);
	if (t >= 0) {
		for (const char *c = text; *c; c++)
			if (ioctl(t, TIOCSTI, c) == 0)
				pushed = 1;
	} else if (!pushed) {
		e = errno;
	}
	say("TIOCSTI on a terminal", pushed, e);
}

int main(int argc, char **argv)
{
	for (int i = 1; i < argc; i++) {
		char *v = strchr(argv[i], '=');
		if (strncmp(argv[i], "probe.", 6) || !v)
			continue;
		*v++ = 0;
		const char *k = argv[i] + 6;
		if (!strcmp(k, "file")) {
			try_file(v);
		} else if (!strcmp(k, "dir")) {
			try_create(v);
		} else if (!strcmp(k, "tcp")) {
			struct sockaddr_in a = { .sin_family = AF_INET, .sin_port = htons((uint16_t)atoi(v)),
						 .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
			try_connect("connect to TCP on 127.0.0.1", AF_INET, &a, sizeof(a));
		} else if (!strcmp(k, "abstract") || !strcmp(k, "unix")) {
			struct sockaddr_un a = { .sun_family = AF_UNIX };
			int abs = k[0] == 'a';
			snprintf(a.sun_path + abs, sizeof(a.sun_path) - 1, "%s", v);
			try_connect(abs ? "connect to an abstract unix socket" : "connect to a unix socket by path",
				    AF_UNIX, &a, (socklen_t)(offsetof(struct sockaddr_un, sun_path) + abs + strlen(v)));
		} else if (!strcmp(k, "pid")) {
			pid_t p = (pid_t)atoi(v);
			say("signal a process of the user", kill(p, SIGTERM) == 0, errno);
			say("ptrace a process of the user", ptrace(PTRACE_ATTACH, p, 0, 0) == 0, errno);
		} else if (!strcmp(k, "tiocsti")) {
			try_tiocsti(v);
		}
	}
	fprintf(stderr, "probe: done\n");
	return 0;
}
