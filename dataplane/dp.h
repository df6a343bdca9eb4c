/*
 * dp.h - the authd daemon's own declarations: its options, the dataplane
 * lcores, the context that ties the rooms together (private to the files
 * at the top of dataplane/: main, options, node, stats, clock, policy file).
 *
 * The rooms below (ledger/, risk/, export/, ctl/) know nothing of this
 * header: each is started with what it needs (its *_conf or env struct) and
 * main.c wires them. docs/architecture.md draws the whole.
 *
 * Threads of a running authd:
 * - dataplane lcores (every EAL lcore, the main one included): one RX/TX
 *   queue pair each, the burst loop of node.c; QSBR readers;
 * - the ledger worker (a control thread, ledger/ledger.c): drains the
 *   effect rings;
 * - the control thread (ctl/server.c): authctl requests over a unix socket;
 *   the updater of RCU-published records (merchant updates are shared with
 *   the risk worker under dp_merchants_lock());
 * - the risk worker (a control thread, risk/risk_worker.c): drains the
 *   decision rings, publishes its verdicts (freeze, lower limit, block,
 *   scores);
 * - the export worker (export/export.c, with --export);
 * - the metrics thread (metrics/server.c, with --metrics): reads counters
 *   for each Prometheus scrape (stats.c);
 * - DPDK's telemetry thread: reads counters (stats.c).
 */
#ifndef DP_H
#define DP_H

#include <limits.h>
#include <stdbool.h>
#include <stdint.h>

#include <rte_common.h>
#include <rte_ring.h>

#include "auth.h"
#include "ctl.h"
#include "export.h"
#include "ledger.h"
#include "lim.h"
#include "metrics.h"
#include "nic.h"
#include "risk.h"

#define DP_BURST_MAX 64          /* RX burst at most */
#define DP_LCORES_MAX 32         /* dataplane lcores */
#define DP_HELD_MAX 4096         /* answers held for durability per lcore */
#define DP_TX_RETRIES 8

enum dp_mode {
	DP_MODE_DECIDE = 0,       /* the engine */
	DP_MODE_FORWARD,          /* echo valid datagrams: the I/O ceiling */
};

enum dp_ack {
	DP_ACK_SYNC = 0,          /* money answers wait for their journal batch */
	DP_ACK_ASYNC,             /* answer at once, journal behind */
};

enum dp_clock_mode {
	DP_CLOCK_REAL = 0,        /* wall clock at start + TSC since */
	DP_CLOCK_FIXED,           /* frozen at a given second (tests) */
};

/* Everything the options and the config file set. */
struct dp_config {
	char port[128];           /* device name ("net_memif0") or port id */
	uint32_t ip;              /* our IPv4 address, host order */
	uint16_t udp_port;
	uint16_t burst;
	uint16_t rx_ring, tx_ring;
	bool promiscuous;
	enum dp_mode mode;
	enum dp_ack ack;
	char snapshot[PATH_MAX];
	char keys[PATH_MAX];
	char ctl_path[PATH_MAX];
	char journal_dir[PATH_MAX];
	uint64_t journal_segment_bytes; /* rotate past this size (journal.h) */
	bool ack_explicit;        /* --ack given: else sync iff --journal */
	char policy[PATH_MAX];    /* optional policy file (INI) */
	uint64_t users_max;       /* 0: snapshot's users + headroom */
	uint64_t ops_max;
	uint32_t ring_size;       /* effects per lcore ring (power of 2) */
	uint32_t streams;         /* replay windows */
	int log_level;            /* RTE_LOG_* */
	enum dp_clock_mode clock_mode;
	uint32_t clock_fixed_s;
	struct dp_risk_config risk;  /* --risk, --risk-set, [risk] (risk.h) */
	/* --export URL: journal records to NATS JetStream ("": off; export.h) */
	char export_url[256];
	char export_subject[128];    /* --export-subject: <subject>.<kind> */
	char export_stream[64];      /* --export-stream: created if absent */
	/* --metrics ADDR:PORT: Prometheus text at /metrics ("": off) */
	char metrics[DP_METRICS_ADDR_MAX];
};

/* One list for the counters of a dataplane lcore: field, description. */
#define DP_FOREACH_COUNTER(_)                                                  \
	_(loops, "loop iterations")                                            \
	_(rx_pkts, "frames received")                                          \
	_(tx_pkts, "frames sent")                                              \
	_(tx_retries, "TX bursts retried because the queue was full")          \
	_(tx_dropped, "answers the TX queue did not take after retries")       \
	_(dgrams, "datagrams answered")                                        \
	_(records, "records answered")                                         \
	_(ring_full, "datagrams answered BUSY: the ledger ring was full")      \
	_(journal_busy, "datagrams answered BUSY: the journal has failed")     \
	_(held_dropped, "held answers never sent: their journal batch failed") \
	_(effects, "effects handed to the ledger worker")                      \
	_(held, "answers held until their journal batch was durable")          \
	_(risk_dropped, "decision records the risk ring could not take")     \
	_(busy_cycles, "TSC cycles spent on non-empty bursts")                 \
	_(busy_pkts, "frames in those bursts")                                 \
	_(lat_cycles, "TSC cycles of in-engine latency, summed over the "     \
		      "answers the latency histogram counts")

