/*
 * test_decide.c - auth_decide() on hand-built inputs, one test per rule and
 * reason code of docs/rules.md, each asserting the exact answer and the
 * exact effect; the evaluation order; the month and day boundaries in
 * UTC+8; the funder choice; auth_expire(); and that deciding allocates
 * nothing and makes no system call.
 *
 * Everything auth_decide() reads is built here by hand: the user slot, the
 * extension, the merchant, the group, the op entries, the funder table and
 * the budgets (lim_budget_create()). No database is involved.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <linux/seccomp.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>

#include "auth.h"
#include "lim_fixture.h"

/* ------------------------------------------------------------------------ */
/* Allocation counter                                                         */

/*
 * Sanitizer builds own malloc: count through their allocator hooks. Other
 * builds interpose the allocator in this executable (it takes precedence
 * over jemalloc and libc for every caller in the process) and forward to
 * glibc's __libc_* entry points. test_alloc_counter_works proves the counter
 * sees a malloc, so the purity test cannot pass vacuously.
 */
#if defined(__SANITIZE_THREAD__)
#define DEC_TSAN 1
#elif defined(__has_feature)
#if __has_feature(thread_sanitizer)
#define DEC_TSAN 1
#endif
#endif
#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
#define DEC_SAN_ALLOC 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer) || __has_feature(thread_sanitizer) ||    \
	__has_feature(memory_sanitizer)
#define DEC_SAN_ALLOC 1
#endif
#endif

static volatile int counting;
static unsigned long n_allocs, n_frees;

static void
count_alloc(void)
{
	if (counting)
		__atomic_add_fetch(&n_allocs, 1, __ATOMIC_RELAXED);
}

static void
count_free(void)
{
	if (counting)
		__atomic_add_fetch(&n_frees, 1, __ATOMIC_RELAXED);
}

#ifdef DEC_SAN_ALLOC
#include <sanitizer/allocator_interface.h>

static void
san_malloc_hook(const volatile void *p, size_t n)
{
	(void)p;
	(void)n;
	count_alloc();
}

static void
san_free_hook(const volatile void *p)
{
	(void)p;
	count_free();
}

static void
alloc_counter_install(void)
{
	__sanitizer_install_malloc_and_free_hooks(san_malloc_hook, san_free_hook);
}
#else
extern void *__libc_malloc(size_t n);
extern void *__libc_calloc(size_t n, size_t m);
extern void *__libc_realloc(void *p, size_t n);
extern void __libc_free(void *p);
extern void *__libc_memalign(size_t a, size_t n);
extern void *__libc_valloc(size_t n);
extern void *__libc_pvalloc(size_t n);

void *
malloc(size_t n)
{
	count_alloc();
	return __libc_malloc(n);
}

void *
calloc(size_t n, size_t m)
{
	count_alloc();
	return __libc_calloc(n, m);
}

void *
realloc(void *p, size_t n)
{
	count_alloc();
	return __libc_realloc(p, n);
}

void
free(void *p)
{
	if (p)
		count_free();
	__libc_free(p);
}

void *
memalign(size_t a, size_t n)
{
	count_alloc();
	return __libc_memalign(a, n);
}

void *
aligned_alloc(size_t a, size_t n)
{
	count_alloc();
	return __libc_memalign(a, n);
}

int
posix_memalign(void **out, size_t a, size_t n)
{
	void *p;

	count_alloc();
	if (a < sizeof(void *) || (a & (a - 1)))
		return 22; /* EINVAL */
	p = __libc_memalign(a, n);
	if (!p)
		return 12; /* ENOMEM */
	*out = p;
	return 0;
}

void *
valloc(size_t n)
{
	count_alloc();
	return __libc_valloc(n);
}

void *
pvalloc(size_t n)
{
	count_alloc();
	return __libc_pvalloc(n);
}

static void
alloc_counter_install(void)
{
}
#endif

/* ------------------------------------------------------------------------ */
/* Inputs built by hand                                                       */

#define GW 9
#define UID 1001
#define MID 5001
#define GID 77
#define RID 7001
#define REF 6001

#define T0 FX_T0 /* 2026-10-30 12:00:00 +08:00 */
#define TTL (7u * 86400u)
#define BIG 10000000000000LL /* 100 billion yuan */

static struct ctx {
	struct lim_policy pol;
	struct lim_user u;
	struct lim_user_ext x;
	struct lim_merchant m;
	struct lim_group g;
	struct lim_group_state gs;
	struct lim_op dup, ref;
	struct lim_funders fs;
	struct lim_budget *cap;
	struct auth_now now;
	struct auth_req req;
	bool has_user, has_x, has_m, has_g, has_dup, has_ref;
	unsigned shard;
} C;

static void
set_now(uint32_t s)
{
	auth_now_set(&C.now, s, C.pol.tz_offset_s);
}

/* Replace funder slot @p i (its budget too). */
static void
set_funder(unsigned i, uint16_t id, uint16_t region, uint8_t share,
	   uint8_t products, int64_t quota)
{
	if (C.fs.budget[i])
		lim_budget_free(C.fs.budget[i]);
	C.fs.f[i] = (struct lim_funder){.quota_fen = quota,
					 .funder_id = id,
					 .region = region,
					 .share_pct = share,
					 .products = products};
	C.fs.budget[i] = lim_budget_create(quota, 1000000, 2);
	assert_non_null(C.fs.budget[i]);
	if (C.fs.n <= i)
		C.fs.n = i + 1;
}

static void
set_cap(int64_t total, int64_t chunk)
{
	if (C.cap)
		lim_budget_free(C.cap);
	C.cap = lim_budget_create(total, chunk, 2);
	assert_non_null(C.cap);
}

#define ALL_PRODUCTS FX_ALL_PRODUCTS
#define PBIT(p) (1u << (p))

static int
setup(void **state)
{
	(void)state;
	memset(&C, 0, sizeof(C));
	lim_policy_default(&C.pol);
	C.u = (struct lim_user){.user_id = UID,
				.limit_fen = 1000000,
				.region = 21,
				.tier = 2,
				.risk_q = 10};
	C.has_user = true;
	C.x = (struct lim_user_ext){.user_id = UID,
				    .temp_quota_fen = 0,
				    .cash_limit_fen = -1,
				    .alert_fen = -1};
	C.m = (struct lim_merchant){.merchant_id = MID,
				    .mcc = 5411,
				    .region = 21,
				    .risk_score = 120};
	C.has_m = true;
	C.g = (struct lim_group){.group_id = GID,
				 .n_members = 2,
				 .budget_fen = 300000,
				 .members = {1002, UID},
				 .st = &C.gs};
	C.req = (struct auth_req){.request_id = RID,
				  .user_id = UID,
				  .amount = 10000,
				  .merchant_id = MID,
				  .mcc = 5411,
				  .region = 21,
				  .op = LIM_OP_AUTHORIZE,
				  .product = LIM_PRODUCT_PAYLATER,
				  .channel = AUTH_CHANNEL_ONLINE,
				  .device_id = 0xabcdef};
	set_cap(BIG, 1000000000);
	set_funder(0, 0, 0, 0, ALL_PRODUCTS, BIG);
	set_now(T0);
	return 0;
}

static int
teardown(void **state)
{
	(void)state;
	for (unsigned i = 0; i < LIM_FUNDERS_MAX; i++)
		if (C.fs.budget[i])
			lim_budget_free(C.fs.budget[i]);
	lim_budget_free(C.cap);
	memset(&C, 0, sizeof(C));
	return 0;
}

static void
make_in(struct auth_in *in)
{
	memset(in, 0, sizeof(*in));
	in->req = &C.req;
	in->gateway_id = GW;
	in->now = &C.now;
	in->policy = &C.pol;
	in->user = C.has_user ? &C.u : NULL;
	in->ext = C.has_x ? &C.x : NULL;
	in->merchant = C.has_m ? &C.m : NULL;
	in->group = C.has_g ? &C.g : NULL;
	in->dup = C.has_dup ? &C.dup : NULL;
	in->ref = C.has_ref ? &C.ref : NULL;
	in->funders = &C.fs;
	in->cap = C.cap;
	in->shard = C.shard;
}

static struct auth_out
decide(void)
{
	struct auth_in in;
	struct auth_out out;
	struct lim_user before = C.u;
	struct lim_op ref_before = C.ref, dup_before = C.dup;
	struct lim_group_state gs_before = C.gs;

	make_in(&in);
	memset(&out, 0xa5, sizeof(out)); /* every field must be written */
	auth_decide(&in, &out);
	/* Pure: nothing it was given changed. */
	assert_memory_equal(&before, &C.u, sizeof(before));
	assert_memory_equal(&ref_before, &C.ref, sizeof(ref_before));
	assert_memory_equal(&dup_before, &C.dup, sizeof(dup_before));
	assert_memory_equal(&gs_before, &C.gs, sizeof(gs_before));
	return out;
}

/* An approved, open hold of UID as lim_apply() leaves it. */
static void
held_ref(uint64_t rid, int64_t amount, uint8_t product, uint8_t terms,
	 uint32_t created_s)
{
	C.ref = (struct lim_op){.request_id = rid,
				.user_id = UID,
				.gateway_id = GW,
				.retain_until_s = created_s + TTL,
				.ledger_seq = 41,
				.amount_fen = amount,
				.available_fen = 123,
				.self_cap_left_fen = -1,
				.hold_expires_s = created_s + TTL,
				.risk_score = 120,
				.funder_id = 11,
				.op = LIM_OP_AUTHORIZE,
				.status = AUTH_STATUS_APPROVED,
				.reason = AUTH_REASON_APPROVED,
				.own_share_pct = 50,
				.product = product,
				.terms = terms,
				.state = LIM_OPS_HELD,
				.held_fen = amount,
				.funder_fen = amount / 2,
				.created_s = created_s};
	C.has_ref = true;
	/* The user as that authorization left it. */
	C.u.holds_fen += amount;
	C.u.month_spend_fen += amount;
	C.u.spend_min = created_s / 60;
}

/* The same authorization after a capture of @p amount. */
static void
captured_ref(uint64_t rid, int64_t amount, uint8_t product, uint32_t created_s)
{
	held_ref(rid, amount, product, product == LIM_PRODUCT_INSTALLMENT ? 6 : 0,
		 created_s);
	C.ref.state = LIM_OPS_CAPTURED;
	C.ref.held_fen = 0;
	C.ref.captured_fen = amount;
	C.u.holds_fen -= amount;
	C.u.outstanding_fen += amount;
	if (product == LIM_PRODUCT_INSTALLMENT)
		C.u.inst_fen += amount;
}

static void
set_req(uint8_t op, uint64_t ref, int64_t amount, uint8_t product)
{
	C.req.op = op;
	C.req.ref_id = ref;
	C.req.amount = amount;
	C.req.product = product;
	C.req.terms = 0;
	if (op == LIM_OP_REPAY) {
		C.req.merchant_id = 0;
		C.has_m = false;
	}
}

/* ------------------------------------------------------------------------ */
/* Exact expectations                                                         */

struct want {
	uint8_t status, reason, notes, own, kind, count_spend;
	int64_t amount, available, cap_left, d_out, d_holds, d_bucket, d_month;
	uint32_t hold_expires, risk, cool_until, group_id;
	uint16_t funder;
};

