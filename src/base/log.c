/*
 * The logger: formats one line per event, JSON or text, and writes it with
 * one write(2) so concurrent lines never interleave.
 */
#include "base/log.h"

#include <pthread.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

#include "base/strbuf.h"

static enum log_format log_format_cur = LOG_FORMAT_TEXT;
static enum log_level log_level_cur = LOG_INFO;
static int log_fd = 2;

static const char *const level_names[] = { "debug", "info", "warning", "error", "fatal" };

/*
 * The "pid" field: glibc no longer caches getpid(), and one system call per
 * log line shows in ServerInfo's profile. A forked child (config_command's
 * fork) starts over; posix_spawn children never run this code.
 */
static pthread_once_t pid_once = PTHREAD_ONCE_INIT;
static int pid_cached; /* atomics; 0: not known */

static void pid_forget(void)
{
	__atomic_store_n(&pid_cached, 0, __ATOMIC_RELAXED);
}

static void pid_once_init(void)
{
	pthread_atfork(NULL, NULL, pid_forget);
}

static int log_pid(void)
{
	int p;

	pthread_once(&pid_once, pid_once_init);
	p = __atomic_load_n(&pid_cached, __ATOMIC_RELAXED);
	if (!p) {
		p = (int)getpid();
		__atomic_store_n(&pid_cached, p, __ATOMIC_RELAXED);
	}
	return p;
}

void log_configure(enum log_format format, enum log_level level, int fd)
{
	log_format_cur = format;
	log_level_cur = level;
	log_fd = fd;
}

int log_level_parse(const char *name, enum log_level *out)
{
	static const struct { const char *name; enum log_level level; } map[] = {
		{ "trace", LOG_DEBUG }, { "debug", LOG_DEBUG }, { "info", LOG_INFO },
		{ "warn", LOG_WARN },   { "warning", LOG_WARN }, { "error", LOG_ERROR },
		{ "fatal", LOG_FATAL }, { "panic", LOG_FATAL },
	};
	for (size_t i = 0; i < sizeof(map) / sizeof(map[0]); i++) {
		if (!strcasecmp(name, map[i].name)) {
			*out = map[i].level;
			return 0;
		}
	}
	return -1;
}

int log_enabled(enum log_level level)
{
	return level >= log_level_cur;
}

/*
 * Per-thread scratch buffers for building lines: a busy server writes a
 * line per call, and two mallocs and frees per line showed in profiles.
 * Freed at thread exit; one that grew past SCRATCH_KEEP is freed at once.
 */
#define SCRATCH_KEEP ((size_t)64 << 10)

struct log_scratch {
	struct strbuf vals, line, caller;
};

static pthread_once_t scratch_once = PTHREAD_ONCE_INIT;
static pthread_key_t scratch_key;
static __thread struct log_scratch *scratch_tl;

static void scratch_free(void *p)
{
	struct log_scratch *sc = p;

	strbuf_release(&sc->vals);
	strbuf_release(&sc->line);
	strbuf_release(&sc->caller);
	free(sc);
}

static void scratch_key_init(void)
{
	if (pthread_key_create(&scratch_key, scratch_free))
		abort();
}

/* This thread's scratch buffers, or NULL when out of memory. */
static struct log_scratch *scratch_get(void)
{
	struct log_scratch *sc = scratch_tl;

	if (sc)
		return sc;
	pthread_once(&scratch_once, scratch_key_init);
	sc = calloc(1, sizeof(*sc));
	if (!sc)
		return NULL;
	if (pthread_setspecific(scratch_key, sc)) {
		free(sc);
		return NULL;
	}
	scratch_tl = sc;
	return sc;
}

static void scratch_put(struct strbuf *sb)
{
	if (sb->alloc > SCRATCH_KEEP)
		strbuf_release(sb);
	else
		strbuf_reset(sb);
}

struct strbuf *log_scratch_take(void)
{
	struct log_scratch *sc = scratch_get();

	if (!sc)
		return NULL;
	strbuf_reset(&sc->caller);
	return &sc->caller;
}

void log_scratch_return(struct strbuf *sb)
{
	if (sb)
		scratch_put(sb);
}

static void utc_timestamp(char *out, size_t n)
{
	/* the date and time of the current second, formatted once per thread */
	static __thread time_t cached_sec = (time_t)-1;
	static __thread char cached[64];
	struct timeval tv;
	int ms;

	gettimeofday(&tv, NULL);
	if (tv.tv_sec != cached_sec) {
		struct tm tm;
		gmtime_r(&tv.tv_sec, &tm);
		snprintf(cached, sizeof(cached), "%04d-%02d-%02dT%02d:%02d:%02d",
			 tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min,
			 tm.tm_sec);
		cached_sec = tv.tv_sec;
	}
	ms = (int)(tv.tv_usec / 1000);
	{
		size_t len = strlen(cached);
		if (n < len + 6) {
			if (n)
				out[0] = 0;
			return;
		}
		memcpy(out, cached, len);
		out[len] = '.';
		out[len + 1] = (char)('0' + ms / 100);
		out[len + 2] = (char)('0' + ms / 10 % 10);
		out[len + 3] = (char)('0' + ms % 10);
		out[len + 4] = 'Z';
		out[len + 5] = 0;
	}
}

