/*
 * port.c - bringing a port up and down: queues, rings, pools, RSS,
 * offloads, MTU, promiscuous mode, and the one log line that says what the
 * dataplane got.
 *
 * Owns: the mbuf pools of each port it brings up (one per NUMA socket that
 * a queue of the port is polled from, named "nic<port>_s<socket>_<n>") and the
 * port's ethdev state between nic_port_init() and nic_port_close().
 *
 * Invariants:
 * - Queue pair q is polled by one lcore; its RX queue is fed from the pool
 *   on that lcore's socket (conf->lcores) or the port's socket.
 * - RSS is on only with more than one queue and a device that hashes IPv4
 *   (UDP ports when it can). Without RSS, several queues are still set up
 *   and the device decides where frames go (memif: the peer's queue).
 * - Only the offloads the device reports are requested; the port records
 *   which checksum offloads it has (tx_cksum) so the data path computes the
 *   rest in software. VLAN stripping is never requested: answers must carry
 *   the tag and the data path reads it from the frame.
 * - Failing here logs why, naming the device. A failure before the device
 *   is configured leaves nothing behind; after it, nic_port_close() releases
 *   the queues and then the pools (the device may hold their mbufs).
 *
 * Concurrency: control plane only, one thread (the main lcore), before the
 * dataplane lcores start polling and after they stopped. ethdev is not
 * thread-safe for configuration.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <rte_cycles.h>
#include <rte_errno.h>
#include <rte_lcore.h>

#include "nic_pvt.h"

RTE_LOG_REGISTER(nic_logtype, authd.nic, INFO);

/* Hash on what spreads gateways' datagrams: addresses, and ports if we can. */
#define NIC_RSS_HF (RTE_ETH_RSS_IPV4 | RTE_ETH_RSS_NONFRAG_IPV4_UDP)
#define NIC_TX_CKSUM_OFFLOADS \
	(RTE_ETH_TX_OFFLOAD_IPV4_CKSUM | RTE_ETH_TX_OFFLOAD_UDP_CKSUM)
#define NIC_RX_CKSUM_OFFLOADS \
	(RTE_ETH_RX_OFFLOAD_IPV4_CKSUM | RTE_ETH_RX_OFFLOAD_UDP_CKSUM)
#define NIC_POOL_CACHE 256
#define NIC_LINK_POLL_MS 10

static unsigned int nic_pool_generation; /* control plane only */

int
nic_port_list(char *buf, size_t size)
{
	struct rte_eth_dev_info info;
	char name[RTE_ETH_NAME_MAX_LEN];
	size_t used = 0;
	int total = 0, n;
	uint16_t pid;

	if (size > 0)
		buf[0] = '\0';
	RTE_ETH_FOREACH_DEV(pid) {
		if (rte_eth_dev_get_name_by_port(pid, name) != 0)
			continue;
		if (rte_eth_dev_info_get(pid, &info) != 0)
			info.driver_name = "?";
		n = snprintf(used < size ? buf + used : NULL,
			     used < size ? size - used : 0, "%s%u %s (%s)",
			     total > 0 ? ", " : "", pid, name, info.driver_name);
		if (n < 0)
			return n;
		total += n;
		used += (size_t)n;
	}
	if (total == 0)
		total = snprintf(buf, size, "none (no --vdev, no bound PCI device)");
	return total;
}

int
nic_port_by_name(const char *name, uint16_t *port_id)
{
	char list[512];
	char *end;
	unsigned long id;

	if (name != NULL && rte_eth_dev_get_port_by_name(name, port_id) == 0)
		return 0;
	if (name != NULL && name[0] != '\0') {
		id = strtoul(name, &end, 10);
		if (*end == '\0' && id < RTE_MAX_ETHPORTS &&
		    rte_eth_dev_is_valid_port((uint16_t)id)) {
			*port_id = (uint16_t)id;
			return 0;
		}
	}
	nic_port_list(list, sizeof(list));
	NIC_LOG(ERR, "no port named '%s'; ports: %s", name ? name : "(null)", list);
	return -ENODEV;
}

