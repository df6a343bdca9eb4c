/*
 * prom.c - the Prometheus text exposition format, version 0.0.4: the
 * writer the daemon fills at each scrape, the exact conversion of the
 * engine's histograms into cumulative buckets, and the --metrics address.
 *
 * Owns nothing shared: a struct dp_prom is one scrape's text, written and
 * read by one thread (the metrics thread; the unit tests). No DPDK, no
 * HTTP, so the unit tests link it alone.
 *
 * Format rules kept here, not by callers: "# HELP" text escapes backslash
 * and newline; label values escape backslash, double quote and newline;
 * histogram buckets are cumulative, their le bounds printed as exact
 * decimals of seconds (1000 ns -> "0.000001"), "+Inf" last and equal to
 * _count. A text grows by doubling up to DP_PROM_TEXT_MAX; past that (or
 * out of memory) it is marked failed and dp_prom_text() returns NULL, so
 * a truncated text is never served.
 *
 * Histogram exactness: the engine's buckets have their own layouts (the
 * lcores' log-linear TSC buckets, the ledger's log2 microsecond buckets)
 * that never line up with decimal bounds; a Prometheus bucket may only
 * count a whole engine bucket, and only when the largest value that bucket
 * can hold is <= le. The comparison is done in integers (128-bit
 * products), so no rounding can move a bucket across a bound.
 */
#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <arpa/inet.h>
#include <netinet/in.h>

#include "metrics.h"

#define DP_PROM_TEXT_START (64u << 10)
#define DP_PROM_TEXT_MAX (16u << 20)

struct dp_prom {
	char *buf;
	size_t len, cap;
	bool failed;
};

struct dp_prom *
dp_prom_create(void)
{
	struct dp_prom *w = calloc(1, sizeof(*w));

	if (!w)
		return NULL;
	w->buf = malloc(DP_PROM_TEXT_START);
	if (!w->buf) {
		free(w);
		return NULL;
	}
	w->cap = DP_PROM_TEXT_START;
	return w;
}

void
dp_prom_free(struct dp_prom *w)
{
	if (!w)
		return;
	free(w->buf);
	free(w);
}

const char *
dp_prom_text(const struct dp_prom *w, size_t *len)
{
	*len = w->failed ? 0 : w->len;
	return w->failed ? NULL : w->buf;
}

void
dp_prom_reset(struct dp_prom *w)
{
	w->len = 0;
	w->failed = false;
}

/* Room for @p more bytes and a NUL; false (and failed) when there is none. */
static bool
reserve(struct dp_prom *w, size_t more)
{
	size_t cap = w->cap;
	char *p;

	if (w->failed)
		return false;
	while (cap - w->len < more + 1) {
		if (cap >= DP_PROM_TEXT_MAX) {
			w->failed = true;
			return false;
		}
		cap *= 2;
	}
	if (cap == w->cap)
		return true;
	p = realloc(w->buf, cap);
	if (!p) {
		w->failed = true;
		return false;
	}
	w->buf = p;
	w->cap = cap;
	return true;
}

static void
put(struct dp_prom *w, const char *s, size_t n)
{
	if (!reserve(w, n))
		return;
	memcpy(w->buf + w->len, s, n);
	w->len += n;
	w->buf[w->len] = '\0';
}

static void
puts_(struct dp_prom *w, const char *s)
{
	put(w, s, strlen(s));
}

/* @p s with backslash and newline escaped (and double quote if @p quote). */
static void
put_escaped(struct dp_prom *w, const char *s, bool quote)
{
	for (; *s; s++) {
		if (*s == '\\')
			put(w, "\\\\", 2);
		else if (*s == '\n')
			put(w, "\\n", 2);
		else if (*s == '"' && quote)
			put(w, "\\\"", 2);
		else
			put(w, s, 1);
	}
}

static const char *const type_names[] = {
	[DP_PROM_COUNTER] = "counter",
	[DP_PROM_GAUGE] = "gauge",
	[DP_PROM_HISTOGRAM] = "histogram",
};

