/*
 * Parsers of git's diff output for the DiffService (see diffparse.h). The
 * CommitDiff parser follows upstream's state machine closely, because its
 * counters decide which files are collapsed, too large, or cut off by the
 * overflow marker, and clients depend on those exact decisions. Where
 * upstream matches a patch to its raw line by a loose regular expression
 * on the `diff --git` header, we compare the header with the one git
 * prints for the raw line's (still quoted) paths, which is exact for paths
 * containing " b/" as well.
 */
#include "git/diffparse.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define RD_CHUNK ((size_t)65536)
#define RAW_CAP ((size_t)256 << 20)
#define LINE_CAP ((size_t)1 << 20)

/* --- reader ------------------------------------------------------------ */

static ssize_t fd_read(void *ctx, void *buf, size_t len)
{
	struct diff_reader *r = ctx;
	ssize_t n;

	do
		n = read(r->fd, buf, len);
	while (n < 0 && errno == EINTR);
	return n;
}

static ssize_t mem_read(void *ctx, void *buf, size_t len)
{
	struct diff_reader *r = ctx;
	size_t n = r->mem_len - r->mem_off;

	if (n > len)
		n = len;
	memcpy(buf, r->mem + r->mem_off, n);
	r->mem_off += n;
	return (ssize_t)n;
}

void diff_reader_init_fd(struct diff_reader *r, int fd)
{
	memset(r, 0, sizeof(*r));
	r->fd = fd;
	r->read = fd_read;
	r->ctx = r;
}

void diff_reader_init_mem(struct diff_reader *r, const void *data, size_t len)
{
	memset(r, 0, sizeof(*r));
	r->mem = data;
	r->mem_len = len;
	r->read = mem_read;
	r->ctx = r;
}

void diff_reader_release(struct diff_reader *r)
{
	free(r->buf);
	r->buf = NULL;
	r->start = r->end = r->alloc = 0;
}

/* Reads more input: 1 when bytes arrived, 0 at the end, -1 on error. */
static int rd_fill(struct diff_reader *r)
{
	ssize_t n;

	if (r->eof)
		return 0;
	if (!r->buf) {
		r->buf = malloc(RD_CHUNK);
		if (!r->buf)
			return -1;
		r->alloc = RD_CHUNK;
	}
	if (r->start == r->end) {
		r->start = r->end = 0;
	} else if (r->end == r->alloc) {
		memmove(r->buf, r->buf + r->start, r->end - r->start);
		r->end -= r->start;
		r->start = 0;
	}
	n = r->read(r->ctx, r->buf + r->end, r->alloc - r->end);
	if (n < 0)
		return -1;
	if (n == 0) {
		r->eof = 1;
		return 0;
	}
	r->end += (size_t)n;
	return 1;
}

/* Makes up to want bytes available (fewer only at the end); returns how many. */
static int rd_peek(struct diff_reader *r, size_t want, const unsigned char **data, size_t *avail)
{
	while (r->end - r->start < want) {
		int got = rd_fill(r);

		if (got < 0)
			return -1;
		if (got == 0)
			break;
	}
	*data = r->buf ? r->buf + r->start : (const unsigned char *)"";
	*avail = r->end - r->start;
	if (*avail > want)
		*avail = want;
	return 0;
}

typedef int (*piece_fn)(void *ctx, const unsigned char *data, size_t len);

/*
 * Hands every byte up to and including the next delim to fn, in pieces.
 * Returns 1 when delim was found, 0 when the input ended first, -1 on a
 * read error or when fn failed. *total receives the byte count.
 */
static int rd_until(struct diff_reader *r, int delim, piece_fn fn, void *ctx, size_t *total)
{
	*total = 0;
	for (;;) {
		if (r->start < r->end) {
			unsigned char *p = r->buf + r->start;
			size_t n = r->end - r->start;
			unsigned char *hit = memchr(p, delim, n);
			size_t take = hit ? (size_t)(hit - p) + 1 : n;

			if (fn && fn(ctx, p, take) < 0)
				return -1;
			r->start += take;
			*total += take;
			if (hit)
				return 1;
		}
		switch (rd_fill(r)) {
		case -1:
			return -1;
		case 0:
			return 0;
		}
	}
}

static int sb_piece(void *ctx, const unsigned char *data, size_t len)
{
	return strbuf_add(ctx, data, len);
}

