/*
 * authgen_pcap.c - --record (what was sent and received, to a pcap) and
 * --replay (a pcap's requests sent again, answers compared with the
 * recorded ones).
 *
 * Design note.
 *
 * Why libpcap and not DPDK's net_pcap: net_pcap is a port of its own (an
 * EAL --vdev the user must add, a second mempool, a copy of every mbuf
 * sent to it), it stamps frames with its own clock at TX time, and its RX
 * side reads a file as fast as it can, so it could neither keep our
 * timestamps (sent_ns, the intended send time) nor replay at a pace.
 * libpcap's pcap_dump()/pcap_next_ex() give both, for any link type a
 * tcpdump capture may have.
 *
 * Record. Format: classic pcap, link type Ethernet (DLT_EN10MB), snap
 * length 65535 (no frame is cut), nanosecond timestamps (magic
 * 0xa1b23c4d; `tcpdump -r` reads it, `--nano` prints the ns). A request
 * frame is written as built (addresses, ports, header, records, tag; IP and
 * UDP checksums completed in the copy when the port offloads them) stamped
 * with the header's sent_ns (the scheduled time in open loop); with
 * --record-answers, each answer frame from authd as received, stamped with
 * its receive time. The worker copies a frame into its own SP/SC ring of
 * GEN_REC_RING slots (no syscall on the lcore); a writer thread merges the
 * rings by timestamp into the file. A full ring makes the worker wait
 * (counted as record_waits): a recording is complete or the run says so.
 *
 * Replay. A reader thread reads the pcap (ours or tcpdump's: Ethernet with
 * up to two VLAN tags, Linux cooked v1/v2, raw IPv4; pcap or pcapng; us or
 * ns timestamps) and classifies each IPv4 UDP datagram: to --udp-port a
 * request, from it an answer; anything else (fragments, other ports,
 * non-IPv4) is counted and skipped. A request whose header is not a valid
 * protocol-v1 request (magic, version, type 1, count, length) is skipped;
 * its tag is not checked (the recording's key may not be ours). An answer
 * is paired with its request by (client IP, client port, gateway, stream,
 * seq): the answer echoes them. Pairing needs the answer before the request
 * goes out, so requests wait in the ring, unpublished, until their answer is
 * read, or the capture clock has moved on by --timeout past them, or the
 * ring is full; they are then published to the worker in capture order.
 * The ring (GEN_REPLAY_RING items) and the pairing hash are sized at start.
 *
 * What the worker rewrites (authgen_io.c, send_replayed()): Ethernet,
 * IP and UDP headers are built new (our MAC, authd's MAC, --src-ip,
 * --dst-ip, --src-port + stream, --udp-port; no VLAN); in the protocol
 * header gateway_id := --gateway, key_id := ours, stream := the recorded
 * stream mod --streams, seq := seq_base + datagram number (fresh and
 * strictly increasing, so authd's replay window accepts them whatever
 * authd saw before), sent_ns := the replay's send time; the records are
 * copied byte for byte (request ids too: the idempotency keys) and the tag
 * is computed with our key. So a replay against the state the recording
 * started from (same snapshot, same --clock fixed:T, a fresh authd) gives
 * the same answers; against another base or later state it cannot.
 *
 * Concurrency: one writer thread per recorder and one reader thread per
 * replay, each talking to worker lcores over single-producer,
 * single-consumer rings (acquire/release on the indices).
 */
#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <jansson.h>
#include <pcap/pcap.h>
#include <rte_byteorder.h>
#include <rte_ip.h>
#include <rte_pause.h>
#include <rte_udp.h>

#include "authgen.h"

#define GEN_REC_RING 4096         /* frames queued per worker (2^n) */
#define GEN_REPLAY_RING 16384     /* requests read ahead (2^n) */
#define GEN_REPLAY_HASH (2 * GEN_REPLAY_RING)
#define GEN_SNAPLEN 65535
#define GEN_IDLE_NS 200000        /* a thread with nothing to do sleeps */

