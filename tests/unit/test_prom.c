/*
 * test_prom.c - the Prometheus exposition writer (dataplane/metrics/
 * prom.c): the exact conversion of the engine's histograms into
 * cumulative buckets, the text format, the --metrics address.
 *
 * Histograms are checked against samples, not against a second copy of
 * the conversion: random and edge-case samples are put in the engine's own
 * buckets (dp.h's log-linear TSC buckets at several TSC rates, the
 * ledger's log2 fdatasync buckets), converted, and every bound's count
 * must be exactly the number of samples whose bucket's largest value is
 * at or below the bound, never a sample above the bound, cumulative, and
 * +Inf = every sample.
 */
#include <errno.h>
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <arpa/inet.h>
#include <cmocka.h>

#include "dp.h"
#include "metrics.h"

#define SAMPLES 200000

static uint64_t rng_state = 0x9e3779b97f4a7c15ull;

static uint64_t
rng(void)
{
	rng_state ^= rng_state << 13;
	rng_state ^= rng_state >> 7;
	rng_state ^= rng_state << 17;
	return rng_state;
}

/* A sample spread over many magnitudes: 0 .. 2^48 (cycles or ns). */
static uint64_t
sample(void)
{
	unsigned bits = (unsigned)(rng() % 49);

	return bits ? rng() >> (64 - bits) : 0;
}

static const uint64_t lat_le_ns[] = {
	1000, 2000, 5000, 10000, 20000, 50000, 100000, 200000, 500000,
	1000000, 2000000, 5000000, 10000000, 20000000, 50000000, 100000000,
	200000000, 500000000, 1000000000,
};

/* Check h against the samples themselves. */
static void
check_against_samples(const struct dp_prom_hist *h, const uint64_t *s,
		      unsigned n, unsigned (*bucket)(uint64_t),
		      dp_prom_bucket_max_fn bucket_max, uint64_t units_per_s)
{
	assert_int_equal(h->count, n);
	for (unsigned k = 0; k < h->n; k++) {
		unsigned __int128 bound =
			(unsigned __int128)h->le_ns[k] * units_per_s;
		uint64_t whole = 0, at_or_below = 0;

		for (unsigned i = 0; i < n; i++) {
			uint64_t max = bucket_max(bucket(s[i]));

			if (max != UINT64_MAX &&
			    (unsigned __int128)max * 1000000000u <= bound)
				whole++;
			if ((unsigned __int128)s[i] * 1000000000u <= bound)
				at_or_below++;
		}
		assert_int_equal(h->cum[k], whole);
		assert_true(h->cum[k] <= at_or_below);
		if (k)
			assert_true(h->cum[k] >= h->cum[k - 1]);
		assert_true(h->cum[k] <= h->count);
	}
}

static unsigned
lat_bucket(uint64_t cyc)
{
	return dp_lat_bucket(cyc);
}

static void
lat_at_rate(uint64_t hz)
{
	static uint64_t s[SAMPLES], counts[DP_LAT_BUCKETS];
	struct dp_prom_hist h;
	unsigned n = 0;

	memset(counts, 0, sizeof(counts));
	for (; n < SAMPLES - 64; n++)
		s[n] = sample();
	/* each bound exactly, and one cycle either side of it */
	for (unsigned k = 0; k < sizeof(lat_le_ns) / sizeof(lat_le_ns[0]); k++) {
		uint64_t c = (uint64_t)((unsigned __int128)lat_le_ns[k] * hz /
					1000000000u);

		s[n++] = c - 1;
		s[n++] = c;
		s[n++] = c + 1;
	}
	s[n++] = UINT64_MAX; /* the open last bucket */
	for (unsigned i = 0; i < n; i++)
		counts[dp_lat_bucket(s[i])]++;
	assert_int_equal(dp_prom_hist_fill(&h, counts, DP_LAT_BUCKETS,
					   dp_lat_bucket_bound, hz, lat_le_ns,
					   sizeof(lat_le_ns) / sizeof(lat_le_ns[0])), 0);
	assert_int_equal(h.n, sizeof(lat_le_ns) / sizeof(lat_le_ns[0]));
	check_against_samples(&h, s, n, lat_bucket, dp_lat_bucket_bound, hz);
}

static void
test_latency_exact(void **state)
{
	(void)state;
	lat_at_rate(2600000000ull);
	lat_at_rate(3000000000ull);
	lat_at_rate(1000000000ull);
	lat_at_rate(2199999999ull);
}

