/*
 * fuzz_ctl.c - libFuzzer harness for the control protocol's request parser
 * (dataplane/ctl_proto.h): what authd does with one request line from its
 * control socket before any handler runs.
 *
 * Input: one request line, as a client would send it. It is parsed as ctl.c
 * parses it (json_loadb, duplicates rejected) and decoded with
 * ctl_req_decode(), the daemon's whole validation: version, command,
 * argument count, every argument and option value, the checks across
 * options. Then, for an accepted request, what the handlers do first with
 * text only: `policy set` assignments onto the default policy and
 * lim_policy_check(); `risk set` items onto the default risk settings
 * (dp_risk_config_set_kv, all or nothing).
 *
 * Oracles (abort = a finding):
 * - a refusal always has a message; an acceptance has a known command, an
 *   argument count within the command's bounds and every value parsed;
 * - values print and parse back to themselves: money (lim_fmt_yuan), a
 *   time (lim_fmt_time), and every policy key after a `policy set`
 *   (ctl_pkey_fmt, as `policy show --ini` writes what --policy FILE and
 *   `policy set` read back);
 * - a refused `risk set` changes nothing.
 *
 * Seeds (corpus/ctl): requests of every command, as authctl sends them,
 * plus the invalid ones tests/integration/test_authctl.sh checks.
 */
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "ctl_proto.h"
#include "risk.h"

#define FUZZ_CHECK(cond)                                                       \
	do {                                                                   \
		if (!(cond)) {                                                 \
			fprintf(stderr, "%s:%d: check failed: %s\n", __FILE__, \
				__LINE__, #cond);                              \
			abort();                                               \
		}                                                              \
	} while (0)

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void
check_money(int64_t fen)
{
	char buf[64], why[160];
	int64_t back = -1;

	FUZZ_CHECK(fen >= 0 && fen <= LIM_MONEY_MAX);
	lim_fmt_yuan(fen, buf, sizeof(buf));
	FUZZ_CHECK(lim_parse_amount(buf, &back, why, sizeof(why)) == 0 && back == fen);
}

static void
check_time(uint64_t t)
{
	char buf[64], why[160];
	uint32_t back = 0;

	FUZZ_CHECK(t <= UINT32_MAX);
	lim_fmt_time((uint32_t)t, buf, sizeof(buf));
	FUZZ_CHECK(lim_parse_time(buf, &back, why, sizeof(why)) == 0 && back == t);
}

/* Every value the decoder accepted is in range and prints back to itself. */
static void
check_val(const struct ctl_opt *o, const struct ctl_val *v)
{
	if (!v->set || v->special)
		return;
	switch (o->kind) {
	case CTL_V_UINT:
		FUZZ_CHECK(v->u >= o->min && v->u <= o->max);
		break;
	case CTL_V_MONEY:
	case CTL_V_MONEY_NONE:
	case CTL_V_MONEY_DEFAULT:
		check_money(v->fen);
		break;
	case CTL_V_TIME:
		check_time(v->u);
		break;
	case CTL_V_PATH:
		FUZZ_CHECK(v->text && v->text[0] == '/');
		break;
	case CTL_V_ASSIGN:
		FUZZ_CHECK(strchr(v->text, '=') && v->text[0] != '=');
		break;
	default:
		break;
	}
}

/* The size of a policy key's field. */
static size_t
pkey_size(enum ctl_pkind k)
{
	switch (k) {
	case CTL_P_MONEY:
		return sizeof(int64_t);
	case CTL_P_DURATION:
	case CTL_P_TZ:
		return sizeof(uint32_t);
	case CTL_P_SCORE:
		return sizeof(uint16_t);
	default:
		return sizeof(uint8_t);
	}
}

/* Every key of @p keys at @p base prints and parses back, byte for byte. */
static void
roundtrip_keys(const struct ctl_pkey *keys, unsigned n, void *base)
{
	for (unsigned i = 0; i < n; i++) {
		char buf[96], why[160];
		uint8_t before[8], *f = (uint8_t *)base + keys[i].off;
		size_t sz = pkey_size(keys[i].kind);

		memcpy(before, f, sz);
		ctl_pkey_fmt(&keys[i], base, buf, sizeof(buf));
		FUZZ_CHECK(ctl_pkey_parse(&keys[i], f, buf, why, sizeof(why)) == 0);
		FUZZ_CHECK(memcmp(before, f, sz) == 0);
	}
}

static void
policy_set(const struct ctl_req *r)
{
	struct lim_policy p;
	char err[320];

	lim_policy_default(&p);
	for (unsigned i = 0; i < r->n_args; i++)
		/* ctl_req_check() accepted each of them */
		FUZZ_CHECK(ctl_policy_assign(&p, r->args[i], err, sizeof(err)) == 0);
	(void)lim_policy_check(&p, err, sizeof(err));
	roundtrip_keys(ctl_policy_keys, CTL_POLICY_KEYS, &p);
	for (unsigned t = 0; t < LIM_TIERS; t++)
		roundtrip_keys(ctl_tier_keys, CTL_TIER_KEYS, &p.tier[t]);
}

static void
risk_set(const struct ctl_req *r)
{
	struct dp_risk_config c, before;
	char err[320] = "";

	dp_risk_config_default(&c);
	memcpy(&before, &c, sizeof(c));
	if (r->n_args > DP_RISK_KV_MAX)
		return;
	if (dp_risk_config_set_kv(&c, r->args, r->n_args, false, err,
				  sizeof(err))) {
		/* a refusal says why and changes nothing */
		FUZZ_CHECK(err[0] && memcmp(&c, &before, sizeof(c)) == 0);
	}
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct ctl_req *r;
	json_error_t jerr;
	char err[512] = "";
	json_t *req;

	if (size > CTL_REQUEST_MAX)
		return 0;
	req = json_loadb((const char *)data, size, JSON_REJECT_DUPLICATES, &jerr);
	if (!req)
		return 0;
	r = calloc(1, sizeof(*r));
	if (!r) {
		json_decref(req);
		return 0;
	}
	if (ctl_req_decode(req, r, err, sizeof(err))) {
		FUZZ_CHECK(err[0] && memchr(err, '\0', sizeof(err)));
	} else {
		const struct ctl_cmd *cmd = r->cmd;

		FUZZ_CHECK(cmd && ctl_cmd_find(cmd->name) == cmd);
		FUZZ_CHECK(r->n_args >= cmd->args_min && r->n_args <= cmd->args_max);
		for (unsigned i = 0; i < r->n_args; i++) {
			FUZZ_CHECK(r->args[i] && r->arg[i].set);
			check_val(cmd->arg, &r->arg[i]);
		}
		for (unsigned i = 0; i < CTL_OPTS_MAX && cmd->opts[i].name; i++)
			check_val(&cmd->opts[i], &r->opt[i]);
		if (!strcmp(cmd->name, "policy set"))
			policy_set(r);
		else if (!strcmp(cmd->name, "risk set"))
			risk_set(r);
	}
	free(r);
	json_decref(req);
	return 0;
}
