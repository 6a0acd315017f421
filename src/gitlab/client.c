/*
 * GitLab internal API client: a small HTTP/1.1 client (tcp, TLS through
 * OpenSSL, or a unix socket for http+unix URLs) that signs each request with
 * the gitlab-shell JWT, and the JSON bodies of /allowed, /pre_receive and
 * /post_receive exactly as upstream's internal/gitlab client sends them.
 * Responses are read whole (Connection: close) with a 1 MiB cap.
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

#include "base/metrics.h"
#include "base/strbuf.h"
#include "gitlab/client.h"

/* Copies the media type of the Content-Type header (lower case, no params). */
static void parse_content_type(const char *headers, char *out, size_t cap)
{
	const char *p = strcasestr(headers, "\r\ncontent-type:");
	size_t o = 0;

	out[0] = 0;
	if (!p)
		return;
	p += strlen("\r\ncontent-type:");
	while (*p == ' ' || *p == '\t')
		p++;
	while (*p && *p != ';' && *p != '\r' && *p != ' ' && o + 1 < cap)
		out[o++] = (char)tolower((unsigned char)*p++);
	out[o] = 0;
}


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

/* Sends one request to [gitlab] url and reads the whole response. */
static int http_do(const struct config *cfg, const char *method, const char *api_path,
		   const char *json_body, struct gitlab_response *out, struct error *err)
{
	const char *url = cfg->gitlab.url;
	char scheme[16], host[512], port[16], unix_path[512], base[1024], host_hdr[540];
	struct conn c = { -1, NULL, NULL };
	struct strbuf req = STRBUF_INIT, jwt = STRBUF_INIT, secret = STRBUF_INIT,
		      resp = STRBUF_INIT;
	int ret = -1;
	int is_unix = 0;

	int *status = &out->status;
	struct strbuf *body = &out->body;

	*status = 0;
	out->content_type[0] = 0;
	strbuf_init(body, GITLAB_MAX_RESPONSE);
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
	strbuf_addf(&req, "%s %s/api/v4/internal%s HTTP/1.1\r\nHost: %s\r\nUser-Agent: gitaly/%s\r\n"
			  "Gitlab-Shell-Api-Request: %s\r\nContent-Type: application/json\r\n"
			  "Connection: close\r\n",
		    method, base, api_path, host_hdr, GITALY_VERSION, jwt.buf);
	if (json_body)
		strbuf_addf(&req, "Content-Length: %zu\r\n", strlen(json_body));
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
	if (json_body)
		strbuf_adds(&req, json_body);
	if (conn_write(&c, req.buf, req.len) < 0) {
		error_set(err, STATUS_UNAVAILABLE, "write request: %s", strerror(errno));
		goto out;
	}
	strbuf_init(&resp, GITLAB_MAX_RESPONSE);
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
	parse_content_type(resp.buf, out->content_type, sizeof(out->content_type));
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

void gitlab_response_release(struct gitlab_response *resp)
{
	strbuf_release(&resp->body);
}

/* The endpoint label upstream gives each API path. */
static const char *endpoint_label(const char *path)
{
	if (!strcmp(path, "/allowed"))
		return "allowed";
	if (!strcmp(path, "/pre_receive"))
		return "pre-receive";
	if (!strcmp(path, "/post_receive"))
		return "post-receive";
	if (!strcmp(path, "/check"))
		return "check";
	return NULL;
}

/* Observes gitaly_gitlab_api_latency_seconds{endpoint}. */
static void observe_latency(const struct config *cfg, const char *path, double seconds)
{
	/* client_golang's default buckets when none are configured. */
	static const double def[] = { .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10 };
	static const char *const labels[] = { "endpoint" };
	const char *ep = endpoint_label(path);
	const double *b = def;
	size_t nb = sizeof(def) / sizeof(def[0]);

	if (!ep)
		return;
	if (cfg->prometheus.n_grpc_latency_buckets) {
		b = cfg->prometheus.grpc_latency_buckets;
		nb = cfg->prometheus.n_grpc_latency_buckets;
	}
	struct metric_family *f = metrics_histogram(
		"gitaly_gitlab_api_latency_seconds",
		"Latency between posting to GitLab's `/internal/` APIs and receiving a response",
		labels, 1, b, nb);
	metrics_observe(f, &ep, seconds);
}

int gitlab_request(const struct config *cfg, const char *method, const char *path,
		   const char *json_body, struct gitlab_response *resp, struct error *err)
{
	struct timespec t0, t1;
	int ret;

	clock_gettime(CLOCK_MONOTONIC, &t0);
	ret = http_do(cfg, method, path, json_body, resp, err);
	clock_gettime(CLOCK_MONOTONIC, &t1);
	observe_latency(cfg, path,
			(double)(t1.tv_sec - t0.tv_sec) + (double)(t1.tv_nsec - t0.tv_nsec) / 1e9);
	return ret;
}

void gitlab_error_message(const struct gitlab_response *resp, struct strbuf *out)
{
	json_t *js = json_loadb(resp->body.buf ? resp->body.buf : "", resp->body.len, 0, NULL);
	const char *m = js ? json_string_value(json_object_get(js, "message")) : NULL;

	if (m)
		strbuf_adds(out, m);
	else
		strbuf_addf(out, "Internal API error (%d)", resp->status);
	json_decref(js);
}

static int all_digits(const char *s)
{
	if (!*s)
		return 0;
	for (; *s; s++)
		if (!isdigit((unsigned char)*s))
			return 0;
	return 1;
}

/* Adds key=value to o unless value is NULL or "" (Go's omitempty). */
static void set_nonempty(json_t *o, const char *key, const char *value)
{
	if (value && *value)
		json_object_set_new(o, key, json_string(value));
}

int gitlab_allowed_body(const struct gitlab_allowed_params *p, char **out, struct error *err)
{
	json_t *o = json_object(), *env = json_object(), *alts = NULL;
	struct strbuf project = STRBUF_INIT;
	const char *id = p->gl_id ? p->gl_id : "";
	char *env_s = NULL;
	int ret = -1;

	*out = NULL;
	json_object_set_new(o, "action", json_string("git-receive-pack"));
	set_nonempty(o, "gl_repository", p->gl_repository);
	for (const char *c = p->repo_path ? p->repo_path : ""; *c; c++)
		if (*c != '\'')
			strbuf_addch(&project, *c);
	set_nonempty(o, "project", project.buf);
	set_nonempty(o, "changes", p->changes);
	set_nonempty(o, "protocol", p->protocol);
	set_nonempty(o, "relative_path", p->relative_path);
	/* env is itself a JSON document carried as a string. */
	json_object_set_new(env, "GIT_OBJECT_DIRECTORY_RELATIVE",
			    json_string(p->object_dir_rel ? p->object_dir_rel : ""));
	if (p->n_alt_dirs_rel) {
		alts = json_array();
		for (size_t i = 0; i < p->n_alt_dirs_rel; i++)
			json_array_append_new(alts, json_string(p->alt_dirs_rel[i]));
	} else {
		alts = json_null();
	}
	json_object_set_new(env, "GIT_ALTERNATE_OBJECT_DIRECTORIES_RELATIVE", alts);
	env_s = json_dumps(env, JSON_COMPACT | JSON_SORT_KEYS);
	set_nonempty(o, "env", env_s);
	if (!strncmp(id, "username-", 9)) {
		json_object_set_new(o, "username", json_string(id + 9));
	} else if (!strncmp(id, "key-", 4) && all_digits(id + 4)) {
		json_object_set_new(o, "key_id", json_string(id + 4));
	} else if (!strncmp(id, "user-", 5) && all_digits(id + 5)) {
		json_object_set_new(o, "user_id", json_string(id + 5));
	} else {
		error_set(err, STATUS_INVALID_ARGUMENT, "setting gl_id: gl_id='%s' is invalid", id);
		goto out;
	}
	*out = json_dumps(o, JSON_COMPACT);
	ret = *out ? 0 : error_set(err, STATUS_INTERNAL, "encoding /allowed request");
out:
	free(env_s);
	strbuf_release(&project);
	json_decref(env);
	json_decref(o);
	return ret;
}

/* Checks a 2xx/3xx JSON reply and parses it; names the endpoint in errors. */
static int decode_json_reply(const struct gitlab_response *resp, const char *endpoint,
			     json_t **out, struct error *err)
{
	json_error_t jerr;

	*out = NULL;
	if (strcmp(resp->content_type, "application/json"))
		return error_set(err, STATUS_INTERNAL,
				 "/%s endpoint respond with unsupported content type: %s", endpoint,
				 resp->content_type);
	*out = json_loadb(resp->body.buf ? resp->body.buf : "", resp->body.len, 0, &jerr);
	if (!*out || !json_is_object(*out)) {
		json_decref(*out);
		*out = NULL;
		return error_set(err, STATUS_INTERNAL, "decoding response from /%s endpoint: %s",
				 endpoint, jerr.text);
	}
	return 0;
}

/*
 * gitlab_request for the hook endpoints: a transport failure reads as
 * gitlab-shell's client words it ("Internal API unreachable").
 */
static int api_post(const struct config *cfg, const char *path, const char *body,
		    struct gitlab_response *resp, struct error *err)
{
	if (gitlab_request(cfg, "POST", path, body, resp, err) == 0)
		return 0;
	if (err && err->code == STATUS_UNAVAILABLE)
		error_set(err, STATUS_UNAVAILABLE, "Internal API unreachable");
	return -1;
}

/* Turns an HTTP status of 400 and above into the API's message. */
static int api_error(const struct gitlab_response *resp, const char *prefix, struct error *err)
{
	struct strbuf m = STRBUF_INIT;
	gitlab_error_message(resp, &m);
	error_set(err, STATUS_INTERNAL, "%s%s", prefix, m.buf ? m.buf : "");
	strbuf_release(&m);
	return -1;
}

int gitlab_allowed(const struct config *cfg, const struct gitlab_allowed_params *p, int *allowed,
		   char **message, struct error *err)
{
	struct gitlab_response resp = { 0, "", STRBUF_INIT };
	char *body = NULL;
	json_t *js = NULL;
	int ret = -1;

	*allowed = 0;
	*message = NULL;
	if (gitlab_allowed_body(p, &body, err) < 0)
		goto out;
	if (api_post(cfg, "/allowed", body, &resp, err) < 0)
		goto out;
	if (resp.status >= 400) {
		api_error(&resp, "", err);
		goto out;
	}
	if (resp.status != 200 && resp.status != 300) {
		error_set(err, STATUS_INTERNAL, "gitlab api is not accessible: %d", resp.status);
		goto out;
	}
	if (decode_json_reply(&resp, "allowed", &js, err) < 0)
		goto out;
	*allowed = json_is_true(json_object_get(js, "status"));
	const char *m = json_string_value(json_object_get(js, "message"));
	*message = strdup(m ? m : "");
	ret = 0;
out:
	json_decref(js);
	free(body);
	gitlab_response_release(&resp);
	return ret;
}

int gitlab_pre_receive(const struct config *cfg, const char *gl_repository, int *increased,
		       struct error *err)
{
	struct gitlab_response resp = { 0, "", STRBUF_INIT };
	json_t *req = json_pack("{s:s}", "gl_repository", gl_repository ? gl_repository : "");
	char *body = json_dumps(req, JSON_COMPACT);
	json_t *js = NULL;
	int ret = -1;

	*increased = 0;
	if (api_post(cfg, "/pre_receive", body, &resp, err) < 0) {
		error_prefix(err, "http post to gitlab api /pre_receive endpoint");
		goto out;
	}
	if (resp.status >= 400) {
		api_error(&resp, "http post to gitlab api /pre_receive endpoint: ", err);
		goto out;
	}
	if (resp.status != 200) {
		error_set(err, STATUS_INTERNAL, "pre-receive call failed with status: %d",
			  resp.status);
		goto out;
	}
	if (decode_json_reply(&resp, "pre_receive", &js, err) < 0)
		goto out;
	*increased = json_is_true(json_object_get(js, "reference_counter_increased"));
	ret = 0;
out:
	json_decref(js);
	json_decref(req);
	free(body);
	gitlab_response_release(&resp);
	return ret;
}

int gitlab_post_receive(const struct config *cfg, const char *gl_repository, const char *gl_id,
			const char *changes, const char *const *push_options, size_t n_push_options,
			int *decreased, struct gitlab_message **msgs, size_t *n_msgs,
			struct error *err)
{
	struct gitlab_response resp = { 0, "", STRBUF_INIT };
	json_t *req = json_object(), *opts = json_array(), *js = NULL;
	char *body = NULL;
	int ret = -1;

	*decreased = 0;
	*msgs = NULL;
	*n_msgs = 0;
	for (size_t i = 0; i < n_push_options; i++)
		json_array_append_new(opts, json_string(push_options[i]));
	json_object_set_new(req, "gl_repository", json_string(gl_repository ? gl_repository : ""));
	json_object_set_new(req, "identifier", json_string(gl_id ? gl_id : ""));
	json_object_set_new(req, "changes", json_string(changes ? changes : ""));
	/* Go marshals a nil slice as null. */
	json_object_set_new(req, "push_options", n_push_options ? json_incref(opts) : json_null());
	body = json_dumps(req, JSON_COMPACT);
	if (api_post(cfg, "/post_receive", body, &resp, err) < 0) {
		error_prefix(err, "http post to gitlab api /post_receive endpoint");
		goto out;
	}
	if (resp.status >= 400) {
		api_error(&resp, "http post to gitlab api /post_receive endpoint: ", err);
		goto out;
	}
	if (resp.status != 200) {
		error_set(err, STATUS_INTERNAL, "post-receive call failed with status: %d",
			  resp.status);
		goto out;
	}
	if (decode_json_reply(&resp, "post_receive", &js, err) < 0)
		goto out;
	*decreased = json_is_true(json_object_get(js, "reference_counter_decreased"));
	json_t *arr = json_object_get(js, "messages");
	size_t n = json_is_array(arr) ? json_array_size(arr) : 0;
	if (n > 1000)
		n = 1000;
	if (n) {
		*msgs = calloc(n, sizeof(**msgs));
		if (!*msgs) {
			error_set(err, STATUS_RESOURCE_EXHAUSTED, "out of memory");
			goto out;
		}
		for (size_t i = 0; i < n; i++) {
			json_t *m = json_array_get(arr, i);
			const char *text = json_string_value(json_object_get(m, "message"));
			const char *type = json_string_value(json_object_get(m, "type"));
			(*msgs)[i].message = strdup(text ? text : "");
			(*msgs)[i].type = strdup(type ? type : "");
		}
		*n_msgs = n;
	}
	ret = 0;
out:
	json_decref(js);
	json_decref(opts);
	json_decref(req);
	free(body);
	gitlab_response_release(&resp);
	return ret;
}

void gitlab_messages_free(struct gitlab_message *msgs, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		free(msgs[i].message);
		free(msgs[i].type);
	}
	free(msgs);
}

