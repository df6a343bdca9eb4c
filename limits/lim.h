/*
 * lim.h - credit state of the authorization engine: users, merchants, groups,
 * funders, the lending ceiling, holds and idempotency records, effects and
 * snapshots.
 *
 * Records that the decision function reads (struct lim_user, lim_merchant,
 * lim_group, lim_funder, lim_policy, lim_op) are declared here in full so that
 * auth/ can decide on them; the containers that hold them are opaque.
 *
 * Concurrency, in one place (each function repeats its own contract):
 * - Dataplane threads are liburcu QSBR readers (rcu_register_thread(), then
 *   rcu_quiescent_state() between bursts). Merchants, groups, user extensions,
 *   funders and the policy are immutable once published; an update copies,
 *   changes, publishes and frees the old record after a grace period.
 * - A user's balances and per-user settings live in its slot (struct lim_user)
 *   and change only under the slot's lock byte (lim_user_lock()). One lock per
 *   user, never two users at once; a group's state lock is taken after the
 *   member's user lock, never before. See docs/design-notes.md.
 * - The lending ceiling and funder quotas are budgets split into per-thread
 *   shards refilled in chunks from a global atomic (struct lim_budget).
 *
 * Money is int64_t fen everywhere. Times are unix seconds in uint32_t.
 */
#ifndef LIM_H
#define LIM_H

#include <limits.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/types.h>

/* ------------------------------------------------------------------------ */
/* Bounds                                                                     */

#define LIM_SHARDS_MAX 64        /* budget shards: dataplane lcores + workers */
#define LIM_TIERS 8              /* tier 0..7 */
#define LIM_FUNDERS_MAX 32       /* slot 0 is the company's own book */
#define LIM_GROUP_MEMBERS_MAX 8
#define LIM_SPIN_MAX (1u << 20)  /* lock spins before a debug build aborts */
/* Largest amount any setting or balance may hold: 10 trillion yuan. Settings
 * are checked against it, so sums of two settings or balances cannot overflow
 * and an amount from the wire is only ever compared, never added. */
#define LIM_MONEY_MAX 1000000000000000LL

/* Products and operations: the same numbers as the wire protocol. */
enum lim_product {
	LIM_PRODUCT_PAYLATER = 1,
	LIM_PRODUCT_INSTALLMENT = 2,
	LIM_PRODUCT_CASH = 3,
};

enum lim_opcode {
	LIM_OP_AUTHORIZE = 1,
	LIM_OP_CAPTURE = 2,
	LIM_OP_VOID = 3,
	LIM_OP_REFUND = 4,
	LIM_OP_REPAY = 5,
};

/* ------------------------------------------------------------------------ */
/* Policy (immutable, published through RCU)                                  */

struct lim_tier {
	int64_t large_spend_fen;   /* LARGE_SPEND note at or above this; 0 = off */
	int64_t vel_min_fen;       /* approved amount per minute; 0 = no limit */
	int64_t vel_day_fen;       /* approved amount per day; 0 = no limit */
	uint8_t products;          /* bit (1 << product) set = allowed */
	uint8_t max_terms;         /* largest installment term allowed: 0,3,6,12 */
	uint8_t vel_min_n;         /* approvals per minute; 0 = no limit */
	uint8_t vel_day_n;         /* approvals per day; 0 = no limit */
	uint8_t cash_pct;          /* cash sub-limit as % of limit when no override */
	uint8_t pad[3];
};

struct lim_policy {
	int64_t ceiling_fen;          /* company-wide lending ceiling */
	int64_t cap_chunk_fen;        /* budget shard refill chunk */
	int32_t tz_offset_s;          /* month and day boundaries; default +8 h */
	uint32_t hold_ttl_s;          /* default 7 days */
	uint32_t retain_s;            /* idempotency ids kept at least this long */
	uint32_t refund_window_s;     /* captured authorizations kept for refunds */
	uint32_t cool_cash_s;         /* no cash loan this long after the last one */
	uint32_t cool_raise_s;        /* ... nor this long after a limit raise */
	uint8_t own_share_min_pct;    /* company keeps at least this share; 30 */
	uint8_t low_avail_pct;        /* LOW_AVAILABLE below this % of the limit */
	uint8_t inst_cash_pct;        /* cash limit lowered by this % of inst. debt */
	uint8_t unknown_merchant_ok;  /* 0: unknown merchant -> MERCHANT_BLOCKED */
	uint16_t risk_decline;        /* risk score at or above -> RISK_CASHOUT; 0 off */
	uint16_t pad;
	struct lim_tier tier[LIM_TIERS];
};

/** Start of the day and of the month holding @p now_s, in time zone @p tz. */
uint32_t lim_day_start(uint32_t now_s, int32_t tz_offset_s);
uint32_t lim_month_start(uint32_t now_s, int32_t tz_offset_s);

/** Fill @p p with the documented defaults (docs/rules.md). */
void lim_policy_default(struct lim_policy *p);

/** Check a policy for consistency. Returns 0 or -EINVAL with a message. */
int lim_policy_check(const struct lim_policy *p, char *err, size_t errlen);

/* ------------------------------------------------------------------------ */
/* Users                                                                      */

#define LIM_USER_FROZEN   0x01 /* no new credit */
#define LIM_USER_SOFT_CAP 0x02 /* self cap only flags (OVER_SELF_CAP_SOFT) */
#define LIM_USER_EXT      0x04 /* has a struct lim_user_ext */

/*
 * One user: settings and balances in one 88-byte slot, so a decision touches
 * two cache lines at most and 100 M users fit in ~10 GB with the index.
 * Every field changes only under lim_user_lock(). Debts and holds are >= 0.
 */
