/*
 * test_lim_kv.c - the RCU records of the database: merchants, groups, user
 * extensions (set, find, replace, delete, foreach), group states that
 * survive replacement, the policy (checked, ceiling budget adjusted) and the
 * funder table (budgets kept, created, adjusted; all or nothing).
 *
 * The test thread is a registered QSBR reader and the updater, as the
 * control plane is.
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>
#include <urcu-qsbr.h>

#include "lim.h"
#include "lim_pvt.h"

#ifdef LIM_TSAN
/*
 * liburcu is not built with TSan: use the suppressions of its internals in
 * tests/stress/tsan.supp (found from this file's source; TSAN_OPTIONS
 * still adds to or overrides this). Runs inside TSan's start-up: no libc,
 * no instrumentation.
 */
#if __has_attribute(disable_sanitizer_instrumentation)
#define NO_TSAN __attribute__((disable_sanitizer_instrumentation))
#else
#define NO_TSAN __attribute__((no_sanitize_thread))
#endif
const char *__tsan_default_options(void);
NO_TSAN const char *
__tsan_default_options(void)
{
	static const char key[] = "suppressions=";
	static const char name[] = "../stress/tsan.supp";
	static char opt[1024];
	const char *f = __FILE__;
	size_t n = 0, dir = 0, k = 0;

	while (f[n]) {
		if (f[n] == '/')
			dir = n + 1;
		n++;
	}
	for (size_t i = 0; key[i]; i++)
		opt[k++] = key[i];
	for (size_t i = 0; i < dir && k < sizeof(opt) - 32; i++)
		opt[k++] = f[i];
	for (size_t i = 0; name[i]; i++)
		opt[k++] = name[i];
	opt[k] = 0;
	return opt;
}
#endif

static const struct lim_db_config cfg = {
	.users_max = 1000,
	.ops_max = 1000,
	.merchants_max = 100,
	.groups_max = 10,
	.shards = 4,
};

static int
setup(void **state)
{
	struct lim_db *db;

	rcu_register_thread();
	db = lim_db_create(&cfg);
	if (!db)
		return -1;
	*state = db;
	return 0;
}

static int
teardown(void **state)
{
	lim_db_free(*state);
	rcu_unregister_thread();
	return 0;
}

static struct lim_merchant
merchant_of(uint32_t id, uint16_t v)
{
	struct lim_merchant m = {
		.merchant_id = id,
		.mcc = (uint16_t)(id + v),
		.region = (uint16_t)(id * 3 + v),
		.risk_score = (uint16_t)(v % 1001),
		.flags = (uint8_t)(v & LIM_MERCHANT_BLOCKED),
		.subsidy = LIM_SUBSIDY_6,
	};

	return m;
}

struct walk {
	uint64_t n;
	uint64_t sum;
	uint64_t stop_at;
};

static int
merchant_visit(const void *rec, void *arg)
{
	const struct lim_merchant *m = rec;
	struct walk *w = arg;

	assert_int_equal(m->mcc, (uint16_t)(m->merchant_id + 2));
	w->sum += m->merchant_id;
	return ++w->n == w->stop_at ? -7 : 0;
}

