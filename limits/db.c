/*
 * db.c - the database of one engine: creates and frees every table, and the
 * RCU-published configuration records (policy, funder table, merchants,
 * groups, user extensions) with their lookups and setters.
 *
 * Owns: the user table, three kv tables, the ops store, the ceiling budget,
 * the current policy and funder table (each in a box that carries its
 * rcu_head), the funders' budgets and the group states.
 *
 * Invariants: db->policy always passes lim_policy_check() and its ceiling is
 * db->cap's total; db->funders has 1..LIM_FUNDERS_MAX funders, slot 0 is
 * funder 0 (the company's own book, national, no bank share), ids are unique
 * and every slot has its own budget whose total is the slot's quota. A
 * budget lives as long as its funder id stays in the table; a group state
 * lives as long as the database (groups are replaced, never deleted).
 *
 * Concurrency: lookups run on QSBR readers (online); each setter is updater
 * only (the caller serialises them, from a registered, online thread). A
 * setter validates and allocates first, then changes budgets, then
 * publishes; a replaced record is freed by call_rcu after a grace period,
 * and so is a removed funder's budget.
 */
#include <errno.h>
#include <sys/mman.h>
#include <string.h>

#include <urcu-qsbr.h>

#include "lim_pvt.h"

#define EXT_HINT 1024 /* no configured bound: the table grows */
#define ALL_PRODUCTS                                                           \
	((1u << LIM_PRODUCT_PAYLATER) | (1u << LIM_PRODUCT_INSTALLMENT) |      \
	 (1u << LIM_PRODUCT_CASH))

struct policy_box {
	struct lim_policy p; /* first: db->policy points here */
	struct rcu_head rcu;
};

struct funders_box {
	struct lim_funders f; /* first: db->funders points here */
	struct rcu_head rcu;
	uint32_t free_mask;   /* budgets to free with this table (slot bits) */
};

_Static_assert(LIM_FUNDERS_MAX <= 32, "free_mask has a bit per slot");
_Static_assert(offsetof(struct policy_box, p) == 0, "box layout");
_Static_assert(offsetof(struct funders_box, f) == 0, "box layout");

/**
 * Report a QSBR quiescent state for the calling (registered, online) reader,
 * releasing the TSan grace-period object first in TSan builds.
 */
void
lim_quiescent_state(void)
{
	LIM_TSAN_GP_RELEASE();
	rcu_quiescent_state();
}

/* A funder budget's refill chunk: 0.01% of its quota, as for the ceiling. */
static int64_t
funder_chunk(int64_t quota_fen)
{
	return quota_fen / 10000 > 0 ? quota_fen / 10000 : 1;
}

static void
policy_free_rcu(struct rcu_head *head)
{
	LIM_TSAN_GP_ACQUIRE();
	free(caa_container_of(head, struct policy_box, rcu));
}

static void
funders_box_free(struct funders_box *fb)
{
	for (unsigned i = 0; i < fb->f.n; i++)
		if (fb->free_mask & (1u << i))
			lim_budget_free(fb->f.budget[i]);
	free(fb);
}

static void
funders_free_rcu(struct rcu_head *head)
{
	LIM_TSAN_GP_ACQUIRE();
	funders_box_free(caa_container_of(head, struct funders_box, rcu));
}

static void
group_fini(void *rec)
{
	free(((struct lim_group *)rec)->st);
}

static int
db_defaults(struct lim_db *db)
{
	struct policy_box *pb = calloc(1, sizeof(*pb));
	struct funders_box *fb = calloc(1, sizeof(*fb));

	if (!pb || !fb)
		goto fail;
	lim_policy_default(&pb->p);
	fb->f.n = 1;
	fb->f.f[0].quota_fen = pb->p.ceiling_fen;
	fb->f.f[0].products = ALL_PRODUCTS;
	fb->f.budget[0] = lim_budget_create(pb->p.ceiling_fen,
					    funder_chunk(pb->p.ceiling_fen),
					    db->shards);
	fb->free_mask = 1;
	db->cap = lim_budget_create(pb->p.ceiling_fen, pb->p.cap_chunk_fen,
				    db->shards);
	if (!fb->f.budget[0] || !db->cap)
		goto fail;
	db->policy = &pb->p;
	db->funders = &fb->f;
	return 0;
fail:
	if (fb)
		funders_box_free(fb);
	free(pb);
	return -ENOMEM;
}

/**
 * Create an empty database with the default policy and the default funder
 * table (the company's own book, quota = ceiling).
 * @param cfg  users_max and ops_max >= 1, shards 1..LIM_SHARDS_MAX;
 *             merchants_max and groups_max size the initial hash tables.
 * @return the database, or NULL on a bad config or allocation failure.
 */
