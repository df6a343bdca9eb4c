/*
 * test_lifecycle.c - payments through auth_exec_one() against a real lim_db
 * (tests/common/lim_fixture.h): authorize, capture, void, refund, repay and
 * hold expiry, with the exact balances after every step (debt, holds,
 * product buckets, month spend, the lending ceiling, the funders' quotas);
 * duplicates, reversals before originals, group wallets, a full op store,
 * the ledger sequence, and two threads whose clocks straddle a month
 * boundary.
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
#include "lim_pvt.h" /* lim_ops_partitions() */

#define T0 FX_T0
#define TTL (7u * 86400u)
#define PL LIM_PRODUCT_PAYLATER
#define INST LIM_PRODUCT_INSTALLMENT
#define CASH LIM_PRODUCT_CASH

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

static uint64_t
seq_now(void)
{
	return __atomic_load_n(&F.db->seq, __ATOMIC_RELAXED);
}

/* ------------------------------------------------------------------------ */
/* Exact expectations                                                         */

struct want {
	uint8_t status, reason, notes, own;
	int64_t amount, available, cap_left;
	uint32_t hold_expires, risk;
	uint16_t funder;
	uint64_t seq;
};

#if defined(__clang__)
#pragma clang diagnostic ignored "-Winitializer-overrides"
#else
#pragma GCC diagnostic ignored "-Woverride-init"
#endif
#define WANT(...) ((struct want){.cap_left = -1, __VA_ARGS__})

#define CHK(field, got, exp)                                                   \
	do {                                                                   \
		long long g_ = (long long)(got), e_ = (long long)(exp);        \
		if (g_ != e_) {                                                \
			print_error("%s: got %lld, want %lld\n", field, g_,    \
				    e_);                                       \
			_fail(file, line);                                     \
		}                                                              \
	} while (0)

static void
check_resp(const struct auth_req *r, const struct auth_resp *a, struct want w,
	   const char *file, int line)
{
	CHK("request_id", a->request_id, r->request_id);
	CHK("user_id", a->user_id, r->user_id);
	CHK("op", a->op, r->op);
	CHK("status", a->status, w.status);
	CHK("reason", a->reason, w.reason);
	CHK("notes", a->notes, w.notes);
	CHK("amount", a->amount, w.amount);
	CHK("available", a->available, w.available);
	CHK("hold_expires", a->hold_expires, w.hold_expires);
	CHK("funder_id", a->funder_id, w.funder);
	CHK("own_share_pct", a->own_share_pct, w.own);
	CHK("self_cap_left", a->self_cap_left, w.cap_left);
	CHK("risk_score", a->risk_score, w.risk);
	CHK("ledger_seq", a->ledger_seq, w.seq);
	CHK("reserved", a->reserved, 0);
}

/*
 * Execute @p r and check the answer; also checks the ledger: one sequence
 * number per recorded effect, in the answer only when money moved.
 */
static struct auth_resp
exec_check(const struct auth_req *r, bool recorded, struct want w,
	   const char *file, int line)
{
	struct auth_resp a;
	struct lim_effect e;
	uint64_t s0 = seq_now();
	enum auth_exec_rc rc;

	memset(&a, 0xa5, sizeof(a));
	memset(&e, 0, sizeof(e));
	rc = fx_exec_gw(&F, FX_GW, r, &a, &e);
	check_resp(r, &a, w, file, line);
	CHK("exec rc", rc, recorded ? AUTH_EXEC_RECORDED : AUTH_EXEC_ANSWERED);
	CHK("db seq", seq_now(), s0 + (recorded ? 1 : 0));
	if (recorded) {
		CHK("eff.seq", e.seq, s0 + 1);
		CHK("eff.request_id", e.request_id, r->request_id);
		CHK("eff.status", e.status, a.status);
		CHK("eff.reason", e.reason, a.reason);
		CHK("eff.amount", e.amount_fen, a.amount);
	}
	return a;
}

/* Approved, recorded: ledger_seq is the next sequence number. */
#define OK(r, ...)                                                             \
	exec_check(&(r), true,                                                 \
		   WANT(.status = AUTH_STATUS_APPROVED, .seq = seq_now() + 1,  \
			__VA_ARGS__),                                          \
		   __FILE__, __LINE__)
/* Declined, recorded (kept for idempotency): ledger_seq 0. */
#define NO(r, why, ...)                                                        \
	exec_check(&(r), true,                                                 \
		   WANT(.status = AUTH_STATUS_DECLINED, .reason = (why),       \
			__VA_ARGS__),                                          \
		   __FILE__, __LINE__)
/* Answered, nothing recorded. */
#define ANSWER(r, ...)                                                         \
	exec_check(&(r), false, WANT(__VA_ARGS__), __FILE__, __LINE__)

/* Exact balances of a user. */
static void
bal_(uint64_t uid, int64_t out, int64_t holds, int64_t cash, int64_t inst,
     int64_t month, const char *file, int line)
{
	const struct lim_user *u = fx_user(&F, uid);

	CHK("outstanding", u->outstanding_fen, out);
	CHK("holds", u->holds_fen, holds);
	CHK("cash", u->cash_fen, cash);
	CHK("inst", u->inst_fen, inst);
	CHK("month_spend", u->month_spend_fen, month);
}

#define BAL(uid, out, holds, cash, inst, month)                                \
	bal_((uid), (out), (holds), (cash), (inst), (month), __FILE__, __LINE__)

/* Ceiling in use and quotas in use: company, national bank, regional bank. */
static void
books_(int64_t cap, int64_t company, int64_t bank, int64_t rbank,
       const char *file, int line)
{
	CHK("ceiling used", fx_cap_used(&F), cap);
	CHK("company book used", fx_funder_used(&F, 0), company);
	CHK("bank 11 used", fx_funder_used(&F, FX_BANK), bank);
	CHK("bank 12 used", fx_funder_used(&F, FX_RBANK), rbank);
	fx_check_money_(&F, true, file, line);
}

#define BOOKS(cap, company, bank, rbank)                                       \
	books_((cap), (company), (bank), (rbank), __FILE__, __LINE__)

static struct auth_req
req(uint8_t op, uint64_t rid, uint64_t uid, uint64_t ref, int64_t amount,
    uint8_t product)
{
	return fx_req(op, rid, uid, ref, amount, product);
}

