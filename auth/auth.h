/*
 * auth.h - the authorization wire protocol (shared/docs/protocol.md, v1), its
 * MAC and replay window, and the decision function.
 *
 * Three layers, each usable alone:
 *  - codec: parse and validate a datagram in place, write the answer in place;
 *  - auth_decide(): pure; one request record plus the state it reads in, the
 *    answer plus an effect (struct lim_effect) out; no I/O, clock or globals;
 *  - auth_exec_one(): the per-record driver used by the dataplane and the
 *    tests: looks the state up, locks the user, decides, applies the effect.
 */
#ifndef AUTH_H
#define AUTH_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "lim.h"

/* ------------------------------------------------------------------------ */
/* Wire format (little-endian; this code targets little-endian hosts only)    */

#define AUTH_UDP_PORT 7711
#define AUTH_MAGIC 0xA17D
#define AUTH_VERSION 1
#define AUTH_TYPE_REQUEST 1
#define AUTH_TYPE_RESPONSE 2
#define AUTH_RECORDS_MAX 16
#define AUTH_HDR_LEN 32
#define AUTH_REC_LEN 64
#define AUTH_TAG_LEN 16
#define AUTH_KEY_LEN 16
#define AUTH_DGRAM_LEN(n) (AUTH_HDR_LEN + (n) * AUTH_REC_LEN + AUTH_TAG_LEN)
#define AUTH_DGRAM_MIN AUTH_DGRAM_LEN(1)
#define AUTH_DGRAM_MAX AUTH_DGRAM_LEN(AUTH_RECORDS_MAX)
#define AUTH_REPLAY_WINDOW 1024

/*
 * Wire structs are read and written in place in received frames, where the
 * UDP payload sits at an even but not 8-aligned offset (Ethernet 14 + IPv4
 * 20 + UDP 8, +4 with a VLAN tag). Packed with 2-byte alignment, the compiler
 * emits loads that are valid at any even address (plain moves on x86).
 */
#define AUTH_WIRE __attribute__((packed, aligned(2)))

struct auth_hdr {
	uint16_t magic;
	uint8_t version;
	uint8_t type;
	uint16_t count;
	uint16_t stream;
	uint32_t gateway_id;
	uint32_t key_id;
	uint64_t seq;
	uint64_t sent_ns;
} AUTH_WIRE;
struct auth_req {
	uint64_t request_id;
	uint64_t user_id;
	uint64_t ref_id;
	int64_t amount;
	uint32_t merchant_id;
	uint32_t group_id;
	uint16_t mcc;
	uint16_t region;
	uint8_t op;
	uint8_t product;
	uint8_t terms;
	uint8_t channel;
	uint64_t device_id;
	uint32_t reserved0;
	uint32_t reserved1;
} AUTH_WIRE;
struct auth_resp {
	uint64_t request_id;
	uint64_t user_id;
	uint64_t ledger_seq;
	int64_t amount;
	int64_t available;
	uint32_t hold_expires;
	uint8_t op;
	uint8_t status;
	uint8_t reason;
	uint8_t notes;
	uint16_t funder_id;
	uint8_t own_share_pct;
	uint8_t reserved;
	uint32_t risk_score;
	int64_t self_cap_left;
} AUTH_WIRE;
enum auth_status {
	AUTH_STATUS_APPROVED = 0,
	AUTH_STATUS_DECLINED = 1,
	AUTH_STATUS_ERROR = 2,
};

enum auth_channel {
	AUTH_CHANNEL_ONLINE = 1,
	AUTH_CHANNEL_QR = 2,
	AUTH_CHANNEL_APP = 3,
};

/* Reason codes: code, name. */
#define AUTH_FOREACH_REASON(_)                                                 \
	_(0, APPROVED)                                                         \
	_(1, INSUFFICIENT_LIMIT)                                               \
	_(2, OVER_SELF_CAP)                                                    \
	_(3, CASH_LIMIT)                                                       \
	_(4, COOLING_OFF)                                                      \
	_(5, USER_FROZEN)                                                      \
	_(6, UNKNOWN_USER)                                                     \
	_(7, MERCHANT_BLOCKED)                                                 \
	_(8, RISK_VELOCITY)                                                    \
	_(9, RISK_TIER)                                                        \
	_(10, TERM_INVALID)                                                    \
	_(11, GROUP_LIMIT)                                                     \
	_(12, GLOBAL_CAP)                                                      \
	_(13, NO_FUNDER)                                                       \
	_(14, UNKNOWN_REF)                                                     \
	_(15, BAD_STATE)                                                       \
	_(16, REVERSED)                                                        \
	_(17, MALFORMED)                                                       \
	_(18, BUSY)                                                            \
	_(19, RISK_CASHOUT)                                                    \
	_(20, UNKNOWN_GROUP)