#define LD(x) __atomic_load_n(&(x), __ATOMIC_ACQUIRE)
#define ST(x, v) __atomic_store_n(&(x), (v), __ATOMIC_RELEASE)

static void
idle(void)
{
	struct timespec ts = {0, GEN_IDLE_NS};

	nanosleep(&ts, NULL);
}

/* ------------------------------------------------------------------------ */
/* Record                                                                     */

struct gen_rec_slot {
	uint64_t ts_ns;
	uint32_t len;
	uint32_t answer;
	uint8_t data[GEN_FRAME_MAX];
};

struct gen_rec_ring {
	struct gen_rec_slot *slot;
	uint64_t head __rte_cache_aligned; /* the worker's: next to fill */
	uint64_t tail __rte_cache_aligned; /* the writer's: next to write */
};

struct gen_recorder {
	pcap_t *pd;
	pcap_dumper_t *dump;
	unsigned n_rings;
	struct gen_rec_ring ring[GEN_LCORES_MAX];
	pthread_t thread;
	bool thread_started;
	int stop;                /* atomic: write what is queued, then end */
	uint64_t frames, requests, answers;
};

/* The non-empty ring whose oldest frame is the oldest, or NULL. */
static struct gen_rec_ring *
oldest_ring(struct gen_recorder *r)
{
	struct gen_rec_ring *best = NULL;
	uint64_t best_ts = UINT64_MAX;

	for (unsigned i = 0; i < r->n_rings; i++) {
		struct gen_rec_ring *q = &r->ring[i];
		uint64_t t = q->tail;

		if (LD(q->head) == t)
			continue;
		if (q->slot[t & (GEN_REC_RING - 1)].ts_ns < best_ts) {
			best = q;
			best_ts = q->slot[t & (GEN_REC_RING - 1)].ts_ns;
		}
	}
	return best;
}

static void *
writer_main(void *arg)
{
	struct gen_recorder *r = arg;

	for (;;) {
		struct gen_rec_ring *q = oldest_ring(r);
		const struct gen_rec_slot *s;
		struct pcap_pkthdr h;

		if (!q) {
			if (LD(r->stop) && !oldest_ring(r))
				break;
			idle();
			continue;
		}
		s = &q->slot[q->tail & (GEN_REC_RING - 1)];
		/* A nanosecond dumper takes ns in tv_usec. */
		h.ts.tv_sec = (time_t)(s->ts_ns / 1000000000u);
		h.ts.tv_usec = (suseconds_t)(s->ts_ns % 1000000000u);
		h.caplen = h.len = s->len;
		pcap_dump((u_char *)r->dump, &h, s->data);
		r->frames++;
		if (s->answer)
			r->answers++;
		else
			r->requests++;
		ST(q->tail, q->tail + 1);
	}
	return NULL;
}

struct gen_recorder *
gen_record_open(const char *path, unsigned workers, char *err, size_t errlen)
{
	struct gen_recorder *r = calloc(1, sizeof(*r));

	if (!r) {
		snprintf(err, errlen, "out of memory");
		return NULL;
	}
	r->n_rings = workers;
	for (unsigned i = 0; i < workers; i++) {
		r->ring[i].slot = calloc(GEN_REC_RING, sizeof(struct gen_rec_slot));
		if (!r->ring[i].slot) {
			snprintf(err, errlen, "out of memory for the record rings");
			goto fail;
		}
	}
	r->pd = pcap_open_dead_with_tstamp_precision(DLT_EN10MB, GEN_SNAPLEN,
						     PCAP_TSTAMP_PRECISION_NANO);
	if (!r->pd) {
		snprintf(err, errlen, "pcap_open_dead failed");
		goto fail;
	}
	r->dump = pcap_dump_open(r->pd, path);
	if (!r->dump) {
		snprintf(err, errlen, "%s", pcap_geterr(r->pd));
		goto fail;
	}
	if (pthread_create(&r->thread, NULL, writer_main, r)) {
		snprintf(err, errlen, "cannot start the writer thread");
		goto fail;
	}
	r->thread_started = true;
	return r;
fail:
	gen_record_close(r, NULL, NULL, NULL);
	return NULL;
}

