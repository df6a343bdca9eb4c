/*
 * server.c - the control socket: authctl's requests, answered by one
 * control thread. The protocol and the command table are in ctl_proto.h
 * (shared with authctl); the handlers in cmd_users.c (users, merchants,
 * funders) and cmd_admin.c (policy, keys, snapshots, clock, risk, stats).
 *
 * Owns: the listening unix socket (mode 0600), its path (unlinked at stop),
 * an eventfd that wakes the thread to stop, and the thread.
 *
 * Invariants: one request per connection, served to completion before the
 * next (the control plane is the ONLY updater of RCU-published records and
 * of user settings, so its changes are serialised by construction). Every
 * request is validated in full before anything changes; an invalid request
 * changes nothing. A change is visible to the next packet: user settings
 * change under the user's lock, records are published (rcu_assign_pointer,
 * cds_lfht) before the answer is written.
 *
 * Concurrency: the thread is a QSBR reader. It is offline while it waits
 * (poll, accept, reading the request, writing the answer) and online only
 * while it handles a request, so it never delays a grace period by more than
 * one request. Old records are freed with call_rcu; synchronize_rcu is never
 * called (online it would wait for itself).
 *
 * Security: the socket is created 0600 (umask while binding, chmod after),
 * peers other than root and our own uid are refused (SO_PEERCRED), and every
 * changing command is logged with the peer's uid and pid. A request line is
 * at most CTL_REQUEST_MAX bytes and must arrive within CTL_IO_TIMEOUT_MS.
 */
#define _GNU_SOURCE /* accept4, struct ucred */
#include <errno.h>
#include <inttypes.h>
#include <poll.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include <jansson.h>
#include <rte_eal.h>
#include <rte_lcore.h>
#include <rte_log.h>
#include <sodium.h>
#include <urcu-qsbr.h>

#include "ctl_pvt.h"

#define CTL_LOG_MAX 240 /* request text in the log line */

/* ------------------------------------------------------------------------ */
/* Answers                                                                    */

json_t *
ctl_error(const char *fmt, ...)
{
	char msg[512];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	return json_pack("{s:b,s:s}", "ok", 0, "error", msg);
}

json_t *
ctl_json_fen_or_null(bool present, int64_t fen)
{
	return present ? json_integer(fen) : json_null();
}

json_t *
ctl_json_id(uint64_t id)
{
	char s[24];

	snprintf(s, sizeof(s), "%" PRIu64, id);
	return json_string(s);
}

/* ------------------------------------------------------------------------ */
/* Journal: every settings change is a record (struct lim_cfg_effect)        */

uint32_t
ctl_now_s(const struct ctl_call *k)
{
	return k->env->ops->now_s(k->env->arg);
}

uint64_t
ctl_arg_u(const struct ctl_call *k, unsigned i)
{
	return k->r.arg[i].u;
}

/*
 * Hand a settings record to the ledger. Its seq is taken: it MUST be
 * submitted even when something failed after the change. The answer waits
 * (offline, serve_one()) until the largest seq is durable.
 */
void
ctl_journal(struct ctl_call *k, const struct lim_cfg_effect *e)
{
	int rc = dp_ledger_submit(k->env->ledger, e);

	if (rc && !k->journal_rc)
		k->journal_rc = rc;
	if (e->seq > k->wait_seq)
		k->wait_seq = e->seq;
}

/* ------------------------------------------------------------------------ */
/* The command table                                                          */

static const struct {
	const char *name;
	json_t *(*fn)(struct ctl_call *k);
} ctl_handlers[] = {
	{"stats", ctl_cmd_stats},
	{"user show", ctl_cmd_user_show},
	{"user set", ctl_cmd_user_set},
	{"user add", ctl_cmd_user_add},
	{"user freeze", ctl_cmd_user_freeze},
	{"user unfreeze", ctl_cmd_user_unfreeze},
	{"merchant show", ctl_cmd_merchant_show},
	{"merchant set", ctl_cmd_merchant_set},
	{"merchant block", ctl_cmd_merchant_block},
	{"merchant unblock", ctl_cmd_merchant_unblock},
	{"funder list", ctl_cmd_funder_list},
	{"funder set", ctl_cmd_funder_set},
	{"funder del", ctl_cmd_funder_del},
	{"policy show", ctl_cmd_policy_show},
	{"policy set", ctl_cmd_policy_set},
	{"keys show", ctl_cmd_keys_show},
	{"keys rotate", ctl_cmd_keys_rotate},
	{"snapshot save", ctl_cmd_snapshot_save},
	{"clock show", ctl_cmd_clock_show},
	{"clock set", ctl_cmd_clock_set},
	{"risk show", ctl_cmd_risk_show},
	{"risk set", ctl_cmd_risk_set},
};

