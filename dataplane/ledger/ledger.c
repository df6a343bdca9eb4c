/*
 * ledger.c - the ledger worker: puts every effect in seq order, writes it
 * to the journal with group commit, and says how far the journal is
 * durable (docs/durability.md).
 *
 * Sources: one SP/SC ring per dataplane lcore (effects in seq order: the
 * lcore's seqs only grow), one MP/SC ring of settings effects
 * (dp_ledger_submit: control thread, risk worker; their seqs may arrive out
 * of order between producers and are sorted as they are staged), and the
 * ledger's own hold expiries (timer.c), applied here in seq order too.
 *
 * Order: seqs are handed out by one atomic increment (lim_apply,
 * lim_seq_take) and must reach the journal without gaps. Each source is
 * staged (up to LEDGER_STAGE records) and the batch is built by taking,
 * from whichever source has it at its head, the next seq, until none has
 * it: a seq missing means its producer has taken it but not enqueued it
 * yet (an lcore between lim_apply and the end of its burst), so the worker
 * waits. Each source is sorted, so a missing seq can only be at the head of
 * a source or not staged at all: the staging can never deadlock. A seq
 * missing for LEDGER_GAP_NS, or seen twice, is a broken invariant: the
 * ledger stops as on a write failure (below), nothing after the gap is ever
 * acknowledged.
 *
 * Group commit: one pwrite and one fdatasync per batch (up to batch_max
 * records, whatever accumulated during the previous fdatasync), then
 * *durable_seq is published with release order; node.c releases the
 * answers it held (--ack sync) up to it with acquire order.
 *
 * Failure: a failed write or fdatasync is never retried (after a failed
 * fdatasync the state of the page cache is unknown: the data may be lost
 * even if a retry succeeds). The ledger logs why once, sets
 * *journal_failed (node.c then answers every new datagram BUSY and
 * drops the answers it holds, which were never acknowledged),
 * dp_ledger_submit() fails with -EIO, the timer stops, and everything is
 * kept as it is on disk for the restart to recover.
 *
 * Threads: one control thread (not an lcore): when nothing moved it sleeps
 * (timer slack 1 us) 20 us, doubling to 200 us while it stays idle, back
 * to 20 us as soon as a record arrives. It is a QSBR reader online only
 * while the timer acts on the database (lookups, lim_apply), offline while
 * it writes, syncs or sleeps, so fsync latency never holds a grace period.
 */
#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <time.h>

#include <jansson.h>
#include <rte_debug.h>
#include <rte_lcore.h>
#include <rte_log.h>
#include <rte_ring_elem.h>
#include <urcu-qsbr.h>

#include "ledger.h"

#define LEDGER_STAGE 1024u          /* records staged per source */
#define LEDGER_CFG_RING 1024u       /* settings effects in flight */
#define LEDGER_IDLE_NS 20000L       /* sleep when nothing moved ... */
#define LEDGER_IDLE_MAX_NS 200000L  /* ... doubling up to this while idle */
#define LEDGER_GAP_NS (10ull * 1000000000ull)
#define LEDGER_STOP_NS (5ull * 1000000000ull)
#define LEDGER_TICK_NS (10ull * 1000000ull)   /* timer pass period */
#define LEDGER_TIMER_BUDGET 512u    /* holds fired per pass at most */
#define LEDGER_SWEEP_VISITS 1024u   /* entries the sweep visits per pass */
#define LEDGER_SUBMIT_WAIT_NS 50000L

_Static_assert(LEDGER_CFG_RING <= LEDGER_STAGE,
	       "the whole settings ring fits its staging (it is sorted there)");

struct src {
	struct rte_ring *ring;      /* NULL: the timer's own effects */
	struct lim_effect *buf;     /* LEDGER_STAGE, staged in seq order */
	unsigned head, n;
	bool unsorted;              /* MP ring: sort while staging */
	uint64_t *counter;          /* records taken from here */
};

