/*
 * test_csv.c - users and merchants CSV import: good files (every column,
 * any order, quotes, CRLF, blank lines, yuan parsed exactly, ISO times),
 * and every error with its exact file:line: column: reason message.
 */
#include <stdlib.h>
#include <unistd.h>

#include <urcu-qsbr.h>

#include "lim_fixture.h"

#define ERR_LEN 512

static struct lim_db *
fresh(void)
{
	const struct lim_db_config cfg = {.users_max = 64, .ops_max = 64,
					  .merchants_max = 64, .groups_max = 8,
					  .shards = 2};
	struct lim_db *db = lim_db_create(&cfg);

	assert_non_null(db);
	return db;
}

static void
drop(struct lim_db *db)
{
	lim_db_free(db);
}

static int
users(struct lim_db *db, const char *text, uint64_t *n, char *err)
{
	return lim_csv_users_buf(db, "users.csv", text, strlen(text), n, err,
				 ERR_LEN);
}

static int
merchants(struct lim_db *db, const char *text, uint64_t *n, char *err)
{
	return lim_csv_merchants_buf(db, "merchants.csv", text, strlen(text), n,
				     err, ERR_LEN);
}

static void
test_users_good(void **state)
{
	static const char csv[] =
		"user_id, limit_yuan,tier,region,self_cap_fen,soft_cap,frozen,"
		"temp_quota_yuan,temp_until,cash_limit_fen,alert_yuan,"
		"outstanding_fen,risk\r\n"
		"42,5000.5,3,21,300000,1,0,1000,2026-11-11T00:00:00Z,50000,"
		"800.05,12345,1000\r\n"
		"\r\n"
		"  43 ,\"12.34\",0,,,,,,,,,,\n"
		"18446744073709551615,0.1,7,65535,,0,1,0.01,1800000000,,,0,3\n"
		"44,1,,,,,,,2026-02-28,,,,\n";
	char err[ERR_LEN] = "";
	struct lim_db *db = fresh();
	const struct lim_user *u;
	const struct lim_user_ext *x;
	uint64_t n = 0;

	(void)state;
	if (users(db, csv, &n, err))
		fail_msg("%s", err);
	assert_int_equal(n, 4);
	u = lim_users_find(db->users, 42);
	assert_non_null(u);
	assert_int_equal(u->limit_fen, 500050);
	assert_int_equal(u->tier, 3);
	assert_int_equal(u->region, 21);
	assert_int_equal(u->self_cap_fen, 300000);
	assert_int_equal(u->flags, LIM_USER_SOFT_CAP | LIM_USER_EXT);
	assert_int_equal(u->outstanding_fen, 12345);
	assert_int_equal(u->risk_q, 250);
	x = lim_ext_find(db, 42);
	assert_non_null(x);
	assert_int_equal(x->temp_quota_fen, 100000);
	assert_int_equal(x->temp_until_s, 1794355200u); /* 2026-11-11 UTC */
	assert_int_equal(x->cash_limit_fen, 50000);
	assert_int_equal(x->alert_fen, 80005);
	u = lim_users_find(db->users, 43);
	assert_int_equal(u->limit_fen, 1234);
	assert_int_equal(u->flags, 0);
	assert_null(lim_ext_find(db, 43));
	u = lim_users_find(db->users, UINT64_MAX);
	assert_int_equal(u->limit_fen, 10);
	assert_int_equal(u->flags, LIM_USER_FROZEN | LIM_USER_EXT);
	assert_int_equal(u->risk_q, 0);
	x = lim_ext_find(db, UINT64_MAX);
	assert_int_equal(x->temp_quota_fen, 1);
	assert_int_equal(x->temp_until_s, 1800000000u);
	assert_int_equal(x->cash_limit_fen, -1);
	assert_int_equal(x->alert_fen, -1);
	/* a temp_until alone sets no extension */
	u = lim_users_find(db->users, 44);
	assert_int_equal(u->flags, 0);
	/* imported debt is taken from the lending ceiling */
	assert_int_equal(lim_budget_total(db->cap) -
				 lim_budget_free_fen(db->cap), 12345);
	drop(db);
}

static void
test_users_fen_only(void **state)
{
	char err[ERR_LEN] = "";
	struct lim_db *db = fresh();
	uint64_t n = 0;

	(void)state;
	if (users(db, "limit_fen,user_id\n100,1\n200,2", &n, err))
		fail_msg("%s", err);
	assert_int_equal(n, 2);
	assert_int_equal(lim_users_find(db->users, 2)->limit_fen, 200);
	drop(db);
}

struct bad_case {
	const char *csv;
	const char *msg;
};

