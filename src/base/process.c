/*
 * Spawning and driving child processes: posix_spawn (vfork-like, cheap for a
 * large multi-threaded server) with file actions for the standard fds,
 * closefrom(3) and chdir; a poll loop moving bytes in both directions; and
 * waits bounded by a deadline through a pidfd when the kernel has one.
 */
#include "base/process.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <spawn.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define PUMP_CHUNK 65536

int64_t process_now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* The child's descriptor for slot target: fd moved above 2 so that dup2 in
 * the child always copies (and clears close-on-exec). */
static int add_std_fd(posix_spawn_file_actions_t *fa, int fd, int target, int *tmp)
{
	*tmp = -1;
	if (fd < 0)
		return posix_spawn_file_actions_addopen(fa, target, "/dev/null",
							target ? O_WRONLY : O_RDONLY, 0);
	if (fd <= 2) {
		*tmp = fcntl(fd, F_DUPFD_CLOEXEC, 3);
		if (*tmp < 0)
			return errno;
		fd = *tmp;
	}
	return posix_spawn_file_actions_adddup2(fa, fd, target);
}

int process_spawn(const struct process_spawn_opts *opts, pid_t *pid, struct error *err)
{
	posix_spawn_file_actions_t fa;
	posix_spawnattr_t attr;
	sigset_t empty, all;
	int tmp[3] = { -1, -1, -1 };
	int rc, ret = -1;
	short flags = POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF;

	*pid = -1;
	if (posix_spawn_file_actions_init(&fa) != 0)
		return error_set(err, STATUS_INTERNAL, "spawn: out of memory");
	if (posix_spawnattr_init(&attr) != 0) {
		posix_spawn_file_actions_destroy(&fa);
		return error_set(err, STATUS_INTERNAL, "spawn: out of memory");
	}
	sigemptyset(&empty);
	sigfillset(&all);
	if (opts->new_pgroup)
		flags |= POSIX_SPAWN_SETPGROUP;
	rc = posix_spawnattr_setflags(&attr, flags);
	if (!rc)
		rc = posix_spawnattr_setsigmask(&attr, &empty);
	if (!rc)
		rc = posix_spawnattr_setsigdefault(&attr, &all);
	if (!rc && opts->new_pgroup)
		rc = posix_spawnattr_setpgroup(&attr, 0);
	if (!rc)
		rc = add_std_fd(&fa, opts->stdin_fd, 0, &tmp[0]);
	if (!rc)
		rc = add_std_fd(&fa, opts->stdout_fd, 1, &tmp[1]);
	if (!rc)
		rc = add_std_fd(&fa, opts->stderr_fd, 2, &tmp[2]);
	if (!rc)
		rc = posix_spawn_file_actions_addclosefrom_np(&fa, 3);
	if (!rc && opts->cwd)
		rc = posix_spawn_file_actions_addchdir_np(&fa, opts->cwd);
	if (rc) {
		error_set(err, STATUS_INTERNAL, "spawn %s: %s", opts->path, strerror(rc));
		goto out;
	}
	rc = posix_spawn(pid, opts->path, &fa, &attr, (char *const *)opts->argv,
			 (char *const *)opts->envp);
	if (rc) {
		*pid = -1;
		error_set(err, STATUS_INTERNAL, "spawn %s: %s", opts->path, strerror(rc));
		goto out;
	}
	ret = 0;
out:
	for (int i = 0; i < 3; i++)
		if (tmp[i] >= 0)
			close(tmp[i]);
	posix_spawnattr_destroy(&attr);
	posix_spawn_file_actions_destroy(&fa);
	if (ret < 0)
		errno = rc;
	return ret;
}

/* write(2) with SIGPIPE blocked in this thread and any SIGPIPE it raised
 * consumed, so a child that stops reading gives EPIPE instead of killing us. */
static ssize_t write_nosigpipe(int fd, const void *buf, size_t len)
{
	sigset_t pipe_set, old;
	ssize_t n;
	int saved;

	sigemptyset(&pipe_set);
	sigaddset(&pipe_set, SIGPIPE);
	pthread_sigmask(SIG_BLOCK, &pipe_set, &old);
	n = write(fd, buf, len);
	saved = errno;
	if (n < 0 && saved == EPIPE) {
		struct timespec zero = { 0, 0 };
		sigtimedwait(&pipe_set, NULL, &zero);
	}
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	errno = saved;
	return n;
}

static void close_fd(int *fd)
{
	if (*fd >= 0)
		close(*fd);
	*fd = -1;
}

