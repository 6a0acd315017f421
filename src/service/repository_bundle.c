/*
 * Bundles of RepositoryService: CreateBundle streams
 * `git bundle create - --all`, CreateBundleFromRefList the bundle of the
 * rev-list patterns a client streams in (`--ignore-missing --stdin`). An
 * empty bundle is FailedPrecondition, as upstream's localrepo. Also home of
 * the helper that streams a git command's stdout as response chunks while
 * collecting its stderr (used by GetArchive too).
 */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "git/command.h"
#include "repository.pb-c.h"
#include "service/repository_internal.h"
#include "service/util.h"

/* Cap on the patterns a client may stream. */
#define BUNDLE_PATTERNS_CAP ((size_t)64 * 1024 * 1024)
#define BUNDLE_STDERR_CAP ((size_t)64 * 1024)

int repo_stream_git(struct rpc_call *call, struct git_cmd *cmd, const void *in, size_t in_len,
		    service_chunk_fn send, void *ctx, struct strbuf *errbuf,
		    struct git_result *res, struct error *err)
{
	uint8_t *buf = malloc(SERVICE_CHUNK_SIZE);
	int in_fd = -1, out_fd = -1, err_fd = -1, ret = -1, killed = 0;
	size_t fill = 0, written = 0;
	pid_t pid = -1;

	memset(res, 0, sizeof(*res));
	if (!buf) {
		git_cmd_free(cmd);
		return error_set(err, STATUS_INTERNAL, "out of memory");
	}
	if (git_cmd_start(cmd, in ? &in_fd : NULL, &out_fd, &err_fd, &pid, err) < 0) {
		pid = -1;
		goto out;
	}
	if (in_fd >= 0 && in_len == 0) {
		close(in_fd);
		in_fd = -1;
	}
	if (in_fd >= 0)
		fcntl(in_fd, F_SETFL, fcntl(in_fd, F_GETFL) | O_NONBLOCK);
	while (out_fd >= 0 || err_fd >= 0) {
		struct pollfd p[3];
		int n = 0, io = -1, ie = -1, ii = -1;

		if (rpc_call_cancelled(call)) {
			error_set(err, STATUS_CANCELLED, "context canceled");
			goto out;
		}
		if (out_fd >= 0)
			io = n, p[n].fd = out_fd, p[n].events = POLLIN, n++;
		if (err_fd >= 0)
			ie = n, p[n].fd = err_fd, p[n].events = POLLIN, n++;
		if (in_fd >= 0)
			ii = n, p[n].fd = in_fd, p[n].events = POLLOUT, n++;
		if (poll(p, (nfds_t)n, 1000) < 0) {
			if (errno == EINTR)
				continue;
			error_set(err, STATUS_INTERNAL, "poll: %s", strerror(errno));
			goto out;
		}
		if (ii >= 0 && p[ii].revents) {
			ssize_t w = write(in_fd, (const char *)in + written, in_len - written);

			if (w > 0)
				written += (size_t)w;
			if ((w < 0 && errno != EAGAIN && errno != EINTR) || written == in_len) {
				close(in_fd);
				in_fd = -1;
			}
		}
		if (ie >= 0 && p[ie].revents) {
			char tmp[4096];
			ssize_t r = read(err_fd, tmp, sizeof(tmp));

			if (r > 0 && errbuf)
				strbuf_add(errbuf, tmp, (size_t)r); /* beyond the cap: dropped */
			if (r == 0 || (r < 0 && errno != EINTR && errno != EAGAIN)) {
				close(err_fd);
				err_fd = -1;
			}
		}
		if (io >= 0 && p[io].revents) {
			ssize_t r = read(out_fd, buf + fill, SERVICE_CHUNK_SIZE - fill);

			if (r > 0)
				fill += (size_t)r;
			if (fill == SERVICE_CHUNK_SIZE || (r == 0 && fill > 0)) {
				if (send(call, buf, fill, ctx, err) < 0)
					goto out;
				fill = 0;
			}
			if (r == 0 || (r < 0 && errno != EINTR && errno != EAGAIN)) {
				close(out_fd);
				out_fd = -1;
			}
		}
	}
	ret = 0;
out:
	if (in_fd >= 0)
		close(in_fd);
	if (out_fd >= 0)
		close(out_fd);
	if (err_fd >= 0)
		close(err_fd);
	if (pid > 0) {
		if (ret < 0) {
			git_cmd_kill(pid);
			killed = 1;
		}
		git_cmd_wait(pid, res);
		(void)killed;
	}
	free(buf);
	return ret;
}

static int send_bundle_chunk(struct rpc_call *call, const uint8_t *data, size_t len, void *ctx,
			     struct error *err)
{
	Gitaly__CreateBundleResponse resp = GITALY__CREATE_BUNDLE_RESPONSE__INIT;

	(void)ctx;
	resp.data.data = (uint8_t *)data;
	resp.data.len = len;
	return rpc_call_send(call, &resp.base, err);
}

static int send_reflist_chunk(struct rpc_call *call, const uint8_t *data, size_t len, void *ctx,
			      struct error *err)
{
	Gitaly__CreateBundleFromRefListResponse resp = GITALY__CREATE_BUNDLE_FROM_REF_LIST_RESPONSE__INIT;

