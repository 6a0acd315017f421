/*
 * Entry points and small shared helpers of the gitaly configuration: the
 * load pipeline (TOML, config_command JSON, defaults), releasing a config by
 * walking the schema, storage lookup, and Go-compatible formatting of
 * durations, floats and quoted strings so our messages match upstream's
 * byte for byte.
 */
#include "config/config.h"

#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "base/strbuf.h"
#include "config/config_internal.h"
#include "config/toml.h"

#define CONFIG_FILE_CAP ((size_t)64 << 20)

void config_free_strarr(char ***arr, size_t *n)
{
	for (size_t i = 0; i < *n; i++)
		free((*arr)[i]);
	free(*arr);
	*arr = NULL;
	*n = 0;
}

static void release_schema(const struct cschema *s, char *base)
{
	for (size_t i = 0; i < s->n; i++) {
		const struct cfield *f = &s->fields[i];
		switch (f->kind) {
		case CF_STR: {
			char **p = (char **)(base + f->off);
			free(*p);
			*p = NULL;
			break;
		}
		case CF_STRARR:
			config_free_strarr((char ***)(base + f->off), (size_t *)(base + f->n_off));
			break;
		case CF_FLOATARR: {
			double **p = (double **)(base + f->off);
			free(*p);
			*p = NULL;
			*(size_t *)(base + f->n_off) = 0;
			break;
		}
		case CF_TABLE:
			release_schema(f->sub, base);
			break;
		case CF_TABARR: {
			char **p = (char **)(base + f->off);
			size_t *n = (size_t *)(base + f->n_off);
			for (size_t j = 0; j < *n; j++)
				release_schema(f->sub, *p + j * f->sub->elem_size);
			free(*p);
			*p = NULL;
			*n = 0;
			break;
		}
		default:
			break;
		}
	}
}

void config_release_elem(const struct cschema *s, char *base)
{
	release_schema(s, base);
}

void config_release(struct config *cfg)
{
	if (!cfg)
		return;
	release_schema(&config_schema_root, (char *)cfg);
	memset(cfg, 0, sizeof(*cfg));
}

const struct config_storage *config_storage_find(const struct config *cfg, const char *name)
{
	for (size_t i = 0; i < cfg->n_storages; i++) {
		if (cfg->storages[i].name && !strcmp(cfg->storages[i].name, name))
			return &cfg->storages[i];
	}
	return NULL;
}

int config_load_ex(struct config *cfg, const char *toml, size_t len,
		   struct config_decode_error *derr, struct error *err)
{
	char *out = NULL;
	size_t out_len = 0;
	int ret = -1;

	memset(cfg, 0, sizeof(*cfg));
	memset(derr, 0, sizeof(*derr));
	if (config_seed_defaults(cfg) < 0) {
		error_set(err, STATUS_INTERNAL, "out of memory");
		goto out;
	}
	if (config_load_toml(cfg, toml, len, derr, err) < 0)
		goto out;
	if (cfg->config_command && *cfg->config_command) {
		if (config_run_command(cfg->config_command, &out, &out_len, err) < 0)
			goto out;
		if (config_merge_json(cfg, out, out_len, err) < 0)
			goto out;
	}
	if (config_apply_defaults(cfg, err) < 0)
		goto out;
	ret = 0;
out:
	free(out);
	if (ret < 0)
		config_release(cfg);
	return ret;
}

int config_load(struct config *cfg, const char *toml, size_t len, struct error *err)
{
	struct config_decode_error derr;

	return config_load_ex(cfg, toml, len, &derr, err);
}

