/*
 * cmd_users.c - the control commands on users, merchants and funders:
 * show, add, set, freeze; merchant set and block; the funder table.
 *
 * Each handler validates everything before it changes anything, changes a
 * user's settings under the user's lock (the seq of its USER_SET record
 * taken there, as a decision's), publishes merchants under
 * dp_merchants_lock() (shared with the risk worker) and journals every
 * change with ctl_journal(); server.c waits until the change is durable
 * before it answers. Called online (QSBR) from the control thread only.
 */
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>
#include <rte_log.h>
#include <urcu-qsbr.h>

#include "ctl_pvt.h"

/* An EXT_SET record: the extension @p x, or its removal (x NULL). */
static void
cfg_ext(struct lim_cfg_effect *c, struct ctl_call *k, uint64_t user_id,
	const struct lim_user_ext *x)
{
	memset(c, 0, sizeof(*c));
	c->seq = lim_seq_take(k->db);
	c->id = user_id;
	c->uid = k->uid;
	c->now_s = ctl_now_s(k);
	c->kind = LIM_EFF_EXT_SET;
	if (x)
		c->u.ext = *x; /* user_id 0 in the record means removed */
}

/* ------------------------------------------------------------------------ */
/* Users                                                                      */

static const struct lim_tier *
tier_of(const struct lim_policy *p, const struct lim_user *u)
{
	return &p->tier[u->tier < LIM_TIERS ? u->tier : LIM_TIERS - 1];
}

static json_t *
flags_json(uint8_t f)
{
	json_t *a = json_array();

	if (f & LIM_USER_FROZEN)
		json_array_append_new(a, json_string("frozen"));
	if (f & LIM_USER_SOFT_CAP)
		json_array_append_new(a, json_string("soft-cap"));
	if (f & LIM_USER_EXT)
		json_array_append_new(a, json_string("ext"));
	return a;
}

/* Velocity windows and month spend as the decision sees them at @p now. */
static json_t *
spend_json(const struct lim_user *u, const struct lim_policy *p, uint32_t now)
{
	uint32_t day = lim_day_start(now, p->tz_offset_s);
	uint32_t month = lim_month_start(now, p->tz_offset_s);
	bool this_min = u->spend_min == now / 60;
	bool this_day = (uint64_t)u->spend_min * 60 >= day;
	bool this_month = (uint64_t)u->spend_min * 60 >= month;

	return json_pack(
		"{s:I,s:I,s:{s:i,s:I},s:{s:i,s:I}}",
		"month_spend_fen", (json_int_t)(this_month ? u->month_spend_fen : 0),
		"spend_min", (json_int_t)u->spend_min,
		"minute", "n", this_min ? u->vel_min_n : 0, "fen",
		(json_int_t)(this_min ? u->vel_min_fen : 0),
		"day", "n", this_day ? u->vel_day_n : 0, "fen",
		(json_int_t)(this_day ? u->vel_day_fen : 0));
}

