/*
 * consume_pg.c - authconsume --postgres: apply the journal stream to the
 * PostgreSQL ledger of record (docs/ledger-sql.md, ledger_schema.sql).
 *
 * Design choice: the SQL side computes the balances from the records'
 * deltas. authconsume verifies each record (its checksum, its seq, one
 * journal) and hands contiguous batches over; every balance in `users` is
 * then its base (the snapshot the ledger started from) plus the sum of the
 * journal rows' d_outstanding_fen / d_holds_fen / d_bucket_fen after the
 * user's base stamp, which anyone can recompute with one query. The
 * consumer keeps no state of its own between batches: a restart (or a
 * kill -9) reads consumer_position and resumes from there.
 *
 * Exactly once: one transaction per batch inserts the journal rows (seq is
 * the primary key: a record applied twice aborts the transaction), applies
 * them (set-based statements over the batch's seq range), and advances
 * consumer_position from the batch's first seq - 1 to its last seq
 * (refused unless the position was exactly there and the range is whole).
 * The NATS acknowledgement follows the commit; a crash between the two
 * only makes the next run skip what the position already holds.
 *
 * What the statements mirror (limits/apply.c and limits/redo.c, the
 * engine's own rules): a user's deltas count only after its base stamp
 * (fuzzy snapshots); cash debt moves with product 3, installment debt with
 * product 2; user_set replaces the settings (after the stamp) and adds the
 * user when it says so; an approved authorize opens an operation (a hold,
 * or debt at once for a cash loan), capture/void/expire/refund move its
 * book and state exactly as ref_delta() does. CHECK constraints refuse a
 * batch that would take a balance negative, as replay refuses it.
 * Month spend, velocity and cooling-off are the engine's decision-time
 * state, not balances: they stay in the journal rows only.
 *
 * One thread; one connection per run, holding the schema's advisory lock
 * for its whole life (a second consumer of the same schema is refused; the
 * server drops the lock when the connection goes, kill -9 included).
 */
#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <libpq-fe.h>

#include "consume_pg.h"
#include "journal.h"
#include "ledger_schema_sql.h"

#define CPG_SCHEMA_MAX 63
#define CPG_LOCK_WAIT_MS 5000

struct cpg {
	PGconn *pg;
	char schema[CPG_SCHEMA_MAX + 1];
	struct lim_effect batch[CPG_BATCH_MAX];
	unsigned n;
	char *copy;                 /* one COPY text of the batch */
	size_t copy_cap;
};

static int
pg_fail(struct cpg *c, PGresult *r, char *err, size_t n, const char *what,
	int rc)
{
	const char *m = r ? PQresultErrorMessage(r) : PQerrorMessage(c->pg);
	size_t len;

	snprintf(err, n, "postgres: %s: %s", what, m && *m ? m : "failed");
	len = strlen(err);
	while (len && (err[len - 1] == '\n' || err[len - 1] == ' '))
		err[--len] = '\0';
	if (r)
		PQclear(r);
	return rc;
}

/* A statement without rows; 0 or -EIO. */
static int
exec0(struct cpg *c, const char *sql, char *err, size_t n, const char *what)
{
	PGresult *r = PQexec(c->pg, sql);

	if (PQresultStatus(r) != PGRES_COMMAND_OK)
		return pg_fail(c, r, err, n, what, -EIO);
	PQclear(r);
	return 0;
}

static void
rollback(struct cpg *c)
{
	PQclear(PQexec(c->pg, "ROLLBACK"));
}

static bool
schema_name_ok(const char *s)
{
	size_t n = strlen(s);

	if (!n || n > CPG_SCHEMA_MAX || (s[0] >= '0' && s[0] <= '9'))
		return false;
	for (; *s; s++)
		if (!((*s >= 'a' && *s <= 'z') || (*s >= '0' && *s <= '9') ||
		      *s == '_'))
			return false;
	return true;
}

/* Server notices (NOTICE, WARNING) are not errors: the tool stays quiet. */
static void
quiet(void *arg, const char *message)
{
	(void)arg;
	(void)message;
}