struct lim_user {
	uint64_t user_id;
	int64_t limit_fen;
	int64_t outstanding_fen;   /* captured debt, all products */
	int64_t holds_fen;         /* open holds, all products */
	int64_t cash_fen;          /* cash-loan debt (part of outstanding) */
	int64_t inst_fen;          /* installment debt (part of outstanding) */
	int64_t self_cap_fen;      /* monthly self-set cap; 0 = none */
	int64_t month_spend_fen;   /* approved spend in the month of spend_min */
	uint32_t cool_until_s;     /* no cash loan before this time */
	uint32_t spend_min;        /* unix minute of the last counted spend */
	uint32_t vel_min_fen;      /* spend in minute spend_min, saturating */
	uint32_t vel_day_fen;      /* spend in the day of spend_min, saturating */
	uint16_t region;
	uint8_t vel_min_n;         /* approvals in minute spend_min, saturating */
	uint8_t vel_day_n;         /* approvals in the day of spend_min, saturating */
	uint8_t lock;              /* see lim_user_lock() */
	uint8_t tier;              /* 0 .. LIM_TIERS-1 */
	uint8_t flags;             /* LIM_USER_* */
	uint8_t risk_q;            /* risk score / 4 (0..250) */
};

/* Rare per-user settings, looked up only when LIM_USER_EXT is set. */
struct lim_user_ext {
	uint64_t user_id;
	int64_t temp_quota_fen;   /* added to the limit until temp_until_s */
	int64_t cash_limit_fen;   /* absolute cash sub-limit; < 0 = tier default */
	int64_t alert_fen;        /* large-spend threshold; 0 = off, < 0 = tier default */
	uint32_t temp_until_s;
	uint32_t pad;
};

struct lim_users; /* opaque: open-addressing index + slot array */

/**
 * Create a user table for up to @p capacity users. Memory is reserved at
 * once and not grown later. Returns NULL on allocation failure.
 */
struct lim_users *lim_users_create(uint64_t capacity);
void lim_users_free(struct lim_users *t);

/** The hash of a user id, computed once per record. */
uint64_t lim_user_hash(uint64_t user_id);

/**
 * Find a batch of users: prefetches the index lines for all, then the slots
 * for all, so the misses overlap. out[i] is NULL for unknown ids.
 * Any thread; slots never move or vanish while the table lives.
 */
void lim_users_find_burst(struct lim_users *t, const uint64_t *ids,
			  unsigned n, struct lim_user **out);

/** Find one user; NULL when unknown. Any thread. */
struct lim_user *lim_users_find(struct lim_users *t, uint64_t user_id);

/**
 * Insert a user (copy of @p u, lock byte cleared). Updater only: calls are
 * serialised by the caller. Readers see the slot once it is complete.
 * Returns 0, -EEXIST, -ENOSPC (table full) or -EINVAL (id 0).
 */
int lim_users_insert(struct lim_users *t, const struct lim_user *u);

uint64_t lim_users_count(const struct lim_users *t);
uint64_t lim_users_capacity(const struct lim_users *t);
/** Bytes held by the table (index + slots actually in use). */
size_t lim_users_bytes(const struct lim_users *t);
/** Slot @p i (0 <= i < count), for snapshots and scans. */
struct lim_user *lim_users_at(struct lim_users *t, uint64_t i);

/** Spin until the user's lock byte is ours. Never hold two user locks. */
void lim_user_lock(struct lim_user *u);
void lim_user_unlock(struct lim_user *u);

/* ------------------------------------------------------------------------ */
/* Merchants, groups, user extensions: RCU hash tables of immutable records   */

#define LIM_MERCHANT_BLOCKED 0x01

/* Subsidy bits: the merchant pays the interest of these installment terms. */
#define LIM_SUBSIDY_3  0x01
#define LIM_SUBSIDY_6  0x02
#define LIM_SUBSIDY_12 0x04

struct lim_merchant {
	uint32_t merchant_id;
	uint16_t mcc;
	uint16_t region;
	uint16_t risk_score;      /* 0..1000, set by the risk workers */
	uint8_t flags;            /* LIM_MERCHANT_* */
	uint8_t subsidy;          /* LIM_SUBSIDY_* */
};

struct lim_group_state {          /* mutable; under lim_group_lock() */
	int64_t month_spend_fen;
	uint32_t month_start_s;   /* month the spend belongs to */
	uint8_t lock;
	uint8_t pad[3];
};

struct lim_group {
	uint32_t group_id;
	uint8_t n_members;
	uint8_t pad[3];
	int64_t budget_fen;       /* monthly budget agreed by the members */
	uint64_t members[LIM_GROUP_MEMBERS_MAX];
	struct lim_group_state *st; /* lives as long as the group */
};

void lim_group_lock(struct lim_group_state *g);
void lim_group_unlock(struct lim_group_state *g);

struct lim_kv; /* opaque RCU hash of one record type */

/** Called for each record; a non-zero return stops the walk and is returned. */
typedef int (*lim_kv_visit_fn)(const void *rec, void *arg);

/**
 * Visit every record of @p kv (struct lim_merchant, lim_group or
 * lim_user_ext). Call with the QSBR read side online or as the updater.
 */
int lim_kv_foreach(struct lim_kv *kv, lim_kv_visit_fn fn, void *arg);
uint64_t lim_kv_count(const struct lim_kv *kv);

/* ------------------------------------------------------------------------ */
/* Funders and budgets                                                        */

struct lim_budget; /* opaque: a global atomic plus per-shard rooms */

