/*
 * journal.c - the ledger journal on disk: segments of fixed-size records,
 * the segment index, the verifying reader and the append-only writer
 * (format: docs/journal-format.md).
 *
 * Owns: the files of one journal directory. Invariants, checked on every
 * read: records are 128 bytes, sealed with check = xxh3(first 124 bytes,
 * seed journal_id ^ seq), in strictly increasing contiguous seq order
 * across segments; segment i+1 starts at segment i's last seq + 1, carries
 * the check of segment i's last record and the next segment number; every
 * segment has the journal's id; a segment's file name is its first seq.
 *
 * Torn tail vs damage. The writer appends a batch with one write and makes
 * it durable with one fdatasync; a crash (or a failed write) can leave at
 * most the batch in flight partly written: records that do not verify,
 * or a partial record, at the very end of the last segment. So invalid
 * bytes at the end of the last segment, with no record verifying after
 * them and no longer than one batch (+ a file system block), are a torn
 * tail and are cut. Anything else that does not verify is damage and is
 * refused with the file, the byte offset and the reason. A record whose
 * checksum verifies but whose seq is wrong is never torn: the writer never
 * writes one.
 *
 * Crash windows of a rotation: the old segment is fsynced, then the new
 * segment is created with its header and fsynced, the directory fsynced,
 * and only then is the index rewritten (lim_file_replace: tmp + fsync +
 * rename + fsync dir).
 * So the index may lack the newest segment (tolerated, rewritten at start)
 * but never lists one that was not made durable; a newest segment whose
 * header is torn holds no record and is removed.
 *
 * Concurrency: a writer is used by one thread. Readers may read a journal
 * that is being written (authjournal): the end of the active segment may
 * then look like a torn tail, which a reader only reports.
 */
#define _GNU_SOURCE
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <time.h>
#include <unistd.h>

#include <xxhash.h>

#include "journal.h"

_Static_assert(sizeof(struct dp_journal_hdr) == DP_JOURNAL_HDR_LEN,
	       "segment header is 128 bytes");
_Static_assert(offsetof(struct dp_journal_hdr, checksum) ==
		       DP_JOURNAL_HDR_SUMMED,
	       "header checksum last");
_Static_assert(sizeof(struct lim_effect) == DP_JOURNAL_REC_LEN,
	       "a record is an effect");
_Static_assert(sizeof(struct lim_cfg_effect) == DP_JOURNAL_REC_LEN,
	       "a settings record is an effect");
_Static_assert(offsetof(struct lim_effect, check) == DP_JOURNAL_REC_LEN - 4,
	       "check is the last 4 bytes");
_Static_assert(offsetof(struct lim_effect, seq) == 0, "seq first");
#if __BYTE_ORDER__ != __ORDER_LITTLE_ENDIAN__
#error "the journal is little-endian and written as in memory"
#endif

#define SEG_PREFIX "seg-"
#define SEG_SUFFIX ".jnl"
#define SEG_NAME_LEN 28               /* seg- + 20 digits + .jnl */
#define SCAN_CHUNK 8192u              /* records read at once (1 MiB) */
#define INDEX_MAGIC "authd journal index v1"
#define INDEX_LINE_MAX 160

/* ------------------------------------------------------------------------ */
/* Names, checks                                                              */

static const char *const err_names[] = {
#define DP_JOURNAL_ERR_NAME(code, name, text) name,
	DP_JOURNAL_FOREACH_ERR(DP_JOURNAL_ERR_NAME)
#undef DP_JOURNAL_ERR_NAME
};

const char *
dp_journal_err_name(enum dp_journal_err_kind k)
{
	return (unsigned)k < DP_JOURNAL_ERRS ? err_names[k] : "?";
}

static const char *const kind_names[LIM_EFF_KINDS] = {
	[LIM_EFF_NONE] = "NONE",
	[LIM_EFF_DECIDE] = "DECIDE",
	[LIM_EFF_AUTH] = "AUTH",
	[LIM_EFF_CAPTURE] = "CAPTURE",
	[LIM_EFF_VOID] = "VOID",
	[LIM_EFF_REFUND] = "REFUND",
	[LIM_EFF_REPAY] = "REPAY",
	[LIM_EFF_TOMBSTONE] = "TOMBSTONE",
	[LIM_EFF_EXPIRE] = "EXPIRE",
	[LIM_EFF_USER_SET] = "USER_SET",
	[LIM_EFF_EXT_SET] = "EXT_SET",
	[LIM_EFF_MERCHANT_SET] = "MERCHANT_SET",
	[LIM_EFF_GROUP_SET] = "GROUP_SET",
	[LIM_EFF_FUNDER_SET] = "FUNDER_SET",
	[LIM_EFF_POLICY_PART] = "POLICY_PART",
};

const char *
dp_journal_kind_name(unsigned kind)
{
	return kind < LIM_EFF_KINDS && kind_names[kind] ? kind_names[kind] : "?";
}

uint32_t
dp_journal_check(const void *rec, uint64_t journal_id)
{
	uint64_t seq;

	memcpy(&seq, rec, sizeof(seq));
	return (uint32_t)XXH3_64bits_withSeed(rec, DP_JOURNAL_REC_LEN - 4,
					      journal_id ^ seq);
}

void
dp_journal_seal(void *rec, uint64_t journal_id)
{
	uint32_t c = dp_journal_check(rec, journal_id);

	memcpy((uint8_t *)rec + DP_JOURNAL_REC_LEN - 4, &c, sizeof(c));
}

static uint32_t
rec_check(const void *rec)
{
	uint32_t c;

	memcpy(&c, (const uint8_t *)rec + DP_JOURNAL_REC_LEN - 4, sizeof(c));
	return c;
}

static uint64_t
rec_seq(const void *rec)
{
	uint64_t s;

	memcpy(&s, rec, sizeof(s));
	return s;
}

static bool
rec_valid(const void *rec, uint64_t journal_id)
{
	return rec_check(rec) == dp_journal_check(rec, journal_id);
}

static uint8_t
rec_kind(const void *rec)
{
	return ((const struct lim_effect *)rec)->kind;
}

/* ------------------------------------------------------------------------ */
/* Errors                                                                     */

