/*
 * journal_scan.c - the journal reader: every segment of a directory,
 * verified in order, each record handed to a visitor; and the cut of a
 * torn tail (format: journal.c, docs/journal-format.md).
 *
 * Torn tail vs damage. The writer appends a batch with one write and makes
 * it durable with one fdatasync; a crash (or a failed write) can leave at
 * most the batch in flight partly written: records that do not verify,
 * or a partial record, at the very end of the last segment. So invalid
 * bytes at the end of the last segment, with no record verifying after
 * them and no longer than one batch (+ a file system block), are a torn
 * tail and are cut. Anything else that does not verify is damage and is
 * refused with the file, the byte offset and the reason. A record whose
 * checksum verifies but whose seq is wrong is never torn: the writer never
 * writes one. A newest segment whose header is torn holds no record and
 * is removed. The index is checked against the segments: it may lack the
 * newest one (a crash in a rotation: stale, rewritten by the repair), never
 * list one that is not there.
 *
 * Segments before from_seq are only skimmed (size and last record, for the
 * chain); records are read SCAN_CHUNK at a time.
 *
 * Concurrency: a reader may read a journal that is being written
 * (authjournal): the end of the active segment may then look like a torn
 * tail, which a reader only reports; only start-up, before the writer
 * opens, cuts it.
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "journal_pvt.h"

#define SCAN_CHUNK 8192u              /* records read at once (1 MiB) */

struct scan_ctx {
	const char *dir;
	uint64_t from_seq;
	unsigned flags;
	dp_journal_visit_fn fn;
	void *arg;
	struct dp_journal_scan *res;
	struct dp_journal_err *err;
	uint8_t *buf;              /* SCAN_CHUNK records */
	/* the chain so far */
	bool have_prev;
	uint64_t journal_id;
	uint64_t next_seq;         /* expected seq of the next record */
	uint64_t next_segment_no;
	uint32_t last_check;
	/* per segment, for the index check */
	uint64_t *seg_last;        /* last seq of each segment */
	uint64_t *seg_no;
};

/* Where a segment's header sits in the chain. */
static int
chain_check(struct scan_ctx *c, const struct dp_journal_hdr *h,
	    const struct jnl_seg *s, const char *path)
{
	char want[JNL_SEG_NAME_LEN + 1];

	jnl_seg_name(want, sizeof(want), h->first_seq);
	if (strcmp(want, s->name))
		return jnl_err(c->err, DP_JOURNAL_E_NAME, path, 32,
			       "header says first seq %" PRIu64 " (%s)",
			       h->first_seq, want);
	if (!c->have_prev)
		return 0;
	if (h->journal_id != c->journal_id)
		return jnl_err(c->err, DP_JOURNAL_E_CHAIN, path, 24,
			       "journal id %016" PRIx64 ", the journal's is "
			       "%016" PRIx64, h->journal_id, c->journal_id);
	if (h->first_seq != c->next_seq)
		return jnl_err(c->err,
			       h->first_seq > c->next_seq ? DP_JOURNAL_E_SEQ_GAP
						       : DP_JOURNAL_E_SEQ_ORDER,
			       path, 32,
			       "segment starts at seq %" PRIu64 ", expected %" PRIu64,
			       h->first_seq, c->next_seq);
	if (h->segment_no != c->next_segment_no)
		return jnl_err(c->err, DP_JOURNAL_E_CHAIN, path, 40,
			       "segment number %" PRIu64 ", expected %" PRIu64,
			       h->segment_no, c->next_segment_no);
	if (h->prev_check != c->last_check)
		return jnl_err(c->err, DP_JOURNAL_E_CHAIN, path, 64,
			       "previous check %08x, the previous segment ends "
			       "with %08x", h->prev_check, c->last_check);
	return 0;
}

