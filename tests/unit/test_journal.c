/*
 * test_journal.c - the journal (dataplane/ledger/journal*.c): round trip,
 * rotation and the index, reopen and append, and every reader error with
 * its exact file and byte offset: bad checksum, seq gap, seq out of order,
 * bad header, truncated record, wrong name, broken chain, index mismatch;
 * torn tails (partial record, zeroed records, torn segment header) cut,
 * damage before the tail refused; write/sync failures are sticky.
 *
 * It links the journal (authd_journal, no DPDK) and reaches the internals
 * its files share through journal_pvt.h.
 */
#include <errno.h>
#include <fcntl.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include "journal_pvt.h"

#define REC DP_JOURNAL_REC_LEN
#define HDR DP_JOURNAL_HDR_LEN

struct jt {
	char dir[64];
};

static int
setup(void **state)
{
	struct jt *t = calloc(1, sizeof(*t));

	snprintf(t->dir, sizeof(t->dir), "/tmp/test_journal.XXXXXX");
	assert_non_null(mkdtemp(t->dir));
	*state = t;
	return 0;
}

static int
teardown(void **state)
{
	struct jt *t = *state;
	char cmd[128];

	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", t->dir);
	assert_int_equal(system(cmd), 0);
	free(t);
	return 0;
}

/* A deterministic effect for seq @p seq (kinds cycle through all). */
static struct lim_effect
eff(uint64_t seq)
{
	struct lim_effect e;

	memset(&e, 0, sizeof(e));
	e.seq = seq;
	e.request_id = seq * 7 + 1;
	e.user_id = 1000 + seq % 13;
	e.amount_fen = (int64_t)(seq * 101);
	e.now_s = 1793332800u + (uint32_t)seq;
	e.kind = (uint8_t)(1 + seq % (LIM_EFF_KINDS - 1));
	return e;
}

/* Append records [first, first + n) in batches of @p batch, synced. */
static void
write_range(struct dp_journal *j, uint64_t first, uint64_t n, unsigned batch)
{
	struct lim_effect b[256];

	assert_true(batch <= 256);
	for (uint64_t s = first; s < first + n;) {
		unsigned k = first + n - s < batch ? (unsigned)(first + n - s)
						   : batch;

		for (unsigned i = 0; i < k; i++)
			b[i] = eff(s + i);
		assert_int_equal(dp_journal_append(j, b, k), 0);
		for (unsigned i = 0; i < k; i++)
			assert_int_equal(b[i].check,
					 dp_journal_check(&b[i], dp_journal_id(j)));
		assert_int_equal(dp_journal_sync(j), 0);
		s += k;
	}
}

static struct dp_journal *
new_journal(const char *dir, uint64_t seg_bytes, uint32_t batch,
	    uint64_t first)
{
	struct dp_journal_opts o = {.segment_bytes = seg_bytes,
				    .batch_max = batch};
	struct dp_journal *j;
	char err[512];

	assert_int_equal(dp_journal_open(dir, &o, NULL, first, &j, err,
					 sizeof(err)), 0);
	return j;
}

/* A visitor that checks every record is eff(seq), in order. */
struct visit {
	uint64_t next;
	uint64_t n;
	uint64_t id;
};

static int
visit_check(const struct lim_effect *r, void *arg)
{
	struct visit *v = arg;
	struct lim_effect want = eff(v->next);

	want.check = r->check;
	assert_int_equal(r->seq, v->next);
	assert_memory_equal(r, &want, sizeof(want));
	assert_int_equal(r->check, dp_journal_check(r, v->id));
	v->next++;
	v->n++;
	return 0;
}

static void
seg_path(const struct jt *t, uint64_t first, char *out, size_t n)
{
	snprintf(out, n, "%s/seg-%020llu.jnl", t->dir, (unsigned long long)first);
}

static void
file_patch(const char *path, uint64_t off, const void *p, size_t n)
{
	int fd = open(path, O_WRONLY);

	assert_true(fd >= 0);
	assert_int_equal(pwrite(fd, p, n, (off_t)off), (ssize_t)n);
	close(fd);
}