#if defined(__clang__)
#pragma clang diagnostic ignored "-Winitializer-overrides"
#else
#pragma GCC diagnostic ignored "-Woverride-init"
#endif
/* Defaults: no self cap, nothing moves; each test names the rest. */
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
check_out(const struct auth_out *o, struct want w, const char *file, int line)
{
	const struct auth_resp *a = &o->resp;
	const struct lim_effect *e = &o->eff;

	/* echoed */
	CHK("request_id", a->request_id, C.req.request_id);
	CHK("user_id", a->user_id, C.req.user_id);
	CHK("op", a->op, C.req.op);
	CHK("ledger_seq", a->ledger_seq, 0);
	CHK("reserved", a->reserved, 0);
	/* the answer */
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
	/* the effect */
	CHK("kind", e->kind, w.kind);
	CHK("seq", e->seq, 0);
	CHK("d_outstanding", e->d_outstanding_fen, w.d_out);
	CHK("d_holds", e->d_holds_fen, w.d_holds);
	CHK("d_bucket", e->d_bucket_fen, w.d_bucket);
	CHK("d_month", e->d_month_fen, w.d_month);
	CHK("count_spend", e->count_spend, w.count_spend);
	CHK("cool_until", e->cool_until_s, w.cool_until);
	CHK("group_id", e->group_id, w.group_id);
	if (e->kind == LIM_EFF_NONE)
		return;
	/* A recorded effect carries its request and the same answer. */
	CHK("eff.request_id", e->request_id, C.req.request_id);
	CHK("eff.user_id", e->user_id, C.req.user_id);
	CHK("eff.ref_id", e->ref_id, C.req.ref_id);
	CHK("eff.gateway_id", e->gateway_id, GW);
	CHK("eff.now_s", e->now_s, C.now.s);
	CHK("eff.op", e->op, C.req.op);
	CHK("eff.amount", e->amount_fen, a->amount);
	CHK("eff.available", e->available_fen, a->available);
	CHK("eff.self_cap_left", e->self_cap_left_fen, a->self_cap_left);
	CHK("eff.hold_expires", e->hold_expires_s, a->hold_expires);
	CHK("eff.funder_id", e->funder_id, a->funder_id);
	CHK("eff.own_share_pct", e->own_share_pct, a->own_share_pct);
	CHK("eff.risk_score", e->risk_score, a->risk_score);
	CHK("eff.status", e->status, a->status);
	CHK("eff.reason", e->reason, a->reason);
	CHK("eff.notes", e->notes, a->notes);
	CHK("eff.check", e->check, 0);
}

#define EXPECT(out, ...) check_out(&(out), WANT(__VA_ARGS__), __FILE__, __LINE__)

/* Decide and check in one go. */
#define DECIDE(...)                                                            \
	do {                                                                   \
		struct auth_out o_ = decide();                                 \
		check_out(&o_, WANT(__VA_ARGS__), __FILE__, __LINE__);         \
	} while (0)

/* A plain decline of the authorize in C: available before, nothing moves. */
#define DECLINED(why, avail, ...)                                              \
	DECIDE(.status = AUTH_STATUS_DECLINED, .reason = (why),                \
	       .available = (avail), .kind = LIM_EFF_DECIDE, __VA_ARGS__)

#define AUTH_HOLD(amt, avail_after, ...)                                       \
	DECIDE(.status = AUTH_STATUS_APPROVED, .amount = (amt),                \
	       .available = (avail_after), .hold_expires = C.now.s + TTL,      \
	       .own = 100, .kind = LIM_EFF_AUTH, .d_holds = (amt),             \
	       .d_month = (amt), .count_spend = 1, __VA_ARGS__)

/* ------------------------------------------------------------------------ */
/* Time                                                                       */

static void
test_time_constants(void **state)
{
	(void)state;
	/* Independently checked: date -d '2026-10-31 23:59:00 +08:00' +%s */
	assert_int_equal(fx_local8(2026, 10, 31, 23, 59, 0), 1793462340u);
	assert_int_equal(fx_local8(2026, 11, 1, 0, 0, 0), 1793462400u);
	assert_int_equal(fx_local8(2026, 10, 1, 0, 0, 0), 1790784000u);
	assert_int_equal(fx_local8(2026, 10, 30, 12, 0, 0), T0);
	/* The engine's boundaries agree. */
	set_now(fx_local8(2026, 10, 31, 23, 59, 59));
	assert_int_equal(C.now.month_start_s, fx_local8(2026, 10, 1, 0, 0, 0));
	assert_int_equal(C.now.day_start_s, fx_local8(2026, 10, 31, 0, 0, 0));
	assert_int_equal(C.now.minute, 1793462399u / 60);
	set_now(fx_local8(2026, 11, 1, 0, 0, 0));
	assert_int_equal(C.now.month_start_s, 1793462400u);
	assert_int_equal(C.now.day_start_s, 1793462400u);
	/* 2026-11-01 00:00 +08 is still 31 October in UTC. */
	set_now(1793462400u + 3600);
	assert_int_equal(C.now.month_start_s, 1793462400u);
	set_now(fx_local8(2028, 2, 29, 23, 0, 0));
	assert_int_equal(C.now.month_start_s, fx_local8(2028, 2, 1, 0, 0, 0));
	assert_int_equal(C.now.day_start_s, fx_local8(2028, 2, 29, 0, 0, 0));
}

/* ------------------------------------------------------------------------ */
/* Approvals                                                                  */

static void
test_approve_paylater(void **state)
{
	(void)state;
	/* 100 yuan of a 10,000 yuan line: hold, 7 days, the company alone. */
	AUTH_HOLD(10000, 990000, .risk = 120);
	/* The effect names the request's product and terms. */
	struct auth_out o = decide();
	assert_int_equal(o.eff.product, LIM_PRODUCT_PAYLATER);
	assert_int_equal(o.eff.terms, 0);
	assert_int_equal(o.resp.hold_expires, T0 + 604800u);
}

static void
test_approve_installment_interest_free(void **state)
{
	(void)state;
	C.req.product = LIM_PRODUCT_INSTALLMENT;
	C.req.terms = 6;
	C.m.subsidy = LIM_SUBSIDY_6 | LIM_SUBSIDY_12;
	/* The whole principal is held; no debt until capture. */
	AUTH_HOLD(10000, 990000, .risk = 120, .notes = AUTH_NOTE_INTEREST_FREE);
	C.req.terms = 12;
	AUTH_HOLD(10000, 990000, .risk = 120, .notes = AUTH_NOTE_INTEREST_FREE);
	/* Not subsidised at 3 terms. */
	C.req.terms = 3;
	AUTH_HOLD(10000, 990000, .risk = 120);
	/* Subsidy bits mean nothing for pay later. */
	C.req.product = LIM_PRODUCT_PAYLATER;
	C.req.terms = 0;
	C.m.subsidy = 0xff;
	AUTH_HOLD(10000, 990000, .risk = 120);
}

static void
test_approve_cash(void **state)
{
	(void)state;
	C.req.product = LIM_PRODUCT_CASH;
	C.req.amount = 100000;
	C.u.cool_until_s = T0 - 1; /* an old cooling-off, over */
	/* Paid out at once: debt, no hold, cooling-off starts. */
	DECIDE(.status = AUTH_STATUS_APPROVED, .amount = 100000,
	       .available = 900000, .own = 100, .risk = 120,
	       .kind = LIM_EFF_AUTH, .d_out = 100000, .d_bucket = 100000,
	       .d_month = 100000, .count_spend = 1,
	       .cool_until = T0 + 86400);
}

static void
test_unknown_user(void **state)
{
	(void)state;
	C.has_user = false;
	/* Nothing recorded, available 0. */
	DECIDE(.status = AUTH_STATUS_DECLINED,
	       .reason = AUTH_REASON_UNKNOWN_USER, .kind = LIM_EFF_NONE);
	set_req(LIM_OP_CAPTURE, REF, 500, LIM_PRODUCT_PAYLATER);
	DECIDE(.status = AUTH_STATUS_DECLINED,
	       .reason = AUTH_REASON_UNKNOWN_USER, .kind = LIM_EFF_NONE);
	set_req(LIM_OP_REPAY, 0, 500, LIM_PRODUCT_PAYLATER);
	DECIDE(.status = AUTH_STATUS_DECLINED,
	       .reason = AUTH_REASON_UNKNOWN_USER, .kind = LIM_EFF_NONE);
}

static void
test_user_frozen(void **state)
{
	(void)state;
	C.u.flags = LIM_USER_FROZEN;
	DECLINED(AUTH_REASON_USER_FROZEN, 1000000, .risk = 120);
}

static void
test_term_invalid(void **state)
{
	(void)state;
	C.req.product = LIM_PRODUCT_INSTALLMENT;
	C.req.terms = 5;
	DECLINED(AUTH_REASON_TERM_INVALID, 1000000, .risk = 120);
	C.req.terms = 0;
	DECLINED(AUTH_REASON_TERM_INVALID, 1000000, .risk = 120);
	C.req.terms = 24;
	DECLINED(AUTH_REASON_TERM_INVALID, 1000000, .risk = 120);
	C.req.product = LIM_PRODUCT_PAYLATER;
	C.req.terms = 3;
	DECLINED(AUTH_REASON_TERM_INVALID, 1000000, .risk = 120);
	C.req.product = LIM_PRODUCT_CASH;
	C.req.terms = 3;
	DECLINED(AUTH_REASON_TERM_INVALID, 1000000, .risk = 120);
	C.req.product = LIM_PRODUCT_INSTALLMENT;
	C.req.terms = 12;
	AUTH_HOLD(10000, 990000, .risk = 120);
}

static void
test_risk_tier(void **state)
{
	(void)state;
	C.u.tier = 0; /* pay later and installments up to 6 terms */
	C.req.product = LIM_PRODUCT_CASH;
	DECLINED(AUTH_REASON_RISK_TIER, 1000000, .risk = 120);
	C.req.product = LIM_PRODUCT_INSTALLMENT;
	C.req.terms = 12;
	DECLINED(AUTH_REASON_RISK_TIER, 1000000, .risk = 120);
	C.req.terms = 6;
	AUTH_HOLD(10000, 990000, .risk = 120);
	/* A tier that does not offer pay later at all. */
	C.pol.tier[0].products = PBIT(LIM_PRODUCT_INSTALLMENT);
	C.req.product = LIM_PRODUCT_PAYLATER;
	C.req.terms = 0;
	DECLINED(AUTH_REASON_RISK_TIER, 1000000, .risk = 120);
}

static void
test_merchant_blocked(void **state)
{
	(void)state;
	C.m.flags = LIM_MERCHANT_BLOCKED;
	DECLINED(AUTH_REASON_MERCHANT_BLOCKED, 1000000, .risk = 120);
	/* Unknown merchant: blocked unless the policy allows it. */
	C.has_m = false;
	DECLINED(AUTH_REASON_MERCHANT_BLOCKED, 1000000, .risk = 40);
	C.pol.unknown_merchant_ok = 1;
	AUTH_HOLD(10000, 990000, .risk = 40);
	/* A known blocked merchant stays blocked when unknown ones are ok. */
	C.has_m = true;
	DECLINED(AUTH_REASON_MERCHANT_BLOCKED, 1000000, .risk = 120);
}

static void
test_risk_cashout(void **state)
{
	(void)state;
	C.m.risk_score = 900;
	DECLINED(AUTH_REASON_RISK_CASHOUT, 1000000, .risk = 900);
	C.m.risk_score = 899;
	AUTH_HOLD(10000, 990000, .risk = 899);
	/* The user's score is kept in steps of 4. */
	C.m.risk_score = 0;
	C.u.risk_q = 225;
	DECLINED(AUTH_REASON_RISK_CASHOUT, 1000000, .risk = 900);
	C.u.risk_q = 224;
	AUTH_HOLD(10000, 990000, .risk = 896);
	/* Off when risk_decline is 0; the score is capped at 1000. */
	C.pol.risk_decline = 0;
	C.u.risk_q = 255;
	AUTH_HOLD(10000, 990000, .risk = 1000);
	C.u.risk_q = 0;
	C.m.risk_score = 1000;
	AUTH_HOLD(10000, 990000, .risk = 1000);
}

