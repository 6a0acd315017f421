/*
 * WriteRef: HEAD becomes a symbolic reference (HEAD.lock written and renamed
 * over HEAD, as upstream does), any other reference is updated in one
 * `git update-ref -z --stdin` transaction, with an optional check of its
 * old value (the zero object id meaning "must not exist yet").
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "git/command.h"
#include "git/revision.h"
#include "repository.pb-c.h"
#include "service/repository_internal.h"
#include "service/util.h"

#define OID_OUTPUT_CAP 4096
#define GIT_STDERR_CAP (64 * 1024)

int repo_write_ref_validate(const uint8_t *ref, size_t ref_len, const uint8_t *rev,
			    size_t rev_len, const uint8_t *old, size_t old_len, struct error *err)
{
	if (revision_validate((const char *)ref, ref_len, 0, err) < 0)
		return error_prefix(err, "invalid ref");
	if (revision_validate((const char *)rev, rev_len, 0, err) < 0)
		return error_prefix(err, "invalid revision");
	if (old_len > 0 && revision_validate((const char *)old, old_len, 0, err) < 0)
		return error_prefix(err, "invalid OldRevision");
	if (!(ref_len == 4 && !memcmp(ref, "HEAD", 4)) &&
	    !(ref_len >= 5 && !memcmp(ref, "refs/", 5)))
		return error_set(err, STATUS_INVALID_ARGUMENT, "ref has to be a full reference");
	return 0;
}

/* Points HEAD at target by writing HEAD.lock and renaming it over HEAD. */
static int set_default_branch(const char *repo_path, const struct service_git_env *genv, const char *target, struct error *err)
{
	struct error verr = ERROR_INIT;
	char *head = NULL, *lock = NULL, *content = NULL;
	int fd = -1, len, ret = -1;

	if (reference_validate(target, strlen(target), &verr) < 0) {
		struct strbuf msg = STRBUF_INIT;

		strbuf_adds(&msg, "setting default branch: ");
		service_go_quote(&msg, target, strlen(target));
		strbuf_adds(&msg, " is a malformed refname");
		error_set(err, STATUS_INTERNAL, "%s", msg.buf);
		strbuf_release(&msg);
		goto out;
	}
	if (asprintf(&head, "%s/HEAD", repo_path) < 0 || asprintf(&lock, "%s/HEAD.lock", repo_path) < 0 ||
	    (len = asprintf(&content, "ref: %s\n", target)) < 0) {
		error_set(err, STATUS_INTERNAL, "out of memory");
		goto out;
	}
	fd = open(lock, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
	if (fd < 0) {
		error_set(err, STATUS_INTERNAL, "setting default branch: getting file writer: %s",
			  errno == EEXIST ? "file already locked" : strerror(errno));
		goto out;
	}
	if (write(fd, content, (size_t)len) != len || fsync(fd) < 0 || close(fd) < 0) {
		fd = -1;
		unlink(lock);
		error_set(err, STATUS_INTERNAL, "setting default branch: writing temporary HEAD: %s",
			  strerror(errno));
		goto out;
	}
	fd = -1;
	if (rename(lock, head) < 0) {
		unlink(lock);
		error_set(err, STATUS_INTERNAL,
			  "setting default branch: committing temporary HEAD: %s", strerror(errno));
		goto out;
	}
	service_sync_parent(head);
	ret = 0;
out:
	if (fd >= 0) {
		close(fd);
		unlink(lock);
	}
	error_release(&verr);
	free(content);
	free(lock);
	free(head);
	return ret;
}

static int is_zero_oid(const char *s, const char *format)
{
	size_t want = !strcmp(format, "sha256") ? 64 : 40;

	return strlen(s) == want && strspn(s, "0") == want;
}

/* rev^{object} to a full object id; *out malloc'd. */
static int resolve_object(const char *repo_path, const struct service_git_env *genv, const char *rev, char **out, struct error *err)
{
	struct git_cmd *cmd = service_git_new(repo_path, genv, "rev-parse");
	struct strbuf buf;
	struct git_result res;
	char *spec = NULL;
	int ret = -1;

	strbuf_init(&buf, OID_OUTPUT_CAP);
	if (asprintf(&spec, "%s^{object}", rev) < 0) {
		spec = NULL;
		git_cmd_free(cmd);
		error_set(err, STATUS_INTERNAL, "out of memory");
		goto out;
	}
	git_cmd_flag(cmd, "--verify");
	git_cmd_flag(cmd, "--quiet");
	git_cmd_arg(cmd, spec);
	if (git_cmd_run(cmd, NULL, 0, &buf, NULL, &res, err) < 0)
		goto out;
	strbuf_rtrim(&buf);
	if (res.exit_code != 0 || buf.len == 0) {
		error_set(err, STATUS_INTERNAL, "reference not found");
		goto out;
	}
	*out = strbuf_detach(&buf, NULL);
	ret = 0;
out:
	free(spec);
	strbuf_release(&buf);
	return ret;
}

/* One `git update-ref -z --stdin` transaction updating ref to new_oid. */
static int update_ref(const char *repo_path, const struct service_git_env *genv, const char *ref, const char *new_oid,
		      const char *old_oid, struct error *err)
{
	struct git_cmd *cmd = service_git_new(repo_path, genv, "update-ref");
	struct strbuf in = STRBUF_INIT, errbuf;
	struct git_result res;
	int ret = -1;

	strbuf_init(&errbuf, GIT_STDERR_CAP);
	git_cmd_flag(cmd, "-z");
	git_cmd_flag(cmd, "--stdin");
	strbuf_addf(&in, "start%c", 0);
	strbuf_addf(&in, "update %s%c%s%c%s%c", ref, 0, new_oid, 0, old_oid ? old_oid : "", 0);
	strbuf_addf(&in, "prepare%c", 0);
	strbuf_addf(&in, "commit%c", 0);
	if (git_cmd_run(cmd, in.buf, in.len, NULL, &errbuf, &res, err) < 0)
		goto out;
	if (res.exit_code != 0) {
		strbuf_rtrim(&errbuf);
		if (errbuf.len && strstr(errbuf.buf, "cannot lock ref") &&
		    strstr(errbuf.buf, ".lock': File exists"))
			error_set(err, STATUS_ABORTED, "reference is locked already");
		else
			error_set(err, STATUS_INTERNAL,
				  "error when running update-ref command: %s",
				  errbuf.len ? errbuf.buf : "exit status");
		goto out;
	}
	ret = 0;
out:
	strbuf_release(&in);
	strbuf_release(&errbuf);
	return ret;
}

int repo_write_ref(const char *repo_path, const struct service_git_env *genv, const char *ref, const char *rev, const char *old,
		   size_t old_len, struct error *err)
{
	const char *format;
	char *new_oid = NULL, *old_oid = NULL;
	int ret = -1;

	if (!strcmp(ref, "HEAD"))
		return set_default_branch(repo_path, genv, rev, err);

	if (repo_object_format(repo_path, genv, &format, err) < 0) {
		error_prefix(err, "detecting object format");
		goto out;
	}
	if (is_zero_oid(rev, format)) {
		new_oid = strdup(rev);
	} else if (resolve_object(repo_path, genv, rev, &new_oid, err) < 0) {
		error_prefix(err, "resolving new revision");
		goto out;
	}
	if (old_len > 0) {
		if (is_zero_oid(old, format)) {
			old_oid = strdup(old);
		} else if (resolve_object(repo_path, genv, old, &old_oid, err) < 0) {
			error_prefix(err, "resolving old revision");
			goto out;
		}
	}
	if (!new_oid || (old_len > 0 && !old_oid)) {
		error_set(err, STATUS_INTERNAL, "out of memory");
		goto out;
	}
	ret = update_ref(repo_path, genv, ref, new_oid, old_oid, err);
out:
	free(new_oid);
	free(old_oid);
	return ret;
}

/* A C string from request bytes (NUL already rejected). */
static char *bytes_dup(const ProtobufCBinaryData *b)
{
	return strndup(b->data ? (const char *)b->data : "", b->len);
}

int repository_write_ref_rpc(struct rpc_call *call, struct error *err)
{
	const struct service_deps *deps = rpc_call_service_data(call);
	const Gitaly__WriteRefRequest *req = (const Gitaly__WriteRefRequest *)rpc_call_request(call);
	Gitaly__WriteRefResponse resp = GITALY__WRITE_REF_RESPONSE__INIT;
	char *path = NULL, *ref = NULL, *rev = NULL, *old = NULL;
	struct service_git_env genvs = { 0 };
	const struct service_git_env *genv = &genvs;
	int ret = -1;

	if (service_repo_path(deps, req->repository, 0, &path, err) < 0)
		goto out;
	if (service_git_env_init(&genvs, path, req->repository, err) < 0)
		goto out;
	if (repo_write_ref_validate(req->ref.data, req->ref.len, req->revision.data,
				    req->revision.len, req->old_revision.data,
				    req->old_revision.len, err) < 0)
		goto out;
	ref = bytes_dup(&req->ref);
	rev = bytes_dup(&req->revision);
	old = bytes_dup(&req->old_revision);
	if (!ref || !rev || !old) {
		error_set(err, STATUS_INTERNAL, "out of memory");
		goto out;
	}
	if (repo_write_ref(path, genv, ref, rev, old, req->old_revision.len, err) < 0)
		goto out;
	ret = rpc_call_send(call, &resp.base, err);
out:
	service_git_env_release(&genvs);
	free(path);
	free(ref);
	free(rev);
	free(old);
	return ret;
}