enum dp_counter {
#define DP_COUNTER_ENUM(name, desc) DP_C_##name,
	DP_FOREACH_COUNTER(DP_COUNTER_ENUM)
#undef DP_COUNTER_ENUM
	DP_COUNTERS
};

/*
 * In-engine latency (RX burst returned -> answer handed to TX), in TSC
 * cycles, log-linear: below 16 exact, then 16 sub-buckets per power of two
 * (about 6% wide). Recorded per answered frame; held answers (sync ack)
 * count from their RX to their release.
 */
#define DP_LAT_SUB 16
#define DP_LAT_BUCKETS (44 * DP_LAT_SUB) /* up to 2^47 cycles: hours */

static inline unsigned
dp_lat_bucket(uint64_t cyc)
{
	unsigned msb;

	if (cyc < DP_LAT_SUB)
		return (unsigned)cyc;
	msb = 63u - (unsigned)__builtin_clzll(cyc);
	if (msb > 46)
		return DP_LAT_BUCKETS - 1;
	return (msb - 3) * DP_LAT_SUB + (unsigned)((cyc >> (msb - 4)) & (DP_LAT_SUB - 1));
}

/** The largest cycle count that falls in bucket @p b. */
static inline uint64_t
dp_lat_bucket_max(unsigned b)
{
	unsigned msb = b / DP_LAT_SUB + 3, sub = b % DP_LAT_SUB;

	if (b < DP_LAT_SUB)
		return b;
	return (((uint64_t)(DP_LAT_SUB + sub) + 1) << (msb - 4)) - 1;
}

/**
 * dp_lat_bucket_max(), but UINT64_MAX for the last bucket, which also holds
 * everything above it: the bound an exact histogram conversion needs.
 */
static inline uint64_t
dp_lat_bucket_bound(unsigned b)
{
	return b + 1 >= DP_LAT_BUCKETS ? UINT64_MAX : dp_lat_bucket_max(b);
}

/* One dataplane lcore's counters; one writer, readers see them a loop old. */
struct dp_stats {
	uint64_t c[DP_COUNTERS];
	uint64_t status[3];              /* approved, declined, error */
	uint64_t reason[AUTH_REASONS];
	/* answered records by op, product (0: out of range) and reason */
	uint64_t decisions[AUTH_OPS][AUTH_PRODUCTS][AUTH_REASONS];
	uint64_t drop[AUTH_DROPS];       /* datagrams dropped by the codec */
	uint64_t burst[DP_BURST_MAX + 1];/* RX burst size histogram */
	uint64_t lat[DP_LAT_BUCKETS];    /* in-engine latency, see above */
	/* busy cycles and frames of the last window of >= 1 s (node.c) */
	uint64_t win_cycles, win_pkts;
	struct nic_counters nic;
} __rte_cache_aligned;

/* struct dp_decision, the risk workers' record of a decision: risk.h. */

/* An answer waiting for durability (sync ack). */
struct dp_held {
	struct rte_mbuf *m;
	uint64_t seq;                    /* largest ledger_seq in the answer */
	uint64_t rx_tsc;                 /* when its burst was received */
};

struct dp_ctx;

struct dp_lcore {
	struct dp_ctx *ctx;
	unsigned lcore_id;
	uint16_t queue;
	struct auth_exec x;              /* db, budget shard, now */
	struct rte_ring *effects;        /* SP/SC ring of struct lim_effect */
	struct rte_ring *decisions;      /* SP/SC ring of struct dp_decision */
	void *scratch;                   /* node.c's per-burst arrays */
	uint32_t now_s;                  /* second x.now was computed for */
	uint64_t win_tsc;                /* start of the cost window */
	uint64_t win_cycles0, win_pkts0; /* busy counters at win_tsc */
	/* sync ack: a FIFO of answers in ledger-seq order */
	uint32_t held_head, held_tail;
	struct dp_held held[DP_HELD_MAX];
	struct dp_stats st;
} __rte_cache_aligned;

struct dp_clock {
	enum dp_clock_mode mode;
	uint64_t tsc_hz;
	uint64_t base_tsc;
	int64_t base_unix_ns;
	uint32_t fixed_s;                /* DP_CLOCK_FIXED; settable (atomic) */
};

struct dp_ctx {
	struct dp_config cfg;
	struct dp_clock clock;
	struct nic_port port;
	struct nic_host host;
	struct lim_db *db;
	struct auth_keyring *keyring;    /* RCU pointer */
	struct auth_replay *replay;
	unsigned n_lcores;
	struct dp_lcore *lc[DP_LCORES_MAX];
	uint64_t durable_seq;            /* atomic: journal durable up to here */
	int stop;                        /* atomic: 1 = stop RX and drain */
	int rx_stopped;                  /* atomic: lcores that left their loop */
	struct dp_ledger *ledger;
	int journal_failed;              /* atomic: 1 = the journal stopped
					  * (ledger.c): no new money, held
					  * answers are never released */
	struct dp_ctl *ctl;
	struct dp_risk *risk;            /* NULL: --risk off */
	struct dp_export *export;        /* NULL: --export off (export.h) */
	struct dp_metrics *metrics;      /* NULL: --metrics off (metrics.h) */
};

