/*
 * Process-wide logging in upstream's shapes: logrus-style JSON lines
 * ({"level":..,"msg":..,"pid":..,"time":"..Z", fields...}) or text lines.
 * Thread-safe; each line is written with a single write(2).
 */
#ifndef BASE_LOG_H
#define BASE_LOG_H

#include <jansson.h>
#include <stddef.h>

struct strbuf;

enum log_level { LOG_DEBUG, LOG_INFO, LOG_WARN, LOG_ERROR, LOG_FATAL };
enum log_format { LOG_FORMAT_TEXT, LOG_FORMAT_JSON };

/* Configures the logger (defaults: text, info, stderr). */
void log_configure(enum log_format format, enum log_level level, int fd);

/* Parses upstream's level names ("debug", "info", "warn"/"warning", "error",
 * "fatal", "panic"); returns -1 for anything else. */
int log_level_parse(const char *name, enum log_level *out);

int log_enabled(enum log_level level);

/* A plain message. */
void log_msg(enum log_level level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* A message with structured fields; takes ownership of fields (may be NULL). */
void log_fields(enum log_level level, json_t *fields, const char *msg);

/* 1 when lines are JSON (log_json_fields may be used), 0 for text. */
int log_is_json(void);

/*
 * A per-thread scratch buffer (empty, no cap beyond the default) for
 * building what goes to log_json_fields without a malloc per line; give
 * it back with log_scratch_return before taking it again. NULL when out
 * of memory.
 */
struct strbuf *log_scratch_take(void);
void log_scratch_return(struct strbuf *sb);

/* A field whose value is already encoded JSON text: value[0..len). */
struct log_json_field {
	const char *key;
	const char *value;
	size_t len;
};

/*
 * The JSON-format fast path of log_fields, for callers that encode their
 * own values (the access log): the same line log_fields would write for an
 * object holding these fields, where a later field replaces an earlier one
 * of the same key, as json_object_set does. At most 128 fields.
 */
void log_json_fields(enum log_level level, const struct log_json_field *fields, size_t n,
		     const char *msg);

/*
 * Appends s as a JSON string exactly as jansson encodes it (no slash or
 * non-ASCII escaping). Returns -1, appending nothing, when s is not valid
 * UTF-8 (jansson refuses such strings, so the field is left out).
 */
int log_json_string(struct strbuf *sb, const char *s);

/* Appends a double as jansson does with JSON_REAL_PRECISION(15). */
void log_json_real(struct strbuf *sb, double v);

#endif
