/*
 * options.c - authd's options: command line (after the EAL's "--") and an
 * optional INI config file, both through one table so a key means the same
 * in both places. The file is read first; the command line overrides it.
 * Every error names the option, the value, and (for the file) the line.
 * Numbers are counts as lim.h reads them (decimal, optional k/M/G suffix:
 * --users-max 10M); --clock fixed: takes unix seconds.
 *
 * The risk worker's settings (risk.h) come as --risk on|shadow|off,
 * --risk-set KEY=VALUE (repeatable) and, in the file, a [risk] section of
 * KEY = VALUE lines; risk.c parses them, so authctl risk set takes the same
 * keys and values.
 *
 * The config file may also carry the EAL's options, as [eal] args = ...
 * (split at blanks): main.c reads them with dp_config_eal_args() before
 * rte_eal_init(), so a service needs nothing but -- -c FILE.
 *
 * --metrics ADDR:PORT is checked as it is set (metrics.h: the address
 * parser), so a bad value in the file is reported with its line; the port
 * itself is bound by main.c right after the options, before anything is
 * loaded, so a port in use stops authd at once.
 */
#include <errno.h>
#include <getopt.h>
#include <ini.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <arpa/inet.h>
#include <rte_log.h>

#include "dp.h"
#include "export.h"

enum opt_kind { OPT_STR, OPT_U64, OPT_U32, OPT_U16, OPT_IP, OPT_FLAG, OPT_SPECIAL };

struct opt {
	const char *name;
	char shortopt;
	enum opt_kind kind;
	size_t off;
	size_t size;               /* OPT_STR: buffer size */
	uint64_t min, max;
};

#define O(field) offsetof(struct dp_config, field), sizeof(((struct dp_config *)0)->field)

static const struct opt opts[] = {
	{"port", 'p', OPT_STR, O(port), 0, 0},
	{"ip", 0, OPT_IP, O(ip), 0, 0},
	{"udp-port", 0, OPT_U16, O(udp_port), 1, 65535},
	{"snapshot", 's', OPT_STR, O(snapshot), 0, 0},
	{"keys", 'k', OPT_STR, O(keys), 0, 0},
	{"ctl", 0, OPT_STR, O(ctl_path), 0, 0},
	{"journal", 'j', OPT_STR, O(journal_dir), 0, 0},
	{"journal-segment-size", 0, OPT_U64, O(journal_segment_bytes),
	 64ull << 10, 1ull << 40},
	{"policy", 0, OPT_STR, O(policy), 0, 0},
	{"mode", 0, OPT_SPECIAL, 0, 0, 0, 0},
	{"ack", 0, OPT_SPECIAL, 0, 0, 0, 0},
	{"clock", 0, OPT_SPECIAL, 0, 0, 0, 0},
	{"log-level", 0, OPT_SPECIAL, 0, 0, 0, 0},
	{"risk", 0, OPT_SPECIAL, 0, 0, 0, 0},
	{"risk-set", 0, OPT_SPECIAL, 0, 0, 0, 0},
	{"users-max", 0, OPT_U64, O(users_max), 1, 1ULL << 32},
	{"ops-max", 0, OPT_U64, O(ops_max), 1024, 1ULL << 32},
	{"ring-size", 0, OPT_U32, O(ring_size), 64, 1u << 24},
	{"streams", 0, OPT_U32, O(streams), 1, 1u << 22},
	{"burst", 0, OPT_U16, O(burst), 1, DP_BURST_MAX},
	{"rx-desc", 0, OPT_U16, O(rx_ring), 64, 32768},
	{"tx-desc", 0, OPT_U16, O(tx_ring), 64, 32768},
	{"promiscuous", 0, OPT_FLAG, O(promiscuous), 0, 1},
	{"export", 0, OPT_STR, O(export_url), 0, 0},
	{"export-subject", 0, OPT_STR, O(export_subject), 0, 0},
	{"export-stream", 0, OPT_STR, O(export_stream), 0, 0},
	{"metrics", 0, OPT_SPECIAL, 0, 0, 0, 0},
};

