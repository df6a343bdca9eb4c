/*
 * test_risk.c - the risk engine (dataplane/risk.c) on synthetic decision
 * streams, without DPDK.
 *
 * Every payment goes through the real decision path: auth_exec_one() on a
 * lim_db, then a struct dp_decision built exactly as node.c builds it, fed
 * to the engine, whose verdicts are applied to the same database by the
 * real actuator (dp_risk_apply()) through a sink that records them. So "the
 * merchant is blocked after N payments" is checked by the answer of
 * payment N + 1, as a gateway would see it.
 *
 * Scripts (exact outcomes, docs/risk.md states the bounds):
 *  - cash-out merchant: unrelated users pay near-limit round amounts at one
 *    merchant, one ordinary payment between every two: the merchant's score
 *    is raised at the 4th such user (5th payment there), it is blocked at
 *    the 8th (11th payment there), and every later payment there is
 *    MERCHANT_BLOCKED, risk 1000;
 *  - burst after a limit raise (round amounts 5 s apart): frozen at the 4th
 *    payment after the raise, the 5th is USER_FROZEN; the same payments
 *    30 s apart: score raised and limit lowered to outstanding + holds at
 *    the 4th, the 5th is INSUFFICIENT_LIMIT;
 *  - fraud crowd: the 4th user of one device paying near-limit round
 *    amounts freezes all four; the device's other user gets a score;
 *  - shadow mode issues the same verdicts and changes nothing;
 *  - an ordinary stream shaped like the demo base's traffic (authdb gen
 *    users and merchants, authgen's amounts, families sharing devices,
 *    shopping sprees, limit raises, voids, captures, repayments): no
 *    verdict; the false-positive rate is printed.
 */
#include <inttypes.h>
#include <math.h>
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
#include "risk.h"

#define PL LIM_PRODUCT_PAYLATER
#define YUAN 100
#define REC_MAX 4096
#define LINES_MAX 64

/* ------------------------------------------------------------------------ */
/* The harness: a database, an engine, a recording sink                       */

struct rec {
	struct dp_risk_verdict v;
	int outcome;
	uint64_t payment;         /* which payment (1-based) triggered it */
};

struct harness {
	struct fx f;
	struct dp_risk_engine *e;
	struct dp_risk_config cfg;
	struct dp_risk_sink sink;
	uint64_t payments;
	uint64_t next_req;
	struct rec rec[REC_MAX];
	unsigned nrec;
	struct lim_cfg_effect jr[REC_MAX];
	unsigned njr;
	char lines[LINES_MAX][512];
	unsigned nlines;
	int in_apply, in_lock;    /* begin/end and lock/unlock balance */
	unsigned applies, locks;
};

static void
h_begin(void *arg)
{
	struct harness *h = arg;

	assert_int_equal(h->in_apply, 0);
	h->in_apply = 1;
	h->applies++;
}

static void
h_end(void *arg)
{
	struct harness *h = arg;

	assert_int_equal(h->in_apply, 1);
	h->in_apply = 0;
}

static void
h_lock(void *arg)
{
	struct harness *h = arg;

	assert_int_equal(h->in_lock, 0);
	assert_int_equal(h->in_apply, 1);
	h->in_lock = 1;
	h->locks++;
}

static void
h_unlock(void *arg)
{
	struct harness *h = arg;

	assert_int_equal(h->in_lock, 1);
	h->in_lock = 0;
}

static int
h_journal(void *arg, const struct lim_cfg_effect *e)
{
	struct harness *h = arg;

	assert_true(h->njr < REC_MAX);
	h->jr[h->njr++] = *e;
	return 0;
}

static void
h_log(void *arg, const char *line)
{
	struct harness *h = arg;

	if (h->nlines < LINES_MAX)
		snprintf(h->lines[h->nlines++], sizeof(h->lines[0]), "%s", line);
}

static void
h_verdict(void *arg, const struct dp_risk_verdict *v, int outcome)
{
	struct harness *h = arg;

	assert_true(h->nrec < REC_MAX);
	h->rec[h->nrec++] = (struct rec){*v, outcome, h->payments};
}

static void
h_engine(struct harness *h)
{
	dp_risk_engine_free(h->e);
	h->e = dp_risk_engine_create(&h->cfg);
	assert_non_null(h->e);
	h->sink = (struct dp_risk_sink){
		.db = h->f.db, .arg = h,
		.apply_begin = h_begin, .apply_end = h_end,
		.merchants_lock = h_lock, .merchants_unlock = h_unlock,
		.journal = h_journal, .log = h_log, .verdict = h_verdict,
	};
}

/* An empty world (default policy and funders), risk mode @p mode. */
static void
h_init(struct harness *h, enum dp_risk_mode mode)
{
	memset(h, 0, sizeof(*h));
	fx_init_empty(&h->f, 4096, 1u << 16, 4);
	dp_risk_config_default(&h->cfg);
	h->cfg.mode = mode;
	h->cfg.users_max = 4096;
	h->cfg.merchants_max = 1024;
	h->cfg.devices_max = 4096;
	h->next_req = 1;
	h_engine(h);
}

static void
h_fini(struct harness *h)
{
	assert_int_equal(h->in_apply, 0);
	assert_int_equal(h->in_lock, 0);
	dp_risk_engine_free(h->e);
	fx_fini(&h->f);
}

static void
h_user(struct harness *h, uint64_t id, int64_t limit_yuan)
{
	const struct lim_user u = {.user_id = id, .limit_fen = limit_yuan * YUAN,
				   .tier = 2, .region = 21};

	fx_add_user(&h->f, &u);
}

static void
h_merchant(struct harness *h, uint32_t id)
{
	const struct lim_merchant m = {.merchant_id = id, .mcc = 5999,
				       .region = 21};

	assert_int_equal(lim_merchant_set(h->f.db, &m), 0);
}

/* What node.c puts on the risk ring for a record (decision_begin/end). */
static void
decision(struct dp_decision *dc, const struct auth_req *r,
	 const struct lim_user *u, uint32_t now, const struct auth_resp *a)
{
	memset(dc, 0, sizeof(*dc));
	dc->user_id = r->user_id;
	dc->device_id = r->device_id;
	dc->amount_fen = r->amount;
	dc->limit_fen = u ? u->limit_fen : 0;
	dc->merchant_id = r->merchant_id;
	dc->now_s = now;
	dc->region = r->region;
	dc->mcc = r->mcc;
	dc->op = r->op;
	dc->product = r->product;
	dc->terms = r->terms;
	dc->channel = r->channel;
	dc->available_fen = a->available;
	dc->status = a->status;
	dc->reason = a->reason;
	dc->notes = a->notes;
}

