/*
 * proto.c - the control protocol's value parsers, policy keys, command
 * table and request decoder (ctl_proto.h says what each is for). Shared by
 * authd (ctl/), authctl and the policy file loader.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "ctl_proto.h"

int
ctl_fail(char *err, size_t n, const char *why)
{
	if (err && n)
		snprintf(err, n, "%s", why);
	return -EINVAL;
}

int
ctl_parse_duration(const char *s, uint32_t *out, char *err, size_t n)
{
	const char *why = "expected a duration such as 7d, 12h, 30m, 45s or 1d12h";
	uint64_t total = 0;
	const char *p = s;

	if (!s || !*s)
		return ctl_fail(err, n, why);
	while (*p) {
		uint64_t v = 0, mult;
		unsigned digits = 0;

		for (; *p >= '0' && *p <= '9' && digits < 11; p++, digits++)
			v = v * 10 + (uint64_t)(*p - '0');
		if (digits == 0 || digits > 10)
			return ctl_fail(err, n, why);
		switch (*p) {
		case 'd': mult = 86400; p++; break;
		case 'h': mult = 3600; p++; break;
		case 'm': mult = 60; p++; break;
		case 's': mult = 1; p++; break;
		case '\0':
			if (p - s != (ptrdiff_t)digits)
				return ctl_fail(err, n, why); /* "1d30": unit missing */
			mult = 1;
			break;
		default:
			return ctl_fail(err, n, why);
		}
		total += v * mult;
		if (total > UINT32_MAX)
			return ctl_fail(err, n, "longer than 136 years");
	}
	*out = (uint32_t)total;
	return 0;
}

const char *
ctl_fmt_duration(uint32_t s, char *buf, size_t n)
{
	static const struct { uint32_t sec; char unit; } u[] = {
		{86400, 'd'}, {3600, 'h'}, {60, 'm'}, {1, 's'}};
	size_t off = 0;

	buf[0] = '\0';
	if (s == 0) {
		snprintf(buf, n, "0s");
		return buf;
	}
	for (unsigned i = 0; i < 4 && off < n; i++)
		if (s >= u[i].sec) {
			off += (size_t)snprintf(buf + off, n - off, "%u%c",
						s / u[i].sec, u[i].unit);
			s %= u[i].sec;
		}
	return buf;
}

int
ctl_parse_tz(const char *s, int32_t *out, char *err, size_t n)
{
	const char *why = "expected a UTC offset such as +08:00, -05:30 or Z";
	uint64_t h = 0, m = 0;
	int sign, rc = -EINVAL;
	const char *p;
	size_t len;

	if (!s || !*s)
		return ctl_fail(err, n, why);
	if (!strcmp(s, "Z") || !strcmp(s, "UTC")) {
		*out = 0;
		return 0;
	}
	if (*s != '+' && *s != '-')
		return ctl_fail(err, n, why);
	sign = *s == '-' ? -1 : 1;
	p = s + 1;
	len = strlen(p);
	/* H, HH, HHMM or HH:MM */
	if (len == 1 || len == 2)
		rc = lim_parse_u64_span(p, len, 99, &h);
	else if (len == 4 || (len == 5 && p[2] == ':'))
		rc = lim_parse_u64_span(p, 2, 99, &h) ?:
		     lim_parse_u64_span(p + len - 2, 2, 59, &m);
	if (rc)
		return ctl_fail(err, n, why);
	if (h * 60 + m > 14 * 60)
		return ctl_fail(err, n, "offset beyond +-14:00");
	*out = sign * (int32_t)(h * 3600 + m * 60);
	return 0;
}

const char *
ctl_fmt_tz(int32_t off, char *buf, size_t n)
{
	unsigned a = (unsigned)(off < 0 ? -off : off);

	snprintf(buf, n, "%c%02u:%02u", off < 0 ? '-' : '+', a / 3600,
		 a / 60 % 60);
	return buf;
}

