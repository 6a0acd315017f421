/*
 * TOML 1.0 document parser: walks the input line by line, resolves table
 * headers, dotted keys and arrays of tables into one tree, and enforces the
 * redefinition rules (a table is defined once; dotted keys may only extend
 * tables they created; inline tables and static arrays are sealed). Scalars
 * are scanned by toml_scalar.c. Input is capped at 64 MiB and nesting at
 * TOML_MAX_DEPTH; any failure frees the partial tree.
 */
#include "config/toml.h"

#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "config/toml_internal.h"

/* Bits of toml_value.flags. The nesting depth lives above DEPTH_SHIFT. */
#define F_IMPLICIT 0x01u /* table created as a prefix of a [header] */
#define F_EXPLICIT 0x02u /* table defined by its own [header] */
#define F_DOTTED 0x04u   /* table created by a dotted key */
#define F_INLINE 0x08u   /* sealed: an inline table or a table inside one */
#define F_AOT 0x10u      /* array created by [[header]] */
#define DEPTH_SHIFT 16
#define DEPTH_OF(v) ((int)((v)->flags >> DEPTH_SHIFT))

/* Tables with at least this many keys get a hash index. */
#define INDEX_MIN 16

struct toml_index {
	size_t mask;
	size_t slots[]; /* item position + 1, 0 when free */
};

struct key_part {
	char *s;
	size_t len;
	size_t pos;
};

struct key_path {
	struct key_part *parts;
	size_t len;
	size_t alloc;
};

/* ---- positions and errors ------------------------------------------------- */

void toml_linecol(struct toml_parser *p, size_t pos, int *line, int *col)
{
	size_t i;

	if (pos > p->len)
		pos = p->len;
	if (pos < p->lc_pos) {
		p->lc_pos = 0;
		p->lc_line = 1;
		p->lc_col = 1;
	}
	for (i = p->lc_pos; i < pos; i++) {
		unsigned char c = (unsigned char)p->text[i];

		if (c == '\n') {
			p->lc_line++;
			p->lc_col = 1;
		} else if ((c & 0xc0) != 0x80) {
			p->lc_col++;
		}
	}
	p->lc_pos = pos;
	*line = p->lc_line;
	*col = p->lc_col;
}

int toml_fail(struct toml_parser *p, size_t pos, const char *fmt, ...)
{
	va_list ap;

	if (p->failed)
		return -1;
	p->failed = 1;
	toml_linecol(p, pos, &p->err->line, &p->err->column);
	va_start(ap, fmt);
	vsnprintf(p->err->message, sizeof(p->err->message), fmt, ap);
	va_end(ap);
	return -1;
}

static int oom(struct toml_parser *p)
{
	return toml_fail(p, p->pos, "out of memory");
}

/* ---- tree ----------------------------------------------------------------- */

static struct toml_value *value_new(struct toml_parser *p, enum toml_type type, size_t pos, int depth)
{
	struct toml_value *v = calloc(1, sizeof(*v));

	if (!v) {
		oom(p);
		return NULL;
	}
	v->type = type;
	v->flags = (unsigned)depth << DEPTH_SHIFT;
	toml_linecol(p, pos, &v->line, &v->column);
	return v;
}

void toml_free(struct toml_value *v)
{
	size_t i;

	if (!v)
		return;
	switch (v->type) {
	case TOML_TABLE:
		for (i = 0; i < v->u.table.len; i++) {
			free(v->u.table.items[i].key);
			toml_free(v->u.table.items[i].value);
		}
		free(v->u.table.items);
		free(v->u.table.index);
		break;
	case TOML_ARRAY:
		for (i = 0; i < v->u.array.len; i++)
			toml_free(v->u.array.items[i]);
		free(v->u.array.items);
		break;
	case TOML_STRING:
		free(v->u.string.ptr);
		break;
	case TOML_DATETIME:
	case TOML_DATETIME_LOCAL:
	case TOML_DATE_LOCAL:
	case TOML_TIME_LOCAL:
		free(v->u.datetime);
		break;
	default:
		break;
	}
	free(v);
}

/* Arrays grow in powers of two, so the capacity follows from the length. */
static int grow_pow2(void **items, size_t len, size_t size)
{
	size_t cap;
	void *n;

	if (len != 0 && (len < 4 || (len & (len - 1)) != 0))
		return 0;
	cap = len ? len * 2 : 4;
	if (cap > SIZE_MAX / size)
		return -1;
	n = realloc(*items, cap * size);
	if (!n)
		return -1;
	*items = n;
	return 0;
}

