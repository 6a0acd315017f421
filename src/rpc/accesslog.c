/*
 * The per-RPC access-log line. Upstream assembles it from several layers
 * (go-grpc-middleware's logrus interceptor, the request-info tags, the
 * stats handler's payload sizes, custom fields, feature flags); here one
 * function builds the same set of keys from a struct the runtime fills at
 * the end of the call, applies the method allow/deny filter, and hands the
 * object to the logger with the level upstream derives from the code.
 */
#include "rpc/accesslog.h"

#include <pthread.h>
#include <regex.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "base/log.h"
#include "base/strbuf.h"

#define DEFAULT_DENY_PATTERN "^/grpc.health.v1.Health/Check$"
#define MAX_PATTERN_LEN 4096

/* The active method filter; swapped as a whole under filter_lock. */
struct filter {
	int has_allow, has_deny;
	regex_t allow, deny;
};

static pthread_rwlock_t filter_lock = PTHREAD_RWLOCK_INITIALIZER;
static struct filter *filter_cur;
/* Bumped whenever the filter changes: per-thread answers older than it are stale. */
static unsigned long filter_gen = 1;

/*
 * Per thread, the last few methods' answers (regexec allocates and walks
 * the automaton on every call; a server sees few distinct methods).
 */
#define FILTER_CACHE_SLOTS 8
#define FILTER_CACHE_NAME 128
struct filter_cache_entry {
	unsigned long gen; /* 0: empty */
	int logged;
	char name[FILTER_CACHE_NAME];
};
static __thread struct filter_cache_entry filter_cache[FILTER_CACHE_SLOTS];
static __thread unsigned filter_cache_next;
static pthread_once_t filter_once = PTHREAD_ONCE_INIT;

const char *accesslog_method_type_name(enum rpc_method_type type)
{
	switch (type) {
	case RPC_UNARY:
		return "unary";
	case RPC_CLIENT_STREAM:
		return "client_stream";
	case RPC_SERVER_STREAM:
		return "server_stream";
	case RPC_BIDI_STREAM:
	default:
		return "bidi_stream";
	}
}

const char *accesslog_op_name(enum rpc_op op)
{
	switch (op) {
	case RPC_OP_ACCESSOR:
		return "accessor";
	case RPC_OP_MUTATOR:
		return "mutator";
	case RPC_OP_MAINTENANCE:
		return "maintenance";
	default:
		return NULL;
	}
}

const char *accesslog_scope_name(enum rpc_scope scope)
{
	return scope == RPC_SCOPE_STORAGE ? "storage" : "repository";
}

static void filter_free(struct filter *f)
{
	if (!f)
		return;
	if (f->has_allow)
		regfree(&f->allow);
	if (f->has_deny)
		regfree(&f->deny);
	free(f);
}

/* Compiles one pattern; returns 0 with *has set, or -1 with err set. */
static int compile_one(const char *pattern, regex_t *re, int *has, const char *what,
		       struct error *err)
{
	int rc;

	*has = 0;
	if (!pattern || !*pattern)
		return 0;
	if (strlen(pattern) > MAX_PATTERN_LEN)
		return error_set(err, STATUS_INVALID_ARGUMENT, "%s pattern too long", what);
	rc = regcomp(re, pattern, REG_EXTENDED | REG_NOSUB);
	if (rc) {
		char msg[256];
		regerror(rc, re, msg, sizeof(msg));
		return error_set(err, STATUS_INVALID_ARGUMENT, "invalid %s pattern %s: %s", what,
				 pattern, msg);
	}
	*has = 1;
	return 0;
}

static int filter_build(const char *allow, const char *deny, struct filter **out,
			struct error *err)
{
	struct filter *f = calloc(1, sizeof(*f));
	int ret = -1;

	if (!f) {
		error_set(err, STATUS_INTERNAL, "out of memory");
		goto out;
	}
	if (compile_one(allow, &f->allow, &f->has_allow, "allow", err) < 0)
		goto out;
	/* upstream consults the deny pattern only when no allow pattern is set */
	if (!f->has_allow && compile_one(deny, &f->deny, &f->has_deny, "deny", err) < 0)
		goto out;
	*out = f;
	f = NULL;
	ret = 0;
out:
	filter_free(f);
	return ret;
}

