/*
 * peer_server.c - perf_redis_peer talking to Redis outside the timed run,
 * on blocking connections with PERF_TIMEOUT_S timeouts (a stuck server
 * fails the run instead of hanging it): connecting, SCRIPT LOAD, the run id
 * (INCR perf:run: request ids carry it, so runs against one server never
 * reuse an id), the server's state before and after the run, and the final
 * check that money and remembered answers add up.
 *
 * The state: DBSIZE, and the sum of holds over u:1..u:N, summed in Redis
 * by a Lua loop over those ids, PERF_SUM_STEP users per EVAL (only ids
 * 1..N can change: the driver draws from them, and walking them skips the
 * millions of request keys a SCAN would visit).
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>

#include "peer.h"

/*
 * Sum of holds over users u:ARGV[1]..u:ARGV[2]: {sum, users found}. Only
 * ids 1..N can change (the driver draws from them), and walking them
 * skips the millions of request keys a SCAN would visit.
 */
static const char perf_sum_lua[] =
	"local s, n = 0, 0\n"
	"for i = tonumber(ARGV[1]), tonumber(ARGV[2]) do\n"
	"  local h = redis.call('HGET', 'u:' .. i, 'holds')\n"
	"  if h then s = s + tonumber(h); n = n + 1 end\n"
	"end\n"
	"return {string.format('%.0f', s), n}\n";

redisContext *
perf_connect(const struct perf_cfg *cfg)
{
	struct timeval tv = {.tv_sec = PERF_TIMEOUT_S};
	redisContext *rc;

	if (cfg->socket_path)
		rc = redisConnectUnixWithTimeout(cfg->socket_path, tv);
	else
		rc = redisConnectWithTimeout(cfg->host, cfg->port, tv);
	if (!rc || rc->err) {
		if (cfg->socket_path)
			fprintf(stderr, "perf_redis_peer: cannot connect to "
				"%s: %s\n", cfg->socket_path,
				rc ? rc->errstr : "out of memory");
		else
			fprintf(stderr, "perf_redis_peer: cannot connect to "
				"%s:%d: %s\n", cfg->host, cfg->port,
				rc ? rc->errstr : "out of memory");
		if (rc)
			redisFree(rc);
		return NULL;
	}
	/* a stuck server makes the run fail instead of hang */
	redisSetTimeout(rc, tv);
	return rc;
}

/* A reply of the wanted type, or NULL with a message naming @what. */
static redisReply *
perf_expect(redisContext *rc, void *reply, int type, const char *what)
{
	redisReply *r = reply;

	if (!r) {
		fprintf(stderr, "perf_redis_peer: %s: %s\n", what, rc->errstr);
		return NULL;
	}
	if (r->type != type) {
		fprintf(stderr, "perf_redis_peer: %s: unexpected reply%s%s\n",
			what, r->type == REDIS_REPLY_ERROR ? ": " : "",
			r->type == REDIS_REPLY_ERROR ? r->str : "");
		freeReplyObject(r);
		return NULL;
	}
	return r;
}

static int
perf_read_script(const char *path, char **text)
{
	FILE *f = fopen(path, "r");
	size_t n;

	if (!f) {
		fprintf(stderr, "perf_redis_peer: cannot open the script %s: "
			"%s (give --script FILE)\n", path, strerror(errno));
		return -ENOENT;
	}
	*text = malloc(PERF_SCRIPT_MAX + 1);
	n = *text ? fread(*text, 1, PERF_SCRIPT_MAX + 1, f) : 0;
	fclose(f);
	if (!*text || n == 0 || n > PERF_SCRIPT_MAX) {
		fprintf(stderr, "perf_redis_peer: %s is empty, unreadable or "
			"over 1 MiB\n", path);
		free(*text);
		*text = NULL;
		return -EINVAL;
	}
	(*text)[n] = '\0';
	return 0;
}

static int
perf_script_load(redisContext *rc, const char *path, char *sha, size_t len)
{
	char *text;
	redisReply *r;

	if (perf_read_script(path, &text))
		return -ENOENT;
	r = perf_expect(rc, redisCommand(rc, "SCRIPT LOAD %s", text),
			REDIS_REPLY_STRING, "SCRIPT LOAD");
	free(text);
	if (!r)
		return -EPROTO;
	snprintf(sha, len, "%s", r->str);
	freeReplyObject(r);
	return 0;
}

static int
perf_integer(redisContext *rc, void *reply, const char *what, long long *v)
{
	redisReply *r = perf_expect(rc, reply, REDIS_REPLY_INTEGER, what);

	if (!r)
		return -EPROTO;
	*v = r->integer;
	freeReplyObject(r);
	return 0;
}

