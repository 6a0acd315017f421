/*
 * Read-only reference questions of RepositoryService: HasLocalBranches and
 * FindMergeBase, both answered by git.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "git/command.h"
#include "repository.pb-c.h"
#include "service/repository_internal.h"
#include "service/util.h"

#define OID_OUTPUT_CAP 4096

int repo_has_local_branches(const char *repo_path, const struct service_git_env *genv, int *out, struct error *err)
{
	struct git_cmd *cmd = service_git_new(repo_path, genv, "for-each-ref");
	struct strbuf buf;
	struct git_result res;
	int ret = -1;

	strbuf_init(&buf, OID_OUTPUT_CAP * 4);
	git_cmd_flag(cmd, "--count=1");
	git_cmd_flag(cmd, "--format=%(refname)");
	git_cmd_arg(cmd, "refs/heads/");
	if (git_cmd_run(cmd, NULL, 0, &buf, NULL, &res, err) < 0)
		goto out;
	if (res.exit_code != 0) {
		error_set(err, STATUS_INTERNAL, "exit status %d", res.exit_code);
		goto out;
	}
	*out = buf.len > 0;
	ret = 0;
out:
	strbuf_release(&buf);
	return ret;
}

int repo_merge_base(const char *repo_path, const struct service_git_env *genv, const char *const *revs, size_t n, char **out,
		    struct error *err)
{
	struct git_cmd *cmd = service_git_new(repo_path, genv, "merge-base");
	struct strbuf buf;
	struct git_result res;
	int ret = -1;

	strbuf_init(&buf, OID_OUTPUT_CAP);
	for (size_t i = 0; i < n; i++)
		git_cmd_arg(cmd, revs[i]);
	if (git_cmd_run(cmd, NULL, 0, &buf, NULL, &res, err) < 0)
		goto out;
	/* Like upstream: any failure (unrelated histories, bad revision) means no base. */
	if (res.exit_code != 0)
		strbuf_reset(&buf);
	if (buf.len && buf.buf[buf.len - 1] == '\n')
		buf.buf[--buf.len] = '\0';
	*out = buf.len ? strbuf_detach(&buf, NULL) : strdup("");
	if (!*out) {
		error_set(err, STATUS_INTERNAL, "out of memory");
		goto out;
	}
	ret = 0;
out:
	strbuf_release(&buf);
	return ret;
}

/* A C string from request bytes (NUL already rejected). */
static char *bytes_dup(const ProtobufCBinaryData *b)
{
	return strndup(b->data ? (const char *)b->data : "", b->len);
}

int repository_has_local_branches_rpc(struct rpc_call *call, struct error *err)
{
	const struct service_deps *deps = rpc_call_service_data(call);
	const Gitaly__HasLocalBranchesRequest *req =
		(const Gitaly__HasLocalBranchesRequest *)rpc_call_request(call);
	Gitaly__HasLocalBranchesResponse resp = GITALY__HAS_LOCAL_BRANCHES_RESPONSE__INIT;
	char *path = NULL;
	struct service_git_env genvs = { 0 };
	const struct service_git_env *genv = &genvs;
	int value = 0, ret = -1;

	if (service_repo_path(deps, req->repository, 0, &path, err) < 0)
		goto out;
	if (service_git_env_init(&genvs, path, req->repository, err) < 0)
		goto out;
	if (repo_has_local_branches(path, genv, &value, err) < 0) {
		err->code = STATUS_INTERNAL;
		goto out;
	}
	resp.value = value;
	ret = rpc_call_send(call, &resp.base, err);
out:
	service_git_env_release(&genvs);
	free(path);
	return ret;
}

int repository_find_merge_base_rpc(struct rpc_call *call, struct error *err)
{
	const struct service_deps *deps = rpc_call_service_data(call);
	const Gitaly__FindMergeBaseRequest *req =
		(const Gitaly__FindMergeBaseRequest *)rpc_call_request(call);
	Gitaly__FindMergeBaseResponse resp = GITALY__FIND_MERGE_BASE_RESPONSE__INIT;
	char *path = NULL, *base = NULL, **revs = NULL;
	size_t n = 0;
	struct service_git_env genvs = { 0 };
	const struct service_git_env *genv = &genvs;
	int ret = -1;

	if (service_repo_path(deps, req->repository, 0, &path, err) < 0)
		goto out;
	if (service_git_env_init(&genvs, path, req->repository, err) < 0)
		goto out;
	if (req->n_revisions < 2) {
		error_set(err, STATUS_INVALID_ARGUMENT, "at least 2 revisions are required");
		goto out;
	}
	revs = calloc(req->n_revisions, sizeof(*revs));
	if (!revs) {
		error_set(err, STATUS_INTERNAL, "out of memory");
		goto out;
	}
	for (; n < req->n_revisions; n++) {
		const ProtobufCBinaryData *r = &req->revisions[n];

		/* Upstream's command builder refuses these before running git. */
		if (r->len && r->data[0] == '-') {
			struct strbuf msg = STRBUF_INIT;

			strbuf_adds(&msg, "cmd: positional arg ");
			service_go_quote(&msg, (const char *)r->data, r->len);
			strbuf_adds(&msg, " cannot start with dash");
			error_set(err, STATUS_INTERNAL, "%s", msg.buf);
			strbuf_release(&msg);
			goto out;
		}
		if (service_has_nul(r->data, r->len)) {
			error_set(err, STATUS_INTERNAL, "cmd: invalid argument");
			goto out;
		}
		revs[n] = bytes_dup(r);
		if (!revs[n]) {
			error_set(err, STATUS_INTERNAL, "out of memory");
			goto out;
		}
	}
	if (repo_merge_base(path, genv, (const char *const *)revs, n, &base, err) < 0)
		goto out;
	resp.base = base;
	ret = rpc_call_send(call, &resp.pb_base, err);
out:
	service_git_env_release(&genvs);
	for (size_t i = 0; revs && i < n; i++)
		free(revs[i]);
	free(revs);
	free(base);
	free(path);
	return ret;
}