__attribute__((format(printf, 5, 6))) static int
jerr(struct dp_journal_err *e, enum dp_journal_err_kind kind, const char *path,
     uint64_t off, const char *fmt, ...)
{
	char reason[192];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(reason, sizeof(reason), fmt, ap);
	va_end(ap);
	if (!e)
		return kind == DP_JOURNAL_E_IO ? -EIO : -EBADMSG;
	e->kind = kind;
	e->offset = off;
	snprintf(e->path, sizeof(e->path), "%s", path);
	snprintf(e->why, sizeof(e->why), "%s:%" PRIu64 ": %s: %s", path, off,
		 dp_journal_err_name(kind), reason);
	return kind == DP_JOURNAL_E_IO ? -EIO : -EBADMSG;
}

static int
jerr_io(struct dp_journal_err *e, const char *path, uint64_t off,
	const char *what, int errnum)
{
	if (e)
		e->sys_errno = errnum;
	return jerr(e, DP_JOURNAL_E_IO, path, off, "%s: %s", what,
		    strerror(errnum));
}

/* ------------------------------------------------------------------------ */
/* Files                                                                      */

static int
seg_name(char *buf, size_t n, uint64_t first_seq)
{
	return snprintf(buf, n, SEG_PREFIX "%020" PRIu64 SEG_SUFFIX, first_seq);
}

int
dp_journal_seg_parse(const char *name, uint64_t *first)
{
	size_t len = strlen(name);

	if (strncmp(name, SEG_PREFIX, 4) || len < 8 ||
	    strcmp(name + len - 4, SEG_SUFFIX))
		return 0;
	if (len != SEG_NAME_LEN ||
	    lim_parse_u64_span(name + 4, 20, UINT64_MAX, first))
		return -1;
	return 1;
}

static int
path_join(char *out, size_t n, const char *dir, const char *name)
{
	int k = snprintf(out, n, "%s/%s", dir, name);

	return k < 0 || (size_t)k >= n ? -ENAMETOOLONG : 0;
}

static int
pread_full(int fd, void *buf, size_t n, uint64_t off)
{
	size_t done = 0;

	while (done < n) {
		ssize_t k = pread(fd, (uint8_t *)buf + done, n - done,
				  (off_t)(off + done));

		if (k < 0 && errno == EINTR)
			continue;
		if (k < 0)
			return -errno;
		if (k == 0)
			return -ENODATA;
		done += (size_t)k;
	}
	return 0;
}

/* One segment file as listed. */
struct seg {
	uint64_t first_seq;
	uint64_t size;
	char name[SEG_NAME_LEN + 1];
};

static int
seg_cmp(const void *a, const void *b)
{
	const struct seg *x = a, *y = b;

	return x->first_seq < y->first_seq ? -1 : x->first_seq > y->first_seq;
}

/* The segments of @p dir sorted by first seq; *out is malloc'd. */
static int
list_segments(const char *dir, struct seg **out, unsigned *n,
	      struct dp_journal_err *err)
{
	DIR *d = opendir(dir);
	struct seg *v = NULL;
	unsigned cap = 0, k = 0;
	struct dirent *de;
	int rc = 0;

	*out = NULL;
	*n = 0;
	if (!d)
		return errno == ENOENT ? -ENOENT
				       : jerr_io(err, dir, 0, "opendir", errno);
	while ((de = readdir(d)) != NULL && rc == 0) {
		char path[PATH_MAX];
		struct stat st;
		uint64_t first;
		int p = dp_journal_seg_parse(de->d_name, &first);

		if (p == 0)
			continue;
		if (p < 0) {
			rc = jerr(err, DP_JOURNAL_E_NAME, de->d_name, 0,
				  "not a segment name (seg-<20 digits>.jnl)");
			break;
		}
		if (path_join(path, sizeof(path), dir, de->d_name) ||
		    stat(path, &st)) {
			rc = jerr_io(err, de->d_name, 0, "stat", errno);
			break;
		}
		if (k == cap) {
			struct seg *nv;

			cap = cap ? cap * 2 : 16;
			if (cap > DP_JOURNAL_SEGMENTS_MAX ||
			    !(nv = realloc(v, cap * sizeof(*v)))) {
				rc = jerr_io(err, dir, 0, "too many segments",
					     ENOMEM);
				break;
			}
			v = nv;
		}
		v[k].first_seq = first;
		v[k].size = (uint64_t)st.st_size;
		memcpy(v[k].name, de->d_name, SEG_NAME_LEN + 1); /* checked */
		k++;
	}
	closedir(d);
	if (rc) {
		free(v);
		return rc;
	}
	if (k)
		qsort(v, k, sizeof(*v), seg_cmp);
	*out = v;
	*n = k;
	return 0;
}

/* ------------------------------------------------------------------------ */
/* Headers                                                                    */

static uint64_t
hdr_sum(const struct dp_journal_hdr *h)
{
	return XXH3_64bits(h, DP_JOURNAL_HDR_SUMMED);
}

static bool
all_zero(const uint8_t *p, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (p[i])
			return false;
	return true;
}

/* The header's own consistency (not its place in the chain). */
static int
hdr_check(const struct dp_journal_hdr *h, const char *path,
	  struct dp_journal_err *err)
{
	if (memcmp(h->magic, DP_JOURNAL_MAGIC, 8))
		return jerr(err, DP_JOURNAL_E_BAD_HEADER, path, 0,
			    "magic is not " DP_JOURNAL_MAGIC);
	if (hdr_sum(h) != h->checksum)
		return jerr(err, DP_JOURNAL_E_BAD_HEADER, path,
			    DP_JOURNAL_HDR_SUMMED,
			    "header checksum does not verify");
	if (h->version != DP_JOURNAL_VERSION)
		return jerr(err, DP_JOURNAL_E_BAD_HEADER, path, 8,
			    "version %u, this build reads %u", h->version,
			    DP_JOURNAL_VERSION);
	if (h->header_len != DP_JOURNAL_HDR_LEN ||
	    h->record_len != DP_JOURNAL_REC_LEN)
		return jerr(err, DP_JOURNAL_E_BAD_HEADER, path, 12,
			    "header %u / record %u bytes, expected 128 / 128",
			    h->header_len, h->record_len);
	if (h->batch_max == 0 || h->batch_max > DP_JOURNAL_BATCH_MAX)
		return jerr(err, DP_JOURNAL_E_BAD_HEADER, path, 20,
			    "batch_max %u out of range", h->batch_max);
	if (h->journal_id == 0 || h->first_seq == 0 ||
	    h->prev_last_seq != h->first_seq - 1)
		return jerr(err, DP_JOURNAL_E_BAD_HEADER, path, 24,
			    "journal id, first seq or previous seq invalid");
	if (h->reserved0 || !all_zero(h->reserved, sizeof(h->reserved)))
		return jerr(err, DP_JOURNAL_E_BAD_HEADER, path, 68,
			    "reserved bytes not zero");
	return 0;
}

