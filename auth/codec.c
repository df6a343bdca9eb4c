/*
 * codec.c - the wire codec of protocol v1 (shared/docs/protocol.md): header
 * checks, authentication, record validation and the in-place answer.
 *
 * Design note. A datagram is validated where it lies: struct auth_dgram
 * points into the caller's buffer, nothing is copied and nothing allocated.
 * auth_dgram_parse() checks, in this order and stopping at the first
 * failure: length, magic, version, type, count, length against count,
 * gateway, key id, source address, tag, replay window. The order is part of
 * the contract: cheap and unauthenticated checks first, and the replay
 * window last, so that only an authentic datagram can move a window (a
 * forged seq must never make the real one look replayed).
 *
 * The header's common case is one 32-bit compare (magic, version and type
 * are adjacent), a range check on the count and a compare of the length;
 * the cause of a drop is worked out only on the slow path.
 *
 * The tag is SipHash-2-4-128 (libsodium crypto_shorthash_siphashx24) over
 * every byte before it, compared with crypto_verify_16 so that timing does
 * not reveal how many leading bytes of a forged tag were right.
 *
 * Concurrency: every function is pure over its arguments except the replay
 * check (auth/replay.c, safe from any thread); the keyring is immutable.
 * Host byte order must be little-endian (asserted in auth_pvt.h): the wire
 * structs are read and written in place.
 */
#include <string.h>

#include <sodium.h>

#include "auth_pvt.h"

_Static_assert(crypto_shorthash_siphashx24_BYTES == AUTH_TAG_LEN, "tag size");
_Static_assert(crypto_shorthash_siphashx24_KEYBYTES == AUTH_KEY_LEN,
	       "key size");

/* magic, version and type as the first 4 bytes read little-endian. */
#define AUTH_HDR_WORD(type)                                                    \
	((uint32_t)AUTH_MAGIC | (uint32_t)AUTH_VERSION << 16 |                 \
	 (uint32_t)(type) << 24)

/* Why a header that failed the fast check failed, in the documented order. */
static enum auth_drop
auth_hdr_cause(const uint8_t *buf, uint8_t type)
{
	uint16_t magic, count;

	memcpy(&magic, buf, sizeof(magic));
	memcpy(&count, buf + 4, sizeof(count));
	if (magic != AUTH_MAGIC)
		return AUTH_DROP_MAGIC;
	if (buf[2] != AUTH_VERSION)
		return AUTH_DROP_VERSION;
	if (buf[3] != type)
		return AUTH_DROP_TYPE;
	if (count < 1 || count > AUTH_RECORDS_MAX)
		return AUTH_DROP_COUNT;
	return AUTH_DROP_LENGTH;
}

/*
 * Header checks for a datagram of @p type. Reads through memcpy so that any
 * buffer alignment is fine here; the compiler emits plain loads.
 */
static inline enum auth_drop
auth_hdr_check(const uint8_t *buf, uint32_t len, uint8_t type)
{
	uint32_t word;
	uint16_t count;
	bool ok;

	if (len < AUTH_DGRAM_MIN)
		return AUTH_DROP_SHORT;
	memcpy(&word, buf, sizeof(word));
	memcpy(&count, buf + 4, sizeof(count));
	/* Non-short-circuit '&': one branch for the whole header. */
	ok = (word == AUTH_HDR_WORD(type)) &
	     ((unsigned)count - 1u < AUTH_RECORDS_MAX) &
	     (len == AUTH_DGRAM_LEN((uint32_t)count));
	if (__builtin_expect(ok, 1))
		return AUTH_DROP_NONE;
	return auth_hdr_cause(buf, type);
}

enum auth_drop
auth_dgram_check_header(const uint8_t *buf, uint32_t len)
{
	return auth_hdr_check(buf, len, AUTH_TYPE_REQUEST);
}

void
auth_tag(const uint8_t *buf, uint32_t len, const uint8_t key[AUTH_KEY_LEN],
	 uint8_t tag[AUTH_TAG_LEN])
{
	crypto_shorthash_siphashx24(tag, buf, len, key);
}

/* Whether the last AUTH_TAG_LEN bytes of buf[0..len) tag the rest. */
static bool
auth_tag_ok(const uint8_t *buf, uint32_t len, const uint8_t key[AUTH_KEY_LEN])
{
	uint8_t tag[AUTH_TAG_LEN];
	uint32_t body = len - AUTH_TAG_LEN;

	auth_tag(buf, body, key, tag);
	return crypto_verify_16(tag, buf + body) == 0;
}

static const struct auth_key *
auth_gateway_key(const struct auth_gateway *gw, uint32_t key_id)
{
	AUTH_ASSERT(gw->n_keys >= 1 && gw->n_keys <= AUTH_KEYS_PER_GATEWAY);
	for (unsigned i = 0; i < gw->n_keys; i++)
		if (gw->keys[i].key_id == key_id)
			return &gw->keys[i];
	return NULL;
}

enum auth_drop
auth_dgram_parse(uint8_t *buf, uint32_t len, const struct auth_keyring *kr,
		 struct auth_replay *rp, uint32_t src_ip, struct auth_dgram *d)
{
	const struct auth_gateway *gw;
	const struct auth_key *key;
	struct auth_hdr *h = (struct auth_hdr *)buf;
	enum auth_drop drop;

