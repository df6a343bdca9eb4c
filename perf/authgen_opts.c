/*
 * authgen_opts.c - authgen's options (after the EAL's "--") and --help.
 *
 * Every option is checked here, with a message naming the option and the
 * value, so a worker never meets a configuration it cannot run. Money in the
 * options is yuan with up to two decimals, parsed as integers (fen): no
 * floating point for money.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "authgen.h"

static const char *const op_names[GEN_OPS] = {
	NULL, "authorize", "capture", "void", "refund", "repay",
};
static const char *const product_names[GEN_PRODUCTS] = {
	NULL, "paylater", "installment", "cash",
};

#ifndef GEN_PLOT_SCRIPT
#define GEN_PLOT_SCRIPT "perf/authgen_plot.gp"
#endif

void
gen_usage(FILE *f)
{
	fprintf(f,
"Usage: authgen [EAL options] -- [options]\n"
"\n"
"authgen plays a payment gateway: it sends protocol-v1 request datagrams to\n"
"authd over a DPDK port, receives the answers, verifies each one (tag with\n"
"the gateway key, type 2, seq, sent_ns and every request_id/user_id/op echoed\n"
"in order) and reports rates, answers by status and reason, and latency\n"
"(from the sent_ns authd echoes to the moment the answer is received).\n"
"\n"
"EAL options first; without hugepages, against authd on a memif socket:\n"
"  authgen --no-huge --no-pci -m 256 --file-prefix gen1 -l 1 \\\n"
"      --vdev net_memif0,role=client,socket=/tmp/authd.sock -- --users 1000000\n"
"Every EAL lcore is a worker with its own queue pair and streams.\n"
"\n"
"Where to send:\n"
"  --port DEV            device name or port id (default: port 0)\n"
"  --dst-ip A            authd's address (default 10.0.0.1)\n"
"  --src-ip A            ours (default 10.0.0.2)\n"
"  --dst-mac MAC         authd's MAC, or 'broadcast' (default: learned by\n"
"                        ARP for --dst-ip, which authd answers)\n"
"  --udp-port N          authd's port (default 7711)\n"
"  --src-port N          stream s sends from N + s (default 40000)\n"
"Who we are:\n"
"  --gateway ID          gateway id (default 1)\n"
"  --key-id ID --key HEX the key (32 hex digits) and its id (default id 1)\n"
"  --keys FILE           or: a keys file as authd's (mode 0600); the\n"
"                        gateway's key --key-id, else its first key\n"
"What to send:\n"
"  --streams N           replay streams, each with strictly increasing seqs\n"
"                        (default 1)\n"
"  --records N|MIN-MAX   records per datagram, 1..16, fixed or uniform\n"
"                        (default 16)\n"
"  --users N --seed S    users: the ids `authdb gen --users N --seed S` made\n"
"                        (lim_gen_user_id); seed also seeds the workload\n"
"                        (default seed 1)\n"
"  --merchants M         merchants: lim_gen_merchant_id(seed, 0..M-1)\n"
"                        (default: as authdb gen, users/10, at least 100)\n"
"  --ids-from SNAPSHOT   or: users and merchants read from a snapshot\n"
"  --mix SPEC            ops by weight (default authorize=70,capture=15,\n"
"                        void=5,refund=3,repay=7); captures and voids name\n"
"                        approved holds, refunds captured ones, repays debts;\n"
"                        the generator remembers them (bounded, --remember)\n"
"  --products SPEC       default paylater=70,installment=20,cash=10\n"
"  --amounts SPEC        authorization amounts in yuan: lognormal:MEDIAN[,\n"
"                        SIGMA[,MAX]] (default lognormal:150,1.0,50000),\n"
"                        uniform:MIN-MAX, fixed:Y\n"
"  --faults SPEC         percent of records made wrong on purpose:\n"
"                        dup (resent: DUPLICATE), malformed (MALFORMED),\n"
"                        terms (TERM_INVALID), unknown-user, unknown-ref\n"
"                        (void/refund first: UNKNOWN_REF, then REVERSED),\n"
"                        unknown-group; e.g. dup=0.5,malformed=0.1\n"
"                        (default none)\n"
"  --group-pct P         percent of authorizations paid from a group wallet\n"
"                        by a member (default 1; needs the groups of a\n"
"                        snapshot: --ids-from or --check-model)\n"
"  --remember N          approved authorizations kept (default 65536)\n"
"  --run-tag N           top 16 bits of our request ids (default: from the\n"
"                        clock, so runs against one authd do not collide)\n"
"  --users-dist D        popularity of users: uniform (default) or zipf:S,\n"
"                        user index i drawn with weight 1/(i+1)^S (S > 0,\n"
"                        e.g. 0.99; exact, O(1) memory and time per draw:\n"
"                        rejection-inversion)\n"
"  --merchants-dist D    the same for merchants\n"
"  --profile P           double11: with --rate R and --duration D, the rate\n"
"                        rises from 10%% to R over D/3, holds, falls back;\n"
"                        products paylater=40,installment=55,cash=5 (unless\n"
"                        --products); 16 hot merchants take 60%% of the\n"
"                        authorizations, with the installment terms they\n"
"                        subsidise (known from a snapshot: --ids-from)\n"
"                        cashout[:PCT]: PCT%% (default 10) of the records\n"
"                        are a cash-out attack (near-limit round payments\n"
"                        at colluding merchants by unrelated users; crowds\n"
"                        of 5 users on one device); the report counts the\n"
"                        attack payments approved and declined by reason\n"
"                        (authd --risk on to see its detectors act). Needs\n"
"                        --ids-from SNAPSHOT (the users' limits)\n"
"How much and how fast:\n"
"  --duration S          seconds of measured sending, after any warm-up\n"
"                        (default 10 unless --count)\n"
"  --count N             records to send (the last datagram is cut to fit)\n"
"  --warmup S            send S seconds first without counting them (caches,\n"
"                        page faults, authd's first touches); errors in the\n"
"                        warm-up still fail the run\n"
"  --rate R              open loop: R datagrams/s paced by the TSC; each\n"
"                        carries its scheduled time as sent_ns, so a stall\n"
"                        anywhere shows in the latency (no coordinated\n"
"                        omission)\n"
"  --window W            closed loop (the default): W datagrams in flight\n"
"                        (default 32)\n"
"  --inflight N          in-flight table per worker (default 4096, or the\n"
"                        window); open loop, table full: the oldest datagram\n"
"                        is declared lost (inflight_full) and sending goes on\n"
"  --timeout MS          an answer later than this is lost (default 1000)\n"
"Checks:\n"
"  --check-model SNAPSHOT\n"
"                        decide every record locally too (auth_exec_one on\n"
"                        the same snapshot, in send order, at the fixed time\n"
"                        --clock-fixed T; run authd with --clock fixed:T)\n"
"                        and compare every answer field by field; any\n"
"                        mismatch is printed and makes the exit status 1.\n"
"                        Exact only when authd executes in send order: one\n"
"                        authd lcore, one queue, a FIFO link (memif); the\n"
"                        window defaults to 1 here\n"
"  --clock-fixed T       unix seconds authd's --clock fixed:T says\n"
"  --seq exact|loose     compare ledger_seq exactly (default) or only as\n"
"                        zero/non-zero (several authd lcores)\n"
"  --ops-max N           the model's op store (authd's --ops-max, default 4M)\n"
"  --inject SPEC         also send crafted bad datagrams that authd must drop\n"
"                        without answering, NAME[=COUNT],...: short, magic,\n"
"                        version, type, count, length, gateway, key, tag,\n"
"                        replay, stale (COUNT default 1); spread over the run\n"
"Record and replay:\n"
"  --record FILE         write every request frame sent to FILE (pcap,\n"
"                        Ethernet, ns timestamps: the header's sent_ns), by\n"
"                        a writer thread (libpcap); crafted --inject\n"
"                        datagrams are not recorded\n"
"  --record-answers      also the answers received (at their receive time),\n"
"                        so a replay can verify\n"
"  --replay FILE         send the request datagrams of a pcap (ours, or a\n"
"                        tcpdump capture: requests are UDP datagrams to\n"
"                        --udp-port, answers UDP datagrams from it) instead\n"
"                        of a workload. Rewritten: MACs, IPs and UDP ports\n"
"                        (ours and authd's, as for a workload), and in the\n"
"                        header the gateway and key id (ours), stream (the\n"
"                        recorded one mod --streams), seq (fresh, strictly\n"
"                        increasing), sent_ns (the replay's send time), and\n"
"                        the tag (our key); records are sent unchanged.\n"
"                        Recorded answers are compared with the new ones\n"
"                        (ids, op, status, reason, amount, available): a\n"
"                        mismatch fails the run. One lcore\n"
"  --speed X             replay at X times the recorded pace (default 1)\n"
"  --max                 replay as fast as authd answers (closed loop,\n"
"                        --window datagrams in flight)\n"
"Output:\n"
"  --progress            a line every second\n"
"  --json FILE           configuration and results (with the histogram and\n"
"                        the per-second samples)\n"
"  --plot PREFIX         write PREFIX-latency.png (latency by percentile, HDR\n"
"                        style) and PREFIX-throughput.png (rates and p99 per\n"
"                        second) with gnuplot; skipped with a warning when\n"
"                        gnuplot is missing\n"
"  --plot-script FILE    the gnuplot script (default: the source tree's\n"
"                        perf/authgen_plot.gp)\n"
"  --quiet               no report on stdout (errors still on stderr)\n"
"  --linger S            after the report (and the JSON), keep the port open\n"
"                        without polling it until the link goes down (authd\n"
"                        stopped), a signal, or S seconds: so authd never\n"
"                        sees its memif peer leave while it polls (DPDK\n"
"                        22.11's memif unmaps the rings under a polling\n"
"                        peer); the exit status is the run's\n"
"  -h, --help            this text\n"
"\n"
"Exit status: 0 when every datagram was answered and every answer verified\n"
"(and matched the model), 1 otherwise, 2 on bad options or set-up failure.\n");
}

void
gen_config_default(struct gen_config *c)
{
	char err[128];

	memset(c, 0, sizeof(*c));
	snprintf(c->port, sizeof(c->port), "0");
	c->src_ip = 10u << 24 | 2;
	c->dst_ip = 10u << 24 | 1;
	c->udp_port = AUTH_UDP_PORT;
	c->src_port = GEN_SRC_PORT_DEFAULT;
	c->gateway_id = 1;
	c->key_id = 1;
	c->streams = 1;
	c->rec_min = c->rec_max = AUTH_RECORDS_MAX;
	c->seed = 1;
	c->group_pct = 1;
	gen_parse_weights("authorize=70,capture=15,void=5,refund=3,repay=7",
			  op_names, GEN_OPS, c->mix, err, sizeof(err));
	gen_parse_weights("paylater=70,installment=20,cash=10", product_names,
			  GEN_PRODUCTS, c->products, err, sizeof(err));
	c->amounts = (struct gen_amounts){GEN_AMOUNT_LOGNORMAL, 15000,
					  5000000, 1.0};
	snprintf(c->amounts_spec, sizeof(c->amounts_spec),
		 "lognormal:150,1.0,50000");
	c->window = 32;
	c->timeout_ms = 1000;
	c->remember = GEN_REMEMBER_DEFAULT;
	c->ops_max = 1u << 22;
	snprintf(c->users_dist.spec, sizeof(c->users_dist.spec), "uniform");
	snprintf(c->merchants_dist.spec, sizeof(c->merchants_dist.spec),
		 "uniform");
	c->speed_milli = 1000;
	snprintf(c->plot_script, sizeof(c->plot_script), "%s", GEN_PLOT_SCRIPT);
}

static int
bad(char *err, size_t n, const char *name, const char *value, const char *why)
{
	snprintf(err, n, "--%s %s: %s", name, value, why);
	return -EINVAL;
}

static int
parse_u64(const char *v, uint64_t *out)
{
	char *end;

	errno = 0;
	if (!v || !*v || *v == '-')
		return -EINVAL;
	*out = strtoull(v, &end, 0);
	if (*end == 'k' || *end == 'K')
		*out *= 1000, end++;
	else if (*end == 'M')
		*out *= 1000000, end++;
	else if (*end == 'G')
		*out *= 1000000000, end++;
	return errno || *end ? -EINVAL : 0;
}

/*
 * A decimal with up to @p decimals digits after the point, scaled by
 * 10^decimals, as an integer: "12.5" with 2 -> 1250. Stops at @p stop
 * characters (sets *endp).
 */
