/*
 * Scanners for TOML's scalar values: the four string kinds (with escapes and
 * the line-ending backslash), integers in four bases with overflow checks,
 * floats including inf/nan, and the four date/time kinds with range checks.
 * The input was validated as UTF-8 before scanning starts, so these only
 * look at structure; each reports errors at the offending byte.
 */
#include "config/toml_internal.h"

#include <errno.h>
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

/* ---- strings -------------------------------------------------------------- */

static int is_control(int c)
{
	return (c >= 0 && c < 0x20 && c != '\t') || c == 0x7f;
}

static int hex_value(int c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

static int add_utf8(struct strbuf *sb, uint32_t cp)
{
	char b[4];
	size_t n;

	if (cp < 0x80) {
		b[0] = (char)cp;
		n = 1;
	} else if (cp < 0x800) {
		b[0] = (char)(0xc0 | (cp >> 6));
		b[1] = (char)(0x80 | (cp & 0x3f));
		n = 2;
	} else if (cp < 0x10000) {
		b[0] = (char)(0xe0 | (cp >> 12));
		b[1] = (char)(0x80 | ((cp >> 6) & 0x3f));
		b[2] = (char)(0x80 | (cp & 0x3f));
		n = 3;
	} else {
		b[0] = (char)(0xf0 | (cp >> 18));
		b[1] = (char)(0x80 | ((cp >> 12) & 0x3f));
		b[2] = (char)(0x80 | ((cp >> 6) & 0x3f));
		b[3] = (char)(0x80 | (cp & 0x3f));
		n = 4;
	}
	return strbuf_add(sb, b, n);
}

static int oom(struct toml_parser *p)
{
	return toml_fail(p, p->pos, "out of memory");
}

/* Consumes a newline (LF or CRLF) at p->pos if there is one; 1 if consumed. */
static int take_newline(struct toml_parser *p)
{
	if (toml_peek(p, 0) == '\n') {
		p->pos++;
		return 1;
	}
	if (toml_peek(p, 0) == '\r' && toml_peek(p, 1) == '\n') {
		p->pos += 2;
		return 1;
	}
	return 0;
}

/* An escape sequence; p->pos is at the backslash. */
static int scan_escape(struct toml_parser *p, struct strbuf *sb, int multiline)
{
	size_t start = p->pos;
	int c = toml_peek(p, 1);
	uint32_t cp = 0;
	int ndigits, i;
	char ch;

	switch (c) {
	case 'b': ch = '\b'; break;
	case 't': ch = '\t'; break;
	case 'n': ch = '\n'; break;
	case 'f': ch = '\f'; break;
	case 'r': ch = '\r'; break;
	case '"': ch = '"'; break;
	case '\\': ch = '\\'; break;
	case 'u':
	case 'U':
		ndigits = c == 'u' ? 4 : 8;
		for (i = 0; i < ndigits; i++) {
			int h = hex_value(toml_peek(p, 2 + (size_t)i));

			if (h < 0)
				return toml_fail(p, start, "\\%c escape needs %d hex digits", c, ndigits);
			cp = cp << 4 | (uint32_t)h;
		}
		if (cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff))
			return toml_fail(p, start, "escape is not a Unicode scalar value");
		p->pos += 2 + (size_t)ndigits;
		return add_utf8(sb, cp) < 0 ? oom(p) : 0;
	default:
		if (multiline && (c == ' ' || c == '\t' || c == '\n' || c == '\r')) {
			/* Line-ending backslash: only whitespace may follow it on its
			 * line; then all whitespace and newlines are dropped. */
			p->pos++;
			while (toml_peek(p, 0) == ' ' || toml_peek(p, 0) == '\t')
				p->pos++;
			if (!take_newline(p))
				return toml_fail(p, start, "invalid escape sequence");
			for (;;) {
				c = toml_peek(p, 0);
				if (c == ' ' || c == '\t')
					p->pos++;
				else if (!take_newline(p))
					break;
			}
			return 0;
		}
		return toml_fail(p, start, "invalid escape sequence");
	}
	p->pos += 2;
	return strbuf_addch(sb, ch) < 0 ? oom(p) : 0;
}

/* Handles a run of quote characters q inside a multi-line string. Returns 1
 * when the string ended, 0 to continue, -1 on error. */
static int multiline_quotes(struct toml_parser *p, struct strbuf *sb, int q)
{
	size_t n = 0;

	while (toml_peek(p, n) == q)
		n++;
	if (n < 3) {
		p->pos += n;
		return strbuf_add(sb, p->text + p->pos - n, n) < 0 ? oom(p) : 0;
	}
	if (n > 5)
		return toml_fail(p, p->pos, "too many quotes at the end of a multi-line string");
	/* Up to two quotes right before the closing delimiter belong to the content. */
	if (strbuf_add(sb, p->text + p->pos, n - 3) < 0)
		return oom(p);
	p->pos += n;
	return 1;
}

