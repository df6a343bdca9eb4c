/*
 * budget.c - a sharded budget: the lending ceiling and the funders' quotas
 * (docs/design-notes.md, "Budgets").
 *
 * Owns: a global room (atomic int64) and one room per shard, each on its own
 * cache line, so a shard's common path touches no shared line. Taking from a
 * shard uses its room; when that is short the shard refills from the global
 * room with a CAS, in whole chunks, taking at most what is there. Giving back
 * adds to the shard and returns everything above two chunks to the global.
 *
 * Invariants: 0 <= every room; a shard room stays <= max(2 chunks, what it
 * had); global + sum(shard rooms) + used == total, where used is what was
 * taken and not given back. Nothing is created or lost, so the total is never
 * exceeded. The ceiling is under-used by at most shards x 2 x chunk.
 *
 * Concurrency: a shard's room is read and written only by its owner thread
 * (relaxed atomics, so other threads may sample it without a data race);
 * the global room and the total change only with atomic read-modify-writes.
 * The total changes only through lim_budget_adjust() (control plane), which
 * moves the same amount into or out of the global room first.
 */
#include <errno.h>
#include <string.h>

#include "lim_pvt.h"

/* CAS attempts before a take gives up (declines): contention, not a loop. */
#define BUDGET_CAS_MAX (1u << 16)

struct budget_shard {
	int64_t room;
} LIM_ALIGNED;

struct lim_budget {
	int64_t global LIM_ALIGNED;  /* atomic */
	int64_t total LIM_ALIGNED;   /* atomic; control plane writes */
	int64_t chunk;               /* atomic; control plane writes */
	unsigned shards;
	struct budget_shard shard[];
};

_Static_assert(sizeof(struct budget_shard) == LIM_CACHE_LINE, "one line");
_Static_assert(offsetof(struct lim_budget, shard) % LIM_CACHE_LINE == 0,
	       "shards start on a line");

/**
 * Create a budget of @p total_fen (>= 0) in @p shards (1..LIM_SHARDS_MAX)
 * shards refilled in chunks of @p chunk_fen (> 0). All of it starts in the
 * global room. Returns NULL on bad arguments or allocation failure.
 */
struct lim_budget *
lim_budget_create(int64_t total_fen, int64_t chunk_fen, unsigned shards)
{
	struct lim_budget *b;
	size_t bytes;

	if (total_fen < 0 || chunk_fen <= 0 || shards == 0 ||
	    shards > LIM_SHARDS_MAX)
		return NULL;
	bytes = sizeof(*b) + shards * sizeof(struct budget_shard);
	b = aligned_alloc(LIM_CACHE_LINE, bytes);
	if (!b)
		return NULL;
	memset(b, 0, bytes);
	b->global = total_fen;
	b->total = total_fen;
	b->chunk = chunk_fen;
	b->shards = shards;
	return b;
}

/** Free @p b (NULL is fine). No shard owner may use it any more. */
void
lim_budget_free(struct lim_budget *b)
{
	free(b);
}

static inline int64_t
room_get(const struct lim_budget *b, unsigned s)
{
	return __atomic_load_n(&b->shard[s].room, __ATOMIC_RELAXED);
}

static inline void
room_set(struct lim_budget *b, unsigned s, int64_t v)
{
	LIM_ASSERT(v >= 0);
	__atomic_store_n(&b->shard[s].room, v, __ATOMIC_RELAXED);
}

/**
 * What shard @p s can take now: its room plus the global room. Shard owner.
 */
int64_t
lim_budget_room(const struct lim_budget *b, unsigned s)
{
	LIM_ASSERT(s < b->shards);
	return room_get(b, s) + __atomic_load_n(&b->global, __ATOMIC_RELAXED);
}

/* @p need rounded up to whole chunks (or @p need itself if that overflows). */
static int64_t
whole_chunks(int64_t need, int64_t chunk)
{
	int64_t r = need % chunk, up;

	if (r == 0 || __builtin_add_overflow(need, chunk - r, &up))
		return need;
	return up;
}

/**
 * Take @p fen (>= 0) for shard @p s. Shard owner.
 * @return true when taken; false, with nothing taken, when the shard room
 *         plus the global room is short of @p fen (or, never in practice,
 *         when the global room stays contended for BUDGET_CAS_MAX attempts).
 */