/* A user as `user show` prints it; @p u is a copy taken under its lock. */
static json_t *
user_json(const struct lim_user *u, const struct lim_user_ext *x,
	  const struct lim_policy *p, uint32_t now)
{
	const struct lim_tier *t = tier_of(p, u);
	bool cash_ovr = x && x->cash_limit_fen >= 0;
	bool alert_ovr = x && x->alert_fen >= 0;
	int64_t spend = (uint64_t)u->spend_min * 60 >= lim_month_start(now, p->tz_offset_s)
				? u->month_spend_fen : 0;
	json_t *j = json_pack(
		"{s:o,s:I,s:I,s:I,s:I,s:I,s:I,s:I}",
		"id", ctl_json_id(u->user_id), "limit_fen", (json_int_t)u->limit_fen,
		"available_fen", (json_int_t)auth_available(u, x, now),
		"outstanding_fen", (json_int_t)u->outstanding_fen,
		"holds_fen", (json_int_t)u->holds_fen,
		"paylater_fen", (json_int_t)(u->outstanding_fen - u->cash_fen - u->inst_fen),
		"inst_fen", (json_int_t)u->inst_fen, "cash_fen", (json_int_t)u->cash_fen);

	json_object_set_new(j, "temp_quota_fen", json_integer(x ? x->temp_quota_fen : 0));
	json_object_set_new(j, "temp_until_s", json_integer(x ? x->temp_until_s : 0));
	json_object_set_new(j, "temp_active", json_boolean(x && now < x->temp_until_s &&
							   x->temp_quota_fen > 0));
	json_object_set_new(j, "self_cap_fen", ctl_json_fen_or_null(u->self_cap_fen > 0,
								u->self_cap_fen));
	json_object_set_new(j, "self_cap_left_fen",
			    json_integer(u->self_cap_fen <= 0 ? -1
					 : spend < u->self_cap_fen ? u->self_cap_fen - spend : 0));
	json_object_set_new(j, "cap_mode", json_string(u->flags & LIM_USER_SOFT_CAP ? "soft"
										  : "hard"));
	json_object_set_new(j, "cash_limit_fen", json_integer(
		cash_ovr ? x->cash_limit_fen : u->limit_fen * t->cash_pct / 100));
	json_object_set_new(j, "cash_limit_override_fen", ctl_json_fen_or_null(cash_ovr,
						cash_ovr ? x->cash_limit_fen : 0));
	json_object_set_new(j, "alert_fen", json_integer(alert_ovr ? x->alert_fen
								  : t->large_spend_fen));
	json_object_set_new(j, "alert_override_fen", ctl_json_fen_or_null(alert_ovr,
						alert_ovr ? x->alert_fen : 0));
	json_object_set_new(j, "spend", spend_json(u, p, now));
	json_object_set_new(j, "cool_until_s", json_integer(u->cool_until_s));
	json_object_set_new(j, "tier", json_integer(u->tier));
	json_object_set_new(j, "region", json_integer(u->region));
	json_object_set_new(j, "risk", json_integer(u->risk_q * 4));
	json_object_set_new(j, "frozen", json_boolean(u->flags & LIM_USER_FROZEN));
	json_object_set_new(j, "flags", flags_json(u->flags));
	return j;
}

/* Copy of user @p u and its extension, consistent with each other. */
static void
user_read(struct lim_db *db, struct lim_user *u, struct lim_user *copy,
	  struct lim_user_ext *xcopy, bool *has_x)
{
	const size_t at = offsetof(struct lim_user, lock);
	const struct lim_user_ext *x;

	lim_user_lock(u);
	/* Not the lock byte: a thread waiting for the lock writes it. */
	memcpy(copy, u, at);
	memcpy((char *)copy + at + 1, (const char *)u + at + 1,
	       sizeof(*copy) - at - 1);
	copy->lock = 0;
	x = (u->flags & LIM_USER_EXT) ? lim_ext_find(db, u->user_id) : NULL;
	if (x)
		*xcopy = *x;
	lim_user_unlock(u);
	*has_x = x != NULL;
}

static json_t *
user_answer(struct ctl_call *k, struct lim_user *u)
{
	struct lim_user copy;
	struct lim_user_ext x;
	bool has_x;
	uint32_t now = ctl_now_s(k);

	user_read(k->db, u, &copy, &x, &has_x);
	return json_pack("{s:b,s:o,s:I}", "ok", 1, "user",
			 user_json(&copy, has_x ? &x : NULL, lim_policy_get(k->db), now),
			 "now_s", (json_int_t)now);
}

json_t *
ctl_cmd_user_show(struct ctl_call *k)
{
	struct lim_user *u = lim_users_find(k->db->users, ctl_arg_u(k, 0));

	if (!u)
		return ctl_error("user %llu: unknown user", (unsigned long long)ctl_arg_u(k, 0));
	return user_answer(k, u);
}

static bool
ext_empty(const struct lim_user_ext *x)
{
	return x->temp_quota_fen == 0 && x->cash_limit_fen < 0 && x->alert_fen < 0;
}

static bool
wants_ext(const struct ctl_call *k)
{
	return ctl_opt(&k->r, "temp-quota")->set || ctl_opt(&k->r, "cash-limit")->set ||
	       ctl_opt(&k->r, "alert")->set;
}

