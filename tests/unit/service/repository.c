/*
 * RepositoryService core functions against real repositories made with the
 * git CLI: create (branch, sha256, exists already, atomic staging) and
 * remove, the reference checksum compared with an independent computation,
 * sizes and RepositoryInfo, object format, gitlab.fullpath, local branches
 * and merge bases.
 */
#include <errno.h>
#include <fcntl.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>

#include "base/strbuf.h"
#include "service/repository_internal.h"
#include "service/util.h"
#include "fake_call.h"
#include "../support/shell.h"

#define OUT_CAP 65536

static char tmp[] = "/tmp/svc-repo-XXXXXX";
static char storage[128];

/* Runs a shell command (our code never does; the tests build fixtures so).
 * Returns the exit status; stdout goes to out (may be NULL). */
/* Shell commands with stdout captured into out (OUT_CAP bytes at most). */
#define sh(out, ...) test_shell((out), OUT_CAP, 0, __VA_ARGS__)

static void chomp(char *s)
{
	size_t n = strlen(s);

	while (n && (s[n - 1] == '\n' || s[n - 1] == ' '))
		s[--n] = '\0';
}

#define GITC "git -c user.name=T -c user.email=t@example.com -c init.defaultBranch=main"

/* A bare repository <storage>/<name> with a small history and some refs. */
static char *make_repo(const char *name)
{
	char *path = NULL;

	assert_true(asprintf(&path, "%s/%s", storage, name) > 0);
	assert_int_equal(sh(NULL,
			    "set -e; w=%s/work-%s; rm -rf $w; " GITC " init -q $w; cd $w;"
			    "echo one > f; " GITC " add f; " GITC " commit -qm one;"
			    "echo two > f; " GITC " commit -qam two;"
			    GITC " checkout -qb feature HEAD~1; echo three > g; " GITC " add g;"
			    GITC " commit -qm three; " GITC " checkout -q main;"
			    GITC " tag v1 HEAD~1;"
			    "git clone -q --bare $w %s; cd %s;"
			    "git update-ref refs/keep-around/$(git rev-parse main) main;"
			    "git update-ref refs/merge-requests/1/head feature;"
			    "git update-ref refs/remotes/origin/x main;"
			    "git update-ref refs/pipelines/7 main",
			    tmp, name, path, path),
			 0);
	return path;
}

static int group_setup(void **state)
{
	(void)state;
	if (!mkdtemp(tmp))
		return -1;
	snprintf(storage, sizeof(storage), "%s/storage", tmp);
	return mkdir(storage, 0755);
}

static int group_teardown(void **state)
{
	(void)state;
	return service_remove_all(tmp);
}

static void test_create_and_remove(void **state)
{
	struct error err = ERROR_INIT;
	char out[OUT_CAP], *target = NULL, *lock = NULL;
	struct stat st;

	(void)state;
	assert_true(asprintf(&target, "%s/@hashed/ab/cd/new.git", storage) > 0);
	assert_int_equal(repo_create(storage, target, "develop", "sha1", &err), 0);
	assert_int_equal(sh(out, "git --git-dir=%s symbolic-ref HEAD", target), 0);
	chomp(out);
	assert_string_equal(out, "refs/heads/develop");
	assert_int_equal(sh(out, "git --git-dir=%s rev-parse --is-bare-repository", target), 0);
	chomp(out);
	assert_string_equal(out, "true");
	assert_int_equal(sh(NULL, "test -f %s/.gitaly-full-repack-timestamp", target), 0);
	/* Nothing left behind in the staging area, no lock file. */
	assert_int_equal(sh(out, "ls -A %s/+gitaly/tmp", storage), 0);
	assert_string_equal(out, "");
	assert_true(asprintf(&lock, "%s.lock", target) > 0);
	assert_int_equal(stat(lock, &st), -1);

	/* A second create fails and leaves the repository alone. */
	assert_int_equal(sh(NULL, "git --git-dir=%s config x.y z", target), 0);
	assert_int_equal(repo_create(storage, target, "", "sha1", &err), -1);
	assert_int_equal(err.code, STATUS_ALREADY_EXISTS);
	assert_string_equal(err.message, "repository exists already");
	error_release(&err);
	assert_int_equal(sh(out, "git --git-dir=%s config x.y", target), 0);

	/* A held lock makes removal fail without touching the repository. */
	assert_int_equal(sh(NULL, "touch %s", lock), 0);
	assert_int_equal(repo_remove(storage, target, &err), -1);
	assert_int_equal(err.code, STATUS_FAILED_PRECONDITION);
	assert_string_equal(err.message, "repository is already locked");
	error_release(&err);
	assert_int_equal(stat(target, &st), 0);
	unlink(lock);

	assert_int_equal(repo_remove(storage, target, &err), 0);
	assert_int_equal(stat(target, &st), -1);
	assert_int_equal(sh(out, "ls -A %s/+gitaly/tmp", storage), 0);
	assert_string_equal(out, "");

	assert_int_equal(repo_remove(storage, target, &err), -1);
	assert_int_equal(err.code, STATUS_NOT_FOUND);
	assert_string_equal(err.message, "repository does not exist");
	error_release(&err);
	free(lock);
	free(target);
}