static void filter_install(struct filter *f)
{
	struct filter *old;

	pthread_rwlock_wrlock(&filter_lock);
	old = filter_cur;
	filter_cur = f;
	__atomic_add_fetch(&filter_gen, 1, __ATOMIC_ACQ_REL);
	pthread_rwlock_unlock(&filter_lock);
	filter_free(old);
}

/* Like upstream's env.GetString: unset or empty means the fallback; spaces trimmed. */
static char *env_pattern(const char *name, const char *fallback)
{
	const char *v = getenv(name);
	size_t start = 0, end;

	if (!v || !*v)
		return strdup(fallback);
	end = strlen(v);
	while (start < end && strchr(" \t\n\r\v\f", v[start]))
		start++;
	while (end > start && strchr(" \t\n\r\v\f", v[end - 1]))
		end--;
	return strndup(v + start, end - start);
}

static void filter_init_from_env(void)
{
	struct error err = ERROR_INIT;
	struct filter *f = NULL;
	char *allow = env_pattern("GITALY_LOG_REQUEST_METHOD_ALLOW_PATTERN", "");
	char *deny = env_pattern("GITALY_LOG_REQUEST_METHOD_DENY_PATTERN", DEFAULT_DENY_PATTERN);

	if (filter_build(allow, deny, &f, &err) < 0) {
		log_msg(LOG_ERROR, "access log filter: %s; logging every call", err.message);
		f = NULL;
	}
	pthread_rwlock_wrlock(&filter_lock);
	if (!filter_cur) {
		filter_cur = f;
		__atomic_add_fetch(&filter_gen, 1, __ATOMIC_ACQ_REL);
	} else {
		filter_free(f); /* accesslog_set_patterns won the race */
	}
	pthread_rwlock_unlock(&filter_lock);
	free(allow);
	free(deny);
	error_release(&err);
}

int accesslog_set_patterns(const char *allow, const char *deny, struct error *err)
{
	struct filter *f = NULL;

	pthread_once(&filter_once, filter_init_from_env);
	if (filter_build(allow, deny, &f, err) < 0)
		return -1;
	filter_install(f);
	return 0;
}

int accesslog_method_logged(const char *full_method)
{
	int logged = 1;
	unsigned long gen;
	size_t len;
	struct filter_cache_entry *c;

	pthread_once(&filter_once, filter_init_from_env);
	if (!full_method)
		full_method = "";
	len = strlen(full_method);
	gen = __atomic_load_n(&filter_gen, __ATOMIC_ACQUIRE);
	if (len < FILTER_CACHE_NAME) {
		for (int i = 0; i < FILTER_CACHE_SLOTS; i++) {
			c = &filter_cache[i];
			if (c->gen == gen && !memcmp(c->name, full_method, len + 1))
				return c->logged;
		}
	}
	pthread_rwlock_rdlock(&filter_lock);
	gen = filter_gen; /* the answer below is for this filter */
	if (filter_cur && filter_cur->has_allow)
		logged = regexec(&filter_cur->allow, full_method, 0, NULL, 0) == 0;
	else if (filter_cur && filter_cur->has_deny)
		logged = regexec(&filter_cur->deny, full_method, 0, NULL, 0) != 0;
	pthread_rwlock_unlock(&filter_lock);
	if (len < FILTER_CACHE_NAME) {
		c = &filter_cache[filter_cache_next++ % FILTER_CACHE_SLOTS];
		memcpy(c->name, full_method, len + 1);
		c->logged = logged;
		c->gen = gen;
	}
	return logged;
}