static int
parse_fixed(const char *v, unsigned decimals, int64_t *out, const char **endp)
{
	int64_t x = 0;
	unsigned d = 0;
	bool point = false, digits = false;

	for (; *v; v++) {
		if (*v == '.' && !point) {
			point = true;
			continue;
		}
		if (*v < '0' || *v > '9')
			break;
		if (point && d == decimals)
			return -EINVAL;
		if (x > INT64_MAX / 100)
			return -ERANGE;
		x = x * 10 + (*v - '0');
		d += point;
		digits = true;
	}
	if (!digits)
		return -EINVAL;
	for (; d < decimals; d++)
		x *= 10;
	*out = x;
	*endp = v;
	return 0;
}

static int
parse_ip(const char *v, uint32_t *out)
{
	struct in_addr a;

	if (inet_pton(AF_INET, v, &a) != 1)
		return -EINVAL;
	*out = ntohl(a.s_addr);
	return 0;
}

int
gen_parse_weights(const char *spec, const char *const *names, unsigned n,
		  unsigned *out, char *err, size_t errlen)
{
	char buf[256], *save = NULL, *tok;
	unsigned sum = 0;

	if (strlen(spec) >= sizeof(buf)) {
		snprintf(err, errlen, "too long");
		return -EINVAL;
	}
	memset(out, 0, n * sizeof(*out));
	snprintf(buf, sizeof(buf), "%s", spec);
	for (tok = strtok_r(buf, ",", &save); tok;
	     tok = strtok_r(NULL, ",", &save)) {
		char *eq = strchr(tok, '=');
		uint64_t w;
		unsigned i;

		if (!eq || parse_u64(eq + 1, &w) || w > 1000000) {
			snprintf(err, errlen, "'%s': expected NAME=WEIGHT", tok);
			return -EINVAL;
		}
		*eq = 0;
		for (i = 0; i < n; i++)
			if (names[i] && !strcmp(names[i], tok))
				break;
		if (i == n) {
			snprintf(err, errlen, "unknown name '%s'", tok);
			return -EINVAL;
		}
		out[i] = (unsigned)w;
		sum += (unsigned)w;
	}
	if (sum == 0) {
		snprintf(err, errlen, "every weight is 0");
		return -EINVAL;
	}
	return 0;
}

