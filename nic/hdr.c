/*
 * hdr.c - the data path of nic/: classification of received frames, the
 * in-place answer to a protocol datagram, checksums, and the frame builder.
 *
 * Owns: nothing but code. Every function here works on the mbuf it is given
 * and the per-lcore counters it is given; struct nic_host is read-only once
 * the dataplane runs.
 *
 * Invariants:
 * - A dropped frame is left byte for byte as it came (the caller may log or
 *   mirror it); only answers are rewritten.
 * - Before a length is used to index the frame it has been checked against
 *   the bytes in the first segment: the Ethernet and VLAN headers against the
 *   frame, the IHL against the frame, the IP total length against the frame
 *   (trailing padding allowed), the UDP length against the IP payload.
 * - NIC_PROTO leaves m->l2_len/l3_len/l4_len describing the headers, so the
 *   answer is written without parsing the frame again.
 *
 * Concurrency: none needed. One lcore owns a burst and its counters; the
 * counters are plain increments (one writer).
 *
 * The parse is written as one function per layer returning an unsigned
 * outcome (a drop cause or an enum nic_outcome) so that the burst loop keeps
 * the counting in one place.
 */
#include <errno.h>
#include <string.h>

#include <rte_prefetch.h>

#include "nic_pvt.h"

/* How far ahead the burst loop prefetches frame data (l3fwd uses 3..8). */
#define NIC_PREFETCH_AHEAD 4

static const char *const nic_cause_names[NIC_CAUSE_MAX] = {
#define NIC_CAUSE_NAME_(sym, name, desc) [NIC_CAUSE_##sym] = name,
	NIC_FOREACH_CAUSE(NIC_CAUSE_NAME_)
#undef NIC_CAUSE_NAME_
};

static const char *const nic_cause_descs[NIC_CAUSE_MAX] = {
#define NIC_CAUSE_DESC_(sym, name, desc) [NIC_CAUSE_##sym] = desc,
	NIC_FOREACH_CAUSE(NIC_CAUSE_DESC_)
#undef NIC_CAUSE_DESC_
};

/* The outcomes must fit struct nic_rx's uint8_t cause. */
_Static_assert(NIC_OUT_ICMP <= UINT8_MAX, "causes do not fit in uint8_t");
_Static_assert(sizeof(struct nic_counters) % RTE_CACHE_LINE_SIZE == 0,
	       "per-lcore counters must not share a cache line");

const char *
nic_cause_name(enum nic_cause cause)
{
	return (unsigned int)cause < NIC_CAUSE_MAX ? nic_cause_names[cause] : "?";
}

const char *
nic_cause_desc(enum nic_cause cause)
{
	return (unsigned int)cause < NIC_CAUSE_MAX ? nic_cause_descs[cause] : "?";
}

uint64_t
nic_counters_drops(const struct nic_counters *c)
{
	uint64_t sum = 0;
	unsigned int i;

	for (i = 0; i < NIC_CAUSE_MAX; i++)
		sum += c->drop[i];
	return sum;
}

void
nic_counters_add(struct nic_counters *sum, const struct nic_counters *c)
{
	unsigned int i;

#define NIC_COUNTER_ADD_(name, desc) sum->name += c->name;
	NIC_FOREACH_COUNTER(NIC_COUNTER_ADD_)
#undef NIC_COUNTER_ADD_
	for (i = 0; i < NIC_CAUSE_MAX; i++)
		sum->drop[i] += c->drop[i];
}

