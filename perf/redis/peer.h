/*
 * peer.h - perf_redis_peer's shared declarations: the driver of the
 * home-grown peer of authd, Redis + perf/redis/check_reserve.lua.
 *
 * Files (perf/redis/):
 *   redis_peer.c   main: options, then prepare -> run -> check -> report
 *   peer_opts.c    the command line: --help text, parsing, checks of the
 *                  combination (exit status 2 on bad usage)
 *   peer_server.c  talking to Redis outside the timed run, blocking:
 *                  connect, load the script, the run id, the server's state
 *                  before and after (DBSIZE, the sum of holds), the check
 *   peer_driver.c  the timed run: T threads, each one poll() loop over its
 *                  non-blocking hiredis connections; requests, replies,
 *                  the rule every answer is judged by, latencies
 *   peer_report.c  the JSON object (stdout and --json) and the summary line
 *
 * Ownership: main owns the configuration (read-only once parsed), the
 * result and the control connection; each worker thread owns its
 * connections, counters and histogram during the run, and the result takes
 * their sums after pthread_join (nothing is shared while they run but the
 * configuration).
 *
 * Latency goes into perf/hist.h's histogram (the one every benchmark and
 * authgen use): exact below 256 ns, then 128 buckets per power of two
 * (error < 0.8%); a percentile is the upper bound of its bucket, never
 * above the exact maximum.
 */
#ifndef PERF_REDIS_PEER_H
#define PERF_REDIS_PEER_H

#include <poll.h>
#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <hiredis/hiredis.h>
#include <jansson.h>

#include "hist.h"

#define PERF_PIPELINE_MAX 1024
#define PERF_CONNS_MAX    256 /* request ids carry 8 bits of it */
#define PERF_THREADS_MAX  64
#define PERF_RECENT_MAX   1024 /* answered requests kept for retries */
#define PERF_GATEWAY_ID   1
#define PERF_SUM_STEP     10000 /* users summed per EVAL */
#define PERF_RUN_MAX      0xffff
#define PERF_TIMEOUT_S    30
#define PERF_SCRIPT_MAX   (1 << 20)
#define PERF_ERR_MAX      256

#ifndef PERF_LUA_DEFAULT
#define PERF_LUA_DEFAULT "perf/redis/check_reserve.lua"
#endif

/* The reasons check_reserve.lua answers with. */
enum perf_reason {
	PERF_REASON_APPROVED = 0,
	PERF_REASON_CREDIT = 1,
	PERF_REASON_UNKNOWN_USER = 2,
	PERF_REASON_BAD_AMOUNT = 3,
};

struct perf_cfg {
	const char *socket_path;
	const char *host;
	int port;
	const char *script_path;
	const char *json_path;
	const char *label;
	uint64_t users;
	double seconds;
	double warmup_s;
	unsigned pipeline;
	unsigned conns;
	unsigned threads;
	uint64_t seed;
	int64_t amount_min_fen;
	int64_t amount_max_fen;
	unsigned retry_pct;
	unsigned retain_s;
	bool check;
	bool holds_known;        /* --holds-before given */
	int64_t holds_before_fen; /* ...and its value */
};

/* The script's answer: {approved, available_fen, reason, duplicate}. */
struct perf_answer {
	long long approved;
	long long available_fen;
	long long reason;
	long long dup;
};

struct perf_req {
	uint64_t t_ns;
	uint64_t request_id;
	uint64_t user_id;
	int64_t amount_fen;
	bool retry;
	struct perf_answer first; /* retry: the answer the id got first */
};

struct perf_counts {
	uint64_t ops;
	uint64_t fresh;         /* first use of a request id */
	uint64_t retries;       /* a request id sent again */
	uint64_t approved;
	uint64_t declined_credit;
	uint64_t unknown_user;
	uint64_t retry_mismatch; /* a retry not answered as the first time */
	uint64_t bad_answers;    /* an answer the rule cannot give */
	int64_t approved_fen;
};

