/*
 * export.c - the downstream export: every durable journal record is
 * published to a NATS JetStream stream, once, in seq order
 * (docs/export.md; the message format is in export.h).
 *
 * Owns: one control thread (not an lcore), its NATS connection, a reader
 * that follows the journal's segment files, and <journal>/export.pos.
 *
 * Source. The worker reads the segment files, never the ledger's rings:
 * only records up to *durable_seq (acquire) are read, so nothing that a
 * crash could still take back ever leaves the host, and the ledger and the
 * lcores never wait for the export. It follows the files with the ledger's
 * tail reader (dp_journal_tail_*, ledger/journal_tail.c), which checks
 * every header, record and the chain of segments as it goes.
 *
 * Order and delivery. A resync reads the stream's last message: its
 * Nats-Msg-Id (journal seq M) and its stream sequence L; publishing goes
 * on from M + 1, the message of seq s expecting stream sequence
 * L + (s - 1 - M) before it (Nats-Expected-Last-Sequence). Publishes are
 * asynchronous, at most EXPORT_INFLIGHT without an ack, each with an ack
 * timeout. A failed ack (timeout, a rejected expectation, no stream) or a
 * reconnection stops publishing; once every message in flight is settled
 * the worker resyncs from the stream's last message again. So the stream
 * holds every seq once, contiguous and in order, whatever was lost or
 * duplicated in flight (at-least-once publishing; Nats-Msg-Id dedupe and
 * the expected sequence make it once in the stream). acked_seq = the
 * highest seq below which every message was acknowledged.
 *
 * Position. acked_seq is written to export.pos (lim_file_replace) every
 * EXPORT_POS_EVERY acks or EXPORT_POS_MS, and at stop. At start it gives
 * the lag before the stream answers; the stream's last message decides
 * where publishing resumes (it is never behind export.pos unless the
 * stream lost messages: then the journal is published again from the
 * stream's end, said in the log).
 *
 * Failure. NATS down: the client reconnects (every EXPORT_RECONNECT_MS),
 * the worker waits; nothing upstream notices but the lag in stats. A
 * condition only an operator can fix (the stream holds another journal,
 * records past our durable end, a journal record that does not verify) is
 * state "error", logged once per distinct reason and retried every
 * EXPORT_ERROR_RETRY_MS. The worker never deletes a segment.
 *
 * This file is the worker alone (names and the position file are
 * export_fmt.c's), and stays one file: the NATS calls are the state
 * machine's steps (connect, ensure the stream, read its last message,
 * publish, settle), all on one struct under one mutex shared with the
 * client's callbacks; splitting the "plumbing" from the "machine" would
 * export that struct and its locking rules to a second file for no
 * caller's benefit.
 *
 * Threads: the worker; the NATS client's own threads run the ack and
 * connection callbacks, which touch only the ack ring and flags under
 * x->mu. Stats are relaxed atomics written by the worker (and the error
 * text under x->mu), read by the control thread.
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <time.h>
#include <unistd.h>

#include <jansson.h>
#include <rte_lcore.h>
#include <rte_log.h>

#ifdef AUTHD_HAVE_NATS
#include <nats/nats.h>
#endif

#include "export.h"
#include "journal.h"

#define EXPORT_INFLIGHT 256u          /* publishes without an ack at most */
#define EXPORT_POS_EVERY 1024u        /* save export.pos after this many acks */
#define EXPORT_POS_MS 1000u           /* ... or this long after an ack */
#define EXPORT_ACK_WAIT_MS 2000       /* a publish without an ack fails then */
#define EXPORT_API_WAIT_MS 2000       /* stream info, get message */
#define EXPORT_CONNECT_MS 2000
#define EXPORT_RECONNECT_MS 250
#define EXPORT_BACKOFF_MIN_MS 100u
#define EXPORT_BACKOFF_MAX_MS 5000u
#define EXPORT_ERROR_RETRY_MS 5000u
#define EXPORT_SETTLE_MS (EXPORT_ACK_WAIT_MS + 1000)
#define EXPORT_STOP_MS 3000u          /* bounded flush at stop */
#define EXPORT_IDLE_NS 1000000L       /* sleep when nothing moved */

_Static_assert((EXPORT_INFLIGHT & (EXPORT_INFLIGHT - 1)) == 0,
	       "the ack ring is indexed by seq & (EXPORT_INFLIGHT - 1)");
_Static_assert(sizeof(struct lim_effect) == DP_JOURNAL_REC_LEN,
	       "a message payload is one journal record");

/* ------------------------------------------------------------------------ */
/* The worker                                                                 */

#ifdef AUTHD_HAVE_NATS

static uint64_t
mono_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

