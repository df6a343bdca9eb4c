/*
 * snapshot_fmt.c - the snapshot file format (docs/snapshot-format.md): the
 * section types, the checks of a file's structure, `authdb info`
 * (lim_snapshot_inspect) and the fuzzers' reseal. The declarations shared
 * with snapshot_save.c and snapshot_load.c are in lim_pvt.h.
 *
 * File: a 128-byte header (magic, version, lengths, seq_start/seq_end, the
 * section table's checksum, its own checksum), a section table (type,
 * record size, count, offset, length, xxh3-64 of the payload per section),
 * then the sections, each at the next 64-byte boundary with zero padding
 * between them, the trailer last. Every byte of a valid file is covered by
 * a checksum or is padding that must be zero. Little-endian, records are the
 * in-memory structs of lim.h (their layout is pinned by the static asserts
 * below; a change of layout is a change of format version).
 *
 * Checks (lim_snap_check_file): first the header, then the section table
 * (bounds, no overlap, no gap but padding, sizes = count x record size,
 * known types, required sections), every checksum and the trailer; nothing
 * of a record is read here. A refusal names the byte offset and the reason.
 *
 * Concurrency: pure functions over a caller's buffer or a read-only
 * mapping; any thread.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <xxhash.h>

#include "lim_pvt.h"

_Static_assert(sizeof(struct lim_snap_header) == LIM_SNAP_HDR_LEN,
	       "header layout");
_Static_assert(offsetof(struct lim_snap_header, checksum) ==
		       LIM_SNAP_HDR_SUMMED,
	       "header checksum last");
_Static_assert(sizeof(struct lim_snap_section) == 48, "section entry layout");
_Static_assert(sizeof(struct lim_snap_group) == 96, "group record layout");
_Static_assert(sizeof(struct lim_snap_trailer) == 64, "trailer layout");
/* The records written as they are in memory: their layout is the format. */
_Static_assert(sizeof(struct lim_policy) == 304, "policy record layout");
_Static_assert(offsetof(struct lim_policy, tier) == 48, "policy layout");
_Static_assert(sizeof(struct lim_funder) == 16, "funder record layout");
_Static_assert(offsetof(struct lim_user, region) == 80, "user layout");
_Static_assert(offsetof(struct lim_user, lock) == 84, "user lock byte");
_Static_assert(sizeof(struct lim_merchant) == 12, "merchant record layout");
_Static_assert(offsetof(struct lim_op, state) == 71, "op layout");
_Static_assert(offsetof(struct lim_op, next) == 112, "op next field");
_Static_assert(offsetof(struct lim_op, last_seq) == 120, "op layout");
#if __BYTE_ORDER__ != __ORDER_LITTLE_ENDIAN__
#error "snapshots are little-endian and written as in memory"
#endif

const struct lim_snap_kind lim_snap_types[LIM_SNAP_TYPES] = {
	[LIM_SNAP_POLICY] = {"policy", sizeof(struct lim_policy), true},
	[LIM_SNAP_FUNDERS] = {"funders", sizeof(struct lim_funder), true},
	[LIM_SNAP_USERS] = {"users", sizeof(struct lim_user), true},
	[LIM_SNAP_USER_STAMPS] = {"user_stamps", sizeof(uint32_t), true},
	[LIM_SNAP_USER_EXT] = {"user_ext", sizeof(struct lim_user_ext), false},
	[LIM_SNAP_MERCHANTS] = {"merchants", sizeof(struct lim_merchant),
				false},
	[LIM_SNAP_GROUPS] = {"groups", sizeof(struct lim_snap_group), false},
	[LIM_SNAP_OPS] = {"ops", sizeof(struct lim_op), false},
	[LIM_SNAP_TRAILER] = {"trailer", sizeof(struct lim_snap_trailer), true},
};

const char *
lim_snap_type_name(uint32_t type)
{
	return type > 0 && type < LIM_SNAP_TYPES ? lim_snap_types[type].name
						 : "?";
}

int
lim_snap_vfail(struct lim_snap_in *in, uint64_t off, const char *fmt,
	       va_list ap)
{
	char msg[256];

	vsnprintf(msg, sizeof(msg), fmt, ap);
	if (in->err && in->errlen)
		snprintf(in->err, in->errlen, "%s: offset %llu: %s", in->name,
			 (unsigned long long)off, msg);
	return -EINVAL;
}

