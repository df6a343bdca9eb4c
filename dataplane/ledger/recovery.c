/*
 * recovery.c - the engine's state at start: the newest valid snapshot,
 * then every journal record after it (docs/durability.md, "Recovery").
 *
 * 1. Snapshot: --snapshot FILE is loaded or start-up stops; --snapshot DIR
 *    means its *.snap files, newest (highest seq_end) first: a damaged one
 *    is skipped with a warning and the next older one tried; none valid
 *    stops start-up. No snapshot: an empty database, redo from seq 1.
 * 2. Journal: every segment header and the chain are checked, the records
 *    of the segments holding seq > seq_start are verified (checksum, kind,
 *    contiguous seq) and redone with lim_redo() from seq_start + 1.
 *    A torn tail (journal_scan.c) is cut and reported; anything else that does
 *    not verify stops start-up with the file, the byte offset and why.
 * 3. Cross-checks: the journal must hold seq_start + 1 (or start at 1
 *    without a snapshot) and reach at least the snapshot's seq_end: a
 *    snapshot is published only once the journal is durable past its
 *    seq_end (ctl.c), so a journal that ends before it has lost records.
 *    The ceiling budget must equal the users' debt and holds.
 *
 * No DPDK: authd and authjournal (summary) share it. The caller is a
 * registered QSBR thread, online; the database is not shared yet.
 */
#define _GNU_SOURCE
#include <dirent.h>
#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <fcntl.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "journal.h"

#define SNAP_CANDIDATES_MAX 4096

static double
now_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

__attribute__((format(printf, 2, 3))) static void
say(const struct dp_recover_opts *o, const char *fmt, ...)
{
	va_list ap;

	if (!o->log)
		return;
	fprintf(o->log, "authd: recovery: ");
	va_start(ap, fmt);
	vfprintf(o->log, fmt, ap);
	va_end(ap);
	fputc('\n', o->log);
	fflush(o->log);
}

/* ------------------------------------------------------------------------ */
/* The snapshot                                                               */

struct cand {
	char path[PATH_MAX];
	uint64_t seq_end;
	uint64_t created_s;
	bool ok;                   /* inspect passed */
	char why[256];
};

static int
cand_cmp(const void *a, const void *b)
{
	const struct cand *x = a, *y = b;

	if (x->seq_end != y->seq_end)
		return x->seq_end > y->seq_end ? -1 : 1;
	return x->created_s > y->created_s ? -1 : x->created_s < y->created_s;
}

static bool
is_snap(const char *name)
{
	size_t n = strlen(name);

	return n > 5 && !strcmp(name + n - 5, ".snap") && name[0] != '.';
}

/* The *.snap files of @p dir, newest first (inspected, not loaded). */
static int
candidates(const char *dir, struct cand **out, unsigned *n)
{
	DIR *d = opendir(dir);
	struct cand *v = NULL;
	struct dirent *de;
	unsigned k = 0;

	*out = NULL;
	*n = 0;
	if (!d)
		return -errno;
	while ((de = readdir(d)) != NULL && k < SNAP_CANDIDATES_MAX) {
		struct lim_snapshot_info info;
		struct cand *nv;

		if (!is_snap(de->d_name))
			continue;
		nv = realloc(v, (k + 1) * sizeof(*v));
		if (!nv) {
			closedir(d);
			free(v);
			return -ENOMEM;
		}
		v = nv;
		memset(&v[k], 0, sizeof(v[k]));
		snprintf(v[k].path, sizeof(v[k].path), "%s/%s", dir, de->d_name);
		v[k].ok = lim_snapshot_inspect(v[k].path, &info, v[k].why,
					       sizeof(v[k].why)) == 0;
		if (v[k].ok) {
			v[k].seq_end = info.seq_end;
			v[k].created_s = info.created_s;
		}
		k++;
	}
	closedir(d);
	if (k)
		qsort(v, k, sizeof(*v), cand_cmp);
	*out = v;
	*n = k;
	return 0;
}