_Static_assert(sizeof(ctl_handlers) / sizeof(ctl_handlers[0]) == CTL_CMDS,
	       "a handler for every command of ctl_proto.h");

/* ------------------------------------------------------------------------ */
/* Request decoding: JSON -> struct ctl_req, validated by ctl_proto.h         */

/* Decode and validate; NULL when @p k->r is ready, else the error answer. */
static json_t *
decode(struct ctl_call *k, json_t *req)
{
	char err[512];

	if (ctl_req_decode(req, &k->r, err, sizeof(err)))
		return ctl_error("%s", err);
	return NULL;
}

/* Decode and run one request line; the answer, never NULL. Call online. */
static json_t *
handle(struct ctl_call *k, const char *line, size_t len)
{
	json_error_t jerr;
	json_t *req, *ans = NULL;

	req = json_loadb(line, len, JSON_REJECT_DUPLICATES, &jerr);
	if (!req)
		ans = ctl_error("request: not JSON: %s", jerr.text);
	else
		ans = decode(k, req);
	for (unsigned i = 0; !ans && i < CTL_CMDS; i++)
		if (!strcmp(ctl_handlers[i].name, k->r.cmd->name))
			ans = ctl_handlers[i].fn(k);
	json_decref(req);
	return ans ? ans : ctl_error("out of memory");
}

/*
 * After a change (offline: this sleeps): wait until its journal records are
 * durable, so "ok" means the change survives a restart. Otherwise the
 * answer says that it was applied but may be lost.
 */
static json_t *
settle(struct ctl_call *k, json_t *ans)
{
	const char *why;
	int rc = k->journal_rc;

	if (!rc && k->wait_seq)
		rc = dp_ledger_wait_durable(k->env->ledger, k->wait_seq,
					    CTL_DURABLE_TIMEOUT_MS);
	if (!rc)
		return ans;
	why = rc == -EIO ? "the journal failed (authctl stats shows why)"
	      : rc == -ETIMEDOUT ? "the journal did not confirm it in time"
	      : rc == -ESHUTDOWN ? "the ledger is stopping"
	      : "no ledger";
	json_decref(ans);
	return json_pack("{s:b,s:b,s:s++}", "ok", 0, "applied", 1, "error",
			 k->r.cmd->name, ": applied, but not durable: ", why);
}

/* Changing commands go to the log with the peer's uid and the outcome. */
static void
log_change(const struct ctl_call *k, const struct ucred *peer, const char *line,
	   size_t len, json_t *ans)
{
	json_t *e = json_object_get(ans, "error");

	if (!k->r.cmd || !(k->r.cmd->flags & CTL_CMD_CHANGES))
		return;
	RTE_LOG(NOTICE, USER1, "ctl: uid %u pid %d: %.*s: %s\n", peer->uid,
		(int)peer->pid, (int)(len > CTL_LOG_MAX ? CTL_LOG_MAX : len), line,
		e ? json_string_value(e) : "ok");
}

/* ------------------------------------------------------------------------ */
/* Connections (offline)                                                      */

static int64_t
ms_now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/*
 * Wait until @p fd is ready for @p ev or the deadline passes; while reading
 * a request, also until stop is asked. An answer is written even during a
 * stop: the change it reports has been made.
 */
