/*
 * Private parts of the TOML parser shared between its files: the cursor over
 * the input, error reporting, and the scalar scanners (strings, numbers, dates)
 * that toml.c calls while it builds the document tree.
 */
#ifndef CONFIG_TOML_INTERNAL_H
#define CONFIG_TOML_INTERNAL_H

#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#include "base/strbuf.h"
#include "config/toml.h"

#define TOML_MAX_INPUT ((size_t)64 << 20)
/* Deepest table/array nesting accepted (keeps recursion bounded). */
#define TOML_MAX_DEPTH 128

struct toml_parser {
	const char *text;
	size_t len;
	size_t pos;
	/* Line/column of lc_pos, so positions are converted incrementally. */
	size_t lc_pos;
	int lc_line;
	int lc_col;
	struct toml_error *err;
	int failed;
	struct strbuf scratch; /* reused while scanning keys and strings */
};

static inline int toml_eof(const struct toml_parser *p)
{
	return p->pos >= p->len;
}

/* The byte at pos+off, or -1 beyond the end. */
static inline int toml_peek(const struct toml_parser *p, size_t off)
{
	if (p->pos + off >= p->len || p->pos + off < p->pos)
		return -1;
	return (unsigned char)p->text[p->pos + off];
}

/*
 * Copies the scratch buffer's text into an exact-size allocation (NULL when
 * memory ran out). Scratch keeps its storage for the next token, so a large
 * document does not leave a half-empty buffer behind every string.
 */
static inline char *toml_scratch_copy(struct toml_parser *p, size_t *len)
{
	size_t n = p->scratch.len;
	char *s = malloc(n + 1);

	if (s) {
		if (n)
			memcpy(s, p->scratch.buf, n);
		s[n] = '\0';
		if (len)
			*len = n;
	}
	return s;
}

/* Converts a byte offset into a 1-based line and column (in characters). */
void toml_linecol(struct toml_parser *p, size_t pos, int *line, int *col);

/* Records the first error at byte offset pos; always returns -1. */
int toml_fail(struct toml_parser *p, size_t pos, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

/*
 * Scans a string starting at the opening quote at p->pos, appending its
 * decoded text to sb. key_mode refuses multi-line strings. Advances past
 * the closing quote.
 */
int toml_scan_string(struct toml_parser *p, struct strbuf *sb, int key_mode);

/*
 * Scans a number (integer, float, inf/nan) or a date/time
 * at p->pos and fills v's type and payload (uses p->scratch). Advances past it.
 */
int toml_scan_number_or_datetime(struct toml_parser *p, struct toml_value *v);

#endif
