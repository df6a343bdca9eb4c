/*
 * snapshot.c - save every table of a lim_db to one file while the dataplane
 * runs, and load it back (format: docs/snapshot-format.md).
 *
 * File: a 128-byte header (magic, version, lengths, seq_start/seq_end, the
 * section table's checksum, its own checksum), a section table (type,
 * record size, count, offset, length, xxh3-64 of the payload per section),
 * then the sections, each at the next 64-byte boundary with zero padding
 * between them, the trailer last. Every byte of a valid file is covered by
 * a checksum or is padding that must be zero. Little-endian, records are the
 * in-memory structs of lim.h (their layout is pinned by the static asserts
 * below; a change of layout is a change of format version).
 *
 * Save: consistent per record, no stop (lim.h, "Snapshots"). A user is
 * copied under its lock with stamp = db->seq read under that lock: every
 * effect on the user with seq <= stamp is in the copy and none after it,
 * because lim_apply() takes the seq under the same lock. Op entries are
 * found by a walk of the store, then each is copied under its user's lock
 * after finding it again by key; its last_seq is its stamp. Group states are
 * copied under the group lock with their stamp. Writes go through a 4 MiB
 * buffer to a lim_file_tmp (file.c: PATH.tmp.XXXXXX in the same directory,
 * fsynced, renamed over PATH, the directory fsynced); any failure removes
 * the temporary file and says what failed.
 *
 * Load: validate everything before trusting anything. First the header, the
 * section table (bounds, no overlap, no gap but padding, sizes = count x
 * record size, known types, required sections) and every checksum; only
 * then are records read, each checked (ids, ranges, states) as it is
 * inserted. Budgets are not in the file: the ceiling in use is the users'
 * debt plus holds, each funder's quota in use is its part of the live loans
 * and the company's own book the rest of them, taken through shard 0 and
 * flushed. The new db's seq is seq_end.
 *
 * Concurrency: one caller, a registered QSBR thread with the read side
 * online (save: the updater; load: before the database is shared). Save
 * reports quiescent states between sections and every ~1 M users, so the
 * caller must hold no RCU-protected pointer across it.
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdarg.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <xxhash.h>

#include "lim_pvt.h"

#define SNAP_MAGIC "AUTHSNAP"
#define SNAP_TRAILER_MAGIC "SNAPEND"
#define SNAP_VERSION 1u
#define SNAP_ALIGN 64u
#define SNAP_HDR_LEN 128u
#define SNAP_HDR_SUMMED 120u              /* header bytes under its checksum */
#define SNAP_BUF_BYTES (4u << 20)         /* write buffer */
#define SNAP_PROGRESS_USERS (1u << 20)    /* progress and QS every this many */
#define SNAP_LOAD_CHUNK 65536u            /* users validated, then inserted */

enum snap_type {
	SNAP_POLICY = 1,
	SNAP_FUNDERS,
	SNAP_USERS,
	SNAP_USER_STAMPS,
	SNAP_USER_EXT,
	SNAP_MERCHANTS,
	SNAP_GROUPS,
	SNAP_OPS,
	SNAP_TRAILER,
	SNAP_TYPES
};

struct snap_header {
	char magic[8];
	uint32_t version;
	uint32_t header_len;
	uint64_t created_s;
	uint64_t seq_start;
	uint64_t seq_end;
	uint64_t file_bytes;
	uint32_t n_sections;
	uint32_t shards;
	uint64_t table_checksum;   /* xxh3-64 of the section table */
	uint8_t reserved[56];      /* zero */
	uint64_t checksum;         /* xxh3-64 of bytes [0, 120) */
};

struct snap_section {
	uint32_t type;
	uint32_t record_size;
	uint64_t count;
	uint64_t offset;
	uint64_t length;
	uint64_t checksum;         /* xxh3-64 of the payload */
	uint64_t reserved;         /* zero */
};

/* A group: its configuration, its state and the state's stamp. */
struct snap_group {
	uint32_t group_id;
	uint8_t n_members;
	uint8_t pad[3];
	int64_t budget_fen;
	uint64_t members[LIM_GROUP_MEMBERS_MAX];
	int64_t month_spend_fen;
	uint32_t month_start_s;
	uint32_t stamp;            /* stamp - seq_start */
};

struct snap_trailer {
	char magic[8];
	uint64_t seq_start;
	uint64_t seq_end;
	uint64_t users;
	uint64_t ops;
	uint64_t file_bytes;
	uint64_t reserved[2];
};

_Static_assert(sizeof(struct snap_header) == SNAP_HDR_LEN, "header layout");
_Static_assert(offsetof(struct snap_header, checksum) == SNAP_HDR_SUMMED,
	       "header checksum last");
_Static_assert(sizeof(struct snap_section) == 48, "section entry layout");
_Static_assert(sizeof(struct snap_group) == 96, "group record layout");
_Static_assert(sizeof(struct snap_trailer) == 64, "trailer layout");
/* The records written as they are in memory: their layout is the format. */
_Static_assert(sizeof(struct lim_policy) == 304, "policy record layout");
_Static_assert(offsetof(struct lim_policy, tier) == 48, "policy layout");
_Static_assert(sizeof(struct lim_funder) == 16, "funder record layout");
_Static_assert(offsetof(struct lim_user, region) == 80, "user layout");
_Static_assert(offsetof(struct lim_user, lock) == 84, "user lock byte");
_Static_assert(sizeof(struct lim_merchant) == 12, "merchant record layout");
_Static_assert(offsetof(struct lim_op, state) == 71, "op layout");
_Static_assert(offsetof(struct lim_op, next) == 112, "op next field");
_Static_assert(offsetof(struct lim_op, last_seq) == 120, "op layout");
#if __BYTE_ORDER__ != __ORDER_LITTLE_ENDIAN__
#error "snapshots are little-endian and written as in memory"
#endif

