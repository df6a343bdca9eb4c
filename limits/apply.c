/*
 * apply.c - apply a decided effect to the database.
 *
 * auth_decide() says what changes (struct lim_effect, exact deltas); this file
 * makes it so, all or nothing, in an order that can fail only before anything
 * is visible: first the op entries are inserted (the store may be full), then
 * the ceiling and funder budgets are taken (another shard may have taken the
 * global room since the decision), and only then are balances, the ref entry
 * and the ledger sequence changed, which cannot fail.
 *
 * Concurrency: the caller holds the user's lock (and the group's); entries of
 * this user and the user slot change only under it. The ledger sequence is
 * taken under the user lock, so per user the journal order is the order of
 * decisions (an authorization always precedes its capture).
 *
 * Funder book-keeping is derived here, not in the effect: the bank part of a
 * loan is lim_bank_part(amount, own share), taken from the bank's quota (the
 * rest from the company's own book, slot 0) and given back in proportion to
 * what is released, from the entry's funder_fen, so rounding never drifts.
 */
#include <errno.h>
#include <string.h>

#include "lim_pvt.h"

/* The op entry of the request itself: its answer and, for AUTH, its book. */
void
lim_op_init(struct lim_op *n, const struct lim_effect *e,
	    const struct lim_policy *p)
{
	memset(n, 0, sizeof(*n));
	n->request_id = e->request_id;
	n->user_id = e->user_id;
	n->gateway_id = e->gateway_id;
	n->retain_until_s = e->now_s + p->retain_s;
	n->amount_fen = e->amount_fen;
	n->available_fen = e->available_fen;
	n->self_cap_left_fen = e->self_cap_left_fen;
	n->hold_expires_s = e->hold_expires_s;
	n->risk_score = e->risk_score;
	n->funder_id = e->funder_id;
	n->op = e->op;
	n->status = e->status;
	n->reason = e->reason;
	n->notes = e->notes;
	n->own_share_pct = e->own_share_pct;
	n->product = e->product;
	n->terms = e->terms;
	n->state = LIM_OPS_DECIDED;
	n->created_s = e->now_s;
	n->group_id = e->group_id;
	if (e->kind != LIM_EFF_AUTH)
		return;
	n->funder_fen = lim_bank_part(e->amount_fen, e->own_share_pct);
	if (e->product == LIM_PRODUCT_CASH) {
		n->state = LIM_OPS_CAPTURED;
		n->captured_fen = e->amount_fen;
	} else {
		n->state = LIM_OPS_HELD;
		n->held_fen = e->amount_fen;
		n->retain_until_s = lim_max_u32(n->retain_until_s,
						e->hold_expires_s);
	}
}

/* Insert the request's entry (and a tombstone); nothing else changes yet. */
static int
insert_entries(struct lim_db *db, const struct lim_effect *e,
	       const struct lim_policy *p, struct lim_op **mine)
{
	struct lim_op n, *tomb;
	int rc = 0;

	*mine = NULL;
	if (e->kind == LIM_EFF_EXPIRE)
		return 0;
	lim_op_init(&n, e, p);
	*mine = lim_ops_insert(db->ops, &n, &rc);
	if (!*mine)
		return rc;
	if (e->kind != LIM_EFF_TOMBSTONE)
		return 0;
	lim_op_init(&n, e, p);
	n.request_id = e->ref_id;
	n.state = LIM_OPS_TOMBSTONE;
	n.op = 0; /* marks a tombstone for lookups by other users */
	tomb = lim_ops_insert(db->ops, &n, &rc);
	if (!tomb && rc == -ENOSPC) {
		lim_ops_remove(db->ops, *mine);
		*mine = NULL;
		return rc;
	}
	return 0; /* -EEXIST: the original arrived meanwhile; no tombstone */
}

/* Take the bank and own parts of a new loan from the funders' quotas. */
static int
funders_take(const struct lim_funders *fs, unsigned shard,
	     const struct lim_effect *e)
{
	int slot = lim_funder_slot(fs, e->funder_id);
	int64_t bank = lim_bank_part(e->amount_fen, e->own_share_pct);

	if (slot < 0)
		return -EAGAIN;
	if (slot == 0)
		return lim_budget_take(fs->budget[0], shard, e->amount_fen) ? 0
									    : -EAGAIN;
	if (!lim_budget_take(fs->budget[slot], shard, bank))
		return -EAGAIN;
	if (!lim_budget_take(fs->budget[0], shard, e->amount_fen - bank)) {
		lim_budget_give(fs->budget[slot], shard, bank);
		return -EAGAIN;
	}
	return 0;
}