int diff_reader_drain(struct diff_reader *r)
{
	r->start = r->end;
	for (;;) {
		int got = rd_fill(r);

		if (got <= 0)
			return got;
		r->start = r->end;
	}
}

/* --- quoting and limits --------------------------------------------------- */

static int is_digit(unsigned char c)
{
	return c >= '0' && c <= '9';
}

int diffparse_unquote(const char *s, size_t len, struct strbuf *out)
{
	for (size_t i = 0; i < len; i++) {
		unsigned char c = (unsigned char)s[i];

		if (c == '\\') {
			if (i + 3 < len && is_digit(s[i + 1]) && is_digit(s[i + 2]) &&
			    is_digit(s[i + 3])) {
				int v = 0, ok = 1;

				for (int k = 1; k <= 3; k++) {
					if (s[i + k] > '7')
						ok = 0;
					v = v * 8 + (s[i + k] - '0');
				}
				if (ok && v <= 255) {
					if (strbuf_addch(out, (char)v) < 0)
						return -1;
					i += 3;
					continue;
				}
			}
			if (i + 1 < len) {
				char e = s[i + 1];

				switch (e) {
				case '"': case '\\': case '/': case '\'': break;
				case 'b': e = '\b'; break;
				case 'f': e = '\f'; break;
				case 'n': e = '\n'; break;
				case 'r': e = '\r'; break;
				case 't': e = '\t'; break;
				default:
					if (strbuf_addch(out, '\\') < 0)
						return -1;
				}
				if (strbuf_addch(out, e) < 0)
					return -1;
				i++;
				continue;
			}
		}
		if (strbuf_addch(out, (char)c) < 0)
			return -1;
	}
	return 0;
}

int64_t diffparse_patch_limit(int64_t max, const struct diff_ext_limit *ext, size_t n_ext,
			      const char *to_path, size_t len)
{
	const char *base, *key;
	size_t blen, klen;

	if (!n_ext)
		return max;
	/* Go's filepath.Base: trailing slashes dropped, "." for empty. */
	while (len > 1 && to_path[len - 1] == '/')
		len--;
	if (!len) {
		base = ".";
		blen = 1;
	} else {
		size_t i = len;

		while (i > 0 && to_path[i - 1] != '/')
			i--;
		base = to_path + i;
		blen = len - i;
		if (!blen) {
			base = "/";
			blen = 1;
		}
	}
	key = NULL;
	klen = 0;
	for (size_t i = blen; i > 0; i--) {
		if (base[i - 1] == '/')
			break;
		if (base[i - 1] == '.') {
			key = base + i - 1;
			klen = blen - (i - 1);
			break;
		}
	}
	if (!key) {
		key = base;
		klen = blen;
	}
	for (size_t i = 0; i < n_ext; i++)
		if (strlen(ext[i].ext) == klen && !memcmp(ext[i].ext, key, klen))
			return ext[i].limit;
	return max;
}

/* --- CommitDiff parser ------------------------------------------------------ */

struct raw_entry {
	int32_t old_mode, new_mode;
	char from_id[65], to_id[65];
	char status;
	const char *from_tok, *to_tok; /* quoted as git printed them */
	size_t from_len, to_len;
};

struct diffparse {
	struct diff_reader *r;
	struct diff_limits limits;
	struct strbuf raw; /* the raw lines, kept for the tokens */
	size_t *line_off;  /* start of each raw line in raw */
	size_t n_lines, next_line;
	struct raw_entry synth; /* the addition half of a type change */
	int have_synth;
	struct strbuf header; /* the pending "diff --git" header */
	int have_header;
	struct strbuf expect;
	struct diff_file cur;
	int64_t patch_len; /* bytes upstream would hold in the patch */
	int store_patch;
	int64_t files, lines, bytes;
	int finished, stop_collection;
};

static int64_t clamp(int64_t v, int64_t bound)
{
	return v < bound ? v : bound;
}

static int parse_mode(const char *s, size_t len, int32_t *out)
{
	int64_t v = 0;

	if (!len || len > 11)
		return -1;
	for (size_t i = 0; i < len; i++) {
		if (s[i] < '0' || s[i] > '7')
			return -1;
		v = v * 8 + (s[i] - '0');
	}
	if (v > INT32_MAX)
		return -1;
	*out = (int32_t)v;
	return 0;
}

