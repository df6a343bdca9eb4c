/*
 * authgen_load.c - the workload: what each record says.
 *
 * Design note. A worker draws every record from its own xoshiro256**
 * stream (seeded from --seed and the worker's index), so a run with the same
 * options sends the same records as long as the answers are the same.
 * Authorizations name users enumerated like `authdb gen` does
 * (lim_gen_user_id(seed, i), or ids read from a snapshot), merchants
 * likewise, amounts from a sampled distribution table (built once, so the
 * hot path draws an integer index and never touches floating point).
 *
 * Lifecycle: captures and voids name approved holds, refunds name captured
 * authorizations, repayments name debts (captured holds, cash loans). The
 * generator learns them from the answers (gen_load_answer) and keeps them in
 * two bounded pools (held, debt) with random pick and swap-remove: an entry
 * is taken out when a record names it, so two records in flight never name
 * the same one, and put back with what is left when the answer approves.
 * A full pool forgets a random entry. When the pool an op needs is empty
 * the record becomes an authorization (counted as substituted).
 *
 * Faults (--faults, parts per million of records) make the answers that a
 * clean workload never gets: DUPLICATE (a record sent again), MALFORMED,
 * TERM_INVALID, UNKNOWN_USER, UNKNOWN_REF followed later by REVERSED (a void
 * naming an id that the generator then authorizes).
 *
 * Concurrency: one worker owns a struct gen_load; the id and amount tables
 * are shared read-only.
 */
#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "authgen.h"

static const char *const fault_names[GEN_FAULTS] = {
#define GEN_FAULT_NAME(sym, name, text) name,
	GEN_FOREACH_FAULT(GEN_FAULT_NAME)
#undef GEN_FAULT_NAME
};

const char *
gen_fault_name(enum gen_fault f)
{
	return (unsigned)f < GEN_FAULTS ? fault_names[f] : "?";
}

/* ------------------------------------------------------------------------ */
/* Random numbers                                                             */

static uint64_t
splitmix64(uint64_t *x)
{
	uint64_t z = (*x += 0x9e3779b97f4a7c15ull);

	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
	return z ^ (z >> 31);
}

static uint64_t
mix64(uint64_t x)
{
	return splitmix64(&x);
}

void
gen_rng_seed(struct gen_rng *r, uint64_t seed)
{
	for (unsigned i = 0; i < 4; i++)
		r->s[i] = splitmix64(&seed);
}

static inline uint64_t
rotl(uint64_t x, int k)
{
	return (x << k) | (x >> (64 - k));
}

uint64_t
gen_rng_next(struct gen_rng *r)
{
	uint64_t *s = r->s;
	uint64_t out = rotl(s[1] * 5, 7) * 9;
	uint64_t t = s[1] << 17;

	s[2] ^= s[0];
	s[3] ^= s[1];
	s[1] ^= s[2];
	s[0] ^= s[3];
	s[2] ^= t;
	s[3] = rotl(s[3], 45);
	return out;
}

/* True with probability pct / 100. */
static inline bool
chance(struct gen_rng *r, unsigned pct)
{
	return gen_rng_below(r, 100) < pct;
}

/* ------------------------------------------------------------------------ */
/* Amounts                                                                    */

/* A standard normal draw (Box-Muller); set-up only. */
static double
normal(struct gen_rng *r)
{
	double u1 = ((double)(gen_rng_next(r) >> 11) + 0.5) / 9007199254740992.0;
	double u2 = (double)(gen_rng_next(r) >> 11) / 9007199254740992.0;

	return sqrt(-2.0 * log(u1)) * cos(2.0 * M_PI * u2);
}

