/*
 * authgen_profile.c - workload profiles: what the options --profile
 * double11 and --profile cashout[:PCT] set up, and what they report.
 *
 * Design note.
 *
 * double11 (the shopping festival of the domain brief):
 *  - rate: with --rate R and --duration D (open loop), R is the peak: the
 *    offered rate rises linearly from GEN_D11_BASE_PERMILLE (10%) of R to R
 *    over the first third of D, holds for the second third, falls back to
 *    10% over the last (gen_profile_rate_pm()). A warm-up runs at 10%.
 *    Closed loop or --count: no ramp (said in the report);
 *  - products: GEN_D11_PRODUCTS (installments first) unless --products;
 *  - hot merchants: GEN_D11_HOT_N merchants take GEN_D11_HOT_PCT% of the
 *    authorizations. With a snapshot (--ids-from, --check-model) they are
 *    the first merchants (in the snapshot's order) that subsidise
 *    installments and are not blocked, and an installment there takes one
 *    of the terms the merchant subsidises, so its answers carry the
 *    INTEREST_FREE note; without one, the first merchant indices, whose
 *    subsidies authgen does not know.
 *
 * cashout[:PCT] (default 10): PCT% of the records are a scripted cash-out
 * attack (authgen_load.c, attack()), the rest ordinary. It needs a
 * snapshot, because a near-limit payment needs the user's limit and
 * balances. The last quarter of the users (at most GEN_ATTACK_SLICE_MAX)
 * and the last tenth of the merchants (at most 64) are set aside: ordinary
 * traffic never touches them, so the attackers' credit is what the
 * snapshot says when they pay, and a colluding merchant's traffic is the
 * attack alone (as the fraudulent-merchant detector expects). An attacker
 * is a user there that is not frozen, has no extension (temporary quota,
 * alert threshold), no hard self cap, a risk score below the warning
 * level, and available credit A >= 1,000 yuan; it pays P, the smallest
 * multiple of 100 yuan that is >= 90% of A, when P <= A, P >= 50% of its
 * limit and P fits its tier's velocity limits: docs/risk.md's "near-limit
 * round" with its default thresholds (near-pct 90, max-pct 50, round-fen
 * 10000). What is left (A - P, about 10% of A) lets a crowd member's
 * second payment (100 yuan, GEN_AGAIN_DELAY_MS later) be approved unless
 * the member was frozen in between.
 * The colluding merchants are the first GEN_COLLUDERS set-aside merchants
 * that exist, are not blocked and have a risk score below 500.
 * Not scripted: "many payments right after a limit raise" (a raise is a
 * control-plane act, authctl, that authgen cannot make).
 * What shows: with authd --risk on, each colluding merchant is blocked at
 * its 8th unrelated payer (merchant-users) and later payments there are
 * MERCHANT_BLOCKED; a crowd of GEN_CROWD users on one device is frozen from
 * its 4th member (crowd-users), and the members' second payments are
 * USER_FROZEN. Verdicts are asynchronous (authd's risk worker): payments in
 * flight when a verdict is reached still pass, so a few attack payments
 * after the 8th payer are approved, and the second payments wait
 * GEN_AGAIN_DELAY_MS. With --risk shadow (authd's default) everything is approved
 * and the verdicts are only logged.
 *
 * Concurrency: set up by the main thread before the workers start;
 * read-only afterwards.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>
#include <rte_lcore.h>

#include "authgen.h"

#define GEN_COLLUDER_SLICE_MAX 64
#define GEN_NEAR_PCT 90     /* docs/risk.md near-pct default */
#define GEN_MAX_PCT 50      /* max-pct */
#define GEN_ROUND_FEN 10000 /* round-fen */
#define GEN_RISK_Q_MAX 150  /* risk score 600 (a warning) / 4 */

static uint64_t
user_id_at(const struct gen_ctx *c, uint64_t i)
{
	return c->user_ids ? c->user_ids[i] : lim_gen_user_id(c->cfg.seed, i);
}