/* An empty database: the sizes asked for, or defaults. */
static struct lim_db *
empty_db(const struct dp_recover_opts *o)
{
	struct lim_db_config c = o->db;

	if (!c.users_max)
		c.users_max = 65536;
	if (!c.ops_max)
		c.ops_max = 1u << 20;
	if (!c.merchants_max)
		c.merchants_max = 1024;
	if (!c.groups_max)
		c.groups_max = 1024;
	if (!c.shards)
		c.shards = 4;
	return lim_db_create(&c);
}

static struct lim_db *
load_one(const struct dp_recover_opts *o, const char *path,
	 struct lim_snapshot_meta *meta, char *err, size_t errlen)
{
	return lim_snapshot_load(path, &o->db, o->progress, meta, err, errlen);
}

/* Newest valid snapshot of a directory; damaged ones are skipped, said. */
static struct lim_db *
load_from_dir(const struct dp_recover_opts *o, struct dp_recover_result *res,
	      struct lim_snapshot_meta *meta, char *err, size_t errlen)
{
	struct cand *c;
	unsigned n;
	char why[512];
	int rc = candidates(o->snapshot, &c, &n);

	if (rc) {
		snprintf(err, errlen, "%s: %s", o->snapshot, strerror(-rc));
		return NULL;
	}
	for (unsigned i = 0; i < n; i++) {
		struct lim_db *db = NULL;

		if (c[i].ok)
			db = load_one(o, c[i].path, meta, why, sizeof(why));
		if (db) {
			snprintf(res->snapshot_used, sizeof(res->snapshot_used),
				 "%s", c[i].path);
			free(c);
			return db;
		}
		say(o, "WARNING: snapshot %s is damaged, trying an older one: %s",
		    c[i].path, c[i].ok ? why : c[i].why);
		res->snapshots_skipped++;
	}
	free(c);
	if (n == 0) {
		res->snapshot_used[0] = 0;
		say(o, "%s holds no snapshot: starting from an empty database",
		    o->snapshot);
		return empty_db(o);
	}
	snprintf(err, errlen, "%s: none of its %u snapshots is valid", o->snapshot,
		 n);
	return NULL;
}

static struct lim_db *
load_snapshot(const struct dp_recover_opts *o, struct dp_recover_result *res,
	      struct lim_snapshot_meta *meta, bool *have_meta, char *err,
	      size_t errlen)
{
	struct stat st;
	struct lim_db *db;

	*have_meta = false;
	if (!o->snapshot || !o->snapshot[0])
		return empty_db(o);
	if (stat(o->snapshot, &st) == 0 && S_ISDIR(st.st_mode)) {
		db = load_from_dir(o, res, meta, err, errlen);
		*have_meta = db && res->snapshot_used[0];
		return db;
	}
	db = load_one(o, o->snapshot, meta, err, errlen);
	if (db) {
		snprintf(res->snapshot_used, sizeof(res->snapshot_used), "%s",
			 o->snapshot);
		*have_meta = true;
	}
	return db;
}

/* ------------------------------------------------------------------------ */
/* The journal                                                                */

struct redo_ctx {
	struct lim_redo *r;
	const char *dir;
	uint64_t from;             /* first seq the redo needs */
	bool any;
	char why[512];
};

static int
visit(const struct lim_effect *e, void *arg)
{
	struct redo_ctx *x = arg;
	int rc;

	if (!x->any && e->seq != x->from) {
		snprintf(x->why, sizeof(x->why),
			 "%s: starts at seq %" PRIu64 " but seq %" PRIu64
			 " is needed (%s): records are missing", x->dir, e->seq,
			 x->from, x->from == 1 ? "no snapshot"
					       : "the snapshot's seq_start + 1");
		return -ERANGE;
	}
	x->any = true;
	rc = lim_redo(x->r, e, x->why, sizeof(x->why));
	return rc;
}

