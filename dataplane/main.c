/*
 * main.c - authd: start-up, lcore launch, shutdown.
 *
 * Start-up refuses to run on anything it cannot trust, with a message that
 * names the file, line or option: bad options, a missing or damaged
 * snapshot, a keys file that is missing, malformed or readable by others,
 * no hugepages (unless --no-huge), a --metrics port it cannot listen on
 * (bound first, before anything is loaded). Then: port up, rings, ledger
 * worker, risk worker, control socket, telemetry, metrics, and every EAL
 * lcore (the main one too) runs the burst loop of node.c on its own queue
 * pair.
 *
 * Shutdown: the first SIGINT/SIGTERM stops RX; lcores finish their burst,
 * wait for held answers to become durable and send them; the ledger worker
 * drains every ring; counters are printed; exit 0. A second signal exits at
 * once with status 130.
 */
#include <errno.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <rte_cycles.h>
#include <rte_eal.h>
#include <rte_version.h>
#include <rte_ethdev.h>
#include <rte_lcore.h>
#include <rte_log.h>
#include <rte_malloc.h>
#include <urcu-qsbr.h>

#include "dp.h"

#ifndef AUTHD_VERSION            /* CMake: the project version */
#define AUTHD_VERSION "unknown"
#endif

static struct dp_ctx *g_ctx;

