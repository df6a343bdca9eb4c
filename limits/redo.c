/*
 * redo.c - the journal redo: apply journal records to a database loaded
 * from a snapshot, without deciding anything (recovery, authjournal
 * summary, authconsume). "Replay" is the anti-replay window (auth/replay.c).
 *
 * A snapshot is consistent per record, not as a whole (lim.h, "Snapshots"):
 * each user was copied with the ledger seq of that moment (its stamp), each
 * op entry carries the seq of its last change (last_seq), each group's
 * month its stamp; everything with seq <= seq_start is in every copy. So a
 * record with seq > seq_start is applied part by part:
 *   - the user's balances, only if seq > the user's stamp;
 *   - the request's own op entry, inserted if absent (an older entry under
 *     the same key is one the live engine had reclaimed: replaced);
 *   - a ref entry (capture, void, refund, expiry), only if seq > last_seq;
 *   - a group's month, only if seq > the group's stamp;
 *   - budgets are derived, as snapshot load derives them: at the start
 *     everything in use is given back, during the redo nothing is taken
 *     (a snapshot's records are copied at different moments, so what it
 *     says is in use at a seq inside its window mixes times, and a quota
 *     or ceiling decrease redone there could be refused although it was
 *     valid live), and at the end the ceiling in use is taken again as the
 *     users' debt and holds, each funder's quota as its part of the live
 *     loans in the op entries;
 *   - settings records set what they carry (absolute values, so records of
 *     the window (seq_start, seq_end] that the snapshot already holds
 *     converge to the newest value).
 * The arithmetic mirrors lim_apply() (apply.c): user_delta(),
 * group_delta(), ref_delta(), funders_release() are the same rules (and
 * lim_op_init(), lim_count_spend() the same code, from apply.c); the
 * tests redo recorded effects onto a snapshot taken mid-stream and compare
 * every byte with the engine that applied them live
 * (tests/unit/test_redo.c), so the two cannot drift unnoticed.
 *
 * Unlike lim_apply(), a record that contradicts the state (a balance that
 * would go negative, a ref larger than the hold) is refused with -EBADMSG
 * and changes nothing: that means the snapshot and the journal do not
 * belong together, and start-up must stop rather than abort mid-way.
 *
 * Concurrency: one thread, before the database is shared (no locks taken).
 * The caller is a registered QSBR thread, online (RCU lookups, publishes).
 */
#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <string.h>

#include "lim_pvt.h"

struct group_stamp {
	uint32_t id;
	uint32_t stamp;
};

struct lim_redo {
	struct lim_db *db;
	const struct lim_snapshot_meta *meta; /* may be NULL */
	unsigned shard;
	uint64_t seq_start;
	uint64_t next_seq;
	uint64_t n_groups;
	struct group_stamp *groups;           /* sorted by id */
	struct lim_redo_stats st;
	/* a policy arriving in parts */
	uint8_t policy[LIM_POLICY_PART_LEN * 8];
	uint32_t policy_have;                 /* bit per part received */
	bool policy_started;                  /* part 0 seen in this redo */
};

#define POLICY_PARTS ((sizeof(struct lim_policy) + LIM_POLICY_PART_LEN - 1) / \
		      LIM_POLICY_PART_LEN)
_Static_assert(POLICY_PARTS <= 8, "policy parts fit the buffer");

__attribute__((format(printf, 3, 4))) static int
refuse(char *err, size_t n, const char *fmt, ...)
{
	va_list ap;

	if (err && n) {
		va_start(ap, fmt);
		vsnprintf(err, n, fmt, ap);
		va_end(ap);
	}
	return -EBADMSG;
}

static int
gs_cmp(const void *a, const void *b)
{
	const struct group_stamp *x = a, *y = b;

	return x->id < y->id ? -1 : x->id > y->id;
}

/* What the state says is in use: the ceiling and each funder's quota. */
struct in_use {
	__int128 cap;
	__int128 funder[LIM_FUNDERS_MAX];
	const struct lim_funders *fs;
};

