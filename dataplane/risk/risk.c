/*
 * risk.c - the risk engine: features on the decision stream and three
 * cash-out detectors, whose verdicts go to a sink.
 *
 * Owns three fixed-size tables, allocated once at create time and never
 * grown (docs/risk.md has the sizes and the memory per entry):
 *  - users: sliding-window counts (approved payments in a minute, in 6 x
 *    10 s buckets; in an hour, in 12 x 5 min buckets: attempts, approved
 *    payments, round ones, suspicious ones), the last limit seen and the
 *    last raise, the last merchants;
 *  - merchants: the hour's approved payments, near-limit and suspicious
 *    ones, and the last RISK_PAYERS suspicious payers (user, device, time);
 *  - devices: the last RISK_DEVICE_USERS users seen on the device, with the
 *    time of each one's last suspicious payment.
 * Each table is 8-way set-associative: a key hashes to a set of 8 entries;
 * a new key takes a free way or evicts the least recently seen. The 8 keys
 * of a set sit together in one cache line apart from the entries, so a
 * lookup reads that line and the entry it finds. Lookups and inserts are
 * bounded (8 compares), nothing is allocated per event, and an evicted
 * entry costs only history (counted: *_evicted).
 *
 * "Suspicious" = near-limit (the amount fits the credit available before
 * the payment, is at least near-pct % of it and at least max-pct % of the
 * credit limit: a max-limit payment "just under the limit"; neither an
 * over-limit attempt nor the last crumbs of a line) AND round (a multiple
 * of round-fen). The detectors read approved payments only (money that
 * moved): a declined purchase retried, or a spree going on after the line
 * ran dry, is what ordinary users do, and attempts are already limited by
 * the synchronous velocity rules. Attempts are kept for the evidence. Time
 * is the decisions' now_s, never a clock, so a test replays exactly.
 *
 * Verdicts are issued at most once per (entity, kind) within rearm-s; they
 * go to the caller's sink: applied (dp_risk_apply(), risk_apply.c, then
 * journaled) in mode on, logged and counted only in shadow mode. The
 * settings and the log line are risk_config.c's.
 *
 * This file is the per-record path (tables, windows, features, detectors)
 * and stays one translation unit: its small table and window functions are
 * inlined into every feed, which a split would turn into calls.
 *
 * Concurrency: an engine is used by one thread. dp_risk_apply() follows
 * lim.h (see its comment in risk.h).
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "auth.h"
#include "risk.h"

#define RISK_WAYS 8
#define RISK_MIN_B 6            /* minute window: 6 buckets ... */
#define RISK_MIN_W 10           /* ... of 10 s */
#define RISK_HOUR_B 12          /* hour window: 12 buckets ... */
#define RISK_HOUR_W 300         /* ... of 5 min */
#define RISK_HOUR_S (RISK_HOUR_B * RISK_HOUR_W)
#define RISK_DEVICE_USERS 8     /* >= crowd-users' maximum */
#define RISK_PAYERS 16          /* >= merchant-users' maximum */
#define RISK_USER_MERCHANTS 4
#define RISK_PREFETCH 8         /* records ahead whose key lines are fetched */
#define RISK_PREFETCH2 3        /* records ahead whose entries are fetched */
#define RISK_SAT16 0xffffu

/* Hour-window counters of a user (H_*) and of a merchant (M_*). */
enum { H_N, H_OK, H_ROUND, H_SUS, H_COUNTERS };
enum { M_N, M_NEAR, M_SUS, M_COUNTERS };

/* The start of every table entry. key 0 = free. */
struct risk_head {
	uint64_t key;
	uint32_t last_s;            /* last decision seen (eviction order) */
	uint32_t done_s;            /* last verdict given */
	uint8_t done;               /* verdicts given since done_s - rearm */
	uint8_t pad[7];
};

struct risk_user {
	struct risk_head h;
	int64_t limit_fen;          /* last limit seen; -1: none yet */
	int64_t raise_from_fen, raise_to_fen;
	int64_t post_raise_fen;     /* approved since the raise */
	uint32_t raise_s;           /* 0: no raise seen */
	uint32_t min_head, hour_head;
	uint32_t merchant[RISK_USER_MERCHANTS];
	uint32_t merchant_s[RISK_USER_MERCHANTS];
	uint16_t min_c[RISK_MIN_B];
	uint16_t hour_c[RISK_HOUR_B][H_COUNTERS];
	uint8_t post_raise_n;
};

struct risk_device_user {
	uint64_t user_id;
	uint32_t seen_s;
	uint32_t sus_s;             /* 0: no suspicious payment */
};

struct risk_device {
	struct risk_head h;
	struct risk_device_user u[RISK_DEVICE_USERS];
};

