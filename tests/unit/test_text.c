/*
 * test_text.c - limits/text.c, the one syntax of numbers, money and times:
 * exact edges of each parser (2^64 and 2^63, signs, blanks, empty input,
 * decimals, the fen suffix, leap days, month ends, the 2038 and 2106
 * bounds of uint32_t seconds), the reasons given, and that what a
 * formatter writes parses back to the same value.
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "lim_pvt.h"

#define ERR_LEN 160

/* lim_parse_u64(@p s, @p max) must fail with @p rc and leave *out alone. */
static void
u64_refused(const char *s, uint64_t max, int rc)
{
	uint64_t v = 4242;

	assert_int_equal(lim_parse_u64(s, max, &v), rc);
	assert_int_equal(v, 4242);
}

static uint64_t
u64_ok(const char *s, uint64_t max)
{
	uint64_t v = 4242;

	assert_int_equal(lim_parse_u64(s, max, &v), 0);
	return v;
}

static void
test_u64(void **state)
{
	uint64_t v = 0;

	(void)state;
	assert_int_equal(u64_ok("0", UINT64_MAX), 0);
	assert_int_equal(u64_ok("007", UINT64_MAX), 7);
	assert_true(u64_ok("18446744073709551615", UINT64_MAX) == UINT64_MAX);
	assert_true(u64_ok("000000000000000000000018446744073709551615",
			   UINT64_MAX) == UINT64_MAX);
	u64_refused("18446744073709551616", UINT64_MAX, -ERANGE); /* 2^64 */
	u64_refused("99999999999999999999999999", UINT64_MAX, -ERANGE);
	/* 2^63 fits a u64 but not an i64 bound */
	assert_true(u64_ok("9223372036854775808", UINT64_MAX) == 1ULL << 63);
	assert_true(u64_ok("9223372036854775807", INT64_MAX) == INT64_MAX);
	u64_refused("9223372036854775808", INT64_MAX, -ERANGE);
	assert_int_equal(u64_ok("255", 255), 255);
	u64_refused("256", 255, -ERANGE);
	u64_refused("1", 0, -ERANGE);
	assert_int_equal(u64_ok("0", 0), 0);
	/* syntax before range: a long number with a stray byte is not one */
	u64_refused("99999999999999999999999x", UINT64_MAX, -EINVAL);
	u64_refused("", UINT64_MAX, -EINVAL);
	u64_refused(NULL, UINT64_MAX, -EINVAL);
	u64_refused("+1", UINT64_MAX, -EINVAL);
	u64_refused("-1", UINT64_MAX, -EINVAL);
	u64_refused("-0", UINT64_MAX, -EINVAL);
	u64_refused(" 1", UINT64_MAX, -EINVAL);
	u64_refused("1 ", UINT64_MAX, -EINVAL);
	u64_refused("1\n", UINT64_MAX, -EINVAL);
	u64_refused("0x10", UINT64_MAX, -EINVAL);
	u64_refused("1.0", UINT64_MAX, -EINVAL);
	u64_refused("1e3", UINT64_MAX, -EINVAL);
	u64_refused("1_000", UINT64_MAX, -EINVAL);
	/* a span reads exactly its bytes */
	assert_int_equal(lim_parse_u64_span("12345", 2, UINT64_MAX, &v), 0);
	assert_int_equal(v, 12);
	assert_int_equal(lim_parse_u64_span("12", 0, UINT64_MAX, &v), -EINVAL);
	assert_int_equal(lim_parse_u64_span("1x", 2, UINT64_MAX, &v), -EINVAL);
	assert_int_equal(lim_parse_u64_span("4294967296", 10, UINT32_MAX, &v),
			 -ERANGE);
	assert_int_equal(lim_parse_u64_span("4294967295", 10, UINT32_MAX, &v),
			 0);
	assert_int_equal(v, UINT32_MAX);
}

