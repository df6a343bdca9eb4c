/*
 * test_keys.c - the keyring: building, lookup, the INI loader's good files,
 * every error message (with its line number), the permission check, and
 * allow-list matching.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include "auth.h"

#define IP(a, b, c, d) ((uint32_t)(a) << 24 | (b) << 16 | (c) << 8 | (d))

#define K1 "000102030405060708090a0b0c0d0e0f"
#define K2 "F0E1D2C3B4A5968778695A4B3C2D1E0F"
#define K3 "0123456789abcdef0123456789abcdef"

static char dir[64];
static char path[128];
static char err[256];

static int
dir_setup(void **state)
{
	strcpy(dir, "/tmp/test_keys.XXXXXX");
	return mkdtemp(dir) ? 0 : -1;
}

static int
dir_teardown(void **state)
{
	unlink(path);
	return rmdir(dir);
}

/* Write dir/keys.ini with @p mode (regardless of umask). */
static const char *
write_keys(const char *text, mode_t mode)
{
	int fd;

	snprintf(path, sizeof(path), "%s/keys.ini", dir);
	unlink(path);
	fd = open(path, O_CREAT | O_TRUNC | O_WRONLY, 0600);
	assert_true(fd >= 0);
	assert_int_equal(write(fd, text, strlen(text)), (ssize_t)strlen(text));
	assert_int_equal(fchmod(fd, mode), 0);
	close(fd);
	return path;
}

static struct auth_keyring *
load(const char *text)
{
	memset(err, 'x', sizeof(err));
	return auth_keyring_load(write_keys(text, 0600), err, sizeof(err));
}

/* The load fails and the message holds @p want. */
static void
load_fails(const char *text, const char *want)
{
	struct auth_keyring *kr = load(text);

	if (kr || !strstr(err, want))
		fail_msg("want an error with \"%s\", got %s \"%s\"", want,
			 kr ? "a keyring and" : "", err);
	auth_keyring_free(kr);
}

/* ------------------------------------------------------------------------ */
/* Good files                                                                 */

static void
test_load_good(void **state)
{
	static const uint8_t k1[16] = {0, 1, 2, 3, 4, 5, 6, 7,
				       8, 9, 10, 11, 12, 13, 14, 15};
	static const uint8_t k2[16] = {0xf0, 0xe1, 0xd2, 0xc3, 0xb4, 0xa5,
				       0x96, 0x87, 0x78, 0x69, 0x5a, 0x4b,
				       0x3c, 0x2d, 0x1e, 0x0f};
	struct auth_keyring *kr = load(
		"; keys of the test gateways\n"
		"\n"
		"[gateway 4000000000]\n"
		"key.7 = " K3 "\n"
		"allow = 10.0.0.0/24, 10.213.0.2 ; office and lab\n"
		"[gateway 1]\n"
		"# rotation: both keys valid\n"
		"key.1 = " K1 "\n"
		"key.2=" K2 "\n"
		"[ gateway   12 ]\n"
		"key.0 = " K1 "\n");
	const struct auth_gateway *gw;

	assert_non_null(kr);
	assert_string_equal(err, "");
	assert_int_equal(auth_keyring_count(kr), 3);
	/* Listed in id order, whatever the file's order. */
	assert_int_equal(auth_keyring_at(kr, 0)->gateway_id, 1);
	assert_int_equal(auth_keyring_at(kr, 1)->gateway_id, 12);
	assert_int_equal(auth_keyring_at(kr, 2)->gateway_id, 4000000000u);
	assert_null(auth_keyring_at(kr, 3));
	gw = auth_keyring_find(kr, 1);
	assert_non_null(gw);
	assert_int_equal(gw->n_keys, 2);
	assert_int_equal(gw->keys[0].key_id, 1);
	assert_memory_equal(gw->keys[0].key, k1, 16);
	assert_int_equal(gw->keys[1].key_id, 2);
	assert_memory_equal(gw->keys[1].key, k2, 16);
	assert_int_equal(gw->n_sources, 0);
	gw = auth_keyring_find(kr, 4000000000u);
	assert_non_null(gw);
	assert_int_equal(gw->n_keys, 1);
	assert_int_equal(gw->n_sources, 2);
	assert_int_equal(gw->source_ip[0], IP(10, 0, 0, 0));
	assert_int_equal(gw->source_mask[0], 0xffffff00u);
	assert_int_equal(gw->source_ip[1], IP(10, 213, 0, 2));
	assert_int_equal(gw->source_mask[1], 0xffffffffu);
	assert_int_equal(auth_keyring_find(kr, 12)->keys[0].key_id, 0);
	assert_null(auth_keyring_find(kr, 2));
	assert_null(auth_keyring_find(kr, 0));
	auth_keyring_free(kr);
}