__attribute__((format(printf, 3, 4))) static int
bad(struct lim_snap_in *in, uint64_t off, const char *fmt, ...)
{
	va_list ap;
	int rc;

	va_start(ap, fmt);
	rc = lim_snap_vfail(in, off, fmt, ap);
	va_end(ap);
	return rc;
}

static bool
all_zero(const uint8_t *p, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (p[i])
			return false;
	return true;
}

static int
check_header(struct lim_snap_in *in)
{
	struct lim_snap_header *h = &in->h;

	if (in->len == 0)
		return bad(in, 0, "empty file, not a snapshot");
	if (memcmp(in->p, LIM_SNAP_MAGIC,
		   in->len < sizeof(h->magic) ? in->len : sizeof(h->magic)))
		return bad(in, 0, "not a snapshot (no AUTHSNAP magic)");
	if (in->len < LIM_SNAP_HDR_LEN)
		return bad(in, in->len, "truncated: the header needs %u bytes, "
			   "the file has %llu", LIM_SNAP_HDR_LEN,
			   (unsigned long long)in->len);
	memcpy(h, in->p, sizeof(*h));
	if (h->version != LIM_SNAP_VERSION)
		return bad(in, offsetof(struct lim_snap_header, version),
			   "unsupported format version %u (this build reads %u)",
			   h->version, LIM_SNAP_VERSION);
	if (h->header_len != LIM_SNAP_HDR_LEN)
		return bad(in, offsetof(struct lim_snap_header, header_len),
			   "header length %u, expected %u", h->header_len,
			   LIM_SNAP_HDR_LEN);
	if (XXH3_64bits(in->p, LIM_SNAP_HDR_SUMMED) != h->checksum)
		return bad(in, LIM_SNAP_HDR_SUMMED, "header checksum mismatch");
	if (!all_zero(h->reserved, sizeof(h->reserved)))
		return bad(in, offsetof(struct lim_snap_header, reserved),
			   "reserved header bytes are not zero");
	if (h->file_bytes != in->len)
		return bad(in, in->len < h->file_bytes ? in->len : h->file_bytes,
			   "%s: the file has %llu bytes, the header says %llu",
			   in->len < h->file_bytes ? "truncated" : "extended",
			   (unsigned long long)in->len,
			   (unsigned long long)h->file_bytes);
	if (h->n_sections == 0 || h->n_sections > LIM_SNAP_SECTIONS_MAX)
		return bad(in, offsetof(struct lim_snap_header, n_sections),
			   "section count %u out of range 1..%u",
			   h->n_sections, LIM_SNAP_SECTIONS_MAX);
	if (h->shards == 0 || h->shards > LIM_SHARDS_MAX)
		return bad(in, offsetof(struct lim_snap_header, shards),
			   "shard count %u out of range 1..%u", h->shards,
			   LIM_SHARDS_MAX);
	if (h->seq_end < h->seq_start)
		return bad(in, offsetof(struct lim_snap_header, seq_end),
			   "seq_end %llu before seq_start %llu",
			   (unsigned long long)h->seq_end,
			   (unsigned long long)h->seq_start);
	return 0;
}

