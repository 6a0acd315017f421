/*
 * Fast reference reads: every answer equals git's own (rev-parse) on a
 * repository with packed and loose refs, tags and branches of the same
 * name, peeled tags, symbolic refs and hexadecimal-looking names; what is
 * written underneath (update-ref, pack-refs, a packed ref deleted, a loose
 * ref deleted back to its packed value) is seen by the very next read,
 * both with and without the locator's stamp of the request.
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

#include "../support/gitsh.h"

#include "base/error.h"
#include "git/locator.h"
#include "git/refread.h"
#include "git/repo_cache.h"

static char tmp[64];

/* Runs a shell snippet in tmp (tests/unit/support/gitsh.h); asserts success. */
#define sh(...) TEST_GIT_SH(tmp, __VA_ARGS__)

/* git's answer for a revision (no peeling): 40 hex or "" when none. */
static void git_answer(const char *args, char *out)
{
	test_git_line(tmp, out, 64, "git -C r.git %s", args);
}

#define open_repo() test_repo_get(tmp, "r.git")
/* As a request does: the locator stamps the repository first. */
#define locate() test_locate(tmp, "r.git")

/* refread_dwim agrees with `git rev-parse --verify -q <rev>` whenever it
 * decides; returns what it said. */
static enum refread_result check_dwim(git_repository *repo, const char *rev)
{
	char want[64], got[GIT_OID_HEXSZ + 1], *args = NULL;
	git_oid oid;
	enum refread_result r = refread_dwim(repo, rev, &oid);

	assert_true(asprintf(&args, "rev-parse --verify -q '%s'", rev) > 0);
	git_answer(args, want);
	free(args);
	if (r == REFREAD_FOUND) {
		git_oid_tostr(got, sizeof(got), &oid);
		if (strcmp(got, want))
			fail_msg("dwim %s: %s, git says %s", rev, got, want);
	}
	assert_true(r != REFREAD_MISSING); /* misses are libgit2's to answer */
	return r;
}

/* refread_lookup agrees with `git show-ref --verify` whenever it decides. */
static enum refread_result check_lookup(git_repository *repo, const char *name)
{
	char want[64], got[GIT_OID_HEXSZ + 1], *args = NULL;
	git_oid oid;
	enum refread_result r = refread_lookup(repo, name, &oid);

	assert_true(asprintf(&args, "show-ref --verify -s '%s'", name) > 0);
	git_answer(args, want);
	free(args);
	if (r == REFREAD_FOUND) {
		git_oid_tostr(got, sizeof(got), &oid);
		if (strcmp(got, want))
			fail_msg("lookup %s: %s, git says %s", name, got, want);
	} else if (r == REFREAD_MISSING && want[0]) {
		fail_msg("lookup %s: missing, git says %s", name, want);
	}
	return r;
}

static int setup(void **state)
{
	(void)state;
	snprintf(tmp, sizeof(tmp), "/tmp/refreadXXXXXX");
	assert_non_null(mkdtemp(tmp));
	repo_cache_configure(100);
	/* 300 packed branches, a tag and a branch both named "dup" (the tag
	 * wins), an annotated tag, a remote with a symbolic HEAD, a branch
	 * named like an abbreviated id, and one branch left loose. */
	sh("git init -q --bare -b main r.git && git init -q -b main w && cd w && "
	   "echo one > f && git add f && git commit -q -m one && "
	   "echo two > f && git commit -q -am two && git push -q ../r.git main && cd ../r.git && "
	   "i=0; while [ $i -lt 300 ]; do printf 'create refs/heads/br%%03d HEAD~%%d\\n' $i $((i %% 2)); "
	   "i=$((i+1)); done | git update-ref --stdin && "
	   "git update-ref refs/heads/dup HEAD~1 && git tag dup HEAD && git tag -a -m ann ann HEAD~1 && "
	   "git update-ref refs/remotes/origin/main HEAD~1 && "
	   "git symbolic-ref refs/remotes/origin/HEAD refs/remotes/origin/main && "
	   "git update-ref refs/heads/feature/x HEAD && git update-ref refs/heads/abc HEAD~1 && "
	   "git pack-refs --all && git update-ref refs/heads/loose HEAD~1");
	return 0;
}

