/*
 * keys.c - the gateways' keys: an immutable keyring and its loader.
 *
 * Design note. A keyring is one allocation: the gateways sorted by id (so
 * auth_keyring_at() lists them in a stable order) followed by an
 * open-addressing index of 4-byte slots (0 = empty, else position + 1) at a
 * load of at most 1/2, so auth_keyring_find() reads one index line and the
 * gateway it returns, with a probe sequence bounded by the table size.
 * Fibonacci hashing of the id spreads consecutive ids.
 *
 * Invariants, checked by auth_keyring_create(): gateway ids are unique; a
 * gateway has 1 or 2 keys (rotation) with distinct ids; at most
 * AUTH_SOURCES_MAX source ranges, each a prefix mask with the address's
 * host bits cleared (so a match is one AND and one compare).
 *
 * Concurrency: a keyring never changes after create, so any number of
 * threads may read it without synchronisation; the control plane replaces
 * the whole keyring (RCU) and frees the old one after a grace period.
 *
 * Key material is wiped (sodium_memzero) from the keyring on free and from
 * every buffer the loader owns: the file contents, the growing gateway
 * array, and inih's line buffer (wiped by the reader at end of file).
 */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdarg.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <ini.h>
#include <sodium.h>

#include "auth_pvt.h"

#define AUTH_GATEWAYS_MAX (1u << 20)
#define AUTH_KEYFILE_MAX (16u << 20) /* bytes */

struct auth_keyring {
	size_t bytes;        /* of this allocation, for the wipe on free */
	unsigned n;
	uint32_t mask;       /* index slots - 1 */
	unsigned shift;      /* 32 - log2(index slots) */
	uint32_t *slot;      /* 0 empty, else gws position + 1 */
	struct auth_gateway gws[];
};

static inline uint32_t
auth_kr_hash(uint32_t gateway_id, unsigned shift)
{
	return (gateway_id * 0x9E3779B1u) >> shift;
}

/* ------------------------------------------------------------------------ */
/* Keyring                                                                    */

static bool
auth_gateway_valid(const struct auth_gateway *gw)
{
	if (gw->n_keys < 1 || gw->n_keys > AUTH_KEYS_PER_GATEWAY)
		return false;
	if (gw->n_keys == 2 && gw->keys[0].key_id == gw->keys[1].key_id)
		return false;
	if (gw->n_sources > AUTH_SOURCES_MAX)
		return false;
	for (unsigned i = 0; i < gw->n_sources; i++) {
		uint32_t host = ~gw->source_mask[i];

		if (host & (host + 1)) /* not a prefix mask */
			return false;
	}
	return true;
}

static int
auth_gateway_cmp(const void *a, const void *b)
{
	uint32_t x = ((const struct auth_gateway *)a)->gateway_id;
	uint32_t y = ((const struct auth_gateway *)b)->gateway_id;

	return (x > y) - (x < y);
}

static void
auth_kr_index(struct auth_keyring *kr)
{
	for (unsigned i = 0; i < kr->n; i++) {
		uint32_t h = auth_kr_hash(kr->gws[i].gateway_id, kr->shift);

		while (kr->slot[h] != 0)
			h = (h + 1) & kr->mask;
		kr->slot[h] = i + 1;
	}
}

struct auth_keyring *
auth_keyring_create(const struct auth_gateway *gws, unsigned n)
{
	struct auth_keyring *kr;
	unsigned bits = 1;
	size_t gw_bytes, bytes;

	if (n > AUTH_GATEWAYS_MAX || (n > 0 && !gws)) {
		errno = EINVAL;
		return NULL;
	}
	for (unsigned i = 0; i < n; i++) {
		if (!auth_gateway_valid(&gws[i])) {
			errno = EINVAL;
			return NULL;
		}
	}
	while ((1u << bits) < 2 * n)
		bits++;
	gw_bytes = sizeof(*kr) + (size_t)n * sizeof(gws[0]);
	bytes = gw_bytes + ((size_t)1 << bits) * sizeof(uint32_t);
	kr = calloc(1, bytes);
	if (!kr)
		return NULL;
	kr->bytes = bytes;
	kr->n = n;
	kr->mask = (1u << bits) - 1;
	kr->shift = 32 - bits;
	kr->slot = (uint32_t *)((uint8_t *)kr + gw_bytes);
	if (n > 0)
		memcpy(kr->gws, gws, (size_t)n * sizeof(gws[0]));
	qsort(kr->gws, n, sizeof(kr->gws[0]), auth_gateway_cmp);
	for (unsigned i = 0; i < n; i++) {
		struct auth_gateway *gw = &kr->gws[i];

		if (i > 0 && gw->gateway_id == gw[-1].gateway_id) {
			auth_keyring_free(kr);
			errno = EINVAL;
			return NULL;
		}
		for (unsigned s = 0; s < gw->n_sources; s++)
			gw->source_ip[s] &= gw->source_mask[s];
	}
	auth_kr_index(kr);
	return kr;
}

