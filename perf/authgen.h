/*
 * authgen.h - the load generator's shared declarations (private to perf/).
 *
 * authgen is a DPDK process that plays one payment gateway: it sends
 * protocol-v1 request datagrams to authd over a port, receives the answers,
 * verifies every one (tag, header echo, ids in order) and measures latency
 * from the sent_ns that authd echoes. Files:
 *
 *   authgen.c         main: EAL, keys, port, ARP, launch, shutdown
 *   authgen_opts.c    options, --help, the configuration as JSON
 *   authgen_load.c    the workload: ids, ops mix, products, amounts, the
 *                     bounded table of approved authorizations that
 *                     captures, voids, refunds and repayments name, faults
 *   authgen_io.c      one worker lcore: pacing (open loop) or window
 *                     (closed loop), TX, RX, answer checks, injections
 *   authgen_model.c   --check-model: the same records through auth_exec_one
 *                     on a local copy of the snapshot, answers compared
 *   authgen_report.c  counters, progress lines, the report, JSON,
 *                     per-second samples, --plot (gnuplot, authgen_plot.gp)
 *   authgen_dist.c    user and merchant popularity: uniform, Zipf
 *                     (rejection-inversion sampling)
 *   authgen_profile.c --profile double11 (ramp, installments, hot merchants)
 *                     and cashout (a scripted cash-out attack)
 *   authgen_pcap.c    --record (a pcap of what was sent and received) and
 *                     --replay (a pcap sent again, answers verified)
 *
 * Threads: every EAL lcore is a worker with its own TX/RX queue pair, its
 * own streams (stream s belongs to worker s % workers), its own workload
 * state, in-flight table, counters and histogram, so workers share nothing
 * but the read-only configuration. The first worker also prints progress
 * (reading the others' counters with relaxed atomic loads). The first
 * version is tested with one lcore; the split is there so more lcores and
 * queues need no new structure. What several workers still need: the
 * answers to worker w's streams must come back on queue w. A NIC's RSS (or
 * af_packet's fanout) hashes authd's answers wherever it likes, so either
 * steer them (rte_flow on the destination UDP port, src_port + s) or hand an
 * answer for another worker's stream to its owner over a ring; today a
 * worker counts such an answer as unexpected (worker w's seq_base is
 * offset by w << 32, so it never matches a slot of the wrong worker).
 *
 * Sequence numbers: a worker numbers its datagrams g = 0, 1, 2, ... and
 * sends datagram g with seq = seq_base + g on one of its streams. So seqs
 * grow strictly per stream, a fresh run (seq_base = wall clock ns at start)
 * is never taken for a replay by an authd that saw an earlier run, and an
 * answer's seq gives back g, hence the in-flight slot g % inflight, with no
 * lookup.
 */
#ifndef AUTHGEN_H
#define AUTHGEN_H

#include <limits.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

#include <rte_common.h>
#include <rte_ether.h>

#include "auth.h"
#include "hist.h"
#include "lim.h"
#include "nic.h"

#define GEN_LCORES_MAX 16
#define GEN_STREAMS_MAX 4096
#define GEN_BURST 32                 /* TX and RX burst */
#define GEN_INFLIGHT_DEFAULT 4096    /* datagrams in flight per worker */
#define GEN_INFLIGHT_MAX (1u << 20)
#define GEN_REMEMBER_DEFAULT 65536   /* approved authorizations kept */
#define GEN_AMOUNTS_TABLE 16384      /* amount distribution, sampled */
#define GEN_RECENT 1024              /* records kept for duplicates */
#define GEN_PENDING 1024             /* ids named by early reversals */
#define GEN_MISMATCH_PRINT 20        /* model mismatches printed in full */
#define GEN_SRC_PORT_DEFAULT 40000   /* stream s sends from this + s */
#ifndef GEN_SAMPLES_MAX
#define GEN_SAMPLES_MAX 4096         /* per-second samples kept (then merged) */
#endif
#define GEN_HOT_MAX 64               /* double11: hot merchants */
#define GEN_COLLUDERS 4              /* cashout: colluding merchants */
#define GEN_CROWD 5                  /* cashout: users sharing one device */
#define GEN_ATTACK_SLICE_MAX 65536   /* cashout: users set aside for it */
#define GEN_AGAIN_MAX 4096           /* cashout: second payments waiting */
#define GEN_AGAIN_DELAY_MS 50        /* ... this long after the first */
#define GEN_FRAME_MAX 1536           /* a frame we record or replay */

/* Operations as on the wire (1..5), index 0 unused. */
#define GEN_OPS 6
/* Products as on the wire (1..3), index 0 unused. */
#define GEN_PRODUCTS 4

