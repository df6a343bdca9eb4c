/*
 * test_lim_users.c - the user table: insert, find, find_burst, errors,
 * tag collisions, locks, and the memory per user at 1 M users.
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "lim.h"
#include "lim_pvt.h"

static uint64_t
xorshift(uint64_t *s)
{
	uint64_t x = *s;

	x ^= x << 13;
	x ^= x >> 7;
	x ^= x << 17;
	return *s = x;
}

static struct lim_user
user_of(uint64_t id)
{
	struct lim_user u;

	memset(&u, 0, sizeof(u));
	u.user_id = id;
	u.limit_fen = (int64_t)(id % 1000000) * 100;
	u.self_cap_fen = (int64_t)(id % 777);
	u.region = (uint16_t)(id % 300);
	u.tier = (uint8_t)(id % LIM_TIERS);
	u.flags = (uint8_t)(id & LIM_USER_SOFT_CAP);
	u.lock = 1; /* insert must clear it */
	return u;
}

static void
check_user(const struct lim_user *s, uint64_t id)
{
	struct lim_user want = user_of(id);

	want.lock = 0;
	assert_non_null(s);
	assert_memory_equal(s, &want, sizeof(want));
}

/* Inverse of lim_mix64, to build ids with a chosen hash. */
static uint64_t
unshift(uint64_t y, unsigned s)
{
	uint64_t x = y;

	for (unsigned i = 0; i < 64 / s + 1; i++)
		x = y ^ (x >> s);
	return x;
}

static uint64_t
inverse(uint64_t c)
{
	uint64_t v = c; /* Newton: doubles the correct low bits each round */

	for (int i = 0; i < 6; i++)
		v *= 2 - c * v;
	return v;
}

static uint64_t
unmix(uint64_t h)
{
	uint64_t x = unshift(h, 31);

	x *= inverse(0x94d049bb133111ebULL);
	x = unshift(x, 27);
	x *= inverse(0xbf58476d1ce4e5b9ULL);
	x = unshift(x, 30);
	return x - 0x9e3779b97f4a7c15ULL;
}

static void
test_insert_find_miss(void **state)
{
	struct lim_users *t = lim_users_create(1000);
	struct lim_user u;

	assert_non_null(t);
	assert_int_equal(lim_users_capacity(t), 1000);
	assert_int_equal(lim_users_count(t), 0);
	assert_null(lim_users_find(t, 5));
	for (uint64_t id = 1; id <= 100; id++) {
		u = user_of(id * 7919);
		assert_int_equal(lim_users_insert(t, &u), 0);
	}
	assert_int_equal(lim_users_count(t), 100);
	for (uint64_t id = 1; id <= 100; id++) {
		check_user(lim_users_find(t, id * 7919), id * 7919);
		/* slots fill in insertion order */
		assert_ptr_equal(lim_users_at(t, id - 1),
				 lim_users_find(t, id * 7919));
	}
	assert_null(lim_users_find(t, 7918));
	assert_null(lim_users_find(t, 0));
	assert_null(lim_users_find(t, 101 * 7919));
	lim_users_free(t);
}

static void
test_errors(void **state)
{
	struct lim_users *t = lim_users_create(10);
	struct lim_user u = user_of(0);

	assert_null(lim_users_create(0));
	assert_null(lim_users_create((uint64_t)UINT32_MAX + 1));
	assert_non_null(t);
	assert_int_equal(lim_users_insert(t, &u), -EINVAL);
	for (uint64_t id = 1; id <= 10; id++) {
		u = user_of(id);
		assert_int_equal(lim_users_insert(t, &u), 0);
	}
	u = user_of(3);
	u.limit_fen = 1;
	assert_int_equal(lim_users_insert(t, &u), -EEXIST);
	check_user(lim_users_find(t, 3), 3); /* not overwritten */
	u = user_of(11);
	assert_int_equal(lim_users_insert(t, &u), -ENOSPC);
	assert_null(lim_users_find(t, 11));
	assert_int_equal(lim_users_count(t), 10);
	/* the index keeps an empty entry even when full: a miss terminates */
	assert_true(lim_users_index_len(t) > 10);
	assert_int_equal(lim_users_index_len(t) % 8, 0);
	assert_null(lim_users_find(t, 12));
	lim_users_free(t);
}

