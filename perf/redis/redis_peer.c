/*
 * redis_peer.c - perf_redis_peer: drives the home-grown peer of authd,
 * Redis + perf/redis/check_reserve.lua, and reports ops/s and latency as
 * one JSON object.
 *
 * Connections: C connections (unix socket, the fastest honest transport
 * on one host, or TCP) shared among T threads; each thread runs one poll()
 * loop over its non-blocking hiredis contexts, like redis-benchmark, so
 * many connections cost no extra threads on a 2-core host. A connection
 * keeps up to P requests in flight: whenever replies come back, it is
 * topped up to P and everything queued is written at once, so requests
 * travel in batches of up to P and replies come back in order (a FIFO of
 * slots). P = 1 is the unpipelined request/reply client; C > 1 of them
 * are that many concurrent clients.
 *
 * Latency of a request: from when it was appended to when its reply was
 * parsed, as the client sees it (time waiting in a batch included), in
 * perf/hist.h's log-linear histogram (perf_hist, as authgen's): exact below
 * 256 ns, then 128 buckets per power of two (error < 0.8%); percentiles
 * report the bucket's upper bound, never above the exact maximum.
 *
 * Timeline: every connection starts at once; replies during the first
 * warmup_s are not measured, then `seconds` are; then no new requests, and
 * those in flight are drained (in the totals, not in the rate).
 *
 * Checks: every reply is checked against the rule (an approval leaves
 * available >= 0; a decline for credit saw available < amount; a fresh id
 * is never a duplicate; a retried id gets its first answer back, marked
 * duplicate). At the end (unless --no-check): the sum of holds over users
 * 1..N must have grown by exactly the amounts approved, and the number of
 * keys by the number of fresh request ids (every answer remembered).
 * Request ids are run << 48 | connection << 40 | sequence, with run from
 * INCR perf:run, so runs against one server never reuse an id.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <fcntl.h>
#include <math.h>
#include <poll.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>
#include <time.h>

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

enum perf_reason {
	PERF_REASON_APPROVED = 0,
	PERF_REASON_CREDIT = 1,
	PERF_REASON_UNKNOWN_USER = 2,
	PERF_REASON_BAD_AMOUNT = 3,
};

/*
 * Sum of holds over users u:ARGV[1]..u:ARGV[2]: {sum, users found}. Only
 * ids 1..N can change (the driver draws from them), and walking them
 * skips the millions of request keys a SCAN would visit.
 */
static const char perf_sum_lua[] =
	"local s, n = 0, 0\n"
	"for i = tonumber(ARGV[1]), tonumber(ARGV[2]) do\n"
	"  local h = redis.call('HGET', 'u:' .. i, 'holds')\n"
	"  if h then s = s + tonumber(h); n = n + 1 end\n"
	"end\n"
	"return {string.format('%.0f', s), n}\n";

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

static const char perf_usage[] =
	"usage: perf_redis_peer (--socket PATH | --port N [--host H])\n"
	"                       --users N [options]\n"
	"\n"
	"Runs pay-later authorizations against Redis + check_reserve.lua\n"
	"for a fixed time: EVALSHA with uniformly random users 1..N and\n"
	"unique request ids, up to P in flight on each of C connections.\n"
	"Prints one JSON object (settings, ops/s, latency percentiles,\n"
	"answer counts, consistency check) on stdout and a summary on\n"
	"stderr. Load the users first (perf_load_users).\n"
	"\n"
	"  --socket PATH       Redis unix socket\n"
	"  --host H --port N   Redis over TCP (default host 127.0.0.1)\n"
	"  --users N           users u:1..u:N to draw from (required)\n"
	"  --seconds S         measured time (default 10)\n"
	"  --warmup S          unmeasured time before it (default 1)\n"
	"  --pipeline P        requests in flight per connection, 1..1024\n"
	"                      (default 1: unpipelined)\n"
	"  --conns C           connections, 1..256 (default 1)\n"
	"  --threads T         threads the connections are shared among,\n"
	"                      1..64, at most C (default 1)\n"
	"  --amount-min FEN    smallest amount (default 100: 1 yuan)\n"
	"  --amount-max FEN    largest amount (default 200000: 2,000 yuan)\n"
	"  --retry-pct X       X% of requests resend an answered request id\n"
	"                      (a gateway retry; default 0)\n"
	"  --retain S          seconds Redis remembers an answer (default\n"
	"                      604800, the engine's 7 days)\n"
	"  --seed S            random seed (default 1)\n"
	"  --script FILE       the Lua script (default " PERF_LUA_DEFAULT ")\n"
	"  --label TEXT        copied into the JSON\n"
	"  --json FILE         also write the JSON (indented) to FILE\n"
	"  --no-check          skip the sum of holds over u:1..u:N taken\n"
	"                      before and after the run\n"
	"  --holds-before FEN  the sum of holds of u:1..u:N now, if known\n"
	"                      (0 after perf_load_users --users N; the last\n"
	"                      run's holds_after_fen): skips the first sum\n"
	"  --help              this text\n"
	"\n"
	"Exit status: 0 all answers and the check are right; 1 a wrong\n"
	"answer, a failed check or a Redis error; 2 bad usage.\n";

static uint64_t
perf_now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ULL + (uint64_t)ts.tv_nsec;
}

static uint64_t
perf_rand(uint64_t *state)
{
	uint64_t z = (*state += 0x9e3779b97f4a7c15ULL);

	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
	return z ^ (z >> 31);
}

/* Uniform in [0, n), n > 0 (Lemire's multiply-shift). */
static uint64_t
perf_below(uint64_t *state, uint64_t n)
{
	return (uint64_t)(((unsigned __int128)perf_rand(state) * n) >> 64);
}

