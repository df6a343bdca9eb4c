/*
 * risk.h - the risk module: cash-out detection on the stream of decisions
 * (docs/risk.md has the design, the thresholds and the reasoning).
 *
 * Two layers:
 *  - the engine (risk.c): sliding-window features per user, merchant and
 *    device in fixed-size tables, the three detectors of the domain brief
 *    (fraud crowd, time-series anomaly, fraudulent merchant) and the
 *    actuator that turns a verdict into a change of the credit state
 *    (dp_risk_apply()). Plain C on arrays of struct dp_decision: no DPDK,
 *    no threads, no clock (time is the decisions' now_s), so unit tests
 *    drive it directly (tests/unit/test_risk.c);
 *  - the worker (risk_worker.c, declared in dp.h): one control thread that
 *    drains every lcore's decisions ring into the engine and gives it a
 *    sink (RCU, the merchant-update mutex, the journal, the log).
 *
 * Concurrency: an engine belongs to one thread. dp_risk_apply() follows the
 * contracts of lim.h: a user changes under its lock, a merchant is copied,
 * changed and published by a registered, online QSBR thread that
 * serialises merchant updates with every other updater (the sink's
 * merchants_lock).
 */
#ifndef DP_RISK_H
#define DP_RISK_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "lim.h"

/*
 * What the risk workers learn from one decided record (authorize, capture,
 * void, refund, repay; approved or not). 64 bytes, one per record, over an
 * SP/SC ring per lcore; a full ring drops the record and counts it (risk is
 * advisory, unlike the ledger). Filled by node.c.
 */
struct dp_decision {
	uint64_t user_id;
	uint64_t device_id;
	int64_t amount_fen;        /* asked */
	int64_t available_fen;     /* after the decision (before it when declined) */
	int64_t limit_fen;         /* the user's limit (settings); 0: unknown user */
	uint32_t merchant_id;
	uint32_t now_s;
	uint16_t region;
	uint16_t mcc;
	uint8_t op, product, terms, channel;
	uint8_t status, reason, notes, pad;
	uint32_t pad2;
};

_Static_assert(sizeof(struct dp_decision) == 64, "a risk record is a cache line");

/* ------------------------------------------------------------------------ */
/* Configuration                                                              */

enum dp_risk_mode {
	DP_RISK_OFF = 0,     /* no worker; lcores do not produce decisions */
	DP_RISK_SHADOW,      /* verdicts are logged and counted, never applied */
	DP_RISK_ON,          /* verdicts change users and merchants */
};

/*
 * Thresholds, settable at run time: field, key, min, max, default, help.
 * "Suspicious" below means an approved payment that is near-limit AND
 * round (see near-pct, max-pct, round-fen).
 */
