/*
 * `gitaly check`: loads and validates the config, then asks GitLab's
 * internal API (GET /api/v4/internal/check) whether it is reachable, signing
 * the request with the gitlab-shell secret as a HS256 JWT in the
 * Gitlab-Shell-Api-Request header, like upstream's GitLab client. A small
 * HTTP/1.1 client over tcp, TLS (OpenSSL) or a unix socket (http+unix).
 */
#include <ctype.h>
#include <errno.h>
#include <netdb.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include <jansson.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/ssl.h>

#include "base/strbuf.h"
#include "cmd/gitaly/gitaly.h"
#include "config/config.h"

#define MAX_RESPONSE ((size_t)1 << 20)

static void b64url(const unsigned char *in, size_t len, struct strbuf *out)
{
	static const char tbl[] =
		"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
	size_t i;
	for (i = 0; i + 2 < len; i += 3) {
		unsigned v = (unsigned)in[i] << 16 | (unsigned)in[i + 1] << 8 | in[i + 2];
		strbuf_addch(out, tbl[v >> 18 & 63]);
		strbuf_addch(out, tbl[v >> 12 & 63]);
		strbuf_addch(out, tbl[v >> 6 & 63]);
		strbuf_addch(out, tbl[v & 63]);
	}
	if (len - i == 1) {
		unsigned v = (unsigned)in[i] << 16;
		strbuf_addch(out, tbl[v >> 18 & 63]);
		strbuf_addch(out, tbl[v >> 12 & 63]);
	} else if (len - i == 2) {
		unsigned v = (unsigned)in[i] << 16 | (unsigned)in[i + 1] << 8;
		strbuf_addch(out, tbl[v >> 18 & 63]);
		strbuf_addch(out, tbl[v >> 12 & 63]);
		strbuf_addch(out, tbl[v >> 6 & 63]);
	}
}

static void b64std(const unsigned char *in, size_t len, struct strbuf *out)
{
	unsigned char buf[512];
	if (len > 360)
		len = 360;
	int n = EVP_EncodeBlock(buf, in, (int)len);
	strbuf_add(out, buf, (size_t)n);
}

/* The gitlab-shell JWT: {"iss":"gitlab-shell","iat":now,"exp":now+60}. */
static void make_jwt(const char *secret, struct strbuf *out)
{
	static const char header[] = "{\"alg\":\"HS256\",\"typ\":\"JWT\"}";
	char claims[128];
	unsigned char mac[EVP_MAX_MD_SIZE];
	unsigned int mac_len = 0;
	long long now = (long long)time(NULL);

	snprintf(claims, sizeof(claims), "{\"exp\":%lld,\"iat\":%lld,\"iss\":\"gitlab-shell\"}",
		 now + 60, now);
	b64url((const unsigned char *)header, strlen(header), out);
	strbuf_addch(out, '.');
	b64url((const unsigned char *)claims, strlen(claims), out);
	HMAC(EVP_sha256(), secret, (int)strlen(secret), (const unsigned char *)out->buf, out->len,
	     mac, &mac_len);
	strbuf_addch(out, '.');
	b64url(mac, mac_len, out);
}

static int read_secret(const struct config *cfg, struct strbuf *out, struct error *err)
{
	if (cfg->gitlab.secret && *cfg->gitlab.secret) {
		strbuf_adds(out, cfg->gitlab.secret);
	} else {
		char path[4096];
		const char *file = cfg->gitlab.secret_file;
		if (!file || !*file) {
			if (!cfg->gitlab_shell.dir || !*cfg->gitlab_shell.dir)
				return error_set(err, STATUS_INVALID_ARGUMENT,
						 "gitlab: secret not configured");
			snprintf(path, sizeof(path), "%s/.gitlab_shell_secret", cfg->gitlab_shell.dir);
			file = path;
		}
		FILE *f = fopen(file, "r");
		if (!f)
			return error_set(err, STATUS_INVALID_ARGUMENT, "reading secret file: %s",
					 strerror(errno));
		char buf[1024];
		size_t n = fread(buf, 1, sizeof(buf), f);
		fclose(f);
		strbuf_add(out, buf, n);
	}
	/* Surrounding whitespace is not part of the secret. */
	strbuf_rtrim(out);
	size_t skip = 0;
	while (skip < out->len && isspace((unsigned char)out->buf[skip]))
		skip++;
	if (skip) {
		memmove(out->buf, out->buf + skip, out->len - skip + 1);
		out->len -= skip;
	}
	return 0;
}

