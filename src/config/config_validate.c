/*
 * The two validators of upstream: config_validate is Validate() (serve,
 * check: checks in a fixed order, the first failure aborts, messages as
 * upstream's), config_validate_all is ValidateV2() (`gitaly configuration
 * validate`: every problem with its key path, in the cfgerror vocabulary).
 * The two deliberately check different things, like upstream's.
 */
#include <errno.h>
#include <openssl/bio.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "base/strbuf.h"
#include "config/config_internal.h"

static int empty(const char *s)
{
	return !s || !*s;
}

static int blank(const char *s);

static const char *nz(const char *s)
{
	return s ? s : "";
}

/* "key %q must ..."-style messages need Go quoting inline. */
static char *quoted(const char *s)
{
	struct strbuf sb = STRBUF_INIT;
	size_t len;

	s = nz(s);
	if (config_go_quote(&sb, s, strlen(s)) < 0) {
		strbuf_release(&sb);
		return strdup("\"\"");
	}
	return strbuf_detach(&sb, &len);
}

static void go_errno(int e, char *out, size_t n)
{
	snprintf(out, n, "%s", strerror(e));
	if (out[0] >= 'A' && out[0] <= 'Z')
		out[0] = (char)(out[0] - 'A' + 'a');
}

/* --- git config keys ------------------------------------------------------ */

static int is_alnum(char c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9');
}

static int key_class(char c)
{
	return (c >= '*' && c <= '/') || c == '_' || c == ':' || c == '@' || is_alnum(c);
}

/* ^[[:alnum:]]+(\.[*-/_:@a-zA-Z0-9]+)+$ ('.' is inside the class, so this
 * is alnum+ '.' class+). */
static int key_regex_ok(const char *k)
{
	size_t i = 0;

	while (is_alnum(k[i]))
		i++;
	if (i == 0 || k[i] != '.')
		return 0;
	i++;
	if (!k[i])
		return 0;
	for (; k[i]; i++) {
		if (!key_class(k[i]))
			return 0;
	}
	return 1;
}

/* GitConfig.Validate's cause, or NULL when the key is fine (caller frees). */
static char *git_key_problem(const char *key)
{
	struct strbuf sb = STRBUF_INIT;
	char *q;
	size_t len;

	if (empty(key))
		return strdup("not set");
	q = quoted(key);
	if (strchr(key, '='))
		strbuf_addf(&sb, "key %s cannot contain \"=\"", q);
	else if (!strchr(key, '.'))
		strbuf_addf(&sb, "key %s must contain at least one section", q);
	else if (key[0] == '.' || key[strlen(key) - 1] == '.')
		strbuf_addf(&sb, "key %s must not start or end with a dot", q);
	else if (!key_regex_ok(key))
		strbuf_addf(&sb, "key %s failed regexp validation", q);
	free(q);
	if (!sb.len) {
		strbuf_release(&sb);
		return NULL;
	}
	return strbuf_detach(&sb, &len);
}

/* --- Validate (first error) ----------------------------------------------- */

static int dir_check(const char *name, const char *path, struct error *err)
{
	struct stat st;
	char eb[128];
	char *q;
	int r = 0;

	if (stat(path, &st) < 0) {
		q = quoted(path);
		if (errno == ENOENT) {
			r = error_set(err, STATUS_INVALID_ARGUMENT, "%s: path doesn't exist: %s", name, q);
		} else {
			go_errno(errno, eb, sizeof(eb));
			r = error_set(err, STATUS_INVALID_ARGUMENT, "%s: stat %s: %s", name, path, eb);
		}
		free(q);
		return r;
	}
	if (!S_ISDIR(st.st_mode)) {
		q = quoted(path);
		r = error_set(err, STATUS_INVALID_ARGUMENT, "%s: not a directory: %s", name, q);
		free(q);
	}
	return r;
}

static int has_prefix(const char *s, const char *p)
{
	return !strncmp(s, p, strlen(p));
}

/* filepath.Dir of a cleaned path, compared between two paths. */
static int same_parent(const char *a, const char *b)
{
	const char *sa = strrchr(a, '/'), *sb = strrchr(b, '/');
	size_t la = sa ? (size_t)(sa - a) : 0, lb = sb ? (size_t)(sb - b) : 0;

	if (sa == a)
		la = 1;
	if (sb == b)
		lb = 1;
	if (!sa && !sb)
		return 1;
	if (!sa || !sb)
		return 0;
	return la == lb && !memcmp(a, b, la);
}