struct lim_db *
lim_db_create(const struct lim_db_config *cfg)
{
	struct lim_db *db;

	if (!cfg || cfg->shards == 0 || cfg->shards > LIM_SHARDS_MAX)
		return NULL;
	db = calloc(1, sizeof(*db));
	if (!db)
		return NULL;
	db->shards = cfg->shards;
	db->users = lim_users_create(cfg->users_max);
	db->ext = lim_kv_create(sizeof(struct lim_user_ext), sizeof(uint64_t),
				EXT_HINT);
	db->merchants = lim_kv_create(sizeof(struct lim_merchant),
				      sizeof(uint32_t), cfg->merchants_max);
	db->groups = lim_kv_create(sizeof(struct lim_group), sizeof(uint32_t),
				   cfg->groups_max);
	db->ops = lim_ops_create(cfg->ops_max);
	if (!db->users || !db->ext || !db->merchants || !db->groups ||
	    !db->ops || db_defaults(db)) {
		lim_db_free(db);
		return NULL;
	}
	return db;
}

/**
 * Free @p db and everything in it (NULL is fine). Updater, from a
 * registered thread, after every reader has stopped and unregistered or gone
 * offline: waits for pending call_rcu frees (rcu_barrier()) before
 * returning.
 */
void
lim_db_free(struct lim_db *db)
{
	struct funders_box *fb;
	bool online;

	if (!db)
		return;
	lim_kv_free(db->ext, NULL);
	lim_kv_free(db->merchants, NULL);
	lim_kv_free(db->groups, group_fini);
	lim_ops_free(db->ops);
	lim_users_free(db->users);
	lim_budget_free(db->cap);
	if (db->funders) {
		fb = caa_container_of(db->funders, struct funders_box, f);
		/* the live table owns every one of its budgets */
		fb->free_mask = UINT32_MAX;
		funders_box_free(fb);
	}
	if (db->policy)
		free(caa_container_of(db->policy, struct policy_box, p));
	free(db);
	/* rcu_barrier() must not run online in QSBR: it waits for us */
	online = rcu_read_ongoing();
	if (online)
		rcu_thread_offline();
	rcu_barrier();
	if (online)
		rcu_thread_online();
}

/* ------------------------------------------------------------------------ */
/* Lookups (QSBR read side online)                                            */

/** The extension of @p user_id, or NULL. Valid until the next QS. */
const struct lim_user_ext *
lim_ext_find(struct lim_db *db, uint64_t user_id)
{
	return lim_kv_find(db->ext, user_id);
}

/** Merchant @p id, or NULL. Valid until the caller's next QS. */
void
lim_merchant_prefetch(struct lim_db *db, uint32_t id)
{
	lim_kv_prefetch(db->merchants, id);
}

const struct lim_merchant *
lim_merchant_find(struct lim_db *db, uint32_t id)
{
	return lim_kv_find(db->merchants, id);
}

/** Group @p id, or NULL. The record is valid until the caller's next QS;
 * its state (g->st) as long as the database. */
const struct lim_group *
lim_group_find(struct lim_db *db, uint32_t id)
{
	return lim_kv_find(db->groups, id);
}

/** The current policy. Valid until the caller's next QS. */
const struct lim_policy *
lim_policy_get(struct lim_db *db)
{
	return LIM_RCU_DEREF(db->policy);
}

/** The current funder table. Valid until the caller's next QS. */
const struct lim_funders *
lim_funders_get(struct lim_db *db)
{
	return LIM_RCU_DEREF(db->funders);
}

/* ------------------------------------------------------------------------ */
/* Setters (updater only)                                                     */

/**
 * Set (insert or replace) the extension of x->user_id.
 * @return 0; -EINVAL (user id 0); -ENOMEM.
 */
int
lim_ext_set(struct lim_db *db, const struct lim_user_ext *x)
{
	if (x->user_id == 0)
		return -EINVAL;
	return lim_kv_set(db->ext, x);
}

/**
 * Delete the extension of @p user_id (the caller clears LIM_USER_EXT).
 * @return 0; -ENOENT when there is none.
 */
int
lim_ext_del(struct lim_db *db, uint64_t user_id)
{
	return lim_kv_del(db->ext, user_id);
}

/**
 * Set (insert or replace) merchant m->merchant_id.
 * @return 0; -EINVAL (id 0, risk score above 1000, unknown subsidy bits);
 *         -ENOMEM.
 */