/* Thousands of gateways, in reverse order: every one found, no other. */
static void
test_load_many(void **state)
{
	enum { N = 3000 };
	size_t cap = (size_t)N * 80, len = 0;
	char *text = malloc(cap);
	struct auth_keyring *kr;

	assert_non_null(text);
	for (unsigned i = N; i > 0; i--)
		len += (size_t)snprintf(text + len, cap - len,
					"[gateway %u]\nkey.%u = " K1 "\n",
					i * 7919u, i);
	kr = load(text);
	free(text);
	assert_non_null(kr);
	assert_int_equal(auth_keyring_count(kr), N);
	for (unsigned i = 1; i <= N; i++) {
		const struct auth_gateway *gw;

		gw = auth_keyring_find(kr, i * 7919u);
		assert_non_null(gw);
		assert_int_equal(gw->keys[0].key_id, i);
		assert_null(auth_keyring_find(kr, i * 7919u + 1));
	}
	auth_keyring_free(kr);
}

static void
test_load_permissions(void **state)
{
	static const char good[] = "[gateway 1]\nkey.1 = " K1 "\n";
	static const mode_t bad[] = {0644, 0640, 0604, 0660, 0610, 0601};
	struct auth_keyring *kr;

	for (unsigned i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		char want[32];

		kr = auth_keyring_load(write_keys(good, bad[i]), err,
				       sizeof(err));
		assert_null(kr);
		snprintf(want, sizeof(want), "mode %04o", (unsigned)bad[i]);
		assert_non_null(strstr(err, want));
		assert_non_null(strstr(err, "chmod 600"));
		assert_non_null(strstr(err, "keys.ini: "));
	}
	kr = auth_keyring_load(write_keys(good, 0400), err, sizeof(err));
	assert_non_null(kr);
	auth_keyring_free(kr);
	kr = auth_keyring_load(write_keys(good, 0700), err, sizeof(err));
	assert_non_null(kr);
	auth_keyring_free(kr);
}

static void
test_load_file_errors(void **state)
{
	char missing[160];

	snprintf(missing, sizeof(missing), "%s/nope.ini", dir);
	assert_null(auth_keyring_load(missing, err, sizeof(err)));
	assert_non_null(strstr(err, "nope.ini: No such file or directory"));
	assert_null(auth_keyring_load(dir, err, sizeof(err)));
	assert_non_null(strstr(err, "not a regular file"));
	/* No error buffer, or a tiny one: still refused, no overflow. */
	assert_null(auth_keyring_load(missing, NULL, 0));
	err[4] = '#';
	assert_null(auth_keyring_load(missing, err, 4));
	assert_int_equal(strlen(err), 3);
	assert_int_equal(err[4], '#');
	load_fails("", "keys.ini: no [gateway N] section");
	load_fails("; only a comment\n", "keys.ini: no [gateway N] section");
}

/* ------------------------------------------------------------------------ */
/* Every error, with its line                                                 */