/*
 * Crafted bad datagrams (--inject): name (as auth_drop_name), the authd
 * drop cause each must be counted under.
 */
#define GEN_FOREACH_INJECT(_)                                                  \
	_(SHORT, "short", AUTH_DROP_SHORT)                                     \
	_(MAGIC, "magic", AUTH_DROP_MAGIC)                                     \
	_(VERSION, "version", AUTH_DROP_VERSION)                               \
	_(TYPE, "type", AUTH_DROP_TYPE)                                        \
	_(COUNT, "count", AUTH_DROP_COUNT)                                     \
	_(LENGTH, "length", AUTH_DROP_LENGTH)                                  \
	_(GATEWAY, "gateway", AUTH_DROP_GATEWAY)                               \
	_(KEY, "key", AUTH_DROP_KEY)                                           \
	_(TAG, "tag", AUTH_DROP_TAG)                                           \
	_(REPLAY, "replay", AUTH_DROP_REPLAY)                                  \
	_(STALE, "stale", AUTH_DROP_STALE)

enum gen_inject {
#define GEN_INJECT_ENUM(sym, name, drop) GEN_INJECT_##sym,
	GEN_FOREACH_INJECT(GEN_INJECT_ENUM)
#undef GEN_INJECT_ENUM
	GEN_INJECTS
};

const char *gen_inject_name(enum gen_inject i);
enum auth_drop gen_inject_drop(enum gen_inject i);

/*
 * Faults in the workload (--faults), in parts per million of records:
 * name, what it sends, the answer authd must give.
 */
#define GEN_FOREACH_FAULT(_)                                                   \
	_(DUP, "dup", "a record sent before, again (a retry)")                 \
	_(MALFORMED, "malformed", "a record that breaks a format rule")        \
	_(TERMS, "terms", "installment terms not 3/6/12")                      \
	_(UNKNOWN_USER, "unknown-user", "a user id not in the base")           \
	_(UNKNOWN_REF, "unknown-ref",                                          \
	  "void/refund of an id not yet sent; the id is authorized later")     \
	_(UNKNOWN_GROUP, "unknown-group", "a group wallet that does not exist")

enum gen_fault {
#define GEN_FAULT_ENUM(sym, name, text) GEN_FAULT_##sym,
	GEN_FOREACH_FAULT(GEN_FAULT_ENUM)
#undef GEN_FAULT_ENUM
	GEN_FAULTS
};

const char *gen_fault_name(enum gen_fault f);

/* How the amounts of authorizations are drawn (yuan in the options). */
enum gen_amount_kind {
	GEN_AMOUNT_LOGNORMAL = 0,
	GEN_AMOUNT_UNIFORM,
	GEN_AMOUNT_FIXED,
};

struct gen_amounts {
	enum gen_amount_kind kind;
	int64_t a_fen, b_fen;        /* uniform: range; fixed: a; lognormal:
				      * median a, cap b */
	double sigma;                /* lognormal */
};

/* Popularity of users or merchants (--users-dist, --merchants-dist). */
enum gen_dist_kind {
	GEN_DIST_UNIFORM = 0,
	GEN_DIST_ZIPF,
};

struct gen_dist {
	enum gen_dist_kind kind;
	double s;                    /* Zipf exponent (skew), > 0 */
	char spec[32];               /* as given, for the report */
};

/*
 * A Zipf(s) law over ranks 1..n, sampled by rejection-inversion
 * (Hörmann and Derflinger 1996; authgen_dist.c): constants only, O(1)
 * memory, O(1) expected time per draw. Read-only once built.
 */
struct gen_zipf {
	uint64_t n;
	double s;
	double h_x1;                 /* H(1.5) - 1 */
	double h_n;                  /* H(n + 0.5) */
	double squeeze;              /* accept k at once when k - x <= this */
};

/** Build the sampler for ranks 1..@p n (n >= 1), exponent @p s > 0. */
void gen_zipf_init(struct gen_zipf *z, uint64_t n, double s);
struct gen_rng;
/** A rank minus one, in [0, n): the index of the user or merchant. */
uint64_t gen_zipf_draw(const struct gen_zipf *z, struct gen_rng *r);
/** Share of the draws that fall on ranks 1..@p k (for the report). */
double gen_zipf_share(const struct gen_zipf *z, uint64_t k);

enum gen_profile {
	GEN_PROFILE_NONE = 0,
	GEN_PROFILE_DOUBLE11,
	GEN_PROFILE_CASHOUT,
};