static int is_xdigit(unsigned char c)
{
	return is_digit(c) || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F');
}

/* ":<mode> <mode> <oid> <oid> <status>\t<path>[\t<path>]" (no newline). */
static int parse_raw_line(const char *l, size_t len, struct raw_entry *e, struct error *err)
{
	const char *end = l + len, *p = l, *sp, *tab;
	size_t hexlen;

	memset(e, 0, sizeof(*e));
	if (p == end || *p != ':')
		goto mismatch;
	p++;
	for (int k = 0; k < 2; k++) {
		int32_t *mode = k ? &e->new_mode : &e->old_mode;

		sp = memchr(p, ' ', (size_t)(end - p));
		if (!sp || sp == p)
			goto mismatch;
		for (const char *q = p; q < sp; q++)
			if (!is_digit(*q))
				goto mismatch;
		if (parse_mode(p, (size_t)(sp - p), mode) < 0)
			return error_set(err, STATUS_INTERNAL, "raw %s mode: invalid syntax",
					 k ? "new" : "old");
		p = sp + 1;
	}
	sp = memchr(p, ' ', (size_t)(end - p));
	if (!sp)
		goto mismatch;
	hexlen = (size_t)(sp - p);
	if (hexlen != 40 && hexlen != 64)
		goto mismatch;
	for (int k = 0; k < 2; k++) {
		char *id = k ? e->to_id : e->from_id;

		if ((size_t)(end - p) < hexlen + 1 || p[hexlen] != ' ')
			goto mismatch;
		for (size_t i = 0; i < hexlen; i++)
			if (!is_xdigit((unsigned char)p[i]))
				goto mismatch;
		memcpy(id, p, hexlen);
		id[hexlen] = '\0';
		p += hexlen + 1;
	}
	if (p == end || !strchr("ADTUXMRC", *p) || !*p)
		goto mismatch;
	e->status = *p++;
	while (p < end && is_digit(*p))
		p++;
	if (p == end || *p != '\t')
		goto mismatch;
	p++;
	tab = memchr(p, '\t', (size_t)(end - p));
	e->from_tok = p;
	e->from_len = tab ? (size_t)(tab - p) : (size_t)(end - p);
	if ((e->status == 'R' || e->status == 'C') && tab) {
		e->to_tok = tab + 1;
		e->to_len = (size_t)(end - tab - 1);
	} else if (e->status == 'R' || e->status == 'C') {
		e->to_tok = end;
		e->to_len = 0;
	} else {
		e->to_tok = e->from_tok;
		e->to_len = e->from_len;
	}
	return 0;
mismatch:
	return error_set(err, STATUS_INTERNAL, "raw line regexp mismatch");
}

static int add_unquoted(struct strbuf *sb, const char *tok, size_t len)
{
	if (len >= 2 && tok[0] == '"' && tok[len - 1] == '"') {
		tok++;
		len -= 2;
	}
	return diffparse_unquote(tok, len, sb);
}

static void file_reset(struct diff_file *f)
{
	struct strbuf fp = f->from_path, tp = f->to_path, pa = f->patch;

	memset(f, 0, sizeof(*f));
	strbuf_reset(&fp);
	strbuf_reset(&tp);
	strbuf_reset(&pa);
	f->from_path = fp;
	f->to_path = tp;
	f->patch = pa;
}

static int read_raw_lines(struct diffparse *p, struct error *err)
{
	size_t alloc = 0;

	for (;;) {
		size_t start = p->raw.len, total = 0;
		int got = rd_until(p->r, '\n', sb_piece, &p->raw, &total);

		if (got < 0)
			return error_set(err, STATUS_INTERNAL, "reading raw diff lines failed");
		if (got == 0 || p->raw.buf[start] != ':') {
			/* The end, or the blank line before the patches. */
			p->raw.len = start;
			if (p->raw.buf)
				p->raw.buf[start] = '\0';
			return 0;
		}
		if (p->n_lines == alloc) {
			size_t *n;

			alloc = alloc ? alloc * 2 : 64;
			n = realloc(p->line_off, alloc * sizeof(*n));
			if (!n)
				return error_set(err, STATUS_INTERNAL, "out of memory");
			p->line_off = n;
		}
		p->line_off[p->n_lines++] = start;
	}
}

