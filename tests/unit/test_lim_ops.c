/*
 * test_lim_ops.c - the ops store: insert, find, remove, -EEXIST, -ENOSPC
 * (a full partition), foreach, the timer scan and its cursor, pointer
 * stability, and a randomised run against a model (backward-shift deletion).
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

static struct lim_op
op_of(uint32_t gw, uint64_t req)
{
	struct lim_op o;

	memset(&o, 0, sizeof(o));
	o.gateway_id = gw;
	o.request_id = req;
	o.user_id = req * 3 + gw;
	o.amount_fen = (int64_t)req * 100;
	o.retain_until_s = 1000;
	o.state = LIM_OPS_DECIDED;
	return o;
}

static void
check_op(const struct lim_op *op, uint32_t gw, uint64_t req)
{
	assert_non_null(op);
	assert_int_equal(op->gateway_id, gw);
	assert_int_equal(op->request_id, req);
	assert_int_equal(op->user_id, req * 3 + gw);
	assert_int_equal(op->amount_fen, (int64_t)req * 100);
}

static void
test_geometry(void **state)
{
	struct lim_ops *s;

	assert_null(lim_ops_create(0));
	s = lim_ops_create(1000);
	assert_non_null(s);
	assert_int_equal(lim_ops_partitions(s), 1);
	assert_int_equal(lim_ops_capacity(s), 1000);
	lim_ops_free(s);
	/* 1 M: 256 partitions of 3906 + 1/16 headroom */
	s = lim_ops_create(1000000);
	assert_non_null(s);
	assert_int_equal(lim_ops_partitions(s), 256);
	assert_int_equal(lim_ops_part_capacity(s), 3907 + 3907 / 16);
	assert_true(lim_ops_capacity(s) >= 1000000);
	lim_ops_free(s);
}

static void
test_insert_find_remove(void **state)
{
	struct lim_ops *s = lim_ops_create(1000);
	struct lim_op o = op_of(7, 100), *a, *b;
	int rc = 1;

	assert_non_null(s);
	assert_null(lim_ops_find(s, 7, 100));
	a = lim_ops_insert(s, &o, &rc);
	assert_int_equal(rc, 0);
	check_op(a, 7, 100);
	assert_int_equal(a->state, LIM_OPS_DECIDED);
	assert_ptr_equal(lim_ops_find(s, 7, 100), a);
	assert_int_equal(lim_ops_count(s), 1);

	/* same key: -EEXIST, the entry is untouched */
	o.amount_fen = 1;
	assert_null(lim_ops_insert(s, &o, &rc));
	assert_int_equal(rc, -EEXIST);
	check_op(a, 7, 100);

	/* the gateway is part of the key */
	o = op_of(8, 100);
	b = lim_ops_insert(s, &o, &rc);
	assert_int_equal(rc, 0);
	assert_ptr_not_equal(a, b);
	check_op(lim_ops_find(s, 8, 100), 8, 100);
	assert_null(lim_ops_find(s, 7, 101));
	assert_int_equal(lim_ops_count(s), 2);

	lim_ops_remove(s, a);
	assert_null(lim_ops_find(s, 7, 100));
	assert_ptr_equal(lim_ops_find(s, 8, 100), b);
	assert_int_equal(lim_ops_count(s), 1);

	/* a freed slot is reused */
	o = op_of(7, 555);
	assert_ptr_equal(lim_ops_insert(s, &o, NULL), a);
	check_op(a, 7, 555);
	lim_ops_free(s);
}

static void
test_enospc_single_partition(void **state)
{
	struct lim_ops *s = lim_ops_create(100);
	struct lim_op o, *first = NULL;
	int rc;

	assert_non_null(s);
	for (uint64_t r = 1; r <= 100; r++) {
		struct lim_op *p;

		o = op_of(1, r);
		p = lim_ops_insert(s, &o, &rc);
		assert_int_equal(rc, 0);
		if (r == 1)
			first = p;
	}
	o = op_of(1, 101);
	assert_null(lim_ops_insert(s, &o, &rc));
	assert_int_equal(rc, -ENOSPC);
	/* -EEXIST is reported before -ENOSPC */
	o = op_of(1, 50);
	assert_null(lim_ops_insert(s, &o, &rc));
	assert_int_equal(rc, -EEXIST);
	assert_int_equal(lim_ops_count(s), 100);
	lim_ops_remove(s, first);
	o = op_of(1, 101);
	assert_ptr_equal(lim_ops_insert(s, &o, &rc), first);
	assert_int_equal(rc, 0);
	for (uint64_t r = 2; r <= 101; r++)
		check_op(lim_ops_find(s, 1, r), 1, r);
	lim_ops_free(s);
}