static void test_create_sha256_and_bad_branch(void **state)
{
	struct error err = ERROR_INIT;
	const char *format = NULL;
	char out[OUT_CAP], *target = NULL;
	struct stat st;

	(void)state;
	assert_true(asprintf(&target, "%s/sha256.git", storage) > 0);
	assert_int_equal(repo_create(storage, target, "", "sha256", &err), 0);
	assert_int_equal(repo_object_format(target, NULL, &format, &err), 0);
	assert_string_equal(format, "sha256");
	assert_int_equal(sh(out, "git --git-dir=%s rev-parse --show-object-format", target), 0);
	chomp(out);
	assert_string_equal(out, "sha256");
	assert_int_equal(repo_remove(storage, target, &err), 0);

	/* git refuses the branch name: Internal with git's stderr, nothing created. */
	assert_int_equal(repo_create(storage, target, "a..b", "sha1", &err), -1);
	assert_int_equal(err.code, STATUS_INTERNAL);
	assert_non_null(strstr(err.message, "creating repository: exit status 128, stderr: \""));
	assert_non_null(strstr(err.message, "a..b"));
	error_release(&err);
	assert_int_equal(stat(target, &st), -1);

	/* Someone holds the target's lock: Internal, nothing moved into place. */
	assert_int_equal(sh(NULL, "touch %s.lock", target), 0);
	assert_int_equal(repo_create(storage, target, "", "sha1", &err), -1);
	assert_int_equal(err.code, STATUS_INTERNAL);
	assert_string_equal(err.message, "locking repository: file already locked");
	error_release(&err);
	assert_int_equal(stat(target, &st), -1);
	assert_int_equal(sh(NULL, "rm %s.lock", target), 0);
	free(target);
}

/* Upstream's algorithm, written independently in Python. */
static void expected_checksum(const char *repo, char *out)
{
	assert_int_equal(
		sh(out,
		   "git --git-dir=%s show-ref --head | /usr/bin/python3 -c '\n"
		   "import sys, re, hashlib\n"
		   "pat = re.compile(rb\"HEAD|(refs/(heads|tags|keep-around|merge-requests|environments|notes)/)\")\n"
		   "s = 0\n"
		   "for line in sys.stdin.buffer.read().splitlines():\n"
		   "    if pat.search(line):\n"
		   "        s ^= int.from_bytes(hashlib.sha1(line).digest(), \"big\")\n"
		   "b = s.to_bytes(20, \"big\").lstrip(bytes(1))\n"
		   "print(b.hex() if s else \"0\" * 40)\n'",
		   repo),
		0);
	chomp(out);
}