/**
 * Create a budget of @p total_fen split into @p shards shards that refill in
 * chunks of @p chunk_fen. Returns NULL on allocation failure.
 */
struct lim_budget *lim_budget_create(int64_t total_fen, int64_t chunk_fen,
				     unsigned shards);
void lim_budget_free(struct lim_budget *b);
/** What shard @p s can take now: its room plus the global room. Shard owner. */
int64_t lim_budget_room(const struct lim_budget *b, unsigned s);
/** Take @p fen for shard @p s. False (nothing taken) if it does not fit. */
bool lim_budget_take(struct lim_budget *b, unsigned s, int64_t fen);
/** Give back @p fen taken earlier (from any shard) through shard @p s. */
void lim_budget_give(struct lim_budget *b, unsigned s, int64_t fen);
/**
 * Change the total by @p delta_fen (control plane). A decrease comes out of
 * the global room only (shard rooms belong to their owners), so it fails
 * with -ERANGE, changing nothing, when the global room is smaller than the
 * decrease: room reserved by shards counts as in use until they give it
 * back or flush.
 */
int lim_budget_adjust(struct lim_budget *b, int64_t delta_fen);
/** Return shard @p s's whole room to the global room. Shard owner. */
void lim_budget_flush(struct lim_budget *b, unsigned s);
/** Total minus what is taken. Exact only when no shard owner is running. */
int64_t lim_budget_free_fen(const struct lim_budget *b);
int64_t lim_budget_total(const struct lim_budget *b);

struct lim_funder {
	int64_t quota_fen;        /* origination quota for this funder's share */
	uint16_t funder_id;       /* 0 = the company's own book (slot 0 only) */
	uint16_t region;          /* 0 = national; else only users of this region */
	uint8_t share_pct;        /* the bank's share of each loan it co-funds */
	uint8_t products;         /* bit (1 << product) set = funds it */
	uint8_t pad[2];
};

/*
 * The funder table: slot 0 is the company funding alone, slots 1..n-1 are
 * partner banks in priority order. Immutable; budgets outlive a replacement.
 */
struct lim_funders {
	unsigned n;
	struct lim_funder f[LIM_FUNDERS_MAX];
	struct lim_budget *budget[LIM_FUNDERS_MAX];
};

/** The bank part of a loan of @p amount_fen when the company keeps @p own_pct. */
static inline int64_t
lim_bank_part(int64_t amount_fen, unsigned own_pct)
{
	return amount_fen * (int64_t)(100 - own_pct) / 100;
}

/* ------------------------------------------------------------------------ */
/* Holds and idempotency records                                              */

enum lim_op_state {
	LIM_OPS_FREE = 0,
	LIM_OPS_DECIDED,   /* answer kept for DUPLICATE; nothing open */
	LIM_OPS_HELD,      /* approved authorization with an open hold */
	LIM_OPS_CAPTURED,  /* hold captured (or a cash loan): refundable */
	LIM_OPS_CLOSED,    /* voided, expired or refunded in full */
	LIM_OPS_TOMBSTONE, /* a void/refund came first; the original is REVERSED */
};

/*
 * One operation, keyed by (gateway_id, request_id): the answer it got (for
 * DUPLICATE) and, for authorizations, the hold and loan book. 128 bytes.
 * An entry is changed or freed only under the lock of user user_id.
 */
struct lim_op {
	uint64_t request_id;
	uint64_t user_id;
	uint32_t gateway_id;
	uint32_t retain_until_s;  /* reclaimable after this */
	/* the answer */
	uint64_t ledger_seq;
	int64_t amount_fen;
	int64_t available_fen;
	int64_t self_cap_left_fen;
	uint32_t hold_expires_s;
	uint16_t risk_score;
	uint16_t funder_id;
	uint8_t op, status, reason, notes;
	uint8_t own_share_pct;
	uint8_t product, terms;
	uint8_t state;            /* enum lim_op_state */
	/* the book of an approved authorization */
	int64_t held_fen;         /* still on hold */
	int64_t captured_fen;     /* became debt */
	int64_t refunded_fen;     /* given back by refunds */
	int64_t funder_fen;       /* bank part still counted against its quota */
	uint32_t created_s;
	uint32_t group_id;
	uint32_t next;            /* store-internal */
	uint32_t pad;
	uint64_t last_seq;        /* ledger seq of the last effect that changed it */
};

struct lim_ops; /* opaque: lock-striped partitions of index + entry pool */

struct lim_ops *lim_ops_create(uint64_t capacity);
void lim_ops_free(struct lim_ops *s);

/**
 * Find (gateway_id, request_id). The pointer stays valid while the caller
 * holds the lock of the entry's user (check op->user_id before relying on
 * it). Any thread.
 */
struct lim_op *lim_ops_find(struct lim_ops *s, uint32_t gateway_id,
			    uint64_t request_id);

#define LIM_OPS_FOREIGN 1            /* the id is another user's operation */
#define LIM_OPS_FOREIGN_TOMBSTONE 2  /* ... a tombstone another user left */

/**
 * Find (gateway_id, request_id) if it belongs to @p user_id, whose lock the
 * caller holds: the entry is then stable until the caller unlocks. If the id
 * exists for another user, returns NULL and sets *foreign to one of
 * LIM_OPS_FOREIGN* (only fields fixed at insertion are read), else 0.
 * Tombstones are the entries with op 0. Any thread.
 */
struct lim_op *lim_ops_find_owned(struct lim_ops *s, uint32_t gateway_id,
				  uint64_t request_id, uint64_t user_id,
				  int *foreign);

