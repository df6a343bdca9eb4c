/*
 * kv.c - RCU hash tables of immutable records: user extensions, merchants,
 * groups (one record type per table, keyed by the record's first field).
 *
 * Owns: a table of 16-byte slots {key, record pointer}, open addressing with
 * linear probing at a load of at most 0.7 (live + deleted), published through
 * an RCU pointer, and the records (each an allocation with its rcu_head).
 * A lookup reads one slot line, usually, and the record: two cache lines
 * that the dataplane prefetches for a whole burst (lim_kv_prefetch). This
 * replaced a cds_lfht, whose lookup walks a bucket and a chain of nodes and
 * cannot be prefetched: on a 1 M-user run it was 17% of the dataplane's
 * cycles (docs/performance.md has the numbers).
 *
 * Invariants: a slot's key, once set, never changes in that table (a deleted
 * slot keeps its key and points at KV_DELETED), so a reader that matched a
 * key reads that key's record pointer; a published record is never written;
 * a record or a table is freed only after a grace period (call_rcu).
 *
 * Concurrency: any number of QSBR readers (registered, online) find and walk;
 * one updater (the caller serialises) sets and deletes. An insertion writes
 * the record pointer, then the key (release); a reader loads the key
 * (acquire), then the pointer (acquire). A replacement swaps the pointer
 * (release) and frees the old record after a grace period. When live plus
 * deleted slots pass 0.7 of the table, the updater builds a new table with
 * the live records and publishes it; readers still on the old one see a
 * consistent, older view until their next quiescent state.
 *
 * Group states (struct lim_group_state) are mutable and outlive their group
 * records; their lock is a spin byte like a user's (lim_group_lock()).
 */
#include <errno.h>
#include <string.h>

#include <urcu-qsbr.h>

#include "lim_pvt.h"

#define KV_SLOTS_MIN 64
#define KV_LOAD_NUM 7 /* live + deleted slots <= 7/10 of the table */
#define KV_LOAD_DEN 10

struct kv_slot {
	uint64_t key;               /* 0 = empty; never changes once set */
	void *rec;                  /* payload of a kv_rec, or KV_DELETED */
};

struct kv_table {
	struct rcu_head rcu;
	uint64_t mask;              /* slots - 1, a power of two */
	struct kv_slot slot[];
};

struct kv_rec {
	struct rcu_head rcu;
	uint64_t rec[];             /* the record, 8-byte aligned */
};

struct lim_kv {
	struct kv_table *t;         /* RCU pointer */
	size_t rec_size;
	size_t key_size;            /* 4 or 8 */
	uint64_t count;             /* live records (updater writes, atomic) */
	uint64_t used;              /* live + deleted slots (updater only) */
};

static char kv_deleted_mark;
#define KV_DELETED ((void *)&kv_deleted_mark)

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

static struct kv_rec *
rec_of(void *payload)
{
	return caa_container_of((uint64_t(*)[])payload, struct kv_rec, rec);
}

static void
rec_free_rcu(struct rcu_head *head)
{
	LIM_TSAN_GP_ACQUIRE(); /* every reader has passed a quiescent state */
	free(caa_container_of(head, struct kv_rec, rcu));
}

static void
rec_free_deferred(void *payload)
{
	LIM_TSAN_GP_RELEASE();
	call_rcu(&rec_of(payload)->rcu, rec_free_rcu);
}

static void
table_free_rcu(struct rcu_head *head)
{
	LIM_TSAN_GP_ACQUIRE();
	free(caa_container_of(head, struct kv_table, rcu));
}

static struct kv_table *
table_new(uint64_t slots)
{
	struct kv_table *t;

	t = calloc(1, sizeof(*t) + slots * sizeof(struct kv_slot));
	if (t)
		t->mask = slots - 1;
	return t;
}

/* The smallest power of two holding @p n records at the load bound. */
static uint64_t
slots_for(uint64_t n)
{
	uint64_t s = KV_SLOTS_MIN;

	while (s * KV_LOAD_NUM / KV_LOAD_DEN < n + 1)
		s <<= 1;
	return s;
}

/* The slot holding @p key, or the empty slot that ends its probe. */
static struct kv_slot *
probe(const struct kv_table *t, uint64_t key)
{
	uint64_t i = lim_mix64(key) & t->mask;

	for (uint64_t n = 0; n <= t->mask; n++, i = (i + 1) & t->mask) {
		const struct kv_slot *s = &t->slot[i];
		uint64_t k = __atomic_load_n(&s->key, __ATOMIC_ACQUIRE);

		if (k == key || k == 0)
			return (struct kv_slot *)s;
	}
	LIM_VERIFY(!"kv table has no empty slot");
	return NULL;
}

struct lim_kv *
lim_kv_create(size_t rec_size, size_t key_size, uint64_t size_hint)
{
	struct lim_kv *kv;

	if (rec_size < key_size || (key_size != 4 && key_size != 8))
		return NULL;
	kv = calloc(1, sizeof(*kv));
	if (!kv)
		return NULL;
	kv->rec_size = rec_size;
	kv->key_size = key_size;
	kv->t = table_new(slots_for(size_hint));
	if (!kv->t) {
		free(kv);
		return NULL;
	}
	return kv;
}

