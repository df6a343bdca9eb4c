/*
 * csv.c - import users and merchants from CSV files into a lim_db (the
 * columns are listed in docs/snapshot-format.md, "CSV import").
 *
 * A file is a header line naming the columns (any order, each once, no
 * unknown name) and one record per line. Fields are separated by commas;
 * a field may be double-quoted ("" is a quote inside); spaces around an
 * unquoted field are ignored; CRLF line ends and blank lines are accepted.
 * Amounts are parsed exactly from decimal text: fen as an integer, yuan
 * with at most two decimals; no floating point anywhere. Numbers, amounts
 * and times have the syntax of every other input (lim.h, "Text").
 *
 * Every error names the file, the line (1 = the header) and the column:
 *   users.csv:17: column limit_fen: '12a' is not an amount
 * The first error stops the import; the records of the lines before it
 * stay in the database (the caller imports into a fresh database and drops
 * it on error, as authdb does).
 *
 * Concurrency: updater only, QSBR read side online (inserts and lookups).
 */
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "lim_pvt.h"

#define CSV_LINE_MAX 4096
#define CSV_COLS_MAX 32
#define YUAN 100LL

struct csv {
	const char *name;
	const char *p, *end;       /* the rest of the input */
	unsigned line;             /* of the current record */
	char *err;
	size_t errlen;
	unsigned nf;               /* fields of the current record */
	const char *f[CSV_COLS_MAX];
	char buf[CSV_LINE_MAX + CSV_COLS_MAX]; /* fields, NUL-terminated */
	/* the header: column -> field index, or -1 */
	int col[CSV_COLS_MAX];
	unsigned ncols;            /* fields of the header */
	const char *const *names;  /* column names, by column id */
	unsigned nnames;
};

__attribute__((format(printf, 2, 3))) static int
csv_fail(struct csv *c, const char *fmt, ...)
{
	char msg[384];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	if (c->err && c->errlen)
		snprintf(c->err, c->errlen, "%s:%u: %s", c->name, c->line, msg);
	return -EINVAL;
}

/* Error about column @p id of the current record, showing its value. */
__attribute__((format(printf, 3, 4))) static int
col_fail(struct csv *c, unsigned id, const char *fmt, ...)
{
	char msg[320];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	return csv_fail(c, "column %s: %s", c->names[id], msg);
}

/* ---- splitting ---------------------------------------------------------- */

static bool
is_space(char ch)
{
	return ch == ' ' || ch == '\t';
}

/* Copy one field starting at @p s (line ends at @p e) into *o. */
static int
split_field(struct csv *c, const char **s, const char *e, char **o)
{
	const char *q = *s;

	while (q < e && is_space(*q))
		q++;
	if (q < e && *q == '"') {
		for (q++;; q++) {
			if (q == e)
				return csv_fail(c, "field %u: unterminated quote",
						c->nf + 1);
			if (*q == '"' && q + 1 < e && q[1] == '"')
				q++;
			else if (*q == '"')
				break;
			*(*o)++ = *q;
		}
		for (q++; q < e && is_space(*q); q++)
			;
		if (q < e && *q != ',')
			return csv_fail(c, "field %u: text after the closing "
					"quote", c->nf + 1);
	} else {
		const char *start = q, *stop;

		while (q < e && *q != ',') {
			if (*q == '"')
				return csv_fail(c, "field %u: quote inside an "
						"unquoted field", c->nf + 1);
			q++;
		}
		for (stop = q; stop > start && is_space(stop[-1]); stop--)
			;
		memcpy(*o, start, (size_t)(stop - start));
		*o += stop - start;
	}
	*(*o)++ = '\0';
	*s = q;
	return 0;
}

/* Split the line [s, e) into c->f[]. */
static int
split_line(struct csv *c, const char *s, const char *e)
{
	char *o = c->buf;
	int rc;

	c->nf = 0;
	for (;;) {
		if (c->nf == CSV_COLS_MAX)
			return csv_fail(c, "more than %u fields", CSV_COLS_MAX);
		c->f[c->nf] = o;
		rc = split_field(c, &s, e, &o);
		if (rc)
			return rc;
		c->nf++;
		if (s == e)
			return 0;
		s++; /* the comma */
	}
}

