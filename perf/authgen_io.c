/*
 * authgen_io.c - one worker lcore: send, receive, check, time.
 *
 * Loop: receive a burst and check every answer; declare the oldest datagrams
 * lost when their timeout passed; then send what the mode allows:
 *  - closed loop: while fewer than --window datagrams are in flight;
 *  - open loop: every datagram whose scheduled time (t0 + n / rate, TSC)
 *    has come, stamped with that scheduled time as sent_ns, so a stall in
 *    authd, the link or this loop shows as latency instead of as fewer
 *    sends (no coordinated omission). When the loop falls behind it sends a
 *    burst to catch up and counts `behind`.
 *    With --profile double11 the schedule's rate follows the ramp
 *    (gen_profile_rate_pm(): each interval is 1 / rate at its start);
 *  - replay: the pcap's requests (authgen_pcap.c) at the recorded pace
 *    times --speed, stamped with the scheduled time as in open loop, or
 *    with --max as the closed-loop window allows; each is re-addressed,
 *    re-sequenced and re-tagged (send_replayed()), and when the pcap holds
 *    its answer, the new answer is compared with it.
 * When the run ends (count, duration, the end of the pcap, or a signal),
 * it stops sending and waits for the datagrams in flight (at most
 * --timeout).
 *
 * Recording (--record): every request frame built for a datagram (not the
 * crafted --inject ones) and, with --record-answers, every answer frame
 * from authd is copied to the worker's ring for the pcap writer thread.
 *
 * In-flight table: datagram g lives in slot g & mask until answered or
 * lost; g_tail is the oldest not yet answered or lost and g_head - g_tail
 * never exceeds the table, so a slot is reused only after its datagram was
 * settled. An answer names its datagram by seq = seq_base + g.
 *
 * Answers are checked against what was sent: tag with the gateway key
 * (auth_resp_verify: also magic, version, type 2, count and length), the
 * header echo (stream, gateway, key id, count, sent_ns), and per record the
 * request_id, user_id and op, in order. With --check-model every record is
 * also compared field by field with the model's answer.
 *
 * Concurrency: a worker owns its struct gen_worker; counters are written
 * with relaxed stores so the progress line may read other workers' counters.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <rte_arp.h>
#include <rte_cycles.h>
#include <rte_ethdev.h>
#include <rte_ip.h>
#include <rte_malloc.h>
#include <rte_mbuf.h>
#include <rte_udp.h>
#include <urcu-qsbr.h>

#include "authgen.h"

#define GEN_TX_RETRY_US 2000   /* how long a full TX queue is retried */
#define GEN_BEHIND_US 100      /* open loop: later than this is "behind" */
#define GEN_INJECT_REC_BIT (1ull << 39) /* id space of injected records */

static const char *const inject_names[GEN_INJECTS] = {
#define GEN_INJECT_NAME(sym, name, drop) name,
	GEN_FOREACH_INJECT(GEN_INJECT_NAME)
#undef GEN_INJECT_NAME
};
static const enum auth_drop inject_drops[GEN_INJECTS] = {
#define GEN_INJECT_DROP(sym, name, drop) drop,
	GEN_FOREACH_INJECT(GEN_INJECT_DROP)
#undef GEN_INJECT_DROP
};

const char *
gen_inject_name(enum gen_inject i)
{
	return (unsigned)i < GEN_INJECTS ? inject_names[i] : "?";
}

enum auth_drop
gen_inject_drop(enum gen_inject i)
{
	return (unsigned)i < GEN_INJECTS ? inject_drops[i] : AUTH_DROP_NONE;
}

/* Per-worker TX batch (frames built this iteration). */
#define GEN_NO_FLIGHT UINT64_MAX

struct gen_txq {
	struct rte_mbuf *m[GEN_BURST * 2];
	uint64_t g[GEN_BURST * 2];   /* the datagram number, or GEN_NO_FLIGHT */
	unsigned n;
};

static inline struct gen_flight *
slot(struct gen_worker *w, uint64_t g)
{
	return &w->fl[g & w->mask];
}

static inline uint64_t
now_ns(const struct gen_worker *w, uint64_t tsc)
{
	return gen_tsc_to_ns(w->ctx, tsc);
}

/* ------------------------------------------------------------------------ */
/* Frames                                                                     */

/*
 * Datagram g never left: it is settled at once (not sent, not lost: counted
 * as tx_full) so that neither the window nor the loss count waits for it.
 */
static void
unsent(struct gen_worker *w, uint64_t g)
{
	struct gen_flight *f = slot(w, g);
	struct gen_stats *st = f->measured ? &w->st : &w->warm;

	if (g == GEN_NO_FLIGHT || f->g != g || f->state != GEN_FLIGHT_OUT) {
		GEN_ADD(w->st.c[GEN_C_tx_full], 1);
		return;
	}
	GEN_ADD(st->c[GEN_C_tx_full], 1);
	f->state = GEN_FLIGHT_LOST;
	w->out--;
	GEN_SET(st->c[GEN_C_dgrams_sent], st->c[GEN_C_dgrams_sent] - 1);
	GEN_SET(st->c[GEN_C_records_sent], st->c[GEN_C_records_sent] - f->n);
	for (unsigned i = 0; i < f->n; i++)
		gen_load_lost(&w->load, &f->req[i], &f->sent[i]);
}