/* Double 11 (authgen_profile.c has the reasoning behind the numbers). */
#define GEN_D11_BASE_PERMILLE 100    /* the ramp starts and ends at 10% */
#define GEN_D11_HOT_PCT 60           /* of authorizations at hot merchants */
#define GEN_D11_HOT_N 16             /* hot merchants */
#define GEN_D11_PRODUCTS "paylater=40,installment=55,cash=5"

/* Kinds of cash-out attack records. */
#define GEN_FOREACH_ATTACK(_)                                                  \
	_(MERCHANT, "merchant", "near-limit round payment at a colluding "     \
				"merchant, by an unrelated user")              \
	_(CROWD, "crowd", "near-limit round payment by a member of a device "  \
			  "crowd")                                             \
	_(CROWD_AGAIN, "crowd-again", "the crowd member's next, small "        \
				      "payment")

enum gen_attack {
	GEN_ATTACK_NONE = 0,
#define GEN_ATTACK_ENUM(sym, name, text) GEN_ATTACK_##sym,
	GEN_FOREACH_ATTACK(GEN_ATTACK_ENUM)
#undef GEN_ATTACK_ENUM
	GEN_ATTACKS
};

const char *gen_attack_name(enum gen_attack a);

/* Everything the options set; read-only once the workers start. */
struct gen_config {
	char port[128];
	uint32_t src_ip, dst_ip;       /* host order */
	uint16_t udp_port;             /* authd's */
	uint16_t src_port;             /* stream s sends from src_port + s */
	bool dst_mac_set;
	struct rte_ether_addr dst_mac;
	uint32_t gateway_id;
	uint32_t key_id;
	bool key_id_set;
	bool key_set;
	uint8_t key[AUTH_KEY_LEN];
	char keys_path[PATH_MAX];
	unsigned streams;
	unsigned rec_min, rec_max;     /* records per datagram */
	uint64_t users;                /* 0: from --ids-from or the model */
	uint64_t merchants;
	uint64_t seed;
	char ids_from[PATH_MAX];
	unsigned group_pct;            /* authorizations from a group wallet */
	unsigned mix[GEN_OPS];         /* weights by op */
	unsigned products[GEN_PRODUCTS];
	struct gen_amounts amounts;
	char amounts_spec[128];
	uint32_t faults_ppm[GEN_FAULTS];
	double duration_s;             /* 0: until --count */
	double warmup_s;               /* sent before measuring, not counted */
	uint64_t count;                /* records; 0: until --duration */
	uint64_t rate;                 /* datagrams/s; 0: closed loop */
	unsigned window;               /* closed loop: datagrams in flight */
	bool window_set;
	unsigned inflight;             /* in-flight table per worker (2^n) */
	uint32_t timeout_ms;           /* an answer later than this is lost */
	unsigned remember;
	bool progress, quiet;
	char json_path[PATH_MAX];
	char check_model[PATH_MAX];
	bool clock_fixed_set;
	uint32_t clock_fixed_s;
	bool seq_loose;                /* compare ledger_seq as zero/non-zero */
	uint64_t ops_max;              /* model's op store (authd's default) */
	unsigned inject[GEN_INJECTS];
	uint32_t linger_s;             /* keep the link up after the run */
	uint16_t run_tag;              /* top 16 bits of our request ids */
	bool run_tag_set;
	bool products_set;             /* --products given (profiles keep it) */
	struct gen_dist users_dist;
	struct gen_dist merchants_dist;
	enum gen_profile profile;
	unsigned cashout_pct;          /* records that are attack records */
	char record_path[PATH_MAX];    /* --record: pcap written */
	bool record_answers;           /* ... with the answers received */
	char replay_path[PATH_MAX];    /* --replay: pcap sent */
	uint32_t speed_milli;          /* replay pace x1000; 0: --max */
	bool speed_set;                /* --speed or --max given */
	char plot_prefix[PATH_MAX];
	char plot_script[PATH_MAX];    /* the gnuplot script (authgen_plot.gp) */
};

/* ------------------------------------------------------------------------ */
/* Counters                                                                   */

