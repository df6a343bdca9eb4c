/*
 * journal_write.c - the journal's append-only writer: opens a journal
 * (creating it, or reopening its last segment at the end a scan found),
 * appends batches with one write, syncs them with one fdatasync, and
 * rotates to a new segment past the segment size (format: journal.c,
 * docs/journal-format.md).
 *
 * Crash windows of a rotation: the old segment is fsynced, then the new
 * segment is created with its header and fsynced, the directory fsynced,
 * and only then is the index rewritten (lim_file_replace: tmp + fsync +
 * rename + fsync dir). So the index may lack the newest segment
 * (tolerated, rewritten at start) but never lists one that was not made
 * durable.
 *
 * Failures are sticky: after a failed write, sync or rotation the writer
 * refuses everything (-EIO) and dp_journal_failure() says which file, call
 * and errno; the ledger then stops the engine. A test hook fails the next
 * sync (dp_journal_inject_sync_error).
 *
 * Concurrency: a writer is used by one thread (the ledger worker).
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <unistd.h>

#include "journal_pvt.h"

struct dp_journal {
	char dir[PATH_MAX];
	char path[PATH_MAX];       /* the active segment */
	int fd;
	uint64_t journal_id;
	uint64_t segment_no;
	uint64_t first_seq;        /* of the active segment */
	uint64_t next_seq;
	uint64_t off;              /* end of the active segment */
	uint32_t last_check;
	uint32_t batch_max;
	uint64_t segment_bytes;
	struct jnl_index_ent *ix;      /* every segment, the active one last */
	unsigned n_ix, cap_ix;
	int failed;                /* negative errno once failed */
	int inject_errno;
	char failure[PATH_MAX + 128];
};

__attribute__((format(printf, 3, 4))) static int
j_fail(struct dp_journal *j, int rc, const char *fmt, ...)
{
	char what[PATH_MAX + 64];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(what, sizeof(what), fmt, ap);
	va_end(ap);
	if (!j->failed) {
		j->failed = rc;
		snprintf(j->failure, sizeof(j->failure), "%s: %s", what,
			 strerror(-rc));
	}
	return rc;
}

static int
ix_push(struct dp_journal *j, uint64_t no, uint64_t first)
{
	if (j->n_ix == j->cap_ix) {
		unsigned cap = j->cap_ix ? j->cap_ix * 2 : 16;
		struct jnl_index_ent *e = realloc(j->ix, cap * sizeof(*e));

		if (!e)
			return -ENOMEM;
		j->ix = e;
		j->cap_ix = cap;
	}
	if (j->n_ix)
		j->ix[j->n_ix - 1].open = false;
	memset(&j->ix[j->n_ix], 0, sizeof(j->ix[0]));
	jnl_seg_name(j->ix[j->n_ix].name, sizeof(j->ix[0].name), first);
	j->ix[j->n_ix].segment_no = no;
	j->ix[j->n_ix].first_seq = first;
	j->ix[j->n_ix].open = true;
	j->n_ix++;
	return 0;
}