/* A record at @p off whose checksum verified: its seq and kind. */
static int
rec_accept(struct scan_ctx *c, const uint8_t *rec, const char *path,
	   uint64_t off)
{
	uint64_t seq = jnl_rec_seq(rec);
	int rc;

	if (seq != c->next_seq)
		return jnl_err(c->err,
			       seq > c->next_seq ? DP_JOURNAL_E_SEQ_GAP
					      : DP_JOURNAL_E_SEQ_ORDER,
			       path, off, "seq %" PRIu64 ", expected %" PRIu64, seq,
			       c->next_seq);
	if (jnl_rec_kind(rec) == LIM_EFF_NONE || jnl_rec_kind(rec) >= LIM_EFF_KINDS)
		return jnl_err(c->err, DP_JOURNAL_E_BAD_RECORD, path, off,
			       "seq %" PRIu64 ": kind %u", seq, jnl_rec_kind(rec));
	c->next_seq++;
	c->last_check = jnl_rec_check(rec);
	c->res->records++;
	if (c->fn && seq >= c->from_seq) {
		c->res->visited++;
		rc = c->fn((const struct lim_effect *)rec, c->arg);
		if (rc)
			return rc;
	}
	return 0;
}

/* Does any record slot in [from, n) of the segment verify? */
static int
any_valid_after(struct scan_ctx *c, int fd, const char *path, uint64_t from,
		uint64_t n, uint64_t *found)
{
	for (uint64_t i = from; i < n;) {
		unsigned k = n - i > SCAN_CHUNK ? SCAN_CHUNK : (unsigned)(n - i);
		int rc = jnl_pread_full(fd, c->buf, (size_t)k * DP_JOURNAL_REC_LEN,
					DP_JOURNAL_HDR_LEN + i * DP_JOURNAL_REC_LEN);

		if (rc)
			return jnl_err_io(c->err, path, 0, "read", -rc);
		for (unsigned j = 0; j < k; j++)
			if (jnl_rec_valid(c->buf + (size_t)j * DP_JOURNAL_REC_LEN,
					  c->journal_id)) {
				*found = i + j;
				return 1;
			}
		i += k;
	}
	return 0;
}

/*
 * Record @p k of the last segment did not verify: a torn tail if nothing
 * valid follows and it is at most one batch, else damage.
 */
static int
torn_or_damage(struct scan_ctx *c, int fd, const char *path,
	       const struct dp_journal_hdr *h, const struct jnl_seg *s,
	       uint64_t k, uint64_t n_full, const char *why)
{
	uint64_t off = DP_JOURNAL_HDR_LEN + k * DP_JOURNAL_REC_LEN, found = 0;
	uint64_t bytes = s->size - off;
	int rc = any_valid_after(c, fd, path, k + 1, n_full, &found);

	if (rc < 0)
		return rc;
	if (rc > 0)
		return jnl_err(c->err, DP_JOURNAL_E_BAD_CHECKSUM, path, off,
			       "%s, and a valid record follows at offset %" PRIu64
			       ": damage, not a torn write", why,
			       DP_JOURNAL_HDR_LEN + found * DP_JOURNAL_REC_LEN);
	if (bytes > (uint64_t)h->batch_max * DP_JOURNAL_REC_LEN +
			    DP_JOURNAL_TORN_SLACK)
		return jnl_err(c->err, DP_JOURNAL_E_BAD_CHECKSUM, path, off,
			       "%s, and %" PRIu64 " invalid bytes to the end: more "
			       "than one write of %u records", why, bytes,
			       h->batch_max);
	c->res->torn = true;
	snprintf(c->res->torn_path, sizeof(c->res->torn_path), "%s", path);
	c->res->torn_off = off;
	c->res->torn_bytes = bytes;
	snprintf(c->res->torn_why, sizeof(c->res->torn_why), "%s", why);
	return 0;
}