/**
 * Prefetch the partition header and index line of (gateway_id, request_id)
 * so that a later find or insert of that key finds them in the cache.
 */
void lim_ops_prefetch(const struct lim_ops *s, uint32_t gateway_id,
		      uint64_t request_id);

/**
 * Second stage, once the index line is in cache: prefetch for writing the
 * entry of (gateway_id, request_id) if it exists (a capture's ref).
 */
void lim_ops_prefetch_entry(const struct lim_ops *s, uint32_t gateway_id,
			    uint64_t request_id);

/**
 * Second stage, once the partition header is in cache: prefetch for writing
 * the pool entry an insert of (gateway_id, request_id) would take next.
 */
void lim_ops_prefetch_insert(const struct lim_ops *s, uint32_t gateway_id,
			     uint64_t request_id);

/**
 * Insert a copy of @p init (its key fields set). Caller holds the lock of
 * init->user_id. Returns the new entry, or NULL with *rc = -EEXIST or
 * -ENOSPC (store full: the caller answers BUSY).
 */
struct lim_op *lim_ops_insert(struct lim_ops *s, const struct lim_op *init,
			      int *rc);

/** Remove @p op. Caller holds the lock of op->user_id. */
void lim_ops_remove(struct lim_ops *s, struct lim_op *op);

/** Visit every live entry; caller keeps the store quiescent (snapshots). */
int lim_ops_foreach(struct lim_ops *s, int (*fn)(struct lim_op *op, void *arg),
		    void *arg);

/**
 * Timer pass: visit at most @p budget entries from where the last pass
 * stopped; for each entry whose retain_until_s, or (state HELD)
 * hold_expires_s, is <= @p now_s, call @p fn with a copy taken under the
 * partition lock. fn runs with no lock held: it takes the user's lock, finds
 * the entry again by key and re-checks before acting. One scanning thread.
 * Returns the number of entries visited.
 */
unsigned lim_ops_scan(struct lim_ops *s, uint32_t now_s, unsigned budget,
		      void (*fn)(const struct lim_op *copy, void *arg),
		      void *arg);

uint64_t lim_ops_count(const struct lim_ops *s);
uint64_t lim_ops_capacity(const struct lim_ops *s);

/* ------------------------------------------------------------------------ */
/* Effects: what a decision changes; also the journal record body            */

enum lim_effect_kind {
	LIM_EFF_NONE = 0,   /* nothing to record (MALFORMED, BUSY, DUPLICATE) */
	LIM_EFF_DECIDE,     /* a decline: keep the answer, no money moves */
	LIM_EFF_AUTH,       /* approved authorize: hold, or debt for cash */
	LIM_EFF_CAPTURE,    /* ref hold -> debt (amount), rest released */
	LIM_EFF_VOID,       /* ref hold released (amount) */
	LIM_EFF_REFUND,     /* ref captured credit given back (amount) */
	LIM_EFF_REPAY,      /* debt repaid (amount) */
	LIM_EFF_TOMBSTONE,  /* void/refund of unknown ref: decline + tombstone */
	LIM_EFF_EXPIRE,     /* timer: ref hold released */
	/* settings (struct lim_cfg_effect): control plane and risk verdicts */
	LIM_EFF_USER_SET,   /* a user's settings (slot fields), or a new user */
	LIM_EFF_EXT_SET,    /* a user's extension record set or removed */
	LIM_EFF_MERCHANT_SET,
	LIM_EFF_GROUP_SET,
	LIM_EFF_FUNDER_SET, /* one funder slot set or removed */
	LIM_EFF_POLICY_PART,/* a chunk of the policy; the last one publishes */
	LIM_EFF_KINDS
};

/*
 * An effect, as decided (auth_decide fills it) and as applied (lim_apply).
 * Deltas are exact; the funder book-keeping is derived by lim_apply from
 * funder_id/own_share_pct and the ref entry so it cannot drift. 128 bytes,
 * the last 4 reserved for the journal's checksum.
 */
struct lim_effect {
	uint64_t seq;              /* ledger sequence, set by lim_apply */
	uint64_t request_id;
	uint64_t user_id;
	uint64_t ref_id;
	uint32_t gateway_id;
	uint32_t now_s;
	int64_t amount_fen;        /* the answer's amount */
	int64_t available_fen;     /* the answer's available */
	int64_t self_cap_left_fen; /* the answer's self_cap_left */
	int64_t d_outstanding_fen;
	int64_t d_holds_fen;
	int64_t d_bucket_fen;      /* cash_fen or inst_fen by product */
	int64_t d_month_fen;       /* user's (and group's) month spend */
	uint32_t group_id;
	uint32_t hold_expires_s;
	uint32_t cool_until_s;     /* new value; 0 = unchanged */
	uint16_t funder_id;
	uint16_t risk_score;
	uint8_t kind;              /* enum lim_effect_kind */
	uint8_t op, product, terms;
	uint8_t status, reason, notes, own_share_pct;
	uint8_t count_spend;       /* 1: count in velocity and stamp spend_min */
	uint8_t pad[3];
	uint32_t check;            /* journal checksum; 0 in memory */
};

/*
 * A change of settings, journaled like a decision so recovery rebuilds the
 * same settings in the same order: the same 128 bytes as struct lim_effect,
 * with seq, kind and check at the same offsets. `uid` says who changed it:
 * the control-plane caller's uid, or LIM_UID_RISK for a risk verdict.
 * A user's settings change under its lock with the seq taken there (like a
 * decision), so per user the journal order is the order of changes.
 */
#define LIM_UID_RISK 0xfffffffeu
#define LIM_POLICY_PART_LEN 84

