/*
 * authgen.c - the load generator's main: EAL, options, key, ids, model,
 * port, ARP, workers, report.
 *
 * Start-up order: EAL; options (exit 2 with a message naming the option);
 * the key (from --key or the keys file); the model and the id tables, the
 * profile (authgen_profile.c: it reads the snapshot's limits and
 * merchants); the pcap to replay (its reader thread starts reading ahead);
 * the port with one queue pair per EAL lcore, its link; the pcap recorder
 * (one ring per worker, a writer thread); authd's MAC (ARP unless
 * --dst-mac); then every EAL lcore, the main one too, runs
 * gen_worker_main(). SIGINT/SIGTERM stop the sending; the workers wait for
 * the answers in flight (at most --timeout) and the report is printed as if
 * the run had ended normally. The recording is closed (everything queued
 * written) before the report.
 *
 * Exit: 0 all answered and verified, 1 errors in the run, 2 set-up failed.
 */
#include <errno.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <rte_cycles.h>
#include <rte_eal.h>
#include <rte_ethdev.h>
#include <rte_lcore.h>

#include "authgen.h"

#define GEN_LINK_WAIT_MS 5000
#define GEN_ARP_WAIT_MS 3000
#define PCAP_ERR_LEN 512

static struct gen_ctx *g_ctx;

static void
on_signal(int sig)
{
	(void)sig;
	if (g_ctx)
		__atomic_store_n(&g_ctx->stop, 1, __ATOMIC_RELAXED);
}

static void __attribute__((noreturn, format(printf, 1, 2)))
die(const char *fmt, ...)
{
	va_list ap;

	fprintf(stderr, "authgen: ");
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
	exit(2);
}

static bool
wants_help(int argc, char **argv)
{
	for (int i = 1; i < argc; i++)
		if (!strcmp(argv[i], "-h") || !strcmp(argv[i], "--help"))
			return true;
	return false;
}

/* The key: --key as given, or the gateway's from the keys file. */
static void
setup_key(struct gen_config *c)
{
	const struct auth_gateway *gw;
	struct auth_keyring *kr;
	char err[512];
	unsigned i;

	if (c->key_set)
		return;
	kr = auth_keyring_load(c->keys_path, err, sizeof(err));
	if (!kr)
		die("%s", err);
	gw = auth_keyring_find(kr, c->gateway_id);
	if (!gw)
		die("%s: no [gateway %u]", c->keys_path, c->gateway_id);
	for (i = 0; i < gw->n_keys; i++)
		if (!c->key_id_set || gw->keys[i].key_id == c->key_id)
			break;
	if (i == gw->n_keys)
		die("%s: gateway %u has no key %u", c->keys_path, c->gateway_id,
		    c->key_id);
	c->key_id = gw->keys[i].key_id;
	memcpy(c->key, gw->keys[i].key, AUTH_KEY_LEN);
	c->key_set = true;
	auth_keyring_free(kr);
}

static void
setup_clock(struct gen_ctx *ctx)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	ctx->tsc_hz = rte_get_tsc_hz();
	ctx->ns_mult = (uint64_t)(((unsigned __int128)1000000000ull << 32) /
				  ctx->tsc_hz);
	ctx->tsc0 = rte_rdtsc();
	ctx->unix_ns0 = (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
	if (!ctx->cfg.run_tag_set) {
		/* Changes every ~65 ms and with the pid: runs do not collide. */
		ctx->cfg.run_tag = (uint16_t)((ctx->unix_ns0 >> 26) ^
					      ((uint64_t)getpid() << 5));
		if (ctx->cfg.run_tag == 0)
			ctx->cfg.run_tag = 1;
	}
}

static int
merchant_id_of(const void *rec, void *arg)
{
	uint32_t **p = arg;

	*(*p)++ = ((const struct lim_merchant *)rec)->merchant_id;
	return 0;
}

struct members_walk {
	struct gen_member *m;
	uint64_t n, cap;
};

static int
group_members(const void *rec, void *arg)
{
	const struct lim_group *g = rec;
	struct members_walk *w = arg;

	for (unsigned i = 0; i < g->n_members && i < LIM_GROUP_MEMBERS_MAX; i++) {
		if (w->n == w->cap) {
			uint64_t cap = w->cap ? 2 * w->cap : 1024;
			struct gen_member *m = realloc(w->m, cap * sizeof(*m));

			if (!m)
				return -ENOMEM;
			w->m = m;
			w->cap = cap;
		}
		w->m[w->n++] = (struct gen_member){g->members[i], g->group_id, 0};
	}
	return 0;
}

