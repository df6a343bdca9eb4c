/*
 * lim_fixture.h - shared test helpers: times in UTC+8, a small database with
 * a few users, merchants, groups and funders, a request builder,
 * auth_exec_one() through the user table, the hold-expiry timer, and a full-state snapshot
 * with exact comparison and money invariants.
 *
 * Header-only (each test is one executable). The calling thread must be a
 * registered QSBR reader, online (rcu_register_thread() in main), as for
 * any lookup in a lim_db. Assertions are cmocka's.
 */
#ifndef LIM_FIXTURE_H
#define LIM_FIXTURE_H

#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "auth.h"
#include "lim.h"

/* ------------------------------------------------------------------------ */
/* Time                                                                       */

#define FX_TZ (8 * 3600)
#define FX_T0 1793332800u /* 2026-10-30 12:00:00 +08:00 */
#define FX_DAY 86400u

/* Days since 1970-01-01 of a civil date (Howard Hinnant's algorithm). */
static inline int64_t
fx_days_from_civil(int64_t y, unsigned m, unsigned d)
{
	int64_t era;
	unsigned yoe, doy, doe;

	y -= m <= 2;
	era = (y >= 0 ? y : y - 399) / 400;
	yoe = (unsigned)(y - era * 400);
	doy = (153 * (m > 2 ? m - 3 : m + 9) + 2) / 5 + d - 1;
	doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
	return era * 146097 + (int64_t)doe - 719468;
}

/* Unix seconds of a wall-clock time in UTC+8. */
static inline uint32_t
fx_local8(int y, unsigned mo, unsigned d, unsigned h, unsigned mi, unsigned s)
{
	return (uint32_t)(fx_days_from_civil(y, mo, d) * 86400 + h * 3600 +
			  mi * 60 + s - FX_TZ);
}

/* ------------------------------------------------------------------------ */
/* The standard world                                                         */

#define FX_ALL_PRODUCTS                                                        \
	((1u << LIM_PRODUCT_PAYLATER) | (1u << LIM_PRODUCT_INSTALLMENT) |      \
	 (1u << LIM_PRODUCT_CASH))

enum {
	FX_GW = 9,
	FX_GW2 = 10,
	/* users */
	FX_UA = 1001,      /* tier 2, 10,000 yuan, region 21 */
	FX_UB = 1002,      /* tier 1, 5,000 yuan, region 31; in group 77 */
	FX_UC = 1003,      /* tier 4, 20,000 yuan, self cap 3,000 yuan */
	FX_UFROZEN = 1004, /* frozen */
	FX_UEXT = 1005,    /* temporary quota of 1,000 yuan, cash override */
	FX_UNOBODY = 999999,
	/* merchants */
	FX_M = 5001,       /* plain, risk 120 */
	FX_MBLOCKED = 5002,
	FX_MSUBSIDY = 5003, /* pays the interest of 3, 6 and 12 terms */
	FX_MRISKY = 5004,  /* risk 950 */
	/* groups */
	FX_G = 77,         /* FX_UA and FX_UB, 3,000 yuan a month */
	FX_G2 = 78,        /* FX_UC alone, 500 yuan a month */
	/* funders */
	FX_BANK = 11,      /* national, 50%, pay later and installments */
	FX_RBANK = 12,     /* region 31, 60%, every product */
};

#define FX_USERS 5
#define FX_GROUPS 2
#define FX_COMPANY_QUOTA 1000000000LL /* 10 million yuan */
#define FX_BANK_QUOTA 100000000LL
#define FX_RBANK_QUOTA 100000000LL

static const uint64_t fx_user_ids[FX_USERS] = {FX_UA, FX_UB, FX_UC,
					       FX_UFROZEN, FX_UEXT};
static const uint32_t fx_group_ids[FX_GROUPS] = {FX_G, FX_G2};

struct fx {
	struct lim_db *db;
	struct auth_exec x;
};

static inline void
fx_set_now(struct fx *f, uint32_t unix_s)
{
	auth_now_set(&f->x.now, unix_s, lim_policy_get(f->db)->tz_offset_s);
}

static inline struct lim_user *
fx_user(struct fx *f, uint64_t user_id)
{
	return lim_users_find(f->db->users, user_id);
}

static inline void
fx_add_user(struct fx *f, const struct lim_user *u)
{
	assert_int_equal(lim_users_insert(f->db->users, u), 0);
}

