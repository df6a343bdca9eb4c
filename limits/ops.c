/*
 * ops.c - the holds and idempotency store: struct lim_op entries keyed by
 * (gateway_id, request_id) (docs/design-notes.md, "the ops store").
 *
 * Owns: P lock-striped partitions, P a power of two chosen so that a
 * partition holds about 2048..4096 entries (P = next power of two of
 * capacity / 4096). The high bits of a key's hash pick the partition. Each
 * partition has a one-line header {spin lock, count, free-list head, high
 * water mark, scan cursor}, its own pool of `per` 128-byte entries and its
 * own index of uint64_t entries (tag:32 | pool slot:32), a power of two long
 * with a load of at most 0.75, probed linearly. The tag is the low 32 bits of
 * the hash (never 0), so an entry's home position is its tag & mask and
 * deletion shifts followers back without reading the pool (no tombstones).
 * Pools and indexes are mapped at create; nothing is allocated afterwards.
 *
 * Invariants, per partition: slots [0, hwm) of the pool have been used; each
 * is either live (next == OPS_LIVE, exactly one index entry points at it) or
 * on the free list (threaded through lim_op.next); count == live entries ==
 * non-empty index entries <= per. Entries never move, so a pointer stays
 * valid until the entry is removed.
 *
 * Concurrency: every index, free-list and header access happens under the
 * partition's spin lock, held only briefly and never across a call that
 * takes another lock (lock order: user, group, partition). The fields of a
 * live entry other than its key and `next` belong to whoever holds the lock
 * of its user_id (design-notes.md). `count` is also read without the lock
 * (relaxed atomics). One thread scans; its partition cursor is its own.
 */
#include <errno.h>
#include <string.h>

#include "lim_pvt.h"

#define OPS_PART_TARGET 4096u        /* mean entries per partition, at most */
#define OPS_PARTS_MAX (1u << 20)
#define OPS_CAPACITY_MAX (1ULL << 36)
#define OPS_NIL UINT32_MAX           /* end of a free list */
#define OPS_LIVE (UINT32_MAX - 1)    /* lim_op.next of a live entry */
#define OPS_SCAN_COPIES 16           /* copies taken per partition lock */

struct ops_part {
	uint8_t lock;
	uint8_t pad0[3];
	uint32_t count;       /* live entries; written under lock, atomic */
	uint32_t free_head;   /* OPS_NIL when the free list is empty */
	uint32_t hwm;         /* pool slots ever used */
	uint32_t scan_pos;    /* next pool slot the scan examines */
} LIM_ALIGNED;

_Static_assert(sizeof(struct ops_part) == LIM_CACHE_LINE, "one line");

struct lim_ops {
	struct ops_part *part;  /* nparts headers */
	struct lim_op *pool;    /* nparts * per entries */
	uint64_t *index;        /* nparts * idx_len entries */
	uint32_t per;           /* pool entries per partition */
	uint32_t idx_mask;      /* idx_len - 1 */
	unsigned nparts;        /* power of two */
	unsigned part_bits;     /* log2(nparts) */
	unsigned scan_part;     /* the scanning thread's partition cursor */
	size_t pool_bytes;
	size_t index_bytes;
};

static inline uint64_t
ops_hash(uint32_t gateway_id, uint64_t request_id)
{
	return lim_mix64(request_id ^ lim_mix64(gateway_id));
}

static inline unsigned
hash_part(const struct lim_ops *s, uint64_t h)
{
	return s->part_bits ? (unsigned)(h >> (64 - s->part_bits)) : 0;
}

static inline struct lim_op *
part_pool(const struct lim_ops *s, unsigned p)
{
	return s->pool + (uint64_t)p * s->per;
}

static inline uint64_t *
part_index(const struct lim_ops *s, unsigned p)
{
	return s->index + (uint64_t)p * (s->idx_mask + 1ULL);
}

