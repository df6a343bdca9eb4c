/*
 * nic.h - port bring-up and host duties of the authorization engine.
 *
 * Three parts, one header:
 * - Control plane (port.c): bring a DPDK port up with one RX/TX queue pair
 *   per dataplane lcore, an mbuf pool per NUMA socket, RSS over IPv4/UDP when
 *   the device has it and checksum offloads when the device has them. Works
 *   for PCI ports and for the vdevs we run on without hardware (net_memif,
 *   net_af_packet, net_pcap, net_tap, net_ring, net_null).
 * - Data path (hdr.c, host.c): classify a received burst into protocol
 *   datagrams for us (NIC_PROTO), ARP and ICMP echo requests answered in place
 *   (NIC_ANSWER) and drops counted by cause (NIC_DROP); turn a protocol
 *   datagram into its answer in place (nic_swap_to_reply()).
 * - A frame builder for the load generator and the tests.
 *
 * Data-path functions take no lock, allocate nothing, make no system call and
 * log nothing; their counters are per lcore (one writer, no atomics).
 *
 * Byte order: fields ending in _be are network order; function parameters
 * for addresses and ports are host order (RTE_IPV4(10, 0, 0, 1), 7711).
 */
#ifndef NIC_H
#define NIC_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include <rte_byteorder.h>
#include <rte_common.h>
#include <rte_ethdev.h>
#include <rte_ether.h>
#include <rte_mbuf.h>
#include <rte_mempool.h>

/* ------------------------------------------------------------------------ */
/* Bounds and defaults                                                        */

#define NIC_QUEUES_MAX 64          /* queue pairs per port (dataplane lcores) */
#define NIC_RING_SIZE_DEFAULT 1024 /* RX and TX descriptors per queue */
#define NIC_BURST_MAX 64           /* longest burst the pool sizing allows for */
#define NIC_UDP_PORT_DEFAULT 7711  /* shared/docs/protocol.md */
#define NIC_TTL 64                 /* TTL of every answer we send */

/* ------------------------------------------------------------------------ */
/* Port bring-up (control plane)                                              */

/** What nic_port_init() brings up. Zero means "default" where noted. */
struct nic_port_conf {
	uint16_t port_id;       /* see nic_port_by_name() */
	uint16_t queues;        /* RX/TX queue pairs, one per dataplane lcore */
	uint16_t rx_ring_size;  /* descriptors per RX queue; 0 = default */
	uint16_t tx_ring_size;  /* descriptors per TX queue; 0 = default */
	uint32_t pool_mbufs;    /* mbufs per NUMA socket's pool; 0 = sized
				 * from the rings, queues and bursts */
	uint16_t mtu;           /* 0 = keep the device's MTU */
	bool promiscuous;
	/*
	 * lcores[q] polls queue pair q: its mbuf pool is put on that lcore's
	 * NUMA socket. NULL = every queue on the port's socket.
	 */
	const unsigned int *lcores;
};

/** A port brought up by nic_port_init(); read-only for everyone else. */
struct nic_port {
	uint16_t port_id;
	uint16_t queues;
	uint16_t rx_ring_size;
	uint16_t tx_ring_size;
	uint16_t mtu;
	bool configured;        /* queues and pools exist: close to release */
	bool started;
	bool rss;               /* RSS spreads flows over the queues */
	bool promiscuous;       /* the device takes frames for any MAC */
	bool mac_filter;        /* conf said not promiscuous: filter in software */
	uint16_t tx_cksum;      /* NIC_F_TX_IP_CKSUM | NIC_F_TX_UDP_CKSUM */
	uint64_t rss_hf;        /* RTE_ETH_RSS_* in use */
	uint64_t rx_offloads;   /* RTE_ETH_RX_OFFLOAD_* in use */
	uint64_t tx_offloads;   /* RTE_ETH_TX_OFFLOAD_* in use */
	struct rte_ether_addr mac;
	char name[RTE_ETH_NAME_MAX_LEN];
	char driver[32];
	struct rte_mempool *pools[RTE_MAX_NUMA_NODES]; /* owned, per socket */
	struct rte_mempool *queue_pool[NIC_QUEUES_MAX]; /* feeds RX queue q */
};

