/*
 * authgen_pcap_test.c - the --record ring of perf/authgen_pcap.c under a
 * writer that preempts the worker: what the recorder counts and what the
 * file holds must be exactly what was recorded.
 *
 * The worker (this thread) and the recorder's writer thread are pinned to
 * one CPU (the writer inherits the affinity it is created with), so every
 * time the writer wakes from its idle sleep it preempts the worker at an
 * arbitrary instruction, also between the worker publishing a slot and
 * returning from gen_record_*(). A slot written after its publication
 * (its kind, its checksums) is then read half-made: an answer counted as a
 * request, a request written with the pseudo-header checksum of TX
 * offload. Checked: the recorder's request and answer counts, and, read
 * back with libpcap, every frame's kind, sequence number, timestamp order
 * and IPv4 and UDP checksums.
 */
#define _GNU_SOURCE
#include <pthread.h>
#include <sched.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>
#include <pcap/pcap.h>
#include <rte_ip.h>
#include <rte_udp.h>

#include "authgen.h"

#define FRAMES_MIN 400000u     /* recorded at least... */
#define RUN_NS 1500000000ull   /* ...and for at least 1.5 s */
#define PAYLOAD 64u
#define SERVER_PORT 7711

static uint64_t
mono_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

/*
 * Frame number @p n: a request (to the server port) when even, an answer
 * (from it) when odd; @p n in the payload. A request carries the
 * pseudo-header checksums TX offload leaves (the recorder must finish
 * them), an answer complete ones, as received.
 */
static uint32_t
build(uint8_t *f, uint64_t n)
{
	struct rte_ether_hdr *eth = (struct rte_ether_hdr *)f;
	struct rte_ipv4_hdr *ip = (struct rte_ipv4_hdr *)(eth + 1);
	struct rte_udp_hdr *udp = (struct rte_udp_hdr *)(ip + 1);
	uint8_t *p = (uint8_t *)(udp + 1);
	bool answer = n & 1;

	memset(f, 0, sizeof(*eth) + sizeof(*ip) + sizeof(*udp) + PAYLOAD);
	eth->ether_type = RTE_BE16(RTE_ETHER_TYPE_IPV4);
	ip->version_ihl = RTE_IPV4_VHL_DEF;
	ip->total_length = rte_cpu_to_be_16(sizeof(*ip) + sizeof(*udp) + PAYLOAD);
	ip->time_to_live = 64;
	ip->next_proto_id = IPPROTO_UDP;
	ip->src_addr = rte_cpu_to_be_32(answer ? 0x0a000001 : 0x0a000002);
	ip->dst_addr = rte_cpu_to_be_32(answer ? 0x0a000002 : 0x0a000001);
	udp->src_port = rte_cpu_to_be_16(answer ? SERVER_PORT : 40000);
	udp->dst_port = rte_cpu_to_be_16(answer ? 40000 : SERVER_PORT);
	udp->dgram_len = rte_cpu_to_be_16(sizeof(*udp) + PAYLOAD);
	memcpy(p, &n, sizeof(n));
	if (answer) {
		ip->hdr_checksum = rte_ipv4_cksum(ip);
		udp->dgram_cksum = rte_ipv4_udptcp_cksum(ip, udp);
	} else {
		udp->dgram_cksum = rte_ipv4_phdr_cksum(ip, 0);
	}
	return (uint32_t)(sizeof(*eth) + sizeof(*ip) + sizeof(*udp) + PAYLOAD);
}

/* The UDP checksum of a recorded frame is the one computed from scratch. */
static bool
udp_cksum_ok(const uint8_t *f)
{
	uint8_t copy[RTE_ETHER_HDR_LEN + sizeof(struct rte_ipv4_hdr) +
		     sizeof(struct rte_udp_hdr) + PAYLOAD];
	struct rte_ipv4_hdr *ip = (struct rte_ipv4_hdr *)(copy + RTE_ETHER_HDR_LEN);
	struct rte_udp_hdr *udp = (struct rte_udp_hdr *)(ip + 1);
	uint16_t got;

	memcpy(copy, f, sizeof(copy));
	got = udp->dgram_cksum;
	udp->dgram_cksum = 0;
	return got == rte_ipv4_udptcp_cksum(ip, udp);
}

