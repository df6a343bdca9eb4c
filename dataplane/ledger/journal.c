/*
 * journal.c - the ledger journal's format on disk (docs/journal-format.md):
 * record checks, kind and error names, segment names and listing, segment
 * headers, and the segment index. The reader is journal_scan.c, the writer
 * journal_write.c; what the three share is in journal_pvt.h.
 *
 * Owns the format's invariants: records are 128 bytes, sealed with check =
 * xxh3(first 124 bytes, seed journal_id ^ seq), in strictly increasing
 * contiguous seq order across segments; segment i+1 starts at segment i's
 * last seq + 1, carries the check of segment i's last record and the next
 * segment number; every segment has the journal's id; a segment's file
 * name is its first seq. The index (journal.idx, text with a checksum)
 * lists the segments, so the loss of a whole segment at the end shows; it
 * is rewritten atomically (lim_file_replace) and can be rebuilt from the
 * segments.
 *
 * Concurrency: pure functions and file reads; the index is written only by
 * the journal's one writer or by a repair before the writer opens it.
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
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <xxhash.h>

#include "journal_pvt.h"

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

/* ------------------------------------------------------------------------ */
/* Errors                                                                     */

int
jnl_err(struct dp_journal_err *e, enum dp_journal_err_kind kind,
	const char *path, uint64_t off, const char *fmt, ...)
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

int
jnl_err_io(struct dp_journal_err *e, const char *path, uint64_t off,
	   const char *what, int errnum)
{
	if (e)
		e->sys_errno = errnum;
	return jnl_err(e, DP_JOURNAL_E_IO, path, off, "%s: %s", what,
		       strerror(errnum));
}

/* ------------------------------------------------------------------------ */
/* Files                                                                      */

int
jnl_seg_name(char *buf, size_t n, uint64_t first_seq)
{
	return snprintf(buf, n, JNL_SEG_PREFIX "%020" PRIu64 JNL_SEG_SUFFIX,
			first_seq);
}

int
dp_journal_seg_parse(const char *name, uint64_t *first)
{
	size_t len = strlen(name);

	if (strncmp(name, JNL_SEG_PREFIX, 4) || len < 8 ||
	    strcmp(name + len - 4, JNL_SEG_SUFFIX))
		return 0;
	if (len != JNL_SEG_NAME_LEN ||
	    lim_parse_u64_span(name + 4, 20, UINT64_MAX, first))
		return -1;
	return 1;
}

int
jnl_path_join(char *out, size_t n, const char *dir, const char *name)
{
	int k = snprintf(out, n, "%s/%s", dir, name);

	return k < 0 || (size_t)k >= n ? -ENAMETOOLONG : 0;
}

int
jnl_pread_full(int fd, void *buf, size_t n, uint64_t off)
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

static int
seg_cmp(const void *a, const void *b)
{
	const struct jnl_seg *x = a, *y = b;

	return x->first_seq < y->first_seq ? -1 : x->first_seq > y->first_seq;
}

/* The segments of @p dir sorted by first seq; *out is malloc'd. */
int
jnl_list_segments(const char *dir, struct jnl_seg **out, unsigned *n,
		  struct dp_journal_err *err)
{
	DIR *d = opendir(dir);
	struct jnl_seg *v = NULL;
	unsigned cap = 0, k = 0;
	struct dirent *de;
	int rc = 0;

