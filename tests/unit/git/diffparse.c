/*
 * git/diffparse: the CommitDiff parser on hand-written git output (quoted
 * paths, renames with " b/" in names, type changes split in two, files
 * without a patch, binary files, "---" lines inside hunks), upstream's
 * limits (overflow marker, collapsing, too_large, per-extension limits,
 * collect_all_paths), the numstat and diff-tree record parsers, and the
 * unquoting rules.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "git/diffparse.h"

#define A40 "1111111111111111111111111111111111111111"
#define B40 "2222222222222222222222222222222222222222"
#define Z40 "0000000000000000000000000000000000000000"

static const char stream1[] =
	":100644 100644 " A40 " " B40 " M\tfoo.txt\n"
	":100644 000000 " A40 " " Z40 " D\tgone.txt\n"
	":000000 100644 " Z40 " " B40 " A\t\"sp\\303\\251cial b/x.txt\"\n"
	":100644 100644 " A40 " " B40 " R087\told name\tnew b/name\n"
	":100644 120000 " A40 " " B40 " T\tlink\n"
	":100644 100644 " A40 " " B40 " M\tws-only\n"
	":100644 100644 " A40 " " B40 " M\tbin.png\n"
	"\n"
	"diff --git a/foo.txt b/foo.txt\nindex " A40 ".." B40 " 100644\n--- a/foo.txt\n+++ b/foo.txt\n"
	"@@ -1 +1 @@\n-old\n+new\n"
	"diff --git a/gone.txt b/gone.txt\ndeleted file mode 100644\n--- a/gone.txt\n+++ /dev/null\n"
	"@@ -1 +0,0 @@\n-bye\n"
	"diff --git \"a/sp\\303\\251cial b/x.txt\" \"b/sp\\303\\251cial b/x.txt\"\nnew file mode 100644\n"
	"--- /dev/null\n+++ \"b/sp\\303\\251cial b/x.txt\"\n@@ -0,0 +1 @@\n+hi\n\\ No newline at end of file\n"
	"diff --git a/old name b/new b/name\nsimilarity index 87%\nrename from old name\nrename to new b/name\n"
	"--- a/old name\n+++ b/new b/name\n@@ -1,2 +1,2 @@\n a\n--- b\n+++ c\n"
	"diff --git a/link b/link\ndeleted file mode 100644\n--- a/link\n+++ /dev/null\n@@ -1 +0,0 @@\n-x\n"
	"diff --git a/link b/link\nnew file mode 120000\n--- /dev/null\n+++ b/link\n@@ -0,0 +1 @@\n+target\n"
	"\\ No newline at end of file\n"
	"diff --git a/bin.png b/bin.png\nindex " A40 ".." B40 " 100644\nBinary files a/bin.png and b/bin.png differ\n";

struct got {
	char from[64], to[64], patch[256];
	char from_id[65], to_id[65];
	int32_t old_mode, new_mode;
	int binary, overflow, collapsed, too_large;
};

/* Parses all of input with limits into out[]; returns the count. */
static int parse_all(const char *input, size_t len, const struct diff_limits *limits,
		     struct got *out, int max)
{
	struct diff_reader rd;
	struct diffparse *p = NULL;
	struct error err = ERROR_INIT;
	const struct diff_file *f;
	int n = 0, got;

