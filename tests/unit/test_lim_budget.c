/*
 * test_lim_budget.c - sharded budgets: take, give, refill in chunks,
 * exhaustion, adjust and -ERANGE, with exact accounting after every step.
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "lim.h"
#include "lim_pvt.h"

/* global + sum(shard rooms) + used == total, exactly */
static void
check(const struct lim_budget *b, int64_t used)
{
	int64_t sum = lim_budget_global(b);

	assert_true(lim_budget_global(b) >= 0);
	for (unsigned s = 0; s < lim_budget_shards(b); s++) {
		assert_true(lim_budget_shard_room(b, s) >= 0);
		sum += lim_budget_shard_room(b, s);
	}
	assert_int_equal(sum + used, lim_budget_total(b));
	assert_int_equal(lim_budget_free_fen(b), lim_budget_total(b) - used);
	assert_true(used <= lim_budget_total(b));
}

static void
test_create_args(void **state)
{
	struct lim_budget *b = lim_budget_create(0, 1, LIM_SHARDS_MAX);

	assert_non_null(b);
	assert_int_equal(lim_budget_room(b, LIM_SHARDS_MAX - 1), 0);
	assert_false(lim_budget_take(b, 0, 1));
	assert_true(lim_budget_take(b, 0, 0));
	check(b, 0);
	lim_budget_free(b);
	assert_null(lim_budget_create(-1, 1, 1));
	assert_null(lim_budget_create(10, 0, 1));
	assert_null(lim_budget_create(10, 1, 0));
	assert_null(lim_budget_create(10, 1, LIM_SHARDS_MAX + 1));
}

static void
test_take_refill_give(void **state)
{
	struct lim_budget *b = lim_budget_create(1000, 100, 2);
	int64_t used = 0;

	assert_non_null(b);
	assert_int_equal(lim_budget_total(b), 1000);
	assert_int_equal(lim_budget_room(b, 0), 1000);
	check(b, used);

	/* first take refills one whole chunk */
	assert_true(lim_budget_take(b, 0, 30));
	used += 30;
	assert_int_equal(lim_budget_shard_room(b, 0), 70);
	assert_int_equal(lim_budget_global(b), 900);
	check(b, used);

	/* served from the shard alone: the global room is not touched */
	assert_true(lim_budget_take(b, 0, 70));
	used += 70;
	assert_int_equal(lim_budget_shard_room(b, 0), 0);
	assert_int_equal(lim_budget_global(b), 900);
	check(b, used);

	/* a take larger than a chunk refills whole chunks: 150 -> 200 */
	assert_true(lim_budget_take(b, 0, 150));
	used += 150;
	assert_int_equal(lim_budget_shard_room(b, 0), 50);
	assert_int_equal(lim_budget_global(b), 700);
	check(b, used);

	/* shard room 50 + refill: need 10 more -> one chunk */
	assert_true(lim_budget_take(b, 0, 60));
	used += 60;
	assert_int_equal(lim_budget_shard_room(b, 0), 90);
	assert_int_equal(lim_budget_global(b), 600);
	check(b, used);

	/* give through another shard: it keeps two chunks, returns the rest */
	lim_budget_give(b, 1, 250);
	used -= 250;
	assert_int_equal(lim_budget_shard_room(b, 1), 200);
	assert_int_equal(lim_budget_global(b), 650);
	check(b, used);

	/* below two chunks a give stays in the shard */
	lim_budget_give(b, 0, 40);
	used -= 40;
	assert_int_equal(lim_budget_shard_room(b, 0), 130);
	assert_int_equal(lim_budget_global(b), 650);
	check(b, used);

	/* room seen by a shard: its own plus the global, not the others' */
	assert_int_equal(lim_budget_room(b, 0), 780);
	assert_int_equal(lim_budget_room(b, 1), 850);

	lim_budget_flush(b, 1);
	assert_int_equal(lim_budget_shard_room(b, 1), 0);
	assert_int_equal(lim_budget_global(b), 850);
	check(b, used);
	lim_budget_free(b);
}