/* Partition count, entries per partition and index length for @p capacity. */
static void
ops_geometry(struct lim_ops *s, uint64_t capacity)
{
	uint64_t mean, idx_len;

	s->nparts = (unsigned)lim_pow2_at_least(
		(capacity + OPS_PART_TARGET - 1) / OPS_PART_TARGET);
	if (s->nparts > OPS_PARTS_MAX)
		s->nparts = OPS_PARTS_MAX;
	s->part_bits = (unsigned)__builtin_ctz(s->nparts);
	mean = (capacity + s->nparts - 1) / s->nparts;
	/* hashing spreads keys unevenly: ~4 sigma headroom at 2048..4096 */
	s->per = (uint32_t)(s->nparts > 1 ? mean + mean / 16 : mean);
	idx_len = lim_pow2_at_least(((uint64_t)s->per * 4 + 2) / 3);
	s->idx_mask = (uint32_t)(idx_len - 1);
}

/**
 * Create a store for about @p capacity entries (1 .. 2^36). The pools and
 * indexes are reserved now; pages are touched as entries are first used.
 * lim_ops_capacity() says how many fit (at least @p capacity, spread over
 * partitions). Returns NULL on a bad capacity or allocation failure.
 */
struct lim_ops *
lim_ops_create(uint64_t capacity)
{
	struct lim_ops *s;

	if (capacity == 0 || capacity > OPS_CAPACITY_MAX)
		return NULL;
	s = calloc(1, sizeof(*s));
	if (!s)
		return NULL;
	ops_geometry(s, capacity);
	s->pool_bytes = (size_t)s->nparts * s->per * sizeof(struct lim_op);
	s->index_bytes = (size_t)s->nparts * (s->idx_mask + 1ULL) *
			 sizeof(uint64_t);
	s->part = aligned_alloc(LIM_CACHE_LINE,
				s->nparts * sizeof(struct ops_part));
	s->pool = lim_map_anon(s->pool_bytes);
	s->index = lim_map_anon(s->index_bytes);
	if (!s->part || !s->pool || !s->index) {
		lim_ops_free(s);
		return NULL;
	}
	memset(s->part, 0, s->nparts * sizeof(struct ops_part));
	for (unsigned p = 0; p < s->nparts; p++)
		s->part[p].free_head = OPS_NIL;
	return s;
}

/** Free @p s (NULL is fine). No thread may use it any more. */
void
lim_ops_free(struct lim_ops *s)
{
	if (!s)
		return;
	if (s->pool)
		munmap(s->pool, s->pool_bytes);
	if (s->index)
		munmap(s->index, s->index_bytes);
	free(s->part);
	free(s);
}

/*
 * Probe partition @p p for the key. Partition lock held. Returns the pool
 * slot or OPS_NIL; *pos is where the entry is, or the empty entry that ends
 * the probe (where an insert goes).
 */
static uint32_t
idx_find(const struct lim_ops *s, unsigned p, uint64_t h, uint32_t gateway_id,
	 uint64_t request_id, uint32_t *pos)
{
	const uint64_t *idx = part_index(s, p);
	const struct lim_op *pool = part_pool(s, p);
	uint32_t tag = lim_idx_tag(h), i = tag & s->idx_mask;

	for (uint32_t n = 0; n <= s->idx_mask; n++) {
		uint64_t e = idx[i];

		if (e == 0)
			break;
		if (lim_idx_entry_tag(e) == tag) {
			const struct lim_op *op = &pool[lim_idx_entry_slot(e)];

			if (op->request_id == request_id &&
			    op->gateway_id == gateway_id) {
				*pos = i;
				return lim_idx_entry_slot(e);
			}
		}
		i = (i + 1) & s->idx_mask;
	}
	LIM_ASSERT(idx[i] == 0); /* load <= 0.75: a probe always ends */
	*pos = i;
	return OPS_NIL;
}

/* Backward-shift deletion of the entry at @p i. Partition lock held. */
static void
idx_delete(uint64_t *idx, uint32_t mask, uint32_t i)
{
	uint32_t j = i;

	for (uint32_t n = 0; n < mask; n++) {
		uint64_t e;
		uint32_t home;

		j = (j + 1) & mask;
		e = idx[j];
		if (e == 0)
			break;
		home = lim_idx_entry_tag(e) & mask;
		/* e may fill the hole unless its home lies in (i, j] */
		if (((j - home) & mask) >= ((j - i) & mask)) {
			idx[i] = e;
			i = j;
		}
	}
	idx[i] = 0;
}

