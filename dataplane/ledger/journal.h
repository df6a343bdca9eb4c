/*
 * journal.h - the ledger journal on disk (docs/journal-format.md): segment
 * files of fixed-size records, their index, a verifying reader, an
 * append-only writer with group commit, and start-up recovery (snapshot +
 * journal redo).
 *
 * No DPDK: authd, authjournal and the unit tests link the same code.
 *
 * A journal is a directory:
 *   seg-<first seq, 20 digits>.jnl   a 128-byte header, then 128-byte records
 *                                    (struct lim_effect / lim_cfg_effect) in
 *                                    strictly increasing, contiguous seq order
 *   journal.idx                      the list of segments, rewritten
 *                                    atomically at each rotation; the
 *                                    segments are the truth, the index a
 *                                    cross-check
 *
 * Every record carries `check` = the low 32 bits of XXH3-64 over its first
 * 124 bytes, seeded with journal_id ^ seq: a record copied from another
 * journal fails even when its seq fits.
 */
#ifndef DP_JOURNAL_H
#define DP_JOURNAL_H

#include <limits.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "lim.h"

#define DP_JOURNAL_MAGIC "AUTHJRNL"
#define DP_JOURNAL_VERSION 1u
#define DP_JOURNAL_HDR_LEN 128u
#define DP_JOURNAL_REC_LEN 128u
#define DP_JOURNAL_HDR_SUMMED 120u              /* bytes under the header checksum */
#define DP_JOURNAL_SEGMENT_DEFAULT (256ull << 20)
#define DP_JOURNAL_SEGMENT_MIN (64ull << 10)    /* tests rotate often */
#define DP_JOURNAL_BATCH_DEFAULT 2048u          /* records per write at most */
#define DP_JOURNAL_BATCH_MAX 65536u
#define DP_JOURNAL_INDEX "journal.idx"
#define DP_JOURNAL_SEGMENTS_MAX 1000000u
/* A torn write is at most one batch plus the file system block it ends in. */
#define DP_JOURNAL_TORN_SLACK 4096u

/* Segment header, 128 bytes, little-endian. */
struct dp_journal_hdr {
	char magic[8];             /* "AUTHJRNL" */
	uint32_t version;          /* DP_JOURNAL_VERSION */
	uint32_t header_len;       /* 128 */
	uint32_t record_len;       /* 128 */
	uint32_t batch_max;        /* records per write at most (torn-tail bound) */
	uint64_t journal_id;       /* random, the same in every segment */
	uint64_t first_seq;        /* seq of the first record; the file's name */
	uint64_t segment_no;       /* 0, 1, 2, ... without gaps */
	uint64_t created_ns;       /* unix ns, informational */
	uint64_t prev_last_seq;    /* first_seq - 1 */
	uint32_t prev_check;       /* check of the previous segment's last record
				    * (that segment's prev_check when it had none;
				    * 0 for segment 0) */
	uint32_t reserved0;        /* zero */
	uint8_t reserved[48];      /* zero */
	uint64_t checksum;         /* xxh3-64 of bytes [0, 120) */
};

/* What can be wrong with a journal: code, name, text. */
#define DP_JOURNAL_FOREACH_ERR(_)                                              \
	_(NONE, "none", "no error")                                            \
	_(IO, "io", "input/output error")                                      \
	_(BAD_HEADER, "bad-header", "bad segment header")                      \
	_(NAME, "name", "file name does not match the header")                 \
	_(CHAIN, "chain", "segment does not follow the previous one")          \
	_(BAD_CHECKSUM, "bad-checksum", "record checksum does not verify")     \
	_(SEQ_GAP, "seq-gap", "sequence gap")                                  \
	_(SEQ_ORDER, "seq-order", "sequence out of order")                     \
	_(TRUNCATED, "truncated", "truncated record")                          \
	_(BAD_RECORD, "bad-record", "record kind out of range")                \
	_(INDEX, "index", "index does not match the segments")                 \
	_(MISSING, "missing", "records missing")

enum dp_journal_err_kind {
#define DP_JOURNAL_ERR_ENUM(code, name, text) DP_JOURNAL_E_##code,
	DP_JOURNAL_FOREACH_ERR(DP_JOURNAL_ERR_ENUM)
#undef DP_JOURNAL_ERR_ENUM
	DP_JOURNAL_ERRS
};

/* A precise error: which file, at which byte, why. */
struct dp_journal_err {
	enum dp_journal_err_kind kind;
	int sys_errno;             /* for DP_JOURNAL_E_IO */
	uint64_t offset;
	char path[PATH_MAX];
	char why[256];             /* the whole message: "path:offset: reason" */
};

const char *dp_journal_err_name(enum dp_journal_err_kind k);

/* ------------------------------------------------------------------------ */
/* Records                                                                    */

/** The check of a 128-byte record: xxh3-64 of bytes [0, 124) seeded. */
uint32_t dp_journal_check(const void *rec, uint64_t journal_id);