static int
wait_fd(struct dp_ctl *c, int fd, short ev, int64_t deadline)
{
	for (;;) {
		struct pollfd p[2] = {{fd, ev, 0}, {c->efd, POLLIN, 0}};
		nfds_t n = ev == POLLIN ? 2 : 1;
		int64_t left = deadline - ms_now();
		int rc;

		if (left <= 0)
			return -ETIMEDOUT;
		rc = poll(p, n, (int)left);
		if (rc < 0 && errno == EINTR)
			continue;
		if (rc < 0)
			return -errno;
		if (n == 2 && p[1].revents)
			return -ECANCELED;
		if (p[0].revents)
			return 0;
	}
}

/* Read one line (without its newline) into @p buf; its length or -errno. */
static ssize_t
read_line(struct dp_ctl *c, int fd, char *buf, size_t cap, int64_t deadline)
{
	size_t len = 0;

	for (;;) {
		int rc = wait_fd(c, fd, POLLIN, deadline);
		ssize_t r;
		char *nl;

		if (rc)
			return rc;
		r = read(fd, buf + len, cap - len);
		if (r < 0 && (errno == EINTR || errno == EAGAIN))
			continue;
		if (r < 0)
			return -errno;
		nl = memchr(buf + len, '\n', (size_t)r);
		len += (size_t)r;
		if (nl)
			return nl - buf;
		if (r == 0)
			return len ? (ssize_t)len : -ENODATA;
		if (len == cap)
			return -EMSGSIZE;
	}
}

static void
write_all(struct dp_ctl *c, int fd, const char *s, size_t len, int64_t deadline)
{
	size_t off = 0;

	while (off < len && wait_fd(c, fd, POLLOUT, deadline) == 0) {
		ssize_t w = send(fd, s + off, len - off, MSG_NOSIGNAL);

		if (w < 0 && errno != EINTR && errno != EAGAIN)
			return;
		if (w > 0)
			off += (size_t)w;
	}
}

static void
answer(struct dp_ctl *c, int fd, json_t *ans, int64_t deadline)
{
	char *text = json_dumps(ans, JSON_COMPACT);

	if (text) {
		write_all(c, fd, text, strlen(text), deadline);
		write_all(c, fd, "\n", 1, deadline);
	}
	free(text);
	json_decref(ans);
}

static void
serve_one(struct dp_ctl *c, char *buf)
{
	int fd = accept4(c->lfd, NULL, NULL, SOCK_CLOEXEC | SOCK_NONBLOCK);
	int64_t deadline = ms_now() + CTL_IO_TIMEOUT_MS;
	struct ucred peer = {0};
	socklen_t sl = sizeof(peer);
	ssize_t len;

	if (fd < 0)
		return;
	if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &peer, &sl) ||
	    (peer.uid != 0 && peer.uid != geteuid())) {
		answer(c, fd, ctl_error("permission denied"), deadline);
		close(fd);
		return;
	}
	len = read_line(c, fd, buf, CTL_REQUEST_MAX, deadline);
	if (len == -EMSGSIZE)
		answer(c, fd, ctl_error("request longer than %d bytes", CTL_REQUEST_MAX),
		       deadline);
	if (len >= 0) {
		struct ctl_call *k = calloc(1, sizeof(*k));
		json_t *ans;

		if (!k) {
			answer(c, fd, ctl_error("out of memory"), deadline);
			close(fd);
			return;
		}
		k->c = c;
		k->env = &c->env;
		k->db = c->env.db;
		k->uid = peer.uid;
		rcu_thread_online();
		ans = handle(k, buf, (size_t)len);
		rcu_thread_offline();
		ans = settle(k, ans);
		log_change(k, &peer, buf, (size_t)len, ans);
		answer(c, fd, ans, ms_now() + CTL_IO_TIMEOUT_MS);
		free(k);
	}
	close(fd);
}

static void *
ctl_main(void *arg)
{
	struct dp_ctl *c = arg;
	char *buf = malloc(CTL_REQUEST_MAX);

	rcu_register_thread();
	rcu_thread_offline();
	while (buf) {
		struct pollfd p[2] = {{c->lfd, POLLIN, 0}, {c->efd, POLLIN, 0}};

		if (poll(p, 2, -1) < 0) {
			if (errno == EINTR)
				continue;
			RTE_LOG(ERR, USER1, "ctl: poll: %s\n", strerror(errno));
			break;
		}
		if (p[1].revents)
			break;
		if (p[0].revents & POLLIN)
			serve_one(c, buf);
	}
	free(buf);
	rcu_unregister_thread();
	return NULL;
}

