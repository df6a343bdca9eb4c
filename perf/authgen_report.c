/*
 * authgen_report.c - what authgen says: the progress line, the final
 * report on stdout and the same (plus the configuration and the latency
 * histogram) as JSON.
 *
 * Rates are over the run: from the first datagram sent to the later of the
 * last one sent and the last answer received. The run fails (exit 1) when
 * any counter in GEN_ERROR_COUNTERS is non-zero or nothing was answered.
 *
 * Throughput over time: gen_tick() takes one sample a second (sent,
 * answered by status, lost, and the p99 of the datagrams answered in that
 * second, from the difference of two histogram snapshots). At most
 * GEN_SAMPLES_MAX are kept: when full, neighbours are merged in pairs and
 * each sample covers twice as many seconds from then on (counts add up;
 * the p99 of a merged sample is the larger of the two, an upper bound), so
 * memory is bounded whatever the duration. --plot writes them, and the
 * latency histogram as a percentile curve, as data files next to two PNGs
 * drawn by gnuplot with perf/authgen_plot.gp.
 *
 * Concurrency: gen_tick() runs on worker 0 while the others run and
 * reads their counters with relaxed loads; gen_report() runs after every
 * worker returned.
 */
#include <errno.h>
#include <inttypes.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include <arpa/inet.h>
#include <jansson.h>
#include <rte_cycles.h>

extern char **environ;

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
		add_array(sum->dist_draws, s->dist_draws, 2);
		add_array(sum->dist_top, s->dist_top, 2);
		add_array(sum->hot, s->hot, GEN_HOT_COUNTS);
		add_array(sum->attack_sent, s->attack_sent, GEN_ATTACKS);
		add_array(&sum->attack_status[0][0], &s->attack_status[0][0],
			  GEN_ATTACKS * 3);
		add_array(&sum->attack_reason[0][0], &s->attack_reason[0][0],
			  GEN_ATTACKS * (AUTH_REASONS + 1));
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

/* ------------------------------------------------------------------------ */
/* Throughput over time                                                       */

static void
sample_add(struct gen_sample *a, const struct gen_sample *b)
{
	double dt = a->dt_s + b->dt_s;

	/* the offered rate is a mean over the sample: weigh by time */
	a->offered = dt > 0 ? (uint64_t)(((double)a->offered * a->dt_s +
					  (double)b->offered * b->dt_s) / dt)
			    : b->offered;
	a->t_s = b->t_s;
	a->dt_s = dt;
	a->sent_dgrams += b->sent_dgrams;
	a->sent_records += b->sent_records;
	a->answered_dgrams += b->answered_dgrams;
	a->answered_records += b->answered_records;
	for (unsigned i = 0; i < 3; i++)
		a->status[i] += b->status[i];
	a->lost_dgrams += b->lost_dgrams;
	if (b->p99_ns > a->p99_ns)
		a->p99_ns = b->p99_ns;
	a->warm = a->ticks ? a->warm & b->warm : b->warm;
	a->ticks += b->ticks;
}

/* Keep @p x (one tick); full: merge neighbours, samples cover 2x ticks. */
static void
sample_push(struct gen_ctx *c, const struct gen_sample *x, bool final)
{
	if (!c->samples) {
		c->samples = calloc(GEN_SAMPLES_MAX, sizeof(*c->samples));
		c->sample_ticks = 1;
		if (!c->samples)
			return; /* no samples: the report says none */
	}
	if (x != &c->pending)
		sample_add(&c->pending, x);
	if (c->pending.ticks < c->sample_ticks && !final)
		return;
	if (c->n_samples == GEN_SAMPLES_MAX) {
		for (unsigned i = 0; i < GEN_SAMPLES_MAX / 2; i++) {
			struct gen_sample m = c->samples[2 * i];

			sample_add(&m, &c->samples[2 * i + 1]);
			c->samples[i] = m;
		}
		c->n_samples = GEN_SAMPLES_MAX / 2;
		c->sample_ticks *= 2;
	}
	c->samples[c->n_samples++] = c->pending;
	memset(&c->pending, 0, sizeof(c->pending));
}