static void
test_exhaustion(void **state)
{
	struct lim_budget *b = lim_budget_create(1000, 300, 2);
	int64_t used = 0;

	assert_non_null(b);
	/* the refill takes at most what is there */
	assert_true(lim_budget_take(b, 1, 800)); /* wants 900 */
	used += 800;
	assert_int_equal(lim_budget_shard_room(b, 1), 100);
	assert_int_equal(lim_budget_global(b), 100);
	assert_true(lim_budget_take(b, 0, 50)); /* wants 300, gets 100 */
	used += 50;
	assert_int_equal(lim_budget_shard_room(b, 0), 50);
	assert_int_equal(lim_budget_global(b), 0);
	check(b, used);

	/* shard 0 has 50 and the global 0: 51 does not fit, nothing moves */
	assert_false(lim_budget_take(b, 0, 51));
	assert_int_equal(lim_budget_shard_room(b, 0), 50);
	assert_int_equal(lim_budget_shard_room(b, 1), 100);
	assert_int_equal(lim_budget_global(b), 0);
	check(b, used);

	/* exactly the room fits */
	assert_true(lim_budget_take(b, 0, 50));
	used += 50;
	assert_true(lim_budget_take(b, 1, 100));
	used += 100;
	assert_int_equal(used, 1000);
	assert_false(lim_budget_take(b, 0, 1));
	assert_false(lim_budget_take(b, 1, 1));
	assert_int_equal(lim_budget_free_fen(b), 0);
	check(b, used);

	/* giving back makes room again, for the other shard too */
	lim_budget_give(b, 0, 1000);
	used -= 1000;
	assert_int_equal(lim_budget_shard_room(b, 0), 600);
	assert_int_equal(lim_budget_global(b), 400);
	assert_true(lim_budget_take(b, 1, 400));
	used += 400;
	assert_false(lim_budget_take(b, 1, 1));
	check(b, used);
	lim_budget_free(b);
}

static void
test_adjust(void **state)
{
	struct lim_budget *b = lim_budget_create(1000, 100, 2);
	int64_t used = 0;

	assert_non_null(b);
	assert_true(lim_budget_take(b, 0, 250)); /* shard 0: 50, global 700 */
	used += 250;

	assert_int_equal(lim_budget_adjust(b, 500), 0);
	assert_int_equal(lim_budget_total(b), 1500);
	assert_int_equal(lim_budget_global(b), 1200);
	check(b, used);

	/* a decrease larger than the global room fails and changes nothing */
	assert_int_equal(lim_budget_adjust(b, -1201), -ERANGE);
	assert_int_equal(lim_budget_total(b), 1500);
	assert_int_equal(lim_budget_global(b), 1200);
	check(b, used);

	/* down to what is used plus what shard 0 reserves */
	assert_int_equal(lim_budget_adjust(b, -1200), 0);
	assert_int_equal(lim_budget_total(b), 300);
	assert_int_equal(lim_budget_global(b), 0);
	check(b, used);
	assert_int_equal(lim_budget_adjust(b, -1), -ERANGE);

	/* the shard's reserve comes back with a flush */
	lim_budget_flush(b, 0);
	assert_int_equal(lim_budget_adjust(b, -50), 0);
	assert_int_equal(lim_budget_total(b), 250);
	check(b, used);
	assert_false(lim_budget_take(b, 1, 1));
	assert_int_equal(lim_budget_adjust(b, -1), -ERANGE);

	/* overflow of the total */
	assert_int_equal(lim_budget_adjust(b, INT64_MAX), -ERANGE);
	assert_int_equal(lim_budget_total(b), 250);

	/* a new chunk is used by the next refill */
	assert_int_equal(lim_budget_adjust(b, 10000), 0);
	lim_budget_set_chunk(b, 1000);
	assert_int_equal(lim_budget_chunk(b), 1000);
	assert_true(lim_budget_take(b, 1, 1));
	used += 1;
	assert_int_equal(lim_budget_shard_room(b, 1), 999);
	check(b, used);
	lim_budget_give(b, 1, 1);
	used -= 1;
	assert_int_equal(used, 250);
	check(b, used);
	lim_budget_free(b);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_create_args),
		cmocka_unit_test(test_take_refill_give),
		cmocka_unit_test(test_exhaustion),
		cmocka_unit_test(test_adjust),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