struct lim_cfg_effect {
	uint64_t seq;
	uint64_t id;               /* user, merchant, group or funder id */
	uint32_t uid;
	uint32_t now_s;
	union {
		struct {           /* LIM_EFF_USER_SET: the slot's settings */
			int64_t limit_fen;
			int64_t self_cap_fen;
			uint32_t cool_until_s;
			uint16_t region;
			uint8_t tier, flags, risk_q, created;
		} user;
		struct lim_user_ext ext;       /* LIM_EFF_EXT_SET (user_id 0: removed) */
		struct lim_merchant merchant;  /* LIM_EFF_MERCHANT_SET */
		struct {                       /* LIM_EFF_GROUP_SET */
			uint32_t group_id;
			uint8_t n_members;
			int64_t budget_fen;
			uint64_t members[LIM_GROUP_MEMBERS_MAX];
		} group;
		struct lim_funder funder;      /* LIM_EFF_FUNDER_SET (quota < 0: removed) */
		struct {                       /* LIM_EFF_POLICY_PART */
			uint16_t part, parts;
			uint8_t bytes[LIM_POLICY_PART_LEN];
		} policy;
		uint8_t raw[88];
	} u;
	uint8_t kind;              /* same offset as lim_effect.kind */
	uint8_t more[11];
	uint32_t check;
};

/* ------------------------------------------------------------------------ */
/* The database: every table of one engine                                    */

struct lim_db_config {
	uint64_t users_max;
	uint64_t ops_max;
	uint64_t merchants_max;
	uint64_t groups_max;
	unsigned shards;           /* budget shards (threads that decide) */
};

struct lim_db {
	struct lim_users *users;
	struct lim_kv *ext;        /* user_id -> struct lim_user_ext */
	struct lim_kv *merchants;  /* merchant_id -> struct lim_merchant */
	struct lim_kv *groups;     /* group_id -> struct lim_group */
	struct lim_ops *ops;
	struct lim_budget *cap;    /* the lending ceiling */
	struct lim_funders *funders;  /* RCU pointer */
	struct lim_policy *policy;    /* RCU pointer */
	uint64_t seq;              /* last ledger sequence handed out (atomic) */
	unsigned shards;
};

/**
 * Fault in the user table and the op store now (both are reserved, not
 * touched, at creation), so no decision ever waits for the kernel to zero a
 * page: ~0.3 s per GB at start instead of seconds of stalls on the first
 * packets. Updater only, before the dataplane starts.
 */
void lim_db_prefault(struct lim_db *db);
void lim_users_prefault(struct lim_users *t);
void lim_ops_prefault(struct lim_ops *s);

/** Create an empty database with the default policy. NULL on failure. */
struct lim_db *lim_db_create(const struct lim_db_config *cfg);
void lim_db_free(struct lim_db *db);

/* Lookups. Call with the QSBR read side online; the record stays valid until
 * the caller's next quiescent state. NULL when absent. */
const struct lim_user_ext *lim_ext_find(struct lim_db *db, uint64_t user_id);
const struct lim_merchant *lim_merchant_find(struct lim_db *db, uint32_t id);
/** Prefetch where lim_merchant_find(db, id) will look (a burst's first pass). */
void lim_merchant_prefetch(struct lim_db *db, uint32_t id);
const struct lim_group *lim_group_find(struct lim_db *db, uint32_t id);
const struct lim_policy *lim_policy_get(struct lim_db *db);
const struct lim_funders *lim_funders_get(struct lim_db *db);

/**
 * Report a quiescent state: rcu_quiescent_state(), plus the happens-before
 * edge ThreadSanitizer cannot see through liburcu in TSan builds. Reader
 * threads call it between bursts (and before going offline or
 * unregistering); every record found before it may be freed after it.
 */
void lim_quiescent_state(void);

/* Updates: copy, publish, free the old record after a grace period.
 * Updater only (serialise calls). 0 or a negative errno. */
int lim_ext_set(struct lim_db *db, const struct lim_user_ext *x);
int lim_ext_del(struct lim_db *db, uint64_t user_id);
int lim_merchant_set(struct lim_db *db, const struct lim_merchant *m);
int lim_group_set(struct lim_db *db, const struct lim_group *g);
int lim_policy_set(struct lim_db *db, const struct lim_policy *p);
int lim_funders_set(struct lim_db *db, const struct lim_funder *f, unsigned n);

/**
 * Apply a decided effect: insert the request's op entry, take or give the
 * ceiling and funder budgets through shard @p shard, change the user's (and
 * group's) balances, update the ref entry, and set e->seq.
 * Call with u's lock held (u may be NULL only for kinds that touch no user)
 * and, when e->group_id != 0, the group's lock. @p ref is the entry named by
 * e->ref_id (NULL when none).
 * Returns 0; -ENOSPC: op store full, nothing applied (answer BUSY);
 * -EAGAIN: a budget was taken by another shard since the decision, nothing
 * applied (decide again); -EEXIST: the request id was inserted concurrently
 * by another user's thread, nothing applied.
 */
int lim_apply(struct lim_db *db, unsigned shard, struct lim_user *u,
	      const struct lim_group *g, struct lim_op *ref,
	      struct lim_effect *e);

/* ------------------------------------------------------------------------ */
/* Files: atomic, durable replacement (limits/file.c)                         */

/*
 * Replace PATH: write PATH.tmp.XXXXXX in the same directory (0600, then
 * @p mode), fsync it, rename it over PATH, fsync the directory. 0 only when
 * all of that succeeded: a failed directory fsync is an error too (the
 * rename might not survive a crash), reported after the rename, so PATH may
 * then already be the new file. Before the rename every failure removes the
 * temporary file. Errors are negative errnos, with the file, the step and
 * the reason in @p err ("x.snap.tmp.Ab12Cd: write: No space left on device").
 */
