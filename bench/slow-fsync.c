/*
 * slow-fsync: an LD_PRELOAD library that makes every fsync() and fdatasync() take longer, so that
 * a PostgreSQL server on a fast local disk behaves like one on network block storage (0.5-2 ms
 * per flush). It sleeps SLOW_FSYNC_US microseconds (default 1000), then calls the real function.
 *
 * Built by the benchmark at run time (never committed as a binary):
 *   cc -O2 -shared -fPIC -o slow-fsync.so slow-fsync.c -ldl
 * Checked with the same preload: LD_PRELOAD=./slow-fsync.so pg_test_fsync -s 1
 * Sleeps overshoot on virtual machines, so the benchmark calibrates SLOW_FSYNC_US against the
 * fdatasync figure that pg_test_fsync reports.
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <errno.h>
#include <stdlib.h>
#include <time.h>

static long delay_us = -1;

static void slow_down(void)
{
	if (delay_us < 0)
	{
		const char *s = getenv("SLOW_FSYNC_US");
		delay_us = s != NULL ? atol(s) : 1000;
		if (delay_us < 0)
			delay_us = 0;
	}
	if (delay_us == 0)
		return;
	struct timespec left = {delay_us / 1000000, (delay_us % 1000000) * 1000};
	/* PostgreSQL's processes get signals (latches): finish the sleep after each one. */
	int saved = errno;
	while (nanosleep(&left, &left) == -1 && errno == EINTR)
		;
	errno = saved;
}

int fsync(int fd)
{
	static int (*real)(int);
	if (real == NULL)
		real = (int (*)(int)) dlsym(RTLD_NEXT, "fsync");
	slow_down();
	return real(fd);
}

int fdatasync(int fd)
{
	static int (*real)(int);
	if (real == NULL)
		real = (int (*)(int)) dlsym(RTLD_NEXT, "fdatasync");
	slow_down();
	return real(fd);
}