bool
lim_budget_take(struct lim_budget *b, unsigned s, int64_t fen)
{
	int64_t room, need, want, grab, g;

	LIM_ASSERT(s < b->shards);
	LIM_ASSERT(fen >= 0);
	room = room_get(b, s);
	if (fen <= room) {
		room_set(b, s, room - fen);
		return true;
	}
	need = fen - room;
	want = whole_chunks(need, __atomic_load_n(&b->chunk, __ATOMIC_RELAXED));
	g = __atomic_load_n(&b->global, __ATOMIC_RELAXED);
	for (unsigned n = 0; n < BUDGET_CAS_MAX; n++) {
		if (g < need)
			return false;
		grab = want < g ? want : g;
		if (__atomic_compare_exchange_n(&b->global, &g, g - grab, false,
						__ATOMIC_RELAXED,
						__ATOMIC_RELAXED)) {
			room_set(b, s, room + grab - fen);
			return true;
		}
	}
	return false;
}

/**
 * Give back @p fen (>= 0) taken earlier, by any shard, through shard @p s.
 * Shard owner. Room above two chunks goes back to the global room.
 */
void
lim_budget_give(struct lim_budget *b, unsigned s, int64_t fen)
{
	int64_t room, keep;

	LIM_ASSERT(s < b->shards);
	LIM_ASSERT(fen >= 0);
	LIM_VERIFY(!__builtin_add_overflow(room_get(b, s), fen, &room));
	if (__builtin_mul_overflow(lim_budget_chunk(b), 2, &keep))
		keep = INT64_MAX;
	if (room <= keep) {
		room_set(b, s, room);
		return;
	}
	room_set(b, s, keep);
	__atomic_add_fetch(&b->global, room - keep, __ATOMIC_RELAXED);
}

/**
 * Return shard @p s's whole room to the global room (a thread that stops
 * deciding, or before the control plane shrinks the total). Shard owner.
 */
void
lim_budget_flush(struct lim_budget *b, unsigned s)
{
	int64_t room;

	LIM_ASSERT(s < b->shards);
	room = room_get(b, s);
	if (room == 0)
		return;
	room_set(b, s, 0);
	__atomic_add_fetch(&b->global, room, __ATOMIC_RELAXED);
}

/**
 * Change the total by @p delta_fen. Control plane (one thread at a time).
 * An increase goes into the global room. A decrease comes out of the global
 * room only: shard rooms belong to their owners.
 * @return 0; -ERANGE, nothing changed, when a decrease exceeds the global
 *         room (the new total would be below what is used or reserved by
 *         shards) or the total would overflow; -EAGAIN, nothing changed, when
 *         the global room stayed contended for BUDGET_CAS_MAX attempts.
 */
int
lim_budget_adjust(struct lim_budget *b, int64_t delta_fen)
{
	int64_t total = __atomic_load_n(&b->total, __ATOMIC_RELAXED);
	int64_t g, nt;

	if (__builtin_add_overflow(total, delta_fen, &nt))
		return -ERANGE;
	if (delta_fen >= 0) {
		__atomic_add_fetch(&b->global, delta_fen, __ATOMIC_RELAXED);
		__atomic_store_n(&b->total, nt, __ATOMIC_RELAXED);
		return 0;
	}
	g = __atomic_load_n(&b->global, __ATOMIC_RELAXED);
	for (unsigned n = 0; n < BUDGET_CAS_MAX; n++) {
		if (g < -delta_fen)
			return -ERANGE;
		if (__atomic_compare_exchange_n(&b->global, &g, g + delta_fen,
						false, __ATOMIC_RELAXED,
						__ATOMIC_RELAXED)) {
			__atomic_store_n(&b->total, nt, __ATOMIC_RELAXED);
			return 0;
		}
	}
	return -EAGAIN;
}

/**
 * Total minus what is taken: the global room plus every shard's room.
 * Exact only when no shard owner is running. Any thread.
 */
int64_t
lim_budget_free_fen(const struct lim_budget *b)
{
	int64_t sum = __atomic_load_n(&b->global, __ATOMIC_RELAXED);

	for (unsigned s = 0; s < b->shards; s++)
		sum += room_get(b, s);
	return sum;
}

/** The total. Any thread. */
int64_t
lim_budget_total(const struct lim_budget *b)
{
	return __atomic_load_n(&b->total, __ATOMIC_RELAXED);
}

int64_t
lim_budget_global(const struct lim_budget *b)
{
	return __atomic_load_n(&b->global, __ATOMIC_RELAXED);
}

int64_t
lim_budget_shard_room(const struct lim_budget *b, unsigned s)
{
	LIM_ASSERT(s < b->shards);
	return room_get(b, s);
}

int64_t
lim_budget_chunk(const struct lim_budget *b)
{
	return __atomic_load_n(&b->chunk, __ATOMIC_RELAXED);
}

unsigned
lim_budget_shards(const struct lim_budget *b)
{
	return b->shards;
}

void
lim_budget_set_chunk(struct lim_budget *b, int64_t chunk_fen)
{
	LIM_VERIFY(chunk_fen > 0);
	__atomic_store_n(&b->chunk, chunk_fen, __ATOMIC_RELAXED);
}
