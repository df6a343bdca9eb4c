/*
 * test_nic_kernel.c - nic/ against the Linux stack, the strictest peer we
 * have: it finds us by ARP, drops UDP datagrams whose checksum is wrong and
 * ignores echo replies that do not match its request.
 *
 * In a private network namespace (unshare(CLONE_NEWNET), so nothing touches
 * the host's interfaces and it all vanishes with the process):
 * - net_af_packet0 on veth nkA; the kernel's end nkB is 10.213.0.2/24, the
 *   engine is 10.213.0.1. Software checksums (af_packet has no offload).
 * - net_tap0 whose kernel side nktap0 is 10.214.0.2/24, the engine
 *   10.214.0.1. The tap driver offers IPv4/UDP checksum offload (it computes
 *   them in software when it writes to the kernel), so the offload path of
 *   nic_swap_to_reply() runs on a real driver: the mbuf flags and l2/l3
 *   lengths must be right for the kernel to accept the datagram. tap
 *   recomputes the pseudo-header sum itself, so that one value is checked
 *   exactly in test_nic.c (test_swap_offload), not here.
 * A kernel UDP socket sends datagrams to the engine's port and must get each
 * back reversed; a raw ICMP socket pings the engine.
 *
 * Needs CAP_SYS_ADMIN and CAP_NET_ADMIN (root here) and iproute2; skipped
 * otherwise (exit code 77).
 */
#define _GNU_SOURCE /* unshare() */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <sched.h>
#include <stdlib.h>
#include <sys/socket.h>

#include <rte_cycles.h>
#include <rte_ethdev.h>

#include "nic_test.h"

#define BURST 32
#define WAIT_MS 3000            /* the kernel retries ARP after 1 s */
#define DATAGRAMS 8

struct engine {
	const char *vdev;
	uint32_t ip;            /* the engine's */
	uint32_t kernel_ip;     /* the kernel side's */
	struct nic_port port;
	struct nic_host host;
	struct nic_counters cnt;
};

static struct engine afp = {
	.vdev = "net_af_packet0", .ip = 0x0ad50001, .kernel_ip = 0x0ad50002,
};
static struct engine tap = {
	.vdev = "net_tap0", .ip = 0x0ad60001, .kernel_ip = 0x0ad60002,
};
static const char *skip_reason;

/* ------------------------------------------------------------------------ */
/* The engine                                                                 */

static void
engine_up(struct engine *e)
{
	struct nic_port_conf conf = {
		.queues = 1, .rx_ring_size = 256, .tx_ring_size = 256,
		.pool_mbufs = 1023,
	};

	memset(&e->cnt, 0, sizeof(e->cnt));
	assert_int_equal(nic_port_by_name(e->vdev, &conf.port_id), 0);
	assert_int_equal(nic_port_init(&conf, &e->port), 0);
	nic_host_from_port(&e->host, &e->port, e->ip, NIC_UDP_PORT_DEFAULT);
}

/* One pass of a dataplane lcore: answer what is ours, drop the rest. */
static void
engine_poll(struct engine *e)
{
	struct rte_mbuf *pkts[BURST], *tx[BURST];
	struct nic_rx rx[BURST];
	uint16_t n, i, j, ntx = 0, sent;

	n = rte_eth_rx_burst(e->port.port_id, 0, pkts, BURST);
	nic_classify_burst(&e->host, pkts, n, rx, &e->cnt);
	for (i = 0; i < n; i++) {
		if (rx[i].verdict == NIC_DROP) {
			rte_pktmbuf_free(pkts[i]);
			continue;
		}
		if (rx[i].verdict == NIC_PROTO) {
			/* The answer: the payload reversed. */
			for (j = 0; j < rx[i].payload_len / 2; j++) {
				uint8_t *p = rx[i].payload, c = p[j];

				p[j] = p[rx[i].payload_len - 1 - j];
				p[rx[i].payload_len - 1 - j] = c;
			}
			assert_int_equal(nic_swap_to_reply(&e->host, pkts[i],
							   rx[i].payload_len), 0);
		}
		tx[ntx++] = pkts[i];
	}
	sent = rte_eth_tx_burst(e->port.port_id, 0, tx, ntx);
	if (sent < ntx)
		rte_pktmbuf_free_bulk(tx + sent, ntx - sent);
}

/* Poll the engine until the socket has something, or WAIT_MS. */
static ssize_t
engine_until_recv(struct engine *e, int s, void *buf, size_t size,
		  struct sockaddr_in *from)
{
	socklen_t alen = sizeof(*from);
	unsigned int ms;
	ssize_t r = -1;

	for (ms = 0; ms < WAIT_MS && r < 0; ms++) {
		engine_poll(e);
		r = recvfrom(s, buf, size, MSG_DONTWAIT, (struct sockaddr *)from,
			     &alen);
		if (r < 0)
			rte_delay_us_sleep(1000);
	}
	return r;
}

/* ------------------------------------------------------------------------ */
/* The kernel's side                                                          */

