/*
 * Runs `config_command`: the configured path is executed directly (no shell,
 * no arguments, stdin from /dev/null), its stdout is captured as the JSON to
 * merge and its stderr is kept for the error message, both with caps. Errors
 * read like upstream's exec.Cmd ones: `running config command: exit status
 * 1, stderr: "..."` or `running config command: fork/exec /x: no such file
 * or directory`.
 */
#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "config/config_internal.h"

#define STDOUT_CAP ((size_t)16 << 20)
#define STDERR_CAP ((size_t)32 << 10)

extern char **environ;

/* Go's syscall.Errno strings are strerror's with a lower-case first letter. */
static void go_errno(int e, char *out, size_t n)
{
	snprintf(out, n, "%s", strerror(e));
	if (out[0])
		out[0] = (char)tolower((unsigned char)out[0]);
}

static const char *signal_name(int sig)
{
	switch (sig) {
	case SIGKILL: return "killed";
	case SIGTERM: return "terminated";
	case SIGINT: return "interrupt";
	case SIGSEGV: return "segmentation fault";
	case SIGABRT: return "aborted";
	case SIGPIPE: return "broken pipe";
	case SIGHUP: return "hangup";
	case SIGQUIT: return "quit";
	case SIGBUS: return "bus error";
	case SIGFPE: return "floating point exception";
	case SIGILL: return "illegal instruction";
	default: return NULL;
	}
}

/* Go's exec.LookPath for a name without a slash: the first executable
 * regular file named so in $PATH. Returns a new string or NULL. */
static char *look_path(const char *name, int *relative)
{
	const char *env = getenv("PATH");
	const char *p = env ? env : "";
	char *found = NULL;

	*relative = 0;
	for (;;) {
		const char *end = strchr(p, ':');
		size_t dl = end ? (size_t)(end - p) : strlen(p);
		struct stat st;
		char *cand = NULL;
		if (asprintf(&cand, "%.*s/%s", (int)(dl ? dl : 1), dl ? p : ".", name) < 0)
			return NULL;
		if (stat(cand, &st) == 0 && !S_ISDIR(st.st_mode) && (st.st_mode & 0111)) {
			found = cand;
			*relative = cand[0] != '/';
			break;
		}
		free(cand);
		if (!end)
			break;
		p = end + 1;
	}
	return found;
}