static size_t key_hash(const char *key, size_t len)
{
	uint64_t h = 0xcbf29ce484222325ull;
	size_t i;

	for (i = 0; i < len; i++) {
		h ^= (unsigned char)key[i];
		h *= 0x100000001b3ull;
	}
	return (size_t)h;
}

static void index_put(struct toml_index *ix, const struct toml_keyval *items, size_t at)
{
	size_t s = key_hash(items[at].key, items[at].key_len) & ix->mask;

	while (ix->slots[s])
		s = (s + 1) & ix->mask;
	ix->slots[s] = at + 1;
}

static int index_rebuild(struct toml_value *t)
{
	size_t cap = 64, i;
	struct toml_index *ix;

	while (cap < t->u.table.len * 4)
		cap *= 2;
	ix = calloc(1, sizeof(*ix) + cap * sizeof(size_t));
	if (!ix)
		return -1;
	ix->mask = cap - 1;
	for (i = 0; i < t->u.table.len; i++)
		index_put(ix, t->u.table.items, i);
	free(t->u.table.index);
	t->u.table.index = ix;
	return 0;
}

static struct toml_value *table_find(const struct toml_value *t, const char *key, size_t len)
{
	const struct toml_keyval *items = t->u.table.items;
	const struct toml_index *ix = t->u.table.index;
	size_t i;

	if (ix) {
		for (i = key_hash(key, len) & ix->mask; ix->slots[i]; i = (i + 1) & ix->mask) {
			const struct toml_keyval *kv = &items[ix->slots[i] - 1];

			if (kv->key_len == len && memcmp(kv->key, key, len) == 0)
				return kv->value;
		}
		return NULL;
	}
	for (i = 0; i < t->u.table.len; i++)
		if (items[i].key_len == len && memcmp(items[i].key, key, len) == 0)
			return items[i].value;
	return NULL;
}

/*
 * Adds key -> v to table t. On success t owns both the key (a malloc'd,
 * NUL-terminated string) and v; on failure the caller keeps them.
 */
static int table_add(struct toml_parser *p, struct toml_value *t, char *key, size_t len, struct toml_value *v)
{
	struct toml_keyval *kv;
	struct toml_index *ix = t->u.table.index;

	if (grow_pow2((void **)&t->u.table.items, t->u.table.len, sizeof(*kv)) < 0)
		return oom(p);
	kv = &t->u.table.items[t->u.table.len++];
	kv->key = key;
	kv->key_len = len;
	kv->value = v;
	if (t->u.table.len >= INDEX_MIN) {
		if (!ix || t->u.table.len * 2 > ix->mask + 1) {
			if (index_rebuild(t) < 0) {
				t->u.table.len--;
				return oom(p);
			}
		} else {
			index_put(ix, t->u.table.items, t->u.table.len - 1);
		}
	}
	return 0;
}

/* table_add with the key taken from a parsed key part. */
static int table_add_part(struct toml_parser *p, struct toml_value *t, struct key_part *kp, struct toml_value *v)
{
	if (table_add(p, t, kp->s, kp->len, v) < 0)
		return -1;
	kp->s = NULL;
	return 0;
}

static int array_add(struct toml_parser *p, struct toml_value *a, struct toml_value *v)
{
	if (grow_pow2((void **)&a->u.array.items, a->u.array.len, sizeof(*a->u.array.items)) < 0)
		return oom(p);
	a->u.array.items[a->u.array.len++] = v;
	return 0;
}

struct toml_value *toml_table_get(const struct toml_value *t, const char *key)
{
	if (!t || t->type != TOML_TABLE || !key)
		return NULL;
	return table_find(t, key, strlen(key));
}

/* ---- lexical helpers ------------------------------------------------------ */

