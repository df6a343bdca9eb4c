/*
 * kv.c - RCU hash tables of immutable records: user extensions, merchants,
 * groups (one record type per table, keyed by the record's first field).
 *
 * Owns: a cds_lfht (QSBR flavour) of nodes that embed the lfht node, an
 * rcu_head, the key and a copy of the record. The table is created with
 * buckets for the configured number of records and grows by itself
 * (CDS_LFHT_AUTO_RESIZE | CDS_LFHT_ACCOUNTING) on the update path; a lookup
 * never allocates.
 *
 * Invariants: a published node is never written again; at most one node per
 * key is reachable (add_replace); a node leaves the table before it is
 * freed, and is freed only after a grace period (call_rcu).
 *
 * Concurrency: any number of QSBR readers (registered, online) find and walk;
 * one updater (the caller serialises) sets and deletes, registered and
 * online itself, since the lfht and call_rcu ask for it. The node's key is
 * stored last with release and loaded with acquire by the match function,
 * so a reader that matched a node sees its whole record (this also makes the
 * publication visible to ThreadSanitizer; liburcu's own barriers are not).
 *
 * Group states (struct lim_group_state) are mutable and outlive their group
 * records; their lock is a spin byte like a user's (lim_group_lock()).
 */
#include <errno.h>
#include <string.h>

#include <urcu-qsbr.h>
#include <urcu/rculfhash.h>

#include "lim_pvt.h"

#define KV_BUCKETS_MIN 64
#define KV_BUCKETS_INIT_MAX (1UL << 22) /* beyond this the table grows */

struct kv_node {
	struct cds_lfht_node node;
	struct rcu_head rcu;
	uint64_t key;         /* release-stored last; see match() */
	uint64_t rec[];       /* the record, 8-byte aligned */
};

struct lim_kv {
	struct cds_lfht *ht;
	size_t rec_size;
	size_t key_size;      /* 4 or 8 */
	uint64_t count;       /* updater writes, anyone reads (atomic) */
};

#ifdef LIM_TSAN
int lim_tsan_gp;
#endif

static uint64_t
rec_key(const struct lim_kv *kv, const void *rec)
{
	if (kv->key_size == sizeof(uint32_t)) {
		uint32_t k;

		memcpy(&k, rec, sizeof(k));
		return k;
	}
	uint64_t k;

	memcpy(&k, rec, sizeof(k));
	return k;
}

static int
match(struct cds_lfht_node *ht_node, const void *key)
{
	const struct kv_node *n =
		caa_container_of(ht_node, struct kv_node, node);

	return __atomic_load_n(&n->key, __ATOMIC_ACQUIRE) ==
	       *(const uint64_t *)key;
}

static void
node_free_rcu(struct rcu_head *head)
{
	LIM_TSAN_GP_ACQUIRE(); /* every reader has passed a quiescent state */
	free(caa_container_of(head, struct kv_node, rcu));
}

static void
node_free_deferred(struct kv_node *n)
{
	LIM_TSAN_GP_RELEASE();
	call_rcu(&n->rcu, node_free_rcu);
}

static unsigned long
buckets_for(uint64_t hint)
{
	unsigned long b = KV_BUCKETS_MIN;

	while (b < hint && b < KV_BUCKETS_INIT_MAX)
		b <<= 1;
	return b;
}

struct lim_kv *
lim_kv_create(size_t rec_size, size_t key_size, uint64_t size_hint)
{
	struct lim_kv *kv;
	unsigned long buckets = buckets_for(size_hint);

	if (rec_size < key_size || (key_size != 4 && key_size != 8))
		return NULL;
	kv = calloc(1, sizeof(*kv));
	if (!kv)
		return NULL;
	kv->rec_size = rec_size;
	kv->key_size = key_size;
	kv->ht = cds_lfht_new(buckets, buckets, 0,
			      CDS_LFHT_AUTO_RESIZE | CDS_LFHT_ACCOUNTING, NULL);
	if (!kv->ht) {
		free(kv);
		return NULL;
	}
	return kv;
}