/* The extension the request asks for, from the current one (or defaults). */
static void
ext_build(const struct ctl_call *k, uint64_t user_id,
	  const struct lim_user_ext *cur, struct lim_user_ext *x)
{
	const struct ctl_val *tq = ctl_opt(&k->r, "temp-quota");
	const struct ctl_val *cl = ctl_opt(&k->r, "cash-limit");
	const struct ctl_val *al = ctl_opt(&k->r, "alert");

	if (cur) {
		*x = *cur;
	} else {
		memset(x, 0, sizeof(*x));
		x->user_id = user_id;
		x->cash_limit_fen = -1;
		x->alert_fen = -1;
	}
	if (tq->set) {
		x->temp_quota_fen = tq->fen;
		x->temp_until_s = (uint32_t)ctl_opt(&k->r, "until")->u;
	}
	if (cl->set)
		x->cash_limit_fen = cl->special ? -1 : cl->fen;
	if (al->set)
		x->alert_fen = al->special ? -1 : al->fen;
}

/* Slot fields of user set/add; call with the user's lock held. */
static void
user_apply(const struct ctl_call *k, struct lim_user *u, uint32_t now,
	   const struct lim_policy *p)
{
	const struct ctl_val *v;

	if ((v = ctl_opt(&k->r, "limit"))->set) {
		/* A raise opens the cooling-off window for cash loans. */
		if (v->fen > u->limit_fen && now + (uint64_t)p->cool_raise_s > u->cool_until_s)
			u->cool_until_s = now + (uint64_t)p->cool_raise_s > UINT32_MAX
						  ? UINT32_MAX : now + p->cool_raise_s;
		/* Atomic: the risk worker's records read it without the lock. */
		__atomic_store_n(&u->limit_fen, v->fen, __ATOMIC_RELAXED);
	}
	if ((v = ctl_opt(&k->r, "self-cap"))->set)
		u->self_cap_fen = v->special ? 0 : v->fen;
	if (ctl_opt(&k->r, "soft-cap")->set)
		u->flags |= LIM_USER_SOFT_CAP;
	if (ctl_opt(&k->r, "hard-cap")->set)
		u->flags &= (uint8_t)~LIM_USER_SOFT_CAP;
	if ((v = ctl_opt(&k->r, "tier"))->set)
		u->tier = (uint8_t)v->u;
	if ((v = ctl_opt(&k->r, "region"))->set)
		u->region = (uint16_t)v->u;
	if ((v = ctl_opt(&k->r, "risk"))->set)
		u->risk_q = (uint8_t)(v->u / 4);
}

json_t *
ctl_cmd_user_set(struct ctl_call *k)
{
	uint64_t id = ctl_arg_u(k, 0);
	struct lim_user *u = lim_users_find(k->db->users, id);
	const struct lim_user_ext *cur = NULL;
	struct lim_cfg_effect ce, cx;
	struct lim_user_ext x;
	bool ext = wants_ext(k), drop_ext = false;
	int rc;

	if (!u)
		return ctl_error("user %llu: unknown user", (unsigned long long)id);
	if (ext) {
		cur = lim_ext_find(k->db, id);
		ext_build(k, id, cur, &x);
		drop_ext = ext_empty(&x);
		/* Publish first: the only step that can fail (ENOMEM). */
		if (!drop_ext && (rc = lim_ext_set(k->db, &x)) != 0)
			return ctl_error("user %llu: cannot store the settings: %s",
					 (unsigned long long)id, strerror(-rc));
	}
	lim_user_lock(u);
	user_apply(k, u, ctl_now_s(k), lim_policy_get(k->db));
	if (ext && drop_ext)
		u->flags &= (uint8_t)~LIM_USER_EXT;
	else if (ext)
		u->flags |= LIM_USER_EXT;
	/* Seqs taken under the lock: per user, the journal has the order of
	 * changes (the risk worker changes users too). */
	if (ext)
		cfg_ext(&cx, k, id, drop_ext ? NULL : &x);
	dp_cfg_user(&ce, k->db, u, k->uid, ctl_now_s(k), false);
	lim_user_unlock(u);
	/* Readers check the flag under the lock: the record can go now. */
	if (drop_ext && cur)
		lim_ext_del(k->db, id);
	if (ext)
		ctl_journal(k, &cx);
	ctl_journal(k, &ce);
	return user_answer(k, u);
}

