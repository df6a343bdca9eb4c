/*
 * test_model.c - the engine against a small independent model, op by op.
 *
 * The model below is written from docs/rules.md alone, with its own plain
 * structs and its own arithmetic: it does not call auth_decide(), lim_apply()
 * or anything else of auth/ and limits/ (only fx_local8() for the start
 * time and libc's gmtime_r/timegm for calendar months). A random sequence of
 * operations (fixed seed) runs through auth_exec_one() against a real
 * lim_db and through the model; after every operation the answers must be
 * identical byte for byte, and the touched user's balances, the lending
 * ceiling, every funder's quota and every group's month spend must agree.
 * Every CHECK_EVERY operations (and at the end) the whole op store is
 * compared entry by entry, and the money invariants are checked.
 *
 * The sequence: ~200 users of every tier, a few merchants (plain, blocked,
 * subsidising, risky, unknown), groups, joint-lending funders with quotas;
 * authorizations of every product (valid and invalid terms), captures,
 * voids, refunds and repayments naming good, wrong, foreign and unknown
 * references, duplicates (resent requests), reversals before originals,
 * malformed records, bursts in one minute, control-plane changes (limits,
 * freezes, risk verdicts, temporary quotas, merchants, groups, quotas,
 * policy), and time advancing across minutes, days and month boundaries
 * in UTC+8 with the hold-expiry timer running incrementally
 * (auth_expire() + lim_apply(), as the ledger worker does) and reclaiming
 * old ids.
 *
 * Environment: AUTHD_MODEL_OPS (default 1,000,000), AUTHD_MODEL_SEED
 * (default 0x5eed). The run prints what it did.
 *
 * Readings of docs/rules.md taken where the text leaves room (reported to
 * the team): "x% of y" is rounded down to whole fen (cash limit, the
 * installment linkage, LOW_AVAILABLE, the bank's part); a regional funder
 * compares its region with the user's region (the user record), not with
 * the request's region field; REVERSED and UNKNOWN_USER answers carry risk
 * score 0; a record of an unknown user is UNKNOWN_USER even when its id was
 * seen or tombstoned; a replayed answer echoes the record's user_id (they
 * differ only when a gateway reuses an id for another user). The model has
 * one clock (the engine's threads and their skew are stress_exec's and
 * test_lifecycle's business).
 */
#include <inttypes.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <cmocka.h>
#include <urcu-qsbr.h>

#include "auth.h"
#include "lim_fixture.h"

#define MODEL_OPS_DEFAULT 1000000 /* ~2 s in Debug, ~4 s under ASan */
#define MODEL_SEED_DEFAULT 0x5eedULL

#define N_USERS 200
#define N_MERCHANTS 6
#define N_GROUPS 4
#define N_FUNDERS 5
#define CHECK_EVERY 4096
#define SCAN_PER_OP 96
#define RING 8192
#define TOMBS 512
#define RECENT 8

#define TZ (8 * 3600)
#define GW_A 9
#define GW_B 10

/* ------------------------------------------------------------------------ */
/* Random numbers                                                             */

static uint64_t rng;

static uint64_t
rnd(void)
{
	uint64_t z = (rng += 0x9e3779b97f4a7c15ULL);

	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
	return z ^ (z >> 31);
}

static uint64_t
below(uint64_t n)
{
	return n ? rnd() % n : 0;
}

static bool
chance(unsigned per_mille)
{
	return below(1000) < per_mille;
}

/* log-uniform in [1, hi] */
static int64_t
logu(int64_t hi)
{
	unsigned bits = 0;
	int64_t v;

	if (hi <= 1)
		return 1;
	while (bits < 62 && (1LL << bits) <= hi)
		bits++;
	v = (int64_t)(below(1ULL << below(bits + 1)) + 1);
	return v > hi ? hi : v;
}

/* ------------------------------------------------------------------------ */
/* The model: state                                                           */

struct m_user {
	uint64_t id;
	int64_t limit, self_cap;
	uint8_t tier, risk_q;
	uint16_t region;
	bool frozen, soft, has_ext;
	int64_t temp, cash_override, alert;
	uint32_t temp_until;
	int64_t pl, inst, cash, holds; /* debts by product, open holds */
	uint32_t cool_until;
	uint32_t min_key, day_key, month_key;
	unsigned min_n, day_n;
	int64_t min_fen, day_fen, month_spend;
	uint32_t group;
	struct {
		uint32_t gw;
		uint64_t rid;
	} recent[RECENT];
	unsigned n_recent;
};

struct m_merchant {
	uint32_t id;
	uint16_t risk;
	bool blocked;
	uint8_t subsidy;
	uint16_t mcc;
};

struct m_group {
	uint32_t id;
	int64_t budget;
	uint64_t members[LIM_GROUP_MEMBERS_MAX];
	unsigned n;
	uint32_t month_key;
	int64_t spend;
};

struct m_funder {
	uint16_t id, region;
	uint8_t share, products;
	int64_t quota, used, base_quota;
};

enum { M_DECIDED = 1, M_HELD, M_CAPTURED, M_CLOSED, M_TOMB };

struct m_op {
	uint32_t gw;
	uint64_t rid, user;
	uint8_t state, op, product, terms, own;
	bool auth_ok; /* an approved authorization */
	uint16_t funder;
	uint32_t group, created, hold_expires, captured_at;
	int64_t held, captured, refunded, funder_fen;
	struct auth_resp answer;
	uint32_t next;
};

static struct model {
	struct lim_policy pol;
	struct m_user users[N_USERS];
	struct m_merchant merchants[N_MERCHANTS];
	struct m_group groups[N_GROUPS];
	struct m_funder funders[N_FUNDERS];
	int64_t ceiling, ceiling_used, base_ceiling;
	uint64_t seq;
	uint32_t now, cur_min, cur_day, cur_month;
	/* ops: chained hash over a pool */
	struct m_op *pool;
	uint32_t pool_n, pool_cap, free_head, live;
	uint32_t *bucket;
} M;

/* Appointments: a capture or void of a hold at exactly its expiry (or one
 * second before); time stops there when it gets that far. */
#define APPTS 64
static struct {
	uint32_t at, gw;
	uint64_t rid, user;
} appts[APPTS];
static unsigned appts_n;

#define NIL UINT32_MAX
#define BUCKETS (1u << 18)

/* ------------------------------------------------------------------------ */
/* The model: time                                                            */

static uint32_t
m_day_start(uint32_t t)
{
	int64_t l = (int64_t)t + TZ;

	return (uint32_t)(l / 86400 * 86400 - TZ);
}

static uint32_t
m_month_start(uint32_t t)
{
	time_t l = (time_t)t + TZ;
	struct tm tm;

	gmtime_r(&l, &tm);
	tm.tm_mday = 1;
	tm.tm_hour = tm.tm_min = tm.tm_sec = 0;
	return (uint32_t)(timegm(&tm) - TZ);
}

static void
m_set_now(uint32_t t)
{
	uint32_t day = m_day_start(t);

	if (day != M.cur_day || M.cur_month == 0)
		M.cur_month = m_month_start(t);
	M.cur_day = day;
	M.now = t;
	M.cur_min = t / 60;
}

/* ------------------------------------------------------------------------ */
/* The model: op map                                                          */

static uint32_t
m_hash(uint32_t gw, uint64_t rid)
{
	uint64_t z = rid * 0x9e3779b97f4a7c15ULL ^ gw * 0xc2b2ae3d27d4eb4fULL;

	z ^= z >> 29;
	z *= 0xbf58476d1ce4e5b9ULL;
	return (uint32_t)(z >> 32) & (BUCKETS - 1);
}

static struct m_op *
m_find(uint32_t gw, uint64_t rid)
{
	for (uint32_t i = M.bucket[m_hash(gw, rid)]; i != NIL; i = M.pool[i].next)
		if (M.pool[i].gw == gw && M.pool[i].rid == rid)
			return &M.pool[i];
	return NULL;
}

static struct m_op *
m_insert(uint32_t gw, uint64_t rid, uint64_t user)
{
	uint32_t i, h = m_hash(gw, rid);
	struct m_op *o;

	assert_null(m_find(gw, rid));
	if (M.free_head != NIL) {
		i = M.free_head;
		M.free_head = M.pool[i].next;
	} else {
		if (M.pool_n == M.pool_cap) {
			M.pool_cap = M.pool_cap ? M.pool_cap * 2 : 65536;
			M.pool = realloc(M.pool, M.pool_cap * sizeof(*M.pool));
			assert_non_null(M.pool);
		}
		i = M.pool_n++;
	}
	o = &M.pool[i];
	memset(o, 0, sizeof(*o));
	o->gw = gw;
	o->rid = rid;
	o->user = user;
	o->created = M.now;
	o->next = M.bucket[h];
	M.bucket[h] = i;
	M.live++;
	return o;
}