/* One list for the counters: field, description (report and JSON). */
#define GEN_FOREACH_COUNTER(_)                                                 \
	_(dgrams_sent, "request datagrams sent")                               \
	_(records_sent, "records sent")                                        \
	_(dgrams_answered, "answers received and matched")                     \
	_(records_answered, "records in those answers")                        \
	_(dgrams_lost, "datagrams with no answer within the timeout")          \
	_(records_lost, "records in those datagrams")                          \
	_(injected, "crafted bad datagrams sent (no answer expected)")         \
	_(late_answers, "answers after their datagram was declared lost")      \
	_(dup_answers, "second answers to one datagram")                       \
	_(unexpected_answers, "answers to no datagram we sent")                \
	_(unexpected_frames, "frames that are not answers from authd")        \
	_(bad_tag, "answers whose tag does not verify")                        \
	_(bad_header, "answers with a bad magic/version/type/count/length")    \
	_(bad_echo, "answers whose stream, gateway, key, count or sent_ns "    \
		    "differ from the request")                                 \
	_(wrong_ids, "records whose request_id/user_id/op are not echoed "     \
		     "in order")                                               \
	_(tx_full, "datagrams the TX queue did not take (freed, not sent)")    \
	_(inflight_full, "open loop: in-flight table full, the oldest datagram "\
			 "declared lost to make room")                         \
	_(behind, "open loop: sends later than scheduled by > 100 us")         \
	_(substituted, "captures/voids/refunds/repays sent as authorizations " \
		       "(nothing to name yet)")                                \
	_(model_checked, "records compared with the model")                    \
	_(model_mismatches, "records whose answer differs from the model")     \
	_(replay_checked, "replay: records compared with the recorded answer") \
	_(replay_mismatches, "replay: records whose answer differs from the "  \
			     "recorded one (ids, op, status, reason, amount, " \
			     "available)")                                     \
	_(replay_other_diffs, "replay: records equal in those but not in "     \
			      "another field (notes, ledger_seq, ...)")        \
	_(replay_unverified, "replay: records with no recorded answer")        \
	_(record_waits, "record: sends that waited for the pcap writer")       \
	_(attack_exhausted, "cashout: attack records sent as ordinary ones "   \
			    "(attack users used up)")                          \
	_(arp_replies, "ARP replies seen")

enum gen_counter {
#define GEN_COUNTER_ENUM(name, desc) GEN_C_##name,
	GEN_FOREACH_COUNTER(GEN_COUNTER_ENUM)
#undef GEN_COUNTER_ENUM
	GEN_COUNTERS
};

extern const char *const gen_counter_names[GEN_COUNTERS];
extern const char *const gen_counter_descs[GEN_COUNTERS];

/* Counters that make the run fail when non-zero. */
#define GEN_ERROR_COUNTERS                                                     \
	((1ull << GEN_C_dgrams_lost) | (1ull << GEN_C_late_answers) |          \
	 (1ull << GEN_C_dup_answers) | (1ull << GEN_C_unexpected_answers) |    \
	 (1ull << GEN_C_bad_tag) | (1ull << GEN_C_bad_header) |                \
	 (1ull << GEN_C_bad_echo) | (1ull << GEN_C_wrong_ids) |                \
	 (1ull << GEN_C_tx_full) | (1ull << GEN_C_inflight_full) |             \
	 (1ull << GEN_C_model_mismatches) | (1ull << GEN_C_replay_mismatches))

_Static_assert(GEN_COUNTERS <= 64, "GEN_ERROR_COUNTERS is a 64-bit mask");

/* What the profiles count, by kind of record. */
enum gen_hot_count {
	GEN_HOT_AUTHS = 0,       /* authorizations at hot merchants */
	GEN_HOT_INSTALLMENTS,    /* of them, installments */
	GEN_HOT_APPROVED,        /* answers: approved at hot merchants */
	GEN_HOT_INTEREST_FREE,   /* answers: INTEREST_FREE at hot merchants */
	GEN_HOT_COUNTS
};

/* One worker's counters; one writer (relaxed stores), readers anywhere. */
struct gen_stats {
	uint64_t c[GEN_COUNTERS];
	uint64_t op_sent[GEN_OPS];
	uint64_t product_sent[GEN_PRODUCTS];
	uint64_t fault_sent[GEN_FAULTS];
	uint64_t inject[GEN_INJECTS];
	uint64_t status[3];                /* approved, declined, error */
	uint64_t reason[AUTH_REASONS + 1]; /* last: out of range */
	uint64_t op_reason[GEN_OPS][AUTH_REASONS + 1];
	uint64_t notes[8];                 /* by bit */
	uint64_t first_tx_ns, last_tx_ns, last_rx_ns;
	uint64_t dist_draws[2];            /* users, merchants drawn */
	uint64_t dist_top[2];              /* ... among the top 1% indices */
	uint64_t hot[GEN_HOT_COUNTS];      /* double11 */
	uint64_t attack_sent[GEN_ATTACKS]; /* cashout, by kind */
	uint64_t attack_status[GEN_ATTACKS][3];
	uint64_t attack_reason[GEN_ATTACKS][AUTH_REASONS + 1];
};

/* Single-writer counter update, readable with relaxed loads elsewhere. */
#define GEN_ADD(x, n) __atomic_store_n(&(x), (x) + (n), __ATOMIC_RELAXED)
#define GEN_SET(x, v) __atomic_store_n(&(x), (v), __ATOMIC_RELAXED)
#define GEN_RD(x) __atomic_load_n(&(x), __ATOMIC_RELAXED)