/* Every engine bucket lies wholly below or wholly above each bound. */
static void
test_latency_bucket_edges(void **state)
{
	static uint64_t counts[DP_LAT_BUCKETS];
	struct dp_prom_hist h;
	uint64_t hz = 2600000000ull, below = 0;

	(void)state;
	for (unsigned b = 0; b < DP_LAT_BUCKETS; b++)
		counts[b] = 1;
	assert_int_equal(dp_prom_hist_fill(&h, counts, DP_LAT_BUCKETS,
					   dp_lat_bucket_bound, hz, lat_le_ns, 1), 0);
	/* 1 us at 2.6 GHz = 2600 cycles: buckets whose max is <= 2600 */
	for (unsigned b = 0; b + 1 < DP_LAT_BUCKETS; b++)
		below += dp_lat_bucket_max(b) <= 2600;
	assert_int_equal(h.cum[0], below);
	assert_int_equal(h.count, DP_LAT_BUCKETS);
}

static unsigned
fsync_bucket(uint64_t ns)
{
	return dp_ledger_fsync_bucket(ns);
}

static void
test_fsync_exact(void **state)
{
	static uint64_t s[SAMPLES];
	uint64_t counts[DP_LEDGER_HIST] = {0}, le[DP_LEDGER_HIST - 1];
	struct dp_prom_hist h;
	unsigned n = 0;

	(void)state;
	for (unsigned b = 0; b < DP_LEDGER_HIST - 1; b++) {
		le[b] = dp_ledger_fsync_bucket_max_ns(b) + 1;
		s[n++] = le[b] - 1;
		s[n++] = le[b];
	}
	for (; n < SAMPLES; n++)
		s[n] = sample() >> 8;
	for (unsigned i = 0; i < n; i++)
		counts[dp_ledger_fsync_bucket(s[i])]++;
	assert_int_equal(dp_prom_hist_fill(&h, counts, DP_LEDGER_HIST,
					   dp_ledger_fsync_bucket_max_ns,
					   1000000000u, le, DP_LEDGER_HIST - 1), 0);
	check_against_samples(&h, s, n, fsync_bucket,
			      dp_ledger_fsync_bucket_max_ns, 1000000000u);
	/* at the buckets' own edges the conversion loses nothing: each
	 * bound counts every bucket below it */
	for (unsigned k = 0, sum = 0; k < DP_LEDGER_HIST - 1; k++) {
		sum += (unsigned)counts[k];
		assert_int_equal(h.cum[k], sum);
	}
}

static uint64_t
max_identity(unsigned b)
{
	return b;
}

static void
test_fill_refuses(void **state)
{
	uint64_t counts[4] = {1, 2, 3, 4}, le[2] = {5, 5};
	uint64_t many[DP_PROM_LE_MAX + 1];
	struct dp_prom_hist h;

	(void)state;
	for (unsigned i = 0; i <= DP_PROM_LE_MAX; i++)
		many[i] = i + 1;
	assert_int_equal(dp_prom_hist_fill(&h, counts, 4, max_identity, 1000000000u,
					   le, 2), -EINVAL);
	assert_int_equal(dp_prom_hist_fill(&h, counts, 4, max_identity, 0,
					   many, 2), -EINVAL);
	assert_int_equal(dp_prom_hist_fill(&h, counts, 4, max_identity, 1000000000u,
					   many, DP_PROM_LE_MAX + 1), -EINVAL);
	/* unit 1 ns, buckets hold 0,1,2,3 ns: le 1 ns counts buckets 0, 1 */
	assert_int_equal(dp_prom_hist_fill(&h, counts, 4, max_identity, 1000000000u,
					   many, 3), 0);
	assert_int_equal(h.cum[0], 3);
	assert_int_equal(h.cum[1], 6);
	assert_int_equal(h.cum[2], 10);
	assert_int_equal(h.count, 10);
}

