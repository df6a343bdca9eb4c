/*
 * authctl.c - the operator's client of authd's control socket.
 *
 * Turns a command line into one JSON request (dataplane/ctl_proto.h), sends
 * it over the unix socket, prints the answer as text (or as JSON with
 * --json). Arguments are validated here with the daemon's own parsers so
 * that a typo fails at once with the message the daemon would give; the
 * daemon validates again and is the authority.
 *
 * Exit status: 0 the daemon said ok; 1 it said no (message on stderr), or
 * it could not be reached; 2 usage error (nothing was sent).
 */
#define _GNU_SOURCE
#include <errno.h>
#include <getopt.h>
#include <limits.h>
#include <poll.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include <jansson.h>

#include "ctl_proto.h"

#define EXIT_NO 1
#define EXIT_USAGE 2

static bool opt_json;
static bool opt_ini;   /* policy show --ini */

/* ------------------------------------------------------------------------ */
/* Help                                                                       */

static const char help_main[] =
"NAME\n"
"    authctl - control a running authd (users, merchants, funders, policy,\n"
"    gateway keys, snapshots, clock, counters)\n"
"\n"
"SYNOPSIS\n"
"    authctl [-f PREFIX | -s SOCKET] [--json] [--timeout MS] COMMAND [ARGS]\n"
"    authctl help [COMMAND]\n"
"    authctl [-f PREFIX | -s SOCKET] --raw JSON\n"
"\n"
"DESCRIPTION\n"
"    authctl sends one request to authd's control socket and prints the\n"
"    answer. Changes take effect for the next payment the engine decides.\n"
"    A request is all or nothing: when any argument is invalid, nothing\n"
"    changes. authctl checks the arguments before sending (same rules and\n"
"    messages as the daemon), and the daemon checks them again.\n"
"    Every changing command is logged by authd with the caller's uid.\n"
"\n"
"OPTIONS\n"
"    -f, --file-prefix PREFIX\n"
"        talk to the authd started with EAL --file-prefix PREFIX: its socket\n"
"        is authd.sock in that EAL runtime directory (/var/run/dpdk/PREFIX/\n"
"        for root, $XDG_RUNTIME_DIR/dpdk/PREFIX/ or /tmp/dpdk/PREFIX/ for\n"
"        others). Default prefix: rte.\n"
"    -s, --socket PATH\n"
"        the control socket itself (authd --ctl PATH)\n"
"    -j, --json\n"
"        print the daemon's answer as JSON (one line) instead of text\n"
"    -t, --timeout MS\n"
"        give up waiting for the answer after MS milliseconds (default 5000)\n"
"    --raw JSON\n"
"        send JSON as the request, unchecked, and print the answer as JSON\n"
"        (for scripts and for testing the daemon's own validation)\n"
"    -h, --help\n"
"        this text; `authctl help COMMAND` details one command\n"
"\n"
"COMMANDS\n"
"    stats                     counters: totals and per lcore\n"
"    user show ID              a user's settings and balances\n"
"    user set ID [OPTIONS]     change a user (see authctl help user)\n"
"    user add ID --limit A [OPTIONS]\n"
"                              add a user\n"
"    user freeze ID            decline the user's authorizations (USER_FROZEN)\n"
"    user unfreeze ID          lift a freeze\n"
"    merchant show ID\n"
"    merchant set ID [--mcc N] [--region N] [--subsidy 3,6,12|none] [--risk N]\n"
"    merchant block ID         decline payments to it (adds it if unknown)\n"
"    merchant unblock ID\n"
"    funder list               partner banks in priority order, quotas\n"
"    funder set ID [--quota A] [--share PCT] [--region N] [--products LIST]\n"
"    funder del ID\n"
"    policy show [--ini]       every policy key (--ini: as a --policy file)\n"
"    policy set KEY=VALUE...   change policy keys (see authctl help policy)\n"
"    keys show                 gateways, key ids, allowed sources\n"
"    keys rotate GATEWAY       new key for a gateway, printed once\n"
"    snapshot save FILE        write every table to FILE (no stop)\n"
"    clock show\n"
"    clock set TIME            move a fixed clock (authd --clock fixed:...)\n"
"    risk show                 the risk worker: mode, thresholds, counters\n"
"    risk set KEY=VALUE...     risk mode (on, shadow, off) or a threshold\n"
"\n"
"UNITS\n"
"    AMOUNT   yuan with up to two decimals (5000, 5000.5, 5000.50) or fen\n"
"             with a fen suffix (500050fen); never negative; at most\n"
"             10000000000000.00 yuan. 12.345 is refused: no rounding.\n"
"    TIME     unix seconds (1764057600) or ISO 8601 in UTC: 2026-11-25,\n"
"             2026-11-25T08:00Z, 2026-11-25T08:00:00Z, ...+00:00\n"
"    DURATION 7d, 12h, 30m, 45s, combined (1d12h) or plain seconds\n"
"    TZ       a UTC offset within +-14:00: +08:00, -05:30, +0800, +8, Z\n"
"    ID       decimal; user ids 1..2^64-1, merchant ids 1..2^32-1,\n"
"             funder ids 0..65535 (0 = the company's own book)\n"
"\n"
"EXIT STATUS\n"
"    0  the daemon answered ok\n"
"    1  the daemon refused (its message on stderr) or could not be reached\n"
"    2  usage error: nothing was sent\n"
"\n"
"EXAMPLES\n"
"    authctl -f prod stats\n"
"    authctl -f prod user set 10042 --limit 8000 --self-cap 2000 --soft-cap\n"
"    authctl -f prod user set 10042 --temp-quota 3000 --until 2026-11-12T00:00:00Z\n"
"    authctl -f prod user freeze 10042\n"
"    authctl -f prod merchant block 5501\n"
"    authctl -f prod policy set tier.1.vel-min-n=3 cool-cash=2d tz=+08:00\n"
"    authctl -f prod funder set 2 --quota 5000000000 --share 70 --products pl,inst\n"
"    authctl -f prod keys rotate 42\n"
"    authctl -f prod snapshot save /var/lib/authd/users.snap\n"
"    authctl -s /tmp/authd.sock --json user show 10042\n";

