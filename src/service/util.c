/*
 * Helpers shared by the service handlers: request repository to locator
 * lookups, chunked byte streams, directory sizes and removal, fsync of
 * trees, and Go-style quoting of strings for upstream-shaped messages.
 */
#include "service/util.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "base/fsutil.h"

const struct repo_ref *service_repo_ref(const Gitaly__Repository *repo, struct repo_ref *ref)
{
	if (!repo)
		return NULL;
	memset(ref, 0, sizeof(*ref));
	ref->storage_name = repo->storage_name;
	ref->relative_path = repo->relative_path;
	ref->git_object_directory = repo->git_object_directory;
	ref->git_alternate_object_directories =
		(const char *const *)repo->git_alternate_object_directories;
	ref->n_alternates = repo->n_git_alternate_object_directories;
	return ref;
}

int service_repo_path(const struct service_deps *deps, const Gitaly__Repository *repo,
		      unsigned flags, char **out, struct error *err)
{
	struct repo_ref ref;

	return locator_repo_path(deps->locator, service_repo_ref(repo, &ref), flags, out, err);
}

int service_git_env_init(struct service_git_env *env, const char *repo_path,
			 const Gitaly__Repository *repo, struct error *err)
{
	struct strbuf alts = STRBUF_INIT;
	int ret = -1;

	memset(env, 0, sizeof(*env));
	if (!repo)
		return 0;
	if (repo->git_object_directory && *repo->git_object_directory) {
		env->object_directory = fsutil_path_join(repo_path, repo->git_object_directory);
		if (!env->object_directory)
			goto oom;
	}
	for (size_t i = 0; i < repo->n_git_alternate_object_directories; i++) {
		char *dir = fsutil_path_join(repo_path, repo->git_alternate_object_directories[i]);

		if (!dir || (i && strbuf_addch(&alts, ':') < 0) || strbuf_adds(&alts, dir) < 0) {
			free(dir);
			goto oom;
		}
		free(dir);
	}
	if (alts.len)
		env->alternates = strbuf_detach(&alts, NULL);
	ret = 0;
	goto out;
oom:
	service_git_env_release(env);
	error_set(err, STATUS_INTERNAL, "out of memory");
out:
	strbuf_release(&alts);
	return ret;
}

void service_git_env_release(struct service_git_env *env)
{
	free(env->object_directory);
	free(env->alternates);
	memset(env, 0, sizeof(*env));
}

struct git_cmd *service_git_new(const char *repo_path, const struct service_git_env *env,
				const char *subcommand)
{
	struct git_cmd *cmd = git_cmd_new(repo_path, subcommand);

	if (env && env->object_directory)
		git_cmd_setenv(cmd, "GIT_OBJECT_DIRECTORY", env->object_directory);
	if (env && env->alternates)
		git_cmd_setenv(cmd, "GIT_ALTERNATE_OBJECT_DIRECTORIES", env->alternates);
	return cmd;
}

int service_stream_fd(struct rpc_call *call, int fd, service_chunk_fn send, void *ctx,
		      struct error *err)
{
	uint8_t *buf = malloc(SERVICE_CHUNK_SIZE);
	size_t fill = 0;
	int ret = -1;

	if (!buf) {
		error_set(err, STATUS_INTERNAL, "out of memory");
		goto out;
	}
	for (;;) {
		ssize_t n = read(fd, buf + fill, SERVICE_CHUNK_SIZE - fill);

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			error_set(err, STATUS_INTERNAL, "read: %s", strerror(errno));
			goto out;
		}
		fill += (size_t)n;
		if (fill == SERVICE_CHUNK_SIZE || (n == 0 && fill > 0)) {
			if (send(call, buf, fill, ctx, err) < 0)
				goto out;
			fill = 0;
		}
		if (n == 0)
			break;
	}
	ret = 0;
out:
	free(buf);
	return ret;
}

/* Walks the directory open as dfd, adding file sizes to *total. */
static int dir_size_fd(int dfd, uint64_t *total, struct error *err)
{
	DIR *dir = fdopendir(dfd);
	struct dirent *de;
	int ret = -1;

	if (!dir) {
		close(dfd);
		error_set(err, STATUS_INTERNAL, "walking directory: %s", strerror(errno));
		goto out;
	}
	while ((errno = 0, de = readdir(dir))) {
		struct stat st;

		if (!strcmp(de->d_name, ".") || !strcmp(de->d_name, ".."))
			continue;
		if (fstatat(dirfd(dir), de->d_name, &st, AT_SYMLINK_NOFOLLOW) < 0) {
			if (errno == ENOENT)
				continue;
			error_set(err, STATUS_INTERNAL, "retrieving file info: %s", strerror(errno));
			goto out;
		}
		if (S_ISDIR(st.st_mode)) {
			int sub = openat(dirfd(dir), de->d_name,
					 O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);

			if (sub < 0) {
				if (errno == ENOENT)
					continue;
				error_set(err, STATUS_INTERNAL, "walking directory: %s",
					  strerror(errno));
				goto out;
			}
			if (dir_size_fd(sub, total, err) < 0)
				goto out;
			continue;
		}
		if (st.st_size > 0)
			*total += (uint64_t)st.st_size;
	}
	if (errno) {
		error_set(err, STATUS_INTERNAL, "walking directory: %s", strerror(errno));
		goto out;
	}
	ret = 0;
out:
	if (dir)
		closedir(dir);
	return ret;
}

