/*
 * nic_test.h - helpers shared by the nic/ tests: EAL start and stop with
 * names unique to the process, frames written byte by byte, and checksums
 * computed independently of DPDK (plain RFC 1071 sums over big-endian
 * words), so that a bug in how nic/ calls rte_*_cksum cannot hide itself.
 */
#ifndef NIC_TEST_H
#define NIC_TEST_H

#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include <rte_eal.h>
#include <rte_mbuf.h>

#include "nic.h"

#define T_ARGS_MAX 32

static char t_runtime_dir[512];

/*
 * rte_eal_init() with no hugepages, no PCI, one core, a file prefix and no
 * shared config files of our own; extra arguments (vdevs) appended.
 */
static inline int
t_eal_start(const char *tag, const char *mem_mb, const char *const *extra,
	    int n_extra)
{
	static char prefix[64];
	char *argv[T_ARGS_MAX];
	int argc = 0, i, ret;

	snprintf(prefix, sizeof(prefix), "--file-prefix=%s%d", tag, (int)getpid());
	argv[argc++] = (char *)"test";
	argv[argc++] = (char *)"--no-huge";
	argv[argc++] = (char *)"--no-pci";
	argv[argc++] = (char *)"-m";
	argv[argc++] = (char *)mem_mb;
	argv[argc++] = prefix;
	argv[argc++] = (char *)"--no-shconf";
	argv[argc++] = (char *)"--no-telemetry";
	argv[argc++] = (char *)"-l";
	argv[argc++] = (char *)"0";
	argv[argc++] = (char *)"--log-level=lib.eal:error";
	for (i = 0; i < n_extra && argc < T_ARGS_MAX - 1; i++)
		argv[argc++] = (char *)extra[i];
	argv[argc] = NULL;
	ret = rte_eal_init(argc, argv);
	if (ret < 0)
		return ret;
	snprintf(t_runtime_dir, sizeof(t_runtime_dir), "%s",
		 rte_eal_get_runtime_dir());
	return 0;
}

/*
 * rte_eal_cleanup() unless told not to, then remove the (empty) runtime
 * directory.
 *
 * Why not to: DPDK 22.11's memif never unregisters a server's listener
 * interrupt callback when the server is closed (memif_socket_remove_device()
 * frees the handle and the socket, the EAL interrupt thread keeps them), and
 * rte_eal_cleanup() closes every vdev and then unmaps memory while that
 * thread still runs: under load about one run in ten died with SIGSEGV in
 * eal-intr-thread (rte_intr_fd_get()) during cleanup. A process that had a
 * memif server exits without cleanup; the kernel releases its sockets.
 */
static inline void
t_eal_stop(bool cleanup)
{
	if (cleanup)
		rte_eal_cleanup();
	if (t_runtime_dir[0] != '\0')
		rmdir(t_runtime_dir);
}

/* ------------------------------------------------------------------------ */
/* Frames byte by byte                                                        */

struct t_frame {
	uint8_t b[2048];
	size_t n;
	size_t ip;      /* offset of the IPv4 header */
	size_t l4;      /* offset of the UDP/ICMP header */
};

static inline void
t_put8(struct t_frame *f, uint8_t v)
{
	f->b[f->n++] = v;
}

static inline void
t_put16(struct t_frame *f, uint16_t v)
{
	t_put8(f, (uint8_t)(v >> 8));
	t_put8(f, (uint8_t)v);
}

static inline void
t_put32(struct t_frame *f, uint32_t v)
{
	t_put16(f, (uint16_t)(v >> 16));
	t_put16(f, (uint16_t)v);
}

static inline void
t_putn(struct t_frame *f, const void *p, size_t n)
{
	memcpy(f->b + f->n, p, n);
	f->n += n;
}

static inline uint16_t
t_get16(const uint8_t *p)
{
	return (uint16_t)(p[0] << 8 | p[1]);
}

static inline void
t_set16(uint8_t *p, uint16_t v)
{
	p[0] = (uint8_t)(v >> 8);
	p[1] = (uint8_t)v;
}

/* ------------------------------------------------------------------------ */
/* Independent checksums (RFC 1071)                                           */

