/*
 * bench_engine.c - micro-benchmarks of the decision core, without packet I/O.
 *
 * What each measures (items = records, lookups or operations):
 * - users_find/{hit,miss,burst}: the user table at 1 K, 1 M and 10 M users
 *   (a synthetic base from lim_gen_fill, ids looked up in random order);
 *   burst = lim_users_find_burst over 32 ids, the dataplane's way;
 * - lfht_find: the same ids in a liburcu cds_lfht with one node per user,
 *   the alternative the user table was chosen over (bytes per user printed);
 * - merchant_find: the merchants' RCU open-addressing table (limits/kv.c,
 *   which replaced a cds_lfht) at users/10 merchants;
 * - lock: an uncontended lim_user_lock/unlock pair (the price of the lock
 *   word; sharding users to cores would instead cost a ring hop per record,
 *   measured in bench_dpdk);
 * - decide/<path>: auth_decide alone on a user of the base, per reason path;
 * - exec_authorize: auth_exec_one end to end (lock, idempotency lookup and
 *   insert, decide, apply) for approvals over 1 M users;
 * - parse/<n>: auth_dgram_parse (header, keyring, SipHash tag) of a datagram
 *   of 1 and 16 records; replay: the replay window alone;
 * - publish: lim_merchant_set (copy, publish, call_rcu free).
 *
 * Tables are built once per size and kept for the whole run (Google
 * Benchmark calls a benchmark several times while it sizes the run).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <sodium.h>
#include <urcu-qsbr.h>
#include <urcu/rculfhash.h>

#include "auth.h"
#include "gbench_shim.h"
#include "lim.h"

#define SEED 42
#define NOW 1793332800u /* 2026-10-30 12:00 +08:00 */
#define IDS (1u << 20)  /* random ids cycled through: more than the caches hold */

struct world {
	uint64_t users;
	struct lim_db *db;
	uint64_t ids[IDS];       /* present, random order */
	uint64_t miss[IDS];      /* absent */
};

static struct world *worlds[3];

static unsigned
size_slot(uint64_t users)
{
	return users <= 1000 ? 0 : users <= 1000000 ? 1 : 2;
}

static uint64_t
rnd(uint64_t *s)
{
	uint64_t z = (*s += 0x9e3779b97f4a7c15ULL);

	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
	return z ^ (z >> 31);
}

static struct world *
world(uint64_t users)
{
	unsigned k = size_slot(users);
	struct lim_db_config dc = {.users_max = users, .ops_max = 1u << 23,
				   .merchants_max = users / 10 + 100,
				   .groups_max = users / 50 + 16, .shards = 4};
	struct lim_gen_config gc = {.seed = SEED, .users = users, .now_s = NOW};
	char err[256];
	uint64_t s = 7;
	struct world *w;

	if (worlds[k])
		return worlds[k];
	w = calloc(1, sizeof(*w));
	w->users = users;
	w->db = lim_db_create(&dc);
	if (!w->db || lim_gen_fill(w->db, &gc, NULL, err, sizeof(err))) {
		fprintf(stderr, "bench_engine: cannot build %llu users: %s\n",
			(unsigned long long)users, err);
		exit(1);
	}
	for (unsigned i = 0; i < IDS; i++) {
		w->ids[i] = lim_gen_user_id(SEED, rnd(&s) % users);
		w->miss[i] = lim_gen_user_id(SEED + 1, i) | 1; /* another base */
	}
	worlds[k] = w;
	return w;
}

static const int64_t sizes[] = {1000, 1000000, 10000000};
static const char *const size_name[] = {"users"};

static void
users_find_hit(struct perf_state *s)
{
	struct world *w = world((uint64_t)perf_range(s, 0));
	unsigned i = 0;

	PERF_LOOP(s) {
		struct lim_user *u = lim_users_find(w->db->users, w->ids[i++ % IDS]);
		perf_do_not_optimize(u);
	}
	perf_set_items(s, perf_iterations(s));
	perf_counter(s, "bytes_per_user",
		     (double)lim_users_bytes(w->db->users) / (double)w->users);
}
PERF_BENCH_SPEC(users_find_hit, .name = "users_find/hit", .args = sizes,
		.runs = 3, .arity = 1, .arg_names = size_name);