int
ctl_parse_set(const char *s, const char *const *names, const uint8_t *bits,
	      unsigned count, uint8_t *out)
{
	uint8_t v = 0;
	const char *p = s;

	if (!s || !*s)
		return -EINVAL;
	if (!strcmp(s, "none")) {
		*out = 0;
		return 0;
	}
	for (;;) {
		const char *comma = strchr(p, ',');
		size_t len = comma ? (size_t)(comma - p) : strlen(p);
		bool found = false;

		for (unsigned i = 0; i < count; i++)
			if (strlen(names[i]) == len && !strncmp(p, names[i], len)) {
				v |= bits[i];
				found = true;
			}
		if (!found)
			return -EINVAL;
		if (!comma)
			break;
		p = comma + 1;
	}
	*out = v;
	return 0;
}

void
ctl_fmt_set(uint8_t v, const char *const *names, const uint8_t *bits,
	    unsigned count, char *buf, size_t n)
{
	size_t off = 0;

	buf[0] = '\0';
	for (unsigned i = 0; i < count; i++)
		if ((v & bits[i]) && off < n)
			off += (size_t)snprintf(buf + off, n - off, "%s%s",
						off ? "," : "", names[i]);
	if (!off)
		snprintf(buf, n, "none");
}

const char *const ctl_product_names[] = {"pl", "inst", "cash"};

const uint8_t ctl_product_bits[] = {
	1u << LIM_PRODUCT_PAYLATER, 1u << LIM_PRODUCT_INSTALLMENT,
	1u << LIM_PRODUCT_CASH};

const char *const ctl_subsidy_names[] = {"3", "6", "12"};

const uint8_t ctl_subsidy_bits[] = {LIM_SUBSIDY_3, LIM_SUBSIDY_6,
					   LIM_SUBSIDY_12};

int
ctl_parse_products(const char *s, uint8_t *out, char *err, size_t n)
{
	if (ctl_parse_set(s, ctl_product_names, ctl_product_bits, 3, out))
		return ctl_fail(err, n, "expected products from pl,inst,cash (comma-separated) or none");
	return 0;
}

const char *
ctl_fmt_products(uint8_t v, char *buf, size_t n)
{
	ctl_fmt_set(v, ctl_product_names, ctl_product_bits, 3, buf, n);
	return buf;
}

int
ctl_parse_subsidy(const char *s, uint8_t *out, char *err, size_t n)
{
	if (ctl_parse_set(s, ctl_subsidy_names, ctl_subsidy_bits, 3, out))
		return ctl_fail(err, n, "expected terms from 3,6,12 (comma-separated) or none");
	return 0;
}

const char *
ctl_fmt_subsidy(uint8_t v, char *buf, size_t n)
{
	ctl_fmt_set(v, ctl_subsidy_names, ctl_subsidy_bits, 3, buf, n);
	return buf;
}

int
ctl_parse_bool(const char *s, bool *out, char *err, size_t n)
{
	if (s && (!strcmp(s, "yes") || !strcmp(s, "true") || !strcmp(s, "1") ||
		  !strcmp(s, "on")))
		*out = true;
	else if (s && (!strcmp(s, "no") || !strcmp(s, "false") ||
		       !strcmp(s, "0") || !strcmp(s, "off")))
		*out = false;
	else
		return ctl_fail(err, n, "expected yes or no");
	return 0;
}

const struct ctl_pkey ctl_policy_keys[] = {
	CTL_PK("ceiling", CTL_P_MONEY, ceiling_fen,
	       "company-wide lending ceiling (amount)"),
	CTL_PK("cap-chunk", CTL_P_MONEY, cap_chunk_fen,
	       "ceiling refill chunk per core (amount); slack <= cores x 2 x chunk"),
	CTL_PK("tz", CTL_P_TZ, tz_offset_s,
	       "time zone of days and months (UTC offset, +08:00)"),
	CTL_PK("hold-ttl", CTL_P_DURATION, hold_ttl_s,
	       "how long an authorization holds credit (duration)"),
	CTL_PK("retain", CTL_P_DURATION, retain_s,
	       "request ids kept for idempotency (duration, >= hold-ttl)"),
	CTL_PK("refund-window", CTL_P_DURATION, refund_window_s,
	       "captured authorizations kept for refunds (duration)"),
	CTL_PK("cool-cash", CTL_P_DURATION, cool_cash_s,
	       "no cash loan this long after the last one (duration)"),
	CTL_PK("cool-raise", CTL_P_DURATION, cool_raise_s,
	       "no cash loan this long after a limit raise (duration)"),
	CTL_PK("own-share-min", CTL_P_PCT, own_share_min_pct,
	       "company's minimum share of a jointly funded loan (percent)"),
	CTL_PK("low-avail", CTL_P_PCT, low_avail_pct,
	       "LOW_AVAILABLE note below this share of the limit (percent)"),
	CTL_PK("inst-cash", CTL_P_PCT, inst_cash_pct,
	       "cash limit lowered by this share of installment debt (percent)"),
	CTL_PK("unknown-merchant-ok", CTL_P_BOOL, unknown_merchant_ok,
	       "accept merchants that are not in the table (yes/no)"),
	CTL_PK("risk-decline", CTL_P_SCORE, risk_decline,
	       "RISK_CASHOUT at or above this risk score (0..1000, 0 = off)"),
};

