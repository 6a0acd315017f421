/*
 * The repository's own git config: GetConfig streams the config file in
 * 128 KiB chunks; SetFullPath and FullPath write and read the
 * gitlab.fullpath key GitLab uses to map a repository to its project.
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

#define FULL_PATH_KEY "gitlab.fullpath"
#define FULL_PATH_CAP (64 * 1024)

int repo_set_full_path(const char *repo_path, const struct service_git_env *genv, const char *value, struct error *err)
{
	struct git_cmd *cmd = service_git_new(repo_path, genv, "config");
	struct git_result res;

	git_cmd_flag(cmd, "--replace-all");
	git_cmd_arg(cmd, FULL_PATH_KEY);
	git_cmd_arg(cmd, value);
	if (git_cmd_run(cmd, NULL, 0, NULL, NULL, &res, err) < 0)
		return error_prefix(err, "setting config");
	if (res.exit_code == 1)
		return error_set(err, STATUS_INTERNAL,
				 "setting config: invalid argument: bad section or name");
	if (res.exit_code == 2)
		return error_set(err, STATUS_INTERNAL,
				 "setting config: invalid argument: missing section or name");
	if (res.exit_code != 0)
		return error_set(err, STATUS_INTERNAL, "setting config: exit status %d",
				 res.exit_code);
	return 0;
}

int repo_full_path(const char *repo_path, const struct service_git_env *genv, char **out, struct error *err)
{
	struct git_cmd *cmd = service_git_new(repo_path, genv, "config");
	struct strbuf buf;
	struct git_result res;
	int ret = -1;

	strbuf_init(&buf, FULL_PATH_CAP);
	git_cmd_arg(cmd, FULL_PATH_KEY);
	if (git_cmd_run(cmd, NULL, 0, &buf, NULL, &res, err) < 0) {
		error_prefix(err, "fetch config");
		goto out;
	}
	if (res.exit_code != 0) {
		error_set(err, STATUS_INTERNAL, "fetch config: exit status %d", res.exit_code);
		goto out;
	}
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

int repository_set_full_path_rpc(struct rpc_call *call, struct error *err)
{
	const struct service_deps *deps = rpc_call_service_data(call);
	const Gitaly__SetFullPathRequest *req =
		(const Gitaly__SetFullPathRequest *)rpc_call_request(call);
	Gitaly__SetFullPathResponse resp = GITALY__SET_FULL_PATH_RESPONSE__INIT;
	char *path = NULL;
	struct service_git_env genvs = { 0 };
	const struct service_git_env *genv = &genvs;
	int ret = -1;

	if (service_repo_path(deps, req->repository, 0, &path, err) < 0)
		goto out;
	if (service_git_env_init(&genvs, path, req->repository, err) < 0)
		goto out;
	if (!req->path || !req->path[0]) {
		error_set(err, STATUS_INVALID_ARGUMENT, "no path provided");
		goto out;
	}
	if (repo_set_full_path(path, genv, req->path, err) < 0) {
		err->code = STATUS_INTERNAL;
		goto out;
	}
	ret = rpc_call_send(call, &resp.base, err);
out:
	service_git_env_release(&genvs);
	free(path);
	return ret;
}

int repository_full_path_rpc(struct rpc_call *call, struct error *err)
{
	const struct service_deps *deps = rpc_call_service_data(call);
	const Gitaly__FullPathRequest *req = (const Gitaly__FullPathRequest *)rpc_call_request(call);
	Gitaly__FullPathResponse resp = GITALY__FULL_PATH_RESPONSE__INIT;
	char *path = NULL, *value = NULL;
	struct service_git_env genvs = { 0 };
	const struct service_git_env *genv = &genvs;
	int ret = -1;

	if (service_repo_path(deps, req->repository, 0, &path, err) < 0)
		goto out;
	if (service_git_env_init(&genvs, path, req->repository, err) < 0)
		goto out;
	if (repo_full_path(path, genv, &value, err) < 0) {
		err->code = STATUS_INTERNAL;
		goto out;
	}
	resp.path = value;
	ret = rpc_call_send(call, &resp.base, err);
out:
	service_git_env_release(&genvs);
	free(value);
	free(path);
	return ret;
}

static int send_config_chunk(struct rpc_call *call, const uint8_t *data, size_t len, void *ctx,
			     struct error *err)
{
	Gitaly__GetConfigResponse resp = GITALY__GET_CONFIG_RESPONSE__INIT;

	(void)ctx;
	resp.data.data = (uint8_t *)data;
	resp.data.len = len;
	if (rpc_call_send(call, &resp.base, err) < 0)
		return error_prefix(err, "sending config");
	return 0;
}

int repository_get_config_rpc(struct rpc_call *call, struct error *err)
{
	const struct service_deps *deps = rpc_call_service_data(call);
	const Gitaly__GetConfigRequest *req =
		(const Gitaly__GetConfigRequest *)rpc_call_request(call);
	char *path = NULL, *config = NULL;
	int fd = -1, ret = -1;

	if (service_repo_path(deps, req->repository, 0, &path, err) < 0)
		goto out;
	if (asprintf(&config, "%s/config", path) < 0) {
		config = NULL;
		error_set(err, STATUS_INTERNAL, "out of memory");
		goto out;
	}
	fd = open(config, O_RDONLY | O_CLOEXEC);
	if (fd < 0) {
		/* Go's *PathError text: "open <path>: <reason>". */
		error_set(err, errno == ENOENT ? STATUS_NOT_FOUND : STATUS_INTERNAL,
			  "opening gitconfig: open %s: %s", config,
			  errno == ENOENT ? "no such file or directory" : strerror(errno));
		goto out;
	}
	if (service_stream_fd(call, fd, send_config_chunk, NULL, err) < 0) {
		if (strncmp(err->message, "sending config", 14) != 0)
			error_prefix(err, "sending config");
		err->code = err->code == STATUS_OK ? STATUS_INTERNAL : err->code;
		goto out;
	}
	ret = 0;
out:
	if (fd >= 0)
		close(fd);
	free(config);
	free(path);
	return ret;
}
