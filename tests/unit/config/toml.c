/*
 * Tests for src/config/toml.c: the toml-test conformance corpus (read at run
 * time from ../shared/testdata/toml-test, or $TOML_TEST_DIR), where every
 * valid document must decode to its tagged JSON and every invalid one must be
 * refused with a position, plus targeted cases for limits, ranges, the
 * redefinition rules and error positions.
 */
#include <dirent.h>
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include <cmocka.h>
#include <jansson.h>

#include "base/strbuf.h"
#include "config/toml.h"

#define CORPUS_DEFAULT "../shared/testdata/toml-test/tests"

static const char *corpus_dir(void)
{
	const char *d = getenv("TOML_TEST_DIR");

	return d && *d ? d : CORPUS_DEFAULT;
}

static int read_file(const char *path, char **out, size_t *len)
{
	FILE *f = fopen(path, "rb");
	struct strbuf sb = STRBUF_INIT;
	char buf[8192];
	size_t n;
	int ret = -1;

	if (!f)
		return -1;
	while ((n = fread(buf, 1, sizeof(buf), f)) > 0)
		if (strbuf_add(&sb, buf, n) < 0)
			goto out;
	if (ferror(f))
		goto out;
	if (strbuf_grow(&sb, 0) < 0)
		goto out;
	*out = strbuf_detach(&sb, len);
	ret = 0;
out:
	strbuf_release(&sb);
	fclose(f);
	return ret;
}

/* ---- comparing with toml-test's tagged JSON ------------------------------- */

static const char *type_tag(enum toml_type t)
{
	switch (t) {
	case TOML_STRING: return "string";
	case TOML_INTEGER: return "integer";
	case TOML_FLOAT: return "float";
	case TOML_BOOL: return "bool";
	case TOML_DATETIME: return "datetime";
	case TOML_DATETIME_LOCAL: return "datetime-local";
	case TOML_DATE_LOCAL: return "date-local";
	case TOML_TIME_LOCAL: return "time-local";
	default: return "?";
	}
}

/* Canonical date/time text for comparison: upper-case T and Z, a space
 * separator read as T, trailing zeros of the fraction dropped. */
static void canon_datetime(const char *in, char *out, size_t cap)
{
	size_t i, n = 0, dot = (size_t)-1, frac_end = 0;

	for (i = 0; in[i] && n + 1 < cap; i++) {
		char c = in[i];

		if (c == 't' || (c == ' ' && i == 10))
			c = 'T';
		if (c == 'z')
			c = 'Z';
		out[n++] = c;
	}
	out[n] = '\0';
	for (i = 0; i < n; i++)
		if (out[i] == '.')
			dot = i;
	if (dot == (size_t)-1)
		return;
	frac_end = dot + 1;
	while (frac_end < n && out[frac_end] >= '0' && out[frac_end] <= '9')
		frac_end++;
	i = frac_end;
	while (i > dot + 1 && out[i - 1] == '0')
		i--;
	if (i == dot + 1)
		i = dot;
	memmove(out + i, out + frac_end, n - frac_end + 1);
}

static int float_matches(double got, const char *want)
{
	char *end;
	double w = strtod(want, &end);

	if (*end != '\0')
		return 0;
	if (isnan(w))
		return isnan(got);
	return got == w;
}

