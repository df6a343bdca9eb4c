/*
 * stress_users.c - readers find users (one by one and in bursts) while the
 * updater inserts new ones, and readers contend on the locks of a few hot
 * users.
 *
 * Checked: a user whose insertion a reader has seen counted (lim_users_count)
 * is always found; a found slot is always complete (every settings field is
 * derived from the id, so a half-written slot fails); find_burst agrees with
 * find; a lookup of an id that was never inserted misses. Under the hot
 * users' locks the readers add to holds_fen: at the end each hot user's
 * holds_fen is exactly the number of additions.
 *
 * Bounded: AUTHD_STRESS_MS (default 1500) milliseconds or until the table
 * is full; seeds are fixed.
 */
#include <errno.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
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

enum {
	READERS = 3,
	CAPACITY = 400000,
	HOT = 8,
	BURST = 16,
};

struct reader {
	pthread_t tid;
	uint64_t seed;
	uint64_t finds, hits, bursts, locks;
	uint64_t hot_adds[HOT];
};

static struct lim_users *t;
static uint64_t ids[CAPACITY];
static int stop;

static uint64_t
xorshift(uint64_t *x)
{
	uint64_t v = *x;

	v ^= v << 13;
	v ^= v >> 7;
	v ^= v << 17;
	return *x = v;
}

static unsigned
stress_ms(void)
{
	const char *e = getenv("AUTHD_STRESS_MS");

	return e ? (unsigned)atoi(e) : 1500;
}

static struct lim_user
user_make(uint64_t id)
{
	struct lim_user u;

	memset(&u, 0, sizeof(u));
	u.user_id = id;
	u.limit_fen = (int64_t)(id >> 8);
	u.outstanding_fen = (int64_t)(id >> 9);
	u.cash_fen = (int64_t)(id >> 10);
	u.inst_fen = (int64_t)(id >> 11);
	u.self_cap_fen = (int64_t)(id >> 12);
	u.month_spend_fen = (int64_t)(id >> 13);
	u.cool_until_s = (uint32_t)id;
	u.spend_min = (uint32_t)(id >> 32);
	u.vel_min_fen = (uint32_t)~id;
	u.vel_day_fen = (uint32_t)(id >> 5);
	u.region = (uint16_t)id;
	u.vel_min_n = (uint8_t)(id >> 16);
	u.vel_day_n = (uint8_t)(id >> 24);
	u.tier = (uint8_t)(id % LIM_TIERS);
	u.flags = (uint8_t)(id >> 40) & LIM_USER_SOFT_CAP;
	u.risk_q = (uint8_t)(id >> 48);
	return u;
}

/* Every field but the lock byte and holds_fen (the hot users' counter). */
static void
user_check(const struct lim_user *s, uint64_t id)
{
	struct lim_user w = user_make(id);

	CHECK(s->user_id == w.user_id);
	CHECK(s->limit_fen == w.limit_fen);
	CHECK(s->outstanding_fen == w.outstanding_fen);
	CHECK(s->cash_fen == w.cash_fen);
	CHECK(s->inst_fen == w.inst_fen);
	CHECK(s->self_cap_fen == w.self_cap_fen);
	CHECK(s->month_spend_fen == w.month_spend_fen);
	CHECK(s->cool_until_s == w.cool_until_s);
	CHECK(s->spend_min == w.spend_min);
	CHECK(s->vel_min_fen == w.vel_min_fen);
	CHECK(s->vel_day_fen == w.vel_day_fen);
	CHECK(s->region == w.region);
	CHECK(s->vel_min_n == w.vel_min_n);
	CHECK(s->vel_day_n == w.vel_day_n);
	CHECK(s->tier == w.tier);
	CHECK(s->flags == w.flags);
	CHECK(s->risk_q == w.risk_q);
}

/* Inserted ids are even (test_users_stress clears the low bit), so an odd
 * id is one that was never inserted. */
static uint64_t
absent_id(uint64_t x)
{
	return x | 1;
}

static void
find_some(struct reader *r)
{
	uint64_t n = lim_users_count(t), x = xorshift(&r->seed);
	uint64_t i = x % (n + n / 4 + 1);
	struct lim_user *u;

	r->finds++;
	if (i >= CAPACITY) {
		CHECK(!lim_users_find(t, absent_id(x)));
		return;
	}
	u = lim_users_find(t, ids[i]);
	if (i < n)
		CHECK(u != NULL); /* counted means published */
	if (u) {
		user_check(u, ids[i]);
		r->hits++;
	}
}

