/*
 * stats.c - the engine's counters for readers outside the data path: DPDK
 * telemetry commands (/authd/stats, /authd/lcore, /authd/drops,
 * /authd/reasons), the `stats` answer of the control socket, and the
 * Prometheus families of authd --metrics (dp_stats_prom, written through
 * the metrics room's writer; docs/metrics.md lists them).
 *
 * Owns nothing but the telemetry registration and the start time. The
 * counters belong to the dataplane lcores (struct dp_stats, one writer
 * each); readers here use plain loads of aligned 64-bit words, so a value may
 * be a loop old but is never torn. Totals are sums of such loads, so two
 * counters may disagree by a burst in flight.
 *
 * Names come from the X-macro lists (DP_FOREACH_COUNTER, AUTH_FOREACH_DROP
 * through auth_drop_name(), NIC_FOREACH_CAUSE through nic_cause_name(),
 * AUTH_FOREACH_REASON through auth_reason_name()), never typed twice.
 * Telemetry dictionary names may hold only letters, digits, '_' and '/', so
 * the nic causes' dashes become underscores there.
 *
 * Concurrency: telemetry callbacks run on DPDK's telemetry thread while the
 * engine runs and shuts down; dp_telemetry_stop() (under a mutex every
 * callback takes) makes them answer nothing before main.c frees what they
 * read (the ledger worker). dp_stats_prom runs on the metrics thread, which
 * main.c stops (joins) before it stops the workers whose stats it reads.
 *
 * Prometheus names: authd_ prefix, base units (seconds, bytes), _total on
 * counters; the engine's own lists give the label values (reasons, ops,
 * products, drop causes, risk verdicts, export states) and the per-lcore
 * counter families, so nothing is typed twice. Histograms are converted
 * exactly (metrics.h: a bucket counts only engine buckets wholly at or
 * below its bound).
 */
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <jansson.h>
#include <rte_cycles.h>
#include <rte_log.h>
#include <rte_telemetry.h>
#include <rte_version.h>

#include "dp.h"
#include "export.h"
#include "metrics.h"

static const char *const dp_counter_names[DP_COUNTERS] = {
#define DP_COUNTER_NAME(name, desc) #name,
	DP_FOREACH_COUNTER(DP_COUNTER_NAME)
#undef DP_COUNTER_NAME
};

static const char *const dp_status_names[3] = {"approved", "declined", "error"};

static struct dp_ctx *tel_ctx;
static bool tel_stopped;
static uint64_t start_tsc;
static uint64_t start_unix_s;
static pthread_mutex_t tel_lock = PTHREAD_MUTEX_INITIALIZER;

static uint64_t
uptime_s(void)
{
	uint64_t hz = rte_get_tsc_hz();

	return start_tsc && hz ? (rte_rdtsc() - start_tsc) / hz : 0;
}

/* A copy of one lcore's counters (plain loads, see the note above). */
static void
lcore_copy(const struct dp_lcore *lc, struct dp_stats *st)
{
	memcpy(st, (const void *)&lc->st, sizeof(*st));
}

static double
ratio(uint64_t a, uint64_t b)
{
	return b ? (double)a / (double)b : 0.0;
}

/*
 * Cycles per frame in busy bursts over the last window of >= 1 s with
 * traffic (node.c); before the first window closes, since start.
 */
static double
cycles_per_pkt(const struct dp_stats *s)
{
	if (s->win_pkts)
		return ratio(s->win_cycles, s->win_pkts);
	return ratio(s->c[DP_C_busy_cycles], s->c[DP_C_busy_pkts]);
}

static double
ns_per_pkt(const struct dp_stats *s)
{
	uint64_t hz = rte_get_tsc_hz();

	return hz ? cycles_per_pkt(s) * 1e9 / (double)hz : 0.0;
}

/* ------------------------------------------------------------------------ */
/* JSON (control socket)                                                      */

static json_t *
nic_json(const struct nic_counters *n)
{
	json_t *o = json_object(), *d = json_object();

#define NIC_COUNTER_JSON(name, desc) json_object_set_new(o, #name, json_integer((json_int_t)n->name));
	NIC_FOREACH_COUNTER(NIC_COUNTER_JSON)
#undef NIC_COUNTER_JSON
	for (unsigned i = 0; i < NIC_CAUSE_MAX; i++)
		json_object_set_new(d, nic_cause_name(i), json_integer((json_int_t)n->drop[i]));
	json_object_set_new(o, "drops", d);
	return o;
}

/*
 * In-engine latency percentiles (RX to TX) in ns, from the log-linear
 * histogram: each is the upper bound of the bucket that holds it (a figure
 * is never rounded down), plus the count it is taken over.
 */
