/*
 * snapshot_load.c - load a snapshot file into a new lim_db (format:
 * snapshot_fmt.c, docs/snapshot-format.md).
 *
 * Validate everything before trusting anything. First the file's structure
 * (lim_snap_check_file: header, section table, every checksum, trailer);
 * only then are records read, in place from the mapping, each checked (ids,
 * ranges, states, money within LIM_MONEY_MAX) as it is inserted; users in
 * chunks, validated then inserted in bulk so the index misses overlap.
 * Budgets are not in the file: the ceiling in use is the users' debt plus
 * holds, each funder's quota in use is its part of the live loans and the
 * company's own book the rest of them, taken through shard 0 and flushed.
 * The new db's seq is seq_end; @p meta gets the stamps recovery needs.
 *
 * A refusal names the file, the byte offset and the reason; the partly
 * built database is freed.
 *
 * Concurrency: one caller, a registered QSBR thread with the read side
 * online, before the database is shared.
 */
#include <errno.h>
#include <stdarg.h>
#include <string.h>
#include <sys/mman.h>

#include "lim_pvt.h"

#define SNAP_LOAD_CHUNK 65536u            /* users validated, then inserted */

__attribute__((format(printf, 3, 4))) static int
bad(struct lim_snap_in *in, uint64_t off, const char *fmt, ...)
{
	va_list ap;
	int rc;

	va_start(ap, fmt);
	rc = lim_snap_vfail(in, off, fmt, ap);
	va_end(ap);
	return rc;
}

struct load_ctx {
	struct lim_snap_in *in;
	struct lim_db *db;
	const struct lim_db_config *extra;
	void (*progress)(uint64_t done, uint64_t total);
	unsigned __int128 exposure;   /* sum of users' debt + holds */
	uint64_t ext_flagged;         /* users with LIM_USER_EXT */
};

static const uint8_t *
rec_at(const struct lim_snap_in *in, uint32_t type, uint64_t i, uint64_t *off)
{
	const struct lim_snap_section *s = in->by_type[type];

	*off = s->offset + i * s->record_size;
	return in->p + *off;
}

static uint64_t
sec_count(const struct lim_snap_in *in, uint32_t type)
{
	return in->by_type[type] ? in->by_type[type]->count : 0;
}

static bool
money_ok(int64_t v, bool signed_ok)
{
	return v <= LIM_MONEY_MAX && v >= (signed_ok ? -LIM_MONEY_MAX : 0);
}

static int
check_money(struct lim_snap_in *in, uint64_t off, const char *what, uint64_t id,
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
	struct lim_snap_in *in = c->in;
	struct lim_policy p;
	char msg[160];
	uint64_t off;
	int rc;

	if (sec_count(in, LIM_SNAP_POLICY) != 1)
		return bad(in, in->by_type[LIM_SNAP_POLICY]->offset,
			   "%llu policy records, expected 1",
			   (unsigned long long)sec_count(in, LIM_SNAP_POLICY));
	memcpy(&p, rec_at(in, LIM_SNAP_POLICY, 0, &off), sizeof(p));
	if (lim_policy_check(&p, msg, sizeof(msg)))
		return bad(in, off, "policy: %s", msg);
	rc = lim_policy_set(c->db, &p);
	if (rc)
		return bad(in, off, "policy: cannot be set: %s", strerror(-rc));
	return 0;
}

static int
check_funder(struct lim_snap_in *in, const struct lim_funder *f, unsigned i,
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
	struct lim_snap_in *in = c->in;
	struct lim_funder f[LIM_FUNDERS_MAX];
	uint64_t n = sec_count(in, LIM_SNAP_FUNDERS), off;
	int rc;

	if (n == 0 || n > LIM_FUNDERS_MAX)
		return bad(in, in->by_type[LIM_SNAP_FUNDERS]->offset,
			   "%llu funders, expected 1..%u",
			   (unsigned long long)n, LIM_FUNDERS_MAX);
	for (unsigned i = 0; i < n; i++) {
		memcpy(&f[i], rec_at(in, LIM_SNAP_FUNDERS, i, &off),
		       sizeof(f[i]));
		rc = check_funder(in, &f[i], i, f, off);
		if (rc)
			return rc;
	}
	rc = lim_funders_set(c->db, f, (unsigned)n);
	if (rc)
		return bad(in, in->by_type[LIM_SNAP_FUNDERS]->offset,
			   "funder table refused: %s", strerror(-rc));
	return 0;
}

static int
check_user(struct lim_snap_in *in, const struct lim_user *u, uint64_t off)
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
check_stamp(struct lim_snap_in *in, uint64_t i, const struct lim_user *u)
{
	uint64_t off;
	uint32_t st;

	memcpy(&st, rec_at(in, LIM_SNAP_USER_STAMPS, i, &off), sizeof(st));
	if (st > in->h.seq_end - in->h.seq_start)
		return bad(in, off, "user %llu: stamp %u beyond seq_end",
			   (unsigned long long)u->user_id, st);
	return 0;
}