int64_t *
gen_amounts_table(const struct gen_amounts *a, uint64_t seed)
{
	int64_t *t = malloc(GEN_AMOUNTS_TABLE * sizeof(*t));
	struct gen_rng r;

	if (!t)
		return NULL;
	gen_rng_seed(&r, seed ^ 0xa3f1u);
	for (unsigned i = 0; i < GEN_AMOUNTS_TABLE; i++) {
		int64_t v;

		switch (a->kind) {
		case GEN_AMOUNT_FIXED:
			v = a->a_fen;
			break;
		case GEN_AMOUNT_UNIFORM:
			v = a->a_fen +
			    (int64_t)gen_rng_below(&r, (uint64_t)(a->b_fen -
								  a->a_fen + 1));
			break;
		default:
			v = (int64_t)llround((double)a->a_fen *
					     exp(a->sigma * normal(&r)));
			if (v > a->b_fen)
				v = a->b_fen;
			break;
		}
		t[i] = v < 1 ? 1 : v;
	}
	return t;
}

/* ------------------------------------------------------------------------ */
/* Pools of remembered authorizations                                         */

static int
pool_init(struct gen_pool *p, uint32_t cap)
{
	p->e = calloc(cap ? cap : 1, sizeof(*p->e));
	p->n = 0;
	p->cap = cap ? cap : 1;
	return p->e ? 0 : -ENOMEM;
}

static void
pool_add(struct gen_pool *p, struct gen_rng *r, const struct gen_auth *a)
{
	if (p->n < p->cap)
		p->e[p->n++] = *a;
	else
		p->e[gen_rng_below(r, p->cap)] = *a;
}

/* Take a random entry out; false when empty. */
static bool
pool_take(struct gen_pool *p, struct gen_rng *r, struct gen_auth *out)
{
	uint32_t i;

	if (p->n == 0)
		return false;
	i = (uint32_t)gen_rng_below(r, p->n);
	*out = p->e[i];
	p->e[i] = p->e[--p->n];
	return true;
}

/* Take a random entry that @p ok accepts, trying a few; false if none. */
static bool
pool_take_if(struct gen_pool *p, struct gen_rng *r, struct gen_auth *out,
	     bool (*ok)(const struct gen_auth *))
{
	for (unsigned tries = 0; tries < 8 && p->n; tries++) {
		uint32_t i = (uint32_t)gen_rng_below(r, p->n);

		if (!ok(&p->e[i]))
			continue;
		*out = p->e[i];
		p->e[i] = p->e[--p->n];
		return true;
	}
	return false;
}

static int64_t
refundable(const struct gen_auth *a)
{
	return a->product == LIM_PRODUCT_CASH ? 0
					      : a->captured_fen - a->refunded_fen;
}

static int64_t
repayable(const struct gen_auth *a)
{
	int64_t left = a->captured_fen - a->refunded_fen - a->repaid_fen;

	return left > 0 ? left : 0;
}

static bool
can_refund(const struct gen_auth *a)
{
	return refundable(a) > 0;
}

static bool
can_repay(const struct gen_auth *a)
{
	return repayable(a) > 0;
}

/* ------------------------------------------------------------------------ */
/* Records                                                                    */

int
gen_load_init(struct gen_load *l, const struct gen_ctx *ctx, unsigned worker,
	      struct gen_stats *st)
{
	const struct gen_config *cfg = &ctx->cfg;
	unsigned sum = 0;

	memset(l, 0, sizeof(*l));
	l->cfg = cfg;
	gen_rng_seed(&l->rng, cfg->seed * 0x100000001b3ull + worker + 1);
	l->next_id = 1;
	l->id_hi = (uint64_t)cfg->run_tag << 48 | (uint64_t)worker << 40;
	l->user_ids = ctx->user_ids;
	l->n_users = ctx->n_users;
	l->merchant_ids = ctx->merchant_ids;
	l->n_merchants = ctx->n_merchants;
	l->members = ctx->members;
	l->n_members = ctx->n_members;
	l->amounts = ctx->amounts;
	l->st = st;
	for (unsigned i = 0; i < GEN_OPS; i++)
		l->mix_cum[i] = sum += cfg->mix[i];
	sum = 0;
	for (unsigned i = 0; i < GEN_PRODUCTS; i++)
		l->prod_cum[i] = sum += cfg->products[i];
	if (pool_init(&l->held, cfg->remember) ||
	    pool_init(&l->debt, cfg->remember)) {
		gen_load_fini(l);
		return -ENOMEM;
	}
	return 0;
}