/* Decide @p r at @p now, feed its decision to the engine; the answer. */
static struct auth_resp
h_run(struct harness *h, struct auth_req *r, uint32_t now)
{
	struct lim_user *u = fx_user(&h->f, r->user_id);
	int64_t limit = u ? u->limit_fen : 0;
	struct auth_resp a;
	struct dp_decision dc;
	struct lim_effect eff;

	fx_set_now(&h->f, now);
	memset(&a, 0, sizeof(a));
	auth_exec_one(&h->f.x, FX_GW, r, u, &a, &eff);
	decision(&dc, r, u, now, &a);
	dc.limit_fen = limit; /* read before the decision, as node.c does */
	if (a.reason != AUTH_REASON_MALFORMED) {
		h->payments++;
		dp_risk_engine_feed(h->e, &dc, 1, &h->sink);
	}
	return a;
}

static struct auth_resp
pay(struct harness *h, uint64_t user, uint32_t merchant, uint64_t device,
    int64_t amount_fen, uint32_t now)
{
	struct auth_req r = fx_req(LIM_OP_AUTHORIZE, h->next_req++, user, 0,
				   amount_fen, PL);

	r.merchant_id = merchant;
	r.device_id = device;
	return h_run(h, &r, now);
}

static void
raise_limit(struct harness *h, uint64_t user, int64_t limit_yuan)
{
	struct lim_user *u = fx_user(&h->f, user);

	lim_user_lock(u);
	u->limit_fen = limit_yuan * YUAN;
	lim_user_unlock(u);
}

#define assert_reason(a, want)                                                 \
	assert_string_equal(auth_reason_name((a).reason), auth_reason_name(want))

static void
assert_verdict(const struct harness *h, unsigned i,
	       enum dp_risk_verdict_kind kind, enum dp_risk_detector det,
	       uint64_t id, uint64_t payment)
{
	assert_true(i < h->nrec);
	assert_string_equal(dp_risk_verdict_name(h->rec[i].v.kind),
			    dp_risk_verdict_name(kind));
	assert_string_equal(dp_risk_detector_name(h->rec[i].v.detector),
			    dp_risk_detector_name(det));
	assert_int_equal(h->rec[i].v.id, id);
	assert_int_equal(h->rec[i].payment, payment);
}

/* ------------------------------------------------------------------------ */
/* Configuration                                                              */

static void
test_config(void **state)
{
	struct dp_risk_config c;
	char err[256];
	uint32_t v;

	(void)state;
	dp_risk_config_default(&c);
	assert_int_equal(c.mode, DP_RISK_SHADOW);
	assert_int_equal(c.near_pct, 90);
	assert_int_equal(c.round_fen, 10000);
	assert_int_equal(c.merchant_users, 8);
	assert_int_equal(c.crowd_users, 4);
	assert_int_equal(c.users_max, 262144);
	assert_int_equal(dp_risk_config_set(&c, "mode", "on", err, sizeof(err)), 0);
	assert_int_equal(c.mode, DP_RISK_ON);
	assert_int_equal(dp_risk_config_set(&c, "merchant-users", "12", err,
					    sizeof(err)), 0);
	assert_int_equal(dp_risk_config_get(&c, "merchant-users", &v), 0);
	assert_int_equal(v, 12);
	assert_true(dp_risk_key_is_size("users-max"));
	assert_false(dp_risk_key_is_size("near-pct"));

	assert_int_equal(dp_risk_config_set(&c, "mode", "maybe", err, sizeof(err)),
			 -EINVAL);
	assert_string_equal(err, "mode=maybe: expected on, shadow or off");
	assert_int_equal(dp_risk_config_set(&c, "merchant-users", "17", err,
					    sizeof(err)), -EINVAL);
	assert_string_equal(err, "merchant-users=17: expected a whole number in 2..16");
	assert_int_equal(dp_risk_config_set(&c, "near-pct", "9x", err, sizeof(err)),
			 -EINVAL);
	assert_string_equal(err, "near-pct=9x: expected a whole number in 50..100");
	assert_int_equal(dp_risk_config_set(&c, "colour", "1", err, sizeof(err)),
			 -EINVAL);
	assert_string_equal(err, "unknown risk key 'colour' (docs/risk.md lists them)");
	assert_int_equal(dp_risk_config_get(&c, "merchant-users", &v), 0);
	assert_int_equal(v, 12); /* unchanged by the failures */
	assert_int_equal(dp_risk_config_get(&c, "colour", &v), -ENOENT);
	for (unsigned i = 0; i < dp_risk_keys(); i++) {
		assert_non_null(dp_risk_key_name(i));
		assert_non_null(dp_risk_key_help(i));
	}
	assert_null(dp_risk_key_name(dp_risk_keys()));

	/* several at once: all or nothing; sizes only when allowed */
	{
		const char *good[] = {"crowd-users=5", "mode=off", "near-pct=95"};
		const char *bad1[] = {"crowd-users=6", "near-pct=101"};
		const char *bad2[] = {"crowd-users=6", "users-max=1024"};
		const char *bad3[] = {"crowd-users"};

		assert_int_equal(dp_risk_config_set_kv(&c, good, 3, false, err,
						       sizeof(err)), 0);
		assert_int_equal(c.crowd_users, 5);
		assert_int_equal(c.mode, DP_RISK_OFF);
		assert_int_equal(c.near_pct, 95);
		assert_int_equal(dp_risk_config_set_kv(&c, bad1, 2, false, err,
						       sizeof(err)), -EINVAL);
		assert_string_equal(err, "near-pct=101: expected a whole number in 50..100");
		assert_int_equal(c.crowd_users, 5); /* the first item did not stick */
		assert_int_equal(dp_risk_config_set_kv(&c, bad2, 2, false, err,
						       sizeof(err)), -EINVAL);
		assert_string_equal(err, "users-max: a table size, set at start only "
					 "(authd --risk-set users-max=N)");
		assert_int_equal(c.crowd_users, 5);
		assert_int_equal(dp_risk_config_set_kv(&c, bad2, 2, true, err,
						       sizeof(err)), 0);
		assert_int_equal(c.users_max, 1024);
		assert_int_equal(dp_risk_config_set_kv(&c, bad3, 1, true, err,
						       sizeof(err)), -EINVAL);
		assert_string_equal(err, "crowd-users: expected KEY=VALUE");
	}
}

/* ------------------------------------------------------------------------ */
/* Features                                                                   */

