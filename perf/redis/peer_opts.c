/*
 * peer_opts.c - perf_redis_peer's command line: the --help text, every
 * option parsed and range-checked (the message names the option and the
 * range), then the combination (one transport, --users, threads <=
 * connections, amounts in order). Bad usage is exit status 2.
 */
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>

#include "peer.h"

const char perf_usage[] =
	"usage: perf_redis_peer (--socket PATH | --port N [--host H])\n"
	"                       --users N [options]\n"
	"\n"
	"Runs pay-later authorizations against Redis + check_reserve.lua\n"
	"for a fixed time: EVALSHA with uniformly random users 1..N and\n"
	"unique request ids, up to P in flight on each of C connections.\n"
	"Prints one JSON object (settings, ops/s, latency percentiles,\n"
	"answer counts, consistency check) on stdout and a summary on\n"
	"stderr. Load the users first (perf_load_users).\n"
	"\n"
	"  --socket PATH       Redis unix socket\n"
	"  --host H --port N   Redis over TCP (default host 127.0.0.1)\n"
	"  --users N           users u:1..u:N to draw from (required)\n"
	"  --seconds S         measured time (default 10)\n"
	"  --warmup S          unmeasured time before it (default 1)\n"
	"  --pipeline P        requests in flight per connection, 1..1024\n"
	"                      (default 1: unpipelined)\n"
	"  --conns C           connections, 1..256 (default 1)\n"
	"  --threads T         threads the connections are shared among,\n"
	"                      1..64, at most C (default 1)\n"
	"  --amount-min FEN    smallest amount (default 100: 1 yuan)\n"
	"  --amount-max FEN    largest amount (default 200000: 2,000 yuan)\n"
	"  --retry-pct X       X% of requests resend an answered request id\n"
	"                      (a gateway retry; default 0)\n"
	"  --retain S          seconds Redis remembers an answer (default\n"
	"                      604800, the engine's 7 days)\n"
	"  --seed S            random seed (default 1)\n"
	"  --script FILE       the Lua script (default " PERF_LUA_DEFAULT ")\n"
	"  --label TEXT        copied into the JSON\n"
	"  --json FILE         also write the JSON (indented) to FILE\n"
	"  --no-check          skip the sum of holds over u:1..u:N taken\n"
	"                      before and after the run\n"
	"  --holds-before FEN  the sum of holds of u:1..u:N now, if known\n"
	"                      (0 after perf_load_users --users N; the last\n"
	"                      run's holds_after_fen): skips the first sum\n"
	"  --help              this text\n"
	"\n"
	"Exit status: 0 all answers and the check are right; 1 a wrong\n"
	"answer, a failed check or a Redis error; 2 bad usage.\n";

static int
perf_opt_u64(const char *opt, const char *s, uint64_t min, uint64_t max,
	     uint64_t *v)
{
	char *end;
	unsigned long long x;

	errno = 0;
	x = strtoull(s, &end, 10);
	if (errno || *s == '-' || *s == '\0' || *end != '\0' || x < min ||
	    x > max) {
		fprintf(stderr, "perf_redis_peer: %s wants an integer in "
			"%" PRIu64 "..%" PRIu64 ", got '%s'\n", opt, min, max,
			s);
		return -EINVAL;
	}
	*v = x;
	return 0;
}

static int
perf_opt_seconds(const char *opt, const char *s, double min, double *v)
{
	char *end;

	errno = 0;
	*v = strtod(s, &end);
	if (errno || *s == '\0' || *end != '\0' || !(*v >= min) ||
	    *v > 86400) {
		fprintf(stderr, "perf_redis_peer: %s wants seconds in "
			"%g..86400, got '%s'\n", opt, min, s);
		return -EINVAL;
	}
	return 0;
}

enum {
	PERF_OPT_SOCKET = 256, PERF_OPT_HOST, PERF_OPT_PORT, PERF_OPT_USERS,
	PERF_OPT_SECONDS, PERF_OPT_WARMUP, PERF_OPT_PIPELINE, PERF_OPT_CONNS,
	PERF_OPT_THREADS,
	PERF_OPT_AMIN, PERF_OPT_AMAX, PERF_OPT_RETRY, PERF_OPT_RETAIN,
	PERF_OPT_SEED, PERF_OPT_SCRIPT, PERF_OPT_LABEL, PERF_OPT_JSON,
	PERF_OPT_NOCHECK, PERF_OPT_HOLDS, PERF_OPT_HELP,
};

static const struct option perf_opts[] = {
	{"socket", required_argument, NULL, PERF_OPT_SOCKET},
	{"host", required_argument, NULL, PERF_OPT_HOST},
	{"port", required_argument, NULL, PERF_OPT_PORT},
	{"users", required_argument, NULL, PERF_OPT_USERS},
	{"seconds", required_argument, NULL, PERF_OPT_SECONDS},
	{"warmup", required_argument, NULL, PERF_OPT_WARMUP},
	{"pipeline", required_argument, NULL, PERF_OPT_PIPELINE},
	{"conns", required_argument, NULL, PERF_OPT_CONNS},
	{"threads", required_argument, NULL, PERF_OPT_THREADS},
	{"amount-min", required_argument, NULL, PERF_OPT_AMIN},
	{"amount-max", required_argument, NULL, PERF_OPT_AMAX},
	{"retry-pct", required_argument, NULL, PERF_OPT_RETRY},
	{"retain", required_argument, NULL, PERF_OPT_RETAIN},
	{"seed", required_argument, NULL, PERF_OPT_SEED},
	{"script", required_argument, NULL, PERF_OPT_SCRIPT},
	{"label", required_argument, NULL, PERF_OPT_LABEL},
	{"json", required_argument, NULL, PERF_OPT_JSON},
	{"no-check", no_argument, NULL, PERF_OPT_NOCHECK},
	{"holds-before", required_argument, NULL, PERF_OPT_HOLDS},
	{"help", no_argument, NULL, PERF_OPT_HELP},
	{NULL, 0, NULL, 0},
};

