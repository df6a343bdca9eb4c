/*
 * snapshot_save.c - write every table of a lim_db to one snapshot file
 * while the dataplane runs (format: snapshot_fmt.c, docs/snapshot-format.md).
 *
 * Consistent per record, no stop (lim.h, "Snapshots"). A user is copied
 * under its lock with stamp = db->seq read under that lock: every effect on
 * the user with seq <= stamp is in the copy and none after it, because
 * lim_apply() takes the seq under the same lock. Op entries are found by a
 * walk of the store, then each is copied under its user's lock after
 * finding it again by key; its last_seq is its stamp. Group states are
 * copied under the group lock with their stamp. Budgets are not saved (the
 * loader derives them).
 *
 * Writes go through a 4 MiB buffer that hashes each section as it passes,
 * to a lim_file_tmp (file.c: PATH.tmp.XXXXXX in the same directory,
 * fsynced, renamed over PATH, the directory fsynced); the header and the
 * section table are written last, at offset 0. Any failure removes the
 * temporary file and says what failed.
 *
 * Concurrency: one caller, the updater, a registered QSBR thread with the
 * read side online. The save reports quiescent states between sections and
 * every ~1 M users, so the caller must hold no RCU-protected pointer across
 * it. It takes user, group and (inside lim_ops_*) partition locks, one at a
 * time, in the documented order.
 */
#include <errno.h>
#include <string.h>
#include <time.h>

#include <xxhash.h>

#include "lim_pvt.h"

#define SNAP_BUF_BYTES (4u << 20)         /* write buffer */

struct snap_writer {
	int fd;
	const char *tmp;           /* temporary path, for messages */
	uint8_t *buf;
	size_t len;                /* bytes in buf */
	size_t hash_from;          /* buf[hash_from, len) not hashed yet */
	uint64_t off;              /* file offset of buf[0] */
	XXH3_state_t *xs;
	bool in_section;
	int err;                   /* first failure (negative errno) */
	char *msg;
	size_t msglen;
	struct lim_snap_section sec[LIM_SNAP_TYPES];
	unsigned n_sec;
};

static int
w_fail(struct snap_writer *w, int rc, const char *what)
{
	if (!w->err) {
		w->err = rc;
		snprintf(w->msg, w->msglen, "%s: %s: %s", w->tmp, what,
			 strerror(-rc));
	}
	return w->err;
}

static void
w_hash_pending(struct snap_writer *w)
{
	if (w->in_section && w->len > w->hash_from)
		XXH3_64bits_update(w->xs, w->buf + w->hash_from,
				   w->len - w->hash_from);
	w->hash_from = w->len;
}

static int
w_flush(struct snap_writer *w)
{
	int rc;

	if (w->err)
		return w->err;
	w_hash_pending(w);
	rc = lim_write_full(w->fd, w->buf, w->len, 0, false);
	if (rc)
		return w_fail(w, rc, "write");
	w->off += w->len;
	w->len = 0;
	w->hash_from = 0;
	return 0;
}

/* Room for @p n contiguous bytes in the buffer (n <= SNAP_BUF_BYTES), or
 * NULL after a failed flush. */
static void *
w_reserve(struct snap_writer *w, size_t n)
{
	void *p;

	if (w->len + n > SNAP_BUF_BYTES && w_flush(w))
		return NULL;
	if (w->err)
		return NULL;
	p = w->buf + w->len;
	w->len += n;
	return p;
}

static void
w_put(struct snap_writer *w, const void *p, size_t n)
{
	void *d = w_reserve(w, n);

	if (d)
		memcpy(d, p, n);
}

static uint64_t
w_pos(const struct snap_writer *w)
{
	return w->off + w->len;
}

static void
w_section_begin(struct snap_writer *w, uint32_t type)
{
	uint64_t pad = lim_snap_align_up(w_pos(w)) - w_pos(w);
	struct lim_snap_section *s = &w->sec[w->n_sec];
	void *d;

	LIM_VERIFY(!w->in_section && w->n_sec < LIM_SNAP_TYPES - 1);
	d = w_reserve(w, pad);
	if (d)
		memset(d, 0, pad);
	memset(s, 0, sizeof(*s));
	s->type = type;
	s->record_size = lim_snap_types[type].record_size;
	s->offset = w_pos(w);
	w->hash_from = w->len;
	XXH3_64bits_reset(w->xs);
	w->in_section = true;
}

static void
w_section_end(struct snap_writer *w, uint64_t count)
{
	struct lim_snap_section *s = &w->sec[w->n_sec];

	LIM_VERIFY(w->in_section);
	w_hash_pending(w);
	w->in_section = false;
	s->count = count;
	s->length = w_pos(w) - s->offset;
	s->checksum = XXH3_64bits_digest(w->xs);
	if (!w->err)
		LIM_VERIFY(s->length == count * s->record_size);
	w->n_sec++;
}

