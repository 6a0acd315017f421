/*
 * Locator: every error with its code and message in upstream's order, lexical
 * and physical containment (.. escapes, absolute paths joined under the root,
 * symlinks leading out of the storage), with openat2 and with the fallback
 * walk.
 */
#include <errno.h>
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
#include "git/locator.h"

struct fixture {
	char tmp[64];
	char *root;    /* <tmp>/storage */
	char *outside; /* <tmp>/outside */
	struct locator_storage storages[2];
	struct locator loc;
};

static void mkdirs(const char *base, const char *rel)
{
	char *p = NULL;
	struct error err = ERROR_INIT;

	assert_true(asprintf(&p, "%s/%s", base, rel) > 0);
	assert_int_equal(fsutil_mkdir_p(p, 0755, &err), 0);
	free(p);
}

static void touch(const char *base, const char *rel)
{
	char *p = NULL;
	FILE *f;

	assert_true(asprintf(&p, "%s/%s", base, rel) > 0);
	f = fopen(p, "w");
	assert_non_null(f);
	fputs("ref: refs/heads/main\n", f);
	fclose(f);
	free(p);
}

static void make_repo(const char *base, const char *rel)
{
	char *p = NULL;

	assert_true(asprintf(&p, "%s/objects", rel) > 0);
	mkdirs(base, p);
	free(p);
	assert_true(asprintf(&p, "%s/refs", rel) > 0);
	mkdirs(base, p);
	free(p);
	assert_true(asprintf(&p, "%s/HEAD", rel) > 0);
	touch(base, p);
	free(p);
}

static int setup(void **state)
{
	struct fixture *f = calloc(1, sizeof(*f));

	snprintf(f->tmp, sizeof(f->tmp), "/tmp/locator-test-XXXXXX");
	if (!mkdtemp(f->tmp))
		return -1;
	if (asprintf(&f->root, "%s/storage", f->tmp) < 0 ||
	    asprintf(&f->outside, "%s/outside", f->tmp) < 0)
		return -1;
	mkdir(f->root, 0755);
	mkdir(f->outside, 0755);
	f->storages[0].name = "default";
	f->storages[0].path = f->root;
	f->storages[1].name = "gone";
	f->storages[1].path = "/nonexistent/storage/path";
	f->loc.storages = f->storages;
	f->loc.n_storages = 2;
	make_repo(f->root, "@hashed/ab/cd/abcd.git");
	make_repo(f->outside, "evil.git");
	locator_test_force_walk(0);
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	struct fixture *f = *state;
	struct error err = ERROR_INIT;

	fsutil_remove_tree(f->tmp, &err);
	error_release(&err);
	free(f->root);
	free(f->outside);
	free(f);
	locator_test_force_walk(0);
	return 0;
}

/* Resolves and expects an error with exactly this code and message. */
static void expect_error(struct fixture *f, const struct repo_ref *repo, unsigned flags, int code,
			 const char *msg)
{
	struct error err = ERROR_INIT;
	char *out = (char *)"sentinel";

	assert_int_equal(locator_repo_path(&f->loc, repo, flags, &out, &err), -1);
	assert_null(out);
	assert_string_equal(err.message, msg);
	assert_int_equal(err.code, code);
	error_release(&err);
}

static char *expect_ok(struct fixture *f, const struct repo_ref *repo, unsigned flags)
{
	struct error err = ERROR_INIT;
	char *out = NULL;
	int r = locator_repo_path(&f->loc, repo, flags, &out, &err);

	if (r != 0)
		fail_msg("unexpected error: %s", err.message);
	assert_non_null(out);
	return out;
}