enum slot_state { SLOT_FREE = 0, SLOT_SENT, SLOT_ACKED, SLOT_FAILED };

struct slot {
	uint64_t seq;
	uint64_t stream_seq;
	uint8_t state;              /* enum slot_state */
};

struct dp_export {
	struct dp_export_conf conf; /* a copy; its pointers outlive us */
	pthread_t tid;
	int stop;                   /* atomic */
	struct dp_journal_tail *tail; /* follows the journal's files */
	natsOptions *opts;
	natsConnection *nc;
	jsCtx *js;
	char subjects[LIM_EFF_KINDS][DP_EXPORT_SUBJECT_MAX + 16];
	char filter[DP_EXPORT_SUBJECT_MAX + 4];  /* <subject>.> */
	char url_shown[256];        /* the URL without user:password@ */
	char jid_hex[24];
	/* where the stream is: seq base_jseq is at stream sequence base_sseq */
	bool synced;
	uint64_t base_jseq, base_sseq;
	uint64_t next;              /* next seq to publish */
	uint64_t acked;             /* every seq <= acked is in the stream */
	uint64_t acked_sseq;
	uint64_t saved, saved_ms;   /* export.pos */
	uint64_t retry_ms;          /* next connect / resync attempt */
	uint64_t backoff_ms;
	/* shared with the client's callback threads, under mu */
	pthread_mutex_t mu;
	struct slot ring[EXPORT_INFLIGHT];
	int resync;                 /* a failed ack or a reconnection */
	int disconnected;
	char error[256];            /* last error */
	char logged[256];           /* last error logged (log once) */
	struct dp_export_stats st;  /* numbers: relaxed atomics */
};

#define ST_SET(x, f, v) __atomic_store_n(&(x)->st.f, (v), __ATOMIC_RELAXED)
#define ST_ADD(x, f, v) __atomic_fetch_add(&(x)->st.f, (v), __ATOMIC_RELAXED)
#define ST_GET(x, f) __atomic_load_n(&(x)->st.f, __ATOMIC_RELAXED)

static bool
stopping(const struct dp_export *x)
{
	return __atomic_load_n(&x->stop, __ATOMIC_ACQUIRE) != 0;
}

static uint64_t
durable(const struct dp_export *x)
{
	return __atomic_load_n(x->conf.durable_seq, __ATOMIC_ACQUIRE);
}

static void
set_state(struct dp_export *x, enum dp_export_state s)
{
	if (ST_GET(x, state) == s)
		return;
	ST_SET(x, state, s);
	RTE_LOG(NOTICE, USER1, "export: %s (acked up to seq %" PRIu64
		", durable %" PRIu64 ")\n", dp_export_state_name(s), x->acked,
		durable(x));
}

/* Record an error: counted always, logged when the reason changes. */
__attribute__((format(printf, 2, 3))) static void
oops(struct dp_export *x, const char *fmt, ...)
{
	char why[256];
	bool log;
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(why, sizeof(why), fmt, ap);
	va_end(ap);
	ST_ADD(x, errors, 1);
	pthread_mutex_lock(&x->mu);
	memcpy(x->error, why, sizeof(why));
	log = strcmp(x->logged, why) != 0;
	if (log)
		memcpy(x->logged, why, sizeof(why));
	pthread_mutex_unlock(&x->mu);
	if (log)
		RTE_LOG(WARNING, USER1, "export: %s\n", why);
}

static const char *
nats_why(natsStatus s)
{
	const char *t = nats_GetLastError(NULL);

	return t && *t ? t : natsStatus_GetText(s);
}

/* ---- NATS callbacks (the client's threads) ------------------------------ */

static void
on_ack(jsCtx *js, natsMsg *m, jsPubAck *pa, jsPubAckErr *pae, void *arg)
{
	struct dp_export *x = arg;
	const char *id = NULL;
	uint64_t seq = 0;

	(void)js;
	if (natsMsgHeader_Get(m, DP_EXPORT_HDR_MSG_ID, &id) != NATS_OK || !id ||
	    lim_parse_u64(id, UINT64_MAX, &seq))
		seq = 0;
	pthread_mutex_lock(&x->mu);
	if (seq) {
		struct slot *s = &x->ring[seq & (EXPORT_INFLIGHT - 1)];

		if (s->seq == seq && s->state == SLOT_SENT) {
			s->state = pa ? SLOT_ACKED : SLOT_FAILED;
			s->stream_seq = pa ? pa->Sequence : 0;
		}
	}
	if (!pa) {
		x->resync = 1;
		snprintf(x->error, sizeof(x->error), "publish of seq %" PRIu64
			 ": %s (code %d)", seq,
			 pae && pae->ErrText ? pae->ErrText
					     : natsStatus_GetText(pae ? pae->Err
								       : NATS_ERR),
			 pae ? (int)pae->ErrCode : 0);
	}
	pthread_mutex_unlock(&x->mu);
	if (pa) {
		ST_ADD(x, acked, 1);
		if (pa->Duplicate)
			ST_ADD(x, duplicates, 1);
	} else {
		ST_ADD(x, errors, 1);
	}
	natsMsg_Destroy(m);
}