static void
usage(FILE *f, const char *prog)
{
	fprintf(f,
"Usage: %s [EAL options] -- [options]\n"
"\n"
"authd decides consumer-credit payments: it receives authorization datagrams\n"
"(UDP, protocol v1, port 7711) on a DPDK port, decides every record against\n"
"the users' credit lines in memory, and answers each datagram in place.\n"
"\n"
"EAL options come first (see the DPDK guide); on machines without hugepages\n"
"or NICs, e.g. for tests:\n"
"  --no-huge --no-pci -m 512 --file-prefix NAME -l 0 \\\n"
"  --vdev net_memif0,role=server,socket=/tmp/NAME.sock\n"
"Every EAL lcore (-l) runs a dataplane loop on its own RX/TX queue pair.\n"
"\n"
"Options (after --; the same names, without dashes, in a config file):\n"
"  -c, --config FILE     read options from FILE, an INI file with an [authd]\n"
"                        section (key = value, keys as the long options\n"
"                        below), [risk] (risk settings) and [eal] with\n"
"                        args = EAL options (split at blanks, put before\n"
"                        the command line's); options on the command line\n"
"                        override the file's\n"
"  -p, --port DEV        the port: a device name (net_memif0, net_af_packet0,\n"
"                        0000:3b:00.0) or a port id (default 0)\n"
"      --ip ADDR         our IPv4 address: we answer ARP for it and take\n"
"                        datagrams sent to it (required)\n"
"      --udp-port N      protocol port (default 7711)\n"
"  -s, --snapshot FILE|DIR\n"
"                        user base to load (authdb gen, authctl snapshot save);\n"
"                        a directory: its newest valid *.snap (a damaged one\n"
"                        is skipped with a warning); without it the user base\n"
"                        starts empty\n"
"  -k, --keys FILE       gateway keys, INI: [gateway N] key.ID = 32 hex digits,\n"
"                        allow = CIDR list; must not be readable by others\n"
"                        (required)\n"
"  -j, --journal DIR     ledger journal directory (created if needed): every\n"
"                        effect is appended, one fdatasync per batch; at start\n"
"                        the snapshot is loaded and the journal after it\n"
"                        redone (a torn tail is cut; damage stops start-up\n"
"                        with file, offset and reason). docs/durability.md\n"
"      --journal-segment-size N\n"
"                        start a new segment file past N bytes (default\n"
"                        268435456, 256 MiB;\n"
"                        k, M, G are 10^3, 10^6, 10^9)\n"
"      --ack sync|async  sync: an answer that moves money leaves only after its\n"
"                        journal batch is durable; async: at once, the journal\n"
"                        follows, its lag reported (default: sync with\n"
"                        --journal, async without; sync needs --journal)\n"
"      --mode decide|forward\n"
"                        forward answers every valid datagram with its records\n"
"                        echoed, without deciding: the I/O ceiling for\n"
"                        benchmarks (default decide)\n"
"      --ctl PATH        control socket for authctl (default: authd.sock in the\n"
"                        EAL runtime directory, /var/run/dpdk/PREFIX/)\n"
"      --policy FILE     policy (INI) replacing the built-in defaults\n"
"      --users-max N     user table size (default: the snapshot's users plus\n"
"                        1/16 headroom and 1024); k, M, G suffixes\n"
"      --ops-max N       holds and idempotency records kept (default 4M;\n"
"                        140-150 bytes each with the index). Every request\n"
"                        takes one until its hold ends and its idempotency\n"
"                        record ages out: size it for that traffic. When\n"
"                        full, new work is declined BUSY (logged at 90%%)\n"
"      --ring-size N     effects each lcore may have in flight to the ledger\n"
"                        (power of two, default 65536)\n"
"      --streams N       replay windows, one per (gateway, stream) (4096)\n"
"      --burst N         RX burst size, 1..64 (default 32)\n"
"      --rx-desc N, --tx-desc N\n"
"                        descriptors per queue (default: the driver's)\n"
"      --promiscuous     accept frames for any MAC\n"
"      --clock real|fixed:UNIX_SECONDS\n"
"                        fixed freezes time (tests; authctl clock set moves it)\n"
"      --log-level LEVEL error, warning, notice (default), info, debug\n"
"      --risk on|shadow|off\n"
"                        the risk worker (cash-out detection, docs/risk.md):\n"
"                        on applies its verdicts (freeze a user, lower a\n"
"                        limit, block a merchant, raise scores), shadow only\n"
"                        logs them (default), off produces no risk records\n"
"      --risk-set KEY=VALUE\n"
"                        a risk threshold or table size (docs/risk.md);\n"
"                        repeatable; or a [risk] section in the -c file\n"
"      --export URL      stream every durable journal record to NATS\n"
"                        JetStream at URL (nats://host:4222), once and in seq\n"
"                        order; needs --journal. Off by default. NATS being\n"
"                        down never slows deciding: the lag shows in authctl\n"
"                        stats (export). docs/export.md\n"
"      --export-subject S\n"
"                        records go to S.<kind> (S.auth, S.capture, ...;\n"
"                        default authd.journal)\n"
"      --export-stream NAME\n"
"                        the stream, created if absent (file storage,\n"
"                        subjects S.>, 10 min dedupe; default AUTHD_JOURNAL);\n"
"                        one stream per journal\n"
"      --metrics ADDR:PORT\n"
"                        serve Prometheus metrics (text format 0.0.4) at\n"
"                        http://ADDR:PORT/metrics from a control thread:\n"
"                        decisions by op, product and reason, drops, latency\n"
"                        histogram, rings, ledger, op store, risk, export.\n"
"                        ADDR is an IPv4 address or [IPv6] (127.0.0.1:9711,\n"
"                        0.0.0.0:9711, [::1]:9711); the port is bound at\n"
"                        start and a port in use stops authd. Off by\n"
"                        default. docs/metrics.md\n"
"  -h, --help            this text\n"
"  -V, --version         version\n"
"\n"
"Examples:\n"
"  authd --no-huge --no-pci -m 512 --file-prefix demo -l 0 \\\n"
"        --vdev net_memif0,role=server,socket=/tmp/demo.sock -- \\\n"
"        --port net_memif0 --ip 10.0.0.1 --snapshot users.snap --keys keys.ini\n"
"  authd -- -c /etc/authd/authd.conf     (EAL options in its [eal] args)\n"
"  authd -l 2-5 -a 0000:3b:00.0 -- -c /etc/authd/authd.conf\n"
"\n"
"Control: authctl -f PREFIX stats | user show ID | ... (authctl --help).\n"
"Signals: SIGINT/SIGTERM stop RX, drain and exit 0; a second one exits at once.\n",
		prog);
}

