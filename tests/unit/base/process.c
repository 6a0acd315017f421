/*
 * process: no descriptor leaks into children, a new process group, a clean
 * signal mask, exact environment, waits with deadlines, group kills and the
 * pump's deadline.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "base/error.h"
#include "base/process.h"
#include "base/strbuf.h"

static const char *const clean_env[] = { "PATH=/usr/bin:/bin", "ONLY=this", NULL };

/* Runs argv and returns its stdout (and exit status). */
static char *run(const char *const *argv, int *exit_code)
{
	struct error err = ERROR_INIT;
	struct process_spawn_opts o = { .path = argv[0], .argv = argv, .envp = clean_env,
					.stdin_fd = -1, .stderr_fd = -1, .new_pgroup = 1 };
	struct strbuf out = STRBUF_INIT;
	struct process_pump_io io = { .stdin_fd = -1, .stderr_fd = -1, .out = &out };
	struct process_status st;
	int p[2];
	pid_t pid;

	assert_int_equal(pipe2(p, O_CLOEXEC), 0);
	o.stdout_fd = p[1];
	assert_int_equal(process_spawn(&o, &pid, &err), 0);
	close(p[1]);
	io.stdout_fd = p[0];
	assert_int_equal(process_pump(&io, &err), 0);
	assert_int_equal(process_wait(pid, 0, &st), 0);
	*exit_code = st.exit_code;
	return strbuf_detach(&out, NULL);
}

static void test_no_fd_leak(void **state)
{
	int leak = open("/dev/null", O_RDONLY); /* deliberately without O_CLOEXEC */
	const char *argv[] = { "/bin/sh", "-c", "ls /proc/$$/fd", NULL };
	int code;
	char *out;
	(void)state;

	assert_true(leak > 2);
	out = run(argv, &code);
	assert_int_equal(code, 0);
	assert_string_equal(out, "0\n1\n2\n");
	free(out);
	close(leak);
}

static void test_pgroup_env_sigmask(void **state)
{
	const char *stat_argv[] = { "/bin/cat", "/proc/self/stat", NULL };
	const char *env_argv[] = { "/usr/bin/env", NULL };
	const char *mask_argv[] = { "/bin/grep", "-E", "^Sig(Blk|Ign)", "/proc/self/status", NULL };
	sigset_t block, old;
	int code, pid, ppid, pgrp;
	char *out, *p;
	(void)state;

	out = run(stat_argv, &code);
	p = strrchr(out, ')');
	assert_non_null(p);
	assert_int_equal(sscanf(out, "%d", &pid), 1);
	assert_int_equal(sscanf(p + 2, "%*c %d %d", &ppid, &pgrp), 2);
	assert_int_equal(pgrp, pid); /* leads its own group */
	assert_int_equal(ppid, getpid());
	free(out);

	out = run(env_argv, &code);
	assert_string_equal(out, "PATH=/usr/bin:/bin\nONLY=this\n");
	free(out);

	/* a blocked or ignored signal in the server does not reach the child */
	sigemptyset(&block);
	sigaddset(&block, SIGTERM);
	pthread_sigmask(SIG_BLOCK, &block, &old);
	signal(SIGUSR1, SIG_IGN);
	out = run(mask_argv, &code);
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	signal(SIGUSR1, SIG_DFL);
	{
		unsigned long long blk = 1, ign = 1;
		assert_int_equal(sscanf(out, "SigBlk:\t%llx\nSigIgn:\t%llx", &blk, &ign), 2);
		assert_int_equal(blk, 0);
		/* glibc's internal signals 32 and 33 cannot be reset; 1..31 must be */
		assert_int_equal(ign & 0x7fffffffULL, 0);
	}
	free(out);
}

static void test_spawn_errors(void **state)
{
	struct error err = ERROR_INIT;
	const char *argv[] = { "/nonexistent", NULL };
	struct process_spawn_opts o = { .path = argv[0], .argv = argv, .envp = clean_env,
					.stdin_fd = -1, .stdout_fd = -1, .stderr_fd = -1 };
	pid_t pid = 123;
	(void)state;

	assert_int_equal(process_spawn(&o, &pid, &err), -1);
	assert_int_equal(err.code, STATUS_INTERNAL);
	assert_int_equal(errno, ENOENT); /* the cause, for callers' own messages */
	assert_int_equal(pid, -1);
	error_release(&err);

	o.path = "/bin/true";
	o.cwd = "/nonexistent-dir";
	assert_int_equal(process_spawn(&o, &pid, &err), -1);
	error_release(&err);
}