json_t *
ctl_cmd_user_add(struct ctl_call *k)
{
	uint64_t id = ctl_arg_u(k, 0);
	struct lim_users *t = k->db->users;
	struct lim_user nu = {.user_id = id}, *u;
	struct lim_cfg_effect ce, cx;
	struct lim_user_ext x;
	bool ext = wants_ext(k);
	int rc;

	if (lim_users_find(t, id))
		return ctl_error("user %llu: already exists (use user set)",
				 (unsigned long long)id);
	if (lim_users_count(t) >= lim_users_capacity(t))
		return ctl_error("user table full (%llu users): restart with a larger "
				 "--users-max", (unsigned long long)lim_users_capacity(t));
	user_apply(k, &nu, 0, lim_policy_get(k->db));
	nu.cool_until_s = 0; /* a new limit is not a raise */
	if (ext) {
		ext_build(k, id, NULL, &x);
		ext = !ext_empty(&x);
	}
	if (ext && (rc = lim_ext_set(k->db, &x)) != 0)
		return ctl_error("user %llu: cannot store the settings: %s",
				 (unsigned long long)id, strerror(-rc));
	if (ext)
		nu.flags |= LIM_USER_EXT;
	rc = lim_users_insert(t, &nu);
	if (rc) {
		if (ext)
			lim_ext_del(k->db, id);
		return ctl_error("user %llu: cannot insert: %s", (unsigned long long)id,
				 strerror(-rc));
	}
	u = lim_users_find(t, id);
	lim_user_lock(u);
	if (ext)
		cfg_ext(&cx, k, id, &x);
	dp_cfg_user(&ce, k->db, u, k->uid, ctl_now_s(k), true);
	lim_user_unlock(u);
	if (ext)
		ctl_journal(k, &cx);
	ctl_journal(k, &ce);
	return user_answer(k, u);
}

static json_t *
user_flag(struct ctl_call *k, bool freeze)
{
	uint64_t id = ctl_arg_u(k, 0);
	struct lim_user *u = lim_users_find(k->db->users, id);
	struct lim_cfg_effect ce;

	if (!u)
		return ctl_error("user %llu: unknown user", (unsigned long long)id);
	lim_user_lock(u);
	if (freeze)
		u->flags |= LIM_USER_FROZEN;
	else
		u->flags &= (uint8_t)~LIM_USER_FROZEN;
	dp_cfg_user(&ce, k->db, u, k->uid, ctl_now_s(k), false);
	lim_user_unlock(u);
	ctl_journal(k, &ce);
	return json_pack("{s:b,s:o,s:b}", "ok", 1, "user", ctl_json_id(id),
			 "frozen", freeze);
}

json_t *
ctl_cmd_user_freeze(struct ctl_call *k)
{
	return user_flag(k, true);
}

json_t *
ctl_cmd_user_unfreeze(struct ctl_call *k)
{
	return user_flag(k, false);
}

/* ------------------------------------------------------------------------ */
/* Merchants                                                                  */

static json_t *
merchant_json(const struct lim_merchant *m)
{
	char sub[32];

	return json_pack("{s:b,s:{s:I,s:i,s:i,s:i,s:b,s:s}}", "ok", 1, "merchant",
			 "id", (json_int_t)m->merchant_id, "mcc", m->mcc, "region",
			 m->region, "risk", m->risk_score, "blocked",
			 (m->flags & LIM_MERCHANT_BLOCKED) != 0, "subsidy",
			 ctl_fmt_subsidy(m->subsidy, sub, sizeof(sub)));
}

/*
 * Publish @p m and journal it. Call under dp_merchants_lock(): the risk
 * worker blocks merchants too, and the journal must have the order in which
 * the records were published.
 */