/* Answers ---------------------------------------------------------------- */

static int
perf_parse_answer(const redisReply *r, struct perf_answer *a, char *err)
{
	if (r->type == REDIS_REPLY_ERROR) {
		snprintf(err, PERF_ERR_MAX, "Redis error: %s", r->str);
		return -EPROTO;
	}
	if (r->type != REDIS_REPLY_ARRAY || r->elements != 4) {
		snprintf(err, PERF_ERR_MAX, "the script returned reply type %d "
			 "with %zu elements, not an array of 4", r->type,
			 r->elements);
		return -EPROTO;
	}
	for (int i = 0; i < 4; i++) {
		if (r->element[i]->type != REDIS_REPLY_INTEGER) {
			snprintf(err, PERF_ERR_MAX, "the script's answer "
				 "element %d is not an integer", i);
			return -EPROTO;
		}
	}
	a->approved = r->element[0]->integer;
	a->available_fen = r->element[1]->integer;
	a->reason = r->element[2]->integer;
	a->dup = r->element[3]->integer;
	return 0;
}

static bool
perf_same_answer(const struct perf_answer *x, const struct perf_answer *y)
{
	return x->approved == y->approved &&
	       x->available_fen == y->available_fen && x->reason == y->reason;
}

/* Count one answer; true when the rule could have given it. */
static bool
perf_judge(struct perf_counts *k, const struct perf_req *r,
	   const struct perf_answer *a)
{
	k->ops++;
	if (r->retry) {
		k->retries++;
		if (a->dup == 1 && perf_same_answer(a, &r->first))
			return true;
		k->retry_mismatch++;
		return false;
	}
	k->fresh++;
	if (a->dup == 0 && a->reason == PERF_REASON_APPROVED &&
	    a->approved == 1 && a->available_fen >= 0) {
		k->approved++;
		k->approved_fen += r->amount_fen;
		return true;
	}
	if (a->dup == 0 && a->reason == PERF_REASON_CREDIT &&
	    a->approved == 0 && a->available_fen < r->amount_fen) {
		k->declined_credit++;
		return true;
	}
	if (a->dup == 0 && a->reason == PERF_REASON_UNKNOWN_USER &&
	    a->approved == 0) {
		k->unknown_user++;
		return true;
	}
	k->bad_answers++;
	return false;
}

/* The timed run: one worker thread, several connections ------------------ */

static void
perf_pick(struct perf_worker *w, struct perf_conn *c, struct perf_req *r)
{
	const struct perf_cfg *cfg = w->cfg;
	uint64_t span =
		(uint64_t)(cfg->amount_max_fen - cfg->amount_min_fen) + 1;

	if (cfg->retry_pct && w->recent_n &&
	    perf_below(&w->rng, 100) < cfg->retry_pct) {
		*r = w->recent[perf_below(&w->rng, w->recent_n)];
		r->retry = true;
		return;
	}
	r->retry = false;
	r->request_id = w->run_id << 48 | (uint64_t)c->index << 40 | c->seq++;
	r->user_id = 1 + perf_below(&w->rng, cfg->users);
	r->amount_fen =
		cfg->amount_min_fen + (int64_t)perf_below(&w->rng, span);
}

/* Queue one request on @c (written out by perf_flush). */
static int
perf_send(struct perf_worker *w, struct perf_conn *c, uint64_t now)
{
	struct perf_req *r =
		&c->slot[(c->head + c->inflight) % w->cfg->pipeline];
	char ukey[32], rkey[48], amount[24];
	const char *argv[7] = {"EVALSHA", w->sha, "2", ukey, rkey, amount,
			       w->retain};
	size_t len[7];

	perf_pick(w, c, r);
	r->t_ns = now;
	snprintf(ukey, sizeof(ukey), "u:%" PRIu64, r->user_id);
	snprintf(rkey, sizeof(rkey), "r:%u:%" PRIx64, PERF_GATEWAY_ID,
		 r->request_id);
	snprintf(amount, sizeof(amount), "%" PRId64, r->amount_fen);
	for (int i = 0; i < 7; i++)
		len[i] = strlen(argv[i]);
	if (redisAppendCommandArgv(c->rc, 7, argv, len) != REDIS_OK) {
		snprintf(w->err, PERF_ERR_MAX, "connection %u: cannot queue a "
			 "command: %s", c->index, c->rc->errstr);
		return -ENOMEM;
	}
	c->inflight++;
	return 0;
}

static void
perf_remember(struct perf_worker *w, const struct perf_req *r,
	      const struct perf_answer *a)
{
	struct perf_req *m = &w->recent[w->recent_next];

	*m = *r;
	m->first = *a;
	w->recent_next = (w->recent_next + 1) % PERF_RECENT_MAX;
	if (w->recent_n < PERF_RECENT_MAX)
		w->recent_n++;
}

/* Account the reply to @c's oldest request, received at @now. */
static int
perf_take(struct perf_worker *w, struct perf_conn *c, redisReply *reply,
	  uint64_t now)
{
	struct perf_req *r = &c->slot[c->head];
	struct perf_answer a;
	int rc = perf_parse_answer(reply, &a, w->err);

	freeReplyObject(reply);
	if (rc || c->inflight == 0) {
		if (!rc)
			snprintf(w->err, PERF_ERR_MAX, "connection %u: a "
				 "reply nobody asked for", c->index);
		return -EPROTO;
	}
	c->head = (c->head + 1) % w->cfg->pipeline;
	c->inflight--;
	if (!perf_judge(&w->all, r, &a) && !w->reported++)
		fprintf(stderr, "perf_redis_peer: wrong answer for user "
			"%" PRIu64 " amount %" PRId64 "%s: approved %lld "
			"available %lld "
			"reason %lld dup %lld (only the first is shown)\n",
			r->user_id, r->amount_fen, r->retry ? " (a retry)" : "",
			a.approved, a.available_fen, a.reason, a.dup);
	if (now >= w->t_measure_ns && now < w->t_end_ns) {
		perf_judge(&w->window, r, &a);
		perf_hist_record(&w->lat, now - r->t_ns);
	}
	if (!r->retry)
		perf_remember(w, r, &a);
	return 0;
}

