/*
 * The cat-file reader of SHA-256 repositories and its place in the handle
 * cache: answers compared with the git CLI's (full, abbreviated and
 * path-qualified revisions, missing and malformed ones, contents and the
 * size cap), a reader whose process died is broken and dropped, the
 * extensions.objectFormat detection, and repo_cache_get_handle giving a
 * reader for SHA-256 and libgit2 for SHA-1.
 */
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "base/error.h"
#include "git/catfile.h"
#include "git/repo_cache.h"
#include "../support/shell.h"

#define GITENV                                                                                \
	"GIT_CONFIG_GLOBAL=/dev/null GIT_CONFIG_SYSTEM=/dev/null GIT_AUTHOR_NAME=A "            \
	"GIT_AUTHOR_EMAIL=a@example.com GIT_COMMITTER_NAME=C GIT_COMMITTER_EMAIL=c@example.com " \
	"GIT_AUTHOR_DATE='1700000000 +0000' GIT_COMMITTER_DATE='1700000000 +0000' "

static char tmp[] = "/tmp/catfile-XXXXXX";
static char repo256[128], repo1[128];
static char blob[80], tree[80], commit[80];

static void git_out(char *out, size_t cap, const char *repo, const char *args)
{
	assert_int_equal(test_shell(out, cap, 1, GITENV "git -C %s %s", repo, args), 0);
}

static int group_setup(void **state)
{
	(void)state;
	if (!mkdtemp(tmp))
		return -1;
	snprintf(repo256, sizeof(repo256), "%s/r256.git", tmp);
	snprintf(repo1, sizeof(repo1), "%s/r1.git", tmp);
	if (test_shell(NULL, 0, 0,
		       GITENV "git init -q --bare --object-format=sha256 -b main %s && "
		       "printf 'hello\\n' | git -C %s hash-object -w --stdin >/dev/null && "
		       "T=$(printf '100644 blob %%s\\tfile.txt\\n' "
		       "$(printf 'hello\\n' | git -C %s hash-object -w --stdin) | git -C %s mktree) && "
		       "C=$(git -C %s commit-tree $T -m first) && git -C %s update-ref refs/heads/main $C && "
		       GITENV "git init -q --bare -b main %s",
		       repo256, repo256, repo256, repo256, repo256, repo256, repo1) != 0)
		return -1;
	return 0;
}

static int group_teardown(void **state)
{
	(void)state;
	repo_cache_shutdown();
	return test_shell(NULL, 0, 0, "rm -rf %s", tmp) == 0 ? 0 : -1;
}

static void test_info_and_contents_match_git(void **state)
{
	struct error err = ERROR_INIT;
	struct catfile *cf = NULL;
	char oid[CATFILE_OID_MAX], *data = NULL, abbrev[16];
	git_object_t type;
	int64_t size;
	size_t len;

	(void)state;
	git_out(blob, sizeof(blob), repo256, "rev-parse main:file.txt");
	git_out(tree, sizeof(tree), repo256, "rev-parse main^{tree}");
	git_out(commit, sizeof(commit), repo256, "rev-parse main");
	assert_int_equal(strlen(commit), 64);
	assert_int_equal(catfile_open(repo256, NULL, NULL, &cf, &err), 0);

	assert_int_equal(catfile_info(cf, "main", oid, &type, &size, &err), 1);
	assert_string_equal(oid, commit);
	assert_int_equal(type, GIT_OBJECT_COMMIT);
	assert_int_equal(catfile_info(cf, "main:file.txt", oid, &type, &size, &err), 1);
	assert_string_equal(oid, blob);
	assert_int_equal(type, GIT_OBJECT_BLOB);
	assert_int_equal(size, 6);
	assert_int_equal(catfile_info(cf, "main^{tree}", oid, &type, &size, &err), 1);
	assert_string_equal(oid, tree);
	assert_int_equal(type, GIT_OBJECT_TREE);
	/* An abbreviation resolves to the full 64-digit id. */
	memcpy(abbrev, commit, 12);
	abbrev[12] = '\0';
	assert_int_equal(catfile_info(cf, abbrev, oid, &type, &size, &err), 1);
	assert_string_equal(oid, commit);

	/* Missing: unknown ids (of either length), bad names, newlines. */
	assert_int_equal(catfile_info(cf, "e" "ee0000000000000000000000000000000000000000000000000000000000000",
				      oid, &type, &size, &err), 0);
	assert_int_equal(catfile_info(cf, "eeee000000000000000000000000000000000000", oid, &type,
				      &size, &err), 0);
	assert_int_equal(catfile_info(cf, "refs/heads/nope", oid, &type, &size, &err), 0);
	assert_int_equal(catfile_info(cf, "main\ninfo main", oid, &type, &size, &err), 0);
	assert_int_equal(catfile_info(cf, "", oid, &type, &size, &err), 0);
	assert_null(err.message);
	assert_true(catfile_usable(cf));

	assert_int_equal(catfile_contents(cf, blob, oid, &type, &data, &len, 0, &err), 1);
	assert_int_equal(len, 6);
	assert_memory_equal(data, "hello\n", 6);
	free(data);
	assert_int_equal(catfile_contents(cf, "main", oid, &type, &data, &len, 0, &err), 1);
	assert_int_equal(type, GIT_OBJECT_COMMIT);
	assert_memory_equal(data, "tree ", 5);
	assert_memory_equal(data + 5, tree, 64);
	free(data);
	/* Over the cap: refused, and the reader stays in step. */
	assert_int_equal(catfile_contents(cf, blob, oid, &type, &data, &len, 5, &err), -1);
	assert_int_equal(err.code, STATUS_INTERNAL);
	error_release(&err);
	assert_true(catfile_usable(cf));
	assert_int_equal(catfile_info(cf, "main", oid, &type, &size, &err), 1);
	assert_string_equal(oid, commit);
	catfile_close(cf);
}