/* Appends a description of the first difference to why; returns 1 on match. */
static int compare(const struct toml_value *v, json_t *j, const char *path, struct strbuf *why)
{
	size_t i;

	if (v->type == TOML_TABLE) {
		if (!json_is_object(j) || json_object_size(j) != v->u.table.len) {
			strbuf_addf(why, "%s: table of %zu keys vs JSON %s", path, v->u.table.len,
				    json_is_object(j) ? "object of another size" : "non-object");
			return 0;
		}
		for (i = 0; i < v->u.table.len; i++) {
			const struct toml_keyval *kv = &v->u.table.items[i];
			json_t *sub = json_object_getn(j, kv->key, kv->key_len);
			char sub_path[512];

			snprintf(sub_path, sizeof(sub_path), "%s.%s", path, kv->key);
			if (!sub) {
				strbuf_addf(why, "%s: key missing from JSON", sub_path);
				return 0;
			}
			if (!compare(kv->value, sub, sub_path, why))
				return 0;
		}
		return 1;
	}
	if (v->type == TOML_ARRAY) {
		if (!json_is_array(j) || json_array_size(j) != v->u.array.len) {
			strbuf_addf(why, "%s: array of %zu vs JSON %s", path, v->u.array.len,
				    json_is_array(j) ? "array of another size" : "non-array");
			return 0;
		}
		for (i = 0; i < v->u.array.len; i++) {
			char sub_path[512];

			snprintf(sub_path, sizeof(sub_path), "%s[%zu]", path, i);
			if (!compare(v->u.array.items[i], json_array_get(j, i), sub_path, why))
				return 0;
		}
		return 1;
	}

	json_t *jt = json_object_get(j, "type"), *jv = json_object_get(j, "value");
	const char *want;
	int ok = 0;

	if (!json_is_object(j) || json_object_size(j) != 2 || !json_is_string(jt) || !json_is_string(jv)) {
		strbuf_addf(why, "%s: scalar vs JSON that is not a tagged value", path);
		return 0;
	}
	if (strcmp(json_string_value(jt), type_tag(v->type)) != 0) {
		strbuf_addf(why, "%s: type %s, want %s", path, type_tag(v->type), json_string_value(jt));
		return 0;
	}
	want = json_string_value(jv);
	switch (v->type) {
	case TOML_STRING:
		ok = json_string_length(jv) == v->u.string.len &&
		     memcmp(want, v->u.string.ptr, v->u.string.len) == 0 && v->u.string.ptr[v->u.string.len] == '\0';
		if (!ok)
			strbuf_addf(why, "%s: string \"%s\", want \"%s\"", path, v->u.string.ptr, want);
		break;
	case TOML_INTEGER: {
		char *end;
		long long w = strtoll(want, &end, 10);

		ok = *end == '\0' && w == v->u.integer;
		if (!ok)
			strbuf_addf(why, "%s: integer %lld, want %s", path, (long long)v->u.integer, want);
		break;
	}
	case TOML_FLOAT:
		ok = float_matches(v->u.floating, want);
		if (!ok)
			strbuf_addf(why, "%s: float %.17g, want %s", path, v->u.floating, want);
		break;
	case TOML_BOOL:
		ok = strcmp(want, v->u.boolean ? "true" : "false") == 0;
		if (!ok)
			strbuf_addf(why, "%s: bool %d, want %s", path, v->u.boolean, want);
		break;
	default: {
		char a[128], b[128];

		canon_datetime(v->u.datetime, a, sizeof(a));
		canon_datetime(want, b, sizeof(b));
		ok = strcmp(a, b) == 0;
		if (!ok)
			strbuf_addf(why, "%s: %s, want %s", path, v->u.datetime, want);
		break;
	}
	}
	return ok;
}

/* ---- walking the corpus --------------------------------------------------- */

struct corpus_run {
	int checked;
	int failed;
	struct strbuf failures;
};

static void check_valid(struct corpus_run *r, const char *toml_path, const char *json_path)
{
	struct toml_value *doc = NULL;
	struct toml_error err;
	struct strbuf why = STRBUF_INIT;
	json_error_t jerr;
	json_t *want = NULL;
	char *text = NULL;
	size_t len;

	r->checked++;
	if (read_file(toml_path, &text, &len) < 0) {
		strbuf_addf(&why, "cannot read");
		goto out;
	}
	want = json_load_file(json_path, JSON_ALLOW_NUL, &jerr);
	if (!want) {
		strbuf_addf(&why, "cannot load %s: %s", json_path, jerr.text);
		goto out;
	}
	if (toml_parse(text, len, &doc, &err) < 0) {
		strbuf_addf(&why, "rejected at %d:%d: %s", err.line, err.column, err.message);
		goto out;
	}
	compare(doc, want, "$", &why);
out:
	if (why.len) {
		r->failed++;
		strbuf_addf(&r->failures, "  %s: %s\n", toml_path, why.buf);
	}
	strbuf_release(&why);
	toml_free(doc);
	json_decref(want);
	free(text);
}