static void
tx_flush(struct gen_worker *w, struct gen_txq *q)
{
	const struct gen_ctx *c = w->ctx;
	uint64_t give_up = 0;
	unsigned sent = 0;

	while (sent < q->n) {
		sent += rte_eth_tx_burst(c->port.port_id, w->queue, q->m + sent,
					 (uint16_t)(q->n - sent));
		if (sent == q->n)
			break;
		/* A full TX queue: the peer is slow. Wait a little, then drop. */
		if (!give_up)
			give_up = rte_rdtsc() + c->tsc_hz / 1000000 * GEN_TX_RETRY_US;
		else if (rte_rdtsc() > give_up)
			break;
	}
	if (sent < q->n) {
		rte_pktmbuf_free_bulk(q->m + sent, q->n - sent);
		for (unsigned i = sent; i < q->n; i++)
			unsent(w, q->g[i]);
	}
	q->n = 0;
}

/*
 * Put @p len bytes of payload in a UDP frame from stream @p stream, for
 * datagram @p g (GEN_NO_FLIGHT: a crafted one).
 */
static int
tx_payload(struct gen_worker *w, struct gen_txq *q, const void *payload,
	   uint32_t len, uint16_t stream, uint64_t g)
{
	const struct gen_ctx *c = w->ctx;
	struct rte_mbuf *m = rte_pktmbuf_alloc(c->port.queue_pool[w->queue]);
	struct nic_frame f = {
		.src_mac = c->src_mac,
		.dst_mac = c->dst_mac,
		.src_ip = c->cfg.src_ip,
		.dst_ip = c->cfg.dst_ip,
		.src_port = (uint16_t)(c->cfg.src_port + stream),
		.dst_port = c->cfg.udp_port,
	};

	if (!m || nic_frame_build(m, &f, payload, (uint16_t)len, c->tx_cksum)) {
		rte_pktmbuf_free(m);
		unsent(w, g);
		return -ENOMEM;
	}
	if (c->rec && g != GEN_NO_FLIGHT)
		gen_record_request(c->rec, w->index, rte_pktmbuf_mtod(m, void *),
				   rte_pktmbuf_data_len(m), slot(w, g)->sent_ns,
				   c->tx_cksum != 0, &w->st);
	q->g[q->n] = g;
	q->m[q->n++] = m;
	if (q->n == RTE_DIM(q->m))
		tx_flush(w, q);
	return 0;
}

/* The UDP payload of an answer from authd to one of our streams, or NULL. */
static const uint8_t *
rx_payload(const struct gen_worker *w, struct rte_mbuf *m, uint32_t *len,
	   bool *arp)
{
	const struct gen_config *cfg = &w->ctx->cfg;
	const uint8_t *p = rte_pktmbuf_mtod(m, const uint8_t *);
	uint32_t n = rte_pktmbuf_data_len(m), off = RTE_ETHER_HDR_LEN;
	const struct rte_ipv4_hdr *ip;
	const struct rte_udp_hdr *udp;
	uint16_t type, dport;
	uint32_t ihl, ulen;

	*arp = false;
	if (n < off)
		return NULL;
	type = ((const struct rte_ether_hdr *)p)->ether_type;
	if (type == RTE_BE16(RTE_ETHER_TYPE_VLAN) && n >= off + 4) {
		type = ((const struct rte_vlan_hdr *)(p + off))->eth_proto;
		off += 4;
	}
	if (type == RTE_BE16(RTE_ETHER_TYPE_ARP)) {
		*arp = true;
		return NULL;
	}
	if (type != RTE_BE16(RTE_ETHER_TYPE_IPV4) ||
	    n < off + sizeof(*ip) + sizeof(*udp))
		return NULL;
	ip = (const struct rte_ipv4_hdr *)(p + off);
	ihl = (ip->version_ihl & 0xf) * 4u;
	if (ip->next_proto_id != IPPROTO_UDP || ihl < 20 ||
	    n < off + ihl + sizeof(*udp) ||
	    rte_be_to_cpu_32(ip->dst_addr) != cfg->src_ip ||
	    rte_be_to_cpu_32(ip->src_addr) != cfg->dst_ip)
		return NULL;
	udp = (const struct rte_udp_hdr *)(p + off + ihl);
	dport = rte_be_to_cpu_16(udp->dst_port);
	ulen = rte_be_to_cpu_16(udp->dgram_len);
	if (rte_be_to_cpu_16(udp->src_port) != cfg->udp_port ||
	    dport < cfg->src_port ||
	    (unsigned)(dport - cfg->src_port) >= cfg->streams ||
	    ulen < sizeof(*udp) || off + ihl + ulen > n)
		return NULL;
	*len = ulen - (uint32_t)sizeof(*udp);
	return (const uint8_t *)(udp + 1);
}

/* ------------------------------------------------------------------------ */
/* Answers                                                                    */

/* Where a datagram's volume counters go: measured or warm-up. */
static inline struct gen_stats *
vol(struct gen_worker *w, const struct gen_flight *f)
{
	return f->measured ? &w->st : &w->warm;
}