/* Create segment @p no starting at @p first: header durable, then index. */
static int
segment_create(struct dp_journal *j, uint64_t no, uint64_t first)
{
	struct dp_journal_hdr h;
	char name[JNL_SEG_NAME_LEN + 1];
	int rc;

	jnl_seg_name(name, sizeof(name), first);
	if (jnl_path_join(j->path, sizeof(j->path), j->dir, name))
		return j_fail(j, -ENAMETOOLONG, "%s/%s", j->dir, name);
	j->fd = open(j->path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
	if (j->fd < 0)
		return j_fail(j, -errno, "%s: create", j->path);
	jnl_hdr_make(&h, j->journal_id, first, no, j->last_check, j->batch_max);
	rc = lim_write_full(j->fd, &h, sizeof(h), 0, true);
	if (rc)
		return j_fail(j, rc, "%s: write header", j->path);
	if (fdatasync(j->fd))
		return j_fail(j, -errno, "%s: fdatasync", j->path);
	rc = lim_fsync_dir(j->dir, NULL, 0);
	if (rc)
		return j_fail(j, rc, "%s: fsync directory", j->dir);
	if (j->n_ix)
		j->ix[j->n_ix - 1].last_seq = first - 1;
	rc = ix_push(j, no, first);
	if (!rc)
		rc = jnl_index_write(j->dir, j->ix, j->n_ix, j->journal_id);
	if (rc)
		return j_fail(j, rc, "%s/" DP_JOURNAL_INDEX ": write", j->dir);
	j->segment_no = no;
	j->first_seq = first;
	j->off = DP_JOURNAL_HDR_LEN;
	return 0;
}

static int
rotate(struct dp_journal *j)
{
	if (fdatasync(j->fd))
		return j_fail(j, -errno, "%s: fdatasync", j->path);
	close(j->fd);
	j->fd = -1;
	return segment_create(j, j->segment_no + 1, j->next_seq);
}

/* Existing journal: reopen its last segment at the scanned end. */
static int
reopen(struct dp_journal *j, const struct dp_journal_scan *end, char *err,
       size_t errlen)
{
	struct dp_journal_err je;
	struct stat st;
	uint64_t id = 0;
	int rc;

	if (end->torn || end->index_stale) {
		snprintf(err, errlen, "%s: torn tail or stale index not repaired",
			 j->dir);
		return -EINVAL;
	}
	rc = jnl_index_from_dir(j->dir, &j->ix, &j->n_ix, &id, &je);
	if (rc) {
		snprintf(err, errlen, "%s", je.why);
		return rc;
	}
	j->cap_ix = j->n_ix + 1;
	snprintf(j->path, sizeof(j->path), "%s", end->last_path);
	j->fd = open(j->path, O_WRONLY | O_CLOEXEC);
	if (j->fd < 0 || fstat(j->fd, &st)) {
		snprintf(err, errlen, "%s: open: %s", j->path, strerror(errno));
		return -errno;
	}
	if ((uint64_t)st.st_size != end->end_off || id != end->journal_id) {
		snprintf(err, errlen, "%s: changed since it was scanned (size %lld, "
			 "scanned end %llu)", j->path, (long long)st.st_size,
			 (unsigned long long)end->end_off);
		return -ESTALE;
	}
	j->journal_id = end->journal_id;
	j->segment_no = end->last_segment_no;
	j->first_seq = end->last_first_seq;
	j->off = end->end_off;
	j->last_check = end->last_check;
	return 0;
}

static int
create_new(struct dp_journal *j, uint64_t next_seq, char *err, size_t errlen)
{
	int rc;

	if (mkdir(j->dir, 0755) && errno != EEXIST) {
		snprintf(err, errlen, "%s: mkdir: %s", j->dir, strerror(errno));
		return -errno;
	}
	do {
		if (getrandom(&j->journal_id, sizeof(j->journal_id), 0) !=
		    sizeof(j->journal_id)) {
			snprintf(err, errlen, "getrandom: %s", strerror(errno));
			return -EIO;
		}
	} while (j->journal_id == 0);
	rc = segment_create(j, 0, next_seq);
	if (rc)
		snprintf(err, errlen, "%s", j->failure);
	return rc;
}

int
dp_journal_open(const char *dir, const struct dp_journal_opts *o,
		const struct dp_journal_scan *end, uint64_t next_seq,
		struct dp_journal **out, char *err, size_t errlen)
{
	struct dp_journal *j = calloc(1, sizeof(*j));
	int rc;

	*out = NULL;
	if (!j)
		return -ENOMEM;
	j->fd = -1;
	snprintf(j->dir, sizeof(j->dir), "%s", dir);
	j->segment_bytes = o && o->segment_bytes ? o->segment_bytes
						 : DP_JOURNAL_SEGMENT_DEFAULT;
	j->batch_max = o && o->batch_max ? o->batch_max : DP_JOURNAL_BATCH_DEFAULT;
	if (j->batch_max > DP_JOURNAL_BATCH_MAX || next_seq == 0 ||
	    (end && end->n_segments && next_seq != end->last_seq + 1)) {
		snprintf(err, errlen, "%s: next seq %llu does not follow the "
			 "journal's last %llu", dir, (unsigned long long)next_seq,
			 (unsigned long long)(end ? end->last_seq : 0));
		free(j);
		return -EINVAL;
	}
	j->next_seq = next_seq;
	rc = end && end->n_segments ? reopen(j, end, err, errlen)
				    : create_new(j, next_seq, err, errlen);
	if (rc) {
		dp_journal_close(j);
		return rc;
	}
	*out = j;
	return 0;
}

int
dp_journal_append(struct dp_journal *j, struct lim_effect *recs, unsigned n)
{
	size_t bytes = (size_t)n * DP_JOURNAL_REC_LEN;
	int rc;

	if (j->failed)
		return -EIO;
	if (n == 0 || n > j->batch_max)
		return -EINVAL;
	for (unsigned i = 0; i < n; i++)
		if (recs[i].seq != j->next_seq + i)
			return -EINVAL;
	if (j->off > DP_JOURNAL_HDR_LEN && j->off + bytes > j->segment_bytes &&
	    (rc = rotate(j)) != 0)
		return rc;
	for (unsigned i = 0; i < n; i++)
		dp_journal_seal(&recs[i], j->journal_id);
	rc = lim_write_full(j->fd, recs, bytes, j->off, true);
	if (rc)
		return j_fail(j, rc, "%s: write of %u records at offset %llu",
			      j->path, n, (unsigned long long)j->off);
	j->off += bytes;
	j->next_seq += n;
	j->last_check = recs[n - 1].check;
	return 0;
}

int
dp_journal_sync(struct dp_journal *j)
{
	int inj = j->inject_errno;

	if (j->failed)
		return -EIO;
	if (inj) {
		j->inject_errno = 0;
		return j_fail(j, -inj, "%s: fdatasync (injected)", j->path);
	}
	if (fdatasync(j->fd))
		return j_fail(j, -errno, "%s: fdatasync", j->path);
	return 0;
}

uint64_t
dp_journal_next_seq(const struct dp_journal *j)
{
	return j->next_seq;
}

uint64_t
dp_journal_id(const struct dp_journal *j)
{
	return j->journal_id;
}

uint64_t
dp_journal_segments(const struct dp_journal *j)
{
	return j->n_ix;
}

const char *
dp_journal_failure(const struct dp_journal *j)
{
	return j->failure;
}

void
dp_journal_inject_sync_error(struct dp_journal *j, int errnum)
{
	j->inject_errno = errnum;
}

void
dp_journal_close(struct dp_journal *j)
{
	if (!j)
		return;
	if (j->fd >= 0)
		close(j->fd);
	free(j->ix);
	free(j);
}