static void test_argument_errors(void **state)
{
	struct fixture *f = *state;
	struct repo_ref r = { 0 };

	expect_error(f, NULL, 0, STATUS_INVALID_ARGUMENT, "repository not set");
	expect_error(f, &r, 0, STATUS_INVALID_ARGUMENT, "repository not set");
	r.storage_name = "";
	r.relative_path = "";
	expect_error(f, &r, 0, STATUS_INVALID_ARGUMENT, "repository not set");
	r.storage_name = "default";
	expect_error(f, &r, 0, STATUS_INVALID_ARGUMENT, "repository path not set");
	r.storage_name = "";
	r.relative_path = "x.git";
	expect_error(f, &r, 0, STATUS_INVALID_ARGUMENT, "storage name not set");
	r.storage_name = "nope";
	expect_error(f, &r, 0, STATUS_INVALID_ARGUMENT, "storage name not found");
	/* the path check comes before the storage lookup */
	r.relative_path = NULL;
	expect_error(f, &r, 0, STATUS_INVALID_ARGUMENT, "repository path not set");
	r.storage_name = "gone";
	r.relative_path = "x.git";
	expect_error(f, &r, 0, STATUS_NOT_FOUND, "storage does not exist");
	/* even when existence checks are skipped */
	expect_error(f, &r, LOCATOR_SKIP_EXISTS, STATUS_NOT_FOUND, "storage does not exist");
}

static void test_storage_path(void **state)
{
	struct fixture *f = *state;
	struct error err = ERROR_INIT;
	const char *p = NULL;

	assert_int_equal(locator_storage_path(&f->loc, "default", &p, &err), 0);
	assert_string_equal(p, f->root);
	assert_int_equal(locator_storage_path(&f->loc, "", &p, &err), -1);
	assert_string_equal(err.message, "storage name not set");
	assert_int_equal(err.code, STATUS_INVALID_ARGUMENT);
	assert_int_equal(locator_storage_path(&f->loc, "zzz", &p, &err), -1);
	assert_string_equal(err.message, "storage name not found");
	assert_int_equal(err.code, STATUS_INVALID_ARGUMENT);
	assert_null(p);
	error_release(&err);
}

static void test_escape_dotdot(void **state)
{
	struct fixture *f = *state;
	struct repo_ref r = { .storage_name = "default" };

	r.relative_path = "../outside/evil.git";
	expect_error(f, &r, 0, STATUS_INVALID_ARGUMENT, "relative path escapes root directory");
	expect_error(f, &r, LOCATOR_SKIP_EXISTS, STATUS_INVALID_ARGUMENT,
		     "relative path escapes root directory");
	r.relative_path = "@hashed/../../outside/evil.git";
	expect_error(f, &r, 0, STATUS_INVALID_ARGUMENT, "relative path escapes root directory");
	r.relative_path = "..";
	expect_error(f, &r, 0, STATUS_INVALID_ARGUMENT, "relative path escapes root directory");
	/* ".." that stays inside is fine */
	r.relative_path = "@hashed/xx/../ab/cd/abcd.git";
	free(expect_ok(f, &r, 0));
}

static void test_absolute_joined(void **state)
{
	struct fixture *f = *state;
	struct repo_ref r = { .storage_name = "default", .relative_path = "/@hashed/ab/cd/abcd.git" };
	char *want = NULL, *out;

	assert_true(asprintf(&want, "%s/@hashed/ab/cd/abcd.git", f->root) > 0);
	out = expect_ok(f, &r, 0);
	assert_string_equal(out, want);
	free(out);
	/* an absolute path elsewhere is joined under the root, not used as is */
	r.relative_path = f->outside;
	expect_error(f, &r, 0, STATUS_NOT_FOUND, "repository not found");
	free(want);
}