int config_load_file(struct config *cfg, const char *path, struct error *err)
{
	struct strbuf sb = STRBUF_INIT;
	char buf[65536];
	int fd = -1, ret = -1;

	memset(cfg, 0, sizeof(*cfg));
	strbuf_init(&sb, CONFIG_FILE_CAP);
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0) {
		error_set(err, STATUS_INVALID_ARGUMENT, "open %s: %s", path, strerror(errno));
		goto out;
	}
	for (;;) {
		ssize_t n = read(fd, buf, sizeof(buf));
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			error_set(err, STATUS_INVALID_ARGUMENT, "read %s: %s", path, strerror(errno));
			goto out;
		}
		if (n == 0)
			break;
		if (strbuf_add(&sb, buf, (size_t)n) < 0) {
			error_set(err, STATUS_INVALID_ARGUMENT, "read %s: file too large", path);
			goto out;
		}
	}
	ret = config_load(cfg, sb.buf ? sb.buf : "", sb.len, err);
out:
	if (fd >= 0)
		close(fd);
	strbuf_release(&sb);
	return ret;
}

/* --- Go-compatible formatting ------------------------------------------- */

/* Decodes one UTF-8 sequence; returns its length, or 0 when invalid. */
static size_t utf8_decode(const unsigned char *s, size_t len, uint32_t *cp)
{
	if (s[0] < 0x80) {
		*cp = s[0];
		return 1;
	}
	size_t n;
	uint32_t c, min;
	if ((s[0] & 0xe0) == 0xc0) {
		n = 2, c = s[0] & 0x1f, min = 0x80;
	} else if ((s[0] & 0xf0) == 0xe0) {
		n = 3, c = s[0] & 0x0f, min = 0x800;
	} else if ((s[0] & 0xf8) == 0xf0) {
		n = 4, c = s[0] & 0x07, min = 0x10000;
	} else {
		return 0;
	}
	if (n > len)
		return 0;
	for (size_t i = 1; i < n; i++) {
		if ((s[i] & 0xc0) != 0x80)
			return 0;
		c = (c << 6) | (s[i] & 0x3f);
	}
	if (c < min || c > 0x10ffff || (c >= 0xd800 && c <= 0xdfff))
		return 0;
	*cp = c;
	return n;
}

int config_go_quote(struct strbuf *sb, const char *str, size_t len)
{
	const unsigned char *s = (const unsigned char *)str;
	int r = strbuf_addch(sb, '"');

	for (size_t i = 0; i < len && r == 0;) {
		uint32_t cp;
		size_t n = utf8_decode(s + i, len - i, &cp);
		if (n == 0) {
			r = strbuf_addf(sb, "\\x%02x", s[i]);
			i++;
			continue;
		}
		switch (cp) {
		case '"': r = strbuf_adds(sb, "\\\""); break;
		case '\\': r = strbuf_adds(sb, "\\\\"); break;
		case '\a': r = strbuf_adds(sb, "\\a"); break;
		case '\b': r = strbuf_adds(sb, "\\b"); break;
		case '\f': r = strbuf_adds(sb, "\\f"); break;
		case '\n': r = strbuf_adds(sb, "\\n"); break;
		case '\r': r = strbuf_adds(sb, "\\r"); break;
		case '\t': r = strbuf_adds(sb, "\\t"); break;
		case '\v': r = strbuf_adds(sb, "\\v"); break;
		default:
			if (cp < 0x20 || cp == 0x7f)
				r = strbuf_addf(sb, "\\x%02x", cp);
			else if ((cp >= 0x80 && cp <= 0xa0) || cp == 0xad || cp == 0x2028 ||
				 cp == 0x2029 || cp == 0xfeff)
				r = strbuf_addf(sb, "\\u%04x", cp);
			else
				r = strbuf_add(sb, s + i, n);
		}
		i += n;
	}
	return r ? r : strbuf_addch(sb, '"');
}