static void
on_signal(int sig)
{
	static const char msg[] = "authd: second signal, exiting at once\n";

	if (g_ctx && __atomic_exchange_n(&g_ctx->stop, 1, __ATOMIC_RELAXED)) {
		if (write(STDERR_FILENO, msg, sizeof(msg) - 1) < 0)
			_exit(130);
		_exit(130);
	}
	(void)sig;
}

/*
 * The EAL's arguments with the config file's [eal] args first: -c FILE or
 * --config FILE after "--" (the EAL has its own -c). A new argv, kept for
 * the process's life (the EAL keeps pointers into it), or @p argv itself
 * when there is none.
 */
static char **g_argv;

static char **
eal_argv(int *argc, char **argv)
{
	const char *path = NULL;
	char **extra, **nv, err[PATH_MAX + 64];
	int dd = -1, n, k = 0;

	for (int i = 1; i < *argc; i++)
		if (dd < 0 && !strcmp(argv[i], "--"))
			dd = i;
		else if (dd >= 0 && i + 1 < *argc &&
			 (!strcmp(argv[i], "-c") || !strcmp(argv[i], "--config")))
			path = argv[i + 1];
		else if (dd >= 0 && !strncmp(argv[i], "--config=", 9))
			path = argv[i] + 9;
	if (!path)
		return argv;
	if (dp_config_eal_args(path, &extra, &n, err, sizeof(err))) {
		fprintf(stderr, "authd: %s\n", err);
		exit(1);
	}
	if (!n)
		return argv;
	nv = calloc((size_t)(*argc + n + 1), sizeof(*nv));
	if (!nv) {
		fprintf(stderr, "authd: out of memory\n");
		exit(1);
	}
	nv[k++] = argv[0];
	for (int i = 0; i < n; i++)
		nv[k++] = extra[i];
	for (int i = 1; i < *argc; i++)
		nv[k++] = argv[i];
	free(extra);
	*argc = k;
	g_argv = nv;
	return nv;
}

static bool
has_arg(int argc, char **argv, const char *arg)
{
	for (int i = 1; i < argc && strcmp(argv[i], "--"); i++)
		if (!strcmp(argv[i], arg))
			return true;
	return false;
}

/* Without hugepages the EAL fails with a puzzling message: say what to do. */
static bool
hugepages_missing(int argc, char **argv)
{
	FILE *f;
	char line[128];
	long total = 0;

	if (has_arg(argc, argv, "--no-huge"))
		return false;
	f = fopen("/proc/meminfo", "r");
	if (!f)
		return false;
	while (fgets(line, sizeof(line), f))
		if (sscanf(line, "HugePages_Total: %ld", &total) == 1)
			break;
	fclose(f);
	return total == 0;
}

static void __attribute__((format(printf, 1, 2), noreturn))
die(const char *fmt, ...)
{
	va_list ap;

	fprintf(stderr, "authd: ");
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fprintf(stderr, "\n");
	exit(1);
}

static int
app_args(struct dp_config *cfg, int argc, char **argv)
{
	char err[512];
	int rc;

	dp_config_default(cfg);
	rc = dp_config_args(cfg, argc, argv, err, sizeof(err));
	if (rc == DP_CONFIG_HELP) {
		usage(stdout, "authd");
		exit(0);
	}
	if (rc == DP_CONFIG_VERSION) {
		printf("authd %s (%s)\n", AUTHD_VERSION, rte_version());
		exit(0);
	}
	if (rc || dp_config_check(cfg, err, sizeof(err)))
		die("%s", err);
	return 0;
}