static void
test_merchants(void **state)
{
	struct lim_db *db = *state;
	struct lim_merchant m = merchant_of(5, 1), bad = m;
	const struct lim_merchant *f, *g;
	struct walk w = {0};

	assert_null(lim_merchant_find(db, 5));
	assert_int_equal(lim_merchant_set(db, &m), 0);
	f = lim_merchant_find(db, 5);
	assert_non_null(f);
	assert_ptr_not_equal(f, &m); /* a copy */
	assert_memory_equal(f, &m, sizeof(m));
	assert_int_equal(lim_kv_count(db->merchants), 1);

	/* replace: the lookup sees the new record; the old one stays readable
	 * until this thread's next quiescent state */
	m = merchant_of(5, 2);
	assert_int_equal(lim_merchant_set(db, &m), 0);
	g = lim_merchant_find(db, 5);
	assert_ptr_not_equal(f, g);
	assert_memory_equal(g, &m, sizeof(m));
	assert_int_equal(f->mcc, 6);
	assert_int_equal(lim_kv_count(db->merchants), 1);
	lim_quiescent_state();

	bad.merchant_id = 0;
	assert_int_equal(lim_merchant_set(db, &bad), -EINVAL);
	bad = m;
	bad.risk_score = 1001;
	assert_int_equal(lim_merchant_set(db, &bad), -EINVAL);
	bad = m;
	bad.subsidy = 0x08;
	assert_int_equal(lim_merchant_set(db, &bad), -EINVAL);
	assert_memory_equal(lim_merchant_find(db, 5), &m, sizeof(m));

	for (uint32_t id = 100; id < 1100; id++) { /* past the initial size */
		m = merchant_of(id, 2);
		assert_int_equal(lim_merchant_set(db, &m), 0);
	}
	assert_int_equal(lim_kv_count(db->merchants), 1001);
	assert_int_equal(lim_kv_foreach(db->merchants, merchant_visit, &w), 0);
	assert_int_equal(w.n, 1001);
	assert_int_equal(w.sum, 5 + (100 + 1099) * 1000 / 2);
	w = (struct walk){.stop_at = 10};
	assert_int_equal(lim_kv_foreach(db->merchants, merchant_visit, &w), -7);
	assert_int_equal(w.n, 10);
	for (uint32_t id = 100; id < 1100; id++)
		assert_int_equal(lim_merchant_find(db, id)->region,
				 (uint16_t)(id * 3 + 2));
	assert_null(lim_merchant_find(db, 1100));
	lim_quiescent_state();
}

static int
ext_visit(const void *rec, void *arg)
{
	const struct lim_user_ext *x = rec;
	struct walk *w = arg;

	assert_int_equal(x->temp_quota_fen, (int64_t)x->user_id * 10);
	w->n++;
	w->sum += x->user_id;
	return 0;
}

static void
test_ext(void **state)
{
	struct lim_db *db = *state;
	struct lim_user_ext x = {.user_id = 1ULL << 40,
				 .temp_quota_fen = 10LL << 40,
				 .cash_limit_fen = -1,
				 .alert_fen = -1,
				 .temp_until_s = 12345};
	struct walk w = {0};

	assert_null(lim_ext_find(db, x.user_id));
	assert_int_equal(lim_ext_set(db, &x), 0);
	assert_memory_equal(lim_ext_find(db, x.user_id), &x, sizeof(x));
	/* a 64-bit key: ids that differ only in the high half are distinct */
	assert_null(lim_ext_find(db, 0));
	x.user_id = 1;
	x.temp_quota_fen = 10;
	assert_int_equal(lim_ext_set(db, &x), 0);
	x.temp_until_s = 999; /* replace */
	assert_int_equal(lim_ext_set(db, &x), 0);
	assert_int_equal(lim_ext_find(db, 1)->temp_until_s, 999);
	assert_int_equal(lim_ext_find(db, 1ULL << 40)->temp_until_s, 12345);
	assert_int_equal(lim_kv_count(db->ext), 2);
	assert_int_equal(lim_kv_foreach(db->ext, ext_visit, &w), 0);
	assert_int_equal(w.n, 2);
	assert_int_equal(w.sum, 1 + (1ULL << 40));

	assert_int_equal(lim_ext_del(db, 1), 0);
	assert_null(lim_ext_find(db, 1));
	assert_int_equal(lim_ext_del(db, 1), -ENOENT);
	assert_int_equal(lim_kv_count(db->ext), 1);
	x.user_id = 0;
	assert_int_equal(lim_ext_set(db, &x), -EINVAL);
	/* deleted then set again */
	x.user_id = 1;
	assert_int_equal(lim_ext_set(db, &x), 0);
	assert_int_equal(lim_kv_count(db->ext), 2);
	lim_quiescent_state();
}

