/*
 * metrics.h - the metrics room: the Prometheus text exposition format
 * (version 0.0.4) and the HTTP server that serves it (authd --metrics,
 * docs/metrics.md).
 *
 * Two parts, two libraries:
 *  - the exposition writer (prom.c, authd_prom: no DPDK, no HTTP): families
 *    with # HELP and # TYPE, samples with escaped labels, histograms
 *    converted exactly from the engine's own bucket layouts, and the
 *    ADDR:PORT parser the options use;
 *  - the server (server.c, authd_metrics: libmicrohttpd on a control
 *    thread of its own, never a dataplane lcore): GET /metrics calls the
 *    writer callback it was given and sends the text.
 *
 * The room knows nothing of authd's counters: the daemon (dataplane/
 * stats.c) writes every family through the callback of struct
 * dp_metrics_conf, reading what `authctl stats` reads.
 */
#ifndef DP_METRICS_H
#define DP_METRICS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <sys/socket.h>

#define DP_METRICS_PATH "/metrics"
#define DP_METRICS_CONTENT_TYPE "text/plain; version=0.0.4; charset=utf-8"
#define DP_METRICS_ADDR_MAX 64        /* "[v6 address]:port" and a NUL */
#define DP_METRICS_CONNECTIONS_MAX 16 /* connections served at once */
#define DP_METRICS_TIMEOUT_S 10       /* an idle connection is closed */

/* ------------------------------------------------------------------------ */
/* The exposition writer (prom.c)                                             */

enum dp_prom_type {
	DP_PROM_COUNTER = 0,
	DP_PROM_GAUGE,
	DP_PROM_HISTOGRAM,
};

struct dp_prom; /* opaque: the text being written, grown as needed */

/** A new, empty text. NULL on ENOMEM. */
struct dp_prom *dp_prom_create(void);
void dp_prom_free(struct dp_prom *w);
/**
 * The text so far and its length (not NUL-terminated in general). NULL
 * once a write ran out of memory: the text is incomplete, send none of it.
 */
const char *dp_prom_text(const struct dp_prom *w, size_t *len);
/** Forget the text (keep the buffer) for the next scrape. */
void dp_prom_reset(struct dp_prom *w);

/**
 * Start family @p name: its "# HELP" (@p help, escaped) and "# TYPE" lines.
 * Every sample written after it, up to the next family, must be of it
 * (for a histogram: name_bucket, name_sum, name_count).
 */
void dp_prom_family(struct dp_prom *w, const char *name, enum dp_prom_type t,
		    const char *help);

/**
 * Append label @p key="@p value" (the value escaped: backslash, double
 * quote, newline) to the comma-separated list in @p buf (of @p n bytes,
 * "" to start). -ENAMETOOLONG when it does not fit (@p buf unchanged).
 */
int dp_prom_label(char *buf, size_t n, const char *key, const char *value);

/** One sample: name{labels} value; @p labels NULL or "" for none. */
void dp_prom_u64(struct dp_prom *w, const char *name, const char *labels,
		 uint64_t v);
void dp_prom_f64(struct dp_prom *w, const char *name, const char *labels,
		 double v);

#define DP_PROM_LE_MAX 32

/*
 * A histogram in Prometheus' shape: cumulative counts at finite upper
 * bounds (nanoseconds, increasing), every sample (the +Inf bucket), the
 * sum of the samples.
 */
struct dp_prom_hist {
	unsigned n;                      /* finite bounds, <= DP_PROM_LE_MAX */
	uint64_t le_ns[DP_PROM_LE_MAX];
	uint64_t cum[DP_PROM_LE_MAX];    /* samples counted at le_ns[k] */
	uint64_t count;
	double sum_s;
};

/* The largest sample bucket @p b of a histogram holds, in its units;
 * UINT64_MAX for an open bucket (everything above). Increasing in b. */
typedef uint64_t (*dp_prom_bucket_max_fn)(unsigned b);

/**
 * Convert a histogram of @p n_buckets counts, kept in the engine's own
 * layout (bucket b holds samples up to @p bucket_max(b) units, units of
 * 1 / @p units_per_s seconds: TSC cycles at tsc_hz, nanoseconds at 1e9),
 * into @p h at the bounds @p le_ns[0 .. n_le) (nanoseconds, increasing).
 * Exact and conservative: bucket b counts at bound le only when all of it
 * is at or below le (bucket_max(b) / units_per_s <= le / 1e9, compared in
 * integers), so cum[k] never counts a sample above le_ns[k]; h->count
 * is every sample. h->sum_s is left to the caller (the engine keeps sums
 * beside its buckets). -EINVAL for n_le > DP_PROM_LE_MAX, bounds not
 * increasing, or units_per_s 0.
 */
int dp_prom_hist_fill(struct dp_prom_hist *h, const uint64_t *counts,
		      unsigned n_buckets, dp_prom_bucket_max_fn bucket_max,
		      uint64_t units_per_s, const uint64_t *le_ns,
		      unsigned n_le);

/**
 * Write histogram @p h as family @p name's samples: name_bucket{labels,
 * le="0.000001"} for each bound (seconds, exact decimals), le="+Inf",
 * name_sum, name_count. Call after dp_prom_family(.., DP_PROM_HISTOGRAM).
 */
void dp_prom_histogram(struct dp_prom *w, const char *name, const char *labels,
		       const struct dp_prom_hist *h);

/**
 * Parse a listening address: "IPv4:PORT" (127.0.0.1:9711, 0.0.0.0:9711
 * for every interface) or "[IPv6]:PORT" ([::1]:9711, [::]:9711). No host
 * names (nothing is resolved at start). 0, or -EINVAL with the reason in
 * @p err.
 */
int dp_metrics_addr_parse(const char *s, struct sockaddr_storage *ss,
			  socklen_t *len, char *err, size_t errlen);

/* ------------------------------------------------------------------------ */
/* The server (server.c)                                                      */

struct dp_metrics;

/* What the server serves; the pointers outlive it. */
struct dp_metrics_conf {
	/*
	 * Write every family into @p w, on the metrics thread, once per
	 * scrape; it must only read (counters, stats getters), never wait
	 * on the dataplane.
	 */
	void (*write)(void *arg, struct dp_prom *w);
	void *arg;
};

/**
 * Bind and listen on @p addr (dp_metrics_addr_parse) now, at start, so a
 * port in use or a bad address stops authd before anything is loaded.
 * Nothing is served until dp_metrics_start().
 * @return 0 and *@p out; -EINVAL (address); -ENOTSUP (built without
 *         libmicrohttpd); the negative errno of socket/bind/listen
 *         (-EADDRINUSE, -EACCES, -EADDRNOTAVAIL); @p err says which.
 */
int dp_metrics_open(const char *addr, struct dp_metrics **out, char *err,
		    size_t errlen);

/**
 * Serve GET /metrics from a control thread (libmicrohttpd, at most
 * DP_METRICS_CONNECTIONS_MAX connections, DP_METRICS_TIMEOUT_S idle
 * timeout): each scrape calls @p c->write and adds the server's own
 * families (scrapes, errors, scrape duration). Call once every reader the
 * callback uses is up. 0, or a negative errno with a log line.
 */
int dp_metrics_start(struct dp_metrics *m, const struct dp_metrics_conf *c);

/**
 * Stop serving (joins the thread; a scrape in progress finishes), close
 * the socket, free. Call before anything the callback reads is freed.
 * NULL: no-op.
 */
void dp_metrics_stop(struct dp_metrics *m);

/** The address it listens on, as given. */
const char *dp_metrics_addr(const struct dp_metrics *m);

#endif /* DP_METRICS_H */