static void write_all(int fd, const char *buf, size_t len)
{
	while (len) {
		ssize_t n = write(fd, buf, len);
		if (n <= 0)
			return;
		buf += n;
		len -= (size_t)n;
	}
}

void log_fields(enum log_level level, json_t *fields, const char *msg)
{
	char ts[96];
	struct strbuf sb = STRBUF_INIT;

	if (!log_enabled(level)) {
		json_decref(fields);
		return;
	}
	utc_timestamp(ts, sizeof(ts));
	if (!fields)
		fields = json_object();
	if (log_format_cur == LOG_FORMAT_JSON) {
		char *line;
		json_object_set_new(fields, "level", json_string(level_names[level]));
		json_object_set_new(fields, "msg", json_string(msg));
		json_object_set_new(fields, "pid", json_integer(log_pid()));
		json_object_set_new(fields, "time", json_string(ts));
		line = json_dumps(fields, JSON_COMPACT | JSON_SORT_KEYS | JSON_REAL_PRECISION(15));
		if (line) {
			strbuf_adds(&sb, line);
			free(line);
		}
	} else {
		const char *key;
		json_t *value;
		strbuf_addf(&sb, "time=\"%s\" level=%s msg=\"%s\" pid=%d", ts, level_names[level], msg,
			    log_pid());
		json_object_foreach(fields, key, value) {
			char *v = json_dumps(value, JSON_COMPACT | JSON_ENCODE_ANY);
			if (v) {
				strbuf_addf(&sb, " %s=%s", key, v);
				free(v);
			}
		}
	}
	strbuf_addch(&sb, '\n');
	write_all(log_fd, sb.buf, sb.len);
	strbuf_release(&sb);
	json_decref(fields);
}

int log_is_json(void)
{
	return log_format_cur == LOG_FORMAT_JSON;
}

/* Length of the UTF-8 sequence at s (jansson's rules), 0 when invalid. */
static size_t utf8_len(const unsigned char *s, uint32_t *cp)
{
	unsigned char c = s[0];
	size_t n;
	uint32_t v;

	if (c < 0x80) {
		*cp = c;
		return 1;
	}
	if (c >= 0xc2 && c <= 0xdf) {
		n = 2;
		v = c & 0x1f;
	} else if (c >= 0xe0 && c <= 0xef) {
		n = 3;
		v = c & 0x0f;
	} else if (c >= 0xf0 && c <= 0xf4) {
		n = 4;
		v = c & 0x07;
	} else {
		return 0;
	}
	for (size_t i = 1; i < n; i++) {
		if ((s[i] & 0xc0) != 0x80)
			return 0;
		v = v << 6 | (s[i] & 0x3f);
	}
	if (v > 0x10ffff || (v >= 0xd800 && v <= 0xdfff) || (n == 3 && v < 0x800) ||
	    (n == 4 && v < 0x10000))
		return 0;
	*cp = v;
	return n;
}

int log_json_string(struct strbuf *sb, const char *s)
{
	const unsigned char *p = (const unsigned char *)s;
	size_t start = sb->len;

	strbuf_addch(sb, '"');
	while (*p) {
		const unsigned char *run = p;
		uint32_t cp = 0;
		size_t n = 0;

		/* copy the longest run needing no escape (ASCII inline) */
		for (;;) {
			unsigned char c = *p;
			if (c >= 0x20 && c < 0x80 && c != '"' && c != '\\') {
				p++;
				continue;
			}
			if (c < 0x80 || !(n = utf8_len(p, &cp)))
				break;
			p += n;
		}
		if (*p && *p < 0x80) {
			n = 1;
			cp = *p;
		}
		if (p > run)
			strbuf_add(sb, run, (size_t)(p - run));
		if (!*p)
			break;
		if (!n) {
			sb->len = start; /* invalid UTF-8: jansson drops the field */
			if (sb->buf)
				sb->buf[start] = '\0';
			return -1;
		}
		switch (cp) {
		case '"': strbuf_add(sb, "\\\"", 2); break;
		case '\\': strbuf_add(sb, "\\\\", 2); break;
		case '\b': strbuf_add(sb, "\\b", 2); break;
		case '\f': strbuf_add(sb, "\\f", 2); break;
		case '\n': strbuf_add(sb, "\\n", 2); break;
		case '\r': strbuf_add(sb, "\\r", 2); break;
		case '\t': strbuf_add(sb, "\\t", 2); break;
		default: strbuf_addf(sb, "\\u%04X", (unsigned)cp); break;
		}
		p++;
	}
	strbuf_addch(sb, '"');
	return 0;
}