static void
test_features(void **state)
{
	struct harness *h = malloc(sizeof(*h));
	struct dp_risk_user_view uv;
	struct dp_risk_merchant_view mv;
	struct dp_risk_counters c;
	const uint32_t t0 = FX_T0; /* a multiple of 300 s */

	(void)state;
	h_init(h, DP_RISK_SHADOW);
	h_user(h, 1, 3000);
	h_merchant(h, 50);
	h_merchant(h, 51);
	pay(h, 1, 50, 0xd1, 123 * YUAN + 45, t0);         /* plain */
	pay(h, 1, 50, 0xd1, 100 * YUAN, t0 + 5);          /* round */
	pay(h, 1, 51, 0xd1, 2700 * YUAN, t0 + 30);        /* round, near */
	assert_true(dp_risk_engine_user(h->e, 1, t0 + 30, &uv));
	assert_int_equal(uv.n_min, 3);
	assert_int_equal(uv.n_hour, 3);
	assert_int_equal(uv.round_hour, 2);
	/* 2700 of 2776.55 available: near; round: suspicious */
	assert_int_equal(uv.sus_hour, 1);
	assert_int_equal(uv.merchants, 2);
	assert_int_equal(uv.limit_fen, 3000 * YUAN);
	/* a minute later the first two fell out of the minute (10 s buckets) */
	pay(h, 1, 50, 0xd1, 1 * YUAN, t0 + 65);
	assert_true(dp_risk_engine_user(h->e, 1, t0 + 65, &uv));
	assert_int_equal(uv.n_min, 2);
	assert_int_equal(uv.n_hour, 4);
	/* the hour is 12 buckets of 5 min: all four are in the first one */
	assert_true(dp_risk_engine_user(h->e, 1, t0 + 3599, &uv));
	assert_int_equal(uv.n_hour, 4);
	assert_int_equal(uv.n_min, 0);
	assert_true(dp_risk_engine_user(h->e, 1, t0 + 3600, &uv));
	assert_int_equal(uv.n_hour, 0);

	/* a limit raise is learnt from the next decision */
	raise_limit(h, 1, 8000);
	pay(h, 1, 50, 0xd1, 10 * YUAN, t0 + 100);
	assert_true(dp_risk_engine_user(h->e, 1, t0 + 100, &uv));
	assert_int_equal(uv.raise_from_fen, 3000 * YUAN);
	assert_int_equal(uv.raise_to_fen, 8000 * YUAN);
	assert_int_equal(uv.raise_s, t0 + 100);
	assert_int_equal(uv.post_raise_n, 1);
	assert_int_equal(uv.post_raise_fen, 10 * YUAN);

	/* merchant 50: 4 authorizations, none near the limit */
	assert_true(dp_risk_engine_merchant(h->e, 50, t0 + 100, &mv));
	assert_int_equal(mv.n, 4);
	assert_int_equal(mv.near, 0);
	assert_int_equal(mv.sus, 0);
	assert_true(dp_risk_engine_merchant(h->e, 51, t0 + 100, &mv));
	assert_int_equal(mv.n, 1);
	assert_int_equal(mv.sus, 1);
	assert_int_equal(mv.unrelated, 1);
	assert_false(dp_risk_engine_user(h->e, 999, t0, &uv));

	/* other ops and duplicates are not authorizations */
	{
		struct auth_req r = fx_req(LIM_OP_AUTHORIZE, 7, 1, 0, 5 * YUAN, PL);
		struct auth_req v = fx_req(LIM_OP_VOID, 8, 1, 7, 0, PL);

		r.merchant_id = v.merchant_id = 50;
		h_run(h, &r, t0 + 110);
		h_run(h, &r, t0 + 111); /* DUPLICATE */
		h_run(h, &v, t0 + 112);
	}
	dp_risk_engine_counters(h->e, &c);
	assert_int_equal(c.c[DP_RISK_C_consumed], 8);
	assert_int_equal(c.c[DP_RISK_C_counted], 6);
	assert_int_equal(c.c[DP_RISK_C_ignored], 2);
	assert_int_equal(c.c[DP_RISK_C_raises], 1);
	assert_int_equal(c.c[DP_RISK_C_verdicts], 0);
	h_fini(h);
	free(h);
}

/* ------------------------------------------------------------------------ */
/* Cash-out merchant                                                          */

#define MX 7000u            /* the colluding merchant */
#define FRAUD0 20000u       /* fraud users 20001 .. 20030, one device each */
#define NORMAL0 30000u      /* ordinary users 30001 .. 30020 */

static void
merchant_world(struct harness *h)
{
	h_merchant(h, MX);
	for (unsigned i = 1; i <= 30; i++)
		h_user(h, FRAUD0 + i, 3000);
	for (unsigned i = 1; i <= 20; i++)
		h_user(h, NORMAL0 + i, 10000);
}

/*
 * Fraud user k pays 2,900 yuan (>= 90% of 3,000, a multiple of 100) at MX
 * from its own device; after every second one an ordinary user pays
 * 123.45 yuan there. One payment every 20 s. Returns the answers' reasons
 * in order (payments 1..n).
 */
static void
merchant_script(struct harness *h, unsigned payments, struct auth_resp *out)
{
	unsigned fraud = 0, normal = 0;

	for (unsigned p = 0; p < payments; p++) {
		uint32_t now = FX_T0 + 20 * p;

		if (p % 3 == 2) {
			normal++;
			out[p] = pay(h, NORMAL0 + normal, MX, 0xa000 + normal,
				     12345, now);
		} else {
			fraud++;
			out[p] = pay(h, FRAUD0 + fraud, MX, 0xf000 + fraud,
				     2900 * YUAN, now);
		}
	}
}

static void
test_merchant_cashout(void **state)
{
	struct harness *h = malloc(sizeof(*h));
	struct auth_resp a[45];
	const struct lim_merchant *m;
	uint64_t seq0;

	(void)state;
	h_init(h, DP_RISK_ON);
	merchant_world(h);
	seq0 = h->f.db->seq;
	merchant_script(h, 45, a);

	/* score raised at the 4th fraud user (payment 5), block at the 8th
	 * (payment 11); nothing else */
	assert_int_equal(h->nrec, 2);
	assert_verdict(h, 0, DP_RISK_V_MERCHANT_SCORE, DP_RISK_D_MERCHANT, MX, 5);
	assert_verdict(h, 1, DP_RISK_V_BLOCK_MERCHANT, DP_RISK_D_MERCHANT, MX, 11);
	assert_int_equal(h->rec[1].v.ev.unrelated, 8);
	assert_int_equal(h->rec[1].v.ev.m_sus, 8);
	assert_int_equal(h->rec[1].v.ev.m_n, 11);
	assert_int_equal(h->rec[1].outcome, DP_RISK_OUT_APPLIED);
	for (unsigned p = 0; p < 11; p++)
		assert_reason(a[p], AUTH_REASON_APPROVED);
	/* the answers carry the merchant's score as it rises */
	assert_int_equal(a[4].risk_score, 0);
	assert_int_equal(a[5].risk_score, 700);
	assert_int_equal(a[10].risk_score, 700);
	for (unsigned p = 11; p < 45; p++) {
		assert_reason(a[p], AUTH_REASON_MERCHANT_BLOCKED);
		assert_int_equal(a[p].risk_score, 1000);
	}
	m = lim_merchant_find(h->f.db, MX);
	assert_non_null(m);
	assert_int_equal(m->flags & LIM_MERCHANT_BLOCKED, LIM_MERCHANT_BLOCKED);
	assert_int_equal(m->risk_score, 1000);

	/* journaled: two merchant records from the risk uid, in seq order */
	assert_int_equal(h->njr, 2);
	assert_int_equal(h->jr[0].kind, LIM_EFF_MERCHANT_SET);
	assert_int_equal(h->jr[0].uid, LIM_UID_RISK);
	assert_int_equal(h->jr[0].id, MX);
	assert_int_equal(h->jr[0].u.merchant.risk_score, 700);
	assert_int_equal(h->jr[0].u.merchant.flags, 0);
	assert_int_equal(h->jr[1].u.merchant.flags, LIM_MERCHANT_BLOCKED);
	assert_int_equal(h->jr[1].u.merchant.risk_score, 1000);
	assert_int_equal(h->jr[1].now_s, FX_T0 + 20 * 10);
	assert_true(h->jr[0].seq > seq0 && h->jr[1].seq > h->jr[0].seq);
	assert_true(h->jr[1].seq <= h->f.db->seq);
	assert_int_equal(h->locks, 2);
	/* one line per verdict, with its evidence */
	assert_int_equal(h->nlines, 2);
	assert_string_equal(h->lines[1],
			    "verdict block-merchant merchant 7000 by merchant, "
			    "score >= 1000: 8 unrelated users with near-limit round "
			    "payments; 8 of 11 approved payments in the hour -> applied");
	h_fini(h);
	free(h);
}

