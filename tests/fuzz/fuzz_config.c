/*
 * fuzz_config.c - libFuzzer harness for authd's start-up configuration:
 * the INI config file (authd -c FILE: dataplane/options.c, [authd] and
 * [risk] sections), the command line after the EAL's "--" (the same
 * option table), and the policy file (authd --policy FILE:
 * dataplane/policy_file.c, the keys of `authctl policy set`).
 *
 * options.c and policy_file.c are compiled into this harness (their
 * parsers are static); they need DPDK's headers, not its libraries.
 *
 * Input: byte 0 selects the parser (mod 3), the rest is its input:
 *   0  a config file, written to a private directory, read by
 *      dp_config_file() and checked by dp_config_check();
 *   1  a command line: the bytes split at NUL into argv for
 *      dp_config_args() (inputs with '/' are skipped and the working
 *      directory is empty, so -c FILE cannot read anything real);
 *   2  a policy file, read by policy_file_parse() over the default policy.
 *
 * Oracles (abort = a finding):
 * - a refusal says why, and for a file names it;
 * - a file with a line longer than DP_INI_LINE_MAX is refused (inih would
 *   parse the tail of such a line as a line of its own);
 * - config file: every number it accepted equals an exact reading of the
 *   value it was given (decimal with the k/M/G suffix, overflow refused),
 *   found by reading the same text with inih (last assignment wins);
 * - policy file: an accepted policy passes lim_policy_check(); written
 *   back as `authctl policy show --ini` would write it and read again, it
 *   is the same policy, byte for byte.
 *
 * Seeds (corpus/config): config files, command lines and policy files as
 * the tests and docs use them, each with its selector byte.
 */
/* options.c's table is "opts", a parameter name in ctl_proto.h: renamed. */
#define opts authd_opts
#include "../../dataplane/options.c"
#undef opts
#include "../../dataplane/policy_file.c"

#define AUTHD_N_OPTS (sizeof(authd_opts) / sizeof(authd_opts[0]))

#include <sys/stat.h>
#include <unistd.h>

