/*
 * policy.c - the engine's policy: defaults, consistency check, and the day
 * and month boundaries in the policy's time zone.
 *
 * The defaults are the business rules documented in docs/rules.md; a change
 * here is a change there. A policy is immutable once published (lim_db).
 */
#include <errno.h>
#include <string.h>

#include "lim_pvt.h"

#define YUAN 100LL /* fen */
#define DAY_S 86400

#define P(product) (1u << (product))
#define ALL_PRODUCTS                                                           \
	(P(LIM_PRODUCT_PAYLATER) | P(LIM_PRODUCT_INSTALLMENT) | P(LIM_PRODUCT_CASH))

/*
 * Tiers, lowest first. New users start low: no cash loan and short terms
 * until they have history (the domain brief's "lowered default quotas").
 */
static const struct lim_tier default_tiers[LIM_TIERS] = {
	/* large    vel/min     vel/day    products                 terms n/min n/day cash% */
	{500 * YUAN, 1000 * YUAN, 3000 * YUAN,
	 P(LIM_PRODUCT_PAYLATER) | P(LIM_PRODUCT_INSTALLMENT), 6, 3, 20, 0, {0}},
	{2000 * YUAN, 5000 * YUAN, 20000 * YUAN,
	 P(LIM_PRODUCT_PAYLATER) | P(LIM_PRODUCT_INSTALLMENT), 12, 5, 50, 0, {0}},
	{5000 * YUAN, 20000 * YUAN, 50000 * YUAN, ALL_PRODUCTS, 12, 10, 100, 30, {0}},
	{5000 * YUAN, 30000 * YUAN, 80000 * YUAN, ALL_PRODUCTS, 12, 10, 100, 35, {0}},
	{10000 * YUAN, 50000 * YUAN, 100000 * YUAN, ALL_PRODUCTS, 12, 20, 150, 40, {0}},
	{10000 * YUAN, 80000 * YUAN, 150000 * YUAN, ALL_PRODUCTS, 12, 20, 150, 45, {0}},
	{20000 * YUAN, 100000 * YUAN, 200000 * YUAN, ALL_PRODUCTS, 12, 30, 200, 50, {0}},
	{20000 * YUAN, 0, 0, ALL_PRODUCTS, 12, 0, 0, 50, {0}},
};

void
lim_policy_default(struct lim_policy *p)
{
	memset(p, 0, sizeof(*p));
	p->ceiling_fen = 100000000000LL * YUAN; /* 100 billion yuan */
	p->cap_chunk_fen = p->ceiling_fen / 10000;
	p->tz_offset_s = 8 * 3600;
	p->hold_ttl_s = 7 * DAY_S;
	p->retain_s = 7 * DAY_S;
	p->refund_window_s = 30 * DAY_S;
	p->cool_cash_s = 1 * DAY_S;
	p->cool_raise_s = 3 * DAY_S;
	p->own_share_min_pct = 30;
	p->low_avail_pct = 10;
	p->inst_cash_pct = 50;
	p->unknown_merchant_ok = 0;
	p->risk_decline = 900;
	memcpy(p->tier, default_tiers, sizeof(p->tier));
}

static int
fail(char *err, size_t errlen, const char *msg)
{
	if (err && errlen)
		snprintf(err, errlen, "%s", msg);
	return -EINVAL;
}

static int
tier_check(const struct lim_tier *t, unsigned i, char *err, size_t errlen)
{
	char msg[128];

	if (t->products & ~ALL_PRODUCTS) {
		snprintf(msg, sizeof(msg), "tier %u: unknown product bits", i);
		return fail(err, errlen, msg);
	}
	if (t->max_terms != 0 && t->max_terms != 3 && t->max_terms != 6 &&
	    t->max_terms != 12) {
		snprintf(msg, sizeof(msg), "tier %u: max_terms must be 0, 3, 6 or 12", i);
		return fail(err, errlen, msg);
	}
	if (t->cash_pct > 100) {
		snprintf(msg, sizeof(msg), "tier %u: cash_pct above 100", i);
		return fail(err, errlen, msg);
	}
	if (t->large_spend_fen < 0 || t->vel_min_fen < 0 || t->vel_day_fen < 0) {
		snprintf(msg, sizeof(msg), "tier %u: negative amount", i);
		return fail(err, errlen, msg);
	}
	return 0;
}

int
lim_policy_check(const struct lim_policy *p, char *err, size_t errlen)
{
	if (p->ceiling_fen <= 0)
		return fail(err, errlen, "ceiling must be positive");
	if (p->cap_chunk_fen <= 0 || p->cap_chunk_fen > p->ceiling_fen)
		return fail(err, errlen, "cap chunk must be in 1..ceiling");
	if (p->tz_offset_s < -14 * 3600 || p->tz_offset_s > 14 * 3600)
		return fail(err, errlen, "time zone offset must be within +-14 h");
	if (p->hold_ttl_s == 0)
		return fail(err, errlen, "hold timeout must be positive");
	if (p->retain_s < p->hold_ttl_s)
		return fail(err, errlen,
			    "ids must be kept at least as long as holds (retain >= hold ttl)");
	if (p->own_share_min_pct > 100 || p->low_avail_pct > 100 ||
	    p->inst_cash_pct > 100)
		return fail(err, errlen, "a percentage is above 100");
	if (p->risk_decline > 1000)
		return fail(err, errlen, "risk decline score must be 0..1000");
	for (unsigned i = 0; i < LIM_TIERS; i++) {
		int rc = tier_check(&p->tier[i], i, err, errlen);
		if (rc)
			return rc;
	}
	return 0;
}

uint32_t
lim_day_start(uint32_t now_s, int32_t tz_offset_s)
{
	int64_t local = (int64_t)now_s + tz_offset_s;
	int64_t day = local >= 0 ? local / DAY_S : (local - DAY_S + 1) / DAY_S;

	return (uint32_t)(day * DAY_S - tz_offset_s);
}

uint32_t
lim_month_start(uint32_t now_s, int32_t tz_offset_s)
{
	int64_t local = (int64_t)now_s + tz_offset_s;
	int64_t day = local >= 0 ? local / DAY_S : (local - DAY_S + 1) / DAY_S;
	int64_t y;
	unsigned m, d;

	lim_civil_from_days(day, &y, &m, &d);
	return (uint32_t)((day - (d - 1)) * DAY_S - tz_offset_s);
}
