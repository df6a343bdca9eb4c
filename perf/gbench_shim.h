/*
 * gbench_shim.h - Google Benchmark for C code.
 *
 * Benchmarks stay C; gbench_shim.cc (C++) is linked into every benchmark
 * executable (CMake: authd_add_bench in perf/CMakeLists.txt) and forwards
 * these calls to benchmark::State and benchmark::RegisterBenchmark.
 *
 *	#include "gbench_shim.h"
 *
 *	static void
 *	perf_bm_hash(struct perf_state *s)
 *	{
 *		int64_t len = perf_range(s, 0);
 *		...set-up, not timed...
 *		PERF_LOOP(s) {
 *			hash(out, in, len);
 *			perf_do_not_optimize(out);
 *		}
 *		perf_set_bytes(s, perf_iterations(s) * len);
 *	}
 *	PERF_BENCH_ARGS(perf_bm_hash, 96, 1072);
 *
 *	PERF_MAIN("what these benchmarks measure")
 *
 * Two ways to write the timed loop, never both in one benchmark:
 * - PERF_LOOP(s) { ... } counts iterations in a local variable, like C++'s
 *   `for (auto _ : state)`: no call per iteration. Use it.
 * - while (perf_keep_running(s)) { ... } is State::KeepRunning() behind a
 *   call into C++: a few cycles per iteration (bench_example measures it).
 * A benchmark that calls perf_skip_with_error() must leave the loop (break)
 * and return; perf_main() then exits with status 1.
 *
 * Registration runs from __attribute__((constructor)) functions that the
 * PERF_BENCH* macros generate, before main(); perf_register() copies what it
 * is given, so a spec and its argument arrays may live on the stack.
 */
#ifndef PERF_GBENCH_SHIM_H
#define PERF_GBENCH_SHIM_H

#include <stdbool.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* A benchmark::State, opaque to C. */
struct perf_state;

#define PERF_ARITY_MAX 8 /* values per argument row (state.range(0..7)) */

enum perf_unit {
	PERF_UNIT_DEFAULT = 0, /* the library's: nanoseconds */
	PERF_UNIT_NS,
	PERF_UNIT_US,
	PERF_UNIT_MS,
	PERF_UNIT_S,
};

/* perf_counter_ex() flags (benchmark::Counter::Flags). */
#define PERF_COUNTER_RATE        0x1 /* divide by the run's seconds */
#define PERF_COUNTER_AVG_THREADS 0x2 /* divide by the number of threads */
#define PERF_COUNTER_AVG_ITERS   0x4 /* divide by the iterations */

/*
 * What to register. Only fn and fn_name are required (the macros set both);
 * a zero field means "the library's default".
 */
struct perf_bench {
	void (*fn)(struct perf_state *s);
	const char *fn_name;          /* set by the macros: the function */
	const char *name;             /* shown name; NULL: fn_name */
	const int64_t *args;          /* runs rows of arity values, row-major */
	int runs;                     /* rows in args; 0: one run, no args */
	int arity;                    /* values per row, 1..PERF_ARITY_MAX */
	const char *const *arg_names; /* arity names, or NULL */
	int threads;                  /* run with this many threads (0: 1) */
	int repetitions;              /* 0: library default (1) */
	int64_t iterations;           /* fixed count; 0: until min_time */
	double min_time_s;            /* 0: library default */
	enum perf_unit unit;
	bool real_time;               /* time by the wall clock, not CPU */
};

/**
 * Register a benchmark. Usually called by the PERF_BENCH* macros from a
 * constructor; may also be called from main() before perf_main().
 * @return 0, -EINVAL for a malformed spec (message on stderr), -ENOMEM.
 */
int perf_register(const struct perf_bench *b);

/**
 * Run the registered benchmarks: parses the --benchmark_* flags (see
 * --help), prints results, writes --benchmark_out.
 * @return 0, or 1 when a registration failed, a flag is unknown, no
 *	benchmark matched the filter, or a benchmark called
 *	perf_skip_with_error().
 */
int perf_main(int argc, char **argv);

/** Text that --help prints above the flags (call before perf_main). */
void perf_describe(const char *text);

/* The timed loop ---------------------------------------------------------- */

/** State::KeepRunning(): true while the benchmark should iterate. */
bool perf_keep_running(struct perf_state *s);

/** State::KeepRunningBatch(n): true while it should run n more. */
bool perf_keep_running_batch(struct perf_state *s, int64_t n);