static json_t *
latency_json(const struct dp_stats *s)
{
	static const struct { const char *name; double q; } pct[] = {
		{"p50", 0.50}, {"p90", 0.90}, {"p99", 0.99},
		{"p999", 0.999}, {"p9999", 0.9999}, {"max", 1.0},
	};
	double hz = (double)rte_get_tsc_hz();
	json_t *o = json_object();
	uint64_t total = 0, seen = 0;
	unsigned b = 0;

	for (unsigned i = 0; i < DP_LAT_BUCKETS; i++)
		total += s->lat[i];
	json_object_set_new(o, "count", json_integer((json_int_t)total));
	if (!total || hz <= 0)
		return o;
	for (unsigned k = 0; k < sizeof(pct) / sizeof(pct[0]); k++) {
		uint64_t want = (uint64_t)(pct[k].q * (double)total);

		if (want == 0)
			want = 1;
		while (b < DP_LAT_BUCKETS - 1 && seen + s->lat[b] < want)
			seen += s->lat[b++];
		json_object_set_new(o, pct[k].name,
				    json_real((double)dp_lat_bucket_max(b) * 1e9 / hz));
	}
	return o;
}

/* Every counter of @p s: the same shape for the totals and for each lcore. */
static json_t *
stats_json(const struct dp_stats *s)
{
	json_t *o = json_object(), *c = json_object(), *st = json_object();
	json_t *r = json_object(), *d = json_object(), *b = json_array();

	for (unsigned i = 0; i < DP_COUNTERS; i++)
		json_object_set_new(c, dp_counter_names[i], json_integer((json_int_t)s->c[i]));
	for (unsigned i = 0; i < 3; i++)
		json_object_set_new(st, dp_status_names[i], json_integer((json_int_t)s->status[i]));
	for (unsigned i = 0; i < AUTH_REASONS; i++)
		json_object_set_new(r, auth_reason_name(i), json_integer((json_int_t)s->reason[i]));
	for (unsigned i = AUTH_DROP_NONE + 1; i < AUTH_DROPS; i++)
		json_object_set_new(d, auth_drop_name(i), json_integer((json_int_t)s->drop[i]));
	for (unsigned i = 0; i <= DP_BURST_MAX; i++)
		json_array_append_new(b, json_integer((json_int_t)s->burst[i]));
	json_object_set_new(o, "counters", c);
	json_object_set_new(o, "status", st);
	json_object_set_new(o, "reasons", r);
	json_object_set_new(o, "drops", d);
	json_object_set_new(o, "nic", nic_json(&s->nic));
	json_object_set_new(o, "burst", b);
	json_object_set_new(o, "cycles_per_pkt", json_real(cycles_per_pkt(s)));
	json_object_set_new(o, "ns_per_pkt", json_real(ns_per_pkt(s)));
	json_object_set_new(o, "cycles_per_pkt_window_pkts",
			    json_integer((json_int_t)s->win_pkts));
	json_object_set_new(o, "cycles_per_pkt_since_start",
			    json_real(ratio(s->c[DP_C_busy_cycles], s->c[DP_C_busy_pkts])));
	json_object_set_new(o, "latency_ns", latency_json(s));
	return o;
}

json_t *
dp_stats_json(const struct dp_ctx *ctx)
{
	struct lim_db *db = ctx->db;
	json_t *o = json_object(), *lcs = json_array();
	struct dp_stats s;

	for (unsigned i = 0; i < ctx->n_lcores; i++) {
		json_t *l;

		lcore_copy(ctx->lc[i], &s);
		l = stats_json(&s);
		json_object_set_new(l, "lcore", json_integer(ctx->lc[i]->lcore_id));
		json_object_set_new(l, "queue", json_integer(ctx->lc[i]->queue));
		json_array_append_new(lcs, l);
	}
	dp_stats_sum(ctx, &s);
	json_object_set_new(o, "uptime_s", json_integer((json_int_t)uptime_s()));
	json_object_set_new(o, "tsc_hz", json_integer((json_int_t)rte_get_tsc_hz()));
	json_object_set_new(o, "total", stats_json(&s));
	json_object_set_new(o, "lcores", lcs);
	/* drained, durable_seq, seq, lag, journal batches and fsync times */
	json_object_set_new(o, "ledger", dp_ledger_json(ctx->ledger));
	/* state, published, acked, acked_seq, lag, errors (docs/export.md) */
	json_object_set_new(o, "export", dp_export_json(ctx->export));
	json_object_set_new(o, "ops", json_pack(
		"{s:I,s:I}", "count", (json_int_t)lim_ops_count(db->ops), "capacity",
		(json_int_t)lim_ops_capacity(db->ops)));
	json_object_set_new(o, "users", json_pack(
		"{s:I,s:I,s:I}", "count", (json_int_t)lim_users_count(db->users),
		"capacity", (json_int_t)lim_users_capacity(db->users), "bytes",
		(json_int_t)lim_users_bytes(db->users)));
	return o;
}