int
dp_journal_read_hdr(const char *path, struct dp_journal_hdr *h,
		    struct dp_journal_err *err)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	int rc;

	if (fd < 0)
		return jerr_io(err, path, 0, "open", errno);
	rc = pread_full(fd, h, sizeof(*h), 0);
	close(fd);
	if (rc == -ENODATA)
		return jerr(err, DP_JOURNAL_E_BAD_HEADER, path, 0,
			    "shorter than a header");
	if (rc)
		return jerr_io(err, path, 0, "read", -rc);
	return hdr_check(h, path, err);
}

static void
hdr_make(struct dp_journal_hdr *h, uint64_t journal_id, uint64_t first_seq,
	 uint64_t segment_no, uint32_t prev_check, uint32_t batch_max)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	memset(h, 0, sizeof(*h));
	memcpy(h->magic, DP_JOURNAL_MAGIC, 8);
	h->version = DP_JOURNAL_VERSION;
	h->header_len = DP_JOURNAL_HDR_LEN;
	h->record_len = DP_JOURNAL_REC_LEN;
	h->batch_max = batch_max;
	h->journal_id = journal_id;
	h->first_seq = first_seq;
	h->segment_no = segment_no;
	h->created_ns = (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
	h->prev_last_seq = first_seq - 1;
	h->prev_check = prev_check;
	h->checksum = hdr_sum(h);
}

/* ------------------------------------------------------------------------ */
/* The index                                                                  */

struct index_ent {
	char name[SEG_NAME_LEN + 1];
	uint64_t segment_no;
	uint64_t first_seq;
	uint64_t last_seq;         /* meaningful when !open */
	bool open;
};

struct index {
	bool present;
	uint64_t journal_id;
	unsigned n;
	struct index_ent *e;
};

static int
index_text(const struct index_ent *e, unsigned n, uint64_t journal_id,
	   char **out, size_t *len)
{
	size_t cap = 128 + (size_t)n * INDEX_LINE_MAX, k;
	char *t = malloc(cap);

	if (!t)
		return -ENOMEM;
	k = (size_t)snprintf(t, cap, "%s\njournal_id %016" PRIx64 "\n",
			     INDEX_MAGIC, journal_id);
	for (unsigned i = 0; i < n; i++) {
		if (e[i].open)
			k += (size_t)snprintf(t + k, cap - k,
					      "%s %" PRIu64 " %" PRIu64 " -\n",
					      e[i].name, e[i].segment_no,
					      e[i].first_seq);
		else
			k += (size_t)snprintf(t + k, cap - k,
					      "%s %" PRIu64 " %" PRIu64
					      " %" PRIu64 "\n",
					      e[i].name, e[i].segment_no,
					      e[i].first_seq, e[i].last_seq);
	}
	k += (size_t)snprintf(t + k, cap - k, "checksum %016llx\n",
			      (unsigned long long)XXH3_64bits(t, k));
	*out = t;
	*len = k;
	return 0;
}

/* Write the index atomically and durably (lim_file_replace). */
static int
index_write(const char *dir, const struct index_ent *e, unsigned n,
	    uint64_t journal_id)
{
	char path[PATH_MAX];
	size_t len;
	char *text;
	int rc;

	if (path_join(path, sizeof(path), dir, DP_JOURNAL_INDEX))
		return -ENAMETOOLONG;
	rc = index_text(e, n, journal_id, &text, &len);
	if (rc)
		return rc;
	rc = lim_file_replace(path, text, len, 0644, NULL, 0);
	free(text);
	return rc;
}

/* "NAME NO FIRST LAST" or "NAME NO FIRST -", as index_text() writes it. */
static int
index_parse_line(const char *line, struct index_ent *e)
{
	char buf[INDEX_LINE_MAX], *f[4];

	if (strlen(line) >= sizeof(buf))
		return -1;
	memcpy(buf, line, strlen(line) + 1);
	f[0] = buf;
	for (unsigned i = 1; i < 4; i++) {
		f[i] = strchr(f[i - 1], ' ');
		if (!f[i])
			return -1;
		*f[i]++ = '\0';
	}
	if (strchr(f[3], ' ') || strlen(f[0]) != SEG_NAME_LEN ||
	    lim_parse_u64(f[1], UINT64_MAX, &e->segment_no) ||
	    lim_parse_u64(f[2], UINT64_MAX, &e->first_seq))
		return -1;
	memcpy(e->name, f[0], SEG_NAME_LEN + 1);
	e->open = !strcmp(f[3], "-");
	if (!e->open && lim_parse_u64(f[3], UINT64_MAX, &e->last_seq))
		return -1;
	return 0;
}

static void
index_free(struct index *ix)
{
	free(ix->e);
	memset(ix, 0, sizeof(*ix));
}

