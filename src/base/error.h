/*
 * Errors travel as a struct error the caller owns: a gRPC status code decided
 * where the error is born, a message, and optional typed details (packed
 * google.protobuf.Any values) that reach the client in grpc-status-details-bin.
 */
#ifndef BASE_ERROR_H
#define BASE_ERROR_H

#include <stddef.h>
#include <stdint.h>

/* gRPC status codes (same numbers as grpc_status_code). */
enum status_code {
	STATUS_OK = 0,
	STATUS_CANCELLED = 1,
	STATUS_UNKNOWN = 2,
	STATUS_INVALID_ARGUMENT = 3,
	STATUS_DEADLINE_EXCEEDED = 4,
	STATUS_NOT_FOUND = 5,
	STATUS_ALREADY_EXISTS = 6,
	STATUS_PERMISSION_DENIED = 7,
	STATUS_RESOURCE_EXHAUSTED = 8,
	STATUS_FAILED_PRECONDITION = 9,
	STATUS_ABORTED = 10,
	STATUS_OUT_OF_RANGE = 11,
	STATUS_UNIMPLEMENTED = 12,
	STATUS_INTERNAL = 13,
	STATUS_UNAVAILABLE = 14,
	STATUS_DATA_LOSS = 15,
	STATUS_UNAUTHENTICATED = 16,
};

/* One typed detail: a google.protobuf.Any, already serialized. */
struct error_detail {
	char *type_url; /* "type.googleapis.com/gitaly.LimitError" */
	uint8_t *value;
	size_t len;
};

struct error {
	int code;      /* enum status_code; STATUS_OK while no error is set */
	char *message; /* NULL while no error is set */
	struct error_detail *details;
	size_t n_details;
};

#define ERROR_INIT { 0, NULL, NULL, 0 }

/*
 * Sets code and a printf-style message, replacing any previous error.
 * Always returns -1 so callers can write `return error_set(err, ...)`.
 * err may be NULL (the error is then dropped).
 */
int error_set(struct error *err, int code, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

/*
 * Prefixes the current message with "<prefix>: ", keeping code and details
 * (upstream wraps errors this way and the inner code wins). Returns -1.
 */
int error_prefix(struct error *err, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));

/* Appends a serialized detail (copied). Returns 0, or -1 on allocation failure. */
int error_add_detail(struct error *err, const char *type_url, const uint8_t *value, size_t len);

/* Moves src into dst (dst's previous contents are released); src is reset. */
void error_move(struct error *dst, struct error *src);

/* True when an error is set. */
static inline int error_is_set(const struct error *err)
{
	return err && err->code != 0;
}

/* Frees the contents and resets to ERROR_INIT. */
void error_release(struct error *err);

/* Upstream's name of a code, e.g. "InvalidArgument" (used in logs). */
const char *status_code_name(int code);

#endif