static void
count_record(struct gen_stats *st, const struct auth_req *r,
	     const struct auth_resp *a)
{
	unsigned reason = a->reason < AUTH_REASONS ? a->reason : AUTH_REASONS;
	unsigned op = r->op < GEN_OPS ? r->op : 0;

	GEN_ADD(st->status[a->status < 3 ? a->status : 2], 1);
	GEN_ADD(st->reason[reason], 1);
	GEN_ADD(st->op_reason[op][reason], 1);
	for (unsigned b = 0; b < 8; b++)
		if (a->notes & (1u << b))
			GEN_ADD(st->notes[b], 1);
}

static bool
echo_ok(const struct gen_worker *w, const struct auth_hdr *h,
	const struct gen_flight *f)
{
	const struct gen_config *cfg = &w->ctx->cfg;

	return h->stream == f->stream && h->gateway_id == cfg->gateway_id &&
	       h->key_id == cfg->key_id && h->count == f->n &&
	       h->sent_ns == f->sent_ns;
}

/* A replayed record's answer against the recorded one. */
static void
replay_check(struct gen_worker *w, struct gen_flight *f,
	     const struct auth_req *r, const struct auth_resp *want,
	     const struct auth_resp *got, uint64_t seq)
{
	bool other;

	GEN_ADD(vol(w, f)->c[GEN_C_replay_checked], 1);
	if (!gen_replay_compare(r, want, got, seq,
				w->st.c[GEN_C_replay_mismatches], &other))
		GEN_ADD(w->st.c[GEN_C_replay_mismatches], 1);
	else if (other)
		GEN_ADD(vol(w, f)->c[GEN_C_replay_other_diffs], 1);
}

/* Check every record of a matched answer, learn from it, compare. */
static void
answer_records(struct gen_worker *w, const uint8_t *p, struct gen_flight *f,
	       uint64_t seq)
{
	const struct auth_resp *a = (const struct auth_resp *)(p + AUTH_HDR_LEN);
	const struct auth_resp *want =
		f->verify ? &w->want[(f->g & w->mask) * AUTH_RECORDS_MAX] : NULL;
	bool replay = w->ctx->rp != NULL;

	for (unsigned i = 0; i < f->n; i++) {
		const struct auth_req *r = &f->req[i];

		if (a[i].request_id != r->request_id ||
		    a[i].user_id != r->user_id || a[i].op != r->op)
			GEN_ADD(w->st.c[GEN_C_wrong_ids], 1);
		count_record(vol(w, f), r, &a[i]);
		gen_load_count(vol(w, f), &f->sent[i], &a[i]);
		if (!replay)
			gen_load_answer(&w->load, r, &f->sent[i], &a[i]);
		if (!want)
			continue;
		if (replay) {
			replay_check(w, f, r, &want[i], &a[i], seq);
			continue;
		}
		GEN_ADD(vol(w, f)->c[GEN_C_model_checked], 1);
		if (!gen_model_compare(&w->ctx->cfg, r, &want[i], &a[i], seq,
				       w->st.c[GEN_C_model_mismatches]))
			GEN_ADD(w->st.c[GEN_C_model_mismatches], 1);
	}
	GEN_ADD(vol(w, f)->c[GEN_C_records_answered], f->n);
}

/* Move g_tail past settled datagrams. */
static void
advance_tail(struct gen_worker *w)
{
	while (w->g_tail < w->g_head &&
	       slot(w, w->g_tail)->state != GEN_FLIGHT_OUT)
		w->g_tail++;
}

static void
on_answer(struct gen_worker *w, const uint8_t *p, uint32_t len, uint64_t rx_ns)
{
	const struct auth_hdr *h = (const struct auth_hdr *)p;
	enum auth_drop why = auth_resp_verify(p, len, w->ctx->cfg.key);
	struct gen_flight *f;
	uint64_t g;

	if (why != AUTH_DROP_NONE) {
		GEN_ADD(w->st.c[why == AUTH_DROP_TAG ? GEN_C_bad_tag
						     : GEN_C_bad_header], 1);
		return;
	}
	g = h->seq - w->seq_base;
	f = slot(w, g);
	if (h->seq < w->seq_base || g >= w->g_head) {
		GEN_ADD(w->st.c[GEN_C_unexpected_answers], 1);
		return;
	}
	if (f->g != g || f->state == GEN_FLIGHT_LOST) {
		GEN_ADD((f->g == g ? vol(w, f) : &w->st)->c[GEN_C_late_answers], 1);
		return;
	}
	if (f->state != GEN_FLIGHT_OUT) {
		GEN_ADD(w->st.c[GEN_C_dup_answers], 1);
		return;
	}
	if (!echo_ok(w, h, f)) {
		GEN_ADD(w->st.c[GEN_C_bad_echo], 1);
		/* A wrong count would make us read past the answer. */
		if (h->count != f->n)
			return;
	}
	if (f->measured)
		perf_hist_record(&w->hist,
				 rx_ns > f->sent_ns ? rx_ns - f->sent_ns : 0);
	answer_records(w, p, f, h->seq);
	f->state = GEN_FLIGHT_DONE;
	w->out--;
	GEN_ADD(vol(w, f)->c[GEN_C_dgrams_answered], 1);
	GEN_SET(vol(w, f)->last_rx_ns, rx_ns);
	advance_tail(w);
}

