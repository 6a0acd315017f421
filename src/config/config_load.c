/*
 * TOML document -> struct config, driven by the schema. Each value is checked
 * against the Go type upstream decodes it into; a mismatch is reported the
 * way go-toml v2 does (`toml: cannot decode TOML integer into struct field
 * config.Cfg.SocketPath of type string`) with the value's line and column.
 * Unknown keys are ignored like upstream, but each distinct dotted key path
 * is logged once at warning level.
 */
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

#include "base/log.h"
#include "config/config_internal.h"
#include "config/toml.h"

#define MAX_WARNED 256

struct load_ctx {
	struct config_decode_error *derr;
	struct error *err;
	char *warned[MAX_WARNED];
	size_t n_warned;
};

static const char *toml_kind_name(const struct toml_value *v)
{
	switch (v->type) {
	case TOML_TABLE: return "table";
	case TOML_ARRAY: return "array";
	case TOML_STRING: return "string";
	case TOML_INTEGER: return "integer";
	case TOML_FLOAT: return "float";
	case TOML_BOOL: return "boolean";
	case TOML_DATETIME: return "datetime";
	case TOML_DATETIME_LOCAL: return "local datetime";
	case TOML_DATE_LOCAL: return "local date";
	case TOML_TIME_LOCAL: return "local time";
	}
	return "value";
}

static int decode_fail(struct load_ctx *c, const struct toml_value *v, const char *path,
		       const char *fmt, ...) __attribute__((format(printf, 4, 5)));

static int decode_fail(struct load_ctx *c, const struct toml_value *v, const char *path,
		       const char *fmt, ...)
{
	va_list ap;

	c->derr->set = 1;
	c->derr->plain = 0;
	c->derr->line = v->line;
	c->derr->column = v->column;
	va_start(ap, fmt);
	vsnprintf(c->derr->message, sizeof(c->derr->message), fmt, ap);
	va_end(ap);
	return error_set(c->err, STATUS_INVALID_ARGUMENT, "load toml: line %d column %d: key %s: %s",
			 v->line, v->column, path, c->derr->message);
}

/* A go-toml failure that is a plain error (no DecodeError). */
static int plain_fail(struct load_ctx *c, const struct toml_value *v, const char *path, const char *msg)
{
	decode_fail(c, v, path, "%s", msg);
	c->derr->plain = 1;
	return -1;
}

/* Go's reflect.Kind name of a field's type, as go-toml prints it. */
static const char *go_kind(const struct cfield *f)
{
	const char *t = f->gotype;

	if (!strcmp(t, "duration.Duration"))
		return "int64";
	if (!strncmp(t, "[]", 2))
		return "slice";
	if (strchr(t, '.'))
		return "struct";
	return t;
}

static int mismatch(struct load_ctx *c, const struct cschema *s, const struct cfield *f,
		    const struct toml_value *v, const char *path)
{
	char msg[400];

	/* go-toml words booleans and floats differently, and reports an
	 * array on a non-slice field as a plain error. */
	if (v->type == TOML_BOOL)
		return decode_fail(c, v, path, "toml: cannot assign boolean to a %s",
				   v->u.boolean ? "true" : "false");
	if (v->type == TOML_FLOAT)
		return decode_fail(c, v, path, "toml: float cannot be assigned to %s", go_kind(f));
	snprintf(msg, sizeof(msg), "toml: cannot decode TOML %s into struct field %s.%s of type %s",
		 toml_kind_name(v), s->goname, f->goname, f->gotype);
	if (v->type == TOML_ARRAY)
		return plain_fail(c, v, path, msg);
	return decode_fail(c, v, path, "%s", msg);
}

static void warn_unknown(struct load_ctx *c, const char *path)
{
	for (size_t i = 0; i < c->n_warned; i++) {
		if (!strcmp(c->warned[i], path))
			return;
	}
	log_msg(LOG_WARN, "unknown configuration key %s", path);
	if (c->n_warned < MAX_WARNED) {
		char *dup = strdup(path);
		if (dup)
			c->warned[c->n_warned++] = dup;
	}
}

static int oom(struct load_ctx *c)
{
	return error_set(c->err, STATUS_INTERNAL, "out of memory");
}