static void
file_read(const char *path, uint64_t off, void *p, size_t n)
{
	int fd = open(path, O_RDONLY);

	assert_true(fd >= 0);
	assert_int_equal(pread(fd, p, n, (off_t)off), (ssize_t)n);
	close(fd);
}

static void
flip_bit(const char *path, uint64_t off, unsigned bit)
{
	uint8_t b;

	file_read(path, off, &b, 1);
	b ^= (uint8_t)(1u << bit);
	file_patch(path, off, &b, 1);
}

static uint64_t
file_size(const char *path)
{
	struct stat st;

	assert_int_equal(stat(path, &st), 0);
	return (uint64_t)st.st_size;
}

static void
truncate_to(const char *path, uint64_t size)
{
	assert_int_equal(truncate(path, (off_t)size), 0);
}

/* Scan expecting damage of @p kind at @p path:@p off. */
static void
expect_damage(const struct jt *t, enum dp_journal_err_kind kind,
	      const char *path, uint64_t off)
{
	struct dp_journal_scan res;
	struct dp_journal_err err;
	char want[PATH_MAX + 64];
	int rc = dp_journal_scan(t->dir, 0, DP_JOURNAL_SCAN_ALL, NULL, NULL,
				 &res, &err);

	if (rc != -EBADMSG || err.kind != kind || strcmp(err.path, path) ||
	    err.offset != off)
		print_error("scan rc %d: %s (want %s at %s:%llu)\n", rc, err.why,
			    dp_journal_err_name(kind), path,
			    (unsigned long long)off);
	assert_int_equal(rc, -EBADMSG);
	assert_int_equal(err.kind, kind);
	assert_string_equal(err.path, path);
	assert_int_equal(err.offset, off);
	snprintf(want, sizeof(want), "%s:%llu: %s: ", path,
		 (unsigned long long)off, dp_journal_err_name(kind));
	assert_memory_equal(err.why, want, strlen(want));
}

static void
scan_ok(const struct jt *t, struct dp_journal_scan *res)
{
	struct dp_journal_err err;
	int rc = dp_journal_scan(t->dir, 0, DP_JOURNAL_SCAN_ALL, NULL, NULL, res,
				 &err);

	if (rc)
		print_error("scan: %s\n", err.why);
	assert_int_equal(rc, 0);
}

/* ------------------------------------------------------------------------ */

static void
test_round_trip(void **state)
{
	struct jt *t = *state;
	struct dp_journal *j = new_journal(t->dir, 0, 64, 1);
	struct dp_journal_scan res;
	struct dp_journal_err err;
	struct visit v = {.next = 1, .id = dp_journal_id(j)};
	char p[PATH_MAX];

	write_range(j, 1, 1000, 64);
	assert_int_equal(dp_journal_next_seq(j), 1001);
	dp_journal_close(j);
	assert_int_equal(dp_journal_scan(t->dir, 0, 0, visit_check, &v, &res,
					 &err), 0);
	assert_int_equal(v.n, 1000);
	assert_int_equal(res.n_segments, 1);
	assert_int_equal(res.first_seq, 1);
	assert_int_equal(res.last_seq, 1000);
	assert_int_equal(res.records, 1000);
	assert_int_equal(res.visited, 1000);
	assert_false(res.torn);
	assert_false(res.index_stale);
	assert_int_equal(res.end_off, HDR + 1000 * REC);
	assert_int_equal(res.batch_max, 64);
	seg_path(t, 1, p, sizeof(p));
	assert_string_equal(res.last_path, p);
	assert_int_equal(file_size(p), HDR + 1000 * REC);
	/* from_seq: only the tail is visited, everything is still verified */
	v = (struct visit){.next = 901, .id = res.journal_id};
	assert_int_equal(dp_journal_scan(t->dir, 901, 0, visit_check, &v, &res,
					 &err), 0);
	assert_int_equal(v.n, 100);
	assert_int_equal(res.records, 1000);
}