/** Set rec->check (the last 4 bytes) of a record. */
void dp_journal_seal(void *rec, uint64_t journal_id);

/** The name of a record kind ("AUTH", "USER_SET"), "?" when out of range. */
const char *dp_journal_kind_name(unsigned kind);

/* ------------------------------------------------------------------------ */
/* Reading: verify everything, visit records                                  */

#define DP_JOURNAL_SCAN_ALL 0x1    /* verify every record of every segment,
				    * not only those at and after from_seq */

/* What a scan found. */
struct dp_journal_scan {
	uint64_t journal_id;       /* 0: no segment */
	unsigned n_segments;
	uint64_t first_seq;        /* first record of the first segment */
	uint64_t last_seq;         /* last valid record; first_seq - 1 if none */
	uint64_t records;          /* records verified */
	uint64_t visited;          /* records passed to the visitor */
	uint64_t bytes;            /* segment bytes, all segments */
	/* the end, where a writer appends */
	char last_path[PATH_MAX];
	uint64_t last_segment_no;
	uint64_t last_first_seq;
	uint64_t end_off;          /* valid bytes of the last segment */
	uint32_t last_check;       /* check of the last valid record */
	uint32_t batch_max;
	/* a torn tail: found, not cut (dp_journal_cut_tail) */
	bool torn;
	bool torn_whole;           /* the last segment has no valid header */
	char torn_path[PATH_MAX];
	uint64_t torn_off;
	uint64_t torn_bytes;
	char torn_why[160];
	/* the index: a tolerated crash window that needs a rewrite */
	bool index_stale;
	char index_note[256];
};

/**
 * Called for each verified record with seq >= from_seq, in seq order.
 * A non-zero return stops the scan and is returned by dp_journal_scan.
 */
typedef int (*dp_journal_visit_fn)(const struct lim_effect *rec, void *arg);

/**
 * Read journal @p dir: check the index against the segments, every header,
 * the chain between segments, and the records (every one with
 * DP_JOURNAL_SCAN_ALL, else those of the segments holding seq >= from_seq;
 * earlier segments have their header, size and last record checked).
 * Invalid records (bad checksum, partial) at the very end of the last
 * segment with no valid record after them, at most one batch long, are a
 * torn tail: reported in @p res, not an error. Anything else invalid is
 * damage: a negative return with @p err saying file, offset and reason.
 * A directory without segments is an empty journal (0).
 * @return 0; -EIO (read error), -EBADMSG (damage), -ENOENT (no directory),
 *         or the visitor's non-zero return.
 */
int dp_journal_scan(const char *dir, uint64_t from_seq, unsigned flags,
		    dp_journal_visit_fn fn, void *arg,
		    struct dp_journal_scan *res, struct dp_journal_err *err);

/**
 * Cut the torn tail @p res found: truncate the last segment at the tail
 * (or remove it when its header is torn), fsync, fsync the directory,
 * rewrite the index if it was stale; @p res then describes the journal
 * after the cut. 0 or a negative errno with @p err.
 */
int dp_journal_cut_tail(const char *dir, struct dp_journal_scan *res,
			struct dp_journal_err *err);

/** Read and check the header of segment @p path. 0 or -EBADMSG/-EIO. */
int dp_journal_read_hdr(const char *path, struct dp_journal_hdr *h,
			struct dp_journal_err *err);

/* ------------------------------------------------------------------------ */
/* Writing: one thread (the ledger worker)                                    */

struct dp_journal; /* opaque */

struct dp_journal_opts {
	uint64_t segment_bytes;    /* rotate past this size; 0: default */
	uint32_t batch_max;        /* records per append at most; 0: default */
};

/**
 * Open journal @p dir for appending after the end that @p end describes
 * (a scan with no torn tail left, or NULL / an empty scan for a new
 * journal: the directory is created if needed and the first segment starts
 * at @p next_seq). With an existing journal, @p next_seq must be
 * end->last_seq + 1.
 * @return 0 or a negative errno with @p err (path and reason).
 */
int dp_journal_open(const char *dir, const struct dp_journal_opts *o,
		    const struct dp_journal_scan *end, uint64_t next_seq,
		    struct dp_journal **out, char *err, size_t errlen);

/**
 * Seal and write @p n (1..batch_max) records with contiguous seqs starting
 * at the journal's next seq, in one write; rotate first when they would
 * take the segment past its size (the old segment is fsynced, the new one
 * and the index made durable before any record goes into it). Not durable
 * until dp_journal_sync(). After any failure every later call fails:
 * the state of the file is unknown, nothing is retried.
 * @return 0; -EINVAL (seq not the next one: a caller bug); the errno of the
 *         failed system call (-ENOSPC, -EIO, ...); -EIO once failed.
 */
int dp_journal_append(struct dp_journal *j, struct lim_effect *recs,
		      unsigned n);

