/*
 * authconsume.c - the downstream consumer of authd's export
 * (docs/export.md): reads the journal records authd published to a NATS
 * JetStream stream with a durable pull consumer, applies them in seq order
 * onto the snapshot authd started from (lim_redo, as recovery and
 * `authjournal summary` do), and writes the rebuilt users' balances.
 *
 * Order: the stream holds each seq once and in order (export.c), but the
 * consumer trusts nothing: a record is verified (payload length, its
 * Nats-Msg-Id against its seq, its checksum under the journal id of the
 * Authd-Journal header, one journal only), a seq already applied is
 * skipped (a duplicate: counted), and a seq past the next one is a gap:
 * refused, nothing is written.
 *
 * The durable consumer is this tool's cursor: each run deletes it and
 * creates it again at the stream message holding the first seq the
 * snapshot needs (found from the stream's last message, checked on the
 * first message read), and acknowledges (ack all) each batch it applied.
 *
 * One thread (the NATS client has its own); a QSBR reader online while it
 * applies, quiescent between batches.
 */
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <nats/nats.h>
#include <urcu-qsbr.h>

#include "export.h"
#include "journal.h"

#define EXIT_BAD 1       /* gap, bad record, redo refused, --check differs */
#define EXIT_USAGE 2     /* usage, I/O, NATS */
#define EXIT_TIMEOUT 3   /* --until not reached in time */

#define CONSUME_BATCH 256
#define CONSUME_FETCH_MS 500
#define CONSUME_DURABLE_DEFAULT "authconsume"

static void
usage(FILE *f)
{
	fprintf(f,
"NAME\n"
"    authconsume - rebuild the users' balances from authd's NATS export\n"
"\n"
"SYNOPSIS\n"
"    authconsume --nats URL --stream NAME [--snapshot FILE]\n"
"                [--users-csv OUT] [--balances-csv OUT] [--out FILE]\n"
"                [--check FILE] [--until SEQ] [--timeout S]\n"
"                [--durable NAME] [--users-max N]\n"
"\n"
"DESCRIPTION\n"
"    authd --export publishes every durable journal record to a JetStream\n"
"    stream, once and in seq order (docs/export.md). authconsume reads that\n"
"    stream with a durable pull consumer and applies the records, in seq\n"
"    order, onto the snapshot authd started from, the way authd's recovery\n"
"    redoes its journal: the result is the engine's state as of the last\n"
"    record applied.\n"
"\n"
"    Every record is verified: 128 bytes, Nats-Msg-Id equal to its seq, its\n"
"    checksum under the journal id of its Authd-Journal header, the same\n"
"    journal throughout. A seq already applied (or held by the snapshot) is\n"
"    skipped and counted as a duplicate; a seq past the next one expected is\n"
"    a gap: authconsume stops with exit status 1 and writes nothing.\n"
"\n"
"OPTIONS\n"
"    --nats URL          the NATS server (nats://host:4222)\n"
"    --stream NAME       the stream (authd --export-stream)\n"
"    --snapshot FILE     the starting state: the snapshot authd was started\n"
"                        from, or one saved later (authctl snapshot save), or\n"
"                        an earlier --out; records from its seq_start + 1 on\n"
"                        are applied. Without it: an empty database, from\n"
"                        seq 1\n"
"    --users-csv OUT     the users as authdb export --users-csv writes them:\n"
"                        user_id,limit_fen,outstanding_fen,holds_fen\n"
"    --balances-csv OUT  every balance: user_id,limit_fen,outstanding_fen,\n"
"                        holds_fen,cash_fen,inst_fen,month_spend_fen\n"
"    --out FILE          the rebuilt state as a snapshot (authd --snapshot,\n"
"                        authdb, authconsume --snapshot for the next run)\n"
"    --check FILE        compare every user's balances and settings with\n"
"                        snapshot FILE (e.g. authctl snapshot save at the\n"
"                        same seq); exit 1 and list the differences if any\n"
"    --until SEQ         stop once seq SEQ is applied (default: the seq of\n"
"                        the stream's last message when authconsume starts)\n"
"    --timeout S         give up when no new record came for S seconds\n"
"                        before --until was reached (default 10)\n"
"    --durable NAME      the durable consumer's name (default authconsume);\n"
"                        it is repositioned at each run\n"
"    --users-max N       table size without --snapshot (default 1048576)\n"
"    -h, --help          this text\n"
"\n"
"    At least one of --users-csv, --balances-csv, --out, --check is needed.\n"
"    OUT files are written to OUT.tmp and renamed.\n"
"\n"
"EXIT STATUS\n"
"    0 rebuilt (and, with --check, equal); 1 a gap, a record that does not\n"
"    verify, a record the state refuses, or --check found differences;\n"
"    2 usage, I/O or NATS error; 3 --until not reached within --timeout.\n"
"\n"
"EXAMPLES\n"
"    authconsume --nats nats://127.0.0.1:4222 --stream AUTHD_JOURNAL \\\n"
"        --snapshot base.snap --users-csv rebuilt.csv\n"
"    authconsume --nats nats://10.0.0.5:4222 --stream AUTHD_H1 \\\n"
"        --snapshot state.snap --out state.snap --until 1200000\n");
}