#define N_OPTS (sizeof(opts) / sizeof(opts[0]))

void
dp_config_default(struct dp_config *c)
{
	memset(c, 0, sizeof(*c));
	snprintf(c->port, sizeof(c->port), "0");
	c->udp_port = AUTH_UDP_PORT;
	c->burst = 32;
	c->mode = DP_MODE_DECIDE;
	c->ack = DP_ACK_ASYNC;
	c->ops_max = 1u << 22;
	c->ring_size = 1u << 16;
	c->streams = 4096;
	c->log_level = RTE_LOG_NOTICE;
	c->clock_mode = DP_CLOCK_REAL;
	dp_risk_config_default(&c->risk);
	snprintf(c->export_subject, sizeof(c->export_subject), "%s",
		 DP_EXPORT_SUBJECT_DEFAULT);
	snprintf(c->export_stream, sizeof(c->export_stream), "%s",
		 DP_EXPORT_STREAM_DEFAULT);
}

static int
bad(char *err, size_t n, const char *name, const char *value, const char *why)
{
	snprintf(err, n, "--%s %s: %s", name, value, why);
	return -EINVAL;
}

static const char *const levels[] = {
	[RTE_LOG_EMERG] = "emerg", [RTE_LOG_ALERT] = "alert",
	[RTE_LOG_CRIT] = "crit", [RTE_LOG_ERR] = "error",
	[RTE_LOG_WARNING] = "warning", [RTE_LOG_NOTICE] = "notice",
	[RTE_LOG_INFO] = "info", [RTE_LOG_DEBUG] = "debug",
};

/* --risk-set KEY=VALUE: one risk setting (risk.h), table sizes included. */
static int
set_risk(struct dp_config *c, const char *v, char *err, size_t n)
{
	char why[192];

	if (dp_risk_config_set_kv(&c->risk, &v, 1, true, why, sizeof(why)))
		return bad(err, n, "risk-set", v, why);
	return 0;
}

static int
set_special(struct dp_config *c, const char *name, const char *v, char *err,
	    size_t n)
{
	if (!strcmp(name, "risk")) {
		if (dp_risk_config_set(&c->risk, "mode", v, err, n))
			return bad(err, n, name, v, "expected on, shadow or off");
		return 0;
	}
	if (!strcmp(name, "risk-set"))
		return set_risk(c, v, err, n);
	if (!strcmp(name, "metrics")) {
		struct sockaddr_storage ss;
		socklen_t len;

		if (dp_metrics_addr_parse(v, &ss, &len, err, n))
			return -EINVAL;
		snprintf(c->metrics, sizeof(c->metrics), "%s", v);
		return 0;
	}
	if (!strcmp(name, "mode")) {
		if (!strcmp(v, "decide"))
			c->mode = DP_MODE_DECIDE;
		else if (!strcmp(v, "forward"))
			c->mode = DP_MODE_FORWARD;
		else
			return bad(err, n, name, v, "expected decide or forward");
		return 0;
	}
	if (!strcmp(name, "ack")) {
		if (!strcmp(v, "sync"))
			c->ack = DP_ACK_SYNC;
		else if (!strcmp(v, "async"))
			c->ack = DP_ACK_ASYNC;
		else
			return bad(err, n, name, v, "expected sync or async");
		c->ack_explicit = true;
		return 0;
	}
	if (!strcmp(name, "clock")) {
		uint64_t s;

		if (!strcmp(v, "real")) {
			c->clock_mode = DP_CLOCK_REAL;
			return 0;
		}
		if (strncmp(v, "fixed:", 6) || lim_parse_u64(v + 6, UINT32_MAX, &s))
			return bad(err, n, name, v, "expected real or fixed:UNIX_SECONDS");
		c->clock_mode = DP_CLOCK_FIXED;
		c->clock_fixed_s = (uint32_t)s;
		return 0;
	}
	for (unsigned i = 0; i < sizeof(levels) / sizeof(levels[0]); i++)
		if (levels[i] && !strcasecmp(v, levels[i])) {
			c->log_level = (int)i;
			return 0;
		}
	return bad(err, n, name, v, "expected error, warning, notice, info or debug");
}

