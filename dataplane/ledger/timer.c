/*
 * timer.c - hold expiry: a hashed timing wheel of open holds, owned by the
 * ledger thread, and a slow incremental sweep of the op store behind it.
 *
 * Wheel: DP_TIMER_SLOTS one-second slots; a hold expiring at second s is
 * linked into slot s % SLOTS and carries s, so a slot visited at second t
 * fires the holds with s <= t and keeps the others for a later round (a
 * 7-day hold is looked at ~9 times). The cursor visits each second once;
 * after a jump of the clock (a fixed test clock moved by `authctl clock
 * set`, a stopped process) it visits at most every slot once. Nodes come
 * from a pool sized at start (no allocation after), indexed by uint32.
 *
 * Firing a node does not trust it: the ledger looks the user up, takes the
 * user's lock, finds the entry by key again (lim_ops_find_owned), and only
 * if it is still a HELD hold of that user that has lapsed (auth_expire(),
 * pure) applies the EXPIRE effect (lim_apply, the ledger's budget shard)
 * and hands it to the journal, in seq order with everything else. A hold
 * captured or voided meanwhile is simply dropped from the wheel.
 *
 * Safety net: a full pool, or an entry the wheel never heard of, is caught
 * by lim_ops_scan() visiting a bounded number of entries per pass; the
 * same pass reclaims entries past retain_until_s (lim_ops_remove under the
 * user's lock). Reclaiming is not journaled: it changes no money and is
 * done again after a restart from the same time rule.
 *
 * Lock order (docs/design-notes.md): user lock, then group lock; the scan
 * hands us a copy and holds no partition lock while we act.
 * Concurrency: one thread (the ledger), a QSBR reader, online here.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#include <rte_debug.h>
#include <rte_log.h>

#include "ledger.h"

#define DP_TIMER_SLOTS (1u << 16)       /* ~18 h of one-second slots */
#define DP_TIMER_NIL UINT32_MAX

struct timer_node {
	uint64_t request_id;
	uint64_t user_id;
	uint32_t gateway_id;
	uint32_t expires_s;
	uint32_t next;
	uint32_t pad;
};

struct dp_timer {
	struct timer_node *pool;
	uint64_t capacity;
	uint64_t used_hwm;          /* nodes ever taken from the bump area */
	uint32_t free_head;
	uint32_t due;               /* nodes already due when added */
	uint32_t cur_s;             /* next second the cursor visits */
	uint32_t slot[DP_TIMER_SLOTS];
	struct dp_timer_stats st;
};

_Static_assert(sizeof(struct timer_node) == 32, "a wheel node is 32 bytes");

struct dp_timer *
dp_timer_create(uint64_t capacity, uint32_t now_s)
{
	struct dp_timer *t = calloc(1, sizeof(*t));

	if (!t)
		return NULL;
	if (capacity >= DP_TIMER_NIL)
		capacity = DP_TIMER_NIL - 1;
	t->capacity = capacity ? capacity : 1;
	/* reserved now, pages touched only as holds arrive */
	t->pool = mmap(NULL, t->capacity * sizeof(*t->pool),
		       PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS |
		       MAP_NORESERVE, -1, 0);
	if (t->pool == MAP_FAILED) {
		free(t);
		return NULL;
	}
	for (unsigned i = 0; i < DP_TIMER_SLOTS; i++)
		t->slot[i] = DP_TIMER_NIL;
	t->free_head = DP_TIMER_NIL;
	t->due = DP_TIMER_NIL;
	t->cur_s = now_s;
	return t;
}

void
dp_timer_free(struct dp_timer *t)
{
	if (!t)
		return;
	munmap(t->pool, t->capacity * sizeof(*t->pool));
	free(t);
}

static uint32_t
node_get(struct dp_timer *t)
{
	uint32_t i = t->free_head;

	if (i != DP_TIMER_NIL) {
		t->free_head = t->pool[i].next;
		return i;
	}
	if (t->used_hwm < t->capacity)
		return (uint32_t)t->used_hwm++;
	return DP_TIMER_NIL;
}

static void
node_put(struct dp_timer *t, uint32_t i)
{
	t->pool[i].next = t->free_head;
	t->free_head = i;
	t->st.pending--;
}

static void
link_node(struct dp_timer *t, uint32_t i)
{
	uint32_t *head = t->pool[i].expires_s < t->cur_s
				 ? &t->due
				 : &t->slot[t->pool[i].expires_s % DP_TIMER_SLOTS];

	t->pool[i].next = *head;
	*head = i;
}

int
dp_timer_add(struct dp_timer *t, uint32_t gateway_id, uint64_t request_id,
	     uint64_t user_id, uint32_t expires_s)
{
	uint32_t i = node_get(t);

	if (i == DP_TIMER_NIL) {
		t->st.overflow++;
		return -ENOSPC;
	}
	t->pool[i] = (struct timer_node){.request_id = request_id,
					 .user_id = user_id,
					 .gateway_id = gateway_id,
					 .expires_s = expires_s};
	link_node(t, i);
	t->st.added++;
	t->st.pending++;
	return 0;
}