struct dp_ledger {
	struct dp_ledger_conf conf; /* a copy; its pointers outlive us */
	struct lim_db *db;
	pthread_t tid;
	int stop;                   /* atomic */
	int exited;                 /* atomic */
	struct dp_journal *j;       /* NULL: no journal */
	struct rte_ring *cfg_ring;
	unsigned n_src;
	struct src *src;
	struct src *timer_src;
	struct lim_effect *batch;
	uint32_t batch_max;
	uint64_t next_seq;          /* next seq to put in a batch */
	uint64_t gap_since_ns;      /* waiting for next_seq since; 0: not */
	uint64_t next_tick_ns;
	long idle_ns;               /* the next idle sleep */
	struct dp_timer *timer;
	struct dp_timer_ctx tx;
	uint64_t drained;           /* atomic: lcore records written */
	uint64_t lcore_records, cfg_records, timer_records; /* thread only */
	bool ops_warned;            /* thread only: op store past 90% said */
	struct dp_ledger_stats st;  /* fields written by the thread (relaxed) */
};

#define ST_SET(l, f, v) __atomic_store_n(&(l)->st.f, (v), __ATOMIC_RELAXED)
#define ST_ADD(l, f, v) ST_SET(l, f, (l)->st.f + (v))
#define ST_GET(l, f) __atomic_load_n(&(l)->st.f, __ATOMIC_RELAXED)

static uint64_t
mono_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

static void
nap(long ns)
{
	struct timespec ts = {0, ns};

	nanosleep(&ts, NULL);
}

/* ------------------------------------------------------------------------ */
/* Failure                                                                    */

static bool
failed(const struct dp_ledger *l)
{
	return __atomic_load_n(&l->st.failed, __ATOMIC_ACQUIRE) != 0;
}

/* Stop for good: say why once, stop the dataplane approving. */
__attribute__((format(printf, 3, 4))) static void
fail(struct dp_ledger *l, int rc, const char *fmt, ...)
{
	va_list ap;

	if (failed(l))
		return;
	va_start(ap, fmt);
	vsnprintf(l->st.failure, sizeof(l->st.failure), fmt, ap);
	va_end(ap);
	__atomic_store_n(&l->st.failed, rc ? rc : -EIO, __ATOMIC_RELEASE);
	__atomic_store_n(l->conf.journal_failed, 1, __ATOMIC_RELEASE);
	RTE_LOG(ERR, USER1,
		"ledger: STOPPED: %s. Durable up to seq %" PRIu64 ". No new "
		"payment is approved (answered BUSY), answers waiting for "
		"durability are never sent; restart authd once the journal's "
		"disk is fixed: everything acknowledged is recovered.\n",
		l->st.failure, l->next_seq - 1);
}

/* ------------------------------------------------------------------------ */
/* Staging                                                                    */

static void
compact(struct src *s)
{
	if (s->head == 0)
		return;
	memmove(s->buf, s->buf + s->head, (size_t)s->n * sizeof(s->buf[0]));
	s->head = 0;
}

/* Insertion sort of the staged records (settings: few, nearly sorted). */
static void
sort_staged(struct src *s)
{
	struct lim_effect *b = s->buf + s->head;

	for (unsigned i = 1; i < s->n; i++) {
		struct lim_effect x = b[i];
		unsigned k = i;

		for (; k > 0 && b[k - 1].seq > x.seq; k--)
			b[k] = b[k - 1];
		b[k] = x;
	}
}

static unsigned
refill(struct src *s)
{
	unsigned room, k;

	if (!s->ring)
		return 0;
	if (s->head + s->n == LEDGER_STAGE)
		compact(s);
	room = LEDGER_STAGE - s->head - s->n;
	if (!room)
		return 0;
	k = rte_ring_sc_dequeue_burst_elem(s->ring, s->buf + s->head + s->n,
					   sizeof(s->buf[0]), room, NULL);
	s->n += k;
	if (k && s->unsorted)
		sort_staged(s);
	return k;
}

/* The hold of an approved authorization joins the expiry wheel. */
static void
feed_timer(struct dp_ledger *l, const struct lim_effect *e)
{
	if (e->kind == LIM_EFF_AUTH && e->hold_expires_s &&
	    e->product != LIM_PRODUCT_CASH)
		dp_timer_add(l->timer, e->gateway_id, e->request_id, e->user_id,
			     e->hold_expires_s);
}

/*
 * Add contiguous seqs from next_seq to the batch, which holds @p nb
 * records. A staged record below next_seq was seen already: the order is
 * broken, stop. Returns the new batch size.
 */