static void
test_unknown_group(void **state)
{
	(void)state;
	C.req.group_id = GID;
	/* The group is unknown (the lookup found nothing). */
	DECLINED(AUTH_REASON_UNKNOWN_GROUP, 1000000, .risk = 120);
	/* Known, but the user is not a member. */
	C.has_g = true;
	C.g.members[1] = 1003;
	DECLINED(AUTH_REASON_UNKNOWN_GROUP, 1000000, .risk = 120);
	/* A member beyond n_members does not count. */
	C.g.members[2] = UID;
	DECLINED(AUTH_REASON_UNKNOWN_GROUP, 1000000, .risk = 120);
	C.g.n_members = 3;
	AUTH_HOLD(10000, 990000, .risk = 120, .group_id = GID);
}

/* ------------------------------------------------------------------------ */
/* Velocity                                                                   */

static void
test_velocity_count_minute(void **state)
{
	(void)state;
	/* Tier 2: 10 approvals a minute. */
	C.u.spend_min = C.now.minute;
	C.u.vel_min_n = 10;
	C.u.vel_day_n = 10;
	DECLINED(AUTH_REASON_RISK_VELOCITY, 1000000, .risk = 120);
	C.u.vel_min_n = 9;
	AUTH_HOLD(10000, 990000, .risk = 120);
	/* The same counters stamped a minute ago: a new minute window. */
	C.u.vel_min_n = 10;
	C.u.spend_min = C.now.minute - 1;
	AUTH_HOLD(10000, 990000, .risk = 120);
	/* Saturated counters in an old minute are ignored as well. */
	C.u.vel_min_n = 255;
	AUTH_HOLD(10000, 990000, .risk = 120);
	/* A tier without a count limit. */
	C.u.spend_min = C.now.minute;
	C.pol.tier[2].vel_min_n = 0;
	AUTH_HOLD(10000, 990000, .risk = 120);
}

static void
test_velocity_count_day(void **state)
{
	(void)state;
	uint32_t day0 = fx_local8(2026, 10, 30, 0, 0, 0);

	assert_int_equal(C.now.day_start_s, day0);
	/* Tier 2: 100 approvals a day. */
	C.u.spend_min = C.now.minute - 5;
	C.u.vel_min_n = 10;
	C.u.vel_day_n = 100;
	DECLINED(AUTH_REASON_RISK_VELOCITY, 1000000, .risk = 120);
	C.u.vel_day_n = 99;
	AUTH_HOLD(10000, 990000, .risk = 120);
	/* Stamped at 00:00 +08 today: counts. */
	C.u.vel_day_n = 100;
	C.u.spend_min = day0 / 60;
	DECLINED(AUTH_REASON_RISK_VELOCITY, 1000000, .risk = 120);
	/* Stamped at 23:59 +08 yesterday (15:59 UTC today): a new day. */
	C.u.spend_min = day0 / 60 - 1;
	AUTH_HOLD(10000, 990000, .risk = 120);
}

static void
test_velocity_day_boundary_utc8(void **state)
{
	(void)state;
	uint32_t midnight = fx_local8(2026, 10, 31, 0, 0, 0); /* 16:00 UTC */

	C.u.spend_min = (midnight - 60) / 60; /* 23:59 +08 */
	C.u.vel_day_n = 100;
	C.u.vel_day_fen = 5000000;
	/* 23:59:59 +08: same minute and day, the day is full. */
	set_now(midnight - 1);
	DECLINED(AUTH_REASON_RISK_VELOCITY, 1000000, .risk = 120);
	/* 00:00:00 +08: a new day, and a new minute. */
	set_now(midnight);
	AUTH_HOLD(10000, 990000, .risk = 120);
}

static void
test_velocity_amount(void **state)
{
	(void)state;
	C.u.limit_fen = 10000000;
	/* Tier 2: 20,000 yuan a minute, 50,000 yuan a day. */
	C.u.spend_min = C.now.minute;
	C.u.vel_min_n = 1;
	C.u.vel_day_n = 1;
	C.u.vel_min_fen = 1900000;
	C.u.vel_day_fen = 1900000;
	C.req.amount = 100001;
	DECLINED(AUTH_REASON_RISK_VELOCITY, 10000000, .risk = 120);
	C.req.amount = 100000;
	AUTH_HOLD(100000, 9900000, .risk = 120);
	/* Per day, counted in an earlier minute of today. */
	C.u.spend_min = C.now.minute - 1;
	C.u.vel_min_fen = 4950000;
	C.u.vel_day_fen = 4950000;
	C.req.amount = 50001;
	DECLINED(AUTH_REASON_RISK_VELOCITY, 10000000, .risk = 120);
	C.req.amount = 50000;
	AUTH_HOLD(50000, 9950000, .risk = 120);
	/* The day's amount from yesterday does not count. */
	C.u.spend_min = C.now.day_start_s / 60 - 1;
	C.req.amount = 1000000;
	AUTH_HOLD(1000000, 9000000, .risk = 120,
		  .notes = AUTH_NOTE_LARGE_SPEND);
	/* An amount larger than any window, from the wire. */
	C.req.amount = INT64_MAX;
	DECLINED(AUTH_REASON_RISK_VELOCITY, 10000000, .risk = 120);
}

/* ------------------------------------------------------------------------ */
/* Cooling-off, limit, cash limit, temporary quota                            */

static void
test_cooling_off(void **state)
{
	(void)state;
	C.req.product = LIM_PRODUCT_CASH;
	/* After a cash loan: cool_until = last cash loan + 1 day. */
	C.u.cool_until_s = T0 + 1;
	DECLINED(AUTH_REASON_COOLING_OFF, 1000000, .risk = 120);
	C.u.cool_until_s = T0;
	DECIDE(.status = AUTH_STATUS_APPROVED, .amount = 10000,
	       .available = 990000, .own = 100, .risk = 120,
	       .kind = LIM_EFF_AUTH, .d_out = 10000, .d_bucket = 10000,
	       .d_month = 10000, .count_spend = 1, .cool_until = T0 + 86400);
	/* After a limit raise 3 days minus 1 s ago (the control plane sets
	 * cool_until = raise + cool_raise_s). */
	C.u.cool_until_s = (T0 - 3 * 86400 + 1) + C.pol.cool_raise_s;
	DECLINED(AUTH_REASON_COOLING_OFF, 1000000, .risk = 120);
	/* Only cash loans cool off. */
	C.req.product = LIM_PRODUCT_PAYLATER;
	AUTH_HOLD(10000, 990000, .risk = 120);
	C.req.product = LIM_PRODUCT_INSTALLMENT;
	C.req.terms = 3;
	AUTH_HOLD(10000, 990000, .risk = 120);
}

static void
test_insufficient_limit(void **state)
{
	(void)state;
	C.u.outstanding_fen = 600000;
	C.u.holds_fen = 300000;
	C.req.amount = 100001;
	DECLINED(AUTH_REASON_INSUFFICIENT_LIMIT, 100000, .risk = 120);
	/* All of it: available 0, under 10% of the limit. */
	C.req.amount = 100000;
	AUTH_HOLD(100000, 0, .risk = 120, .notes = AUTH_NOTE_LOW_AVAILABLE);
	/* A limit lowered below the debt: available is negative. */
	C.u.limit_fen = 500000;
	C.req.amount = 1;
	DECLINED(AUTH_REASON_INSUFFICIENT_LIMIT, -400000, .risk = 120);
	/* The largest amount the wire can carry. */
	C.u.limit_fen = 1000000;
	C.req.amount = INT64_MAX;
	C.pol.tier[2].vel_min_fen = 0;
	C.pol.tier[2].vel_day_fen = 0;
	DECLINED(AUTH_REASON_INSUFFICIENT_LIMIT, 100000, .risk = 120);
}

static void
test_temp_quota(void **state)
{
	(void)state;
	C.u.flags = LIM_USER_EXT;
	C.has_x = true;
	C.x.temp_quota_fen = 50000;
	C.x.temp_until_s = T0 + 3600;
	C.u.outstanding_fen = 950000;
	/* Available 1,000,000 + 50,000 - 950,000 = 100,000; without the
	 * temporary quota 50,000. */
	C.req.amount = 60000;
	AUTH_HOLD(60000, 40000, .risk = 120,
		  .notes = AUTH_NOTE_TEMP_QUOTA_USED | AUTH_NOTE_LOW_AVAILABLE);
	C.req.amount = 50000;
	AUTH_HOLD(50000, 50000, .risk = 120, .notes = AUTH_NOTE_LOW_AVAILABLE);
	C.req.amount = 100001;
	DECLINED(AUTH_REASON_INSUFFICIENT_LIMIT, 100000, .risk = 120);
	/* Expired (at temp_until the quota is gone): ignored. */
	C.x.temp_until_s = T0;
	C.req.amount = 60000;
	DECLINED(AUTH_REASON_INSUFFICIENT_LIMIT, 50000, .risk = 120);
	C.req.amount = 50000;
	AUTH_HOLD(50000, 0, .risk = 120, .notes = AUTH_NOTE_LOW_AVAILABLE);
	/* A live quota on an empty line: no note when it is not needed. */
	C.x.temp_until_s = T0 + 1;
	C.u.outstanding_fen = 0;
	C.req.amount = 10000;
	AUTH_HOLD(10000, 1040000, .risk = 120);
}

static void
test_cash_limit(void **state)
{
	(void)state;
	C.req.product = LIM_PRODUCT_CASH;
	/* Tier 2: cash limit 30% of 1,000,000 = 300,000; 100,000 used. */
	C.u.outstanding_fen = 100000;
	C.u.cash_fen = 100000;
	C.req.amount = 200001;
	DECLINED(AUTH_REASON_CASH_LIMIT, 900000, .risk = 120);
	C.req.amount = 200000;
	DECIDE(.status = AUTH_STATUS_APPROVED, .amount = 200000,
	       .available = 700000, .own = 100, .risk = 120,
	       .kind = LIM_EFF_AUTH, .d_out = 200000, .d_bucket = 200000,
	       .d_month = 200000, .count_spend = 1, .cool_until = T0 + 86400);
}

static void
test_cash_limit_installment_linkage(void **state)
{
	(void)state;
	C.req.product = LIM_PRODUCT_CASH;
	/* 200,000 of installment debt lowers the cash limit by 50% of it:
	 * 300,000 - 100,000 = 200,000. */
	C.u.outstanding_fen = 200000;
	C.u.inst_fen = 200000;
	C.req.amount = 200001;
	DECLINED(AUTH_REASON_CASH_LIMIT, 800000, .risk = 120);
	C.req.amount = 200000;
	DECIDE(.status = AUTH_STATUS_APPROVED, .amount = 200000,
	       .available = 600000, .own = 100, .risk = 120,
	       .kind = LIM_EFF_AUTH, .d_out = 200000, .d_bucket = 200000,
	       .d_month = 200000, .count_spend = 1, .cool_until = T0 + 86400);
	/* Pay-later debt does not lower it. */
	C.u.inst_fen = 0;
	C.req.amount = 300000;
	DECIDE(.status = AUTH_STATUS_APPROVED, .amount = 300000,
	       .available = 500000, .own = 100, .risk = 120,
	       .kind = LIM_EFF_AUTH, .d_out = 300000, .d_bucket = 300000,
	       .d_month = 300000, .count_spend = 1, .cool_until = T0 + 86400);
	/* The policy's ratio. */
	C.u.inst_fen = 200000;
	C.pol.inst_cash_pct = 100;
	C.req.amount = 100001;
	DECLINED(AUTH_REASON_CASH_LIMIT, 800000, .risk = 120);
}

