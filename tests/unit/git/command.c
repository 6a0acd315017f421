/*
 * The git command builder: argv exactly as built, validation failures, the
 * hardened environment (checked both in envp and in what a child really
 * sees), timeouts killing the whole process group, large stdin/stdout/stderr
 * traffic without deadlock, caps, and the real git for stdin feeding, config
 * isolation and the version.
 */
#include <errno.h>
#include <fcntl.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "base/error.h"
#include "base/fsutil.h"
#include "base/process.h"
#include "base/strbuf.h"
#include "git/command.h"

static char tmpdir[64];
static char fake_git[128];

static const char fake_script[] =
	"#!/bin/sh\n"
	"case \"$FAKE_MODE\" in\n"
	"args) for a in \"$@\"; do printf '%s\\n' \"$a\"; done ;;\n"
	"env) env ;;\n"
	"pwd) pwd ;;\n"
	"sleep) sleep 30 & echo $! > \"$FAKE_PIDFILE\"; sleep 30 ;;\n"
	"tee) tee /dev/stderr ;;\n"
	"exit) echo out; echo err >&2; exit 3 ;;\n"
	"signal) kill -TERM $$ ;;\n"
	"closein) exec 0<&-; sleep 0.2; echo done ;;\n"
	"esac\n";

static int group_setup(void **state)
{
	struct error err = ERROR_INIT;

	(void)state;
	snprintf(tmpdir, sizeof(tmpdir), "/tmp/command-test-XXXXXX");
	if (!mkdtemp(tmpdir))
		return -1;
	snprintf(fake_git, sizeof(fake_git), "%s/fake-git", tmpdir);
	if (fsutil_write_atomic(fake_git, fake_script, strlen(fake_script), 0755, &err) < 0)
		return -1;
	return 0;
}

static int group_teardown(void **state)
{
	struct error err = ERROR_INIT;

	(void)state;
	fsutil_remove_tree(tmpdir, &err);
	error_release(&err);
	return 0;
}

static void use_binary(const char *bin, const char *const *config, size_t n)
{
	struct git_exec_env e = { .git_binary = bin, .config = config, .n_config = n };
	git_exec_env_set(&e);
}

static void use_real_git(void)
{
	use_binary("/usr/bin/git", NULL, 0);
}

/* Compares argv with a NULL-terminated expectation. */
static void assert_argv(const char *const *argv, const char *const *want)
{
	size_t i;

	for (i = 0; want[i]; i++) {
		if (!argv[i])
			fail_msg("argv too short at %zu, want \"%s\"", i, want[i]);
		assert_string_equal(argv[i], want[i]);
	}
	if (argv[i])
		fail_msg("argv too long: extra \"%s\"", argv[i]);
}

static void test_argv_exact(void **state)
{
	const char *admin[] = { "core.packedGitLimit=1g", "gc.auto=5" };
	struct error err = ERROR_INIT;
	struct git_cmd *cmd;
	(void)state;

	use_binary("/opt/git/bin/git", admin, 2);
	cmd = git_cmd_new("/srv/repo.git", "log");
	git_cmd_config(cmd, "diff.noprefix", "true");
	git_cmd_flag(cmd, "--oneline");
	git_cmd_option(cmd, "format", "%H %s");
	git_cmd_option(cmd, "--max-count", "5");
	git_cmd_arg(cmd, "main");
	git_cmd_arg(cmd, "-weird");
	git_cmd_path(cmd, "README");
	git_cmd_path(cmd, "-dash");
	{
		const char *want[] = {
			"/opt/git/bin/git", "--git-dir=/srv/repo.git",
			"-c", "gc.auto=0", "-c", "maintenance.auto=0",
			"-c", "core.autocrlf=false", "-c", "core.useReplaceRefs=false",
			"-c", "core.bigFileThreshold=50m",
			"-c", "core.fsync=objects,derived-metadata,reference",
			"-c", "core.fsyncMethod=fsync",
			"-c", "diff.noprefix=true",
			"-c", "core.packedGitLimit=1g", "-c", "gc.auto=5",
			"log", "--oneline", "--format=%H %s", "--max-count=5",
			"--end-of-options", "main", "-weird", "--", "README", "-dash", NULL,
		};
		assert_argv(git_cmd_argv(cmd, &err), want);
	}
	git_cmd_free(cmd);

	/* no repository, no args: neither --git-dir nor --end-of-options */
	use_binary("/usr/bin/git", NULL, 0);
	cmd = git_cmd_new(NULL, "version");
	{
		const char *const *argv = git_cmd_argv(cmd, &err);
		assert_string_equal(argv[0], "/usr/bin/git");
		assert_string_equal(argv[1], "-c");
		for (size_t i = 0; argv[i]; i++) {
			assert_true(strncmp(argv[i], "--git-dir", 9) != 0);
			assert_string_not_equal(argv[i], "--end-of-options");
		}
	}
	git_cmd_free(cmd);
}