static void
on_disconnected(natsConnection *nc, void *arg)
{
	struct dp_export *x = arg;

	(void)nc;
	__atomic_store_n(&x->disconnected, 1, __ATOMIC_RELEASE);
}

static void
on_reconnected(natsConnection *nc, void *arg)
{
	struct dp_export *x = arg;

	(void)nc;
	pthread_mutex_lock(&x->mu);
	x->resync = 1; /* acks of the old connection are lost */
	pthread_mutex_unlock(&x->mu);
	__atomic_store_n(&x->disconnected, 0, __ATOMIC_RELEASE);
}

/* ---- connection and stream ----------------------------------------------- */

static void
nats_drop(struct dp_export *x)
{
	jsCtx_Destroy(x->js);
	x->js = NULL;
	if (x->nc) {
		natsConnection_Close(x->nc);
		natsConnection_Destroy(x->nc);
	}
	x->nc = NULL;
	x->synced = false;
}

static int
nats_connect(struct dp_export *x)
{
	jsOptions jo;
	natsStatus s;

	s = natsConnection_Connect(&x->nc, x->opts);
	if (s != NATS_OK) {
		oops(x, "connect %s: %s", x->url_shown, nats_why(s));
		x->nc = NULL;
		return -ECONNREFUSED;
	}
	jsOptions_Init(&jo);
	jo.Wait = EXPORT_API_WAIT_MS;
	jo.PublishAsync.MaxPending = EXPORT_INFLIGHT * 2; /* we bound it first */
	jo.PublishAsync.AckHandler = on_ack;
	jo.PublishAsync.AckHandlerClosure = x;
	s = natsConnection_JetStream(&x->js, x->nc, &jo);
	if (s != NATS_OK) {
		oops(x, "JetStream context: %s", nats_why(s));
		nats_drop(x);
		return -ENOMEM;
	}
	__atomic_store_n(&x->disconnected, 0, __ATOMIC_RELEASE);
	RTE_LOG(NOTICE, USER1, "export: connected to %s\n", x->url_shown);
	return 0;
}

/* The stream, created if absent (file storage, a dedupe window). */
static int
stream_ensure(struct dp_export *x, uint64_t *last_sseq)
{
	const char *subjects[1] = {x->filter};
	jsStreamInfo *si = NULL;
	jsStreamConfig sc;
	jsErrCode ec = 0;
	natsStatus s;
	bool ours = false;

	s = js_GetStreamInfo(&si, x->js, x->conf.stream, NULL, &ec);
	if (s == NATS_NOT_FOUND || ec == JSStreamNotFoundErr) {
		jsStreamConfig_Init(&sc);
		sc.Name = x->conf.stream;
		sc.Description = "authd journal records (docs/export.md)";
		sc.Subjects = subjects;
		sc.SubjectsLen = 1;
		sc.Storage = js_FileStorage;
		sc.Retention = js_LimitsPolicy;
		sc.Duplicates = (int64_t)DP_EXPORT_DEDUPE_S * 1000000000LL;
		s = js_AddStream(&si, x->js, &sc, NULL, &ec);
		if (s == NATS_OK)
			RTE_LOG(NOTICE, USER1, "export: created stream %s (%s, "
				"file storage, dedupe window %u s)\n",
				x->conf.stream, x->filter, DP_EXPORT_DEDUPE_S);
	}
	if (s != NATS_OK) {
		oops(x, "stream %s: %s (code %d)", x->conf.stream,
		     nats_why(s), (int)ec);
		return -EIO;
	}
	for (int i = 0; si->Config && i < si->Config->SubjectsLen; i++)
		ours |= !strcmp(si->Config->Subjects[i], x->filter);
	*last_sseq = si->State.LastSeq;
	jsStreamInfo_Destroy(si);
	if (!ours) {
		oops(x, "stream %s does not take subjects %s: another stream of "
		     "that name exists (use --export-stream)",
		     x->conf.stream, x->filter);
		return -EPROTO;
	}
	return 0;
}

