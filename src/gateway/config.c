/*
 * The gateway's configuration file (TOML, parsed with src/config/toml.c),
 * the path-to-repository mapping shared by HTTP and SSH, the basic-auth
 * user check, and the per-storage connection pool. Keys are documented in
 * docs/gateway.md; unknown keys are errors so typos do not go unnoticed.
 */
#include "gateway/gateway.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/crypto.h>

#include "base/strbuf.h"
#include "config/toml.h"

#define MAX_CONFIG_SIZE (1u << 20)
#define MAX_PATH_LEN 1024

static int bad(struct error *err, const char *name, const struct toml_value *v,
	       const char *fmt, const char *what)
{
	if (v)
		return error_set(err, STATUS_INVALID_ARGUMENT, "%s:%d:%d: %s %s", name, v->line,
				 v->column, fmt, what);
	return error_set(err, STATUS_INVALID_ARGUMENT, "%s: %s %s", name, fmt, what);
}

/* Copies a string value into *dst (replacing it). */
static int get_string(const struct toml_value *v, const char *key, char **dst, const char *name,
		      struct error *err)
{
	char *s;

	if (v->type != TOML_STRING)
		return bad(err, name, v, "expected a string for", key);
	if (strlen(v->u.string.ptr) != v->u.string.len)
		return bad(err, name, v, "NUL byte in", key);
	s = strdup(v->u.string.ptr);
	if (!s)
		return error_set(err, STATUS_INTERNAL, "out of memory");
	free(*dst);
	*dst = s;
	return 0;
}

/* An array of "key=value" strings. */
static int get_string_array(const struct toml_value *v, const char *key, char ***dst,
			    size_t *n, const char *name, struct error *err)
{
	if (v->type != TOML_ARRAY)
		return bad(err, name, v, "expected an array of strings for", key);
	*dst = calloc(v->u.array.len + 1, sizeof(char *));
	if (!*dst)
		return error_set(err, STATUS_INTERNAL, "out of memory");
	for (size_t i = 0; i < v->u.array.len; i++) {
		const struct toml_value *e = v->u.array.items[i];
		if (e->type != TOML_STRING || !strchr(e->u.string.ptr, '=') ||
		    e->u.string.ptr[0] == '=')
			return bad(err, name, e, "expected \"key=value\" strings in", key);
		if (get_string(e, key, &(*dst)[i], name, err) < 0)
			return -1;
		(*n)++;
	}
	return 0;
}

static int get_bool(const struct toml_value *v, const char *key, int *dst, const char *name,
		    struct error *err)
{
	if (v->type != TOML_BOOL)
		return bad(err, name, v, "expected a boolean for", key);
	*dst = v->u.boolean;
	return 0;
}

static int get_uint(const struct toml_value *v, const char *key, uint64_t *dst,
		    const char *name, struct error *err)
{
	if (v->type != TOML_INTEGER || v->u.integer < 0)
		return bad(err, name, v, "expected a non-negative integer for", key);
	*dst = (uint64_t)v->u.integer;
	return 0;
}

static int parse_storage(const struct toml_value *t, struct gateway_storage *st,
			 const char *name, struct error *err)
{
	if (t->type != TOML_TABLE)
		return bad(err, name, t, "expected a table for", "storage");
	for (size_t i = 0; i < t->u.table.len; i++) {
		const struct toml_keyval *kv = &t->u.table.items[i];
		char **dst;
		if (!strcmp(kv->key, "name"))
			dst = &st->name;
		else if (!strcmp(kv->key, "address"))
			dst = &st->address;
		else if (!strcmp(kv->key, "token"))
			dst = &st->token;
		else if (!strcmp(kv->key, "ca_file"))
			dst = &st->ca_file;
		else
			return bad(err, name, kv->value, "unknown key storage.", kv->key);
		if (get_string(kv->value, kv->key, dst, name, err) < 0)
			return -1;
	}
	if (!st->name || !*st->name)
		return bad(err, name, t, "storage needs a", "name");
	if (strchr(st->name, '/'))
		return bad(err, name, t, "'/' in storage name", st->name);
	if (!st->address || !*st->address)
		return bad(err, name, t, "storage needs an address:", st->name);
	if (!st->token && !(st->token = strdup("")))
		return error_set(err, STATUS_INTERNAL, "out of memory");
	return 0;
}

