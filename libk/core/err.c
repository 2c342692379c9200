#include "core/err.h"

#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

const char *k_progname = "umlk";
const char *k_usage_text;

static _Thread_local char errbuf[512];     /* each thread its own last error */

/* A fixed table, so the signal handler can walk it without locks or malloc. */
#define MAX_CLEANUP 8
static char cleanup[MAX_CLEANUP][4096];
static volatile sig_atomic_t cleanup_used[MAX_CLEANUP];


void k_vwarn(const char *fmt, va_list ap)
{
	int e = errno;
	size_t n = strlen(fmt);

	fflush(stdout);
	fprintf(stderr, "%s: ", k_progname);
	vfprintf(stderr, fmt, ap);
	if (n && fmt[n - 1] == ':')
		fprintf(stderr, " %s", strerror(e));
	fputc('\n', stderr);
}

void k_warn(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	k_vwarn(fmt, ap);
	va_end(ap);
}

_Noreturn static void default_die(int status)
{
	k_cleanup_run();
	exit(status);
}

void (*k_die_hook)(int status) = default_die;

static void child_die(int status)
{
	fflush(stdout);
	fflush(stderr);
	_exit(status);
}

int k_fork(void)
{
	fflush(NULL);
	pid_t pid = fork();
	if (pid == 0) {
		k_die_hook = child_die;
		for (int i = 0; i < MAX_CLEANUP; i++)
			cleanup_used[i] = 0;    /* the parent's to remove, not ours */
	}
	return pid;
}

void xdie(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	k_vwarn(fmt, ap);
	va_end(ap);
	k_die_hook(1);
	abort();                /* a hook that returns is a bug */
}

int k_seterr(const char *fmt, ...)
{
	va_list ap;
	int e = errno;
	size_t n = strlen(fmt);

	char msg[sizeof(errbuf)];       /* the arguments may be k_errmsg() itself */

	va_start(ap, fmt);
	int len = vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	if (n && fmt[n - 1] == ':' && len >= 0 && (size_t)len < sizeof(msg))
		snprintf(msg + len, sizeof(msg) - len, " %s", strerror(e));
	memcpy(errbuf, msg, sizeof(errbuf));
	errno = e;
	return -1;
}

const char *k_errmsg(void)
{
	return errbuf[0] ? errbuf : "unknown error";
}

int k_cleanup_add(const char *path)
{
	for (int i = 0; i < MAX_CLEANUP; i++) {
		if (!cleanup_used[i]) {
			snprintf(cleanup[i], sizeof(cleanup[i]), "%s", path);
			cleanup_used[i] = 1;
			return 0;
		}
	}
	return k_seterr("%s: more than %d temporary files at once", path, MAX_CLEANUP);
}

void k_cleanup_del(const char *path)
{
	for (int i = 0; i < MAX_CLEANUP; i++)
		if (cleanup_used[i] && !strcmp(cleanup[i], path))
			cleanup_used[i] = 0;
}

void k_cleanup_run(void)
{
	for (int i = 0; i < MAX_CLEANUP; i++) {
		if (cleanup_used[i]) {
			unlink(cleanup[i]);
			cleanup_used[i] = 0;
		}
	}
}

static void on_signal(int sig)
{
	k_cleanup_run();        /* unlink is async-signal-safe */
	signal(sig, SIG_DFL);
	raise(sig);
}

void k_catch_signals(void)
{
	static const int sigs[] = { SIGINT, SIGTERM, SIGHUP };
	struct sigaction sa;

	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = on_signal;
	for (size_t i = 0; i < sizeof(sigs) / sizeof(sigs[0]); i++)
		sigaction(sigs[i], &sa, NULL);
}
