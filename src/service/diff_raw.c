/*
 * RawDiff and RawPatch: git's own text, `git diff --full-index` and
 * `git format-patch --stdout --signature GitLab left..right`, streamed in
 * 128 KiB chunks as upstream's streamio writer does.
 */
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "diff.pb-c.h"
#include "service/diff_internal.h"
#include "service/util.h"

struct raw_ctx {
	int patch; /* RawPatchResponse instead of RawDiffResponse */
};

static int send_chunk(struct rpc_call *call, const uint8_t *data, size_t len, void *ctx,
		      struct error *err)
{
	struct raw_ctx *c = ctx;
	int ret;

	if (c->patch) {
		Gitaly__RawPatchResponse resp = GITALY__RAW_PATCH_RESPONSE__INIT;

		resp.data.data = (uint8_t *)data;
		resp.data.len = len;
		ret = rpc_call_send(call, &resp.base, err);
	} else {
		Gitaly__RawDiffResponse resp = GITALY__RAW_DIFF_RESPONSE__INIT;

		resp.data.data = (uint8_t *)data;
		resp.data.len = len;
		ret = rpc_call_send(call, &resp.base, err);
	}
	if (ret < 0) {
		error_prefix(err, "send");
		err->code = STATUS_ABORTED;
	}
	return ret;
}

/* Upstream's sendRawOutput: stream stdout, then a failing git is Internal
 * with its exit status (upstream returns the bare error, which its status
 * middleware turns into Internal). Frees cmd. */
static int send_raw_output(struct rpc_call *call, struct git_cmd *cmd, int patch,
			   struct error *err)
{
	struct raw_ctx ctx = { patch };
	struct git_result res;
	int out_fd = -1, ret = -1;
	pid_t pid;

	if (git_cmd_start(cmd, NULL, &out_fd, NULL, &pid, err) < 0) {
		error_prefix(err, "cmd");
		err->code = STATUS_INTERNAL;
		return -1;
	}
	ret = service_stream_fd(call, out_fd, send_chunk, &ctx, err);
	close(out_fd);
	if (ret < 0)
		git_cmd_kill(pid);
	git_cmd_wait(pid, &res);
	if (ret == 0 && !diff_exit_ok(&res))
		ret = diff_exit_error(&res, STATUS_INTERNAL, NULL, err);
	return ret;
}

struct raw_request {
	const Gitaly__Repository *repo;
	const char *left, *right;
};

static int raw_rpc(struct rpc_call *call, const struct raw_request *r, int patch,
		   struct error *err)
{
	const struct service_deps *deps = rpc_call_service_data(call);
	struct service_git_env genv = { 0 };
	struct git_cmd *cmd;
	char *path = NULL, *range = NULL;
	int ret = -1;

	if (diff_validate_request(deps, r->repo, r->left, r->right, &path, err) < 0)
		goto out;
	if (service_git_env_init(&genv, path, r->repo, err) < 0)
		goto out;
	if (patch) {
		if (asprintf(&range, "%s..%s", r->left, r->right) < 0) {
			range = NULL;
			error_set(err, STATUS_INTERNAL, "out of memory");
			goto out;
		}
		if (diff_check_positional(range, "cmd", err) < 0)
			goto out;
		cmd = diff_git_new(call, path, &genv, "format-patch");
		git_cmd_flag(cmd, "--stdout");
		git_cmd_option(cmd, "--signature", "GitLab");
		git_cmd_arg(cmd, range);
	} else {
		if (diff_check_positional(r->left, "cmd", err) < 0 ||
		    diff_check_positional(r->right, "cmd", err) < 0)
			goto out;
		cmd = diff_git_new(call, path, &genv, "diff");
		git_cmd_flag(cmd, "--full-index");
		git_cmd_arg(cmd, r->left);
		git_cmd_arg(cmd, r->right);
	}
	ret = send_raw_output(call, cmd, patch, err);
out:
	free(range);
	service_git_env_release(&genv);
	free(path);
	return ret;
}

int diff_raw_diff_rpc(struct rpc_call *call, struct error *err)
{
	const Gitaly__RawDiffRequest *req = (const Gitaly__RawDiffRequest *)rpc_call_request(call);
	struct raw_request r = { req->repository, req->left_commit_id, req->right_commit_id };

	return raw_rpc(call, &r, 0, err);
}

int diff_raw_patch_rpc(struct rpc_call *call, struct error *err)
{
	const Gitaly__RawPatchRequest *req = (const Gitaly__RawPatchRequest *)rpc_call_request(call);
	struct raw_request r = { req->repository, req->left_commit_id, req->right_commit_id };

	return raw_rpc(call, &r, 1, err);
}