static void check_invalid(struct corpus_run *r, const char *toml_path)
{
	struct toml_value *doc = NULL;
	struct toml_error err;
	char *text = NULL;
	size_t len;

	r->checked++;
	if (read_file(toml_path, &text, &len) < 0) {
		r->failed++;
		strbuf_addf(&r->failures, "  %s: cannot read\n", toml_path);
		return;
	}
	if (toml_parse(text, len, &doc, &err) == 0) {
		r->failed++;
		strbuf_addf(&r->failures, "  %s: accepted\n", toml_path);
		toml_free(doc);
	} else if (doc || err.line < 1 || err.column < 1 || err.message[0] == '\0') {
		r->failed++;
		strbuf_addf(&r->failures, "  %s: rejected without a position or message\n", toml_path);
	}
	free(text);
}

static int ends_with(const char *s, const char *suffix)
{
	size_t n = strlen(s), m = strlen(suffix);

	return n >= m && strcmp(s + n - m, suffix) == 0;
}

static void walk(struct corpus_run *r, const char *dir, int valid)
{
	struct dirent **names = NULL;
	int n, i;

	n = scandir(dir, &names, NULL, alphasort);
	if (n < 0) {
		r->failed++;
		strbuf_addf(&r->failures, "  %s: cannot list directory\n", dir);
		return;
	}
	for (i = 0; i < n; i++) {
		const char *name = names[i]->d_name;
		char path[4096];
		struct stat st;

		if (name[0] == '.')
			goto next;
		snprintf(path, sizeof(path), "%s/%s", dir, name);
		if (stat(path, &st) < 0)
			goto next;
		if (S_ISDIR(st.st_mode)) {
			walk(r, path, valid);
		} else if (ends_with(name, ".toml")) {
			if (valid) {
				char json_path[4096];

				snprintf(json_path, sizeof(json_path), "%.*s.json", (int)(strlen(path) - 5), path);
				check_valid(r, path, json_path);
			} else {
				check_invalid(r, path);
			}
		}
next:
		free(names[i]);
	}
	free(names);
}

static void run_corpus(const char *sub, int valid, int min_cases)
{
	struct corpus_run r = { 0, 0, STRBUF_INIT };
	char dir[4096];

	snprintf(dir, sizeof(dir), "%s/%s", corpus_dir(), sub);
	walk(&r, dir, valid);
	printf("toml-test %s: %d checked, %d passed, %d failed\n", sub, r.checked, r.checked - r.failed,
	       r.failed);
	if (r.failed)
		printf("non-conforming %s cases:\n%s", sub, r.failures.buf);
	fflush(stdout);
	strbuf_release(&r.failures);
	assert_int_equal(r.failed, 0);
	assert_true(r.checked >= min_cases);
}

static void test_corpus_valid(void **state)
{
	(void)state;
	run_corpus("valid", 1, 90);
}

static void test_corpus_invalid(void **state)
{
	(void)state;
	run_corpus("invalid", 0, 180);
}

/* The corpus also ships one pair named multiline-toml / multiline-json. */
static void test_corpus_multiline_pair(void **state)
{
	struct corpus_run r = { 0, 0, STRBUF_INIT };
	char t[4096], j[4096];

	(void)state;
	snprintf(t, sizeof(t), "%s/valid/string/multiline-toml", corpus_dir());
	snprintf(j, sizeof(j), "%s/valid/string/multiline-json", corpus_dir());
	check_valid(&r, t, j);
	if (r.failed)
		printf("%s", r.failures.buf);
	strbuf_release(&r.failures);
	assert_int_equal(r.failed, 0);
}

/* ---- targeted cases ------------------------------------------------------- */

static struct toml_value *parse_ok(const char *text)
{
	struct toml_value *doc = NULL;
	struct toml_error err;

	if (toml_parse(text, strlen(text), &doc, &err) < 0)
		fail_msg("unexpected error at %d:%d: %s\nin: %s", err.line, err.column, err.message, text);
	return doc;
}