void
auth_keyring_free(struct auth_keyring *kr)
{
	if (!kr)
		return;
	sodium_memzero(kr, kr->bytes);
	free(kr);
}

unsigned
auth_keyring_count(const struct auth_keyring *kr)
{
	return kr->n;
}

const struct auth_gateway *
auth_keyring_at(const struct auth_keyring *kr, unsigned i)
{
	return i < kr->n ? &kr->gws[i] : NULL;
}

const struct auth_gateway *
auth_keyring_find(const struct auth_keyring *kr, uint32_t gateway_id)
{
	uint32_t h = auth_kr_hash(gateway_id, kr->shift);

	/* Load <= 1/2: an empty slot ends every probe; the bound is a guard. */
	for (uint32_t probe = 0; probe <= kr->mask; probe++) {
		uint32_t s = kr->slot[h];

		if (s == 0)
			return NULL;
		if (kr->gws[s - 1].gateway_id == gateway_id)
			return &kr->gws[s - 1];
		h = (h + 1) & kr->mask;
	}
	return NULL;
}

/* ------------------------------------------------------------------------ */
/* Loader: INI through libinih, fed line by line by our own reader so that   */
/* we know each line's number and see section headers (inih reports a        */
/* section only with its first name = value, so an empty one would be lost).  */

struct auth_kload {
	const char *path;
	const char *text;          /* the file, owned; wiped when done */
	size_t len;
	size_t pos;
	unsigned lineno;           /* of the line the reader returned last */
	struct auth_gateway *gws;  /* owned; wiped when done */
	unsigned *gw_line;         /* line of each gateway's section */
	unsigned n;
	unsigned cap;
	bool in_gw;                /* gws[n - 1] is the open section */
	unsigned err_line;         /* of the first error; 0 = file level */
	bool failed;
	char *err;
	size_t errlen;
};

__attribute__((format(printf, 3, 4))) static void
auth_kl_fail(struct auth_kload *st, unsigned line, const char *fmt, ...)
{
	char msg[256];
	va_list ap;

	if (st->failed)
		return; /* the first error is the one worth reading */
	st->failed = true;
	st->err_line = line;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	if (!st->err || st->errlen == 0)
		return;
	if (line)
		snprintf(st->err, st->errlen, "%s:%u: %s", st->path, line, msg);
	else
		snprintf(st->err, st->errlen, "%s: %s", st->path, msg);
}

/* A whole number (lim.h, "Text") of at most UINT32_MAX in s[0, len). */
static bool
auth_parse_u32(const char *s, size_t len, uint32_t *out)
{
	uint64_t v;

	if (lim_parse_u64_span(s, len, UINT32_MAX, &v))
		return false;
	*out = (uint32_t)v;
	return true;
}

static const char *
auth_skip_blank(const char *s)
{
	while (*s == ' ' || *s == '\t')
		s++;
	return s;
}

/* Close the open section: a gateway must have at least one key. */
static void
auth_kl_end_section(struct auth_kload *st)
{
	if (!st->in_gw)
		return;
	st->in_gw = false;
	if (st->gws[st->n - 1].n_keys == 0)
		auth_kl_fail(st, st->gw_line[st->n - 1],
			     "[gateway %u]: no key (expected key.<id> = 32 hex "
			     "digits)",
			     st->gws[st->n - 1].gateway_id);
}