static void
test_enospc_partition(void **state)
{
	struct lim_ops *s = lim_ops_create(40000);
	uint64_t per, n = 0, r = 0;
	unsigned parts;
	struct lim_op o;
	int rc = 0;

	assert_non_null(s);
	parts = lim_ops_partitions(s);
	per = lim_ops_part_capacity(s);
	assert_int_equal(parts, 16);
	assert_int_equal(per, 2500 + 2500 / 16);
	/* fill partition 3 with keys that hash there */
	while (rc == 0) {
		r++;
		if (lim_ops_part_of(s, 9, r) != 3)
			continue;
		o = op_of(9, r);
		if (lim_ops_insert(s, &o, &rc))
			n++;
	}
	assert_int_equal(rc, -ENOSPC);
	assert_int_equal(n, per);
	assert_int_equal(lim_ops_part_count(s, 3), per);
	assert_int_equal(lim_ops_count(s), per);
	assert_null(lim_ops_find(s, 9, r));
	/* the other partitions still take entries */
	do {
		r++;
	} while (lim_ops_part_of(s, 9, r) == 3);
	o = op_of(9, r);
	assert_non_null(lim_ops_insert(s, &o, &rc));
	assert_int_equal(rc, 0);
	assert_int_equal(lim_ops_count(s), per + 1);
	lim_ops_free(s);
}

static int
count_fn(struct lim_op *op, void *arg)
{
	uint64_t *n = arg;

	check_op(op, op->gateway_id, op->request_id);
	(*n)++;
	return 0;
}

static int
stop_at_3(struct lim_op *op, void *arg)
{
	uint64_t *n = arg;

	return ++*n == 3 ? 42 : 0;
}

static void
test_foreach(void **state)
{
	struct lim_ops *s = lim_ops_create(20000);
	struct lim_op *keep[100];
	uint64_t n = 0;

	assert_non_null(s);
	assert_int_equal(lim_ops_foreach(s, count_fn, &n), 0);
	assert_int_equal(n, 0);
	for (uint64_t r = 0; r < 1000; r++) {
		struct lim_op o = op_of((uint32_t)(r % 5), r);
		struct lim_op *p = lim_ops_insert(s, &o, NULL);

		assert_non_null(p);
		if (r < 100)
			keep[r] = p;
	}
	assert_int_equal(lim_ops_foreach(s, count_fn, &n), 0);
	assert_int_equal(n, 1000);
	for (unsigned i = 0; i < 100; i++)
		lim_ops_remove(s, keep[i]);
	n = 0;
	assert_int_equal(lim_ops_foreach(s, count_fn, &n), 0);
	assert_int_equal(n, 900);
	assert_int_equal(lim_ops_count(s), 900);
	n = 0;
	assert_int_equal(lim_ops_foreach(s, stop_at_3, &n), 42);
	assert_int_equal(n, 3);
	lim_ops_free(s);
}

struct seen {
	uint64_t req[64];
	unsigned n;
	struct lim_ops *s;
	bool remove;
};

static void
scan_fn(const struct lim_op *copy, void *arg)
{
	struct seen *v = arg;
	struct lim_op *live = lim_ops_find(v->s, copy->gateway_id,
					   copy->request_id);

	assert_true(v->n < 64);
	assert_non_null(live);
	assert_ptr_not_equal(copy, live); /* a copy, not the entry */
	assert_memory_equal(copy, live, sizeof(*copy));
	v->req[v->n++] = copy->request_id;
	if (v->remove)
		lim_ops_remove(v->s, live);
}

/* One partition: slots fill in order, so the cursor is easy to follow. */
static void
test_scan_cursor(void **state)
{
	struct lim_ops *s = lim_ops_create(64);
	struct seen v = {.s = s};

	assert_non_null(s);
	for (uint64_t r = 0; r < 10; r++) {
		struct lim_op o = op_of(1, r);

		o.retain_until_s = r % 2 ? 50 : 500;
		if (r == 4) { /* an open hold that expired */
			o.state = LIM_OPS_HELD;
			o.hold_expires_s = 40;
		}
		if (r == 6) { /* a hold that has not */
			o.state = LIM_OPS_HELD;
			o.hold_expires_s = 101;
		}
		assert_non_null(lim_ops_insert(s, &o, NULL));
	}
	assert_int_equal(lim_ops_scan(s, 100, 0, scan_fn, &v), 0);
	assert_int_equal(v.n, 0);
	assert_int_equal(lim_ops_scan(s, 100, 4, scan_fn, &v), 4);
	assert_int_equal(v.n, 2);
	assert_int_equal(v.req[0], 1);
	assert_int_equal(v.req[1], 3);
	assert_int_equal(lim_ops_scan(s, 100, 4, scan_fn, &v), 4);
	assert_int_equal(v.n, 5);
	assert_int_equal(v.req[2], 4);
	assert_int_equal(v.req[3], 5);
	assert_int_equal(v.req[4], 7);
	/* the end of the store: a short pass, the sweep is complete */
	assert_int_equal(lim_ops_scan(s, 100, 4, scan_fn, &v), 2);
	assert_int_equal(v.n, 6);
	assert_int_equal(v.req[5], 9);
	/* and the next pass starts over */
	assert_int_equal(lim_ops_scan(s, 100, 3, scan_fn, &v), 3);
	assert_int_equal(v.n, 7);
	assert_int_equal(v.req[6], 1);

	/* at a later time, removing what expired: from the cursor (slot 3) to
	 * the end of the sweep */
	v.n = 0;
	v.remove = true;
	assert_int_equal(lim_ops_scan(s, 101, 1000, scan_fn, &v), 7);
	assert_int_equal(v.n, 6);
	assert_int_equal(v.req[0], 3);
	assert_int_equal(v.req[1], 4);
	assert_int_equal(v.req[2], 5);
	assert_int_equal(v.req[3], 6); /* hold_expires_s == now */
	assert_int_equal(v.req[4], 7);
	assert_int_equal(v.req[5], 9);
	assert_int_equal(lim_ops_count(s), 4);
	/* the next sweep: freed slots are visited, not reported */
	v.n = 0;
	v.remove = false;
	assert_int_equal(lim_ops_scan(s, 101, 1000, scan_fn, &v), 10);
	assert_int_equal(v.n, 1);
	assert_int_equal(v.req[0], 1);
	lim_ops_free(s);
}