static void
m_delete(struct m_op *o)
{
	uint32_t idx = (uint32_t)(o - M.pool), *p = &M.bucket[m_hash(o->gw, o->rid)];

	while (*p != idx) {
		assert_true(*p != NIL);
		p = &M.pool[*p].next;
	}
	*p = o->next;
	o->state = 0;
	o->next = M.free_head;
	M.free_head = idx;
	M.live--;
}

/* ------------------------------------------------------------------------ */
/* The model: lookups and derived values                                      */

static struct m_user *
m_user(uint64_t id)
{
	return id >= 1 && id <= N_USERS ? &M.users[id - 1] : NULL;
}

static struct m_merchant *
m_merchant(uint32_t id)
{
	for (unsigned i = 0; i < N_MERCHANTS; i++)
		if (M.merchants[i].id == id)
			return &M.merchants[i];
	return NULL;
}

static struct m_group *
m_group(uint32_t id)
{
	for (unsigned i = 0; i < N_GROUPS; i++)
		if (M.groups[i].id == id)
			return &M.groups[i];
	return NULL;
}

static int64_t
m_debt(const struct m_user *u)
{
	return u->pl + u->inst + u->cash;
}

static int64_t
m_temp(const struct m_user *u)
{
	return u->has_ext && M.now < u->temp_until ? u->temp : 0;
}

static int64_t
m_avail(const struct m_user *u)
{
	return u->limit + m_temp(u) - m_debt(u) - u->holds;
}

static int64_t
m_month(const struct m_user *u)
{
	return u->month_key == M.cur_month ? u->month_spend : 0;
}

static int64_t
m_gspend(const struct m_group *g)
{
	return g->month_key == M.cur_month ? g->spend : 0;
}

static int64_t
m_cap_left(const struct m_user *u, int64_t spend)
{
	if (u->self_cap <= 0)
		return -1;
	return spend < u->self_cap ? u->self_cap - spend : 0;
}

static unsigned
m_risk(const struct m_user *u, const struct m_merchant *m)
{
	unsigned s = u->risk_q * 4u;

	if (m && m->risk > s)
		s = m->risk;
	return s > 1000 ? 1000 : s;
}

static int64_t *
m_bucket(struct m_user *u, unsigned product)
{
	return product == LIM_PRODUCT_CASH	  ? &u->cash
	       : product == LIM_PRODUCT_INSTALLMENT ? &u->inst
						    : &u->pl;
}

static bool
m_member(const struct m_group *g, uint64_t uid)
{
	for (unsigned i = 0; i < g->n; i++)
		if (g->members[i] == uid)
			return true;
	return false;
}

static int64_t
pct(int64_t x, unsigned p)
{
	return x * (int64_t)p / 100; /* rounded down: x >= 0 here */
}

/* ------------------------------------------------------------------------ */
/* The model: rules                                                           */

/* docs/rules.md section 1. */
static bool
m_malformed(const struct auth_req *r)
{
	bool needs_ref = r->op >= LIM_OP_CAPTURE && r->op <= LIM_OP_REFUND;

	if (r->op < 1 || r->op > 5 || r->product < 1 || r->product > 3 ||
	    r->channel < 1 || r->channel > 3)
		return true;
	if (r->request_id == 0 || r->user_id == 0)
		return true;
	if (r->reserved0 || r->reserved1)
		return true;
	if (r->amount < 0 || (r->amount == 0 && r->op != LIM_OP_VOID))
		return true;
	if (r->merchant_id == 0 && r->op != LIM_OP_REPAY)
		return true;
	if (needs_ref ? r->ref_id == 0 : r->ref_id != 0)
		return true;
	return false;
}

static void
m_answer_base(const struct auth_req *r, struct auth_resp *a)
{
	memset(a, 0, sizeof(*a));
	a->request_id = r->request_id;
	a->user_id = r->user_id;
	a->op = r->op;
	a->status = AUTH_STATUS_DECLINED;
	a->self_cap_left = -1;
}

/* Remember a decided request (for DUPLICATE) and journal it. */
static struct m_op *
m_record(uint32_t gw, const struct auth_req *r, const struct auth_resp *a)
{
	struct m_op *o = m_insert(gw, r->request_id, r->user_id);

	o->state = M_DECIDED;
	o->op = r->op;
	o->product = r->product;
	o->terms = r->terms;
	o->answer = *a;
	M.seq++;
	return o;
}

static void
m_decline(uint32_t gw, const struct auth_req *r, struct m_user *u,
	  const struct m_merchant *m, uint8_t why, struct auth_resp *a)
{
	a->status = AUTH_STATUS_DECLINED;
	a->reason = why;
	a->available = m_avail(u);
	a->self_cap_left = m_cap_left(u, m_month(u));
	a->risk_score = m_risk(u, m);
	m_record(gw, r, a);
}

/* Release x of the loan in @p o back to the quotas, in proportion. */
static void
m_funders_release(struct m_op *o, int64_t x)
{
	int64_t alive = o->held + o->captured - o->refunded, keep, bank;
	struct m_funder *bankf = NULL;

	if (x <= 0)
		return;
	assert_true(x <= alive);
	for (unsigned i = 1; i < N_FUNDERS; i++)
		if (M.funders[i].id == o->funder && o->funder != 0)
			bankf = &M.funders[i];
	keep = (int64_t)((__int128)o->funder_fen * (alive - x) / alive);
	bank = o->funder_fen - keep;
	o->funder_fen = keep;
	if (bankf) {
		bankf->used -= bank;
		M.funders[0].used -= x - bank;
	} else {
		M.funders[0].used -= x;
	}
}

/* A released hold gives back its month spend, the user's and the group's,
 * when it was placed this month. Returns the user's give-back. */
static int64_t
m_give_back(struct m_user *u, const struct m_op *o, int64_t released)
{
	struct m_group *g;

	if (released <= 0 || o->created < M.cur_month)
		return 0;
	assert_int_equal(u->month_key, M.cur_month);
	u->month_spend -= released;
	g = o->group ? m_group(o->group) : NULL;
	if (g && g->month_key == M.cur_month)
		g->spend -= released;
	return released;
}

static bool
m_velocity(const struct m_user *u, const struct lim_tier *t, int64_t amount)
{
	unsigned min_n = u->min_key == M.cur_min ? u->min_n : 0;
	unsigned day_n = u->day_key == M.cur_day ? u->day_n : 0;
	int64_t min_fen = u->min_key == M.cur_min ? u->min_fen : 0;
	int64_t day_fen = u->day_key == M.cur_day ? u->day_fen : 0;

	if (t->vel_min_n && min_n >= t->vel_min_n)
		return true;
	if (t->vel_day_n && day_n >= t->vel_day_n)
		return true;
	if (t->vel_min_fen && amount > t->vel_min_fen - min_fen)
		return true;
	if (t->vel_day_fen && amount > t->vel_day_fen - day_fen)
		return true;
	return false;
}

/* Rule 3.14: -1 when no funder fits, else the slot. */
static int
m_pick_funder(const struct m_user *u, unsigned product, int64_t amount)
{
	struct m_funder *c = &M.funders[0];
	int64_t own_room = c->quota - c->used;

	for (int i = 1; i < N_FUNDERS; i++) {
		const struct m_funder *f = &M.funders[i];
		int64_t bank = amount * f->share / 100;

		if (!(f->products & (1u << product)))
			continue;
		if (f->region != 0 && f->region != u->region)
			continue;
		if (100 - f->share < M.pol.own_share_min_pct)
			continue;
		if (bank > f->quota - f->used || amount - bank > own_room)
			continue;
		return i;
	}
	if ((c->products & (1u << product)) && amount <= own_room)
		return 0;
	return -1;
}