void
gen_load_fini(struct gen_load *l)
{
	free(l->held.e);
	free(l->debt.e);
	l->held.e = l->debt.e = NULL;
}

static unsigned
pick(struct gen_rng *r, const unsigned *cum, unsigned n)
{
	uint64_t x = gen_rng_below(r, cum[n - 1]);

	for (unsigned i = 1; i < n; i++)
		if (x < cum[i])
			return i;
	return n - 1;
}

static uint64_t
new_id(struct gen_load *l)
{
	return l->id_hi | (l->next_id++ & ((1ull << 40) - 1));
}

static uint64_t
any_user(struct gen_load *l)
{
	uint64_t i = gen_rng_below(&l->rng, l->n_users);

	return l->user_ids ? l->user_ids[i] : lim_gen_user_id(l->cfg->seed, i);
}

static uint32_t
any_merchant(struct gen_load *l)
{
	uint64_t i;

	if (l->n_merchants == 0)
		return 1 + (uint32_t)gen_rng_below(&l->rng, 1000000);
	i = gen_rng_below(&l->rng, l->n_merchants);
	return l->merchant_ids ? l->merchant_ids[i]
			       : lim_gen_merchant_id(l->cfg->seed, i);
}

/* The scene of a payment: channel, mcc, region, device. */
static void
scene(struct gen_load *l, struct auth_req *r)
{
	static const uint16_t mccs[] = {5411, 5812, 5999, 5732, 5651,
					4121, 7011, 5912, 5311, 5945};
	uint64_t h = mix64(r->user_id);
	unsigned c = (unsigned)gen_rng_below(&l->rng, 10);

	r->channel = c < 5 ? AUTH_CHANNEL_ONLINE
			   : c < 8 ? AUTH_CHANNEL_QR : AUTH_CHANNEL_APP;
	r->mcc = mccs[mix64(r->merchant_id) % (sizeof(mccs) / sizeof(mccs[0]))];
	r->region = (uint16_t)(1 + h % 34);
	r->device_id = chance(&l->rng, 95) ? mix64(h) : gen_rng_next(&l->rng);
}

static uint8_t
terms_for(struct gen_load *l, uint8_t product)
{
	unsigned x;

	if (product != LIM_PRODUCT_INSTALLMENT)
		return 0;
	x = (unsigned)gen_rng_below(&l->rng, 10);
	return x < 5 ? 3 : x < 8 ? 6 : 12;
}

static void
authorize(struct gen_load *l, struct auth_req *r)
{
	r->op = LIM_OP_AUTHORIZE;
	/* Half the time, authorize an id an early reversal named. */
	if (l->n_pending && chance(&l->rng, 50))
		r->request_id = l->pending[--l->n_pending];
	else
		r->request_id = new_id(l);
	if (l->n_members && gen_rng_below(&l->rng, 100) < l->cfg->group_pct) {
		const struct gen_member *m =
			&l->members[gen_rng_below(&l->rng, l->n_members)];

		r->user_id = m->user_id;
		r->group_id = m->group_id;
	} else {
		r->user_id = any_user(l);
	}
	r->merchant_id = any_merchant(l);
	r->product = (uint8_t)pick(&l->rng, l->prod_cum, GEN_PRODUCTS);
	r->terms = terms_for(l, r->product);
	r->amount = l->amounts[gen_rng_below(&l->rng, GEN_AMOUNTS_TABLE)];
}

/* A record naming @p a: ids, product, merchant. */
static void
naming(struct gen_load *l, struct auth_req *r, struct gen_sent *s,
       const struct gen_auth *a, uint8_t op)
{
	r->op = op;
	r->request_id = new_id(l);
	r->user_id = a->user_id;
	r->ref_id = op == LIM_OP_REPAY ? 0 : a->request_id;
	r->merchant_id = a->merchant_id;
	r->product = a->product;
	s->ref = *a;
	s->has_ref = 1;
}