static int
loan_in_use(struct lim_op *op, void *arg)
{
	struct in_use *u = arg;
	int64_t alive;

	if (op->op != LIM_OP_AUTHORIZE || op->status != 0 ||
	    op->state == LIM_OPS_TOMBSTONE)
		return 0;
	alive = op->held_fen + op->captured_fen - op->refunded_fen;
	u->funder[0] += alive - op->funder_fen;
	for (unsigned i = 1; i < u->fs->n; i++)
		if (u->fs->f[i].funder_id == op->funder_id)
			u->funder[i] += op->funder_fen;
	return 0;
}

static void
in_use(struct lim_db *db, struct in_use *u)
{
	memset(u, 0, sizeof(*u));
	u->fs = lim_funders_get(db);
	for (uint64_t i = 0; i < lim_users_count(db->users); i++) {
		const struct lim_user *x = lim_users_at(db->users, i);

		u->cap += x->outstanding_fen + x->holds_fen;
	}
	lim_ops_foreach(db->ops, loan_in_use, u);
}

/* Take (or give back) from budget @p b what is in use; false if short. */
static bool
move_one(struct lim_redo *r, struct lim_budget *b, __int128 fen, bool take)
{
	bool ok = true;

	if (fen <= 0)
		return true;
	if (fen > lim_budget_total(b))
		ok = false;
	else if (take)
		ok = lim_budget_take(b, r->shard, (int64_t)fen);
	else
		lim_budget_give(b, r->shard, (int64_t)fen);
	lim_budget_flush(b, r->shard);
	return ok;
}

/* Release (start) or take again (end) everything in use; false if short. */
static bool
budgets_move(struct lim_redo *r, bool take)
{
	struct in_use u;
	bool ok;

	in_use(r->db, &u);
	ok = move_one(r, r->db->cap, u.cap, take);
	for (unsigned i = 0; i < u.fs->n; i++)
		ok &= move_one(r, u.fs->budget[i], u.funder[i], take);
	return ok;
}

struct lim_redo *
lim_redo_create(struct lim_db *db, const struct lim_snapshot_meta *meta,
		unsigned shard)
{
	struct lim_redo *r = calloc(1, sizeof(*r));

	if (!r)
		return NULL;
	LIM_VERIFY(shard < db->shards);
	r->db = db;
	r->meta = meta;
	r->shard = shard;
	r->seq_start = meta ? meta->seq_start : 0;
	r->next_seq = r->seq_start + 1;
	if (meta && meta->groups) {
		r->groups = malloc(meta->groups * sizeof(*r->groups));
		if (!r->groups) {
			free(r);
			return NULL;
		}
		for (uint64_t i = 0; i < meta->groups; i++)
			r->groups[i] = (struct group_stamp){meta->group_id[i],
							    meta->group_stamp[i]};
		qsort(r->groups, meta->groups, sizeof(*r->groups), gs_cmp);
		r->n_groups = meta->groups;
	}
	budgets_move(r, false);
	return r;
}

void
lim_redo_free(struct lim_redo *r)
{
	if (!r)
		return;
	free(r->groups);
	free(r);
}

uint64_t
lim_redo_next_seq(const struct lim_redo *r)
{
	return r->next_seq;
}

/* The seq up to which the snapshot's copy of @p u holds its effects. */
static uint64_t
user_stamp(const struct lim_redo *r, struct lim_user *u)
{
	struct lim_users *t = r->db->users;
	uint64_t idx;

	if (!r->meta || r->meta->users == 0)
		return 0;
	idx = (uint64_t)(u - lim_users_at(t, 0));
	LIM_VERIFY(idx < lim_users_count(t) && lim_users_at(t, idx) == u);
	return idx < r->meta->users ? r->seq_start + r->meta->user_stamp[idx] : 0;
}

static uint64_t
group_stamp(const struct lim_redo *r, uint32_t id)
{
	struct group_stamp key = {id, 0}, *g;

	if (!r->n_groups)
		return 0;
	g = bsearch(&key, r->groups, r->n_groups, sizeof(key), gs_cmp);
	return g ? r->seq_start + g->stamp : 0;
}

/* ------------------------------------------------------------------------ */
/* The rules of apply.c, on the redo's terms                                  */

/* apply.c funders_release(), for the entry only: budgets are derived. */
static void
funders_release(struct lim_op *ref, int64_t x)
{
	int64_t alive = ref->held_fen + ref->captured_fen - ref->refunded_fen;

	if (x <= 0 || alive <= 0)
		return;
	ref->funder_fen = (int64_t)((__int128)ref->funder_fen * (alive - x) /
				    alive);
}