struct risk_payer {
	uint64_t user_id;
	uint64_t device_id;
	uint32_t t;
	uint32_t pad;
};

struct risk_merchant {
	struct risk_head h;
	uint32_t head;
	uint16_t mcc, region;
	uint16_t c[RISK_HOUR_B][M_COUNTERS];
	struct risk_payer p[RISK_PAYERS];
};

struct risk_table {
	uint64_t *keys;             /* [sets][RISK_WAYS]: one line per set */
	uint8_t *mem;               /* [sets][RISK_WAYS] entries */
	size_t esize;
	uint64_t sets_mask;
	uint64_t used;
	enum dp_risk_counter evicted;
};

struct dp_risk_engine {
	struct dp_risk_config cfg;
	struct risk_table users, merchants, devices;
	struct dp_risk_counters cnt;
	uint32_t log_s, log_n;      /* rate limit of the verdict lines */
	const struct dp_risk_sink *sink;  /* during a feed call */
	bool applying;              /* apply_begin() called in this feed */
};

_Static_assert(RISK_DEVICE_USERS <= 8 && RISK_PAYERS <= 16,
	       "the crowd-users and merchant-users maximums fit the sets");

/* ------------------------------------------------------------------------ */
/* Tables: 8-way set-associative, least recently seen evicted                 */

/* murmur3's 64-bit finaliser: every output bit depends on every input bit. */
static inline uint64_t
risk_mix(uint64_t x)
{
	x ^= x >> 33;
	x *= 0xff51afd7ed558ccdULL;
	x ^= x >> 33;
	x *= 0xc4ceb9fe1a85ec53ULL;
	return x ^ (x >> 33);
}

static int
table_init(struct risk_table *t, uint64_t max, size_t esize,
	   enum dp_risk_counter evicted)
{
	uint64_t sets = 1;

	while (sets * RISK_WAYS < max)
		sets <<= 1;
	t->keys = aligned_alloc(64, sets * RISK_WAYS * sizeof(uint64_t));
	t->mem = calloc(sets * RISK_WAYS, esize);
	t->esize = esize;
	t->sets_mask = sets - 1;
	t->used = 0;
	t->evicted = evicted;
	if (!t->keys || !t->mem)
		return -ENOMEM;
	memset(t->keys, 0, sets * RISK_WAYS * sizeof(uint64_t));
	return 0;
}

static void
table_free(struct risk_table *t)
{
	free(t->keys);
	free(t->mem);
}

/* Start fetching the line of @p key's set (the 8 keys). */
static inline void
table_prefetch(const struct risk_table *t, uint64_t key)
{
	__builtin_prefetch(&t->keys[(risk_mix(key) & t->sets_mask) * RISK_WAYS]);
}

static struct risk_head *
way(const struct risk_table *t, uint64_t set, unsigned w)
{
	return (struct risk_head *)(t->mem + (set * RISK_WAYS + w) * t->esize);
}

static void *
table_find(const struct risk_table *t, uint64_t key)
{
	uint64_t set = risk_mix(key) & t->sets_mask;
	const uint64_t *k = &t->keys[set * RISK_WAYS];

	for (unsigned w = 0; w < RISK_WAYS; w++)
		if (k[w] == key)
			return way(t, set, w);
	return NULL;
}

/*
 * Second stage, once the key line is in cache (table_prefetch() a few
 * records earlier): prefetch for writing the entry of @p key, or the ways
 * table_get() would read to insert it.
 */
static inline void
table_prefetch_entry(const struct risk_table *t, uint64_t key)
{
	uint64_t set = risk_mix(key) & t->sets_mask;
	const uint64_t *k = &t->keys[set * RISK_WAYS];
	const char *h;

	if (!key)
		return;
	if ((h = table_find(t, key)) != NULL) {
		for (size_t o = 0; o < t->esize; o += 64)
			__builtin_prefetch(h + o, 1, 3);
		__builtin_prefetch(h + t->esize - 1, 1, 3);
		return;
	}
	/* Absent: table_get() takes the first free way, or reads every way's
	 * last_s to evict the least recently seen (a full set). */
	for (unsigned w = 0; w < RISK_WAYS; w++) {
		__builtin_prefetch(way(t, set, w), 1, 3);
		if (!k[w])
			return;
	}
}

/*
 * The entry of @p key, taking a free way or the least recently seen one of
 * its set when absent (then *fresh is set and the entry is zeroed). key != 0.
 */
