/*
 * hist.h - a log-linear latency histogram (HdrHistogram's layout), for
 * authgen and the other benchmarks.
 *
 * Values are unsigned integers (nanoseconds in practice). Values below
 * 2 * PERF_HIST_SUB (256) have a bucket each; above, every power of two is
 * split into PERF_HIST_SUB (128) equal buckets, so a bucket is at most 1/128
 * (0.8%) of the values it holds. Values up to 2^PERF_HIST_MAX_BITS - 1
 * (~68.7 s in ns) are kept; larger ones count in the last bucket and in
 * `overflow`, and `max` stays exact.
 *
 * Recording is one count-leading-zeros, two shifts and an increment: no
 * allocation, no branch on the bucket. A histogram is 30 KB, owned by one
 * writer; merge per-thread histograms for a report. Readers on other threads
 * (progress lines) read counters with relaxed atomic loads (perf_hist_*
 * readers all do), so they see a consistent-enough picture a few
 * increments old.
 */
#ifndef PERF_HIST_H
#define PERF_HIST_H

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

#define PERF_HIST_SUB_BITS 7                     /* 128 buckets per octave */
#define PERF_HIST_SUB (1u << PERF_HIST_SUB_BITS)
#define PERF_HIST_MAX_BITS 36                    /* 2^36 ns = 68.7 s */
/* octave 0 holds 0 .. 2*SUB-1 one per bucket; octaves 1.. SUB buckets each */
#define PERF_HIST_BUCKETS                                                      \
	((PERF_HIST_MAX_BITS - PERF_HIST_SUB_BITS) * PERF_HIST_SUB +           \
	 PERF_HIST_SUB)
#define PERF_HIST_VALUE_MAX ((1ull << PERF_HIST_MAX_BITS) - 1)

struct perf_hist {
	uint64_t count;
	uint64_t sum;            /* saturates at UINT64_MAX */
	uint64_t min;            /* UINT64_MAX while empty */
	uint64_t max;
	uint64_t overflow;       /* values above PERF_HIST_VALUE_MAX */
	uint64_t b[PERF_HIST_BUCKETS];
};

/** Bucket index of @p v (clamped to the last bucket). Pure. */
static inline unsigned
perf_hist_index(uint64_t v)
{
	unsigned octave, msb;

	if (v > PERF_HIST_VALUE_MAX)
		v = PERF_HIST_VALUE_MAX;
	/* v | (2*SUB - 1) puts everything below 2*SUB in octave 0. */
	msb = 63u - (unsigned)__builtin_clzll(v | (2ull * PERF_HIST_SUB - 1));
	octave = msb - PERF_HIST_SUB_BITS;
	return octave * PERF_HIST_SUB + (unsigned)(v >> octave);
}

/** Smallest value that lands in bucket @p i. Pure. */
uint64_t perf_hist_bucket_lo(unsigned i);
/** Largest value that lands in bucket @p i. Pure. */
uint64_t perf_hist_bucket_hi(unsigned i);

/** Empty @p h (memory the caller provides). */
void perf_hist_init(struct perf_hist *h);

/** Record one value. Single writer per histogram. */
static inline void
perf_hist_record(struct perf_hist *h, uint64_t v)
{
	h->b[perf_hist_index(v)]++;
	h->count++;
	h->sum = h->sum + v < h->sum ? UINT64_MAX : h->sum + v;
	if (v < h->min)
		h->min = v;
	if (v > h->max)
		h->max = v;
	if (v > PERF_HIST_VALUE_MAX)
		h->overflow++;
}

/** Record @p n occurrences of @p v. */
void perf_hist_record_n(struct perf_hist *h, uint64_t v, uint64_t n);

/** Add @p src into @p dst. */
void perf_hist_merge(struct perf_hist *dst, const struct perf_hist *src);

/** Copy @p src to @p dst with relaxed atomic loads (a writer may be busy). */
void perf_hist_snapshot(struct perf_hist *dst, const struct perf_hist *src);

/**
 * The value at quantile @p q (0..1): the largest value of the bucket that
 * holds the q-th value, never above max nor below min; 0 when empty.
 * q >= 1 returns max exactly. HdrHistogram's "highest equivalent value".
 */
uint64_t perf_hist_quantile(const struct perf_hist *h, double q);

/** Mean, 0 when empty. */
double perf_hist_mean(const struct perf_hist *h);

/**
 * Call @p fn for every non-empty bucket in increasing order with its value
 * range [lo, hi] and count; a non-zero return stops the walk and is
 * returned.
 */
int perf_hist_foreach(const struct perf_hist *h,
		      int (*fn)(uint64_t lo, uint64_t hi, uint64_t n,
				void *arg),
		      void *arg);

/**
 * Print "p50 p90 p99 p99.9 p99.99 max" as one line, values divided by
 * @p div and suffixed with @p unit ("us" with div 1000 for ns values).
 */
void perf_hist_print(FILE *f, const struct perf_hist *h, uint64_t div,
		     const char *unit);

#endif /* PERF_HIST_H */