/** fdatasync the active segment. 0 or negative errno (then failed, sticky). */
int dp_journal_sync(struct dp_journal *j);

/** The next seq the journal expects. */
uint64_t dp_journal_next_seq(const struct dp_journal *j);
uint64_t dp_journal_id(const struct dp_journal *j);
uint64_t dp_journal_segments(const struct dp_journal *j);
/** Why it failed ("" while healthy): the file, the call and the errno. */
const char *dp_journal_failure(const struct dp_journal *j);
/** Test hook: fail the next sync with @p errnum (0 disarms). */
void dp_journal_inject_sync_error(struct dp_journal *j, int errnum);
void dp_journal_close(struct dp_journal *j);

/**
 * Parse a segment file name: 1 for a well-formed seg-<20 digits>.jnl (its
 * first seq in *@p first), 0 for a name that is not a segment's, -1 for one
 * that looks like a segment's but is malformed.
 */
int dp_journal_seg_parse(const char *name, uint64_t *first);

/**
 * The first seqs of the segments in @p dir: the lowest in *@p lo (0: none),
 * and the highest that is <= @p seq in *@p hi_le (0: none). Either may be
 * NULL. 0 or a negative errno (the directory cannot be read).
 */
int dp_journal_first_seqs(const char *dir, uint64_t *lo, uint64_t *hi_le,
			  uint64_t seq);

/* ------------------------------------------------------------------------ */
/* Following a live journal (journal_tail.c): the export, and any reader    */
/* that streams durable records while the ledger appends.                    */

struct dp_journal_tail; /* opaque */

/** A tail reader of journal @p dir, not positioned yet. NULL: no memory. */
struct dp_journal_tail *dp_journal_tail_open(const char *dir);
void dp_journal_tail_close(struct dp_journal_tail *t);

/**
 * Position at @p seq: open the segment that holds it (the highest first seq
 * <= seq), checking its header; UINT64_MAX: the newest segment, from its
 * first record (to learn the journal id). 0, -ENOENT (no such segment) or
 * a negative errno, with @p why.
 */
int dp_journal_tail_seek(struct dp_journal_tail *t, uint64_t seq, char *why,
			 size_t n);

/**
 * The record of seq dp_journal_tail_next() if it is <= @p upto (the caller
 * says what is durable): 1 with *@p out set (valid until the next call),
 * 0 when next > upto, or a negative errno with @p why: a missing or
 * unchained segment, a record that does not verify, a read error.
 * Verified: checksum under the journal id, seq, kind, the segment chain.
 */
int dp_journal_tail_get(struct dp_journal_tail *t, uint64_t upto,
			const struct lim_effect **out, char *why, size_t n);
/** Step past the record dp_journal_tail_get() returned. */
void dp_journal_tail_advance(struct dp_journal_tail *t);
/** The journal id (0 before the first seek) and the next seq. */
uint64_t dp_journal_tail_id(const struct dp_journal_tail *t);
uint64_t dp_journal_tail_next(const struct dp_journal_tail *t);

/* ------------------------------------------------------------------------ */
/* Recovery: newest valid snapshot + the journal after it (recovery.c)        */

struct dp_recover_opts {
	const char *snapshot;      /* a file, a directory of *.snap, or NULL */
	const char *journal_dir;   /* NULL: snapshot only */
	struct lim_db_config db;   /* sizes when there is no snapshot; extra
				    * sizes (0: from the file) when there is */
	bool cut_torn_tail;        /* false: report it, change nothing (tools) */
	FILE *log;                 /* progress and warnings; NULL: quiet */
	void (*progress)(uint64_t done, uint64_t total);
};

struct dp_recover_result {
	struct lim_db *db;
	char snapshot_used[PATH_MAX];
	unsigned snapshots_skipped;  /* damaged newer snapshots */
	uint64_t snap_seq_start, snap_seq_end;
	struct dp_journal_scan scan;
	uint64_t redone;           /* records applied (seq > seq_start) */
	uint64_t by_kind[LIM_EFF_KINDS];
	double load_s, redo_s;
	struct lim_redo_stats *rs; /* owned; freed by dp_recover_free */
};

/**
 * Build the engine's state: load the snapshot (a file, or the newest valid
 * one of a directory, falling back to older ones with a warning), then
 * redo every journal record with seq > its seq_start, verifying checksums
 * and contiguity from seq_start + 1 (1 without a snapshot). A torn tail is
 * cut (opts->cut_torn_tail) and reported; damage anywhere else is an error.
 * Call from a registered QSBR thread, online, before the db is shared.
 * @return 0 with res->db set, or a negative errno with @p err (file,
 *         offset and reason for journal damage).
 */
int dp_recover(const struct dp_recover_opts *opts,
	       struct dp_recover_result *res, char *err, size_t errlen);

/** Free what dp_recover kept (not the db). */
void dp_recover_free(struct dp_recover_result *res);

#endif /* DP_JOURNAL_H */
