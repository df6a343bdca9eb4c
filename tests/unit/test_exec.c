/*
 * test_exec.c - auth_exec_one() basics: every auth_req_check() failure is
 * answered status 2 MALFORMED with nothing looked up or recorded; terms are
 * not a format error; the answer may be written over the request buffer.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>
#include <urcu-qsbr.h>

#include "auth.h"
#include "lim_fixture.h"

#define PL LIM_PRODUCT_PAYLATER

static struct fx F;

static int
setup(void **state)
{
	(void)state;
	fx_init(&F, 4096);
	return 0;
}

static int
teardown(void **state)
{
	(void)state;
	fx_check_money(&F, true);
	fx_fini(&F);
	return 0;
}

/* A well-formed request of each op, for UA, ref 1 where one is needed. */
static struct auth_req
good(uint8_t op)
{
	bool ref = op == LIM_OP_CAPTURE || op == LIM_OP_VOID ||
		   op == LIM_OP_REFUND;

	return fx_req(op, 1000 + op, FX_UA, ref ? 1 : 0, 500, PL);
}

/*
 * @p r must be answered MALFORMED: status 2, ids and op echoed, everything
 * else 0 (self_cap_left -1), no effect written, and the whole database
 * unchanged (no entry, no ledger sequence, no balance).
 */
static void
malformed_(const struct auth_req *r, const char *what, const char *file,
	   int line)
{
	struct fx_state before, after;
	struct auth_resp a, want;
	struct lim_effect e, e0;
	enum auth_exec_rc rc;
	bool existed = lim_ops_find(F.db->ops, FX_GW, r->request_id) != NULL;

	if (auth_req_check(r) != AUTH_REASON_MALFORMED) {
		print_error("%s: auth_req_check passed it\n", what);
		_fail(file, line);
	}
	memset(&want, 0, sizeof(want));
	want.request_id = r->request_id;
	want.user_id = r->user_id;
	want.op = r->op;
	want.status = AUTH_STATUS_ERROR;
	want.reason = AUTH_REASON_MALFORMED;
	want.self_cap_left = -1;
	memset(&e, 0x5a, sizeof(e));
	e0 = e;
	memset(&a, 0xa5, sizeof(a));
	fx_state_take(&F, &before);
	rc = fx_exec_gw(&F, FX_GW, r, &a, &e);
	fx_state_take(&F, &after);
	if (rc != AUTH_EXEC_ANSWERED || memcmp(&a, &want, sizeof(a)) != 0 ||
	    memcmp(&e, &e0, sizeof(e)) != 0) {
		print_error("%s: rc %d status %u reason %u available %lld "
			    "self_cap_left %lld\n",
			    what, rc, a.status, a.reason, (long long)a.available,
			    (long long)a.self_cap_left);
		_fail(file, line);
	}
	fx_state_same_(&before, &after, file, line);
	/* Nothing remembered: the same id is free for a real request. */
	if (!existed && lim_ops_find(F.db->ops, FX_GW, r->request_id) != NULL) {
		print_error("%s: an op entry was created\n", what);
		_fail(file, line);
	}
}

#define MALFORMED(r, what) malformed_(&(r), (what), __FILE__, __LINE__)

static void
test_malformed_ranges(void **state)
{
	(void)state;
	static const uint8_t bad_ops[] = {0, 6, 7, 255};
	static const uint8_t bad_small[] = {0, 4, 255};
	struct auth_req r;

	for (unsigned op = LIM_OP_AUTHORIZE; op <= LIM_OP_REPAY; op++) {
		for (unsigned i = 0; i < sizeof(bad_small); i++) {
			r = good((uint8_t)op);
			r.product = bad_small[i];
			MALFORMED(r, "product out of range");
			r = good((uint8_t)op);
			r.channel = bad_small[i];
			MALFORMED(r, "channel out of range");
		}
	}
	for (unsigned i = 0; i < sizeof(bad_ops); i++) {
		r = good(LIM_OP_AUTHORIZE);
		r.op = bad_ops[i];
		MALFORMED(r, "op out of range");
		r = good(LIM_OP_CAPTURE);
		r.op = bad_ops[i];
		MALFORMED(r, "op out of range (with a ref)");
	}
}