static int
parse_amounts(struct gen_amounts *a, const char *v)
{
	const char *p;
	int64_t x, y, s100;

	if (!strncmp(v, "fixed:", 6)) {
		if (parse_fixed(v + 6, 2, &x, &p) || *p || x < 1)
			return -EINVAL;
		*a = (struct gen_amounts){GEN_AMOUNT_FIXED, x, x, 0};
		return 0;
	}
	if (!strncmp(v, "uniform:", 8)) {
		if (parse_fixed(v + 8, 2, &x, &p) || *p != '-' ||
		    parse_fixed(p + 1, 2, &y, &p) || *p || x < 1 || y < x)
			return -EINVAL;
		*a = (struct gen_amounts){GEN_AMOUNT_UNIFORM, x, y, 0};
		return 0;
	}
	if (strncmp(v, "lognormal:", 10))
		return -EINVAL;
	*a = (struct gen_amounts){GEN_AMOUNT_LOGNORMAL, 0, 5000000, 1.0};
	if (parse_fixed(v + 10, 2, &a->a_fen, &p) || a->a_fen < 1)
		return -EINVAL;
	if (*p == ',') {
		if (parse_fixed(p + 1, 2, &s100, &p) || s100 > 1000)
			return -EINVAL;
		a->sigma = (double)s100 / 100.0;
	}
	if (*p == ',' && (parse_fixed(p + 1, 2, &a->b_fen, &p) ||
			  a->b_fen < a->a_fen))
		return -EINVAL;
	return *p ? -EINVAL : 0;
}