static const char help_stats[] =
"authctl stats\n"
"    Counters of every dataplane lcore, summed and per lcore. Text output\n"
"    shows the non-zero counters (total and one column per lcore), the\n"
"    answers by status and by reason code, the datagrams dropped without an\n"
"    answer by cause (codec/* and nic/*), the RX burst histogram, cycles and\n"
"    nanoseconds per packet (busy bursts only), the ledger (effects drained,\n"
"    durable seq), the op store and the user table, and the uptime.\n"
"    The same counters are in DPDK telemetry: /authd/stats, /authd/lcore,N,\n"
"    /authd/drops, /authd/reasons.\n";

static const char help_user[] =
"authctl user show ID\n"
"    Settings and balances of user ID: limit, temporary quota, outstanding\n"
"    debt by product, holds, available credit (limit + live temporary quota\n"
"    - debt - holds), self cap and what is left under it this month, month\n"
"    spend, velocity windows (this minute, this day, in the policy's time\n"
"    zone), cash limit, alert threshold, cooling-off end, tier, region,\n"
"    risk score, flags.\n"
"\n"
"authctl user set ID [OPTIONS]\n"
"authctl user add ID --limit AMOUNT [OPTIONS]\n"
"    --limit AMOUNT          credit limit. A raise also stops cash loans until\n"
"                            now + policy cool-raise (cooling-off)\n"
"    --temp-quota AMOUNT --until TIME\n"
"                            extra credit until TIME (both together; 0 removes)\n"
"    --self-cap AMOUNT|none  the user's own monthly cap (bill assistant)\n"
"    --soft-cap              over the cap: approve, note OVER_SELF_CAP_SOFT\n"
"    --hard-cap              over the cap: decline OVER_SELF_CAP (default)\n"
"    --tier N                0..7; the tier gates products, terms, velocity\n"
"    --region N              0..65535 (regional banks fund their region only)\n"
"    --cash-limit AMOUNT|default\n"
"                            cash-loan sub-limit; default: tier cash-pct\n"
"    --alert AMOUNT|default  LARGE_SPEND note threshold; default: the tier's\n"
"    --risk N                risk score 0..1000 (kept in steps of 4)\n"
"    user add requires --limit; a new user starts in tier 0 unless --tier.\n"
"\n"
"authctl user freeze ID / user unfreeze ID\n"
"    A frozen user's authorizations are declined USER_FROZEN; captures,\n"
"    voids, refunds and repayments still go through.\n"
"\n"
"Examples:\n"
"    authctl user set 10042 --limit 5000.50 --tier 3\n"
"    authctl user set 10042 --self-cap none --cash-limit default\n"
"    authctl user add 77 --limit 200000fen --region 110\n";

static const char help_merchant[] =
"authctl merchant show ID\n"
"authctl merchant set ID [--mcc N] [--region N] [--subsidy 3,6,12|none] [--risk N]\n"
"    Adds the merchant when unknown. --subsidy lists the installment terms\n"
"    whose interest the merchant pays (answers note INTEREST_FREE);\n"
"    --risk 0..1000 (at or above policy risk-decline: RISK_CASHOUT).\n"
"authctl merchant block ID / merchant unblock ID\n"
"    Authorizations to a blocked merchant are declined MERCHANT_BLOCKED.\n"
"    Blocking an unknown merchant adds it, blocked.\n"
"Example: authctl merchant set 5501 --mcc 5411 --subsidy 3,6\n";

