/*
 * bench_dpdk.c - micro-benchmarks of what the dataplane hands to others:
 * rte_ring hand-offs of 128-byte records, the cost of sending a record to
 * the core that owns its user (sharding) against the lock word, and the
 * ledger journal's append + group commit on a real file.
 *
 * What each measures (items = records):
 * - ring/spsc/<burst>: rte_ring SP/SC of 128-byte elements (the effects
 *   ring's shape), one thread: enqueue a burst, dequeue it. The hand-off's
 *   own instructions, with every line already in this core's cache.
 * - hop/oneway/<burst>: the same ring between two pinned threads, the
 *   consumer reading each record (as a shard owner deciding it would);
 *   timed until the consumer has taken every record. Per record, this is
 *   what single-writer sharding adds on the sending core and the link:
 *   compare with lock/uncontended in bench_engine (the lock word's price
 *   when the user is not shared) and with lock/contended below.
 * - hop/roundtrip/<burst>: a burst to the other thread and back over a
 *   second ring (a shard's answer returning to the RX core): the latency
 *   a hop adds, per burst, at no load.
 * - lock/contended: two threads, pinned to two CPUs, take the same user's
 *   lock byte (lim_user_lock) and change the user, as when two cores hold
 *   packets of one user: the cache line moves at every acquisition.
 * - lock/private: two threads, each its own user (the lines stay put).
 * - journal/sync/<batch>: dp_journal_append of a batch of 128-byte records
 *   then dp_journal_sync (fdatasync): one group commit. Counters: fsync
 *   latency (avg, p50, p99, max) by batch size; items/s = records made
 *   durable per second by one writer that waits for each batch.
 * - journal/write/<batch>: the append alone (page cache), no fdatasync.
 *
 * The journal goes to a fresh directory under $AUTHD_BENCH_DIR, else
 * $TMPDIR, else /tmp; a tmpfs is refused in favour of the current directory
 * (fdatasync on tmpfs costs nothing), and the label names the file system.
 *
 * No EAL: rings are initialised in memory of our own (rte_ring_init), so
 * the benchmarks run anywhere, in parallel, without --file-prefix.
 * Cross-thread benchmarks need two CPUs in the affinity mask and are timed
 * by the wall clock; on a shared machine they are as noisy as the machine.
 */
#define _GNU_SOURCE
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/vfs.h>
#include <time.h>
#include <unistd.h>

#include <rte_common.h>
#include <rte_pause.h>
#include <rte_ring.h>
#include <rte_ring_elem.h>

#include "gbench_shim.h"
#include "journal.h"
#include "lim.h"

#define PERF_REC_LEN 128u        /* a struct lim_effect */
#define PERF_RING_SLOTS 4096u    /* power of two: capacity 4095 */
#define PERF_BURST_MAX 64u
#define PERF_FSYNC_SAMPLES (1u << 20)

_Static_assert(sizeof(struct lim_effect) == PERF_REC_LEN, "records are effects");

static const int64_t bursts[] = {1, 8, 32};
static const int64_t batches[] = {1, 16, 128, 1024, 2048};
static const char *const burst_name[] = {"burst"};
static const char *const batch_name[] = {"batch"};

/* ------------------------------------------------------------------------ */
/* Rings without EAL                                                          */

static struct rte_ring *
ring_new(const char *name)
{
	ssize_t sz = rte_ring_get_memsize_elem(PERF_REC_LEN, PERF_RING_SLOTS);
	struct rte_ring *r;

	if (sz < 0)
		return NULL;
	r = aligned_alloc(RTE_CACHE_LINE_SIZE,
			  RTE_ALIGN_CEIL((size_t)sz, RTE_CACHE_LINE_SIZE));
	if (!r)
		return NULL;
	if (rte_ring_init(r, name, PERF_RING_SLOTS,
			  RING_F_SP_ENQ | RING_F_SC_DEQ)) {
		free(r);
		return NULL;
	}
	return r;
}