/* ------------------------------------------------------------------------ */
/* Workload                                                                   */

struct gen_ctx;

/* An approved authorization the generator remembers. */
struct gen_auth {
	uint64_t request_id;
	uint64_t user_id;
	int64_t held_fen;        /* still on hold */
	int64_t captured_fen;    /* debt it became (cash loans: the amount) */
	int64_t refunded_fen;
	int64_t repaid_fen;
	uint32_t merchant_id;
	uint8_t product;
	uint8_t terms;
	uint8_t pad[2];
};

/* A bounded set with random pick and swap-remove; full: a random victim. */
struct gen_pool {
	struct gen_auth *e;
	uint32_t n, cap;
};

/* A member of a group wallet (from a snapshot's groups). */
struct gen_member {
	uint64_t user_id;
	uint32_t group_id;
	uint32_t pad;
};

/* What a sent record needs when its answer comes back. */
struct gen_sent {
	struct gen_auth ref;     /* the entry a lifecycle op named (copy) */
	uint8_t fault;           /* GEN_FAULTS: none */
	uint8_t has_ref;
	uint8_t attack;          /* enum gen_attack */
	uint8_t hot;             /* double11: at a hot merchant */
};

/* A hot merchant (double11) and the terms it subsidises, if known. */
struct gen_hot {
	uint32_t merchant_id;
	uint8_t subsidy;         /* LIM_SUBSIDY_*; 0: unknown or none */
	uint8_t pad[3];
};

/* A user set aside for the cash-out script, and what it pays. */
struct gen_attacker {
	uint64_t user_id;
	int64_t amount_fen;      /* near-limit, round: what it pays first */
	int64_t left_fen;        /* available after that */
	uint16_t region;         /* the user's */
	uint8_t pad[6];
};

struct gen_rng {
	uint64_t s[4];           /* xoshiro256** */
};

struct gen_load {
	const struct gen_config *cfg;
	struct gen_rng rng;
	uint64_t next_id;        /* low bits of the next request id */
	uint64_t id_hi;          /* run tag << 48 | worker << 40 */
	const uint64_t *user_ids;   /* NULL: lim_gen_user_id(seed, i) */
	uint64_t n_users;
	const uint32_t *merchant_ids; /* NULL: lim_gen_merchant_id(seed, i) */
	uint64_t n_merchants;
	const struct gen_member *members; /* group wallets, may be NULL */
	uint64_t n_members;
	unsigned mix_cum[GEN_OPS];
	unsigned prod_cum[GEN_PRODUCTS];
	const int64_t *amounts;  /* GEN_AMOUNTS_TABLE fen values */
	struct gen_pool held;    /* approved holds (pay later, installments) */
	struct gen_pool debt;    /* captured holds and cash loans */
	struct auth_req recent[GEN_RECENT];
	uint64_t n_recent;
	uint64_t pending[GEN_PENDING];  /* ids named by early reversals */
	unsigned n_pending;
	struct gen_stats *st;
	const struct gen_zipf *zu, *zm; /* NULL: uniform */
	uint64_t n_users_ord;    /* ordinary draws: indices [0, this) */
	uint64_t n_merchants_ord;
	uint64_t top_users, top_merchants; /* "top 1%": indices below these */
	const struct gen_ctx *ctx;
	/* cashout: this worker's attackers are ctx->attackers[j], j = worker
	 * + k * workers; a crowd is GEN_CROWD consecutive ones */
	uint64_t atk_next;       /* next attacker index (j) */
	uint64_t atk_n;          /* attack records drawn */
	uint64_t crowd[GEN_CROWD];  /* attacker indices of the current crowd */
	uint64_t crowd_device;
	unsigned crowd_step;     /* 0 .. GEN_CROWD - 1 */
	unsigned colluder_next;
	struct {
		uint64_t j;          /* attacker */
		uint64_t device;
		uint64_t due_tsc;
	} again[GEN_AGAIN_MAX];  /* crowd members' second payments, FIFO */
	uint32_t again_head, again_tail;
};

/**
 * Set up worker @p worker's workload from the shared, read-only tables of
 * @p ctx (ids: NULL = enumerate with lim_gen_*_id). 0 or -ENOMEM.
 */
int gen_load_init(struct gen_load *l, const struct gen_ctx *ctx,
		  unsigned worker, struct gen_stats *st);
void gen_load_fini(struct gen_load *l);