static int argv_has(const char *const *argv, const char *s)
{
	for (size_t i = 0; argv[i]; i++)
		if (!strcmp(argv[i], s))
			return 1;
	return 0;
}

static void test_subcommand_defaults(void **state)
{
	struct error err = ERROR_INIT;
	struct git_cmd *cmd;
	const char *const *argv;
	(void)state;

	use_real_git();
	cmd = git_cmd_new("/r", "receive-pack");
	git_cmd_arg(cmd, "/r");
	argv = git_cmd_argv(cmd, &err);
	assert_true(argv_has(argv, "receive.hideRefs=refs/keep-around/"));
	assert_true(argv_has(argv, "receive.hideRefs=refs/merge-requests/"));
	assert_true(argv_has(argv, "receive.fsckObjects=true"));
	assert_true(argv_has(argv, "receive.advertisePushOptions=true"));
	assert_true(argv_has(argv, "pack.windowMemory=100m"));
	git_cmd_free(cmd);

	cmd = git_cmd_new("/r", "upload-pack");
	argv = git_cmd_argv(cmd, &err);
	assert_true(argv_has(argv, "uploadpack.allowFilter=true"));
	assert_true(argv_has(argv, "uploadpack.hideRefs=refs/tmp/"));
	assert_false(argv_has(argv, "uploadpack.hideRefs=refs/merge-requests/"));
	git_cmd_free(cmd);

	cmd = git_cmd_new(NULL, "init");
	argv = git_cmd_argv(cmd, &err);
	assert_true(argv_has(argv, "init.templateDir="));
	assert_true(argv_has(argv, "init.defaultBranch=main"));
	git_cmd_free(cmd);

	cmd = git_cmd_new("/r", "fetch");
	argv = git_cmd_argv(cmd, &err);
	assert_true(argv_has(argv, "http.followRedirects=false"));
	assert_true(argv_has(argv, "fetch.fsckObjects=true"));
	git_cmd_free(cmd);
}

static void expect_build_error(struct git_cmd *cmd, const char *msg)
{
	struct error err = ERROR_INIT;
	struct git_result res;

	assert_int_equal(git_cmd_run(cmd, NULL, 0, NULL, NULL, &res, &err), -1);
	assert_int_equal(err.code, STATUS_INVALID_ARGUMENT);
	assert_string_equal(err.message, msg);
	error_release(&err);
}

static void test_validation(void **state)
{
	struct git_cmd *cmd;
	(void)state;

	use_real_git();
	cmd = git_cmd_new(NULL, "version");
	git_cmd_config(cmd, "core", "x");
	expect_build_error(cmd, "config key \"core\" failed regexp validation");

	cmd = git_cmd_new(NULL, "version");
	git_cmd_config(cmd, "core.a=b", "x");
	expect_build_error(cmd, "config key \"core.a=b\" failed regexp validation");

	cmd = git_cmd_new(NULL, "version");
	git_cmd_flag(cmd, "oneline");
	expect_build_error(cmd, "flag \"oneline\" must start with '-'");

	cmd = git_cmd_new(NULL, "filter-branch");
	expect_build_error(cmd, "invalid sub command name \"filter-branch\"");

	cmd = git_cmd_new(NULL, "--exec-path");
	expect_build_error(cmd, "invalid sub command name \"--exec-path\"");

	/* rev-parse has no --end-of-options, so a dash argument is refused */
	cmd = git_cmd_new("/r", "rev-parse");
	git_cmd_arg(cmd, "--output=/etc/passwd");
	expect_build_error(cmd, "positional arg \"--output=/etc/passwd\" cannot start with dash '-'");

	cmd = git_cmd_new("/r", "rev-list");
	git_cmd_pseudo_arg(cmd, "--exec=x");
	expect_build_error(cmd, "invalid pseudo-revision \"--exec=x\"");

	cmd = git_cmd_new(NULL, "version");
	git_cmd_setenv(cmd, "A=B", "x");
	expect_build_error(cmd, "invalid environment variable name \"A=B\"");

	assert_true(git_config_key_valid("core.fsync"));
	assert_true(git_config_key_valid("http.https://example.com/x.extraHeader"));
	assert_true(git_config_key_valid("a1.b*+,-./_:@Z"));
	assert_false(git_config_key_valid("core."));
	assert_false(git_config_key_valid(".core"));
	assert_false(git_config_key_valid("co re.x"));
	assert_false(git_config_key_valid("core.x y"));
	assert_false(git_config_key_valid(""));
}