static int
check_entry(struct lim_snap_in *in, unsigned i, uint64_t expect_off)
{
	const struct lim_snap_section *s = &in->sec[i];
	uint64_t at = LIM_SNAP_HDR_LEN + (uint64_t)i * sizeof(*s), len;

	if (s->type == 0 || s->type >= LIM_SNAP_TYPES)
		return bad(in, at, "section %u: unknown type %u", i, s->type);
	if (in->by_type[s->type])
		return bad(in, at, "section %u: second '%s' section", i,
			   lim_snap_type_name(s->type));
	in->by_type[s->type] = s;
	if (s->record_size != lim_snap_types[s->type].record_size)
		return bad(in, at + 4, "section '%s': record size %u, expected %u",
			   lim_snap_type_name(s->type), s->record_size,
			   lim_snap_types[s->type].record_size);
	if (__builtin_mul_overflow(s->count, (uint64_t)s->record_size, &len) ||
	    len != s->length)
		return bad(in, at + 8, "section '%s': length %llu is not %llu "
			   "records of %u bytes", lim_snap_type_name(s->type),
			   (unsigned long long)s->length,
			   (unsigned long long)s->count, s->record_size);
	if (s->offset != expect_off)
		return bad(in, at + 16, "section '%s' at offset %llu, expected "
			   "%llu (sections follow each other, 64-byte aligned)",
			   lim_snap_type_name(s->type),
			   (unsigned long long)s->offset,
			   (unsigned long long)expect_off);
	if (s->offset > in->len || s->length > in->len - s->offset)
		return bad(in, at + 16, "section '%s' [%llu, +%llu) ends past the "
			   "end of the file (%llu bytes)",
			   lim_snap_type_name(s->type),
			   (unsigned long long)s->offset,
			   (unsigned long long)s->length,
			   (unsigned long long)in->len);
	if (s->reserved != 0)
		return bad(in, at + 40, "section '%s': reserved field not zero",
			   lim_snap_type_name(s->type));
	return 0;
}

static int
check_table(struct lim_snap_in *in)
{
	uint64_t tlen = (uint64_t)in->h.n_sections *
			sizeof(struct lim_snap_section);
	uint64_t off;
	int rc;

	if (LIM_SNAP_HDR_LEN + tlen > in->len)
		return bad(in, in->len, "truncated: the section table needs "
			   "%llu bytes",
			   (unsigned long long)(LIM_SNAP_HDR_LEN + tlen));
	if (XXH3_64bits(in->p + LIM_SNAP_HDR_LEN, tlen) != in->h.table_checksum)
		return bad(in, LIM_SNAP_HDR_LEN, "section table checksum mismatch");
	in->n = in->h.n_sections;
	memcpy(in->sec, in->p + LIM_SNAP_HDR_LEN, tlen);
	off = LIM_SNAP_HDR_LEN + tlen;
	for (unsigned i = 0; i < in->n; i++) {
		uint64_t start = lim_snap_align_up(off);

		if (start > in->len)
			return bad(in, in->len, "truncated before section %u", i);
		if (!all_zero(in->p + off, start - off))
			return bad(in, off, "padding before section %u is not "
				   "zero", i);
		rc = check_entry(in, i, start);
		if (rc)
			return rc;
		off = in->sec[i].offset + in->sec[i].length;
	}
	if (in->sec[in->n - 1].type != LIM_SNAP_TRAILER)
		return bad(in, LIM_SNAP_HDR_LEN, "the last section is '%s', not the "
			   "trailer",
			   lim_snap_type_name(in->sec[in->n - 1].type));
	if (off != in->len)
		return bad(in, off, "%llu bytes after the trailer",
			   (unsigned long long)(in->len - off));
	for (unsigned t = 1; t < LIM_SNAP_TYPES; t++)
		if (lim_snap_types[t].required && !in->by_type[t])
			return bad(in, LIM_SNAP_HDR_LEN, "no '%s' section",
				   lim_snap_types[t].name);
	return 0;
}

static int
check_sums(struct lim_snap_in *in)
{
	for (unsigned i = 0; i < in->n; i++) {
		const struct lim_snap_section *s = &in->sec[i];

		if (XXH3_64bits(in->p + s->offset, s->length) != s->checksum)
			return bad(in, s->offset, "section '%s' checksum mismatch",
				   lim_snap_type_name(s->type));
	}
	return 0;
}

static int
check_trailer(struct lim_snap_in *in)
{
	const struct lim_snap_section *s = in->by_type[LIM_SNAP_TRAILER];
	const struct lim_snap_section *ops = in->by_type[LIM_SNAP_OPS];
	struct lim_snap_trailer t;

	if (s->count != 1)
		return bad(in, s->offset, "%llu trailer records, expected 1",
			   (unsigned long long)s->count);
	memcpy(&t, in->p + s->offset, sizeof(t));
	if (memcmp(t.magic, LIM_SNAP_TRAILER_MAGIC, sizeof(t.magic)) != 0 ||
	    t.seq_start != in->h.seq_start || t.seq_end != in->h.seq_end ||
	    t.users != in->by_type[LIM_SNAP_USERS]->count ||
	    t.ops != (ops ? ops->count : 0) || t.file_bytes != in->len ||
	    t.reserved[0] || t.reserved[1])
		return bad(in, s->offset, "trailer does not match the header "
			   "and the section table");
	return 0;
}