/* First byte of the first section for a table of @p n entries. */
static uint64_t
sections_start(unsigned n)
{
	return lim_snap_align_up(LIM_SNAP_HDR_LEN +
				 (uint64_t)n * sizeof(struct lim_snap_section));
}

struct save_ctx {
	struct lim_db *db;
	struct snap_writer *w;
	uint64_t seq_start;
	uint64_t count;
	int err;
	/* ops: copies of one partition, deduplicated by key */
	struct lim_op *part_buf;
	uint64_t part_cap, part_n;
	uint32_t *set;             /* index + 1 into part_buf; 0 empty */
	uint64_t set_mask;
	unsigned part;
};

static int
stamp_of(struct save_ctx *c, uint64_t seq, uint32_t *stamp)
{
	uint64_t d = seq - c->seq_start;

	if (d > UINT32_MAX)
		return -EOVERFLOW;
	*stamp = (uint32_t)d;
	return 0;
}

/*
 * Copy user @p u, held locked, without reading its lock byte: a thread
 * waiting for the lock writes that byte (an atomic exchange) while we hold
 * it, so a plain memcpy of the whole slot would race with it (TSan saw it).
 */
static void
user_copy(struct lim_user *d, const struct lim_user *u)
{
	const size_t at = offsetof(struct lim_user, lock);

	memcpy(d, u, at);
	memcpy((char *)d + at + 1, (const char *)u + at + 1, sizeof(*d) - at - 1);
	d->lock = 0;
}

static int
save_users(struct save_ctx *c, uint32_t *stamps, uint64_t n)
{
	struct lim_users *t = c->db->users;

	for (uint64_t i = 0; i < n; i++) {
		struct lim_user *u = lim_users_at(t, i);
		struct lim_user *d = w_reserve(c->w, sizeof(*d));
		uint64_t seq;

		if (!d)
			return c->w->err;
		lim_user_lock(u);
		user_copy(d, u);
		seq = __atomic_load_n(&c->db->seq, __ATOMIC_RELAXED);
		lim_user_unlock(u);
		if (stamp_of(c, seq, &stamps[i]))
			return -EOVERFLOW;
		if ((i + 1) % LIM_SNAP_PROGRESS_USERS == 0)
			lim_quiescent_state();
	}
	return 0;
}

static int
save_ext_one(const void *rec, void *arg)
{
	struct save_ctx *c = arg;

	w_put(c->w, rec, sizeof(struct lim_user_ext));
	c->count++;
	return c->w->err;
}

static int
save_merchant_one(const void *rec, void *arg)
{
	struct save_ctx *c = arg;

	w_put(c->w, rec, sizeof(struct lim_merchant));
	c->count++;
	return c->w->err;
}

static int
save_group_one(const void *rec, void *arg)
{
	const struct lim_group *g = rec;
	struct save_ctx *c = arg;
	struct lim_snap_group sg;
	uint64_t seq;

	memset(&sg, 0, sizeof(sg));
	sg.group_id = g->group_id;
	sg.n_members = g->n_members;
	sg.budget_fen = g->budget_fen;
	memcpy(sg.members, g->members, sizeof(sg.members));
	lim_group_lock(g->st);
	sg.month_spend_fen = g->st->month_spend_fen;
	sg.month_start_s = g->st->month_start_s;
	seq = __atomic_load_n(&c->db->seq, __ATOMIC_RELAXED);
	lim_group_unlock(g->st);
	if (stamp_of(c, seq, &sg.stamp))
		return -EOVERFLOW;
	w_put(c->w, &sg, sizeof(sg));
	c->count++;
	return c->w->err;
}

static uint64_t
op_key_hash(uint32_t gateway_id, uint64_t request_id)
{
	return lim_mix64(request_id ^ lim_mix64(gateway_id ^ 0x5a17ULL));
}

/* Write the copies of the current partition and forget them. */
static void
ops_part_flush(struct save_ctx *c)
{
	for (uint64_t i = 0; i < c->part_n; i++) {
		const struct lim_op *op = &c->part_buf[i];
		uint64_t h = op_key_hash(op->gateway_id, op->request_id);

		/* clear the set entries this partition used */
		for (uint64_t j = h & c->set_mask;; j = (j + 1) & c->set_mask) {
			if (c->set[j] == 0)
				break;
			c->set[j] = 0;
		}
	}
	if (c->part_n)
		w_put(c->w, c->part_buf, c->part_n * sizeof(struct lim_op));
	c->count += c->part_n;
	c->part_n = 0;
}

/*
 * Keep @p copy for its partition, replacing an earlier copy of the same key:
 * an entry reclaimed and its id inserted again during the walk may be met
 * twice in one partition; the later copy is the newer.
 */