/* ------------------------------------------------------------------------ */
/* Lifecycles                                                                 */

static void
test_authorize_capture_refund_repay(void **state)
{
	(void)state;
	struct auth_req a = req(LIM_OP_AUTHORIZE, 1, FX_UA, 0, 100000, PL);
	struct auth_req c = req(LIM_OP_CAPTURE, 2, FX_UA, 1, 60000, PL);
	struct auth_req rf = req(LIM_OP_REFUND, 3, FX_UA, 1, 20000, PL);
	struct auth_req rp = req(LIM_OP_REPAY, 4, FX_UA, 0, 40000, PL);
	struct auth_req rp2 = req(LIM_OP_REPAY, 5, FX_UA, 0, 1, PL);
	struct auth_req rf2 = req(LIM_OP_REFUND, 6, FX_UA, 1, 40000, PL);

	BOOKS(0, 0, 0, 0);
	/* 1,000 yuan, pay later: bank 11 (national) funds half. */
	OK(a, .amount = 100000, .available = 900000, .hold_expires = T0 + TTL,
	   .funder = FX_BANK, .own = 50, .risk = 120);
	BAL(FX_UA, 0, 100000, 0, 0, 100000);
	BOOKS(100000, 50000, 50000, 0);
	/* Capture 600: 400 released (month spend too), quotas in proportion. */
	OK(c, .amount = 60000, .available = 940000, .funder = FX_BANK, .own = 50,
	   .risk = 120);
	BAL(FX_UA, 60000, 0, 0, 0, 60000);
	BOOKS(60000, 30000, 30000, 0);
	/* Refund 200 of it: debt and quotas, not the month spend. */
	OK(rf, .amount = 20000, .available = 960000, .funder = FX_BANK,
	   .own = 50, .risk = 120);
	BAL(FX_UA, 40000, 0, 0, 0, 60000);
	BOOKS(40000, 20000, 20000, 0);
	/* Repay the rest: repayments do not give quota back. */
	OK(rp, .amount = 40000, .available = 1000000, .risk = 40);
	BAL(FX_UA, 0, 0, 0, 0, 60000);
	BOOKS(0, 20000, 20000, 0);
	/* Nothing owed any more. */
	NO(rp2, AUTH_REASON_BAD_STATE, .available = 1000000, .risk = 40);
	BAL(FX_UA, 0, 0, 0, 0, 60000);
	/* Refund after repayment: nothing left to cut (paid out by the ledger
	 * of record), but the quotas come back in full. */
	OK(rf2, .amount = 40000, .available = 1000000, .funder = FX_BANK,
	   .own = 50, .risk = 120);
	BAL(FX_UA, 0, 0, 0, 0, 60000);
	BOOKS(0, 0, 0, 0);
	/* Refunded in full: no more refunds, no capture. */
	rf2.request_id = 7;
	rf2.amount = 1;
	NO(rf2, AUTH_REASON_BAD_STATE, .available = 1000000, .risk = 120);
	c.request_id = 8;
	NO(c, AUTH_REASON_BAD_STATE, .available = 1000000, .risk = 120);
}

static void
test_installment_lifecycle(void **state)
{
	(void)state;
	struct auth_req a = req(LIM_OP_AUTHORIZE, 1, FX_UA, 0, 120000, INST);
	struct auth_req c = req(LIM_OP_CAPTURE, 2, FX_UA, 1, 120000, INST);
	struct auth_req rf = req(LIM_OP_REFUND, 3, FX_UA, 1, 30000, INST);
	struct auth_req rp = req(LIM_OP_REPAY, 4, FX_UA, 0, 90001, INST);

	a.merchant_id = FX_MSUBSIDY;
	a.terms = 12;
	OK(a, .amount = 120000, .available = 880000, .hold_expires = T0 + TTL,
	   .funder = FX_BANK, .own = 50, .risk = 40,
	   .notes = AUTH_NOTE_INTEREST_FREE);
	BAL(FX_UA, 0, 120000, 0, 0, 120000);
	BOOKS(120000, 60000, 60000, 0);
	OK(c, .amount = 120000, .available = 880000, .funder = FX_BANK,
	   .own = 50, .risk = 120);
	BAL(FX_UA, 120000, 0, 0, 120000, 120000);
	BOOKS(120000, 60000, 60000, 0);
	/* Back to the installment bucket. */
	OK(rf, .amount = 30000, .available = 910000, .funder = FX_BANK,
	   .own = 50, .risk = 120);
	BAL(FX_UA, 90000, 0, 0, 90000, 120000);
	BOOKS(90000, 45000, 45000, 0);
	/* Repay must name the product's debt. */
	NO(rp, AUTH_REASON_BAD_STATE, .available = 910000, .risk = 40);
	rp.product = PL;
	rp.request_id = 5;
	rp.amount = 1;
	NO(rp, AUTH_REASON_BAD_STATE, .available = 910000, .risk = 40);
	rp.product = INST;
	rp.request_id = 6;
	rp.amount = 90000;
	OK(rp, .amount = 90000, .available = 1000000, .risk = 40);
	BAL(FX_UA, 0, 0, 0, 0, 120000);
	BOOKS(0, 45000, 45000, 0);
}