enum auth_reason {
#define AUTH_REASON_ENUM(code, name) AUTH_REASON_##name = code,
	AUTH_FOREACH_REASON(AUTH_REASON_ENUM)
#undef AUTH_REASON_ENUM
	AUTH_REASONS
};

/** "INSUFFICIENT_LIMIT" for 1, "?" for a code out of range. */
const char *auth_reason_name(unsigned reason);

/* Notes bits. */
#define AUTH_NOTE_LARGE_SPEND 0x01
#define AUTH_NOTE_LOW_AVAILABLE 0x02
#define AUTH_NOTE_OVER_SELF_CAP_SOFT 0x04
#define AUTH_NOTE_TEMP_QUOTA_USED 0x08
#define AUTH_NOTE_DUPLICATE 0x10
#define AUTH_NOTE_INTEREST_FREE 0x20

/* Why a datagram is dropped without an answer: cause, name, text. */
#define AUTH_FOREACH_DROP(_)                                                   \
	_(SHORT, "short", "shorter than a header, one record and a tag")      \
	_(MAGIC, "magic", "magic is not 0xA17D")                               \
	_(VERSION, "version", "version is not 1")                              \
	_(TYPE, "type", "type is not request")                                 \
	_(COUNT, "count", "record count not in 1..16")                         \
	_(LENGTH, "length", "length does not match the record count")          \
	_(GATEWAY, "gateway", "unknown gateway")                               \
	_(KEY, "key", "unknown key id for the gateway")                        \
	_(SOURCE, "source", "source address not allowed for the gateway")      \
	_(TAG, "tag", "authentication tag does not verify")                    \
	_(REPLAY, "replay", "seq already seen")                                \
	_(STALE, "stale", "seq older than the replay window")                  \
	_(STREAMS, "streams", "replay table full: too many streams")

enum auth_drop {
	AUTH_DROP_NONE = 0,
#define AUTH_DROP_ENUM(cause, name, text) AUTH_DROP_##cause,
	AUTH_FOREACH_DROP(AUTH_DROP_ENUM)
#undef AUTH_DROP_ENUM
	AUTH_DROPS
};

/** Short name ("tag") and one-line text of a drop cause. */
const char *auth_drop_name(enum auth_drop d);
const char *auth_drop_text(enum auth_drop d);

/*
 * Operations and products as counters and metrics name them: code (the
 * wire's, limits/lim.h's enum lim_opcode and enum lim_product), name. Code
 * 0 is none of them (a record out of range: MALFORMED); AUTH_OPS and
 * AUTH_PRODUCTS size tables indexed by code.
 */
#define AUTH_FOREACH_OP(_)                                                     \
	_(1, AUTHORIZE, "authorize")                                           \
	_(2, CAPTURE, "capture")                                               \
	_(3, VOID, "void")                                                     \
	_(4, REFUND, "refund")                                                 \
	_(5, REPAY, "repay")

#define AUTH_FOREACH_PRODUCT(_)                                                \
	_(1, PAYLATER, "paylater")                                             \
	_(2, INSTALLMENT, "installment")                                       \
	_(3, CASH, "cash")

enum auth_op {
	AUTH_OP_OTHER = 0,
#define AUTH_OP_ENUM(code, sym, name) AUTH_OP_##sym = code,
	AUTH_FOREACH_OP(AUTH_OP_ENUM)
#undef AUTH_OP_ENUM
	AUTH_OPS
};

enum auth_product {
	AUTH_PRODUCT_OTHER = 0,
#define AUTH_PRODUCT_ENUM(code, sym, name) AUTH_PRODUCT_##sym = code,
	AUTH_FOREACH_PRODUCT(AUTH_PRODUCT_ENUM)
#undef AUTH_PRODUCT_ENUM
	AUTH_PRODUCTS
};

/** "authorize" for 1, ..., "other" for 0 or a code out of range. */
const char *auth_op_name(unsigned op);
/** "paylater", "installment", "cash"; "other" for 0 or out of range. */
const char *auth_product_name(unsigned product);

/* ------------------------------------------------------------------------ */
/* Keys: the gateways' keys, immutable once built, swapped through RCU        */

#define AUTH_KEYS_PER_GATEWAY 2
#define AUTH_SOURCES_MAX 8

struct auth_key {
	uint32_t key_id;
	uint8_t key[AUTH_KEY_LEN];
};