static unsigned
merge(struct dp_ledger *l, unsigned nb)
{
	bool progress = true;

	while (progress && nb < l->batch_max) {
		progress = false;
		for (unsigned i = 0; i < l->n_src && nb < l->batch_max; i++) {
			struct src *s = &l->src[i];

			while (s->n && nb < l->batch_max) {
				const struct lim_effect *e = &s->buf[s->head];

				if (e->seq != l->next_seq) {
					if (e->seq < l->next_seq) {
						fail(l, -EPROTO, "ledger: seq %" PRIu64
						     " arrived again after %" PRIu64
						     " (source %u): journal order broken",
						     e->seq, l->next_seq - 1, i);
						return 0;
					}
					break;
				}
				l->batch[nb++] = *e;
				feed_timer(l, e);
				(*s->counter)++;
				s->head++;
				s->n--;
				l->next_seq++;
				progress = true;
			}
			if (s->n == 0)
				s->head = 0;
		}
	}
	return nb;
}

static bool
staged_any(const struct dp_ledger *l)
{
	for (unsigned i = 0; i < l->n_src; i++)
		if (l->src[i].n)
			return true;
	return false;
}

static bool
rings_empty(const struct dp_ledger *l)
{
	for (unsigned i = 0; i < l->n_src; i++)
		if (l->src[i].ring && rte_ring_count(l->src[i].ring))
			return false;
	return !staged_any(l);
}

/* Records wait for a seq that does not come: lost after LEDGER_GAP_NS. */
static void
gap_check(struct dp_ledger *l, unsigned merged, uint64_t now)
{
	uint64_t lowest = UINT64_MAX;

	if (merged || !staged_any(l)) {
		l->gap_since_ns = 0;
		return;
	}
	if (!l->gap_since_ns) {
		l->gap_since_ns = now;
		return;
	}
	if (now - l->gap_since_ns < LEDGER_GAP_NS)
		return;
	for (unsigned i = 0; i < l->n_src; i++)
		if (l->src[i].n && l->src[i].buf[l->src[i].head].seq < lowest)
			lowest = l->src[i].buf[l->src[i].head].seq;
	fail(l, -EPROTO, "ledger: seq %" PRIu64 " never arrived in %llu s while "
	     "seq %" PRIu64 " waits: an effect was lost (a seq taken and not "
	     "handed to the ledger)", l->next_seq,
	     LEDGER_GAP_NS / 1000000000ull, lowest);
}

/* ------------------------------------------------------------------------ */
/* Group commit                                                               */

static void
fsync_account(struct dp_ledger *l, uint64_t ns)
{
	ST_ADD(l, fsync_hist[dp_ledger_fsync_bucket(ns)], 1);
	ST_ADD(l, fsync_ns_sum, ns);
	if (ns > l->st.fsync_ns_max)
		ST_SET(l, fsync_ns_max, ns);
}

static int
commit(struct dp_ledger *l, unsigned n)
{
	uint64_t last = l->batch[n - 1].seq, seq, t0;
	int rc;

	seq = __atomic_load_n(&l->db->seq, __ATOMIC_RELAXED);
	if (seq - (l->batch[0].seq - 1) > l->st.lag_max)
		ST_SET(l, lag_max, seq - (l->batch[0].seq - 1));
	if (l->j) {
		rc = dp_journal_append(l->j, l->batch, n);
		t0 = mono_ns();
		if (!rc)
			rc = dp_journal_sync(l->j);
		if (rc) {
			fail(l, rc, "journal: %s", dp_journal_failure(l->j)[0]
							 ? dp_journal_failure(l->j)
							 : strerror(-rc));
			return rc;
		}
		fsync_account(l, mono_ns() - t0);
		ST_ADD(l, batches, 1);
		ST_ADD(l, bytes, (uint64_t)n * DP_JOURNAL_REC_LEN);
		ST_SET(l, segments, dp_journal_segments(l->j));
	}
	if (n > l->st.batch_records_max)
		ST_SET(l, batch_records_max, n);
	ST_ADD(l, records, n);
	ST_SET(l, cfg_records, l->cfg_records);
	ST_SET(l, durable_seq, last);
	__atomic_store_n(&l->drained, l->lcore_records, __ATOMIC_RELEASE);
	__atomic_store_n(l->conf.durable_seq, last, __ATOMIC_RELEASE);
	return 0;
}