/* ------------------------------------------------------------------------ */
/* Telemetry                                                                  */

/* Lock and check; false (and unlocked) once stopped. */
static bool
tel_enter(void)
{
	pthread_mutex_lock(&tel_lock);
	if (tel_ctx && !tel_stopped)
		return true;
	pthread_mutex_unlock(&tel_lock);
	return false;
}

static void
tel_leave(void)
{
	pthread_mutex_unlock(&tel_lock);
}

static void
tel_fmt_double(struct rte_tel_data *d, const char *name, double v)
{
	char buf[32];

	snprintf(buf, sizeof(buf), "%.1f", v);
	rte_tel_data_add_dict_string(d, name, buf);
}

/* Counters, statuses and per-packet cycles of @p s into dict @p d. */
static void
tel_counters(struct rte_tel_data *d, const struct dp_stats *s)
{
	char name[48];

	for (unsigned i = 0; i < DP_COUNTERS; i++)
		rte_tel_data_add_dict_u64(d, dp_counter_names[i], s->c[i]);
	for (unsigned i = 0; i < 3; i++) {
		snprintf(name, sizeof(name), "status_%s", dp_status_names[i]);
		rte_tel_data_add_dict_u64(d, name, s->status[i]);
	}
	rte_tel_data_add_dict_u64(d, "nic_rx", s->nic.rx);
	rte_tel_data_add_dict_u64(d, "nic_proto", s->nic.proto);
	rte_tel_data_add_dict_u64(d, "nic_drops", nic_counters_drops(&s->nic));
	tel_fmt_double(d, "cycles_per_pkt", cycles_per_pkt(s));
	tel_fmt_double(d, "ns_per_pkt", ns_per_pkt(s));
}

static int
tel_stats(const char *cmd, const char *params, struct rte_tel_data *d)
{
	struct rte_tel_data *burst;
	struct dp_stats s;

	if (!tel_enter())
		return -EAGAIN;
	dp_stats_sum(tel_ctx, &s);
	rte_tel_data_start_dict(d);
	rte_tel_data_add_dict_u64(d, "uptime_s", uptime_s());
	rte_tel_data_add_dict_u64(d, "lcores", tel_ctx->n_lcores);
	tel_counters(d, &s);
	rte_tel_data_add_dict_u64(d, "ledger_drained", dp_ledger_drained(tel_ctx->ledger));
	rte_tel_data_add_dict_u64(d, "durable_seq",
				  __atomic_load_n(&tel_ctx->durable_seq, __ATOMIC_ACQUIRE));
	rte_tel_data_add_dict_u64(d, "ops", lim_ops_count(tel_ctx->db->ops));
	rte_tel_data_add_dict_u64(d, "ops_capacity", lim_ops_capacity(tel_ctx->db->ops));
	rte_tel_data_add_dict_u64(d, "users", lim_users_count(tel_ctx->db->users));
	rte_tel_data_add_dict_u64(d, "users_capacity", lim_users_capacity(tel_ctx->db->users));
	rte_tel_data_add_dict_u64(d, "users_bytes", lim_users_bytes(tel_ctx->db->users));
	burst = rte_tel_data_alloc();
	if (burst) {
		rte_tel_data_start_array(burst, RTE_TEL_U64_VAL);
		for (unsigned i = 0; i <= DP_BURST_MAX; i++)
			rte_tel_data_add_array_u64(burst, s.burst[i]);
		rte_tel_data_add_dict_container(d, "burst", burst, 0);
	}
	tel_leave();
	return 0;
}

static int
tel_lcore(const char *cmd, const char *params, struct rte_tel_data *d)
{
	struct dp_stats s;
	uint64_t i;

	if (lim_parse_u64(params, UINT32_MAX, &i))
		return -EINVAL;
	if (!tel_enter())
		return -EAGAIN;
	if (i >= tel_ctx->n_lcores) {
		tel_leave();
		return -EINVAL;
	}
	lcore_copy(tel_ctx->lc[i], &s);
	rte_tel_data_start_dict(d);
	rte_tel_data_add_dict_u64(d, "index", i);
	rte_tel_data_add_dict_u64(d, "lcore_id", tel_ctx->lc[i]->lcore_id);
	rte_tel_data_add_dict_u64(d, "queue", tel_ctx->lc[i]->queue);
	tel_counters(d, &s);
	tel_leave();
	return 0;
}