/**
 * Find (gateway_id, request_id). Any thread. The entry stays valid while the
 * caller holds the lock of its user (check op->user_id before relying on it).
 * @return the entry, or NULL when absent.
 */
struct lim_op *
lim_ops_find(struct lim_ops *s, uint32_t gateway_id, uint64_t request_id)
{
	uint64_t h = ops_hash(gateway_id, request_id);
	unsigned p = hash_part(s, h);
	uint32_t slot, pos;

	lim_spin_lock(&s->part[p].lock);
	slot = idx_find(s, p, h, gateway_id, request_id, &pos);
	lim_spin_unlock(&s->part[p].lock);
	return slot == OPS_NIL ? NULL : &part_pool(s, p)[slot];
}

struct lim_op *
lim_ops_find_owned(struct lim_ops *s, uint32_t gateway_id,
		   uint64_t request_id, uint64_t user_id, int *foreign)
{
	uint64_t h = ops_hash(gateway_id, request_id);
	unsigned p = hash_part(s, h);
	struct lim_op *op = NULL;
	uint32_t slot, pos;

	*foreign = 0;
	lim_spin_lock(&s->part[p].lock);
	slot = idx_find(s, p, h, gateway_id, request_id, &pos);
	if (slot != OPS_NIL) {
		/* user_id and op are read under the partition lock: they are
		 * written only when the entry is inserted, and an entry is freed
		 * and reused only under this lock, so the reads cannot race. */
		op = &part_pool(s, p)[slot];
		if (op->user_id != user_id) {
			*foreign = op->op == 0 ? LIM_OPS_FOREIGN_TOMBSTONE
					       : LIM_OPS_FOREIGN;
			op = NULL;
		}
	}
	lim_spin_unlock(&s->part[p].lock);
	return op;
}

/* A free pool slot of partition @p pt, or OPS_NIL when full. Lock held. */
static uint32_t
slot_alloc(struct ops_part *pt, struct lim_op *pool, uint32_t per)
{
	uint32_t slot = pt->free_head;

	if (slot != OPS_NIL) {
		LIM_ASSERT(slot < pt->hwm);
		pt->free_head = pool[slot].next;
		return slot;
	}
	if (pt->hwm < per)
		return pt->hwm++;
	return OPS_NIL;
}

/**
 * Insert a copy of @p init, keyed by its gateway_id and request_id. The
 * caller holds the lock of init->user_id.
 * @param rc  set to 0, -EEXIST (key present) or -ENOSPC (the key's partition
 *            is full: the caller answers BUSY); may be NULL
 * @return the new entry, or NULL on error.
 */
struct lim_op *
lim_ops_insert(struct lim_ops *s, const struct lim_op *init, int *rc)
{
	uint64_t h = ops_hash(init->gateway_id, init->request_id);
	unsigned p = hash_part(s, h);
	struct ops_part *pt = &s->part[p];
	struct lim_op *pool = part_pool(s, p), *op = NULL;
	uint32_t slot, pos;
	int err = 0;

	lim_spin_lock(&pt->lock);
	slot = idx_find(s, p, h, init->gateway_id, init->request_id, &pos);
	if (slot != OPS_NIL) {
		err = -EEXIST;
		goto out;
	}
	slot = slot_alloc(pt, pool, s->per);
	if (slot == OPS_NIL) {
		err = -ENOSPC;
		goto out;
	}
	op = &pool[slot];
	*op = *init;
	op->next = OPS_LIVE;
	part_index(s, p)[pos] = lim_idx_entry(lim_idx_tag(h), slot);
	__atomic_store_n(&pt->count, pt->count + 1, __ATOMIC_RELAXED);
	LIM_ASSERT(pt->count <= s->per);
out:
	lim_spin_unlock(&pt->lock);
	if (rc)
		*rc = err;
	return op;
}

/**
 * Remove @p op (a live entry of this store); its slot goes back to the
 * partition's free list. The caller holds the lock of op->user_id and drops
 * every pointer to it.
 */