static inline uint32_t
t_sum(const uint8_t *p, size_t n)
{
	uint32_t s = 0;
	size_t i;

	for (i = 0; i + 1 < n; i += 2)
		s += (uint32_t)(p[i] << 8 | p[i + 1]);
	if (n & 1)
		s += (uint32_t)(p[n - 1] << 8);
	return s;
}

static inline uint16_t
t_fold(uint32_t s)
{
	while (s >> 16)
		s = (s & 0xffff) + (s >> 16);
	return (uint16_t)s;
}

/* The IPv4 header at ip sums to 0xffff, checksum included. */
static inline bool
t_ip_ok(const uint8_t *ip)
{
	return t_fold(t_sum(ip, (size_t)(ip[0] & 0xf) * 4)) == 0xffff;
}

/* Write the IPv4 header checksum. */
static inline void
t_ip_sum(uint8_t *ip)
{
	t_set16(ip + 10, 0);
	t_set16(ip + 10, (uint16_t)~t_fold(t_sum(ip, (size_t)(ip[0] & 0xf) * 4)));
}

/* Pseudo-header sum (not complemented) for the L4 length given. */
static inline uint32_t
t_pseudo(const uint8_t *ip, uint8_t proto, uint16_t l4_len)
{
	return t_sum(ip + 12, 8) + proto + l4_len;
}

/* The UDP datagram after the IPv4 header at ip has a correct, non-zero sum. */
static inline bool
t_udp_ok(const uint8_t *ip)
{
	const uint8_t *udp = ip + (ip[0] & 0xf) * 4;
	uint16_t len = t_get16(udp + 4);

	if (t_get16(udp + 6) == 0)
		return false;
	return t_fold(t_pseudo(ip, 17, len) + t_sum(udp, len)) == 0xffff;
}

/* Write the UDP checksum (0 becomes 0xffff, RFC 768). */
static inline void
t_udp_sum(uint8_t *ip)
{
	uint8_t *udp = ip + (ip[0] & 0xf) * 4;
	uint16_t len = t_get16(udp + 4), s;

	t_set16(udp + 6, 0);
	s = (uint16_t)~t_fold(t_pseudo(ip, 17, len) + t_sum(udp, len));
	t_set16(udp + 6, s == 0 ? 0xffff : s);
}

/* Copy a frame into a fresh mbuf from mp. */
static inline struct rte_mbuf *
t_mbuf(struct rte_mempool *mp, const struct t_frame *f)
{
	struct rte_mbuf *m = rte_pktmbuf_alloc(mp);
	char *d;

	assert_non_null(m);
	d = rte_pktmbuf_append(m, (uint16_t)f->n);
	assert_non_null(d);
	memcpy(d, f->b, f->n);
	return m;
}

static void
t_ext_free(void *addr, void *shinfo)
{
	free(addr);
	free(shinfo);
}

/*
 * Copy a frame into a malloc'd buffer of exactly its length, attached to an
 * mbuf as external data with no headroom and no tailroom. DPDK memory is not
 * watched by ASan; this buffer is, so an ASan build catches any read or
 * write past the frame's last byte.
 */
static inline struct rte_mbuf *
t_mbuf_exact(struct rte_mempool *mp, const struct t_frame *f)
{
	struct rte_mbuf_ext_shared_info *shinfo = malloc(sizeof(*shinfo));
	uint8_t *buf = malloc(f->n);
	struct rte_mbuf *m = rte_pktmbuf_alloc(mp);

	assert_non_null(shinfo);
	assert_non_null(buf);
	assert_non_null(m);
	memcpy(buf, f->b, f->n);
	shinfo->free_cb = t_ext_free;
	shinfo->fcb_opaque = shinfo;
	rte_mbuf_ext_refcnt_set(shinfo, 1);
	rte_pktmbuf_attach_extbuf(m, buf, 0, (uint16_t)f->n, shinfo);
	m->data_off = 0;
	m->data_len = (uint16_t)f->n;
	m->pkt_len = (uint32_t)f->n;
	return m;
}

#endif /* NIC_TEST_H */
