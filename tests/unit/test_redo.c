/*
 * test_redo.c - the journal redo, lim_redo (limits/redo.c): a database
 * rebuilt from a snapshot plus the journal records after it is, byte for
 * byte, the database that applied them live.
 *
 * A workload drives an engine (auth_exec_one, the hold-expiry timer, and
 * settings changes made as the control plane makes them) and records every
 * effect with its seq, as the ledger journals it: every kind appears
 * (DECIDE, AUTH, CAPTURE, VOID, REFUND, REPAY, TOMBSTONE, EXPIRE, USER_SET,
 * EXT_SET, MERCHANT_SET, GROUP_SET, FUNDER_SET, POLICY_PART). Then:
 *  - from nothing: an empty db + every record == the live db;
 *  - from quiescent snapshots at several points + the records after each;
 *  - from a snapshot saved WHILE a writer thread applies effects, so the
 *    users', entries' and groups' stamps differ inside (seq_start, seq_end]
 *    and only the stamps say which parts of those records to apply;
 *  - refusals: a seq out of order, a record that contradicts the state
 *    (nothing changes), a user the db lacks (counted).
 * Compared: every user slot, every op entry, extensions, merchants, groups
 * (configuration and month), funders and their budgets, the ceiling budget,
 * the policy and db->seq.
 */
#include <errno.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>
#include <urcu-qsbr.h>

#include "lim_fixture.h"

/* ------------------------------------------------------------------------ */
/* The recorded stream                                                        */

struct stream {
	struct lim_effect *e;
	size_t n, cap;
	uint64_t by_kind[LIM_EFF_KINDS];
};

static void
rec(struct stream *s, const void *e)
{
	if (s->n == s->cap) {
		s->cap = s->cap ? s->cap * 2 : 4096;
		s->e = realloc(s->e, s->cap * sizeof(*s->e));
		assert_non_null(s->e);
	}
	memcpy(&s->e[s->n], e, sizeof(s->e[0]));
	assert_true(s->n == 0 || s->e[s->n].seq == s->e[s->n - 1].seq + 1);
	s->by_kind[s->e[s->n].kind]++;
	s->n++;
}

static void
stream_free(struct stream *s)
{
	free(s->e);
	memset(s, 0, sizeof(*s));
}

/* ------------------------------------------------------------------------ */
/* Settings changes, made live and recorded (as ctl.c does)                   */

static struct lim_cfg_effect
cfg_of(uint8_t kind, uint64_t id, uint64_t seq, uint32_t now)
{
	struct lim_cfg_effect c;

	memset(&c, 0, sizeof(c));
	c.kind = kind;
	c.id = id;
	c.seq = seq;
	c.uid = 0;
	c.now_s = now;
	return c;
}

static void
user_cfg(struct lim_cfg_effect *c, const struct lim_user *u, bool created)
{
	c->u.user.limit_fen = u->limit_fen;
	c->u.user.self_cap_fen = u->self_cap_fen;
	c->u.user.cool_until_s = u->cool_until_s;
	c->u.user.region = u->region;
	c->u.user.tier = u->tier;
	c->u.user.flags = u->flags;
	c->u.user.risk_q = u->risk_q;
	c->u.user.created = created;
}

static void
set_user_new(struct fx *f, struct stream *s, const struct lim_user *tmpl)
{
	struct lim_cfg_effect c;
	struct lim_user *u;

	assert_int_equal(lim_users_insert(f->db->users, tmpl), 0);
	u = fx_user(f, tmpl->user_id);
	lim_user_lock(u);
	c = cfg_of(LIM_EFF_USER_SET, u->user_id, lim_seq_take(f->db), f->x.now.s);
	user_cfg(&c, u, true);
	lim_user_unlock(u);
	rec(s, &c);
}

static void
set_user_limit(struct fx *f, struct stream *s, uint64_t id, int64_t limit,
	       uint8_t risk_q)
{
	struct lim_user *u = fx_user(f, id);
	struct lim_cfg_effect c;

	lim_user_lock(u);
	u->limit_fen = limit;
	u->risk_q = risk_q;
	c = cfg_of(LIM_EFF_USER_SET, id, lim_seq_take(f->db), f->x.now.s);
	user_cfg(&c, u, false);
	lim_user_unlock(u);
	rec(s, &c);
}