/* Room for one more gateway; the old array is wiped, never just freed. */
static bool
auth_kl_grow(struct auth_kload *st)
{
	unsigned cap = st->cap ? 2 * st->cap : 16;
	struct auth_gateway *gws;
	unsigned *lines;

	if (st->n < st->cap)
		return true;
	if (cap > AUTH_GATEWAYS_MAX)
		return false;
	gws = calloc(cap, sizeof(*gws));
	lines = calloc(cap, sizeof(*lines));
	if (!gws || !lines) {
		free(gws);
		free(lines);
		return false;
	}
	if (st->n) {
		memcpy(gws, st->gws, st->n * sizeof(*gws));
		memcpy(lines, st->gw_line, st->n * sizeof(*lines));
		sodium_memzero(st->gws, st->cap * sizeof(*gws));
	}
	free(st->gws);
	free(st->gw_line);
	st->gws = gws;
	st->gw_line = lines;
	st->cap = cap;
	return true;
}

/* A "[...]" line: open a [gateway N] section (blanks around words are ok). */
static void
auth_kl_section(struct auth_kload *st, const char *line)
{
	const char *end = strchr(line, ']');
	const char *word = auth_skip_blank(line + 1), *id = NULL;
	uint32_t gateway_id;
	size_t idlen;

	auth_kl_end_section(st);
	if (end && strncmp(word, "gateway", 7) == 0)
		id = auth_skip_blank(word + 7); /* "gateway" then blanks */
	if (!id || id == word + 7 || id > end) {
		auth_kl_fail(st, st->lineno, "expected a [gateway N] section");
		return;
	}
	idlen = (size_t)(end - id);
	while (idlen > 0 && (id[idlen - 1] == ' ' || id[idlen - 1] == '\t'))
		idlen--;
	if (!auth_parse_u32(id, idlen, &gateway_id)) {
		auth_kl_fail(st, st->lineno,
			     "[gateway N]: N must be a decimal number below "
			     "2^32");
		return;
	}
	if (!auth_kl_grow(st)) {
		auth_kl_fail(st, st->lineno, "too many gateways or no memory");
		return;
	}
	memset(&st->gws[st->n], 0, sizeof(st->gws[0]));
	st->gws[st->n].gateway_id = gateway_id;
	st->gw_line[st->n] = st->lineno;
	st->n++;
	st->in_gw = true;
}

/*
 * inih's reader: one line of the file into @p str (inih's line buffer). A
 * line too long for it is an error, and its rest is skipped so that line
 * numbers stay right. At end of file, wipe inih's buffer: it held key lines.
 */
static char *
auth_kl_read(char *str, int num, void *stream)
{
	struct auth_kload *st = stream;
	size_t max = (size_t)num - 1, n = 0;
	const char *line;

	if (st->pos >= st->len) {
		sodium_memzero(str, (size_t)num);
		return NULL;
	}
	while (st->pos < st->len && n < max) {
		char c = st->text[st->pos++];

		str[n++] = c;
		if (c == '\n')
			break;
	}
	str[n] = '\0';
	st->lineno++;
	if (n == max && str[n - 1] != '\n' && st->pos < st->len) {
		auth_kl_fail(st, st->lineno, "line longer than %zu characters",
			     max - 1);
		while (st->pos < st->len && st->text[st->pos++] != '\n')
			;
	}
	line = auth_skip_blank(str);
	if (*line == '[')
		auth_kl_section(st, line);
	return str;
}

/* "key.<id> = <32 hex digits>": a key of the open gateway. */
static void
auth_kl_key(struct auth_kload *st, struct auth_gateway *gw, const char *name,
	    const char *value)
{
	const char *id_txt = name + 4;
	size_t bin_len = 0;
	struct auth_key *k;
	uint32_t key_id;

	if (!auth_parse_u32(id_txt, strlen(id_txt), &key_id)) {
		auth_kl_fail(st, st->lineno,
			     "%s: key id must be a decimal number", name);
		return;
	}
	for (unsigned i = 0; i < gw->n_keys; i++) {
		if (gw->keys[i].key_id == key_id) {
			auth_kl_fail(st, st->lineno,
				     "key.%u: duplicate key id in [gateway %u]",
				     key_id, gw->gateway_id);
			return;
		}
	}
	if (gw->n_keys == AUTH_KEYS_PER_GATEWAY) {
		auth_kl_fail(st, st->lineno,
			     "key.%u: more than %d keys in [gateway %u]",
			     key_id, AUTH_KEYS_PER_GATEWAY, gw->gateway_id);
		return;
	}
	k = &gw->keys[gw->n_keys];
	/* Decoded straight into the gateway: no temporary copy to wipe. */
	if (strlen(value) != 2 * AUTH_KEY_LEN ||
	    sodium_hex2bin(k->key, AUTH_KEY_LEN, value, strlen(value), NULL,
			   &bin_len, NULL) != 0 ||
	    bin_len != AUTH_KEY_LEN) {
		sodium_memzero(k, sizeof(*k));
		auth_kl_fail(st, st->lineno, "key.%u: expected %d hex digits",
			     key_id, 2 * AUTH_KEY_LEN);
		return;
	}
	k->key_id = key_id;
	gw->n_keys++;
}

