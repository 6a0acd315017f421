/*
 * ObjectsSize of RepositoryService: the on-disk size of every object
 * reachable from the revisions a client streams in, from
 * `git rev-list --disk-usage --objects --stdin`. All requests are read and
 * validated before git runs.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "git/command.h"
#include "git/revision.h"
#include "repository.pb-c.h"
#include "service/repository_internal.h"
#include "service/util.h"

/* Cap on the revisions a client may stream (bytes fed to git's stdin). */
#define OBJECTS_SIZE_STDIN_CAP ((size_t)16 * 1024 * 1024)
#define OBJECTS_SIZE_OUT_CAP 4096
#define OBJECTS_SIZE_ERR_CAP (64 * 1024)

/* Appends the request's revisions, newline separated, after validating them. */
static int add_revisions(const Gitaly__ObjectsSizeRequest *req, struct strbuf *in,
			 struct error *err)
{
	if (req->n_revisions == 0)
		return error_set(err, STATUS_INVALID_ARGUMENT, "no revisions specified");
	for (size_t i = 0; i < req->n_revisions; i++) {
		const ProtobufCBinaryData *r = &req->revisions[i];

		if (revision_validate((const char *)r->data, r->len, REVISION_ALLOW_PSEUDO, err) < 0) {
			err->code = STATUS_INVALID_ARGUMENT;
			return error_prefix(err, "validating revision");
		}
		if (strbuf_add(in, r->data, r->len) < 0 || strbuf_addch(in, '\n') < 0)
			return error_set(err, STATUS_INVALID_ARGUMENT, "process revision: too many revisions");
	}
	return 0;
}

int repo_objects_size(const char *repo_path, const struct service_git_env *genv,
		      const char *revs, size_t len, uint64_t *size, struct error *err)
{
	struct git_cmd *cmd = service_git_new(repo_path, genv, "rev-list");
	struct strbuf out, errbuf;
	struct git_result res;
	char *end = NULL;
	int ret = -1;

	strbuf_init(&out, OBJECTS_SIZE_OUT_CAP);
	strbuf_init(&errbuf, OBJECTS_SIZE_ERR_CAP);
	git_cmd_flag(cmd, "--disk-usage");
	git_cmd_flag(cmd, "--objects");
	git_cmd_flag(cmd, "--stdin");
	if (git_cmd_run(cmd, revs, len, &out, &errbuf, &res, err) < 0) {
		error_prefix(err, "start rev-list command");
		goto out;
	}
	if (res.exit_code != 0) {
		const char *prefix = "fatal: bad revision '";

		if (!strncmp(errbuf.buf ? errbuf.buf : "", prefix, strlen(prefix)) &&
		    strchr(errbuf.buf + strlen(prefix), '\''))
			error_set(err, STATUS_NOT_FOUND, "revision not found");
		else
			error_set(err, STATUS_UNKNOWN, "rev-list failed with error code %d",
				  res.exit_code);
		goto out;
	}
	strbuf_rtrim(&out);
	*size = out.len ? strtoull(out.buf, &end, 10) : 0;
	if (!out.len || *end) {
		error_set(err, STATUS_INTERNAL, "parsing object size: invalid syntax");
		goto out;
	}
	ret = 0;
out:
	strbuf_release(&out);
	strbuf_release(&errbuf);
	return ret;
}

int repository_objects_size_rpc(struct rpc_call *call, struct error *err)
{
	const struct service_deps *deps = rpc_call_service_data(call);
	const Gitaly__ObjectsSizeRequest *req =
		(const Gitaly__ObjectsSizeRequest *)rpc_call_request(call);
	Gitaly__ObjectsSizeResponse resp = GITALY__OBJECTS_SIZE_RESPONSE__INIT;
	struct service_git_env genv = { 0 };
	struct strbuf in;
	char *path = NULL;
	uint64_t size = 0;
	int ret = -1;

	strbuf_init(&in, OBJECTS_SIZE_STDIN_CAP);
	if (!req) {
		error_set(err, STATUS_INTERNAL, "receiving initial request: EOF");
		goto out;
	}
	if (service_repo_path(deps, req->repository, 0, &path, err) < 0)
		goto out;
	if (service_git_env_init(&genv, path, req->repository, err) < 0)
		goto out;
	if (add_revisions(req, &in, err) < 0)
		goto out;
	for (;;) {
		ProtobufCMessage *msg = NULL;
		const Gitaly__ObjectsSizeRequest *next;
		int r = rpc_call_recv(call, &msg, err);

		if (r < 0) {
			error_prefix(err, "receiving next request");
			goto out;
		}
		if (r == 0)
			break;
		next = (const Gitaly__ObjectsSizeRequest *)msg;
		if (next->repository) {
			rpc_call_free_message(call, msg);
			error_set(err, STATUS_INVALID_ARGUMENT,
				  "subsequent requests must not contain repository");
			goto out;
		}
		r = add_revisions(next, &in, err);
		rpc_call_free_message(call, msg);
		if (r < 0)
			goto out;
	}
	if (repo_objects_size(path, &genv, in.buf, in.len, &size, err) < 0)
		goto out;
	resp.size = size;
	ret = rpc_call_send(call, &resp.base, err);
out:
	service_git_env_release(&genv);
	strbuf_release(&in);
	free(path);
	return ret;
}