struct opts {
	const char *url, *stream, *snapshot, *durable;
	const char *users_csv, *balances_csv, *out, *check;
	uint64_t until;            /* 0: the stream's last at start */
	uint64_t users_max;
	unsigned timeout_s;
};

struct run {
	const struct opts *o;
	struct lim_db *db;
	struct lim_snapshot_meta meta;
	bool have_meta;
	struct lim_redo *r;
	natsConnection *nc;
	jsCtx *js;
	natsSubscription *sub;
	char filter[DP_EXPORT_SUBJECT_MAX + 4];
	uint64_t journal_id;       /* from the first record's header */
	uint64_t until;
	uint64_t applied, duplicates;
	uint64_t first_applied, last_applied;
	char why[1024];
};

static uint64_t
mono_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

static int
parse_u64(const char *opt, const char *v, uint64_t *out)
{
	if (lim_parse_u64(v, UINT64_MAX, out)) {
		fprintf(stderr, "authconsume: --%s %s: expected a number\n", opt, v);
		return -EINVAL;
	}
	return 0;
}

static int
parse_args(int argc, char **argv, struct opts *o)
{
	static const struct option lo[] = {
		{"nats", required_argument, NULL, 'n'},
		{"stream", required_argument, NULL, 's'},
		{"snapshot", required_argument, NULL, 'S'},
		{"users-csv", required_argument, NULL, 'u'},
		{"balances-csv", required_argument, NULL, 'b'},
		{"out", required_argument, NULL, 'o'},
		{"check", required_argument, NULL, 'c'},
		{"until", required_argument, NULL, 'U'},
		{"timeout", required_argument, NULL, 't'},
		{"durable", required_argument, NULL, 'd'},
		{"users-max", required_argument, NULL, 'm'},
		{"help", no_argument, NULL, 'h'},
		{NULL, 0, NULL, 0},
	};
	uint64_t v;
	int ch;

	memset(o, 0, sizeof(*o));
	o->durable = CONSUME_DURABLE_DEFAULT;
	o->timeout_s = 10;
	o->users_max = 1u << 20;
	while ((ch = getopt_long(argc, argv, "h", lo, NULL)) != -1) {
		switch (ch) {
		case 'n': o->url = optarg; break;
		case 's': o->stream = optarg; break;
		case 'S': o->snapshot = optarg; break;
		case 'u': o->users_csv = optarg; break;
		case 'b': o->balances_csv = optarg; break;
		case 'o': o->out = optarg; break;
		case 'c': o->check = optarg; break;
		case 'd': o->durable = optarg; break;
		case 'U':
			if (parse_u64("until", optarg, &o->until))
				return -EINVAL;
			break;
		case 't':
			if (parse_u64("timeout", optarg, &v) || v > 86400)
				return -EINVAL;
			o->timeout_s = (unsigned)v;
			break;
		case 'm':
			if (parse_u64("users-max", optarg, &o->users_max) ||
			    !o->users_max)
				return -EINVAL;
			break;
		case 'h': usage(stdout); exit(0);
		default:
			fprintf(stderr, "authconsume: bad option (see --help)\n");
			return -EINVAL;
		}
	}
	if (optind < argc) {
		fprintf(stderr, "authconsume: unexpected '%s' (see --help)\n",
			argv[optind]);
		return -EINVAL;
	}
	if (!o->url || !o->stream) {
		fprintf(stderr, "authconsume: --nats URL and --stream NAME are "
			"required (see --help)\n");
		return -EINVAL;
	}
	if (!o->users_csv && !o->balances_csv && !o->out && !o->check) {
		fprintf(stderr, "authconsume: nothing to write: give --users-csv, "
			"--balances-csv, --out or --check (see --help)\n");
		return -EINVAL;
	}
	return 0;
}