static void test_symlink_outside(void **state)
{
	struct fixture *f = *state;
	struct repo_ref r = { .storage_name = "default" };
	char *link = NULL, *target = NULL;

	assert_true(asprintf(&link, "%s/linked.git", f->root) > 0);
	assert_true(asprintf(&target, "%s/evil.git", f->outside) > 0);
	assert_int_equal(symlink(target, link), 0);
	free(link);
	assert_true(asprintf(&link, "%s/reldir", f->root) > 0);
	assert_int_equal(symlink("../outside", link), 0);
	free(link);
	assert_true(asprintf(&link, "%s/inside.git", f->root) > 0);
	assert_int_equal(symlink("@hashed/ab/cd/abcd.git", link), 0);
	free(link);
	assert_true(asprintf(&link, "%s/absinside.git", f->root) > 0);
	free(target);
	assert_true(asprintf(&target, "%s/@hashed/ab/cd/abcd.git", f->root) > 0);
	assert_int_equal(symlink(target, link), 0);
	free(link);
	free(target);

	for (int walk = 0; walk < 2; walk++) {
		locator_test_force_walk(walk);
		r.relative_path = "linked.git";
		expect_error(f, &r, 0, STATUS_INVALID_ARGUMENT,
			     "relative path escapes root directory");
		r.relative_path = "reldir/evil.git";
		expect_error(f, &r, 0, STATUS_INVALID_ARGUMENT,
			     "relative path escapes root directory");
		expect_error(f, &r, LOCATOR_SKIP_EXISTS, STATUS_INVALID_ARGUMENT,
			     "relative path escapes root directory");
		/* a missing child below an escaping link still escapes */
		r.relative_path = "reldir/new.git";
		expect_error(f, &r, LOCATOR_SKIP_EXISTS, STATUS_INVALID_ARGUMENT,
			     "relative path escapes root directory");
		/* relative symlink staying inside the storage */
		r.relative_path = "inside.git";
		free(expect_ok(f, &r, 0));
		/* an absolute symlink back into the storage is fine */
		r.relative_path = "absinside.git";
		free(expect_ok(f, &r, 0));
	}
}

static void test_missing_and_invalid(void **state)
{
	struct fixture *f = *state;
	struct repo_ref r = { .storage_name = "default", .relative_path = "missing.git" };
	char *out;

	for (int walk = 0; walk < 2; walk++) {
		locator_test_force_walk(walk);
		r.relative_path = "missing.git";
		expect_error(f, &r, 0, STATUS_NOT_FOUND, "repository not found");
		out = expect_ok(f, &r, LOCATOR_SKIP_EXISTS);
		assert_true(strstr(out, "/storage/missing.git") != NULL);
		free(out);
		r.relative_path = "missing/deeper/x.git";
		expect_error(f, &r, 0, STATUS_NOT_FOUND, "repository not found");
	}
	locator_test_force_walk(0);

	mkdirs(f->root, "bad.git");
	r.relative_path = "bad.git";
	expect_error(f, &r, 0, STATUS_FAILED_PRECONDITION,
		     "repository not valid: \"objects\" does not exist");
	mkdirs(f->root, "bad.git/objects");
	expect_error(f, &r, 0, STATUS_FAILED_PRECONDITION,
		     "repository not valid: \"refs\" does not exist");
	mkdirs(f->root, "bad.git/refs");
	expect_error(f, &r, 0, STATUS_FAILED_PRECONDITION,
		     "repository not valid: \"HEAD\" does not exist");
	touch(f->root, "bad.git/HEAD");
	free(expect_ok(f, &r, 0));
	/* skip mode does not look at the contents */
	mkdirs(f->root, "empty.git");
	r.relative_path = "empty.git";
	free(expect_ok(f, &r, LOCATOR_SKIP_EXISTS));
	/* a regular file is not a repository */
	touch(f->root, "file.git");
	r.relative_path = "file.git";
	expect_error(f, &r, 0, STATUS_NOT_FOUND, "repository not found");
}

static void test_object_dirs(void **state)
{
	struct fixture *f = *state;
	const char *alts[2] = { "objects", "../../../../../outside" };
	struct repo_ref r = {
		.storage_name = "default",
		.relative_path = "@hashed/ab/cd/abcd.git",
		.git_object_directory = "../../../../+gitaly/tmp/quarantine-1/objects",
		.git_alternate_object_directories = alts,
		.n_alternates = 1,
	};

	free(expect_ok(f, &r, 0));
	r.n_alternates = 2;
	expect_error(f, &r, 0, STATUS_INVALID_ARGUMENT, "relative path escapes root directory");
	r.n_alternates = 1;
	r.git_object_directory = "../../../../../outside/evil.git/objects";
	expect_error(f, &r, 0, STATUS_INVALID_ARGUMENT, "relative path escapes root directory");
}

