/*
 * Git attributes of RepositoryService: GetFileAttributes answers
 * git check-attr for paths as of a revision (upstream passes --source, which
 * needs git 2.40; here the revision's tree is read into a throw-away index
 * outside the repository and check-attr --cached reads it, which gives the
 * same answer on older git), and GetInfoAttributes streams the repository's
 * info/attributes file.
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

#define ATTR_OUT_CAP ((size_t)32 * 1024 * 1024)
#define ATTR_IN_CAP ((size_t)16 * 1024 * 1024)

/* Reads rev's tree into the index file at index_path. */
static int read_tree(const char *repo_path, const struct service_git_env *genv,
		     const char *index_path, const char *rev, struct error *err)
{
	struct git_cmd *cmd = service_git_new(repo_path, genv, "read-tree");
	struct strbuf errbuf;
	struct git_result res;
	int ret = -1;

	strbuf_init(&errbuf, 64 * 1024);
	git_cmd_setenv(cmd, "GIT_INDEX_FILE", index_path);
	git_cmd_arg(cmd, rev);
	if (git_cmd_run(cmd, NULL, 0, NULL, &errbuf, &res, err) < 0)
		goto out;
	if (res.exit_code != 0) {
		strbuf_rtrim(&errbuf);
		error_set(err, STATUS_UNKNOWN, "check attr: %s",
			  errbuf.len ? errbuf.buf : "reading revision failed");
		goto out;
	}
	ret = 0;
out:
	strbuf_release(&errbuf);
	return ret;
}

int repo_check_attr(const char *repo_path, const struct service_git_env *genv, const char *rev,
		    const char *const *attrs, size_t n_attrs, const char *const *paths,
		    size_t n_paths, struct repo_attr **out, size_t *n_out, struct error *err)
{
	char index_path[] = "/tmp/gitaly-attr-index-XXXXXX";
	struct strbuf in, outbuf;
	struct git_cmd *cmd = NULL;
	struct git_result res;
	struct repo_attr *list = NULL;
	size_t n = 0, pos = 0;
	int fd, ret = -1;

	*out = NULL;
	*n_out = 0;
	strbuf_init(&in, ATTR_IN_CAP);
	strbuf_init(&outbuf, ATTR_OUT_CAP);
	fd = mkstemp(index_path);
	if (fd < 0) {
		error_set(err, STATUS_INTERNAL, "check attr: temporary index: %s", strerror(errno));
		goto out;
	}
	close(fd);
	unlink(index_path); /* git read-tree wants to create it itself */
	if (read_tree(repo_path, genv, index_path, rev, err) < 0)
		goto out;
	for (size_t i = 0; i < n_paths; i++) {
		if (strbuf_add(&in, paths[i], strlen(paths[i]) + 1) < 0) {
			error_set(err, STATUS_INVALID_ARGUMENT, "check attr: too many paths");
			goto out;
		}
	}
	cmd = service_git_new(repo_path, genv, "check-attr");
	git_cmd_setenv(cmd, "GIT_INDEX_FILE", index_path);
	git_cmd_flag(cmd, "--cached");
	git_cmd_flag(cmd, "--stdin");
	git_cmd_flag(cmd, "-z");
	for (size_t i = 0; i < n_attrs; i++)
		git_cmd_arg(cmd, attrs[i]);
	if (git_cmd_run(cmd, in.buf, in.len, &outbuf, NULL, &res, err) < 0) {
		error_prefix(err, "check attr");
		goto out;
	}
	if (res.exit_code != 0) {
		error_set(err, STATUS_UNKNOWN, "check attr: exit status %d", res.exit_code);
		goto out;
	}
	list = calloc(n_paths * n_attrs + 1, sizeof(*list));
	if (!list) {
		error_set(err, STATUS_INTERNAL, "out of memory");
		goto out;
	}
	/* -z output: <path> NUL <attribute> NUL <value> NUL, per path and attribute. */
	for (size_t i = 0; i < n_paths; i++) {
		for (size_t j = 0; j < n_attrs; j++) {
			const char *word[3];

			for (int k = 0; k < 3; k++) {
				const char *nul;

				if (pos >= outbuf.len ||
				    !(nul = memchr(outbuf.buf + pos, '\0', outbuf.len - pos))) {
					error_set(err, STATUS_UNKNOWN, "check attr: read line: EOF");
					goto out;
				}
				word[k] = outbuf.buf + pos;
				pos = (size_t)(nul - outbuf.buf) + 1;
			}
			if (strcmp(word[0], paths[i]) != 0) {
				error_set(err, STATUS_UNKNOWN,
					  "check attr: wrong path name detected, expected \"%s\", got \"%s\"",
					  paths[i], word[0]);
				goto out;
			}
			if (!strcmp(word[2], "unspecified"))
				continue;
			list[n].path = paths[i];
			list[n].attribute = strdup(word[1]);
			list[n].value = strdup(word[2]);
			n++;
			if (!list[n - 1].attribute || !list[n - 1].value) {
				error_set(err, STATUS_INTERNAL, "out of memory");
				goto out;
			}
		}
	}
	*out = list;
	*n_out = n;
	list = NULL;
	ret = 0;
out:
	repo_attrs_free(list, n);
	unlink(index_path);
	strbuf_release(&in);
	strbuf_release(&outbuf);
	return ret;
}