/* ------------------------------------------------------------------------ */
/* Start and stop                                                             */

/* Refuse a path that exists and is not a stale socket; remove a stale one. */
static int
clear_stale(const char *path)
{
	struct sockaddr_un a = {.sun_family = AF_UNIX};
	struct stat st;
	int fd, rc;

	if (lstat(path, &st) != 0)
		return errno == ENOENT ? 0 : -errno;
	if (!S_ISSOCK(st.st_mode)) {
		RTE_LOG(ERR, USER1, "ctl: %s exists and is not a socket: not touching it\n",
			path);
		return -EEXIST;
	}
	snprintf(a.sun_path, sizeof(a.sun_path), "%s", path);
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -errno;
	rc = connect(fd, (struct sockaddr *)&a, sizeof(a));
	close(fd);
	if (rc == 0) {
		RTE_LOG(ERR, USER1, "ctl: %s: another authd is listening there\n", path);
		return -EADDRINUSE;
	}
	RTE_LOG(NOTICE, USER1, "ctl: removing stale socket %s\n", path);
	return unlink(path) ? -errno : 0;
}

static int
listen_on(struct dp_ctl *c)
{
	struct sockaddr_un a = {.sun_family = AF_UNIX};
	mode_t old;
	int rc;

	if ((rc = clear_stale(c->path)) != 0)
		return rc;
	snprintf(a.sun_path, sizeof(a.sun_path), "%s", c->path);
	c->lfd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
	if (c->lfd < 0)
		return -errno;
	/* 0600 from birth: no window in which others could connect. */
	old = umask(0177);
	rc = bind(c->lfd, (struct sockaddr *)&a, sizeof(a));
	umask(old);
	if (rc || chmod(c->path, 0600) || listen(c->lfd, 16)) {
		rc = -errno;
		RTE_LOG(ERR, USER1, "ctl: %s: %s\n", c->path, strerror(-rc));
		return rc;
	}
	return 0;
}

static int
ctl_path(const struct dp_ctl_env *env, char *path, size_t n)
{
	int len;

	if (env->path && env->path[0])
		len = snprintf(path, n, "%s", env->path);
	else
		len = snprintf(path, n, "%s/%s", rte_eal_get_runtime_dir(), CTL_SOCK_NAME);
	if (len < 0 || (size_t)len >= n) {
		RTE_LOG(ERR, USER1, "ctl: socket path longer than %zu bytes\n", n - 1);
		return -ENAMETOOLONG;
	}
	return 0;
}

struct dp_ctl *
dp_ctl_start(const struct dp_ctl_env *env)
{
	struct dp_ctl *c = calloc(1, sizeof(*c));

	if (!c)
		return NULL;
	c->env = *env;
	c->lfd = -1;
	c->efd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	if (sodium_init() < 0 || c->efd < 0 || ctl_path(env, c->path, sizeof(c->path)) ||
	    listen_on(c))
		goto fail;
	if (rte_ctrl_thread_create(&c->tid, "authd-ctl", NULL, ctl_main, c) != 0) {
		unlink(c->path);
		goto fail;
	}
	RTE_LOG(NOTICE, USER1, "ctl: listening on %s\n", c->path);
	return c;
fail:
	if (c->lfd >= 0)
		close(c->lfd);
	if (c->efd >= 0)
		close(c->efd);
	free(c);
	return NULL;
}

void
dp_ctl_stop(struct dp_ctl *c)
{
	uint64_t one = 1;

	if (!c)
		return;
	if (write(c->efd, &one, sizeof(one)) != sizeof(one))
		RTE_LOG(ERR, USER1, "ctl: cannot wake the control thread\n");
	pthread_join(c->tid, NULL);
	close(c->lfd);
	close(c->efd);
	unlink(c->path);
	free(c);
}
