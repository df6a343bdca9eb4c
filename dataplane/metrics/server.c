/*
 * server.c - authd --metrics: the Prometheus scrape endpoint, GET /metrics,
 * served with libmicrohttpd from a control thread of its own.
 *
 * Owns: the listening socket (bound at start by dp_metrics_open, so a port
 * in use stops authd before it loads anything), the libmicrohttpd daemon
 * in external-polling mode (epoll), the thread that runs it
 * (rte_ctrl_thread_create: it runs on the control cores, never on a
 * dataplane lcore), and one reusable text buffer.
 *
 * Why external polling rather than libmicrohttpd's own thread: threads it
 * creates would inherit the creating thread's CPU affinity, which at start
 * is the main lcore's, a core the dataplane polls without pause; the EAL's
 * control threads are placed off the dataplane cores.
 *
 * One thread does everything: accept, parse, the writer callback, sending.
 * So the callback runs for one scrape at a time, and the buffer needs no
 * lock. Each response is a copy of the text (libmicrohttpd frees it once
 * sent), so a slow client never holds the buffer. Bounded: at most
 * DP_METRICS_CONNECTIONS_MAX connections, each closed after
 * DP_METRICS_TIMEOUT_S idle; requests other than GET/HEAD of /metrics get
 * 405 or 404 with no work done.
 *
 * Stop: a flag the loop checks at least every DP_METRICS_POLL_MS; the
 * thread is joined before the daemon and the socket are closed.
 */
#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <rte_lcore.h>
#include <rte_log.h>

#include "metrics.h"

#ifdef AUTHD_HAVE_MHD
#include <microhttpd.h>
#endif

#define DP_METRICS_POLL_MS 100

struct dp_metrics {
	char addr[DP_METRICS_ADDR_MAX];
	int fd;                       /* listening; libmicrohttpd's once started */
	struct dp_metrics_conf conf;
	struct dp_prom *text;         /* the metrics thread's alone */
	pthread_t tid;
	bool started;
	int stop;                     /* atomic */
	uint64_t scrapes, errors;     /* metrics thread only */
	double last_scrape_s;
#ifdef AUTHD_HAVE_MHD
	struct MHD_Daemon *d;
#endif
};

const char *
dp_metrics_addr(const struct dp_metrics *m)
{
	return m->addr;
}

#ifdef AUTHD_HAVE_MHD

static double
mono_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

