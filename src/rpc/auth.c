/*
 * v2 token authentication: parses the `authorization` metadata, checks the
 * HMAC-SHA256 of the decimal timestamp in constant time against the current
 * token (and, beyond upstream, each previous token), enforces the +-30 s
 * window, and counts every outcome with upstream's metric labels. Error
 * classes follow upstream: anything unparseable is Unauthenticated, a
 * well-formed but wrong token is PermissionDenied.
 */
#include "rpc/auth.h"

#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>

#include "base/metrics.h"

#define AUTH_VALIDITY_SECONDS 30
#define AUTH_MAC_LEN 32

static struct metric_family *auth_count, *auth_errors;
static pthread_once_t auth_metrics_once = PTHREAD_ONCE_INIT;

static void auth_metrics_init(void)
{
	static const char *const count_labels[] = { "enforced", "status" };
	static const char *const error_labels[] = { "version", "error" };

	auth_count = metrics_counter("gitaly_authentications_total",
				     "Counts of of Gitaly request authentication attempts",
				     count_labels, 2);
	auth_errors = metrics_counter("gitaly_authentication_errors_total",
				      "Counts of of Gitaly request authentication errors",
				      error_labels, 2);
}

static void count_status(int transitioning, const char *status)
{
	const char *values[2] = { transitioning ? "false" : "true", status };
	metrics_add(auth_count, values, 1);
}

static void count_v2_error(const char *what)
{
	const char *values[2] = { "v2", what };
	metrics_add(auth_errors, values, 1);
}