int
lim_merchant_set(struct lim_db *db, const struct lim_merchant *m)
{
	const unsigned subsidies = LIM_SUBSIDY_3 | LIM_SUBSIDY_6 |
				   LIM_SUBSIDY_12;

	if (m->merchant_id == 0 || m->risk_score > 1000 ||
	    (m->subsidy & ~subsidies))
		return -EINVAL;
	return lim_kv_set(db->merchants, m);
}

static bool
group_valid(const struct lim_group *g)
{
	if (g->group_id == 0 || g->n_members == 0 ||
	    g->n_members > LIM_GROUP_MEMBERS_MAX || g->budget_fen < 0)
		return false;
	for (unsigned i = 0; i < g->n_members; i++)
		if (g->members[i] == 0)
			return false;
	return true;
}

/**
 * Set (insert or replace) group g->group_id. g->st is ignored: a replaced
 * group keeps its state (spend this month, lock), a new group gets a zeroed
 * one.
 * @return 0; -EINVAL (id 0, no members or too many, a member id 0, negative
 *         budget); -ENOMEM.
 */
int
lim_group_set(struct lim_db *db, const struct lim_group *g)
{
	const struct lim_group *old;
	struct lim_group copy;
	bool fresh = false;
	int rc;

	if (!group_valid(g))
		return -EINVAL;
	copy = *g;
	old = lim_kv_find(db->groups, g->group_id);
	if (old) {
		copy.st = old->st;
	} else {
		/* its own line: the lock byte is written by every payment */
		copy.st = aligned_alloc(LIM_CACHE_LINE, LIM_CACHE_LINE);
		if (!copy.st)
			return -ENOMEM;
		memset(copy.st, 0, LIM_CACHE_LINE);
		fresh = true;
	}
	rc = lim_kv_set(db->groups, &copy);
	if (rc && fresh)
		free(copy.st);
	return rc;
}

/**
 * Publish a copy of @p p. A changed ceiling changes the ceiling budget's
 * total (and a changed chunk its chunk) before the policy is published.
 * @return 0; -EINVAL (lim_policy_check() fails); -ERANGE (the new ceiling is
 *         below what is lent or reserved, see lim_budget_adjust()); -EAGAIN
 *         (the ceiling budget stayed contended: retry); -ENOMEM. Nothing
 *         changes on error.
 */
int
lim_policy_set(struct lim_db *db, const struct lim_policy *p)
{
	const struct lim_policy *cur = db->policy; /* updater: no race */
	struct policy_box *pb, *old;
	int rc;

	if (lim_policy_check(p, NULL, 0))
		return -EINVAL;
	pb = malloc(sizeof(*pb));
	if (!pb)
		return -ENOMEM;
	pb->p = *p;
	if (p->ceiling_fen != cur->ceiling_fen) {
		rc = lim_budget_adjust(db->cap,
				       p->ceiling_fen - cur->ceiling_fen);
		if (rc) {
			free(pb);
			return rc;
		}
	}
	LIM_VERIFY(lim_budget_total(db->cap) == p->ceiling_fen);
	if (p->cap_chunk_fen != cur->cap_chunk_fen)
		lim_budget_set_chunk(db->cap, p->cap_chunk_fen);
	old = caa_container_of(cur, struct policy_box, p);
	LIM_RCU_ASSIGN(db->policy, &pb->p);
	LIM_TSAN_GP_RELEASE();
	call_rcu(&old->rcu, policy_free_rcu);
	return 0;
}

static bool
funders_valid(const struct lim_funder *f, unsigned n)
{
	if (n == 0 || n > LIM_FUNDERS_MAX)
		return false;
	/* slot 0: the company funding alone, everywhere, with no bank share */
	if (f[0].funder_id != 0 || f[0].region != 0 || f[0].share_pct != 0)
		return false;
	for (unsigned i = 0; i < n; i++) {
		if (f[i].quota_fen < 0 || f[i].share_pct > 100 ||
		    (f[i].products & ~ALL_PRODUCTS))
			return false;
		for (unsigned j = 0; j < i; j++)
			if (f[j].funder_id == f[i].funder_id)
				return false;
	}
	return true;
}

static int
funder_find(const struct lim_funders *fs, uint16_t funder_id)
{
	for (unsigned i = 0; i < fs->n; i++)
		if (fs->f[i].funder_id == funder_id)
			return (int)i;
	return -1;
}

/*
 * Give every slot of @p nf its budget: the old one of the same funder id, or
 * a new one (marked in nf's free_mask until the table is published).
 */