static bool
blank(const char *s, const char *e)
{
	for (; s < e; s++)
		if (!is_space(*s))
			return false;
	return true;
}

/*
 * Read the next non-blank line into c->f[]. Returns 1 with a record, 0 at
 * the end of the input, or a negative errno.
 */
static int
next_record(struct csv *c)
{
	while (c->p < c->end) {
		const char *nl = memchr(c->p, '\n', (size_t)(c->end - c->p));
		const char *e = nl ? nl : c->end, *s = c->p;

		c->line++;
		c->p = nl ? nl + 1 : c->end;
		if (e > s && e[-1] == '\r')
			e--;
		if (memchr(s, '\0', (size_t)(e - s)))
			return csv_fail(c, "a NUL byte (not a text file?)");
		if (e - s > CSV_LINE_MAX)
			return csv_fail(c, "line longer than %u bytes",
					CSV_LINE_MAX);
		if (blank(s, e))
			continue;
		return split_line(c, s, e) ?: 1;
	}
	return 0;
}

/* ---- header ------------------------------------------------------------- */

static int
read_header(struct csv *c, const char *const *names, unsigned nnames)
{
	int rc = next_record(c);

	c->names = names;
	c->nnames = nnames;
	if (rc < 0)
		return rc;
	if (rc == 0) {
		c->line = c->line ? c->line : 1;
		return csv_fail(c, "no header line (an empty file?)");
	}
	for (unsigned i = 0; i < nnames; i++)
		c->col[i] = -1;
	for (unsigned i = 0; i < c->nf; i++) {
		unsigned id;

		for (id = 0; id < nnames; id++)
			if (strcmp(c->f[i], names[id]) == 0)
				break;
		if (id == nnames)
			return csv_fail(c, "column %u: unknown column '%s'",
					i + 1, c->f[i]);
		if (c->col[id] >= 0)
			return csv_fail(c, "column %u: column '%s' given twice",
					i + 1, c->f[i]);
		c->col[id] = (int)i;
	}
	c->ncols = c->nf;
	return 0;
}

/* At most one of a fen / yuan pair of columns. */
static int
one_of(struct csv *c, unsigned fen, unsigned yuan)
{
	if (c->col[fen] >= 0 && c->col[yuan] >= 0)
		return csv_fail(c, "columns %s and %s: give one of them",
				c->names[fen], c->names[yuan]);
	return 0;
}

/* The value of column @p id in the current record; NULL when the column is
 * absent or the field empty. */
static const char *
field(const struct csv *c, unsigned id)
{
	const char *v = c->col[id] >= 0 ? c->f[c->col[id]] : NULL;

	return v && *v ? v : NULL;
}

/* ---- values ------------------------------------------------------------- */

static int
get_uint(struct csv *c, unsigned id, uint64_t max, uint64_t *out)
{
	const char *v = field(c, id);
	int rc;

	if (!v)
		return 1;
	rc = lim_parse_u64(v, max, out);
	if (rc == -EINVAL)
		return col_fail(c, id, "'%s' is not a number", v);
	if (rc)
		return col_fail(c, id, "'%s' is out of range 0..%llu", v,
				(unsigned long long)max);
	return 0;
}

static int
get_bool(struct csv *c, unsigned id, bool *out)
{
	const char *v = field(c, id);

	if (!v)
		return 1;
	if (strcmp(v, "0") && strcmp(v, "1"))
		return col_fail(c, id, "'%s' is not 0 or 1", v);
	*out = v[0] == '1';
	return 0;
}