/* The journal seq and journal id of stream message @p sseq. */
static int
stream_msg_seq(struct dp_export *x, uint64_t sseq, uint64_t *jseq)
{
	const char *id = NULL, *jid = NULL;
	natsMsg *m = NULL;
	jsErrCode ec = 0;
	natsStatus s;
	int rc = 0;

	s = js_GetMsg(&m, x->js, x->conf.stream, sseq, NULL, &ec);
	if (s != NATS_OK) {
		oops(x, "stream %s: get message %" PRIu64 ": %s (code %d)",
		     x->conf.stream, sseq, nats_why(s), (int)ec);
		return -EIO;
	}
	if (natsMsgHeader_Get(m, DP_EXPORT_HDR_MSG_ID, &id) != NATS_OK ||
	    natsMsgHeader_Get(m, DP_EXPORT_HDR_JOURNAL, &jid) != NATS_OK ||
	    !id || !jid || lim_parse_u64(id, UINT64_MAX, jseq) || !*jseq) {
		oops(x, "stream %s: message %" PRIu64 " is not an authd journal "
		     "record (no %s / %s header)", x->conf.stream, sseq,
		     DP_EXPORT_HDR_MSG_ID, DP_EXPORT_HDR_JOURNAL);
		rc = -EPROTO;
	} else if (strcmp(jid, x->jid_hex)) {
		oops(x, "stream %s holds journal %s, this engine writes journal "
		     "%s: give every journal its own stream (--export-stream)",
		     x->conf.stream, jid, x->jid_hex);
		rc = -EPROTO;
	}
	natsMsg_Destroy(m);
	return rc;
}

/* ---- position ------------------------------------------------------------ */

static void
pos_save(struct dp_export *x, bool force)
{
	struct dp_export_pos p = {.journal_id = dp_journal_tail_id(x->tail),
				  .acked_seq = x->acked,
				  .stream_seq = x->acked_sseq};
	uint64_t now = mono_ms();
	char err[PATH_MAX + 64];

	if (x->acked == x->saved || !dp_journal_tail_id(x->tail))
		return;
	if (!force && x->acked - x->saved < EXPORT_POS_EVERY &&
	    now - x->saved_ms < EXPORT_POS_MS)
		return;
	snprintf(p.stream, sizeof(p.stream), "%s", x->conf.stream);
	if (dp_export_pos_save(x->conf.journal_dir, &p, err, sizeof(err))) {
		oops(x, "%s", err);
	} else {
		x->saved = x->acked;
		ST_SET(x, saved_seq, x->saved);
	}
	x->saved_ms = now;
}

/* ---- resync: publish from the stream's end ------------------------------- */

/* The journal's first seq and its id (the oldest segment's header). */
static int
journal_first(struct dp_export *x, uint64_t *first, char *why, size_t n)
{
	/* any segment gives the id: the newest */
	int rc = dp_journal_tail_seek(x->tail, UINT64_MAX, why, n);

	if (rc)
		return rc;
	rc = dp_journal_first_seqs(x->conf.journal_dir, first, NULL, 0);
	if (rc) {
		snprintf(why, n, "journal: %s: %s", x->conf.journal_dir,
			 strerror(-rc));
		return rc;
	}
	snprintf(x->jid_hex, sizeof(x->jid_hex), "%016" PRIx64,
		 dp_journal_tail_id(x->tail));
	return 0;
}

static void
ring_reset(struct dp_export *x)
{
	pthread_mutex_lock(&x->mu);
	memset(x->ring, 0, sizeof(x->ring));
	x->resync = 0;
	pthread_mutex_unlock(&x->mu);
}

static int
resync_check(struct dp_export *x, uint64_t jseq, uint64_t first)
{
	if (jseq > durable(x)) {
		oops(x, "stream %s holds seq %" PRIu64 ", past this journal's "
		     "durable end %" PRIu64 ": the journal lost records or the "
		     "stream belongs to another journal", x->conf.stream,
		     jseq, durable(x));
		return -EPROTO;
	}
	if (jseq + 1 < first) {
		oops(x, "stream %s ends at seq %" PRIu64 " but the journal starts "
		     "at %" PRIu64 ": exporting would leave a gap",
		     x->conf.stream, jseq, first);
		return -EPROTO;
	}
	if (jseq < x->saved)
		RTE_LOG(WARNING, USER1, "export: stream %s ends at seq %" PRIu64
			" but seq %" PRIu64 " was acknowledged (export.pos): the "
			"stream lost messages (purged or recreated?); publishing "
			"the journal again from seq %" PRIu64 "\n",
			x->conf.stream, jseq, x->saved, jseq + 1);
	return 0;
}