/* User and merchant ids from a database (a snapshot's). */
static void
ids_from_db(struct gen_ctx *ctx, struct lim_db *db)
{
	const struct gen_config *c = &ctx->cfg;
	uint64_t n = lim_users_count(db->users);
	uint64_t *u;
	uint32_t *m, *p;

	if (!c->users) {
		u = malloc((n ? n : 1) * sizeof(*u));
		if (!u)
			die("out of memory for %llu user ids",
			    (unsigned long long)n);
		for (uint64_t i = 0; i < n; i++)
			u[i] = lim_users_at(db->users, i)->user_id;
		ctx->user_ids = u;
		ctx->n_users = n;
	}
	if (!ctx->members) {
		struct members_walk mw = {NULL, 0, 0};

		if (lim_kv_foreach(db->groups, group_members, &mw))
			die("out of memory for group members");
		ctx->members = mw.m;
		ctx->n_members = mw.n;
	}
	if (!c->merchants) {
		n = lim_kv_count(db->merchants);
		m = p = malloc((n ? n : 1) * sizeof(*m));
		if (!m)
			die("out of memory for merchant ids");
		lim_kv_foreach(db->merchants, merchant_id_of, &p);
		ctx->merchant_ids = m;
		ctx->n_merchants = (uint64_t)(p - m);
	}
}

static void
setup_ids(struct gen_ctx *ctx)
{
	struct gen_config *c = &ctx->cfg;
	struct lim_db *db = NULL;
	char err[512];

	ctx->n_users = c->users;
	ctx->n_merchants = c->merchants;
	if (c->check_model[0]) {
		ctx->model = gen_model_create(c, err, sizeof(err));
		if (!ctx->model)
			die("--check-model %s: %s", c->check_model, err);
	}
	if (c->ids_from[0]) {
		db = lim_snapshot_load(c->ids_from, NULL, NULL, NULL, err,
				       sizeof(err));
		if (!db)
			die("--ids-from %s: %s", c->ids_from, err);
		ids_from_db(ctx, db);
	} else if (ctx->model) {
		ids_from_db(ctx, gen_model_db(ctx->model));
	}
	if (c->replay_path[0]) { /* the pcap says who pays */
		if (db)
			lim_db_free(db);
		return;
	}
	if (ctx->n_users == 0)
		die("no users to send for (an empty snapshot?)");
	if (c->users && !c->merchants && !ctx->merchant_ids) {
		/* authdb gen's default for the same number of users */
		struct lim_gen_config g = {.seed = c->seed, .users = c->users};

		ctx->n_merchants = lim_gen_merchants(&g);
	}
	ctx->amounts = gen_amounts_table(&c->amounts, c->seed);
	if (!ctx->amounts)
		die("out of memory");
	if (gen_profile_setup(ctx, db ? db : ctx->model ? gen_model_db(ctx->model)
							: NULL,
			      err, sizeof(err)))
		die("%s", err);
	if (db)
		lim_db_free(db);
}

/* --replay: open the pcap, start reading ahead. */
static void
setup_replay(struct gen_ctx *ctx)
{
	char err[PCAP_ERR_LEN];

	if (!ctx->cfg.replay_path[0])
		return;
	if (rte_lcore_count() != 1)
		die("--replay sends the pcap in its order: one lcore (-l N)");
	ctx->rp = gen_replay_open(&ctx->cfg, err, sizeof(err));
	if (!ctx->rp)
		die("--replay %s: %s", ctx->cfg.replay_path, err);
}

/* --record: the file and the writer thread, one ring per worker. */
static void
setup_record(struct gen_ctx *ctx)
{
	char err[PCAP_ERR_LEN];

	if (!ctx->cfg.record_path[0])
		return;
	ctx->rec = gen_record_open(ctx->cfg.record_path, ctx->n_workers, err,
				   sizeof(err));
	if (!ctx->rec)
		die("--record %s: %s", ctx->cfg.record_path, err);
}

static void
setup_port(struct gen_ctx *ctx)
{
	struct nic_port_conf pc = {0};
	struct nic_host host;
	unsigned lcores[GEN_LCORES_MAX], n = 0, id;
	char list[512];
	int rc;

	RTE_LCORE_FOREACH(id)
		if (n < GEN_LCORES_MAX)
			lcores[n++] = id;
	if (nic_port_by_name(ctx->cfg.port, &pc.port_id)) {
		nic_port_list(list, sizeof(list));
		die("--port %s: no such port; ports: %s", ctx->cfg.port,
		    list[0] ? list : "none (add --vdev net_memif0,role=client,"
				     "socket=PATH)");
	}
	pc.queues = (uint16_t)n;
	pc.lcores = lcores;
	if (nic_port_init(&pc, &ctx->port))
		die("port bring-up failed (see above; is authd listening?)");
	ctx->n_workers = n;
	nic_host_from_port(&host, &ctx->port, ctx->cfg.src_ip,
			   ctx->cfg.src_port);
	ctx->tx_cksum = host.flags & (NIC_F_TX_IP_CKSUM | NIC_F_TX_UDP_CKSUM);
	ctx->src_mac = ctx->port.mac;
	rc = nic_port_link_wait(&ctx->port, GEN_LINK_WAIT_MS);
	if (rc)
		die("port %s: link not up after %u ms (%s)", ctx->port.name,
		    GEN_LINK_WAIT_MS, strerror(-rc));
}