static int
tel_drops(const char *cmd, const char *params, struct rte_tel_data *d)
{
	struct dp_stats s;
	char name[64];

	if (!tel_enter())
		return -EAGAIN;
	dp_stats_sum(tel_ctx, &s);
	tel_leave();
	rte_tel_data_start_dict(d);
	for (unsigned i = AUTH_DROP_NONE + 1; i < AUTH_DROPS; i++) {
		snprintf(name, sizeof(name), "codec/%s", auth_drop_name(i));
		rte_tel_data_add_dict_u64(d, name, s.drop[i]);
	}
	for (unsigned i = 0; i < NIC_CAUSE_MAX; i++) {
		snprintf(name, sizeof(name), "nic/%s", nic_cause_name(i));
		for (char *p = name; *p; p++)
			if (*p == '-')
				*p = '_';
		rte_tel_data_add_dict_u64(d, name, s.nic.drop[i]);
	}
	return 0;
}

static int
tel_reasons(const char *cmd, const char *params, struct rte_tel_data *d)
{
	struct dp_stats s;

	if (!tel_enter())
		return -EAGAIN;
	dp_stats_sum(tel_ctx, &s);
	tel_leave();
	rte_tel_data_start_dict(d);
	for (unsigned i = 0; i < AUTH_REASONS; i++)
		rte_tel_data_add_dict_u64(d, auth_reason_name(i), s.reason[i]);
	return 0;
}

/* Help texts must stay under RTE_TEL_MAX_STRING_LEN (128) bytes. */
static const struct {
	const char *cmd;
	telemetry_cb fn;
	const char *help;
} tel_cmds[] = {
	{"/authd/stats", tel_stats,
	 "authd totals: counters, statuses, cycles and ns per packet, ledger, tables, "
	 "RX bursts. No parameters"},
	{"/authd/lcore", tel_lcore,
	 "One dataplane lcore's counters. Parameter: its index, 0 .. lcores-1 "
	 "(lcores: see /authd/stats)"},
	{"/authd/drops", tel_drops,
	 "Datagrams dropped unanswered, by cause: codec/* (header, key, tag, replay), "
	 "nic/* (frames). No parameters"},
	{"/authd/reasons", tel_reasons,
	 "Answered records by reason code (APPROVED, INSUFFICIENT_LIMIT, ...). No "
	 "parameters"},
};

int
dp_telemetry_register(struct dp_ctx *ctx)
{
	int rc = 0;

	start_tsc = rte_rdtsc();
	start_unix_s = (uint64_t)time(NULL);
	pthread_mutex_lock(&tel_lock);
	tel_ctx = ctx;
	tel_stopped = false;
	pthread_mutex_unlock(&tel_lock);
	for (unsigned i = 0; i < sizeof(tel_cmds) / sizeof(tel_cmds[0]); i++) {
		int r = rte_telemetry_register_cmd(tel_cmds[i].cmd, tel_cmds[i].fn,
						   tel_cmds[i].help);

		if (r) {
			RTE_LOG(WARNING, USER1, "telemetry: %s: %s\n", tel_cmds[i].cmd,
				strerror(-r));
			rc = r;
		}
	}
	return rc;
}

void
dp_telemetry_stop(struct dp_ctx *ctx)
{
	pthread_mutex_lock(&tel_lock);
	tel_stopped = true;
	pthread_mutex_unlock(&tel_lock);
	(void)ctx;
}

/* ------------------------------------------------------------------------ */
/* Prometheus (authd --metrics; every family is listed in docs/metrics.md)    */

static const char *const dp_counter_descs[DP_COUNTERS] = {
#define DP_COUNTER_DESC(name, desc) desc,
	DP_FOREACH_COUNTER(DP_COUNTER_DESC)
#undef DP_COUNTER_DESC
};

/* In-engine latency bounds: 1-2-5 steps from 1 us to 1 s, in ns. */
static const uint64_t lat_le_ns[] = {
	1000, 2000, 5000, 10000, 20000, 50000, 100000, 200000, 500000,
	1000000, 2000000, 5000000, 10000000, 20000000, 50000000, 100000000,
	200000000, 500000000, 1000000000,
};

static void
prom_one(struct dp_prom *w, const char *name, enum dp_prom_type t,
	 const char *help, uint64_t v)
{
	dp_prom_family(w, name, t, help);
	dp_prom_u64(w, name, NULL, v);
}

