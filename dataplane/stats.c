/*
 * stats.c - the engine's counters for readers outside the data path: DPDK
 * telemetry commands (/authd/stats, /authd/lcore, /authd/drops,
 * /authd/reasons) and the `stats` answer of the control socket.
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
 * read (the ledger worker).
 */
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>
#include <rte_cycles.h>
#include <rte_log.h>
#include <rte_telemetry.h>

#include "dp.h"
#include "export.h"

static const char *const dp_counter_names[DP_COUNTERS] = {
#define DP_COUNTER_NAME(name, desc) #name,
	DP_FOREACH_COUNTER(DP_COUNTER_NAME)
#undef DP_COUNTER_NAME
};

static const char *const dp_status_names[3] = {"approved", "declined", "error"};

static struct dp_ctx *tel_ctx;
static bool tel_stopped;
static uint64_t start_tsc;
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