static void
test_cash_lifecycle(void **state)
{
	(void)state;
	struct auth_req a = req(LIM_OP_AUTHORIZE, 1, FX_UA, 0, 100000, CASH);
	struct auth_req a2 = req(LIM_OP_AUTHORIZE, 2, FX_UA, 0, 1000, CASH);
	struct auth_req v = req(LIM_OP_VOID, 3, FX_UA, 1, 0, CASH);
	struct auth_req rf = req(LIM_OP_REFUND, 4, FX_UA, 1, 1000, CASH);
	struct auth_req rp = req(LIM_OP_REPAY, 5, FX_UA, 0, 100000, CASH);

	/* Bank 11 does not fund cash, bank 12 is another region: the company
	 * alone. Paid out at once: debt, no hold. */
	OK(a, .amount = 100000, .available = 900000, .own = 100, .risk = 120);
	BAL(FX_UA, 100000, 0, 100000, 0, 100000);
	BOOKS(100000, 100000, 0, 0);
	assert_int_equal(fx_user(&F, FX_UA)->cool_until_s, T0 + 86400);
	NO(a2, AUTH_REASON_COOLING_OFF, .available = 900000, .risk = 120);
	NO(v, AUTH_REASON_BAD_STATE, .available = 900000, .risk = 120);
	NO(rf, AUTH_REASON_BAD_STATE, .available = 900000, .risk = 120);
	OK(rp, .amount = 100000, .available = 1000000, .risk = 40);
	BAL(FX_UA, 0, 0, 0, 0, 100000);
	BOOKS(0, 100000, 0, 0);
	/* A day later the next one goes through. */
	fx_set_now(&F, T0 + 86400);
	a2.request_id = 6;
	OK(a2, .amount = 1000, .available = 999000, .own = 100, .risk = 120);
	/* A user of region 31 (tier 1: no cash) ... tier 4 in region 31 gets
	 * the regional bank. */
	struct lim_user u = {.user_id = 2001, .limit_fen = 1000000, .tier = 4,
			     .region = 31};
	fx_add_user(&F, &u);
	struct auth_req a3 = req(LIM_OP_AUTHORIZE, 7, 2001, 0, 10000, CASH);
	OK(a3, .amount = 10000, .available = 990000, .funder = FX_RBANK,
	   .own = 40, .risk = 120);
	BOOKS(11000, 100000 + 1000 + 4000, 0, 6000);
}

static void
test_void_partial_then_whole(void **state)
{
	(void)state;
	struct auth_req a = req(LIM_OP_AUTHORIZE, 1, FX_UA, 0, 50000, PL);
	struct auth_req v1 = req(LIM_OP_VOID, 2, FX_UA, 1, 20000, PL);
	struct auth_req v2 = req(LIM_OP_VOID, 3, FX_UA, 1, 0, PL);
	struct auth_req v3 = req(LIM_OP_VOID, 4, FX_UA, 1, 0, PL);
	struct auth_req c = req(LIM_OP_CAPTURE, 5, FX_UA, 1, 1, PL);

	OK(a, .amount = 50000, .available = 950000, .hold_expires = T0 + TTL,
	   .funder = FX_BANK, .own = 50, .risk = 120);
	BOOKS(50000, 25000, 25000, 0);
	/* Partial: the rest stays held until the original expiry. */
	fx_set_now(&F, T0 + 60);
	OK(v1, .amount = 20000, .available = 970000, .hold_expires = T0 + TTL,
	   .funder = FX_BANK, .own = 50, .risk = 120);
	BAL(FX_UA, 0, 30000, 0, 0, 30000);
	BOOKS(30000, 15000, 15000, 0);
	/* 0: the whole rest. */
	OK(v2, .amount = 30000, .available = 1000000, .funder = FX_BANK,
	   .own = 50, .risk = 120);
	BAL(FX_UA, 0, 0, 0, 0, 0);
	BOOKS(0, 0, 0, 0);
	/* Closed: neither a void nor a capture. */
	NO(v3, AUTH_REASON_BAD_STATE, .available = 1000000, .risk = 120);
	NO(c, AUTH_REASON_BAD_STATE, .available = 1000000, .risk = 120);
	BAL(FX_UA, 0, 0, 0, 0, 0);
}

static void
test_void_whole_and_capture_rest(void **state)
{
	(void)state;
	struct auth_req a = req(LIM_OP_AUTHORIZE, 1, FX_UA, 0, 50000, PL);
	struct auth_req v = req(LIM_OP_VOID, 2, FX_UA, 1, 50000, PL);
	struct auth_req a2 = req(LIM_OP_AUTHORIZE, 3, FX_UA, 0, 10001, PL);
	struct auth_req v2 = req(LIM_OP_VOID, 4, FX_UA, 3, 3333, PL);
	struct auth_req c2 = req(LIM_OP_CAPTURE, 5, FX_UA, 3, 6668, PL);

	OK(a, .amount = 50000, .available = 950000, .hold_expires = T0 + TTL,
	   .funder = FX_BANK, .own = 50, .risk = 120);
	/* The whole hold named by its amount. */
	OK(v, .amount = 50000, .available = 1000000, .funder = FX_BANK,
	   .own = 50, .risk = 120);
	BOOKS(0, 0, 0, 0);
	/* Odd amounts: bank part 5,000 of 10,001 (rounded down). */
	OK(a2, .amount = 10001, .available = 989999, .hold_expires = T0 + TTL,
	   .funder = FX_BANK, .own = 50, .risk = 120);
	BOOKS(10001, 5001, 5000, 0);
	OK(v2, .amount = 3333, .available = 993332, .hold_expires = T0 + TTL,
	   .funder = FX_BANK, .own = 50, .risk = 120);
	/* keep = 5000 * 6668 / 10001 = 3333 (rounded down) */
	BOOKS(6668, 3335, 3333, 0);
	/* Capture all that is left: nothing more released. */
	OK(c2, .amount = 6668, .available = 993332, .funder = FX_BANK, .own = 50,
	   .risk = 120);
	BAL(FX_UA, 6668, 0, 0, 0, 6668);
	BOOKS(6668, 3335, 3333, 0);
}

/* ------------------------------------------------------------------------ */
/* Expiry                                                                     */