static int scan_multiline(struct toml_parser *p, struct strbuf *sb, int q)
{
	size_t open = p->pos;

	p->pos += 3;
	take_newline(p); /* a newline right after the delimiter is trimmed */
	for (;;) {
		size_t run = p->pos;
		int c, r;

		while (p->pos < p->len) {
			c = (unsigned char)p->text[p->pos];
			if (c == q || c == '\\' || c == '\r' || c == '\n' || is_control(c))
				break;
			p->pos++;
		}
		if (strbuf_add(sb, p->text + run, p->pos - run) < 0)
			return oom(p);
		c = toml_peek(p, 0);
		if (c < 0)
			return toml_fail(p, open, "unterminated multi-line string");
		if (c == q) {
			r = multiline_quotes(p, sb, q);
			if (r)
				return r < 0 ? -1 : 0;
		} else if (c == '\\' && q == '"') {
			if (scan_escape(p, sb, 1) < 0)
				return -1;
		} else if (c == '\\') {
			p->pos++;
			if (strbuf_addch(sb, '\\') < 0)
				return oom(p);
		} else if (c == '\n' || c == '\r') {
			if (!take_newline(p))
				return toml_fail(p, p->pos, "carriage return not followed by a newline");
			if (strbuf_addch(sb, '\n') < 0)
				return oom(p);
		} else {
			return toml_fail(p, p->pos, "control character U+%04X in a string", c);
		}
	}
}

static int scan_single_line(struct toml_parser *p, struct strbuf *sb, int q)
{
	size_t open = p->pos;

	p->pos++;
	for (;;) {
		size_t run = p->pos;
		int c;

		while (p->pos < p->len) {
			c = (unsigned char)p->text[p->pos];
			if (c == q || (c == '\\' && q == '"') || is_control(c))
				break;
			p->pos++;
		}
		if (strbuf_add(sb, p->text + run, p->pos - run) < 0)
			return oom(p);
		c = toml_peek(p, 0);
		if (c < 0 || c == '\n' || c == '\r')
			return toml_fail(p, open, "unterminated string");
		if (c == q) {
			p->pos++;
			return 0;
		}
		if (c == '\\') {
			if (scan_escape(p, sb, 0) < 0)
				return -1;
			continue;
		}
		return toml_fail(p, p->pos, "control character U+%04X in a string", c);
	}
}

int toml_scan_string(struct toml_parser *p, struct strbuf *sb, int key_mode)
{
	int q = toml_peek(p, 0);

	if (toml_peek(p, 1) == q && toml_peek(p, 2) == q) {
		if (key_mode)
			return toml_fail(p, p->pos, "a key cannot be a multi-line string");
		return scan_multiline(p, sb, q);
	}
	return scan_single_line(p, sb, q);
}

/* ---- dates and times ------------------------------------------------------ */

/* Reads exactly n digits at p->pos+off; -1 if they are not all digits. */
static int digits_at(struct toml_parser *p, size_t off, int n)
{
	int v = 0, i;

	for (i = 0; i < n; i++) {
		int c = toml_peek(p, off + (size_t)i);

		if (c < '0' || c > '9')
			return -1;
		v = v * 10 + (c - '0');
	}
	return v;
}

