/*
 * journal_pvt.h - private to the journal's files (journal.c: format, names,
 * checks, headers, segment listing, the index; journal_scan.c: the reader;
 * journal_write.c: the writer). Nothing outside dataplane/ledger/ includes
 * it, except tests/.
 */
#ifndef JOURNAL_PVT_H
#define JOURNAL_PVT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "journal.h"

#define JNL_SEG_PREFIX "seg-"
#define JNL_SEG_SUFFIX ".jnl"
#define JNL_SEG_NAME_LEN 28           /* seg- + 20 digits + .jnl */

/* One segment file as listed. */
struct jnl_seg {
	uint64_t first_seq;
	uint64_t size;
	char name[JNL_SEG_NAME_LEN + 1];
};

struct jnl_index_ent {
	char name[JNL_SEG_NAME_LEN + 1];
	uint64_t segment_no;
	uint64_t first_seq;
	uint64_t last_seq;         /* meaningful when !open */
	bool open;
};

struct jnl_index {
	bool present;
	uint64_t journal_id;
	unsigned n;
	struct jnl_index_ent *e;
};

static inline uint32_t
jnl_rec_check(const void *rec)
{
	uint32_t c;

	memcpy(&c, (const uint8_t *)rec + DP_JOURNAL_REC_LEN - 4, sizeof(c));
	return c;
}

static inline uint64_t
jnl_rec_seq(const void *rec)
{
	uint64_t s;

	memcpy(&s, rec, sizeof(s));
	return s;
}

static inline bool
jnl_rec_valid(const void *rec, uint64_t journal_id)
{
	return jnl_rec_check(rec) == dp_journal_check(rec, journal_id);
}

static inline uint8_t
jnl_rec_kind(const void *rec)
{
	return ((const struct lim_effect *)rec)->kind;
}

/**
 * Fill @p e (may be NULL) with a refusal of kind @p kind at @p path:@p off
 * and return -EIO for DP_JOURNAL_E_IO, else -EBADMSG.
 */
__attribute__((format(printf, 5, 6))) int
jnl_err(struct dp_journal_err *e, enum dp_journal_err_kind kind,
	const char *path, uint64_t off, const char *fmt, ...);
/** An I/O failure: "WHAT: strerror(errnum)"; -EIO. */
int jnl_err_io(struct dp_journal_err *e, const char *path, uint64_t off,
	       const char *what, int errnum);

/** The name of the segment whose first record is @p first_seq. */
int jnl_seg_name(char *buf, size_t n, uint64_t first_seq);
/** "@p dir/@p name" into @p out; -ENAMETOOLONG if it does not fit. */
int jnl_path_join(char *out, size_t n, const char *dir, const char *name);
/** Read exactly @p n bytes at @p off; -ENODATA at the end of the file. */
int jnl_pread_full(int fd, void *buf, size_t n, uint64_t off);
/** The segments of @p dir sorted by first seq; *out is malloc'd. */
int jnl_list_segments(const char *dir, struct jnl_seg **out, unsigned *n,
		      struct dp_journal_err *err);

/** A header's own consistency (not its place in the chain). */
int jnl_hdr_check(const struct dp_journal_hdr *h, const char *path,
		  struct dp_journal_err *err);
/** The header of a new segment, sealed. */
void jnl_hdr_make(struct dp_journal_hdr *h, uint64_t journal_id,
		  uint64_t first_seq, uint64_t segment_no, uint32_t prev_check,
		  uint32_t batch_max);

/** Write the index atomically and durably (lim_file_replace). */
int jnl_index_write(const char *dir, const struct jnl_index_ent *e,
		    unsigned n, uint64_t journal_id);
/** Read and verify the index; absent is not an error (ix->present false). */
int jnl_index_read(const char *dir, struct jnl_index *ix,
		   struct dp_journal_err *err);
void jnl_index_free(struct jnl_index *ix);
/** The index entries of the segments of @p dir, the newest open. */
int jnl_index_from_dir(const char *dir, struct jnl_index_ent **out,
		       unsigned *n, uint64_t *journal_id,
		       struct dp_journal_err *err);
/** Write the index again from the segments (after a cut or a stale one). */
int jnl_index_rebuild(const char *dir, struct dp_journal_err *err);

#endif /* JOURNAL_PVT_H */
