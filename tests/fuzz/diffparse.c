/*
 * libFuzzer target for git/diffparse (not built by make). The first bytes
 * of the input choose limits; the rest is fed to the CommitDiff parser,
 * then to the numstat and the diff-tree record parsers. Any input must end
 * in a clean result or an error, with every invariant the handlers rely
 * on: patches within the hard cap, empty patches for collapsed, too large
 * and overflow files, nothing after an overflow marker unless all paths
 * are collected.
 *
 * Build and run, from the repository root:
 *   clang -g -O1 -fsanitize=fuzzer,address,undefined -D_GNU_SOURCE -Isrc \
 *     tests/fuzz/diffparse.c src/git/diffparse.c src/base/strbuf.c \
 *     src/base/error.c -o /tmp/fuzz-diffparse
 *   /tmp/fuzz-diffparse -max_len=65536
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "git/diffparse.h"

static void fuzz_commit_diff(const uint8_t *data, size_t size, const struct diff_limits *l)
{
	struct diff_reader rd;
	struct diffparse *p = NULL;
	struct error err = ERROR_INIT;
	const struct diff_file *f;
	int got, overflowed = 0;

	diff_reader_init_mem(&rd, data, size);
	if (diffparse_new(&rd, l, &p, &err) == 0) {
		while ((got = diffparse_next(p, &f, &err)) == 1) {
			if (overflowed && !l->collect_all_paths)
				abort();
			if ((f->collapsed || f->too_large || f->overflow_marker) && f->patch.len)
				abort();
			if (f->patch.len > DIFF_PATCH_HARD_CAP)
				abort();
			overflowed |= f->overflow_marker;
		}
		diffparse_free(p);
	}
	error_release(&err);
	diff_reader_release(&rd);
}

static void fuzz_numstat(const uint8_t *data, size_t size)
{
	struct diff_reader rd;
	struct diff_numstat ns;
	struct error err = ERROR_INIT;

	diff_numstat_init(&ns);
	diff_reader_init_mem(&rd, data, size);
	while (diffparse_numstat_next(&rd, &ns, &err) == 1)
		;
	error_release(&err);
	diff_reader_release(&rd);
	diff_numstat_release(&ns);
}

static void fuzz_tree(const uint8_t *data, size_t size)
{
	struct diff_reader rd;
	struct diff_tree_record rec;
	struct error err = ERROR_INIT;

	diff_tree_record_init(&rec);
	diff_reader_init_mem(&rd, data, size);
	while (diffparse_tree_next(&rd, &rec, &err) == 1)
		if (!rec.n_changes)
			abort();
	error_release(&err);
	diff_reader_release(&rd);
	diff_tree_record_release(&rec);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static const struct diff_ext_limit ext[] = { { ".txt", 10 }, { "Makefile", 0 } };
	struct diff_limits l = { 0 };

	if (size < 4)
		return 0;
	l.enforce_limits = data[0] & 1;
	l.collapse_diffs = data[0] & 2;
	l.collect_all_paths = data[0] & 4;
	l.max_files = data[1] % 8;
	l.max_lines = data[2] * 2;
	l.max_bytes = data[3] * 16;
	l.safe_max_files = data[1] % 4;
	l.safe_max_lines = data[2];
	l.safe_max_bytes = data[3] * 8;
	l.max_patch_bytes = data[3] * 4;
	if (data[0] & 8) {
		l.ext = ext;
		l.n_ext = 2;
	}
	fuzz_commit_diff(data + 4, size - 4, &l);
	fuzz_numstat(data + 4, size - 4);
	fuzz_tree(data + 4, size - 4);
	return 0;
}
