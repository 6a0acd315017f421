/*
 * struct error: formatting, wrapping and the gRPC code names used in logs.
 */
#include "base/error.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static char *vformat(const char *fmt, va_list ap)
{
	char *out = NULL;
	if (vasprintf(&out, fmt, ap) < 0)
		return NULL;
	return out;
}

int error_set(struct error *err, int code, const char *fmt, ...)
{
	va_list ap;

	if (!err)
		return -1;
	error_release(err);
	va_start(ap, fmt);
	err->message = vformat(fmt, ap);
	va_end(ap);
	err->code = code ? code : STATUS_UNKNOWN;
	return -1;
}

int error_prefix(struct error *err, const char *fmt, ...)
{
	va_list ap;
	char *prefix, *joined = NULL;

	if (!err)
		return -1;
	va_start(ap, fmt);
	prefix = vformat(fmt, ap);
	va_end(ap);
	if (!prefix)
		return -1;
	if (asprintf(&joined, "%s: %s", prefix, err->message ? err->message : "") < 0)
		joined = NULL;
	free(prefix);
	if (joined) {
		free(err->message);
		err->message = joined;
	}
	if (!err->code)
		err->code = STATUS_INTERNAL;
	return -1;
}

int error_add_detail(struct error *err, const char *type_url, const uint8_t *value, size_t len)
{
	struct error_detail *d;

	if (!err)
		return -1;
	d = realloc(err->details, (err->n_details + 1) * sizeof(*d));
	if (!d)
		return -1;
	err->details = d;
	d = &d[err->n_details];
	d->type_url = strdup(type_url);
	d->value = malloc(len ? len : 1);
	if (!d->type_url || !d->value) {
		free(d->type_url);
		free(d->value);
		return -1;
	}
	if (len)
		memcpy(d->value, value, len);
	d->len = len;
	err->n_details++;
	return 0;
}

void error_move(struct error *dst, struct error *src)
{
	if (dst == src)
		return;
	error_release(dst);
	*dst = *src;
	memset(src, 0, sizeof(*src));
}

void error_release(struct error *err)
{
	if (!err)
		return;
	free(err->message);
	for (size_t i = 0; i < err->n_details; i++) {
		free(err->details[i].type_url);
		free(err->details[i].value);
	}
	free(err->details);
	memset(err, 0, sizeof(*err));
}

const char *status_code_name(int code)
{
	static const char *const names[] = {
		"OK", "Canceled", "Unknown", "InvalidArgument", "DeadlineExceeded",
		"NotFound", "AlreadyExists", "PermissionDenied", "ResourceExhausted",
		"FailedPrecondition", "Aborted", "OutOfRange", "Unimplemented",
		"Internal", "Unavailable", "DataLoss", "Unauthenticated",
	};
	if (code < 0 || (size_t)code >= sizeof(names) / sizeof(names[0]))
		return "Unknown";
	return names[code];
}