static void
recs_fill(struct lim_effect *e, unsigned n, uint64_t first)
{
	memset(e, 0, (size_t)n * sizeof(*e));
	for (unsigned i = 0; i < n; i++) {
		e[i].seq = first + i;
		e[i].request_id = 1000000 + first + i;
		e[i].user_id = 0x5bd1e995ull * (first + i + 1);
		e[i].gateway_id = 1;
		e[i].amount_fen = 10000 + (int64_t)i;
		e[i].d_holds_fen = e[i].amount_fen;
		e[i].kind = LIM_EFF_AUTH;
		e[i].op = 1;
		e[i].product = 1;
	}
}

static void
ring_spsc(struct perf_state *s)
{
	unsigned n = (unsigned)perf_range(s, 0);
	struct lim_effect in[PERF_BURST_MAX], out[PERF_BURST_MAX];
	struct rte_ring *r = ring_new("spsc");

	if (!r) {
		perf_skip_with_error(s, "cannot initialise a ring");
		return;
	}
	recs_fill(in, n, 1);
	PERF_LOOP(s) {
		unsigned a = rte_ring_enqueue_bulk_elem(r, in, PERF_REC_LEN, n, NULL);
		unsigned b = rte_ring_dequeue_bulk_elem(r, out, PERF_REC_LEN, n, NULL);

		PERF_KEEP(a);
		PERF_KEEP(b);
		perf_do_not_optimize(out);
	}
	perf_set_items(s, perf_iterations(s) * n);
	perf_set_bytes(s, perf_iterations(s) * n * PERF_REC_LEN);
	free(r);
}
PERF_BENCH_SPEC(ring_spsc, .name = "ring/spsc", .args = bursts, .runs = 3,
		.arity = 1, .arg_names = burst_name);

/* ------------------------------------------------------------------------ */
/* A hop to another core                                                      */

struct hop {
	struct rte_ring *req;        /* sender -> owner */
	struct rte_ring *rsp;        /* owner -> sender (round trip only) */
	bool echo;
	int cpu;
	_Atomic bool stop;
	_Atomic uint64_t taken __rte_cache_aligned; /* consumer's line */
	int64_t sum;                 /* what the consumer read */
};

static int
cpu_pair(int *a, int *b)
{
	cpu_set_t set;
	int n = 0;

	if (sched_getaffinity(0, sizeof(set), &set))
		return -errno;
	for (int c = 0; c < CPU_SETSIZE && n < 2; c++) {
		if (!CPU_ISSET(c, &set))
			continue;
		if (n++ == 0)
			*a = c;
		else
			*b = c;
	}
	return n == 2 ? 0 : -ENODEV;
}

static int
pin(pthread_t t, int cpu)
{
	cpu_set_t set;

	CPU_ZERO(&set);
	CPU_SET(cpu, &set);
	return pthread_setaffinity_np(t, sizeof(set), &set);
}

/* The owner: take what comes, read every record, send it back if asked. */
static void *
hop_owner(void *arg)
{
	struct hop *h = arg;
	struct lim_effect buf[PERF_BURST_MAX];

	pin(pthread_self(), h->cpu);
	while (!atomic_load_explicit(&h->stop, memory_order_acquire)) {
		unsigned n = rte_ring_dequeue_burst_elem(h->req, buf, PERF_REC_LEN,
							 PERF_BURST_MAX, NULL);
		if (n == 0) {
			rte_pause();
			continue;
		}
		for (unsigned i = 0; i < n; i++)
			h->sum += buf[i].amount_fen + (int64_t)buf[i].user_id;
		if (h->echo) {
			unsigned sent = 0;

			while (sent < n)
				sent += rte_ring_enqueue_burst_elem(h->rsp,
					&buf[sent], PERF_REC_LEN, n - sent, NULL);
		}
		atomic_fetch_add_explicit(&h->taken, n, memory_order_release);
	}
	return NULL;
}

