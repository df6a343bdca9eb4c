/*
 * ctl_proto.h - the control protocol between authctl and authd, shared by
 * both sides (dataplane/authctl.c, dataplane/ctl.c) and by the policy file
 * loader (dataplane/policy_file.c).
 *
 * Design note. The command table and every value parser live here, once, so
 * that authctl can fail fast with exactly the message the daemon would give,
 * and the daemon, which is the authority, validates every request again with
 * the same code. Values travel as the text the operator typed ("5000.50",
 * "2026-11-25T08:00:00Z", "7d"); only the daemon turns them into state.
 *
 * Wire format: a unix stream socket, one connection per request. The client
 * sends one JSON object on one line, the daemon answers one JSON object on
 * one line and closes:
 *
 *   {"v":1,"cmd":"user set","args":["42"],"opts":{"limit":"5000","soft-cap":true}}
 *   {"ok":true,...}            or    {"ok":false,"error":"precise message"}
 *
 * "args" are the positional arguments (strings), "opts" the options without
 * their dashes: a string value, or true for a flag. Numbers may also be sent
 * as JSON integers. User ids in answers are decimal strings ("id":"42"):
 * they are unsigned 64-bit, and JSON numbers past 2^53 (jansson's past
 * 2^63) are not portable. Money in answers is integer fen in fields ending
 * in _fen; times are unix seconds in fields ending in _s.
 *
 * Everything in proto.c is pure: no allocation, no I/O, no DPDK (authctl
 * links it with jansson and the limits library's text helpers).
 * ctl_req_decode() reads a parsed jansson request (jansson allocates while
 * parsing; the decoder itself does not), so the daemon's whole validation
 * is one function that tests/fuzz/fuzz_ctl.c can call.
 */
#ifndef CTL_PROTO_H
#define CTL_PROTO_H

#include <errno.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <jansson.h>

#include "lim.h"

#define CTL_PROTO_VERSION 1
#define CTL_REQUEST_MAX 65536       /* bytes of one request line */
#define CTL_IO_TIMEOUT_MS 2000      /* a client must send or read within this */
#define CTL_ARGS_MAX 64             /* positional arguments (policy set) */
#define CTL_OPTS_MAX 16             /* options of one command */
#define CTL_SOCK_NAME "authd.sock"  /* in the EAL runtime directory */
#define CTL_RUNTIME_DIR "/var/run/dpdk" /* EAL's, for root; see authctl -f */

/* ------------------------------------------------------------------------ */
/* Value parsers. Each returns 0 or -EINVAL with "why" in err (the caller     */
/* prefixes the option and the value).                                        */

int ctl_fail(char *err, size_t n, const char *why);

/*
 * Numbers, amounts and times are lim.h's (lim_parse_u64, lim_parse_amount,
 * lim_fmt_yuan, lim_parse_time, lim_fmt_time): one syntax for every input.
 */

/** A duration: "7d", "12h", "30m", "45s", "1d12h", or plain seconds. */
int ctl_parse_duration(const char *s, uint32_t *out, char *err, size_t n);

/** "7d", "1d12h", "90s", "0s": the largest units that divide exactly. */
const char *ctl_fmt_duration(uint32_t s, char *buf, size_t n);

/** A UTC offset: "+08:00", "-05:30", "+0800", "+8", "Z", "UTC"; within +-14:00. */
int ctl_parse_tz(const char *s, int32_t *out, char *err, size_t n);

const char *ctl_fmt_tz(int32_t off, char *buf, size_t n);

/* Comma-separated words of @p names (bit i for names[i]) or "none". */
int ctl_parse_set(const char *s, const char *const *names, const uint8_t *bits,
		  unsigned count, uint8_t *out);

void ctl_fmt_set(uint8_t v, const char *const *names, const uint8_t *bits,
		 unsigned count, char *buf, size_t n);

extern const char *const ctl_product_names[];
extern const uint8_t ctl_product_bits[];
extern const char *const ctl_subsidy_names[];
extern const uint8_t ctl_subsidy_bits[];

/** Products "pl,inst,cash" (pay later, installment, cash loan) or "none". */
int ctl_parse_products(const char *s, uint8_t *out, char *err, size_t n);