	(void)ctx;
	resp.data.data = (uint8_t *)data;
	resp.data.len = len;
	return rpc_call_send(call, &resp.base, err);
}

int repo_create_bundle(struct rpc_call *call, const char *repo_path,
		       const struct service_git_env *genv, const char *patterns, size_t len,
		       service_chunk_fn send, struct error *err)
{
	struct git_cmd *cmd = service_git_new(repo_path, genv, "bundle");
	struct strbuf errbuf;
	struct git_result res;
	int ret = -1;

	strbuf_init(&errbuf, BUNDLE_STDERR_CAP);
	git_cmd_action(cmd, "create");
	git_cmd_flag(cmd, "-"); /* the bundle goes to stdout */
	if (patterns) {
		git_cmd_flag(cmd, "--ignore-missing");
		git_cmd_flag(cmd, "--stdin");
	} else {
		git_cmd_flag(cmd, "--all");
	}
	if (repo_stream_git(call, cmd, patterns ? patterns : NULL, len, send, NULL, &errbuf, &res,
			    err) < 0) {
		error_prefix(err, "create bundle");
		if (err->code == STATUS_OK || err->code == STATUS_UNKNOWN)
			err->code = STATUS_INTERNAL;
		goto out;
	}
	if (res.exit_code == 128 &&
	    !strncmp(errbuf.buf ? errbuf.buf : "", "fatal: Refusing to create empty bundle.", 39)) {
		error_set(err, STATUS_FAILED_PRECONDITION, "create bundle: refusing to create empty bundle");
		goto out;
	}
	if (res.exit_code != 0) {
		struct strbuf msg = STRBUF_INIT;

		strbuf_addf(&msg, "create bundle: exit status %d: stderr: ", res.exit_code);
		service_go_quote(&msg, errbuf.buf ? errbuf.buf : "", errbuf.len);
		error_set(err, STATUS_INTERNAL, "%s", msg.buf);
		strbuf_release(&msg);
		goto out;
	}
	ret = 0;
out:
	strbuf_release(&errbuf);
	return ret;
}

int repository_create_bundle_rpc(struct rpc_call *call, struct error *err)
{
	const struct service_deps *deps = rpc_call_service_data(call);
	const Gitaly__CreateBundleRequest *req =
		(const Gitaly__CreateBundleRequest *)rpc_call_request(call);
	struct service_git_env genv = { 0 };
	char *path = NULL;
	int ret = -1;

	if (service_repo_path(deps, req->repository, 0, &path, err) < 0)
		goto out;
	if (service_git_env_init(&genv, path, req->repository, err) < 0)
		goto out;
	ret = repo_create_bundle(call, path, &genv, NULL, 0, send_bundle_chunk, err);
out:
	service_git_env_release(&genv);
	free(path);
	return ret;
}

/* Appends a request's patterns, each followed by a newline, as upstream's
 * reader does (an empty list still gives one newline). */
static int add_patterns(const Gitaly__CreateBundleFromRefListRequest *req, struct strbuf *in,
			struct error *err)
{
	for (size_t i = 0; i < req->n_patterns; i++) {
		if ((i && strbuf_addch(in, '\n') < 0) ||
		    strbuf_add(in, req->patterns[i].data, req->patterns[i].len) < 0)
			return error_set(err, STATUS_RESOURCE_EXHAUSTED, "too many patterns");
	}
	if (strbuf_addch(in, '\n') < 0)
		return error_set(err, STATUS_RESOURCE_EXHAUSTED, "too many patterns");
	return 0;
}

int repository_create_bundle_from_ref_list_rpc(struct rpc_call *call, struct error *err)
{
	const struct service_deps *deps = rpc_call_service_data(call);
	const Gitaly__CreateBundleFromRefListRequest *req =
		(const Gitaly__CreateBundleFromRefListRequest *)rpc_call_request(call);
	struct service_git_env genv = { 0 };
	struct strbuf in;
	char *path = NULL;
	int ret = -1;

	strbuf_init(&in, BUNDLE_PATTERNS_CAP);
	if (!req) {
		error_set(err, STATUS_INTERNAL, "EOF");
		goto out;
	}
	if (service_repo_path(deps, req->repository, 0, &path, err) < 0)
		goto out;
	if (service_git_env_init(&genv, path, req->repository, err) < 0)
		goto out;
	if (add_patterns(req, &in, err) < 0)
		goto out;
	for (;;) {
		ProtobufCMessage *msg = NULL;
		int r = rpc_call_recv(call, &msg, err);

		if (r < 0)
			goto out;
		if (r == 0)
			break;
		r = add_patterns((const Gitaly__CreateBundleFromRefListRequest *)msg, &in, err);
		rpc_call_free_message(call, msg);
		if (r < 0)
			goto out;
	}
	ret = repo_create_bundle(call, path, &genv, in.buf, in.len, send_reflist_chunk, err);
out:
	service_git_env_release(&genv);
	strbuf_release(&in);
	free(path);
	return ret;
}