static void
set_ext(struct fx *f, struct stream *s, const struct lim_user_ext *x,
	uint64_t id)
{
	struct lim_cfg_effect c = cfg_of(LIM_EFF_EXT_SET, id, 0, f->x.now.s);

	if (x->user_id)
		assert_int_equal(lim_ext_set(f->db, x), 0);
	else
		assert_int_equal(lim_ext_del(f->db, id), 0);
	c.u.ext = *x;
	c.seq = lim_seq_take(f->db);
	rec(s, &c);
}

static void
set_merchant(struct fx *f, struct stream *s, const struct lim_merchant *m)
{
	struct lim_cfg_effect c = cfg_of(LIM_EFF_MERCHANT_SET, m->merchant_id, 0,
					 f->x.now.s);

	assert_int_equal(lim_merchant_set(f->db, m), 0);
	c.u.merchant = *m;
	c.seq = lim_seq_take(f->db);
	rec(s, &c);
}

static void
set_group(struct fx *f, struct stream *s, const struct lim_group *g)
{
	struct lim_cfg_effect c = cfg_of(LIM_EFF_GROUP_SET, g->group_id, 0,
					 f->x.now.s);

	assert_int_equal(lim_group_set(f->db, g), 0);
	c.u.group.group_id = g->group_id;
	c.u.group.n_members = g->n_members;
	c.u.group.budget_fen = g->budget_fen;
	memcpy(c.u.group.members, g->members, sizeof(g->members));
	c.seq = lim_seq_take(f->db);
	rec(s, &c);
}

/* One funder slot set (appended when new), as authctl funder set does. */
static void
set_funder(struct fx *f, struct stream *s, const struct lim_funder *nf)
{
	const struct lim_funders *fs = lim_funders_get(f->db);
	struct lim_funder t[LIM_FUNDERS_MAX];
	struct lim_cfg_effect c = cfg_of(LIM_EFF_FUNDER_SET, nf->funder_id, 0,
					 f->x.now.s);
	unsigned n = fs->n, i;

	memcpy(t, fs->f, n * sizeof(t[0]));
	for (i = 0; i < n && t[i].funder_id != nf->funder_id; i++)
		;
	t[i] = *nf;
	if (i == n)
		n++;
	assert_int_equal(lim_funders_set(f->db, t, n), 0);
	c.u.funder = *nf;
	c.seq = lim_seq_take(f->db);
	rec(s, &c);
}

static void
set_policy(struct fx *f, struct stream *s, const struct lim_policy *p)
{
	const unsigned parts = (sizeof(*p) + LIM_POLICY_PART_LEN - 1) /
			       LIM_POLICY_PART_LEN;
	uint8_t raw[LIM_POLICY_PART_LEN * 8];

	assert_int_equal(lim_policy_set(f->db, p), 0);
	memset(raw, 0, sizeof(raw));
	memcpy(raw, p, sizeof(*p));
	for (unsigned i = 0; i < parts; i++) {
		struct lim_cfg_effect c = cfg_of(LIM_EFF_POLICY_PART, 0,
						 lim_seq_take(f->db), f->x.now.s);

		c.u.policy.part = (uint16_t)i;
		c.u.policy.parts = (uint16_t)parts;
		memcpy(c.u.policy.bytes, raw + i * LIM_POLICY_PART_LEN,
		       LIM_POLICY_PART_LEN);
		rec(s, &c);
	}
}

/* ------------------------------------------------------------------------ */
/* The workload                                                               */

struct work {
	struct fx *f;
	struct stream *s;
	uint64_t rng;
	uint64_t next_rid;
	uint64_t *users;
	unsigned n_users;
	uint64_t auths[512];       /* request ids of recent authorizations */
	uint64_t auth_user[512];
	unsigned n_auths;
	unsigned steps;
	volatile int *go_slow;     /* unused */
};

static uint64_t
rnd(struct work *w)
{
	w->rng = w->rng * 6364136223846793005ULL + 1442695040888963407ULL;
	return w->rng >> 33;
}

static void
on_expire(void *ctx, const struct lim_op *before, const struct lim_effect *e)
{
	(void)before;
	rec(ctx, e);
}

static void
exec_rec(struct work *w, const struct auth_req *r)
{
	struct auth_resp a;
	struct lim_effect e;

	if (fx_exec_gw(w->f, FX_GW, r, &a, &e) == AUTH_EXEC_RECORDED)
		rec(w->s, &e);
	if (r->op == LIM_OP_AUTHORIZE && a.status == AUTH_STATUS_APPROVED) {
		unsigned k = w->n_auths++ % 512;

		w->auths[k] = r->request_id;
		w->auth_user[k] = r->user_id;
	}
}

