/*
 * users.c - the user table: a slot array of struct lim_user and an
 * open-addressing index over it (docs/design-notes.md, "Users").
 *
 * Owns: one anonymous mapping of `capacity` 88-byte slots, reserved at create
 * and touched only as slots fill, and an index of uint64_t entries
 * (hash tag:32 | slot:32) with linear probing. The index has
 * ceil(capacity / 0.8) entries rounded up to a multiple of 8 (one cache line),
 * and a key's home is a multiply-shift range reduction of its hash, so the
 * index is not rounded to a power of two: 88 + 8 / 0.8 = 98 bytes per user.
 *
 * Invariants: an entry is 0 (empty) or has a non-zero tag; slots [0, count)
 * are in use, in insertion order; a user is never deleted, so a slot never
 * moves, and the load never exceeds 0.8 (count <= capacity), so every probe
 * meets an empty entry within the index length.
 *
 * Concurrency: one updater inserts (the caller serialises); any thread
 * finds. The updater writes the whole slot, then publishes the index entry
 * with a release store; finders load entries with acquire, so a slot reached
 * through the index is complete. After insertion a slot's fields change only
 * under its lock byte (lim_user_lock()), which is this file's too.
 */
#include <errno.h>
#include <sched.h>
#include <string.h>

#include "lim_pvt.h"

#define USERS_BURST 32 /* find_burst works in groups of this many */

struct lim_users {
	struct lim_user *slot;   /* capacity slots, mmap */
	uint64_t *index;         /* index_len entries, mmap */
	uint64_t index_len;      /* multiple of 8 */
	uint64_t capacity;       /* <= UINT32_MAX */
	uint64_t count;          /* updater writes (release), anyone reads */
	size_t slot_map_bytes;
	size_t index_map_bytes;
};

uint64_t
lim_user_hash(uint64_t user_id)
{
	return lim_mix64(user_id);
}

/* Home position: the high bits of the hash scaled to [0, len). */
static inline uint64_t
hash_home(uint64_t h, uint64_t len)
{
	return (uint64_t)(((unsigned __int128)h * len) >> 64);
}

static size_t
page_round(size_t bytes)
{
	const size_t page = 4096;

	return (bytes + page - 1) & ~(page - 1);
}

/**
 * Create a user table for up to @p capacity users (1 .. UINT32_MAX).
 * The slot array and index are reserved at once and never grown.
 * Returns NULL on a bad capacity or when the memory cannot be reserved.
 */
struct lim_users *
lim_users_create(uint64_t capacity)
{
	struct lim_users *t;

	if (capacity == 0 || capacity > UINT32_MAX)
		return NULL;
	t = calloc(1, sizeof(*t));
	if (!t)
		return NULL;
	t->capacity = capacity;
	/* ceil(capacity / 0.8), then up to whole cache lines of entries */
	t->index_len = (capacity * 5 + 3) / 4;
	t->index_len = (t->index_len + 7) & ~(uint64_t)7;
	t->slot_map_bytes = page_round(capacity * sizeof(struct lim_user));
	t->index_map_bytes = page_round(t->index_len * sizeof(uint64_t));
	t->slot = lim_map_anon(t->slot_map_bytes);
	t->index = lim_map_anon(t->index_map_bytes);
	if (!t->slot || !t->index) {
		lim_users_free(t);
		return NULL;
	}
	return t;
}

/** Free @p t (NULL is fine). No thread may use it any more. */
void
lim_users_free(struct lim_users *t)
{
	if (!t)
		return;
	if (t->slot)
		munmap(t->slot, t->slot_map_bytes);
	if (t->index)
		munmap(t->index, t->index_map_bytes);
	free(t);
}

/*
 * Probe from position @p pos for @p user_id with hash tag @p tag.
 * Returns the slot, or NULL at the first empty entry.
 */
static struct lim_user *
probe_from(struct lim_users *t, uint32_t tag, uint64_t user_id, uint64_t pos)
{
	for (uint64_t n = 0; n < t->index_len; n++) {
		uint64_t e = __atomic_load_n(&t->index[pos], __ATOMIC_ACQUIRE);

		if (e == 0)
			return NULL;
		if (lim_idx_entry_tag(e) == tag) {
			struct lim_user *u = &t->slot[lim_idx_entry_slot(e)];

			if (u->user_id == user_id)
				return u;
		}
		if (++pos == t->index_len)
			pos = 0;
	}
	LIM_ASSERT(!"user index has no empty entry");
	return NULL;
}

/**
 * Find one user. Any thread.
 * @return the user's slot, or NULL when unknown.
 */