static int
set_one(struct dp_config *c, const struct opt *o, const char *v, char *err,
	size_t n)
{
	char *p = (char *)c + o->off;
	uint64_t x = 0;
	struct in_addr a;

	switch (o->kind) {
	case OPT_STR:
		if (strlen(v) >= o->size)
			return bad(err, n, o->name, v, "too long");
		memcpy(p, v, strlen(v) + 1);
		return 0;
	case OPT_IP:
		if (inet_pton(AF_INET, v, &a) != 1)
			return bad(err, n, o->name, v, "expected an IPv4 address");
		*(uint32_t *)p = ntohl(a.s_addr);
		return 0;
	case OPT_FLAG:
		if (!v || !*v || !strcmp(v, "1") || !strcasecmp(v, "yes") ||
		    !strcasecmp(v, "true"))
			*(bool *)p = true;
		else if (!strcmp(v, "0") || !strcasecmp(v, "no") ||
			 !strcasecmp(v, "false"))
			*(bool *)p = false;
		else
			return bad(err, n, o->name, v, "expected yes or no");
		return 0;
	case OPT_SPECIAL:
		return set_special(c, o->name, v, err, n);
	default:
		break;
	}
	if (lim_parse_count(v, o->max, &x) || x < o->min) {
		char why[96];

		snprintf(why, sizeof(why), "expected a number in %llu..%llu",
			 (unsigned long long)o->min, (unsigned long long)o->max);
		return bad(err, n, o->name, v, why);
	}
	if (o->kind == OPT_U64)
		*(uint64_t *)p = x;
	else if (o->kind == OPT_U32)
		*(uint32_t *)p = (uint32_t)x;
	else
		*(uint16_t *)p = (uint16_t)x;
	return 0;
}

int
dp_config_set(struct dp_config *c, const char *name, const char *value,
	      char *err, size_t n)
{
	for (unsigned i = 0; i < N_OPTS; i++)
		if (!strcmp(opts[i].name, name))
			return set_one(c, &opts[i], value, err, n);
	snprintf(err, n, "unknown option '%s' (see --help)", name);
	return -EINVAL;
}

/*
 * inih through our own line reader. inih reads a line into a buffer of
 * INI_MAX_LINE bytes and parses whatever does not fit as a line of its own,
 * so the tail of a long comment could set an option: a line longer than
 * DP_INI_LINE_MAX is an error here, and nothing of it is parsed. The reader
 * also knows the number of each line, so the handler's first error is
 * reported with its own line (inih reports only its syntax errors' lines).
 */
struct dp_ini {
	FILE *f;
	dp_ini_handler fn;
	void *user;
	int lineno;               /* of the line read last */
	int long_line;            /* first line too long, 0 = none */
	int handler_line;         /* first line the handler refused, 0 = none */
};

static char *
dp_ini_read(char *str, int num, void *stream)
{
	struct dp_ini *x = stream;
	size_t len = 0, max = (size_t)num - 1;
	int c = EOF;

	while ((c = getc(x->f)) != EOF && c != '\n') {
		if (len < max)
			str[len] = (char)c;
		len++;
	}
	if (c == EOF && len == 0)
		return NULL;
	x->lineno++;
	if (len > DP_INI_LINE_MAX || len >= max) {
		if (!x->long_line)
			x->long_line = x->lineno;
		len = 0; /* parse nothing of it */
	}
	str[len] = '\0';
	return str;
}

static int
dp_ini_line(void *user, const char *section, const char *name,
	    const char *value)
{
	struct dp_ini *x = user;

	/* The first error is the one to fix: the handler is done after it. */
	if (!x->handler_line && !x->fn(x->user, section, name, value))
		x->handler_line = x->lineno;
	return 1;
}