/* ------------------------------------------------------------------------ */
/* The timer                                                                  */

static void
emit_expiry(void *arg, const struct lim_effect *e)
{
	struct src *s = arg;

	/* room was made before the pass (tick()) */
	RTE_VERIFY(s->head + s->n < LEDGER_STAGE);
	s->buf[s->head + s->n++] = *e;
}

/*
 * Say when the op store nears full: from then on new requests are answered
 * BUSY (auth/exec.c) until holds end and idempotency records age out, and
 * an operator sees only BUSY answers without this line.
 */
static void
ops_watch(struct dp_ledger *l)
{
	uint64_t n = lim_ops_count(l->db->ops), cap = lim_ops_capacity(l->db->ops);

	if (!l->ops_warned && n * 10 >= cap * 9) {
		l->ops_warned = true;
		RTE_LOG(WARNING, USER1, "ledger: op store holds %" PRIu64 " of %" PRIu64
			" entries (90%% or more): when full, new requests are answered "
			"BUSY until holds end and idempotency records age out; "
			"--ops-max sizes it\n", n, cap);
	} else if (l->ops_warned && n * 10 < cap * 8) {
		l->ops_warned = false;
		RTE_LOG(NOTICE, USER1, "ledger: op store back under 80%% (%" PRIu64
			" of %" PRIu64 " entries)\n", n, cap);
	}
}

static void
tick(struct dp_ledger *l, uint64_t now_ns)
{
	struct src *s = l->timer_src;
	struct dp_timer_stats ts;
	unsigned room;

	if (now_ns < l->next_tick_ns || failed(l))
		return;
	l->next_tick_ns = now_ns + LEDGER_TICK_NS;
	ops_watch(l);
	compact(s);
	room = LEDGER_STAGE - s->n;
	if (room < 2)
		return;
	rcu_thread_online();
	auth_now_set(&l->tx.now, l->conf.now_s(l->conf.now_arg),
		     lim_policy_get(l->db)->tz_offset_s);
	room -= dp_timer_run(&l->tx, room / 2 < LEDGER_TIMER_BUDGET
					     ? room / 2 : LEDGER_TIMER_BUDGET);
	dp_timer_sweep(&l->tx, LEDGER_SWEEP_VISITS, room - 1);
	lim_quiescent_state();
	rcu_thread_offline();
	dp_timer_stats_get(l->timer, &ts);
	ST_SET(l, expired, ts.expired);
	ST_SET(l, reclaimed, ts.reclaimed);
	ST_SET(l, timer_pending, ts.pending);
	ST_SET(l, timer_overflow, ts.overflow);
}

/* ------------------------------------------------------------------------ */
/* The thread                                                                 */

/*
 * One pass: stage and merge until the batch is full or nothing more came
 * (the staging of a source is smaller than a batch), then commit.
 * Returns the records committed.
 */
static unsigned
pass(struct dp_ledger *l, unsigned *staged)
{
	unsigned k, n = 0, before;

	*staged = 0;
	do {
		k = 0;
		for (unsigned i = 0; i < l->n_src; i++)
			k += refill(&l->src[i]);
		*staged += k;
		before = n;
		n = merge(l, n);
	} while (k && n > before && n < l->batch_max && !failed(l));
	if (failed(l))
		return 0;
	gap_check(l, n, mono_ns());
	if (n && commit(l, n))
		return 0;
	return n;
}

/* After a failure: take what arrives and drop it (never acknowledged). */
static void
discard(struct dp_ledger *l)
{
	for (unsigned i = 0; i < l->n_src; i++) {
		l->src[i].n = l->src[i].head = 0;
		refill(&l->src[i]);
		l->src[i].n = l->src[i].head = 0;
	}
}