static void
test_cash_limit_override(void **state)
{
	(void)state;
	C.req.product = LIM_PRODUCT_CASH;
	C.u.flags = LIM_USER_EXT;
	C.has_x = true;
	C.x.cash_limit_fen = 50000;
	C.req.amount = 50001;
	DECLINED(AUTH_REASON_CASH_LIMIT, 1000000, .risk = 120);
	C.req.amount = 50000;
	DECIDE(.status = AUTH_STATUS_APPROVED, .amount = 50000,
	       .available = 950000, .own = 100, .risk = 120,
	       .kind = LIM_EFF_AUTH, .d_out = 50000, .d_bucket = 50000,
	       .d_month = 50000, .count_spend = 1, .cool_until = T0 + 86400);
	/* The installment linkage applies to the override too. */
	C.u.outstanding_fen = 60000;
	C.u.inst_fen = 60000;
	C.req.amount = 20001;
	DECLINED(AUTH_REASON_CASH_LIMIT, 940000, .risk = 120);
	/* 0 means no cash at all. */
	C.u.outstanding_fen = 0;
	C.u.inst_fen = 0;
	C.x.cash_limit_fen = 0;
	C.req.amount = 1;
	DECLINED(AUTH_REASON_CASH_LIMIT, 1000000, .risk = 120);
	/* An override above the tier's share. */
	C.x.cash_limit_fen = 800000;
	C.req.amount = 800000;
	DECIDE(.status = AUTH_STATUS_APPROVED, .amount = 800000,
	       .available = 200000, .own = 100, .risk = 120,
	       .notes = AUTH_NOTE_LARGE_SPEND, .kind = LIM_EFF_AUTH,
	       .d_out = 800000, .d_bucket = 800000, .d_month = 800000,
	       .count_spend = 1, .cool_until = T0 + 86400);
	/* Negative: the tier's default (30%). */
	C.x.cash_limit_fen = -1;
	C.req.amount = 300001;
	DECLINED(AUTH_REASON_CASH_LIMIT, 1000000, .risk = 120);
}

/* ------------------------------------------------------------------------ */
/* Self cap, group, global cap                                               */

static void
test_over_self_cap(void **state)
{
	(void)state;
	C.u.self_cap_fen = 200000;
	C.u.month_spend_fen = 150000;
	C.u.spend_min = C.now.minute - 10;
	C.req.amount = 50001;
	DECLINED(AUTH_REASON_OVER_SELF_CAP, 1000000, .risk = 120,
		 .cap_left = 50000);
	C.req.amount = 50000;
	AUTH_HOLD(50000, 950000, .risk = 120, .cap_left = 0);
	C.req.amount = 20000;
	AUTH_HOLD(20000, 980000, .risk = 120, .cap_left = 30000);
	/* Spend stamped last month does not count this month. */
	C.u.spend_min = fx_local8(2026, 9, 30, 23, 59, 0) / 60;
	C.req.amount = 200001;
	DECLINED(AUTH_REASON_OVER_SELF_CAP, 1000000, .risk = 120,
		 .cap_left = 200000);
	C.req.amount = 200000;
	AUTH_HOLD(200000, 800000, .risk = 120, .cap_left = 0);
}

static void
test_over_self_cap_soft(void **state)
{
	(void)state;
	C.u.flags = LIM_USER_SOFT_CAP;
	C.u.self_cap_fen = 200000;
	C.u.month_spend_fen = 150000;
	C.u.spend_min = C.now.minute - 10;
	/* Approved, flagged; what is left is floored at 0. */
	C.req.amount = 80000;
	AUTH_HOLD(80000, 920000, .risk = 120, .cap_left = 0,
		  .notes = AUTH_NOTE_OVER_SELF_CAP_SOFT);
	C.req.amount = 50000;
	AUTH_HOLD(50000, 950000, .risk = 120, .cap_left = 0);
	C.u.month_spend_fen = 250000; /* over already */
	C.req.amount = 1;
	AUTH_HOLD(1, 999999, .risk = 120, .cap_left = 0,
		  .notes = AUTH_NOTE_OVER_SELF_CAP_SOFT);
}

static void
test_group_limit(void **state)
{
	(void)state;
	C.req.group_id = GID;
	C.has_g = true;
	C.gs.month_spend_fen = 250000;
	C.gs.month_start_s = C.now.month_start_s;
	C.req.amount = 50001;
	/* Declined: nothing moves for the group either (group_id 0). */
	DECLINED(AUTH_REASON_GROUP_LIMIT, 1000000, .risk = 120);
	C.req.amount = 50000;
	AUTH_HOLD(50000, 950000, .risk = 120, .group_id = GID);
	/* Spent in an earlier month: the whole budget is there. */
	C.gs.month_start_s = fx_local8(2026, 9, 1, 0, 0, 0);
	C.req.amount = 300000;
	AUTH_HOLD(300000, 700000, .risk = 120, .group_id = GID);
	C.req.amount = 300001;
	DECLINED(AUTH_REASON_GROUP_LIMIT, 1000000, .risk = 120);
}

static void
test_global_cap(void **state)
{
	(void)state;
	set_cap(100000, 10000);
	C.req.amount = 100001;
	DECLINED(AUTH_REASON_GLOBAL_CAP, 1000000, .risk = 120);
	C.req.amount = 100000;
	AUTH_HOLD(100000, 900000, .risk = 120);
	/* Cash takes from the same ceiling. */
	C.req.product = LIM_PRODUCT_CASH;
	C.req.amount = 100001;
	DECLINED(AUTH_REASON_GLOBAL_CAP, 1000000, .risk = 120);
}

static void
test_global_cap_shards(void **state)
{
	(void)state;
	/* 200,000 in chunks of 50,000: shard 1 takes 150,000. */
	set_cap(200000, 50000);
	assert_true(lim_budget_take(C.cap, 1, 150000));
	/* This core sees its shard (0) plus the global room (50,000). */
	C.shard = 0;
	C.req.amount = 50001;
	DECLINED(AUTH_REASON_GLOBAL_CAP, 1000000, .risk = 120);
	C.req.amount = 50000;
	AUTH_HOLD(50000, 950000, .risk = 120);
	/* Shard 1 gives 100,000 back and keeps it (two chunks): shard 0
	 * still sees 50,000 (the documented slack), shard 1 sees 150,000. */
	lim_budget_give(C.cap, 1, 100000);
	C.req.amount = 50001;
	DECLINED(AUTH_REASON_GLOBAL_CAP, 1000000, .risk = 120);
	C.shard = 1;
	C.req.amount = 150000;
	AUTH_HOLD(150000, 850000, .risk = 120, .notes = 0);
	C.req.amount = 150001;
	DECLINED(AUTH_REASON_GLOBAL_CAP, 1000000, .risk = 120);
}

/* ------------------------------------------------------------------------ */
/* Funders                                                                    */

static void
test_no_funder(void **state)
{
	(void)state;
	set_funder(0, 0, 0, 0, ALL_PRODUCTS, 9999);
	DECLINED(AUTH_REASON_NO_FUNDER, 1000000, .risk = 120);
	C.req.amount = 9999;
	AUTH_HOLD(9999, 990001, .risk = 120);
	/* The company's book does not fund cash loans. */
	set_funder(0, 0, 0, 0,
		   PBIT(LIM_PRODUCT_PAYLATER) | PBIT(LIM_PRODUCT_INSTALLMENT),
		   BIG);
	C.req.product = LIM_PRODUCT_CASH;
	DECLINED(AUTH_REASON_NO_FUNDER, 1000000, .risk = 120);
	/* No funder table entries at all. */
	C.fs.n = 0;
	C.req.product = LIM_PRODUCT_PAYLATER;
	memset(&C.fs.f[0], 0, sizeof(C.fs.f[0]));
	DECLINED(AUTH_REASON_NO_FUNDER, 1000000, .risk = 120);
}

#define PL PBIT(LIM_PRODUCT_PAYLATER)
#define INST PBIT(LIM_PRODUCT_INSTALLMENT)
#define CASH PBIT(LIM_PRODUCT_CASH)

static void
funders_table(void)
{
	set_funder(0, 0, 0, 0, ALL_PRODUCTS, BIG);
	set_funder(1, 11, 0, 50, PL | INST, BIG);      /* national, 50% */
	set_funder(2, 12, 31, 60, ALL_PRODUCTS, BIG);  /* region 31 only */
	set_funder(3, 13, 21, 75, ALL_PRODUCTS, BIG);  /* leaves 25%: never */
	set_funder(4, 14, 21, 70, ALL_PRODUCTS, 7000); /* leaves exactly 30% */
	set_funder(5, 15, 0, 40, CASH, BIG);           /* national, cash */
}

#define FUNDED(amt, avail_after, fid, own_pct)                                 \
	DECIDE(.status = AUTH_STATUS_APPROVED, .amount = (amt),                \
	       .available = (avail_after), .hold_expires = T0 + TTL,           \
	       .funder = (fid), .own = (own_pct), .risk = 120,                 \
	       .kind = LIM_EFF_AUTH, .d_holds = (amt), .d_month = (amt),       \
	       .count_spend = 1)

#define CASH_FUNDED(amt, avail_after, fid, own_pct)                            \
	DECIDE(.status = AUTH_STATUS_APPROVED, .amount = (amt),                \
	       .available = (avail_after), .funder = (fid), .own = (own_pct),  \
	       .risk = 120, .kind = LIM_EFF_AUTH, .d_out = (amt),              \
	       .d_bucket = (amt), .d_month = (amt), .count_spend = 1,          \
	       .cool_until = T0 + 86400)

static void
test_funder_priority_region_share(void **state)
{
	(void)state;
	funders_table();
	/* Pay later, user in region 21: the first bank, national. */
	FUNDED(10000, 990000, 11, 50);
	/* Cash: 11 does not fund it, 12 is region 31, 13 would leave the
	 * company 25%; 14 (region 21, leaves 30%) takes 7,000 of 10,000. */
	C.req.product = LIM_PRODUCT_CASH;
	CASH_FUNDED(10000, 990000, 14, 30);
	/* 14's quota cannot hold 7,000: next is 15 (national, 40%). */
	set_funder(4, 14, 21, 70, ALL_PRODUCTS, 6999);
	CASH_FUNDED(10000, 990000, 15, 60);
	/* A user of region 31 gets the regional bank 12 first. */
	C.u.region = 31;
	CASH_FUNDED(10000, 990000, 12, 40);
	/* The request's region field is not the user's region. */
	C.u.region = 21;
	C.req.region = 31;
	CASH_FUNDED(10000, 990000, 15, 60);
}

static void
test_funder_quota_exhaustion(void **state)
{
	(void)state;
	funders_table();
	/* 11's part of 10,000 is 5,000: a quota of 4,999 skips it; 12 is
	 * regional elsewhere, 13 leaves too little, 14 holds 7,000. */
	set_funder(1, 11, 0, 50, PL | INST, 4999);
	FUNDED(10000, 990000, 14, 30);
	/* 14 exhausted too (15 funds cash only): the company alone. */
	assert_true(lim_budget_take(C.fs.budget[4], 0, 1));
	FUNDED(10000, 990000, 0, 100);
	/* The company's own book cannot hold it alone: NO_FUNDER. */
	set_funder(0, 0, 0, 0, ALL_PRODUCTS, 9999);
	DECLINED(AUTH_REASON_NO_FUNDER, 1000000, .risk = 120);
}

static void
test_funder_own_book_holds_the_rest(void **state)
{
	(void)state;
	funders_table();
	/* The company keeps 5,000 of a loan with 11: its book has 4,999. */
	set_funder(0, 0, 0, 0, ALL_PRODUCTS, 4999);
	/* 14 leaves the company 3,000, which fits. */
	FUNDED(10000, 990000, 14, 30);
	/* Bank part rounds down: 10,001 at 30% own is 7,000 bank + 3,001. */
	set_funder(4, 14, 21, 70, ALL_PRODUCTS, 7000);
	set_funder(0, 0, 0, 0, ALL_PRODUCTS, 3001);
	C.req.amount = 10001;
	FUNDED(10001, 989999, 14, 30);
	set_funder(0, 0, 0, 0, ALL_PRODUCTS, 3000);
	DECLINED(AUTH_REASON_NO_FUNDER, 1000000, .risk = 120);
	assert_int_equal(lim_bank_part(10001, 30), 7000);
	assert_int_equal(lim_bank_part(10000, 50), 5000);
	assert_int_equal(lim_bank_part(10000, 100), 0);
}