static void
load_progress(uint64_t done, uint64_t total)
{
	fprintf(stderr, "\rauthd: loading users %llu/%llu",
		(unsigned long long)done, (unsigned long long)total);
	if (done == total)
		fputc('\n', stderr);
}

/*
 * The state at start (recovery.c): the snapshot (a file, or the newest valid
 * one of a directory), then the journal after it; a torn tail is cut, any
 * other damage stops start-up with the file, the offset and why. @p jend
 * receives the journal's end for the ledger to append after.
 */
static struct lim_db *
load_db(const struct dp_config *cfg, unsigned shards,
	struct dp_journal_scan *jend)
{
	struct dp_recover_opts o = {
		.snapshot = cfg->snapshot,
		.journal_dir = cfg->journal_dir[0] ? cfg->journal_dir : NULL,
		.db = {.users_max = cfg->users_max, .ops_max = cfg->ops_max,
		       .merchants_max = 1024, .groups_max = 1024,
		       .shards = shards},
		.cut_torn_tail = true,
		.log = stderr,
		.progress = isatty(2) ? load_progress : NULL,
	};
	struct dp_recover_result res;
	char err[PATH_MAX + 512] = "";

	if (!cfg->snapshot[0] && !o.journal_dir && cfg->mode == DP_MODE_DECIDE)
		RTE_LOG(WARNING, USER1,
			"no --snapshot: starting with an empty user base\n");
	rcu_register_thread(); /* lookups and publishes during the redo */
	if (dp_recover(&o, &res, err, sizeof(err)))
		die("cannot recover the state: %s", err);
	rcu_unregister_thread();
	*jend = res.scan;
	dp_recover_free(&res);
	return res.db;
}

/* Fault the tables in now, not on the first packets; say how long it took. */
static void
prefault(struct lim_db *db)
{
	uint64_t t0 = rte_get_timer_cycles();

	lim_db_prefault(db);
	RTE_LOG(INFO, USER1, "tables faulted in: %.2f s\n",
		(double)(rte_get_timer_cycles() - t0) / (double)rte_get_timer_hz());
}

static void
setup_port(struct dp_ctx *ctx)
{
	unsigned lcores[DP_LCORES_MAX], n = 0, id;
	struct nic_port_conf pc = {0};
	char list[512];

	RTE_LCORE_FOREACH(id)
		if (n < DP_LCORES_MAX)
			lcores[n++] = id;
	if (nic_port_by_name(ctx->cfg.port, &pc.port_id)) {
		nic_port_list(list, sizeof(list));
		fprintf(stderr, "authd: --port %s: no such port; ports: %s\n",
			ctx->cfg.port, list[0] ? list : "none (add --vdev or a PCI device)");
		exit(1);
	}
	pc.queues = (uint16_t)n;
	pc.rx_ring_size = ctx->cfg.rx_ring;
	pc.tx_ring_size = ctx->cfg.tx_ring;
	pc.promiscuous = ctx->cfg.promiscuous;
	pc.lcores = lcores;
	if (nic_port_init(&pc, &ctx->port))
		die("%s", "port bring-up failed (see the message above)");
	nic_host_from_port(&ctx->host, &ctx->port, ctx->cfg.ip, ctx->cfg.udp_port);
	ctx->n_lcores = n;
}

static void
setup_lcores(struct dp_ctx *ctx)
{
	unsigned id, q = 0;

	RTE_LCORE_FOREACH(id) {
		if (q == ctx->n_lcores)
			break;
		ctx->lc[q] = dp_lcore_create(ctx, id, (uint16_t)q, q);
		if (!ctx->lc[q])
			die("%s", "cannot allocate an lcore's rings (raise EAL -m)");
		q++;
	}
}

/* ------------------------------------------------------------------------ */
/* The rooms: each is given what it needs, nothing of dp_ctx                  */

static uint32_t
clock_now(const void *arg)
{
	return dp_clock_now_s(&((const struct dp_ctx *)arg)->clock);
}