const struct ctl_pkey ctl_tier_keys[] = {
	CTL_TK("products", CTL_P_PRODUCTS, products,
	       "products the tier may use (pl,inst,cash or none)"),
	CTL_TK("max-terms", CTL_P_TERMS, max_terms,
	       "longest installment (0, 3, 6 or 12 terms)"),
	CTL_TK("vel-min-n", CTL_P_COUNT, vel_min_n,
	       "approvals per minute (0..255, 0 = no limit)"),
	CTL_TK("vel-day-n", CTL_P_COUNT, vel_day_n,
	       "approvals per day (0..255, 0 = no limit)"),
	CTL_TK("vel-min", CTL_P_MONEY, vel_min_fen,
	       "approved amount per minute (amount, 0 = no limit)"),
	CTL_TK("vel-day", CTL_P_MONEY, vel_day_fen,
	       "approved amount per day (amount, 0 = no limit)"),
	CTL_TK("cash-pct", CTL_P_PCT, cash_pct,
	       "cash sub-limit as a share of the limit (percent)"),
	CTL_TK("large-spend", CTL_P_MONEY, large_spend_fen,
	       "LARGE_SPEND note at or above this amount (0 = off)"),
};

const struct ctl_pkey *
ctl_policy_key(struct lim_policy *p, const char *key, void **base)
{
	if (!strncmp(key, "tier.", 5)) {
		const char *dot = strchr(key + 5, '.');
		char num[4];
		uint64_t t;

		if (!dot || dot - (key + 5) >= (ptrdiff_t)sizeof(num))
			return NULL;
		memcpy(num, key + 5, (size_t)(dot - (key + 5)));
		num[dot - (key + 5)] = '\0';
		if (lim_parse_u64(num, LIM_TIERS - 1, &t))
			return NULL;
		for (unsigned i = 0; i < CTL_TIER_KEYS; i++)
			if (!strcmp(dot + 1, ctl_tier_keys[i].name)) {
				*base = &p->tier[t];
				return &ctl_tier_keys[i];
			}
		return NULL;
	}
	for (unsigned i = 0; i < CTL_POLICY_KEYS; i++)
		if (!strcmp(key, ctl_policy_keys[i].name)) {
			*base = p;
			return &ctl_policy_keys[i];
		}
	return NULL;
}