/* Checks the whole input is UTF-8 without overlongs or surrogates. */
static int validate_utf8(struct toml_parser *p)
{
	const unsigned char *s = (const unsigned char *)p->text;
	size_t i = 0, n = p->len;

	while (i < n) {
		unsigned c = s[i];
		size_t need, k;
		uint32_t cp;

		if (c < 0x80) {
			i++;
			continue;
		}
		if (c >= 0xc2 && c <= 0xdf) {
			need = 1;
			cp = c & 0x1f;
		} else if (c >= 0xe0 && c <= 0xef) {
			need = 2;
			cp = c & 0x0f;
		} else if (c >= 0xf0 && c <= 0xf4) {
			need = 3;
			cp = c & 0x07;
		} else {
			return toml_fail(p, i, "invalid UTF-8");
		}
		if (n - i <= need)
			return toml_fail(p, i, "invalid UTF-8");
		for (k = 1; k <= need; k++) {
			if ((s[i + k] & 0xc0) != 0x80)
				return toml_fail(p, i, "invalid UTF-8");
			cp = cp << 6 | (s[i + k] & 0x3f);
		}
		if ((need == 2 && cp < 0x800) || (need == 3 && (cp < 0x10000 || cp > 0x10ffff)) ||
		    (cp >= 0xd800 && cp <= 0xdfff))
			return toml_fail(p, i, "invalid UTF-8");
		i += need + 1;
	}
	return 0;
}

static void skip_ws(struct toml_parser *p)
{
	while (toml_peek(p, 0) == ' ' || toml_peek(p, 0) == '\t')
		p->pos++;
}

/* A comment at p->pos (the '#'), up to but excluding the newline. */
static int skip_comment(struct toml_parser *p)
{
	p->pos++;
	while (p->pos < p->len) {
		unsigned char c = (unsigned char)p->text[p->pos];

		if (c == '\n' || (c == '\r' && toml_peek(p, 1) == '\n'))
			break;
		if ((c < 0x20 && c != '\t') || c == 0x7f)
			return toml_fail(p, p->pos, "control character U+%04X in a comment", c);
		p->pos++;
	}
	return 0;
}

/* Newline at p->pos: 1 when consumed, 0 if none, -1 for a bare CR. */
static int take_newline(struct toml_parser *p)
{
	int c = toml_peek(p, 0);

	if (c == '\n') {
		p->pos++;
		return 1;
	}
	if (c == '\r') {
		if (toml_peek(p, 1) != '\n')
			return toml_fail(p, p->pos, "carriage return not followed by a newline");
		p->pos += 2;
		return 1;
	}
	return 0;
}

/* Whitespace, newlines and comments (inside arrays). */
static int skip_ws_nl_comments(struct toml_parser *p)
{
	for (;;) {
		int r;

		skip_ws(p);
		if (toml_peek(p, 0) == '#') {
			if (skip_comment(p) < 0)
				return -1;
			continue;
		}
		r = take_newline(p);
		if (r < 0)
			return -1;
		if (!r)
			return 0;
	}
}

/* After a key/value pair or header: only a comment may follow on the line. */
static int expect_eol(struct toml_parser *p, const char *what)
{
	int r;

	skip_ws(p);
	if (toml_peek(p, 0) == '#' && skip_comment(p) < 0)
		return -1;
	if (toml_eof(p))
		return 0;
	r = take_newline(p);
	if (r < 0)
		return -1;
	if (!r)
		return toml_fail(p, p->pos, "expected a newline after %s", what);
	return 0;
}

/* ---- keys ----------------------------------------------------------------- */

static int is_bare_key_char(int c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
	       c == '_' || c == '-';
}

static void key_path_release(struct key_path *k)
{
	size_t i;

	for (i = 0; i < k->len; i++)
		free(k->parts[i].s);
	free(k->parts);
	k->parts = NULL;
	k->len = k->alloc = 0;
}

static int parse_key(struct toml_parser *p, struct key_path *k)
{
	for (;;) {
		struct key_part part;
		int c = toml_peek(p, 0);

		part.pos = p->pos;
		strbuf_reset(&p->scratch);
		if (c == '"' || c == '\'') {
			if (toml_scan_string(p, &p->scratch, 1) < 0)
				return -1;
		} else if (is_bare_key_char(c)) {
			size_t start = p->pos;

			while (is_bare_key_char(toml_peek(p, 0)))
				p->pos++;
			if (strbuf_add(&p->scratch, p->text + start, p->pos - start) < 0)
				return oom(p);
		} else {
			return toml_fail(p, p->pos, "expected a key");
		}
		if (k->len >= TOML_MAX_DEPTH)
			return toml_fail(p, part.pos, "too many parts in a dotted key");
		if (k->len == k->alloc) {
			size_t alloc = k->alloc ? k->alloc * 2 : 4;
			struct key_part *n = realloc(k->parts, alloc * sizeof(*n));

			if (!n)
				return oom(p);
			k->parts = n;
			k->alloc = alloc;
		}
		part.s = toml_scratch_copy(p, &part.len);
		if (!part.s)
			return oom(p);
		k->parts[k->len++] = part;
		skip_ws(p);
		if (toml_peek(p, 0) != '.')
			return 0;
		p->pos++;
		skip_ws(p);
	}
}

