/*
 * gen.c - the synthetic base: users, merchants, groups and funders shaped
 * like the domain brief (shared/docs/domain.md), deterministic from a seed.
 *
 * Every attribute of user i comes from its own random stream (splitmix64
 * seeded from the seed and i), so a user does not depend on the order of
 * generation or on the number of users, and a load generator can enumerate
 * the same ids (lim_gen_user_id()) without building the base. Distributions
 * are integer tables (no floating point: the base must be the same on every
 * machine and money is never a double):
 *
 * - ids: a seeded permutation of 1 .. 2^63-1 (lim_gen_user_id()), so they are
 *   unique, spread over the range and fit a signed 64-bit column;
 * - tiers: 32% new users in tiers 0-1, 58% in 2-4, 10% in 5-7;
 * - limits: a log-normal-like table of round amounts from 500 to 50,000
 *   yuan, capped by tier (new users get less);
 * - regions: 300 codes, weight ~ 1/(rank + 10) (a few big cities);
 * - 60% set a monthly self cap below their limit (a quarter of them soft),
 *   5% have a temporary quota for 30 days from cfg->now_s, 0.2% frozen;
 * - 1% of users (index % 100 == 37) are in groups of 2-6 with a monthly
 *   budget;
 * - merchants: 10% offer interest-free installments (3/6, or 3/6/12),
 *   0.1% blocked;
 * - funders: the company's own book (quota = ceiling), one national bank
 *   (70% share) and three regional banks (one region each, 50-70%).
 */
#include <errno.h>
#include <string.h>

#include "lim_pvt.h"

#define YUAN 100LL
#define GEN_REGIONS 300
#define GEN_TEMP_DAYS 30
#define GEN_CHUNK 65536u
#define GEN_PROGRESS (1u << 20)
#define M63 ((1ULL << 63) - 1)
#define M31 ((1ULL << 31) - 1)

#define P(product) (1u << (product))
#define ALL_PRODUCTS                                                           \
	(P(LIM_PRODUCT_PAYLATER) | P(LIM_PRODUCT_INSTALLMENT) | P(LIM_PRODUCT_CASH))

/* ---- ids ---------------------------------------------------------------- */

/* A bijection of [0, 2^63): xor-shifts and odd multipliers modulo 2^63. */
static uint64_t
mix63(uint64_t x)
{
	x ^= x >> 31;
	x = (x * 0x7fb5d329728ea185ULL) & M63;
	x ^= x >> 27;
	x = (x * 0x81dadef4bc2dd44dULL) & M63;
	return x ^ (x >> 33);
}

/* A bijection of [0, 2^31). */
static uint64_t
mix31(uint64_t x)
{
	x ^= x >> 16;
	x = (x * 0x45d9f3bULL) & M31;
	x ^= x >> 15;
	x = (x * 0x2c1b3c6dULL) & M31;
	return x ^ (x >> 16);
}

/*
 * The seeded permutation P(x) = mix63(x ^ K) of [0, 2^63), K from the seed,
 * restricted to [1, 2^63) by cycle walking (apply P again while the value
 * is 0), which keeps it a permutation. User i is P'(i + 1).
 */
uint64_t
lim_gen_user_id(uint64_t seed, uint64_t index)
{
	uint64_t k = lim_mix64(seed) & M63;
	uint64_t y = mix63(((index + 1) & M63) ^ k);

	while (y == 0)
		y = mix63(y ^ k);
	return y;
}

uint32_t
lim_gen_merchant_id(uint64_t seed, uint64_t index)
{
	uint64_t k = lim_mix64(seed ^ 0x6d65726368616e74ULL) & M31;
	uint64_t y = mix31(((index + 1) & M31) ^ k);

	while (y == 0)
		y = mix31(y ^ k);
	return (uint32_t)y;
}

uint64_t
lim_gen_merchants(const struct lim_gen_config *cfg)
{
	uint64_t m = cfg->merchants ? cfg->merchants : cfg->users / 10;

	return m < 100 ? 100 : m;
}

/* ---- random streams and tables ----------------------------------------- */