/* Read and verify the index; absent is not an error (ix->present false). */
static int
index_read(const char *dir, struct index *ix, struct dp_journal_err *err)
{
	char path[PATH_MAX], *text = NULL, *p, *nl;
	unsigned long long sum, id;
	struct stat st;
	size_t body;
	int fd, rc = 0;

	memset(ix, 0, sizeof(*ix));
	if (path_join(path, sizeof(path), dir, DP_JOURNAL_INDEX))
		return -ENAMETOOLONG;
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return errno == ENOENT ? 0 : jerr_io(err, path, 0, "open", errno);
	if (fstat(fd, &st) || st.st_size > (64 << 20) ||
	    !(text = malloc((size_t)st.st_size + 1)) ||
	    pread_full(fd, text, (size_t)st.st_size, 0)) {
		close(fd);
		free(text);
		return jerr_io(err, path, 0, "read", errno ? errno : EIO);
	}
	close(fd);
	text[st.st_size] = 0;
	p = strstr(text, "checksum ");
	if (!p || sscanf(p, "checksum %llx", &sum) != 1 ||
	    XXH3_64bits(text, (size_t)(p - text)) != sum) {
		free(text);
		return jerr(err, DP_JOURNAL_E_INDEX, path, 0,
			    "index checksum missing or wrong");
	}
	body = (size_t)(p - text);
	text[body] = 0;
	if (strncmp(text, INDEX_MAGIC "\n", strlen(INDEX_MAGIC) + 1) ||
	    sscanf(text + strlen(INDEX_MAGIC) + 1, "journal_id %llx", &id) != 1) {
		free(text);
		return jerr(err, DP_JOURNAL_E_INDEX, path, 0, "not an index");
	}
	ix->present = true;
	ix->journal_id = id;
	p = strchr(text + strlen(INDEX_MAGIC) + 1, '\n');
	for (p = p ? p + 1 : text + body; *p && rc == 0; p = nl + 1) {
		struct index_ent *ne;

		nl = strchr(p, '\n');
		if (!nl)
			break;
		*nl = 0;
		ne = realloc(ix->e, (ix->n + 1) * sizeof(*ix->e));
		if (!ne) {
			rc = jerr_io(err, path, 0, "index", ENOMEM);
			break;
		}
		ix->e = ne;
		if (index_parse_line(p, &ix->e[ix->n]))
			rc = jerr(err, DP_JOURNAL_E_INDEX, path,
				  (uint64_t)(p - text), "bad line '%s'", p);
		ix->n++;
	}
	free(text);
	if (rc)
		index_free(ix);
	return rc;
}

/* ------------------------------------------------------------------------ */
/* Scanning                                                                   */

struct scan_ctx {
	const char *dir;
	uint64_t from_seq;
	unsigned flags;
	dp_journal_visit_fn fn;
	void *arg;
	struct dp_journal_scan *res;
	struct dp_journal_err *err;
	uint8_t *buf;              /* SCAN_CHUNK records */
	/* the chain so far */
	bool have_prev;
	uint64_t journal_id;
	uint64_t next_seq;         /* expected seq of the next record */
	uint64_t next_segment_no;
	uint32_t last_check;
	/* per segment, for the index check */
	uint64_t *seg_last;        /* last seq of each segment */
	uint64_t *seg_no;
};

/* Where a segment's header sits in the chain. */
static int
chain_check(struct scan_ctx *c, const struct dp_journal_hdr *h,
	    const struct seg *s, const char *path)
{
	char want[SEG_NAME_LEN + 1];

	seg_name(want, sizeof(want), h->first_seq);
	if (strcmp(want, s->name))
		return jerr(c->err, DP_JOURNAL_E_NAME, path, 32,
			    "header says first seq %" PRIu64 " (%s)",
			    h->first_seq, want);
	if (!c->have_prev)
		return 0;
	if (h->journal_id != c->journal_id)
		return jerr(c->err, DP_JOURNAL_E_CHAIN, path, 24,
			    "journal id %016" PRIx64 ", the journal's is "
			    "%016" PRIx64, h->journal_id, c->journal_id);
	if (h->first_seq != c->next_seq)
		return jerr(c->err,
			    h->first_seq > c->next_seq ? DP_JOURNAL_E_SEQ_GAP
						       : DP_JOURNAL_E_SEQ_ORDER,
			    path, 32,
			    "segment starts at seq %" PRIu64 ", expected %" PRIu64,
			    h->first_seq, c->next_seq);
	if (h->segment_no != c->next_segment_no)
		return jerr(c->err, DP_JOURNAL_E_CHAIN, path, 40,
			    "segment number %" PRIu64 ", expected %" PRIu64,
			    h->segment_no, c->next_segment_no);
	if (h->prev_check != c->last_check)
		return jerr(c->err, DP_JOURNAL_E_CHAIN, path, 64,
			    "previous check %08x, the previous segment ends "
			    "with %08x", h->prev_check, c->last_check);
	return 0;
}

/* A record at @p off whose checksum verified: its seq and kind. */
static int
rec_accept(struct scan_ctx *c, const uint8_t *rec, const char *path,
	   uint64_t off)
{
	uint64_t seq = rec_seq(rec);
	int rc;

	if (seq != c->next_seq)
		return jerr(c->err,
			    seq > c->next_seq ? DP_JOURNAL_E_SEQ_GAP
					      : DP_JOURNAL_E_SEQ_ORDER,
			    path, off, "seq %" PRIu64 ", expected %" PRIu64, seq,
			    c->next_seq);
	if (rec_kind(rec) == LIM_EFF_NONE || rec_kind(rec) >= LIM_EFF_KINDS)
		return jerr(c->err, DP_JOURNAL_E_BAD_RECORD, path, off,
			    "seq %" PRIu64 ": kind %u", seq, rec_kind(rec));
	c->next_seq++;
	c->last_check = rec_check(rec);
	c->res->records++;
	if (c->fn && seq >= c->from_seq) {
		c->res->visited++;
		rc = c->fn((const struct lim_effect *)rec, c->arg);
		if (rc)
			return rc;
	}
	return 0;
}

/* Does any record slot in [from, n) of the segment verify? */
static int
any_valid_after(struct scan_ctx *c, int fd, const char *path, uint64_t from,
		uint64_t n, uint64_t *found)
{
	for (uint64_t i = from; i < n;) {
		unsigned k = n - i > SCAN_CHUNK ? SCAN_CHUNK : (unsigned)(n - i);
		int rc = pread_full(fd, c->buf, (size_t)k * DP_JOURNAL_REC_LEN,
				    DP_JOURNAL_HDR_LEN + i * DP_JOURNAL_REC_LEN);

		if (rc)
			return jerr_io(c->err, path, 0, "read", -rc);
		for (unsigned j = 0; j < k; j++)
			if (rec_valid(c->buf + (size_t)j * DP_JOURNAL_REC_LEN,
				      c->journal_id)) {
				*found = i + j;
				return 1;
			}
		i += k;
	}
	return 0;
}

/*
 * Record @p k of the last segment did not verify: a torn tail if nothing
 * valid follows and it is at most one batch, else damage.
 */
