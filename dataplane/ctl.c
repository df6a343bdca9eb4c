/*
 * ctl.c - the control socket: authctl's requests, answered by one control
 * thread (dataplane/ctl_proto.h has the protocol and the command table).
 *
 * Owns: the listening unix socket (mode 0600), its path (unlinked at stop),
 * an eventfd that wakes the thread to stop, and the thread.
 *
 * Invariants: one request per connection, served to completion before the
 * next (the control plane is the ONLY updater of RCU-published records and
 * of user settings, so its changes are serialised by construction). Every
 * request is validated in full before anything changes; an invalid request
 * changes nothing. A change is visible to the next packet: user settings
 * change under the user's lock, records are published (rcu_assign_pointer,
 * cds_lfht) before the answer is written.
 *
 * Concurrency: the thread is a QSBR reader. It is offline while it waits
 * (poll, accept, reading the request, writing the answer) and online only
 * while it handles a request, so it never delays a grace period by more than
 * one request. Old records are freed with call_rcu; synchronize_rcu is never
 * called (online it would wait for itself).
 *
 * Security: the socket is created 0600 (umask while binding, chmod after),
 * peers other than root and our own uid are refused (SO_PEERCRED), and every
 * changing command is logged with the peer's uid and pid. A request line is
 * at most CTL_REQUEST_MAX bytes and must arrive within CTL_IO_TIMEOUT_MS.
 */
#define _GNU_SOURCE /* accept4, struct ucred */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include <arpa/inet.h>
#include <jansson.h>
#include <rte_eal.h>
#include <rte_lcore.h>
#include <rte_log.h>
#include <sodium.h>
#include <urcu-qsbr.h>

#include "ctl_proto.h"
#include "dp.h"

#define CTL_RETRIES 8   /* -EAGAIN from a contended budget: try again */
#define CTL_DURABLE_TIMEOUT_MS 5000 /* a change's journal records */
#define CTL_LOG_MAX 240 /* request text in the log line */

struct dp_ctl {
	struct dp_ctx *ctx;
	pthread_t tid;
	int lfd;                  /* listening socket */
	int efd;                  /* eventfd: stop */
	char path[sizeof(((struct sockaddr_un *)0)->sun_path)];
};

/* One request being handled. */
struct ctl_call {
	struct dp_ctl *c;
	struct dp_ctx *ctx;
	struct lim_db *db;
	struct ctl_req r;
	uint32_t uid;             /* the peer's, journaled with every change */
	uint64_t wait_seq;        /* largest seq journaled: wait until durable */
	int journal_rc;           /* first dp_ledger_submit() error */
};

/* ------------------------------------------------------------------------ */
/* Answers                                                                    */

__attribute__((format(printf, 1, 2))) static json_t *
ctl_error(const char *fmt, ...)
{
	char msg[512];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	return json_pack("{s:b,s:s}", "ok", 0, "error", msg);
}

static json_t *
json_fen_or_null(bool present, int64_t fen)
{
	return present ? json_integer(fen) : json_null();
}

/* ------------------------------------------------------------------------ */
/* Journal: every settings change is a record (struct lim_cfg_effect)        */

static uint32_t
now_s(const struct ctl_call *k)
{
	return dp_clock_now_s(&k->ctx->clock);
}

/*
 * Hand a settings record to the ledger. Its seq is taken: it MUST be
 * submitted even when something failed after the change. The answer waits
 * (offline, serve_one()) until the largest seq is durable.
 */
static void
journal(struct ctl_call *k, const struct lim_cfg_effect *e)
{
	int rc = dp_ledger_submit(k->ctx->ledger, e);

	if (rc && !k->journal_rc)
		k->journal_rc = rc;
	if (e->seq > k->wait_seq)
		k->wait_seq = e->seq;
}

/* An EXT_SET record: the extension @p x, or its removal (x NULL). */
static void
cfg_ext(struct lim_cfg_effect *c, struct ctl_call *k, uint64_t user_id,
	const struct lim_user_ext *x)
{
	memset(c, 0, sizeof(*c));
	c->seq = lim_seq_take(k->db);
	c->id = user_id;
	c->uid = k->uid;
	c->now_s = now_s(k);
	c->kind = LIM_EFF_EXT_SET;
	if (x)
		c->u.ext = *x; /* user_id 0 in the record means removed */
}

/* ------------------------------------------------------------------------ */
/* Users                                                                      */