static int teardown(void **state)
{
	(void)state;
	repo_cache_clear();
	sh("rm -rf '%s'", tmp);
	return 0;
}

static void test_answers_equal_git(void **state)
{
	static const char *const found[] = { "main", "br000", "br001", "br150", "br299", "dup",
					     "ann", "feature/x", "heads/dup", "tags/dup",
					     "refs/heads/dup", "loose", "origin/main",
					     "remotes/origin/main" };
	static const char *const undecided[] = { "abc", "origin", "HEAD", "nosuch", "br300",
						 "main~1", "main^{tree}", "a..b", "-x", "" };
	static const char *const names[] = { "refs/heads/main", "refs/heads/br000",
					     "refs/heads/br299", "refs/heads/br1", "refs/heads/br2999",
					     "refs/tags/dup", "refs/tags/ann", "refs/heads/loose",
					     "refs/heads/feature/x", "refs/heads/feature",
					     "refs/heads/a", "refs/heads/zzz", "refs/nothing" };
	git_repository *repo = open_repo();

	(void)state;
	for (size_t i = 0; i < sizeof(found) / sizeof(found[0]); i++)
		if (check_dwim(repo, found[i]) != REFREAD_FOUND)
			fail_msg("%s not resolved by the fast path", found[i]);
	for (size_t i = 0; i < sizeof(undecided) / sizeof(undecided[0]); i++)
		if (check_dwim(repo, undecided[i]) != REFREAD_UNDECIDED)
			fail_msg("%s decided by the fast path", undecided[i]);
	for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++)
		check_lookup(repo, names[i]);
	assert_int_equal(check_lookup(repo, "refs/heads/br150"), REFREAD_FOUND);
	assert_int_equal(check_lookup(repo, "refs/heads/zzz"), REFREAD_MISSING);
	assert_int_equal(check_lookup(repo, "refs/heads/aaa"), REFREAD_MISSING);
	/* symbolic: libgit2's */
	assert_int_equal(check_lookup(repo, "refs/remotes/origin/HEAD"), REFREAD_UNDECIDED);
	repo_cache_put(repo);
}

/* Writes underneath are seen by the very next read. */
static void run_writes(int stamped)
{
	git_repository *repo = open_repo();
	unsigned long maps;

	if (stamped)
		locate();
	assert_int_equal(check_lookup(repo, "refs/heads/br010"), REFREAD_FOUND);
	/* unchanged: no new mapping */
	maps = refread_test_maps();
	if (stamped)
		locate();
	assert_int_equal(check_lookup(repo, "refs/heads/br011"), REFREAD_FOUND);
	assert_int_equal(refread_test_maps(), maps);

	/* a loose ref over a packed one */
	sh("git -C r.git update-ref refs/heads/br010 HEAD");
	if (stamped)
		locate();
	assert_int_equal(check_lookup(repo, "refs/heads/br010"), REFREAD_FOUND);
	assert_int_equal(check_dwim(repo, "br010"), REFREAD_FOUND);
	/* packed again, then a packed ref deleted (packed-refs rewritten) */
	sh("git -C r.git pack-refs --all && git -C r.git update-ref -d refs/heads/br012");
	if (stamped)
		locate();
	assert_int_equal(check_lookup(repo, "refs/heads/br010"), REFREAD_FOUND);
	assert_int_equal(check_lookup(repo, "refs/heads/br012"), REFREAD_MISSING);
	assert_int_equal(check_dwim(repo, "br012"), REFREAD_UNDECIDED);
	/* a packed ref moved (rewritten in packed-refs, same size) */
	sh("git -C r.git update-ref refs/heads/br013 HEAD && git -C r.git pack-refs --all");
	if (stamped)
		locate();
	assert_int_equal(check_lookup(repo, "refs/heads/br013"), REFREAD_FOUND);
	assert_int_equal(check_dwim(repo, "br013"), REFREAD_FOUND);
	/* a new tag shadows the branch of the same name at once */
	sh("git -C r.git tag br014 HEAD~1");
	if (stamped)
		locate();
	assert_int_equal(check_dwim(repo, "br014"), REFREAD_FOUND);
	/* packed-refs removed altogether (every ref loose) */
	sh("cd r.git && git for-each-ref --format='%%(objectname) %%(refname)' refs/heads/br02 "
	   "refs/heads/main > ../keep && rm packed-refs && while read o n; do "
	   "git update-ref $n $o; done < ../keep");
	if (stamped)
		locate();
	assert_int_equal(check_lookup(repo, "refs/heads/br000"), REFREAD_MISSING);
	assert_int_equal(check_dwim(repo, "main"), REFREAD_FOUND);
	repo_cache_put(repo);
}