/* 80 columns minus git's "remote: " prefix; text keeps 2 columns each side. */
#define BOX_WIDTH 72
#define BOX_TEXT_WIDTH 68

static void center_line(struct strbuf *out, const char *line, size_t len)
{
	while (len && isspace((unsigned char)line[len - 1]))
		len--;
	while (len && isspace((unsigned char)*line)) {
		line++;
		len--;
	}
	for (size_t pad = len < BOX_WIDTH ? (BOX_WIDTH - len) / 2 : 0; pad; pad--)
		strbuf_addch(out, ' ');
	strbuf_add(out, line, len);
}

static void format_alert(const char *text, struct strbuf *out)
{
	struct strbuf line = STRBUF_INIT;
	const char *p = text;

	for (int i = 0; i < BOX_WIDTH; i++)
		strbuf_addch(out, '=');
	strbuf_adds(out, "\n\n");
	for (;;) {
		while (*p && isspace((unsigned char)*p))
			p++;
		if (!*p)
			break;
		const char *w = p;
		while (*p && !isspace((unsigned char)*p))
			p++;
		size_t wl = (size_t)(p - w);
		if (line.len + 1 + wl > BOX_TEXT_WIDTH) {
			center_line(out, line.buf ? line.buf : "", line.len);
			strbuf_addch(out, '\n');
			strbuf_reset(&line);
		}
		strbuf_add(&line, w, wl);
		strbuf_addch(&line, ' ');
	}
	center_line(out, line.buf ? line.buf : "", line.len);
	strbuf_adds(out, "\n\n");
	for (int i = 0; i < BOX_WIDTH; i++)
		strbuf_addch(out, '=');
	strbuf_release(&line);
}

int gitlab_format_messages(const struct gitlab_message *msgs, size_t n, struct strbuf *out,
			   struct error *err)
{
	for (size_t i = 0; i < n; i++) {
		strbuf_addch(out, '\n');
		if (!strcmp(msgs[i].type, "basic"))
			strbuf_adds(out, msgs[i].message);
		else if (!strcmp(msgs[i].type, "alert"))
			format_alert(msgs[i].message, out);
		else
			return error_set(err, STATUS_INTERNAL, "invalid message type: %s",
					 msgs[i].type);
		strbuf_adds(out, "\n\n");
	}
	return 0;
}
