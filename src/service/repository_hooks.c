/*
 * Per-repository custom server hooks as tar streams: GetCustomHooks (and its
 * deprecated twin BackupCustomHooks) archives the repository's
 * custom_hooks/ directory with tar; SetCustomHooks (and RestoreCustomHooks)
 * extracts an uploaded tar into a temporary directory of the storage and
 * swaps it in with renames, under a custom_hooks.lock file, as upstream's
 * repoutil does. Beyond upstream: an archive whose custom_hooks entry is not
 * a real directory (a symlink or a file) is refused, so the swap can never
 * plant a link out of the repository.
 */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "base/fsutil.h"
#include "base/process.h"
#include "git/storage.h"
#include "repository.pb-c.h"
#include "service/repository_internal.h"
#include "service/util.h"

#define HOOKS_DIR "custom_hooks"
#define HOOKS_LOCK "custom_hooks.lock"
#define TAR_STDERR_CAP (64 * 1024)

static const char *tar_binary(void)
{
	return access("/usr/bin/tar", X_OK) == 0 ? "/usr/bin/tar" : "/bin/tar";
}

static const char *const tar_env[] = { "LANG=C", "LC_ALL=C", "PATH=/usr/bin:/bin", NULL };

/* ---- GetCustomHooks / BackupCustomHooks ----------------------------------- */

static int send_get_chunk(struct rpc_call *call, const uint8_t *data, size_t len, void *ctx,
			  struct error *err)
{
	int backup = *(int *)ctx;

	if (backup) {
		Gitaly__BackupCustomHooksResponse r = GITALY__BACKUP_CUSTOM_HOOKS_RESPONSE__INIT;
		r.data.data = (uint8_t *)data;
		r.data.len = len;
		return rpc_call_send(call, &r.base, err);
	}
	Gitaly__GetCustomHooksResponse r = GITALY__GET_CUSTOM_HOOKS_RESPONSE__INIT;
	r.data.data = (uint8_t *)data;
	r.data.len = len;
	return rpc_call_send(call, &r.base, err);
}

static int archive_hooks(struct rpc_call *call, const char *repo_path, int backup, struct error *err)
{
	const char *argv[] = { "tar", "-c", "-f", "-", "-C", repo_path, HOOKS_DIR, NULL };
	struct process_spawn_opts o = { 0 };
	struct process_status ps;
	struct stat sb;
	char path[4096];
	int pipefd[2] = { -1, -1 };
	pid_t pid = -1;
	int rc = -1;

	snprintf(path, sizeof(path), "%s/%s", repo_path, HOOKS_DIR);
	if (lstat(path, &sb) < 0 && errno == ENOENT)
		return 0; /* no hooks: no data at all */
	if (pipe2(pipefd, O_CLOEXEC) < 0) {
		error_set(err, STATUS_INTERNAL, "reading custom hooks: pipe: %s", strerror(errno));
		goto out;
	}
	o.path = tar_binary();
	o.argv = argv;
	o.envp = tar_env;
	o.stdin_fd = -1;
	o.stdout_fd = pipefd[1];
	o.stderr_fd = -1;
	o.new_pgroup = 1;
	if (process_spawn(&o, &pid, err) < 0) {
		error_prefix(err, "reading custom hooks: archiving hooks: executing tar command");
		err->code = STATUS_INTERNAL;
		goto out;
	}
	close(pipefd[1]);
	pipefd[1] = -1;
	if (service_stream_fd(call, pipefd[0], send_get_chunk, &backup, err) < 0) {
		process_kill_group(pid);
		process_wait(pid, 0, &ps);
		pid = -1;
		goto out;
	}
	process_wait(pid, 0, &ps);
	pid = -1;
	if (!ps.exited || ps.exit_code != 0) {
		error_set(err, STATUS_INTERNAL,
			  "reading custom hooks: archiving hooks: waiting for tar command completion: "
			  "exit status %d", ps.exit_code);
		goto out;
	}
	rc = 0;
out:
	if (pipefd[0] >= 0)
		close(pipefd[0]);
	if (pipefd[1] >= 0)
		close(pipefd[1]);
	return rc;
}

static int get_hooks(struct rpc_call *call, const Gitaly__Repository *repo, int backup,
		     struct error *err)
{
	struct service_deps *deps = rpc_call_service_data(call);
	char *repo_path = NULL;
	int rc;

	if (service_repo_path(deps, repo, 0, &repo_path, err) < 0)
		return -1;
	rc = archive_hooks(call, repo_path, backup, err);
	free(repo_path);
	return rc;
}

