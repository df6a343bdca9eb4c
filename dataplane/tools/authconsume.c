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
 * With --postgres the records go to a PostgreSQL ledger of record instead
 * (consume_pg.c, docs/ledger-sql.md): the same verification and order, no
 * replay in memory; each batch is one transaction that also advances the
 * ledger's consumer_position, which is where the next run (or --follow
 * after a restart) resumes. The replay calls (lim_redo*) stay in the
 * in-memory path only.
 *
 * One thread (the NATS client has its own); a QSBR reader online while it
 * applies, quiescent between batches.
 */
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <nats/nats.h>
#include <urcu-qsbr.h>

#include "export.h"
#include "journal.h"
#ifdef AUTHD_HAVE_PQ
#include "consume_pg.h"
#endif

#define EXIT_BAD 1       /* gap, bad record, redo refused, --check differs */
#define EXIT_USAGE 2     /* usage, I/O, NATS */
#define EXIT_TIMEOUT 3   /* --until not reached in time */

#define CONSUME_BATCH 256
#define CONSUME_FETCH_MS 500
#define CONSUME_DURABLE_DEFAULT "authconsume"
#define CONSUME_PG_SCHEMA_DEFAULT "authd"
#define CONSUME_LOG_EVERY_S 10

static void
usage(FILE *f)
{
	fprintf(f,
"NAME\n"
"    authconsume - rebuild the users' balances from authd's NATS export, or\n"
"    keep a PostgreSQL ledger of record from it\n"
"\n"
"SYNOPSIS\n"
"    authconsume --nats URL --stream NAME [--snapshot FILE]\n"
"                [--users-csv OUT] [--balances-csv OUT] [--out FILE]\n"
"                [--check FILE] [--until SEQ] [--timeout S]\n"
"                [--durable NAME] [--users-max N]\n"
"    authconsume --nats URL --stream NAME --postgres CONNINFO\n"
"                [--pg-schema NAME] [--snapshot FILE] [--follow | --until SEQ]\n"
"                [--timeout S] [--log-every S] [--durable NAME]\n"
"    authconsume --nats URL --stream NAME --postgres CONNINFO\n"
"                [--pg-schema NAME] --stats\n"
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
"    With --postgres the records are applied to a PostgreSQL ledger of\n"
"    record instead (docs/ledger-sql.md): tables users, operations,\n"
"    journal and consumer_position in one schema per engine, created on\n"
"    the first run with the --snapshot as the base. PostgreSQL computes\n"
"    every balance from the records' deltas; each batch of records is one\n"
"    transaction that inserts the journal rows (the seq is the key), moves\n"
"    the balances and operations, and advances consumer_position, so a\n"
"    restart, even after kill -9, resumes exactly after the last batch\n"
"    committed: no record is skipped or applied twice. The lag (records\n"
"    in the stream not applied yet) is logged every --log-every seconds\n"
"    and printed by --stats.\n"
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
"    --postgres CONNINFO apply the stream to the PostgreSQL ledger at\n"
"                        CONNINFO, a libpq URL or key=value string\n"
"                        (postgresql://user@host:5432/ledger); the password\n"
"                        from ~/.pgpass or PGPASSWORD, not the command line\n"
"    --pg-schema NAME    the ledger's schema, one per engine (default authd;\n"
"                        a-z, 0-9, _); created on the first run, with\n"
"                        --snapshot (or an empty base) as the starting state;\n"
"                        later runs resume from its consumer_position and\n"
"                        ignore --snapshot\n"
"    --follow            keep applying new records as they come (a service);\n"
"                        SIGTERM or SIGINT stops after the batch in progress\n"
"    --log-every S       with --postgres: a line with the position, the rate\n"
"                        and the lag every S seconds (default 10; 0: only at\n"
"                        the end)\n"
"    --stats             with --postgres: print the ledger's position, the\n"
"                        stream's last seq, the lag and the tables' row\n"
"                        counts, one \"key value\" per line, and exit (NATS\n"
"                        down: \"-\" for the stream's figures, exit 2)\n"
"    -h, --help          this text\n"
"\n"
"    Without --postgres, at least one of --users-csv, --balances-csv,\n"
"    --out, --check is needed. OUT files are written to OUT.tmp and\n"
"    renamed.\n"
"\n"
"EXIT STATUS\n"
"    0 rebuilt (and, with --check, equal), or applied up to --until (or\n"
"    stopped by a signal with --follow); 1 a gap, a record that does not\n"
"    verify, a record the state or the ledger refuses, or --check found\n"
"    differences; 2 usage, I/O, NATS or PostgreSQL error (another\n"
"    authconsume holding the schema included); 3 --until not reached\n"
"    within --timeout.\n"
"\n"
"EXAMPLES\n"
"    authconsume --nats nats://127.0.0.1:4222 --stream AUTHD_JOURNAL \\\n"
"        --snapshot base.snap --users-csv rebuilt.csv\n"
"    authconsume --nats nats://10.0.0.5:4222 --stream AUTHD_H1 \\\n"
"        --snapshot state.snap --out state.snap --until 1200000\n"
"    authconsume --nats nats://10.0.0.5:4222 --stream AUTHD_H1 \\\n"
"        --postgres postgresql://authd@db1/ledger --pg-schema h1 \\\n"
"        --snapshot /var/lib/authd/base.snap --follow\n"
"    authconsume --nats nats://10.0.0.5:4222 --stream AUTHD_H1 \\\n"
"        --postgres postgresql://authd@db1/ledger --pg-schema h1 --stats\n");
}

