/*
 * test_nic.c - the nic/ data path on frames written byte by byte: ARP and
 * ICMP answers (exact bytes), protocol datagrams with and without VLAN tag
 * and IP options, every drop cause, the in-place answer with checksums
 * checked by an independent sum, the offload path, the frame builder.
 *
 * EAL runs without hugepages, PCI or ports; only a mempool is needed.
 */
#include <errno.h>

#include <rte_mempool.h>

#include "nic_test.h"

static struct rte_mempool *pool;
static struct nic_host host;
static struct nic_counters cnt;

static const uint8_t our_mac[6] = { 0x02, 0x00, 0x00, 0x00, 0x00, 0x01 };
static const uint8_t peer_mac[6] = { 0x02, 0x00, 0x00, 0x00, 0x00, 0x02 };
static const uint8_t bcast[6] = { 0xff, 0xff, 0xff, 0xff, 0xff, 0xff };
#define OUR_IP 0x0a000001u      /* 10.0.0.1 */
#define PEER_IP 0x0a000002u     /* 10.0.0.2 */
#define OUR_PORT 7711
#define PEER_PORT 40000

/* ------------------------------------------------------------------------ */
/* Frames                                                                     */

static void
eth_hdr(struct t_frame *f, const uint8_t *dst, const uint8_t *src, int vlan,
	uint16_t type)
{
	memset(f, 0, sizeof(*f));
	t_putn(f, dst, 6);
	t_putn(f, src, 6);
	if (vlan >= 0) {
		t_put16(f, 0x8100);
		t_put16(f, (uint16_t)vlan);
	}
	t_put16(f, type);
}

/* IPv4 header with optional options; length and checksum set by ip_done(). */
static void
ip_hdr(struct t_frame *f, uint8_t proto, uint32_t src, uint32_t dst,
       const uint8_t *opts, size_t opt_len)
{
	f->ip = f->n;
	t_put8(f, (uint8_t)(0x40 | (5 + opt_len / 4)));
	t_put8(f, 0);           /* TOS */
	t_put16(f, 0);          /* total length, later */
	t_put16(f, 0x1234);     /* id */
	t_put16(f, 0x4000);     /* DF */
	t_put8(f, 17);          /* TTL: not 64, so the answer's TTL is visible */
	t_put8(f, proto);
	t_put16(f, 0);          /* checksum, later */
	t_put32(f, src);
	t_put32(f, dst);
	if (opt_len)
		t_putn(f, opts, opt_len);
	f->l4 = f->n;
}

/* Set the IP total length to the bytes written since the header, sum it. */
static void
ip_done(struct t_frame *f)
{
	t_set16(f->b + f->ip + 2, (uint16_t)(f->n - f->ip));
	t_ip_sum(f->b + f->ip);
}

static void
pad_to(struct t_frame *f, size_t n)
{
	while (f->n < n)
		t_put8(f, 0);
}

/* A request datagram: peer -> us, UDP 40000 -> 7711, payload bytes i*7. */
static void
udp_frame(struct t_frame *f, int vlan, const uint8_t *opts, size_t opt_len,
	  size_t payload_len)
{
	size_t i;

	eth_hdr(f, our_mac, peer_mac, vlan, 0x0800);
	ip_hdr(f, 17, PEER_IP, OUR_IP, opts, opt_len);
	t_put16(f, PEER_PORT);
	t_put16(f, OUR_PORT);
	t_put16(f, (uint16_t)(8 + payload_len));
	t_put16(f, 0);
	for (i = 0; i < payload_len; i++)
		t_put8(f, (uint8_t)(i * 7));
	ip_done(f);
	t_udp_sum(f->b + f->ip);
	pad_to(f, 60);
}

static void
arp_frame(struct t_frame *f, int vlan, uint16_t op, uint32_t sip, uint32_t tip)
{
	eth_hdr(f, bcast, peer_mac, vlan, 0x0806);
	t_put16(f, 1);          /* Ethernet */
	t_put16(f, 0x0800);     /* IPv4 */
	t_put8(f, 6);
	t_put8(f, 4);
	t_put16(f, op);
	t_putn(f, peer_mac, 6);
	t_put32(f, sip);
	t_putn(f, "\0\0\0\0\0\0", 6);
	t_put32(f, tip);
	pad_to(f, 60);
}

static void
icmp_frame(struct t_frame *f, uint8_t type, size_t data_len)
{
	size_t i;

	eth_hdr(f, our_mac, peer_mac, -1, 0x0800);
	ip_hdr(f, 1, PEER_IP, OUR_IP, NULL, 0);
	t_put8(f, type);
	t_put8(f, 0);
	t_put16(f, 0);          /* checksum, below */
	t_put16(f, 0xbeef);     /* identifier */
	t_put16(f, 0x0007);     /* sequence */
	for (i = 0; i < data_len; i++)
		t_put8(f, (uint8_t)(0x20 + i));
	ip_done(f);
	t_set16(f->b + f->l4 + 2,
		(uint16_t)~t_fold(t_sum(f->b + f->l4, f->n - f->l4)));
	pad_to(f, 60);
}

/* ------------------------------------------------------------------------ */
/* Fixtures                                                                   */

static int
group_setup(void **state)
{
	if (t_eal_start("nic", "128", NULL, 0) < 0)
		return -1;
	pool = rte_pktmbuf_pool_create("test_nic", 511, 0, 0,
				       RTE_MBUF_DEFAULT_BUF_SIZE, SOCKET_ID_ANY);
	return pool == NULL ? -1 : 0;
}

static int
group_teardown(void **state)
{
	rte_mempool_free(pool);
	t_eal_stop(true);
	return 0;
}