static void
users_find_miss(struct perf_state *s)
{
	struct world *w = world((uint64_t)perf_range(s, 0));
	unsigned i = 0;

	PERF_LOOP(s) {
		struct lim_user *u = lim_users_find(w->db->users, w->miss[i++ % IDS]);
		perf_do_not_optimize(u);
	}
	perf_set_items(s, perf_iterations(s));
}
PERF_BENCH_SPEC(users_find_miss, .name = "users_find/miss", .args = sizes,
		.runs = 3, .arity = 1, .arg_names = size_name);

static void
users_find_burst(struct perf_state *s)
{
	struct world *w = world((uint64_t)perf_range(s, 0));
	struct lim_user *out[32];
	unsigned i = 0;

	PERF_LOOP(s) {
		lim_users_find_burst(w->db->users, &w->ids[i], 32, out);
		perf_do_not_optimize(out);
		i = (i + 32) % IDS; /* IDS is a multiple of 32 */
	}
	perf_set_items(s, perf_iterations(s) * 32);
}
PERF_BENCH_SPEC(users_find_burst, .name = "users_find/burst32", .args = sizes,
		.runs = 3, .arity = 1, .arg_names = size_name);

/* Merchants (users/10 of them) in the RCU open-addressing kv table. */
static void
merchant_find(struct perf_state *s)
{
	struct world *w = world((uint64_t)perf_range(s, 0));
	uint64_t n = lim_gen_merchants(&(struct lim_gen_config){.users = w->users});
	static uint32_t ids[IDS];
	uint64_t r = 11;
	unsigned i = 0;

	for (unsigned k = 0; k < IDS; k++)
		ids[k] = lim_gen_merchant_id(SEED, rnd(&r) % n);
	PERF_LOOP(s) {
		const struct lim_merchant *m = lim_merchant_find(w->db, ids[i++ % IDS]);
		perf_do_not_optimize(m);
	}
	perf_set_items(s, perf_iterations(s));
	perf_counter(s, "merchants", (double)n);
}
PERF_BENCH_SPEC(merchant_find, .name = "merchant_find/hit", .args = sizes,
		.runs = 3, .arity = 1, .arg_names = size_name);

/* ------------------------------------------------------------------------ */
/* cds_lfht with one node per user: the road not taken                        */

struct lfht_user {
	struct cds_lfht_node node;
	struct lim_user u;
};

struct lfht_world {
	struct cds_lfht *ht;
	/* Every node, so they stay reachable: cds_lfht keeps its buckets in
	 * memory LeakSanitizer does not scan, and it would call them leaked. */
	struct lfht_user **nodes;
	uint64_t users;
};

static struct lfht_world *lfht_worlds[3];

static int
lfht_match(struct cds_lfht_node *n, const void *key)
{
	return caa_container_of(n, struct lfht_user, node)->u.user_id ==
	       *(const uint64_t *)key;
}

static struct lfht_world *
lfht_world(uint64_t users)
{
	unsigned k = size_slot(users);
	struct lfht_world *w;

	if (lfht_worlds[k])
		return lfht_worlds[k];
	w = calloc(1, sizeof(*w));
	w->users = users;
	w->nodes = calloc(users, sizeof(*w->nodes));
	/* Sized up front like the user table: no resize during the run. */
	w->ht = cds_lfht_new(1ULL << (64 - __builtin_clzll(users)), 1,
			     1ULL << (64 - __builtin_clzll(users)), 0, NULL);
	/* One allocation per node, as a per-user RCU record would need. */
	for (uint64_t i = 0; i < users; i++) {
		struct lfht_user *n = calloc(1, sizeof(*n));

		w->nodes[i] = n;
		n->u.user_id = lim_gen_user_id(SEED, i);
		cds_lfht_node_init(&n->node);
		cds_lfht_add(w->ht, lim_user_hash(n->u.user_id), &n->node);
	}
	lfht_worlds[k] = w;
	return w;
}