static void
test_record_counts_and_file(void **state)
{
	static struct gen_stats st;
	static uint8_t frame[GEN_FRAME_MAX];
	char path[] = "/tmp/authgen_pcap_test.XXXXXX";
	char err[256] = "", perr[PCAP_ERRBUF_SIZE] = "";
	uint64_t n = 0, t0, frames = 0, requests = 0, answers = 0, seen = 0;
	uint64_t last_ts = 0, bad_kind = 0, bad_cksum = 0, bad_seq = 0;
	struct gen_recorder *r;
	struct pcap_pkthdr *ph;
	const u_char *p;
	cpu_set_t one;
	pcap_t *pc;
	int fd;

	(void)state;
	fd = mkstemp(path);
	assert_true(fd >= 0);
	close(fd);
	CPU_ZERO(&one);
	CPU_SET(sched_getcpu() >= 0 ? sched_getcpu() : 0, &one);
	assert_int_equal(pthread_setaffinity_np(pthread_self(), sizeof(one), &one), 0);

	r = gen_record_open(path, 1, err, sizeof(err));
	assert_non_null(r);
	t0 = mono_ns();
	while (n < FRAMES_MIN || mono_ns() - t0 < RUN_NS) {
		uint32_t len = build(frame, n);

		if (n & 1)
			gen_record_answer(r, 0, frame, len, t0 + n, &st);
		else
			gen_record_request(r, 0, frame, len, t0 + n, true, &st);
		n++;
	}
	assert_int_equal(gen_record_close(r, &frames, &requests, &answers), 0);
	pc = pcap_open_offline_with_tstamp_precision(path,
						     PCAP_TSTAMP_PRECISION_NANO, perr);
	assert_non_null(pc);
	while (pcap_next_ex(pc, &ph, &p) == 1) {
		const struct rte_ipv4_hdr *ip =
			(const struct rte_ipv4_hdr *)(p + RTE_ETHER_HDR_LEN);
		const struct rte_udp_hdr *udp = (const struct rte_udp_hdr *)(ip + 1);
		uint64_t ts = (uint64_t)ph->ts.tv_sec * 1000000000ull +
			      (uint64_t)ph->ts.tv_usec, k;
		bool answer = rte_be_to_cpu_16(udp->src_port) == SERVER_PORT;

		memcpy(&k, udp + 1, sizeof(k));
		bad_seq += k != seen || ts < last_ts;
		bad_kind += answer != (bool)(k & 1);
		bad_cksum += rte_ipv4_cksum(ip) != 0 || !udp_cksum_ok(p);
		last_ts = ts;
		seen++;
	}
	pcap_close(pc);
	unlink(path);
	print_message("recorded %llu frames (%llu ring waits); the recorder "
		      "counted %llu requests, %llu answers; the file holds %llu "
		      "frames: %llu out of order, %llu of the wrong kind, %llu "
		      "with a wrong checksum\n",
		      (unsigned long long)n,
		      (unsigned long long)st.c[GEN_C_record_waits],
		      (unsigned long long)requests, (unsigned long long)answers,
		      (unsigned long long)seen, (unsigned long long)bad_seq,
		      (unsigned long long)bad_kind, (unsigned long long)bad_cksum);
	assert_int_equal(frames, n);
	assert_int_equal(requests, (n + 1) / 2);
	assert_int_equal(answers, n / 2);
	assert_int_equal(seen, n);
	assert_int_equal(bad_seq, 0);
	assert_int_equal(bad_kind, 0);
	assert_int_equal(bad_cksum, 0);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_record_counts_and_file),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
