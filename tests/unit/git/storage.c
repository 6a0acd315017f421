/*
 * Storage layout: setup creates the +gitaly dirs and a metadata file that is
 * written once and never rewritten, the filesystem id is read back, the tmp
 * sweep removes only old entries (whole trees, without following symlinks),
 * temp dirs, and statfs names.
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
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "base/error.h"
#include "base/fsutil.h"
#include "git/storage.h"

static char tmp[64];

static int setup(void **state)
{
	(void)state;
	snprintf(tmp, sizeof(tmp), "/tmp/storage-test-XXXXXX");
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

static int is_dir(const char *rel, mode_t *mode)
{
	char *p = path_of(rel);
	struct stat st;
	int r = lstat(p, &st) == 0 && S_ISDIR(st.st_mode);
	if (mode)
		*mode = st.st_mode & 07777;
	free(p);
	return r;
}

static int exists(const char *rel)
{
	char *p = path_of(rel);
	struct stat st;
	int r = lstat(p, &st) == 0;
	free(p);
	return r;
}

static void assert_uuid4(const char *s)
{
	assert_int_equal(strlen(s), 36);
	for (int i = 0; i < 36; i++) {
		if (i == 8 || i == 13 || i == 18 || i == 23) {
			assert_int_equal(s[i], '-');
			continue;
		}
		assert_true((s[i] >= '0' && s[i] <= '9') || (s[i] >= 'a' && s[i] <= 'f'));
	}
	assert_int_equal(s[14], '4');
	assert_non_null(strchr("89ab", s[19]));
}

static void test_setup_and_metadata_once(void **state)
{
	struct error err = ERROR_INIT;
	char *meta = path_of(".gitaly-metadata"), *text = NULL, *text2 = NULL, *id = NULL;
	struct stat st1, st2;
	mode_t mode;
	(void)state;

	assert_int_equal(storage_setup(tmp, &err), 0);
	assert_true(is_dir("+gitaly/tmp", &mode));
	assert_int_equal(mode, 0700);
	assert_true(is_dir("+gitaly/cache", NULL));
	assert_true(is_dir("+gitaly/state", NULL));

	assert_int_equal(fsutil_read_file(meta, 4096, &text, NULL, &err), 0);
	assert_int_equal(strlen(text), strlen("{\"gitaly_filesystem_id\":\"\"}\n") + 36);
	assert_int_equal(strncmp(text, "{\"gitaly_filesystem_id\":\"", 25), 0);
	assert_string_equal(text + 25 + 36, "\"}\n");
	assert_int_equal(storage_filesystem_id(tmp, &id, &err), 0);
	assert_uuid4(id);
	assert_int_equal(memcmp(text + 25, id, 36), 0);
	assert_int_equal(lstat(meta, &st1), 0);

	/* a second start changes nothing */
	assert_int_equal(storage_setup(tmp, &err), 0);
	assert_int_equal(fsutil_read_file(meta, 4096, &text2, NULL, &err), 0);
	assert_string_equal(text, text2);
	assert_int_equal(lstat(meta, &st2), 0);
	assert_int_equal(st1.st_ino, st2.st_ino);
	assert_int_equal(st1.st_mtim.tv_sec, st2.st_mtim.tv_sec);
	assert_int_equal(st1.st_mtim.tv_nsec, st2.st_mtim.tv_nsec);

	/* no temp files left behind: only the metadata file and +gitaly */
	{
		DIR *d = opendir(tmp);
		struct dirent *de;
		int count = 0;

		assert_non_null(d);
		while ((de = readdir(d))) {
			if (!strcmp(de->d_name, ".") || !strcmp(de->d_name, ".."))
				continue;
			if (strcmp(de->d_name, ".gitaly-metadata") && strcmp(de->d_name, "+gitaly"))
				fail_msg("unexpected entry %s", de->d_name);
			count++;
		}
		closedir(d);
		assert_int_equal(count, 2);
	}
	free(text);
	free(text2);
	free(id);
	free(meta);
}