/* Check the request against what the device can do, before touching it. */
static int
nic_conf_check(const struct nic_port_conf *conf, const struct nic_port *port,
	       const struct rte_eth_dev_info *info)
{
	uint16_t maxq = RTE_MIN(info->max_rx_queues, info->max_tx_queues);

	if (conf->queues == 0 || conf->queues > NIC_QUEUES_MAX) {
		NIC_LOG(ERR, "port %u (%s): %u queue pairs asked, must be 1..%u",
			port->port_id, port->name, conf->queues, NIC_QUEUES_MAX);
		return -EINVAL;
	}
	if (conf->queues > maxq) {
		NIC_LOG(ERR, "port %u (%s, driver %s): %u queue pairs asked, the "
			"device has at most %u (%u RX, %u TX)%s", port->port_id,
			port->name, port->driver, conf->queues, maxq,
			info->max_rx_queues, info->max_tx_queues,
			strcmp(port->driver, "net_af_packet") == 0 ?
			"; add qpairs=N to its --vdev" : "");
		return -EINVAL;
	}
	if (conf->mtu != 0 && (conf->mtu < info->min_mtu || conf->mtu > info->max_mtu)) {
		NIC_LOG(ERR, "port %u (%s, driver %s): MTU %u outside the device's "
			"%u..%u", port->port_id, port->name, port->driver,
			conf->mtu, info->min_mtu, info->max_mtu);
		return -EINVAL;
	}
	return 0;
}

/* The ethdev configuration: RSS and offloads only where the device has them. */
static void
nic_eth_conf(const struct nic_port_conf *conf, const struct rte_eth_dev_info *info,
	     struct nic_port *port, struct rte_eth_conf *ec)
{
	memset(ec, 0, sizeof(*ec));
	port->rss_hf = info->flow_type_rss_offloads & NIC_RSS_HF;
	port->rss = conf->queues > 1 && port->rss_hf != 0;
	if (port->rss) {
		ec->rxmode.mq_mode = RTE_ETH_MQ_RX_RSS;
		ec->rx_adv_conf.rss_conf.rss_key = NULL; /* the driver's key */
		ec->rx_adv_conf.rss_conf.rss_hf = port->rss_hf;
	} else {
		port->rss_hf = 0;
		ec->rxmode.mq_mode = RTE_ETH_MQ_RX_NONE;
	}
	port->rx_offloads = info->rx_offload_capa & NIC_RX_CKSUM_OFFLOADS;
	port->tx_offloads = info->tx_offload_capa & NIC_TX_CKSUM_OFFLOADS;
	ec->rxmode.offloads = port->rx_offloads;
	ec->txmode.offloads = port->tx_offloads;
	ec->txmode.mq_mode = RTE_ETH_MQ_TX_NONE;
	/* 0 would make ethdev reset the MTU to 1500: keep the device's. */
	ec->rxmode.mtu = port->mtu;

	port->tx_cksum = 0;
	if (port->tx_offloads & RTE_ETH_TX_OFFLOAD_IPV4_CKSUM)
		port->tx_cksum |= NIC_F_TX_IP_CKSUM;
	if (port->tx_offloads & RTE_ETH_TX_OFFLOAD_UDP_CKSUM)
		port->tx_cksum |= NIC_F_TX_UDP_CKSUM;
}

/* Socket of the lcore polling queue q; the port's when unknown. */
static unsigned int
nic_queue_socket(const struct nic_port_conf *conf, uint16_t q, int port_socket)
{
	int s = port_socket;

	if (conf->lcores != NULL && conf->lcores[q] < RTE_MAX_LCORE)
		s = (int)rte_lcore_to_socket_id(conf->lcores[q]);
	if (s < 0 || s >= RTE_MAX_NUMA_NODES)
		s = (int)rte_socket_id();
	if (s < 0 || s >= RTE_MAX_NUMA_NODES) /* non-EAL thread */
		s = 0;
	return (unsigned int)s;
}