static void *
table_get(struct dp_risk_engine *e, struct risk_table *t, uint64_t key,
	  uint32_t now, bool *fresh)
{
	uint64_t set = risk_mix(key) & t->sets_mask;
	uint64_t *k = &t->keys[set * RISK_WAYS];
	struct risk_head *h;
	unsigned victim = RISK_WAYS;

	*fresh = false;
	for (unsigned w = 0; w < RISK_WAYS; w++) {
		if (k[w] == key) {
			h = way(t, set, w);
			if ((int32_t)(now - h->last_s) > 0)
				h->last_s = now;
			return h;
		}
		if (!k[w] && victim == RISK_WAYS)
			victim = w;
	}
	if (victim == RISK_WAYS) {
		/* a full set: the least recently seen goes */
		victim = 0;
		for (unsigned w = 1; w < RISK_WAYS; w++)
			if (way(t, set, w)->last_s < way(t, set, victim)->last_s)
				victim = w;
		e->cnt.c[t->evicted]++;
	} else {
		t->used++;
	}
	h = way(t, set, victim);
	memset(h, 0, t->esize);
	h->key = k[victim] = key;
	h->last_s = now;
	*fresh = true;
	return h;
}

/* Whether verdict @p kind was given to @p h within rearm-s (re-arms it). */
static bool
done(const struct dp_risk_engine *e, struct risk_head *h, unsigned kind,
     uint32_t now)
{
	if (h->done && (int32_t)(now - h->done_s) >= (int32_t)e->cfg.rearm_s)
		h->done = 0;
	return (h->done >> kind) & 1;
}

static void
done_set(struct risk_head *h, unsigned kind, uint32_t now)
{
	h->done |= (uint8_t)(1u << kind);
	h->done_s = now;
}

/* ------------------------------------------------------------------------ */
/* Sliding windows: nb buckets of w seconds, nc saturating counters each      */

/*
 * Move a window whose newest bucket is *head to time @p t (buckets that
 * fall out are cleared) and return the bucket of @p t, or -1 when @p t is
 * older than the window (a late record from another lcore).
 */
static int
win_slot(uint32_t *head, uint16_t *c, unsigned nb, unsigned nc, uint32_t w,
	 uint32_t t)
{
	uint32_t b = t / w;

	if (*head == 0 || b >= *head + nb) {
		memset(c, 0, (size_t)nb * nc * sizeof(*c));
		*head = b;
	} else if (b > *head) {
		for (uint32_t k = *head + 1; k <= b; k++)
			memset(c + (k % nb) * nc, 0, nc * sizeof(*c));
		*head = b;
	} else if (*head - b >= nb) {
		return -1;
	}
	return (int)(b % nb);
}

/* Counter @p k summed over the buckets of the window that ends at @p t. */
static uint32_t
win_sum(uint32_t head, const uint16_t *c, unsigned nb, unsigned nc,
	unsigned k, uint32_t w, uint32_t t)
{
	uint32_t b = t / w, ref = b > head ? b : head, sum = 0;

	if (head == 0)
		return 0;
	for (uint32_t j = 0; j < nb && j <= head; j++)
		if (ref - (head - j) < nb)
			sum += c[((head - j) % nb) * nc + k];
	return sum;
}

static void
sat_add(uint16_t *x, unsigned v)
{
	*x = (uint16_t)(*x + v > RISK_SAT16 ? RISK_SAT16 : *x + v);
}

static bool
within(uint32_t t, uint32_t now, uint32_t span)
{
	return t && (int32_t)(now - t) >= 0 && now - t < span;
}

/* ------------------------------------------------------------------------ */
/* Features                                                                   */

/* The record is an authorization attempt worth learning from. */
static bool
counts(const struct dp_decision *d)
{
	if (d->op != LIM_OP_AUTHORIZE || d->user_id == 0 || d->amount_fen <= 0 ||
	    (d->notes & AUTH_NOTE_DUPLICATE))
		return false;
	switch (d->reason) {
	case AUTH_REASON_UNKNOWN_USER:
	case AUTH_REASON_REVERSED:
	case AUTH_REASON_BAD_STATE:
	case AUTH_REASON_UNKNOWN_REF:
	case AUTH_REASON_MALFORMED:
	case AUTH_REASON_BUSY:
		return false;
	default:
		return true;
	}
}

static bool
user_known(const struct dp_decision *d)
{
	return d->user_id && d->limit_fen >= 0 &&
	       d->reason != AUTH_REASON_UNKNOWN_USER &&
	       d->reason != AUTH_REASON_MALFORMED && d->status != AUTH_STATUS_ERROR;
}

/* Track the user's limit; a growth is a raise (from the control plane). */
static void
user_limit(struct dp_risk_engine *e, struct risk_user *u,
	   const struct dp_decision *d)
{
	if (u->limit_fen >= 0 && d->limit_fen > u->limit_fen) {
		u->raise_from_fen = u->limit_fen;
		u->raise_to_fen = d->limit_fen;
		u->raise_s = d->now_s;
		u->post_raise_n = 0;
		u->post_raise_fen = 0;
		e->cnt.c[DP_RISK_C_raises]++;
	}
	u->limit_fen = d->limit_fen;
}