static const struct bad_case bad_users[] = {
	{"", "users.csv:1: no header line (an empty file?)"},
	{"\n\n", "users.csv:2: no header line (an empty file?)"},
	{"user_id,limt_fen\n", "users.csv:1: column 2: unknown column 'limt_fen'"},
	{"user_id,tier,tier\n", "users.csv:1: column 3: column 'tier' given twice"},
	{"user_id,limit_fen,limit_yuan\n",
	 "users.csv:1: columns limit_fen and limit_yuan: give one of them"},
	{"user_id,limit_fen,alert_fen,alert_yuan\n",
	 "users.csv:1: columns alert_fen and alert_yuan: give one of them"},
	{"limit_fen\n", "users.csv:1: no column user_id"},
	{"user_id,tier\n", "users.csv:1: no column limit_fen or limit_yuan"},
	{"user_id,limit_fen\n1,100\n2\n", "users.csv:3: 1 fields, the header has 2"},
	{"user_id,limit_fen\n1,100,\n", "users.csv:2: 3 fields, the header has 2"},
	{"user_id,limit_fen\n1,12a\n",
	 "users.csv:2: column limit_fen: '12a' is not an amount"},
	{"user_id,limit_fen\n1,-5\n",
	 "users.csv:2: column limit_fen: '-5' is not an amount"},
	{"user_id,limit_fen\n1,1000000000000001\n",
	 "users.csv:2: column limit_fen: '1000000000000001' is out of range "
	 "(at most 1000000000000000 fen)"},
	{"user_id,limit_yuan\n1,1.234\n",
	 "users.csv:2: column limit_yuan: '1.234' has more than 2 decimals"},
	{"user_id,limit_yuan\n1,1.\n",
	 "users.csv:2: column limit_yuan: '1.' is not an amount"},
	{"user_id,limit_yuan\n1,.5\n",
	 "users.csv:2: column limit_yuan: '.5' is not an amount"},
	{"user_id,limit_yuan\n1,1e3\n",
	 "users.csv:2: column limit_yuan: '1e3' is not an amount"},
	{"user_id,limit_yuan\n1,10000000000001\n",
	 "users.csv:2: column limit_yuan: '10000000000001' is out of range (at "
	 "most 10000000000000 yuan)"},
	{"user_id,limit_fen\n1,\n", "users.csv:2: column limit_fen: empty"},
	{"user_id,limit_fen\n,1\n", "users.csv:2: column user_id: empty"},
	{"user_id,limit_fen\n0,1\n", "users.csv:2: column user_id: user id 0"},
	{"user_id,limit_fen\nx1,1\n",
	 "users.csv:2: column user_id: 'x1' is not a number"},
	{"user_id,limit_fen\n18446744073709551616,1\n",
	 "users.csv:2: column user_id: '18446744073709551616' is out of range "
	 "0..18446744073709551615"},
	{"user_id,limit_fen\n5,1\n6,1\n5,2\n",
	 "users.csv:4: column user_id: duplicate user 5 (first on line 2)"},
	{"user_id,limit_fen,tier\n1,1,8\n",
	 "users.csv:2: column tier: '8' is out of range 0..7"},
	{"user_id,limit_fen,region\n1,1,65536\n",
	 "users.csv:2: column region: '65536' is out of range 0..65535"},
	{"user_id,limit_fen,soft_cap\n1,1,2\n",
	 "users.csv:2: column soft_cap: '2' is not 0 or 1"},
	{"user_id,limit_fen,frozen\n1,1,yes\n",
	 "users.csv:2: column frozen: 'yes' is not 0 or 1"},
	{"user_id,limit_fen,risk\n1,1,1001\n",
	 "users.csv:2: column risk: '1001' is out of range 0..1000"},
	{"user_id,limit_fen,temp_quota_fen\n1,1,100\n",
	 "users.csv:2: column temp_until: required with a temporary quota"},
	{"user_id,limit_fen,temp_quota_fen,temp_until\n1,1,100,2026-13-01\n",
	 "users.csv:2: column temp_until: '2026-13-01' is not unix seconds or an "
	 "ISO 8601 UTC time (e.g. 2026-11-11T00:00:00Z)"},
	{"user_id,limit_fen,temp_until\n1,1,2026-02-29T00:00:00Z\n",
	 "users.csv:2: column temp_until: '2026-02-29T00:00:00Z' is not unix"},
	{"user_id,limit_fen,temp_until\n1,1,2026-11-11T08:00:00+08:00\n",
	 "users.csv:2: column temp_until: '2026-11-11T08:00:00+08:00' is not"},
	{"user_id,limit_fen,temp_until\n1,1,4294967296\n",
	 "users.csv:2: column temp_until: '4294967296' is not unix seconds"},
	{"user_id,limit_fen,self_cap_yuan\n1,1,1.1.1\n",
	 "users.csv:2: column self_cap_yuan: '1.1.1' is not an amount"},
	{"user_id,limit_fen\n1,\"100\n",
	 "users.csv:2: field 2: unterminated quote"},
	{"user_id,limit_fen\n1,\"100\"x\n",
	 "users.csv:2: field 2: text after the closing quote"},
	{"user_id,limit_fen\n1,10\"0\n",
	 "users.csv:2: field 2: quote inside an unquoted field"},
	{"user_id,limit_fen\n1,100\n2,1\0003\n",
	 "users.csv:3: a NUL byte (not a text file?)"},
};