/* Read what @c has received and account every complete reply. */
static int
perf_receive(struct perf_worker *w, struct perf_conn *c)
{
	void *reply;
	uint64_t now;

	if (redisBufferRead(c->rc) != REDIS_OK) {
		snprintf(w->err, PERF_ERR_MAX, "connection %u: reading: %s",
			 c->index, c->rc->errstr);
		return -EIO;
	}
	now = perf_now_ns();
	for (;;) {
		if (redisGetReplyFromReader(c->rc, &reply) != REDIS_OK) {
			snprintf(w->err, PERF_ERR_MAX, "connection %u: bad "
				 "reply: %s", c->index, c->rc->errstr);
			return -EPROTO;
		}
		if (!reply)
			return 0;
		if (perf_take(w, c, reply, now))
			return -EPROTO;
	}
}

/* Write what is queued, as far as the socket takes it. */
static int
perf_flush(struct perf_worker *w, struct perf_conn *c)
{
	int done = 0;

	if (redisBufferWrite(c->rc, &done) != REDIS_OK) {
		snprintf(w->err, PERF_ERR_MAX, "connection %u: writing: %s",
			 c->index, c->rc->errstr);
		return -EIO;
	}
	c->want_write = !done;
	return 0;
}

/* Top every connection up to P in flight, and send. */
static int
perf_fill(struct perf_worker *w, uint64_t now)
{
	for (unsigned i = 0; i < w->nconn; i++) {
		struct perf_conn *c = &w->conn[i];
		bool queued = c->want_write;

		while (c->inflight < w->cfg->pipeline) {
			if (perf_send(w, c, now))
				return -ENOMEM;
			queued = true;
		}
		if (queued && perf_flush(w, c))
			return -EIO;
	}
	return 0;
}

/* Wait for replies (or room to write); returns how many were ready. */
static int
perf_wait(struct perf_worker *w)
{
	unsigned n = 0;
	int ready;

	for (unsigned i = 0; i < w->nconn; i++) {
		struct perf_conn *c = &w->conn[i];

		w->pfd[i].fd = c->rc->fd;
		w->pfd[i].events = (c->inflight ? POLLIN : 0) |
				   (c->want_write ? POLLOUT : 0);
		w->pfd[i].revents = 0;
		n += c->inflight || c->want_write;
	}
	if (n == 0)
		return 0;
	ready = poll(w->pfd, w->nconn, PERF_TIMEOUT_S * 1000);
	if (ready == 0)
		snprintf(w->err, PERF_ERR_MAX, "no reply from Redis for %d s",
			 PERF_TIMEOUT_S);
	if (ready < 0 && errno != EINTR)
		snprintf(w->err, PERF_ERR_MAX, "poll: %s", strerror(errno));
	return ready < 0 && errno == EINTR ? 0 : ready;
}

/* One pass: send (unless past the end), wait, receive. */
static int
perf_step(struct perf_worker *w, bool sending)
{
	if (sending && perf_fill(w, perf_now_ns()))
		return -EIO;
	if (!sending)
		for (unsigned i = 0; i < w->nconn; i++)
			if (w->conn[i].want_write && perf_flush(w, &w->conn[i]))
				return -EIO;
	if (perf_wait(w) <= 0)
		return w->err[0] ? -EIO : 0;
	for (unsigned i = 0; i < w->nconn; i++) {
		short ev = w->pfd[i].revents;

		if ((ev & (POLLIN | POLLERR | POLLHUP)) &&
		    perf_receive(w, &w->conn[i]))
			return -EIO;
	}
	return 0;
}

static bool
perf_drained(const struct perf_worker *w)
{
	for (unsigned i = 0; i < w->nconn; i++)
		if (w->conn[i].inflight)
			return false;
	return true;
}

static void *
perf_worker_run(void *arg)
{
	struct perf_worker *w = arg;

	while (perf_now_ns() < w->t_end_ns)
		if (perf_step(w, true))
			return NULL;
	while (!perf_drained(w))
		if (perf_step(w, false))
			return NULL;
	return NULL;
}

/* Talking to the server, outside the timed run ---------------------------- */

static redisContext *
perf_connect(const struct perf_cfg *cfg)
{
	struct timeval tv = {.tv_sec = PERF_TIMEOUT_S};
	redisContext *rc;

	if (cfg->socket_path)
		rc = redisConnectUnixWithTimeout(cfg->socket_path, tv);
	else
		rc = redisConnectWithTimeout(cfg->host, cfg->port, tv);
	if (!rc || rc->err) {
		if (cfg->socket_path)
			fprintf(stderr, "perf_redis_peer: cannot connect to "
				"%s: %s\n", cfg->socket_path,
				rc ? rc->errstr : "out of memory");
		else
			fprintf(stderr, "perf_redis_peer: cannot connect to "
				"%s:%d: %s\n", cfg->host, cfg->port,
				rc ? rc->errstr : "out of memory");
		if (rc)
			redisFree(rc);
		return NULL;
	}
	/* a stuck server makes the run fail instead of hang */
	redisSetTimeout(rc, tv);
	return rc;
}

