/*
 * authgen_report.c - what authgen says: the progress line, the final
 * report on stdout and the same (plus the configuration and the latency
 * histogram) as JSON.
 *
 * Rates are over the run: from the first datagram sent to the later of the
 * last one sent and the last answer received. The run fails (exit 1) when
 * any counter in GEN_ERROR_COUNTERS is non-zero or nothing was answered.
 *
 * Concurrency: gen_progress() runs on worker 0 while the others run and
 * reads their counters with relaxed loads; gen_report() runs after every
 * worker returned.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include <arpa/inet.h>
#include <jansson.h>

#include "authgen.h"

const char *const gen_counter_names[GEN_COUNTERS] = {
#define GEN_COUNTER_NAME(name, desc) #name,
	GEN_FOREACH_COUNTER(GEN_COUNTER_NAME)
#undef GEN_COUNTER_NAME
};
const char *const gen_counter_descs[GEN_COUNTERS] = {
#define GEN_COUNTER_DESC(name, desc) desc,
	GEN_FOREACH_COUNTER(GEN_COUNTER_DESC)
#undef GEN_COUNTER_DESC
};

static const char *const op_names[GEN_OPS] = {
	"other", "authorize", "capture", "void", "refund", "repay",
};
static const char *const product_names[GEN_PRODUCTS] = {
	"other", "paylater", "installment", "cash",
};
static const char *const status_names[3] = {"approved", "declined", "error"};
static const char *const note_names[8] = {
	"LARGE_SPEND",   "LOW_AVAILABLE", "OVER_SELF_CAP_SOFT", "TEMP_QUOTA_USED",
	"DUPLICATE",     "INTEREST_FREE", "bit6",               "bit7",
};

static const struct {
	const char *name;
	double q;
} quantiles[] = {
	{"p50", 0.50},    {"p90", 0.90},      {"p99", 0.99},
	{"p99.9", 0.999}, {"p99.99", 0.9999}, {"max", 1.0},
};

#define N_QUANTILES (sizeof(quantiles) / sizeof(quantiles[0]))

static void
add_array(uint64_t *dst, const uint64_t *src, size_t n)
{
	for (size_t i = 0; i < n; i++)
		dst[i] += GEN_RD(src[i]);
}

void
gen_stats_sum(const struct gen_ctx *ctx, bool warm, struct gen_stats *sum,
	      struct perf_hist *hist)
{
	static struct perf_hist one;

	memset(sum, 0, sizeof(*sum));
	if (hist)
		perf_hist_init(hist);
	for (unsigned i = 0; i < ctx->n_workers; i++) {
		const struct gen_stats *s = warm ? &ctx->w[i]->warm
						 : &ctx->w[i]->st;
		uint64_t f = GEN_RD(s->first_tx_ns);

		add_array(sum->c, s->c, GEN_COUNTERS);
		add_array(sum->op_sent, s->op_sent, GEN_OPS);
		add_array(sum->product_sent, s->product_sent, GEN_PRODUCTS);
		add_array(sum->fault_sent, s->fault_sent, GEN_FAULTS);
		add_array(sum->inject, s->inject, GEN_INJECTS);
		add_array(sum->status, s->status, 3);
		add_array(sum->reason, s->reason, AUTH_REASONS + 1);
		add_array(&sum->op_reason[0][0], &s->op_reason[0][0],
			  GEN_OPS * (AUTH_REASONS + 1));
		add_array(sum->notes, s->notes, 8);
		if (f && (!sum->first_tx_ns || f < sum->first_tx_ns))
			sum->first_tx_ns = f;
		if (GEN_RD(s->last_tx_ns) > sum->last_tx_ns)
			sum->last_tx_ns = GEN_RD(s->last_tx_ns);
		if (GEN_RD(s->last_rx_ns) > sum->last_rx_ns)
			sum->last_rx_ns = GEN_RD(s->last_rx_ns);
		if (hist) {
			perf_hist_snapshot(&one, &ctx->w[i]->hist);
			perf_hist_merge(hist, &one);
		}
	}
}

static double
elapsed_s(const struct gen_stats *s)
{
	uint64_t end = s->last_rx_ns > s->last_tx_ns ? s->last_rx_ns
						     : s->last_tx_ns;

	if (!s->first_tx_ns || end <= s->first_tx_ns)
		return 0.0;
	return (double)(end - s->first_tx_ns) / 1e9;
}

static double
per_s(uint64_t n, double s)
{
	return s > 0 ? (double)n / s : 0.0;
}

void
gen_progress(struct gen_ctx *ctx, uint64_t now_ns)
{
	static struct gen_stats prev;
	static struct perf_hist h;
	static uint64_t prev_ns;
	static bool was_warm = true;
	struct gen_stats s;
	bool warm = false;
	double dt;

	for (unsigned i = 0; i < ctx->n_workers; i++)
		warm |= GEN_RD(ctx->w[i]->warm_tsc) != 0;
	if (was_warm && !warm)
		memset(&prev, 0, sizeof(prev)); /* measuring from zero now */
	was_warm = warm;
	gen_stats_sum(ctx, warm, &s, &h);
	dt = prev_ns ? (double)(now_ns - prev_ns) / 1e9 : 1.0;
	printf("%7.1fs%s sent %9.0f/s answered %9.0f/s records %9.0f/s  "
	       "approved %" PRIu64 " declined %" PRIu64 " error %" PRIu64
	       "  lost %" PRIu64 "  p99 %.1f us\n",
	       (double)(now_ns - ctx->unix_ns0) / 1e9, warm ? " warm-up" : "",
	       per_s(s.c[GEN_C_dgrams_sent] - prev.c[GEN_C_dgrams_sent], dt),
	       per_s(s.c[GEN_C_dgrams_answered] - prev.c[GEN_C_dgrams_answered],
		     dt),
	       per_s(s.c[GEN_C_records_answered] -
			     prev.c[GEN_C_records_answered], dt),
	       s.status[0], s.status[1], s.status[2], s.c[GEN_C_dgrams_lost],
	       (double)perf_hist_quantile(&h, 0.99) / 1000.0);
	fflush(stdout);
	prev = s;
	prev_ns = now_ns;
}