int config_run_command(const char *path, char **out, size_t *out_len, struct error *err)
{
	int opipe[2] = { -1, -1 }, epipe[2] = { -1, -1 }, xpipe[2] = { -1, -1 };
	struct strbuf so = STRBUF_INIT, se = STRBUF_INIT;
	pid_t pid = -1;
	char *resolved = NULL;
	int ret = -1, status = 0, child_errno = 0;
	char ebuf[256];

	*out = NULL;
	*out_len = 0;
	if (!strchr(path, '/')) {
		/* Like exec.Command: a bare name is looked up in $PATH. */
		struct strbuf q = STRBUF_INIT;
		int relative;
		resolved = look_path(path, &relative);
		config_go_quote(&q, path, strlen(path));
		if (!resolved)
			error_set(err, STATUS_INVALID_ARGUMENT,
				  "running config command: exec: %s: executable file not found in $PATH", q.buf);
		else if (relative)
			error_set(err, STATUS_INVALID_ARGUMENT,
				  "running config command: exec: %s: cannot run executable found relative to current directory",
				  q.buf);
		strbuf_release(&q);
		if (!resolved || relative)
			goto out;
		path = resolved;
	}
	strbuf_init(&so, STDOUT_CAP);
	strbuf_init(&se, STDERR_CAP);
	if (pipe2(opipe, O_CLOEXEC) < 0 || pipe2(epipe, O_CLOEXEC) < 0 || pipe2(xpipe, O_CLOEXEC) < 0) {
		go_errno(errno, ebuf, sizeof(ebuf));
		error_set(err, STATUS_INTERNAL, "running config command: pipe: %s", ebuf);
		goto out;
	}
	pid = fork();
	if (pid < 0) {
		go_errno(errno, ebuf, sizeof(ebuf));
		error_set(err, STATUS_INTERNAL, "running config command: fork/exec %s: %s", path, ebuf);
		goto out;
	}
	if (pid == 0) {
		char *argv[2] = { (char *)path, NULL };
		int devnull = open("/dev/null", O_RDONLY);
		int e;
		if (devnull < 0 || dup2(devnull, 0) < 0 || dup2(opipe[1], 1) < 0 || dup2(epipe[1], 2) < 0)
			goto child_fail;
		signal(SIGPIPE, SIG_DFL);
		execve(path, argv, environ);
	child_fail:
		e = errno;
		if (write(xpipe[1], &e, sizeof(e)) < 0) {
			/* nothing more we can do */
		}
		_exit(127);
	}
	close(opipe[1]);
	opipe[1] = -1;
	close(epipe[1]);
	epipe[1] = -1;
	close(xpipe[1]);
	xpipe[1] = -1;

	/* The exec-status pipe closes on a successful exec or carries errno. */
	{
		ssize_t n;
		do {
			n = read(xpipe[0], &child_errno, sizeof(child_errno));
		} while (n < 0 && errno == EINTR);
		if (n != (ssize_t)sizeof(child_errno))
			child_errno = 0;
	}
	if (child_errno) {
		waitpid(pid, &status, 0);
		pid = -1;
		go_errno(child_errno, ebuf, sizeof(ebuf));
		error_set(err, STATUS_INVALID_ARGUMENT, "running config command: fork/exec %s: %s", path, ebuf);
		goto out;
	}

	{
		struct pollfd pfd[2] = { { opipe[0], POLLIN, 0 }, { epipe[0], POLLIN, 0 } };
		int open_fds = 2, overflow = 0;
		char buf[65536];
		while (open_fds > 0) {
			if (poll(pfd, 2, -1) < 0) {
				if (errno == EINTR)
					continue;
				break;
			}
			for (int i = 0; i < 2; i++) {
				if (pfd[i].fd < 0 || !pfd[i].revents)
					continue;
				ssize_t n = read(pfd[i].fd, buf, sizeof(buf));
				if (n < 0 && errno == EINTR)
					continue;
				if (n <= 0) {
					pfd[i].fd = -1;
					open_fds--;
					continue;
				}
				if (i == 0) {
					if (strbuf_add(&so, buf, (size_t)n) < 0)
						overflow = 1;
				} else {
					/* Keep what fits of stderr; the rest is dropped. */
					size_t room = STDERR_CAP - se.len;
					strbuf_add(&se, buf, (size_t)n < room ? (size_t)n : room);
				}
			}
			if (overflow)
				break;
		}
		if (overflow) {
			kill(pid, SIGKILL);
			waitpid(pid, &status, 0);
			pid = -1;
			error_set(err, STATUS_INVALID_ARGUMENT,
				  "running config command: output exceeds %zu bytes", STDOUT_CAP);
			goto out;
		}
	}
	while (waitpid(pid, &status, 0) < 0) {
		if (errno != EINTR) {
			go_errno(errno, ebuf, sizeof(ebuf));
			error_set(err, STATUS_INTERNAL, "running config command: wait: %s", ebuf);
			pid = -1;
			goto out;
		}
	}
	pid = -1;
	if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
		struct strbuf q = STRBUF_INIT;
		char how[64];
		if (WIFEXITED(status)) {
			snprintf(how, sizeof(how), "exit status %d", WEXITSTATUS(status));
		} else {
			const char *name = signal_name(WTERMSIG(status));
			if (name)
				snprintf(how, sizeof(how), "signal: %s", name);
			else
				snprintf(how, sizeof(how), "signal: signal %d", WTERMSIG(status));
		}
		config_go_quote(&q, se.buf ? se.buf : "", se.len);
		error_set(err, STATUS_INVALID_ARGUMENT, "running config command: %s, stderr: %s", how,
			  q.buf ? q.buf : "\"\"");
		strbuf_release(&q);
		goto out;
	}
	*out = strbuf_detach(&so, out_len);
	ret = 0;
out:
	if (pid > 0) {
		kill(pid, SIGKILL);
		waitpid(pid, &status, 0);
	}
	for (int i = 0; i < 2; i++) {
		if (opipe[i] >= 0)
			close(opipe[i]);
		if (epipe[i] >= 0)
			close(epipe[i]);
		if (xpipe[i] >= 0)
			close(xpipe[i]);
	}
	strbuf_release(&so);
	strbuf_release(&se);
	free(resolved);
	return ret;
}