void repo_attrs_free(struct repo_attr *list, size_t n)
{
	for (size_t i = 0; list && i < n; i++) {
		free(list[i].attribute);
		free(list[i].value);
	}
	free(list);
}

int repository_get_file_attributes_rpc(struct rpc_call *call, struct error *err)
{
	const struct service_deps *deps = rpc_call_service_data(call);
	const Gitaly__GetFileAttributesRequest *req =
		(const Gitaly__GetFileAttributesRequest *)rpc_call_request(call);
	Gitaly__GetFileAttributesResponse resp = GITALY__GET_FILE_ATTRIBUTES_RESPONSE__INIT;
	Gitaly__GetFileAttributesResponse__AttributeInfo *infos = NULL, **ptrs = NULL;
	struct service_git_env genv = { 0 };
	struct repo_attr *attrs = NULL;
	size_t n = 0;
	char *path = NULL, *rev = NULL;
	int ret = -1;

	if (service_repo_path(deps, req->repository, 0, &path, err) < 0)
		goto out;
	if (req->revision.len == 0) {
		error_set(err, STATUS_INVALID_ARGUMENT, "revision is required");
		goto out;
	}
	if (req->n_paths == 0) {
		error_set(err, STATUS_INVALID_ARGUMENT, "file paths are required");
		goto out;
	}
	if (req->n_attributes == 0) {
		error_set(err, STATUS_INVALID_ARGUMENT, "attributes are required");
		goto out;
	}
	if (service_has_nul(req->revision.data, req->revision.len)) {
		error_set(err, STATUS_UNKNOWN, "check attr: revision with NUL byte not allowed");
		goto out;
	}
	if (service_git_env_init(&genv, path, req->repository, err) < 0)
		goto out;
	rev = strndup((const char *)req->revision.data, req->revision.len);
	if (!rev) {
		error_set(err, STATUS_INTERNAL, "out of memory");
		goto out;
	}
	if (repo_check_attr(path, &genv, rev, (const char *const *)req->attributes,
			    req->n_attributes, (const char *const *)req->paths, req->n_paths,
			    &attrs, &n, err) < 0)
		goto out;
	infos = calloc(n + 1, sizeof(*infos));
	ptrs = calloc(n + 1, sizeof(*ptrs));
	if (!infos || !ptrs) {
		error_set(err, STATUS_INTERNAL, "out of memory");
		goto out;
	}
	for (size_t i = 0; i < n; i++) {
		gitaly__get_file_attributes_response__attribute_info__init(&infos[i]);
		infos[i].path = (char *)attrs[i].path;
		infos[i].attribute = attrs[i].attribute;
		infos[i].value = attrs[i].value;
		ptrs[i] = &infos[i];
	}
	resp.n_attribute_infos = n;
	resp.attribute_infos = ptrs;
	ret = rpc_call_send(call, &resp.base, err);
out:
	repo_attrs_free(attrs, n);
	free(infos);
	free(ptrs);
	free(rev);
	service_git_env_release(&genv);
	free(path);
	return ret;
}

static int send_attributes_chunk(struct rpc_call *call, const uint8_t *data, size_t len,
				 void *ctx, struct error *err)
{
	Gitaly__GetInfoAttributesResponse resp = GITALY__GET_INFO_ATTRIBUTES_RESPONSE__INIT;

	(void)ctx;
	resp.attributes.data = (uint8_t *)data;
	resp.attributes.len = len;
	return rpc_call_send(call, &resp.base, err);
}

int repository_get_info_attributes_rpc(struct rpc_call *call, struct error *err)
{
	const struct service_deps *deps = rpc_call_service_data(call);
	const Gitaly__GetInfoAttributesRequest *req =
		(const Gitaly__GetInfoAttributesRequest *)rpc_call_request(call);
	Gitaly__GetInfoAttributesResponse empty = GITALY__GET_INFO_ATTRIBUTES_RESPONSE__INIT;
	char *path = NULL, *file = NULL;
	int fd = -1, ret = -1;

	if (service_repo_path(deps, req->repository, 0, &path, err) < 0)
		goto out;
	if (asprintf(&file, "%s/info/attributes", path) < 0) {
		file = NULL;
		error_set(err, STATUS_INTERNAL, "out of memory");
		goto out;
	}
	fd = open(file, O_RDONLY | O_CLOEXEC);
	if (fd < 0) {
		if (errno == ENOENT) {
			ret = rpc_call_send(call, &empty.base, err);
			goto out;
		}
		error_set(err, STATUS_INTERNAL, "failure to read info attributes: open %s: %s",
			  file, strerror(errno));
		goto out;
	}
	ret = service_stream_fd(call, fd, send_attributes_chunk, NULL, err);
out:
	if (fd >= 0)
		close(fd);
	free(file);
	free(path);
	return ret;
}