/* PERF_LOOP's halves; call them through the macro. */
int64_t perf_loop_begin(struct perf_state *s);
void perf_loop_end(struct perf_state *s);

static inline bool
perf_loop_next(struct perf_state *s, int64_t *left)
{
	if (__builtin_expect(*left > 0, 1)) {
		(*left)--;
		return true;
	}
	if (*left == 0)
		perf_loop_end(s);
	return false;
}

/* The timed loop: for (auto _ : state), counted in a register. */
#define PERF_LOOP(s)                                                           \
	for (int64_t perf_left_ = perf_loop_begin(s);                          \
	     perf_loop_next((s), &perf_left_);)

/* The state ------------------------------------------------------------- */

/** state.range(i): the i-th value of this run's argument row. */
int64_t perf_range(struct perf_state *s, int i);
/** Iterations run so far (after the loop: all of them). */
int64_t perf_iterations(struct perf_state *s);
/** This thread's index (0..threads-1) and the number of threads. */
int perf_thread_index(struct perf_state *s);
int perf_threads(struct perf_state *s);

/** SetItemsProcessed / SetBytesProcessed: totals over the whole run. */
void perf_set_items(struct perf_state *s, int64_t n);
void perf_set_bytes(struct perf_state *s, int64_t n);
/** A user counter, reported as is (perf_counter) or per flags. */
void perf_counter(struct perf_state *s, const char *name, double v);
void perf_counter_ex(struct perf_state *s, const char *name, double v,
		     unsigned flags);
/** SetLabel: a note printed beside the result. */
void perf_set_label(struct perf_state *s, const char *label);

/** PauseTiming / ResumeTiming: costly (a clock read each), not per item. */
void perf_pause(struct perf_state *s);
void perf_resume(struct perf_state *s);

/** SkipWithError: report the run as failed; then break out and return. */
void perf_skip_with_error(struct perf_state *s, const char *msg);

/* Optimisation barriers (benchmark::DoNotOptimize / ClobberMemory) ------ */

/*
 * The compiler must assume *p is read here and p escapes: stores to it
 * stay, and so does the work that produced them. Inline: costs nothing.
 */
static inline void
perf_do_not_optimize(const void *p)
{
	__asm__ volatile("" : : "r"(p) : "memory");
}

/* Force a scalar value to be computed (kept in a register or memory). */
#define PERF_KEEP(v) __asm__ volatile("" : : "r,m"(v) : "memory")

/* All pending writes to memory must happen here. */
static inline void
perf_clobber(void)
{
	__asm__ volatile("" : : : "memory");
}

/* Registration macros ------------------------------------------------------ */

#define PERF_NARGS_(...)                                                       \
	(sizeof((const int64_t[]){__VA_ARGS__}) / sizeof(int64_t))

/*
 * PERF_BENCH_SPEC(fn, .field = value, ...): register fn with the given
 * fields of struct perf_bench, e.g.
 *	PERF_BENCH_SPEC(perf_bm_x, .args = (const int64_t[]){1, 2, 3, 4},
 *			.runs = 2, .arity = 2, .unit = PERF_UNIT_US);
 */
#define PERF_BENCH_SPEC(func, ...)                                             \
	static void __attribute__((constructor)) perf_register_##func(void)    \
	{                                                                      \
		const struct perf_bench b_ = {.fn = func, .fn_name = #func,    \
					      __VA_ARGS__};                    \
		perf_register(&b_);                                            \
	}                                                                      \
	struct perf_bench_semicolon_##func

/* One run, no arguments. */
#define PERF_BENCH(func) PERF_BENCH_SPEC(func, .runs = 0)

/* One run per value: PERF_BENCH_ARGS(fn, 96, 1072) -> perf_range(s, 0). */
#define PERF_BENCH_ARGS(func, ...)                                             \
	PERF_BENCH_SPEC(func, .args = (const int64_t[]){__VA_ARGS__},         \
			.runs = (int)PERF_NARGS_(__VA_ARGS__), .arity = 1)

/* main(): perf_describe(text) then perf_main(). */
#define PERF_MAIN(text)                                                        \
	int main(int argc, char **argv)                                        \
	{                                                                      \
		perf_describe(text);                                           \
		return perf_main(argc, argv);                                  \
	}

#ifdef __cplusplus
}
#endif

#endif /* PERF_GBENCH_SHIM_H */