struct lim_user *
lim_users_find(struct lim_users *t, uint64_t user_id)
{
	uint64_t h = lim_user_hash(user_id);

	return probe_from(t, lim_idx_tag(h), user_id,
			  hash_home(h, t->index_len));
}

static inline void
prefetch_slot(const struct lim_user *u)
{
	/* 88 bytes from any 8-byte boundary may span two lines; for writing:
	 * the finder locks the slot and changes its balances */
	__builtin_prefetch(u, 1, 3);
	__builtin_prefetch((const char *)u + sizeof(*u) - 1, 1, 3);
}

/*
 * Stage 2 of a burst: the first entry whose tag matches, or an empty one.
 * Returns its position (the probe continues from there if the slot turns out
 * to hold another user), or UINT64_MAX on a miss.
 */
static uint64_t
probe_tag(struct lim_users *t, uint32_t tag, uint64_t pos)
{
	for (uint64_t n = 0; n < t->index_len; n++) {
		uint64_t e = __atomic_load_n(&t->index[pos], __ATOMIC_ACQUIRE);

		if (e == 0)
			return UINT64_MAX;
		if (lim_idx_entry_tag(e) == tag) {
			prefetch_slot(&t->slot[lim_idx_entry_slot(e)]);
			return pos;
		}
		if (++pos == t->index_len)
			pos = 0;
	}
	LIM_ASSERT(!"user index has no empty entry");
	return UINT64_MAX;
}

static void
find_group(struct lim_users *t, const uint64_t *ids, unsigned n,
	   struct lim_user **out)
{
	uint32_t tag[USERS_BURST];
	uint64_t pos[USERS_BURST];

	LIM_ASSERT(n <= USERS_BURST);
	for (unsigned i = 0; i < n; i++) {
		uint64_t h = lim_user_hash(ids[i]);

		tag[i] = lim_idx_tag(h);
		pos[i] = hash_home(h, t->index_len);
		__builtin_prefetch(&t->index[pos[i]], 0, 3);
	}
	for (unsigned i = 0; i < n; i++)
		pos[i] = probe_tag(t, tag[i], pos[i]);
	for (unsigned i = 0; i < n; i++) {
		struct lim_user *u;
		uint64_t e;

		out[i] = NULL;
		if (pos[i] == UINT64_MAX)
			continue;
		e = __atomic_load_n(&t->index[pos[i]], __ATOMIC_ACQUIRE);
		u = &t->slot[lim_idx_entry_slot(e)];
		if (u->user_id == ids[i]) {
			out[i] = u;
			continue;
		}
		/* a 32-bit tag collision: rare, finish the probe slowly */
		if (++pos[i] == t->index_len)
			pos[i] = 0;
		out[i] = probe_from(t, tag[i], ids[i], pos[i]);
	}
}

/**
 * Find a batch of users: hash all and prefetch their index lines, probe all
 * and prefetch their slots, then check the ids, so the misses overlap.
 * Any thread.
 * @param ids  @p n user ids
 * @param out  @p n results; out[i] is NULL when ids[i] is unknown
 */
void
lim_users_find_burst(struct lim_users *t, const uint64_t *ids, unsigned n,
		     struct lim_user **out)
{
	for (unsigned i = 0; i < n; i += USERS_BURST) {
		unsigned k = n - i < USERS_BURST ? n - i : USERS_BURST;

		find_group(t, ids + i, k, out + i);
	}
}

/*
 * Insert @p u, whose hash is @p h: probe from its home for the id (present:
 * -EEXIST) up to the first empty entry, write the slot, publish the entry.
 */
static int
insert_hashed(struct lim_users *t, const struct lim_user *u, uint64_t h)
{
	uint32_t tag = lim_idx_tag(h);
	uint64_t pos = hash_home(h, t->index_len), slot;
	struct lim_user *s;

	if (u->user_id == 0)
		return -EINVAL;
	for (uint64_t n = 0;; n++) {
		uint64_t e = t->index[pos]; /* the updater is the only writer */

		LIM_VERIFY(n < t->index_len);
		if (e == 0)
			break;
		if (lim_idx_entry_tag(e) == tag &&
		    t->slot[lim_idx_entry_slot(e)].user_id == u->user_id)
			return -EEXIST;
		if (++pos == t->index_len)
			pos = 0;
	}
	slot = t->count;
	if (slot == t->capacity)
		return -ENOSPC;
	s = &t->slot[slot];
	*s = *u;
	s->lock = 0;
	__atomic_store_n(&t->index[pos], lim_idx_entry(tag, (uint32_t)slot),
			 __ATOMIC_RELEASE);
	__atomic_store_n(&t->count, slot + 1, __ATOMIC_RELEASE);
	return 0;
}

