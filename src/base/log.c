/*
 * The logger: formats one line per event, JSON or text, and writes it with
 * one write(2) so concurrent lines never interleave.
 */
#include "base/log.h"

#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
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

static void utc_timestamp(char *out, size_t n)
{
	struct timeval tv;
	struct tm tm;

	gettimeofday(&tv, NULL);
	gmtime_r(&tv.tv_sec, &tm);
	snprintf(out, n, "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ", tm.tm_year + 1900, tm.tm_mon + 1,
		 tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec, (int)(tv.tv_usec / 1000));
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
		json_object_set_new(fields, "pid", json_integer(getpid()));
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
			    (int)getpid());
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