static void
label1(char *l, size_t n, const char *k, const char *v)
{
	l[0] = '\0';
	dp_prom_label(l, n, k, v);
}

static void
label_lcore(char *l, size_t n, const struct dp_lcore *lc)
{
	char id[16];

	snprintf(id, sizeof(id), "%u", lc->lcore_id);
	label1(l, n, "lcore", id);
}

static void
prom_process(const struct dp_ctx *ctx, struct dp_prom *w)
{
	char l[256] = "";

	dp_prom_family(w, "authd_up", DP_PROM_GAUGE,
		       "1: authd runs and serves its metrics.");
	dp_prom_u64(w, "authd_up", NULL, 1);
	dp_prom_label(l, sizeof(l), "version", AUTHD_VERSION);
	/* rte_version() is "DPDK 22.11.1": the label is the number */
	dp_prom_label(l, sizeof(l), "dpdk", strncmp(rte_version(), "DPDK ", 5)
			? rte_version() : rte_version() + 5);
	dp_prom_family(w, "authd_build_info", DP_PROM_GAUGE,
		       "Always 1; the labels say which authd and DPDK.");
	dp_prom_u64(w, "authd_build_info", l, 1);
	prom_one(w, "authd_start_time_seconds", DP_PROM_GAUGE,
		 "When authd started serving, unix seconds (wall clock).",
		 start_unix_s);
	prom_one(w, "authd_clock_seconds", DP_PROM_GAUGE,
		 "The engine's clock, unix seconds (fixed with --clock fixed).",
		 dp_clock_now_s(&ctx->clock));
	prom_one(w, "authd_tsc_hz", DP_PROM_GAUGE,
		 "TSC cycles per second: the unit of the *_cycles_total counters.",
		 rte_get_tsc_hz());
	prom_one(w, "authd_lcores", DP_PROM_GAUGE,
		 "Dataplane lcores, one RX/TX queue pair each.", ctx->n_lcores);
}

/* Answered records by op, product and reason: every valid op and product
 * always (so rates start at 0), the out-of-range ones once counted. */
static void
prom_decisions(const struct dp_stats *s, struct dp_prom *w)
{
	char l[256];

	dp_prom_family(w, "authd_decisions_total", DP_PROM_COUNTER,
		       "Records answered, by operation, product and reason code "
		       "(APPROVED or why not; BUSY is not a decision but counted).");
	for (unsigned o = 0; o < AUTH_OPS; o++)
		for (unsigned p = 0; p < AUTH_PRODUCTS; p++)
			for (unsigned r = 0; r < AUTH_REASONS; r++) {
				uint64_t v = s->decisions[o][p][r];

				if ((!o || !p) && !v)
					continue;
				label1(l, sizeof(l), "op", auth_op_name(o));
				dp_prom_label(l, sizeof(l), "product",
					      auth_product_name(p));
				dp_prom_label(l, sizeof(l), "reason",
					      auth_reason_name(r));
				dp_prom_u64(w, "authd_decisions_total", l, v);
			}
	dp_prom_family(w, "authd_answers_total", DP_PROM_COUNTER,
		       "Records answered, by status.");
	for (unsigned i = 0; i < 3; i++) {
		label1(l, sizeof(l), "status", dp_status_names[i]);
		dp_prom_u64(w, "authd_answers_total", l, s->status[i]);
	}
}

static void
prom_drops(const struct dp_stats *s, struct dp_prom *w)
{
	char l[256];

	dp_prom_family(w, "authd_datagrams_dropped_total", DP_PROM_COUNTER,
		       "Frames and datagrams dropped without an answer, by "
		       "stage (nic: the frame; codec: the protocol datagram) "
		       "and cause (docs/protocol.md).");
	for (unsigned i = 0; i < NIC_CAUSE_MAX; i++) {
		label1(l, sizeof(l), "stage", "nic");
		dp_prom_label(l, sizeof(l), "cause", nic_cause_name(i));
		dp_prom_u64(w, "authd_datagrams_dropped_total", l, s->nic.drop[i]);
	}
	for (unsigned i = AUTH_DROP_NONE + 1; i < AUTH_DROPS; i++) {
		label1(l, sizeof(l), "stage", "codec");
		dp_prom_label(l, sizeof(l), "cause", auth_drop_name(i));
		dp_prom_u64(w, "authd_datagrams_dropped_total", l, s->drop[i]);
	}
}