static int
torn_or_damage(struct scan_ctx *c, int fd, const char *path,
	       const struct dp_journal_hdr *h, const struct seg *s,
	       uint64_t k, uint64_t n_full, const char *why)
{
	uint64_t off = DP_JOURNAL_HDR_LEN + k * DP_JOURNAL_REC_LEN, found = 0;
	uint64_t bytes = s->size - off;
	int rc = any_valid_after(c, fd, path, k + 1, n_full, &found);

	if (rc < 0)
		return rc;
	if (rc > 0)
		return jerr(c->err, DP_JOURNAL_E_BAD_CHECKSUM, path, off,
			    "%s, and a valid record follows at offset %" PRIu64
			    ": damage, not a torn write", why,
			    DP_JOURNAL_HDR_LEN + found * DP_JOURNAL_REC_LEN);
	if (bytes > (uint64_t)h->batch_max * DP_JOURNAL_REC_LEN +
			    DP_JOURNAL_TORN_SLACK)
		return jerr(c->err, DP_JOURNAL_E_BAD_CHECKSUM, path, off,
			    "%s, and %" PRIu64 " invalid bytes to the end: more "
			    "than one write of %u records", why, bytes,
			    h->batch_max);
	c->res->torn = true;
	snprintf(c->res->torn_path, sizeof(c->res->torn_path), "%s", path);
	c->res->torn_off = off;
	c->res->torn_bytes = bytes;
	snprintf(c->res->torn_why, sizeof(c->res->torn_why), "%s", why);
	return 0;
}

/* Verify records [0, n_full) of a segment and its tail. */
static int
scan_records(struct scan_ctx *c, int fd, const char *path,
	     const struct dp_journal_hdr *h, const struct seg *s, bool last,
	     uint64_t *valid)
{
	uint64_t n_full = (s->size - DP_JOURNAL_HDR_LEN) / DP_JOURNAL_REC_LEN;
	uint64_t partial = (s->size - DP_JOURNAL_HDR_LEN) % DP_JOURNAL_REC_LEN;
	int rc;

	for (uint64_t i = 0; i < n_full;) {
		unsigned k = n_full - i > SCAN_CHUNK ? SCAN_CHUNK
						     : (unsigned)(n_full - i);

		rc = pread_full(fd, c->buf, (size_t)k * DP_JOURNAL_REC_LEN,
				DP_JOURNAL_HDR_LEN + i * DP_JOURNAL_REC_LEN);
		if (rc)
			return jerr_io(c->err, path, 0, "read", -rc);
		for (unsigned j = 0; j < k; j++, i++) {
			const uint8_t *rec = c->buf + (size_t)j * DP_JOURNAL_REC_LEN;
			uint64_t off = DP_JOURNAL_HDR_LEN + i * DP_JOURNAL_REC_LEN;

			if (!rec_valid(rec, c->journal_id)) {
				*valid = i;
				if (!last)
					return jerr(c->err,
						    DP_JOURNAL_E_BAD_CHECKSUM,
						    path, off,
						    "record checksum does not "
						    "verify (expected seq %" PRIu64
						    ")", c->next_seq);
				return torn_or_damage(c, fd, path, h, s, i,
						      n_full,
						      "record checksum does not "
						      "verify");
			}
			rc = rec_accept(c, rec, path, off);
			if (rc)
				return rc;
		}
	}
	*valid = n_full;
	if (!partial)
		return 0;
	if (!last)
		return jerr(c->err, DP_JOURNAL_E_TRUNCATED, path,
			    DP_JOURNAL_HDR_LEN + n_full * DP_JOURNAL_REC_LEN,
			    "%" PRIu64 " bytes of a record", partial);
	return torn_or_damage(c, fd, path, h, s, n_full, n_full,
			      "truncated record");
}

/* A segment before from_seq: size, and its last record (for the chain). */
static int
skim_records(struct scan_ctx *c, int fd, const char *path,
	     const struct seg *s, uint64_t *valid)
{
	uint64_t n_full = (s->size - DP_JOURNAL_HDR_LEN) / DP_JOURNAL_REC_LEN;
	uint64_t off = DP_JOURNAL_HDR_LEN + (n_full - 1) * DP_JOURNAL_REC_LEN;
	uint8_t rec[DP_JOURNAL_REC_LEN];
	int rc;

	if ((s->size - DP_JOURNAL_HDR_LEN) % DP_JOURNAL_REC_LEN)
		return jerr(c->err, DP_JOURNAL_E_TRUNCATED, path,
			    DP_JOURNAL_HDR_LEN + n_full * DP_JOURNAL_REC_LEN,
			    "size %" PRIu64 " is not header + whole records",
			    s->size);
	*valid = n_full;
	if (n_full == 0)
		return 0;
	rc = pread_full(fd, rec, sizeof(rec), off);
	if (rc)
		return jerr_io(c->err, path, off, "read", -rc);
	if (!rec_valid(rec, c->journal_id))
		return jerr(c->err, DP_JOURNAL_E_BAD_CHECKSUM, path, off,
			    "last record's checksum does not verify");
	if (rec_seq(rec) != c->next_seq + n_full - 1)
		return jerr(c->err, DP_JOURNAL_E_SEQ_GAP, path, off,
			    "last record has seq %" PRIu64 ", expected %" PRIu64,
			    rec_seq(rec), c->next_seq + n_full - 1);
	c->next_seq += n_full;
	c->last_check = rec_check(rec);
	return 0;
}

/* The header of the last segment is torn: a segment with no record. */
static bool
torn_header(const struct seg *s, bool last)
{
	return last && s->size <= DP_JOURNAL_HDR_LEN;
}