int
ctl_pkey_parse(const struct ctl_pkey *k, void *f, const char *v, char *why,
	       size_t wn)
{
	uint64_t u;
	int64_t m;
	uint32_t d;
	int32_t tz;
	uint8_t b;
	bool yes;

	switch (k->kind) {
	case CTL_P_MONEY:
		if (lim_parse_amount(v, &m, why, wn))
			return -EINVAL;
		memcpy(f, &m, sizeof(m));
		return 0;
	case CTL_P_DURATION:
		if (ctl_parse_duration(v, &d, why, wn))
			return -EINVAL;
		memcpy(f, &d, sizeof(d));
		return 0;
	case CTL_P_TZ:
		if (ctl_parse_tz(v, &tz, why, wn))
			return -EINVAL;
		memcpy(f, &tz, sizeof(tz));
		return 0;
	case CTL_P_BOOL:
		if (ctl_parse_bool(v, &yes, why, wn))
			return -EINVAL;
		*(uint8_t *)f = yes;
		return 0;
	case CTL_P_PRODUCTS:
		if (ctl_parse_products(v, &b, why, wn))
			return -EINVAL;
		*(uint8_t *)f = b;
		return 0;
	case CTL_P_SCORE:
		if (lim_parse_u64(v, 1000, &u))
			return ctl_fail(why, wn, "expected a score in 0..1000");
		*(uint16_t *)f = (uint16_t)u;
		return 0;
	case CTL_P_PCT:
		if (lim_parse_u64(v, 100, &u))
			return ctl_fail(why, wn, "expected a percentage in 0..100");
		*(uint8_t *)f = (uint8_t)u;
		return 0;
	case CTL_P_TERMS:
		if (lim_parse_u64(v, 12, &u) || (u != 0 && u != 3 && u != 6 && u != 12))
			return ctl_fail(why, wn, "expected 0, 3, 6 or 12");
		*(uint8_t *)f = (uint8_t)u;
		return 0;
	case CTL_P_COUNT:
		if (lim_parse_u64(v, 255, &u))
			return ctl_fail(why, wn, "expected a count in 0..255");
		*(uint8_t *)f = (uint8_t)u;
		return 0;
	}
	return ctl_fail(why, wn, "unknown key kind");
}

int
ctl_policy_set_kv(struct lim_policy *p, const char *key, const char *value,
		  char *err, size_t n)
{
	void *base = NULL;
	const struct ctl_pkey *k = ctl_policy_key(p, key, &base);
	char why[160];

	if (!k) {
		snprintf(err, n, "unknown policy key '%s' (authctl help policy lists them)", key);
		return -EINVAL;
	}
	if (ctl_pkey_parse(k, (char *)base + k->off, value, why, sizeof(why))) {
		snprintf(err, n, "%s=%s: %s", key, value, why);
		return -EINVAL;
	}
	return 0;
}

int
ctl_policy_assign(struct lim_policy *p, const char *kv, char *err, size_t n)
{
	const char *eq = strchr(kv, '=');
	char key[64];

	if (!eq || eq == kv) {
		snprintf(err, n, "%s: expected KEY=VALUE", kv);
		return -EINVAL;
	}
	if ((size_t)(eq - kv) >= sizeof(key)) {
		snprintf(err, n, "unknown policy key '%.*s' (authctl help policy lists them)",
			 (int)(eq - kv), kv);
		return -EINVAL;
	}
	memcpy(key, kv, (size_t)(eq - kv));
	key[eq - kv] = '\0';
	return ctl_policy_set_kv(p, key, eq + 1, err, n);
}

const char *
ctl_pkey_fmt(const struct ctl_pkey *k, const void *base, char *buf, size_t n)
{
	const char *f = (const char *)base + k->off;
	int64_t m;
	uint32_t d;
	int32_t tz;
	uint16_t s;

	switch (k->kind) {
	case CTL_P_MONEY:
		memcpy(&m, f, sizeof(m));
		return lim_fmt_yuan(m, buf, n);
	case CTL_P_DURATION:
		memcpy(&d, f, sizeof(d));
		return ctl_fmt_duration(d, buf, n);
	case CTL_P_TZ:
		memcpy(&tz, f, sizeof(tz));
		return ctl_fmt_tz(tz, buf, n);
	case CTL_P_BOOL:
		snprintf(buf, n, "%s", *(const uint8_t *)f ? "yes" : "no");
		return buf;
	case CTL_P_PRODUCTS:
		return ctl_fmt_products(*(const uint8_t *)f, buf, n);
	case CTL_P_SCORE:
		memcpy(&s, f, sizeof(s));
		snprintf(buf, n, "%u", s);
		return buf;
	default:
		snprintf(buf, n, "%u", *(const uint8_t *)f);
		return buf;
	}
}

const struct ctl_opt ctl_arg_user = CTL_ID_USER;

const struct ctl_opt ctl_arg_merchant = CTL_ID_MERCHANT;

const struct ctl_opt ctl_arg_funder = CTL_ID_FUNDER;

const struct ctl_opt ctl_arg_gateway = CTL_ID_GATEWAY;

const struct ctl_opt ctl_arg_path = {"FILE", CTL_V_PATH, 0, 0, "FILE", "file"};