static const struct {
	const char *name;
	uint32_t record_size;
	bool required;
} snap_types[SNAP_TYPES] = {
	[SNAP_POLICY] = {"policy", sizeof(struct lim_policy), true},
	[SNAP_FUNDERS] = {"funders", sizeof(struct lim_funder), true},
	[SNAP_USERS] = {"users", sizeof(struct lim_user), true},
	[SNAP_USER_STAMPS] = {"user_stamps", sizeof(uint32_t), true},
	[SNAP_USER_EXT] = {"user_ext", sizeof(struct lim_user_ext), false},
	[SNAP_MERCHANTS] = {"merchants", sizeof(struct lim_merchant), false},
	[SNAP_GROUPS] = {"groups", sizeof(struct snap_group), false},
	[SNAP_OPS] = {"ops", sizeof(struct lim_op), false},
	[SNAP_TRAILER] = {"trailer", sizeof(struct snap_trailer), true},
};

static uint64_t
align_up(uint64_t x)
{
	return (x + SNAP_ALIGN - 1) & ~(uint64_t)(SNAP_ALIGN - 1);
}

static const char *
type_name(uint32_t type)
{
	return type > 0 && type < SNAP_TYPES ? snap_types[type].name : "?";
}

/* ======================================================================== */
/* Save                                                                       */

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
	struct snap_section sec[SNAP_TYPES];
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
	uint64_t pad = align_up(w_pos(w)) - w_pos(w);
	struct snap_section *s = &w->sec[w->n_sec];
	void *d;

	LIM_VERIFY(!w->in_section && w->n_sec < SNAP_TYPES - 1);
	d = w_reserve(w, pad);
	if (d)
		memset(d, 0, pad);
	memset(s, 0, sizeof(*s));
	s->type = type;
	s->record_size = snap_types[type].record_size;
	s->offset = w_pos(w);
	w->hash_from = w->len;
	XXH3_64bits_reset(w->xs);
	w->in_section = true;
}