static void expect_error(const char *text, int line, int column)
{
	struct toml_value *doc = NULL;
	struct toml_error err;

	if (toml_parse(text, strlen(text), &doc, &err) == 0) {
		toml_free(doc);
		fail_msg("accepted: %s", text);
	}
	assert_null(doc);
	assert_true(err.message[0] != '\0');
	if (line) {
		if (err.line != line || err.column != column)
			fail_msg("error at %d:%d (%s), want %d:%d\nin: %s", err.line, err.column, err.message, line,
				 column, text);
	}
}

static void test_integers(void **state)
{
	struct toml_value *doc;

	(void)state;
	doc = parse_ok("max = 9223372036854775807\nmin = -9223372036854775808\n"
		       "hex = 0x7fff_ffff_ffff_ffff\nbin = 0b1010\noct = 0o777\nz = -0\n");
	assert_int_equal(toml_table_get(doc, "max")->u.integer, INT64_MAX);
	assert_true(toml_table_get(doc, "min")->u.integer == INT64_MIN);
	assert_int_equal(toml_table_get(doc, "hex")->u.integer, INT64_MAX);
	assert_int_equal(toml_table_get(doc, "bin")->u.integer, 10);
	assert_int_equal(toml_table_get(doc, "oct")->u.integer, 511);
	assert_int_equal(toml_table_get(doc, "z")->u.integer, 0);
	toml_free(doc);

	expect_error("a = 9223372036854775808", 1, 5);
	expect_error("a = -9223372036854775809", 1, 5);
	expect_error("a = 0x8000000000000000", 1, 5);
	expect_error("a = 0xffffffffffffffffff", 1, 5);
	expect_error("a = 1__0", 1, 5);
	expect_error("a = 1e400", 1, 5);
}

static void test_floats(void **state)
{
	struct toml_value *doc;

	(void)state;
	doc = parse_ok("a = -0.0\nb = 1_000.5e-1_0\nc = -nan\nd = -inf\n");
	assert_true(toml_table_get(doc, "a")->u.floating == 0.0);
	assert_true(signbit(toml_table_get(doc, "a")->u.floating));
	assert_true(toml_table_get(doc, "b")->u.floating == 1000.5e-10);
	assert_true(isnan(toml_table_get(doc, "c")->u.floating));
	assert_true(isinf(toml_table_get(doc, "d")->u.floating) && toml_table_get(doc, "d")->u.floating < 0);
	toml_free(doc);
}

static void test_datetimes(void **state)
{
	static const char *const bad[] = {
		"d = 2023-02-29", "d = 1900-02-29", "d = 2024-13-01", "d = 2024-00-01",
		"d = 2024-04-31", "d = 24:00:00",   "d = 23:60:00",   "d = 23:59:61",
		"d = 2024-01-01T00:00:00+24:00",    "d = 2024-01-01T00:00:00+01:60",
		"d = 2024-01-01T00:00:00.Z",        "d = 2024-01-01T00:00:00+0100",
		"d = 12:00:00Z",
	};
	struct toml_value *doc;
	size_t i;

	(void)state;
	doc = parse_ok("a = 2024-02-29\nb = 2000-02-29 23:59:60.5-01:30\nc = 1979-05-27t07:32:00z\n"
		       "d = 00:00:00.123456789\ne = 1979-05-27T07:32:00\n");
	assert_int_equal(toml_table_get(doc, "a")->type, TOML_DATE_LOCAL);
	assert_string_equal(toml_table_get(doc, "a")->u.datetime, "2024-02-29");
	assert_int_equal(toml_table_get(doc, "b")->type, TOML_DATETIME);
	assert_string_equal(toml_table_get(doc, "b")->u.datetime, "2000-02-29T23:59:60.5-01:30");
	assert_string_equal(toml_table_get(doc, "c")->u.datetime, "1979-05-27T07:32:00Z");
	assert_int_equal(toml_table_get(doc, "d")->type, TOML_TIME_LOCAL);
	assert_string_equal(toml_table_get(doc, "d")->u.datetime, "00:00:00.123456789");
	assert_int_equal(toml_table_get(doc, "e")->type, TOML_DATETIME_LOCAL);
	toml_free(doc);
	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		expect_error(bad[i], 0, 0);
	/* a date followed by a space and a comment is a plain local date */
	toml_free(parse_ok("d = 2024-01-01 # c"));
}

