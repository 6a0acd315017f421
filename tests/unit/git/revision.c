/*
 * Revision and reference validation: upstream's exact messages and order,
 * pseudo-revisions, path-scoped revisions, embedded NULs, object ids, and a
 * differential check of reference names against `git check-ref-format`.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "base/error.h"
#include "base/strbuf.h"
#include "git/command.h"
#include "git/revision.h"

static void rev_err(const char *rev, size_t len, unsigned flags, const char *msg)
{
	struct error err = ERROR_INIT;

	if (revision_validate(rev, len, flags, &err) != -1)
		fail_msg("revision \"%s\" accepted, want \"%s\"", rev, msg);
	assert_int_equal(err.code, STATUS_INVALID_ARGUMENT);
	assert_string_equal(err.message, msg);
	error_release(&err);
}

static void rev_ok(const char *rev, size_t len, unsigned flags)
{
	struct error err = ERROR_INIT;

	if (revision_validate(rev, len, flags, &err) != 0)
		fail_msg("revision \"%s\" refused: %s", rev, err.message);
}

#define S(x) x, sizeof(x) - 1

static void test_revision_messages(void **state)
{
	(void)state;
	rev_ok(S("main"), 0);
	rev_ok(S("refs/heads/main~2^{commit}"), 0);
	rev_ok(S("a1b2c3"), 0);
	rev_err(S(""), 0, "empty revision");
	rev_err(S("-main"), 0, "revision can't start with '-'");
	rev_err(S("--all"), 0, "revision can't start with '-'");
	rev_err(S("ma\0in"), 0, "revision can't contain NUL");
	rev_err(S("ma in"), 0, "revision can't contain whitespace");
	rev_err(S("ma\tin"), 0, "revision can't contain whitespace");
	rev_err(S("ma\nin"), 0, "revision can't contain whitespace");
	rev_err(S("ma\rin"), 0, "revision can't contain whitespace");
	rev_err(S("main:README"), 0, "revision can't contain ':'");
	rev_err(S("ma\\in"), 0, "revision can't contain '\\'");
	/* order: dash before NUL before whitespace before ':' */
	rev_err(S("- \0"), 0, "revision can't start with '-'");
	rev_err(S("a \0"), 0, "revision can't contain NUL");
	rev_err(S("a :"), 0, "revision can't contain whitespace");
	rev_err(S("a:\\"), 0, "revision can't contain ':'");
	rev_err(NULL, 0, 0, "empty revision");
}

static void test_revision_flags(void **state)
{
	(void)state;
	rev_ok(S("--all"), REVISION_ALLOW_PSEUDO);
	rev_ok(S("--not"), REVISION_ALLOW_PSEUDO);
	rev_ok(S("--branches"), REVISION_ALLOW_PSEUDO);
	rev_ok(S("--branches=feature/*"), REVISION_ALLOW_PSEUDO);
	rev_ok(S("--tags"), REVISION_ALLOW_PSEUDO);
	rev_ok(S("--tags=v1*"), REVISION_ALLOW_PSEUDO);
	rev_ok(S("--glob=refs/heads/*"), REVISION_ALLOW_PSEUDO);
	rev_ok(S("--alternate-refs"), REVISION_ALLOW_PSEUDO);
	rev_err(S("--glob"), REVISION_ALLOW_PSEUDO, "revision can't start with '-'");
	rev_err(S("--output=x"), REVISION_ALLOW_PSEUDO, "revision can't start with '-'");
	rev_err(S("--allx"), REVISION_ALLOW_PSEUDO, "revision can't start with '-'");

	rev_ok(S("main:README.md"), REVISION_ALLOW_PATH);
	rev_ok(S("main:path with spaces\nand newline:and colon"), REVISION_ALLOW_PATH);
	rev_err(S("main:a\0b"), REVISION_ALLOW_PATH, "revision can't contain NUL");
	rev_err(S(":README"), REVISION_ALLOW_PATH, "empty revision");
	rev_err(S("ma in:README"), REVISION_ALLOW_PATH, "revision can't contain whitespace");

	rev_ok(S(""), REVISION_ALLOW_EMPTY);
	rev_err(S("-"), REVISION_ALLOW_EMPTY, "revision can't start with '-'");
}

static void ref_err(const char *name, size_t len, const char *msg)
{
	struct error err = ERROR_INIT;

	if (reference_validate(name, len, &err) != -1)
		fail_msg("reference \"%s\" accepted, want \"%s\"", name, msg);
	assert_int_equal(err.code, STATUS_INVALID_ARGUMENT);
	assert_string_equal(err.message, msg);
	error_release(&err);
}