/* Add the holds of users @from..@to to @s. */
static int
perf_sum_step(redisContext *rc, uint64_t from, uint64_t to,
	      struct perf_server *s)
{
	redisReply *r = perf_expect(
		rc, redisCommand(rc, "EVAL %s 0 %llu %llu", perf_sum_lua,
				 (unsigned long long)from,
				 (unsigned long long)to),
		REDIS_REPLY_ARRAY, "summing holds");
	int ret = -EPROTO;

	if (!r)
		return -EPROTO;
	if (r->elements == 2 && r->element[0]->type == REDIS_REPLY_STRING &&
	    r->element[1]->type == REDIS_REPLY_INTEGER) {
		s->holds_fen += strtoll(r->element[0]->str, NULL, 10);
		s->users_seen += (uint64_t)r->element[1]->integer;
		ret = 0;
	} else {
		fprintf(stderr, "perf_redis_peer: summing holds: malformed "
			"reply\n");
	}
	freeReplyObject(r);
	return ret;
}

/* The key count and, if @sum, the holds of users 1..@users. */
static int
perf_server_state(redisContext *rc, uint64_t users, bool sum,
		  struct perf_server *s)
{
	long long keys;

	memset(s, 0, sizeof(*s));
	if (perf_integer(rc, redisCommand(rc, "DBSIZE"), "DBSIZE", &keys))
		return -EPROTO;
	s->keys = (uint64_t)keys;
	for (uint64_t from = 1; sum && from <= users; from += PERF_SUM_STEP) {
		uint64_t to = from + PERF_SUM_STEP - 1;

		if (to > users)
			to = users;

		if (perf_sum_step(rc, from, to, s))
			return -EPROTO;
	}
	return 0;
}

void
perf_redis_version(redisContext *rc, char *out, size_t len)
{
	redisReply *r = perf_expect(rc, redisCommand(rc, "INFO server"),
				    REDIS_REPLY_STRING, "INFO server");
	const char *p = r ? strstr(r->str, "redis_version:") : NULL;

	snprintf(out, len, "unknown");
	if (p)
		snprintf(out, len, "%.*s", (int)strcspn(p + 14, "\r\n"),
			 p + 14);
	if (r)
		freeReplyObject(r);
}

/* Warn when u:N is missing: the users were not loaded, or fewer. */
static void
perf_warn_missing(redisContext *rc, uint64_t users)
{
	long long n = 0;

	if (perf_integer(rc, redisCommand(rc, "EXISTS u:%llu",
					  (unsigned long long)users),
			 "EXISTS", &n) == 0 && n == 0)
		fprintf(stderr, "perf_redis_peer: warning: u:%" PRIu64 " does "
			"not exist: were %" PRIu64 " users loaded "
			"(perf_load_users)? Requests for missing users are "
			"declined as unknown.\n", users, users);
}

/* The final check: money and remembered answers add up. */
void
perf_check(const struct perf_cfg *cfg, redisContext *rc,
	   struct perf_result *res)
{
	int64_t held;
	uint64_t added;

	if (perf_server_state(rc, cfg->users, cfg->check, &res->after)) {
		snprintf(res->err, PERF_ERR_MAX, "cannot read the server's "
			 "state after the run");
		return;
	}
	if (!cfg->check)
		return;
	res->checked = true;
	held = res->after.holds_fen - res->before.holds_fen;
	added = res->after.keys - res->before.keys;
	res->check_ok = held == res->all.approved_fen &&
			added == res->all.fresh;
	if (!res->check_ok)
		fprintf(stderr, "perf_redis_peer: CHECK FAILED: holds grew by "
			"%" PRId64 " fen but %" PRId64 " fen were approved; "
			"keys grew by %" PRIu64 " for %" PRIu64 " fresh "
			"request ids\n", held, res->all.approved_fen, added,
			res->all.fresh);
}

/* Before the run: load the script, take a run id, note the state. */
int
perf_prepare(const struct perf_cfg *cfg, redisContext *rc, char *sha,
	     size_t sha_len, uint64_t *run, struct perf_result *res)
{
	long long r;

	if (perf_script_load(rc, cfg->script_path, sha, sha_len))
		return -EPROTO;
	if (perf_integer(rc, redisCommand(rc, "INCR perf:run"), "INCR perf:run",
			 &r))
		return -EPROTO;
	if (r < 1 || r > PERF_RUN_MAX) {
		fprintf(stderr, "perf_redis_peer: perf:run is %lld, past %d "
			"runs: request ids could repeat; use a fresh server\n",
			r, PERF_RUN_MAX);
		return -ERANGE;
	}
	*run = (uint64_t)r;
	perf_warn_missing(rc, cfg->users);
	if (perf_server_state(rc, cfg->users, cfg->check && !cfg->holds_known,
			      &res->before))
		return -EPROTO;
	if (cfg->holds_known)
		res->before.holds_fen = cfg->holds_before_fen;
	return 0;
}