/* ------------------------------------------------------------------------ */
/* The starting state                                                         */

static int
load_start(struct run *x)
{
	struct lim_db_config c = {.users_max = x->o->users_max,
				  .ops_max = 1u << 20, .merchants_max = 1024,
				  .groups_max = 1024, .shards = 4};
	char err[1024];

	if (x->o->snapshot) {
		struct lim_db_config extra = {.shards = 4};

		x->db = lim_snapshot_load(x->o->snapshot, &extra, NULL, &x->meta,
					  err, sizeof(err));
		if (!x->db) {
			fprintf(stderr, "authconsume: --snapshot %s\n", err);
			return -EINVAL;
		}
		x->have_meta = true;
	} else {
		x->db = lim_db_create(&c);
		if (!x->db) {
			fprintf(stderr, "authconsume: cannot create a database\n");
			return -ENOMEM;
		}
	}
	x->r = lim_redo_create(x->db, x->have_meta ? &x->meta : NULL,
			       x->db->shards - 1);
	if (!x->r) {
		fprintf(stderr, "authconsume: out of memory\n");
		return -ENOMEM;
	}
	return 0;
}

/* ------------------------------------------------------------------------ */
/* NATS                                                                       */

static const char *
nats_why(natsStatus s)
{
	const char *t = nats_GetLastError(NULL);

	return t && *t ? t : natsStatus_GetText(s);
}

/* Header @p key as a whole number (@p hex: as hex digits, a journal id). */
static int
header_u64(natsMsg *m, const char *key, bool hex, uint64_t *v)
{
	const char *t = NULL;

	if (natsMsgHeader_Get(m, key, &t) != NATS_OK || !t || !*t)
		return -ENOENT;
	return hex ? lim_parse_x64(t, v) : lim_parse_u64(t, UINT64_MAX, v);
}

/* The stream's subjects, and its last message: stream and journal seq. */
static int
stream_end(struct run *x, uint64_t *first_sseq, uint64_t *last_sseq,
	   uint64_t *last_jseq)
{
	jsStreamInfo *si = NULL;
	natsMsg *m = NULL;
	jsErrCode ec = 0;
	natsStatus s;

	s = js_GetStreamInfo(&si, x->js, x->o->stream, NULL, &ec);
	if (s != NATS_OK) {
		fprintf(stderr, "authconsume: stream %s: %s (code %d)\n",
			x->o->stream, nats_why(s), (int)ec);
		return -EIO;
	}
	if (!si->Config || si->Config->SubjectsLen < 1) {
		jsStreamInfo_Destroy(si);
		fprintf(stderr, "authconsume: stream %s has no subjects\n",
			x->o->stream);
		return -EINVAL;
	}
	snprintf(x->filter, sizeof(x->filter), "%s", si->Config->Subjects[0]);
	*first_sseq = si->State.FirstSeq;
	*last_sseq = si->State.LastSeq;
	jsStreamInfo_Destroy(si);
	*last_jseq = 0;
	if (!*last_sseq)
		return 0;
	s = js_GetMsg(&m, x->js, x->o->stream, *last_sseq, NULL, &ec);
	if (s != NATS_OK) {
		fprintf(stderr, "authconsume: stream %s: message %" PRIu64 ": %s\n",
			x->o->stream, *last_sseq, nats_why(s));
		return -EIO;
	}
	if (header_u64(m, DP_EXPORT_HDR_MSG_ID, false, last_jseq)) {
		natsMsg_Destroy(m);
		fprintf(stderr, "authconsume: stream %s: message %" PRIu64 " has no "
			"journal seq (%s): not an authd export\n", x->o->stream,
			*last_sseq, DP_EXPORT_HDR_MSG_ID);
		return -EINVAL;
	}
	natsMsg_Destroy(m);
	return 0;
}