static void
test_users_bad(void **state)
{
	(void)state;
	for (unsigned i = 0; i < sizeof(bad_users) / sizeof(bad_users[0]); i++) {
		const struct bad_case *b = &bad_users[i];
		char err[ERR_LEN] = "";
		struct lim_db *db = fresh();
		size_t len = strlen(b->csv);

		/* the NUL case: its length runs to the end of the literal */
		if (strstr(b->msg, "NUL"))
			len = sizeof("user_id,limit_fen\n1,100\n2,1\0003\n") - 1;
		assert_int_equal(lim_csv_users_buf(db, "users.csv", b->csv, len,
						   NULL, err, ERR_LEN),
				 -EINVAL);
		if (strncmp(err, b->msg, strlen(b->msg)) != 0)
			fail_msg("case %u: got \"%s\", expected \"%s\"", i, err,
				 b->msg);
		drop(db);
	}
}

static void
test_users_limits(void **state)
{
	char err[ERR_LEN] = "", line[80];
	struct lim_db *db = fresh();
	char *big = malloc(8192);
	struct lim_policy p = *lim_policy_get(db);

	(void)state;
	/* a line too long */
	memset(big, 0, 8192);
	strcpy(big, "user_id,limit_fen\n1,");
	memset(big + strlen(big), '1', 5000);
	assert_int_equal(users(db, big, NULL, err), -EINVAL);
	assert_string_equal(err, "users.csv:2: line longer than 4096 bytes");
	/* the table full: 64 users fit */
	strcpy(big, "user_id,limit_fen\n");
	for (int i = 1; i <= 65; i++) {
		snprintf(line, sizeof(line), "%d,1\n", i);
		strcat(big, line);
	}
	drop(db);
	db = fresh();
	assert_int_equal(users(db, big, NULL, err), -EINVAL);
	assert_string_equal(err, "users.csv:66: the user table is full (64 "
				 "users)");
	drop(db);
	/* already in the database */
	db = fresh();
	assert_int_equal(users(db, "user_id,limit_fen\n7,1\n", NULL, err), 0);
	assert_int_equal(users(db, "user_id,limit_fen\n8,1\n7,1\n", NULL, err),
			 -EINVAL);
	assert_string_equal(err, "users.csv:3: column user_id: user 7 is already "
				 "in the database");
	drop(db);
	/* debt above the lending ceiling */
	db = fresh();
	p.ceiling_fen = 1000;
	p.cap_chunk_fen = 10;
	assert_int_equal(lim_policy_set(db, &p), 0);
	assert_int_equal(users(db, "user_id,limit_fen,outstanding_fen\n1,1,600\n"
				   "2,1,600\n", NULL, err), -ERANGE);
	assert_string_equal(err, "users.csv: the users' outstanding debt (1200 "
				 "fen) exceeds the room under the lending "
				 "ceiling (1000 fen)");
	drop(db);
	free(big);
}

static void
test_users_file(void **state)
{
	char path[] = "/tmp/test_csv.XXXXXX", err[ERR_LEN] = "";
	struct lim_db *db = fresh();
	uint64_t n = 0;
	int fd = mkstemp(path);

	(void)state;
	assert_true(fd >= 0);
	assert_int_equal(write(fd, "user_id,limit_fen\n9,900\n", 24), 24);
	close(fd);
	assert_int_equal(lim_csv_import_users(db, path, &n, err, ERR_LEN), 0);
	assert_int_equal(n, 1);
	unlink(path);
	assert_int_equal(lim_csv_import_users(db, path, &n, err, ERR_LEN),
			 -ENOENT);
	assert_non_null(strstr(err, "/tmp/test_csv."));
	assert_non_null(strstr(err, ": No such file or directory"));
	drop(db);
}