static const char help_funder[] =
"authctl funder list\n"
"    The funder table in priority order: slot, id, quota, what is left of\n"
"    it (free), the bank's share, region (0 = national), products.\n"
"authctl funder set ID [--quota AMOUNT] [--share PCT] [--region N] [--products LIST]\n"
"    Changes funder ID, or appends a new partner bank (then --quota and\n"
"    --share are required; products default to all). LIST: pl,inst,cash\n"
"    (pay later, installment, cash loan) or none. Funder 0 is the company\n"
"    funding alone: national, share 0; only its quota and products change.\n"
"    A quota below what the funder has lent or reserved is refused.\n"
"authctl funder del ID\n"
"    Removes a partner bank; funder 0 cannot be removed.\n"
"Example: authctl funder set 3 --quota 2000000000 --share 50 --region 110\n";

static const char help_policy_head[] =
"authctl policy show [--ini]\n"
"    Every key and its value, as policy set takes it. --ini prints a file\n"
"    for authd --policy FILE.\n"
"authctl policy set KEY=VALUE ...\n"
"    Changes the keys given, all or none: each value is checked, then the\n"
"    policy as a whole (retain >= hold-ttl, ...), then it is published.\n"
"    Keys (N = tier 0..7):\n";

static const char help_policy_tail[] =
"Example: authctl policy set tier.0.vel-min-n=1 hold-ttl=3d tz=+08:00\n";

static const char help_keys[] =
"authctl keys show\n"
"    Gateways, their valid key ids and allowed source ranges. Key material\n"
"    is never shown.\n"
"authctl keys rotate GATEWAY\n"
"    Makes a new 16-byte key for GATEWAY with key id = the highest + 1,\n"
"    keeps the newest two (the previous key stays valid so gateways switch\n"
"    without downtime; the one before is dropped), writes the keys file\n"
"    (authd --keys) atomically with mode 0600, and applies it to the next\n"
"    datagram. Prints the new key id and the key in hex: hand it to the\n"
"    gateway over a secure channel; it is not shown again.\n";

static const char help_snapshot[] =
"authctl snapshot save FILE\n"
"    Writes users, merchants, groups, funders, policy and open operations\n"
"    to FILE (a temporary file, fsync, rename) while the engine runs; load\n"
"    it with authd --snapshot FILE. A relative FILE is taken from the\n"
"    current directory.\n";

static const char help_risk[] =
"authctl risk show\n"
"    The risk worker (authd --risk): its mode (on applies verdicts, shadow\n"
"    only logs them, off), thresholds, table sizes, counters (verdicts by\n"
"    kind and by detector, decision records dropped by full rings) and\n"
"    table use. With --risk off: mode off and nothing else.\n"
"authctl risk set KEY=VALUE ...\n"
"    Changes the mode (mode=on|shadow|off) or thresholds at run time; the\n"
"    worker takes them before its next batch. Keys and their meaning are in\n"
"    docs/risk.md; table sizes are set at start only (authd --risk-set).\n"
"    Settings are applied in order; the first bad one stops the rest and\n"
"    the message says how many were applied.\n"
"Example: authctl risk set mode=shadow\n";

static const char help_clock[] =
"authctl clock show\n"
"    The engine's clock: real (wall clock at start + TSC) or fixed.\n"
"authctl clock set TIME\n"
"    Moves a fixed clock (authd --clock fixed:SECONDS; for tests) to TIME;\n"
"    refused on a real clock.\n"
"Example: authctl clock set 2026-11-25T08:00:00Z\n";

static void
help_policy(FILE *f)
{
	fputs(help_policy_head, f);
	for (unsigned i = 0; i < CTL_POLICY_KEYS; i++)
		fprintf(f, "      %-22s %s\n", ctl_policy_keys[i].name, ctl_policy_keys[i].help);
	for (unsigned i = 0; i < CTL_TIER_KEYS; i++) {
		char k[48];

		snprintf(k, sizeof(k), "tier.N.%s", ctl_tier_keys[i].name);
		fprintf(f, "      %-22s %s\n", k, ctl_tier_keys[i].help);
	}
	fputs(help_policy_tail, f);
}

/* `authctl help WORD`: 0, or EXIT_USAGE for an unknown word. */
static int
help_topic(const char *w)
{
	static const struct { const char *word; const char *text; } topics[] = {
		{"stats", help_stats}, {"user", help_user}, {"merchant", help_merchant},
		{"funder", help_funder}, {"keys", help_keys}, {"snapshot", help_snapshot},
		{"clock", help_clock}, {"risk", help_risk},
	};

	if (!w) {
		fputs(help_main, stdout);
		return 0;
	}
	if (!strcmp(w, "policy")) {
		help_policy(stdout);
		return 0;
	}
	for (unsigned i = 0; i < sizeof(topics) / sizeof(topics[0]); i++)
		if (!strcmp(w, topics[i].word)) {
			fputs(topics[i].text, stdout);
			return 0;
		}
	fprintf(stderr, "authctl: help: no command '%s' (authctl --help lists them)\n", w);
	return EXIT_USAGE;
}