static void
step_money(struct work *w)
{
	unsigned pick = (unsigned)(rnd(w) % 100);
	uint64_t rid = w->next_rid++;
	uint64_t user = w->users[rnd(w) % w->n_users];
	int64_t amount = 100 + (int64_t)(rnd(w) % 200000);
	unsigned k = w->n_auths ? (unsigned)(rnd(w) % (w->n_auths < 512 ? w->n_auths
								       : 512))
				: 0;
	struct auth_req r;

	if (pick < 45 || !w->n_auths) {
		uint8_t prod = (uint8_t)(1 + rnd(w) % 3);

		r = fx_req(LIM_OP_AUTHORIZE, rid, user, 0, amount, prod);
		if (user == FX_UB && rnd(w) % 2)
			r.group_id = FX_G;
		if (rnd(w) % 20 == 0)
			r.merchant_id = FX_MBLOCKED; /* a decline */
	} else if (pick < 60) {
		r = fx_req(LIM_OP_CAPTURE, rid, w->auth_user[k], w->auths[k],
			   amount / 2, LIM_PRODUCT_PAYLATER);
	} else if (pick < 70) {
		r = fx_req(LIM_OP_VOID, rid, w->auth_user[k], w->auths[k],
			   rnd(w) % 2 ? 0 : amount / 4, LIM_PRODUCT_PAYLATER);
	} else if (pick < 78) {
		r = fx_req(LIM_OP_REFUND, rid, w->auth_user[k], w->auths[k],
			   amount / 8, LIM_PRODUCT_PAYLATER);
	} else if (pick < 90) {
		r = fx_req(LIM_OP_REPAY, rid, user, 0, amount / 10,
			   (uint8_t)(1 + rnd(w) % 3));
	} else if (pick < 95) {
		/* a void of an id nobody used: a tombstone */
		r = fx_req(LIM_OP_VOID, rid, user, 900000000 + rid, 0,
			   LIM_PRODUCT_PAYLATER);
	} else {
		/* a duplicate: records nothing */
		r = fx_req(LIM_OP_AUTHORIZE, w->auths[k], w->auth_user[k], 0,
			   amount, LIM_PRODUCT_PAYLATER);
	}
	/* the ref's product is the record's product for captures etc. */
	exec_rec(w, &r);
}

static void
step_settings(struct work *w)
{
	struct fx *f = w->f;
	unsigned pick = (unsigned)(rnd(w) % 6);
	uint64_t user = w->users[rnd(w) % w->n_users];

	switch (pick) {
	case 0:
		set_user_limit(f, w->s, user,
			       fx_user(f, user)->limit_fen + 1000 * (int64_t)(rnd(w) % 5),
			       (uint8_t)(rnd(w) % 200));
		break;
	case 1: {
		struct lim_user_ext x = {.user_id = FX_UEXT,
					 .temp_quota_fen = 100000 + (int64_t)(rnd(w) % 5000),
					 .cash_limit_fen = 50000,
					 .alert_fen = -1,
					 .temp_until_s = FX_T0 + 10 * FX_DAY};
		set_ext(f, w->s, &x, FX_UEXT);
		break;
	}
	case 2: {
		struct lim_merchant m = {.merchant_id = FX_M, .mcc = 5411,
					 .region = 21,
					 .risk_score = (uint16_t)(rnd(w) % 800)};
		set_merchant(f, w->s, &m);
		break;
	}
	case 3: {
		struct lim_group g = {.group_id = FX_G, .n_members = 2,
				      .budget_fen = 300000 + (int64_t)(rnd(w) % 9) * 100000,
				      .members = {FX_UA, FX_UB}};
		set_group(f, w->s, &g);
		break;
	}
	case 4: {
		struct lim_funder b = {.quota_fen = FX_BANK_QUOTA +
						    (int64_t)(rnd(w) % 1000) * 1000,
				       .funder_id = FX_BANK, .share_pct = 50,
				       .products = (1u << LIM_PRODUCT_PAYLATER) |
						   (1u << LIM_PRODUCT_INSTALLMENT)};
		set_funder(f, w->s, &b);
		break;
	}
	default: {
		struct lim_policy p = *lim_policy_get(f->db);

		p.retain_s = 8 * FX_DAY + (uint32_t)(rnd(w) % 1000);
		p.low_avail_pct = (uint8_t)(5 + rnd(w) % 10);
		set_policy(f, w->s, &p);
		break;
	}
	}
}

