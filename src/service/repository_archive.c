/*
 * GetArchive of RepositoryService: `git archive` of a commit (optionally of
 * one path, with excluded paths, with the path elided) as zip or tar, tar.gz
 * (compressed by `gzip -c -n` as upstream) or tar.bz2 (`bzip2 -c`), the
 * compressor being run by git itself through its tar.<format>.command
 * setting. Paths are checked before git runs: they must stay inside the
 * repository and exist in the commit.
 *
 * Not implemented: LFS smudging (include_lfs_blobs). Upstream replaces LFS
 * pointer files by their objects fetched from GitLab; here the archive
 * always holds the pointer files as committed.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/evp.h>

#include "base/fsutil.h"
#include "git/command.h"
#include "git/revision.h"
#include "repository.pb-c.h"
#include "service/repository_internal.h"
#include "service/util.h"

#define ARCHIVE_STDERR_CAP ((size_t)64 * 1024)

int repo_archive_relative_path(const char *root, const char *rel, char **out, struct error *err)
{
	char *joined = fsutil_path_join(root, rel), *croot = fsutil_path_clean(root);
	size_t n;
	int ret = -1;

	*out = NULL;
	if (!joined || !croot) {
		error_set(err, STATUS_INTERNAL, "out of memory");
		goto out;
	}
	n = strlen(croot);
	if (!strcmp(joined, croot)) {
		*out = strdup(".");
	} else if (!strncmp(joined, croot, n) && (joined[n] == '/' || (n == 1 && croot[0] == '/'))) {
		*out = strdup(joined + n + (croot[n - 1] == '/' ? 0 : 1));
	} else {
		error_set(err, STATUS_INVALID_ARGUMENT, "relative path escapes root directory");
		goto out;
	}
	if (!*out) {
		error_set(err, STATUS_INTERNAL, "out of memory");
		goto out;
	}
	ret = 0;
out:
	free(joined);
	free(croot);
	return ret;
}

/* Whether each "<commit>:<path>" names an object; found[i] set per path. */
static int paths_exist(const char *repo_path, const struct service_git_env *genv,
		       const char *commit, char *const *paths, size_t n, int *found,
		       struct error *err)
{
	struct git_cmd *cmd;
	struct strbuf in, out;
	struct git_result res;
	size_t pos = 0;
	int ret = -1;

	strbuf_init(&in, (size_t)64 * 1024 * 1024);
	strbuf_init(&out, (size_t)64 * 1024 * 1024);
	for (size_t i = 0; i < n; i++) {
		/* A newline would split the query: such a path cannot exist here. */
		const char *p = strchr(paths[i], '\n') ? "\n" : paths[i];

		if (strbuf_addf(&in, "%s:%s\n", commit, p[0] == '\n' ? "\x01" : p) < 0) {
			error_set(err, STATUS_INVALID_ARGUMENT, "paths too long");
			goto out;
		}
	}
	cmd = service_git_new(repo_path, genv, "cat-file");
	git_cmd_flag(cmd, "--batch-check");
	if (git_cmd_run(cmd, in.buf, in.len, &out, NULL, &res, err) < 0)
		goto out;
	if (res.exit_code != 0) {
		error_set(err, STATUS_INTERNAL, "cat-file: exit status %d", res.exit_code);
		goto out;
	}
	for (size_t i = 0; i < n; i++) {
		char *line = out.buf + pos, *nl;

		if (pos >= out.len) {
			found[i] = 0;
			continue;
		}
		nl = memchr(line, '\n', out.len - pos);
		if (nl)
			*nl = '\0';
		pos = nl ? (size_t)(nl - out.buf) + 1 : out.len;
		found[i] = !strstr(line, " missing") && !strstr(line, " ambiguous");
	}
	ret = 0;
out:
	strbuf_release(&in);
	strbuf_release(&out);
	return ret;
}

static int send_archive_chunk(struct rpc_call *call, const uint8_t *data, size_t len, void *ctx,
			      struct error *err)
{
	Gitaly__GetArchiveResponse resp = GITALY__GET_ARCHIVE_RESPONSE__INIT;

