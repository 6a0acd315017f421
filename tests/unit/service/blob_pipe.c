/*
 * The loop BlobService's List* handlers share (blob_scan_run), on a real
 * repository and a real git: every line reaches the callback, the limit
 * counts only what the callback added and stops git early without an
 * error, a failing line or a cancelled call stops with that error, and a
 * failing git becomes upstream's "<what>: exit status N, stderr: ..." with
 * the handler's prefix.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>

#include <cmocka.h>

#include "git/command.h"
#include "service/blob_internal.h"
#include "fake_call.h"
#include "../support/shell.h"

static char repo[256];

static int setup(void **state)
{
	char dir[] = "/tmp/blob-pipe-XXXXXX";

	(void)state;
	if (!mkdtemp(dir))
		return -1;
	snprintf(repo, sizeof(repo), "%s/r.git", dir);
	/* Three blobs, a tree and a commit: five objects. */
	return test_shell(NULL, 0, 0,
			  "set -e; cd %s; git init -q w; cd w; printf a >a; printf b >b; "
			  "printf c >c; git add .; git -c user.name=t -c user.email=t@x commit "
			  "-qm m; git clone -q --bare . %s",
			  dir, repo) == 0 ? 0 : -1;
}

static int teardown(void **state)
{
	(void)state;
	return test_shell(NULL, 0, 0, "rm -rf %.*s", (int)(strlen(repo) - 5), repo);
}

/* Records the lines; returns `add` for each, or fails at line `fail_at`. */
struct recorder {
	int add, fail_at, seen;
	char lines[16][160];
};

static int record(void *arg, const char *line, size_t len, struct error *err)
{
	struct recorder *r = arg;

	if (r->seen < 16)
		snprintf(r->lines[r->seen], sizeof(r->lines[0]), "%.*s", (int)len, line);
	r->seen++;
	if (r->seen == r->fail_at)
		return error_set(err, STATUS_INTERNAL, "bad line %d", r->seen);
	return r->add;
}

static struct git_cmd *all_objects(void)
{
	struct git_cmd *cmd = git_cmd_new(repo, "cat-file");

	git_cmd_flag(cmd, "--batch-check");
	git_cmd_flag(cmd, "--batch-all-objects");
	return cmd;
}

static void test_every_line(void **state)
{
	struct rpc_call call = { 0 };
	struct recorder r = { .add = 1 };
	struct blob_scan s = { record, &r, 0, "cat-file failed", NULL };
	struct error err = { 0 };
	char want[1024];
	struct strbuf got = STRBUF_INIT;

	(void)state;
	assert_int_equal(blob_scan_run(&call, all_objects(), &s, &err), 0);
	assert_int_equal(test_shell(want, sizeof(want), 1,
				    "git --git-dir=%s cat-file --batch-check --batch-all-objects",
				    repo),
			 0);
	assert_int_equal(r.seen, 5);
	for (int i = 0; i < r.seen; i++)
		strbuf_addf(&got, "%s%s", i ? "\n" : "", r.lines[i]);
	assert_string_equal(got.buf, want);
	strbuf_release(&got);
}

static void test_limit_counts_added_items(void **state)
{
	struct rpc_call call = { 0 };
	struct recorder added = { .add = 1 }, skipped = { .add = 0 };
	struct blob_scan s = { record, &added, 2, "cat-file failed", NULL };
	struct error err = { 0 };

	(void)state;
	/* Stopping at the limit kills git; that is not an error. */
	assert_int_equal(blob_scan_run(&call, all_objects(), &s, &err), 0);
	assert_int_equal(added.seen, 2);
	/* Lines that add nothing do not count toward it. */
	s.ctx = &skipped;
	assert_int_equal(blob_scan_run(&call, all_objects(), &s, &err), 0);
	assert_int_equal(skipped.seen, 5);
	/* Nothing left behind: no child to reap. */
	assert_int_equal(waitpid(-1, NULL, WNOHANG), -1);
}

static void test_line_error_stops(void **state)
{
	struct rpc_call call = { 0 };
	struct recorder r = { .add = 1, .fail_at = 2 };
	struct blob_scan s = { record, &r, 0, "cat-file failed", "processing blobs" };
	struct error err = { 0 };

	(void)state;
	assert_int_equal(blob_scan_run(&call, all_objects(), &s, &err), -1);
	assert_int_equal(r.seen, 2);
	assert_int_equal(err.code, STATUS_INTERNAL);
	/* The handler's own message, not prefixed by the exit prefix. */
	assert_string_equal(err.message, "bad line 2");
	assert_int_equal(waitpid(-1, NULL, WNOHANG), -1);
	error_release(&err);
}

static void test_cancelled(void **state)
{
	struct rpc_call call = { .cancel_after_sends = 1, .n_sent = 1 };
	struct recorder r = { .add = 0 };
	struct blob_scan s = { record, &r, 0, "cat-file failed", NULL };
	struct error err = { 0 };

	(void)state;
	assert_int_equal(blob_scan_run(&call, all_objects(), &s, &err), -1);
	assert_int_equal(r.seen, 1);
	assert_int_equal(err.code, STATUS_CANCELLED);
	assert_string_equal(err.message, "context canceled");
	error_release(&err);
}

static void test_failing_git(void **state)
{
	struct rpc_call call = { 0 };
	struct recorder r = { .add = 1 };
	struct blob_scan s = { record, &r, 0, "rev-list pipeline command", "processing blobs" };
	struct error err = { 0 };
	struct git_cmd *cmd = git_cmd_new(repo, "rev-list");

	(void)state;
	git_cmd_arg(cmd, "no-such-revision");
	assert_int_equal(blob_scan_run(&call, cmd, &s, &err), -1);
	assert_int_equal(r.seen, 0);
	assert_int_equal(err.code, STATUS_INTERNAL);
	assert_non_null(strstr(err.message, "processing blobs: rev-list pipeline command: exit status "
					"128, stderr: \"fatal: ambiguous argument "));
	error_release(&err);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_every_line),
		cmocka_unit_test(test_limit_counts_added_items),
		cmocka_unit_test(test_line_error_stops),
		cmocka_unit_test(test_cancelled),
		cmocka_unit_test(test_failing_git),
	};

	return cmocka_run_group_tests(tests, setup, teardown);
}