const struct ctl_opt ctl_arg_time = {"TIME", CTL_V_TIME, 0, 0, "TIME", "time"};

const struct ctl_opt ctl_arg_assign = {"KEY=VALUE", CTL_V_ASSIGN, 0, 0,
					      "KEY=VALUE", "policy setting"};

const struct ctl_opt ctl_user_opts[] = {
	{"limit", CTL_V_MONEY, 0, 0, "AMOUNT",
	 "credit limit; a raise also starts the cooling-off period for cash loans (policy cool-raise)"},
	{"temp-quota", CTL_V_MONEY, 0, 0, "AMOUNT",
	 "temporary quota added to the limit until --until (0 removes it)"},
	{"until", CTL_V_TIME, 0, 0, "TIME", "expiry of the temporary quota"},
	{"self-cap", CTL_V_MONEY_NONE, 0, 0, "AMOUNT|none",
	 "the user's own monthly spending cap (bill assistant)"},
	{"soft-cap", CTL_V_FLAG, 0, 0, NULL,
	 "over the self cap: approve and flag OVER_SELF_CAP_SOFT"},
	{"hard-cap", CTL_V_FLAG, 0, 0, NULL, "over the self cap: decline OVER_SELF_CAP"},
	{"tier", CTL_V_UINT, 0, LIM_TIERS - 1, "N", "risk tier 0..7 (policy tier.N.*)"},
	{"region", CTL_V_UINT, 0, UINT16_MAX, "N", "region code 0..65535"},
	{"cash-limit", CTL_V_MONEY_DEFAULT, 0, 0, "AMOUNT|default",
	 "cash-loan sub-limit; default: the tier's cash-pct of the limit"},
	{"alert", CTL_V_MONEY_DEFAULT, 0, 0, "AMOUNT|default",
	 "large-spend alert threshold; default: the tier's large-spend"},
	{"risk", CTL_V_UINT, 0, 1000, "N", "risk score 0..1000 (kept in steps of 4)"},
	{NULL, 0, 0, 0, NULL, NULL},
};

const struct ctl_opt ctl_merchant_opts[] = {
	{"mcc", CTL_V_UINT, 0, UINT16_MAX, "N", "merchant category code"},
	{"region", CTL_V_UINT, 0, UINT16_MAX, "N", "region code 0..65535"},
	{"subsidy", CTL_V_SUBSIDY, 0, 0, "3,6,12|none",
	 "installment terms whose interest the merchant pays (INTEREST_FREE)"},
	{"risk", CTL_V_UINT, 0, 1000, "N", "merchant risk score 0..1000"},
	{NULL, 0, 0, 0, NULL, NULL},
};

const struct ctl_opt ctl_funder_opts[] = {
	{"quota", CTL_V_MONEY, 0, 0, "AMOUNT", "origination quota of the funder's share"},
	{"share", CTL_V_UINT, 0, 100, "PCT", "the bank's share of each loan, percent"},
	{"region", CTL_V_UINT, 0, UINT16_MAX, "N", "0 = national; else only users of this region"},
	{"products", CTL_V_PRODUCTS, 0, 0, "pl,inst,cash", "products it funds (default all)"},
	{NULL, 0, 0, 0, NULL, NULL},
};

const struct ctl_opt ctl_no_opts[] = {{NULL, 0, 0, 0, NULL, NULL}};