#define FUZZ_CHECK(cond)                                                       \
	do {                                                                   \
		if (!(cond)) {                                                 \
			fprintf(stderr, "%s:%d: check failed: %s\n", __FILE__, \
				__LINE__, #cond);                              \
			abort();                                               \
		}                                                              \
	} while (0)

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define ARGS_MAX 64

static char g_dir[PATH_MAX];
static char g_file[PATH_MAX + 16];

static void
setup(void)
{
	const char *tmp = getenv("TMPDIR");
	char d[PATH_MAX];

	snprintf(d, sizeof(d), "%s/fuzz_config.XXXXXX", tmp && *tmp ? tmp : "/tmp");
	FUZZ_CHECK(mkdtemp(d));
	snprintf(g_dir, sizeof(g_dir), "%s", d);
	snprintf(g_file, sizeof(g_file), "%s/in.ini", d);
	/* -c with a relative name finds nothing here (see the mode 1 filter). */
	FUZZ_CHECK(mkdir(strcat(d, "/empty"), 0700) == 0 && chdir(d) == 0);
}

/* The longest line of @p b, newline excluded. */
static size_t
longest_line(const uint8_t *b, size_t n)
{
	size_t best = 0, len = 0;

	for (size_t i = 0; i < n; i++) {
		len = b[i] == '\n' ? 0 : len + 1;
		if (len > best)
			best = len;
	}
	return best;
}

static void
put_file(const uint8_t *b, size_t n)
{
	FILE *f = fopen(g_file, "w");

	FUZZ_CHECK(f);
	FUZZ_CHECK(fwrite(b, 1, n, f) == n);
	fclose(f);
}

/* ------------------------------------------------------------------------ */
/* 0: the config file                                                         */

/*
 * The exact value of a number as options.c documents it (decimal digits,
 * then at most one k/K/M/G suffix), or -1 if invalid: read here digit by
 * digit in 128 bits, independently of lim_parse_count().
 */
static int
ref_number(const char *v, uint64_t *out)
{
	unsigned __int128 x = 0;
	const char *p = v;

	for (; *p >= '0' && *p <= '9'; p++) {
		x = x * 10 + (unsigned)(*p - '0');
		if (x > UINT64_MAX)
			return -1;
	}
	if (p == v)
		return -1;
	if (*p == 'k' || *p == 'K')
		x *= 1000, p++;
	else if (*p == 'M')
		x *= 1000000, p++;
	else if (*p == 'G')
		x *= 1000000000, p++;
	if (*p || x > UINT64_MAX)
		return -1;
	*out = (uint64_t)x;
	return 0;
}

struct last_values {
	const char *v[AUTHD_N_OPTS];
	char buf[AUTHD_N_OPTS][256];
};

static int
collect(void *user, const char *section, const char *name, const char *value)
{
	struct last_values *lv = user;

	if (strcmp(section, "authd"))
		return 1;
	for (unsigned i = 0; i < AUTHD_N_OPTS; i++)
		if (!strcmp(authd_opts[i].name, name)) {
			snprintf(lv->buf[i], sizeof(lv->buf[i]), "%s", value);
			lv->v[i] = lv->buf[i];
		}
	return 1;
}

static uint64_t
field(const struct dp_config *c, const struct opt *o)
{
	const char *p = (const char *)c + o->off;

	switch (o->kind) {
	case OPT_U64:
		return *(const uint64_t *)p;
	case OPT_U32:
		return *(const uint32_t *)p;
	default:
		return *(const uint16_t *)p;
	}
}

static void
config_file(const uint8_t *b, size_t n)
{
	struct dp_config c, def;
	struct last_values *lv;
	char err[1024] = "", *text;

	if (memchr(b, 0, n))
		return; /* inih reads a file past a NUL, a string not: no oracle */
	put_file(b, n);
	dp_config_default(&c);
	def = c;
	if (dp_config_file(&c, g_file, err, sizeof(err))) {
		FUZZ_CHECK(!strncmp(err, g_file, strlen(g_file)) && err[strlen(g_file)] == ':');
		return;
	}
	FUZZ_CHECK(longest_line(b, n) <= DP_INI_LINE_MAX);
	(void)dp_config_check(&c, err, sizeof(err));
	/* The numbers it took, against an exact reading of the same text. */
	text = malloc(n + 1);
	lv = calloc(1, sizeof(*lv));
	FUZZ_CHECK(text && lv);
	memcpy(text, b, n);
	text[n] = 0;
	ini_parse_string(text, collect, lv);
	for (unsigned i = 0; i < AUTHD_N_OPTS; i++) {
		const struct opt *o = &authd_opts[i];
		uint64_t want;

		if (o->kind != OPT_U64 && o->kind != OPT_U32 && o->kind != OPT_U16)
			continue;
		if (!lv->v[i]) {
			FUZZ_CHECK(field(&c, o) == field(&def, o));
			continue;
		}
		if (ref_number(lv->v[i], &want) || want < o->min || want > o->max) {
			fprintf(stderr, "--%s %s accepted as %llu\n", o->name, lv->v[i],
				(unsigned long long)field(&c, o));
			abort();
		}
		FUZZ_CHECK(field(&c, o) == want);
	}
	free(lv);
	free(text);
}

/* ------------------------------------------------------------------------ */
/* 1: the command line                                                        */

/* glibc's getopt keeps a pointer into the last argv: start it afresh. */
static void
getopt_reset(void)
{
	char *argv[] = {(char *)"x", NULL};

	optind = 0;
	opterr = 0;
	while (getopt(1, argv, "") != -1)
		;
}

static void
command_line(const uint8_t *b, size_t n)
{
	char *text, *argv[ARGS_MAX + 2];
	struct dp_config c;
	char err[1024] = "";
	int argc = 1, rc;

	if (memchr(b, '/', n))
		return;
	text = malloc(n + 1);
	FUZZ_CHECK(text);
	memcpy(text, b, n);
	text[n] = 0;
	argv[0] = (char *)"authd";
	for (size_t i = 0; i <= n && argc <= ARGS_MAX; ) {
		argv[argc++] = text + i;
		i += strlen(text + i) + 1;
	}
	argv[argc] = NULL;
	getopt_reset();
	dp_config_default(&c);
	rc = dp_config_args(&c, argc, argv, err, sizeof(err));
	if (rc < 0)
		FUZZ_CHECK(err[0]);
	else if (rc == 0)
		(void)dp_config_check(&c, err, sizeof(err));
	getopt_reset();
	free(text);
}

/* ------------------------------------------------------------------------ */
/* 2: the policy file                                                         */

/* The policy as `authctl policy show --ini` writes it. */
static size_t
policy_ini(const struct lim_policy *p, char *out, size_t cap)
{
	size_t k = (size_t)snprintf(out, cap, "[policy]\n");
	char v[96];

	for (unsigned i = 0; i < CTL_POLICY_KEYS; i++)
		k += (size_t)snprintf(out + k, cap - k, "%s = %s\n",
				      ctl_policy_keys[i].name,
				      ctl_pkey_fmt(&ctl_policy_keys[i], p, v, sizeof(v)));
	for (unsigned t = 0; t < LIM_TIERS; t++)
		for (unsigned i = 0; i < CTL_TIER_KEYS; i++)
			k += (size_t)snprintf(out + k, cap - k, "tier.%u.%s = %s\n", t,
					      ctl_tier_keys[i].name,
					      ctl_pkey_fmt(&ctl_tier_keys[i], &p->tier[t],
							   v, sizeof(v)));
	FUZZ_CHECK(k < cap);
	return k;
}

static void
policy_file(const uint8_t *b, size_t n)
{
	struct lim_policy p, again;
	static char ini[16384];
	char err[1024] = "";
	size_t len;

	put_file(b, n);
	lim_policy_default(&p);
	if (policy_file_parse(g_file, &p, err, sizeof(err))) {
		FUZZ_CHECK(!strncmp(err, g_file, strlen(g_file)) && err[strlen(g_file)] == ':');
		return;
	}
	FUZZ_CHECK(lim_policy_check(&p, err, sizeof(err)) == 0);
	FUZZ_CHECK(longest_line(b, n) <= DP_INI_LINE_MAX);
	len = policy_ini(&p, ini, sizeof(ini));
	put_file((const uint8_t *)ini, len);
	lim_policy_default(&again);
	if (policy_file_parse(g_file, &again, err, sizeof(err))) {
		fprintf(stderr, "policy show --ini not read back: %s\n%s", err, ini);
		abort();
	}
	FUZZ_CHECK(memcmp(&p, &again, sizeof(p)) == 0);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (!g_dir[0])
		setup();
	if (size < 1)
		return 0;
	switch (data[0] % 3) {
	case 0:
		config_file(data + 1, size - 1);
		break;
	case 1:
		command_line(data + 1, size - 1);
		break;
	default:
		policy_file(data + 1, size - 1);
		break;
	}
	return 0;
}
