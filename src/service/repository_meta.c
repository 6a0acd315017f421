/*
 * RepositoryExists and ObjectFormat: facts about a repository as a whole.
 * Exists answers false for a missing or invalid repository (upstream's
 * locator errors NotFound/FailedPrecondition) and fails for anything else.
 */
#include <stdlib.h>
#include <string.h>

#include "git/command.h"
#include "repository.pb-c.h"
#include "service/repository_internal.h"
#include "service/util.h"

#define OUTPUT_CAP 4096

int repo_object_format(const char *repo_path, const struct service_git_env *genv, const char **out, struct error *err)
{
	struct git_cmd *cmd = service_git_new(repo_path, genv, "rev-parse");
	struct strbuf buf;
	struct git_result res;
	int ret = -1;

	strbuf_init(&buf, OUTPUT_CAP);
	git_cmd_flag(cmd, "--show-object-format");
	if (git_cmd_run(cmd, NULL, 0, &buf, NULL, &res, err) < 0)
		goto out;
	if (res.exit_code != 0) {
		error_set(err, STATUS_INTERNAL, "detecting object hash: exit status %d",
			  res.exit_code);
		goto out;
	}
	strbuf_rtrim(&buf);
	if (buf.len && !strcmp(buf.buf, "sha1")) {
		*out = "sha1";
	} else if (buf.len && !strcmp(buf.buf, "sha256")) {
		*out = "sha256";
	} else {
		struct strbuf msg = STRBUF_INIT;

		strbuf_adds(&msg, "detecting object hash: unknown object format: ");
		service_go_quote(&msg, buf.buf ? buf.buf : "", buf.len);
		error_set(err, STATUS_INTERNAL, "%s", msg.buf);
		strbuf_release(&msg);
		goto out;
	}
	ret = 0;
out:
	strbuf_release(&buf);
	return ret;
}

int repository_exists_rpc(struct rpc_call *call, struct error *err)
{
	const struct service_deps *deps = rpc_call_service_data(call);
	const Gitaly__RepositoryExistsRequest *req =
		(const Gitaly__RepositoryExistsRequest *)rpc_call_request(call);
	Gitaly__RepositoryExistsResponse resp = GITALY__REPOSITORY_EXISTS_RESPONSE__INIT;
	char *path = NULL;
	int ret = -1;

	if (service_repo_path(deps, req->repository, 0, &path, err) < 0) {
		int missing = err->code == STATUS_NOT_FOUND &&
			      !strncmp(err->message, "repository not found", 20);
		int invalid = err->code == STATUS_FAILED_PRECONDITION &&
			      !strncmp(err->message, "repository not valid", 20);

		if (!missing && !invalid)
			goto out;
		error_release(err);
		resp.exists = 0;
	} else {
		resp.exists = 1;
	}
	ret = rpc_call_send(call, &resp.base, err);
out:
	free(path);
	return ret;
}

int repository_object_format_rpc(struct rpc_call *call, struct error *err)
{
	const struct service_deps *deps = rpc_call_service_data(call);
	const Gitaly__ObjectFormatRequest *req =
		(const Gitaly__ObjectFormatRequest *)rpc_call_request(call);
	Gitaly__ObjectFormatResponse resp = GITALY__OBJECT_FORMAT_RESPONSE__INIT;
	const char *format;
	char *path = NULL;
	struct service_git_env genvs = { 0 };
	const struct service_git_env *genv = &genvs;
	int ret = -1;

	if (service_repo_path(deps, req->repository, 0, &path, err) < 0)
		goto out;
	if (service_git_env_init(&genvs, path, req->repository, err) < 0)
		goto out;
	if (repo_object_format(path, genv, &format, err) < 0)
		goto out;
	resp.format = !strcmp(format, "sha256") ? GITALY__OBJECT_FORMAT__OBJECT_FORMAT_SHA256
						: GITALY__OBJECT_FORMAT__OBJECT_FORMAT_SHA1;
	ret = rpc_call_send(call, &resp.base, err);
out:
	service_git_env_release(&genvs);
	free(path);
	return ret;
}
