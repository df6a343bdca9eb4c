/*
 * risk_apply.c - the actuator: what a verdict does to the credit state in
 * mode on (docs/risk.md). A user verdict raises the user's risk score and
 * freezes the user or lowers the limit by lower-pct, never below what the
 * user owes and holds; a merchant verdict raises the merchant's score and
 * may block it. Scores only go up. Each change is a settings record with
 * its own seq (a USER_SET or MERCHANT_SET struct lim_cfg_effect), returned
 * for the caller to journal.
 *
 * Concurrency: follows lim.h: a user is changed under its lock, the seq
 * taken there; a merchant is replaced by copy and publish, serialised by
 * the caller with every other merchant updater (risk.h, dp_risk_apply()).
 */
#include <errno.h>
#include <string.h>

#include "risk.h"

/* The limit after a lower-limit verdict: cut by pct, not below exposure. */
static int64_t
lowered(const struct lim_user *u, unsigned pct)
{
	int64_t exposure = u->outstanding_fen + u->holds_fen;
	/* limit <= LIM_MONEY_MAX, so limit * 100 cannot overflow */
	int64_t nl = u->limit_fen - u->limit_fen * (int64_t)pct / 100;

	return nl < exposure ? exposure : nl;
}

static int
apply_user(struct lim_db *db, const struct dp_risk_verdict *v,
	   struct lim_cfg_effect *out)
{
	struct lim_user *u = lim_users_find(db->users, v->id);
	uint8_t q, flags;
	int64_t limit;
	bool changed;

	if (!u)
		return 0;
	lim_user_lock(u);
	q = u->risk_q;
	flags = u->flags;
	limit = u->limit_fen;
	if (v->score / 4 > q)
		q = (uint8_t)(v->score / 4);
	if (v->kind == DP_RISK_V_FREEZE_USER)
		flags |= LIM_USER_FROZEN;
	if (v->kind == DP_RISK_V_LOWER_LIMIT && lowered(u, v->lower_pct) < limit)
		limit = lowered(u, v->lower_pct);
	changed = q != u->risk_q || flags != u->flags || limit != u->limit_fen;
	if (changed) {
		u->risk_q = q;
		u->flags = flags;
		/* node.c reads the limit without the lock (advisory copy). */
		__atomic_store_n(&u->limit_fen, limit, __ATOMIC_RELAXED);
		lim_cfg_user_set(out, lim_seq_take(db), u, LIM_UID_RISK,
				 v->now_s, false);
	}
	lim_user_unlock(u);
	return changed;
}

static int
apply_merchant(struct lim_db *db, const struct dp_risk_verdict *v,
	       struct lim_cfg_effect *out)
{
	const struct lim_merchant *cur = lim_merchant_find(db, (uint32_t)v->id);
	struct lim_merchant m = {.merchant_id = (uint32_t)v->id, .mcc = v->mcc,
				 .region = v->region};
	int rc;

	if (cur)
		m = *cur;
	if (v->kind == DP_RISK_V_BLOCK_MERCHANT)
		m.flags |= LIM_MERCHANT_BLOCKED;
	if (m.risk_score < v->score)
		m.risk_score = v->score;
	if (cur && cur->flags == m.flags && cur->risk_score == m.risk_score)
		return 0;
	rc = lim_merchant_set(db, &m);
	if (rc)
		return rc;
	memset(out, 0, sizeof(*out));
	out->seq = lim_seq_take(db);
	out->id = m.merchant_id;
	out->uid = LIM_UID_RISK;
	out->now_s = v->now_s;
	out->kind = LIM_EFF_MERCHANT_SET;
	out->u.merchant = m;
	return 1;
}

int
dp_risk_apply(struct lim_db *db, const struct dp_risk_verdict *v,
	      struct lim_cfg_effect *out)
{
	if (!db || !v->id || v->score > 1000)
		return -EINVAL;
	if (dp_risk_verdict_on_merchant(v->kind))
		return v->id > UINT32_MAX ? -EINVAL : apply_merchant(db, v, out);
	return apply_user(db, v, out);
}
