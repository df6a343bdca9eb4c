/*
 * node.c - the data path: one dataplane lcore's burst loop.
 *
 * Per burst (house style, l3fwd/VPP shape):
 *   RX burst -> classify frames (nic) -> parse + verify datagrams (auth codec)
 *   -> find every record's user for the whole burst at once (the index and
 *   slot lines are prefetched together) -> decide and apply each record in
 *   place -> tag the answers, swap headers -> TX burst; effects go to the
 *   ledger ring in one bulk enqueue.
 *
 * Owns: its dp_lcore (counters, scratch, held answers); reads the database,
 * the keyring and the policy as a QSBR reader, reporting a quiescent state
 * once per loop. No allocation, lock (other than the per-user lock byte in
 * auth_exec_one), system call or log line after start.
 *
 * Durability (--ack sync): an answer whose records moved money is held in a
 * FIFO until the ledger worker says its largest ledger_seq is durable; the
 * FIFO is in seq order because this lcore's seqs only grow. Answers without
 * money (declines, duplicates of durable answers, errors) go out at once.
 * When the FIFO is full the lcore stops receiving: backpressure, not loss.
 *
 * The ledger ring never overflows: before a datagram is decided the lcore
 * checks the ring has room for all its records; if not, every record of the
 * datagram is answered BUSY and nothing is decided. A failed journal
 * (ctx->journal_failed) counts as a ring with no room, and the answers held
 * for it are dropped, never sent.
 */
#include <errno.h>
#include <string.h>

#include <rte_cycles.h>
#include <rte_ethdev.h>
#include <rte_ip.h>
#include <rte_malloc.h>
#include <rte_mbuf.h>
#include <rte_prefetch.h>
#include <rte_ring_elem.h>
#include <urcu-qsbr.h>

#include "dp.h"

_Static_assert(sizeof(struct dp_decision) == 64, "a risk record is a cache line");

#define DP_RECORDS_MAX (DP_BURST_MAX * AUTH_RECORDS_MAX)

/* Per-burst scratch, allocated once per lcore. */
struct dp_scratch {
	struct rte_mbuf *pkts[DP_BURST_MAX];
	struct nic_rx rx[DP_BURST_MAX];
	struct auth_dgram dg[DP_BURST_MAX];
	uint16_t dg_pkt[DP_BURST_MAX];          /* dg[i] is in pkts[dg_pkt[i]] */
	struct rte_mbuf *tx[DP_BURST_MAX + DP_HELD_MAX];
	struct rte_mbuf *drop[DP_BURST_MAX];
	uint64_t ids[DP_RECORDS_MAX];
	struct lim_user *users[DP_RECORDS_MAX];
	struct lim_effect eff[DP_RECORDS_MAX];
	struct dp_decision dec[DP_RECORDS_MAX];
	/* the records to decide, in order, for the prefetch pipeline */
	const struct auth_req *rec[DP_RECORDS_MAX];
	uint32_t rec_gw[DP_RECORDS_MAX];
	uint16_t rec_dg[DP_RECORDS_MAX];        /* its datagram in dg[] */
	uint64_t dg_seq[DP_BURST_MAX];          /* largest ledger_seq of each */
	uint64_t rx_tsc;                        /* before this burst's RX */
};

static struct dp_scratch *
scratch(struct dp_lcore *lc)
{
	return (struct dp_scratch *)lc->scratch;
}

static inline void
count(struct dp_lcore *lc, enum dp_counter c, uint64_t n)
{
	lc->st.c[c] += n;
}

static inline uint32_t
src_ip(const struct rte_mbuf *m)
{
	const struct rte_ipv4_hdr *ip =
		rte_pktmbuf_mtod_offset(m, const struct rte_ipv4_hdr *, m->l2_len);

	return rte_be_to_cpu_32(ip->src_addr);
}

/* Recompute "now" when the second changed (day/month starts included). */
static void
now_refresh(struct dp_lcore *lc)
{
	uint32_t s = dp_clock_now_s(&lc->ctx->clock);

	if (s == lc->now_s)
		return;
	lc->now_s = s;
	auth_now_set(&lc->x.now, s, lim_policy_get(lc->ctx->db)->tz_offset_s);
}