/* Time moves; now and then far enough for holds to lapse. */
static void
step_time(struct work *w)
{
	struct fx *f = w->f;
	struct fx_timer t = {.f = f, .shard = 1, .on_expire = on_expire,
			     .ctx = w->s};

	if (rnd(w) % 50 == 0) {
		fx_set_now(f, f->x.now.s + 8 * FX_DAY);
		while (fx_timer_run(&t, 1u << 20) >= (1u << 20))
			;
		fx_timer_run(&t, 1u << 20);
	} else {
		fx_set_now(f, f->x.now.s + (uint32_t)(rnd(w) % 40));
	}
}

static void
work_steps(struct work *w, unsigned n)
{
	for (unsigned i = 0; i < n; i++, w->steps++) {
		unsigned pick = (unsigned)(rnd(w) % 100);

		if (pick < 90)
			step_money(w);
		else if (pick < 96)
			step_settings(w);
		else
			step_time(w);
		if (i % 64 == 0)
			lim_quiescent_state();
	}
}

/* ------------------------------------------------------------------------ */
/* Comparing two databases                                                    */

static uint64_t
fnv(const void *p, size_t n, uint64_t h)
{
	const unsigned char *c = p;

	for (size_t i = 0; i < n; i++)
		h = (h ^ c[i]) * 1099511628211ULL;
	return h;
}

static int
digest_op(struct lim_op *op, void *arg)
{
	struct lim_op c = *op;

	c.next = 0;
	*(uint64_t *)arg += fnv(&c, sizeof(c), 14695981039346656037ULL);
	return 0;
}

struct kv_cmp {
	struct lim_db *other;
	int which;                 /* 0 ext, 1 merchant, 2 group */
	unsigned bad;
};

static int
kv_cmp_one(const void *rec, void *arg)
{
	struct kv_cmp *k = arg;

	if (k->which == 0) {
		const struct lim_user_ext *x = rec;
		const struct lim_user_ext *y = lim_ext_find(k->other, x->user_id);

		k->bad += !y || memcmp(x, y, sizeof(*x));
	} else if (k->which == 1) {
		const struct lim_merchant *x = rec;
		const struct lim_merchant *y = lim_merchant_find(k->other,
								 x->merchant_id);

		k->bad += !y || memcmp(x, y, sizeof(*x));
	} else {
		const struct lim_group *x = rec;
		const struct lim_group *y = lim_group_find(k->other, x->group_id);

		k->bad += !y || x->n_members != y->n_members ||
			  x->budget_fen != y->budget_fen ||
			  memcmp(x->members, y->members, sizeof(x->members)) ||
			  x->st->month_spend_fen != y->st->month_spend_fen ||
			  x->st->month_start_s != y->st->month_start_s;
	}
	return 0;
}

static void
same_kv(struct lim_db *a, struct lim_db *b, struct lim_kv *ka,
	struct lim_kv *kb, int which)
{
	struct kv_cmp k = {.other = b, .which = which};

	assert_int_equal(lim_kv_count(ka), lim_kv_count(kb));
	lim_kv_foreach(ka, kv_cmp_one, &k);
	if (k.bad)
		print_error("%u records differ (table %d)\n", k.bad, which);
	assert_int_equal(k.bad, 0);
	(void)a;
}

