/*
 * ctl.h - the control room: the unix socket authctl talks to, its thread,
 * and the command handlers (user, merchant, funder, policy, keys, snapshot,
 * clock, risk, stats). The protocol itself is ctl_proto.h, shared with
 * authctl and the policy file loader.
 *
 * The room is given what it acts on at start (struct dp_ctl_env): the
 * database, the ledger it journals every change through, the risk worker,
 * the keyring; and, as callbacks, the two things that belong to the daemon
 * above it: its clock and its counters.
 */
#ifndef DP_CTL_H
#define DP_CTL_H

#include <stdbool.h>
#include <stdint.h>

struct auth_keyring;
struct dp_ledger;
struct dp_risk;
struct json_t;
struct lim_db;
struct dp_ctl;

/* The daemon's parts the handlers use; @p arg is dp_ctl_env.arg. */
struct dp_ctl_ops {
	uint32_t (*now_s)(void *arg);             /* the engine's clock */
	bool (*clock_fixed)(void *arg);           /* --clock fixed:... */
	int (*clock_set)(void *arg, uint32_t unix_s); /* -EINVAL: a real clock */
	struct json_t *(*stats)(void *arg);       /* authctl stats: a new object */
};

/* What the control thread acts on; the pointers outlive it. */
struct dp_ctl_env {
	const char *path;              /* --ctl; NULL or "": authd.sock in the
				        * EAL runtime directory */
	struct lim_db *db;
	struct dp_ledger *ledger;      /* every change is journaled through it */
	struct dp_risk *risk;          /* NULL: --risk off */
	struct auth_keyring **keyring; /* the RCU pointer the lcores read */
	const char *keys_path;         /* --keys: `keys rotate` rewrites it */
	const struct dp_ctl_ops *ops;
	void *arg;
};

/**
 * Open the control socket (mode 0600) and start its thread. NULL, with a
 * log line saying why, when the path exists and is not a stale socket,
 * another authd listens there, or a system call fails.
 */
struct dp_ctl *dp_ctl_start(const struct dp_ctl_env *env);
/** Stop the control thread (a request in progress completes), unlink the socket. */
void dp_ctl_stop(struct dp_ctl *c);

#endif /* DP_CTL_H */