static bool
failed(const struct gen_stats *s, uint64_t *errors)
{
	*errors = 0;
	for (unsigned c = 0; c < GEN_COUNTERS; c++)
		if ((GEN_ERROR_COUNTERS >> c) & 1)
			*errors += s->c[c];
	return *errors || s->c[GEN_C_dgrams_answered] == 0;
}

/* ------------------------------------------------------------------------ */
/* Human-readable report                                                      */

static void
print_counts(FILE *f, const char *title, const uint64_t *n,
	     const char *const *names, unsigned k, uint64_t total)
{
	bool any = false;

	fprintf(f, "  %-10s", title);
	for (unsigned i = 0; i < k; i++) {
		if (!n[i])
			continue;
		fprintf(f, "%s%s %" PRIu64, any ? ", " : "", names[i], n[i]);
		if (total)
			fprintf(f, " (%.1f%%)", 100.0 * (double)n[i] / (double)total);
		any = true;
	}
	fprintf(f, "%s\n", any ? "" : "none");
}

static void
print_reasons(FILE *f, const struct gen_stats *s)
{
	const char *names[AUTH_REASONS + 1];

	for (unsigned r = 0; r < AUTH_REASONS; r++)
		names[r] = auth_reason_name(r);
	names[AUTH_REASONS] = "out-of-range";
	print_counts(f, "reasons", s->reason, names, AUTH_REASONS + 1,
		     s->c[GEN_C_records_answered]);
	for (unsigned op = 1; op < GEN_OPS; op++) {
		char title[32];

		if (!s->op_sent[op])
			continue;
		snprintf(title, sizeof(title), " %s", op_names[op]);
		print_counts(f, title, s->op_reason[op], names, AUTH_REASONS + 1,
			     0);
	}
}

