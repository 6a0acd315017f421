/*
 * fsutil: atomic replacement (content, mode, no leftovers), mkdir -p, tree
 * removal that leaves symlink targets alone, bounded reads, Go-compatible
 * path cleaning and joining.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include "base/error.h"
#include "base/fsutil.h"

static char tmp[64];

static int setup(void **state)
{
	(void)state;
	snprintf(tmp, sizeof(tmp), "/tmp/fsutil-test-XXXXXX");
	return mkdtemp(tmp) ? 0 : -1;
}

static int teardown(void **state)
{
	struct error err = ERROR_INIT;
	(void)state;
	fsutil_remove_tree(tmp, &err);
	error_release(&err);
	return 0;
}

static char *path_of(const char *rel)
{
	char *p = NULL;
	assert_true(asprintf(&p, "%s/%s", tmp, rel) > 0);
	return p;
}

static int count_entries(const char *dir)
{
	DIR *d = opendir(dir);
	struct dirent *de;
	int n = 0;

	assert_non_null(d);
	while ((de = readdir(d)))
		if (strcmp(de->d_name, ".") && strcmp(de->d_name, ".."))
			n++;
	closedir(d);
	return n;
}

static void test_write_atomic(void **state)
{
	struct error err = ERROR_INIT;
	char *p = path_of("file"), *text = NULL;
	struct stat st;
	size_t len;
	(void)state;

	assert_int_equal(fsutil_write_atomic(p, "first", 5, 0640, &err), 0);
	assert_int_equal(fsutil_read_file(p, 100, &text, &len, &err), 0);
	assert_int_equal(len, 5);
	assert_string_equal(text, "first");
	free(text);
	assert_int_equal(stat(p, &st), 0);
	assert_int_equal(st.st_mode & 0777, 0640);

	assert_int_equal(fsutil_write_atomic(p, "second\0bin", 10, 0600, &err), 0);
	assert_int_equal(fsutil_read_file(p, 100, &text, &len, &err), 0);
	assert_int_equal(len, 10);
	assert_memory_equal(text, "second\0bin", 10);
	free(text);
	assert_int_equal(count_entries(tmp), 1); /* no temp file left */

	free(p);
	p = path_of("missing-dir/file");
	assert_int_equal(fsutil_write_atomic(p, "x", 1, 0644, &err), -1);
	assert_int_equal(err.code, STATUS_INTERNAL);
	assert_int_equal(count_entries(tmp), 1);
	error_release(&err);
	free(p);
}

static void test_read_file_limits(void **state)
{
	struct error err = ERROR_INIT;
	char *p = path_of("big"), *text = (char *)"x";
	(void)state;

	assert_int_equal(fsutil_write_atomic(p, "0123456789", 10, 0644, &err), 0);
	assert_int_equal(fsutil_read_file(p, 9, &text, NULL, &err), -1);
	assert_int_equal(err.code, STATUS_RESOURCE_EXHAUSTED);
	assert_null(text);
	assert_int_equal(fsutil_read_file(p, 10, &text, NULL, &err), 0);
	free(text);
	free(p);
	p = path_of("absent");
	assert_int_equal(fsutil_read_file(p, 10, &text, NULL, &err), -1);
	assert_int_equal(err.code, STATUS_NOT_FOUND);
	error_release(&err);
	free(p);
}

static void test_mkdir_p(void **state)
{
	struct error err = ERROR_INIT;
	char *p = path_of("a/b//c/d/");
	struct stat st;
	(void)state;

	assert_int_equal(fsutil_mkdir_p(p, 0755, &err), 0);
	assert_int_equal(stat(p, &st), 0);
	assert_true(S_ISDIR(st.st_mode));
	assert_int_equal(fsutil_mkdir_p(p, 0755, &err), 0); /* existing is fine */
	free(p);
	p = path_of("a/file");
	assert_int_equal(fsutil_write_atomic(p, "x", 1, 0644, &err), 0);
	free(p);
	p = path_of("a/file/sub");
	assert_int_equal(fsutil_mkdir_p(p, 0755, &err), -1);
	free(p);
	p = path_of("a/file");
	assert_int_equal(fsutil_mkdir_p(p, 0755, &err), -1);
	assert_int_equal(fsutil_mkdir_p("", 0755, &err), -1);
	error_release(&err);
	free(p);
}