static void
test_header_fields(void **state)
{
	struct jt *t = *state;
	struct dp_journal *j = new_journal(t->dir, 0, 32, 500);
	struct dp_journal_hdr h;
	struct dp_journal_err err;
	char p[PATH_MAX];

	write_range(j, 500, 10, 32);
	seg_path(t, 500, p, sizeof(p));
	assert_int_equal(dp_journal_read_hdr(p, &h, &err), 0);
	assert_memory_equal(h.magic, "AUTHJRNL", 8);
	assert_int_equal(h.version, 1);
	assert_int_equal(h.header_len, 128);
	assert_int_equal(h.record_len, 128);
	assert_int_equal(h.batch_max, 32);
	assert_int_equal(h.journal_id, dp_journal_id(j));
	assert_int_equal(h.first_seq, 500);
	assert_int_equal(h.prev_last_seq, 499);
	assert_int_equal(h.segment_no, 0);
	assert_int_equal(h.prev_check, 0);
	dp_journal_close(j);
	/* a record sealed for another journal or another seq fails */
	{
		struct lim_effect e = eff(7);

		dp_journal_seal(&e, 42);
		assert_int_equal(e.check, dp_journal_check(&e, 42));
		assert_int_not_equal(e.check, dp_journal_check(&e, 43));
		e.seq = 8;
		assert_int_not_equal(e.check, dp_journal_check(&e, 42));
	}
}

/* 64 KiB segments (511 records) of 100-record batches: batches never
 * straddle a segment, so 5 batches (500 records) fill one. */
#define ROT_SEG (64u << 10)
#define ROT_BATCH 100u
#define ROT_PER_SEG 500u
#define ROT_N 1200u      /* 3 segments, the last one from 1001 (200 records) */
#define LAST_FIRST 1001u

static struct dp_journal *
rotated(struct jt *t, uint64_t n)
{
	struct dp_journal *j = new_journal(t->dir, ROT_SEG, ROT_BATCH, 1);

	write_range(j, 1, n, ROT_BATCH);
	return j;
}

static void
test_rotation_and_index(void **state)
{
	struct jt *t = *state;
	struct dp_journal *j = rotated(t, 2000);
	struct dp_journal_scan res;
	struct dp_journal_err err;
	struct dp_journal_hdr h0, h1;
	struct visit v = {.next = 1, .id = dp_journal_id(j)};
	char p0[PATH_MAX], p1[PATH_MAX], ix[PATH_MAX], text[4096];
	uint8_t last[REC];
	FILE *f;
	size_t n;

	assert_int_equal(dp_journal_segments(j), 4);
	dp_journal_close(j);
	assert_int_equal(dp_journal_scan(t->dir, 0, DP_JOURNAL_SCAN_ALL,
					 visit_check, &v, &res, &err), 0);
	assert_int_equal(v.n, 2000);
	assert_int_equal(res.n_segments, 4);
	assert_int_equal(res.last_first_seq, 3 * ROT_PER_SEG + 1);
	seg_path(t, 1, p0, sizeof(p0));
	seg_path(t, ROT_PER_SEG + 1, p1, sizeof(p1));
	assert_int_equal(file_size(p0), HDR + ROT_PER_SEG * REC);
	assert_int_equal(dp_journal_read_hdr(p0, &h0, &err), 0);
	assert_int_equal(dp_journal_read_hdr(p1, &h1, &err), 0);
	assert_int_equal(h1.segment_no, 1);
	assert_int_equal(h1.first_seq, ROT_PER_SEG + 1);
	assert_int_equal(h1.journal_id, h0.journal_id);
	file_read(p0, HDR + (ROT_PER_SEG - 1) * REC, last, REC);
	assert_int_equal(h1.prev_check, jnl_rec_check(last));
	/* the index: closed segments with their last seq, the newest open */
	snprintf(ix, sizeof(ix), "%s/journal.idx", t->dir);
	f = fopen(ix, "r");
	assert_non_null(f);
	n = fread(text, 1, sizeof(text) - 1, f);
	fclose(f);
	text[n] = 0;
	assert_non_null(strstr(text, "authd journal index v1\n"));
	assert_non_null(strstr(text, "seg-00000000000000000001.jnl 0 1 500\n"));
	assert_non_null(strstr(text, "seg-00000000000000000501.jnl 1 501 1000\n"));
	assert_non_null(strstr(text, "seg-00000000000000001501.jnl 3 1501 -\n"));
	/* from_seq in the 4th segment: earlier ones skimmed */
	v = (struct visit){.next = 1500, .id = res.journal_id};
	assert_int_equal(dp_journal_scan(t->dir, 1500, 0, visit_check, &v, &res,
					 &err), 0);
	assert_int_equal(v.n, 501);
	assert_true(res.records < 2000);
	assert_int_equal(res.last_seq, 2000);
}