static uint64_t
risk_dropped(const void *arg)
{
	const struct dp_ctx *ctx = arg;
	uint64_t n = 0;

	for (unsigned i = 0; i < ctx->n_lcores; i++)
		n += __atomic_load_n(&ctx->lc[i]->st.c[DP_C_risk_dropped],
				     __ATOMIC_RELAXED);
	return n;
}

static void
start_ledger(struct dp_ctx *ctx, const struct dp_journal_scan *jend)
{
	static struct rte_ring *rings[DP_LCORES_MAX];
	struct dp_ledger_conf c = {
		.db = ctx->db, .journal_dir = ctx->cfg.journal_dir,
		.segment_bytes = ctx->cfg.journal_segment_bytes,
		.rings = rings, .n_rings = ctx->n_lcores,
		/* shards: one per lcore, then the control plane, the ledger */
		.shard = ctx->n_lcores + 1,
		.now_s = clock_now, .now_arg = ctx,
		.durable_seq = &ctx->durable_seq,
		.journal_failed = &ctx->journal_failed,
	};

	for (unsigned i = 0; i < ctx->n_lcores; i++)
		rings[i] = ctx->lc[i]->effects;
	ctx->ledger = dp_ledger_start(&c, jend);
	if (!ctx->ledger)
		die("%s", "cannot start the ledger worker");
}

static void
start_risk(struct dp_ctx *ctx)
{
	static struct rte_ring *rings[DP_LCORES_MAX];
	struct dp_risk_conf c = {
		.cfg = &ctx->cfg.risk, .db = ctx->db, .rings = rings,
		.n_rings = ctx->n_lcores, .ledger = ctx->ledger,
		.dropped = risk_dropped, .dropped_arg = ctx,
	};

	for (unsigned i = 0; i < ctx->n_lcores; i++)
		rings[i] = ctx->lc[i]->decisions;
	if (dp_risk_start(&c, &ctx->risk))
		die("%s", "cannot start the risk worker (see above)");
	if (ctx->risk)
		return;
	/* --risk off: nobody drains, so nobody produces. */
	for (unsigned i = 0; i < ctx->n_lcores; i++) {
		rte_ring_free(ctx->lc[i]->decisions);
		ctx->lc[i]->decisions = NULL;
	}
}

static void
start_export(struct dp_ctx *ctx)
{
	struct dp_export_conf c = {
		.url = ctx->cfg.export_url, .subject = ctx->cfg.export_subject,
		.stream = ctx->cfg.export_stream,
		.journal_dir = ctx->cfg.journal_dir,
		.durable_seq = &ctx->durable_seq,
	};

	if (dp_export_start(&c, &ctx->export))
		die("%s", "cannot start the export to NATS (see above)");
}

static uint32_t
ctl_now(void *arg)
{
	return clock_now(arg);
}

static bool
ctl_clock_fixed(void *arg)
{
	return ((struct dp_ctx *)arg)->clock.mode == DP_CLOCK_FIXED;
}

static int
ctl_clock_set(void *arg, uint32_t unix_s)
{
	return dp_clock_set(&((struct dp_ctx *)arg)->clock, unix_s);
}

static struct json_t *
ctl_stats(void *arg)
{
	return dp_stats_json(arg);
}

static void
start_ctl(struct dp_ctx *ctx)
{
	static const struct dp_ctl_ops ops = {
		.now_s = ctl_now, .clock_fixed = ctl_clock_fixed,
		.clock_set = ctl_clock_set, .stats = ctl_stats,
	};
	struct dp_ctl_env env = {
		.path = ctx->cfg.ctl_path, .db = ctx->db, .ledger = ctx->ledger,
		.risk = ctx->risk, .keyring = &ctx->keyring,
		.keys_path = ctx->cfg.keys, .ops = &ops, .arg = ctx,
	};

	ctx->ctl = dp_ctl_start(&env);
	if (!ctx->ctl)
		die("%s", "cannot open the control socket (see above)");
}

