/*
 * GetPatchID: `git diff --full-index old new` piped into
 * `git patch-id --stable` (binary files then hash by their full blob ids).
 * An empty diff has no patch id: FailedPrecondition as upstream.
 */
#include <errno.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "diff.pb-c.h"
#include "service/diff_internal.h"
#include "service/util.h"

#define PATCH_ID_OUT_CAP 4096

static char *bytes_str(const ProtobufCBinaryData *b)
{
	return strndup(b->data ? (const char *)b->data : "", b->len);
}

static int write_all(int fd, const char *data, size_t len)
{
	while (len) {
		ssize_t n = write(fd, data, len);

		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			return -1;
		data += n;
		len -= (size_t)n;
	}
	return 0;
}

/*
 * Copies diff_fd into pid_in while collecting pid_out, until the diff ends
 * and patch-id has closed its output. A patch-id that stops reading ends
 * the copy (its exit status tells the story).
 */
static int pump(int diff_fd, int pid_in, int pid_out, struct strbuf *out)
{
	char buf[65536];
	int in_open = 1, out_open = 1;

	while (in_open || out_open) {
		struct pollfd fds[2];
		nfds_t n = 0;
		int i_in = -1, i_out = -1;

		if (in_open) {
			fds[n].fd = diff_fd;
			fds[n].events = POLLIN;
			i_in = (int)n++;
		}
		if (out_open) {
			fds[n].fd = pid_out;
			fds[n].events = POLLIN;
			i_out = (int)n++;
		}
		if (poll(fds, n, -1) < 0) {
			if (errno == EINTR)
				continue;
			return -1;
		}
		if (i_out >= 0 && fds[i_out].revents) {
			ssize_t got = read(pid_out, buf, sizeof(buf));

			if (got < 0 && errno == EINTR)
				continue;
			if (got <= 0)
				out_open = 0;
			else
				strbuf_add(out, buf, (size_t)got); /* capped: excess dropped */
		}
		if (i_in >= 0 && fds[i_in].revents) {
			ssize_t got = read(diff_fd, buf, sizeof(buf));

			if (got < 0 && errno == EINTR)
				continue;
			if (got <= 0 || (pid_in >= 0 && write_all(pid_in, buf, (size_t)got) < 0)) {
				in_open = 0;
				if (pid_in >= 0)
					close(pid_in);
				pid_in = -1;
			}
		}
	}
	if (pid_in >= 0)
		close(pid_in);
	return 0;
}

int diff_patch_id_rpc(struct rpc_call *call, struct error *err)
{
	const struct service_deps *deps = rpc_call_service_data(call);
	const Gitaly__GetPatchIDRequest *req = (const Gitaly__GetPatchIDRequest *)rpc_call_request(call);
	Gitaly__GetPatchIDResponse resp = GITALY__GET_PATCH_IDRESPONSE__INIT;
	struct service_git_env genv = { 0 };
	struct strbuf out = STRBUF_INIT;
	struct git_result diff_res, pid_res;
	struct git_cmd *cmd;
	char *path = NULL, *old_rev = NULL, *new_rev = NULL, *sp;
	int diff_fd = -1, pid_in = -1, pid_out = -1, ret = -1;
	pid_t diff_pid = -1, id_pid = -1;

	strbuf_init(&out, PATCH_ID_OUT_CAP);
	if (service_repo_path(deps, req->repository, 0, &path, err) < 0)
		goto out;
	if (!req->old_revision.len) {
		error_set(err, STATUS_INVALID_ARGUMENT, "empty OldRevision");
		goto out;
	}
	if (!req->new_revision.len) {
		error_set(err, STATUS_INVALID_ARGUMENT, "empty NewRevision");
		goto out;
	}
	old_rev = bytes_str(&req->old_revision);
	new_rev = bytes_str(&req->new_revision);
	if (!old_rev || !new_rev) {
		error_set(err, STATUS_INTERNAL, "out of memory");
		goto out;
	}
	if (service_has_nul(req->old_revision.data, req->old_revision.len) ||
	    service_has_nul(req->new_revision.data, req->new_revision.len)) {
		error_set(err, STATUS_INTERNAL, "spawning diff: revision contains a NUL byte");
		goto out;
	}
	if (diff_check_positional(old_rev, "spawning diff", err) < 0 ||
	    diff_check_positional(new_rev, "spawning diff", err) < 0)
		goto out;
	if (service_git_env_init(&genv, path, req->repository, err) < 0)
		goto out;
	cmd = diff_git_new(call, path, &genv, "diff");
	git_cmd_flag(cmd, "--full-index");
	git_cmd_arg(cmd, old_rev);
	git_cmd_arg(cmd, new_rev);
	if (git_cmd_start(cmd, NULL, &diff_fd, NULL, &diff_pid, err) < 0) {
		error_prefix(err, "spawning diff");
		err->code = STATUS_INTERNAL;
		goto out;
	}
	cmd = diff_git_new(call, NULL, NULL, "patch-id");
	git_cmd_flag(cmd, "--stable");
	if (git_cmd_start(cmd, &pid_in, &pid_out, NULL, &id_pid, err) < 0) {
		error_prefix(err, "spawning patch-id");
		err->code = STATUS_INTERNAL;
		goto out;
	}
	if (pump(diff_fd, pid_in, pid_out, &out) < 0) {
		error_set(err, STATUS_INTERNAL, "copying diff to patch-id: %s", strerror(errno));
		goto out;
	}
	pid_in = -1; /* closed by pump */
	git_cmd_wait(id_pid, &pid_res);
	id_pid = -1;
	if (!diff_exit_ok(&pid_res)) {
		diff_exit_error(&pid_res, STATUS_INTERNAL, "waiting for patch-id", err);
		goto out;
	}
	close(diff_fd);
	diff_fd = -1;
	git_cmd_wait(diff_pid, &diff_res);
	diff_pid = -1;
	if (!diff_exit_ok(&diff_res)) {
		diff_exit_error(&diff_res, STATUS_INTERNAL, "waiting for git-diff", err);
		goto out;
	}
	if (!out.len) {
		error_set(err, STATUS_FAILED_PRECONDITION, "no difference between old and new revision");
		goto out;
	}
	sp = memchr(out.buf, ' ', out.len);
	if (!sp) {
		error_set(err, STATUS_FAILED_PRECONDITION, "unexpected patch ID format");
		goto out;
	}
	*sp = '\0';
	resp.patch_id = out.buf;
	ret = rpc_call_send(call, &resp.base, err);
out:
	if (pid_in >= 0)
		close(pid_in);
	if (pid_out >= 0)
		close(pid_out);
	if (diff_fd >= 0)
		close(diff_fd);
	if (id_pid > 0) {
		git_cmd_kill(id_pid);
		git_cmd_wait(id_pid, &pid_res);
	}
	if (diff_pid > 0) {
		git_cmd_kill(diff_pid);
		git_cmd_wait(diff_pid, &diff_res);
	}
	strbuf_release(&out);
	free(old_rev);
	free(new_rev);
	service_git_env_release(&genv);
	free(path);
	return ret;
}
