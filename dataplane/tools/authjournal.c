/*
 * authjournal.c - read a ledger journal (docs/journal-format.md): dump its
 * records, verify it, summarise it, and rebuild the users' balances from a
 * snapshot plus the journal to compare them with another snapshot.
 *
 * Read-only: a torn tail is reported, never cut (authd cuts it at start).
 * Runs on a journal authd is writing: the end of the active segment may
 * then be reported as a torn tail.
 */
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <urcu-qsbr.h>

#include "journal.h"

#define EXIT_DAMAGE 1
#define EXIT_USAGE 2

static void
usage(FILE *f)
{
	fprintf(f,
"Usage: authjournal COMMAND DIR [options]\n"
"\n"
"Reads the ledger journal authd writes (--journal DIR): segment files\n"
"seg-<first seq>.jnl of 128-byte records, each sealed with a checksum, in\n"
"contiguous seq order, and journal.idx, the list of segments. Never writes.\n"
"\n"
"Commands:\n"
"  dump DIR [--from SEQ] [--to SEQ] [--json]\n"
"      print every record (one line each; --json: one JSON object per\n"
"      line) from seq SEQ on. Every record read is verified first.\n"
"  verify DIR [--strict]\n"
"      check every segment header, the chain between segments, the index\n"
"      and every record (checksum, kind, contiguous seq). Prints the seq\n"
"      range and counts. A torn tail (invalid bytes at the very end of the\n"
"      last segment, at most one write long: a crash while writing) is\n"
"      reported and is not an error, unless --strict. Damage anywhere else\n"
"      is printed as FILE:OFFSET: KIND: REASON.\n"
"  summary DIR [--snapshot FILE|DIR] [--check FILE2] [--users N]\n"
"          [--ops-max N] [--json]\n"
"      records by kind and the seq range; then the state authd would\n"
"      recover: the snapshot (the newest valid one of a DIR; none: from\n"
"      seq 1) plus every record after it, and the users' balances: totals\n"
"      and the N users with the largest debt + holds (default 10, 0: all).\n"
"      --check FILE2 compares every user's balances and the op entries with\n"
"      snapshot FILE2 (e.g. authctl snapshot save) and lists differences.\n"
"      --ops-max N sizes the op store as authd's option does (default:\n"
"      twice the snapshot's entries, at least 1048576): a journal holding\n"
"      more requests than that needs the value authd ran with.\n"
"\n"
"Exit status: 0 valid (and, with --check, equal); 1 damage found (or\n"
"--check found differences, or --strict and a torn tail); 2 usage or I/O\n"
"error.\n"
"\n"
"Examples:\n"
"  authjournal verify /var/lib/authd/journal\n"
"  authjournal dump /var/lib/authd/journal --from 1200000 | head\n"
"  authjournal summary /var/lib/authd/journal --snapshot base.snap \\\n"
"      --check /var/lib/authd/now.snap\n");
}

struct opts {
	const char *cmd, *dir;
	uint64_t from, to;
	bool json, strict;
	const char *snapshot, *check;
	uint64_t users;
	uint64_t ops_max;          /* summary: 0 = from the snapshot */
};

/* A whole number for option --@p name; false (with a message) if not. */
static bool
opt_u64(const char *name, const char *v, uint64_t *out)
{
	if (lim_parse_u64(v, UINT64_MAX, out) == 0)
		return true;
	fprintf(stderr, "authjournal: --%s %s: expected a whole number\n", name,
		v);
	return false;
}