static void
rx_burst(struct gen_worker *w)
{
	struct rte_mbuf *m[GEN_BURST];
	uint16_t n = rte_eth_rx_burst(w->ctx->port.port_id, w->queue, m,
				      GEN_BURST);
	uint64_t rx_ns;

	if (!n)
		return;
	rx_ns = now_ns(w, rte_rdtsc());
	for (uint16_t i = 0; i < n; i++) {
		uint32_t len = 0;
		bool arp;
		const uint8_t *p = rx_payload(w, m[i], &len, &arp);

		if (p && w->ctx->rec && w->ctx->cfg.record_answers)
			gen_record_answer(w->ctx->rec, w->index,
					  rte_pktmbuf_mtod(m[i], void *),
					  rte_pktmbuf_data_len(m[i]), rx_ns,
					  &w->st);
		if (p)
			on_answer(w, p, len, rx_ns);
		else if (arp)
			GEN_ADD(w->st.c[GEN_C_arp_replies], 1);
		else
			GEN_ADD(w->st.c[GEN_C_unexpected_frames], 1);
	}
	rte_pktmbuf_free_bulk(m, n);
}

/*
 * Capacity errors (lost, late, refused by TX, evicted) of a warm-up datagram
 * are counted with the warm-up: reported, not failing the run. Correctness
 * errors (tags, echoes, ids, model) always count against the run.
 */
static void
lose(struct gen_worker *w, struct gen_flight *f)
{
	f->state = GEN_FLIGHT_LOST;
	w->out--;
	GEN_ADD(vol(w, f)->c[GEN_C_dgrams_lost], 1);
	GEN_ADD(vol(w, f)->c[GEN_C_records_lost], f->n);
	for (unsigned i = 0; i < f->n; i++)
		gen_load_lost(&w->load, &f->req[i], &f->sent[i]);
}

/* Declare the oldest datagrams lost once their timeout has passed. */
static void
expire(struct gen_worker *w, uint64_t tsc)
{
	while (w->g_tail < w->g_head) {
		struct gen_flight *f = slot(w, w->g_tail);

		if (f->state == GEN_FLIGHT_OUT) {
			if (tsc - f->tx_tsc < w->timeout_tsc)
				return;
			lose(w, f);
		}
		w->g_tail++;
	}
}

/*
 * Open loop, table full: the oldest datagram is declared lost now, so the
 * schedule goes on (skipping sends would hide the stall, and one lost
 * datagram would block the table until its timeout).
 */
static void
evict_oldest(struct gen_worker *w)
{
	struct gen_flight *f = slot(w, w->g_tail);

	GEN_ADD(vol(w, f)->c[GEN_C_inflight_full], 1);
	if (f->state == GEN_FLIGHT_OUT)
		lose(w, f);
	advance_tail(w);
}

/* ------------------------------------------------------------------------ */
/* Requests                                                                   */

static unsigned
records_next(struct gen_worker *w)
{
	const struct gen_config *cfg = &w->ctx->cfg;
	unsigned n = cfg->rec_min;

	if (cfg->rec_max > cfg->rec_min)
		n += (unsigned)gen_rng_below(&w->load.rng,
					     cfg->rec_max - cfg->rec_min + 1);
	if (cfg->count && !w->warm_tsc && n > w->count_left)
		n = (unsigned)w->count_left;
	return n;
}

/* Start datagram g_head in its slot: n records on @p stream. */
static struct gen_flight *
flight_start(struct gen_worker *w, unsigned n, uint16_t stream,
	     uint64_t sent_ns, uint64_t tsc)
{
	struct gen_flight *f = slot(w, w->g_head);

	f->g = w->g_head;
	f->n = (uint8_t)n;
	f->stream = stream;
	f->sent_ns = sent_ns;
	f->tx_tsc = tsc;
	f->state = GEN_FLIGHT_OUT;
	f->measured = w->warm_tsc == 0;
	f->verify = 0;
	return f;
}

/* Header, tag, counters, TX of the datagram in @p f (g_head). */
static void
flight_send(struct gen_worker *w, struct gen_txq *q, struct gen_flight *f)
{
	const struct gen_config *cfg = &w->ctx->cfg;
	uint64_t g = f->g, sent_ns = f->sent_ns;
	unsigned n = f->n;
	struct auth_hdr h = {0};

	h.stream = f->stream;
	h.gateway_id = cfg->gateway_id;
	h.key_id = cfg->key_id;
	h.seq = w->seq_base + g;
	h.sent_ns = sent_ns;
	w->last_len = auth_dgram_build(w->last_dgram, sizeof(w->last_dgram), &h,
				       f->req, n, cfg->key);
	w->last_seq = h.seq;
	w->last_stream = h.stream;
	w->g_head++;
	w->out++;
	if (cfg->count && f->measured)
		w->count_left = n < w->count_left ? w->count_left - n : 0;
	GEN_ADD(vol(w, f)->c[GEN_C_dgrams_sent], 1);
	GEN_ADD(vol(w, f)->c[GEN_C_records_sent], n);
	if (!vol(w, f)->first_tx_ns)
		GEN_SET(vol(w, f)->first_tx_ns, sent_ns);
	GEN_SET(vol(w, f)->last_tx_ns, sent_ns);
	/* Last: a frame that cannot be sent settles the flight (unsent()). */
	tx_payload(w, q, w->last_dgram, w->last_len, h.stream, g);
}

