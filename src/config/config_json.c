/*
 * Merges config_command's JSON output over the TOML-loaded config the way
 * Go's encoding/json decodes into an existing struct: present keys override,
 * nested objects merge field by field, arrays replace (elements of arrays of
 * tables reuse the previous element at the same index, as Go reuses slice
 * storage), null clears arrays and is ignored elsewhere, key matching is
 * case-insensitive and unknown keys are ignored. Key names come from the
 * schema's json column (upstream's json tags or Go field names).
 */
#include <jansson.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "config/config_internal.h"

#define JSON_CAP ((size_t)16 << 20)

struct json_ctx {
	struct error *err;
	struct strbuf stack; /* Go's field stack, "git.bin_path" */
};

static const char *json_kind(const json_t *v)
{
	switch (json_typeof(v)) {
	case JSON_OBJECT: return "object";
	case JSON_ARRAY: return "array";
	case JSON_STRING: return "string";
	case JSON_INTEGER:
	case JSON_REAL: return "number";
	case JSON_TRUE:
	case JSON_FALSE: return "bool";
	default: return "null";
	}
}

static int type_error(struct json_ctx *c, const struct cschema *s, const char *value,
		      const char *gotype)
{
	const char *dot = strrchr(s->goname, '.');

	return error_set(c->err, STATUS_INVALID_ARGUMENT,
			 "unmarshalling generated config: json: cannot unmarshal %s into Go struct field %s.%s of type %s",
			 value, dot ? dot + 1 : s->goname, c->stack.buf ? c->stack.buf : "", gotype);
}

static int mismatch(struct json_ctx *c, const struct cschema *s, const struct cfield *f, const json_t *v)
{
	return type_error(c, s, json_kind(v), f->gotype);
}

static int bad_number(struct json_ctx *c, const struct cschema *s, const struct cfield *f, const json_t *v)
{
	char val[64];

	if (json_is_integer(v))
		snprintf(val, sizeof(val), "number %lld", (long long)json_integer_value(v));
	else
		snprintf(val, sizeof(val), "number %g", json_real_value(v));
	return type_error(c, s, val, f->gotype);
}

static int oom(struct json_ctx *c)
{
	return error_set(c->err, STATUS_INTERNAL, "out of memory");
}

static int merge_object(struct json_ctx *c, const struct cschema *s, char *base, json_t *obj);

static int set_field(struct json_ctx *c, const struct cschema *s, const struct cfield *f, char *base,
		     json_t *v)
{
	void *p = base + f->off;

	if (json_is_null(v)) {
		/* Go clears slices on null and leaves everything else alone. */
		if (f->kind == CF_STRARR) {
			config_free_strarr((char ***)p, (size_t *)(base + f->n_off));
		} else if (f->kind == CF_FLOATARR) {
			free(*(double **)p);
			*(double **)p = NULL;
			*(size_t *)(base + f->n_off) = 0;
		} else if (f->kind == CF_TABARR) {
			char **arr = (char **)p;
			size_t *n = (size_t *)(base + f->n_off);
			for (size_t j = 0; j < *n; j++)
				config_release_elem(f->sub, *arr + j * f->sub->elem_size);
			free(*arr);
			*arr = NULL;
			*n = 0;
		}
		return 0;
	}
	switch (f->kind) {
	case CF_STR: {
		char *dup;
		if (!json_is_string(v))
			return mismatch(c, s, f, v);
		dup = malloc(json_string_length(v) + 1);
		if (!dup)
			return oom(c);
		memcpy(dup, json_string_value(v), json_string_length(v));
		dup[json_string_length(v)] = 0;
		free(*(char **)p);
		*(char **)p = dup;
		return 0;
	}
	case CF_BOOL:
		if (!json_is_boolean(v))
			return mismatch(c, s, f, v);
		*(int *)p = json_is_true(v);
		return 0;
	case CF_INT:
		if (json_is_real(v))
			return bad_number(c, s, f, v);
		if (!json_is_integer(v))
			return mismatch(c, s, f, v);
		*(int64_t *)p = json_integer_value(v);
		return 0;
	case CF_UINT:
	case CF_UINT32:
		if (json_is_real(v) || (json_is_integer(v) && json_integer_value(v) < 0))
			return bad_number(c, s, f, v);
		if (!json_is_integer(v))
			return mismatch(c, s, f, v);
		if (f->kind == CF_UINT32) {
			if (json_integer_value(v) > (json_int_t)UINT32_MAX)
				return bad_number(c, s, f, v);
			*(unsigned *)p = (unsigned)json_integer_value(v);
		} else {
			*(uint64_t *)p = (uint64_t)json_integer_value(v);
		}
		return 0;
	case CF_FLOAT:
		if (!json_is_number(v))
			return mismatch(c, s, f, v);
		*(double *)p = json_number_value(v);
		return 0;
	case CF_DUR: {
		struct error derr = ERROR_INIT;
		int64_t ms;
		if (!json_is_string(v))
			return mismatch(c, s, f, v);
		if (config_parse_duration(json_string_value(v), &ms, &derr) < 0) {
			error_set(c->err, STATUS_INVALID_ARGUMENT, "unmarshalling generated config: %s",
				  derr.message);
			error_release(&derr);
			return -1;
		}
		*(int64_t *)p = ms;
		return 0;
	}
	case CF_STRARR: {
		size_t n = json_array_size(v);
		char **tmp;
		if (!json_is_array(v))
			return mismatch(c, s, f, v);
		for (size_t i = 0; i < n; i++) {
			json_t *e = json_array_get(v, i);
			if (!json_is_string(e) && !json_is_null(e))
				return type_error(c, s, json_kind(e), "string");
		}
		tmp = calloc(n + 1, sizeof(*tmp));
		if (!tmp)
			return oom(c);
		for (size_t i = 0; i < n; i++) {
			json_t *e = json_array_get(v, i);
			tmp[i] = strdup(json_is_string(e) ? json_string_value(e) : "");
			if (!tmp[i]) {
				size_t k = i;
				config_free_strarr(&tmp, &k);
				return oom(c);
			}
		}
		config_free_strarr((char ***)p, (size_t *)(base + f->n_off));
		*(char ***)p = tmp;
		*(size_t *)(base + f->n_off) = n;
		return 0;
	}
	case CF_FLOATARR: {
		size_t n = json_array_size(v);
		double *tmp;
		if (!json_is_array(v))
			return mismatch(c, s, f, v);
		tmp = calloc(n + 1, sizeof(*tmp));
		if (!tmp)
			return oom(c);
		for (size_t i = 0; i < n; i++) {
			json_t *e = json_array_get(v, i);
			if (!json_is_number(e) && !json_is_null(e)) {
				free(tmp);
				return type_error(c, s, json_kind(e), "float64");
			}
			tmp[i] = json_is_number(e) ? json_number_value(e) : 0;
		}
		free(*(double **)p);
		*(double **)p = tmp;
		*(size_t *)(base + f->n_off) = n;
		return 0;
	}
	case CF_TABLE:
		if (!json_is_object(v))
			return mismatch(c, s, f, v);
		return merge_object(c, f->sub, base, v);
	case CF_TABARR: {
		char **arr = (char **)p;
		size_t *n = (size_t *)(base + f->n_off);
		size_t es = f->sub->elem_size, len = json_array_size(v);
		char *tmp;
		if (!json_is_array(v))
			return mismatch(c, s, f, v);
		tmp = calloc(len + 1, es);
		if (!tmp)
			return oom(c);
		/* Keep old elements at the same index, like Go's slice reuse. */
		for (size_t j = 0; j < *n; j++) {
			if (j < len)
				memcpy(tmp + j * es, *arr + j * es, es);
			else
				config_release_elem(f->sub, *arr + j * es);
		}
		free(*arr);
		*arr = tmp;
		*n = len;
		for (size_t i = 0; i < len; i++) {
			json_t *e = json_array_get(v, i);
			if (json_is_null(e))
				continue;
			if (!json_is_object(e))
				return type_error(c, s, json_kind(e), f->gotype + 2);
			if (merge_object(c, f->sub, tmp + i * es, e) < 0)
				return -1;
		}
		return 0;
	}
	}
	return 0;
}