static void test_checksum(void **state)
{
	struct error err = ERROR_INIT;
	char want[OUT_CAP], *path = make_repo("sum.git"), *got = NULL, *empty = NULL;
	char *notrepo = NULL;

	(void)state;
	expected_checksum(path, want);
	assert_int_equal(strlen(want) >= 30, 1);
	assert_int_equal(repo_checksum(path, NULL, &got, &err), 0);
	assert_string_equal(got, want);
	free(got);

	/* refs outside the well-known namespaces do not count. */
	assert_int_equal(sh(NULL, "git --git-dir=%s update-ref refs/remotes/origin/y HEAD~1", path), 0);
	assert_int_equal(repo_checksum(path, NULL, &got, &err), 0);
	assert_string_equal(got, want);
	free(got);
	assert_int_equal(sh(NULL, "git --git-dir=%s update-ref refs/heads/extra HEAD~1", path), 0);
	assert_int_equal(repo_checksum(path, NULL, &got, &err), 0);
	assert_string_not_equal(got, want);
	expected_checksum(path, want);
	assert_string_equal(got, want);
	free(got);

	/* Empty repository: the zero checksum. */
	assert_true(asprintf(&empty, "%s/empty.git", storage) > 0);
	assert_int_equal(sh(NULL, "git init -q --bare %s", empty), 0);
	assert_int_equal(repo_checksum(empty, NULL, &got, &err), 0);
	assert_string_equal(got, REPO_ZERO_CHECKSUM);
	free(got);

	/* Not a repository at all: DataLoss. */
	assert_true(asprintf(&notrepo, "%s/plain-dir", tmp) > 0);
	assert_int_equal(mkdir(notrepo, 0755), 0);
	assert_int_equal(repo_checksum(notrepo, NULL, &got, &err), -1);
	assert_int_equal(err.code, STATUS_DATA_LOSS);
	assert_non_null(strstr(err.message, "not a git repository '"));
	error_release(&err);
	free(notrepo);
	free(empty);
	free(path);
}

static void test_checksum_line_filter(void **state)
{
	unsigned char sum[20] = { 0 }, zero[20] = { 0 };

	(void)state;
	assert_int_equal(repo_checksum_add_line(sum, "abc refs/remotes/x", 18), 0);
	assert_memory_equal(sum, zero, 20);
	assert_int_equal(repo_checksum_add_line(sum, "abc refs/notes/x", 16), 1);
	/* XOR: adding the same line twice cancels out. */
	assert_int_equal(repo_checksum_add_line(sum, "abc refs/notes/x", 16), 1);
	assert_memory_equal(sum, zero, 20);
	/* Unanchored like upstream: "HEAD" anywhere counts. */
	assert_int_equal(repo_checksum_add_line(sum, "abc refs/remotes/origin/HEAD", 28), 1);
}

static void test_sizes_and_info(void **state)
{
	struct error err = ERROR_INIT;
	char out[OUT_CAP], *path = make_repo("size.git");
	struct repo_info info;
	uint64_t size;

	(void)state;
	assert_int_equal(service_dir_size(path, &size, &err), 0);
	assert_int_equal(sh(out, "find %s -type f -printf '%%s\\n' | awk '{s+=$1} END {print s}'",
			    path),
			 0);
	assert_int_equal(size, strtoull(out, NULL, 10));

	/* Make some loose objects, one of them old, and check the split. */
	assert_int_equal(sh(NULL, "cd %s && echo new | git hash-object -w --stdin >/dev/null &&"
				  "o=$(echo old | git hash-object -w --stdin) &&"
				  "touch -d '30 days ago' objects/$(echo $o | cut -c1-2)/$(echo $o | cut -c3-)",
			    path),
			 0);
	assert_int_equal(repo_info_compute(path, &info, &err), 0);
	assert_int_equal(sh(out, "find %s -type f -printf '%%s\\n' | awk '{s+=$1} END {print s}'",
			    path),
			 0);
	assert_int_equal(info.size, strtoull(out, NULL, 10));
	assert_int_equal(sh(out, "cd %s && find refs -type f | wc -l", path), 0);
	assert_int_equal(info.loose_refs, strtoull(out, NULL, 10));
	assert_int_equal(sh(out, "stat -c %%s %s/packed-refs", path), 0);
	assert_int_equal(info.packed_refs_size, strtoull(out, NULL, 10));
	assert_int_equal(sh(out, "cd %s/objects && find pack -name '*.pack' -printf '%%s\\n' | awk '{s+=$1} END {print s+0}'", path), 0);
	{
		uint64_t packs = strtoull(out, NULL, 10);
		char loose[OUT_CAP], stale[OUT_CAP];

		assert_int_equal(sh(loose, "cd %s/objects && find ?? -type f -printf '%%s\\n' | awk '{s+=$1} END {print s+0}'", path), 0);
		assert_int_equal(sh(stale, "cd %s/objects && find ?? -type f -mtime +10 -printf '%%s\\n' | awk '{s+=$1} END {print s+0}'", path), 0);
		assert_true(strtoull(stale, NULL, 10) > 0);
		assert_int_equal(info.objects_size, packs + strtoull(loose, NULL, 10));
		assert_int_equal(info.objects_stale_size, strtoull(stale, NULL, 10));
		assert_int_equal(info.objects_recent_size,
				 info.objects_size - info.objects_stale_size);
		assert_int_equal(info.objects_keep_size, 0);
	}
	free(path);
}