static void
ops_part_add(struct save_ctx *c, const struct lim_op *copy)
{
	unsigned p = lim_ops_part_of(c->db->ops, copy->gateway_id,
				     copy->request_id);
	uint64_t h = op_key_hash(copy->gateway_id, copy->request_id), j;

	if (p != c->part)
		ops_part_flush(c);
	c->part = p;
	for (j = h & c->set_mask; c->set[j]; j = (j + 1) & c->set_mask) {
		struct lim_op *o = &c->part_buf[c->set[j] - 1];

		if (o->gateway_id == copy->gateway_id &&
		    o->request_id == copy->request_id) {
			*o = *copy;
			return;
		}
	}
	LIM_VERIFY(c->part_n < c->part_cap);
	c->part_buf[c->part_n] = *copy;
	c->set[j] = (uint32_t)++c->part_n;
}

/*
 * Visit one entry of the walk. The walk reads keys without the partition
 * lock (lim_ops_foreach()), so the entry is trusted only after it is found
 * again by key, at the same place, under its user's lock.
 */
static int
save_op_one(struct lim_op *op, void *arg)
{
	struct save_ctx *c = arg;
	uint64_t user_id = __atomic_load_n(&op->user_id, __ATOMIC_RELAXED);
	uint64_t rid = __atomic_load_n(&op->request_id, __ATOMIC_RELAXED);
	uint32_t gw = __atomic_load_n(&op->gateway_id, __ATOMIC_RELAXED);
	struct lim_user *u = user_id ? lim_users_find(c->db->users, user_id)
				     : NULL;
	struct lim_op copy, *e;
	bool ok = false;

	if (!u)
		return 0;
	lim_user_lock(u);
	e = lim_ops_find(c->db->ops, gw, rid);
	if (e == op && e->user_id == user_id && e->state != LIM_OPS_FREE) {
		copy = *e;
		ok = true;
	}
	lim_user_unlock(u);
	if (!ok)
		return 0;
	copy.next = 0; /* store-internal */
	ops_part_add(c, &copy);
	return c->w->err;
}

static int
save_ops(struct save_ctx *c)
{
	uint64_t per = lim_ops_part_capacity(c->db->ops);
	uint64_t set_len = lim_pow2_at_least(2 * per);
	int rc;

	c->part_cap = per;
	c->part_buf = malloc(per * sizeof(struct lim_op));
	c->set = calloc(set_len, sizeof(uint32_t));
	c->set_mask = set_len - 1;
	c->part_n = 0;
	c->part = 0;
	c->count = 0;
	if (!c->part_buf || !c->set)
		rc = -ENOMEM;
	else
		rc = lim_ops_foreach(c->db->ops, save_op_one, c);
	if (!rc)
		ops_part_flush(c);
	free(c->part_buf);
	free(c->set);
	c->part_buf = NULL;
	c->set = NULL;
	return rc;
}

static int
kv_section(struct save_ctx *c, uint32_t type, struct lim_kv *kv,
	   lim_kv_visit_fn fn)
{
	int rc;

	c->count = 0;
	w_section_begin(c->w, type);
	rc = lim_kv_foreach(kv, fn, c);
	w_section_end(c->w, c->count);
	lim_quiescent_state();
	return rc;
}

/* Every section but the trailer, in file order. */
static int
save_sections(struct save_ctx *c, uint64_t *n_users, uint64_t *n_ops)
{
	struct snap_writer *w = c->w;
	const struct lim_funders *fs = lim_funders_get(c->db);
	uint64_t n = lim_users_count(c->db->users);
	uint32_t *stamps;
	int rc;

	w_section_begin(w, LIM_SNAP_POLICY);
	w_put(w, lim_policy_get(c->db), sizeof(struct lim_policy));
	w_section_end(w, 1);
	w_section_begin(w, LIM_SNAP_FUNDERS);
	w_put(w, fs->f, fs->n * sizeof(struct lim_funder));
	w_section_end(w, fs->n);
	stamps = malloc((n ? n : 1) * sizeof(*stamps));
	if (!stamps)
		return -ENOMEM;
	w_section_begin(w, LIM_SNAP_USERS);
	rc = save_users(c, stamps, n);
	w_section_end(w, n);
	if (!rc) {
		w_section_begin(w, LIM_SNAP_USER_STAMPS);
		for (uint64_t i = 0; i < n; i += SNAP_BUF_BYTES / 8) {
			uint64_t k = n - i < SNAP_BUF_BYTES / 8 ? n - i
								: SNAP_BUF_BYTES / 8;

			w_put(w, stamps + i, k * sizeof(*stamps));
		}
		w_section_end(w, n);
	}
	free(stamps);
	lim_quiescent_state();
	*n_users = n;
	if (!rc)
		rc = kv_section(c, LIM_SNAP_USER_EXT, c->db->ext, save_ext_one);
	if (!rc)
		rc = kv_section(c, LIM_SNAP_MERCHANTS, c->db->merchants,
				save_merchant_one);
	if (!rc)
		rc = kv_section(c, LIM_SNAP_GROUPS, c->db->groups,
				save_group_one);
	if (!rc) {
		w_section_begin(w, LIM_SNAP_OPS);
		rc = save_ops(c);
		w_section_end(w, c->count);
		*n_ops = c->count;
	}
	return rc;
}