static void
test_reopen_append(void **state)
{
	struct jt *t = *state;
	struct dp_journal *j = rotated(t, 500);
	struct dp_journal_scan res;
	struct visit v = {.next = 1};
	char err[256];

	dp_journal_close(j);
	scan_ok(t, &res);
	assert_int_equal(res.last_seq, 500);
	/* the next seq must follow */
	assert_int_equal(dp_journal_open(t->dir, &(struct dp_journal_opts){
						     .segment_bytes = ROT_SEG,
						     .batch_max = ROT_BATCH},
					 &res, 502, &j, err, sizeof(err)),
			 -EINVAL);
	assert_int_equal(dp_journal_open(t->dir, &(struct dp_journal_opts){
						     .segment_bytes = ROT_SEG,
						     .batch_max = ROT_BATCH},
					 &res, 501, &j, err, sizeof(err)),
			 0);
	{
		struct lim_effect e = eff(503);

		assert_int_equal(dp_journal_append(j, &e, 1), -EINVAL);
	}
	write_range(j, 501, 700, ROT_BATCH);
	dp_journal_close(j);
	v.id = res.journal_id;
	assert_int_equal(dp_journal_scan(t->dir, 0, DP_JOURNAL_SCAN_ALL,
					 visit_check, &v, &res, NULL), 0);
	assert_int_equal(v.n, 1200);
	assert_int_equal(res.n_segments, 3);
}

/* --- damage in the middle -------------------------------------------------- */

static void
test_bad_checksum_mid_file(void **state)
{
	struct jt *t = *state;
	char p[PATH_MAX];

	dp_journal_close(rotated(t, ROT_N));
	seg_path(t, ROT_PER_SEG + 1, p, sizeof(p));
	flip_bit(p, HDR + 17 * REC + 40, 3); /* record 17 of segment 1 */
	expect_damage(t, DP_JOURNAL_E_BAD_CHECKSUM, p, HDR + 17 * REC);
}

static void
test_bad_checksum_last_segment_valid_after(void **state)
{
	struct jt *t = *state;
	char p[PATH_MAX];

	dp_journal_close(rotated(t, ROT_N));
	seg_path(t, LAST_FIRST, p, sizeof(p));
	/* the last segment holds 200 records; damage record 10 of it */
	flip_bit(p, HDR + 10 * REC + 100, 0);
	expect_damage(t, DP_JOURNAL_E_BAD_CHECKSUM, p, HDR + 10 * REC);
}

static void
test_seq_gap_and_order(void **state)
{
	struct jt *t = *state;
	struct dp_journal_scan res;
	char p[PATH_MAX];
	struct lim_effect e;

	dp_journal_close(rotated(t, 300));
	scan_ok(t, &res);
	seg_path(t, 1, p, sizeof(p));
	/* record 50 rewritten with seq 60, resealed: a gap */
	e = eff(60);
	dp_journal_seal(&e, res.journal_id);
	file_patch(p, HDR + 50 * REC, &e, REC);
	expect_damage(t, DP_JOURNAL_E_SEQ_GAP, p, HDR + 50 * REC);
	/* record 50 is a copy of record 49: out of order */
	file_read(p, HDR + 49 * REC, &e, REC);
	file_patch(p, HDR + 50 * REC, &e, REC);
	expect_damage(t, DP_JOURNAL_E_SEQ_ORDER, p, HDR + 50 * REC);
}

static void
test_bad_record_kind(void **state)
{
	struct jt *t = *state;
	struct dp_journal_scan res;
	char p[PATH_MAX];
	struct lim_effect e;

	dp_journal_close(rotated(t, 100));
	scan_ok(t, &res);
	seg_path(t, 1, p, sizeof(p));
	e = eff(20);
	e.kind = LIM_EFF_KINDS;
	dp_journal_seal(&e, res.journal_id);
	file_patch(p, HDR + 19 * REC, &e, REC);
	expect_damage(t, DP_JOURNAL_E_BAD_RECORD, p, HDR + 19 * REC);
}

