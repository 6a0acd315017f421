/*
 * Git processes whose output BlobService reads line by line (rev-list,
 * cat-file --batch-all-objects), and the loop the List* handlers share:
 * each line handed to a callback, an item limit that stops git early, the
 * cancellation check, and upstream's error for a failing exit.
 */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "service/blob_internal.h"

/* Longest rev-list / cat-file line accepted (paths are capped by git too). */
#define LINE_CAP ((size_t)1 << 20)
#define STDERR_CAP ((size_t)64 * 1024)

int blob_pipe_start(struct git_cmd *cmd, struct blob_pipe *p, struct error *err)
{
	memset(p, 0, sizeof(*p));
	p->out_fd = p->err_fd = -1;
	strbuf_init(&p->line, LINE_CAP);
	strbuf_init(&p->errout, STDERR_CAP);
	if (git_cmd_start(cmd, NULL, &p->out_fd, &p->err_fd, &p->pid, err) < 0) {
		strbuf_release(&p->line);
		strbuf_release(&p->errout);
		p->pid = 0;
		return -1;
	}
	return 0;
}

/* Reads what stderr has; closes it at EOF. Excess beyond the cap is dropped. */
static void drain_stderr(struct blob_pipe *p)
{
	char chunk[4096];
	ssize_t n;

	if (p->err_fd < 0)
		return;
	n = read(p->err_fd, chunk, sizeof(chunk));
	if (n > 0) {
		(void)strbuf_add(&p->errout, chunk, (size_t)n);
	} else if (n == 0 || (errno != EINTR && errno != EAGAIN)) {
		close(p->err_fd);
		p->err_fd = -1;
	}
}

ssize_t blob_pipe_read(struct blob_pipe *p, void *buf, size_t len)
{
	for (;;) {
		struct pollfd fds[2] = { { p->out_fd, POLLIN, 0 }, { p->err_fd, POLLIN, 0 } };
		int rc = poll(fds, p->err_fd >= 0 ? 2 : 1, -1);

		if (rc < 0) {
			if (errno == EINTR)
				continue;
			return -1;
		}
		if (p->err_fd >= 0 && fds[1].revents)
			drain_stderr(p);
		if (fds[0].revents) {
			ssize_t n = read(p->out_fd, buf, len);

			if (n < 0 && errno == EINTR)
				continue;
			return n;
		}
	}
}

int blob_pipe_next(struct blob_pipe *p, struct error *err)
{
	strbuf_reset(&p->line);
	for (;;) {
		char *nl = memchr(p->buf + p->start, '\n', p->end - p->start);
		size_t take = nl ? (size_t)(nl - (p->buf + p->start)) : p->end - p->start;
		ssize_t n;

		if (strbuf_add(&p->line, p->buf + p->start, take) < 0)
			return error_set(err, STATUS_INTERNAL, "reading git output: line too long");
		p->start += take;
		if (nl) {
			p->start++;
			return 1;
		}
		p->start = p->end = 0;
		n = blob_pipe_read(p, p->buf, sizeof(p->buf));
		if (n < 0)
			return error_set(err, STATUS_INTERNAL, "reading git output: %s",
					 strerror(errno));
		if (n == 0)
			return p->line.len ? 1 : 0;
		p->end = (size_t)n;
	}
}

int blob_pipe_finish(struct blob_pipe *p, int stop_early, const char *what, struct error *err)
{
	struct git_result res;
	int ret = 0;

	if (!p->pid)
		return 0;
	if (stop_early)
		git_cmd_kill(p->pid);
	if (p->out_fd >= 0)
		close(p->out_fd);
	p->out_fd = -1;
	if (p->err_fd >= 0) {
		/* Blocking reads to EOF: stdout is closed, git can only exit now. */
		int fl = fcntl(p->err_fd, F_GETFL);

		if (fl >= 0)
			fcntl(p->err_fd, F_SETFL, fl & ~O_NONBLOCK);
		while (p->err_fd >= 0)
			drain_stderr(p);
	}
	memset(&res, 0, sizeof(res));
	git_cmd_wait(p->pid, &res);
	if (!stop_early && res.exit_code != 0) {
		struct strbuf q = STRBUF_INIT;

		service_go_quote(&q, p->errout.buf ? p->errout.buf : "", p->errout.len);
		if (res.exit_code < 0)
			error_set(err, STATUS_INTERNAL, "%s: signal: %d, stderr: %s", what,
				  res.signal, q.buf ? q.buf : "\"\"");
		else
			error_set(err, STATUS_INTERNAL, "%s: exit status %d, stderr: %s", what,
				  res.exit_code, q.buf ? q.buf : "\"\"");
		strbuf_release(&q);
		ret = -1;
	}
	strbuf_release(&p->errout);
	strbuf_release(&p->line);
	p->pid = 0;
	return ret;
}

int blob_scan_run(struct rpc_call *call, struct git_cmd *cmd, const struct blob_scan *s,
		  struct error *err)
{
	struct blob_pipe p;
	int64_t count = 0;
	int stop = 0, rc;

	if (blob_pipe_start(cmd, &p, err) < 0)
		return -1;
	while ((rc = blob_pipe_next(&p, err)) > 0) {
		int counted = s->line(s->ctx, p.line.buf, p.line.len, err);

		if (counted < 0)
			goto kill;
		count += counted;
		if (s->limit > 0 && count >= s->limit) {
			stop = 1;
			break;
		}
		if (rpc_call_cancelled(call)) {
			error_set(err, STATUS_CANCELLED, "context canceled");
			goto kill;
		}
	}
	if (rc < 0)
		goto kill;
	if (blob_pipe_finish(&p, stop, s->exit_what, err) < 0) {
		if (s->exit_prefix)
			error_prefix(err, s->exit_prefix);
		return -1;
	}
	return 0;
kill:
	blob_pipe_finish(&p, 1, s->exit_what, NULL);
	return -1;
}
