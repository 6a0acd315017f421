/*
 * Remembered loose-ref misses (git/refwatch.c through git/refread.c): a
 * miss is answered from memory on the next request, and every way a
 * loose ref can appear on the path of a remembered miss (a branch
 * written, a tag or refs/<name> shadowing it, refs/heads replaced, a
 * missing directory created, refs/ replaced) is seen by the very next
 * read; so is a queue overflow. Nothing is remembered without the
 * locator's stamp, or past a directory that cannot be watched.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "../support/gitsh.h"
#include "base/error.h"
#include "git/locator.h"
#include "git/refread.h"
#include "git/refwatch.h"
#include "git/repo_cache.h"

static char tmp[64];

#define sh(...) TEST_GIT_SH(tmp, __VA_ARGS__)

/* git's id for rev in r.git ("" when none). */
static void git_id(const char *rev, char *out, size_t cap)
{
	test_git_line(tmp, out, cap, "git -C r.git rev-parse --verify -q '%s'", rev);
}

#define open_repo() test_repo_get(tmp, "r.git")
/* As a request does: the locator stamps the repository first. */
#define locate() test_locate(tmp, "r.git")

/* One request resolving rev: a FOUND answer must be git's, and git must
 * find nothing when it is not FOUND (UNDECIDED: libgit2 answers then).
 * Returns how many candidates were answered from memory. */
static unsigned long request(git_repository *repo, const char *rev)
{
	char want[80], got[GIT_OID_HEXSZ + 1];
	unsigned long hits = refwatch_test_hits();
	enum refread_result r;
	git_oid oid;

	locate();
	r = refread_dwim(repo, rev, &oid);
	git_id(rev, want, sizeof(want));
	assert_true(r != REFREAD_MISSING);
	if (!want[0]) {
		assert_int_equal(r, REFREAD_UNDECIDED);
	} else if (r == REFREAD_FOUND) {
		git_oid_tostr(got, sizeof(got), &oid);
		if (strcmp(got, want))
			fail_msg("%s: %s, git says %s", rev, got, want);
	}
	return refwatch_test_hits() - hits;
}

static int setup(void **state)
{
	(void)state;
	snprintf(tmp, sizeof(tmp), "/tmp/refwatchXXXXXX");
	assert_non_null(mkdtemp(tmp));
	repo_cache_configure(100);
	/* main and other packed; the commits one, two and three. */
	sh("git init -q --bare -b main r.git && git init -q -b main w && cd w && "
	   "echo one > f && git add f && git commit -q -m one && echo two > f && "
	   "git commit -q -am two && echo three > f && git commit -q -am three && "
	   "git push -q ../r.git main && cd ../r.git && git update-ref refs/heads/other HEAD~2 && "
	   "git update-ref refs/remotes/origin/topic HEAD~2 && "
	   "git pack-refs --all && git rev-parse HEAD~1 > ../c2 && git rev-parse HEAD~2 > ../c1");
	/* Stamps are trusted at once; the directory must be older than the
	 * clock's granularity. */
	locator_test_set_trust_margin_ms(0);
	usleep(30000);
	return 0;
}

static int teardown(void **state)
{
	(void)state;
	locator_test_set_trust_margin_ms(-1);
	repo_cache_clear();
	sh("rm -rf '%s'", tmp);
	return 0;
}

/* The second request answers refs/main, refs/tags/main and
 * refs/heads/main from memory; a full name too. */
static void test_misses_remembered(void **state)
{
	git_repository *repo = open_repo();
	unsigned long hits;
	git_oid oid;

	(void)state;
	request(repo, "main");
	assert_int_equal(request(repo, "main"), 3);
	assert_int_equal(request(repo, "main"), 3);
	assert_true(refwatch_test_watches() >= 3); /* refs, refs/tags, refs/heads */
	locate();
	assert_int_equal(refread_lookup(repo, "refs/heads/other", &oid), REFREAD_FOUND);
	hits = refwatch_test_hits();
	locate();
	assert_int_equal(refread_lookup(repo, "refs/heads/other", &oid), REFREAD_FOUND);
	assert_int_equal(refwatch_test_hits(), hits + 1);
	/* Without the locator's stamp of this request: nothing from memory. */
	usleep(30000);
	hits = refwatch_test_hits();
	assert_int_equal(refread_dwim(repo, "main", &oid), REFREAD_FOUND);
	assert_int_equal(refwatch_test_hits(), hits);
	repo_cache_put(repo);
}