/* Each lcore's counters (DP_FOREACH_COUNTER, NIC_FOREACH_COUNTER). */
static void
prom_lcores(const struct dp_ctx *ctx, struct dp_prom *w)
{
	char name[96], l[64];

	for (unsigned c = 0; c < DP_COUNTERS; c++) {
		snprintf(name, sizeof(name), "authd_dataplane_%s_total",
			 dp_counter_names[c]);
		dp_prom_family(w, name, DP_PROM_COUNTER, dp_counter_descs[c]);
		for (unsigned i = 0; i < ctx->n_lcores; i++) {
			label_lcore(l, sizeof(l), ctx->lc[i]);
			dp_prom_u64(w, name, l, __atomic_load_n(
				&ctx->lc[i]->st.c[c], __ATOMIC_RELAXED));
		}
	}
#define NIC_COUNTER_PROM(field, desc)                                          \
	dp_prom_family(w, "authd_nic_" #field "_total", DP_PROM_COUNTER, desc);\
	for (unsigned i = 0; i < ctx->n_lcores; i++) {                         \
		label_lcore(l, sizeof(l), ctx->lc[i]);                         \
		dp_prom_u64(w, "authd_nic_" #field "_total", l, __atomic_load_n( \
			&ctx->lc[i]->st.nic.field, __ATOMIC_RELAXED));          \
	}
	NIC_FOREACH_COUNTER(NIC_COUNTER_PROM)
#undef NIC_COUNTER_PROM
}

/* Ring depths and answers waiting for their journal batch, per lcore. */
static void
prom_rings(const struct dp_ctx *ctx, struct dp_prom *w)
{
	static const char *const fam[2] = {"authd_ring_entries",
					   "authd_ring_capacity"};
	static const char *const help[2] = {
		"Entries in a dataplane lcore's ring now: effects (to the "
		"ledger) and decisions (to the risk worker).",
		"Entries a dataplane lcore's ring can hold."};
	char l[128], id[16];

	for (unsigned f = 0; f < 2; f++) {
		dp_prom_family(w, fam[f], DP_PROM_GAUGE, help[f]);
		for (unsigned i = 0; i < ctx->n_lcores; i++) {
			const struct rte_ring *r[2] = {ctx->lc[i]->effects,
						       ctx->lc[i]->decisions};
			static const char *const rn[2] = {"effects", "decisions"};

			snprintf(id, sizeof(id), "%u", ctx->lc[i]->lcore_id);
			for (unsigned k = 0; k < 2; k++) {
				if (!r[k])
					continue; /* --risk off: no decisions */
				label1(l, sizeof(l), "ring", rn[k]);
				dp_prom_label(l, sizeof(l), "lcore", id);
				dp_prom_u64(w, fam[f], l, f ? rte_ring_get_capacity(r[k])
							   : rte_ring_count(r[k]));
			}
		}
	}
	dp_prom_family(w, "authd_held_answers", DP_PROM_GAUGE,
		       "Answers an lcore holds until their journal batch is "
		       "durable (--ack sync).");
	for (unsigned i = 0; i < ctx->n_lcores; i++) {
		const struct dp_lcore *lc = ctx->lc[i];

		label_lcore(l, sizeof(l), lc);
		dp_prom_u64(w, "authd_held_answers", l,
			    __atomic_load_n(&lc->held_tail, __ATOMIC_RELAXED) -
			    __atomic_load_n(&lc->held_head, __ATOMIC_RELAXED));
	}
}

static void
prom_latency(const struct dp_stats *s, struct dp_prom *w)
{
	struct dp_prom_hist h;

	dp_prom_hist_fill(&h, s->lat, DP_LAT_BUCKETS, dp_lat_bucket_bound,
			  rte_get_tsc_hz(), lat_le_ns, RTE_DIM(lat_le_ns));
	h.sum_s = (double)s->c[DP_C_lat_cycles] / (double)rte_get_tsc_hz();
	dp_prom_family(w, "authd_in_engine_latency_seconds", DP_PROM_HISTOGRAM,
		       "Frame received to its answer handed to TX (held "
		       "answers: to their release), every lcore.");
	dp_prom_histogram(w, "authd_in_engine_latency_seconds", NULL, &h);
}