const char *ctl_fmt_products(uint8_t v, char *buf, size_t n);

/** Subsidised installment terms "3,6,12" or "none". */
int ctl_parse_subsidy(const char *s, uint8_t *out, char *err, size_t n);

const char *ctl_fmt_subsidy(uint8_t v, char *buf, size_t n);

int ctl_parse_bool(const char *s, bool *out, char *err, size_t n);

/* ------------------------------------------------------------------------ */
/* Policy keys: one table for `policy show`, `policy set` and --policy FILE   */

enum ctl_pkind {
	CTL_P_MONEY,     /* int64_t fen */
	CTL_P_DURATION,  /* uint32_t seconds */
	CTL_P_TZ,        /* int32_t seconds east of UTC */
	CTL_P_PCT,       /* uint8_t 0..100 */
	CTL_P_BOOL,      /* uint8_t 0/1 */
	CTL_P_SCORE,     /* uint16_t 0..1000 */
	CTL_P_PRODUCTS,  /* uint8_t product bits */
	CTL_P_TERMS,     /* uint8_t 0, 3, 6, 12 */
	CTL_P_COUNT,     /* uint8_t 0..255 */
};

struct ctl_pkey {
	const char *name;
	enum ctl_pkind kind;
	size_t off;       /* in struct lim_policy, or in struct lim_tier */
	const char *help;
};

#define CTL_PK(name, kind, field, help)                                        \
	{name, kind, offsetof(struct lim_policy, field), help}
#define CTL_TK(name, kind, field, help)                                        \
	{name, kind, offsetof(struct lim_tier, field), help}

extern const struct ctl_pkey ctl_policy_keys[];

extern const struct ctl_pkey ctl_tier_keys[];

#define CTL_POLICY_KEYS 13u
#define CTL_TIER_KEYS 8u

/* Find "key" or "tier.N.key": the entry and the base it applies to. */
const struct ctl_pkey *ctl_policy_key(struct lim_policy *p, const char *key, void **base);

/* Parse @p v for key kind @p k into the field at @p f. */
int ctl_pkey_parse(const struct ctl_pkey *k, void *f, const char *v, char *why,
		   size_t wn);

/**
 * Set policy key @p key (as in `policy set` and the policy file) from text.
 * 0, or -EINVAL with "key=value: why" in @p err. Only the field changes;
 * the caller checks the whole policy (lim_policy_check()).
 */
int ctl_policy_set_kv(struct lim_policy *p, const char *key, const char *value,
		      char *err, size_t n);

/** "key=value" (as in `policy set`) onto @p p; see ctl_policy_set_kv(). */
int ctl_policy_assign(struct lim_policy *p, const char *kv, char *err, size_t n);

/** The value of key @p k at @p base, as `policy set` accepts it. */
const char *ctl_pkey_fmt(const struct ctl_pkey *k, const void *base, char *buf, size_t n);

/* ------------------------------------------------------------------------ */
/* Commands                                                                   */

enum ctl_vkind {
	CTL_V_FLAG,          /* no value */
	CTL_V_UINT,          /* decimal in [min, max] */
	CTL_V_MONEY,         /* lim_parse_amount */
	CTL_V_MONEY_NONE,    /* amount or "none" */
	CTL_V_MONEY_DEFAULT, /* amount or "default" */
	CTL_V_TIME,          /* lim_parse_time */
	CTL_V_PRODUCTS,
	CTL_V_SUBSIDY,
	CTL_V_PATH,          /* absolute path (authctl makes it absolute) */
	CTL_V_ASSIGN,        /* policy key=value */
};

struct ctl_opt {
	const char *name;        /* without dashes */
	enum ctl_vkind kind;
	uint64_t min, max;       /* CTL_V_UINT */
	const char *arg;         /* placeholder for help */
	const char *help;
};

/* A parsed value. */
struct ctl_val {
	bool set;
	bool special;            /* "none" / "default" */
	uint64_t u;              /* CTL_V_UINT, CTL_V_TIME */
	int64_t fen;             /* money kinds */
	uint8_t bits;            /* products, subsidy */
	const char *text;        /* the text as given */
};