void
dp_prom_family(struct dp_prom *w, const char *name, enum dp_prom_type t,
	       const char *help)
{
	puts_(w, "# HELP ");
	puts_(w, name);
	puts_(w, " ");
	put_escaped(w, help, false);
	puts_(w, "\n# TYPE ");
	puts_(w, name);
	puts_(w, " ");
	puts_(w, type_names[t]);
	puts_(w, "\n");
}

int
dp_prom_label(char *buf, size_t n, const char *key, const char *value)
{
	size_t len = strlen(buf), need = len + (len ? 1 : 0) + strlen(key) + 3;

	for (const char *s = value; *s; s++)
		need += (*s == '\\' || *s == '"' || *s == '\n') ? 2 : 1;
	if (need + 1 > n)
		return -ENAMETOOLONG;
	if (len)
		buf[len++] = ',';
	len += (size_t)sprintf(buf + len, "%s=\"", key);
	for (const char *s = value; *s; s++) {
		if (*s == '\\' || *s == '"' || *s == '\n')
			buf[len++] = '\\';
		buf[len++] = *s == '\n' ? 'n' : *s;
	}
	buf[len++] = '"';
	buf[len] = '\0';
	return 0;
}

static void
put_name(struct dp_prom *w, const char *name, const char *labels)
{
	puts_(w, name);
	if (labels && *labels) {
		puts_(w, "{");
		puts_(w, labels);
		puts_(w, "}");
	}
	puts_(w, " ");
}

void
dp_prom_u64(struct dp_prom *w, const char *name, const char *labels, uint64_t v)
{
	char num[24];

	put_name(w, name, labels);
	snprintf(num, sizeof(num), "%" PRIu64 "\n", v);
	puts_(w, num);
}

void
dp_prom_f64(struct dp_prom *w, const char *name, const char *labels, double v)
{
	char num[40];

	put_name(w, name, labels);
	if (isnan(v))
		snprintf(num, sizeof(num), "NaN\n");
	else if (isinf(v))
		snprintf(num, sizeof(num), "%sInf\n", v > 0 ? "+" : "-");
	else
		snprintf(num, sizeof(num), "%.15g\n", v);
	puts_(w, num);
}

/* ------------------------------------------------------------------------ */
/* Histograms                                                                 */

int
dp_prom_hist_fill(struct dp_prom_hist *h, const uint64_t *counts,
		  unsigned n_buckets, dp_prom_bucket_max_fn bucket_max,
		  uint64_t units_per_s, const uint64_t *le_ns, unsigned n_le)
{
	unsigned b = 0;
	uint64_t seen = 0;

	if (n_le > DP_PROM_LE_MAX || !units_per_s)
		return -EINVAL;
	for (unsigned k = 1; k < n_le; k++)
		if (le_ns[k] <= le_ns[k - 1])
			return -EINVAL;
	memset(h, 0, sizeof(*h));
	h->n = n_le;
	for (unsigned k = 0; k < n_le; k++) {
		/* bucket_max / units_per_s <= le_ns / 1e9, in integers */
		unsigned __int128 bound =
			(unsigned __int128)le_ns[k] * units_per_s;

		while (b < n_buckets) {
			uint64_t max = bucket_max(b);

			if (max == UINT64_MAX ||
			    (unsigned __int128)max * 1000000000u > bound)
				break;
			seen += counts[b++];
		}
		h->le_ns[k] = le_ns[k];
		h->cum[k] = seen;
	}
	for (; b < n_buckets; b++)
		seen += counts[b];
	h->count = seen;
	return 0;
}

/* Nanoseconds as an exact decimal of seconds: 2500000 -> "0.0025". */
static void
seconds_text(char *buf, size_t n, uint64_t ns)
{
	uint64_t s = ns / 1000000000u, frac = ns % 1000000000u;
	int digits = 9;

	if (!frac) {
		snprintf(buf, n, "%" PRIu64, s);
		return;
	}
	while (frac % 10 == 0) {
		frac /= 10;
		digits--;
	}
	snprintf(buf, n, "%" PRIu64 ".%0*" PRIu64, s, digits, frac);
}

