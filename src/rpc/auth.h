/*
 * v2 token authentication exactly as upstream (auth/token.go): the
 * `authorization` metadata is "Bearer v2.<hex HMAC-SHA256(token, ts)>.<ts>",
 * accepted when |now - ts| <= 30 s. Beyond upstream, previous tokens listed
 * in [auth] are also accepted so a rotation never needs enforcement off.
 */
#ifndef RPC_AUTH_H
#define RPC_AUTH_H

#include <stddef.h>
#include <stdint.h>

#include "base/error.h"

struct auth_config {
	const char *token;                 /* NULL or "" disables authentication */
	int transitioning;                 /* check and count, never reject */
	const char *const *previous_tokens;
	size_t n_previous_tokens;
};

/*
 * Checks one call's `authorization` metadata value (NULL when absent) at
 * time now (Unix seconds). Returns 0 when the call may proceed, -1 with err
 * set to Unauthenticated "authentication required" or PermissionDenied
 * "permission denied". Counts gitaly_authentications_total{enforced,status}
 * and gitaly_authentication_errors_total{version,error}. *auth_version is set
 * to "v2" when a token parsed (for the log field), else NULL.
 */
int auth_check(const struct auth_config *cfg, const char *authorization, int64_t now,
	       const char **auth_version, struct error *err);

/* Builds a v2 token value "v2.<hex>.<ts>" for clients (gateway, hooks). */
int auth_token_v2(const char *secret, int64_t now, char *out, size_t out_len);

#endif
