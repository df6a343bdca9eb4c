/*
 * authdb - make, inspect, verify, import, export and measure snapshots of
 * the credit state (docs/snapshot-format.md).
 *
 * One process, one thread: it registers as a QSBR reader (the tables ask
 * for it) and stays online. Progress goes to stderr when stderr is a
 * terminal or --progress is given; results go to stdout; errors to stderr
 * with exit status 1 (2 for a usage error).
 */
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <urcu-qsbr.h>

#include "lim.h"

#define EXIT_USAGE 2
#define ERR_LEN 512

static bool show_progress;
static const char *progress_what = "";
static double users_done_at;   /* when the load's user phase ended */

/* ---- help ---------------------------------------------------------------- */

static const char help_main[] =
"NAME\n"
"    authdb - make, inspect, verify, import, export and measure credit-state\n"
"    snapshots of authd\n"
"\n"
"SYNOPSIS\n"
"    authdb COMMAND [OPTIONS] [ARGS]\n"
"    authdb COMMAND --help\n"
"\n"
"COMMANDS\n"
"    gen         make a synthetic base of N users (deterministic from a seed)\n"
"    info        show a snapshot's header and sections; checksums verified\n"
"    verify      load a snapshot completely, as authd would; exit 0 or 1\n"
"    import      make a snapshot from users (and merchants) CSV files\n"
"    export      write the users of a snapshot as CSV (for the Redis peer)\n"
"    mem         measure the memory per user of the tables\n"
"    bench-load  load a snapshot repeatedly and report users per second\n"
"\n"
"DESCRIPTION\n"
"    A snapshot holds every table of the engine: policy, funders, users and\n"
"    their stamps, user extensions, merchants, groups and op entries, each\n"
"    section checksummed (xxh3-64). The format is in docs/snapshot-format.md.\n"
"\n"
"COMMON OPTIONS\n"
"    --progress  show progress on stderr even when it is not a terminal\n"
"    -h, --help  show the help of the command\n"
"\n"
"EXIT STATUS\n"
"    0 success, 1 failure (the message says what and where), 2 usage error.\n";

static const char help_gen[] =
"NAME\n"
"    authdb gen - make a synthetic base of users, merchants, groups, funders\n"
"\n"
"SYNOPSIS\n"
"    authdb gen --users N [--merchants M] [--seed S] [--now UNIX]\n"
"               [--shards K] --out FILE\n"
"\n"
"DESCRIPTION\n"
"    Builds the base in memory and saves it as a snapshot. The same seed\n"
"    gives the same base on every machine. User ids are a seeded permutation\n"
"    of 1..2^63-1 (lim_gen_user_id(seed, index)), so a load generator can\n"
"    enumerate them without the file; merchant ids likewise in 1..2^31-1.\n"
"    Users: tiers 0-7 (32% new users in 0-1), limits 500-50,000 yuan in round\n"
"    amounts, 300 regions with a few big ones, 60% with a monthly self cap\n"
"    (a quarter soft), 5% with a temporary quota for 30 days from --now, 1%\n"
"    in family groups of 2-6 with a monthly budget. Merchants: 10% offer\n"
"    interest-free installments, 0.1% blocked. Funders: the company (quota =\n"
"    the ceiling), a national bank (70%) and three regional banks. All\n"
"    balances are zero. Prints what it wrote and the time taken.\n"
"\n"
"OPTIONS\n"
"    --users N      users, 1..4294967295; suffixes k (10^3), M (10^6), G\n"
"    --merchants M  merchants (default: users/10, at least 100); suffixes too\n"
"    --seed S       the seed (default 1)\n"
"    --now UNIX     unix time the temporary quotas start (default: now)\n"
"    --shards K     budget shards recorded in the file (default 4)\n"
"    --out FILE     the snapshot to write (replaced atomically)\n"
"\n"
"EXAMPLES\n"
"    authdb gen --users 10M --seed 7 --out /var/lib/authd/base.snap\n";