struct rng {
	uint64_t s;
};

static struct rng
rng_for(uint64_t seed, uint64_t stream, uint64_t index)
{
	struct rng r = {lim_mix64(seed ^ lim_mix64(stream ^ (index << 8)))};

	return r;
}

static uint64_t
rng_next(struct rng *r)
{
	r->s += 0x9e3779b97f4a7c15ULL;
	return lim_mix64(r->s);
}

/* Uniform in [0, n), n > 0 (multiply-shift: no modulo bias worth noting). */
static uint64_t
rng_below(struct rng *r, uint64_t n)
{
	return (uint64_t)(((unsigned __int128)rng_next(r) * n) >> 64);
}

/* True with probability num / den. */
static bool
rng_chance(struct rng *r, uint64_t num, uint64_t den)
{
	return rng_below(r, den) < num;
}

struct weighted {
	int64_t value;
	uint32_t weight;
};

static int64_t
pick(struct rng *r, const struct weighted *t, unsigned n)
{
	uint64_t total = 0, u;

	for (unsigned i = 0; i < n; i++)
		total += t[i].weight;
	u = rng_below(r, total);
	for (unsigned i = 0; i < n; i++) {
		if (u < t[i].weight)
			return t[i].value;
		u -= t[i].weight;
	}
	return t[n - 1].value;
}

#define PICK(r, t) pick((r), (t), sizeof(t) / sizeof((t)[0]))

/* Credit limits in yuan: a log-normal-like shape around 3,000-5,000. */
static const struct weighted limit_yuan[] = {
	{500, 30},   {800, 35},   {1000, 60},  {1200, 30},  {1500, 60},
	{2000, 80},  {2500, 60},  {3000, 85},  {3500, 50},  {4000, 75},
	{5000, 80},  {6000, 55},  {8000, 50},  {10000, 50}, {12000, 30},
	{15000, 30}, {20000, 25}, {25000, 12}, {30000, 10}, {40000, 6},
	{50000, 5},
};

static const struct weighted tier_w[LIM_TIERS] = {
	{0, 15}, {1, 17}, {2, 25}, {3, 20}, {4, 13}, {5, 5}, {6, 3}, {7, 2},
};

/* New users get less: the largest limit per tier, in yuan. */
static const int64_t tier_cap_yuan[LIM_TIERS] = {
	2000, 5000, 20000, 30000, 50000, 50000, 50000, 50000,
};

static const uint16_t mccs[] = {
	5411, 5812, 5732, 5651, 5311, 5541, 5912, 4121,
	5999, 7011, 4511, 5945, 5977, 8299, 4814, 5814,
};

struct gen {
	const struct lim_gen_config *cfg;
	uint64_t region_total;
	uint32_t region_cum[GEN_REGIONS];  /* cumulative weights */
};

static void
gen_init(struct gen *g, const struct lim_gen_config *cfg)
{
	uint64_t sum = 0;

	g->cfg = cfg;
	for (unsigned k = 0; k < GEN_REGIONS; k++) {
		sum += 1000000u / (k + 10);
		g->region_cum[k] = (uint32_t)sum;
	}
	g->region_total = sum;
}

/* Region 1 .. GEN_REGIONS, skewed towards the small codes. */
static uint16_t
pick_region(const struct gen *g, struct rng *r)
{
	uint64_t u = rng_below(r, g->region_total);
	unsigned lo = 0, hi = GEN_REGIONS - 1;

	while (lo < hi) {
		unsigned mid = (lo + hi) / 2;

		if (u < g->region_cum[mid])
			hi = mid;
		else
			lo = mid + 1;
	}
	return (uint16_t)(lo + 1);
}

/* Round @p fen down to a multiple of @p step fen, at least @p step. */
static int64_t
round_down(int64_t fen, int64_t step)
{
	int64_t v = fen / step * step;

	return v < step ? step : v;
}

/* ---- users -------------------------------------------------------------- */

static void
gen_user(const struct gen *g, uint64_t i, struct lim_user *u,
	 struct lim_user_ext *x, bool *has_ext)
{
	struct rng r = rng_for(g->cfg->seed, 1, i);
	int64_t limit;