static void
test_funder_own_share_minimum(void **state)
{
	(void)state;
	set_funder(1, 11, 0, 71, ALL_PRODUCTS, BIG); /* leaves 29% */
	FUNDED(10000, 990000, 0, 100);
	C.pol.own_share_min_pct = 29;
	FUNDED(10000, 990000, 11, 29);
	/* A bank that funds nothing of this product is skipped. */
	set_funder(1, 11, 0, 50, CASH, BIG);
	FUNDED(10000, 990000, 0, 100);
}

/* ------------------------------------------------------------------------ */
/* Notes                                                                      */

static void
test_note_large_spend(void **state)
{
	(void)state;
	C.u.limit_fen = 10000000;
	/* Tier 2 threshold: 5,000 yuan. */
	C.req.amount = 500000;
	AUTH_HOLD(500000, 9500000, .risk = 120, .notes = AUTH_NOTE_LARGE_SPEND);
	C.req.amount = 499999;
	AUTH_HOLD(499999, 9500001, .risk = 120);
	/* The user's own threshold. */
	C.u.flags = LIM_USER_EXT;
	C.has_x = true;
	C.x.alert_fen = 1000;
	C.req.amount = 1000;
	AUTH_HOLD(1000, 9999000, .risk = 120, .notes = AUTH_NOTE_LARGE_SPEND);
	C.req.amount = 999;
	AUTH_HOLD(999, 9999001, .risk = 120);
	/* A tier threshold of 0 is off. */
	C.x.alert_fen = -1;
	C.pol.tier[2].large_spend_fen = 0;
	C.req.amount = 1500000;
	AUTH_HOLD(1500000, 8500000, .risk = 120);
}

static void
test_note_low_available(void **state)
{
	(void)state;
	/* 10% of 1,000,000 = 100,000. */
	C.u.holds_fen = 890000;
	C.req.amount = 10001;
	AUTH_HOLD(10001, 99999, .risk = 120, .notes = AUTH_NOTE_LOW_AVAILABLE);
	C.req.amount = 10000;
	AUTH_HOLD(10000, 100000, .risk = 120);
	C.pol.low_avail_pct = 0;
	C.req.amount = 110000;
	AUTH_HOLD(110000, 0, .risk = 120);
}

static void
test_notes_combined(void **state)
{
	(void)state;
	C.u.flags = LIM_USER_EXT | LIM_USER_SOFT_CAP;
	C.has_x = true;
	C.x.temp_quota_fen = 100000;
	C.x.temp_until_s = T0 + 60;
	C.x.alert_fen = 50000;
	C.u.self_cap_fen = 10000;
	C.u.holds_fen = 950000;
	C.req.product = LIM_PRODUCT_INSTALLMENT;
	C.req.terms = 3;
	C.m.subsidy = LIM_SUBSIDY_3;
	C.req.amount = 60000;
	AUTH_HOLD(60000, 90000, .risk = 120, .cap_left = 0,
		  .notes = AUTH_NOTE_LARGE_SPEND | AUTH_NOTE_LOW_AVAILABLE |
			   AUTH_NOTE_OVER_SELF_CAP_SOFT |
			   AUTH_NOTE_TEMP_QUOTA_USED | AUTH_NOTE_INTEREST_FREE);
}

/* ------------------------------------------------------------------------ */
/* Order                                                                      */

/*
 * One record failing every authorize rule at once; each step repairs the
 * rule that answered, and the next rule in docs/rules.md order answers.
 */
static void
test_order(void **state)
{
	(void)state;
	static const uint8_t order[] = {
		AUTH_REASON_USER_FROZEN,	AUTH_REASON_TERM_INVALID,
		AUTH_REASON_RISK_TIER,		AUTH_REASON_MERCHANT_BLOCKED,
		AUTH_REASON_RISK_CASHOUT,	AUTH_REASON_UNKNOWN_GROUP,
		AUTH_REASON_RISK_VELOCITY,	AUTH_REASON_COOLING_OFF,
		AUTH_REASON_INSUFFICIENT_LIMIT, AUTH_REASON_CASH_LIMIT,
		AUTH_REASON_OVER_SELF_CAP,	AUTH_REASON_GROUP_LIMIT,
		AUTH_REASON_GLOBAL_CAP,		AUTH_REASON_NO_FUNDER,
		AUTH_REASON_APPROVED,
	};

	C.u.flags = LIM_USER_FROZEN | LIM_USER_EXT;
	C.u.tier = 0;
	C.u.limit_fen = 10000;
	C.u.self_cap_fen = 20000;
	C.u.cool_until_s = T0 + 100;
	C.u.spend_min = C.now.minute;
	C.u.vel_min_n = 10;
	C.has_x = true;
	C.x.cash_limit_fen = 1000;
	C.req.product = LIM_PRODUCT_CASH;
	C.req.terms = 3;
	C.req.group_id = GID;
	C.req.amount = 50000;
	C.m.flags = LIM_MERCHANT_BLOCKED;
	C.m.risk_score = 950;
	C.g.budget_fen = 10000;
	set_cap(1000, 1000);
	set_funder(0, 0, 0, 0, ALL_PRODUCTS, 1000);

	for (unsigned i = 0; i < sizeof(order); i++) {
		struct auth_out o = decide();

		if (o.resp.reason != order[i])
			fail_msg("step %u: reason %s, want %s", i,
				 auth_reason_name(o.resp.reason),
				 auth_reason_name(order[i]));
		assert_int_equal(o.resp.status, order[i] == AUTH_REASON_APPROVED
							? AUTH_STATUS_APPROVED
							: AUTH_STATUS_DECLINED);
		assert_int_equal(o.eff.kind, order[i] == AUTH_REASON_APPROVED
						     ? LIM_EFF_AUTH
						     : LIM_EFF_DECIDE);
		switch (order[i]) {
		case AUTH_REASON_USER_FROZEN:
			C.u.flags &= (uint8_t)~LIM_USER_FROZEN;
			break;
		case AUTH_REASON_TERM_INVALID:
			C.req.terms = 0;
			break;
		case AUTH_REASON_RISK_TIER:
			C.u.tier = 2;
			break;
		case AUTH_REASON_MERCHANT_BLOCKED:
			C.m.flags = 0;
			break;
		case AUTH_REASON_RISK_CASHOUT:
			C.m.risk_score = 100;
			break;
		case AUTH_REASON_UNKNOWN_GROUP:
			C.has_g = true;
			break;
		case AUTH_REASON_RISK_VELOCITY:
			C.u.vel_min_n = 0;
			break;
		case AUTH_REASON_COOLING_OFF:
			C.u.cool_until_s = 0;
			break;
		case AUTH_REASON_INSUFFICIENT_LIMIT:
			C.u.limit_fen = 1000000;
			break;
		case AUTH_REASON_CASH_LIMIT:
			C.x.cash_limit_fen = -1;
			break;
		case AUTH_REASON_OVER_SELF_CAP:
			C.u.self_cap_fen = 0;
			break;
		case AUTH_REASON_GROUP_LIMIT:
			C.g.budget_fen = 1000000;
			break;
		case AUTH_REASON_GLOBAL_CAP:
			set_cap(BIG, 1000000);
			break;
		case AUTH_REASON_NO_FUNDER:
			set_funder(0, 0, 0, 0, ALL_PRODUCTS, BIG);
			break;
		default:
			break;
		}
	}
	/* The approval of the repaired record, exactly. */
	DECIDE(.status = AUTH_STATUS_APPROVED, .amount = 50000,
	       .available = 950000, .own = 100, .risk = 100,
	       .kind = LIM_EFF_AUTH, .d_out = 50000, .d_bucket = 50000,
	       .d_month = 50000, .count_spend = 1, .cool_until = T0 + 86400,
	       .group_id = GID);
}

/* Insufficient limit is checked before the cash sub-limit, and a soft cap
 * does not stop the later rules. */
static void
test_order_pairs(void **state)
{
	(void)state;
	C.req.product = LIM_PRODUCT_CASH;
	C.u.outstanding_fen = 950000;
	C.req.amount = 60000; /* over both the limit and the cash limit */
	C.u.cash_fen = 280000;
	C.u.outstanding_fen = 950000;
	DECLINED(AUTH_REASON_INSUFFICIENT_LIMIT, 50000, .risk = 120);
	C.u.outstanding_fen = 300000;
	DECLINED(AUTH_REASON_CASH_LIMIT, 700000, .risk = 120);
	/* Soft cap exceeded and the group is over: GROUP_LIMIT. */
	C.req.product = LIM_PRODUCT_PAYLATER;
	C.u.flags = LIM_USER_SOFT_CAP;
	C.u.self_cap_fen = 1;
	C.req.group_id = GID;
	C.has_g = true;
	C.g.budget_fen = 59999;
	DECLINED(AUTH_REASON_GROUP_LIMIT, 700000, .risk = 120, .cap_left = 1);
}

/* ------------------------------------------------------------------------ */
/* Month boundary in UTC+8                                                    */

static void
test_month_boundary_utc8(void **state)
{
	(void)state;
	uint32_t last = fx_local8(2026, 10, 31, 23, 59, 0); /* 15:59 UTC */
	uint32_t first = fx_local8(2026, 11, 1, 0, 0, 0);   /* 16:00 UTC */

	assert_int_equal(last, 1793462340u);
	assert_int_equal(first, 1793462400u);
	C.u.self_cap_fen = 200000;
	C.u.month_spend_fen = 150000;
	C.u.spend_min = last / 60;
	C.req.group_id = GID;
	C.has_g = true;
	C.gs.month_spend_fen = 280000;
	C.gs.month_start_s = fx_local8(2026, 10, 1, 0, 0, 0);
	C.req.amount = 60000;
	/* 23:59:30 +08 on 31 October: October's spend counts. */
	set_now(last + 30);
	DECLINED(AUTH_REASON_OVER_SELF_CAP, 1000000, .risk = 120,
		 .cap_left = 50000);
	C.u.self_cap_fen = 0;
	DECLINED(AUTH_REASON_GROUP_LIMIT, 1000000, .risk = 120);
	/* 00:00:00 +08 on 1 November: a new month for the user and group. */
	C.u.self_cap_fen = 200000;
	set_now(first);
	DECIDE(.status = AUTH_STATUS_APPROVED, .amount = 60000,
	       .available = 940000, .hold_expires = first + TTL, .own = 100,
	       .risk = 120, .cap_left = 140000, .kind = LIM_EFF_AUTH,
	       .d_holds = 60000, .d_month = 60000, .count_spend = 1,
	       .group_id = GID);
	/* One second earlier it is still October. */
	set_now(first - 1);
	DECLINED(AUTH_REASON_OVER_SELF_CAP, 1000000, .risk = 120,
		 .cap_left = 50000);
}

static void
test_month_boundary_release(void **state)
{
	(void)state;
	uint32_t created = fx_local8(2026, 10, 31, 23, 59, 0);
	uint32_t first = fx_local8(2026, 11, 1, 0, 0, 0);

	C.u.self_cap_fen = 100000;
	held_ref(REF, 10000, LIM_PRODUCT_PAYLATER, 0, created);
	set_req(LIM_OP_VOID, REF, 0, LIM_PRODUCT_PAYLATER);
	/* Voided in October: the month spend comes back. */
	set_now(first - 1);
	DECIDE(.status = AUTH_STATUS_APPROVED, .amount = 10000,
	       .available = 1000000, .funder = 11, .own = 50, .risk = 120,
	       .cap_left = 100000, .kind = LIM_EFF_VOID, .d_holds = -10000,
	       .d_month = -10000);
	/* Voided in November: October's spend is October's. */
	set_now(first);
	DECIDE(.status = AUTH_STATUS_APPROVED, .amount = 10000,
	       .available = 1000000, .funder = 11, .own = 50, .risk = 120,
	       .cap_left = 100000, .kind = LIM_EFF_VOID, .d_holds = -10000);
}

