/*
 * clockshim.c - an LD_PRELOAD library that steps the wall clock one process
 * sees, for tests/integration/test_clock_jump.sh.
 *
 * What it simulates, honestly: an NTP step or an operator's `date -s` as
 * the process under test observes it. clock_gettime(CLOCK_REALTIME and
 * CLOCK_REALTIME_COARSE), gettimeofday() and time() return the real wall
 * clock plus an offset; CLOCK_MONOTONIC, CLOCK_BOOTTIME and the TSC are
 * untouched, as they are by a real step. The kernel's clock is not changed,
 * so nothing else on the machine is affected. It cannot reach clock reads
 * that bypass libc's exported functions (a vDSO call from another library's
 * private copy, a raw syscall): authd makes none.
 *
 * The offset, in seconds (signed):
 *   CLOCKSHIM_FILE=PATH    read from PATH (one integer) at every call; no
 *                          file or no number means 0. The test writes the
 *                          file to step the clock, back and forth, while
 *                          the process runs.
 *   CLOCKSHIM_OFFSET=S and CLOCKSHIM_AFTER_MS=MS
 *                          S seconds from MS milliseconds (monotonic) after
 *                          the process's first clock read on; without
 *                          CLOCKSHIM_FILE.
 *
 * Built without sanitizers or coverage (tests/integration/CMakeLists.txt),
 * so it loads into any program, sanitized or not.
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/time.h>
#include <time.h>

typedef int (*clock_gettime_fn)(clockid_t, struct timespec *);

static clock_gettime_fn
real_clock_gettime(void)
{
	static clock_gettime_fn fn;

	if (!fn)
		fn = (clock_gettime_fn)dlsym(RTLD_NEXT, "clock_gettime");
	return fn;
}

/* The offset now, in seconds. */
static int64_t
offset_s(void)
{
	static int64_t first_ms = -1;
	const char *file = getenv("CLOCKSHIM_FILE");
	const char *off = getenv("CLOCKSHIM_OFFSET");
	const char *after = getenv("CLOCKSHIM_AFTER_MS");
	struct timespec m;
	long long v = 0;
	int64_t now_ms;

	if (file) {
		int saved = errno;
		FILE *f = fopen(file, "re");

		if (f) {
			if (fscanf(f, "%lld", &v) != 1)
				v = 0;
			fclose(f);
		}
		errno = saved;
		return v;
	}
	if (!off)
		return 0;
	real_clock_gettime()(CLOCK_MONOTONIC, &m);
	now_ms = (int64_t)m.tv_sec * 1000 + m.tv_nsec / 1000000;
	if (first_ms < 0)
		first_ms = now_ms;
	if (after && now_ms - first_ms < atoll(after))
		return 0;
	return atoll(off);
}

int
clock_gettime(clockid_t id, struct timespec *ts)
{
	int rc = real_clock_gettime()(id, ts);

	if (rc == 0 && (id == CLOCK_REALTIME || id == CLOCK_REALTIME_COARSE))
		ts->tv_sec += offset_s();
	return rc;
}

int
gettimeofday(struct timeval *tv, void *tz)
{
	struct timespec ts;

	(void)tz;
	if (clock_gettime(CLOCK_REALTIME, &ts))
		return -1;
	tv->tv_sec = ts.tv_sec;
	tv->tv_usec = ts.tv_nsec / 1000;
	return 0;
}

time_t
time(time_t *t)
{
	struct timespec ts;

	if (clock_gettime(CLOCK_REALTIME, &ts))
		return (time_t)-1;
	if (t)
		*t = ts.tv_sec;
	return ts.tv_sec;
}