struct opts {
	const char *url, *stream, *snapshot, *durable;
	const char *users_csv, *balances_csv, *out, *check;
	const char *postgres, *pg_schema;  /* --postgres: the SQL ledger */
	bool follow, stats;
	unsigned log_every_s;
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
#ifdef AUTHD_HAVE_PQ
	struct cpg *pg;
#endif
	uint64_t applied_seq;      /* --postgres: the ledger's position */
	char why[1024];
};

static volatile sig_atomic_t stop_requested; /* --follow: SIGTERM, SIGINT */

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

/* --postgres: the in-memory outputs do not apply; --follow has no end. */
static int
check_pg_args(const struct opts *o)
{
#ifndef AUTHD_HAVE_PQ
	fprintf(stderr, "authconsume: --postgres: this authconsume was built "
		"without libpq (install libpq-dev: scripts/deps.sh, then "
		"rebuild)\n");
	return -ENOTSUP;
#endif
	if (o->users_csv || o->balances_csv || o->out || o->check) {
		fprintf(stderr, "authconsume: --postgres writes the ledger, not "
			"--users-csv, --balances-csv, --out or --check: run those "
			"without --postgres (see --help)\n");
		return -EINVAL;
	}
	if (o->follow && o->until) {
		fprintf(stderr, "authconsume: --follow and --until: choose one\n");
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
		{"postgres", required_argument, NULL, 'P'},
		{"pg-schema", required_argument, NULL, 'Q'},
		{"follow", no_argument, NULL, 'F'},
		{"stats", no_argument, NULL, 'T'},
		{"log-every", required_argument, NULL, 'L'},
		{"help", no_argument, NULL, 'h'},
		{NULL, 0, NULL, 0},
	};
	uint64_t v;
	int ch;

	memset(o, 0, sizeof(*o));
	o->durable = CONSUME_DURABLE_DEFAULT;
	o->timeout_s = 10;
	o->users_max = 1u << 20;
	o->pg_schema = CONSUME_PG_SCHEMA_DEFAULT;
	o->log_every_s = CONSUME_LOG_EVERY_S;
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
		case 'P': o->postgres = optarg; break;
		case 'Q': o->pg_schema = optarg; break;
		case 'F': o->follow = true; break;
		case 'T': o->stats = true; break;
		case 'L':
			if (parse_u64("log-every", optarg, &v) || v > 86400)
				return -EINVAL;
			o->log_every_s = (unsigned)v;
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
	if (o->postgres)
		return check_pg_args(o);
	if (o->follow || o->stats) {
		fprintf(stderr, "authconsume: --%s needs --postgres (see --help)\n",
			o->follow ? "follow" : "stats");
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
/* --postgres: the ledger of record (consume_pg.c)                            */

#ifdef AUTHD_HAVE_PQ

static void
on_stop(int sig)
{
	stop_requested = 1;
	(void)sig;
}

/* The ledger's position; the schema and its base on the first run. */
static int
pg_start(struct run *x, struct cpg_position *pos)
{
	const struct opts *o = x->o;
	struct lim_snapshot_meta meta;
	struct lim_db *db = NULL;
	char err[1024];
	int rc;

	if (cpg_open(o->postgres, o->pg_schema, !o->stats, &x->pg, err,
		     sizeof(err))) {
		fprintf(stderr, "authconsume: %s\n", err);
		return EXIT_USAGE;
	}
	rc = cpg_position(x->pg, pos, err, sizeof(err));
	if (rc == -ENOENT && o->stats) {
		fprintf(stderr, "authconsume: schema %s holds no ledger yet\n",
			o->pg_schema);
		return EXIT_USAGE;
	}
	if (rc == -ENOENT) {
		if (o->snapshot) {
			struct lim_db_config extra = {.shards = 2};

			db = lim_snapshot_load(o->snapshot, &extra, NULL, &meta, err,
					       sizeof(err));
			if (!db) {
				fprintf(stderr, "authconsume: --snapshot %s\n", err);
				return EXIT_USAGE;
			}
		}
		rc = cpg_create(x->pg, o->stream, db, db ? &meta : NULL,
				o->snapshot ? o->snapshot : "", err, sizeof(err));
		if (db) {
			lim_snapshot_meta_free(&meta);
			lim_db_free(db);
		}
		if (rc) {
			fprintf(stderr, "authconsume: %s\n", err);
			return EXIT_USAGE;
		}
		rc = cpg_position(x->pg, pos, err, sizeof(err));
		if (!rc)
			fprintf(stderr, "authconsume: postgres: schema %s created, "
				"base %s (%" PRIu64 " users, seq %" PRIu64 ")\n",
				o->pg_schema, pos->base_snapshot[0] ?
				pos->base_snapshot : "empty", pos->base_users,
				pos->base_seq);
	} else if (!rc && o->snapshot && !o->stats) {
		fprintf(stderr, "authconsume: postgres: schema %s exists (base %s): "
			"--snapshot %s is not used, the ledger resumes from its "
			"position\n", o->pg_schema, pos->base_snapshot[0] ?
			pos->base_snapshot : "empty", o->snapshot);
	}
	if (rc) {
		fprintf(stderr, "authconsume: %s\n", err);
		return EXIT_USAGE;
	}
	if (strcmp(pos->stream, o->stream)) {
		fprintf(stderr, "authconsume: postgres: schema %s is the ledger of "
			"stream %s, not %s (one schema per engine: --pg-schema)\n",
			o->pg_schema, pos->stream, o->stream);
		return EXIT_USAGE;
	}
	x->applied_seq = pos->applied_seq;
	x->journal_id = pos->journal_id; /* verify(): the same journal only */
	return 0;
}

/* One message: skip what the ledger holds, refuse a gap, batch the next. */
static int
pg_take(struct run *x, natsMsg *m, uint64_t *next)
{
	struct lim_effect rec;
	char why[512];
	int rc = verify(x, m, &rec);

	if (rc) {
		snprintf(why, sizeof(why), "%.400s", x->why);
		snprintf(x->why, sizeof(x->why), "stream message %" PRIu64 ": %s",
			 stream_seq_of(m), why);
		return rc;
	}
	if (rec.seq < *next) {
		x->duplicates++;
		return 0;
	}
	if (rec.seq > *next) {
		snprintf(x->why, sizeof(x->why), "gap: seq %" PRIu64 " expected, "
			 "stream message %" PRIu64 " holds seq %" PRIu64
			 ": records are missing from the stream", *next,
			 stream_seq_of(m), rec.seq);
		return -ERANGE;
	}
	cpg_add(x->pg, &rec);
	(*next)++;
	return 0;
}

static uint64_t
pending_of(natsMsg *m)
{
	jsMsgMetaData *md = NULL;
	uint64_t v = 0;

	if (natsMsg_GetMetaData(&md, m) == NATS_OK && md) {
		v = md->NumPending;
		jsMsgMetaData_Destroy(md);
	}
	return v;
}

static void
pg_log(struct run *x, uint64_t lag, uint64_t *t_last, uint64_t *seq_last)
{
	uint64_t now = mono_ms(), dt = now - *t_last;

	fprintf(stderr, "authconsume: postgres %s: applied seq %" PRIu64 " (%"
		PRIu64 " records in %.1f s, %.0f/s), lag %" PRIu64 " records\n",
		x->o->pg_schema, x->applied_seq, x->applied_seq - *seq_last,
		(double)dt / 1000.0,
		dt ? (double)(x->applied_seq - *seq_last) * 1000.0 / (double)dt : 0.0,
		lag);
	*t_last = now;
	*seq_last = x->applied_seq;
}

/* Apply what the stream holds (up to x->until; --follow: until stopped). */
static int
consume_pg(struct run *x)
{
	uint64_t idle_since = mono_ms(), t_log = idle_since, seq_log = x->applied_seq;
	uint64_t next = x->applied_seq + 1, lag = 0, t_err = 0;
	char err[1024];

	while (next <= x->until && !stop_requested) {
		natsMsgList l = {0};
		jsErrCode ec = 0;
		natsStatus s;
		int rc = 0, i;

		s = natsSubscription_Fetch(&l, x->sub, CONSUME_BATCH,
					   CONSUME_FETCH_MS, &ec);
		/* every --log-every while records flow, once a minute idle */
		if (x->o->log_every_s &&
		    mono_ms() - t_log >= x->o->log_every_s * 1000ull &&
		    (x->applied_seq != seq_log || lag ||
		     mono_ms() - t_log >= 60000))
			pg_log(x, lag, &t_log, &seq_log);
		if (s == NATS_TIMEOUT || (s == NATS_OK && l.Count == 0)) {
			natsMsgList_Destroy(&l);
			lag = 0;
			if (!x->o->follow &&
			    mono_ms() - idle_since > x->o->timeout_s * 1000ull) {
				fprintf(stderr, "authconsume: no record came for %u s: "
					"seq %" PRIu64 " applied, --until %" PRIu64
					" not reached\n", x->o->timeout_s,
					x->applied_seq, x->until);
				return EXIT_TIMEOUT;
			}
			continue;
		}
		if (s != NATS_OK) {
			/* NATS down or restarting: the client reconnects; a
			 * service waits, a run gives up after --timeout */
			natsMsgList_Destroy(&l);
			if (!x->o->follow &&
			    mono_ms() - idle_since > x->o->timeout_s * 1000ull) {
				fprintf(stderr, "authconsume: fetch: %s (code %d)\n",
					nats_why(s), (int)ec);
				return EXIT_USAGE;
			}
			if (mono_ms() - t_err >= 10000) {
				fprintf(stderr, "authconsume: fetch: %s (code %d): "
					"retrying\n", nats_why(s), (int)ec);
				t_err = mono_ms();
			}
			usleep(CONSUME_FETCH_MS * 1000);
			continue;
		}
		idle_since = mono_ms();
		for (i = 0; i < l.Count && !rc && next <= x->until; i++)
			rc = pg_take(x, l.Msgs[i], &next);
		if (!rc && cpg_pending(x->pg)) {
			uint64_t from = x->applied_seq;

			rc = cpg_commit(x->pg, from, x->journal_id, &x->applied_seq,
					err, sizeof(err));
			if (rc) {
				snprintf(x->why, sizeof(x->why), "%s", err);
			} else {
				if (!x->applied)
					x->first_applied = from + 1;
				x->applied += x->applied_seq - from;
				x->last_applied = x->applied_seq;
			}
		}
		if (!rc && i > 0) {
			lag = pending_of(l.Msgs[i - 1]);
			natsMsg_Ack(l.Msgs[i - 1], NULL); /* ack all up to it */
		}
		natsMsgList_Destroy(&l);
		if (rc) {
			fprintf(stderr, "authconsume: %s\n", x->why);
			return rc == -ESTALE || rc == -EIO ? EXIT_USAGE : EXIT_BAD;
		}
	}
	return 0;
}

/* --stats: the ledger's figures; the stream's end unless NATS is down
 * (then "-" and exit status 2, after the ledger's part). */
static int
pg_stats(struct run *x, const struct cpg_position *pos)
{
	uint64_t first_sseq, last_sseq, last_jseq;
	bool nats = !connect_nats(x) &&
		    !stream_end(x, &first_sseq, &last_sseq, &last_jseq);
	struct cpg_counts k = {0};
	char err[1024], end[24] = "-", lag[24] = "-";

	if (nats) {
		snprintf(end, sizeof(end), "%" PRIu64, last_jseq);
		snprintf(lag, sizeof(lag), "%" PRIu64, last_jseq > pos->applied_seq
			 ? last_jseq - pos->applied_seq : 0);
	}
	printf("schema %s\nstream %s\njournal_id %016" PRIx64 "\nbase_snapshot %s\n"
	       "base_users %" PRIu64 "\nbase_seq %" PRIu64 "\napplied_seq %" PRIu64
	       "\nstream_last_seq %s\nlag %s\nupdated_at %s\n",
	       x->o->pg_schema, pos->stream, pos->journal_id,
	       pos->base_snapshot[0] ? pos->base_snapshot : "-", pos->base_users,
	       pos->base_seq, pos->applied_seq, end, lag, pos->updated_at);
	if (cpg_counts(x->pg, &k, err, sizeof(err)))
		fprintf(stderr, "authconsume: %s\n", err);
	else
		printf("users %" PRIu64 "\njournal_rows %" PRIu64 "\njournal_min_seq %"
		       PRIu64 "\njournal_max_seq %" PRIu64 "\noperations %" PRIu64
		       "\noperations_held %" PRIu64 "\n", k.users, k.journal,
		       k.min_seq, k.max_seq, k.operations, k.held);
	return nats ? 0 : EXIT_USAGE;
}

static int
run_pg(struct run *x)
{
	uint64_t first_sseq, last_sseq, last_jseq;
	struct cpg_position pos;
	int rc;

	if ((rc = pg_start(x, &pos)) != 0)
		return rc;
	if (x->o->stats)
		return pg_stats(x, &pos);
	if (connect_nats(x) || stream_end(x, &first_sseq, &last_sseq, &last_jseq))
		return EXIT_USAGE;
	x->until = x->o->until ? x->o->until
			       : x->o->follow ? UINT64_MAX : last_jseq;
	fprintf(stderr, "authconsume: postgres %s: applied up to seq %" PRIu64
		", the stream ends at seq %" PRIu64 "%s\n", x->o->pg_schema,
		x->applied_seq, last_jseq, x->o->follow ? "; following" : "");
	if (x->o->follow) {
		signal(SIGTERM, on_stop);
		signal(SIGINT, on_stop);
	}
	if (x->until > x->applied_seq &&
	    subscribe(x, x->applied_seq + 1, first_sseq, last_sseq, last_jseq))
		return EXIT_USAGE;
	if (x->until > x->applied_seq && (rc = consume_pg(x)) != 0)
		return rc;
	fprintf(stderr, "authconsume: postgres %s: stream %s: %" PRIu64 " records "
		"applied (seq %" PRIu64 "..%" PRIu64 "), %" PRIu64 " duplicates "
		"skipped; the ledger holds seq %" PRIu64 "..%" PRIu64 "; journal %016"
		PRIx64 "%s\n", x->o->pg_schema, x->o->stream, x->applied,
		x->first_applied, x->last_applied, x->duplicates, pos.base_seq + 1,
		x->applied_seq, x->journal_id, stop_requested ? " (stopped)" : "");
	return 0;
}

#endif /* AUTHD_HAVE_PQ */

/* ------------------------------------------------------------------------ */

static int
run(struct run *x)
{
	uint64_t first_sseq, last_sseq, last_jseq, from;
	struct lim_redo_stats st;
	int rc;

#ifdef AUTHD_HAVE_PQ
	if (x->o->postgres)
		return run_pg(x);
#endif
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
#ifdef AUTHD_HAVE_PQ
	cpg_close(x.pg);
#endif
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