/* Validate then insert users [i, i + k). */
static int
load_user_chunk(struct load_ctx *c, uint64_t i, uint64_t k)
{
	struct lim_snap_in *in = c->in;
	uint64_t off0, off, done;
	const struct lim_user *u =
		(const void *)rec_at(in, LIM_SNAP_USERS, i, &off0);
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
	struct lim_snap_in *in = c->in;
	uint64_t n = sec_count(in, LIM_SNAP_USERS);
	uint64_t next = LIM_SNAP_PROGRESS_USERS;
	int rc;

	if (sec_count(in, LIM_SNAP_USER_STAMPS) != n)
		return bad(in, in->by_type[LIM_SNAP_USER_STAMPS]->offset,
			   "%llu user stamps for %llu users",
			   (unsigned long long)sec_count(in,
							 LIM_SNAP_USER_STAMPS),
			   (unsigned long long)n);
	for (uint64_t i = 0; i < n; i += SNAP_LOAD_CHUNK) {
		uint64_t k = n - i < SNAP_LOAD_CHUNK ? n - i : SNAP_LOAD_CHUNK;

		rc = load_user_chunk(c, i, k);
		if (rc)
			return rc;
		if (c->progress && i + k >= next) {
			c->progress(i + k, n);
			next += LIM_SNAP_PROGRESS_USERS;
		}
	}
	if (c->progress)
		c->progress(n, n);
	return 0;
}

static int
load_ext(struct load_ctx *c)
{
	struct lim_snap_in *in = c->in;
	uint64_t n = sec_count(in, LIM_SNAP_USER_EXT), off;
	int rc;

	for (uint64_t i = 0; i < n; i++) {
		struct lim_user_ext x;
		const struct lim_user *u;
		unsigned long long id;

		memcpy(&x, rec_at(in, LIM_SNAP_USER_EXT, i, &off), sizeof(x));
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
		return bad(in, in->by_type[LIM_SNAP_USERS]->offset,
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
	struct lim_snap_in *in = c->in;
	uint64_t n = sec_count(in, LIM_SNAP_MERCHANTS), off;
	int rc;

	for (uint64_t i = 0; i < n; i++) {
		struct lim_merchant m;

		memcpy(&m, rec_at(in, LIM_SNAP_MERCHANTS, i, &off), sizeof(m));
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
check_group(struct lim_snap_in *in, const struct lim_snap_group *g, uint64_t off)
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
	struct lim_snap_in *in = c->in;
	uint64_t n = sec_count(in, LIM_SNAP_GROUPS), off;
	int rc;

	for (uint64_t i = 0; i < n; i++) {
		struct lim_snap_group sg;
		struct lim_group g;
		const struct lim_group *pub;

		memcpy(&sg, rec_at(in, LIM_SNAP_GROUPS, i, &off), sizeof(sg));
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
	struct lim_snap_in *in = c->in;
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
	struct lim_snap_in *in = c->in;
	const struct lim_funders *fs = lim_funders_get(c->db);
	uint64_t n = sec_count(in, LIM_SNAP_OPS), off;
	int rc;

	for (uint64_t i = 0; i < n; i++) {
		struct lim_op op;

		memcpy(&op, rec_at(in, LIM_SNAP_OPS, i, &off), sizeof(op));
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
take_budget(struct lim_snap_in *in, struct lim_budget *b, unsigned __int128 used,
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
	struct lim_snap_in *in = c->in;
	const struct lim_funders *fs = lim_funders_get(c->db);
	const struct lim_snap_section *ops = in->by_type[LIM_SNAP_OPS];
	uint64_t ops_off = (ops ? ops : in->by_type[LIM_SNAP_USERS])->offset;
	int rc;

	rc = take_budget(in, c->db->cap, c->exposure,
			 in->by_type[LIM_SNAP_USERS]->offset,
			 "lending ceiling (users' debt and holds)", 0);
	for (unsigned i = 0; i < fs->n && !rc; i++)
		rc = take_budget(in, fs->budget[i], q->used[i], ops_off,
				 i ? "funder quota of bank" : "company's own book",
				 fs->f[i].funder_id);
	return rc;
}

static int
meta_alloc(struct lim_snap_in *in, struct lim_snapshot_meta *m)
{
	uint64_t users = sec_count(in, LIM_SNAP_USERS);
	uint64_t groups = sec_count(in, LIM_SNAP_GROUPS), off;

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
		memcpy(m->user_stamp, rec_at(in, LIM_SNAP_USER_STAMPS, 0, &off),
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
size_db(struct lim_snap_in *in, const struct lim_db_config *extra,
	struct lim_db_config *cfg)
{
	uint64_t users = sec_count(in, LIM_SNAP_USERS);
	uint64_t ops = sec_count(in, LIM_SNAP_OPS);

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
		cfg->merchants_max = sec_count(in, LIM_SNAP_MERCHANTS);
	if (!cfg->groups_max)
		cfg->groups_max = sec_count(in, LIM_SNAP_GROUPS);
	if (!cfg->shards)
		cfg->shards = in->h.shards;
	if (cfg->shards > LIM_SHARDS_MAX)
		return bad(in, 0, "%u shards asked for, at most %u",
			   cfg->shards, LIM_SHARDS_MAX);
	if (users > cfg->users_max)
		return bad(in, in->by_type[LIM_SNAP_USERS]->offset,
			   "%llu users do not fit users_max %llu",
			   (unsigned long long)users,
			   (unsigned long long)cfg->users_max);
	if (ops > cfg->ops_max)
		return bad(in, in->by_type[LIM_SNAP_OPS]->offset,
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
	struct lim_snap_in in = {.p = buf, .len = len, .name = name, .err = err,
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
	rc = lim_snap_check_file(&in);
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

struct lim_db *
lim_snapshot_load(const char *path, const struct lim_db_config *extra,
		  void (*progress)(uint64_t done, uint64_t total),
		  struct lim_snapshot_meta *meta, char *err, size_t errlen)
{
	const uint8_t *p;
	struct lim_db *db;
	size_t len;

	if (lim_snap_map(path, &p, &len, err, errlen))
		return NULL;
	db = lim_snapshot_load_buf(p, len, path, extra, progress, meta, err,
				   errlen);
	if (p)
		munmap((void *)p, len);
	return db;
}