static void
setup_peer(struct gen_ctx *ctx)
{
	char ip[16];

	if (ctx->cfg.dst_mac_set) {
		ctx->dst_mac = ctx->cfg.dst_mac;
		return;
	}
	if (gen_arp_resolve(ctx, GEN_ARP_WAIT_MS) == 0)
		return;
	snprintf(ip, sizeof(ip), "%u.%u.%u.%u", ctx->cfg.dst_ip >> 24,
		 (ctx->cfg.dst_ip >> 16) & 255, (ctx->cfg.dst_ip >> 8) & 255,
		 ctx->cfg.dst_ip & 255);
	die("no ARP reply from %s in %u ms: is authd running with --ip %s? "
	    "(or pass --dst-mac)", ip, GEN_ARP_WAIT_MS, ip);
}

static void
setup_workers(struct gen_ctx *ctx)
{
	unsigned id, i = 0;

	if (ctx->model && ctx->n_workers != 1)
		die("--check-model needs one lcore (-l N): the model decides "
		    "in send order");
	if (ctx->cfg.streams < ctx->n_workers)
		die("--streams %u: fewer than the %u lcores (each worker needs "
		    "its own stream)", ctx->cfg.streams, ctx->n_workers);
	RTE_LCORE_FOREACH(id) {
		if (i == ctx->n_workers)
			break;
		ctx->w[i] = gen_worker_create(ctx, i, id);
		if (!ctx->w[i])
			die("out of memory for worker %u (--inflight %u)", i,
			    ctx->cfg.inflight);
		i++;
	}
}

/*
 * --linger: the run is over and reported; keep the link up, without
 * touching the queues, until authd goes away (link down), a signal, or the
 * time is up. Reading the link status does not touch the rings.
 */
static void
linger(struct gen_ctx *ctx)
{
	uint64_t end = rte_rdtsc() + ctx->tsc_hz * ctx->cfg.linger_s;
	struct rte_eth_link link;

	while (rte_rdtsc() < end && !__atomic_load_n(&ctx->stop,
						     __ATOMIC_RELAXED)) {
		if (rte_eth_link_get_nowait(ctx->port.port_id, &link) == 0 &&
		    link.link_status == RTE_ETH_LINK_DOWN)
			return;
		rte_delay_us_sleep(20000);
	}
}

static void
teardown(struct gen_ctx *ctx)
{
	for (unsigned i = 0; i < ctx->n_workers; i++)
		gen_worker_free(ctx->w[i]);
	gen_model_free(ctx->model);
	gen_replay_close(ctx->rp);
	free(ctx->samples);
	free(ctx->attackers);
	free(ctx->amounts);
	free((void *)ctx->user_ids);
	free((void *)ctx->merchant_ids);
	free((void *)ctx->members);
	/*
	 * Stop, do not close: closing a memif port in DPDK 22.11 may leave the
	 * interrupt thread with freed memory (nic.h, nic_port_close()); the
	 * process ends right after and the kernel closes the socket.
	 */
	nic_port_stop(&ctx->port);
}

int
main(int argc, char **argv)
{
	static struct gen_ctx ctx;
	char err[512];
	int eal, rc;

	if (wants_help(argc, argv)) {
		gen_usage(stdout);
		return 0;
	}
	eal = rte_eal_init(argc, argv);
	if (eal < 0)
		die("EAL initialisation failed: %s", rte_strerror(rte_errno));
	gen_config_default(&ctx.cfg);
	rc = gen_config_args(&ctx.cfg, argc - eal, argv + eal, err, sizeof(err));
	if (rc < 0)
		die("%s", err);
	if (rc > 0)
		return 0;
	if (ctx.cfg.rate && ctx.cfg.rate < rte_lcore_count())
		die("--rate %llu: less than one datagram/s per lcore",
		    (unsigned long long)ctx.cfg.rate);
	setup_key(&ctx.cfg);
	setup_clock(&ctx);
	/*
	 * Not a QSBR reader during set-up (as authd): nothing is published
	 * concurrently, and a registered, online thread would deadlock with
	 * the grace periods that loading or freeing a database waits for
	 * (cds_lfht resizes and destroys call synchronize_rcu).
	 */
	setup_ids(&ctx);
	setup_replay(&ctx);
	setup_port(&ctx);
	setup_record(&ctx);
	setup_peer(&ctx);
	setup_workers(&ctx);
	g_ctx = &ctx;
	signal(SIGINT, on_signal);
	signal(SIGTERM, on_signal);
	rte_eal_mp_remote_launch(gen_worker_main, &ctx, CALL_MAIN);
	rte_eal_mp_wait_lcore();
	if (ctx.rec && gen_record_close(ctx.rec, &ctx.rec_frames,
					&ctx.rec_requests, &ctx.rec_answers)) {
		fprintf(stderr, "authgen: --record %s: write error\n",
			ctx.cfg.record_path);
		ctx.rec_error = true;
	}
	ctx.rec = NULL;
	rc = gen_report(&ctx);
	/* A signal during the run means "stop": no lingering then. */
	if (ctx.cfg.linger_s && !__atomic_load_n(&ctx.stop, __ATOMIC_RELAXED))
		linger(&ctx);
	teardown(&ctx);
	return rc;
}