static bool
raise_active(const struct dp_risk_engine *e, const struct risk_user *u,
	     uint32_t now)
{
	return within(u->raise_s, now, e->cfg.raise_window_s + 1);
}

static void
user_merchant(struct risk_user *u, uint32_t merchant_id, uint32_t now)
{
	unsigned oldest = 0;

	if (!merchant_id)
		return;
	for (unsigned i = 0; i < RISK_USER_MERCHANTS; i++) {
		if (u->merchant[i] == merchant_id) {
			u->merchant_s[i] = now;
			return;
		}
		if (u->merchant_s[i] < u->merchant_s[oldest])
			oldest = i;
	}
	u->merchant[oldest] = merchant_id;
	u->merchant_s[oldest] = now;
}

static void
user_learn(const struct dp_risk_engine *e, struct risk_user *u,
	   const struct dp_decision *d, bool approved, bool round, bool sus)
{
	uint32_t now = d->now_s;
	int s = win_slot(&u->min_head, u->min_c, RISK_MIN_B, 1, RISK_MIN_W, now);

	if (s >= 0)
		sat_add(&u->min_c[s], approved);
	s = win_slot(&u->hour_head, &u->hour_c[0][0], RISK_HOUR_B, H_COUNTERS,
		     RISK_HOUR_W, now);
	if (s >= 0) {
		sat_add(&u->hour_c[s][H_N], 1);
		sat_add(&u->hour_c[s][H_OK], approved);
		sat_add(&u->hour_c[s][H_ROUND], approved && round);
		sat_add(&u->hour_c[s][H_SUS], approved && sus);
	}
	if (raise_active(e, u, now)) {
		if (u->post_raise_n < UINT8_MAX)
			u->post_raise_n++;
		if (approved && u->post_raise_fen < LIM_MONEY_MAX)
			u->post_raise_fen += d->amount_fen;
	}
	user_merchant(u, d->merchant_id, now);
}

static uint32_t
user_sum(const struct risk_user *u, unsigned k, uint32_t now)
{
	return win_sum(u->hour_head, &u->hour_c[0][0], RISK_HOUR_B, H_COUNTERS,
		       k, RISK_HOUR_W, now);
}

/* Add @p user_id to the device's users; returns its slot. */
static struct risk_device_user *
device_learn(struct risk_device *dv, uint64_t user_id, bool sus, uint32_t now)
{
	struct risk_device_user *slot = NULL;

	for (unsigned i = 0; i < RISK_DEVICE_USERS && !slot; i++)
		if (dv->u[i].user_id == user_id)
			slot = &dv->u[i];
	for (unsigned i = 0; i < RISK_DEVICE_USERS && !slot; i++)
		if (!dv->u[i].user_id)
			slot = &dv->u[i];
	if (!slot) {
		slot = &dv->u[0];
		for (unsigned i = 1; i < RISK_DEVICE_USERS; i++)
			if (dv->u[i].seen_s < slot->seen_s)
				slot = &dv->u[i];
		memset(slot, 0, sizeof(*slot));
	}
	slot->user_id = user_id;
	slot->seen_s = now;
	if (sus)
		slot->sus_s = now;
	return slot;
}

/* Users seen on @p dv within the hour, and how many paid suspiciously. */
static unsigned
device_users(const struct risk_device *dv, uint32_t now, unsigned *crowd)
{
	unsigned n = 0, c = 0;

	for (unsigned i = 0; i < RISK_DEVICE_USERS; i++) {
		if (!dv->u[i].user_id || !within(dv->u[i].seen_s, now, RISK_HOUR_S))
			continue;
		n++;
		c += within(dv->u[i].sus_s, now, RISK_HOUR_S);
	}
	if (crowd)
		*crowd = c;
	return n;
}

static void
merchant_payer(struct risk_merchant *m, uint64_t user_id, uint64_t device_id,
	       uint32_t now)
{
	struct risk_payer *p = NULL, *oldest = &m->p[0];

	for (unsigned i = 0; i < RISK_PAYERS && !p; i++) {
		if (m->p[i].user_id == user_id)
			p = &m->p[i];
		else if (m->p[i].t < oldest->t)
			oldest = &m->p[i];
	}
	if (!p)
		p = oldest;
	p->user_id = user_id;
	p->device_id = device_id;
	p->t = now;
}