static void
test_malformed_ids_reserved(void **state)
{
	(void)state;
	struct auth_req r;

	for (unsigned op = LIM_OP_AUTHORIZE; op <= LIM_OP_REPAY; op++) {
		r = good((uint8_t)op);
		r.request_id = 0;
		MALFORMED(r, "request_id 0");
		r = good((uint8_t)op);
		r.user_id = 0;
		MALFORMED(r, "user_id 0");
		r = good((uint8_t)op);
		r.reserved0 = 1;
		MALFORMED(r, "reserved0");
		r = good((uint8_t)op);
		r.reserved1 = 0x80000000u;
		MALFORMED(r, "reserved1");
	}
}

static void
test_malformed_amount(void **state)
{
	(void)state;
	struct auth_req r;

	for (unsigned op = LIM_OP_AUTHORIZE; op <= LIM_OP_REPAY; op++) {
		r = good((uint8_t)op);
		r.amount = -1;
		MALFORMED(r, "amount < 0");
		r.amount = INT64_MIN;
		MALFORMED(r, "amount INT64_MIN");
		if (op == LIM_OP_VOID)
			continue;
		r.amount = 0;
		MALFORMED(r, "amount 0");
	}
}

static void
test_malformed_merchant_ref(void **state)
{
	(void)state;
	struct auth_req r;

	for (unsigned op = LIM_OP_AUTHORIZE; op <= LIM_OP_REFUND; op++) {
		r = good((uint8_t)op);
		r.merchant_id = 0;
		MALFORMED(r, "merchant 0");
	}
	for (unsigned op = LIM_OP_CAPTURE; op <= LIM_OP_REFUND; op++) {
		r = good((uint8_t)op);
		r.ref_id = 0;
		MALFORMED(r, "no ref for capture/void/refund");
	}
	r = good(LIM_OP_AUTHORIZE);
	r.ref_id = 1;
	MALFORMED(r, "ref on authorize");
	r = good(LIM_OP_REPAY);
	r.ref_id = 1;
	MALFORMED(r, "ref on repay");
}

/* Format is checked before anything is looked up: an unknown user, a
 * duplicate id or a tombstone do not change the answer. */
static void
test_malformed_before_lookup(void **state)
{
	(void)state;
	struct auth_req r = good(LIM_OP_AUTHORIZE), v;
	struct auth_resp a;

	r.user_id = FX_UNOBODY;
	r.reserved0 = 7;
	MALFORMED(r, "unknown user");
	/* Request id 1 decided once ... */
	r = fx_req(LIM_OP_AUTHORIZE, 1, FX_UA, 0, 500, PL);
	a = fx_exec(&F, &r);
	assert_int_equal(a.status, AUTH_STATUS_APPROVED);
	/* ... a malformed record with the same id is MALFORMED, not a
	 * duplicate. */
	r.channel = 9;
	MALFORMED(r, "duplicate id");
	/* A tombstone under 77. */
	v = fx_req(LIM_OP_VOID, 2, FX_UA, 77, 0, PL);
	a = fx_exec(&F, &v);
	assert_int_equal(a.reason, AUTH_REASON_UNKNOWN_REF);
	r = fx_req(LIM_OP_AUTHORIZE, 77, FX_UA, 0, 0, PL);
	MALFORMED(r, "tombstoned id");
}