static int
setup(void **state)
{
	nic_host_init(&host, (const struct rte_ether_addr *)our_mac, OUR_IP,
		      OUR_PORT, NIC_F_MAC_FILTER);
	memset(&cnt, 0, sizeof(cnt));
	return 0;
}

/* Every mbuf a test took is back: nothing leaks. */
static int
teardown(void **state)
{
	assert_int_equal(rte_mempool_in_use_count(pool), 0);
	return 0;
}

static uint8_t *
data(struct rte_mbuf *m)
{
	return rte_pktmbuf_mtod(m, uint8_t *);
}

/* Classify one frame; expect a verdict, and nothing else counted. */
static struct rte_mbuf *
classify_m(struct rte_mbuf *m, enum nic_verdict want, struct nic_rx *rx)
{
	assert_int_equal(nic_classify(&host, m, rx, &cnt), want);
	assert_int_equal(rx->verdict, want);
	assert_int_equal(cnt.rx, 1);
	return m;
}

/* In a pool mbuf: room to write a longer answer. */
static struct rte_mbuf *
classify(const struct t_frame *f, enum nic_verdict want, struct nic_rx *rx)
{
	return classify_m(t_mbuf(pool, f), want, rx);
}

/* In a buffer of exactly the frame's length (see t_mbuf_exact()). */
static struct rte_mbuf *
classify_exact(const struct t_frame *f, enum nic_verdict want,
	       struct nic_rx *rx)
{
	return classify_m(t_mbuf_exact(pool, f), want, rx);
}

/* ------------------------------------------------------------------------ */
/* ARP                                                                        */

static void
test_arp_request_answered(void **state)
{
	static const uint8_t want[60] = {
		0x02, 0, 0, 0, 0, 0x02,                 /* to the asker */
		0x02, 0, 0, 0, 0, 0x01,                 /* from us */
		0x08, 0x06, 0x00, 0x01, 0x08, 0x00, 6, 4,
		0x00, 0x02,                             /* reply */
		0x02, 0, 0, 0, 0, 0x01, 10, 0, 0, 1,    /* sender: us */
		0x02, 0, 0, 0, 0, 0x02, 10, 0, 0, 2,    /* target: asker */
		/* padding kept as it came: 18 zero bytes */
	};
	struct t_frame f;
	struct nic_rx rx;
	struct rte_mbuf *m;

	arp_frame(&f, -1, 1, PEER_IP, OUR_IP);
	m = classify_exact(&f, NIC_ANSWER, &rx);
	assert_int_equal(rte_pktmbuf_pkt_len(m), 60);
	assert_memory_equal(data(m), want, sizeof(want));
	assert_int_equal(cnt.arp_answered, 1);
	assert_int_equal(nic_counters_drops(&cnt), 0);
	rte_pktmbuf_free(m);
}

static void
test_arp_request_vlan_answered(void **state)
{
	struct t_frame f;
	struct nic_rx rx;
	struct rte_mbuf *m;
	uint8_t *d;

	arp_frame(&f, 0x3064, 1, PEER_IP, OUR_IP);
	m = classify_exact(&f, NIC_ANSWER, &rx);
	d = data(m);
	assert_memory_equal(d, peer_mac, 6);
	assert_memory_equal(d + 6, our_mac, 6);
	assert_int_equal(t_get16(d + 12), 0x8100);
	assert_int_equal(t_get16(d + 14), 0x3064);      /* tag kept */
	assert_int_equal(t_get16(d + 16), 0x0806);
	assert_int_equal(t_get16(d + 18 + 6), 2);       /* reply */
	assert_memory_equal(d + 18 + 8, our_mac, 6);
	assert_memory_equal(d + 18 + 18, peer_mac, 6);
	assert_true(rx.flags & NIC_RX_VLAN);
	assert_int_equal(rx.vlan_tci, 0x3064);
	rte_pktmbuf_free(m);
}

/* ------------------------------------------------------------------------ */
/* ICMP                                                                       */

static void
check_echo_reply(size_t data_len)
{
	struct t_frame f;
	struct nic_rx rx;
	struct rte_mbuf *m;
	uint8_t *d, *ip, *icmp;
	size_t icmp_len = 8 + data_len;

	setup(NULL);
	icmp_frame(&f, 8, data_len);
	m = classify_exact(&f, NIC_ANSWER, &rx);
	d = data(m);
	ip = d + 14;
	icmp = ip + 20;
	assert_memory_equal(d, peer_mac, 6);
	assert_memory_equal(d + 6, our_mac, 6);
	assert_int_equal(ip[8], 64);                    /* TTL */
	assert_memory_equal(ip + 12, f.b + 14 + 16, 4); /* src = old dst */
	assert_memory_equal(ip + 16, f.b + 14 + 12, 4); /* dst = old src */
	assert_true(t_ip_ok(ip));
	assert_int_equal(icmp[0], 0);                   /* echo reply */
	assert_int_equal(icmp[1], 0);
	assert_memory_equal(icmp + 4, f.b + f.l4 + 4, icmp_len - 4);
	assert_int_equal(t_fold(t_sum(icmp, icmp_len)), 0xffff);
	assert_int_equal(cnt.icmp_answered, 1);
	rte_pktmbuf_free(m);
}

static void
test_icmp_echo_answered(void **state)
{
	check_echo_reply(56);   /* ping's default */
	check_echo_reply(3);    /* odd length: the last byte sums as high byte */
	check_echo_reply(0);
}

/* ------------------------------------------------------------------------ */
/* Protocol datagrams                                                         */