static void
print_errors(FILE *f, const struct gen_stats *s)
{
	bool any = false;

	fprintf(f, "  %-10s", "errors");
	for (unsigned c = 0; c < GEN_COUNTERS; c++) {
		if (!((GEN_ERROR_COUNTERS >> c) & 1) || !s->c[c])
			continue;
		fprintf(f, "%s%s %" PRIu64, any ? ", " : "", gen_counter_names[c],
			s->c[c]);
		any = true;
	}
	fprintf(f, "%s\n", any ? "" : "none");
	if (s->c[GEN_C_unexpected_frames])
		fprintf(f, "  %-10sunexpected_frames %" PRIu64
			   " (not answers from authd)\n", "",
			s->c[GEN_C_unexpected_frames]);
}

static void
print_report(FILE *f, const struct gen_ctx *ctx, const struct gen_stats *s,
	     const struct gen_stats *warm, const struct perf_hist *h)
{
	const struct gen_config *cfg = &ctx->cfg;
	double t = elapsed_s(s);
	const char *inj[GEN_INJECTS], *flt[GEN_FAULTS];

	for (unsigned k = 0; k < GEN_INJECTS; k++)
		inj[k] = gen_inject_name(k);
	for (unsigned k = 0; k < GEN_FAULTS; k++)
		flt[k] = gen_fault_name(k);
	fprintf(f, "authgen: %.2f s, %s, %u stream(s), %u-%u records/datagram, "
		   "%u worker(s)\n", t,
		cfg->rate ? "open loop" : "closed loop", cfg->streams,
		cfg->rec_min, cfg->rec_max, ctx->n_workers);
	if (cfg->rate)
		fprintf(f, "  %-10s%" PRIu64 " datagrams/s asked\n", "rate",
			cfg->rate);
	else
		fprintf(f, "  %-10s%u datagrams in flight\n", "window",
			cfg->window);
	if (cfg->warmup_s > 0)
		fprintf(f, "  %-10s%.1f s before: %" PRIu64 " datagrams sent, %"
			   PRIu64 " answered, %" PRIu64 " lost, %" PRIu64
			   " refused by TX, %" PRIu64 " evicted (not counted "
			   "below)\n", "warm-up", cfg->warmup_s,
			warm->c[GEN_C_dgrams_sent], warm->c[GEN_C_dgrams_answered],
			warm->c[GEN_C_dgrams_lost], warm->c[GEN_C_tx_full],
			warm->c[GEN_C_inflight_full]);
	fprintf(f, "  %-10s%" PRIu64 " datagrams, %" PRIu64 " records "
		   "(%.0f datagrams/s)\n", "sent", s->c[GEN_C_dgrams_sent],
		s->c[GEN_C_records_sent], per_s(s->c[GEN_C_dgrams_sent], t));
	fprintf(f, "  %-10s%" PRIu64 " datagrams, %" PRIu64 " records; lost %"
		   PRIu64 " datagrams, %" PRIu64 " records\n", "answered",
		s->c[GEN_C_dgrams_answered], s->c[GEN_C_records_answered],
		s->c[GEN_C_dgrams_lost], s->c[GEN_C_records_lost]);
	fprintf(f, "  %-10s%.0f decisions/s, %.0f datagrams/s\n", "rate",
		per_s(s->c[GEN_C_records_answered], t),
		per_s(s->c[GEN_C_dgrams_answered], t));
	print_counts(f, "status", s->status, status_names, 3,
		     s->c[GEN_C_records_answered]);
	print_reasons(f, s);
	print_counts(f, "notes", s->notes, note_names, 8, 0);
	print_counts(f, "ops sent", s->op_sent, op_names, GEN_OPS,
		     s->c[GEN_C_records_sent]);
	print_counts(f, "products", s->product_sent, product_names,
		     GEN_PRODUCTS, 0);
	print_counts(f, "faults", s->fault_sent, flt, GEN_FAULTS, 0);
	if (s->c[GEN_C_substituted])
		fprintf(f, "  %-10s%" PRIu64 " lifecycle ops sent as "
			   "authorizations (nothing to name yet)\n", "",
			s->c[GEN_C_substituted]);
	fprintf(f, "  %-10s", "latency");
	perf_hist_print(f, h, 1000, "us");
	print_errors(f, s);
	if (ctx->model)
		fprintf(f, "  %-10s%" PRIu64 " records compared, %" PRIu64
			   " mismatches\n", "model", s->c[GEN_C_model_checked],
			s->c[GEN_C_model_mismatches]);
	if (s->c[GEN_C_injected])
		print_counts(f, "injected", s->inject, inj, GEN_INJECTS, 0);
}

