/*
 * load_users.c - perf_load_users: the users of the Redis peer, as Redis
 * protocol (RESP) for `redis-cli --pipe`, or as CSV.
 *
 * Users come from one of two places:
 * - generated: ids 1..N, outstanding 0, holds 0 and
 *	limit_fen = (1000 + splitmix64(splitmix64(seed) ^ id) % 49001) * 100
 *   i.e. whole yuan, uniform in 1,000..50,000 yuan, reproducible from
 *   (seed, id) alone by any tool (splitmix64 is Vigna's: add
 *   0x9e3779b97f4a7c15, then the two xor-shift-multiply rounds);
 * - a CSV file `user_id,limit_fen,outstanding_fen,holds_fen` (an optional
 *   header line; the format the engine's tools export).
 * Each user becomes `HSET u:<id> limit L outstanding O holds H`, the hash
 * perf/redis/check_reserve.lua reads. --emit csv writes the generated users
 * in the CSV format instead, so the engine can load the very same users.
 *
 * Output goes through a 1 MiB buffer with hand-rolled number formatting:
 * generating is not the bottleneck of a load (redis-server is).
 */
#define _GNU_SOURCE
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define PERF_OUT_BUF       (1u << 20)
#define PERF_LIMIT_MIN_YUAN 1000
#define PERF_LIMIT_MAX_YUAN 50000
#define PERF_FEN_PER_YUAN  100
#define PERF_USER_LINE_MAX 256 /* one user's RESP, with room to spare */

enum perf_emit { PERF_EMIT_RESP, PERF_EMIT_CSV };

struct perf_user {
	uint64_t id;
	int64_t limit_fen;
	int64_t outstanding_fen;
	int64_t holds_fen;
};

struct perf_out {
	FILE *f;
	const char *path;
	enum perf_emit emit;
	size_t len;
	uint64_t users;
	uint64_t bytes;
	char buf[PERF_OUT_BUF];
};

static const char perf_usage[] =
	"usage: perf_load_users (--users N [--seed S] | --csv FILE) "
	"[--emit resp|csv] [--out FILE]\n"
	"\n"
	"Writes users for the Redis peer as Redis protocol, for\n"
	"  perf_load_users --users 1000000 | redis-cli -s SOCK --pipe\n"
	"Each user is HSET u:<id> limit <fen> outstanding <fen> holds <fen>.\n"
	"\n"
	"  --users N     generate users 1..N: outstanding 0, holds 0, and\n"
	"                limit_fen = (1000 + splitmix64(splitmix64(seed) ^ id)"
	" % 49001) * 100\n"
	"                (1,000..50,000 yuan)\n"
	"  --seed S      seed of the generated limits (default 1)\n"
	"  --csv FILE    read users from FILE ('-': stdin), lines\n"
	"                user_id,limit_fen,outstanding_fen,holds_fen "
	"(header optional)\n"
	"  --emit FMT    resp (default), or csv: the users as CSV instead\n"
	"  --out FILE    write to FILE instead of stdout\n"
	"  --help        this text\n"
	"\n"
	"A summary (users, bytes) goes to stderr.\n";

static uint64_t
perf_splitmix64(uint64_t x)
{
	x += 0x9e3779b97f4a7c15ULL;
	x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ULL;
	x = (x ^ (x >> 27)) * 0x94d049bb133111ebULL;
	return x ^ (x >> 31);
}

static int64_t
perf_limit_fen(uint64_t seed_mix, uint64_t id)
{
	uint64_t span = PERF_LIMIT_MAX_YUAN - PERF_LIMIT_MIN_YUAN + 1;
	uint64_t h = perf_splitmix64(seed_mix ^ id);

	return (int64_t)(PERF_LIMIT_MIN_YUAN + h % span) * PERF_FEN_PER_YUAN;
}

/* Decimal digits of v at p; returns the length. p has room for 20. */
static size_t
perf_u64_str(char *p, uint64_t v)
{
	char tmp[20];
	size_t n = 0;

	do {
		tmp[n++] = (char)('0' + v % 10);
		v /= 10;
	} while (v);
	for (size_t i = 0; i < n; i++)
		p[i] = tmp[n - 1 - i];
	return n;
}