#define DP_RISK_FOREACH_PARAM(_)                                               \
	_(near_pct, "near-pct", 50, 100, 90,                                   \
	  "near-limit: the amount fits the credit available before it and "   \
	  "is at least this % of it ...")                                      \
	_(max_pct, "max-pct", 0, 100, 50,                                      \
	  "... and at least this % of the credit limit (maxing out a line, "  \
	  "not spending its last crumbs)")                                     \
	_(round_fen, "round-fen", 1, 100000000, 10000,                         \
	  "round amount: a multiple of this many fen (10000 = 100 yuan)")     \
	_(burst_min, "burst-min", 2, 60000, 5,                                 \
	  "burst evidence: a user's approved payments within a minute")       \
	_(burst_hour, "burst-hour", 2, 60000, 30,                              \
	  "... or within an hour")                                             \
	_(round_n, "round-n", 1, 60000, 3,                                     \
	  "round evidence: a user's approved round payments within an hour")  \
	_(round_pct, "round-pct", 1, 100, 80,                                  \
	  "... making at least this % of its approved payments")              \
	_(near_n, "near-n", 1, 60000, 2,                                       \
	  "near-limit evidence: a user's approved suspicious payments in an " \
	  "hour")                                                              \
	_(raise_window_s, "raise-window-s", 60, 604800, 3600,                  \
	  "raise evidence: a limit raise seen within this many seconds ...")  \
	_(raise_n, "raise-n", 1, 255, 3,                                       \
	  "... followed by this many authorizations ...")                     \
	_(raise_use_pct, "raise-use-pct", 1, 1000, 50,                         \
	  "... spending (approved) at least this % of the raise")             \
	_(warn_points, "warn-points", 1, 4, 2,                                 \
	  "anomaly: evidence points (of 4, one of them round or near-limit) " \
	  "to raise the user's score and, after a raise, lower the limit")    \
	_(freeze_points, "freeze-points", 1, 4, 3,                             \
	  "anomaly: evidence points to freeze the user")                      \
	_(lower_pct, "lower-pct", 0, 100, 50,                                  \
	  "lower-limit verdict: cut the limit by this %, never below "        \
	  "outstanding + holds (100: down to them; 0: never lower)")          \
	_(crowd_users, "crowd-users", 2, 8, 4,                                 \
	  "fraud crowd: users of one device with suspicious payments in an "  \
	  "hour")                                                              \
	_(merchant_users, "merchant-users", 2, 16, 8,                          \
	  "fraudulent merchant: unrelated users with suspicious payments "    \
	  "there in an hour, to block it")                                     \
	_(merchant_warn_users, "merchant-warn-users", 1, 16, 4,                \
	  "... to raise its score only")                                       \
	_(merchant_share_pct, "merchant-share-pct", 1, 100, 60,                \
	  "... while suspicious payments are at least this % of its "         \
	  "approved payments in the hour")                                     \
	_(user_score_warn, "user-score-warn", 0, 1000, 600,                    \
	  "score given to a user on a warning verdict")                       \
	_(user_score_freeze, "user-score-freeze", 0, 1000, 1000,               \
	  "score given to a frozen user")                                      \
	_(merchant_score_warn, "merchant-score-warn", 0, 1000, 700,            \
	  "score given to a merchant on a warning verdict")                   \
	_(merchant_score_block, "merchant-score-block", 0, 1000, 1000,         \
	  "score given to a blocked merchant")                                 \
	_(rearm_s, "rearm-s", 60, 2592000, 86400,                              \
	  "a verdict is not repeated for the same user or merchant within "   \
	  "this many seconds (an operator's unfreeze or unblock stands)")     \
	_(log_per_s, "log-per-s", 0, 1000000, 100,                             \
	  "verdict log lines per second at most; the rest are counted")

/* Table sizes, set at start only (memory is reserved once). */
#define DP_RISK_FOREACH_SIZE(_)                                                \
	_(users_max, "users-max", 64, 1u << 28, 262144,                        \
	  "users tracked (8-way sets; the least recently seen is evicted)")   \
	_(merchants_max, "merchants-max", 64, 1u << 26, 65536,                 \
	  "merchants tracked")                                                 \
	_(devices_max, "devices-max", 64, 1u << 28, 131072,                    \
	  "devices tracked")

struct dp_risk_config {
	enum dp_risk_mode mode;
#define DP_RISK_PARAM_FIELD(f, key, lo, hi, def, help) uint32_t f;
	DP_RISK_FOREACH_PARAM(DP_RISK_PARAM_FIELD)
	DP_RISK_FOREACH_SIZE(DP_RISK_PARAM_FIELD)
#undef DP_RISK_PARAM_FIELD
};

/** Fill @p c with the documented defaults (mode shadow; docs/risk.md). */
void dp_risk_config_default(struct dp_risk_config *c);

/**
 * Set one key of @p c from text: "mode" (on, shadow, off), a threshold or a
 * table size (keys as in the lists above). Nothing changes on error.
 * @return 0, or -EINVAL with "key=value: why" in @p err.
 */
int dp_risk_config_set(struct dp_risk_config *c, const char *key,
		       const char *value, char *err, size_t errlen);

#define DP_RISK_KV_MAX 64   /* items of one dp_risk_config_set_kv() */

/**
 * Set @p n "KEY=VALUE" items, all or nothing: @p c changes only if every
 * item is valid. Table sizes are refused unless @p sizes_ok (they are set
 * at start only). 0, or -EINVAL with "why" in @p err (nothing changed).
 */
int dp_risk_config_set_kv(struct dp_risk_config *c, const char *const *kv,
			  unsigned n, bool sizes_ok, char *err, size_t errlen);

/** The value of @p key in @p c as a number (mode: enum value). -ENOENT. */
int dp_risk_config_get(const struct dp_risk_config *c, const char *key,
		       uint32_t *out);

/** Whether @p key is a table size (settable at start only). */
bool dp_risk_key_is_size(const char *key);

/** Number of settable keys, and key @p i's name and help (NULL past the end). */
unsigned dp_risk_keys(void);
const char *dp_risk_key_name(unsigned i);
const char *dp_risk_key_help(unsigned i);

const char *dp_risk_mode_name(enum dp_risk_mode m);