static uint32_t
nic_pool_size(const struct nic_port_conf *conf, const struct nic_port *port,
	      unsigned int queues_on_socket)
{
	uint32_t per_queue = port->rx_ring_size + port->tx_ring_size +
			     2 * NIC_BURST_MAX + NIC_POOL_CACHE;

	if (conf->pool_mbufs != 0)
		return conf->pool_mbufs;
	/* 2^n - 1 mbufs use the ring under the pool best (rte_mempool.h). */
	return rte_align32pow2(per_queue * queues_on_socket + 1) - 1;
}

static struct rte_mempool *
nic_pool_create(const struct nic_port_conf *conf, const struct nic_port *port,
		unsigned int socket, unsigned int queues_on_socket,
		uint16_t data_room)
{
	char name[RTE_MEMPOOL_NAMESIZE];
	uint32_t n = nic_pool_size(conf, port, queues_on_socket);
	unsigned int cache = RTE_MIN((uint32_t)NIC_POOL_CACHE, n / 8);
	struct rte_mempool *mp;

	/* Unique even when a port is brought up again after a failure. */
	snprintf(name, sizeof(name), "nic%u_s%u_%u", port->port_id, socket,
		 nic_pool_generation++);
	mp = rte_pktmbuf_pool_create(name, n, cache, 0, data_room, (int)socket);
	if (mp == NULL && rte_errno == ENOMEM) {
		/* No memory on that socket (--no-huge puts all on one). */
		NIC_LOG(WARNING, "port %u (%s): no memory for pool %s on socket "
			"%u, using any socket", port->port_id, port->name, name,
			socket);
		mp = rte_pktmbuf_pool_create(name, n, cache, 0, data_room,
					     SOCKET_ID_ANY);
	}
	if (mp == NULL)
		NIC_LOG(ERR, "port %u (%s): cannot create pool %s of %u mbufs of "
			"%u bytes: %s", port->port_id, port->name, name, n,
			data_room, rte_strerror(rte_errno));
	return mp;
}

static void
nic_pools_free(struct nic_port *port)
{
	unsigned int s;

	for (s = 0; s < RTE_MAX_NUMA_NODES; s++) {
		rte_mempool_free(port->pools[s]);
		port->pools[s] = NULL;
	}
	memset(port->queue_pool, 0, sizeof(port->queue_pool));
}

/* One pool per socket a queue is polled from, sized for its queues. */
static int
nic_pools_create(const struct nic_port_conf *conf, struct nic_port *port,
		 const struct rte_eth_dev_info *info)
{
	unsigned int count[RTE_MAX_NUMA_NODES] = { 0 };
	unsigned int sock[NIC_QUEUES_MAX];
	int port_socket = rte_eth_dev_socket_id(port->port_id);
	uint32_t frame_max = (uint32_t)port->mtu + RTE_ETHER_HDR_LEN +
			     RTE_ETHER_CRC_LEN + 2 * RTE_VLAN_HLEN;
	uint32_t room = RTE_MAX(frame_max, (uint32_t)RTE_MBUF_DEFAULT_DATAROOM);
	uint16_t q;

	room = RTE_MAX(room, info->min_rx_bufsize) + RTE_PKTMBUF_HEADROOM;
	if (room > UINT16_MAX) {
		NIC_LOG(ERR, "port %u (%s): MTU %u needs %u-byte mbufs, more "
			"than an mbuf holds", port->port_id, port->name,
			port->mtu, room);
		return -EINVAL;
	}
	for (q = 0; q < port->queues; q++) {
		sock[q] = nic_queue_socket(conf, q, port_socket);
		count[sock[q]]++;
	}
	for (q = 0; q < port->queues; q++) {
		unsigned int s = sock[q];

		if (port->pools[s] == NULL)
			port->pools[s] = nic_pool_create(conf, port, s, count[s],
							 (uint16_t)room);
		if (port->pools[s] == NULL) {
			nic_pools_free(port);
			return -ENOMEM;
		}
		port->queue_pool[q] = port->pools[s];
	}
	return 0;
}