static void
test_bad_header(void **state)
{
	struct jt *t = *state;
	char p[PATH_MAX];

	dp_journal_close(rotated(t, ROT_N));
	seg_path(t, ROT_PER_SEG + 1, p, sizeof(p));
	flip_bit(p, 50, 1); /* inside segment_no: the checksum fails */
	expect_damage(t, DP_JOURNAL_E_BAD_HEADER, p, DP_JOURNAL_HDR_SUMMED);
	flip_bit(p, 50, 1);
	file_patch(p, 0, "XUTHJRNL", 8);
	expect_damage(t, DP_JOURNAL_E_BAD_HEADER, p, 0);
}

static void
test_truncated_middle_segment(void **state)
{
	struct jt *t = *state;
	char p[PATH_MAX];

	dp_journal_close(rotated(t, ROT_N));
	seg_path(t, 1, p, sizeof(p));
	truncate_to(p, HDR + 100 * REC + 60);
	/* records 100.. of segment 0 are missing: the gap shows at once */
	expect_damage(t, DP_JOURNAL_E_TRUNCATED, p, HDR + 100 * REC);
}

static void
test_duplicate_segment(void **state)
{
	struct jt *t = *state;
	char p0[PATH_MAX], dup[PATH_MAX], cmd[2 * PATH_MAX + 16];

	dp_journal_close(rotated(t, ROT_N));
	seg_path(t, 1, p0, sizeof(p0));
	/* a copy of segment 0 under the name the next segment would have */
	seg_path(t, ROT_N + 1, dup, sizeof(dup));
	snprintf(cmd, sizeof(cmd), "cp '%s' '%s'", p0, dup);
	assert_int_equal(system(cmd), 0);
	expect_damage(t, DP_JOURNAL_E_NAME, dup, 32);
	/* a copy of segment 1 under its own name but in place of segment 2:
	 * the sequence goes backwards */
	unlink(dup);
	{
		char p1[PATH_MAX], p2[PATH_MAX];

		seg_path(t, ROT_PER_SEG + 1, p1, sizeof(p1));
		seg_path(t, LAST_FIRST, p2, sizeof(p2));
		snprintf(cmd, sizeof(cmd), "cp '%s' '%s'", p1, p2);
		assert_int_equal(system(cmd), 0);
		expect_damage(t, DP_JOURNAL_E_NAME, p2, 32);
	}
}

static void
test_foreign_segment(void **state)
{
	struct jt *t = *state;
	struct dp_journal *j;
	char p[PATH_MAX], other[80], cmd[2 * PATH_MAX + 16];

	dp_journal_close(rotated(t, ROT_N));
	/* another journal's segment with the same seqs and the same name */
	snprintf(other, sizeof(other), "%s/other", t->dir);
	j = new_journal(other, ROT_SEG, ROT_BATCH, 1);
	write_range(j, 1, ROT_N, ROT_BATCH);
	dp_journal_close(j);
	seg_path(t, ROT_PER_SEG + 1, p, sizeof(p));
	snprintf(cmd, sizeof(cmd), "cp '%s/seg-%020u.jnl' '%s'", other,
		 ROT_PER_SEG + 1, p);
	assert_int_equal(system(cmd), 0);
	expect_damage(t, DP_JOURNAL_E_CHAIN, p, 24);
}

/* --- torn tails ------------------------------------------------------------ */

static void
check_cut(struct jt *t, const char *path, uint64_t off, uint64_t last_seq)
{
	struct dp_journal_scan res;
	struct dp_journal_err err;
	struct dp_journal *j;
	char e[256];

	scan_ok(t, &res);
	assert_true(res.torn);
	assert_string_equal(res.torn_path, path);
	assert_int_equal(res.torn_off, off);
	assert_int_equal(res.last_seq, last_seq);
	assert_int_equal(res.end_off, off);
	assert_int_equal(dp_journal_cut_tail(t->dir, &res, &err), 0);
	assert_int_equal(file_size(path), off);
	scan_ok(t, &res);
	assert_false(res.torn);
	assert_int_equal(res.last_seq, last_seq);
	/* appending goes on from the cut */
	assert_int_equal(dp_journal_open(t->dir, &(struct dp_journal_opts){
						     .segment_bytes = ROT_SEG,
						     .batch_max = ROT_BATCH},
					 &res, last_seq + 1, &j, e, sizeof(e)),
			 0);
	write_range(j, last_seq + 1, 10, ROT_BATCH);
	dp_journal_close(j);
	scan_ok(t, &res);
	assert_int_equal(res.last_seq, last_seq + 10);
}