static const char help_info[] =
"NAME\n"
"    authdb info - show a snapshot's header and sections\n"
"\n"
"SYNOPSIS\n"
"    authdb info [--json] FILE\n"
"\n"
"DESCRIPTION\n"
"    Reads the header and the section table and verifies every checksum\n"
"    (header, table, each section); records are not loaded (use verify).\n"
"    Prints the format version, creation time, the ledger sequence range\n"
"    the snapshot covers, each section (type, record size, count, offset,\n"
"    length, checksum) and the file bytes per user.\n"
"\n"
"OPTIONS\n"
"    --json   one JSON object on stdout instead of text\n"
"\n"
"EXIT STATUS\n"
"    0 when every checksum matches; 1 otherwise, with the byte offset.\n";

static const char help_verify[] =
"NAME\n"
"    authdb verify - load a snapshot completely and report\n"
"\n"
"SYNOPSIS\n"
"    authdb verify [--progress] FILE\n"
"\n"
"DESCRIPTION\n"
"    Loads FILE exactly as authd does at start: header, section table and\n"
"    every checksum first, then every record (ids unique and non-zero,\n"
"    amounts in range, states valid, funder table and policy consistent),\n"
"    then derives the lending ceiling and funder quotas in use and checks\n"
"    them against their totals.\n"
"\n"
"EXIT STATUS\n"
"    0 when the file loads; 1 otherwise, with the byte offset and reason,\n"
"    e.g. \"base.snap: offset 4096: section 'users' checksum mismatch\".\n";

static const char help_import[] =
"NAME\n"
"    authdb import - make a snapshot from CSV files\n"
"\n"
"SYNOPSIS\n"
"    authdb import --users U.csv [--merchants M.csv] [--shards K] --out FILE\n"
"\n"
"DESCRIPTION\n"
"    Each CSV has a header line naming its columns, in any order. Unknown or\n"
"    repeated columns, duplicate ids and out-of-range values are refused\n"
"    with file:line, the column and the reason, and nothing is written.\n"
"\n"
"    Users columns: user_id (required); limit_fen or limit_yuan (required;\n"
"    yuan with at most 2 decimals, parsed exactly); tier (0-7); region\n"
"    (0-65535); self_cap_fen|self_cap_yuan; soft_cap (0/1); frozen (0/1);\n"
"    temp_quota_fen|temp_quota_yuan with temp_until (unix seconds or ISO\n"
"    8601 UTC, e.g. 2026-11-11T00:00:00Z); cash_limit_fen|cash_limit_yuan;\n"
"    alert_fen|alert_yuan; outstanding_fen (debt carried over, taken from\n"
"    the lending ceiling); risk (0-1000). An empty optional field is unset.\n"
"\n"
"    Merchants columns: merchant_id (required); mcc (0-9999); region;\n"
"    blocked (0/1); subsidy (interest-free terms, e.g. 3|6|12, or empty);\n"
"    risk (0-1000).\n"
"\n"
"    The funder table and policy are the defaults (the company alone).\n";

static const char help_export[] =
"NAME\n"
"    authdb export - write the users of a snapshot as CSV\n"
"\n"
"SYNOPSIS\n"
"    authdb export FILE --users-csv OUT\n"
"\n"
"DESCRIPTION\n"
"    Loads FILE (fully verified) and writes one line per user, in slot\n"
"    order, with the header user_id,limit_fen,outstanding_fen,holds_fen.\n"
"    This is what the Redis peer loader reads (perf/redis). OUT \"-\" is\n"
"    standard output; otherwise OUT is written to a temporary file and\n"
"    renamed.\n";

static const char help_mem[] =
"NAME\n"
"    authdb mem - measure the memory per user\n"
"\n"
"SYNOPSIS\n"
"    authdb mem --users N [--seed S]\n"
"\n"
"DESCRIPTION\n"
"    Builds N users in memory as gen does (table sized for exactly N users,\n"
"    the densest index the table allows) and prints the measured bytes per\n"
"    user of the user table (slots and index) and of the whole database\n"
"    (growth of the resident set: tables, extensions, merchants, groups).\n"
"    The design target is at most 100 bytes per user.\n";

