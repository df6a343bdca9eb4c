/*
 * test_replay.c - replay windows: order, duplicates, the window's exact
 * edges, slides, many streams, and two threads feeding one stream.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <pthread.h>
#include <sched.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "auth.h"

#define W AUTH_REPLAY_WINDOW

static struct auth_replay *rp;

static int
rp_setup(void **state)
{
	rp = auth_replay_create(256);
	return rp ? 0 : -1;
}

static int
rp_teardown(void **state)
{
	auth_replay_free(rp);
	return 0;
}

/* Each test has a gateway of its own, so windows never mix. */
static uint32_t
fresh_gw(void)
{
	static uint32_t gw = 1000;

	return gw++;
}

#define ACCEPT(gw, s, seq)                                                     \
	assert_int_equal(auth_replay_check(rp, gw, s, seq), AUTH_DROP_NONE)
#define REPLAY(gw, s, seq)                                                     \
	assert_int_equal(auth_replay_check(rp, gw, s, seq), AUTH_DROP_REPLAY)
#define STALE(gw, s, seq)                                                      \
	assert_int_equal(auth_replay_check(rp, gw, s, seq), AUTH_DROP_STALE)

static void
test_in_order(void **state)
{
	uint32_t gw = fresh_gw();

	for (uint64_t seq = 1; seq <= 5000; seq++)
		ACCEPT(gw, 0, seq);
	for (uint64_t seq = 5000 - W + 1; seq <= 5000; seq++)
		REPLAY(gw, 0, seq);
	for (uint64_t seq = 1; seq <= 5000 - W; seq++)
		STALE(gw, 0, seq);
}

static void
test_out_of_order(void **state)
{
	uint32_t gw = fresh_gw();

	ACCEPT(gw, 1, 100);
	ACCEPT(gw, 1, 98);
	ACCEPT(gw, 1, 103);
	ACCEPT(gw, 1, 99);
	ACCEPT(gw, 1, 101);
	REPLAY(gw, 1, 98);
	REPLAY(gw, 1, 103);
	ACCEPT(gw, 1, 102);
	REPLAY(gw, 1, 100);
	/* Backwards through the whole window, then each seq again. */
	ACCEPT(gw, 1, 5000);
	for (uint64_t seq = 4999; seq > 5000 - W; seq--)
		ACCEPT(gw, 1, seq);
	for (uint64_t seq = 5000 - W + 1; seq <= 5000; seq++)
		REPLAY(gw, 1, seq);
}

static void
test_duplicate(void **state)
{
	uint32_t gw = fresh_gw();

	ACCEPT(gw, 2, 7);
	REPLAY(gw, 2, 7);
	REPLAY(gw, 2, 7);
	ACCEPT(gw, 2, 8);
	REPLAY(gw, 2, 7);
	REPLAY(gw, 2, 8);
	/* Seq 0 is an ordinary seq. */
	ACCEPT(gw, 3, 0);
	REPLAY(gw, 3, 0);
	ACCEPT(gw, 3, 1);
}

/* Edges: top - (W - 1) is the oldest seq the window holds; top - W is stale. */
static void
test_boundaries(void **state)
{
	uint32_t gw = fresh_gw();
	uint64_t top = 10 * W + 17;

	ACCEPT(gw, 4, top);
	STALE(gw, 4, top - W);
	STALE(gw, 4, top - W - 1);
	STALE(gw, 4, 0);
	ACCEPT(gw, 4, top - W + 1);
	REPLAY(gw, 4, top - W + 1);
	ACCEPT(gw, 4, top - 1);
	/* Sliding by one makes the oldest seq stale, and only it. */
	ACCEPT(gw, 4, top + 1);
	STALE(gw, 4, top - W + 1);
	ACCEPT(gw, 4, top - W + 2);
	/* A first seq below the window size: nothing is stale yet. */
	ACCEPT(gw, 5, W - 1);
	ACCEPT(gw, 5, 0);
	ACCEPT(gw, 5, W);
	STALE(gw, 5, 0);
	ACCEPT(gw, 5, 1);
	/* Word edges of the bitmap: 63, 64, 127, 128 after a slide. */
	ACCEPT(gw, 6, 200);
	ACCEPT(gw, 6, 63);
	ACCEPT(gw, 6, 64);
	ACCEPT(gw, 6, 127);
	ACCEPT(gw, 6, 128);
	ACCEPT(gw, 6, 64 + W - 1); /* oldest kept: 64; 63 drops out */
	STALE(gw, 6, 63);
	REPLAY(gw, 6, 64);
	REPLAY(gw, 6, 127);
	REPLAY(gw, 6, 128);
	ACCEPT(gw, 6, 65);
	/* The top of the seq space. */
	ACCEPT(gw, 7, UINT64_MAX - 1);
	ACCEPT(gw, 7, UINT64_MAX);
	REPLAY(gw, 7, UINT64_MAX);
	REPLAY(gw, 7, UINT64_MAX - 1);
	ACCEPT(gw, 7, UINT64_MAX - W + 1);
	STALE(gw, 7, UINT64_MAX - W);
}