static void
test_torn_partial_record(void **state)
{
	struct jt *t = *state;
	char p[PATH_MAX];

	dp_journal_close(rotated(t, ROT_N));
	seg_path(t, LAST_FIRST, p, sizeof(p));
	/* 200 records in the last segment: cut inside the last one */
	truncate_to(p, HDR + 199 * REC + 77);
	check_cut(t, p, HDR + 199 * REC, ROT_N - 1);
}

static void
test_torn_zeroed_records(void **state)
{
	struct jt *t = *state;
	uint8_t zero[5 * REC];
	char p[PATH_MAX];

	memset(zero, 0, sizeof(zero));
	dp_journal_close(rotated(t, ROT_N));
	seg_path(t, LAST_FIRST, p, sizeof(p));
	/* the file was extended, the last 5 records never reached the disk */
	file_patch(p, HDR + 195 * REC, zero, sizeof(zero));
	check_cut(t, p, HDR + 195 * REC, ROT_N - 5);
}

static void
test_torn_too_long_is_damage(void **state)
{
	struct jt *t = *state;
	uint8_t *zero = calloc(150, REC);
	char p[PATH_MAX];

	dp_journal_close(rotated(t, ROT_N));
	seg_path(t, LAST_FIRST, p, sizeof(p));
	/* 150 invalid records at the end: more than one batch of 100 */
	file_patch(p, HDR + 50 * REC, zero, 150 * REC);
	free(zero);
	expect_damage(t, DP_JOURNAL_E_BAD_CHECKSUM, p, HDR + 50 * REC);
}

static void
test_torn_segment_header(void **state)
{
	struct jt *t = *state;
	struct dp_journal_scan res;
	struct dp_journal_err err;
	char p[PATH_MAX], last[PATH_MAX];
	int fd;

	dp_journal_close(rotated(t, ROT_N));
	/* a rotation that crashed while writing the new header */
	seg_path(t, ROT_N + 1, p, sizeof(p));
	fd = open(p, O_WRONLY | O_CREAT, 0644);
	assert_true(fd >= 0);
	assert_int_equal(write(fd, "AUTHJR", 6), 6);
	close(fd);
	scan_ok(t, &res);
	assert_true(res.torn);
	assert_true(res.torn_whole);
	assert_string_equal(res.torn_path, p);
	assert_int_equal(res.last_seq, ROT_N);
	seg_path(t, LAST_FIRST, last, sizeof(last));
	assert_string_equal(res.last_path, last);
	assert_int_equal(dp_journal_cut_tail(t->dir, &res, &err), 0);
	assert_int_equal(access(p, F_OK), -1);
	scan_ok(t, &res);
	assert_false(res.torn);
	assert_int_equal(res.n_segments, 3);
}

/* --- the index ------------------------------------------------------------- */