/*
 * Release @p x of the loan in @p ref back to the quotas, in proportion to
 * what is still alive, and lower ref->funder_fen by the bank's share of it.
 * Call before the ref's held/captured/refunded change.
 */
static void
funders_release(const struct lim_funders *fs, unsigned shard,
		struct lim_op *ref, int64_t x)
{
	int64_t alive = ref->held_fen + ref->captured_fen - ref->refunded_fen;
	int64_t keep, bank;
	int slot;

	if (x <= 0 || alive <= 0)
		return;
	LIM_VERIFY(x <= alive);
	keep = (int64_t)((__int128)ref->funder_fen * (alive - x) / alive);
	bank = ref->funder_fen - keep;
	ref->funder_fen = keep;
	slot = lim_funder_slot(fs, ref->funder_id);
	if (slot > 0)
		lim_budget_give(fs->budget[slot], shard, bank);
	if (slot == 0)
		bank = 0; /* company alone: the whole release is its own */
	lim_budget_give(fs->budget[0], shard, x - bank);
}

static uint32_t
sat_add_u32(uint32_t a, int64_t b)
{
	int64_t v = (int64_t)a + b;

	return v > UINT32_MAX ? UINT32_MAX : v < 0 ? 0 : (uint32_t)v;
}

/*
 * Count a spend in the velocity windows and the month, resetting stale ones.
 * The windows only move forward: "now" is taken once per burst and per
 * thread, so a thread a second behind another may count a spend after a
 * newer one (at 23:59:59 on the last day of a month, after 00:00:00); it
 * goes into the newest windows instead of taking them back to the old month
 * (which would drop the new month's spend, and a later give-back could then
 * take the month negative).
 */
void
lim_count_spend(struct lim_user *u, const struct lim_effect *e,
		const struct lim_policy *p)
{
	uint32_t last_s = u->spend_min * 60;
	uint32_t now_s = e->now_s > last_s ? e->now_s : last_s;
	uint32_t minute = now_s / 60;

	if (last_s < lim_month_start(now_s, p->tz_offset_s))
		u->month_spend_fen = 0;
	if (last_s < lim_day_start(now_s, p->tz_offset_s)) {
		u->vel_day_n = 0;
		u->vel_day_fen = 0;
	}
	if (u->spend_min != minute) {
		u->vel_min_n = 0;
		u->vel_min_fen = 0;
	}
	u->spend_min = minute;
	u->vel_min_n = u->vel_min_n == UINT8_MAX ? UINT8_MAX : u->vel_min_n + 1;
	u->vel_day_n = u->vel_day_n == UINT8_MAX ? UINT8_MAX : u->vel_day_n + 1;
	u->vel_min_fen = sat_add_u32(u->vel_min_fen, e->amount_fen);
	u->vel_day_fen = sat_add_u32(u->vel_day_fen, e->amount_fen);
}

/*
 * @p held_since: when the released hold was placed (its ref's created_s). A
 * give-back (d_month < 0) comes out of the month spend only if that month
 * holds the hold: a thread whose clock lags may release last month's hold
 * after this month's first spend. Where clocks agree this is what
 * auth_decide() decided (it gives back only holds placed this month).
 */
static void
user_apply(struct lim_user *u, const struct lim_effect *e,
	   const struct lim_policy *p, uint32_t held_since)
{
	u->outstanding_fen += e->d_outstanding_fen;
	u->holds_fen += e->d_holds_fen;
	if (e->product == LIM_PRODUCT_CASH)
		u->cash_fen += e->d_bucket_fen;
	else if (e->product == LIM_PRODUCT_INSTALLMENT)
		u->inst_fen += e->d_bucket_fen;
	else
		LIM_VERIFY(e->d_bucket_fen == 0);
	if (e->count_spend)
		lim_count_spend(u, e, p);
	if (e->d_month_fen >= 0 ||
	    held_since >= lim_month_start(u->spend_min * 60, p->tz_offset_s))
		u->month_spend_fen += e->d_month_fen;
	if (e->cool_until_s > u->cool_until_s)
		u->cool_until_s = e->cool_until_s;
	LIM_VERIFY(u->outstanding_fen >= 0 && u->holds_fen >= 0);
	LIM_VERIFY(u->cash_fen >= 0 && u->inst_fen >= 0);
	LIM_VERIFY(u->cash_fen + u->inst_fen <= u->outstanding_fen);
	LIM_VERIFY(u->month_spend_fen >= 0);
}