static int pct_decode(const char *in, size_t len, char *out, size_t cap)
{
	size_t o = 0;
	for (size_t i = 0; i < len; i++) {
		char c = in[i];
		if (c == '%' && i + 2 < len + 0 && isxdigit((unsigned char)in[i + 1]) &&
		    isxdigit((unsigned char)in[i + 2])) {
			char hex[3] = { in[i + 1], in[i + 2], 0 };
			c = (char)strtol(hex, NULL, 16);
			i += 2;
		}
		if (o + 1 >= cap)
			return -1;
		out[o++] = c;
	}
	out[o] = 0;
	return 0;
}

struct conn {
	int fd;
	SSL_CTX *ctx;
	SSL *ssl;
};

static int conn_write(struct conn *c, const char *buf, size_t len)
{
	while (len) {
		ssize_t w = c->ssl ? SSL_write(c->ssl, buf, (int)len) : write(c->fd, buf, len);
		if (w <= 0)
			return -1;
		buf += w;
		len -= (size_t)w;
	}
	return 0;
}

static ssize_t conn_read(struct conn *c, char *buf, size_t len)
{
	if (c->ssl) {
		int r = SSL_read(c->ssl, buf, (int)len);
		return r > 0 ? r : 0;
	}
	return read(c->fd, buf, len);
}