static void
test_expiry(void **state)
{
	(void)state;
	uint32_t t = fx_local8(2026, 10, 10, 9, 0, 0); /* expires in October */
	struct auth_req a = req(LIM_OP_AUTHORIZE, 1, FX_UA, 0, 50000, PL);
	struct auth_req a2 = req(LIM_OP_AUTHORIZE, 2, FX_UA, 0, 30000, PL);
	struct auth_req c = req(LIM_OP_CAPTURE, 3, FX_UA, 1, 50000, PL);
	struct auth_req v = req(LIM_OP_VOID, 4, FX_UA, 1, 0, PL);
	uint64_t s0;

	fx_set_now(&F, t);
	OK(a, .amount = 50000, .available = 950000, .hold_expires = t + TTL,
	   .funder = FX_BANK, .own = 50, .risk = 120);
	fx_set_now(&F, t + 10);
	OK(a2, .amount = 30000, .available = 920000,
	   .hold_expires = t + 10 + TTL, .funder = FX_BANK, .own = 50,
	   .risk = 120);
	/* One second before: nothing lapses. */
	fx_set_now(&F, t + TTL - 1);
	assert_int_equal(fx_expire_all(&F), 0);
	BAL(FX_UA, 0, 80000, 0, 0, 80000);
	/* At hold_expires, before the timer ran: BAD_STATE already. */
	fx_set_now(&F, t + TTL);
	NO(c, AUTH_REASON_BAD_STATE, .available = 920000, .risk = 120);
	NO(v, AUTH_REASON_BAD_STATE, .available = 920000, .risk = 120);
	/* The timer releases it: one journaled effect. */
	s0 = seq_now();
	assert_int_equal(fx_expire_all(&F), 1);
	assert_int_equal(seq_now(), s0 + 1);
	/* Placed this month: the month spend comes back. */
	BAL(FX_UA, 0, 30000, 0, 0, 30000);
	BOOKS(30000, 15000, 15000, 0);
	assert_int_equal(lim_ops_find(F.db->ops, FX_GW, 1)->state,
			 LIM_OPS_CLOSED);
	/* Again: nothing (the entry is closed). */
	assert_int_equal(fx_expire_all(&F), 0);
	assert_int_equal(seq_now(), s0 + 1);
	/* Still BAD_STATE after the timer. */
	c.request_id = 5;
	NO(c, AUTH_REASON_BAD_STATE, .available = 970000, .risk = 120);
}

static void
test_expiry_next_month(void **state)
{
	(void)state;
	uint32_t t = fx_local8(2026, 10, 28, 9, 0, 0); /* expires 4 November */
	struct auth_req a = req(LIM_OP_AUTHORIZE, 1, FX_UA, 0, 50000, PL);
	struct auth_req b = req(LIM_OP_AUTHORIZE, 2, FX_UA, 0, 20000, PL);

	a.group_id = FX_G;
	fx_set_now(&F, t);
	OK(a, .amount = 50000, .available = 950000, .hold_expires = t + TTL,
	   .funder = FX_BANK, .own = 50, .risk = 120);
	fx_set_now(&F, fx_local8(2026, 11, 2, 9, 0, 0));
	OK(b, .amount = 20000, .available = 930000,
	   .hold_expires = F.x.now.s + TTL, .funder = FX_BANK, .own = 50,
	   .risk = 120);
	BAL(FX_UA, 0, 70000, 0, 0, 20000);
	fx_set_now(&F, t + TTL);
	assert_int_equal(fx_expire_all(&F), 1);
	/* October's spend stays October's: November's is untouched, and so
	 * is the group's November. */
	BAL(FX_UA, 0, 20000, 0, 0, 20000);
	assert_int_equal(lim_group_find(F.db, FX_G)->st->month_spend_fen, 50000);
	BOOKS(20000, 10000, 10000, 0);
}

/* ------------------------------------------------------------------------ */
/* Duplicates                                                                 */

/* Send @p r again: the first answer with DUPLICATE, nothing changed. */
static void
dup_check_(const struct auth_req *r, const struct auth_resp *first,
	   const char *file, int line)
{
	struct fx_state before, after;
	struct auth_resp a, want = *first;
	struct lim_effect e;

	want.notes |= AUTH_NOTE_DUPLICATE;
	fx_state_take(&F, &before);
	memset(&a, 0xa5, sizeof(a));
	CHK("dup rc", fx_exec_gw(&F, FX_GW, r, &a, &e), AUTH_EXEC_ANSWERED);
	if (memcmp(&a, &want, sizeof(a)) != 0) {
		CHK("dup status", a.status, want.status);
		CHK("dup reason", a.reason, want.reason);
		CHK("dup notes", a.notes, want.notes);
		CHK("dup amount", a.amount, want.amount);
		CHK("dup available", a.available, want.available);
		CHK("dup ledger_seq", a.ledger_seq, want.ledger_seq);
		CHK("dup hold_expires", a.hold_expires, want.hold_expires);
		CHK("dup funder", a.funder_id, want.funder_id);
		CHK("dup own", a.own_share_pct, want.own_share_pct);
		CHK("dup self_cap_left", a.self_cap_left, want.self_cap_left);
		CHK("dup risk", a.risk_score, want.risk_score);
		print_error("duplicate answer differs\n");
		_fail(file, line);
	}
	fx_state_take(&F, &after);
	fx_state_same_(&before, &after, file, line);
}

#define DUP(r, first) dup_check_(&(r), &(first), __FILE__, __LINE__)