static uint64_t
arg_u(const struct ctl_call *k, unsigned i)
{
	return k->r.arg[i].u;
}

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
		"{s:I,s:I,s:I,s:I,s:I,s:I,s:I,s:I}",
		"id", (json_int_t)u->user_id, "limit_fen", (json_int_t)u->limit_fen,
		"available_fen", (json_int_t)auth_available(u, x, now),
		"outstanding_fen", (json_int_t)u->outstanding_fen,
		"holds_fen", (json_int_t)u->holds_fen,
		"paylater_fen", (json_int_t)(u->outstanding_fen - u->cash_fen - u->inst_fen),
		"inst_fen", (json_int_t)u->inst_fen, "cash_fen", (json_int_t)u->cash_fen);

	json_object_set_new(j, "temp_quota_fen", json_integer(x ? x->temp_quota_fen : 0));
	json_object_set_new(j, "temp_until_s", json_integer(x ? x->temp_until_s : 0));
	json_object_set_new(j, "temp_active", json_boolean(x && now < x->temp_until_s &&
							   x->temp_quota_fen > 0));
	json_object_set_new(j, "self_cap_fen", json_fen_or_null(u->self_cap_fen > 0,
								u->self_cap_fen));
	json_object_set_new(j, "self_cap_left_fen",
			    json_integer(u->self_cap_fen <= 0 ? -1
					 : spend < u->self_cap_fen ? u->self_cap_fen - spend : 0));
	json_object_set_new(j, "cap_mode", json_string(u->flags & LIM_USER_SOFT_CAP ? "soft"
										  : "hard"));
	json_object_set_new(j, "cash_limit_fen", json_integer(
		cash_ovr ? x->cash_limit_fen : u->limit_fen * t->cash_pct / 100));
	json_object_set_new(j, "cash_limit_override_fen", json_fen_or_null(cash_ovr,
						cash_ovr ? x->cash_limit_fen : 0));
	json_object_set_new(j, "alert_fen", json_integer(alert_ovr ? x->alert_fen
								  : t->large_spend_fen));
	json_object_set_new(j, "alert_override_fen", json_fen_or_null(alert_ovr,
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
	uint32_t now = dp_clock_now_s(&k->ctx->clock);

	user_read(k->db, u, &copy, &x, &has_x);
	return json_pack("{s:b,s:o,s:I}", "ok", 1, "user",
			 user_json(&copy, has_x ? &x : NULL, lim_policy_get(k->db), now),
			 "now_s", (json_int_t)now);
}

static json_t *
cmd_user_show(struct ctl_call *k)
{
	struct lim_user *u = lim_users_find(k->db->users, arg_u(k, 0));

	if (!u)
		return ctl_error("user %llu: unknown user", (unsigned long long)arg_u(k, 0));
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

static json_t *
cmd_user_set(struct ctl_call *k)
{
	uint64_t id = arg_u(k, 0);
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
	user_apply(k, u, now_s(k), lim_policy_get(k->db));
	if (ext && drop_ext)
		u->flags &= (uint8_t)~LIM_USER_EXT;
	else if (ext)
		u->flags |= LIM_USER_EXT;
	/* Seqs taken under the lock: per user, the journal has the order of
	 * changes (the risk worker changes users too). */
	if (ext)
		cfg_ext(&cx, k, id, drop_ext ? NULL : &x);
	dp_cfg_user(&ce, k->db, u, k->uid, now_s(k), false);
	lim_user_unlock(u);
	/* Readers check the flag under the lock: the record can go now. */
	if (drop_ext && cur)
		lim_ext_del(k->db, id);
	if (ext)
		journal(k, &cx);
	journal(k, &ce);
	return user_answer(k, u);
}

static json_t *
cmd_user_add(struct ctl_call *k)
{
	uint64_t id = arg_u(k, 0);
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
	dp_cfg_user(&ce, k->db, u, k->uid, now_s(k), true);
	lim_user_unlock(u);
	if (ext)
		journal(k, &cx);
	journal(k, &ce);
	return user_answer(k, u);
}

static json_t *
user_flag(struct ctl_call *k, bool freeze)
{
	uint64_t id = arg_u(k, 0);
	struct lim_user *u = lim_users_find(k->db->users, id);
	struct lim_cfg_effect ce;

	if (!u)
		return ctl_error("user %llu: unknown user", (unsigned long long)id);
	lim_user_lock(u);
	if (freeze)
		u->flags |= LIM_USER_FROZEN;
	else
		u->flags &= (uint8_t)~LIM_USER_FROZEN;
	dp_cfg_user(&ce, k->db, u, k->uid, now_s(k), false);
	lim_user_unlock(u);
	journal(k, &ce);
	return json_pack("{s:b,s:I,s:b}", "ok", 1, "user", (json_int_t)id, "frozen",
			 freeze);
}

static json_t *
cmd_user_freeze(struct ctl_call *k)
{
	return user_flag(k, true);
}

static json_t *
cmd_user_unfreeze(struct ctl_call *k)
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
	c.now_s = now_s(k);
	c.kind = LIM_EFF_MERCHANT_SET;
	c.u.merchant = *m;
	journal(k, &c);
	return merchant_json(m);
}

static json_t *
cmd_merchant_show(struct ctl_call *k)
{
	const struct lim_merchant *m = lim_merchant_find(k->db, (uint32_t)arg_u(k, 0));

	if (!m)
		return ctl_error("merchant %u: unknown merchant", (unsigned)arg_u(k, 0));
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
	uint32_t id = (uint32_t)arg_u(k, 0);
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

static json_t *
cmd_merchant_set(struct ctl_call *k)
{
	return merchant_update(k);
}

static json_t *
cmd_merchant_block(struct ctl_call *k)
{
	return merchant_update(k);
}

static json_t *
cmd_merchant_unblock(struct ctl_call *k)
{
	return merchant_update(k);
}

/* ------------------------------------------------------------------------ */
/* Funders                                                                    */

static json_t *
cmd_funder_list(struct ctl_call *k)
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
	/* After the publication, as for the policy (lim_replay relies on it). */
	memset(&c, 0, sizeof(c));
	c.seq = lim_seq_take(k->db);
	c.id = id;
	c.uid = k->uid;
	c.now_s = now_s(k);
	c.kind = LIM_EFF_FUNDER_SET;
	if (nf) {
		c.u.funder = *nf;
	} else {
		c.u.funder.funder_id = (uint16_t)id;
		c.u.funder.quota_fen = -1; /* removed */
	}
	journal(k, &c);
	return cmd_funder_list(k);
}

static json_t *
cmd_funder_set(struct ctl_call *k)
{
	const struct lim_funders *fs = lim_funders_get(k->db);
	unsigned id = (unsigned)arg_u(k, 0), n = fs->n;
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

static json_t *
cmd_funder_del(struct ctl_call *k)
{
	const struct lim_funders *fs = lim_funders_get(k->db);
	unsigned id = (unsigned)arg_u(k, 0), n = fs->n;
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

/* ------------------------------------------------------------------------ */
/* Policy                                                                     */

static json_t *
policy_json(const struct lim_policy *p)
{
	json_t *o = json_object();
	char v[64], key[48];

	for (unsigned i = 0; i < CTL_POLICY_KEYS; i++)
		json_object_set_new(o, ctl_policy_keys[i].name,
				    json_string(ctl_pkey_fmt(&ctl_policy_keys[i], p, v,
							     sizeof(v))));
	for (unsigned t = 0; t < LIM_TIERS; t++)
		for (unsigned i = 0; i < CTL_TIER_KEYS; i++) {
			snprintf(key, sizeof(key), "tier.%u.%s", t, ctl_tier_keys[i].name);
			json_object_set_new(o, key, json_string(ctl_pkey_fmt(
				&ctl_tier_keys[i], &p->tier[t], v, sizeof(v))));
		}
	return o;
}

static json_t *
cmd_policy_show(struct ctl_call *k)
{
	return json_pack("{s:b,s:o}", "ok", 1, "policy", policy_json(lim_policy_get(k->db)));
}

static json_t *
cmd_policy_set(struct ctl_call *k)
{
	struct lim_policy p = *lim_policy_get(k->db);
	char err[256];
	int rc = -EAGAIN;

	for (unsigned i = 0; i < k->r.n_args; i++)
		if (ctl_policy_assign(&p, k->r.args[i], err, sizeof(err)))
			return ctl_error("policy set: %s", err);
	if (lim_policy_check(&p, err, sizeof(err)))
		return ctl_error("policy set: %s", err);
	for (unsigned i = 0; i < CTL_RETRIES && rc == -EAGAIN; i++)
		rc = lim_policy_set(k->db, &p);
	if (rc == -ERANGE)
		return ctl_error("policy set: the new ceiling is below what is lent or "
				 "reserved now");
	if (rc)
		return ctl_error("policy set: not applied: %s", strerror(-rc));
	rc = dp_ledger_journal_policy(k->ctx->ledger, k->db, k->uid, now_s(k),
				      &k->wait_seq);
	if (rc && !k->journal_rc)
		k->journal_rc = rc;
	return cmd_policy_show(k);
}

/* ------------------------------------------------------------------------ */
/* Keys                                                                       */

struct keyring_box {
	struct rcu_head rcu;
	struct auth_keyring *kr;
};

static void
keyring_free_rcu(struct rcu_head *head)
{
	struct keyring_box *b = caa_container_of(head, struct keyring_box, rcu);

	auth_keyring_free(b->kr);
	free(b);
}

static unsigned
prefix_len(uint32_t mask)
{
	return (unsigned)__builtin_popcount(mask);
}

static json_t *
cmd_keys_show(struct ctl_call *k)
{
	const struct auth_keyring *kr = rcu_dereference(k->ctx->keyring);
	json_t *a = json_array();

	for (unsigned i = 0; i < auth_keyring_count(kr); i++) {
		const struct auth_gateway *g = auth_keyring_at(kr, i);
		json_t *ids = json_array(), *allow = json_array();
		char ip[INET_ADDRSTRLEN], cidr[INET_ADDRSTRLEN + 4];

		for (unsigned j = 0; j < g->n_keys; j++)
			json_array_append_new(ids, json_integer(g->keys[j].key_id));
		for (unsigned j = 0; j < g->n_sources; j++) {
			struct in_addr in = {.s_addr = htonl(g->source_ip[j])};

			inet_ntop(AF_INET, &in, ip, sizeof(ip));
			snprintf(cidr, sizeof(cidr), "%s/%u", ip, prefix_len(g->source_mask[j]));
			json_array_append_new(allow, json_string(cidr));
		}
		json_array_append_new(a, json_pack("{s:I,s:o,s:o}", "gateway",
						   (json_int_t)g->gateway_id, "key_ids", ids,
						   "allow", allow));
	}
	return json_pack("{s:b,s:s,s:o}", "ok", 1, "file", k->ctx->cfg.keys,
			 "gateways", a);
}

/* The keys file text of @p gws (auth_keyring_load's INI); NULL on ENOMEM. */
static char *
keys_text(const struct auth_gateway *gws, unsigned n, size_t *len)
{
	size_t cap = 128 + (size_t)n * 400, off;
	char *t = malloc(cap);
	char hex[2 * AUTH_KEY_LEN + 1], ip[INET_ADDRSTRLEN];

	if (!t)
		return NULL;
	off = (size_t)snprintf(t, cap, "; authd gateway keys, written by authctl keys rotate\n");
	for (unsigned i = 0; i < n; i++) {
		const struct auth_gateway *g = &gws[i];

		off += (size_t)snprintf(t + off, cap - off, "\n[gateway %u]\n", g->gateway_id);
		for (unsigned j = 0; j < g->n_keys; j++) {
			sodium_bin2hex(hex, sizeof(hex), g->keys[j].key, AUTH_KEY_LEN);
			off += (size_t)snprintf(t + off, cap - off, "key.%u = %s\n",
						g->keys[j].key_id, hex);
		}
		for (unsigned j = 0; j < g->n_sources; j++) {
			struct in_addr in = {.s_addr = htonl(g->source_ip[j])};

			inet_ntop(AF_INET, &in, ip, sizeof(ip));
			off += (size_t)snprintf(t + off, cap - off, "%s%s/%u%s",
						j ? ", " : "allow = ", ip,
						prefix_len(g->source_mask[j]),
						j + 1 == g->n_sources ? "\n" : "");
		}
	}
	sodium_memzero(hex, sizeof(hex));
	*len = off;
	return t;
}

/* Write @p text to @p path atomically: temp file 0600, fsync, rename, fsync dir. */
static int
write_atomic(const char *path, const char *text, size_t len)
{
	char tmp[PATH_MAX], dir[PATH_MAX], *slash;
	size_t off = 0;
	int fd, dfd, rc = 0;

	if (snprintf(tmp, sizeof(tmp), "%s.XXXXXX", path) >= (int)sizeof(tmp))
		return -ENAMETOOLONG;
	fd = mkstemp(tmp); /* mode 0600 */
	if (fd < 0)
		return -errno;
	while (off < len && rc == 0) {
		ssize_t w = write(fd, text + off, len - off);

		if (w < 0 && errno != EINTR)
			rc = -errno;
		else if (w > 0)
			off += (size_t)w;
	}
	if (rc == 0 && (fchmod(fd, 0600) || fsync(fd)))
		rc = -errno;
	if (close(fd) && rc == 0)
		rc = -errno;
	if (rc == 0 && rename(tmp, path))
		rc = -errno;
	if (rc) {
		unlink(tmp);
		return rc;
	}
	snprintf(dir, sizeof(dir), "%s", path);
	slash = strrchr(dir, '/');
	if (slash)
		*(slash == dir ? slash + 1 : slash) = '\0';
	dfd = open(slash ? dir : ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (dfd >= 0) {
		fsync(dfd);
		close(dfd);
	}
	return 0;
}

/* New key for gateway @p g in @p gws: id = highest + 1; keep the newest two. */
static int
key_add(struct auth_gateway *g, struct auth_key *nk)
{
	unsigned hi = 0;

	for (unsigned j = 1; j < g->n_keys; j++)
		if (g->keys[j].key_id > g->keys[hi].key_id)
			hi = j;
	if (g->keys[hi].key_id == UINT32_MAX)
		return -ERANGE;
	nk->key_id = g->keys[hi].key_id + 1;
	randombytes_buf(nk->key, AUTH_KEY_LEN);
	g->keys[0] = g->keys[hi];
	g->keys[1] = *nk;
	g->n_keys = 2;
	return 0;
}

/* Build the rotated keyring and write the file; 0 or an error answer. */
static json_t *
keys_rotate_build(struct ctl_call *k, struct auth_gateway *gws, unsigned n,
		  uint32_t gw, struct auth_key *nk, struct auth_keyring **out)
{
	const char *path = k->ctx->cfg.keys;
	char *text;
	size_t len = 0;
	int rc = -ENOENT;

	for (unsigned i = 0; i < n; i++)
		if (gws[i].gateway_id == gw)
			rc = key_add(&gws[i], nk);
	if (rc == -ENOENT)
		return ctl_error("keys rotate: gateway %u: unknown gateway", gw);
	if (rc)
		return ctl_error("keys rotate: gateway %u: key ids exhausted", gw);
	*out = auth_keyring_create(gws, n);
	if (!*out)
		return ctl_error("keys rotate: cannot build the keyring: %s", strerror(errno));
	text = keys_text(gws, n, &len);
	rc = text ? write_atomic(path, text, len) : -ENOMEM;
	if (text) {
		sodium_memzero(text, len);
		free(text);
	}
	if (rc) {
		auth_keyring_free(*out);
		return ctl_error("keys rotate: cannot write %s: %s (nothing changed)", path,
				 strerror(-rc));
	}
	return NULL;
}

static json_t *
cmd_keys_rotate(struct ctl_call *k)
{
	struct auth_keyring *old = k->ctx->keyring, *nk = NULL; /* updater: no race */
	unsigned n = auth_keyring_count(old);
	uint32_t gw = (uint32_t)arg_u(k, 0);
	struct auth_gateway *gws = calloc(n ? n : 1, sizeof(*gws));
	struct keyring_box *box = malloc(sizeof(*box));
	struct auth_key key;
	char hex[2 * AUTH_KEY_LEN + 1];
	json_t *ans;

	if (!gws || !box) {
		free(gws);
		free(box);
		return ctl_error("keys rotate: out of memory");
	}
	for (unsigned i = 0; i < n; i++)
		gws[i] = *auth_keyring_at(old, i);
	ans = keys_rotate_build(k, gws, n, gw, &key, &nk);
	sodium_memzero(gws, n * sizeof(*gws));
	free(gws);
	if (ans) {
		free(box);
		return ans;
	}
	rcu_assign_pointer(k->ctx->keyring, nk);
	box->kr = old;
	call_rcu(&box->rcu, keyring_free_rcu);
	sodium_bin2hex(hex, sizeof(hex), key.key, AUTH_KEY_LEN);
	ans = json_pack("{s:b,s:I,s:I,s:I,s:s,s:s}", "ok", 1, "gateway", (json_int_t)gw,
			"key_id", (json_int_t)key.key_id, "previous_key_id",
			(json_int_t)(key.key_id - 1), "key", hex, "file", k->ctx->cfg.keys);
	sodium_memzero(hex, sizeof(hex));
	sodium_memzero(&key, sizeof(key));
	return ans;
}

/* ------------------------------------------------------------------------ */
/* Snapshot, clock, stats                                                     */

/* Make a rename in @p path's directory durable. */
static int
fsync_parent(const char *path)
{
	char dir[PATH_MAX];
	const char *slash = strrchr(path, '/');
	int fd, rc = 0;

	if (!slash)
		snprintf(dir, sizeof(dir), ".");
	else if (slash == path)
		snprintf(dir, sizeof(dir), "/");
	else
		snprintf(dir, sizeof(dir), "%.*s", (int)(slash - path), path);
	fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	if (fsync(fd))
		rc = -errno;
	close(fd);
	return rc;
}

/*
 * Save to FILE.pending, wait (offline) until the journal is durable past
 * everything the snapshot may hold (db->seq after the save >= its seq_end),
 * then rename it to FILE: a published snapshot never holds an effect the
 * journal could still lose, so recovery can always replay on top of it
 * (docs/durability.md, "Snapshots and the journal").
 */
static json_t *
cmd_snapshot_save(struct ctl_call *k)
{
	const char *path = k->r.args[0];
	char err[512] = "", pending[PATH_MAX];
	uint64_t upto;
	int rc;

	if (snprintf(pending, sizeof(pending), "%s.pending", path) >=
	    (int)sizeof(pending))
		return ctl_error("snapshot save: %s: path too long", path);
	rc = lim_snapshot_save(k->db, pending, err, sizeof(err));
	if (rc)
		return ctl_error("snapshot save: %s", err[0] ? err : strerror(-rc));
	upto = __atomic_load_n(&k->db->seq, __ATOMIC_RELAXED);
	rcu_thread_offline();
	rc = dp_ledger_wait_durable(k->ctx->ledger, upto, CTL_DURABLE_TIMEOUT_MS);
	rcu_thread_online();
	if (!rc && rename(pending, path))
		rc = -errno;
	if (!rc)
		rc = fsync_parent(path);
	if (rc) {
		unlink(pending);
		return ctl_error("snapshot save: %s: not published: %s", path,
				 rc == -EIO ? "the journal failed (authctl stats "
					      "shows why)"
				 : rc == -ETIMEDOUT ? "the journal did not become "
						      "durable in time"
						    : strerror(-rc));
	}
	return json_pack("{s:b,s:s,s:I,s:I}", "ok", 1, "file", path, "users",
			 (json_int_t)lim_users_count(k->db->users), "seq",
			 (json_int_t)upto);
}

static json_t *
clock_json(const struct dp_clock *c)
{
	uint32_t now = dp_clock_now_s(c);
	char iso[32];

	return json_pack("{s:b,s:s,s:I,s:s}", "ok", 1, "mode",
			 c->mode == DP_CLOCK_FIXED ? "fixed" : "real", "now_s",
			 (json_int_t)now, "now", ctl_fmt_time(now, iso, sizeof(iso)));
}

static json_t *
cmd_clock_show(struct ctl_call *k)
{
	return clock_json(&k->ctx->clock);
}

static json_t *
cmd_clock_set(struct ctl_call *k)
{
	if (dp_clock_set(&k->ctx->clock, (uint32_t)arg_u(k, 0)))
		return ctl_error("clock set: the clock is real; only a fixed clock "
				 "(authd --clock fixed:SECONDS) can be moved");
	return clock_json(&k->ctx->clock);
}

static json_t *
cmd_risk_show(struct ctl_call *k)
{
	json_t *j = dp_risk_json(k->ctx->risk);

	json_object_set_new(j, "ok", json_true());
	return j;
}

/* Every KEY=VALUE is checked by the worker (risk.c); it stops at the first
 * bad one, so earlier ones are applied: say which were. */
static json_t *
cmd_risk_set(struct ctl_call *k)
{
	char err[256];

	/* All or nothing, as every request: no item applies unless all are valid. */
	if (dp_risk_set_kv(k->ctx->risk, k->r.args, k->r.n_args, err, sizeof(err)))
		return ctl_error("risk set: %s", err);
	return cmd_risk_show(k);
}

static json_t *
cmd_stats(struct ctl_call *k)
{
	json_t *j = dp_stats_json(k->ctx);

	json_object_set_new(j, "ok", json_true());
	return j;
}

static const struct {
	const char *name;
	json_t *(*fn)(struct ctl_call *k);
} ctl_handlers[] = {
	{"stats", cmd_stats},
	{"user show", cmd_user_show},
	{"user set", cmd_user_set},
	{"user add", cmd_user_add},
	{"user freeze", cmd_user_freeze},
	{"user unfreeze", cmd_user_unfreeze},
	{"merchant show", cmd_merchant_show},
	{"merchant set", cmd_merchant_set},
	{"merchant block", cmd_merchant_block},
	{"merchant unblock", cmd_merchant_unblock},
	{"funder list", cmd_funder_list},
	{"funder set", cmd_funder_set},
	{"funder del", cmd_funder_del},
	{"policy show", cmd_policy_show},
	{"policy set", cmd_policy_set},
	{"keys show", cmd_keys_show},
	{"keys rotate", cmd_keys_rotate},
	{"snapshot save", cmd_snapshot_save},
	{"clock show", cmd_clock_show},
	{"clock set", cmd_clock_set},
	{"risk show", cmd_risk_show},
	{"risk set", cmd_risk_set},
};

_Static_assert(sizeof(ctl_handlers) / sizeof(ctl_handlers[0]) == CTL_CMDS,
	       "a handler for every command of ctl_proto.h");

/* ------------------------------------------------------------------------ */
/* Request decoding: JSON -> struct ctl_req, validated by ctl_proto.h         */

/* Decode and validate; NULL when @p k->r is ready, else the error answer. */
static json_t *
decode(struct ctl_call *k, json_t *req)
{
	char err[512];

	if (ctl_req_decode(req, &k->r, err, sizeof(err)))
		return ctl_error("%s", err);
	return NULL;
}

/* Decode and run one request line; the answer, never NULL. Call online. */
static json_t *
handle(struct ctl_call *k, const char *line, size_t len)
{
	json_error_t jerr;
	json_t *req, *ans = NULL;

	req = json_loadb(line, len, JSON_REJECT_DUPLICATES, &jerr);
	if (!req)
		ans = ctl_error("request: not JSON: %s", jerr.text);
	else
		ans = decode(k, req);
	for (unsigned i = 0; !ans && i < CTL_CMDS; i++)
		if (!strcmp(ctl_handlers[i].name, k->r.cmd->name))
			ans = ctl_handlers[i].fn(k);
	json_decref(req);
	return ans ? ans : ctl_error("out of memory");
}

/*
 * After a change (offline: this sleeps): wait until its journal records are
 * durable, so "ok" means the change survives a restart. Otherwise the
 * answer says that it was applied but may be lost.
 */
static json_t *
settle(struct ctl_call *k, json_t *ans)
{
	const char *why;
	int rc = k->journal_rc;

	if (!rc && k->wait_seq)
		rc = dp_ledger_wait_durable(k->ctx->ledger, k->wait_seq,
					    CTL_DURABLE_TIMEOUT_MS);
	if (!rc)
		return ans;
	why = rc == -EIO ? "the journal failed (authctl stats shows why)"
	      : rc == -ETIMEDOUT ? "the journal did not confirm it in time"
	      : rc == -ESHUTDOWN ? "the ledger is stopping"
	      : "no ledger";
	json_decref(ans);
	return json_pack("{s:b,s:b,s:s++}", "ok", 0, "applied", 1, "error",
			 k->r.cmd->name, ": applied, but not durable: ", why);
}

/* Changing commands go to the log with the peer's uid and the outcome. */
static void
log_change(const struct ctl_call *k, const struct ucred *peer, const char *line,
	   size_t len, json_t *ans)
{
	json_t *e = json_object_get(ans, "error");

	if (!k->r.cmd || !(k->r.cmd->flags & CTL_CMD_CHANGES))
		return;
	RTE_LOG(NOTICE, USER1, "ctl: uid %u pid %d: %.*s: %s\n", peer->uid,
		(int)peer->pid, (int)(len > CTL_LOG_MAX ? CTL_LOG_MAX : len), line,
		e ? json_string_value(e) : "ok");
}

/* ------------------------------------------------------------------------ */
/* Connections (offline)                                                      */

static int64_t
ms_now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/*
 * Wait until @p fd is ready for @p ev or the deadline passes; while reading
 * a request, also until stop is asked. An answer is written even during a
 * stop: the change it reports has been made.
 */
static int
wait_fd(struct dp_ctl *c, int fd, short ev, int64_t deadline)
{
	for (;;) {
		struct pollfd p[2] = {{fd, ev, 0}, {c->efd, POLLIN, 0}};
		nfds_t n = ev == POLLIN ? 2 : 1;
		int64_t left = deadline - ms_now();
		int rc;

		if (left <= 0)
			return -ETIMEDOUT;
		rc = poll(p, n, (int)left);
		if (rc < 0 && errno == EINTR)
			continue;
		if (rc < 0)
			return -errno;
		if (n == 2 && p[1].revents)
			return -ECANCELED;
		if (p[0].revents)
			return 0;
	}
}

/* Read one line (without its newline) into @p buf; its length or -errno. */
static ssize_t
read_line(struct dp_ctl *c, int fd, char *buf, size_t cap, int64_t deadline)
{
	size_t len = 0;

	for (;;) {
		int rc = wait_fd(c, fd, POLLIN, deadline);
		ssize_t r;
		char *nl;

		if (rc)
			return rc;
		r = read(fd, buf + len, cap - len);
		if (r < 0 && (errno == EINTR || errno == EAGAIN))
			continue;
		if (r < 0)
			return -errno;
		nl = memchr(buf + len, '\n', (size_t)r);
		len += (size_t)r;
		if (nl)
			return nl - buf;
		if (r == 0)
			return len ? (ssize_t)len : -ENODATA;
		if (len == cap)
			return -EMSGSIZE;
	}
}

static void
write_all(struct dp_ctl *c, int fd, const char *s, size_t len, int64_t deadline)
{
	size_t off = 0;

	while (off < len && wait_fd(c, fd, POLLOUT, deadline) == 0) {
		ssize_t w = send(fd, s + off, len - off, MSG_NOSIGNAL);

		if (w < 0 && errno != EINTR && errno != EAGAIN)
			return;
		if (w > 0)
			off += (size_t)w;
	}
}

static void
answer(struct dp_ctl *c, int fd, json_t *ans, int64_t deadline)
{
	char *text = json_dumps(ans, JSON_COMPACT);

	if (text) {
		write_all(c, fd, text, strlen(text), deadline);
		write_all(c, fd, "\n", 1, deadline);
	}
	free(text);
	json_decref(ans);
}

static void
serve_one(struct dp_ctl *c, char *buf)
{
	int fd = accept4(c->lfd, NULL, NULL, SOCK_CLOEXEC | SOCK_NONBLOCK);
	int64_t deadline = ms_now() + CTL_IO_TIMEOUT_MS;
	struct ucred peer = {0};
	socklen_t sl = sizeof(peer);
	ssize_t len;

	if (fd < 0)
		return;
	if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &peer, &sl) ||
	    (peer.uid != 0 && peer.uid != geteuid())) {
		answer(c, fd, ctl_error("permission denied"), deadline);
		close(fd);
		return;
	}
	len = read_line(c, fd, buf, CTL_REQUEST_MAX, deadline);
	if (len == -EMSGSIZE)
		answer(c, fd, ctl_error("request longer than %d bytes", CTL_REQUEST_MAX),
		       deadline);
	if (len >= 0) {
		struct ctl_call *k = calloc(1, sizeof(*k));
		json_t *ans;

		if (!k) {
			answer(c, fd, ctl_error("out of memory"), deadline);
			close(fd);
			return;
		}
		k->c = c;
		k->ctx = c->ctx;
		k->db = c->ctx->db;
		k->uid = peer.uid;
		rcu_thread_online();
		ans = handle(k, buf, (size_t)len);
		rcu_thread_offline();
		ans = settle(k, ans);
		log_change(k, &peer, buf, (size_t)len, ans);
		answer(c, fd, ans, ms_now() + CTL_IO_TIMEOUT_MS);
		free(k);
	}
	close(fd);
}

static void *
ctl_main(void *arg)
{
	struct dp_ctl *c = arg;
	char *buf = malloc(CTL_REQUEST_MAX);

	rcu_register_thread();
	rcu_thread_offline();
	while (buf) {
		struct pollfd p[2] = {{c->lfd, POLLIN, 0}, {c->efd, POLLIN, 0}};

		if (poll(p, 2, -1) < 0) {
			if (errno == EINTR)
				continue;
			RTE_LOG(ERR, USER1, "ctl: poll: %s\n", strerror(errno));
			break;
		}
		if (p[1].revents)
			break;
		if (p[0].revents & POLLIN)
			serve_one(c, buf);
	}
	free(buf);
	rcu_unregister_thread();
	return NULL;
}

/* ------------------------------------------------------------------------ */
/* Start and stop                                                             */

/* Refuse a path that exists and is not a stale socket; remove a stale one. */
static int
clear_stale(const char *path)
{
	struct sockaddr_un a = {.sun_family = AF_UNIX};
	struct stat st;
	int fd, rc;

	if (lstat(path, &st) != 0)
		return errno == ENOENT ? 0 : -errno;
	if (!S_ISSOCK(st.st_mode)) {
		RTE_LOG(ERR, USER1, "ctl: %s exists and is not a socket: not touching it\n",
			path);
		return -EEXIST;
	}
	snprintf(a.sun_path, sizeof(a.sun_path), "%s", path);
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -errno;
	rc = connect(fd, (struct sockaddr *)&a, sizeof(a));
	close(fd);
	if (rc == 0) {
		RTE_LOG(ERR, USER1, "ctl: %s: another authd is listening there\n", path);
		return -EADDRINUSE;
	}
	RTE_LOG(NOTICE, USER1, "ctl: removing stale socket %s\n", path);
	return unlink(path) ? -errno : 0;
}

static int
listen_on(struct dp_ctl *c)
{
	struct sockaddr_un a = {.sun_family = AF_UNIX};
	mode_t old;
	int rc;

	if ((rc = clear_stale(c->path)) != 0)
		return rc;
	snprintf(a.sun_path, sizeof(a.sun_path), "%s", c->path);
	c->lfd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
	if (c->lfd < 0)
		return -errno;
	/* 0600 from birth: no window in which others could connect. */
	old = umask(0177);
	rc = bind(c->lfd, (struct sockaddr *)&a, sizeof(a));
	umask(old);
	if (rc || chmod(c->path, 0600) || listen(c->lfd, 16)) {
		rc = -errno;
		RTE_LOG(ERR, USER1, "ctl: %s: %s\n", c->path, strerror(-rc));
		return rc;
	}
	return 0;
}

static int
ctl_path(const struct dp_ctx *ctx, char *path, size_t n)
{
	int len;

	if (ctx->cfg.ctl_path[0])
		len = snprintf(path, n, "%s", ctx->cfg.ctl_path);
	else
		len = snprintf(path, n, "%s/%s", rte_eal_get_runtime_dir(), CTL_SOCK_NAME);
	if (len < 0 || (size_t)len >= n) {
		RTE_LOG(ERR, USER1, "ctl: socket path longer than %zu bytes\n", n - 1);
		return -ENAMETOOLONG;
	}
	return 0;
}

struct dp_ctl *
dp_ctl_start(struct dp_ctx *ctx)
{
	struct dp_ctl *c = calloc(1, sizeof(*c));

	if (!c)
		return NULL;
	c->ctx = ctx;
	c->lfd = -1;
	c->efd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	if (sodium_init() < 0 || c->efd < 0 || ctl_path(ctx, c->path, sizeof(c->path)) ||
	    listen_on(c))
		goto fail;
	if (rte_ctrl_thread_create(&c->tid, "authd-ctl", NULL, ctl_main, c) != 0) {
		unlink(c->path);
		goto fail;
	}
	RTE_LOG(NOTICE, USER1, "ctl: listening on %s\n", c->path);
	return c;
fail:
	if (c->lfd >= 0)
		close(c->lfd);
	if (c->efd >= 0)
		close(c->efd);
	free(c);
	return NULL;
}

void
dp_ctl_stop(struct dp_ctl *c)
{
	uint64_t one = 1;

	if (!c)
		return;
	if (write(c->efd, &one, sizeof(one)) != sizeof(one))
		RTE_LOG(ERR, USER1, "ctl: cannot wake the control thread\n");
	pthread_join(c->tid, NULL);
	close(c->lfd);
	close(c->efd);
	unlink(c->path);
	free(c);
}