static json_t *
merchant_publish(struct ctl_call *k, const struct lim_merchant *m)
{
	struct lim_cfg_effect c;
	int rc = lim_merchant_set(k->db, m);

	if (rc)
		return ctl_error("merchant %u: cannot store: %s", m->merchant_id,
				 strerror(-rc));
	memset(&c, 0, sizeof(c));
	c.seq = lim_seq_take(k->db);
	c.id = m->merchant_id;
	c.uid = k->uid;
	c.now_s = ctl_now_s(k);
	c.kind = LIM_EFF_MERCHANT_SET;
	c.u.merchant = *m;
	ctl_journal(k, &c);
	return merchant_json(m);
}

json_t *
ctl_cmd_merchant_show(struct ctl_call *k)
{
	const struct lim_merchant *m = lim_merchant_find(k->db, (uint32_t)ctl_arg_u(k, 0));

	if (!m)
		return ctl_error("merchant %u: unknown merchant", (unsigned)ctl_arg_u(k, 0));
	return merchant_json(m);
}

/* The merchant as it is now (or a new one), changed by the request. */
static void
merchant_change(struct ctl_call *k, const struct lim_merchant *cur,
		struct lim_merchant *m)
{
	const struct ctl_val *v;

	if ((v = ctl_opt(&k->r, "mcc"))->set)
		m->mcc = (uint16_t)v->u;
	if ((v = ctl_opt(&k->r, "region"))->set)
		m->region = (uint16_t)v->u;
	if ((v = ctl_opt(&k->r, "subsidy"))->set)
		m->subsidy = v->bits;
	if ((v = ctl_opt(&k->r, "risk"))->set)
		m->risk_score = (uint16_t)v->u;
	if (!strcmp(k->r.cmd->name, "merchant block"))
		m->flags |= LIM_MERCHANT_BLOCKED;
	if (!strcmp(k->r.cmd->name, "merchant unblock"))
		m->flags &= (uint8_t)~LIM_MERCHANT_BLOCKED;
	(void)cur;
}

/* merchant set / block / unblock: read, copy, change, publish, journal. */
static json_t *
merchant_update(struct ctl_call *k)
{
	uint32_t id = (uint32_t)ctl_arg_u(k, 0);
	const struct lim_merchant *cur;
	struct lim_merchant m = {.merchant_id = id};
	json_t *ans;

	dp_merchants_lock();
	cur = lim_merchant_find(k->db, id);
	if (!cur && !strcmp(k->r.cmd->name, "merchant unblock")) {
		dp_merchants_unlock();
		return ctl_error("merchant %u: unknown merchant", id);
	}
	if (cur)
		m = *cur;
	merchant_change(k, cur, &m);
	ans = merchant_publish(k, &m);
	dp_merchants_unlock();
	return ans;
}

json_t *
ctl_cmd_merchant_set(struct ctl_call *k)
{
	return merchant_update(k);
}

json_t *
ctl_cmd_merchant_block(struct ctl_call *k)
{
	return merchant_update(k);
}

json_t *
ctl_cmd_merchant_unblock(struct ctl_call *k)
{
	return merchant_update(k);
}

/* ------------------------------------------------------------------------ */
/* Funders                                                                    */

json_t *
ctl_cmd_funder_list(struct ctl_call *k)
{
	const struct lim_funders *fs = lim_funders_get(k->db);
	json_t *a = json_array();
	char prod[32];

	for (unsigned i = 0; i < fs->n; i++) {
		const struct lim_funder *f = &fs->f[i];

		json_array_append_new(a, json_pack(
			"{s:i,s:i,s:I,s:I,s:i,s:i,s:s}", "slot", i, "id", f->funder_id,
			"quota_fen", (json_int_t)f->quota_fen,
			"free_fen", (json_int_t)lim_budget_free_fen(fs->budget[i]),
			"share_pct", f->share_pct, "region", f->region, "products",
			ctl_fmt_products(f->products, prod, sizeof(prod))));
	}
	return json_pack("{s:b,s:o}", "ok", 1, "funders", a);
}