static void
test_duplicates(void **state)
{
	(void)state;
	struct auth_req a = req(LIM_OP_AUTHORIZE, 1, FX_UA, 0, 100000, PL);
	struct auth_req c = req(LIM_OP_CAPTURE, 2, FX_UA, 1, 70000, PL);
	struct auth_req rf = req(LIM_OP_REFUND, 3, FX_UA, 1, 10000, PL);
	struct auth_req rp = req(LIM_OP_REPAY, 4, FX_UA, 0, 10000, PL);
	struct auth_req a2 = req(LIM_OP_AUTHORIZE, 5, FX_UA, 0, 20000, INST);
	struct auth_req v = req(LIM_OP_VOID, 6, FX_UA, 5, 5000, PL);
	struct auth_req big = req(LIM_OP_AUTHORIZE, 7, FX_UA, 0, 1500000, PL);
	struct auth_req cash = req(LIM_OP_AUTHORIZE, 8, FX_UA, 0, 30000, CASH);
	struct auth_req vu = req(LIM_OP_VOID, 9, FX_UA, 424242, 0, PL);
	struct auth_resp r, rcash;

	r = OK(a, .amount = 100000, .available = 900000,
	       .hold_expires = T0 + TTL, .funder = FX_BANK, .own = 50,
	       .risk = 120);
	DUP(a, r);
	/* Time passes, state changes: the replay is still the first answer. */
	fx_set_now(&F, T0 + 3600);
	r = OK(c, .amount = 70000, .available = 930000, .funder = FX_BANK,
	       .own = 50, .risk = 120);
	DUP(c, r);
	DUP(a, ((struct auth_resp){.request_id = 1, .user_id = FX_UA,
				   .ledger_seq = 1, .amount = 100000,
				   .available = 900000,
				   .hold_expires = T0 + TTL, .op = 1,
				   .funder_id = FX_BANK, .own_share_pct = 50,
				   .risk_score = 120, .self_cap_left = -1}));
	r = OK(rf, .amount = 10000, .available = 940000, .funder = FX_BANK,
	       .own = 50, .risk = 120);
	DUP(rf, r);
	r = OK(rp, .amount = 10000, .available = 950000, .risk = 40);
	DUP(rp, r);
	r = OK(a2, .amount = 20000, .available = 930000,
	       .hold_expires = T0 + 3600 + TTL, .funder = FX_BANK, .own = 50,
	       .risk = 120);
	DUP(a2, r);
	r = OK(v, .amount = 5000, .available = 935000,
	       .hold_expires = T0 + 3600 + TTL, .funder = FX_BANK, .own = 50,
	       .risk = 120);
	DUP(v, r);
	/* Declines replay as declines. */
	r = NO(big, AUTH_REASON_INSUFFICIENT_LIMIT, .available = 935000,
	       .risk = 120);
	DUP(big, r);
	rcash = OK(cash, .amount = 30000, .available = 905000, .own = 100,
		   .risk = 120);
	assert_int_equal(rcash.ledger_seq, 8);
	DUP(cash, rcash);
	r = NO(vu, AUTH_REASON_UNKNOWN_REF, .available = 905000, .risk = 120);
	DUP(vu, r);
	/* A duplicate is answered even when the user was frozen since. */
	fx_user(&F, FX_UA)->flags |= LIM_USER_FROZEN;
	DUP(cash, rcash);
	DUP(vu, r);
	/* A different gateway is a different id. */
	struct auth_resp a3;
	struct lim_effect e;
	assert_int_equal(fx_exec_gw(&F, FX_GW2, &a, &a3, &e),
			 AUTH_EXEC_RECORDED);
	assert_int_equal(a3.reason, AUTH_REASON_USER_FROZEN);
	assert_int_equal(a3.notes, 0);
}

/* ------------------------------------------------------------------------ */
/* Reversal before the original                                               */

static void
test_reversal_first(void **state)
{
	(void)state;
	struct auth_req v = req(LIM_OP_VOID, 1, FX_UA, 500, 0, PL);
	struct auth_req a = req(LIM_OP_AUTHORIZE, 500, FX_UA, 0, 10000, PL);
	struct auth_req rf = req(LIM_OP_REFUND, 2, FX_UA, 501, 10000, PL);
	struct auth_req a2 = req(LIM_OP_AUTHORIZE, 501, FX_UA, 0, 10000, PL);
	struct auth_req c = req(LIM_OP_CAPTURE, 3, FX_UA, 500, 10000, PL);
	struct auth_req v2 = req(LIM_OP_VOID, 4, FX_UA, 500, 0, PL);
	struct fx_state before, after;
	struct auth_resp first;

	/* The void arrives first: UNKNOWN_REF, a tombstone under 500. */
	first = NO(v, AUTH_REASON_UNKNOWN_REF, .available = 1000000, .risk = 120);
	assert_int_equal(lim_ops_count(F.db->ops), 2);
	assert_int_equal(lim_ops_find(F.db->ops, FX_GW, 500)->state,
			 LIM_OPS_TOMBSTONE);
	/* The original: REVERSED, nothing recorded, nothing changed. */
	fx_state_take(&F, &before);
	ANSWER(a, .status = AUTH_STATUS_DECLINED,
	       .reason = AUTH_REASON_REVERSED, .available = 1000000);
	fx_state_take(&F, &after);
	fx_state_same(&before, &after);
	/* Its retry: REVERSED again. */
	ANSWER(a, .status = AUTH_STATUS_DECLINED,
	       .reason = AUTH_REASON_REVERSED, .available = 1000000);
	fx_state_take(&F, &after);
	fx_state_same(&before, &after);
	/* The void's own retry is its first answer. */
	DUP(v, first);
	/* A capture or void naming the tombstone: UNKNOWN_REF, no new one. */
	NO(c, AUTH_REASON_UNKNOWN_REF, .available = 1000000, .risk = 120);
	NO(v2, AUTH_REASON_UNKNOWN_REF, .available = 1000000, .risk = 120);
	assert_int_equal(lim_ops_count(F.db->ops), 4);
	/* A refund first does the same. */
	NO(rf, AUTH_REASON_UNKNOWN_REF, .available = 1000000, .risk = 120);
	ANSWER(a2, .status = AUTH_STATUS_DECLINED,
	       .reason = AUTH_REASON_REVERSED, .available = 1000000);
	/* Id 500 of another gateway is another payment. */
	struct auth_resp r;
	struct lim_effect e;
	assert_int_equal(fx_exec_gw(&F, FX_GW2, &a, &r, &e), AUTH_EXEC_RECORDED);
	assert_int_equal(r.status, AUTH_STATUS_APPROVED);
	BAL(FX_UA, 0, 10000, 0, 0, 10000);
}

/* ------------------------------------------------------------------------ */
/* Group wallet                                                               */

static int64_t
group_spend(uint32_t gid)
{
	return lim_group_find(F.db, gid)->st->month_spend_fen;
}