static int check_depth(struct toml_parser *p, size_t pos, int depth)
{
	if (depth > TOML_MAX_DEPTH)
		return toml_fail(p, pos, "nesting deeper than %d levels", TOML_MAX_DEPTH);
	return 0;
}

/*
 * Walks the dotted prefix of k (all parts but the last) from t for a key/value
 * pair, creating tables as needed, and returns the table that receives the
 * last part.
 */
static struct toml_value *resolve_dotted(struct toml_parser *p, struct toml_value *t, struct key_path *k)
{
	size_t i;

	for (i = 0; i + 1 < k->len; i++) {
		struct key_part *kp = &k->parts[i];
		struct toml_value *v = table_find(t, kp->s, kp->len);

		if (!v) {
			if (check_depth(p, kp->pos, DEPTH_OF(t) + 1) < 0)
				return NULL;
			v = value_new(p, TOML_TABLE, kp->pos, DEPTH_OF(t) + 1);
			if (!v)
				return NULL;
			v->flags |= F_DOTTED;
			if (table_add_part(p, t, kp, v) < 0) {
				toml_free(v);
				return NULL;
			}
		} else if (v->type != TOML_TABLE) {
			toml_fail(p, kp->pos, "key '%.*s' is already defined and is not a table", (int)kp->len, kp->s);
			return NULL;
		} else if (v->flags & F_INLINE) {
			toml_fail(p, kp->pos, "cannot add keys to inline table '%.*s'", (int)kp->len, kp->s);
			return NULL;
		} else if (!(v->flags & F_DOTTED)) {
			toml_fail(p, kp->pos, "cannot add keys to table '%.*s' with dotted keys: it is defined elsewhere",
				  (int)kp->len, kp->s);
			return NULL;
		}
		t = v;
	}
	return t;
}

/* ---- values --------------------------------------------------------------- */

static int parse_value(struct toml_parser *p, int depth, struct toml_value **out);
static int parse_keyval(struct toml_parser *p, struct toml_value *t);

/* Seals an inline table and the tables its dotted keys created. */
static void seal(struct toml_value *t)
{
	size_t i;

	t->flags |= F_INLINE;
	for (i = 0; i < t->u.table.len; i++) {
		struct toml_value *v = t->u.table.items[i].value;

		if (v->type == TOML_TABLE && !(v->flags & F_INLINE))
			seal(v);
	}
}

static int parse_array(struct toml_parser *p, struct toml_value *a)
{
	p->pos++; /* '[' */
	for (;;) {
		struct toml_value *v = NULL;

		if (skip_ws_nl_comments(p) < 0)
			return -1;
		if (toml_peek(p, 0) == ']') {
			p->pos++;
			return 0;
		}
		if (parse_value(p, DEPTH_OF(a) + 1, &v) < 0)
			return -1;
		if (array_add(p, a, v) < 0) {
			toml_free(v);
			return -1;
		}
		if (skip_ws_nl_comments(p) < 0)
			return -1;
		if (toml_peek(p, 0) == ',') {
			p->pos++;
		} else if (toml_peek(p, 0) == ']') {
			p->pos++;
			return 0;
		} else if (toml_eof(p)) {
			return toml_fail(p, p->pos, "unterminated array");
		} else {
			return toml_fail(p, p->pos, "expected ',' or ']' in an array");
		}
	}
}

static int parse_inline_table(struct toml_parser *p, struct toml_value *t)
{
	p->pos++; /* '{' */
	skip_ws(p);
	if (toml_peek(p, 0) == '}') {
		p->pos++;
		goto done;
	}
	for (;;) {
		skip_ws(p);
		if (parse_keyval(p, t) < 0)
			return -1;
		skip_ws(p);
		if (toml_peek(p, 0) == ',') {
			p->pos++;
		} else if (toml_peek(p, 0) == '}') {
			p->pos++;
			break;
		} else if (toml_eof(p) || toml_peek(p, 0) == '\n' || toml_peek(p, 0) == '\r') {
			return toml_fail(p, p->pos, "unterminated inline table (newlines are not allowed in one)");
		} else {
			return toml_fail(p, p->pos, "expected ',' or '}' in an inline table");
		}
	}
done:
	seal(t);
	return 0;
}