/* "dup=0.5,malformed=0.1": percent with up to 4 decimals -> ppm. */
static int
parse_faults(uint32_t *ppm, const char *spec, char *err, size_t n)
{
	char buf[256], *save = NULL, *tok;
	uint64_t sum = 0;

	snprintf(buf, sizeof(buf), "%s", spec);
	memset(ppm, 0, GEN_FAULTS * sizeof(*ppm));
	for (tok = strtok_r(buf, ",", &save); tok;
	     tok = strtok_r(NULL, ",", &save)) {
		char *eq = strchr(tok, '=');
		const char *end;
		int64_t x;
		unsigned f;

		if (!eq || parse_fixed(eq + 1, 4, &x, &end) || *end)
			return bad(err, n, "faults", tok, "expected NAME=PERCENT");
		*eq = 0;
		for (f = 0; f < GEN_FAULTS; f++)
			if (!strcmp(gen_fault_name(f), tok))
				break;
		if (f == GEN_FAULTS)
			return bad(err, n, "faults", tok,
				   "unknown fault (dup, malformed, terms, "
				   "unknown-user, unknown-ref, unknown-group)");
		ppm[f] = (uint32_t)x;
		sum += (uint64_t)x;
	}
	if (sum > 1000000)
		return bad(err, n, "faults", spec, "more than 100% in all");
	return 0;
}

/* "uniform" or "zipf:S" with 0 < S <= 10 (three decimals). */
static int
parse_dist(struct gen_dist *d, const char *name, const char *v, char *err,
	   size_t n)
{
	const char *end;
	int64_t x;

	if (!strcmp(v, "uniform")) {
		*d = (struct gen_dist){GEN_DIST_UNIFORM, 0.0, "uniform"};
		return 0;
	}
	if (strncmp(v, "zipf:", 5) || parse_fixed(v + 5, 3, &x, &end) || *end ||
	    x < 1 || x > 10000 || strlen(v) >= sizeof(d->spec))
		return bad(err, n, name, v, "expected uniform or zipf:S with "
					    "0 < S <= 10, e.g. zipf:0.99");
	d->kind = GEN_DIST_ZIPF;
	d->s = (double)x / 1000.0;
	snprintf(d->spec, sizeof(d->spec), "%s", v);
	return 0;
}

/* "double11", "cashout" or "cashout:PCT". */
static int
parse_profile(struct gen_config *c, const char *v, char *err, size_t n)
{
	uint64_t p = 10;

	if (!strcmp(v, "double11")) {
		c->profile = GEN_PROFILE_DOUBLE11;
		return 0;
	}
	if (!strcmp(v, "cashout") ||
	    (!strncmp(v, "cashout:", 8) && parse_u64(v + 8, &p) == 0 &&
	     p >= 1 && p <= 100)) {
		c->profile = GEN_PROFILE_CASHOUT;
		c->cashout_pct = (unsigned)p;
		return 0;
	}
	return bad(err, n, "profile", v,
		   "expected double11, cashout or cashout:PCT (1..100)");
}