/* The operator's unblock stands for rearm-s; then fresh evidence blocks. */
static void
test_merchant_rearm(void **state)
{
	struct harness *h = malloc(sizeof(*h));
	struct auth_resp a[12];
	struct lim_merchant m = {.merchant_id = MX, .mcc = 5999, .region = 21};

	(void)state;
	h_init(h, DP_RISK_ON);
	h->cfg.rearm_s = 600;
	h_engine(h);
	merchant_world(h);
	merchant_script(h, 12, a);
	assert_int_equal(h->nrec, 2);
	assert_reason(a[11], AUTH_REASON_MERCHANT_BLOCKED);

	/* the operator unblocks (score back to 0): the next fraud payment at
	 * FX_T0 + 300 is approved and no verdict repeats */
	assert_int_equal(lim_merchant_set(h->f.db, &m), 0);
	assert_reason(pay(h, FRAUD0 + 25, MX, 0xf000 + 25, 2900 * YUAN,
			  FX_T0 + 300), AUTH_REASON_APPROVED);
	assert_int_equal(h->nrec, 2);
	/* after rearm-s (600 s from the block at +200), the evidence of the
	 * hour blocks it again */
	assert_reason(pay(h, FRAUD0 + 26, MX, 0xf000 + 26, 2900 * YUAN,
			  FX_T0 + 800), AUTH_REASON_APPROVED);
	assert_int_equal(h->nrec, 3);
	assert_verdict(h, 2, DP_RISK_V_BLOCK_MERCHANT, DP_RISK_D_MERCHANT, MX,
		       14);
	assert_reason(pay(h, FRAUD0 + 27, MX, 0xf000 + 27, 2900 * YUAN,
			  FX_T0 + 801), AUTH_REASON_MERCHANT_BLOCKED);
	h_fini(h);
	free(h);
}

/* ------------------------------------------------------------------------ */
/* Burst right after a limit raise                                            */

#define UV 4242u

/*
 * User UV (limit 2,000 yuan) pays 35.50 yuan, its limit is raised to 10,000
 * yuan, then it pays 1,500 yuan six times, @p gap_s apart, at different
 * merchants: answers in out[0..6].
 */
static void
raise_script(struct harness *h, uint32_t gap_s, struct auth_resp *out)
{
	h_user(h, UV, 2000);
	for (uint32_t m = 1; m <= 6; m++)
		h_merchant(h, 60 + m);
	/* an ordinary payment teaches the engine the 2,000-yuan limit */
	out[0] = pay(h, UV, 61, 0xbeef, 3550, FX_T0);
	raise_limit(h, UV, 10000);
	for (unsigned p = 1; p <= 6; p++)
		out[p] = pay(h, UV, 60 + p, 0xbeef, 1500 * YUAN,
			     FX_T0 + 5 + gap_s * p);
}

static void
test_raise_burst(void **state)
{
	struct harness *h = malloc(sizeof(*h));
	struct auth_resp a[7];
	struct lim_user *u;

	(void)state;
	h_init(h, DP_RISK_ON);
	raise_script(h, 5, a);
	/* 4th payment after the raise (payment 5): the raise used (4 payments,
	 * 6,000 of 8,000 yuan), round 4 of 5, 5 in a minute: 3 points */
	assert_int_equal(h->nrec, 1);
	assert_verdict(h, 0, DP_RISK_V_FREEZE_USER, DP_RISK_D_ANOMALY, UV, 5);
	assert_int_equal(h->rec[0].v.ev.points, 3);
	assert_true(h->rec[0].v.ev.raise && h->rec[0].v.ev.round &&
		    h->rec[0].v.ev.burst && !h->rec[0].v.ev.near);
	assert_int_equal(h->rec[0].v.ev.post_raise_n, 4);
	assert_int_equal(h->rec[0].v.ev.post_raise_fen, 6000 * YUAN);
	for (unsigned p = 0; p <= 4; p++) {
		assert_reason(a[p], AUTH_REASON_APPROVED);
		assert_int_equal(a[p].risk_score, 0);
	}
	for (unsigned p = 5; p <= 6; p++) {
		assert_reason(a[p], AUTH_REASON_USER_FROZEN);
		assert_int_equal(a[p].risk_score, 1000);
	}
	u = fx_user(&h->f, UV);
	assert_int_equal(u->flags & LIM_USER_FROZEN, LIM_USER_FROZEN);
	assert_int_equal(u->risk_q, 250);
	assert_int_equal(u->limit_fen, 10000 * YUAN);
	assert_int_equal(h->njr, 1);
	assert_int_equal(h->jr[0].kind, LIM_EFF_USER_SET);
	assert_int_equal(h->jr[0].uid, LIM_UID_RISK);
	assert_int_equal(h->jr[0].id, UV);
	assert_int_equal(h->jr[0].u.user.flags & LIM_USER_FROZEN, LIM_USER_FROZEN);
	assert_int_equal(h->jr[0].u.user.risk_q, 250);
	assert_int_equal(h->jr[0].u.user.limit_fen, 10000 * YUAN);
	assert_int_equal(h->locks, 0); /* no merchant touched */
	h_fini(h);
	free(h);
}