/*
 * The schema's advisory lock, held by this session until it ends. A
 * consumer restarted right after a kill may find its predecessor's session
 * not gone yet (the server notices the closed connection when that
 * session's statement ends): it waits CPG_LOCK_WAIT_MS for the lock.
 */
static int
take_lock(struct cpg *c, char *err, size_t n)
{
	const char *params[1] = {c->schema};

	for (unsigned waited = 0;; waited += 100) {
		PGresult *r = PQexecParams(c->pg, "SELECT pg_try_advisory_lock("
					   "hashtext('authconsume:' || $1))", 1,
					   NULL, params, NULL, NULL, 0);
		bool got;

		if (PQresultStatus(r) != PGRES_TUPLES_OK)
			return pg_fail(c, r, err, n, "advisory lock", -EIO);
		got = !strcmp(PQgetvalue(r, 0, 0), "t");
		PQclear(r);
		if (got)
			return 0;
		if (waited >= CPG_LOCK_WAIT_MS)
			break;
		usleep(100 * 1000);
	}
	snprintf(err, n, "postgres: schema %s: another authconsume is applying "
		 "to it (its advisory lock is held)", c->schema);
	return -EBUSY;
}

int
cpg_open(const char *conninfo, const char *schema, bool lock,
	 struct cpg **out, char *err, size_t n)
{
	struct cpg *c;
	char sql[160];
	int rc;

	*out = NULL;
	if (!schema_name_ok(schema)) {
		snprintf(err, n, "--pg-schema %s: expected 1..%d of a-z, 0-9, _ "
			 "(not starting with a digit)", schema, CPG_SCHEMA_MAX);
		return -EINVAL;
	}
	c = calloc(1, sizeof(*c));
	if (!c) {
		snprintf(err, n, "out of memory");
		return -ENOMEM;
	}
	snprintf(c->schema, sizeof(c->schema), "%s", schema);
	c->pg = PQconnectdb(conninfo);
	if (PQstatus(c->pg) != CONNECTION_OK) {
		pg_fail(c, NULL, err, n, "connect", 0);
		cpg_close(c);
		return -ECONNREFUSED;
	}
	PQsetNoticeProcessor(c->pg, quiet, NULL);
	snprintf(sql, sizeof(sql), "SET search_path = %s", schema);
	rc = lock ? take_lock(c, err, n) : 0;
	if (!rc)
		rc = exec0(c, sql, err, n, "set search_path");
	if (rc) {
		cpg_close(c);
		return rc;
	}
	*out = c;
	return 0;
}

void
cpg_close(struct cpg *c)
{
	if (!c)
		return;
	if (c->pg)
		PQfinish(c->pg);
	free(c->copy);
	free(c);
}

static uint64_t
u64_of(PGresult *r, int row, int col)
{
	return PQgetisnull(r, row, col) ? 0
					: strtoull(PQgetvalue(r, row, col), NULL, 10);
}

int
cpg_position(struct cpg *c, struct cpg_position *p, char *err, size_t n)
{
	const char *params[1] = {c->schema};
	PGresult *r;

	memset(p, 0, sizeof(*p));
	r = PQexecParams(c->pg, "SELECT 1 FROM information_schema.tables WHERE "
			 "table_schema = $1 AND table_name = 'consumer_position'",
			 1, NULL, params, NULL, NULL, 0);
	if (PQresultStatus(r) != PGRES_TUPLES_OK)
		return pg_fail(c, r, err, n, "schema lookup", -EIO);
	if (PQntuples(r) == 0) {
		PQclear(r);
		return -ENOENT;
	}
	PQclear(r);
	r = PQexec(c->pg, "SELECT stream, journal_id, base_seq, applied_seq, "
		   "records, base_users, base_snapshot, updated_at "
		   "FROM consumer_position");
	if (PQresultStatus(r) != PGRES_TUPLES_OK)
		return pg_fail(c, r, err, n, "consumer_position", -EIO);
	if (PQntuples(r) != 1) {
		PQclear(r);
		snprintf(err, n, "postgres: schema %s: consumer_position has "
			 "no row: the schema was not made by authconsume",
			 c->schema);
		return -EIO;
	}
	snprintf(p->stream, sizeof(p->stream), "%s", PQgetvalue(r, 0, 0));
	p->journal_id = PQgetisnull(r, 0, 1)
				? 0 : strtoull(PQgetvalue(r, 0, 1), NULL, 16);
	p->base_seq = u64_of(r, 0, 2);
	p->applied_seq = u64_of(r, 0, 3);
	p->records = u64_of(r, 0, 4);
	p->base_users = u64_of(r, 0, 5);
	snprintf(p->base_snapshot, sizeof(p->base_snapshot), "%s",
		 PQgetvalue(r, 0, 6));
	snprintf(p->updated_at, sizeof(p->updated_at), "%s", PQgetvalue(r, 0, 7));
	PQclear(r);
	return 0;
}

