/*
 * names.c - printable names of reason codes, drop causes, operations and
 * products.
 *
 * Design note: every table here is generated from the X-macro lists in
 * auth.h (AUTH_FOREACH_REASON, AUTH_FOREACH_DROP, AUTH_FOREACH_OP,
 * AUTH_FOREACH_PRODUCT), so a code added there gets
 * its name here without a second edit, and the enum and its strings cannot
 * drift apart. The tables are constant and the lookups pure: any thread.
 * Out-of-range values give "?" rather than reading past a table, because the
 * codes come from counters and logs as well as from the enums.
 */
#include "auth_pvt.h"

static const char *const auth_reason_names[AUTH_REASONS] = {
#define AUTH_REASON_NAME(code, name) [code] = #name,
	AUTH_FOREACH_REASON(AUTH_REASON_NAME)
#undef AUTH_REASON_NAME
};

static const char *const auth_drop_names[AUTH_DROPS] = {
	[AUTH_DROP_NONE] = "none",
#define AUTH_DROP_NAME(cause, name, text) [AUTH_DROP_##cause] = name,
	AUTH_FOREACH_DROP(AUTH_DROP_NAME)
#undef AUTH_DROP_NAME
};

/* The codes are the wire's, the same as limits' enums. */
_Static_assert((int)AUTH_OP_AUTHORIZE == (int)LIM_OP_AUTHORIZE &&
	       (int)AUTH_OP_REPAY == (int)LIM_OP_REPAY,
	       "auth_op codes are lim_opcode codes");
_Static_assert((int)AUTH_PRODUCT_PAYLATER == (int)LIM_PRODUCT_PAYLATER &&
	       (int)AUTH_PRODUCT_CASH == (int)LIM_PRODUCT_CASH,
	       "auth_product codes are lim_product codes");

static const char *const auth_op_names[AUTH_OPS] = {
	[AUTH_OP_OTHER] = "other",
#define AUTH_OP_NAME(code, sym, name) [code] = name,
	AUTH_FOREACH_OP(AUTH_OP_NAME)
#undef AUTH_OP_NAME
};

static const char *const auth_product_names[AUTH_PRODUCTS] = {
	[AUTH_PRODUCT_OTHER] = "other",
#define AUTH_PRODUCT_NAME(code, sym, name) [code] = name,
	AUTH_FOREACH_PRODUCT(AUTH_PRODUCT_NAME)
#undef AUTH_PRODUCT_NAME
};

static const char *const auth_drop_texts[AUTH_DROPS] = {
	[AUTH_DROP_NONE] = "accepted",
#define AUTH_DROP_TEXT(cause, name, text) [AUTH_DROP_##cause] = text,
	AUTH_FOREACH_DROP(AUTH_DROP_TEXT)
#undef AUTH_DROP_TEXT
};

const char *
auth_reason_name(unsigned reason)
{
	/* The list may have gaps one day: an unnamed slot is NULL. */
	if (reason >= AUTH_REASONS || !auth_reason_names[reason])
		return "?";
	return auth_reason_names[reason];
}

const char *
auth_drop_name(enum auth_drop d)
{
	if ((unsigned)d >= AUTH_DROPS)
		return "?";
	return auth_drop_names[d];
}

const char *
auth_drop_text(enum auth_drop d)
{
	if ((unsigned)d >= AUTH_DROPS)
		return "?";
	return auth_drop_texts[d];
}

const char *
auth_op_name(unsigned op)
{
	if (op >= AUTH_OPS || !auth_op_names[op])
		return auth_op_names[AUTH_OP_OTHER];
	return auth_op_names[op];
}

const char *
auth_product_name(unsigned product)
{
	if (product >= AUTH_PRODUCTS || !auth_product_names[product])
		return auth_product_names[AUTH_PRODUCT_OTHER];
	return auth_product_names[product];
}