static void *
ledger_main(void *arg)
{
	struct dp_ledger *l = arg;
	uint64_t deadline;
	unsigned staged;

	/* Sleep for about what is asked, not the default 50 us slack. */
	prctl(PR_SET_TIMERSLACK, 1000UL, 0, 0, 0);
	rcu_register_thread();
	rcu_thread_offline();
	while (!__atomic_load_n(&l->stop, __ATOMIC_ACQUIRE)) {
		unsigned n;

		if (failed(l)) {
			discard(l);
			nap(LEDGER_IDLE_NS * 10);
			continue;
		}
		n = pass(l, &staged);
		tick(l, mono_ns());
		if (n || staged) {
			l->idle_ns = LEDGER_IDLE_NS;
			continue;
		}
		/* Idle: back off, so a quiet engine costs little CPU (measured:
		 * 20 us naps alone took 30% of a core); the first effect after a
		 * quiet spell waits at most LEDGER_IDLE_MAX_NS more. */
		nap(l->idle_ns);
		if (l->idle_ns < LEDGER_IDLE_MAX_NS)
			l->idle_ns *= 2;
	}
	/* Producers have stopped: write what they left, bounded. */
	deadline = mono_ns() + LEDGER_STOP_NS;
	while (!failed(l) && !rings_empty(l) && mono_ns() < deadline)
		if (!pass(l, &staged) && !staged)
			nap(LEDGER_IDLE_NS);
	if (!failed(l) && !rings_empty(l))
		RTE_LOG(ERR, USER1, "ledger: stopped with effects unwritten: seq %"
			PRIu64 " never arrived\n", l->next_seq);
	rcu_thread_online();
	rcu_unregister_thread();
	__atomic_store_n(&l->exited, 1, __ATOMIC_RELEASE);
	return NULL;
}

/* ------------------------------------------------------------------------ */
/* Start, stop, API                                                           */

static int
sources_init(struct dp_ledger *l)
{
	unsigned n = l->conf.n_rings;

	l->n_src = n + 2;
	l->src = calloc(l->n_src, sizeof(*l->src));
	if (!l->src)
		return -ENOMEM;
	for (unsigned i = 0; i < l->n_src; i++) {
		l->src[i].buf = malloc(LEDGER_STAGE * sizeof(struct lim_effect));
		if (!l->src[i].buf)
			return -ENOMEM;
		l->src[i].counter = &l->lcore_records;
		if (i < n)
			l->src[i].ring = l->conf.rings[i];
	}
	l->cfg_ring = rte_ring_create_elem("authd_cfg_eff",
					   sizeof(struct lim_cfg_effect),
					   LEDGER_CFG_RING, SOCKET_ID_ANY,
					   RING_F_SC_DEQ);
	if (!l->cfg_ring)
		return -ENOMEM;
	l->src[n].ring = l->cfg_ring;
	l->src[n].unsorted = true;
	l->src[n].counter = &l->cfg_records;
	l->timer_src = &l->src[n + 1];
	l->timer_src->counter = &l->timer_records;
	return 0;
}

static int
journal_init(struct dp_ledger *l, const struct dp_journal_scan *end)
{
	const struct dp_ledger_conf *c = &l->conf;
	struct dp_journal_opts o = {.segment_bytes = c->segment_bytes,
				    .batch_max = l->batch_max};
	char err[PATH_MAX + 256];
	int rc;

	if (!c->journal_dir || !c->journal_dir[0])
		return 0;
	rc = dp_journal_open(c->journal_dir, &o, end && end->n_segments ? end : NULL,
			     l->next_seq, &l->j, err, sizeof(err));
	if (rc)
		RTE_LOG(ERR, USER1, "ledger: cannot open the journal: %s\n", err);
	ST_SET(l, journal, rc == 0);
	ST_SET(l, segments, rc ? 0 : dp_journal_segments(l->j));
	return rc;
}

static int
timer_init(struct dp_ledger *l)
{
	uint64_t n;

	l->timer = dp_timer_create(lim_ops_capacity(l->db->ops),
				   l->conf.now_s(l->conf.now_arg));
	if (!l->timer)
		return -ENOMEM;
	n = dp_timer_rebuild(l->timer, l->db);
	if (n)
		RTE_LOG(NOTICE, USER1, "ledger: %" PRIu64 " open holds in the "
			"expiry wheel\n", n);
	l->tx = (struct dp_timer_ctx){.t = l->timer, .db = l->db,
				      .shard = l->conf.shard,
				      .emit = emit_expiry, .arg = l->timer_src};
	RTE_VERIFY(l->tx.shard < l->db->shards);
	return 0;
}