/* ------------------------------------------------------------------------ */
/* Verdicts                                                                   */

#define DP_RISK_FOREACH_VERDICT(_)                                             \
	_(FREEZE_USER, "freeze-user")                                          \
	_(LOWER_LIMIT, "lower-limit")                                          \
	_(USER_SCORE, "user-score")                                            \
	_(BLOCK_MERCHANT, "block-merchant")                                    \
	_(MERCHANT_SCORE, "merchant-score")

enum dp_risk_verdict_kind {
#define DP_RISK_VERDICT_ENUM(name, text) DP_RISK_V_##name,
	DP_RISK_FOREACH_VERDICT(DP_RISK_VERDICT_ENUM)
#undef DP_RISK_VERDICT_ENUM
	DP_RISK_VERDICTS
};

#define DP_RISK_FOREACH_DETECTOR(_)                                            \
	_(CROWD, "crowd")                                                      \
	_(ANOMALY, "anomaly")                                                  \
	_(MERCHANT, "merchant")

enum dp_risk_detector {
#define DP_RISK_DETECTOR_ENUM(name, text) DP_RISK_D_##name,
	DP_RISK_FOREACH_DETECTOR(DP_RISK_DETECTOR_ENUM)
#undef DP_RISK_DETECTOR_ENUM
	DP_RISK_DETECTORS
};

/* The evidence a detector saw, for the log line and the tests. */
struct dp_risk_evidence {
	/* anomaly */
	uint32_t n_min;                /* the user's approved payments */
	uint32_t n_hour, ok_hour;      /* attempts; approved payments */
	uint32_t round_hour, sus_hour; /* approved round; approved suspicious */
	uint32_t points;               /* evidence points 0..4 */
	uint32_t post_raise_n;         /* authorizations since the raise */
	int64_t raise_from_fen, raise_to_fen, post_raise_fen;
	/* crowd */
	uint64_t device_id;
	uint32_t device_users, crowd;  /* users seen on it; suspicious ones */
	/* merchant */
	uint32_t m_n, m_sus;           /* approved payments there; suspicious */
	uint32_t unrelated;            /* unrelated users among the suspicious */
	uint8_t burst, round, near, raise; /* anomaly evidence bits */
};

struct dp_risk_verdict {
	enum dp_risk_verdict_kind kind;
	enum dp_risk_detector detector;
	uint64_t id;                   /* user or merchant id */
	uint32_t now_s;                /* decision time that triggered it */
	uint16_t score;                /* raise the score to at least this */
	uint8_t lower_pct;             /* LOWER_LIMIT */
	uint16_t mcc, region;          /* merchant kinds: for a new record */
	struct dp_risk_evidence ev;
};

/** A verdict about a merchant (the others are about a user). */
static inline bool
dp_risk_verdict_on_merchant(enum dp_risk_verdict_kind k)
{
	return k == DP_RISK_V_BLOCK_MERCHANT || k == DP_RISK_V_MERCHANT_SCORE;
}

const char *dp_risk_verdict_name(enum dp_risk_verdict_kind k);
const char *dp_risk_detector_name(enum dp_risk_detector d);

/**
 * Apply verdict @p v to @p db: freeze the user (and raise its score),
 * lower its limit (never below outstanding + holds), raise its score, or
 * block the merchant (and raise its score) or raise the merchant's score.
 * Scores only go up. When something changed, @p out is the journal record
 * (uid LIM_UID_RISK, seq taken with lim_seq_take() while the user's lock,
 * or for merchants the caller's merchant-update serialisation, is held:
 * the caller MUST hand it to the ledger) and 1 is returned; 0 when there
 * was nothing to change (already frozen, unknown user, ...); a negative errno when the merchant could not be stored.
 * User verdicts: any thread (the user's lock is taken here). Merchant
 * verdicts: a registered QSBR thread, online, serialised with every other
 * merchant updater.
 */
int dp_risk_apply(struct lim_db *db, const struct dp_risk_verdict *v,
		  struct lim_cfg_effect *out);

/**
 * One line about @p v and what became of it (@p outcome: a
 * DP_RISK_OUT_* value), for the log.
 */
void dp_risk_verdict_format(const struct dp_risk_verdict *v, int outcome,
			    char *buf, size_t len);

enum dp_risk_outcome {
	DP_RISK_OUT_APPLIED = 0,   /* changed the state (and journaled) */
	DP_RISK_OUT_UNCHANGED,     /* nothing to change */
	DP_RISK_OUT_FAILED,        /* could not be applied */
	DP_RISK_OUT_SHADOW,        /* shadow mode: not applied */
};

