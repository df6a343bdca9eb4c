/*
 * stress_snapshot.c - snapshots saved over and over while two threads
 * decide (authorize, capture, void, refund, repay, group payments, cash
 * loans) for a few seconds; every file must load, and per file the users'
 * and groups' stamps lie within the file's sequence range.
 *
 * STRESS_SNAPSHOT_SECONDS overrides the duration (default 3).
 */
#include <pthread.h>
#include <stdlib.h>
#include <time.h>
#include <unistd.h>

#include <urcu-qsbr.h>

#include "lim_fixture.h"

#define USERS 50000
#define GROUPS 100
#define THREADS 2
#define ERR_LEN 512

struct worker {
	pthread_t tid;
	unsigned shard;
	struct lim_db *db;
	volatile bool *stop;
	uint64_t ops, recorded;
};

static uint64_t
user_id(uint64_t i)
{
	return 5000000 + i * 104729;
}

static void *
worker_main(void *arg)
{
	struct worker *w = arg;
	uint64_t rng = 77 + w->shard, rid = (uint64_t)w->shard << 40;
	uint64_t ref[32] = {0}, ref_user[32] = {0};
	struct fx f;

	rcu_register_thread();
	memset(&f, 0, sizeof(f));
	f.db = w->db;
	f.x.db = w->db;
	f.x.shard = w->shard;
	fx_set_now(&f, FX_T0);
	while (!__atomic_load_n(w->stop, __ATOMIC_RELAXED)) {
		static const uint8_t ops[] = {LIM_OP_CAPTURE, LIM_OP_VOID,
					      LIM_OP_REFUND, LIM_OP_REPAY};
		struct auth_resp a;
		struct lim_effect e;
		struct auth_req q;
		uint64_t r, i;
		unsigned k;

		rng = rng * 6364136223846793005ULL + 1442695040888963407ULL;
		r = rng >> 33;
		k = r % 32;
		i = (r >> 5) % USERS;
		if (ref[k] && (r & 0x400)) {
			uint8_t op = ops[(r >> 12) % 4];

			q = fx_req(op, ++rid, ref_user[k],
				   op == LIM_OP_REPAY ? 0 : ref[k],
				   op == LIM_OP_VOID ? 0 : 50, LIM_PRODUCT_PAYLATER);
			if (op != LIM_OP_CAPTURE && op != LIM_OP_REFUND)
				ref[k] = 0;
		} else {
			uint8_t prod = (r & 0x3000) == 0 ? LIM_PRODUCT_CASH
				       : LIM_PRODUCT_PAYLATER;

			q = fx_req(LIM_OP_AUTHORIZE, ++rid, user_id(i), 0,
				   100 + (int64_t)(r % 3000), prod);
			/* the first GROUPS * 4 users pay from their group */
			if (i < GROUPS * 4 && prod == LIM_PRODUCT_PAYLATER)
				q.group_id = (uint32_t)(i / 4 + 1);
			ref[k] = rid;
			ref_user[k] = user_id(i);
		}
		if (fx_exec_gw(&f, FX_GW, &q, &a, &e) == AUTH_EXEC_RECORDED)
			w->recorded++;
		if (++w->ops % 64 == 0)
			lim_quiescent_state();
	}
	rcu_unregister_thread();
	return NULL;
}

static struct lim_db *
make_db(void)
{
	const struct lim_db_config cfg = {.users_max = USERS,
					  .ops_max = 1u << 20,
					  .merchants_max = 64,
					  .groups_max = GROUPS,
					  .shards = THREADS + 1};
	const struct lim_merchant m = {.merchant_id = FX_M, .mcc = 5411};
	struct lim_db *db = lim_db_create(&cfg);

	assert_non_null(db);
	assert_int_equal(lim_merchant_set(db, &m), 0);
	for (uint64_t i = 0; i < USERS; i++) {
		struct lim_user u = {.user_id = user_id(i),
				     .limit_fen = 100000000000LL, .tier = 7,
				     .region = 21};

		assert_int_equal(lim_users_insert(db->users, &u), 0);
	}
	for (uint32_t g = 1; g <= GROUPS; g++) {
		struct lim_group grp = {.group_id = g, .n_members = 4,
					.budget_fen = 1000000000LL};

		for (unsigned j = 0; j < 4; j++)
			grp.members[j] = user_id((g - 1) * 4 + j);
		assert_int_equal(lim_group_set(db, &grp), 0);
	}
	return db;
}