static void
same_db(struct lim_db *a, struct lim_db *b)
{
	const struct lim_funders *fa = lim_funders_get(a), *fb = lim_funders_get(b);
	uint64_t da = 0, db_ = 0, n = lim_users_count(a->users);

	assert_int_equal(lim_users_count(b->users), n);
	for (uint64_t i = 0; i < n; i++) {
		struct lim_user x = *lim_users_at(a->users, i), y;
		struct lim_user *p = lim_users_find(b->users, x.user_id);

		assert_non_null(p);
		y = *p;
		x.lock = y.lock = 0;
		if (memcmp(&x, &y, sizeof(x))) {
			print_error("user %llu: debt %lld/%lld holds %lld/%lld "
				    "month %lld/%lld spend_min %u/%u limit %lld/%lld\n",
				    (unsigned long long)x.user_id,
				    (long long)x.outstanding_fen,
				    (long long)y.outstanding_fen,
				    (long long)x.holds_fen, (long long)y.holds_fen,
				    (long long)x.month_spend_fen,
				    (long long)y.month_spend_fen, x.spend_min,
				    y.spend_min, (long long)x.limit_fen,
				    (long long)y.limit_fen);
			fail();
		}
	}
	assert_int_equal(lim_ops_count(a->ops), lim_ops_count(b->ops));
	lim_ops_foreach(a->ops, digest_op, &da);
	lim_ops_foreach(b->ops, digest_op, &db_);
	assert_true(da == db_);
	same_kv(a, b, a->ext, b->ext, 0);
	same_kv(a, b, a->merchants, b->merchants, 1);
	same_kv(a, b, a->groups, b->groups, 2);
	assert_memory_equal(lim_policy_get(a), lim_policy_get(b),
			    sizeof(struct lim_policy));
	assert_int_equal(fa->n, fb->n);
	assert_memory_equal(fa->f, fb->f, fa->n * sizeof(fa->f[0]));
	for (unsigned i = 0; i < fa->n; i++) {
		assert_int_equal(lim_budget_total(fa->budget[i]),
				 lim_budget_total(fb->budget[i]));
		assert_int_equal(lim_budget_free_fen(fa->budget[i]),
				 lim_budget_free_fen(fb->budget[i]));
	}
	assert_int_equal(lim_budget_total(a->cap), lim_budget_total(b->cap));
	assert_int_equal(lim_budget_free_fen(a->cap), lim_budget_free_fen(b->cap));
	assert_int_equal(a->seq, b->seq);
}

/* Everything that money records change, as one number. */
static uint64_t
db_digest(struct lim_db *db)
{
	const struct lim_funders *fs = lim_funders_get(db);
	uint64_t h = 14695981039346656037ULL, ops = 0;
	int64_t v;

	for (uint64_t i = 0; i < lim_users_count(db->users); i++) {
		struct lim_user u = *lim_users_at(db->users, i);

		u.lock = 0;
		h = fnv(&u, sizeof(u), h);
	}
	lim_ops_foreach(db->ops, digest_op, &ops);
	h = fnv(&ops, sizeof(ops), h);
	v = lim_budget_free_fen(db->cap);
	h = fnv(&v, sizeof(v), h);
	for (unsigned i = 0; i < fs->n; i++) {
		v = lim_budget_free_fen(fs->budget[i]);
		h = fnv(&v, sizeof(v), h);
	}
	return h;
}

/* Redo stream records with seq > @p from onto @p db. */
static struct lim_redo_stats
redo_all(struct lim_db *db, const struct lim_snapshot_meta *meta,
	 const struct stream *s)
{
	struct lim_redo *r = lim_redo_create(db, meta, 3);
	struct lim_redo_stats st;
	uint64_t from = meta ? meta->seq_start : 0;
	char err[256];
	int rc;

	assert_non_null(r);
	for (size_t i = 0; i < s->n; i++) {
		if (s->e[i].seq <= from)
			continue;
		rc = lim_redo(r, &s->e[i], err, sizeof(err));
		if (rc)
			print_error("redo seq %llu: %s\n",
				    (unsigned long long)s->e[i].seq, err);
		assert_int_equal(rc, 0);
	}
	rc = lim_redo_finish(r, &st, err, sizeof(err));
	if (rc)
		print_error("finish: %s\n", err);
	assert_int_equal(rc, 0);
	lim_redo_free(r);
	assert_int_equal(st.unknown_user, 0);
	assert_int_equal(st.budget_short, 0);
	assert_int_equal(st.settings_failed, 0);
	return st;
}

static const struct lim_db_config cfg = {.users_max = 4096,
					 .ops_max = 1 << 16,
					 .merchants_max = 64,
					 .groups_max = 64,
					 .shards = 4};

/* ------------------------------------------------------------------------ */
/* From nothing: every setting comes from the journal too                     */