static int
rebuild_one(struct lim_op *op, void *arg)
{
	struct dp_timer *t = arg;

	if (op->state == LIM_OPS_HELD)
		dp_timer_add(t, op->gateway_id, op->request_id, op->user_id,
			     op->hold_expires_s);
	return 0;
}

uint64_t
dp_timer_rebuild(struct dp_timer *t, struct lim_db *db)
{
	uint64_t before = t->st.added;

	lim_ops_foreach(db->ops, rebuild_one, t);
	return t->st.added - before;
}

/* ------------------------------------------------------------------------ */
/* Acting on a hold or an entry                                               */

/*
 * Expire the hold (gateway, request) of @p user_id if it is still open and
 * lapsed at @p now; reclaim the entry if @p reclaim and it is past
 * retain_until_s. Returns 1 when an EXPIRE effect was applied into @p e.
 */
static int
act(struct dp_timer_ctx *x, uint32_t gateway_id, uint64_t request_id,
    uint64_t user_id, bool reclaim, struct lim_effect *e)
{
	struct lim_db *db = x->db;
	struct lim_user *u = lim_users_find(db->users, user_id);
	const struct lim_group *g = NULL;
	struct lim_op *op;
	int foreign, rc = 0;

	if (!u)
		return 0;
	lim_user_lock(u);
	op = lim_ops_find_owned(db->ops, gateway_id, request_id, user_id,
				&foreign);
	if (op && auth_expire(op, u, &x->now, e)) {
		g = op->group_id ? lim_group_find(db, op->group_id) : NULL;
		if (g)
			lim_group_lock(g->st);
		rc = lim_apply(db, x->shard, u, g, op, e);
		if (g)
			lim_group_unlock(g->st);
		/* An expiry inserts nothing and only gives budgets back. */
		RTE_VERIFY(rc == 0);
		rc = 1;
	} else if (op && reclaim && op->state != LIM_OPS_HELD &&
		   op->retain_until_s <= x->now.s) {
		lim_ops_remove(db->ops, op);
		x->t->st.reclaimed++;
	}
	lim_user_unlock(u);
	return rc;
}

/* Fire the nodes of list @p head that are due; keep the others. */
static unsigned
fire_list(struct dp_timer_ctx *x, uint32_t *head, unsigned budget)
{
	struct dp_timer *t = x->t;
	uint32_t *pp = head;
	unsigned n = 0;

	while (*pp != DP_TIMER_NIL && n < budget) {
		uint32_t i = *pp;
		struct timer_node nd = t->pool[i];
		struct lim_effect e;

		if (nd.expires_s > x->now.s) {
			pp = &t->pool[i].next;
			continue;
		}
		*pp = nd.next;
		node_put(t, i);
		t->st.fired++;
		n++;
		if (act(x, nd.gateway_id, nd.request_id, nd.user_id, false, &e)) {
			t->st.expired++;
			x->emit(x->arg, &e);
		}
	}
	return n;
}

unsigned
dp_timer_run(struct dp_timer_ctx *x, unsigned budget)
{
	struct dp_timer *t = x->t;
	uint32_t now = x->now.s;
	unsigned n = fire_list(x, &t->due, budget);

	if (now >= t->cur_s && now - t->cur_s >= DP_TIMER_SLOTS)
		t->cur_s = now - DP_TIMER_SLOTS + 1; /* every slot once */
	while (t->cur_s <= now && n < budget) {
		uint32_t *head = &t->slot[t->cur_s % DP_TIMER_SLOTS];

		n += fire_list(x, head, budget - n);
		if (n >= budget)
			break; /* resume this slot next time */
		t->cur_s++;
	}
	return n;
}

/* ------------------------------------------------------------------------ */
/* The sweep behind the wheel                                                 */

static void
sweep_one(const struct lim_op *copy, void *arg)
{
	struct dp_timer_ctx *x = arg;
	struct lim_effect e;

	if (x->sweep_left == 0)
		return; /* no room for more effects this pass */
	if (act(x, copy->gateway_id, copy->request_id, copy->user_id, true,
		&e)) {
		x->sweep_left--;
		x->t->st.sweep_expired++;
		x->t->st.expired++;
		x->emit(x->arg, &e);
	}
}

unsigned
dp_timer_sweep(struct dp_timer_ctx *x, unsigned visit_budget,
	       unsigned effect_budget)
{
	unsigned v;

	x->sweep_left = effect_budget;
	v = lim_ops_scan(x->db->ops, x->now.s, visit_budget, sweep_one, x);
	x->t->st.swept += v;
	return v;
}

void
dp_timer_stats_get(const struct dp_timer *t, struct dp_timer_stats *st)
{
	*st = t->st;
}