/*
 * The durable consumer, created again at the stream message that should
 * hold seq @p from: the stream holds one message per seq, in order, so
 * that is last_sseq - (last_jseq - from) unless messages were removed
 * (then the first message read says so: a gap).
 */
static int
subscribe(struct run *x, uint64_t from, uint64_t first_sseq, uint64_t last_sseq,
	  uint64_t last_jseq)
{
	uint64_t start = first_sseq ? first_sseq : 1;
	jsSubOptions so;
	jsErrCode ec = 0;
	natsStatus s;

	if (last_sseq && last_jseq >= from && last_jseq - from < last_sseq &&
	    last_sseq - (last_jseq - from) > start)
		start = last_sseq - (last_jseq - from);
	s = js_DeleteConsumer(x->js, x->o->stream, x->o->durable, NULL, &ec);
	if (s != NATS_OK && s != NATS_NOT_FOUND && ec != JSConsumerNotFoundErr) {
		fprintf(stderr, "authconsume: consumer %s: %s (code %d)\n",
			x->o->durable, nats_why(s), (int)ec);
		return -EIO;
	}
	jsSubOptions_Init(&so);
	so.Stream = x->o->stream;
	so.Config.Durable = x->o->durable;
	so.Config.DeliverPolicy = js_DeliverByStartSequence;
	so.Config.OptStartSeq = start;
	so.Config.AckPolicy = js_AckAll;
	so.Config.AckWait = 60LL * 1000000000LL;
	so.Config.Description = "authconsume: balances rebuilt from authd's journal";
	s = js_PullSubscribe(&x->sub, x->js, x->filter, x->o->durable, NULL, &so,
			     &ec);
	if (s != NATS_OK) {
		fprintf(stderr, "authconsume: pull consumer %s on %s: %s (code %d)\n",
			x->o->durable, x->filter, nats_why(s), (int)ec);
		return -EIO;
	}
	return 0;
}

static int
connect_nats(struct run *x)
{
	jsOptions jo;
	natsStatus s = natsConnection_ConnectTo(&x->nc, x->o->url);

	if (s != NATS_OK) {
		fprintf(stderr, "authconsume: connect %s: %s\n", x->o->url,
			nats_why(s));
		return -ECONNREFUSED;
	}
	jsOptions_Init(&jo);
	jo.Wait = 5000;
	s = natsConnection_JetStream(&x->js, x->nc, &jo);
	if (s != NATS_OK) {
		fprintf(stderr, "authconsume: JetStream: %s\n", nats_why(s));
		return -EIO;
	}
	return 0;
}

/* ------------------------------------------------------------------------ */
/* Applying                                                                   */

static uint64_t
stream_seq_of(natsMsg *m)
{
	jsMsgMetaData *md = NULL;
	uint64_t v = 0;

	if (natsMsg_GetMetaData(&md, m) == NATS_OK && md) {
		v = md->Sequence.Stream;
		jsMsgMetaData_Destroy(md);
	}
	return v;
}

/* Verify a message: its record, returned in @p rec. */
static int
verify(struct run *x, natsMsg *m, struct lim_effect *rec)
{
	uint64_t id, jid;

	if (natsMsg_GetDataLength(m) != (int)sizeof(*rec)) {
		snprintf(x->why, sizeof(x->why), "%d bytes, a record has %zu",
			 natsMsg_GetDataLength(m), sizeof(*rec));
		return -EBADMSG;
	}
	memcpy(rec, natsMsg_GetData(m), sizeof(*rec));
	if (header_u64(m, DP_EXPORT_HDR_MSG_ID, false, &id) || id != rec->seq) {
		snprintf(x->why, sizeof(x->why), "record seq %" PRIu64 " but "
			 "header %s does not say so", rec->seq,
			 DP_EXPORT_HDR_MSG_ID);
		return -EBADMSG;
	}
	if (header_u64(m, DP_EXPORT_HDR_JOURNAL, true, &jid) || !jid) {
		snprintf(x->why, sizeof(x->why), "seq %" PRIu64 ": no %s header",
			 rec->seq, DP_EXPORT_HDR_JOURNAL);
		return -EBADMSG;
	}
	if (x->journal_id && jid != x->journal_id) {
		snprintf(x->why, sizeof(x->why), "seq %" PRIu64 " is of journal "
			 "%016" PRIx64 ", the records before of journal %016"
			 PRIx64, rec->seq, jid, x->journal_id);
		return -EBADMSG;
	}
	x->journal_id = jid;
	if (dp_journal_check(rec, jid) != rec->check || rec->kind == 0 ||
	    rec->kind >= LIM_EFF_KINDS) {
		snprintf(x->why, sizeof(x->why), "seq %" PRIu64 ": checksum or "
			 "kind does not verify", rec->seq);
		return -EBADMSG;
	}
	return 0;
}