/* ------------------------------------------------------------------------ */
/* The engine                                                                 */

#define DP_RISK_FOREACH_COUNTER(_)                                             \
	_(consumed, "decision records fed to the engine")                      \
	_(counted, "authorizations counted in the features")                   \
	_(ignored, "records with nothing to learn (other ops, duplicates, "   \
		   "unknown users, BUSY, ...)")                                \
	_(raises, "limit raises seen in the stream")                          \
	_(verdicts, "verdicts issued (applied or not)")                       \
	_(applied, "verdicts that changed a user or merchant")                \
	_(unchanged, "verdicts with nothing to change")                       \
	_(failed, "verdicts that could not be applied")                       \
	_(shadow, "verdicts only logged (shadow mode)")                       \
	_(journaled, "settings changes handed to the ledger")                 \
	_(journal_missing, "settings changes the ledger did not take")        \
	_(log_suppressed, "verdict lines not logged (log-per-s)")             \
	_(users_evicted, "user entries evicted to make room")                 \
	_(merchants_evicted, "merchant entries evicted")                      \
	_(devices_evicted, "device entries evicted")

enum dp_risk_counter {
#define DP_RISK_COUNTER_ENUM(name, desc) DP_RISK_C_##name,
	DP_RISK_FOREACH_COUNTER(DP_RISK_COUNTER_ENUM)
#undef DP_RISK_COUNTER_ENUM
	DP_RISK_COUNTERS
};

struct dp_risk_counters {
	uint64_t c[DP_RISK_COUNTERS];
	uint64_t by_kind[DP_RISK_VERDICTS];        /* verdicts issued */
	uint64_t by_detector[DP_RISK_DETECTORS];
	uint64_t users, merchants, devices;        /* entries in use */
};

const char *dp_risk_counter_name(enum dp_risk_counter c);

/*
 * Where verdicts go. Every callback may be NULL. The engine calls
 * apply_begin() before the first verdict of a dp_risk_engine_feed() call is
 * applied and apply_end() once after the last (the worker goes QSBR-online
 * and offline there); merchants_lock()/unlock() around each merchant
 * verdict; journal() with each change (0 or a negative errno: counted as
 * journal_missing); log() with each line that passes the rate limit;
 * verdict() with every verdict and its outcome (tests).
 */
struct dp_risk_sink {
	struct lim_db *db;   /* applied here in mode on; NULL: never applied */
	void *arg;
	void (*apply_begin)(void *arg);
	void (*apply_end)(void *arg);
	void (*merchants_lock)(void *arg);
	void (*merchants_unlock)(void *arg);
	int (*journal)(void *arg, const struct lim_cfg_effect *e);
	void (*log)(void *arg, const char *line);
	void (*verdict)(void *arg, const struct dp_risk_verdict *v, int outcome);
};

struct dp_risk_engine; /* opaque: feature tables, thresholds, counters */

/**
 * An engine with the thresholds and table sizes of @p cfg. Every table is
 * allocated here (calloc: pages are touched as entries are used) and never
 * grows. NULL on allocation failure or a config out of range.
 */
struct dp_risk_engine *dp_risk_engine_create(const struct dp_risk_config *cfg);
void dp_risk_engine_free(struct dp_risk_engine *e);

/** Take new thresholds and mode from @p cfg (its table sizes are ignored). */
void dp_risk_engine_configure(struct dp_risk_engine *e,
			      const struct dp_risk_config *cfg);

/**
 * Learn from @p n decisions and run the detectors; verdicts go to @p sink
 * (applied in mode on, logged only in shadow mode; mode off only counts the
 * records; @p sink may be NULL: nothing applied or logged). Bounded work per
 * record: three table lookups of 8 ways and at most 8 + 3 verdicts (one per
 * user the device remembers, two anomaly, one merchant). Returns the number
 * of verdicts issued.
 */
unsigned dp_risk_engine_feed(struct dp_risk_engine *e,
			     const struct dp_decision *d, unsigned n,
			     const struct dp_risk_sink *sink);

void dp_risk_engine_counters(const struct dp_risk_engine *e,
			     struct dp_risk_counters *out);

