/*
 * hist.c - the log-linear histogram of hist.h: bucket bounds, merging,
 * quantiles and printing.
 *
 * Layout (invariant): bucket i < 2 * PERF_HIST_SUB holds the value i alone;
 * above, bucket i belongs to octave k = i / SUB - 1 and holds the values
 * [(i - k * SUB) << k, ((i - k * SUB + 1) << k) - 1]. So buckets are
 * contiguous, increasing, and cover 0 .. PERF_HIST_VALUE_MAX with no gap.
 *
 * Concurrency: one writer per histogram (perf_hist_record). Only
 * perf_hist_snapshot() may run while the writer is busy.
 */
#include <string.h>

#include "hist.h"

_Static_assert(PERF_HIST_BUCKETS ==
		       (PERF_HIST_MAX_BITS - PERF_HIST_SUB_BITS + 1) *
			       PERF_HIST_SUB,
	       "bucket count");

uint64_t
perf_hist_bucket_lo(unsigned i)
{
	unsigned k;

	if (i < 2 * PERF_HIST_SUB)
		return i;
	k = i / PERF_HIST_SUB - 1;
	return (uint64_t)(i - k * PERF_HIST_SUB) << k;
}

uint64_t
perf_hist_bucket_hi(unsigned i)
{
	unsigned k;

	if (i < 2 * PERF_HIST_SUB)
		return i;
	k = i / PERF_HIST_SUB - 1;
	return perf_hist_bucket_lo(i) + (1ull << k) - 1;
}

void
perf_hist_init(struct perf_hist *h)
{
	memset(h, 0, sizeof(*h));
	h->min = UINT64_MAX;
}

void
perf_hist_record_n(struct perf_hist *h, uint64_t v, uint64_t n)
{
	uint64_t add;

	if (n == 0)
		return;
	h->b[perf_hist_index(v)] += n;
	h->count += n;
	add = v && n > UINT64_MAX / v ? UINT64_MAX : v * n;
	h->sum = h->sum + add < h->sum ? UINT64_MAX : h->sum + add;
	if (v < h->min)
		h->min = v;
	if (v > h->max)
		h->max = v;
	if (v > PERF_HIST_VALUE_MAX)
		h->overflow += n;
}

void
perf_hist_merge(struct perf_hist *dst, const struct perf_hist *src)
{
	for (unsigned i = 0; i < PERF_HIST_BUCKETS; i++)
		dst->b[i] += src->b[i];
	dst->count += src->count;
	dst->sum = dst->sum + src->sum < dst->sum ? UINT64_MAX
						  : dst->sum + src->sum;
	dst->overflow += src->overflow;
	if (src->min < dst->min)
		dst->min = src->min;
	if (src->max > dst->max)
		dst->max = src->max;
}

#define RD(x) __atomic_load_n(&(x), __ATOMIC_RELAXED)

void
perf_hist_snapshot(struct perf_hist *dst, const struct perf_hist *src)
{
	uint64_t n = 0;

	for (unsigned i = 0; i < PERF_HIST_BUCKETS; i++) {
		dst->b[i] = RD(src->b[i]);
		n += dst->b[i];
	}
	/* Buckets and count are stored apart: trust what the buckets say. */
	dst->count = n;
	dst->sum = RD(src->sum);
	dst->min = RD(src->min);
	dst->max = RD(src->max);
	dst->overflow = RD(src->overflow);
}

uint64_t
perf_hist_quantile(const struct perf_hist *h, double q)
{
	uint64_t rank, seen = 0;

	if (h->count == 0)
		return 0;
	if (q >= 1.0)
		return h->max;
	if (q < 0.0)
		q = 0.0;
	/* The rank of the q-th value, 1-based, rounded up: p99 of 100 is #99. */
	rank = (uint64_t)(q * (double)h->count);
	if ((double)rank < q * (double)h->count)
		rank++;
	if (rank == 0)
		rank = 1;
	for (unsigned i = 0; i < PERF_HIST_BUCKETS; i++) {
		seen += h->b[i];
		if (seen >= rank) {
			uint64_t v = perf_hist_bucket_hi(i);

			if (v > h->max)
				v = h->max;
			if (v < h->min)
				v = h->min;
			return v;
		}
	}
	return h->max;
}

double
perf_hist_mean(const struct perf_hist *h)
{
	return h->count ? (double)h->sum / (double)h->count : 0.0;
}

int
perf_hist_foreach(const struct perf_hist *h,
		  int (*fn)(uint64_t lo, uint64_t hi, uint64_t n, void *arg),
		  void *arg)
{
	for (unsigned i = 0; i < PERF_HIST_BUCKETS; i++) {
		int rc;

		if (!h->b[i])
			continue;
		rc = fn(perf_hist_bucket_lo(i), perf_hist_bucket_hi(i), h->b[i],
			arg);
		if (rc)
			return rc;
	}
	return 0;
}

void
perf_hist_print(FILE *f, const struct perf_hist *h, uint64_t div,
		const char *unit)
{
	static const struct {
		const char *name;
		double q;
	} qs[] = {
		{"p50", 0.50},     {"p90", 0.90},       {"p99", 0.99},
		{"p99.9", 0.999},  {"p99.99", 0.9999},  {"max", 1.0},
	};
	double d = div ? (double)div : 1.0;

	for (unsigned i = 0; i < sizeof(qs) / sizeof(qs[0]); i++)
		fprintf(f, "%s%s %.1f %s", i ? "  " : "", qs[i].name,
			(double)perf_hist_quantile(h, qs[i].q) / d, unit);
	fputc('\n', f);
}