/* Build and queue datagram g_head of the workload, stamped @p sent_ns. */
static void
send_one(struct gen_worker *w, struct gen_txq *q, uint64_t sent_ns,
	 uint64_t tsc)
{
	const struct gen_config *cfg = &w->ctx->cfg;
	struct gen_flight *f = flight_start(w, records_next(w), w->next_stream,
					    sent_ns, tsc);

	w->load.st = vol(w, f);
	for (unsigned i = 0; i < f->n; i++) {
		gen_load_next(&w->load, &f->req[i], &f->sent[i]);
		if (w->ctx->model)
			gen_model_exec(w->ctx->model, &f->req[i],
				       &w->want[(f->g & w->mask) * AUTH_RECORDS_MAX + i]);
	}
	f->verify = w->ctx->model != NULL;
	w->next_stream = (uint16_t)(w->next_stream + w->ctx->n_workers);
	if (w->next_stream >= cfg->streams)
		w->next_stream = (uint16_t)w->stream_first;
	flight_send(w, q, f);
}

/*
 * A request of the pcap as datagram g_head: the recorded records, unchanged,
 * under a new header (our gateway and key, stream mod --streams, a fresh
 * seq, sent_ns now) and our tag; the recorded answer, if any, to compare.
 */
static void
send_replayed(struct gen_worker *w, struct gen_txq *q,
	      const struct gen_replay_item *it, uint64_t sent_ns, uint64_t tsc)
{
	const struct gen_config *cfg = &w->ctx->cfg;
	struct gen_flight *f = flight_start(w, it->n,
					    (uint16_t)(it->stream % cfg->streams),
					    sent_ns, tsc);
	struct gen_stats *st = vol(w, f);

	memcpy(f->req, it->dgram + AUTH_HDR_LEN, (size_t)it->n * AUTH_REC_LEN);
	for (unsigned i = 0; i < f->n; i++) {
		const struct auth_req *r = &f->req[i];

		memset(&f->sent[i], 0, sizeof(f->sent[i]));
		f->sent[i].fault = GEN_FAULTS;
		GEN_ADD(st->op_sent[r->op < GEN_OPS ? r->op : 0], 1);
		GEN_ADD(st->product_sent[r->product < GEN_PRODUCTS ? r->product
								   : 0], 1);
	}
	if (it->has_answer) {
		memcpy(&w->want[(f->g & w->mask) * AUTH_RECORDS_MAX], it->ans,
		       (size_t)it->n * sizeof(struct auth_resp));
		f->verify = 1;
	} else {
		GEN_ADD(st->c[GEN_C_replay_unverified], f->n);
	}
	flight_send(w, q, f);
}

/* A valid one-record datagram (not counted, not in the model) to spoil. */
static uint32_t
inject_base(struct gen_worker *w, uint8_t *buf, uint64_t seq, uint32_t gw,
	    uint32_t key_id)
{
	const struct gen_config *cfg = &w->ctx->cfg;
	const struct auth_req *last =
		(const struct auth_req *)(w->last_dgram + AUTH_HDR_LEN);
	struct auth_req r = *last;
	struct auth_hdr h = {0};

	r.request_id = w->load.id_hi | GEN_INJECT_REC_BIT |
		       (w->st.c[GEN_C_injected] + 1);
	h.stream = w->last_stream;
	h.gateway_id = gw;
	h.key_id = key_id;
	h.seq = seq;
	h.sent_ns = now_ns(w, rte_rdtsc());
	return auth_dgram_build(buf, AUTH_DGRAM_MAX, &h, &r, 1, cfg->key);
}

/* Send one crafted datagram of kind @p k that authd must drop. */
static void
inject_one(struct gen_worker *w, struct gen_txq *q, enum gen_inject k)
{
	const struct gen_config *cfg = &w->ctx->cfg;
	uint8_t buf[AUTH_DGRAM_MAX] __rte_aligned(8);
	struct auth_hdr *h = (struct auth_hdr *)buf;
	uint64_t fresh = w->last_seq + 1 + w->st.c[GEN_C_injected];
	uint32_t len;

	/* Fresh seqs above the last datagram's never reach the window: every
	 * kind but replay/stale fails an earlier check. */
	len = inject_base(w, buf, fresh, cfg->gateway_id, cfg->key_id);
	switch (k) {
	case GEN_INJECT_SHORT:
		len = AUTH_HDR_LEN + 8;
		break;
	case GEN_INJECT_MAGIC:
		h->magic = 0xBEEF;
		break;
	case GEN_INJECT_VERSION:
		h->version = AUTH_VERSION + 1;
		break;
	case GEN_INJECT_TYPE:
		h->type = AUTH_TYPE_RESPONSE;
		break;
	case GEN_INJECT_COUNT:
		h->count = 0;
		break;
	case GEN_INJECT_LENGTH:
		h->count = 2;
		break;
	case GEN_INJECT_GATEWAY:
		len = inject_base(w, buf, fresh, cfg->gateway_id ^ 0x80000000u,
				  cfg->key_id);
		break;
	case GEN_INJECT_KEY:
		len = inject_base(w, buf, fresh, cfg->gateway_id,
				  cfg->key_id ^ 0x40000000u);
		break;
	case GEN_INJECT_TAG:
		buf[len - 1] ^= 0x5a;
		break;
	case GEN_INJECT_REPLAY:
		memcpy(buf, w->last_dgram, w->last_len);
		len = w->last_len;
		break;
	case GEN_INJECT_STALE:
		len = inject_base(w, buf, w->last_seq - 2 * AUTH_REPLAY_WINDOW,
				  cfg->gateway_id, cfg->key_id);
		break;
	default:
		return;
	}
	if (tx_payload(w, q, buf, len, w->last_stream, GEN_NO_FLIGHT) == 0) {
		GEN_ADD(w->st.inject[k], 1);
		GEN_ADD(w->st.c[GEN_C_injected], 1);
	}
}