static uint32_t
merchant_id_at(const struct gen_ctx *c, uint64_t i)
{
	return c->merchant_ids ? c->merchant_ids[i]
			       : lim_gen_merchant_id(c->cfg.seed, i);
}

/* ------------------------------------------------------------------------ */
/* double11                                                                   */

uint32_t
gen_profile_rate_pm(const struct gen_ctx *c, uint64_t t_ms)
{
	uint64_t third = c->ramp_ms;
	uint64_t span = 1000 - GEN_D11_BASE_PERMILLE;

	if (!third)
		return 1000;
	if (t_ms < third)
		return (uint32_t)(GEN_D11_BASE_PERMILLE + span * t_ms / third);
	if (t_ms < 2 * third)
		return 1000;
	if (t_ms < 3 * third)
		return (uint32_t)(1000 - span * (t_ms - 2 * third) / third);
	return GEN_D11_BASE_PERMILLE;
}

static void
hot_setup(struct gen_ctx *c, struct lim_db *db)
{
	unsigned want = GEN_D11_HOT_N;

	if (want > c->n_merchants)
		want = (unsigned)c->n_merchants;
	c->hot_subsidy_known = db != NULL;
	/* Subsidising merchants first (a snapshot tells), then any. */
	for (uint64_t i = 0; db && i < c->n_merchants && c->n_hot < want; i++) {
		uint32_t id = merchant_id_at(c, i);
		const struct lim_merchant *m = lim_merchant_find(db, id);

		if (m && m->subsidy && !(m->flags & LIM_MERCHANT_BLOCKED))
			c->hot[c->n_hot++] = (struct gen_hot){id, m->subsidy, {0}};
	}
	for (uint64_t i = 0; i < c->n_merchants && c->n_hot < want; i++) {
		uint32_t id = merchant_id_at(c, i);
		bool dup = false;

		for (unsigned k = 0; k < c->n_hot; k++)
			dup |= c->hot[k].merchant_id == id;
		if (!dup)
			c->hot[c->n_hot++] = (struct gen_hot){id, 0, {0}};
	}
	if (c->cfg.rate && c->cfg.duration_s >= 3)
		c->ramp_ms = (uint64_t)(c->cfg.duration_s * 1000.0) / 3;
}

/* ------------------------------------------------------------------------ */
/* cashout                                                                    */

/* What user @p u pays as an attacker, or 0 when it cannot be one. */
static int64_t
attack_amount(const struct lim_user *u, const struct lim_policy *p,
	      int64_t *left)
{
	const struct lim_tier *t = &p->tier[u->tier < LIM_TIERS ? u->tier : 0];
	int64_t avail = u->limit_fen - u->outstanding_fen - u->holds_fen;
	int64_t near = (avail * GEN_NEAR_PCT + 99) / 100;
	int64_t pay = (near + GEN_ROUND_FEN - 1) / GEN_ROUND_FEN * GEN_ROUND_FEN;

	if ((u->flags & (LIM_USER_FROZEN | LIM_USER_EXT)) ||
	    (u->self_cap_fen && !(u->flags & LIM_USER_SOFT_CAP)) ||
	    u->risk_q >= GEN_RISK_Q_MAX ||
	    !(t->products & (1u << LIM_PRODUCT_PAYLATER)))
		return 0;
	if (avail < 1000 * 100 || pay > avail ||
	    pay * 100 < avail * GEN_NEAR_PCT ||
	    pay * 100 < u->limit_fen * GEN_MAX_PCT)
		return 0;
	if ((t->vel_min_fen && pay > t->vel_min_fen) ||
	    (t->vel_day_fen && pay > t->vel_day_fen))
		return 0;
	*left = avail - pay;
	return pay;
}

