/*
 * policy_file.c - authd --policy FILE: the policy as an INI file.
 *
 * The file has one [policy] section whose keys are exactly those of
 * `authctl policy set` (ceiling, tz, hold-ttl, tier.N.vel-min-n, ...; the
 * table is in ctl_proto.h), with the same value syntax, so
 * `authctl policy show --ini` writes a file this reads back. Keys that are
 * not in the file keep their current value (the snapshot's, else the
 * built-in defaults of limits/policy.c).
 *
 * Errors name the file and line (a bad key or value, a line outside
 * [policy]) or the file alone (the policy as a whole fails
 * lim_policy_check()). Nothing is applied unless the whole file is good.
 *
 * Called once at start-up, before the dataplane lcores run.
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include <ini.h>
#include <urcu-qsbr.h>

#include "ctl_proto.h"
#include "dp.h"

struct pf_state {
	struct lim_policy *p;
	char why[320];
	bool failed;
};

static int
pf_line(void *user, const char *section, const char *name, const char *value)
{
	struct pf_state *st = user;

	if (st->failed)
		return 1; /* keep the first error: its line is the one to fix */
	if (strcmp(section, "policy")) {
		snprintf(st->why, sizeof(st->why), "%s: outside the [policy] section", name);
		st->failed = true;
		return 0;
	}
	if (ctl_policy_set_kv(st->p, name, value, st->why, sizeof(st->why))) {
		st->failed = true;
		return 0;
	}
	return 1;
}

/**
 * Read policy file @p path over @p p (which holds the current policy).
 * @return 0, or -ENOENT / -EINVAL with "file:line: why" in @p err.
 */
static int
policy_file_parse(const char *path, struct lim_policy *p, char *err, size_t n)
{
	struct pf_state st = {.p = p};
	int line, rc = dp_ini_parse(path, pf_line, &st, &line);

	if (rc == DP_INI_OPEN) {
		snprintf(err, n, "%s: cannot open: %s", path, strerror(errno));
		return -ENOENT;
	}
	if (rc == DP_INI_LONG) {
		snprintf(err, n, "%s:%d: line longer than %d characters", path,
			 line, DP_INI_LINE_MAX);
		return -EINVAL;
	}
	if (rc != DP_INI_OK) {
		snprintf(err, n, "%s:%d: %s", path, line,
			 rc == DP_INI_HANDLER ? st.why
			 : "syntax error (expected [policy] or key = value)");
		return -EINVAL;
	}
	if (lim_policy_check(p, st.why, sizeof(st.why))) {
		snprintf(err, n, "%s: %s", path, st.why);
		return -EINVAL;
	}
	return 0;
}

int
dp_policy_file_load(struct lim_db *db, const char *path, char *err, size_t n)
{
	struct lim_policy p = *lim_policy_get(db);
	int rc = policy_file_parse(path, &p, err, n);

	if (rc)
		return rc;
	/* The old policy goes through call_rcu: a registered, online thread. */
	rcu_register_thread();
	rc = lim_policy_set(db, &p);
	rcu_unregister_thread();
	if (rc == -ERANGE)
		snprintf(err, n, "%s: ceiling below what the snapshot has lent", path);
	else if (rc)
		snprintf(err, n, "%s: cannot apply the policy: %s", path, strerror(-rc));
	return rc;
}
