/*
 * export.h - the downstream export: journal records streamed to NATS
 * JetStream (docs/export.md), and what the consumer (authconsume) shares
 * with the producer: the message format and the export position file.
 *
 * Message format (one per journal record, in journal seq order):
 *   subject  <export-subject>.<kind>, kind in lower case ("auth",
 *            "capture", "user_set", ...: dp_journal_kind_name())
 *   payload  the 128-byte journal record as it is on disk (struct
 *            lim_effect / lim_cfg_effect, its `check` sealed)
 *   headers  Nats-Msg-Id: the journal seq in decimal (JetStream dedupe)
 *            Authd-Journal: the journal id, 16 hex digits (the seed of
 *            `check`: the consumer verifies every record with it)
 * The stream holds each journal seq once, in seq order: every publish
 * carries the stream sequence it must follow (Nats-Expected-Last-Sequence),
 * so a message lost in flight makes the ones after it fail instead of
 * landing out of order.
 */
#ifndef DP_EXPORT_H
#define DP_EXPORT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define DP_EXPORT_HDR_MSG_ID "Nats-Msg-Id"
#define DP_EXPORT_HDR_JOURNAL "Authd-Journal"
#define DP_EXPORT_SUBJECT_DEFAULT "authd.journal"
#define DP_EXPORT_STREAM_DEFAULT "AUTHD_JOURNAL"
#define DP_EXPORT_POS_FILE "export.pos"
#define DP_EXPORT_DEDUPE_S 600u       /* the stream's duplicate window */
#define DP_EXPORT_SUBJECT_MAX 128
#define DP_EXPORT_STREAM_MAX 64

/* States of the export worker: code, name. */
#define DP_EXPORT_FOREACH_STATE(_)                                             \
	_(OFF, "off")                   /* no --export */                      \
	_(CONNECTING, "connecting")     /* no connection yet (retrying) */     \
	_(CONNECTED, "connected")       /* publishing */                       \
	_(RECONNECTING, "reconnecting") /* lost; the client reconnects */      \
	_(ERROR, "error")               /* needs an operator; retried */       \
	_(STOPPED, "stopped")

enum dp_export_state {
#define DP_EXPORT_STATE_ENUM(code, name) DP_EXPORT_##code,
	DP_EXPORT_FOREACH_STATE(DP_EXPORT_STATE_ENUM)
#undef DP_EXPORT_STATE_ENUM
	DP_EXPORT_STATES
};

const char *dp_export_state_name(enum dp_export_state s);

/* What the export did; a consistent-enough copy for the control plane. */
struct dp_export_stats {
	enum dp_export_state state;
	uint64_t published;        /* messages handed to the client */
	uint64_t acked;            /* positive acks (duplicates included) */
	uint64_t duplicates;       /* acks saying "already stored" */
	uint64_t errors;           /* failed acks, connects, stream calls, reads */
	uint64_t resyncs;          /* restarts from the stream's last message */
	uint64_t acked_seq;        /* the stream holds every seq up to here */
	uint64_t durable_seq;      /* the journal is durable up to here */
	uint64_t lag;              /* durable_seq - acked_seq */
	uint64_t saved_seq;        /* acked_seq last written to export.pos */
	uint64_t stream_seq;       /* stream sequence of acked_seq's message */
	char last_error[256];      /* the last error ("" none) */
};

/* The export position file, <journal>/export.pos (text, checksummed). */
struct dp_export_pos {
	uint64_t journal_id;
	uint64_t acked_seq;        /* every seq up to here was acknowledged */
	uint64_t stream_seq;       /* its stream sequence */
	char stream[DP_EXPORT_STREAM_MAX];
};

/**
 * Read @p dir/export.pos. 0; -ENOENT (none); -EBADMSG (damaged: checksum,
 * syntax) or another negative errno, with the reason in @p err.
 */
int dp_export_pos_load(const char *dir, struct dp_export_pos *p, char *err,
		       size_t errlen);

/**
 * Write @p dir/export.pos atomically and durably (lim_file_replace():
 * export.pos.tmp.XXXXXX, fsync, rename, fsync of the directory). 0 or a
 * negative errno with @p err.
 */
int dp_export_pos_save(const char *dir, const struct dp_export_pos *p,
		       char *err, size_t errlen);

/**
 * "<subject>.<kind in lower case>" into @p buf; -EINVAL for a kind out of
 * range, -ENAMETOOLONG.
 */
int dp_export_subject(char *buf, size_t n, const char *subject, unsigned kind);

/**
 * Check a subject (tokens of [A-Za-z0-9_-] separated by dots, no
 * wildcards) or a stream name ([A-Za-z0-9_-]). 0 or -EINVAL with @p err.
 */
int dp_export_subject_check(const char *s, char *err, size_t errlen);
int dp_export_stream_check(const char *s, char *err, size_t errlen);

/* ------------------------------------------------------------------------ */
/* The worker (authd; export.c)                                               */

struct dp_export;
struct json_t;

/* What the worker is given at start; the strings and pointers outlive it. */
struct dp_export_conf {
	const char *url;           /* --export ("" or NULL: off) */
	const char *subject;       /* --export-subject */
	const char *stream;        /* --export-stream */
	const char *journal_dir;   /* the journal it follows */
	const uint64_t *durable_seq; /* atomic: the journal is durable up to */
};

/**
 * Start the export worker when @p c->url is set (--export): a control
 * thread that follows the journal files up to *c->durable_seq and publishes
 * every record (docs/export.md). Call after recovery and dp_ledger_start().
 * NATS being down is not an error (the worker retries); only a build
 * without NATS, or no memory, is.
 * @return 0, *@p out set (NULL when --export is off); -ENOTSUP (built
 *         without libnats); -ENOMEM; -EINVAL; -EAGAIN (no thread).
 */
int dp_export_start(const struct dp_export_conf *c, struct dp_export **out);

/**
 * Stop the worker: publish what is durable now and wait for its acks
 * (bounded, a few seconds, only while connected), save export.pos, close
 * the connection, free it. Call after the control thread and telemetry
 * stopped (they read it) and before dp_ledger_stop(). NULL: no-op.
 */
void dp_export_stop(struct dp_export *x);

/** Copy the worker's figures (NULL: state off). Any thread. */
void dp_export_stats_get(const struct dp_export *x, struct dp_export_stats *st);

/** The same as a new jansson object (authctl stats "export"). Any thread. */
struct json_t *dp_export_json(const struct dp_export *x);

#endif /* DP_EXPORT_H */