	diff_reader_init_mem(&rd, input, len);
	assert_int_equal(diffparse_new(&rd, limits, &p, &err), 0);
	while ((got = diffparse_next(p, &f, &err)) == 1) {
		assert_true(n < max);
		memset(&out[n], 0, sizeof(out[n]));
		snprintf(out[n].from, sizeof(out[n].from), "%.*s", (int)f->from_path.len,
			 f->from_path.buf ? f->from_path.buf : "");
		snprintf(out[n].to, sizeof(out[n].to), "%.*s", (int)f->to_path.len,
			 f->to_path.buf ? f->to_path.buf : "");
		snprintf(out[n].patch, sizeof(out[n].patch), "%.*s", (int)f->patch.len,
			 f->patch.buf ? f->patch.buf : "");
		memcpy(out[n].from_id, f->from_id, 65);
		memcpy(out[n].to_id, f->to_id, 65);
		out[n].old_mode = f->old_mode;
		out[n].new_mode = f->new_mode;
		out[n].binary = f->binary;
		out[n].overflow = f->overflow_marker;
		out[n].collapsed = f->collapsed;
		out[n].too_large = f->too_large;
		n++;
	}
	if (got < 0)
		fail_msg("parse error: %s", err.message);
	diffparse_free(p);
	diff_reader_release(&rd);
	return n;
}

static void test_stream(void **state)
{
	struct got g[16];
	int n = parse_all(stream1, sizeof(stream1) - 1, NULL, g, 16);

	(void)state;
	assert_int_equal(n, 8);
	assert_string_equal(g[0].from, "foo.txt");
	assert_string_equal(g[0].patch, "@@ -1 +1 @@\n-old\n+new\n");
	assert_string_equal(g[0].from_id, A40);
	assert_int_equal(g[0].old_mode, 0100644);
	assert_string_equal(g[1].to, "gone.txt");
	assert_string_equal(g[1].to_id, Z40);
	assert_int_equal(g[1].new_mode, 0);
	assert_string_equal(g[2].from, "sp\303\251cial b/x.txt");
	assert_string_equal(g[2].patch, "@@ -0,0 +1 @@\n+hi\n\\ No newline at end of file\n");
	assert_string_equal(g[3].from, "old name");
	assert_string_equal(g[3].to, "new b/name");
	assert_string_equal(g[3].patch, "@@ -1,2 +1,2 @@\n a\n--- b\n+++ c\n");
	/* The type change: a deletion, then an addition of the same path. */
	assert_string_equal(g[4].from, "link");
	assert_int_equal(g[4].new_mode, 0);
	assert_string_equal(g[4].to_id, Z40);
	assert_string_equal(g[4].patch, "@@ -1 +0,0 @@\n-x\n");
	assert_string_equal(g[5].from, "link");
	assert_int_equal(g[5].old_mode, 0);
	assert_int_equal(g[5].new_mode, 0120000);
	assert_string_equal(g[5].from_id, Z40);
	assert_string_equal(g[5].to_id, B40);
	assert_string_equal(g[5].patch, "@@ -0,0 +1 @@\n+target\n\\ No newline at end of file\n");
	/* No patch for ws-only; the binary file's marker line is its patch. */
	assert_string_equal(g[6].from, "ws-only");
	assert_string_equal(g[6].patch, "");
	assert_string_equal(g[7].from, "bin.png");
	assert_true(g[7].binary);
	assert_string_equal(g[7].patch, "Binary files a/bin.png and b/bin.png differ\n");
}

/* n files "f<i>.txt" (or ext), each a hunk of k added lines "+x\n". */
static char *gen(int n, int k, const char *ext, size_t *len)
{
	size_t cap = (size_t)n * (200 + (size_t)k * 3) + 16, off = 0;
	char *s = malloc(cap);

	for (int i = 0; i < n; i++)
		off += (size_t)snprintf(s + off, cap - off, ":000000 100644 " Z40 " " B40 " A\tf%d%s\n", i, ext);
	off += (size_t)snprintf(s + off, cap - off, "\n");
	for (int i = 0; i < n; i++) {
		off += (size_t)snprintf(s + off, cap - off,
					"diff --git a/f%d%s b/f%d%s\nnew file mode 100644\n--- /dev/null\n+++ b/f%d%s\n@@ -0,0 +1,%d @@\n",
					i, ext, i, ext, i, ext, k);
		for (int j = 0; j < k; j++)
			off += (size_t)snprintf(s + off, cap - off, "+x\n");
	}
	*len = off;
	return s;
}