/* Where the stream ends decides where publishing goes on. */
static int
resync(struct dp_export *x)
{
	uint64_t lsseq = 0, jseq = 0, first = 0;
	char why[PATH_MAX + 128];
	int rc;

	ST_ADD(x, resyncs, 1);
	x->synced = false;
	if ((rc = journal_first(x, &first, why, sizeof(why))) != 0) {
		oops(x, "%s", why);
		return rc;
	}
	if ((rc = stream_ensure(x, &lsseq)) != 0)
		return rc;
	if (lsseq && (rc = stream_msg_seq(x, lsseq, &jseq)) != 0)
		return rc;
	if (!lsseq)
		jseq = first - 1;
	if ((rc = resync_check(x, jseq, first)) != 0)
		return rc;
	if ((rc = dp_journal_tail_seek(x->tail, jseq + 1, why, sizeof(why))) != 0) {
		oops(x, "%s", why);
		return rc;
	}
	x->base_jseq = jseq;
	x->base_sseq = lsseq;
	x->next = jseq + 1;
	x->acked = jseq;
	x->acked_sseq = lsseq;
	ST_SET(x, acked_seq, jseq);
	ST_SET(x, stream_seq, lsseq);
	ring_reset(x);
	x->synced = true;
	RTE_LOG(NOTICE, USER1, "export: stream %s ends at seq %" PRIu64
		" (stream sequence %" PRIu64 "); export.pos says %" PRIu64
		"; publishing from seq %" PRIu64 "\n", x->conf.stream,
		jseq, lsseq, x->saved, jseq + 1);
	return 0;
}

/* ---- publishing ---------------------------------------------------------- */

static int
publish(struct dp_export *x, const struct lim_effect *r)
{
	struct slot *sl = &x->ring[r->seq & (EXPORT_INFLIGHT - 1)];
	natsMsg *m = NULL;
	jsPubOptions po;
	char id[24];
	natsStatus s;

	snprintf(id, sizeof(id), "%" PRIu64, r->seq);
	s = natsMsg_Create(&m, x->subjects[r->kind], NULL, (const char *)r,
			   (int)sizeof(*r));
	if (s == NATS_OK)
		s = natsMsgHeader_Set(m, DP_EXPORT_HDR_JOURNAL, x->jid_hex);
	if (s != NATS_OK) {
		natsMsg_Destroy(m);
		oops(x, "message of seq %" PRIu64 ": %s", r->seq, nats_why(s));
		return -ENOMEM;
	}
	jsPubOptions_Init(&po);
	po.MsgId = id;
	po.MaxWait = EXPORT_ACK_WAIT_MS;
	/* 0 means "no expectation": only the first message of an empty stream */
	po.ExpectLastSeq = x->base_sseq + (r->seq - 1 - x->base_jseq);
	pthread_mutex_lock(&x->mu);
	*sl = (struct slot){.seq = r->seq, .state = SLOT_SENT};
	pthread_mutex_unlock(&x->mu);
	s = js_PublishMsgAsync(x->js, &m, &po);
	natsMsg_Destroy(m); /* no-op when the client took it */
	if (s != NATS_OK) {
		pthread_mutex_lock(&x->mu);
		sl->state = SLOT_FREE;
		x->resync = 1;
		pthread_mutex_unlock(&x->mu);
		oops(x, "publish of seq %" PRIu64 ": %s", r->seq, nats_why(s));
		return -EIO;
	}
	ST_ADD(x, published, 1);
	return 0;
}

/* Move acked over the contiguous acked slots. */
static void
advance(struct dp_export *x)
{
	pthread_mutex_lock(&x->mu);
	while (x->acked + 1 < x->next) {
		struct slot *s = &x->ring[(x->acked + 1) & (EXPORT_INFLIGHT - 1)];

		if (s->seq != x->acked + 1 || s->state != SLOT_ACKED)
			break;
		x->acked_sseq = s->stream_seq;
		s->state = SLOT_FREE;
		x->acked++;
	}
	pthread_mutex_unlock(&x->mu);
	ST_SET(x, acked_seq, x->acked);
	ST_SET(x, stream_seq, x->acked_sseq);
}

/* Every message in flight acked or failed. */
static bool
settled(struct dp_export *x)
{
	bool done = true;

	pthread_mutex_lock(&x->mu);
	for (uint64_t s = x->acked + 1; s < x->next && done; s++)
		done = x->ring[s & (EXPORT_INFLIGHT - 1)].state != SLOT_SENT;
	pthread_mutex_unlock(&x->mu);
	return done;
}

