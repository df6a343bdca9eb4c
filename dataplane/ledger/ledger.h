/*
 * ledger.h - the ledger room: the ledger worker (group commit of every
 * effect to the journal, durability, hold expiry) and its timer wheel.
 * The journal's format, reader and recovery are in journal.h, which the
 * tools link without DPDK.
 *
 * Producers: the dataplane lcores (one SP/SC ring each, handed in at
 * start), the control thread and the risk worker (dp_ledger_submit), the
 * ledger's own timer. Consumers of its progress: the lcores (durable_seq,
 * journal_failed), the export (durable_seq). docs/durability.md.
 */
#ifndef DP_LEDGER_H
#define DP_LEDGER_H

#include <stdbool.h>
#include <stdint.h>

#include "auth.h"
#include "journal.h"
#include "lim.h"

struct rte_ring;
struct json_t;
struct dp_ledger;

/* ------------------------------------------------------------------------ */
/* The ledger worker (ledger.c)                                               */

/* What the ledger is given at start; the pointers outlive it. */
struct dp_ledger_conf {
	struct lim_db *db;
	const char *journal_dir;   /* NULL or "": no journal */
	uint64_t segment_bytes;    /* --journal-segment-size */
	struct rte_ring *const *rings; /* SP/SC rings of struct lim_effect */
	unsigned n_rings;          /* one per dataplane lcore */
	unsigned shard;            /* the ledger's own budget shard (timer) */
	/* engine time (unix seconds), for hold expiry */
	uint32_t (*now_s)(const void *arg);
	const void *now_arg;
	uint64_t *durable_seq;     /* atomic: published after every batch */
	int *journal_failed;       /* atomic: set to 1 when the journal stops */
};

/**
 * Start the ledger worker: it takes the effects of every ring of @p c, the
 * settings effects of dp_ledger_submit() and its own hold expiries, writes
 * them in seq order to the journal (c->journal_dir, appending after @p end,
 * the recovered end; NULL or no journal dir: no journal, effects are only
 * ordered and counted), one write and one fdatasync per batch, and
 * publishes *c->durable_seq. Rebuilds the hold-expiry wheel from the HELD
 * entries of c->db. Call before the rings' producers run. NULL with a log
 * line on failure.
 */
struct dp_ledger *dp_ledger_start(const struct dp_ledger_conf *c,
				  const struct dp_journal_scan *end);
/**
 * Write everything still in the rings (bounded wait for missing seqs), stop
 * the worker, close the journal, free it. Call after the lcores, the
 * control thread and the risk worker stopped.
 */
void dp_ledger_stop(struct dp_ledger *l);
/** Effects of the lcore rings written (and durable, with a journal). */
uint64_t dp_ledger_drained(const struct dp_ledger *l);
/**
 * Hand a settings effect to the ledger (control thread, risk worker). Its
 * seq was taken with lim_seq_take() and MUST reach the ledger: this waits
 * while the ring is full. Any thread.
 * @return 0; -EIO (the journal failed: it will never be durable);
 *         -ESHUTDOWN (the ledger stopped); -ENODEV (@p l is NULL).
 */
int dp_ledger_submit(struct dp_ledger *l, const struct lim_cfg_effect *e);
/**
 * Wait until every seq up to @p seq is durable (or, without a journal,
 * taken by the ledger). Any thread; sleeps, so call it offline (QSBR).
 * @return 0; -ETIMEDOUT; -EIO (the journal failed).
 */
int dp_ledger_wait_durable(struct dp_ledger *l, uint64_t seq,
			   unsigned timeout_ms);

#define DP_LEDGER_HIST 20 /* fdatasync latency buckets: [2^i, 2^(i+1)) us */

/**
 * The fdatasync histogram's bucket of @p ns: b holds [2^b, 2^(b+1))
 * microseconds, bucket 0 also 0 and 1 us, the last one everything above.
 */
static inline unsigned
dp_ledger_fsync_bucket(uint64_t ns)
{
	uint64_t us = ns / 1000;
	unsigned b = 0;

	while (us > 1 && b + 1 < DP_LEDGER_HIST) {
		us >>= 1;
		b++;
	}
	return b;
}