/* Uniform in [1, max], max >= 1. */
static int64_t
part(struct gen_load *l, int64_t max)
{
	return 1 + (int64_t)gen_rng_below(&l->rng, (uint64_t)max);
}

/* A lifecycle op; false when nothing is there to name. */
static bool
lifecycle(struct gen_load *l, uint8_t op, struct auth_req *r,
	  struct gen_sent *s)
{
	struct gen_auth a;

	switch (op) {
	case LIM_OP_CAPTURE:
		if (!pool_take(&l->held, &l->rng, &a))
			return false;
		naming(l, r, s, &a, op);
		r->amount = chance(&l->rng, 85) ? a.held_fen : part(l, a.held_fen);
		return true;
	case LIM_OP_VOID:
		if (!pool_take(&l->held, &l->rng, &a))
			return false;
		naming(l, r, s, &a, op);
		r->amount = a.held_fen > 1 && chance(&l->rng, 20)
				    ? part(l, a.held_fen - 1) : 0;
		return true;
	case LIM_OP_REFUND:
		if (!pool_take_if(&l->debt, &l->rng, &a, can_refund))
			return false;
		naming(l, r, s, &a, op);
		r->amount = chance(&l->rng, 50) ? refundable(&a)
						: part(l, refundable(&a));
		return true;
	case LIM_OP_REPAY:
		if (!pool_take_if(&l->debt, &l->rng, &a, can_repay))
			return false;
		naming(l, r, s, &a, op);
		if (chance(&l->rng, 50))
			r->merchant_id = 0;
		r->amount = chance(&l->rng, 60) ? repayable(&a)
						: part(l, repayable(&a));
		return true;
	default:
		return false;
	}
}

static enum gen_fault
draw_fault(struct gen_load *l)
{
	uint64_t x = gen_rng_below(&l->rng, 1000000), cum = 0;

	for (unsigned f = 0; f < GEN_FAULTS; f++) {
		cum += l->cfg->faults_ppm[f];
		if (x < cum)
			return (enum gen_fault)f;
	}
	return GEN_FAULTS;
}

/* Break one format rule (auth_req_check). */
static void
malform(struct gen_load *l, struct auth_req *r)
{
	switch (gen_rng_below(&l->rng, 5)) {
	case 0:
		r->reserved0 = 1;
		break;
	case 1:
		r->channel = 7;
		break;
	case 2:
		r->product = 0;
		break;
	case 3:
		r->amount = -r->amount - 1;
		break;
	default:
		r->op = 9;
		break;
	}
}

/* Turn @p r into a void or refund of an id not sent yet (a tombstone). */
static void
early_reversal(struct gen_load *l, struct auth_req *r)
{
	uint64_t id = new_id(l);

	r->op = chance(&l->rng, 50) ? LIM_OP_VOID : LIM_OP_REFUND;
	r->request_id = new_id(l);
	r->ref_id = id;
	r->group_id = 0;
	r->terms = 0;
	r->amount = r->op == LIM_OP_VOID ? 0 : r->amount;
	if (l->n_pending < GEN_PENDING)
		l->pending[l->n_pending++] = id;
}

static void
apply_fault(struct gen_load *l, enum gen_fault f, struct auth_req *r,
	    struct gen_sent *s)
{
	switch (f) {
	case GEN_FAULT_MALFORMED:
		malform(l, r);
		break;
	case GEN_FAULT_TERMS:
		if (r->op != LIM_OP_AUTHORIZE)
			return;
		r->terms = r->product == LIM_PRODUCT_INSTALLMENT ? 5 : 3;
		break;
	case GEN_FAULT_UNKNOWN_USER:
		/* Top bit set: authdb gen never makes such ids (see report). */
		r->user_id = 0xfff0000000000000ull | (gen_rng_next(&l->rng) >> 12);
		break;
	case GEN_FAULT_UNKNOWN_REF:
		if (r->op != LIM_OP_AUTHORIZE)
			return;
		early_reversal(l, r);
		break;
	case GEN_FAULT_UNKNOWN_GROUP:
		if (r->op != LIM_OP_AUTHORIZE)
			return;
		r->group_id = 0x7ffffff0u + (uint32_t)gen_rng_below(&l->rng, 16);
		break;
	default:
		return;
	}
	s->fault = (uint8_t)f;
	GEN_ADD(l->st->fault_sent[f], 1);
}