/* Verify records [0, n_full) of a segment and its tail. */
static int
scan_records(struct scan_ctx *c, int fd, const char *path,
	     const struct dp_journal_hdr *h, const struct jnl_seg *s, bool last,
	     uint64_t *valid)
{
	uint64_t n_full = (s->size - DP_JOURNAL_HDR_LEN) / DP_JOURNAL_REC_LEN;
	uint64_t partial = (s->size - DP_JOURNAL_HDR_LEN) % DP_JOURNAL_REC_LEN;
	int rc;

	for (uint64_t i = 0; i < n_full;) {
		unsigned k = n_full - i > SCAN_CHUNK ? SCAN_CHUNK
						     : (unsigned)(n_full - i);

		rc = jnl_pread_full(fd, c->buf, (size_t)k * DP_JOURNAL_REC_LEN,
				    DP_JOURNAL_HDR_LEN + i * DP_JOURNAL_REC_LEN);
		if (rc)
			return jnl_err_io(c->err, path, 0, "read", -rc);
		for (unsigned j = 0; j < k; j++, i++) {
			const uint8_t *rec = c->buf + (size_t)j * DP_JOURNAL_REC_LEN;
			uint64_t off = DP_JOURNAL_HDR_LEN + i * DP_JOURNAL_REC_LEN;

			if (!jnl_rec_valid(rec, c->journal_id)) {
				*valid = i;
				if (!last)
					return jnl_err(c->err,
						       DP_JOURNAL_E_BAD_CHECKSUM,
						       path, off,
						       "record checksum does not "
						       "verify (expected seq %" PRIu64
						       ")", c->next_seq);
				return torn_or_damage(c, fd, path, h, s, i,
						      n_full,
						      "record checksum does not "
						      "verify");
			}
			rc = rec_accept(c, rec, path, off);
			if (rc)
				return rc;
		}
	}
	*valid = n_full;
	if (!partial)
		return 0;
	if (!last)
		return jnl_err(c->err, DP_JOURNAL_E_TRUNCATED, path,
			       DP_JOURNAL_HDR_LEN + n_full * DP_JOURNAL_REC_LEN,
			       "%" PRIu64 " bytes of a record", partial);
	return torn_or_damage(c, fd, path, h, s, n_full, n_full,
			      "truncated record");
}

/* A segment before from_seq: size, and its last record (for the chain). */
static int
skim_records(struct scan_ctx *c, int fd, const char *path,
	     const struct jnl_seg *s, uint64_t *valid)
{
	uint64_t n_full = (s->size - DP_JOURNAL_HDR_LEN) / DP_JOURNAL_REC_LEN;
	uint64_t off = DP_JOURNAL_HDR_LEN + (n_full - 1) * DP_JOURNAL_REC_LEN;
	uint8_t rec[DP_JOURNAL_REC_LEN];
	int rc;

	if ((s->size - DP_JOURNAL_HDR_LEN) % DP_JOURNAL_REC_LEN)
		return jnl_err(c->err, DP_JOURNAL_E_TRUNCATED, path,
			       DP_JOURNAL_HDR_LEN + n_full * DP_JOURNAL_REC_LEN,
			       "size %" PRIu64 " is not header + whole records",
			       s->size);
	*valid = n_full;
	if (n_full == 0)
		return 0;
	rc = jnl_pread_full(fd, rec, sizeof(rec), off);
	if (rc)
		return jnl_err_io(c->err, path, off, "read", -rc);
	if (!jnl_rec_valid(rec, c->journal_id))
		return jnl_err(c->err, DP_JOURNAL_E_BAD_CHECKSUM, path, off,
			       "last record's checksum does not verify");
	if (jnl_rec_seq(rec) != c->next_seq + n_full - 1)
		return jnl_err(c->err, DP_JOURNAL_E_SEQ_GAP, path, off,
			       "last record has seq %" PRIu64 ", expected %" PRIu64,
			       jnl_rec_seq(rec), c->next_seq + n_full - 1);
	c->next_seq += n_full;
	c->last_check = jnl_rec_check(rec);
	return 0;
}

/* The header of the last segment is torn: a segment with no record. */
static bool
torn_header(const struct jnl_seg *s, bool last)
{
	return last && s->size <= DP_JOURNAL_HDR_LEN;
}