static int
redo_journal(const struct dp_recover_opts *o, struct dp_recover_result *res,
	       struct lim_db *db, const struct lim_snapshot_meta *meta,
	       char *err, size_t errlen)
{
	struct redo_ctx x = {.dir = o->journal_dir,
			       .from = (meta ? meta->seq_start : 0) + 1};
	struct dp_journal_err je;
	int rc;

	x.r = lim_redo_create(db, meta, db->shards - 1);
	if (!x.r)
		return -ENOMEM;
	rc = dp_journal_scan(o->journal_dir, x.from, 0, visit, &x, &res->scan, &je);
	if (rc == -ENOENT) {
		rc = 0; /* no directory yet: a new journal */
		memset(&res->scan, 0, sizeof(res->scan));
	}
	if (rc == -EBADMSG || rc == -EIO)
		snprintf(err, errlen, "journal damaged: %s", je.why);
	else if (rc)
		snprintf(err, errlen, "journal %s: %s", o->journal_dir,
			 x.why[0] ? x.why : strerror(-rc));
	if (!rc) {
		struct lim_redo_stats st;

		rc = lim_redo_finish(x.r, &st, x.why, sizeof(x.why));
		if (rc)
			snprintf(err, errlen, "after replaying the journal: %s",
				 x.why);
		res->redone = st.records;
		memcpy(res->by_kind, st.by_kind, sizeof(res->by_kind));
		res->rs = malloc(sizeof(*res->rs));
		if (res->rs)
			*res->rs = st;
	}
	lim_redo_free(x.r);
	return rc;
}

/* The journal must cover the snapshot: from seq_start + 1 to seq_end. */
static int
cover_check(const struct dp_recover_opts *o, const struct dp_recover_result *res,
	    const struct lim_snapshot_meta *meta, char *err, size_t errlen)
{
	const struct dp_journal_scan *s = &res->scan;

	if (!s->n_segments || !meta)
		return 0;
	if (s->last_seq < meta->seq_end) {
		snprintf(err, errlen,
			 "journal %s ends at seq %" PRIu64 ", before snapshot %s "
			 "(seq %" PRIu64 "..%" PRIu64 "): the snapshot holds "
			 "effects the journal lost; use the snapshot that goes "
			 "with this journal, or a new journal directory",
			 o->journal_dir, s->last_seq, res->snapshot_used,
			 meta->seq_start, meta->seq_end);
		return -EBADMSG;
	}
	return 0;
}

static void
report(const struct dp_recover_opts *o, const struct dp_recover_result *res,
       struct lim_db *db)
{
	const struct dp_journal_scan *s = &res->scan;
	const struct lim_redo_stats *st = res->rs;
	double rate = res->redo_s > 0 ? (double)res->redone / res->redo_s : 0;

	if (res->snapshot_used[0])
		say(o, "snapshot %s: seq %" PRIu64 "..%" PRIu64 ", %" PRIu64
		    " users, loaded in %.3f s", res->snapshot_used,
		    res->snap_seq_start, res->snap_seq_end,
		    lim_users_count(db->users), res->load_s);
	else
		say(o, "no snapshot: replaying the journal from seq 1");
	if (!o->journal_dir)
		return;
	if (!s->n_segments) {
		say(o, "journal %s: empty, it starts at seq %" PRIu64,
		    o->journal_dir, db->seq + 1);
		return;
	}
	say(o, "journal %s: %u segment(s), seq %" PRIu64 "..%" PRIu64 "; "
	    "replayed %" PRIu64 " records in %.3f s (%.0f records/s); "
	    "engine seq %" PRIu64, o->journal_dir, s->n_segments, s->first_seq,
	    s->last_seq, res->redone, res->redo_s, rate, db->seq);
	if (st && (st->unknown_user || st->missing_ref || st->budget_short ||
		   st->settings_failed))
		say(o, "WARNING: anomalies while replaying: %" PRIu64 " records "
		    "of unknown users, %" PRIu64 " missing refs, %" PRIu64
		    " budget takes short, %" PRIu64 " settings refused",
		    st->unknown_user, st->missing_ref, st->budget_short,
		    st->settings_failed);
}