static int
scan_segment(struct scan_ctx *c, const struct seg *s, unsigned i, bool last)
{
	struct dp_journal_scan *res = c->res;
	struct dp_journal_hdr h;
	char path[PATH_MAX];
	uint64_t valid = 0, first_here;
	bool verify;
	int fd, rc;

	if (path_join(path, sizeof(path), c->dir, s->name))
		return -ENAMETOOLONG;
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return jerr_io(c->err, path, 0, "open", errno);
	rc = s->size < DP_JOURNAL_HDR_LEN ? -ENODATA
					  : pread_full(fd, &h, sizeof(h), 0);
	if (rc && rc != -ENODATA) {
		close(fd);
		return jerr_io(c->err, path, 0, "read", -rc);
	}
	if ((rc || hdr_check(&h, path, NULL)) && torn_header(s, last)) {
		close(fd);
		res->torn = res->torn_whole = true;
		snprintf(res->torn_path, sizeof(res->torn_path), "%s", path);
		res->torn_off = 0;
		res->torn_bytes = s->size;
		snprintf(res->torn_why, sizeof(res->torn_why),
			 "segment header incomplete (%" PRIu64 " bytes)", s->size);
		return 0;
	}
	if (rc)
		rc = jerr(c->err, DP_JOURNAL_E_BAD_HEADER, path, 0,
			  "shorter than a header");
	else
		rc = hdr_check(&h, path, c->err);
	if (!rc)
		rc = chain_check(c, &h, s, path);
	if (rc) {
		close(fd);
		return rc;
	}
	if (!c->have_prev) {
		c->have_prev = true;
		c->journal_id = h.journal_id;
		c->next_seq = h.first_seq;
		c->last_check = h.prev_check;
		res->journal_id = h.journal_id;
		res->first_seq = h.first_seq;
	}
	c->next_segment_no = h.segment_no + 1;
	first_here = h.first_seq;
	verify = last || (c->flags & DP_JOURNAL_SCAN_ALL) ||
		 first_here + (s->size - DP_JOURNAL_HDR_LEN) /
				      DP_JOURNAL_REC_LEN > c->from_seq;
	rc = verify ? scan_records(c, fd, path, &h, s, last, &valid)
		    : skim_records(c, fd, path, s, &valid);
	close(fd);
	if (rc)
		return rc;
	c->seg_last[i] = first_here + valid - 1;
	c->seg_no[i] = h.segment_no;
	res->n_segments++;
	res->bytes += s->size;
	snprintf(res->last_path, sizeof(res->last_path), "%s", path);
	res->last_segment_no = h.segment_no;
	res->last_first_seq = first_here;
	res->end_off = DP_JOURNAL_HDR_LEN + valid * DP_JOURNAL_REC_LEN;
	res->last_check = c->last_check;
	res->batch_max = h.batch_max;
	return 0;
}

/* The index against what the segments say. */
static int
index_check(struct scan_ctx *c, const struct seg *s, unsigned n)
{
	struct dp_journal_scan *res = c->res;
	unsigned live = n - (res->torn_whole ? 1 : 0);
	struct index ix;
	char path[PATH_MAX];
	int rc = index_read(c->dir, &ix, c->err);

	if (rc)
		return rc;
	path_join(path, sizeof(path), c->dir, DP_JOURNAL_INDEX);
	if (!ix.present) {
		if (live > 1)
			return jerr(c->err, DP_JOURNAL_E_INDEX, path, 0,
				    "missing, with %u segments", live);
		if (live == 1) {
			res->index_stale = true;
			snprintf(res->index_note, sizeof(res->index_note),
				 "index missing (crash while creating the "
				 "journal): rewritten");
		}
		return 0;
	}
	if (live == 0 && ix.n) {
		rc = jerr(c->err, DP_JOURNAL_E_INDEX, path, 0,
			  "lists %u segments, none exists", ix.n);
		goto out;
	}
	if (live && ix.journal_id != res->journal_id) {
		rc = jerr(c->err, DP_JOURNAL_E_INDEX, path, 0,
			  "journal id %016" PRIx64 ", the segments' is %016" PRIx64,
			  ix.journal_id, res->journal_id);
		goto out;
	}
	/* A crash during a rotation: the index lacks the newest segment. */
	if (ix.n + 1 == live && live >= 2) {
		res->index_stale = true;
		snprintf(res->index_note, sizeof(res->index_note),
			 "index lacks the newest segment %s (crash during a "
			 "rotation): rewritten", s[live - 1].name);
	} else if (ix.n != live) {
		rc = jerr(c->err, DP_JOURNAL_E_INDEX, path, 0,
			  "lists %u segments, the directory has %u", ix.n, live);
		goto out;
	}
	for (unsigned i = 0; i < ix.n; i++) {
		const struct index_ent *e = &ix.e[i];
		bool newest = i + 1 == live, ok;

		if (strcmp(e->name, s[i].name) || e->first_seq != s[i].first_seq ||
		    e->segment_no != c->seg_no[i]) {
			rc = jerr(c->err, DP_JOURNAL_E_INDEX, path, 0,
				  "entry %u is %s (no %" PRIu64 "), the directory "
				  "has %s (no %" PRIu64 ")", i, e->name,
				  e->segment_no, s[i].name, c->seg_no[i]);
			goto out;
		}
		if (newest)
			ok = e->open;
		else if (e->open)
			ok = res->index_stale && i + 1 == ix.n;
		else
			ok = e->last_seq == c->seg_last[i];
		if (!ok) {
			rc = jerr(c->err, DP_JOURNAL_E_INDEX, path, 0,
				  "entry %u (%s) says %s%s", i, e->name,
				  e->open ? "open" : "closed",
				  newest ? " but it is the newest segment: "
					   "segments after it are missing"
					 : ", the segment ends elsewhere");
			goto out;
		}
	}
out:
	index_free(&ix);
	return rc;
}

int
dp_journal_scan(const char *dir, uint64_t from_seq, unsigned flags,
		dp_journal_visit_fn fn, void *arg, struct dp_journal_scan *res,
		struct dp_journal_err *err)
{
	struct scan_ctx c = {.dir = dir, .from_seq = from_seq, .flags = flags,
			     .fn = fn, .arg = arg, .res = res, .err = err};
	struct seg *s = NULL;
	unsigned n = 0;
	int rc;

	memset(res, 0, sizeof(*res));
	if (err)
		memset(err, 0, sizeof(*err));
	rc = list_segments(dir, &s, &n, err);
	if (rc == -ENOENT)
		jerr_io(err, dir, 0, "journal directory", ENOENT);
	if (rc)
		return rc;
	c.buf = malloc((size_t)SCAN_CHUNK * DP_JOURNAL_REC_LEN);
	c.seg_last = calloc(n + 1, sizeof(uint64_t));
	c.seg_no = calloc(n + 1, sizeof(uint64_t));
	if (!c.buf || !c.seg_last || !c.seg_no) {
		rc = jerr_io(err, dir, 0, "scan", ENOMEM);
		goto out;
	}
	for (unsigned i = 0; i < n && rc == 0; i++)
		rc = scan_segment(&c, &s[i], i, i + 1 == n);
	if (rc == 0)
		rc = index_check(&c, s, n);
	if (rc == 0 && res->n_segments == 0)
		res->first_seq = 0;
	res->last_seq = res->n_segments ? c.next_seq - 1 : 0;
out:
	free(c.buf);
	free(c.seg_last);
	free(c.seg_no);
	free(s);
	return rc;
}

