/*
 * stress_ops.c - four threads insert, find and remove overlapping keys of
 * the ops store, following its contract: a key belongs to a user and is
 * touched only under that user's lock. Thread 0 also runs timer scans whose
 * callback takes the user's lock, finds the entry again and removes it if it
 * is still expired.
 *
 * Checked, per operation, against a model kept under the same user locks:
 * find returns exactly the model's entry (never a lost or foreign one), the
 * entry's contents are what was inserted, -EEXIST never happens (the model
 * says the key is absent). At the end: count == model entries, foreach
 * visits exactly them and every key finds exactly its model entry.
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
	THREADS = 4,
	USERS = 64,
	KEYS = 40000,       /* more than the store holds: -ENOSPC happens */
	CAPACITY = 16384,   /* 4 partitions */
};

struct worker {
	pthread_t tid;
	unsigned id;
	uint64_t seed;
	uint64_t inserts, removes, finds, nospc, expired;
};

static struct lim_ops *s;
static struct lim_user users[USERS];    /* only their locks are used */
static struct lim_op *model[KEYS];      /* under the lock of key_user(k) */
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

static unsigned
key_user(uint64_t k)
{
	return (unsigned)(k % USERS);
}

static uint32_t
key_gw(uint64_t k)
{
	return (uint32_t)(k % 3) + 1;
}

static uint64_t
key_req(uint64_t k)
{
	return k * 0x10001 + 5;
}

static void
check_entry(const struct lim_op *op, uint64_t k)
{
	CHECK(op->gateway_id == key_gw(k));
	CHECK(op->request_id == key_req(k));
	CHECK(op->user_id == key_user(k) + 1);
	CHECK(op->amount_fen == (int64_t)k * 7);
	CHECK(op->held_fen == (int64_t)k * 11);
}

/* One operation on key @p k; the caller holds the key's user lock. */
static void
key_op(struct worker *w, uint64_t k, uint32_t now_s)
{
	struct lim_op *op = lim_ops_find(s, key_gw(k), key_req(k));
	struct lim_op init;
	int rc;

	w->finds++;
	CHECK(op == model[k]);
	if (op) {
		check_entry(op, k);
		if (xorshift(&w->seed) % 2) {
			lim_ops_remove(s, op);
			model[k] = NULL;
			w->removes++;
		}
		return;
	}
	memset(&init, 0, sizeof(init));
	init.gateway_id = key_gw(k);
	init.request_id = key_req(k);
	init.user_id = key_user(k) + 1;
	init.amount_fen = (int64_t)k * 7;
	init.held_fen = (int64_t)k * 11;
	init.state = LIM_OPS_HELD;
	init.retain_until_s = now_s + 1000;
	init.hold_expires_s = now_s + (uint32_t)(xorshift(&w->seed) % 64);
	op = lim_ops_insert(s, &init, &rc);
	if (rc == -ENOSPC) {
		CHECK(!op);
		w->nospc++;
		return;
	}
	CHECK(rc == 0 && op);
	check_entry(op, k);
	model[k] = op;
	w->inserts++;
}

struct scan_ctx {
	struct worker *w;
	uint32_t now_s;
};

/* The timer's callback: a copy, no lock held. */
static void
expire_fn(const struct lim_op *copy, void *arg)
{
	struct scan_ctx *c = arg;
	uint64_t k = (copy->request_id - 5) / 0x10001;
	struct lim_user *u;
	struct lim_op *op;

	CHECK(k < KEYS && key_req(k) == copy->request_id);
	CHECK(copy->user_id == key_user(k) + 1);
	u = &users[key_user(k)];
	lim_user_lock(u);
	op = lim_ops_find(s, copy->gateway_id, copy->request_id);
	CHECK(op == model[k]);
	/* re-check: it may have been removed and inserted again since */
	if (op && op->hold_expires_s <= c->now_s) {
		lim_ops_remove(s, op);
		model[k] = NULL;
		c->w->expired++;
	}
	lim_user_unlock(u);
}

static void *
worker_main(void *arg)
{
	struct worker *w = arg;
	uint32_t now_s = 1000;

	while (!__atomic_load_n(&stop, __ATOMIC_RELAXED)) {
		for (int n = 0; n < 256; n++) {
			uint64_t k = xorshift(&w->seed) % KEYS;
			struct lim_user *u = &users[key_user(k)];

			lim_user_lock(u);
			key_op(w, k, now_s);
			lim_user_unlock(u);
		}
		if (w->id == 0) {
			struct scan_ctx c = {w, now_s};

			(void)lim_ops_scan(s, now_s, 512, expire_fn, &c);
			now_s++;
		}
	}
	return NULL;
}

struct tally {
	uint64_t n;
};

static int
tally_fn(struct lim_op *op, void *arg)
{
	struct tally *t = arg;
	uint64_t k = (op->request_id - 5) / 0x10001;

	CHECK(k < KEYS && model[k] == op);
	check_entry(op, k);
	t->n++;
	return 0;
}

static void
test_ops_stress(void **state)
{
	static struct worker w[THREADS];
	struct timespec ts = {stress_ms() / 1000,
			      (long)(stress_ms() % 1000) * 1000000L};
	uint64_t ins = 0, rem = 0, fin = 0, nospc = 0, exp = 0, live = 0;
	struct tally t = {0};

	s = lim_ops_create(CAPACITY);
	assert_non_null(s);
	assert_int_equal(lim_ops_partitions(s), 4);
	for (unsigned i = 0; i < THREADS; i++) {
		w[i].id = i;
		w[i].seed = 0x2545f4914f6cdd1dULL * (i + 1);
		assert_int_equal(pthread_create(&w[i].tid, NULL, worker_main,
						&w[i]), 0);
	}
	nanosleep(&ts, NULL);
	__atomic_store_n(&stop, 1, __ATOMIC_RELAXED);
	for (unsigned i = 0; i < THREADS; i++) {
		pthread_join(w[i].tid, NULL);
		ins += w[i].inserts;
		rem += w[i].removes;
		fin += w[i].finds;
		nospc += w[i].nospc;
		exp += w[i].expired;
	}
	for (unsigned k = 0; k < KEYS; k++)
		live += model[k] != NULL;
	printf("ops: %llu finds, %llu inserts, %llu removes, %llu expired, "
	       "%llu full; %llu live of %llu\n",
	       (unsigned long long)fin, (unsigned long long)ins,
	       (unsigned long long)rem, (unsigned long long)exp,
	       (unsigned long long)nospc, (unsigned long long)live,
	       (unsigned long long)lim_ops_capacity(s));
	assert_int_equal(live, ins - rem - exp);
	assert_int_equal(lim_ops_count(s), live);
	assert_int_equal(lim_ops_foreach(s, tally_fn, &t), 0);
	assert_int_equal(t.n, live);
	for (unsigned k = 0; k < KEYS; k++)
		assert_ptr_equal(lim_ops_find(s, key_gw(k), key_req(k)),
				 model[k]);
	assert_true(ins > 0 && rem > 0 && exp > 0 && nospc > 0);
	lim_ops_free(s);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_ops_stress),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