static int
parse_args(int argc, char **argv, struct opts *o)
{
	static const struct option lo[] = {
		{"from", required_argument, NULL, 'f'},
		{"to", required_argument, NULL, 't'},
		{"json", no_argument, NULL, 'j'},
		{"strict", no_argument, NULL, 's'},
		{"snapshot", required_argument, NULL, 'S'},
		{"check", required_argument, NULL, 'c'},
		{"users", required_argument, NULL, 'u'},
		{"ops-max", required_argument, NULL, 'o'},
		{"help", no_argument, NULL, 'h'},
		{NULL, 0, NULL, 0},
	};
	int ch;

	memset(o, 0, sizeof(*o));
	o->to = UINT64_MAX;
	o->users = 10;
	if (argc >= 2 && (!strcmp(argv[1], "-h") || !strcmp(argv[1], "--help"))) {
		usage(stdout);
		exit(0);
	}
	if (argc < 3) {
		usage(stderr);
		return -EINVAL;
	}
	o->cmd = argv[1];
	o->dir = argv[2];
	optind = 3;
	while ((ch = getopt_long(argc, argv, "h", lo, NULL)) != -1) {
		switch (ch) {
		case 'f':
			if (!opt_u64("from", optarg, &o->from))
				return -EINVAL;
			break;
		case 't':
			if (!opt_u64("to", optarg, &o->to))
				return -EINVAL;
			break;
		case 'j': o->json = true; break;
		case 's': o->strict = true; break;
		case 'S': o->snapshot = optarg; break;
		case 'c': o->check = optarg; break;
		case 'u':
			if (!opt_u64("users", optarg, &o->users))
				return -EINVAL;
			break;
		case 'o':
			if (!opt_u64("ops-max", optarg, &o->ops_max))
				return -EINVAL;
			break;
		case 'h': usage(stdout); exit(0);
		default:
			fprintf(stderr, "authjournal: bad option (see --help)\n");
			return -EINVAL;
		}
	}
	if (optind < argc) {
		fprintf(stderr, "authjournal: unexpected '%s' (see --help)\n",
			argv[optind]);
		return -EINVAL;
	}
	return 0;
}

/* ------------------------------------------------------------------------ */
/* dump                                                                       */

static void
dump_money_text(const struct lim_effect *e)
{
	char a[32], b[32], c[32], d[32];

	printf("seq %" PRIu64 " %s user %" PRIu64 " gw %u req %" PRIu64,
	       e->seq, dp_journal_kind_name(e->kind), e->user_id, e->gateway_id,
	       e->request_id);
	if (e->ref_id)
		printf(" ref %" PRIu64, e->ref_id);
	printf(" amount %s status %u reason %u debt %s holds %s month %s"
	       " now %u", lim_fmt_yuan(e->amount_fen, a, sizeof(a)), e->status,
	       e->reason,
	       lim_fmt_yuan(e->d_outstanding_fen, b, sizeof(b)),
	       lim_fmt_yuan(e->d_holds_fen, c, sizeof(c)),
	       lim_fmt_yuan(e->d_month_fen, d, sizeof(d)), e->now_s);
	if (e->hold_expires_s)
		printf(" expires %u", e->hold_expires_s);
	if (e->group_id)
		printf(" group %u", e->group_id);
	if (e->funder_id)
		printf(" funder %u own %u%%", e->funder_id, e->own_share_pct);
	printf("\n");
}

static void
dump_cfg_text(const struct lim_cfg_effect *c)
{
	char a[32], b[32];

	printf("seq %" PRIu64 " %s id %" PRIu64 " uid %u now %u", c->seq,
	       dp_journal_kind_name(c->kind), c->id, c->uid, c->now_s);
	switch (c->kind) {
	case LIM_EFF_USER_SET:
		printf(" limit %s self_cap %s tier %u region %u flags 0x%x risk %u%s",
		       lim_fmt_yuan(c->u.user.limit_fen, a, sizeof(a)),
		       lim_fmt_yuan(c->u.user.self_cap_fen, b, sizeof(b)), c->u.user.tier,
		       c->u.user.region, c->u.user.flags, c->u.user.risk_q * 4u,
		       c->u.user.created ? " created" : "");
		break;
	case LIM_EFF_MERCHANT_SET:
		printf(" merchant %u flags 0x%x risk %u", c->u.merchant.merchant_id,
		       c->u.merchant.flags, c->u.merchant.risk_score);
		break;
	case LIM_EFF_FUNDER_SET:
		printf(" funder %u quota %s share %u%%", c->u.funder.funder_id,
		       lim_fmt_yuan(c->u.funder.quota_fen, a, sizeof(a)),
		       c->u.funder.share_pct);
		break;
	case LIM_EFF_POLICY_PART:
		printf(" part %u/%u", c->u.policy.part + 1u, c->u.policy.parts);
		break;
	default:
		break;
	}
	printf("\n");
}