	memset(u, 0, sizeof(*u));
	u->user_id = lim_gen_user_id(g->cfg->seed, i);
	u->tier = (uint8_t)PICK(&r, tier_w);
	limit = PICK(&r, limit_yuan);
	if (u->tier >= 5) { /* long history: the better of two draws */
		int64_t b = PICK(&r, limit_yuan);

		limit = b > limit ? b : limit;
	}
	if (limit > tier_cap_yuan[u->tier])
		limit = tier_cap_yuan[u->tier];
	u->limit_fen = limit * YUAN;
	u->region = pick_region(g, &r);
	if (rng_chance(&r, 60, 100)) {
		int64_t pct = 30 + (int64_t)rng_below(&r, 61); /* 30..90% */

		u->self_cap_fen = round_down(u->limit_fen * pct / 100, 100 * YUAN);
		if (u->self_cap_fen >= u->limit_fen)
			u->self_cap_fen = 0; /* a 100-yuan limit: no cap below */
		if (u->self_cap_fen && rng_chance(&r, 1, 4))
			u->flags |= LIM_USER_SOFT_CAP;
	}
	if (rng_chance(&r, 2, 1000))
		u->flags |= LIM_USER_FROZEN;
	if (rng_chance(&r, 970, 1000))
		u->risk_q = (uint8_t)rng_below(&r, 13);
	else if (rng_chance(&r, 5, 6))
		u->risk_q = (uint8_t)(13 + rng_below(&r, 88));
	else
		u->risk_q = (uint8_t)(100 + rng_below(&r, 151));
	*has_ext = rng_chance(&r, 5, 100);
	if (!*has_ext)
		return;
	u->flags |= LIM_USER_EXT;
	memset(x, 0, sizeof(*x));
	x->user_id = u->user_id;
	x->temp_quota_fen = round_down(
		u->limit_fen * (10 + (int64_t)rng_below(&r, 41)) / 100,
		100 * YUAN);
	x->temp_until_s = g->cfg->now_s + GEN_TEMP_DAYS * 86400u;
	x->cash_limit_fen = -1;
	x->alert_fen = -1;
}

static int
gen_users(struct lim_db *db, const struct gen *g,
	  void (*progress)(uint64_t, uint64_t), char *err, size_t errlen)
{
	uint64_t n = g->cfg->users, next = GEN_PROGRESS, done;
	struct lim_user *buf = malloc(GEN_CHUNK * sizeof(*buf));
	int rc = 0;

	if (!buf)
		return -ENOMEM;
	for (uint64_t i = 0; i < n && !rc; i += GEN_CHUNK) {
		uint64_t k = n - i < GEN_CHUNK ? n - i : GEN_CHUNK;

		for (done = 0; done < k; done++) {
			struct lim_user_ext x;
			bool has_ext;

			gen_user(g, i + done, &buf[done], &x, &has_ext);
			if (has_ext && (rc = lim_ext_set(db, &x)) != 0)
				break;
		}
		if (!rc)
			rc = lim_users_insert_bulk(db->users, buf, k, &done);
		if (rc)
			snprintf(err, errlen, "user index %llu: %s",
				 (unsigned long long)(i + done), strerror(-rc));
		if (progress && i + k >= next) {
			progress(i + k, n);
			next += GEN_PROGRESS;
		}
		if ((i / GEN_CHUNK) % 16 == 15)
			lim_quiescent_state(); /* let the ext table's frees run */
	}
	free(buf);
	return rc;
}

/* ---- groups, merchants, funders ---------------------------------------- */