static void
test_load_key_errors(void **state)
{
	load_fails("[gateway 1]\nkey.1 = " K1 "\nkey.3 = 0011\n",
		   "keys.ini:3: key.3: expected 32 hex digits");
	load_fails("[gateway 1]\nkey.3 = " K1 "0\n",
		   "keys.ini:2: key.3: expected 32 hex digits");
	load_fails("[gateway 1]\nkey.3 = 000102030405060708090a0b0c0d0e0g\n",
		   "keys.ini:2: key.3: expected 32 hex digits");
	load_fails("[gateway 1]\nkey.3 = 00:01:02:03:04:05:06:07:08:09:0a\n",
		   "keys.ini:2: key.3: expected 32 hex digits");
	load_fails("[gateway 1]\nkey.3 =\n",
		   "keys.ini:2: key.3: expected 32 hex digits");
	load_fails("[gateway 1]\nkey.x = " K1 "\n",
		   "keys.ini:2: key.x: key id must be a decimal number");
	load_fails("[gateway 1]\nkey. = " K1 "\n",
		   "keys.ini:2: key.: key id must be a decimal number");
	load_fails("[gateway 1]\nkey.-1 = " K1 "\n",
		   "keys.ini:2: key.-1: key id must be a decimal number");
	load_fails("[gateway 1]\nkey.4294967296 = " K1 "\n",
		   "keys.ini:2: key.4294967296: key id must be a decimal");
	load_fails("[gateway 1]\nkey.1 = " K1 "\nkey.1 = " K2 "\n",
		   "keys.ini:3: key.1: duplicate key id in [gateway 1]");
	load_fails("[gateway 9]\nkey.1 = " K1 "\nkey.2 = " K2 "\n"
		   "key.3 = " K3 "\n",
		   "keys.ini:4: key.3: more than 2 keys in [gateway 9]");
}

static void
test_load_section_errors(void **state)
{
	load_fails("key.1 = " K1 "\n[gateway 1]\nkey.1 = " K1 "\n",
		   "keys.ini:1: key.1: outside a [gateway N] section");
	load_fails("[gateway 1]\nkey.1 = " K1 "\n\n[gateway 2]\n"
		   "[gateway 3]\nkey.1 = " K1 "\n",
		   "keys.ini:4: [gateway 2]: no key");
	load_fails("[gateway 1]\nkey.1 = " K1 "\n[gateway 2]\n; none\n",
		   "keys.ini:3: [gateway 2]: no key");
	load_fails("[gateway 1]\nallow = 10.0.0.1\n",
		   "keys.ini:1: [gateway 1]: no key");
	load_fails("[gateway 5]\nkey.1 = " K1 "\n[gateway 6]\nkey.1 = " K1
		   "\n[gateway 5]\nkey.2 = " K2 "\n",
		   "keys.ini:5: [gateway 5]: duplicate gateway (first at "
		   "line 1)");
	load_fails("[gw 1]\nkey.1 = " K1 "\n",
		   "keys.ini:1: expected a [gateway N] section");
	load_fails("[gateway]\nkey.1 = " K1 "\n",
		   "keys.ini:1: expected a [gateway N] section");
	load_fails("[gateway 1]\nkey.1 = " K1 "\n[gateway x]\n",
		   "keys.ini:3: [gateway N]: N must be a decimal number");
	load_fails("[gateway 4294967296]\nkey.1 = " K1 "\n",
		   "keys.ini:1: [gateway N]: N must be a decimal number");
	load_fails("[gateway 1]\nkey.1 = " K1 "\nsecret = 1\n",
		   "keys.ini:3: secret: unknown setting (expected key.<id> or "
		   "allow)");
}

