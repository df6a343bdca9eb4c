/*
 * fuzz_journal.c - libFuzzer harness for the journal reader
 * (dataplane/ledger/journal_scan.c: dp_journal_scan) and for start-up
 * recovery from a journal alone (dataplane/ledger/recovery.c: dp_recover,
 * which redoes every record with lim_redo()).
 *
 * Input: a journal directory in a small container format:
 *
 *   byte 0       flags: bit 0 reseal (recompute every segment header
 *                checksum, every record's check under its segment's
 *                journal_id, and the index checksum, so mutations reach
 *                the chain, sequence and redo checks instead of stopping
 *                at a checksum); bit 1 recover (dp_recover with no
 *                snapshot) instead of a plain scan; bit 2 scan every record
 *                (DP_JOURNAL_SCAN_ALL)
 *   bytes 1..8   from_seq of the scan (little-endian)
 *   then up to 8 chunks: type (1 byte), length (2 bytes, little-endian),
 *                bytes. Type 0: a segment, named seg-<first_seq>.jnl after
 *                the first_seq in its header (bytes 32..39; seq 1 when the
 *                chunk is shorter); type 1: journal.idx; type 2: a segment
 *                named after the chunk's first 8 bytes (a name that may
 *                disagree with its header), the rest its contents.
 *
 * The files are written to a private directory (cleared each run) and
 * read back by the real code: the reader must refuse or accept without a
 * crash, leak or undefined behaviour.
 *
 * Oracles (abort = a finding): a refusal (-EBADMSG, -EIO) names a kind of
 * damage and says why; the records a scan hands over verify (check under
 * the journal's id, kind in range) and come in contiguous seq order from
 * from_seq; the counts it reports agree with what it handed over; a torn
 * tail is no longer than one batch plus a block; recovery (whose redo
 * must refuse a record that contradicts the state with -EBADMSG, never
 * abort: limits/redo.c) either refuses with a message or yields a
 * database.
 *
 * Seeds (corpus/journal): tests/fuzz/mkseeds_journal.py (synthetic,
 * resealed: every record kind, rotation with an index, torn tails) and
 * journals written by authd (taken verbatim, checksums real).
 */
#define _GNU_SOURCE
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <urcu-qsbr.h>
#include <xxhash.h>

#include "journal.h"
#include "lim_pvt.h"