/* The same payments 30 s apart: no burst, so a warning and a lower limit. */
static void
test_raise_slow(void **state)
{
	struct harness *h = malloc(sizeof(*h));
	struct auth_resp a[7];
	struct lim_user *u;

	(void)state;
	h_init(h, DP_RISK_ON);
	raise_script(h, 30, a);
	assert_int_equal(h->nrec, 2);
	assert_verdict(h, 0, DP_RISK_V_USER_SCORE, DP_RISK_D_ANOMALY, UV, 5);
	assert_verdict(h, 1, DP_RISK_V_LOWER_LIMIT, DP_RISK_D_ANOMALY, UV, 5);
	assert_int_equal(h->rec[0].v.ev.points, 2);
	assert_true(h->rec[0].v.ev.raise && h->rec[0].v.ev.round &&
		    !h->rec[0].v.ev.burst);
	for (unsigned p = 0; p <= 4; p++)
		assert_reason(a[p], AUTH_REASON_APPROVED);
	/* the limit is down to outstanding + holds: nothing left */
	for (unsigned p = 5; p <= 6; p++) {
		assert_reason(a[p], AUTH_REASON_INSUFFICIENT_LIMIT);
		assert_int_equal(a[p].available, 0);
		assert_int_equal(a[p].risk_score, 600);
	}
	u = fx_user(&h->f, UV);
	assert_int_equal(u->flags, 0);
	assert_int_equal(u->risk_q, 150);
	assert_int_equal(u->limit_fen, 3550 + 4 * 1500 * YUAN);
	assert_int_equal(h->njr, 2);
	assert_int_equal(h->jr[0].u.user.risk_q, 150);
	assert_int_equal(h->jr[0].u.user.limit_fen, 10000 * YUAN);
	assert_int_equal(h->jr[1].u.user.limit_fen, 3550 + 4 * 1500 * YUAN);
	assert_true(h->jr[1].seq > h->jr[0].seq);
	h_fini(h);
	free(h);
}

/* ------------------------------------------------------------------------ */
/* Fraud crowd                                                                */

#define DEV 0xc0ffee
#define CROWD0 50000u

static void
test_crowd(void **state)
{
	struct harness *h = malloc(sizeof(*h));
	struct auth_resp a;

	(void)state;
	h_init(h, DP_RISK_ON);
	for (unsigned i = 1; i <= 6; i++) {
		h_user(h, CROWD0 + i, 3000);
		h_merchant(h, 70 + i);
	}
	/* user 6 shops normally on the shared device */
	assert_reason(pay(h, CROWD0 + 6, 76, DEV, 8800, FX_T0),
		      AUTH_REASON_APPROVED);
	/* users 1..4 pay 3,000 yuan (their whole limit) a minute apart */
	for (unsigned i = 1; i <= 4; i++)
		assert_reason(pay(h, CROWD0 + i, 70 + i, DEV, 3000 * YUAN,
				  FX_T0 + 60 * i), AUTH_REASON_APPROVED);
	/* the 4th freezes all four, and scores the device's other user */
	assert_int_equal(h->nrec, 5);
	for (unsigned i = 0; i < 5; i++) {
		const struct rec *r = &h->rec[i];

		assert_int_equal(r->payment, 5);
		assert_int_equal(r->v.detector, DP_RISK_D_CROWD);
		assert_int_equal(r->v.ev.crowd, 4);
		assert_int_equal(r->v.ev.device_users, 5);
		if (r->v.id == CROWD0 + 6)
			assert_int_equal(r->v.kind, DP_RISK_V_USER_SCORE);
		else
			assert_int_equal(r->v.kind, DP_RISK_V_FREEZE_USER);
	}
	for (unsigned i = 1; i <= 4; i++) {
		a = pay(h, CROWD0 + i, 70 + i, DEV, 10 * YUAN, FX_T0 + 300);
		assert_reason(a, AUTH_REASON_USER_FROZEN);
		assert_int_equal(a.risk_score, 1000);
	}
	a = pay(h, CROWD0 + 6, 76, DEV, 10 * YUAN, FX_T0 + 300);
	assert_reason(a, AUTH_REASON_APPROVED);
	assert_int_equal(a.risk_score, 600);
	/* a 5th member joining the crowd is frozen at its first such payment */
	assert_reason(pay(h, CROWD0 + 5, 75, DEV, 2900 * YUAN, FX_T0 + 400),
		      AUTH_REASON_APPROVED);
	assert_int_equal(h->nrec, 6);
	assert_verdict(h, 5, DP_RISK_V_FREEZE_USER, DP_RISK_D_CROWD, CROWD0 + 5, 11);
	/* no merchant verdict: a crowd is related users, not a merchant's */
	for (unsigned i = 0; i < h->nrec; i++)
		assert_int_not_equal(h->rec[i].v.detector, DP_RISK_D_MERCHANT);
	h_fini(h);
	free(h);
}

/* A log line per verdict, at most log-per-s per second of decision time. */
static void
test_log_rate(void **state)
{
	struct harness *h = malloc(sizeof(*h));
	struct dp_risk_counters c;

	(void)state;
	h_init(h, DP_RISK_ON);
	h->cfg.log_per_s = 2;
	h_engine(h);
	h_merchant(h, 77);
	for (unsigned i = 1; i <= 4; i++) {
		h_user(h, CROWD0 + i, 3000);
		pay(h, CROWD0 + i, 77, DEV, 3000 * YUAN, FX_T0);
	}
	assert_int_equal(h->nrec, 4);
	assert_int_equal(h->nlines, 2);
	dp_risk_engine_counters(h->e, &c);
	assert_int_equal(c.c[DP_RISK_C_log_suppressed], 2);
	assert_int_equal(c.c[DP_RISK_C_applied], 4);
	assert_int_equal(c.by_kind[DP_RISK_V_FREEZE_USER], 4);
	assert_int_equal(c.by_detector[DP_RISK_D_CROWD], 4);
	h_fini(h);
	free(h);
}

/* ------------------------------------------------------------------------ */
/* Shadow and off                                                             */

