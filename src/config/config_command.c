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
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "base/process.h"
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

/* exec.ExitError's text: "exit status N" or "signal: <name>". */
static void describe_exit(const struct process_status *st, char *how, size_t n)
{
	const char *name = st->signal ? signal_name(st->signal) : NULL;

	if (!st->signal)
		snprintf(how, n, "exit status %d", st->exit_code);
	else if (name)
		snprintf(how, n, "signal: %s", name);
	else
		snprintf(how, n, "signal: signal %d", st->signal);
}

/* Resolves a bare name through $PATH as exec.Command does; *resolved is
 * set (caller frees) or an InvalidArgument error is. */
static int resolve_path(const char *path, char **resolved, struct error *err)
{
	struct strbuf q = STRBUF_INIT;
	int relative;

	*resolved = look_path(path, &relative);
	config_go_quote(&q, path, strlen(path));
	if (!*resolved)
		error_set(err, STATUS_INVALID_ARGUMENT,
			  "running config command: exec: %s: executable file not found in $PATH", q.buf);
	else if (relative)
		error_set(err, STATUS_INVALID_ARGUMENT,
			  "running config command: exec: %s: cannot run executable found relative to current directory",
			  q.buf);
	strbuf_release(&q);
	if (*resolved && !relative)
		return 0;
	free(*resolved);
	*resolved = NULL;
	return -1;
}

int config_run_command(const char *path, char **out, size_t *out_len, struct error *err)
{
	int opipe[2] = { -1, -1 }, epipe[2] = { -1, -1 };
	struct strbuf so = STRBUF_INIT, se = STRBUF_INIT;
	struct process_status st;
	struct error spawn_err = ERROR_INIT;
	pid_t pid = -1;
	char *resolved = NULL;
	int ret = -1, pumped;
	char ebuf[256];

	*out = NULL;
	*out_len = 0;
	if (!strchr(path, '/')) {
		if (resolve_path(path, &resolved, err) < 0)
			return -1;
		path = resolved;
	}
	strbuf_init(&so, STDOUT_CAP);
	strbuf_init(&se, STDERR_CAP);
	if (pipe2(opipe, O_CLOEXEC) < 0 || pipe2(epipe, O_CLOEXEC) < 0) {
		go_errno(errno, ebuf, sizeof(ebuf));
		error_set(err, STATUS_INTERNAL, "running config command: pipe: %s", ebuf);
		goto out;
	}
	{
		const char *argv[2] = { path, NULL };
		struct process_spawn_opts o = { path, argv, (const char *const *)environ, NULL,
						-1, opipe[1], epipe[1], 0 };

		if (process_spawn(&o, &pid, &spawn_err) < 0) {
			go_errno(errno, ebuf, sizeof(ebuf));
			error_set(err, STATUS_INVALID_ARGUMENT,
				  "running config command: fork/exec %s: %s", path, ebuf);
			goto out;
		}
	}
	close(opipe[1]);
	close(epipe[1]);
	opipe[1] = epipe[1] = -1;
	{
		struct process_pump_io io = { -1, NULL, 0, opipe[0], &so, epipe[0], &se, 0, 1 };

		opipe[0] = epipe[0] = -1; /* the pump closes them */
		pumped = process_pump(&io, err);
	}
	if (pumped != 0) {
		kill(pid, SIGKILL);
		process_wait(pid, 0, &st);
		pid = -1;
		if (pumped == 2)
			error_set(err, STATUS_INVALID_ARGUMENT,
				  "running config command: output exceeds %zu bytes", STDOUT_CAP);
		goto out;
	}
	if (process_wait(pid, 0, &st) < 0) {
		go_errno(errno, ebuf, sizeof(ebuf));
		error_set(err, STATUS_INTERNAL, "running config command: wait: %s", ebuf);
		pid = -1;
		goto out;
	}
	pid = -1;
	if (!st.exited || st.exit_code != 0) {
		struct strbuf q = STRBUF_INIT;
		char how[64];

		describe_exit(&st, how, sizeof(how));
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
		process_wait(pid, 0, &st);
	}
	for (int i = 0; i < 2; i++) {
		if (opipe[i] >= 0)
			close(opipe[i]);
		if (epipe[i] >= 0)
			close(epipe[i]);
	}
	error_release(&spawn_err);
	strbuf_release(&so);
	strbuf_release(&se);
	free(resolved);
	return ret;
}
