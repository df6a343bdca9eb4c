/*
 * decide.c - the decision function: one request record in, one answer and
 * one effect out.
 *
 * Pure: it reads what struct auth_in points to (the caller holds the user's
 * lock, and the group's, so those do not move) and writes only *out. No
 * allocation, no system call, no clock, no global. The order of the rules is
 * the order of docs/rules.md; a change here is a change there.
 *
 * Money: amounts from the wire may be any positive int64, so no sum with one
 * is formed; a rule "have + amount > cap" is written "amount > cap - have"
 * where have and cap are bounded state (|x| <= LIM_MONEY_MAX).
 */
#include <string.h>

#include "auth_pvt.h"

#define DUP_NOTE AUTH_NOTE_DUPLICATE

void
auth_now_set(struct auth_now *n, uint32_t unix_s, int32_t tz_offset_s)
{
	n->s = unix_s;
	n->minute = unix_s / 60;
	n->day_start_s = lim_day_start(unix_s, tz_offset_s);
	n->month_start_s = lim_month_start(unix_s, tz_offset_s);
}

static int64_t
temp_quota(const struct lim_user_ext *x, uint32_t now_s)
{
	return x && now_s < x->temp_until_s ? x->temp_quota_fen : 0;
}

int64_t
auth_available(const struct lim_user *u, const struct lim_user_ext *x,
	       uint32_t now_s)
{
	return u->limit_fen + temp_quota(x, now_s) - u->outstanding_fen -
	       u->holds_fen;
}

/* Debt of one product bucket: pay later is what the other two are not. */
static int64_t
bucket_debt(const struct lim_user *u, unsigned product)
{
	switch (product) {
	case LIM_PRODUCT_CASH:
		return u->cash_fen;
	case LIM_PRODUCT_INSTALLMENT:
		return u->inst_fen;
	default:
		return u->outstanding_fen - u->cash_fen - u->inst_fen;
	}
}

static bool
same_month(uint32_t t_s, const struct auth_now *now)
{
	return t_s >= now->month_start_s;
}

static int64_t
month_spend(const struct lim_user *u, const struct auth_now *now)
{
	return same_month(u->spend_min * 60, now) ? u->month_spend_fen : 0;
}

static int64_t
self_cap_left(const struct lim_user *u, int64_t spend)
{
	if (u->self_cap_fen <= 0)
		return -1;
	return spend < u->self_cap_fen ? u->self_cap_fen - spend : 0;
}

static unsigned
risk_score(const struct lim_user *u, const struct lim_merchant *m)
{
	unsigned s = u ? u->risk_q * 4u : 0;

	if (m && m->risk_score > s)
		s = m->risk_score;
	return s > 1000 ? 1000 : s;
}

/* The answer every path starts from: echoed ids, nothing granted. */
static void
answer_init(const struct auth_in *in, struct auth_out *out)
{
	const struct auth_req *r = in->req;
	struct auth_resp *a = &out->resp;
	struct lim_effect *e = &out->eff;

	memset(out, 0, sizeof(*out));
	a->request_id = r->request_id;
	a->user_id = r->user_id;
	a->op = r->op;
	a->status = AUTH_STATUS_DECLINED;
	a->self_cap_left = -1;
	e->request_id = r->request_id;
	e->user_id = r->user_id;
	e->ref_id = r->ref_id;
	e->gateway_id = in->gateway_id;
	e->now_s = in->now->s;
	e->op = r->op;
	e->product = r->product;
	e->terms = r->terms;
	e->self_cap_left_fen = -1;
}

/*
 * Finish an answer: copy its fields into the effect so that the op entry,
 * the journal and a later DUPLICATE all carry the same answer.
 */
static void
answer_done(struct auth_out *out, enum lim_effect_kind kind)
{
	const struct auth_resp *a = &out->resp;
	struct lim_effect *e = &out->eff;

	e->kind = kind;
	e->amount_fen = a->amount;
	e->available_fen = a->available;
	e->self_cap_left_fen = a->self_cap_left;
	e->hold_expires_s = a->hold_expires;
	e->funder_id = a->funder_id;
	e->own_share_pct = a->own_share_pct;
	e->risk_score = (uint16_t)a->risk_score;
	e->status = a->status;
	e->reason = a->reason;
	e->notes = a->notes;
}