/* One message: skip a duplicate, refuse a gap, apply the next seq. */
static int
apply_one(struct run *x, natsMsg *m)
{
	uint64_t next = lim_redo_next_seq(x->r);
	struct lim_effect rec;
	char why[512];
	int rc = verify(x, m, &rec);

	if (rc) {
		snprintf(why, sizeof(why), "%.400s", x->why);
		snprintf(x->why, sizeof(x->why), "stream message %" PRIu64 ": %s",
			 stream_seq_of(m), why);
		return rc;
	}
	if (rec.seq < next) {
		x->duplicates++;
		return 0;
	}
	if (rec.seq > next) {
		snprintf(x->why, sizeof(x->why), "gap: seq %" PRIu64 " expected, "
			 "stream message %" PRIu64 " holds seq %" PRIu64
			 ": records are missing from the stream", next,
			 stream_seq_of(m), rec.seq);
		return -ERANGE;
	}
	rc = lim_redo(x->r, &rec, why, sizeof(why));
	if (rc) {
		snprintf(x->why, sizeof(x->why), "seq %" PRIu64 " (%s): %s",
			 rec.seq, dp_journal_kind_name(rec.kind), why);
		return rc;
	}
	if (!x->applied++)
		x->first_applied = rec.seq;
	x->last_applied = rec.seq;
	return 0;
}

/* Fetch and apply until seq x->until; 0, or EXIT_* with a message. */
static int
consume(struct run *x)
{
	uint64_t idle_since = mono_ms();

	while (lim_redo_next_seq(x->r) <= x->until) {
		natsMsgList l = {0};
		jsErrCode ec = 0;
		natsStatus s;
		int rc = 0, i;

		rcu_thread_offline();
		s = natsSubscription_Fetch(&l, x->sub, CONSUME_BATCH,
					   CONSUME_FETCH_MS, &ec);
		rcu_thread_online();
		if (s == NATS_TIMEOUT || (s == NATS_OK && l.Count == 0)) {
			natsMsgList_Destroy(&l);
			if (mono_ms() - idle_since > x->o->timeout_s * 1000ull) {
				fprintf(stderr, "authconsume: no record came for %u s: "
					"seq %" PRIu64 " applied, --until %" PRIu64
					" not reached\n", x->o->timeout_s,
					lim_redo_next_seq(x->r) - 1, x->until);
				return EXIT_TIMEOUT;
			}
			continue;
		}
		if (s != NATS_OK) {
			fprintf(stderr, "authconsume: fetch: %s (code %d)\n",
				nats_why(s), (int)ec);
			return EXIT_USAGE;
		}
		idle_since = mono_ms();
		for (i = 0; i < l.Count && !rc &&
			    lim_redo_next_seq(x->r) <= x->until; i++)
			rc = apply_one(x, l.Msgs[i]);
		if (!rc && i > 0)
			natsMsg_Ack(l.Msgs[i - 1], NULL); /* ack all up to it */
		natsMsgList_Destroy(&l);
		lim_quiescent_state();
		if (rc) {
			fprintf(stderr, "authconsume: %s\n", x->why);
			return EXIT_BAD;
		}
	}
	return 0;
}

/* ------------------------------------------------------------------------ */
/* Output                                                                     */