/* The standard world: users, merchants, groups, funders. */
static inline void
fx_populate(struct fx *f)
{
	struct lim_db *db = f->db;
	const struct lim_user users[FX_USERS] = {
		{.user_id = FX_UA, .limit_fen = 1000000, .tier = 2,
		 .region = 21, .risk_q = 10},
		{.user_id = FX_UB, .limit_fen = 500000, .tier = 1,
		 .region = 31, .risk_q = 5},
		{.user_id = FX_UC, .limit_fen = 2000000, .tier = 4,
		 .region = 21, .self_cap_fen = 300000},
		{.user_id = FX_UFROZEN, .limit_fen = 1000000, .tier = 2,
		 .region = 21, .flags = LIM_USER_FROZEN},
		{.user_id = FX_UEXT, .limit_fen = 1000000, .tier = 2,
		 .region = 21, .flags = LIM_USER_EXT},
	};
	const struct lim_user_ext ext = {.user_id = FX_UEXT,
					 .temp_quota_fen = 100000,
					 .cash_limit_fen = 50000,
					 .alert_fen = -1,
					 .temp_until_s = FX_T0 + 10 * FX_DAY};
	const struct lim_merchant merchants[] = {
		{.merchant_id = FX_M, .mcc = 5411, .region = 21,
		 .risk_score = 120},
		{.merchant_id = FX_MBLOCKED, .mcc = 5411, .region = 21,
		 .flags = LIM_MERCHANT_BLOCKED},
		{.merchant_id = FX_MSUBSIDY, .mcc = 5732, .region = 21,
		 .subsidy = LIM_SUBSIDY_3 | LIM_SUBSIDY_6 | LIM_SUBSIDY_12},
		{.merchant_id = FX_MRISKY, .mcc = 6051, .region = 31,
		 .risk_score = 950},
	};
	const struct lim_group groups[FX_GROUPS] = {
		{.group_id = FX_G, .n_members = 2, .budget_fen = 300000,
		 .members = {FX_UA, FX_UB}},
		{.group_id = FX_G2, .n_members = 1, .budget_fen = 50000,
		 .members = {FX_UC}},
	};
	const struct lim_funder funders[] = {
		{.quota_fen = FX_COMPANY_QUOTA, .funder_id = 0,
		 .products = FX_ALL_PRODUCTS},
		{.quota_fen = FX_BANK_QUOTA, .funder_id = FX_BANK,
		 .share_pct = 50,
		 .products = (1u << LIM_PRODUCT_PAYLATER) |
			     (1u << LIM_PRODUCT_INSTALLMENT)},
		{.quota_fen = FX_RBANK_QUOTA, .funder_id = FX_RBANK,
		 .region = 31, .share_pct = 60, .products = FX_ALL_PRODUCTS},
	};

	for (unsigned i = 0; i < FX_USERS; i++)
		fx_add_user(f, &users[i]);
	assert_int_equal(lim_ext_set(db, &ext), 0);
	for (unsigned i = 0; i < sizeof(merchants) / sizeof(merchants[0]); i++)
		assert_int_equal(lim_merchant_set(db, &merchants[i]), 0);
	for (unsigned i = 0; i < FX_GROUPS; i++)
		assert_int_equal(lim_group_set(db, &groups[i]), 0);
	assert_int_equal(lim_funders_set(db, funders,
					 sizeof(funders) / sizeof(funders[0])),
			 0);
}

/* An empty database (default policy and funders) of the given sizes. */
static inline void
fx_init_empty(struct fx *f, uint64_t users_max, uint64_t ops_max,
	      unsigned shards)
{
	const struct lim_db_config cfg = {.users_max = users_max,
					  .ops_max = ops_max,
					  .merchants_max = 64,
					  .groups_max = 64,
					  .shards = shards};

	memset(f, 0, sizeof(*f));
	f->db = lim_db_create(&cfg);
	assert_non_null(f->db);
	f->x.db = f->db;
	f->x.shard = 0;
	fx_set_now(f, FX_T0);
}

static inline void
fx_init(struct fx *f, uint64_t ops_max)
{
	fx_init_empty(f, 64, ops_max, 4);
	fx_populate(f);
}

static inline void
fx_fini(struct fx *f)
{
	lim_db_free(f->db);
	memset(f, 0, sizeof(*f));
}