static void
world_by_records(struct fx *f, struct stream *s, struct work *w)
{
	static uint64_t ids[FX_USERS + 20];
	const struct lim_user base[FX_USERS] = {
		{.user_id = FX_UA, .limit_fen = 1000000, .tier = 2, .region = 21},
		{.user_id = FX_UB, .limit_fen = 500000, .tier = 1, .region = 31},
		{.user_id = FX_UC, .limit_fen = 2000000, .tier = 4, .region = 21,
		 .self_cap_fen = 300000},
		{.user_id = FX_UFROZEN, .limit_fen = 1000000, .tier = 2,
		 .flags = LIM_USER_FROZEN},
		{.user_id = FX_UEXT, .limit_fen = 1000000, .tier = 2,
		 .flags = LIM_USER_EXT},
	};
	const struct lim_user_ext x = {.user_id = FX_UEXT,
				       .temp_quota_fen = 100000,
				       .cash_limit_fen = 50000, .alert_fen = -1,
				       .temp_until_s = FX_T0 + 10 * FX_DAY};
	const struct lim_merchant ms[] = {
		{.merchant_id = FX_M, .mcc = 5411, .region = 21, .risk_score = 120},
		{.merchant_id = FX_MBLOCKED, .mcc = 5411, .region = 21,
		 .flags = LIM_MERCHANT_BLOCKED},
	};
	const struct lim_group g = {.group_id = FX_G, .n_members = 2,
				    .budget_fen = 300000,
				    .members = {FX_UA, FX_UB}};
	const struct lim_funder banks[] = {
		{.quota_fen = FX_BANK_QUOTA, .funder_id = FX_BANK, .share_pct = 50,
		 .products = (1u << LIM_PRODUCT_PAYLATER) |
			     (1u << LIM_PRODUCT_INSTALLMENT)},
		{.quota_fen = FX_RBANK_QUOTA, .funder_id = FX_RBANK, .region = 31,
		 .share_pct = 60, .products = FX_ALL_PRODUCTS},
	};
	const struct lim_funder company = {.quota_fen = FX_COMPANY_QUOTA,
					   .products = FX_ALL_PRODUCTS};
	struct lim_policy p = *lim_policy_get(f->db);

	p.ceiling_fen = 50000000000LL;
	set_policy(f, s, &p);
	set_funder(f, s, &company);
	for (unsigned i = 0; i < 2; i++)
		set_funder(f, s, &banks[i]);
	for (unsigned i = 0; i < 2; i++)
		set_merchant(f, s, &ms[i]);
	for (unsigned i = 0; i < FX_USERS; i++) {
		set_user_new(f, s, &base[i]);
		ids[i] = base[i].user_id;
	}
	set_ext(f, s, &x, FX_UEXT);
	set_group(f, s, &g);
	for (unsigned i = 0; i < 20; i++) {
		struct lim_user u = {.user_id = 5000 + i,
				     .limit_fen = 300000 + 10000 * i,
				     .tier = (uint8_t)(i % 5), .region = 21};

		set_user_new(f, s, &u);
		ids[FX_USERS + i] = u.user_id;
	}
	w->users = ids;
	w->n_users = FX_USERS + 20;
}

static void
check_every_kind(const struct stream *s)
{
	for (unsigned k = LIM_EFF_DECIDE; k < LIM_EFF_KINDS; k++) {
		if (!s->by_kind[k])
			print_error("kind %u never recorded\n", k);
		assert_true(s->by_kind[k] > 0);
	}
}

static void
test_from_nothing(void **state)
{
	struct fx a, b;
	struct stream s = {0};
	struct work w = {.f = &a, .s = &s, .rng = 7, .next_rid = 1};
	struct lim_redo_stats st;

	(void)state;
	fx_init_empty(&a, cfg.users_max, cfg.ops_max, cfg.shards);
	world_by_records(&a, &s, &w);
	work_steps(&w, 6000);
	check_every_kind(&s);
	fx_init_empty(&b, cfg.users_max, cfg.ops_max, cfg.shards);
	st = redo_all(b.db, NULL, &s);
	assert_int_equal(st.records, s.n);
	assert_int_equal(st.user_in_snapshot, 0);
	assert_int_equal(st.entry_in_snapshot, 0);
	assert_int_equal(st.users_created, FX_USERS + 20);
	same_db(a.db, b.db);
	fx_fini(&a);
	fx_fini(&b);
	stream_free(&s);
}

/* ------------------------------------------------------------------------ */
/* From snapshots saved between records                                       */