int diffparse_new(struct diff_reader *r, const struct diff_limits *limits,
		  struct diffparse **out, struct error *err)
{
	struct diffparse *p = calloc(1, sizeof(*p));

	if (!p)
		return error_set(err, STATUS_INTERNAL, "out of memory");
	p->r = r;
	if (limits)
		p->limits = *limits;
	p->limits.max_files = clamp(p->limits.max_files, DIFF_MAX_FILES_UPPER);
	p->limits.max_lines = clamp(p->limits.max_lines, DIFF_MAX_LINES_UPPER);
	p->limits.max_bytes = clamp(p->limits.max_bytes, DIFF_MAX_BYTES_UPPER);
	p->limits.safe_max_files = clamp(p->limits.safe_max_files, DIFF_SAFE_MAX_FILES_UPPER);
	p->limits.safe_max_lines = clamp(p->limits.safe_max_lines, DIFF_SAFE_MAX_LINES_UPPER);
	p->limits.safe_max_bytes = clamp(p->limits.safe_max_bytes, DIFF_SAFE_MAX_BYTES_UPPER);
	p->limits.max_patch_bytes = clamp(p->limits.max_patch_bytes, DIFF_MAX_PATCH_BYTES_UPPER);
	strbuf_init(&p->raw, RAW_CAP);
	strbuf_init(&p->header, LINE_CAP);
	strbuf_init(&p->expect, 2 * LINE_CAP + 64);
	strbuf_init(&p->cur.from_path, LINE_CAP);
	strbuf_init(&p->cur.to_path, LINE_CAP);
	strbuf_init(&p->cur.patch, DIFF_PATCH_HARD_CAP);
	if (read_raw_lines(p, err) < 0) {
		diffparse_free(p);
		return -1;
	}
	*out = p;
	return 0;
}

int diffparse_overflowed(const struct diffparse *p)
{
	return p->finished;
}

void diffparse_free(struct diffparse *p)
{
	if (!p)
		return;
	strbuf_release(&p->raw);
	strbuf_release(&p->header);
	strbuf_release(&p->expect);
	strbuf_release(&p->cur.from_path);
	strbuf_release(&p->cur.to_path);
	strbuf_release(&p->cur.patch);
	free(p->line_off);
	free(p);
}

/* The raw line i without its newline. */
static void raw_line(const struct diffparse *p, size_t i, const char **l, size_t *len)
{
	size_t start = p->line_off[i];
	size_t end = i + 1 < p->n_lines ? p->line_off[i + 1] : p->raw.len;

	*l = p->raw.buf + start;
	*len = end - start;
	if (*len && (*l)[*len - 1] == '\n')
		(*len)--;
}

static int quoted_tok(struct strbuf *sb, const char *prefix, const char *tok, size_t len)
{
	if (len >= 2 && tok[0] == '"' && tok[len - 1] == '"')
		return strbuf_addch(sb, '"') < 0 || strbuf_adds(sb, prefix) < 0 ||
				       strbuf_add(sb, tok + 1, len - 1) < 0
			       ? -1
			       : 0;
	return strbuf_adds(sb, prefix) < 0 || strbuf_add(sb, tok, len) < 0 ? -1 : 0;
}

static int init_current(struct diffparse *p, struct raw_entry *e, struct error *err)
{
	struct diff_file *f = &p->cur;

	file_reset(f);
	p->patch_len = 0;
	f->old_mode = e->old_mode;
	f->new_mode = e->new_mode;
	memcpy(f->from_id, e->from_id, sizeof(f->from_id));
	memcpy(f->to_id, e->to_id, sizeof(f->to_id));
	f->status = e->status;
	if (add_unquoted(&f->from_path, e->from_tok, e->from_len) < 0 ||
	    add_unquoted(&f->to_path, e->to_tok, e->to_len) < 0)
		return error_set(err, STATUS_INTERNAL, "path too long");
	strbuf_reset(&p->expect);
	if (strbuf_adds(&p->expect, "diff --git ") < 0 ||
	    quoted_tok(&p->expect, "a/", e->from_tok, e->from_len) < 0 ||
	    strbuf_addch(&p->expect, ' ') < 0 ||
	    quoted_tok(&p->expect, "b/", e->to_tok, e->to_len) < 0)
		return error_set(err, STATUS_INTERNAL, "path too long");
	if (e->status == 'T') {
		/* Shown as a deletion followed by an addition, as GitLab expects. */
		p->synth = *e;
		p->synth.status = 'A';
		p->synth.old_mode = 0;
		memset(p->synth.from_id, '0', strlen(e->to_id));
		p->synth.from_id[strlen(e->to_id)] = '\0';
		p->synth.to_tok = e->from_tok;
		p->synth.to_len = e->from_len;
		p->have_synth = 1;
		f->new_mode = 0;
		memset(f->to_id, '0', strlen(f->to_id));
	}
	p->files++;
	return 0;
}