/* Start an owner on the second CPU, pin the caller to the first. */
static int
hop_start(struct perf_state *s, struct hop *h, pthread_t *tid,
	  cpu_set_t *saved, bool echo)
{
	int a = 0, b = 0;

	memset(h, 0, sizeof(*h));
	if (cpu_pair(&a, &b)) {
		perf_skip_with_error(s, "needs two CPUs in the affinity mask");
		return -1;
	}
	h->req = ring_new("hop_req");
	h->rsp = ring_new("hop_rsp");
	h->echo = echo;
	h->cpu = b;
	if (!h->req || !h->rsp) {
		free(h->req);
		free(h->rsp);
		perf_skip_with_error(s, "cannot initialise a ring");
		return -1;
	}
	sched_getaffinity(0, sizeof(*saved), saved);
	pin(pthread_self(), a);
	if (pthread_create(tid, NULL, hop_owner, h)) {
		sched_setaffinity(0, sizeof(*saved), saved);
		free(h->req);
		free(h->rsp);
		perf_skip_with_error(s, "cannot start the owner thread");
		return -1;
	}
	return 0;
}

static void
hop_stop(struct hop *h, pthread_t tid, const cpu_set_t *saved)
{
	atomic_store_explicit(&h->stop, true, memory_order_release);
	pthread_join(tid, NULL);
	sched_setaffinity(0, sizeof(*saved), saved);
	free(h->req);
	free(h->rsp);
}

static void
hop_oneway(struct perf_state *s)
{
	unsigned n = (unsigned)perf_range(s, 0);
	struct lim_effect in[PERF_BURST_MAX];
	uint64_t sent = 0;
	cpu_set_t saved;
	pthread_t tid;
	struct hop h;

	if (hop_start(s, &h, &tid, &saved, false))
		return;
	recs_fill(in, n, 1);
	PERF_LOOP(s) {
		/* a full ring means the owner is the slower side: wait for it */
		while (rte_ring_enqueue_bulk_elem(h.req, in, PERF_REC_LEN, n,
						  NULL) == 0)
			rte_pause();
		sent += n;
	}
	/* inside the timed region still: every record has been taken */
	while (atomic_load_explicit(&h.taken, memory_order_acquire) < sent)
		rte_pause();
	hop_stop(&h, tid, &saved);
	perf_set_items(s, (int64_t)sent);
	PERF_KEEP(h.sum);
}
PERF_BENCH_SPEC(hop_oneway, .name = "hop/oneway", .args = bursts, .runs = 3,
		.arity = 1, .arg_names = burst_name, .real_time = true);

static void
hop_roundtrip(struct perf_state *s)
{
	unsigned n = (unsigned)perf_range(s, 0);
	struct lim_effect in[PERF_BURST_MAX], out[PERF_BURST_MAX];
	cpu_set_t saved;
	pthread_t tid;
	struct hop h;

	if (hop_start(s, &h, &tid, &saved, true))
		return;
	recs_fill(in, n, 1);
	PERF_LOOP(s) {
		unsigned got = 0;

		while (rte_ring_enqueue_bulk_elem(h.req, in, PERF_REC_LEN, n,
						  NULL) == 0)
			rte_pause();
		while (got < n)
			got += rte_ring_dequeue_burst_elem(h.rsp, &out[got],
							   PERF_REC_LEN, n - got,
							   NULL);
		perf_do_not_optimize(out);
	}
	hop_stop(&h, tid, &saved);
	perf_set_items(s, perf_iterations(s) * n);
	PERF_KEEP(h.sum);
}
PERF_BENCH_SPEC(hop_roundtrip, .name = "hop/roundtrip", .args = bursts,
		.runs = 3, .arity = 1, .arg_names = burst_name,
		.real_time = true);

/* ------------------------------------------------------------------------ */
/* The lock word shared by two cores                                          */

/* Two users on separate lines; thread i of lock/private takes users[i]. */
static struct {
	struct lim_user u;
} __rte_cache_aligned users[2];

/*
 * Thread i on the i-th CPU of the mask: left to the scheduler, two threads
 * on a busy machine may share one CPU and never contend at all.
 */
static void
lock_run(struct perf_state *s, struct lim_user *u)
{
	int cpu[2] = {0, 0};
	cpu_set_t saved;

	if (cpu_pair(&cpu[0], &cpu[1])) {
		perf_skip_with_error(s, "needs two CPUs in the affinity mask");
		return;
	}
	sched_getaffinity(0, sizeof(saved), &saved);
	pin(pthread_self(), cpu[perf_thread_index(s) & 1]);
	PERF_LOOP(s) {
		lim_user_lock(u);
		u->holds_fen += 1;
		perf_clobber();
		lim_user_unlock(u);
	}
	sched_setaffinity(0, sizeof(saved), &saved);
	perf_set_items(s, perf_iterations(s));
}