/* ------------------------------------------------------------------------ */
/* Requests                                                                   */

static inline struct auth_req
fx_req(uint8_t op, uint64_t request_id, uint64_t user_id, uint64_t ref_id,
       int64_t amount, uint8_t product)
{
	struct auth_req r = {.request_id = request_id,
			     .user_id = user_id,
			     .ref_id = ref_id,
			     .amount = amount,
			     .merchant_id = op == LIM_OP_REPAY ? 0 : FX_M,
			     .mcc = 5411,
			     .region = 21,
			     .op = op,
			     .product = product,
			     .terms = product == LIM_PRODUCT_INSTALLMENT ? 6 : 0,
			     .channel = AUTH_CHANNEL_APP,
			     .device_id = 0x1234};
	return r;
}

/* Decide and apply @p r from @p gw; the user found through the table. */
static inline enum auth_exec_rc
fx_exec_gw(struct fx *f, uint32_t gw, const struct auth_req *r,
	   struct auth_resp *resp, struct lim_effect *eff)
{
	struct lim_user *u = r->user_id ? fx_user(f, r->user_id) : NULL;
	struct lim_effect scratch;

	return auth_exec_one(&f->x, gw, r, u, resp, eff ? eff : &scratch);
}

static inline struct auth_resp
fx_exec(struct fx *f, const struct auth_req *r)
{
	struct auth_resp a;

	memset(&a, 0xa5, sizeof(a));
	fx_exec_gw(f, FX_GW, r, &a, NULL);
	return a;
}

/* ------------------------------------------------------------------------ */
/* The hold-expiry timer, as the ledger worker runs it                        */

struct fx_timer {
	struct fx *f;
	unsigned shard;
	bool reclaim;          /* also remove entries past retain_until_s */
	unsigned expired, reclaimed;
	void *ctx;
	/* called after an expiry was applied: the entry before, the effect */
	void (*on_expire)(void *ctx, const struct lim_op *before,
			  const struct lim_effect *e);
	/* called before an entry is removed */
	void (*on_reclaim)(void *ctx, const struct lim_op *op);
};

static inline void
fx_timer_cb(const struct lim_op *copy, void *arg)
{
	struct fx_timer *t = arg;
	struct lim_db *db = t->f->db;
	const struct auth_now *now = &t->f->x.now;
	struct lim_user *u = fx_user(t->f, copy->user_id);
	struct lim_op *op, before;
	struct lim_effect e;

	if (!u)
		return;
	lim_user_lock(u);
	op = lim_ops_find(db->ops, copy->gateway_id, copy->request_id);
	if (op && op->user_id == copy->user_id) {
		before = *op;
		if (auth_expire(op, u, now, &e)) {
			const struct lim_group *g =
				op->group_id ? lim_group_find(db, op->group_id)
					     : NULL;
			int rc;

			if (g)
				lim_group_lock(g->st);
			rc = lim_apply(db, t->shard, u, g, op, &e);
			if (g)
				lim_group_unlock(g->st);
			assert_int_equal(rc, 0);
			t->expired++;
			if (t->on_expire)
				t->on_expire(t->ctx, &before, &e);
		} else if (t->reclaim && op->state != LIM_OPS_HELD &&
			   op->retain_until_s <= now->s) {
			if (t->on_reclaim)
				t->on_reclaim(t->ctx, op);
			lim_ops_remove(db->ops, op);
			t->reclaimed++;
		}
	}
	lim_user_unlock(u);
}

/* One timer pass over at most @p budget slots at the fixture's "now". */
static inline unsigned
fx_timer_run(struct fx_timer *t, unsigned budget)
{
	return lim_ops_scan(t->f->db->ops, t->f->x.now.s, budget, fx_timer_cb,
			    t);
}

/* Expire every lapsed hold now (complete sweeps); returns how many. */
static inline unsigned
fx_expire_all(struct fx *f)
{
	struct fx_timer t = {.f = f};

	/* a pass may resume mid-store: two full sweeps cover everything */
	for (int i = 0; i < 2; i++)
		while (fx_timer_run(&t, 1u << 30) >= (1u << 30))
			;
	return t.expired;
}

/* ------------------------------------------------------------------------ */
/* Full state: snapshot, exact comparison, money invariants                   */