static void
m_authorize(uint32_t gw, const struct auth_req *r, struct m_user *u,
	    const struct m_merchant *m, struct auth_resp *a)
{
	const struct lim_tier *t = &M.pol.tier[u->tier];
	int64_t amount = r->amount, avail = m_avail(u), spend = m_month(u);
	struct m_group *g = r->group_id ? m_group(r->group_id) : NULL;
	uint8_t notes = 0;
	int slot;
	struct m_op *o;

	if (u->frozen)
		return m_decline(gw, r, u, m, AUTH_REASON_USER_FROZEN, a);
	if (r->product == LIM_PRODUCT_INSTALLMENT
		    ? !(r->terms == 3 || r->terms == 6 || r->terms == 12)
		    : r->terms != 0)
		return m_decline(gw, r, u, m, AUTH_REASON_TERM_INVALID, a);
	if (!(t->products & (1u << r->product)) || r->terms > t->max_terms)
		return m_decline(gw, r, u, m, AUTH_REASON_RISK_TIER, a);
	if (m ? m->blocked : !M.pol.unknown_merchant_ok)
		return m_decline(gw, r, u, m, AUTH_REASON_MERCHANT_BLOCKED, a);
	if (M.pol.risk_decline && m_risk(u, m) >= M.pol.risk_decline)
		return m_decline(gw, r, u, m, AUTH_REASON_RISK_CASHOUT, a);
	if (r->group_id && (!g || !m_member(g, u->id)))
		return m_decline(gw, r, u, m, AUTH_REASON_UNKNOWN_GROUP, a);
	if (m_velocity(u, t, amount))
		return m_decline(gw, r, u, m, AUTH_REASON_RISK_VELOCITY, a);
	if (r->product == LIM_PRODUCT_CASH && M.now < u->cool_until)
		return m_decline(gw, r, u, m, AUTH_REASON_COOLING_OFF, a);
	if (amount > avail)
		return m_decline(gw, r, u, m, AUTH_REASON_INSUFFICIENT_LIMIT, a);
	/* from here amount <= avail: sums with it cannot overflow */
	if (r->product == LIM_PRODUCT_CASH) {
		int64_t lim = u->cash_override >= 0 && u->has_ext
				      ? u->cash_override
				      : pct(u->limit, t->cash_pct);

		lim -= pct(u->inst, M.pol.inst_cash_pct);
		if (u->cash + amount > lim)
			return m_decline(gw, r, u, m, AUTH_REASON_CASH_LIMIT, a);
	}
	if (u->self_cap > 0 && spend + amount > u->self_cap) {
		if (!u->soft)
			return m_decline(gw, r, u, m, AUTH_REASON_OVER_SELF_CAP,
					 a);
		notes |= AUTH_NOTE_OVER_SELF_CAP_SOFT;
	}
	if (g && m_gspend(g) + amount > g->budget)
		return m_decline(gw, r, u, m, AUTH_REASON_GROUP_LIMIT, a);
	if (amount > M.ceiling - M.ceiling_used)
		return m_decline(gw, r, u, m, AUTH_REASON_GLOBAL_CAP, a);
	slot = m_pick_funder(u, r->product, amount);
	if (slot < 0)
		return m_decline(gw, r, u, m, AUTH_REASON_NO_FUNDER, a);

	/* Approved: the answer. */
	{
		int64_t alert = u->has_ext && u->alert >= 0 ? u->alert
							    : t->large_spend_fen;
		uint8_t sub = r->terms == 3 ? LIM_SUBSIDY_3
			      : r->terms == 6 ? LIM_SUBSIDY_6
			      : r->terms == 12 ? LIM_SUBSIDY_12 : 0;

		if (alert > 0 && amount >= alert)
			notes |= AUTH_NOTE_LARGE_SPEND;
		if (avail - amount < pct(u->limit, M.pol.low_avail_pct))
			notes |= AUTH_NOTE_LOW_AVAILABLE;
		if (amount > avail - m_temp(u))
			notes |= AUTH_NOTE_TEMP_QUOTA_USED;
		if (r->product == LIM_PRODUCT_INSTALLMENT && m &&
		    (m->subsidy & sub))
			notes |= AUTH_NOTE_INTEREST_FREE;
	}
	a->status = AUTH_STATUS_APPROVED;
	a->reason = AUTH_REASON_APPROVED;
	a->amount = amount;
	a->available = avail - amount;
	a->notes = notes;
	a->funder_id = M.funders[slot].id;
	a->own_share_pct = (uint8_t)(slot ? 100 - M.funders[slot].share : 100);
	a->risk_score = m_risk(u, m);
	a->self_cap_left = m_cap_left(u, spend + amount);
	if (r->product != LIM_PRODUCT_CASH)
		a->hold_expires = M.now + M.pol.hold_ttl_s;
	a->ledger_seq = M.seq + 1;

	/* Approved: the books. */
	o = m_record(gw, r, a);
	o->auth_ok = true;
	o->group = r->group_id;
	o->funder = a->funder_id;
	o->own = a->own_share_pct;
	o->hold_expires = a->hold_expires;
	o->funder_fen = slot ? amount * M.funders[slot].share / 100 : 0;
	M.funders[slot].used += o->funder_fen;
	M.funders[0].used += amount - o->funder_fen;
	M.ceiling_used += amount;
	if (u->min_key != M.cur_min) {
		u->min_key = M.cur_min;
		u->min_n = 0;
		u->min_fen = 0;
	}
	if (u->day_key != M.cur_day) {
		u->day_key = M.cur_day;
		u->day_n = 0;
		u->day_fen = 0;
	}
	if (u->month_key != M.cur_month) {
		u->month_key = M.cur_month;
		u->month_spend = 0;
	}
	u->min_n++;
	u->day_n++;
	u->min_fen += amount;
	u->day_fen += amount;
	u->month_spend += amount;
	if (g) {
		if (g->month_key != M.cur_month) {
			g->month_key = M.cur_month;
			g->spend = 0;
		}
		g->spend += amount;
	}
	if (r->product == LIM_PRODUCT_CASH) {
		o->state = M_CAPTURED;
		o->captured = amount; /* not refundable: no refund window */
		u->cash += amount;
		if (M.now + M.pol.cool_cash_s > u->cool_until)
			u->cool_until = M.now + M.pol.cool_cash_s;
	} else {
		o->state = M_HELD;
		o->held = amount;
		u->holds += amount;
	}
	if (r->product != LIM_PRODUCT_CASH && appts_n < APPTS && chance(100)) {
		appts[appts_n].at = o->hold_expires - (uint32_t)below(2);
		appts[appts_n].gw = gw;
		appts[appts_n].rid = r->request_id;
		appts[appts_n].user = u->id;
		appts_n++;
	}
	if (u->n_recent < RECENT)
		u->n_recent++;
	memmove(&u->recent[1], &u->recent[0],
		(RECENT - 1) * sizeof(u->recent[0]));
	u->recent[0].gw = gw;
	u->recent[0].rid = r->request_id;
}

/* Rules 4.1-4.3: the ref of a capture/void/refund, or a decline. */
static struct m_op *
m_ref(uint32_t gw, const struct auth_req *r, struct m_user *u,
      const struct m_merchant *m, struct auth_resp *a)
{
	struct m_op *ref = m_find(gw, r->ref_id);

	if (!ref && r->op != LIM_OP_CAPTURE) {
		struct m_op *t;

		/* 4.1: UNKNOWN_REF and a tombstone under ref_id */
		m_decline(gw, r, u, m, AUTH_REASON_UNKNOWN_REF, a);
		t = m_insert(gw, r->ref_id, u->id);
		t->state = M_TOMB;
		return NULL;
	}
	if (!ref || ref->user != u->id || ref->state == M_TOMB) {
		m_decline(gw, r, u, m, AUTH_REASON_UNKNOWN_REF, a);
		return NULL;
	}
	if (!ref->auth_ok) {
		m_decline(gw, r, u, m, AUTH_REASON_BAD_STATE, a);
		return NULL;
	}
	return ref;
}

static void
m_approve_ref(uint32_t gw, const struct auth_req *r, struct m_user *u,
	      const struct m_merchant *m, const struct m_op *ref,
	      int64_t amount, int64_t avail_after, struct auth_resp *a)
{
	a->status = AUTH_STATUS_APPROVED;
	a->reason = AUTH_REASON_APPROVED;
	a->amount = amount;
	a->available = avail_after;
	a->funder_id = ref->funder;
	a->own_share_pct = ref->own;
	a->risk_score = m_risk(u, m);
	a->self_cap_left = m_cap_left(u, m_month(u));
	a->ledger_seq = M.seq + 1;
	m_record(gw, r, a);
}

static bool
m_hold_open(const struct m_op *ref)
{
	return ref->state == M_HELD && M.now < ref->hold_expires;
}

static void
m_capture(uint32_t gw, const struct auth_req *r, struct m_user *u,
	  const struct m_merchant *m, struct auth_resp *a)
{
	struct m_op *ref = m_ref(gw, r, u, m, a);
	int64_t released, avail;

	if (!ref)
		return;
	if (ref->product == LIM_PRODUCT_CASH || !m_hold_open(ref) ||
	    r->amount > ref->held)
		return m_decline(gw, r, u, m, AUTH_REASON_BAD_STATE, a);
	avail = m_avail(u);
	released = ref->held - r->amount;
	m_funders_release(ref, released);
	M.ceiling_used -= released;
	u->holds -= ref->held;
	*m_bucket(u, ref->product) += r->amount;
	m_give_back(u, ref, released);
	ref->captured = r->amount;
	ref->held = 0;
	ref->state = M_CAPTURED;
	ref->captured_at = M.now;
	m_approve_ref(gw, r, u, m, ref, r->amount, avail + released, a);
}