static void test_full_path(void **state)
{
	struct error err = ERROR_INIT;
	char out[OUT_CAP], *path = make_repo("fullpath.git"), *value = NULL;

	(void)state;
	assert_int_equal(repo_full_path(path, NULL, &value, &err), -1);
	assert_int_equal(err.code, STATUS_INTERNAL);
	assert_string_equal(err.message, "fetch config: exit status 1");
	error_release(&err);
	assert_int_equal(repo_set_full_path(path, NULL, "group/project", &err), 0);
	assert_int_equal(repo_set_full_path(path, NULL, "group/renamed", &err), 0);
	assert_int_equal(sh(out, "git --git-dir=%s config --get-all gitlab.fullpath", path), 0);
	assert_string_equal(out, "group/renamed\n");
	assert_int_equal(repo_full_path(path, NULL, &value, &err), 0);
	assert_string_equal(value, "group/renamed");
	free(value);
	free(path);
}

static void test_branches_and_merge_base(void **state)
{
	struct error err = ERROR_INIT;
	char want[OUT_CAP], *path = make_repo("mb.git"), *empty = NULL, *base = NULL;
	const char *revs[] = { "main", "feature" };
	const char *bad[] = { "main", "does-not-exist" };
	const char *format = NULL;
	int has = -1;

	(void)state;
	assert_int_equal(repo_has_local_branches(path, NULL, &has, &err), 0);
	assert_int_equal(has, 1);
	assert_true(asprintf(&empty, "%s/nobranch.git", storage) > 0);
	assert_int_equal(sh(NULL, "git init -q --bare %s", empty), 0);
	assert_int_equal(repo_has_local_branches(empty, NULL, &has, &err), 0);
	assert_int_equal(has, 0);

	assert_int_equal(sh(want, "git --git-dir=%s rev-parse main~1", path), 0);
	chomp(want);
	assert_int_equal(repo_merge_base(path, NULL, revs, 2, &base, &err), 0);
	assert_string_equal(base, want);
	free(base);
	assert_int_equal(repo_merge_base(path, NULL, bad, 2, &base, &err), 0);
	assert_string_equal(base, "");
	free(base);

	assert_int_equal(repo_object_format(path, NULL, &format, &err), 0);
	assert_string_equal(format, "sha1");
	free(empty);
	free(path);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_create_and_remove),
		cmocka_unit_test(test_create_sha256_and_bad_branch),
		cmocka_unit_test(test_checksum),
		cmocka_unit_test(test_checksum_line_filter),
		cmocka_unit_test(test_sizes_and_info),
		cmocka_unit_test(test_full_path),
		cmocka_unit_test(test_branches_and_merge_base),
	};

	return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