/** Draw a user index in [0, n_users_ord) (uniform or Zipf). */
uint64_t gen_load_user_index(struct gen_load *l);
/** Draw a merchant index in [0, n_merchants_ord). */
uint64_t gen_load_merchant_index(struct gen_load *l);

/** Fill @p r (and @p s) with the next record of the workload. */
void gen_load_next(struct gen_load *l, struct auth_req *r, struct gen_sent *s);

/** Learn from an answer to a record sent with @p s (lifecycle tables). */
void gen_load_answer(struct gen_load *l, const struct auth_req *r,
		     const struct gen_sent *s, const struct auth_resp *a);

/** Count the profile's answers (attack records, hot merchants) in @p st. */
void gen_load_count(struct gen_stats *st, const struct gen_sent *s,
		    const struct auth_resp *a);

/** A sent record's answer never came: forget what it took. */
void gen_load_lost(struct gen_load *l, const struct auth_req *r,
		   const struct gen_sent *s);

/** Build the sampled amount table (GEN_AMOUNTS_TABLE fen values). */
int64_t *gen_amounts_table(const struct gen_amounts *a, uint64_t seed);

uint64_t gen_rng_next(struct gen_rng *r);
void gen_rng_seed(struct gen_rng *r, uint64_t seed);
/** Uniform in [0, n), n > 0 (Lemire's multiply-shift, no division). */
static inline uint64_t
gen_rng_below(struct gen_rng *r, uint64_t n)
{
	return (uint64_t)(((unsigned __int128)gen_rng_next(r) * n) >> 64);
}

/* ------------------------------------------------------------------------ */
/* Model (--check-model)                                                      */

struct gen_model;

/**
 * Load @p snapshot into a private database and prepare to decide as authd
 * does at the fixed time @p now_s. NULL with @p err on failure.
 */
struct gen_model *gen_model_create(const struct gen_config *cfg,
				   char *err, size_t errlen);
void gen_model_free(struct gen_model *m);
/** The model's database (read ids from it). */
struct lim_db *gen_model_db(struct gen_model *m);
/**
 * Decide @p r as authd will, in send order, into @p out. Call on one
 * registered QSBR reader thread (the worker), online.
 */
void gen_model_exec(struct gen_model *m, const struct auth_req *r,
		    struct auth_resp *out);
/**
 * Compare authd's answer @p got with the model's @p want; print the first
 * GEN_MISMATCH_PRINT mismatches with the record. Returns true when equal.
 */
bool gen_model_compare(const struct gen_config *cfg, const struct auth_req *r,
		       const struct auth_resp *want,
		       const struct auth_resp *got, uint64_t seq,
		       uint64_t mismatches_so_far);

/* ------------------------------------------------------------------------ */
/* Workers                                                                    */

enum gen_flight_state {
	GEN_FLIGHT_FREE = 0,
	GEN_FLIGHT_OUT,          /* sent, no answer yet */
	GEN_FLIGHT_DONE,         /* answered */
	GEN_FLIGHT_LOST,         /* timed out */
};

/* One datagram in flight: slot g % inflight of its worker. */
struct gen_flight {
	uint64_t g;              /* datagram number (seq - seq_base) */
	uint64_t sent_ns;        /* what the header carries */
	uint64_t tx_tsc;         /* when it left (timeouts) */
	uint16_t stream;
	uint8_t n;
	uint8_t state;           /* enum gen_flight_state */
	uint8_t measured;        /* sent after the warm-up */
	uint8_t verify;          /* w->want holds the expected answers */
	struct auth_req req[AUTH_RECORDS_MAX];
	struct gen_sent sent[AUTH_RECORDS_MAX];
};

struct gen_ctx;

struct gen_worker {
	struct gen_ctx *ctx;
	unsigned index;          /* 0 .. workers-1 */
	unsigned lcore_id;
	uint16_t queue;
	uint16_t stream_first;   /* streams index, index + workers, ... */
	uint16_t n_streams;
	uint16_t next_stream;
	uint64_t seq_base;
	uint64_t g_head;         /* next datagram number */
	uint64_t g_tail;         /* oldest not yet answered or lost */
	uint64_t out;            /* datagrams in flight */
	uint32_t mask;           /* inflight - 1 */
	struct gen_flight *fl;   /* [inflight] */
	struct auth_resp *want;  /* [inflight * 16] model or recorded answers,
				  * or NULL */
	uint64_t count_left;     /* records still to send (--count) */
	uint64_t rate;           /* this worker's datagrams/s */
	uint64_t t0_tsc, end_tsc, next_tsc, sched_n;
	uint64_t warm_tsc;       /* measuring starts here (0: measuring) */
	uint64_t timeout_tsc;
	uint64_t inject_every;   /* datagrams between injections */
	unsigned inject_left[GEN_INJECTS];
	uint8_t last_dgram[AUTH_DGRAM_MAX]; /* for the replay injection */
	uint32_t last_len;
	uint64_t last_seq;
	uint16_t last_stream;
	uint64_t meas_tsc;       /* measuring started (double11's clock) */
	uint32_t offered_pm;     /* double11: rate now, per mille of --rate */
	uint64_t replay_t0_ns;   /* capture time of the first replayed frame */
	bool replay_started;
	bool replay_done;        /* the pcap has no more requests */
	bool sending;
	bool model_online;       /* a QSBR reader of the model's database */
	struct gen_load load;
	struct gen_stats st;     /* measured traffic, and every error */
	struct gen_stats warm;   /* traffic of the warm-up (volume only) */
	struct perf_hist hist;   /* latency of measured datagrams, ns */
} __rte_cache_aligned;