static void test_existing_metadata_kept(void **state)
{
	struct error err = ERROR_INIT;
	char *meta = path_of(".gitaly-metadata"), *id = NULL;
	static const char custom[] = "{\"gitaly_filesystem_id\": \"my-own-id\", \"x\": 1}";
	(void)state;

	assert_int_equal(fsutil_write_atomic(meta, custom, strlen(custom), 0600, &err), 0);
	assert_int_equal(storage_setup(tmp, &err), 0);
	assert_int_equal(storage_filesystem_id(tmp, &id, &err), 0);
	assert_string_equal(id, "my-own-id");
	free(id);
	free(meta);
}

static void test_metadata_errors(void **state)
{
	struct error err = ERROR_INIT;
	char *meta = path_of(".gitaly-metadata"), *id = NULL, *missing = path_of("nope");
	(void)state;

	assert_int_equal(storage_filesystem_id(tmp, &id, &err), -1);
	assert_int_equal(err.code, STATUS_NOT_FOUND);
	assert_null(id);
	assert_int_equal(fsutil_write_atomic(meta, "not json", 8, 0644, &err), 0);
	assert_int_equal(storage_filesystem_id(tmp, &id, &err), -1);
	assert_int_equal(err.code, STATUS_INTERNAL);
	assert_int_equal(fsutil_write_atomic(meta, "[1]", 3, 0644, &err), 0);
	assert_int_equal(storage_filesystem_id(tmp, &id, &err), -1);
	assert_int_equal(err.code, STATUS_INTERNAL);

	assert_int_equal(storage_setup(missing, &err), -1);
	assert_int_equal(err.code, STATUS_NOT_FOUND);
	error_release(&err);
	free(meta);
	free(missing);
}

static void age(const char *rel, time_t seconds_ago)
{
	char *p = path_of(rel);
	struct timespec ts[2];

	ts[0].tv_sec = ts[1].tv_sec = time(NULL) - seconds_ago;
	ts[0].tv_nsec = ts[1].tv_nsec = 0;
	assert_int_equal(utimensat(AT_FDCWD, p, ts, AT_SYMLINK_NOFOLLOW), 0);
	free(p);
}

static void write_file(const char *rel)
{
	struct error err = ERROR_INIT;
	char *p = path_of(rel);
	assert_int_equal(fsutil_write_atomic(p, "x", 1, 0644, &err), 0);
	free(p);
}

static void test_clean_tmp_by_age(void **state)
{
	struct error err = ERROR_INIT;
	char *p, *target;
	size_t removed = 99;
	const time_t day = 24 * 3600;
	(void)state;

	assert_int_equal(storage_setup(tmp, &err), 0);
	/* outside data reachable only through symlinks */
	assert_int_equal(fsutil_mkdir_p((p = path_of("outside/dir")), 0755, &err), 0);
	free(p);
	write_file("outside/dir/keep");
	write_file("outside/file");

	/* an old tree with nested content and a symlink to outside */
	assert_int_equal(fsutil_mkdir_p((p = path_of("+gitaly/tmp/quarantine-old/objects/ab")), 0755, &err), 0);
	free(p);
	write_file("+gitaly/tmp/quarantine-old/objects/ab/cdef");
	p = path_of("+gitaly/tmp/quarantine-old/link");
	target = path_of("outside/dir");
	assert_int_equal(symlink(target, p), 0);
	free(p);
	free(target);
	age("+gitaly/tmp/quarantine-old", 8 * day);
	/* an old plain file and an old symlink */
	write_file("+gitaly/tmp/old-file");
	age("+gitaly/tmp/old-file", 8 * day);
	p = path_of("+gitaly/tmp/old-link");
	target = path_of("outside/file");
	assert_int_equal(symlink(target, p), 0);
	free(p);
	free(target);
	age("+gitaly/tmp/old-link", 30 * day);
	/* recent ones stay, even with old content inside */
	assert_int_equal(fsutil_mkdir_p((p = path_of("+gitaly/tmp/repo-new")), 0755, &err), 0);
	free(p);
	write_file("+gitaly/tmp/repo-new/old-inside");
	age("+gitaly/tmp/repo-new/old-inside", 30 * day);
	write_file("+gitaly/tmp/six-days");
	age("+gitaly/tmp/six-days", 6 * day);

	assert_int_equal(storage_clean_tmp(tmp, STORAGE_TMP_MAX_AGE_SECONDS, &removed, &err), 0);
	assert_int_equal(removed, 3);
	assert_false(exists("+gitaly/tmp/quarantine-old"));
	assert_false(exists("+gitaly/tmp/old-file"));
	assert_false(exists("+gitaly/tmp/old-link"));
	assert_true(exists("+gitaly/tmp/repo-new/old-inside"));
	assert_true(exists("+gitaly/tmp/six-days"));
	assert_true(exists("outside/dir/keep"));
	assert_true(exists("outside/file"));
	assert_true(is_dir("+gitaly/tmp", NULL));

	/* max age 0 sweeps what is left */
	age("+gitaly/tmp/repo-new", 10);
	age("+gitaly/tmp/six-days", 10);
	assert_int_equal(storage_clean_tmp(tmp, 0, &removed, &err), 0);
	assert_int_equal(removed, 2);
	assert_false(exists("+gitaly/tmp/repo-new"));
}