static void
test_not_malformed(void **state)
{
	(void)state;
	struct auth_req r;
	struct auth_resp a;

	/* Void 0 is "the whole hold"; repay needs no merchant; both may name
	 * whatever they like in fields that do not apply. */
	r = fx_req(LIM_OP_AUTHORIZE, 1, FX_UA, 0, 500, PL);
	a = fx_exec(&F, &r);
	assert_int_equal(a.status, AUTH_STATUS_APPROVED);
	r = fx_req(LIM_OP_VOID, 2, FX_UA, 1, 0, PL);
	a = fx_exec(&F, &r);
	assert_int_equal(a.status, AUTH_STATUS_APPROVED);
	assert_int_equal(a.amount, 500);
	r = fx_req(LIM_OP_REPAY, 3, FX_UA, 0, 1, PL);
	a = fx_exec(&F, &r);
	assert_int_equal(a.status, AUTH_STATUS_DECLINED);
	assert_int_equal(a.reason, AUTH_REASON_BAD_STATE);
	r.request_id = 4;
	r.merchant_id = FX_M;
	a = fx_exec(&F, &r);
	assert_int_equal(a.reason, AUTH_REASON_BAD_STATE);
	/* Terms are a business rule: TERM_INVALID, recorded. */
	r = fx_req(LIM_OP_AUTHORIZE, 5, FX_UA, 0, 500, LIM_PRODUCT_INSTALLMENT);
	r.terms = 5;
	assert_int_equal(auth_req_check(&r), AUTH_REASON_APPROVED);
	a = fx_exec(&F, &r);
	assert_int_equal(a.status, AUTH_STATUS_DECLINED);
	assert_int_equal(a.reason, AUTH_REASON_TERM_INVALID);
	assert_non_null(lim_ops_find(F.db->ops, FX_GW, 5));
	r = fx_req(LIM_OP_AUTHORIZE, 6, FX_UA, 0, 500, PL);
	r.terms = 3;
	a = fx_exec(&F, &r);
	assert_int_equal(a.reason, AUTH_REASON_TERM_INVALID);
	/* mcc, region and device are not checked. */
	r = fx_req(LIM_OP_AUTHORIZE, 7, FX_UA, 0, 500, PL);
	r.mcc = 0xffff;
	r.region = 0xffff;
	r.device_id = 0;
	a = fx_exec(&F, &r);
	assert_int_equal(a.status, AUTH_STATUS_APPROVED);
	/* The largest amount: declined, not malformed. */
	r = fx_req(LIM_OP_AUTHORIZE, 8, FX_UA, 0, INT64_MAX, PL);
	a = fx_exec(&F, &r);
	assert_int_equal(a.status, AUTH_STATUS_DECLINED);
	assert_int_equal(a.reason, AUTH_REASON_RISK_VELOCITY);
}

/* ------------------------------------------------------------------------ */
/* The answer written over the request                                        */

union rec {
	struct auth_req req;
	struct auth_resp resp;
	uint8_t bytes[AUTH_REC_LEN];
};