/* "short,tag=5" */
static int
parse_inject(unsigned *cnt, const char *spec, char *err, size_t n)
{
	char buf[256], *save = NULL, *tok;

	snprintf(buf, sizeof(buf), "%s", spec);
	for (tok = strtok_r(buf, ",", &save); tok;
	     tok = strtok_r(NULL, ",", &save)) {
		char *eq = strchr(tok, '=');
		uint64_t k = 1;
		unsigned i;

		if (eq) {
			*eq = 0;
			if (parse_u64(eq + 1, &k) || k > 1000000)
				return bad(err, n, "inject", spec,
					   "expected NAME[=COUNT]");
		}
		for (i = 0; i < GEN_INJECTS; i++)
			if (!strcmp(gen_inject_name(i), tok))
				break;
		if (i == GEN_INJECTS)
			return bad(err, n, "inject", tok,
				   "unknown: short, magic, version, type, "
				   "count, length, gateway, key, tag, replay, "
				   "stale");
		cnt[i] += (unsigned)k;
	}
	return 0;
}

static int
parse_key(uint8_t *key, const char *v)
{
	if (strlen(v) != 2 * AUTH_KEY_LEN)
		return -EINVAL;
	for (unsigned i = 0; i < AUTH_KEY_LEN; i++) {
		unsigned b;

		if (sscanf(v + 2 * i, "%2x", &b) != 1)
			return -EINVAL;
		key[i] = (uint8_t)b;
	}
	return 0;
}

static int
parse_records(struct gen_config *c, const char *v)
{
	uint64_t a, b;
	const char *dash = strchr(v, '-');
	char first[32];

	if (dash) {
		if ((size_t)(dash - v) >= sizeof(first))
			return -EINVAL;
		memcpy(first, v, (size_t)(dash - v));
		first[dash - v] = 0;
		if (parse_u64(first, &a) || parse_u64(dash + 1, &b))
			return -EINVAL;
	} else if (parse_u64(v, &a)) {
		return -EINVAL;
	} else {
		b = a;
	}
	if (a < 1 || b > AUTH_RECORDS_MAX || a > b)
		return -EINVAL;
	c->rec_min = (unsigned)a;
	c->rec_max = (unsigned)b;
	return 0;
}

enum {
	O_PORT = 1000, O_SRC_IP, O_DST_IP, O_DST_MAC, O_UDP_PORT, O_SRC_PORT,
	O_GATEWAY, O_KEY_ID, O_KEY, O_KEYS, O_STREAMS, O_RECORDS, O_USERS,
	O_SEED, O_MERCHANTS, O_IDS_FROM, O_MIX, O_PRODUCTS, O_AMOUNTS,
	O_FAULTS, O_GROUP_PCT, O_REMEMBER, O_RUN_TAG, O_DURATION, O_WARMUP,
	O_COUNT, O_RATE,
	O_WINDOW, O_INFLIGHT, O_TIMEOUT, O_CHECK_MODEL, O_CLOCK_FIXED, O_SEQ,
	O_OPS_MAX, O_INJECT, O_PROGRESS, O_JSON, O_QUIET, O_LINGER,
	O_USERS_DIST, O_MERCHANTS_DIST, O_PROFILE, O_RECORD, O_RECORD_ANSWERS,
	O_REPLAY, O_SPEED, O_MAX, O_PLOT, O_PLOT_SCRIPT,
};

static const struct option longopts[] = {
	{"port", required_argument, NULL, O_PORT},
	{"src-ip", required_argument, NULL, O_SRC_IP},
	{"dst-ip", required_argument, NULL, O_DST_IP},
	{"dst-mac", required_argument, NULL, O_DST_MAC},
	{"udp-port", required_argument, NULL, O_UDP_PORT},
	{"src-port", required_argument, NULL, O_SRC_PORT},
	{"gateway", required_argument, NULL, O_GATEWAY},
	{"key-id", required_argument, NULL, O_KEY_ID},
	{"key", required_argument, NULL, O_KEY},
	{"keys", required_argument, NULL, O_KEYS},
	{"streams", required_argument, NULL, O_STREAMS},
	{"records", required_argument, NULL, O_RECORDS},
	{"users", required_argument, NULL, O_USERS},
	{"seed", required_argument, NULL, O_SEED},
	{"merchants", required_argument, NULL, O_MERCHANTS},
	{"ids-from", required_argument, NULL, O_IDS_FROM},
	{"mix", required_argument, NULL, O_MIX},
	{"products", required_argument, NULL, O_PRODUCTS},
	{"amounts", required_argument, NULL, O_AMOUNTS},
	{"faults", required_argument, NULL, O_FAULTS},
	{"group-pct", required_argument, NULL, O_GROUP_PCT},
	{"remember", required_argument, NULL, O_REMEMBER},
	{"run-tag", required_argument, NULL, O_RUN_TAG},
	{"duration", required_argument, NULL, O_DURATION},
	{"warmup", required_argument, NULL, O_WARMUP},
	{"count", required_argument, NULL, O_COUNT},
	{"rate", required_argument, NULL, O_RATE},
	{"window", required_argument, NULL, O_WINDOW},
	{"inflight", required_argument, NULL, O_INFLIGHT},
	{"timeout", required_argument, NULL, O_TIMEOUT},
	{"check-model", required_argument, NULL, O_CHECK_MODEL},
	{"clock-fixed", required_argument, NULL, O_CLOCK_FIXED},
	{"seq", required_argument, NULL, O_SEQ},
	{"ops-max", required_argument, NULL, O_OPS_MAX},
	{"inject", required_argument, NULL, O_INJECT},
	{"progress", no_argument, NULL, O_PROGRESS},
	{"json", required_argument, NULL, O_JSON},
	{"quiet", no_argument, NULL, O_QUIET},
	{"linger", required_argument, NULL, O_LINGER},
	{"users-dist", required_argument, NULL, O_USERS_DIST},
	{"merchants-dist", required_argument, NULL, O_MERCHANTS_DIST},
	{"profile", required_argument, NULL, O_PROFILE},
	{"record", required_argument, NULL, O_RECORD},
	{"record-answers", no_argument, NULL, O_RECORD_ANSWERS},
	{"replay", required_argument, NULL, O_REPLAY},
	{"speed", required_argument, NULL, O_SPEED},
	{"max", no_argument, NULL, O_MAX},
	{"plot", required_argument, NULL, O_PLOT},
	{"plot-script", required_argument, NULL, O_PLOT_SCRIPT},
	{"help", no_argument, NULL, 'h'},
	{NULL, 0, NULL, 0},
};