static void
test_shadow(void **state)
{
	struct harness *h = malloc(sizeof(*h));
	struct auth_resp a[45], b[7];
	struct dp_risk_counters c;
	uint64_t seq_before;

	(void)state;
	h_init(h, DP_RISK_SHADOW);
	merchant_world(h);
	merchant_script(h, 45, a);
	seq_before = h->f.db->seq;
	raise_script(h, 5, b);
	/* the same verdicts as in mode on... */
	assert_int_equal(h->nrec, 2 + 1);
	assert_verdict(h, 0, DP_RISK_V_MERCHANT_SCORE, DP_RISK_D_MERCHANT, MX, 5);
	assert_verdict(h, 1, DP_RISK_V_BLOCK_MERCHANT, DP_RISK_D_MERCHANT, MX, 11);
	assert_verdict(h, 2, DP_RISK_V_FREEZE_USER, DP_RISK_D_ANOMALY, UV, 50);
	for (unsigned i = 0; i < h->nrec; i++)
		assert_int_equal(h->rec[i].outcome, DP_RISK_OUT_SHADOW);
	/* ...and nothing acted on: every payment decided as without risk */
	for (unsigned p = 0; p < 45; p++) {
		assert_reason(a[p], AUTH_REASON_APPROVED);
		assert_int_equal(a[p].risk_score, 0);
	}
	for (unsigned p = 0; p < 7; p++) {
		assert_reason(b[p], AUTH_REASON_APPROVED);
		assert_int_equal(b[p].risk_score, 0);
	}
	assert_int_equal(lim_merchant_find(h->f.db, MX)->flags, 0);
	assert_int_equal(fx_user(&h->f, UV)->flags, 0);
	assert_int_equal(fx_user(&h->f, UV)->limit_fen, 10000 * YUAN);
	assert_int_equal(h->njr, 0);
	assert_int_equal(h->applies, 0);
	/* seq moved only by the 7 decisions */
	assert_int_equal(h->f.db->seq, seq_before + 7);
	dp_risk_engine_counters(h->e, &c);
	assert_int_equal(c.c[DP_RISK_C_shadow], 3);
	assert_int_equal(c.c[DP_RISK_C_applied], 0);
	assert_int_equal(strncmp(h->lines[1], "shadow verdict block-merchant "
				 "merchant 7000", 42), 0);
	assert_non_null(strstr(h->lines[1], "-> not applied (shadow)"));

	/* mode off: records are consumed and nothing is learnt */
	h->cfg.mode = DP_RISK_OFF;
	dp_risk_engine_configure(h->e, &h->cfg);
	pay(h, NORMAL0 + 1, MX, 1, 100 * YUAN, FX_T0 + 1000);
	dp_risk_engine_counters(h->e, &c);
	assert_int_equal(c.c[DP_RISK_C_consumed], 45 + 7 + 1);
	assert_int_equal(c.c[DP_RISK_C_counted], 45 + 7);
	h_fini(h);
	free(h);
}

/* ------------------------------------------------------------------------ */
/* The actuator alone                                                         */

static void
test_apply(void **state)
{
	struct harness *h = malloc(sizeof(*h));
	struct dp_risk_verdict v = {.kind = DP_RISK_V_FREEZE_USER, .id = 1,
				    .score = 1000, .now_s = FX_T0};
	struct lim_cfg_effect e;
	struct lim_user *u;
	const struct lim_merchant *m;
	uint64_t seq;

	(void)state;
	h_init(h, DP_RISK_ON);
	h_user(h, 1, 5000);
	u = fx_user(&h->f, 1);
	u->risk_q = 200;
	seq = h->f.db->seq;
	assert_int_equal(dp_risk_apply(h->f.db, &v, &e), 1);
	assert_int_equal(e.seq, seq + 1);
	assert_int_equal(h->f.db->seq, seq + 1);
	assert_int_equal(e.kind, LIM_EFF_USER_SET);
	assert_int_equal(e.uid, LIM_UID_RISK);
	assert_int_equal(e.now_s, FX_T0);
	assert_int_equal(e.u.user.flags, LIM_USER_FROZEN);
	assert_int_equal(e.u.user.risk_q, 250);
	assert_int_equal(e.u.user.tier, 2);
	assert_int_equal(e.u.user.limit_fen, 5000 * YUAN);
	assert_int_equal(u->lock, 0);
	/* again: nothing to change, nothing journaled */
	assert_int_equal(dp_risk_apply(h->f.db, &v, &e), 0);
	assert_int_equal(h->f.db->seq, seq + 1);
	/* scores only go up */
	v.kind = DP_RISK_V_USER_SCORE;
	v.score = 600;
	assert_int_equal(dp_risk_apply(h->f.db, &v, &e), 0);
	assert_int_equal(u->risk_q, 250);
	/* lower limit: by 50%, or down to outstanding + holds */
	v.kind = DP_RISK_V_LOWER_LIMIT;
	v.score = 0;
	v.lower_pct = 50;
	assert_int_equal(dp_risk_apply(h->f.db, &v, &e), 1);
	assert_int_equal(u->limit_fen, 2500 * YUAN);
	u->holds_fen = 2000 * YUAN;
	assert_int_equal(dp_risk_apply(h->f.db, &v, &e), 1);
	assert_int_equal(u->limit_fen, 2000 * YUAN);
	assert_int_equal(dp_risk_apply(h->f.db, &v, &e), 0);
	v.lower_pct = 0;
	u->holds_fen = 0;
	assert_int_equal(dp_risk_apply(h->f.db, &v, &e), 0);
	/* unknown user: nothing */
	v.id = 2;
	assert_int_equal(dp_risk_apply(h->f.db, &v, &e), 0);
	/* a merchant not in the table is created blocked, mcc and region
	 * from the decision */
	v = (struct dp_risk_verdict){.kind = DP_RISK_V_BLOCK_MERCHANT, .id = 99,
				     .score = 1000, .mcc = 6051, .region = 7};
	assert_int_equal(dp_risk_apply(h->f.db, &v, &e), 1);
	m = lim_merchant_find(h->f.db, 99);
	assert_non_null(m);
	assert_int_equal(m->flags, LIM_MERCHANT_BLOCKED);
	assert_int_equal(m->risk_score, 1000);
	assert_int_equal(m->mcc, 6051);
	assert_int_equal(e.kind, LIM_EFF_MERCHANT_SET);
	assert_int_equal(e.u.merchant.merchant_id, 99);
	assert_int_equal(dp_risk_apply(h->f.db, &v, &e), 0);
	v.id = 1ULL << 40;
	assert_int_equal(dp_risk_apply(h->f.db, &v, &e), -EINVAL);
	v.id = 0;
	assert_int_equal(dp_risk_apply(h->f.db, &v, &e), -EINVAL);
	h_fini(h);
	free(h);
}

/* ------------------------------------------------------------------------ */
/* Bounded memory                                                             */

static void
test_eviction(void **state)
{
	struct dp_risk_config cfg;
	struct dp_risk_engine *e;
	struct dp_risk_counters c;
	struct dp_decision d = {.op = LIM_OP_AUTHORIZE, .amount_fen = 1234,
				.available_fen = 100000, .limit_fen = 200000,
				.merchant_id = 1, .now_s = FX_T0};

	(void)state;
	dp_risk_config_default(&cfg);
	cfg.users_max = cfg.merchants_max = cfg.devices_max = 64;
	e = dp_risk_engine_create(&cfg);
	assert_non_null(e);
	for (unsigned i = 1; i <= 10000; i++) {
		d.user_id = i;
		d.device_id = 0x10000 + i;
		d.now_s = FX_T0 + i / 100;
		dp_risk_engine_feed(e, &d, 1, NULL);
	}
	dp_risk_engine_counters(e, &c);
	assert_int_equal(c.users, 64);
	assert_int_equal(c.devices, 64);
	assert_int_equal(c.merchants, 1);
	assert_int_equal(c.c[DP_RISK_C_users_evicted], 10000 - 64);
	assert_int_equal(c.c[DP_RISK_C_devices_evicted], 10000 - 64);
	assert_int_equal(c.c[DP_RISK_C_counted], 10000);
	/* the most recent users are the ones kept (least recently seen goes) */
	{
		struct dp_risk_user_view uv;
		unsigned kept = 0;

		for (unsigned i = 10000 - 99; i <= 10000; i++)
			kept += dp_risk_engine_user(e, i, FX_T0 + 100, &uv);
		assert_true(kept >= 32);
		assert_false(dp_risk_engine_user(e, 1, FX_T0 + 100, &uv));
	}
	dp_risk_engine_free(e);
}