struct fx_state {
	uint64_t n_users;
	struct lim_user users[FX_USERS + 8];
	uint64_t ops_count;
	uint64_t ops_digest;
	int64_t cap_free, cap_total;
	unsigned n_funders;
	int64_t funder_free[LIM_FUNDERS_MAX];
	struct lim_group_state groups[FX_GROUPS];
	uint64_t seq;
};

static inline uint64_t
fx_fnv(const void *p, size_t n, uint64_t h)
{
	const unsigned char *c = p;

	for (size_t i = 0; i < n; i++)
		h = (h ^ c[i]) * 1099511628211ULL;
	return h;
}

static inline int
fx_digest_op(struct lim_op *op, void *arg)
{
	struct lim_op c = *op;

	c.next = 0; /* store-internal */
	*(uint64_t *)arg += fx_fnv(&c, sizeof(c), 14695981039346656037ULL);
	return 0;
}

static inline void
fx_state_take(struct fx *f, struct fx_state *s)
{
	struct lim_db *db = f->db;
	const struct lim_funders *fs = lim_funders_get(db);

	memset(s, 0, sizeof(*s));
	s->n_users = lim_users_count(db->users);
	assert_true(s->n_users <= sizeof(s->users) / sizeof(s->users[0]));
	for (uint64_t i = 0; i < s->n_users; i++) {
		s->users[i] = *lim_users_at(db->users, i);
		s->users[i].lock = 0;
	}
	s->ops_count = lim_ops_count(db->ops);
	lim_ops_foreach(db->ops, fx_digest_op, &s->ops_digest);
	s->cap_free = lim_budget_free_fen(db->cap);
	s->cap_total = lim_budget_total(db->cap);
	s->n_funders = fs->n;
	for (unsigned i = 0; i < fs->n; i++)
		s->funder_free[i] = lim_budget_free_fen(fs->budget[i]);
	for (unsigned i = 0; i < FX_GROUPS; i++) {
		const struct lim_group *g = lim_group_find(db, fx_group_ids[i]);

		if (g) {
			s->groups[i] = *g->st;
			s->groups[i].lock = 0;
		}
	}
	s->seq = __atomic_load_n(&db->seq, __ATOMIC_RELAXED);
}

#define FX_SAME(field, a, b)                                                   \
	do {                                                                   \
		if ((long long)(a) != (long long)(b)) {                        \
			print_error("state changed: %s: %lld -> %lld\n",       \
				    field, (long long)(a), (long long)(b));    \
			_fail(file, line);                                     \
		}                                                              \
	} while (0)

static inline void
fx_state_same_(const struct fx_state *a, const struct fx_state *b,
	       const char *file, int line)
{
	FX_SAME("users", a->n_users, b->n_users);
	for (uint64_t i = 0; i < a->n_users; i++) {
		const struct lim_user *x = &a->users[i], *y = &b->users[i];

		FX_SAME("user.outstanding", x->outstanding_fen, y->outstanding_fen);
		FX_SAME("user.holds", x->holds_fen, y->holds_fen);
		FX_SAME("user.cash", x->cash_fen, y->cash_fen);
		FX_SAME("user.inst", x->inst_fen, y->inst_fen);
		FX_SAME("user.month_spend", x->month_spend_fen, y->month_spend_fen);
		FX_SAME("user.spend_min", x->spend_min, y->spend_min);
		FX_SAME("user.vel_min_n", x->vel_min_n, y->vel_min_n);
		FX_SAME("user.vel_day_n", x->vel_day_n, y->vel_day_n);
		FX_SAME("user.cool_until", x->cool_until_s, y->cool_until_s);
		if (memcmp(x, y, sizeof(*x)) != 0) {
			print_error("state changed: user %llu slot bytes\n",
				    (unsigned long long)x->user_id);
			_fail(file, line);
		}
	}
	FX_SAME("ops.count", a->ops_count, b->ops_count);
	FX_SAME("ops.digest", a->ops_digest, b->ops_digest);
	FX_SAME("cap.free", a->cap_free, b->cap_free);
	FX_SAME("cap.total", a->cap_total, b->cap_total);
	FX_SAME("funders", a->n_funders, b->n_funders);
	for (unsigned i = 0; i < a->n_funders; i++)
		FX_SAME("funder.free", a->funder_free[i], b->funder_free[i]);
	for (unsigned i = 0; i < FX_GROUPS; i++) {
		FX_SAME("group.month_spend", a->groups[i].month_spend_fen,
			b->groups[i].month_spend_fen);
		FX_SAME("group.month_start", a->groups[i].month_start_s,
			b->groups[i].month_start_s);
	}
	FX_SAME("seq", a->seq, b->seq);
}