/* A reply of the wanted type, or NULL with a message naming @what. */
static redisReply *
perf_expect(redisContext *rc, void *reply, int type, const char *what)
{
	redisReply *r = reply;

	if (!r) {
		fprintf(stderr, "perf_redis_peer: %s: %s\n", what, rc->errstr);
		return NULL;
	}
	if (r->type != type) {
		fprintf(stderr, "perf_redis_peer: %s: unexpected reply%s%s\n",
			what, r->type == REDIS_REPLY_ERROR ? ": " : "",
			r->type == REDIS_REPLY_ERROR ? r->str : "");
		freeReplyObject(r);
		return NULL;
	}
	return r;
}

static int
perf_read_script(const char *path, char **text)
{
	FILE *f = fopen(path, "r");
	size_t n;

	if (!f) {
		fprintf(stderr, "perf_redis_peer: cannot open the script %s: "
			"%s (give --script FILE)\n", path, strerror(errno));
		return -ENOENT;
	}
	*text = malloc(PERF_SCRIPT_MAX + 1);
	n = *text ? fread(*text, 1, PERF_SCRIPT_MAX + 1, f) : 0;
	fclose(f);
	if (!*text || n == 0 || n > PERF_SCRIPT_MAX) {
		fprintf(stderr, "perf_redis_peer: %s is empty, unreadable or "
			"over 1 MiB\n", path);
		free(*text);
		*text = NULL;
		return -EINVAL;
	}
	(*text)[n] = '\0';
	return 0;
}

static int
perf_script_load(redisContext *rc, const char *path, char *sha, size_t len)
{
	char *text;
	redisReply *r;

	if (perf_read_script(path, &text))
		return -ENOENT;
	r = perf_expect(rc, redisCommand(rc, "SCRIPT LOAD %s", text),
			REDIS_REPLY_STRING, "SCRIPT LOAD");
	free(text);
	if (!r)
		return -EPROTO;
	snprintf(sha, len, "%s", r->str);
	freeReplyObject(r);
	return 0;
}

static int
perf_integer(redisContext *rc, void *reply, const char *what, long long *v)
{
	redisReply *r = perf_expect(rc, reply, REDIS_REPLY_INTEGER, what);

	if (!r)
		return -EPROTO;
	*v = r->integer;
	freeReplyObject(r);
	return 0;
}

/* Add the holds of users @from..@to to @s. */
static int
perf_sum_step(redisContext *rc, uint64_t from, uint64_t to,
	      struct perf_server *s)
{
	redisReply *r = perf_expect(
		rc, redisCommand(rc, "EVAL %s 0 %llu %llu", perf_sum_lua,
				 (unsigned long long)from,
				 (unsigned long long)to),
		REDIS_REPLY_ARRAY, "summing holds");
	int ret = -EPROTO;

	if (!r)
		return -EPROTO;
	if (r->elements == 2 && r->element[0]->type == REDIS_REPLY_STRING &&
	    r->element[1]->type == REDIS_REPLY_INTEGER) {
		s->holds_fen += strtoll(r->element[0]->str, NULL, 10);
		s->users_seen += (uint64_t)r->element[1]->integer;
		ret = 0;
	} else {
		fprintf(stderr, "perf_redis_peer: summing holds: malformed "
			"reply\n");
	}
	freeReplyObject(r);
	return ret;
}

/* The key count and, if @sum, the holds of users 1..@users. */
static int
perf_server_state(redisContext *rc, uint64_t users, bool sum,
		  struct perf_server *s)
{
	long long keys;

	memset(s, 0, sizeof(*s));
	if (perf_integer(rc, redisCommand(rc, "DBSIZE"), "DBSIZE", &keys))
		return -EPROTO;
	s->keys = (uint64_t)keys;
	for (uint64_t from = 1; sum && from <= users; from += PERF_SUM_STEP) {
		uint64_t to = from + PERF_SUM_STEP - 1;

		if (to > users)
			to = users;

		if (perf_sum_step(rc, from, to, s))
			return -EPROTO;
	}
	return 0;
}

static void
perf_redis_version(redisContext *rc, char *out, size_t len)
{
	redisReply *r = perf_expect(rc, redisCommand(rc, "INFO server"),
				    REDIS_REPLY_STRING, "INFO server");
	const char *p = r ? strstr(r->str, "redis_version:") : NULL;

	snprintf(out, len, "unknown");
	if (p)
		snprintf(out, len, "%.*s", (int)strcspn(p + 14, "\r\n"),
			 p + 14);
	if (r)
		freeReplyObject(r);
}

/* Warn when u:N is missing: the users were not loaded, or fewer. */
static void
perf_warn_missing(redisContext *rc, uint64_t users)
{
	long long n = 0;

	if (perf_integer(rc, redisCommand(rc, "EXISTS u:%llu",
					  (unsigned long long)users),
			 "EXISTS", &n) == 0 && n == 0)
		fprintf(stderr, "perf_redis_peer: warning: u:%" PRIu64 " does "
			"not exist: were %" PRIu64 " users loaded "
			"(perf_load_users)? Requests for missing users are "
			"declined as unknown.\n", users, users);
}

/* Argument parsing ------------------------------------------------------- */

static int
perf_opt_u64(const char *opt, const char *s, uint64_t min, uint64_t max,
	     uint64_t *v)
{
	char *end;
	unsigned long long x;

	errno = 0;
	x = strtoull(s, &end, 10);
	if (errno || *s == '-' || *s == '\0' || *end != '\0' || x < min ||
	    x > max) {
		fprintf(stderr, "perf_redis_peer: %s wants an integer in "
			"%" PRIu64 "..%" PRIu64 ", got '%s'\n", opt, min, max,
			s);
		return -EINVAL;
	}
	*v = x;
	return 0;
}