/* A frame built with TX checksum offload has pseudo-header sums: finish
 * them in the copy so the file is a valid capture. */
static void
finish_checksums(uint8_t *frame, uint32_t len)
{
	struct rte_ipv4_hdr *ip = (struct rte_ipv4_hdr *)(frame + RTE_ETHER_HDR_LEN);
	struct rte_udp_hdr *udp;

	if (len < RTE_ETHER_HDR_LEN + sizeof(*ip) + sizeof(*udp))
		return;
	udp = (struct rte_udp_hdr *)((uint8_t *)ip + (ip->version_ihl & 0xf) * 4);
	ip->hdr_checksum = 0;
	ip->hdr_checksum = rte_ipv4_cksum(ip);
	udp->dgram_cksum = 0;
	udp->dgram_cksum = rte_ipv4_udptcp_cksum(ip, udp);
}

/*
 * Copy a frame into the worker's ring and publish it. Everything the writer
 * reads of the slot (timestamp, length, kind, bytes, finished checksums) is
 * written before the release store of head: the writer may take the slot
 * the moment head moves, and a field written after that is read half-made
 * (an answer counted as a request, a request written with the pseudo-header
 * checksum of TX offload). perf/authgen_pcap_test.c checks it.
 */
static void
record_frame(struct gen_recorder *r, unsigned worker, const void *frame,
	     uint32_t len, uint64_t ts_ns, bool answer, bool offload,
	     struct gen_stats *st)
{
	struct gen_rec_ring *q = &r->ring[worker];
	struct gen_rec_slot *s;

	if (len > GEN_FRAME_MAX)
		len = GEN_FRAME_MAX; /* never: our frames are < 1200 bytes */
	if (q->head - LD(q->tail) == GEN_REC_RING) {
		GEN_ADD(st->c[GEN_C_record_waits], 1);
		while (q->head - LD(q->tail) == GEN_REC_RING)
			rte_pause();
	}
	s = &q->slot[q->head & (GEN_REC_RING - 1)];
	s->ts_ns = ts_ns;
	s->len = len;
	s->answer = answer;
	memcpy(s->data, frame, len);
	if (offload)
		finish_checksums(s->data, len);
	ST(q->head, q->head + 1);
}

void
gen_record_answer(struct gen_recorder *r, unsigned worker, const void *frame,
		  uint32_t len, uint64_t ts_ns, struct gen_stats *st)
{
	record_frame(r, worker, frame, len, ts_ns, true, false, st);
}

void
gen_record_request(struct gen_recorder *r, unsigned worker, const void *frame,
		   uint32_t len, uint64_t ts_ns, bool offload,
		   struct gen_stats *st)
{
	record_frame(r, worker, frame, len, ts_ns, false, offload, st);
}

int
gen_record_close(struct gen_recorder *r, uint64_t *frames, uint64_t *requests,
		 uint64_t *answers)
{
	int rc = 0;

	if (!r)
		return 0;
	if (r->thread_started) {
		ST(r->stop, 1);
		pthread_join(r->thread, NULL);
	}
	if (frames)
		*frames = r->frames;
	if (requests)
		*requests = r->requests;
	if (answers)
		*answers = r->answers;
	if (r->dump) {
		if (pcap_dump_flush(r->dump))
			rc = -EIO;
		pcap_dump_close(r->dump);
	}
	if (r->pd)
		pcap_close(r->pd);
	for (unsigned i = 0; i < r->n_rings; i++)
		free(r->ring[i].slot);
	free(r);
	return rc;
}

/* ------------------------------------------------------------------------ */
/* Replay: reading a capture                                                  */