#define fx_state_same(a, b) fx_state_same_((a), (b), __FILE__, __LINE__)

/* Sums over the op store, for the invariants. */
struct fx_ops_sums {
	int64_t held;                     /* open holds */
	int64_t company;                  /* the company's book in use */
	int64_t bank[LIM_FUNDERS_MAX];    /* by funder slot */
	const struct lim_funders *fs;
	bool bad;
};

static inline int
fx_sum_op(struct lim_op *op, void *arg)
{
	struct fx_ops_sums *s = arg;
	int64_t alive;

	if (op->state == LIM_OPS_HELD)
		s->held += op->held_fen;
	if (op->held_fen < 0 || op->captured_fen < 0 || op->refunded_fen < 0 ||
	    op->refunded_fen > op->captured_fen || op->funder_fen < 0)
		s->bad = true;
	if (op->op != LIM_OP_AUTHORIZE || op->status != AUTH_STATUS_APPROVED ||
	    op->state == LIM_OPS_TOMBSTONE)
		return 0;
	alive = op->held_fen + op->captured_fen - op->refunded_fen;
	s->company += alive - op->funder_fen;
	for (unsigned i = 1; i < s->fs->n; i++)
		if (s->fs->f[i].funder_id == op->funder_id)
			s->bank[i] += op->funder_fen;
	return 0;
}

/*
 * Money invariants of a quiescent database: balances never negative; open
 * holds in the store == users' holds; ceiling in use == sum of debt and
 * holds; with @p all_entries (no entry was ever reclaimed), every funder's
 * quota in use == its part of the loans in the store.
 */
static inline void
fx_check_money_(struct fx *f, bool all_entries, const char *file, int line)
{
	struct lim_db *db = f->db;
	struct fx_ops_sums s = {.fs = lim_funders_get(db)};
	int64_t holds = 0, exposure = 0;
	uint64_t n = lim_users_count(db->users);

	for (uint64_t i = 0; i < n; i++) {
		const struct lim_user *u = lim_users_at(db->users, i);

		if (u->outstanding_fen < 0 || u->holds_fen < 0 ||
		    u->cash_fen < 0 || u->inst_fen < 0 ||
		    u->cash_fen + u->inst_fen > u->outstanding_fen ||
		    u->month_spend_fen < 0) {
			print_error("user %llu: negative or inconsistent balance\n",
				    (unsigned long long)u->user_id);
			_fail(file, line);
		}
		holds += u->holds_fen;
		exposure += u->outstanding_fen + u->holds_fen;
	}
	lim_ops_foreach(db->ops, fx_sum_op, &s);
	if (s.bad) {
		print_error("an op entry has a negative book\n");
		_fail(file, line);
	}
	FX_SAME("open holds in ops vs users", s.held, holds);
	FX_SAME("ceiling in use vs debt+holds",
		lim_budget_total(db->cap) - lim_budget_free_fen(db->cap),
		exposure);
	if (!all_entries)
		return;
	FX_SAME("company book in use",
		lim_budget_total(s.fs->budget[0]) -
			lim_budget_free_fen(s.fs->budget[0]),
		s.company);
	for (unsigned i = 1; i < s.fs->n; i++)
		FX_SAME("bank quota in use",
			lim_budget_total(s.fs->budget[i]) -
				lim_budget_free_fen(s.fs->budget[i]),
			s.bank[i]);
}

#define fx_check_money(f, all) fx_check_money_((f), (all), __FILE__, __LINE__)

/* Quota of funder @p funder_id in use (total - free). */
static inline int64_t
fx_funder_used(struct fx *f, uint16_t funder_id)
{
	const struct lim_funders *fs = lim_funders_get(f->db);

	for (unsigned i = 0; i < fs->n; i++)
		if (fs->f[i].funder_id == funder_id)
			return lim_budget_total(fs->budget[i]) -
			       lim_budget_free_fen(fs->budget[i]);
	fail_msg("no funder %u", funder_id);
	return -1;
}

static inline int64_t
fx_cap_used(struct fx *f)
{
	return lim_budget_total(f->db->cap) - lim_budget_free_fen(f->db->cap);
}

#endif /* LIM_FIXTURE_H */
