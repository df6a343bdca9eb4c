/*
 * risk_worker.c - the risk worker: a control thread that drains every
 * dataplane lcore's decisions ring into the risk engine (risk.c) and makes
 * its verdicts take effect for the next payment.
 *
 * Owns: the thread, the engine (its tables are the thread's alone: no lock
 * on them), the settable copy of the configuration, a snapshot of the
 * engine's counters for readers, and the mutex that serialises merchant
 * updates with the control thread (dp_merchants_lock()).
 *
 * Why a mutex for merchants rather than routing verdicts through the
 * control thread: a merchant change is read-copy-publish (find, copy,
 * change, lim_merchant_set), and two updaters doing it at once lose one
 * change (the control thread sets an mcc while the risk worker blocks: one
 * of the two is gone). The control thread serves one request at a time and
 * may wait up to its I/O timeout on a slow client, so a verdict queued to
 * it could wait that long; under a mutex held for one publish (microseconds)
 * a block takes effect for the very next payment. User verdicts need no
 * mutex: a user's settings change under its own lock, as the control
 * thread's do.
 *
 * RCU: the thread is a registered QSBR reader that is OFFLINE except while
 * it applies the verdicts of one batch (the engine calls apply_begin /
 * apply_end around them), so it never holds up a grace period while it
 * sleeps or learns. It never calls synchronize_rcu().
 *
 * Journal: every change is a struct lim_cfg_effect (uid LIM_UID_RISK), its
 * seq taken with lim_seq_take() under the user's lock (or the merchant
 * mutex), handed to dp_ledger_submit() right after: the ledger writes seqs
 * without gaps, so a seq taken is always submitted (a merchant's under the
 * mutex, in seq order; the ledger sorts what arrives out of order between
 * producers). Shadow mode takes no seq. dp_ledger_submit() may wait while
 * the ledger's ring is full; nothing on the running path calls
 * synchronize_rcu(), so waiting online (and under the mutex) cannot
 * deadlock a grace period.
 *
 * Ordering of shutdown (main.c): lcores stopped -> control thread stopped
 * -> dp_risk_stop() drains the rings to the end -> ledger stopped.
 */
#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <time.h>

#include <jansson.h>
#include <rte_lcore.h>
#include <rte_log.h>
#include <rte_ring_elem.h>
#include <urcu-qsbr.h>

#include "ledger.h"
#include "risk.h"

#define RISK_BATCH 256            /* records taken from a ring at once */
#define RISK_IDLE_NS 200000       /* sleep when every ring was empty */

struct dp_risk {
	struct dp_risk_conf conf;     /* a copy; its pointers outlive us */
	struct dp_risk_engine *eng;   /* the thread's alone */
	pthread_t tid;
	int stop;                     /* atomic */
	uint64_t seen_gen;            /* thread: the config generation in use */
	struct dp_risk_sink sink;
	pthread_mutex_t mu;           /* guards the three fields below */
	struct dp_risk_config cfg;    /* as dp_risk_set() left it */
	uint64_t gen;                 /* bumped by dp_risk_set(); atomic reads */
	struct dp_risk_counters snap; /* the engine's counters after a pass */
	size_t bytes;
	struct dp_decision buf[RISK_BATCH];
};

static pthread_mutex_t merchants_mu = PTHREAD_MUTEX_INITIALIZER;

void
dp_merchants_lock(void)
{
	pthread_mutex_lock(&merchants_mu);
}

void
dp_merchants_unlock(void)
{
	pthread_mutex_unlock(&merchants_mu);
}

/* ------------------------------------------------------------------------ */
/* The sink: how verdicts reach the database, the journal and the log         */

static void
sink_apply_begin(void *arg)
{
	(void)arg;
	rcu_thread_online();
}

static void
sink_apply_end(void *arg)
{
	(void)arg;
	lim_quiescent_state();
	rcu_thread_offline();
}

static void
sink_merchants_lock(void *arg)
{
	(void)arg;
	dp_merchants_lock();
}

static void
sink_merchants_unlock(void *arg)
{
	(void)arg;
	dp_merchants_unlock();
}

static int
sink_journal(void *arg, const struct lim_cfg_effect *e)
{
	struct dp_risk *r = arg;

	return dp_ledger_submit(r->conf.ledger, e);
}

static void
sink_log(void *arg, const char *line)
{
	(void)arg;
	RTE_LOG(NOTICE, USER1, "risk: %s\n", line);
}

/* ------------------------------------------------------------------------ */
/* The thread                                                                 */

/* Take a configuration dp_risk_set() changed. */
static void
config_take(struct dp_risk *r)
{
	if (__atomic_load_n(&r->gen, __ATOMIC_ACQUIRE) == r->seen_gen)
		return;
	pthread_mutex_lock(&r->mu);
	dp_risk_engine_configure(r->eng, &r->cfg);
	r->seen_gen = r->gen;
	pthread_mutex_unlock(&r->mu);
}