void
lim_ops_remove(struct lim_ops *s, struct lim_op *op)
{
	uint64_t off = (uint64_t)(op - s->pool), h;
	unsigned p;
	uint32_t slot, pos, found;
	struct ops_part *pt;

	LIM_VERIFY(op >= s->pool && off < (uint64_t)s->nparts * s->per);
	p = (unsigned)(off / s->per);
	slot = (uint32_t)(off % s->per);
	pt = &s->part[p];
	h = ops_hash(op->gateway_id, op->request_id);
	LIM_ASSERT(hash_part(s, h) == p);
	lim_spin_lock(&pt->lock);
	LIM_VERIFY(op->next == OPS_LIVE);
	found = idx_find(s, p, h, op->gateway_id, op->request_id, &pos);
	LIM_VERIFY(found == slot);
	idx_delete(part_index(s, p), s->idx_mask, pos);
	op->state = LIM_OPS_FREE;
	op->next = pt->free_head;
	pt->free_head = slot;
	LIM_ASSERT(pt->count > 0);
	__atomic_store_n(&pt->count, pt->count - 1, __ATOMIC_RELAXED);
	lim_spin_unlock(&pt->lock);
}

/**
 * Visit every live entry, partition by partition, in pool order. The caller
 * keeps the store quiescent (snapshots): no lock is taken, so @p fn may
 * remove the entry it is given.
 * @return 0, or the first non-zero value @p fn returned (the walk stops).
 */
int
lim_ops_foreach(struct lim_ops *s, int (*fn)(struct lim_op *op, void *arg),
		void *arg)
{
	for (unsigned p = 0; p < s->nparts; p++) {
		struct lim_op *pool = part_pool(s, p);
		uint32_t hwm = s->part[p].hwm;

		for (uint32_t i = 0; i < hwm; i++) {
			int rc;

			if (pool[i].next != OPS_LIVE)
				continue;
			rc = fn(&pool[i], arg);
			if (rc)
				return rc;
		}
	}
	return 0;
}

static inline bool
op_expired(const struct lim_op *op, uint32_t now_s)
{
	return op->retain_until_s <= now_s ||
	       (op->state == LIM_OPS_HELD && op->hold_expires_s <= now_s);
}

/*
 * Examine up to @p budget pool slots of partition @p p from its cursor, at
 * most until OPS_SCAN_COPIES copies are taken. Returns the slots examined;
 * *wrapped is set when the cursor passed the partition's last used slot.
 */
static unsigned
scan_part(struct lim_ops *s, unsigned p, uint32_t now_s, unsigned budget,
	  struct lim_op *copy, unsigned *ncopy, bool *wrapped)
{
	struct ops_part *pt = &s->part[p];
	const struct lim_op *pool = part_pool(s, p);
	unsigned visited = 0, n = 0;
	uint32_t pos;

	lim_spin_lock(&pt->lock);
	pos = pt->scan_pos;
	while (visited < budget && pos < pt->hwm && n < OPS_SCAN_COPIES) {
		const struct lim_op *op = &pool[pos++];

		visited++;
		if (op->next == OPS_LIVE && op_expired(op, now_s))
			copy[n++] = *op;
	}
	*wrapped = pos >= pt->hwm;
	pt->scan_pos = *wrapped ? 0 : pos;
	lim_spin_unlock(&pt->lock);
	*ncopy = n;
	return visited;
}

/**
 * Timer pass: examine at most @p budget pool slots (live or free: a visit is
 * one slot, so a pass costs O(budget)) from where the last pass stopped; a
 * pass also stops at the end of the store (a sweep). For each live entry whose
 * retain_until_s, or (state HELD) hold_expires_s, is <= @p now_s, call
 * @p fn with a copy taken under the partition lock; fn runs with no lock
 * held (it takes the user's lock, finds the entry again and re-checks).
 * One scanning thread.
 * @return the slots examined; less than @p budget means the sweep is
 *         complete and the next pass starts one from the beginning.
 */