/* ------------------------------------------------------------------------ */
/* JSON                                                                       */

static json_t *
ip_json(uint32_t ip)
{
	struct in_addr a = {htonl(ip)};
	char buf[INET_ADDRSTRLEN];

	return json_string(inet_ntop(AF_INET, &a, buf, sizeof(buf)));
}

static json_t *
weights_json(const unsigned *w, const char *const *names, unsigned n)
{
	json_t *o = json_object();

	for (unsigned i = 1; i < n; i++)
		json_object_set_new(o, names[i], json_integer(w[i]));
	return o;
}

static json_t *
config_json(const struct gen_ctx *ctx)
{
	const struct gen_config *c = &ctx->cfg;
	char mac[RTE_ETHER_ADDR_FMT_SIZE];
	json_t *o = json_object(), *faults = json_object(), *inj = json_object();

	rte_ether_format_addr(mac, sizeof(mac), &ctx->dst_mac);
	json_object_set_new(o, "port", json_string(c->port));
	json_object_set_new(o, "src_ip", ip_json(c->src_ip));
	json_object_set_new(o, "dst_ip", ip_json(c->dst_ip));
	json_object_set_new(o, "dst_mac", json_string(mac));
	json_object_set_new(o, "udp_port", json_integer(c->udp_port));
	json_object_set_new(o, "src_port", json_integer(c->src_port));
	json_object_set_new(o, "gateway", json_integer(c->gateway_id));
	json_object_set_new(o, "key_id", json_integer(c->key_id));
	json_object_set_new(o, "workers", json_integer(ctx->n_workers));
	json_object_set_new(o, "streams", json_integer(c->streams));
	json_object_set_new(o, "records_min", json_integer(c->rec_min));
	json_object_set_new(o, "records_max", json_integer(c->rec_max));
	json_object_set_new(o, "users", json_integer((json_int_t)ctx->n_users));
	json_object_set_new(o, "merchants",
			    json_integer((json_int_t)ctx->n_merchants));
	json_object_set_new(o, "seed", json_integer((json_int_t)c->seed));
	json_object_set_new(o, "ids_from", json_string(c->ids_from));
	json_object_set_new(o, "mix", weights_json(c->mix, op_names, GEN_OPS));
	json_object_set_new(o, "products", weights_json(c->products,
							product_names,
							GEN_PRODUCTS));
	json_object_set_new(o, "amounts", json_string(c->amounts_spec));
	for (unsigned f = 0; f < GEN_FAULTS; f++)
		json_object_set_new(faults, gen_fault_name(f),
				    json_real(c->faults_ppm[f] / 10000.0));
	json_object_set_new(o, "faults_pct", faults);
	json_object_set_new(o, "duration_s", json_real(c->duration_s));
	json_object_set_new(o, "warmup_s", json_real(c->warmup_s));
	json_object_set_new(o, "count", json_integer((json_int_t)c->count));
	json_object_set_new(o, "mode", json_string(c->rate ? "open" : "closed"));
	json_object_set_new(o, "rate", json_integer((json_int_t)c->rate));
	json_object_set_new(o, "window", json_integer(c->window));
	json_object_set_new(o, "inflight", json_integer(c->inflight));
	json_object_set_new(o, "timeout_ms", json_integer(c->timeout_ms));
	json_object_set_new(o, "remember", json_integer(c->remember));
	json_object_set_new(o, "run_tag", json_integer(c->run_tag));
	json_object_set_new(o, "check_model", json_string(c->check_model));
	json_object_set_new(o, "clock_fixed_s",
			    c->clock_fixed_set ? json_integer(c->clock_fixed_s)
					       : json_null());
	json_object_set_new(o, "seq", json_string(c->seq_loose ? "loose"
							       : "exact"));
	for (unsigned k = 0; k < GEN_INJECTS; k++)
		json_object_set_new(inj, gen_inject_name(k),
				    json_integer(c->inject[k]));
	json_object_set_new(o, "inject", inj);
	return o;
}