/*
 * One writer per journal: an exclusive lock on DIR/journal.lock, held until
 * the process ends (the kernel drops it, also on SIGKILL). Two authd
 * appending to one journal would interleave their records.
 */
static int
lock_journal(const char *dir, char *err, size_t errlen)
{
	static int fd = -1;
	char path[PATH_MAX];

	if (fd >= 0)
		return 0;
	if (mkdir(dir, 0755) && errno != EEXIST) {
		snprintf(err, errlen, "%s: mkdir: %s", dir, strerror(errno));
		return -errno;
	}
	snprintf(path, sizeof(path), "%s/journal.lock", dir);
	fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0644);
	if (fd < 0) {
		snprintf(err, errlen, "%s: %s", path, strerror(errno));
		return -errno;
	}
	if (flock(fd, LOCK_EX | LOCK_NB)) {
		int e = errno;

		snprintf(err, errlen, "%s: %s", path,
			 e == EWOULDBLOCK ? "the journal is in use by another "
					    "process (another authd?)"
					  : strerror(e));
		close(fd);
		fd = -1;
		return -e;
	}
	return 0;
}

/* Cut a torn tail (and rewrite a stale index), saying what was cut. */
static int
repair(const struct dp_recover_opts *o, struct dp_recover_result *res,
       char *err, size_t errlen)
{
	struct dp_journal_scan *s = &res->scan;
	struct dp_journal_err je;
	char note[PATH_MAX + 256] = "";

	if (!s->torn && !s->index_stale)
		return 0;
	if (s->torn)
		snprintf(note, sizeof(note), "torn tail at %s:%" PRIu64 " (%" PRIu64
			 " bytes: %s)", s->torn_path, s->torn_off, s->torn_bytes,
			 s->torn_why);
	if (!o->cut_torn_tail) {
		if (s->torn)
			say(o, "%s: not cut (read-only)", note);
		return 0;
	}
	if (dp_journal_cut_tail(o->journal_dir, s, &je)) {
		snprintf(err, errlen, "cutting the torn tail: %s", je.why);
		return -EIO;
	}
	if (note[0])
		say(o, "%s: cut; the journal ends at seq %" PRIu64, note,
		    s->last_seq);
	if (s->index_note[0])
		say(o, "%s", s->index_note);
	return 0;
}

int
dp_recover(const struct dp_recover_opts *o, struct dp_recover_result *res,
	   char *err, size_t errlen)
{
	struct lim_snapshot_meta meta;
	bool have_meta;
	struct lim_db *db;
	double t0 = now_s();
	int rc = 0;

	memset(res, 0, sizeof(*res));
	memset(&meta, 0, sizeof(meta));
	/* authd (it writes): one writer at a time, checked before anything */
	if (o->journal_dir && o->journal_dir[0] && o->cut_torn_tail &&
	    (rc = lock_journal(o->journal_dir, err, errlen)) != 0)
		return rc;
	db = load_snapshot(o, res, &meta, &have_meta, err, errlen);
	if (!db) {
		if (!err[0])
			snprintf(err, errlen, "cannot allocate the tables");
		return -EINVAL;
	}
	res->load_s = now_s() - t0;
	if (have_meta) {
		res->snap_seq_start = meta.seq_start;
		res->snap_seq_end = meta.seq_end;
	}
	if (o->journal_dir && o->journal_dir[0]) {
		t0 = now_s();
		rc = redo_journal(o, res, db, have_meta ? &meta : NULL, err,
				    errlen);
		res->redo_s = now_s() - t0;
		if (!rc)
			rc = cover_check(o, res, have_meta ? &meta : NULL, err,
					 errlen);
		if (!rc)
			rc = repair(o, res, err, errlen);
	}
	lim_snapshot_meta_free(&meta);
	if (rc) {
		lim_db_free(db);
		dp_recover_free(res);
		return rc;
	}
	res->db = db;
	report(o, res, db);
	return 0;
}

void
dp_recover_free(struct dp_recover_result *res)
{
	free(res->rs);
	res->rs = NULL;
}
