/*
 * exec.c - decide and apply one record against a database: the per-record
 * driver that the dataplane, the tests and the model checker share.
 *
 * Order per record: check the format (MALFORMED), look up the RCU records
 * (extension, merchant), take the user's lock, look up the op entries of the
 * request and of its reference, take the group's lock, decide, apply. If the
 * apply finds that another shard took the budget room the decision counted on
 * (-EAGAIN) or that the request id appeared meanwhile (-EEXIST), it decides
 * again with fresh state, at most AUTH_EXEC_TRIES times, then answers BUSY.
 * A full op store (-ENOSPC) answers BUSY at once: nothing was changed.
 *
 * Call with the QSBR read side online. Takes one user lock and at most one
 * group lock (docs/design-notes.md, "Lock order").
 */
#include <errno.h>
#include <string.h>

#include "auth_pvt.h"

#define AUTH_EXEC_TRIES 4

void
auth_answer_only(const struct auth_req *r, struct auth_resp *a,
		 enum auth_status status, enum auth_reason why)
{
	uint8_t op = r->op;
	uint64_t rid = r->request_id, uid = r->user_id;

	memset(a, 0, sizeof(*a));
	a->request_id = rid;
	a->user_id = uid;
	a->op = op;
	a->status = status;
	a->reason = why;
	a->self_cap_left = -1;
}

static bool
has_ref(uint8_t op)
{
	return op == LIM_OP_CAPTURE || op == LIM_OP_VOID || op == LIM_OP_REFUND;
}

/* The group a record touches: its own for an authorize, else its ref's. */
static const struct lim_group *
record_group(struct lim_db *db, const struct auth_req *r,
	     const struct lim_op *ref, uint64_t user_id)
{
	uint32_t gid = 0;

	if (r->op == LIM_OP_AUTHORIZE)
		gid = r->group_id;
	else if (ref && ref->user_id == user_id)
		gid = ref->group_id;
	return gid ? lim_group_find(db, gid) : NULL;
}

/* What another user's tombstone looks like to the decision: only its state. */
static const struct lim_op foreign_tombstone = {.state = LIM_OPS_TOMBSTONE};

/* Decide and apply under the user's lock; returns lim_apply's code. */
static int
decide_apply(struct auth_exec *x, struct auth_in *in, struct lim_user *u,
	     struct auth_out *out)
{
	struct lim_db *db = x->db;
	const struct auth_req *r = in->req;
	struct lim_op *ref = NULL;
	const struct lim_group *g;
	int foreign, rc = 0;

	in->dup = lim_ops_find_owned(db->ops, in->gateway_id, r->request_id,
				     u->user_id, &foreign);
	if (foreign == LIM_OPS_FOREIGN_TOMBSTONE)
		in->dup = &foreign_tombstone; /* decided REVERSED, records nothing */
	else if (foreign)
		return -EBADSLT;
	/* Another user's authorization is not this record's ref: a void or
	 * refund of it is answered as of an unknown one (its tombstone insert
	 * then finds the id taken and leaves none). */
	if (!in->dup && has_ref(r->op))
		ref = lim_ops_find_owned(db->ops, in->gateway_id, r->ref_id,
					 u->user_id, &foreign);
	in->ref = ref;
	g = record_group(db, r, ref, u->user_id);
	in->group = g;
	if (g)
		lim_group_lock(g->st);
	auth_decide(in, out);
	if (out->eff.kind != LIM_EFF_NONE)
		rc = lim_apply(db, x->shard, u, g, ref, &out->eff);
	if (g)
		lim_group_unlock(g->st);
	return rc;
}

enum auth_exec_rc
auth_exec_one(struct auth_exec *x, uint32_t gateway_id,
	      const struct auth_req *req, struct lim_user *user,
	      struct auth_resp *resp, struct lim_effect *eff)
{
	struct auth_req r = *req; /* resp may alias req */
	struct auth_out out;
	struct auth_in in;
	int rc = -EAGAIN;

	if (auth_req_check(&r) != AUTH_REASON_APPROVED) {
		auth_answer_only(&r, resp, AUTH_STATUS_ERROR, AUTH_REASON_MALFORMED);
		return AUTH_EXEC_ANSWERED;
	}
	memset(&in, 0, sizeof(in));
	in.req = &r;
	in.gateway_id = gateway_id;
	in.now = &x->now;
	in.policy = lim_policy_get(x->db);
	in.funders = lim_funders_get(x->db);
	in.cap = x->db->cap;
	in.shard = x->shard;
	in.user = user;
	in.merchant = r.merchant_id ? lim_merchant_find(x->db, r.merchant_id)
				    : NULL;
	if (!user) {
		auth_decide(&in, &out);
		*resp = out.resp;
		return AUTH_EXEC_ANSWERED;
	}
	lim_user_lock(user);
	in.ext = (user->flags & LIM_USER_EXT) ? lim_ext_find(x->db, user->user_id)
					      : NULL;
	for (unsigned i = 0; i < AUTH_EXEC_TRIES && rc != 0; i++) {
		rc = decide_apply(x, &in, user, &out);
		if (rc == -ENOSPC || rc == -EINVAL || rc == -EBADSLT)
			break;
	}
	lim_user_unlock(user);
	if (rc == -EBADSLT) {
		/* The request id is another user's operation: a gateway bug. */
		auth_answer_only(&r, resp, AUTH_STATUS_DECLINED,
				 AUTH_REASON_BAD_STATE);
		return AUTH_EXEC_ANSWERED;
	}
	if (rc != 0) {
		auth_answer_only(&r, resp, AUTH_STATUS_DECLINED, AUTH_REASON_BUSY);
		return AUTH_EXEC_ANSWERED;
	}
	*resp = out.resp;
	if (out.eff.kind == LIM_EFF_NONE)
		return AUTH_EXEC_ANSWERED;
	if (out.eff.kind != LIM_EFF_DECIDE && out.eff.kind != LIM_EFF_TOMBSTONE)
		resp->ledger_seq = out.eff.seq;
	*eff = out.eff;
	return AUTH_EXEC_RECORDED;
}