void
nic_counters_dump(FILE *f, const struct nic_counters *c)
{
	unsigned int i;

#define NIC_COUNTER_DUMP_(name, desc) \
	fprintf(f, "%-18s %" PRIu64 "\n", #name, c->name);
	NIC_FOREACH_COUNTER(NIC_COUNTER_DUMP_)
#undef NIC_COUNTER_DUMP_
	for (i = 0; i < NIC_CAUSE_MAX; i++) {
		if (c->drop[i] != 0)
			fprintf(f, "drop %-13s %" PRIu64 "\n", nic_cause_names[i],
				c->drop[i]);
	}
}

void
nic_host_init(struct nic_host *host, const struct rte_ether_addr *mac,
	      uint32_t ip, uint16_t udp_port, uint16_t flags)
{
	memset(host, 0, sizeof(*host));
	rte_ether_addr_copy(mac, &host->mac);
	host->ip_be = rte_cpu_to_be_32(ip);
	host->udp_port_be = rte_cpu_to_be_16(udp_port);
	host->flags = flags;
}

void
nic_host_from_port(struct nic_host *host, const struct nic_port *port,
		   uint32_t ip, uint16_t udp_port)
{
	uint16_t flags = port->tx_cksum;

	if (port->mac_filter)
		flags |= NIC_F_MAC_FILTER;
	nic_host_init(host, &port->mac, ip, udp_port, flags);
}

/* ------------------------------------------------------------------------ */
/* Classification                                                             */

/* Is the IPv4 header checksum right? Trust the NIC when it checked. */
static inline bool
nic_ip_cksum_ok(const struct rte_mbuf *m, const struct rte_ipv4_hdr *ip)
{
	uint64_t f = m->ol_flags & RTE_MBUF_F_RX_IP_CKSUM_MASK;

	if (f == RTE_MBUF_F_RX_IP_CKSUM_GOOD || f == RTE_MBUF_F_RX_IP_CKSUM_NONE)
		return true;
	if (f == RTE_MBUF_F_RX_IP_CKSUM_BAD)
		return false;
	/* Summing a correct header, checksum included, gives 0xffff. */
	return rte_ipv4_cksum(ip) == 0;
}

/* Someone we can answer: not a multicast MAC, not a special IP, a port. */
static inline bool
nic_source_ok(const struct nic_host *host, const struct rte_ether_hdr *eth,
	      const struct rte_ipv4_hdr *ip)
{
	uint32_t src = rte_be_to_cpu_32(ip->src_addr);

	if (rte_is_multicast_ether_addr(&eth->src_addr))
		return false;
	if (src == 0 || src == UINT32_MAX || ip->src_addr == host->ip_be)
		return false;
	if ((src >> 28) == 0xe || (src >> 24) == 127) /* multicast, loopback */
		return false;
	return true;
}

static inline unsigned int
nic_classify_udp(const struct nic_host *host, struct rte_mbuf *m,
		 uint8_t *frame, uint32_t l2_len, uint32_t l3_len,
		 uint32_t ip_total, struct nic_rx *rx)
{
	struct rte_udp_hdr *udp = (struct rte_udp_hdr *)(frame + l2_len + l3_len);
	uint32_t ip_payload = ip_total - l3_len;
	uint32_t udp_len;

	if (ip_payload < NIC_UDP_LEN)
		return NIC_CAUSE_BAD_UDP_LENGTH;
	if (udp->dst_port != host->udp_port_be)
		return NIC_CAUSE_OTHER_PORT;
	if (udp->src_port == 0)
		return NIC_CAUSE_BAD_SOURCE;
	udp_len = rte_be_to_cpu_16(udp->dgram_len);
	if (udp_len < NIC_UDP_LEN || udp_len > ip_payload)
		return NIC_CAUSE_BAD_UDP_LENGTH;
	if ((m->ol_flags & RTE_MBUF_F_RX_L4_CKSUM_MASK) == RTE_MBUF_F_RX_L4_CKSUM_BAD)
		return NIC_CAUSE_BAD_UDP_CHECKSUM;

	m->l2_len = l2_len;
	m->l3_len = l3_len;
	m->l4_len = NIC_UDP_LEN;
	rx->payload_off = (uint16_t)(l2_len + l3_len + NIC_UDP_LEN);
	rx->payload = frame + rx->payload_off;
	rx->payload_len = (uint16_t)(udp_len - NIC_UDP_LEN);
	return NIC_OUT_PROTO;
}

static inline unsigned int
nic_classify_ipv4(const struct nic_host *host, struct rte_mbuf *m,
		  uint8_t *frame, uint32_t frame_len, uint32_t l2_len,
		  struct nic_rx *rx)
{
	struct rte_ipv4_hdr *ip = (struct rte_ipv4_hdr *)(frame + l2_len);
	uint32_t l3_len, total;

	if (frame_len < l2_len + sizeof(*ip))
		return NIC_CAUSE_SHORT_FRAME;
	if ((ip->version_ihl >> 4) != IPVERSION ||
	    (ip->version_ihl & RTE_IPV4_HDR_IHL_MASK) < RTE_IPV4_MIN_IHL)
		return NIC_CAUSE_BAD_IP_HEADER;
	l3_len = rte_ipv4_hdr_len(ip);
	if (frame_len < l2_len + l3_len)
		return NIC_CAUSE_SHORT_FRAME;
	if (!nic_ip_cksum_ok(m, ip))
		return NIC_CAUSE_BAD_IP_CHECKSUM;
	total = rte_be_to_cpu_16(ip->total_length);
	if (total < l3_len)
		return NIC_CAUSE_BAD_IP_HEADER;
	if (l2_len + total > frame_len) /* shorter is padding: ignored */
		return NIC_CAUSE_IP_TRUNCATED;
	if (ip->fragment_offset &
	    rte_cpu_to_be_16(RTE_IPV4_HDR_MF_FLAG | RTE_IPV4_HDR_OFFSET_MASK))
		return NIC_CAUSE_FRAGMENT;
	if (ip->dst_addr != host->ip_be)
		return NIC_CAUSE_NOT_OURS;
	if (!nic_source_ok(host, (struct rte_ether_hdr *)frame, ip))
		return NIC_CAUSE_BAD_SOURCE;

	if (likely(ip->next_proto_id == IPPROTO_UDP))
		return nic_classify_udp(host, m, frame, l2_len, l3_len, total, rx);
	if (ip->next_proto_id == IPPROTO_ICMP)
		return nic_icmp_answer(host, m, frame, l2_len, l3_len);
	return NIC_CAUSE_NOT_UDP;
}

static inline unsigned int
nic_classify_frame(const struct nic_host *host, struct rte_mbuf *m,
		   struct nic_rx *rx)
{
	struct rte_ether_hdr *eth;
	uint8_t *frame;
	uint32_t len, l2_len = NIC_L2_LEN;
	rte_be16_t type;

	if (m->nb_segs != 1)
		return NIC_CAUSE_MULTI_SEGMENT;
	/* The answer must carry the tag; we never enable stripping, some
	 * drivers (af_packet's kernel side) strip anyway. */
	if (unlikely(m->ol_flags & RTE_MBUF_F_RX_VLAN_STRIPPED) &&
	    rte_vlan_insert(&m) != 0)
		return NIC_CAUSE_VLAN_STRIPPED;

	frame = rte_pktmbuf_mtod(m, uint8_t *);
	len = rte_pktmbuf_data_len(m);
	if (len < NIC_L2_LEN)
		return NIC_CAUSE_SHORT_FRAME;
	eth = (struct rte_ether_hdr *)frame;
	if ((host->flags & NIC_F_MAC_FILTER) &&
	    rte_is_unicast_ether_addr(&eth->dst_addr) &&
	    !rte_is_same_ether_addr(&eth->dst_addr, &host->mac))
		return NIC_CAUSE_OTHER_MAC;

	type = eth->ether_type;
	if (type == RTE_BE16(RTE_ETHER_TYPE_VLAN)) {
		struct rte_vlan_hdr *vh = (struct rte_vlan_hdr *)(eth + 1);

		if (len < NIC_L2_VLAN_LEN)
			return NIC_CAUSE_SHORT_FRAME;
		rx->flags |= NIC_RX_VLAN;
		rx->vlan_tci = rte_be_to_cpu_16(vh->vlan_tci);
		type = vh->eth_proto;
		l2_len = NIC_L2_VLAN_LEN;
	}
	if (type == RTE_BE16(RTE_ETHER_TYPE_VLAN) ||
	    type == RTE_BE16(RTE_ETHER_TYPE_QINQ))
		return NIC_CAUSE_VLAN_QINQ;

	if (likely(type == RTE_BE16(RTE_ETHER_TYPE_IPV4)))
		return nic_classify_ipv4(host, m, frame, len, l2_len, rx);
	if (type == RTE_BE16(RTE_ETHER_TYPE_ARP))
		return nic_arp_answer(host, frame, l2_len, len);
	return NIC_CAUSE_NOT_IPV4;
}

/* Count the outcome and turn it into the verdict the caller sees. */
static inline enum nic_verdict
nic_count(unsigned int out, struct nic_rx *rx, struct nic_counters *cnt)
{
	switch (out) {
	case NIC_OUT_PROTO:
		cnt->proto++;
		rx->verdict = NIC_PROTO;
		break;
	case NIC_OUT_ARP:
		cnt->arp_answered++;
		rx->verdict = NIC_ANSWER;
		break;
	case NIC_OUT_ICMP:
		cnt->icmp_answered++;
		rx->verdict = NIC_ANSWER;
		break;
	default:
		NIC_DEBUG_ASSERT(out < NIC_CAUSE_MAX);
		cnt->drop[out]++;
		rx->verdict = NIC_DROP;
		rx->cause = (uint8_t)out;
		break;
	}
	return (enum nic_verdict)rx->verdict;
}

static inline void
nic_rx_clear(struct nic_rx *rx)
{
	rx->payload = NULL;
	rx->payload_off = 0;
	rx->payload_len = 0;
	rx->vlan_tci = 0;
	rx->flags = 0;
	rx->verdict = NIC_DROP;
	rx->cause = 0;
}

enum nic_verdict
nic_classify(const struct nic_host *host, struct rte_mbuf *m,
	     struct nic_rx *rx, struct nic_counters *cnt)
{
	nic_rx_clear(rx);
	cnt->rx++;
	return nic_count(nic_classify_frame(host, m, rx), rx, cnt);
}

uint16_t
nic_classify_burst(const struct nic_host *host, struct rte_mbuf **pkts,
		   uint16_t n, struct nic_rx *rx, struct nic_counters *cnt)
{
	uint16_t i, proto = 0;

	for (i = 0; i < n && i < NIC_PREFETCH_AHEAD; i++)
		rte_prefetch0(rte_pktmbuf_mtod(pkts[i], void *));

	for (i = 0; i < n; i++) {
		if (i + NIC_PREFETCH_AHEAD < n)
			rte_prefetch0(rte_pktmbuf_mtod(pkts[i + NIC_PREFETCH_AHEAD],
						       void *));
		nic_rx_clear(&rx[i]);
		if (nic_count(nic_classify_frame(host, pkts[i], &rx[i]),
			      &rx[i], cnt) == NIC_PROTO)
			proto++;
	}
	cnt->rx += n;
	return proto;
}

/* ------------------------------------------------------------------------ */
/* Answers and frames                                                         */

/*
 * Fill in the IPv4 and UDP checksums of a frame whose lengths are final, or
 * prepare the mbuf for the port to do it (m->l2_len/l3_len must be set).
 * The UDP sum never covers the IP header sum, so the two are independent.
 */
static inline void
nic_l34_cksum(struct rte_mbuf *m, struct rte_ipv4_hdr *ip,
	      struct rte_udp_hdr *udp, uint16_t tx_cksum)
{
	uint64_t ol = 0;

	if (tx_cksum & (NIC_F_TX_IP_CKSUM | NIC_F_TX_UDP_CKSUM))
		ol |= RTE_MBUF_F_TX_IPV4;
	if (tx_cksum & NIC_F_TX_IP_CKSUM)
		ol |= RTE_MBUF_F_TX_IP_CKSUM;
	if (tx_cksum & NIC_F_TX_UDP_CKSUM)
		ol |= RTE_MBUF_F_TX_UDP_CKSUM;

	ip->hdr_checksum = 0;
	udp->dgram_cksum = 0;
	if (tx_cksum & NIC_F_TX_UDP_CKSUM)
		udp->dgram_cksum = rte_ipv4_phdr_cksum(ip, ol);
	else
		udp->dgram_cksum = rte_ipv4_udptcp_cksum(ip, udp);
	if (!(tx_cksum & NIC_F_TX_IP_CKSUM))
		ip->hdr_checksum = rte_ipv4_cksum(ip);
	nic_tx_flags_set(m, ol);
}

int
nic_swap_to_reply(const struct nic_host *host, struct rte_mbuf *m,
		  uint16_t payload_len)
{
	uint8_t *frame = rte_pktmbuf_mtod(m, uint8_t *);
	uint32_t l2_len = m->l2_len, l3_len = m->l3_len;
	uint32_t l4_total = NIC_UDP_LEN + payload_len;
	uint32_t frame_len = l2_len + l3_len + l4_total;
	struct rte_ipv4_hdr *ip;
	struct rte_udp_hdr *udp;
	rte_be16_t port;

	NIC_DEBUG_ASSERT(m->nb_segs == 1);
	NIC_DEBUG_ASSERT(l2_len == NIC_L2_LEN || l2_len == NIC_L2_VLAN_LEN);
	NIC_DEBUG_ASSERT(l3_len >= sizeof(*ip) && m->l4_len == NIC_UDP_LEN);
	if (frame_len > (uint32_t)m->buf_len - m->data_off ||
	    l3_len + l4_total > UINT16_MAX)
		return -ENOSPC;

	ip = (struct rte_ipv4_hdr *)(frame + l2_len);
	udp = (struct rte_udp_hdr *)(frame + l2_len + l3_len);
	nic_eth_reply(host, (struct rte_ether_hdr *)frame);
	nic_ip_reply(ip);
	ip->total_length = rte_cpu_to_be_16((uint16_t)(l3_len + l4_total));
	port = udp->src_port;
	udp->src_port = udp->dst_port;
	udp->dst_port = port;
	udp->dgram_len = rte_cpu_to_be_16((uint16_t)l4_total);
	/* Exact length: any Ethernet padding of the request goes away. */
	m->data_len = (uint16_t)frame_len;
	m->pkt_len = frame_len;
	nic_l34_cksum(m, ip, udp, host->flags);
	return 0;
}

int
nic_frame_build(struct rte_mbuf *m, const struct nic_frame *f,
		const void *payload, uint16_t len, uint16_t tx_cksum)
{
	uint32_t l2_len = f->vlan ? NIC_L2_VLAN_LEN : NIC_L2_LEN;
	uint32_t l3_len = sizeof(struct rte_ipv4_hdr);
	uint32_t frame_len = l2_len + l3_len + NIC_UDP_LEN + len;
	struct rte_ether_hdr *eth;
	struct rte_ipv4_hdr *ip;
	struct rte_udp_hdr *udp;

	if (m->next != NULL || m->nb_segs != 1 || m->pkt_len != 0 ||
	    (len != 0 && payload == NULL))
		return -EINVAL;
	if (frame_len > rte_pktmbuf_tailroom(m) ||
	    l3_len + NIC_UDP_LEN + len > UINT16_MAX)
		return -ENOSPC;

	eth = (struct rte_ether_hdr *)rte_pktmbuf_append(m, (uint16_t)frame_len);
	rte_ether_addr_copy(&f->dst_mac, &eth->dst_addr);
	rte_ether_addr_copy(&f->src_mac, &eth->src_addr);
	if (f->vlan) {
		struct rte_vlan_hdr *vh = (struct rte_vlan_hdr *)(eth + 1);

		eth->ether_type = RTE_BE16(RTE_ETHER_TYPE_VLAN);
		vh->vlan_tci = rte_cpu_to_be_16(f->vlan_tci);
		vh->eth_proto = RTE_BE16(RTE_ETHER_TYPE_IPV4);
	} else {
		eth->ether_type = RTE_BE16(RTE_ETHER_TYPE_IPV4);
	}

	ip = (struct rte_ipv4_hdr *)((uint8_t *)eth + l2_len);
	ip->version_ihl = RTE_IPV4_VHL_DEF;
	ip->type_of_service = 0;
	ip->total_length = rte_cpu_to_be_16((uint16_t)(l3_len + NIC_UDP_LEN + len));
	ip->packet_id = 0;
	ip->fragment_offset = RTE_BE16(RTE_IPV4_HDR_DF_FLAG);
	ip->time_to_live = f->ttl != 0 ? f->ttl : NIC_TTL;
	ip->next_proto_id = IPPROTO_UDP;
	ip->src_addr = rte_cpu_to_be_32(f->src_ip);
	ip->dst_addr = rte_cpu_to_be_32(f->dst_ip);

	udp = (struct rte_udp_hdr *)(ip + 1);
	udp->src_port = rte_cpu_to_be_16(f->src_port);
	udp->dst_port = rte_cpu_to_be_16(f->dst_port);
	udp->dgram_len = rte_cpu_to_be_16((uint16_t)(NIC_UDP_LEN + len));
	if (len != 0)
		memcpy(udp + 1, payload, len);

	m->l2_len = l2_len;
	m->l3_len = l3_len;
	m->l4_len = NIC_UDP_LEN;
	nic_l34_cksum(m, ip, udp, tx_cksum);
	return 0;
}