static void
lock_contended(struct perf_state *s)
{
	lock_run(s, &users[0].u);
}
PERF_BENCH_SPEC(lock_contended, .name = "lock/contended", .threads = 2,
		.real_time = true);

static void
lock_private(struct perf_state *s)
{
	lock_run(s, &users[perf_thread_index(s) & 1].u);
}
PERF_BENCH_SPEC(lock_private, .name = "lock/private", .threads = 2,
		.real_time = true);

/* ------------------------------------------------------------------------ */
/* Journal: append + group commit                                             */

static const struct {
	long magic;
	const char *name;
} fs_names[] = {
	{0xEF53, "ext4"},        {0x58465342, "xfs"},   {0x9123683E, "btrfs"},
	{0x01021994, "tmpfs"},   {0x794c7630, "overlay"}, {0x6969, "nfs"},
	{0x2FC12FC1, "zfs"},     {0x858458f6, "ramfs"},
};

static const char *
fs_name(const char *dir, long *magic)
{
	struct statfs st;

	*magic = 0;
	if (statfs(dir, &st))
		return "unknown";
	*magic = (long)st.f_type;
	for (size_t i = 0; i < sizeof(fs_names) / sizeof(fs_names[0]); i++)
		if (fs_names[i].magic == *magic)
			return fs_names[i].name;
	return "other";
}

/* A parent directory on a disk: $AUTHD_BENCH_DIR, $TMPDIR, /tmp, ".". */
static const char *
journal_parent(void)
{
	const char *c[] = {getenv("AUTHD_BENCH_DIR"), getenv("TMPDIR"), "/tmp"};
	long magic;

	for (size_t i = 0; i < sizeof(c) / sizeof(c[0]); i++) {
		const char *name;

		if (!c[i] || !c[i][0])
			continue;
		name = fs_name(c[i], &magic);
		if (strcmp(name, "tmpfs") && strcmp(name, "ramfs") &&
		    strcmp(name, "unknown"))
			return c[i];
	}
	return ".";
}

static void
rm_dir(const char *dir)
{
	DIR *d = opendir(dir);
	struct dirent *e;

	if (!d)
		return;
	while ((e = readdir(d)) != NULL)
		if (strcmp(e->d_name, ".") && strcmp(e->d_name, ".."))
			unlinkat(dirfd(d), e->d_name, 0);
	closedir(d);
	rmdir(dir);
}

static uint64_t
mono_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

static int
cmp_u64(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;

	return (x > y) - (x < y);
}

struct jbench {
	char dir[PATH_MAX];
	struct dp_journal *j;
	struct lim_effect *recs;
	uint64_t *lat_ns;            /* one per fdatasync, up to the cap */
	uint64_t n_lat;
};

static int
jbench_open(struct perf_state *s, struct jbench *b, unsigned batch)
{
	struct dp_journal_opts o = {.batch_max = batch};
	char err[PATH_MAX + 256], label[PATH_MAX + 64];
	long magic;

	memset(b, 0, sizeof(*b));
	snprintf(b->dir, sizeof(b->dir), "%s/bench_dpdk-journal.XXXXXX",
		 journal_parent());
	if (!mkdtemp(b->dir)) {
		snprintf(err, sizeof(err), "mkdtemp %s: %s", b->dir,
			 strerror(errno));
		perf_skip_with_error(s, err);
		return -1;
	}
	b->recs = aligned_alloc(64, (size_t)batch * sizeof(*b->recs));
	b->lat_ns = malloc(PERF_FSYNC_SAMPLES * sizeof(*b->lat_ns));
	if (!b->recs || !b->lat_ns ||
	    dp_journal_open(b->dir, &o, NULL, 1, &b->j, err, sizeof(err))) {
		if (!b->recs || !b->lat_ns)
			snprintf(err, sizeof(err), "out of memory");
		perf_skip_with_error(s, err);
		free(b->recs);
		free(b->lat_ns);
		rm_dir(b->dir);
		return -1;
	}
	snprintf(label, sizeof(label), "%s %s", fs_name(b->dir, &magic), b->dir);
	perf_set_label(s, label);
	return 0;
}