static int
group_visit(const void *rec, void *arg)
{
	const struct lim_group *g = rec;
	struct walk *w = arg;

	assert_non_null(g->st);
	w->n++;
	w->sum += g->group_id;
	return 0;
}

static void
test_groups(void **state)
{
	struct lim_db *db = *state;
	struct lim_group g = {.group_id = 9, .n_members = 2, .budget_fen = 5000,
			      .members = {11, 12},
			      .st = (struct lim_group_state *)0x1};
	struct lim_group_state *st;
	const struct lim_group *f;
	struct walk w = {0};

	assert_null(lim_group_find(db, 9));
	assert_int_equal(lim_group_set(db, &g), 0);
	f = lim_group_find(db, 9);
	assert_non_null(f);
	assert_int_equal(f->budget_fen, 5000);
	assert_int_equal(f->members[1], 12);
	st = f->st;
	assert_ptr_not_equal(st, (void *)0x1); /* the caller's st is ignored */
	assert_int_equal(st->month_spend_fen, 0);
	assert_int_equal(st->lock, 0);
	assert_int_equal((uintptr_t)st % LIM_CACHE_LINE, 0);

	lim_group_lock(st);
	assert_int_equal(st->lock, 1);
	st->month_spend_fen = 1234;
	st->month_start_s = 777;
	lim_group_unlock(st);
	assert_int_equal(st->lock, 0);

	/* replaced: new budget and members, same state */
	g.budget_fen = 9000;
	g.n_members = 3;
	g.members[2] = 13;
	g.st = NULL;
	assert_int_equal(lim_group_set(db, &g), 0);
	f = lim_group_find(db, 9);
	assert_int_equal(f->budget_fen, 9000);
	assert_int_equal(f->n_members, 3);
	assert_ptr_equal(f->st, st);
	assert_int_equal(f->st->month_spend_fen, 1234);
	assert_int_equal(f->st->month_start_s, 777);

	/* another group has its own state */
	g.group_id = 10;
	assert_int_equal(lim_group_set(db, &g), 0);
	assert_ptr_not_equal(lim_group_find(db, 10)->st, st);
	assert_int_equal(lim_group_find(db, 10)->st->month_spend_fen, 0);
	assert_int_equal(lim_kv_count(db->groups), 2);
	assert_int_equal(lim_kv_foreach(db->groups, group_visit, &w), 0);
	assert_int_equal(w.n, 2);
	assert_int_equal(w.sum, 19);

	g.group_id = 0;
	assert_int_equal(lim_group_set(db, &g), -EINVAL);
	g.group_id = 11;
	g.n_members = LIM_GROUP_MEMBERS_MAX + 1;
	assert_int_equal(lim_group_set(db, &g), -EINVAL);
	g.n_members = 0;
	assert_int_equal(lim_group_set(db, &g), -EINVAL);
	g.n_members = 4; /* members[3] == 0 */
	assert_int_equal(lim_group_set(db, &g), -EINVAL);
	g.n_members = 3;
	g.budget_fen = -1;
	assert_int_equal(lim_group_set(db, &g), -EINVAL);
	assert_null(lim_group_find(db, 11));
	lim_quiescent_state();
}