static void
test_group_wallet(void **state)
{
	(void)state;
	struct auth_req a = req(LIM_OP_AUTHORIZE, 1, FX_UA, 0, 200000, PL);
	struct auth_req b = req(LIM_OP_AUTHORIZE, 2, FX_UB, 0, 150000, PL);
	struct auth_req b2 = req(LIM_OP_AUTHORIZE, 3, FX_UB, 0, 100000, PL);
	struct auth_req nm = req(LIM_OP_AUTHORIZE, 4, FX_UC, 0, 1000, PL);
	struct auth_req va = req(LIM_OP_VOID, 5, FX_UA, 1, 0, PL);
	struct auth_req cb = req(LIM_OP_CAPTURE, 6, FX_UB, 3, 40000, PL);
	struct auth_req big = req(LIM_OP_AUTHORIZE, 7, FX_UA, 0, 900000, PL);
	struct lim_user ua_before;
	struct lim_user ub_before;
	struct lim_group_state gs_before;

	a.group_id = b.group_id = b2.group_id = nm.group_id = big.group_id = FX_G;
	OK(a, .amount = 200000, .available = 800000, .hold_expires = T0 + TTL,
	   .funder = FX_BANK, .own = 50, .risk = 120);
	assert_int_equal(group_spend(FX_G), 200000);
	BAL(FX_UA, 0, 200000, 0, 0, 200000);
	/* 1,500 yuan does not fit the 1,000 left: neither balance moves. */
	ub_before = *fx_user(&F, FX_UB);
	gs_before = *lim_group_find(F.db, FX_G)->st;
	NO(b, AUTH_REASON_GROUP_LIMIT, .available = 500000, .risk = 120);
	assert_memory_equal(&ub_before, fx_user(&F, FX_UB), sizeof(ub_before));
	assert_memory_equal(&gs_before, lim_group_find(F.db, FX_G)->st,
			    sizeof(gs_before));
	/* Over the member's own limit: neither moves either. */
	ua_before = *fx_user(&F, FX_UA);
	NO(big, AUTH_REASON_INSUFFICIENT_LIMIT, .available = 800000,
	   .risk = 120);
	assert_memory_equal(&ua_before, fx_user(&F, FX_UA), sizeof(ua_before));
	assert_int_equal(group_spend(FX_G), 200000);
	/* What is left: both move. UB is tier 1 in region 31: bank 11 is
	 * first in priority. */
	OK(b2, .amount = 100000, .available = 400000, .hold_expires = T0 + TTL,
	   .funder = FX_BANK, .own = 50, .risk = 120);
	assert_int_equal(group_spend(FX_G), 300000);
	BAL(FX_UB, 0, 100000, 0, 0, 100000);
	/* Not a member. */
	NO(nm, AUTH_REASON_UNKNOWN_GROUP, .available = 2000000, .risk = 120,
	   .cap_left = 300000);
	nm.request_id = 8;
	nm.group_id = 79;
	NO(nm, AUTH_REASON_UNKNOWN_GROUP, .available = 2000000, .risk = 120,
	   .cap_left = 300000);
	/* Releases give the group's spend back too. */
	OK(va, .amount = 200000, .available = 1000000, .funder = FX_BANK,
	   .own = 50, .risk = 120);
	assert_int_equal(group_spend(FX_G), 100000);
	BAL(FX_UA, 0, 0, 0, 0, 0);
	OK(cb, .amount = 40000, .available = 460000, .funder = FX_BANK,
	   .own = 50, .risk = 120);
	assert_int_equal(group_spend(FX_G), 40000);
	BAL(FX_UB, 40000, 0, 0, 0, 40000);
	BOOKS(40000, 20000, 20000, 0);
	/* The group's budget is back for the others. */
	b.request_id = 9;
	OK(b, .amount = 150000, .available = 310000, .hold_expires = T0 + TTL,
	   .funder = FX_BANK, .own = 50, .risk = 120);
	assert_int_equal(group_spend(FX_G), 190000);
}

static void
test_group_new_month(void **state)
{
	(void)state;
	struct auth_req a = req(LIM_OP_AUTHORIZE, 1, FX_UC, 0, 50000, PL);
	struct auth_req b = req(LIM_OP_AUTHORIZE, 2, FX_UC, 0, 1, PL);

	a.group_id = b.group_id = FX_G2;
	fx_set_now(&F, fx_local8(2026, 10, 31, 23, 59, 59));
	OK(a, .amount = 50000, .available = 1950000,
	   .hold_expires = F.x.now.s + TTL, .own = 50, .funder = FX_BANK,
	   .cap_left = 250000, .risk = 120);
	NO(b, AUTH_REASON_GROUP_LIMIT, .available = 1950000, .cap_left = 250000,
	   .risk = 120);
	/* 00:00 +08 on 1 November: the group's month is new. */
	fx_set_now(&F, fx_local8(2026, 11, 1, 0, 0, 0));
	b.request_id = 3;
	/* (The bank's part of 1 fen is 0: bank 11 still funds it.) */
	OK(b, .amount = 1, .available = 1949999,
	   .hold_expires = F.x.now.s + TTL, .funder = FX_BANK, .own = 50,
	   .cap_left = 299999, .risk = 120);
	assert_int_equal(group_spend(FX_G2), 1);
}

/* ------------------------------------------------------------------------ */
/* Two threads whose clocks straddle a month boundary                         */

/*
 * Every dataplane thread computes "now" once per burst, so two threads can
 * disagree by a second: at 00:00:00 +08 on 1 November one is already in
 * November while another still decides at 23:59:59 on 31 October. Records
 * of one user (or one group) may reach them in any order. Month spend must
 * stay exact where the clocks agree and never go negative where they do
 * not (a negative spend stops the process: LIM_VERIFY in lim_apply).
 */
static struct auth_exec lag; /* a second thread, one second behind */

static struct auth_resp
exec_on(struct auth_exec *x, const struct auth_req *r)
{
	struct auth_resp a;
	struct lim_effect e;

	auth_exec_one(x, FX_GW, r, fx_user(&F, r->user_id), &a, &e);
	return a;
}

static void
lag_init(uint32_t now_s)
{
	lag.db = F.db;
	lag.shard = 1;
	auth_now_set(&lag.now, now_s, FX_TZ);
}

static void
test_skew_user_month_spend(void **state)
{
	(void)state;
	uint32_t nov = fx_local8(2026, 11, 1, 0, 0, 0);
	struct auth_req h1 = req(LIM_OP_AUTHORIZE, 1, FX_UA, 0, 1000, PL);
	struct auth_req h2 = req(LIM_OP_AUTHORIZE, 2, FX_UA, 0, 500, PL);
	struct auth_req h3 = req(LIM_OP_AUTHORIZE, 3, FX_UA, 0, 200, PL);
	struct auth_req v1 = req(LIM_OP_VOID, 4, FX_UA, 1, 0, PL);

	fx_set_now(&F, nov);
	lag_init(nov - 1);
	assert_int_equal(exec_on(&F.x, &h1).status, AUTH_STATUS_APPROVED);
	/* The lagging thread counts its spend: not back into October. */
	assert_int_equal(exec_on(&lag, &h2).status, AUTH_STATUS_APPROVED);
	fx_set_now(&F, nov + 1);
	assert_int_equal(exec_on(&F.x, &h3).status, AUTH_STATUS_APPROVED);
	BAL(FX_UA, 0, 1700, 0, 0, 1700);
	/* Voiding November's first hold gives back its 1,000. */
	assert_int_equal(exec_on(&F.x, &v1).status, AUTH_STATUS_APPROVED);
	BAL(FX_UA, 0, 700, 0, 0, 700);
	assert_int_equal(fx_user(&F, FX_UA)->spend_min, (nov + 1) / 60);
}

