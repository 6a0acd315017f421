/*
 * `gitaly configuration validate`: read TOML from a stream, load it, run the
 * all-problems validator and print the result exactly as upstream's Go
 * encoding/json encoder does (2-space indent, HTML-safe escaping, omitted
 * empty fields). main() only has to call config_validate_command.
 */
#include <stdlib.h>
#include <string.h>

#include "base/log.h"
#include "base/strbuf.h"
#include "config/config_internal.h"

#define INPUT_CAP ((size_t)64 << 20)

/* Go's encoding/json string encoding (with its default HTML escaping). */
static int go_json_string(struct strbuf *sb, const char *s)
{
	static const char hex[] = "0123456789abcdef";
	const unsigned char *p = (const unsigned char *)s;
	size_t len = strlen(s);
	int r = strbuf_addch(sb, '"');

	for (size_t i = 0; i < len && r == 0;) {
		unsigned char c = p[i];
		if (c < 0x80) {
			if (c == '"' || c == '\\') {
				r = strbuf_addch(sb, '\\');
				r |= strbuf_addch(sb, (char)c);
			} else if (c == '\n') {
				r = strbuf_adds(sb, "\\n");
			} else if (c == '\r') {
				r = strbuf_adds(sb, "\\r");
			} else if (c == '\t') {
				r = strbuf_adds(sb, "\\t");
			} else if (c < 0x20 || c == '<' || c == '>' || c == '&') {
				char e[7] = { '\\', 'u', '0', '0', hex[c >> 4], hex[c & 15], 0 };
				r = strbuf_adds(sb, e);
			} else {
				r = strbuf_addch(sb, (char)c);
			}
			i++;
			continue;
		}
		/* Validate one UTF-8 sequence; invalid bytes become U+FFFD. */
		size_t n = (c & 0xe0) == 0xc0 ? 2 : (c & 0xf0) == 0xe0 ? 3 : (c & 0xf8) == 0xf0 ? 4 : 0;
		uint32_t cp = n == 2 ? (c & 0x1fu) : n == 3 ? (c & 0x0fu) : (c & 0x07u);
		int ok = n > 0 && i + n <= len;
		for (size_t k = 1; ok && k < n; k++) {
			if ((p[i + k] & 0xc0) != 0x80)
				ok = 0;
			else
				cp = (cp << 6) | (p[i + k] & 0x3f);
		}
		if (ok && ((n == 2 && cp < 0x80) || (n == 3 && cp < 0x800) || (n == 4 && cp < 0x10000) ||
			   cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff)))
			ok = 0;
		if (!ok) {
			r = strbuf_adds(sb, "\\ufffd");
			i++;
		} else if (cp == 0x2028 || cp == 0x2029) {
			r = strbuf_adds(sb, cp == 0x2028 ? "\\u2028" : "\\u2029");
			i += n;
		} else {
			r = strbuf_add(sb, p + i, n);
			i += n;
		}
	}
	return r ? -1 : strbuf_addch(sb, '"');
}

static int print_errors(const struct config_problem *items, size_t len, FILE *out)
{
	struct strbuf sb = STRBUF_INIT;
	int r = 0;

	if (len == 0)
		return 0;
	r |= strbuf_adds(&sb, "{\n  \"errors\": [\n");
	for (size_t i = 0; i < len; i++) {
		const struct config_problem *p = &items[i];
		int has_msg = p->message && *p->message;
		if (!p->n_key && !has_msg) {
			r |= strbuf_adds(&sb, "    {}");
		} else {
			r |= strbuf_adds(&sb, "    {\n");
			if (p->n_key) {
				r |= strbuf_adds(&sb, "      \"key\": [\n");
				for (size_t k = 0; k < p->n_key; k++) {
					r |= strbuf_adds(&sb, "        ");
					r |= go_json_string(&sb, p->key[k]);
					r |= strbuf_adds(&sb, k + 1 < p->n_key ? ",\n" : "\n");
				}
				r |= strbuf_adds(&sb, has_msg ? "      ],\n" : "      ]\n");
			}
			if (has_msg) {
				r |= strbuf_adds(&sb, "      \"message\": ");
				r |= go_json_string(&sb, p->message);
				r |= strbuf_addch(&sb, '\n');
			}
			r |= strbuf_adds(&sb, "    }");
		}
		r |= strbuf_adds(&sb, i + 1 < len ? ",\n" : "\n");
	}
	r |= strbuf_adds(&sb, "  ]\n}\n");
	if (r == 0 && fwrite(sb.buf, 1, sb.len, out) != sb.len)
		r = -1;
	if (r == 0 && fflush(out) != 0)
		r = -1;
	strbuf_release(&sb);
	return r ? -1 : 0;
}

int config_problems_print_json(const struct config_problems *p, FILE *out)
{
	return print_errors(p->items, p->len, out);
}

int config_print_decode_error_json(int line, int column, const char *msg, FILE *out)
{
	struct config_problem p = { NULL, 0, NULL };
	int r;

	if (asprintf(&p.message, "line %d column %d: %s", line, column, msg) < 0)
		return -1;
	r = print_errors(&p, 1, out);
	free(p.message);
	return r;
}

int config_validate_command(FILE *in, FILE *out)
{
	struct strbuf sb = STRBUF_INIT;
	struct config cfg;
	struct config_decode_error derr;
	struct config_problems problems = { NULL, 0 };
	struct error err = ERROR_INIT;
	char buf[65536];
	int code = 1;
	size_t n;

	/* Like upstream's ConfigureCommand: only errors, on stderr, as text. */
	log_configure(LOG_FORMAT_TEXT, LOG_ERROR, 2);
	strbuf_init(&sb, INPUT_CAP);
	while ((n = fread(buf, 1, sizeof(buf), in)) > 0) {
		if (strbuf_add(&sb, buf, n) < 0) {
			fprintf(stderr, "processing input data: input exceeds %zu bytes", INPUT_CAP);
			goto out;
		}
	}
	if (ferror(in)) {
		fprintf(stderr, "processing input data: read error");
		goto out;
	}
	if (config_load_ex(&cfg, sb.buf ? sb.buf : "", sb.len, &derr, &err) < 0) {
		if (derr.set && derr.plain) {
			fprintf(stderr, "processing input data: load toml: %s", derr.message);
		} else if (derr.set) {
			config_print_decode_error_json(derr.line, derr.column, derr.message, out);
			code = 2;
		} else {
			fprintf(stderr, "processing input data: %s", err.message ? err.message : "error");
		}
		goto out;
	}
	config_validate_all(&cfg, &problems);
	code = problems.len ? 2 : 0;
	if (problems.len && config_problems_print_json(&problems, out) < 0)
		fprintf(stderr, "writing results: write error\n");
	config_problems_release(&problems);
	config_release(&cfg);
out:
	error_release(&err);
	strbuf_release(&sb);
	return code;
}