static int
perf_opt_seconds(const char *opt, const char *s, double min, double *v)
{
	char *end;

	errno = 0;
	*v = strtod(s, &end);
	if (errno || *s == '\0' || *end != '\0' || !(*v >= min) ||
	    *v > 86400) {
		fprintf(stderr, "perf_redis_peer: %s wants seconds in "
			"%g..86400, got '%s'\n", opt, min, s);
		return -EINVAL;
	}
	return 0;
}

enum {
	PERF_OPT_SOCKET = 256, PERF_OPT_HOST, PERF_OPT_PORT, PERF_OPT_USERS,
	PERF_OPT_SECONDS, PERF_OPT_WARMUP, PERF_OPT_PIPELINE, PERF_OPT_CONNS,
	PERF_OPT_THREADS,
	PERF_OPT_AMIN, PERF_OPT_AMAX, PERF_OPT_RETRY, PERF_OPT_RETAIN,
	PERF_OPT_SEED, PERF_OPT_SCRIPT, PERF_OPT_LABEL, PERF_OPT_JSON,
	PERF_OPT_NOCHECK, PERF_OPT_HOLDS, PERF_OPT_HELP,
};

static const struct option perf_opts[] = {
	{"socket", required_argument, NULL, PERF_OPT_SOCKET},
	{"host", required_argument, NULL, PERF_OPT_HOST},
	{"port", required_argument, NULL, PERF_OPT_PORT},
	{"users", required_argument, NULL, PERF_OPT_USERS},
	{"seconds", required_argument, NULL, PERF_OPT_SECONDS},
	{"warmup", required_argument, NULL, PERF_OPT_WARMUP},
	{"pipeline", required_argument, NULL, PERF_OPT_PIPELINE},
	{"conns", required_argument, NULL, PERF_OPT_CONNS},
	{"threads", required_argument, NULL, PERF_OPT_THREADS},
	{"amount-min", required_argument, NULL, PERF_OPT_AMIN},
	{"amount-max", required_argument, NULL, PERF_OPT_AMAX},
	{"retry-pct", required_argument, NULL, PERF_OPT_RETRY},
	{"retain", required_argument, NULL, PERF_OPT_RETAIN},
	{"seed", required_argument, NULL, PERF_OPT_SEED},
	{"script", required_argument, NULL, PERF_OPT_SCRIPT},
	{"label", required_argument, NULL, PERF_OPT_LABEL},
	{"json", required_argument, NULL, PERF_OPT_JSON},
	{"no-check", no_argument, NULL, PERF_OPT_NOCHECK},
	{"holds-before", required_argument, NULL, PERF_OPT_HOLDS},
	{"help", no_argument, NULL, PERF_OPT_HELP},
	{NULL, 0, NULL, 0},
};

/* One numeric option into cfg; -EINVAL on a bad value, 1 if not numeric. */
static int
perf_opt_number(struct perf_cfg *cfg, int opt, const char *arg)
{
	uint64_t v = 0;
	int rc = 1;

	switch (opt) {
	case PERF_OPT_PORT:
		rc = perf_opt_u64("--port", arg, 1, 65535, &v);
		cfg->port = (int)v;
		break;
	case PERF_OPT_USERS:
		rc = perf_opt_u64("--users", arg, 1, 1ULL << 40, &cfg->users);
		break;
	case PERF_OPT_PIPELINE:
		rc = perf_opt_u64("--pipeline", arg, 1, PERF_PIPELINE_MAX, &v);
		cfg->pipeline = (unsigned)v;
		break;
	case PERF_OPT_CONNS:
		rc = perf_opt_u64("--conns", arg, 1, PERF_CONNS_MAX, &v);
		cfg->conns = (unsigned)v;
		break;
	case PERF_OPT_THREADS:
		rc = perf_opt_u64("--threads", arg, 1, PERF_THREADS_MAX, &v);
		cfg->threads = (unsigned)v;
		break;
	case PERF_OPT_AMIN:
	case PERF_OPT_AMAX:
		rc = perf_opt_u64(opt == PERF_OPT_AMIN ? "--amount-min"
						       : "--amount-max",
				  arg, 1, 1ULL << 50, &v);
		*(opt == PERF_OPT_AMIN ? &cfg->amount_min_fen
				       : &cfg->amount_max_fen) = (int64_t)v;
		break;
	case PERF_OPT_RETRY:
		rc = perf_opt_u64("--retry-pct", arg, 0, 100, &v);
		cfg->retry_pct = (unsigned)v;
		break;
	case PERF_OPT_RETAIN:
		rc = perf_opt_u64("--retain", arg, 1, 1u << 30, &v);
		cfg->retain_s = (unsigned)v;
		break;
	case PERF_OPT_SEED:
		rc = perf_opt_u64("--seed", arg, 0, UINT64_MAX, &cfg->seed);
		break;
	case PERF_OPT_HOLDS:
		rc = perf_opt_u64("--holds-before", arg, 0, INT64_MAX, &v);
		cfg->holds_before_fen = (int64_t)v;
		cfg->holds_known = true;
		break;
	case PERF_OPT_SECONDS:
		rc = perf_opt_seconds("--seconds", arg, 0.01, &cfg->seconds);
		break;
	case PERF_OPT_WARMUP:
		rc = perf_opt_seconds("--warmup", arg, 0, &cfg->warmup_s);
		break;
	}
	return rc;
}