/* What the reader counts (one writer: the reader thread). */
#define GEN_FOREACH_RP_COUNTER(_)                                              \
	_(frames, "frames read")                                               \
	_(requests, "request datagrams (to the server port) queued")           \
	_(answers, "answer datagrams (from the server port)")                  \
	_(paired, "answers paired with their request")                         \
	_(unanswered, "requests with no answer in the capture (within "        \
		      "--timeout of capture time, or the read-ahead was full)")\
	_(orphan_answers, "answers whose request was not found (or was sent "  \
			  "already)")                                          \
	_(bad_requests, "datagrams to the server port that are not valid "     \
			"v1 requests (skipped)")                               \
	_(bad_answers, "datagrams from the server port that are not valid "    \
		       "v1 answers, or not as many records as the request")    \
	_(not_udp, "frames that are not IPv4 UDP (ARP, fragments, ...)")       \
	_(other_port, "UDP datagrams neither to nor from the server port")     \
	_(truncated, "frames cut short by the capture's snap length")

enum gen_rp_counter {
#define GEN_RP_ENUM(name, desc) GEN_RP_##name,
	GEN_FOREACH_RP_COUNTER(GEN_RP_ENUM)
#undef GEN_RP_ENUM
	GEN_RP_COUNTERS
};

static const char *const rp_names[GEN_RP_COUNTERS] = {
#define GEN_RP_NAME(name, desc) #name,
	GEN_FOREACH_RP_COUNTER(GEN_RP_NAME)
#undef GEN_RP_NAME
};

struct gen_rp_slot {
	uint64_t key;            /* 0: empty */
	uint64_t pos;            /* the request's ring position */
};

struct gen_replay {
	pcap_t *p;
	int linktype;
	uint16_t server_port;
	uint64_t lookahead_ns;
	char path[PATH_MAX];
	struct gen_replay_item *ring;      /* [GEN_REPLAY_RING] */
	uint64_t *keys;                    /* [GEN_REPLAY_RING] pairing key */
	struct gen_rp_slot *hash;          /* [GEN_REPLAY_HASH] */
	uint64_t w_pos;                    /* reader: next item to fill */
	uint64_t head __rte_cache_aligned; /* reader: published up to here */
	uint64_t tail __rte_cache_aligned; /* worker: consumed up to here */
	int eof;                           /* atomic: all published */
	int stop;                          /* atomic: the worker gave up */
	pthread_t thread;
	bool thread_started;
	uint64_t c[GEN_RP_COUNTERS];       /* relaxed: read by the report */
	uint64_t first_ts_ns, last_ts_ns;
};

#define RP_ADD(rp, name) GEN_ADD((rp)->c[GEN_RP_##name], 1)

/* The key of (client, gateway, stream, seq): what an answer echoes. */
static uint64_t
pair_key(uint32_t client_ip, uint16_t client_port, const struct auth_hdr *h)
{
	uint64_t k = h->seq ^ ((uint64_t)h->stream << 48) ^
		     ((uint64_t)h->gateway_id * 0x9e3779b97f4a7c15ull) ^
		     (((uint64_t)client_ip << 16 | client_port) *
		      0xc2b2ae3d27d4eb4full);

	k ^= k >> 31;
	k *= 0xbf58476d1ce4e5b9ull;
	k ^= k >> 29;
	return k ? k : 1;
}

static struct gen_rp_slot *
hash_find(struct gen_replay *rp, uint64_t key)
{
	for (uint64_t i = key, n = 0; n < GEN_REPLAY_HASH; i++, n++) {
		struct gen_rp_slot *s = &rp->hash[i & (GEN_REPLAY_HASH - 1)];

		if (s->key == key || s->key == 0)
			return s;
	}
	return NULL; /* never: the hash is twice the ring */
}

/* Linear probing, deletion by backward shift (no tombstones). */
static void
hash_del(struct gen_replay *rp, struct gen_rp_slot *s)
{
	const uint64_t m = GEN_REPLAY_HASH - 1;
	uint64_t hole = (uint64_t)(s - rp->hash);

	for (uint64_t i = (hole + 1) & m; rp->hash[i].key; i = (i + 1) & m) {
		uint64_t home = rp->hash[i].key & m;

		/* Move i into the hole unless its home lies in (hole, i]. */
		if (((i - home) & m) >= ((i - hole) & m)) {
			rp->hash[hole] = rp->hash[i];
			hole = i;
		}
	}
	rp->hash[hole].key = 0;
}