/* apply.c user_apply() on a copy; false if a balance would break. */
static bool
user_delta(struct lim_user *u, const struct lim_effect *e,
	   const struct lim_policy *p, uint32_t held_since)
{
	u->outstanding_fen += e->d_outstanding_fen;
	u->holds_fen += e->d_holds_fen;
	if (e->product == LIM_PRODUCT_CASH)
		u->cash_fen += e->d_bucket_fen;
	else if (e->product == LIM_PRODUCT_INSTALLMENT)
		u->inst_fen += e->d_bucket_fen;
	else if (e->d_bucket_fen != 0)
		return false;
	if (e->count_spend)
		lim_count_spend(u, e, p);
	if (e->d_month_fen >= 0 ||
	    held_since >= lim_month_start(u->spend_min * 60, p->tz_offset_s))
		u->month_spend_fen += e->d_month_fen;
	if (e->cool_until_s > u->cool_until_s)
		u->cool_until_s = e->cool_until_s;
	return u->outstanding_fen >= 0 && u->holds_fen >= 0 &&
	       u->cash_fen >= 0 && u->inst_fen >= 0 &&
	       u->cash_fen + u->inst_fen <= u->outstanding_fen &&
	       u->month_spend_fen >= 0;
}

/* apply.c group_apply() on a copy. */
static bool
group_delta(struct lim_group_state *gs, const struct lim_effect *e,
	    const struct lim_policy *p, uint32_t held_since)
{
	uint32_t month = lim_month_start(e->now_s, p->tz_offset_s);

	if (e->count_spend && month > gs->month_start_s) {
		gs->month_start_s = month;
		gs->month_spend_fen = 0;
	}
	if (e->d_month_fen >= 0 || held_since >= gs->month_start_s)
		gs->month_spend_fen += e->d_month_fen;
	return gs->month_spend_fen >= 0;
}

/* Would apply.c ref_apply() keep the ref's book valid? */
static bool
ref_fits(const struct lim_op *ref, const struct lim_effect *e)
{
	switch (e->kind) {
	case LIM_EFF_CAPTURE:
		return e->amount_fen >= 0 && e->amount_fen <= ref->held_fen;
	case LIM_EFF_VOID:
	case LIM_EFF_EXPIRE:
		return e->amount_fen >= 0 && e->amount_fen <= ref->held_fen;
	case LIM_EFF_REFUND:
		return e->amount_fen >= 0 &&
		       ref->refunded_fen + e->amount_fen <= ref->captured_fen;
	default:
		return true;
	}
}

/* apply.c ref_apply(). */
static void
ref_delta(struct lim_op *ref, const struct lim_effect *e,
	  const struct lim_policy *p)
{
	switch (e->kind) {
	case LIM_EFF_CAPTURE:
		funders_release(ref, ref->held_fen - e->amount_fen);
		ref->captured_fen += e->amount_fen;
		ref->held_fen = 0;
		ref->state = LIM_OPS_CAPTURED;
		ref->retain_until_s = lim_max_u32(ref->retain_until_s,
						  e->now_s + p->refund_window_s);
		break;
	case LIM_EFF_VOID:
	case LIM_EFF_EXPIRE:
		funders_release(ref, e->amount_fen);
		ref->held_fen -= e->amount_fen;
		if (ref->held_fen == 0)
			ref->state = LIM_OPS_CLOSED;
		break;
	case LIM_EFF_REFUND:
		funders_release(ref, e->amount_fen);
		ref->refunded_fen += e->amount_fen;
		if (ref->refunded_fen == ref->captured_fen)
			ref->state = LIM_OPS_CLOSED;
		break;
	default:
		break;
	}
}

/* ------------------------------------------------------------------------ */
/* Money records                                                              */

/* An entry the live engine had reclaimed: it goes. */
static void
entry_drop(struct lim_redo *r, struct lim_op *old)
{
	lim_ops_remove(r->db->ops, old);
	r->st.entry_replaced++;
}