/* 0: run; otherwise the exit status (0 after --help). */
static int
perf_parse_args(int argc, char **argv, struct perf_cfg *cfg, bool *help)
{
	int opt, rc;

	while ((opt = getopt_long(argc, argv, "", perf_opts, NULL)) != -1) {
		rc = perf_opt_number(cfg, opt, optarg);
		if (rc < 0)
			return 2;
		if (rc == 0)
			continue;
		switch (opt) {
		case PERF_OPT_SOCKET: cfg->socket_path = optarg; break;
		case PERF_OPT_HOST: cfg->host = optarg; break;
		case PERF_OPT_SCRIPT: cfg->script_path = optarg; break;
		case PERF_OPT_LABEL: cfg->label = optarg; break;
		case PERF_OPT_JSON: cfg->json_path = optarg; break;
		case PERF_OPT_NOCHECK: cfg->check = false; break;
		case PERF_OPT_HELP: *help = true; return 0;
		default: fputs(perf_usage, stderr); return 2;
		}
	}
	if (optind < argc) {
		fprintf(stderr, "perf_redis_peer: unexpected '%s' (see "
			"--help)\n", argv[optind]);
		return 2;
	}
	if (!cfg->socket_path == !cfg->port) {
		fprintf(stderr, "perf_redis_peer: give --socket PATH or --port "
			"N (not both)\n");
		return 2;
	}
	if (!cfg->users) {
		fprintf(stderr, "perf_redis_peer: --users N is required\n");
		return 2;
	}
	if (cfg->threads > cfg->conns) {
		fprintf(stderr, "perf_redis_peer: --threads %u is more than "
			"--conns %u\n", cfg->threads, cfg->conns);
		return 2;
	}
	if (cfg->amount_min_fen > cfg->amount_max_fen) {
		fprintf(stderr, "perf_redis_peer: --amount-min is above "
			"--amount-max\n");
		return 2;
	}
	return 0;
}

/* The run ---------------------------------------------------------------- */

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

static void
perf_counts_add(struct perf_counts *to, const struct perf_counts *k)
{
	to->ops += k->ops;
	to->fresh += k->fresh;
	to->retries += k->retries;
	to->approved += k->approved;
	to->declined_credit += k->declined_credit;
	to->unknown_user += k->unknown_user;
	to->retry_mismatch += k->retry_mismatch;
	to->bad_answers += k->bad_answers;
	to->approved_fen += k->approved_fen;
}

/* Connect @c and make it non-blocking (hiredis then returns on EAGAIN). */
static int
perf_conn_open(const struct perf_cfg *cfg, struct perf_conn *c)
{
	int fl;

	c->slot = calloc(cfg->pipeline, sizeof(*c->slot));
	c->rc = perf_connect(cfg);
	if (!c->slot || !c->rc)
		return -ENOMEM;
	fl = fcntl(c->rc->fd, F_GETFL);
	if (fl < 0 || fcntl(c->rc->fd, F_SETFL, fl | O_NONBLOCK) < 0) {
		fprintf(stderr, "perf_redis_peer: fcntl O_NONBLOCK: %s\n",
			strerror(errno));
		return -errno;
	}
	c->rc->flags &= ~REDIS_BLOCK;
	return 0;
}

/* Workers with the connections dealt out round-robin. */
static struct perf_worker *
perf_workers_open(const struct perf_cfg *cfg, const char *sha, uint64_t run)
{
	struct perf_worker *w = calloc(cfg->threads, sizeof(*w));
	unsigned i;

	for (i = 0; w && i < cfg->threads; i++) {
		w[i].cfg = cfg;
		w[i].sha = sha;
		w[i].run_id = run;
		w[i].rng = perf_rand(&(uint64_t){cfg->seed + i});
		perf_hist_init(&w[i].lat);
		snprintf(w[i].retain, sizeof(w[i].retain), "%u", cfg->retain_s);
		w[i].nconn = cfg->conns / cfg->threads +
			     (i < cfg->conns % cfg->threads);
		w[i].conn = calloc(w[i].nconn, sizeof(*w[i].conn));
		w[i].pfd = calloc(w[i].nconn, sizeof(*w[i].pfd));
		if (!w[i].conn || !w[i].pfd)
			return w;
	}
	for (i = 0; w && i < cfg->conns; i++) {
		struct perf_conn *c =
			&w[i % cfg->threads].conn[i / cfg->threads];

		c->index = i;
		if (perf_conn_open(cfg, c))
			return w;
	}
	return w;
}

static bool
perf_workers_ready(const struct perf_cfg *cfg, const struct perf_worker *w)
{
	for (unsigned i = 0; w && i < cfg->threads; i++)
		for (unsigned j = 0; w[i].conn && j < w[i].nconn; j++)
			if (!w[i].conn[j].rc || !w[i].conn[j].slot)
				return false;
	return w != NULL;
}

static void
perf_workers_close(const struct perf_cfg *cfg, struct perf_worker *w)
{
	for (unsigned i = 0; w && i < cfg->threads; i++) {
		for (unsigned j = 0; w[i].conn && j < w[i].nconn; j++) {
			if (w[i].conn[j].rc)
				redisFree(w[i].conn[j].rc);
			free(w[i].conn[j].slot);
		}
		free(w[i].conn);
		free(w[i].pfd);
	}
	free(w);
}

static int
perf_run_workers(const struct perf_cfg *cfg, struct perf_worker *w,
		 struct perf_result *res)
{
	uint64_t t_measure = perf_now_ns() + (uint64_t)(cfg->warmup_s * 1e9);
	unsigned started = 0;

	for (unsigned i = 0; i < cfg->threads; i++) {
		w[i].t_measure_ns = t_measure;
		w[i].t_end_ns = t_measure + (uint64_t)(cfg->seconds * 1e9);
	}
	for (; started < cfg->threads; started++)
		if (pthread_create(&w[started].thread, NULL, perf_worker_run,
				   &w[started])) {
			snprintf(res->err, PERF_ERR_MAX, "cannot start thread "
				 "%u", started);
			break;
		}
	for (unsigned i = 0; i < started; i++) {
		pthread_join(w[i].thread, NULL);
		if (w[i].err[0] && !res->err[0])
			snprintf(res->err, PERF_ERR_MAX, "thread %u: %.200s", i,
				 w[i].err);
		perf_counts_add(&res->all, &w[i].all);
		perf_counts_add(&res->window, &w[i].window);
		perf_hist_merge(&res->lat, &w[i].lat);
	}
	res->measured_s = cfg->seconds;
	return res->err[0] ? -EIO : 0;
}