void
dp_prom_histogram(struct dp_prom *w, const char *name, const char *labels,
		  const struct dp_prom_hist *h)
{
	char metric[160], l[512], le[32];

	snprintf(metric, sizeof(metric), "%s_bucket", name);
	for (unsigned k = 0; k <= h->n; k++) {
		snprintf(l, sizeof(l), "%s", labels ? labels : "");
		if (k < h->n)
			seconds_text(le, sizeof(le), h->le_ns[k]);
		else
			snprintf(le, sizeof(le), "+Inf");
		if (dp_prom_label(l, sizeof(l), "le", le)) {
			w->failed = true;
			return;
		}
		dp_prom_u64(w, metric, l, k < h->n ? h->cum[k] : h->count);
	}
	snprintf(metric, sizeof(metric), "%s_sum", name);
	dp_prom_f64(w, metric, labels, h->sum_s);
	snprintf(metric, sizeof(metric), "%s_count", name);
	dp_prom_u64(w, metric, labels, h->count);
}

/* ------------------------------------------------------------------------ */
/* --metrics ADDR:PORT                                                        */

static int
addr_bad(char *err, size_t n, const char *s, const char *why)
{
	snprintf(err, n, "--metrics %s: %s (expected ADDR:PORT, e.g. "
		 "127.0.0.1:9711, 0.0.0.0:9711, [::1]:9711)", s, why);
	return -EINVAL;
}

int
dp_metrics_addr_parse(const char *s, struct sockaddr_storage *ss,
		      socklen_t *len, char *err, size_t n)
{
	char host[DP_METRICS_ADDR_MAX];
	const char *colon, *port_s;
	unsigned long port;
	char *end;
	size_t hl;

	memset(ss, 0, sizeof(*ss));
	if (strlen(s) >= DP_METRICS_ADDR_MAX)
		return addr_bad(err, n, s, "too long");
	if (s[0] == '[') {
		const char *close = strchr(s, ']');

		if (!close || close[1] != ':')
			return addr_bad(err, n, s, "an IPv6 address needs "
					"[brackets] and a :PORT after them");
		hl = (size_t)(close - s - 1);
		memcpy(host, s + 1, hl);
		port_s = close + 2;
	} else {
		colon = strrchr(s, ':');
		if (!colon)
			return addr_bad(err, n, s, "no :PORT");
		hl = (size_t)(colon - s);
		memcpy(host, s, hl);
		port_s = colon + 1;
	}
	host[hl] = '\0';
	errno = 0;
	port = strtoul(port_s, &end, 10);
	if (!*port_s || *end || errno || port < 1 || port > 65535 ||
	    *port_s == '-' || *port_s == '+')
		return addr_bad(err, n, s, "the port must be a number in 1..65535");
	if (s[0] == '[') {
		struct sockaddr_in6 *a = (struct sockaddr_in6 *)ss;

		if (inet_pton(AF_INET6, host, &a->sin6_addr) != 1)
			return addr_bad(err, n, s, "not an IPv6 address");
		a->sin6_family = AF_INET6;
		a->sin6_port = htons((uint16_t)port);
		*len = sizeof(*a);
	} else {
		struct sockaddr_in *a = (struct sockaddr_in *)ss;

		if (!hl)
			return addr_bad(err, n, s, "no address before :PORT "
					"(0.0.0.0 is every interface)");
		if (inet_pton(AF_INET, host, &a->sin_addr) != 1)
			return addr_bad(err, n, s, "not an IPv4 address "
					"(host names are not resolved)");
		a->sin_family = AF_INET;
		a->sin_port = htons((uint16_t)port);
		*len = sizeof(*a);
	}
	return 0;
}