static int merge_object(struct json_ctx *c, const struct cschema *s, char *base, json_t *obj)
{
	const char *key;
	json_t *v;

	json_object_foreach(obj, key, v) {
		const struct cfield *f = NULL;
		size_t saved = c->stack.len;
		int r;

		/* Go prefers an exact match, then falls back to case folding. */
		for (size_t i = 0; i < s->n && !f; i++) {
			if (s->fields[i].json && !strcmp(s->fields[i].json, key))
				f = &s->fields[i];
		}
		for (size_t i = 0; i < s->n && !f; i++) {
			if (s->fields[i].json && !strcasecmp(s->fields[i].json, key))
				f = &s->fields[i];
		}
		if (!f)
			continue;
		if (c->stack.len)
			strbuf_addch(&c->stack, '.');
		strbuf_adds(&c->stack, f->json);
		r = set_field(c, s, f, base, v);
		c->stack.len = saved;
		if (c->stack.buf)
			c->stack.buf[saved] = 0;
		if (r < 0)
			return -1;
	}
	return 0;
}

int config_merge_json(struct config *cfg, const char *text, size_t len, struct error *err)
{
	struct json_ctx c = { err, STRBUF_INIT };
	json_error_t jerr;
	json_t *root = NULL;
	int ret = -1;

	if (len > JSON_CAP) {
		error_set(err, STATUS_INVALID_ARGUMENT, "unmarshalling generated config: output too large");
		goto out;
	}
	root = json_loadb(text ? text : "", len, JSON_DECODE_ANY | JSON_ALLOW_NUL, &jerr);
	if (!root) {
		if (len == 0 || jerr.position >= (int)len)
			error_set(err, STATUS_INVALID_ARGUMENT,
				  "unmarshalling generated config: unexpected end of JSON input");
		else
			error_set(err, STATUS_INVALID_ARGUMENT, "unmarshalling generated config: %s",
				  jerr.text);
		goto out;
	}
	if (json_is_null(root)) {
		ret = 0;
		goto out;
	}
	if (!json_is_object(root)) {
		error_set(err, STATUS_INVALID_ARGUMENT,
			  "unmarshalling generated config: json: cannot unmarshal %s into Go value of type config.Cfg",
			  json_kind(root));
		goto out;
	}
	strbuf_init(&c.stack, 4096);
	ret = merge_object(&c, &config_schema_root, (char *)cfg, root);
out:
	strbuf_release(&c.stack);
	json_decref(root);
	return ret;
}