/* One "a.b.c.d[/p]" of an allow list into ip/mask (host order). */
static bool
auth_parse_cidr(const char *s, size_t len, uint32_t *ip, uint32_t *mask)
{
	char addr[INET_ADDRSTRLEN];
	const char *slash = memchr(s, '/', len);
	size_t alen = slash ? (size_t)(slash - s) : len;
	uint32_t prefix = 32;
	struct in_addr a;

	if (alen == 0 || alen >= sizeof(addr))
		return false;
	memcpy(addr, s, alen);
	addr[alen] = '\0';
	if (inet_pton(AF_INET, addr, &a) != 1)
		return false;
	if (slash && (!auth_parse_u32(slash + 1, len - alen - 1, &prefix) ||
		      prefix > 32))
		return false;
	*ip = ntohl(a.s_addr);
	*mask = prefix ? ~0u << (32 - prefix) : 0;
	return true;
}

/* "allow = cidr, cidr, ...": append to the open gateway's source ranges. */
static void
auth_kl_allow(struct auth_kload *st, struct auth_gateway *gw,
	      const char *value)
{
	const char *p = value;

	for (;;) {
		const char *tok = auth_skip_blank(p), *comma = strchr(tok, ',');
		size_t len = comma ? (size_t)(comma - tok) : strlen(tok);
		uint32_t ip, mask;

		while (len > 0 && (tok[len - 1] == ' ' || tok[len - 1] == '\t'))
			len--;
		if (gw->n_sources == AUTH_SOURCES_MAX) {
			auth_kl_fail(st, st->lineno,
				     "allow: more than %d source ranges in "
				     "[gateway %u]",
				     AUTH_SOURCES_MAX, gw->gateway_id);
			return;
		}
		if (!auth_parse_cidr(tok, len, &ip, &mask)) {
			auth_kl_fail(st, st->lineno,
				     "allow: '%.*s' is not an IPv4 address or "
				     "a.b.c.d/prefix",
				     (int)len, tok);
			return;
		}
		if (ip & ~mask) {
			auth_kl_fail(st, st->lineno,
				     "allow: '%.*s' has host bits set",
				     (int)len, tok);
			return;
		}
		gw->source_ip[gw->n_sources] = ip;
		gw->source_mask[gw->n_sources] = mask;
		gw->n_sources++;
		if (!comma)
			return;
		p = comma + 1;
	}
}

/* inih's handler. Always 1: errors are ours, inih's return is syntax only. */
static int
auth_kl_handler(void *user, const char *section, const char *name,
		const char *value)
{
	struct auth_kload *st = user;
	struct auth_gateway *gw;

	if (st->failed)
		return 1;
	if (!st->in_gw) {
		auth_kl_fail(st, st->lineno,
			     "%s: outside a [gateway N] section", name);
		return 1;
	}
	gw = &st->gws[st->n - 1];
	if (strcmp(name, "allow") == 0)
		auth_kl_allow(st, gw, value);
	else if (strncmp(name, "key.", 4) == 0)
		auth_kl_key(st, gw, name, value);
	else
		auth_kl_fail(st, st->lineno,
			     "%s: unknown setting (expected key.<id> or allow)",
			     name);
	return 1;
}