/* A decline about a known user: the answer is kept (kind DECIDE). */
static void
decline(const struct auth_in *in, struct auth_out *out, enum auth_reason why)
{
	struct auth_resp *a = &out->resp;
	const struct lim_user *u = in->user;

	a->status = AUTH_STATUS_DECLINED;
	a->reason = why;
	a->amount = 0;
	a->available = auth_available(u, in->ext, in->now->s);
	a->self_cap_left = self_cap_left(u, month_spend(u, in->now));
	a->risk_score = risk_score(u, in->merchant);
	answer_done(out, LIM_EFF_DECIDE);
}

/* An answer that records nothing (unknown user, reversed original). */
static void
answer_only(struct auth_out *out, enum auth_reason why)
{
	out->resp.status = AUTH_STATUS_DECLINED;
	out->resp.reason = why;
	out->eff.kind = LIM_EFF_NONE;
}

/* A request id seen before: the first answer again, nothing changes. */
static void
replay_dup(const struct auth_in *in, struct auth_out *out)
{
	const struct lim_op *d = in->dup;
	struct auth_resp *a = &out->resp;

	if (d->state == LIM_OPS_TOMBSTONE) {
		/* A void or refund came first: the original never goes through. */
		if (in->user) {
			a->available = auth_available(in->user, in->ext, in->now->s);
			a->self_cap_left = self_cap_left(in->user,
							 month_spend(in->user, in->now));
		}
		answer_only(out, AUTH_REASON_REVERSED);
		return;
	}
	a->ledger_seq = d->ledger_seq;
	a->amount = d->amount_fen;
	a->available = d->available_fen;
	a->hold_expires = d->hold_expires_s;
	a->op = d->op;
	a->status = d->status;
	a->reason = d->reason;
	a->notes = (uint8_t)(d->notes | DUP_NOTE);
	a->funder_id = d->funder_id;
	a->own_share_pct = d->own_share_pct;
	a->risk_score = d->risk_score;
	a->self_cap_left = d->self_cap_left_fen;
	out->eff.kind = LIM_EFF_NONE;
}

/* ------------------------------------------------------------------------ */
/* Authorize                                                                  */

static bool
terms_valid(const struct auth_req *r)
{
	if (r->product == LIM_PRODUCT_INSTALLMENT)
		return r->terms == 3 || r->terms == 6 || r->terms == 12;
	return r->terms == 0;
}

static uint8_t
subsidy_bit(unsigned terms)
{
	return terms == 3 ? LIM_SUBSIDY_3 : terms == 6 ? LIM_SUBSIDY_6
			  : terms == 12 ? LIM_SUBSIDY_12 : 0;
}

static bool
group_member(const struct lim_group *g, uint64_t user_id)
{
	for (unsigned i = 0; i < g->n_members && i < LIM_GROUP_MEMBERS_MAX; i++)
		if (g->members[i] == user_id)
			return true;
	return false;
}