static void
test_index_mismatch(void **state)
{
	struct jt *t = *state;
	struct dp_journal_scan res;
	struct dp_journal_err err;
	char p[PATH_MAX], ix[PATH_MAX], save[PATH_MAX], cmd[3 * PATH_MAX + 16];

	dp_journal_close(rotated(t, ROT_N));
	snprintf(ix, sizeof(ix), "%s/journal.idx", t->dir);
	snprintf(save, sizeof(save), "%s/saved.idx", t->dir);
	snprintf(cmd, sizeof(cmd), "cp '%s' '%s'", ix, save);
	assert_int_equal(system(cmd), 0);
	/* the newest segment lost: the index says its predecessor is closed */
	seg_path(t, LAST_FIRST, p, sizeof(p));
	snprintf(cmd, sizeof(cmd), "mv '%s' '%s.away'", p, p);
	assert_int_equal(system(cmd), 0);
	expect_damage(t, DP_JOURNAL_E_INDEX, ix, 0);
	snprintf(cmd, sizeof(cmd), "mv '%s.away' '%s'", p, p);
	assert_int_equal(system(cmd), 0);
	scan_ok(t, &res);
	/* no index with several segments */
	unlink(ix);
	expect_damage(t, DP_JOURNAL_E_INDEX, ix, 0);
	/* an index damaged */
	snprintf(cmd, sizeof(cmd), "sed 's/ 500$/ 499/' '%s' > '%s'", save, ix);
	assert_int_equal(system(cmd), 0);
	expect_damage(t, DP_JOURNAL_E_INDEX, ix, 0);
	/* an index that lacks the newest segment (crash in a rotation):
	 * tolerated, and rewritten by the repair */
	{
		struct jnl_index_ent e[2];
		struct dp_journal_hdr h;

		assert_int_equal(dp_journal_read_hdr(p, &h, &err), 0);
		memset(e, 0, sizeof(e));
		jnl_seg_name(e[0].name, sizeof(e[0].name), 1);
		e[0].first_seq = 1;
		e[0].last_seq = ROT_PER_SEG;
		jnl_seg_name(e[1].name, sizeof(e[1].name), ROT_PER_SEG + 1);
		e[1].segment_no = 1;
		e[1].first_seq = ROT_PER_SEG + 1;
		e[1].open = true;
		assert_int_equal(jnl_index_write(t->dir, e, 2, h.journal_id), 0);
	}
	scan_ok(t, &res);
	assert_true(res.index_stale);
	assert_false(res.torn);
	assert_int_equal(dp_journal_cut_tail(t->dir, &res, &err), 0);
	scan_ok(t, &res);
	assert_false(res.index_stale);
	snprintf(cmd, sizeof(cmd), "cmp -s '%s' '%s'", ix, save);
	assert_int_equal(system(cmd), 0);
}

static void
test_empty_and_missing(void **state)
{
	struct jt *t = *state;
	struct dp_journal_scan res;
	struct dp_journal_err err;
	char missing[96];

	scan_ok(t, &res);
	assert_int_equal(res.n_segments, 0);
	assert_int_equal(res.last_seq, 0);
	snprintf(missing, sizeof(missing), "%s/nope", t->dir);
	assert_int_equal(dp_journal_scan(missing, 0, 0, NULL, NULL, &res, &err),
			 -ENOENT);
}

/* --- failures are sticky ---------------------------------------------------- */

static void
test_sync_failure_sticky(void **state)
{
	struct jt *t = *state;
	struct dp_journal *j = new_journal(t->dir, 0, 16, 1);
	struct lim_effect e = eff(11);

	write_range(j, 1, 10, 16);
	assert_string_equal(dp_journal_failure(j), "");
	assert_int_equal(dp_journal_append(j, &e, 1), 0);
	dp_journal_inject_sync_error(j, EIO);
	assert_int_equal(dp_journal_sync(j), -EIO);
	assert_non_null(strstr(dp_journal_failure(j), "fdatasync"));
	assert_non_null(strstr(dp_journal_failure(j), "Input/output error"));
	/* never again, even if the next call would work */
	e = eff(12);
	assert_int_equal(dp_journal_append(j, &e, 1), -EIO);
	assert_int_equal(dp_journal_sync(j), -EIO);
	dp_journal_close(j);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_round_trip, setup, teardown),
		cmocka_unit_test_setup_teardown(test_header_fields, setup, teardown),
		cmocka_unit_test_setup_teardown(test_rotation_and_index, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_reopen_append, setup, teardown),
		cmocka_unit_test_setup_teardown(test_bad_checksum_mid_file, setup,
						teardown),
		cmocka_unit_test_setup_teardown(
			test_bad_checksum_last_segment_valid_after, setup, teardown),
		cmocka_unit_test_setup_teardown(test_seq_gap_and_order, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_bad_record_kind, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_bad_header, setup, teardown),
		cmocka_unit_test_setup_teardown(test_truncated_middle_segment, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_duplicate_segment, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_foreign_segment, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_torn_partial_record, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_torn_zeroed_records, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_torn_too_long_is_damage, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_torn_segment_header, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_index_mismatch, setup, teardown),
		cmocka_unit_test_setup_teardown(test_empty_and_missing, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_sync_failure_sticky, setup,
						teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
