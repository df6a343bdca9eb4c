/*
 * fuzz_dgram.c - libFuzzer harness for the wire codec and the replay window.
 *
 * Each input goes down four paths, each with an oracle, not just "no crash":
 *  1. parse as received: a drop at the header level must match
 *     auth_dgram_check_header(); an accepted datagram is answered (records
 *     checked, responses written, finish) and the answer must verify with
 *     the key that verified the request, echo the header, and stop verifying
 *     when any one bit of it changes;
 *  2. parse after re-tagging with the right key (what a gateway holding the
 *     key could send): a datagram with a good header from a known gateway,
 *     key and source must then be accepted, so the fuzzer reaches the
 *     records and the answer path without forging SipHash;
 *  3. build a datagram from the input (header fields and up to 16 records),
 *     parse it back: accepted, header fields and records unchanged;
 *  4. replay: the input as (stream, seq step) operations on a fresh 2-stream
 *     window table, compared with an exact model of the window rules.
 *
 * The keyring is fixed; tests/fuzz/mkseeds_dgram.py writes seeds tagged with
 * the same keys.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "auth.h"

#define FUZZ_CHECK(cond)                                                       \
	do {                                                                   \
		if (!(cond)) {                                                 \
			fprintf(stderr, "%s:%d: check failed: %s\n", __FILE__, \
				__LINE__, #cond);                              \
			abort();                                               \
		}                                                              \
	} while (0)

#define SRC_IP 0x0a000009u /* 10.0.0.9, allowed for gateway 43 */

static const uint8_t key42_7[AUTH_KEY_LEN] = "fuzz-key-gw42-k7";
static const uint8_t key42_8[AUTH_KEY_LEN] = "fuzz-key-gw42-k8";
static const uint8_t key43_1[AUTH_KEY_LEN] = "fuzz-key-gw43-k1";

static struct auth_keyring *kr;

static void
fuzz_init(void)
{
	struct auth_gateway gws[2] = {
		{.gateway_id = 42, .n_keys = 2},
		{.gateway_id = 43, .n_keys = 1, .n_sources = 1},
	};

	gws[0].keys[0].key_id = 7;
	memcpy(gws[0].keys[0].key, key42_7, AUTH_KEY_LEN);
	gws[0].keys[1].key_id = 8;
	memcpy(gws[0].keys[1].key, key42_8, AUTH_KEY_LEN);
	gws[1].keys[0].key_id = 1;
	memcpy(gws[1].keys[0].key, key43_1, AUTH_KEY_LEN);
	gws[1].source_ip[0] = 0x0a000000u;
	gws[1].source_mask[0] = 0xffffff00u;
	kr = auth_keyring_create(gws, 2);
	FUZZ_CHECK(kr);
}

/* The key a gateway holding it would tag with, or NULL. */
static const struct auth_key *
fuzz_key(uint32_t gateway_id, uint32_t key_id)
{
	const struct auth_gateway *gw = auth_keyring_find(kr, gateway_id);

	for (unsigned i = 0; gw && i < gw->n_keys; i++)
		if (gw->keys[i].key_id == key_id)
			return &gw->keys[i];
	return NULL;
}

/* Answer a parsed datagram the way the dataplane does, and check it. */
static void
fuzz_answer(struct auth_dgram *d, unsigned flip)
{
	struct auth_hdr before = *d->hdr;
	uint8_t *buf = (uint8_t *)d->hdr;
	uint32_t len;

	for (unsigned i = 0; i < d->count; i++) {
		struct auth_req q = d->rec[i];
		enum auth_reason why = auth_req_check(&q);
		struct auth_resp r = {
			.request_id = q.request_id,
			.user_id = q.user_id,
			.op = q.op,
			.status = why == AUTH_REASON_APPROVED
					  ? AUTH_STATUS_APPROVED
					  : AUTH_STATUS_ERROR,
			.reason = (uint8_t)why,
			.self_cap_left = -1,
		};

		FUZZ_CHECK(why == AUTH_REASON_APPROVED ||
			   why == AUTH_REASON_MALFORMED);
		memcpy(&d->rec[i], &r, sizeof(r));
	}
	len = auth_dgram_finish(d);
	FUZZ_CHECK(len == AUTH_DGRAM_LEN(d->count));
	FUZZ_CHECK(auth_resp_verify(buf, len, d->key->key) == AUTH_DROP_NONE);
	before.type = AUTH_TYPE_RESPONSE;
	FUZZ_CHECK(memcmp(&before, buf, sizeof(before)) == 0);
	/* Any one flipped bit breaks the answer. */
	flip %= len * 8;
	buf[flip / 8] ^= (uint8_t)(1u << (flip % 8));
	FUZZ_CHECK(auth_resp_verify(buf, len, d->key->key) != AUTH_DROP_NONE);
	buf[flip / 8] ^= (uint8_t)(1u << (flip % 8));
}

/* Path 1: as received. */
static void
fuzz_raw(uint8_t *buf, const uint8_t *data, uint32_t n)
{
	enum auth_drop hdr = auth_dgram_check_header(data, n), drop;
	struct auth_dgram d;

	memcpy(buf, data, n);
	drop = auth_dgram_parse(buf, n, kr, NULL, SRC_IP, &d);
	FUZZ_CHECK(drop < AUTH_DROPS);
	FUZZ_CHECK(hdr == AUTH_DROP_NONE ? drop != AUTH_DROP_SHORT
					 : drop == hdr);
	if (drop == AUTH_DROP_NONE)
		fuzz_answer(&d, n > 0 ? data[0] * 131u + data[n - 1] : 0);
}