static void
check_proto(int vlan, const uint8_t *opts, size_t opt_len, size_t len)
{
	size_t l2 = vlan >= 0 ? 18 : 14, off = l2 + 20 + opt_len + 8, i;
	struct t_frame f;
	struct nic_rx rx;
	struct rte_mbuf *m;

	setup(NULL);
	udp_frame(&f, vlan, opts, opt_len, len);
	m = classify_exact(&f, NIC_PROTO, &rx);
	assert_int_equal(rx.payload_off, off);
	assert_int_equal(rx.payload_len, len);
	assert_ptr_equal(rx.payload, data(m) + off);
	for (i = 0; i < len; i++)
		assert_int_equal(rx.payload[i], (uint8_t)(i * 7));
	assert_int_equal(!!(rx.flags & NIC_RX_VLAN), vlan >= 0);
	if (vlan >= 0)
		assert_int_equal(rx.vlan_tci, vlan);
	assert_int_equal(m->l2_len, l2);
	assert_int_equal(m->l3_len, 20 + opt_len);
	assert_int_equal(m->l4_len, 8);
	assert_int_equal(cnt.proto, 1);
	assert_int_equal(nic_counters_drops(&cnt), 0);
	assert_memory_equal(data(m), f.b, f.n);         /* not touched */
	rte_pktmbuf_free(m);
}

static void
test_udp_proto(void **state)
{
	check_proto(-1, NULL, 0, 128);
	check_proto(-1, NULL, 0, 4);    /* 46-byte frame padded to 60 */
	check_proto(-1, NULL, 0, 0);
	check_proto(-1, NULL, 0, 1400);
}

static void
test_udp_proto_vlan(void **state)
{
	check_proto(0x0064, NULL, 0, 96);
	check_proto(0xe0ff, NULL, 0, 5);        /* priority 7, VID 255 */
}

static void
test_udp_proto_ip_options(void **state)
{
	static const uint8_t nops[4] = { 1, 1, 1, 0 };   /* NOP NOP NOP EOL */
	static const uint8_t rr[12] = { 7, 11, 4, 0, 0, 0, 0, 0, 0, 0, 0, 0 };

	check_proto(-1, nops, sizeof(nops), 64);
	check_proto(0x0005, rr, sizeof(rr), 64);        /* record route */
}

/* Check the answer to udp_frame() with the payload replaced by len bytes. */
static void
check_reply(const struct t_frame *req, struct rte_mbuf *m, int vlan,
	    size_t opt_len, size_t len)
{
	size_t l2 = vlan >= 0 ? 18 : 14, i;
	uint8_t *d = data(m), *ip = d + l2, *udp = ip + 20 + opt_len;

	assert_int_equal(rte_pktmbuf_pkt_len(m), l2 + 20 + opt_len + 8 + len);
	assert_int_equal(rte_pktmbuf_data_len(m), rte_pktmbuf_pkt_len(m));
	assert_memory_equal(d, peer_mac, 6);
	assert_memory_equal(d + 6, our_mac, 6);
	if (vlan >= 0) {
		assert_int_equal(t_get16(d + 12), 0x8100);
		assert_int_equal(t_get16(d + 14), vlan);
	}
	assert_int_equal(t_get16(d + l2 - 2), 0x0800);
	assert_int_equal(ip[0], 0x45 + opt_len / 4);
	assert_int_equal(t_get16(ip + 2), 20 + opt_len + 8 + len);
	assert_int_equal(ip[8], 64);
	assert_int_equal(ip[9], 17);
	assert_memory_equal(ip + 12, req->b + req->ip + 16, 4);
	assert_memory_equal(ip + 16, req->b + req->ip + 12, 4);
	assert_memory_equal(ip + 20, req->b + req->ip + 20, opt_len);
	assert_true(t_ip_ok(ip));
	assert_int_equal(t_get16(udp), OUR_PORT);
	assert_int_equal(t_get16(udp + 2), PEER_PORT);
	assert_int_equal(t_get16(udp + 4), 8 + len);
	assert_true(t_udp_ok(ip));
	for (i = 0; i < len; i++)
		assert_int_equal(udp[8 + i], (uint8_t)(0xa5 ^ i));
	assert_int_equal(m->ol_flags & RTE_MBUF_F_TX_OFFLOAD_MASK, 0);
}

static void
check_swap(int vlan, const uint8_t *opts, size_t opt_len, size_t req_len,
	   size_t len)
{
	struct t_frame f;
	struct nic_rx rx;
	struct rte_mbuf *m;
	size_t i;

	setup(NULL);
	udp_frame(&f, vlan, opts, opt_len, req_len);
	m = classify(&f, NIC_PROTO, &rx);
	for (i = 0; i < len; i++)
		rx.payload[i] = (uint8_t)(0xa5 ^ i);
	assert_int_equal(nic_swap_to_reply(&host, m, (uint16_t)len), 0);
	check_reply(&f, m, vlan, opt_len, len);
	rte_pktmbuf_free(m);
}

static void
test_swap_reply(void **state)
{
	static const uint8_t nops[8] = { 1, 1, 1, 1, 1, 1, 1, 0 };

	check_swap(-1, NULL, 0, 96, 96);        /* same length, as the protocol */
	check_swap(-1, NULL, 0, 96, 48);        /* shorter */
	check_swap(-1, NULL, 0, 96, 1000);      /* longer */
	check_swap(-1, NULL, 0, 4, 4);          /* request was padded */
	check_swap(-1, NULL, 0, 96, 33);        /* odd length */
	check_swap(0x0123, NULL, 0, 96, 96);    /* tag kept */
	check_swap(0x0123, nops, sizeof(nops), 96, 97);
}