static int set_string(char **dst, const struct toml_value *v)
{
	char *s = malloc(v->u.string.len + 1);
	if (!s)
		return -1;
	memcpy(s, v->u.string.ptr, v->u.string.len);
	s[v->u.string.len] = 0;
	free(*dst);
	*dst = s;
	return 0;
}

static int walk_table(struct load_ctx *c, const struct cschema *s, char *base,
		      const struct toml_value *t, const char *prefix);

static int set_field(struct load_ctx *c, const struct cschema *s, const struct cfield *f,
		     char *base, const struct toml_value *v, const char *path)
{
	void *p = base + f->off;

	switch (f->kind) {
	case CF_STR:
		if (v->type != TOML_STRING)
			return mismatch(c, s, f, v, path);
		return set_string((char **)p, v) < 0 ? oom(c) : 0;
	case CF_BOOL:
		if (v->type != TOML_BOOL)
			return mismatch(c, s, f, v, path);
		*(int *)p = v->u.boolean != 0;
		return 0;
	case CF_INT:
		if (v->type != TOML_INTEGER)
			return mismatch(c, s, f, v, path);
		*(int64_t *)p = v->u.integer;
		return 0;
	case CF_UINT:
	case CF_UINT32:
		if (v->type != TOML_INTEGER)
			return mismatch(c, s, f, v, path);
		if (v->u.integer < 0 || (f->kind == CF_UINT32 && v->u.integer > (int64_t)UINT32_MAX)) {
			char msg[128];
			snprintf(msg, sizeof(msg), "toml: negative number %lld does not fit in an %s",
				 (long long)v->u.integer, f->gotype);
			return plain_fail(c, v, path, msg);
		}
		if (f->kind == CF_UINT32) {
			*(unsigned *)p = (unsigned)v->u.integer;
		} else {
			*(uint64_t *)p = (uint64_t)v->u.integer;
		}
		return 0;
	case CF_FLOAT:
		if (v->type == TOML_FLOAT)
			*(double *)p = v->u.floating;
		else if (v->type == TOML_INTEGER)
			*(double *)p = (double)v->u.integer;
		else
			return mismatch(c, s, f, v, path);
		return 0;
	case CF_DUR: {
		struct error derr = ERROR_INIT;
		int64_t ms;
		if (v->type == TOML_INTEGER) {
			/* Durations are int64 nanoseconds to go-toml. */
			*(int64_t *)p = v->u.integer / 1000000;
			return 0;
		}
		if (v->type != TOML_STRING)
			return mismatch(c, s, f, v, path);
		if (config_parse_duration(v->u.string.ptr, &ms, &derr) < 0) {
			decode_fail(c, v, path, "toml: %s", derr.message ? derr.message : "invalid duration");
			error_release(&derr);
			return -1;
		}
		*(int64_t *)p = ms;
		return 0;
	}
	case CF_STRARR: {
		char ***arr = (char ***)p;
		size_t *n = (size_t *)(base + f->n_off);
		char **tmp;
		if (v->type != TOML_ARRAY)
			return mismatch(c, s, f, v, path);
		for (size_t i = 0; i < v->u.array.len; i++) {
			if (v->u.array.items[i]->type != TOML_STRING)
				return mismatch(c, s, f, v->u.array.items[i], path);
		}
		tmp = calloc(v->u.array.len + 1, sizeof(*tmp));
		if (!tmp)
			return oom(c);
		for (size_t i = 0; i < v->u.array.len; i++) {
			if (set_string(&tmp[i], v->u.array.items[i]) < 0) {
				size_t k = i;
				config_free_strarr(&tmp, &k);
				return oom(c);
			}
		}
		config_free_strarr(arr, n);
		*arr = tmp;
		*n = v->u.array.len;
		return 0;
	}
	case CF_FLOATARR: {
		double **arr = (double **)p;
		size_t *n = (size_t *)(base + f->n_off);
		double *tmp;
		if (v->type != TOML_ARRAY)
			return mismatch(c, s, f, v, path);
		tmp = calloc(v->u.array.len + 1, sizeof(*tmp));
		if (!tmp)
			return oom(c);
		for (size_t i = 0; i < v->u.array.len; i++) {
			const struct toml_value *e = v->u.array.items[i];
			if (e->type == TOML_FLOAT) {
				tmp[i] = e->u.floating;
			} else if (e->type == TOML_INTEGER) {
				tmp[i] = (double)e->u.integer;
			} else {
				free(tmp);
				return mismatch(c, s, f, e, path);
			}
		}
		free(*arr);
		*arr = tmp;
		*n = v->u.array.len;
		return 0;
	}
	case CF_TABLE:
		if (v->type != TOML_TABLE)
			return mismatch(c, s, f, v, path);
		return walk_table(c, f->sub, base, v, path);
	case CF_TABARR: {
		char **arr = (char **)p;
		size_t *n = (size_t *)(base + f->n_off);
		size_t es = f->sub->elem_size, len;
		char *tmp;
		if (v->type == TOML_TABLE) {
			/* go-toml decodes a plain [table] on a slice into its last
			 * element, appending one to an empty slice. */
			if (*n == 0) {
				tmp = calloc(2, es);
				if (!tmp)
					return oom(c);
				free(*arr);
				*arr = tmp;
				*n = 1;
			}
			return walk_table(c, f->sub, *arr + (*n - 1) * es, v, path);
		}
		if (v->type != TOML_ARRAY)
			return mismatch(c, s, f, v, path);
		len = v->u.array.len;
		for (size_t i = 0; i < len; i++) {
			if (v->u.array.items[i]->type != TOML_TABLE)
				return mismatch(c, s, f, v->u.array.items[i], path);
		}
		tmp = calloc(len + 1, es);
		if (!tmp)
			return oom(c);
		/* Swap in first so a failure below is released with the config. */
		for (size_t j = 0; j < *n; j++)
			config_release_elem(f->sub, *arr + j * es);
		free(*arr);
		*arr = tmp;
		*n = len;
		for (size_t i = 0; i < len; i++) {
			if (walk_table(c, f->sub, tmp + i * es, v->u.array.items[i], path) < 0)
				return -1;
		}
		return 0;
	}
	}
	return 0;
}