static void
m_void(uint32_t gw, const struct auth_req *r, struct m_user *u,
       const struct m_merchant *m, struct auth_resp *a)
{
	struct m_op *ref = m_ref(gw, r, u, m, a);
	int64_t x, avail;

	if (!ref)
		return;
	if (ref->product == LIM_PRODUCT_CASH || !m_hold_open(ref) ||
	    r->amount > ref->held)
		return m_decline(gw, r, u, m, AUTH_REASON_BAD_STATE, a);
	x = r->amount ? r->amount : ref->held;
	avail = m_avail(u);
	m_funders_release(ref, x);
	M.ceiling_used -= x;
	u->holds -= x;
	m_give_back(u, ref, x);
	ref->held -= x;
	if (ref->held == 0)
		ref->state = M_CLOSED;
	else
		a->hold_expires = ref->hold_expires; /* the rest stays held */
	m_approve_ref(gw, r, u, m, ref, x, avail + x, a);
}

static void
m_refund(uint32_t gw, const struct auth_req *r, struct m_user *u,
	 const struct m_merchant *m, struct auth_resp *a)
{
	struct m_op *ref = m_ref(gw, r, u, m, a);
	int64_t cut, avail, *debt;

	if (!ref)
		return;
	if (ref->product == LIM_PRODUCT_CASH || ref->state != M_CAPTURED ||
	    r->amount > ref->captured - ref->refunded)
		return m_decline(gw, r, u, m, AUTH_REASON_BAD_STATE, a);
	avail = m_avail(u);
	debt = m_bucket(u, ref->product);
	cut = r->amount < *debt ? r->amount : *debt;
	*debt -= cut;
	M.ceiling_used -= cut;
	m_funders_release(ref, r->amount);
	ref->refunded += r->amount;
	if (ref->refunded == ref->captured)
		ref->state = M_CLOSED;
	m_approve_ref(gw, r, u, m, ref, r->amount, avail + cut, a);
}

static void
m_repay(uint32_t gw, const struct auth_req *r, struct m_user *u,
	const struct m_merchant *m, struct auth_resp *a)
{
	int64_t *debt = m_bucket(u, r->product), avail = m_avail(u);

	if (r->amount > *debt)
		return m_decline(gw, r, u, m, AUTH_REASON_BAD_STATE, a);
	*debt -= r->amount;
	M.ceiling_used -= r->amount;
	a->status = AUTH_STATUS_APPROVED;
	a->reason = AUTH_REASON_APPROVED;
	a->amount = r->amount;
	a->available = avail + r->amount;
	a->risk_score = m_risk(u, m);
	a->self_cap_left = m_cap_left(u, m_month(u));
	a->ledger_seq = M.seq + 1;
	m_record(gw, r, a);
}

/* The expected answer to @p r from @p gw; the model's state moves. */
static void
m_exec(uint32_t gw, const struct auth_req *r, struct auth_resp *a)
{
	struct m_user *u;
	const struct m_merchant *m;
	struct m_op *d;

	m_answer_base(r, a);
	if (m_malformed(r)) {
		a->status = AUTH_STATUS_ERROR;
		a->reason = AUTH_REASON_MALFORMED;
		return;
	}
	u = m_user(r->user_id);
	if (!u) {
		a->reason = AUTH_REASON_UNKNOWN_USER;
		return;
	}
	m = r->merchant_id ? m_merchant(r->merchant_id) : NULL;
	d = m_find(gw, r->request_id);
	if (d && d->state == M_TOMB) {
		a->reason = AUTH_REASON_REVERSED;
		a->available = m_avail(u);
		a->self_cap_left = m_cap_left(u, m_month(u));
		return;
	}
	if (d && d->user != r->user_id) {
		/* rules 2.3: another user's operation; nothing is read of it */
		a->reason = AUTH_REASON_BAD_STATE;
		return;
	}
	if (d) {
		/* the first answer, the ids echoed */
		*a = d->answer;
		a->notes |= AUTH_NOTE_DUPLICATE;
		return;
	}
	switch (r->op) {
	case LIM_OP_AUTHORIZE:
		m_authorize(gw, r, u, m, a);
		break;
	case LIM_OP_CAPTURE:
		m_capture(gw, r, u, m, a);
		break;
	case LIM_OP_VOID:
		m_void(gw, r, u, m, a);
		break;
	case LIM_OP_REFUND:
		m_refund(gw, r, u, m, a);
		break;
	default:
		m_repay(gw, r, u, m, a);
		break;
	}
}

/* ------------------------------------------------------------------------ */
/* The engine side                                                            */

static struct fx F;
static uint64_t op_no;      /* the operation being checked, for messages */
static uint64_t seed_used;
static unsigned n_ops_run, count_reason[AUTH_REASONS + 1], count_op[6];
static unsigned n_dup, n_reversed, n_malformed, n_busy, n_expired, n_reclaimed;
static unsigned n_control, n_months, n_days, n_bursts, n_notes[8], n_appts;
static bool burst_clean; /* plain, small pay-later payments */

static void
fail_op(const char *what)
{
	fail_msg("op %" PRIu64 " (seed %#" PRIx64 ", now %u): %s", op_no,
		 seed_used, M.now, what);
}

#define SAME(what, got, want)                                                  \
	do {                                                                   \
		long long g_ = (long long)(got), w_ = (long long)(want);       \
		if (g_ != w_) {                                                \
			print_error("op %" PRIu64 " now %u: %s: engine %lld, " \
				    "model %lld\n",                            \
				    op_no, M.now, what, g_, w_);               \
			fail();                                                \
		}                                                              \
	} while (0)

static int64_t
sat32(int64_t v)
{
	return v > (int64_t)UINT32_MAX ? (int64_t)UINT32_MAX : v;
}

/* The engine's user against the model's, including the windows' views. */
static void
cmp_user(const struct m_user *mu)
{
	const struct lim_user *u = fx_user(&F, mu->id);
	bool this_min = u->spend_min == M.cur_min;
	bool this_day = u->spend_min * 60u >= M.cur_day;
	bool this_month = u->spend_min * 60u >= M.cur_month;

	SAME("user.limit", u->limit_fen, mu->limit);
	SAME("user.outstanding", u->outstanding_fen, m_debt(mu));
	SAME("user.holds", u->holds_fen, mu->holds);
	SAME("user.cash", u->cash_fen, mu->cash);
	SAME("user.inst", u->inst_fen, mu->inst);
	SAME("user.cool_until", u->cool_until_s, mu->cool_until);
	SAME("user.month_spend", this_month ? u->month_spend_fen : 0,
	     m_month(mu));
	SAME("user.vel_min_n", this_min ? u->vel_min_n : 0,
	     mu->min_key == M.cur_min ? (mu->min_n > 255 ? 255 : mu->min_n) : 0);
	SAME("user.vel_day_n", this_day ? u->vel_day_n : 0,
	     mu->day_key == M.cur_day ? (mu->day_n > 255 ? 255 : mu->day_n) : 0);
	/* the engine's amount windows saturate at UINT32_MAX */
	SAME("user.vel_min_fen", this_min ? u->vel_min_fen : 0,
	     mu->min_key == M.cur_min ? sat32(mu->min_fen) : 0);
	SAME("user.vel_day_fen", this_day ? u->vel_day_fen : 0,
	     mu->day_key == M.cur_day ? sat32(mu->day_fen) : 0);
}

/* Ceiling, quotas, groups: after every operation. */
static void
cmp_books(void)
{
	const struct lim_funders *fs = lim_funders_get(F.db);

	SAME("ceiling total", lim_budget_total(F.db->cap), M.ceiling);
	SAME("ceiling used", fx_cap_used(&F), M.ceiling_used);
	SAME("funders", fs->n, N_FUNDERS);
	for (unsigned i = 0; i < N_FUNDERS; i++) {
		SAME("funder id", fs->f[i].funder_id, M.funders[i].id);
		SAME("funder quota", lim_budget_total(fs->budget[i]),
		     M.funders[i].quota);
		SAME("funder used",
		     lim_budget_total(fs->budget[i]) -
			     lim_budget_free_fen(fs->budget[i]),
		     M.funders[i].used);
	}
	for (unsigned i = 0; i < N_GROUPS; i++) {
		const struct lim_group *g = lim_group_find(F.db, M.groups[i].id);

		SAME("group budget", g->budget_fen, M.groups[i].budget);
		SAME("group month spend",
		     g->st->month_start_s == M.cur_month ? g->st->month_spend_fen
							 : 0,
		     m_gspend(&M.groups[i]));
	}
	SAME("ledger seq", __atomic_load_n(&F.db->seq, __ATOMIC_RELAXED), M.seq);
}