/* A slide clears exactly the bits of the seqs it passes. */
static void
test_slide(void **state)
{
	uint32_t gw = fresh_gw();

	for (uint64_t seq = 1000; seq < 1000 + W; seq += 2)
		ACCEPT(gw, 8, seq);
	/* Slide by 300: the seqs 1000+W .. 1299+W are new, even ones seen. */
	ACCEPT(gw, 8, 1299 + W);
	for (uint64_t seq = 1300; seq < 1000 + W; seq++) {
		if (seq % 2 == 0)
			REPLAY(gw, 8, seq);
		else
			ACCEPT(gw, 8, seq);
	}
	for (uint64_t seq = 1000 + W; seq < 1299 + W; seq++)
		ACCEPT(gw, 8, seq);
	STALE(gw, 8, 1299);
}

static void
test_big_jump(void **state)
{
	uint32_t gw = fresh_gw();

	for (uint64_t seq = 1; seq <= 100; seq++)
		ACCEPT(gw, 9, seq);
	ACCEPT(gw, 9, 100 + W);     /* exactly one window on */
	STALE(gw, 9, 100);
	ACCEPT(gw, 9, 101);         /* oldest kept seq, never seen */
	ACCEPT(gw, 9, 1000000000);  /* far ahead: the window is reset */
	STALE(gw, 9, 100 + W);
	/* Every seq of the new window is fresh except the top. */
	for (uint64_t seq = 1000000000 - W + 1; seq < 1000000000; seq++)
		ACCEPT(gw, 9, seq);
	REPLAY(gw, 9, 1000000000);
	ACCEPT(gw, 9, (uint64_t)1 << 62);
	REPLAY(gw, 9, (uint64_t)1 << 62);
}

static void
test_streams_limit(void **state)
{
	struct auth_replay *r = auth_replay_create(100);

	assert_non_null(r);
	for (unsigned s = 0; s < 100; s++)
		assert_int_equal(auth_replay_check(r, s / 10, (uint16_t)s, 5),
				 AUTH_DROP_NONE);
	assert_int_equal(auth_replay_check(r, 99, 0, 5), AUTH_DROP_STREAMS);
	assert_int_equal(auth_replay_check(r, 0, 100, 5), AUTH_DROP_STREAMS);
	/* The streams that fit go on working. */
	for (unsigned s = 0; s < 100; s++) {
		assert_int_equal(auth_replay_check(r, s / 10, (uint16_t)s, 5),
				 AUTH_DROP_REPLAY);
		assert_int_equal(auth_replay_check(r, s / 10, (uint16_t)s, 6),
				 AUTH_DROP_NONE);
	}
	/* Same stream number, other gateway: another stream. */
	assert_int_equal(auth_replay_check(r, 1000, 3, 5), AUTH_DROP_STREAMS);
	auth_replay_free(r);
	assert_null(auth_replay_create(0));
}

/* ------------------------------------------------------------------------ */
/* Two threads, one stream                                                    */

#define STRESS_SEQS (1u << 20)
#define STRESS_BLOCK 64

struct feeder {
	struct auth_replay *r;
	uint8_t *seen;          /* per seq: times accepted, over both threads */
	unsigned accepted;
	unsigned replayed;
	unsigned stale;
	unsigned salt;
	unsigned block;         /* blocks done, published for the other one */
	struct feeder *other;
	pthread_barrier_t *go;
};

/* Keep the two threads within a block of each other, so they really meet. */
static void
wait_for(const struct feeder *other, unsigned block)
{
	while (__atomic_load_n(&other->block, __ATOMIC_ACQUIRE) + 1 < block)
		sched_yield();
}

/*
 * Feed seqs 1..STRESS_SEQS in blocks of 64, each block in a shuffled order
 * of the thread's own, at most one block ahead of the other thread, so both
 * threads hit the same window, in and out of order, at the same time.
 */
static void *
feed(void *arg)
{
	struct feeder *f = arg;
	unsigned perm[STRESS_BLOCK];
	uint32_t rnd = 0x9e3779b9u * (f->salt + 1);

	pthread_barrier_wait(f->go);
	for (uint64_t base = 1; base <= STRESS_SEQS; base += STRESS_BLOCK) {
		wait_for(f->other, f->block);
		for (unsigned i = 0; i < STRESS_BLOCK; i++)
			perm[i] = i;
		for (unsigned i = STRESS_BLOCK - 1; i > 0; i--) {
			unsigned j, t;

			rnd ^= rnd << 13;
			rnd ^= rnd >> 17;
			rnd ^= rnd << 5;
			j = rnd % (i + 1);
			t = perm[i];
			perm[i] = perm[j];
			perm[j] = t;
		}
		for (unsigned i = 0; i < STRESS_BLOCK; i++) {
			uint64_t seq = base + perm[i];

			switch (auth_replay_check(f->r, 77, 1, seq)) {
			case AUTH_DROP_NONE:
				__atomic_add_fetch(&f->seen[seq], 1,
						   __ATOMIC_RELAXED);
				f->accepted++;
				break;
			case AUTH_DROP_REPLAY:
				f->replayed++;
				break;
			case AUTH_DROP_STALE:
				f->stale++;
				break;
			default:
				abort();
			}
		}
		__atomic_store_n(&f->block, f->block + 1, __ATOMIC_RELEASE);
	}
	return NULL;
}