/* upstream's code-to-level table (go-grpc-middleware's logrus default) */
static enum log_level level_for(int code)
{
	switch (code) {
	case STATUS_OK:
	case STATUS_CANCELLED:
	case STATUS_INVALID_ARGUMENT:
	case STATUS_NOT_FOUND:
	case STATUS_ALREADY_EXISTS:
	case STATUS_UNAUTHENTICATED:
		return LOG_INFO;
	case STATUS_DEADLINE_EXCEEDED:
	case STATUS_PERMISSION_DENIED:
	case STATUS_RESOURCE_EXHAUSTED:
	case STATUS_FAILED_PRECONDITION:
	case STATUS_ABORTED:
	case STATUS_OUT_OF_RANGE:
	case STATUS_UNAVAILABLE:
		return LOG_WARN;
	default:
		return LOG_ERROR;
	}
}

/* Go's "2006-01-02T15:04:05.000" in local time. */
static void local_time(time_t sec, long ms, char *out, size_t n)
{
	/*
	 * Per thread, the last two seconds formatted (a call's start and its
	 * deadline): localtime_r takes glibc's time-zone lock.
	 */
	static __thread struct {
		time_t sec;
		char text[64];
	} cache[2] = { { (time_t)-1, "" }, { (time_t)-1, "" } };
	static __thread int next;
	const char *text = NULL;

	for (int i = 0; i < 2; i++)
		if (cache[i].sec == sec)
			text = cache[i].text;
	if (!text) {
		struct tm tm;
		localtime_r(&sec, &tm);
		snprintf(cache[next].text, sizeof(cache[next].text), "%04d-%02d-%02dT%02d:%02d:%02d",
			 tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min,
			 tm.tm_sec);
		cache[next].sec = sec;
		text = cache[next].text;
		next ^= 1;
	}
	if (ms < 0 || ms > 999)
		ms = 0;
	{
		size_t len = strlen(text);
		if (n < len + 5) {
			if (n)
				out[0] = 0;
			return;
		}
		memcpy(out, text, len);
		out[len] = '.';
		out[len + 1] = (char)('0' + ms / 100);
		out[len + 2] = (char)('0' + ms / 10 % 10);
		out[len + 3] = (char)('0' + ms % 10);
		out[len + 4] = 0;
	}
}

/*
 * Where the fields of one line go: a jansson object for the text format
 * (and as the reference behaviour), or, for JSON lines, pre-encoded values
 * collected for log_json_fields, which writes the same bytes as
 * log_fields would for that object without building and sorting it.
 */
#define SINK_MAX_FIELDS 96

struct sink {
	json_t *obj; /* NULL: fast path */
	struct log_json_field f[SINK_MAX_FIELDS];
	size_t off[SINK_MAX_FIELDS]; /* value offsets into vals until the end */
	size_t n;
	struct strbuf *vals; /* own, or the thread's log scratch buffer */
	struct strbuf own;
};

/* Starts a field of the fast path; returns its index, or -1 when full. */
static int sink_field(struct sink *k, const char *key)
{
	if (k->n >= SINK_MAX_FIELDS)
		return -1;
	k->f[k->n].key = key;
	k->off[k->n] = k->vals->len;
	return (int)k->n;
}

static void sink_done(struct sink *k, int i)
{
	k->f[i].len = k->vals->len - k->off[i];
	k->n++;
}

static void put_string(struct sink *k, const char *key, const char *s)
{
	if (k->obj) {
		json_object_set_new(k->obj, key, json_string(s));
		return;
	}
	int i = sink_field(k, key);
	if (i < 0)
		return;
	if (log_json_string(k->vals, s) == 0)
		sink_done(k, i);
}

static void put_integer(struct sink *k, const char *key, long long v)
{
	if (k->obj) {
		json_object_set_new(k->obj, key, json_integer((json_int_t)v));
		return;
	}
	int i = sink_field(k, key);
	if (i < 0)
		return;
	{
		/* decimal digits without printf: this runs twice per logged call */
		char digits[24], *p = digits + sizeof(digits);
		unsigned long long u = v < 0 ? 0ULL - (unsigned long long)v : (unsigned long long)v;
		do {
			*--p = (char)('0' + u % 10);
			u /= 10;
		} while (u);
		if (v < 0)
			*--p = '-';
		strbuf_add(k->vals, p, (size_t)(digits + sizeof(digits) - p));
	}
	sink_done(k, i);
}

