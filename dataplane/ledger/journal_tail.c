/*
 * journal_tail.c - a reader that follows a live journal from one seq on:
 * the export (export/export.c) and anything else that streams durable
 * records while the ledger appends (docs/journal-format.md).
 *
 * Why not dp_journal_scan(): a scan checks the whole journal (index, every
 * header, the chain) and re-reads the segment that holds its start, which
 * costs a 256 MiB read per poll of a follower. The tail reader opens one
 * segment at a time, checks its header (dp_journal_read_hdr), each record's
 * checksum and seq, and the chain into the next segment (segment number,
 * first seq, prev_check), so what it hands out has passed the same checks
 * a scan makes, in O(records read).
 *
 * It reads only what its caller says is durable (@p upto): the writer's
 * unsynced tail is never read. No DPDK, no locks; one thread per tail.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "journal_pvt.h"

#define TAIL_READ_BATCH 256u        /* records per pread */

struct dp_journal_tail {
	char dir[PATH_MAX];
	int fd;                     /* the segment being read; -1 none */
	char path[PATH_MAX + 32];
	uint64_t journal_id;
	uint64_t first_seq;         /* the segment's */
	uint64_t segment_no;
	uint64_t next;              /* next seq to hand out */
	uint32_t last_check;        /* check of record next - 1 (chain) */
	uint32_t prev_check;        /* the segment header's */
	bool have_last;
	unsigned head, n;           /* buffered records */
	struct lim_effect buf[TAIL_READ_BATCH];
};

struct dp_journal_tail *
dp_journal_tail_open(const char *dir)
{
	struct dp_journal_tail *t = calloc(1, sizeof(*t));

	if (!t)
		return NULL;
	snprintf(t->dir, sizeof(t->dir), "%s", dir);
	t->fd = -1;
	return t;
}

static void
tail_close_seg(struct dp_journal_tail *t)
{
	if (t->fd >= 0)
		close(t->fd);
	t->fd = -1;
	t->head = t->n = 0;
}

void
dp_journal_tail_close(struct dp_journal_tail *t)
{
	if (!t)
		return;
	tail_close_seg(t);
	free(t);
}

/* The path of the segment starting at @p first (journal.c's naming). */
static void
seg_path(const struct dp_journal_tail *t, uint64_t first, char *path,
	 size_t n)
{
	char name[JNL_SEG_NAME_LEN + 1];

	jnl_seg_name(name, sizeof(name), first);
	snprintf(path, n, "%s/%s", t->dir, name);
}

static int
open_seg(struct dp_journal_tail *t, const char *path, char *why, size_t n)
{
	struct dp_journal_hdr h;
	struct dp_journal_err je;
	int fd;

	if (dp_journal_read_hdr(path, &h, &je)) {
		snprintf(why, n, "journal: %s", je.why);
		return -EBADMSG;
	}
	if (t->journal_id && h.journal_id != t->journal_id) {
		snprintf(why, n, "journal: %s: journal id %016" PRIx64 ", the "
			 "journal's is %016" PRIx64, path, h.journal_id,
			 t->journal_id);
		return -EBADMSG;
	}
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0) {
		int rc = -errno;

		snprintf(why, n, "journal: %s: %s", path, strerror(errno));
		return rc;
	}
	tail_close_seg(t);
	t->fd = fd;
	snprintf(t->path, sizeof(t->path), "%s", path);
	t->journal_id = h.journal_id;
	t->first_seq = h.first_seq;
	t->segment_no = h.segment_no;
	t->prev_check = h.prev_check;
	return 0;
}

int
dp_journal_first_seqs(const char *dir, uint64_t *lo, uint64_t *hi_le,
		      uint64_t seq)
{
	uint64_t low = UINT64_MAX, best = 0, first;
	struct dirent *de;
	DIR *d = opendir(dir);

	if (!d)
		return -errno;
	while ((de = readdir(d)) != NULL) {
		if (dp_journal_seg_parse(de->d_name, &first) != 1)
			continue;
		if (first < low)
			low = first;
		if (first <= seq && first > best)
			best = first;
	}
	closedir(d);
	if (lo)
		*lo = low == UINT64_MAX ? 0 : low;
	if (hi_le)
		*hi_le = best;
	return 0;
}