/* The final check: money and remembered answers add up. */
static void
perf_check(const struct perf_cfg *cfg, redisContext *rc,
	   struct perf_result *res)
{
	int64_t held;
	uint64_t added;

	if (perf_server_state(rc, cfg->users, cfg->check, &res->after)) {
		snprintf(res->err, PERF_ERR_MAX, "cannot read the server's "
			 "state after the run");
		return;
	}
	if (!cfg->check)
		return;
	res->checked = true;
	held = res->after.holds_fen - res->before.holds_fen;
	added = res->after.keys - res->before.keys;
	res->check_ok = held == res->all.approved_fen &&
			added == res->all.fresh;
	if (!res->check_ok)
		fprintf(stderr, "perf_redis_peer: CHECK FAILED: holds grew by "
			"%" PRId64 " fen but %" PRId64 " fen were approved; "
			"keys grew by %" PRIu64 " for %" PRIu64 " fresh "
			"request ids\n", held, res->all.approved_fen, added,
			res->all.fresh);
}

/* JSON -------------------------------------------------------------------- */

static json_t *
perf_json_settings(const struct perf_cfg *cfg, const char *sha,
		   const char *version, uint64_t run)
{
	json_t *s = json_object();
	char where[512];

	if (cfg->socket_path)
		snprintf(where, sizeof(where), "unix:%s", cfg->socket_path);
	else
		snprintf(where, sizeof(where), "tcp:%s:%d", cfg->host,
			 cfg->port);
	json_object_set_new(s, "transport", json_string(where));
	json_object_set_new(s, "redis_version", json_string(version));
	json_object_set_new(s, "script", json_string(cfg->script_path));
	json_object_set_new(s, "script_sha", json_string(sha));
	json_object_set_new(s, "users", json_integer((json_int_t)cfg->users));
	json_object_set_new(s, "seconds", json_real(cfg->seconds));
	json_object_set_new(s, "warmup_s", json_real(cfg->warmup_s));
	json_object_set_new(s, "pipeline", json_integer(cfg->pipeline));
	json_object_set_new(s, "conns", json_integer(cfg->conns));
	json_object_set_new(s, "threads", json_integer(cfg->threads));
	json_object_set_new(s, "amount_min_fen",
			    json_integer(cfg->amount_min_fen));
	json_object_set_new(s, "amount_max_fen",
			    json_integer(cfg->amount_max_fen));
	json_object_set_new(s, "retry_pct", json_integer(cfg->retry_pct));
	json_object_set_new(s, "retain_s", json_integer(cfg->retain_s));
	json_object_set_new(s, "seed", json_integer((json_int_t)cfg->seed));
	json_object_set_new(s, "run", json_integer((json_int_t)run));
	json_object_set_new(s, "holds_before_given",
			    json_boolean(cfg->holds_known));
	return s;
}

static json_t *
perf_json_counts(const struct perf_counts *k)
{
	return json_pack("{s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I}",
			 "ops", (json_int_t)k->ops, "fresh",
			 (json_int_t)k->fresh,
			 "retries", (json_int_t)k->retries, "approved",
			 (json_int_t)k->approved, "declined_credit",
			 (json_int_t)k->declined_credit, "unknown_user",
			 (json_int_t)k->unknown_user, "retry_mismatch",
			 (json_int_t)k->retry_mismatch, "bad_answers",
			 (json_int_t)k->bad_answers, "approved_fen",
			 (json_int_t)k->approved_fen);
}

static json_t *
perf_json_latency(const struct perf_hist *l)
{
	return json_pack(
		"{s:I, s:f, s:I, s:I, s:I, s:I, s:I, s:I}", "count",
		(json_int_t)l->count, "mean_ns", perf_hist_mean(l),
		"p50_ns", (json_int_t)perf_hist_quantile(l, 0.50), "p90_ns",
		(json_int_t)perf_hist_quantile(l, 0.90), "p99_ns",
		(json_int_t)perf_hist_quantile(l, 0.99), "p999_ns",
		(json_int_t)perf_hist_quantile(l, 0.999), "p9999_ns",
		(json_int_t)perf_hist_quantile(l, 0.9999), "max_ns",
		(json_int_t)l->max);
}

static json_t *
perf_json_check(const struct perf_result *res)
{
	if (!res->checked)
		return json_pack("{s:b}", "done", 0);
	return json_pack("{s:b, s:b, s:I, s:I, s:I, s:I, s:I, s:I}", "done", 1,
			 "ok", res->check_ok, "holds_before_fen",
			 (json_int_t)res->before.holds_fen, "holds_after_fen",
			 (json_int_t)res->after.holds_fen, "approved_fen",
			 (json_int_t)res->all.approved_fen, "users_seen",
			 (json_int_t)res->after.users_seen, "keys_added",
			 (json_int_t)(res->after.keys - res->before.keys),
			 "fresh_requests", (json_int_t)res->all.fresh);
}

static bool
perf_result_ok(const struct perf_result *res)
{
	return !res->err[0] && res->all.bad_answers == 0 &&
	       res->all.retry_mismatch == 0 && (!res->checked || res->check_ok);
}