static void
test_count(void **state)
{
	uint64_t v = 0;

	(void)state;
	assert_int_equal(lim_parse_count("4k", UINT64_MAX, &v), 0);
	assert_int_equal(v, 4000);
	assert_int_equal(lim_parse_count("4K", UINT64_MAX, &v), 0);
	assert_int_equal(v, 4000);
	assert_int_equal(lim_parse_count("10M", UINT64_MAX, &v), 0);
	assert_int_equal(v, 10000000);
	assert_int_equal(lim_parse_count("1G", UINT64_MAX, &v), 0);
	assert_int_equal(v, 1000000000);
	assert_int_equal(lim_parse_count("123", UINT64_MAX, &v), 0);
	assert_int_equal(v, 123);
	assert_int_equal(lim_parse_count("18446744073709551615", UINT64_MAX,
					 &v), 0);
	assert_true(v == UINT64_MAX);
	/* a product past 2^64 would wrap: 18446744073709552k was once 384 */
	assert_int_equal(lim_parse_count("18446744073709552k", UINT64_MAX, &v),
			 -ERANGE);
	assert_int_equal(lim_parse_count("18446744073709551k", UINT64_MAX, &v),
			 0);
	assert_true(v == 18446744073709551000ULL);
	assert_int_equal(lim_parse_count("2k", 1999, &v), -ERANGE);
	assert_int_equal(lim_parse_count("2k", 2000, &v), 0);
	v = 7;
	assert_int_equal(lim_parse_count("k", UINT64_MAX, &v), -EINVAL);
	assert_int_equal(lim_parse_count("", UINT64_MAX, &v), -EINVAL);
	assert_int_equal(lim_parse_count("1m", UINT64_MAX, &v), -EINVAL);
	assert_int_equal(lim_parse_count("1g", UINT64_MAX, &v), -EINVAL);
	assert_int_equal(lim_parse_count("1kk", UINT64_MAX, &v), -EINVAL);
	assert_int_equal(lim_parse_count("1 k", UINT64_MAX, &v), -EINVAL);
	assert_int_equal(lim_parse_count("0x100000", UINT64_MAX, &v), -EINVAL);
	assert_int_equal(lim_parse_count("-1k", UINT64_MAX, &v), -EINVAL);
	assert_int_equal(lim_parse_count("+1", UINT64_MAX, &v), -EINVAL);
	assert_int_equal(v, 7);
}

static void
test_x64(void **state)
{
	uint64_t v = 0;

	(void)state;
	assert_int_equal(lim_parse_x64("ffffffffffffffff", &v), 0);
	assert_true(v == UINT64_MAX);
	assert_int_equal(lim_parse_x64("DeadBeef", &v), 0);
	assert_true(v == 0xdeadbeef);
	assert_int_equal(lim_parse_x64("0000000000000001", &v), 0);
	assert_true(v == 1);
	v = 7;
	assert_int_equal(lim_parse_x64("10000000000000000", &v), -ERANGE);
	assert_int_equal(lim_parse_x64("0x1", &v), -EINVAL);
	assert_int_equal(lim_parse_x64("", &v), -EINVAL);
	assert_int_equal(lim_parse_x64("g", &v), -EINVAL);
	assert_int_equal(lim_parse_x64(" 1", &v), -EINVAL);
	assert_int_equal(lim_parse_x64("-1", &v), -EINVAL);
	assert_true(v == 7);
}

/* @p s as yuan (amount: with the fen suffix) is @p fen. */
static void
money_ok(const char *s, bool amount, int64_t fen)
{
	char err[ERR_LEN] = "";
	int64_t v = -1;
	int rc = amount ? lim_parse_amount(s, &v, err, sizeof(err))
			: lim_parse_yuan(s, &v, err, sizeof(err));

	if (rc)
		fail_msg("'%s': %d %s", s, rc, err);
	assert_int_equal(v, fen);
}

/* @p s is refused with @p rc and reason @p why (NULL: any). */
static void
money_bad(const char *s, bool amount, int rc, const char *why)
{
	char err[ERR_LEN] = "";
	int64_t v = -1;

	assert_int_equal(amount ? lim_parse_amount(s, &v, err, sizeof(err))
				: lim_parse_yuan(s, &v, err, sizeof(err)),
			 rc);
	assert_int_equal(v, -1);
	assert_true(err[0]);
	if (why)
		assert_string_equal(err, why);
}