static void
test_find_burst_equals_find(void **state)
{
	enum { N = 10000 };
	struct lim_users *t = lim_users_create(2 * N);
	static uint64_t ids[N], probe[N];
	static struct lim_user *out[N];
	uint64_t seed = 0x1234567;
	unsigned hits = 0;

	assert_non_null(t);
	for (unsigned i = 0; i < N; i++) {
		struct lim_user u = user_of(ids[i] = xorshift(&seed));

		assert_int_equal(lim_users_insert(t, &u), 0);
	}
	for (unsigned i = 0; i < N; i++)
		probe[i] = i % 2 ? ids[xorshift(&seed) % N] : xorshift(&seed);
	lim_users_find_burst(t, probe, N, out);
	for (unsigned i = 0; i < N; i++) {
		assert_ptr_equal(out[i], lim_users_find(t, probe[i]));
		if (out[i]) {
			check_user(out[i], probe[i]);
			hits++;
		}
	}
	assert_int_equal(hits, N / 2);
	/* odd burst sizes, including 0 and 1 */
	for (unsigned n = 0; n < 70; n += 7) {
		memset(out, 0xa5, sizeof(out[0]) * (n + 1));
		lim_users_find_burst(t, probe + 100, n, out);
		for (unsigned i = 0; i < n; i++)
			assert_ptr_equal(out[i],
					 lim_users_find(t, probe[100 + i]));
		assert_ptr_equal(out[n], (void *)0xa5a5a5a5a5a5a5a5ULL);
	}
	lim_users_free(t);
}

/* Ids whose hashes share the tag (low 32 bits) and the home position. */
static void
test_tag_collision(void **state)
{
	struct lim_users *t = lim_users_create(6); /* index of 8 entries */
	uint64_t a = 42, ha = lim_user_hash(a);
	uint64_t b = unmix(ha ^ (1ULL << 40)), c = unmix(ha ^ (1ULL << 41));
	uint64_t ids[3];
	struct lim_user *out[3], u;

	assert_non_null(t);
	assert_int_equal(lim_users_index_len(t), 8);
	assert_int_equal(lim_user_hash(b), ha ^ (1ULL << 40));
	assert_int_equal((uint32_t)lim_user_hash(c), (uint32_t)ha);
	assert_true(b != 0 && c != 0 && b != a && c != a && c != b);
	u = user_of(a);
	assert_int_equal(lim_users_insert(t, &u), 0);
	u = user_of(b);
	assert_int_equal(lim_users_insert(t, &u), 0);
	assert_int_equal(lim_users_insert(t, &u), -EEXIST);
	check_user(lim_users_find(t, a), a);
	check_user(lim_users_find(t, b), b);
	assert_null(lim_users_find(t, c));
	ids[0] = b;
	ids[1] = c;
	ids[2] = a;
	lim_users_find_burst(t, ids, 3, out);
	assert_ptr_equal(out[0], lim_users_find(t, b));
	assert_null(out[1]);
	assert_ptr_equal(out[2], lim_users_find(t, a));
	lim_users_free(t);
}

static void
test_lock(void **state)
{
	struct lim_users *t = lim_users_create(4);
	struct lim_user u = user_of(9), *s;

	assert_non_null(t);
	assert_int_equal(lim_users_insert(t, &u), 0);
	s = lim_users_find(t, 9);
	assert_int_equal(s->lock, 0);
	lim_user_lock(s);
	assert_int_equal(s->lock, 1);
	s->outstanding_fen += 5;
	lim_user_unlock(s);
	assert_int_equal(s->lock, 0);
	lim_user_lock(s);
	assert_int_equal(s->lock, 1);
	lim_user_unlock(s);
	assert_int_equal(s->outstanding_fen, 5);
	lim_users_free(t);
}

static void
test_bytes_per_user_1m(void **state)
{
	const uint64_t n = 1000000;
	struct lim_users *t = lim_users_create(n);
	uint64_t seed = 99;
	double per;

	assert_non_null(t);
	assert_int_equal(lim_users_bytes(t), lim_users_index_len(t) * 8);
	for (uint64_t i = 0; i < n; i++) {
		struct lim_user u;

		memset(&u, 0, sizeof(u));
		u.user_id = xorshift(&seed);
		assert_int_equal(lim_users_insert(t, &u), 0);
	}
	assert_int_equal(lim_users_count(t), n);
	assert_int_equal(lim_users_index_len(t), 1250000);
	assert_int_equal(lim_users_bytes(t), 1250000 * 8 + n * 88);
	per = (double)lim_users_bytes(t) / (double)n;
	printf("users: %llu users, %zu bytes, %.2f bytes per user\n",
	       (unsigned long long)n, lim_users_bytes(t), per);
	assert_true(per <= 100.0);
	lim_users_free(t);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_insert_find_miss),
		cmocka_unit_test(test_errors),
		cmocka_unit_test(test_find_burst_equals_find),
		cmocka_unit_test(test_tag_collision),
		cmocka_unit_test(test_lock),
		cmocka_unit_test(test_bytes_per_user_1m),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