static json_t *
named_counts(const uint64_t *n, const char *const *names, unsigned k,
	     bool skip_zero)
{
	json_t *o = json_object();

	for (unsigned i = 0; i < k; i++)
		if (n[i] || !skip_zero)
			json_object_set_new(o, names[i],
					    json_integer((json_int_t)n[i]));
	return o;
}

static int
bucket_json(uint64_t lo, uint64_t hi, uint64_t n, void *arg)
{
	json_array_append_new(arg, json_pack("[I,I,I]", (json_int_t)lo,
					     (json_int_t)hi, (json_int_t)n));
	return 0;
}

static json_t *
latency_json(const struct perf_hist *h)
{
	json_t *o = json_object(), *b = json_array();

	json_object_set_new(o, "count", json_integer((json_int_t)h->count));
	json_object_set_new(o, "min", json_integer(h->count ? (json_int_t)h->min
							    : 0));
	json_object_set_new(o, "mean", json_real(perf_hist_mean(h)));
	for (unsigned i = 0; i < N_QUANTILES; i++)
		json_object_set_new(o, quantiles[i].name,
				    json_integer((json_int_t)perf_hist_quantile(
					    h, quantiles[i].q)));
	perf_hist_foreach(h, bucket_json, b);
	json_object_set_new(o, "histogram", b);
	json_object_set_new(o, "histogram_format",
			    json_string("[lo_ns, hi_ns, count] per non-empty "
					"bucket, 1/128 relative width"));
	return o;
}

static json_t *
reasons_json(const uint64_t *n)
{
	json_t *o = json_object();

	for (unsigned r = 0; r < AUTH_REASONS; r++)
		if (n[r])
			json_object_set_new(o, auth_reason_name(r),
					    json_integer((json_int_t)n[r]));
	if (n[AUTH_REASONS])
		json_object_set_new(o, "out-of-range",
				    json_integer((json_int_t)n[AUTH_REASONS]));
	return o;
}

static json_t *
results_json(const struct gen_ctx *ctx, const struct gen_stats *s,
	     const struct perf_hist *h)
{
	json_t *o = json_object(), *by_op = json_object(), *inj = json_object();
	double t = elapsed_s(s);
	const char *flt[GEN_FAULTS];

	for (unsigned k = 0; k < GEN_FAULTS; k++)
		flt[k] = gen_fault_name(k);
	json_object_set_new(o, "elapsed_s", json_real(t));
	for (unsigned c = 0; c < GEN_COUNTERS; c++)
		json_object_set_new(o, gen_counter_names[c],
				    json_integer((json_int_t)s->c[c]));
	json_object_set_new(o, "decisions_per_s",
			    json_real(per_s(s->c[GEN_C_records_answered], t)));
	json_object_set_new(o, "datagrams_per_s",
			    json_real(per_s(s->c[GEN_C_dgrams_answered], t)));
	json_object_set_new(o, "sent_datagrams_per_s",
			    json_real(per_s(s->c[GEN_C_dgrams_sent], t)));
	json_object_set_new(o, "status", named_counts(s->status, status_names,
						      3, false));
	json_object_set_new(o, "reasons", reasons_json(s->reason));
	for (unsigned op = 1; op < GEN_OPS; op++)
		json_object_set_new(by_op, op_names[op],
				    reasons_json(s->op_reason[op]));
	json_object_set_new(o, "reasons_by_op", by_op);
	json_object_set_new(o, "notes", named_counts(s->notes, note_names, 6,
						     false));
	json_object_set_new(o, "ops_sent", named_counts(s->op_sent, op_names,
							GEN_OPS, true));
	json_object_set_new(o, "products_sent",
			    named_counts(s->product_sent, product_names,
					 GEN_PRODUCTS, true));
	json_object_set_new(o, "faults_sent", named_counts(s->fault_sent, flt,
							   GEN_FAULTS, false));
	for (unsigned k = 0; k < GEN_INJECTS; k++) {
		json_t *e = json_object();

		json_object_set_new(e, "sent",
				    json_integer((json_int_t)s->inject[k]));
		json_object_set_new(e, "drop_cause", json_string(auth_drop_name(
						gen_inject_drop(k))));
		json_object_set_new(inj, gen_inject_name(k), e);
	}
	json_object_set_new(o, "injected_by_kind", inj);
	json_object_set_new(o, "latency_ns", latency_json(h));
	(void)ctx;
	return o;
}