/* A RESP bulk string of the decimal v (non-negative): "$<len>\r\n<v>\r\n" */
static size_t
perf_resp_num(char *p, const char *prefix, size_t prefix_len, uint64_t v)
{
	char digits[20];
	size_t n = perf_u64_str(digits, v), len = 0;

	p[len++] = '$';
	len += perf_u64_str(p + len, prefix_len + n);
	p[len++] = '\r', p[len++] = '\n';
	memcpy(p + len, prefix, prefix_len), len += prefix_len;
	memcpy(p + len, digits, n), len += n;
	p[len++] = '\r', p[len++] = '\n';
	return len;
}

static size_t
perf_resp_lit(char *p, const char *lit)
{
	size_t n = strlen(lit);

	memcpy(p, lit, n);
	return n;
}

static size_t
perf_format_resp(char *p, const struct perf_user *u)
{
	size_t len = perf_resp_lit(p, "*8\r\n$4\r\nHSET\r\n");

	len += perf_resp_num(p + len, "u:", 2, u->id);
	len += perf_resp_lit(p + len, "$5\r\nlimit\r\n");
	len += perf_resp_num(p + len, "", 0, (uint64_t)u->limit_fen);
	len += perf_resp_lit(p + len, "$11\r\noutstanding\r\n");
	len += perf_resp_num(p + len, "", 0, (uint64_t)u->outstanding_fen);
	len += perf_resp_lit(p + len, "$5\r\nholds\r\n");
	len += perf_resp_num(p + len, "", 0, (uint64_t)u->holds_fen);
	return len;
}

static size_t
perf_format_csv(char *p, const struct perf_user *u)
{
	size_t len = perf_u64_str(p, u->id);

	p[len++] = ',';
	len += perf_u64_str(p + len, (uint64_t)u->limit_fen);
	p[len++] = ',';
	len += perf_u64_str(p + len, (uint64_t)u->outstanding_fen);
	p[len++] = ',';
	len += perf_u64_str(p + len, (uint64_t)u->holds_fen);
	p[len++] = '\n';
	return len;
}

static int
perf_flush(struct perf_out *o)
{
	if (o->len && fwrite(o->buf, 1, o->len, o->f) != o->len) {
		fprintf(stderr, "perf_load_users: writing %s: %s\n", o->path,
			strerror(errno));
		return -EIO;
	}
	o->bytes += o->len;
	o->len = 0;
	return 0;
}

static int
perf_put_user(struct perf_out *o, const struct perf_user *u)
{
	if (PERF_OUT_BUF - o->len < PERF_USER_LINE_MAX && perf_flush(o))
		return -EIO;
	if (o->emit == PERF_EMIT_RESP)
		o->len += perf_format_resp(o->buf + o->len, u);
	else
		o->len += perf_format_csv(o->buf + o->len, u);
	o->users++;
	return 0;
}

static int
perf_generate(struct perf_out *o, uint64_t users, uint64_t seed)
{
	uint64_t seed_mix = perf_splitmix64(seed);
	struct perf_user u = {0};

	for (uint64_t id = 1; id <= users; id++) {
		u.id = id;
		u.limit_fen = perf_limit_fen(seed_mix, id);
		if (perf_put_user(o, &u))
			return -EIO;
	}
	return 0;
}

/* One non-negative int64 field ending at ',' (or at the line's end). */
static int
perf_parse_field(const char **p, int64_t *v, bool last)
{
	char *end;

	errno = 0;
	if (**p < '0' || **p > '9')
		return -EINVAL;
	long long x = strtoll(*p, &end, 10);
	if (errno || x < 0)
		return -EINVAL;
	if (last ? (*end != '\0' && *end != '\n' && *end != '\r')
		 : *end != ',')
		return -EINVAL;
	*v = x;
	*p = end + 1;
	return 0;
}

static int
perf_parse_line(const char *line, struct perf_user *u)
{
	const char *p = line;
	int64_t id;

	if (perf_parse_field(&p, &id, false) ||
	    perf_parse_field(&p, &u->limit_fen, false) ||
	    perf_parse_field(&p, &u->outstanding_fen, false) ||
	    perf_parse_field(&p, &u->holds_fen, true) || id == 0)
		return -EINVAL;
	u->id = (uint64_t)id;
	return 0;
}

static bool
perf_blank(const char *line)
{
	return line[strspn(line, " \t\r\n")] == '\0';
}