/* Users with index % 100 == 37, in consecutive groups of 2..6. */
static int
gen_groups(struct lim_db *db, const struct gen *g)
{
	uint64_t i = 37;
	uint32_t gid = 0;
	int rc = 0;

	while (i < g->cfg->users && !rc) {
		struct rng r = rng_for(g->cfg->seed, 2, gid);
		struct lim_group grp;
		unsigned want = 2 + (unsigned)rng_below(&r, 5);

		memset(&grp, 0, sizeof(grp));
		grp.group_id = ++gid;
		while (grp.n_members < want && i < g->cfg->users) {
			grp.members[grp.n_members++] =
				lim_gen_user_id(g->cfg->seed, i);
			i += 100;
		}
		if (grp.n_members < 2)
			break; /* a lone leftover is no group */
		grp.budget_fen = (1000 + 500 * (int64_t)rng_below(&r, 19)) * YUAN;
		rc = lim_group_set(db, &grp);
	}
	return rc;
}

static int
gen_merchants(struct lim_db *db, const struct gen *g)
{
	uint64_t n = lim_gen_merchants(g->cfg);
	int rc = 0;

	for (uint64_t i = 0; i < n && !rc; i++) {
		struct rng r = rng_for(g->cfg->seed, 3, i);
		struct lim_merchant m;

		memset(&m, 0, sizeof(m));
		m.merchant_id = lim_gen_merchant_id(g->cfg->seed, i);
		m.mcc = mccs[rng_below(&r, sizeof(mccs) / sizeof(mccs[0]))];
		m.region = pick_region(g, &r);
		m.risk_score = rng_chance(&r, 99, 100)
				       ? (uint16_t)rng_below(&r, 200)
				       : (uint16_t)(500 + rng_below(&r, 501));
		if (rng_chance(&r, 10, 100))
			m.subsidy = rng_chance(&r, 60, 100)
					    ? LIM_SUBSIDY_3 | LIM_SUBSIDY_6
					    : LIM_SUBSIDY_3 | LIM_SUBSIDY_6 |
						      LIM_SUBSIDY_12;
		if (rng_chance(&r, 1, 1000))
			m.flags |= LIM_MERCHANT_BLOCKED;
		rc = lim_merchant_set(db, &m);
		if (i % (1u << 20) == (1u << 20) - 1)
			lim_quiescent_state();
	}
	return rc;
}

static int
gen_funders(struct lim_db *db)
{
	const int64_t billion = 1000000000LL * YUAN;
	const unsigned bank = P(LIM_PRODUCT_PAYLATER) |
			      P(LIM_PRODUCT_INSTALLMENT);
	const struct lim_funder f[] = {
		{.quota_fen = lim_policy_get(db)->ceiling_fen, .funder_id = 0,
		 .products = ALL_PRODUCTS},
		{.quota_fen = 30 * billion, .funder_id = 1, .share_pct = 70,
		 .products = bank},
		{.quota_fen = 2 * billion, .funder_id = 2, .region = 1,
		 .share_pct = 50, .products = ALL_PRODUCTS},
		{.quota_fen = 3 * billion / 2, .funder_id = 3, .region = 2,
		 .share_pct = 60, .products = ALL_PRODUCTS},
		{.quota_fen = 1 * billion, .funder_id = 4, .region = 3,
		 .share_pct = 70, .products = bank},
	};

	return lim_funders_set(db, f, sizeof(f) / sizeof(f[0]));
}

int
lim_gen_fill(struct lim_db *db, const struct lim_gen_config *cfg,
	     void (*progress)(uint64_t done, uint64_t total), char *err,
	     size_t errlen)
{
	struct gen g;
	int rc;

	if (cfg->users == 0 || cfg->users > lim_users_capacity(db->users) -
						    lim_users_count(db->users)) {
		snprintf(err, errlen, "%llu users do not fit the table (%llu "
			 "free slots)", (unsigned long long)cfg->users,
			 (unsigned long long)(lim_users_capacity(db->users) -
					      lim_users_count(db->users)));
		return -ENOSPC;
	}
	gen_init(&g, cfg);
	rc = gen_funders(db);
	if (rc) {
		snprintf(err, errlen, "funder table: %s", strerror(-rc));
		return rc;
	}
	rc = gen_users(db, &g, progress, err, errlen);
	if (rc)
		return rc;
	rc = gen_groups(db, &g);
	if (!rc)
		rc = gen_merchants(db, &g);
	if (rc)
		snprintf(err, errlen, "groups or merchants: %s", strerror(-rc));
	return rc;
}