int
lim_snap_check_file(struct lim_snap_in *in)
{
	int rc = check_header(in);

	if (!rc)
		rc = check_table(in);
	if (!rc)
		rc = check_sums(in);
	if (!rc)
		rc = check_trailer(in);
	return rc;
}

int
lim_snap_map(const char *path, const uint8_t **p, size_t *len, char *err,
	     size_t errlen)
{
	struct stat st;
	int fd = open(path, O_RDONLY | O_CLOEXEC), rc = 0;

	*p = NULL;
	*len = 0;
	if (fd < 0 || fstat(fd, &st) != 0) {
		rc = -errno;
		snprintf(err, errlen, "%s: open: %s", path, strerror(errno));
		goto out;
	}
	if (!S_ISREG(st.st_mode)) {
		rc = -EINVAL;
		snprintf(err, errlen, "%s: not a regular file", path);
		goto out;
	}
	*len = (size_t)st.st_size;
	if (*len == 0)
		goto out;
	*p = mmap(NULL, *len, PROT_READ, MAP_PRIVATE | MAP_POPULATE, fd, 0);
	if (*p == MAP_FAILED) {
		rc = -errno;
		*p = NULL;
		snprintf(err, errlen, "%s: mmap: %s", path, strerror(errno));
		goto out;
	}
	(void)madvise((void *)*p, *len, MADV_SEQUENTIAL);
out:
	if (fd >= 0)
		close(fd);
	return rc;
}

int
lim_snapshot_inspect(const char *path, struct lim_snapshot_info *info,
		     char *err, size_t errlen)
{
	struct lim_snap_in in = {.name = path, .err = err, .errlen = errlen};
	const uint8_t *p;
	size_t len;
	int rc;

	rc = lim_snap_map(path, &p, &len, err, errlen);
	if (rc)
		return rc;
	in.p = p;
	in.len = len;
	rc = lim_snap_check_file(&in);
	if (!rc) {
		memset(info, 0, sizeof(*info));
		info->version = in.h.version;
		info->header_len = in.h.header_len;
		info->created_s = in.h.created_s;
		info->seq_start = in.h.seq_start;
		info->seq_end = in.h.seq_end;
		info->file_bytes = in.len;
		info->shards = in.h.shards;
		info->n_sections = in.n;
		for (unsigned i = 0; i < in.n; i++) {
			struct lim_snapshot_section *s = &info->sec[i];

			s->type = in.sec[i].type;
			s->record_size = in.sec[i].record_size;
			s->count = in.sec[i].count;
			s->offset = in.sec[i].offset;
			s->length = in.sec[i].length;
			s->checksum = in.sec[i].checksum;
			s->name = lim_snap_type_name(s->type);
		}
	}
	if (p)
		munmap((void *)p, len);
	return rc;
}

void
lim_snapshot_reseal(void *buf, size_t len)
{
	uint8_t *p = buf;
	struct lim_snap_header h;
	uint64_t tlen;

	if (len < LIM_SNAP_HDR_LEN)
		return;
	memcpy(&h, p, sizeof(h));
	if (h.n_sections <= LIM_SNAP_SECTIONS_MAX) {
		tlen = (uint64_t)h.n_sections * sizeof(struct lim_snap_section);
		if (LIM_SNAP_HDR_LEN + tlen <= len) {
			for (unsigned i = 0; i < h.n_sections; i++) {
				struct lim_snap_section s;
				uint8_t *at = p + LIM_SNAP_HDR_LEN +
					      i * sizeof(s);

				memcpy(&s, at, sizeof(s));
				if (s.offset <= len && s.length <= len - s.offset) {
					s.checksum = XXH3_64bits(p + s.offset,
								 s.length);
					memcpy(at, &s, sizeof(s));
				}
			}
			h.table_checksum = XXH3_64bits(p + LIM_SNAP_HDR_LEN,
						       tlen);
		}
	}
	h.checksum = XXH3_64bits(&h, LIM_SNAP_HDR_SUMMED);
	memcpy(p, &h, sizeof(h));
}