/* Injections are spread over the run: one every inject_every datagrams. */
static void
maybe_inject(struct gen_worker *w, struct gen_txq *q, bool all)
{
	if (!w->last_len || (!all && w->g_head % w->inject_every))
		return;
	for (unsigned k = 0; k < GEN_INJECTS; k++) {
		while (w->inject_left[k]) {
			inject_one(w, q, (enum gen_inject)k);
			w->inject_left[k]--;
			if (!all)
				return;
		}
	}
}

/* The warm-up ends: from here datagrams count, the duration runs. */
static void
warm_check(struct gen_worker *w, uint64_t tsc)
{
	if (!w->warm_tsc || tsc < w->warm_tsc)
		return;
	if (w->end_tsc)
		w->end_tsc += tsc - w->warm_tsc;
	w->meas_tsc = tsc;
	GEN_SET(w->warm_tsc, 0);
}

static bool
time_up(struct gen_worker *w, uint64_t tsc)
{
	if (w->warm_tsc)
		return __atomic_load_n(&w->ctx->stop, __ATOMIC_RELAXED);
	return (w->end_tsc && tsc >= w->end_tsc) ||
	       (w->ctx->cfg.count && w->count_left == 0) || w->replay_done ||
	       __atomic_load_n(&w->ctx->stop, __ATOMIC_RELAXED);
}

static void
send_closed(struct gen_worker *w, struct gen_txq *q, uint64_t tsc)
{
	const struct gen_config *cfg = &w->ctx->cfg;
	unsigned k = 0;

	while (w->out < cfg->window && w->g_head - w->g_tail <= w->mask &&
	       k++ < GEN_BURST && !time_up(w, tsc)) {
		send_one(w, q, now_ns(w, tsc), tsc);
		maybe_inject(w, q, false);
	}
}

static uint64_t
sched_tsc(const struct gen_worker *w, uint64_t n)
{
	return w->t0_tsc +
	       (uint64_t)((unsigned __int128)n * w->ctx->tsc_hz / w->rate);
}

/*
 * The next send after the one scheduled at next_tsc. A constant rate is
 * t0 + n / rate (no drift); double11's ramp steps by 1 / rate(t), rate(t)
 * taken where the interval starts (10% during a warm-up).
 */
static uint64_t
next_send_tsc(struct gen_worker *w)
{
	const struct gen_ctx *c = w->ctx;
	uint64_t t_ms, pm;

	if (c->cfg.profile != GEN_PROFILE_DOUBLE11)
		return sched_tsc(w, ++w->sched_n);
	t_ms = w->next_tsc > w->meas_tsc
		       ? (w->next_tsc - w->meas_tsc) * 1000 / c->tsc_hz : 0;
	pm = w->warm_tsc ? GEN_D11_BASE_PERMILLE : gen_profile_rate_pm(c, t_ms);
	GEN_SET(w->offered_pm, (uint32_t)pm);
	return w->next_tsc + c->tsc_hz * 1000 / (w->rate * pm);
}

static void
send_open(struct gen_worker *w, struct gen_txq *q, uint64_t tsc)
{
	uint64_t behind_tsc = w->ctx->tsc_hz / 1000000 * GEN_BEHIND_US;
	unsigned k = 0;

	while (w->next_tsc <= tsc && k++ < GEN_BURST && !time_up(w, tsc)) {
		if (tsc - w->next_tsc > behind_tsc)
			GEN_ADD(w->st.c[GEN_C_behind], 1);
		if (w->g_head - w->g_tail > w->mask)
			evict_oldest(w);
		send_one(w, q, now_ns(w, w->next_tsc), tsc);
		maybe_inject(w, q, false);
		w->next_tsc = next_send_tsc(w);
	}
}

/* When item @p it is due: the recorded gap from the first, / --speed. */
static uint64_t
replay_due_tsc(const struct gen_worker *w, const struct gen_replay_item *it)
{
	uint64_t d_ns = it->ts_ns > w->replay_t0_ns ? it->ts_ns - w->replay_t0_ns
						    : 0;

	return w->t0_tsc +
	       (uint64_t)((unsigned __int128)d_ns * 1000u * w->ctx->tsc_hz /
			  ((unsigned __int128)w->ctx->cfg.speed_milli *
			   1000000000u));
}