/* Yuan with at most two decimals, exactly, into fen (lim_parse_yuan). */
static int
parse_yuan(struct csv *c, unsigned id, const char *v, int64_t *out)
{
	int rc = lim_parse_yuan(v, out, NULL, 0);

	if (rc == -EDOM)
		return col_fail(c, id, "'%s' has more than 2 decimals", v);
	if (rc == -ERANGE)
		return col_fail(c, id, "'%s' is out of range (at most %lld "
				"yuan)", v, LIM_MONEY_MAX / YUAN);
	if (rc)
		return col_fail(c, id, "'%s' is not an amount", v);
	return 0;
}

/*
 * An amount from column @p fen (integer fen) or @p yuan (decimal yuan);
 * 1 when neither is given. At most LIM_MONEY_MAX, never negative.
 */
static int
get_money(struct csv *c, unsigned fen, unsigned yuan, int64_t *out)
{
	const char *v = field(c, fen);
	uint64_t u;
	int rc;

	if (!v)
		return yuan < c->nnames && field(c, yuan)
			       ? parse_yuan(c, yuan, field(c, yuan), out)
			       : 1;
	rc = lim_parse_u64(v, LIM_MONEY_MAX, &u);
	if (rc == -EINVAL)
		return col_fail(c, fen, "'%s' is not an amount", v);
	if (rc)
		return col_fail(c, fen, "'%s' is out of range (at most %lld "
				"fen)", v, LIM_MONEY_MAX);
	*out = (int64_t)u;
	return 0;
}

static int
get_time(struct csv *c, unsigned id, uint32_t *out)
{
	const char *v = field(c, id);

	if (!v)
		return 1;
	if (lim_parse_time(v, out, NULL, 0) == 0)
		return 0;
	return col_fail(c, id, "'%s' is not unix seconds or an ISO 8601 UTC "
			"time (e.g. 2026-11-11T00:00:00Z)", v);
}

/* ---- input -------------------------------------------------------------- */

static int
check_fields(struct csv *c)
{
	if (c->nf != c->ncols)
		return csv_fail(c, "%u fields, the header has %u", c->nf,
				c->ncols);
	return 0;
}

typedef int (*csv_row_fn)(struct csv *c, void *arg);

/* Read the header, then call @p row for every record. */
static int
csv_run(struct csv *c, const char *const *names, unsigned nnames,
	int (*header)(struct csv *c), csv_row_fn row, void *arg)
{
	int rc = read_header(c, names, nnames);

	if (!rc)
		rc = header(c);
	while (!rc && (rc = next_record(c)) == 1) {
		rc = check_fields(c);
		if (!rc)
			rc = row(c, arg);
	}
	return rc;
}

/* Map @p path; calls @p fn on its bytes. */
static int
with_file(const char *path, char *err, size_t errlen,
	  int (*fn)(const char *buf, size_t len, void *arg), void *arg)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC), rc;
	struct stat st;
	void *p = NULL;

	if (fd < 0 || fstat(fd, &st) != 0) {
		rc = -errno;
		snprintf(err, errlen, "%s: %s", path, strerror(errno));
		if (fd >= 0)
			close(fd);
		return rc;
	}
	if (st.st_size > 0) {
		p = mmap(NULL, (size_t)st.st_size, PROT_READ, MAP_PRIVATE, fd, 0);
		if (p == MAP_FAILED) {
			rc = -errno;
			snprintf(err, errlen, "%s: mmap: %s", path, strerror(errno));
			close(fd);
			return rc;
		}
	}
	close(fd);
	rc = fn(p ? p : "", (size_t)st.st_size, arg);
	if (p)
		munmap(p, (size_t)st.st_size);
	return rc;
}

/* ---- users -------------------------------------------------------------- */

enum ucol {
	U_USER_ID, U_LIMIT_FEN, U_LIMIT_YUAN, U_TIER, U_REGION,
	U_SELF_CAP_FEN, U_SELF_CAP_YUAN, U_SOFT_CAP, U_FROZEN,
	U_TEMP_QUOTA_FEN, U_TEMP_QUOTA_YUAN, U_TEMP_UNTIL,
	U_CASH_LIMIT_FEN, U_CASH_LIMIT_YUAN, U_ALERT_FEN, U_ALERT_YUAN,
	U_OUTSTANDING_FEN, U_RISK, U_COLS
};