static int
ops_insert(struct lim_redo *r, const struct lim_op *n, struct lim_op **out,
	   char *err, size_t errlen)
{
	int rc = 0;

	*out = lim_ops_insert(r->db->ops, n, &rc);
	if (*out)
		return 0;
	if (rc == -ENOSPC)
		snprintf(err, errlen, "seq %" PRIu64 ": op store full (%" PRIu64
			 " entries): start with a larger --ops-max",
			 n->last_seq, lim_ops_capacity(r->db->ops));
	else
		snprintf(err, errlen, "seq %" PRIu64 ": op entry insert: %s",
			 n->last_seq, strerror(-rc));
	return rc ? rc : -EIO;
}

/*
 * A TOMBSTONE record's tombstone, if its key is free: the live insert
 * found it free too (an entry with that key would be older, so in the
 * snapshot or redone already). Independent of the request's own entry:
 * the snapshot's walk may have copied one and not the other.
 */
static int
tombstone(struct lim_redo *r, const struct lim_effect *e,
	  const struct lim_policy *p, char *err, size_t errlen)
{
	struct lim_op n, *t;

	if (lim_ops_find(r->db->ops, e->gateway_id, e->ref_id))
		return 0;
	lim_op_init(&n, e, p);
	n.request_id = e->ref_id;
	n.state = LIM_OPS_TOMBSTONE;
	n.op = 0;
	return ops_insert(r, &n, &t, err, errlen);
}

/* The request's own entry (and a TOMBSTONE's tombstone). */
static int
own_entries(struct lim_redo *r, const struct lim_effect *e,
	    const struct lim_policy *p, char *err, size_t errlen)
{
	struct lim_op n, *cur, *mine;
	int rc;

	cur = lim_ops_find(r->db->ops, e->gateway_id, e->request_id);
	if (cur && cur->last_seq >= e->seq) {
		r->st.entry_in_snapshot++;
	} else {
		if (cur)
			entry_drop(r, cur);
		lim_op_init(&n, e, p);
		n.last_seq = e->seq;
		if (lim_eff_moves_money(e->kind))
			n.ledger_seq = e->seq;
		rc = ops_insert(r, &n, &mine, err, errlen);
		if (rc)
			return rc;
		r->st.entry_inserted++;
	}
	return e->kind == LIM_EFF_TOMBSTONE ? tombstone(r, e, p, err, errlen) : 0;
}

/* Check every part that will be applied, before anything changes. */
static int
money_check(struct lim_redo *r, const struct lim_effect *e,
	    struct lim_user *u, bool do_user, struct lim_op *ref, bool do_ref,
	    const struct lim_policy *p, struct lim_user *nu, char *err,
	    size_t errlen)
{
	uint32_t held_since = ref ? ref->created_s : e->now_s;

	if (do_ref && !ref_fits(ref, e))
		return refuse(err, errlen, "seq %" PRIu64 ": %s of %" PRId64
			      " fen does not fit entry (gateway %u, request %"
			      PRIu64 ") of user %" PRIu64, e->seq,
			      e->kind == LIM_EFF_REFUND ? "refund" : "release",
			      e->amount_fen, ref->gateway_id, ref->request_id,
			      e->user_id);
	*nu = *u;
	if (do_user && !user_delta(nu, e, p, held_since))
		return refuse(err, errlen, "seq %" PRIu64 ": user %" PRIu64
			      "'s balances would become invalid (debt %"
			      PRId64 " + %" PRId64 ", holds %" PRId64 " + %"
			      PRId64 ")", e->seq, e->user_id, u->outstanding_fen,
			      e->d_outstanding_fen, u->holds_fen, e->d_holds_fen);
	(void)r;
	return 0;
}

/* The group a record moves, if its stamp says so, and its new month. */
static const struct lim_group *
group_part(struct lim_redo *r, const struct lim_effect *e,
	   const struct lim_policy *p, uint32_t held_since,
	   struct lim_group_state *gs, char *err, size_t errlen, int *rc)
{
	const struct lim_group *g;

	*rc = 0;
	if (!e->group_id || !(g = lim_group_find(r->db, e->group_id)))
		return NULL;
	if (e->seq <= group_stamp(r, e->group_id)) {
		r->st.group_in_snapshot++;
		return NULL;
	}
	*gs = *g->st;
	if (!group_delta(gs, e, p, held_since))
		*rc = refuse(err, errlen, "seq %" PRIu64 ": group %u's month "
			     "spend would become negative", e->seq, g->group_id);
	return g;
}

