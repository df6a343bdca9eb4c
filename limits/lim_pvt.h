/*
 * lim_pvt.h - private to limits/: assertions, layout checks, internals shared
 * between the files of the module.
 */
#ifndef LIM_PVT_H
#define LIM_PVT_H

#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/mman.h>

#include "lim.h"

/*
 * Two levels (house style): LIM_ASSERT is checked in debug builds only (hot
 * path); LIM_VERIFY is always checked and stops the process with a message
 * (state that must never be wrong: money conservation, journal order).
 */
#define LIM_VERIFY(cond)                                                       \
	do {                                                                   \
		if (__builtin_expect(!(cond), 0)) {                            \
			fprintf(stderr, "%s:%d: %s: invariant failed: %s\n",   \
				__FILE__, __LINE__, __func__, #cond);          \
			abort();                                               \
		}                                                              \
	} while (0)

#ifdef NDEBUG
#define LIM_ASSERT(cond) ((void)0)
#else
#define LIM_ASSERT(cond) LIM_VERIFY(cond)
#endif

#define LIM_CACHE_LINE 64
#define LIM_ALIGNED __attribute__((aligned(LIM_CACHE_LINE)))

_Static_assert(sizeof(struct lim_user) == 88, "lim_user is 88 bytes");
_Static_assert(offsetof(struct lim_user, cool_until_s) == 64, "lim_user layout");
_Static_assert(sizeof(struct lim_user_ext) == 40, "lim_user_ext layout");
_Static_assert(sizeof(struct lim_op) == 128, "lim_op is two cache lines");
_Static_assert(sizeof(struct lim_effect) == 128, "lim_effect is 128 bytes");
_Static_assert(offsetof(struct lim_effect, check) == 124, "check is last");
_Static_assert(sizeof(struct lim_tier) == 32, "lim_tier layout");
_Static_assert(sizeof(struct lim_cfg_effect) == sizeof(struct lim_effect),
	       "a settings effect is a journal record");
_Static_assert(offsetof(struct lim_cfg_effect, kind) ==
		       offsetof(struct lim_effect, kind),
	       "kind at the same offset");
_Static_assert(offsetof(struct lim_cfg_effect, check) ==
		       offsetof(struct lim_effect, check),
	       "check at the same offset");

/* ------------------------------------------------------------------------ */
/* Hashing                                                                    */

/*
 * The one mixer of the module (user ids, kv keys, ops keys): the splitmix64
 * finaliser (Stafford's "Mix13" variant), a bijection on 64 bits whose every
 * output bit depends on every input bit. Not keyed: ids come from
 * authenticated gateways and the control plane, not from the open network.
 */
static inline uint64_t
lim_mix64(uint64_t x)
{
	x += 0x9e3779b97f4a7c15ULL;
	x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ULL;
	x = (x ^ (x >> 27)) * 0x94d049bb133111ebULL;
	return x ^ (x >> 31);
}

/* ------------------------------------------------------------------------ */
/* Open-addressing indexes and their memory (users.c, ops.c)                  */

/*
 * An index entry is (tag:32 | slot:32), 0 when empty. The tag is the low
 * 32 bits of the key's hash, never 0: a hash whose low bits are all zero
 * gets bit 31, which lies above any index mask, so tag & mask is still a
 * home position for an index that takes its home from the tag (ops.c).
 */
static inline uint32_t
lim_idx_tag(uint64_t h)
{
	uint32_t tag = (uint32_t)h;

	return tag ? tag : 0x80000000u;
}

static inline uint64_t
lim_idx_entry(uint32_t tag, uint32_t slot)
{
	return (uint64_t)tag << 32 | slot;
}

static inline uint32_t
lim_idx_entry_tag(uint64_t e)
{
	return (uint32_t)(e >> 32);
}

static inline uint32_t
lim_idx_entry_slot(uint64_t e)
{
	return (uint32_t)e;
}

/** The smallest power of two >= @p x (1 for 0). */
static inline uint64_t
lim_pow2_at_least(uint64_t x)
{
	uint64_t p = 1;

	while (p < x)
		p <<= 1;
	return p;
}

/*
 * Reserve @p bytes of zeroed anonymous memory, not committed until touched
 * (a table sized for its maximum costs only what it uses). Transparent huge
 * pages are advised, not required: without them the table works on small
 * pages. NULL on failure; munmap() frees it.
 */
static inline void *
lim_map_anon(size_t bytes)
{
	void *p = mmap(NULL, bytes, PROT_READ | PROT_WRITE,
		       MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);

	if (p == MAP_FAILED)
		return NULL;
	(void)madvise(p, bytes, MADV_HUGEPAGE);
	return p;
}

/* ------------------------------------------------------------------------ */
/* apply.c's rules, shared with the journal redo (redo.c)                    */

/* Kinds that change balances or budgets (the others only record an answer). */
static inline bool
lim_eff_moves_money(enum lim_effect_kind k)
{
	return k != LIM_EFF_NONE && k != LIM_EFF_DECIDE && k != LIM_EFF_TOMBSTONE;
}

/* Kinds that act on an earlier authorization, the ref entry. */
static inline bool
lim_eff_has_ref(enum lim_effect_kind k)
{
	return k == LIM_EFF_CAPTURE || k == LIM_EFF_VOID ||
	       k == LIM_EFF_REFUND || k == LIM_EFF_EXPIRE;
}

/* The slot of @p funder_id in @p fs, or -1. */
static inline int
lim_funder_slot(const struct lim_funders *fs, uint16_t funder_id)
{
	for (unsigned i = 0; i < fs->n && i < LIM_FUNDERS_MAX; i++)
		if (fs->f[i].funder_id == funder_id)
			return (int)i;
	return -1;
}

static inline uint32_t
lim_max_u32(uint32_t a, uint32_t b)
{
	return a > b ? a : b;
}

/** Fill @p n with the op entry effect @p e creates for its own request. */
void lim_op_init(struct lim_op *n, const struct lim_effect *e,
		 const struct lim_policy *p);
/** Count spend @p e in @p u's velocity windows and month (under its lock). */
void lim_count_spend(struct lim_user *u, const struct lim_effect *e,
		     const struct lim_policy *p);

/* ------------------------------------------------------------------------ */
/* Calendar                                                                   */

/*
 * The civil date of day @p z since 1970-01-01 (H. Hinnant's civil_from_days,
 * the inverse of lim_days_from_civil()). Inline: lim_month_start() needs it
 * on every approval, text.c to print a time.
 */
static inline void
lim_civil_from_days(int64_t z, int64_t *y, unsigned *m, unsigned *d)
{
	int64_t era;
	unsigned doe, yoe, doy, mp;

	z += 719468;
	era = (z >= 0 ? z : z - 146096) / 146097;
	doe = (unsigned)(z - era * 146097);
	yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
	doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
	mp = (5 * doy + 2) / 153;
	*d = doy - (153 * mp + 2) / 5 + 1;
	*m = mp < 10 ? mp + 3 : mp - 9;
	*y = (int64_t)yoe + era * 400 + (*m <= 2);
}

/* ------------------------------------------------------------------------ */
/* Spin locks (user slots, group states, ops partitions)                      */

/*
 * In debug builds a waiter spins in chunks of LIM_SPIN_MAX pauses; after each
 * chunk it yields the CPU once (a preempted holder on an oversubscribed test
 * machine gets to run) and after LIM_SPIN_CHUNKS_MAX chunks (seconds of
 * waiting) it aborts: that is a deadlock, not contention. Release builds spin
 * on pauses only: dataplane threads are pinned and never make a syscall.
 */
#define LIM_SPIN_CHUNKS_MAX 256u

static inline void
lim_cpu_relax(void)
{
#if defined(__x86_64__) || defined(__i386__)
	__builtin_ia32_pause();
#elif defined(__aarch64__)
	__asm__ __volatile__("yield" ::: "memory");
#else
	__asm__ __volatile__("" ::: "memory");
#endif
}

/** Slow path of lim_spin_lock(): test-and-test-and-set with pauses. */
void lim_spin_wait(uint8_t *lock);

static inline void
lim_spin_lock(uint8_t *lock)
{
	if (__builtin_expect(!__atomic_exchange_n(lock, 1, __ATOMIC_ACQUIRE),
			     1))
		return;
	lim_spin_wait(lock);
}

static inline void
lim_spin_unlock(uint8_t *lock)
{
	LIM_ASSERT(__atomic_load_n(lock, __ATOMIC_RELAXED) == 1);
	__atomic_store_n(lock, 0, __ATOMIC_RELEASE);
}

/* ------------------------------------------------------------------------ */
/* RCU glue                                                                   */

/*
 * liburcu 0.13 publishes with volatile accesses and asm fences and reports
 * QSBR quiescent states inside the (uninstrumented) library, so
 * ThreadSanitizer sees neither the publication of a record nor the grace
 * period before its free. In TSan builds the module therefore publishes RCU
 * pointers with C11 release/acquire, and models the grace period with one
 * sync object: readers release it at each quiescent state
 * (lim_quiescent_state()), deferred frees acquire it before freeing. Outside
 * TSan builds these are the plain liburcu primitives and no-ops.
 */
#if defined(__SANITIZE_THREAD__)
#define LIM_TSAN 1
#elif defined(__has_feature)
#if __has_feature(thread_sanitizer)
#define LIM_TSAN 1
#endif
#endif

#ifdef LIM_TSAN
void __tsan_acquire(void *addr);
void __tsan_release(void *addr);
extern int lim_tsan_gp;
#define LIM_TSAN_GP_RELEASE() __tsan_release(&lim_tsan_gp)
#define LIM_TSAN_GP_ACQUIRE() __tsan_acquire(&lim_tsan_gp)
#define LIM_RCU_ASSIGN(p, v) __atomic_store_n(&(p), (v), __ATOMIC_RELEASE)
#define LIM_RCU_DEREF(p) __atomic_load_n(&(p), __ATOMIC_ACQUIRE)
#else
#define LIM_TSAN_GP_RELEASE() ((void)0)
#define LIM_TSAN_GP_ACQUIRE() ((void)0)
#define LIM_RCU_ASSIGN(p, v) rcu_assign_pointer(p, v)
#define LIM_RCU_DEREF(p) rcu_dereference(p)
#endif

/* ------------------------------------------------------------------------ */
/* kv.c: RCU hash of immutable fixed-size records keyed by their first field  */

/**
 * Create a table of records of @p rec_size bytes whose key is the first
 * @p key_size (4 or 8) bytes, never 0. @p size_hint sizes the initial slot
 * table (it grows on the update path). NULL on failure.
 */
struct lim_kv *lim_kv_create(size_t rec_size, size_t key_size,
			     uint64_t size_hint);
/**
 * Free @p kv and its records, calling @p fini (may be NULL) on each live one.
 * Updater, registered and online, with no reader left.
 */
void lim_kv_free(struct lim_kv *kv, void (*fini)(void *rec));
/** The record with @p key or NULL. QSBR read side online. */
const void *lim_kv_find(struct lim_kv *kv, uint64_t key);
/** Prefetch the slot line of @p key (a later lim_kv_find hits it). */
void lim_kv_prefetch(const struct lim_kv *kv, uint64_t key);
/** Bytes held: the slot table and the records. */
size_t lim_kv_bytes(const struct lim_kv *kv);
/** Insert or replace a copy of @p rec. Updater only. 0 or -ENOMEM. */
int lim_kv_set(struct lim_kv *kv, const void *rec);
/** Delete @p key. Updater only. 0 or -ENOENT. */
int lim_kv_del(struct lim_kv *kv, uint64_t key);

/* ------------------------------------------------------------------------ */
/* budget.c internals (tests and the control plane)                           */

/** The global room alone. */
int64_t lim_budget_global(const struct lim_budget *b);
/** Shard @p s's room alone (exact only from its owner or when quiescent). */
int64_t lim_budget_shard_room(const struct lim_budget *b, unsigned s);
int64_t lim_budget_chunk(const struct lim_budget *b);
unsigned lim_budget_shards(const struct lim_budget *b);
/** Change the refill chunk (control plane; owners use it from their next
 * refill or give on). */
void lim_budget_set_chunk(struct lim_budget *b, int64_t chunk_fen);

/* ------------------------------------------------------------------------ */
/* ops.c internals (tests)                                                    */

unsigned lim_ops_partitions(const struct lim_ops *s);
/** Entries one partition can hold. */
uint64_t lim_ops_part_capacity(const struct lim_ops *s);
uint64_t lim_ops_part_count(const struct lim_ops *s, unsigned p);
/** The partition that holds key (gateway_id, request_id). */
unsigned lim_ops_part_of(const struct lim_ops *s, uint32_t gateway_id,
			 uint64_t request_id);

/* ------------------------------------------------------------------------ */
/* users.c internals (tests)                                                  */

/** Entries of the index (a multiple of 8, load <= 0.8 at capacity). */
uint64_t lim_users_index_len(const struct lim_users *t);

/**
 * Insert @p n users from @p u (copies, lock bytes cleared) in order, exactly
 * as n calls of lim_users_insert() would, but with the index lines of the
 * users a few places ahead prefetched, so the cache misses of a large load
 * overlap (snapshot load). Updater only.
 * @param done  the number inserted (n on success, else the failing index)
 * @return 0, or the error of u[*done] (-EINVAL, -EEXIST, -ENOSPC); the
 *         users before it stay inserted.
 */
int lim_users_insert_bulk(struct lim_users *t, const struct lim_user *u,
			  uint64_t n, uint64_t *done);

/* ------------------------------------------------------------------------ */
/* The snapshot format (docs/snapshot-format.md): snapshot_fmt.c checks and   */
/* inspects files, snapshot_save.c writes them, snapshot_load.c loads them    */

#define LIM_SNAP_MAGIC "AUTHSNAP"
#define LIM_SNAP_TRAILER_MAGIC "SNAPEND"
#define LIM_SNAP_VERSION 1u
#define LIM_SNAP_ALIGN 64u
#define LIM_SNAP_HDR_LEN 128u
#define LIM_SNAP_HDR_SUMMED 120u   /* header bytes under its checksum */
#define LIM_SNAP_PROGRESS_USERS (1u << 20) /* progress, QS every this many */

enum lim_snap_type {
	LIM_SNAP_POLICY = 1,
	LIM_SNAP_FUNDERS,
	LIM_SNAP_USERS,
	LIM_SNAP_USER_STAMPS,
	LIM_SNAP_USER_EXT,
	LIM_SNAP_MERCHANTS,
	LIM_SNAP_GROUPS,
	LIM_SNAP_OPS,
	LIM_SNAP_TRAILER,
	LIM_SNAP_TYPES
};

struct lim_snap_header {
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

struct lim_snap_section {
	uint32_t type;
	uint32_t record_size;
	uint64_t count;
	uint64_t offset;
	uint64_t length;
	uint64_t checksum;         /* xxh3-64 of the payload */
	uint64_t reserved;         /* zero */
};

/* A group: its configuration, its state and the state's stamp. */
struct lim_snap_group {
	uint32_t group_id;
	uint8_t n_members;
	uint8_t pad[3];
	int64_t budget_fen;
	uint64_t members[LIM_GROUP_MEMBERS_MAX];
	int64_t month_spend_fen;
	uint32_t month_start_s;
	uint32_t stamp;            /* stamp - seq_start */
};

struct lim_snap_trailer {
	char magic[8];
	uint64_t seq_start;
	uint64_t seq_end;
	uint64_t users;
	uint64_t ops;
	uint64_t file_bytes;
	uint64_t reserved[2];
};

/* What each section type holds. */
struct lim_snap_kind {
	const char *name;
	uint32_t record_size;
	bool required;
};

extern const struct lim_snap_kind lim_snap_types[LIM_SNAP_TYPES];

/* Sections start at the next 64-byte boundary. */
static inline uint64_t
lim_snap_align_up(uint64_t x)
{
	return (x + LIM_SNAP_ALIGN - 1) & ~(uint64_t)(LIM_SNAP_ALIGN - 1);
}

/** The name of section type @p type, "?" when unknown. */
const char *lim_snap_type_name(uint32_t type);

/* A snapshot image being read: trusted only once lim_snap_check_file() has
 * passed, and then only its header, table and checksums. */
struct lim_snap_in {
	const uint8_t *p;
	uint64_t len;
	const char *name;
	char *err;
	size_t errlen;
	struct lim_snap_header h;
	unsigned n;
	struct lim_snap_section sec[LIM_SNAP_SECTIONS_MAX];
	const struct lim_snap_section *by_type[LIM_SNAP_TYPES];
};

/**
 * Refuse @p in: "NAME: offset OFF: why" into in->err. Returns -EINVAL (each
 * reader wraps it in its own printf-like bad()).
 */
__attribute__((format(printf, 3, 0))) int
lim_snap_vfail(struct lim_snap_in *in, uint64_t off, const char *fmt,
	       va_list ap);
/** Everything that needs no record: header, table, checksums, trailer. */
int lim_snap_check_file(struct lim_snap_in *in);
/**
 * Map @p path read-only (*len 0: an empty file, no mapping). 0 or a
 * negative errno with @p err.
 */
int lim_snap_map(const char *path, const uint8_t **p, size_t *len, char *err,
		 size_t errlen);

/* ------------------------------------------------------------------------ */
/* Snapshot internals (tests, fuzzing, tools)                                 */

/**
 * lim_snapshot_load() from a snapshot image in memory: @p name is used in
 * messages in place of the path. Same contract otherwise.
 */
struct lim_db *lim_snapshot_load_buf(const void *buf, size_t len,
				     const char *name,
				     const struct lim_db_config *extra,
				     void (*progress)(uint64_t done,
						      uint64_t total),
				     struct lim_snapshot_meta *meta, char *err,
				     size_t errlen);

/**
 * Recompute every checksum of a snapshot image in place (each section whose
 * table entry lies inside the image, the section table, the header), so a
 * test or a fuzzer can change records and reach the record-level checks.
 * Fields that make no sense are left alone for the loader to refuse.
 */
void lim_snapshot_reseal(void *buf, size_t len);

/* ------------------------------------------------------------------------ */
/* file.c internals (tests)                                                   */

/**
 * Make the next lim_fsync_dir() of the process fail with -@p errnum, once,
 * as a full or failing disk would (0 disarms).
 */
void lim_file_inject_dir_sync_error(int errnum);

/*
 * Fault in @p bytes at @p p now (MADV_POPULATE_WRITE, or a write per page
 * where the kernel lacks it), so the dataplane never takes a first-touch
 * page fault. The memory must be writable and hold zeros or live data: a
 * page is only ever written with the value it already has.
 */
void lim_prefault(void *p, size_t bytes);

#endif /* LIM_PVT_H */