struct lim_file_tmp {
	int fd;                    /* the temporary file: write here */
	char path[PATH_MAX];       /* what it replaces */
	char tmp[PATH_MAX];
};

/** Write @p buf as the new content of @p path, as above. */
int lim_file_replace(const char *path, const void *buf, size_t len,
		     mode_t mode, char *err, size_t errlen);
/**
 * Start replacing @p path with a file written piece by piece (a snapshot):
 * write through @p t->fd (positioned writes too), then lim_file_tmp_commit()
 * or lim_file_tmp_abort(). 0 or a negative errno with @p err.
 */
int lim_file_tmp_open(struct lim_file_tmp *t, const char *path, mode_t mode,
		      char *err, size_t errlen);
/** fsync, close, rename over the path, fsync the directory (once). */
int lim_file_tmp_commit(struct lim_file_tmp *t, char *err, size_t errlen);
/** Give up: close and remove the temporary file (nothing when committed). */
void lim_file_tmp_abort(struct lim_file_tmp *t);
/** Rename @p from to @p to and fsync @p to's directory (publish a file). */
int lim_file_rename(const char *from, const char *to, char *err,
		    size_t errlen);
/** fsync directory @p dir (after a create, rename or unlink in it). */
int lim_fsync_dir(const char *dir, char *err, size_t errlen);
/**
 * Write all @p len bytes to @p fd (at @p at when @p positioned), through
 * short writes and EINTR. 0, a negative errno, or -EIO when nothing moves.
 */
int lim_write_full(int fd, const void *buf, size_t len, off_t at,
		   bool positioned);

/* ------------------------------------------------------------------------ */
/* Snapshots and imports                                                      */

/*
 * Snapshots are taken while the dataplane runs (no stop): each user is
 * copied under its lock together with the ledger seq at that moment (its
 * stamp), each op entry under its user's lock (entries carry last_seq), each
 * group's state under the group lock with its stamp. Recovery redoes a
 * journal effect with seq > seq_start onto a user only if seq > the user's
 * stamp, onto an entry only if seq > its last_seq, onto a group only if seq >
 * its stamp; effects with seq <= seq_start are in the snapshot already.
 * Budgets (ceiling, funder quotas) are not saved: they are derived on load
 * from the balances and the entries.
 */
struct lim_snapshot_meta {
	uint64_t seq_start;        /* db->seq when the save began */
	uint64_t seq_end;          /* db->seq when it ended */
	uint32_t created_s;
	uint64_t users;
	uint32_t *user_stamp;      /* [users] by slot: stamp - seq_start */
	uint64_t groups;
	uint32_t *group_id;        /* [groups] */
	uint32_t *group_stamp;     /* [groups]: stamp - seq_start */
};

void lim_snapshot_meta_free(struct lim_snapshot_meta *m);

/**
 * Write every table of @p db to @p path (versioned, sectioned, checksummed;
 * written to a temporary file in the same directory, fsynced, renamed, the
 * directory fsynced), consistently per record as described above, without
 * stopping the dataplane. Call from one updater thread with the QSBR read
 * side online. 0 or negative errno; @p err says why.
 */
int lim_snapshot_save(struct lim_db *db, const char *path, char *err,
		      size_t errlen);

/**
 * Load a snapshot into a new database sized by @p extra (0 fields: from the
 * file, with headroom). @p progress (may be NULL) is called now and then with
 * users loaded so far. @p meta (may be NULL) receives what recovery needs.
 * A damaged or truncated file is refused with the byte offset and the reason
 * in @p err. NULL on failure.
 */
struct lim_db *lim_snapshot_load(const char *path,
				 const struct lim_db_config *extra,
				 void (*progress)(uint64_t done, uint64_t total),
				 struct lim_snapshot_meta *meta, char *err,
				 size_t errlen);

/* ------------------------------------------------------------------------ */
/* Snapshot inspection (authdb info; docs/snapshot-format.md)                 */

#define LIM_SNAP_SECTIONS_MAX 16

struct lim_snapshot_section {
	uint32_t type;             /* LIM_SNAP_* in docs/snapshot-format.md */
	uint32_t record_size;
	uint64_t count;
	uint64_t offset;
	uint64_t length;
	uint64_t checksum;         /* xxh3-64 of the payload, as recorded */
	const char *name;          /* static string */
};

struct lim_snapshot_info {
	uint32_t version;
	uint32_t header_len;
	uint64_t created_s;
	uint64_t seq_start, seq_end;
	uint64_t file_bytes;
	uint32_t shards;           /* budget shards of the engine that saved */
	unsigned n_sections;
	struct lim_snapshot_section sec[LIM_SNAP_SECTIONS_MAX];
};

/**
 * Read the header and section table of @p path and verify every checksum
 * (header, section table, each section's payload), without loading any
 * record. 0, or a negative errno with the byte offset and the reason in
 * @p err (as lim_snapshot_load()).
 */
int lim_snapshot_inspect(const char *path, struct lim_snapshot_info *info,
			 char *err, size_t errlen);

/* ------------------------------------------------------------------------ */
/* Text: numbers, money, times (limits/text.c)                                */