int repository_get_custom_hooks_rpc(struct rpc_call *call, struct error *err)
{
	const Gitaly__GetCustomHooksRequest *req = (const void *)rpc_call_request(call);

	return get_hooks(call, req->repository, 0, err);
}

int repository_backup_custom_hooks_rpc(struct rpc_call *call, struct error *err)
{
	const Gitaly__BackupCustomHooksRequest *req = (const void *)rpc_call_request(call);

	return get_hooks(call, req->repository, 1, err);
}

/* ---- SetCustomHooks / RestoreCustomHooks ---------------------------------- */

/* The data field of either request type (same field numbers). */
static ProtobufCBinaryData request_data(const ProtobufCMessage *m)
{
	ProtobufCBinaryData none = { 0, NULL };

	if (!m)
		return none;
	if (m->descriptor == &gitaly__set_custom_hooks_request__descriptor)
		return ((const Gitaly__SetCustomHooksRequest *)m)->data;
	return ((const Gitaly__RestoreCustomHooksRequest *)m)->data;
}

static int write_all(int fd, const uint8_t *p, size_t len)
{
	while (len) {
		ssize_t n = write(fd, p, len);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return -1;
		p += n;
		len -= (size_t)n;
	}
	return 0;
}

/*
 * Feeds the request stream (first message included) to `tar -x` in tmp.
 * An empty stream extracts nothing, as upstream (GNU tar refuses empty
 * input). A tar without a custom_hooks member is fine too.
 */
