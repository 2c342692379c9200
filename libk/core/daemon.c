#include "core/daemon.h"
#include "core/err.h"
#include "core/xio.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static int stamped;

void k_log(const char *fmt, ...)
{
	char line[1024];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(line, sizeof(line), fmt, ap);
	va_end(ap);
	if (stamped) {
		char when[32];
		time_t t = time(NULL);
		struct tm tm;
		strftime(when, sizeof(when), "%Y-%m-%d %H:%M:%S", localtime_r(&t, &tm));
		fprintf(stderr, "%s %s[%d]: %s\n", when, k_progname, (int)getpid(), line);
	} else {
		fprintf(stderr, "%s: %s\n", k_progname, line);
	}
	fflush(stderr);
}

void k_on_stop(void (*handler)(int))
{
	struct sigaction sa;

	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = handler;
	sigaction(SIGINT, &sa, NULL);
	sigaction(SIGTERM, &sa, NULL);
	signal(SIGPIPE, SIG_IGN);
}

int k_write_pidfile(const char *path)
{
	char text[32];
	int n = snprintf(text, sizeof(text), "%d\n", (int)getpid());

	return kout_write_file(path, text, (size_t)n, 0644, 0);
}

void xdaemonize(const char *logfile, const char *pidfile)
{
	int log = -1;

	/* Open the log before forking, so a bad path is reported here. */
	if (logfile && (log = open(logfile, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644)) < 0)
		xdie("%s:", logfile);
	fflush(NULL);
	pid_t pid = fork();
	if (pid < 0)
		xdie("fork:");
	if (pid > 0)
		_exit(0);
	setsid();
	int null = open("/dev/null", O_RDWR | O_CLOEXEC);
	if (null >= 0) {
		dup2(null, STDIN_FILENO);
		dup2(null, STDOUT_FILENO);
		dup2(log >= 0 ? log : null, STDERR_FILENO);
		if (null > STDERR_FILENO)
			close(null);
	}
	if (log > STDERR_FILENO)
		close(log);
	/* What the starter left open stays with the starter: a pipe it waits
	 * on must see its end of file.  Everything umlk opens itself is
	 * close-on-exec, so a descriptor without that flag was inherited. */
	for (int fd = STDERR_FILENO + 1; fd < 1024; fd++) {
		int fl = fcntl(fd, F_GETFD);
		if (fl >= 0 && !(fl & FD_CLOEXEC))
			close(fd);
	}
	stamped = logfile != NULL;
	if (chdir("/") < 0)
		k_log("chdir /: %s", strerror(errno));
	if (pidfile && k_write_pidfile(pidfile) < 0)
		k_log("%s", k_errmsg());
}