/*
 * One syntax for each kind of value, wherever it is read (the control
 * protocol, CSV files, command lines, the config file, the journal's and
 * the export's own files), and one way of writing it:
 *
 *   whole number  decimal digits only: no sign, no blank, no base prefix,
 *                 no separator; leading zeros allowed ("007")
 *   count         a whole number, optionally followed by k or K (x 1000),
 *                 M (x 10^6) or G (x 10^9): "10M"
 *   hex           1 to 16 hexadecimal digits, either case, no "0x"
 *   yuan          digits, optionally '.' and one or two digits: "5000",
 *                 "5000.5", "5000.50" (not ".5", "5000.", "5e3", "+5")
 *   amount        yuan, or a whole number of fen and "fen": "500050fen"
 *   time          unix seconds 0 .. 4294967295, or ISO 8601 in UTC:
 *                 YYYY-MM-DD (midnight), or YYYY-MM-DDTHH:MM[:SS] then Z
 *                 or +00:00; from 1970-01-01 to 2106-02-07T06:28:15Z
 *
 * Parsers return 0 with the value, or a negative errno and leave the output
 * alone: -EINVAL, not of the syntax (or not a calendar date); -ERANGE, of
 * the syntax but outside the bounds (a number past @p max or past 2^64, an
 * amount above LIM_MONEY_MAX, a time outside uint32_t seconds); -EDOM, yuan
 * with more than two decimals (finer than a fen). Those taking @p err write
 * the reason there, for an operator ("more than 2 decimal places ..."); a
 * caller with its own wording chooses it by the return value.
 */
#define LIM_TEXT_LEN 32 /* holds what any lim_fmt_*() writes, NUL included */

/** A whole number of at most @p max (see "Text" above for the syntax). */
int lim_parse_u64(const char *s, uint64_t max, uint64_t *out);
/** The same for exactly the @p len bytes at @p s (not NUL-terminated). */
int lim_parse_u64_span(const char *s, size_t len, uint64_t max,
		       uint64_t *out);
/** A count: a whole number with an optional k/K/M/G suffix, <= @p max. */
int lim_parse_count(const char *s, uint64_t max, uint64_t *out);
/** 1 to 16 hexadecimal digits (a journal id); more is -ERANGE. */
int lim_parse_x64(const char *s, uint64_t *out);
/** Yuan with at most two decimals, exactly, into 0 ..= LIM_MONEY_MAX fen. */
int lim_parse_yuan(const char *s, int64_t *fen, char *err, size_t errlen);
/** An amount: yuan as lim_parse_yuan(), or whole fen with "fen" after. */
int lim_parse_amount(const char *s, int64_t *fen, char *err, size_t errlen);
/**
 * @p fen as yuan with exactly two decimals and a '-' when negative
 * ("-12.34", "0.05"): what lim_parse_yuan() reads back, for fen >= 0.
 * Returns @p buf.
 */
const char *lim_fmt_yuan(int64_t fen, char *buf, size_t n);

/** A time (unix seconds or ISO 8601 UTC, see above) into unix seconds. */
int lim_parse_time(const char *s, uint32_t *out, char *err, size_t errlen);
/** "2026-11-25T08:00:00Z": always 20 characters. Returns @p buf. */
const char *lim_fmt_time(uint32_t t, char *buf, size_t n);

/** Days from 1970-01-01 to civil date @p y-@p m-@p d (may be negative). */
int64_t lim_days_from_civil(int64_t y, unsigned m, unsigned d);
/** Days in month @p m (1..12) of year @p y; 0 for another @p m. */
unsigned lim_month_days(int64_t y, unsigned m);

/* ------------------------------------------------------------------------ */
/* CSV import (limits/csv.c; the columns are in docs/snapshot-format.md)      */

/**
 * Import the users of CSV file @p path into @p db: a header line naming the
 * columns (any order), one user per line. Users with a temporary quota, a
 * cash-limit or an alert override get a struct lim_user_ext and
 * LIM_USER_EXT. Imported debt (outstanding_fen) is taken from the lending
 * ceiling. A failure part-way leaves the users of the lines before it in
 * @p db: import into a fresh database and drop it on error. Updater only,
 * QSBR read side online.
 * @param n    users imported (may be NULL)
 * @return 0 or a negative errno; @p err names file:line, the column and why.
 */
int lim_csv_import_users(struct lim_db *db, const char *path, uint64_t *n,
			 char *err, size_t errlen);
/** Merchants CSV (merchant_id, mcc, region, blocked, subsidy, risk). */
int lim_csv_import_merchants(struct lim_db *db, const char *path, uint64_t *n,
			     char *err, size_t errlen);
/** The same from memory; @p name is used in messages (fuzzing, tests). */
int lim_csv_users_buf(struct lim_db *db, const char *name, const char *buf,
		      size_t len, uint64_t *n, char *err, size_t errlen);
int lim_csv_merchants_buf(struct lim_db *db, const char *name,
			  const char *buf, size_t len, uint64_t *n, char *err,
			  size_t errlen);

/* ------------------------------------------------------------------------ */
/* Synthetic base generator (limits/gen.c; deterministic from a seed)         */

struct lim_gen_config {
	uint64_t seed;
	uint64_t users;            /* 1 .. UINT32_MAX */
	uint64_t merchants;        /* 0: users / 10, at least 100 */
	uint32_t now_s;            /* temporary quotas run 30 days from here */
};

/**
 * The id of user @p index (0 .. users-1) of the base made from @p seed: a
 * seeded permutation of 1 .. 2^63-1, so ids are unique, non-zero, spread
 * over the whole range and fit a signed 64-bit column. A load generator
 * enumerates the same ids from the seed.
 */