__attribute__((format(printf, 1, 2))) static int
usage_error(const char *fmt, ...)
{
	va_list ap;

	fprintf(stderr, "authctl: ");
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fprintf(stderr, "\n");
	return EXIT_USAGE;
}

/* ------------------------------------------------------------------------ */
/* Building the request                                                       */

/* An absolute path for @p file (relative to the current directory). */
static char *
absolute(const char *file)
{
	char cwd[PATH_MAX], *out;

	if (file[0] == '/')
		return strdup(file);
	if (!getcwd(cwd, sizeof(cwd)))
		return NULL;
	if (asprintf(&out, "%s/%s", cwd, file) < 0)
		return NULL;
	return out;
}

/* --name or --name=value at argv[*i]; value from the next word if needed. */
static int
parse_opt(struct ctl_req *r, json_t *opts, int argc, char **argv, int *i)
{
	char name[64], err[320];
	const char *a = argv[*i] + 2, *eq = strchr(a, '='), *v = NULL;
	size_t len = eq ? (size_t)(eq - a) : strlen(a);
	int k;

	if (len >= sizeof(name))
		return usage_error("%s: unknown option %s", r->cmd->name, argv[*i]);
	memcpy(name, a, len);
	name[len] = '\0';
	k = ctl_opt_index(r->cmd->opts, name);
	if (k < 0)
		return usage_error("%s: unknown option --%s (see authctl help COMMAND)",
				   r->cmd->name, name);
	if (r->opt[k].set)
		return usage_error("%s: --%s given twice", r->cmd->name, name);
	if (r->cmd->opts[k].kind == CTL_V_FLAG) {
		if (eq)
			return usage_error("%s: --%s takes no value", r->cmd->name, name);
		r->opt[k].set = true;
		json_object_set_new(opts, name, json_true());
		return 0;
	}
	v = eq ? eq + 1 : (*i + 1 < argc ? argv[++*i] : NULL);
	if (!v)
		return usage_error("%s: --%s needs a value", r->cmd->name, name);
	if (ctl_val_parse(&r->cmd->opts[k], false, v, &r->opt[k], err, sizeof(err)))
		return usage_error("%s: %s", r->cmd->name, err);
	json_object_set_new(opts, name, json_string(v));
	return 0;
}

static int
parse_arg(struct ctl_req *r, json_t *args, const char *a, char **owned)
{
	char err[320];

	if (r->n_args == r->cmd->args_max)
		return usage_error("%s: unexpected argument '%s'", r->cmd->name, a);
	if (r->cmd->arg->kind == CTL_V_PATH) {
		*owned = absolute(a);
		if (!*owned)
			return usage_error("%s: %s: cannot make the path absolute",
					   r->cmd->name, a);
		a = *owned;
	}
	if (ctl_val_parse(r->cmd->arg, true, a, &r->arg[r->n_args], err, sizeof(err)))
		return usage_error("%s: %s", r->cmd->name, err);
	r->args[r->n_args++] = a;
	json_array_append_new(args, json_string(a));
	return 0;
}

/* The command named by argv[0] (and argv[1]); *used = words it took. */
static const struct ctl_cmd *
find_cmd(int argc, char **argv, int *used)
{
	char name[64];

	*used = 1;
	if (argc >= 1 && ctl_cmd_find(argv[0]))
		return ctl_cmd_find(argv[0]);
	if (argc < 2 ||
	    snprintf(name, sizeof(name), "%s %s", argv[0], argv[1]) >=
		    (int)sizeof(name))
		return NULL;
	*used = 2;
	return ctl_cmd_find(name);
}

/* argv (after the global options) -> a checked request. 0 or EXIT_USAGE. */
static int
build_request(int argc, char **argv, json_t **out)
{
	struct ctl_req r;
	json_t *args = json_array(), *opts = json_object();
	char *owned = NULL, err[320];
	int used = 0, rc = 0;

	memset(&r, 0, sizeof(r));
	r.cmd = find_cmd(argc, argv, &used);
	if (!r.cmd) {
		json_decref(args);
		json_decref(opts);
		return usage_error("unknown command '%s%s' (authctl --help lists them)",
				   argc ? argv[0] : "", argc > 1 ? " ..." : "");
	}
	for (int i = used; i < argc && rc == 0; i++) {
		if (!strcmp(argv[i], "--ini") && !strcmp(r.cmd->name, "policy show"))
			opt_ini = true;
		else if (!strncmp(argv[i], "--", 2) && argv[i][2])
			rc = parse_opt(&r, opts, argc, argv, &i);
		else
			rc = parse_arg(&r, args, argv[i], &owned);
	}
	if (rc == 0 && r.n_args < r.cmd->args_min)
		rc = usage_error("%s: missing argument (usage: authctl %s)", r.cmd->name,
				 r.cmd->synopsis);
	if (rc == 0 && ctl_req_check(&r, err, sizeof(err)))
		rc = usage_error("%s", err);
	if (rc == 0)
		*out = json_pack("{s:i,s:s,s:O,s:O}", "v", CTL_PROTO_VERSION, "cmd",
				 r.cmd->name, "args", args, "opts", opts);
	json_decref(args);
	json_decref(opts);
	free(owned);
	return rc;
}