	(void)ctx;
	resp.data.data = (uint8_t *)data;
	resp.data.len = len;
	return rpc_call_send(call, &resp.base, err);
}

/* Upstream logs the SHA-256 of the serialized request as request_hash. */
static void log_request_hash(struct rpc_call *call, const Gitaly__GetArchiveRequest *req)
{
	size_t len = protobuf_c_message_get_packed_size(&req->base);
	uint8_t *buf = malloc(len + 1);
	unsigned char md[EVP_MAX_MD_SIZE];
	unsigned int md_len = 0;
	char hex[2 * EVP_MAX_MD_SIZE + 1];

	if (!buf)
		return;
	protobuf_c_message_pack(&req->base, buf);
	if (EVP_Digest(buf, len, md, &md_len, EVP_sha256(), NULL)) {
		for (unsigned int i = 0; i < md_len; i++)
			snprintf(hex + 2 * i, 3, "%02x", md[i]);
		rpc_call_log_field(call, "request_hash", json_string(hex));
	}
	free(buf);
}

int repository_get_archive_rpc(struct rpc_call *call, struct error *err)
{
	const struct service_deps *deps = rpc_call_service_data(call);
	const Gitaly__GetArchiveRequest *req =
		(const Gitaly__GetArchiveRequest *)rpc_call_request(call);
	struct service_git_env genv = { 0 };
	const char *format = NULL, *compress_key = NULL, *compress_cmd = NULL;
	char *path = NULL, *apath = NULL, **exclude = NULL, *prefix = NULL, *treeish = NULL;
	int *found = NULL, ret = -1;
	size_t n_ex = 0;
	struct strbuf errbuf;
	struct git_result res;
	struct git_cmd *cmd;

	strbuf_init(&errbuf, ARCHIVE_STDERR_CAP);
	if (service_repo_path(deps, req->repository, 0, &path, err) < 0)
		goto out;
	if (service_has_nul(req->path.data, req->path.len)) {
		error_set(err, STATUS_INVALID_ARGUMENT, "path contains NUL byte");
		goto out;
	}
	{
		char *p = strndup(req->path.data ? (const char *)req->path.data : "", req->path.len);
		int r;

		if (!p) {
			error_set(err, STATUS_INTERNAL, "out of memory");
			goto out;
		}
		r = repo_archive_relative_path(path, p, &apath, err);
		free(p);
		if (r < 0)
			goto out;
	}
	exclude = calloc(req->n_exclude + 1, sizeof(*exclude));
	if (!exclude) {
		error_set(err, STATUS_INTERNAL, "out of memory");
		goto out;
	}
	for (; n_ex < req->n_exclude; n_ex++) {
		const ProtobufCBinaryData *ex = &req->exclude[n_ex];
		char *p;
		int r;

		if (service_has_nul(ex->data, ex->len)) {
			error_set(err, STATUS_INVALID_ARGUMENT, "exclude contains NUL byte");
			goto out;
		}
		p = strndup(ex->data ? (const char *)ex->data : "", ex->len);
		if (!p) {
			error_set(err, STATUS_INTERNAL, "out of memory");
			goto out;
		}
		r = repo_archive_relative_path(path, p, &exclude[n_ex], err);
		free(p);
		if (r < 0)
			goto out;
	}
	if (revision_validate(req->commit_id, strlen(req->commit_id), 0, err) < 0) {
		err->code = STATUS_INVALID_ARGUMENT;
		error_prefix(err, "invalid commitId");
		goto out;
	}
	switch (req->format) {
	case GITALY__GET_ARCHIVE_REQUEST__FORMAT__ZIP:
		format = "zip";
		break;
	case GITALY__GET_ARCHIVE_REQUEST__FORMAT__TAR:
		format = "tar";
		break;
	case GITALY__GET_ARCHIVE_REQUEST__FORMAT__TAR_GZ:
		format = "tar.gz", compress_key = "tar.tar.gz.command", compress_cmd = "gzip -c -n";
		break;
	case GITALY__GET_ARCHIVE_REQUEST__FORMAT__TAR_BZ2:
		format = "tar.bz2", compress_key = "tar.tar.bz2.command", compress_cmd = "bzip2 -c";
		break;
	default:
		error_set(err, STATUS_INVALID_ARGUMENT, "invalid format");
		goto out;
	}
	if (service_git_env_init(&genv, path, req->repository, err) < 0)
		goto out;
	found = calloc(n_ex + 1, sizeof(*found));
	if (!found) {
		error_set(err, STATUS_INTERNAL, "out of memory");
		goto out;
	}
	if (strcmp(apath, ".") != 0) {
		if (paths_exist(path, &genv, req->commit_id, &apath, 1, found, err) < 0)
			goto out;
		if (!found[0]) {
			error_set(err, STATUS_FAILED_PRECONDITION, "path doesn't exist");
			goto out;
		}
	}
	if (n_ex && paths_exist(path, &genv, req->commit_id, exclude, n_ex, found, err) < 0)
		goto out;
	for (size_t i = 0; i < n_ex; i++) {
		if (!found[i]) {
			error_set(err, STATUS_FAILED_PRECONDITION, "exclude[%zu] doesn't exist", i);
			goto out;
		}
	}
	if (req->elide_path) {
		size_t plen = strlen(apath);

		for (size_t i = 0; i < n_ex; i++) {
			if (strncmp(exclude[i], apath, plen) != 0 || exclude[i][plen] != '/') {
				struct strbuf msg = STRBUF_INIT;

				strbuf_adds(&msg, "invalid exclude: ");
				service_go_quote(&msg, exclude[i], strlen(exclude[i]));
				strbuf_adds(&msg, " is not a subdirectory of ");
				service_go_quote(&msg, apath, plen);
				error_set(err, STATUS_INVALID_ARGUMENT, "%s", msg.buf);
				strbuf_release(&msg);
				goto out;
			}
			memmove(exclude[i], exclude[i] + plen + 1, strlen(exclude[i] + plen + 1) + 1);
		}
	}
	log_request_hash(call, req);
	if (asprintf(&prefix, "--prefix=%s/", req->prefix) < 0) {
		prefix = NULL;
		error_set(err, STATUS_INTERNAL, "out of memory");
		goto out;
	}
	cmd = service_git_new(path, &genv, "archive");
	if (compress_key)
		git_cmd_config(cmd, compress_key, compress_cmd);
	git_cmd_option(cmd, "--format", format);
	git_cmd_flag(cmd, prefix);
	if (req->elide_path && strcmp(apath, ".") != 0) {
		if (asprintf(&treeish, "%s:%s", req->commit_id, apath) < 0) {
			treeish = NULL;
			git_cmd_free(cmd);
			error_set(err, STATUS_INTERNAL, "out of memory");
			goto out;
		}
		git_cmd_arg(cmd, treeish);
	} else {
		git_cmd_arg(cmd, req->commit_id);
		if (!req->elide_path)
			git_cmd_path(cmd, apath);
	}
	for (size_t i = 0; i < n_ex; i++) {
		char *spec = NULL;

		if (asprintf(&spec, ":(exclude)%s", exclude[i]) < 0) {
			git_cmd_free(cmd);
			error_set(err, STATUS_INTERNAL, "out of memory");
			goto out;
		}
		git_cmd_path(cmd, spec);
		free(spec);
	}
	if (repo_stream_git(call, cmd, NULL, 0, send_archive_chunk, NULL, &errbuf, &res, err) < 0)
		goto out;
	if (res.exit_code != 0) {
		error_set(err, STATUS_UNKNOWN, "exit status %d", res.exit_code);
		goto out;
	}
	ret = 0;
out:
	strbuf_release(&errbuf);
	service_git_env_release(&genv);
	for (size_t i = 0; exclude && i < n_ex; i++)
		free(exclude[i]);
	free(exclude);
	free(found);
	free(treeish);
	free(prefix);
	free(apath);
	free(path);
	return ret;
}
