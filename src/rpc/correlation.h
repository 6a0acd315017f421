/*
 * Correlation ids as labkit hands them out: taken from the
 * `x-gitlab-correlation-id` metadata when a client sent one, otherwise a new
 * ULID (26 characters of Crockford base32: 48 bits of milliseconds, then 80
 * random bits). The id goes into the access log, outgoing calls and the
 * CORRELATION_ID environment of child processes.
 */
#ifndef RPC_CORRELATION_H
#define RPC_CORRELATION_H

#include <stddef.h>

#define CORRELATION_METADATA_KEY "x-gitlab-correlation-id"
#define CORRELATION_CLIENT_NAME_KEY "x-gitlab-client-name"
#define CORRELATION_ENV "CORRELATION_ID"
/* Length of a generated id, without the NUL. */
#define CORRELATION_ID_LEN 26
/* Received ids longer than this are replaced by a generated one. */
#define CORRELATION_MAX_LEN 256

/*
 * Writes a new ULID and a NUL into out (n >= CORRELATION_ID_LEN + 1).
 * Returns 0, or -1 when out is too small (out is then "" when n > 0).
 */
int correlation_id_new(char *out, size_t n);

/*
 * The call's correlation id: value (the metadata, may be NULL) when it is
 * non-empty and at most CORRELATION_MAX_LEN bytes, else a new id written
 * into generated (n >= CORRELATION_ID_LEN + 1), which is then returned.
 */
const char *correlation_from_metadata(const char *value, char *generated, size_t n);

#endif