struct gen_recorder;
struct gen_replay;

/* Throughput over time: one sample per second (or per 2^k s, see
 * sample_push() in authgen_report.c). Counts are of the interval; records
 * unless named. */
struct gen_sample {
	double t_s;              /* end of the interval, s since the start */
	double dt_s;
	uint64_t sent_dgrams, sent_records;
	uint64_t answered_dgrams, answered_records;
	uint64_t status[3];      /* approved, declined, error */
	uint64_t lost_dgrams;
	uint64_t p99_ns;         /* datagrams answered in it; merged: the max */
	uint64_t offered;        /* open loop: datagrams/s scheduled; 0 closed */
	uint32_t ticks;          /* seconds it covers */
	uint8_t warm;            /* during the warm-up (no latency measured) */
};

struct gen_ctx {
	struct gen_config cfg;
	struct nic_port port;
	uint16_t tx_cksum;       /* NIC_F_TX_* the port computes */
	struct rte_ether_addr src_mac, dst_mac;
	uint64_t tsc_hz;
	uint64_t ns_mult;        /* ns = tsc * ns_mult >> 32 (from t0) */
	uint64_t tsc0;
	uint64_t unix_ns0;
	unsigned n_workers;
	struct gen_worker *w[GEN_LCORES_MAX];
	struct gen_model *model;
	const uint64_t *user_ids;
	uint64_t n_users;
	const uint32_t *merchant_ids;
	uint64_t n_merchants;
	const struct gen_member *members;
	uint64_t n_members;
	int64_t *amounts;
	int stop;                /* atomic: 1 = stop sending, drain */
	int done;                /* atomic: workers finished */
	uint64_t start_ns, end_ns;
	/* popularity: ordinary draws over [0, n_*_ord) */
	struct gen_zipf zipf_users, zipf_merchants;
	uint64_t n_users_ord, n_merchants_ord;
	/* double11 */
	struct gen_hot hot[GEN_HOT_MAX];
	unsigned n_hot;
	bool hot_subsidy_known;  /* merchants read from a snapshot */
	uint64_t ramp_ms;        /* each third of the ramp; 0: no ramp */
	/* cashout */
	struct gen_attacker *attackers;
	uint64_t n_attackers;
	uint64_t attack_candidates; /* users looked at for the script */
	uint32_t colluders[GEN_COLLUDERS];
	unsigned n_colluders;
	/* record, replay */
	struct gen_recorder *rec;
	struct gen_replay *rp;
	uint64_t rec_frames, rec_requests, rec_answers; /* once closed */
	bool rec_error;
	/* samples (worker 0 while running, then gen_report) */
	struct gen_sample *samples;
	unsigned n_samples;
	uint32_t sample_ticks;   /* seconds per stored sample: 1, 2, 4, ... */
	struct gen_sample pending;
};

/** Unix ns on the generator's clock (TSC since start). */
static inline uint64_t
gen_tsc_to_ns(const struct gen_ctx *c, uint64_t tsc)
{
	return c->unix_ns0 +
	       (uint64_t)(((unsigned __int128)(tsc - c->tsc0) * c->ns_mult) >>
			  32);
}

/* authgen_io.c */
struct gen_worker *gen_worker_create(struct gen_ctx *ctx, unsigned index,
				     unsigned lcore_id);
void gen_worker_free(struct gen_worker *w);
int gen_worker_main(void *arg);
/** Send ARP requests for cfg.dst_ip on queue 0 and wait for the reply. */
int gen_arp_resolve(struct gen_ctx *ctx, unsigned timeout_ms);

/* authgen_profile.c */
/**
 * Prepare --profile and the popularity laws from the ids (and, when the
 * ids come from a snapshot, from @p db: merchants' subsidies, users'
 * limits and balances). 0, or -EINVAL with @p err (cashout without a
 * snapshot, no eligible user).
 */