/* ------------------------------------------------------------------------ */
/* Capture                                                                    */

static void
test_capture_full(void **state)
{
	(void)state;
	held_ref(REF, 10000, LIM_PRODUCT_PAYLATER, 0, T0 - 3600);
	set_req(LIM_OP_CAPTURE, REF, 10000, LIM_PRODUCT_PAYLATER);
	/* The hold becomes pay-later debt; available does not move. */
	DECIDE(.status = AUTH_STATUS_APPROVED, .amount = 10000,
	       .available = 990000, .funder = 11, .own = 50, .risk = 120,
	       .kind = LIM_EFF_CAPTURE, .d_out = 10000, .d_holds = -10000);
	struct auth_out o = decide();
	assert_int_equal(o.eff.product, LIM_PRODUCT_PAYLATER);
}

static void
test_capture_partial_installment(void **state)
{
	(void)state;
	C.u.self_cap_fen = 100000;
	held_ref(REF, 10000, LIM_PRODUCT_INSTALLMENT, 6, T0 - 3600);
	/* The request's product field does not matter: the ref's does. */
	set_req(LIM_OP_CAPTURE, REF, 6000, LIM_PRODUCT_PAYLATER);
	DECIDE(.status = AUTH_STATUS_APPROVED, .amount = 6000,
	       .available = 994000, .funder = 11, .own = 50, .risk = 120,
	       .cap_left = 94000, .kind = LIM_EFF_CAPTURE, .d_out = 6000,
	       .d_holds = -10000, .d_bucket = 6000, .d_month = -4000);
	struct auth_out o = decide();
	assert_int_equal(o.eff.product, LIM_PRODUCT_INSTALLMENT);
	assert_int_equal(o.eff.terms, 6);
	/* A hold placed in a group: the release names the group. */
	C.ref.group_id = GID;
	DECIDE(.status = AUTH_STATUS_APPROVED, .amount = 6000,
	       .available = 994000, .funder = 11, .own = 50, .risk = 120,
	       .cap_left = 94000, .kind = LIM_EFF_CAPTURE, .d_out = 6000,
	       .d_holds = -10000, .d_bucket = 6000, .d_month = -4000,
	       .group_id = GID);
}

static void
test_capture_last_month_hold(void **state)
{
	(void)state;
	uint32_t created = fx_local8(2026, 10, 31, 23, 30, 0);

	C.u.self_cap_fen = 100000;
	held_ref(REF, 10000, LIM_PRODUCT_PAYLATER, 0, created);
	set_now(fx_local8(2026, 11, 1, 0, 30, 0));
	set_req(LIM_OP_CAPTURE, REF, 6000, LIM_PRODUCT_PAYLATER);
	/* The released 4,000 was October's spend: November's is untouched. */
	DECIDE(.status = AUTH_STATUS_APPROVED, .amount = 6000,
	       .available = 994000, .funder = 11, .own = 50, .risk = 120,
	       .cap_left = 100000, .kind = LIM_EFF_CAPTURE, .d_out = 6000,
	       .d_holds = -10000);
}

static void
test_capture_bad_refs(void **state)
{
	(void)state;
	set_req(LIM_OP_CAPTURE, REF, 1000, LIM_PRODUCT_PAYLATER);
	/* Unknown: UNKNOWN_REF, and no tombstone for a capture. */
	DECLINED(AUTH_REASON_UNKNOWN_REF, 1000000, .risk = 120);
	held_ref(REF, 10000, LIM_PRODUCT_PAYLATER, 0, T0 - 3600);
	/* Another user's authorization. */
	C.ref.user_id = UID + 1;
	DECLINED(AUTH_REASON_UNKNOWN_REF, 990000, .risk = 120);
	C.ref.user_id = UID;
	/* A tombstone. */
	C.ref.state = LIM_OPS_TOMBSTONE;
	DECLINED(AUTH_REASON_UNKNOWN_REF, 990000, .risk = 120);
	C.ref.state = LIM_OPS_HELD;
	/* A declined authorization. */
	C.ref.status = AUTH_STATUS_DECLINED;
	C.ref.reason = AUTH_REASON_INSUFFICIENT_LIMIT;
	C.ref.state = LIM_OPS_DECIDED;
	DECLINED(AUTH_REASON_BAD_STATE, 990000, .risk = 120);
	/* Not an authorization (an approved repay). */
	C.ref.status = AUTH_STATUS_APPROVED;
	C.ref.reason = AUTH_REASON_APPROVED;
	C.ref.op = LIM_OP_REPAY;
	DECLINED(AUTH_REASON_BAD_STATE, 990000, .risk = 120);
	C.ref.op = LIM_OP_AUTHORIZE;
	C.ref.state = LIM_OPS_HELD;
	/* More than the hold. */
	C.req.amount = 10001;
	DECLINED(AUTH_REASON_BAD_STATE, 990000, .risk = 120);
	C.req.amount = 10000;
	/* Captured already (one capture per authorization). */
	C.ref.state = LIM_OPS_CAPTURED;
	DECLINED(AUTH_REASON_BAD_STATE, 990000, .risk = 120);
	/* Voided. */
	C.ref.state = LIM_OPS_CLOSED;
	DECLINED(AUTH_REASON_BAD_STATE, 990000, .risk = 120);
	/* A cash loan. */
	C.ref.state = LIM_OPS_CAPTURED;
	C.ref.product = LIM_PRODUCT_CASH;
	DECLINED(AUTH_REASON_BAD_STATE, 990000, .risk = 120);
}

static void
test_capture_after_expiry(void **state)
{
	(void)state;
	held_ref(REF, 10000, LIM_PRODUCT_PAYLATER, 0, T0 - TTL + 1);
	assert_int_equal(C.ref.hold_expires_s, T0 + 1);
	set_req(LIM_OP_CAPTURE, REF, 10000, LIM_PRODUCT_PAYLATER);
	/* One second before the hold lapses. */
	DECIDE(.status = AUTH_STATUS_APPROVED, .amount = 10000,
	       .available = 990000, .funder = 11, .own = 50, .risk = 120,
	       .kind = LIM_EFF_CAPTURE, .d_out = 10000, .d_holds = -10000);
	/* At hold_expires, the timer not run yet: BAD_STATE all the same. */
	set_now(T0 + 1);
	DECLINED(AUTH_REASON_BAD_STATE, 990000, .risk = 120);
	set_now(T0 + 86400);
	DECLINED(AUTH_REASON_BAD_STATE, 990000, .risk = 120);
	set_req(LIM_OP_VOID, REF, 0, LIM_PRODUCT_PAYLATER);
	DECLINED(AUTH_REASON_BAD_STATE, 990000, .risk = 120);
}

/* ------------------------------------------------------------------------ */
/* Void                                                                       */

static void
test_void_whole_and_partial(void **state)
{
	(void)state;
	C.u.self_cap_fen = 50000;
	held_ref(REF, 10000, LIM_PRODUCT_INSTALLMENT, 3, T0 - 3600);
	set_req(LIM_OP_VOID, REF, 0, LIM_PRODUCT_PAYLATER);
	/* 0 = the whole hold. */
	DECIDE(.status = AUTH_STATUS_APPROVED, .amount = 10000,
	       .available = 1000000, .funder = 11, .own = 50, .risk = 120,
	       .cap_left = 50000, .kind = LIM_EFF_VOID, .d_holds = -10000,
	       .d_month = -10000);
	/* The whole hold named by its amount. */
	C.req.amount = 10000;
	DECIDE(.status = AUTH_STATUS_APPROVED, .amount = 10000,
	       .available = 1000000, .funder = 11, .own = 50, .risk = 120,
	       .cap_left = 50000, .kind = LIM_EFF_VOID, .d_holds = -10000,
	       .d_month = -10000);
	/* Partial: the rest stays held until the original expiry. */
	C.req.amount = 3000;
	DECIDE(.status = AUTH_STATUS_APPROVED, .amount = 3000,
	       .available = 993000, .hold_expires = T0 - 3600 + TTL,
	       .funder = 11, .own = 50, .risk = 120, .cap_left = 43000,
	       .kind = LIM_EFF_VOID, .d_holds = -3000, .d_month = -3000);
	struct auth_out o = decide();
	assert_int_equal(o.eff.product, LIM_PRODUCT_INSTALLMENT);
	/* More than is held. */
	C.req.amount = 10001;
	DECLINED(AUTH_REASON_BAD_STATE, 990000, .risk = 120, .cap_left = 40000);
	/* After a partial void, the rest. */
	C.ref.held_fen = 7000;
	C.u.holds_fen = 7000;
	C.req.amount = 0;
	DECIDE(.status = AUTH_STATUS_APPROVED, .amount = 7000,
	       .available = 1000000, .funder = 11, .own = 50, .risk = 120,
	       .cap_left = 47000, .kind = LIM_EFF_VOID, .d_holds = -7000,
	       .d_month = -7000);
}

static void
test_void_unknown_ref_tombstone(void **state)
{
	(void)state;
	set_req(LIM_OP_VOID, REF, 0, LIM_PRODUCT_PAYLATER);
	/* UNKNOWN_REF, recorded as a tombstone under ref_id. */
	DECIDE(.status = AUTH_STATUS_DECLINED, .reason = AUTH_REASON_UNKNOWN_REF,
	       .available = 1000000, .risk = 120, .kind = LIM_EFF_TOMBSTONE);
	set_req(LIM_OP_REFUND, REF, 500, LIM_PRODUCT_PAYLATER);
	DECIDE(.status = AUTH_STATUS_DECLINED, .reason = AUTH_REASON_UNKNOWN_REF,
	       .available = 1000000, .risk = 120, .kind = LIM_EFF_TOMBSTONE);
	/* Naming another user's authorization is UNKNOWN_REF, no tombstone. */
	held_ref(REF, 10000, LIM_PRODUCT_PAYLATER, 0, T0 - 3600);
	C.ref.user_id = UID + 1;
	set_req(LIM_OP_VOID, REF, 0, LIM_PRODUCT_PAYLATER);
	DECLINED(AUTH_REASON_UNKNOWN_REF, 990000, .risk = 120);
	/* Naming a tombstone: UNKNOWN_REF, no second tombstone. */
	C.ref.user_id = UID;
	C.ref.state = LIM_OPS_TOMBSTONE;
	DECLINED(AUTH_REASON_UNKNOWN_REF, 990000, .risk = 120);
}

static void
test_void_bad_state(void **state)
{
	(void)state;
	held_ref(REF, 10000, LIM_PRODUCT_CASH, 0, T0 - 3600);
	C.ref.state = LIM_OPS_CAPTURED;
	C.ref.held_fen = 0;
	C.ref.captured_fen = 10000;
	C.ref.hold_expires_s = 0;
	set_req(LIM_OP_VOID, REF, 0, LIM_PRODUCT_CASH);
	DECLINED(AUTH_REASON_BAD_STATE, 990000, .risk = 120);
	C.ref.product = LIM_PRODUCT_PAYLATER;
	DECLINED(AUTH_REASON_BAD_STATE, 990000, .risk = 120);
	C.ref.state = LIM_OPS_CLOSED;
	DECLINED(AUTH_REASON_BAD_STATE, 990000, .risk = 120);
}

/* ------------------------------------------------------------------------ */
/* Refund                                                                     */