static int
nic_queues_setup(struct nic_port *port, const struct rte_eth_dev_info *info)
{
	struct rte_eth_rxconf rxc = info->default_rxconf;
	struct rte_eth_txconf txc = info->default_txconf;
	uint16_t q;
	int ret;

	/* Port-level offloads apply to every queue; ask for no more. */
	rxc.offloads = 0;
	txc.offloads = 0;
	for (q = 0; q < port->queues; q++) {
		int socket = port->queue_pool[q]->socket_id;

		ret = rte_eth_rx_queue_setup(port->port_id, q, port->rx_ring_size,
					     (unsigned int)socket, &rxc,
					     port->queue_pool[q]);
		if (ret < 0) {
			NIC_LOG(ERR, "port %u (%s): RX queue %u of %u descriptors: "
				"%s", port->port_id, port->name, q,
				port->rx_ring_size, rte_strerror(-ret));
			return ret;
		}
		ret = rte_eth_tx_queue_setup(port->port_id, q, port->tx_ring_size,
					     (unsigned int)socket, &txc);
		if (ret < 0) {
			NIC_LOG(ERR, "port %u (%s): TX queue %u of %u descriptors: "
				"%s", port->port_id, port->name, q,
				port->tx_ring_size, rte_strerror(-ret));
			return ret;
		}
	}
	return 0;
}

static void
nic_promiscuous_set(struct nic_port *port, bool on)
{
	int ret = on ? rte_eth_promiscuous_enable(port->port_id) :
		       rte_eth_promiscuous_disable(port->port_id);

	port->promiscuous = rte_eth_promiscuous_get(port->port_id) == 1;
	/* memif and null have no switch (they take every frame): the MAC
	 * filter in software does the job, no need to warn. */
	if (ret != 0 && ret != -ENOTSUP)
		NIC_LOG(WARNING, "port %u (%s, driver %s): cannot turn promiscuous "
			"mode %s (%s); it is %s", port->port_id, port->name,
			port->driver, on ? "on" : "off", rte_strerror(-ret),
			port->promiscuous ? "on" : "off");
}

/*
 * Our MAC: the device's, or, when it has none (net_ring reports zeros), a
 * random locally administered one, given to the device if it takes it.
 */
static int
nic_mac_get(struct nic_port *port)
{
	int ret = rte_eth_macaddr_get(port->port_id, &port->mac);

	if (ret != 0) {
		NIC_LOG(ERR, "port %u (%s): no MAC address: %s", port->port_id,
			port->name, rte_strerror(-ret));
		return ret;
	}
	if (!rte_is_zero_ether_addr(&port->mac))
		return 0;
	rte_eth_random_addr(port->mac.addr_bytes);
	ret = rte_eth_dev_default_mac_addr_set(port->port_id, &port->mac);
	NIC_LOG(INFO, "port %u (%s): device has no MAC, using a random one%s",
		port->port_id, port->name,
		ret == 0 ? "" : " (the device does not take it: we filter)");
	return 0;
}

static const char *
nic_cksum_str(uint16_t cksum)
{
	switch (cksum & (NIC_F_TX_IP_CKSUM | NIC_F_TX_UDP_CKSUM)) {
	case NIC_F_TX_IP_CKSUM | NIC_F_TX_UDP_CKSUM:
		return "ipv4+udp";
	case NIC_F_TX_IP_CKSUM:
		return "ipv4 (udp in software)";
	case NIC_F_TX_UDP_CKSUM:
		return "udp (ipv4 in software)";
	default:
		return "none (software)";
	}
}

/* "up 10000 Mbps full-duplex" (rte_eth_link_to_str() is experimental). */
static void
nic_link_str(uint16_t port_id, char *buf, size_t size)
{
	struct rte_eth_link link;

	if (rte_eth_link_get_nowait(port_id, &link) != 0) {
		snprintf(buf, size, "link unknown");
		return;
	}
	if (link.link_status != RTE_ETH_LINK_UP) {
		snprintf(buf, size, "link down");
		return;
	}
	if (link.link_speed == RTE_ETH_SPEED_NUM_NONE ||
	    link.link_speed == RTE_ETH_SPEED_NUM_UNKNOWN)
		snprintf(buf, size, "link up, speed unknown");
	else
		snprintf(buf, size, "link up %u Mbps %s-duplex", link.link_speed,
			 link.link_duplex == RTE_ETH_LINK_FULL_DUPLEX ? "full" :
			 "half");
}

