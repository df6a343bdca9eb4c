/*
 * bench_example.c - proves the Google Benchmark C shim (gbench_shim.h) and
 * measures what the wire MAC costs.
 *
 * - perf_bm_siphashx24: libsodium crypto_shorthash_siphashx24 (the
 *   datagram tag, shared/docs/protocol.md) over 96 bytes (header + one
 *   record) and 1072 bytes (header + 16 records + 16): bytes/s, and
 *   records/s as items.
 * - perf_bm_loop_keep_running / perf_bm_loop_macro: an empty timed loop
 *   written both ways, so the cost of the shim's call per iteration is on
 *   record (PERF_LOOP should read ~0 ns).
 * - perf_bm_sort_paused: qsort of 1024 ints with the reshuffle paused,
 *   showing perf_pause/perf_resume and a custom counter.
 *
 * Everything a benchmark needs is set up before its timed loop; nothing is
 * shared between benchmarks.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <sodium.h>

#include "gbench_shim.h"

#define PERF_HDR_BYTES    32 /* datagram header */
#define PERF_RECORD_BYTES 64 /* one request record */
#define PERF_MAC_MAX      1072
#define PERF_SORT_N       1024

static void
perf_bm_siphashx24(struct perf_state *s)
{
	unsigned char key[crypto_shorthash_siphashx24_KEYBYTES];
	unsigned char in[PERF_MAC_MAX];
	unsigned char tag[crypto_shorthash_siphashx24_BYTES];
	int64_t len = perf_range(s, 0);

	if (len < PERF_HDR_BYTES || len > PERF_MAC_MAX) {
		perf_skip_with_error(s, "length out of 32..1072");
		return;
	}
	if (sodium_init() < 0) {
		perf_skip_with_error(s, "sodium_init failed");
		return;
	}
	randombytes_buf(key, sizeof(key));
	randombytes_buf(in, sizeof(in));
	PERF_LOOP(s) {
		crypto_shorthash_siphashx24(tag, in, (unsigned long long)len,
					    key);
		perf_do_not_optimize(tag);
	}
	perf_set_bytes(s, perf_iterations(s) * len);
	perf_set_items(s, perf_iterations(s) *
				  ((len - PERF_HDR_BYTES) / PERF_RECORD_BYTES));
}
PERF_BENCH_SPEC(perf_bm_siphashx24, .name = "siphashx24",
		.args = (const int64_t[]){96, 1072}, .runs = 2, .arity = 1,
		.arg_names = (const char *const[]){"bytes"});

static void
perf_bm_loop_keep_running(struct perf_state *s)
{
	while (perf_keep_running(s))
		perf_clobber();
}
PERF_BENCH(perf_bm_loop_keep_running);

static void
perf_bm_loop_macro(struct perf_state *s)
{
	PERF_LOOP(s)
		perf_clobber();
}
PERF_BENCH(perf_bm_loop_macro);

static int
perf_cmp_int(const void *a, const void *b)
{
	int x = *(const int *)a, y = *(const int *)b;

	return (x > y) - (x < y);
}

static void
perf_bm_sort_paused(struct perf_state *s)
{
	static int v[PERF_SORT_N];
	uint64_t rng = 0x9e3779b97f4a7c15ULL;
	int64_t shuffles = 0;

	PERF_LOOP(s) {
		perf_pause(s);
		for (int i = 0; i < PERF_SORT_N; i++) {
			rng ^= rng << 13, rng ^= rng >> 7, rng ^= rng << 17;
			v[i] = (int)(rng >> 33);
		}
		shuffles++;
		perf_resume(s);
		qsort(v, PERF_SORT_N, sizeof(v[0]), perf_cmp_int);
		perf_do_not_optimize(v);
	}
	perf_set_items(s, perf_iterations(s) * PERF_SORT_N);
	perf_counter(s, "shuffles", (double)shuffles);
}
PERF_BENCH_SPEC(perf_bm_sort_paused, .unit = PERF_UNIT_US);

PERF_MAIN("bench_example: the Google Benchmark C shim at work.\n"
	  "siphashx24/bytes:N  libsodium crypto_shorthash_siphashx24 over N "
	  "bytes\n"
	  "                    (96: one record, 1072: 16 records); items = "
	  "records\n"
	  "perf_bm_loop_*      an empty timed loop: perf_keep_running() vs "
	  "PERF_LOOP\n"
	  "perf_bm_sort_paused qsort of 1024 ints, reshuffle paused "
	  "(perf_pause/perf_resume)")
