/*
 * gbench_shim.cc - the C++ side of gbench_shim.h: C benchmarks on Google
 * Benchmark (1.7).
 *
 * A struct perf_state * is the benchmark::State * itself, cast: no wrapper
 * object, nothing allocated per run. perf_register() turns a struct
 * perf_bench into benchmark::RegisterBenchmark(name, lambda) plus the
 * builder calls (Args, Threads, Unit, ...); the library copies everything,
 * so specs may be temporaries. It runs from C constructors before main():
 * libbenchmark's registry is a function-local static in a shared library
 * that is initialised before the executable, so the order is safe.
 *
 * PERF_LOOP: perf_loop_begin() takes the whole run as one batch
 * (KeepRunningBatch(max_iterations) starts the timer and reserves exactly
 * max_iterations), the C loop counts down in a register, and
 * perf_loop_end() calls KeepRunningBatch once more, which stops the timer and
 * returns false: the same protocol as C++'s `for (auto _ : state)`.
 *
 * No C++ exception crosses into C: every entry point that can throw
 * catches and reports.
 */
#include <benchmark/benchmark.h>

#include <atomic>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <string>
#include <vector>

#include "gbench_shim.h"

namespace {

const char *perf_description;
/* some benchmark called perf_skip_with_error(), maybe from several threads */
std::atomic<bool> perf_failed;
/* perf_register() calls that failed: perf_main() refuses to run */
std::atomic<int> perf_bad_specs;

inline benchmark::State &
gb(struct perf_state *s)
{
	return *reinterpret_cast<benchmark::State *>(s);
}

int
perf_bad_spec(const struct perf_bench *b, const char *why)
{
	std::fprintf(stderr, "perf_register(%s): %s\n",
		     b && b->fn_name ? b->fn_name : "?", why);
	perf_bad_specs++;
	return -EINVAL;
}

int
perf_check_spec(const struct perf_bench *b)
{
	if (!b || !b->fn)
		return perf_bad_spec(b, "no benchmark function");
	if (b->runs < 0 || (b->runs > 0 && !b->args))
		return perf_bad_spec(b, "runs > 0 needs args");
	if (b->runs > 0 && (b->arity < 1 || b->arity > PERF_ARITY_MAX))
		return perf_bad_spec(b, "arity must be 1..PERF_ARITY_MAX");
	if (b->threads < 0 || b->repetitions < 0 || b->iterations < 0 ||
	    b->min_time_s < 0)
		return perf_bad_spec(b, "negative threads, repetitions, "
					"iterations or min_time_s");
	if (b->unit < PERF_UNIT_DEFAULT || b->unit > PERF_UNIT_S)
		return perf_bad_spec(b, "unknown unit");
	return 0;
}

void
perf_apply_args(benchmark::internal::Benchmark *bm, const struct perf_bench *b)
{
	for (int r = 0; r < b->runs; r++) {
		const int64_t *row = b->args + (size_t)r * b->arity;
		bm->Args(std::vector<int64_t>(row, row + b->arity));
	}
	if (b->runs > 0 && b->arg_names) {
		std::vector<std::string> names;
		for (int i = 0; i < b->arity; i++)
			names.emplace_back(b->arg_names[i] ? b->arg_names[i]
							   : "");
		bm->ArgNames(names);
	}
}

void
perf_apply_options(benchmark::internal::Benchmark *bm,
		   const struct perf_bench *b)
{
	static const benchmark::TimeUnit units[] = {
		benchmark::kNanosecond, benchmark::kNanosecond,
		benchmark::kMicrosecond, benchmark::kMillisecond,
		benchmark::kSecond,
	};

	if (b->threads > 1)
		bm->Threads(b->threads);
	if (b->repetitions > 0)
		bm->Repetitions(b->repetitions);
	if (b->iterations > 0)
		bm->Iterations(b->iterations);
	if (b->min_time_s > 0)
		bm->MinTime(b->min_time_s);
	if (b->unit != PERF_UNIT_DEFAULT)
		bm->Unit(units[b->unit]);
	if (b->real_time)
		bm->UseRealTime();
}

} /* namespace */

extern "C" int
perf_register(const struct perf_bench *b)
{
	int rc = perf_check_spec(b);

	if (rc)
		return rc;
	try {
		void (*fn)(struct perf_state *) = b->fn;
		auto *bm = benchmark::RegisterBenchmark(
			b->name ? b->name : b->fn_name,
			[fn](benchmark::State &st) {
				fn(reinterpret_cast<struct perf_state *>(&st));
			});
		perf_apply_args(bm, b);
		perf_apply_options(bm, b);
	} catch (const std::exception &e) {
		std::fprintf(stderr, "perf_register(%s): %s\n", b->fn_name,
			     e.what());
		perf_bad_specs++;
		return -ENOMEM;
	}
	return 0;
}