static int hex_value(char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

/* A parsed token: pointers into the metadata value. */
struct token {
	const char *version;
	size_t version_len;
	uint8_t sig[AUTH_MAC_LEN];
	size_t sig_len; /* decoded length; may exceed AUTH_MAC_LEN (then it cannot match) */
	const char *msg;
};

/*
 * "<scheme> <token>" with scheme "bearer" in any case, the token split on
 * '.' into exactly three parts, the middle one valid hex. Returns 0 or -1.
 */
static int token_parse(const char *value, struct token *t)
{
	const char *space, *tok, *dot1, *dot2, *sig;
	size_t sig_hex_len;

	if (!value)
		return -1;
	space = strchr(value, ' ');
	if (!space || (size_t)(space - value) != 6 || strncasecmp(value, "bearer", 6))
		return -1;
	tok = space + 1;
	dot1 = strchr(tok, '.');
	if (!dot1)
		return -1;
	dot2 = strchr(dot1 + 1, '.');
	if (!dot2)
		return -1;
	sig = dot1 + 1;
	sig_hex_len = (size_t)(dot2 - sig);
	if (sig_hex_len % 2)
		return -1;
	for (size_t i = 0; i < sig_hex_len; i += 2) {
		int hi = hex_value(sig[i]), lo = hex_value(sig[i + 1]);
		if (hi < 0 || lo < 0)
			return -1;
		if (i / 2 < AUTH_MAC_LEN)
			t->sig[i / 2] = (uint8_t)(hi << 4 | lo);
	}
	t->sig_len = sig_hex_len / 2;
	t->version = tok;
	t->version_len = (size_t)(dot1 - tok);
	t->msg = dot2 + 1;
	return 0;
}

static int hmac_sign(const char *secret, const char *msg, uint8_t out[AUTH_MAC_LEN])
{
	unsigned int len = 0;

	if (!HMAC(EVP_sha256(), secret, (int)strlen(secret), (const unsigned char *)msg,
		  strlen(msg), out, &len) ||
	    len != AUTH_MAC_LEN)
		return -1;
	return 0;
}

static int mac_matches(const struct token *t, const char *secret)
{
	uint8_t want[AUTH_MAC_LEN];
	int ok;

	if (!secret || !*secret || t->sig_len != AUTH_MAC_LEN)
		return 0;
	if (hmac_sign(secret, t->msg, want) < 0)
		return 0;
	ok = CRYPTO_memcmp(want, t->sig, AUTH_MAC_LEN) == 0;
	OPENSSL_cleanse(want, sizeof(want));
	return ok;
}

/* Go's strconv.ParseInt(s, 10, 64): optional sign, digits only, no overflow. */
static int parse_int64(const char *s, int64_t *out)
{
	int neg = 0;
	uint64_t v = 0, limit;

	if (*s == '+' || *s == '-')
		neg = *s++ == '-';
	if (!*s)
		return -1;
	limit = neg ? (uint64_t)INT64_MAX + 1 : (uint64_t)INT64_MAX;
	for (; *s; s++) {
		if (*s < '0' || *s > '9')
			return -1;
		if (v > (limit - (uint64_t)(*s - '0')) / 10)
			return -1;
		v = v * 10 + (uint64_t)(*s - '0');
	}
	*out = neg ? (int64_t)(0 - v) : (int64_t)v;
	return 0;
}

/* Returns STATUS_OK, STATUS_UNAUTHENTICATED or STATUS_PERMISSION_DENIED. */
static int check_token(const struct auth_config *cfg, const struct token *t, int parsed,
		       int64_t now)
{
	int64_t ts;
	int matched;

	if (!parsed)
		return STATUS_UNAUTHENTICATED;
	if (t->version_len != 2 || memcmp(t->version, "v2", 2))
		return STATUS_PERMISSION_DENIED;
	matched = mac_matches(t, cfg->token);
	for (size_t i = 0; !matched && i < cfg->n_previous_tokens; i++)
		if (cfg->previous_tokens)
			matched = mac_matches(t, cfg->previous_tokens[i]);
	if (!matched) {
		count_v2_error("wrong hmac signature");
		return STATUS_PERMISSION_DENIED;
	}
	if (parse_int64(t->msg, &ts) < 0) {
		count_v2_error("cannot parse timestamp");
		return STATUS_PERMISSION_DENIED;
	}
	/* compare without overflow for timestamps near the int64 limits */
	if (ts < now && (uint64_t)now - (uint64_t)ts > AUTH_VALIDITY_SECONDS) {
		count_v2_error("timestamp too old");
		return STATUS_PERMISSION_DENIED;
	}
	if (ts > now && (uint64_t)ts - (uint64_t)now > AUTH_VALIDITY_SECONDS) {
		count_v2_error("timestamp too new");
		return STATUS_PERMISSION_DENIED;
	}
	return STATUS_OK;
}

int auth_check(const struct auth_config *cfg, const char *authorization, int64_t now,
	       const char **auth_version, struct error *err)
{
	struct token t;
	int parsed, code, transitioning = cfg ? cfg->transitioning : 0;
	int ret = 0;

	pthread_once(&auth_metrics_once, auth_metrics_init);
	memset(&t, 0, sizeof(t));
	parsed = token_parse(authorization, &t) == 0;
	if (auth_version) {
		*auth_version = NULL;
		if (parsed && t.version_len == 2 && !memcmp(t.version, "v2", 2))
			*auth_version = "v2";
		else if (parsed && t.version_len == 2 && !memcmp(t.version, "v1", 2))
			*auth_version = "v1";
	}
	if (!cfg || !cfg->token || !*cfg->token) {
		count_status(transitioning, "server disabled authentication");
		goto out;
	}
	code = check_token(cfg, &t, parsed, now);
	switch (code) {
	case STATUS_OK:
		count_status(transitioning, transitioning ? "would be ok" : "ok");
		break;
	case STATUS_UNAUTHENTICATED:
		count_status(transitioning, "unauthenticated");
		break;
	case STATUS_PERMISSION_DENIED:
		count_status(transitioning, "denied");
		break;
	default:
		count_status(transitioning, "invalid");
		break;
	}
	if (transitioning || code == STATUS_OK)
		goto out;
	if (code == STATUS_UNAUTHENTICATED)
		ret = error_set(err, STATUS_UNAUTHENTICATED, "authentication required");
	else
		ret = error_set(err, STATUS_PERMISSION_DENIED, "permission denied");
out:
	OPENSSL_cleanse(t.sig, sizeof(t.sig));
	return ret;
}

int auth_token_v2(const char *secret, int64_t now, char *out, size_t out_len)
{
	char ts[24];
	uint8_t mac[AUTH_MAC_LEN];
	static const char hex[] = "0123456789abcdef";
	size_t pos = 0;
	int n, ret = -1;

	if (!secret || !out)
		goto out;
	snprintf(ts, sizeof(ts), "%" PRId64, now);
	if (hmac_sign(secret, ts, mac) < 0)
		goto out;
	n = snprintf(out, out_len, "v2.");
	if (n < 0 || (size_t)n + 2 * AUTH_MAC_LEN + 1 + strlen(ts) + 1 > out_len)
		goto out;
	pos = (size_t)n;
	for (size_t i = 0; i < AUTH_MAC_LEN; i++) {
		out[pos++] = hex[mac[i] >> 4];
		out[pos++] = hex[mac[i] & 15];
	}
	snprintf(out + pos, out_len - pos, ".%s", ts);
	ret = 0;
out:
	OPENSSL_cleanse(mac, sizeof(mac));
	if (ret < 0 && out && out_len)
		out[0] = '\0';
	return ret;
}