/* ------------------------------------------------------------------------ */
/* An ordinary stream: the false-positive rate                                */

#define FP_USERS 100000u
#define FP_SEED 7u
#define FP_SPAN_S (6u * 3600u)
#define FP_KEEP 65536u

struct fp_auth {
	uint64_t request_id, user_id;
	int64_t amount;
	uint32_t merchant_id;
	bool captured;
};

struct fp {
	struct harness *h;
	uint64_t rng;
	int64_t *amounts;             /* authgen's default: lognormal 150 yuan */
	struct fp_auth keep[FP_KEEP]; /* approved authorizations to void etc. */
	unsigned nkeep;
	uint64_t merchants;
	struct dp_decision *dec;      /* the stream, replayed for timing */
	uint64_t dec_max;
	uint64_t decisions, raises, sprees;
	uint64_t reasons[AUTH_REASONS];
};

static uint64_t
fp_next(struct fp *s)
{
	uint64_t z = (s->rng += 0x9e3779b97f4a7c15ULL);

	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
	return z ^ (z >> 31);
}

static uint64_t
fp_below(struct fp *s, uint64_t n)
{
	return (uint64_t)(((unsigned __int128)fp_next(s) * n) >> 64);
}

/* authgen's default amounts: lognormal, median 150 yuan, sigma 1, <= 50k. */
static void
fp_amounts(struct fp *s)
{
	s->amounts = malloc(65536 * sizeof(*s->amounts));
	assert_non_null(s->amounts);
	for (unsigned i = 0; i < 65536; i++) {
		double u1 = ((double)(fp_next(s) >> 11) + 0.5) / 9007199254740992.0;
		double u2 = (double)(fp_next(s) >> 11) / 9007199254740992.0;
		double z = sqrt(-2.0 * log(u1)) * cos(2.0 * M_PI * u2);
		int64_t v = (int64_t)llround(15000.0 * exp(z));

		s->amounts[i] = v < 1 ? 1 : v > 5000000 ? 5000000 : v;
	}
}

/*
 * A user's device: 5% of users live in families of 3 sharing one device;
 * the others have their own, and 5% of payments come from a fresh device
 * (a browser, a borrowed phone), as authgen does.
 */
static uint64_t
fp_device(struct fp *s, uint64_t index)
{
	if (index % 60 < 3)
		return 0xfa0000000000ULL + index / 60;
	if (fp_below(s, 100) < 5)
		return fp_next(s) | 1;
	return lim_gen_user_id(99, index) | 1;
}

/* 95% authgen's amounts; 5% round ones (100..1,000 yuan: top-ups, gifts). */
static int64_t
fp_amount(struct fp *s)
{
	static const int64_t round_yuan[] = {100, 200, 300, 500, 1000};

	if (fp_below(s, 100) < 5)
		return round_yuan[fp_below(s, 5)] * YUAN;
	return s->amounts[fp_below(s, 65536)];
}

static void
fp_exec(struct fp *s, struct auth_req *r, uint32_t now)
{
	struct harness *h = s->h;
	struct lim_user *u = lim_users_find(h->f.db->users, r->user_id);
	int64_t limit = u ? u->limit_fen : 0;
	struct auth_resp a;
	struct lim_effect eff;
	struct dp_decision dc;

	if (h->f.x.now.s != now)
		fx_set_now(&h->f, now);
	auth_exec_one(&h->f.x, FX_GW, r, u, &a, &eff);
	decision(&dc, r, u, now, &a);
	dc.limit_fen = limit;
	s->reasons[a.reason < AUTH_REASONS ? a.reason : 0]++;
	if (s->decisions < s->dec_max)
		s->dec[s->decisions] = dc;
	s->decisions++;
	dp_risk_engine_feed(h->e, &dc, 1, &h->sink);
	if (r->op == LIM_OP_AUTHORIZE && a.status == AUTH_STATUS_APPROVED) {
		struct fp_auth k = {r->request_id, r->user_id, r->amount,
				    r->merchant_id, false};

		if (s->nkeep < FP_KEEP)
			s->keep[s->nkeep++] = k;
		else
			s->keep[fp_below(s, FP_KEEP)] = k;
	}
}

static void
fp_authorize(struct fp *s, uint64_t index, uint32_t now)
{
	struct auth_req r = {.request_id = s->h->next_req++,
			     .user_id = lim_gen_user_id(FP_SEED, index),
			     .amount = fp_amount(s), .op = LIM_OP_AUTHORIZE,
			     .product = PL, .channel = AUTH_CHANNEL_APP,
			     .mcc = 5411, .region = 21};

	r.merchant_id = lim_gen_merchant_id(FP_SEED, fp_below(s, s->merchants));
	r.device_id = fp_device(s, index);
	fp_exec(s, &r, now);
}

/* Void, capture or repay a remembered authorization. */
static void
fp_follow_up(struct fp *s, unsigned kind, uint32_t now)
{
	struct fp_auth *k;
	struct auth_req r = {.request_id = s->h->next_req++, .product = PL,
			     .channel = AUTH_CHANNEL_APP, .mcc = 5411,
			     .region = 21};
	unsigned i;

	if (!s->nkeep)
		return;
	i = (unsigned)fp_below(s, s->nkeep);
	k = &s->keep[i];
	r.user_id = k->user_id;
	r.merchant_id = k->merchant_id;
	if (kind == 0 || (kind == 1 && k->captured)) {
		r.op = k->captured ? LIM_OP_REPAY : LIM_OP_VOID;
		r.ref_id = k->captured ? 0 : k->request_id;
		r.merchant_id = k->captured ? 0 : k->merchant_id;
		r.amount = k->captured ? k->amount : 0;
		s->keep[i] = s->keep[--s->nkeep];
	} else {
		r.op = LIM_OP_CAPTURE;
		r.ref_id = k->request_id;
		r.amount = k->amount;
		k->captured = true;
	}
	fp_exec(s, &r, now);
}

/* An operator raises a random user's limit by 20-100%. */
static void
fp_raise(struct fp *s)
{
	struct lim_user *u = lim_users_find(
		s->h->f.db->users, lim_gen_user_id(FP_SEED, fp_below(s, FP_USERS)));

	lim_user_lock(u);
	u->limit_fen += u->limit_fen * (int64_t)(20 + fp_below(s, 81)) / 100;
	lim_user_unlock(u);
	s->raises++;
}

