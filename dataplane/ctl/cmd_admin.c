/*
 * cmd_admin.c - the control commands on the engine as a whole: the policy,
 * the gateway keys (show, rotate: the keys file rewritten atomically and
 * the keyring republished), snapshots, the clock, the risk worker and the
 * counters (stats).
 *
 * Called online (QSBR) from the control thread only; the keyring and the
 * policy are RCU-published, the old copies freed with call_rcu.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <jansson.h>
#include <rte_log.h>
#include <urcu-qsbr.h>

#include "ctl_pvt.h"

#include <arpa/inet.h>
#include <sodium.h>

/* ------------------------------------------------------------------------ */
/* Policy                                                                     */

static json_t *
policy_json(const struct lim_policy *p)
{
	json_t *o = json_object();
	char v[64], key[48];

	for (unsigned i = 0; i < CTL_POLICY_KEYS; i++)
		json_object_set_new(o, ctl_policy_keys[i].name,
				    json_string(ctl_pkey_fmt(&ctl_policy_keys[i], p, v,
							     sizeof(v))));
	for (unsigned t = 0; t < LIM_TIERS; t++)
		for (unsigned i = 0; i < CTL_TIER_KEYS; i++) {
			snprintf(key, sizeof(key), "tier.%u.%s", t, ctl_tier_keys[i].name);
			json_object_set_new(o, key, json_string(ctl_pkey_fmt(
				&ctl_tier_keys[i], &p->tier[t], v, sizeof(v))));
		}
	return o;
}

json_t *
ctl_cmd_policy_show(struct ctl_call *k)
{
	return json_pack("{s:b,s:o}", "ok", 1, "policy", policy_json(lim_policy_get(k->db)));
}

json_t *
ctl_cmd_policy_set(struct ctl_call *k)
{
	struct lim_policy p = *lim_policy_get(k->db);
	char err[256];
	int rc = -EAGAIN;

	for (unsigned i = 0; i < k->r.n_args; i++)
		if (ctl_policy_assign(&p, k->r.args[i], err, sizeof(err)))
			return ctl_error("policy set: %s", err);
	if (lim_policy_check(&p, err, sizeof(err)))
		return ctl_error("policy set: %s", err);
	for (unsigned i = 0; i < CTL_RETRIES && rc == -EAGAIN; i++)
		rc = lim_policy_set(k->db, &p);
	if (rc == -ERANGE)
		return ctl_error("policy set: the new ceiling is below what is lent or "
				 "reserved now");
	if (rc)
		return ctl_error("policy set: not applied: %s", strerror(-rc));
	rc = dp_ledger_journal_policy(k->env->ledger, k->db, k->uid, ctl_now_s(k),
				      &k->wait_seq);
	if (rc && !k->journal_rc)
		k->journal_rc = rc;
	return ctl_cmd_policy_show(k);
}

/* ------------------------------------------------------------------------ */
/* Keys                                                                       */

struct keyring_box {
	struct rcu_head rcu;
	struct auth_keyring *kr;
};

static void
keyring_free_rcu(struct rcu_head *head)
{
	struct keyring_box *b = caa_container_of(head, struct keyring_box, rcu);

	auth_keyring_free(b->kr);
	free(b);
}

static unsigned
prefix_len(uint32_t mask)
{
	return (unsigned)__builtin_popcount(mask);
}

json_t *
ctl_cmd_keys_show(struct ctl_call *k)
{
	const struct auth_keyring *kr = rcu_dereference(*k->env->keyring);
	json_t *a = json_array();

	for (unsigned i = 0; i < auth_keyring_count(kr); i++) {
		const struct auth_gateway *g = auth_keyring_at(kr, i);
		json_t *ids = json_array(), *allow = json_array();
		char ip[INET_ADDRSTRLEN], cidr[INET_ADDRSTRLEN + 4];

		for (unsigned j = 0; j < g->n_keys; j++)
			json_array_append_new(ids, json_integer(g->keys[j].key_id));
		for (unsigned j = 0; j < g->n_sources; j++) {
			struct in_addr in = {.s_addr = htonl(g->source_ip[j])};

			inet_ntop(AF_INET, &in, ip, sizeof(ip));
			snprintf(cidr, sizeof(cidr), "%s/%u", ip, prefix_len(g->source_mask[j]));
			json_array_append_new(allow, json_string(cidr));
		}
		json_array_append_new(a, json_pack("{s:I,s:o,s:o}", "gateway",
						   (json_int_t)g->gateway_id, "key_ids", ids,
						   "allow", allow));
	}
	return json_pack("{s:b,s:s,s:o}", "ok", 1, "file", k->env->keys_path,
			 "gateways", a);
}