static void test_max_files_overflow(void **state)
{
	struct diff_limits l = { .enforce_limits = 1, .max_files = 3, .max_lines = 1000,
				 .max_bytes = 100000, .max_patch_bytes = 100000 };
	struct got g[16];
	size_t len;
	char *s = gen(6, 2, ".txt", &len);
	int n = parse_all(s, len, &l, g, 16);

	(void)state;
	/* Three files, then an empty overflow marker, then nothing. */
	assert_int_equal(n, 4);
	assert_string_equal(g[2].from, "f2.txt");
	assert_false(g[2].overflow);
	assert_true(g[3].overflow);
	assert_string_equal(g[3].from, "");
	assert_string_equal(g[3].patch, "");
	assert_string_equal(g[3].from_id, "");

	/* With collect_all_paths every file is listed; patches stop at the overflow. */
	l.collect_all_paths = 1;
	n = parse_all(s, len, &l, g, 16);
	assert_int_equal(n, 6);
	assert_true(g[3].overflow);
	assert_string_equal(g[3].from, "f3.txt");
	assert_string_equal(g[3].patch, "");
	assert_true(g[5].overflow);
	assert_string_equal(g[5].patch, "");
	assert_string_equal(g[1].patch, "@@ -0,0 +1,2 @@\n+x\n+x\n");
	free(s);
}

static void test_max_lines_and_bytes(void **state)
{
	struct diff_limits l = { .enforce_limits = 1, .max_files = 100, .max_lines = 5,
				 .max_bytes = 100000, .max_patch_bytes = 100000 };
	struct got g[16];
	size_t len;
	char *s = gen(5, 2, ".txt", &len);
	int n;

	(void)state;
	/* 2 lines per file: the file reaching 5 lines (the third) is the marker. */
	n = parse_all(s, len, &l, g, 16);
	assert_int_equal(n, 3);
	assert_true(g[2].overflow);
	assert_false(g[1].overflow);
	/* Bytes: each "+x\n" counts 3; a limit of 12 is reached by the second file. */
	l.max_lines = 1000;
	l.max_bytes = 12;
	n = parse_all(s, len, &l, g, 16);
	assert_int_equal(n, 2);
	assert_true(g[1].overflow);
	free(s);
}

static void test_collapse_and_too_large(void **state)
{
	struct diff_limits l = { .collapse_diffs = 1, .safe_max_files = 2, .safe_max_lines = 1000,
				 .safe_max_bytes = 100000 };
	struct diff_ext_limit ext[] = { { ".md", 3 }, { "Makefile", 1000 } };
	struct got g[16];
	size_t len;
	char *s = gen(4, 2, ".txt", &len);
	int n;

	(void)state;
	n = parse_all(s, len, &l, g, 16);
	assert_int_equal(n, 4);
	assert_false(g[1].collapsed);
	assert_true(g[2].collapsed);
	assert_string_equal(g[2].patch, "");
	assert_true(g[3].collapsed);
	/* max_patch_bytes: a patch of this size or more is too large. */
	memset(&l, 0, sizeof(l));
	l.enforce_limits = 1;
	l.max_files = l.max_lines = l.max_bytes = 100000;
	l.max_patch_bytes = 22; /* "@@ -0,0 +1,2 @@\n+x\n+x\n" is 22 bytes */
	n = parse_all(s, len, &l, g, 16);
	assert_int_equal(n, 4);
	assert_true(g[0].too_large);
	assert_string_equal(g[0].patch, "");
	l.max_patch_bytes = 23;
	n = parse_all(s, len, &l, g, 16);
	assert_false(g[0].too_large);
	/* Per-extension limits override it. */
	l.ext = ext;
	l.n_ext = 2;
	free(s);
	s = gen(2, 2, ".md", &len);
	n = parse_all(s, len, &l, g, 16);
	assert_int_equal(n, 2);
	assert_true(g[0].too_large);
	assert_int_equal(diffparse_patch_limit(7, ext, 2, "dir/Makefile", 12), 1000);
	assert_int_equal(diffparse_patch_limit(7, ext, 2, "a.md", 4), 3);
	assert_int_equal(diffparse_patch_limit(7, ext, 2, "a.md/b.c", 8), 7);
	assert_int_equal(diffparse_patch_limit(7, ext, 2, "x.tar.md", 8), 3);
	free(s);
}

