/*
 * Child processes without a shell: posix_spawn with an exact argv and
 * environment, its own process group, a clean signal state and no inherited
 * descriptors beyond 0, 1 and 2; a poll(2) pump that feeds stdin while it
 * drains stdout and stderr (so large outputs never deadlock), with caps and a
 * deadline; waiting with a deadline; killing the whole group.
 *
 * The server must not reap children it did not spawn through here with
 * waitpid(-1): each pid is waited for exactly once by its owner.
 */
#ifndef BASE_PROCESS_H
#define BASE_PROCESS_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "base/error.h"
#include "base/strbuf.h"

struct process_spawn_opts {
	const char *path;         /* executable, absolute (no PATH lookup) */
	const char *const *argv;  /* NULL-terminated; argv[0] is passed as is */
	const char *const *envp;  /* NULL-terminated: the complete environment */
	const char *cwd;          /* NULL: inherit */
	int stdin_fd;             /* -1: /dev/null */
	int stdout_fd;            /* -1: /dev/null */
	int stderr_fd;            /* -1: /dev/null */
	int new_pgroup;           /* the child leads a new process group (pgid = pid) */
};

/*
 * Starts a child. The given fds become its 0, 1 and 2; every other descriptor
 * is closed in the child. The parent keeps its copies of the fds (close them
 * yourself). Errors (Internal) include exec failures such as a missing binary;
 * errno then holds the cause (ENOENT, EACCES...).
 */
int process_spawn(const struct process_spawn_opts *opts, pid_t *pid, struct error *err);

/* Monotonic clock in milliseconds. */
int64_t process_now_ms(void);

struct process_pump_io {
	int stdin_fd;            /* our write end, or -1 */
	const void *stdin_data;
	size_t stdin_len;
	int stdout_fd;           /* our read end, or -1 */
	struct strbuf *out;      /* NULL: drain and drop */
	int stderr_fd;           /* our read end, or -1 */
	struct strbuf *err_out;  /* NULL: drain and drop */
	int64_t deadline_ms;     /* process_now_ms() value; 0: none */
	int stop_when_out_full;  /* stop once stdout would exceed out's cap */
};

/*
 * Feeds stdin_data (then closes stdin) while reading stdout and stderr until
 * both reach EOF. Output beyond a buffer's cap is read and dropped; a child
 * that closes stdin early just ends the feeding (EPIPE, never SIGPIPE). Closes
 * all three fds. Returns 0 when done, 1 when the deadline passed first, 2
 * when stop_when_out_full is set and stdout outgrew out's cap (in both cases
 * the caller kills the child), -1 on a poll/read error.
 */
int process_pump(struct process_pump_io *io, struct error *err);

struct process_status {
	int exited;    /* normal exit: exit_code is valid */
	int exit_code; /* -1 when killed */
	int signal;    /* terminating signal, 0 if none */
	/* Resource usage of the child itself (wait4). */
	int64_t user_time_ms, system_time_ms;
	int64_t maxrss_kb, inblock, oublock, minflt, majflt;
};

/*
 * Waits for pid until deadline_ms (0: forever). Returns 0 once reaped, 1 if
 * the deadline passed (the child is still running and not reaped), -1 on a
 * waitpid error.
 */
int process_wait(pid_t pid, int64_t deadline_ms, struct process_status *st);

/* SIGKILLs the process group led by pid (falls back to pid alone). */
void process_kill_group(pid_t pid);

#endif