/* An approved payment at the merchant. */
static void
merchant_learn(struct risk_merchant *m, const struct dp_decision *d,
	       bool near, bool sus)
{
	int s = win_slot(&m->head, &m->c[0][0], RISK_HOUR_B, M_COUNTERS,
			 RISK_HOUR_W, d->now_s);

	m->mcc = d->mcc;
	m->region = d->region;
	if (s >= 0) {
		sat_add(&m->c[s][M_N], 1);
		sat_add(&m->c[s][M_NEAR], near);
		sat_add(&m->c[s][M_SUS], sus);
	}
	if (sus)
		merchant_payer(m, d->user_id, d->device_id, d->now_s);
}

static uint32_t
merchant_sum(const struct risk_merchant *m, unsigned k, uint32_t now)
{
	return win_sum(m->head, &m->c[0][0], RISK_HOUR_B, M_COUNTERS, k,
		       RISK_HOUR_W, now);
}

/*
 * Suspicious payers of the hour whose device no other user shares (a
 * device seen with two or more users within the hour links them: a family
 * or a crowd, which the crowd detector judges, not the merchant).
 */
static unsigned
merchant_unrelated(const struct dp_risk_engine *e, const struct risk_merchant *m,
		   uint32_t now, unsigned *payers)
{
	unsigned n = 0, all = 0;

	for (unsigned i = 0; i < RISK_PAYERS; i++) {
		const struct risk_payer *p = &m->p[i];
		const struct risk_device *dv;

		if (!p->user_id || !within(p->t, now, RISK_HOUR_S))
			continue;
		all++;
		dv = p->device_id ? table_find(&e->devices, p->device_id) : NULL;
		if (!dv || device_users(dv, now, NULL) < 2)
			n++;
	}
	if (payers)
		*payers = all;
	return n;
}

/* ------------------------------------------------------------------------ */
/* Verdicts                                                                   */

static bool
log_allow(struct dp_risk_engine *e, uint32_t now)
{
	if (now != e->log_s) {
		e->log_s = now;
		e->log_n = 0;
	}
	if (e->log_n < e->cfg.log_per_s) {
		e->log_n++;
		return true;
	}
	e->cnt.c[DP_RISK_C_log_suppressed]++;
	return false;
}

/* Apply (mode on) and journal one verdict; returns its outcome. */
static int
act(struct dp_risk_engine *e, const struct dp_risk_verdict *v)
{
	const struct dp_risk_sink *s = e->sink;
	bool merchant = dp_risk_verdict_on_merchant(v->kind);
	struct lim_cfg_effect ce;
	int rc, out;

	if (!e->applying) {
		if (s->apply_begin)
			s->apply_begin(s->arg);
		e->applying = true;
	}
	if (merchant && s->merchants_lock)
		s->merchants_lock(s->arg);
	rc = dp_risk_apply(s->db, v, &ce);
	if (rc > 0) {
		/* Merchants: journaled in seq order, under the update lock. */
		if (s->journal && s->journal(s->arg, &ce) == 0)
			e->cnt.c[DP_RISK_C_journaled]++;
		else
			e->cnt.c[DP_RISK_C_journal_missing]++;
	}
	if (merchant && s->merchants_unlock)
		s->merchants_unlock(s->arg);
	out = rc > 0 ? DP_RISK_OUT_APPLIED
		     : rc == 0 ? DP_RISK_OUT_UNCHANGED : DP_RISK_OUT_FAILED;
	e->cnt.c[rc > 0 ? DP_RISK_C_applied
			: rc == 0 ? DP_RISK_C_unchanged : DP_RISK_C_failed]++;
	return out;
}

static void
emit(struct dp_risk_engine *e, const struct dp_risk_verdict *v)
{
	const struct dp_risk_sink *s = e->sink;
	int out = DP_RISK_OUT_SHADOW;
	char line[512];

	e->cnt.c[DP_RISK_C_verdicts]++;
	e->cnt.by_kind[v->kind]++;
	e->cnt.by_detector[v->detector]++;
	if (e->cfg.mode == DP_RISK_ON && s && s->db)
		out = act(e, v);
	else
		e->cnt.c[DP_RISK_C_shadow]++;
	if (!s)
		return;
	if (s->verdict)
		s->verdict(s->arg, v, out);
	if (s->log && log_allow(e, v->now_s)) {
		dp_risk_verdict_format(v, out, line, sizeof(line));
		s->log(s->arg, line);
	}
}