static void test_huge_patch_not_kept_when_too_large(void **state)
{
	struct diff_limits l = { .enforce_limits = 1, .max_files = 10, .max_lines = 1000000,
				 .max_bytes = 100000000, .max_patch_bytes = 100 };
	struct got g[4];
	size_t len;
	char *s = gen(2, 50000, ".txt", &len);
	int n = parse_all(s, len, &l, g, 4);

	(void)state;
	/* The upper bound on max_bytes (25600000) is far; each is too_large. */
	assert_int_equal(n, 2);
	assert_true(g[0].too_large);
	assert_true(g[1].too_large);
	assert_false(g[1].overflow);
	free(s);
}

/* A collapsed giant file gives its counts back: the next small file is
 * not collapsed; its patch was never held in memory either. */
static void test_collapse_gives_counts_back(void **state)
{
	static const char line[] = "+Lorem ipsum dolor sit amet, consectetur adipiscing elit.\n";
	struct diff_limits l = { .enforce_limits = 1, .collapse_diffs = 1, .safe_max_files = 3,
				 .safe_max_bytes = 200, .safe_max_lines = 200, .max_files = 5,
				 .max_bytes = 10000000, .max_lines = 10000000,
				 .max_patch_bytes = 100000 };
	struct strbuf in = STRBUF_INIT;
	struct got g[4];
	int n;

	(void)state;
	strbuf_addf(&in, ":000000 100644 " Z40 " " A40 " A\tbig.txt\n"
			 ":000000 100644 " Z40 " " B40 " A\tfile-00.txt\n\n"
			 "diff --git a/big.txt b/big.txt\nnew file mode 100644\n--- /dev/null\n"
			 "+++ b/big.txt\n@@ -0,0 +1,100000 @@\n");
	for (int i = 0; i < 100000; i++)
		strbuf_adds(&in, line);
	strbuf_addf(&in, "diff --git a/file-00.txt b/file-00.txt\nnew file mode 100644\n"
			 "--- /dev/null\n+++ b/file-00.txt\n@@ -0,0 +1 @@\n+Lorem ipsum\n");
	n = parse_all(in.buf, in.len, &l, g, 4);
	assert_int_equal(n, 2);
	assert_true(g[0].collapsed);
	assert_false(g[0].too_large);
	assert_string_equal(g[0].patch, "");
	assert_false(g[1].collapsed);
	assert_string_equal(g[1].patch, "@@ -0,0 +1 @@\n+Lorem ipsum\n");
	strbuf_release(&in);

	/* Three files of five lines and safe_max_lines 10: the third collapses. */
	l.safe_max_lines = 10;
	l.safe_max_files = l.safe_max_bytes = 10000000;
	{
		size_t len;
		char *s = gen(3, 5, ".txt", &len);

		n = parse_all(s, len, &l, g, 4);
		assert_int_equal(n, 3);
		assert_false(g[1].collapsed);
		assert_string_equal(g[1].patch, "@@ -0,0 +1,5 @@\n+x\n+x\n+x\n+x\n+x\n");
		assert_true(g[2].collapsed);
		free(s);
	}
}