static int
attackers_setup(struct gen_ctx *c, struct lim_db *db, uint64_t slice,
		char *err, size_t errlen)
{
	const struct lim_policy *p = lim_policy_get(db);

	c->attackers = calloc(slice ? slice : 1, sizeof(*c->attackers));
	if (!c->attackers) {
		snprintf(err, errlen, "out of memory for the attackers");
		return -ENOMEM;
	}
	for (uint64_t i = c->n_users - slice; i < c->n_users; i++) {
		const struct lim_user *u = lim_users_find(db->users,
							  user_id_at(c, i));
		struct gen_attacker *a = &c->attackers[c->n_attackers];

		c->attack_candidates++;
		if (!u || !(a->amount_fen = attack_amount(u, p, &a->left_fen)))
			continue;
		a->user_id = u->user_id;
		a->region = u->region;
		c->n_attackers++;
	}
	/* Set up before the port: the workers are the EAL lcores. */
	if (c->n_attackers < GEN_CROWD * (uint64_t)rte_lcore_count() + 1) {
		snprintf(err, errlen, "--profile cashout: only %" PRIu64
			 " of the %" PRIu64 " users set aside can pay a "
			 "near-limit round amount (a base of more users?)",
			 c->n_attackers, slice);
		return -EINVAL;
	}
	return 0;
}

static int
colluders_setup(struct gen_ctx *c, struct lim_db *db, uint64_t slice,
		char *err, size_t errlen)
{
	for (uint64_t i = c->n_merchants - slice;
	     i < c->n_merchants && c->n_colluders < GEN_COLLUDERS; i++) {
		uint32_t id = merchant_id_at(c, i);
		const struct lim_merchant *m = lim_merchant_find(db, id);

		if (m && !(m->flags & LIM_MERCHANT_BLOCKED) &&
		    m->risk_score < 500)
			c->colluders[c->n_colluders++] = id;
	}
	if (!c->n_colluders) {
		snprintf(err, errlen, "--profile cashout: no merchant to "
			 "collude among the last %" PRIu64, slice);
		return -EINVAL;
	}
	return 0;
}

static int
cashout_setup(struct gen_ctx *c, struct lim_db *db, char *err, size_t errlen)
{
	uint64_t users = c->n_users / 4, merchants = c->n_merchants / 10;
	int rc;

	if (!db) {
		snprintf(err, errlen, "--profile cashout needs the users' "
			 "limits: --ids-from SNAPSHOT (or --check-model)");
		return -EINVAL;
	}
	if (users > GEN_ATTACK_SLICE_MAX)
		users = GEN_ATTACK_SLICE_MAX;
	if (merchants > GEN_COLLUDER_SLICE_MAX)
		merchants = GEN_COLLUDER_SLICE_MAX;
	if (merchants < 1 || c->n_merchants < 2 || c->n_users < 8) {
		snprintf(err, errlen, "--profile cashout: too few users or "
			 "merchants to set some aside");
		return -EINVAL;
	}
	rc = attackers_setup(c, db, users, err, errlen);
	if (rc == 0)
		rc = colluders_setup(c, db, merchants, err, errlen);
	if (rc == 0) {
		c->n_users_ord = c->n_users - users;
		c->n_merchants_ord = c->n_merchants - merchants;
	}
	return rc;
}

/* ------------------------------------------------------------------------ */
/* Set-up                                                                     */

int
gen_profile_setup(struct gen_ctx *c, struct lim_db *db, char *err,
		  size_t errlen)
{
	int rc = 0;

	c->n_users_ord = c->n_users;
	c->n_merchants_ord = c->n_merchants;
	if (c->cfg.profile == GEN_PROFILE_DOUBLE11)
		hot_setup(c, db);
	else if (c->cfg.profile == GEN_PROFILE_CASHOUT)
		rc = cashout_setup(c, db, err, errlen);
	if (rc)
		return rc;
	if (c->cfg.users_dist.kind == GEN_DIST_ZIPF)
		gen_zipf_init(&c->zipf_users, c->n_users_ord, c->cfg.users_dist.s);
	if (c->cfg.merchants_dist.kind == GEN_DIST_ZIPF && c->n_merchants_ord)
		gen_zipf_init(&c->zipf_merchants, c->n_merchants_ord,
			      c->cfg.merchants_dist.s);
	return 0;
}

/* ------------------------------------------------------------------------ */
/* Report                                                                     */