/* One numeric option into cfg; -EINVAL on a bad value, 1 if not numeric. */
static int
perf_opt_number(struct perf_cfg *cfg, int opt, const char *arg)
{
	uint64_t v = 0;
	int rc = 1;

	switch (opt) {
	case PERF_OPT_PORT:
		rc = perf_opt_u64("--port", arg, 1, 65535, &v);
		cfg->port = (int)v;
		break;
	case PERF_OPT_USERS:
		rc = perf_opt_u64("--users", arg, 1, 1ULL << 40, &cfg->users);
		break;
	case PERF_OPT_PIPELINE:
		rc = perf_opt_u64("--pipeline", arg, 1, PERF_PIPELINE_MAX, &v);
		cfg->pipeline = (unsigned)v;
		break;
	case PERF_OPT_CONNS:
		rc = perf_opt_u64("--conns", arg, 1, PERF_CONNS_MAX, &v);
		cfg->conns = (unsigned)v;
		break;
	case PERF_OPT_THREADS:
		rc = perf_opt_u64("--threads", arg, 1, PERF_THREADS_MAX, &v);
		cfg->threads = (unsigned)v;
		break;
	case PERF_OPT_AMIN:
	case PERF_OPT_AMAX:
		rc = perf_opt_u64(opt == PERF_OPT_AMIN ? "--amount-min"
						       : "--amount-max",
				  arg, 1, 1ULL << 50, &v);
		*(opt == PERF_OPT_AMIN ? &cfg->amount_min_fen
				       : &cfg->amount_max_fen) = (int64_t)v;
		break;
	case PERF_OPT_RETRY:
		rc = perf_opt_u64("--retry-pct", arg, 0, 100, &v);
		cfg->retry_pct = (unsigned)v;
		break;
	case PERF_OPT_RETAIN:
		rc = perf_opt_u64("--retain", arg, 1, 1u << 30, &v);
		cfg->retain_s = (unsigned)v;
		break;
	case PERF_OPT_SEED:
		rc = perf_opt_u64("--seed", arg, 0, UINT64_MAX, &cfg->seed);
		break;
	case PERF_OPT_HOLDS:
		rc = perf_opt_u64("--holds-before", arg, 0, INT64_MAX, &v);
		cfg->holds_before_fen = (int64_t)v;
		cfg->holds_known = true;
		break;
	case PERF_OPT_SECONDS:
		rc = perf_opt_seconds("--seconds", arg, 0.01, &cfg->seconds);
		break;
	case PERF_OPT_WARMUP:
		rc = perf_opt_seconds("--warmup", arg, 0, &cfg->warmup_s);
		break;
	}
	return rc;
}

/* 0: run; otherwise the exit status (0 after --help). */
int
perf_parse_args(int argc, char **argv, struct perf_cfg *cfg, bool *help)
{
	int opt, rc;

	while ((opt = getopt_long(argc, argv, "", perf_opts, NULL)) != -1) {
		rc = perf_opt_number(cfg, opt, optarg);
		if (rc < 0)
			return 2;
		if (rc == 0)
			continue;
		switch (opt) {
		case PERF_OPT_SOCKET: cfg->socket_path = optarg; break;
		case PERF_OPT_HOST: cfg->host = optarg; break;
		case PERF_OPT_SCRIPT: cfg->script_path = optarg; break;
		case PERF_OPT_LABEL: cfg->label = optarg; break;
		case PERF_OPT_JSON: cfg->json_path = optarg; break;
		case PERF_OPT_NOCHECK: cfg->check = false; break;
		case PERF_OPT_HELP: *help = true; return 0;
		default: fputs(perf_usage, stderr); return 2;
		}
	}
	if (optind < argc) {
		fprintf(stderr, "perf_redis_peer: unexpected '%s' (see "
			"--help)\n", argv[optind]);
		return 2;
	}
	if (!cfg->socket_path == !cfg->port) {
		fprintf(stderr, "perf_redis_peer: give --socket PATH or --port "
			"N (not both)\n");
		return 2;
	}
	if (!cfg->users) {
		fprintf(stderr, "perf_redis_peer: --users N is required\n");
		return 2;
	}
	if (cfg->threads > cfg->conns) {
		fprintf(stderr, "perf_redis_peer: --threads %u is more than "
			"--conns %u\n", cfg->threads, cfg->conns);
		return 2;
	}
	if (cfg->amount_min_fen > cfg->amount_max_fen) {
		fprintf(stderr, "perf_redis_peer: --amount-min is above "
			"--amount-max\n");
		return 2;
	}
	return 0;
}