/* A last line without newline, longer than the reader's buffer. */
static void test_long_last_line(void **state)
{
	struct strbuf in = STRBUF_INIT;
	struct diff_reader rd;
	struct diffparse *p = NULL;
	struct error err = ERROR_INIT;
	const struct diff_file *f;
	size_t hdr;

	(void)state;
	strbuf_addf(&in, ":000000 100644 " Z40 " " A40 " A\tfile-0\n\n"
			 "diff --git a/file-0 b/file-0\nnew file mode 100644\n--- /dev/null\n"
			 "+++ b/file-0\n");
	hdr = in.len;
	strbuf_adds(&in, "@@ -0,0 +1,100 @@\n+");
	for (int i = 0; i < 200000; i++)
		strbuf_addch(&in, 'z');
	diff_reader_init_mem(&rd, in.buf, in.len);
	assert_int_equal(diffparse_new(&rd, NULL, &p, &err), 0);
	assert_int_equal(diffparse_next(p, &f, &err), 1);
	assert_int_equal(f->patch.len, in.len - hdr);
	assert_memory_equal(f->patch.buf, in.buf + hdr, f->patch.len);
	assert_int_equal(f->line_count, 1);
	assert_int_equal(diffparse_next(p, &f, &err), 0);
	diffparse_free(p);
	diff_reader_release(&rd);
	strbuf_release(&in);
}

static void test_patch_limit_table(void **state)
{
	static const struct diff_ext_limit ext[] = { { ".txt", 2 }, { "Dockerfile", 3 },
						     { ".gitignore", 4 } };
	static const struct {
		const char *path;
		int64_t want;
	} cases[] = {
		{ "test.txt", 2 }, { "blah/Dockerfile", 3 }, { "test.md", 1 }, { ".gitignore", 4 },
		{ "test", 1 },     { "test.txt.md", 1 },     { "test.md.txt", 2 }, { "", 1 },
	};

	(void)state;
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++)
		assert_int_equal(diffparse_patch_limit(1, ext, 3, cases[i].path, strlen(cases[i].path)),
				 cases[i].want);
	/* Without a table: the plain limit. */
	assert_int_equal(diffparse_patch_limit(9, NULL, 0, "a.txt", 5), 9);
}

static void test_errors(void **state)
{
	static const char bad_raw[] = ":100644 100644 abc def M\tx\n\n";
	static const char bad_header[] = ":100644 100644 " A40 " " B40 " M\tx\n\nnot a header\n";
	struct diff_reader rd;
	struct diffparse *p = NULL;
	struct error err = ERROR_INIT;
	const struct diff_file *f;

	(void)state;
	diff_reader_init_mem(&rd, bad_raw, sizeof(bad_raw) - 1);
	assert_int_equal(diffparse_new(&rd, NULL, &p, &err), 0);
	assert_int_equal(diffparse_next(p, &f, &err), -1);
	assert_string_equal(err.message, "raw line regexp mismatch");
	error_release(&err);
	diffparse_free(p);
	diff_reader_release(&rd);

	diff_reader_init_mem(&rd, bad_header, sizeof(bad_header) - 1);
	assert_int_equal(diffparse_new(&rd, NULL, &p, &err), 0);
	assert_int_equal(diffparse_next(p, &f, &err), -1);
	assert_string_equal(err.message, "diff header regexp mismatch");
	assert_int_equal(err.code, STATUS_INTERNAL);
	error_release(&err);
	diffparse_free(p);
	diff_reader_release(&rd);

	/* Empty input: no files. */
	diff_reader_init_mem(&rd, "", 0);
	assert_int_equal(diffparse_new(&rd, NULL, &p, &err), 0);
	assert_int_equal(diffparse_next(p, &f, &err), 0);
	diffparse_free(p);
	diff_reader_release(&rd);
}

static void test_unquote(void **state)
{
	struct strbuf sb = STRBUF_INIT;
	const char *q = "a\\303\\251\\t\\\"\\\\z\\q";

	(void)state;
	assert_int_equal(diffparse_unquote(q, strlen(q), &sb), 0);
	assert_int_equal(sb.len, 9);
	assert_memory_equal(sb.buf, "a\303\251\t\"\\z\\q", 9);
	strbuf_release(&sb);
}

