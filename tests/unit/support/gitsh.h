/*
 * Test support: shell snippets that build and change git repositories,
 * run in a test's scratch directory with a fixed identity and without
 * the machine's git configuration. Linked into every unit-test binary.
 */
#ifndef TESTS_SUPPORT_GITSH_H
#define TESTS_SUPPORT_GITSH_H

#include <stddef.h>

/*
 * Runs the printf-formatted script with /bin/sh -ec in dir, with
 * GIT_CONFIG_GLOBAL and GIT_CONFIG_SYSTEM set to /dev/null and author and
 * committer "A <a@example.com>" and "C <c@example.com>". Returns the exit
 * status, or -1 when it could not run.
 */
int test_git_sh(const char *dir, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* test_git_sh in dir that fails the current cmocka test when the script
 * does not exit 0 (cmocka.h must be included first). */
#define TEST_GIT_SH(dir, ...)                                           \
	do {                                                            \
		if (test_git_sh((dir), __VA_ARGS__) != 0)               \
			fail_msg("shell snippet failed: %s", #__VA_ARGS__); \
	} while (0)

/*
 * The first line of what the script prints in dir (trailing newline
 * removed) into out; "" when it prints nothing or fails.
 */
void test_git_line(const char *dir, char *out, size_t cap, const char *fmt, ...)
	__attribute__((format(printf, 4, 5)));

/*
 * What a request does first: validates dir/rel with the locator (storage
 * "default" at dir), which leaves this thread the stamp the handle cache
 * and the ref readers reuse. Fails the current cmocka test otherwise.
 */
void test_locate(const char *dir, const char *rel);

/* A handle on dir/rel from the repository cache (repo_cache_put it);
 * fails the current cmocka test when there is none. */
struct git_repository;
struct git_repository *test_repo_get(const char *dir, const char *rel);

#endif