static int
write_csv(struct lim_db *db, const char *path, bool full)
{
	uint64_t n = lim_users_count(db->users);
	char tmp[4096];
	FILE *f;
	int rc = 0;

	if (snprintf(tmp, sizeof(tmp), "%s.tmp", path) >= (int)sizeof(tmp))
		return -ENAMETOOLONG;
	f = fopen(tmp, "w");
	if (!f) {
		fprintf(stderr, "authconsume: %s: %s\n", tmp, strerror(errno));
		return -errno;
	}
	fputs(full ? "user_id,limit_fen,outstanding_fen,holds_fen,cash_fen,"
		     "inst_fen,month_spend_fen\n"
		   : "user_id,limit_fen,outstanding_fen,holds_fen\n", f);
	for (uint64_t i = 0; i < n; i++) {
		const struct lim_user *u = lim_users_at(db->users, i);

		fprintf(f, "%" PRIu64 ",%" PRId64 ",%" PRId64 ",%" PRId64,
			u->user_id, u->limit_fen, u->outstanding_fen, u->holds_fen);
		if (full)
			fprintf(f, ",%" PRId64 ",%" PRId64 ",%" PRId64, u->cash_fen,
				u->inst_fen, u->month_spend_fen);
		fputc('\n', f);
	}
	if (fclose(f) || rename(tmp, path)) {
		rc = -errno;
		fprintf(stderr, "authconsume: %s: %s\n", path, strerror(errno));
		unlink(tmp);
	}
	return rc;
}

/* Users of @p a against @p b: every balance and setting of the slot. */
static uint64_t
compare_users(struct lim_db *a, struct lim_db *b, const char *bname)
{
	uint64_t n = lim_users_count(a->users), diff = 0;

	for (uint64_t i = 0; i < n; i++) {
		const struct lim_user *u = lim_users_at(a->users, i);
		const struct lim_user *v = lim_users_find(b->users, u->user_id);

		if (v && u->limit_fen == v->limit_fen &&
		    u->outstanding_fen == v->outstanding_fen &&
		    u->holds_fen == v->holds_fen && u->cash_fen == v->cash_fen &&
		    u->inst_fen == v->inst_fen &&
		    u->month_spend_fen == v->month_spend_fen &&
		    u->self_cap_fen == v->self_cap_fen &&
		    u->cool_until_s == v->cool_until_s && u->flags == v->flags &&
		    u->tier == v->tier)
			continue;
		if (diff++ < 20 && !v)
			printf("  user %" PRIu64 ": not in %s\n", u->user_id, bname);
		else if (diff <= 20)
			printf("  user %" PRIu64 ": rebuilt debt %" PRId64 " holds %"
			       PRId64 " cash %" PRId64 " inst %" PRId64 " month %"
			       PRId64 " limit %" PRId64 "; %s: %" PRId64 " %" PRId64
			       " %" PRId64 " %" PRId64 " %" PRId64 " %" PRId64 "\n",
			       u->user_id, u->outstanding_fen, u->holds_fen,
			       u->cash_fen, u->inst_fen, u->month_spend_fen,
			       u->limit_fen, bname, v->outstanding_fen, v->holds_fen,
			       v->cash_fen, v->inst_fen, v->month_spend_fen,
			       v->limit_fen);
	}
	if (lim_users_count(b->users) != n) {
		diff++;
		printf("  users: %" PRIu64 " rebuilt, %" PRIu64 " in %s\n", n,
		       lim_users_count(b->users), bname);
	}
	/* The engine reclaims op entries past their retention without a
	 * journal record (docs/durability.md), so their count is a note. */
	if (lim_ops_count(a->ops) != lim_ops_count(b->ops))
		printf("  note: op entries: %" PRIu64 " rebuilt, %" PRIu64 " in %s "
		       "(the engine reclaims entries past retention unjournaled)\n",
		       lim_ops_count(a->ops), lim_ops_count(b->ops), bname);
	return diff;
}