int config_go_float(struct strbuf *sb, double v)
{
	char buf[64];
	int prec;

	if (isnan(v))
		return strbuf_adds(sb, "NaN");
	if (isinf(v))
		return strbuf_adds(sb, v > 0 ? "+Inf" : "-Inf");
	if (v == 0)
		return strbuf_adds(sb, signbit(v) ? "-0" : "0");
	/* Shortest digits that round-trip, as strconv does. */
	for (prec = 1; prec <= 17; prec++) {
		snprintf(buf, sizeof(buf), "%.*e", prec - 1, v);
		if (strtod(buf, NULL) == v)
			break;
	}
	/* buf is [-]d.ddde[+-]XX; collect digits and exponent. */
	char digits[32];
	int nd = 0, exp10;
	const char *p = buf;
	int neg = 0;
	if (*p == '-') {
		neg = 1;
		p++;
	}
	for (; *p && *p != 'e'; p++) {
		if (*p >= '0' && *p <= '9')
			digits[nd++] = *p;
	}
	exp10 = atoi(p + 1);
	while (nd > 1 && digits[nd - 1] == '0')
		nd--;
	digits[nd] = 0;
	int dp = exp10 + 1; /* decimal point position */
	int eprec = 6;
	if (eprec > nd && nd >= dp)
		eprec = nd;
	struct strbuf t = STRBUF_INIT;
	int r = 0;
	if (neg)
		r |= strbuf_addch(&t, '-');
	if (exp10 < -4 || exp10 >= eprec) {
		r |= strbuf_addch(&t, digits[0]);
		if (nd > 1) {
			r |= strbuf_addch(&t, '.');
			r |= strbuf_adds(&t, digits + 1);
		}
		r |= strbuf_addf(&t, "e%c%02d", exp10 < 0 ? '-' : '+', exp10 < 0 ? -exp10 : exp10);
	} else if (dp <= 0) {
		r |= strbuf_adds(&t, "0.");
		for (int i = 0; i < -dp; i++)
			r |= strbuf_addch(&t, '0');
		r |= strbuf_adds(&t, digits);
	} else {
		for (int i = 0; i < dp; i++)
			r |= strbuf_addch(&t, i < nd ? digits[i] : '0');
		if (nd > dp) {
			r |= strbuf_addch(&t, '.');
			r |= strbuf_adds(&t, digits + dp);
		}
	}
	if (!r)
		r = strbuf_add(sb, t.buf, t.len);
	strbuf_release(&t);
	return r ? -1 : 0;
}

void config_format_duration(int64_t ms, char *out, size_t n)
{
	uint64_t u = ms < 0 ? (uint64_t)0 - (uint64_t)ms : (uint64_t)ms;
	const char *sign = ms < 0 ? "-" : "";

	if (u == 0) {
		snprintf(out, n, "0s");
		return;
	}
	if (u < 1000) {
		snprintf(out, n, "%s%llums", sign, (unsigned long long)u);
		return;
	}
	uint64_t h = u / 3600000, m = (u / 60000) % 60, s = (u / 1000) % 60, frac = u % 1000;
	char secs[32];
	if (frac) {
		char f[8];
		snprintf(f, sizeof(f), "%03llu", (unsigned long long)frac);
		size_t fl = strlen(f);
		while (fl > 0 && f[fl - 1] == '0')
			f[--fl] = 0;
		snprintf(secs, sizeof(secs), "%llu.%ss", (unsigned long long)s, f);
	} else {
		snprintf(secs, sizeof(secs), "%llus", (unsigned long long)s);
	}
	if (h)
		snprintf(out, n, "%s%lluh%llum%s", sign, (unsigned long long)h, (unsigned long long)m, secs);
	else if (m)
		snprintf(out, n, "%s%llum%s", sign, (unsigned long long)m, secs);
	else
		snprintf(out, n, "%s%s", sign, secs);
}

/* The time package quotes with its own rules: bytes outside printable
 * ASCII become \xNN (even valid UTF-8), '"' and '\\' get a backslash. */
static void time_quote(struct strbuf *sb, const char *s, size_t len)
{
	strbuf_addch(sb, '"');
	for (size_t i = 0; i < len; i++) {
		unsigned char c = (unsigned char)s[i];
		if (c >= 0x80 || c < 0x20)
			strbuf_addf(sb, "\\x%02x", c);
		else if (c == '"' || c == '\\')
			strbuf_addf(sb, "\\%c", c);
		else
			strbuf_addch(sb, (char)c);
	}
	strbuf_addch(sb, '"');
}