/* Velocity windows as of now: the counters belong to spend_min's minute/day. */
static bool
velocity_exceeded(const struct lim_user *u, const struct lim_tier *t,
		  const struct auth_now *now, int64_t amount)
{
	bool this_min = u->spend_min == now->minute;
	bool this_day = u->spend_min * 60 >= now->day_start_s;
	int64_t min_fen = this_min ? u->vel_min_fen : 0;
	int64_t day_fen = this_day ? u->vel_day_fen : 0;
	unsigned min_n = this_min ? u->vel_min_n : 0;
	unsigned day_n = this_day ? u->vel_day_n : 0;

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

static int64_t
cash_limit(const struct auth_in *in, const struct lim_tier *t)
{
	const struct lim_user *u = in->user;
	int64_t lim = in->ext && in->ext->cash_limit_fen >= 0
			      ? in->ext->cash_limit_fen
			      : u->limit_fen * t->cash_pct / 100;

	/* Installment debt lowers the room for cash: one exposure ceiling. */
	return lim - u->inst_fen * in->policy->inst_cash_pct / 100;
}

struct funding {
	unsigned slot;      /* funder table slot */
	uint16_t funder_id;
	uint8_t own_pct;
};

/*
 * Pick who funds @p amount: the first partner bank (priority order) that
 * funds the product, may lend in the user's region, leaves the company at
 * least its minimum share, and whose quota and the company's own book both
 * hold their parts; else the company alone if its own book holds it all.
 */
static bool
pick_funder(const struct auth_in *in, int64_t amount, struct funding *fd)
{
	const struct lim_funders *fs = in->funders;
	unsigned bit = 1u << in->req->product;
	int64_t own_room = lim_budget_room(fs->budget[0], in->shard);

	for (unsigned i = 1; i < fs->n && i < LIM_FUNDERS_MAX; i++) {
		const struct lim_funder *f = &fs->f[i];
		unsigned own = 100u - f->share_pct;
		int64_t bank = lim_bank_part(amount, own);

		if (!(f->products & bit) || own < in->policy->own_share_min_pct)
			continue;
		if (f->region && f->region != in->user->region)
			continue;
		if (bank > lim_budget_room(fs->budget[i], in->shard) ||
		    amount - bank > own_room)
			continue;
		*fd = (struct funding){i, f->funder_id, (uint8_t)own};
		return true;
	}
	if ((fs->f[0].products & bit) && amount <= own_room) {
		*fd = (struct funding){0, fs->f[0].funder_id, 100};
		return true;
	}
	return false;
}

/* Every authorize rule that can decline, in docs/rules.md order. */
static enum auth_reason
authorize_check(const struct auth_in *in, const struct lim_tier *t,
		int64_t avail, uint8_t *notes)
{
	const struct auth_req *r = in->req;
	const struct lim_user *u = in->user;
	const struct lim_merchant *m = in->merchant;
	const struct lim_policy *p = in->policy;
	const struct auth_now *now = in->now;
	int64_t amount = r->amount;

	if (u->flags & LIM_USER_FROZEN)
		return AUTH_REASON_USER_FROZEN;
	if (!terms_valid(r))
		return AUTH_REASON_TERM_INVALID;
	if (!(t->products & (1u << r->product)) || r->terms > t->max_terms)
		return AUTH_REASON_RISK_TIER;
	if (m ? (m->flags & LIM_MERCHANT_BLOCKED) : !p->unknown_merchant_ok)
		return AUTH_REASON_MERCHANT_BLOCKED;
	if (p->risk_decline && risk_score(u, m) >= p->risk_decline)
		return AUTH_REASON_RISK_CASHOUT;
	if (r->group_id && (!in->group || !group_member(in->group, u->user_id)))
		return AUTH_REASON_UNKNOWN_GROUP;
	if (velocity_exceeded(u, t, now, amount))
		return AUTH_REASON_RISK_VELOCITY;
	if (r->product == LIM_PRODUCT_CASH && now->s < u->cool_until_s)
		return AUTH_REASON_COOLING_OFF;
	if (amount > avail)
		return AUTH_REASON_INSUFFICIENT_LIMIT;
	if (amount > avail - temp_quota(in->ext, now->s))
		*notes |= AUTH_NOTE_TEMP_QUOTA_USED;
	if (r->product == LIM_PRODUCT_CASH &&
	    amount > cash_limit(in, t) - u->cash_fen)
		return AUTH_REASON_CASH_LIMIT;
	if (u->self_cap_fen > 0 &&
	    amount > u->self_cap_fen - month_spend(u, now)) {
		if (!(u->flags & LIM_USER_SOFT_CAP))
			return AUTH_REASON_OVER_SELF_CAP;
		*notes |= AUTH_NOTE_OVER_SELF_CAP_SOFT;
	}
	if (r->group_id) {
		const struct lim_group_state *gs = in->group->st;
		int64_t spent = gs->month_start_s == now->month_start_s
					? gs->month_spend_fen : 0;
		if (amount > in->group->budget_fen - spent)
			return AUTH_REASON_GROUP_LIMIT;
	}
	if (amount > lim_budget_room(in->cap, in->shard))
		return AUTH_REASON_GLOBAL_CAP;
	return AUTH_REASON_APPROVED;
}

static uint8_t
approval_notes(const struct auth_in *in, const struct lim_tier *t,
	       int64_t avail_after)
{
	const struct auth_req *r = in->req;
	const struct lim_user *u = in->user;
	int64_t alert = in->ext && in->ext->alert_fen >= 0 ? in->ext->alert_fen
							  : t->large_spend_fen;
	uint8_t notes = 0;

	if (alert > 0 && r->amount >= alert)
		notes |= AUTH_NOTE_LARGE_SPEND;
	if (avail_after < u->limit_fen * in->policy->low_avail_pct / 100)
		notes |= AUTH_NOTE_LOW_AVAILABLE;
	if (r->product == LIM_PRODUCT_INSTALLMENT && in->merchant &&
	    (in->merchant->subsidy & subsidy_bit(r->terms)))
		notes |= AUTH_NOTE_INTEREST_FREE;
	return notes;
}

static void
decide_authorize(const struct auth_in *in, struct auth_out *out)
{
	const struct auth_req *r = in->req;
	const struct lim_user *u = in->user;
	const struct lim_tier *t = &in->policy->tier[u->tier % LIM_TIERS];
	struct auth_resp *a = &out->resp;
	struct lim_effect *e = &out->eff;
	int64_t avail = auth_available(u, in->ext, in->now->s);
	int64_t spend = month_spend(u, in->now);
	struct funding fd;
	uint8_t notes = 0;
	enum auth_reason why = authorize_check(in, t, avail, &notes);

	if (why == AUTH_REASON_APPROVED && !pick_funder(in, r->amount, &fd))
		why = AUTH_REASON_NO_FUNDER;
	if (why != AUTH_REASON_APPROVED) {
		decline(in, out, why);
		return;
	}
	a->status = AUTH_STATUS_APPROVED;
	a->reason = AUTH_REASON_APPROVED;
	a->amount = r->amount;
	a->available = avail - r->amount;
	a->notes = (uint8_t)(notes | approval_notes(in, t, a->available));
	a->funder_id = fd.funder_id;
	a->own_share_pct = fd.own_pct;
	a->risk_score = risk_score(u, in->merchant);
	a->self_cap_left = self_cap_left(u, spend + r->amount);
	AUTH_ASSERT(a->available >= 0);
	e->d_month_fen = r->amount;
	e->count_spend = 1;
	e->group_id = r->group_id;
	if (r->product == LIM_PRODUCT_CASH) {
		/* Cash goes out at once: debt now, no hold to capture. */
		e->d_outstanding_fen = r->amount;
		e->d_bucket_fen = r->amount;
		e->cool_until_s = in->now->s + in->policy->cool_cash_s;
		if (e->cool_until_s < u->cool_until_s)
			e->cool_until_s = u->cool_until_s;
	} else {
		e->d_holds_fen = r->amount;
		a->hold_expires = in->now->s + in->policy->hold_ttl_s;
	}
	answer_done(out, LIM_EFF_AUTH);
}

/* ------------------------------------------------------------------------ */
/* Capture, void, refund, repay                                               */

/*
 * The reference of a capture/void/refund: NULL-safe checks shared by the
 * three. Returns APPROVED when @p ref is an authorization of this user.
 */
static enum auth_reason
ref_check(const struct auth_in *in)
{
	const struct lim_op *ref = in->ref;

	if (!ref || ref->user_id != in->user->user_id ||
	    ref->state == LIM_OPS_TOMBSTONE)
		return AUTH_REASON_UNKNOWN_REF;
	if (ref->op != LIM_OP_AUTHORIZE || ref->status != AUTH_STATUS_APPROVED)
		return AUTH_REASON_BAD_STATE;
	return AUTH_REASON_APPROVED;
}

/* A hold still open at now (the timer may not have reaped a lapsed one). */
static bool
hold_open(const struct lim_op *ref, uint32_t now_s)
{
	return ref->state == LIM_OPS_HELD && now_s < ref->hold_expires_s;
}

/* Released hold gives its month spend back if spent this month. */
static int64_t
month_give_back(const struct auth_in *in, int64_t released)
{
	const struct lim_op *ref = in->ref;

	if (released <= 0 || !same_month(ref->created_s, in->now) ||
	    !same_month(in->user->spend_min * 60, in->now))
		return 0;
	return -released;
}

/* Approve a reversal-type op: answer fields shared by capture/void/refund. */
static void
approve_ref(const struct auth_in *in, struct auth_out *out, int64_t amount,
	    int64_t avail_after, enum lim_effect_kind kind)
{
	struct auth_resp *a = &out->resp;
	const struct lim_user *u = in->user;
	int64_t spend = month_spend(u, in->now) + out->eff.d_month_fen;

	a->status = AUTH_STATUS_APPROVED;
	a->reason = AUTH_REASON_APPROVED;
	a->amount = amount;
	a->available = avail_after;
	a->funder_id = in->ref->funder_id;
	a->own_share_pct = in->ref->own_share_pct;
	a->risk_score = risk_score(u, in->merchant);
	a->self_cap_left = self_cap_left(u, spend);
	out->eff.group_id = in->ref->group_id;
	out->eff.product = in->ref->product;
	out->eff.terms = in->ref->terms;
	answer_done(out, kind);
}

static void
decide_capture(const struct auth_in *in, struct auth_out *out)
{
	const struct lim_op *ref = in->ref;
	struct lim_effect *e = &out->eff;
	int64_t amount = in->req->amount;
	enum auth_reason why = ref_check(in);
	int64_t avail, released;

	if (why == AUTH_REASON_APPROVED &&
	    (ref->product == LIM_PRODUCT_CASH || !hold_open(ref, in->now->s) ||
	     amount > ref->held_fen))
		why = AUTH_REASON_BAD_STATE;
	if (why != AUTH_REASON_APPROVED) {
		decline(in, out, why);
		return;
	}
	avail = auth_available(in->user, in->ext, in->now->s);
	released = ref->held_fen - amount;
	e->d_holds_fen = -ref->held_fen;
	e->d_outstanding_fen = amount;
	e->d_bucket_fen = ref->product == LIM_PRODUCT_INSTALLMENT ? amount : 0;
	e->d_month_fen = month_give_back(in, released);
	approve_ref(in, out, amount, avail + released, LIM_EFF_CAPTURE);
}

/* Void or refund naming an id never seen: UNKNOWN_REF and a tombstone. */
static void
tombstone(const struct auth_in *in, struct auth_out *out)
{
	decline(in, out, AUTH_REASON_UNKNOWN_REF);
	out->eff.kind = LIM_EFF_TOMBSTONE;
}

static void
decide_void(const struct auth_in *in, struct auth_out *out)
{
	const struct lim_op *ref = in->ref;
	struct lim_effect *e = &out->eff;
	int64_t amount = in->req->amount;
	enum auth_reason why;
	int64_t x;

	if (!ref) {
		tombstone(in, out);
		return;
	}
	why = ref_check(in);
	if (why == AUTH_REASON_APPROVED &&
	    (ref->product == LIM_PRODUCT_CASH || !hold_open(ref, in->now->s) ||
	     amount > ref->held_fen))
		why = AUTH_REASON_BAD_STATE;
	if (why != AUTH_REASON_APPROVED) {
		decline(in, out, why);
		return;
	}
	x = amount == 0 ? ref->held_fen : amount;
	e->d_holds_fen = -x;
	e->d_month_fen = month_give_back(in, x);
	approve_ref(in, out, x,
		    auth_available(in->user, in->ext, in->now->s) + x,
		    LIM_EFF_VOID);
	if (ref->held_fen > x)
		out->resp.hold_expires = ref->hold_expires_s;
	e->hold_expires_s = out->resp.hold_expires;
}

static void
decide_refund(const struct auth_in *in, struct auth_out *out)
{
	const struct lim_op *ref = in->ref;
	struct lim_effect *e = &out->eff;
	int64_t amount = in->req->amount;
	enum auth_reason why;
	int64_t debt, cut;

	if (!ref) {
		tombstone(in, out);
		return;
	}
	why = ref_check(in);
	if (why == AUTH_REASON_APPROVED &&
	    (ref->product == LIM_PRODUCT_CASH || ref->state != LIM_OPS_CAPTURED ||
	     amount > ref->captured_fen - ref->refunded_fen))
		why = AUTH_REASON_BAD_STATE;
	if (why != AUTH_REASON_APPROVED) {
		decline(in, out, why);
		return;
	}
	/*
	 * Back to the product it came from. If the user already repaid, only
	 * the remaining debt of that product is cut; the rest is paid out to
	 * the user by the ledger of record, outside the credit line.
	 */
	debt = bucket_debt(in->user, ref->product);
	cut = amount < debt ? amount : debt;
	e->d_outstanding_fen = -cut;
	e->d_bucket_fen = ref->product == LIM_PRODUCT_INSTALLMENT ? -cut : 0;
	approve_ref(in, out, amount,
		    auth_available(in->user, in->ext, in->now->s) + cut,
		    LIM_EFF_REFUND);
}

static void
decide_repay(const struct auth_in *in, struct auth_out *out)
{
	const struct auth_req *r = in->req;
	const struct lim_user *u = in->user;
	struct auth_resp *a = &out->resp;
	struct lim_effect *e = &out->eff;

	if (r->amount > bucket_debt(u, r->product)) {
		decline(in, out, AUTH_REASON_BAD_STATE);
		return;
	}
	e->d_outstanding_fen = -r->amount;
	e->d_bucket_fen = r->product == LIM_PRODUCT_PAYLATER ? 0 : -r->amount;
	a->status = AUTH_STATUS_APPROVED;
	a->reason = AUTH_REASON_APPROVED;
	a->amount = r->amount;
	a->available = auth_available(u, in->ext, in->now->s) + r->amount;
	a->risk_score = risk_score(u, in->merchant);
	a->self_cap_left = self_cap_left(u, month_spend(u, in->now));
	answer_done(out, LIM_EFF_REPAY);
}

bool
auth_expire(const struct lim_op *ref, const struct lim_user *u,
	    const struct auth_now *now, struct lim_effect *e)
{
	if (ref->state != LIM_OPS_HELD || ref->user_id != u->user_id ||
	    now->s < ref->hold_expires_s)
		return false;
	memset(e, 0, sizeof(*e));
	e->kind = LIM_EFF_EXPIRE;
	e->user_id = u->user_id;
	e->ref_id = ref->request_id;
	e->gateway_id = ref->gateway_id;
	e->now_s = now->s;
	e->op = LIM_OP_VOID;
	e->product = ref->product;
	e->terms = ref->terms;
	e->group_id = ref->group_id;
	e->funder_id = ref->funder_id;
	e->own_share_pct = ref->own_share_pct;
	e->amount_fen = ref->held_fen;
	e->d_holds_fen = -ref->held_fen;
	if (ref->created_s >= now->month_start_s &&
	    u->spend_min * 60 >= now->month_start_s)
		e->d_month_fen = -ref->held_fen;
	e->available_fen = auth_available(u, NULL, now->s) + ref->held_fen;
	e->self_cap_left_fen = -1;
	return true;
}

void
auth_decide(const struct auth_in *in, struct auth_out *out)
{
	AUTH_ASSERT(auth_req_check(in->req) == AUTH_REASON_APPROVED);
	answer_init(in, out);
	if (in->dup) {
		replay_dup(in, out);
		return;
	}
	if (!in->user) {
		answer_only(out, AUTH_REASON_UNKNOWN_USER);
		return;
	}
	switch (in->req->op) {
	case LIM_OP_AUTHORIZE:
		decide_authorize(in, out);
		break;
	case LIM_OP_CAPTURE:
		decide_capture(in, out);
		break;
	case LIM_OP_VOID:
		decide_void(in, out);
		break;
	case LIM_OP_REFUND:
		decide_refund(in, out);
		break;
	default:
		decide_repay(in, out);
		break;
	}
}