static int
scan_segment(struct scan_ctx *c, const struct jnl_seg *s, unsigned i, bool last)
{
	struct dp_journal_scan *res = c->res;
	struct dp_journal_hdr h;
	char path[PATH_MAX];
	uint64_t valid = 0, first_here;
	bool verify;
	int fd, rc;

	if (jnl_path_join(path, sizeof(path), c->dir, s->name))
		return -ENAMETOOLONG;
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return jnl_err_io(c->err, path, 0, "open", errno);
	rc = s->size < DP_JOURNAL_HDR_LEN ? -ENODATA
					  : jnl_pread_full(fd, &h, sizeof(h), 0);
	if (rc && rc != -ENODATA) {
		close(fd);
		return jnl_err_io(c->err, path, 0, "read", -rc);
	}
	if ((rc || jnl_hdr_check(&h, path, NULL)) && torn_header(s, last)) {
		close(fd);
		res->torn = res->torn_whole = true;
		snprintf(res->torn_path, sizeof(res->torn_path), "%s", path);
		res->torn_off = 0;
		res->torn_bytes = s->size;
		snprintf(res->torn_why, sizeof(res->torn_why),
			 "segment header incomplete (%" PRIu64 " bytes)", s->size);
		return 0;
	}
	if (rc)
		rc = jnl_err(c->err, DP_JOURNAL_E_BAD_HEADER, path, 0,
			     "shorter than a header");
	else
		rc = jnl_hdr_check(&h, path, c->err);
	if (!rc)
		rc = chain_check(c, &h, s, path);
	if (rc) {
		close(fd);
		return rc;
	}
	if (!c->have_prev) {
		c->have_prev = true;
		c->journal_id = h.journal_id;
		c->next_seq = h.first_seq;
		c->last_check = h.prev_check;
		res->journal_id = h.journal_id;
		res->first_seq = h.first_seq;
	}
	c->next_segment_no = h.segment_no + 1;
	first_here = h.first_seq;
	verify = last || (c->flags & DP_JOURNAL_SCAN_ALL) ||
		 first_here + (s->size - DP_JOURNAL_HDR_LEN) /
				      DP_JOURNAL_REC_LEN > c->from_seq;
	rc = verify ? scan_records(c, fd, path, &h, s, last, &valid)
		    : skim_records(c, fd, path, s, &valid);
	close(fd);
	if (rc)
		return rc;
	c->seg_last[i] = first_here + valid - 1;
	c->seg_no[i] = h.segment_no;
	res->n_segments++;
	res->bytes += s->size;
	snprintf(res->last_path, sizeof(res->last_path), "%s", path);
	res->last_segment_no = h.segment_no;
	res->last_first_seq = first_here;
	res->end_off = DP_JOURNAL_HDR_LEN + valid * DP_JOURNAL_REC_LEN;
	res->last_check = c->last_check;
	res->batch_max = h.batch_max;
	return 0;
}

/* The index against what the segments say. */
static int
index_check(struct scan_ctx *c, const struct jnl_seg *s, unsigned n)
{
	struct dp_journal_scan *res = c->res;
	unsigned live = n - (res->torn_whole ? 1 : 0);
	struct jnl_index ix;
	char path[PATH_MAX];
	int rc = jnl_index_read(c->dir, &ix, c->err);

	if (rc)
		return rc;
	jnl_path_join(path, sizeof(path), c->dir, DP_JOURNAL_INDEX);
	if (!ix.present) {
		if (live > 1)
			return jnl_err(c->err, DP_JOURNAL_E_INDEX, path, 0,
				       "missing, with %u segments", live);
		if (live == 1) {
			res->index_stale = true;
			snprintf(res->index_note, sizeof(res->index_note),
				 "index missing (crash while creating the "
				 "journal): rewritten");
		}
		return 0;
	}
	if (live == 0 && ix.n) {
		rc = jnl_err(c->err, DP_JOURNAL_E_INDEX, path, 0,
			     "lists %u segments, none exists", ix.n);
		goto out;
	}
	if (live && ix.journal_id != res->journal_id) {
		rc = jnl_err(c->err, DP_JOURNAL_E_INDEX, path, 0,
			     "journal id %016" PRIx64 ", the segments' is %016" PRIx64,
			     ix.journal_id, res->journal_id);
		goto out;
	}
	/* A crash during a rotation: the index lacks the newest segment. */
	if (ix.n + 1 == live && live >= 2) {
		res->index_stale = true;
		snprintf(res->index_note, sizeof(res->index_note),
			 "index lacks the newest segment %s (crash during a "
			 "rotation): rewritten", s[live - 1].name);
	} else if (ix.n != live) {
		rc = jnl_err(c->err, DP_JOURNAL_E_INDEX, path, 0,
			     "lists %u segments, the directory has %u", ix.n, live);
		goto out;
	}
	for (unsigned i = 0; i < ix.n; i++) {
		const struct jnl_index_ent *e = &ix.e[i];
		bool newest = i + 1 == live, ok;

		if (strcmp(e->name, s[i].name) || e->first_seq != s[i].first_seq ||
		    e->segment_no != c->seg_no[i]) {
			rc = jnl_err(c->err, DP_JOURNAL_E_INDEX, path, 0,
				     "entry %u is %s (no %" PRIu64 "), the directory "
				     "has %s (no %" PRIu64 ")", i, e->name,
				     e->segment_no, s[i].name, c->seg_no[i]);
			goto out;
		}
		if (newest)
			ok = e->open;
		else if (e->open)
			ok = res->index_stale && i + 1 == ix.n;
		else
			ok = e->last_seq == c->seg_last[i];
		if (!ok) {
			rc = jnl_err(c->err, DP_JOURNAL_E_INDEX, path, 0,
				     "entry %u (%s) says %s%s", i, e->name,
				     e->open ? "open" : "closed",
				     newest ? " but it is the newest segment: "
					   "segments after it are missing"
					 : ", the segment ends elsewhere");
			goto out;
		}
	}
out:
	jnl_index_free(&ix);
	return rc;
}