/* True while a live (not zombie) process is in process group pgid. */
static int group_alive(pid_t pgid)
{
	DIR *d = opendir("/proc");
	struct dirent *de;
	int alive = 0;

	assert_non_null(d);
	while (!alive && (de = readdir(d))) {
		char path[300], buf[512], *p;
		int grp = 0;
		char state;
		FILE *f;

		if (de->d_name[0] < '0' || de->d_name[0] > '9')
			continue;
		snprintf(path, sizeof(path), "/proc/%s/stat", de->d_name);
		f = fopen(path, "r");
		if (!f)
			continue;
		if (fgets(buf, sizeof(buf), f) && (p = strrchr(buf, ')')) &&
		    sscanf(p + 2, "%c %*d %d", &state, &grp) == 2)
			alive = grp == pgid && state != 'Z' && state != 'X';
		fclose(f);
	}
	closedir(d);
	return alive;
}

static void test_wait_deadline_and_kill(void **state)
{
	struct error err = ERROR_INIT;
	const char *argv[] = { "/bin/sh", "-c", "sleep 30 & sleep 30", NULL };
	struct process_spawn_opts o = { .path = argv[0], .argv = argv, .envp = clean_env,
					.stdin_fd = -1, .stdout_fd = -1, .stderr_fd = -1,
					.new_pgroup = 1 };
	struct process_status st;
	int64_t start;
	pid_t pid;
	(void)state;

	assert_int_equal(process_spawn(&o, &pid, &err), 0);
	start = process_now_ms();
	assert_int_equal(process_wait(pid, start + 200, &st), 1);
	assert_true(process_now_ms() - start >= 190);
	process_kill_group(pid);
	assert_int_equal(process_wait(pid, process_now_ms() + 5000, &st), 0);
	assert_int_equal(st.exited, 0);
	assert_int_equal(st.signal, SIGKILL);
	assert_int_equal(st.exit_code, -1);
	/* the whole group is gone (zombies awaiting an absent reaper count as gone) */
	for (int i = 0; i < 100 && group_alive(pid); i++)
		usleep(10000);
	assert_false(group_alive(pid));
}

static void test_pump_deadline(void **state)
{
	struct error err = ERROR_INIT;
	const char *argv[] = { "/bin/sleep", "30", NULL };
	struct process_spawn_opts o = { .path = argv[0], .argv = argv, .envp = clean_env,
					.stdin_fd = -1, .stderr_fd = -1, .new_pgroup = 1 };
	struct process_pump_io io = { .stdin_fd = -1, .stderr_fd = -1 };
	struct process_status st;
	int p[2];
	pid_t pid;
	(void)state;

	assert_int_equal(pipe2(p, O_CLOEXEC), 0);
	o.stdout_fd = p[1];
	assert_int_equal(process_spawn(&o, &pid, &err), 0);
	close(p[1]);
	io.stdout_fd = p[0];
	io.deadline_ms = process_now_ms() + 150;
	assert_int_equal(process_pump(&io, &err), 1);
	assert_int_equal(io.stdout_fd, -1); /* closed either way */
	process_kill_group(pid);
	assert_int_equal(process_wait(pid, 0, &st), 0);
	assert_int_equal(st.signal, SIGKILL);
}

static void test_pump_stop_when_out_full(void **state)
{
	struct error err = ERROR_INIT;
	const char *argv[] = { "/usr/bin/yes", NULL };
	struct process_spawn_opts o = { .path = argv[0], .argv = argv, .envp = clean_env,
					.stdin_fd = -1, .stderr_fd = -1, .new_pgroup = 1 };
	struct strbuf out = STRBUF_INIT;
	struct process_pump_io io = { .stdin_fd = -1, .stderr_fd = -1, .out = &out,
				      .stop_when_out_full = 1 };
	struct process_status st;
	int p[2];
	pid_t pid;
	(void)state;

	strbuf_init(&out, 100000);
	assert_int_equal(pipe2(p, O_CLOEXEC), 0);
	o.stdout_fd = p[1];
	assert_int_equal(process_spawn(&o, &pid, &err), 0);
	close(p[1]);
	io.stdout_fd = p[0];
	/* yes never ends: without the stop this would drain forever */
	assert_int_equal(process_pump(&io, &err), 2);
	assert_true(out.len <= 100000);
	assert_int_equal(io.stdout_fd, -1);
	process_kill_group(pid);
	assert_int_equal(process_wait(pid, 0, &st), 0);
	/* the closed pipe may have stopped it first */
	assert_true(st.signal == SIGKILL || st.signal == SIGPIPE);
	strbuf_release(&out);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_no_fd_leak),
		cmocka_unit_test(test_pgroup_env_sigmask),
		cmocka_unit_test(test_spawn_errors),
		cmocka_unit_test(test_wait_deadline_and_kill),
		cmocka_unit_test(test_pump_deadline),
		cmocka_unit_test(test_pump_stop_when_out_full),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