static const char *const user_cols[U_COLS] = {
	"user_id", "limit_fen", "limit_yuan", "tier", "region",
	"self_cap_fen", "self_cap_yuan", "soft_cap", "frozen",
	"temp_quota_fen", "temp_quota_yuan", "temp_until",
	"cash_limit_fen", "cash_limit_yuan", "alert_fen", "alert_yuan",
	"outstanding_fen", "risk",
};

struct users_ctx {
	struct lim_db *db;
	uint64_t base;             /* users in the table before the import */
	uint32_t *line_of;         /* line of each imported slot */
	uint64_t line_cap;
	uint64_t n;
	int64_t outstanding;       /* sum, <= n * LIM_MONEY_MAX: checked */
};

static int
users_header(struct csv *c)
{
	int rc = one_of(c, U_LIMIT_FEN, U_LIMIT_YUAN);

	if (!rc)
		rc = one_of(c, U_SELF_CAP_FEN, U_SELF_CAP_YUAN);
	if (!rc)
		rc = one_of(c, U_TEMP_QUOTA_FEN, U_TEMP_QUOTA_YUAN);
	if (!rc)
		rc = one_of(c, U_CASH_LIMIT_FEN, U_CASH_LIMIT_YUAN);
	if (!rc)
		rc = one_of(c, U_ALERT_FEN, U_ALERT_YUAN);
	if (rc)
		return rc;
	if (c->col[U_USER_ID] < 0)
		return csv_fail(c, "no column user_id");
	if (c->col[U_LIMIT_FEN] < 0 && c->col[U_LIMIT_YUAN] < 0)
		return csv_fail(c, "no column limit_fen or limit_yuan");
	return 0;
}

/* 0 = set, 1 = not given, < 0 = error; *given tells set from absent. */
static int
opt_money(struct csv *c, unsigned fen, unsigned yuan, int64_t *v, bool *given)
{
	int rc = get_money(c, fen, yuan, v);

	*given = rc == 0;
	return rc < 0 ? rc : 0;
}

static int
user_ext(struct csv *c, struct lim_user_ext *x, bool *has)
{
	bool tq = false, cl = false, al = false;
	int rc;

	memset(x, 0, sizeof(*x));
	x->cash_limit_fen = -1;
	x->alert_fen = -1;
	rc = opt_money(c, U_TEMP_QUOTA_FEN, U_TEMP_QUOTA_YUAN,
		       &x->temp_quota_fen, &tq);
	if (!rc)
		rc = opt_money(c, U_CASH_LIMIT_FEN, U_CASH_LIMIT_YUAN,
			       &x->cash_limit_fen, &cl);
	if (!rc)
		rc = opt_money(c, U_ALERT_FEN, U_ALERT_YUAN, &x->alert_fen, &al);
	if (!rc) {
		rc = get_time(c, U_TEMP_UNTIL, &x->temp_until_s);
		if (rc == 1 && tq && x->temp_quota_fen > 0)
			return col_fail(c, U_TEMP_UNTIL, "required with a "
					"temporary quota");
		rc = rc == 1 ? 0 : rc;
	}
	*has = tq || cl || al;
	return rc;
}