static int
redo_money(struct lim_redo *r, const struct lim_effect *e, char *err,
	     size_t errlen)
{
	struct lim_db *db = r->db;
	const struct lim_policy *p = lim_policy_get(db);
	struct lim_user *u = lim_users_find(db->users, e->user_id), nu;
	struct lim_op *ref = NULL;
	const struct lim_group *g = NULL;
	struct lim_group_state gs = {0};
	bool do_user, do_ref = false;
	int foreign, rc;

	if (!u) {
		r->st.unknown_user++;
		return 0;
	}
	if (lim_eff_has_ref(e->kind)) {
		ref = lim_ops_find_owned(db->ops, e->gateway_id, e->ref_id,
					 e->user_id, &foreign);
		if (!ref)
			r->st.missing_ref++;
		do_ref = ref && e->seq > ref->last_seq;
		if (ref && !do_ref)
			r->st.ref_in_snapshot++;
	}
	do_user = e->seq > user_stamp(r, u);
	rc = money_check(r, e, u, do_user, ref, do_ref, p, &nu, err, errlen);
	if (!rc)
		g = group_part(r, e, p, ref ? ref->created_s : e->now_s, &gs, err,
			       errlen, &rc);
	if (rc)
		return rc;
	if (e->kind != LIM_EFF_EXPIRE &&
	    (rc = own_entries(r, e, p, err, errlen)) != 0)
		return rc;
	if (g) {
		g->st->month_start_s = gs.month_start_s;
		g->st->month_spend_fen = gs.month_spend_fen;
		r->st.group_applied++;
	}
	if (do_ref) {
		ref_delta(ref, e, p);
		ref->last_seq = e->seq;
		r->st.ref_applied++;
	}
	if (!do_user) {
		r->st.user_in_snapshot++;
		return 0;
	}
	nu.lock = u->lock;
	*u = nu;
	r->st.user_applied++;
	return 0;
}

/* ------------------------------------------------------------------------ */
/* Settings records                                                           */

/* Budgets are moved by the setters from the global room only. */
static void
flush_shard(struct lim_redo *r)
{
	const struct lim_funders *fs = lim_funders_get(r->db);

	lim_budget_flush(r->db->cap, r->shard);
	for (unsigned i = 0; i < fs->n; i++)
		lim_budget_flush(fs->budget[i], r->shard);
}

static void
user_settings(struct lim_user *u, const struct lim_cfg_effect *c)
{
	u->limit_fen = c->u.user.limit_fen;
	u->self_cap_fen = c->u.user.self_cap_fen;
	u->cool_until_s = c->u.user.cool_until_s;
	u->region = c->u.user.region;
	u->tier = c->u.user.tier;
	u->flags = c->u.user.flags;
	u->risk_q = c->u.user.risk_q;
}

static int
redo_user_set(struct lim_redo *r, const struct lim_cfg_effect *c)
{
	struct lim_user *u = lim_users_find(r->db->users, c->id);
	struct lim_user nu;

	if (!u && !c->u.user.created) {
		r->st.unknown_user++;
		return 0;
	}
	if (!u) {
		memset(&nu, 0, sizeof(nu));
		nu.user_id = c->id;
		user_settings(&nu, c);
		if (lim_users_insert(r->db->users, &nu)) {
			r->st.settings_failed++;
			return 0;
		}
		r->st.users_created++;
		return 0;
	}
	if (c->seq <= user_stamp(r, u)) {
		r->st.user_in_snapshot++;
		return 0;
	}
	user_settings(u, c);
	r->st.settings_applied++;
	return 0;
}

static int
funder_set(struct lim_redo *r, const struct lim_cfg_effect *c)
{
	const struct lim_funders *fs = lim_funders_get(r->db);
	const struct lim_funder *nf = &c->u.funder;
	struct lim_funder f[LIM_FUNDERS_MAX];
	unsigned n = fs->n;
	int slot = lim_funder_slot(fs, nf->funder_id);

	memcpy(f, fs->f, n * sizeof(f[0]));
	if (nf->quota_fen < 0) {
		if (slot <= 0)
			return -ENOENT;
		memmove(&f[slot], &f[slot + 1], (n - (unsigned)slot - 1) * sizeof(f[0]));
		n--;
	} else if (slot >= 0) {
		f[slot] = *nf;
	} else {
		if (n == LIM_FUNDERS_MAX)
			return -ENOSPC;
		f[n++] = *nf;
	}
	flush_shard(r);
	return lim_funders_set(r->db, f, n);
}