static void
w_section_end(struct snap_writer *w, uint64_t count)
{
	struct snap_section *s = &w->sec[w->n_sec];

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
	return align_up(SNAP_HDR_LEN + (uint64_t)n * sizeof(struct snap_section));
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
		if ((i + 1) % SNAP_PROGRESS_USERS == 0)
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
	struct snap_group sg;
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

	w_section_begin(w, SNAP_POLICY);
	w_put(w, lim_policy_get(c->db), sizeof(struct lim_policy));
	w_section_end(w, 1);
	w_section_begin(w, SNAP_FUNDERS);
	w_put(w, fs->f, fs->n * sizeof(struct lim_funder));
	w_section_end(w, fs->n);
	stamps = malloc((n ? n : 1) * sizeof(*stamps));
	if (!stamps)
		return -ENOMEM;
	w_section_begin(w, SNAP_USERS);
	rc = save_users(c, stamps, n);
	w_section_end(w, n);
	if (!rc) {
		w_section_begin(w, SNAP_USER_STAMPS);
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
		rc = kv_section(c, SNAP_USER_EXT, c->db->ext, save_ext_one);
	if (!rc)
		rc = kv_section(c, SNAP_MERCHANTS, c->db->merchants,
				save_merchant_one);
	if (!rc)
		rc = kv_section(c, SNAP_GROUPS, c->db->groups, save_group_one);
	if (!rc) {
		w_section_begin(w, SNAP_OPS);
		rc = save_ops(c);
		w_section_end(w, c->count);
		*n_ops = c->count;
	}
	return rc;
}

/* The header and section table, written last at offset 0. */
static int
save_head(struct snap_writer *w, struct snap_header *h)
{
	size_t tlen = w->n_sec * sizeof(struct snap_section);
	uint8_t head[SNAP_HDR_LEN + SNAP_TYPES * sizeof(struct snap_section)];
	int rc;

	h->n_sections = w->n_sec;
	h->table_checksum = XXH3_64bits(w->sec, tlen);
	h->checksum = XXH3_64bits(h, SNAP_HDR_SUMMED);
	memcpy(head, h, SNAP_HDR_LEN);
	memcpy(head + SNAP_HDR_LEN, w->sec, tlen);
	rc = lim_write_full(w->fd, head, SNAP_HDR_LEN + tlen, 0, true);
	return rc ? w_fail(w, rc, "write header") : 0;
}

static int
save_body(struct lim_db *db, struct snap_writer *w, struct snap_header *h)
{
	struct save_ctx c = {.db = db, .w = w, .seq_start = h->seq_start};
	struct snap_trailer t;
	uint64_t n_users = 0, n_ops = 0;
	void *d;
	int rc;

	/* header and table are written last; reserve their place */
	d = w_reserve(w, sections_start(SNAP_TYPES - 1));
	if (d)
		memset(d, 0, sections_start(SNAP_TYPES - 1));
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
	memcpy(t.magic, SNAP_TRAILER_MAGIC, sizeof(SNAP_TRAILER_MAGIC));
	t.seq_start = h->seq_start;
	t.seq_end = h->seq_end;
	t.users = n_users;
	t.ops = n_ops;
	w_section_begin(w, SNAP_TRAILER);
	t.file_bytes = w_pos(w) + sizeof(t);
	w_put(w, &t, sizeof(t));
	w_section_end(w, 1);
	h->file_bytes = t.file_bytes;
	LIM_VERIFY(w->n_sec == SNAP_TYPES - 1);
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
	struct snap_header h;
	int rc;

	memset(&h, 0, sizeof(h));
	memcpy(h.magic, SNAP_MAGIC, sizeof(h.magic));
	h.version = SNAP_VERSION;
	h.header_len = SNAP_HDR_LEN;
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

/* ======================================================================== */
/* Load                                                                       */

struct snap_in {
	const uint8_t *p;
	uint64_t len;
	const char *name;
	char *err;
	size_t errlen;
	struct snap_header h;
	unsigned n;
	struct snap_section sec[LIM_SNAP_SECTIONS_MAX];
	const struct snap_section *by_type[SNAP_TYPES];
};

__attribute__((format(printf, 3, 4))) static int
bad(struct snap_in *in, uint64_t off, const char *fmt, ...)
{
	char msg[256];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	if (in->err && in->errlen)
		snprintf(in->err, in->errlen, "%s: offset %llu: %s", in->name,
			 (unsigned long long)off, msg);
	return -EINVAL;
}

static bool
all_zero(const uint8_t *p, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (p[i])
			return false;
	return true;
}

static int
check_header(struct snap_in *in)
{
	struct snap_header *h = &in->h;

	if (in->len == 0)
		return bad(in, 0, "empty file, not a snapshot");
	if (memcmp(in->p, SNAP_MAGIC,
		   in->len < sizeof(h->magic) ? in->len : sizeof(h->magic)))
		return bad(in, 0, "not a snapshot (no AUTHSNAP magic)");
	if (in->len < SNAP_HDR_LEN)
		return bad(in, in->len, "truncated: the header needs %u bytes, "
			   "the file has %llu", SNAP_HDR_LEN,
			   (unsigned long long)in->len);
	memcpy(h, in->p, sizeof(*h));
	if (h->version != SNAP_VERSION)
		return bad(in, offsetof(struct snap_header, version),
			   "unsupported format version %u (this build reads %u)",
			   h->version, SNAP_VERSION);
	if (h->header_len != SNAP_HDR_LEN)
		return bad(in, offsetof(struct snap_header, header_len),
			   "header length %u, expected %u", h->header_len,
			   SNAP_HDR_LEN);
	if (XXH3_64bits(in->p, SNAP_HDR_SUMMED) != h->checksum)
		return bad(in, SNAP_HDR_SUMMED, "header checksum mismatch");
	if (!all_zero(h->reserved, sizeof(h->reserved)))
		return bad(in, offsetof(struct snap_header, reserved),
			   "reserved header bytes are not zero");
	if (h->file_bytes != in->len)
		return bad(in, in->len < h->file_bytes ? in->len : h->file_bytes,
			   "%s: the file has %llu bytes, the header says %llu",
			   in->len < h->file_bytes ? "truncated" : "extended",
			   (unsigned long long)in->len,
			   (unsigned long long)h->file_bytes);
	if (h->n_sections == 0 || h->n_sections > LIM_SNAP_SECTIONS_MAX)
		return bad(in, offsetof(struct snap_header, n_sections),
			   "section count %u out of range 1..%u",
			   h->n_sections, LIM_SNAP_SECTIONS_MAX);
	if (h->shards == 0 || h->shards > LIM_SHARDS_MAX)
		return bad(in, offsetof(struct snap_header, shards),
			   "shard count %u out of range 1..%u", h->shards,
			   LIM_SHARDS_MAX);
	if (h->seq_end < h->seq_start)
		return bad(in, offsetof(struct snap_header, seq_end),
			   "seq_end %llu before seq_start %llu",
			   (unsigned long long)h->seq_end,
			   (unsigned long long)h->seq_start);
	return 0;
}

static int
check_entry(struct snap_in *in, unsigned i, uint64_t expect_off)
{
	const struct snap_section *s = &in->sec[i];
	uint64_t at = SNAP_HDR_LEN + (uint64_t)i * sizeof(*s), len;

	if (s->type == 0 || s->type >= SNAP_TYPES)
		return bad(in, at, "section %u: unknown type %u", i, s->type);
	if (in->by_type[s->type])
		return bad(in, at, "section %u: second '%s' section", i,
			   type_name(s->type));
	in->by_type[s->type] = s;
	if (s->record_size != snap_types[s->type].record_size)
		return bad(in, at + 4, "section '%s': record size %u, expected %u",
			   type_name(s->type), s->record_size,
			   snap_types[s->type].record_size);
	if (__builtin_mul_overflow(s->count, (uint64_t)s->record_size, &len) ||
	    len != s->length)
		return bad(in, at + 8, "section '%s': length %llu is not %llu "
			   "records of %u bytes", type_name(s->type),
			   (unsigned long long)s->length,
			   (unsigned long long)s->count, s->record_size);
	if (s->offset != expect_off)
		return bad(in, at + 16, "section '%s' at offset %llu, expected "
			   "%llu (sections follow each other, 64-byte aligned)",
			   type_name(s->type), (unsigned long long)s->offset,
			   (unsigned long long)expect_off);
	if (s->offset > in->len || s->length > in->len - s->offset)
		return bad(in, at + 16, "section '%s' [%llu, +%llu) ends past the "
			   "end of the file (%llu bytes)", type_name(s->type),
			   (unsigned long long)s->offset,
			   (unsigned long long)s->length,
			   (unsigned long long)in->len);
	if (s->reserved != 0)
		return bad(in, at + 40, "section '%s': reserved field not zero",
			   type_name(s->type));
	return 0;
}

static int
check_table(struct snap_in *in)
{
	uint64_t tlen = (uint64_t)in->h.n_sections * sizeof(struct snap_section);
	uint64_t off;
	int rc;

	if (SNAP_HDR_LEN + tlen > in->len)
		return bad(in, in->len, "truncated: the section table needs "
			   "%llu bytes", (unsigned long long)(SNAP_HDR_LEN + tlen));
	if (XXH3_64bits(in->p + SNAP_HDR_LEN, tlen) != in->h.table_checksum)
		return bad(in, SNAP_HDR_LEN, "section table checksum mismatch");
	in->n = in->h.n_sections;
	memcpy(in->sec, in->p + SNAP_HDR_LEN, tlen);
	off = SNAP_HDR_LEN + tlen;
	for (unsigned i = 0; i < in->n; i++) {
		uint64_t start = align_up(off);

		if (start > in->len)
			return bad(in, in->len, "truncated before section %u", i);
		if (!all_zero(in->p + off, start - off))
			return bad(in, off, "padding before section %u is not "
				   "zero", i);
		rc = check_entry(in, i, start);
		if (rc)
			return rc;
		off = in->sec[i].offset + in->sec[i].length;
	}
	if (in->sec[in->n - 1].type != SNAP_TRAILER)
		return bad(in, SNAP_HDR_LEN, "the last section is '%s', not the "
			   "trailer", type_name(in->sec[in->n - 1].type));
	if (off != in->len)
		return bad(in, off, "%llu bytes after the trailer",
			   (unsigned long long)(in->len - off));
	for (unsigned t = 1; t < SNAP_TYPES; t++)
		if (snap_types[t].required && !in->by_type[t])
			return bad(in, SNAP_HDR_LEN, "no '%s' section",
				   snap_types[t].name);
	return 0;
}

static int
check_sums(struct snap_in *in)
{
	for (unsigned i = 0; i < in->n; i++) {
		const struct snap_section *s = &in->sec[i];

		if (XXH3_64bits(in->p + s->offset, s->length) != s->checksum)
			return bad(in, s->offset, "section '%s' checksum mismatch",
				   type_name(s->type));
	}
	return 0;
}

static int
check_trailer(struct snap_in *in)
{
	const struct snap_section *s = in->by_type[SNAP_TRAILER];
	const struct snap_section *ops = in->by_type[SNAP_OPS];
	struct snap_trailer t;

	if (s->count != 1)
		return bad(in, s->offset, "%llu trailer records, expected 1",
			   (unsigned long long)s->count);
	memcpy(&t, in->p + s->offset, sizeof(t));
	if (memcmp(t.magic, SNAP_TRAILER_MAGIC, sizeof(t.magic)) != 0 ||
	    t.seq_start != in->h.seq_start || t.seq_end != in->h.seq_end ||
	    t.users != in->by_type[SNAP_USERS]->count ||
	    t.ops != (ops ? ops->count : 0) || t.file_bytes != in->len ||
	    t.reserved[0] || t.reserved[1])
		return bad(in, s->offset, "trailer does not match the header "
			   "and the section table");
	return 0;
}

/* Everything that needs no record: header, table, checksums, trailer. */
static int
check_file(struct snap_in *in)
{
	int rc = check_header(in);

	if (!rc)
		rc = check_table(in);
	if (!rc)
		rc = check_sums(in);
	if (!rc)
		rc = check_trailer(in);
	return rc;
}

/* ---- records ------------------------------------------------------------ */

struct load_ctx {
	struct snap_in *in;
	struct lim_db *db;
	const struct lim_db_config *extra;
	void (*progress)(uint64_t done, uint64_t total);
	unsigned __int128 exposure;   /* sum of users' debt + holds */
	uint64_t ext_flagged;         /* users with LIM_USER_EXT */
};

static const uint8_t *
rec_at(const struct snap_in *in, uint32_t type, uint64_t i, uint64_t *off)
{
	const struct snap_section *s = in->by_type[type];

	*off = s->offset + i * s->record_size;
	return in->p + *off;
}

static uint64_t
sec_count(const struct snap_in *in, uint32_t type)
{
	return in->by_type[type] ? in->by_type[type]->count : 0;
}

static bool
money_ok(int64_t v, bool signed_ok)
{
	return v <= LIM_MONEY_MAX && v >= (signed_ok ? -LIM_MONEY_MAX : 0);
}

static int
check_money(struct snap_in *in, uint64_t off, const char *what, uint64_t id,
	    const char *field, int64_t v, bool signed_ok)
{
	if (money_ok(v, signed_ok))
		return 0;
	return bad(in, off, "%s %llu: %s %lld out of range %lld..%lld", what,
		   (unsigned long long)id, field, (long long)v,
		   signed_ok ? -LIM_MONEY_MAX : 0LL, LIM_MONEY_MAX);
}

/* Check money field @p f of record @p r; return from the caller if bad. */
#define MONEY(in, off, what, id, r, f, signed_ok)                              \
	do {                                                                   \
		int rc_ = check_money((in), (off), (what), (id), #f, (r)->f,   \
				      (signed_ok));                            \
		if (rc_)                                                       \
			return rc_;                                            \
	} while (0)

static int
load_policy(struct load_ctx *c)
{
	struct snap_in *in = c->in;
	struct lim_policy p;
	char msg[160];
	uint64_t off;
	int rc;

	if (sec_count(in, SNAP_POLICY) != 1)
		return bad(in, in->by_type[SNAP_POLICY]->offset,
			   "%llu policy records, expected 1",
			   (unsigned long long)sec_count(in, SNAP_POLICY));
	memcpy(&p, rec_at(in, SNAP_POLICY, 0, &off), sizeof(p));
	if (lim_policy_check(&p, msg, sizeof(msg)))
		return bad(in, off, "policy: %s", msg);
	rc = lim_policy_set(c->db, &p);
	if (rc)
		return bad(in, off, "policy: cannot be set: %s", strerror(-rc));
	return 0;
}

static int
check_funder(struct snap_in *in, const struct lim_funder *f, unsigned i,
	     const struct lim_funder *all, uint64_t off)
{
	const unsigned products = (1u << LIM_PRODUCT_PAYLATER) |
				  (1u << LIM_PRODUCT_INSTALLMENT) |
				  (1u << LIM_PRODUCT_CASH);

	if (i == 0 && (f->funder_id != 0 || f->region != 0 || f->share_pct))
		return bad(in, off, "funder slot 0 must be the company's own "
			   "book (id 0, national, no bank share)");
	if (i > 0 && f->funder_id == 0)
		return bad(in, off, "funder slot %u: id 0 is the company's", i);
	MONEY(in, off, "funder", f->funder_id, f, quota_fen, false);
	if (f->share_pct > 100 || (f->products & ~products))
		return bad(in, off, "funder %u: share above 100%% or unknown "
			   "product bits", f->funder_id);
	for (unsigned j = 0; j < i; j++)
		if (all[j].funder_id == f->funder_id)
			return bad(in, off, "funder %u: duplicate id",
				   f->funder_id);
	return 0;
}

static int
load_funders(struct load_ctx *c)
{
	struct snap_in *in = c->in;
	struct lim_funder f[LIM_FUNDERS_MAX];
	uint64_t n = sec_count(in, SNAP_FUNDERS), off;
	int rc;

	if (n == 0 || n > LIM_FUNDERS_MAX)
		return bad(in, in->by_type[SNAP_FUNDERS]->offset,
			   "%llu funders, expected 1..%u",
			   (unsigned long long)n, LIM_FUNDERS_MAX);
	for (unsigned i = 0; i < n; i++) {
		memcpy(&f[i], rec_at(in, SNAP_FUNDERS, i, &off), sizeof(f[i]));
		rc = check_funder(in, &f[i], i, f, off);
		if (rc)
			return rc;
	}
	rc = lim_funders_set(c->db, f, (unsigned)n);
	if (rc)
		return bad(in, in->by_type[SNAP_FUNDERS]->offset,
			   "funder table refused: %s", strerror(-rc));
	return 0;
}

static int
check_user(struct snap_in *in, const struct lim_user *u, uint64_t off)
{
	const unsigned flags = LIM_USER_FROZEN | LIM_USER_SOFT_CAP |
			       LIM_USER_EXT;
	unsigned long long id = u->user_id;

	if (u->user_id == 0)
		return bad(in, off, "user id 0");
	MONEY(in, off, "user", id, u, limit_fen, false);
	MONEY(in, off, "user", id, u, outstanding_fen, false);
	MONEY(in, off, "user", id, u, holds_fen, false);
	MONEY(in, off, "user", id, u, cash_fen, false);
	MONEY(in, off, "user", id, u, inst_fen, false);
	MONEY(in, off, "user", id, u, self_cap_fen, false);
	MONEY(in, off, "user", id, u, month_spend_fen, false);
	if (u->cash_fen + u->inst_fen > u->outstanding_fen)
		return bad(in, off, "user %llu: cash and installment debt "
			   "exceed the outstanding debt", id);
	if (u->tier >= LIM_TIERS)
		return bad(in, off, "user %llu: tier %u out of range 0..%u", id,
			   u->tier, LIM_TIERS - 1);
	if (u->flags & ~flags)
		return bad(in, off, "user %llu: unknown flags 0x%x", id,
			   u->flags);
	if (u->risk_q > 250)
		return bad(in, off, "user %llu: risk %u out of range 0..250",
			   id, u->risk_q);
	if (u->lock != 0)
		return bad(in, off, "user %llu: lock byte set", id);
	return 0;
}

static int
check_stamp(struct snap_in *in, uint64_t i, const struct lim_user *u)
{
	uint64_t off;
	uint32_t st;

	memcpy(&st, rec_at(in, SNAP_USER_STAMPS, i, &off), sizeof(st));
	if (st > in->h.seq_end - in->h.seq_start)
		return bad(in, off, "user %llu: stamp %u beyond seq_end",
			   (unsigned long long)u->user_id, st);
	return 0;
}

/* Validate then insert users [i, i + k). */
static int
load_user_chunk(struct load_ctx *c, uint64_t i, uint64_t k)
{
	struct snap_in *in = c->in;
	uint64_t off0, off, done;
	const struct lim_user *u =
		(const void *)rec_at(in, SNAP_USERS, i, &off0);
	int rc;

	for (uint64_t j = 0; j < k; j++) {
		off = off0 + j * sizeof(*u);
		rc = check_user(in, &u[j], off);
		if (!rc)
			rc = check_stamp(in, i + j, &u[j]);
		if (rc)
			return rc;
		c->exposure += (uint64_t)(u[j].outstanding_fen + u[j].holds_fen);
		c->ext_flagged += (u[j].flags & LIM_USER_EXT) != 0;
	}
	rc = lim_users_insert_bulk(c->db->users, u, k, &done);
	if (rc == -EEXIST)
		return bad(in, off0 + done * sizeof(*u),
			   "user %llu: duplicate id",
			   (unsigned long long)u[done].user_id);
	if (rc)
		return bad(in, off0 + done * sizeof(*u),
			   "user %llu: cannot insert: %s",
			   (unsigned long long)u[done].user_id, strerror(-rc));
	return 0;
}

static int
load_users(struct load_ctx *c)
{
	struct snap_in *in = c->in;
	uint64_t n = sec_count(in, SNAP_USERS), next = SNAP_PROGRESS_USERS;
	int rc;

	if (sec_count(in, SNAP_USER_STAMPS) != n)
		return bad(in, in->by_type[SNAP_USER_STAMPS]->offset,
			   "%llu user stamps for %llu users",
			   (unsigned long long)sec_count(in, SNAP_USER_STAMPS),
			   (unsigned long long)n);
	for (uint64_t i = 0; i < n; i += SNAP_LOAD_CHUNK) {
		uint64_t k = n - i < SNAP_LOAD_CHUNK ? n - i : SNAP_LOAD_CHUNK;

		rc = load_user_chunk(c, i, k);
		if (rc)
			return rc;
		if (c->progress && i + k >= next) {
			c->progress(i + k, n);
			next += SNAP_PROGRESS_USERS;
		}
	}
	if (c->progress)
		c->progress(n, n);
	return 0;
}

static int
load_ext(struct load_ctx *c)
{
	struct snap_in *in = c->in;
	uint64_t n = sec_count(in, SNAP_USER_EXT), off;
	int rc;

	for (uint64_t i = 0; i < n; i++) {
		struct lim_user_ext x;
		const struct lim_user *u;
		unsigned long long id;

		memcpy(&x, rec_at(in, SNAP_USER_EXT, i, &off), sizeof(x));
		id = x.user_id;
		u = x.user_id ? lim_users_find(c->db->users, x.user_id) : NULL;
		if (!u)
			return bad(in, off, "extension of unknown user %llu", id);
		if (!(u->flags & LIM_USER_EXT))
			return bad(in, off, "user %llu has an extension but not "
				   "the LIM_USER_EXT flag", id);
		MONEY(in, off, "extension of user", id, &x, temp_quota_fen, false);
		MONEY(in, off, "extension of user", id, &x, cash_limit_fen, true);
		MONEY(in, off, "extension of user", id, &x, alert_fen, true);
		rc = lim_ext_set(c->db, &x);
		if (rc)
			return bad(in, off, "user %llu: extension: %s", id,
				   strerror(-rc));
		/* a set that replaced a record did not count: a duplicate */
		if (lim_kv_count(c->db->ext) != i + 1)
			return bad(in, off, "user %llu: second extension", id);
	}
	if (n != c->ext_flagged)
		return bad(in, in->by_type[SNAP_USERS]->offset,
			   "%llu users have the LIM_USER_EXT flag, %llu "
			   "extensions", (unsigned long long)c->ext_flagged,
			   (unsigned long long)n);
	return 0;
}

static int
load_merchants(struct load_ctx *c)
{
	const unsigned subsidies = LIM_SUBSIDY_3 | LIM_SUBSIDY_6 |
				   LIM_SUBSIDY_12;
	struct snap_in *in = c->in;
	uint64_t n = sec_count(in, SNAP_MERCHANTS), off;
	int rc;

	for (uint64_t i = 0; i < n; i++) {
		struct lim_merchant m;

		memcpy(&m, rec_at(in, SNAP_MERCHANTS, i, &off), sizeof(m));
		if (m.merchant_id == 0)
			return bad(in, off, "merchant id 0");
		if (m.risk_score > 1000 || (m.flags & ~LIM_MERCHANT_BLOCKED) ||
		    (m.subsidy & ~subsidies))
			return bad(in, off, "merchant %u: risk above 1000 or "
				   "unknown flag or subsidy bits", m.merchant_id);
		rc = lim_merchant_set(c->db, &m);
		if (rc)
			return bad(in, off, "merchant %u: %s", m.merchant_id,
				   strerror(-rc));
		if (lim_kv_count(c->db->merchants) != i + 1)
			return bad(in, off, "merchant %u: duplicate id",
				   m.merchant_id);
	}
	return 0;
}

static int
check_group(struct snap_in *in, const struct snap_group *g, uint64_t off)
{
	if (g->group_id == 0)
		return bad(in, off, "group id 0");
	if (g->n_members == 0 || g->n_members > LIM_GROUP_MEMBERS_MAX)
		return bad(in, off, "group %u: %u members, expected 1..%u",
			   g->group_id, g->n_members, LIM_GROUP_MEMBERS_MAX);
	for (unsigned i = 0; i < LIM_GROUP_MEMBERS_MAX; i++)
		if ((i < g->n_members) != (g->members[i] != 0))
			return bad(in, off, "group %u: member %u is %s", g->group_id,
				   i, i < g->n_members ? "0" : "set past the count");
	MONEY(in, off, "group", g->group_id, g, budget_fen, false);
	MONEY(in, off, "group", g->group_id, g, month_spend_fen, false);
	if (g->stamp > in->h.seq_end - in->h.seq_start)
		return bad(in, off, "group %u: stamp %u beyond seq_end",
			   g->group_id, g->stamp);
	if (g->pad[0] || g->pad[1] || g->pad[2])
		return bad(in, off, "group %u: padding not zero", g->group_id);
	return 0;
}

static int
load_groups(struct load_ctx *c, struct lim_snapshot_meta *meta)
{
	struct snap_in *in = c->in;
	uint64_t n = sec_count(in, SNAP_GROUPS), off;
	int rc;

	for (uint64_t i = 0; i < n; i++) {
		struct snap_group sg;
		struct lim_group g;
		const struct lim_group *pub;

		memcpy(&sg, rec_at(in, SNAP_GROUPS, i, &off), sizeof(sg));
		rc = check_group(in, &sg, off);
		if (rc)
			return rc;
		if (lim_group_find(c->db, sg.group_id))
			return bad(in, off, "group %u: duplicate id", sg.group_id);
		memset(&g, 0, sizeof(g));
		g.group_id = sg.group_id;
		g.n_members = sg.n_members;
		g.budget_fen = sg.budget_fen;
		memcpy(g.members, sg.members, sizeof(g.members));
		rc = lim_group_set(c->db, &g);
		pub = rc ? NULL : lim_group_find(c->db, sg.group_id);
		if (!pub)
			return bad(in, off, "group %u: %s", sg.group_id,
				   strerror(rc ? -rc : ENOENT));
		/* not shared yet: no lock needed */
		pub->st->month_spend_fen = sg.month_spend_fen;
		pub->st->month_start_s = sg.month_start_s;
		if (meta) {
			meta->group_id[i] = sg.group_id;
			meta->group_stamp[i] = sg.stamp;
		}
	}
	return 0;
}

static int
check_op(struct load_ctx *c, const struct lim_op *op, uint64_t off)
{
	struct snap_in *in = c->in;
	unsigned long long rid = op->request_id;
	int64_t alive;

	if (op->user_id == 0 || !lim_users_find(c->db->users, op->user_id))
		return bad(in, off, "entry %llu: unknown user %llu", rid,
			   (unsigned long long)op->user_id);
	if (op->state <= LIM_OPS_FREE || op->state > LIM_OPS_TOMBSTONE)
		return bad(in, off, "entry %llu: invalid state %u", rid,
			   op->state);
	/* a tombstone has op 0 (lim_ops_find_owned()), any other entry 1..5 */
	if ((op->state == LIM_OPS_TOMBSTONE) != (op->op == 0) ||
	    op->op > LIM_OP_REPAY || op->product > LIM_PRODUCT_CASH ||
	    op->own_share_pct > 100)
		return bad(in, off, "entry %llu: invalid op %u for state %u, "
			   "or product or share out of range", rid, op->op,
			   op->state);
	MONEY(in, off, "entry", rid, op, amount_fen, true);
	MONEY(in, off, "entry", rid, op, available_fen, true);
	MONEY(in, off, "entry", rid, op, self_cap_left_fen, true);
	MONEY(in, off, "entry", rid, op, held_fen, false);
	MONEY(in, off, "entry", rid, op, captured_fen, false);
	MONEY(in, off, "entry", rid, op, refunded_fen, false);
	MONEY(in, off, "entry", rid, op, funder_fen, false);
	alive = op->held_fen + op->captured_fen - op->refunded_fen;
	if (op->refunded_fen > op->captured_fen || op->funder_fen > alive)
		return bad(in, off, "entry %llu: refunded above captured, or "
			   "bank part above the live loan", rid);
	if ((op->state == LIM_OPS_HELD) != (op->held_fen > 0))
		return bad(in, off, "entry %llu: state %u with %lld held", rid,
			   op->state, (long long)op->held_fen);
	if ((op->state == LIM_OPS_DECIDED || op->state == LIM_OPS_TOMBSTONE) &&
	    alive + op->refunded_fen + op->funder_fen != 0)
		return bad(in, off, "entry %llu: a decided entry with a loan",
			   rid);
	if (op->funder_id == 0 && op->funder_fen != 0)
		return bad(in, off, "entry %llu: bank part without a bank", rid);
	if (op->last_seq > in->h.seq_end || op->ledger_seq > in->h.seq_end)
		return bad(in, off, "entry %llu: seq beyond seq_end", rid);
	return 0;
}

/* Quota in use per funder slot, from the live loans. */
struct quota_use {
	unsigned __int128 used[LIM_FUNDERS_MAX];
};

static void
count_loan(const struct lim_funders *fs, const struct lim_op *op,
	   struct quota_use *q)
{
	int64_t alive;

	if (op->op != LIM_OP_AUTHORIZE || op->status != 0 ||
	    op->state == LIM_OPS_TOMBSTONE)
		return;
	alive = op->held_fen + op->captured_fen - op->refunded_fen;
	q->used[0] += (uint64_t)(alive - op->funder_fen);
	for (unsigned i = 1; i < fs->n; i++)
		if (fs->f[i].funder_id == op->funder_id)
			q->used[i] += (uint64_t)op->funder_fen;
}

static int
load_ops(struct load_ctx *c, struct quota_use *q)
{
	struct snap_in *in = c->in;
	const struct lim_funders *fs = lim_funders_get(c->db);
	uint64_t n = sec_count(in, SNAP_OPS), off;
	int rc;

	for (uint64_t i = 0; i < n; i++) {
		struct lim_op op;

		memcpy(&op, rec_at(in, SNAP_OPS, i, &off), sizeof(op));
		rc = check_op(c, &op, off);
		if (rc)
			return rc;
		op.next = 0;
		if (!lim_ops_insert(c->db->ops, &op, &rc)) {
			if (rc == -EEXIST)
				return bad(in, off, "entry (gateway %u, request "
					   "%llu): duplicate", op.gateway_id,
					   (unsigned long long)op.request_id);
			return bad(in, off, "entry %llu: op store full after "
				   "%llu entries (capacity %llu)",
				   (unsigned long long)op.request_id,
				   (unsigned long long)i,
				   (unsigned long long)lim_ops_capacity(c->db->ops));
		}
		count_loan(fs, &op, q);
	}
	return 0;
}

static int
take_budget(struct snap_in *in, struct lim_budget *b, unsigned __int128 used,
	    uint64_t off, const char *what, unsigned id)
{
	int64_t total = lim_budget_total(b);

	if (used > (unsigned __int128)total ||
	    !lim_budget_take(b, 0, (int64_t)used))
		return bad(in, off, "%s %u: %s%llu fen in use exceed its total "
			   "of %lld fen", what, id,
			   used > (unsigned __int128)INT64_MAX ? "over " : "",
			   (unsigned long long)(used > INT64_MAX ? INT64_MAX
								 : used),
			   (long long)total);
	lim_budget_flush(b, 0);
	return 0;
}

/* Derive the budgets: the ceiling from the users, the quotas from loans. */
static int
load_budgets(struct load_ctx *c, const struct quota_use *q)
{
	struct snap_in *in = c->in;
	const struct lim_funders *fs = lim_funders_get(c->db);
	uint64_t ops_off = in->by_type[SNAP_OPS] ? in->by_type[SNAP_OPS]->offset
						 : in->by_type[SNAP_USERS]->offset;
	int rc;

	rc = take_budget(in, c->db->cap, c->exposure,
			 in->by_type[SNAP_USERS]->offset,
			 "lending ceiling (users' debt and holds)", 0);
	for (unsigned i = 0; i < fs->n && !rc; i++)
		rc = take_budget(in, fs->budget[i], q->used[i], ops_off,
				 i ? "funder quota of bank" : "company's own book",
				 fs->f[i].funder_id);
	return rc;
}

static int
meta_alloc(struct snap_in *in, struct lim_snapshot_meta *m)
{
	uint64_t users = sec_count(in, SNAP_USERS);
	uint64_t groups = sec_count(in, SNAP_GROUPS), off;

	memset(m, 0, sizeof(*m));
	m->seq_start = in->h.seq_start;
	m->seq_end = in->h.seq_end;
	m->created_s = in->h.created_s > UINT32_MAX ? UINT32_MAX
						    : (uint32_t)in->h.created_s;
	m->users = users;
	m->groups = groups;
	m->user_stamp = malloc((users ? users : 1) * sizeof(uint32_t));
	m->group_id = malloc((groups ? groups : 1) * sizeof(uint32_t));
	m->group_stamp = malloc((groups ? groups : 1) * sizeof(uint32_t));
	if (!m->user_stamp || !m->group_id || !m->group_stamp)
		return -ENOMEM;
	if (users)
		memcpy(m->user_stamp, rec_at(in, SNAP_USER_STAMPS, 0, &off),
		       users * sizeof(uint32_t));
	return 0;
}

void
lim_snapshot_meta_free(struct lim_snapshot_meta *m)
{
	if (!m)
		return;
	free(m->user_stamp);
	free(m->group_id);
	free(m->group_stamp);
	memset(m, 0, sizeof(*m));
}

static int
size_db(struct snap_in *in, const struct lim_db_config *extra,
	struct lim_db_config *cfg)
{
	uint64_t users = sec_count(in, SNAP_USERS);
	uint64_t ops = sec_count(in, SNAP_OPS);

	memset(cfg, 0, sizeof(*cfg));
	if (extra)
		*cfg = *extra;
	if (!cfg->users_max)
		cfg->users_max = users + users / 16 + 1024;
	if (cfg->users_max > UINT32_MAX)
		cfg->users_max = UINT32_MAX;
	if (!cfg->ops_max)
		cfg->ops_max = ops * 2 > (1u << 20) ? ops * 2 : (1u << 20);
	if (!cfg->merchants_max)
		cfg->merchants_max = sec_count(in, SNAP_MERCHANTS);
	if (!cfg->groups_max)
		cfg->groups_max = sec_count(in, SNAP_GROUPS);
	if (!cfg->shards)
		cfg->shards = in->h.shards;
	if (cfg->shards > LIM_SHARDS_MAX)
		return bad(in, 0, "%u shards asked for, at most %u",
			   cfg->shards, LIM_SHARDS_MAX);
	if (users > cfg->users_max)
		return bad(in, in->by_type[SNAP_USERS]->offset,
			   "%llu users do not fit users_max %llu",
			   (unsigned long long)users,
			   (unsigned long long)cfg->users_max);
	if (ops > cfg->ops_max)
		return bad(in, in->by_type[SNAP_OPS]->offset,
			   "%llu op entries do not fit ops_max %llu",
			   (unsigned long long)ops,
			   (unsigned long long)cfg->ops_max);
	return 0;
}

static int
load_records(struct load_ctx *c, struct lim_snapshot_meta *meta)
{
	struct quota_use q;
	int rc;

	memset(&q, 0, sizeof(q));
	rc = load_policy(c);
	if (!rc)
		rc = load_funders(c);
	if (!rc)
		rc = load_users(c);
	if (!rc)
		rc = load_ext(c);
	if (!rc)
		rc = load_merchants(c);
	if (!rc)
		rc = load_groups(c, meta);
	if (!rc)
		rc = load_ops(c, &q);
	if (!rc)
		rc = load_budgets(c, &q);
	return rc;
}

struct lim_db *
lim_snapshot_load_buf(const void *buf, size_t len, const char *name,
		      const struct lim_db_config *extra,
		      void (*progress)(uint64_t done, uint64_t total),
		      struct lim_snapshot_meta *meta, char *err, size_t errlen)
{
	struct snap_in in = {.p = buf, .len = len, .name = name, .err = err,
			     .errlen = errlen};
	struct load_ctx c = {.in = &in, .extra = extra, .progress = progress};
	struct lim_snapshot_meta m;
	struct lim_db_config cfg;
	void *copy = NULL;
	int rc;

	if ((uintptr_t)buf % sizeof(uint64_t) && len) {
		/* records are read in place: give them their alignment */
		copy = malloc(len);
		if (!copy) {
			snprintf(err, errlen, "%s: out of memory", name);
			return NULL;
		}
		memcpy(copy, buf, len);
		in.p = copy;
	}
	memset(&m, 0, sizeof(m));
	rc = check_file(&in);
	if (!rc)
		rc = size_db(&in, extra, &cfg);
	if (rc)
		goto fail;
	c.db = lim_db_create(&cfg);
	if (!c.db || (meta && meta_alloc(&in, &m))) {
		snprintf(err, errlen, "%s: cannot create a database for %llu "
			 "users, %llu op entries: out of memory", name,
			 (unsigned long long)cfg.users_max,
			 (unsigned long long)cfg.ops_max);
		goto fail;
	}
	if (load_records(&c, meta ? &m : NULL))
		goto fail;
	__atomic_store_n(&c.db->seq, in.h.seq_end, __ATOMIC_RELEASE);
	if (meta)
		*meta = m;
	free(copy);
	return c.db;
fail:
	lim_snapshot_meta_free(&m);
	lim_db_free(c.db);
	free(copy);
	return NULL;
}

/* Map @p path read-only (len 0: no mapping). 0 or a negative errno. */
static int
map_file(const char *path, const uint8_t **p, size_t *len, char *err,
	 size_t errlen)
{
	struct stat st;
	int fd = open(path, O_RDONLY | O_CLOEXEC), rc = 0;

	*p = NULL;
	*len = 0;
	if (fd < 0 || fstat(fd, &st) != 0) {
		rc = -errno;
		snprintf(err, errlen, "%s: open: %s", path, strerror(errno));
		goto out;
	}
	if (!S_ISREG(st.st_mode)) {
		rc = -EINVAL;
		snprintf(err, errlen, "%s: not a regular file", path);
		goto out;
	}
	*len = (size_t)st.st_size;
	if (*len == 0)
		goto out;
	*p = mmap(NULL, *len, PROT_READ, MAP_PRIVATE | MAP_POPULATE, fd, 0);
	if (*p == MAP_FAILED) {
		rc = -errno;
		*p = NULL;
		snprintf(err, errlen, "%s: mmap: %s", path, strerror(errno));
		goto out;
	}
	(void)madvise((void *)*p, *len, MADV_SEQUENTIAL);
out:
	if (fd >= 0)
		close(fd);
	return rc;
}

struct lim_db *
lim_snapshot_load(const char *path, const struct lim_db_config *extra,
		  void (*progress)(uint64_t done, uint64_t total),
		  struct lim_snapshot_meta *meta, char *err, size_t errlen)
{
	const uint8_t *p;
	struct lim_db *db;
	size_t len;

	if (map_file(path, &p, &len, err, errlen))
		return NULL;
	db = lim_snapshot_load_buf(p, len, path, extra, progress, meta, err,
				   errlen);
	if (p)
		munmap((void *)p, len);
	return db;
}

int
lim_snapshot_inspect(const char *path, struct lim_snapshot_info *info,
		     char *err, size_t errlen)
{
	struct snap_in in = {.name = path, .err = err, .errlen = errlen};
	const uint8_t *p;
	size_t len;
	int rc;

	rc = map_file(path, &p, &len, err, errlen);
	if (rc)
		return rc;
	in.p = p;
	in.len = len;
	rc = check_file(&in);
	if (!rc) {
		memset(info, 0, sizeof(*info));
		info->version = in.h.version;
		info->header_len = in.h.header_len;
		info->created_s = in.h.created_s;
		info->seq_start = in.h.seq_start;
		info->seq_end = in.h.seq_end;
		info->file_bytes = in.len;
		info->shards = in.h.shards;
		info->n_sections = in.n;
		for (unsigned i = 0; i < in.n; i++) {
			struct lim_snapshot_section *s = &info->sec[i];

			s->type = in.sec[i].type;
			s->record_size = in.sec[i].record_size;
			s->count = in.sec[i].count;
			s->offset = in.sec[i].offset;
			s->length = in.sec[i].length;
			s->checksum = in.sec[i].checksum;
			s->name = type_name(s->type);
		}
	}
	if (p)
		munmap((void *)p, len);
	return rc;
}

void
lim_snapshot_reseal(void *buf, size_t len)
{
	uint8_t *p = buf;
	struct snap_header h;
	uint64_t tlen;

	if (len < SNAP_HDR_LEN)
		return;
	memcpy(&h, p, sizeof(h));
	if (h.n_sections <= LIM_SNAP_SECTIONS_MAX) {
		tlen = (uint64_t)h.n_sections * sizeof(struct snap_section);
		if (SNAP_HDR_LEN + tlen <= len) {
			for (unsigned i = 0; i < h.n_sections; i++) {
				struct snap_section s;
				uint8_t *at = p + SNAP_HDR_LEN + i * sizeof(s);

				memcpy(&s, at, sizeof(s));
				if (s.offset <= len && s.length <= len - s.offset) {
					s.checksum = XXH3_64bits(p + s.offset,
								 s.length);
					memcpy(at, &s, sizeof(s));
				}
			}
			h.table_checksum = XXH3_64bits(p + SNAP_HDR_LEN, tlen);
		}
	}
	h.checksum = XXH3_64bits(&h, SNAP_HDR_SUMMED);
	memcpy(p, &h, sizeof(h));
}
