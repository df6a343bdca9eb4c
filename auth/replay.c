/*
 * replay.c - replay windows, one per (gateway, stream), shared by every
 * dataplane thread.
 *
 * Design note. The table is sized once (auth_replay_create) and never
 * allocates again. It is an open-addressing table of 2^k slots, k chosen so
 * that the load stays at most 1/2:
 *  - keys[]: 8 bytes per slot, 0 = empty, else USED | gateway << 16 | stream;
 *    a slot is claimed once by compare-and-swap and never released, so a
 *    probe ends at the first empty slot and a found slot never changes
 *    owner. Keys are dense so that a probe reads few cache lines;
 *  - win[]: the window of the slot's stream, cache-line aligned (192 bytes):
 *    a spin lock, the highest accepted seq (top) and a bitmap of
 *    AUTH_REPLAY_WINDOW bits, bit (seq % WINDOW) set when seq was accepted,
 *    valid for seqs in (top - WINDOW, top].
 *
 * The number of claimed slots is bounded by the @p streams given to create
 * through a counter reserved before the CAS, so the table never holds more
 * streams than asked for (a new stream then gets AUTH_DROP_STREAMS). Near
 * that bound a new stream may be refused while another thread holds a
 * reservation it is about to give back; that is the only inexactness.
 *
 * Window rules, for a stream whose highest accepted seq is top:
 *   first datagram of the stream   accept; top = seq (older seqs within the
 *                                  window are still accepted once: a restart
 *                                  cannot know what came before);
 *   seq > top                      accept; slide: clear the bits of
 *                                  top+1 .. seq, top = seq;
 *   top - seq >= WINDOW            STALE;
 *   bit set                        REPLAY;
 *   else                           accept and set the bit.
 *
 * Concurrency: two threads may hold datagrams of the same stream (RSS hashes
 * the 5-tuple, but a gateway may reuse a stream from another port), so every
 * window change is made under the window's lock: a test-and-test-and-set
 * word held for a few dozen instructions, no system call. Different streams
 * never share a lock or a cache line.
 */
#include <errno.h>
#include <string.h>

#include "auth_pvt.h"

#define AUTH_REPLAY_WORDS (AUTH_REPLAY_WINDOW / 64)
#define AUTH_REPLAY_STREAMS_MAX (1u << 22)
#define AUTH_REPLAY_USED (1ull << 48)
#define AUTH_SPIN_MAX (1u << 28) /* spins before a debug build aborts */

_Static_assert(AUTH_REPLAY_WINDOW % 64 == 0, "window is whole words");
_Static_assert((AUTH_REPLAY_WINDOW & (AUTH_REPLAY_WINDOW - 1)) == 0,
	       "window divides 2^64, so seq % WINDOW survives wrap-around");

struct auth_replay_win {
	uint32_t lock;    /* 0 free, 1 held */
	uint32_t started; /* 0 until the stream's first datagram */
	uint64_t top;     /* highest accepted seq */
	uint64_t bits[AUTH_REPLAY_WORDS];
} __attribute__((aligned(64)));

struct auth_replay {
	uint64_t *keys;
	struct auth_replay_win *win;
	uint32_t mask;        /* slots - 1 */
	unsigned shift;       /* 64 - log2(slots) */
	unsigned streams_max;
	/* Written only for a new stream: off the read-mostly line. */
	unsigned streams __attribute__((aligned(64)));
};

static inline void
auth_cpu_relax(void)
{
#if defined(__x86_64__) || defined(__i386__)
	__builtin_ia32_pause();
#endif
}

static inline void
auth_win_lock(struct auth_replay_win *w)
{
	unsigned spins = 0;

	while (__atomic_exchange_n(&w->lock, 1, __ATOMIC_ACQUIRE)) {
		while (__atomic_load_n(&w->lock, __ATOMIC_RELAXED)) {
			auth_cpu_relax();
			AUTH_ASSERT(++spins < AUTH_SPIN_MAX);
		}
	}
	(void)spins;
}

static inline void
auth_win_unlock(struct auth_replay_win *w)
{
	__atomic_store_n(&w->lock, 0, __ATOMIC_RELEASE);
}

/* Clear the bits of @p count seqs from @p from on (count < WINDOW). */
static void
auth_win_clear(uint64_t *bits, uint64_t from, uint64_t count)
{
	AUTH_ASSERT(count < AUTH_REPLAY_WINDOW);
	while (count > 0) { /* at most WINDOW / 64 + 1 rounds */
		unsigned pos = (unsigned)(from % AUTH_REPLAY_WINDOW);
		unsigned b = pos % 64;
		uint64_t n = 64 - b < count ? 64 - b : count;
		uint64_t m = n == 64 ? ~0ull : ((1ull << n) - 1) << b;

		bits[pos / 64] &= ~m;
		from += n;
		count -= n;
	}
}