static void put_real(struct sink *k, const char *key, double v)
{
	if (k->obj) {
		json_object_set_new(k->obj, key, json_real(v));
		return;
	}
	if (v != v || v - v != 0) /* NaN or infinite: jansson refuses them */
		return;
	int i = sink_field(k, key);
	if (i < 0)
		return;
	log_json_real(k->vals, v);
	sink_done(k, i);
}

/*
 * us / 1000 as put_real writes it ("%.15g", then ".0" when integral):
 * below 10^12 us the quotient has at most 13 significant digits, so that
 * is the exact decimal, written here without printf.
 */
static void put_millis(struct sink *k, const char *key, int64_t us)
{
	char digits[32], *p = digits + sizeof(digits);
	int64_t ms = us / 1000, frac = us % 1000;
	int i;

	if (k->obj || us < 0 || us >= 1000000000000LL) {
		put_real(k, key, (double)us / 1000.0);
		return;
	}
	if ((i = sink_field(k, key)) < 0)
		return;
	if (frac) {
		int n = 3;
		while (frac % 10 == 0) {
			frac /= 10;
			n--;
		}
		while (n--) {
			*--p = (char)('0' + frac % 10);
			frac /= 10;
		}
	} else {
		*--p = '0';
	}
	*--p = '.';
	do {
		*--p = (char)('0' + ms % 10);
		ms /= 10;
	} while (ms);
	strbuf_add(k->vals, p, (size_t)(digits + sizeof(digits) - p));
	sink_done(k, i);
}

/* Handler-provided fields (rare): encoded by jansson itself. */
static void put_custom(struct sink *k, json_t *fields)
{
	const char *key;
	json_t *value;

	if (k->obj) {
		json_object_update(k->obj, fields);
		return;
	}
	json_object_foreach(fields, key, value) {
		int i = sink_field(k, key);
		char *text;
		if (i < 0)
			return;
		text = json_dumps(value, JSON_COMPACT | JSON_SORT_KEYS | JSON_ENCODE_ANY |
						 JSON_REAL_PRECISION(15));
		if (!text)
			continue;
		strbuf_adds(k->vals, text);
		free(text);
		sink_done(k, i);
	}
}

/* Sets key to s unless s is empty or upstream's "unknown" placeholder. */
static void set_tag(struct sink *k, const char *key, const char *s)
{
	if (s && *s && strcmp(s, "unknown"))
		put_string(k, key, s);
}

/* Sets key to s even when empty (repository fields always appear). */
static void set_str(struct sink *k, const char *key, const char *s)
{
	put_string(k, key, s ? s : "");
}