int gen_profile_setup(struct gen_ctx *ctx, struct lim_db *db, char *err,
		      size_t errlen);
/** double11: the rate at profile time @p t_ms, per mille of --rate. */
uint32_t gen_profile_rate_pm(const struct gen_ctx *ctx, uint64_t t_ms);
/** The profile's part of the report and of the JSON. */
void gen_profile_print(FILE *f, const struct gen_ctx *ctx,
		       const struct gen_stats *s);
struct json_t;
struct json_t *gen_profile_json(const struct gen_ctx *ctx,
				const struct gen_stats *s);

/* authgen_pcap.c */
/**
 * Open @p path for writing (pcap, Ethernet, ns timestamps) and start the
 * writer thread with one ring per worker. NULL with @p err on failure.
 */
struct gen_recorder *gen_record_open(const char *path, unsigned workers,
				     char *err, size_t errlen);
/**
 * Queue a copy of one request frame (@p len bytes at @p frame) stamped
 * @p ts_ns for the writer; @p offload: the port computes the checksums, so
 * the copy's are completed. Worker @p worker only; waits while its ring is
 * full (counted in @p st record_waits) so the recording is complete.
 */
void gen_record_request(struct gen_recorder *r, unsigned worker,
			const void *frame, uint32_t len, uint64_t ts_ns,
			bool offload, struct gen_stats *st);
/** The same for an answer frame from authd, as received. */
void gen_record_answer(struct gen_recorder *r, unsigned worker,
		       const void *frame, uint32_t len, uint64_t ts_ns,
		       struct gen_stats *st);
/**
 * Stop the writer after it wrote everything queued; close the file; what
 * was written in @p frames (requests + answers), @p requests, @p answers
 * (each may be NULL). 0 or -EIO.
 */
int gen_record_close(struct gen_recorder *r, uint64_t *frames,
		     uint64_t *requests, uint64_t *answers);

/* One request of a replay, with the answer recorded for it (if any). */
struct gen_replay_item {
	uint64_t ts_ns;          /* capture time of the request */
	uint32_t len;            /* of dgram */
	uint16_t stream;         /* the recorded header's stream */
	uint8_t n;               /* records */
	uint8_t has_answer;
	uint8_t dgram[AUTH_DGRAM_MAX] __rte_aligned(8);
	struct auth_resp ans[AUTH_RECORDS_MAX];
};

/** Open @p path, check its link type, start the reader. NULL with @p err. */
struct gen_replay *gen_replay_open(const struct gen_config *cfg, char *err,
				   size_t errlen);
/** The next request to send, or NULL (none yet; *eof: none ever again). */
const struct gen_replay_item *gen_replay_peek(struct gen_replay *rp, bool *eof);
/** Done with the item gen_replay_peek() returned. */
void gen_replay_pop(struct gen_replay *rp);
void gen_replay_close(struct gen_replay *rp);
/** What the reader found, for the report and JSON. */
struct json_t *gen_replay_json(const struct gen_replay *rp);
void gen_replay_print(FILE *f, const struct gen_replay *rp);
/**
 * Compare a replayed answer @p got with the recorded @p want: false when the
 * ids, op, status, reason, amount or available differ (printed, the first
 * GEN_MISMATCH_PRINT). *@p other: equal in those, not in another field.
 */
bool gen_replay_compare(const struct auth_req *r, const struct auth_resp *want,
			const struct auth_resp *got, uint64_t seq,
			uint64_t mismatches_so_far, bool *other);

/* authgen_opts.c */
void gen_config_default(struct gen_config *c);
/** 0, 1 (--help printed) or -EINVAL with @p err. */
int gen_config_args(struct gen_config *c, int argc, char **argv, char *err,
		    size_t errlen);
void gen_usage(FILE *f);
/** Parse "name=weight,..." against @p names[0..n). */
int gen_parse_weights(const char *spec, const char *const *names, unsigned n,
		      unsigned *out, char *err, size_t errlen);

/* authgen_report.c */
/** Sum the workers' measured (or, @p warm, warm-up) counters. */
void gen_stats_sum(const struct gen_ctx *ctx, bool warm, struct gen_stats *sum,
		   struct perf_hist *hist);
/**
 * Once a second on worker 0 (and once by gen_report at the end): take a
 * throughput sample, print the progress line when --progress.
 */
void gen_tick(struct gen_ctx *ctx, uint64_t now_ns, bool final);
/** Print the report; write JSON if asked. Returns the process exit code. */
int gen_report(struct gen_ctx *ctx);

#endif /* AUTHGEN_H */