extern "C" void
perf_describe(const char *text)
{
	perf_description = text;
}

static bool
perf_wants_help(int argc, char **argv)
{
	for (int i = 1; i < argc; i++)
		if (!std::strcmp(argv[i], "--help") ||
		    !std::strcmp(argv[i], "-h"))
			return true;
	return false;
}

extern "C" int
perf_main(int argc, char **argv)
{
	try {
		if (perf_wants_help(argc, argv)) {
			std::printf("usage: %s [--benchmark_* flags]\n\n%s%s"
				    "List: --benchmark_list_tests; JSON: "
				    "--benchmark_out=F.json "
				    "--benchmark_out_format=json\n\n",
				    argv[0],
				    perf_description ? perf_description : "",
				    perf_description ? "\n\n" : "");
			std::fflush(stdout);
		}
		if (perf_bad_specs.load()) {
			std::fprintf(stderr, "%s: %d benchmark(s) could not be "
					     "registered (see above)\n",
				     argv[0], perf_bad_specs.load());
			return 1;
		}
		/* --help: prints the library's flags and exits 0 */
		benchmark::Initialize(&argc, argv);
		if (benchmark::ReportUnrecognizedArguments(argc, argv))
			return 1;
		size_t n = benchmark::RunSpecifiedBenchmarks();
		benchmark::Shutdown();
		if (n == 0) {
			std::fprintf(stderr, "%s: no benchmark ran (check "
					     "--benchmark_filter)\n", argv[0]);
			return 1;
		}
	} catch (const std::exception &e) {
		std::fprintf(stderr, "%s: %s\n", argv[0], e.what());
		return 1;
	}
	return perf_failed.load() ? 1 : 0;
}

extern "C" bool
perf_keep_running(struct perf_state *s)
{
	return gb(s).KeepRunning();
}

extern "C" bool
perf_keep_running_batch(struct perf_state *s, int64_t n)
{
	return gb(s).KeepRunningBatch(n);
}

extern "C" int64_t
perf_loop_begin(struct perf_state *s)
{
	benchmark::State &st = gb(s);
	int64_t n = st.max_iterations;

	/* false: an error was reported before the loop; timing has ended */
	if (n > 0 && st.KeepRunningBatch(n))
		return n;
	return -1;
}

extern "C" void
perf_loop_end(struct perf_state *s)
{
	benchmark::State &st = gb(s);

	/* all reserved iterations are used: this call stops the timer */
	(void)st.KeepRunningBatch(st.max_iterations);
}

extern "C" int64_t
perf_range(struct perf_state *s, int i)
{
	return gb(s).range((size_t)i);
}

extern "C" int64_t
perf_iterations(struct perf_state *s)
{
	return gb(s).iterations();
}

extern "C" int
perf_thread_index(struct perf_state *s)
{
	return gb(s).thread_index();
}

extern "C" int
perf_threads(struct perf_state *s)
{
	return gb(s).threads();
}

extern "C" void
perf_set_items(struct perf_state *s, int64_t n)
{
	gb(s).SetItemsProcessed(n);
}

extern "C" void
perf_set_bytes(struct perf_state *s, int64_t n)
{
	gb(s).SetBytesProcessed(n);
}

extern "C" void
perf_counter(struct perf_state *s, const char *name, double v)
{
	gb(s).counters[name] = v;
}

extern "C" void
perf_counter_ex(struct perf_state *s, const char *name, double v,
		unsigned flags)
{
	int f = benchmark::Counter::kDefaults;

	if (flags & PERF_COUNTER_RATE)
		f |= benchmark::Counter::kIsRate;
	if (flags & PERF_COUNTER_AVG_THREADS)
		f |= benchmark::Counter::kAvgThreads;
	if (flags & PERF_COUNTER_AVG_ITERS)
		f |= benchmark::Counter::kAvgIterations;
	gb(s).counters[name] =
		benchmark::Counter(v, (benchmark::Counter::Flags)f);
}

extern "C" void
perf_set_label(struct perf_state *s, const char *label)
{
	gb(s).SetLabel(label);
}

extern "C" void
perf_pause(struct perf_state *s)
{
	gb(s).PauseTiming();
}

extern "C" void
perf_resume(struct perf_state *s)
{
	gb(s).ResumeTiming();
}

extern "C" void
perf_skip_with_error(struct perf_state *s, const char *msg)
{
	perf_failed = true;
	gb(s).SkipWithError(msg);
}