static void
test_from_quiescent_snapshots(void **state)
{
	struct fx a;
	struct stream s = {0};
	struct work w = {.f = &a, .s = &s, .rng = 11, .next_rid = 1};
	char dir[] = "/tmp/test_redo.XXXXXX", path[8][64], err[512];
	uint64_t at[8];

	(void)state;
	assert_non_null(mkdtemp(dir));
	fx_init_empty(&a, cfg.users_max, cfg.ops_max, cfg.shards);
	world_by_records(&a, &s, &w);
	for (unsigned i = 0; i < 8; i++) {
		work_steps(&w, 700);
		snprintf(path[i], sizeof(path[i]), "%s/%u.snap", dir, i);
		assert_int_equal(lim_snapshot_save(a.db, path[i], err, sizeof(err)),
				 0);
		at[i] = a.db->seq;
	}
	work_steps(&w, 700);
	check_every_kind(&s);
	for (unsigned i = 0; i < 8; i++) {
		struct lim_snapshot_meta meta;
		struct lim_db *b = lim_snapshot_load(path[i], &cfg, NULL, &meta, err,
						     sizeof(err));

		assert_non_null(b);
		assert_int_equal(meta.seq_start, at[i]);
		assert_int_equal(meta.seq_end, at[i]);
		redo_all(b, &meta, &s);
		same_db(a.db, b);
		lim_snapshot_meta_free(&meta);
		lim_db_free(b);
		unlink(path[i]);
	}
	rmdir(dir);
	fx_fini(&a);
	stream_free(&s);
}

/* ------------------------------------------------------------------------ */
/* From a snapshot saved while a writer runs                                  */

#define BIG_USERS 100000u

struct writer {
	struct work w;
	int saved;                 /* atomic: the snapshot is done */
	int started;               /* atomic */
	unsigned after;            /* steps after the save */
};

static void *
writer_main(void *arg)
{
	struct writer *wr = arg;

	rcu_register_thread();
	__atomic_store_n(&wr->started, 1, __ATOMIC_RELEASE);
	while (!__atomic_load_n(&wr->saved, __ATOMIC_ACQUIRE))
		work_steps(&wr->w, 16);
	work_steps(&wr->w, wr->after);
	rcu_unregister_thread();
	return NULL;
}

static void
big_world(struct fx *f, struct stream *s, struct work *w)
{
	static uint64_t ids[FX_USERS + 64];

	fx_populate(f);
	for (unsigned i = 0; i < FX_USERS; i++)
		ids[i] = fx_user_ids[i];
	/* many users the writer never touches make the save slow enough
	 * for the writer to move many seqs while it runs; 64 it does */
	for (unsigned i = 0; i < BIG_USERS; i++) {
		struct lim_user u = {.user_id = 100000 + i,
				     .limit_fen = 500000 + 100 * (i % 1000),
				     .tier = (uint8_t)(i % 5), .region = 21};

		assert_int_equal(lim_users_insert(f->db->users, &u), 0);
		if (i % (BIG_USERS / 64) == 0 && FX_USERS + i / (BIG_USERS / 64) < FX_USERS + 64)
			ids[FX_USERS + i / (BIG_USERS / 64)] = u.user_id;
	}
	w->users = ids;
	w->n_users = FX_USERS + 64;
	(void)s;
}

static void
test_from_snapshot_under_load(void **state)
{
	static const struct lim_db_config big = {.users_max = BIG_USERS + 4096,
						 .ops_max = 1 << 18,
						 .merchants_max = 64,
						 .groups_max = 64,
						 .shards = 4};
	char dir[] = "/tmp/test_redo.XXXXXX", path[64], err[512];
	unsigned windows = 0;

	(void)state;
	assert_non_null(mkdtemp(dir));
	snprintf(path, sizeof(path), "%s/live.snap", dir);
	for (unsigned round = 0; round < 4; round++) {
		struct fx a;
		struct stream s = {0};
		struct writer wr = {.w = {.f = &a, .s = &s, .rng = 100 + round,
					  .next_rid = 1},
				    .after = 2000};
		struct lim_snapshot_meta meta;
		struct lim_redo_stats st;
		struct lim_db *b;
		pthread_t tid;

		fx_init_empty(&a, big.users_max, big.ops_max, big.shards);
		big_world(&a, &s, &wr.w);
		work_steps(&wr.w, 3000);
		assert_int_equal(pthread_create(&tid, NULL, writer_main, &wr), 0);
		while (!__atomic_load_n(&wr.started, __ATOMIC_ACQUIRE))
			usleep(100);
		usleep(2000);
		assert_int_equal(lim_snapshot_save(a.db, path, err, sizeof(err)), 0);
		__atomic_store_n(&wr.saved, 1, __ATOMIC_RELEASE);
		rcu_thread_offline();
		assert_int_equal(pthread_join(tid, NULL), 0);
		rcu_thread_online();
		b = lim_snapshot_load(path, &big, NULL, &meta, err, sizeof(err));
		assert_non_null(b);
		st = redo_all(b, &meta, &s);
		same_db(a.db, b);
		print_message("round %u: window (%llu, %llu], %llu records; "
			      "users applied %llu / in snapshot %llu, entries "
			      "in snapshot %llu, refs in snapshot %llu\n", round,
			      (unsigned long long)meta.seq_start,
			      (unsigned long long)meta.seq_end,
			      (unsigned long long)st.records,
			      (unsigned long long)st.user_applied,
			      (unsigned long long)st.user_in_snapshot,
			      (unsigned long long)st.entry_in_snapshot,
			      (unsigned long long)st.ref_in_snapshot);
		if (meta.seq_end > meta.seq_start && st.user_in_snapshot > 0)
			windows++;
		lim_snapshot_meta_free(&meta);
		lim_db_free(b);
		fx_fini(&a);
		stream_free(&s);
	}
	/* the point of the test: stamps inside the window did matter */
	assert_true(windows >= 1);
	unlink(path);
	rmdir(dir);
}