/* A reply whose UDP sum is exactly 0 must carry 0xffff (RFC 768). */
static void
test_swap_udp_zero_sum(void **state)
{
	struct t_frame f;
	struct nic_rx rx;
	struct rte_mbuf *m;
	uint8_t *ip;
	uint32_t s;

	udp_frame(&f, -1, NULL, 0, 2);
	m = classify(&f, NIC_PROTO, &rx);
	/* Pick two payload bytes so the complemented sum is 0: the header
	 * and pseudo-header of the answer sum to s, the payload to 0xffff - s. */
	rx.payload[0] = 0;
	rx.payload[1] = 0;
	assert_int_equal(nic_swap_to_reply(&host, m, 2), 0);
	ip = data(m) + 14;
	t_set16(ip + 20 + 6, 0);
	s = t_fold(t_pseudo(ip, 17, 10) + t_sum(ip + 20, 10));
	t_set16(rx.payload, (uint16_t)(0xffff - s));
	assert_int_equal(nic_swap_to_reply(&host, m, 2), 0);
	assert_int_equal(t_get16(ip + 20 + 6), 0xffff);
	/* Swapped twice: it goes to us again, still a valid sum. */
	assert_true(t_udp_ok(ip));
	rte_pktmbuf_free(m);
}

static void
test_swap_offload(void **state)
{
	struct t_frame f;
	struct nic_rx rx;
	struct rte_mbuf *m;
	uint8_t *ip, *udp;

	host.flags |= NIC_F_TX_IP_CKSUM | NIC_F_TX_UDP_CKSUM;
	udp_frame(&f, 0x0007, NULL, 0, 64);
	m = classify(&f, NIC_PROTO, &rx);
	assert_int_equal(nic_swap_to_reply(&host, m, 64), 0);
	ip = data(m) + 18;
	udp = ip + 20;
	assert_int_equal(m->ol_flags & RTE_MBUF_F_TX_OFFLOAD_MASK,
			 RTE_MBUF_F_TX_IPV4 | RTE_MBUF_F_TX_IP_CKSUM |
			 RTE_MBUF_F_TX_UDP_CKSUM);
	assert_int_equal(m->l2_len, 18);
	assert_int_equal(m->l3_len, 20);
	assert_int_equal(t_get16(ip + 10), 0);  /* the port fills it */
	/* The UDP field holds the pseudo-header sum, not complemented. */
	assert_int_equal(t_get16(udp + 6), t_fold(t_pseudo(ip, 17, 72)));
	rte_pktmbuf_free(m);

	/* IP offload only: UDP in software. */
	setup(NULL);
	host.flags |= NIC_F_TX_IP_CKSUM;
	udp_frame(&f, -1, NULL, 0, 64);
	m = classify(&f, NIC_PROTO, &rx);
	assert_int_equal(nic_swap_to_reply(&host, m, 64), 0);
	ip = data(m) + 14;
	assert_int_equal(m->ol_flags & RTE_MBUF_F_TX_OFFLOAD_MASK,
			 RTE_MBUF_F_TX_IPV4 | RTE_MBUF_F_TX_IP_CKSUM);
	assert_int_equal(t_get16(ip + 10), 0);
	assert_true(t_udp_ok(ip));
	rte_pktmbuf_free(m);
}

static void
test_swap_no_room(void **state)
{
	struct t_frame f;
	struct nic_rx rx;
	struct rte_mbuf *m;
	uint16_t room;

	udp_frame(&f, -1, NULL, 0, 64);
	m = classify(&f, NIC_PROTO, &rx);
	room = (uint16_t)(m->buf_len - m->data_off);
	assert_int_equal(nic_swap_to_reply(&host, m, (uint16_t)(room - 42 + 1)),
			 -ENOSPC);
	assert_memory_equal(data(m), f.b, f.n);         /* unchanged */
	assert_int_equal(nic_swap_to_reply(&host, m, (uint16_t)(room - 42)), 0);
	assert_true(t_udp_ok(data(m) + 14));
	rte_pktmbuf_free(m);
}

/* ------------------------------------------------------------------------ */
/* Drops: one case per cause                                                  */

static void
mk_bad_ip_checksum(struct t_frame *f)
{
	udp_frame(f, -1, NULL, 0, 32);
	f->b[f->ip + 11] ^= 0x01;
}

static void
mk_fragment_mf(struct t_frame *f)
{
	udp_frame(f, -1, NULL, 0, 32);
	t_set16(f->b + f->ip + 6, 0x2000);      /* more fragments */
	t_ip_sum(f->b + f->ip);
}

static void
mk_fragment_last(struct t_frame *f)
{
	udp_frame(f, -1, NULL, 0, 32);
	t_set16(f->b + f->ip + 6, 0x00b9);      /* offset 1480, no MF */
	t_ip_sum(f->b + f->ip);
}

static void
mk_other_port(struct t_frame *f)
{
	udp_frame(f, -1, NULL, 0, 32);
	t_set16(f->b + f->l4 + 2, OUR_PORT + 1);
	t_udp_sum(f->b + f->ip);
}

static void
mk_other_ip(struct t_frame *f)
{
	udp_frame(f, -1, NULL, 0, 32);
	f->b[f->ip + 19] = 9;                   /* 10.0.0.9 */
	t_ip_sum(f->b + f->ip);
	t_udp_sum(f->b + f->ip);
}

static void
mk_ip_truncated(struct t_frame *f)
{
	udp_frame(f, -1, NULL, 0, 100);         /* 142 bytes, no padding */
	t_set16(f->b + f->ip + 2, 20 + 8 + 100 + 1);
	t_ip_sum(f->b + f->ip);
}

static void
mk_udp_too_long(struct t_frame *f)
{
	udp_frame(f, -1, NULL, 0, 32);
	t_set16(f->b + f->l4 + 4, 8 + 32 + 1);  /* beyond the IP payload */
}

static void
mk_udp_too_short(struct t_frame *f)
{
	udp_frame(f, -1, NULL, 0, 32);
	t_set16(f->b + f->l4 + 4, 7);
}