void
lim_kv_free(struct lim_kv *kv, void (*fini)(void *rec))
{
	struct kv_table *t;

	if (!kv)
		return;
	t = kv->t;
	for (uint64_t i = 0; i <= t->mask; i++) {
		void *r = t->slot[i].rec;

		if (!t->slot[i].key || r == KV_DELETED)
			continue;
		if (fini)
			fini(r);
		rec_free_deferred(r);
	}
	LIM_TSAN_GP_RELEASE();
	call_rcu(&t->rcu, table_free_rcu);
	free(kv);
}

void
lim_kv_prefetch(const struct lim_kv *kv, uint64_t key)
{
	const struct kv_table *t = LIM_RCU_DEREF(kv->t);

	__builtin_prefetch(&t->slot[lim_mix64(key) & t->mask], 0, 3);
}

const void *
lim_kv_find(struct lim_kv *kv, uint64_t key)
{
	const struct kv_table *t = LIM_RCU_DEREF(kv->t);
	const struct kv_slot *s;
	void *r;

	if (key == 0)
		return NULL;
	s = probe(t, key);
	if (__atomic_load_n(&s->key, __ATOMIC_ACQUIRE) == 0)
		return NULL;
	r = __atomic_load_n(&s->rec, __ATOMIC_ACQUIRE);
	return r == KV_DELETED ? NULL : r;
}

/* Rebuild into a table sized for the live records (plus one), publish it. */
static int
grow(struct lim_kv *kv)
{
	struct kv_table *old = kv->t, *t = table_new(slots_for(kv->count * 2));

	if (!t)
		return -ENOMEM;
	for (uint64_t i = 0; i <= old->mask; i++) {
		struct kv_slot *s;

		if (!old->slot[i].key || old->slot[i].rec == KV_DELETED)
			continue;
		s = probe(t, old->slot[i].key);
		s->rec = old->slot[i].rec;
		s->key = old->slot[i].key;
	}
	LIM_RCU_ASSIGN(kv->t, t);
	kv->used = kv->count;
	LIM_TSAN_GP_RELEASE();
	call_rcu(&old->rcu, table_free_rcu);
	return 0;
}

int
lim_kv_set(struct lim_kv *kv, const void *rec)
{
	struct kv_rec *n = malloc(sizeof(*n) + kv->rec_size);
	uint64_t key = rec_key(kv, rec);
	struct kv_slot *s;
	void *old;

	if (!n)
		return -ENOMEM;
	if (key == 0) {
		free(n);
		return -EINVAL;
	}
	memcpy(n->rec, rec, kv->rec_size);
	s = probe(kv->t, key);
	if (s->key == key) {
		old = s->rec;
		__atomic_store_n(&s->rec, (void *)n->rec, __ATOMIC_RELEASE);
		if (old != KV_DELETED)
			rec_free_deferred(old);
		else
			__atomic_store_n(&kv->count, kv->count + 1, __ATOMIC_RELAXED);
		return 0;
	}
	if ((kv->used + 1) * KV_LOAD_DEN > (kv->t->mask + 1) * KV_LOAD_NUM) {
		if (grow(kv) != 0) {
			free(n);
			return -ENOMEM;
		}
		s = probe(kv->t, key);
	}
	__atomic_store_n(&s->rec, (void *)n->rec, __ATOMIC_RELEASE);
	__atomic_store_n(&s->key, key, __ATOMIC_RELEASE);
	kv->used++;
	__atomic_store_n(&kv->count, kv->count + 1, __ATOMIC_RELAXED);
	return 0;
}

int
lim_kv_del(struct lim_kv *kv, uint64_t key)
{
	struct kv_slot *s;
	void *old;

	if (key == 0)
		return -ENOENT;
	s = probe(kv->t, key);
	if (s->key != key || s->rec == KV_DELETED)
		return -ENOENT;
	old = s->rec;
	__atomic_store_n(&s->rec, KV_DELETED, __ATOMIC_RELEASE);
	rec_free_deferred(old);
	__atomic_store_n(&kv->count, kv->count - 1, __ATOMIC_RELAXED);
	return 0;
}

/**
 * Visit every record of @p kv until @p fn returns non-zero. Call with the
 * QSBR read side online, or as the updater (fn may then set or delete; a
 * set that grows the table ends the walk on the old one, which stays valid
 * until this thread's next quiescent state).
 * A record replaced during the walk may be seen in its old or new version.
 * @return 0, or the first non-zero value of @p fn.
 */
int
lim_kv_foreach(struct lim_kv *kv, lim_kv_visit_fn fn, void *arg)
{
	const struct kv_table *t = LIM_RCU_DEREF(kv->t);
	int rc = 0;

	for (uint64_t i = 0; i <= t->mask && !rc; i++) {
		const struct kv_slot *s = &t->slot[i];
		void *r;

		if (!__atomic_load_n(&s->key, __ATOMIC_ACQUIRE))
			continue;
		r = __atomic_load_n(&s->rec, __ATOMIC_ACQUIRE);
		if (r != KV_DELETED)
			rc = fn(r, arg);
	}
	return rc;
}

/** Records in @p kv. Any thread. */
uint64_t
lim_kv_count(const struct lim_kv *kv)
{
	return __atomic_load_n(&kv->count, __ATOMIC_RELAXED);
}

/** Bytes held by @p kv: its table and its records (allocation sizes). */
size_t
lim_kv_bytes(const struct lim_kv *kv)
{
	const struct kv_table *t = LIM_RCU_DEREF(kv->t);

	return sizeof(*t) + (t->mask + 1) * sizeof(struct kv_slot) +
	       lim_kv_count(kv) * (sizeof(struct kv_rec) + kv->rec_size);
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