/* Publish what is durable, bounded by the window. Returns how many. */
static unsigned
pump(struct dp_export *x, uint64_t upto)
{
	char why[PATH_MAX + 128];
	unsigned k = 0;

	while (x->next <= upto && x->next - x->acked <= EXPORT_INFLIGHT &&
	       k < EXPORT_INFLIGHT) {
		const struct lim_effect *r = NULL;
		int rc = dp_journal_tail_get(x->tail, upto, &r, why, sizeof(why));

		if (rc < 0) {
			/* settle what is in flight, then resync, not at once */
			oops(x, "%s", why);
			set_state(x, DP_EXPORT_ERROR);
			pthread_mutex_lock(&x->mu);
			x->resync = 1;
			pthread_mutex_unlock(&x->mu);
			x->retry_ms = mono_ms() + EXPORT_ERROR_RETRY_MS;
		}
		if (rc <= 0)
			break;
		if (publish(x, r))
			break;
		dp_journal_tail_advance(x->tail);
		x->next++;
		k++;
	}
	return k;
}

static bool
need_resync(struct dp_export *x)
{
	int r;

	pthread_mutex_lock(&x->mu);
	r = x->resync;
	pthread_mutex_unlock(&x->mu);
	return r != 0;
}

/* Messages in flight when the client cannot settle them: take them back. */
static void
drop_pending(struct dp_export *x)
{
	natsMsgList l;

	if (x->js && js_PublishAsyncGetPendingList(&l, x->js) == NATS_OK)
		natsMsgList_Destroy(&l);
}

/* ---- the thread ---------------------------------------------------------- */

static void
nap(long ns)
{
	struct timespec ts = {0, ns};

	nanosleep(&ts, NULL);
}

static void
backoff(struct dp_export *x, uint64_t now)
{
	x->backoff_ms = x->backoff_ms ? x->backoff_ms * 2 : EXPORT_BACKOFF_MIN_MS;
	if (x->backoff_ms > EXPORT_BACKOFF_MAX_MS)
		x->backoff_ms = EXPORT_BACKOFF_MAX_MS;
	x->retry_ms = now + x->backoff_ms;
}

/* Not connected or not in sync: connect, wait, settle, resync. */
static void
recover_step(struct dp_export *x, uint64_t now)
{
	int rc;

	if (now < x->retry_ms)
		return;
	if (!x->nc) {
		set_state(x, DP_EXPORT_CONNECTING);
		if (nats_connect(x)) {
			backoff(x, now);
			return;
		}
	}
	switch (natsConnection_Status(x->nc)) {
	case NATS_CONN_STATUS_CONNECTED:
		break;
	case NATS_CONN_STATUS_CLOSED: /* the client gave up: a new one */
		oops(x, "connection to %s closed", x->url_shown);
		nats_drop(x);
		backoff(x, now);
		return;
	default:
		set_state(x, DP_EXPORT_RECONNECTING);
		x->retry_ms = now + 50;
		return;
	}
	rc = resync(x);
	if (rc == 0) {
		x->backoff_ms = 0;
		set_state(x, DP_EXPORT_CONNECTED);
		return;
	}
	if (rc == -EPROTO || rc == -EBADMSG) {
		set_state(x, DP_EXPORT_ERROR);
		x->retry_ms = now + EXPORT_ERROR_RETRY_MS;
		return;
	}
	backoff(x, now);
}

/*
 * In sync: publish, advance. A failure or a reconnection ends the sync once
 * what is in flight has settled (bounded: every publish has an ack timeout).
 */
static bool
run_step(struct dp_export *x, uint64_t now, uint64_t *settle_since)
{
	bool moved = false;
	uint64_t before = x->acked;

	if (__atomic_load_n(&x->disconnected, __ATOMIC_ACQUIRE))
		set_state(x, DP_EXPORT_RECONNECTING);
	advance(x);
	moved = x->acked != before;
	if (need_resync(x) || ST_GET(x, state) != DP_EXPORT_CONNECTED) {
		if (!*settle_since)
			*settle_since = now;
		if (settled(x) || now - *settle_since > EXPORT_SETTLE_MS) {
			drop_pending(x);
			advance(x);
			x->synced = false;
			*settle_since = 0;
		}
		return moved;
	}
	*settle_since = 0;
	moved |= pump(x, durable(x)) != 0;
	return moved;
}

static void
stats_refresh(struct dp_export *x)
{
	uint64_t d = durable(x);

	ST_SET(x, durable_seq, d);
	ST_SET(x, lag, d > x->acked ? d - x->acked : 0);
}

/* At stop: what is durable now, published and acked, bounded in time. */
static void
final_flush(struct dp_export *x)
{
	uint64_t end = mono_ms() + EXPORT_STOP_MS, upto = durable(x);

	while (x->synced && x->acked < upto && mono_ms() < end &&
	       !need_resync(x)) {
		pump(x, upto);
		advance(x);
		nap(EXPORT_IDLE_NS);
	}
	if (x->acked < upto)
		RTE_LOG(NOTICE, USER1, "export: stopping with seq %" PRIu64 "..%"
			PRIu64 " not acknowledged; they are published at the "
			"next start\n", x->acked + 1, upto);
}