static int validate_storages(const struct config *cfg, struct error *err)
{
	if (cfg->n_storages == 0)
		return error_set(err, STATUS_INVALID_ARGUMENT,
				 "no storage configurations found. Are you using the right format? https://gitlab.com/gitlab-org/gitaly/issues/397");
	for (size_t i = 0; i < cfg->n_storages; i++) {
		const struct config_storage *s = &cfg->storages[i];
		struct stat st;
		char *qn, *qp;
		int r = 0;

		if (empty(s->name))
			return error_set(err, STATUS_INVALID_ARGUMENT, "empty storage name at declaration %zu", i + 1);
		qn = quoted(s->name);
		qp = quoted(s->path);
		if (empty(s->path)) {
			r = error_set(err, STATUS_INVALID_ARGUMENT, "empty storage path for storage %s", qn);
		} else if (stat(s->path, &st) < 0) {
			char eb[128];
			go_errno(errno, eb, sizeof(eb));
			if (errno == ENOENT)
				r = error_set(err, STATUS_INVALID_ARGUMENT,
					      "storage path %s for storage %s doesn't exist", qp, qn);
			else
				r = error_set(err, STATUS_INVALID_ARGUMENT, "storage %s: stat %s: %s", qn,
					      s->path, eb);
		} else if (!S_ISDIR(st.st_mode)) {
			r = error_set(err, STATUS_INVALID_ARGUMENT, "storage path %s for storage %s is not a dir",
				      qp, qn);
		}
		for (size_t j = 0; j < i && r == 0; j++) {
			const struct config_storage *o = &cfg->storages[j];
			if (!strcmp(nz(o->name), s->name)) {
				r = error_set(err, STATUS_INVALID_ARGUMENT, "storage %s is defined more than once", qn);
				break;
			}
			if (!strcmp(nz(o->path), s->path))
				continue;
			if (has_prefix(s->path, nz(o->path)) || has_prefix(nz(o->path), s->path)) {
				char *qo;
				if (same_parent(s->path, nz(o->path)))
					continue;
				qo = quoted(o->name);
				r = error_set(err, STATUS_INVALID_ARGUMENT, "storage paths may not nest: %s and %s",
					      qn, qo);
				free(qo);
			}
		}
		free(qn);
		free(qp);
		if (r < 0)
			return -1;
	}
	return 0;
}