static void
metrics_write(void *arg, struct dp_prom *w)
{
	dp_stats_prom(arg, w);
}

/* --metrics: the port first, before anything is loaded (a port in use or
 * a build without libmicrohttpd stops authd at once). */
static void
open_metrics(struct dp_ctx *ctx)
{
	char err[512];

	if (ctx->cfg.metrics[0] &&
	    dp_metrics_open(ctx->cfg.metrics, &ctx->metrics, err, sizeof(err)))
		die("%s", err);
}

/* Serve once everything the scrape reads is up. */
static void
start_metrics(struct dp_ctx *ctx)
{
	struct dp_metrics_conf c = {.write = metrics_write, .arg = ctx};

	if (ctx->metrics && dp_metrics_start(ctx->metrics, &c))
		die("cannot serve --metrics %s (see above)", ctx->cfg.metrics);
}

static void
setup(struct dp_ctx *ctx)
{
	static struct dp_journal_scan jend;
	char err[512];

	open_metrics(ctx);
	dp_clock_init(&ctx->clock, ctx->cfg.clock_mode, ctx->cfg.clock_fixed_s);
	ctx->keyring = auth_keyring_load(ctx->cfg.keys, err, sizeof(err));
	if (!ctx->keyring)
		die("%s", err);
	ctx->replay = auth_replay_create(ctx->cfg.streams);
	if (!ctx->replay)
		die("%s", "cannot allocate the replay windows");
	setup_port(ctx);
	/* Shards: one per dataplane lcore, then the control plane, the ledger. */
	ctx->db = load_db(&ctx->cfg, ctx->n_lcores + 2, &jend);
	prefault(ctx->db);
	/* --policy overrides the snapshot's policy, before any packet. */
	if (ctx->cfg.policy[0] &&
	    dp_policy_file_load(ctx->db, ctx->cfg.policy, err, sizeof(err)))
		die("%s", err);
	setup_lcores(ctx);
	start_ledger(ctx, &jend);
	/* --policy changed the recovered policy: journal it like a change. */
	if (ctx->cfg.policy[0] &&
	    dp_ledger_journal_policy(ctx->ledger, ctx->db, 0,
				     dp_clock_now_s(&ctx->clock), NULL))
		die("%s", "cannot journal the policy of --policy");
	start_risk(ctx);
	/* After recovery and the ledger: it follows ctx->durable_seq. */
	start_export(ctx);
	start_ctl(ctx);
	if (dp_telemetry_register(ctx))
		RTE_LOG(WARNING, USER1, "telemetry commands not registered\n");
	start_metrics(ctx);
}

static void
print_summary(FILE *f, const struct dp_ctx *ctx, const struct dp_stats *s,
	      uint64_t drained, uint64_t left)
{
	fprintf(f, "authd: rx %llu tx %llu datagrams %llu records %llu "
		   "approved %llu declined %llu errors %llu effects %llu "
		   "drained %llu\n",
		(unsigned long long)s->c[DP_C_rx_pkts],
		(unsigned long long)s->c[DP_C_tx_pkts],
		(unsigned long long)s->c[DP_C_dgrams],
		(unsigned long long)s->c[DP_C_records],
		(unsigned long long)s->status[0], (unsigned long long)s->status[1],
		(unsigned long long)s->status[2],
		(unsigned long long)s->c[DP_C_effects],
		(unsigned long long)drained);
	fprintf(f, "authd: lcores stopped %d/%u, effects left in the rings %llu\n",
		__atomic_load_n(&ctx->rx_stopped, __ATOMIC_ACQUIRE), ctx->n_lcores,
		(unsigned long long)left);
}

/*
 * Every lcore has stopped: wait (bounded, 5 s) until the ledger worker has
 * taken every effect they handed over, and return how many it took.
 */