static void
test_load_allow_errors(void **state)
{
	load_fails("[gateway 1]\nkey.1 = " K1 "\n"
		   "allow = 1.0.0.1, 1.0.0.2, 1.0.0.3, 1.0.0.4, 1.0.0.5\n"
		   "allow = 1.0.0.6, 1.0.0.7, 1.0.0.8, 1.0.0.9\n",
		   "keys.ini:4: allow: more than 8 source ranges in "
		   "[gateway 1]");
	load_fails("[gateway 1]\nkey.1 = " K1 "\nallow = 10.0.0.0/33\n",
		   "keys.ini:3: allow: '10.0.0.0/33' is not an IPv4 address");
	load_fails("[gateway 1]\nkey.1 = " K1 "\nallow = 10.0.0.300\n",
		   "keys.ini:3: allow: '10.0.0.300' is not an IPv4 address");
	load_fails("[gateway 1]\nkey.1 = " K1 "\nallow = 10.0.0.0/\n",
		   "keys.ini:3: allow: '10.0.0.0/' is not an IPv4 address");
	load_fails("[gateway 1]\nkey.1 = " K1 "\nallow = 10.0.0.1,,10.0.0.2\n",
		   "keys.ini:3: allow: '' is not an IPv4 address");
	load_fails("[gateway 1]\nkey.1 = " K1 "\nallow = 10.0.0.1,\n",
		   "keys.ini:3: allow: '' is not an IPv4 address");
	load_fails("[gateway 1]\nkey.1 = " K1 "\nallow = ::1\n",
		   "keys.ini:3: allow: '::1' is not an IPv4 address");
	load_fails("[gateway 1]\nkey.1 = " K1 "\nallow = 10.0.0.1/24\n",
		   "keys.ini:3: allow: '10.0.0.1/24' has host bits set");
}

static void
test_load_syntax_errors(void **state)
{
	char longline[400];

	load_fails("[gateway 1]\nkey.1 = " K1 "\n\njust words\n",
		   "keys.ini:4: syntax error");
	/* The earlier of a syntax error and one of ours is reported. */
	load_fails("[gateway 1]\nnonsense\nkey.1 = zz\n",
		   "keys.ini:2: syntax error");
	load_fails("[gateway 1]\nkey.1 = zz\nnonsense\n",
		   "keys.ini:2: key.1: expected 32 hex digits");
	snprintf(longline, sizeof(longline),
		 "[gateway 1]\nkey.1 = " K1 "\n; %0300d\n[gateway 2]\n", 0);
	load_fails(longline, "keys.ini:3: line longer than 198 characters");
	/* After a long line, numbering is still right. */
	snprintf(longline, sizeof(longline),
		 "[gateway 1]\nkey.1 = " K1 "\n;%0250d\n\n[gateway 2]\n", 7);
	assert_null(load(longline));
	assert_non_null(strstr(err, "keys.ini:3: line longer"));
}

/* ------------------------------------------------------------------------ */
/* Keyring from memory; allow lists                                          */

static struct auth_gateway
gw_one(uint32_t id)
{
	struct auth_gateway g = {.gateway_id = id, .n_keys = 1};

	g.keys[0].key_id = 1;
	memset(g.keys[0].key, 0x5a, sizeof(g.keys[0].key));
	return g;
}

static void
test_create_rejects(void **state)
{
	struct auth_gateway g[2] = {gw_one(1), gw_one(2)};
	struct auth_keyring *kr;

	kr = auth_keyring_create(g, 2);
	assert_non_null(kr);
	auth_keyring_free(kr);
	kr = auth_keyring_create(NULL, 0); /* empty: finds nothing */
	assert_non_null(kr);
	assert_int_equal(auth_keyring_count(kr), 0);
	assert_null(auth_keyring_find(kr, 1));
	auth_keyring_free(kr);
	g[1].gateway_id = 1;
	assert_null(auth_keyring_create(g, 2));
	g[1] = gw_one(2);
	g[1].n_keys = 0;
	assert_null(auth_keyring_create(g, 2));
	g[1].n_keys = 3;
	assert_null(auth_keyring_create(g, 2));
	g[1].n_keys = 2;
	g[1].keys[1].key_id = g[1].keys[0].key_id;
	assert_null(auth_keyring_create(g, 2));
	g[1] = gw_one(2);
	g[1].n_sources = AUTH_SOURCES_MAX + 1;
	assert_null(auth_keyring_create(g, 2));
	g[1].n_sources = 1;
	g[1].source_mask[0] = 0xff00ff00u; /* not a prefix */
	assert_null(auth_keyring_create(g, 2));
}