/* ------------------------------------------------------------------------ */
/* Talking to the daemon                                                      */

static int
socket_path(const char *prefix, const char *sock, char *out, size_t n)
{
	const char *xdg = getenv("XDG_RUNTIME_DIR");

	if (sock)
		return snprintf(out, n, "%s", sock) >= (int)n ? -1 : 0;
	if (!prefix)
		prefix = "rte";
	if (getuid() == 0)
		return snprintf(out, n, "%s/%s/%s", CTL_RUNTIME_DIR, prefix, CTL_SOCK_NAME) >=
		       (int)n ? -1 : 0;
	return snprintf(out, n, "%s/dpdk/%s/%s", xdg ? xdg : "/tmp", prefix,
			CTL_SOCK_NAME) >= (int)n ? -1 : 0;
}

/* Send @p req, read the answer line into *ans (malloc'd). 0 or EXIT_NO. */
static int
exchange(const char *path, const char *req, int timeout_ms, char **ans)
{
	struct sockaddr_un a = {.sun_family = AF_UNIX};
	size_t cap = 1 << 16, len = 0, rl = strlen(req);
	char *buf = malloc(cap);
	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);

	snprintf(a.sun_path, sizeof(a.sun_path), "%s", path);
	if (!buf || fd < 0 || connect(fd, (struct sockaddr *)&a, sizeof(a))) {
		fprintf(stderr, "authctl: cannot connect to %s: %s (is authd running? "
				"pick it with -f PREFIX or -s SOCKET)\n", path, strerror(errno));
		goto fail;
	}
	/* A refused peer is answered before its request is read, and the
	 * socket closed: the send may fail (EPIPE) with the answer waiting. */
	if ((send(fd, req, rl, MSG_NOSIGNAL) != (ssize_t)rl ||
	     send(fd, "\n", 1, MSG_NOSIGNAL) != 1) &&
	    errno != EPIPE && errno != ECONNRESET) {
		fprintf(stderr, "authctl: %s: send: %s\n", path, strerror(errno));
		goto fail;
	}
	for (;;) {
		struct pollfd p = {fd, POLLIN, 0};
		ssize_t r;

		if (poll(&p, 1, timeout_ms) <= 0) {
			fprintf(stderr, "authctl: %s: no answer within %d ms\n", path, timeout_ms);
			goto fail;
		}
		if (len + 1 == cap) {
			char *nb = realloc(buf, cap *= 2);

			if (!nb)
				goto fail;
			buf = nb;
		}
		r = read(fd, buf + len, cap - len - 1);
		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0)
			break;
		len += (size_t)r;
		if (memchr(buf + len - (size_t)r, '\n', (size_t)r))
			break;
	}
	close(fd);
	buf[len] = '\0';
	if (!len) {
		fprintf(stderr, "authctl: %s: the daemon closed without answering\n", path);
		free(buf);
		return EXIT_NO;
	}
	*ans = buf;
	return 0;
fail:
	if (fd >= 0)
		close(fd);
	free(buf);
	return EXIT_NO;
}

/* ------------------------------------------------------------------------ */
/* Printing answers                                                           */

static json_int_t
geti(json_t *o, const char *path)
{
	char key[64];
	const char *dot;

	while ((dot = strchr(path, '.')) && o) {
		snprintf(key, sizeof(key), "%.*s", (int)(dot - path), path);
		o = json_object_get(o, key);
		path = dot + 1;
	}
	return o ? json_integer_value(json_object_get(o, path)) : 0;
}

/* A string member ("" when absent): user ids travel as decimal strings. */
static const char *
getstr(json_t *o, const char *key)
{
	const char *s = json_string_value(json_object_get(o, key));

	return s ? s : "";
}

static const char *
yuan(json_t *v, char *buf, size_t n)
{
	if (!v || json_is_null(v))
		return "none";
	return lim_fmt_yuan(json_integer_value(v), buf, n);
}

static void
print_dict_nonzero(const char *title, json_t *total, json_t *lcores, const char *sub)
{
	const char *k;
	json_t *v;
	bool any = false;

	json_object_foreach(total, k, v) {
		size_t i;
		json_t *l;

		if (!json_is_integer(v) || json_integer_value(v) == 0)
			continue;
		if (!any)
			printf("%s\n", title);
		any = true;
		printf("  %-22s %14lld", k, (long long)json_integer_value(v));
		json_array_foreach(lcores, i, l)
			if (json_array_size(lcores) > 1)
				printf(" %14lld", (long long)json_integer_value(
					json_object_get(json_object_get(l, sub), k)));
		printf("\n");
	}
}