/* options.c */
#define DP_CONFIG_HELP 1
#define DP_CONFIG_VERSION 2
void dp_config_default(struct dp_config *c);
/** Set option @p name (long name, as on the command line) from text. */
int dp_config_set(struct dp_config *c, const char *name, const char *value,
		  char *err, size_t errlen);
/** Read an INI file ([authd] section, keys = long option names). */
int dp_config_file(struct dp_config *c, const char *path, char *err,
		   size_t errlen);
/**
 * Parse the application's arguments (after the EAL's "--"): -c FILE first,
 * then the rest. 0, DP_CONFIG_HELP, DP_CONFIG_VERSION or -EINVAL with @p err.
 */
int dp_config_args(struct dp_config *c, int argc, char **argv, char *err,
		   size_t errlen);
/**
 * The [eal] section's `args` of config file @p path, split at blanks into a
 * new NULL-terminated array *@p out of *@p n strings (none: NULL, 0): EAL
 * options for rte_eal_init(), read before the EAL starts. 0, or -ENOENT
 * (cannot open) / -ENOMEM with @p err; other errors of the file are left
 * to dp_config_file().
 */
int dp_config_eal_args(const char *path, char ***out, int *n, char *err,
		       size_t errlen);
/** Cross-option checks (required options present and consistent). */
int dp_config_check(const struct dp_config *c, char *err, size_t errlen);

/* An INI file (the config file, the policy file) through inih. */
#define DP_INI_LINE_MAX 198      /* characters of a line, newline excluded */
enum dp_ini_result { DP_INI_OK = 0, DP_INI_OPEN, DP_INI_SYNTAX, DP_INI_LONG,
		     DP_INI_HANDLER };
/** inih's handler: 0 when @p value is refused (the reason is the handler's). */
typedef int (*dp_ini_handler)(void *user, const char *section,
			      const char *name, const char *value);
/**
 * Parse @p path with inih, calling @p fn for each name = value until it
 * first returns 0. A line longer than DP_INI_LINE_MAX is an error and none
 * of it is parsed (inih would parse its tail as another line). *@p line:
 * the first bad line (0 when none).
 * @return DP_INI_OK; DP_INI_OPEN (errno says why); or the kind of the first
 *         bad line: DP_INI_SYNTAX (inih's), DP_INI_LONG, DP_INI_HANDLER.
 */
int dp_ini_parse(const char *path, dp_ini_handler fn, void *user, int *line);

/* clock.c */
void dp_clock_init(struct dp_clock *c, enum dp_clock_mode mode, uint32_t fixed_s);
/** Unix seconds now: monotonic (TSC) since start, immune to wall-clock steps. */
uint32_t dp_clock_now_s(const struct dp_clock *c);
/** Unix nanoseconds now (same base). */
uint64_t dp_clock_now_ns(const struct dp_clock *c);
/** Move a fixed clock (tests); -EINVAL on a real clock. */
int dp_clock_set(struct dp_clock *c, uint32_t unix_s);

/* node.c */
/** A dataplane lcore polling @p queue, deciding through budget @p shard. */
struct dp_lcore *dp_lcore_create(struct dp_ctx *ctx, unsigned lcore_id,
				 uint16_t queue, unsigned shard);
void dp_lcore_free(struct dp_lcore *lc);
/** The burst loop of one dataplane lcore; returns when stopped and drained. */
int dp_lcore_main(void *arg);
/** Sum of every lcore's counters into @p sum. */
void dp_stats_sum(const struct dp_ctx *ctx, struct dp_stats *sum);

/* stats.c */
int dp_telemetry_register(struct dp_ctx *ctx);
/** Telemetry answers nothing from now on: call before freeing what it reads. */
void dp_telemetry_stop(struct dp_ctx *ctx);
/** The control socket's `stats` answer: a new jansson object. Any thread. */
struct json_t *dp_stats_json(const struct dp_ctx *ctx);
/**
 * Every Prometheus family of authd (docs/metrics.md) into @p w: the same
 * counters dp_stats_json() reads. The metrics thread; reads only.
 */
void dp_stats_prom(const struct dp_ctx *ctx, struct dp_prom *w);

/* policy_file.c */
/**
 * Load policy file @p path (INI, [policy] section, the keys of authctl
 * policy set) over the current policy and publish it. Start-up only, from a
 * thread that is not (yet) an RCU reader. 0, or a negative errno with
 * "file:line: why" in @p err; nothing changes on error.
 */
int dp_policy_file_load(struct lim_db *db, const char *path, char *err,
			size_t errlen);

#endif /* DP_H */