/* ------------------------------------------------------------------------ */
/* Refusals                                                                   */

static void
test_refusals(void **state)
{
	struct fx a, b;
	struct stream s = {0};
	struct work w = {.f = &a, .s = &s, .rng = 5, .next_rid = 1};
	struct lim_redo *r;
	struct lim_effect e;
	char err[256];
	size_t i;

	(void)state;
	fx_init_empty(&a, cfg.users_max, cfg.ops_max, cfg.shards);
	world_by_records(&a, &s, &w);
	work_steps(&w, 300);
	fx_init_empty(&b, cfg.users_max, cfg.ops_max, cfg.shards);
	r = lim_redo_create(b.db, NULL, 3);
	for (i = 0; i < s.n && s.e[i].kind != LIM_EFF_CAPTURE; i++)
		assert_int_equal(lim_redo(r, &s.e[i], err, sizeof(err)), 0);
	assert_true(i < s.n);
	/* out of order */
	e = s.e[i];
	e.seq++;
	assert_int_equal(lim_redo(r, &e, err, sizeof(err)), -ERANGE);
	assert_non_null(strstr(err, "expected"));
	/* a capture larger than the hold it names: nothing changes */
	{
		uint64_t before = db_digest(b.db);

		e = s.e[i];
		e.amount_fen += 1000000000;
		e.d_outstanding_fen += 1000000000;
		assert_int_equal(lim_redo(r, &e, err, sizeof(err)), -EBADMSG);
		assert_non_null(strstr(err, "does not fit"));
		assert_true(db_digest(b.db) == before);
	}
	/* a repay larger than the debt */
	e = s.e[i];
	e.kind = LIM_EFF_REPAY;
	e.op = LIM_OP_REPAY;
	e.ref_id = 0;
	e.request_id = 777777777;
	e.d_outstanding_fen = -1000000000000LL;
	e.d_holds_fen = 0;
	e.d_bucket_fen = 0;
	e.product = LIM_PRODUCT_PAYLATER;
	assert_int_equal(lim_redo(r, &e, err, sizeof(err)), -EBADMSG);
	assert_non_null(strstr(err, "invalid"));
	/* a kind out of range */
	e = s.e[i];
	e.kind = LIM_EFF_KINDS;
	assert_int_equal(lim_redo(r, &e, err, sizeof(err)), -EINVAL);
	/* the real record still applies, and the rest */
	for (; i < s.n; i++)
		assert_int_equal(lim_redo(r, &s.e[i], err, sizeof(err)), 0);
	assert_int_equal(lim_redo_next_seq(r), s.e[s.n - 1].seq + 1);
	lim_redo_free(r);
	/* a user the db lacks is counted, not fatal */
	{
		struct lim_redo_stats st;

		r = lim_redo_create(b.db, NULL, 3);
		e = s.e[s.n - 1];
		e.seq = 1;
		e.kind = LIM_EFF_REPAY;
		e.user_id = 424242;
		assert_int_equal(lim_redo(r, &e, err, sizeof(err)), 0);
		lim_redo_finish(r, &st, err, sizeof(err));
		assert_int_equal(st.unknown_user, 1);
		lim_redo_free(r);
	}
	fx_fini(&a);
	fx_fini(&b);
	stream_free(&s);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_from_nothing),
		cmocka_unit_test(test_from_quiescent_snapshots),
		cmocka_unit_test(test_from_snapshot_under_load),
		cmocka_unit_test(test_refusals),
	};
	int rc;

	rcu_register_thread();
	rc = cmocka_run_group_tests(tests, NULL, NULL);
	rcu_unregister_thread();
	return rc;
}