/* Open, check the mode, read it all into st->text. 0 or -errno. */
static int
auth_kl_slurp(struct auth_kload *st)
{
	struct stat sb;
	size_t got = 0;
	char *text;
	int fd;

	fd = open(st->path, O_RDONLY | O_CLOEXEC | O_NOCTTY);
	if (fd < 0) {
		int e = errno;

		auth_kl_fail(st, 0, "%s", strerror(e));
		return -e;
	}
	/* fstat on the open file: no window between the check and the read. */
	if (fstat(fd, &sb) != 0 || !S_ISREG(sb.st_mode) ||
	    sb.st_size > AUTH_KEYFILE_MAX) {
		auth_kl_fail(st, 0, "not a regular file of at most %u bytes",
			     AUTH_KEYFILE_MAX);
		close(fd);
		return -EINVAL;
	}
	if (sb.st_mode & 077) {
		auth_kl_fail(st, 0,
			     "mode %04o gives group or others access to the "
			     "keys; run chmod 600 %s",
			     (unsigned)(sb.st_mode & 07777), st->path);
		close(fd);
		return -EPERM;
	}
	text = malloc((size_t)sb.st_size + 1);
	if (!text) {
		close(fd);
		auth_kl_fail(st, 0, "out of memory");
		return -ENOMEM;
	}
	while (got < (size_t)sb.st_size) {
		ssize_t r = read(fd, text + got, (size_t)sb.st_size - got);

		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0)
			break;
		got += (size_t)r;
	}
	close(fd);
	st->text = text;
	st->len = got;
	return 0;
}

static int
auth_line_cmp(const void *a, const void *b)
{
	const uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;

	return (x > y) - (x < y);
}

/* Duplicate gateways: sort (id, line) pairs, report the later line. */
static void
auth_kl_dups(struct auth_kload *st)
{
	uint64_t *pairs = calloc(st->n, sizeof(*pairs));

	if (!pairs) {
		auth_kl_fail(st, 0, "out of memory");
		return;
	}
	for (unsigned i = 0; i < st->n; i++) {
		pairs[i] = (uint64_t)st->gws[i].gateway_id << 32;
		pairs[i] |= st->gw_line[i];
	}
	qsort(pairs, st->n, sizeof(*pairs), auth_line_cmp);
	for (unsigned i = 1; i < st->n; i++) {
		if (pairs[i] >> 32 == pairs[i - 1] >> 32) {
			unsigned id = (unsigned)(pairs[i] >> 32);

			auth_kl_fail(st, (unsigned)pairs[i],
				     "[gateway %u]: duplicate gateway (first "
				     "at line %u)",
				     id, (unsigned)pairs[i - 1]);
			break;
		}
	}
	free(pairs);
}

static void
auth_kl_cleanup(struct auth_kload *st)
{
	if (st->gws)
		sodium_memzero(st->gws, st->cap * sizeof(st->gws[0]));
	free(st->gws);
	free(st->gw_line);
	if (st->text)
		sodium_memzero((void *)st->text, st->len);
	free((void *)st->text);
}

struct auth_keyring *
auth_keyring_load(const char *path, char *err, size_t errlen)
{
	struct auth_kload st = {.path = path, .err = err, .errlen = errlen};
	struct auth_keyring *kr = NULL;
	int rc;

	if (err && errlen)
		err[0] = '\0';
	if (auth_kl_slurp(&st) != 0)
		goto out;
	rc = ini_parse_stream(auth_kl_read, &st, auth_kl_handler, &st);
	auth_kl_end_section(&st);
	if (rc < 0)
		auth_kl_fail(&st, 0, "inih could not parse (error %d)", rc);
	/* inih's syntax errors and ours: the earlier line is the one to fix. */
	if (rc > 0 && (!st.failed || (unsigned)rc < st.err_line)) {
		st.failed = false;
		auth_kl_fail(&st, (unsigned)rc,
			     "syntax error (expected [gateway N], name = value "
			     "or a ; comment)");
	}
	if (!st.failed && st.n == 0)
		auth_kl_fail(&st, 0, "no [gateway N] section");
	if (!st.failed)
		auth_kl_dups(&st);
	if (st.failed)
		goto out;
	kr = auth_keyring_create(st.gws, st.n);
	if (!kr)
		auth_kl_fail(&st, 0, "cannot build the keyring: %s",
			     strerror(errno));
out:
	auth_kl_cleanup(&st);
	return kr;
}