static const char help_bench[] =
"NAME\n"
"    authdb bench-load - measure the snapshot load rate\n"
"\n"
"SYNOPSIS\n"
"    authdb bench-load [--runs N] FILE\n"
"\n"
"DESCRIPTION\n"
"    Loads FILE N times (default 5), freeing the database between runs, and\n"
"    prints users per second for each run and the best and median: for the\n"
"    whole load (extensions, merchants, groups, op entries and budgets\n"
"    included) and up to the end of the users section (header, every\n"
"    checksum, users and their stamps). Run it\n"
"    on a Release build with the file in the page cache (the first run\n"
"    reads it in).\n";

/* ---- helpers ------------------------------------------------------------- */

__attribute__((format(printf, 1, 2), noreturn)) static void
die(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	fprintf(stderr, "authdb: ");
	vfprintf(stderr, fmt, ap);
	fputc('\n', stderr);
	va_end(ap);
	exit(EXIT_FAILURE);
}

__attribute__((format(printf, 2, 3), noreturn)) static void
usage(const char *cmd, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	fprintf(stderr, "authdb %s: ", cmd);
	vfprintf(stderr, fmt, ap);
	fprintf(stderr, "\nTry 'authdb %s --help'.\n", cmd);
	va_end(ap);
	exit(EXIT_USAGE);
}

static double
now_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* A count (lim_parse_count: k/M/G suffixes) of at most @p max. */
static uint64_t
parse_count(const char *cmd, const char *opt, const char *s, uint64_t max)
{
	uint64_t v = 0;
	int rc = lim_parse_count(s, max, &v);

	if (rc == -ERANGE)
		usage(cmd, "%s: '%s' is too large (at most %llu)", opt, s,
		      (unsigned long long)max);
	if (rc)
		usage(cmd, "%s: '%s' is not a number (suffixes: k, M, G)", opt,
		      s);
	return v;
}

static double now_s(void);

static void
progress_cb(uint64_t done, uint64_t total)
{
	if (done == total)
		users_done_at = now_s();
	if (!show_progress)
		return;
	fprintf(stderr, "\r%s: %" PRIu64 " / %" PRIu64 " users (%u%%)",
		progress_what, done, total,
		total ? (unsigned)(done * 100 / total) : 100);
	if (done == total)
		fputc('\n', stderr);
	fflush(stderr);
}

__attribute__((noreturn)) static void
print_help(const char *text)
{
	fputs(text, stdout);
	exit(EXIT_SUCCESS);
}

enum { OPT_PROGRESS = 256, OPT_JSON, OPT_USERS, OPT_MERCHANTS, OPT_SEED,
       OPT_NOW, OPT_OUT, OPT_SHARDS, OPT_USERS_CSV, OPT_RUNS };

#define COMMON_OPTS                                                            \
	{"help", no_argument, NULL, 'h'},                                      \
	{"progress", no_argument, NULL, OPT_PROGRESS}

static struct lim_db *
load_or_die(const char *path, struct lim_snapshot_meta *meta)
{
	char err[ERR_LEN];
	struct lim_db *db;

	progress_what = "loading";
	db = lim_snapshot_load(path, NULL, progress_cb, meta, err, sizeof(err));
	if (!db)
		die("%s", err);
	return db;
}

/* ---- gen ----------------------------------------------------------------- */