static void
ledger_free(struct dp_ledger *l)
{
	if (!l)
		return;
	dp_journal_close(l->j);
	dp_timer_free(l->timer);
	rte_ring_free(l->cfg_ring);
	for (unsigned i = 0; l->src && i < l->n_src; i++)
		free(l->src[i].buf);
	free(l->src);
	free(l->batch);
	free(l);
}

struct dp_ledger *
dp_ledger_start(const struct dp_ledger_conf *c, const struct dp_journal_scan *end)
{
	struct dp_ledger *l = calloc(1, sizeof(*l));

	if (!l)
		return NULL;
	l->conf = *c;
	l->db = c->db;
	l->batch_max = DP_JOURNAL_BATCH_DEFAULT;
	l->next_seq = __atomic_load_n(&c->db->seq, __ATOMIC_RELAXED) + 1;
	l->idle_ns = LEDGER_IDLE_NS;
	l->batch = malloc((size_t)l->batch_max * sizeof(*l->batch));
	if (!l->batch || sources_init(l) || timer_init(l) ||
	    journal_init(l, end)) {
		ledger_free(l);
		return NULL;
	}
	ST_SET(l, durable_seq, l->next_seq - 1);
	__atomic_store_n(c->durable_seq, l->next_seq - 1, __ATOMIC_RELEASE);
	if (rte_ctrl_thread_create(&l->tid, "authd-ledger", NULL, ledger_main,
				   l) != 0) {
		ledger_free(l);
		return NULL;
	}
	return l;
}

void
dp_ledger_stop(struct dp_ledger *l)
{
	if (!l)
		return;
	__atomic_store_n(&l->stop, 1, __ATOMIC_RELEASE);
	pthread_join(l->tid, NULL);
	ledger_free(l);
}

uint64_t
dp_ledger_drained(const struct dp_ledger *l)
{
	return __atomic_load_n(&l->drained, __ATOMIC_ACQUIRE);
}

int
dp_ledger_submit(struct dp_ledger *l, const struct lim_cfg_effect *e)
{
	if (!l)
		return -ENODEV;
	for (;;) {
		if (failed(l))
			return -EIO;
		if (__atomic_load_n(&l->exited, __ATOMIC_ACQUIRE) ||
		    __atomic_load_n(&l->stop, __ATOMIC_ACQUIRE))
			return -ESHUTDOWN;
		if (rte_ring_mp_enqueue_elem(l->cfg_ring, (void *)(uintptr_t)e,
					     sizeof(*e)) == 0)
			return 0;
		nap(LEDGER_SUBMIT_WAIT_NS);
	}
}

int
dp_ledger_wait_durable(struct dp_ledger *l, uint64_t seq, unsigned timeout_ms)
{
	uint64_t deadline = mono_ns() + (uint64_t)timeout_ms * 1000000ull;

	for (;;) {
		if (__atomic_load_n(l->conf.durable_seq, __ATOMIC_ACQUIRE) >= seq)
			return 0;
		if (failed(l))
			return -EIO;
		if (mono_ns() >= deadline)
			return -ETIMEDOUT;
		nap(100000);
	}
}

void
dp_ledger_stats_get(const struct dp_ledger *l, struct dp_ledger_stats *st)
{
	memset(st, 0, sizeof(*st));
	if (!l)
		return;
	st->journal = ST_GET(l, journal);
	st->durable_seq = ST_GET(l, durable_seq);
	st->seq = __atomic_load_n(&l->db->seq, __ATOMIC_RELAXED);
	st->lag = st->seq > st->durable_seq ? st->seq - st->durable_seq : 0;
	st->lag_max = ST_GET(l, lag_max);
	st->records = ST_GET(l, records);
	st->cfg_records = ST_GET(l, cfg_records);
	st->batches = ST_GET(l, batches);
	st->batch_records_max = ST_GET(l, batch_records_max);
	st->bytes = ST_GET(l, bytes);
	st->segments = ST_GET(l, segments);
	st->fsync_ns_sum = ST_GET(l, fsync_ns_sum);
	st->fsync_ns_max = ST_GET(l, fsync_ns_max);
	for (unsigned i = 0; i < DP_LEDGER_HIST; i++)
		st->fsync_hist[i] = ST_GET(l, fsync_hist[i]);
	st->expired = ST_GET(l, expired);
	st->reclaimed = ST_GET(l, reclaimed);
	st->timer_pending = ST_GET(l, timer_pending);
	st->timer_overflow = ST_GET(l, timer_overflow);
	st->failed = __atomic_load_n(&l->st.failed, __ATOMIC_ACQUIRE);
	if (st->failed)
		memcpy(st->failure, l->st.failure, sizeof(st->failure));
}