/* p99 of what @p now holds beyond @p before (bucket by bucket). */
static uint64_t
p99_since(const struct perf_hist *now, const struct perf_hist *before)
{
	static struct perf_hist d;

	perf_hist_init(&d);
	for (unsigned i = 0; i < PERF_HIST_BUCKETS; i++) {
		d.b[i] = now->b[i] - before->b[i];
		d.count += d.b[i];
	}
	d.min = 0;
	d.max = now->max;
	return perf_hist_quantile(&d, 0.99);
}

/*
 * Offered datagrams/s over the last interval: --rate, times double11's
 * ramp (worker 0's), the mean of its ends (exact on a linear piece).
 */
static uint64_t
offered_mean(const struct gen_ctx *ctx)
{
	static uint32_t prev_pm; /* at the start of the interval */
	uint32_t pm, mean;

	if (!ctx->cfg.rate || ctx->rp)
		return 0;
	if (!prev_pm)
		prev_pm = ctx->cfg.profile == GEN_PROFILE_DOUBLE11
				  ? GEN_D11_BASE_PERMILLE : 1000;
	pm = GEN_RD(ctx->w[0]->offered_pm);
	mean = (pm + prev_pm + 1) / 2;
	prev_pm = pm;
	return ctx->cfg.rate * mean / 1000;
}