static void
test_yuan(void **state)
{
	(void)state;
	money_ok("5000", false, 500000);
	money_ok("5000.5", false, 500050);
	money_ok("5000.50", false, 500050);
	money_ok("5000.05", false, 500005);
	money_ok("0", false, 0);
	money_ok("0.01", false, 1);
	money_ok("0.1", false, 10);
	money_ok("007.05", false, 705);
	money_ok("10000000000000", false, LIM_MONEY_MAX);
	money_ok("10000000000000.00", false, LIM_MONEY_MAX);
	money_ok("9999999999999.99", false, LIM_MONEY_MAX - 1);
	money_bad("5000.505", false, -EDOM,
		  "more than 2 decimal places (the smallest unit is 1 fen = "
		  "0.01 yuan)");
	money_bad("5000.500", false, -EDOM, NULL);
	money_bad("10000000000000.01", false, -ERANGE,
		  "above the maximum of 10000000000000.00 yuan");
	money_bad("10000000000001", false, -ERANGE, NULL);
	money_bad("92233720368547758.08", false, -ERANGE, NULL);
	money_bad("99999999999999999999999999", false, -ERANGE, NULL);
	money_bad("", false, -EINVAL, "empty amount");
	money_bad(NULL, false, -EINVAL, "empty amount");
	money_bad("-5", false, -EINVAL, "negative amount");
	money_bad("-0.01", false, -EINVAL, "negative amount");
	money_bad("5000.", false, -EINVAL, "no digits after the decimal point");
	money_bad(".5", false, -EINVAL,
		  "not an amount (yuan such as 5000 or 5000.50)");
	money_bad("+5", false, -EINVAL, NULL);
	money_bad(" 5", false, -EINVAL, NULL);
	money_bad("5 ", false, -EINVAL, NULL);
	money_bad("5e3", false, -EINVAL, NULL);
	money_bad("1.2.3", false, -EINVAL, NULL);
	money_bad("5,00", false, -EINVAL, NULL);
	money_bad("500050fen", false, -EINVAL, NULL);
}

static void
test_amount(void **state)
{
	(void)state;
	money_ok("500050fen", true, 500050);
	money_ok("0fen", true, 0);
	money_ok("0007fen", true, 7);
	money_ok("1000000000000000fen", true, LIM_MONEY_MAX);
	money_ok("5000.5", true, 500050);
	money_ok("5000", true, 500000);
	money_bad("1000000000000001fen", true, -ERANGE,
		  "above the maximum of 10000000000000.00 yuan");
	money_bad("99999999999999999999999fen", true, -ERANGE, NULL);
	money_bad("5.5fen", true, -EINVAL,
		  "fen must be a whole number (e.g. 500050fen)");
	money_bad(" 5fen", true, -EINVAL, NULL);
	money_bad("-5fen", true, -EINVAL, "negative amount");
	money_bad("fen", true, -EINVAL,
		  "not an amount (yuan such as 5000 or 5000.50, or fen such "
		  "as 500050fen)");
	money_bad("5 fen", true, -EINVAL, NULL);
	money_bad("5FEN", true, -EINVAL, NULL);
	money_bad("5000.505", true, -EDOM, NULL);
	money_bad("", true, -EINVAL, "empty amount");
}

static void
yuan_is(int64_t fen, const char *want)
{
	char buf[LIM_TEXT_LEN];

	assert_string_equal(lim_fmt_yuan(fen, buf, sizeof(buf)), want);
}

