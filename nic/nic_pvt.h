/*
 * nic_pvt.h - shared by the .c files of nic/ only: logging, internal outcomes of the
 * classifier, and the small header rewrites the ARP, ICMP and UDP answers
 * have in common.
 */
#ifndef NIC_PVT_H
#define NIC_PVT_H

#include <assert.h>

#include <rte_arp.h>
#include <rte_icmp.h>
#include <rte_ip.h>
#include <rte_log.h>
#include <rte_udp.h>

#include "nic.h"

/* Control plane only: the data path counts instead of logging. */
extern int nic_logtype;
#define NIC_LOG(level, fmt, ...) \
	rte_log(RTE_LOG_##level, nic_logtype, "nic: " fmt "\n", ##__VA_ARGS__)

/* Checked in debug builds only (data path). */
#define NIC_DEBUG_ASSERT(cond) assert(cond)

/*
 * What the per-frame classifier returns: an enum nic_cause for a drop, or one
 * of these, numbered after the causes so a single unsigned carries both.
 */
enum nic_outcome {
	NIC_OUT_PROTO = NIC_CAUSE_MAX,
	NIC_OUT_ARP,
	NIC_OUT_ICMP,
};

/* Header lengths the classifier works with. */
#define NIC_L2_LEN (sizeof(struct rte_ether_hdr))
#define NIC_L2_VLAN_LEN (sizeof(struct rte_ether_hdr) + sizeof(struct rte_vlan_hdr))
#define NIC_UDP_LEN (sizeof(struct rte_udp_hdr))

/* host.c: answer in place; return an enum nic_cause or NIC_OUT_ARP/ICMP. */
unsigned int nic_arp_answer(const struct nic_host *host, uint8_t *frame,
			    uint32_t l2_len, uint32_t frame_len);
unsigned int nic_icmp_answer(const struct nic_host *host, struct rte_mbuf *m,
			     uint8_t *frame, uint32_t l2_len, uint32_t l3_len);

/* Ethernet part of every answer: from our MAC to whoever sent the frame. */
static inline void
nic_eth_reply(const struct nic_host *host, struct rte_ether_hdr *eth)
{
	rte_ether_addr_copy(&eth->src_addr, &eth->dst_addr);
	rte_ether_addr_copy(&host->mac, &eth->src_addr);
}

/* IPv4 part of every answer, before its checksum: swap, fresh TTL. */
static inline void
nic_ip_reply(struct rte_ipv4_hdr *ip)
{
	rte_be32_t a = ip->src_addr;

	ip->src_addr = ip->dst_addr;
	ip->dst_addr = a;
	ip->time_to_live = NIC_TTL;
}

/*
 * Set the TX offload flags of an mbuf about to be sent, dropping whatever
 * the RX side left there but keeping the flags that describe the buffer
 * itself (attached or external data).
 */
static inline void
nic_tx_flags_set(struct rte_mbuf *m, uint64_t tx_flags)
{
	m->ol_flags = (m->ol_flags & (RTE_MBUF_F_INDIRECT | RTE_MBUF_F_EXTERNAL)) |
		      tx_flags;
}

#endif /* NIC_PVT_H */