/* The text of one family of each type, byte for byte. */
static void
test_text(void **state)
{
	struct dp_prom *w = dp_prom_create();
	struct dp_prom_hist h = {.n = 3, .le_ns = {1000, 2500000, 1000000000},
				 .cum = {1, 5, 7}, .count = 9, .sum_s = 0.25};
	char l[128] = "";
	const char *t;
	size_t len;

	(void)state;
	assert_non_null(w);
	dp_prom_family(w, "authd_x_total", DP_PROM_COUNTER, "a \\ b\nc");
	assert_int_equal(dp_prom_label(l, sizeof(l), "reason", "APPROVED"), 0);
	assert_int_equal(dp_prom_label(l, sizeof(l), "odd", "q\"b\\n\n"), 0);
	dp_prom_u64(w, "authd_x_total", l, 18446744073709551615ull);
	dp_prom_family(w, "authd_g", DP_PROM_GAUGE, "g");
	dp_prom_f64(w, "authd_g", NULL, 0.5);
	dp_prom_family(w, "authd_h_seconds", DP_PROM_HISTOGRAM, "h");
	dp_prom_histogram(w, "authd_h_seconds", "lcore=\"0\"", &h);
	t = dp_prom_text(w, &len);
	assert_non_null(t);
	assert_string_equal(t,
		"# HELP authd_x_total a \\\\ b\\nc\n"
		"# TYPE authd_x_total counter\n"
		"authd_x_total{reason=\"APPROVED\",odd=\"q\\\"b\\\\n\\n\"} "
		"18446744073709551615\n"
		"# HELP authd_g g\n# TYPE authd_g gauge\nauthd_g 0.5\n"
		"# HELP authd_h_seconds h\n# TYPE authd_h_seconds histogram\n"
		"authd_h_seconds_bucket{lcore=\"0\",le=\"0.000001\"} 1\n"
		"authd_h_seconds_bucket{lcore=\"0\",le=\"0.0025\"} 5\n"
		"authd_h_seconds_bucket{lcore=\"0\",le=\"1\"} 7\n"
		"authd_h_seconds_bucket{lcore=\"0\",le=\"+Inf\"} 9\n"
		"authd_h_seconds_sum{lcore=\"0\"} 0.25\n"
		"authd_h_seconds_count{lcore=\"0\"} 9\n");
	assert_int_equal(len, strlen(t));
	/* a label that does not fit leaves the list as it was */
	assert_int_equal(dp_prom_label(l, 20, "k", "v"), -ENAMETOOLONG);
	dp_prom_reset(w);
	t = dp_prom_text(w, &len);
	assert_int_equal(len, 0);
	dp_prom_free(w);
}

/* Many samples grow the text past its first buffer. */
static void
test_text_grows(void **state)
{
	struct dp_prom *w = dp_prom_create();
	size_t len;

	(void)state;
	for (unsigned i = 0; i < 20000; i++)
		dp_prom_u64(w, "authd_some_long_metric_name_total", "a=\"b\"", i);
	assert_non_null(dp_prom_text(w, &len));
	assert_true(len > 64u << 10);
	dp_prom_free(w);
}

static void
test_addr(void **state)
{
	static const char *const good[] = {"127.0.0.1:9711", "0.0.0.0:1",
					   "[::1]:65535", "[::]:9711"};
	static const char *const bad[] = {
		"", "9711", ":9711", "127.0.0.1", "127.0.0.1:", "127.0.0.1:0",
		"127.0.0.1:65536", "127.0.0.1:-1", "127.0.0.1:+80",
		"127.0.0.1:80x", "localhost:9711", "::1:9711", "[::1]9711",
		"[::1", "[1.2.3.4]:80", "300.0.0.1:80",
		"127.0.0.1:99999999999999999999999"};
	struct sockaddr_storage ss;
	char err[256];
	socklen_t len;

	(void)state;
	for (unsigned i = 0; i < sizeof(good) / sizeof(good[0]); i++)
		assert_int_equal(dp_metrics_addr_parse(good[i], &ss, &len, err,
						       sizeof(err)), 0);
	assert_int_equal(dp_metrics_addr_parse("127.0.0.1:9711", &ss, &len, err,
					       sizeof(err)), 0);
	assert_int_equal(ss.ss_family, AF_INET);
	assert_int_equal(ntohs(((struct sockaddr_in *)&ss)->sin_port), 9711);
	assert_int_equal(len, sizeof(struct sockaddr_in));
	assert_int_equal(dp_metrics_addr_parse("[::1]:9", &ss, &len, err,
					       sizeof(err)), 0);
	assert_int_equal(ss.ss_family, AF_INET6);
	for (unsigned i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		err[0] = '\0';
		assert_int_equal(dp_metrics_addr_parse(bad[i], &ss, &len, err,
						       sizeof(err)), -EINVAL);
		/* the message names the option and the value */
		assert_non_null(strstr(err, "--metrics"));
		assert_non_null(strstr(err, bad[i]));
	}
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_latency_exact),
		cmocka_unit_test(test_latency_bucket_edges),
		cmocka_unit_test(test_fsync_exact),
		cmocka_unit_test(test_fill_refuses),
		cmocka_unit_test(test_text),
		cmocka_unit_test(test_text_grows),
		cmocka_unit_test(test_addr),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