struct store_walk {
	uint64_t n;
	int64_t held;
};

static int
cmp_entry(struct lim_op *e, void *arg)
{
	struct store_walk *w = arg;
	const struct m_op *o = m_find(e->gateway_id, e->request_id);
	static const uint8_t state_of[] = {
		[M_DECIDED] = LIM_OPS_DECIDED, [M_HELD] = LIM_OPS_HELD,
		[M_CAPTURED] = LIM_OPS_CAPTURED, [M_CLOSED] = LIM_OPS_CLOSED,
		[M_TOMB] = LIM_OPS_TOMBSTONE};

	w->n++;
	if (!o) {
		print_error("engine entry (%u, %" PRIu64 ") unknown to the "
			    "model\n", e->gateway_id, e->request_id);
		fail();
	}
	SAME("entry user", e->user_id, o->user);
	SAME("entry state", e->state, state_of[o->state]);
	if (e->state == LIM_OPS_HELD)
		w->held += e->held_fen;
	if (o->state == M_TOMB)
		return 0;
	SAME("entry status", e->status, o->answer.status);
	SAME("entry reason", e->reason, o->answer.reason);
	SAME("entry amount", e->amount_fen, o->answer.amount);
	SAME("entry ledger_seq", e->ledger_seq, o->answer.ledger_seq);
	if (!o->auth_ok)
		return 0;
	SAME("entry held", e->held_fen, o->held);
	SAME("entry captured", e->captured_fen, o->captured);
	SAME("entry refunded", e->refunded_fen, o->refunded);
	SAME("entry funder_fen", e->funder_fen, o->funder_fen);
	SAME("entry group", e->group_id, o->group);
	SAME("entry hold_expires", e->hold_expires_s, o->hold_expires);
	return 0;
}

/* The whole store, every user, the invariants. */
static void
cmp_all(void)
{
	struct store_walk w = {0};
	int64_t holds = 0, exposure = 0;

	for (unsigned i = 0; i < N_USERS; i++) {
		cmp_user(&M.users[i]);
		holds += M.users[i].holds;
		exposure += m_debt(&M.users[i]) + M.users[i].holds;
		assert_true(M.users[i].holds >= 0 && M.users[i].pl >= 0 &&
			    M.users[i].inst >= 0 && M.users[i].cash >= 0);
	}
	lim_ops_foreach(F.db->ops, cmp_entry, &w);
	SAME("store entries", w.n, M.live);
	SAME("open holds in the store vs users", w.held, holds);
	SAME("ceiling used vs debt + holds", M.ceiling_used, exposure);
	cmp_books();
	fx_check_money(&F, false);
}

/* ------------------------------------------------------------------------ */
/* Timer: the engine expires and reclaims, the model follows and checks       */

static void
on_expire(void *ctx, const struct lim_op *before, const struct lim_effect *e)
{
	struct m_op *o = m_find(before->gateway_id, before->request_id);
	struct m_user *u;
	int64_t back;

	(void)ctx;
	if (!o || o->state != M_HELD)
		fail_op("the engine expired a hold the model does not hold");
	if (M.now < o->hold_expires)
		fail_op("the engine expired a hold before hold_expires");
	u = m_user(o->user);
	SAME("expire amount", e->amount_fen, o->held);
	m_funders_release(o, o->held);
	M.ceiling_used -= o->held;
	u->holds -= o->held;
	back = m_give_back(u, o, o->held);
	SAME("expire d_month", e->d_month_fen, -back);
	o->held = 0;
	o->state = M_CLOSED;
	M.seq++;
	SAME("expire seq", e->seq, M.seq);
	cmp_user(u);
	n_expired++;
}

static void
on_reclaim(void *ctx, const struct lim_op *e)
{
	struct m_op *o = m_find(e->gateway_id, e->request_id);

	(void)ctx;
	if (!o)
		fail_op("the engine reclaimed an entry the model does not have");
	if (o->state == M_HELD)
		fail_op("the engine reclaimed an open hold");
	/* ids are kept at least retain_s; captured ones for refunds */
	if (M.now < o->created + M.pol.retain_s)
		fail_op("an id was forgotten before retain_s");
	if (o->captured_at && M.now < o->captured_at + M.pol.refund_window_s)
		fail_op("a captured authorization was forgotten before the "
			"refund window");
	m_delete(o);
	n_reclaimed++;
}

/* ------------------------------------------------------------------------ */
/* The world                                                                  */

static void
apply_funders(void)
{
	struct lim_funder f[N_FUNDERS];

	for (unsigned i = 0; i < N_FUNDERS; i++)
		f[i] = (struct lim_funder){.quota_fen = M.funders[i].quota,
					   .funder_id = M.funders[i].id,
					   .region = M.funders[i].region,
					   .share_pct = M.funders[i].share,
					   .products = M.funders[i].products};
	assert_int_equal(lim_funders_set(F.db, f, N_FUNDERS), 0);
}

static void
apply_merchant(const struct m_merchant *mm)
{
	struct lim_merchant m = {.merchant_id = mm->id,
				 .mcc = mm->mcc,
				 .region = 21,
				 .risk_score = mm->risk,
				 .flags = mm->blocked ? LIM_MERCHANT_BLOCKED : 0,
				 .subsidy = mm->subsidy};

	assert_int_equal(lim_merchant_set(F.db, &m), 0);
}

static void
apply_group(const struct m_group *mg)
{
	struct lim_group g = {.group_id = mg->id,
			      .n_members = (uint8_t)mg->n,
			      .budget_fen = mg->budget};

	memcpy(g.members, mg->members, sizeof(g.members));
	assert_int_equal(lim_group_set(F.db, &g), 0);
}

static void
apply_ext(const struct m_user *mu)
{
	struct lim_user_ext x = {.user_id = mu->id,
				 .temp_quota_fen = mu->temp,
				 .cash_limit_fen = mu->cash_override,
				 .alert_fen = mu->alert,
				 .temp_until_s = mu->temp_until};

	assert_int_equal(lim_ext_set(F.db, &x), 0);
}

/* The engine's user slot settings from the model's (under the lock). */
static void
apply_user_settings(const struct m_user *mu)
{
	struct lim_user *u = fx_user(&F, mu->id);

	lim_user_lock(u);
	u->limit_fen = mu->limit;
	u->self_cap_fen = mu->self_cap;
	u->tier = mu->tier;
	u->risk_q = mu->risk_q;
	u->region = mu->region;
	u->cool_until_s = mu->cool_until;
	u->flags = (uint8_t)((mu->frozen ? LIM_USER_FROZEN : 0) |
			     (mu->soft ? LIM_USER_SOFT_CAP : 0) |
			     (mu->has_ext ? LIM_USER_EXT : 0));
	lim_user_unlock(u);
}

static void
random_ext(struct m_user *mu)
{
	mu->has_ext = true;
	mu->temp = chance(700) ? (int64_t)(below(500000) + 1) : 0;
	mu->temp_until = M.now + (uint32_t)below(4 * 86400);
	mu->cash_override = chance(500) ? (int64_t)below(mu->limit + 1) : -1;
	mu->alert = chance(500) ? (int64_t)(below(200000) + 1) : -1;
}

