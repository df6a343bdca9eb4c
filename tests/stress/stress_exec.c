/*
 * stress_exec.c - auth_exec_one() from several threads on the same few hot
 * users, while a writer republishes merchants, the policy and the funder
 * table through RCU and changes the users' limits under their locks.
 *
 * Workers are QSBR readers (quiescent state every QS_EVERY records), each
 * with its own budget shard and request-id space; like dataplane lcores they
 * read one shared clock once per burst of BURST records, so their "now"
 * differ by a few seconds, and the run crosses midnight into a new month
 * (31 October -> 1 November, UTC+8). Each authorizes (pay later,
 * installments, cash; a quarter through the users' shared group wallet),
 * captures and voids its own holds (whole and partial), repays, and resends
 * requests (the replay must be the first answer). A worker keeps, per user,
 * what its approved records moved: holds placed minus released, debt added
 * minus repaid, by product. The lending ceiling is small and refilled in
 * small chunks, so shards race for the global room (GLOBAL_CAP, and
 * lim_apply's -EAGAIN retry). A capture or void must come after its
 * authorization in the journal.
 *
 * At the end money is conserved exactly: for every user the balances equal
 * the sum of the workers' books; the ceiling in use equals the sum of debt
 * and holds; the open holds in the op store equal the users' holds; every
 * funder's quota in use equals its part of the loans in the store; the
 * ledger sequence equals the number of recorded effects.
 *
 * Bounded: AUTHD_STRESS_EXEC_OPS records per worker (default 100,000).
 */
#include <inttypes.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <urcu-qsbr.h>

#include "auth.h"
#include "lim_fixture.h"

#define WORKERS 3
#define HOT 4
#define OPS_DEFAULT 100000
#define QS_EVERY 16
#define BURST 32
#define OPEN_MAX 16 /* open holds per worker: 3 x 16 x 30k fit the ceiling */
#define GW 9
#define CEILING 3000000LL /* 30,000 yuan for everyone: contended */
#define CHUNK 10000LL
#define GROUP 90