/* ------------------------------------------------------------------------ */
/* Settings records: builders for the control plane                           */

void
dp_cfg_user(struct lim_cfg_effect *c, struct lim_db *db,
	    const struct lim_user *u, uint32_t uid, uint32_t now_s,
	    bool created)
{
	lim_cfg_user_set(c, lim_seq_take(db), u, uid, now_s, created);
}

int
dp_ledger_journal_policy(struct dp_ledger *l, struct lim_db *db, uint32_t uid,
			 uint32_t now_s, uint64_t *last_seq)
{
	const unsigned parts = (sizeof(struct lim_policy) + LIM_POLICY_PART_LEN - 1) /
			       LIM_POLICY_PART_LEN;
	uint8_t raw[LIM_POLICY_PART_LEN * 8];
	struct lim_cfg_effect c[8];
	int rc = 0;

	memset(raw, 0, sizeof(raw));
	memcpy(raw, lim_policy_get(db), sizeof(struct lim_policy));
	/* Taken after the policy was published (lim_redo relies on it). */
	for (unsigned i = 0; i < parts; i++) {
		memset(&c[i], 0, sizeof(c[i]));
		c[i].seq = lim_seq_take(db);
		c[i].uid = uid;
		c[i].now_s = now_s;
		c[i].kind = LIM_EFF_POLICY_PART;
		c[i].u.policy.part = (uint16_t)i;
		c[i].u.policy.parts = (uint16_t)parts;
		memcpy(c[i].u.policy.bytes, raw + i * LIM_POLICY_PART_LEN,
		       LIM_POLICY_PART_LEN);
	}
	/* Every seq taken must reach the ledger, even after an error. */
	for (unsigned i = 0; i < parts; i++) {
		int r = dp_ledger_submit(l, &c[i]);

		rc = rc ? rc : r;
	}
	if (last_seq)
		*last_seq = c[parts - 1].seq;
	return rc;
}

json_t *
dp_ledger_json(const struct dp_ledger *l)
{
	struct dp_ledger_stats st;
	json_t *h = json_array();

	dp_ledger_stats_get(l, &st);
	for (unsigned i = 0; i < DP_LEDGER_HIST; i++)
		json_array_append_new(h, json_integer((json_int_t)st.fsync_hist[i]));
	return json_pack(
		"{s:b,s:s,s:s,s:I,s:I,s:I,s:I,s:I,s:I,s:I,s:I,s:I,s:I,s:f,s:I,"
		"s:o,s:I,s:I,s:I,s:I,s:I}",
		"journal", st.journal, "state", st.failed ? "failed" : "ok",
		"failure", st.failure, "drained",
		(json_int_t)(l ? dp_ledger_drained(l) : 0), "durable_seq",
		(json_int_t)st.durable_seq, "seq", (json_int_t)st.seq, "lag",
		(json_int_t)st.lag, "lag_max", (json_int_t)st.lag_max, "records",
		(json_int_t)st.records, "settings_records",
		(json_int_t)st.cfg_records, "batches", (json_int_t)st.batches,
		"batch_records_max", (json_int_t)st.batch_records_max,
		"segments", (json_int_t)st.segments, "fsync_us_avg",
		st.batches ? (double)st.fsync_ns_sum / (double)st.batches / 1e3 : 0.0,
		"fsync_us_max", (json_int_t)(st.fsync_ns_max / 1000),
		"fsync_us_log2_hist", h, "bytes", (json_int_t)st.bytes,
		"expired", (json_int_t)st.expired, "reclaimed",
		(json_int_t)st.reclaimed, "timer_pending",
		(json_int_t)st.timer_pending, "timer_overflow",
		(json_int_t)st.timer_overflow);
}