int
dp_metrics_open(const char *addr, struct dp_metrics **out, char *err,
		size_t errlen)
{
	struct sockaddr_storage ss;
	struct dp_metrics *m;
	socklen_t len;
	int one = 1, rc;

	*out = NULL;
	if ((rc = dp_metrics_addr_parse(addr, &ss, &len, err, errlen)) != 0)
		return rc;
	m = calloc(1, sizeof(*m));
	if (!m) {
		snprintf(err, errlen, "--metrics %s: out of memory", addr);
		return -ENOMEM;
	}
	snprintf(m->addr, sizeof(m->addr), "%s", addr);
	m->fd = socket(ss.ss_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (m->fd < 0 ||
	    setsockopt(m->fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) ||
	    bind(m->fd, (struct sockaddr *)&ss, len) ||
	    listen(m->fd, DP_METRICS_CONNECTIONS_MAX)) {
		rc = -errno;
		snprintf(err, errlen, "--metrics %s: cannot listen: %s%s", addr,
			 strerror(errno), rc == -EADDRINUSE ?
			 " (another process, perhaps another authd, has that "
			 "port: give each instance its own --metrics port)" : "");
		if (m->fd >= 0)
			close(m->fd);
		free(m);
		return rc;
	}
	*out = m;
	return 0;
}

static void __attribute__((format(printf, 2, 0)))
mhd_log(void *cls, const char *fmt, va_list ap)
{
	char line[256];

	vsnprintf(line, sizeof(line), fmt, ap);
	RTE_LOG(WARNING, USER1, "metrics: %s%s", line,
		line[0] && line[strlen(line) - 1] == '\n' ? "" : "\n");
	(void)cls;
}

/* The server's own families, after the daemon's. */
static void
write_own(struct dp_metrics *m, struct dp_prom *w)
{
	dp_prom_family(w, "authd_metrics_scrapes_total", DP_PROM_COUNTER,
		       "Scrapes of /metrics served, this one included.");
	dp_prom_u64(w, "authd_metrics_scrapes_total", NULL, m->scrapes);
	dp_prom_family(w, "authd_metrics_scrape_errors_total", DP_PROM_COUNTER,
		       "Scrapes answered 500: the text did not fit in memory.");
	dp_prom_u64(w, "authd_metrics_scrape_errors_total", NULL, m->errors);
	dp_prom_family(w, "authd_metrics_scrape_duration_seconds", DP_PROM_GAUGE,
		       "Time the previous scrape took to write its text.");
	dp_prom_f64(w, "authd_metrics_scrape_duration_seconds", NULL,
		    m->last_scrape_s);
}

static enum MHD_Result
reply(struct MHD_Connection *c, unsigned status, const char *text,
      size_t len, enum MHD_ResponseMemoryMode mode)
{
	struct MHD_Response *r;
	enum MHD_Result rc;

	r = MHD_create_response_from_buffer(len, (void *)(uintptr_t)text, mode);
	if (!r)
		return MHD_NO;
	MHD_add_response_header(r, MHD_HTTP_HEADER_CONTENT_TYPE,
				status == MHD_HTTP_OK ? DP_METRICS_CONTENT_TYPE
						      : "text/plain; charset=utf-8");
	if (status == MHD_HTTP_METHOD_NOT_ALLOWED)
		MHD_add_response_header(r, MHD_HTTP_HEADER_ALLOW, "GET, HEAD");
	rc = MHD_queue_response(c, status, r);
	MHD_destroy_response(r);
	return rc;
}

#define STATIC_TEXT(s) s, sizeof(s) - 1, MHD_RESPMEM_PERSISTENT

static enum MHD_Result
on_request(void *cls, struct MHD_Connection *c, const char *url,
	   const char *method, const char *version, const char *upload,
	   size_t *upload_len, void **con_cls)
{
	struct dp_metrics *m = cls;
	const char *text;
	double t0;
	size_t len;

	if (strcmp(method, MHD_HTTP_METHOD_GET) && strcmp(method, MHD_HTTP_METHOD_HEAD))
		return reply(c, MHD_HTTP_METHOD_NOT_ALLOWED,
			     STATIC_TEXT("only GET and HEAD\n"));
	if (strcmp(url, DP_METRICS_PATH))
		return reply(c, MHD_HTTP_NOT_FOUND,
			     STATIC_TEXT("authd serves its metrics at /metrics\n"));
	t0 = mono_s();
	m->scrapes++;
	dp_prom_reset(m->text);
	m->conf.write(m->conf.arg, m->text);
	write_own(m, m->text);
	m->last_scrape_s = mono_s() - t0;
	text = dp_prom_text(m->text, &len);
	if (!text) {
		m->errors++;
		return reply(c, MHD_HTTP_INTERNAL_SERVER_ERROR,
			     STATIC_TEXT("the metrics did not fit in memory\n"));
	}
	return reply(c, MHD_HTTP_OK, text, len, MHD_RESPMEM_MUST_COPY);
}

static void *
metrics_main(void *arg)
{
	struct dp_metrics *m = arg;

	while (!__atomic_load_n(&m->stop, __ATOMIC_ACQUIRE))
		if (MHD_run_wait(m->d, DP_METRICS_POLL_MS) != MHD_YES)
			usleep(DP_METRICS_POLL_MS * 1000);
	return NULL;
}

int
dp_metrics_start(struct dp_metrics *m, const struct dp_metrics_conf *c)
{
	m->conf = *c;
	m->text = dp_prom_create();
	if (!m->text)
		return -ENOMEM;
	m->d = MHD_start_daemon(
		MHD_USE_ERROR_LOG | MHD_USE_EPOLL, 0, NULL, NULL, on_request, m,
		MHD_OPTION_EXTERNAL_LOGGER, mhd_log, m,
		MHD_OPTION_LISTEN_SOCKET, m->fd,
		MHD_OPTION_CONNECTION_LIMIT, (unsigned)DP_METRICS_CONNECTIONS_MAX,
		MHD_OPTION_CONNECTION_TIMEOUT, (unsigned)DP_METRICS_TIMEOUT_S,
		MHD_OPTION_END);
	if (!m->d) {
		RTE_LOG(ERR, USER1, "metrics: libmicrohttpd did not start on %s\n",
			m->addr);
		return -EIO;
	}
	m->fd = -1; /* the daemon's now: MHD_stop_daemon closes it */
	if (rte_ctrl_thread_create(&m->tid, "authd-metrics", NULL, metrics_main,
				   m) != 0) {
		RTE_LOG(ERR, USER1, "metrics: cannot create its thread\n");
		MHD_stop_daemon(m->d);
		m->d = NULL;
		return -EAGAIN;
	}
	m->started = true;
	RTE_LOG(NOTICE, USER1, "metrics: Prometheus text at http://%s%s\n",
		m->addr, DP_METRICS_PATH);
	return 0;
}

void
dp_metrics_stop(struct dp_metrics *m)
{
	if (!m)
		return;
	if (m->started) {
		__atomic_store_n(&m->stop, 1, __ATOMIC_RELEASE);
		pthread_join(m->tid, NULL);
	}
	if (m->d)
		MHD_stop_daemon(m->d);
	if (m->fd >= 0)
		close(m->fd);
	dp_prom_free(m->text);
	free(m);
}

#else /* !AUTHD_HAVE_MHD */

int
dp_metrics_open(const char *addr, struct dp_metrics **out, char *err,
		size_t errlen)
{
	*out = NULL;
	snprintf(err, errlen, "--metrics %s: this authd was built without "
		 "libmicrohttpd (install libmicrohttpd-dev: scripts/deps.sh, "
		 "then rebuild)", addr);
	return -ENOTSUP;
}

int
dp_metrics_start(struct dp_metrics *m, const struct dp_metrics_conf *c)
{
	(void)m;
	(void)c;
	return -ENOTSUP;
}

void
dp_metrics_stop(struct dp_metrics *m)
{
	(void)m;
}

#endif /* AUTHD_HAVE_MHD */