static void
test_allow_matching(void **state)
{
	struct auth_keyring *kr = load(
		"[gateway 1]\nkey.1 = " K1 "\n"
		"allow = 10.0.0.0/24, 10.213.0.2, 192.168.0.0/16\n"
		"[gateway 2]\nkey.1 = " K1 "\nallow = 0.0.0.0/0\n"
		"[gateway 3]\nkey.1 = " K1 "\n"
		"[gateway 4]\nkey.1 = " K1 "\nallow = 172.16.0.0/12\n"
		"allow = 127.0.0.1/32\n");
	const struct auth_gateway *g1, *g2, *g3, *g4;

	assert_non_null(kr);
	g1 = auth_keyring_find(kr, 1);
	g2 = auth_keyring_find(kr, 2);
	g3 = auth_keyring_find(kr, 3);
	g4 = auth_keyring_find(kr, 4);
	assert_true(auth_gateway_allows(g1, IP(10, 0, 0, 0)));
	assert_true(auth_gateway_allows(g1, IP(10, 0, 0, 255)));
	assert_false(auth_gateway_allows(g1, IP(10, 0, 1, 0)));
	assert_false(auth_gateway_allows(g1, IP(9, 255, 255, 255)));
	assert_true(auth_gateway_allows(g1, IP(10, 213, 0, 2)));
	assert_false(auth_gateway_allows(g1, IP(10, 213, 0, 3)));
	assert_false(auth_gateway_allows(g1, IP(10, 213, 0, 1)));
	assert_true(auth_gateway_allows(g1, IP(192, 168, 77, 1)));
	assert_false(auth_gateway_allows(g1, IP(192, 169, 0, 1)));
	assert_true(auth_gateway_allows(g2, IP(1, 2, 3, 4)));
	assert_true(auth_gateway_allows(g2, 0));
	assert_true(auth_gateway_allows(g3, IP(203, 0, 113, 9)));
	assert_int_equal(g4->n_sources, 2);
	assert_true(auth_gateway_allows(g4, IP(172, 31, 255, 255)));
	assert_false(auth_gateway_allows(g4, IP(172, 32, 0, 0)));
	assert_true(auth_gateway_allows(g4, IP(127, 0, 0, 1)));
	assert_false(auth_gateway_allows(g4, IP(127, 0, 0, 2)));
	auth_keyring_free(kr);
}

/* create clears host bits given in memory, so matching stays one compare. */
static void
test_create_normalises_sources(void **state)
{
	struct auth_gateway g = gw_one(7);
	struct auth_keyring *kr;
	const struct auth_gateway *got;

	g.n_sources = 1;
	g.source_ip[0] = IP(10, 1, 2, 3);
	g.source_mask[0] = 0xffff0000u;
	kr = auth_keyring_create(&g, 1);
	assert_non_null(kr);
	got = auth_keyring_find(kr, 7);
	assert_int_equal(got->source_ip[0], IP(10, 1, 0, 0));
	assert_true(auth_gateway_allows(got, IP(10, 1, 200, 1)));
	assert_false(auth_gateway_allows(got, IP(10, 2, 0, 1)));
	auth_keyring_free(kr);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_load_good),
		cmocka_unit_test(test_load_many),
		cmocka_unit_test(test_load_permissions),
		cmocka_unit_test(test_load_file_errors),
		cmocka_unit_test(test_load_key_errors),
		cmocka_unit_test(test_load_section_errors),
		cmocka_unit_test(test_load_allow_errors),
		cmocka_unit_test(test_load_syntax_errors),
		cmocka_unit_test(test_create_rejects),
		cmocka_unit_test(test_allow_matching),
		cmocka_unit_test(test_create_normalises_sources),
	};

	return cmocka_run_group_tests(tests, dir_setup, dir_teardown);
}