static void
udp_round_trips(struct engine *e)
{
	struct sockaddr_in to = {
		.sin_family = AF_INET, .sin_port = htons(NIC_UDP_PORT_DEFAULT),
		.sin_addr.s_addr = htonl(e->ip),
	};
	struct sockaddr_in me = {
		.sin_family = AF_INET, .sin_addr.s_addr = htonl(e->kernel_ip),
	};
	struct sockaddr_in from;
	char msg[64], want[64], got[128];
	int s, i, len, k;
	ssize_t r;

	s = socket(AF_INET, SOCK_DGRAM, 0);
	assert_true(s >= 0);
	assert_int_equal(bind(s, (struct sockaddr *)&me, sizeof(me)), 0);
	for (i = 0; i < DATAGRAMS; i++) {
		len = snprintf(msg, sizeof(msg), "datagram %d to %s", i, e->vdev);
		for (k = 0; k < len; k++)
			want[k] = msg[len - 1 - k];
		assert_int_equal(sendto(s, msg, (size_t)len, 0,
					(struct sockaddr *)&to, sizeof(to)), len);
		r = engine_until_recv(e, s, got, sizeof(got), &from);
		if (r != len)
			fail_msg("%s: datagram %d: got %zd bytes, errno %d", e->vdev,
				 i, r, errno);
		assert_memory_equal(got, want, (size_t)len);
		assert_int_equal(from.sin_addr.s_addr, htonl(e->ip));
		assert_int_equal(from.sin_port, htons(NIC_UDP_PORT_DEFAULT));
	}
	close(s);
	assert_int_equal(e->cnt.proto, DATAGRAMS);
	assert_true(e->cnt.arp_answered >= 1);  /* the kernel found us */
}

static void
ping(struct engine *e)
{
	struct sockaddr_in to = {
		.sin_family = AF_INET, .sin_addr.s_addr = htonl(e->ip),
	};
	struct sockaddr_in from;
	struct t_frame req = { .n = 0 };
	uint8_t got[256], *icmp;
	unsigned int i;
	ssize_t r;
	int s;

	t_put32(&req, 0x08000000);
	t_put32(&req, 0x4e430001);      /* identifier, sequence */
	for (i = 0; i < 40; i++)
		t_put8(&req, (uint8_t)(i * 3));
	t_set16(req.b + 2, (uint16_t)~t_fold(t_sum(req.b, req.n)));

	s = socket(AF_INET, SOCK_RAW, IPPROTO_ICMP);
	assert_true(s >= 0);
	assert_int_equal(sendto(s, req.b, req.n, 0, (struct sockaddr *)&to,
				sizeof(to)), (ssize_t)req.n);
	r = engine_until_recv(e, s, got, sizeof(got), &from);
	close(s);
	/* A raw socket gets the IPv4 header too. */
	assert_int_equal(r, 20 + (ssize_t)req.n);
	assert_true(t_ip_ok(got));
	icmp = got + 20;
	assert_int_equal(icmp[0], 0);
	assert_memory_equal(icmp + 4, req.b + 4, req.n - 4);
	assert_int_equal(t_fold(t_sum(icmp, req.n)), 0xffff);
	assert_int_equal(from.sin_addr.s_addr, htonl(e->ip));
	assert_int_equal(e->cnt.icmp_answered, 1);
}

/* ------------------------------------------------------------------------ */
/* Tests                                                                      */

static void
test_af_packet(void **state)
{
	if (skip_reason != NULL)
		skip();
	engine_up(&afp);
	assert_int_equal(nic_port_link_wait(&afp.port, 1000), 0);
	udp_round_trips(&afp);
	ping(&afp);
	nic_port_close(&afp.port);
}

static void
test_tap_offload(void **state)
{
	if (skip_reason != NULL)
		skip();
	engine_up(&tap);
	/* tap takes the checksums: the kernel checks what it made of them. */
	assert_int_equal(tap.port.tx_cksum, NIC_F_TX_IP_CKSUM | NIC_F_TX_UDP_CKSUM);
	assert_int_equal(tap.host.flags & (NIC_F_TX_IP_CKSUM | NIC_F_TX_UDP_CKSUM),
			 NIC_F_TX_IP_CKSUM | NIC_F_TX_UDP_CKSUM);
	assert_int_equal(system("ip addr add 10.214.0.2/24 dev nktap0 && "
				"ip link set nktap0 up"), 0);
	udp_round_trips(&tap);
	ping(&tap);
	nic_port_close(&tap.port);
}

static int
group_setup(void **state)
{
	static const char *const extra[] = {
		"--vdev=net_af_packet0,iface=nkA",
		"--vdev=net_tap0,iface=nktap0",
	};

	if (unshare(CLONE_NEWNET) != 0) {
		skip_reason = "cannot create a network namespace";
		return 0;
	}
	if (system("ip link set lo up && "
		   "ip link add nkA type veth peer name nkB && "
		   "ip link set nkA up && ip link set nkB up && "
		   "ip addr add 10.213.0.2/24 dev nkB") != 0) {
		skip_reason = "cannot set up the veth pair (ip link)";
		return 0;
	}
	return t_eal_start("nick", "256", extra, 2) < 0 ? -1 : 0;
}

static int
group_teardown(void **state)
{
	if (skip_reason != NULL) {
		fprintf(stderr, "test_nic_kernel skipped: %s\n", skip_reason);
		return 0;
	}
	t_eal_stop(true);
	return 0;
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_af_packet),
		cmocka_unit_test(test_tap_offload),
	};

	int failed = cmocka_run_group_tests(tests, group_setup, group_teardown);

	/* 77: ctest reports the test as skipped (SKIP_RETURN_CODE). */
	return failed == 0 && skip_reason != NULL ? 77 : failed;
}