/* Issue verdict @p kind about entity @p h unless given within rearm-s. */
static unsigned
issue(struct dp_risk_engine *e, struct risk_head *h,
      enum dp_risk_verdict_kind kind, enum dp_risk_detector det,
      const struct dp_decision *d, uint16_t score,
      const struct dp_risk_evidence *ev)
{
	struct dp_risk_verdict v = {
		.kind = kind, .detector = det, .id = h->key, .now_s = d->now_s,
		.score = score, .mcc = d->mcc, .region = d->region, .ev = *ev,
	};

	if (done(e, h, kind, d->now_s))
		return 0;
	done_set(h, kind, d->now_s);
	if (kind == DP_RISK_V_LOWER_LIMIT)
		v.lower_pct = (uint8_t)e->cfg.lower_pct;
	emit(e, &v);
	return 1;
}

/* ------------------------------------------------------------------------ */
/* Detectors                                                                  */

static void
user_evidence(const struct dp_risk_engine *e, const struct risk_user *u,
	      uint32_t now, struct dp_risk_evidence *ev)
{
	const struct dp_risk_config *c = &e->cfg;
	int64_t raise = u->raise_to_fen - u->raise_from_fen;

	ev->n_min = win_sum(u->min_head, u->min_c, RISK_MIN_B, 1, 0, RISK_MIN_W,
			    now);
	ev->n_hour = user_sum(u, H_N, now);
	ev->ok_hour = user_sum(u, H_OK, now);
	ev->round_hour = user_sum(u, H_ROUND, now);
	ev->sus_hour = user_sum(u, H_SUS, now);
	ev->post_raise_n = u->post_raise_n;
	ev->raise_from_fen = u->raise_from_fen;
	ev->raise_to_fen = u->raise_to_fen;
	ev->post_raise_fen = u->post_raise_fen;
	ev->burst = ev->n_min >= c->burst_min || ev->ok_hour >= c->burst_hour;
	ev->round = ev->round_hour >= c->round_n &&
		    (uint64_t)ev->round_hour * 100 >= (uint64_t)c->round_pct * ev->ok_hour;
	ev->near = ev->sus_hour >= c->near_n;
	ev->raise = raise_active(e, u, now) && u->post_raise_n >= c->raise_n &&
		    u->post_raise_fen * 100 >= (int64_t)c->raise_use_pct * raise;
	ev->points = (uint32_t)ev->burst + ev->round + ev->near + ev->raise;
}

/*
 * Time-series anomaly of one user: bursts, round amounts, near-limit round
 * amounts, payments right after a limit raise; one point each. At
 * freeze-points: freeze; at warn-points: raise the score and, when a raise
 * is being used, lower the limit. Timing alone (a shopping spree, even right
 * after a raise) is what ordinary users do: a verdict needs the money shape
 * of cash-out too (round or near-limit round amounts).
 */
static unsigned
detect_anomaly(struct dp_risk_engine *e, struct risk_user *u,
	       const struct dp_decision *d)
{
	const struct dp_risk_config *c = &e->cfg;
	struct dp_risk_evidence ev = {0};
	unsigned n = 0;

	user_evidence(e, u, d->now_s, &ev);
	if (!ev.round && !ev.near)
		return 0;
	if (ev.points >= c->freeze_points)
		return issue(e, &u->h, DP_RISK_V_FREEZE_USER, DP_RISK_D_ANOMALY,
			     d, (uint16_t)c->user_score_freeze, &ev);
	if (ev.points < c->warn_points || done(e, &u->h, DP_RISK_V_FREEZE_USER,
						d->now_s))
		return 0;
	n += issue(e, &u->h, DP_RISK_V_USER_SCORE, DP_RISK_D_ANOMALY, d,
		   (uint16_t)c->user_score_warn, &ev);
	if (ev.raise && c->lower_pct)
		n += issue(e, &u->h, DP_RISK_V_LOWER_LIMIT, DP_RISK_D_ANOMALY, d,
			   0, &ev);
	return n;
}

/*
 * Fraudulent merchant: at least merchant-users unrelated users paid
 * suspiciously there within the hour and suspicious payments are at least
 * merchant-share-pct % of its authorizations: block it; at
 * merchant-warn-users: raise its score.
 */
static unsigned
detect_merchant(struct dp_risk_engine *e, struct risk_merchant *m,
		const struct dp_decision *d)
{
	const struct dp_risk_config *c = &e->cfg;
	struct dp_risk_evidence ev = {0};
	uint32_t now = d->now_s;

	ev.m_n = merchant_sum(m, M_N, now);
	ev.m_sus = merchant_sum(m, M_SUS, now);
	ev.unrelated = merchant_unrelated(e, m, now, NULL);
	if ((uint64_t)ev.m_sus * 100 < (uint64_t)c->merchant_share_pct * ev.m_n ||
	    done(e, &m->h, DP_RISK_V_BLOCK_MERCHANT, now))
		return 0;
	if (ev.unrelated >= c->merchant_users)
		return issue(e, &m->h, DP_RISK_V_BLOCK_MERCHANT,
			     DP_RISK_D_MERCHANT, d,
			     (uint16_t)c->merchant_score_block, &ev);
	if (ev.unrelated >= c->merchant_warn_users)
		return issue(e, &m->h, DP_RISK_V_MERCHANT_SCORE,
			     DP_RISK_D_MERCHANT, d,
			     (uint16_t)c->merchant_score_warn, &ev);
	return 0;
}

