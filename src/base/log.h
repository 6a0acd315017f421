/*
 * Process-wide logging in upstream's shapes: logrus-style JSON lines
 * ({"level":..,"msg":..,"pid":..,"time":"..Z", fields...}) or text lines.
 * Thread-safe; each line is written with a single write(2).
 */
#ifndef BASE_LOG_H
#define BASE_LOG_H

#include <jansson.h>

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

#endif
