/*
 * libFuzzer target for the TOML parser (not built by make). Any input must
 * either be refused with a position and a message, or give a tree that,
 * written back as TOML (all inline), parses again to the same tree.
 *
 * Build and run, from the repository root:
 *   clang -g -O1 -fsanitize=fuzzer,address,undefined -D_GNU_SOURCE -Isrc \
 *     tests/fuzz/toml.c src/config/toml.c src/config/toml_scalar.c \
 *     src/base/strbuf.c -lm -o /tmp/fuzz-toml
 *   /tmp/fuzz-toml -dict=tests/fuzz/toml.dict \
 *     ../shared/testdata/toml-test/tests/valid
 */
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/strbuf.h"
#include "config/toml.h"

static void emit_string(struct strbuf *sb, const char *s, size_t len)
{
	size_t i;

	strbuf_addch(sb, '"');
	for (i = 0; i < len; i++) {
		unsigned char c = (unsigned char)s[i];

		if (c == '"' || c == '\\')
			strbuf_addf(sb, "\\%c", c);
		else if (c < 0x20 || c == 0x7f)
			strbuf_addf(sb, "\\u%04x", c);
		else
			strbuf_addch(sb, (char)c);
	}
	strbuf_addch(sb, '"');
}

static void emit_value(struct strbuf *sb, const struct toml_value *v)
{
	size_t i;

	switch (v->type) {
	case TOML_TABLE:
		strbuf_addch(sb, '{');
		for (i = 0; i < v->u.table.len; i++) {
			if (i)
				strbuf_addch(sb, ',');
			emit_string(sb, v->u.table.items[i].key, v->u.table.items[i].key_len);
			strbuf_addch(sb, '=');
			emit_value(sb, v->u.table.items[i].value);
		}
		strbuf_addch(sb, '}');
		break;
	case TOML_ARRAY:
		strbuf_addch(sb, '[');
		for (i = 0; i < v->u.array.len; i++) {
			if (i)
				strbuf_addch(sb, ',');
			emit_value(sb, v->u.array.items[i]);
		}
		strbuf_addch(sb, ']');
		break;
	case TOML_STRING:
		emit_string(sb, v->u.string.ptr, v->u.string.len);
		break;
	case TOML_INTEGER:
		strbuf_addf(sb, "%lld", (long long)v->u.integer);
		break;
	case TOML_FLOAT:
		if (isnan(v->u.floating))
			strbuf_adds(sb, "nan");
		else if (isinf(v->u.floating))
			strbuf_adds(sb, v->u.floating < 0 ? "-inf" : "inf");
		else
			strbuf_addf(sb, "%.17e", v->u.floating);
		break;
	case TOML_BOOL:
		strbuf_adds(sb, v->u.boolean ? "true" : "false");
		break;
	default:
		strbuf_adds(sb, v->u.datetime);
		break;
	}
}

static int same(const struct toml_value *a, const struct toml_value *b)
{
	size_t i;

	if (a->type != b->type)
		return 0;
	switch (a->type) {
	case TOML_TABLE:
		if (a->u.table.len != b->u.table.len)
			return 0;
		for (i = 0; i < a->u.table.len; i++) {
			const struct toml_keyval *x = &a->u.table.items[i], *y = &b->u.table.items[i];

			if (x->key_len != y->key_len || memcmp(x->key, y->key, x->key_len) || !same(x->value, y->value))
				return 0;
		}
		return 1;
	case TOML_ARRAY:
		if (a->u.array.len != b->u.array.len)
			return 0;
		for (i = 0; i < a->u.array.len; i++)
			if (!same(a->u.array.items[i], b->u.array.items[i]))
				return 0;
		return 1;
	case TOML_STRING:
		return a->u.string.len == b->u.string.len && !memcmp(a->u.string.ptr, b->u.string.ptr, a->u.string.len);
	case TOML_INTEGER:
		return a->u.integer == b->u.integer;
	case TOML_FLOAT:
		return (isnan(a->u.floating) && isnan(b->u.floating)) || a->u.floating == b->u.floating;
	case TOML_BOOL:
		return a->u.boolean == b->u.boolean;
	default:
		return strcmp(a->u.datetime, b->u.datetime) == 0;
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct toml_value *doc = NULL, *again = NULL;
	struct toml_error err;
	struct strbuf sb = STRBUF_INIT;
	size_t i;

	if (toml_parse((const char *)data, size, &doc, &err) < 0) {
		if (doc || err.line < 1 || err.column < 1 || !err.message[0])
			abort();
		return 0;
	}
	/* Re-emit the root's keys as top-level pairs of inline values. */
	for (i = 0; i < doc->u.table.len; i++) {
		emit_string(&sb, doc->u.table.items[i].key, doc->u.table.items[i].key_len);
		strbuf_addch(&sb, '=');
		emit_value(&sb, doc->u.table.items[i].value);
		strbuf_addch(&sb, '\n');
	}
	if (toml_parse(sb.buf ? sb.buf : "", sb.len, &again, &err) < 0) {
		fprintf(stderr, "re-parse failed at %d:%d: %s\n%s\n", err.line, err.column, err.message, sb.buf);
		abort();
	}
	if (!same(doc, again)) {
		fprintf(stderr, "round trip differs:\n%s\n", sb.buf);
		abort();
	}
	toml_free(again);
	toml_free(doc);
	strbuf_release(&sb);
	return 0;
}