/**
 * Configure and start a port: queue pairs, rings, pools, RSS, offloads, MTU,
 * promiscuous mode. Logs one summary line (driver, MAC, link, queues, RSS,
 * offloads) when the port is up.
 *
 * Call after rte_eal_init(), from the main lcore, before the dataplane polls.
 *
 * @param conf  what to bring up
 * @param port  filled in; pass it to every other nic_port_* function
 * @return 0, or a negative errno, with a log line saying what failed:
 *   -ENODEV no such port; -EINVAL more queues than the device has (the line
 *   names the device and its maximum), zero queues, an MTU outside the
 *   device's range; -ENOMEM a pool could not be created; others from ethdev
 *   (a memif client whose server is not listening fails to start).
 *   After a failure, port->configured says whether queues and pools were
 *   set up; nic_port_close() releases them and is safe to call either way.
 */
int nic_port_init(const struct nic_port_conf *conf, struct nic_port *port);

/**
 * Stop a started port (packets stop flowing, queues and pools stay).
 *
 * @return 0 or a negative errno from rte_eth_dev_stop().
 */
int nic_port_stop(struct nic_port *port);

/**
 * Stop if needed, close the port and free its pools. Does nothing for a
 * port that was never configured (a nic_port_init() that failed early).
 *
 * Every mbuf taken from the port's pools must be back in them: the pools
 * are freed. For vdevs, closing releases the port id.
 *
 * memif servers: DPDK 22.11 leaves the listener's interrupt callback
 * registered after the close (its handle freed), so the EAL interrupt thread
 * may touch freed memory afterwards and crash once rte_eal_cleanup() unmaps
 * it. Close a memif server only on the way out, and exit without
 * rte_eal_cleanup() (tests/dpdk/nic_test.h, t_eal_stop()).
 */
void nic_port_close(struct nic_port *port);

/**
 * Wait until the port's link is up (memif needs its peer, af_packet its
 * interface). Control plane only: it sleeps.
 *
 * @param timeout_ms  how long to wait at most
 * @return 0 when up, -ETIMEDOUT, or a negative errno from ethdev.
 */
int nic_port_link_wait(const struct nic_port *port, unsigned int timeout_ms);

/**
 * Resolve a device name ("net_memif0", "net_af_packet0", "0000:3b:00.0")
 * or a decimal port id to a port id.
 *
 * @return 0 and *port_id set, or -ENODEV with a log line listing the ports
 *   that do exist.
 */
int nic_port_by_name(const char *name, uint16_t *port_id);

/**
 * List the ports, "0 net_memif0 (net_memif), 1 ...", for error messages.
 *
 * @return the length of the full list, as snprintf() does (the text is cut
 *   to size - 1 characters and always terminated when size > 0).
 */
int nic_port_list(char *buf, size_t size);

/** Print the port's configuration, link and ethdev statistics. */
void nic_port_dump(FILE *f, const struct nic_port *port);

/* ------------------------------------------------------------------------ */
/* Host identity seen by the data path                                        */

enum nic_flags {
	NIC_F_TX_IP_CKSUM = 1u << 0,  /* the port computes IPv4 header sums */
	NIC_F_TX_UDP_CKSUM = 1u << 1, /* the port computes UDP sums */
	NIC_F_MAC_FILTER = 1u << 2,   /* drop unicast frames to other MACs */
};

/** Who we are on the wire: read by every lcore, written before they start. */
struct nic_host {
	struct rte_ether_addr mac;
	rte_be32_t ip_be;
	rte_be16_t udp_port_be;
	uint16_t flags;                 /* enum nic_flags */
};

/**
 * Fill a host identity by hand (tests, load generator).
 *
 * @param ip        our IPv4 address, host order (RTE_IPV4(10, 0, 0, 1))
 * @param udp_port  the protocol port, host order
 * @param flags     enum nic_flags
 */
void nic_host_init(struct nic_host *host, const struct rte_ether_addr *mac,
		   uint32_t ip, uint16_t udp_port, uint16_t flags);

/**
 * Fill a host identity from a port: its MAC, its TX checksum offloads, and
 * the MAC filter unless promiscuous mode was asked for (memif and null are
 * promiscuous whatever is asked: the filter is what drops other MACs there).
 */
void nic_host_from_port(struct nic_host *host, const struct nic_port *port,
			uint32_t ip, uint16_t udp_port);

/* ------------------------------------------------------------------------ */
/* Drop causes and counters                                                   */