/* A number option in [lo, hi]. */
static int
num(const char *name, const char *v, uint64_t lo, uint64_t hi, uint64_t *out,
    char *err, size_t n)
{
	char why[80];

	if (parse_u64(v, out) == 0 && *out >= lo && *out <= hi)
		return 0;
	snprintf(why, sizeof(why), "expected a number in %llu..%llu",
		 (unsigned long long)lo, (unsigned long long)hi);
	return bad(err, n, name, v, why);
}

static int
path(char *dst, size_t size, const char *name, const char *v, char *err,
     size_t n)
{
	if (strlen(v) >= size)
		return bad(err, n, name, v, "too long");
	memcpy(dst, v, strlen(v) + 1);
	return 0;
}

static int
set_addr(struct gen_config *c, int ch, const char *v, char *err, size_t n)
{
	switch (ch) {
	case O_PORT:
		return path(c->port, sizeof(c->port), "port", v, err, n);
	case O_SRC_IP:
		return parse_ip(v, &c->src_ip) ? bad(err, n, "src-ip", v,
						     "expected IPv4") : 0;
	case O_DST_IP:
		return parse_ip(v, &c->dst_ip) ? bad(err, n, "dst-ip", v,
						     "expected IPv4") : 0;
	case O_DST_MAC:
		c->dst_mac_set = true;
		if (!strcmp(v, "broadcast")) {
			memset(&c->dst_mac, 0xff, sizeof(c->dst_mac));
			return 0;
		}
		return rte_ether_unformat_addr(v, &c->dst_mac)
			       ? bad(err, n, "dst-mac", v,
				     "expected xx:xx:xx:xx:xx:xx or broadcast")
			       : 0;
	case O_KEY:
		c->key_set = true;
		return parse_key(c->key, v) ? bad(err, n, "key", "(hidden)",
						  "expected 32 hex digits")
					    : 0;
	case O_KEYS:
		return path(c->keys_path, sizeof(c->keys_path), "keys", v, err,
			    n);
	default:
		return -ENOENT;
	}
}

static int
set_number(struct gen_config *c, int ch, const char *v, char *err, size_t n)
{
	uint64_t x;
	int rc;

#define NUM(name, lo, hi) \
	if ((rc = num(name, v, lo, hi, &x, err, n)) != 0) \
		return rc
	switch (ch) {
	case O_UDP_PORT:
		NUM("udp-port", 1, 65535);
		c->udp_port = (uint16_t)x;
		return 0;
	case O_SRC_PORT:
		NUM("src-port", 1, 65535);
		c->src_port = (uint16_t)x;
		return 0;
	case O_GATEWAY:
		NUM("gateway", 0, UINT32_MAX);
		c->gateway_id = (uint32_t)x;
		return 0;
	case O_KEY_ID:
		NUM("key-id", 0, UINT32_MAX);
		c->key_id = (uint32_t)x;
		c->key_id_set = true;
		return 0;
	case O_STREAMS:
		NUM("streams", 1, GEN_STREAMS_MAX);
		c->streams = (unsigned)x;
		return 0;
	case O_USERS:
		NUM("users", 1, 1ull << 40);
		c->users = x;
		return 0;
	case O_SEED:
		NUM("seed", 0, UINT64_MAX);
		c->seed = x;
		return 0;
	case O_MERCHANTS:
		NUM("merchants", 0, UINT32_MAX);
		c->merchants = x;
		return 0;
	case O_GROUP_PCT:
		NUM("group-pct", 0, 100);
		c->group_pct = (unsigned)x;
		return 0;
	case O_REMEMBER:
		NUM("remember", 1, 1u << 26);
		c->remember = (unsigned)x;
		return 0;
	case O_RUN_TAG:
		NUM("run-tag", 0, 65535);
		c->run_tag = (uint16_t)x;
		c->run_tag_set = true;
		return 0;
	case O_COUNT:
		NUM("count", 1, UINT64_MAX);
		c->count = x;
		return 0;
	case O_RATE:
		NUM("rate", 1, 1000000000);
		c->rate = x;
		return 0;
	case O_WINDOW:
		NUM("window", 1, GEN_INFLIGHT_MAX);
		c->window = (unsigned)x;
		c->window_set = true;
		return 0;
	case O_INFLIGHT:
		NUM("inflight", 1, GEN_INFLIGHT_MAX);
		c->inflight = (unsigned)x;
		return 0;
	case O_TIMEOUT:
		NUM("timeout", 1, 600000);
		c->timeout_ms = (uint32_t)x;
		return 0;
	case O_CLOCK_FIXED:
		NUM("clock-fixed", 1, UINT32_MAX);
		c->clock_fixed_s = (uint32_t)x;
		c->clock_fixed_set = true;
		return 0;
	case O_OPS_MAX:
		NUM("ops-max", 1024, 1ull << 32);
		c->ops_max = x;
		return 0;
	case O_LINGER:
		NUM("linger", 0, 3600);
		c->linger_s = (uint32_t)x;
		return 0;
	default:
		return -ENOENT;
	}
#undef NUM
}

