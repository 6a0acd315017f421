/*
 * Fsck of RepositoryService: runs `git fsck --no-progress --no-dangling` on
 * the repository and hands git's whole output back as the response's error
 * bytes when git reports a problem; a clean repository gets an empty answer.
 */
#include <stdlib.h>
#include <string.h>

#include "git/command.h"
#include "repository.pb-c.h"
#include "service/repository_internal.h"
#include "service/util.h"

/* Cap on git fsck's captured output (each stream). */
#define FSCK_OUTPUT_CAP ((size_t)8 * 1024 * 1024)

int repo_fsck(const char *repo_path, const struct service_git_env *genv, struct strbuf *out,
	      struct error *err)
{
	struct git_cmd *cmd = service_git_new(repo_path, genv, "fsck");
	struct strbuf errbuf;
	struct git_result res;
	int ret = -1;

	strbuf_init(&errbuf, FSCK_OUTPUT_CAP);
	git_cmd_flag(cmd, "--no-progress");
	git_cmd_flag(cmd, "--no-dangling");
	if (git_cmd_run(cmd, NULL, 0, out, &errbuf, &res, err) < 0)
		goto out;
	if (res.exit_code == 0) {
		strbuf_reset(out);
	} else if (errbuf.len && strbuf_add(out, errbuf.buf, errbuf.len) < 0) {
		error_set(err, STATUS_INTERNAL, "fsck output too large");
		goto out;
	}
	ret = 0;
out:
	strbuf_release(&errbuf);
	return ret;
}

int repository_fsck_rpc(struct rpc_call *call, struct error *err)
{
	const struct service_deps *deps = rpc_call_service_data(call);
	const Gitaly__FsckRequest *req = (const Gitaly__FsckRequest *)rpc_call_request(call);
	Gitaly__FsckResponse resp = GITALY__FSCK_RESPONSE__INIT;
	struct service_git_env genv = { 0 };
	struct strbuf out;
	char *path = NULL;
	int ret = -1;

	strbuf_init(&out, FSCK_OUTPUT_CAP);
	if (service_repo_path(deps, req->repository, 0, &path, err) < 0)
		goto out;
	if (service_git_env_init(&genv, path, req->repository, err) < 0)
		goto out;
	if (repo_fsck(path, &genv, &out, err) < 0)
		goto out;
	resp.error.data = (uint8_t *)out.buf;
	resp.error.len = out.len;
	ret = rpc_call_send(call, &resp.base, err);
out:
	service_git_env_release(&genv);
	strbuf_release(&out);
	free(path);
	return ret;
}