static void
test_refund(void **state)
{
	(void)state;
	captured_ref(REF, 10000, LIM_PRODUCT_PAYLATER, T0 - 3600);
	set_req(LIM_OP_REFUND, REF, 4000, LIM_PRODUCT_PAYLATER);
	/* Back to pay-later debt; the month spend is not given back. */
	DECIDE(.status = AUTH_STATUS_APPROVED, .amount = 4000,
	       .available = 994000, .funder = 11, .own = 50, .risk = 120,
	       .kind = LIM_EFF_REFUND, .d_out = -4000);
	/* Up to what is left to refund. */
	C.ref.refunded_fen = 6000;
	DECIDE(.status = AUTH_STATUS_APPROVED, .amount = 4000,
	       .available = 994000, .funder = 11, .own = 50, .risk = 120,
	       .kind = LIM_EFF_REFUND, .d_out = -4000);
	C.req.amount = 4001;
	DECLINED(AUTH_REASON_BAD_STATE, 990000, .risk = 120);
}

static void
test_refund_installment_after_repay(void **state)
{
	(void)state;
	captured_ref(REF, 10000, LIM_PRODUCT_INSTALLMENT, T0 - 3600);
	set_req(LIM_OP_REFUND, REF, 4000, LIM_PRODUCT_PAYLATER);
	DECIDE(.status = AUTH_STATUS_APPROVED, .amount = 4000,
	       .available = 994000, .funder = 11, .own = 50, .risk = 120,
	       .kind = LIM_EFF_REFUND, .d_out = -4000, .d_bucket = -4000);
	/* The user repaid 9,000 of it: only the 1,000 left is cut; pay-later
	 * debt of another purchase is not touched. */
	C.u.inst_fen = 1000;
	C.u.outstanding_fen = 1000 + 50000;
	DECIDE(.status = AUTH_STATUS_APPROVED, .amount = 4000,
	       .available = 950000, .funder = 11, .own = 50, .risk = 120,
	       .kind = LIM_EFF_REFUND, .d_out = -1000, .d_bucket = -1000);
	/* All repaid: nothing to cut, still approved (paid out elsewhere). */
	C.u.inst_fen = 0;
	C.u.outstanding_fen = 50000;
	DECIDE(.status = AUTH_STATUS_APPROVED, .amount = 4000,
	       .available = 950000, .funder = 11, .own = 50, .risk = 120,
	       .kind = LIM_EFF_REFUND);
}

static void
test_refund_bad_state(void **state)
{
	(void)state;
	held_ref(REF, 10000, LIM_PRODUCT_PAYLATER, 0, T0 - 3600);
	set_req(LIM_OP_REFUND, REF, 1000, LIM_PRODUCT_PAYLATER);
	/* Not captured. */
	DECLINED(AUTH_REASON_BAD_STATE, 990000, .risk = 120);
	/* A cash loan. */
	C.ref.product = LIM_PRODUCT_CASH;
	C.ref.state = LIM_OPS_CAPTURED;
	C.ref.captured_fen = 10000;
	DECLINED(AUTH_REASON_BAD_STATE, 990000, .risk = 120);
	/* Refunded in full. */
	C.ref.product = LIM_PRODUCT_PAYLATER;
	C.ref.refunded_fen = 10000;
	C.ref.state = LIM_OPS_CLOSED;
	DECLINED(AUTH_REASON_BAD_STATE, 990000, .risk = 120);
	/* A declined authorization. */
	C.ref.status = AUTH_STATUS_DECLINED;
	C.ref.state = LIM_OPS_DECIDED;
	DECLINED(AUTH_REASON_BAD_STATE, 990000, .risk = 120);
}

/* ------------------------------------------------------------------------ */
/* Repay                                                                      */

static void
test_repay(void **state)
{
	(void)state;
	C.u.outstanding_fen = 60000;
	C.u.cash_fen = 10000;
	C.u.inst_fen = 20000;
	/* Pay-later debt is 60,000 - 10,000 - 20,000 = 30,000. */
	set_req(LIM_OP_REPAY, 0, 30001, LIM_PRODUCT_PAYLATER);
	DECIDE(.status = AUTH_STATUS_DECLINED, .reason = AUTH_REASON_BAD_STATE,
	       .available = 940000, .risk = 40, .kind = LIM_EFF_DECIDE);
	C.req.amount = 30000;
	DECIDE(.status = AUTH_STATUS_APPROVED, .amount = 30000,
	       .available = 970000, .risk = 40, .kind = LIM_EFF_REPAY,
	       .d_out = -30000);
	set_req(LIM_OP_REPAY, 0, 10001, LIM_PRODUCT_CASH);
	DECIDE(.status = AUTH_STATUS_DECLINED, .reason = AUTH_REASON_BAD_STATE,
	       .available = 940000, .risk = 40, .kind = LIM_EFF_DECIDE);
	C.req.amount = 10000;
	DECIDE(.status = AUTH_STATUS_APPROVED, .amount = 10000,
	       .available = 950000, .risk = 40, .kind = LIM_EFF_REPAY,
	       .d_out = -10000, .d_bucket = -10000);
	set_req(LIM_OP_REPAY, 0, 20001, LIM_PRODUCT_INSTALLMENT);
	DECIDE(.status = AUTH_STATUS_DECLINED, .reason = AUTH_REASON_BAD_STATE,
	       .available = 940000, .risk = 40, .kind = LIM_EFF_DECIDE);
	C.req.amount = 20000;
	DECIDE(.status = AUTH_STATUS_APPROVED, .amount = 20000,
	       .available = 960000, .risk = 40, .kind = LIM_EFF_REPAY,
	       .d_out = -20000, .d_bucket = -20000);
	/* Nothing owed. */
	C.u.outstanding_fen = C.u.cash_fen = C.u.inst_fen = 0;
	C.req.amount = 1;
	DECIDE(.status = AUTH_STATUS_DECLINED, .reason = AUTH_REASON_BAD_STATE,
	       .available = 1000000, .risk = 40, .kind = LIM_EFF_DECIDE);
}

static void
test_frozen_user_may_reduce_exposure(void **state)
{
	(void)state;
	struct lim_user clean;

	C.u.flags = LIM_USER_FROZEN;
	clean = C.u;
	held_ref(REF, 10000, LIM_PRODUCT_PAYLATER, 0, T0 - 3600);
	set_req(LIM_OP_CAPTURE, REF, 10000, LIM_PRODUCT_PAYLATER);
	DECIDE(.status = AUTH_STATUS_APPROVED, .amount = 10000,
	       .available = 990000, .funder = 11, .own = 50, .risk = 120,
	       .kind = LIM_EFF_CAPTURE, .d_out = 10000, .d_holds = -10000);
	set_req(LIM_OP_VOID, REF, 0, LIM_PRODUCT_PAYLATER);
	DECIDE(.status = AUTH_STATUS_APPROVED, .amount = 10000,
	       .available = 1000000, .funder = 11, .own = 50, .risk = 120,
	       .kind = LIM_EFF_VOID, .d_holds = -10000, .d_month = -10000);
	C.u = clean;
	captured_ref(REF, 10000, LIM_PRODUCT_PAYLATER, T0 - 3600);
	set_req(LIM_OP_REFUND, REF, 10000, LIM_PRODUCT_PAYLATER);
	DECIDE(.status = AUTH_STATUS_APPROVED, .amount = 10000,
	       .available = 1000000, .funder = 11, .own = 50, .risk = 120,
	       .kind = LIM_EFF_REFUND, .d_out = -10000);
	set_req(LIM_OP_REPAY, 0, 10000, LIM_PRODUCT_PAYLATER);
	DECIDE(.status = AUTH_STATUS_APPROVED, .amount = 10000,
	       .available = 1000000, .risk = 40, .kind = LIM_EFF_REPAY,
	       .d_out = -10000);
	/* ... but no new credit. */
	set_req(LIM_OP_AUTHORIZE, 0, 10000, LIM_PRODUCT_PAYLATER);
	C.req.merchant_id = MID;
	C.has_m = true;
	DECLINED(AUTH_REASON_USER_FROZEN, 990000, .risk = 120);
}

/* ------------------------------------------------------------------------ */
/* Duplicates and reversals                                                   */

static void
test_duplicate_replays_first_answer(void **state)
{
	(void)state;
	struct auth_out o;

	C.dup = (struct lim_op){.request_id = RID,
				.user_id = UID,
				.gateway_id = GW,
				.ledger_seq = 777,
				.amount_fen = 10000,
				.available_fen = 123456,
				.self_cap_left_fen = 4242,
				.hold_expires_s = T0 - 100 + TTL,
				.risk_score = 333,
				.funder_id = 14,
				.op = LIM_OP_AUTHORIZE,
				.status = AUTH_STATUS_APPROVED,
				.reason = AUTH_REASON_APPROVED,
				.notes = AUTH_NOTE_LARGE_SPEND,
				.own_share_pct = 30,
				.product = LIM_PRODUCT_PAYLATER,
				.state = LIM_OPS_CAPTURED,
				.captured_fen = 10000,
				.created_s = T0 - 100};
	C.has_dup = true;
	/* Whatever the state is now (frozen, blocked, a different amount). */
	C.u.flags = LIM_USER_FROZEN;
	C.m.flags = LIM_MERCHANT_BLOCKED;
	C.req.amount = 999;
	o = decide();
	assert_int_equal(o.resp.ledger_seq, 777);
	o.resp.ledger_seq = 0; /* check_out wants 0 from a fresh decision */
	check_out(&o,
		  WANT(.status = AUTH_STATUS_APPROVED, .amount = 10000,
		       .available = 123456, .hold_expires = T0 - 100 + TTL,
		       .funder = 14, .own = 30, .cap_left = 4242, .risk = 333,
		       .notes = AUTH_NOTE_LARGE_SPEND | AUTH_NOTE_DUPLICATE,
		       .kind = LIM_EFF_NONE),
		  __FILE__, __LINE__);
	/* A decline replays as the decline, with ledger_seq 0. */
	C.dup.status = AUTH_STATUS_DECLINED;
	C.dup.reason = AUTH_REASON_GROUP_LIMIT;
	C.dup.ledger_seq = 0;
	C.dup.amount_fen = 0;
	C.dup.hold_expires_s = 0;
	C.dup.funder_id = 0;
	C.dup.own_share_pct = 0;
	C.dup.notes = 0;
	C.dup.state = LIM_OPS_DECIDED;
	DECIDE(.status = AUTH_STATUS_DECLINED, .reason = AUTH_REASON_GROUP_LIMIT,
	       .available = 123456, .cap_left = 4242, .risk = 333,
	       .notes = AUTH_NOTE_DUPLICATE, .kind = LIM_EFF_NONE);
	/* An unknown user in the record does not matter for a replay. */
	C.has_user = false;
	DECIDE(.status = AUTH_STATUS_DECLINED, .reason = AUTH_REASON_GROUP_LIMIT,
	       .available = 123456, .cap_left = 4242, .risk = 333,
	       .notes = AUTH_NOTE_DUPLICATE, .kind = LIM_EFF_NONE);
}

static void
test_reversed(void **state)
{
	(void)state;
	/* A void named RID first: its tombstone is the entry of RID. */
	C.dup = (struct lim_op){.request_id = RID,
				.user_id = UID,
				.gateway_id = GW,
				.op = LIM_OP_VOID,
				.status = AUTH_STATUS_DECLINED,
				.reason = AUTH_REASON_UNKNOWN_REF,
				.state = LIM_OPS_TOMBSTONE,
				.created_s = T0 - 5};
	C.has_dup = true;
	C.u.self_cap_fen = 50000;
	DECIDE(.status = AUTH_STATUS_DECLINED, .reason = AUTH_REASON_REVERSED,
	       .available = 1000000, .cap_left = 50000, .kind = LIM_EFF_NONE);
	/* Again: REVERSED again (the tombstone stays). */
	DECIDE(.status = AUTH_STATUS_DECLINED, .reason = AUTH_REASON_REVERSED,
	       .available = 1000000, .cap_left = 50000, .kind = LIM_EFF_NONE);
}

/* ------------------------------------------------------------------------ */
/* Hold expiry                                                                */