#define CTL_CMD_CHANGES 0x01 /* changes state: logged with the peer's uid */

struct ctl_cmd {
	const char *name;        /* "user set" */
	const char *synopsis;    /* after the name */
	unsigned flags;
	unsigned args_min, args_max;
	const struct ctl_opt *arg;   /* kind of every positional argument */
	const struct ctl_opt *opts;  /* NULL-terminated by name */
	const char *summary;
};

#define CTL_ID_USER {"ID", CTL_V_UINT, 1, UINT64_MAX, "ID", "user id"}
#define CTL_ID_MERCHANT {"ID", CTL_V_UINT, 1, UINT32_MAX, "ID", "merchant id"}
#define CTL_ID_FUNDER {"ID", CTL_V_UINT, 0, UINT16_MAX, "ID", "funder id"}
#define CTL_ID_GATEWAY {"GATEWAY", CTL_V_UINT, 0, UINT32_MAX, "GATEWAY", "gateway id"}

extern const struct ctl_opt ctl_arg_user;
extern const struct ctl_opt ctl_arg_merchant;
extern const struct ctl_opt ctl_arg_funder;
extern const struct ctl_opt ctl_arg_gateway;
extern const struct ctl_opt ctl_arg_path;
extern const struct ctl_opt ctl_arg_time;
extern const struct ctl_opt ctl_arg_assign;

extern const struct ctl_opt ctl_user_opts[];

extern const struct ctl_opt ctl_merchant_opts[];

extern const struct ctl_opt ctl_funder_opts[];

extern const struct ctl_opt ctl_no_opts[];

extern const struct ctl_cmd ctl_cmds[];

#define CTL_CMDS 22u

const struct ctl_cmd *ctl_cmd_find(const char *name);

/** Index of option @p name in @p opts, or -1. */
int ctl_opt_index(const struct ctl_opt *opts, const char *name);

/**
 * Parse the text @p v of option (or argument) @p o into @p out.
 * 0, or -EINVAL with "--name value: why" (or "NAME value: why") in @p err.
 */
int ctl_val_parse(const struct ctl_opt *o, bool is_arg, const char *v,
		  struct ctl_val *out, char *err, size_t n);

/* A request parsed against the command table. */
struct ctl_req {
	const struct ctl_cmd *cmd;
	unsigned n_args;
	const char *args[CTL_ARGS_MAX];
	struct ctl_val arg[CTL_ARGS_MAX];
	struct ctl_val opt[CTL_OPTS_MAX];   /* by index in cmd->opts */
	/* JSON integers given as arguments or values, as text (ctl_req_decode) */
	char num[CTL_ARGS_MAX + CTL_OPTS_MAX][24];
	unsigned n_num;
};

/** The parsed option @p name of @p r (never NULL for a known name). */
const struct ctl_val *ctl_opt(const struct ctl_req *r, const char *name);

/**
 * Checks across options, after every value parsed. Both sides run them.
 * 0 or -EINVAL with a message.
 */
int ctl_req_check(const struct ctl_req *r, char *err, size_t n);

/* ------------------------------------------------------------------------ */
/* Request decoding (the daemon's side): JSON -> a validated struct ctl_req   */

/* A string, or a non-negative integer as text (kept in r->num); else NULL. */
const char *ctl_json_text(struct ctl_req *r, json_t *v);

/* "user" of "user set": the word `authctl help` takes. */
const char *ctl_cmd_topic(const struct ctl_cmd *cmd, char *buf, size_t n);

int ctl_decode_args(struct ctl_req *r, json_t *args, char *err, size_t n);

int ctl_decode_opts(struct ctl_req *r, json_t *opts, char *err, size_t n);

/**
 * Decode and validate a request object @p req (protocol version, command,
 * every argument and option, the checks across options) into @p r, which
 * the caller zeroes first. Strings in @p r point into @p req: keep it until
 * @p r is no longer used. No allocation, no I/O.
 * @return 0 with r->cmd set, or -EINVAL with the answer's message in @p err
 *         (r->cmd is set when the command was known).
 */
int ctl_req_decode(json_t *req, struct ctl_req *r, char *err, size_t n);

#endif /* CTL_PROTO_H */