/*
 * Classify the burst and parse every protocol datagram; ARP/ICMP answers go
 * to TX, everything else that is not a valid datagram is dropped. Returns
 * the number of valid datagrams in s->dg.
 */
static uint16_t
parse_burst(struct dp_lcore *lc, uint16_t n, uint16_t *n_tx, uint16_t *n_drop)
{
	struct dp_ctx *ctx = lc->ctx;
	struct dp_scratch *s = scratch(lc);
	const struct auth_keyring *kr = rcu_dereference(ctx->keyring);
	uint16_t nd = 0;

	nic_classify_burst(&ctx->host, s->pkts, n, s->rx, &lc->st.nic);
	for (uint16_t i = 0; i < n; i++) {
		struct rte_mbuf *m = s->pkts[i];
		enum auth_drop why;

		if (s->rx[i].verdict == NIC_ANSWER) {
			s->tx[(*n_tx)++] = m;
			continue;
		}
		if (s->rx[i].verdict != NIC_PROTO) {
			s->drop[(*n_drop)++] = m;
			continue;
		}
		why = auth_dgram_parse(s->rx[i].payload, s->rx[i].payload_len, kr,
				       ctx->replay, src_ip(m), &s->dg[nd]);
		if (why != AUTH_DROP_NONE) {
			lc->st.drop[why]++;
			s->drop[(*n_drop)++] = m;
			continue;
		}
		s->dg_pkt[nd++] = i;
	}
	return nd;
}

/*
 * The decision pipeline. A record's decision reads, besides its user, the
 * op store (its request id, its ref's entry, the entry an insert will take)
 * and its merchant: misses that would stall each record in turn. So while
 * record k is decided, the lines of record k + DP_PF_FAR are prefetched
 * (index lines, partition headers, merchant slots) and, those being in
 * cache by then, the lines of record k + DP_PF_NEAR that depend on them
 * (merchant record, op entries). Users are found DP_GROUP at a time by
 * lim_users_find_burst (its own two prefetched passes), one group ahead.
 */
#define DP_GROUP 32
#define DP_PF_FAR 8
#define DP_PF_NEAR 3

static void
prefetch_far(struct dp_lcore *lc, unsigned k)
{
	struct dp_scratch *s = scratch(lc);
	struct lim_db *db = lc->x.db;
	const struct auth_req *r = s->rec[k];

	lim_ops_prefetch(db->ops, s->rec_gw[k], r->request_id);
	if (r->ref_id)
		lim_ops_prefetch(db->ops, s->rec_gw[k], r->ref_id);
	if (r->merchant_id)
		lim_merchant_prefetch(db, r->merchant_id);
}

static void
prefetch_near(struct dp_lcore *lc, unsigned k)
{
	struct dp_scratch *s = scratch(lc);
	struct lim_db *db = lc->x.db;
	const struct auth_req *r = s->rec[k];
	const struct lim_merchant *m =
		r->merchant_id ? lim_merchant_find(db, r->merchant_id) : NULL;

	if (m)
		__builtin_prefetch(m, 0, 3);
	if (r->ref_id)
		lim_ops_prefetch_entry(db->ops, s->rec_gw[k], r->ref_id);
	lim_ops_prefetch_insert(db->ops, s->rec_gw[k], r->request_id);
}

/* @p product: the request's, read before its answer overwrote it. */
static void
count_answer(struct dp_lcore *lc, const struct auth_resp *a, uint8_t product)
{
	unsigned reason = a->reason < AUTH_REASONS ? a->reason : 0;

	lc->st.status[a->status < 3 ? a->status : 2]++;
	lc->st.reason[reason]++;
	lc->st.decisions[a->op < AUTH_OPS ? a->op : 0]
			[product < AUTH_PRODUCTS ? product : 0][reason]++;
}

/* The request half of a risk record: read before the answer overwrites it. */
static void
decision_begin(struct dp_decision *dc, const struct auth_req *r,
	       const struct lim_user *u, uint32_t now_s)
{
	dc->user_id = r->user_id;
	dc->device_id = r->device_id;
	dc->amount_fen = r->amount;
	/* An unlocked read of a setting: advisory, a change may be missed. */
	dc->limit_fen = u ? __atomic_load_n(&u->limit_fen, __ATOMIC_RELAXED) : 0;
	dc->merchant_id = r->merchant_id;
	dc->now_s = now_s;
	dc->region = r->region;
	dc->mcc = r->mcc;
	dc->op = r->op;
	dc->product = r->product;
	dc->terms = r->terms;
	dc->channel = r->channel;
}