static int
cmd_gen(int argc, char **argv)
{
	static const struct option opts[] = {
		COMMON_OPTS,
		{"users", required_argument, NULL, OPT_USERS},
		{"merchants", required_argument, NULL, OPT_MERCHANTS},
		{"seed", required_argument, NULL, OPT_SEED},
		{"now", required_argument, NULL, OPT_NOW},
		{"shards", required_argument, NULL, OPT_SHARDS},
		{"out", required_argument, NULL, OPT_OUT},
		{NULL, 0, NULL, 0}};
	struct lim_gen_config g = {.seed = 1, .now_s = (uint32_t)time(NULL)};
	struct lim_db_config cfg = {.ops_max = 1024, .shards = 4};
	const char *out = NULL;
	char err[ERR_LEN];
	struct lim_db *db;
	double t0, t1, t2;
	int c;

	while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
		switch (c) {
		case 'h': print_help(help_gen);
		case OPT_PROGRESS: show_progress = true; break;
		case OPT_USERS:
			g.users = parse_count("gen", "--users", optarg, UINT64_MAX);
			break;
		case OPT_MERCHANTS:
			g.merchants = parse_count("gen", "--merchants", optarg,
						   UINT64_MAX);
			break;
		case OPT_SEED:
			g.seed = parse_count("gen", "--seed", optarg, UINT64_MAX);
			break;
		case OPT_NOW:
			g.now_s = (uint32_t)parse_count("gen", "--now", optarg,
						      UINT32_MAX);
			break;
		case OPT_SHARDS:
			cfg.shards = (unsigned)parse_count("gen", "--shards",
							   optarg, UINT32_MAX);
			break;
		case OPT_OUT: out = optarg; break;
		default: usage("gen", "unknown option");
		}
	}
	if (optind != argc)
		usage("gen", "unexpected argument '%s'", argv[optind]);
	if (g.users == 0 || g.users > UINT32_MAX)
		usage("gen", "--users N is required, 1..4294967295");
	if (!out)
		usage("gen", "--out FILE is required");
	if (cfg.shards == 0 || cfg.shards > LIM_SHARDS_MAX)
		usage("gen", "--shards must be 1..%u", LIM_SHARDS_MAX);
	cfg.users_max = g.users + g.users / 16 + 1024;
	if (cfg.users_max > UINT32_MAX)
		cfg.users_max = UINT32_MAX;
	cfg.merchants_max = lim_gen_merchants(&g);
	cfg.groups_max = g.users / 400 + 1;
	t0 = now_s();
	db = lim_db_create(&cfg);
	if (!db)
		die("cannot create a database for %" PRIu64 " users", g.users);
	progress_what = "generating";
	if (lim_gen_fill(db, &g, progress_cb, err, sizeof(err)))
		die("gen: %s", err);
	t1 = now_s();
	if (lim_snapshot_save(db, out, err, sizeof(err)))
		die("%s", err);
	t2 = now_s();
	printf("wrote %s: %" PRIu64 " users (%" PRIu64 " with extensions), "
	       "%" PRIu64 " merchants, %" PRIu64 " groups, %u funders; seed %"
	       PRIu64 "\n", out, lim_users_count(db->users),
	       lim_kv_count(db->ext), lim_kv_count(db->merchants),
	       lim_kv_count(db->groups), lim_funders_get(db)->n, g.seed);
	printf("generated in %.2f s, saved in %.2f s\n", t1 - t0, t2 - t1);
	lim_db_free(db);
	return 0;
}

/* ---- info ---------------------------------------------------------------- */

static uint64_t
info_users(const struct lim_snapshot_info *in)
{
	for (unsigned i = 0; i < in->n_sections; i++)
		if (strcmp(in->sec[i].name, "users") == 0)
			return in->sec[i].count;
	return 0;
}

static void
info_text(const char *path, const struct lim_snapshot_info *in)
{
	time_t t = (time_t)in->created_s;
	uint64_t users = info_users(in);
	char when[64];
	struct tm tm;

	strftime(when, sizeof(when), "%Y-%m-%dT%H:%M:%SZ", gmtime_r(&t, &tm));
	printf("%s: authd snapshot, format version %u\n", path, in->version);
	printf("  created     %s (%" PRIu64 ")\n", when, in->created_s);
	printf("  ledger seq  %" PRIu64 " .. %" PRIu64 "\n", in->seq_start,
	       in->seq_end);
	printf("  shards      %u\n", in->shards);
	printf("  file bytes  %" PRIu64 "\n", in->file_bytes);
	printf("  sections    %u, checksums verified (xxh3-64)\n",
	       in->n_sections);
	printf("    %-12s %6s %12s %12s %12s  %s\n", "type", "rec", "count",
	       "offset", "length", "checksum");
	for (unsigned i = 0; i < in->n_sections; i++) {
		const struct lim_snapshot_section *s = &in->sec[i];

		printf("    %-12s %6u %12" PRIu64 " %12" PRIu64 " %12" PRIu64
		       "  %016" PRIx64 "\n", s->name, s->record_size, s->count,
		       s->offset, s->length, s->checksum);
	}
	if (users)
		printf("  bytes/user  %.1f\n", (double)in->file_bytes / users);
}