/* The features the engine holds for one user or merchant (tests, authctl). */
struct dp_risk_user_view {
	uint32_t n_min, n_hour, ok_hour, round_hour, sus_hour;
	uint32_t post_raise_n, raise_s;
	int64_t limit_fen, raise_from_fen, raise_to_fen, post_raise_fen;
	uint32_t merchants;            /* distinct merchants in the hour (<= 4) */
	uint8_t done;                  /* verdicts already given (bit per kind) */
};

struct dp_risk_merchant_view {
	uint32_t n, near, sus, unrelated, payers;
	uint8_t done;
};

/**
 * The features of user @p id (merchant @p id) as of time @p now_s.
 * false when the engine holds none.
 */
bool dp_risk_engine_user(struct dp_risk_engine *e, uint64_t id,
			 uint32_t now_s, struct dp_risk_user_view *out);
bool dp_risk_engine_merchant(struct dp_risk_engine *e, uint32_t id,
			     uint32_t now_s, struct dp_risk_merchant_view *out);

/** Bytes the engine's tables take (reserved, not necessarily touched). */
size_t dp_risk_engine_bytes(const struct dp_risk_engine *e);

/* ------------------------------------------------------------------------ */
/* The risk worker (risk_worker.c; DPDK rings, the ledger)                    */

struct rte_ring;
struct dp_ledger;
struct dp_risk;
struct json_t;

/* What the worker is given at start; the pointers outlive it. */
struct dp_risk_conf {
	const struct dp_risk_config *cfg;  /* --risk, --risk-set, [risk] */
	struct lim_db *db;
	struct rte_ring *const *rings;     /* SP/SC of struct dp_decision */
	unsigned n_rings;                  /* one per dataplane lcore */
	struct dp_ledger *ledger;          /* verdicts are journaled there */
	/* records the producers could not hand over (their full rings) */
	uint64_t (*dropped)(const void *arg);
	const void *dropped_arg;
};

/**
 * Start the risk worker (c->cfg): a control thread that drains every ring
 * of @p c into the risk engine. With mode off no thread starts and *@p out
 * is NULL: the caller frees the rings (nobody drains, so nobody produces).
 * Call before the rings' producers run. 0, or a negative errno with a log
 * line.
 */
int dp_risk_start(const struct dp_risk_conf *c, struct dp_risk **out);
/**
 * Drain what is left in the rings, stop the thread, log its counters, free
 * it. Call after the lcores stopped, before the ledger stops (verdicts are
 * journaled) and after the control thread stopped (it reads the worker).
 */
void dp_risk_stop(struct dp_risk *r);
/**
 * `authctl risk set KEY=VALUE`: change the mode (on, shadow, off) or a
 * threshold at run time (keys: risk.h, docs/risk.md); table sizes are
 * start-only. The worker takes it before its next batch. Any thread.
 * 0, or a negative errno with the reason in @p err (@p r NULL: -ENOENT,
 * authd runs with --risk off).
 */
int dp_risk_set(struct dp_risk *r, const char *key, const char *value,
		char *err, size_t errlen);
/**
 * The same for @p n "KEY=VALUE" items, all or nothing: every item is
 * checked before any takes effect (an invalid request changes nothing).
 * 0, or a negative errno with "KEY=VALUE: why" in @p err.
 */
int dp_risk_set_kv(struct dp_risk *r, const char *const *kv, unsigned n,
		   char *err, size_t errlen);
/**
 * `authctl risk show`: mode, thresholds, counters (verdicts by kind and
 * detector, shadow verdicts, records dropped by full rings), table use. A
 * new jansson object; {"mode":"off"} when @p r is NULL. Any thread.
 */
struct json_t *dp_risk_json(struct dp_risk *r);
/* The worker's figures as plain numbers (authd --metrics). */
struct dp_risk_stats {
	enum dp_risk_mode mode;
	struct dp_risk_counters c;     /* as of the worker's last pass */
	uint64_t dropped;              /* records the lcores' full rings refused */
	size_t bytes;                  /* the engine's tables */
};

/**
 * Copy what dp_risk_json() reports, without JSON: the mode, the counters,
 * the records dropped by full rings. @p r NULL (--risk off): mode off and
 * zeros. Any thread.
 */
void dp_risk_stats_get(struct dp_risk *r, struct dp_risk_stats *st);
/**
 * Serialise merchant read-copy-publish (lim_merchant_find, copy, change,
 * lim_merchant_set) between the control thread and the risk worker, so
 * neither loses the other's change. Hold it only for that, online, and
 * never across synchronize_rcu().
 */
void dp_merchants_lock(void);
void dp_merchants_unlock(void);

#endif /* DP_RISK_H */