static void
decision_end(struct dp_decision *dc, const struct auth_resp *a)
{
	dc->available_fen = a->available;
	dc->status = a->status;
	dc->reason = a->reason;
	dc->notes = a->notes;
}

/* Decide record k in place (its answer overwrites its request). */
static void
decide_record(struct dp_lcore *lc, unsigned k, unsigned *ne, unsigned *nr)
{
	struct dp_scratch *s = scratch(lc);
	const struct auth_req *r = s->rec[k];
	struct auth_resp *a = (struct auth_resp *)(uintptr_t)r;
	struct dp_decision *dc = &s->dec[*nr];
	uint64_t *seq = &s->dg_seq[s->rec_dg[k]];

	decision_begin(dc, r, s->users[k], lc->now_s);
	if (auth_exec_one(&lc->x, s->rec_gw[k], r, s->users[k], a,
			  &s->eff[*ne]) == AUTH_EXEC_RECORDED)
		(*ne)++;
	decision_end(dc, a);
	/* MALFORMED records carry nothing worth learning from. */
	if (a->reason != AUTH_REASON_MALFORMED)
		(*nr)++;
	if (a->ledger_seq > *seq)
		*seq = a->ledger_seq;
	count_answer(lc, a, dc->product);
}

/* Decide the @p nk records of s->rec[] through the prefetch pipeline. */
static void
decide_records(struct dp_lcore *lc, unsigned nk, unsigned *ne, unsigned *nr)
{
	struct dp_scratch *s = scratch(lc);
	struct lim_users *users = lc->x.db->users;

	for (unsigned k = 0; k < nk && k < DP_PF_FAR; k++)
		prefetch_far(lc, k);
	for (unsigned k = 0; k < nk && k < DP_PF_NEAR; k++)
		prefetch_near(lc, k);
	lim_users_find_burst(users, s->ids, RTE_MIN(nk, DP_GROUP), s->users);
	for (unsigned g = 0; g < nk; g += DP_GROUP) {
		unsigned end = RTE_MIN(nk, g + DP_GROUP);

		if (end < nk)
			lim_users_find_burst(users, s->ids + end,
					     RTE_MIN(nk - end, DP_GROUP),
					     s->users + end);
		for (unsigned k = g; k < end; k++) {
			if (k + DP_PF_FAR < nk)
				prefetch_far(lc, k + DP_PF_FAR);
			if (k + DP_PF_NEAR < nk)
				prefetch_near(lc, k + DP_PF_NEAR);
			decide_record(lc, k, ne, nr);
		}
	}
}

/* Hand the burst's effects to the ledger and its decisions to risk. */
static void
hand_off(struct dp_lcore *lc, unsigned ne, unsigned nr)
{
	struct dp_scratch *s = scratch(lc);

	if (ne) {
		unsigned q = rte_ring_sp_enqueue_bulk_elem(
			lc->effects, s->eff, sizeof(struct lim_effect), ne, NULL);
		/* Room was checked and only this lcore produces: cannot fail. */
		RTE_VERIFY(q == ne);
		count(lc, DP_C_effects, ne);
	}
	if (nr && lc->decisions) {
		unsigned q = rte_ring_sp_enqueue_burst_elem(
			lc->decisions, s->dec, sizeof(struct dp_decision), nr, NULL);
		count(lc, DP_C_risk_dropped, nr - q);
	}
}

static void
busy_dgram(struct dp_lcore *lc, struct auth_dgram *d, enum dp_counter why)
{
	for (unsigned j = 0; j < d->count; j++) {
		struct auth_resp *a = (struct auth_resp *)&d->rec[j];
		uint8_t product = d->rec[j].product;

		auth_answer_only(&d->rec[j], a, AUTH_STATUS_DECLINED,
				 AUTH_REASON_BUSY);
		count_answer(lc, a, product);
	}
	count(lc, why, 1);
}