static int walk_table(struct load_ctx *c, const struct cschema *s, char *base,
		      const struct toml_value *t, const char *prefix)
{
	for (size_t i = 0; i < t->u.table.len; i++) {
		const struct toml_keyval *kv = &t->u.table.items[i];
		const struct cfield *f = NULL;
		struct strbuf path = STRBUF_INIT;
		int r;

		for (size_t j = 0; j < s->n; j++) {
			if (s->fields[j].toml && strlen(s->fields[j].toml) == kv->key_len &&
			    !memcmp(s->fields[j].toml, kv->key, kv->key_len)) {
				f = &s->fields[j];
				break;
			}
		}
		if (prefix && *prefix) {
			strbuf_adds(&path, prefix);
			strbuf_addch(&path, '.');
		}
		strbuf_add(&path, kv->key, kv->key_len);
		if (!f) {
			warn_unknown(c, path.buf ? path.buf : "");
			strbuf_release(&path);
			continue;
		}
		r = set_field(c, s, f, base, kv->value, path.buf ? path.buf : "");
		strbuf_release(&path);
		if (r < 0)
			return -1;
	}
	return 0;
}

int config_load_toml(struct config *cfg, const char *toml, size_t len,
		     struct config_decode_error *derr, struct error *err)
{
	struct toml_value *doc = NULL;
	struct toml_error terr;
	struct load_ctx c;
	int ret = -1;

	memset(&c, 0, sizeof(c));
	c.derr = derr;
	c.err = err;
	memset(&terr, 0, sizeof(terr));
	if (toml_parse(toml, len, &doc, &terr) < 0) {
		derr->set = 1;
		derr->line = terr.line;
		derr->column = terr.column;
		snprintf(derr->message, sizeof(derr->message), "toml: %s", terr.message);
		error_set(err, STATUS_INVALID_ARGUMENT, "load toml: line %d column %d: toml: %s",
			  terr.line, terr.column, terr.message);
		goto out;
	}
	if (walk_table(&c, &config_schema_root, (char *)cfg, doc, "") < 0)
		goto out;
	ret = 0;
out:
	for (size_t i = 0; i < c.n_warned; i++)
		free(c.warned[i]);
	toml_free(doc);
	return ret;
}