static json_t *
perf_json_result(const struct perf_cfg *cfg, json_t *settings,
		 const struct perf_result *res)
{
	json_t *root = json_object();
	double ops_s = res->measured_s > 0 ? (double)res->window.ops /
						     res->measured_s : 0;

	json_object_set_new(root, "tool", json_string("perf_redis_peer"));
	if (cfg->label)
		json_object_set_new(root, "label", json_string(cfg->label));
	json_object_set_new(root, "pipeline", json_integer(cfg->pipeline));
	json_object_set_new(root, "conns", json_integer(cfg->conns));
	json_object_set_new(root, "ops_per_s", json_real(round(ops_s)));
	json_object_set_new(root, "ok", json_boolean(perf_result_ok(res)));
	if (res->err[0])
		json_object_set_new(root, "error", json_string(res->err));
	json_object_set_new(root, "settings", settings);
	json_object_set_new(root, "measured", perf_json_counts(&res->window));
	json_object_set_new(root, "latency", perf_json_latency(&res->lat));
	json_object_set_new(root, "total", perf_json_counts(&res->all));
	json_object_set_new(root, "check", perf_json_check(res));
	return root;
}

static int
perf_emit(const struct perf_cfg *cfg, json_t *root)
{
	int rc = 0;

	if (json_dumpf(root, stdout, JSON_COMPACT) || fputc('\n', stdout) < 0 ||
	    fflush(stdout)) {
		fprintf(stderr, "perf_redis_peer: cannot write the JSON to "
			"stdout\n");
		rc = -EIO;
	}
	if (cfg->json_path &&
	    json_dump_file(root, cfg->json_path, JSON_INDENT(2))) {
		fprintf(stderr, "perf_redis_peer: cannot write %s\n",
			cfg->json_path);
		rc = -EIO;
	}
	return rc;
}

static void
perf_summary(const struct perf_cfg *cfg, const struct perf_result *res)
{
	const struct perf_hist *l = &res->lat;

	fprintf(stderr, "perf_redis_peer: P=%u conns=%u threads=%u: %.0f "
		"ops/s; latency "
		"p50 %.1f us, p99 %.1f us, p99.9 %.1f us; %" PRIu64
		" approved, %" PRIu64 " declined, %" PRIu64 " unknown user; "
		"check %s\n", cfg->pipeline, cfg->conns, cfg->threads,
		(double)res->window.ops / res->measured_s,
		perf_hist_quantile(l, 0.5) / 1e3,
		perf_hist_quantile(l, 0.99) / 1e3,
		perf_hist_quantile(l, 0.999) / 1e3, res->all.approved,
		res->all.declined_credit, res->all.unknown_user,
		!res->checked ? "skipped" : res->check_ok ? "ok" : "FAILED");
}

/* main ------------------------------------------------------------------- */

/* Before the run: load the script, take a run id, note the state. */
static int
perf_prepare(const struct perf_cfg *cfg, redisContext *rc, char *sha,
	     size_t sha_len, uint64_t *run, struct perf_result *res)
{
	long long r;

	if (perf_script_load(rc, cfg->script_path, sha, sha_len))
		return -EPROTO;
	if (perf_integer(rc, redisCommand(rc, "INCR perf:run"), "INCR perf:run",
			 &r))
		return -EPROTO;
	if (r < 1 || r > PERF_RUN_MAX) {
		fprintf(stderr, "perf_redis_peer: perf:run is %lld, past %d "
			"runs: request ids could repeat; use a fresh server\n",
			r, PERF_RUN_MAX);
		return -ERANGE;
	}
	*run = (uint64_t)r;
	perf_warn_missing(rc, cfg->users);
	if (perf_server_state(rc, cfg->users, cfg->check && !cfg->holds_known,
			      &res->before))
		return -EPROTO;
	if (cfg->holds_known)
		res->before.holds_fen = cfg->holds_before_fen;
	return 0;
}

static int
perf_measure(const struct perf_cfg *cfg)
{
	static struct perf_result res; /* large: the latency histogram */
	struct perf_worker *workers = NULL;
	char sha[64], version[32];
	uint64_t run = 0;
	redisContext *rc = perf_connect(cfg);
	json_t *root;
	int status = 1;

	if (!rc)
		return 1;
	perf_hist_init(&res.lat);
	perf_redis_version(rc, version, sizeof(version));
	if (perf_prepare(cfg, rc, sha, sizeof(sha), &run, &res))
		goto out;
	workers = perf_workers_open(cfg, sha, run);
	if (!perf_workers_ready(cfg, workers)) {
		fprintf(stderr, "perf_redis_peer: could not open %u "
			"connections (see above, or out of memory)\n",
			cfg->conns);
		goto out;
	}
	if (perf_run_workers(cfg, workers, &res) == 0)
		perf_check(cfg, rc, &res);
	root = perf_json_result(
		cfg, perf_json_settings(cfg, sha, version, run), &res);
	if (perf_emit(cfg, root) == 0 && perf_result_ok(&res))
		status = 0;
	json_decref(root);
	perf_summary(cfg, &res);
	if (res.err[0])
		fprintf(stderr, "perf_redis_peer: %s\n", res.err);
out:
	perf_workers_close(cfg, workers);
	redisFree(rc);
	return status;
}

int
main(int argc, char **argv)
{
	struct perf_cfg cfg = {
		.host = "127.0.0.1",
		.script_path = PERF_LUA_DEFAULT,
		.seconds = 10,
		.warmup_s = 1,
		.pipeline = 1,
		.conns = 1,
		.threads = 1,
		.seed = 1,
		.amount_min_fen = 100,
		.amount_max_fen = 200000,
		.retain_s = 7 * 86400,
		.check = true,
	};
	bool help = false;
	int rc = perf_parse_args(argc, argv, &cfg, &help);

	if (help) {
		fputs(perf_usage, stdout);
		return 0;
	}
	if (rc)
		return rc;
	return perf_measure(&cfg);
}