static int match_word(struct toml_parser *p, const char *w)
{
	size_t n = strlen(w);

	return p->len - p->pos >= n && memcmp(p->text + p->pos, w, n) == 0;
}

static int parse_value(struct toml_parser *p, int depth, struct toml_value **out)
{
	struct toml_value *v = NULL;
	size_t start = p->pos;
	int c = toml_peek(p, 0), ret = -1;

	if (check_depth(p, start, depth) < 0)
		goto out;
	v = value_new(p, TOML_BOOL, start, depth);
	if (!v)
		goto out;
	if (c == '"' || c == '\'') {
		strbuf_reset(&p->scratch);
		if (toml_scan_string(p, &p->scratch, 0) < 0)
			goto out;
		v->u.string.ptr = toml_scratch_copy(p, &v->u.string.len);
		if (!v->u.string.ptr) {
			oom(p);
			goto out;
		}
		v->type = TOML_STRING;
	} else if (c == '[') {
		v->type = TOML_ARRAY;
		if (parse_array(p, v) < 0)
			goto out;
	} else if (c == '{') {
		v->type = TOML_TABLE;
		if (parse_inline_table(p, v) < 0)
			goto out;
	} else if (c == 't' && match_word(p, "true")) {
		v->u.boolean = 1;
		p->pos += 4;
	} else if (c == 'f' && match_word(p, "false")) {
		v->u.boolean = 0;
		p->pos += 5;
	} else if ((c >= '0' && c <= '9') || c == '+' || c == '-' || c == 'i' || c == 'n') {
		if (toml_scan_number_or_datetime(p, v) < 0)
			goto out;
	} else if (c < 0) {
		toml_fail(p, start, "expected a value");
		goto out;
	} else {
		toml_fail(p, start, "invalid value");
		goto out;
	}
	*out = v;
	v = NULL;
	ret = 0;
out:
	toml_free(v);
	return ret;
}

/* key = value, added to table t (the current table or an inline table). */
static int parse_keyval(struct toml_parser *p, struct toml_value *t)
{
	struct key_path k = { NULL, 0, 0 };
	struct toml_value *target, *v = NULL;
	struct key_part *last;
	int ret = -1;

	if (parse_key(p, &k) < 0)
		goto out;
	if (toml_peek(p, 0) != '=') {
		toml_fail(p, p->pos, "expected '=' after a key");
		goto out;
	}
	p->pos++;
	skip_ws(p);
	target = resolve_dotted(p, t, &k);
	if (!target)
		goto out;
	last = &k.parts[k.len - 1];
	if (table_find(target, last->s, last->len)) {
		toml_fail(p, last->pos, "duplicate key '%.*s'", (int)last->len, last->s);
		goto out;
	}
	if (parse_value(p, DEPTH_OF(target) + 1, &v) < 0)
		goto out;
	if (table_add_part(p, target, last, v) < 0)
		goto out;
	v = NULL;
	ret = 0;
out:
	toml_free(v);
	key_path_release(&k);
	return ret;
}

/* ---- headers -------------------------------------------------------------- */