/* The IPv4 header of a frame of the capture's link type, or NULL. */
static const uint8_t *
frame_ip(const struct gen_replay *rp, const uint8_t *p, uint32_t len)
{
	uint32_t off;
	uint16_t type;

	switch (rp->linktype) {
	case DLT_EN10MB:
		if (len < 14)
			return NULL;
		off = 12;
		type = (uint16_t)(p[off] << 8 | p[off + 1]);
		for (unsigned v = 0; v < 2 && (type == 0x8100 || type == 0x88a8);
		     v++) {
			off += 4;
			if (len < off + 2)
				return NULL;
			type = (uint16_t)(p[off] << 8 | p[off + 1]);
		}
		off += 2;
		break;
	case DLT_LINUX_SLL:
		if (len < 16)
			return NULL;
		type = (uint16_t)(p[14] << 8 | p[15]);
		off = 16;
		break;
#ifdef DLT_LINUX_SLL2
	case DLT_LINUX_SLL2:
		if (len < 20)
			return NULL;
		type = (uint16_t)(p[0] << 8 | p[1]);
		off = 20;
		break;
#endif
	default: /* DLT_RAW, DLT_IPV4 */
		type = 0x0800;
		off = 0;
		break;
	}
	return type == 0x0800 && len >= off + 20 ? p + off : NULL;
}

/* A UDP datagram in the frame: payload, ports and addresses; or NULL. */
static const uint8_t *
frame_udp(const struct gen_replay *rp, const uint8_t *p, uint32_t caplen,
	  uint32_t *plen, uint32_t ip_port[4])
{
	const uint8_t *ip = frame_ip(rp, p, caplen);
	const struct rte_ipv4_hdr *h = (const struct rte_ipv4_hdr *)ip;
	const struct rte_udp_hdr *u;
	uint32_t ihl, room, ulen;

	if (!ip || (h->version_ihl >> 4) != 4 ||
	    h->next_proto_id != IPPROTO_UDP ||
	    (rte_be_to_cpu_16(h->fragment_offset) & 0x3fff))
		return NULL;
	ihl = (h->version_ihl & 0xf) * 4u;
	room = caplen - (uint32_t)(ip - p);
	if (ihl < 20 || room < ihl + sizeof(*u))
		return NULL;
	u = (const struct rte_udp_hdr *)(ip + ihl);
	ulen = rte_be_to_cpu_16(u->dgram_len);
	if (ulen < sizeof(*u))
		return NULL;
	if (room < ihl + ulen)
		return NULL;
	ip_port[0] = rte_be_to_cpu_32(h->src_addr);
	ip_port[1] = rte_be_to_cpu_16(u->src_port);
	ip_port[2] = rte_be_to_cpu_32(h->dst_addr);
	ip_port[3] = rte_be_to_cpu_16(u->dst_port);
	*plen = ulen - (uint32_t)sizeof(*u);
	return (const uint8_t *)(u + 1);
}

/* Header checks of a v1 datagram of @p type (no key, no tag). */
static bool
dgram_ok(const uint8_t *d, uint32_t len, uint8_t type)
{
	struct auth_hdr h;

	if (len < AUTH_HDR_LEN + AUTH_REC_LEN + AUTH_TAG_LEN)
		return false;
	memcpy(&h, d, sizeof(h));
	return h.magic == AUTH_MAGIC && h.version == AUTH_VERSION &&
	       h.type == type && h.count >= 1 && h.count <= AUTH_RECORDS_MAX &&
	       len == (uint32_t)AUTH_DGRAM_LEN(h.count);
}

/* Publish the oldest unpublished request to the worker. */
static void
publish_one(struct gen_replay *rp)
{
	uint64_t pos = rp->head;
	struct gen_replay_item *it = &rp->ring[pos & (GEN_REPLAY_RING - 1)];

	if (!it->has_answer) {
		struct gen_rp_slot *s = hash_find(rp, rp->keys[pos & (GEN_REPLAY_RING - 1)]);

		if (s && s->key && s->pos == pos)
			hash_del(rp, s);
		RP_ADD(rp, unanswered);
	}
	ST(rp->head, pos + 1);
}