static void
world_create(void)
{
	static const uint16_t regions[] = {21, 31, 41};
	int64_t sum = 0;
	struct lim_user u;

	memset(&M, 0, sizeof(M));
	M.bucket = malloc(BUCKETS * sizeof(*M.bucket));
	assert_non_null(M.bucket);
	memset(M.bucket, 0xff, BUCKETS * sizeof(*M.bucket));
	M.free_head = NIL;
	m_set_now(fx_local8(2026, 10, 29, 0, 0, 0));

	fx_init_empty(&F, 256, 1u << 18, 1);
	fx_set_now(&F, M.now);

	for (unsigned i = 0; i < N_USERS; i++) {
		struct m_user *mu = &M.users[i];

		mu->id = i + 1;
		mu->limit = (int64_t)(below(5000000) + 100000); /* 1k..51k yuan */
		mu->tier = (uint8_t)below(LIM_TIERS);
		mu->region = regions[below(3)];
		mu->risk_q = chance(30) ? (uint8_t)(225 + below(31))
					: (uint8_t)below(150);
		mu->frozen = chance(30);
		mu->self_cap = chance(300) ? (int64_t)below(mu->limit) + 1 : 0;
		mu->soft = chance(400);
		mu->cash_override = -1;
		mu->alert = -1;
		if (chance(150))
			random_ext(mu);
		sum += mu->limit;
		memset(&u, 0, sizeof(u));
		u.user_id = mu->id;
		fx_add_user(&F, &u);
		apply_user_settings(mu);
		if (mu->has_ext)
			apply_ext(mu);
	}
	/* merchants: plain, blocked, subsidising, risky, medium, plain */
	M.merchants[0] = (struct m_merchant){5001, 120, false, 0, 5411};
	M.merchants[1] = (struct m_merchant){5002, 0, true, 0, 5411};
	M.merchants[2] = (struct m_merchant){5003, 0, false,
					     LIM_SUBSIDY_3 | LIM_SUBSIDY_12, 5732};
	M.merchants[3] = (struct m_merchant){5004, 950, false, 0, 6051};
	M.merchants[4] = (struct m_merchant){5005, 600, false, LIM_SUBSIDY_6,
					     5999};
	M.merchants[5] = (struct m_merchant){5006, 0, false, 0, 5812};
	for (unsigned i = 0; i < N_MERCHANTS; i++)
		apply_merchant(&M.merchants[i]);
	/* groups of 2..5 users, each user in one group at most */
	for (unsigned i = 0; i < N_GROUPS; i++) {
		struct m_group *g = &M.groups[i];

		g->id = 70 + i;
		g->budget = (int64_t)(below(1000000) + 200000);
		g->n = 2 + (unsigned)below(4);
		for (unsigned k = 0; k < g->n; k++) {
			struct m_user *mu;

			do
				mu = &M.users[below(N_USERS)];
			while (mu->group);
			mu->group = g->id;
			g->members[k] = mu->id;
		}
		apply_group(g);
	}
	/* funders: the company, a national bank, a regional bank, a bank that
	 * would leave the company too little, a cash/installment bank */
	M.funders[0] = (struct m_funder){0, 0, 0, 0x0e, sum / 60, 0, 0};
	M.funders[1] = (struct m_funder){11, 0, 50, 0x06, sum / 200, 0, 0};
	M.funders[2] = (struct m_funder){12, 31, 60, 0x0e, sum / 400, 0, 0};
	M.funders[3] = (struct m_funder){13, 21, 75, 0x0e, sum, 0, 0};
	M.funders[4] = (struct m_funder){14, 0, 70, 0x0c, sum / 800, 0, 0};
	for (unsigned i = 0; i < N_FUNDERS; i++)
		M.funders[i].base_quota = M.funders[i].quota;
	apply_funders();
	/* the policy: short holds and retention, a ceiling below the sum of
	 * the limits */
	lim_policy_default(&M.pol);
	M.pol.hold_ttl_s = 2 * 86400;
	M.pol.retain_s = 3 * 86400;
	M.pol.refund_window_s = 5 * 86400;
	M.pol.ceiling_fen = sum * 6 / 100;
	/* day windows tighter than a minute's worth for the low tiers, so
	 * that a burst in one minute fills the day */
	M.pol.tier[0].vel_day_fen = 150000;
	M.pol.tier[1].vel_day_n = 4;
	M.pol.cap_chunk_fen = M.pol.ceiling_fen / 1000;
	assert_int_equal(lim_policy_set(F.db, &M.pol), 0);
	M.ceiling = M.pol.ceiling_fen;
	M.base_ceiling = M.ceiling;
}

static void
world_free(void)
{
	fx_fini(&F);
	free(M.pool);
	free(M.bucket);
	memset(&M, 0, sizeof(M));
}

/* A control-plane change, to engine and model alike. */
static void
control(void)
{
	struct m_user *mu = &M.users[below(N_USERS)];

	n_control++;
	switch (below(10)) {
	case 0: { /* limit change; a raise starts a cooling-off */
		int64_t nl = (int64_t)(below(5000000) + 100000);

		if (nl > mu->limit && M.now + M.pol.cool_raise_s > mu->cool_until)
			mu->cool_until = M.now + M.pol.cool_raise_s;
		mu->limit = nl;
		if (mu->cash_override > nl)
			mu->cash_override = nl;
		apply_user_settings(mu);
		if (mu->has_ext)
			apply_ext(mu);
		break;
	}
	case 1:
		mu->frozen = chance(150);
		apply_user_settings(mu);
		break;
	case 2: /* a risk worker's verdict */
		mu->risk_q = chance(200) ? (uint8_t)(225 + below(31))
					 : (uint8_t)below(200);
		apply_user_settings(mu);
		break;
	case 3: /* the bill assistant */
		mu->self_cap = chance(700) ? (int64_t)below(mu->limit) + 1 : 0;
		mu->soft = chance(400);
		apply_user_settings(mu);
		break;
	case 4: /* temporary quota and overrides */
		if (mu->has_ext && chance(300)) {
			mu->has_ext = false;
			apply_user_settings(mu);
			assert_int_equal(lim_ext_del(F.db, mu->id), 0);
		} else {
			random_ext(mu);
			apply_ext(mu);
			apply_user_settings(mu);
		}
		break;
	case 5: { /* a merchant verdict */
		struct m_merchant *mm = &M.merchants[below(N_MERCHANTS)];

		mm->blocked = chance(150);
		mm->risk = chance(200) ? (uint16_t)(850 + below(151))
				       : (uint16_t)below(700);
		mm->subsidy = (uint8_t)below(8);
		apply_merchant(mm);
		break;
	}
	case 6: { /* a group changes its budget */
		struct m_group *g = &M.groups[below(N_GROUPS)];

		g->budget = (int64_t)below(1500000);
		apply_group(g);
		break;
	}
	case 7: /* tier change */
		mu->tier = (uint8_t)below(LIM_TIERS);
		apply_user_settings(mu);
		break;
	case 8: /* the ceiling moves, down to just above what is lent */
		M.pol.ceiling_fen = M.ceiling_used + 1 +
				    (int64_t)below((uint64_t)M.base_ceiling);
		M.pol.unknown_merchant_ok = chance(300);
		/* a decrease comes out of the global room: return this
		 * thread's shard room first (the only shard here) */
		lim_budget_flush(F.db->cap, 0);
		assert_int_equal(lim_policy_set(F.db, &M.pol), 0);
		M.ceiling = M.pol.ceiling_fen;
		break;
	default: /* a region move */
		mu->region = (uint16_t)(chance(500) ? 31 : 21);
		apply_user_settings(mu);
		break;
	}
	lim_quiescent_state();
}

/* The operator resets the quotas for a new day: full room again. */
static void
quota_reset(void)
{
	for (unsigned i = 0; i < N_FUNDERS; i++)
		M.funders[i].quota = M.funders[i].used + M.funders[i].base_quota;
	apply_funders();
}

/* ------------------------------------------------------------------------ */
/* Requests                                                                   */

static struct {
	uint32_t gw;
	struct auth_req r;
} ring[RING];
static unsigned ring_n;

static struct {
	uint32_t gw;
	uint64_t rid, user;
} tombs[TOMBS];
static unsigned tombs_n;

static uint64_t next_rid = 1;
static uint64_t next_ghost = 1ULL << 40; /* ids nobody ever sent */

static uint32_t
pick_merchant(void)
{
	unsigned k = (unsigned)below(100);

	if (k < 55)
		return 5001;
	if (k < 65)
		return 5003;
	if (k < 70)
		return 5002;
	if (k < 75)
		return 5004;
	if (k < 82)
		return 5005;
	if (k < 92)
		return 5006;
	return 9000 + (uint32_t)below(10); /* unknown */
}

static uint8_t
pick_product(void)
{
	unsigned k = (unsigned)below(100);

	return k < 50 ? LIM_PRODUCT_PAYLATER
	       : k < 80 ? LIM_PRODUCT_INSTALLMENT : LIM_PRODUCT_CASH;
}

static void
base_req(struct auth_req *r, uint8_t op, uint64_t uid)
{
	memset(r, 0, sizeof(*r));
	r->request_id = next_rid++;
	r->user_id = uid;
	r->op = op;
	r->product = pick_product();
	r->channel = (uint8_t)(1 + below(3));
	r->merchant_id = op == LIM_OP_REPAY ? 0 : pick_merchant();
	r->mcc = 5411;
	r->device_id = rnd();
}