static void
print_stats(json_t *a)
{
	json_t *t = json_object_get(a, "total"), *lcs = json_object_get(a, "lcores");
	json_t *nic = json_object_get(t, "nic"), *b = json_object_get(t, "burst"), *v;
	size_t i;

	printf("uptime %llds, %zu lcore(s); users %lld of %lld (%lld bytes); ops %lld of %lld\n",
	       (long long)geti(a, "uptime_s"), json_array_size(lcs),
	       (long long)geti(a, "users.count"), (long long)geti(a, "users.capacity"),
	       (long long)geti(a, "users.bytes"), (long long)geti(a, "ops.count"),
	       (long long)geti(a, "ops.capacity"));
	printf("ledger: %s%s, drained %lld, durable seq %lld, last seq %lld, lag %lld\n",
	       json_is_true(json_object_get(json_object_get(a, "ledger"), "journal"))
		       ? "journal" : "no journal",
	       json_is_string(json_object_get(json_object_get(a, "ledger"), "state")) &&
			       strcmp(json_string_value(json_object_get(
					      json_object_get(a, "ledger"), "state")), "ok")
		       ? " FAILED" : "",
	       (long long)geti(a, "ledger.drained"), (long long)geti(a, "ledger.durable_seq"),
	       (long long)geti(a, "ledger.seq"), (long long)geti(a, "ledger.lag"));
	if (geti(a, "ledger.batches"))
		printf("journal: %lld batches, %lld bytes, fsync avg %.1f us, max %lld us\n",
		       (long long)geti(a, "ledger.batches"), (long long)geti(a, "ledger.bytes"),
		       json_real_value(json_object_get(json_object_get(a, "ledger"),
						       "fsync_us_avg")),
		       (long long)geti(a, "ledger.fsync_us_max"));
	printf("per packet: %.1f cycles, %.1f ns (busy bursts, %s; since start "
	       "%.1f cycles)\n",
	       json_real_value(json_object_get(t, "cycles_per_pkt")),
	       json_real_value(json_object_get(t, "ns_per_pkt")),
	       geti(t, "cycles_per_pkt_window_pkts") ? "last second with traffic"
						     : "since start",
	       json_real_value(json_object_get(t, "cycles_per_pkt_since_start")));
	if (json_array_size(lcs) > 1) {
		printf("%-24s %14s", "", "total");
		json_array_foreach(lcs, i, v)
			printf("   lcore %-6lld", (long long)geti(v, "lcore"));
		printf("\n");
	}
	print_dict_nonzero("counters:", json_object_get(t, "counters"), lcs, "counters");
	print_dict_nonzero("status:", json_object_get(t, "status"), lcs, "status");
	print_dict_nonzero("reasons:", json_object_get(t, "reasons"), lcs, "reasons");
	print_dict_nonzero("drops (codec):", json_object_get(t, "drops"), lcs, "drops");
	print_dict_nonzero("nic:", nic, NULL, NULL);
	print_dict_nonzero("drops (nic):", json_object_get(nic, "drops"), NULL, NULL);
	printf("bursts (size:count):");
	json_array_foreach(b, i, v)
		if (json_integer_value(v))
			printf(" %zu:%lld", i, (long long)json_integer_value(v));
	printf("\n");
}

static void
print_user(json_t *a)
{
	json_t *u = json_object_get(a, "user"), *sp = json_object_get(u, "spend");
	char b1[32], b2[32], b3[32], iso[32];
	json_t *fl = json_object_get(u, "flags"), *v;
	size_t i;

	printf("user %s   tier %lld   region %lld   risk %lld   flags:",
	       getstr(u, "id"), (long long)geti(u, "tier"), (long long)geti(u, "region"),
	       (long long)geti(u, "risk"));
	json_array_foreach(fl, i, v)
		printf(" %s", json_string_value(v));
	printf("%s\n", json_array_size(fl) ? "" : " none");
	printf("  limit         %14s   available %s\n", yuan(json_object_get(u, "limit_fen"), b1, 32),
	       yuan(json_object_get(u, "available_fen"), b2, 32));
	printf("  temp quota    %14s   until %s%s\n",
	       yuan(json_object_get(u, "temp_quota_fen"), b1, 32),
	       geti(u, "temp_until_s") ? lim_fmt_time((uint32_t)geti(u, "temp_until_s"), iso,
						      sizeof(iso)) : "-",
	       json_is_true(json_object_get(u, "temp_active")) ? " (active)" : "");
	printf("  outstanding   %14s   pay later %s, installment %s\n",
	       yuan(json_object_get(u, "outstanding_fen"), b1, 32),
	       yuan(json_object_get(u, "paylater_fen"), b2, 32),
	       yuan(json_object_get(u, "inst_fen"), b3, 32));
	printf("  cash debt     %14s   cash limit %s%s\n", yuan(json_object_get(u, "cash_fen"), b1, 32),
	       yuan(json_object_get(u, "cash_limit_fen"), b2, 32),
	       json_is_null(json_object_get(u, "cash_limit_override_fen")) ? " (tier)" : "");
	printf("  holds         %14s\n", yuan(json_object_get(u, "holds_fen"), b1, 32));
	printf("  self cap      %14s   %s cap, left this month %s\n",
	       yuan(json_object_get(u, "self_cap_fen"), b1, 32),
	       json_string_value(json_object_get(u, "cap_mode")),
	       geti(u, "self_cap_left_fen") < 0 ? "-" : yuan(json_object_get(u, "self_cap_left_fen"), b2, 32));
	printf("  month spend   %14s   alert at %s%s\n", yuan(json_object_get(sp, "month_spend_fen"), b1, 32),
	       yuan(json_object_get(u, "alert_fen"), b2, 32),
	       json_is_null(json_object_get(u, "alert_override_fen")) ? " (tier)" : "");
	printf("  velocity      minute %lld / %s, day %lld / %s\n", (long long)geti(sp, "minute.n"),
	       yuan(json_object_get(json_object_get(sp, "minute"), "fen"), b1, 32),
	       (long long)geti(sp, "day.n"),
	       yuan(json_object_get(json_object_get(sp, "day"), "fen"), b2, 32));
	printf("  cooling off until %s\n",
	       geti(u, "cool_until_s") ? lim_fmt_time((uint32_t)geti(u, "cool_until_s"), iso, 32) : "-");
}