int config_validate(const struct config *cfg, struct error *err)
{
	/* listeners */
	if (empty(cfg->socket_path) && empty(cfg->listen_addr) && empty(cfg->tls_listen_addr))
		return error_set(err, STATUS_INVALID_ARGUMENT,
				 "at least one of socket_path, listen_addr or tls_listen_addr must be set");
	/* Upstream only notices this when building the TLS listener. */
	if (!empty(cfg->tls_listen_addr) &&
	    (empty(cfg->tls.certificate_path) || (empty(cfg->tls.key_path) && empty(cfg->tls.key))))
		return error_set(err, STATUS_INVALID_ARGUMENT,
				 "tls_listen_addr is set but [tls] certificate_path and key_path (or key) are not");

	/* Beyond upstream: rotation tokens need a current token and content. */
	for (size_t i = 0; i < cfg->auth.n_previous_tokens; i++) {
		if (blank(cfg->auth.previous_tokens[i]))
			return error_set(err, STATUS_INVALID_ARGUMENT,
					 "auth.previous_tokens[%zu]: blank or empty", i);
	}
	if (cfg->auth.n_previous_tokens && empty(cfg->auth.token))
		return error_set(err, STATUS_INVALID_ARGUMENT,
				 "auth.previous_tokens is set but auth.token is empty");

	if (validate_storages(cfg, err) < 0)
		return -1;

	for (size_t i = 0; i < cfg->git.n_config; i++) {
		char *p = git_key_problem(cfg->git.config[i].key), *q;
		if (p) {
			q = quoted(cfg->git.config[i].key);
			error_set(err, STATUS_INVALID_ARGUMENT, "invalid configuration key %s: key: %s", q, p);
			free(q);
			free(p);
			return -1;
		}
	}

	if (empty(cfg->gitlab.secret) && empty(cfg->gitlab.secret_file)) {
		if (empty(cfg->gitlab_shell.dir))
			return error_set(err, STATUS_INVALID_ARGUMENT, "GitLab secret not configured");
		if (dir_check("gitlab-shell.dir", cfg->gitlab_shell.dir, err) < 0)
			return -1;
	}

	/* bin_dir stays required even though we ship no bundled binaries. */
	if (empty(cfg->bin_dir))
		return error_set(err, STATUS_INVALID_ARGUMENT, "bin_dir: is not set");
	if (dir_check("bin_dir", cfg->bin_dir, err) < 0)
		return -1;
	if (!empty(cfg->runtime_dir) && dir_check("runtime_dir", cfg->runtime_dir, err) < 0)
		return -1;

	for (size_t i = 0; i < cfg->daily_maintenance.n_storages; i++) {
		const char *n = nz(cfg->daily_maintenance.storages[i]);
		if (!config_storage_find(cfg, n)) {
			char *q = quoted(n);
			error_set(err, STATUS_INVALID_ARGUMENT,
				  "daily maintenance specified storage %s does not exist in configuration", q);
			free(q);
			return -1;
		}
	}
	if (cfg->daily_maintenance.start_hour > 23)
		return error_set(err, STATUS_INVALID_ARGUMENT,
				 "daily maintenance specified hour '%u' outside range (0-23)",
				 cfg->daily_maintenance.start_hour);
	if (cfg->daily_maintenance.start_minute > 59)
		return error_set(err, STATUS_INVALID_ARGUMENT,
				 "daily maintenance specified minute '%u' outside range (0-59)",
				 cfg->daily_maintenance.start_minute);
	if (cfg->daily_maintenance.duration_ms > 24LL * 3600 * 1000) {
		char d[48];
		config_format_duration(cfg->daily_maintenance.duration_ms, d, sizeof(d));
		return error_set(err, STATUS_INVALID_ARGUMENT,
				 "daily maintenance specified duration %s must be less than 24 hours", d);
	}

	{
		const struct config_cgroup_limits *p = &cfg->cgroups.limits, *r = &cfg->cgroups.repositories.limits;
		if (p->memory_bytes > 0 && r->memory_bytes > p->memory_bytes)
			return error_set(err, STATUS_INVALID_ARGUMENT, "cgroups.repositories: memory limit cannot exceed parent");
		if (p->cpu_shares > 0 && r->cpu_shares > p->cpu_shares)
			return error_set(err, STATUS_INVALID_ARGUMENT, "cgroups.repositories: cpu shares cannot exceed parent");
		if (p->cpu_quota_us > 0 && r->cpu_quota_us > p->cpu_quota_us)
			return error_set(err, STATUS_INVALID_ARGUMENT, "cgroups.repositories: cpu quota cannot exceed parent");
	}

	if (cfg->pack_objects_cache.enabled) {
		if (cfg->pack_objects_cache.max_age_ms < 0)
			return error_set(err, STATUS_INVALID_ARGUMENT, "pack_objects_cache.max_age cannot be negative");
		if (empty(cfg->pack_objects_cache.dir) && cfg->n_storages == 0)
			return error_set(err, STATUS_INVALID_ARGUMENT,
					 "pack_objects_cache: cannot pick default cache directory: no storages");
		if (empty(cfg->pack_objects_cache.dir) || cfg->pack_objects_cache.dir[0] != '/')
			return error_set(err, STATUS_INVALID_ARGUMENT,
					 "pack_objects_cache: storage directory must be absolute path");
	}
	return 0;
}

/* --- ValidateV2 (all problems) -------------------------------------------- */

static void problem_add(struct config_problems *out, char *message, ...)
{
	struct config_problem *items;
	struct config_problem *p;
	va_list ap;
	const char *k;

	if (!message)
		return;
	items = realloc(out->items, (out->len + 1) * sizeof(*items));
	if (!items) {
		free(message);
		return;
	}
	out->items = items;
	p = &items[out->len++];
	memset(p, 0, sizeof(*p));
	p->message = message;
	va_start(ap, message);
	while ((k = va_arg(ap, const char *)) != NULL) {
		char **keys = realloc(p->key, (p->n_key + 1) * sizeof(char *));
		if (!keys)
			break;
		p->key = keys;
		p->key[p->n_key] = strdup(k);
		if (p->key[p->n_key])
			p->n_key++;
	}
	va_end(ap);
}