static void
publish(struct dp_risk *r)
{
	struct dp_risk_counters c;

	dp_risk_engine_counters(r->eng, &c);
	pthread_mutex_lock(&r->mu);
	r->snap = c;
	pthread_mutex_unlock(&r->mu);
}

/* One pass over every lcore's ring; returns the records taken. */
static unsigned
drain(struct dp_risk *r)
{
	unsigned total = 0;

	for (unsigned i = 0; i < r->conf.n_rings; i++) {
		struct rte_ring *ring = r->conf.rings[i];
		unsigned n;

		if (!ring)
			continue;
		n = rte_ring_sc_dequeue_burst_elem(ring, r->buf, sizeof(r->buf[0]),
						   RISK_BATCH, NULL);
		if (n)
			dp_risk_engine_feed(r->eng, r->buf, n, &r->sink);
		total += n;
	}
	if (total)
		publish(r);
	return total;
}

static void *
risk_main(void *arg)
{
	struct dp_risk *r = arg;
	struct timespec idle = {0, RISK_IDLE_NS};

	prctl(PR_SET_TIMERSLACK, 10000UL, 0, 0, 0);
	rcu_register_thread();
	rcu_thread_offline();
	while (!__atomic_load_n(&r->stop, __ATOMIC_ACQUIRE)) {
		config_take(r);
		if (drain(r) == 0)
			nanosleep(&idle, NULL);
	}
	/* The lcores have stopped: what is in the rings is all there is. */
	config_take(r);
	while (drain(r) != 0)
		;
	publish(r);
	rcu_thread_online();
	rcu_unregister_thread();
	return NULL;
}

int
dp_risk_start(const struct dp_risk_conf *conf, struct dp_risk **out)
{
	const struct dp_risk_config *cfg = conf->cfg;
	struct dp_risk *r;

	*out = NULL;
	if (cfg->mode == DP_RISK_OFF) {
		RTE_LOG(NOTICE, USER1, "risk: off: no decision records, no verdicts\n");
		return 0;
	}
	r = calloc(1, sizeof(*r));
	if (!r)
		return -ENOMEM;
	r->conf = *conf;
	r->cfg = *cfg;
	r->eng = dp_risk_engine_create(cfg);
	if (!r->eng) {
		RTE_LOG(ERR, USER1, "risk: cannot allocate the feature tables "
			"(lower --risk-set users-max/merchants-max/devices-max)\n");
		free(r);
		return -ENOMEM;
	}
	r->bytes = dp_risk_engine_bytes(r->eng);
	r->sink = (struct dp_risk_sink){
		.db = conf->db, .arg = r,
		.apply_begin = sink_apply_begin, .apply_end = sink_apply_end,
		.merchants_lock = sink_merchants_lock,
		.merchants_unlock = sink_merchants_unlock,
		.journal = sink_journal, .log = sink_log,
	};
	pthread_mutex_init(&r->mu, NULL);
	if (rte_ctrl_thread_create(&r->tid, "authd-risk", NULL, risk_main, r)) {
		RTE_LOG(ERR, USER1, "risk: cannot start the worker thread\n");
		pthread_mutex_destroy(&r->mu);
		dp_risk_engine_free(r->eng);
		free(r);
		return -EAGAIN;
	}
	*out = r;
	RTE_LOG(NOTICE, USER1,
		"risk: %s mode; tracking %u users, %u merchants, %u devices "
		"(%zu MB reserved)\n",
		dp_risk_mode_name(cfg->mode), cfg->users_max, cfg->merchants_max,
		cfg->devices_max, r->bytes >> 20);
	return 0;
}

/* Records the producers could not hand over (full rings). */
static uint64_t
dropped(const struct dp_risk *r)
{
	return r->conf.dropped ? r->conf.dropped(r->conf.dropped_arg) : 0;
}

void
dp_risk_stop(struct dp_risk *r)
{
	const struct dp_risk_counters *c;

	if (!r)
		return;
	__atomic_store_n(&r->stop, 1, __ATOMIC_RELEASE);
	pthread_join(r->tid, NULL);
	c = &r->snap;
	RTE_LOG(NOTICE, USER1,
		"risk: consumed %llu dropped %llu counted %llu verdicts %llu "
		"(freeze-user %llu lower-limit %llu user-score %llu "
		"block-merchant %llu merchant-score %llu) applied %llu "
		"unchanged %llu failed %llu shadow %llu journaled %llu "
		"journal-missing %llu\n",
		(unsigned long long)c->c[DP_RISK_C_consumed],
		(unsigned long long)dropped(r),
		(unsigned long long)c->c[DP_RISK_C_counted],
		(unsigned long long)c->c[DP_RISK_C_verdicts],
		(unsigned long long)c->by_kind[DP_RISK_V_FREEZE_USER],
		(unsigned long long)c->by_kind[DP_RISK_V_LOWER_LIMIT],
		(unsigned long long)c->by_kind[DP_RISK_V_USER_SCORE],
		(unsigned long long)c->by_kind[DP_RISK_V_BLOCK_MERCHANT],
		(unsigned long long)c->by_kind[DP_RISK_V_MERCHANT_SCORE],
		(unsigned long long)c->c[DP_RISK_C_applied],
		(unsigned long long)c->c[DP_RISK_C_unchanged],
		(unsigned long long)c->c[DP_RISK_C_failed],
		(unsigned long long)c->c[DP_RISK_C_shadow],
		(unsigned long long)c->c[DP_RISK_C_journaled],
		(unsigned long long)c->c[DP_RISK_C_journal_missing]);
	pthread_mutex_destroy(&r->mu);
	dp_risk_engine_free(r->eng);
	free(r);
}