static int
policy_part(struct lim_redo *r, const struct lim_cfg_effect *c)
{
	uint16_t part = c->u.policy.part, parts = c->u.policy.parts;
	struct lim_policy p;

	if (parts != POLICY_PARTS || part >= parts)
		return -EINVAL;
	if (part == 0) {
		r->policy_have = 0;
		r->policy_started = true;
	} else if (!r->policy_started) {
		/* Its first parts are at or before seq_start: the policy was
		 * published before they were journaled (the producers' rule),
		 * so the snapshot holds it already. */
		return 1;
	}
	memcpy(r->policy + (size_t)part * LIM_POLICY_PART_LEN, c->u.policy.bytes,
	       LIM_POLICY_PART_LEN);
	r->policy_have |= 1u << part;
	if (part + 1 != parts)
		return 0;
	if (r->policy_have != (1u << parts) - 1)
		return -ENODATA;
	memcpy(&p, r->policy, sizeof(p));
	r->policy_have = 0;
	r->policy_started = false;
	flush_shard(r);
	return lim_policy_set(r->db, &p);
}

static int
redo_cfg(struct lim_redo *r, const struct lim_cfg_effect *c)
{
	struct lim_group g;
	int rc = 0;

	switch (c->kind) {
	case LIM_EFF_USER_SET:
		return redo_user_set(r, c);
	case LIM_EFF_EXT_SET:
		if (c->u.ext.user_id == 0) {
			rc = lim_ext_del(r->db, c->id);
			rc = rc == -ENOENT ? 0 : rc;
		} else {
			rc = lim_ext_set(r->db, &c->u.ext);
		}
		break;
	case LIM_EFF_MERCHANT_SET:
		rc = lim_merchant_set(r->db, &c->u.merchant);
		break;
	case LIM_EFF_GROUP_SET:
		memset(&g, 0, sizeof(g));
		g.group_id = c->u.group.group_id;
		g.n_members = c->u.group.n_members;
		g.budget_fen = c->u.group.budget_fen;
		memcpy(g.members, c->u.group.members, sizeof(g.members));
		rc = lim_group_set(r->db, &g);
		break;
	case LIM_EFF_FUNDER_SET:
		rc = funder_set(r, c);
		break;
	case LIM_EFF_POLICY_PART:
		rc = policy_part(r, c);
		break;
	default:
		return -EINVAL;
	}
	if (rc < 0)
		r->st.settings_failed++;
	else if (rc == 0 && (c->kind != LIM_EFF_POLICY_PART ||
			     c->u.policy.part + 1 == c->u.policy.parts))
		r->st.settings_applied++;
	return 0;
}

/* ------------------------------------------------------------------------ */

int
lim_redo(struct lim_redo *r, const struct lim_effect *e, char *err,
	 size_t errlen)
{
	int rc;

	if (e->seq != r->next_seq) {
		snprintf(err, errlen, "seq %" PRIu64 " where %" PRIu64
			 " was expected", e->seq, r->next_seq);
		return -ERANGE;
	}
	if (e->kind == LIM_EFF_NONE || e->kind >= LIM_EFF_KINDS) {
		snprintf(err, errlen, "seq %" PRIu64 ": kind %u out of range",
			 e->seq, e->kind);
		return -EINVAL;
	}
	if (e->kind >= LIM_EFF_USER_SET)
		rc = redo_cfg(r, (const struct lim_cfg_effect *)(const void *)e);
	else
		rc = redo_money(r, e, err, errlen);
	if (rc)
		return rc;
	r->st.records++;
	r->st.by_kind[e->kind]++;
	r->next_seq++;
	if (e->seq > r->db->seq)
		r->db->seq = e->seq;
	return 0;
}

int
lim_redo_finish(struct lim_redo *r, struct lim_redo_stats *st, char *err,
		size_t errlen)
{
	int rc = 0;

	if (!budgets_move(r, true)) {
		r->st.budget_short++;
		rc = refuse(err, errlen, "the debt and holds, or a funder's part "
			    "of the live loans, exceed the ceiling or the quota "
			    "the journal ends with");
	}
	if (st)
		*st = r->st;
	return rc;
}
