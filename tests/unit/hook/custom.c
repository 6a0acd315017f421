/*
 * custom hooks: discovery order (per-repo file, per-repo H.d, global H.d),
 * which files count (regular, executable, not ending in '~'), running with
 * cwd at the repository, the same stdin for each, the given environment
 * only, and stopping at the first failure with its exit code.
 */
#include <fcntl.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>

#include "base/strbuf.h"
#include "hook/custom.h"

static char root[256];

static void write_file(const char *rel, const char *content, int mode)
{
	char path[512];
	snprintf(path, sizeof(path), "%s/%s", root, rel);
	FILE *f = fopen(path, "w");
	assert_non_null(f);
	fputs(content, f);
	fclose(f);
	chmod(path, (mode_t)mode);
}

static void mk(const char *rel)
{
	char path[512];
	snprintf(path, sizeof(path), "%s/%s", root, rel);
	assert_int_equal(mkdir(path, 0755), 0);
}

static int setup(void **state)
{
	(void)state;
	snprintf(root, sizeof(root), "/tmp/custom-hooks-XXXXXX");
	assert_non_null(mkdtemp(root));
	mk("repo");
	mk("repo/custom_hooks");
	mk("repo/custom_hooks/pre-receive.d");
	mk("global");
	mk("global/pre-receive.d");
	/* Each hook prints its name, cwd, stdin and one env var. */
	const char *body = "#!/bin/sh\necho \"$0 $(pwd) $(cat) ${GL_ID:-none} ${SECRET:-hidden}\"\n";
	write_file("repo/custom_hooks/pre-receive", body, 0755);
	write_file("repo/custom_hooks/pre-receive.d/b", body, 0755);
	write_file("repo/custom_hooks/pre-receive.d/a", body, 0755);
	write_file("repo/custom_hooks/pre-receive.d/c~", body, 0755);
	write_file("repo/custom_hooks/pre-receive.d/noexec", body, 0644);
	mk("repo/custom_hooks/pre-receive.d/dir");
	write_file("global/pre-receive.d/z", body, 0755);
	return 0;
}

static int teardown(void **state)
{
	const char *const argv[] = { "/bin/rm", "-rf", root, NULL };
	int st = 0;
	pid_t pid;
	(void)state;

	pid = fork();
	if (pid == 0) {
		execv(argv[0], (char *const *)argv);
		_exit(127);
	}
	if (pid > 0)
		waitpid(pid, &st, 0);
	return 0;
}

static void test_list_order(void **state)
{
	char repo[300], global[300], **list = NULL;
	size_t n = 0;
	struct error err = ERROR_INIT;
	(void)state;

	snprintf(repo, sizeof(repo), "%s/repo", root);
	snprintf(global, sizeof(global), "%s/global", root);
	assert_int_equal(hook_custom_list(repo, global, "pre-receive", &list, &n, &err), 0);
	assert_int_equal(n, 4);
	assert_non_null(strstr(list[0], "repo/custom_hooks/pre-receive"));
	assert_non_null(strstr(list[1], "pre-receive.d/a"));
	assert_non_null(strstr(list[2], "pre-receive.d/b"));
	assert_non_null(strstr(list[3], "global/pre-receive.d/z"));
	hook_custom_list_free(list, n);

	assert_int_equal(hook_custom_list(repo, NULL, "update", &list, &n, &err), 0);
	assert_int_equal(n, 0);
	hook_custom_list_free(list, n);
}

static void test_run_and_stop_at_failure(void **state)
{
	char repo[300], global[300];
	struct strbuf out = STRBUF_INIT, eo = STRBUF_INIT;
	struct error err = ERROR_INIT;
	const char *env[] = { "PATH=/usr/bin:/bin", "GL_ID=user-7", NULL };
	int code = -5;
	(void)state;

	snprintf(repo, sizeof(repo), "%s/repo", root);
	snprintf(global, sizeof(global), "%s/global", root);
	setenv("SECRET", "leaked", 1);
	assert_int_equal(hook_custom_run(repo, global, "pre-receive", NULL, 0, env, "changes", 7,
					 &out, &eo, &code, &err),
			 0);
	assert_int_equal(code, 0);
	/* Four hooks, each saw the same stdin, cwd and only the given env. */
	char want[4096];
	snprintf(want, sizeof(want),
		 "%s/repo/custom_hooks/pre-receive %s/repo changes user-7 hidden\n"
		 "%s/repo/custom_hooks/pre-receive.d/a %s/repo changes user-7 hidden\n"
		 "%s/repo/custom_hooks/pre-receive.d/b %s/repo changes user-7 hidden\n"
		 "%s/global/pre-receive.d/z %s/repo changes user-7 hidden\n",
		 root, root, root, root, root, root, root, root);
	assert_string_equal(out.buf, want);
	strbuf_reset(&out);

	/* The second hook fails: the third never runs, its code is reported. */
	write_file("repo/custom_hooks/pre-receive.d/a", "#!/bin/sh\necho nope >&2\nexit 3\n", 0755);
	assert_int_equal(hook_custom_run(repo, global, "pre-receive", NULL, 0, env, "x", 1, &out,
					 &eo, &code, &err),
			 0);
	assert_int_equal(code, 3);
	assert_string_equal(eo.buf, "nope\n");
	assert_null(strstr(out.buf, "pre-receive.d/b"));
	assert_non_null(strstr(out.buf, "custom_hooks/pre-receive "));
	strbuf_release(&out);
	strbuf_release(&eo);

	/* Arguments reach the hook (update gets ref old new). */
	mk("repo/custom_hooks/update.d");
	write_file("repo/custom_hooks/update.d/u", "#!/bin/sh\necho \"$1|$2|$3\"\n", 0755);
	const char *args[] = { "refs/heads/main", "0000", "1111" };
	assert_int_equal(hook_custom_run(repo, NULL, "update", args, 3, env, "", 0, &out, &eo, &code,
					 &err),
			 0);
	assert_int_equal(code, 0);
	assert_string_equal(out.buf, "refs/heads/main|0000|1111\n");
	strbuf_release(&out);
	strbuf_release(&eo);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_list_order),
		cmocka_unit_test(test_run_and_stop_at_failure),
	};
	return cmocka_run_group_tests(tests, setup, teardown);
}
