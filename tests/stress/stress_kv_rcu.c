/*
 * stress_kv_rcu.c - RCU torture for the database's records: QSBR reader
 * threads look up merchants, user extensions, groups, the policy and the
 * funder table and read every field, while the updater replaces them at a
 * high rate (and deletes and re-creates extensions).
 *
 * Every record is written so that it can check itself: its fields are all
 * derived from its id and a version, so a reader that sees a half-written or
 * freed record (ASan: use after free) fails. Versions a reader sees for one
 * id never go backwards. Readers also add to group month spends under the
 * group lock: the sums survive every replacement of the group record.
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
#include <urcu-qsbr.h>

#include "lim.h"
#include "lim_pvt.h"

#ifdef LIM_TSAN
/*
 * liburcu is not built with TSan: use the suppressions of its internals in
 * tests/stress/tsan.supp (found next to this file's source; TSAN_OPTIONS
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
	static const char name[] = "tsan.supp";
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
	MERCHANTS = 512,
	EXTS = 256,
	GROUPS = 8,
	READS_PER_QS = 64,
};

struct reader {
	pthread_t tid;
	uint64_t seed;
	uint64_t reads, misses, spend;
	uint64_t ext_seen[EXTS]; /* last version seen per extension */
};

static struct lim_db *db;
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

/* ---- records that check themselves ------------------------------------- */

static struct lim_merchant
merchant_make(uint32_t id, uint64_t v)
{
	uint16_t x = (uint16_t)v;
	struct lim_merchant m = {
		.merchant_id = id,
		.mcc = x,
		.region = (uint16_t)(x ^ id),
		.risk_score = (uint16_t)((x + id) % 1001),
		.flags = (uint8_t)(x & LIM_MERCHANT_BLOCKED),
		.subsidy = (uint8_t)((x >> 1) & 7),
	};

	return m;
}

static void
merchant_check(const struct lim_merchant *m, uint32_t id)
{
	struct lim_merchant want = merchant_make(id, m->mcc);

	CHECK(memcmp(m, &want, sizeof(want)) == 0);
}

static uint64_t
ext_id(unsigned i)
{
	return ((uint64_t)i << 33) + 17;
}

static struct lim_user_ext
ext_make(uint64_t uid, uint64_t v)
{
	struct lim_user_ext x = {
		.user_id = uid,
		.temp_quota_fen = (int64_t)v,
		.cash_limit_fen = (int64_t)(v * 3 + uid),
		.alert_fen = (int64_t)~v,
		.temp_until_s = (uint32_t)(v ^ uid),
	};

	return x;
}

static struct lim_group
group_make(uint32_t id, uint64_t v)
{
	struct lim_group g = {.group_id = id, .budget_fen = (int64_t)v};

	g.n_members = (uint8_t)(v % LIM_GROUP_MEMBERS_MAX + 1);
	for (unsigned i = 0; i < g.n_members; i++)
		g.members[i] = v + i + 1;
	return g;
}

static void
group_check(const struct lim_group *g, uint32_t id)
{
	uint64_t v = (uint64_t)g->budget_fen;

	CHECK(g->group_id == id);
	CHECK(g->n_members == v % LIM_GROUP_MEMBERS_MAX + 1);
	for (unsigned i = 0; i < g->n_members; i++)
		CHECK(g->members[i] == v + i + 1);
	CHECK(g->st != NULL);
}

static void
policy_make(struct lim_policy *p, uint64_t v)
{
	lim_policy_default(p);
	p->hold_ttl_s = 3600 + (uint32_t)(v % 100000);
	p->retain_s = p->hold_ttl_s * 2;
	p->cool_cash_s = p->hold_ttl_s + 7;
	p->tier[7].large_spend_fen = p->hold_ttl_s;
}

static void
policy_check(const struct lim_policy *p)
{
	CHECK(p->retain_s == p->hold_ttl_s * 2);
	CHECK(p->cool_cash_s == p->hold_ttl_s + 7);
	CHECK(p->tier[7].large_spend_fen == p->hold_ttl_s);
}

