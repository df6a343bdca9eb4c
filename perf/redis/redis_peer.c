/*
 * redis_peer.c - perf_redis_peer: drives the home-grown peer of authd,
 * Redis + perf/redis/check_reserve.lua, and reports ops/s and latency as
 * one JSON object.
 *
 * A run: parse the options (peer_opts.c); on a control connection load
 * the script, take a run id and note the server's state (peer_server.c);
 * open C connections over T threads and drive pay-later authorizations for
 * warmup_s + seconds, up to P in flight per connection (peer_driver.c,
 * which says how requests travel and latency is measured); check and
 * report (peer_server.c, peer_report.c).
 *
 * Checks: every reply is checked against the rule (an approval leaves
 * available >= 0; a decline for credit saw available < amount; a fresh id
 * is never a duplicate; a retried id gets its first answer back, marked
 * duplicate). At the end (unless --no-check): the sum of holds over users
 * 1..N must have grown by exactly the amounts approved, and the number of
 * keys by the number of fresh request ids (every answer remembered).
 * Request ids are run << 48 | connection << 40 | sequence, with run from
 * INCR perf:run, so runs against one server never reuse an id.
 *
 * Exit status: 0 all answers and the check right; 1 a wrong answer, a
 * failed check or a Redis error; 2 bad usage.
 */
#include <stdio.h>

#include "peer.h"

/* main ------------------------------------------------------------------- */

static int
perf_measure(const struct perf_cfg *cfg)
{
	static struct perf_result res; /* large: the latency histogram */
	struct perf_worker *workers = NULL;
	char sha[64], version[32];
	uint64_t run = 0;
	redisContext *rc = perf_connect(cfg);
	json_t *root;
	int status = 1;

	if (!rc)
		return 1;
	perf_hist_init(&res.lat);
	perf_redis_version(rc, version, sizeof(version));
	if (perf_prepare(cfg, rc, sha, sizeof(sha), &run, &res))
		goto out;
	workers = perf_workers_open(cfg, sha, run);
	if (!perf_workers_ready(cfg, workers)) {
		fprintf(stderr, "perf_redis_peer: could not open %u "
			"connections (see above, or out of memory)\n",
			cfg->conns);
		goto out;
	}
	if (perf_run_workers(cfg, workers, &res) == 0)
		perf_check(cfg, rc, &res);
	root = perf_json_result(
		cfg, perf_json_settings(cfg, sha, version, run), &res);
	if (perf_emit(cfg, root) == 0 && perf_result_ok(&res))
		status = 0;
	json_decref(root);
	perf_summary(cfg, &res);
	if (res.err[0])
		fprintf(stderr, "perf_redis_peer: %s\n", res.err);
out:
	perf_workers_close(cfg, workers);
	redisFree(rc);
	return status;
}

int
main(int argc, char **argv)
{
	struct perf_cfg cfg = {
		.host = "127.0.0.1",
		.script_path = PERF_LUA_DEFAULT,
		.seconds = 10,
		.warmup_s = 1,
		.pipeline = 1,
		.conns = 1,
		.threads = 1,
		.seed = 1,
		.amount_min_fen = 100,
		.amount_max_fen = 200000,
		.retain_s = 7 * 86400,
		.check = true,
	};
	bool help = false;
	int rc = perf_parse_args(argc, argv, &cfg, &help);

	if (help) {
		fputs(perf_usage, stdout);
		return 0;
	}
	if (rc)
		return rc;
	return perf_measure(&cfg);
}