static void *
export_main(void *arg)
{
	struct dp_export *x = arg;
	uint64_t settle_since = 0;
	sigset_t ss;

	/* A write to a closed socket must not kill authd; the client's
	 * threads inherit this mask. */
	sigemptyset(&ss);
	sigaddset(&ss, SIGPIPE);
	pthread_sigmask(SIG_BLOCK, &ss, NULL);
	prctl(PR_SET_TIMERSLACK, 100000UL, 0, 0, 0);
	while (!stopping(x)) {
		uint64_t now = mono_ms();
		bool moved = false;

		if (!x->synced)
			recover_step(x, now);
		else
			moved = run_step(x, now, &settle_since);
		pos_save(x, false);
		stats_refresh(x);
		if (!moved)
			nap(EXPORT_IDLE_NS);
	}
	final_flush(x);
	pos_save(x, true);
	stats_refresh(x);
	drop_pending(x);
	nats_drop(x);
	set_state(x, DP_EXPORT_STOPPED);
	return NULL;
}

/* The URL as shown in logs and stats: no user:password@. */
static void
url_shown(char *out, size_t n, const char *url)
{
	const char *at = strchr(url, '@'), *sch = strstr(url, "://");

	if (at && sch && sch < at)
		snprintf(out, n, "%.*s://***@%s", (int)(sch - url), url, at + 1);
	else
		snprintf(out, n, "%s", url);
}

static int
opts_init(struct dp_export *x)
{
	natsOptions *o = NULL;
	natsStatus s = natsOptions_Create(&o);

	if (s == NATS_OK)
		s = natsOptions_SetURL(o, x->conf.url);
	if (s == NATS_OK)
		s = natsOptions_SetName(o, "authd-export");
	if (s == NATS_OK)
		s = natsOptions_SetTimeout(o, EXPORT_CONNECT_MS);
	if (s == NATS_OK)
		s = natsOptions_SetMaxReconnect(o, -1);
	if (s == NATS_OK)
		s = natsOptions_SetReconnectWait(o, EXPORT_RECONNECT_MS);
	if (s == NATS_OK)
		s = natsOptions_SetDisconnectedCB(o, on_disconnected, x);
	if (s == NATS_OK)
		s = natsOptions_SetReconnectedCB(o, on_reconnected, x);
	if (s != NATS_OK) {
		RTE_LOG(ERR, USER1, "export: --export %s: %s\n", x->url_shown,
			nats_why(s));
		natsOptions_Destroy(o);
		return s == NATS_NO_MEMORY ? -ENOMEM : -EINVAL;
	}
	x->opts = o;
	return 0;
}

static void
export_free(struct dp_export *x)
{
	if (!x)
		return;
	natsOptions_Destroy(x->opts);
	dp_journal_tail_close(x->tail);
	pthread_mutex_destroy(&x->mu);
	free(x);
}

/* export.pos of an earlier run: the lag is known before NATS answers. */
static void
pos_start(struct dp_export *x)
{
	struct dp_export_pos p;
	char err[PATH_MAX + 64];
	int rc = dp_export_pos_load(x->conf.journal_dir, &p, err, sizeof(err));

	if (rc == -ENOENT)
		return;
	if (rc) {
		RTE_LOG(WARNING, USER1, "export: %s: ignored (the stream says "
			"where to resume)\n", err);
		return;
	}
	x->saved = x->acked = p.acked_seq;
	x->acked_sseq = p.stream_seq;
	ST_SET(x, saved_seq, p.acked_seq);
	ST_SET(x, acked_seq, p.acked_seq);
	RTE_LOG(NOTICE, USER1, "export: export.pos: seq %" PRIu64 " acknowledged "
		"by stream %s (sequence %" PRIu64 ") before this start\n",
		p.acked_seq, p.stream, p.stream_seq);
}

int
dp_export_start(const struct dp_export_conf *c, struct dp_export **out)
{
	struct dp_export *x;

	*out = NULL;
	if (!c->url || !c->url[0])
		return 0;
	x = calloc(1, sizeof(*x));
	if (!x)
		return -ENOMEM;
	x->conf = *c;
	pthread_mutex_init(&x->mu, NULL);
	x->tail = dp_journal_tail_open(c->journal_dir);
	if (!x->tail) {
		export_free(x);
		return -ENOMEM;
	}
	url_shown(x->url_shown, sizeof(x->url_shown), c->url);
	snprintf(x->filter, sizeof(x->filter), "%s.>", c->subject);
	for (unsigned k = 1; k < LIM_EFF_KINDS; k++)
		if (dp_export_subject(x->subjects[k], sizeof(x->subjects[k]),
				      c->subject, k)) {
			export_free(x);
			return -EINVAL;
		}
	if (opts_init(x)) {
		export_free(x);
		return -EINVAL;
	}
	pos_start(x);
	ST_SET(x, state, DP_EXPORT_CONNECTING);
	if (rte_ctrl_thread_create(&x->tid, "authd-export", NULL, export_main,
				   x) != 0) {
		export_free(x);
		return -EAGAIN;
	}
	*out = x;
	RTE_LOG(NOTICE, USER1, "export: journal records to %s, stream %s, "
		"subjects %s\n", x->url_shown, c->stream, x->filter);
	return 0;
}