static void
lfht_find(struct perf_state *s)
{
	uint64_t users = (uint64_t)perf_range(s, 0);
	struct world *w = world(users);
	struct lfht_world *lw = lfht_world(users);
	unsigned i = 0;

	PERF_LOOP(s) {
		struct cds_lfht_iter it;
		uint64_t id = w->ids[i++ % IDS];

		cds_lfht_lookup(lw->ht, lim_user_hash(id), lfht_match, &id, &it);
		perf_do_not_optimize(cds_lfht_iter_get_node(&it));
	}
	perf_set_items(s, perf_iterations(s));
	/* node (16) + record (88) rounded to jemalloc's 112-byte class, plus
	 * 8 bytes per bucket pointer at one bucket per user (power of two). */
	perf_counter(s, "bytes_per_user_est",
		     112.0 + 8.0 * (double)(1ULL << (64 - __builtin_clzll(users))) /
				     (double)users);
}
PERF_BENCH_SPEC(lfht_find, .name = "lfht_find/hit", .args = sizes, .runs = 3,
		.arity = 1, .arg_names = size_name);

/* ------------------------------------------------------------------------ */
/* Lock word                                                                  */

static void
lock_pair(struct perf_state *s)
{
	struct world *w = world(1000);
	struct lim_user *u = lim_users_find(w->db->users, w->ids[0]);

	PERF_LOOP(s) {
		lim_user_lock(u);
		perf_clobber();
		lim_user_unlock(u);
	}
	perf_set_items(s, perf_iterations(s));
}
PERF_BENCH_SPEC(lock_pair, .name = "lock/uncontended");

/* ------------------------------------------------------------------------ */
/* Decide                                                                     */

/* The label of each run says which reason the path ends in. */
enum path { P_APPROVE, P_DECLINE_BIG, P_INSTALLMENT, P_UNKNOWN_MERCHANT };

static void
decide_path(struct perf_state *s)
{
	struct world *w = world(1000000);
	struct lim_db *db = w->db;
	enum path p = (enum path)perf_range(s, 0);
	struct auth_now now;
	struct auth_req r = {.request_id = 1, .amount = 100, .op = LIM_OP_AUTHORIZE,
			     .product = LIM_PRODUCT_PAYLATER, .channel = 1};
	struct auth_in in = {.req = &r, .gateway_id = 1, .now = &now};
	struct auth_out out;
	struct lim_user *u = NULL;

	for (unsigned i = 0; i < IDS && !u; i++) {
		u = lim_users_find(db->users, w->ids[i]);
		if (u->tier < 2 || (u->flags & LIM_USER_FROZEN))
			u = NULL;
	}
	auth_now_set(&now, NOW, 8 * 3600);
	r.user_id = u->user_id;
	r.merchant_id = lim_gen_merchant_id(SEED, 0);
	in.policy = lim_policy_get(db);
	in.funders = lim_funders_get(db);
	in.cap = db->cap;
	in.user = u;
	in.ext = (u->flags & LIM_USER_EXT) ? lim_ext_find(db, u->user_id) : NULL;
	in.merchant = lim_merchant_find(db, r.merchant_id);
	if (p == P_DECLINE_BIG)
		r.amount = LIM_MONEY_MAX;
	if (p == P_INSTALLMENT) {
		r.product = LIM_PRODUCT_INSTALLMENT;
		r.terms = 6;
	}
	if (p == P_UNKNOWN_MERCHANT)
		in.merchant = NULL;
	PERF_LOOP(s) {
		auth_decide(&in, &out);
		perf_do_not_optimize(&out);
	}
	perf_set_items(s, perf_iterations(s));
	perf_set_label(s, auth_reason_name(out.resp.reason));
}
PERF_BENCH_SPEC(decide_path, .name = "decide",
		.args = (const int64_t[]){P_APPROVE, P_DECLINE_BIG,
					  P_INSTALLMENT, P_UNKNOWN_MERCHANT},
		.runs = 4, .arity = 1, .arg_names = (const char *const[]){"path"});

/*
 * auth_exec_one for fresh authorizations over 1 M users: lock, idempotency
 * lookup, decide, insert, budgets, apply. A fixed iteration count keeps the
 * op store (8 M entries) from filling up across the run.
 */
