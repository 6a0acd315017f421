/*
 * Test support: test_shell, the one way unit tests run git and other
 * commands through a shell to set up or inspect repositories.
 */
#include "shell.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

int test_shell(char *out, size_t cap, int trim_newlines, const char *fmt, ...)
{
	char *cmd = NULL;
	va_list ap;
	int pipefd[2], status = -1, ret = -1;
	size_t len = 0;
	pid_t pid;

	va_start(ap, fmt);
	if (vasprintf(&cmd, fmt, ap) < 0)
		cmd = NULL;
	va_end(ap);
	if (!cmd || pipe(pipefd) < 0)
		goto out;
	pid = fork();
	if (pid < 0) {
		close(pipefd[0]);
		close(pipefd[1]);
		goto out;
	}
	if (pid == 0) {
		dup2(pipefd[1], 1);
		close(pipefd[0]);
		close(pipefd[1]);
		execl("/bin/sh", "sh", "-c", cmd, (char *)NULL);
		_exit(127);
	}
	close(pipefd[1]);
	for (;;) {
		char buf[65536];
		ssize_t n = read(pipefd[0], buf, sizeof(buf));

		if (n <= 0)
			break;
		if (out && cap && len + (size_t)n < cap) {
			memcpy(out + len, buf, (size_t)n);
			len += (size_t)n;
		}
	}
	close(pipefd[0]);
	if (out && cap) {
		out[len] = '\0';
		while (trim_newlines && len && out[len - 1] == '\n')
			out[--len] = '\0';
	}
	if (waitpid(pid, &status, 0) == pid)
		ret = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
out:
	free(cmd);
	return ret;
}
