/*
 * authgen_model.c - --check-model: every record authgen sends is also
 * decided locally by the decision core, and authd's answer must equal it.
 *
 * Design note. The model is not a second implementation: it is the same
 * auth_exec_one() that authd's dataplane calls, on a private database
 * loaded from the same snapshot, at the same fixed time. What the check
 * proves is everything around the decision: that authd decides what it
 * received, in the order it was sent, exactly once, against the state the
 * snapshot describes, and writes the answer into the right record of the
 * right datagram without damaging it (codec, burst loop, user lookups for a
 * whole burst, in-place answers, tags, header swap, rings).
 *
 * Preconditions, so that the two sides execute the same sequence:
 *  - authd runs --clock fixed:T and authgen --clock-fixed T (no time passes,
 *    no hold lapses during the run);
 *  - authd executes the records in send order: one authd lcore, one queue
 *    and a FIFO link (memif), with authgen on one lcore; a window of 1 makes
 *    that true for any link. Crafted bad datagrams (--inject) are not run
 *    through the model: authd must drop them;
 *  - the database is sized as authd sizes it (op store --ops-max, budget
 *    shards: one dataplane lcore + 2), with the default policy or whatever
 *    the snapshot carries.
 * Then even ledger_seq is the same on both sides (every effect, declines
 * included, takes the next seq of the database); --seq loose compares it as
 * zero/non-zero only.
 *
 * Concurrency: the worker thread that sends is the only reader and the only
 * writer of the model's database (registered as a QSBR reader).
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <urcu-qsbr.h>

#include "authgen.h"

#define GEN_MODEL_SHARDS 3 /* authd: one dataplane lcore, control, ledger */

struct gen_model {
	struct lim_db *db;
	struct auth_exec x;
	uint32_t gateway_id;
};

struct gen_model *
gen_model_create(const struct gen_config *cfg, char *err, size_t errlen)
{
	struct lim_db_config extra = {
		.ops_max = cfg->ops_max,
		.merchants_max = 1024,
		.groups_max = 1024,
		.shards = GEN_MODEL_SHARDS,
	};
	struct gen_model *m = calloc(1, sizeof(*m));

	if (!m) {
		snprintf(err, errlen, "out of memory");
		return NULL;
	}
	m->db = lim_snapshot_load(cfg->check_model, &extra, NULL, NULL, err,
				  errlen);
	if (!m->db) {
		free(m);
		return NULL;
	}
	m->gateway_id = cfg->gateway_id;
	m->x.db = m->db;
	m->x.shard = 0;
	/* Nothing else runs yet: the policy cannot change under us. */
	auth_now_set(&m->x.now, cfg->clock_fixed_s,
		     lim_policy_get(m->db)->tz_offset_s);
	return m;
}

void
gen_model_free(struct gen_model *m)
{
	if (!m)
		return;
	lim_db_free(m->db);
	free(m);
}

struct lim_db *
gen_model_db(struct gen_model *m)
{
	return m->db;
}

void
gen_model_exec(struct gen_model *m, const struct auth_req *r,
	       struct auth_resp *out)
{
	struct lim_effect eff;

	auth_exec_one(&m->x, m->gateway_id, r,
		      lim_users_find(m->db->users, r->user_id), out, &eff);
}

/* One line per field: name, value in authd's answer, in the model's. */
#define GEN_FOREACH_RESP_FIELD(_)                                              \
	_(request_id)                                                          \
	_(user_id)                                                             \
	_(op)                                                                  \
	_(status)                                                              \
	_(reason)                                                              \
	_(notes)                                                               \
	_(amount)                                                              \
	_(available)                                                           \
	_(hold_expires)                                                        \
	_(funder_id)                                                           \
	_(own_share_pct)                                                       \
	_(risk_score)                                                          \
	_(self_cap_left)                                                       \
	_(reserved)

static void
print_req(FILE *f, const struct auth_req *r)
{
	fprintf(f,
		"  request: op %u request_id %#" PRIx64 " user_id %" PRIu64
		" ref_id %#" PRIx64 " amount %" PRId64 " merchant %u group %u"
		" product %u terms %u channel %u mcc %u region %u device %#" PRIx64
		" reserved %u/%u\n",
		r->op, r->request_id, r->user_id, r->ref_id, r->amount,
		r->merchant_id, r->group_id, r->product, r->terms, r->channel,
		r->mcc, r->region, r->device_id, r->reserved0, r->reserved1);
}

static void
print_resp(FILE *f, const char *who, const struct auth_resp *a)
{
	fprintf(f,
		"  %s: status %u reason %s notes %#x amount %" PRId64
		" available %" PRId64 " hold_expires %u funder %u own_share %u"
		" risk %u self_cap_left %" PRId64 " ledger_seq %" PRIu64 "\n",
		who, a->status, auth_reason_name(a->reason), a->notes, a->amount,
		a->available, a->hold_expires, a->funder_id, a->own_share_pct,
		a->risk_score, a->self_cap_left, a->ledger_seq);
}

bool
gen_model_compare(const struct gen_config *cfg, const struct auth_req *r,
		  const struct auth_resp *want, const struct auth_resp *got,
		  uint64_t seq, uint64_t mismatches_so_far)
{
	char diff[256] = "";
	size_t n = 0;
	bool seq_ok;

#define GEN_CMP(field)                                                         \
	if (want->field != got->field && n < sizeof(diff))                     \
		n += (size_t)snprintf(diff + n, sizeof(diff) - n, " " #field);
	GEN_FOREACH_RESP_FIELD(GEN_CMP)
#undef GEN_CMP
	seq_ok = cfg->seq_loose ? (want->ledger_seq == 0) == (got->ledger_seq == 0)
				: want->ledger_seq == got->ledger_seq;
	if (!seq_ok && n < sizeof(diff))
		n += (size_t)snprintf(diff + n, sizeof(diff) - n, " ledger_seq");
	if (n == 0)
		return true;
	if (mismatches_so_far < GEN_MISMATCH_PRINT) {
		fprintf(stderr,
			"authgen: model mismatch #%" PRIu64 " in datagram seq %"
			PRIu64 ", fields:%s\n",
			mismatches_so_far + 1, seq, diff);
		print_req(stderr, r);
		print_resp(stderr, "authd", got);
		print_resp(stderr, "model", want);
	} else if (mismatches_so_far == GEN_MISMATCH_PRINT) {
		fprintf(stderr, "authgen: more model mismatches: only counted\n");
	}
	return false;
}
