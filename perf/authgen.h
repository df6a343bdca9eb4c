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
 *   authgen_report.c  counters, progress lines, the report, JSON
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
	 (1ull << GEN_C_model_mismatches))

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
};

/**
 * Set up worker @p worker's workload from the shared, read-only tables of
 * @p ctx (ids: NULL = enumerate with lim_gen_*_id). 0 or -ENOMEM.
 */
int gen_load_init(struct gen_load *l, const struct gen_ctx *ctx,
		  unsigned worker, struct gen_stats *st);
void gen_load_fini(struct gen_load *l);

/** Fill @p r (and @p s) with the next record of the workload. */
void gen_load_next(struct gen_load *l, struct auth_req *r, struct gen_sent *s);

/** Learn from an answer to a record sent with @p s (lifecycle tables). */
void gen_load_answer(struct gen_load *l, const struct auth_req *r,
		     const struct gen_sent *s, const struct auth_resp *a);

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
	struct auth_resp *want;  /* [inflight * 16] model answers, or NULL */
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
	bool sending;
	bool model_online;       /* a QSBR reader of the model's database */
	struct gen_load load;
	struct gen_stats st;     /* measured traffic, and every error */
	struct gen_stats warm;   /* traffic of the warm-up (volume only) */
	struct perf_hist hist;   /* latency of measured datagrams, ns */
} __rte_cache_aligned;

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
void gen_progress(struct gen_ctx *ctx, uint64_t now_ns);
/** Print the report; write JSON if asked. Returns the process exit code. */
int gen_report(struct gen_ctx *ctx);

#endif /* AUTHGEN_H */