static int
user_fields(struct csv *c, struct lim_user *u)
{
	uint64_t v;
	bool b = false;
	int rc;

	memset(u, 0, sizeof(*u));
	rc = get_uint(c, U_USER_ID, UINT64_MAX, &u->user_id);
	if (rc == 1 || (rc == 0 && u->user_id == 0))
		return col_fail(c, U_USER_ID, rc ? "empty" : "user id 0");
	if (rc)
		return rc;
	rc = get_money(c, U_LIMIT_FEN, U_LIMIT_YUAN, &u->limit_fen);
	if (rc == 1)
		return col_fail(c, c->col[U_LIMIT_FEN] >= 0 ? U_LIMIT_FEN
							    : U_LIMIT_YUAN,
				"empty");
	if (rc)
		return rc;
	if ((rc = get_uint(c, U_TIER, LIM_TIERS - 1, &v)) < 0)
		return rc;
	u->tier = rc ? 0 : (uint8_t)v;
	if ((rc = get_uint(c, U_REGION, UINT16_MAX, &v)) < 0)
		return rc;
	u->region = rc ? 0 : (uint16_t)v;
	if ((rc = get_money(c, U_SELF_CAP_FEN, U_SELF_CAP_YUAN,
			    &u->self_cap_fen)) < 0)
		return rc;
	if ((rc = get_bool(c, U_SOFT_CAP, &b)) < 0)
		return rc;
	u->flags |= rc == 0 && b ? LIM_USER_SOFT_CAP : 0;
	if ((rc = get_bool(c, U_FROZEN, &b)) < 0)
		return rc;
	u->flags |= rc == 0 && b ? LIM_USER_FROZEN : 0;
	if ((rc = get_money(c, U_OUTSTANDING_FEN, U_COLS,
			    &u->outstanding_fen)) < 0)
		return rc;
	if ((rc = get_uint(c, U_RISK, 1000, &v)) < 0)
		return rc;
	u->risk_q = rc ? 0 : (uint8_t)(v / 4);
	return 0;
}

/* Remember the line of slot @p slot (imported users only). */
static int
note_line(struct users_ctx *x, uint64_t slot, unsigned line)
{
	uint64_t i = slot - x->base;

	if (i >= x->line_cap) {
		uint64_t cap = x->line_cap ? x->line_cap * 2 : 4096;
		uint32_t *p = realloc(x->line_of, cap * sizeof(*p));

		if (!p)
			return -ENOMEM;
		x->line_of = p;
		x->line_cap = cap;
	}
	x->line_of[i] = line;
	return 0;
}

static int
user_dup(struct csv *c, struct users_ctx *x, uint64_t id)
{
	struct lim_user *u = lim_users_find(x->db->users, id);
	uint64_t slot = (uint64_t)(u - lim_users_at(x->db->users, 0));

	if (slot >= x->base && slot - x->base < x->n)
		return col_fail(c, U_USER_ID, "duplicate user %llu (first on "
				"line %u)", (unsigned long long)id,
				x->line_of[slot - x->base]);
	return col_fail(c, U_USER_ID, "user %llu is already in the database",
			(unsigned long long)id);
}

static int
user_row(struct csv *c, void *arg)
{
	struct users_ctx *x = arg;
	struct lim_user_ext e;
	struct lim_user u;
	bool has_ext = false;
	int rc = user_fields(c, &u);

	if (!rc)
		rc = user_ext(c, &e, &has_ext);
	if (rc)
		return rc;
	if (has_ext) {
		u.flags |= LIM_USER_EXT;
		e.user_id = u.user_id;
	}
	rc = lim_users_insert(x->db->users, &u);
	if (rc == -EEXIST)
		return user_dup(c, x, u.user_id);
	if (rc == -ENOSPC)
		return csv_fail(c, "the user table is full (%llu users)",
				(unsigned long long)lim_users_capacity(x->db->users));
	if (!rc && has_ext)
		rc = lim_ext_set(x->db, &e);
	if (!rc)
		rc = note_line(x, lim_users_count(x->db->users) - 1, c->line);
	if (rc)
		return csv_fail(c, "%s", strerror(-rc));
	x->outstanding += u.outstanding_fen;
	if (x->outstanding > LIM_MONEY_MAX)
		return col_fail(c, U_OUTSTANDING_FEN, "the total outstanding "
				"passes %lld fen", LIM_MONEY_MAX);
	x->n++;
	return 0;
}

struct users_job {
	struct lim_db *db;
	const char *name;
	uint64_t *n;
	char *err;
	size_t errlen;
};