static void
test_policy(void **state)
{
	struct lim_db *db = *state;
	const struct lim_policy *p0 = lim_policy_get(db);
	struct lim_policy p, def;
	int64_t ceiling = p0->ceiling_fen;

	lim_policy_default(&def);
	assert_memory_equal(p0, &def, sizeof(def));
	assert_int_equal(lim_budget_total(db->cap), ceiling);
	assert_int_equal(lim_budget_chunk(db->cap), def.cap_chunk_fen);
	assert_int_equal(lim_budget_shards(db->cap), cfg.shards);

	p = *p0;
	p.ceiling_fen = 0;
	assert_int_equal(lim_policy_set(db, &p), -EINVAL);
	p = *p0;
	p.retain_s = p.hold_ttl_s - 1;
	assert_int_equal(lim_policy_set(db, &p), -EINVAL);
	assert_ptr_equal(lim_policy_get(db), p0);
	assert_int_equal(lim_budget_total(db->cap), ceiling);

	/* a higher ceiling and another chunk */
	p = *p0;
	p.ceiling_fen = ceiling + 1000000;
	p.cap_chunk_fen = 5000;
	p.hold_ttl_s = 3600;
	assert_int_equal(lim_policy_set(db, &p), 0);
	assert_ptr_not_equal(lim_policy_get(db), p0);
	assert_memory_equal(lim_policy_get(db), &p, sizeof(p));
	assert_int_equal(lim_budget_total(db->cap), ceiling + 1000000);
	assert_int_equal(lim_budget_chunk(db->cap), 5000);
	lim_quiescent_state(); /* p0 may be freed from here on */

	/* lend 700000 through shard 0, then drop the ceiling below that */
	assert_true(lim_budget_take(db->cap, 0, 700000));
	assert_int_equal(lim_budget_shard_room(db->cap, 0), 0);
	p.ceiling_fen = 600000;
	assert_int_equal(lim_policy_set(db, &p), -ERANGE);
	assert_int_equal(lim_policy_get(db)->ceiling_fen, ceiling + 1000000);
	assert_int_equal(lim_budget_total(db->cap), ceiling + 1000000);
	/* down to exactly what is lent */
	p.ceiling_fen = 700000;
	assert_int_equal(lim_policy_set(db, &p), 0);
	assert_int_equal(lim_policy_get(db)->ceiling_fen, 700000);
	assert_int_equal(lim_budget_total(db->cap), 700000);
	assert_int_equal(lim_budget_free_fen(db->cap), 0);
	assert_false(lim_budget_take(db->cap, 1, 1));
	lim_budget_give(db->cap, 1, 700000);
	assert_int_equal(lim_budget_free_fen(db->cap), 700000);
	lim_quiescent_state();
}