static int
funder_slot(const struct lim_funder *f, unsigned n, unsigned id)
{
	for (unsigned i = 0; i < n; i++)
		if (f[i].funder_id == id)
			return (int)i;
	return -1;
}

/*
 * Publish the table @p f and journal the one funder that changed: @p nf, or
 * (nf NULL) the removal of funder @p id.
 */
static json_t *
funders_publish(struct ctl_call *k, const struct lim_funder *f, unsigned n,
		unsigned id, const struct lim_funder *nf)
{
	struct lim_cfg_effect c;
	int rc = -EAGAIN;

	for (unsigned i = 0; i < CTL_RETRIES && rc == -EAGAIN; i++)
		rc = lim_funders_set(k->db, f, n);
	if (rc == -ERANGE)
		return ctl_error("funder %u: the new quota is below what the funder has "
				 "lent or reserved", id);
	if (rc == -EAGAIN)
		return ctl_error("funder %u: budgets stayed contended: try again", id);
	if (rc)
		return ctl_error("funder %u: funder table rejected: %s", id, strerror(-rc));
	/* After the publication, as for the policy (lim_redo relies on it). */
	memset(&c, 0, sizeof(c));
	c.seq = lim_seq_take(k->db);
	c.id = id;
	c.uid = k->uid;
	c.now_s = ctl_now_s(k);
	c.kind = LIM_EFF_FUNDER_SET;
	if (nf) {
		c.u.funder = *nf;
	} else {
		c.u.funder.funder_id = (uint16_t)id;
		c.u.funder.quota_fen = -1; /* removed */
	}
	ctl_journal(k, &c);
	return ctl_cmd_funder_list(k);
}

json_t *
ctl_cmd_funder_set(struct ctl_call *k)
{
	const struct lim_funders *fs = lim_funders_get(k->db);
	unsigned id = (unsigned)ctl_arg_u(k, 0), n = fs->n;
	const struct ctl_val *quota = ctl_opt(&k->r, "quota");
	const struct ctl_val *share = ctl_opt(&k->r, "share");
	const struct ctl_val *region = ctl_opt(&k->r, "region");
	const struct ctl_val *prod = ctl_opt(&k->r, "products");
	struct lim_funder f[LIM_FUNDERS_MAX];
	int slot = funder_slot(fs->f, n, id);

	memcpy(f, fs->f, n * sizeof(f[0]));
	if (id == 0 && ((share->set && share->u) || (region->set && region->u)))
		return ctl_error("funder 0 is the company's own book: national, share 0");
	if (slot < 0) {
		if (!quota->set || !share->set)
			return ctl_error("funder %u: a new funder needs --quota and --share", id);
		if (n == LIM_FUNDERS_MAX)
			return ctl_error("funder table full (%d funders)", LIM_FUNDERS_MAX);
		slot = (int)n++;
		f[slot] = (struct lim_funder){.funder_id = (uint16_t)id,
					      .products = ctl_product_bits[0] |
							  ctl_product_bits[1] |
							  ctl_product_bits[2]};
	}
	if (quota->set)
		f[slot].quota_fen = quota->fen;
	if (share->set)
		f[slot].share_pct = (uint8_t)share->u;
	if (region->set)
		f[slot].region = (uint16_t)region->u;
	if (prod->set)
		f[slot].products = prod->bits;
	return funders_publish(k, f, n, id, &f[slot]);
}

json_t *
ctl_cmd_funder_del(struct ctl_call *k)
{
	const struct lim_funders *fs = lim_funders_get(k->db);
	unsigned id = (unsigned)ctl_arg_u(k, 0), n = fs->n;
	struct lim_funder f[LIM_FUNDERS_MAX];
	int slot = funder_slot(fs->f, n, id);

	if (id == 0)
		return ctl_error("funder 0 is the company's own book and cannot be deleted");
	if (slot < 0)
		return ctl_error("funder %u: unknown funder", id);
	memcpy(f, fs->f, n * sizeof(f[0]));
	memmove(&f[slot], &f[slot + 1], (n - (unsigned)slot - 1) * sizeof(f[0]));
	return funders_publish(k, f, n - 1, id, NULL);
}