void
gen_load_next(struct gen_load *l, struct auth_req *r, struct gen_sent *s)
{
	enum gen_fault f = draw_fault(l);
	uint8_t op;

	memset(r, 0, sizeof(*r));
	memset(s, 0, sizeof(*s));
	s->fault = GEN_FAULTS;
	if (f == GEN_FAULT_DUP && l->n_recent) {
		uint64_t n = l->n_recent < GEN_RECENT ? l->n_recent : GEN_RECENT;

		*r = l->recent[gen_rng_below(&l->rng, n)];
		s->fault = GEN_FAULT_DUP;
		GEN_ADD(l->st->fault_sent[f], 1);
		GEN_ADD(l->st->op_sent[r->op < GEN_OPS ? r->op : 0], 1);
		return;
	}
	op = (uint8_t)pick(&l->rng, l->mix_cum, GEN_OPS);
	if (op == LIM_OP_AUTHORIZE || !lifecycle(l, op, r, s)) {
		if (op != LIM_OP_AUTHORIZE)
			GEN_ADD(l->st->c[GEN_C_substituted], 1);
		authorize(l, r);
	}
	scene(l, r);
	if (f != GEN_FAULTS && f != GEN_FAULT_DUP)
		apply_fault(l, f, r, s);
	GEN_ADD(l->st->op_sent[r->op < GEN_OPS ? r->op : 0], 1);
	GEN_ADD(l->st->product_sent[r->product < GEN_PRODUCTS ? r->product : 0],
		1);
	l->recent[l->n_recent++ % GEN_RECENT] = *r;
}

/* Put @p a back in @p p when something is left to name. */
static void
keep(struct gen_load *l, struct gen_pool *p, const struct gen_auth *a,
     bool left)
{
	if (left)
		pool_add(p, &l->rng, a);
}

void
gen_load_answer(struct gen_load *l, const struct auth_req *r,
		const struct gen_sent *s, const struct auth_resp *a)
{
	struct gen_auth e = s->ref;

	if (s->fault != GEN_FAULTS || a->status != AUTH_STATUS_APPROVED ||
	    (a->notes & AUTH_NOTE_DUPLICATE))
		return;
	switch (r->op) {
	case LIM_OP_AUTHORIZE:
		memset(&e, 0, sizeof(e));
		e.request_id = r->request_id;
		e.user_id = r->user_id;
		e.merchant_id = r->merchant_id;
		e.product = r->product;
		e.terms = r->terms;
		if (r->product == LIM_PRODUCT_CASH) {
			e.captured_fen = a->amount;
			pool_add(&l->debt, &l->rng, &e);
		} else {
			e.held_fen = a->amount;
			pool_add(&l->held, &l->rng, &e);
		}
		break;
	case LIM_OP_CAPTURE:
		e.held_fen = 0;
		e.captured_fen = a->amount;
		keep(l, &l->debt, &e, true);
		break;
	case LIM_OP_VOID:
		e.held_fen = r->amount == 0 ? 0 : e.held_fen - a->amount;
		keep(l, &l->held, &e, e.held_fen > 0);
		break;
	case LIM_OP_REFUND:
		e.refunded_fen += a->amount;
		keep(l, &l->debt, &e, can_refund(&e) || can_repay(&e));
		break;
	case LIM_OP_REPAY:
		e.repaid_fen += a->amount;
		keep(l, &l->debt, &e, can_refund(&e) || can_repay(&e));
		break;
	default:
		break;
	}
}

void
gen_load_lost(struct gen_load *l, const struct auth_req *r,
	      const struct gen_sent *s)
{
	/* The entry it named was taken out already: it is simply forgotten. */
	(void)l;
	(void)r;
	(void)s;
}