static void
exec_authorize(struct perf_state *s)
{
	struct world *w = world(1000000);
	struct auth_exec x = {.db = w->db, .shard = 0};
	static uint64_t rid = 1;
	uint32_t merchant = lim_gen_merchant_id(SEED, 0);
	uint64_t approved = 0;
	unsigned i = 0;

	auth_now_set(&x.now, NOW, 8 * 3600);
	PERF_LOOP(s) {
		uint64_t id = rid++;
		struct auth_req r = {.request_id = id,
				     .user_id = w->ids[i++ % IDS],
				     .amount = 100 + (int64_t)(id % 5000),
				     .merchant_id = merchant,
				     .op = LIM_OP_AUTHORIZE,
				     .product = LIM_PRODUCT_PAYLATER,
				     .channel = 1};
		struct lim_user *u = lim_users_find(w->db->users, r.user_id);
		struct auth_resp a;
		struct lim_effect e;

		auth_exec_one(&x, 1, &r, u, &a, &e);
		approved += a.status == AUTH_STATUS_APPROVED;
	}
	perf_set_items(s, perf_iterations(s));
	perf_counter(s, "approved_share",
		     (double)approved / (double)perf_iterations(s));
}
PERF_BENCH_SPEC(exec_authorize, .name = "exec/authorize",
		.iterations = 2000000);

/* ------------------------------------------------------------------------ */
/* Codec                                                                      */

static void
parse_verify(struct perf_state *s)
{
	unsigned n = (unsigned)perf_range(s, 0);
	static uint8_t key[AUTH_KEY_LEN] = {1, 2, 3};
	struct auth_gateway gw = {.gateway_id = 7, .n_keys = 1,
				  .keys = {{.key_id = 1}}};
	struct auth_req recs[AUTH_RECORDS_MAX];
	struct auth_hdr h = {.stream = 1, .gateway_id = 7, .key_id = 1, .seq = 1};
	uint8_t buf[AUTH_DGRAM_MAX] __attribute__((aligned(8)));
	struct auth_keyring *kr;
	struct auth_dgram d;
	uint32_t len;

	memcpy(gw.keys[0].key, key, sizeof(key));
	kr = auth_keyring_create(&gw, 1);
	for (unsigned i = 0; i < n; i++)
		recs[i] = (struct auth_req){.request_id = i + 1, .user_id = 5,
					    .amount = 100, .merchant_id = 1,
					    .op = 1, .product = 1, .channel = 1};
	len = auth_dgram_build(buf, sizeof(buf), &h, recs, n, key);
	PERF_LOOP(s) {
		enum auth_drop dr = auth_dgram_parse(buf, len, kr, NULL, 0, &d);
		perf_do_not_optimize(&dr);
	}
	perf_set_items(s, perf_iterations(s) * n);
	perf_set_bytes(s, perf_iterations(s) * len);
	auth_keyring_free(kr);
}
PERF_BENCH_SPEC(parse_verify, .name = "parse",
		.args = (const int64_t[]){1, 16}, .runs = 2, .arity = 1,
		.arg_names = (const char *const[]){"records"});

static void
replay_window(struct perf_state *s)
{
	struct auth_replay *r = auth_replay_create(1024);
	uint64_t seq = 1;

	PERF_LOOP(s) {
		enum auth_drop d = auth_replay_check(r, 7, 1, seq++);
		perf_do_not_optimize(&d);
	}
	perf_set_items(s, perf_iterations(s));
	auth_replay_free(r);
}
PERF_BENCH_SPEC(replay_window, .name = "replay");

/* ------------------------------------------------------------------------ */
/* RCU publish                                                                */

static void
publish_merchant(struct perf_state *s)
{
	struct world *w = world(1000);
	struct lim_merchant m = {.merchant_id = 4242, .mcc = 5411};
	uint16_t risk = 0;

	PERF_LOOP(s) {
		m.risk_score = risk++ % 1000;
		lim_merchant_set(w->db, &m);
		rcu_quiescent_state(); /* let call_rcu free the old copies */
	}
	perf_set_items(s, perf_iterations(s));
}
PERF_BENCH_SPEC(publish_merchant, .name = "publish/merchant");

int
main(int argc, char **argv)
{
	if (sodium_init() < 0)
		return 1;
	rcu_register_thread();
	perf_describe("authd decision-core micro-benchmarks (no packet I/O)");
	return perf_main(argc, argv);
}