/* ------------------------------------------------------------------------ */
/* COPY                                                                       */

struct cbuf {
	char *p;
	size_t len, cap;
	bool oom;
};

static void
cb_printf(struct cbuf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static void
cb_printf(struct cbuf *b, const char *fmt, ...)
{
	va_list ap;
	int k;

	for (;;) {
		if (b->oom)
			return;
		va_start(ap, fmt);
		k = vsnprintf(b->p + b->len, b->cap - b->len, fmt, ap);
		va_end(ap);
		if (k >= 0 && (size_t)k < b->cap - b->len) {
			b->len += (size_t)k;
			return;
		}
		char *q = realloc(b->p, b->cap * 2 + (size_t)k + 64);

		if (!q) {
			b->oom = true;
			return;
		}
		b->p = q;
		b->cap = b->cap * 2 + (size_t)k + 64;
	}
}

/* Send @p b as the data of "COPY table (cols) FROM STDIN". */
static int
copy_in(struct cpg *c, const char *sql, const struct cbuf *b, char *err,
	size_t n, const char *what)
{
	PGresult *r = PQexec(c->pg, sql);

	if (PQresultStatus(r) != PGRES_COPY_IN)
		return pg_fail(c, r, err, n, what, -EIO);
	PQclear(r);
	if (PQputCopyData(c->pg, b->p, (int)b->len) != 1 ||
	    PQputCopyEnd(c->pg, NULL) != 1)
		return pg_fail(c, NULL, err, n, what, -EIO);
	r = PQgetResult(c->pg);
	if (PQresultStatus(r) != PGRES_COMMAND_OK) {
		int rc = pg_fail(c, r, err, n, what, -EIO);

		while ((r = PQgetResult(c->pg)) != NULL)
			PQclear(r);
		return rc;
	}
	PQclear(r);
	while ((r = PQgetResult(c->pg)) != NULL)
		PQclear(r);
	return 0;
}

/* ------------------------------------------------------------------------ */
/* The base                                                                   */

static const char *const op_states[] = {
	[LIM_OPS_HELD] = "held",
	[LIM_OPS_CAPTURED] = "captured",
	[LIM_OPS_CLOSED] = "closed",
};

static int
base_op(struct lim_op *op, void *arg)
{
	struct cbuf *b = arg;

	if (op->op != LIM_OP_AUTHORIZE || op->status != 0 ||
	    (op->state != LIM_OPS_HELD && op->state != LIM_OPS_CAPTURED &&
	     op->state != LIM_OPS_CLOSED))
		return 0;
	cb_printf(b, "%u\t%" PRIu64 "\t%" PRIu64 "\t%u\t%u\t%s\t%" PRId64 "\t%"
		  PRId64 "\t%" PRId64 "\t%" PRId64 "\t%u\t%u\t%u\t%u\t0\t%" PRIu64
		  "\n", op->gateway_id, op->request_id, op->user_id, op->product,
		  op->terms, op_states[op->state], op->amount_fen, op->held_fen,
		  op->captured_fen, op->refunded_fen, op->hold_expires_s,
		  op->funder_id, op->own_share_pct, op->group_id, op->last_seq);
	return 0;
}

static int
load_base(struct cpg *c, struct lim_db *db, const struct lim_snapshot_meta *m,
	  char *err, size_t n)
{
	struct cbuf b = {.p = malloc(1 << 20), .cap = 1 << 20};
	uint64_t users = lim_users_count(db->users);
	int rc;

	if (!b.p) {
		snprintf(err, n, "out of memory");
		return -ENOMEM;
	}
	for (uint64_t i = 0; i < users; i++) {
		const struct lim_user *u = lim_users_at(db->users, i);
		uint64_t stamp = m ? m->seq_start + (m->user_stamp ?
						     m->user_stamp[i] : 0) : 0;

		cb_printf(&b, "%" PRIu64 "\t%" PRId64 "\t%" PRId64 "\t%u\t%c\t%c"
			  "\t%" PRId64 "\t%" PRId64 "\t%" PRId64 "\t%" PRId64
			  "\t%" PRIu64 "\t%" PRId64 "\t%" PRId64 "\t%" PRId64
			  "\t%" PRId64 "\t0\t%" PRIu64 "\n", u->user_id,
			  u->limit_fen, u->self_cap_fen, u->tier,
			  u->flags & LIM_USER_FROZEN ? 't' : 'f',
			  u->flags & LIM_USER_SOFT_CAP ? 't' : 'f',
			  u->outstanding_fen, u->holds_fen, u->cash_fen,
			  u->inst_fen, stamp, u->outstanding_fen, u->holds_fen,
			  u->cash_fen, u->inst_fen, stamp);
	}
	rc = b.oom ? -ENOMEM : copy_in(c, "COPY users (user_id, limit_fen, "
		"self_cap_fen, tier, frozen, soft_cap, outstanding_fen, holds_fen, "
		"cash_fen, inst_fen, base_seq, base_outstanding_fen, base_holds_fen, "
		"base_cash_fen, base_inst_fen, created_seq, last_seq) FROM STDIN",
		&b, err, n, "load the base users");
	if (!rc) {
		b.len = 0;
		lim_ops_foreach(db->ops, base_op, &b);
		rc = b.oom ? -ENOMEM : copy_in(c, "COPY operations (gateway_id, "
			"request_id, user_id, product, terms, state, amount_fen, "
			"held_fen, captured_fen, refunded_fen, hold_expires_s, "
			"funder_id, own_share_pct, group_id, auth_seq, last_seq) "
			"FROM STDIN", &b, err, n, "load the base operations");
	}
	if (rc == -ENOMEM)
		snprintf(err, n, "out of memory loading the base");
	free(b.p);
	return rc;
}

int
cpg_create(struct cpg *c, const char *stream, struct lim_db *db,
	   const struct lim_snapshot_meta *meta, const char *base_name,
	   char *err, size_t n)
{
	char sql[256], seq[24], users[24];
	const char *params[4] = {stream, seq, base_name, users};
	PGresult *r;

	snprintf(sql, sizeof(sql), "BEGIN; CREATE SCHEMA %s; SET LOCAL "
		 "search_path = %s", c->schema, c->schema);
	if (exec0(c, sql, err, n, "create the schema"))
		goto fail;
	if (exec0(c, ledger_schema_sql, err, n, "create the tables"))
		goto fail;
	if (db && load_base(c, db, meta, err, n))
		goto fail;
	snprintf(seq, sizeof(seq), "%" PRIu64, meta ? meta->seq_start : 0);
	snprintf(users, sizeof(users), "%" PRIu64,
		 db ? lim_users_count(db->users) : 0);
	r = PQexecParams(c->pg, "INSERT INTO consumer_position (stream, "
			 "base_seq, applied_seq, base_snapshot, base_users) "
			 "VALUES ($1, $2, $2, $3, $4)", 4, NULL, params, NULL,
			 NULL, 0);
	if (PQresultStatus(r) != PGRES_COMMAND_OK) {
		pg_fail(c, r, err, n, "consumer_position", 0);
		goto fail;
	}
	PQclear(r);
	if (exec0(c, "COMMIT", err, n, "commit the base"))
		goto fail;
	return 0;
fail:
	rollback(c);
	return -EIO;
}

/* ------------------------------------------------------------------------ */
/* A batch                                                                    */

void
cpg_add(struct cpg *c, const struct lim_effect *rec)
{
	if (c->n < CPG_BATCH_MAX)
		c->batch[c->n++] = *rec;
}

unsigned
cpg_pending(const struct cpg *c)
{
	return c->n;
}

/* One journal row in COPY text: NULL is \N, the record \\x<hex>. */
static void
journal_row(struct cbuf *b, const struct lim_effect *e)
{
	const struct lim_cfg_effect *cf = (const struct lim_cfg_effect *)e;
	const uint8_t *raw = (const uint8_t *)e;

	cb_printf(b, "%" PRIu64 "\t%u\t%s\t", e->seq, e->kind,
		  dp_journal_kind_name(e->kind));
	if (e->kind < LIM_EFF_USER_SET) {
		cb_printf(b, "%" PRIu64 "\t%u\t%" PRIu64 "\t", e->user_id,
			  e->gateway_id, e->request_id);
		if (e->ref_id)
			cb_printf(b, "%" PRIu64 "\t", e->ref_id);
		else
			cb_printf(b, "\\N\t");
		cb_printf(b, "%u\t%u\t%u\t%u\t%u\t%u\t%u\t%" PRId64 "\t%" PRId64
			  "\t%" PRId64 "\t%" PRId64 "\t%" PRId64 "\t%" PRId64
			  "\t%u\t%u\t%u\t%u\t%u\t\\N\t\\N\t\\N\t\\N\t\\N\t\\N\t\\N\t",
			  e->now_s, e->op, e->product, e->terms, e->status,
			  e->reason, e->notes, e->amount_fen, e->available_fen,
			  e->d_outstanding_fen, e->d_holds_fen, e->d_bucket_fen,
			  e->d_month_fen, e->group_id, e->hold_expires_s,
			  e->funder_id, e->own_share_pct, e->risk_score);
	} else {
		bool user = e->kind == LIM_EFF_USER_SET || e->kind == LIM_EFF_EXT_SET;

		if (user)
			cb_printf(b, "%" PRIu64 "\t", cf->id);
		else
			cb_printf(b, "\\N\t");
		cb_printf(b, "\\N\t\\N\t\\N\t%u\t", cf->now_s);
		for (unsigned k = 0; k < 17; k++)
			cb_printf(b, "\\N\t");
		if (user)
			cb_printf(b, "\\N\t");
		else
			cb_printf(b, "%" PRIu64 "\t", cf->id);
		cb_printf(b, "%u\t", cf->uid);
		if (e->kind == LIM_EFF_USER_SET)
			cb_printf(b, "%" PRId64 "\t%" PRId64 "\t%u\t%u\t%c\t",
				  cf->u.user.limit_fen, cf->u.user.self_cap_fen,
				  cf->u.user.tier, cf->u.user.flags,
				  cf->u.user.created ? 't' : 'f');
		else
			cb_printf(b, "\\N\t\\N\t\\N\t\\N\t\\N\t");
	}
	cb_printf(b, "\\\\x");
	for (unsigned k = 0; k < sizeof(*e); k++)
		cb_printf(b, "%02x", raw[k]);
	cb_printf(b, "\n");
}

#define JOURNAL_COLS                                                           \
	"seq, kind, kind_name, user_id, gateway_id, request_id, ref_id, now_s, "\
	"op, product, terms, status, reason, notes, amount_fen, available_fen, "\
	"d_outstanding_fen, d_holds_fen, d_bucket_fen, d_month_fen, group_id, " \
	"hold_expires_s, funder_id, own_share_pct, risk_score, object_id, uid, " \
	"limit_fen, self_cap_fen, tier, flags, created, record"

/*
 * The statements of one batch, over the seq range ($1, $2]. Order: users
 * added or set, then every user's deltas, then operations opened, then
 * their books moved. Each mirrors limits/ (see the note at the top).
 */
static const struct {
	const char *what;
	const char *sql;
} batch_sql[] = {
	{"user_set", /* the last user_set of each user in the batch */
	 "WITH s AS (SELECT DISTINCT ON (user_id) user_id, seq, limit_fen, "
	 "self_cap_fen, tier, flags FROM journal WHERE seq > $1 AND seq <= $2 "
	 "AND kind = 9 ORDER BY user_id, seq DESC), "
	 "c AS (SELECT user_id, min(seq) FILTER (WHERE created) AS created_seq "
	 "FROM journal WHERE seq > $1 AND seq <= $2 AND kind = 9 GROUP BY user_id) "
	 "INSERT INTO users AS u (user_id, limit_fen, self_cap_fen, tier, frozen, "
	 "soft_cap, outstanding_fen, holds_fen, cash_fen, inst_fen, base_seq, "
	 "base_outstanding_fen, base_holds_fen, base_cash_fen, base_inst_fen, "
	 "created_seq, last_seq) "
	 "SELECT s.user_id, s.limit_fen, s.self_cap_fen, s.tier, (s.flags & 1) <> 0, "
	 "(s.flags & 2) <> 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, coalesce(c.created_seq, 0), "
	 "s.seq FROM s JOIN c USING (user_id) WHERE c.created_seq IS NOT NULL OR "
	 "EXISTS (SELECT 1 FROM users x WHERE x.user_id = s.user_id) "
	 "ON CONFLICT (user_id) DO UPDATE SET limit_fen = EXCLUDED.limit_fen, "
	 "self_cap_fen = EXCLUDED.self_cap_fen, tier = EXCLUDED.tier, "
	 "frozen = EXCLUDED.frozen, soft_cap = EXCLUDED.soft_cap, "
	 "last_seq = greatest(u.last_seq, EXCLUDED.last_seq) "
	 "WHERE EXCLUDED.last_seq > u.base_seq"},
	{"money of unknown users", /* counted, refused below */
	 "SELECT j.seq, j.user_id FROM journal j WHERE j.seq > $1 AND j.seq <= $2 "
	 "AND j.kind BETWEEN 1 AND 8 AND (j.d_outstanding_fen <> 0 OR "
	 "j.d_holds_fen <> 0 OR j.d_bucket_fen <> 0) AND NOT EXISTS "
	 "(SELECT 1 FROM users u WHERE u.user_id = j.user_id) LIMIT 1"},
	{"balances",
	 "WITH d AS (SELECT j.user_id, sum(j.d_outstanding_fen) AS o, "
	 "sum(j.d_holds_fen) AS h, "
	 "sum(CASE WHEN j.product = 3 THEN j.d_bucket_fen ELSE 0 END) AS c, "
	 "sum(CASE WHEN j.product = 2 THEN j.d_bucket_fen ELSE 0 END) AS i, "
	 "max(j.seq) AS s FROM journal j JOIN users u USING (user_id) "
	 "WHERE j.seq > $1 AND j.seq <= $2 AND j.kind BETWEEN 1 AND 8 "
	 "AND j.seq > u.base_seq AND (j.d_outstanding_fen <> 0 OR "
	 "j.d_holds_fen <> 0 OR j.d_bucket_fen <> 0) GROUP BY j.user_id) "
	 "UPDATE users u SET outstanding_fen = u.outstanding_fen + d.o, "
	 "holds_fen = u.holds_fen + d.h, cash_fen = u.cash_fen + d.c, "
	 "inst_fen = u.inst_fen + d.i, last_seq = greatest(u.last_seq, d.s) "
	 "FROM d WHERE u.user_id = d.user_id"},
	{"operations opened", /* approved authorize: a hold, or cash debt */
	 "INSERT INTO operations AS o (gateway_id, request_id, user_id, product, "
	 "terms, state, amount_fen, held_fen, captured_fen, refunded_fen, "
	 "hold_expires_s, funder_id, own_share_pct, group_id, auth_seq, last_seq) "
	 "SELECT gateway_id, request_id, user_id, product, terms, "
	 "CASE WHEN d_holds_fen > 0 THEN 'held' ELSE 'captured' END, amount_fen, "
	 "d_holds_fen, d_outstanding_fen, 0, hold_expires_s, funder_id, "
	 "own_share_pct, group_id, seq, seq FROM journal "
	 "WHERE seq > $1 AND seq <= $2 AND kind = 2 AND status = 0 "
	 "ON CONFLICT (gateway_id, request_id) DO UPDATE SET "
	 "user_id = EXCLUDED.user_id, product = EXCLUDED.product, "
	 "terms = EXCLUDED.terms, state = EXCLUDED.state, "
	 "amount_fen = EXCLUDED.amount_fen, held_fen = EXCLUDED.held_fen, "
	 "captured_fen = EXCLUDED.captured_fen, refunded_fen = 0, "
	 "hold_expires_s = EXCLUDED.hold_expires_s, "
	 "funder_id = EXCLUDED.funder_id, own_share_pct = EXCLUDED.own_share_pct, "
	 "group_id = EXCLUDED.group_id, auth_seq = EXCLUDED.auth_seq, "
	 "last_seq = EXCLUDED.last_seq WHERE o.last_seq < EXCLUDED.last_seq"},
	{"operations moved", /* ref_delta(): capture, void, refund, expire */
	 "WITH r AS (SELECT j.gateway_id, j.ref_id, "
	 "count(*) FILTER (WHERE j.kind = 3) AS n_cap, "
	 "coalesce(sum(j.amount_fen) FILTER (WHERE j.kind = 3), 0) AS cap, "
	 "coalesce(sum(j.amount_fen) FILTER (WHERE j.kind IN (4, 8)), 0) AS rel, "
	 "count(*) FILTER (WHERE j.kind = 5) AS n_ref, "
	 "coalesce(sum(j.amount_fen) FILTER (WHERE j.kind = 5), 0) AS ref, "
	 "max(j.seq) AS s FROM journal j JOIN operations o "
	 "ON o.gateway_id = j.gateway_id AND o.request_id = j.ref_id "
	 "WHERE j.seq > $1 AND j.seq <= $2 AND j.kind IN (3, 4, 5, 8) "
	 "AND j.status = 0 AND j.seq > o.last_seq "
	 "GROUP BY j.gateway_id, j.ref_id) "
	 "UPDATE operations o SET "
	 "held_fen = CASE WHEN r.n_cap > 0 THEN 0 ELSE o.held_fen - r.rel END, "
	 "captured_fen = o.captured_fen + r.cap, "
	 "refunded_fen = o.refunded_fen + r.ref, "
	 "state = CASE WHEN r.n_ref > 0 AND o.refunded_fen + r.ref = "
	 "o.captured_fen + r.cap THEN 'closed' "
	 "WHEN r.n_cap > 0 OR r.n_ref > 0 THEN 'captured' "
	 "WHEN o.held_fen - r.rel = 0 THEN 'closed' ELSE o.state END, "
	 "last_seq = r.s FROM r WHERE o.gateway_id = r.gateway_id "
	 "AND o.request_id = r.ref_id"},
	{"position", /* from exactly $1, and the range is whole */
	 "UPDATE consumer_position SET applied_seq = $2, "
	 "records = records + ($2 - $1), journal_id = coalesce(journal_id, $3), "
	 "updated_at = now() WHERE applied_seq = $1 AND (journal_id IS NULL OR "
	 "journal_id = $3) AND (SELECT count(*) FROM journal WHERE seq > $1 AND "
	 "seq <= $2) = $2 - $1"},
};

#define BATCH_STATEMENTS (sizeof(batch_sql) / sizeof(batch_sql[0]))

static int
batch_statements(struct cpg *c, uint64_t from, uint64_t to, uint64_t jid,
		 char *err, size_t n)
{
	char lo[24], hi[24], id[24];
	const char *params[3] = {lo, hi, id};

	snprintf(lo, sizeof(lo), "%" PRIu64, from);
	snprintf(hi, sizeof(hi), "%" PRIu64, to);
	snprintf(id, sizeof(id), "%016" PRIx64, jid);
	for (unsigned i = 0; i < BATCH_STATEMENTS; i++) {
		unsigned np = i + 1 == BATCH_STATEMENTS ? 3 : 2;
		PGresult *r = PQexecParams(c->pg, batch_sql[i].sql, (int)np, NULL,
					   params, NULL, NULL, 0);
		ExecStatusType st = PQresultStatus(r);

		if (st != PGRES_COMMAND_OK && st != PGRES_TUPLES_OK) {
			const char *code = PQresultErrorField(r, PG_DIAG_SQLSTATE);
			/* 23xxx: a constraint: the record contradicts the ledger */
			int rc = code && !strncmp(code, "23", 2) ? -EBADMSG : -EIO;

			return pg_fail(c, r, err, n, batch_sql[i].what, rc);
		}
		if (st == PGRES_TUPLES_OK && PQntuples(r) > 0) {
			snprintf(err, n, "postgres: seq %s moves money of user %s, "
				 "who is not in the ledger (the base snapshot and the "
				 "stream do not belong together)", PQgetvalue(r, 0, 0),
				 PQgetvalue(r, 0, 1));
			PQclear(r);
			return -EBADMSG;
		}
		if (i + 1 == BATCH_STATEMENTS && strcmp(PQcmdTuples(r), "1")) {
			PQclear(r);
			snprintf(err, n, "postgres: consumer_position is no longer at "
				 "seq %s (another consumer, or another journal): "
				 "batch not applied", lo);
			return -ESTALE;
		}
		PQclear(r);
	}
	return 0;
}

int
cpg_commit(struct cpg *c, uint64_t from, uint64_t journal_id,
	   uint64_t *applied_seq, char *err, size_t n)
{
	struct cbuf b = {.p = c->copy, .cap = c->copy_cap};
	uint64_t to;
	int rc;

	if (!c->n) {
		*applied_seq = from;
		return 0;
	}
	to = c->batch[c->n - 1].seq;
	if (!b.p) {
		b.cap = 64u << 10;
		b.p = malloc(b.cap);
		if (!b.p) {
			snprintf(err, n, "out of memory");
			return -ENOMEM;
		}
	}
	for (unsigned i = 0; i < c->n; i++)
		journal_row(&b, &c->batch[i]);
	c->copy = b.p;
	c->copy_cap = b.cap;
	if (b.oom) {
		snprintf(err, n, "out of memory");
		return -ENOMEM;
	}
	rc = exec0(c, "BEGIN", err, n, "begin");
	if (!rc)
		rc = copy_in(c, "COPY journal (" JOURNAL_COLS ") FROM STDIN", &b,
			     err, n, "journal rows");
	if (!rc)
		rc = batch_statements(c, from, to, journal_id, err, n);
	if (!rc)
		rc = exec0(c, "COMMIT", err, n, "commit");
	if (rc) {
		rollback(c);
		return rc;
	}
	c->n = 0;
	*applied_seq = to;
	return 0;
}

int
cpg_counts(struct cpg *c, struct cpg_counts *k, char *err, size_t n)
{
	PGresult *r = PQexec(c->pg,
		"SELECT (SELECT count(*) FROM users), (SELECT count(*) FROM journal), "
		"(SELECT count(*) FROM operations), "
		"(SELECT count(*) FROM operations WHERE state = 'held'), "
		"(SELECT coalesce(min(seq), 0) FROM journal), "
		"(SELECT coalesce(max(seq), 0) FROM journal)");

	if (PQresultStatus(r) != PGRES_TUPLES_OK)
		return pg_fail(c, r, err, n, "counts", -EIO);
	k->users = u64_of(r, 0, 0);
	k->journal = u64_of(r, 0, 1);
	k->operations = u64_of(r, 0, 2);
	k->held = u64_of(r, 0, 3);
	k->min_seq = u64_of(r, 0, 4);
	k->max_seq = u64_of(r, 0, 5);
	PQclear(r);
	return 0;
}