/* ------------------------------------------------------------------------ */
/* Control: authctl risk set / show                                           */

/* @p n KEY=VALUE items into the configuration, all or nothing. */
static int
set_items(struct dp_risk *r, const char *const *kv, unsigned n, char *err,
	  size_t errlen)
{
	int rc;

	if (!r) {
		snprintf(err, errlen, "the risk worker is not running (authd --risk off)");
		return -ENOENT;
	}
	pthread_mutex_lock(&r->mu);
	rc = dp_risk_config_set_kv(&r->cfg, kv, n, false, err, errlen);
	if (rc == 0)
		__atomic_store_n(&r->gen, r->gen + 1, __ATOMIC_RELEASE);
	pthread_mutex_unlock(&r->mu);
	return rc;
}

int
dp_risk_set(struct dp_risk *r, const char *key, const char *value, char *err,
	    size_t errlen)
{
	char item[256];
	const char *kv = item;

	if ((size_t)snprintf(item, sizeof(item), "%s=%s", key, value) >= sizeof(item)) {
		snprintf(err, errlen, "%s: value too long", key);
		return -EINVAL;
	}
	return set_items(r, &kv, 1, err, errlen);
}

int
dp_risk_set_kv(struct dp_risk *r, const char *const *kv, unsigned n,
	       char *err, size_t errlen)
{
	return set_items(r, kv, n, err, errlen);
}

static json_t *
config_json(const struct dp_risk_config *c, bool sizes)
{
	json_t *o = json_object();

	for (unsigned i = 0; i < dp_risk_keys(); i++) {
		const char *k = dp_risk_key_name(i);
		uint32_t v;

		if (dp_risk_key_is_size(k) == sizes &&
		    dp_risk_config_get(c, k, &v) == 0)
			json_object_set_new(o, k, json_integer(v));
	}
	return o;
}

static json_t *
counters_json(const struct dp_risk_counters *c, uint64_t drops)
{
	json_t *o = json_object(), *kinds = json_object(), *dets = json_object();

	for (unsigned i = 0; i < DP_RISK_COUNTERS; i++)
		json_object_set_new(o, dp_risk_counter_name(i),
				    json_integer((json_int_t)c->c[i]));
	json_object_set_new(o, "dropped", json_integer((json_int_t)drops));
	for (unsigned i = 0; i < DP_RISK_VERDICTS; i++)
		json_object_set_new(kinds, dp_risk_verdict_name(i),
				    json_integer((json_int_t)c->by_kind[i]));
	for (unsigned i = 0; i < DP_RISK_DETECTORS; i++)
		json_object_set_new(dets, dp_risk_detector_name(i),
				    json_integer((json_int_t)c->by_detector[i]));
	json_object_set_new(o, "by_kind", kinds);
	json_object_set_new(o, "by_detector", dets);
	return o;
}

void
dp_risk_stats_get(struct dp_risk *r, struct dp_risk_stats *st)
{
	memset(st, 0, sizeof(*st));
	if (!r) {
		st->mode = DP_RISK_OFF;
		return;
	}
	pthread_mutex_lock(&r->mu);
	st->mode = r->cfg.mode;
	st->c = r->snap;
	pthread_mutex_unlock(&r->mu);
	st->dropped = dropped(r);
	st->bytes = r->bytes;
}

json_t *
dp_risk_json(struct dp_risk *r)
{
	struct dp_risk_counters c;
	struct dp_risk_config cfg;
	json_t *o;

	if (!r)
		return json_pack("{s:s}", "mode", "off");
	pthread_mutex_lock(&r->mu);
	cfg = r->cfg;
	c = r->snap;
	pthread_mutex_unlock(&r->mu);
	o = json_pack("{s:s,s:o,s:o,s:o,s:{s:I,s:I,s:I,s:I}}", "mode",
		      dp_risk_mode_name(cfg.mode), "thresholds",
		      config_json(&cfg, false), "sizes", config_json(&cfg, true),
		      "counters", counters_json(&c, dropped(r)), "tables",
		      "users", (json_int_t)c.users, "merchants",
		      (json_int_t)c.merchants, "devices", (json_int_t)c.devices,
		      "bytes", (json_int_t)r->bytes);
	return o;
}
