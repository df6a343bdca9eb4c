/*
 * stress_budget.c - four shard owners take and give random amounts against a
 * small total while the control plane grows and shrinks it.
 *
 * Checked: a take never succeeds beyond the total (what the owners hold,
 * summed, never exceeds the largest total there was); no room goes negative;
 * at the end global + sum(shard rooms) + held == total, exactly, and the
 * total is the start plus the adjustments that succeeded.
 *
 * Bounded: AUTHD_STRESS_MS (default 1500) milliseconds; seeds are fixed.
 */
#include <errno.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <time.h>

#include <cmocka.h>

#include "lim.h"
#include "lim_pvt.h"

#define CHECK(c)                                                               \
	do {                                                                   \
		if (!(c)) {                                                    \
			fprintf(stderr, "%s:%d: check failed: %s\n", __FILE__, \
				__LINE__, #c);                                 \
			abort();                                               \
		}                                                              \
	} while (0)

enum { OWNERS = 4, HELD_MAX = 64 };

#define TOTAL 100000
#define CHUNK 100
#define ADJ 20000 /* the control plane adds and removes this much */

struct owner {
	pthread_t tid;
	unsigned shard;
	uint64_t seed;
	int64_t held[HELD_MAX];
	unsigned n;
	int64_t held_fen;
	uint64_t takes, fails, gives;
};

static struct lim_budget *b;
static int stop;
static int64_t held_all; /* atomic: sum of what owners hold, a lower bound */
static int64_t adj_net;  /* control plane: net successful adjustment */

static uint64_t
xorshift(uint64_t *s)
{
	uint64_t x = *s;

	x ^= x << 13;
	x ^= x >> 7;
	x ^= x << 17;
	return *s = x;
}

static unsigned
stress_ms(void)
{
	const char *e = getenv("AUTHD_STRESS_MS");

	return e ? (unsigned)atoi(e) : 1500;
}

static void
sleep_ms(unsigned ms)
{
	struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};

	nanosleep(&ts, NULL);
}

static void
owner_take(struct owner *o)
{
	int64_t fen = (int64_t)(xorshift(&o->seed) % 3000) + 1;

	if (!lim_budget_take(b, o->shard, fen)) {
		o->fails++;
		CHECK(lim_budget_shard_room(b, o->shard) >= 0);
		return;
	}
	o->held[o->n++] = fen;
	o->held_fen += fen;
	o->takes++;
	/* held_all counts a take after it happened and a give before, so it
	 * never exceeds what is really used, which never exceeds the total */
	CHECK(__atomic_add_fetch(&held_all, fen, __ATOMIC_RELAXED) <=
	      TOTAL + ADJ);
}

static void
owner_give(struct owner *o)
{
	unsigned i = (unsigned)(xorshift(&o->seed) % o->n);
	int64_t fen = o->held[i];

	o->held[i] = o->held[--o->n];
	o->held_fen -= fen;
	__atomic_sub_fetch(&held_all, fen, __ATOMIC_RELAXED);
	/* give through any shard is allowed: use ours */
	lim_budget_give(b, o->shard, fen);
	o->gives++;
}

static void *
owner_main(void *arg)
{
	struct owner *o = arg;

	while (!__atomic_load_n(&stop, __ATOMIC_RELAXED)) {
		for (int k = 0; k < 64; k++) {
			bool take = o->n == 0 ||
				    (o->n < HELD_MAX && xorshift(&o->seed) % 2);

			if (take)
				owner_take(o);
			else
				owner_give(o);
			/* a refill leaves < 1 chunk, a give keeps <= 2 */
			CHECK(lim_budget_shard_room(b, o->shard) <= 2 * CHUNK);
		}
	}
	return NULL;
}

static void *
control_main(void *arg)
{
	uint64_t *ok = arg;

	while (!__atomic_load_n(&stop, __ATOMIC_RELAXED)) {
		int rc;

		CHECK(lim_budget_adjust(b, ADJ) == 0);
		adj_net += ADJ;
		sleep_ms(1);
		/* shrinking fails while the owners use the room: retry */
		do {
			rc = lim_budget_adjust(b, -ADJ);
			CHECK(rc == 0 || rc == -ERANGE);
		} while (rc && !__atomic_load_n(&stop, __ATOMIC_RELAXED));
		if (rc == 0) {
			adj_net -= ADJ;
			(*ok)++;
		}
		CHECK(lim_budget_global(b) >= 0);
	}
	return NULL;
}

static void
test_budget_stress(void **state)
{
	static struct owner o[OWNERS];
	uint64_t takes = 0, fails = 0, gives = 0, shrinks = 0;
	int64_t held = 0, sum;
	pthread_t ctl;

	b = lim_budget_create(TOTAL, CHUNK, OWNERS);
	assert_non_null(b);
	for (unsigned i = 0; i < OWNERS; i++) {
		o[i].shard = i;
		o[i].seed = 0x9e3779b97f4a7c15ULL * (i + 1);
		assert_int_equal(pthread_create(&o[i].tid, NULL, owner_main,
						&o[i]), 0);
	}
	assert_int_equal(pthread_create(&ctl, NULL, control_main, &shrinks), 0);
	sleep_ms(stress_ms());
	__atomic_store_n(&stop, 1, __ATOMIC_RELAXED);
	for (unsigned i = 0; i < OWNERS; i++) {
		pthread_join(o[i].tid, NULL);
		takes += o[i].takes;
		fails += o[i].fails;
		gives += o[i].gives;
		held += o[i].held_fen;
	}
	pthread_join(ctl, NULL);

	assert_int_equal(lim_budget_total(b), TOTAL + adj_net);
	sum = lim_budget_global(b);
	for (unsigned s = 0; s < OWNERS; s++) {
		assert_true(lim_budget_shard_room(b, s) >= 0);
		sum += lim_budget_shard_room(b, s);
	}
	assert_int_equal(sum + held, lim_budget_total(b));
	assert_int_equal(held, held_all);
	assert_int_equal(lim_budget_free_fen(b), lim_budget_total(b) - held);
	printf("budget: %llu takes, %llu declined, %llu gives, %llu shrinks; "
	       "held %lld of %lld\n",
	       (unsigned long long)takes, (unsigned long long)fails,
	       (unsigned long long)gives, (unsigned long long)shrinks,
	       (long long)held, (long long)lim_budget_total(b));
	assert_true(takes > 0 && fails > 0 && gives > 0);

	/* everything given back: the whole total is free again */
	for (unsigned i = 0; i < OWNERS; i++)
		while (o[i].n)
			owner_give(&o[i]);
	assert_int_equal(lim_budget_free_fen(b), lim_budget_total(b));
	lim_budget_free(b);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_budget_stress),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