void
lim_kv_free(struct lim_kv *kv, void (*fini)(void *rec))
{
	struct cds_lfht_iter iter;
	struct cds_lfht_node *hn;
	bool online;
	int rc;

	if (!kv)
		return;
	rcu_read_lock();
	/* not cds_lfht_for_each_entry: it applies container_of to NULL */
	cds_lfht_for_each(kv->ht, &iter, hn) {
		struct kv_node *n = caa_container_of(hn, struct kv_node, node);

		rc = cds_lfht_del(kv->ht, hn);
		LIM_VERIFY(rc == 0);
		if (fini)
			fini(n->rec);
		/* the lfht resize worker may still walk it: defer */
		node_free_deferred(n);
	}
	rcu_read_unlock();
	/*
	 * cds_lfht_destroy() waits for queued resize work, and a resize runs
	 * synchronize_rcu(), which in QSBR waits for this thread while it is
	 * online: destroy offline. (The walk above stays online, so a resize
	 * cannot free buckets under it.)
	 */
	online = rcu_read_ongoing();
	if (online)
		rcu_thread_offline();
	rc = cds_lfht_destroy(kv->ht, NULL);
	if (online)
		rcu_thread_online();
	LIM_VERIFY(rc == 0);
	free(kv);
}

const void *
lim_kv_find(struct lim_kv *kv, uint64_t key)
{
	struct cds_lfht_iter iter;
	struct cds_lfht_node *hn;

	rcu_read_lock(); /* a no-op in QSBR: the caller is online */
	cds_lfht_lookup(kv->ht, lim_mix64(key), match, &key, &iter);
	hn = cds_lfht_iter_get_node(&iter);
	rcu_read_unlock();
	if (!hn)
		return NULL;
	return caa_container_of(hn, struct kv_node, node)->rec;
}

int
lim_kv_set(struct lim_kv *kv, const void *rec)
{
	struct kv_node *n = malloc(sizeof(*n) + kv->rec_size);
	struct cds_lfht_node *old;
	uint64_t key;

	if (!n)
		return -ENOMEM;
	memcpy(n->rec, rec, kv->rec_size);
	key = rec_key(kv, rec);
	cds_lfht_node_init(&n->node);
	__atomic_store_n(&n->key, key, __ATOMIC_RELEASE);
	rcu_read_lock();
	old = cds_lfht_add_replace(kv->ht, lim_mix64(key), match, &key,
				   &n->node);
	rcu_read_unlock();
	if (old)
		node_free_deferred(caa_container_of(old, struct kv_node, node));
	else
		__atomic_store_n(&kv->count, kv->count + 1, __ATOMIC_RELAXED);
	return 0;
}

int
lim_kv_del(struct lim_kv *kv, uint64_t key)
{
	struct cds_lfht_iter iter;
	struct cds_lfht_node *hn;
	int rc = -ENOENT;

	rcu_read_lock();
	cds_lfht_lookup(kv->ht, lim_mix64(key), match, &key, &iter);
	hn = cds_lfht_iter_get_node(&iter);
	if (hn && cds_lfht_del(kv->ht, hn) == 0) {
		node_free_deferred(caa_container_of(hn, struct kv_node, node));
		__atomic_store_n(&kv->count, kv->count - 1, __ATOMIC_RELAXED);
		rc = 0;
	}
	rcu_read_unlock();
	return rc;
}

/**
 * Visit every record of @p kv until @p fn returns non-zero. Call with the
 * QSBR read side online, or as the updater (fn may then set or delete).
 * A record replaced during the walk may be seen in its old or new version.
 * @return 0, or the first non-zero value of @p fn.
 */
int
lim_kv_foreach(struct lim_kv *kv, lim_kv_visit_fn fn, void *arg)
{
	struct cds_lfht_iter iter;
	struct cds_lfht_node *hn;
	int rc = 0;

	rcu_read_lock();
	cds_lfht_for_each(kv->ht, &iter, hn) {
		struct kv_node *n = caa_container_of(hn, struct kv_node, node);

		(void)__atomic_load_n(&n->key, __ATOMIC_ACQUIRE);
		rc = fn(n->rec, arg);
		if (rc)
			break;
	}
	rcu_read_unlock();
	return rc;
}

/** Records in @p kv. Any thread. */
uint64_t
lim_kv_count(const struct lim_kv *kv)
{
	return __atomic_load_n(&kv->count, __ATOMIC_RELAXED);
}

/** Spin until the group state's lock byte is ours; after the user's lock. */
void
lim_group_lock(struct lim_group_state *g)
{
	lim_spin_lock(&g->lock);
}

/** Release the group state's lock byte (taken by this thread). */
void
lim_group_unlock(struct lim_group_state *g)
{
	lim_spin_unlock(&g->lock);
}