static void test_pseudo_and_no_eoo(void **state)
{
	struct error err = ERROR_INIT;
	struct git_cmd *cmd;
	(void)state;

	use_binary("/usr/bin/git", NULL, 0);
	cmd = git_cmd_new("/r", "rev-list");
	git_cmd_flag(cmd, "--count");
	git_cmd_arg(cmd, "main");
	git_cmd_pseudo_arg(cmd, "--not");
	git_cmd_pseudo_arg(cmd, "--all");
	{
		const char *const *argv = git_cmd_argv(cmd, &err);
		size_t n = 0;
		while (argv[n])
			n++;
		assert_true(n >= 5);
		assert_string_equal(argv[n - 5], "rev-list");
		assert_string_equal(argv[n - 4], "--count");
		assert_string_equal(argv[n - 3], "main");
		assert_string_equal(argv[n - 2], "--not");
		assert_string_equal(argv[n - 1], "--all");
		assert_false(argv_has(argv, "--end-of-options"));
	}
	git_cmd_free(cmd);
}

static struct git_cmd *fake_cmd(const char *repo, const char *mode)
{
	struct git_cmd *cmd;

	use_binary(fake_git, NULL, 0);
	cmd = git_cmd_new(repo, "version");
	git_cmd_setenv(cmd, "FAKE_MODE", mode);
	return cmd;
}

static void test_env_hardening(void **state)
{
	struct error err = ERROR_INIT;
	struct strbuf out = STRBUF_INIT;
	struct git_result res;
	struct git_cmd *cmd;
	(void)state;

	setenv("GIT_DIR", "/evil/dir", 1);
	setenv("GIT_CONFIG_PARAMETERS", "'core.sshcommand=evil'", 1);
	setenv("GIT_OBJECT_DIRECTORY", "/evil/objects", 1);
	setenv("GIT_CONFIG_GLOBAL", "/evil/gitconfig", 1);
	setenv("LANG", "C", 1);
	setenv("SOME_SECRET", "hunter2", 1);
	setenv("TZ", "Europe/Berlin", 1);

	cmd = fake_cmd(NULL, "env");
	git_cmd_setenv(cmd, "GL_ID", "user-1");
	assert_int_equal(git_cmd_run(cmd, NULL, 0, &out, NULL, &res, &err), 0);
	assert_int_equal(res.exit_code, 0);
	assert_non_null(strstr(out.buf, "\nLANG=en_US.UTF-8\n"));
	assert_non_null(strstr(out.buf, "GIT_TERMINAL_PROMPT=0\n"));
	assert_non_null(strstr(out.buf, "GIT_CONFIG_GLOBAL=/dev/null\n"));
	assert_non_null(strstr(out.buf, "GIT_CONFIG_SYSTEM=/dev/null\n"));
	assert_non_null(strstr(out.buf, "XDG_CONFIG_HOME=/dev/null\n"));
	assert_non_null(strstr(out.buf, "GL_ID=user-1\n"));
	assert_non_null(strstr(out.buf, "TZ=Europe/Berlin\n"));
	assert_non_null(strstr(out.buf, "PATH="));
	assert_null(strstr(out.buf, "GIT_DIR="));
	assert_null(strstr(out.buf, "GIT_CONFIG_PARAMETERS"));
	assert_null(strstr(out.buf, "GIT_OBJECT_DIRECTORY"));
	assert_null(strstr(out.buf, "/evil"));
	assert_null(strstr(out.buf, "hunter2"));
	assert_null(strstr(out.buf, "LANG=C\n"));
	strbuf_release(&out);

	/* explicit per-command values win over the hardened defaults */
	cmd = fake_cmd(NULL, "env");
	git_cmd_setenv(cmd, "GIT_OBJECT_DIRECTORY", "/q/objects");
	git_cmd_setenv(cmd, "LANG", "C.UTF-8");
	assert_int_equal(git_cmd_run(cmd, NULL, 0, &out, NULL, &res, &err), 0);
	assert_non_null(strstr(out.buf, "GIT_OBJECT_DIRECTORY=/q/objects\n"));
	assert_non_null(strstr(out.buf, "LANG=C.UTF-8\n"));
	assert_null(strstr(out.buf, "en_US"));
	strbuf_release(&out);

	unsetenv("GIT_DIR");
	unsetenv("GIT_CONFIG_PARAMETERS");
	unsetenv("GIT_OBJECT_DIRECTORY");
	unsetenv("GIT_CONFIG_GLOBAL");
	unsetenv("SOME_SECRET");
	unsetenv("TZ");
}