/* Tag the answer, turn the frame around; false if it could not be. */
static bool
answer(struct dp_lcore *lc, struct auth_dgram *d, struct rte_mbuf *m)
{
	uint32_t len = auth_dgram_finish(d);

	count(lc, DP_C_dgrams, 1);
	count(lc, DP_C_records, d->count);
	return nic_swap_to_reply(&lc->ctx->host, m, (uint16_t)len) == 0;
}

static void
hold(struct dp_lcore *lc, struct rte_mbuf *m, uint64_t seq)
{
	lc->held[lc->held_tail % DP_HELD_MAX] =
		(struct dp_held){m, seq, scratch(lc)->rx_tsc};
	lc->held_tail++;
	count(lc, DP_C_held, 1);
}

static bool
held_full(const struct dp_lcore *lc)
{
	return lc->held_tail - lc->held_head > DP_HELD_MAX - DP_BURST_MAX;
}

/*
 * The datagrams that fit in the ledger ring go into s->rec[] to be decided;
 * the others are answered BUSY whole. Returns the records queued.
 */
static unsigned
queue_records(struct dp_lcore *lc, uint16_t nd, unsigned room, bool jfail)
{
	struct dp_scratch *s = scratch(lc);
	unsigned nk = 0;

	for (uint16_t i = 0; i < nd; i++) {
		struct auth_dgram *d = &s->dg[i];

		s->dg_seq[i] = 0;
		if (nk + d->count > room) {
			busy_dgram(lc, d, jfail ? DP_C_journal_busy : DP_C_ring_full);
			continue;
		}
		for (unsigned j = 0; j < d->count; j++, nk++) {
			s->rec[nk] = &d->rec[j];
			s->rec_gw[nk] = d->hdr->gateway_id;
			s->rec_dg[nk] = i;
			s->ids[nk] = d->rec[j].user_id;
		}
	}
	return nk;
}

/* Decide (or echo, in forward mode) every valid datagram of the burst. */
static void
decide_burst(struct dp_lcore *lc, uint16_t nd, uint16_t *n_tx,
	     uint16_t *n_drop)
{
	struct dp_scratch *s = scratch(lc);
	bool forward = lc->ctx->cfg.mode == DP_MODE_FORWARD;
	bool sync = lc->ctx->cfg.ack == DP_ACK_SYNC;
	uint64_t durable;
	/* A failed journal takes nothing more: no new effect, BUSY (ledger.c). */
	bool jfail = __atomic_load_n(&lc->ctx->journal_failed, __ATOMIC_ACQUIRE);
	unsigned room = jfail ? 0 : rte_ring_free_count(lc->effects);
	unsigned ne = 0, nr = 0;

	if (!forward) {
		unsigned nk = queue_records(lc, nd, room, jfail);

		decide_records(lc, nk, &ne, &nr);
	}
	durable = __atomic_load_n(&lc->ctx->durable_seq, __ATOMIC_ACQUIRE);
	for (uint16_t i = 0; i < nd; i++) {
		struct auth_dgram *d = &s->dg[i];
		struct rte_mbuf *m = s->pkts[s->dg_pkt[i]];
		uint64_t seq = forward ? 0 : s->dg_seq[i];

		if (!answer(lc, d, m))
			s->drop[(*n_drop)++] = m;
		else if (sync && seq > durable)
			hold(lc, m, seq);
		else
			s->tx[(*n_tx)++] = m;
	}
	hand_off(lc, ne, nr);
}

/*
 * The journal failed: the answers still held will never be durable, so
 * they are never sent (their clients retry and, after the restart, get the
 * recovered answer or a new decision).
 */
static void
held_drop(struct dp_lcore *lc)
{
	while (lc->held_head != lc->held_tail) {
		rte_pktmbuf_free(lc->held[lc->held_head % DP_HELD_MAX].m);
		lc->held_head++;
		count(lc, DP_C_held_dropped, 1);
	}
}