/* Path 2: re-tagged by a holder of the key. */
static void
fuzz_retagged(uint8_t *buf, const uint8_t *data, uint32_t n)
{
	const struct auth_hdr *h = (const struct auth_hdr *)buf;
	const struct auth_key *key;
	struct auth_dgram d;
	enum auth_drop drop;

	if (n < AUTH_DGRAM_MIN)
		return;
	memcpy(buf, data, n);
	key = fuzz_key(h->gateway_id, h->key_id);
	if (!key)
		return;
	auth_tag(buf, n - AUTH_TAG_LEN, key->key, buf + n - AUTH_TAG_LEN);
	drop = auth_dgram_parse(buf, n, kr, NULL, SRC_IP, &d);
	FUZZ_CHECK(drop == auth_dgram_check_header(buf, n));
	if (drop != AUTH_DROP_NONE)
		return;
	FUZZ_CHECK(d.key == key && d.count == h->count);
	fuzz_answer(&d, n * 7u);
}

/* Path 3: built from the input, parsed back unchanged. */
static void
fuzz_build(uint8_t *buf, const uint8_t *data, uint32_t n)
{
	struct auth_req recs[AUTH_RECORDS_MAX] = {{0}};
	struct auth_hdr h = {0};
	const struct auth_key *key;
	struct auth_dgram d;
	unsigned count;
	uint32_t len;

	memcpy(&h, data, n < sizeof(h) ? n : sizeof(h));
	data += n < sizeof(h) ? n : sizeof(h);
	n -= n < sizeof(h) ? n : sizeof(h);
	count = n / AUTH_REC_LEN + (n % AUTH_REC_LEN != 0);
	count = count < 1 ? 1 : count > AUTH_RECORDS_MAX ? AUTH_RECORDS_MAX
							  : count;
	memcpy(recs, data, n < sizeof(recs) ? n : sizeof(recs));
	/* Steer to a known gateway and key so that parse must accept. */
	h.gateway_id = 42 + (h.gateway_id & 1);
	h.key_id = h.gateway_id == 43 ? 1 : 7 + (h.key_id & 1);
	key = fuzz_key(h.gateway_id, h.key_id);
	FUZZ_CHECK(key);
	len = auth_dgram_build(buf, AUTH_DGRAM_MAX, &h, recs, count, key->key);
	FUZZ_CHECK(len == AUTH_DGRAM_LEN(count));
	FUZZ_CHECK(auth_dgram_parse(buf, len, kr, NULL, SRC_IP, &d) ==
		   AUTH_DROP_NONE);
	FUZZ_CHECK(d.count == count && d.key == key);
	FUZZ_CHECK(d.hdr->stream == h.stream && d.hdr->seq == h.seq &&
		   d.hdr->sent_ns == h.sent_ns &&
		   d.hdr->gateway_id == h.gateway_id);
	FUZZ_CHECK(memcmp(d.rec, recs, count * sizeof(recs[0])) == 0);
	fuzz_answer(&d, len + count);
}

/* Path 4: the replay window against an exact model. */
#define FUZZ_OPS 256

struct fuzz_stream {
	bool started;
	uint64_t top;
	uint64_t accepted[FUZZ_OPS];
	unsigned n;
};

static enum auth_drop
fuzz_model(struct fuzz_stream *m, unsigned *streams, uint64_t seq)
{
	if (!m->started) {
		if (*streams == 2)
			return AUTH_DROP_STREAMS;
		(*streams)++;
		m->started = true;
		m->top = seq;
	} else if (seq > m->top) {
		m->top = seq;
	} else if (m->top - seq >= AUTH_REPLAY_WINDOW) {
		return AUTH_DROP_STALE;
	} else {
		for (unsigned i = 0; i < m->n; i++)
			if (m->accepted[i] == seq)
				return AUTH_DROP_REPLAY;
	}
	m->accepted[m->n++] = seq;
	return AUTH_DROP_NONE;
}

static void
fuzz_replay(const uint8_t *data, uint32_t n)
{
	static struct fuzz_stream model[4];
	struct auth_replay *rp = auth_replay_create(2);
	uint64_t cursor[4] = {5000, 1, 0, UINT64_MAX - 3000};
	unsigned streams = 0;

	FUZZ_CHECK(rp);
	memset(model, 0, sizeof(model));
	for (uint32_t i = 0; i + 3 <= n && i / 3 < FUZZ_OPS; i += 3) {
		unsigned s = data[i] & 3;
		/* Steps of -2048..2047, scaled up now and then: big jumps. */
		int64_t step = (data[i + 1] | data[i + 2] << 8) & 0xfff;
		uint64_t seq;

		step -= 2048;
		if (data[i] & 0x80)
			step *= 1 << (data[i] >> 4 & 7);
		cursor[s] += (uint64_t)step;
		seq = cursor[s];
		FUZZ_CHECK(auth_replay_check(rp, 9, (uint16_t)s, seq) ==
			   fuzz_model(&model[s], &streams, seq));
	}
	auth_replay_free(rp);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static uint8_t buf[AUTH_DGRAM_MAX + AUTH_REC_LEN]
		__attribute__((aligned(64)));
	uint32_t n = size < sizeof(buf) ? (uint32_t)size : sizeof(buf);

	if (!kr)
		fuzz_init();
	fuzz_raw(buf, data, n);
	fuzz_retagged(buf, data, n);
	fuzz_build(buf, data, n);
	fuzz_replay(data, n);
	return 0;
}