/* Publish what is answered, or waited long enough, in capture order. */
static void
publish_ready(struct gen_replay *rp, uint64_t now_ns)
{
	while (rp->head < rp->w_pos) {
		const struct gen_replay_item *it =
			&rp->ring[rp->head & (GEN_REPLAY_RING - 1)];

		if (!it->has_answer && now_ns - it->ts_ns < rp->lookahead_ns)
			return;
		publish_one(rp);
	}
}

/* Wait for room for one more request; false when told to stop. */
static bool
make_room(struct gen_replay *rp)
{
	while (rp->w_pos - LD(rp->tail) >= GEN_REPLAY_RING) {
		if (LD(rp->stop))
			return false;
		if (rp->w_pos - rp->head >= GEN_REPLAY_RING)
			publish_one(rp); /* all waiting for answers: no more */
		else
			idle();          /* the worker has not sent them yet */
	}
	return true;
}

static void
on_request(struct gen_replay *rp, const uint8_t *d, uint32_t len,
	   const uint32_t ip_port[4], uint64_t ts_ns)
{
	uint64_t pos = rp->w_pos;
	struct gen_replay_item *it = &rp->ring[pos & (GEN_REPLAY_RING - 1)];
	struct gen_rp_slot *s;
	struct auth_hdr h;

	if (!dgram_ok(d, len, AUTH_TYPE_REQUEST)) {
		RP_ADD(rp, bad_requests);
		return;
	}
	if (!make_room(rp))
		return;
	memcpy(&h, d, sizeof(h));
	it->ts_ns = ts_ns;
	it->len = len;
	it->stream = h.stream;
	it->n = (uint8_t)h.count;
	it->has_answer = 0;
	memcpy(it->dgram, d, len);
	rp->keys[pos & (GEN_REPLAY_RING - 1)] =
		pair_key(ip_port[0], (uint16_t)ip_port[1], &h);
	s = hash_find(rp, rp->keys[pos & (GEN_REPLAY_RING - 1)]);
	/* A request seen twice (a retransmission) pairs with its last copy. */
	s->key = rp->keys[pos & (GEN_REPLAY_RING - 1)];
	s->pos = pos;
	rp->w_pos++;
	RP_ADD(rp, requests);
}

static void
on_answer(struct gen_replay *rp, const uint8_t *d, uint32_t len,
	  const uint32_t ip_port[4])
{
	struct gen_replay_item *it;
	struct gen_rp_slot *s;
	struct auth_hdr h;

	RP_ADD(rp, answers);
	if (!dgram_ok(d, len, AUTH_TYPE_RESPONSE)) {
		RP_ADD(rp, bad_answers);
		return;
	}
	memcpy(&h, d, sizeof(h));
	s = hash_find(rp, pair_key(ip_port[2], (uint16_t)ip_port[3], &h));
	if (!s || !s->key) {
		RP_ADD(rp, orphan_answers);
		return;
	}
	it = &rp->ring[s->pos & (GEN_REPLAY_RING - 1)];
	if (it->n != h.count) {
		RP_ADD(rp, bad_answers);
		return;
	}
	memcpy(it->ans, d + AUTH_HDR_LEN, (size_t)h.count * AUTH_REC_LEN);
	it->has_answer = 1;
	hash_del(rp, s);
	RP_ADD(rp, paired);
}