/* Whether the patch bytes of the current file can still matter. */
static int want_store(struct diffparse *p)
{
	const struct diff_limits *l = &p->limits;

	if (l->enforce_limits &&
	    p->patch_len >= diffparse_patch_limit(l->max_patch_bytes, l->ext, l->n_ext,
						  p->cur.to_path.buf ? p->cur.to_path.buf : "",
						  p->cur.to_path.len))
		return 0;
	if (l->collapse_diffs && p->cur.line_count > 0 &&
	    (p->files > l->safe_max_files || p->lines > l->safe_max_lines ||
	     p->bytes > l->safe_max_bytes))
		return 0;
	return 1;
}

struct chunk_ctx {
	struct diffparse *p;
	int overflow;
};

static int chunk_piece(void *ctx, const unsigned char *data, size_t len)
{
	struct chunk_ctx *c = ctx;
	struct diffparse *p = c->p;

	if (p->stop_collection)
		return 0;
	if (p->store_patch && !want_store(p))
		p->store_patch = 0;
	if (p->store_patch && strbuf_add(&p->cur.patch, data, len) < 0) {
		c->overflow = 1;
		return -1;
	}
	p->patch_len += (int64_t)len;
	return 0;
}

static int consume_chunk_line(struct diffparse *p, int stats, struct error *err)
{
	struct chunk_ctx c = { p, 0 };
	size_t n = 0;

	if (rd_until(p->r, '\n', chunk_piece, &c, &n) < 0) {
		if (c.overflow)
			return error_set(err, STATUS_INTERNAL, "patch exceeds %zu bytes",
					 DIFF_PATCH_HARD_CAP);
		return error_set(err, STATUS_INTERNAL, "read chunk line failed");
	}
	if (stats) {
		p->bytes += (int64_t)n;
		p->cur.line_count++;
		p->lines++;
	}
	return 0;
}

static int skip_line(struct diffparse *p, struct error *err)
{
	size_t n;

	if (rd_until(p->r, '\n', NULL, NULL, &n) < 0)
		return error_set(err, STATUS_INTERNAL, "read line failed");
	return 0;
}

static int has_prefix(const unsigned char *d, size_t n, const char *prefix)
{
	size_t l = strlen(prefix);

	return n >= l && !memcmp(d, prefix, l);
}

/* Upstream's loose shape check of a "diff --git" header. */
static int header_shape_ok(const struct strbuf *h)
{
	const char *s = h->buf;

	if (h->len < 11 || memcmp(s, "diff --git ", 11))
		return 0;
	s += 11;
	if (*s == '"')
		s++;
	if (strncmp(s, "a/", 2))
		return 0;
	return memmem(s, h->len - (size_t)(s - h->buf), " b/", 3) ||
	       memmem(s, h->len - (size_t)(s - h->buf), " \"b/", 4);
}

static int find_next_header(struct diffparse *p, struct error *err)
{
	size_t n;
	int got;

	if (p->have_header)
		return 0;
	strbuf_reset(&p->header);
	got = rd_until(p->r, '\n', sb_piece, &p->header, &n);
	if (got < 0)
		return error_set(err, STATUS_INTERNAL, "read diff header line failed");
	if (got == 0)
		return 0; /* the end (a partial last line is dropped, as upstream) */
	p->header.len--;
	p->header.buf[p->header.len] = '\0';
	if (!header_shape_ok(&p->header))
		return error_set(err, STATUS_INTERNAL, "diff header regexp mismatch");
	p->have_header = 1;
	return 0;
}

static void prune_patch(struct diffparse *p)
{
	p->lines -= p->cur.line_count;
	p->bytes -= p->patch_len;
	p->patch_len = 0;
	strbuf_reset(&p->cur.patch);
}