static void
print_funders(json_t *a)
{
	json_t *v;
	size_t i;
	char b1[32], b2[32];

	printf("%-4s %-6s %20s %20s %6s %7s  %s\n", "slot", "id", "quota", "free", "share",
	       "region", "products");
	json_array_foreach(json_object_get(a, "funders"), i, v)
		printf("%-4lld %-6lld %20s %20s %5lld%% %7lld  %s\n", (long long)geti(v, "slot"),
		       (long long)geti(v, "id"), yuan(json_object_get(v, "quota_fen"), b1, 32),
		       yuan(json_object_get(v, "free_fen"), b2, 32), (long long)geti(v, "share_pct"),
		       (long long)geti(v, "region"),
		       json_string_value(json_object_get(v, "products")));
}

static void
print_keys(json_t *a)
{
	json_t *g, *v;
	size_t i, j;

	printf("keys file %s\n%-12s %-16s %s\n", json_string_value(json_object_get(a, "file")),
	       "gateway", "key ids", "allowed sources");
	json_array_foreach(json_object_get(a, "gateways"), i, g) {
		char ids[64] = "";
		size_t off = 0;

		json_array_foreach(json_object_get(g, "key_ids"), j, v)
			off += (size_t)snprintf(ids + off, sizeof(ids) - off, "%s%lld", j ? "," : "",
						(long long)json_integer_value(v));
		printf("%-12lld %-16s", (long long)geti(g, "gateway"), ids);
		json_array_foreach(json_object_get(g, "allow"), j, v)
			printf("%s%s", j ? ", " : " ", json_string_value(v));
		printf("%s\n", json_array_size(json_object_get(g, "allow")) ? "" : " any");
	}
}

static void
print_policy(json_t *a)
{
	const char *k;
	json_t *v;

	if (opt_ini)
		printf("; authd policy (authd --policy FILE)\n[policy]\n");
	json_object_foreach(json_object_get(a, "policy"), k, v)
		printf("%s = %s\n", k, json_string_value(v));
}

static void
print_generic(const char *cmd, json_t *a)
{
	json_t *m = json_object_get(a, "merchant");
	char iso[32];

	if (m) {
		printf("merchant %lld   mcc %lld   region %lld   risk %lld   subsidy %s%s\n",
		       (long long)geti(m, "id"), (long long)geti(m, "mcc"),
		       (long long)geti(m, "region"), (long long)geti(m, "risk"),
		       json_string_value(json_object_get(m, "subsidy")),
		       json_is_true(json_object_get(m, "blocked")) ? "   BLOCKED" : "");
	} else if (!strncmp(cmd, "clock", 5)) {
		printf("%s clock: %lld (%s)\n", json_string_value(json_object_get(a, "mode")),
		       (long long)geti(a, "now_s"),
		       lim_fmt_time((uint32_t)geti(a, "now_s"), iso, sizeof(iso)));
	} else if (!strcmp(cmd, "keys rotate")) {
		printf("gateway %lld: new key id %lld; key id %lld stays valid, older ids "
		       "are dropped\nkey.%lld = %s\n(written to %s; hand the key to the "
		       "gateway, it is not shown again)\n",
		       (long long)geti(a, "gateway"), (long long)geti(a, "key_id"),
		       (long long)geti(a, "previous_key_id"), (long long)geti(a, "key_id"),
		       json_string_value(json_object_get(a, "key")),
		       json_string_value(json_object_get(a, "file")));
	} else if (json_object_get(a, "frozen")) {
		printf("user %s %s\n", getstr(a, "user"),
		       json_is_true(json_object_get(a, "frozen")) ? "frozen" : "unfrozen");
	} else if (!strcmp(cmd, "snapshot save")) {
		printf("saved %lld users to %s (seq %lld)\n", (long long)geti(a, "users"),
		       json_string_value(json_object_get(a, "file")), (long long)geti(a, "seq"));
	} else {
		printf("ok\n");
	}
}

