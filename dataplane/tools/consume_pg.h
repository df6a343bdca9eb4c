/*
 * consume_pg.h - authconsume --postgres: the journal stream applied to a
 * PostgreSQL ledger of record (docs/ledger-sql.md). Private to authconsume.
 *
 * The tables (ledger_schema.sql) live in one schema per engine. The SQL
 * side computes every balance from the records' deltas: authconsume only
 * verifies records, orders them and hands them over in batches; each batch
 * is one transaction that inserts its journal rows (seq is the key),
 * applies them to users and operations, and advances consumer_position,
 * so a restart resumes exactly after the last committed batch.
 */
#ifndef CONSUME_PG_H
#define CONSUME_PG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "lim.h"

#define CPG_SCHEMA_DEFAULT "authd"
#define CPG_BATCH_MAX 1024

struct cpg; /* a connection, its schema, the batch being built */

/* consumer_position, as read. */
struct cpg_position {
	char stream[128];
	uint64_t journal_id;        /* 0: no record applied yet */
	uint64_t base_seq;
	uint64_t applied_seq;
	uint64_t records;
	uint64_t base_users;
	char base_snapshot[512];
	char updated_at[64];
};

/**
 * Connect to @p conninfo (a libpq URL or key=value string), select
 * @p schema and, with @p lock, take the schema's advisory lock (one
 * consumer per schema; readers such as --stats pass false).
 * 0, or a negative errno with @p err: -ECONNREFUSED (cannot connect),
 * -EBUSY (another authconsume holds the schema), -EINVAL (bad schema name).
 */
int cpg_open(const char *conninfo, const char *schema, bool lock,
	     struct cpg **out, char *err, size_t errlen);
void cpg_close(struct cpg *c);

/**
 * The schema's position. 0; -ENOENT (no schema yet: cpg_create() it);
 * -EIO with @p err.
 */
int cpg_position(struct cpg *c, struct cpg_position *p, char *err,
		 size_t errlen);

/**
 * Create the schema and its tables and load the base in one transaction:
 * every user of @p db (balances as the base, stamps from @p meta: NULL for
 * an empty base) and its approved authorizations, and the position row of
 * @p stream at the base's seq_start. @p db may be NULL (empty base).
 * 0 or -EIO with @p err; nothing is created on error.
 */
int cpg_create(struct cpg *c, const char *stream, struct lim_db *db,
	       const struct lim_snapshot_meta *meta, const char *base_name,
	       char *err, size_t errlen);

/** Add a verified record (the next seq) to the batch being built. */
void cpg_add(struct cpg *c, const struct lim_effect *rec);
/** Records in the batch being built. */
unsigned cpg_pending(const struct cpg *c);

/**
 * Apply the batch in one transaction: journal rows, users, operations,
 * position (from applied_seq @p from to the batch's last seq; refused if
 * the position is not @p from any more). On success the batch is empty and
 * *@p applied_seq is the new position. 0, or -EBADMSG (a record the ledger
 * refuses: a balance would go negative, money of a user the ledger lacks),
 * -ESTALE (the position moved: another consumer), -EIO; nothing of the
 * batch is kept on error.
 */
int cpg_commit(struct cpg *c, uint64_t from, uint64_t journal_id,
	       uint64_t *applied_seq, char *err, size_t errlen);

/* Figures for --stats and the log. */
struct cpg_counts {
	uint64_t users, journal, operations, held;
	uint64_t min_seq, max_seq;  /* of the journal table */
};

/** Row counts of the tables (a snapshot in one transaction). */
int cpg_counts(struct cpg *c, struct cpg_counts *n, char *err, size_t errlen);

#endif /* CONSUME_PG_H */