static int
perf_read_csv(struct perf_out *o, const char *path)
{
	FILE *f = strcmp(path, "-") ? fopen(path, "r") : stdin;
	char *line = NULL;
	size_t cap = 0;
	uint64_t lineno = 0;
	struct perf_user u;
	int rc = 0;

	if (!f) {
		rc = -errno;
		fprintf(stderr, "perf_load_users: cannot open %s: %s\n", path,
			strerror(-rc));
		return rc;
	}
	while (rc == 0 && getline(&line, &cap, f) >= 0) {
		lineno++;
		if (perf_blank(line) || (lineno == 1 && !(*line >= '0' &&
							 *line <= '9')))
			continue; /* blank, or the header */
		if (perf_parse_line(line, &u)) {
			fprintf(stderr, "perf_load_users: %s:%" PRIu64
				": expected user_id,limit_fen,outstanding_fen,"
				"holds_fen (integers >= 0, id > 0), got: %s",
				path, lineno, line);
			rc = -EINVAL;
			break;
		}
		rc = perf_put_user(o, &u);
	}
	if (rc == 0 && ferror(f)) {
		fprintf(stderr, "perf_load_users: reading %s failed\n", path);
		rc = -EIO;
	}
	free(line);
	if (f != stdin)
		fclose(f);
	return rc;
}

static int
perf_parse_u64(const char *opt, const char *s, uint64_t *v)
{
	char *end;

	errno = 0;
	unsigned long long x = strtoull(s, &end, 10);
	if (errno || *s == '-' || *s == '\0' || *end != '\0') {
		fprintf(stderr, "perf_load_users: %s wants a number >= 0, "
			"got '%s'\n", opt, s);
		return -EINVAL;
	}
	*v = x;
	return 0;
}

struct perf_load_cfg {
	uint64_t users;
	uint64_t seed;
	bool have_users;
	const char *csv;
	const char *out;
	enum perf_emit emit;
};

/* -1: go on; otherwise the exit status (0 after --help). */
static int
perf_parse_args(int argc, char **argv, struct perf_load_cfg *cfg)
{
	static const struct option opts[] = {
		{"users", required_argument, NULL, 'n'},
		{"seed", required_argument, NULL, 's'},
		{"csv", required_argument, NULL, 'c'},
		{"emit", required_argument, NULL, 'e'},
		{"out", required_argument, NULL, 'o'},
		{"help", no_argument, NULL, 'h'},
		{NULL, 0, NULL, 0},
	};
	int c;

	while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
		switch (c) {
		case 'n':
			if (perf_parse_u64("--users", optarg, &cfg->users))
				return 2;
			cfg->have_users = true;
			break;
		case 's':
			if (perf_parse_u64("--seed", optarg, &cfg->seed))
				return 2;
			break;
		case 'c':
			cfg->csv = optarg;
			break;
		case 'e':
			if (strcmp(optarg, "resp") && strcmp(optarg, "csv")) {
				fprintf(stderr, "perf_load_users: --emit resp "
					"or csv, not '%s'\n", optarg);
				return 2;
			}
			cfg->emit = optarg[0] == 'r' ? PERF_EMIT_RESP
						     : PERF_EMIT_CSV;
			break;
		case 'o':
			cfg->out = optarg;
			break;
		case 'h':
			fputs(perf_usage, stdout);
			return 0;
		default:
			fputs(perf_usage, stderr);
			return 2;
		}
	}
	if (optind < argc || cfg->have_users == (cfg->csv != NULL)) {
		fprintf(stderr, "perf_load_users: give either --users N or "
			"--csv FILE (see --help)\n");
		return 2;
	}
	return -1;
}

int
main(int argc, char **argv)
{
	static struct perf_out o; /* large: the output buffer */
	struct perf_load_cfg cfg = {.seed = 1, .out = "stdout"};
	int rc = perf_parse_args(argc, argv, &cfg);

	if (rc >= 0)
		return rc;
	o.path = cfg.out;
	o.emit = cfg.emit;
	o.f = strcmp(o.path, "stdout") ? fopen(o.path, "w") : stdout;
	if (!o.f) {
		fprintf(stderr, "perf_load_users: cannot create %s: %s\n",
			o.path, strerror(errno));
		return 1;
	}
	rc = cfg.csv ? perf_read_csv(&o, cfg.csv)
		     : perf_generate(&o, cfg.users, cfg.seed);
	if (rc == 0)
		rc = perf_flush(&o);
	if (fclose(o.f) && rc == 0) {
		fprintf(stderr, "perf_load_users: closing %s: %s\n", o.path,
			strerror(errno));
		rc = -EIO;
	}
	if (rc)
		return 1;
	fprintf(stderr, "perf_load_users: %" PRIu64 " users, %" PRIu64
		" bytes of %s\n", o.users, o.bytes,
		o.emit == PERF_EMIT_RESP ? "RESP" : "CSV");
	return 0;
}