/* One list for the enum, the names and the descriptions. */
#define NIC_FOREACH_CAUSE(_)                                                  \
	_(SHORT_FRAME, "short-frame", "frame shorter than its headers")       \
	_(MULTI_SEGMENT, "multi-segment", "frame in chained mbufs")           \
	_(VLAN_STRIPPED, "vlan-stripped", "stripped tag could not go back")   \
	_(OTHER_MAC, "other-mac", "unicast to another MAC (MAC filter on)")   \
	_(VLAN_QINQ, "vlan-qinq", "more than one VLAN tag")                   \
	_(NOT_IPV4, "not-ipv4", "ethertype neither IPv4 nor ARP")             \
	_(BAD_IP_HEADER, "bad-ip-header", "IP version, IHL or total length")  \
	_(BAD_IP_CHECKSUM, "bad-ip-checksum", "IPv4 header checksum wrong")   \
	_(IP_TRUNCATED, "ip-truncated", "IP total length beyond the frame")   \
	_(FRAGMENT, "fragment", "IPv4 fragment")                              \
	_(NOT_OURS, "not-ours", "destination IP not ours")                    \
	_(BAD_SOURCE, "bad-source", "source we must not answer")              \
	_(NOT_UDP, "not-udp", "IP protocol neither UDP nor ICMP")             \
	_(OTHER_PORT, "other-port", "UDP to a port that is not ours")         \
	_(BAD_UDP_LENGTH, "bad-udp-length", "UDP length < 8 or > IP payload") \
	_(BAD_UDP_CHECKSUM, "bad-udp-checksum", "NIC found the UDP sum bad")  \
	_(ARP_OTHER, "arp-other", "ARP but not a request for our IP")         \
	_(ICMP_OTHER, "icmp-other", "ICMP other than echo request")           \
	_(BAD_ICMP, "bad-icmp", "ICMP echo too short or checksum wrong")

enum nic_cause {
#define NIC_CAUSE_ENUM_(sym, name, desc) NIC_CAUSE_##sym,
	NIC_FOREACH_CAUSE(NIC_CAUSE_ENUM_)
#undef NIC_CAUSE_ENUM_
	NIC_CAUSE_MAX
};

/* Counters other than drops: field name and description. */
#define NIC_FOREACH_COUNTER(_)                                       \
	_(rx, "frames classified")                                   \
	_(proto, "protocol datagrams for us")                        \
	_(arp_answered, "ARP requests answered")                     \
	_(icmp_answered, "ICMP echo requests answered")

/**
 * One lcore's counters: only that lcore writes them (plain increments).
 * Readers on other threads may see values a burst old, never torn ones
 * (aligned 64-bit stores on x86 and arm64).
 */
struct nic_counters {
#define NIC_COUNTER_FIELD_(name, desc) uint64_t name;
	NIC_FOREACH_COUNTER(NIC_COUNTER_FIELD_)
#undef NIC_COUNTER_FIELD_
	uint64_t drop[NIC_CAUSE_MAX];
} __rte_cache_aligned;

/** @return the cause's short name ("bad-ip-checksum"), "?" if out of range */
const char *nic_cause_name(enum nic_cause cause);

/** @return a one-line description of the cause, "?" if out of range */
const char *nic_cause_desc(enum nic_cause cause);

/** @return the sum of all drop counters */
uint64_t nic_counters_drops(const struct nic_counters *c);

/** Add @p c to @p sum (aggregating lcores for telemetry). */
void nic_counters_add(struct nic_counters *sum, const struct nic_counters *c);

/** Print non-zero counters, one "name value" per line. */
void nic_counters_dump(FILE *f, const struct nic_counters *c);

/* ------------------------------------------------------------------------ */
/* Data path                                                                  */

enum nic_verdict {
	NIC_DROP = 0,   /* rx->cause says why; the frame is unchanged */
	NIC_PROTO,      /* a datagram for us: rx->payload, rx->payload_len */
	NIC_ANSWER,     /* ARP or ICMP echo answered in place: transmit it */
};

#define NIC_RX_VLAN 0x01        /* the frame has an 802.1Q tag */

