/*
 * ctl_pvt.h - what the control thread's files share (server.c, cmd_*.c):
 * the server, one request being handled, and the helpers every handler
 * uses. Private to dataplane/ctl/.
 */
#ifndef DP_CTL_PVT_H
#define DP_CTL_PVT_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/un.h>

#include <jansson.h>

#include "auth.h"
#include "ctl.h"
#include "ctl_proto.h"
#include "ledger.h"
#include "lim.h"
#include "risk.h"

#define CTL_RETRIES 8   /* -EAGAIN from a contended budget: try again */
#define CTL_DURABLE_TIMEOUT_MS 5000 /* a change's journal records */

struct dp_ctl {
	struct dp_ctl_env env;    /* a copy; its pointers outlive us */
	pthread_t tid;
	int lfd;                  /* listening socket */
	int efd;                  /* eventfd: stop */
	char path[sizeof(((struct sockaddr_un *)0)->sun_path)];
};

/* One request being handled. */
struct ctl_call {
	struct dp_ctl *c;
	const struct dp_ctl_env *env;
	struct lim_db *db;
	struct ctl_req r;
	uint32_t uid;             /* the peer's, journaled with every change */
	uint64_t wait_seq;        /* largest seq journaled: wait until durable */
	int journal_rc;           /* first dp_ledger_submit() error */
};

/* Answers (server.c) */
__attribute__((format(printf, 1, 2))) json_t *ctl_error(const char *fmt, ...);
json_t *ctl_json_fen_or_null(bool present, int64_t fen);
/**
 * A user id in an answer: a decimal string ("18446744073709551615"). User
 * ids are unsigned 64-bit; jansson's integers are signed 64-bit and JSON
 * numbers past 2^53 are not portable, so ids never travel as numbers.
 */
json_t *ctl_json_id(uint64_t id);
/** The engine's "now" (its clock: real or fixed). */
uint32_t ctl_now_s(const struct ctl_call *k);
/** Positional argument @p i, validated as an unsigned number. */
uint64_t ctl_arg_u(const struct ctl_call *k, unsigned i);
/**
 * Hand a settings record to the ledger. Its seq is taken: it MUST be
 * submitted even when something failed after the change. The answer waits
 * (offline, serve_one()) until the largest seq is durable.
 */
void ctl_journal(struct ctl_call *k, const struct lim_cfg_effect *e);

/* Handlers: call online (QSBR); each returns a new answer, never NULL. */
#define CTL_FOREACH_HANDLER(_)                                                 \
	_(stats) _(user_show) _(user_set) _(user_add) _(user_freeze)           \
	_(user_unfreeze) _(merchant_show) _(merchant_set) _(merchant_block)    \
	_(merchant_unblock) _(funder_list) _(funder_set) _(funder_del)         \
	_(policy_show) _(policy_set) _(keys_show) _(keys_rotate)               \
	_(snapshot_save) _(clock_show) _(clock_set) _(risk_show) _(risk_set)

#define CTL_HANDLER_DECL(name) json_t *ctl_cmd_##name(struct ctl_call *k);
CTL_FOREACH_HANDLER(CTL_HANDLER_DECL)
#undef CTL_HANDLER_DECL

#endif /* DP_CTL_PVT_H */
