/*
 * clock.c - the engine's notion of "now".
 *
 * The wall clock is read once at start; after that time advances with the
 * TSC, which never steps. Holds, months and cooling-off periods therefore
 * stay right when NTP or an operator steps the wall clock. A fixed clock
 * (--clock fixed:SECONDS) freezes time for deterministic tests and can be
 * moved by `authctl clock set`.
 */
#include <errno.h>
#include <time.h>

#include <rte_cycles.h>

#include "dp.h"

void
dp_clock_init(struct dp_clock *c, enum dp_clock_mode mode, uint32_t fixed_s)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	c->mode = mode;
	c->tsc_hz = rte_get_tsc_hz();
	c->base_tsc = rte_rdtsc();
	c->base_unix_ns = (int64_t)ts.tv_sec * 1000000000LL + ts.tv_nsec;
	c->fixed_s = fixed_s;
}

uint64_t
dp_clock_now_ns(const struct dp_clock *c)
{
	uint64_t d;

	if (c->mode == DP_CLOCK_FIXED)
		return (uint64_t)__atomic_load_n(&c->fixed_s, __ATOMIC_RELAXED) *
		       1000000000ULL;
	d = rte_rdtsc() - c->base_tsc;
	/* Split to keep d * 1e9 from overflowing after ~18 s at 1 GHz. */
	return (uint64_t)c->base_unix_ns + d / c->tsc_hz * 1000000000ULL +
	       d % c->tsc_hz * 1000000000ULL / c->tsc_hz;
}

uint32_t
dp_clock_now_s(const struct dp_clock *c)
{
	if (c->mode == DP_CLOCK_FIXED)
		return __atomic_load_n(&c->fixed_s, __ATOMIC_RELAXED);
	return (uint32_t)(dp_clock_now_ns(c) / 1000000000ULL);
}

int
dp_clock_set(struct dp_clock *c, uint32_t unix_s)
{
	if (c->mode != DP_CLOCK_FIXED)
		return -EINVAL;
	__atomic_store_n(&c->fixed_s, unix_s, __ATOMIC_RELAXED);
	return 0;
}