/* The keys file text of @p gws (auth_keyring_load's INI); NULL on ENOMEM. */
static char *
keys_text(const struct auth_gateway *gws, unsigned n, size_t *len)
{
	size_t cap = 128 + (size_t)n * 400, off;
	char *t = malloc(cap);
	char hex[2 * AUTH_KEY_LEN + 1], ip[INET_ADDRSTRLEN];

	if (!t)
		return NULL;
	off = (size_t)snprintf(t, cap, "; authd gateway keys, written by authctl keys rotate\n");
	for (unsigned i = 0; i < n; i++) {
		const struct auth_gateway *g = &gws[i];

		off += (size_t)snprintf(t + off, cap - off, "\n[gateway %u]\n", g->gateway_id);
		for (unsigned j = 0; j < g->n_keys; j++) {
			sodium_bin2hex(hex, sizeof(hex), g->keys[j].key, AUTH_KEY_LEN);
			off += (size_t)snprintf(t + off, cap - off, "key.%u = %s\n",
						g->keys[j].key_id, hex);
		}
		for (unsigned j = 0; j < g->n_sources; j++) {
			struct in_addr in = {.s_addr = htonl(g->source_ip[j])};

			inet_ntop(AF_INET, &in, ip, sizeof(ip));
			off += (size_t)snprintf(t + off, cap - off, "%s%s/%u%s",
						j ? ", " : "allow = ", ip,
						prefix_len(g->source_mask[j]),
						j + 1 == g->n_sources ? "\n" : "");
		}
	}
	sodium_memzero(hex, sizeof(hex));
	*len = off;
	return t;
}

/* New key for gateway @p g in @p gws: id = highest + 1; keep the newest two. */
static int
key_add(struct auth_gateway *g, struct auth_key *nk)
{
	unsigned hi = 0;

	for (unsigned j = 1; j < g->n_keys; j++)
		if (g->keys[j].key_id > g->keys[hi].key_id)
			hi = j;
	if (g->keys[hi].key_id == UINT32_MAX)
		return -ERANGE;
	nk->key_id = g->keys[hi].key_id + 1;
	randombytes_buf(nk->key, AUTH_KEY_LEN);
	g->keys[0] = g->keys[hi];
	g->keys[1] = *nk;
	g->n_keys = 2;
	return 0;
}

/* Build the rotated keyring and write the file; 0 or an error answer. */
static json_t *
keys_rotate_build(struct ctl_call *k, struct auth_gateway *gws, unsigned n,
		  uint32_t gw, struct auth_key *nk, struct auth_keyring **out)
{
	const char *path = k->env->keys_path;
	char *text, why[PATH_MAX + 128];
	size_t len = 0;
	int rc = -ENOENT;

	for (unsigned i = 0; i < n; i++)
		if (gws[i].gateway_id == gw)
			rc = key_add(&gws[i], nk);
	if (rc == -ENOENT)
		return ctl_error("keys rotate: gateway %u: unknown gateway", gw);
	if (rc)
		return ctl_error("keys rotate: gateway %u: key ids exhausted", gw);
	*out = auth_keyring_create(gws, n);
	if (!*out)
		return ctl_error("keys rotate: cannot build the keyring: %s", strerror(errno));
	text = keys_text(gws, n, &len);
	if (!text) {
		auth_keyring_free(*out);
		return ctl_error("keys rotate: cannot write %s: %s (the keys in "
				 "use are unchanged)", path, strerror(ENOMEM));
	}
	rc = lim_file_replace(path, text, len, 0600, why, sizeof(why));
	sodium_memzero(text, len);
	free(text);
	if (rc) {
		auth_keyring_free(*out);
		return ctl_error("keys rotate: cannot write %s: %s (the keys in "
				 "use are unchanged)", path, why);
	}
	return NULL;
}