/* The one line saying what the dataplane got. */
static void
nic_port_log(const struct nic_port *port)
{
	char mac[RTE_ETHER_ADDR_FMT_SIZE];
	char link_str[64];

	rte_ether_format_addr(mac, sizeof(mac), &port->mac);
	nic_link_str(port->port_id, link_str, sizeof(link_str));
	NIC_LOG(INFO, "port %u %s driver %s MAC %s: %s; %u RX/TX queue pairs "
		"(%u/%u descriptors); RSS %s (hf 0x%" PRIx64 "); TX checksum "
		"offload %s; RX checksum offload %s; MTU %u; promiscuous %s; "
		"MAC filter %s",
		port->port_id, port->name, port->driver, mac, link_str,
		port->queues, port->rx_ring_size, port->tx_ring_size,
		port->rss ? "on" : (port->queues > 1 ?
			"off (device has none: it picks the queue)" : "off"),
		port->rss_hf, nic_cksum_str(port->tx_cksum),
		port->rx_offloads ? "ipv4/udp" : "none (software)", port->mtu,
		port->promiscuous ? "on" : "off", port->mac_filter ? "on" : "off");
}

/* Fill the port's identity and ring sizes; check the request. */
static int
nic_port_prepare(const struct nic_port_conf *conf, struct nic_port *port,
		 struct rte_eth_dev_info *info)
{
	int ret;

	memset(port, 0, sizeof(*port));
	port->port_id = conf->port_id;
	if (!rte_eth_dev_is_valid_port(conf->port_id)) {
		char list[512];

		nic_port_list(list, sizeof(list));
		NIC_LOG(ERR, "no port %u; ports: %s", conf->port_id, list);
		return -ENODEV;
	}
	rte_eth_dev_get_name_by_port(conf->port_id, port->name);
	ret = rte_eth_dev_info_get(conf->port_id, info);
	if (ret != 0) {
		NIC_LOG(ERR, "port %u (%s): no device info: %s", conf->port_id,
			port->name, rte_strerror(-ret));
		return ret;
	}
	snprintf(port->driver, sizeof(port->driver), "%s", info->driver_name);
	ret = nic_conf_check(conf, port, info);
	if (ret != 0)
		return ret;

	port->queues = conf->queues;
	port->rx_ring_size = conf->rx_ring_size ? conf->rx_ring_size :
						  NIC_RING_SIZE_DEFAULT;
	port->tx_ring_size = conf->tx_ring_size ? conf->tx_ring_size :
						  NIC_RING_SIZE_DEFAULT;
	port->mtu = conf->mtu;
	if (port->mtu == 0 && rte_eth_dev_get_mtu(conf->port_id, &port->mtu) != 0)
		port->mtu = RTE_ETHER_MTU;
	return 0;
}

int
nic_port_init(const struct nic_port_conf *conf, struct nic_port *port)
{
	struct rte_eth_dev_info info;
	struct rte_eth_conf ec;
	int ret;

	ret = nic_port_prepare(conf, port, &info);
	if (ret != 0)
		return ret;
	nic_eth_conf(conf, &info, port, &ec);
	ret = rte_eth_dev_configure(port->port_id, port->queues, port->queues, &ec);
	if (ret != 0) {
		NIC_LOG(ERR, "port %u (%s, driver %s): configure %u queues: %s",
			port->port_id, port->name, port->driver, port->queues,
			rte_strerror(-ret));
		return ret;
	}
	ret = rte_eth_dev_adjust_nb_rx_tx_desc(port->port_id, &port->rx_ring_size,
					       &port->tx_ring_size);
	if (ret != 0) {
		NIC_LOG(ERR, "port %u (%s): ring sizes: %s", port->port_id,
			port->name, rte_strerror(-ret));
		return ret;
	}
	ret = nic_pools_create(conf, port, &info);
	if (ret != 0)
		return ret;
	/*
	 * From here the device may hold mbufs of the pools: on failure they
	 * stay, and nic_port_close() releases the queues, then the pools.
	 */
	port->configured = true;
	ret = nic_queues_setup(port, &info);
	if (ret != 0)
		return ret;
	nic_promiscuous_set(port, conf->promiscuous);
	port->mac_filter = !conf->promiscuous;
	ret = nic_mac_get(port);
	if (ret != 0)
		return ret;
	ret = rte_eth_dev_start(port->port_id);
	if (ret != 0) {
		NIC_LOG(ERR, "port %u (%s, driver %s): start: %s%s", port->port_id,
			port->name, port->driver, rte_strerror(-ret),
			strcmp(port->driver, "net_memif") == 0 ?
			" (a memif client needs its server listening)" : "");
		return ret;
	}
	port->started = true;
	nic_port_log(port);
	return 0;
}