/* [a.b.c] or [[a.b.c]] at p->pos; on success *cur is the table to fill. */
static int parse_header(struct toml_parser *p, struct toml_value *root, struct toml_value **cur)
{
	struct key_path k = { NULL, 0, 0 };
	struct toml_value *t = root, *v, *nt = NULL;
	struct key_part *last;
	size_t start = p->pos, i;
	int aot = toml_peek(p, 1) == '[', ret = -1;

	p->pos += aot ? 2 : 1;
	skip_ws(p);
	if (parse_key(p, &k) < 0)
		goto out;
	if (toml_peek(p, 0) != ']' || (aot && toml_peek(p, 1) != ']')) {
		toml_fail(p, p->pos, aot ? "expected ']]' to close an array of tables header"
					: "expected ']' to close a table header");
		goto out;
	}
	p->pos += aot ? 2 : 1;

	for (i = 0; i + 1 < k.len; i++) {
		struct key_part *kp = &k.parts[i];

		v = table_find(t, kp->s, kp->len);
		if (!v) {
			if (check_depth(p, kp->pos, DEPTH_OF(t) + 1) < 0)
				goto out;
			v = value_new(p, TOML_TABLE, kp->pos, DEPTH_OF(t) + 1);
			if (!v)
				goto out;
			v->flags |= F_IMPLICIT;
			if (table_add_part(p, t, kp, v) < 0) {
				toml_free(v);
				goto out;
			}
		}
		if (v->type == TOML_ARRAY && (v->flags & F_AOT)) {
			v = v->u.array.items[v->u.array.len - 1];
		} else if (v->type != TOML_TABLE) {
			toml_fail(p, kp->pos, "key '%.*s' is already defined and is not a table", (int)kp->len, kp->s);
			goto out;
		} else if (v->flags & F_INLINE) {
			toml_fail(p, kp->pos, "cannot extend inline table '%.*s'", (int)kp->len, kp->s);
			goto out;
		}
		t = v;
	}

	last = &k.parts[k.len - 1];
	v = table_find(t, last->s, last->len);
	if (check_depth(p, last->pos, DEPTH_OF(t) + (aot ? 2 : 1)) < 0)
		goto out;
	if (!aot) {
		if (!v) {
			v = value_new(p, TOML_TABLE, start, DEPTH_OF(t) + 1);
			if (!v)
				goto out;
			v->flags |= F_EXPLICIT;
			if (table_add_part(p, t, last, v) < 0) {
				toml_free(v);
				goto out;
			}
		} else if (v->type == TOML_TABLE && (v->flags & F_IMPLICIT) && !(v->flags & F_INLINE)) {
			v->flags = (v->flags & ~F_IMPLICIT) | F_EXPLICIT;
			toml_linecol(p, start, &v->line, &v->column);
		} else {
			toml_fail(p, last->pos, "'%.*s' is already defined", (int)last->len, last->s);
			goto out;
		}
		*cur = v;
		ret = 0;
		goto out;
	}

	if (!v) {
		v = value_new(p, TOML_ARRAY, start, DEPTH_OF(t) + 1);
		if (!v)
			goto out;
		v->flags |= F_AOT;
		if (table_add_part(p, t, last, v) < 0) {
			toml_free(v);
			goto out;
		}
	} else if (v->type != TOML_ARRAY || !(v->flags & F_AOT)) {
		toml_fail(p, last->pos, "'%.*s' is already defined and is not an array of tables", (int)last->len,
			  last->s);
		goto out;
	}
	nt = value_new(p, TOML_TABLE, start, DEPTH_OF(v) + 1);
	if (!nt)
		goto out;
	nt->flags |= F_EXPLICIT;
	if (array_add(p, v, nt) < 0)
		goto out;
	*cur = nt;
	nt = NULL;
	ret = 0;
out:
	toml_free(nt);
	key_path_release(&k);
	return ret;
}

/* ---- document ------------------------------------------------------------- */

static int parse_document(struct toml_parser *p, struct toml_value *root)
{
	struct toml_value *cur = root;

	/* A byte order mark is tolerated at the very start only. */
	if (p->len >= 3 && memcmp(p->text, "\xef\xbb\xbf", 3) == 0)
		p->pos = 3;
	for (;;) {
		int c, r;

		skip_ws(p);
		if (toml_eof(p))
			return 0;
		c = toml_peek(p, 0);
		if (c == '#') {
			if (skip_comment(p) < 0)
				return -1;
			continue;
		}
		r = take_newline(p);
		if (r < 0)
			return -1;
		if (r)
			continue;
		if (c == '[') {
			if (parse_header(p, root, &cur) < 0 || expect_eol(p, "a table header") < 0)
				return -1;
		} else {
			if (parse_keyval(p, cur) < 0 || expect_eol(p, "a key/value pair") < 0)
				return -1;
		}
	}
}

int toml_parse(const char *text, size_t len, struct toml_value **out, struct toml_error *err)
{
	struct toml_error scratch;
	struct toml_parser p;
	struct toml_value *root = NULL;
	int ret = -1;

	if (!err)
		err = &scratch;
	memset(err, 0, sizeof(*err));
	memset(&p, 0, sizeof(p));
	p.text = text ? text : "";
	p.len = text ? len : 0;
	p.lc_line = 1;
	p.lc_col = 1;
	p.err = err;

	if (len > TOML_MAX_INPUT) {
		p.len = 0;
		toml_fail(&p, 0, "input larger than %zu bytes", TOML_MAX_INPUT);
		goto out;
	}
	if (validate_utf8(&p) < 0)
		goto out;
	root = value_new(&p, TOML_TABLE, 0, 0);
	if (!root)
		goto out;
	root->flags |= F_EXPLICIT;
	if (parse_document(&p, root) < 0)
		goto out;
	*out = root;
	root = NULL;
	ret = 0;
out:
	toml_free(root);
	strbuf_release(&p.scratch);
	return ret;
}