/**
 * Insert a copy of @p u with its lock byte cleared. Updater only (calls are
 * serialised by the caller); finders see the slot once it is complete.
 * @return 0; -EINVAL for user id 0; -EEXIST when the id is present;
 *         -ENOSPC when the table holds capacity users.
 */
int
lim_users_insert(struct lim_users *t, const struct lim_user *u)
{
	return insert_hashed(t, u, lim_user_hash(u->user_id));
}

/* Users hashed and prefetched ahead of the one being inserted (a power of
 * two): enough to cover a memory latency at a few ns per insert. */
#define BULK_AHEAD 16

/**
 * Insert @p n users from @p u in order, as n calls of lim_users_insert()
 * would, with the index line of user i + BULK_AHEAD prefetched while user i
 * is inserted, so the misses of a large load overlap. Updater only.
 * @param done  the number inserted (n on success, else the failing index)
 * @return 0, or the error of u[*done]; the users before it stay inserted.
 */
int
lim_users_insert_bulk(struct lim_users *t, const struct lim_user *u,
		      uint64_t n, uint64_t *done)
{
	uint64_t h[BULK_AHEAD];
	int rc = 0;
	uint64_t i;

	for (i = 0; i < n && i < BULK_AHEAD; i++) {
		h[i] = lim_user_hash(u[i].user_id);
		__builtin_prefetch(&t->index[hash_home(h[i], t->index_len)], 1,
				   3);
	}
	for (i = 0; i < n; i++) {
		uint64_t hi = h[i & (BULK_AHEAD - 1)];

		if (i + BULK_AHEAD < n) {
			uint64_t ha = lim_user_hash(u[i + BULK_AHEAD].user_id);

			h[i & (BULK_AHEAD - 1)] = ha;
			__builtin_prefetch(
				&t->index[hash_home(ha, t->index_len)], 1, 3);
		}
		rc = insert_hashed(t, &u[i], hi);
		if (rc)
			break;
	}
	*done = i;
	return rc;
}

/** Users in the table. Any thread. */
uint64_t
lim_users_count(const struct lim_users *t)
{
	return __atomic_load_n(&t->count, __ATOMIC_ACQUIRE);
}

/** Users the table can hold. */
uint64_t
lim_users_capacity(const struct lim_users *t)
{
	return t->capacity;
}

uint64_t
lim_users_index_len(const struct lim_users *t)
{
	return t->index_len;
}

/**
 * Bytes the table uses: the whole index plus the slots in use (slot pages
 * beyond them are reserved, not touched).
 */
size_t
lim_users_bytes(const struct lim_users *t)
{
	return t->index_len * sizeof(uint64_t) +
	       lim_users_count(t) * sizeof(struct lim_user);
}

/** Slot @p i, 0 <= i < count, in insertion order (snapshots, scans). */
struct lim_user *
lim_users_at(struct lim_users *t, uint64_t i)
{
	LIM_ASSERT(i < lim_users_count(t));
	return &t->slot[i];
}

void
lim_spin_wait(uint8_t *lock)
{
	for (unsigned chunk = 0;; chunk++) {
		for (uint32_t spin = 0; spin < LIM_SPIN_MAX; spin++) {
			if (!__atomic_load_n(lock, __ATOMIC_RELAXED) &&
			    !__atomic_exchange_n(lock, 1, __ATOMIC_ACQUIRE))
				return;
			lim_cpu_relax();
		}
#ifndef NDEBUG
		/* this long is a deadlock, not contention */
		LIM_ASSERT(chunk + 1 < LIM_SPIN_CHUNKS_MAX);
		sched_yield();
#endif
	}
}

/**
 * Take the user's lock byte: test-and-test-and-set with a pause between
 * tests. Never hold two user locks; see the lock order in design-notes.md.
 * Debug builds abort after LIM_SPIN_CHUNKS_MAX chunks of LIM_SPIN_MAX spins.
 */
void
lim_user_lock(struct lim_user *u)
{
	lim_spin_lock(&u->lock);
}

/** Release the user's lock byte (taken by this thread). */
void
lim_user_unlock(struct lim_user *u)
{
	lim_spin_unlock(&u->lock);
}

void
lim_users_prefault(struct lim_users *t)
{
	lim_prefault(t->slot, t->slot_map_bytes);
	lim_prefault(t->index, t->index_map_bytes);
}