uint64_t lim_gen_user_id(uint64_t seed, uint64_t index);
/** The id of merchant @p index: a seeded permutation of 1 .. 2^31-1. */
uint32_t lim_gen_merchant_id(uint64_t seed, uint64_t index);
/** The merchants a config asks for (its default applied). */
uint64_t lim_gen_merchants(const struct lim_gen_config *cfg);

/**
 * Fill an empty @p db (users_max >= cfg->users) with the synthetic base of
 * @p cfg: users (with extensions), merchants, groups, the funder table. All
 * balances are zero. @p progress (may be NULL) is called every ~1 M users.
 * Updater only, QSBR read side online. 0 or a negative errno with @p err.
 */
int lim_gen_fill(struct lim_db *db, const struct lim_gen_config *cfg,
		 void (*progress)(uint64_t done, uint64_t total), char *err,
		 size_t errlen);

/* ------------------------------------------------------------------------ */
/* Settings effects and the journal redo (limits/redo.c)                    */

/**
 * Take the next ledger sequence for a settings effect (struct
 * lim_cfg_effect): a user's settings change under its lock, the seq taken
 * there, like lim_apply() does for a decision. Whoever takes a seq MUST hand
 * the record to the ledger (dp_ledger_submit): the ledger writes seqs
 * without gaps and stops the engine when one never arrives.
 * A USER_SET record carries every setting of the slot after the change
 * (limit, self cap, cool-off, region, tier, flags, risk), so redoing it
 * sets them all; the other kinds carry the whole record they publish.
 */
static inline uint64_t
lim_seq_take(struct lim_db *db)
{
	return __atomic_add_fetch(&db->seq, 1, __ATOMIC_RELAXED);
}

/**
 * Fill @p c with the USER_SET record of user @p u's settings as they are
 * now (read under its lock), at @p seq, changed by @p uid at @p now_s;
 * @p created when the change added the user.
 */
static inline void
lim_cfg_user_set(struct lim_cfg_effect *c, uint64_t seq,
		 const struct lim_user *u, uint32_t uid, uint32_t now_s,
		 bool created)
{
	memset(c, 0, sizeof(*c));
	c->seq = seq;
	c->id = u->user_id;
	c->uid = uid;
	c->now_s = now_s;
	c->kind = LIM_EFF_USER_SET;
	c->u.user.limit_fen = u->limit_fen;
	c->u.user.self_cap_fen = u->self_cap_fen;
	c->u.user.cool_until_s = u->cool_until_s;
	c->u.user.region = u->region;
	c->u.user.tier = u->tier;
	c->u.user.flags = u->flags;
	c->u.user.risk_q = u->risk_q;
	c->u.user.created = created;
}

/* What a redo did, for the start-up report and the tests. */
struct lim_redo_stats {
	uint64_t records;
	uint64_t by_kind[LIM_EFF_KINDS];
	uint64_t user_applied;     /* seq > the user's snapshot stamp */
	uint64_t user_in_snapshot; /* seq <= stamp: already in the copy */
	uint64_t entry_inserted;
	uint64_t entry_in_snapshot;/* present with last_seq >= seq */
	uint64_t entry_replaced;   /* an older entry with the same key, which
				    * the live engine had reclaimed */
	uint64_t ref_applied;
	uint64_t ref_in_snapshot;
	uint64_t group_applied;
	uint64_t group_in_snapshot;
	uint64_t users_created;
	uint64_t settings_applied;
	/* anomalies: reported at start, never silently ignored */
	uint64_t unknown_user;     /* a record names a user the db lacks */
	uint64_t missing_ref;      /* a ref entry the db lacks */
	uint64_t budget_short;     /* a budget take that did not fit */
	uint64_t settings_failed;  /* a settings record the db refused */
};

struct lim_redo; /* opaque: stamps index, policy parts being assembled */

/**
 * Start redoing journal records onto @p db, loaded from a snapshot whose
 * @p meta says what it holds (NULL: an empty db, redo from seq 1).
 * Budgets move through shard @p shard (a shard no other thread uses).
 * Call from a registered QSBR thread, online; @p db not shared yet.
 * NULL on allocation failure.
 */
struct lim_redo *lim_redo_create(struct lim_db *db,
				 const struct lim_snapshot_meta *meta,
				 unsigned shard);

/**
 * Apply one journal record (struct lim_effect or lim_cfg_effect by kind)
 * without deciding: a user's deltas only if seq > the user's stamp, the
 * request's op entry inserted if absent (replacing an older entry of the
 * same key), a ref entry updated only if seq > its last_seq, a group's
 * month only if seq > the group's stamp, settings set; db->seq := seq.
 * Budgets are released at lim_redo_create() and derived again by
 * lim_redo_finish() (redo.c says why).
 * Records must come in contiguous seq order from meta->seq_start + 1.
 * @return 0; -ERANGE (not the next seq); -EINVAL (kind out of range);
 *         -EBADMSG (the record contradicts the state: a balance would go
 *         negative or an entry is another user's: the snapshot and the
 *         journal do not belong together); @p err says which and why.
 */
int lim_redo(struct lim_redo *r, const struct lim_effect *e, char *err,
	     size_t errlen);

/** The next seq lim_redo() expects. */
uint64_t lim_redo_next_seq(const struct lim_redo *r);

/**
 * End a redo (once): take the budgets again as the state says they are
 * used (the ceiling: the users' debt and holds; each funder's quota: its
 * part of the live loans), as snapshot load does. Returns the stats in
 * @p st; 0, or -EBADMSG with @p err when that exceeds a ceiling or quota.
 */
int lim_redo_finish(struct lim_redo *r, struct lim_redo_stats *st,
		    char *err, size_t errlen);

void lim_redo_free(struct lim_redo *r);

#endif /* LIM_H */