struct auth_gateway {
	uint32_t gateway_id;
	unsigned n_keys;                 /* 1 or 2: rotation */
	struct auth_key keys[AUTH_KEYS_PER_GATEWAY];
	unsigned n_sources;              /* 0 = any source address */
	uint32_t source_ip[AUTH_SOURCES_MAX];   /* host byte order */
	uint32_t source_mask[AUTH_SOURCES_MAX]; /* host byte order */
};

struct auth_keyring; /* opaque, immutable */

/** Build a keyring from @p n gateways (copied). NULL on bad input or ENOMEM. */
struct auth_keyring *auth_keyring_create(const struct auth_gateway *gws,
					 unsigned n);
void auth_keyring_free(struct auth_keyring *kr);
unsigned auth_keyring_count(const struct auth_keyring *kr);
const struct auth_gateway *auth_keyring_at(const struct auth_keyring *kr,
					   unsigned i);
/** The gateway, or NULL. */
const struct auth_gateway *auth_keyring_find(const struct auth_keyring *kr,
					     uint32_t gateway_id);

/**
 * Load a keys file (INI: one [gateway N] section per gateway with key.ID =
 * 32 hex digits and optional allow = CIDR list). Refuses a file readable by
 * group or others. On error returns NULL and says file, line and reason in
 * @p err.
 */
struct auth_keyring *auth_keyring_load(const char *path, char *err,
				       size_t errlen);

/**
 * Whether @p gw accepts datagrams from @p src_ip (host byte order): true when
 * it has no allow list, else when one of its ranges holds the address.
 * Pure, any thread.
 */
static inline bool
auth_gateway_allows(const struct auth_gateway *gw, uint32_t src_ip)
{
	bool ok = gw->n_sources == 0;

	for (unsigned i = 0; i < gw->n_sources && i < AUTH_SOURCES_MAX; i++)
		ok |= (src_ip & gw->source_mask[i]) == gw->source_ip[i];
	return ok;
}

/* ------------------------------------------------------------------------ */
/* Replay windows per (gateway, stream); shared by every dataplane thread     */

struct auth_replay; /* opaque */

/** A table for up to @p streams (gateway, stream) windows. NULL on ENOMEM. */
struct auth_replay *auth_replay_create(unsigned streams);
void auth_replay_free(struct auth_replay *r);

/**
 * Accept @p seq for (gateway, stream) once: AUTH_DROP_NONE the first time,
 * AUTH_DROP_REPLAY when seen, AUTH_DROP_STALE when older than the window,
 * AUTH_DROP_STREAMS when a new stream does not fit. Any thread.
 */
enum auth_drop auth_replay_check(struct auth_replay *r, uint32_t gateway_id,
				 uint16_t stream, uint64_t seq);

/* ------------------------------------------------------------------------ */
/* Codec                                                                      */

/* A datagram validated in place. */
struct auth_dgram {
	struct auth_hdr *hdr;
	struct auth_req *rec;             /* hdr->count records */
	unsigned count;
	const struct auth_key *key;       /* the key that verified the tag */
};

/**
 * Validate a request datagram of @p len bytes at @p buf: header, length,
 * gateway, key, source address (@p src_ip, host order), tag, replay window,
 * in that order, so that the window only moves for authentic datagrams.
 * Fills @p d and returns AUTH_DROP_NONE, or the cause of the drop.
 * Records are not checked here: see auth_req_check().
 * @p buf must be 2-byte aligned (d->hdr and d->rec point into it). @p rp may
 * be NULL to skip the replay window (clients, tools, fuzzing; never the
 * dataplane). No allocation, no system call; any thread.
 */
enum auth_drop auth_dgram_parse(uint8_t *buf, uint32_t len,
				const struct auth_keyring *kr,
				struct auth_replay *rp, uint32_t src_ip,
				struct auth_dgram *d);

/** Header checks only (no key, tag or replay); for batching and tests. */
enum auth_drop auth_dgram_check_header(const uint8_t *buf, uint32_t len);

/** AUTH_REASON_APPROVED when a record is well-formed, else MALFORMED. */
enum auth_reason auth_req_check(const struct auth_req *r);

/**
 * Turn a parsed request into its response in place: type := response, the
 * records already overwritten by the caller, tag computed with d->key.
 * Returns the datagram length (unchanged).
 */
uint32_t auth_dgram_finish(struct auth_dgram *d);

/** Compute the tag of @p len bytes with @p key into @p tag. */
void auth_tag(const uint8_t *buf, uint32_t len,
	      const uint8_t key[AUTH_KEY_LEN], uint8_t tag[AUTH_TAG_LEN]);