static char *fmt(const char *f, ...) __attribute__((format(printf, 1, 2)));
static char *fmt(const char *f, ...)
{
	char *s = NULL;
	va_list ap;

	va_start(ap, f);
	if (vasprintf(&s, f, ap) < 0)
		s = NULL;
	va_end(ap);
	return s;
}

/* "<what>: \"path\"" with Go quoting. */
static char *with_path(const char *what, const char *path)
{
	char *q = quoted(path), *r = fmt("%s: %s", what, q);
	free(q);
	return r;
}

/* cfgerror.DirExists / FileExists: NULL when fine. */
static char *path_exists(const char *path, int want_dir)
{
	struct stat st;

	path = nz(path);
	if (stat(path, &st) < 0) {
		char eb[128];
		if (errno == ENOENT)
			return with_path("doesn't exist", path);
		go_errno(errno, eb, sizeof(eb));
		return fmt("stat %s: %s", path, eb);
	}
	if (want_dir && !S_ISDIR(st.st_mode))
		return with_path("not a dir", path);
	if (!want_dir && S_ISDIR(st.st_mode))
		return with_path("not a file", path);
	return NULL;
}

static int blank(const char *s)
{
	for (s = nz(s); *s; s++) {
		if (!(*s == ' ' || *s == '\t' || *s == '\n' || *s == '\r' || *s == '\v' || *s == '\f'))
			return 0;
	}
	return 1;
}

/* Comparable(v).GreaterOrEqual(min) for ints: NULL when v >= min. */
static char *int_ge(int64_t v, int64_t min)
{
	if (v >= min)
		return NULL;
	return fmt("not in range: %lld is not greater than or equal to %lld", (long long)v, (long long)min);
}

static char *dur_ge0(int64_t ms)
{
	char a[48];

	if (ms >= 0)
		return NULL;
	config_format_duration(ms, a, sizeof(a));
	return fmt("not in range: %s is not greater than or equal to 0s", a);
}

/* Go's url.Parse failures that matter for config values. */
static char *url_problem(const char *u)
{
	const char *bad = NULL;
	char *q, *r;

	for (const char *p = u; *p; p++) {
		if ((unsigned char)*p < 0x20 || *p == 0x7f) {
			bad = "net/url: invalid control character in URL";
			break;
		}
	}
	if (!bad && u[0] == ':')
		bad = "missing protocol scheme";
	if (!bad) {
		for (const char *p = u; *p; p++) {
			if (*p == '%') {
				int ok = p[1] && p[2] && strchr("0123456789abcdefABCDEF", p[1]) &&
					 strchr("0123456789abcdefABCDEF", p[2]);
				if (!ok) {
					char esc[4] = { 0 };
					size_t n = strnlen(p, 3);
					memcpy(esc, p, n);
					q = quoted(u);
					char *qe = quoted(esc);
					r = fmt("parse %s: invalid URL escape %s", q, qe);
					free(q);
					free(qe);
					return r;
				}
				p += 2;
			}
		}
		return NULL;
	}
	q = quoted(u);
	r = fmt("parse %s: %s", q, bad);
	free(q);
	return r;
}

/* tls.LoadX509KeyPair / X509KeyPair, the failures Go reports. */
static char *tls_keypair_problem(const struct config *cfg)
{
	BIO *cb = NULL, *kb = NULL;
	X509 *x = NULL;
	EVP_PKEY *k = NULL;
	char *r = NULL;

	cb = BIO_new_file(cfg->tls.certificate_path, "r");
	if (cb)
		x = PEM_read_bio_X509(cb, NULL, NULL, NULL);
	if (!x) {
		r = strdup("loading x509 keypair: tls: failed to find any PEM data in certificate input");
		goto out;
	}
	if (!empty(cfg->tls.key))
		kb = BIO_new_mem_buf(cfg->tls.key, (int)strlen(cfg->tls.key));
	else
		kb = BIO_new_file(cfg->tls.key_path, "r");
	if (kb)
		k = PEM_read_bio_PrivateKey(kb, NULL, NULL, NULL);
	if (!k) {
		r = strdup("loading x509 keypair: tls: failed to find any PEM data in key input");
		goto out;
	}
	if (X509_check_private_key(x, k) != 1)
		r = strdup("loading x509 keypair: tls: private key does not match public key");
out:
	ERR_clear_error();
	EVP_PKEY_free(k);
	X509_free(x);
	BIO_free(cb);
	BIO_free(kb);
	return r;
}