/* An amount near one of the model's edges, or a random one. */
static int64_t
pick_amount(const struct m_user *u, uint8_t product)
{
	const struct lim_tier *t = &M.pol.tier[u->tier];
	int64_t edge = 0, a = m_avail(u);

	switch (below(12)) {
	case 0:
		edge = a;
		break;
	case 1:
		edge = a + 1;
		break;
	case 2:
		if (product == LIM_PRODUCT_CASH) {
			int64_t lim = u->has_ext && u->cash_override >= 0
					      ? u->cash_override
					      : pct(u->limit, t->cash_pct);
			edge = lim - pct(u->inst, M.pol.inst_cash_pct) -
			       u->cash + (int64_t)below(2);
		}
		break;
	case 3:
		if (u->self_cap > 0)
			edge = u->self_cap - m_month(u) + (int64_t)below(2);
		break;
	case 4:
		if (u->group)
			edge = m_group(u->group)->budget -
			       m_gspend(m_group(u->group)) + (int64_t)below(2);
		break;
	case 5:
		edge = M.ceiling - M.ceiling_used + (int64_t)below(2);
		break;
	case 6:
		if (t->vel_min_fen)
			edge = t->vel_min_fen -
			       (u->min_key == M.cur_min ? u->min_fen : 0) +
			       (int64_t)below(2);
		break;
	case 7:
		edge = (int64_t)below(100000) + 1;
		break;
	case 8: /* available after == the LOW_AVAILABLE threshold, or 1 under */
		edge = a - pct(u->limit, M.pol.low_avail_pct) + (int64_t)below(2);
		break;
	default:
		break;
	}
	if (edge > 0)
		return edge;
	return logu(u->limit * 2);
}

static uint64_t
pick_user(void)
{
	return chance(20) ? 100000 + below(50) : 1 + below(N_USERS);
}

/* A ref for a capture/void/refund of @p mu: its own recent authorization
 * mostly, else another user's, a non-authorization, or a ghost. */
static void
pick_ref(const struct m_user *mu, uint32_t *gw, uint64_t *ref)
{
	unsigned k = (unsigned)below(100);

	if (k < 80 && mu && mu->n_recent) {
		unsigned i = (unsigned)below(mu->n_recent);

		*gw = mu->recent[i].gw;
		*ref = mu->recent[i].rid;
		return;
	}
	if (k < 88) {
		const struct m_user *o = &M.users[below(N_USERS)];

		if (o->n_recent) {
			*gw = o->recent[0].gw;
			*ref = o->recent[0].rid;
			return;
		}
	}
	if (k < 94 && ring_n) {
		unsigned i = (unsigned)below(ring_n < RING ? ring_n : RING);

		*gw = ring[i].gw;
		*ref = ring[i].r.request_id;
		return;
	}
	*gw = chance(500) ? GW_A : GW_B;
	*ref = next_ghost++;
}

static void
make_malformed(struct auth_req *r)
{
	switch (below(10)) {
	case 0:
		r->op = chance(500) ? 0 : (uint8_t)(6 + below(250));
		break;
	case 1:
		r->product = chance(500) ? 0 : 4;
		break;
	case 2:
		r->channel = chance(500) ? 0 : 4;
		break;
	case 3:
		r->request_id = 0;
		break;
	case 4:
		r->user_id = 0;
		break;
	case 5:
		if (chance(500))
			r->reserved0 = 1;
		else
			r->reserved1 = (uint32_t)rnd() | 1;
		break;
	case 6:
		r->amount = chance(500) ? -1 : INT64_MIN;
		break;
	case 7:
		if (r->op == LIM_OP_VOID)
			r->amount = -5;
		else
			r->amount = 0;
		break;
	case 8:
		if (r->op == LIM_OP_REPAY)
			r->ref_id = 1 + below(1000);
		else
			r->merchant_id = 0;
		break;
	default:
		r->ref_id = r->ref_id ? 0 : 1 + below(1000);
		break;
	}
}

/* Build the next request; returns its gateway. */
static uint32_t
next_request(struct auth_req *r, uint64_t burst_user)
{
	unsigned k = (unsigned)below(1000);
	uint32_t gw = chance(700) ? GW_A : GW_B;
	uint64_t uid = burst_user ? burst_user : pick_user();
	struct m_user *mu = m_user(uid);

	if (burst_user)
		k = 0;
	if (k < 380) {
		base_req(r, LIM_OP_AUTHORIZE, uid);
		/* a reversal arrived first for this id */
		if (tombs_n && chance(40)) {
			unsigned i = (unsigned)below(tombs_n);

			r->request_id = tombs[i].rid;
			r->user_id = chance(800) ? tombs[i].user : uid;
			gw = tombs[i].gw;
			mu = m_user(r->user_id);
		}
		if (r->product == LIM_PRODUCT_INSTALLMENT) {
			static const uint8_t terms[] = {3, 6, 12, 3, 6, 12, 3,
							6, 12, 0, 5, 24};
			r->terms = terms[below(sizeof(terms))];
		} else if (chance(30)) {
			r->terms = 3;
		}
		if (mu && mu->group && chance(200))
			r->group_id = mu->group;
		else if (chance(30))
			r->group_id = chance(500) ? 70 + (uint32_t)below(N_GROUPS)
						  : 99;
		r->region = mu && chance(950) ? mu->region : 41;
		r->amount = mu ? pick_amount(mu, r->product) : logu(1000000);
		if (chance(3))
			r->amount = INT64_MAX - (int64_t)below(3);
		if (burst_user && burst_clean) {
			r->request_id = next_rid++;
			r->user_id = uid;
			gw = GW_A;
			r->product = LIM_PRODUCT_PAYLATER;
			r->terms = 0;
			r->merchant_id = 5001;
			r->group_id = 0;
			r->amount = 20000 + (int64_t)below(40000);
		}
	} else if (k < 520) {
		base_req(r, LIM_OP_CAPTURE, uid);
		{
			uint64_t ref_;

			pick_ref(mu, &gw, &ref_);
			r->ref_id = ref_;
		}
		{
			const struct m_op *o = m_find(gw, r->ref_id);
			int64_t held = o ? o->held : 0;

			r->amount = held > 0 && chance(700)
					    ? held
					    : held > 0 && chance(700)
						      ? (int64_t)below(held) + 1
						      : held + 1;
		}
	} else if (k < 620) {
		base_req(r, LIM_OP_VOID, uid);
		if (chance(150)) {
			r->ref_id = next_ghost++;
		} else {
			{
			uint64_t ref_;

			pick_ref(mu, &gw, &ref_);
			r->ref_id = ref_;
		}
		}
		{
			const struct m_op *o = m_find(gw, r->ref_id);
			int64_t held = o ? o->held : 0;
			unsigned c = (unsigned)below(10);

			r->amount = c < 5 ? 0
				    : c < 8 && held > 1 ? (int64_t)below(held - 1) + 1
				    : c < 9 ? held : held + 1;
		}
		if (!m_find(gw, r->ref_id) && mu && tombs_n < TOMBS) {
			tombs[tombs_n].gw = gw;
			tombs[tombs_n].rid = r->ref_id;
			tombs[tombs_n].user = uid;
			tombs_n++;
		}
	} else if (k < 690) {
		base_req(r, LIM_OP_REFUND, uid);
		{
			uint64_t ref_;

			pick_ref(mu, &gw, &ref_);
			r->ref_id = ref_;
		}
		{
			const struct m_op *o = m_find(gw, r->ref_id);
			int64_t left = o ? o->captured - o->refunded : 0;
			unsigned c = (unsigned)below(10);

			r->amount = left > 0 && c < 6 ? (int64_t)below(left) + 1
				    : left > 0 && c < 9 ? left : left + 1;
		}
	} else if (k < 820) {
		base_req(r, LIM_OP_REPAY, uid);
		if (mu) {
			int64_t debt = *m_bucket(mu, r->product);
			unsigned c = (unsigned)below(10);

			r->amount = debt > 0 && c < 6 ? (int64_t)below(debt) + 1
				    : debt > 0 && c < 8 ? debt : debt + 1;
		} else {
			r->amount = logu(100000);
		}
		if (chance(100))
			r->merchant_id = 5001;
	} else if (k < 930 && ring_n) {
		/* a retry: the same request again */
		unsigned i = (unsigned)below(ring_n < RING ? ring_n : RING);

		*r = ring[i].r;
		n_dup++;
		return ring[i].gw;
	} else if (k < 950 && ring_n) {
		/* the same id from the other gateway: another payment */
		unsigned i = (unsigned)below(ring_n < RING ? ring_n : RING);

		*r = ring[i].r;
		return ring[i].gw == GW_A ? GW_B : GW_A;
	} else {
		base_req(r, (uint8_t)(1 + below(5)), uid);
		r->amount = 1 + (int64_t)below(1000);
		if (r->op >= LIM_OP_CAPTURE && r->op <= LIM_OP_REFUND)
			r->ref_id = 1 + below(next_rid);
		make_malformed(r);
		n_malformed++;
	}
	ring[ring_n % RING].gw = gw;
	ring[ring_n % RING].r = *r;
	ring_n++;
	return gw;
}

/* ------------------------------------------------------------------------ */
/* The run                                                                    */

static uint64_t
env_u64(const char *name, uint64_t def)
{
	const char *v = getenv(name);

	return v && *v ? strtoull(v, NULL, 0) : def;
}

