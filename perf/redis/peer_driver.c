/*
 * peer_driver.c - perf_redis_peer's timed run.
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
 * parsed, as the client sees it (time waiting in a batch included), into
 * the worker's perf_hist.
 *
 * Timeline: every connection starts at once; replies during the first
 * warmup_s are not measured, then `seconds` are; then no new requests, and
 * those in flight are drained (in the totals, not in the rate).
 *
 * The rule every reply is judged by (perf_judge): an approval leaves
 * available >= 0; a decline for credit saw available < amount; a fresh id
 * is never a duplicate; a retried id gets its first answer back, marked
 * duplicate. Request ids are run << 48 | connection << 40 | sequence.
 *
 * Threads: a worker's connections, counters and histogram are its own;
 * perf_run_workers() adds them up after joining it.
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "peer.h"

/* Clock and random numbers ------------------------------------------------ */

uint64_t
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

/* Workers ----------------------------------------------------------------- */

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
struct perf_worker *
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

bool
perf_workers_ready(const struct perf_cfg *cfg, const struct perf_worker *w)
{
	for (unsigned i = 0; w && i < cfg->threads; i++)
		for (unsigned j = 0; w[i].conn && j < w[i].nconn; j++)
			if (!w[i].conn[j].rc || !w[i].conn[j].slot)
				return false;
	return w != NULL;
}

void
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

int
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