/* One connection: its requests in flight, oldest at head. */
struct perf_conn {
	redisContext *rc;     /* non-blocking during the run */
	struct perf_req *slot; /* pipeline entries, a FIFO */
	unsigned head;
	unsigned inflight;
	bool want_write;      /* output left that the socket did not take */
	unsigned index;       /* 0..conns-1: part of its request ids */
	uint64_t seq;
};

/* One thread: several connections, one poll() loop. */
struct perf_worker {
	const struct perf_cfg *cfg;
	const char *sha;
	char retain[16];
	uint64_t run_id;
	struct perf_conn *conn;
	struct pollfd *pfd;
	unsigned nconn;
	uint64_t rng;
	uint64_t t_measure_ns; /* replies from here on are measured... */
	uint64_t t_end_ns;     /* ...until here; no new requests after */
	struct perf_req recent[PERF_RECENT_MAX]; /* answered, for retries */
	unsigned recent_n;
	unsigned recent_next;
	struct perf_counts all;    /* every reply, for the final check */
	struct perf_counts window; /* replies inside the measured window */
	struct perf_hist lat;      /* latencies inside the window, ns */
	unsigned reported;         /* wrong answers printed (the first only) */
	char err[PERF_ERR_MAX];
	pthread_t thread;
};

/* What the server holds, before and after a run. */
struct perf_server {
	int64_t holds_fen;
	uint64_t users_seen;
	uint64_t keys;
};

struct perf_result {
	struct perf_counts all;
	struct perf_counts window;
	struct perf_hist lat;
	double measured_s;
	struct perf_server before;
	struct perf_server after;
	bool checked;
	bool check_ok;
	char err[PERF_ERR_MAX];
};

/* peer_opts.c */
extern const char perf_usage[];
/** Parse argv into @p cfg: 0 to run, else the exit status (2: bad usage). */
int perf_parse_args(int argc, char **argv, struct perf_cfg *cfg, bool *help);

/* peer_server.c */
/** A blocking connection with PERF_TIMEOUT_S timeouts, or NULL (printed). */
redisContext *perf_connect(const struct perf_cfg *cfg);
/** "unknown" unless INFO server names the version. */
void perf_redis_version(redisContext *rc, char *out, size_t len);
/** Load the script, take a run id (INCR perf:run), note the state before. */
int perf_prepare(const struct perf_cfg *cfg, redisContext *rc, char *sha,
		 size_t sha_len, uint64_t *run, struct perf_result *res);
/** The final check: holds grew by the approvals, keys by fresh ids. */
void perf_check(const struct perf_cfg *cfg, redisContext *rc,
		struct perf_result *res);

/* peer_driver.c */
uint64_t perf_now_ns(void);
/** Workers with their connections (open; NULL when out of memory). */
struct perf_worker *perf_workers_open(const struct perf_cfg *cfg,
				      const char *sha, uint64_t run);
/** Did every connection open? */
bool perf_workers_ready(const struct perf_cfg *cfg,
			const struct perf_worker *w);
void perf_workers_close(const struct perf_cfg *cfg, struct perf_worker *w);
/** Warm-up, measured window, drain; sums into @p res. 0 or -EIO. */
int perf_run_workers(const struct perf_cfg *cfg, struct perf_worker *w,
		     struct perf_result *res);

/* peer_report.c */
/** Every answer right and the check passed (or skipped)? */
bool perf_result_ok(const struct perf_result *res);
json_t *perf_json_settings(const struct perf_cfg *cfg, const char *sha,
			   const char *version, uint64_t run);
json_t *perf_json_result(const struct perf_cfg *cfg, json_t *settings,
			 const struct perf_result *res);
/** The JSON on stdout (one line) and, with --json, to that file. */
int perf_emit(const struct perf_cfg *cfg, json_t *root);
/** One line on stderr: rate, percentiles, answers, check. */
void perf_summary(const struct perf_cfg *cfg, const struct perf_result *res);

#endif /* PERF_REDIS_PEER_H */