void log_json_real(struct strbuf *sb, double v)
{
	char buf[64];
	int len = snprintf(buf, sizeof(buf), "%.15g", v);
	char *e;

	if (len < 0 || (size_t)len >= sizeof(buf))
		return;
	if (!strchr(buf, '.') && !strchr(buf, 'e') && (size_t)len + 2 < sizeof(buf)) {
		buf[len++] = '.';
		buf[len++] = '0';
		buf[len] = '\0';
	}
	/* as jansson: no '+' and no leading zeros in the exponent */
	e = strchr(buf, 'e');
	if (e) {
		char *start = e + 1, *end = e + 2;
		if (*start == '-')
			start++;
		while (*end == '0')
			end++;
		if (end != start) {
			memmove(start, end, (size_t)(buf + len - end) + 1);
			len -= (int)(end - start);
		}
	}
	strbuf_add(sb, buf, (size_t)len);
}

struct sorted_field {
	const struct log_json_field *f;
};

void log_json_fields(enum log_level level, const struct log_json_field *fields, size_t n,
		     const char *msg)
{
	struct sorted_field sorted[132];
	struct log_json_field extra[4];
	struct log_scratch *sc;
	struct strbuf own_vals = STRBUF_INIT, own_sb = STRBUF_INIT;
	struct strbuf *vals = &own_vals, *sb = &own_sb;
	size_t offs[4], m = 0;
	char ts[96];

	if (!log_enabled(level))
		return;
	if (n > 128)
		n = 128;
	sc = scratch_get();
	if (sc) {
		vals = &sc->vals;
		sb = &sc->line;
		strbuf_reset(vals);
		strbuf_reset(sb);
	}
	utc_timestamp(ts, sizeof(ts));
	strbuf_grow(vals, 128);
	offs[0] = vals->len;
	log_json_string(vals, level_names[level]);
	offs[1] = vals->len;
	if (log_json_string(vals, msg) < 0)
		offs[1] = vals->len; /* left out, as jansson would */
	offs[2] = vals->len;
	{
		char digits[16], *p = digits + sizeof(digits);
		unsigned int u = (unsigned int)log_pid();
		do {
			*--p = (char)('0' + u % 10);
			u /= 10;
		} while (u);
		strbuf_add(vals, p, (size_t)(digits + sizeof(digits) - p));
	}
	offs[3] = vals->len;
	log_json_string(vals, ts);
	{
		static const char *const keys[4] = { "level", "msg", "pid", "time" };
		size_t ends[4] = { offs[1], offs[2], offs[3], vals->len };
		for (int i = 0; i < 4; i++) {
			extra[i].key = keys[i];
			extra[i].value = vals->buf + offs[i];
			extra[i].len = ends[i] - offs[i];
		}
	}
	for (size_t i = 0; i < n; i++) {
		sorted[m].f = &fields[i];
		m++;
	}
	for (int i = 0; i < 4; i++) {
		if (!extra[i].len)
			continue;
		sorted[m].f = &extra[i];
		m++;
	}
	/*
	 * Stable insertion sort: callers pass keys mostly in order (the access
	 * log does), which makes this one strcmp per field; equal keys keep
	 * their order, so the last one set wins below.
	 */
	for (size_t i = 1; i < m; i++) {
		struct sorted_field v = sorted[i];
		size_t j = i;
		while (j > 0 && strcmp(sorted[j - 1].f->key, v.f->key) > 0) {
			sorted[j] = sorted[j - 1];
			j--;
		}
		sorted[j] = v;
	}
	strbuf_grow(sb, 1024);
	strbuf_addch(sb, '{');
	for (size_t i = 0, first = 1; i < m; i++) {
		/* of equal keys only the last set survives */
		if (i + 1 < m && !strcmp(sorted[i].f->key, sorted[i + 1].f->key))
			continue;
		if (!first)
			strbuf_addch(sb, ',');
		first = 0;
		log_json_string(sb, sorted[i].f->key);
		strbuf_addch(sb, ':');
		strbuf_add(sb, sorted[i].f->value, sorted[i].f->len);
	}
	strbuf_add(sb, "}\n", 2);
	write_all(log_fd, sb->buf, sb->len);
	if (sc) {
		scratch_put(sb);
		scratch_put(vals);
	}
	strbuf_release(&own_sb);
	strbuf_release(&own_vals);
}

void log_msg(enum log_level level, const char *fmt, ...)
{
	char buf[2048];
	va_list ap;

	if (!log_enabled(level))
		return;
	va_start(ap, fmt);
	vsnprintf(buf, sizeof(buf), fmt, ap);
	va_end(ap);
	log_fields(level, NULL, buf);
}