static void
mk_ip_payload_short(struct t_frame *f)
{
	udp_frame(f, -1, NULL, 0, 32);
	t_set16(f->b + f->ip + 2, 20 + 4);      /* no room for the UDP header */
	t_ip_sum(f->b + f->ip);
}

static void
mk_ipv6(struct t_frame *f)
{
	eth_hdr(f, our_mac, peer_mac, -1, 0x86dd);
	t_put32(f, 0x60000000);
	pad_to(f, 60);
}

static void
mk_tcp(struct t_frame *f)
{
	udp_frame(f, -1, NULL, 0, 32);
	f->b[f->ip + 9] = 6;
	t_ip_sum(f->b + f->ip);
}

static void
mk_short(struct t_frame *f)
{
	udp_frame(f, -1, NULL, 0, 32);
	f->n = 13;
}

static void
mk_short_ip(struct t_frame *f)
{
	udp_frame(f, -1, NULL, 0, 32);
	f->n = 14 + 19;
}

static void
mk_short_options(struct t_frame *f)
{
	static const uint8_t opts[40] = { 0 };

	udp_frame(f, -1, opts, sizeof(opts), 0);
	f->n = 14 + 20 + 20;                    /* IHL says 60 bytes */
}

static void
mk_short_vlan(struct t_frame *f)
{
	udp_frame(f, 5, NULL, 0, 32);
	f->n = 16;
}

static void
mk_qinq_88a8(struct t_frame *f)
{
	eth_hdr(f, our_mac, peer_mac, -1, 0x88a8);
	t_put16(f, 0x0064);
	t_put16(f, 0x8100);
	t_put16(f, 0x0005);
	t_put16(f, 0x0800);
	pad_to(f, 60);
}

static void
mk_qinq_8100(struct t_frame *f)
{
	eth_hdr(f, our_mac, peer_mac, 0x0064, 0x8100);
	t_put16(f, 0x0005);
	t_put16(f, 0x0800);
	pad_to(f, 60);
}

static void
mk_ip_version(struct t_frame *f)
{
	udp_frame(f, -1, NULL, 0, 32);
	f->b[f->ip] = 0x65;
	t_ip_sum(f->b + f->ip);
}

static void
mk_ip_ihl(struct t_frame *f)
{
	udp_frame(f, -1, NULL, 0, 32);
	f->b[f->ip] = 0x44;
}

static void
mk_ip_total_below_ihl(struct t_frame *f)
{
	udp_frame(f, -1, NULL, 0, 32);
	t_set16(f->b + f->ip + 2, 19);
	t_ip_sum(f->b + f->ip);
}

static void
mk_other_mac(struct t_frame *f)
{
	udp_frame(f, -1, NULL, 0, 32);
	f->b[5] = 0x99;
}

static void
mk_bcast_source_ip(struct t_frame *f)
{
	udp_frame(f, -1, NULL, 0, 32);
	memset(f->b + f->ip + 12, 0xff, 4);
	t_ip_sum(f->b + f->ip);
	t_udp_sum(f->b + f->ip);
}

static void
mk_multicast_source_mac(struct t_frame *f)
{
	udp_frame(f, -1, NULL, 0, 32);
	f->b[6] = 0x01;
}

static void
mk_source_port_zero(struct t_frame *f)
{
	udp_frame(f, -1, NULL, 0, 32);
	t_set16(f->b + f->l4, 0);
	t_udp_sum(f->b + f->ip);
}

static void
mk_arp_other_ip(struct t_frame *f)
{
	arp_frame(f, -1, 1, PEER_IP, OUR_IP + 8);
}

static void
mk_arp_reply(struct t_frame *f)
{
	arp_frame(f, -1, 2, PEER_IP, OUR_IP);
}

static void
mk_arp_gratuitous(struct t_frame *f)
{
	arp_frame(f, -1, 1, OUR_IP, OUR_IP);    /* someone claims our IP */
}

static void
mk_arp_short(struct t_frame *f)
{
	arp_frame(f, -1, 1, PEER_IP, OUR_IP);
	f->n = 14 + 27;
}

static void
mk_icmp_timestamp(struct t_frame *f)
{
	icmp_frame(f, 13, 12);
}

static void
mk_icmp_echo_reply(struct t_frame *f)
{
	icmp_frame(f, 0, 8);                    /* never answer an answer */
}

static void
mk_icmp_bad_sum(struct t_frame *f)
{
	icmp_frame(f, 8, 8);
	f->b[f->l4 + 9] ^= 0x40;
}

static void
mk_icmp_short(struct t_frame *f)
{
	icmp_frame(f, 8, 0);
	t_set16(f->b + f->ip + 2, 20 + 7);
	t_ip_sum(f->b + f->ip);
}