/* The group's month moves forward only, like the user's (count_spend). */
static void
group_apply(const struct lim_group *g, const struct lim_effect *e,
	    const struct lim_policy *p, uint32_t held_since)
{
	struct lim_group_state *gs = g->st;
	uint32_t month = lim_month_start(e->now_s, p->tz_offset_s);

	if (e->count_spend && month > gs->month_start_s) {
		gs->month_start_s = month;
		gs->month_spend_fen = 0;
	}
	if (e->d_month_fen >= 0 || held_since >= gs->month_start_s)
		gs->month_spend_fen += e->d_month_fen;
	LIM_VERIFY(gs->month_spend_fen >= 0);
}

/* The ref entry after a capture, void, refund or expiry. */
static void
ref_apply(struct lim_db *db, const struct lim_funders *fs, unsigned shard,
	  struct lim_op *ref, const struct lim_effect *e,
	  const struct lim_policy *p)
{
	LIM_VERIFY(ref && ref->user_id == e->user_id);
	switch (e->kind) {
	case LIM_EFF_CAPTURE:
		funders_release(fs, shard, ref, ref->held_fen - e->amount_fen);
		ref->captured_fen += e->amount_fen;
		ref->held_fen = 0;
		ref->state = LIM_OPS_CAPTURED;
		ref->retain_until_s = lim_max_u32(ref->retain_until_s,
						  e->now_s + p->refund_window_s);
		break;
	case LIM_EFF_VOID:
	case LIM_EFF_EXPIRE:
		funders_release(fs, shard, ref, e->amount_fen);
		ref->held_fen -= e->amount_fen;
		LIM_VERIFY(ref->held_fen >= 0);
		if (ref->held_fen == 0)
			ref->state = LIM_OPS_CLOSED;
		break;
	case LIM_EFF_REFUND:
		funders_release(fs, shard, ref, e->amount_fen);
		ref->refunded_fen += e->amount_fen;
		LIM_VERIFY(ref->refunded_fen <= ref->captured_fen);
		if (ref->refunded_fen == ref->captured_fen)
			ref->state = LIM_OPS_CLOSED;
		break;
	default:
		break;
	}
	(void)db;
}

/* Take what must be taken; undo and say -EAGAIN if anything does not fit. */
static int
budgets_take(struct lim_db *db, const struct lim_funders *fs, unsigned shard,
	     const struct lim_effect *e, int64_t d_cap)
{
	if (d_cap > 0 && !lim_budget_take(db->cap, shard, d_cap))
		return -EAGAIN;
	if (e->kind == LIM_EFF_AUTH && funders_take(fs, shard, e) != 0) {
		if (d_cap > 0)
			lim_budget_give(db->cap, shard, d_cap);
		return -EAGAIN;
	}
	return 0;
}

int
lim_apply(struct lim_db *db, unsigned shard, struct lim_user *u,
	  const struct lim_group *g, struct lim_op *ref, struct lim_effect *e)
{
	const struct lim_policy *p = lim_policy_get(db);
	const struct lim_funders *fs = lim_funders_get(db);
	int64_t d_cap = e->d_outstanding_fen + e->d_holds_fen;
	struct lim_op *mine;
	int rc;

	LIM_ASSERT(e->kind > LIM_EFF_NONE && e->kind < LIM_EFF_KINDS);
	LIM_ASSERT(shard < db->shards);
	LIM_VERIFY(u && u->user_id == e->user_id);
	if (lim_eff_has_ref(e->kind) && !ref)
		return -EINVAL;
	rc = insert_entries(db, e, p, &mine);
	if (rc)
		return rc;
	rc = budgets_take(db, fs, shard, e, d_cap);
	if (rc) {
		/* Only money-moving kinds take budgets: no tombstone to undo. */
		if (mine)
			lim_ops_remove(db->ops, mine);
		return rc;
	}
	/* From here on nothing can fail. */
	e->seq = __atomic_add_fetch(&db->seq, 1, __ATOMIC_RELAXED);
	if (mine) {
		mine->last_seq = e->seq;
		if (lim_eff_moves_money(e->kind))
			mine->ledger_seq = e->seq;
	}
	if (lim_eff_has_ref(e->kind))
		ref->last_seq = e->seq;
	if (lim_eff_has_ref(e->kind))
		ref_apply(db, fs, shard, ref, e, p);
	user_apply(u, e, p, ref ? ref->created_s : e->now_s);
	if (g && e->group_id == g->group_id)
		group_apply(g, e, p, ref ? ref->created_s : e->now_s);
	if (d_cap < 0)
		lim_budget_give(db->cap, shard, -d_cap);
	return 0;
}