static unsigned
funders_make(struct lim_funder *f, const struct lim_policy *p, uint64_t v)
{
	unsigned n = (unsigned)(v % 4) + 1;

	memset(f, 0, n * sizeof(*f));
	f[0].quota_fen = p->ceiling_fen;
	f[0].products = 0x0e;
	for (unsigned i = 1; i < n; i++) {
		f[i].funder_id = (uint16_t)(i * 10 + v % 3);
		f[i].quota_fen = (int64_t)(v * 100 + f[i].funder_id);
		f[i].share_pct = (uint8_t)(f[i].funder_id % 71);
		f[i].region = (uint16_t)(f[i].funder_id + 1000);
		f[i].products = 0x02;
	}
	return n;
}

static void
funders_check(const struct lim_funders *fs)
{
	CHECK(fs->n >= 1 && fs->n <= 4);
	CHECK(fs->f[0].funder_id == 0 && fs->budget[0] != NULL);
	for (unsigned i = 1; i < fs->n; i++) {
		const struct lim_funder *f = &fs->f[i];

		CHECK(f->funder_id / 10 == i);
		CHECK(f->quota_fen % 100 == f->funder_id);
		CHECK(f->share_pct == f->funder_id % 71);
		CHECK(f->region == f->funder_id + 1000);
		CHECK(fs->budget[i] != NULL);
		CHECK(lim_budget_total(fs->budget[i]) >= 0);
	}
}

/* ---- readers ------------------------------------------------------------ */

static void
read_one(struct reader *r)
{
	uint64_t x = xorshift(&r->seed);
	unsigned i = (unsigned)(x >> 8);

	switch (x % 8) {
	case 0: case 1: case 2: case 3: {
		const struct lim_merchant *m =
			lim_merchant_find(db, i % MERCHANTS + 1);

		CHECK(m != NULL);
		merchant_check(m, i % MERCHANTS + 1);
		break;
	}
	case 4: case 5: {
		unsigned e = i % EXTS;
		const struct lim_user_ext *u = lim_ext_find(db, ext_id(e));
		struct lim_user_ext want;

		if (!u) {
			r->misses++;
			break;
		}
		want = ext_make(ext_id(e), (uint64_t)u->temp_quota_fen);
		CHECK(memcmp(u, &want, sizeof(want)) == 0);
		CHECK((uint64_t)u->temp_quota_fen >= r->ext_seen[e]);
		r->ext_seen[e] = (uint64_t)u->temp_quota_fen;
		break;
	}
	case 6: {
		const struct lim_group *g = lim_group_find(db, i % GROUPS + 1);

		CHECK(g != NULL);
		group_check(g, i % GROUPS + 1);
		lim_group_lock(g->st);
		g->st->month_spend_fen += 1;
		lim_group_unlock(g->st);
		r->spend++;
		break;
	}
	default:
		policy_check(lim_policy_get(db));
		funders_check(lim_funders_get(db));
		break;
	}
	r->reads++;
}

static void *
reader_main(void *arg)
{
	struct reader *r = arg;

	rcu_register_thread();
	while (!__atomic_load_n(&stop, __ATOMIC_RELAXED)) {
		for (int n = 0; n < READS_PER_QS; n++)
			read_one(r);
		lim_quiescent_state();
	}
	lim_quiescent_state();
	rcu_unregister_thread();
	return NULL;
}

/* ---- the updater -------------------------------------------------------- */

struct writes {
	uint64_t merchants, exts, ext_dels, groups, policies, funders;
};