/**
 * Build a request datagram (for clients, authgen and tests): header fields
 * from @p h (magic, version, type and count are set here), @p n records,
 * tag with @p key. Returns its length, or 0 if @p cap is too small or n is
 * out of range.
 */
uint32_t auth_dgram_build(uint8_t *buf, uint32_t cap, const struct auth_hdr *h,
			  const struct auth_req *recs, unsigned n,
			  const uint8_t key[AUTH_KEY_LEN]);

/**
 * Check a response datagram (for clients): header, length and tag with
 * @p key. AUTH_DROP_NONE or the cause.
 */
enum auth_drop auth_resp_verify(const uint8_t *buf, uint32_t len,
				const uint8_t key[AUTH_KEY_LEN]);

/* ------------------------------------------------------------------------ */
/* Decision                                                                   */

/* "Now", computed once per burst by the caller. */
struct auth_now {
	uint32_t s;              /* unix seconds */
	uint32_t minute;         /* s / 60 */
	uint32_t day_start_s;    /* today's start in the policy's time zone */
	uint32_t month_start_s;  /* this month's start in the policy's time zone */
};

void auth_now_set(struct auth_now *n, uint32_t unix_s, int32_t tz_offset_s);

struct auth_in {
	const struct auth_req *req;          /* a record auth_req_check() passed */
	uint32_t gateway_id;
	const struct auth_now *now;
	const struct lim_policy *policy;
	const struct lim_user *user;         /* NULL: unknown; caller holds its lock */
	const struct lim_user_ext *ext;      /* NULL: none */
	const struct lim_merchant *merchant; /* NULL: unknown or none */
	const struct lim_group *group;       /* NULL: none or unknown */
	const struct lim_op *dup;            /* entry of (gateway, request_id) */
	const struct lim_op *ref;            /* entry of (gateway, ref_id) */
	const struct lim_funders *funders;   /* quotas read through shard */
	const struct lim_budget *cap;        /* lending ceiling, read through shard */
	unsigned shard;                      /* the caller's budget shard */
};

struct auth_out {
	struct auth_resp resp;   /* the answer, ledger_seq still 0 */
	struct lim_effect eff;   /* kind LIM_EFF_NONE when nothing is recorded */
};

/**
 * Decide one record. Pure: reads only what @p in points to (the budgets
 * through lim_budget_room()), writes only @p out; no allocation, no system
 * call, no clock. The rules, their order and reason codes are
 * listed in docs/rules.md.
 */
void auth_decide(const struct auth_in *in, struct auth_out *out);

/**
 * The effect of a lapsed hold: release it and give back its month spend.
 * Pure, like auth_decide(); the caller holds the user's lock. Returns false
 * (and records nothing) unless @p ref is a hold of @p u that has lapsed.
 */
bool auth_expire(const struct lim_op *ref, const struct lim_user *u,
		 const struct auth_now *now, struct lim_effect *e);

/** Available credit of @p u at @p now_s: limit + live temp quota - debt - holds. */
int64_t auth_available(const struct lim_user *u, const struct lim_user_ext *x,
		       uint32_t now_s);

/* ------------------------------------------------------------------------ */
/* Execution: decide and apply one record against a database                 */

/* What auth_exec_one() did with a record, for counters. */
enum auth_exec_rc {
	AUTH_EXEC_ANSWERED = 0,  /* answer only (MALFORMED, BUSY, DUPLICATE) */
	AUTH_EXEC_RECORDED,      /* an effect was applied; see *eff */
};

struct auth_exec {
	struct lim_db *db;
	unsigned shard;          /* this thread's budget shard */
	struct auth_now now;
};

/**
 * Answer @p req without deciding it (BUSY when the engine sheds load,
 * MALFORMED): ids and op echoed, nothing granted, self_cap_left -1.
 * @p resp may alias @p req.
 */
void auth_answer_only(const struct auth_req *req, struct auth_resp *resp,
		      enum auth_status status, enum auth_reason reason);

/**
 * Decide @p req from gateway @p gateway_id and apply its effect. Writes the
 * answer to @p resp (may alias @p req: the request is read first) and, when
 * something was recorded, the applied effect (with its seq) to @p eff for the
 * journal. Call with the QSBR read side online.
 */
enum auth_exec_rc auth_exec_one(struct auth_exec *x, uint32_t gateway_id,
				const struct auth_req *req,
				struct lim_user *user, struct auth_resp *resp,
				struct lim_effect *eff);

#endif /* AUTH_H */