int process_pump(struct process_pump_io *io, struct error *err)
{
	const char *in = io->stdin_data;
	size_t in_left = io->stdin_data ? io->stdin_len : 0;
	char *buf = malloc(PUMP_CHUNK);
	int ret = -1;

	if (!buf) {
		error_set(err, STATUS_INTERNAL, "out of memory");
		goto out;
	}
	if (io->stdin_fd >= 0) {
		if (!in_left)
			close_fd(&io->stdin_fd);
		else
			fcntl(io->stdin_fd, F_SETFL, fcntl(io->stdin_fd, F_GETFL) | O_NONBLOCK);
	}
	while (io->stdin_fd >= 0 || io->stdout_fd >= 0 || io->stderr_fd >= 0) {
		struct pollfd pfd[3];
		int *fds[3] = { &io->stdin_fd, &io->stdout_fd, &io->stderr_fd };
		struct strbuf *sinks[3] = { NULL, io->out, io->err_out };
		int timeout = -1, n;

		for (int i = 0; i < 3; i++) {
			pfd[i].fd = *fds[i];
			pfd[i].events = i == 0 ? POLLOUT : POLLIN;
			pfd[i].revents = 0;
		}
		if (io->deadline_ms) {
			int64_t left = io->deadline_ms - process_now_ms();
			if (left <= 0) {
				ret = 1;
				goto out;
			}
			timeout = left > 1000000 ? 1000000 : (int)left;
		}
		n = poll(pfd, 3, timeout);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			error_set(err, STATUS_INTERNAL, "poll: %s", strerror(errno));
			goto out;
		}
		if (pfd[0].revents) {
			ssize_t w = write_nosigpipe(io->stdin_fd, in, in_left > PUMP_CHUNK ? PUMP_CHUNK : in_left);
			if (w > 0) {
				in += w;
				in_left -= (size_t)w;
				if (!in_left)
					close_fd(&io->stdin_fd);
			} else if (w < 0 && errno != EAGAIN && errno != EINTR) {
				/* EPIPE and friends: the child does not want more input */
				close_fd(&io->stdin_fd);
			}
		}
		for (int i = 1; i < 3; i++) {
			ssize_t r;

			if (!pfd[i].revents)
				continue;
			r = read(*fds[i], buf, PUMP_CHUNK);
			if (r > 0) {
				size_t cap = sinks[i] && sinks[i]->cap ? sinks[i]->cap : STRBUF_DEFAULT_CAP;

				if (i == 1 && io->stop_when_out_full && sinks[i] &&
				    (size_t)r > cap - sinks[i]->len) {
					ret = 2;
					goto out;
				}
				/* Past the cap the bytes are dropped but still drained. */
				if (sinks[i] && sinks[i]->len < cap) {
					size_t room = cap - sinks[i]->len;
					strbuf_add(sinks[i], buf, (size_t)r < room ? (size_t)r : room);
				}
			} else if (r == 0 || (errno != EAGAIN && errno != EINTR)) {
				close_fd(fds[i]);
			}
		}
	}
	ret = 0;
out:
	close_fd(&io->stdin_fd);
	close_fd(&io->stdout_fd);
	close_fd(&io->stderr_fd);
	free(buf);
	return ret;
}

static int64_t tv_ms(const struct timeval *tv)
{
	return (int64_t)tv->tv_sec * 1000 + tv->tv_usec / 1000;
}

static void decode_status(int status, const struct rusage *ru, struct process_status *st)
{
	memset(st, 0, sizeof(*st));
	st->user_time_ms = tv_ms(&ru->ru_utime);
	st->system_time_ms = tv_ms(&ru->ru_stime);
	st->maxrss_kb = ru->ru_maxrss;
	st->inblock = ru->ru_inblock;
	st->oublock = ru->ru_oublock;
	st->minflt = ru->ru_minflt;
	st->majflt = ru->ru_majflt;
	if (WIFEXITED(status)) {
		st->exited = 1;
		st->exit_code = WEXITSTATUS(status);
	} else {
		st->exit_code = -1;
		st->signal = WIFSIGNALED(status) ? WTERMSIG(status) : 0;
	}
}

int process_wait(pid_t pid, int64_t deadline_ms, struct process_status *st)
{
	int status, pidfd = -1, ret = -1;

#ifdef SYS_pidfd_open
	if (deadline_ms)
		pidfd = (int)syscall(SYS_pidfd_open, pid, 0);
#endif
	for (;;) {
		struct rusage ru;
		pid_t r = wait4(pid, &status, deadline_ms ? WNOHANG : 0, &ru);

		if (r == pid) {
			decode_status(status, &ru, st);
			ret = 0;
			goto out;
		}
		if (r < 0 && errno != EINTR)
			goto out;
		if (r == 0) {
			int64_t left = deadline_ms - process_now_ms();

			if (left <= 0) {
				ret = 1;
				goto out;
			}
			if (pidfd >= 0) {
				struct pollfd p = { .fd = pidfd, .events = POLLIN };
				poll(&p, 1, left > 1000000 ? 1000000 : (int)left);
			} else {
				struct timespec ts = { 0, 5 * 1000 * 1000 };
				nanosleep(&ts, NULL);
			}
		}
	}
out:
	if (pidfd >= 0)
		close(pidfd);
	return ret;
}

void process_kill_group(pid_t pid)
{
	if (pid <= 0)
		return;
	if (kill(-pid, SIGKILL) < 0)
		kill(pid, SIGKILL);
}
