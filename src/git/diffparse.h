/*
 * Parsers for git's diff output, as upstream's internal/gitaly/diff: the
 * `git diff --raw --patch --full-index` stream CommitDiff and CommitDelta
 * read (raw lines first, then one patch per file, matched by its
 * `diff --git` header), with upstream's limits and collapsing rules; the
 * `git diff --numstat -z` records of DiffStats; and the
 * `git diff-tree -z -r` records (with -m or -c) of FindChangedPaths.
 * Input comes through a small buffered reader over a file descriptor or a
 * memory buffer, so the parsers are testable and fuzzable without git.
 * Every buffer fed from the stream is capped.
 */
#ifndef GIT_DIFFPARSE_H
#define GIT_DIFFPARSE_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "base/error.h"
#include "base/strbuf.h"

/* Buffered reader. read returns bytes read, 0 at end, -1 on error (errno). */
typedef ssize_t (*diff_read_fn)(void *ctx, void *buf, size_t len);

struct diff_reader {
	diff_read_fn read;
	void *ctx;
	unsigned char *buf;
	size_t start, end, alloc;
	int eof;
	int fd;                    /* for diff_reader_init_fd */
	const unsigned char *mem;  /* for diff_reader_init_mem */
	size_t mem_len, mem_off;
};

/* Reads from fd (not closed by the reader). */
void diff_reader_init_fd(struct diff_reader *r, int fd);
/* Reads from a memory buffer, borrowed until the reader is released. */
void diff_reader_init_mem(struct diff_reader *r, const void *data, size_t len);
void diff_reader_release(struct diff_reader *r);
/* Reads and discards everything up to the end. Returns 0 or -1. */
int diff_reader_drain(struct diff_reader *r);

/* Upstream's upper bounds of the CommitDiff limits. */
#define DIFF_MAX_FILES_UPPER 5000
#define DIFF_MAX_LINES_UPPER 250000
#define DIFF_MAX_BYTES_UPPER (5000 * 5120)
#define DIFF_SAFE_MAX_FILES_UPPER 500
#define DIFF_SAFE_MAX_LINES_UPPER 25000
#define DIFF_SAFE_MAX_BYTES_UPPER (500 * 5120)
#define DIFF_MAX_PATCH_BYTES_UPPER 512000

/* Beyond upstream: a single patch kept in memory may not exceed this. */
#define DIFF_PATCH_HARD_CAP ((size_t)256 << 20)

struct diff_ext_limit {
	const char *ext; /* ".txt", or a whole file name without extension */
	int32_t limit;
};

struct diff_limits {
	int enforce_limits;    /* max_* stop parsing (overflow marker) */
	int collapse_diffs;    /* safe_max_* empty the patches after them */
	int collect_all_paths; /* after overflow, keep listing files without patches */
	int64_t max_files, max_lines, max_bytes;
	int64_t safe_max_files, safe_max_lines, safe_max_bytes;
	int64_t max_patch_bytes;
	const struct diff_ext_limit *ext; /* overrides max_patch_bytes per extension */
	size_t n_ext;
};

/* One file of a diff. Valid until the next diffparse_next. */
struct diff_file {
	int binary, overflow_marker, collapsed, too_large, collect_all_paths;
	char status; /* 'A', 'D', 'M', 'R', 'C', 'T', ... */
	char from_id[65], to_id[65];
	int32_t old_mode, new_mode;
	struct strbuf from_path, to_path; /* unquoted paths */
	struct strbuf patch;              /* from the first "@@" on */
	int64_t line_count;
};

struct diffparse;

/*
 * Reads the raw lines (up to the blank line before the patches) from r,
 * which must outlive the parser. limits may be NULL (no limits); they are
 * clamped to the upper bounds as upstream does. Errors: Internal.
 */
int diffparse_new(struct diff_reader *r, const struct diff_limits *limits,
		  struct diffparse **out, struct error *err);

/*
 * The next file: 1 with *out set (owned by the parser), 0 at the end (the
 * rest of the input is read and discarded, except after an overflow
 * marker: see diffparse_overflowed), -1 with err set (Internal, upstream's
 * parse messages, e.g. "raw line regexp mismatch", "diff header regexp
 * mismatch").
 */
int diffparse_next(struct diffparse *p, const struct diff_file **out, struct error *err);

/*
 * True once the overflow marker ended the parse (enforced limits without
 * collect_all_paths). The rest of the input is then left unread: upstream
 * drains it, we let the caller stop the producer instead.
 */
int diffparse_overflowed(const struct diffparse *p);

void diffparse_free(struct diffparse *p);

/* Upstream's unescape of git's C-style quoting (after removing the quotes). */
int diffparse_unquote(const char *s, size_t len, struct strbuf *out);

/*
 * The per-file patch limit: the extension entry matching ToPath's
 * filepath.Ext (or its whole base name when it has none), else max.
 */
int64_t diffparse_patch_limit(int64_t max, const struct diff_ext_limit *ext, size_t n_ext,
			      const char *to_path, size_t len);

/* One record of `git diff --numstat -z`. Paths valid until the next call. */
struct diff_numstat {
	int32_t additions, deletions;
	struct strbuf path, old_path; /* old_path empty unless renamed */
};

void diff_numstat_init(struct diff_numstat *ns);
void diff_numstat_release(struct diff_numstat *ns);

/* 1 with *ns filled, 0 at the end (a truncated record also ends the
 * stream, as upstream), -1 with err set ("error parsing \"...\"", ...). */
int diffparse_numstat_next(struct diff_reader *r, struct diff_numstat *ns, struct error *err);

/* One source of a `git diff-tree -z -r [-m|-c]` record. */
struct diff_tree_change {
	char status;
	int32_t old_mode, new_mode;
};

struct diff_tree_record {
	struct diff_tree_change *changes; /* one per source (parent) */
	size_t n_changes, alloc;
	struct strbuf path;
};

void diff_tree_record_init(struct diff_tree_record *rec);
void diff_tree_record_release(struct diff_tree_record *rec);

/* 1 with rec filled, 0 at the end, -1 with err set (upstream's messages:
 * "git diff-tree parsing failed on: ...", "parsing old mode: ..."). Text
 * before each record's leading colon (tree ids) is skipped as upstream. */
int diffparse_tree_next(struct diff_reader *r, struct diff_tree_record *rec, struct error *err);

#endif