static int parse_user(const struct toml_value *t, struct gateway_user *u, const char *name,
		      struct error *err)
{
	if (t->type != TOML_TABLE)
		return bad(err, name, t, "expected a table for", "auth.user");
	for (size_t i = 0; i < t->u.table.len; i++) {
		const struct toml_keyval *kv = &t->u.table.items[i];
		char **dst;
		if (!strcmp(kv->key, "name"))
			dst = &u->name;
		else if (!strcmp(kv->key, "password"))
			dst = &u->password;
		else if (!strcmp(kv->key, "gl_id"))
			dst = &u->gl_id;
		else
			return bad(err, name, kv->value, "unknown key auth.user.", kv->key);
		if (get_string(kv->value, kv->key, dst, name, err) < 0)
			return -1;
	}
	if (!u->name || !*u->name || strchr(u->name, ':'))
		return bad(err, name, t, "auth.user needs a name without ':'", "");
	if (!u->password || !*u->password)
		return bad(err, name, t, "auth.user needs a password:", u->name);
	if (!u->gl_id) {
		struct strbuf sb = STRBUF_INIT;
		if (strbuf_addf(&sb, "username-%s", u->name) < 0)
			return error_set(err, STATUS_INTERNAL, "out of memory");
		u->gl_id = strbuf_detach(&sb, NULL);
	}
	return 0;
}

static int parse_auth(const struct toml_value *t, struct gateway_config *cfg, const char *name,
		      struct error *err)
{
	if (t->type != TOML_TABLE)
		return bad(err, name, t, "expected a table for", "auth");
	for (size_t i = 0; i < t->u.table.len; i++) {
		const struct toml_keyval *kv = &t->u.table.items[i];
		const struct toml_value *v = kv->value;
		if (!strcmp(kv->key, "required")) {
			if (get_bool(v, kv->key, &cfg->auth_required, name, err) < 0)
				return -1;
		} else if (!strcmp(kv->key, "anonymous_gl_id")) {
			if (get_string(v, kv->key, &cfg->anonymous_gl_id, name, err) < 0)
				return -1;
		} else if (!strcmp(kv->key, "realm")) {
			if (get_string(v, kv->key, &cfg->realm, name, err) < 0)
				return -1;
		} else if (!strcmp(kv->key, "user")) {
			if (v->type != TOML_ARRAY)
				return bad(err, name, v, "expected an array of tables for",
					   "auth.user");
			cfg->users = calloc(v->u.array.len + 1, sizeof(*cfg->users));
			if (!cfg->users)
				return error_set(err, STATUS_INTERNAL, "out of memory");
			for (size_t j = 0; j < v->u.array.len; j++) {
				cfg->n_users++;
				if (parse_user(v->u.array.items[j], &cfg->users[j], name, err) < 0)
					return -1;
			}
		} else {
			return bad(err, name, v, "unknown key auth.", kv->key);
		}
	}
	return 0;
}

int gateway_config_parse(const char *text, size_t len, const char *name,
			 struct gateway_config **out, struct error *err)
{
	struct gateway_config *cfg;
	struct toml_value *doc = NULL;
	struct toml_error terr;
	int ret = -1;
	uint64_t timeout_s = 0;