static void test_real_git_config_isolation(void **state)
{
	struct error err = ERROR_INIT;
	struct strbuf out = STRBUF_INIT;
	struct git_result res;
	struct git_cmd *cmd;
	char *home = NULL, *cfg = NULL, *old_home = getenv("HOME") ? strdup(getenv("HOME")) : NULL;
	static const char gitconfig[] = "[user]\n\tname = leaked\n[gc]\n\tauto = 99\n";
	(void)state;

	assert_true(asprintf(&home, "%s/home", tmpdir) > 0);
	assert_int_equal(fsutil_mkdir_p(home, 0755, &err), 0);
	assert_true(asprintf(&cfg, "%s/.gitconfig", home) > 0);
	assert_int_equal(fsutil_write_atomic(cfg, gitconfig, strlen(gitconfig), 0644, &err), 0);
	setenv("HOME", home, 1);

	use_real_git();
	cmd = git_cmd_new(NULL, "config");
	git_cmd_flag(cmd, "--get");
	git_cmd_arg(cmd, "user.name");
	assert_int_equal(git_cmd_run(cmd, NULL, 0, &out, NULL, &res, &err), 0);
	assert_int_equal(res.exit_code, 1); /* not found: ~/.gitconfig ignored */
	assert_int_equal(out.len, 0);

	/* our global -c defaults are what git sees */
	cmd = git_cmd_new(NULL, "config");
	git_cmd_flag(cmd, "--get");
	git_cmd_arg(cmd, "gc.auto");
	assert_int_equal(git_cmd_run(cmd, NULL, 0, &out, NULL, &res, &err), 0);
	assert_int_equal(res.exit_code, 0);
	assert_string_equal(out.buf, "0\n");
	strbuf_release(&out);

	/* [[git.config]] comes last and wins */
	{
		const char *admin[] = { "gc.auto=7" };
		use_binary("/usr/bin/git", admin, 1);
	}
	cmd = git_cmd_new(NULL, "config");
	git_cmd_flag(cmd, "--get");
	git_cmd_arg(cmd, "gc.auto");
	assert_int_equal(git_cmd_run(cmd, NULL, 0, &out, NULL, &res, &err), 0);
	assert_string_equal(out.buf, "7\n");
	strbuf_release(&out);
	use_real_git();

	if (old_home)
		setenv("HOME", old_home, 1);
	else
		unsetenv("HOME");
	free(old_home);
	free(home);
	free(cfg);
}

static void test_stdin_real_git(void **state)
{
	struct error err = ERROR_INIT;
	struct strbuf out = STRBUF_INIT, errb = STRBUF_INIT;
	struct git_result res;
	struct git_cmd *cmd;
	(void)state;

	use_real_git();
	cmd = git_cmd_new(NULL, "hash-object");
	git_cmd_flag(cmd, "--stdin");
	assert_int_equal(git_cmd_run(cmd, "hello\n", 6, &out, &errb, &res, &err), 0);
	assert_int_equal(res.exit_code, 0);
	assert_int_equal(res.timed_out, 0);
	assert_string_equal(out.buf, "ce013625030ba8dba906f756967f9e9ca394464a\n");
	strbuf_release(&out);
	strbuf_release(&errb);
}