static void test_clean_tmp_symlinked_tmp(void **state)
{
	struct error err = ERROR_INIT;
	char *p, *target;
	size_t removed = 0;
	(void)state;

	/* no +gitaly at all: nothing to do */
	assert_int_equal(storage_clean_tmp(tmp, 0, &removed, &err), 0);
	assert_int_equal(removed, 0);

	/* +gitaly/tmp being a symlink elsewhere must not be swept */
	assert_int_equal(fsutil_mkdir_p((p = path_of("elsewhere")), 0755, &err), 0);
	free(p);
	write_file("elsewhere/precious");
	age("elsewhere/precious", 100 * 24 * 3600);
	assert_int_equal(fsutil_mkdir_p((p = path_of("+gitaly")), 0755, &err), 0);
	free(p);
	p = path_of("+gitaly/tmp");
	target = path_of("elsewhere");
	assert_int_equal(symlink(target, p), 0);
	free(p);
	free(target);
	assert_int_equal(storage_clean_tmp(tmp, 0, &removed, &err), -1);
	assert_int_equal(err.code, STATUS_INTERNAL);
	assert_true(exists("elsewhere/precious"));
	error_release(&err);
}

static void test_tempdir(void **state)
{
	struct error err = ERROR_INIT;
	char *dir = NULL, *prefix = NULL;
	struct stat st;
	(void)state;

	assert_int_equal(storage_tempdir(tmp, "repo-", &dir, &err), 0);
	assert_true(asprintf(&prefix, "%s/+gitaly/tmp/repo-", tmp) > 0);
	assert_int_equal(strncmp(dir, prefix, strlen(prefix)), 0);
	assert_int_equal(strlen(dir), strlen(prefix) + 6);
	assert_int_equal(stat(dir, &st), 0);
	assert_true(S_ISDIR(st.st_mode));
	assert_int_equal(st.st_mode & 0777, 0700);
	free(dir);
	assert_int_equal(storage_tempdir(tmp, "../x", &dir, &err), -1);
	assert_int_equal(err.code, STATUS_INVALID_ARGUMENT);
	assert_null(dir);
	error_release(&err);
	free(prefix);
}

static void test_fs_type(void **state)
{
	(void)state;
	assert_string_equal(storage_fs_type_name(0xef53), "EXT_2_3_4");
	assert_string_equal(storage_fs_type_name(0x58465342), "XFS");
	assert_string_equal(storage_fs_type_name(0x9123683e), "BTRFS");
	assert_string_equal(storage_fs_type_name(0x6969), "NFS");
	assert_string_equal(storage_fs_type_name(0x01021994), "TMPFS");
	assert_string_equal(storage_fs_type_name(0x794c7630), "OVERLAYFS");
	assert_string_equal(storage_fs_type_name(0x12345678), "unknown");
	assert_string_equal(storage_fs_type("/proc"), "PROC");
	assert_string_equal(storage_fs_type("/nonexistent/path"), "unknown");
	assert_string_not_equal(storage_fs_type(tmp), "");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_setup_and_metadata_once, setup, teardown),
		cmocka_unit_test_setup_teardown(test_existing_metadata_kept, setup, teardown),
		cmocka_unit_test_setup_teardown(test_metadata_errors, setup, teardown),
		cmocka_unit_test_setup_teardown(test_clean_tmp_by_age, setup, teardown),
		cmocka_unit_test_setup_teardown(test_clean_tmp_symlinked_tmp, setup, teardown),
		cmocka_unit_test_setup_teardown(test_tempdir, setup, teardown),
		cmocka_unit_test(test_fs_type),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