static double
pct(uint64_t a, uint64_t b)
{
	return b ? 100.0 * (double)a / (double)b : 0.0;
}

/* "users zipf:0.99 over 15000: top 1% (150) drew 54.1% (law 54.2%)" */
static void
print_dist(FILE *f, const char *what, const struct gen_dist *d,
	   const struct gen_zipf *z, uint64_t n, uint64_t draws, uint64_t top)
{
	uint64_t k = n / 100 ? n / 100 : 1;

	fprintf(f, "  %-10s%s over %" PRIu64 ": the top 1%% (%" PRIu64
		   ") drew %.1f%% of %" PRIu64, what,
		d->kind == GEN_DIST_ZIPF ? d->spec : "uniform", n, k,
		pct(top, draws), draws);
	if (d->kind == GEN_DIST_ZIPF)
		fprintf(f, " (the law: %.1f%%)\n", 100.0 * gen_zipf_share(z, k));
	else
		fprintf(f, " (the law: %.1f%%)\n", pct(k, n));
}

static void
print_double11(FILE *f, const struct gen_ctx *c, const struct gen_stats *s)
{
	const struct gen_config *cfg = &c->cfg;
	unsigned sub = 0;

	for (unsigned i = 0; i < c->n_hot; i++)
		sub += c->hot[i].subsidy != 0;
	if (c->ramp_ms)
		fprintf(f, "  %-10sdouble11: rate %u%% -> 100%% of %" PRIu64
			   "/s over %.1f s, held %.1f s, back to %u%% over %.1f "
			   "s\n", "profile", GEN_D11_BASE_PERMILLE / 10, cfg->rate,
			c->ramp_ms / 1000.0, c->ramp_ms / 1000.0,
			GEN_D11_BASE_PERMILLE / 10, c->ramp_ms / 1000.0);
	else
		fprintf(f, "  %-10sdouble11: no rate ramp (it needs --rate and "
			   "--duration >= 3 s)\n", "profile");
	fprintf(f, "  %-10sproducts %s%s\n", "",
		cfg->products_set ? "as --products" : GEN_D11_PRODUCTS,
		cfg->products_set ? "" : " (installments first)");
	fprintf(f, "  %-10s%u hot merchants (%u subsidise installments%s) "
		   "took %" PRIu64 " authorizations (%.1f%% of %" PRIu64
		   ", target %u%%)\n", "", c->n_hot, sub,
		c->hot_subsidy_known ? "" : ": unknown without a snapshot",
		s->hot[GEN_HOT_AUTHS], pct(s->hot[GEN_HOT_AUTHS],
					   s->op_sent[LIM_OP_AUTHORIZE]),
		s->op_sent[LIM_OP_AUTHORIZE], GEN_D11_HOT_PCT);
	fprintf(f, "  %-10sthere: %" PRIu64 " installments, %" PRIu64
		   " approved answers, %" PRIu64 " INTEREST_FREE\n", "",
		s->hot[GEN_HOT_INSTALLMENTS], s->hot[GEN_HOT_APPROVED],
		s->hot[GEN_HOT_INTEREST_FREE]);
}