static void test_numstat(void **state)
{
	static const char in[] = "1\t2\tfile a\0-\t-\tbin\0" "3\t0\t\0old\0new\0" "7\t8";
	struct diff_reader rd;
	struct diff_numstat ns;
	struct error err = ERROR_INIT;

	(void)state;
	diff_numstat_init(&ns);
	diff_reader_init_mem(&rd, in, sizeof(in) - 1);
	assert_int_equal(diffparse_numstat_next(&rd, &ns, &err), 1);
	assert_int_equal(ns.additions, 1);
	assert_int_equal(ns.deletions, 2);
	assert_string_equal(ns.path.buf, "file a");
	assert_int_equal(ns.old_path.len, 0);
	assert_int_equal(diffparse_numstat_next(&rd, &ns, &err), 1);
	assert_int_equal(ns.additions, 0);
	assert_string_equal(ns.path.buf, "bin");
	assert_int_equal(diffparse_numstat_next(&rd, &ns, &err), 1);
	assert_string_equal(ns.old_path.buf, "old");
	assert_string_equal(ns.path.buf, "new");
	assert_int_equal(ns.additions, 3);
	/* A truncated record ends the stream. */
	assert_int_equal(diffparse_numstat_next(&rd, &ns, &err), 0);
	diff_reader_release(&rd);

	diff_reader_init_mem(&rd, "1\tx\0", 4);
	assert_int_equal(diffparse_numstat_next(&rd, &ns, &err), -1);
	assert_string_equal(err.message, "error parsing \"1\\tx\\x00\"");
	error_release(&err);
	diff_reader_release(&rd);
	diff_numstat_release(&ns);
}

static void test_diff_tree(void **state)
{
	static const char in[] =
		"tree1 tree2\0:100644 100644 " A40 " " B40 " M\0a/b\0"
		":000000 100755 " Z40 " " B40 " A\0new\0"
		"::100644 100644 100644 " A40 " " A40 " " B40 " MA\0merged\0";
	struct diff_reader rd;
	struct diff_tree_record rec;
	struct error err = ERROR_INIT;

	(void)state;
	diff_tree_record_init(&rec);
	diff_reader_init_mem(&rd, in, sizeof(in) - 1);
	assert_int_equal(diffparse_tree_next(&rd, &rec, &err), 1);
	assert_int_equal(rec.n_changes, 1);
	assert_string_equal(rec.path.buf, "a/b");
	assert_int_equal(rec.changes[0].status, 'M');
	assert_int_equal(rec.changes[0].new_mode, 0100644);
	assert_int_equal(diffparse_tree_next(&rd, &rec, &err), 1);
	assert_int_equal(rec.changes[0].status, 'A');
	assert_int_equal(rec.changes[0].old_mode, 0);
	assert_int_equal(rec.changes[0].new_mode, 0100755);
	assert_int_equal(diffparse_tree_next(&rd, &rec, &err), 1);
	assert_int_equal(rec.n_changes, 2);
	assert_int_equal(rec.changes[1].status, 'A');
	assert_string_equal(rec.path.buf, "merged");
	assert_int_equal(diffparse_tree_next(&rd, &rec, &err), 0);
	diff_reader_release(&rd);

	diff_reader_init_mem(&rd, ":1 2 M\0x\0", 9);
	assert_int_equal(diffparse_tree_next(&rd, &rec, &err), -1);
	assert_string_equal(err.message, "git diff-tree parsing failed on: [49 32 50 32 77]");
	error_release(&err);
	diff_reader_release(&rd);
	diff_tree_record_release(&rec);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_stream),
		cmocka_unit_test(test_max_files_overflow),
		cmocka_unit_test(test_max_lines_and_bytes),
		cmocka_unit_test(test_collapse_and_too_large),
		cmocka_unit_test(test_huge_patch_not_kept_when_too_large),
		cmocka_unit_test(test_collapse_gives_counts_back),
		cmocka_unit_test(test_long_last_line),
		cmocka_unit_test(test_patch_limit_table),
		cmocka_unit_test(test_errors),
		cmocka_unit_test(test_unquote),
		cmocka_unit_test(test_numstat),
		cmocka_unit_test(test_diff_tree),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