const struct ctl_cmd ctl_cmds[] = {
	{"stats", "", 0, 0, 0, NULL, ctl_no_opts,
	 "counters: totals and per lcore, reasons, drops, latency, tables"},
	{"user show", "ID", 0, 1, 1, &ctl_arg_user, ctl_no_opts,
	 "a user's settings, balances, available credit, month spend, velocity"},
	{"user set", "ID [options]", CTL_CMD_CHANGES, 1, 1, &ctl_arg_user, ctl_user_opts,
	 "change a user's settings"},
	{"user add", "ID --limit AMOUNT [options]", CTL_CMD_CHANGES, 1, 1, &ctl_arg_user,
	 ctl_user_opts, "add a user"},
	{"user freeze", "ID", CTL_CMD_CHANGES, 1, 1, &ctl_arg_user, ctl_no_opts,
	 "decline the user's new authorizations (USER_FROZEN)"},
	{"user unfreeze", "ID", CTL_CMD_CHANGES, 1, 1, &ctl_arg_user, ctl_no_opts,
	 "lift a freeze"},
	{"merchant show", "ID", 0, 1, 1, &ctl_arg_merchant, ctl_no_opts, "a merchant"},
	{"merchant set", "ID [options]", CTL_CMD_CHANGES, 1, 1, &ctl_arg_merchant,
	 ctl_merchant_opts, "add or change a merchant"},
	{"merchant block", "ID", CTL_CMD_CHANGES, 1, 1, &ctl_arg_merchant, ctl_no_opts,
	 "decline payments to the merchant (MERCHANT_BLOCKED); adds it if unknown"},
	{"merchant unblock", "ID", CTL_CMD_CHANGES, 1, 1, &ctl_arg_merchant, ctl_no_opts,
	 "lift a block"},
	{"funder list", "", 0, 0, 0, NULL, ctl_no_opts,
	 "the funder table in priority order, with quotas"},
	{"funder set", "ID [--quota AMOUNT] [--share PCT] [options]", CTL_CMD_CHANGES, 1, 1,
	 &ctl_arg_funder, ctl_funder_opts, "add or change a funder"},
	{"funder del", "ID", CTL_CMD_CHANGES, 1, 1, &ctl_arg_funder, ctl_no_opts,
	 "remove a partner bank"},
	{"policy show", "", 0, 0, 0, NULL, ctl_no_opts, "every policy key and its value"},
	{"policy set", "KEY=VALUE ...", CTL_CMD_CHANGES, 1, CTL_ARGS_MAX, &ctl_arg_assign,
	 ctl_no_opts, "change policy keys, all or none"},
	{"keys show", "", 0, 0, 0, NULL, ctl_no_opts,
	 "gateways, their key ids and allowed sources (never key material)"},
	{"keys rotate", "GATEWAY", CTL_CMD_CHANGES, 1, 1, &ctl_arg_gateway, ctl_no_opts,
	 "new key for a gateway; the previous one stays valid"},
	{"snapshot save", "FILE", CTL_CMD_CHANGES, 1, 1, &ctl_arg_path, ctl_no_opts,
	 "write every table to FILE without stopping"},
	{"clock show", "", 0, 0, 0, NULL, ctl_no_opts, "the engine's clock"},
	{"clock set", "TIME", CTL_CMD_CHANGES, 1, 1, &ctl_arg_time, ctl_no_opts,
	 "move a fixed clock (--clock fixed:...)"},
	{"risk show", "", 0, 0, 0, NULL, ctl_no_opts,
	 "the risk worker: mode, thresholds, counters, tables"},
	{"risk set", "KEY=VALUE ...", CTL_CMD_CHANGES, 1, CTL_ARGS_MAX, &ctl_arg_assign,
	 ctl_no_opts, "change the risk mode or a threshold (docs/risk.md)"},
};

const struct ctl_cmd *
ctl_cmd_find(const char *name)
{
	for (unsigned i = 0; i < CTL_CMDS; i++)
		if (!strcmp(ctl_cmds[i].name, name))
			return &ctl_cmds[i];
	return NULL;
}

int
ctl_opt_index(const struct ctl_opt *opts, const char *name)
{
	for (int i = 0; opts[i].name; i++)
		if (!strcmp(opts[i].name, name))
			return i;
	return -1;
}

int
ctl_val_parse(const struct ctl_opt *o, bool is_arg, const char *v,
	      struct ctl_val *out, char *err, size_t n)
{
	char why[160] = "";
	int rc = 0;