static void
info_json(const char *path, const struct lim_snapshot_info *in)
{
	uint64_t users = info_users(in);

	printf("{\"file\":\"");
	for (const char *p = path; *p; p++) {
		if (*p == '"' || *p == '\\')
			putchar('\\');
		if ((unsigned char)*p < 0x20)
			printf("\\u%04x", *p);
		else
			putchar(*p);
	}
	printf("\",\"version\":%u,\"created_s\":%" PRIu64 ",\"seq_start\":%"
	       PRIu64 ",\"seq_end\":%" PRIu64 ",\"shards\":%u,\"file_bytes\":%"
	       PRIu64 ",\"checksums_ok\":true,\"bytes_per_user\":%.1f,"
	       "\"sections\":[", in->version, in->created_s, in->seq_start,
	       in->seq_end, in->shards, in->file_bytes,
	       users ? (double)in->file_bytes / users : 0.0);
	for (unsigned i = 0; i < in->n_sections; i++) {
		const struct lim_snapshot_section *s = &in->sec[i];

		printf("%s{\"type\":\"%s\",\"record_size\":%u,\"count\":%" PRIu64
		       ",\"offset\":%" PRIu64 ",\"length\":%" PRIu64
		       ",\"checksum\":\"%016" PRIx64 "\"}", i ? "," : "",
		       s->name, s->record_size, s->count, s->offset, s->length,
		       s->checksum);
	}
	printf("]}\n");
}

static int
cmd_info(int argc, char **argv)
{
	static const struct option opts[] = {
		COMMON_OPTS, {"json", no_argument, NULL, OPT_JSON},
		{NULL, 0, NULL, 0}};
	struct lim_snapshot_info info;
	char err[ERR_LEN];
	bool json = false;
	int c;

	while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
		switch (c) {
		case 'h': print_help(help_info);
		case OPT_PROGRESS: break;
		case OPT_JSON: json = true; break;
		default: usage("info", "unknown option");
		}
	}
	if (optind + 1 != argc)
		usage("info", "one FILE expected");
	if (lim_snapshot_inspect(argv[optind], &info, err, sizeof(err)))
		die("%s", err);
	if (json)
		info_json(argv[optind], &info);
	else
		info_text(argv[optind], &info);
	return 0;
}

/* ---- verify -------------------------------------------------------------- */

static int
cmd_verify(int argc, char **argv)
{
	static const struct option opts[] = {COMMON_OPTS, {NULL, 0, NULL, 0}};
	struct lim_snapshot_meta meta;
	struct lim_db *db;
	double t0;
	int c;

	while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
		switch (c) {
		case 'h': print_help(help_verify);
		case OPT_PROGRESS: show_progress = true; break;
		default: usage("verify", "unknown option");
		}
	}
	if (optind + 1 != argc)
		usage("verify", "one FILE expected");
	t0 = now_s();
	db = load_or_die(argv[optind], &meta);
	printf("%s: OK: %" PRIu64 " users, %" PRIu64 " extensions, %" PRIu64
	       " merchants, %" PRIu64 " groups, %" PRIu64 " op entries, %u "
	       "funders; ledger seq %" PRIu64 "..%" PRIu64 "; ceiling in use %"
	       PRId64 " fen; loaded in %.2f s\n", argv[optind],
	       lim_users_count(db->users), lim_kv_count(db->ext),
	       lim_kv_count(db->merchants), lim_kv_count(db->groups),
	       lim_ops_count(db->ops), lim_funders_get(db)->n, meta.seq_start,
	       meta.seq_end,
	       lim_budget_total(db->cap) - lim_budget_free_fen(db->cap),
	       now_s() - t0);
	lim_snapshot_meta_free(&meta);
	lim_db_free(db);
	return 0;
}

/* ---- import -------------------------------------------------------------- */

/* Lines in @p path (an upper bound of its records), or dies. */
static uint64_t
count_lines(const char *path)
{
	FILE *f = fopen(path, "r");
	char buf[1 << 16];
	uint64_t n = 0;
	size_t k;

	if (!f)
		die("%s: %s", path, strerror(errno));
	while ((k = fread(buf, 1, sizeof(buf), f)) > 0)
		for (size_t i = 0; i < k; i++)
			n += buf[i] == '\n';
	if (ferror(f))
		die("%s: read: %s", path, strerror(errno));
	fclose(f);
	return n + 1;
}