/* The window rules of the design note; call with the window locked. */
static enum auth_drop
auth_win_accept(struct auth_replay_win *w, uint64_t seq)
{
	unsigned pos = (unsigned)(seq % AUTH_REPLAY_WINDOW);
	uint64_t bit = 1ull << (pos % 64);
	uint64_t *word = &w->bits[pos / 64];

	if (!w->started) {
		w->started = 1;
		w->top = seq;
		memset(w->bits, 0, sizeof(w->bits));
	} else if (seq > w->top) {
		if (seq - w->top >= AUTH_REPLAY_WINDOW)
			memset(w->bits, 0, sizeof(w->bits));
		else
			auth_win_clear(w->bits, w->top + 1, seq - w->top);
		w->top = seq;
	} else if (w->top - seq >= AUTH_REPLAY_WINDOW) {
		return AUTH_DROP_STALE;
	} else if (*word & bit) {
		return AUTH_DROP_REPLAY;
	}
	*word |= bit;
	return AUTH_DROP_NONE;
}

static bool
auth_replay_reserve(struct auth_replay *r)
{
	if (__atomic_add_fetch(&r->streams, 1, __ATOMIC_RELAXED) <=
	    r->streams_max)
		return true;
	__atomic_sub_fetch(&r->streams, 1, __ATOMIC_RELAXED);
	return false;
}

/* The window of @p key, claiming a slot for a new stream; NULL when full. */
static struct auth_replay_win *
auth_replay_slot(struct auth_replay *r, uint64_t key)
{
	uint32_t h = (uint32_t)((key * 0x9E3779B97F4A7C15ull) >> r->shift);

	for (uint32_t probe = 0; probe <= r->mask; probe++) {
		uint64_t k = __atomic_load_n(&r->keys[h], __ATOMIC_ACQUIRE);

		if (k == key)
			return &r->win[h];
		if (k == 0) {
			if (!auth_replay_reserve(r))
				return NULL;
			if (__atomic_compare_exchange_n(&r->keys[h], &k, key,
							false, __ATOMIC_ACQ_REL,
							__ATOMIC_ACQUIRE))
				return &r->win[h];
			/* Another thread took the slot first: k is its key. */
			__atomic_sub_fetch(&r->streams, 1, __ATOMIC_RELAXED);
			if (k == key)
				return &r->win[h];
		}
		h = (h + 1) & r->mask;
	}
	return NULL;
}

struct auth_replay *
auth_replay_create(unsigned streams)
{
	struct auth_replay *r;
	unsigned bits = 1;
	size_t slots;

	if (streams == 0 || streams > AUTH_REPLAY_STREAMS_MAX) {
		errno = EINVAL;
		return NULL;
	}
	while ((1u << bits) < 2 * streams)
		bits++;
	slots = (size_t)1 << bits;
	r = aligned_alloc(64, sizeof(*r));
	if (!r)
		return NULL;
	memset(r, 0, sizeof(*r));
	r->keys = calloc(slots, sizeof(r->keys[0]));
	r->win = aligned_alloc(64, slots * sizeof(r->win[0]));
	if (!r->keys || !r->win) {
		auth_replay_free(r);
		errno = ENOMEM;
		return NULL;
	}
	memset(r->win, 0, slots * sizeof(r->win[0]));
	r->mask = (uint32_t)(slots - 1);
	r->shift = 64 - bits;
	r->streams_max = streams;
	return r;
}

void
auth_replay_free(struct auth_replay *r)
{
	if (!r)
		return;
	free(r->keys);
	free(r->win);
	free(r);
}

enum auth_drop
auth_replay_check(struct auth_replay *r, uint32_t gateway_id, uint16_t stream,
		  uint64_t seq)
{
	uint64_t key = AUTH_REPLAY_USED | (uint64_t)gateway_id << 16 | stream;
	struct auth_replay_win *w;
	enum auth_drop drop;

	AUTH_ASSERT(r);
	w = auth_replay_slot(r, key);
	if (!w)
		return AUTH_DROP_STREAMS;
	auth_win_lock(w);
	drop = auth_win_accept(w, seq);
	AUTH_ASSERT(drop != AUTH_DROP_NONE ||
		    (seq <= w->top && w->top - seq < AUTH_REPLAY_WINDOW));
	auth_win_unlock(w);
	return drop;
}