static void
prom_ledger(const struct dp_ctx *ctx, struct dp_prom *w)
{
	struct dp_ledger_stats st;
	struct dp_prom_hist h;
	uint64_t le[DP_LEDGER_HIST - 1];

	dp_ledger_stats_get(ctx->ledger, &st);
	prom_one(w, "authd_ledger_journal", DP_PROM_GAUGE,
		 "1: effects are written to a journal (--journal).", st.journal);
	prom_one(w, "authd_ledger_failed", DP_PROM_GAUGE,
		 "1: the journal stopped on a write or fdatasync error; new "
		 "money is answered BUSY (docs/durability.md).", st.failed != 0);
	prom_one(w, "authd_ledger_seq", DP_PROM_GAUGE,
		 "The last ledger seq handed out.", st.seq);
	prom_one(w, "authd_ledger_durable_seq", DP_PROM_GAUGE,
		 "The journal is durable up to this seq.", st.durable_seq);
	prom_one(w, "authd_ledger_lag_records", DP_PROM_GAUGE,
		 "Effects decided but not yet durable (seq - durable_seq).",
		 st.lag);
	prom_one(w, "authd_ledger_lag_max_records", DP_PROM_GAUGE,
		 "The largest lag seen when a batch started.", st.lag_max);
	prom_one(w, "authd_ledger_records_total", DP_PROM_COUNTER,
		 "Journal records written (durable), settings included.",
		 st.records);
	prom_one(w, "authd_ledger_settings_records_total", DP_PROM_COUNTER,
		 "Journal records of settings changes.", st.cfg_records);
	prom_one(w, "authd_ledger_batches_total", DP_PROM_COUNTER,
		 "Journal writes, each with one fdatasync.", st.batches);
	prom_one(w, "authd_ledger_written_bytes_total", DP_PROM_COUNTER,
		 "Bytes written to the journal.", st.bytes);
	prom_one(w, "authd_ledger_segments", DP_PROM_GAUGE,
		 "Journal segments written by this process.", st.segments);
	prom_one(w, "authd_ledger_holds_expired_total", DP_PROM_COUNTER,
		 "Holds released by the expiry timer.", st.expired);
	prom_one(w, "authd_ledger_ops_reclaimed_total", DP_PROM_COUNTER,
		 "Op store entries removed after their retention.", st.reclaimed);
	prom_one(w, "authd_ledger_timer_holds", DP_PROM_GAUGE,
		 "Holds in the expiry wheel.", st.timer_pending);
	prom_one(w, "authd_ledger_timer_overflow_total", DP_PROM_COUNTER,
		 "Holds the wheel had no room for (the sweep expires them).",
		 st.timer_overflow);
	/* the bounds are the buckets' own edges, 2 us .. 2^19 us */
	for (unsigned b = 0; b < RTE_DIM(le); b++)
		le[b] = dp_ledger_fsync_bucket_max_ns(b) + 1;
	dp_prom_hist_fill(&h, st.fsync_hist, DP_LEDGER_HIST,
			  dp_ledger_fsync_bucket_max_ns, 1000000000u, le,
			  RTE_DIM(le));
	h.sum_s = (double)st.fsync_ns_sum * 1e-9;
	dp_prom_family(w, "authd_ledger_fsync_seconds", DP_PROM_HISTOGRAM,
		       "Time of each journal fdatasync.");
	dp_prom_histogram(w, "authd_ledger_fsync_seconds", NULL, &h);
}

static void
prom_tables(const struct dp_ctx *ctx, struct dp_prom *w)
{
	struct lim_db *db = ctx->db;
	char l[64];

	label1(l, sizeof(l), "tier", "hot");
	dp_prom_family(w, "authd_ops_entries", DP_PROM_GAUGE,
		       "Op store entries (holds, idempotency records, "
		       "tombstones) in use, by tier (hot: in memory).");
	dp_prom_u64(w, "authd_ops_entries", l, lim_ops_count(db->ops));
	dp_prom_family(w, "authd_ops_capacity", DP_PROM_GAUGE,
		       "Op store entries a tier can hold (--ops-max); when "
		       "full, new work is answered BUSY.");
	dp_prom_u64(w, "authd_ops_capacity", l, lim_ops_capacity(db->ops));
	prom_one(w, "authd_users", DP_PROM_GAUGE, "Users in the user table.",
		 lim_users_count(db->users));
	prom_one(w, "authd_users_capacity", DP_PROM_GAUGE,
		 "Users the table can hold (--users-max).",
		 lim_users_capacity(db->users));
	prom_one(w, "authd_users_memory_bytes", DP_PROM_GAUGE,
		 "Bytes the user table holds (index and slots in use).",
		 lim_users_bytes(db->users));
}