/* The index entries of the segments of @p dir, the newest open. */
static int
index_from_dir(const char *dir, struct index_ent **out, unsigned *n,
	       uint64_t *journal_id, struct dp_journal_err *err)
{
	struct seg *s;
	struct index_ent *e;
	unsigned k;
	int rc = list_segments(dir, &s, &k, err);

	if (rc)
		return rc;
	e = calloc(k + 1, sizeof(*e));
	if (!e) {
		free(s);
		return -ENOMEM;
	}
	for (unsigned i = 0; i < k && rc == 0; i++) {
		struct dp_journal_hdr h;
		char path[PATH_MAX];

		path_join(path, sizeof(path), dir, s[i].name);
		rc = dp_journal_read_hdr(path, &h, err);
		memcpy(e[i].name, s[i].name, sizeof(e[i].name));
		e[i].segment_no = h.segment_no;
		e[i].first_seq = h.first_seq;
		e[i].last_seq = h.first_seq - 1 +
				(s[i].size - DP_JOURNAL_HDR_LEN) / DP_JOURNAL_REC_LEN;
		e[i].open = i + 1 == k;
		*journal_id = h.journal_id;
	}
	free(s);
	if (rc) {
		free(e);
		return rc;
	}
	*out = e;
	*n = k;
	return 0;
}

static int
index_rebuild(const char *dir, struct dp_journal_err *err)
{
	struct index_ent *e;
	uint64_t id = 0;
	unsigned n;
	int rc = index_from_dir(dir, &e, &n, &id, err);

	if (rc)
		return rc;
	rc = n ? index_write(dir, e, n, id) : 0;
	free(e);
	if (rc)
		return jerr_io(err, dir, 0, "writing the index", -rc);
	return 0;
}

int
dp_journal_cut_tail(const char *dir, struct dp_journal_scan *res,
		    struct dp_journal_err *err)
{
	int fd, rc = 0;

	if (res->torn && res->torn_whole) {
		if (unlink(res->torn_path))
			return jerr_io(err, res->torn_path, 0, "unlink", errno);
	} else if (res->torn) {
		fd = open(res->torn_path, O_WRONLY | O_CLOEXEC);
		if (fd < 0)
			return jerr_io(err, res->torn_path, 0, "open", errno);
		if (ftruncate(fd, (off_t)res->torn_off) || fdatasync(fd))
			rc = jerr_io(err, res->torn_path, res->torn_off,
				     "truncate", errno);
		close(fd);
		if (rc)
			return rc;
	}
	if (res->torn && (rc = lim_fsync_dir(dir, NULL, 0)) != 0)
		return jerr_io(err, dir, 0, "fsync", -rc);
	if (res->torn || res->index_stale)
		rc = index_rebuild(dir, err);
	if (rc)
		return rc;
	res->torn = res->torn_whole = false;
	res->index_stale = false;
	return 0;
}

/* ------------------------------------------------------------------------ */
/* Writing                                                                    */

struct dp_journal {
	char dir[PATH_MAX];
	char path[PATH_MAX];       /* the active segment */
	int fd;
	uint64_t journal_id;
	uint64_t segment_no;
	uint64_t first_seq;        /* of the active segment */
	uint64_t next_seq;
	uint64_t off;              /* end of the active segment */
	uint32_t last_check;
	uint32_t batch_max;
	uint64_t segment_bytes;
	struct index_ent *ix;      /* every segment, the active one last */
	unsigned n_ix, cap_ix;
	int failed;                /* negative errno once failed */
	int inject_errno;
	char failure[PATH_MAX + 128];
};

__attribute__((format(printf, 3, 4))) static int
j_fail(struct dp_journal *j, int rc, const char *fmt, ...)
{
	char what[PATH_MAX + 64];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(what, sizeof(what), fmt, ap);
	va_end(ap);
	if (!j->failed) {
		j->failed = rc;
		snprintf(j->failure, sizeof(j->failure), "%s: %s", what,
			 strerror(-rc));
	}
	return rc;
}

static int
ix_push(struct dp_journal *j, uint64_t no, uint64_t first)
{
	if (j->n_ix == j->cap_ix) {
		unsigned cap = j->cap_ix ? j->cap_ix * 2 : 16;
		struct index_ent *e = realloc(j->ix, cap * sizeof(*e));

		if (!e)
			return -ENOMEM;
		j->ix = e;
		j->cap_ix = cap;
	}
	if (j->n_ix)
		j->ix[j->n_ix - 1].open = false;
	memset(&j->ix[j->n_ix], 0, sizeof(j->ix[0]));
	seg_name(j->ix[j->n_ix].name, sizeof(j->ix[0].name), first);
	j->ix[j->n_ix].segment_no = no;
	j->ix[j->n_ix].first_seq = first;
	j->ix[j->n_ix].open = true;
	j->n_ix++;
	return 0;
}