struct tally {
	uint8_t seen[4000];
	unsigned calls;
};

static void
tally_fn(const struct lim_op *copy, void *arg)
{
	struct tally *t = arg;

	assert_true(copy->request_id < 4000);
	t->seen[copy->request_id]++;
	t->calls++;
}

/* Many partitions: one sweep reports every expired entry exactly once. */
static void
test_scan_sweep(void **state)
{
	struct lim_ops *s = lim_ops_create(40000);
	static struct tally t;
	unsigned passes = 0, visited = 0, v;

	assert_non_null(s);
	for (uint64_t r = 0; r < 4000; r++) {
		struct lim_op o = op_of(2, r);

		o.retain_until_s = r % 3 == 0 ? 10 : 1000;
		assert_non_null(lim_ops_insert(s, &o, NULL));
	}
	do {
		v = lim_ops_scan(s, 20, 97, tally_fn, &t);
		visited += v;
		passes++;
		assert_true(passes < 1000);
	} while (v == 97);
	assert_int_equal(visited, 4000); /* no slot freed: hwm == live */
	assert_int_equal(t.calls, 1334);
	for (unsigned r = 0; r < 4000; r++)
		assert_int_equal(t.seen[r], r % 3 == 0 ? 1 : 0);
	lim_ops_free(s);
}

static void
test_pointer_stable(void **state)
{
	struct lim_ops *s = lim_ops_create(5000);
	struct lim_op o = op_of(3, 77777), *a, *p[600];

	assert_non_null(s);
	a = lim_ops_insert(s, &o, NULL);
	assert_non_null(a);
	for (uint64_t r = 0; r < 600; r++) {
		o = op_of(3, r);
		p[r] = lim_ops_insert(s, &o, NULL);
		assert_non_null(p[r]);
	}
	for (unsigned r = 0; r < 600; r += 2)
		lim_ops_remove(s, p[r]);
	for (uint64_t r = 1000; r < 1300; r++) {
		o = op_of(3, r);
		assert_non_null(lim_ops_insert(s, &o, NULL));
	}
	assert_ptr_equal(lim_ops_find(s, 3, 77777), a);
	check_op(a, 3, 77777);
	for (unsigned r = 1; r < 600; r += 2)
		assert_ptr_equal(lim_ops_find(s, 3, r), p[r]);
	lim_ops_free(s);
}

static uint64_t
xorshift(uint64_t *s)
{
	uint64_t x = *s;

	x ^= x << 13;
	x ^= x >> 7;
	x ^= x << 17;
	return *s = x;
}

/* Random inserts and removes against a model, in a nearly full partition. */
static void
test_model(void **state)
{
	enum { KEYS = 300 };
	struct lim_ops *s = lim_ops_create(256);
	static struct lim_op *model[KEYS];
	uint64_t seed = 77, live = 0;

	assert_non_null(s);
	for (unsigned step = 0; step < 100000; step++) {
		uint64_t r = xorshift(&seed) % KEYS;
		struct lim_op o = op_of(4, r), *p;
		int rc;

		if (model[r]) {
			assert_ptr_equal(lim_ops_find(s, 4, r), model[r]);
			lim_ops_remove(s, model[r]);
			model[r] = NULL;
			live--;
		} else {
			p = lim_ops_insert(s, &o, &rc);
			if (live == 256) {
				assert_int_equal(rc, -ENOSPC);
				assert_null(p);
			} else {
				assert_int_equal(rc, 0);
				model[r] = p;
				live++;
			}
		}
		assert_int_equal(lim_ops_count(s), live);
		if (step % 1000 == 0)
			for (uint64_t k = 0; k < KEYS; k++)
				assert_ptr_equal(lim_ops_find(s, 4, k),
						 model[k]);
	}
	lim_ops_free(s);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_geometry),
		cmocka_unit_test(test_insert_find_remove),
		cmocka_unit_test(test_enospc_single_partition),
		cmocka_unit_test(test_enospc_partition),
		cmocka_unit_test(test_foreach),
		cmocka_unit_test(test_scan_cursor),
		cmocka_unit_test(test_scan_sweep),
		cmocka_unit_test(test_pointer_stable),
		cmocka_unit_test(test_model),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