static void validate_tls(const struct config *cfg, struct config_problems *out)
{
	size_t before = out->len;
	char *m;

	if (empty(cfg->tls.certificate_path) && empty(cfg->tls.key_path) && empty(cfg->tls.key))
		return;
	if (!empty(cfg->tls.key) && !empty(cfg->tls.key_path)) {
		problem_add(out, strdup("key_path and key cannot both be set"), "tls", "key_path", "key", NULL);
		return;
	}
	problem_add(out, path_exists(cfg->tls.certificate_path, 0), "tls", "certificate_path", NULL);
	if (empty(cfg->tls.key))
		problem_add(out, path_exists(cfg->tls.key_path, 0), "tls", "key_path", NULL);
	if (out->len != before)
		return;
	m = tls_keypair_problem(cfg);
	if (m) {
		const char *field = strstr(m, "in certificate input") ? "certificate_path"
				    : !empty(cfg->tls.key)                ? "key"
									  : "key_path";
		problem_add(out, m, "tls", field, NULL);
	}
}

static void validate_limits(struct config_problems *out, const char *top, const char *idx,
			    int64_t min_limit, int64_t initial, int64_t max_limit, int min_strict)
{
	if (min_strict) {
		if (min_limit <= 0)
			problem_add(out, fmt("not in range: %lld is not greater than 0", (long long)min_limit), top,
				    idx, "min_limit", NULL);
	} else {
		problem_add(out, int_ge(min_limit, 0), top, "min_limit", NULL);
	}
	if (idx) {
		problem_add(out, int_ge(max_limit, initial), top, idx, "max_limit", NULL);
		problem_add(out, int_ge(initial, min_limit), top, idx, "initial_limit", NULL);
	} else {
		problem_add(out, int_ge(max_limit, initial), top, "max_limit", NULL);
		problem_add(out, int_ge(initial, min_limit), top, "initial_limit", NULL);
	}
}

static char *u64_in_range(uint64_t v, uint64_t max)
{
	if (v <= max)
		return NULL;
	return fmt("not in range: %llu out of [0, %llu]", (unsigned long long)v, (unsigned long long)max);
}

static char *i64_in_range(int64_t v, int64_t max)
{
	if (v >= 0 && v <= max)
		return NULL;
	return fmt("not in range: %lld out of [0, %lld]", (long long)v, (long long)max);
}