static const struct drop_case {
	const char *what;
	void (*mk)(struct t_frame *f);
	enum nic_cause cause;
} drop_cases[] = {
	{ "bad IP checksum", mk_bad_ip_checksum, NIC_CAUSE_BAD_IP_CHECKSUM },
	{ "fragment, MF", mk_fragment_mf, NIC_CAUSE_FRAGMENT },
	{ "fragment, last", mk_fragment_last, NIC_CAUSE_FRAGMENT },
	{ "other port", mk_other_port, NIC_CAUSE_OTHER_PORT },
	{ "other IP", mk_other_ip, NIC_CAUSE_NOT_OURS },
	{ "IP total length > frame", mk_ip_truncated, NIC_CAUSE_IP_TRUNCATED },
	{ "UDP length > IP payload", mk_udp_too_long, NIC_CAUSE_BAD_UDP_LENGTH },
	{ "UDP length < 8", mk_udp_too_short, NIC_CAUSE_BAD_UDP_LENGTH },
	{ "IP payload < UDP header", mk_ip_payload_short, NIC_CAUSE_BAD_UDP_LENGTH },
	{ "IPv6", mk_ipv6, NIC_CAUSE_NOT_IPV4 },
	{ "TCP", mk_tcp, NIC_CAUSE_NOT_UDP },
	{ "13-byte frame", mk_short, NIC_CAUSE_SHORT_FRAME },
	{ "IPv4 header cut", mk_short_ip, NIC_CAUSE_SHORT_FRAME },
	{ "IP options cut", mk_short_options, NIC_CAUSE_SHORT_FRAME },
	{ "VLAN header cut", mk_short_vlan, NIC_CAUSE_SHORT_FRAME },
	{ "QinQ 0x88a8", mk_qinq_88a8, NIC_CAUSE_VLAN_QINQ },
	{ "QinQ 0x8100 0x8100", mk_qinq_8100, NIC_CAUSE_VLAN_QINQ },
	{ "IP version 6", mk_ip_version, NIC_CAUSE_BAD_IP_HEADER },
	{ "IHL 4", mk_ip_ihl, NIC_CAUSE_BAD_IP_HEADER },
	{ "total length < IHL", mk_ip_total_below_ihl, NIC_CAUSE_BAD_IP_HEADER },
	{ "unicast to another MAC", mk_other_mac, NIC_CAUSE_OTHER_MAC },
	{ "broadcast source IP", mk_bcast_source_ip, NIC_CAUSE_BAD_SOURCE },
	{ "multicast source MAC", mk_multicast_source_mac, NIC_CAUSE_BAD_SOURCE },
	{ "UDP source port 0", mk_source_port_zero, NIC_CAUSE_BAD_SOURCE },
	{ "ARP for another IP", mk_arp_other_ip, NIC_CAUSE_ARP_OTHER },
	{ "ARP reply", mk_arp_reply, NIC_CAUSE_ARP_OTHER },
	{ "gratuitous ARP", mk_arp_gratuitous, NIC_CAUSE_ARP_OTHER },
	{ "ARP cut", mk_arp_short, NIC_CAUSE_SHORT_FRAME },
	{ "ICMP timestamp", mk_icmp_timestamp, NIC_CAUSE_ICMP_OTHER },
	{ "ICMP echo reply", mk_icmp_echo_reply, NIC_CAUSE_ICMP_OTHER },
	{ "ICMP bad checksum", mk_icmp_bad_sum, NIC_CAUSE_BAD_ICMP },
	{ "ICMP header cut", mk_icmp_short, NIC_CAUSE_BAD_ICMP },
};

static void
check_drop(const struct t_frame *f, uint64_t ol_flags, enum nic_cause cause,
	   const char *what)
{
	struct nic_rx rx;
	struct rte_mbuf *m;

	setup(NULL);
	m = t_mbuf_exact(pool, f);
	m->ol_flags |= ol_flags;
	if (nic_classify(&host, m, &rx, &cnt) != NIC_DROP || rx.cause != cause)
		fail_msg("%s: verdict %u cause %s, want drop %s", what, rx.verdict,
			 nic_cause_name(rx.cause), nic_cause_name(cause));
	assert_int_equal(cnt.drop[cause], 1);
	assert_int_equal(nic_counters_drops(&cnt), 1);
	assert_int_equal(cnt.rx, 1);
	assert_int_equal(cnt.proto + cnt.arp_answered + cnt.icmp_answered, 0);
	assert_int_equal(rte_pktmbuf_pkt_len(m), f->n);
	assert_memory_equal(data(m), f->b, f->n);       /* left as it came */
	rte_pktmbuf_free(m);
}

static void
test_drop_causes(void **state)
{
	bool seen[NIC_CAUSE_MAX] = { false };
	struct t_frame f;
	size_t i;

	for (i = 0; i < RTE_DIM(drop_cases); i++) {
		drop_cases[i].mk(&f);
		check_drop(&f, 0, drop_cases[i].cause, drop_cases[i].what);
		seen[drop_cases[i].cause] = true;
	}
	/* What only the NIC or the mbuf can say. */
	udp_frame(&f, -1, NULL, 0, 32);
	check_drop(&f, RTE_MBUF_F_RX_IP_CKSUM_BAD, NIC_CAUSE_BAD_IP_CHECKSUM,
		   "NIC: IP checksum bad");
	check_drop(&f, RTE_MBUF_F_RX_L4_CKSUM_BAD, NIC_CAUSE_BAD_UDP_CHECKSUM,
		   "NIC: UDP checksum bad");
	seen[NIC_CAUSE_BAD_UDP_CHECKSUM] = true;
	/* multi-segment and vlan-stripped have their own tests. */
	seen[NIC_CAUSE_MULTI_SEGMENT] = seen[NIC_CAUSE_VLAN_STRIPPED] = true;
	for (i = 0; i < NIC_CAUSE_MAX; i++)
		if (!seen[i])
			fail_msg("cause %s has no test", nic_cause_name(i));
}

static void
test_drop_multi_segment(void **state)
{
	struct t_frame f;
	struct nic_rx rx;
	struct rte_mbuf *m, *tail;

	udp_frame(&f, -1, NULL, 0, 32);
	m = t_mbuf(pool, &f);
	tail = rte_pktmbuf_alloc(pool);
	assert_non_null(rte_pktmbuf_append(tail, 10));
	assert_int_equal(rte_pktmbuf_chain(m, tail), 0);
	assert_int_equal(nic_classify(&host, m, &rx, &cnt), NIC_DROP);
	assert_int_equal(rx.cause, NIC_CAUSE_MULTI_SEGMENT);
	assert_int_equal(cnt.drop[NIC_CAUSE_MULTI_SEGMENT], 1);
	rte_pktmbuf_free(m);
}