static void test_exit_and_signal(void **state)
{
	struct error err = ERROR_INIT;
	struct strbuf out = STRBUF_INIT, errb = STRBUF_INIT;
	struct git_result res;
	(void)state;

	assert_int_equal(git_cmd_run(fake_cmd(NULL, "exit"), NULL, 0, &out, &errb, &res, &err), 0);
	assert_int_equal(res.exit_code, 3);
	assert_int_equal(res.signal, 0);
	assert_string_equal(out.buf, "out\n");
	assert_string_equal(errb.buf, "err\n");
	strbuf_release(&out);
	strbuf_release(&errb);

	assert_int_equal(git_cmd_run(fake_cmd(NULL, "signal"), NULL, 0, NULL, NULL, &res, &err), 0);
	assert_int_equal(res.exit_code, -1);
	assert_int_equal(res.signal, SIGTERM);
	assert_int_equal(res.timed_out, 0);
}

static void test_cwd(void **state)
{
	struct error err = ERROR_INIT;
	struct strbuf out = STRBUF_INIT;
	struct git_result res;
	struct git_cmd *cmd;
	(void)state;

	cmd = fake_cmd(tmpdir, "pwd");
	assert_int_equal(git_cmd_run(cmd, NULL, 0, &out, NULL, &res, &err), 0);
	strbuf_rtrim(&out);
	assert_string_equal(out.buf, tmpdir);
	strbuf_release(&out);

	cmd = fake_cmd(NULL, "pwd");
	assert_int_equal(git_cmd_run(cmd, NULL, 0, &out, NULL, &res, &err), 0);
	assert_string_equal(out.buf, "/\n");
	strbuf_release(&out);

	cmd = fake_cmd(tmpdir, "pwd");
	git_cmd_chdir(cmd, "/tmp");
	assert_int_equal(git_cmd_run(cmd, NULL, 0, &out, NULL, &res, &err), 0);
	assert_string_equal(out.buf, "/tmp\n");
	strbuf_release(&out);
}

static int process_gone(pid_t pid)
{
	char path[64], buf[512];
	FILE *f;
	char *p;

	snprintf(path, sizeof(path), "/proc/%d/stat", (int)pid);
	f = fopen(path, "r");
	if (!f)
		return 1;
	if (!fgets(buf, sizeof(buf), f)) {
		fclose(f);
		return 1;
	}
	fclose(f);
	p = strrchr(buf, ')');
	return p && (p[2] == 'Z' || p[2] == 'X');
}

static void test_timeout_kills_group(void **state)
{
	struct error err = ERROR_INIT;
	struct git_result res;
	struct git_cmd *cmd;
	char *pidfile = NULL, *text = NULL;
	int64_t start;
	pid_t bg;
	(void)state;

	assert_true(asprintf(&pidfile, "%s/bg.pid", tmpdir) > 0);
	cmd = fake_cmd(NULL, "sleep");
	git_cmd_setenv(cmd, "FAKE_PIDFILE", pidfile);
	git_cmd_timeout(cmd, 300);
	start = process_now_ms();
	assert_int_equal(git_cmd_run(cmd, NULL, 0, NULL, NULL, &res, &err), 0);
	assert_true(process_now_ms() - start < 5000);
	assert_int_equal(res.timed_out, 1);
	assert_int_equal(res.exit_code, -1);
	assert_int_equal(res.signal, SIGKILL);

	assert_int_equal(fsutil_read_file(pidfile, 64, &text, NULL, &err), 0);
	bg = (pid_t)atoi(text);
	assert_true(bg > 0);
	/* the grandchild was in the group and died too (allow the reaper a moment) */
	for (int i = 0; i < 100 && !process_gone(bg); i++)
		usleep(10000);
	assert_true(process_gone(bg));
	free(text);
	free(pidfile);
}