/* Stop the process with a message: cmocka's asserts are not thread-safe. */
#define CHECK(c)                                                               \
	do {                                                                   \
		if (!(c)) {                                                    \
			fprintf(stderr, "%s:%d: check failed: %s\n", __FILE__, \
				__LINE__, #c);                                 \
			abort();                                               \
		}                                                              \
	} while (0)

static const uint64_t hot_ids[HOT] = {3001, 3002, 3003, 3004};

struct open_hold {
	uint64_t rid;
	unsigned user;     /* index into hot_ids */
	int64_t held;
	uint8_t product;
	uint64_t seq;      /* ledger seq of the authorization */
};

struct worker {
	pthread_t tid;
	unsigned id;
	uint64_t rng;
	uint64_t n_ops;
	struct auth_exec x;
	struct open_hold open[OPEN_MAX];
	unsigned n_open;
	uint64_t next_rid;
	/* what this worker's approved records moved, per user */
	int64_t holds[HOT], pl[HOT], inst[HOT], cash[HOT];
	/* the last request and its answer, for a resend */
	struct auth_req last;
	struct auth_resp last_resp;
	bool has_last;
	/* counters */
	uint64_t recorded, approved, declined, busy, dups, global_cap;
	uint64_t by_reason[AUTH_REASONS];
};

static struct fx F;
static struct worker W[WORKERS];
static int workers_done;
static uint64_t ticks; /* records done by all workers: the shared clock */
static uint32_t start_s;
static uint64_t writer_rounds;

static uint64_t
rnd(uint64_t *s)
{
	uint64_t z = (*s += 0x9e3779b97f4a7c15ULL);

	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
	return z ^ (z >> 31);
}

static uint64_t
below(struct worker *w, uint64_t n)
{
	return rnd(&w->rng) % n;
}

static uint64_t
ops_per_worker(void)
{
	const char *e = getenv("AUTHD_STRESS_EXEC_OPS");

	return e && *e ? strtoull(e, NULL, 0) : OPS_DEFAULT;
}

static struct auth_req
mkreq(struct worker *w, uint8_t op, unsigned user, uint64_t ref,
      int64_t amount, uint8_t product)
{
	struct auth_req r = {
		.request_id = w->next_rid++,
		.user_id = hot_ids[user],
		.ref_id = ref,
		.amount = amount,
		.merchant_id = op == LIM_OP_REPAY ? 0 : 5001,
		.mcc = 5411,
		.region = 21,
		.op = op,
		.product = product,
		.terms = product == LIM_PRODUCT_INSTALLMENT ? 6 : 0,
		.channel = AUTH_CHANNEL_APP,
		.device_id = w->id,
	};
	return r;
}

static struct auth_resp
run(struct worker *w, const struct auth_req *r)
{
	struct lim_user *u = lim_users_find(F.db->users, r->user_id);
	struct auth_resp a;
	struct lim_effect e;
	enum auth_exec_rc rc;

	CHECK(u);
	rc = auth_exec_one(&w->x, GW, r, u, &a, &e);
	if (rc == AUTH_EXEC_RECORDED) {
		w->recorded++;
		CHECK(e.request_id == r->request_id && e.seq != 0);
		CHECK(a.status != AUTH_STATUS_APPROVED || a.ledger_seq == e.seq);
	}
	CHECK(a.request_id == r->request_id && a.user_id == r->user_id);
	if (a.reason < AUTH_REASONS)
		w->by_reason[a.reason]++;
	if (a.status == AUTH_STATUS_APPROVED)
		w->approved++;
	else if (a.reason == AUTH_REASON_BUSY)
		w->busy++;
	else
		w->declined++;
	if (a.reason == AUTH_REASON_GLOBAL_CAP)
		w->global_cap++;
	w->last = *r;
	w->last_resp = a;
	w->has_last = true;
	return a;
}

static void
forget_open(struct worker *w, unsigned i)
{
	w->open[i] = w->open[--w->n_open];
}

static void
do_authorize(struct worker *w)
{
	unsigned user = (unsigned)below(w, HOT), k = (unsigned)below(w, 100);
	uint8_t product = k < 60 ? LIM_PRODUCT_PAYLATER
			  : k < 85 ? LIM_PRODUCT_INSTALLMENT : LIM_PRODUCT_CASH;
	int64_t amount = 1 + (int64_t)below(w, 60000);
	struct auth_req r = mkreq(w, LIM_OP_AUTHORIZE, user, 0, amount, product);
	struct auth_resp a;

	if (w->n_open == OPEN_MAX && product != LIM_PRODUCT_CASH)
		product = r.product = LIM_PRODUCT_CASH; /* nowhere to track */
	r.terms = product == LIM_PRODUCT_INSTALLMENT ? 6 : 0;
	if (below(w, 4) == 0)
		r.group_id = GROUP; /* the family wallet: a second lock */
	a = run(w, &r);
	if (a.status != AUTH_STATUS_APPROVED)
		return;
	CHECK(a.amount == amount);
	if (product == LIM_PRODUCT_CASH) {
		CHECK(a.hold_expires == 0);
		w->cash[user] += amount;
		return;
	}
	CHECK(a.hold_expires == w->x.now.s + lim_policy_get(F.db)->hold_ttl_s);
	w->holds[user] += amount;
	w->open[w->n_open++] = (struct open_hold){r.request_id, user, amount,
						   product, a.ledger_seq};
}

static void
do_capture(struct worker *w)
{
	unsigned i = (unsigned)below(w, w->n_open);
	struct open_hold *h = &w->open[i];
	int64_t amount = below(w, 2) ? h->held : 1 + (int64_t)below(w, h->held);
	struct auth_req r = mkreq(w, LIM_OP_CAPTURE, h->user, h->rid, amount,
				  h->product);
	struct auth_resp a = run(w, &r);

	if (a.reason == AUTH_REASON_BUSY)
		return;
	/* Only this worker touches its holds, and they do not lapse here. */
	CHECK(a.status == AUTH_STATUS_APPROVED);
	CHECK(a.amount == amount);
	/* the journal is causal per user: after its authorization */
	CHECK(a.ledger_seq > h->seq);
	h->seq = a.ledger_seq;
	w->holds[h->user] -= h->held;
	if (h->product == LIM_PRODUCT_INSTALLMENT)
		w->inst[h->user] += amount;
	else
		w->pl[h->user] += amount;
	forget_open(w, i);
}

static void
do_void(struct worker *w)
{
	unsigned i = (unsigned)below(w, w->n_open);
	struct open_hold *h = &w->open[i];
	int64_t amount = below(w, 2) ? 0 : 1 + (int64_t)below(w, h->held);
	struct auth_req r = mkreq(w, LIM_OP_VOID, h->user, h->rid, amount,
				  h->product);
	struct auth_resp a = run(w, &r);
	int64_t x = amount ? amount : h->held;

	if (a.reason == AUTH_REASON_BUSY)
		return;
	CHECK(a.status == AUTH_STATUS_APPROVED);
	CHECK(a.amount == x);
	CHECK(a.ledger_seq > h->seq);
	h->seq = a.ledger_seq;
	w->holds[h->user] -= x;
	h->held -= x;
	CHECK(h->held >= 0);
	if (h->held == 0)
		forget_open(w, i);
}

static void
do_repay(struct worker *w)
{
	unsigned user = (unsigned)below(w, HOT), k = (unsigned)below(w, 3);
	uint8_t product = (uint8_t)(LIM_PRODUCT_PAYLATER + k);
	int64_t amount = 1 + (int64_t)below(w, 40000), *book;
	struct auth_req r;
	struct auth_resp a;

	/* mostly pay back (part of) what this worker lent: always approved,
	 * and it keeps the ceiling from filling up for good */
	if (below(w, 10) < 7) {
		int64_t *books[3] = {&w->pl[user], &w->inst[user], &w->cash[user]};
		unsigned best = 0;

		for (unsigned i = 1; i < 3; i++)
			if (*books[i] > *books[best])
				best = i;
		if (*books[best] > 0) {
			product = (uint8_t)(LIM_PRODUCT_PAYLATER + best);
			amount = 1 + (int64_t)below(w, (uint64_t)*books[best]);
		}
	}
	r = mkreq(w, LIM_OP_REPAY, user, 0, amount, product);
	a = run(w, &r);
	if (a.status != AUTH_STATUS_APPROVED)
		return;
	CHECK(a.amount == amount);
	book = product == LIM_PRODUCT_CASH	  ? &w->cash[user]
	       : product == LIM_PRODUCT_INSTALLMENT ? &w->inst[user]
						    : &w->pl[user];
	*book -= amount;
}

static void
do_resend(struct worker *w)
{
	struct auth_req r = w->last;
	struct auth_resp first = w->last_resp, a;
	struct lim_user *u = lim_users_find(F.db->users, r.user_id);
	struct lim_effect e;

	if (!w->has_last || first.reason == AUTH_REASON_BUSY)
		return;
	CHECK(auth_exec_one(&w->x, GW, &r, u, &a, &e) == AUTH_EXEC_ANSWERED);
	first.notes |= AUTH_NOTE_DUPLICATE;
	CHECK(memcmp(&a, &first, sizeof(a)) == 0);
	w->dups++;
}

static void *
worker_main(void *arg)
{
	struct worker *w = arg;

	rcu_register_thread();
	for (uint64_t i = 0; i < w->n_ops; i++) {
		unsigned k = (unsigned)below(w, 100);

		/* One clock for all, read once per burst of BURST records
		 * as the dataplane does, so the threads' "now" differ by a
		 * few seconds; it crosses midnight into November. */
		uint64_t t = __atomic_add_fetch(&ticks, 1, __ATOMIC_RELAXED);

		if (i % BURST == 0)
			auth_now_set(&w->x.now, start_s + (uint32_t)(t / 64),
				     lim_policy_get(F.db)->tz_offset_s);
		if (k < 40 || w->n_open == 0)
			do_authorize(w);
		else if (k < 60)
			do_capture(w);
		else if (k < 75)
			do_void(w);
		else if (k < 95)
			do_repay(w);
		else
			do_resend(w);
		if (i % QS_EVERY == QS_EVERY - 1)
			lim_quiescent_state();
	}
	lim_quiescent_state();
	rcu_unregister_thread();
	__atomic_add_fetch(&workers_done, 1, __ATOMIC_RELEASE);
	return NULL;
}

/* The control plane and the risk workers, as fast as they can go. */
static void *
writer_main(void *arg)
{
	uint64_t rng = 0x5717e5;
	struct lim_policy p;
	const struct lim_funder funders[] = {
		{.quota_fen = 1000000000LL, .products = FX_ALL_PRODUCTS},
		{.quota_fen = 1000000000LL, .funder_id = 11, .share_pct = 50,
		 .products = (1u << LIM_PRODUCT_PAYLATER) |
			     (1u << LIM_PRODUCT_INSTALLMENT)},
		{.quota_fen = 1000000000LL, .funder_id = 14, .share_pct = 70,
		 .products = FX_ALL_PRODUCTS},
	};

	(void)arg;
	rcu_register_thread();
	p = *lim_policy_get(F.db); /* only this thread changes it */
	while (__atomic_load_n(&workers_done, __ATOMIC_ACQUIRE) < WORKERS ||
	       writer_rounds < 64) {
		uint64_t k = rnd(&rng);
		struct lim_merchant m = {.merchant_id = 5001,
					 .mcc = 5411,
					 .region = 21,
					 .risk_score = (uint16_t)(k % 2 ? 100 : 300),
					 .subsidy = (uint8_t)(k % 8)};
		struct lim_user *u = lim_users_find(F.db->users,
						    hot_ids[(k >> 8) % HOT]);

		CHECK(lim_merchant_set(F.db, &m) == 0);
		if (k % 4 == 0) {
			p.low_avail_pct = (uint8_t)(10 + (k >> 16) % 5);
			p.unknown_merchant_ok = (uint8_t)((k >> 20) & 1);
			CHECK(lim_policy_set(F.db, &p) == 0);
		}
		if (k % 16 == 1)
			CHECK(lim_funders_set(F.db, funders,
					      sizeof(funders) / sizeof(funders[0])) ==
			      0);
		/* a limit change under the user's lock */
		lim_user_lock(u);
		u->limit_fen = 500000 + (int64_t)((k >> 24) % 2000000);
		lim_user_unlock(u);
		lim_quiescent_state();
		writer_rounds++;
	}
	lim_quiescent_state();
	rcu_unregister_thread();
	return NULL;
}

static void
test_exec_stress(void **state)
{
	(void)state;
	uint64_t n = ops_per_worker(), recorded = 0, approved = 0, busy = 0;
	uint64_t dups = 0, gcap = 0, by_reason[AUTH_REASONS] = {0};
	pthread_t writer;
	struct lim_policy p;
	const struct lim_funder funders[] = {
		{.quota_fen = 1000000000LL, .products = FX_ALL_PRODUCTS},
		{.quota_fen = 1000000000LL, .funder_id = 11, .share_pct = 50,
		 .products = (1u << LIM_PRODUCT_PAYLATER) |
			     (1u << LIM_PRODUCT_INSTALLMENT)},
		{.quota_fen = 1000000000LL, .funder_id = 14, .share_pct = 70,
		 .products = FX_ALL_PRODUCTS},
	};
	const struct lim_merchant m = {.merchant_id = 5001, .mcc = 5411,
				       .region = 21, .risk_score = 100};

	rcu_register_thread();
	/* shards: one per worker, one for the writer side (unused) */
	fx_init_empty(&F, 64, 1u << 20, WORKERS + 1);
	for (unsigned i = 0; i < HOT; i++) {
		/* tier 7: no velocity limits; everything is contended */
		struct lim_user u = {.user_id = hot_ids[i],
				     .limit_fen = 1000000,
				     .tier = 7,
				     .region = 21};
		fx_add_user(&F, &u);
	}
	assert_int_equal(lim_merchant_set(F.db, &m), 0);
	assert_int_equal(lim_funders_set(F.db, funders, 3), 0);
	{
		struct lim_group g = {.group_id = GROUP,
				      .n_members = HOT,
				      .budget_fen = 1000000000000LL};

		memcpy(g.members, hot_ids, sizeof(hot_ids));
		assert_int_equal(lim_group_set(F.db, &g), 0);
	}
	p = *lim_policy_get(F.db);
	p.ceiling_fen = CEILING;
	p.cap_chunk_fen = CHUNK;
	p.cool_cash_s = 0; /* cash loans back to back */
	assert_int_equal(lim_policy_set(F.db, &p), 0);

	/* 31 October, 23:40 +08:00: midnight comes after 76,800 records */
	start_s = fx_local8(2026, 11, 1, 0, 0, 0) - 1200;
	for (unsigned i = 0; i < WORKERS; i++) {
		W[i].id = i;
		W[i].rng = 0xabc0 + i;
		W[i].n_ops = n;
		W[i].x.db = F.db;
		W[i].x.shard = i;
		W[i].next_rid = ((uint64_t)i + 1) << 40;
	}
	/* main goes offline while others run: it would hold grace periods */
	rcu_thread_offline();
	for (unsigned i = 0; i < WORKERS; i++)
		assert_int_equal(pthread_create(&W[i].tid, NULL, worker_main,
						&W[i]),
				 0);
	assert_int_equal(pthread_create(&writer, NULL, writer_main, NULL), 0);
	for (unsigned i = 0; i < WORKERS; i++)
		assert_int_equal(pthread_join(W[i].tid, NULL), 0);
	assert_int_equal(pthread_join(writer, NULL), 0);
	rcu_thread_online();

	/* Money is conserved exactly. */
	for (unsigned u = 0; u < HOT; u++) {
		const struct lim_user *s = fx_user(&F, hot_ids[u]);
		int64_t holds = 0, pl = 0, inst = 0, cash = 0;

		for (unsigned i = 0; i < WORKERS; i++) {
			holds += W[i].holds[u];
			pl += W[i].pl[u];
			inst += W[i].inst[u];
			cash += W[i].cash[u];
		}
		assert_int_equal(s->holds_fen, holds);
		assert_int_equal(s->outstanding_fen, pl + inst + cash);
		assert_int_equal(s->inst_fen, inst);
		assert_int_equal(s->cash_fen, cash);
		assert_int_equal(s->lock, 0);
	}
	fx_check_money(&F, true);
	for (unsigned i = 0; i < WORKERS; i++) {
		recorded += W[i].recorded;
		approved += W[i].approved;
		busy += W[i].busy;
		dups += W[i].dups;
		gcap += W[i].global_cap;
		for (unsigned r = 0; r < AUTH_REASONS; r++)
			by_reason[r] += W[i].by_reason[r];
	}
	assert_int_equal(__atomic_load_n(&F.db->seq, __ATOMIC_RELAXED), recorded);
	print_message("stress_exec: %u workers x %" PRIu64 " records on %u users,"
		      " %" PRIu64 " writer rounds: %" PRIu64 " recorded, %" PRIu64
		      " approved, %" PRIu64 " GLOBAL_CAP, %" PRIu64 " BUSY, %" PRIu64
		      " replays; ceiling %" PRId64 " of %" PRId64 " in use\n",
		      WORKERS, n, HOT, writer_rounds, recorded, approved, gcap,
		      busy, dups, fx_cap_used(&F), lim_budget_total(F.db->cap));
	print_message("stress_exec: reasons:");
	for (unsigned r = 0; r < AUTH_REASONS; r++)
		if (by_reason[r])
			print_message(" %s %" PRIu64, auth_reason_name(r),
				      by_reason[r]);
	print_message("\n");
	/* the contention this test is about did happen */
	if (n >= 10000) {
		assert_true(gcap > 0);
		assert_true(approved > n / 10);
	}
	fx_fini(&F);
	rcu_unregister_thread();
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_exec_stress),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