/*
 * Fraud crowd: crowd-users or more users of one device paid suspiciously
 * within the hour: freeze each of them; raise the score of the device's
 * other users of the hour. Runs last for a record: it looks users up (and
 * may evict), so no user entry pointer survives it.
 */
static unsigned
detect_crowd(struct dp_risk_engine *e, struct risk_device *dv,
	     const struct dp_decision *d)
{
	const struct dp_risk_config *c = &e->cfg;
	struct dp_risk_evidence ev = {0};
	uint32_t now = d->now_s;
	unsigned crowd, n = 0;

	ev.device_users = device_users(dv, now, &crowd);
	ev.crowd = crowd;
	ev.device_id = dv->h.key;
	if (crowd < c->crowd_users)
		return 0;
	for (unsigned i = 0; i < RISK_DEVICE_USERS; i++) {
		const struct risk_device_user *du = &dv->u[i];
		bool sus = within(du->sus_s, now, RISK_HOUR_S), fresh;
		struct risk_user *u;

		if (!du->user_id || !within(du->seen_s, now, RISK_HOUR_S))
			continue;
		u = table_get(e, &e->users, du->user_id, now, &fresh);
		if (fresh)
			u->limit_fen = -1;
		if (sus)
			n += issue(e, &u->h, DP_RISK_V_FREEZE_USER,
				   DP_RISK_D_CROWD, d,
				   (uint16_t)c->user_score_freeze, &ev);
		else if (!done(e, &u->h, DP_RISK_V_FREEZE_USER, now))
			n += issue(e, &u->h, DP_RISK_V_USER_SCORE,
				   DP_RISK_D_CROWD, d,
				   (uint16_t)c->user_score_warn, &ev);
	}
	return n;
}

/* ------------------------------------------------------------------------ */
/* Feeding                                                                    */

/* Learn from one counted authorization and run the detectors. */
static unsigned
learn_auth(struct dp_risk_engine *e, const struct dp_decision *d)
{
	const struct dp_risk_config *c = &e->cfg;
	bool approved = d->status == AUTH_STATUS_APPROVED, fresh;
	int64_t before = approved ? d->available_fen + d->amount_fen
				  : d->available_fen;
	bool near = d->amount_fen <= before &&
		    d->amount_fen * 100 >= (int64_t)c->near_pct * before &&
		    d->amount_fen * 100 >= (int64_t)c->max_pct * d->limit_fen;
	bool round = d->amount_fen % c->round_fen == 0;
	bool sus = near && round;
	struct risk_user *u = table_get(e, &e->users, d->user_id, d->now_s, &fresh);
	struct risk_merchant *m = NULL;
	struct risk_device *dv = NULL;
	unsigned n;

	if (fresh)
		u->limit_fen = -1;
	user_limit(e, u, d);
	user_learn(e, u, d, approved, round, sus);
	sus = sus && approved;
	if (d->device_id) {
		dv = table_get(e, &e->devices, d->device_id, d->now_s, &fresh);
		device_learn(dv, d->user_id, sus, d->now_s);
	}
	if (d->merchant_id && approved) {
		m = table_get(e, &e->merchants, d->merchant_id, d->now_s, &fresh);
		merchant_learn(m, d, near, sus);
	}
	e->cnt.c[DP_RISK_C_counted]++;
	n = detect_anomaly(e, u, d);
	if (m && sus)
		n += detect_merchant(e, m, d);
	if (dv && sus)
		n += detect_crowd(e, dv, d);
	return n;
}

static unsigned
learn(struct dp_risk_engine *e, const struct dp_decision *d)
{
	struct risk_user *u;

	if (counts(d))
		return learn_auth(e, d);
	e->cnt.c[DP_RISK_C_ignored]++;
	/* Other operations still tell a tracked user's limit. */
	if (user_known(d) && (u = table_find(&e->users, d->user_id)) != NULL)
		user_limit(e, u, d);
	return 0;
}