unsigned
lim_ops_scan(struct lim_ops *s, uint32_t now_s, unsigned budget,
	     void (*fn)(const struct lim_op *copy, void *arg), void *arg)
{
	struct lim_op copy[OPS_SCAN_COPIES];
	unsigned visited = 0;

	/* each round visits a slot or moves to the next partition, and the
	 * pass ends at the end of the store: at most budget + nparts rounds */
	while (visited < budget) {
		unsigned p = s->scan_part, n;
		bool wrapped;

		visited += scan_part(s, p, now_s, budget - visited, copy, &n,
				     &wrapped);
		for (unsigned i = 0; i < n; i++)
			fn(&copy[i], arg);
		if (wrapped) {
			s->scan_part = (p + 1) & (s->nparts - 1);
			if (s->scan_part == 0)
				break; /* a sweep is complete */
		}
	}
	return visited;
}

/** Live entries (a sum of per-partition counts; exact when quiescent). */
uint64_t
lim_ops_count(const struct lim_ops *s)
{
	uint64_t n = 0;

	for (unsigned p = 0; p < s->nparts; p++)
		n += __atomic_load_n(&s->part[p].count, __ATOMIC_RELAXED);
	return n;
}

/** Entries the store can hold if keys spread evenly over partitions. */
uint64_t
lim_ops_capacity(const struct lim_ops *s)
{
	return (uint64_t)s->nparts * s->per;
}

unsigned
lim_ops_partitions(const struct lim_ops *s)
{
	return s->nparts;
}

uint64_t
lim_ops_part_capacity(const struct lim_ops *s)
{
	return s->per;
}

uint64_t
lim_ops_part_count(const struct lim_ops *s, unsigned p)
{
	LIM_ASSERT(p < s->nparts);
	return __atomic_load_n(&s->part[p].count, __ATOMIC_RELAXED);
}

unsigned
lim_ops_part_of(const struct lim_ops *s, uint32_t gateway_id,
		uint64_t request_id)
{
	return hash_part(s, ops_hash(gateway_id, request_id));
}

void
lim_ops_prefault(struct lim_ops *s)
{
	lim_prefault(s->pool, s->pool_bytes);
	lim_prefault(s->index, s->index_bytes);
}

void
lim_ops_prefetch(const struct lim_ops *s, uint32_t gateway_id,
		 uint64_t request_id)
{
	uint64_t h = ops_hash(gateway_id, request_id);
	unsigned p = hash_part(s, h);

	/* The partition header (its lock is written) and the probe's start. */
	__builtin_prefetch(&s->part[p], 1, 3);
	__builtin_prefetch(&part_index(s, p)[lim_idx_tag(h) & s->idx_mask], 0, 3);
}

void
lim_ops_prefetch_insert(const struct lim_ops *s, uint32_t gateway_id,
			uint64_t request_id)
{
	unsigned p = hash_part(s, ops_hash(gateway_id, request_id));
	const struct ops_part *pt = &s->part[p];
	/* A racy peek: the partition's next free slot, if nobody takes it
	 * first. Only a hint for the cache; the insert reads it locked. */
	uint32_t slot = __atomic_load_n(&pt->free_head, __ATOMIC_RELAXED);

	if (slot == OPS_NIL)
		slot = __atomic_load_n(&pt->hwm, __ATOMIC_RELAXED);
	if (slot >= s->per)
		return;
	__builtin_prefetch(&part_pool(s, p)[slot], 1, 3);
	__builtin_prefetch((const char *)&part_pool(s, p)[slot] + 64, 1, 3);
}

void
lim_ops_prefetch_entry(const struct lim_ops *s, uint32_t gateway_id,
		       uint64_t request_id)
{
	uint64_t h = ops_hash(gateway_id, request_id);
	unsigned p = hash_part(s, h);
	const uint64_t *idx = part_index(s, p);
	uint32_t tag = lim_idx_tag(h), i = tag & s->idx_mask;

	/* An unlocked peek at the index for the first entry with the key's
	 * tag: only a hint for the cache; the find reads it locked. */
	for (unsigned n = 0; n < 8; n++, i = (i + 1) & s->idx_mask) {
		uint64_t e = __atomic_load_n(&idx[i], __ATOMIC_RELAXED);

		if (e == 0)
			return;
		if (lim_idx_entry_tag(e) == tag) {
			const struct lim_op *op = &part_pool(s, p)[lim_idx_entry_slot(e)];

			__builtin_prefetch(op, 1, 3);
			__builtin_prefetch((const char *)op + 64, 1, 3);
			return;
		}
	}
}