/* Answers whose journal batch became durable join the TX burst. */
static uint16_t
release_held(struct dp_lcore *lc, uint16_t n_tx)
{
	struct dp_scratch *s = scratch(lc);
	uint64_t durable, now;

	if (lc->held_head == lc->held_tail)
		return n_tx;
	durable = __atomic_load_n(&lc->ctx->durable_seq, __ATOMIC_ACQUIRE);
	now = rte_rdtsc();
	while (lc->held_head != lc->held_tail &&
	       lc->held[lc->held_head % DP_HELD_MAX].seq <= durable) {
		const struct dp_held *h = &lc->held[lc->held_head % DP_HELD_MAX];

		lc->st.lat[dp_lat_bucket(now - h->rx_tsc)]++;
		count(lc, DP_C_lat_cycles, now - h->rx_tsc);
		s->tx[n_tx++] = h->m;
		lc->held_head++;
	}
	if (lc->held_head != lc->held_tail &&
	    __atomic_load_n(&lc->ctx->journal_failed, __ATOMIC_ACQUIRE))
		held_drop(lc);
	return n_tx;
}

static void
tx_flush(struct dp_lcore *lc, uint16_t n)
{
	struct dp_scratch *s = scratch(lc);
	uint16_t port = lc->ctx->port.port_id;
	uint16_t sent = 0;

	for (unsigned r = 0; sent < n && r <= DP_TX_RETRIES; r++) {
		if (r)
			count(lc, DP_C_tx_retries, 1);
		sent += rte_eth_tx_burst(port, lc->queue, s->tx + sent, n - sent);
	}
	count(lc, DP_C_tx_pkts, sent);
	if (sent < n) {
		count(lc, DP_C_tx_dropped, n - sent);
		rte_pktmbuf_free_bulk(s->tx + sent, n - sent);
	}
}

/*
 * The cost of a frame over the last window of at least a second (stats:
 * cycles_per_pkt): the totals since start are dominated by the first, cold
 * bursts (page faults, empty caches), so they say little about now.
 */
static void
window_roll(struct dp_lcore *lc, uint64_t now)
{
	struct dp_stats *st = &lc->st;

	if (now - lc->win_tsc < lc->ctx->clock.tsc_hz)
		return;
	st->win_cycles = st->c[DP_C_busy_cycles] - lc->win_cycles0;
	st->win_pkts = st->c[DP_C_busy_pkts] - lc->win_pkts0;
	lc->win_cycles0 = st->c[DP_C_busy_cycles];
	lc->win_pkts0 = st->c[DP_C_busy_pkts];
	lc->win_tsc = now;
}

/*
 * One received burst, from its RX at @p t0 to its TX. The answers sent at
 * once count their in-engine latency here; held ones when released.
 */
static void
burst(struct dp_lcore *lc, uint16_t n, uint64_t t0)
{
	struct dp_scratch *s = scratch(lc);
	uint16_t n_tx = 0, n_drop = 0, n_now, nd;
	uint64_t t1;

	s->rx_tsc = t0;
	now_refresh(lc);
	nd = parse_burst(lc, n, &n_tx, &n_drop);
	if (nd)
		decide_burst(lc, nd, &n_tx, &n_drop);
	n_now = n_tx;
	n_tx = release_held(lc, n_tx);
	if (n_tx)
		tx_flush(lc, n_tx);
	t1 = rte_rdtsc();
	lc->st.lat[dp_lat_bucket(t1 - t0)] += n_now;
	count(lc, DP_C_lat_cycles, (t1 - t0) * n_now);
	if (n_drop)
		rte_pktmbuf_free_bulk(s->drop, n_drop);
	count(lc, DP_C_busy_cycles, rte_rdtsc() - t0);
	count(lc, DP_C_busy_pkts, n);
	window_roll(lc, t1);
}

static struct dp_lcore *
self(struct dp_ctx *ctx)
{
	unsigned id = rte_lcore_id();

	for (unsigned i = 0; i < ctx->n_lcores; i++)
		if (ctx->lc[i]->lcore_id == id)
			return ctx->lc[i];
	return NULL;
}