static int duration_error(struct error *err, const char *fmt_prefix, const char *unit,
			  size_t unit_len, const char *s)
{
	struct strbuf sb = STRBUF_INIT;

	strbuf_adds(&sb, fmt_prefix);
	if (unit) {
		time_quote(&sb, unit, unit_len);
		strbuf_adds(&sb, " in duration ");
	}
	time_quote(&sb, s, strlen(s));
	error_set(err, STATUS_INVALID_ARGUMENT, "%s", sb.buf ? sb.buf : "");
	strbuf_release(&sb);
	return -1;
}

int config_parse_duration(const char *orig, int64_t *ms, struct error *err)
{
	static const struct { const char *name; uint64_t ns; } units[] = {
		{ "ns", 1ULL }, { "us", 1000ULL }, { "\xc2\xb5s", 1000ULL }, { "\xce\xbcs", 1000ULL },
		{ "ms", 1000000ULL }, { "s", 1000000000ULL }, { "m", 60000000000ULL },
		{ "h", 3600000000000ULL },
	};
	const char *s = orig;
	uint64_t total = 0;
	int neg = 0;

	if (*s == '-' || *s == '+') {
		neg = *s == '-';
		s++;
	}
	if (!strcmp(s, "0")) {
		*ms = 0;
		return 0;
	}
	if (!*s)
		return duration_error(err, "time: invalid duration ", NULL, 0, orig);
	while (*s) {
		uint64_t v = 0, f = 0, scale = 1;
		int pre = 0, post = 0, overflow = 0;
		if (!(*s == '.' || (*s >= '0' && *s <= '9')))
			return duration_error(err, "time: invalid duration ", NULL, 0, orig);
		for (; *s >= '0' && *s <= '9'; s++, pre = 1) {
			if (v > (UINT64_C(1) << 63) / 10)
				return duration_error(err, "time: invalid duration ", NULL, 0, orig);
			v = v * 10 + (uint64_t)(*s - '0');
			if (v > (UINT64_C(1) << 63))
				return duration_error(err, "time: invalid duration ", NULL, 0, orig);
		}
		if (*s == '.') {
			s++;
			for (; *s >= '0' && *s <= '9'; s++, post = 1) {
				if (overflow)
					continue;
				if (f > (UINT64_C(1) << 63) / 10) {
					overflow = 1;
					continue;
				}
				f = f * 10 + (uint64_t)(*s - '0');
				scale *= 10;
			}
		}
		if (!pre && !post)
			return duration_error(err, "time: invalid duration ", NULL, 0, orig);
		const char *u = s;
		while (*s && *s != '.' && !(*s >= '0' && *s <= '9'))
			s++;
		size_t ulen = (size_t)(s - u);
		if (ulen == 0)
			return duration_error(err, "time: missing unit in duration ", NULL, 0, orig);
		uint64_t unit = 0;
		for (size_t i = 0; i < sizeof(units) / sizeof(units[0]); i++) {
			if (strlen(units[i].name) == ulen && !memcmp(units[i].name, u, ulen))
				unit = units[i].ns;
		}
		if (!unit)
			return duration_error(err, "time: unknown unit ", u, ulen, orig);
		if (v > (UINT64_C(1) << 63) / unit)
			return duration_error(err, "time: invalid duration ", NULL, 0, orig);
		v *= unit;
		if (f > 0) {
			v += (uint64_t)((double)f * ((double)unit / (double)scale));
			if (v > (UINT64_C(1) << 63))
				return duration_error(err, "time: invalid duration ", NULL, 0, orig);
		}
		total += v;
		if (total > (UINT64_C(1) << 63))
			return duration_error(err, "time: invalid duration ", NULL, 0, orig);
	}
	if (!neg && total > (uint64_t)INT64_MAX)
		return duration_error(err, "time: invalid duration ", NULL, 0, orig);
	int64_t ns_ms = (int64_t)(total / 1000000ULL);
	*ms = neg ? -ns_ms : ns_ms;
	return 0;
}