static void
send_replay(struct gen_worker *w, struct gen_txq *q, uint64_t tsc)
{
	const struct gen_config *cfg = &w->ctx->cfg;
	uint64_t behind_tsc = w->ctx->tsc_hz / 1000000 * GEN_BEHIND_US;
	unsigned k = 0;

	while (k++ < GEN_BURST && !time_up(w, tsc)) {
		bool eof;
		const struct gen_replay_item *it = gen_replay_peek(w->ctx->rp,
								   &eof);
		uint64_t due = tsc;

		if (!it) {
			w->replay_done = eof;
			return;
		}
		if (!w->replay_started) {
			/* The recorded clock starts with the first request. */
			w->replay_started = true;
			w->replay_t0_ns = it->ts_ns;
			w->t0_tsc = tsc;
		}
		if (cfg->speed_milli == 0) {
			if (w->out >= cfg->window ||
			    w->g_head - w->g_tail > w->mask)
				return;
		} else {
			due = replay_due_tsc(w, it);
			if (due > tsc)
				return;
			if (tsc - due > behind_tsc)
				GEN_ADD(w->st.c[GEN_C_behind], 1);
			if (w->g_head - w->g_tail > w->mask)
				evict_oldest(w);
		}
		send_replayed(w, q, it, now_ns(w, due), tsc);
		gen_replay_pop(w->ctx->rp);
		maybe_inject(w, q, false);
	}
}

/* ------------------------------------------------------------------------ */
/* The loop                                                                   */

static void
worker_start(struct gen_worker *w)
{
	const struct gen_config *cfg = &w->ctx->cfg;
	unsigned total = 0;

	w->t0_tsc = rte_rdtsc();
	w->next_tsc = w->t0_tsc;
	w->warm_tsc = cfg->warmup_s > 0
			      ? w->t0_tsc + (uint64_t)(cfg->warmup_s *
						       (double)w->ctx->tsc_hz)
			      : 0;
	/* The duration is measured time: it starts when the warm-up ends. */
	w->end_tsc = cfg->duration_s > 0
			     ? (w->warm_tsc ? w->warm_tsc : w->t0_tsc) +
				       (uint64_t)(cfg->duration_s *
						  (double)w->ctx->tsc_hz)
			     : 0;
	w->timeout_tsc = w->ctx->tsc_hz / 1000 * cfg->timeout_ms;
	w->meas_tsc = w->warm_tsc ? w->warm_tsc : w->t0_tsc;
	w->offered_pm = cfg->profile == GEN_PROFILE_DOUBLE11
				? GEN_D11_BASE_PERMILLE : 1000;
	w->sending = true;
	for (unsigned k = 0; k < GEN_INJECTS; k++)
		total += w->inject_left[k];
	/* Spread injections over the expected datagrams (or every 64). */
	w->inject_every = 64;
	if (total && cfg->count) {
		uint64_t dgrams = w->count_left * 2 / (cfg->rec_min + cfg->rec_max);

		w->inject_every = dgrams / (total + 1) ? dgrams / (total + 1) : 1;
	}
}

int
gen_worker_main(void *arg)
{
	struct gen_ctx *ctx = arg;
	struct gen_worker *w = NULL;
	struct gen_txq q = {.n = 0};
	uint64_t next_progress;

	for (unsigned i = 0; i < ctx->n_workers; i++)
		if (ctx->w[i]->lcore_id == rte_lcore_id())
			w = ctx->w[i];
	if (!w)
		return 0;
	if (w->model_online)
		rcu_register_thread();
	worker_start(w);
	next_progress = w->t0_tsc + ctx->tsc_hz;
	while (w->sending || w->out) {
		uint64_t tsc = rte_rdtsc();

		rx_burst(w);
		expire(w, tsc);
		warm_check(w, tsc);
		if (w->sending) {
			if (ctx->rp)
				send_replay(w, &q, tsc);
			else if (w->rate)
				send_open(w, &q, tsc);
			else
				send_closed(w, &q, tsc);
			if (time_up(w, tsc)) {
				maybe_inject(w, &q, true);
				w->sending = false;
			}
		}
		if (q.n)
			tx_flush(w, &q);
		if (w->model_online)
			lim_quiescent_state();
		if (w->index == 0 && tsc >= next_progress) {
			gen_tick(ctx, now_ns(w, tsc), false);
			next_progress += ctx->tsc_hz;
		}
	}
	if (w->model_online)
		rcu_unregister_thread();
	__atomic_add_fetch(&ctx->done, 1, __ATOMIC_RELEASE);
	return 0;
}

/* ------------------------------------------------------------------------ */
/* Set-up                                                                     */