static void test_dead_process_breaks_the_reader(void **state)
{
	struct error err = ERROR_INIT;
	struct catfile *cf = NULL;
	char oid[CATFILE_OID_MAX];
	git_object_t type;
	int64_t size;

	(void)state;
	assert_int_equal(catfile_open(repo256, NULL, NULL, &cf, &err), 0);
	assert_int_equal(catfile_info(cf, "main", oid, &type, &size, &err), 1);
	/* The process dies under the reader. */
	assert_int_equal(kill(catfile_pid(cf), SIGKILL), 0);
	assert_int_equal(catfile_info(cf, "main", oid, &type, &size, &err), -1);
	assert_int_equal(err.code, STATUS_INTERNAL);
	assert_false(catfile_usable(cf));
	error_release(&err);
	/* Broken stays broken. */
	assert_int_equal(catfile_info(cf, "main", oid, &type, &size, &err), -1);
	error_release(&err);
	catfile_close(cf);
}

static void test_object_format_detection(void **state)
{
	char dir[160];

	(void)state;
	assert_true(repo_cache_is_sha256(repo256));
	assert_false(repo_cache_is_sha256(repo1));
	assert_false(repo_cache_is_sha256("/nonexistent/path"));
	/* git's config syntax: case-insensitive names and values, spacing. */
	snprintf(dir, sizeof(dir), "%s/hand.git", tmp);
	assert_int_equal(test_shell(NULL, 0, 0,
				    "mkdir -p %s && printf '[core]\\n\\tbare = true\\n[Extensions]\\n"
				    "  ObjectFormat=SHA256  \\n' > %s/config", dir, dir), 0);
	assert_true(repo_cache_is_sha256(dir));
	/* The key outside its section does not count. */
	assert_int_equal(test_shell(NULL, 0, 0,
				    "printf '[core]\\n\\tobjectformat = sha256\\n' > %s/config", dir), 0);
	assert_false(repo_cache_is_sha256(dir));
}

static void test_handles_by_format(void **state)
{
	struct error err = ERROR_INIT;
	struct repo_handle h;
	git_repository *lg = NULL;
	char oid[CATFILE_OID_MAX];
	git_object_t type;
	int64_t size;

	(void)state;
	repo_cache_clear();
	assert_int_equal(repo_cache_get_handle(repo256, NULL, NULL, &h, &err), 0);
	assert_null(h.repo);
	assert_non_null(h.cf);
	assert_int_equal(catfile_info(h.cf, "main", oid, &type, &size, &err), 1);
	repo_cache_put_handle(&h);
	assert_null(h.cf);
	assert_int_equal(repo_cache_idle_count(), 1);
	/* The same reader (process) is reused. */
	assert_int_equal(repo_cache_get_handle(repo256, NULL, NULL, &h, &err), 0);
	assert_non_null(h.cf);
	assert_int_equal(repo_cache_idle_count(), 0);
	repo_cache_put_handle(&h);

	/* The libgit2-only entry point refuses SHA-256 with Internal. */
	assert_int_equal(repo_cache_get(repo256, NULL, NULL, &lg, &err), -1);
	assert_int_equal(err.code, STATUS_INTERNAL);
	assert_non_null(strstr(err.message, "sha256"));
	error_release(&err);

	assert_int_equal(repo_cache_get_handle(repo1, NULL, NULL, &h, &err), 0);
	assert_non_null(h.repo);
	assert_null(h.cf);
	repo_cache_put_handle(&h);
	repo_cache_clear();
	assert_int_equal(repo_cache_idle_count(), 0);
}

static void test_idle_reader_reaped_without_traffic(void **state)
{
	struct error err = ERROR_INIT;
	struct repo_handle h;
	pid_t pid;
	int i;

	(void)state;
	repo_cache_clear();
	repo_cache_set_ttl_ms(100);
	assert_int_equal(repo_cache_get_handle(repo256, NULL, NULL, &h, &err), 0);
	pid = catfile_pid(h.cf);
	repo_cache_put_handle(&h);
	assert_int_equal(repo_cache_idle_count(), 1);
	/* No get or put from here on: the reaper alone closes it. */
	for (i = 0; i < 50 && repo_cache_idle_count(); i++)
		usleep(100 * 1000);
	assert_int_equal(repo_cache_idle_count(), 0);
	/* The process was waited for: no such child any more. */
	assert_int_equal(kill(pid, 0), -1);
	repo_cache_set_ttl_ms(-1);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_info_and_contents_match_git),
		cmocka_unit_test(test_dead_process_breaks_the_reader),
		cmocka_unit_test(test_object_format_detection),
		cmocka_unit_test(test_handles_by_format),
		cmocka_unit_test(test_idle_reader_reaped_without_traffic),
	};

	return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