int service_dir_size(const char *path, uint64_t *out, struct error *err)
{
	struct stat st;
	int fd;

	*out = 0;
	if (lstat(path, &st) < 0) {
		if (errno == ENOENT)
			return 0;
		return error_set(err, STATUS_INTERNAL, "walking directory: %s", strerror(errno));
	}
	if (!S_ISDIR(st.st_mode)) {
		*out = st.st_size > 0 ? (uint64_t)st.st_size : 0;
		return 0;
	}
	fd = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd < 0) {
		if (errno == ENOENT)
			return 0;
		return error_set(err, STATUS_INTERNAL, "walking directory: %s", strerror(errno));
	}
	return dir_size_fd(fd, out, err);
}

int service_remove_all(const char *path)
{
	struct error err = ERROR_INIT;
	int ret = fsutil_remove_tree(path, &err);

	error_release(&err);
	return ret;
}

/* fsyncs the tree under the directory open as dfd (consumed). */
static int sync_tree(int dfd)
{
	DIR *dir = fdopendir(dfd);
	struct dirent *de;
	int ret = 0;

	if (!dir) {
		close(dfd);
		return -1;
	}
	while ((de = readdir(dir))) {
		struct stat st;
		int fd;

		if (!strcmp(de->d_name, ".") || !strcmp(de->d_name, ".."))
			continue;
		if (fstatat(dirfd(dir), de->d_name, &st, AT_SYMLINK_NOFOLLOW) < 0) {
			ret = -1;
			continue;
		}
		if (S_ISLNK(st.st_mode))
			continue;
		fd = openat(dirfd(dir), de->d_name, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
		if (fd < 0) {
			ret = -1;
			continue;
		}
		if (S_ISDIR(st.st_mode)) {
			if (sync_tree(fd) < 0)
				ret = -1;
		} else {
			if (fsync(fd) < 0)
				ret = -1;
			close(fd);
		}
	}
	if (fsync(dirfd(dir)) < 0)
		ret = -1;
	closedir(dir);
	return ret;
}

int service_sync_recursive(const char *path)
{
	int fd = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);

	if (fd < 0)
		return -1;
	return sync_tree(fd);
}

int service_sync_parent(const char *path)
{
	struct error err = ERROR_INIT;
	char *parent = fsutil_path_join(path, "..");
	int ret = -1;

	if (parent)
		ret = fsutil_fsync_dir(parent, &err);
	error_release(&err);
	free(parent);
	return ret;
}

int service_mkdir_all(const char *path, unsigned mode)
{
	struct error err = ERROR_INIT;
	int ret = fsutil_mkdir_p(path, (mode_t)mode, &err);

	error_release(&err);
	return ret;
}

int service_go_quote(struct strbuf *sb, const char *s, size_t len)
{
	if (strbuf_addch(sb, '"') < 0)
		return -1;
	for (size_t i = 0; i < len; i++) {
		unsigned char c = (unsigned char)s[i];
		int r;

		switch (c) {
		case '"': r = strbuf_adds(sb, "\\\""); break;
		case '\\': r = strbuf_adds(sb, "\\\\"); break;
		case '\n': r = strbuf_adds(sb, "\\n"); break;
		case '\t': r = strbuf_adds(sb, "\\t"); break;
		case '\r': r = strbuf_adds(sb, "\\r"); break;
		case '\a': r = strbuf_adds(sb, "\\a"); break;
		case '\b': r = strbuf_adds(sb, "\\b"); break;
		case '\f': r = strbuf_adds(sb, "\\f"); break;
		case '\v': r = strbuf_adds(sb, "\\v"); break;
		default:
			/* Printable ASCII and UTF-8 bytes pass through; other controls are escaped. */
			if (c < 0x20 || c == 0x7f)
				r = strbuf_addf(sb, "\\x%02x", c);
			else
				r = strbuf_addch(sb, (char)c);
		}
		if (r < 0)
			return -1;
	}
	return strbuf_addch(sb, '"');
}

int service_has_nul(const void *s, size_t len)
{
	return len && memchr(s, '\0', len) != NULL;
}