/* Every way a loose ref appears where a miss was remembered is seen by
 * the very next request (the repository directory itself is untouched
 * by all but the last, so only the watches can tell). */
static void test_changes_seen_at_once(void **state)
{
	git_repository *repo = open_repo();

	(void)state;
	request(repo, "main");
	request(repo, "main");
	/* a loose branch over the packed one */
	sh("git -C r.git update-ref refs/heads/main $(cat c2)");
	request(repo, "main");
	assert_int_equal(request(repo, "main"), 2); /* refs/heads/main is opened */
	/* a tag shadows the branch */
	sh("git -C r.git tag main $(cat c1)");
	assert_int_equal(request(repo, "main"), 0);
	request(repo, "main");
	/* refs/main shadows both (written directly, no lock file) */
	sh("cp c2 r.git/refs/main");
	assert_int_equal(request(repo, "main"), 0);
	sh("rm r.git/refs/main r.git/refs/tags/main");
	request(repo, "main");
	assert_int_equal(request(repo, "main"), 2);
	/* refs/heads replaced by another directory */
	sh("cd r.git/refs && mv heads heads.old && mkdir heads && cp ../../c1 heads/main");
	assert_int_equal(request(repo, "main"), 0);
	request(repo, "main");
	/* a missing directory on the way created: origin/topic is the packed
	 * refs/remotes/origin/topic until refs/heads/origin/topic appears */
	request(repo, "origin/topic");
	assert_int_equal(request(repo, "origin/topic"), 5);
	sh("git -C r.git update-ref refs/heads/origin/topic $(cat c2)");
	assert_int_equal(request(repo, "origin/topic"), 0);
	/* refs/ itself replaced (the repository directory changes too) */
	request(repo, "main");
	sh("cd r.git && cp -a refs refs.new && cp ../c2 refs.new/tags/main && "
	   "mv refs refs.old && mv refs.new refs");
	usleep(30000);
	assert_int_equal(request(repo, "main"), 0);
	repo_cache_put(repo);
}

/* A queue overflow forgets everything; so does the stamp changing. */
static void test_overflow_and_stamp(void **state)
{
	git_repository *repo = open_repo();

	(void)state;
	request(repo, "main");
	assert_int_equal(request(repo, "main"), 3);
	refwatch_test_overflow();
	assert_int_equal(request(repo, "main"), 0);
	assert_int_equal(request(repo, "main"), 3);
	sh("touch r.git/new-entry");
	usleep(30000);
	assert_int_equal(request(repo, "main"), 0);
	assert_int_equal(request(repo, "main"), 3);
	repo_cache_put(repo);
}

/* A directory on the way that is a symlink is not watched (its target
 * can change without an event in it): those misses are always looked up. */
static void test_symlinked_directory_not_remembered(void **state)
{
	git_repository *repo;

	(void)state;
	sh("mv r.git/refs/tags tags-elsewhere && ln -s ../../tags-elsewhere r.git/refs/tags");
	usleep(30000);
	repo = open_repo();
	request(repo, "main");
	assert_int_equal(request(repo, "main"), 1); /* refs/main only */
	sh("cp c1 tags-elsewhere/main");
	assert_int_equal(request(repo, "main"), 1);
	repo_cache_put(repo);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_misses_remembered, setup, teardown),
		cmocka_unit_test_setup_teardown(test_changes_seen_at_once, setup, teardown),
		cmocka_unit_test_setup_teardown(test_overflow_and_stamp, setup, teardown),
		cmocka_unit_test_setup_teardown(test_symlinked_directory_not_remembered, setup,
						teardown),
	};
	int failed = cmocka_run_group_tests(tests, NULL, NULL);

	repo_cache_shutdown();
	return failed;
}