static void test_large_io(void **state)
{
	struct error err = ERROR_INIT;
	struct strbuf out = STRBUF_INIT, errb = STRBUF_INIT;
	struct git_result res;
	size_t len = 8u << 20;
	char *data = malloc(len);
	(void)state;

	for (size_t i = 0; i < len; i++)
		data[i] = (char)('a' + i % 26);
	/* tee echoes stdin to both stdout and stderr: all three pipes are busy */
	assert_int_equal(git_cmd_run(fake_cmd(NULL, "tee"), data, len, &out, &errb, &res, &err), 0);
	assert_int_equal(res.exit_code, 0);
	assert_int_equal(out.len, len);
	assert_int_equal(errb.len, len);
	assert_memory_equal(out.buf, data, len);
	assert_memory_equal(errb.buf, data, len);
	strbuf_release(&out);
	strbuf_release(&errb);

	/* capped: the excess is drained and dropped, the child still exits 0 */
	strbuf_init(&out, 1000);
	strbuf_init(&errb, 10);
	assert_int_equal(git_cmd_run(fake_cmd(NULL, "tee"), data, len, &out, &errb, &res, &err), 0);
	assert_int_equal(res.exit_code, 0);
	assert_int_equal(out.len, 1000);
	assert_int_equal(errb.len, 10);
	assert_memory_equal(out.buf, data, 1000);
	strbuf_release(&out);
	strbuf_release(&errb);

	/* discarding both outputs still works */
	assert_int_equal(git_cmd_run(fake_cmd(NULL, "tee"), data, len, NULL, NULL, &res, &err), 0);
	assert_int_equal(res.exit_code, 0);

	/* a child closing stdin early: no SIGPIPE for us, the run completes */
	strbuf_init(&out, 0);
	assert_int_equal(git_cmd_run(fake_cmd(NULL, "closein"), data, len, &out, NULL, &res, &err), 0);
	assert_int_equal(res.exit_code, 0);
	assert_string_equal(out.buf, "done\n");
	strbuf_release(&out);
	free(data);
}

static void test_start_wait(void **state)
{
	struct error err = ERROR_INIT;
	struct git_result res;
	int in = -1, out = -1;
	pid_t pid;
	char buf[64];
	ssize_t n;
	size_t got = 0;
	(void)state;

	use_real_git();
	{
		struct git_cmd *cmd = git_cmd_new(NULL, "hash-object");
		git_cmd_flag(cmd, "--stdin");
		assert_int_equal(git_cmd_start(cmd, &in, &out, NULL, &pid, &err), 0);
	}
	assert_int_equal(write(in, "hello\n", 6), 6);
	close(in);
	while ((n = read(out, buf + got, sizeof(buf) - 1 - got)) > 0)
		got += (size_t)n;
	buf[got] = '\0';
	close(out);
	assert_string_equal(buf, "ce013625030ba8dba906f756967f9e9ca394464a\n");
	assert_int_equal(git_cmd_wait(pid, &res), 0);
	assert_int_equal(res.exit_code, 0);

	/* kill a streaming command */
	{
		struct git_cmd *cmd = fake_cmd(NULL, "sleep");
		char *pidfile = NULL;
		assert_true(asprintf(&pidfile, "%s/bg2.pid", tmpdir) > 0);
		git_cmd_setenv(cmd, "FAKE_PIDFILE", pidfile);
		assert_int_equal(git_cmd_start(cmd, NULL, NULL, NULL, &pid, &err), 0);
		git_cmd_kill(pid);
		assert_int_equal(git_cmd_wait(pid, &res), 0);
		assert_int_equal(res.signal, SIGKILL);
		free(pidfile);
	}
}

