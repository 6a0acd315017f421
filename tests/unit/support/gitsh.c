/*
 * Test support: test_git_sh (see gitsh.h).
 */
#include "gitsh.h"

#include <git2.h>
#include <setjmp.h>
#include <stddef.h>

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>

#include "base/error.h"
#include "git/locator.h"
#include "git/repo_cache.h"

int test_git_sh(const char *dir, const char *fmt, ...)
{
	char *script = NULL;
	va_list ap;
	pid_t pid;
	int status, rc;

	va_start(ap, fmt);
	rc = vasprintf(&script, fmt, ap);
	va_end(ap);
	if (rc < 0)
		return -1;
	pid = fork();
	if (pid < 0) {
		free(script);
		return -1;
	}
	if (pid == 0) {
		if (chdir(dir) < 0)
			_exit(127);
		setenv("GIT_CONFIG_GLOBAL", "/dev/null", 1);
		setenv("GIT_CONFIG_SYSTEM", "/dev/null", 1);
		setenv("GIT_AUTHOR_NAME", "A", 1);
		setenv("GIT_AUTHOR_EMAIL", "a@example.com", 1);
		setenv("GIT_COMMITTER_NAME", "C", 1);
		setenv("GIT_COMMITTER_EMAIL", "c@example.com", 1);
		execl("/bin/sh", "sh", "-ec", script, (char *)NULL);
		_exit(127);
	}
	free(script);
	if (waitpid(pid, &status, 0) != pid)
		return -1;
	return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

void test_git_line(const char *dir, char *out, size_t cap, const char *fmt, ...)
{
	char *cmd = NULL, *file = NULL;
	va_list ap;
	FILE *f;
	int rc;

	out[0] = '\0';
	va_start(ap, fmt);
	rc = vasprintf(&cmd, fmt, ap);
	va_end(ap);
	if (rc < 0)
		return;
	if (asprintf(&file, "%s/.line", dir) > 0 &&
	    test_git_sh(dir, "(%s) > .line 2>/dev/null || : > .line", cmd) == 0 &&
	    (f = fopen(file, "r"))) {
		if (!fgets(out, (int)cap, f))
			out[0] = '\0';
		out[strcspn(out, "\n")] = '\0';
		fclose(f);
	}
	free(file);
	free(cmd);
}

void test_locate(const char *dir, const char *rel)
{
	struct locator_storage st = { "default", dir };
	struct locator loc = { &st, 1 };
	struct repo_ref ref = { .storage_name = "default", .relative_path = rel };
	struct error err = ERROR_INIT;
	char *path = NULL;

	if (locator_repo_path(&loc, &ref, 0, &path, &err) < 0)
		fail_msg("locate %s: %s", rel, err.message);
	error_release(&err);
	free(path);
}

struct git_repository *test_repo_get(const char *dir, const char *rel)
{
	struct error err = ERROR_INIT;
	git_repository *repo = NULL;
	char *path = NULL;

	if (asprintf(&path, "%s/%s", dir, rel) < 0)
		fail_msg("out of memory");
	if (repo_cache_get(path, NULL, NULL, &repo, &err) < 0)
		fail_msg("open %s: %s", path, err.message);
	error_release(&err);
	free(path);
	return repo;
}