static void
print_cashout(FILE *f, const struct gen_ctx *c, const struct gen_stats *s)
{
	uint64_t risk = 0, appr = 0;

	fprintf(f, "  %-10scashout: %u%% of records are attack records; %"
		   PRIu64 " attackers (of %" PRIu64 " users set aside), %u "
		   "colluding merchants, crowds of %u on one device\n",
		"profile", c->cfg.cashout_pct, c->n_attackers,
		c->attack_candidates, c->n_colluders, GEN_CROWD);
	for (unsigned k = 1; k < GEN_ATTACKS; k++) {
		const uint64_t *r = s->attack_reason[k];

		appr += s->attack_status[k][0];
		risk += r[AUTH_REASON_MERCHANT_BLOCKED] +
			r[AUTH_REASON_USER_FROZEN] + r[AUTH_REASON_RISK_CASHOUT];
		fprintf(f, "  %-10s%-12s sent %" PRIu64 ": approved %" PRIu64
			   ", declined %" PRIu64 " (MERCHANT_BLOCKED %" PRIu64
			   ", USER_FROZEN %" PRIu64 ", RISK_CASHOUT %" PRIu64
			   ", other %" PRIu64 "), error %" PRIu64 "\n", "",
			gen_attack_name(k), s->attack_sent[k],
			s->attack_status[k][0], s->attack_status[k][1],
			r[AUTH_REASON_MERCHANT_BLOCKED], r[AUTH_REASON_USER_FROZEN],
			r[AUTH_REASON_RISK_CASHOUT],
			s->attack_status[k][1] - r[AUTH_REASON_MERCHANT_BLOCKED] -
				r[AUTH_REASON_USER_FROZEN] -
				r[AUTH_REASON_RISK_CASHOUT],
			s->attack_status[k][2]);
	}
	if (s->c[GEN_C_attack_exhausted])
		fprintf(f, "  %-10sattackers used up: %" PRIu64 " attack records "
			   "sent as ordinary ones\n", "",
			s->c[GEN_C_attack_exhausted]);
	if (appr && !risk)
		fprintf(f, "  %-10sno attack payment was stopped by the risk "
			   "detectors: is authd running --risk on? (its "
			   "default, shadow, only logs verdicts)\n", "");
	fprintf(f, "  %-10snot scripted: payments right after a limit raise "
		   "(a raise is authctl's, not a gateway's)\n", "");
}

void
gen_profile_print(FILE *f, const struct gen_ctx *c, const struct gen_stats *s)
{
	const struct gen_config *cfg = &c->cfg;

	if (cfg->replay_path[0])
		return;
	if (cfg->users_dist.kind == GEN_DIST_ZIPF || cfg->profile)
		print_dist(f, "users", &cfg->users_dist, &c->zipf_users,
			   c->n_users_ord, s->dist_draws[0], s->dist_top[0]);
	if (cfg->merchants_dist.kind == GEN_DIST_ZIPF || cfg->profile)
		print_dist(f, "merchants", &cfg->merchants_dist,
			   &c->zipf_merchants, c->n_merchants_ord,
			   s->dist_draws[1], s->dist_top[1]);
	if (cfg->profile == GEN_PROFILE_DOUBLE11)
		print_double11(f, c, s);
	else if (cfg->profile == GEN_PROFILE_CASHOUT)
		print_cashout(f, c, s);
}

static json_t *
dist_json(const struct gen_dist *d, const struct gen_zipf *z, uint64_t n,
	  uint64_t draws, uint64_t top)
{
	uint64_t k = n / 100 ? n / 100 : 1;

	return json_pack("{s:s, s:f, s:I, s:I, s:I, s:f, s:f}", "kind",
			 d->kind == GEN_DIST_ZIPF ? "zipf" : "uniform", "s",
			 d->kind == GEN_DIST_ZIPF ? d->s : 0.0, "n", (json_int_t)n,
			 "draws", (json_int_t)draws, "top1pct_draws",
			 (json_int_t)top, "top1pct_share",
			 draws ? (double)top / (double)draws : 0.0,
			 "top1pct_share_law",
			 d->kind == GEN_DIST_ZIPF ? gen_zipf_share(z, k)
						  : (double)k / (double)(n ? n : 1));
}