json_t *
ctl_cmd_keys_rotate(struct ctl_call *k)
{
	struct auth_keyring *old = *k->env->keyring, *nk = NULL; /* updater: no race */
	unsigned n = auth_keyring_count(old);
	uint32_t gw = (uint32_t)ctl_arg_u(k, 0);
	struct auth_gateway *gws = calloc(n ? n : 1, sizeof(*gws));
	struct keyring_box *box = malloc(sizeof(*box));
	struct auth_key key;
	char hex[2 * AUTH_KEY_LEN + 1];
	json_t *ans;

	if (!gws || !box) {
		free(gws);
		free(box);
		return ctl_error("keys rotate: out of memory");
	}
	for (unsigned i = 0; i < n; i++)
		gws[i] = *auth_keyring_at(old, i);
	ans = keys_rotate_build(k, gws, n, gw, &key, &nk);
	sodium_memzero(gws, n * sizeof(*gws));
	free(gws);
	if (ans) {
		free(box);
		return ans;
	}
	rcu_assign_pointer(*k->env->keyring, nk);
	box->kr = old;
	call_rcu(&box->rcu, keyring_free_rcu);
	sodium_bin2hex(hex, sizeof(hex), key.key, AUTH_KEY_LEN);
	ans = json_pack("{s:b,s:I,s:I,s:I,s:s,s:s}", "ok", 1, "gateway", (json_int_t)gw,
			"key_id", (json_int_t)key.key_id, "previous_key_id",
			(json_int_t)(key.key_id - 1), "key", hex, "file", k->env->keys_path);
	sodium_memzero(hex, sizeof(hex));
	sodium_memzero(&key, sizeof(key));
	return ans;
}

/* ------------------------------------------------------------------------ */
/* Snapshot, clock, stats                                                     */

/*
 * Save to FILE.pending, wait (offline) until the journal is durable past
 * everything the snapshot may hold (db->seq after the save >= its seq_end),
 * then rename it to FILE: a published snapshot never holds an effect the
 * journal could still lose, so recovery can always redo on top of it
 * (docs/durability.md, "Snapshots and the journal").
 */
json_t *
ctl_cmd_snapshot_save(struct ctl_call *k)
{
	const char *path = k->r.args[0];
	char err[512] = "", pending[PATH_MAX];
	uint64_t upto;
	int rc;

	if (snprintf(pending, sizeof(pending), "%s.pending", path) >=
	    (int)sizeof(pending))
		return ctl_error("snapshot save: %s: path too long", path);
	rc = lim_snapshot_save(k->db, pending, err, sizeof(err));
	if (rc)
		return ctl_error("snapshot save: %s", err[0] ? err : strerror(-rc));
	upto = __atomic_load_n(&k->db->seq, __ATOMIC_RELAXED);
	rcu_thread_offline();
	rc = dp_ledger_wait_durable(k->env->ledger, upto, CTL_DURABLE_TIMEOUT_MS);
	rcu_thread_online();
	if (!rc)
		rc = lim_file_rename(pending, path, NULL, 0);
	if (rc) {
		unlink(pending);
		return ctl_error("snapshot save: %s: not published: %s", path,
				 rc == -EIO ? "the journal failed (authctl stats "
					      "shows why)"
				 : rc == -ETIMEDOUT ? "the journal did not become "
						      "durable in time"
						    : strerror(-rc));
	}
	return json_pack("{s:b,s:s,s:I,s:I}", "ok", 1, "file", path, "users",
			 (json_int_t)lim_users_count(k->db->users), "seq",
			 (json_int_t)upto);
}

static json_t *
clock_json(const struct ctl_call *k)
{
	const struct dp_ctl_env *e = k->env;
	uint32_t now = e->ops->now_s(e->arg);
	char iso[32];

	return json_pack("{s:b,s:s,s:I,s:s}", "ok", 1, "mode",
			 e->ops->clock_fixed(e->arg) ? "fixed" : "real", "now_s",
			 (json_int_t)now, "now", lim_fmt_time(now, iso, sizeof(iso)));
}

json_t *
ctl_cmd_clock_show(struct ctl_call *k)
{
	return clock_json(k);
}

json_t *
ctl_cmd_clock_set(struct ctl_call *k)
{
	const struct dp_ctl_env *e = k->env;

	if (e->ops->clock_set(e->arg, (uint32_t)ctl_arg_u(k, 0)))
		return ctl_error("clock set: the clock is real; only a fixed clock "
				 "(authd --clock fixed:SECONDS) can be moved");
	return clock_json(k);
}

json_t *
ctl_cmd_risk_show(struct ctl_call *k)
{
	json_t *j = dp_risk_json(k->env->risk);

	json_object_set_new(j, "ok", json_true());
	return j;
}

/* Every KEY=VALUE is checked by the worker (risk.c); it stops at the first
 * bad one, so earlier ones are applied: say which were. */
json_t *
ctl_cmd_risk_set(struct ctl_call *k)
{
	char err[256];

	/* All or nothing, as every request: no item applies unless all are valid. */
	if (dp_risk_set_kv(k->env->risk, k->r.args, k->r.n_args, err, sizeof(err)))
		return ctl_error("risk set: %s", err);
	return ctl_cmd_risk_show(k);
}

json_t *
ctl_cmd_stats(struct ctl_call *k)
{
	json_t *j = k->env->ops->stats(k->env->arg);

	json_object_set_new(j, "ok", json_true());
	return j;
}