/** The largest ns bucket @p b holds; UINT64_MAX for the last (open) one. */
static inline uint64_t
dp_ledger_fsync_bucket_max_ns(unsigned b)
{
	return b + 1 >= DP_LEDGER_HIST ? UINT64_MAX : (2000ull << b) - 1;
}

/* What the ledger did; read by the control plane (a consistent-enough copy). */
struct dp_ledger_stats {
	bool journal;              /* a journal is written */
	uint64_t durable_seq;      /* durable up to here */
	uint64_t seq;              /* last seq handed out (db->seq) */
	uint64_t lag;              /* seq - durable_seq when read */
	uint64_t lag_max;          /* largest lag seen when a batch started */
	uint64_t records;          /* records written (durable) */
	uint64_t cfg_records;      /* ... of which settings effects */
	uint64_t batches;          /* writes, each with one fdatasync */
	uint64_t batch_records_max;
	uint64_t bytes;
	uint64_t segments;
	uint64_t fsync_ns_sum, fsync_ns_max;
	uint64_t fsync_hist[DP_LEDGER_HIST];
	uint64_t expired;          /* holds released by the timer */
	uint64_t reclaimed;        /* op entries removed after retain */
	uint64_t timer_pending;    /* holds in the wheel */
	uint64_t timer_overflow;   /* holds the wheel had no room for */
	int failed;                /* 0, or the negative errno it stopped on */
	char failure[320];         /* why: the file, the call, the error */
};

/** Copy the ledger's figures. Any thread. */
void dp_ledger_stats_get(const struct dp_ledger *l, struct dp_ledger_stats *st);
/** The same as a new jansson object (authctl stats "ledger"). Any thread. */
struct json_t *dp_ledger_json(const struct dp_ledger *l);
/**
 * A USER_SET record of @p u's settings now, with a new seq: call with the
 * user's lock held, right after the change; submit it after unlocking
 * (dp_ledger_submit may wait, and the ledger's timer takes user locks).
 */
void dp_cfg_user(struct lim_cfg_effect *c, struct lim_db *db,
		 const struct lim_user *u, uint32_t uid, uint32_t now_s,
		 bool created);
/**
 * Journal the policy now published in @p db (after lim_policy_set): its
 * parts, with new seqs, submitted. @p last_seq: the last part's seq, for
 * dp_ledger_wait_durable(). 0 or dp_ledger_submit()'s error.
 */
int dp_ledger_journal_policy(struct dp_ledger *l, struct lim_db *db,
			     uint32_t uid, uint32_t now_s, uint64_t *last_seq);

/* timer.c: hold expiry, owned by the ledger thread */
struct dp_timer;

struct dp_timer_stats {
	uint64_t added, fired, expired, pending, overflow;
	uint64_t swept, sweep_expired, reclaimed;
};

/* One pass of the timer: what it needs and where its effects go. */
struct dp_timer_ctx {
	struct dp_timer *t;
	struct lim_db *db;
	unsigned shard;            /* the ledger's budget shard */
	struct auth_now now;
	void (*emit)(void *arg, const struct lim_effect *e);
	void *arg;
	unsigned sweep_left;       /* internal */
};

/** A wheel for up to @p capacity holds, its cursor at @p now_s. */
struct dp_timer *dp_timer_create(uint64_t capacity, uint32_t now_s);
void dp_timer_free(struct dp_timer *t);
/** Add a hold; -ENOSPC when the pool is full (the sweep catches it). */
int dp_timer_add(struct dp_timer *t, uint32_t gateway_id, uint64_t request_id,
		 uint64_t user_id, uint32_t expires_s);
/** Add every HELD entry of @p db (start-up); returns how many. */
uint64_t dp_timer_rebuild(struct dp_timer *t, struct lim_db *db);
/** Expire lapsed holds, at most @p budget nodes; emits EXPIRE effects. */
unsigned dp_timer_run(struct dp_timer_ctx *x, unsigned budget);
/** Visit up to @p visit_budget op entries: expire what the wheel missed
 * (at most @p effect_budget), reclaim entries past retain_until_s. */
unsigned dp_timer_sweep(struct dp_timer_ctx *x, unsigned visit_budget,
			unsigned effect_budget);
void dp_timer_stats_get(const struct dp_timer *t, struct dp_timer_stats *st);

#endif /* DP_LEDGER_H */
