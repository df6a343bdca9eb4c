/*
 * risk_config.c - the risk engine's settings and words: the one table of
 * keys (bounds, defaults, help) behind --risk-set, the [risk] section and
 * `authctl risk set`, the names of modes, verdicts, detectors and counters,
 * and the log line of a verdict with its evidence (docs/risk.md).
 *
 * Owns no state. A settings change is all or nothing
 * (dp_risk_config_set_kv works on a copy); table sizes are set at start
 * only. The engine (risk.c) only reads a struct dp_risk_config.
 *
 * Concurrency: pure functions over the caller's structs; any thread.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "risk.h"

/* ------------------------------------------------------------------------ */
/* Configuration                                                              */

struct risk_key {
	const char *name;
	size_t off;
	uint32_t lo, hi, def;
	const char *help;
	bool size;
};

static const struct risk_key risk_keys[] = {
#define RISK_KEY(f, key, lo, hi, def, help)                                    \
	{key, offsetof(struct dp_risk_config, f), lo, hi, def, help, false},
	DP_RISK_FOREACH_PARAM(RISK_KEY)
#undef RISK_KEY
#define RISK_KEY_SIZE(f, key, lo, hi, def, help)                               \
	{key, offsetof(struct dp_risk_config, f), lo, hi, def, help, true},
	DP_RISK_FOREACH_SIZE(RISK_KEY_SIZE)
#undef RISK_KEY_SIZE
};

#define RISK_NKEYS (sizeof(risk_keys) / sizeof(risk_keys[0]))

static const char *const risk_mode_names[] = {"off", "shadow", "on"};

static const char *const risk_verdict_names[DP_RISK_VERDICTS] = {
#define RISK_VNAME(name, text) text,
	DP_RISK_FOREACH_VERDICT(RISK_VNAME)
#undef RISK_VNAME
};

static const char *const risk_detector_names[DP_RISK_DETECTORS] = {
#define RISK_DNAME(name, text) text,
	DP_RISK_FOREACH_DETECTOR(RISK_DNAME)
#undef RISK_DNAME
};

static const char *const risk_counter_names[DP_RISK_COUNTERS] = {
#define RISK_CNAME(name, desc) #name,
	DP_RISK_FOREACH_COUNTER(RISK_CNAME)
#undef RISK_CNAME
};

const char *
dp_risk_mode_name(enum dp_risk_mode m)
{
	return (unsigned)m < 3 ? risk_mode_names[m] : "?";
}

const char *
dp_risk_verdict_name(enum dp_risk_verdict_kind k)
{
	return (unsigned)k < DP_RISK_VERDICTS ? risk_verdict_names[k] : "?";
}

const char *
dp_risk_detector_name(enum dp_risk_detector d)
{
	return (unsigned)d < DP_RISK_DETECTORS ? risk_detector_names[d] : "?";
}

const char *
dp_risk_counter_name(enum dp_risk_counter c)
{
	return (unsigned)c < DP_RISK_COUNTERS ? risk_counter_names[c] : "?";
}

static uint32_t *
key_field(struct dp_risk_config *c, const struct risk_key *k)
{
	return (uint32_t *)((char *)c + k->off);
}

static const struct risk_key *
key_find(const char *name)
{
	for (unsigned i = 0; i < RISK_NKEYS; i++)
		if (!strcmp(risk_keys[i].name, name))
			return &risk_keys[i];
	return NULL;
}

void
dp_risk_config_default(struct dp_risk_config *c)
{
	memset(c, 0, sizeof(*c));
	c->mode = DP_RISK_SHADOW;
	for (unsigned i = 0; i < RISK_NKEYS; i++)
		*key_field(c, &risk_keys[i]) = risk_keys[i].def;
}

int
dp_risk_config_set(struct dp_risk_config *c, const char *key,
		   const char *value, char *err, size_t errlen)
{
	const struct risk_key *k;
	uint64_t v;

	if (!strcmp(key, "mode")) {
		for (unsigned m = 0; m < 3; m++)
			if (!strcmp(value, risk_mode_names[m])) {
				c->mode = (enum dp_risk_mode)m;
				return 0;
			}
		snprintf(err, errlen, "mode=%s: expected on, shadow or off", value);
		return -EINVAL;
	}
	k = key_find(key);
	if (!k) {
		snprintf(err, errlen, "unknown risk key '%s' (docs/risk.md lists them)",
			 key);
		return -EINVAL;
	}
	if (lim_parse_u64(value, k->hi, &v) || v < k->lo) {
		snprintf(err, errlen, "%s=%s: expected a whole number in %u..%u",
			 key, value, k->lo, k->hi);
		return -EINVAL;
	}
	*key_field(c, k) = (uint32_t)v;
	return 0;
}

#define RISK_KEY_LEN 64