static uint64_t
ledger_wait(const struct dp_ctx *ctx, uint64_t effects)
{
	for (unsigned i = 0; i < 5000 && dp_ledger_drained(ctx->ledger) < effects; i++)
		usleep(1000);
	return dp_ledger_drained(ctx->ledger);
}

static void
shutdown_all(struct dp_ctx *ctx)
{
	uint64_t drained, left = 0;
	struct dp_stats s;

	rte_eal_mp_wait_lcore();
	/* Nothing reads or changes the engine while it is taken apart. */
	dp_ctl_stop(ctx->ctl);
	ctx->ctl = NULL;
	dp_telemetry_stop(ctx);
	/* Joined here: it reads the risk worker, the export and the ledger. */
	dp_metrics_stop(ctx->metrics);
	ctx->metrics = NULL;
	/* Verdicts from the last records are applied and journaled. */
	dp_risk_stop(ctx->risk);
	ctx->risk = NULL;
	/* Read by the control thread and stats: stopped after them; before
	 * the ledger, so a NATS outage never delays the journal's drain. */
	dp_export_stop(ctx->export);
	ctx->export = NULL;
	dp_stats_sum(ctx, &s);
	drained = ledger_wait(ctx, s.c[DP_C_effects]);
	dp_ledger_stop(ctx->ledger);
	ctx->ledger = NULL;
	for (unsigned i = 0; i < ctx->n_lcores; i++)
		left += rte_ring_count(ctx->lc[i]->effects);
	print_summary(stderr, ctx, &s, drained, left);
	/*
	 * Stop the port but do not close it nor call rte_eal_cleanup():
	 * DPDK 22.11's memif server frees its listener's interrupt handle on
	 * close without unregistering the callback, and the interrupt thread
	 * can then crash (seen about 1 run in 10 under load). The process
	 * exits right after; the kernel releases everything.
	 */
	nic_port_stop(&ctx->port);
}

int
main(int argc, char **argv)
{
	static struct dp_ctx ctx;
	int eal;

	if (has_arg(argc, argv, "-h") || has_arg(argc, argv, "--help")) {
		usage(stdout, "authd");
		return 0;
	}
	if (has_arg(argc, argv, "-V") || has_arg(argc, argv, "--version")) {
		printf("authd %s (%s)\n", AUTHD_VERSION, rte_version());
		return 0;
	}
	argv = eal_argv(&argc, argv);
	if (hugepages_missing(argc, argv)) {
		fprintf(stderr,
			"authd: no hugepages are set up. Reserve some, e.g.\n"
			"  echo 1024 > /sys/kernel/mm/hugepages/hugepages-2048kB/nr_hugepages\n"
			"and mount hugetlbfs (dpdk-hugepages.py --setup 2G does both),\n"
			"or, for tests, pass --no-huge -m 512 to the EAL.\n");
		return 1;
	}
	eal = rte_eal_init(argc, argv);
	if (eal < 0)
		die("EAL initialisation failed: %s", rte_strerror(rte_errno));
	app_args(&ctx.cfg, argc - eal, argv + eal);
	rte_log_set_global_level((uint32_t)ctx.cfg.log_level);
	g_ctx = &ctx;
	signal(SIGINT, on_signal);
	signal(SIGTERM, on_signal);
	setup(&ctx);
	RTE_LOG(NOTICE, USER1,
		"authd %s: %s mode, ack %s, %u dataplane lcore(s), %llu users\n",
		AUTHD_VERSION, ctx.cfg.mode == DP_MODE_FORWARD ? "forward" : "decide",
		ctx.cfg.ack == DP_ACK_SYNC ? "sync" : "async", ctx.n_lcores,
		(unsigned long long)lim_users_count(ctx.db->users));
	rte_eal_mp_remote_launch(dp_lcore_main, &ctx, CALL_MAIN);
	shutdown_all(&ctx);
	return 0;
}