static int
check_against(struct run *x)
{
	struct lim_snapshot_meta meta;
	char err[1024];
	struct lim_db *b = lim_snapshot_load(x->o->check, NULL, NULL, &meta, err,
					     sizeof(err));
	uint64_t diff;

	if (!b) {
		fprintf(stderr, "authconsume: --check %s\n", err);
		return EXIT_USAGE;
	}
	printf("check against %s (seq %" PRIu64 "..%" PRIu64 "):\n", x->o->check,
	       meta.seq_start, meta.seq_end);
	if (meta.seq_end != x->db->seq)
		printf("  note: %s was saved at seq %" PRIu64 ", the rebuild ends "
		       "at %" PRIu64 ": effects between differ\n", x->o->check,
		       meta.seq_end, x->db->seq);
	diff = compare_users(x->db, b, x->o->check);
	printf("%s\n", diff ? "DIFFERENT" : "same balances");
	lim_snapshot_meta_free(&meta);
	lim_db_free(b);
	return diff ? EXIT_BAD : 0;
}

static int
outputs(struct run *x)
{
	char err[1024];

	if (x->o->users_csv && write_csv(x->db, x->o->users_csv, false))
		return EXIT_USAGE;
	if (x->o->balances_csv && write_csv(x->db, x->o->balances_csv, true))
		return EXIT_USAGE;
	if (x->o->out && lim_snapshot_save(x->db, x->o->out, err, sizeof(err))) {
		fprintf(stderr, "authconsume: --out %s\n", err);
		return EXIT_USAGE;
	}
	return x->o->check ? check_against(x) : 0;
}

/* ------------------------------------------------------------------------ */

static int
run(struct run *x)
{
	uint64_t first_sseq, last_sseq, last_jseq, from;
	struct lim_redo_stats st;
	int rc;

	if (load_start(x) || connect_nats(x))
		return EXIT_USAGE;
	if (stream_end(x, &first_sseq, &last_sseq, &last_jseq))
		return EXIT_USAGE;
	from = lim_redo_next_seq(x->r);
	x->until = x->o->until ? x->o->until : last_jseq;
	if (x->have_meta && x->until < x->meta.seq_end) {
		fprintf(stderr, "authconsume: the snapshot holds effects up to seq "
			"%" PRIu64 " and the stream's records end at %" PRIu64
			" (or --until): nothing to rebuild that far\n",
			x->meta.seq_end, x->until);
		return EXIT_BAD;
	}
	if (x->until >= from && subscribe(x, from, first_sseq, last_sseq, last_jseq))
		return EXIT_USAGE;
	if (x->until >= from && (rc = consume(x)) != 0)
		return rc;
	if (lim_redo_finish(x->r, &st, x->why, sizeof(x->why))) {
		fprintf(stderr, "authconsume: after the replay: %s\n", x->why);
		return EXIT_BAD;
	}
	fprintf(stderr, "authconsume: stream %s: %" PRIu64 " records applied "
		"(seq %" PRIu64 "..%" PRIu64 "), %" PRIu64 " duplicates skipped; "
		"%" PRIu64 " users; journal %016" PRIx64 "\n", x->o->stream,
		x->applied, x->first_applied, x->last_applied, x->duplicates,
		lim_users_count(x->db->users), x->journal_id);
	if (st.unknown_user || st.missing_ref || st.budget_short ||
	    st.settings_failed)
		fprintf(stderr, "authconsume: WARNING: replay anomalies: unknown "
			"user %" PRIu64 ", missing ref %" PRIu64 ", budget short %"
			PRIu64 ", settings refused %" PRIu64 "\n", st.unknown_user,
			st.missing_ref, st.budget_short, st.settings_failed);
	return outputs(x);
}

int
main(int argc, char **argv)
{
	struct opts o;
	struct run x;
	int rc;

	if (parse_args(argc, argv, &o))
		return EXIT_USAGE;
	memset(&x, 0, sizeof(x));
	x.o = &o;
	rcu_register_thread();
	rc = run(&x);
	natsSubscription_Destroy(x.sub); /* keeps the durable consumer */
	jsCtx_Destroy(x.js);
	natsConnection_Destroy(x.nc);
	nats_CloseAndWait(2000);
	lim_redo_free(x.r);
	if (x.have_meta)
		lim_snapshot_meta_free(&x.meta);
	if (x.db)
		lim_db_free(x.db);
	rcu_unregister_thread();
	return rc;
}