static int is_leap(int y)
{
	return (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
}

static int days_in_month(int y, int m)
{
	static const int days[12] = { 31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31 };

	return m == 2 && is_leap(y) ? 29 : days[m - 1];
}

/* HH:MM:SS[.frac] at p->pos, appended to sb in canonical form. */
static int scan_time(struct toml_parser *p, struct strbuf *sb)
{
	size_t start = p->pos, fstart;
	int h = digits_at(p, 0, 2), m = digits_at(p, 3, 2), s;

	if (h < 0 || toml_peek(p, 2) != ':' || m < 0)
		return toml_fail(p, start, "invalid time, expected HH:MM:SS");
	if (toml_peek(p, 5) != ':')
		return toml_fail(p, start, "invalid time: seconds are required");
	s = digits_at(p, 6, 2);
	if (s < 0)
		return toml_fail(p, start, "invalid time, expected HH:MM:SS");
	if (h > 23 || m > 59 || s > 60)
		return toml_fail(p, start, "time out of range");
	if (strbuf_add(sb, p->text + start, 8) < 0)
		return oom(p);
	p->pos += 8;
	if (toml_peek(p, 0) == '.') {
		fstart = p->pos + 1;
		p->pos++;
		while (toml_peek(p, 0) >= '0' && toml_peek(p, 0) <= '9')
			p->pos++;
		if (p->pos == fstart)
			return toml_fail(p, start, "invalid time: digits expected after '.'");
		if (strbuf_add(sb, p->text + fstart - 1, p->pos - fstart + 1) < 0)
			return oom(p);
	}
	return 0;
}

static int scan_datetime(struct toml_parser *p, struct toml_value *v)
{
	struct strbuf *sb = &p->scratch;
	size_t start = p->pos;
	int y, mo, d, c, ret = -1;

	strbuf_reset(sb);
	if (toml_peek(p, 2) == ':') {
		if (scan_time(p, sb) < 0)
			goto out;
		v->type = TOML_TIME_LOCAL;
		goto done;
	}
	y = digits_at(p, 0, 4);
	mo = digits_at(p, 5, 2);
	d = digits_at(p, 8, 2);
	if (y < 0 || mo < 0 || d < 0 || toml_peek(p, 4) != '-' || toml_peek(p, 7) != '-') {
		toml_fail(p, start, "invalid date, expected YYYY-MM-DD");
		goto out;
	}
	if (mo < 1 || mo > 12 || d < 1 || d > days_in_month(y, mo)) {
		toml_fail(p, start, "date out of range");
		goto out;
	}
	if (strbuf_add(sb, p->text + start, 10) < 0) {
		oom(p);
		goto out;
	}
	p->pos += 10;
	c = toml_peek(p, 0);
	if (c == 'T' || c == 't') {
		p->pos++;
	} else if (c == ' ' && digits_at(p, 1, 2) >= 0 && toml_peek(p, 3) == ':') {
		p->pos++;
	} else {
		v->type = TOML_DATE_LOCAL;
		goto done;
	}
	if (strbuf_addch(sb, 'T') < 0 || scan_time(p, sb) < 0) {
		if (!p->failed)
			oom(p);
		goto out;
	}
	c = toml_peek(p, 0);
	if (c == 'Z' || c == 'z') {
		p->pos++;
		v->type = TOML_DATETIME;
		if (strbuf_addch(sb, 'Z') < 0) {
			oom(p);
			goto out;
		}
	} else if (c == '+' || c == '-') {
		int oh = digits_at(p, 1, 2), om = digits_at(p, 4, 2);

		if (oh < 0 || om < 0 || toml_peek(p, 3) != ':') {
			toml_fail(p, p->pos, "invalid time offset, expected +HH:MM");
			goto out;
		}
		if (oh > 23 || om > 59) {
			toml_fail(p, p->pos, "time offset out of range");
			goto out;
		}
		if (strbuf_add(sb, p->text + p->pos, 6) < 0) {
			oom(p);
			goto out;
		}
		p->pos += 6;
		v->type = TOML_DATETIME;
	} else {
		v->type = TOML_DATETIME_LOCAL;
	}
done:
	v->u.datetime = toml_scratch_copy(p, NULL);
	if (!v->u.datetime) {
		oom(p);
		goto out;
	}
	ret = 0;
out:
	return ret;
}

/* ---- numbers -------------------------------------------------------------- */

static int is_token_char(int c)
{
	return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
	       c == '_' || c == '+' || c == '-' || c == '.';
}

/*
 * Digits of a base with single underscores between them, from t[*i]. Returns
 * how many digits were read, or -1 when an underscore is misplaced.
 */
static long scan_digits(const char *t, size_t n, size_t *i, int base)
{
	long count = 0;
	int prev_us = 1; /* an underscore may not come first */

	while (*i < n) {
		int c = (unsigned char)t[*i], dv;

		if (c == '_') {
			if (prev_us)
				return -1;
			prev_us = 1;
			(*i)++;
			continue;
		}
		dv = hex_value(c);
		if (dv < 0 || dv >= base)
			break;
		prev_us = 0;
		count++;
		(*i)++;
	}
	if (count && prev_us)
		return -1; /* trailing underscore */
	if (!count && *i < n && t[*i] == '_')
		return -1;
	return count;
}

static int digit_value_sum(const char *t, size_t from, size_t to, int base, uint64_t limit, uint64_t *out)
{
	uint64_t v = 0;
	size_t i;

	for (i = from; i < to; i++) {
		int dv;

		if (t[i] == '_')
			continue;
		dv = hex_value((unsigned char)t[i]);
		if (v > (limit - (uint64_t)dv) / (uint64_t)base)
			return -1;
		v = v * (uint64_t)base + (uint64_t)dv;
	}
	*out = v;
	return 0;
}

static int scan_float_text(struct toml_parser *p, size_t start, const char *t, size_t n, struct toml_value *v)
{
	char *buf = malloc(n + 1);
	size_t i, j = 0;
	double d;
	char *end;
	int ret = -1;

	if (!buf)
		return oom(p);
	for (i = 0; i < n; i++)
		if (t[i] != '_')
			buf[j++] = t[i];
	buf[j] = '\0';
	errno = 0;
	d = strtod(buf, &end);
	if (end != buf + j) {
		toml_fail(p, start, "invalid float");
		goto out;
	}
	if (errno == ERANGE && isinf(d)) {
		toml_fail(p, start, "float out of range");
		goto out;
	}
	v->type = TOML_FLOAT;
	v->u.floating = d;
	ret = 0;
out:
	free(buf);
	return ret;
}

static int scan_number(struct toml_parser *p, struct toml_value *v)
{
	size_t start = p->pos, n, i = 0, int_start, int_end;
	const char *t = p->text + start;
	int neg = 0, is_float = 0;
	uint64_t mag;
	long nd;

	while (p->pos < p->len && is_token_char((unsigned char)p->text[p->pos]))
		p->pos++;
	n = p->pos - start;
	if (n && (t[0] == '+' || t[0] == '-')) {
		neg = t[0] == '-';
		i = 1;
	}
	if (n - i == 3 && (memcmp(t + i, "inf", 3) == 0 || memcmp(t + i, "nan", 3) == 0)) {
		v->type = TOML_FLOAT;
		if (t[i] == 'i')
			v->u.floating = neg ? -INFINITY : INFINITY;
		else
			v->u.floating = neg ? -NAN : NAN;
		return 0;
	}
	if (n - i >= 2 && t[i] == '0' && (t[i + 1] == 'x' || t[i + 1] == 'o' || t[i + 1] == 'b')) {
		int base = t[i + 1] == 'x' ? 16 : t[i + 1] == 'o' ? 8 : 2;

		if (i)
			return toml_fail(p, start, "a sign is not allowed on hex, octal or binary integers");
		i += 2;
		int_start = i;
		nd = scan_digits(t, n, &i, base);
		if (nd <= 0 || i != n)
			return toml_fail(p, start, "invalid %s integer",
					 base == 16 ? "hexadecimal" : base == 8 ? "octal" : "binary");
		if (digit_value_sum(t, int_start, n, base, INT64_MAX, &mag) < 0)
			return toml_fail(p, start, "integer out of range");
		v->type = TOML_INTEGER;
		v->u.integer = (int64_t)mag;
		return 0;
	}
	int_start = i;
	nd = scan_digits(t, n, &i, 10);
	if (nd <= 0)
		return toml_fail(p, start, "invalid number");
	if (nd > 1 && t[int_start] == '0')
		return toml_fail(p, start, "leading zeros are not allowed");
	int_end = i;
	if (i < n && t[i] == '.') {
		i++;
		nd = scan_digits(t, n, &i, 10);
		if (nd <= 0)
			return toml_fail(p, start, "invalid float: digits expected after '.'");
		is_float = 1;
	}
	if (i < n && (t[i] == 'e' || t[i] == 'E')) {
		i++;
		if (i < n && (t[i] == '+' || t[i] == '-'))
			i++;
		nd = scan_digits(t, n, &i, 10);
		if (nd <= 0)
			return toml_fail(p, start, "invalid float exponent");
		is_float = 1;
	}
	if (i != n)
		return toml_fail(p, start, "invalid number");
	if (is_float)
		return scan_float_text(p, start, t, n, v);
	if (digit_value_sum(t, int_start, int_end, 10, neg ? (uint64_t)INT64_MAX + 1 : (uint64_t)INT64_MAX,
			    &mag) < 0)
		return toml_fail(p, start, "integer out of range");
	v->type = TOML_INTEGER;
	if (neg)
		v->u.integer = mag == (uint64_t)INT64_MAX + 1 ? INT64_MIN : -(int64_t)mag;
	else
		v->u.integer = (int64_t)mag;
	return 0;
}

int toml_scan_number_or_datetime(struct toml_parser *p, struct toml_value *v)
{
	if (digits_at(p, 0, 4) >= 0 && toml_peek(p, 4) == '-')
		return scan_datetime(p, v);
	if (digits_at(p, 0, 2) >= 0 && toml_peek(p, 2) == ':')
		return scan_datetime(p, v);
	return scan_number(p, v);
}
