/*
 * text.c - numbers, money and times as text: the one parser and the one
 * formatter of each, for every reader of operator or file input (the
 * control protocol and authctl, the CSV import, the command lines and the
 * config file, the journal's and the export's own files).
 *
 * Owns no state. The accepted syntax of each kind is in lim.h ("Text"); it
 * is the strictest that every caller's documented inputs still pass, so a
 * value means the same wherever it is typed: no sign, no blanks, no base
 * prefix, no floating point, no locale. Money is parsed exactly into int64
 * fen; times are unix seconds in uint32_t (1970-01-01 .. 2106-02-07), in
 * UTC only, with the civil calendar of H. Hinnant's days_from_civil (the
 * proleptic Gregorian calendar, exact for every representable day).
 *
 * Parsers check bounds before each multiplication, so no input, however
 * long, overflows. Formatters write into the caller's buffer (LIM_TEXT_LEN
 * bytes hold any of them) and return it, so they nest in a printf.
 *
 * Concurrency: pure functions; any thread.
 */
#include <errno.h>
#include <inttypes.h>
#include <string.h>

#include "lim_pvt.h"

#define YUAN 100 /* fen */
#define DAY_S 86400
#define MAX_YUAN (LIM_MONEY_MAX / YUAN)

static int
say(char *err, size_t errlen, int rc, const char *why)
{
	if (err && errlen)
		snprintf(err, errlen, "%s", why);
	return rc;
}

static bool
is_digit(char c)
{
	return c >= '0' && c <= '9';
}

int
lim_parse_u64_span(const char *s, size_t len, uint64_t max, uint64_t *out)
{
	uint64_t v = 0;
	bool over = false;

	if (!s || len == 0)
		return -EINVAL;
	for (size_t i = 0; i < len; i++) {
		unsigned d = (unsigned)(s[i] - '0');

		if (!is_digit(s[i]))
			return -EINVAL;
		/* keep reading: "12x" past 2^64 is not a number, not a range */
		if (over || d > max || v > (max - d) / 10)
			over = true;
		else
			v = v * 10 + d;
	}
	if (over)
		return -ERANGE;
	*out = v;
	return 0;
}

int
lim_parse_u64(const char *s, uint64_t max, uint64_t *out)
{
	return lim_parse_u64_span(s, s ? strlen(s) : 0, max, out);
}

int
lim_parse_x64(const char *s, uint64_t *out)
{
	size_t len = s ? strlen(s) : 0;
	uint64_t v = 0;

	if (len == 0)
		return -EINVAL;
	for (size_t i = 0; i < len; i++) {
		char c = s[i];
		unsigned d;

		if (is_digit(c))
			d = (unsigned)(c - '0');
		else if (c >= 'a' && c <= 'f')
			d = (unsigned)(c - 'a' + 10);
		else if (c >= 'A' && c <= 'F')
			d = (unsigned)(c - 'A' + 10);
		else
			return -EINVAL;
		v = v << 4 | d;
	}
	if (len > 16)
		return -ERANGE;
	*out = v;
	return 0;
}

int
lim_parse_count(const char *s, uint64_t max, uint64_t *out)
{
	size_t len = s ? strlen(s) : 0;
	uint64_t mult = 1, v;
	int rc;

	if (len > 1) {
		switch (s[len - 1]) {
		case 'k': case 'K': mult = 1000; len--; break;
		case 'M': mult = 1000000; len--; break;
		case 'G': mult = 1000000000; len--; break;
		}
	}
	rc = lim_parse_u64_span(s, len, UINT64_MAX, &v);
	if (rc)
		return rc;
	/* a product past 2^64 would wrap into range: 18446744073709552k */
	if (v > max / mult)
		return -ERANGE;
	*out = v * mult;
	return 0;
}

#define NOT_YUAN "not an amount (yuan such as 5000 or 5000.50)"
#define NOT_AMOUNT                                                             \
	"not an amount (yuan such as 5000 or 5000.50, or fen such as 500050fen)"
#define ABOVE_MAX "above the maximum of 10000000000000.00 yuan"

/* Why @p s is not yuan (lim.h), or NULL when it is; *rc says how. */
static const char *
yuan_refusal(const char *s, int64_t *fen, int *rc)
{
	const char *p = s;
	int64_t yuan = 0, frac = 0;
	unsigned decimals = 0;
	bool over = false;

	*rc = -EINVAL;
	if (!*s)
		return "empty amount";
	if (*s == '-')
		return "negative amount";
	for (; is_digit(*p); p++) {
		if (over || yuan > (MAX_YUAN - (*p - '0')) / 10)
			over = true;
		else
			yuan = yuan * 10 + (*p - '0');
	}
	if (*p == '.') {
		for (p++; is_digit(*p); p++, decimals++)
			if (decimals < 2)
				frac = frac * 10 + (*p - '0');
		if (decimals == 0 && *p == '\0')
			return "no digits after the decimal point";
	}
	if (*p != '\0' || !is_digit(*s))
		return "";
	*rc = -EDOM;
	if (decimals > 2)
		return "more than 2 decimal places (the smallest unit is 1 fen = 0.01 yuan)";
	*rc = -ERANGE;
	if (decimals == 1)
		frac *= 10;
	if (over || yuan * YUAN + frac > LIM_MONEY_MAX)
		return ABOVE_MAX;
	*rc = 0;
	*fen = yuan * YUAN + frac;
	return NULL;
}