static int read_patch(struct diffparse *p, struct error *err)
{
	p->store_patch = 1;
	for (;;) {
		const unsigned char *d;
		size_t n;
		int ret;

		if (rd_peek(p->r, 10, &d, &n) < 0)
			return error_set(err, STATUS_INTERNAL, "peek diff line failed");
		if (!n)
			return 0;
		if (has_prefix(d, n, "diff --git"))
			return 0;
		if (has_prefix(d, n, "@@"))
			ret = consume_chunk_line(p, 0, err);
		else if ((has_prefix(d, n, "---") || has_prefix(d, n, "+++")) && p->patch_len == 0)
			ret = skip_line(p, err);
		else if (has_prefix(d, n, "~\n"))
			ret = consume_chunk_line(p, 1, err);
		else if (has_prefix(d, n, "Binary")) {
			p->cur.binary = 1;
			ret = consume_chunk_line(p, 1, err);
		} else if (d[0] == '-' || d[0] == '+' || d[0] == ' ' || d[0] == '\\')
			ret = consume_chunk_line(p, 1, err);
		else
			ret = skip_line(p, err);
		if (ret < 0)
			return -1;
	}
}

static void apply_limits(struct diffparse *p)
{
	const struct diff_limits *l = &p->limits;
	struct diff_file *f = &p->cur;

	if (l->collapse_diffs && f->line_count > 0 &&
	    (p->files > l->safe_max_files || p->lines > l->safe_max_lines ||
	     p->bytes > l->safe_max_bytes)) {
		prune_patch(p);
		f->collapsed = 1;
		if (l->collect_all_paths)
			f->collect_all_paths = 1;
	}
	if (!l->enforce_limits)
		return;
	if (p->patch_len >= diffparse_patch_limit(l->max_patch_bytes, l->ext, l->n_ext,
						  f->to_path.buf ? f->to_path.buf : "",
						  f->to_path.len)) {
		prune_patch(p);
		f->too_large = 1;
	}
	if (p->lines - l->max_lines >= 0 || p->bytes - l->max_bytes >= 0 ||
	    p->files - l->max_files > 0) {
		if (l->collect_all_paths) {
			f->collect_all_paths = 1;
			p->patch_len = 0;
			strbuf_reset(&f->patch);
			p->stop_collection = 1;
		} else {
			p->finished = 1;
			file_reset(f);
		}
		f->overflow_marker = 1;
	}
}

int diffparse_next(struct diffparse *p, const struct diff_file **out, struct error *err)
{
	struct raw_entry e;

	if (p->finished)
		return 0; /* the caller may stop git instead of reading the rest */
	if (!p->have_synth && p->next_line == p->n_lines) {
		if (diff_reader_drain(p->r) < 0)
			return error_set(err, STATUS_INTERNAL, "draining diff output failed");
		return 0;
	}
	if (p->have_synth) {
		e = p->synth;
		p->have_synth = 0;
	} else {
		const char *l;
		size_t len;

		raw_line(p, p->next_line++, &l, &len);
		if (parse_raw_line(l, len, &e, err) < 0)
			return -1;
	}
	if (init_current(p, &e, err) < 0 || find_next_header(p, err) < 0)
		return -1;
	*out = &p->cur;
	if (!p->have_header || p->header.len != p->expect.len ||
	    memcmp(p->header.buf, p->expect.buf, p->expect.len))
		return 1; /* this file has no patch (e.g. whitespace-only change) */
	p->have_header = 0;
	if (read_patch(p, err) < 0)
		return -1;
	apply_limits(p);
	return 1;
}

/* --- numstat ---------------------------------------------------------------- */

void diff_numstat_init(struct diff_numstat *ns)
{
	memset(ns, 0, sizeof(*ns));
	strbuf_init(&ns->path, LINE_CAP);
	strbuf_init(&ns->old_path, LINE_CAP);
}

void diff_numstat_release(struct diff_numstat *ns)
{
	strbuf_release(&ns->path);
	strbuf_release(&ns->old_path);
}

