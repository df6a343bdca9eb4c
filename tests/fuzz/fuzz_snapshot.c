/*
 * fuzz_snapshot.c - libFuzzer harness for the snapshot loader.
 *
 * Input: one flags byte, then a snapshot image. Flag bit 0 recomputes every
 * checksum first (lim_snapshot_reseal()), so mutations reach the record
 * checks instead of stopping at a checksum mismatch. The loader must refuse
 * or accept without a crash, leak or undefined behaviour; a refusal must
 * say where ("fuzz.snap: offset N: ..."), an accepted file must hold what
 * its sections say.
 *
 * Seeds (corpus/snapshot): the flags byte followed by files saved by
 * test_snapshot (AUTHD_WRITE_SEEDS) and authdb gen.
 */
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <urcu-qsbr.h>

#include "lim_pvt.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static bool registered;
	const struct lim_db_config extra = {.ops_max = 4096};
	struct lim_snapshot_meta meta;
	char err[512] = "";
	struct lim_db *db;
	uint8_t *buf;
	size_t len;

	if (!registered) {
		rcu_register_thread();
		registered = true;
	}
	if (size < 1)
		return 0;
	len = size - 1;
	buf = malloc(len ? len : 1); /* 8-aligned, as a mapping would be */
	if (!buf)
		return 0;
	memcpy(buf, data + 1, len);
	if (data[0] & 1)
		lim_snapshot_reseal(buf, len);
	db = lim_snapshot_load_buf(buf, len, "fuzz.snap", &extra, NULL, &meta,
				   err, sizeof(err));
	if (!db) {
		if (strncmp(err, "fuzz.snap: ", 11) != 0)
			abort(); /* every refusal names the file */
	} else {
		if (lim_users_count(db->users) != meta.users)
			abort();
		for (uint64_t i = 0; i < meta.users; i++)
			if (meta.user_stamp[i] > meta.seq_end - meta.seq_start)
				abort();
		lim_snapshot_meta_free(&meta);
		lim_db_free(db);
	}
	free(buf);
	return 0;
}