void
gen_tick(struct gen_ctx *ctx, uint64_t now_ns, bool final)
{
	static struct gen_stats prev;
	static struct perf_hist h, prev_h;
	static uint64_t prev_ns;
	static bool was_warm = true;
	struct gen_stats s;
	struct gen_sample x = {0};
	bool warm = false;

	for (unsigned i = 0; i < ctx->n_workers; i++)
		warm |= GEN_RD(ctx->w[i]->warm_tsc) != 0;
	if (was_warm && !warm) { /* measuring from zero now */
		memset(&prev, 0, sizeof(prev));
		perf_hist_init(&prev_h);
	}
	was_warm = warm;
	gen_stats_sum(ctx, warm, &s, &h);
	x.t_s = (double)(now_ns - ctx->unix_ns0) / 1e9;
	x.dt_s = (double)(now_ns - (prev_ns ? prev_ns : ctx->unix_ns0)) / 1e9;
	x.sent_dgrams = s.c[GEN_C_dgrams_sent] - prev.c[GEN_C_dgrams_sent];
	x.sent_records = s.c[GEN_C_records_sent] - prev.c[GEN_C_records_sent];
	x.answered_dgrams = s.c[GEN_C_dgrams_answered] -
			    prev.c[GEN_C_dgrams_answered];
	x.answered_records = s.c[GEN_C_records_answered] -
			     prev.c[GEN_C_records_answered];
	for (unsigned i = 0; i < 3; i++)
		x.status[i] = s.status[i] - prev.status[i];
	x.lost_dgrams = s.c[GEN_C_dgrams_lost] - prev.c[GEN_C_dgrams_lost];
	x.p99_ns = warm ? 0 : p99_since(&h, &prev_h);
	x.offered = offered_mean(ctx);
	x.ticks = 1;
	x.warm = warm;
	if (!final || x.dt_s > 0.001)
		sample_push(ctx, &x, final);
	else if (ctx->pending.ticks)
		sample_push(ctx, &ctx->pending, true); /* flush what waits */
	if (ctx->cfg.progress && !final) {
		printf("%7.1fs%s sent %9.0f/s answered %9.0f/s records %9.0f/s  "
		       "approved %" PRIu64 " declined %" PRIu64 " error %" PRIu64
		       "  lost %" PRIu64 "  p99 %.1f us (last second %.1f us)\n",
		       x.t_s, warm ? " warm-up" : "",
		       per_s(x.sent_dgrams, x.dt_s), per_s(x.answered_dgrams, x.dt_s),
		       per_s(x.answered_records, x.dt_s), s.status[0], s.status[1],
		       s.status[2], s.c[GEN_C_dgrams_lost],
		       (double)perf_hist_quantile(&h, 0.99) / 1000.0,
		       (double)x.p99_ns / 1000.0);
		fflush(stdout);
	}
	prev = s;
	prev_h = h;
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

static const char *
mode_name(const struct gen_config *cfg)
{
	static char buf[64];

	if (cfg->replay_path[0] && cfg->speed_milli == 0)
		return "--max (closed loop)";
	if (cfg->replay_path[0]) {
		snprintf(buf, sizeof(buf), "at %.3gx the recorded pace",
			 cfg->speed_milli / 1000.0);
		return buf;
	}
	return cfg->rate ? "open loop" : "closed loop";
}

/* "throughput: 12 samples of 1 s; peak 1234 answered/s at 5 s" */
static void
print_samples(FILE *f, const struct gen_ctx *ctx)
{
	double best = 0, at = 0;

	for (unsigned i = 0; i < ctx->n_samples; i++) {
		const struct gen_sample *x = &ctx->samples[i];
		double r = per_s(x->answered_dgrams, x->dt_s);

		if (!x->warm && r > best) {
			best = r;
			at = x->t_s;
		}
	}
	fprintf(f, "  %-10s%u samples of %u s; the best: %.0f datagrams/s "
		   "answered, in the sample ending at %.0f s\n", "over time",
		ctx->n_samples, ctx->sample_ticks ? ctx->sample_ticks : 1, best,
		at);
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
	if (ctx->rp)
		fprintf(f, "authgen: %.2f s, replay %s, %u stream(s), %u "
			   "worker(s)\n", t, mode_name(cfg), cfg->streams,
			ctx->n_workers);
	else
		fprintf(f, "authgen: %.2f s, %s, %u stream(s), %u-%u "
			   "records/datagram, %u worker(s)\n", t, mode_name(cfg),
			cfg->streams, cfg->rec_min, cfg->rec_max, ctx->n_workers);
	if (ctx->rp && cfg->speed_milli == 0)
		fprintf(f, "  %-10s%u datagrams in flight\n", "window",
			cfg->window);
	else if (ctx->rp)
		fprintf(f, "  %-10s%.3gx the recorded pace\n", "speed",
			cfg->speed_milli / 1000.0);
	else if (cfg->rate)
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
	if (!ctx->rp)
		print_counts(f, "faults", s->fault_sent, flt, GEN_FAULTS, 0);
	if (s->c[GEN_C_substituted])
		fprintf(f, "  %-10s%" PRIu64 " lifecycle ops sent as "
			   "authorizations (nothing to name yet)\n", "",
			s->c[GEN_C_substituted]);
	gen_profile_print(f, ctx, s);
	fprintf(f, "  %-10s", "latency");
	perf_hist_print(f, h, 1000, "us");
	print_errors(f, s);
	if (ctx->model)
		fprintf(f, "  %-10s%" PRIu64 " records compared, %" PRIu64
			   " mismatches\n", "model", s->c[GEN_C_model_checked],
			s->c[GEN_C_model_mismatches]);
	if (s->c[GEN_C_injected])
		print_counts(f, "injected", s->inject, inj, GEN_INJECTS, 0);
	if (ctx->rp) {
		gen_replay_print(f, ctx->rp);
		fprintf(f, "  %-10s%" PRIu64 " records compared with the "
			   "recorded answer: %" PRIu64 " mismatches, %" PRIu64
			   " equal but for other fields; %" PRIu64 " records "
			   "had no recorded answer\n", "verified",
			s->c[GEN_C_replay_checked], s->c[GEN_C_replay_mismatches],
			s->c[GEN_C_replay_other_diffs],
			s->c[GEN_C_replay_unverified]);
	}
	if (cfg->record_path[0])
		fprintf(f, "  %-10s%s: %" PRIu64 " frames (%" PRIu64 " requests, %"
			   PRIu64 " answers)%s%s\n", "record", cfg->record_path,
			ctx->rec_frames, ctx->rec_requests, ctx->rec_answers,
			s->c[GEN_C_record_waits] ? ", the sender waited for the "
						   "writer" : "",
			ctx->rec_error ? ", WRITE ERROR" : "");
	print_samples(f, ctx);
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
	json_object_set_new(o, "users_dist", json_string(c->users_dist.spec));
	json_object_set_new(o, "merchants_dist",
			    json_string(c->merchants_dist.spec));
	json_object_set_new(o, "profile",
			    json_string(c->profile == GEN_PROFILE_DOUBLE11 ? "double11"
					: c->profile == GEN_PROFILE_CASHOUT ? "cashout"
									    : "none"));
	json_object_set_new(o, "cashout_pct", json_integer(c->cashout_pct));
	json_object_set_new(o, "record", json_string(c->record_path));
	json_object_set_new(o, "record_answers", json_boolean(c->record_answers));
	json_object_set_new(o, "replay", json_string(c->replay_path));
	json_object_set_new(o, "speed",
			    c->replay_path[0] && c->speed_milli
				    ? json_real(c->speed_milli / 1000.0)
				    : json_null());
	json_object_set_new(o, "replay_max",
			    json_boolean(c->replay_path[0] && !c->speed_milli));
	json_object_set_new(o, "plot", json_string(c->plot_prefix));
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
samples_json(const struct gen_ctx *ctx)
{
	json_t *a = json_array();

	for (unsigned i = 0; i < ctx->n_samples; i++) {
		const struct gen_sample *x = &ctx->samples[i];

		json_array_append_new(a, json_pack(
			"{s:f, s:f, s:b, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I, "
			"s:I, s:I}",
			"t_s", x->t_s, "dt_s", x->dt_s, "warm", x->warm,
			"sent_dgrams", (json_int_t)x->sent_dgrams,
			"sent_records", (json_int_t)x->sent_records,
			"answered_dgrams", (json_int_t)x->answered_dgrams,
			"answered_records", (json_int_t)x->answered_records,
			"approved", (json_int_t)x->status[0],
			"declined", (json_int_t)x->status[1],
			"error", (json_int_t)x->status[2],
			"lost_dgrams", (json_int_t)x->lost_dgrams,
			"p99_ns", (json_int_t)x->p99_ns,
			"offered_dgrams_per_s", (json_int_t)x->offered));
	}
	return a;
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
	if (!ctx->rp)
		json_object_set_new(o, "profile", gen_profile_json(ctx, s));
	if (ctx->rp)
		json_object_set_new(o, "replay", gen_replay_json(ctx->rp));
	if (ctx->cfg.record_path[0])
		json_object_set_new(o, "record", json_pack(
			"{s:s, s:I, s:I, s:I, s:b}", "file", ctx->cfg.record_path,
			"frames", (json_int_t)ctx->rec_frames,
			"requests", (json_int_t)ctx->rec_requests,
			"answers", (json_int_t)ctx->rec_answers,
			"write_error", ctx->rec_error));
	json_object_set_new(o, "samples_seconds_each",
			    json_integer(ctx->sample_ticks ? ctx->sample_ticks : 1));
	json_object_set_new(o, "samples", samples_json(ctx));
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

/* ------------------------------------------------------------------------ */
/* Plots                                                                      */

/* The HDR-style percentile curve: x = 1 / (1 - q), latency in us. */
static int
write_latency_dat(const char *path, const struct perf_hist *h)
{
	FILE *f = fopen(path, "w");
	uint64_t seen = 0;

	if (!f)
		return -errno;
	fprintf(f, "# authgen latency by percentile: percentile_pct "
		   "x=1/(1-q) latency_us\n");
	if (h->count)
		fprintf(f, "0 1 %.3f\n", (double)h->min / 1000.0);
	for (unsigned i = 0; i < PERF_HIST_BUCKETS; i++) {
		double q;
		uint64_t v;

		if (!h->b[i])
			continue;
		seen += h->b[i];
		q = (double)seen / (double)h->count;
		v = perf_hist_bucket_hi(i) < h->max ? perf_hist_bucket_hi(i)
						    : h->max;
		/* The last point (q = 1) goes where HDR plots put the max. */
		fprintf(f, "%.6f %.6g %.3f\n", 100.0 * q,
			seen < h->count ? 1.0 / (1.0 - q) : (double)h->count,
			(double)v / 1000.0);
	}
	return fclose(f) ? -errno : 0;
}

static int
write_throughput_dat(const char *path, const struct gen_ctx *ctx)
{
	FILE *f = fopen(path, "w");

	if (!f)
		return -errno;
	fprintf(f, "# authgen throughput over time: t_s offered_dgrams_s "
		   "sent_dgrams_s answered_dgrams_s lost_dgrams_s approved_s "
		   "declined_s error_s p99_us warm\n");
	for (unsigned i = 0; i < ctx->n_samples; i++) {
		const struct gen_sample *x = &ctx->samples[i];
		double d = x->dt_s;

		fprintf(f, "%.3f %" PRIu64 " %.1f %.1f %.1f %.1f %.1f %.1f %.3f "
			   "%u\n", x->t_s, x->offered, per_s(x->sent_dgrams, d),
			per_s(x->answered_dgrams, d), per_s(x->lost_dgrams, d),
			per_s(x->status[0], d), per_s(x->status[1], d),
			per_s(x->status[2], d), (double)x->p99_ns / 1000.0,
			x->warm);
	}
	return fclose(f) ? -errno : 0;
}

/* Whether @p prog is an executable file in $PATH. */
static bool
in_path(const char *prog)
{
	const char *p = getenv("PATH");
	char dir[PATH_MAX + 64];

	while (p && *p) {
		size_t n = strcspn(p, ":");

		if (n && n < PATH_MAX) {
			snprintf(dir, sizeof(dir), "%.*s/%s", (int)n, p, prog);
			if (access(dir, X_OK) == 0)
				return true;
		}
		p += n + (p[n] == ':');
	}
	return false;
}

/* gnuplot -e "lat='...'; ..." SCRIPT; 0 when it exited 0. */
static int
run_gnuplot(const struct gen_ctx *ctx, const char *lat, const char *thr)
{
	const struct gen_config *c = &ctx->cfg;
	char vars[4 * PATH_MAX + 256];
	char *argv[] = {"gnuplot", "-e", vars, (char *)c->plot_script, NULL};
	int st;
	pid_t pid;

	snprintf(vars, sizeof(vars),
		 "lat='%s'; thr='%s'; out='%s'; subtitle='%s, %u worker(s), "
		 "records %u-%u'", lat, thr, c->plot_prefix, mode_name(c),
		 ctx->n_workers, c->rec_min, c->rec_max);
	if (posix_spawnp(&pid, "gnuplot", NULL, NULL, argv, environ))
		return -errno;
	if (waitpid(pid, &st, 0) < 0)
		return -errno;
	return WIFEXITED(st) && WEXITSTATUS(st) == 0 ? 0 : -EIO;
}

static void
gen_plot(const struct gen_ctx *ctx, const struct perf_hist *h)
{
	const char *prefix = ctx->cfg.plot_prefix;
	char lat[PATH_MAX + 32], thr[PATH_MAX + 32];
	int rc;

	if (strchr(prefix, '\'') || strchr(ctx->cfg.plot_script, '\'')) {
		fprintf(stderr, "authgen: --plot: no quote (') in paths, "
				"please: no plots\n");
		return;
	}
	snprintf(lat, sizeof(lat), "%s-latency.dat", prefix);
	snprintf(thr, sizeof(thr), "%s-throughput.dat", prefix);
	rc = write_latency_dat(lat, h);
	if (rc == 0)
		rc = write_throughput_dat(thr, ctx);
	if (rc) {
		fprintf(stderr, "authgen: --plot %s: %s\n", prefix, strerror(-rc));
		return;
	}
	if (!in_path("gnuplot")) {
		fprintf(stderr, "authgen: warning: gnuplot not found: no plots "
				"(the data is in %s and %s)\n", lat, thr);
		return;
	}
	if (access(ctx->cfg.plot_script, R_OK)) {
		fprintf(stderr, "authgen: warning: %s: %s: no plots (see "
				"--plot-script)\n", ctx->cfg.plot_script,
			strerror(errno));
		return;
	}
	rc = run_gnuplot(ctx, lat, thr);
	if (rc)
		fprintf(stderr, "authgen: warning: gnuplot failed (%s): no "
				"plots\n", strerror(-rc));
	else if (!ctx->cfg.quiet)
		printf("  %-10s%s-latency.png, %s-throughput.png\n", "plots",
		       prefix, prefix);
}

int
gen_report(struct gen_ctx *ctx)
{
	static struct perf_hist h;
	static struct gen_stats s, warm;
	uint64_t errors;
	bool bad;

	gen_tick(ctx, gen_tsc_to_ns(ctx, rte_rdtsc()), true);
	gen_stats_sum(ctx, false, &s, &h);
	gen_stats_sum(ctx, true, &warm, NULL);
	bad = failed(&s, &errors) || ctx->rec_error;
	if (!ctx->cfg.quiet)
		print_report(stdout, ctx, &s, &warm, &h);
	fflush(stdout);
	if (ctx->cfg.plot_prefix[0])
		gen_plot(ctx, &h);
	if (ctx->cfg.json_path[0] && write_json(ctx, &s, &warm, &h, !bad))
		return 1;
	if (bad)
		fprintf(stderr, "authgen: FAILED: %" PRIu64 " error(s)%s\n",
			errors, s.c[GEN_C_dgrams_answered] ? ""
							   : ", no answer at all");
	return bad ? 1 : 0;
}