static void
write_one(uint64_t *seed, uint64_t v, struct writes *w)
{
	uint64_t x = xorshift(seed);
	unsigned i = (unsigned)(x >> 8);

	if (x % 16 < 10) {
		struct lim_merchant m = merchant_make(i % MERCHANTS + 1, v);

		CHECK(lim_merchant_set(db, &m) == 0);
		w->merchants++;
	} else if (x % 16 < 13) {
		unsigned e = i % EXTS;
		struct lim_user_ext u = ext_make(ext_id(e), v);

		if (x % 5 == 0) {
			int rc = lim_ext_del(db, ext_id(e));

			CHECK(rc == 0 || rc == -ENOENT);
			w->ext_dels++;
		} else {
			CHECK(lim_ext_set(db, &u) == 0);
			w->exts++;
		}
	} else if (x % 16 < 15) {
		struct lim_group g = group_make(i % GROUPS + 1, v);

		CHECK(lim_group_set(db, &g) == 0);
		w->groups++;
	} else if ((x >> 4) % 2) {
		struct lim_policy p;

		policy_make(&p, v);
		CHECK(lim_policy_set(db, &p) == 0);
		w->policies++;
	} else {
		struct lim_funder f[4];
		unsigned n = funders_make(f, lim_policy_get(db), v);

		CHECK(lim_funders_set(db, f, n) == 0);
		w->funders++;
	}
}

static int
spend_sum(const void *rec, void *arg)
{
	const struct lim_group *g = rec;

	*(uint64_t *)arg += (uint64_t)g->st->month_spend_fen;
	return 0;
}

static void
populate(void)
{
	struct lim_policy p;
	struct lim_funder f[4];

	for (uint32_t id = 1; id <= MERCHANTS; id++) {
		struct lim_merchant m = merchant_make(id, 0);

		CHECK(lim_merchant_set(db, &m) == 0);
	}
	for (uint32_t id = 1; id <= GROUPS; id++) {
		struct lim_group g = group_make(id, 0);

		CHECK(lim_group_set(db, &g) == 0);
	}
	policy_make(&p, 0);
	CHECK(lim_policy_set(db, &p) == 0);
	CHECK(lim_funders_set(db, f, funders_make(f, &p, 1)) == 0);
}

static void
test_kv_rcu_stress(void **state)
{
	static struct reader r[READERS];
	const struct lim_db_config cfg = {.users_max = 16, .ops_max = 16,
					  .merchants_max = 64, /* grows */
					  .groups_max = GROUPS, .shards = 2};
	struct timespec t0, t;
	struct writes w = {0};
	uint64_t seed = 0xdeadbeefcafef00dULL, v = 1, reads = 0, spend = 0;
	uint64_t sum = 0;

	rcu_register_thread();
	db = lim_db_create(&cfg);
	assert_non_null(db);
	populate();
	for (unsigned i = 0; i < READERS; i++) {
		r[i].seed = 0x9e3779b97f4a7c15ULL * (i + 3);
		assert_int_equal(pthread_create(&r[i].tid, NULL, reader_main,
						&r[i]), 0);
	}
	clock_gettime(CLOCK_MONOTONIC, &t0);
	do {
		for (int n = 0; n < 256; n++)
			write_one(&seed, ++v, &w);
		lim_quiescent_state(); /* the updater is a reader too */
		clock_gettime(CLOCK_MONOTONIC, &t);
	} while ((t.tv_sec - t0.tv_sec) * 1000 +
		 (t.tv_nsec - t0.tv_nsec) / 1000000 < stress_ms());
	__atomic_store_n(&stop, 1, __ATOMIC_RELAXED);
	for (unsigned i = 0; i < READERS; i++) {
		pthread_join(r[i].tid, NULL);
		reads += r[i].reads;
		spend += r[i].spend;
	}
	assert_int_equal(lim_kv_foreach(db->groups, spend_sum, &sum), 0);
	printf("kv_rcu: %llu reads, %llu spends; writes: %llu merchants, "
	       "%llu ext (%llu del), %llu groups, %llu policies, %llu funder "
	       "tables\n",
	       (unsigned long long)reads, (unsigned long long)spend,
	       (unsigned long long)w.merchants, (unsigned long long)w.exts,
	       (unsigned long long)w.ext_dels, (unsigned long long)w.groups,
	       (unsigned long long)w.policies, (unsigned long long)w.funders);
	assert_int_equal(sum, spend);
	assert_int_equal(lim_kv_count(db->merchants), MERCHANTS);
	assert_int_equal(lim_kv_count(db->groups), GROUPS);
	assert_true(reads > 0 && w.merchants > 0 && w.policies > 0);
	lim_db_free(db);
	rcu_unregister_thread();
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_kv_rcu_stress),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