	cfg = calloc(1, sizeof(*cfg));
	if (!cfg)
		return error_set(err, STATUS_INTERNAL, "out of memory");
	cfg->max_upload_pack_body = 64u << 20;
	if (toml_parse(text, len, &doc, &terr) < 0) {
		error_set(err, STATUS_INVALID_ARGUMENT, "%s:%d:%d: %s", name, terr.line,
			  terr.column, terr.message);
		goto out;
	}
	for (size_t i = 0; i < doc->u.table.len; i++) {
		const struct toml_keyval *kv = &doc->u.table.items[i];
		const struct toml_value *v = kv->value;
		int r;
		if (!strcmp(kv->key, "listen_addr"))
			r = get_string(v, kv->key, &cfg->listen_addr, name, err);
		else if (!strcmp(kv->key, "default_storage"))
			r = get_string(v, kv->key, &cfg->default_storage, name, err);
		else if (!strcmp(kv->key, "log_level"))
			r = get_string(v, kv->key, &cfg->log_level, name, err);
		else if (!strcmp(kv->key, "max_upload_pack_body"))
			r = get_uint(v, kv->key, &cfg->max_upload_pack_body, name, err);
		else if (!strcmp(kv->key, "max_receive_pack_body"))
			r = get_uint(v, kv->key, &cfg->max_receive_pack_body, name, err);
		else if (!strcmp(kv->key, "call_timeout"))
			r = get_uint(v, kv->key, &timeout_s, name, err);
		else if (!strcmp(kv->key, "git_config_options"))
			r = get_string_array(v, kv->key, &cfg->git_config, &cfg->n_git_config, name,
					     err);
		else if (!strcmp(kv->key, "auth"))
			r = parse_auth(v, cfg, name, err);
		else if (!strcmp(kv->key, "storage")) {
			if (v->type != TOML_ARRAY) {
				r = bad(err, name, v, "expected an array of tables for", "storage");
			} else {
				r = 0;
				cfg->storages = calloc(v->u.array.len + 1, sizeof(*cfg->storages));
				if (!cfg->storages)
					r = error_set(err, STATUS_INTERNAL, "out of memory");
				for (size_t j = 0; r == 0 && j < v->u.array.len; j++) {
					pthread_mutex_init(&cfg->storages[j].mu, NULL);
					cfg->n_storages++;
					r = parse_storage(v->u.array.items[j], &cfg->storages[j], name,
							  err);
				}
			}
		} else
			r = bad(err, name, v, "unknown key", kv->key);
		if (r < 0)
			goto out;
	}
	cfg->call_timeout_ms = (int64_t)timeout_s * 1000;
	if (!cfg->n_storages) {
		bad(err, name, NULL, "at least one [[storage]] is required", "");
		goto out;
	}
	for (size_t i = 0; i < cfg->n_storages; i++)
		for (size_t j = 0; j < i; j++)
			if (!strcmp(cfg->storages[i].name, cfg->storages[j].name)) {
				bad(err, name, NULL, "duplicate storage", cfg->storages[i].name);
				goto out;
			}
	if (!cfg->default_storage && !(cfg->default_storage = strdup(cfg->storages[0].name)))
		goto oom;
	if (!gateway_storage_find(cfg, cfg->default_storage, strlen(cfg->default_storage))) {
		bad(err, name, NULL, "default_storage is not a configured storage:",
		    cfg->default_storage);
		goto out;
	}
	if (!cfg->listen_addr && !(cfg->listen_addr = strdup("127.0.0.1:8080")))
		goto oom;
	if (!cfg->anonymous_gl_id && !(cfg->anonymous_gl_id = strdup("")))
		goto oom;
	if (!cfg->realm && !(cfg->realm = strdup("gitaly-gateway")))
		goto oom;
	if (!cfg->log_level && !(cfg->log_level = strdup("info")))
		goto oom;
	*out = cfg;
	cfg = NULL;
	ret = 0;
	goto out;
oom:
	error_set(err, STATUS_INTERNAL, "out of memory");
out:
	toml_free(doc);
	gateway_config_free(cfg);
	return ret;
}

int gateway_config_load(const char *path, struct gateway_config **out, struct error *err)
{
	struct strbuf sb;
	char buf[8192];
	FILE *f;
	size_t n;
	int ret = -1;

	strbuf_init(&sb, MAX_CONFIG_SIZE);
	f = fopen(path, "r");
	if (!f)
		return error_set(err, STATUS_INVALID_ARGUMENT, "open %s: %s", path,
				 strerror(errno));
	while ((n = fread(buf, 1, sizeof(buf), f)) > 0) {
		if (strbuf_add(&sb, buf, n) < 0) {
			error_set(err, STATUS_INVALID_ARGUMENT, "%s: file too large", path);
			goto out;
		}
	}
	if (ferror(f)) {
		error_set(err, STATUS_INVALID_ARGUMENT, "read %s: %s", path, strerror(errno));
		goto out;
	}
	ret = gateway_config_parse(sb.buf ? sb.buf : "", sb.len, path, out, err);
out:
	fclose(f);
	strbuf_release(&sb);
	return ret;
}

void gateway_config_free(struct gateway_config *cfg)
{
	if (!cfg)
		return;
	for (size_t i = 0; i < cfg->n_storages; i++) {
		struct gateway_storage *st = &cfg->storages[i];
		free(st->name);
		free(st->address);
		if (st->token)
			OPENSSL_cleanse(st->token, strlen(st->token));
		free(st->token);
		free(st->ca_file);
		if (st->conn) {
			gitaly_conn_free(st->conn->conn);
			free(st->conn);
		}
		pthread_mutex_destroy(&st->mu);
	}
	for (size_t i = 0; i < cfg->n_users; i++) {
		free(cfg->users[i].name);
		if (cfg->users[i].password)
			OPENSSL_cleanse(cfg->users[i].password, strlen(cfg->users[i].password));
		free(cfg->users[i].password);
		free(cfg->users[i].gl_id);
	}
	for (size_t i = 0; i < cfg->n_git_config; i++)
		free(cfg->git_config[i]);
	free(cfg->git_config);
	free(cfg->storages);
	free(cfg->users);
	free(cfg->listen_addr);
	free(cfg->default_storage);
	free(cfg->anonymous_gl_id);
	free(cfg->realm);
	free(cfg->log_level);
	free(cfg);
}

struct gateway_storage *gateway_storage_find(const struct gateway_config *cfg, const char *name,
					     size_t len)
{
	for (size_t i = 0; i < cfg->n_storages; i++)
		if (strlen(cfg->storages[i].name) == len && !memcmp(cfg->storages[i].name, name, len))
			return &cfg->storages[i];
	return NULL;
}