static void test_strings(void **state)
{
	struct toml_value *doc, *v;

	(void)state;
	doc = parse_ok("a = \"x\\u0000y\\U0001F600\"\r\n"
		       "b = \"\"\"\r\nline1\r\nline2 \\\r\n   \t  end\"\"\"\"\"\n"
		       "c = '''\n'quoted' \\n'''\n"
		       "'lit.key' = \"\"\n");
	v = toml_table_get(doc, "a");
	assert_int_equal(v->u.string.len, 7);
	assert_memory_equal(v->u.string.ptr, "x\0y\xf0\x9f\x98\x80", 7);
	assert_string_equal(toml_table_get(doc, "b")->u.string.ptr, "line1\nline2 end\"\"");
	assert_string_equal(toml_table_get(doc, "c")->u.string.ptr, "'quoted' \\n");
	assert_non_null(toml_table_get(doc, "lit.key"));
	toml_free(doc);

	expect_error("a = \"\\uD800\"", 1, 6);
	expect_error("a = \"\\x41\"", 1, 6);
	expect_error("a = \"\"\"ab\"\"\"\"\"\"", 0, 0);
	expect_error("a = \"tab\tok\x01\"", 1, 12);
	expect_error("a = 'x\x7f'", 1, 7);
	expect_error("a = \"\"\"x\ry\"\"\"", 1, 9);
	expect_error("a = \"\xc3\x28\"", 1, 6);
	expect_error("a = \"\xed\xa0\x80\"", 1, 6); /* encoded surrogate */
	expect_error("a = \"\xe0\x80\xaf\"", 1, 6); /* overlong */
	expect_error("# \xf4\x90\x80\x80\n", 1, 3); /* beyond U+10FFFF */
}

static void test_tables_and_redefinitions(void **state)
{
	static const char *const bad[] = {
		"[a]\n[a]\n",
		"a = {}\n[a]\n",
		"a = {b = 1}\na.c = 2\n",
		"a = {b = {c = 1}}\n[a.b.d]\n",
		"x = {a.b = 1}\n[x.a]\n",
		"a = []\n[[a]]\n",
		"[[a]]\n[a]\n",
		"[a]\n[[a]]\n",
		"[a.b.c]\n[a]\nb.c.d = 1\n",
		"[a.b.c]\n[a]\nb.x = 1\n",
		"a.b = 1\n[a]\n",
		"[t]\na.b = 1\n[t.a]\n",
		"a = 1\na.b = 2\n",
		"a = 1\n[a.b]\n",
		"a = {x = 1, x = 2}\n",
		"a = {x = 1,}\n",
		"a = [1,,2]\n",
		"a = [,]\n",
		"\"\"\"k\"\"\" = 1\n",
		"a = 1 b = 2\n",
		"a = true false\n",
	};
	struct toml_value *doc, *fruit, *v;
	size_t i;

	(void)state;
	doc = parse_ok("[a.b.c]\nx = 1\n[a]\ny = 2\n"
		       "[fruit]\napple.color = 'red'\napple.taste.sweet = true\n[fruit.apple.texture]\nsmooth = true\n"
		       "[[arr]]\nn = 1\n[arr.sub]\nk = 1\n[[arr]]\nn = 2\n[[arr.inner]]\n[[arr.inner]]\n"
		       "[x.y]\n[x]\nz = {a.b = 1, a.c = 2}\n");
	assert_int_equal(toml_table_get(toml_table_get(doc, "a"), "y")->u.integer, 2);
	fruit = toml_table_get(doc, "fruit");
	v = toml_table_get(toml_table_get(fruit, "apple"), "texture");
	assert_non_null(toml_table_get(v, "smooth"));
	v = toml_table_get(doc, "arr");
	assert_int_equal(v->type, TOML_ARRAY);
	assert_int_equal(v->u.array.len, 2);
	assert_non_null(toml_table_get(v->u.array.items[0], "sub"));
	assert_int_equal(toml_table_get(v->u.array.items[1], "inner")->u.array.len, 2);
	v = toml_table_get(toml_table_get(toml_table_get(doc, "x"), "z"), "a");
	assert_int_equal(v->u.table.len, 2);
	/* definition order is kept */
	assert_string_equal(doc->u.table.items[0].key, "a");
	assert_string_equal(doc->u.table.items[1].key, "fruit");
	toml_free(doc);

	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		expect_error(bad[i], 0, 0);
}