/* The NIC's word on the IP checksum is taken when it checked. */
static void
test_rx_cksum_flags(void **state)
{
	struct t_frame f;
	struct nic_rx rx;
	struct rte_mbuf *m;

	mk_bad_ip_checksum(&f);
	m = t_mbuf(pool, &f);
	m->ol_flags = RTE_MBUF_F_RX_IP_CKSUM_GOOD | RTE_MBUF_F_RX_L4_CKSUM_GOOD;
	assert_int_equal(nic_classify(&host, m, &rx, &cnt), NIC_PROTO);
	rte_pktmbuf_free(m);
}

/* A tag the driver stripped is put back: the answer must carry it. */
static void
test_vlan_stripped(void **state)
{
	struct t_frame f;
	struct nic_rx rx;
	struct rte_mbuf *m;
	uint8_t *d;

	udp_frame(&f, -1, NULL, 0, 40);
	m = t_mbuf(pool, &f);
	m->ol_flags = RTE_MBUF_F_RX_VLAN | RTE_MBUF_F_RX_VLAN_STRIPPED;
	m->vlan_tci = 0x0abc;
	assert_int_equal(nic_classify(&host, m, &rx, &cnt), NIC_PROTO);
	assert_true(rx.flags & NIC_RX_VLAN);
	assert_int_equal(rx.vlan_tci, 0x0abc);
	assert_int_equal(rx.payload_off, 18 + 20 + 8);
	assert_int_equal(rx.payload_len, 40);
	assert_int_equal(nic_swap_to_reply(&host, m, 40), 0);
	d = data(m);
	assert_int_equal(t_get16(d + 12), 0x8100);
	assert_int_equal(t_get16(d + 14), 0x0abc);
	assert_true(t_udp_ok(d + 18));
	rte_pktmbuf_free(m);

	/* No headroom to put it back: dropped, not answered untagged. */
	setup(NULL);
	m = rte_pktmbuf_alloc(pool);
	rte_pktmbuf_prepend(m, m->data_off);
	rte_pktmbuf_trim(m, rte_pktmbuf_data_len(m));
	memcpy(rte_pktmbuf_append(m, (uint16_t)f.n), f.b, f.n);
	m->ol_flags = RTE_MBUF_F_RX_VLAN | RTE_MBUF_F_RX_VLAN_STRIPPED;
	assert_int_equal(nic_classify(&host, m, &rx, &cnt), NIC_DROP);
	assert_int_equal(rx.cause, NIC_CAUSE_VLAN_STRIPPED);
	rte_pktmbuf_free(m);
}

/* Without the MAC filter (promiscuous ports), other MACs get through. */
static void
test_no_mac_filter(void **state)
{
	struct t_frame f;
	struct nic_rx rx;
	struct rte_mbuf *m;

	host.flags &= (uint16_t)~NIC_F_MAC_FILTER;
	mk_other_mac(&f);
	m = classify(&f, NIC_PROTO, &rx);
	assert_int_equal(nic_swap_to_reply(&host, m, 8), 0);
	assert_memory_equal(data(m) + 6, our_mac, 6);   /* from our MAC */
	rte_pktmbuf_free(m);
}

/* ------------------------------------------------------------------------ */
/* Bursts                                                                     */

static void
test_burst_mixed(void **state)
{
	enum { N = 11 };
	struct rte_mbuf *pkts[N];
	struct nic_rx rx[N];
	struct t_frame f;
	static const uint8_t want[N] = {
		NIC_PROTO, NIC_ANSWER, NIC_DROP, NIC_PROTO, NIC_ANSWER,
		NIC_DROP, NIC_PROTO, NIC_DROP, NIC_PROTO, NIC_PROTO, NIC_DROP,
	};
	unsigned int i;

	udp_frame(&f, -1, NULL, 0, 10);
	pkts[0] = t_mbuf(pool, &f);
	arp_frame(&f, -1, 1, PEER_IP, OUR_IP);
	pkts[1] = t_mbuf(pool, &f);
	mk_tcp(&f);
	pkts[2] = t_mbuf(pool, &f);
	udp_frame(&f, 9, NULL, 0, 20);
	pkts[3] = t_mbuf(pool, &f);
	icmp_frame(&f, 8, 16);
	pkts[4] = t_mbuf(pool, &f);
	mk_other_port(&f);
	pkts[5] = t_mbuf(pool, &f);
	for (i = 6; i < N; i++) {
		if (i == 7 || i == 10)
			mk_fragment_mf(&f);
		else
			udp_frame(&f, -1, NULL, 0, 30 + i);
		pkts[i] = t_mbuf(pool, &f);
	}
	assert_int_equal(nic_classify_burst(&host, pkts, N, rx, &cnt), 5);
	for (i = 0; i < N; i++)
		assert_int_equal(rx[i].verdict, want[i]);
	assert_int_equal(rx[3].payload_len, 20);
	assert_int_equal(rx[3].vlan_tci, 9);
	assert_int_equal(rx[9].payload_len, 39);
	assert_int_equal(rx[2].cause, NIC_CAUSE_NOT_UDP);
	assert_int_equal(rx[5].cause, NIC_CAUSE_OTHER_PORT);
	assert_int_equal(cnt.rx, N);
	assert_int_equal(cnt.proto, 5);
	assert_int_equal(cnt.arp_answered, 1);
	assert_int_equal(cnt.icmp_answered, 1);
	assert_int_equal(cnt.drop[NIC_CAUSE_FRAGMENT], 2);
	assert_int_equal(nic_counters_drops(&cnt), 4);
	assert_int_equal(nic_classify_burst(&host, pkts, 0, rx, &cnt), 0);
	rte_pktmbuf_free_bulk(pkts, N);
}

/* ------------------------------------------------------------------------ */
/* Frame builder, names, counters                                             */