static void
test_merchants_good(void **state)
{
	static const char csv[] =
		"subsidy,merchant_id,mcc,region,blocked,risk\n"
		"3|6|12,7,5411,21,0,120\n"
		",8,,,1,\n"
		"12,4294967295,9999,65535,0,1000\n"
		"\"6|3\",9,0,0,0,0\n";
	char err[ERR_LEN] = "";
	struct lim_db *db = fresh();
	const struct lim_merchant *m;
	uint64_t n = 0;

	(void)state;
	if (merchants(db, csv, &n, err))
		fail_msg("%s", err);
	assert_int_equal(n, 4);
	m = lim_merchant_find(db, 7);
	assert_int_equal(m->subsidy, LIM_SUBSIDY_3 | LIM_SUBSIDY_6 |
					     LIM_SUBSIDY_12);
	assert_int_equal(m->mcc, 5411);
	assert_int_equal(m->region, 21);
	assert_int_equal(m->risk_score, 120);
	assert_int_equal(m->flags, 0);
	m = lim_merchant_find(db, 8);
	assert_int_equal(m->flags, LIM_MERCHANT_BLOCKED);
	assert_int_equal(m->subsidy, 0);
	m = lim_merchant_find(db, UINT32_MAX);
	assert_int_equal(m->subsidy, LIM_SUBSIDY_12);
	m = lim_merchant_find(db, 9);
	assert_int_equal(m->subsidy, LIM_SUBSIDY_3 | LIM_SUBSIDY_6);
	drop(db);
}

static const struct bad_case bad_merchants[] = {
	{"merchant_id,owner\n", "merchants.csv:1: column 2: unknown column 'owner'"},
	{"mcc\n", "merchants.csv:1: no column merchant_id"},
	{"merchant_id\n0\n", "merchants.csv:2: column merchant_id: merchant id 0"},
	{"merchant_id\n4294967296\n",
	 "merchants.csv:2: column merchant_id: '4294967296' is out of range "
	 "0..4294967295"},
	{"merchant_id,mcc\n1,10000\n",
	 "merchants.csv:2: column mcc: '10000' is out of range 0..9999"},
	{"merchant_id,blocked\n1,x\n",
	 "merchants.csv:2: column blocked: 'x' is not 0 or 1"},
	{"merchant_id,subsidy\n1,3|5\n",
	 "merchants.csv:2: column subsidy: '3|5' is not a list of terms 3, 6, 12 "
	 "separated by '|'"},
	{"merchant_id,subsidy\n1,3|3\n",
	 "merchants.csv:2: column subsidy: '3|3' names a term twice"},
	{"merchant_id,subsidy\n1,3|\n",
	 "merchants.csv:2: column subsidy: '3|' ends with '|'"},
	{"merchant_id,subsidy\n1,|3\n",
	 "merchants.csv:2: column subsidy: '|3' is not a list"},
	{"merchant_id,risk\n1,2000\n",
	 "merchants.csv:2: column risk: '2000' is out of range 0..1000"},
	{"merchant_id\n1\n2\n\n1\n",
	 "merchants.csv:5: column merchant_id: duplicate merchant 1 (first on "
	 "line 2)"},
};

static void
test_merchants_bad(void **state)
{
	(void)state;
	for (unsigned i = 0; i < sizeof(bad_merchants) / sizeof(bad_merchants[0]);
	     i++) {
		const struct bad_case *b = &bad_merchants[i];
		char err[ERR_LEN] = "";
		struct lim_db *db = fresh();

		assert_int_equal(merchants(db, b->csv, NULL, err), -EINVAL);
		if (strncmp(err, b->msg, strlen(b->msg)) != 0)
			fail_msg("case %u: got \"%s\", expected \"%s\"", i, err,
				 b->msg);
		drop(db);
	}
}

/* Many merchants: the duplicate map grows. */
static void
test_merchants_many(void **state)
{
	const struct lim_db_config cfg = {.users_max = 8, .ops_max = 8,
					  .merchants_max = 5000, .groups_max = 8,
					  .shards = 1};
	struct lim_db *db = lim_db_create(&cfg);
	size_t cap = 64 + 5000 * 12, k;
	char *csv = malloc(cap), err[ERR_LEN] = "";
	uint64_t n = 0;

	(void)state;
	assert_non_null(db);
	k = (size_t)sprintf(csv, "merchant_id\n");
	for (unsigned i = 1; i <= 5000; i++)
		k += (size_t)sprintf(csv + k, "%u\n", i * 977);
	k += (size_t)sprintf(csv + k, "%u\n", 2500 * 977);
	assert_int_equal(lim_csv_merchants_buf(db, "m.csv", csv, k, &n, err,
					       ERR_LEN), -EINVAL);
	assert_int_equal(n, 5000);
	assert_string_equal(err, "m.csv:5002: column merchant_id: duplicate "
				 "merchant 2442500 (first on line 2501)");
	free(csv);
	drop(db);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_users_good),
		cmocka_unit_test(test_users_fen_only),
		cmocka_unit_test(test_users_bad),
		cmocka_unit_test(test_users_limits),
		cmocka_unit_test(test_users_file),
		cmocka_unit_test(test_merchants_good),
		cmocka_unit_test(test_merchants_bad),
		cmocka_unit_test(test_merchants_many),
	};
	int rc;

	rcu_register_thread();
	rc = cmocka_run_group_tests(tests, NULL, NULL);
	rcu_unregister_thread();
	return rc;
}