static void
print_risk(json_t *a)
{
	json_t *c = json_object_get(a, "counters");
	const char *k;
	json_t *v;

	printf("risk worker: %s\n", json_string_value(json_object_get(a, "mode")));
	json_object_foreach(json_object_get(a, "thresholds"), k, v)
		printf("  %-28s %lld\n", k, (long long)json_integer_value(v));
	print_dict_nonzero("counters:", c, NULL, NULL);
	print_dict_nonzero("verdicts by kind:", json_object_get(c, "by_kind"), NULL, NULL);
	print_dict_nonzero("verdicts by detector:", json_object_get(c, "by_detector"),
			   NULL, NULL);
}

static void
print_answer(const char *cmd, json_t *a)
{
	if (!strcmp(cmd, "stats"))
		print_stats(a);
	else if (!strncmp(cmd, "risk", 4))
		print_risk(a);
	else if (json_object_get(a, "user") && json_is_object(json_object_get(a, "user")))
		print_user(a);
	else if (json_object_get(a, "funders"))
		print_funders(a);
	else if (!strcmp(cmd, "keys show"))
		print_keys(a);
	else if (json_object_get(a, "policy"))
		print_policy(a);
	else
		print_generic(cmd, a);
}

/* ------------------------------------------------------------------------ */

static int
run(const char *path, const char *req, const char *cmd, int timeout_ms, bool raw)
{
	char *text = NULL;
	json_error_t jerr;
	json_t *ans, *ok;
	int rc = exchange(path, req, timeout_ms, &text);

	if (rc)
		return rc;
	ans = json_loads(text, 0, &jerr);
	ok = ans ? json_object_get(ans, "ok") : NULL;
	if (!ok) {
		fprintf(stderr, "authctl: unreadable answer: %s\n", text);
		rc = EXIT_NO;
	} else if (!json_is_true(ok)) {
		if (raw || opt_json)
			fputs(text, stdout);
		fprintf(stderr, "authctl: %s\n", json_string_value(json_object_get(ans, "error")));
		rc = EXIT_NO;
	} else if (raw || opt_json) {
		fputs(text, stdout);
	} else {
		print_answer(cmd, ans);
	}
	json_decref(ans);
	free(text);
	return rc;
}

int
main(int argc, char **argv)
{
	static const struct option lo[] = {
		{"file-prefix", required_argument, NULL, 'f'},
		{"socket", required_argument, NULL, 's'},
		{"json", no_argument, NULL, 'j'},
		{"timeout", required_argument, NULL, 't'},
		{"raw", required_argument, NULL, 'r'},
		{"help", no_argument, NULL, 'h'},
		{NULL, 0, NULL, 0},
	};
	const char *prefix = NULL, *sock = NULL, *raw = NULL;
	char path[sizeof(((struct sockaddr_un *)0)->sun_path)], *req;
	uint64_t timeout_ms = 5000;
	json_t *jreq = NULL;
	int ch, rc;

	/* "+": stop at the command, so its options are not taken for ours. */
	while ((ch = getopt_long(argc, argv, "+f:s:jt:h", lo, NULL)) != -1) {
		switch (ch) {
		case 'f': prefix = optarg; break;
		case 's': sock = optarg; break;
		case 'j': opt_json = true; break;
		case 'r': raw = optarg; break;
		case 't':
			if (lim_parse_u64(optarg, 600000, &timeout_ms) || !timeout_ms)
				return usage_error("--timeout %s: expected 1..600000 ms",
						   optarg);
			break;
		case 'h': return help_topic(NULL);
		default:
			fprintf(stderr, "authctl --help shows the options\n");
			return EXIT_USAGE;
		}
	}
	if (prefix && sock)
		return usage_error("-f and -s exclude each other");
	if (optind < argc && !strcmp(argv[optind], "help"))
		return optind + 2 < argc ? usage_error("help takes one word")
					 : help_topic(argv[optind + 1]);
	if (socket_path(prefix, sock, path, sizeof(path)))
		return usage_error("socket path too long");
	if (raw)
		return optind < argc ? usage_error("--raw takes the whole request")
				     : run(path, raw, "", (int)timeout_ms, true);
	if (optind == argc)
		return usage_error("no command (authctl --help lists them)");
	rc = build_request(argc - optind, argv + optind, &jreq);
	if (rc)
		return rc;
	req = json_dumps(jreq, JSON_COMPACT);
	rc = req ? run(path, req, json_string_value(json_object_get(jreq, "cmd")),
		       (int)timeout_ms, false) : EXIT_NO;
	free(req);
	json_decref(jreq);
	return rc;
}