	*out = NULL;
	*n = 0;
	if (!d)
		return errno == ENOENT
			       ? -ENOENT
			       : jnl_err_io(err, dir, 0, "opendir", errno);
	while ((de = readdir(d)) != NULL && rc == 0) {
		char path[PATH_MAX];
		struct stat st;
		uint64_t first;
		int p = dp_journal_seg_parse(de->d_name, &first);

		if (p == 0)
			continue;
		if (p < 0) {
			rc = jnl_err(err, DP_JOURNAL_E_NAME, de->d_name, 0,
				     "not a segment name "
				     "(seg-<20 digits>.jnl)");
			break;
		}
		if (jnl_path_join(path, sizeof(path), dir, de->d_name) ||
		    stat(path, &st)) {
			rc = jnl_err_io(err, de->d_name, 0, "stat", errno);
			break;
		}
		if (k == cap) {
			struct jnl_seg *nv;

			cap = cap ? cap * 2 : 16;
			if (cap > DP_JOURNAL_SEGMENTS_MAX ||
			    !(nv = realloc(v, cap * sizeof(*v)))) {
				rc = jnl_err_io(err, dir, 0, "too many segments",
						ENOMEM);
				break;
			}
			v = nv;
		}
		v[k].first_seq = first;
		v[k].size = (uint64_t)st.st_size;
		memcpy(v[k].name, de->d_name, JNL_SEG_NAME_LEN + 1); /* checked */
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
int
jnl_hdr_check(const struct dp_journal_hdr *h, const char *path,
	      struct dp_journal_err *err)
{
	if (memcmp(h->magic, DP_JOURNAL_MAGIC, 8))
		return jnl_err(err, DP_JOURNAL_E_BAD_HEADER, path, 0,
			       "magic is not " DP_JOURNAL_MAGIC);
	if (hdr_sum(h) != h->checksum)
		return jnl_err(err, DP_JOURNAL_E_BAD_HEADER, path,
			       DP_JOURNAL_HDR_SUMMED,
			       "header checksum does not verify");
	if (h->version != DP_JOURNAL_VERSION)
		return jnl_err(err, DP_JOURNAL_E_BAD_HEADER, path, 8,
			       "version %u, this build reads %u", h->version,
			       DP_JOURNAL_VERSION);
	if (h->header_len != DP_JOURNAL_HDR_LEN ||
	    h->record_len != DP_JOURNAL_REC_LEN)
		return jnl_err(err, DP_JOURNAL_E_BAD_HEADER, path, 12,
			       "header %u / record %u bytes, expected 128 / 128",
			       h->header_len, h->record_len);
	if (h->batch_max == 0 || h->batch_max > DP_JOURNAL_BATCH_MAX)
		return jnl_err(err, DP_JOURNAL_E_BAD_HEADER, path, 20,
			       "batch_max %u out of range", h->batch_max);
	if (h->journal_id == 0 || h->first_seq == 0 ||
	    h->prev_last_seq != h->first_seq - 1)
		return jnl_err(err, DP_JOURNAL_E_BAD_HEADER, path, 24,
			       "journal id, first seq or previous seq invalid");
	if (h->reserved0 || !all_zero(h->reserved, sizeof(h->reserved)))
		return jnl_err(err, DP_JOURNAL_E_BAD_HEADER, path, 68,
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
		return jnl_err_io(err, path, 0, "open", errno);
	rc = jnl_pread_full(fd, h, sizeof(*h), 0);
	close(fd);
	if (rc == -ENODATA)
		return jnl_err(err, DP_JOURNAL_E_BAD_HEADER, path, 0,
			       "shorter than a header");
	if (rc)
		return jnl_err_io(err, path, 0, "read", -rc);
	return jnl_hdr_check(h, path, err);
}

void
jnl_hdr_make(struct dp_journal_hdr *h, uint64_t journal_id,
	     uint64_t first_seq, uint64_t segment_no, uint32_t prev_check,
	     uint32_t batch_max)
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

static int
index_text(const struct jnl_index_ent *e, unsigned n, uint64_t journal_id,
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
int
jnl_index_write(const char *dir, const struct jnl_index_ent *e, unsigned n,
		uint64_t journal_id)
{
	char path[PATH_MAX];
	size_t len;
	char *text;
	int rc;

	if (jnl_path_join(path, sizeof(path), dir, DP_JOURNAL_INDEX))
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
index_parse_line(const char *line, struct jnl_index_ent *e)
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
	if (strchr(f[3], ' ') || strlen(f[0]) != JNL_SEG_NAME_LEN ||
	    lim_parse_u64(f[1], UINT64_MAX, &e->segment_no) ||
	    lim_parse_u64(f[2], UINT64_MAX, &e->first_seq))
		return -1;
	memcpy(e->name, f[0], JNL_SEG_NAME_LEN + 1);
	e->open = !strcmp(f[3], "-");
	if (!e->open && lim_parse_u64(f[3], UINT64_MAX, &e->last_seq))
		return -1;
	return 0;
}

void
jnl_index_free(struct jnl_index *ix)
{
	free(ix->e);
	memset(ix, 0, sizeof(*ix));
}

/* Read and verify the index; absent is not an error (ix->present false). */
int
jnl_index_read(const char *dir, struct jnl_index *ix,
	       struct dp_journal_err *err)
{
	char path[PATH_MAX], *text = NULL, *p, *nl;
	unsigned long long sum, id;
	struct stat st;
	size_t body;
	int fd, rc = 0;

	memset(ix, 0, sizeof(*ix));
	if (jnl_path_join(path, sizeof(path), dir, DP_JOURNAL_INDEX))
		return -ENAMETOOLONG;
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return errno == ENOENT ? 0
				       : jnl_err_io(err, path, 0, "open", errno);
	if (fstat(fd, &st) || st.st_size > (64 << 20) ||
	    !(text = malloc((size_t)st.st_size + 1)) ||
	    jnl_pread_full(fd, text, (size_t)st.st_size, 0)) {
		close(fd);
		free(text);
		return jnl_err_io(err, path, 0, "read", errno ? errno : EIO);
	}
	close(fd);
	text[st.st_size] = 0;
	p = strstr(text, "checksum ");
	if (!p || sscanf(p, "checksum %llx", &sum) != 1 ||
	    XXH3_64bits(text, (size_t)(p - text)) != sum) {
		free(text);
		return jnl_err(err, DP_JOURNAL_E_INDEX, path, 0,
			       "index checksum missing or wrong");
	}
	body = (size_t)(p - text);
	text[body] = 0;
	if (strncmp(text, INDEX_MAGIC "\n", strlen(INDEX_MAGIC) + 1) ||
	    sscanf(text + strlen(INDEX_MAGIC) + 1, "journal_id %llx", &id) != 1) {
		free(text);
		return jnl_err(err, DP_JOURNAL_E_INDEX, path, 0,
			       "not an index");
	}
	ix->present = true;
	ix->journal_id = id;
	p = strchr(text + strlen(INDEX_MAGIC) + 1, '\n');
	for (p = p ? p + 1 : text + body; *p && rc == 0; p = nl + 1) {
		struct jnl_index_ent *ne;

		nl = strchr(p, '\n');
		if (!nl)
			break;
		*nl = 0;
		ne = realloc(ix->e, (ix->n + 1) * sizeof(*ix->e));
		if (!ne) {
			rc = jnl_err_io(err, path, 0, "index", ENOMEM);
			break;
		}
		ix->e = ne;
		if (index_parse_line(p, &ix->e[ix->n]))
			rc = jnl_err(err, DP_JOURNAL_E_INDEX, path,
				     (uint64_t)(p - text), "bad line '%s'", p);
		ix->n++;
	}
	free(text);
	if (rc)
		jnl_index_free(ix);
	return rc;
}

/* The index entries of the segments of @p dir, the newest open. */
int
jnl_index_from_dir(const char *dir, struct jnl_index_ent **out, unsigned *n,
		   uint64_t *journal_id, struct dp_journal_err *err)
{
	struct jnl_seg *s;
	struct jnl_index_ent *e;
	unsigned k;
	int rc = jnl_list_segments(dir, &s, &k, err);

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

		jnl_path_join(path, sizeof(path), dir, s[i].name);
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

int
jnl_index_rebuild(const char *dir, struct dp_journal_err *err)
{
	struct jnl_index_ent *e;
	uint64_t id = 0;
	unsigned n;
	int rc = jnl_index_from_dir(dir, &e, &n, &id, err);

	if (rc)
		return rc;
	rc = n ? jnl_index_write(dir, e, n, id) : 0;
	free(e);
	if (rc)
		return jnl_err_io(err, dir, 0, "writing the index", -rc);
	return 0;
}