static void
on_frame(struct gen_replay *rp, const struct pcap_pkthdr *ph, const uint8_t *p)
{
	uint64_t ts = (uint64_t)ph->ts.tv_sec * 1000000000u +
		      (uint64_t)ph->ts.tv_usec;
	uint32_t ip_port[4], len;
	const uint8_t *d;

	RP_ADD(rp, frames);
	if (!rp->first_ts_ns)
		rp->first_ts_ns = ts;
	rp->last_ts_ns = ts;
	d = frame_udp(rp, p, ph->caplen, &len, ip_port);
	if (!d) {
		if (ph->caplen < ph->len)
			RP_ADD(rp, truncated);
		else
			RP_ADD(rp, not_udp);
		return;
	}
	if (ip_port[3] == (uint32_t)rp->server_port)
		on_request(rp, d, len, ip_port, ts);
	else if (ip_port[1] == (uint32_t)rp->server_port)
		on_answer(rp, d, len, ip_port);
	else
		RP_ADD(rp, other_port);
	publish_ready(rp, ts);
}

static void *
reader_main(void *arg)
{
	struct gen_replay *rp = arg;
	struct pcap_pkthdr *ph;
	const u_char *p;
	int rc;

	while (!LD(rp->stop) && (rc = pcap_next_ex(rp->p, &ph, &p)) == 1)
		on_frame(rp, ph, p);
	while (rp->head < rp->w_pos)
		publish_one(rp);
	ST(rp->eof, 1);
	return NULL;
}

struct gen_replay *
gen_replay_open(const struct gen_config *cfg, char *err, size_t errlen)
{
	char perr[PCAP_ERRBUF_SIZE] = "";
	struct gen_replay *rp = calloc(1, sizeof(*rp));

	if (!rp || !(rp->ring = calloc(GEN_REPLAY_RING, sizeof(*rp->ring))) ||
	    !(rp->keys = calloc(GEN_REPLAY_RING, sizeof(*rp->keys))) ||
	    !(rp->hash = calloc(GEN_REPLAY_HASH, sizeof(*rp->hash)))) {
		snprintf(err, errlen, "out of memory for the replay ring");
		gen_replay_close(rp);
		return NULL;
	}
	snprintf(rp->path, sizeof(rp->path), "%s", cfg->replay_path);
	rp->server_port = cfg->udp_port;
	rp->lookahead_ns = (uint64_t)cfg->timeout_ms * 1000000u;
	rp->p = pcap_open_offline_with_tstamp_precision(
		cfg->replay_path, PCAP_TSTAMP_PRECISION_NANO, perr);
	if (!rp->p) {
		snprintf(err, errlen, "%s", perr);
		gen_replay_close(rp);
		return NULL;
	}
	rp->linktype = pcap_datalink(rp->p);
	if (rp->linktype != DLT_EN10MB && rp->linktype != DLT_LINUX_SLL &&
#ifdef DLT_LINUX_SLL2
	    rp->linktype != DLT_LINUX_SLL2 &&
#endif
	    rp->linktype != DLT_RAW && rp->linktype != DLT_IPV4) {
		snprintf(err, errlen, "link type %s: expected Ethernet, Linux "
			 "cooked or raw IPv4",
			 pcap_datalink_val_to_name(rp->linktype)
				 ? pcap_datalink_val_to_name(rp->linktype) : "?");
		gen_replay_close(rp);
		return NULL;
	}
	if (pthread_create(&rp->thread, NULL, reader_main, rp)) {
		snprintf(err, errlen, "cannot start the reader thread");
		gen_replay_close(rp);
		return NULL;
	}
	rp->thread_started = true;
	return rp;
}

const struct gen_replay_item *
gen_replay_peek(struct gen_replay *rp, bool *eof)
{
	uint64_t t = rp->tail;

	*eof = false;
	if (LD(rp->head) != t)
		return &rp->ring[t & (GEN_REPLAY_RING - 1)];
	/* eof is set after the last publish: look at head once more. */
	*eof = LD(rp->eof) && LD(rp->head) == t;
	return NULL;
}

void
gen_replay_pop(struct gen_replay *rp)
{
	ST(rp->tail, rp->tail + 1);
}

void
gen_replay_close(struct gen_replay *rp)
{
	if (!rp)
		return;
	if (rp->thread_started) {
		ST(rp->stop, 1);
		pthread_join(rp->thread, NULL);
	}
	if (rp->p)
		pcap_close(rp->p);
	free(rp->ring);
	free(rp->keys);
	free(rp->hash);
	free(rp);
}