static int
set_workload(struct gen_config *c, int ch, const char *v, char *err, size_t n)
{
	char why[160];
	int64_t s;
	const char *end;

	switch (ch) {
	case O_RECORDS:
		return parse_records(c, v) ? bad(err, n, "records", v,
						 "expected N or MIN-MAX in 1..16")
					   : 0;
	case O_IDS_FROM:
		return path(c->ids_from, sizeof(c->ids_from), "ids-from", v, err,
			    n);
	case O_MIX:
		if (gen_parse_weights(v, op_names, GEN_OPS, c->mix, why,
				      sizeof(why)))
			return bad(err, n, "mix", v, why);
		return 0;
	case O_PRODUCTS:
		if (gen_parse_weights(v, product_names, GEN_PRODUCTS,
				      c->products, why, sizeof(why)))
			return bad(err, n, "products", v, why);
		c->products_set = true;
		return 0;
	case O_AMOUNTS:
		if (parse_amounts(&c->amounts, v))
			return bad(err, n, "amounts", v,
				   "expected lognormal:MEDIAN[,SIGMA[,MAX]], "
				   "uniform:MIN-MAX or fixed:Y (yuan)");
		return path(c->amounts_spec, sizeof(c->amounts_spec), "amounts",
			    v, err, n);
	case O_FAULTS:
		return parse_faults(c->faults_ppm, v, err, n);
	case O_INJECT:
		return parse_inject(c->inject, v, err, n);
	case O_DURATION:
		if (parse_fixed(v, 3, &s, &end) || *end || s < 1 ||
		    s > 86400000)
			return bad(err, n, "duration", v,
				   "expected seconds, e.g. 10 or 0.5");
		c->duration_s = (double)s / 1000.0;
		return 0;
	case O_WARMUP:
		if (parse_fixed(v, 3, &s, &end) || *end || s > 3600000)
			return bad(err, n, "warmup", v,
				   "expected seconds, e.g. 2 or 0.5");
		c->warmup_s = (double)s / 1000.0;
		return 0;
	default:
		return -ENOENT;
	}
}

/* Record, replay, plots, popularity, profiles. */
static int
set_extra(struct gen_config *c, int ch, const char *v, char *err, size_t n)
{
	const char *end;
	int64_t x;

	switch (ch) {
	case O_USERS_DIST:
		return parse_dist(&c->users_dist, "users-dist", v, err, n);
	case O_MERCHANTS_DIST:
		return parse_dist(&c->merchants_dist, "merchants-dist", v, err,
				  n);
	case O_PROFILE:
		return parse_profile(c, v, err, n);
	case O_RECORD:
		return path(c->record_path, sizeof(c->record_path), "record", v,
			    err, n);
	case O_RECORD_ANSWERS:
		c->record_answers = true;
		return 0;
	case O_REPLAY:
		return path(c->replay_path, sizeof(c->replay_path), "replay", v,
			    err, n);
	case O_SPEED:
		if (parse_fixed(v, 3, &x, &end) || *end || x < 1 ||
		    x > 1000000000)
			return bad(err, n, "speed", v,
				   "expected a factor, e.g. 1, 0.5 or 10 "
				   "(or --max)");
		c->speed_milli = (uint32_t)x;
		c->speed_set = true;
		return 0;
	case O_MAX:
		c->speed_milli = 0;
		c->speed_set = true;
		return 0;
	case O_PLOT:
		return path(c->plot_prefix, sizeof(c->plot_prefix), "plot", v,
			    err, n);
	case O_PLOT_SCRIPT:
		return path(c->plot_script, sizeof(c->plot_script),
			    "plot-script", v, err, n);
	default:
		return -ENOENT;
	}
}

