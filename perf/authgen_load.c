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
 * Popularity (--users-dist, --merchants-dist): an ordinary record names
 * user index i in [0, n_users_ord) uniformly or by Zipf (authgen_dist.c);
 * indices past n_users_ord (and merchants past n_merchants_ord) are kept
 * for the cash-out script, so ordinary traffic never touches an attacker
 * or a colluding merchant. Profiles (authgen_profile.c): double11 sends
 * GEN_D11_HOT_PCT% of authorizations to a few hot merchants, with the
 * terms they subsidise; cashout replaces PCT% of the records with the
 * attack script.
 *
 * Concurrency: one worker owns a struct gen_load; the id and amount tables
 * are shared read-only.
 */
#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include <rte_cycles.h>

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
	l->ctx = ctx;
	l->n_users_ord = ctx->n_users_ord ? ctx->n_users_ord : ctx->n_users;
	l->n_merchants_ord = ctx->n_merchants_ord ? ctx->n_merchants_ord
						  : ctx->n_merchants;
	l->top_users = l->n_users_ord / 100 ? l->n_users_ord / 100 : 1;
	l->top_merchants = l->n_merchants_ord / 100 ? l->n_merchants_ord / 100
						    : 1;
	l->zu = cfg->users_dist.kind == GEN_DIST_ZIPF ? &ctx->zipf_users : NULL;
	l->zm = cfg->merchants_dist.kind == GEN_DIST_ZIPF ? &ctx->zipf_merchants
							  : NULL;
	l->atk_next = worker;
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

uint64_t
gen_load_user_index(struct gen_load *l)
{
	uint64_t i = l->zu ? gen_zipf_draw(l->zu, &l->rng)
			   : gen_rng_below(&l->rng, l->n_users_ord);

	GEN_ADD(l->st->dist_draws[0], 1);
	if (i < l->top_users)
		GEN_ADD(l->st->dist_top[0], 1);
	return i;
}

uint64_t
gen_load_merchant_index(struct gen_load *l)
{
	uint64_t i = l->zm ? gen_zipf_draw(l->zm, &l->rng)
			   : gen_rng_below(&l->rng, l->n_merchants_ord);

	GEN_ADD(l->st->dist_draws[1], 1);
	if (i < l->top_merchants)
		GEN_ADD(l->st->dist_top[1], 1);
	return i;
}

static uint64_t
any_user(struct gen_load *l)
{
	uint64_t i = gen_load_user_index(l);

	return l->user_ids ? l->user_ids[i] : lim_gen_user_id(l->cfg->seed, i);
}

static uint32_t
any_merchant(struct gen_load *l)
{
	uint64_t i;

	if (l->n_merchants == 0)
		return 1 + (uint32_t)gen_rng_below(&l->rng, 1000000);
	i = gen_load_merchant_index(l);
	return l->merchant_ids ? l->merchant_ids[i]
			       : lim_gen_merchant_id(l->cfg->seed, i);
}

/* double11: one of the hot merchants, GEN_D11_HOT_PCT% of the time. */
static const struct gen_hot *
hot_merchant(struct gen_load *l)
{
	const struct gen_ctx *c = l->ctx;

	if (!c->n_hot || !chance(&l->rng, GEN_D11_HOT_PCT))
		return NULL;
	return &c->hot[gen_rng_below(&l->rng, c->n_hot)];
}

