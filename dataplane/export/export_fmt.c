/*
 * export_fmt.c - what the export shares with its readers, without NATS or
 * a thread: the state names, the subject of each record kind and the
 * checks of subject and stream names (options.c checks --export-subject
 * and --export-stream with them), and <journal>/export.pos, the position
 * file (docs/export.md; export.h).
 *
 * export.pos is text with a checksum, written atomically and durably
 * (lim_file_replace); a damaged one is refused, never half read.
 *
 * Concurrency: pure functions and file I/O; the position file is written
 * only by the export worker (export.c).
 */
#include <errno.h>
#include <inttypes.h>
#include <limits.h>
#include <stdio.h>
#include <string.h>

#include <xxhash.h>

#include "export.h"
#include "journal.h"

static const char *const state_names[DP_EXPORT_STATES] = {
#define DP_EXPORT_STATE_NAME(code, name) name,
	DP_EXPORT_FOREACH_STATE(DP_EXPORT_STATE_NAME)
#undef DP_EXPORT_STATE_NAME
};

const char *
dp_export_state_name(enum dp_export_state s)
{
	return (unsigned)s < DP_EXPORT_STATES ? state_names[s] : "?";
}

/* ------------------------------------------------------------------------ */
/* Names                                                                      */

int
dp_export_subject(char *buf, size_t n, const char *subject, unsigned kind)
{
	const char *k = dp_journal_kind_name(kind);
	int len;

	if (kind == 0 || kind >= LIM_EFF_KINDS)
		return -EINVAL;
	len = snprintf(buf, n, "%s.%s", subject, k);
	if (len < 0 || (size_t)len >= n)
		return -ENAMETOOLONG;
	for (char *p = buf + strlen(subject) + 1; *p; p++)
		if (*p >= 'A' && *p <= 'Z')
			*p = (char)(*p - 'A' + 'a');
	return 0;
}

static bool
name_char(char c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
	       (c >= '0' && c <= '9') || c == '_' || c == '-';
}

int
dp_export_subject_check(const char *s, char *err, size_t n)
{
	size_t len = strlen(s);
	bool tok = false;

	if (!len || len > DP_EXPORT_SUBJECT_MAX - 16) {
		snprintf(err, n, "subject '%s': 1..%u characters", s,
			 DP_EXPORT_SUBJECT_MAX - 16);
		return -EINVAL;
	}
	for (const char *p = s; *p; p++) {
		if (*p == '.' && tok) {
			tok = false;
			continue;
		}
		if (!name_char(*p)) {
			snprintf(err, n, "subject '%s': tokens of letters, digits,"
				 " '_' and '-' separated by single dots (no "
				 "wildcards)", s);
			return -EINVAL;
		}
		tok = true;
	}
	if (!tok) {
		snprintf(err, n, "subject '%s' ends with a dot", s);
		return -EINVAL;
	}
	return 0;
}

int
dp_export_stream_check(const char *s, char *err, size_t n)
{
	size_t len = strlen(s);

	for (const char *p = s; *p; p++)
		if (!name_char(*p))
			len = 0;
	if (!len || len >= DP_EXPORT_STREAM_MAX) {
		snprintf(err, n, "stream name '%s': 1..%u letters, digits, '_' "
			 "or '-'", s, DP_EXPORT_STREAM_MAX - 1);
		return -EINVAL;
	}
	return 0;
}

/* ------------------------------------------------------------------------ */
/* export.pos                                                                 */

#define POS_MAGIC "authd export position v1"

static int
pos_text(char *buf, size_t n, const struct dp_export_pos *p)
{
	int k = snprintf(buf, n,
			 POS_MAGIC "\njournal_id %016" PRIx64 "\nstream %s\n"
			 "acked_seq %" PRIu64 "\nstream_seq %" PRIu64 "\n",
			 p->journal_id, p->stream, p->acked_seq, p->stream_seq);

	if (k < 0 || (size_t)k >= n)
		return -ENAMETOOLONG;
	k += snprintf(buf + k, n - (size_t)k, "checksum %016" PRIx64 "\n",
		      (uint64_t)XXH3_64bits(buf, (size_t)k));
	return (size_t)k >= n ? -ENAMETOOLONG : k;
}

int
dp_export_pos_load(const char *dir, struct dp_export_pos *p, char *err,
		   size_t n)
{
	char path[PATH_MAX], text[512], *c;
	uint64_t sum;
	size_t len;
	FILE *f;

	memset(p, 0, sizeof(*p));
	if (snprintf(path, sizeof(path), "%s/" DP_EXPORT_POS_FILE, dir) >=
	    (int)sizeof(path))
		return -ENAMETOOLONG;
	f = fopen(path, "r");
	if (!f) {
		snprintf(err, n, "%s: %s", path, strerror(errno));
		return -errno;
	}
	len = fread(text, 1, sizeof(text) - 1, f);
	fclose(f);
	text[len] = 0;
	c = strstr(text, "checksum ");
	if (!c || sscanf(c, "checksum %" SCNx64, &sum) != 1 ||
	    sum != XXH3_64bits(text, (size_t)(c - text)) ||
	    sscanf(text, POS_MAGIC "\njournal_id %" SCNx64 "\nstream %63s\n"
		   "acked_seq %" SCNu64 "\nstream_seq %" SCNu64, &p->journal_id,
		   p->stream, &p->acked_seq, &p->stream_seq) != 4) {
		snprintf(err, n, "%s: damaged (checksum or syntax)", path);
		return -EBADMSG;
	}
	return 0;
}

int
dp_export_pos_save(const char *dir, const struct dp_export_pos *p, char *err,
		   size_t n)
{
	char path[PATH_MAX], text[512];
	int len = pos_text(text, sizeof(text), p);

	if (len < 0 ||
	    snprintf(path, sizeof(path), "%s/" DP_EXPORT_POS_FILE, dir) >=
		    (int)sizeof(path)) {
		snprintf(err, n, "%s/" DP_EXPORT_POS_FILE ": path too long", dir);
		return -ENAMETOOLONG;
	}
	return lim_file_replace(path, text, (size_t)len, 0644, err, n);
}