static int
set_other(struct gen_config *c, int ch, const char *v, char *err, size_t n)
{
	switch (ch) {
	case O_CHECK_MODEL:
		return path(c->check_model, sizeof(c->check_model),
			    "check-model", v, err, n);
	case O_SEQ:
		if (strcmp(v, "exact") && strcmp(v, "loose"))
			return bad(err, n, "seq", v, "expected exact or loose");
		c->seq_loose = !strcmp(v, "loose");
		return 0;
	case O_PROGRESS:
		c->progress = true;
		return 0;
	case O_QUIET:
		c->quiet = true;
		return 0;
	case O_JSON:
		return path(c->json_path, sizeof(c->json_path), "json", v, err,
			    n);
	default:
		return -ENOENT;
	}
}

static int
check(struct gen_config *c, char *err, size_t n)
{
	if (!c->key_set && !c->keys_path[0]) {
		snprintf(err, n, "a key is required: --key HEX (with --key-id) "
				 "or --keys FILE (with --gateway)");
		return -EINVAL;
	}
	if (c->replay_path[0] &&
	    (c->check_model[0] || c->rate || c->warmup_s > 0 || c->profile)) {
		snprintf(err, n, "--replay sends what the pcap holds: not with "
				 "--check-model, --rate (use --speed), --warmup "
				 "or --profile");
		return -EINVAL;
	}
	if (c->speed_set && !c->replay_path[0]) {
		snprintf(err, n, "--speed and --max pace a --replay");
		return -EINVAL;
	}
	if (c->record_answers && !c->record_path[0]) {
		snprintf(err, n, "--record-answers goes with --record FILE");
		return -EINVAL;
	}
	if (c->profile == GEN_PROFILE_DOUBLE11 && !c->products_set)
		gen_parse_weights(GEN_D11_PRODUCTS, product_names, GEN_PRODUCTS,
				  c->products, err, n);
	if (!c->users && !c->ids_from[0] && !c->check_model[0] &&
	    !c->replay_path[0]) {
		snprintf(err, n, "which users? --users N (with --seed, as "
				 "authdb gen), --ids-from SNAPSHOT or "
				 "--check-model SNAPSHOT");
		return -EINVAL;
	}
	if (c->check_model[0] && !c->clock_fixed_set) {
		snprintf(err, n, "--check-model needs --clock-fixed T (and authd "
				 "with --clock fixed:T)");
		return -EINVAL;
	}
	if (c->check_model[0] && c->rate) {
		snprintf(err, n, "--check-model runs closed loop (--window), "
				 "not with --rate");
		return -EINVAL;
	}
	if (c->check_model[0] && !c->window_set)
		c->window = 1;
	if (!c->count && c->duration_s == 0 && !c->replay_path[0])
		c->duration_s = 10; /* a replay runs to the end of its pcap */
	if (!c->inflight)
		c->inflight = c->window > GEN_INFLIGHT_DEFAULT ? c->window
							       : GEN_INFLIGHT_DEFAULT;
	if (c->inflight < c->window) {
		snprintf(err, n, "--inflight %u is smaller than --window %u",
			 c->inflight, c->window);
		return -EINVAL;
	}
	/* Round up to a power of two: slot = g & (inflight - 1). */
	while (c->inflight & (c->inflight - 1))
		c->inflight += c->inflight & -c->inflight;
	if (c->src_port + c->streams - 1 > 65535) {
		snprintf(err, n, "--src-port %u + --streams %u passes 65535",
			 c->src_port, c->streams);
		return -EINVAL;
	}
	return 0;
}

int
gen_config_args(struct gen_config *c, int argc, char **argv, char *err,
		size_t n)
{
	int ch, idx, rc;

	optind = 1;
	opterr = 0;
	while ((ch = getopt_long(argc, argv, "h", longopts, &idx)) != -1) {
		if (ch == 'h') {
			gen_usage(stdout);
			return 1;
		}
		if (ch == '?') {
			snprintf(err, n, "unknown option or missing value: %s "
					 "(see --help)", argv[optind - 1]);
			return -EINVAL;
		}
		rc = set_addr(c, ch, optarg, err, n);
		if (rc == -ENOENT)
			rc = set_number(c, ch, optarg, err, n);
		if (rc == -ENOENT)
			rc = set_workload(c, ch, optarg, err, n);
		if (rc == -ENOENT)
			rc = set_other(c, ch, optarg, err, n);
		if (rc == -ENOENT)
			rc = set_extra(c, ch, optarg, err, n);
		if (rc)
			return rc;
	}
	if (optind < argc) {
		snprintf(err, n, "unexpected argument '%s' (see --help)",
			 argv[optind]);
		return -EINVAL;
	}
	return check(c, err, n);
}