/* Create segment @p no starting at @p first: header durable, then index. */
static int
segment_create(struct dp_journal *j, uint64_t no, uint64_t first)
{
	struct dp_journal_hdr h;
	char name[SEG_NAME_LEN + 1];
	int rc;

	seg_name(name, sizeof(name), first);
	if (path_join(j->path, sizeof(j->path), j->dir, name))
		return j_fail(j, -ENAMETOOLONG, "%s/%s", j->dir, name);
	j->fd = open(j->path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
	if (j->fd < 0)
		return j_fail(j, -errno, "%s: create", j->path);
	hdr_make(&h, j->journal_id, first, no, j->last_check, j->batch_max);
	rc = lim_write_full(j->fd, &h, sizeof(h), 0, true);
	if (rc)
		return j_fail(j, rc, "%s: write header", j->path);
	if (fdatasync(j->fd))
		return j_fail(j, -errno, "%s: fdatasync", j->path);
	rc = lim_fsync_dir(j->dir, NULL, 0);
	if (rc)
		return j_fail(j, rc, "%s: fsync directory", j->dir);
	if (j->n_ix)
		j->ix[j->n_ix - 1].last_seq = first - 1;
	rc = ix_push(j, no, first);
	if (!rc)
		rc = index_write(j->dir, j->ix, j->n_ix, j->journal_id);
	if (rc)
		return j_fail(j, rc, "%s/" DP_JOURNAL_INDEX ": write", j->dir);
	j->segment_no = no;
	j->first_seq = first;
	j->off = DP_JOURNAL_HDR_LEN;
	return 0;
}

static int
rotate(struct dp_journal *j)
{
	if (fdatasync(j->fd))
		return j_fail(j, -errno, "%s: fdatasync", j->path);
	close(j->fd);
	j->fd = -1;
	return segment_create(j, j->segment_no + 1, j->next_seq);
}

/* Existing journal: reopen its last segment at the scanned end. */
static int
reopen(struct dp_journal *j, const struct dp_journal_scan *end, char *err,
       size_t errlen)
{
	struct dp_journal_err je;
	struct stat st;
	uint64_t id = 0;
	int rc;

	if (end->torn || end->index_stale) {
		snprintf(err, errlen, "%s: torn tail or stale index not repaired",
			 j->dir);
		return -EINVAL;
	}
	rc = index_from_dir(j->dir, &j->ix, &j->n_ix, &id, &je);
	if (rc) {
		snprintf(err, errlen, "%s", je.why);
		return rc;
	}
	j->cap_ix = j->n_ix + 1;
	snprintf(j->path, sizeof(j->path), "%s", end->last_path);
	j->fd = open(j->path, O_WRONLY | O_CLOEXEC);
	if (j->fd < 0 || fstat(j->fd, &st)) {
		snprintf(err, errlen, "%s: open: %s", j->path, strerror(errno));
		return -errno;
	}
	if ((uint64_t)st.st_size != end->end_off || id != end->journal_id) {
		snprintf(err, errlen, "%s: changed since it was scanned (size %lld, "
			 "scanned end %llu)", j->path, (long long)st.st_size,
			 (unsigned long long)end->end_off);
		return -ESTALE;
	}
	j->journal_id = end->journal_id;
	j->segment_no = end->last_segment_no;
	j->first_seq = end->last_first_seq;
	j->off = end->end_off;
	j->last_check = end->last_check;
	return 0;
}

static int
create_new(struct dp_journal *j, uint64_t next_seq, char *err, size_t errlen)
{
	int rc;

	if (mkdir(j->dir, 0755) && errno != EEXIST) {
		snprintf(err, errlen, "%s: mkdir: %s", j->dir, strerror(errno));
		return -errno;
	}
	do {
		if (getrandom(&j->journal_id, sizeof(j->journal_id), 0) !=
		    sizeof(j->journal_id)) {
			snprintf(err, errlen, "getrandom: %s", strerror(errno));
			return -EIO;
		}
	} while (j->journal_id == 0);
	rc = segment_create(j, 0, next_seq);
	if (rc)
		snprintf(err, errlen, "%s", j->failure);
	return rc;
}

int
dp_journal_open(const char *dir, const struct dp_journal_opts *o,
		const struct dp_journal_scan *end, uint64_t next_seq,
		struct dp_journal **out, char *err, size_t errlen)
{
	struct dp_journal *j = calloc(1, sizeof(*j));
	int rc;

	*out = NULL;
	if (!j)
		return -ENOMEM;
	j->fd = -1;
	snprintf(j->dir, sizeof(j->dir), "%s", dir);
	j->segment_bytes = o && o->segment_bytes ? o->segment_bytes
						 : DP_JOURNAL_SEGMENT_DEFAULT;
	j->batch_max = o && o->batch_max ? o->batch_max : DP_JOURNAL_BATCH_DEFAULT;
	if (j->batch_max > DP_JOURNAL_BATCH_MAX || next_seq == 0 ||
	    (end && end->n_segments && next_seq != end->last_seq + 1)) {
		snprintf(err, errlen, "%s: next seq %llu does not follow the "
			 "journal's last %llu", dir, (unsigned long long)next_seq,
			 (unsigned long long)(end ? end->last_seq : 0));
		free(j);
		return -EINVAL;
	}
	j->next_seq = next_seq;
	rc = end && end->n_segments ? reopen(j, end, err, errlen)
				    : create_new(j, next_seq, err, errlen);
	if (rc) {
		dp_journal_close(j);
		return rc;
	}
	*out = j;
	return 0;
}

int
dp_journal_append(struct dp_journal *j, struct lim_effect *recs, unsigned n)
{
	size_t bytes = (size_t)n * DP_JOURNAL_REC_LEN;
	int rc;

	if (j->failed)
		return -EIO;
	if (n == 0 || n > j->batch_max)
		return -EINVAL;
	for (unsigned i = 0; i < n; i++)
		if (recs[i].seq != j->next_seq + i)
			return -EINVAL;
	if (j->off > DP_JOURNAL_HDR_LEN && j->off + bytes > j->segment_bytes &&
	    (rc = rotate(j)) != 0)
		return rc;
	for (unsigned i = 0; i < n; i++)
		dp_journal_seal(&recs[i], j->journal_id);
	rc = lim_write_full(j->fd, recs, bytes, j->off, true);
	if (rc)
		return j_fail(j, rc, "%s: write of %u records at offset %llu",
			      j->path, n, (unsigned long long)j->off);
	j->off += bytes;
	j->next_seq += n;
	j->last_check = recs[n - 1].check;
	return 0;
}

int
dp_journal_sync(struct dp_journal *j)
{
	int inj = j->inject_errno;

	if (j->failed)
		return -EIO;
	if (inj) {
		j->inject_errno = 0;
		return j_fail(j, -inj, "%s: fdatasync (injected)", j->path);
	}
	if (fdatasync(j->fd))
		return j_fail(j, -errno, "%s: fdatasync", j->path);
	return 0;
}

uint64_t
dp_journal_next_seq(const struct dp_journal *j)
{
	return j->next_seq;
}

uint64_t
dp_journal_id(const struct dp_journal *j)
{
	return j->journal_id;
}

uint64_t
dp_journal_segments(const struct dp_journal *j)
{
	return j->n_ix;
}

const char *
dp_journal_failure(const struct dp_journal *j)
{
	return j->failure;
}

void
dp_journal_inject_sync_error(struct dp_journal *j, int errnum)
{
	j->inject_errno = errnum;
}

void
dp_journal_close(struct dp_journal *j)
{
	if (!j)
		return;
	if (j->fd >= 0)
		close(j->fd);
	free(j->ix);
	free(j);
}