static int
cmd_import(int argc, char **argv)
{
	static const struct option opts[] = {
		COMMON_OPTS,
		{"users", required_argument, NULL, OPT_USERS},
		{"merchants", required_argument, NULL, OPT_MERCHANTS},
		{"shards", required_argument, NULL, OPT_SHARDS},
		{"out", required_argument, NULL, OPT_OUT},
		{NULL, 0, NULL, 0}};
	const char *users = NULL, *merchants = NULL, *out = NULL;
	struct lim_db_config cfg = {.ops_max = 1024, .shards = 4};
	uint64_t nu = 0, nm = 0;
	char err[ERR_LEN];
	struct lim_db *db;
	int c;

	while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
		switch (c) {
		case 'h': print_help(help_import);
		case OPT_PROGRESS: show_progress = true; break;
		case OPT_USERS: users = optarg; break;
		case OPT_MERCHANTS: merchants = optarg; break;
		case OPT_SHARDS:
			cfg.shards = (unsigned)parse_count("import", "--shards",
							   optarg, UINT32_MAX);
			break;
		case OPT_OUT: out = optarg; break;
		default: usage("import", "unknown option");
		}
	}
	if (optind != argc)
		usage("import", "unexpected argument '%s'", argv[optind]);
	if (!users || !out)
		usage("import", "--users U.csv and --out FILE are required");
	if (cfg.shards == 0 || cfg.shards > LIM_SHARDS_MAX)
		usage("import", "--shards must be 1..%u", LIM_SHARDS_MAX);
	cfg.users_max = count_lines(users);
	cfg.users_max += cfg.users_max / 16 + 1024;
	cfg.merchants_max = merchants ? count_lines(merchants) : 64;
	cfg.groups_max = 64;
	db = lim_db_create(&cfg);
	if (!db)
		die("cannot create a database for %" PRIu64 " users",
		    cfg.users_max);
	if (lim_csv_import_users(db, users, &nu, err, sizeof(err)))
		die("%s", err);
	if (merchants &&
	    lim_csv_import_merchants(db, merchants, &nm, err, sizeof(err)))
		die("%s", err);
	if (lim_snapshot_save(db, out, err, sizeof(err)))
		die("%s", err);
	printf("wrote %s: %" PRIu64 " users (%" PRIu64 " with extensions), %"
	       PRIu64 " merchants\n", out, nu, lim_kv_count(db->ext), nm);
	lim_db_free(db);
	return 0;
}

/* ---- export -------------------------------------------------------------- */

/* Decimal digits of @p v (may be negative) at @p p; returns the length. */
static size_t
put_i64(char *p, int64_t v)
{
	char tmp[24];
	uint64_t u = v < 0 ? 0 - (uint64_t)v : (uint64_t)v;
	size_t n = 0, k = 0;

	do {
		tmp[n++] = (char)('0' + u % 10);
		u /= 10;
	} while (u);
	if (v < 0)
		p[k++] = '-';
	while (n)
		p[k++] = tmp[--n];
	return k;
}

static void
export_users(struct lim_db *db, FILE *f, const char *name)
{
	uint64_t n = lim_users_count(db->users);
	char line[128];

	fputs("user_id,limit_fen,outstanding_fen,holds_fen\n", f);
	for (uint64_t i = 0; i < n; i++) {
		const struct lim_user *u = lim_users_at(db->users, i);
		size_t k = (size_t)sprintf(line, "%" PRIu64 ",", u->user_id);

		k += put_i64(line + k, u->limit_fen);
		line[k++] = ',';
		k += put_i64(line + k, u->outstanding_fen);
		line[k++] = ',';
		k += put_i64(line + k, u->holds_fen);
		line[k++] = '\n';
		if (fwrite(line, 1, k, f) != k)
			die("%s: write: %s", name, strerror(errno));
	}
}