static void
test_resp_aliases_req(void **state)
{
	(void)state;
	struct fx G;
	const struct auth_req seq[] = {
		fx_req(LIM_OP_AUTHORIZE, 1, FX_UA, 0, 100000, PL),   /* ok */
		fx_req(LIM_OP_CAPTURE, 2, FX_UA, 1, 60000, PL),      /* ok */
		fx_req(LIM_OP_AUTHORIZE, 3, FX_UA, 0, 9000000, PL),  /* no */
		fx_req(LIM_OP_AUTHORIZE, 1, FX_UA, 0, 100000, PL),   /* dup */
		fx_req(LIM_OP_AUTHORIZE, 4, FX_UNOBODY, 0, 1, PL),   /* unknown */
		fx_req(LIM_OP_VOID, 5, FX_UA, 99, 0, PL),            /* tomb */
		fx_req(LIM_OP_AUTHORIZE, 99, FX_UA, 0, 1, PL),       /* reversed */
		fx_req(LIM_OP_AUTHORIZE, 6, FX_UA, 0, 0, PL),        /* malformed */
		fx_req(LIM_OP_REFUND, 7, FX_UA, 1, 10000, PL),       /* ok */
		fx_req(LIM_OP_REPAY, 8, FX_UA, 0, 50000, PL),        /* ok */
		fx_req(LIM_OP_AUTHORIZE, 9, FX_UFROZEN, 0, 1, PL),   /* frozen */
		fx_req(LIM_OP_AUTHORIZE, 10, FX_UC, 0, 40000,
		       LIM_PRODUCT_CASH),                             /* cash */
	};

	/* G is F's twin: the same sequence, answers in separate buffers. */
	fx_init(&G, 4096);
	for (unsigned i = 0; i < sizeof(seq) / sizeof(seq[0]); i++) {
		union rec buf;
		struct auth_resp sep;
		struct lim_effect e1, e2;
		struct lim_user *u = fx_user(&F, seq[i].user_id);
		enum auth_exec_rc rc1, rc2;

		memset(&sep, 0xa5, sizeof(sep));
		rc1 = fx_exec_gw(&G, FX_GW, &seq[i], &sep, &e1);
		memset(&buf, 0xa5, sizeof(buf));
		buf.req = seq[i];
		rc2 = auth_exec_one(&F.x, FX_GW, &buf.req, u, &buf.resp, &e2);
		assert_int_equal(rc1, rc2);
		if (memcmp(&sep, &buf.resp, sizeof(sep)) != 0)
			fail_msg("record %u: the aliased answer differs "
				 "(status %u/%u reason %u/%u)",
				 i, sep.status, buf.resp.status, sep.reason,
				 buf.resp.reason);
		if (rc1 == AUTH_EXEC_RECORDED)
			assert_memory_equal(&e1, &e2, sizeof(e1));
		/* Echoed from the request that was overwritten. */
		assert_int_equal(buf.resp.request_id, seq[i].request_id);
		assert_int_equal(buf.resp.user_id, seq[i].user_id);
		assert_int_equal(buf.resp.op, seq[i].op);
	}
	/* And the two databases agree. */
	struct fx_state a, b;
	fx_state_take(&F, &a);
	fx_state_take(&G, &b);
	fx_state_same(&a, &b);
	fx_fini(&G);
}

/* The answer of a rejected record overwrites every request byte. */
static void
test_resp_aliases_req_malformed(void **state)
{
	(void)state;
	union rec buf;
	struct lim_effect e;

	memset(&buf, 0, sizeof(buf));
	buf.req = fx_req(LIM_OP_CAPTURE, 42, FX_UA, 1, 500, PL);
	buf.req.reserved0 = 0xdeadbeef;
	buf.req.reserved1 = 0xfeedface;
	buf.req.device_id = ~0ULL;
	assert_int_equal(auth_exec_one(&F.x, FX_GW, &buf.req,
				       fx_user(&F, FX_UA), &buf.resp, &e),
			 AUTH_EXEC_ANSWERED);
	assert_int_equal(buf.resp.request_id, 42);
	assert_int_equal(buf.resp.user_id, FX_UA);
	assert_int_equal(buf.resp.ledger_seq, 0);
	assert_int_equal(buf.resp.amount, 0);
	assert_int_equal(buf.resp.available, 0);
	assert_int_equal(buf.resp.hold_expires, 0);
	assert_int_equal(buf.resp.op, LIM_OP_CAPTURE);
	assert_int_equal(buf.resp.status, AUTH_STATUS_ERROR);
	assert_int_equal(buf.resp.reason, AUTH_REASON_MALFORMED);
	assert_int_equal(buf.resp.notes, 0);
	assert_int_equal(buf.resp.funder_id, 0);
	assert_int_equal(buf.resp.own_share_pct, 0);
	assert_int_equal(buf.resp.reserved, 0);
	assert_int_equal(buf.resp.risk_score, 0);
	assert_int_equal(buf.resp.self_cap_left, -1);
}

#define T(f) cmocka_unit_test_setup_teardown(f, setup, teardown)

int
main(void)
{
	const struct CMUnitTest tests[] = {
		T(test_malformed_ranges),
		T(test_malformed_ids_reserved),
		T(test_malformed_amount),
		T(test_malformed_merchant_ref),
		T(test_malformed_before_lookup),
		T(test_not_malformed),
		T(test_resp_aliases_req),
		T(test_resp_aliases_req_malformed),
	};
	int rc;

	rcu_register_thread();
	rc = cmocka_run_group_tests(tests, NULL, NULL);
	rcu_unregister_thread();
	return rc;
}