static void test_writes_seen_without_stamp(void **state)
{
	(void)state;
	run_writes(0);
}

static void test_writes_seen_with_stamp(void **state)
{
	unsigned long stats;
	git_repository *repo;

	(void)state;
	locator_test_set_trust_margin_ms(0);
	usleep(30000);
	run_writes(1);
	/* While the directory is unchanged, packed-refs is not even stat'ed. */
	usleep(30000);
	repo = open_repo();
	locate();
	assert_int_equal(check_dwim(repo, "main"), REFREAD_FOUND);
	stats = refread_test_stats();
	locate();
	assert_int_equal(check_lookup(repo, "refs/heads/br021"), REFREAD_MISSING);
	locate();
	assert_int_equal(check_dwim(repo, "main"), REFREAD_FOUND);
	assert_int_equal(refread_test_stats(), stats);
	repo_cache_put(repo);
	locator_test_set_trust_margin_ms(-1);
}

/* Several repositories at once: each answers its own refs (snapshots are
 * keyed by repository); a packed-refs without the header git writes is
 * not searched. */
static void test_several_repositories(void **state)
{
	struct error err = ERROR_INIT;
	char want[64], got[GIT_OID_HEXSZ + 1];

	(void)state;
	sh("for i in 0 1 2 3 4 5 6 7 8 9; do cp -a r.git c$i.git; "
	   "git -C c$i.git update-ref refs/heads/br00$i HEAD~1; git -C c$i.git pack-refs --all; done");
	for (int round = 0; round < 3; round++) {
		for (int i = 0; i < 10; i++) {
			char *path = NULL, *args = NULL, name[32];
			git_repository *repo = NULL;
			git_oid oid;

			assert_true(asprintf(&path, "%s/c%d.git", tmp, i) > 0);
			assert_int_equal(repo_cache_get(path, NULL, NULL, &repo, &err), 0);
			snprintf(name, sizeof(name), "refs/heads/br00%d", i);
			assert_int_equal(refread_lookup(repo, name, &oid), REFREAD_FOUND);
			git_oid_tostr(got, sizeof(got), &oid);
			assert_true(asprintf(&args, "--git-dir=c%d.git rev-parse %s", i, name) > 0);
			{
				char *cmd = NULL;
				FILE *f;
				char *file = NULL;

				assert_true(asprintf(&cmd, "git %s > answer", args) > 0);
				sh("%s", cmd);
				assert_true(asprintf(&file, "%s/answer", tmp) > 0);
				f = fopen(file, "r");
				assert_non_null(f);
				assert_non_null(fgets(want, sizeof(want), f));
				want[strcspn(want, "\n")] = '\0';
				fclose(f);
				free(file);
				free(cmd);
			}
			assert_string_equal(got, want);
			free(args);
			repo_cache_put(repo);
			free(path);
		}
	}
	/* no header: libgit2's to read */
	sh("sed -i 1d c0.git/packed-refs");
	{
		char *path = NULL;
		git_repository *repo = NULL;
		git_oid oid;

		assert_true(asprintf(&path, "%s/c0.git", tmp) > 0);
		assert_int_equal(repo_cache_get(path, NULL, NULL, &repo, &err), 0);
		assert_int_equal(refread_lookup(repo, "refs/heads/br000", &oid), REFREAD_UNDECIDED);
		assert_int_equal(refread_dwim(repo, "main", &oid), REFREAD_UNDECIDED);
		repo_cache_put(repo);
		free(path);
	}
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_answers_equal_git, setup, teardown),
		cmocka_unit_test_setup_teardown(test_writes_seen_without_stamp, setup, teardown),
		cmocka_unit_test_setup_teardown(test_writes_seen_with_stamp, setup, teardown),
		cmocka_unit_test_setup_teardown(test_several_repositories, setup, teardown),
	};
	int failed = cmocka_run_group_tests(tests, NULL, NULL);

	repo_cache_shutdown();
	return failed;
}