/* Checks every '/'-separated component of p[0..len). */
static int path_ok(const char *p, size_t len)
{
	size_t start = 0;

	if (!len || len > MAX_PATH_LEN)
		return 0;
	for (size_t i = 0; i <= len; i++) {
		if (i < len) {
			unsigned char c = (unsigned char)p[i];
			if (c < 0x20 || c == 0x7f || c == '\\')
				return 0;
			if (c != '/')
				continue;
		}
		if (i == start)
			return 0; /* empty component: "//", leading or trailing '/' */
		if ((i - start == 1 && p[start] == '.') ||
		    (i - start == 2 && p[start] == '.' && p[start + 1] == '.'))
			return 0;
		start = i + 1;
	}
	return 1;
}

int gateway_repo_resolve(const struct gateway_config *cfg, const char *path, size_t len,
			 struct gateway_repo *out, struct error *err)
{
	struct gateway_storage *st = NULL;
	const char *slash;

	memset(out, 0, sizeof(*out));
	if (len && path[0] == '/') {
		path++;
		len--;
	}
	if (!path_ok(path, len))
		return error_set(err, STATUS_INVALID_ARGUMENT, "invalid repository path");
	slash = memchr(path, '/', len);
	if (slash)
		st = gateway_storage_find(cfg, path, (size_t)(slash - path));
	if (st) {
		len -= (size_t)(slash + 1 - path);
		path = slash + 1;
	} else {
		st = gateway_storage_find(cfg, cfg->default_storage, strlen(cfg->default_storage));
	}
	out->storage = st;
	out->relative_path = strndup(path, len);
	if (!out->relative_path)
		return error_set(err, STATUS_INTERNAL, "out of memory");
	return 0;
}

void gateway_repo_release(struct gateway_repo *r)
{
	free(r->relative_path);
	r->relative_path = NULL;
}

void gateway_repo_message(const struct gateway_repo *r, Gitaly__Repository *msg)
{
	gitaly__repository__init(msg);
	msg->storage_name = r->storage->name;
	msg->relative_path = r->relative_path;
}

/* Constant-time string comparison (lengths leak, contents do not). */
static int secure_eq(const char *a, const char *b)
{
	size_t la = strlen(a), lb = strlen(b);

	if (la != lb)
		return 0;
	return CRYPTO_memcmp(a, b, la) == 0;
}

const struct gateway_user *gateway_user_check(const struct gateway_config *cfg,
					      const char *name, const char *password)
{
	const struct gateway_user *found = NULL;

	if (!name || !password)
		return NULL;
	for (size_t i = 0; i < cfg->n_users; i++)
		if (!strcmp(cfg->users[i].name, name) &&
		    secure_eq(cfg->users[i].password, password))
			found = &cfg->users[i];
	return found;
}

int gateway_conn_get(struct gateway_storage *st, struct gateway_conn **out, struct error *err)
{
	struct gitaly_conn_opts opts = { 0 };
	struct gateway_conn *c;
	int ret = -1;

	pthread_mutex_lock(&st->mu);
	if (st->conn && gitaly_conn_broken(st->conn->conn)) {
		/* drop the pool's reference; in-flight users free it */
		if (--st->conn->refs == 0) {
			gitaly_conn_free(st->conn->conn);
			free(st->conn);
		}
		st->conn = NULL;
	}
	if (!st->conn) {
		c = calloc(1, sizeof(*c));
		if (!c) {
			error_set(err, STATUS_INTERNAL, "out of memory");
			goto out;
		}
		opts.token = st->token;
		opts.ca_file = st->ca_file;
		opts.client_name = GATEWAY_CLIENT_NAME;
		if (gitaly_conn_dial(st->address, &opts, &c->conn, err) < 0) {
			free(c);
			goto out;
		}
		c->refs = 1;
		st->conn = c;
	}
	st->conn->refs++;
	*out = st->conn;
	ret = 0;
out:
	pthread_mutex_unlock(&st->mu);
	return ret;
}

void gateway_conn_put(struct gateway_storage *st, struct gateway_conn *c)
{
	int last;

	if (!c)
		return;
	pthread_mutex_lock(&st->mu);
	last = --c->refs == 0;
	pthread_mutex_unlock(&st->mu);
	if (last) {
		gitaly_conn_free(c->conn);
		free(c);
	}
}

unsigned gateway_http_status(int code)
{
	switch (code) {
	case STATUS_OK:
		return 200;
	case STATUS_NOT_FOUND:
		return 404;
	case STATUS_PERMISSION_DENIED:
		return 403;
	case STATUS_UNAUTHENTICATED:
		return 401;
	default:
		return 500;
	}
}
