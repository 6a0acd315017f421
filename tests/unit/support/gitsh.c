/*
 * Test support: test_git_sh (see gitsh.h).
 */
#include "gitsh.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/wait.h>
#include <unistd.h>

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
