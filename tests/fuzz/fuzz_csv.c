/*
 * fuzz_csv.c - libFuzzer harness for the users and merchants CSV import.
 *
 * Input: one byte choosing the parser (bit 0: merchants, else users), then
 * the CSV text. The import must accept or refuse without a crash, leak or
 * undefined behaviour, and every refusal must name the file and a line
 * ("fuzz.csv:N: ...").
 */
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <urcu-qsbr.h>

#include "lim.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static bool registered;
	const struct lim_db_config cfg = {.users_max = 4096, .ops_max = 16,
					  .merchants_max = 64,
					  .groups_max = 8, .shards = 1};
	char err[512] = "";
	struct lim_db *db;
	uint64_t n = 0;
	int rc;

	if (!registered) {
		rcu_register_thread();
		registered = true;
	}
	if (size < 1)
		return 0;
	db = lim_db_create(&cfg);
	if (!db)
		abort();
	if (data[0] & 1)
		rc = lim_csv_merchants_buf(db, "fuzz.csv",
					   (const char *)data + 1, size - 1,
					   &n, err, sizeof(err));
	else
		rc = lim_csv_users_buf(db, "fuzz.csv", (const char *)data + 1,
				       size - 1, &n, err, sizeof(err));
	if (rc && strncmp(err, "fuzz.csv:", 9) != 0)
		abort();
	if (!rc && !(data[0] & 1) && lim_users_count(db->users) != n)
		abort();
	lim_db_free(db);
	return 0;
}
