/*
 * peer_report.c - what perf_redis_peer reports: one JSON object (compact
 * on stdout, indented with --json FILE) and a summary line on stderr.
 *
 * The JSON (perf/redis/smoke_check.cmake and scripts/redis-peer.sh read
 * it): tool, label, pipeline, conns, ops_per_s (measured window), ok,
 * error, settings, measured and total answer counts, latency (count,
 * mean_ns, p50_ns, p90_ns, p99_ns, p999_ns, p9999_ns, max_ns) and check.
 */
#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <stdio.h>

#include "peer.h"

json_t *
perf_json_settings(const struct perf_cfg *cfg, const char *sha,
		   const char *version, uint64_t run)
{
	json_t *s = json_object();
	char where[512];

	if (cfg->socket_path)
		snprintf(where, sizeof(where), "unix:%s", cfg->socket_path);
	else
		snprintf(where, sizeof(where), "tcp:%s:%d", cfg->host,
			 cfg->port);
	json_object_set_new(s, "transport", json_string(where));
	json_object_set_new(s, "redis_version", json_string(version));
	json_object_set_new(s, "script", json_string(cfg->script_path));
	json_object_set_new(s, "script_sha", json_string(sha));
	json_object_set_new(s, "users", json_integer((json_int_t)cfg->users));
	json_object_set_new(s, "seconds", json_real(cfg->seconds));
	json_object_set_new(s, "warmup_s", json_real(cfg->warmup_s));
	json_object_set_new(s, "pipeline", json_integer(cfg->pipeline));
	json_object_set_new(s, "conns", json_integer(cfg->conns));
	json_object_set_new(s, "threads", json_integer(cfg->threads));
	json_object_set_new(s, "amount_min_fen",
			    json_integer(cfg->amount_min_fen));
	json_object_set_new(s, "amount_max_fen",
			    json_integer(cfg->amount_max_fen));
	json_object_set_new(s, "retry_pct", json_integer(cfg->retry_pct));
	json_object_set_new(s, "retain_s", json_integer(cfg->retain_s));
	json_object_set_new(s, "seed", json_integer((json_int_t)cfg->seed));
	json_object_set_new(s, "run", json_integer((json_int_t)run));
	json_object_set_new(s, "holds_before_given",
			    json_boolean(cfg->holds_known));
	return s;
}

static json_t *
perf_json_counts(const struct perf_counts *k)
{
	return json_pack("{s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I}",
			 "ops", (json_int_t)k->ops, "fresh",
			 (json_int_t)k->fresh,
			 "retries", (json_int_t)k->retries, "approved",
			 (json_int_t)k->approved, "declined_credit",
			 (json_int_t)k->declined_credit, "unknown_user",
			 (json_int_t)k->unknown_user, "retry_mismatch",
			 (json_int_t)k->retry_mismatch, "bad_answers",
			 (json_int_t)k->bad_answers, "approved_fen",
			 (json_int_t)k->approved_fen);
}

static json_t *
perf_json_latency(const struct perf_hist *l)
{
	return json_pack(
		"{s:I, s:f, s:I, s:I, s:I, s:I, s:I, s:I}", "count",
		(json_int_t)l->count, "mean_ns", perf_hist_mean(l),
		"p50_ns", (json_int_t)perf_hist_quantile(l, 0.50), "p90_ns",
		(json_int_t)perf_hist_quantile(l, 0.90), "p99_ns",
		(json_int_t)perf_hist_quantile(l, 0.99), "p999_ns",
		(json_int_t)perf_hist_quantile(l, 0.999), "p9999_ns",
		(json_int_t)perf_hist_quantile(l, 0.9999), "max_ns",
		(json_int_t)l->max);
}

static json_t *
perf_json_check(const struct perf_result *res)
{
	if (!res->checked)
		return json_pack("{s:b}", "done", 0);
	return json_pack("{s:b, s:b, s:I, s:I, s:I, s:I, s:I, s:I}", "done", 1,
			 "ok", res->check_ok, "holds_before_fen",
			 (json_int_t)res->before.holds_fen, "holds_after_fen",
			 (json_int_t)res->after.holds_fen, "approved_fen",
			 (json_int_t)res->all.approved_fen, "users_seen",
			 (json_int_t)res->after.users_seen, "keys_added",
			 (json_int_t)(res->after.keys - res->before.keys),
			 "fresh_requests", (json_int_t)res->all.fresh);
}

bool
perf_result_ok(const struct perf_result *res)
{
	return !res->err[0] && res->all.bad_answers == 0 &&
	       res->all.retry_mismatch == 0 && (!res->checked || res->check_ok);
}

json_t *
perf_json_result(const struct perf_cfg *cfg, json_t *settings,
		 const struct perf_result *res)
{
	json_t *root = json_object();
	double ops_s = res->measured_s > 0 ? (double)res->window.ops /
						     res->measured_s : 0;

	json_object_set_new(root, "tool", json_string("perf_redis_peer"));
	if (cfg->label)
		json_object_set_new(root, "label", json_string(cfg->label));
	json_object_set_new(root, "pipeline", json_integer(cfg->pipeline));
	json_object_set_new(root, "conns", json_integer(cfg->conns));
	json_object_set_new(root, "ops_per_s", json_real(round(ops_s)));
	json_object_set_new(root, "ok", json_boolean(perf_result_ok(res)));
	if (res->err[0])
		json_object_set_new(root, "error", json_string(res->err));
	json_object_set_new(root, "settings", settings);
	json_object_set_new(root, "measured", perf_json_counts(&res->window));
	json_object_set_new(root, "latency", perf_json_latency(&res->lat));
	json_object_set_new(root, "total", perf_json_counts(&res->all));
	json_object_set_new(root, "check", perf_json_check(res));
	return root;
}

int
perf_emit(const struct perf_cfg *cfg, json_t *root)
{
	int rc = 0;

	if (json_dumpf(root, stdout, JSON_COMPACT) || fputc('\n', stdout) < 0 ||
	    fflush(stdout)) {
		fprintf(stderr, "perf_redis_peer: cannot write the JSON to "
			"stdout\n");
		rc = -EIO;
	}
	if (cfg->json_path &&
	    json_dump_file(root, cfg->json_path, JSON_INDENT(2))) {
		fprintf(stderr, "perf_redis_peer: cannot write %s\n",
			cfg->json_path);
		rc = -EIO;
	}
	return rc;
}

void
perf_summary(const struct perf_cfg *cfg, const struct perf_result *res)
{
	const struct perf_hist *l = &res->lat;

	fprintf(stderr, "perf_redis_peer: P=%u conns=%u threads=%u: %.0f "
		"ops/s; latency "
		"p50 %.1f us, p99 %.1f us, p99.9 %.1f us; %" PRIu64
		" approved, %" PRIu64 " declined, %" PRIu64 " unknown user; "
		"check %s\n", cfg->pipeline, cfg->conns, cfg->threads,
		(double)res->window.ops / res->measured_s,
		perf_hist_quantile(l, 0.5) / 1e3,
		perf_hist_quantile(l, 0.99) / 1e3,
		perf_hist_quantile(l, 0.999) / 1e3, res->all.approved,
		res->all.declined_credit, res->all.unknown_user,
		!res->checked ? "skipped" : res->check_ok ? "ok" : "FAILED");
}