static json_t *
warmup_json(const struct gen_ctx *ctx, const struct gen_stats *w)
{
	json_t *o = json_object();

	json_object_set_new(o, "seconds", json_real(ctx->cfg.warmup_s));
	json_object_set_new(o, "dgrams_sent",
			    json_integer((json_int_t)w->c[GEN_C_dgrams_sent]));
	json_object_set_new(o, "dgrams_answered",
			    json_integer((json_int_t)w->c[GEN_C_dgrams_answered]));
	json_object_set_new(o, "records_answered",
			    json_integer((json_int_t)w->c[GEN_C_records_answered]));
	for (unsigned c = GEN_C_dgrams_lost; c <= GEN_C_inflight_full; c++)
		if (c == GEN_C_dgrams_lost || c == GEN_C_late_answers ||
		    c == GEN_C_tx_full || c == GEN_C_inflight_full)
			json_object_set_new(o, gen_counter_names[c],
					    json_integer((json_int_t)w->c[c]));
	return o;
}

static int
write_json(const struct gen_ctx *ctx, const struct gen_stats *s,
	   const struct gen_stats *warm, const struct perf_hist *h, bool ok)
{
	json_t *root = json_object();
	char tmp[PATH_MAX + 16];
	int rc;

	json_object_set_new(root, "tool", json_string("authgen"));
	json_object_set_new(root, "config", config_json(ctx));
	json_object_set_new(root, "results", results_json(ctx, s, h));
	json_object_set_new(json_object_get(root, "results"), "warmup",
			    warmup_json(ctx, warm));
	json_object_set_new(root, "ok", json_boolean(ok));
	/* Written aside and renamed: a reader never sees half a file. */
	snprintf(tmp, sizeof(tmp), "%s.tmp", ctx->cfg.json_path);
	rc = json_dump_file(root, tmp, JSON_INDENT(1) | JSON_SORT_KEYS);
	json_decref(root);
	if (rc == 0 && rename(tmp, ctx->cfg.json_path))
		rc = -1;
	if (rc)
		fprintf(stderr, "authgen: cannot write %s: %s\n",
			ctx->cfg.json_path, strerror(errno));
	return rc;
}

int
gen_report(struct gen_ctx *ctx)
{
	static struct perf_hist h;
	static struct gen_stats s, warm;
	uint64_t errors;
	bool bad;

	gen_stats_sum(ctx, false, &s, &h);
	gen_stats_sum(ctx, true, &warm, NULL);
	bad = failed(&s, &errors);
	if (!ctx->cfg.quiet)
		print_report(stdout, ctx, &s, &warm, &h);
	fflush(stdout);
	if (ctx->cfg.json_path[0] && write_json(ctx, &s, &warm, &h, !bad))
		return 1;
	if (bad)
		fprintf(stderr, "authgen: FAILED: %" PRIu64 " error(s)%s\n",
			errors, s.c[GEN_C_dgrams_answered] ? ""
							   : ", no answer at all");
	return bad ? 1 : 0;
}