/** What nic_classify() found in one frame. */
struct nic_rx {
	uint8_t *payload;       /* NIC_PROTO: the UDP payload */
	uint16_t payload_off;   /* NIC_PROTO: payload offset in the frame */
	uint16_t payload_len;   /* NIC_PROTO: UDP length - 8 */
	uint16_t vlan_tci;      /* host order, when NIC_RX_VLAN */
	uint8_t flags;          /* NIC_RX_* */
	uint8_t verdict;        /* enum nic_verdict */
	uint8_t cause;          /* enum nic_cause, when NIC_DROP */
};

/**
 * Classify one received frame. See nic_classify_burst(). Also sets, for
 * NIC_PROTO, m->l2_len (14 or 18), m->l3_len (IHL * 4) and m->l4_len (8),
 * which nic_swap_to_reply() relies on.
 *
 * Data path: no lock, allocation, syscall or log. Counters: one lcore.
 *
 * @return rx->verdict
 */
enum nic_verdict nic_classify(const struct nic_host *host, struct rte_mbuf *m,
			      struct nic_rx *rx, struct nic_counters *cnt);

/**
 * Classify a received burst: Ethernet II with at most one 802.1Q tag, IPv4
 * with or without options, not fragmented, to our IP:
 * - UDP to our port, lengths consistent with the IP total length and the
 *   frame (trailing Ethernet padding ignored) -> NIC_PROTO;
 * - ARP request for our IP, ICMP echo request -> answered in place,
 *   NIC_ANSWER (the frame is ready to transmit, the VLAN tag kept);
 * - anything else -> NIC_DROP, counted in cnt->drop[cause].
 * The IPv4 header checksum is verified in software unless the NIC marked it
 * good (RTE_MBUF_F_RX_IP_CKSUM_GOOD or _NONE); a UDP checksum is trusted
 * unless the NIC marked it bad (the protocol's MAC tag covers the payload).
 * A VLAN tag the driver stripped is put back into the frame first.
 *
 * @param pkts  n received frames (not freed, not reordered)
 * @param rx    n results, rx[i] for pkts[i]
 * @return the number of NIC_PROTO frames
 */
uint16_t nic_classify_burst(const struct nic_host *host,
			    struct rte_mbuf **pkts, uint16_t n,
			    struct nic_rx *rx, struct nic_counters *cnt);

/**
 * Turn a NIC_PROTO datagram whose payload the caller has rewritten into its
 * answer, in place: our MAC to the sender's MAC (VLAN tag kept), IPv4 and
 * UDP addresses and ports swapped, TTL NIC_TTL, IP total length, UDP length
 * and the frame length set for @p payload_len, checksums computed in
 * software or, when host->flags has the TX offloads, left to the port
 * (mbuf offload flags, l2/l3 lengths and the pseudo-header sum set).
 *
 * Data path: no lock, allocation, syscall or log.
 *
 * @param m            a frame nic_classify() returned NIC_PROTO for
 * @param payload_len  length of the answer's payload, at the same offset
 * @return 0, or -ENOSPC if the answer does not fit the mbuf's first segment
 *   (the frame is then unchanged).
 */
int nic_swap_to_reply(const struct nic_host *host, struct rte_mbuf *m,
		      uint16_t payload_len);

/* ------------------------------------------------------------------------ */
/* Frame builder (load generator, tests)                                      */

/** Addresses of a UDP/IPv4 frame, host order. */
struct nic_frame {
	struct rte_ether_addr src_mac;
	struct rte_ether_addr dst_mac;
	uint32_t src_ip;
	uint32_t dst_ip;
	uint16_t src_port;
	uint16_t dst_port;
	uint16_t vlan_tci;      /* used when vlan is set */
	bool vlan;
	uint8_t ttl;            /* 0 = NIC_TTL */
};

/**
 * Write a UDP/IPv4 frame (Ethernet II, optional 802.1Q tag, IPv4 without
 * options, DF set) carrying @p payload into an empty single-segment mbuf,
 * with both checksums computed, or, for the offloads in @p tx_cksum
 * (NIC_F_TX_IP_CKSUM, NIC_F_TX_UDP_CKSUM), the mbuf prepared for the port
 * to compute them.
 *
 * @param m  a freshly allocated mbuf (or one reset with rte_pktmbuf_reset())
 * @return 0; -EINVAL if m is chained or not empty; -ENOSPC if the frame does
 *   not fit its first segment.
 */
int nic_frame_build(struct rte_mbuf *m, const struct nic_frame *f,
		    const void *payload, uint16_t len, uint16_t tx_cksum);

#endif /* NIC_H */