/* "KEY=VALUE" into @p c; @p key is RISK_KEY_LEN bytes. */
static int
set_item(struct dp_risk_config *c, const char *item, bool sizes_ok,
	 char *key, char *err, size_t errlen)
{
	const char *eq = strchr(item, '=');
	size_t len = eq ? (size_t)(eq - item) : 0;

	if (!eq || len == 0 || len >= RISK_KEY_LEN) {
		snprintf(err, errlen, "%s: expected KEY=VALUE", item);
		return -EINVAL;
	}
	memcpy(key, item, len);
	key[len] = 0;
	if (!sizes_ok && dp_risk_key_is_size(key)) {
		snprintf(err, errlen, "%s: a table size, set at start only "
			 "(authd --risk-set %s=N)", key, key);
		return -EINVAL;
	}
	return dp_risk_config_set(c, key, eq + 1, err, errlen);
}

int
dp_risk_config_set_kv(struct dp_risk_config *c, const char *const *kv,
		      unsigned n, bool sizes_ok, char *err, size_t errlen)
{
	struct dp_risk_config copy = *c;
	char key[RISK_KEY_LEN];

	if (n > DP_RISK_KV_MAX) {
		snprintf(err, errlen, "at most %d settings at once", DP_RISK_KV_MAX);
		return -EINVAL;
	}
	for (unsigned i = 0; i < n; i++)
		if (set_item(&copy, kv[i], sizes_ok, key, err, errlen))
			return -EINVAL;
	*c = copy;
	return 0;
}

int
dp_risk_config_get(const struct dp_risk_config *c, const char *key,
		   uint32_t *out)
{
	const struct risk_key *k;

	if (!strcmp(key, "mode")) {
		*out = (uint32_t)c->mode;
		return 0;
	}
	k = key_find(key);
	if (!k)
		return -ENOENT;
	*out = *(const uint32_t *)((const char *)c + k->off);
	return 0;
}

bool
dp_risk_key_is_size(const char *key)
{
	const struct risk_key *k = key_find(key);

	return k && k->size;
}

unsigned
dp_risk_keys(void)
{
	return RISK_NKEYS;
}

const char *
dp_risk_key_name(unsigned i)
{
	return i < RISK_NKEYS ? risk_keys[i].name : NULL;
}

const char *
dp_risk_key_help(unsigned i)
{
	return i < RISK_NKEYS ? risk_keys[i].help : NULL;
}

/* ------------------------------------------------------------------------ */
/* Log lines                                                                  */

static int
evidence_format(const struct dp_risk_verdict *v, char *buf, size_t len)
{
	const struct dp_risk_evidence *ev = &v->ev;
	char a[32], b[32], c[32];

	switch (v->detector) {
	case DP_RISK_D_ANOMALY:
		return snprintf(buf, len,
				"points %u (burst %s: %u/min %u/h paid, %u tried; "
				"round %s: %u; near-limit round %s: %u; raise %s: "
				"%s -> %s, %u payments, %s spent)",
				ev->points, ev->burst ? "yes" : "no", ev->n_min,
				ev->ok_hour, ev->n_hour, ev->round ? "yes" : "no",
				ev->round_hour, ev->near ? "yes" : "no", ev->sus_hour,
				ev->raise ? "yes" : "no",
				lim_fmt_yuan(ev->raise_from_fen, a, sizeof(a)),
				lim_fmt_yuan(ev->raise_to_fen, b, sizeof(b)),
				ev->post_raise_n,
				lim_fmt_yuan(ev->post_raise_fen, c, sizeof(c)));
	case DP_RISK_D_CROWD:
		return snprintf(buf, len,
				"device %#" PRIx64 ": %u users in the hour, %u with "
				"near-limit round payments",
				ev->device_id, ev->device_users, ev->crowd);
	default:
		return snprintf(buf, len,
				"%u unrelated users with near-limit round payments; "
				"%u of %u approved payments in the hour",
				ev->unrelated, ev->m_sus, ev->m_n);
	}
}

void
dp_risk_verdict_format(const struct dp_risk_verdict *v, int outcome,
		       char *buf, size_t len)
{
	static const char *const outcomes[] = {
		"applied", "nothing to change", "FAILED to apply",
		"not applied (shadow)"};
	char ev[320], what[64] = "";
	bool merchant = dp_risk_verdict_on_merchant(v->kind);

	evidence_format(v, ev, sizeof(ev));
	if (v->score)
		snprintf(what, sizeof(what), ", score >= %u", v->score);
	if (v->kind == DP_RISK_V_LOWER_LIMIT)
		snprintf(what, sizeof(what), ", limit cut by %u%%", v->lower_pct);
	snprintf(buf, len, "%sverdict %s %s %" PRIu64 " by %s%s: %s -> %s",
		 outcome == DP_RISK_OUT_SHADOW ? "shadow " : "",
		 dp_risk_verdict_name(v->kind), merchant ? "merchant" : "user",
		 v->id, dp_risk_detector_name(v->detector), what, ev,
		 (unsigned)outcome < 4 ? outcomes[outcome] : "?");
}