/* The per-subcommand defaults are accepted by the installed git. */
static void test_real_git_subcommands(void **state)
{
	struct error err = ERROR_INIT;
	struct strbuf out = STRBUF_INIT, errb = STRBUF_INIT;
	struct git_result res;
	struct git_cmd *cmd;
	char *repo = NULL;
	static const char *const advertise[] = { "upload-pack", "receive-pack" };
	(void)state;

	use_real_git();
	assert_true(asprintf(&repo, "%s/real.git", tmpdir) > 0);
	cmd = git_cmd_new(NULL, "init");
	git_cmd_flag(cmd, "--bare");
	git_cmd_flag(cmd, "--quiet");
	git_cmd_arg(cmd, repo);
	assert_int_equal(git_cmd_run(cmd, NULL, 0, &out, &errb, &res, &err), 0);
	if (res.exit_code != 0)
		fail_msg("init: %s", errb.buf);
	strbuf_reset(&errb);

	cmd = git_cmd_new(repo, "symbolic-ref");
	git_cmd_arg(cmd, "HEAD");
	assert_int_equal(git_cmd_run(cmd, NULL, 0, &out, &errb, &res, &err), 0);
	assert_int_equal(res.exit_code, 0);
	assert_string_equal(out.buf, "refs/heads/main\n"); /* init.defaultBranch=main */
	strbuf_reset(&out);

	for (size_t i = 0; i < 2; i++) {
		cmd = git_cmd_new(repo, advertise[i]);
		git_cmd_flag(cmd, "--advertise-refs");
		git_cmd_arg(cmd, repo);
		assert_int_equal(git_cmd_run(cmd, NULL, 0, &out, &errb, &res, &err), 0);
		if (res.exit_code != 0)
			fail_msg("%s: %s", advertise[i], errb.buf);
		assert_int_equal(errb.len, 0);
		/* pkt-lines ending in a flush (an empty repo may advertise nothing) */
		assert_true(out.len >= 4);
		assert_string_equal(out.buf + out.len - 4, "0000");
		strbuf_reset(&out);
	}

	cmd = git_cmd_new(repo, "repack");
	git_cmd_flag(cmd, "-a");
	git_cmd_flag(cmd, "-d");
	assert_int_equal(git_cmd_run(cmd, NULL, 0, &out, &errb, &res, &err), 0);
	if (res.exit_code != 0)
		fail_msg("repack: %s", errb.buf);

	/* init without templates: no sample hooks copied */
	{
		char *hooks = NULL;
		assert_true(asprintf(&hooks, "%s/hooks/pre-commit.sample", repo) > 0);
		assert_int_equal(access(hooks, F_OK), -1);
		free(hooks);
	}
	strbuf_release(&out);
	strbuf_release(&errb);
	free(repo);
}

struct stats_sum {
	int count;
	int64_t user_ms, real_ms;
	int64_t maxrss;
};

static void sum_stats(void *arg, const struct git_result *res)
{
	struct stats_sum *s = arg;
	s->count++;
	s->user_ms += res->user_time_ms;
	s->real_ms += res->real_time_ms;
	if (res->maxrss_kb > s->maxrss)
		s->maxrss = res->maxrss_kb;
}

static void test_usage_and_cgroup(void **state)
{
	struct error err = ERROR_INIT;
	struct stats_sum sum = { 0 };
	struct git_result res;
	struct git_cmd *cmd;
	char *procs = NULL, *text = NULL;
	pid_t pid;
	(void)state;

	git_cmd_stats_sink(sum_stats, &sum);
	/* a command that burns some CPU and memory in the child */
	cmd = fake_cmd(NULL, "tee");
	assert_int_equal(git_cmd_run(cmd, "x", 1, NULL, NULL, &res, &err), 0);
	assert_int_equal(sum.count, 1);
	assert_true(res.maxrss_kb > 0);
	assert_true(res.minflt > 0);
	assert_true(res.real_time_ms >= 0);

	cmd = fake_cmd(NULL, "sleep");
	assert_true(asprintf(&procs, "%s/bg3.pid", tmpdir) > 0);
	git_cmd_setenv(cmd, "FAKE_PIDFILE", procs);
	free(procs);
	/* a fake cgroup directory: the pid lands in its cgroup.procs */
	{
		char *cg = NULL;
		assert_true(asprintf(&cg, "%s/cg", tmpdir) > 0);
		assert_int_equal(fsutil_mkdir_p(cg, 0755, &err), 0);
		assert_true(asprintf(&procs, "%s/cgroup.procs", cg) > 0);
		assert_int_equal(fsutil_write_atomic(procs, "", 0, 0644, &err), 0);
		git_cmd_cgroup(cmd, cg);
		free(cg);
	}
	assert_int_equal(git_cmd_start(cmd, NULL, NULL, NULL, &pid, &err), 0);
	usleep(200 * 1000);
	git_cmd_kill(pid);
	assert_int_equal(git_cmd_wait(pid, &res), 0);
	assert_int_equal(sum.count, 2);
	assert_true(res.real_time_ms >= 150);
	assert_int_equal(fsutil_read_file(procs, 64, &text, NULL, &err), 0);
	{
		char want[32];
		snprintf(want, sizeof(want), "%d\n", (int)pid);
		assert_string_equal(text, want);
	}
	free(text);
	free(procs);
	git_cmd_stats_sink(NULL, NULL);
	assert_int_equal(git_cmd_run(fake_cmd(NULL, "exit"), NULL, 0, NULL, NULL, &res, &err), 0);
	assert_int_equal(sum.count, 2);
}