static void
test_frame_build(void **state)
{
	struct nic_frame fr = {
		.src_ip = PEER_IP, .dst_ip = OUR_IP,
		.src_port = PEER_PORT, .dst_port = OUR_PORT,
	};
	uint8_t payload[77];
	struct nic_rx rx;
	struct rte_mbuf *m;
	unsigned int i, vlan;

	memcpy(&fr.src_mac, peer_mac, 6);
	memcpy(&fr.dst_mac, our_mac, 6);
	for (i = 0; i < sizeof(payload); i++)
		payload[i] = (uint8_t)(i + 1);

	for (vlan = 0; vlan < 2; vlan++) {
		uint8_t *d, *ip;

		setup(NULL);
		fr.vlan = vlan;
		fr.vlan_tci = 0x0042;
		m = rte_pktmbuf_alloc(pool);
		assert_int_equal(nic_frame_build(m, &fr, payload, sizeof(payload), 0), 0);
		d = data(m);
		ip = d + (vlan ? 18 : 14);
		assert_int_equal(rte_pktmbuf_pkt_len(m),
				 (vlan ? 18 : 14) + 20 + 8 + sizeof(payload));
		assert_memory_equal(d, our_mac, 6);
		assert_memory_equal(d + 6, peer_mac, 6);
		if (vlan)
			assert_int_equal(t_get16(d + 14), 0x0042);
		assert_int_equal(ip[0], 0x45);
		assert_int_equal(ip[8], 64);
		assert_int_equal(t_get16(ip + 6), 0x4000);
		assert_true(t_ip_ok(ip));
		assert_true(t_udp_ok(ip));
		assert_int_equal(m->ol_flags & RTE_MBUF_F_TX_OFFLOAD_MASK, 0);
		/* And it is what the classifier expects. */
		assert_int_equal(nic_classify(&host, m, &rx, &cnt), NIC_PROTO);
		assert_int_equal(rx.payload_len, sizeof(payload));
		assert_memory_equal(rx.payload, payload, sizeof(payload));
		rte_pktmbuf_free(m);
	}

	/* Offloads: flags and pseudo-header sum for the port. */
	m = rte_pktmbuf_alloc(pool);
	assert_int_equal(nic_frame_build(m, &fr, payload, 10,
					 NIC_F_TX_IP_CKSUM | NIC_F_TX_UDP_CKSUM), 0);
	assert_int_equal(m->ol_flags & RTE_MBUF_F_TX_OFFLOAD_MASK,
			 RTE_MBUF_F_TX_IPV4 | RTE_MBUF_F_TX_IP_CKSUM |
			 RTE_MBUF_F_TX_UDP_CKSUM);
	assert_int_equal(m->l2_len, 18);
	assert_int_equal(m->l3_len, 20);
	assert_int_equal(t_get16(data(m) + 18 + 20 + 6),
			 t_fold(t_pseudo(data(m) + 18, 17, 18)));
	/* Not empty any more: refused. */
	assert_int_equal(nic_frame_build(m, &fr, payload, 10, 0), -EINVAL);
	rte_pktmbuf_reset(m);
	assert_int_equal(nic_frame_build(m, &fr, payload, 4000, 0), -ENOSPC);
	assert_int_equal(nic_frame_build(m, &fr, NULL, 10, 0), -EINVAL);
	rte_pktmbuf_free(m);
}

static void
test_cause_names(void **state)
{
	unsigned int i, j;

	for (i = 0; i < NIC_CAUSE_MAX; i++) {
		const char *n = nic_cause_name(i);

		assert_non_null(n);
		assert_true(strlen(n) > 0 && strcmp(n, "?") != 0);
		assert_true(strlen(nic_cause_desc(i)) > 0);
		for (j = 0; j < i; j++)
			assert_string_not_equal(n, nic_cause_name(j));
	}
	assert_string_equal(nic_cause_name(NIC_CAUSE_MAX), "?");
	assert_string_equal(nic_cause_name(NIC_CAUSE_BAD_IP_CHECKSUM),
			    "bad-ip-checksum");
}

static void
test_counters_add_dump(void **state)
{
	struct nic_counters sum = { 0 }, a = { 0 };
	char buf[1024] = "";
	FILE *f;

	a.rx = 3;
	a.proto = 1;
	a.drop[NIC_CAUSE_FRAGMENT] = 2;
	nic_counters_add(&sum, &a);
	nic_counters_add(&sum, &a);
	assert_int_equal(sum.rx, 6);
	assert_int_equal(sum.drop[NIC_CAUSE_FRAGMENT], 4);
	assert_int_equal(nic_counters_drops(&sum), 4);
	f = fmemopen(buf, sizeof(buf), "w");
	nic_counters_dump(f, &sum);
	fclose(f);
	assert_non_null(strstr(buf, "fragment"));
	assert_null(strstr(buf, "not-udp"));
	assert_true(sizeof(struct nic_counters) % RTE_CACHE_LINE_SIZE == 0);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
#define T(fn) cmocka_unit_test_setup_teardown(fn, setup, teardown)
		T(test_arp_request_answered),
		T(test_arp_request_vlan_answered),
		T(test_icmp_echo_answered),
		T(test_udp_proto),
		T(test_udp_proto_vlan),
		T(test_udp_proto_ip_options),
		T(test_swap_reply),
		T(test_swap_udp_zero_sum),
		T(test_swap_offload),
		T(test_swap_no_room),
		T(test_drop_causes),
		T(test_drop_multi_segment),
		T(test_rx_cksum_flags),
		T(test_vlan_stripped),
		T(test_no_mac_filter),
		T(test_burst_mixed),
		T(test_frame_build),
		T(test_cause_names),
		T(test_counters_add_dump),
#undef T
	};

	return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