	memset(out, 0, sizeof(*out));
	out->set = true;
	out->text = v;
	switch (o->kind) {
	case CTL_V_FLAG:
		return 0;
	case CTL_V_UINT:
		rc = lim_parse_u64(v, o->max, &out->u);
		if (rc == 0 && out->u < o->min)
			rc = -ERANGE;
		if (rc)
			snprintf(why, sizeof(why), "expected a whole number in %llu..%llu",
				 (unsigned long long)o->min, (unsigned long long)o->max);
		break;
	case CTL_V_MONEY_NONE:
	case CTL_V_MONEY_DEFAULT:
		if (!strcmp(v, o->kind == CTL_V_MONEY_NONE ? "none" : "default")) {
			out->special = true;
			return 0;
		}
		/* fall through */
	case CTL_V_MONEY:
		rc = lim_parse_amount(v, &out->fen, why, sizeof(why));
		break;
	case CTL_V_TIME: {
		uint32_t t = 0;

		rc = lim_parse_time(v, &t, why, sizeof(why));
		out->u = t;
		break;
	}
	case CTL_V_PRODUCTS:
		rc = ctl_parse_products(v, &out->bits, why, sizeof(why));
		break;
	case CTL_V_SUBSIDY:
		rc = ctl_parse_subsidy(v, &out->bits, why, sizeof(why));
		break;
	case CTL_V_PATH:
		if (v[0] != '/')
			rc = ctl_fail(why, sizeof(why), "must be an absolute path");
		else if (strlen(v) >= 4096)
			rc = ctl_fail(why, sizeof(why), "path too long");
		break;
	case CTL_V_ASSIGN:
		if (!strchr(v, '=') || v[0] == '=')
			rc = ctl_fail(why, sizeof(why), "expected KEY=VALUE");
		break;
	}
	if (rc) {
		snprintf(err, n, "%s%s %s: %s", is_arg ? "" : "--",
			 is_arg ? o->arg : o->name, v, why);
		return -EINVAL;
	}
	return 0;
}

const struct ctl_val *
ctl_opt(const struct ctl_req *r, const char *name)
{
	static const struct ctl_val unset;
	int i = ctl_opt_index(r->cmd->opts, name);

	return i < 0 ? &unset : &r->opt[i];
}

int
ctl_req_check(const struct ctl_req *r, char *err, size_t n)
{
	const char *name = r->cmd->name;
	bool user = !strcmp(name, "user set") || !strcmp(name, "user add");

	if (user && ctl_opt(r, "temp-quota")->set != ctl_opt(r, "until")->set) {
		snprintf(err, n, "%s: --temp-quota and --until go together", name);
		return -EINVAL;
	}
	if (user && ctl_opt(r, "soft-cap")->set && ctl_opt(r, "hard-cap")->set) {
		snprintf(err, n, "%s: --soft-cap and --hard-cap exclude each other", name);
		return -EINVAL;
	}
	if (!strcmp(name, "user add") && !ctl_opt(r, "limit")->set) {
		snprintf(err, n, "user add: --limit is required");
		return -EINVAL;
	}
	if (!strcmp(name, "policy set")) {
		struct lim_policy scratch;
		char why[256];

		/* Each key and value; the policy as a whole is the daemon's check. */
		memset(&scratch, 0, sizeof(scratch));
		for (unsigned i = 0; i < r->n_args; i++)
			if (ctl_policy_assign(&scratch, r->args[i], why, sizeof(why))) {
				snprintf(err, n, "policy set: %s", why);
				return -EINVAL;
			}
	}
	if (!strcmp(name, "user set")) {
		bool any = false;

		for (unsigned i = 0; i < CTL_OPTS_MAX && r->cmd->opts[i].name; i++)
			any |= r->opt[i].set;
		if (!any) {
			snprintf(err, n, "user set: nothing to change (see authctl help user)");
			return -EINVAL;
		}
	}
	return 0;
}

const char *
ctl_json_text(struct ctl_req *r, json_t *v)
{
	if (json_is_string(v))
		return json_string_value(v);
	if (json_is_integer(v) && json_integer_value(v) >= 0 &&
	    r->n_num < sizeof(r->num) / sizeof(r->num[0])) {
		char *b = r->num[r->n_num++];

		snprintf(b, sizeof(r->num[0]), "%lld", (long long)json_integer_value(v));
		return b;
	}
	return NULL;
}

const char *
ctl_cmd_topic(const struct ctl_cmd *cmd, char *buf, size_t n)
{
	snprintf(buf, n, "%.*s", (int)strcspn(cmd->name, " "), cmd->name);
	return buf;
}