static void test_spawn_failure(void **state)
{
	struct error err = ERROR_INIT;
	struct git_result res;
	(void)state;

	use_binary("/nonexistent/git", NULL, 0);
	assert_int_equal(git_cmd_run(git_cmd_new(NULL, "version"), NULL, 0, NULL, NULL, &res, &err),
			 -1);
	assert_int_equal(err.code, STATUS_INTERNAL);
	assert_non_null(strstr(err.message, "No such file"));
	error_release(&err);
	use_real_git();
}

static void test_version(void **state)
{
	struct error err = ERROR_INIT;
	char *v = NULL, *v2 = NULL;
	(void)state;

	assert_int_equal(git_version_parse("git version 2.39.5\n", &v), 0);
	assert_string_equal(v, "2.39.5");
	free(v);
	assert_int_equal(git_version_parse("git version 2.42.0.gl1\n", &v), 0);
	assert_string_equal(v, "2.42.0.gl1");
	free(v);
	assert_int_equal(git_version_parse("git version 2.39.5 (Apple Git-143)\n", &v), 0);
	assert_string_equal(v, "2.39.5");
	free(v);
	assert_int_equal(git_version_parse("hub version 1\n", &v), -1);
	assert_null(v);
	assert_int_equal(git_version_parse("git version \n", &v), -1);

	use_real_git();
	assert_int_equal(git_version(&v, &err), 0);
	/* the installed git, as `git --version` reports it */
	{
		FILE *p = NULL;
		char line[128] = "";
		int fds[2];
		pid_t pid;
		const char *argv[] = { "/usr/bin/git", "--version", NULL };
		const char *envp[] = { "PATH=/usr/bin:/bin", NULL };
		struct process_spawn_opts o = { .path = "/usr/bin/git", .argv = argv, .envp = envp,
						.stdin_fd = -1, .stderr_fd = -1 };
		struct process_status st;
		char *parsed = NULL;

		assert_int_equal(pipe(fds), 0);
		o.stdout_fd = fds[1];
		assert_int_equal(process_spawn(&o, &pid, &err), 0);
		close(fds[1]);
		p = fdopen(fds[0], "r");
		assert_non_null(fgets(line, sizeof(line), p));
		fclose(p);
		assert_int_equal(process_wait(pid, 0, &st), 0);
		assert_int_equal(git_version_parse(line, &parsed), 0);
		assert_string_equal(v, parsed);
		free(parsed);
	}
	assert_int_equal(git_version(&v2, &err), 0);
	assert_string_equal(v, v2);
	free(v);
	free(v2);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_argv_exact),
		cmocka_unit_test(test_subcommand_defaults),
		cmocka_unit_test(test_validation),
		cmocka_unit_test(test_pseudo_and_no_eoo),
		cmocka_unit_test(test_env_hardening),
		cmocka_unit_test(test_real_git_config_isolation),
		cmocka_unit_test(test_stdin_real_git),
		cmocka_unit_test(test_exit_and_signal),
		cmocka_unit_test(test_cwd),
		cmocka_unit_test(test_timeout_kills_group),
		cmocka_unit_test(test_large_io),
		cmocka_unit_test(test_start_wait),
		cmocka_unit_test(test_real_git_subcommands),
		cmocka_unit_test(test_usage_and_cgroup),
		cmocka_unit_test(test_spawn_failure),
		cmocka_unit_test(test_version),
	};
	return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