static void test_remove_tree(void **state)
{
	struct error err = ERROR_INIT;
	char *p, *target;
	(void)state;

	assert_int_equal(fsutil_mkdir_p((p = path_of("victim/x/y/z")), 0755, &err), 0);
	free(p);
	assert_int_equal(fsutil_mkdir_p((p = path_of("keep/dir")), 0755, &err), 0);
	free(p);
	assert_int_equal(fsutil_write_atomic((p = path_of("keep/dir/file")), "k", 1, 0644, &err), 0);
	free(p);
	assert_int_equal(fsutil_write_atomic((p = path_of("victim/x/y/z/f")), "v", 1, 0644, &err), 0);
	free(p);
	/* symlinks to a directory and to a file outside the tree */
	p = path_of("victim/x/dirlink");
	target = path_of("keep/dir");
	assert_int_equal(symlink(target, p), 0);
	free(p);
	free(target);
	p = path_of("victim/filelink");
	target = path_of("keep/dir/file");
	assert_int_equal(symlink(target, p), 0);
	free(p);
	free(target);
	/* a read-only directory inside is still removed */
	p = path_of("victim/x/y");
	assert_int_equal(chmod(p, 0555), 0);
	free(p);

	p = path_of("victim");
	assert_int_equal(fsutil_remove_tree(p, &err), 0);
	assert_int_equal(access(p, F_OK), -1);
	assert_int_equal(fsutil_remove_tree(p, &err), 0); /* missing is fine */
	free(p);
	p = path_of("keep/dir/file");
	assert_int_equal(access(p, F_OK), 0);
	free(p);

	/* removing a symlink removes only the link */
	p = path_of("lonely-link");
	target = path_of("keep");
	assert_int_equal(symlink(target, p), 0);
	assert_int_equal(fsutil_remove_tree(p, &err), 0);
	assert_int_equal(access(target, F_OK), 0);
	free(p);
	free(target);
}

static void test_path_clean_join(void **state)
{
	static const char *const clean[][2] = {
		{ "", "." },          { ".", "." },         { "/", "/" },
		{ "//", "/" },        { "a/b", "a/b" },     { "a//b", "a/b" },
		{ "a/./b", "a/b" },   { "a/b/", "a/b" },    { "a/../b", "b" },
		{ "../a", "../a" },   { "/../a", "/a" },    { "a/..", "." },
		{ "/a/..", "/" },     { "../..", "../.." }, { "a/../../b", "../b" },
		{ "abc/def/../../..", ".." }, { "/abc/./def/../x", "/abc/x" },
	};
	char *j;
	(void)state;

	for (size_t i = 0; i < sizeof(clean) / sizeof(clean[0]); i++) {
		char *c = fsutil_path_clean(clean[i][0]);
		if (strcmp(c, clean[i][1]))
			fail_msg("clean(\"%s\") = \"%s\", want \"%s\"", clean[i][0], c, clean[i][1]);
		free(c);
	}
	j = fsutil_path_join("/srv/storage", "/abs/path");
	assert_string_equal(j, "/srv/storage/abs/path");
	free(j);
	j = fsutil_path_join("/srv/storage", "../x");
	assert_string_equal(j, "/srv/x");
	free(j);
	j = fsutil_path_join("", "a/");
	assert_string_equal(j, "a");
	free(j);
	j = fsutil_path_join("a", "");
	assert_string_equal(j, "a");
	free(j);
	j = fsutil_path_join("", "");
	assert_string_equal(j, "");
	free(j);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_write_atomic, setup, teardown),
		cmocka_unit_test_setup_teardown(test_read_file_limits, setup, teardown),
		cmocka_unit_test_setup_teardown(test_mkdir_p, setup, teardown),
		cmocka_unit_test_setup_teardown(test_remove_tree, setup, teardown),
		cmocka_unit_test(test_path_clean_join),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