/* Go's %q of a byte string, for upstream's "error parsing %q". */
static void go_quote(struct strbuf *sb, const char *s, size_t len)
{
	static const char hex[] = "0123456789abcdef";

	strbuf_addch(sb, '"');
	for (size_t i = 0; i < len; i++) {
		unsigned char c = (unsigned char)s[i];

		switch (c) {
		case '"': strbuf_adds(sb, "\\\""); break;
		case '\\': strbuf_adds(sb, "\\\\"); break;
		case '\n': strbuf_adds(sb, "\\n"); break;
		case '\t': strbuf_adds(sb, "\\t"); break;
		case '\r': strbuf_adds(sb, "\\r"); break;
		default:
			if (c < 0x20 || c >= 0x7f) {
				char e[4] = { '\\', 'x', hex[c >> 4], hex[c & 15] };

				strbuf_add(sb, e, 4);
			} else {
				strbuf_addch(sb, (char)c);
			}
		}
	}
	strbuf_addch(sb, '"');
}

static int parse_count(const char *s, size_t len, int32_t *out, struct error *err)
{
	int64_t v = 0;
	size_t i = 0;
	int neg = 0;

	if (len == 1 && s[0] == '-') {
		*out = 0; /* binary file */
		return 0;
	}
	if (len && (s[0] == '+' || s[0] == '-')) {
		neg = s[0] == '-';
		i = 1;
	}
	if (i == len)
		goto bad;
	for (; i < len; i++) {
		if (!is_digit(s[i]))
			goto bad;
		v = v * 10 + (s[i] - '0');
		if (v > (int64_t)INT32_MAX + 1)
			goto range;
	}
	if (neg)
		v = -v;
	if (v > INT32_MAX || v < INT32_MIN)
		goto range;
	*out = (int32_t)v;
	return 0;
bad:
	return error_set(err, STATUS_INTERNAL,
			 "error converting diff num stat: strconv.ParseInt: parsing \"%.*s\": invalid syntax",
			 (int)len, s);
range:
	return error_set(err, STATUS_INTERNAL,
			 "error converting diff num stat: strconv.ParseInt: parsing \"%.*s\": value out of range",
			 (int)len, s);
}

static int numstat_error(const struct strbuf *rec, struct error *err)
{
	struct strbuf sb = STRBUF_INIT;

	go_quote(&sb, rec->buf, rec->len);
	error_set(err, STATUS_INTERNAL, "error parsing %s", sb.buf ? sb.buf : "\"\"");
	strbuf_release(&sb);
	return -1;
}

int diffparse_numstat_next(struct diff_reader *r, struct diff_numstat *ns, struct error *err)
{
	struct strbuf rec = STRBUF_INIT;
	const char *t1, *t2, *rest;
	size_t n, rest_len;
	int got, ret = -1;

	strbuf_init(&rec, 3 * LINE_CAP);
	strbuf_reset(&ns->path);
	strbuf_reset(&ns->old_path);
	got = rd_until(r, '\0', sb_piece, &rec, &n);
	if (got < 0) {
		error_set(err, STATUS_INTERNAL, "reading numstat failed");
		goto out;
	}
	if (got == 0) {
		ret = 0;
		goto out;
	}
	t1 = memchr(rec.buf, '\t', rec.len);
	t2 = t1 ? memchr(t1 + 1, '\t', rec.len - (size_t)(t1 + 1 - rec.buf)) : NULL;
	if (!t2) {
		numstat_error(&rec, err);
		goto out;
	}
	if (parse_count(rec.buf, (size_t)(t1 - rec.buf), &ns->additions, err) < 0 ||
	    parse_count(t1 + 1, (size_t)(t2 - t1 - 1), &ns->deletions, err) < 0)
		goto out;
	rest = t2 + 1;
	rest_len = rec.len - (size_t)(rest - rec.buf);
	if (rest_len == 0) {
		numstat_error(&rec, err);
		goto out;
	}
	if (rest_len > 1) {
		if (strbuf_add(&ns->path, rest, rest_len - 1) < 0) {
			error_set(err, STATUS_INTERNAL, "path too long");
			goto out;
		}
		ret = 1;
		goto out;
	}
	/* A rename: the old and the new path follow, each NUL-terminated. */
	got = rd_until(r, '\0', sb_piece, &ns->old_path, &n);
	if (got > 0)
		got = rd_until(r, '\0', sb_piece, &ns->path, &n);
	if (got < 0) {
		error_set(err, STATUS_INTERNAL, "reading numstat failed");
		goto out;
	}
	if (got == 0) {
		ret = 0;
		goto out;
	}
	ns->old_path.buf[--ns->old_path.len] = '\0';
	ns->path.buf[--ns->path.len] = '\0';
	ret = 1;
out:
	strbuf_release(&rec);
	return ret;
}