int
lim_parse_yuan(const char *s, int64_t *fen, char *err, size_t errlen)
{
	const char *why;
	int rc;

	why = yuan_refusal(s ? s : "", fen, &rc);
	return why ? say(err, errlen, rc, *why ? why : NOT_YUAN) : 0;
}

int
lim_parse_amount(const char *s, int64_t *fen, char *err, size_t errlen)
{
	size_t len = s ? strlen(s) : 0;
	const char *why;
	uint64_t v;
	int rc;

	if (len > 3 && !strcmp(s + len - 3, "fen") && *s != '-') {
		rc = lim_parse_u64_span(s, len - 3, LIM_MONEY_MAX, &v);
		if (rc)
			return say(err, errlen, rc, rc == -ERANGE ? ABOVE_MAX :
				   "fen must be a whole number (e.g. 500050fen)");
		*fen = (int64_t)v;
		return 0;
	}
	why = yuan_refusal(s ? s : "", fen, &rc);
	return why ? say(err, errlen, rc, *why ? why : NOT_AMOUNT) : 0;
}

const char *
lim_fmt_yuan(int64_t fen, char *buf, size_t n)
{
	uint64_t a = fen < 0 ? (uint64_t)0 - (uint64_t)fen : (uint64_t)fen;

	snprintf(buf, n, "%s%" PRIu64 ".%02u", fen < 0 ? "-" : "", a / YUAN,
		 (unsigned)(a % YUAN));
	return buf;
}

int64_t
lim_days_from_civil(int64_t y, unsigned m, unsigned d)
{
	int64_t era;
	unsigned yoe, doy, doe;

	y -= m <= 2;
	era = (y >= 0 ? y : y - 399) / 400;
	yoe = (unsigned)(y - era * 400);
	doy = (153 * (m > 2 ? m - 3 : m + 9) + 2) / 5 + d - 1;
	doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
	return era * 146097 + (int64_t)doe - 719468;
}

unsigned
lim_month_days(int64_t y, unsigned m)
{
	static const unsigned char days[12] = {31, 28, 31, 30, 31, 30,
					       31, 31, 30, 31, 30, 31};
	bool leap = (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;

	if (m < 1 || m > 12)
		return 0;
	return m == 2 && leap ? 29 : days[m - 1];
}

/* Exactly @p w digits at *p, then *p moves past them. */
static bool
digits(const char **p, size_t w, unsigned *out)
{
	uint64_t v;

	if (strnlen(*p, w) < w || lim_parse_u64_span(*p, w, UINT32_MAX, &v))
		return false;
	*p += w;
	*out = (unsigned)v;
	return true;
}

/* ISO 8601 in UTC as lim.h says; the fields checked, not the range. */
static int
parse_iso(const char *s, unsigned f[6], char *err, size_t errlen)
{
	const char *why = "expected unix seconds or ISO 8601 UTC such as 2026-11-25T08:00:00Z";
	const char *p = s;

	if (!digits(&p, 4, &f[0]) || *p++ != '-' || !digits(&p, 2, &f[1]) ||
	    *p++ != '-' || !digits(&p, 2, &f[2]))
		return say(err, errlen, -EINVAL, why);
	if (*p == '\0')
		return 0;
	if (*p++ != 'T' || !digits(&p, 2, &f[3]) || *p++ != ':' ||
	    !digits(&p, 2, &f[4]))
		return say(err, errlen, -EINVAL, why);
	if (*p == ':' && (p++, !digits(&p, 2, &f[5])))
		return say(err, errlen, -EINVAL, why);
	if (strcmp(p, "Z") && strcmp(p, "+00:00"))
		return say(err, errlen, -EINVAL,
			   "times must be UTC: end them with Z or +00:00");
	return 0;
}

int
lim_parse_time(const char *s, uint32_t *out, char *err, size_t errlen)
{
	const char *range = "outside 1970-01-01 .. 2106-02-07";
	unsigned f[6] = {0};
	uint64_t v;
	int64_t t;
	int rc;

	rc = lim_parse_u64(s, UINT32_MAX, &v);
	if (rc == 0) {
		*out = (uint32_t)v;
		return 0;
	}
	if (rc == -ERANGE)
		return say(err, errlen, rc, range);
	rc = parse_iso(s ? s : "", f, err, errlen);
	if (rc)
		return rc;
	if (f[1] < 1 || f[1] > 12 || f[2] < 1 ||
	    f[2] > lim_month_days(f[0], f[1]) || f[3] > 23 || f[4] > 59 ||
	    f[5] > 59)
		return say(err, errlen, -EINVAL, "no such date or time of day");
	t = lim_days_from_civil(f[0], f[1], f[2]) * DAY_S + f[3] * 3600 +
	    f[4] * 60 + f[5];
	if (t < 0 || t > (int64_t)UINT32_MAX)
		return say(err, errlen, -ERANGE, range);
	*out = (uint32_t)t;
	return 0;
}

const char *
lim_fmt_time(uint32_t t, char *buf, size_t n)
{
	unsigned m, d, s = t % DAY_S;
	int64_t y;

	lim_civil_from_days(t / DAY_S, &y, &m, &d);
	snprintf(buf, n, "%04" PRId64 "-%02u-%02uT%02u:%02u:%02uZ", y, m, d,
		 s / 3600, s / 60 % 60, s % 60);
	return buf;
}