static void
burst_some(struct reader *r)
{
	uint64_t q[BURST], n = lim_users_count(t);
	struct lim_user *out[BURST];

	for (unsigned k = 0; k < BURST; k++) {
		uint64_t x = xorshift(&r->seed);
		uint64_t i = x % (n + n / 4 + 1);

		q[k] = i < CAPACITY ? ids[i] : absent_id(x);
	}
	lim_users_find_burst(t, q, BURST, out);
	for (unsigned k = 0; k < BURST; k++) {
		if (!out[k]) {
			/* may have been inserted since: then find sees it */
			struct lim_user *u = lim_users_find(t, q[k]);

			if (u)
				user_check(u, q[k]);
			continue;
		}
		user_check(out[k], q[k]);
	}
	r->bursts++;
}

static void
lock_hot(struct reader *r)
{
	unsigned h = (unsigned)(xorshift(&r->seed) % HOT);
	struct lim_user *u = lim_users_find(t, ids[h]);

	CHECK(u != NULL);
	lim_user_lock(u);
	u->holds_fen++;
	lim_user_unlock(u);
	r->hot_adds[h]++;
	r->locks++;
}

static void *
reader_main(void *arg)
{
	struct reader *r = arg;

	while (!__atomic_load_n(&stop, __ATOMIC_RELAXED)) {
		for (int k = 0; k < 32; k++)
			find_some(r);
		burst_some(r);
		lock_hot(r);
	}
	return NULL;
}

static void
test_users_stress(void **state)
{
	static struct reader r[READERS];
	struct timespec t0, now;
	uint64_t seed = 0x0123456789abcdefULL, n = 0, locks = 0;

	t = lim_users_create(CAPACITY);
	assert_non_null(t);
	for (unsigned i = 0; i < CAPACITY; i++) {
		ids[i] = xorshift(&seed) & ~1ULL; /* even: see absent_id() */
		assert_true(ids[i] != 0);
	}
	for (n = 0; n < HOT; n++) {
		struct lim_user u = user_make(ids[n]);

		assert_int_equal(lim_users_insert(t, &u), 0);
	}
	for (unsigned i = 0; i < READERS; i++) {
		r[i].seed = 0x9e3779b97f4a7c15ULL * (i + 7);
		assert_int_equal(pthread_create(&r[i].tid, NULL, reader_main,
						&r[i]), 0);
	}
	clock_gettime(CLOCK_MONOTONIC, &t0);
	do {
		for (int k = 0; k < 64 && n < CAPACITY; k++, n++) {
			struct lim_user u = user_make(ids[n]);

			CHECK(lim_users_insert(t, &u) == 0);
		}
		clock_gettime(CLOCK_MONOTONIC, &now);
	} while (n < CAPACITY &&
		 (now.tv_sec - t0.tv_sec) * 1000 +
				 (now.tv_nsec - t0.tv_nsec) / 1000000 <
			 stress_ms());
	/* if the table filled up early, the readers go on alone */
	while ((now.tv_sec - t0.tv_sec) * 1000 +
		       (now.tv_nsec - t0.tv_nsec) / 1000000 <
	       stress_ms()) {
		struct timespec ms = {0, 1000000};

		nanosleep(&ms, NULL);
		clock_gettime(CLOCK_MONOTONIC, &now);
	}
	__atomic_store_n(&stop, 1, __ATOMIC_RELAXED);
	for (unsigned i = 0; i < READERS; i++)
		pthread_join(r[i].tid, NULL);

	assert_int_equal(lim_users_count(t), n);
	for (unsigned h = 0; h < HOT; h++) {
		uint64_t adds = 0;

		for (unsigned i = 0; i < READERS; i++)
			adds += r[i].hot_adds[h];
		assert_int_equal(lim_users_find(t, ids[h])->holds_fen, adds);
		assert_int_equal(lim_users_find(t, ids[h])->lock, 0);
		locks += adds;
	}
	for (uint64_t i = 0; i < n; i++)
		user_check(lim_users_find(t, ids[i]), ids[i]);
	printf("users: %llu inserted; %llu finds (%llu hits), %llu bursts, "
	       "%llu hot locks\n",
	       (unsigned long long)n,
	       (unsigned long long)(r[0].finds + r[1].finds + r[2].finds),
	       (unsigned long long)(r[0].hits + r[1].hits + r[2].hits),
	       (unsigned long long)(r[0].bursts + r[1].bursts + r[2].bursts),
	       (unsigned long long)locks);
	lim_users_free(t);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_users_stress),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