static void test_reference_messages(void **state)
{
	struct error err = ERROR_INIT;
	(void)state;

	assert_int_equal(reference_validate(S("refs/heads/main"), &err), 0);
	assert_int_equal(reference_validate(S("refs/heads/feature/x-1_2"), &err), 0);
	ref_err(S("HEAD"), "HEAD reference not allowed");
	ref_err(S("heads/main"), "reference is not fully qualified");
	ref_err(S("refs/"), "refs/ is not a valid reference");
	ref_err(S("refs/heads/"), "reference must not end with slash");
	ref_err(S("refs/heads/x."), "reference must not end with dot");
	ref_err(S("refs/heads/a@{1}"), "reference must not contain @{");
	ref_err(S("refs/heads/a..b"), "reference must not contain double dots");
	ref_err(S("refs/heads/a b"), "reference must not contain space characters");
	ref_err(S("refs/heads/a:b"), "reference must not contain special characters");
	ref_err(S("refs/heads/a?"), "reference must not contain special characters");
	ref_err(S("refs/heads/a[b"), "reference must not contain special characters");
	ref_err(S("refs/heads/a\\b"), "reference must not contain special characters");
	ref_err(S("refs/heads/a^b"), "reference must not contain special characters");
	ref_err(S("refs/heads/a~b"), "reference must not contain special characters");
	ref_err(S("refs/heads/a*b"), "reference must not contain special characters");
	ref_err(S("refs/heads/a\177b"), "reference must not contain special characters");
	ref_err(S("refs/heads/a\001b"), "reference must not contain control characters");
	ref_err(S("refs/heads/a\0b"), "reference must not contain control characters");
	ref_err(S("refs/heads//a"), "empty component is not allowed");
	ref_err(S("refs/heads/.a"), "component must not start with dot");
	ref_err(S("refs/heads/a.lock"), "component must not end with .lock");
	ref_err(S("refs/heads/a.lock/b"), "component must not end with .lock");

	/* refname_validate: the same rules, but HEAD is fine */
	assert_int_equal(refname_validate(S("HEAD"), &err), 0);
	assert_int_equal(refname_validate(S("refs/heads/main"), &err), 0);
	assert_int_equal(refname_validate(S("main"), &err), -1);
	assert_string_equal(err.message, "reference is not fully qualified");
	error_release(&err);
}

/* Our verdict must equal git's own for names below refs/. */
static void test_reference_vs_git(void **state)
{
	static const char *const names[] = {
		"refs/heads/main", "refs/heads/a..b", "refs/heads/.hidden", "refs/heads/x.lock",
		"refs/heads/a/b/c", "refs/heads/a//b", "refs/heads/end.", "refs/heads/end/",
		"refs/heads/a@{b", "refs/heads/a@b", "refs/heads/@", "refs/heads/a b",
		"refs/heads/a~1", "refs/heads/a^", "refs/heads/a:b", "refs/heads/a?",
		"refs/heads/a*", "refs/heads/a[", "refs/heads/a\\b", "refs/heads/ü-unicode",
		"refs/tags/v1.0.0", "refs/heads/a.b.c", "refs/heads/-dash", "refs/x",
		"refs/heads/a\x7f", "refs/heads/a\x01", "refs/heads/lock.lock.x",
	};
	struct git_exec_env ge = { .git_binary = "/usr/bin/git" };
	(void)state;

	git_exec_env_set(&ge);
	for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
		struct error err = ERROR_INIT;
		struct git_result res;
		struct git_cmd *cmd = git_cmd_new(NULL, "check-ref-format");
		int ours = reference_validate(names[i], strlen(names[i]), &err) == 0;

		error_release(&err);
		/* check-ref-format takes no --end-of-options: dash names can't be asked */
		if (names[i][0] == '-')
			continue;
		git_cmd_arg(cmd, names[i]);
		assert_int_equal(git_cmd_run(cmd, NULL, 0, NULL, NULL, &res, &err), 0);
		if (ours != (res.exit_code == 0))
			fail_msg("\"%s\": ours %d, git exit %d", names[i], ours, res.exit_code);
	}
}

static void test_oid(void **state)
{
	const char *sha1 = "ce013625030ba8dba906f756967f9e9ca394464a";
	const char *sha256 = "2cf24dba5fb0a30e26e83b2ac5b9e29e1b161e5c1fa7425e73043362938b9824";
	(void)state;

	assert_true(oid_is_hex(sha1, 40, "sha1"));
	assert_true(oid_is_hex(sha1, 40, NULL));
	assert_true(oid_is_hex(sha1, 40, ""));
	assert_false(oid_is_hex(sha1, 39, "sha1"));
	assert_false(oid_is_hex(sha1, 40, "sha256"));
	assert_true(oid_is_hex(sha256, 64, "sha256"));
	assert_false(oid_is_hex(sha256, 64, "sha1"));
	assert_false(oid_is_hex("CE013625030BA8DBA906F756967F9E9CA394464A", 40, "sha1"));
	assert_false(oid_is_hex("ge013625030ba8dba906f756967f9e9ca394464a", 40, "sha1"));
	assert_false(oid_is_hex(sha1, 40, "md5"));
	assert_false(oid_is_hex(NULL, 0, NULL));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_revision_messages),
		cmocka_unit_test(test_revision_flags),
		cmocka_unit_test(test_reference_messages),
		cmocka_unit_test(test_reference_vs_git),
		cmocka_unit_test(test_oid),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