static void
test_fmt_yuan(void **state)
{
	char buf[LIM_TEXT_LEN], err[ERR_LEN];
	int64_t back;

	(void)state;
	yuan_is(0, "0.00");
	yuan_is(5, "0.05");
	yuan_is(50, "0.50");
	yuan_is(500050, "5000.50");
	yuan_is(-1234, "-12.34");
	yuan_is(LIM_MONEY_MAX, "10000000000000.00");
	yuan_is(INT64_MAX, "92233720368547758.07");
	yuan_is(INT64_MIN, "-92233720368547758.08");
	/* parse(fmt(x)) == x over the whole range, every digit pattern */
	for (int64_t x = 0; x <= LIM_MONEY_MAX; x = x * 3 + 7) {
		lim_fmt_yuan(x, buf, sizeof(buf));
		assert_int_equal(lim_parse_yuan(buf, &back, err, sizeof(err)), 0);
		assert_int_equal(back, x);
		assert_int_equal(lim_parse_amount(buf, &back, err, sizeof(err)),
				 0);
		assert_int_equal(back, x);
	}
	for (int64_t x = 0; x < 1000; x++) {
		lim_fmt_yuan(x, buf, sizeof(buf));
		assert_int_equal(lim_parse_yuan(buf, &back, err, sizeof(err)), 0);
		assert_int_equal(back, x);
	}
}

static void
time_ok(const char *s, uint32_t want)
{
	char err[ERR_LEN] = "";
	uint32_t t = 4242;

	if (lim_parse_time(s, &t, err, sizeof(err)))
		fail_msg("'%s': %s", s, err);
	assert_int_equal(t, want);
}

static void
time_bad(const char *s, int rc, const char *why)
{
	char err[ERR_LEN] = "";
	uint32_t t = 4242;

	assert_int_equal(lim_parse_time(s, &t, err, sizeof(err)), rc);
	assert_int_equal(t, 4242);
	assert_true(err[0]);
	if (why)
		assert_string_equal(err, why);
}

static void
test_time(void **state)
{
	const char *syntax = "expected unix seconds or ISO 8601 UTC such as "
			     "2026-11-25T08:00:00Z";
	const char *range = "outside 1970-01-01 .. 2106-02-07";

	(void)state;
	time_ok("0", 0);
	time_ok("1764057600", 1764057600u);
	time_ok("4294967295", UINT32_MAX);
	time_bad("4294967296", -ERANGE, range);
	time_bad("18446744073709551616", -ERANGE, range);
	time_ok("1970-01-01", 0);
	time_ok("1970-01-01T00:00:00Z", 0);
	time_ok("2026-11-25T08:00:00Z", 1795593600u);
	time_ok("2026-11-25T08:00Z", 1795593600u);
	time_ok("2026-11-25T08:00:00+00:00", 1795593600u);
	time_ok("2026-11-25T08:00+00:00", 1795593600u);
	/* 2038: the last second of int32_t and the first after it */
	time_ok("2038-01-19T03:14:07Z", 2147483647u);
	time_ok("2038-01-19T03:14:08Z", 2147483648u);
	/* 2106: the last second of uint32_t */
	time_ok("2106-02-07T06:28:15Z", UINT32_MAX);
	time_bad("2106-02-07T06:28:16Z", -ERANGE, range);
	time_bad("1969-12-31T23:59:59Z", -ERANGE, range);
	time_bad("9999-12-31", -ERANGE, range);
	/* leap days and month ends */
	time_ok("2024-02-29", 1709164800u);
	time_ok("2000-02-29", 951782400u);
	time_ok("2000-03-01", 951868800u);
	time_bad("2023-02-29", -EINVAL, "no such date or time of day");
	time_bad("2100-02-29", -EINVAL, NULL);
	time_bad("1900-02-29", -EINVAL, NULL);
	time_ok("2026-04-30", 1777507200u);
	time_bad("2026-04-31", -EINVAL, NULL);
	time_ok("2026-12-31T23:59:59Z", 1798761599u);
	time_bad("2026-13-01", -EINVAL, NULL);
	time_bad("2026-00-10", -EINVAL, NULL);
	time_bad("2026-01-00", -EINVAL, NULL);
	time_bad("2026-01-32", -EINVAL, NULL);
	time_bad("2026-11-25T24:00:00Z", -EINVAL, NULL);
	time_bad("2026-11-25T08:60Z", -EINVAL, NULL);
	time_bad("2026-11-25T08:00:60Z", -EINVAL, NULL); /* no leap seconds */
	/* UTC only, one spelling */
	time_bad("2026-11-25T08:00:00+08:00", -EINVAL,
		 "times must be UTC: end them with Z or +00:00");
	time_bad("2026-11-25T08:00:00", -EINVAL, NULL);
	time_bad("2026-11-25T08:00:00z", -EINVAL, NULL);
	time_bad("2026-11-25t08:00:00Z", -EINVAL, syntax);
	time_bad("2026-11-25 08:00:00Z", -EINVAL, syntax);
	time_bad("2026-11-25Z", -EINVAL, syntax);
	time_bad("2026-11-25T08Z", -EINVAL, syntax);
	time_bad("2026-1-25", -EINVAL, syntax);
	time_bad("26-11-25", -EINVAL, syntax);
	time_bad("", -EINVAL, syntax);
	time_bad(NULL, -EINVAL, syntax);
	time_bad(" 1", -EINVAL, syntax);
	time_bad("+1", -EINVAL, syntax);
	time_bad("-1", -EINVAL, syntax);
	time_bad("1.5", -EINVAL, syntax);
}

