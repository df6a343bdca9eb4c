/*
 * names.c - printable names of reason codes and drop causes.
 *
 * Design note: every table here is generated from the X-macro lists in
 * auth.h (AUTH_FOREACH_REASON, AUTH_FOREACH_DROP), so a code added there gets
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