unsigned
dp_risk_engine_feed(struct dp_risk_engine *e, const struct dp_decision *d,
		    unsigned n, const struct dp_risk_sink *sink)
{
	unsigned verdicts = 0;

	e->sink = sink;
	e->applying = false;
	for (unsigned i = 0; i < n; i++) {
		/* The tables are far larger than the caches: overlap the misses. */
		if (i + RISK_PREFETCH < n) {
			const struct dp_decision *p = &d[i + RISK_PREFETCH];

			table_prefetch(&e->users, p->user_id);
			table_prefetch(&e->devices, p->device_id);
			table_prefetch(&e->merchants, p->merchant_id);
		}
		if (i + RISK_PREFETCH2 < n) {
			const struct dp_decision *p = &d[i + RISK_PREFETCH2];

			table_prefetch_entry(&e->users, p->user_id);
			table_prefetch_entry(&e->devices, p->device_id);
		}
		e->cnt.c[DP_RISK_C_consumed]++;
		if (e->cfg.mode != DP_RISK_OFF)
			verdicts += learn(e, &d[i]);
	}
	if (e->applying && sink->apply_end)
		sink->apply_end(sink->arg);
	e->applying = false;
	e->sink = NULL;
	return verdicts;
}

/* ------------------------------------------------------------------------ */
/* Engine life cycle and views                                                */

struct dp_risk_engine *
dp_risk_engine_create(const struct dp_risk_config *cfg)
{
	struct dp_risk_engine *e = calloc(1, sizeof(*e));

	if (!e)
		return NULL;
	e->cfg = *cfg;
	if (table_init(&e->users, cfg->users_max, sizeof(struct risk_user),
		       DP_RISK_C_users_evicted) ||
	    table_init(&e->merchants, cfg->merchants_max,
		       sizeof(struct risk_merchant), DP_RISK_C_merchants_evicted) ||
	    table_init(&e->devices, cfg->devices_max, sizeof(struct risk_device),
		       DP_RISK_C_devices_evicted)) {
		dp_risk_engine_free(e);
		return NULL;
	}
	return e;
}

void
dp_risk_engine_free(struct dp_risk_engine *e)
{
	if (!e)
		return;
	table_free(&e->users);
	table_free(&e->merchants);
	table_free(&e->devices);
	free(e);
}

void
dp_risk_engine_configure(struct dp_risk_engine *e,
			 const struct dp_risk_config *cfg)
{
	struct dp_risk_config c = *cfg;

	c.users_max = e->cfg.users_max;
	c.merchants_max = e->cfg.merchants_max;
	c.devices_max = e->cfg.devices_max;
	e->cfg = c;
}

void
dp_risk_engine_counters(const struct dp_risk_engine *e,
			struct dp_risk_counters *out)
{
	*out = e->cnt;
	out->users = e->users.used;
	out->merchants = e->merchants.used;
	out->devices = e->devices.used;
}

size_t
dp_risk_engine_bytes(const struct dp_risk_engine *e)
{
	const struct risk_table *t[] = {&e->users, &e->merchants, &e->devices};
	size_t b = sizeof(*e);

	for (unsigned i = 0; i < 3; i++)
		b += (t[i]->sets_mask + 1) * RISK_WAYS * (t[i]->esize + 8);
	return b;
}

bool
dp_risk_engine_user(struct dp_risk_engine *e, uint64_t id, uint32_t now_s,
		    struct dp_risk_user_view *out)
{
	const struct risk_user *u = table_find(&e->users, id);
	struct dp_risk_evidence ev = {0};

	memset(out, 0, sizeof(*out));
	if (!u || !id)
		return false;
	user_evidence(e, u, now_s, &ev);
	out->n_min = ev.n_min;
	out->n_hour = ev.n_hour;
	out->ok_hour = ev.ok_hour;
	out->round_hour = ev.round_hour;
	out->sus_hour = ev.sus_hour;
	out->post_raise_n = u->post_raise_n;
	out->raise_s = u->raise_s;
	out->limit_fen = u->limit_fen;
	out->raise_from_fen = u->raise_from_fen;
	out->raise_to_fen = u->raise_to_fen;
	out->post_raise_fen = u->post_raise_fen;
	for (unsigned i = 0; i < RISK_USER_MERCHANTS; i++)
		out->merchants += u->merchant[i] &&
				  within(u->merchant_s[i], now_s, RISK_HOUR_S);
	out->done = u->h.done;
	return true;
}

bool
dp_risk_engine_merchant(struct dp_risk_engine *e, uint32_t id, uint32_t now_s,
			struct dp_risk_merchant_view *out)
{
	const struct risk_merchant *m = table_find(&e->merchants, id);

	memset(out, 0, sizeof(*out));
	if (!m || !id)
		return false;
	out->n = merchant_sum(m, M_N, now_s);
	out->near = merchant_sum(m, M_NEAR, now_s);
	out->sus = merchant_sum(m, M_SUS, now_s);
	out->unrelated = merchant_unrelated(e, m, now_s, &out->payers);
	out->done = m->h.done;
	return true;
}