static void test_resolve_beneath(void **state)
{
	struct fixture *f = *state;
	struct error err = ERROR_INIT;
	char *out = NULL, *want = NULL, *link = NULL;

	assert_int_equal(locator_resolve_beneath(f->root, "a/b/../c", &out, &err), 0);
	assert_true(asprintf(&want, "%s/a/c", f->root) > 0);
	assert_string_equal(out, want);
	free(out);
	free(want);
	assert_int_equal(locator_resolve_beneath(f->root, "a/../../x", &out, &err), -1);
	assert_int_equal(err.code, STATUS_INVALID_ARGUMENT);
	assert_string_equal(err.message, "relative path escapes root directory");
	assert_null(out);
	assert_true(asprintf(&link, "%s/out", f->root) > 0);
	assert_int_equal(symlink(f->outside, link), 0);
	free(link);
	for (int walk = 0; walk < 2; walk++) {
		locator_test_force_walk(walk);
		assert_int_equal(locator_resolve_beneath(f->root, "out/evil.git", &out, &err), -1);
		assert_string_equal(err.message, "relative path escapes root directory");
		assert_int_equal(locator_resolve_beneath(f->root, ".", &out, &err), 0);
		assert_string_equal(out, f->root);
		free(out);
	}
	error_release(&err);
}

static void test_unclean_root(void **state)
{
	struct fixture *f = *state;
	struct repo_ref r = { .storage_name = "default", .relative_path = "@hashed/ab/cd/abcd.git" };
	char *slashed = NULL, *out, *want = NULL;

	assert_true(asprintf(&slashed, "%s//", f->root) > 0);
	f->storages[0].path = slashed;
	out = expect_ok(f, &r, 0);
	assert_true(asprintf(&want, "%s/@hashed/ab/cd/abcd.git", f->root) > 0);
	assert_string_equal(out, want);
	free(out);
	r.relative_path = "../outside/evil.git";
	expect_error(f, &r, 0, STATUS_INVALID_ARGUMENT, "relative path escapes root directory");
	f->storages[0].path = f->root;
	free(slashed);
	free(want);
}

static void test_object_dirs_env(void **state)
{
	struct error err = ERROR_INIT;
	const char *alts[3] = { "objects", "", "../../pool.git/objects" };
	struct repo_ref r = { .storage_name = "default", .relative_path = "x.git",
			      .git_object_directory = "../+gitaly/tmp/q-1/objects",
			      .git_alternate_object_directories = alts, .n_alternates = 3 };
	char *od = NULL, *alt = NULL;
	(void)state;

	assert_int_equal(locator_object_dirs("/s/a/x.git", &r, &od, &alt, &err), 0);
	assert_string_equal(od, "/s/a/+gitaly/tmp/q-1/objects");
	assert_string_equal(alt, "/s/a/x.git/objects:/s/pool.git/objects");
	free(od);
	free(alt);
	r.git_object_directory = NULL;
	r.n_alternates = 0;
	assert_int_equal(locator_object_dirs("/s/a/x.git", &r, &od, &alt, &err), 0);
	assert_null(od);
	assert_null(alt);
	alts[0] = "a:b";
	r.n_alternates = 1;
	assert_int_equal(locator_object_dirs("/s/a/x.git", &r, &od, &alt, &err), -1);
	assert_int_equal(err.code, STATUS_INVALID_ARGUMENT);
	error_release(&err);
}

/* The storage root's descriptor is cached; a replaced root must not be
 * served from the old directory. */
