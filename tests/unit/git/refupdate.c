/*
 * git update-ref --stdin transactions: creations, forced and checked
 * updates, deletions, all-or-nothing on failure, abort rolling back, and
 * the classification of git's refusals (real git stderr for locked refs,
 * stale old values, missing objects, existing refs; the remaining shapes
 * from upstream's patterns).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>

#include "base/error.h"
#include "git/refupdate.h"

static char tmp[] = "/tmp/refupdate-XXXXXX";
static char repo[128];
static char c1[64], c2[64];

/* Runs a shell command, capturing stdout (trailing newlines cut). */
static int sh(char *out, size_t cap, const char *fmt, ...)
{
	char *cmd = NULL;
	va_list ap;
	int p[2], status = -1;
	size_t len = 0;
	pid_t pid;

	va_start(ap, fmt);
	assert_true(vasprintf(&cmd, fmt, ap) > 0);
	va_end(ap);
	assert_int_equal(pipe(p), 0);
	pid = fork();
	if (pid == 0) {
		dup2(p[1], 1);
		close(p[0]);
		execl("/bin/sh", "sh", "-c", cmd, (char *)NULL);
		_exit(127);
	}
	close(p[1]);
	for (;;) {
		char buf[4096];
		ssize_t n = read(p[0], buf, sizeof(buf));

		if (n <= 0)
			break;
		if (out && len + (size_t)n < cap) {
			memcpy(out + len, buf, (size_t)n);
			len += (size_t)n;
		}
	}
	if (out) {
		out[len] = '\0';
		while (len && out[len - 1] == '\n')
			out[--len] = '\0';
	}
	close(p[0]);
	waitpid(pid, &status, 0);
	free(cmd);
	return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

/* The value of ref, or "" when missing. */
static void ref_value(const char *ref, char *out)
{
	if (sh(out, 64, "git -C %s rev-parse -q --verify %s", repo, ref) != 0)
		out[0] = '\0';
}

static int group_setup(void **state)
{
	(void)state;
	if (!mkdtemp(tmp))
		return -1;
	snprintf(repo, sizeof(repo), "%s/r.git", tmp);
	if (sh(NULL, 0, "git init -q --bare %s", repo) != 0)
		return -1;
	if (sh(c1, sizeof(c1),
	       "cd %s && t=$(git mktree </dev/null) && GIT_AUTHOR_NAME=a GIT_AUTHOR_EMAIL=a@x "
	       "GIT_COMMITTER_NAME=a GIT_COMMITTER_EMAIL=a@x git commit-tree -m one $t",
	       repo) != 0)
		return -1;
	if (sh(c2, sizeof(c2),
	       "cd %s && t=$(git mktree </dev/null) && GIT_AUTHOR_NAME=a GIT_AUTHOR_EMAIL=a@x "
	       "GIT_COMMITTER_NAME=a GIT_COMMITTER_EMAIL=a@x git commit-tree -p %s -m two $t",
	       repo, c1) != 0)
		return -1;
	return 0;
}

static int group_teardown(void **state)
{
	(void)state;
	return sh(NULL, 0, "rm -rf %s", tmp);
}

static void test_create_update_delete(void **state)
{
	struct refupdate *u = NULL;
	struct error err = ERROR_INIT;
	char v[64];

	(void)state;
	assert_int_equal(refupdate_begin(repo, NULL, &u, &err), 0);
	assert_int_equal(refupdate_create(u, "refs/heads/a", c1, &err), 0);
	assert_int_equal(refupdate_update(u, "refs/heads/b", c2, NULL, &err), 0);
	assert_int_equal(refupdate_prepare(u, &err), 0);
	/* Locks are held but nothing is visible before commit. */
	ref_value("refs/heads/a", v);
	assert_string_equal(v, "");
	assert_int_equal(refupdate_commit(u, &err), 0);
	refupdate_free(u);
	ref_value("refs/heads/a", v);
	assert_string_equal(v, c1);
	ref_value("refs/heads/b", v);
	assert_string_equal(v, c2);

	assert_int_equal(refupdate_begin(repo, NULL, &u, &err), 0);
	assert_int_equal(refupdate_update(u, "refs/heads/a", c2, c1, &err), 0);
	assert_int_equal(refupdate_delete(u, "refs/heads/b", &err), 0);
	assert_int_equal(refupdate_commit(u, &err), 0); /* commit without prepare */
	refupdate_free(u);
	ref_value("refs/heads/a", v);
	assert_string_equal(v, c2);
	ref_value("refs/heads/b", v);
	assert_string_equal(v, "");
	error_release(&err);
}

static void test_abort_rolls_back(void **state)
{
	struct refupdate *u = NULL;
	struct error err = ERROR_INIT;
	char v[64];

	(void)state;
	assert_int_equal(refupdate_begin(repo, NULL, &u, &err), 0);
	assert_int_equal(refupdate_create(u, "refs/heads/aborted", c1, &err), 0);
	assert_int_equal(refupdate_prepare(u, &err), 0);
	refupdate_abort(u);
	refupdate_free(u);
	ref_value("refs/heads/aborted", v);
	assert_string_equal(v, "");
	/* no lock left behind */
	assert_int_not_equal(sh(NULL, 0, "test -e %s/refs/heads/aborted.lock", repo), 0);
	/* freeing an open transaction aborts it too */
	assert_int_equal(refupdate_begin(repo, NULL, &u, &err), 0);
	assert_int_equal(refupdate_create(u, "refs/heads/aborted", c1, &err), 0);
	refupdate_free(u);
	ref_value("refs/heads/aborted", v);
	assert_string_equal(v, "");
}

static void test_mismatch_is_atomic(void **state)
{
	struct refupdate *u = NULL;
	struct error err = ERROR_INIT;
	const struct refupdate_failure *f;
	char v[64];

	(void)state;
	assert_int_equal(sh(NULL, 0, "git -C %s update-ref refs/heads/m %s", repo, c2), 0);
	assert_int_equal(refupdate_begin(repo, NULL, &u, &err), 0);
	assert_int_equal(refupdate_create(u, "refs/heads/other", c1, &err), 0);
	assert_int_equal(refupdate_update(u, "refs/heads/m", c1, c1, &err), 0);
	assert_int_equal(refupdate_commit(u, &err), -1);
	assert_int_equal(err.code, STATUS_INTERNAL);
	assert_string_equal(err.message, "reference does not point to expected object");
	f = refupdate_failure(u);
	assert_int_equal(f->kind, REFUPDATE_FAIL_MISMATCH);
	assert_string_equal(f->ref, "refs/heads/m");
	assert_string_equal(f->expected, c1);
	assert_string_equal(f->actual, c2);
	refupdate_free(u);
	ref_value("refs/heads/other", v);
	assert_string_equal(v, ""); /* nothing of the transaction applied */
	error_release(&err);
}

static void test_real_refusals(void **state)
{
	struct refupdate *u = NULL;
	struct error err = ERROR_INIT;
	const struct refupdate_failure *f;

	(void)state;
	/* a held lock */
	assert_int_equal(sh(NULL, 0, "git -C %s update-ref refs/heads/l %s && touch %s/refs/heads/l.lock",
			    repo, c1, repo), 0);
	assert_int_equal(refupdate_begin(repo, NULL, &u, &err), 0);
	assert_int_equal(refupdate_update(u, "refs/heads/l", c2, NULL, &err), 0);
	assert_int_equal(refupdate_prepare(u, &err), -1);
	f = refupdate_failure(u);
	assert_int_equal(f->kind, REFUPDATE_FAIL_LOCKED);
	assert_string_equal(f->ref, "refs/heads/l");
	assert_string_equal(err.message, "reference is already locked");
	/* the transaction is dead afterwards */
	assert_int_equal(refupdate_commit(u, &err), -1);
	refupdate_free(u);
	assert_int_equal(sh(NULL, 0, "rm %s/refs/heads/l.lock", repo), 0);

	/* a missing object */
	assert_int_equal(refupdate_begin(repo, NULL, &u, &err), 0);
	assert_int_equal(refupdate_update(u, "refs/heads/n", "1111111111111111111111111111111111111111",
					  NULL, &err), 0);
	assert_int_equal(refupdate_commit(u, &err), -1);
	f = refupdate_failure(u);
	assert_int_equal(f->kind, REFUPDATE_FAIL_NONEXISTENT_OBJECT);
	assert_string_equal(f->ref, "refs/heads/n");
	assert_string_equal(f->oid, "1111111111111111111111111111111111111111");
	refupdate_free(u);

	/* creating an existing ref */
	assert_int_equal(refupdate_begin(repo, NULL, &u, &err), 0);
	assert_int_equal(refupdate_create(u, "refs/heads/l", c1, &err), 0);
	assert_int_equal(refupdate_commit(u, &err), -1);
	f = refupdate_failure(u);
	assert_int_equal(f->kind, REFUPDATE_FAIL_ALREADY_EXISTS);
	assert_string_equal(f->ref, "refs/heads/l");
	refupdate_free(u);

	/* a file/directory conflict */
	assert_int_equal(refupdate_begin(repo, NULL, &u, &err), 0);
	assert_int_equal(refupdate_create(u, "refs/heads/l/sub", c1, &err), 0);
	assert_int_equal(refupdate_commit(u, &err), -1);
	f = refupdate_failure(u);
	assert_int_equal(f->kind, REFUPDATE_FAIL_FILE_DIR_CONFLICT);
	assert_string_equal(f->ref, "refs/heads/l/sub");
	assert_string_equal(f->other, "refs/heads/l");
	refupdate_free(u);

	/* the same ref twice */
	assert_int_equal(refupdate_begin(repo, NULL, &u, &err), 0);
	assert_int_equal(refupdate_update(u, "refs/heads/twice", c1, NULL, &err), 0);
	assert_int_equal(refupdate_update(u, "refs/heads/twice", c2, NULL, &err), 0);
	assert_int_equal(refupdate_commit(u, &err), -1);
	assert_int_equal(refupdate_failure(u)->kind, REFUPDATE_FAIL_MULTIPLE_UPDATES);
	assert_string_equal(refupdate_failure(u)->ref, "refs/heads/twice");
	refupdate_free(u);

	/* a bad repository path fails to start */
	assert_int_equal(refupdate_begin("/nonexistent/repo.git", NULL, &u, &err), -1);
	assert_null(u);
	assert_int_equal(err.code, STATUS_INTERNAL);
	error_release(&err);
}

static void test_parse_shapes(void **state)
{
	struct refupdate_failure f = { 0 };

	(void)state;
	refupdate_parse_stderr("fatal: prepare: cannot lock ref 'refs/heads/x': Unable to create "
			       "'/r/refs/heads/x.lock': File exists.\n\nAnother git process seems "
			       "to be running in this repository\n", &f);
	assert_int_equal(f.kind, REFUPDATE_FAIL_LOCKED);
	assert_string_equal(f.ref, "refs/heads/x");

	refupdate_parse_stderr("fatal: invalid ref format: refs/heads/a..b\n", &f);
	assert_int_equal(f.kind, REFUPDATE_FAIL_INVALID_FORMAT);
	assert_string_equal(f.ref, "refs/heads/a..b");

	refupdate_parse_stderr("error: Unable to create '/r/packed-refs.lock': File exists.\n", &f);
	assert_int_equal(f.kind, REFUPDATE_FAIL_PACKED_REFS_LOCKED);

	refupdate_parse_stderr("fatal: commit: cannot lock ref 'refs/heads/a': cannot process "
			       "'refs/heads/a' and 'refs/heads/a/b' at the same time\n", &f);
	assert_int_equal(f.kind, REFUPDATE_FAIL_IN_TX_CONFLICT);
	assert_string_equal(f.ref, "refs/heads/a");
	assert_string_equal(f.other, "refs/heads/a/b");

	refupdate_parse_stderr("fatal: commit: cannot update ref 'refs/heads/t': trying to write "
			       "non-commit object 1234 to branch 'refs/heads/t'\n", &f);
	assert_int_equal(f.kind, REFUPDATE_FAIL_NON_COMMIT);
	assert_string_equal(f.oid, "1234");
	assert_string_equal(f.ref, "refs/heads/t");

	/* unknown text, and text with trailing lines where upstream anchors */
	refupdate_parse_stderr("fatal: something else\n", &f);
	assert_int_equal(f.kind, REFUPDATE_FAIL_OTHER);
	assert_string_equal(f.stderr_text, "fatal: something else\n");
	refupdate_parse_stderr("fatal: x: cannot lock ref 'r': reference already exists\nmore\n", &f);
	assert_int_equal(f.kind, REFUPDATE_FAIL_OTHER);
	refupdate_parse_stderr("", &f);
	assert_int_equal(f.kind, REFUPDATE_FAIL_OTHER);
	refupdate_failure_release(&f);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_create_update_delete),
		cmocka_unit_test(test_abort_rolls_back),
		cmocka_unit_test(test_mismatch_is_atomic),
		cmocka_unit_test(test_real_refusals),
		cmocka_unit_test(test_parse_shapes),
	};

	return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