static int
funders_budgets(const struct lim_funders *of, struct funders_box *nf,
		unsigned shards)
{
	for (unsigned i = 0; i < nf->f.n; i++) {
		const struct lim_funder *f = &nf->f.f[i];
		int j = funder_find(of, f->funder_id);

		if (j >= 0) {
			nf->f.budget[i] = of->budget[j];
			continue;
		}
		nf->f.budget[i] = lim_budget_create(f->quota_fen,
						    funder_chunk(f->quota_fen),
						    shards);
		if (!nf->f.budget[i])
			return -ENOMEM;
		nf->free_mask |= 1u << i;
	}
	return 0;
}

/* How much the quota of @p f moves from the old table (0 for a new id). */
static int64_t
quota_delta(const struct lim_funders *of, const struct lim_funder *f)
{
	int j = funder_find(of, f->funder_id);

	return j < 0 ? 0 : f->quota_fen - of->f[j].quota_fen;
}

/*
 * Move the kept budgets' totals to the new quotas: decreases first (they
 * may fail, and are then undone by increases, which cannot), then increases.
 */
static int
funders_adjust(const struct lim_funders *of, struct funders_box *nf)
{
	int64_t d[LIM_FUNDERS_MAX];
	unsigned n = nf->f.n, i;
	int rc = 0;

	for (i = 0; i < n; i++)
		d[i] = quota_delta(of, &nf->f.f[i]);
	for (i = 0; i < n && rc == 0; i++)
		if (d[i] < 0)
			rc = lim_budget_adjust(nf->f.budget[i], d[i]);
	if (rc) {
		unsigned failed = i - 1;

		for (i = 0; i < failed; i++)
			if (d[i] < 0)
				LIM_VERIFY(!lim_budget_adjust(nf->f.budget[i],
							      -d[i]));
		return rc;
	}
	for (i = 0; i < n; i++) {
		int64_t q = nf->f.f[i].quota_fen;

		if (d[i] > 0)
			LIM_VERIFY(!lim_budget_adjust(nf->f.budget[i], d[i]));
		LIM_VERIFY(lim_budget_total(nf->f.budget[i]) == q);
		lim_budget_set_chunk(nf->f.budget[i], funder_chunk(q));
	}
	return 0;
}

/**
 * Publish a new funder table of @p n funders (copied). A funder id that
 * stays keeps its budget, its total moved to the new quota; a new id gets a
 * new budget; a removed id's budget is freed after a grace period.
 * @return 0; -EINVAL (n not in 1..LIM_FUNDERS_MAX; slot 0 not funder 0,
 *         national, share 0; duplicate ids; negative quota; share above 100;
 *         unknown product bits); -ERANGE (a quota below what the funder has
 *         lent or reserved); -EAGAIN (a budget stayed contended: retry);
 *         -ENOMEM. Nothing changes on error.
 */
int
lim_funders_set(struct lim_db *db, const struct lim_funder *f, unsigned n)
{
	const struct lim_funders *of = db->funders; /* updater: no race */
	struct funders_box *nf, *ob;
	int rc;

	if (!funders_valid(f, n))
		return -EINVAL;
	nf = calloc(1, sizeof(*nf));
	if (!nf)
		return -ENOMEM;
	nf->f.n = n;
	memcpy(nf->f.f, f, n * sizeof(*f));
	rc = funders_budgets(of, nf, db->shards);
	if (!rc)
		rc = funders_adjust(of, nf);
	if (rc) {
		funders_box_free(nf); /* frees only the budgets made for it */
		return rc;
	}
	nf->free_mask = 0;
	ob = caa_container_of(of, struct funders_box, f);
	ob->free_mask = 0;
	for (unsigned j = 0; j < of->n; j++)
		if (funder_find(&nf->f, of->f[j].funder_id) < 0)
			ob->free_mask |= 1u << j;
	LIM_RCU_ASSIGN(db->funders, &nf->f);
	LIM_TSAN_GP_RELEASE();
	call_rcu(&ob->rcu, funders_free_rcu);
	return 0;
}

#ifndef MADV_POPULATE_WRITE
#define MADV_POPULATE_WRITE 23
#endif

void
lim_prefault(void *p, size_t bytes)
{
	volatile uint8_t *b = p;

	if (!p || !bytes)
		return;
	if (madvise(p, bytes, MADV_POPULATE_WRITE) == 0)
		return;
	/* Older kernels: touch each page, writing back what is there. */
	for (size_t off = 0; off < bytes; off += 4096)
		b[off] = b[off];
}

void
lim_db_prefault(struct lim_db *db)
{
	lim_users_prefault(db->users);
	lim_ops_prefault(db->ops);
}