static void test_replaced_storage_root(void **state)
{
	struct fixture *f = *state;
	struct repo_ref old = { .storage_name = "default", .relative_path = "@hashed/ab/cd/abcd.git" };
	struct repo_ref fresh = { .storage_name = "default", .relative_path = "new.git" };
	char *moved = NULL;

	free(expect_ok(f, &old, 0));
	expect_error(f, &fresh, 0, STATUS_NOT_FOUND, "repository not found");
	assert_true(asprintf(&moved, "%s.old", f->root) > 0);
	assert_int_equal(rename(f->root, moved), 0);
	expect_error(f, &old, 0, STATUS_NOT_FOUND, "storage does not exist");
	assert_int_equal(mkdir(f->root, 0755), 0);
	make_repo(f->root, "new.git");
	free(expect_ok(f, &fresh, 0));
	expect_error(f, &old, 0, STATUS_NOT_FOUND, "repository not found");
	free(moved);
}

/*
 * A validation is remembered (one statx on the next request) only for a
 * directory whose times are older than the trust margin, and whatever
 * changes the repository's validity is seen by the very next request.
 */
static void test_remembered_validation(void **state)
{
	struct fixture *f = *state;
	struct repo_ref r = { .storage_name = "default", .relative_path = "fast.git" };
	struct locator_stamp st;
	unsigned long hits;
	char *p = NULL, *q = NULL, *out;

	/* Default margin: a repository created just now is not remembered. */
	make_repo(f->root, "fast.git");
	hits = locator_test_fast_hits();
	free(expect_ok(f, &r, 0));
	free(expect_ok(f, &r, 0));
	assert_int_equal(locator_test_fast_hits(), hits);

	/* A tiny margin; each change below happens a clock tick or more after
	 * the remembered times. */
	locator_test_set_trust_margin_ms(0);
	usleep(30000);
	out = expect_ok(f, &r, 0);
	assert_int_equal(locator_recent_stamp(out, &st), 1);
	assert_int_equal(st.trusted, 1);
	assert_int_equal(locator_recent_stamp("/other/path", &st), 0);
	free(out);
	hits = locator_test_fast_hits();
	free(expect_ok(f, &r, 0));
	assert_int_equal(locator_test_fast_hits(), hits + 1);

	/* HEAD removed: the very next request says so. */
	assert_true(asprintf(&p, "%s/fast.git/HEAD", f->root) > 0);
	assert_int_equal(unlink(p), 0);
	expect_error(f, &r, 0, STATUS_FAILED_PRECONDITION,
		     "repository not valid: \"HEAD\" does not exist");
	touch(f->root, "fast.git/HEAD");
	usleep(30000);
	free(expect_ok(f, &r, 0));
	hits = locator_test_fast_hits();
	free(expect_ok(f, &r, 0));
	assert_int_equal(locator_test_fast_hits(), hits + 1);
	free(p);

	/* objects renamed away. */
	assert_true(asprintf(&p, "%s/fast.git/objects", f->root) > 0);
	assert_true(asprintf(&q, "%s/fast.git/objects.old", f->root) > 0);
	assert_int_equal(rename(p, q), 0);
	expect_error(f, &r, 0, STATUS_FAILED_PRECONDITION,
		     "repository not valid: \"objects\" does not exist");
	assert_int_equal(rename(q, p), 0);
	free(p);
	free(q);
	usleep(30000);
	free(expect_ok(f, &r, 0));
	free(expect_ok(f, &r, 0));

	/* Removed and recreated without HEAD (the inode number may be reused). */
	assert_true(asprintf(&p, "%s/fast.git", f->root) > 0);
	{
		struct error err = ERROR_INIT;

		assert_int_equal(fsutil_remove_tree(p, &err), 0);
		error_release(&err);
	}
	expect_error(f, &r, 0, STATUS_NOT_FOUND, "repository not found");
	mkdirs(f->root, "fast.git/objects");
	mkdirs(f->root, "fast.git/refs");
	expect_error(f, &r, 0, STATUS_FAILED_PRECONDITION,
		     "repository not valid: \"HEAD\" does not exist");
	touch(f->root, "fast.git/HEAD");
	usleep(30000);
	free(expect_ok(f, &r, 0));
	free(expect_ok(f, &r, 0));

	/* The repository moved away and a symlink to it put in its place:
	 * the directory's own ctime moved, so it is resolved again and the
	 * symlink leading outside is refused. */
	assert_true(asprintf(&q, "%s/moved.git", f->outside) > 0);
	assert_int_equal(rename(p, q), 0);
	assert_int_equal(symlink(q, p), 0);
	expect_error(f, &r, 0, STATUS_INVALID_ARGUMENT, "relative path escapes root directory");
	assert_int_equal(unlink(p), 0);
	assert_int_equal(rename(q, p), 0);
	free(q);

	/* An entry that is a symlink is never remembered: its target can go
	 * without the repository directory changing. */
	mkdirs(f->outside, "objects-target");
	assert_true(asprintf(&q, "%s/objects-target", f->outside) > 0);
	{
		char *obj = NULL;
		struct error err = ERROR_INIT;

		assert_true(asprintf(&obj, "%s/objects", p) > 0);
		assert_int_equal(fsutil_remove_tree(obj, &err), 0);
		error_release(&err);
		assert_int_equal(symlink(q, obj), 0);
		free(obj);
	}
	usleep(30000);
	free(expect_ok(f, &r, 0));
	hits = locator_test_fast_hits();
	free(expect_ok(f, &r, 0));
	assert_int_equal(locator_test_fast_hits(), hits);
	assert_int_equal(rmdir(q), 0);
	expect_error(f, &r, 0, STATUS_FAILED_PRECONDITION,
		     "repository not valid: \"objects\" does not exist");
	free(q);
	free(p);

	/* The storage gone: its own message, not "repository not found". */
	r.relative_path = "@hashed/ab/cd/abcd.git";
	usleep(30000);
	free(expect_ok(f, &r, 0));
	free(expect_ok(f, &r, 0));
	assert_true(asprintf(&p, "%s.old", f->root) > 0);
	assert_int_equal(rename(f->root, p), 0);
	expect_error(f, &r, 0, STATUS_NOT_FOUND, "storage does not exist");
	assert_int_equal(rename(p, f->root), 0);
	free(p);
	locator_test_set_trust_margin_ms(-1);
}