static void
dump_json(const struct lim_effect *e)
{
	const struct lim_cfg_effect *c = (const void *)e;

	if (e->kind >= LIM_EFF_USER_SET) {
		printf("{\"seq\":%" PRIu64 ",\"kind\":\"%s\",\"id\":%" PRIu64
		       ",\"uid\":%u,\"now_s\":%u", c->seq,
		       dp_journal_kind_name(c->kind), c->id, c->uid, c->now_s);
		if (c->kind == LIM_EFF_USER_SET)
			printf(",\"limit_fen\":%" PRId64 ",\"self_cap_fen\":%" PRId64
			       ",\"tier\":%u,\"region\":%u,\"flags\":%u,"
			       "\"risk_q\":%u,\"created\":%u",
			       c->u.user.limit_fen, c->u.user.self_cap_fen,
			       c->u.user.tier, c->u.user.region, c->u.user.flags,
			       c->u.user.risk_q, c->u.user.created);
		printf(",\"check\":%u}\n", c->check);
		return;
	}
	printf("{\"seq\":%" PRIu64 ",\"kind\":\"%s\",\"user_id\":%" PRIu64
	       ",\"gateway_id\":%u,\"request_id\":%" PRIu64 ",\"ref_id\":%" PRIu64
	       ",\"now_s\":%u,\"op\":%u,\"product\":%u,\"terms\":%u,\"status\":%u,"
	       "\"reason\":%u,\"notes\":%u,\"amount_fen\":%" PRId64
	       ",\"available_fen\":%" PRId64 ",\"d_outstanding_fen\":%" PRId64
	       ",\"d_holds_fen\":%" PRId64 ",\"d_bucket_fen\":%" PRId64
	       ",\"d_month_fen\":%" PRId64 ",\"hold_expires_s\":%u,\"group_id\":%u"
	       ",\"funder_id\":%u,\"own_share_pct\":%u,\"check\":%u}\n",
	       e->seq, dp_journal_kind_name(e->kind), e->user_id, e->gateway_id,
	       e->request_id, e->ref_id, e->now_s, e->op, e->product, e->terms,
	       e->status, e->reason, e->notes, e->amount_fen, e->available_fen,
	       e->d_outstanding_fen, e->d_holds_fen, e->d_bucket_fen,
	       e->d_month_fen, e->hold_expires_s, e->group_id, e->funder_id,
	       e->own_share_pct, e->check);
}

static int
dump_one(const struct lim_effect *e, void *arg)
{
	const struct opts *o = arg;

	if (e->seq > o->to)
		return 1; /* done */
	if (o->json)
		dump_json(e);
	else if (e->kind >= LIM_EFF_USER_SET)
		dump_cfg_text((const struct lim_cfg_effect *)(const void *)e);
	else
		dump_money_text(e);
	return 0;
}

/* ------------------------------------------------------------------------ */

static int
scan_failed(int rc, const struct dp_journal_err *err, const char *dir)
{
	if (rc == -EBADMSG) {
		fprintf(stderr, "%s\n", err->why);
		return EXIT_DAMAGE;
	}
	if (rc == -ENOENT)
		fprintf(stderr, "authjournal: %s: no such directory\n", dir);
	else
		fprintf(stderr, "authjournal: %s\n",
			err->why[0] ? err->why : strerror(-rc));
	return EXIT_USAGE;
}

static void
torn_note(const struct dp_journal_scan *s, FILE *f)
{
	if (s->torn)
		fprintf(f, "torn tail: %s:%" PRIu64 ": %s (%" PRIu64 " bytes; authd "
			"cuts it at start)\n", s->torn_path, s->torn_off,
			s->torn_why, s->torn_bytes);
	if (s->index_stale)
		fprintf(f, "index: %s\n", s->index_note);
}

static int
cmd_dump(const struct opts *o)
{
	struct dp_journal_scan s;
	struct dp_journal_err err;
	int rc = dp_journal_scan(o->dir, o->from, 0, dump_one, (void *)o, &s,
				 &err);

	if (rc == 1)
		return 0;
	if (rc)
		return scan_failed(rc, &err, o->dir);
	torn_note(&s, stderr);
	return 0;
}

struct counts {
	uint64_t by_kind[LIM_EFF_KINDS];
	int64_t approved_fen;      /* AUTH amounts */
	uint32_t first_s, last_s;
};

static int
count_one(const struct lim_effect *e, void *arg)
{
	struct counts *c = arg;

	c->by_kind[e->kind]++;
	if (e->kind == LIM_EFF_AUTH)
		c->approved_fen += e->amount_fen;
	if (!c->first_s || e->now_s < c->first_s)
		c->first_s = e->now_s;
	if (e->now_s > c->last_s)
		c->last_s = e->now_s;
	return 0;
}