static json_t *
double11_json(const struct gen_ctx *c, const struct gen_stats *s)
{
	json_t *o = json_object(), *hot = json_array();

	for (unsigned i = 0; i < c->n_hot; i++)
		json_array_append_new(hot, json_pack("{s:I, s:i}", "merchant_id",
						     (json_int_t)c->hot[i].merchant_id,
						     "subsidy", c->hot[i].subsidy));
	json_object_set_new(o, "ramp_third_s", json_real(c->ramp_ms / 1000.0));
	json_object_set_new(o, "ramp_base_pct",
			    json_integer(GEN_D11_BASE_PERMILLE / 10));
	json_object_set_new(o, "peak_rate", json_integer((json_int_t)c->cfg.rate));
	json_object_set_new(o, "products",
			    json_string(c->cfg.products_set ? "--products"
							    : GEN_D11_PRODUCTS));
	json_object_set_new(o, "hot_merchants", hot);
	json_object_set_new(o, "hot_subsidy_known",
			    json_boolean(c->hot_subsidy_known));
	json_object_set_new(o, "hot_target_pct", json_integer(GEN_D11_HOT_PCT));
	json_object_set_new(o, "authorizations",
			    json_integer((json_int_t)s->op_sent[LIM_OP_AUTHORIZE]));
	json_object_set_new(o, "hot_authorizations",
			    json_integer((json_int_t)s->hot[GEN_HOT_AUTHS]));
	json_object_set_new(o, "hot_installments",
			    json_integer((json_int_t)s->hot[GEN_HOT_INSTALLMENTS]));
	json_object_set_new(o, "hot_approved",
			    json_integer((json_int_t)s->hot[GEN_HOT_APPROVED]));
	json_object_set_new(o, "hot_interest_free",
			    json_integer((json_int_t)s->hot[GEN_HOT_INTEREST_FREE]));
	return o;
}

static json_t *
cashout_json(const struct gen_ctx *c, const struct gen_stats *s)
{
	json_t *o = json_object(), *kinds = json_object(), *col = json_array();

	for (unsigned i = 0; i < c->n_colluders; i++)
		json_array_append_new(col, json_integer(c->colluders[i]));
	for (unsigned k = 1; k < GEN_ATTACKS; k++) {
		json_t *reasons = json_object();

		for (unsigned r = 0; r <= AUTH_REASONS; r++)
			if (s->attack_reason[k][r])
				json_object_set_new(reasons,
						    r < AUTH_REASONS ? auth_reason_name(r)
								     : "out-of-range",
						    json_integer((json_int_t)
								 s->attack_reason[k][r]));
		json_object_set_new(kinds, gen_attack_name(k), json_pack(
			"{s:I, s:I, s:I, s:I, s:o}",
			"sent", (json_int_t)s->attack_sent[k],
			"approved", (json_int_t)s->attack_status[k][0],
			"declined", (json_int_t)s->attack_status[k][1],
			"error", (json_int_t)s->attack_status[k][2],
			"reasons", reasons));
	}
	json_object_set_new(o, "pct", json_integer(c->cfg.cashout_pct));
	json_object_set_new(o, "attackers", json_integer((json_int_t)c->n_attackers));
	json_object_set_new(o, "users_set_aside",
			    json_integer((json_int_t)c->attack_candidates));
	json_object_set_new(o, "colluding_merchants", col);
	json_object_set_new(o, "crowd_size", json_integer(GEN_CROWD));
	json_object_set_new(o, "by_kind", kinds);
	json_object_set_new(o, "exhausted",
			    json_integer((json_int_t)s->c[GEN_C_attack_exhausted]));
	json_object_set_new(o, "not_scripted",
			    json_string("payments right after a limit raise"));
	return o;
}

json_t *
gen_profile_json(const struct gen_ctx *c, const struct gen_stats *s)
{
	const struct gen_config *cfg = &c->cfg;
	json_t *o = json_object();

	json_object_set_new(o, "name",
			    json_string(cfg->profile == GEN_PROFILE_DOUBLE11 ? "double11"
					: cfg->profile == GEN_PROFILE_CASHOUT ? "cashout"
									      : "none"));
	json_object_set_new(o, "users_dist",
			    dist_json(&cfg->users_dist, &c->zipf_users,
				      c->n_users_ord, s->dist_draws[0],
				      s->dist_top[0]));
	json_object_set_new(o, "merchants_dist",
			    dist_json(&cfg->merchants_dist, &c->zipf_merchants,
				      c->n_merchants_ord, s->dist_draws[1],
				      s->dist_top[1]));
	if (cfg->profile == GEN_PROFILE_DOUBLE11)
		json_object_set_new(o, "double11", double11_json(c, s));
	else if (cfg->profile == GEN_PROFILE_CASHOUT)
		json_object_set_new(o, "cashout", cashout_json(c, s));
	return o;
}