struct gen_worker *
gen_worker_create(struct gen_ctx *ctx, unsigned index, unsigned lcore_id)
{
	const struct gen_config *cfg = &ctx->cfg;
	int socket = (int)rte_lcore_to_socket_id(lcore_id);
	struct gen_worker *w = rte_zmalloc_socket("gen_worker", sizeof(*w),
						  RTE_CACHE_LINE_SIZE, socket);

	if (!w)
		return NULL;
	w->ctx = ctx;
	w->index = index;
	w->lcore_id = lcore_id;
	w->queue = (uint16_t)index;
	w->stream_first = (uint16_t)index;
	w->next_stream = (uint16_t)index;
	w->n_streams = (uint16_t)((cfg->streams - index + ctx->n_workers - 1) /
				  ctx->n_workers);
	/* Apart by 2^32 per worker: another worker's answer (hashed to the
	 * wrong queue) falls outside this one's range and counts unexpected. */
	w->seq_base = ctx->unix_ns0 + ((uint64_t)index << 32);
	w->mask = cfg->inflight - 1;
	w->rate = cfg->rate / ctx->n_workers + (index < cfg->rate % ctx->n_workers);
	w->count_left = cfg->count / ctx->n_workers +
			(index < cfg->count % ctx->n_workers);
	for (unsigned k = 0; k < GEN_INJECTS; k++)
		w->inject_left[k] = index == 0 ? cfg->inject[k] : 0;
	perf_hist_init(&w->hist);
	w->fl = calloc(cfg->inflight, sizeof(*w->fl));
	if (ctx->model || ctx->rp)
		w->want = calloc((size_t)cfg->inflight * AUTH_RECORDS_MAX,
				 sizeof(*w->want));
	w->model_online = ctx->model != NULL;
	if (!w->fl || ((ctx->model || ctx->rp) && !w->want) ||
	    gen_load_init(&w->load, ctx, index, &w->st)) {
		gen_worker_free(w);
		return NULL;
	}
	return w;
}

void
gen_worker_free(struct gen_worker *w)
{
	if (!w)
		return;
	gen_load_fini(&w->load);
	free(w->fl);
	free(w->want);
	rte_free(w);
}

/* ------------------------------------------------------------------------ */
/* ARP                                                                        */

static int
arp_request(struct gen_ctx *c)
{
	struct rte_mbuf *m = rte_pktmbuf_alloc(c->port.queue_pool[0]);
	struct rte_ether_hdr *eth;
	struct rte_arp_hdr *arp;

	if (!m)
		return -ENOMEM;
	eth = (struct rte_ether_hdr *)rte_pktmbuf_append(
		m, sizeof(*eth) + sizeof(*arp));
	memset(&eth->dst_addr, 0xff, sizeof(eth->dst_addr));
	eth->src_addr = c->src_mac;
	eth->ether_type = RTE_BE16(RTE_ETHER_TYPE_ARP);
	arp = (struct rte_arp_hdr *)(eth + 1);
	arp->arp_hardware = RTE_BE16(RTE_ARP_HRD_ETHER);
	arp->arp_protocol = RTE_BE16(RTE_ETHER_TYPE_IPV4);
	arp->arp_hlen = RTE_ETHER_ADDR_LEN;
	arp->arp_plen = 4;
	arp->arp_opcode = RTE_BE16(RTE_ARP_OP_REQUEST);
	arp->arp_data.arp_sha = c->src_mac;
	arp->arp_data.arp_sip = rte_cpu_to_be_32(c->cfg.src_ip);
	memset(&arp->arp_data.arp_tha, 0, sizeof(arp->arp_data.arp_tha));
	arp->arp_data.arp_tip = rte_cpu_to_be_32(c->cfg.dst_ip);
	if (rte_eth_tx_burst(c->port.port_id, 0, &m, 1) != 1) {
		rte_pktmbuf_free(m);
		return -EAGAIN;
	}
	return 0;
}

/* An ARP reply from cfg.dst_ip: its MAC in c->dst_mac. */
static bool
arp_reply(struct gen_ctx *c, struct rte_mbuf *m)
{
	const struct rte_ether_hdr *eth =
		rte_pktmbuf_mtod(m, const struct rte_ether_hdr *);
	const struct rte_arp_hdr *arp = (const struct rte_arp_hdr *)(eth + 1);

	if (rte_pktmbuf_data_len(m) < sizeof(*eth) + sizeof(*arp) ||
	    eth->ether_type != RTE_BE16(RTE_ETHER_TYPE_ARP) ||
	    arp->arp_opcode != RTE_BE16(RTE_ARP_OP_REPLY) ||
	    rte_be_to_cpu_32(arp->arp_data.arp_sip) != c->cfg.dst_ip)
		return false;
	c->dst_mac = arp->arp_data.arp_sha;
	return true;
}

int
gen_arp_resolve(struct gen_ctx *c, unsigned timeout_ms)
{
	uint64_t end = rte_rdtsc() + c->tsc_hz / 1000 * timeout_ms;
	uint64_t next = 0;

	while (rte_rdtsc() < end) {
		struct rte_mbuf *m[GEN_BURST];
		uint16_t n;
		bool got = false;

		if (rte_rdtsc() >= next) {
			arp_request(c);
			next = rte_rdtsc() + c->tsc_hz / 5;
		}
		n = rte_eth_rx_burst(c->port.port_id, 0, m, GEN_BURST);
		for (uint16_t i = 0; i < n; i++)
			got |= arp_reply(c, m[i]);
		if (n)
			rte_pktmbuf_free_bulk(m, n);
		if (got)
			return 0;
		if (!n)
			rte_delay_us_sleep(100);
	}
	return -ETIMEDOUT;
}