static void
print_counts(const struct dp_journal_scan *s, const struct counts *c)
{
	char a[32];

	printf("journal %016" PRIx64 ": %u segment(s), %" PRIu64 " bytes, seq %"
	       PRIu64 "..%" PRIu64 " (%" PRIu64 " records)\n", s->journal_id,
	       s->n_segments, s->bytes, s->first_seq, s->last_seq, s->records);
	for (unsigned k = 1; k < LIM_EFF_KINDS; k++)
		if (c->by_kind[k])
			printf("  %-13s %" PRIu64 "\n", dp_journal_kind_name(k),
			       c->by_kind[k]);
	printf("  approved authorizations: %s yuan\n",
	       lim_fmt_yuan(c->approved_fen, a, sizeof(a)));
}

static int
cmd_verify(const struct opts *o)
{
	struct dp_journal_scan s;
	struct dp_journal_err err;
	struct counts c;
	int rc;

	memset(&c, 0, sizeof(c));
	rc = dp_journal_scan(o->dir, 0, DP_JOURNAL_SCAN_ALL, count_one, &c, &s,
			     &err);
	if (rc)
		return scan_failed(rc, &err, o->dir);
	print_counts(&s, &c);
	torn_note(&s, stdout);
	printf("%s\n", s.torn ? "valid up to a torn tail" : "valid");
	return s.torn && o->strict ? EXIT_DAMAGE : 0;
}

/* ------------------------------------------------------------------------ */
/* summary                                                                    */

struct urow {
	uint64_t id;
	int64_t exposure;
	const struct lim_user *u;
};

static int
urow_cmp(const void *a, const void *b)
{
	const struct urow *x = a, *y = b;

	if (x->exposure != y->exposure)
		return x->exposure > y->exposure ? -1 : 1;
	return x->id < y->id ? -1 : x->id > y->id;
}

static void
print_users(struct lim_db *db, uint64_t limit, bool json)
{
	uint64_t n = lim_users_count(db->users), show;
	struct urow *v = malloc((n ? n : 1) * sizeof(*v));
	__int128 debt = 0, holds = 0;
	char a[32], b[32], c[32], d[32];

	if (!v)
		return;
	for (uint64_t i = 0; i < n; i++) {
		const struct lim_user *u = lim_users_at(db->users, i);

		v[i] = (struct urow){u->user_id, u->outstanding_fen + u->holds_fen, u};
		debt += u->outstanding_fen;
		holds += u->holds_fen;
	}
	qsort(v, n, sizeof(*v), urow_cmp);
	show = limit && limit < n ? limit : n;
	if (!json)
		printf("users %" PRIu64 ": debt %s yuan, holds %s yuan; op entries %"
		       PRIu64 "\n", n, lim_fmt_yuan((int64_t)debt, a, sizeof(a)),
		       lim_fmt_yuan((int64_t)holds, b, sizeof(b)), lim_ops_count(db->ops));
	for (uint64_t i = 0; i < show; i++) {
		const struct lim_user *u = v[i].u;

		if (json)
			printf("{\"user_id\":%" PRIu64 ",\"outstanding_fen\":%" PRId64
			       ",\"holds_fen\":%" PRId64 ",\"cash_fen\":%" PRId64
			       ",\"inst_fen\":%" PRId64 ",\"month_spend_fen\":%"
			       PRId64 ",\"limit_fen\":%" PRId64 "}\n", u->user_id,
			       u->outstanding_fen, u->holds_fen, u->cash_fen,
			       u->inst_fen, u->month_spend_fen, u->limit_fen);
		else
			printf("  user %" PRIu64 ": debt %s holds %s cash %s inst %s\n",
			       u->user_id, lim_fmt_yuan(u->outstanding_fen, a, sizeof(a)),
			       lim_fmt_yuan(u->holds_fen, b, sizeof(b)),
			       lim_fmt_yuan(u->cash_fen, c, sizeof(c)),
			       lim_fmt_yuan(u->inst_fen, d, sizeof(d)));
	}
	free(v);
}