static void
check_file(const char *path)
{
	struct lim_snapshot_meta meta;
	char err[ERR_LEN] = "";
	struct lim_db *db = lim_snapshot_load(path, NULL, NULL, &meta, err,
					      sizeof(err));
	uint64_t span;

	if (!db)
		fail_msg("%s", err);
	span = meta.seq_end - meta.seq_start;
	assert_int_equal(lim_users_count(db->users), USERS);
	assert_int_equal(meta.users, USERS);
	assert_int_equal(meta.groups, GROUPS);
	for (uint64_t i = 0; i < meta.users; i++)
		assert_true(meta.user_stamp[i] <= span);
	for (uint64_t i = 0; i < meta.groups; i++)
		assert_true(meta.group_stamp[i] <= span);
	lim_snapshot_meta_free(&meta);
	lim_db_free(db);
}

/* Save the quiescent @p db and load it back: users byte for byte (lock
 * aside), op entries and the derived ceiling equal. */
static void
check_same(struct lim_db *db, const char *path)
{
	char err[ERR_LEN] = "";
	struct lim_db *b;

	if (lim_snapshot_save(db, path, err, sizeof(err)))
		fail_msg("%s", err);
	b = lim_snapshot_load(path, NULL, NULL, NULL, err, sizeof(err));
	if (!b)
		fail_msg("%s", err);
	assert_int_equal(lim_users_count(b->users), USERS);
	assert_int_equal(lim_ops_count(b->ops), lim_ops_count(db->ops));
	for (uint64_t i = 0; i < USERS; i++) {
		struct lim_user x = *lim_users_at(db->users, i);
		struct lim_user y = *lim_users_at(b->users, i);

		x.lock = y.lock = 0;
		assert_memory_equal(&x, &y, sizeof(x));
	}
	assert_int_equal(lim_budget_free_fen(b->cap),
			 lim_budget_free_fen(db->cap));
	lim_db_free(b);
}

static void
stress_saves_under_load(void **state)
{
	const char *env = getenv("STRESS_SNAPSHOT_SECONDS");
	double seconds = env ? atof(env) : 3.0;
	char dir[] = "/tmp/stress_snapshot.XXXXXX", path[2][96], cmd[128];
	struct lim_db *db = make_db();
	struct worker w[THREADS];
	volatile bool stop = false;
	struct timespec t0, t;
	unsigned saves = 0;
	uint64_t ops = 0, recorded = 0;

	(void)state;
	assert_non_null(mkdtemp(dir));
	for (unsigned i = 0; i < 2; i++)
		snprintf(path[i], sizeof(path[i]), "%s/s%u.snap", dir, i);
	for (unsigned i = 0; i < THREADS; i++) {
		w[i] = (struct worker){.shard = i + 1, .db = db, .stop = &stop};
		assert_int_equal(pthread_create(&w[i].tid, NULL, worker_main,
						&w[i]), 0);
	}
	clock_gettime(CLOCK_MONOTONIC, &t0);
	do {
		char err[ERR_LEN] = "";
		const char *p = path[saves % 2];

		if (lim_snapshot_save(db, p, err, sizeof(err)))
			fail_msg("save %u: %s", saves, err);
		check_file(p);
		saves++;
		clock_gettime(CLOCK_MONOTONIC, &t);
		/* at least two saves whatever the machine's speed: the test
		 * asserts saves under load, not how many fit in the time */
	} while (saves < 2 || (double)(t.tv_sec - t0.tv_sec) +
				      (double)(t.tv_nsec - t0.tv_nsec) / 1e9 <
			      seconds);
	__atomic_store_n(&stop, true, __ATOMIC_RELAXED);
	rcu_thread_offline();
	for (unsigned i = 0; i < THREADS; i++) {
		assert_int_equal(pthread_join(w[i].tid, NULL), 0);
		ops += w[i].ops;
		recorded += w[i].recorded;
	}
	rcu_thread_online();
	print_message("%u saves (each loaded back) during %llu requests, "
		      "%llu recorded, %llu op entries at the end\n", saves,
		      (unsigned long long)ops, (unsigned long long)recorded,
		      (unsigned long long)lim_ops_count(db->ops));
	assert_true(saves >= 2);
	/* quiescent now: the last save must equal the database exactly */
	check_same(db, path[0]);
	snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
	assert_int_equal(system(cmd), 0);
	lim_db_free(db);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(stress_saves_under_load),
	};
	int rc;

	rcu_register_thread();
	rc = cmocka_run_group_tests(tests, NULL, NULL);
	rcu_unregister_thread();
	return rc;
}