static int
users_buf(const char *buf, size_t len, void *arg)
{
	struct users_job *j = arg;
	struct users_ctx x = {.db = j->db,
			      .base = lim_users_count(j->db->users)};
	struct csv *c = calloc(1, sizeof(*c));
	struct lim_budget *cap = j->db->cap;
	int rc;

	if (!c)
		return -ENOMEM;
	c->name = j->name;
	c->p = buf;
	c->end = buf + len;
	c->err = j->err;
	c->errlen = j->errlen;
	rc = csv_run(c, user_cols, U_COLS, users_header, user_row, &x);
	if (!rc && x.outstanding && !lim_budget_take(cap, 0, x.outstanding)) {
		snprintf(j->err, j->errlen, "%s: the users' outstanding debt "
			 "(%lld fen) exceeds the room under the lending ceiling "
			 "(%lld fen)", j->name, (long long)x.outstanding,
			 (long long)lim_budget_free_fen(cap));
		rc = -ERANGE;
	}
	lim_budget_flush(cap, 0);
	if (j->n)
		*j->n = x.n;
	free(x.line_of);
	free(c);
	return rc;
}

int
lim_csv_users_buf(struct lim_db *db, const char *name, const char *buf,
		  size_t len, uint64_t *n, char *err, size_t errlen)
{
	struct users_job j = {db, name, n, err, errlen};

	return users_buf(buf, len, &j);
}

int
lim_csv_import_users(struct lim_db *db, const char *path, uint64_t *n,
		     char *err, size_t errlen)
{
	struct users_job j = {db, path, n, err, errlen};

	return with_file(path, err, errlen, users_buf, &j);
}

/* ---- merchants ---------------------------------------------------------- */

enum mcol { M_MERCHANT_ID, M_MCC, M_REGION, M_BLOCKED, M_SUBSIDY, M_RISK,
	    M_COLS };

static const char *const merchant_cols[M_COLS] = {
	"merchant_id", "mcc", "region", "blocked", "subsidy", "risk",
};

/* merchant id -> line, to name the first line of a duplicate */
struct merchants_ctx {
	struct lim_db *db;
	uint64_t *map;             /* id << 32 | line; 0 = empty */
	uint64_t mask;
	uint64_t n;
};

static int
merchants_header(struct csv *c)
{
	if (c->col[M_MERCHANT_ID] < 0)
		return csv_fail(c, "no column merchant_id");
	return 0;
}

/* "3|6|12": terms whose interest the merchant pays; empty = none. */
static int
get_subsidy(struct csv *c, uint8_t *out)
{
	const char *v = field(c, M_SUBSIDY), *p = v;

	*out = 0;
	while (p && *p) {
		size_t n = strcspn(p, "|");
		uint8_t bit = n == 1 && p[0] == '3'   ? LIM_SUBSIDY_3
			      : n == 1 && p[0] == '6' ? LIM_SUBSIDY_6
			      : n == 2 && p[0] == '1' && p[1] == '2'
				      ? LIM_SUBSIDY_12
				      : 0;

		if (!bit)
			return col_fail(c, M_SUBSIDY, "'%s' is not a list of "
					"terms 3, 6, 12 separated by '|'", v);
		if (*out & bit)
			return col_fail(c, M_SUBSIDY, "'%s' names a term twice",
					v);
		*out |= bit;
		p += n;
		if (*p == '|' && *++p == '\0')
			return col_fail(c, M_SUBSIDY, "'%s' ends with '|'", v);
	}
	return 0;
}