static void
print_resp(const char *who, const struct auth_resp *a)
{
	print_error("  %s: status %u reason %s notes %#x amount %" PRId64
		    " available %" PRId64 " hold %u funder %u own %u risk %u "
		    "cap_left %" PRId64 " seq %" PRIu64 "\n",
		    who, a->status, auth_reason_name(a->reason), a->notes,
		    a->amount, a->available, a->hold_expires, a->funder_id,
		    a->own_share_pct, a->risk_score, a->self_cap_left,
		    a->ledger_seq);
}

static void
test_model(void **state)
{
	(void)state;
	uint64_t n = env_u64("AUTHD_MODEL_OPS", MODEL_OPS_DEFAULT);
	uint64_t seed = env_u64("AUTHD_MODEL_SEED", MODEL_SEED_DEFAULT);
	struct fx_timer tm = {.f = &F,
			      .shard = 0,
			      .reclaim = true,
			      .on_expire = on_expire,
			      .on_reclaim = on_reclaim};
	uint64_t burst_user = 0;
	unsigned burst_left = 0;
	bool has_appt = false;
	__typeof__(appts[0]) pending_appt = {0};
	uint32_t start;

	rng = seed;
	seed_used = seed;
	world_create();
	start = M.now;
	for (op_no = 0; op_no < n; op_no++) {
		struct auth_req r;
		struct auth_resp got, want;
		struct lim_effect e;
		uint32_t gw, month = M.cur_month, day = M.cur_day;
		uint64_t seq0;
		enum auth_exec_rc rc;

		/* time */
		{
			uint32_t t = M.now, next_day = M.cur_day + 86400;
			int appt = -1;

			if (burst_left) {
				burst_left--;
				/* a clean burst's last payment comes a minute
				 * or two later: the day is what is left */
				t += burst_clean && burst_left == 0
					     ? 60 + (uint32_t)below(120)
					     : (uint32_t)below(3);
			} else if (below(5000) == 0) {
				t += 3600 + (uint32_t)below(12 * 3600);
			} else {
				t += (uint32_t)below(13);
			}
			/* stop exactly at midnight +08 now and then, and spend
			 * in its first minute */
			if (t >= next_day && M.now < next_day && chance(500)) {
				t = next_day;
				if (!burst_left) {
					/* a low-tier user, if one comes up */
					for (int k = 0; k < 16; k++) {
						burst_user = 1 + below(N_USERS);
						if (M.users[burst_user - 1].tier < 2)
							break;
					}
					burst_left = 5 + (unsigned)below(4);
					burst_clean = true;
					n_bursts++;
				}
			}
			for (unsigned i = 0; i < appts_n; i++)
				if (appts[i].at >= M.now && appts[i].at <= t &&
				    (appt < 0 || appts[i].at < appts[appt].at))
					appt = (int)i;
			if (appt >= 0) {
				t = appts[appt].at;
				if (!burst_left) {
					pending_appt = appts[appt];
					has_appt = true;
					appts[appt] = appts[--appts_n];
				}
			}
			/* drop the appointments time has passed */
			for (unsigned i = 0; i < appts_n;)
				if (appts[i].at < t)
					appts[i] = appts[--appts_n];
				else
					i++;
			m_set_now(t);
		}
		fx_set_now(&F, M.now);
		assert_int_equal(F.x.now.month_start_s, M.cur_month);
		assert_int_equal(F.x.now.day_start_s, M.cur_day);
		if (M.cur_month != month)
			n_months++;
		if (M.cur_day != day) {
			n_days++;
			quota_reset();
		}
		/* the ledger worker's timer */
		fx_timer_run(&tm, SCAN_PER_OP);
		if (chance(5))
			control();
		if (!burst_left && chance(5)) {
			burst_user = 1 + below(N_USERS);
			burst_left = 8 + (unsigned)below(8);
			burst_clean = chance(300);
			n_bursts++;
		}
		gw = next_request(&r, burst_left ? burst_user : 0);
		if (has_appt) {
			/* the appointment replaces it: capture or void the hold
			 * at (or a second before) its expiry */
			has_appt = false;
			base_req(&r, chance(500) ? LIM_OP_CAPTURE : LIM_OP_VOID,
				 pending_appt.user);
			r.ref_id = pending_appt.rid;
			r.amount = r.op == LIM_OP_VOID ? 0 : 1;
			gw = pending_appt.gw;
			n_appts++;
		}

		/* the engine, then the model */
		memset(&got, 0xa5, sizeof(got));
		memset(&e, 0, sizeof(e));
		seq0 = M.seq;
		rc = fx_exec_gw(&F, gw, &r, &got, &e);
		lim_quiescent_state();
		if (got.status == AUTH_STATUS_DECLINED &&
		    got.reason == AUTH_REASON_BUSY) {
			n_busy++;
			SAME("seq after BUSY",
			     __atomic_load_n(&F.db->seq, __ATOMIC_RELAXED), M.seq);
			if (m_user(r.user_id))
				cmp_user(m_user(r.user_id));
			continue;
		}
		m_exec(gw, &r, &want);
		if (memcmp(&got, &want, sizeof(got)) != 0) {
			print_error("op %" PRIu64 " (seed %#" PRIx64 ") now %u: "
				    "gw %u op %u rid %" PRIu64 " user %" PRIu64
				    " ref %" PRIu64 " amount %" PRId64
				    " product %u terms %u merchant %u group %u\n",
				    op_no, seed, M.now, gw, r.op, r.request_id,
				    r.user_id, r.ref_id, r.amount, r.product,
				    r.terms, r.merchant_id, r.group_id);
			print_resp("engine", &got);
			print_resp("model ", &want);
			fail();
		}
		SAME("exec rc", rc,
		     M.seq != seq0 ? AUTH_EXEC_RECORDED : AUTH_EXEC_ANSWERED);
		if (rc == AUTH_EXEC_RECORDED)
			SAME("effect seq", e.seq, M.seq);
		count_reason[want.reason < AUTH_REASONS ? want.reason
							: AUTH_REASONS]++;
		count_op[r.op <= 5 ? r.op : 0]++;
		for (unsigned b = 0; b < 8; b++)
			if (want.notes & (1u << b))
				n_notes[b]++;
		if (want.reason == AUTH_REASON_REVERSED)
			n_reversed++;
		if (m_user(r.user_id))
			cmp_user(m_user(r.user_id));
		cmp_books();
		if (op_no % CHECK_EVERY == CHECK_EVERY - 1)
			cmp_all();
		n_ops_run++;
	}
	cmp_all();

	print_message("model: %u ops (seed %#" PRIx64 "), %.1f days from %u, "
		      "%u month and %u day boundaries; store %" PRIu64
		      " entries, %u expired, %u reclaimed; %u duplicates sent, "
		      "%u reversed, %u malformed, %u busy, %u control changes, "
		      "%u bursts, %u ops at a hold's expiry; ceiling %" PRId64
		      " used %" PRId64 "\n",
		      n_ops_run, seed, (M.now - start) / 86400.0, start, n_months,
		      n_days, lim_ops_count(F.db->ops), n_expired, n_reclaimed,
		      n_dup, n_reversed, n_malformed, n_busy, n_control, n_bursts,
		      n_appts,
		      M.ceiling, M.ceiling_used);
	print_message("model: ops authorize %u capture %u void %u refund %u "
		      "repay %u other %u\n",
		      count_op[1], count_op[2], count_op[3], count_op[4],
		      count_op[5], count_op[0]);
	print_message("model: reasons:");
	for (unsigned i = 0; i < AUTH_REASONS; i++)
		print_message(" %s %u", auth_reason_name(i), count_reason[i]);
	print_message("\nmodel: notes: large %u low %u soft %u temp %u dup %u "
		      "free %u\n",
		      n_notes[0], n_notes[1], n_notes[2], n_notes[3], n_notes[4],
		      n_notes[5]);
	/* The run must have exercised what it claims to. */
	for (unsigned i = 0; i < AUTH_REASONS; i++) {
		if (i == AUTH_REASON_BUSY)
			continue;
		if (n >= 100000 && count_reason[i] == 0)
			fail_msg("reason %s never happened", auth_reason_name(i));
	}
	if (n >= 100000) {
		assert_true(n_months >= 1);
		assert_true(n_expired > 0 && n_reclaimed > 0);
		for (unsigned b = 0; b < 6; b++)
			assert_true(n_notes[b] > 0);
	}
	assert_int_equal(n_busy, 0);
	world_free();
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_model),
	};
	int rc;

	rcu_register_thread();
	rc = cmocka_run_group_tests(tests, NULL, NULL);
	rcu_unregister_thread();
	return rc;
}
