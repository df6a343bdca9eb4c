/*
 * fuzz_keys.c - libFuzzer harness for the gateways' keys file loader
 * (auth/keys.c: auth_keyring_load), the file authd --keys reads at start
 * and `authctl keys rotate` rewrites.
 *
 * Input: byte 0 is a mode selector, the rest the file. The file is written
 * (mode 0600, or 0640 when bit 0 of byte 0 is set) to a private directory
 * and loaded by the real loader, line reader and inih included.
 *
 * Oracles (abort = a finding):
 * - a file that group or others may read is refused, whatever it holds,
 *   and the message says to chmod 600;
 * - a refusal names the file (and a line when it is about one);
 * - an accepted keyring holds 1..N gateways with unique ids, each found
 *   again by auth_keyring_find(), each with 1 or 2 keys of distinct ids
 *   and at most AUTH_SOURCES_MAX source ranges without host bits.
 *
 * Seeds (corpus/keys): files as authd-env.sh, tests/integration/lib.sh and
 * `authctl keys rotate` write them, allow lists, and the refusals
 * tests/unit/test_keys.c checks.
 */
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "auth.h"

#define FUZZ_CHECK(cond)                                                       \
	do {                                                                   \
		if (!(cond)) {                                                 \
			fprintf(stderr, "%s:%d: check failed: %s\n", __FILE__, \
				__LINE__, #cond);                              \
			abort();                                               \
		}                                                              \
	} while (0)

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static char g_path[4096];

static void
setup(void)
{
	const char *tmp = getenv("TMPDIR");
	char dir[4000];

	snprintf(dir, sizeof(dir), "%s/fuzz_keys.XXXXXX", tmp && *tmp ? tmp : "/tmp");
	if (!mkdtemp(dir))
		abort();
	snprintf(g_path, sizeof(g_path), "%s/keys.ini", dir);
}

static void
check_keyring(const struct auth_keyring *kr)
{
	unsigned n = auth_keyring_count(kr);

	FUZZ_CHECK(n >= 1);
	for (unsigned i = 0; i < n; i++) {
		const struct auth_gateway *g = auth_keyring_at(kr, i);

		FUZZ_CHECK(g && auth_keyring_find(kr, g->gateway_id) == g);
		FUZZ_CHECK(i == 0 || auth_keyring_at(kr, i - 1)->gateway_id <
					     g->gateway_id);
		FUZZ_CHECK(g->n_keys >= 1 && g->n_keys <= AUTH_KEYS_PER_GATEWAY);
		FUZZ_CHECK(g->n_keys < 2 || g->keys[0].key_id != g->keys[1].key_id);
		FUZZ_CHECK(g->n_sources <= AUTH_SOURCES_MAX);
		for (unsigned s = 0; s < g->n_sources; s++)
			FUZZ_CHECK((g->source_ip[s] & ~g->source_mask[s]) == 0);
	}
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	bool loose = size && (data[0] & 1);
	struct auth_keyring *kr;
	char err[1024] = "";
	int fd;

	if (!g_path[0])
		setup();
	if (size < 1)
		return 0;
	unlink(g_path);
	fd = open(g_path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
	FUZZ_CHECK(fd >= 0);
	FUZZ_CHECK(write(fd, data + 1, size - 1) == (ssize_t)(size - 1));
	if (loose)
		FUZZ_CHECK(fchmod(fd, 0640) == 0);
	close(fd);
	kr = auth_keyring_load(g_path, err, sizeof(err));
	if (loose) {
		FUZZ_CHECK(!kr && strstr(err, "run chmod 600"));
		return 0;
	}
	if (!kr) {
		FUZZ_CHECK(!strncmp(err, g_path, strlen(g_path)) &&
			   err[strlen(g_path)] == ':' && err[strlen(g_path) + 1]);
		return 0;
	}
	check_keyring(kr);
	auth_keyring_free(kr);
	return 0;
}