#define FUZZ_CHECK(cond)                                                       \
	do {                                                                   \
		if (!(cond)) {                                                 \
			fprintf(stderr, "%s:%d: check failed: %s\n", __FILE__, \
				__LINE__, #cond);                              \
			abort();                                               \
		}                                                              \
	} while (0)

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define CHUNKS_MAX 8
#define F_RESEAL 0x1
#define F_RECOVER 0x2
#define F_ALL 0x4

static char g_dir[PATH_MAX];

static void
setup(void)
{
	const char *tmp = getenv("TMPDIR");
	char tmpl[PATH_MAX];

	snprintf(tmpl, sizeof(tmpl), "%s/fuzz_journal.XXXXXX",
		 tmp && *tmp ? tmp : "/tmp");
	FUZZ_CHECK(mkdtemp(tmpl));
	snprintf(g_dir, sizeof(g_dir), "%s", tmpl);
	rcu_register_thread();
}

/* Remove every file of the directory (a previous run's journal). */
static void
clear_dir(void)
{
	DIR *d = opendir(g_dir);
	struct dirent *de;

	FUZZ_CHECK(d);
	while ((de = readdir(d)) != NULL) {
		char p[PATH_MAX + 256];

		if (de->d_name[0] == '.')
			continue;
		snprintf(p, sizeof(p), "%s/%s", g_dir, de->d_name);
		unlink(p);
	}
	closedir(d);
}

static void
put_file(const char *name, const uint8_t *b, size_t n)
{
	char p[PATH_MAX + 64];
	int fd;

	snprintf(p, sizeof(p), "%s/%s", g_dir, name);
	fd = open(p, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	if (fd < 0)
		return;
	FUZZ_CHECK(!n || write(fd, b, n) == (ssize_t)n);
	close(fd);
}

static uint64_t
le64(const uint8_t *p)
{
	uint64_t v;

	memcpy(&v, p, sizeof(v));
	return v;
}

/* Header checksum and every whole record's check, as the writer makes them. */
static void
reseal_segment(uint8_t *b, size_t n)
{
	uint64_t id, sum;

	if (n < DP_JOURNAL_HDR_LEN)
		return;
	id = le64(b + offsetof(struct dp_journal_hdr, journal_id));
	sum = XXH3_64bits(b, DP_JOURNAL_HDR_SUMMED);
	memcpy(b + DP_JOURNAL_HDR_SUMMED, &sum, sizeof(sum));
	for (size_t off = DP_JOURNAL_HDR_LEN; off + DP_JOURNAL_REC_LEN <= n;
	     off += DP_JOURNAL_REC_LEN)
		dp_journal_seal(b + off, id);
}

/* "checksum <16 hex>" := XXH3 of everything before it, as index_text(). */
static void
reseal_index(uint8_t *b, size_t n)
{
	static const char word[] = "checksum ";
	uint8_t *p = memmem(b, n, word, sizeof(word) - 1);
	char hex[17];

	if (!p || (size_t)(p - b) + sizeof(word) - 1 + 16 > n)
		return;
	snprintf(hex, sizeof(hex), "%016llx",
		 (unsigned long long)XXH3_64bits(b, (size_t)(p - b)));
	memcpy(p + sizeof(word) - 1, hex, 16);
}

/* Lay the input out as files; the number of chunks written. */
static unsigned
write_dir(const uint8_t *data, size_t size, bool reseal)
{
	size_t off = 9;
	unsigned k = 0;

	while (k < CHUNKS_MAX && off + 3 <= size) {
		unsigned type = data[off] % 3;
		size_t len = (size_t)data[off + 1] | (size_t)data[off + 2] << 8;
		uint8_t *b;
		char name[64];
		uint64_t first = 1;

		off += 3;
		if (len > size - off)
			len = size - off;
		b = malloc(len ? len : 1);
		FUZZ_CHECK(b);
		memcpy(b, data + off, len);
		off += len;
		k++;
		if (type == 1) {
			if (reseal)
				reseal_index(b, len);
			put_file(DP_JOURNAL_INDEX, b, len);
			free(b);
			continue;
		}
		if (type == 2 && len >= 8) {
			first = le64(b);
			memmove(b, b + 8, len - 8);
			len -= 8;
		} else if (len >= 40) {
			first = le64(b + offsetof(struct dp_journal_hdr, first_seq));
		}
		if (reseal)
			reseal_segment(b, len);
		snprintf(name, sizeof(name), "seg-%020" PRIu64 ".jnl", first);
		put_file(name, b, len);
		free(b);
	}
	return k;
}

struct visit_ctx {
	uint64_t from_seq;
	uint64_t expect;         /* next seq, 0 before the first */
	uint64_t visited;
};

static int
visit(const struct lim_effect *e, void *arg)
{
	struct visit_ctx *v = arg;

	/* in order, from from_seq, of a kind the reader checked */
	FUZZ_CHECK(e->seq >= v->from_seq && (!v->expect || e->seq == v->expect));
	FUZZ_CHECK(e->kind >= 1 && e->kind < LIM_EFF_KINDS);
	v->expect = e->seq + 1;
	v->visited++;
	return 0;
}

static void
scan(uint64_t from_seq, unsigned flags)
{
	struct visit_ctx v = {.from_seq = from_seq};
	struct dp_journal_scan res;
	struct dp_journal_err err;
	int rc;

	memset(&err, 0, sizeof(err));
	rc = dp_journal_scan(g_dir, from_seq, flags, visit, &v, &res, &err);
	if (getenv("FUZZ_VERBOSE"))
		fprintf(stderr, "scan: %d %s: %" PRIu64 " records, %" PRIu64
			" visited, seq %" PRIu64 "..%" PRIu64 "%s\n", rc, err.why,
			res.records, v.visited, res.first_seq, res.last_seq,
			res.torn ? ", torn tail" : "");
	if (rc == -EBADMSG || rc == -EIO) {
		FUZZ_CHECK(err.kind != DP_JOURNAL_E_NONE && err.kind < DP_JOURNAL_ERRS);
		FUZZ_CHECK(err.why[0] && memchr(err.why, 0, sizeof(err.why)));
		return;
	}
	if (rc)
		return; /* -ENOENT, -ENOMEM, ... */
	FUZZ_CHECK(res.visited == v.visited);
	FUZZ_CHECK(!res.records || res.last_seq >= res.first_seq);
	/* the last record handed over is the end */
	FUZZ_CHECK(!v.visited || v.expect - 1 == res.last_seq);
	FUZZ_CHECK(!res.torn || res.torn_whole ||
		   res.torn_bytes <= (uint64_t)res.batch_max * DP_JOURNAL_REC_LEN +
					     DP_JOURNAL_TORN_SLACK);
}

static void
recover(void)
{
	struct dp_recover_opts o = {
		.journal_dir = g_dir,
		.db = {.users_max = 1024, .ops_max = 4096, .merchants_max = 64,
		       .groups_max = 64, .shards = 2},
		.cut_torn_tail = false,
	};
	struct dp_recover_result res;
	char err[PATH_MAX + 512] = "";
	int rc = dp_recover(&o, &res, err, sizeof(err));

	if (getenv("FUZZ_VERBOSE"))
		fprintf(stderr, "recover: %d %s: %" PRIu64 " replayed\n", rc, err,
			rc ? 0 : res.redone);
	if (rc) {
		FUZZ_CHECK(err[0]); /* start-up would stop without saying why */
		return;
	}
	dp_recover_free(&res);
	lim_db_free(res.db);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	uint64_t from_seq;

	if (!g_dir[0])
		setup();
	if (size < 9)
		return 0;
	from_seq = le64(data + 1);
	clear_dir();
	write_dir(data, size, data[0] & F_RESEAL);
	if (data[0] & F_RECOVER)
		recover();
	else
		scan(from_seq, data[0] & F_ALL ? DP_JOURNAL_SCAN_ALL : 0);
	return 0;
}
