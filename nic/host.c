/*
 * host.c - the host duties of the engine's address: ARP requests for our IP
 * and ICMP echo requests to it are answered in place, on the lcore that
 * received them, through the same TX queue as the protocol answers.
 *
 * Owns: nothing but code; called by the classifier (hdr.c) with the frame's
 * Ethernet (and VLAN) header already checked, and for ICMP the IPv4 header
 * checked (version, IHL, checksum, lengths, not a fragment, to our IP, from
 * a source we may answer).
 *
 * Invariants:
 * - A frame is rewritten only once every check has passed: a drop leaves it
 *   as it came.
 * - Answers keep the VLAN tag, the frame length (ARP padding included) and,
 *   for ICMP, the identifier, sequence number, data and IP options.
 * - Only requests are answered: never an ARP reply, a gratuitous ARP, or an
 *   ICMP message other than echo request, so two engines cannot ping-pong.
 *
 * These are rare frames: they are checked and answered in full software
 * (checksums recomputed, not updated incrementally) for clarity, without
 * locks, allocation, syscalls or logs like the rest of the data path.
 */
#include "nic_pvt.h"

unsigned int
nic_arp_answer(const struct nic_host *host, uint8_t *frame, uint32_t l2_len,
	       uint32_t frame_len)
{
	struct rte_ether_hdr *eth = (struct rte_ether_hdr *)frame;
	struct rte_arp_hdr *arp = (struct rte_arp_hdr *)(frame + l2_len);
	struct rte_arp_ipv4 *a = &arp->arp_data;

	if (frame_len < l2_len + sizeof(*arp))
		return NIC_CAUSE_SHORT_FRAME;
	if (arp->arp_hardware != RTE_BE16(RTE_ARP_HRD_ETHER) ||
	    arp->arp_protocol != RTE_BE16(RTE_ETHER_TYPE_IPV4) ||
	    arp->arp_hlen != RTE_ETHER_ADDR_LEN || arp->arp_plen != 4 ||
	    arp->arp_opcode != RTE_BE16(RTE_ARP_OP_REQUEST))
		return NIC_CAUSE_ARP_OTHER;
	/* Not for us, or someone announcing our own address. */
	if (a->arp_tip != host->ip_be || a->arp_sip == host->ip_be)
		return NIC_CAUSE_ARP_OTHER;
	if (rte_is_multicast_ether_addr(&eth->src_addr) ||
	    rte_is_multicast_ether_addr(&a->arp_sha))
		return NIC_CAUSE_BAD_SOURCE;

	arp->arp_opcode = RTE_BE16(RTE_ARP_OP_REPLY);
	rte_ether_addr_copy(&a->arp_sha, &a->arp_tha);
	a->arp_tip = a->arp_sip;
	rte_ether_addr_copy(&host->mac, &a->arp_sha);
	a->arp_sip = host->ip_be;
	nic_eth_reply(host, eth);
	return NIC_OUT_ARP;
}

unsigned int
nic_icmp_answer(const struct nic_host *host, struct rte_mbuf *m,
		uint8_t *frame, uint32_t l2_len, uint32_t l3_len)
{
	struct rte_ipv4_hdr *ip = (struct rte_ipv4_hdr *)(frame + l2_len);
	struct rte_icmp_hdr *icmp = (struct rte_icmp_hdr *)(frame + l2_len + l3_len);
	uint32_t icmp_len = rte_be_to_cpu_16(ip->total_length) - l3_len;

	if (icmp_len < sizeof(*icmp))
		return NIC_CAUSE_BAD_ICMP;
	if (icmp->icmp_type != RTE_IP_ICMP_ECHO_REQUEST || icmp->icmp_code != 0)
		return NIC_CAUSE_ICMP_OTHER;
	/* A correct message, checksum included, sums to 0xffff. */
	if (rte_raw_cksum(icmp, icmp_len) != 0xffff)
		return NIC_CAUSE_BAD_ICMP;

	icmp->icmp_type = RTE_IP_ICMP_ECHO_REPLY;
	icmp->icmp_cksum = 0;
	icmp->icmp_cksum = (uint16_t)~rte_raw_cksum(icmp, icmp_len);
	nic_eth_reply(host, (struct rte_ether_hdr *)frame);
	nic_ip_reply(ip);
	ip->hdr_checksum = 0;
	ip->hdr_checksum = rte_ipv4_cksum(ip);
	nic_tx_flags_set(m, 0);
	return NIC_OUT_ICMP;
}
