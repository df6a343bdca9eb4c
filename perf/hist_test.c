/*
 * hist_test.c - perf/hist.c against exact answers: the bucket layout has
 * no gap and no overlap, every value lands in the bucket whose bounds hold
 * it, a bucket is at most 1/128 of its values wide, and quantiles of random
 * data are within that error of the exact sorted-array quantiles.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>

#include <cmocka.h>

#include "hist.h"

static void
test_layout(void **state)
{
	(void)state;
	assert_int_equal(perf_hist_bucket_lo(0), 0);
	for (unsigned i = 1; i < PERF_HIST_BUCKETS; i++) {
		uint64_t lo = perf_hist_bucket_lo(i), hi = perf_hist_bucket_hi(i);

		assert_int_equal(lo, perf_hist_bucket_hi(i - 1) + 1);
		assert_true(hi >= lo);
		assert_int_equal(perf_hist_index(lo), i);
		assert_int_equal(perf_hist_index(hi), i);
		/* width <= lo / 128 above the exact range */
		if (lo >= 2 * PERF_HIST_SUB)
			assert_true((hi - lo + 1) * PERF_HIST_SUB <= lo);
	}
	assert_int_equal(perf_hist_bucket_hi(PERF_HIST_BUCKETS - 1),
			 PERF_HIST_VALUE_MAX);
	assert_int_equal(perf_hist_index(UINT64_MAX), PERF_HIST_BUCKETS - 1);
}

static int
cmp_u64(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;

	return x < y ? -1 : x > y;
}

static void
test_quantiles(void **state)
{
	enum { N = 100000 };
	static const double qs[] = {0.0, 0.5, 0.9, 0.99, 0.999, 0.9999, 1.0};
	static struct perf_hist h, a, b;
	uint64_t *v = malloc(N * sizeof(*v)), x = 88172645463325252ull;

	(void)state;
	assert_non_null(v);
	perf_hist_init(&h);
	perf_hist_init(&a);
	perf_hist_init(&b);
	assert_int_equal(perf_hist_quantile(&h, 0.5), 0);
	for (unsigned i = 0; i < N; i++) {
		x ^= x << 13, x ^= x >> 7, x ^= x << 17;
		/* log-uniform-ish from 1 ns to ~1 s */
		v[i] = 1 + (x % 1000000000ull >> (x >> 59));
		perf_hist_record(&h, v[i]);
		perf_hist_record(i & 1 ? &a : &b, v[i]);
	}
	perf_hist_merge(&a, &b);
	qsort(v, N, sizeof(*v), cmp_u64);
	assert_int_equal(h.count, N);
	assert_int_equal(h.min, v[0]);
	assert_int_equal(h.max, v[N - 1]);
	for (unsigned i = 0; i < sizeof(qs) / sizeof(qs[0]); i++) {
		size_t rank = (size_t)(qs[i] * N + 0.999999);
		uint64_t exact = v[rank ? rank - 1 : 0];
		uint64_t got = perf_hist_quantile(&h, qs[i]);

		assert_true(got >= exact);
		assert_true(got - exact <= exact / PERF_HIST_SUB);
		assert_int_equal(got, perf_hist_quantile(&a, qs[i]));
	}
	free(v);
}

static void
test_overflow(void **state)
{
	static struct perf_hist h;

	(void)state;
	perf_hist_init(&h);
	perf_hist_record(&h, PERF_HIST_VALUE_MAX + 5);
	perf_hist_record_n(&h, 7, 3);
	assert_int_equal(h.count, 4);
	assert_int_equal(h.overflow, 1);
	assert_int_equal(h.max, PERF_HIST_VALUE_MAX + 5);
	assert_int_equal(perf_hist_quantile(&h, 0.5), 7);
	assert_int_equal(perf_hist_quantile(&h, 1.0), PERF_HIST_VALUE_MAX + 5);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_layout),
		cmocka_unit_test(test_quantiles),
		cmocka_unit_test(test_overflow),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