int
dp_lcore_main(void *arg)
{
	struct dp_ctx *ctx = arg;
	struct dp_lcore *lc = self(ctx);
	uint16_t burst_max = ctx->cfg.burst;

	if (!lc)
		return 0;
	lc->win_tsc = rte_rdtsc();
	rcu_register_thread();
	while (!__atomic_load_n(&ctx->stop, __ATOMIC_RELAXED)) {
		uint64_t t0 = rte_rdtsc();
		uint16_t n = 0;

		count(lc, DP_C_loops, 1);
		if (!held_full(lc))
			n = rte_eth_rx_burst(ctx->port.port_id, lc->queue,
					     scratch(lc)->pkts, burst_max);
		lc->st.burst[n]++;
		if (n) {
			count(lc, DP_C_rx_pkts, n);
			burst(lc, n, t0);
		} else {
			uint16_t t = release_held(lc, 0);
			if (t)
				tx_flush(lc, t);
		}
		rcu_quiescent_state();
	}
	/* Stopped: no more RX; let the ledger make the held answers durable. */
	while (lc->held_head != lc->held_tail) {
		uint16_t t = release_held(lc, 0);
		if (t)
			tx_flush(lc, t);
		rcu_quiescent_state();
		rte_pause();
	}
	rcu_unregister_thread();
	__atomic_add_fetch(&ctx->rx_stopped, 1, __ATOMIC_RELEASE);
	return 0;
}

struct dp_lcore *
dp_lcore_create(struct dp_ctx *ctx, unsigned lcore_id, uint16_t queue,
		unsigned shard)
{
	char name[RTE_RING_NAMESIZE];
	int socket = (int)rte_lcore_to_socket_id(lcore_id);
	struct dp_lcore *lc = rte_zmalloc_socket("dp_lcore", sizeof(*lc),
						 RTE_CACHE_LINE_SIZE, socket);

	if (!lc)
		return NULL;
	lc->scratch = rte_zmalloc_socket("dp_scratch", sizeof(struct dp_scratch),
					 RTE_CACHE_LINE_SIZE, socket);
	snprintf(name, sizeof(name), "authd_eff_%u", lcore_id);
	lc->effects = rte_ring_create_elem(name, sizeof(struct lim_effect),
					   ctx->cfg.ring_size, socket,
					   RING_F_SP_ENQ | RING_F_SC_DEQ);
	snprintf(name, sizeof(name), "authd_dec_%u", lcore_id);
	lc->decisions = rte_ring_create_elem(name, sizeof(struct dp_decision),
					     ctx->cfg.ring_size, socket,
					     RING_F_SP_ENQ | RING_F_SC_DEQ);
	if (!lc->scratch || !lc->effects || !lc->decisions) {
		dp_lcore_free(lc);
		return NULL;
	}
	lc->ctx = ctx;
	lc->lcore_id = lcore_id;
	lc->queue = queue;
	lc->x.db = ctx->db;
	lc->x.shard = shard;
	return lc;
}

void
dp_lcore_free(struct dp_lcore *lc)
{
	if (!lc)
		return;
	rte_ring_free(lc->effects);
	rte_ring_free(lc->decisions);
	rte_free(lc->scratch);
	rte_free(lc);
}

void
dp_stats_sum(const struct dp_ctx *ctx, struct dp_stats *sum)
{
	memset(sum, 0, sizeof(*sum));
	for (unsigned i = 0; i < ctx->n_lcores; i++) {
		const struct dp_stats *st = &ctx->lc[i]->st;

		for (unsigned c = 0; c < DP_COUNTERS; c++)
			sum->c[c] += st->c[c];
		for (unsigned c = 0; c < 3; c++)
			sum->status[c] += st->status[c];
		for (unsigned c = 0; c < AUTH_REASONS; c++)
			sum->reason[c] += st->reason[c];
		for (unsigned o = 0; o < AUTH_OPS; o++)
			for (unsigned p = 0; p < AUTH_PRODUCTS; p++)
				for (unsigned c = 0; c < AUTH_REASONS; c++)
					sum->decisions[o][p][c] +=
						st->decisions[o][p][c];
		for (unsigned c = 0; c < AUTH_DROPS; c++)
			sum->drop[c] += st->drop[c];
		for (unsigned c = 0; c <= DP_BURST_MAX; c++)
			sum->burst[c] += st->burst[c];
		for (unsigned c = 0; c < DP_LAT_BUCKETS; c++)
			sum->lat[c] += st->lat[c];
		sum->win_cycles += st->win_cycles;
		sum->win_pkts += st->win_pkts;
		nic_counters_add(&sum->nic, &st->nic);
	}
}