static void
jbench_close(struct jbench *b)
{
	dp_journal_close(b->j);
	free(b->recs);
	free(b->lat_ns);
	rm_dir(b->dir);
}

/* Append one batch with the next seqs; 0 or the journal's error. */
static int
jbench_append(struct jbench *b, unsigned batch)
{
	uint64_t next = dp_journal_next_seq(b->j);

	for (unsigned i = 0; i < batch; i++) {
		b->recs[i].seq = next + i;
		b->recs[i].check = 0;
	}
	return dp_journal_append(b->j, b->recs, batch);
}

static void
fsync_counters(struct perf_state *s, struct jbench *b)
{
	uint64_t sum = 0;

	if (b->n_lat == 0)
		return;
	for (uint64_t i = 0; i < b->n_lat; i++)
		sum += b->lat_ns[i];
	qsort(b->lat_ns, b->n_lat, sizeof(*b->lat_ns), cmp_u64);
	perf_counter(s, "fsync_us_avg", (double)sum / (double)b->n_lat / 1e3);
	perf_counter(s, "fsync_us_p50", (double)b->lat_ns[b->n_lat / 2] / 1e3);
	perf_counter(s, "fsync_us_p99",
		     (double)b->lat_ns[b->n_lat * 99 / 100] / 1e3);
	perf_counter(s, "fsync_us_max", (double)b->lat_ns[b->n_lat - 1] / 1e3);
	perf_counter(s, "fsyncs", (double)b->n_lat);
}

static void
journal_sync(struct perf_state *s)
{
	unsigned batch = (unsigned)perf_range(s, 0);
	struct jbench b;
	int rc = 0;

	if (jbench_open(s, &b, batch))
		return;
	recs_fill(b.recs, batch, 1);
	PERF_LOOP(s) {
		uint64_t t0;

		if ((rc = jbench_append(&b, batch)) != 0)
			break;
		t0 = mono_ns();
		if ((rc = dp_journal_sync(b.j)) != 0)
			break;
		if (b.n_lat < PERF_FSYNC_SAMPLES)
			b.lat_ns[b.n_lat++] = mono_ns() - t0;
	}
	if (rc) {
		perf_skip_with_error(s, dp_journal_failure(b.j));
	} else {
		perf_set_items(s, perf_iterations(s) * batch);
		perf_set_bytes(s, perf_iterations(s) * batch * PERF_REC_LEN);
		fsync_counters(s, &b);
	}
	jbench_close(&b);
}
PERF_BENCH_SPEC(journal_sync, .name = "journal/sync", .args = batches,
		.runs = 5, .arity = 1, .arg_names = batch_name,
		.real_time = true, .unit = PERF_UNIT_US);

static void
journal_write(struct perf_state *s)
{
	unsigned batch = (unsigned)perf_range(s, 0);
	struct jbench b;
	int rc = 0;

	if (jbench_open(s, &b, batch))
		return;
	recs_fill(b.recs, batch, 1);
	PERF_LOOP(s) {
		if ((rc = jbench_append(&b, batch)) != 0)
			break;
	}
	if (rc) {
		perf_skip_with_error(s, dp_journal_failure(b.j));
	} else {
		perf_set_items(s, perf_iterations(s) * batch);
		perf_set_bytes(s, perf_iterations(s) * batch * PERF_REC_LEN);
	}
	jbench_close(&b);
}
PERF_BENCH_SPEC(journal_write, .name = "journal/write", .args = batches,
		.runs = 5, .arity = 1, .arg_names = batch_name,
		.real_time = true, .unit = PERF_UNIT_US);

PERF_MAIN("bench_dpdk: rte_ring hand-offs of 128-byte records (one core, "
	  "a hop to another core and back), the lock word shared by two "
	  "cores, and the ledger journal's append + fdatasync by batch size")