static void
test_two_threads(void **state)
{
	struct auth_replay *r = auth_replay_create(4);
	uint8_t *seen = calloc(STRESS_SEQS + 1, 1);
	pthread_barrier_t go;
	struct feeder f[2];
	pthread_t t[2];

	assert_non_null(r);
	assert_non_null(seen);
	pthread_barrier_init(&go, NULL, 2);
	for (unsigned i = 0; i < 2; i++) {
		f[i] = (struct feeder){.r = r, .seen = seen, .salt = i,
				       .other = &f[1 - i], .go = &go};
	}
	for (unsigned i = 0; i < 2; i++)
		assert_int_equal(pthread_create(&t[i], NULL, feed, &f[i]), 0);
	for (unsigned i = 0; i < 2; i++)
		pthread_join(t[i], NULL);
	pthread_barrier_destroy(&go);
	print_message("accepted %u + %u, replayed %u + %u, stale %u + %u\n",
		      f[0].accepted, f[1].accepted, f[0].replayed,
		      f[1].replayed, f[0].stale, f[1].stale);
	/*
	 * Whoever feeds a seq first finds it fresh: the other thread has not
	 * passed its block, so the top is less than one block ahead. Hence
	 * every seq exactly once, and the rest are replays or stale.
	 */
	for (uint64_t seq = 1; seq <= STRESS_SEQS; seq++)
		if (seen[seq] != 1)
			fail_msg("seq %llu accepted %u times",
				 (unsigned long long)seq, seen[seq]);
	assert_int_equal(f[0].accepted + f[1].accepted, STRESS_SEQS);
	assert_int_equal(f[0].accepted + f[1].accepted + f[0].replayed +
				 f[1].replayed + f[0].stale + f[1].stale,
			 2 * STRESS_SEQS);
	/* And afterwards the window holds the last W seqs, all seen. */
	for (uint64_t seq = STRESS_SEQS - W + 1; seq <= STRESS_SEQS; seq++)
		assert_int_equal(auth_replay_check(r, 77, 1, seq),
				 AUTH_DROP_REPLAY);
	assert_int_equal(auth_replay_check(r, 77, 1, STRESS_SEQS - W),
			 AUTH_DROP_STALE);
	free(seen);
	auth_replay_free(r);
}

/* Two threads opening many new streams at once: each claimed once. */
struct opener {
	struct auth_replay *r;
	unsigned accepted;
	unsigned full;
	pthread_barrier_t *go;
};

static void *
open_streams(void *arg)
{
	struct opener *o = arg;

	pthread_barrier_wait(o->go);
	for (unsigned s = 0; s < 3000; s++) {
		enum auth_drop d = auth_replay_check(o->r, 5, (uint16_t)s, 1);

		o->accepted += d == AUTH_DROP_NONE;
		o->full += d == AUTH_DROP_STREAMS;
	}
	return NULL;
}

static void
test_two_threads_new_streams(void **state)
{
	struct auth_replay *r = auth_replay_create(2000);
	pthread_barrier_t go;
	struct opener o[2];
	pthread_t t[2];

	assert_non_null(r);
	pthread_barrier_init(&go, NULL, 2);
	for (unsigned i = 0; i < 2; i++) {
		o[i] = (struct opener){.r = r, .go = &go};
		assert_int_equal(pthread_create(&t[i], NULL, open_streams,
						&o[i]),
				 0);
	}
	for (unsigned i = 0; i < 2; i++)
		pthread_join(t[i], NULL);
	pthread_barrier_destroy(&go);
	/* 2000 streams fit, each accepted seq 1 once; the rest were full. */
	assert_int_equal(o[0].accepted + o[1].accepted, 2000);
	for (unsigned s = 0; s < 2000; s++)
		assert_int_equal(auth_replay_check(r, 5, (uint16_t)s, 1),
				 AUTH_DROP_REPLAY);
	assert_int_equal(auth_replay_check(r, 5, 2000, 1), AUTH_DROP_STREAMS);
	auth_replay_free(r);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_in_order),
		cmocka_unit_test(test_out_of_order),
		cmocka_unit_test(test_duplicate),
		cmocka_unit_test(test_boundaries),
		cmocka_unit_test(test_slide),
		cmocka_unit_test(test_big_jump),
		cmocka_unit_test(test_streams_limit),
		cmocka_unit_test(test_two_threads),
		cmocka_unit_test(test_two_threads_new_streams),
	};

	return cmocka_run_group_tests(tests, rp_setup, rp_teardown);
}