static int dial(const struct config *cfg, const char *scheme, const char *host, const char *port,
		const char *unix_path, struct conn *c, struct error *err)
{
	struct timeval tv = { .tv_sec = cfg->gitlab.http_settings.read_timeout
					       ? (time_t)cfg->gitlab.http_settings.read_timeout
					       : 300 };
	c->fd = -1;
	if (unix_path) {
		struct sockaddr_un sa;
		memset(&sa, 0, sizeof(sa));
		sa.sun_family = AF_UNIX;
		if (strlen(unix_path) >= sizeof(sa.sun_path))
			return error_set(err, STATUS_INVALID_ARGUMENT, "socket path too long");
		memcpy(sa.sun_path, unix_path, strlen(unix_path));
		c->fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
		if (c->fd < 0 || connect(c->fd, (struct sockaddr *)&sa, sizeof(sa)) < 0)
			return error_set(err, STATUS_UNAVAILABLE, "dial unix %s: %s", unix_path,
					 strerror(errno));
	} else {
		struct addrinfo hints, *res = NULL, *ai;
		memset(&hints, 0, sizeof(hints));
		hints.ai_socktype = SOCK_STREAM;
		int rc = getaddrinfo(host, port, &hints, &res);
		if (rc)
			return error_set(err, STATUS_UNAVAILABLE, "dial tcp %s:%s: %s", host, port,
					 gai_strerror(rc));
		int e = 0;
		for (ai = res; ai; ai = ai->ai_next) {
			c->fd = socket(ai->ai_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
			if (c->fd >= 0 && connect(c->fd, ai->ai_addr, ai->ai_addrlen) == 0)
				break;
			e = errno;
			if (c->fd >= 0)
				close(c->fd);
			c->fd = -1;
		}
		freeaddrinfo(res);
		if (c->fd < 0)
			return error_set(err, STATUS_UNAVAILABLE, "dial tcp %s:%s: %s", host, port,
					 strerror(e));
	}
	setsockopt(c->fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	setsockopt(c->fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
	if (!strcmp(scheme, "https")) {
		c->ctx = SSL_CTX_new(TLS_client_method());
		if (!c->ctx)
			return error_set(err, STATUS_INTERNAL, "tls context");
		SSL_CTX_set_min_proto_version(c->ctx, TLS1_2_VERSION);
		SSL_CTX_set_verify(c->ctx, SSL_VERIFY_PEER, NULL);
		if (cfg->gitlab.http_settings.ca_file || cfg->gitlab.http_settings.ca_path)
			SSL_CTX_load_verify_locations(c->ctx, cfg->gitlab.http_settings.ca_file,
						      cfg->gitlab.http_settings.ca_path);
		SSL_CTX_set_default_verify_paths(c->ctx);
		c->ssl = SSL_new(c->ctx);
		SSL_set_fd(c->ssl, c->fd);
		SSL_set_tlsext_host_name(c->ssl, host);
		SSL_set1_host(c->ssl, host);
		if (SSL_connect(c->ssl) != 1)
			return error_set(err, STATUS_UNAVAILABLE, "tls handshake with %s failed", host);
	}
	return 0;
}

static void conn_close(struct conn *c)
{
	if (c->ssl)
		SSL_free(c->ssl);
	if (c->ctx)
		SSL_CTX_free(c->ctx);
	if (c->fd >= 0)
		close(c->fd);
}

/* Decodes a chunked body in place; returns -1 when malformed. */
static int dechunk(struct strbuf *body)
{
	struct strbuf out = STRBUF_INIT;
	size_t i = 0;
	for (;;) {
		char *end;
		unsigned long n = strtoul(body->buf + i, &end, 16);
		char *crlf = strstr(body->buf + i, "\r\n");
		if (!crlf || end == body->buf + i) {
			strbuf_release(&out);
			return -1;
		}
		i = (size_t)(crlf - body->buf) + 2;
		if (n == 0)
			break;
		if (n > body->len - i) {
			strbuf_release(&out);
			return -1;
		}
		strbuf_add(&out, body->buf + i, n);
		i += n + 2;
		if (i > body->len) {
			strbuf_release(&out);
			return -1;
		}
	}
	strbuf_release(body);
	*body = out;
	return 0;
}

/* GETs path from [gitlab] url; *status and body filled. */
static int http_get(const struct config *cfg, const char *api_path, int *status,
		    struct strbuf *body, struct error *err)
{
	const char *url = cfg->gitlab.url;
	char scheme[16], host[512], port[16], unix_path[512], base[1024], host_hdr[540];
	struct conn c = { -1, NULL, NULL };
	struct strbuf req = STRBUF_INIT, jwt = STRBUF_INIT, secret = STRBUF_INIT,
		      resp = STRBUF_INIT;
	int ret = -1;
	int is_unix = 0;

	*status = 0;
	if (!url || !*url) {
		error_set(err, STATUS_INVALID_ARGUMENT, "gitlab: url is not set");
		goto out;
	}
	const char *sep = strstr(url, "://");
	if (!sep || (size_t)(sep - url) >= sizeof(scheme)) {
		error_set(err, STATUS_INVALID_ARGUMENT, "gitlab: invalid url %s", url);
		goto out;
	}
	memcpy(scheme, url, (size_t)(sep - url));
	scheme[sep - url] = 0;
	const char *hp = sep + 3;
	const char *slash = strchr(hp, '/');
	size_t hplen = slash ? (size_t)(slash - hp) : strlen(hp);
	snprintf(base, sizeof(base), "%s", slash ? slash : "");
	if (!strcmp(scheme, "http+unix")) {
		is_unix = 1;
		if (pct_decode(hp, hplen, unix_path, sizeof(unix_path)) < 0) {
			error_set(err, STATUS_INVALID_ARGUMENT, "gitlab: invalid url %s", url);
			goto out;
		}
		snprintf(host, sizeof(host), "unix");
		snprintf(base, sizeof(base), "%s",
			 cfg->gitlab.relative_url_root ? cfg->gitlab.relative_url_root : "");
		snprintf(scheme, sizeof(scheme), "http");
	} else if (!strcmp(scheme, "http") || !strcmp(scheme, "https")) {
		const char *colon = memrchr(hp, ':', hplen);
		const char *rb = memrchr(hp, ']', hplen);
		if (colon && (!rb || colon > rb)) {
			snprintf(host, sizeof(host), "%.*s", (int)(colon - hp), hp);
			snprintf(port, sizeof(port), "%.*s", (int)(hplen - (size_t)(colon - hp) - 1),
				 colon + 1);
		} else {
			snprintf(host, sizeof(host), "%.*s", (int)hplen, hp);
			snprintf(port, sizeof(port), "%s", strcmp(scheme, "https") ? "80" : "443");
		}
		if (host[0] == '[') {
			size_t l = strlen(host);
			memmove(host, host + 1, l);
			if (l >= 2 && host[l - 2] == ']')
				host[l - 2] = 0;
		}
	} else {
		error_set(err, STATUS_INVALID_ARGUMENT, "gitlab: unsupported url scheme %s", scheme);
		goto out;
	}
	/* Host header: the URL's authority ("unix" for a socket). */
	if (is_unix)
		snprintf(host_hdr, sizeof(host_hdr), "unix");
	else
		snprintf(host_hdr, sizeof(host_hdr), "%.*s", (int)hplen, hp);
	while (*base && base[strlen(base) - 1] == '/')
		base[strlen(base) - 1] = 0;
	if (read_secret(cfg, &secret, err) < 0)
		goto out;
	make_jwt(secret.buf ? secret.buf : "", &jwt);
	if (dial(cfg, scheme, host, port, is_unix ? unix_path : NULL, &c, err) < 0)
		goto out;
	strbuf_addf(&req, "GET %s%s HTTP/1.1\r\nHost: %s\r\nUser-Agent: gitaly/%s\r\n"
			  "Gitlab-Shell-Api-Request: %s\r\nContent-Type: application/json\r\n"
			  "Connection: close\r\n",
		    base, api_path, host_hdr, GITALY_VERSION, jwt.buf);
	if (cfg->gitlab.http_settings.user && *cfg->gitlab.http_settings.user) {
		struct strbuf up = STRBUF_INIT, enc = STRBUF_INIT;
		strbuf_addf(&up, "%s:%s", cfg->gitlab.http_settings.user,
			    cfg->gitlab.http_settings.password ? cfg->gitlab.http_settings.password
							       : "");
		b64std((const unsigned char *)up.buf, up.len, &enc);
		strbuf_addf(&req, "Authorization: Basic %s\r\n", enc.buf);
		strbuf_release(&up);
		strbuf_release(&enc);
	}
	strbuf_adds(&req, "\r\n");
	if (conn_write(&c, req.buf, req.len) < 0) {
		error_set(err, STATUS_UNAVAILABLE, "write request: %s", strerror(errno));
		goto out;
	}
	strbuf_init(&resp, MAX_RESPONSE);
	for (;;) {
		char buf[8192];
		ssize_t n = conn_read(&c, buf, sizeof(buf));
		if (n <= 0)
			break;
		if (strbuf_add(&resp, buf, (size_t)n) < 0) {
			error_set(err, STATUS_RESOURCE_EXHAUSTED, "response too large");
			goto out;
		}
	}
	char *hdr_end = resp.buf ? strstr(resp.buf, "\r\n\r\n") : NULL;
	if (!hdr_end || sscanf(resp.buf, "HTTP/%*s %d", status) != 1) {
		error_set(err, STATUS_UNAVAILABLE, "malformed HTTP response");
		goto out;
	}
	*hdr_end = 0;
	int chunked = strcasestr(resp.buf, "transfer-encoding: chunked") != NULL;
	strbuf_add(body, hdr_end + 4, resp.len - (size_t)(hdr_end + 4 - resp.buf));
	if (chunked && dechunk(body) < 0) {
		error_set(err, STATUS_UNAVAILABLE, "malformed chunked body");
		goto out;
	}
	ret = 0;
out:
	conn_close(&c);
	strbuf_release(&req);
	strbuf_release(&jwt);
	strbuf_release(&secret);
	strbuf_release(&resp);
	return ret;
}

static const char *json_str(json_t *o, const char *k)
{
	const char *s = json_string_value(json_object_get(o, k));
	return s ? s : "";
}

int gitaly_check(const char *config_path)
{
	struct config cfg;
	struct error err = ERROR_INIT;
	struct strbuf body = STRBUF_INIT;
	json_t *js = NULL;
	int status = 0, rc = 1;

	memset(&cfg, 0, sizeof(cfg));
	printf("Checking GitLab API access: ");
	fflush(stdout);
	if (config_load_file(&cfg, config_path, &err) < 0 || config_validate(&cfg, &err) < 0) {
		error_prefix(&err, "load config: config_path \"%s\"", config_path);
		goto fail;
	}
	if (http_get(&cfg, "/api/v4/internal/check", &status, &body, &err) < 0)
		goto fail;
	js = json_loadb(body.buf ? body.buf : "", body.len, 0, NULL);
	if (status < 200 || status >= 400) {
		const char *m = js ? json_string_value(json_object_get(js, "message")) : NULL;
		if (m)
			error_set(&err, STATUS_UNAVAILABLE, "%s", m);
		else
			error_set(&err, STATUS_UNAVAILABLE, "Internal API error (%d)", status);
		goto fail;
	}
	if (!js || !json_is_object(js)) {
		error_set(&err, STATUS_UNAVAILABLE, "decoding response from /check endpoint");
		goto fail;
	}
	printf("OK\n");
	printf("GitLab version: %s\n", json_str(js, "gitlab_version"));
	printf("GitLab revision: %s\n", json_str(js, "gitlab_revision"));
	printf("GitLab Api version: %s\n", json_str(js, "api_version"));
	printf("Redis reachable for GitLab: %s\n",
	       json_is_true(json_object_get(js, "redis")) ? "true" : "false");
	printf("OK\n");
	rc = 0;
	goto out;
fail:
	printf("FAILED\n");
	fflush(stdout);
	fprintf(stderr, "%s\n", err.message ? err.message : "check failed");
out:
	json_decref(js);
	strbuf_release(&body);
	error_release(&err);
	config_release(&cfg);
	return rc;
}