int
nic_port_stop(struct nic_port *port)
{
	int ret;

	if (!port->started)
		return 0;
	ret = rte_eth_dev_stop(port->port_id);
	if (ret != 0) {
		NIC_LOG(ERR, "port %u (%s): stop: %s", port->port_id, port->name,
			rte_strerror(-ret));
		return ret;
	}
	port->started = false;
	return 0;
}

void
nic_port_close(struct nic_port *port)
{
	int ret;

	if (!port->configured)
		return;
	nic_port_stop(port);
	ret = rte_eth_dev_close(port->port_id);
	if (ret != 0)
		NIC_LOG(WARNING, "port %u (%s): close: %s", port->port_id,
			port->name, rte_strerror(-ret));
	nic_pools_free(port);
	port->configured = false;
	port->queues = 0;
}

int
nic_port_link_wait(const struct nic_port *port, unsigned int timeout_ms)
{
	struct rte_eth_link link;
	unsigned int waited = 0;
	int ret;

	for (;;) {
		ret = rte_eth_link_get_nowait(port->port_id, &link);
		if (ret != 0)
			return ret;
		if (link.link_status == RTE_ETH_LINK_UP)
			return 0;
		if (waited >= timeout_ms)
			return -ETIMEDOUT;
		rte_delay_us_sleep(NIC_LINK_POLL_MS * 1000);
		waited += NIC_LINK_POLL_MS;
	}
}

void
nic_port_dump(FILE *f, const struct nic_port *port)
{
	char mac[RTE_ETHER_ADDR_FMT_SIZE];
	char link_str[64];
	struct rte_eth_stats st;
	unsigned int s;

	rte_ether_format_addr(mac, sizeof(mac), &port->mac);
	nic_link_str(port->port_id, link_str, sizeof(link_str));
	fprintf(f, "port %u %s driver %s MAC %s %s\n", port->port_id, port->name,
		port->driver, mac, link_str);
	fprintf(f, "  queues %u rx_ring %u tx_ring %u mtu %u rss %s hf 0x%" PRIx64
		" promiscuous %s started %s\n", port->queues, port->rx_ring_size,
		port->tx_ring_size, port->mtu, port->rss ? "on" : "off",
		port->rss_hf, port->promiscuous ? "on" : "off",
		port->started ? "yes" : "no");
	fprintf(f, "  rx_offloads 0x%" PRIx64 " tx_offloads 0x%" PRIx64
		" tx_cksum %s\n", port->rx_offloads, port->tx_offloads,
		nic_cksum_str(port->tx_cksum));
	for (s = 0; s < RTE_MAX_NUMA_NODES; s++) {
		if (port->pools[s] != NULL)
			fprintf(f, "  pool %s socket %u mbufs %u in use %u\n",
				port->pools[s]->name, s, port->pools[s]->size,
				rte_mempool_in_use_count(port->pools[s]));
	}
	if (rte_eth_stats_get(port->port_id, &st) == 0)
		fprintf(f, "  ipackets %" PRIu64 " opackets %" PRIu64 " imissed %"
			PRIu64 " ierrors %" PRIu64 " oerrors %" PRIu64
			" rx_nombuf %" PRIu64 "\n", st.ipackets, st.opackets,
			st.imissed, st.ierrors, st.oerrors, st.rx_nombuf);
}