static void
time_is(uint32_t t, const char *want)
{
	char buf[LIM_TEXT_LEN];

	assert_string_equal(lim_fmt_time(t, buf, sizeof(buf)), want);
}

static void
test_fmt_time(void **state)
{
	char buf[LIM_TEXT_LEN], err[ERR_LEN];
	uint32_t back;

	(void)state;
	time_is(0, "1970-01-01T00:00:00Z");
	time_is(951782400u, "2000-02-29T00:00:00Z");
	time_is(2147483647u, "2038-01-19T03:14:07Z");
	time_is(UINT32_MAX, "2106-02-07T06:28:15Z");
	/* parse(fmt(t)) == t: the last second of every day, and a spread */
	for (uint64_t t = 86399; t <= UINT32_MAX; t += 86400) {
		lim_fmt_time((uint32_t)t, buf, sizeof(buf));
		assert_int_equal(strlen(buf), 20);
		assert_int_equal(lim_parse_time(buf, &back, err, sizeof(err)), 0);
		assert_int_equal(back, t);
	}
	for (uint64_t t = 0; t <= UINT32_MAX; t = t * 5 + 3) {
		lim_fmt_time((uint32_t)t, buf, sizeof(buf));
		assert_int_equal(lim_parse_time(buf, &back, err, sizeof(err)), 0);
		assert_int_equal(back, t);
	}
}

static void
test_calendar(void **state)
{
	int64_t y;
	unsigned m, d;

	(void)state;
	assert_int_equal(lim_days_from_civil(1970, 1, 1), 0);
	assert_int_equal(lim_days_from_civil(1969, 12, 31), -1);
	assert_int_equal(lim_days_from_civil(2000, 3, 1), 11017);
	assert_int_equal(lim_month_days(2024, 2), 29);
	assert_int_equal(lim_month_days(2023, 2), 28);
	assert_int_equal(lim_month_days(2000, 2), 29);
	assert_int_equal(lim_month_days(1900, 2), 28);
	assert_int_equal(lim_month_days(2026, 12), 31);
	assert_int_equal(lim_month_days(2026, 11), 30);
	assert_int_equal(lim_month_days(2026, 0), 0);
	assert_int_equal(lim_month_days(2026, 13), 0);
	/* every day of uint32_t seconds, and some before 1970 */
	for (int64_t z = -800000; z <= (int64_t)UINT32_MAX / 86400; z++) {
		lim_civil_from_days(z, &y, &m, &d);
		assert_true(m >= 1 && m <= 12 && d >= 1 &&
			    d <= lim_month_days(y, m));
		assert_int_equal(lim_days_from_civil(y, m, d), z);
	}
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_u64),
		cmocka_unit_test(test_count),
		cmocka_unit_test(test_x64),
		cmocka_unit_test(test_yuan),
		cmocka_unit_test(test_amount),
		cmocka_unit_test(test_fmt_yuan),
		cmocka_unit_test(test_time),
		cmocka_unit_test(test_fmt_time),
		cmocka_unit_test(test_calendar),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