static int
cmd_export(int argc, char **argv)
{
	static const struct option opts[] = {
		COMMON_OPTS, {"users-csv", required_argument, NULL, OPT_USERS_CSV},
		{NULL, 0, NULL, 0}};
	const char *out = NULL;
	char tmp[4096];
	struct lim_db *db;
	FILE *f;
	int c;

	while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
		switch (c) {
		case 'h': print_help(help_export);
		case OPT_PROGRESS: show_progress = true; break;
		case OPT_USERS_CSV: out = optarg; break;
		default: usage("export", "unknown option");
		}
	}
	if (optind + 1 != argc || !out)
		usage("export", "FILE and --users-csv OUT are required");
	db = load_or_die(argv[optind], NULL);
	if (strcmp(out, "-") == 0) {
		export_users(db, stdout, "stdout");
		if (fflush(stdout) != 0)
			die("stdout: %s", strerror(errno));
	} else {
		if (snprintf(tmp, sizeof(tmp), "%s.tmp", out) >= (int)sizeof(tmp))
			die("%s: path too long", out);
		f = fopen(tmp, "w");
		if (!f)
			die("%s: %s", tmp, strerror(errno));
		setvbuf(f, NULL, _IOFBF, 1 << 22);
		export_users(db, f, tmp);
		if (fclose(f) != 0 || rename(tmp, out) != 0) {
			int e = errno;

			unlink(tmp);
			die("%s: %s", out, strerror(e));
		}
		fprintf(stderr, "wrote %s: %" PRIu64 " users\n", out,
			lim_users_count(db->users));
	}
	lim_db_free(db);
	return 0;
}

/* ---- mem ----------------------------------------------------------------- */

/* Resident set in bytes, from /proc/self/statm. */
static uint64_t
rss_bytes(void)
{
	unsigned long long size = 0, res = 0;
	FILE *f = fopen("/proc/self/statm", "r");

	if (!f || fscanf(f, "%llu %llu", &size, &res) != 2)
		die("/proc/self/statm: cannot read the resident set");
	fclose(f);
	return res * (uint64_t)sysconf(_SC_PAGESIZE);
}

static int
cmd_mem(int argc, char **argv)
{
	static const struct option opts[] = {
		COMMON_OPTS, {"users", required_argument, NULL, OPT_USERS},
		{"seed", required_argument, NULL, OPT_SEED}, {NULL, 0, NULL, 0}};
	struct lim_gen_config g = {.seed = 1, .now_s = (uint32_t)time(NULL)};
	struct lim_db_config cfg = {.ops_max = 1, .shards = 4};
	uint64_t rss0, rss1, n;
	char err[ERR_LEN];
	struct lim_db *db;
	int c;

	while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
		switch (c) {
		case 'h': print_help(help_mem);
		case OPT_PROGRESS: show_progress = true; break;
		case OPT_USERS:
			g.users = parse_count("mem", "--users", optarg, UINT64_MAX);
			break;
		case OPT_SEED:
			g.seed = parse_count("mem", "--seed", optarg, UINT64_MAX);
			break;
		default: usage("mem", "unknown option");
		}
	}
	if (optind != argc || g.users == 0 || g.users > UINT32_MAX)
		usage("mem", "--users N is required, 1..4294967295");
	cfg.users_max = g.users;
	cfg.merchants_max = lim_gen_merchants(&g);
	cfg.groups_max = g.users / 400 + 1;
	rss0 = rss_bytes();
	db = lim_db_create(&cfg);
	if (!db)
		die("cannot create a database for %" PRIu64 " users", g.users);
	progress_what = "generating";
	if (lim_gen_fill(db, &g, progress_cb, err, sizeof(err)))
		die("mem: %s", err);
	rss1 = rss_bytes();
	n = lim_users_count(db->users);
	printf("users               %" PRIu64 " (%" PRIu64 " extensions, %"
	       PRIu64 " merchants, %" PRIu64 " groups)\n", n,
	       lim_kv_count(db->ext), lim_kv_count(db->merchants),
	       lim_kv_count(db->groups));
	printf("user table          %.1f bytes/user (88-byte slot + index; "
	       "%zu bytes)\n", (double)lim_users_bytes(db->users) / n,
	       lim_users_bytes(db->users));
	printf("whole database      %.1f bytes/user (resident set growth %"
	       PRIu64 " bytes, op store empty)\n", (double)(rss1 - rss0) / n,
	       rss1 - rss0);
	printf("target              <= 100 bytes/user\n");
	lim_db_free(db);
	return 0;
}