static void
test_skew_lagging_release(void **state)
{
	(void)state;
	uint32_t nov = fx_local8(2026, 11, 1, 0, 0, 0);
	struct auth_req h1 = req(LIM_OP_AUTHORIZE, 1, FX_UA, 0, 1000, PL);
	struct auth_req h2 = req(LIM_OP_AUTHORIZE, 2, FX_UA, 0, 100, PL);
	struct auth_req v1 = req(LIM_OP_VOID, 3, FX_UA, 1, 0, PL);

	fx_set_now(&F, nov - 30);
	assert_int_equal(exec_on(&F.x, &h1).status, AUTH_STATUS_APPROVED);
	fx_set_now(&F, nov);
	assert_int_equal(exec_on(&F.x, &h2).status, AUTH_STATUS_APPROVED);
	BAL(FX_UA, 0, 1100, 0, 0, 100);
	/* A thread still in October voids October's hold: November's spend
	 * (100) does not hold it and keeps its own. */
	lag_init(nov - 1);
	assert_int_equal(exec_on(&lag, &v1).status, AUTH_STATUS_APPROVED);
	BAL(FX_UA, 0, 100, 0, 0, 100);
	BOOKS(100, 50, 50, 0);
}

static void
test_skew_group_month_spend(void **state)
{
	(void)state;
	uint32_t nov = fx_local8(2026, 11, 1, 0, 0, 0);
	struct auth_req h1 = req(LIM_OP_AUTHORIZE, 1, FX_UA, 0, 1000, PL);
	struct auth_req h2 = req(LIM_OP_AUTHORIZE, 2, FX_UB, 0, 500, PL);
	struct auth_req h3 = req(LIM_OP_AUTHORIZE, 3, FX_UA, 0, 200, PL);
	struct auth_req v1 = req(LIM_OP_VOID, 4, FX_UA, 1, 0, PL);

	h1.group_id = h2.group_id = h3.group_id = FX_G;
	fx_set_now(&F, nov);
	lag_init(nov - 1);
	assert_int_equal(exec_on(&F.x, &h1).status, AUTH_STATUS_APPROVED);
	/* Another member, on the lagging thread: the group's month must not
	 * go back to October (that would drop November's 1,000). */
	assert_int_equal(exec_on(&lag, &h2).status, AUTH_STATUS_APPROVED);
	fx_set_now(&F, nov + 1);
	assert_int_equal(exec_on(&F.x, &h3).status, AUTH_STATUS_APPROVED);
	assert_int_equal(group_spend(FX_G), 1700);
	assert_int_equal(exec_on(&F.x, &v1).status, AUTH_STATUS_APPROVED);
	assert_int_equal(group_spend(FX_G), 700);
	assert_int_equal(lim_group_find(F.db, FX_G)->st->month_start_s, nov);
}

static void
test_skew_lagging_timer(void **state)
{
	(void)state;
	uint32_t nov = fx_local8(2026, 11, 1, 0, 0, 0);
	struct auth_req h1 = req(LIM_OP_AUTHORIZE, 1, FX_UA, 0, 1000, PL);
	struct auth_req h2 = req(LIM_OP_AUTHORIZE, 2, FX_UA, 0, 100, PL);

	/* A hold that lapses at 23:59:59 on 31 October. */
	fx_set_now(&F, nov - 1 - TTL);
	assert_int_equal(exec_on(&F.x, &h1).status, AUTH_STATUS_APPROVED);
	fx_set_now(&F, nov);
	assert_int_equal(exec_on(&F.x, &h2).status, AUTH_STATUS_APPROVED);
	BAL(FX_UA, 0, 1100, 0, 0, 100);
	/* The ledger worker's clock is a second behind the dataplane's. */
	fx_set_now(&F, nov - 1);
	assert_int_equal(fx_expire_all(&F), 1);
	BAL(FX_UA, 0, 100, 0, 0, 100);
}

/* ------------------------------------------------------------------------ */
/* Op store full                                                              */