static void
test_expire(void **state)
{
	(void)state;
	struct lim_effect e;
	uint32_t created = T0 - TTL;

	held_ref(REF, 10000, LIM_PRODUCT_INSTALLMENT, 6, created);
	C.ref.group_id = GID;
	/* Not lapsed yet. */
	set_now(created + TTL - 1);
	assert_false(auth_expire(&C.ref, &C.u, &C.now, &e));
	/* Lapsed at hold_expires; created this month: spend given back. */
	set_now(created + TTL);
	assert_true(auth_expire(&C.ref, &C.u, &C.now, &e));
	assert_int_equal(e.kind, LIM_EFF_EXPIRE);
	assert_int_equal(e.seq, 0);
	assert_int_equal(e.user_id, UID);
	assert_int_equal(e.ref_id, REF);
	assert_int_equal(e.gateway_id, GW);
	assert_int_equal(e.now_s, created + TTL);
	assert_int_equal(e.product, LIM_PRODUCT_INSTALLMENT);
	assert_int_equal(e.terms, 6);
	assert_int_equal(e.group_id, GID);
	assert_int_equal(e.funder_id, 11);
	assert_int_equal(e.own_share_pct, 50);
	assert_int_equal(e.amount_fen, 10000);
	assert_int_equal(e.d_holds_fen, -10000);
	assert_int_equal(e.d_outstanding_fen, 0);
	assert_int_equal(e.d_bucket_fen, 0);
	assert_int_equal(e.d_month_fen, -10000);
	assert_int_equal(e.count_spend, 0);
	assert_int_equal(e.cool_until_s, 0);
	assert_int_equal(e.available_fen, 1000000);
	/* A partly voided hold releases what is left. */
	C.ref.held_fen = 2500;
	C.u.holds_fen = 2500;
	assert_true(auth_expire(&C.ref, &C.u, &C.now, &e));
	assert_int_equal(e.amount_fen, 2500);
	assert_int_equal(e.d_holds_fen, -2500);
	assert_int_equal(e.d_month_fen, -2500);
	/* Created last month: the month spend is last month's. */
	set_now(fx_local8(2026, 11, 6, 13, 0, 0));
	assert_true(auth_expire(&C.ref, &C.u, &C.now, &e));
	assert_int_equal(e.d_month_fen, 0);
	/* Not a hold, or another user's. */
	C.ref.state = LIM_OPS_CAPTURED;
	assert_false(auth_expire(&C.ref, &C.u, &C.now, &e));
	C.ref.state = LIM_OPS_CLOSED;
	assert_false(auth_expire(&C.ref, &C.u, &C.now, &e));
	C.ref.state = LIM_OPS_HELD;
	C.ref.user_id = UID + 1;
	assert_false(auth_expire(&C.ref, &C.u, &C.now, &e));
}

/* ------------------------------------------------------------------------ */
/* Purity: no allocation, no system call                                      */

/*
 * Every path of auth_decide() and auth_expire() on the inputs in C: all
 * products and ops, approvals and every decline. Returns a checksum of the
 * answers so a run under seccomp can be compared with a plain one. Builds
 * nothing that allocates (the budgets exist already).
 */
static uint64_t
battery(void)
{
	struct auth_in in;
	struct auth_out o;
	struct lim_effect e;
	uint64_t sum = 0;
	struct ctx saved = C;

	for (unsigned op = LIM_OP_AUTHORIZE; op <= LIM_OP_REPAY; op++) {
		for (unsigned product = 1; product <= 3; product++) {
			for (unsigned v = 0; v < 24; v++) {
				C = saved;
				C.req.op = (uint8_t)op;
				C.req.product = (uint8_t)product;
				C.req.terms = product == LIM_PRODUCT_INSTALLMENT
						      ? (v & 1 ? 6 : 5) : 0;
				C.req.ref_id = op == LIM_OP_AUTHORIZE ||
							       op == LIM_OP_REPAY
						       ? 0 : REF;
				C.req.amount = op == LIM_OP_VOID && (v & 2)
						       ? 0 : 1000 * (v + 1);
				C.req.merchant_id = op == LIM_OP_REPAY ? 0 : MID;
				C.u.flags = v == 3 ? LIM_USER_FROZEN
					    : v == 4 ? LIM_USER_EXT |
							       LIM_USER_SOFT_CAP
						     : 0;
				C.has_x = v == 4;
				C.x.temp_quota_fen = 5000;
				C.x.temp_until_s = T0 + 10;
				C.u.self_cap_fen = v == 5 || v == 4 ? 3000 : 0;
				C.u.tier = v == 6 ? 0 : 2;
				C.m.flags = v == 7 ? LIM_MERCHANT_BLOCKED : 0;
				C.has_m = v != 8;
				C.m.risk_score = v == 9 ? 950 : 120;
				C.req.group_id = v == 10 || v == 11 ? GID : 0;
				C.has_g = v == 11;
				C.u.cool_until_s = v == 12 ? T0 + 5 : 0;
				C.u.outstanding_fen = v == 13 ? 995000 : 20000;
				C.u.cash_fen = 5000;
				C.u.inst_fen = 5000;
				C.u.spend_min = C.now.minute;
				C.u.vel_min_n = v == 14 ? 10 : 1;
				C.has_user = v != 15;
				C.has_dup = v == 16 || v == 17;
				C.dup.state = v == 16 ? LIM_OPS_TOMBSTONE
						      : LIM_OPS_DECIDED;
				C.has_ref = v != 18;
				C.ref = (struct lim_op){
					.request_id = REF,
					.user_id = v == 19 ? UID + 1 : UID,
					.op = LIM_OP_AUTHORIZE,
					.status = AUTH_STATUS_APPROVED,
					.product = (uint8_t)(v == 20 ? 3 : 1),
					.state = (uint8_t)(v == 21
								   ? LIM_OPS_CAPTURED
								   : LIM_OPS_HELD),
					.held_fen = v == 21 ? 0 : 30000,
					.captured_fen = v == 21 ? 30000 : 0,
					.hold_expires_s = T0 + (v == 22 ? 0 : 60),
					.created_s = T0 - 60};
				C.u.holds_fen = 30000;
				make_in(&in);
				in.cap = v == 23 ? C.fs.budget[0] : C.cap;
				auth_decide(&in, &o);
				sum = sum * 1099511628211ULL ^ o.resp.reason;
				sum = sum * 1099511628211ULL ^
				      (uint64_t)o.resp.available;
				sum = sum * 1099511628211ULL ^ o.eff.kind;
				sum = sum * 1099511628211ULL ^
				      (uint64_t)o.eff.d_month_fen;
				if (C.has_user &&
				    auth_expire(&C.ref, &C.u, &C.now, &e))
					sum += (uint64_t)e.d_holds_fen;
				sum += (uint64_t)auth_available(&C.u, &C.x,
								C.now.s);
			}
		}
	}
	C = saved;
	return sum;
}

static void
test_alloc_counter_works(void **state)
{
	(void)state;
	void *(*volatile m)(size_t) = malloc;
	void (*volatile f)(void *) = free;
	void *p;

	alloc_counter_install();
	n_allocs = n_frees = 0;
	counting = 1;
	p = m(24);
	f(p);
	counting = 0;
	assert_non_null(p);
	/* The counter sees an allocation: a decide that allocates fails. */
	assert_int_equal(n_allocs, 1);
	assert_int_equal(n_frees, 1);
}

static void
test_decide_no_alloc(void **state)
{
	(void)state;
	uint64_t sum;

	alloc_counter_install();
	held_ref(REF, 30000, LIM_PRODUCT_PAYLATER, 0, T0 - 60);
	C.dup.request_id = RID;
	C.dup.user_id = UID;
	n_allocs = n_frees = 0;
	counting = 1;
	sum = battery();
	sum += battery();
	counting = 0;
	assert_int_equal(n_allocs, 0);
	assert_int_equal(n_frees, 0);
	assert_int_not_equal(sum, 0);
}

/*
 * The battery again in a child under SECCOMP_MODE_STRICT: any system call
 * other than read, write, exit and sigreturn kills it with SIGKILL.
 * Not under ThreadSanitizer: its runtime starts a thread in the forked
 * child, which SYS_exit (the only exit strict mode allows) leaves running,
 * so the child never ends (make test-tsan hung here until its timeout).
 */
static void
test_decide_no_syscall(void **state)
{
	(void)state;
	int fd[2], status;
	uint64_t want, got = 0;
	pid_t pid;

#ifdef DEC_TSAN
	skip();
#endif
	held_ref(REF, 30000, LIM_PRODUCT_PAYLATER, 0, T0 - 60);
	want = battery();
	assert_int_equal(pipe(fd), 0);
	fflush(NULL);
	pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		uint64_t sum;

		close(fd[0]);
		if (prctl(PR_SET_SECCOMP, SECCOMP_MODE_STRICT) != 0)
			_exit(77);
		sum = battery();
		if (write(fd[1], &sum, sizeof(sum)) != sizeof(sum))
			syscall(SYS_exit, 2);
		syscall(SYS_exit, 0);
	}
	close(fd[1]);
	assert_int_equal(waitpid(pid, &status, 0), pid);
	if (WIFEXITED(status) && WEXITSTATUS(status) == 77) {
		close(fd[0]);
		skip(); /* no seccomp here: the allocation test still holds */
	}
	if (WIFSIGNALED(status))
		fail_msg("decide was killed by signal %d under strict seccomp "
			 "(a system call)", WTERMSIG(status));
	assert_true(WIFEXITED(status));
	assert_int_equal(WEXITSTATUS(status), 0);
	assert_int_equal(read(fd[0], &got, sizeof(got)), sizeof(got));
	close(fd[0]);
	assert_int_equal(got, want);
}

/* ------------------------------------------------------------------------ */

#define T(f) cmocka_unit_test_setup_teardown(f, setup, teardown)

int
main(void)
{
	const struct CMUnitTest tests[] = {
		T(test_time_constants),
		T(test_approve_paylater),
		T(test_approve_installment_interest_free),
		T(test_approve_cash),
		T(test_unknown_user),
		T(test_user_frozen),
		T(test_term_invalid),
		T(test_risk_tier),
		T(test_merchant_blocked),
		T(test_risk_cashout),
		T(test_unknown_group),
		T(test_velocity_count_minute),
		T(test_velocity_count_day),
		T(test_velocity_day_boundary_utc8),
		T(test_velocity_amount),
		T(test_cooling_off),
		T(test_insufficient_limit),
		T(test_temp_quota),
		T(test_cash_limit),
		T(test_cash_limit_installment_linkage),
		T(test_cash_limit_override),
		T(test_over_self_cap),
		T(test_over_self_cap_soft),
		T(test_group_limit),
		T(test_global_cap),
		T(test_global_cap_shards),
		T(test_no_funder),
		T(test_funder_priority_region_share),
		T(test_funder_quota_exhaustion),
		T(test_funder_own_book_holds_the_rest),
		T(test_funder_own_share_minimum),
		T(test_note_large_spend),
		T(test_note_low_available),
		T(test_notes_combined),
		T(test_order),
		T(test_order_pairs),
		T(test_month_boundary_utc8),
		T(test_month_boundary_release),
		T(test_capture_full),
		T(test_capture_partial_installment),
		T(test_capture_last_month_hold),
		T(test_capture_bad_refs),
		T(test_capture_after_expiry),
		T(test_void_whole_and_partial),
		T(test_void_unknown_ref_tombstone),
		T(test_void_bad_state),
		T(test_refund),
		T(test_refund_installment_after_repay),
		T(test_refund_bad_state),
		T(test_repay),
		T(test_frozen_user_may_reduce_exposure),
		T(test_duplicate_replays_first_answer),
		T(test_reversed),
		T(test_expire),
		T(test_alloc_counter_works),
		T(test_decide_no_alloc),
		T(test_decide_no_syscall),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