static void
test_funders(void **state)
{
	struct lim_db *db = *state;
	const struct lim_funders *fs = lim_funders_get(db), *old;
	const int64_t q0 = lim_policy_get(db)->ceiling_fen;
	struct lim_budget *b0 = fs->budget[0], *b9;
	struct lim_funder f[LIM_FUNDERS_MAX + 1];

	/* the default: the company's own book alone */
	assert_int_equal(fs->n, 1);
	assert_int_equal(fs->f[0].funder_id, 0);
	assert_int_equal(fs->f[0].quota_fen, q0);
	assert_int_equal(fs->f[0].share_pct, 0);
	assert_int_equal(fs->f[0].region, 0);
	assert_int_equal(fs->f[0].products, 0x0e);
	assert_non_null(b0);
	assert_int_equal(lim_budget_total(b0), q0);
	assert_int_equal(lim_budget_shards(b0), cfg.shards);

	memset(f, 0, sizeof(f));
	f[0] = fs->f[0];
	f[1] = (struct lim_funder){.quota_fen = 1000, .funder_id = 7,
				   .share_pct = 70, .products = 0x02};
	f[2] = (struct lim_funder){.quota_fen = 500, .funder_id = 9,
				   .region = 21, .share_pct = 50,
				   .products = 0x0c};
	assert_int_equal(lim_funders_set(db, f, 3), 0);
	old = fs;
	fs = lim_funders_get(db);
	assert_ptr_not_equal(fs, old);
	assert_int_equal(fs->n, 3);
	assert_memory_equal(fs->f, f, 3 * sizeof(f[0]));
	assert_ptr_equal(fs->budget[0], b0); /* kept */
	assert_int_equal(lim_budget_total(b0), q0);
	assert_int_equal(lim_budget_total(fs->budget[1]), 1000);
	assert_int_equal(lim_budget_total(fs->budget[2]), 500);
	assert_int_equal(lim_budget_shards(fs->budget[2]), cfg.shards);
	b9 = fs->budget[2];
	lim_quiescent_state();

	/* funder 9 lends 300 (chunk 1: the shard reserves nothing) */
	assert_true(lim_budget_take(b9, 0, 300));
	assert_int_equal(lim_budget_global(b9), 200);

	/* all or nothing: funder 0's decrease is undone when 9's fails */
	f[0].quota_fen = q0 - 5;
	f[1] = f[2];
	f[1].quota_fen = 100;
	assert_int_equal(lim_funders_set(db, f, 2), -ERANGE);
	assert_ptr_equal(lim_funders_get(db), fs);
	assert_int_equal(lim_budget_total(b0), q0);
	assert_int_equal(lim_budget_total(b9), 500);

	/* funder 7 leaves, 9 moves to slot 1 with quota 300 == lent */
	f[1].quota_fen = 300;
	assert_int_equal(lim_funders_set(db, f, 2), 0);
	fs = lim_funders_get(db);
	assert_int_equal(fs->n, 2);
	assert_ptr_equal(fs->budget[0], b0);
	assert_ptr_equal(fs->budget[1], b9);
	assert_int_equal(lim_budget_total(b0), q0 - 5);
	assert_int_equal(lim_budget_total(b9), 300);
	assert_false(lim_budget_take(b9, 1, 1));
	lim_quiescent_state(); /* funder 7's budget may be freed now */

	/* funder 7 again: a new budget */
	f[2] = (struct lim_funder){.quota_fen = 50, .funder_id = 7,
				   .share_pct = 60, .products = 0x02};
	assert_int_equal(lim_funders_set(db, f, 3), 0);
	fs = lim_funders_get(db);
	assert_int_equal(lim_budget_total(fs->budget[2]), 50);
	assert_int_equal(lim_budget_free_fen(fs->budget[2]), 50);

	/* refused tables change nothing */
	assert_int_equal(lim_funders_set(db, f, 0), -EINVAL);
	for (unsigned i = 3; i <= LIM_FUNDERS_MAX; i++)
		f[i] = (struct lim_funder){.funder_id = (uint16_t)(100 + i)};
	assert_int_equal(lim_funders_set(db, f, LIM_FUNDERS_MAX + 1), -EINVAL);
	f[0].funder_id = 5;
	assert_int_equal(lim_funders_set(db, f, 3), -EINVAL);
	f[0].funder_id = 0;
	f[0].share_pct = 10;
	assert_int_equal(lim_funders_set(db, f, 3), -EINVAL);
	f[0].share_pct = 0;
	f[0].region = 3;
	assert_int_equal(lim_funders_set(db, f, 3), -EINVAL);
	f[0].region = 0;
	f[2].funder_id = 9; /* duplicate */
	assert_int_equal(lim_funders_set(db, f, 3), -EINVAL);
	f[2].funder_id = 7;
	f[2].share_pct = 101;
	assert_int_equal(lim_funders_set(db, f, 3), -EINVAL);
	f[2].share_pct = 60;
	f[2].quota_fen = -1;
	assert_int_equal(lim_funders_set(db, f, 3), -EINVAL);
	f[2].quota_fen = 50;
	f[2].products = 0x10;
	assert_int_equal(lim_funders_set(db, f, 3), -EINVAL);
	assert_ptr_equal(lim_funders_get(db), fs);
	/* a full table is fine */
	f[2].products = 0x02;
	assert_int_equal(lim_funders_set(db, f, LIM_FUNDERS_MAX), 0);
	assert_int_equal(lim_funders_get(db)->n, LIM_FUNDERS_MAX);
	assert_ptr_equal(lim_funders_get(db)->budget[1], b9);
	lim_quiescent_state();
}

/* each test on a fresh database */
#define DB_TEST(f) cmocka_unit_test_setup_teardown(f, setup, teardown)

int
main(void)
{
	const struct CMUnitTest tests[] = {
		DB_TEST(test_merchants),
		DB_TEST(test_ext),
		DB_TEST(test_groups),
		DB_TEST(test_policy),
		DB_TEST(test_funders),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