void config_validate_all(const struct config *cfg, struct config_problems *out)
{
	char idx[32];

	memset(out, 0, sizeof(*out));

	if (empty(cfg->socket_path) && empty(cfg->listen_addr) && empty(cfg->tls_listen_addr))
		problem_add(out, strdup("none of \"socket_path\", \"listen_addr\" or \"tls_listen_addr\" is set"),
			    NULL);

	problem_add(out, path_exists(cfg->bin_dir, 1), "bin_dir", NULL);
	if (!empty(cfg->runtime_dir))
		problem_add(out, path_exists(cfg->runtime_dir, 1), "runtime_dir", NULL);

	for (size_t i = 0; i < cfg->git.n_config; i++)
		problem_add(out, git_key_problem(cfg->git.config[i].key), "git", "config", "key", NULL);

	/* Upstream's ValidateV2 only checks each storage on its own; we run
	 * upstream's fuller validateStorages (none, not unique, nesting), which
	 * is what serve enforces. */
	if (cfg->n_storages == 0)
		problem_add(out, strdup("not set"), "storage", NULL);
	for (size_t i = 0; i < cfg->n_storages; i++) {
		snprintf(idx, sizeof(idx), "[%zu]", i);
		if (empty(cfg->storages[i].name))
			problem_add(out, strdup("not set"), "storage", idx, "name", NULL);
		problem_add(out, path_exists(cfg->storages[i].path, 1), "storage", idx, "path", NULL);
	}
	for (size_t i = 0; i < cfg->n_storages; i++) {
		const struct config_storage *st = &cfg->storages[i];
		snprintf(idx, sizeof(idx), "[%zu]", i);
		for (size_t j = 0; j < i; j++) {
			const struct config_storage *o = &cfg->storages[j];
			if (!strcmp(nz(o->name), nz(st->name)))
				problem_add(out, with_path("not unique", nz(st->name)), "storage", idx, "name", NULL);
			if (!strcmp(nz(o->path), nz(st->path)) || empty(st->path) || empty(o->path))
				continue;
			if ((has_prefix(st->path, o->path) || has_prefix(o->path, st->path)) &&
			    !same_parent(st->path, o->path)) {
				char *a = quoted(st->path), *b = quoted(o->path);
				problem_add(out, fmt("can't nest: %s and %s", a, b), "storage", idx, "path", NULL);
				free(a);
				free(b);
			}
		}
	}

	if (cfg->prometheus.n_grpc_latency_buckets) {
		int sorted = 1;
		problem_add(out, dur_ge0(cfg->prometheus.scrape_timeout_ms), "prometheus", "scrape_timeout", NULL);
		for (size_t i = 1; i < cfg->prometheus.n_grpc_latency_buckets; i++) {
			if (cfg->prometheus.grpc_latency_buckets[i] < cfg->prometheus.grpc_latency_buckets[i - 1])
				sorted = 0;
		}
		if (!sorted) {
			struct strbuf sb = STRBUF_INIT;
			size_t len;
			strbuf_adds(&sb, "bad order: expected asc: [");
			for (size_t i = 0; i < cfg->prometheus.n_grpc_latency_buckets; i++) {
				if (i)
					strbuf_addch(&sb, ' ');
				config_go_float(&sb, cfg->prometheus.grpc_latency_buckets[i]);
			}
			strbuf_addch(&sb, ']');
			problem_add(out, strbuf_detach(&sb, &len), "prometheus", "grpc_latency_buckets", NULL);
		}
	}

	validate_tls(cfg, out);

	/* Beyond upstream: [auth] previous_tokens (token rotation). */
	for (size_t i = 0; i < cfg->auth.n_previous_tokens; i++) {
		snprintf(idx, sizeof(idx), "[%zu]", i);
		if (blank(cfg->auth.previous_tokens[i]))
			problem_add(out, strdup("blank or empty"), "auth", "previous_tokens", idx, NULL);
	}
	if (cfg->auth.n_previous_tokens && empty(cfg->auth.token))
		problem_add(out, strdup("not set"), "auth", "token", NULL);

	/* gitlab */
	if (blank(cfg->gitlab.url))
		problem_add(out, strdup("blank or empty"), "gitlab", "url", NULL);
	else
		problem_add(out, url_problem(cfg->gitlab.url), "gitlab", "url", NULL);
	if (!empty(cfg->gitlab.secret) && !empty(cfg->gitlab.secret_file))
		problem_add(out, strdup("ambiguous secret configuration"), "gitlab", "secret", "secret_file", NULL);
	if (empty(cfg->gitlab.secret))
		problem_add(out, path_exists(cfg->gitlab.secret_file, 0), "gitlab", "secret_file", NULL);
	{
		const char *u = cfg->gitlab.http_settings.user, *p = cfg->gitlab.http_settings.password;
		if (!empty(u) || !empty(p)) {
			if (blank(u))
				problem_add(out, strdup("blank or empty"), "gitlab", "http-settings", "user", NULL);
			if (blank(p))
				problem_add(out, strdup("blank or empty"), "gitlab", "http-settings", "password", NULL);
		}
		if (!empty(cfg->gitlab.http_settings.ca_file))
			problem_add(out, path_exists(cfg->gitlab.http_settings.ca_file, 0), "gitlab",
				    "http-settings", "ca_file", NULL);
		if (!empty(cfg->gitlab.http_settings.ca_path))
			problem_add(out, path_exists(cfg->gitlab.http_settings.ca_path, 1), "gitlab",
				    "http-settings", "ca_path", NULL);
	}

	/* upstream checks the deprecated gitlab-shell dir unconditionally */
	problem_add(out, path_exists(cfg->gitlab_shell.dir, 1), "gitlab-shell", "dir", NULL);

	problem_add(out, dur_ge0(cfg->graceful_restart_timeout_ms), "graceful_restart_timeout", NULL);

	if (!cfg->daily_maintenance.disabled) {
		const int64_t day = 24LL * 3600 * 1000;
		if (cfg->daily_maintenance.start_hour > 23)
			problem_add(out, fmt("not in range: %u out of [0, 23]", cfg->daily_maintenance.start_hour),
				    "daily_maintenance", "start_hour", NULL);
		if (cfg->daily_maintenance.start_minute > 59)
			problem_add(out, fmt("not in range: %u out of [0, 59]", cfg->daily_maintenance.start_minute),
				    "daily_maintenance", "start_minute", NULL);
		if (cfg->daily_maintenance.duration_ms < 0 || cfg->daily_maintenance.duration_ms > day) {
			char d[48], mx[48];
			config_format_duration(cfg->daily_maintenance.duration_ms, d, sizeof(d));
			config_format_duration(day, mx, sizeof(mx));
			problem_add(out, fmt("not in range: %s out of [0s, %s]", d, mx), "daily_maintenance",
				    "duration", NULL);
		}
		for (size_t i = 0; i < cfg->daily_maintenance.n_storages; i++) {
			const char *n = nz(cfg->daily_maintenance.storages[i]);
			if (!config_storage_find(cfg, n)) {
				snprintf(idx, sizeof(idx), "[%zu]", i);
				problem_add(out, with_path("doesn't exist", n), "daily_maintenance", "storages", idx,
					    NULL);
			}
		}
	}

	{
		const struct config_cgroup_limits *p = &cfg->cgroups.limits, *r = &cfg->cgroups.repositories.limits;
		problem_add(out, u64_in_range(cfg->cgroups.repositories.max_cgroups_per_repo,
					      cfg->cgroups.repositories.count),
			    "cgroups", "repositories", "max_cgroups_per_repo", NULL);
		problem_add(out, i64_in_range(r->memory_bytes, p->memory_bytes), "cgroups", "repositories",
			    "memory_bytes", NULL);
		problem_add(out, u64_in_range(r->cpu_shares, p->cpu_shares), "cgroups", "repositories",
			    "cpu_shares", NULL);
		problem_add(out, i64_in_range(r->cpu_quota_us, p->cpu_quota_us), "cgroups", "repositories",
			    "cpu_quota_us", NULL);
	}

	for (size_t i = 0; i < cfg->n_concurrency; i++) {
		const struct config_concurrency *c = &cfg->concurrency[i];
		snprintf(idx, sizeof(idx), "[%zu]", i);
		problem_add(out, int_ge(c->max_per_repo, 0), "concurrency", idx, "max_per_repo", NULL);
		problem_add(out, int_ge(c->max_queue_size, 0), "concurrency", idx, "max_queue_size", NULL);
		problem_add(out, dur_ge0(c->max_queue_wait_ms), "concurrency", idx, "max_queue_wait", NULL);
		if (c->adaptive)
			validate_limits(out, "concurrency", idx, c->min_limit, c->initial_limit, c->max_limit, 1);
	}

	if (cfg->pack_objects_cache.enabled) {
		const char *d = nz(cfg->pack_objects_cache.dir);
		if (d[0] != '/')
			problem_add(out, with_path("not an absolute path", d), "pack_objects_cache", "dir", NULL);
		problem_add(out, dur_ge0(cfg->pack_objects_cache.max_age_ms), "pack_objects_cache", "max_age", NULL);
	}

	{
		const typeof(cfg->pack_objects_limiting) *l = &cfg->pack_objects_limiting;
		problem_add(out, int_ge(l->max_concurrency, 0), "pack_objects_limiting", "max_concurrency", NULL);
		problem_add(out, int_ge(l->max_queue_length, 0), "pack_objects_limiting", "max_queue_length", NULL);
		problem_add(out, dur_ge0(l->max_queue_wait_ms), "pack_objects_limiting", "max_queue_wait", NULL);
		validate_limits(out, "pack_objects_limiting", NULL, l->min_limit, l->initial_limit, l->max_limit, 0);
	}

	if (!empty(cfg->backup.go_cloud_url)) {
		problem_add(out, url_problem(cfg->backup.go_cloud_url), "backup", "go_cloud_url", NULL);
		if (blank(cfg->backup.layout))
			problem_add(out, strdup("blank or empty"), "backup", "layout", NULL);
	}
}

void config_problems_release(struct config_problems *p)
{
	if (!p)
		return;
	for (size_t i = 0; i < p->len; i++) {
		for (size_t j = 0; j < p->items[i].n_key; j++)
			free(p->items[i].key[j]);
		free(p->items[i].key);
		free(p->items[i].message);
	}
	free(p->items);
	p->items = NULL;
	p->len = 0;
}