static int
merchant_fields(struct csv *c, struct lim_merchant *m)
{
	uint64_t v;
	bool b = false;
	int rc;

	memset(m, 0, sizeof(*m));
	rc = get_uint(c, M_MERCHANT_ID, UINT32_MAX, &v);
	if (rc == 1 || (rc == 0 && v == 0))
		return col_fail(c, M_MERCHANT_ID, rc ? "empty" : "merchant id 0");
	if (rc)
		return rc;
	m->merchant_id = (uint32_t)v;
	if ((rc = get_uint(c, M_MCC, 9999, &v)) < 0)
		return rc;
	m->mcc = rc ? 0 : (uint16_t)v;
	if ((rc = get_uint(c, M_REGION, UINT16_MAX, &v)) < 0)
		return rc;
	m->region = rc ? 0 : (uint16_t)v;
	if ((rc = get_bool(c, M_BLOCKED, &b)) < 0)
		return rc;
	m->flags = rc == 0 && b ? LIM_MERCHANT_BLOCKED : 0;
	if ((rc = get_uint(c, M_RISK, 1000, &v)) < 0)
		return rc;
	m->risk_score = rc ? 0 : (uint16_t)v;
	return get_subsidy(c, &m->subsidy);
}

/* The line merchant @p id was first seen on, or 0; else remember it. */
static int
merchant_seen(struct merchants_ctx *x, uint32_t id, unsigned line,
	      unsigned *first)
{
	uint64_t j;

	if (x->n * 2 >= x->mask) {
		uint64_t len = (x->mask + 1) * 2, *old = x->map;
		uint64_t *map = calloc(len, sizeof(*map));

		if (!map)
			return -ENOMEM;
		for (uint64_t i = 0; old && i <= x->mask; i++) {
			if (!old[i])
				continue;
			for (j = lim_mix64(old[i] >> 32) & (len - 1); map[j];
			     j = (j + 1) & (len - 1))
				;
			map[j] = old[i];
		}
		free(old);
		x->map = map;
		x->mask = len - 1;
	}
	for (j = lim_mix64(id) & x->mask; x->map[j]; j = (j + 1) & x->mask) {
		if (x->map[j] >> 32 == id) {
			*first = (unsigned)x->map[j];
			return 0;
		}
	}
	x->map[j] = (uint64_t)id << 32 | line;
	*first = 0;
	return 0;
}

static int
merchant_row(struct csv *c, void *arg)
{
	struct merchants_ctx *x = arg;
	struct lim_merchant m;
	unsigned first;
	int rc = merchant_fields(c, &m);

	if (rc)
		return rc;
	if (merchant_seen(x, m.merchant_id, c->line, &first))
		return csv_fail(c, "out of memory");
	if (first)
		return col_fail(c, M_MERCHANT_ID, "duplicate merchant %u (first "
				"on line %u)", m.merchant_id, first);
	if (lim_merchant_find(x->db, m.merchant_id))
		return col_fail(c, M_MERCHANT_ID, "merchant %u is already in the "
				"database", m.merchant_id);
	rc = lim_merchant_set(x->db, &m);
	if (rc)
		return csv_fail(c, "%s", strerror(-rc));
	x->n++;
	return 0;
}

static int
merchants_buf(const char *buf, size_t len, void *arg)
{
	struct users_job *j = arg;
	struct merchants_ctx x = {.db = j->db, .mask = 1023};
	struct csv *c = calloc(1, sizeof(*c));
	int rc;

	x.map = calloc(x.mask + 1, sizeof(*x.map));
	if (!c || !x.map) {
		free(c);
		free(x.map);
		return -ENOMEM;
	}
	c->name = j->name;
	c->p = buf;
	c->end = buf + len;
	c->err = j->err;
	c->errlen = j->errlen;
	rc = csv_run(c, merchant_cols, M_COLS, merchants_header, merchant_row,
		     &x);
	if (j->n)
		*j->n = x.n;
	free(x.map);
	free(c);
	return rc;
}

int
lim_csv_merchants_buf(struct lim_db *db, const char *name, const char *buf,
		      size_t len, uint64_t *n, char *err, size_t errlen)
{
	struct users_job j = {db, name, n, err, errlen};

	return merchants_buf(buf, len, &j);
}

int
lim_csv_import_merchants(struct lim_db *db, const char *path, uint64_t *n,
			 char *err, size_t errlen)
{
	struct users_job j = {db, path, n, err, errlen};

	return with_file(path, err, errlen, merchants_buf, &j);
}