static void test_path_clean(void **state)
{
	static const char *const cases[][2] = {
		{ "", "." }, { "/", "/" }, { "a//b/", "a/b" }, { "/../a", "/a" },
		{ "../../a", "../../a" }, { "a/../..", ".." }, { "./a/./b/.", "a/b" },
		{ "/a/b/../../..", "/" }, { "a/b/c/../../d", "a/d" }, { "..a/b..", "..a/b.." },
	};
	(void)state;
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		char *c = fsutil_path_clean(cases[i][0]);
		assert_string_equal(c, cases[i][1]);
		free(c);
	}
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_argument_errors, setup, teardown),
		cmocka_unit_test_setup_teardown(test_remembered_validation, setup, teardown),
		cmocka_unit_test_setup_teardown(test_storage_path, setup, teardown),
		cmocka_unit_test_setup_teardown(test_escape_dotdot, setup, teardown),
		cmocka_unit_test_setup_teardown(test_absolute_joined, setup, teardown),
		cmocka_unit_test_setup_teardown(test_symlink_outside, setup, teardown),
		cmocka_unit_test_setup_teardown(test_missing_and_invalid, setup, teardown),
		cmocka_unit_test_setup_teardown(test_object_dirs, setup, teardown),
		cmocka_unit_test_setup_teardown(test_resolve_beneath, setup, teardown),
		cmocka_unit_test_setup_teardown(test_unclean_root, setup, teardown),
		cmocka_unit_test_setup_teardown(test_replaced_storage_root, setup, teardown),
		cmocka_unit_test(test_object_dirs_env),
		cmocka_unit_test(test_path_clean),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