static int
first_line(int a, int b)
{
	return !a ? b : !b ? a : a < b ? a : b;
}

int
dp_ini_parse(const char *path, dp_ini_handler fn, void *user, int *line)
{
	struct dp_ini x = {.fn = fn, .user = user};
	int syntax;

	*line = 0;
	x.f = fopen(path, "r");
	if (!x.f)
		return DP_INI_OPEN;
	syntax = ini_parse_stream(dp_ini_read, &x, dp_ini_line, &x);
	fclose(x.f);
	if (syntax < 0)
		return DP_INI_OPEN;   /* inih's allocation failed */
	*line = first_line(first_line(syntax, x.long_line), x.handler_line);
	if (!*line)
		return DP_INI_OK;
	if (*line == x.handler_line)
		return DP_INI_HANDLER;
	return *line == x.long_line ? DP_INI_LONG : DP_INI_SYNTAX;
}

struct ini_ctx {
	struct dp_config *c;
	char *err;
	size_t n;
	int rc;
};

static int
config_line(void *user, const char *section, const char *name,
	    const char *value)
{
	struct ini_ctx *x = user;

	/* [eal] args = ...: read by main.c before the EAL starts */
	if (!strcmp(section, "eal")) {
		if (strcmp(name, "args")) {
			snprintf(x->err, x->n, "[eal] %s: the only key of [eal] "
				 "is args (EAL options, as on the command line)",
				 name);
			x->rc = -EINVAL;
			return 0;
		}
		return 1;
	}
	if (!strcmp(section, "risk")) {
		x->rc = dp_risk_config_set(&x->c->risk, name, value, x->err, x->n);
		return x->rc == 0;
	}
	if (strcmp(section, "authd")) {
		snprintf(x->err, x->n, "section [%s]: expected [authd], [risk] "
			 "or [eal]", section);
		x->rc = -EINVAL;
		return 0;
	}
	x->rc = dp_config_set(x->c, name, value, x->err, x->n);
	return x->rc == 0;
}

int
dp_config_file(struct dp_config *c, const char *path, char *err, size_t n)
{
	char why[256] = "";
	struct ini_ctx x = {c, why, sizeof(why), 0};
	int line, rc = dp_ini_parse(path, config_line, &x, &line);

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
			 rc == DP_INI_HANDLER ? why : "syntax error");
		return -EINVAL;
	}
	return 0;
}

/* [eal] args of a config file, collected by dp_config_eal_args(). */
struct eal_ctx {
	char args[DP_INI_LINE_MAX + 1];
	bool seen;
};

static int
eal_line(void *user, const char *section, const char *name, const char *value)
{
	struct eal_ctx *e = user;

	if (!strcmp(section, "eal") && !strcmp(name, "args")) {
		snprintf(e->args, sizeof(e->args), "%s", value);
		e->seen = true;
	}
	return 1;
}

int
dp_config_eal_args(const char *path, char ***out, int *n, char *err,
		   size_t errlen)
{
	struct eal_ctx e = {.seen = false};
	int line, rc = dp_ini_parse(path, eal_line, &e, &line);
	char **v, *tok, *save = NULL;
	int k = 0;

	*out = NULL;
	*n = 0;
	if (rc == DP_INI_OPEN) {
		snprintf(err, errlen, "%s: cannot open: %s", path, strerror(errno));
		return -ENOENT;
	}
	/* syntax errors are reported with the other options, later */
	if (!e.seen)
		return 0;
	v = calloc(DP_INI_LINE_MAX / 2 + 2, sizeof(*v));
	if (!v) {
		snprintf(err, errlen, "%s: out of memory", path);
		return -ENOMEM;
	}
	for (tok = strtok_r(e.args, " \t", &save); tok;
	     tok = strtok_r(NULL, " \t", &save))
		if (!(v[k++] = strdup(tok))) {
			snprintf(err, errlen, "%s: out of memory", path);
			return -ENOMEM;
		}
	*out = v;
	*n = k;
	return 0;
}