	AUTH_ASSERT(buf && kr && d);
	AUTH_ASSERT(((uintptr_t)buf & 1) == 0);
	drop = auth_hdr_check(buf, len, AUTH_TYPE_REQUEST);
	if (drop != AUTH_DROP_NONE)
		return drop;
	gw = auth_keyring_find(kr, h->gateway_id);
	if (!gw)
		return AUTH_DROP_GATEWAY;
	key = auth_gateway_key(gw, h->key_id);
	if (!key)
		return AUTH_DROP_KEY;
	if (!auth_gateway_allows(gw, src_ip))
		return AUTH_DROP_SOURCE;
	if (!auth_tag_ok(buf, len, key->key))
		return AUTH_DROP_TAG;
	if (rp) {
		drop = auth_replay_check(rp, h->gateway_id, h->stream, h->seq);
		if (drop != AUTH_DROP_NONE)
			return drop;
	}
	d->hdr = h;
	d->rec = (struct auth_req *)(buf + AUTH_HDR_LEN);
	d->count = h->count;
	d->key = key;
	return AUTH_DROP_NONE;
}

/*
 * Record rules (protocol.md "Record errors"); a record breaking any of them
 * is answered status ERROR, reason MALFORMED, and the other records of the
 * datagram are decided normally:
 *
 *   1. op is 1..5 (authorize, capture, void, refund, repay);
 *   2. product is 1..3 (pay later, installment, cash loan);
 *   3. channel is 1..3 (online, in-store QR, in-app);
 *   4. request_id != 0;
 *   5. user_id != 0;
 *   6. reserved0 == 0 and reserved1 == 0;
 *   7. amount >= 0;
 *   8. amount > 0, except for void, where 0 means "the whole hold";
 *   9. merchant_id != 0, except for repay;
 *  10. ref_id != 0 for capture, void and refund (it names the authorization);
 *  11. ref_id == 0 for authorize and repay.
 *
 * Not checked here: terms. An installment whose terms are not 3, 6 or 12, or
 * another product with terms != 0, is a business decline (TERM_INVALID) made
 * by auth_decide(), not a format error. Nor are group_id, mcc, region and
 * device_id: every value is well-formed.
 */
enum auth_reason
auth_req_check(const struct auth_req *r)
{
	unsigned op = r->op;
	bool has_ref = op == LIM_OP_CAPTURE || op == LIM_OP_VOID ||
		       op == LIM_OP_REFUND;
	bool bad;

	/* Unsigned wrap makes 0 fail the range checks too. */
	bad = (op - 1u >= 5u) | ((unsigned)r->product - 1u >= 3u) |
	      ((unsigned)r->channel - 1u >= 3u);
	bad |= (r->request_id == 0) | (r->user_id == 0);
	bad |= (r->reserved0 | r->reserved1) != 0;
	bad |= (r->amount < 0) | (r->amount == 0 && op != LIM_OP_VOID);
	bad |= r->merchant_id == 0 && op != LIM_OP_REPAY;
	bad |= has_ref != (r->ref_id != 0);
	return bad ? AUTH_REASON_MALFORMED : AUTH_REASON_APPROVED;
}

uint32_t
auth_dgram_finish(struct auth_dgram *d)
{
	uint8_t *buf = (uint8_t *)d->hdr;
	uint32_t len = AUTH_DGRAM_LEN(d->count);

	AUTH_ASSERT(d->key && d->count >= 1 && d->count <= AUTH_RECORDS_MAX);
	AUTH_ASSERT(d->hdr->count == d->count);
	AUTH_ASSERT((uint8_t *)d->rec == buf + AUTH_HDR_LEN);
	d->hdr->type = AUTH_TYPE_RESPONSE;
	auth_tag(buf, len - AUTH_TAG_LEN, d->key->key,
		 buf + len - AUTH_TAG_LEN);
	return len;
}

uint32_t
auth_dgram_build(uint8_t *buf, uint32_t cap, const struct auth_hdr *h,
		 const struct auth_req *recs, unsigned n,
		 const uint8_t key[AUTH_KEY_LEN])
{
	struct auth_hdr hdr = *h;
	uint32_t len;

	if (n < 1 || n > AUTH_RECORDS_MAX)
		return 0;
	len = AUTH_DGRAM_LEN(n);
	if (cap < len)
		return 0;
	hdr.magic = AUTH_MAGIC;
	hdr.version = AUTH_VERSION;
	hdr.type = AUTH_TYPE_REQUEST;
	hdr.count = (uint16_t)n;
	/* memmove: a caller may build over the records it passes. */
	memmove(buf + AUTH_HDR_LEN, recs, (size_t)n * AUTH_REC_LEN);
	memcpy(buf, &hdr, sizeof(hdr));
	auth_tag(buf, len - AUTH_TAG_LEN, key, buf + len - AUTH_TAG_LEN);
	return len;
}

enum auth_drop
auth_resp_verify(const uint8_t *buf, uint32_t len,
		 const uint8_t key[AUTH_KEY_LEN])
{
	enum auth_drop drop = auth_hdr_check(buf, len, AUTH_TYPE_RESPONSE);

	if (drop != AUTH_DROP_NONE)
		return drop;
	return auth_tag_ok(buf, len, key) ? AUTH_DROP_NONE : AUTH_DROP_TAG;
}