static int extract_hooks(struct rpc_call *call, const char *tmp, struct error *err)
{
	const char *argv[] = { "tar", "-xf", "-", "-C", tmp, "--no-same-owner", HOOKS_DIR, NULL };
	ProtobufCBinaryData d = request_data(rpc_call_request(call));
	struct process_spawn_opts o = { 0 };
	struct process_status ps;
	ProtobufCMessage *msg = NULL;
	char errpath[4096];
	char *errtext = NULL;
	size_t errlen = 0;
	int in[2] = { -1, -1 }, errfd = -1, r;
	pid_t pid = -1;
	int rc = -1;

	/* find the first non-empty chunk before starting tar */
	while (!d.len) {
		r = rpc_call_recv(call, &msg, err);
		if (r < 0)
			return error_prefix(err, "extracting hooks");
		if (r == 0)
			return 0;
		d = request_data(msg);
	}
	snprintf(errpath, sizeof(errpath), "%s/tar.stderr", tmp);
	errfd = open(errpath, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
	if (errfd < 0 || pipe2(in, O_CLOEXEC) < 0) {
		error_set(err, STATUS_INTERNAL, "extracting hooks: %s", strerror(errno));
		goto out;
	}
	o.path = tar_binary();
	o.argv = argv;
	o.envp = tar_env;
	o.stdin_fd = in[0];
	o.stdout_fd = -1;
	o.stderr_fd = errfd;
	o.new_pgroup = 1;
	if (process_spawn(&o, &pid, err) < 0) {
		error_prefix(err, "extracting hooks: executing tar command");
		goto out;
	}
	close(in[0]);
	in[0] = -1;
	for (;;) {
		/* tar exiting early (bad archive) closes the pipe: stop feeding */
		if (d.len && write_all(in[1], d.data, d.len) < 0)
			break;
		if (msg) {
			rpc_call_free_message(call, msg);
			msg = NULL;
		}
		r = rpc_call_recv(call, &msg, err);
		if (r < 0) {
			process_kill_group(pid);
			process_wait(pid, 0, &ps);
			pid = -1;
			error_prefix(err, "extracting hooks");
			goto out;
		}
		if (r == 0)
			break;
		d = request_data(msg);
	}
	close(in[1]);
	in[1] = -1;
	process_wait(pid, 0, &ps);
	pid = -1;
	if (ps.exited && ps.exit_code == 0) {
		rc = 0;
		goto out;
	}
	fsutil_read_file(errpath, TAR_STDERR_CAP, &errtext, &errlen, NULL);
	if (errtext && !strncmp(errtext, "tar: custom_hooks: Not found in archive",
				strlen("tar: custom_hooks: Not found in archive"))) {
		rc = 0;
		goto out;
	}
	error_set(err, STATUS_INTERNAL,
		  "extracting hooks: waiting for tar command completion: exit status %d",
		  ps.exit_code);
out:
	if (msg)
		rpc_call_free_message(call, msg);
	if (pid > 0) {
		process_kill_group(pid);
		process_wait(pid, 0, &ps);
	}
	if (in[0] >= 0)
		close(in[0]);
	if (in[1] >= 0)
		close(in[1]);
	if (errfd >= 0)
		close(errfd);
	unlink(errpath);
	free(errtext);
	return rc;
}

/* Moves tmp/custom_hooks into the repository, keeping the old one in tmp. */
static int swap_in(const char *repo_path, const char *tmp, struct error *err)
{
	char fresh[4096], cur[4096], prev[4096];
	struct stat sb;

	snprintf(fresh, sizeof(fresh), "%s/%s", tmp, HOOKS_DIR);
	snprintf(cur, sizeof(cur), "%s/%s", repo_path, HOOKS_DIR);
	snprintf(prev, sizeof(prev), "%s/previous_hooks", tmp);
	if (lstat(fresh, &sb) < 0) {
		if (errno != ENOENT || mkdir(fresh, 0755) < 0)
			return error_set(err, STATUS_INTERNAL, "making temp hooks directory: %s",
					 strerror(errno));
	} else if (!S_ISDIR(sb.st_mode)) {
		return error_set(err, STATUS_INVALID_ARGUMENT,
				 "custom_hooks in the archive is not a directory");
	}
	if (rename(cur, prev) < 0 && errno != ENOENT)
		return error_set(err, STATUS_INTERNAL, "moving current hooks to temp: %s",
				 strerror(errno));
	if (service_sync_recursive(fresh) < 0)
		return error_set(err, STATUS_INTERNAL, "syncing extracted custom hooks: %s",
				 strerror(errno));
	if (rename(fresh, cur) < 0)
		return error_set(err, STATUS_INTERNAL, "moving new hooks to repo: %s",
				 strerror(errno));
	if (service_sync_parent(cur) < 0)
		return error_set(err, STATUS_INTERNAL, "syncing custom hooks parent directory: %s",
				 strerror(errno));
	return 0;
}

static int set_hooks(struct rpc_call *call, const Gitaly__Repository *repo, int restore,
		     struct error *err)
{
	struct service_deps *deps = rpc_call_service_data(call);
	const char *storage_path = NULL;
	char *repo_path = NULL, *tmp = NULL;
	char lock[4096];
	int lockfd = -1, rc = -1;

	if (service_repo_path(deps, repo, 0, &repo_path, err) < 0)
		return -1;
	if (locator_storage_path(deps->locator, repo->storage_name, &storage_path, err) < 0)
		goto out;
	snprintf(lock, sizeof(lock), "%s/%s", repo_path, HOOKS_LOCK);
	lockfd = open(lock, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
	if (lockfd < 0) {
		error_set(err, STATUS_INTERNAL, "setting custom hooks: locking hooks: %s",
			  errno == EEXIST ? "locked" : strerror(errno));
		goto out;
	}
	if (storage_tempdir(storage_path, "custom-hooks-", &tmp, err) < 0) {
		error_prefix(err, "setting custom hooks: creating temp directory");
		goto out;
	}
	if (extract_hooks(call, tmp, err) < 0 || swap_in(repo_path, tmp, err) < 0) {
		if (err->code != STATUS_CANCELLED && err->code != STATUS_DEADLINE_EXCEEDED &&
		    err->code != STATUS_INVALID_ARGUMENT)
			err->code = STATUS_INTERNAL;
		error_prefix(err, "setting custom hooks");
		goto out;
	}
	if (restore) {
		Gitaly__RestoreCustomHooksResponse r = GITALY__RESTORE_CUSTOM_HOOKS_RESPONSE__INIT;
		rc = rpc_call_send(call, &r.base, err);
	} else {
		Gitaly__SetCustomHooksResponse r = GITALY__SET_CUSTOM_HOOKS_RESPONSE__INIT;
		rc = rpc_call_send(call, &r.base, err);
	}
out:
	if (tmp) {
		service_remove_all(tmp);
		free(tmp);
	}
	if (lockfd >= 0) {
		close(lockfd);
		unlink(lock);
	}
	free(repo_path);
	return rc;
}

int repository_set_custom_hooks_rpc(struct rpc_call *call, struct error *err)
{
	const Gitaly__SetCustomHooksRequest *req = (const void *)rpc_call_request(call);

	return set_hooks(call, req ? req->repository : NULL, 0, err);
}

int repository_restore_custom_hooks_rpc(struct rpc_call *call, struct error *err)
{
	const Gitaly__RestoreCustomHooksRequest *req = (const void *)rpc_call_request(call);

	return set_hooks(call, req ? req->repository : NULL, 1, err);
}