/* Build getopt's table from opts[]; -c/--config, -h, -V are handled apart. */
int
dp_config_args(struct dp_config *c, int argc, char **argv, char *err, size_t n)
{
	struct option lo[N_OPTS + 4];
	char so[64] = "c:hV";
	size_t k = strlen(so);
	int ch, idx, rc;

	for (unsigned i = 0; i < N_OPTS; i++) {
		lo[i] = (struct option){opts[i].name,
					opts[i].kind == OPT_FLAG ? no_argument
								 : required_argument,
					NULL, 1000 + (int)i};
		if (opts[i].shortopt) {
			so[k++] = opts[i].shortopt;
			so[k++] = ':';
			lo[i].val = opts[i].shortopt;
		}
	}
	so[k] = 0;
	lo[N_OPTS] = (struct option){"config", required_argument, NULL, 'c'};
	lo[N_OPTS + 1] = (struct option){"help", no_argument, NULL, 'h'};
	lo[N_OPTS + 2] = (struct option){"version", no_argument, NULL, 'V'};
	lo[N_OPTS + 3] = (struct option){NULL, 0, NULL, 0};

	/* First the file, so the command line overrides it. */
	optind = 1;
	opterr = 0;
	while ((ch = getopt_long(argc, argv, so, lo, &idx)) != -1)
		if (ch == 'c' && (rc = dp_config_file(c, optarg, err, n)) != 0)
			return rc;
	optind = 1;
	while ((ch = getopt_long(argc, argv, so, lo, &idx)) != -1) {
		const struct opt *o = NULL;

		if (ch == 'c')
			continue;
		if (ch == 'h')
			return DP_CONFIG_HELP;
		if (ch == 'V')
			return DP_CONFIG_VERSION;
		if (ch == '?') {
			snprintf(err, n, "unknown option or missing value: %s (see --help)",
				 argv[optind - 1]);
			return -EINVAL;
		}
		for (unsigned i = 0; i < N_OPTS; i++)
			if (ch == 1000 + (int)i || ch == opts[i].shortopt)
				o = &opts[i];
		if (o && (rc = set_one(c, o, optarg ? optarg : "", err, n)) != 0)
			return rc;
	}
	if (optind < argc) {
		snprintf(err, n, "unexpected argument '%s' (see --help)", argv[optind]);
		return -EINVAL;
	}
	/* A journal makes sync the default: money answers wait for it. */
	if (!c->ack_explicit)
		c->ack = c->journal_dir[0] ? DP_ACK_SYNC : DP_ACK_ASYNC;
	return 0;
}

int
dp_config_check(const struct dp_config *c, char *err, size_t n)
{
	if (c->ip == 0) {
		snprintf(err, n, "--ip is required: the IPv4 address authd answers on");
		return -EINVAL;
	}
	if (!c->keys[0]) {
		snprintf(err, n, "--keys is required: the gateways' keys file");
		return -EINVAL;
	}
	if (c->ack == DP_ACK_SYNC && !c->journal_dir[0]) {
		snprintf(err, n, "--ack sync needs --journal DIR: without a journal "
			 "nothing is ever durable");
		return -EINVAL;
	}
	if (c->export_url[0] && !c->journal_dir[0]) {
		snprintf(err, n, "--export needs --journal DIR: the export "
			 "publishes the journal's durable records");
		return -EINVAL;
	}
	if (c->export_url[0] &&
	    (dp_export_subject_check(c->export_subject, err, n) ||
	     dp_export_stream_check(c->export_stream, err, n)))
		return -EINVAL;
	if (c->ring_size & (c->ring_size - 1)) {
		snprintf(err, n, "--ring-size %u: must be a power of two", c->ring_size);
		return -EINVAL;
	}
	return 0;
}