int
ctl_decode_args(struct ctl_req *r, json_t *args, char *err, size_t n)
{
	const struct ctl_cmd *cmd = r->cmd;
	char why[320], tb[16];
	size_t i;
	json_t *v;

	if (args && !json_is_array(args)) {
		snprintf(err, n, "%s: \"args\" must be an array", cmd->name);
		return -EINVAL;
	}
	r->n_args = args ? (unsigned)json_array_size(args) : 0;
	if (r->n_args < cmd->args_min || r->n_args > cmd->args_max) {
		snprintf(err, n, "%s: expected %s%s%s (see authctl help %s)", cmd->name,
			 cmd->name, cmd->synopsis[0] ? " " : "", cmd->synopsis,
			 ctl_cmd_topic(cmd, tb, sizeof(tb)));
		return -EINVAL;
	}
	json_array_foreach(args, i, v) {
		const char *t = ctl_json_text(r, v);

		if (!t) {
			snprintf(err, n, "%s: argument %zu must be a string", cmd->name, i + 1);
			return -EINVAL;
		}
		r->args[i] = t;
		if (ctl_val_parse(cmd->arg, true, t, &r->arg[i], why, sizeof(why))) {
			snprintf(err, n, "%s: %s", cmd->name, why);
			return -EINVAL;
		}
	}
	return 0;
}

int
ctl_decode_opts(struct ctl_req *r, json_t *opts, char *err, size_t n)
{
	const struct ctl_cmd *cmd = r->cmd;
	const char *name;
	char why[320], tb[16];
	json_t *v;

	if (opts && !json_is_object(opts)) {
		snprintf(err, n, "%s: \"opts\" must be an object", cmd->name);
		return -EINVAL;
	}
	json_object_foreach(opts, name, v) {
		int i = ctl_opt_index(cmd->opts, name);
		const char *t;

		if (i < 0) {
			snprintf(err, n, "%s: unknown option --%s (see authctl help %s)",
				 cmd->name, name, ctl_cmd_topic(cmd, tb, sizeof(tb)));
			return -EINVAL;
		}
		if (cmd->opts[i].kind == CTL_V_FLAG) {
			if (!json_is_true(v)) {
				snprintf(err, n, "%s: --%s is a flag (true)", cmd->name, name);
				return -EINVAL;
			}
			r->opt[i].set = true;
			continue;
		}
		if (!(t = ctl_json_text(r, v))) {
			snprintf(err, n, "%s: --%s needs a value", cmd->name, name);
			return -EINVAL;
		}
		if (ctl_val_parse(&cmd->opts[i], false, t, &r->opt[i], why, sizeof(why))) {
			snprintf(err, n, "%s: %s", cmd->name, why);
			return -EINVAL;
		}
	}
	return ctl_req_check(r, err, n);
}

int
ctl_req_decode(json_t *req, struct ctl_req *r, char *err, size_t n)
{
	json_t *cmd = json_object_get(req, "cmd"), *v = json_object_get(req, "v");

	if (!json_is_object(req)) {
		snprintf(err, n, "request: expected a JSON object");
		return -EINVAL;
	}
	if (v && (!json_is_integer(v) || json_integer_value(v) != CTL_PROTO_VERSION)) {
		snprintf(err, n, "request: protocol version %d expected", CTL_PROTO_VERSION);
		return -EINVAL;
	}
	if (!json_is_string(cmd)) {
		snprintf(err, n, "request: \"cmd\" missing");
		return -EINVAL;
	}
	r->cmd = ctl_cmd_find(json_string_value(cmd));
	if (!r->cmd) {
		snprintf(err, n, "unknown command '%s' (authctl --help lists them)",
			 json_string_value(cmd));
		return -EINVAL;
	}
	if (ctl_decode_args(r, json_object_get(req, "args"), err, n))
		return -EINVAL;
	return ctl_decode_opts(r, json_object_get(req, "opts"), err, n);
}

_Static_assert(sizeof(ctl_policy_keys) / sizeof(ctl_policy_keys[0]) ==
		       CTL_POLICY_KEYS, "CTL_POLICY_KEYS counts the table");
_Static_assert(sizeof(ctl_tier_keys) / sizeof(ctl_tier_keys[0]) ==
		       CTL_TIER_KEYS, "CTL_TIER_KEYS counts the table");
_Static_assert(sizeof(ctl_cmds) / sizeof(ctl_cmds[0]) == CTL_CMDS,
	       "CTL_CMDS counts the table");