int
dp_journal_scan(const char *dir, uint64_t from_seq, unsigned flags,
		dp_journal_visit_fn fn, void *arg, struct dp_journal_scan *res,
		struct dp_journal_err *err)
{
	struct scan_ctx c = {.dir = dir, .from_seq = from_seq, .flags = flags,
			     .fn = fn, .arg = arg, .res = res, .err = err};
	struct jnl_seg *s = NULL;
	unsigned n = 0;
	int rc;

	memset(res, 0, sizeof(*res));
	if (err)
		memset(err, 0, sizeof(*err));
	rc = jnl_list_segments(dir, &s, &n, err);
	if (rc == -ENOENT)
		jnl_err_io(err, dir, 0, "journal directory", ENOENT);
	if (rc)
		return rc;
	c.buf = malloc((size_t)SCAN_CHUNK * DP_JOURNAL_REC_LEN);
	c.seg_last = calloc(n + 1, sizeof(uint64_t));
	c.seg_no = calloc(n + 1, sizeof(uint64_t));
	if (!c.buf || !c.seg_last || !c.seg_no) {
		rc = jnl_err_io(err, dir, 0, "scan", ENOMEM);
		goto out;
	}
	for (unsigned i = 0; i < n && rc == 0; i++)
		rc = scan_segment(&c, &s[i], i, i + 1 == n);
	if (rc == 0)
		rc = index_check(&c, s, n);
	if (rc == 0 && res->n_segments == 0)
		res->first_seq = 0;
	res->last_seq = res->n_segments ? c.next_seq - 1 : 0;
out:
	free(c.buf);
	free(c.seg_last);
	free(c.seg_no);
	free(s);
	return rc;
}

int
dp_journal_cut_tail(const char *dir, struct dp_journal_scan *res,
		    struct dp_journal_err *err)
{
	int fd, rc = 0;

	if (res->torn && res->torn_whole) {
		if (unlink(res->torn_path))
			return jnl_err_io(err, res->torn_path, 0, "unlink", errno);
	} else if (res->torn) {
		fd = open(res->torn_path, O_WRONLY | O_CLOEXEC);
		if (fd < 0)
			return jnl_err_io(err, res->torn_path, 0, "open", errno);
		if (ftruncate(fd, (off_t)res->torn_off) || fdatasync(fd))
			rc = jnl_err_io(err, res->torn_path, res->torn_off,
					"truncate", errno);
		close(fd);
		if (rc)
			return rc;
	}
	if (res->torn && (rc = lim_fsync_dir(dir, NULL, 0)) != 0)
		return jnl_err_io(err, dir, 0, "fsync", -rc);
	if (res->torn || res->index_stale)
		rc = jnl_index_rebuild(dir, err);
	if (rc)
		return rc;
	res->torn = res->torn_whole = false;
	res->index_stale = false;
	return 0;
}