static void
test_ops_full_busy(void **state)
{
	(void)state;
	struct fx_state before, after;
	struct auth_req r;
	struct auth_resp first;
	uint64_t cap;

	fx_fini(&F);
	fx_init(&F, 16); /* one partition of 16 entries */
	assert_int_equal(lim_ops_partitions(F.db->ops), 1);
	cap = lim_ops_capacity(F.db->ops);
	assert_int_equal(cap, 16);
	for (uint64_t i = 0; i + 1 < cap; i++) {
		/* a minute apart: velocity allows 10 a minute */
		fx_set_now(&F, T0 + 60 * (uint32_t)i);
		r = req(LIM_OP_AUTHORIZE, 100 + i, FX_UA, 0, 1000, PL);
		first = OK(r, .amount = 1000,
			   .available = 1000000 - 1000 * (int64_t)(i + 1),
			   .hold_expires = F.x.now.s + TTL, .funder = FX_BANK,
			   .own = 50, .risk = 120);
	}
	/* One entry left: a void of an unknown ref needs two (its own and
	 * the tombstone): BUSY, and nothing changed. */
	fx_state_take(&F, &before);
	r = req(LIM_OP_VOID, 1, FX_UA, 77777, 0, PL);
	ANSWER(r, .status = AUTH_STATUS_DECLINED, .reason = AUTH_REASON_BUSY);
	fx_state_take(&F, &after);
	fx_state_same(&before, &after);
	assert_null(lim_ops_find(F.db->ops, FX_GW, 77777));
	/* The last entry. */
	r = req(LIM_OP_AUTHORIZE, 99, FX_UA, 0, 1000, PL);
	r.group_id = FX_G;
	OK(r, .amount = 1000, .available = 984000,
	   .hold_expires = F.x.now.s + TTL, .funder = FX_BANK, .own = 50,
	   .risk = 120);
	/* Full: an approval, a decline, a capture, a group payment: BUSY,
	 * nothing changed (user, group, budgets, quotas, ledger). */
	fx_state_take(&F, &before);
	r = req(LIM_OP_AUTHORIZE, 2, FX_UA, 0, 1000, PL);
	ANSWER(r, .status = AUTH_STATUS_DECLINED, .reason = AUTH_REASON_BUSY);
	r = req(LIM_OP_AUTHORIZE, 3, FX_UA, 0, 99000000, PL);
	ANSWER(r, .status = AUTH_STATUS_DECLINED, .reason = AUTH_REASON_BUSY);
	r = req(LIM_OP_CAPTURE, 4, FX_UA, 100, 1000, PL);
	ANSWER(r, .status = AUTH_STATUS_DECLINED, .reason = AUTH_REASON_BUSY);
	r = req(LIM_OP_AUTHORIZE, 5, FX_UB, 0, 1000, PL);
	r.group_id = FX_G;
	ANSWER(r, .status = AUTH_STATUS_DECLINED, .reason = AUTH_REASON_BUSY);
	r = req(LIM_OP_REPAY, 6, FX_UA, 0, 1, PL);
	ANSWER(r, .status = AUTH_STATUS_DECLINED, .reason = AUTH_REASON_BUSY);
	fx_state_take(&F, &after);
	fx_state_same(&before, &after);
	/* A duplicate needs no entry: still answered. */
	r = req(LIM_OP_AUTHORIZE, 100 + cap - 2, FX_UA, 0, 1000, PL);
	DUP(r, first);
	/* Unknown users are answered too. */
	r = req(LIM_OP_AUTHORIZE, 7, FX_UNOBODY, 0, 1000, PL);
	ANSWER(r, .status = AUTH_STATUS_DECLINED,
	       .reason = AUTH_REASON_UNKNOWN_USER);
	fx_state_take(&F, &after);
	fx_state_same(&before, &after);
}

/* ------------------------------------------------------------------------ */
/* Ledger sequence                                                            */

static void
test_ledger_seq(void **state)
{
	(void)state;
	struct auth_req r;
	struct auth_resp a;
	uint64_t s;

	assert_int_equal(seq_now(), 0);
	r = req(LIM_OP_AUTHORIZE, 1, FX_UA, 0, 1000, PL);
	a = OK(r, .amount = 1000, .available = 999000, .hold_expires = T0 + TTL,
	       .funder = FX_BANK, .own = 50, .risk = 120);
	assert_int_equal(a.ledger_seq, 1);
	/* A decline is journaled (the sequence moves) but says 0. */
	r = req(LIM_OP_AUTHORIZE, 2, FX_UFROZEN, 0, 1000, PL);
	NO(r, AUTH_REASON_USER_FROZEN, .available = 1000000, .risk = 120);
	assert_int_equal(seq_now(), 2);
	/* Nothing recorded: malformed, unknown user, duplicate, reversed. */
	r = req(LIM_OP_AUTHORIZE, 3, FX_UA, 0, 0, PL);
	ANSWER(r, .status = AUTH_STATUS_ERROR, .reason = AUTH_REASON_MALFORMED);
	r = req(LIM_OP_AUTHORIZE, 4, FX_UNOBODY, 0, 1000, PL);
	ANSWER(r, .status = AUTH_STATUS_DECLINED,
	       .reason = AUTH_REASON_UNKNOWN_USER);
	r = req(LIM_OP_AUTHORIZE, 1, FX_UA, 0, 1000, PL);
	ANSWER(r, .status = AUTH_STATUS_APPROVED, .amount = 1000,
	       .available = 999000, .hold_expires = T0 + TTL,
	       .funder = FX_BANK, .own = 50, .risk = 120,
	       .notes = AUTH_NOTE_DUPLICATE, .seq = 1);
	r = req(LIM_OP_VOID, 5, FX_UA, 600, 0, PL);
	NO(r, AUTH_REASON_UNKNOWN_REF, .available = 999000, .risk = 120);
	r = req(LIM_OP_AUTHORIZE, 600, FX_UA, 0, 1000, PL);
	ANSWER(r, .status = AUTH_STATUS_DECLINED,
	       .reason = AUTH_REASON_REVERSED, .available = 999000);
	assert_int_equal(seq_now(), 3);
	/* Capture gets the next one: the order is causal per user. */
	r = req(LIM_OP_CAPTURE, 6, FX_UA, 1, 1000, PL);
	a = OK(r, .amount = 1000, .available = 999000, .funder = FX_BANK,
	       .own = 50, .risk = 120);
	assert_int_equal(a.ledger_seq, 4);
	s = seq_now();
	/* An expiry is an effect too. */
	r = req(LIM_OP_AUTHORIZE, 7, FX_UA, 0, 1000, PL);
	OK(r, .amount = 1000, .available = 998000, .hold_expires = T0 + TTL,
	   .funder = FX_BANK, .own = 50, .risk = 120);
	fx_set_now(&F, T0 + TTL);
	assert_int_equal(fx_expire_all(&F), 1);
	assert_int_equal(seq_now(), s + 2);
}

/* ------------------------------------------------------------------------ */

#define T(f) cmocka_unit_test_setup_teardown(f, setup, teardown)

int
main(void)
{
	const struct CMUnitTest tests[] = {
		T(test_authorize_capture_refund_repay),
		T(test_installment_lifecycle),
		T(test_cash_lifecycle),
		T(test_void_partial_then_whole),
		T(test_void_whole_and_capture_rest),
		T(test_expiry),
		T(test_expiry_next_month),
		T(test_duplicates),
		T(test_reversal_first),
		T(test_group_wallet),
		T(test_group_new_month),
		T(test_skew_user_month_spend),
		T(test_skew_lagging_release),
		T(test_skew_group_month_spend),
		T(test_skew_lagging_timer),
		T(test_ops_full_busy),
		T(test_ledger_seq),
	};
	int rc;

	rcu_register_thread();
	rc = cmocka_run_group_tests(tests, NULL, NULL);
	rcu_unregister_thread();
	return rc;
}