/* Cases from the TOML 1.0 spec and newer toml-test releases that the stored
 * corpus does not cover. */
static void test_spec_edge_cases(void **state)
{
	static const char *const good[] = {
		"[[parent.arr]]\n[[parent.arr]]\n[parent]\nnot-arr = 1\n",
		"[fruit]\napple.color = 'red'\n[[fruit.apple.seeds]]\nsize = 2\n",
		"x.z = 1\n[[x.y]]\n",
		"[[a]]\n[a.b]\n[[a]]\n[a.b]\n",
		"[[a]]\n[[a.b]]\n[a.b.c]\nd = 1\n",
		"''.x = 1\nx.\"\" = 2\n[a]\n\"\".'' = 3\n",
		"2001-02-08 = 7\n3.14 = 'pi'\ntrue = false\ninf = nan\n",
		"a = [\n  1, # one\n  {b = 2},\n  [3],\n]\n",
		"[ a . \"b\" . c ]\n",
		"s = ''''one quote''''\nt = \"\"\"\"\"\"\"\"\n",
		"d1 = 0001-01-01 00:00:00Z\nd2 = 9999-12-31T23:59:59.999999999\n",
		"f = 9_223_372_036_854_775_807.0\ng = 1e-400\n",
		"h = 0xDEAD_beef\no = 0o0\nb = 0b0\ni = +0\n",
		"\xef\xbb\xbf" "a = 1\n",
		"arr = [{a.b = 1}]\n[tbl]\na.b.c = {d.e = 1}\n",
	};
	static const char *const bad[] = {
		"[[tab.arr]]\n[tab]\narr.val1 = 1\n",
		"[product]\ntype = { name = 'Nail' }\ntype.edible = false\n",
		"[fruit]\napple.color = 'red'\n[fruit.apple]\n",
		"[fruit]\napple.taste.sweet = true\n[fruit.apple.taste]\n",
		"tbl = { fruit = { apple.color = 'red' }, fruit.apple.texture = { smooth = true } }\n",
		"tbl = { a.b = 'a_b', a.b.c = 'a_b_c' }\n",
		"a.b = 0\na = {}\n",
		"[a.b]\n[a]\n[a]\n",
		".key = 1\n",
		"key. = 1\n",
		"a..b = 1\n",
		"= 1\n",
		"a b = 1\n",
		"d = 10000-01-01\n",
		"d = 2023-10-01T1:32:00Z\n",
		"t = 12:00:00.\n",
		"t = 12:00\n",
		"i = 0x_1\n",
		"i = 0b\n",
		"i = 0b2\n",
		"i = 0o8\n",
		"f = infinity\n",
		"f = nan1\n",
		"s = \"\\e\"\n",
		"s = \"\\x41\"\n",
		"t = {\na = 1}\n",
		"t = {a = 1\n}\n",
		"s = \"\"\"a\rb\"\"\"\n",
		"s = '''a\rb'''\n",
		"# a\rb\n",
		"[a] b = 1\n",
		"a = 1\xef\xbb\xbf\n",
		"a = \"\xff\"\n",
		"[a]\n[a.b]\n[a]\n",
	};
	size_t i;

	(void)state;
	for (i = 0; i < sizeof(good) / sizeof(good[0]); i++)
		toml_free(parse_ok(good[i]));
	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		expect_error(bad[i], 0, 0);
}

static void test_error_positions(void **state)
{
	(void)state;
	expect_error("a = 1\nb = 2\n[a]\n", 3, 2);
	expect_error("a = 1\n\n  b = @\n", 3, 7);
	expect_error("# é\nk = \"é\" x\n", 2, 9);
	expect_error("a = [\n  1,\n  2\n", 4, 1);
	expect_error("a = 1\r\nb = 1\r", 2, 6);
	expect_error("[a]\nx = 1\nx = 2\n", 3, 1);
}