static void
fp_stream(struct fp *s, uint64_t n)
{
	for (uint64_t i = 0; s->decisions < n; i++) {
		uint32_t now = FX_T0 + (uint32_t)(s->decisions * FP_SPAN_S / n);
		uint64_t x = fp_below(s, 1000);

		if (x < 700) {
			uint64_t u = fp_below(s, FP_USERS);

			fp_authorize(s, u, now);
			/* 3% of purchases start a spree: 2-5 more within a minute */
			if (fp_below(s, 100) < 3) {
				unsigned more = 2 + (unsigned)fp_below(s, 4);

				s->sprees++;
				for (unsigned j = 1; j <= more; j++)
					fp_authorize(s, u, now + 10 * j);
			}
		} else if (x < 999) {
			fp_follow_up(s, x < 850 ? 0 : x < 950 ? 2 : 1, now);
		} else {
			fp_raise(s);
		}
	}
}

/*
 * The engine's own cost: the recorded stream replayed into a fresh engine
 * (shadow, no database) in batches of 256, as the worker feeds it.
 * Returns decisions per second; the verdicts must be the same (none).
 */
static double
fp_replay(struct fp *s, const struct dp_risk_config *cfg)
{
	struct dp_risk_config c = *cfg;
	struct dp_risk_engine *e;
	struct dp_risk_counters cnt;
	struct timespec t0, t1;
	uint64_t n = s->decisions < s->dec_max ? s->decisions : s->dec_max;
	double secs;

	c.mode = DP_RISK_SHADOW;
	e = dp_risk_engine_create(&c);
	assert_non_null(e);
	clock_gettime(CLOCK_MONOTONIC, &t0);
	for (uint64_t i = 0; i < n; i += 256)
		dp_risk_engine_feed(e, s->dec + i, n - i < 256 ? (unsigned)(n - i) : 256,
				    NULL);
	clock_gettime(CLOCK_MONOTONIC, &t1);
	dp_risk_engine_counters(e, &cnt);
	assert_int_equal(cnt.c[DP_RISK_C_consumed], n);
	assert_int_equal(cnt.c[DP_RISK_C_verdicts], 0);
	dp_risk_engine_free(e);
	secs = (double)(t1.tv_sec - t0.tv_sec) + (double)(t1.tv_nsec - t0.tv_nsec) / 1e9;
	return (double)n / secs;
}

static void
test_ordinary_stream(void **state)
{
	struct harness *h = calloc(1, sizeof(*h));
	struct fp *s = calloc(1, sizeof(*s));
	const char *env = getenv("RISK_FP_DECISIONS");
	uint64_t n = env ? strtoull(env, NULL, 10) : 1000000;
	const struct lim_db_config dc = {.users_max = FP_USERS,
					 .ops_max = n + n / 2,
					 .merchants_max = FP_USERS / 10,
					 .groups_max = FP_USERS / 100,
					 .shards = 2};
	const struct lim_gen_config gc = {.seed = FP_SEED, .users = FP_USERS,
					  .now_s = FX_T0};
	struct dp_risk_counters c;
	char err[256];
	double rate;

	(void)state;
	assert_non_null(h);
	assert_non_null(s);
	h->f.db = lim_db_create(&dc);
	assert_non_null(h->f.db);
	h->f.x.db = h->f.db;
	assert_int_equal(lim_gen_fill(h->f.db, &gc, NULL, err, sizeof(err)), 0);
	fx_set_now(&h->f, FX_T0);
	dp_risk_config_default(&h->cfg);
	h->cfg.mode = DP_RISK_ON;
	h_engine(h);
	h->next_req = 1;
	s->h = h;
	s->rng = 42;
	s->merchants = lim_gen_merchants(&gc);
	s->dec_max = n + 16;
	s->dec = malloc(s->dec_max * sizeof(*s->dec));
	assert_non_null(s->dec);
	fp_amounts(s);
	fp_stream(s, n);
	rate = fp_replay(s, &h->cfg);

	dp_risk_engine_counters(h->e, &c);
	printf("ordinary stream: %" PRIu64 " decisions (%" PRIu64 " authorizations "
	       "counted), %u users, %" PRIu64 " merchants, %u h; %" PRIu64
	       " sprees, %" PRIu64 " limit raises\n",
	       s->decisions, c.c[DP_RISK_C_counted], FP_USERS, s->merchants,
	       FP_SPAN_S / 3600, s->sprees, s->raises);
	printf("  answers: approved %" PRIu64 ", insufficient limit %" PRIu64
	       ", velocity %" PRIu64 ", frozen %" PRIu64 ", risk %" PRIu64 "\n",
	       s->reasons[AUTH_REASON_APPROVED],
	       s->reasons[AUTH_REASON_INSUFFICIENT_LIMIT],
	       s->reasons[AUTH_REASON_RISK_VELOCITY],
	       s->reasons[AUTH_REASON_USER_FROZEN],
	       s->reasons[AUTH_REASON_RISK_CASHOUT]);
	printf("  verdicts: %" PRIu64 " -> false-positive rate %.6f%% of "
	       "decisions, %.6f%% of users\n",
	       c.c[DP_RISK_C_verdicts],
	       100.0 * (double)c.c[DP_RISK_C_verdicts] / (double)s->decisions,
	       100.0 * (double)c.c[DP_RISK_C_verdicts] / FP_USERS);
	printf("  engine alone (replayed in batches of 256): %.0f decisions/s "
	       "(%.0f ns each), %zu MB reserved\n",
	       rate, 1e9 / rate, dp_risk_engine_bytes(h->e) >> 20);
	for (unsigned i = 0; i < h->nlines && i < 10; i++)
		printf("  %s\n", h->lines[i]);
	assert_int_equal(c.c[DP_RISK_C_verdicts], 0);
	assert_true(c.c[DP_RISK_C_counted] > n / 2);
	dp_risk_engine_free(h->e);
	lim_db_free(h->f.db);
	free(s->amounts);
	free(s->dec);
	free(s);
	free(h);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_config),
		cmocka_unit_test(test_features),
		cmocka_unit_test(test_merchant_cashout),
		cmocka_unit_test(test_merchant_rearm),
		cmocka_unit_test(test_raise_burst),
		cmocka_unit_test(test_raise_slow),
		cmocka_unit_test(test_crowd),
		cmocka_unit_test(test_log_rate),
		cmocka_unit_test(test_shadow),
		cmocka_unit_test(test_apply),
		cmocka_unit_test(test_eviction),
		cmocka_unit_test(test_ordinary_stream),
	};
	int rc;

	rcu_register_thread();
	rc = cmocka_run_group_tests(tests, NULL, NULL);
	rcu_unregister_thread();
	return rc;
}