int
dp_journal_tail_seek(struct dp_journal_tail *t, uint64_t seq, char *why,
		     size_t n)
{
	uint64_t best = 0;
	char path[PATH_MAX + 32];
	int rc = dp_journal_first_seqs(t->dir, NULL, &best, seq);

	if (rc) {
		snprintf(why, n, "journal: %s: %s", t->dir, strerror(-rc));
		return rc;
	}
	if (!best) {
		snprintf(why, n, "journal: %s holds no segment with seq %" PRIu64,
			 t->dir, seq);
		return -ENOENT;
	}
	seg_path(t, best, path, sizeof(path));
	t->journal_id = 0;
	if (open_seg(t, path, why, n))
		return -EBADMSG;
	t->next = seq == UINT64_MAX ? t->first_seq : seq;
	t->have_last = false;
	return 0;
}

/* The next segment, named by its first seq; chained to the one read. */
static int
next_seg(struct dp_journal_tail *t, char *why, size_t n)
{
	char path[PATH_MAX + 32];
	uint64_t no = t->segment_no;
	int rc;

	seg_path(t, t->next, path, sizeof(path));
	if (access(path, R_OK)) {
		snprintf(why, n, "journal: seq %" PRIu64 " is durable but "
			 "segment %s, which must hold it, is missing", t->next,
			 strrchr(path, '/') + 1);
		return -ENOENT;
	}
	rc = open_seg(t, path, why, n);
	if (rc)
		return rc;
	if (t->segment_no != no + 1 || t->first_seq != t->next ||
	    (t->have_last && t->prev_check != t->last_check)) {
		snprintf(why, n, "journal: %s does not follow segment %" PRIu64,
			 path, no);
		return -EBADMSG;
	}
	return 0;
}

static int
verify(struct dp_journal_tail *t, const struct lim_effect *r, uint64_t off,
       char *why, size_t n)
{
	if (r->seq != t->next || r->kind == 0 || r->kind >= LIM_EFF_KINDS ||
	    dp_journal_check(r, t->journal_id) != r->check) {
		snprintf(why, n, "journal: %s:%" PRIu64 ": record does not verify "
			 "(seq %" PRIu64 " expected, kind %u)", t->path, off,
			 t->next, r->kind);
		return -EBADMSG;
	}
	return 0;
}

/* Fill the buffer with records next .. upto (at most a batch). */
static int
fill(struct dp_journal_tail *t, uint64_t upto, char *why, size_t n)
{
	uint64_t want = upto - t->next + 1, off;
	ssize_t k;
	int rc;

	if (want > TAIL_READ_BATCH)
		want = TAIL_READ_BATCH;
	for (unsigned tries = 0;; tries++) {
		off = DP_JOURNAL_HDR_LEN + (t->next - t->first_seq) * DP_JOURNAL_REC_LEN;
		k = pread(t->fd, t->buf, want * DP_JOURNAL_REC_LEN, (off_t)off);
		if (k < 0) {
			rc = -errno;
			snprintf(why, n, "journal: %s: read: %s", t->path,
				 strerror(errno));
			return rc;
		}
		if (k >= (ssize_t)DP_JOURNAL_REC_LEN)
			break;
		if (tries) {
			snprintf(why, n, "journal: seq %" PRIu64 " is durable but "
				 "%s ends before it", t->next, t->path);
			return -EBADMSG;
		}
		/* this segment ends before next: the next segment holds it */
		if ((rc = next_seg(t, why, n)) != 0)
			return rc;
	}
	t->head = 0;
	t->n = (unsigned)((uint64_t)k / DP_JOURNAL_REC_LEN);
	return 0;
}

int
dp_journal_tail_get(struct dp_journal_tail *t, uint64_t upto,
		    const struct lim_effect **out, char *why, size_t n)
{
	const struct lim_effect *r;
	uint64_t off;
	int rc;

	if (t->fd < 0) {
		snprintf(why, n, "journal: %s: not positioned", t->dir);
		return -EINVAL;
	}
	if (t->next > upto)
		return 0;
	if (!t->n && (rc = fill(t, upto, why, n)) != 0)
		return rc;
	r = &t->buf[t->head];
	off = DP_JOURNAL_HDR_LEN + (t->next - t->first_seq) * DP_JOURNAL_REC_LEN;
	if (verify(t, r, off, why, n))
		return -EBADMSG;
	*out = r;
	return 1;
}

void
dp_journal_tail_advance(struct dp_journal_tail *t)
{
	t->last_check = t->buf[t->head].check;
	t->have_last = true;
	t->head++;
	t->n--;
	t->next++;
}

uint64_t
dp_journal_tail_id(const struct dp_journal_tail *t)
{
	return t->journal_id;
}

uint64_t
dp_journal_tail_next(const struct dp_journal_tail *t)
{
	return t->next;
}