static void test_value_positions(void **state)
{
	struct toml_value *doc;

	(void)state;
	doc = parse_ok("a = 1\n[t]\n  s = \"x\"\n");
	assert_int_equal(toml_table_get(doc, "a")->line, 1);
	assert_int_equal(toml_table_get(doc, "a")->column, 5);
	assert_int_equal(toml_table_get(doc, "t")->line, 2);
	assert_int_equal(toml_table_get(toml_table_get(doc, "t"), "s")->line, 3);
	assert_int_equal(toml_table_get(toml_table_get(doc, "t"), "s")->column, 7);
	assert_null(toml_table_get(doc, "missing"));
	assert_null(toml_table_get(toml_table_get(doc, "a"), "x"));
	toml_free(doc);
}

static void test_limits(void **state)
{
	struct strbuf sb = STRBUF_INIT;
	struct toml_value *doc = NULL;
	struct toml_error err;
	size_t big = ((size_t)64 << 20) + 1;
	char *huge;
	int i;

	(void)state;
	/* nesting within the cap parses, beyond it fails cleanly */
	strbuf_adds(&sb, "a = ");
	for (i = 0; i < 100; i++)
		strbuf_addch(&sb, '[');
	for (i = 0; i < 100; i++)
		strbuf_addch(&sb, ']');
	toml_free(parse_ok(sb.buf));
	strbuf_reset(&sb);
	strbuf_adds(&sb, "a = ");
	for (i = 0; i < 100000; i++)
		strbuf_adds(&sb, "{b=[");
	/* the '{' at depth 129 is the 65th, at column 5 + 4 * 64 */
	expect_error(sb.buf, 1, 261);
	strbuf_reset(&sb);
	for (i = 0; i < 200; i++)
		strbuf_adds(&sb, i ? ".k" : "[k");
	strbuf_adds(&sb, "]\n");
	expect_error(sb.buf, 0, 0);
	strbuf_release(&sb);

	huge = malloc(big);
	assert_non_null(huge);
	memset(huge, '\n', big);
	assert_int_equal(toml_parse(huge, big, &doc, &err), -1);
	assert_null(doc);
	assert_non_null(strstr(err.message, "larger"));
	assert_int_equal(toml_parse(huge, big - 1, &doc, &err), 0);
	assert_int_equal(doc->u.table.len, 0);
	toml_free(doc);
	free(huge);

	/* embedded NUL byte outside strings is rejected */
	assert_int_equal(toml_parse("a = 1\0", 6, &doc, &err), -1);
	assert_int_equal(err.line, 1);
}

static void test_many_keys(void **state)
{
	struct strbuf sb = STRBUF_INIT;
	struct toml_value *doc;
	char key[32];
	int i;

	(void)state;
	for (i = 0; i < 5000; i++)
		strbuf_addf(&sb, "k%d = %d\n", i, i);
	doc = parse_ok(sb.buf);
	assert_int_equal(doc->u.table.len, 5000);
	for (i = 0; i < 5000; i++) {
		snprintf(key, sizeof(key), "k%d", i);
		assert_int_equal(toml_table_get(doc, key)->u.integer, i);
	}
	toml_free(doc);
	strbuf_addf(&sb, "k4321 = 1\n");
	expect_error(sb.buf, 5001, 1);
	strbuf_release(&sb);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_corpus_valid),
		cmocka_unit_test(test_corpus_invalid),
		cmocka_unit_test(test_corpus_multiline_pair),
		cmocka_unit_test(test_integers),
		cmocka_unit_test(test_floats),
		cmocka_unit_test(test_datetimes),
		cmocka_unit_test(test_strings),
		cmocka_unit_test(test_tables_and_redefinitions),
		cmocka_unit_test(test_spec_edge_cases),
		cmocka_unit_test(test_error_positions),
		cmocka_unit_test(test_value_positions),
		cmocka_unit_test(test_limits),
		cmocka_unit_test(test_many_keys),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