/* --- diff-tree ------------------------------------------------------------------ */

void diff_tree_record_init(struct diff_tree_record *rec)
{
	memset(rec, 0, sizeof(*rec));
	strbuf_init(&rec->path, LINE_CAP);
}

void diff_tree_record_release(struct diff_tree_record *rec)
{
	free(rec->changes);
	strbuf_release(&rec->path);
	memset(rec, 0, sizeof(*rec));
}

static int tree_fail(const struct strbuf *line, struct error *err)
{
	/* Upstream prints the byte slice with %v: decimal bytes in brackets. */
	struct strbuf sb = STRBUF_INIT;

	strbuf_addch(&sb, '[');
	for (size_t i = 0; i < line->len; i++)
		strbuf_addf(&sb, i ? " %u" : "%u", (unsigned char)line->buf[i]);
	strbuf_addch(&sb, ']');
	error_set(err, STATUS_INTERNAL, "git diff-tree parsing failed on: %s", sb.buf);
	strbuf_release(&sb);
	return -1;
}

int diffparse_tree_next(struct diff_reader *r, struct diff_tree_record *rec, struct error *err)
{
	struct strbuf line = STRBUF_INIT;
	const char **fields = NULL;
	size_t n, n_fields = 0, src, colons = 0;
	const char *status;
	int got, ret = -1;

	strbuf_init(&line, LINE_CAP);
	strbuf_reset(&rec->path);
	rec->n_changes = 0;
	got = rd_until(r, ':', NULL, NULL, &n);
	if (got > 0)
		got = rd_until(r, '\0', sb_piece, &line, &n);
	if (got < 0) {
		error_set(err, STATUS_INTERNAL, "reading diff-tree output failed");
		goto out;
	}
	if (got == 0) {
		ret = 0;
		goto out;
	}
	line.len--; /* the NUL */
	/* Further colons (combined diffs) give one more source each. */
	while (colons < line.len && line.buf[colons] == ':')
		colons++;
	fields = calloc(line.len + 2, sizeof(*fields));
	if (!fields) {
		error_set(err, STATUS_INTERNAL, "out of memory");
		goto out;
	}
	for (size_t i = colons, start = colons; i <= line.len; i++) {
		if (i == line.len || line.buf[i] == ' ') {
			fields[n_fields++] = line.buf + start;
			line.buf[i] = '\0';
			start = i + 1;
		}
	}
	src = colons + 1;
	status = fields[n_fields - 1];
	if (n_fields != 2 * src + 3 || strlen(status) != src) {
		for (size_t i = 0; i < line.len; i++)
			if (!line.buf[i])
				line.buf[i] = ' ';
		tree_fail(&line, err);
		goto out;
	}
	got = rd_until(r, '\0', sb_piece, &rec->path, &n);
	if (got < 0) {
		error_set(err, STATUS_INTERNAL, "reading diff-tree output failed");
		goto out;
	}
	if (got == 0) {
		ret = 0;
		goto out;
	}
	rec->path.buf[--rec->path.len] = '\0';
	if (src > rec->alloc) {
		struct diff_tree_change *c = realloc(rec->changes, src * sizeof(*c));

		if (!c) {
			error_set(err, STATUS_INTERNAL, "out of memory");
			goto out;
		}
		rec->changes = c;
		rec->alloc = src;
	}
	for (size_t i = 0; i < src; i++) {
		struct diff_tree_change *c = &rec->changes[i];

		if (parse_mode(fields[i], strlen(fields[i]), &c->old_mode) < 0) {
			error_set(err, STATUS_INTERNAL,
				  "parsing old mode: strconv.ParseInt: parsing \"%s\": invalid syntax",
				  fields[i]);
			goto out;
		}
		if (parse_mode(fields[src], strlen(fields[src]), &c->new_mode) < 0) {
			error_set(err, STATUS_INTERNAL,
				  "parsing new mode: strconv.ParseInt: parsing \"%s\": invalid syntax",
				  fields[src]);
			goto out;
		}
		c->status = status[i];
	}
	rec->n_changes = src;
	ret = 1;
out:
	free(fields);
	strbuf_release(&line);
	return ret;
}
