/*
 * CreateRepository and RemoveRepository. Both are atomic on disk: a new
 * repository is initialised in the storage's +gitaly/tmp and renamed into
 * place; a removed one is renamed into +gitaly/tmp first and deleted there.
 * A "<repo>.lock" file next to the target serialises concurrent creators
 * and removers, as upstream's repoutil does.
 */
#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "git/command.h"
#include "git/repo_cache.h"
#include "git/storage.h"
#include "repository.pb-c.h"
#include "service/repository_internal.h"
#include "service/util.h"

#define GIT_STDERR_CAP (64 * 1024)
#define FULL_REPACK_TIMESTAMP ".gitaly-full-repack-timestamp"

/*
 * Takes "<target>.lock" (creating target's parent directories). *lock_path
 * is malloc'd; -1 with errno EEXIST when someone else holds the lock.
 */
static int lock_repo(const char *target, char **lock_path)
{
	char *parent = strdup(target);
	int fd, ret = -1;

	*lock_path = NULL;
	if (!parent)
		return -1;
	if (service_mkdir_all(dirname(parent), 0770) < 0)
		goto out;
	if (asprintf(lock_path, "%s.lock", target) < 0) {
		*lock_path = NULL;
		goto out;
	}
	fd = open(*lock_path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
	if (fd < 0) {
		int saved = errno;

		free(*lock_path);
		*lock_path = NULL;
		errno = saved;
		goto out;
	}
	close(fd);
	ret = 0;
out:
	free(parent);
	return ret;
}

static void unlock_repo(char *lock_path)
{
	if (lock_path)
		unlink(lock_path);
	free(lock_path);
}

static int write_repack_timestamp(const char *repo)
{
	char *path = NULL;
	int fd;

	if (asprintf(&path, "%s/" FULL_REPACK_TIMESTAMP, repo) < 0)
		return -1;
	fd = open(path, O_WRONLY | O_CREAT | O_CLOEXEC, 0644);
	free(path);
	if (fd < 0)
		return -1;
	return close(fd);
}

/* Runs git init into dir; git's failure becomes upstream's message. */
static int git_init(const char *dir, const char *branch, const char *object_format,
		    struct error *err)
{
	struct git_cmd *cmd = git_cmd_new(NULL, "init");
	struct strbuf stderr_buf;
	struct git_result res;
	int ret = -1;

	strbuf_init(&stderr_buf, GIT_STDERR_CAP);
	git_cmd_flag(cmd, "--bare");
	git_cmd_flag(cmd, "--quiet");
	if (branch && *branch)
		git_cmd_option(cmd, "--initial-branch", branch);
	git_cmd_option(cmd, "--object-format", object_format);
	git_cmd_arg(cmd, dir);
	if (git_cmd_run(cmd, NULL, 0, NULL, &stderr_buf, &res, err) < 0) {
		error_prefix(err, "spawning git-init");
		err->code = STATUS_INTERNAL;
		goto out;
	}
	if (res.exit_code != 0) {
		struct strbuf msg = STRBUF_INIT;

		strbuf_addf(&msg, "creating repository: exit status %d, stderr: ", res.exit_code);
		service_go_quote(&msg, stderr_buf.buf ? stderr_buf.buf : "", stderr_buf.len);
		error_set(err, STATUS_INTERNAL, "%s", msg.buf);
		strbuf_release(&msg);
		goto out;
	}
	ret = 0;
out:
	strbuf_release(&stderr_buf);
	return ret;
}

int repo_create(const char *storage_path, const char *target, const char *branch,
		const char *object_format, struct error *err)
{
	char *new_repo = NULL, *lock_path = NULL;
	struct stat st;
	int ret = -1;

	if (stat(target, &st) == 0 || errno != ENOENT) {
		error_set(err, STATUS_ALREADY_EXISTS, "repository exists already");
		goto out;
	}
	if (storage_tempdir(storage_path, "repo", &new_repo, err) < 0) {
		new_repo = NULL;
		error_prefix(err, "creating temporary repository");
		goto out;
	}
	if (git_init(new_repo, branch, object_format, err) < 0)
		goto out;
	if (write_repack_timestamp(new_repo) < 0) {
		error_set(err, STATUS_INTERNAL, "creating full-repack timestamp: %s",
			  strerror(errno));
		goto out;
	}
	if (lock_repo(target, &lock_path) < 0) {
		error_set(err, STATUS_INTERNAL, "locking repository: %s",
			  errno == EEXIST ? "file already locked" : strerror(errno));
		goto out;
	}
	/* Someone may have created it while we were initialising ours. */
	if (stat(target, &st) == 0 || errno != ENOENT) {
		error_set(err, STATUS_ALREADY_EXISTS, "repository exists already");
		goto out;
	}
	if (service_sync_recursive(new_repo) < 0) {
		error_set(err, STATUS_INTERNAL, "sync recursive: %s", strerror(errno));
		goto out;
	}
	if (rename(new_repo, target) < 0) {
		error_set(err, STATUS_INTERNAL, "moving repository into place: %s",
			  strerror(errno));
		goto out;
	}
	if (service_sync_parent(target) < 0) {
		error_set(err, STATUS_INTERNAL, "sync hierarchy: %s", strerror(errno));
		goto out;
	}
	ret = 0;
out:
	unlock_repo(lock_path);
	if (new_repo)
		service_remove_all(new_repo);
	free(new_repo);
	return ret;
}

int repo_remove(const char *storage_path, const char *target, struct error *err)
{
	char *dest = NULL, *staged = NULL, *lock_path = NULL, *base = NULL, *prefix = NULL;
	struct stat st;
	int ret = -1;

	if (stat(target, &st) < 0) {
		if (errno == ENOENT)
			error_set(err, STATUS_NOT_FOUND, "repository does not exist");
		else
			error_set(err, STATUS_INTERNAL, "statting repository: %s", strerror(errno));
		goto out;
	}
	if (lock_repo(target, &lock_path) < 0) {
		if (errno == EEXIST)
			error_set(err, STATUS_FAILED_PRECONDITION, "repository is already locked");
		else
			error_set(err, STATUS_INTERNAL, "locking repository for removal: %s",
				  strerror(errno));
		goto out;
	}
	if (stat(target, &st) < 0) {
		if (errno == ENOENT)
			error_set(err, STATUS_NOT_FOUND, "repository was concurrently removed");
		else
			error_set(err, STATUS_INTERNAL, "re-statting repository: %s",
				  strerror(errno));
		goto out;
	}
	base = strdup(target);
	if (!base || asprintf(&prefix, "%s+removed-", basename(base)) < 0) {
		prefix = NULL;
		error_set(err, STATUS_INTERNAL, "out of memory");
		goto out;
	}
	if (storage_tempdir(storage_path, prefix, &dest, err) < 0) {
		dest = NULL;
		error_prefix(err, "mkdir temp");
		goto out;
	}
	if (asprintf(&staged, "%s/repo", dest) < 0) {
		staged = NULL;
		error_set(err, STATUS_INTERNAL, "out of memory");
		goto out;
	}
	/* Move first, delete later: nobody ever sees a half-deleted repository. */
	if (rename(target, staged) < 0) {
		error_set(err, STATUS_INTERNAL, "staging repository for removal: %s",
			  strerror(errno));
		goto out;
	}
	if (service_sync_parent(target) < 0) {
		error_set(err, STATUS_INTERNAL, "sync removal: %s", strerror(errno));
		goto out;
	}
	ret = 0;
out:
	unlock_repo(lock_path);
	if (dest)
		service_remove_all(dest);
	free(dest);
	free(staged);
	free(base);
	free(prefix);
	return ret;
}

int repository_create_rpc(struct rpc_call *call, struct error *err)
{
	const struct service_deps *deps = rpc_call_service_data(call);
	const Gitaly__CreateRepositoryRequest *req =
		(const Gitaly__CreateRepositoryRequest *)rpc_call_request(call);
	Gitaly__CreateRepositoryResponse resp = GITALY__CREATE_REPOSITORY_RESPONSE__INIT;
	const char *storage_path, *format;
	char *target = NULL, *branch = NULL;
	int ret = -1;

	if (service_repo_path(deps, req->repository, LOCATOR_SKIP_EXISTS, &target, err) < 0)
		goto out;
	switch (req->object_format) {
	case GITALY__OBJECT_FORMAT__OBJECT_FORMAT_UNSPECIFIED:
	case GITALY__OBJECT_FORMAT__OBJECT_FORMAT_SHA1:
		format = "sha1";
		break;
	case GITALY__OBJECT_FORMAT__OBJECT_FORMAT_SHA256:
		format = "sha256";
		break;
	default:
		error_set(err, STATUS_INVALID_ARGUMENT, "unknown object format: \"%d\"",
			  (int)req->object_format);
		goto out;
	}
	if (service_has_nul(req->default_branch.data, req->default_branch.len)) {
		/* git could never receive it as an argument (exec fails upstream). */
		error_set(err, STATUS_INTERNAL,
			  "creating repository: spawning git-init: invalid argument");
		goto out;
	}
	branch = strndup((const char *)req->default_branch.data, req->default_branch.len);
	if (!branch || locator_storage_path(deps->locator, req->repository->storage_name,
					    &storage_path, err) < 0) {
		if (!error_is_set(err))
			error_set(err, STATUS_INTERNAL, "out of memory");
		goto out;
	}
	if (repo_create(storage_path, target, branch, format, err) < 0) {
		error_prefix(err, "creating repository");
		goto out;
	}
	ret = rpc_call_send(call, &resp.base, err);
out:
	free(branch);
	free(target);
	return ret;
}

int repository_remove_rpc(struct rpc_call *call, struct error *err)
{
	const struct service_deps *deps = rpc_call_service_data(call);
	const Gitaly__RemoveRepositoryRequest *req =
		(const Gitaly__RemoveRepositoryRequest *)rpc_call_request(call);
	Gitaly__RemoveRepositoryResponse resp = GITALY__REMOVE_REPOSITORY_RESPONSE__INIT;
	const char *storage_path;
	char *target = NULL;
	int ret = -1;

	if (service_repo_path(deps, req->repository, LOCATOR_SKIP_EXISTS, &target, err) < 0)
		goto out;
	if (locator_storage_path(deps->locator, req->repository->storage_name, &storage_path,
				 err) < 0)
		goto out;
	if (repo_remove(storage_path, target, err) < 0)
		goto out;
	/* Free cached libgit2 handles of the removed repository now. */
	repo_cache_evict(target);
	ret = rpc_call_send(call, &resp.base, err);
out:
	free(target);
	return ret;
}