/* Balances of every user of @p a against @p b; returns differences. */
static uint64_t
compare_users(struct lim_db *a, struct lim_db *b, const char *bname)
{
	uint64_t n = lim_users_count(a->users), diff = 0;
	char x[32], y[32];

	for (uint64_t i = 0; i < n; i++) {
		const struct lim_user *u = lim_users_at(a->users, i);
		const struct lim_user *v = lim_users_find(b->users, u->user_id);

		if (!v) {
			if (diff++ < 20)
				printf("  user %" PRIu64 ": not in %s\n", u->user_id,
				       bname);
			continue;
		}
		if (u->outstanding_fen != v->outstanding_fen ||
		    u->holds_fen != v->holds_fen || u->cash_fen != v->cash_fen ||
		    u->inst_fen != v->inst_fen ||
		    u->month_spend_fen != v->month_spend_fen ||
		    u->limit_fen != v->limit_fen) {
			if (diff++ < 20)
				printf("  user %" PRIu64 ": debt %s vs %s, holds %s "
				       "vs %s (and cash, inst, month, limit)\n",
				       u->user_id,
				       lim_fmt_yuan(u->outstanding_fen, x, sizeof(x)),
				       lim_fmt_yuan(v->outstanding_fen, y, sizeof(y)),
				       lim_fmt_yuan(u->holds_fen, x, sizeof(x)),
				       lim_fmt_yuan(v->holds_fen, y, sizeof(y)));
		}
	}
	if (lim_users_count(b->users) != n) {
		diff++;
		printf("  users: %" PRIu64 " rebuilt, %" PRIu64 " in %s\n", n,
		       lim_users_count(b->users), bname);
	}
	return diff;
}

static int
check_against(struct lim_db *db, const struct opts *o)
{
	struct lim_snapshot_meta meta;
	char err[512];
	struct lim_db *b = lim_snapshot_load(o->check, NULL, NULL, &meta, err,
					     sizeof(err));
	uint64_t diff;

	if (!b) {
		fprintf(stderr, "authjournal: --check %s\n", err);
		return EXIT_USAGE;
	}
	printf("check against %s (seq %" PRIu64 "..%" PRIu64 "):\n", o->check,
	       meta.seq_start, meta.seq_end);
	if (meta.seq_end != db->seq)
		printf("  note: %s was saved at seq %" PRIu64 ", the journal ends "
		       "at %" PRIu64 ": effects between differ\n", o->check,
		       meta.seq_end, db->seq);
	diff = compare_users(db, b, o->check);
	if (lim_ops_count(db->ops) != lim_ops_count(b->ops)) {
		printf("  op entries: %" PRIu64 " rebuilt, %" PRIu64 " in %s\n",
		       lim_ops_count(db->ops), lim_ops_count(b->ops), o->check);
		diff++;
	}
	printf("%s\n", diff ? "DIFFERENT" : "same balances");
	lim_snapshot_meta_free(&meta);
	lim_db_free(b);
	return diff ? EXIT_DAMAGE : 0;
}

static int
cmd_summary(const struct opts *o)
{
	struct dp_recover_opts ro = {.snapshot = o->snapshot,
				     .journal_dir = o->dir,
				     .db = {.users_max = 0, .ops_max = o->ops_max,
					    .shards = 4},
				     .cut_torn_tail = false,
				     .log = o->json ? NULL : stdout};
	struct dp_recover_result res;
	struct dp_journal_scan s;
	struct dp_journal_err jerr;
	struct counts c;
	char err[PATH_MAX + 512] = "";
	int rc;

	memset(&c, 0, sizeof(c));
	rc = dp_journal_scan(o->dir, 0, DP_JOURNAL_SCAN_ALL, count_one, &c, &s,
			     &jerr);
	if (rc)
		return scan_failed(rc, &jerr, o->dir);
	if (!o->json) {
		print_counts(&s, &c);
		torn_note(&s, stdout);
	}
	rc = dp_recover(&ro, &res, err, sizeof(err));
	if (rc) {
		fprintf(stderr, "authjournal: %s\n", err);
		return rc == -EBADMSG ? EXIT_DAMAGE : EXIT_USAGE;
	}
	print_users(res.db, o->users, o->json);
	rc = o->check ? check_against(res.db, o) : 0;
	dp_recover_free(&res);
	lim_db_free(res.db);
	return rc;
}

int
main(int argc, char **argv)
{
	struct opts o;
	int rc;

	if (parse_args(argc, argv, &o))
		return EXIT_USAGE;
	rcu_register_thread();
	if (!strcmp(o.cmd, "dump"))
		rc = cmd_dump(&o);
	else if (!strcmp(o.cmd, "verify"))
		rc = cmd_verify(&o);
	else if (!strcmp(o.cmd, "summary"))
		rc = cmd_summary(&o);
	else {
		fprintf(stderr, "authjournal: unknown command '%s' (see --help)\n",
			o.cmd);
		rc = EXIT_USAGE;
	}
	rcu_unregister_thread();
	return rc;
}