/* Installment terms a hot merchant subsidises (3, 6 or 12), or 0. */
static uint8_t
subsidised_terms(struct gen_load *l, uint8_t subsidy)
{
	static const uint8_t terms[3] = {3, 6, 12};
	uint8_t pick[3];
	unsigned n = 0;

	for (unsigned b = 0; b < 3; b++)
		if (subsidy & (1u << b))
			pick[n++] = terms[b];
	return n ? pick[gen_rng_below(&l->rng, n)] : 0;
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
authorize(struct gen_load *l, struct auth_req *r, struct gen_sent *s)
{
	const struct gen_hot *hot;

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
	hot = hot_merchant(l);
	r->merchant_id = hot ? hot->merchant_id : any_merchant(l);
	r->product = (uint8_t)pick(&l->rng, l->prod_cum, GEN_PRODUCTS);
	r->terms = terms_for(l, r->product);
	r->amount = l->amounts[gen_rng_below(&l->rng, GEN_AMOUNTS_TABLE)];
	if (!hot)
		return;
	/* Festival shopping: the terms the merchant pays the interest of. */
	s->hot = 1;
	GEN_ADD(l->st->hot[GEN_HOT_AUTHS], 1);
	if (r->product != LIM_PRODUCT_INSTALLMENT)
		return;
	GEN_ADD(l->st->hot[GEN_HOT_INSTALLMENTS], 1);
	if (subsidised_terms(l, hot->subsidy))
		r->terms = subsidised_terms(l, hot->subsidy);
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

/* ------------------------------------------------------------------------ */
/* The cash-out script (--profile cashout)                                    */

static const char *const attack_names[GEN_ATTACKS] = {
	"none",
#define GEN_ATTACK_NAME(sym, name, text) name,
	GEN_FOREACH_ATTACK(GEN_ATTACK_NAME)
#undef GEN_ATTACK_NAME
};

const char *
gen_attack_name(enum gen_attack a)
{
	return (unsigned)a < GEN_ATTACKS ? attack_names[a] : "?";
}

/* This worker's next attacker (index into ctx->attackers), or -1. */
static int64_t
next_attacker(struct gen_load *l)
{
	uint64_t j = l->atk_next;

	if (j >= l->ctx->n_attackers)
		return -1;
	l->atk_next += l->ctx->n_workers ? l->ctx->n_workers : 1;
	return (int64_t)j;
}

/* An attack payment: pay later, authorize, by attacker @p a. */
static void
attack_payment(struct gen_load *l, struct auth_req *r,
	       const struct gen_attacker *a, uint32_t merchant,
	       uint64_t device, int64_t amount)
{
	r->op = LIM_OP_AUTHORIZE;
	r->request_id = new_id(l);
	r->user_id = a->user_id;
	r->merchant_id = merchant;
	r->amount = amount;
	r->product = LIM_PRODUCT_PAYLATER;
	r->channel = chance(&l->rng, 50) ? AUTH_CHANNEL_QR : AUTH_CHANNEL_APP;
	r->mcc = 5999;
	r->region = a->region;
	r->device_id = device;
}

/* A crowd member's second payment, due GEN_AGAIN_DELAY_MS from now. */
static void
again_push(struct gen_load *l, uint64_t j, uint64_t device)
{
	uint32_t i = l->again_tail % GEN_AGAIN_MAX;

	if (l->again_tail - l->again_head == GEN_AGAIN_MAX)
		return; /* never at sane rates: the second payment is skipped */
	l->again[i].j = j;
	l->again[i].device = device;
	l->again[i].due_tsc = rte_rdtsc() +
			      l->ctx->tsc_hz / 1000 * GEN_AGAIN_DELAY_MS;
	l->again_tail++;
}

/* A second payment that is due: 100 yuan of what the first one left. */
static bool
again_pop(struct gen_load *l, struct auth_req *r, struct gen_sent *s)
{
	const struct gen_attacker *a;
	uint32_t i = l->again_head % GEN_AGAIN_MAX;

	if (l->again_head == l->again_tail || l->again[i].due_tsc > rte_rdtsc())
		return false;
	a = &l->ctx->attackers[l->again[i].j];
	attack_payment(l, r, a, any_merchant(l), l->again[i].device,
		       a->left_fen >= 10000 ? 10000
		       : a->left_fen > 0    ? a->left_fen
					    : 100);
	s->attack = GEN_ATTACK_CROWD_AGAIN;
	l->again_head++;
	return true;
}

/*
 * The next record of the script. Even draws: an unrelated user (a device
 * of its own) pays its near-limit round amount at the next colluding
 * merchant, so each of them sees one such payer after another and nothing
 * else. Odd draws walk a crowd: GEN_CROWD users on one device each pay
 * their near-limit round amount at an ordinary merchant, and each pays
 * again, 100 yuan, GEN_AGAIN_DELAY_MS later (the risk worker decides
 * asynchronously: by then a frozen member is declined USER_FROZEN). False
 * when this worker's attackers are used up.
 */
static bool
attack(struct gen_load *l, struct auth_req *r, struct gen_sent *s)
{
	const struct gen_ctx *c = l->ctx;
	const struct gen_attacker *a;
	int64_t j;

	if (l->atk_n % 2 == 0) {
		if ((j = next_attacker(l)) < 0)
			return false;
		a = &c->attackers[j];
		attack_payment(l, r, a, c->colluders[l->colluder_next++ %
						      c->n_colluders],
			       mix64(a->user_id ^ 0xdecafbadull), a->amount_fen);
		s->attack = GEN_ATTACK_MERCHANT;
		l->atk_n++;
		return true;
	}
	if (again_pop(l, r, s)) {
		l->atk_n++;
		return true;
	}
	if (l->crowd_step == 0) {
		for (unsigned k = 0; k < GEN_CROWD; k++) {
			if ((j = next_attacker(l)) < 0)
				return false;
			l->crowd[k] = (uint64_t)j;
		}
		l->crowd_device = gen_rng_next(&l->rng);
	}
	a = &c->attackers[l->crowd[l->crowd_step]];
	attack_payment(l, r, a, any_merchant(l), l->crowd_device, a->amount_fen);
	again_push(l, l->crowd[l->crowd_step], l->crowd_device);
	s->attack = GEN_ATTACK_CROWD;
	l->crowd_step = (l->crowd_step + 1) % GEN_CROWD;
	l->atk_n++;
	return true;
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
	if (l->cfg->profile == GEN_PROFILE_CASHOUT &&
	    chance(&l->rng, l->cfg->cashout_pct)) {
		if (attack(l, r, s)) {
			GEN_ADD(l->st->op_sent[r->op], 1);
			GEN_ADD(l->st->product_sent[r->product], 1);
			GEN_ADD(l->st->attack_sent[s->attack], 1);
			return;
		}
		GEN_ADD(l->st->c[GEN_C_attack_exhausted], 1);
	}
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
		authorize(l, r, s);
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
gen_load_count(struct gen_stats *st, const struct gen_sent *s,
	       const struct auth_resp *a)
{
	unsigned reason = a->reason < AUTH_REASONS ? a->reason : AUTH_REASONS;

	if (s->attack && s->attack < GEN_ATTACKS) {
		GEN_ADD(st->attack_status[s->attack][a->status < 3 ? a->status
								   : 2], 1);
		GEN_ADD(st->attack_reason[s->attack][reason], 1);
	}
	if (!s->hot || a->status != AUTH_STATUS_APPROVED)
		return;
	GEN_ADD(st->hot[GEN_HOT_APPROVED], 1);
	if (a->notes & AUTH_NOTE_INTEREST_FREE)
		GEN_ADD(st->hot[GEN_HOT_INTEREST_FREE], 1);
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