/* ------------------------------------------------------------------------ */
/* Replay: report and answer comparison                                       */

json_t *
gen_replay_json(const struct gen_replay *rp)
{
	json_t *o = json_object();
	const char *lt = pcap_datalink_val_to_name(rp->linktype);

	json_object_set_new(o, "file", json_string(rp->path));
	json_object_set_new(o, "linktype", json_string(lt ? lt : "?"));
	json_object_set_new(o, "server_port", json_integer(rp->server_port));
	json_object_set_new(o, "capture_s",
			    json_real((double)(rp->last_ts_ns - rp->first_ts_ns) /
				      1e9));
	for (unsigned i = 0; i < GEN_RP_COUNTERS; i++)
		json_object_set_new(o, rp_names[i],
				    json_integer((json_int_t)GEN_RD(rp->c[i])));
	json_object_set_new(o, "has_answers",
			    json_boolean(GEN_RD(rp->c[GEN_RP_paired]) > 0));
	return o;
}

void
gen_replay_print(FILE *f, const struct gen_replay *rp)
{
	const char *lt = pcap_datalink_val_to_name(rp->linktype);
	bool any = false;

	fprintf(f, "  %-10s%s (%s, %.3f s of capture): %" PRIu64 " frames, %"
		   PRIu64 " requests, %" PRIu64 " answers, %" PRIu64 " paired\n",
		"replay", rp->path, lt ? lt : "?",
		(double)(rp->last_ts_ns - rp->first_ts_ns) / 1e9,
		rp->c[GEN_RP_frames], rp->c[GEN_RP_requests],
		rp->c[GEN_RP_answers], rp->c[GEN_RP_paired]);
	fprintf(f, "  %-10s", "");
	for (unsigned i = GEN_RP_unanswered; i < GEN_RP_COUNTERS; i++) {
		if (!rp->c[i])
			continue;
		fprintf(f, "%s%s %" PRIu64, any ? ", " : "", rp_names[i],
			rp->c[i]);
		any = true;
	}
	fprintf(f, "%s\n", any ? "" : "nothing skipped");
	if (!rp->c[GEN_RP_paired])
		fprintf(f, "  %-10sno recorded answers: nothing to verify "
			   "(record with --record-answers)\n", "");
}

static void
print_resp(const char *who, const struct auth_resp *a)
{
	fprintf(stderr,
		"  %s: request_id %#" PRIx64 " user_id %" PRIu64 " op %u "
		"status %u reason %s amount %" PRId64 " available %" PRId64
		" notes %#x ledger_seq %" PRIu64 "\n",
		who, a->request_id, a->user_id, a->op, a->status,
		auth_reason_name(a->reason), a->amount, a->available, a->notes,
		a->ledger_seq);
}

bool
gen_replay_compare(const struct auth_req *r, const struct auth_resp *want,
		   const struct auth_resp *got, uint64_t seq,
		   uint64_t mismatches_so_far, bool *other)
{
	bool same = want->request_id == got->request_id &&
		    want->user_id == got->user_id && want->op == got->op &&
		    want->status == got->status &&
		    want->reason == got->reason &&
		    want->amount == got->amount &&
		    want->available == got->available;

	*other = same && memcmp(want, got, sizeof(*want)) != 0;
	if (same)
		return true;
	if (mismatches_so_far < GEN_MISMATCH_PRINT) {
		fprintf(stderr, "authgen: replay mismatch #%" PRIu64
			" in datagram seq %" PRIu64 " (request_id %#" PRIx64
			" op %u amount %" PRId64 ")\n",
			mismatches_so_far + 1, seq, r->request_id, r->op,
			r->amount);
		print_resp("recorded", want);
		print_resp("replayed", got);
	} else if (mismatches_so_far == GEN_MISMATCH_PRINT) {
		fprintf(stderr, "authgen: more replay mismatches: only counted\n");
	}
	return false;
}