/* The header and section table, written last at offset 0. */
static int
save_head(struct snap_writer *w, struct lim_snap_header *h)
{
	size_t tlen = w->n_sec * sizeof(struct lim_snap_section);
	uint8_t head[LIM_SNAP_HDR_LEN +
		     LIM_SNAP_TYPES * sizeof(struct lim_snap_section)];
	int rc;

	h->n_sections = w->n_sec;
	h->table_checksum = XXH3_64bits(w->sec, tlen);
	h->checksum = XXH3_64bits(h, LIM_SNAP_HDR_SUMMED);
	memcpy(head, h, LIM_SNAP_HDR_LEN);
	memcpy(head + LIM_SNAP_HDR_LEN, w->sec, tlen);
	rc = lim_write_full(w->fd, head, LIM_SNAP_HDR_LEN + tlen, 0, true);
	return rc ? w_fail(w, rc, "write header") : 0;
}

static int
save_body(struct lim_db *db, struct snap_writer *w, struct lim_snap_header *h)
{
	struct save_ctx c = {.db = db, .w = w, .seq_start = h->seq_start};
	struct lim_snap_trailer t;
	uint64_t n_users = 0, n_ops = 0;
	void *d;
	int rc;

	/* header and table are written last; reserve their place */
	d = w_reserve(w, sections_start(LIM_SNAP_TYPES - 1));
	if (d)
		memset(d, 0, sections_start(LIM_SNAP_TYPES - 1));
	rc = save_sections(&c, &n_users, &n_ops);
	if (rc == -EOVERFLOW && !w->err) {
		w->err = rc;
		snprintf(w->msg, w->msglen,
			 "%s: more than 2^32 effects during the save: stamps "
			 "do not fit", w->tmp);
	}
	if (rc && !w->err)
		w_fail(w, rc, "save");
	if (rc)
		return w->err;
	h->seq_end = __atomic_load_n(&db->seq, __ATOMIC_RELAXED);
	memset(&t, 0, sizeof(t));
	memcpy(t.magic, LIM_SNAP_TRAILER_MAGIC, sizeof(LIM_SNAP_TRAILER_MAGIC));
	t.seq_start = h->seq_start;
	t.seq_end = h->seq_end;
	t.users = n_users;
	t.ops = n_ops;
	w_section_begin(w, LIM_SNAP_TRAILER);
	t.file_bytes = w_pos(w) + sizeof(t);
	w_put(w, &t, sizeof(t));
	w_section_end(w, 1);
	h->file_bytes = t.file_bytes;
	LIM_VERIFY(w->n_sec == LIM_SNAP_TYPES - 1);
	if (w_flush(w))
		return w->err;
	return save_head(w, h);
}

int
lim_snapshot_save(struct lim_db *db, const char *path, char *err,
		  size_t errlen)
{
	struct lim_file_tmp f;
	struct snap_writer w = {.fd = -1, .tmp = f.tmp, .msg = err,
				.msglen = errlen};
	struct lim_snap_header h;
	int rc;

	memset(&h, 0, sizeof(h));
	memcpy(h.magic, LIM_SNAP_MAGIC, sizeof(h.magic));
	h.version = LIM_SNAP_VERSION;
	h.header_len = LIM_SNAP_HDR_LEN;
	h.created_s = (uint64_t)time(NULL);
	h.shards = db->shards;
	h.seq_start = __atomic_load_n(&db->seq, __ATOMIC_RELAXED);
	w.buf = malloc(SNAP_BUF_BYTES);
	w.xs = XXH3_createState();
	if (!w.buf || !w.xs) {
		rc = -ENOMEM;
		snprintf(err, errlen, "%s: out of memory", path);
		goto out;
	}
	rc = lim_file_tmp_open(&f, path, 0600, err, errlen);
	if (rc)
		goto out;
	w.fd = f.fd;
	/* from here on every failure removes the temporary file */
	rc = save_body(db, &w, &h);
	if (rc)
		lim_file_tmp_abort(&f);
	else
		rc = lim_file_tmp_commit(&f, err, errlen);
out:
	XXH3_freeState(w.xs);
	free(w.buf);
	return rc;
}