static void
prom_risk(const struct dp_ctx *ctx, struct dp_prom *w)
{
	static const char *const modes[] = {"off", "shadow", "on"};
	static const enum dp_risk_mode mode_of[] = {DP_RISK_OFF, DP_RISK_SHADOW,
						    DP_RISK_ON};
	struct dp_risk_stats st;
	char l[128];

	dp_risk_stats_get(ctx->risk, &st);
	dp_prom_family(w, "authd_risk_mode", DP_PROM_GAUGE,
		       "1 for the risk worker's mode (--risk, authctl risk set).");
	for (unsigned i = 0; i < RTE_DIM(modes); i++) {
		label1(l, sizeof(l), "mode", modes[i]);
		dp_prom_u64(w, "authd_risk_mode", l, st.mode == mode_of[i]);
	}
#define RISK_COUNTER_PROM(name, desc)                                          \
	prom_one(w, "authd_risk_" #name "_total", DP_PROM_COUNTER, desc,       \
		 st.c.c[DP_RISK_C_##name]);
	DP_RISK_FOREACH_COUNTER(RISK_COUNTER_PROM)
#undef RISK_COUNTER_PROM
	prom_one(w, "authd_risk_records_dropped_total", DP_PROM_COUNTER,
		 "Decision records the lcores' full risk rings refused.",
		 st.dropped);
	dp_prom_family(w, "authd_risk_verdicts_by_kind_total", DP_PROM_COUNTER,
		       "Verdicts issued (applied or not), by kind.");
	for (unsigned i = 0; i < DP_RISK_VERDICTS; i++) {
		label1(l, sizeof(l), "kind", dp_risk_verdict_name(i));
		dp_prom_u64(w, "authd_risk_verdicts_by_kind_total", l,
			    st.c.by_kind[i]);
	}
	dp_prom_family(w, "authd_risk_verdicts_by_detector_total",
		       DP_PROM_COUNTER, "Verdicts issued, by detector.");
	for (unsigned i = 0; i < DP_RISK_DETECTORS; i++) {
		label1(l, sizeof(l), "detector", dp_risk_detector_name(i));
		dp_prom_u64(w, "authd_risk_verdicts_by_detector_total", l,
			    st.c.by_detector[i]);
	}
	dp_prom_family(w, "authd_risk_table_entries", DP_PROM_GAUGE,
		       "Entries in use in the risk engine's feature tables.");
	label1(l, sizeof(l), "table", "users");
	dp_prom_u64(w, "authd_risk_table_entries", l, st.c.users);
	label1(l, sizeof(l), "table", "merchants");
	dp_prom_u64(w, "authd_risk_table_entries", l, st.c.merchants);
	label1(l, sizeof(l), "table", "devices");
	dp_prom_u64(w, "authd_risk_table_entries", l, st.c.devices);
}

static void
prom_export(const struct dp_ctx *ctx, struct dp_prom *w)
{
	struct dp_export_stats st;
	char l[64];

	dp_export_stats_get(ctx->export, &st);
	dp_prom_family(w, "authd_export_state", DP_PROM_GAUGE,
		       "1 for the state of the export to NATS (docs/export.md).");
	for (unsigned i = 0; i < DP_EXPORT_STATES; i++) {
		label1(l, sizeof(l), "state", dp_export_state_name(i));
		dp_prom_u64(w, "authd_export_state", l, st.state == i);
	}
	prom_one(w, "authd_export_published_total", DP_PROM_COUNTER,
		 "Messages handed to the NATS client.", st.published);
	prom_one(w, "authd_export_acked_total", DP_PROM_COUNTER,
		 "Positive acknowledgements from JetStream.", st.acked);
	prom_one(w, "authd_export_duplicates_total", DP_PROM_COUNTER,
		 "Acknowledgements saying the message was stored already.",
		 st.duplicates);
	prom_one(w, "authd_export_errors_total", DP_PROM_COUNTER,
		 "Failed acks, connects, stream calls and journal reads.",
		 st.errors);
	prom_one(w, "authd_export_resyncs_total", DP_PROM_COUNTER,
		 "Restarts from the stream's last message.", st.resyncs);
	prom_one(w, "authd_export_acked_seq", DP_PROM_GAUGE,
		 "The stream holds every journal seq up to this one.",
		 st.acked_seq);
	prom_one(w, "authd_export_lag_records", DP_PROM_GAUGE,
		 "Durable journal records the stream does not hold yet.", st.lag);
}

void
dp_stats_prom(const struct dp_ctx *ctx, struct dp_prom *w)
{
	struct dp_stats s;

	dp_stats_sum(ctx, &s);
	prom_process(ctx, w);
	prom_decisions(&s, w);
	prom_drops(&s, w);
	prom_latency(&s, w);
	prom_lcores(ctx, w);
	prom_rings(ctx, w);
	prom_ledger(ctx, w);
	prom_tables(ctx, w);
	prom_risk(ctx, w);
	prom_export(ctx, w);
}