void accesslog_emit(const struct accesslog_entry *e)
{
	char full_method[512], buf[64];
	enum log_level level;
	struct sink k;
	const char *code_name;
	int64_t us;

	if (!e)
		return;
	{
		/* "/%s/%s", cut to the buffer, without printf (once per call) */
		const char *parts[2] = { e->service ? e->service : "", e->method ? e->method : "" };
		size_t at = 0;
		for (int i = 0; i < 2; i++) {
			size_t l = strlen(parts[i]);
			if (at < sizeof(full_method) - 1)
				full_method[at++] = '/';
			if (l > sizeof(full_method) - 1 - at)
				l = sizeof(full_method) - 1 - at;
			memcpy(full_method + at, parts[i], l);
			at += l;
		}
		full_method[at] = '\0';
	}
	if (e->code == STATUS_OK && !accesslog_method_logged(full_method))
		return;
	level = level_for(e->code);
	if (!log_enabled(level))
		return;
	code_name = status_code_name(e->code);
	k.n = 0;
	strbuf_init(&k.own, 0); /* no cap: a long error must not cut the line */
	k.vals = log_scratch_take();
	if (!k.vals)
		k.vals = &k.own;
	k.obj = NULL;
	if (!log_is_json()) {
		k.obj = json_object();
		if (!k.obj)
			goto out;
	}

	/*
	 * Standard fields in the byte order of their keys, so that sorting the
	 * line (log_json_fields) is a single pass; handler fields come after
	 * them and override them, except the three after them (as upstream's
	 * field order of precedence).
	 */
	put_string(&k, "component", e->type == RPC_UNARY ? "gitaly.UnaryServerInterceptor"
							 : "gitaly.StreamServerInterceptor");
	set_tag(&k, "correlation_id", e->correlation_id);
	if (e->code != STATUS_OK)
		set_str(&k, "error", e->error ? e->error : code_name);
	put_string(&k, "grpc.code", code_name);
	/* request-info tags */
	set_tag(&k, "grpc.meta.auth_version", e->auth_version);
	set_tag(&k, "grpc.meta.call_site", e->call_site);
	set_tag(&k, "grpc.meta.client_name", e->client_name);
	set_tag(&k, "grpc.meta.deadline_type", e->deadline_unix_ms ? e->deadline_type : "none");
	if (e->op != RPC_OP_UNKNOWN) {
		set_tag(&k, "grpc.meta.method_operation", accesslog_op_name(e->op));
		set_tag(&k, "grpc.meta.method_scope", accesslog_scope_name(e->scope));
	}
	set_tag(&k, "grpc.meta.method_type", accesslog_method_type_name(e->type));
	set_str(&k, "grpc.method", e->method);
	set_tag(&k, "grpc.request.StorageName", e->storage_name);
	if (e->deadline_unix_ms) {
		int64_t ms = e->deadline_unix_ms;
		int64_t sec = ms >= 0 ? ms / 1000 : -((-ms + 999) / 1000);
		local_time((time_t)sec, (long)(ms - sec * 1000), buf, sizeof(buf));
		put_string(&k, "grpc.request.deadline", buf);
	}
	set_tag(&k, "grpc.request.fullMethod", full_method);
	if (e->has_repository) {
		set_str(&k, "grpc.request.glProjectPath", e->gl_project_path);
		set_str(&k, "grpc.request.glRepository", e->gl_repository);
	}
	if (e->has_pool_repository) {
		set_str(&k, "grpc.request.pool.relativePath", e->pool_relative_path);
		set_str(&k, "grpc.request.pool.sourceProjectPath", e->pool_source_project_path);
		set_str(&k, "grpc.request.pool.storage", e->pool_storage);
	}
	if (e->has_repository) {
		set_str(&k, "grpc.request.repoPath", e->repo_path);
		set_str(&k, "grpc.request.repoStorage", e->repo_storage);
	}
	set_str(&k, "grpc.service", e->service);
	local_time(e->start.tv_sec, e->start.tv_nsec / 1000000, buf, sizeof(buf));
	put_string(&k, "grpc.start_time", buf);
	us = e->time_ms > 0 ? (int64_t)(e->time_ms * 1000.0) : 0;
	put_millis(&k, "grpc.time_ms", us);
	set_tag(&k, "peer.address", e->peer_address);
	set_tag(&k, "remote_ip", e->remote_ip);
	put_string(&k, "span.kind", "server");
	put_string(&k, "system", "grpc");
	set_tag(&k, "user_id", e->user_id);
	set_tag(&k, "username", e->username);

	/* end-of-call fields */
	if (e->custom_fields && json_is_object(e->custom_fields))
		put_custom(&k, e->custom_fields);
	put_integer(&k, "grpc.request.payload_bytes", (long long)e->request_bytes);
	put_integer(&k, "grpc.response.payload_bytes", (long long)e->response_bytes);
	if (e->feature_flags && *e->feature_flags)
		set_str(&k, "feature_flags", e->feature_flags);

	snprintf(buf, sizeof(buf), "finished %s call with code %s",
		 e->type == RPC_UNARY ? "unary" : "streaming", code_name);
	if (k.obj) {
		log_fields(level, k.obj, buf);
	} else {
		for (size_t i = 0; i < k.n; i++)
			k.f[i].value = k.vals->buf + k.off[i];
		log_json_fields(level, k.f, k.n, buf);
	}
out:
	if (k.vals != &k.own)
		log_scratch_return(k.vals);
	strbuf_release(&k.own);
}