void
dp_export_stop(struct dp_export *x)
{
	if (!x)
		return;
	__atomic_store_n(&x->stop, 1, __ATOMIC_RELEASE);
	pthread_join(x->tid, NULL);
	RTE_LOG(NOTICE, USER1, "export: published %" PRIu64 ", acked %" PRIu64
		" (%" PRIu64 " duplicates), errors %" PRIu64 ", resyncs %" PRIu64
		"; the stream holds up to seq %" PRIu64 "\n", ST_GET(x, published),
		ST_GET(x, acked), ST_GET(x, duplicates), ST_GET(x, errors),
		ST_GET(x, resyncs), x->acked);
	export_free(x);
	/* The client's threads are gone once this returns: no callback after. */
	nats_CloseAndWait(2000);
}

void
dp_export_stats_get(const struct dp_export *x, struct dp_export_stats *st)
{
	struct dp_export *w = (struct dp_export *)(uintptr_t)x;

	memset(st, 0, sizeof(*st));
	if (!x) {
		st->state = DP_EXPORT_OFF;
		return;
	}
	st->state = ST_GET(x, state);
	st->published = ST_GET(x, published);
	st->acked = ST_GET(x, acked);
	st->duplicates = ST_GET(x, duplicates);
	st->errors = ST_GET(x, errors);
	st->resyncs = ST_GET(x, resyncs);
	st->acked_seq = ST_GET(x, acked_seq);
	st->durable_seq = ST_GET(x, durable_seq);
	st->lag = ST_GET(x, lag);
	st->saved_seq = ST_GET(x, saved_seq);
	st->stream_seq = ST_GET(x, stream_seq);
	pthread_mutex_lock(&w->mu);
	memcpy(st->last_error, x->error, sizeof(st->last_error));
	pthread_mutex_unlock(&w->mu);
}

#else /* !AUTHD_HAVE_NATS */

struct dp_export {
	int unused;
};

int
dp_export_start(const struct dp_export_conf *c, struct dp_export **out)
{
	*out = NULL;
	if (!c->url || !c->url[0])
		return 0;
	RTE_LOG(ERR, USER1, "export: --export needs NATS, and this authd was "
		"built without libnats (install libnats-dev: scripts/deps.sh, "
		"then rebuild)\n");
	return -ENOTSUP;
}

void
dp_export_stop(struct dp_export *x)
{
	(void)x;
}

void
dp_export_stats_get(const struct dp_export *x, struct dp_export_stats *st)
{
	(void)x;
	memset(st, 0, sizeof(*st));
	st->state = DP_EXPORT_OFF;
}

#endif /* AUTHD_HAVE_NATS */

json_t *
dp_export_json(const struct dp_export *x)
{
	struct dp_export_stats st;
	const struct dp_export_conf *c = NULL;

	dp_export_stats_get(x, &st);
	if (!x)
		return json_pack("{s:s}", "state", dp_export_state_name(st.state));
#ifdef AUTHD_HAVE_NATS
	c = &x->conf;
#endif
	return json_pack(
		"{s:s,s:s,s:s,s:s,s:I,s:I,s:I,s:I,s:I,s:I,s:I,s:I,s:I,s:I,s:s}",
		"state", dp_export_state_name(st.state), "url",
#ifdef AUTHD_HAVE_NATS
		x->url_shown,
#else
		"",
#endif
		"stream", c ? c->stream : "", "subject",
		c ? c->subject : "", "published", (json_int_t)st.published,
		"acked", (json_int_t)st.acked, "duplicates",
		(json_int_t)st.duplicates, "errors", (json_int_t)st.errors,
		"resyncs", (json_int_t)st.resyncs, "acked_seq",
		(json_int_t)st.acked_seq, "durable_seq", (json_int_t)st.durable_seq,
		"lag", (json_int_t)st.lag, "saved_seq", (json_int_t)st.saved_seq,
		"stream_seq", (json_int_t)st.stream_seq, "last_error",
		st.last_error);
}