/* ---- bench-load ---------------------------------------------------------- */

static int
cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;

	return (x > y) - (x < y);
}

static int
cmd_bench(int argc, char **argv)
{
	static const struct option opts[] = {
		COMMON_OPTS, {"runs", required_argument, NULL, OPT_RUNS},
		{NULL, 0, NULL, 0}};
	unsigned runs = 5;
	double rate[64], urate[64];
	int c;

	while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
		switch (c) {
		case 'h': print_help(help_bench);
		case OPT_PROGRESS: show_progress = true; break;
		case OPT_RUNS:
			runs = (unsigned)parse_count("bench-load", "--runs",
						       optarg, UINT32_MAX);
			break;
		default: usage("bench-load", "unknown option");
		}
	}
	if (optind + 1 != argc)
		usage("bench-load", "one FILE expected");
	if (runs == 0 || runs > 64)
		usage("bench-load", "--runs must be 1..64");
	for (unsigned r = 0; r < runs; r++) {
		double t0 = now_s(), dt, du;
		struct lim_db *db;
		uint64_t n;

		users_done_at = 0;
		db = load_or_die(argv[optind], NULL);
		dt = now_s() - t0;
		du = users_done_at - t0;
		n = lim_users_count(db->users);
		rate[r] = n / dt;
		urate[r] = n / du;
		printf("run %u: %" PRIu64 " users in %.3f s: %.2f M users/s "
		       "(whole file); header, checksums and users section in "
		       "%.3f s: %.2f M users/s\n", r + 1, n, dt, rate[r] / 1e6,
		       du, urate[r] / 1e6);
		fflush(stdout);
		lim_db_free(db);
	}
	qsort(rate, runs, sizeof(rate[0]), cmp_double);
	qsort(urate, runs, sizeof(urate[0]), cmp_double);
	printf("whole file: best %.2f M users/s, median %.2f M users/s over %u "
	       "runs\n", rate[runs - 1] / 1e6, rate[runs / 2] / 1e6, runs);
	printf("users section: best %.2f M users/s, median %.2f M users/s\n",
	       urate[runs - 1] / 1e6, urate[runs / 2] / 1e6);
	return 0;
}

/* ---- main ---------------------------------------------------------------- */

static const struct {
	const char *name;
	int (*fn)(int argc, char **argv);
	const char *help;
} cmds[] = {
	{"gen", cmd_gen, help_gen},
	{"info", cmd_info, help_info},
	{"verify", cmd_verify, help_verify},
	{"import", cmd_import, help_import},
	{"export", cmd_export, help_export},
	{"mem", cmd_mem, help_mem},
	{"bench-load", cmd_bench, help_bench},
};

int
main(int argc, char **argv)
{
	int rc;

	if (argc < 2 || strcmp(argv[1], "-h") == 0 ||
	    strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "help") == 0) {
		if (argc >= 3 && strcmp(argv[1], "help") == 0)
			for (size_t i = 0; i < sizeof(cmds) / sizeof(cmds[0]); i++)
				if (strcmp(argv[2], cmds[i].name) == 0)
					print_help(cmds[i].help);
		fputs(help_main, argc < 2 ? stderr : stdout);
		return argc < 2 ? EXIT_USAGE : EXIT_SUCCESS;
	}
	show_progress = isatty(STDERR_FILENO);
	for (size_t i = 0; i < sizeof(cmds) / sizeof(cmds[0]); i++) {
		if (strcmp(argv[1], cmds[i].name) != 0)
			continue;
		rcu_register_thread();
		rc = cmds[i].fn(argc - 1, argv + 1);
		rcu_unregister_thread();
		return rc;
	}
	fprintf(stderr, "authdb: unknown command '%s'\nTry 'authdb --help'.\n",
		argv[1]);
	return EXIT_USAGE;
}
