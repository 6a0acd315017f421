/*
 * Filesystem helpers: atomic replacement of small files, mkdir -p, tree
 * removal that never follows symlinks (it works on directory fds with
 * O_NOFOLLOW and unlinkat), bounded reads and Go-compatible path cleaning.
 */
#include "base/fsutil.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "base/strbuf.h"

/* Directory nesting beyond this is refused by fsutil_remove_tree: each level
 * holds one fd, so the bound keeps us far from the fd limit. */
#define REMOVE_TREE_MAX_DEPTH 256

static int write_all(int fd, const void *data, size_t len)
{
	const char *p = data;

	while (len) {
		ssize_t n = write(fd, p, len);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			return -1;
		}
		p += n;
		len -= (size_t)n;
	}
	return 0;
}

int fsutil_fsync_dir(const char *dir, struct error *err)
{
	int fd, ret = -1;

	fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd < 0) {
		error_set(err, STATUS_INTERNAL, "open directory %s: %s", dir, strerror(errno));
		goto out;
	}
	if (fsync(fd) < 0) {
		error_set(err, STATUS_INTERNAL, "fsync directory %s: %s", dir, strerror(errno));
		goto out;
	}
	ret = 0;
out:
	if (fd >= 0)
		close(fd);
	return ret;
}

static char *dir_of(const char *path)
{
	const char *slash = strrchr(path, '/');

	if (!slash)
		return strdup(".");
	if (slash == path)
		return strdup("/");
	return strndup(path, (size_t)(slash - path));
}

int fsutil_write_atomic(const char *path, const void *data, size_t len, mode_t mode,
			struct error *err)
{
	char *tmp = NULL, *dir = NULL;
	int fd = -1, ret = -1;

	if (asprintf(&tmp, "%s.tmp-XXXXXX", path) < 0) {
		tmp = NULL;
		error_set(err, STATUS_INTERNAL, "out of memory");
		goto out;
	}
	dir = dir_of(path);
	if (!dir) {
		error_set(err, STATUS_INTERNAL, "out of memory");
		goto out;
	}
	fd = mkostemp(tmp, O_CLOEXEC);
	if (fd < 0) {
		error_set(err, STATUS_INTERNAL, "create temporary file for %s: %s", path,
			  strerror(errno));
		goto out;
	}
	if (fchmod(fd, mode) < 0 || write_all(fd, data, len) < 0 || fsync(fd) < 0) {
		error_set(err, STATUS_INTERNAL, "write %s: %s", tmp, strerror(errno));
		goto out_unlink;
	}
	if (close(fd) < 0) {
		fd = -1;
		error_set(err, STATUS_INTERNAL, "close %s: %s", tmp, strerror(errno));
		goto out_unlink;
	}
	fd = -1;
	if (rename(tmp, path) < 0) {
		error_set(err, STATUS_INTERNAL, "rename %s: %s", tmp, strerror(errno));
		goto out_unlink;
	}
	ret = fsutil_fsync_dir(dir, err);
	goto out;
out_unlink:
	unlink(tmp);
out:
	if (fd >= 0)
		close(fd);
	free(tmp);
	free(dir);
	return ret;
}

int fsutil_mkdir_p(const char *dir, mode_t mode, struct error *err)
{
	char *copy = strdup(dir);
	struct stat st;
	int ret = -1;

	if (!copy) {
		error_set(err, STATUS_INTERNAL, "out of memory");
		goto out;
	}
	if (!*copy) {
		error_set(err, STATUS_INTERNAL, "mkdir: empty path");
		goto out;
	}
	/* Create each prefix in turn; EEXIST is fine as long as it is a directory. */
	for (char *p = copy + 1;; p++) {
		char saved = *p;

		if (saved != '/' && saved != '\0')
			continue;
		*p = '\0';
		if (mkdir(copy, mode) < 0 && errno != EEXIST) {
			error_set(err, STATUS_INTERNAL, "mkdir %s: %s", copy, strerror(errno));
			goto out;
		}
		*p = saved;
		if (!saved)
			break;
	}
	if (stat(dir, &st) < 0 || !S_ISDIR(st.st_mode)) {
		error_set(err, STATUS_INTERNAL, "mkdir %s: not a directory", dir);
		goto out;
	}
	ret = 0;
out:
	free(copy);
	return ret;
}

/* Empties the directory open as dfd (which this function closes). */
static int remove_dir_contents(int dfd, const char *path, int depth, struct error *err)
{
	DIR *d;
	struct dirent *de;
	int ret = -1;

	if (depth > REMOVE_TREE_MAX_DEPTH) {
		close(dfd);
		return error_set(err, STATUS_INTERNAL, "remove %s: directory tree too deep", path);
	}
	d = fdopendir(dfd);
	if (!d) {
		close(dfd);
		return error_set(err, STATUS_INTERNAL, "open %s: %s", path, strerror(errno));
	}
	while ((errno = 0, de = readdir(d))) {
		const char *name = de->d_name;
		int child;

		if (!strcmp(name, ".") || !strcmp(name, ".."))
			continue;
		if (unlinkat(dirfd(d), name, 0) == 0 || errno == ENOENT)
			continue;
		if (errno != EISDIR && errno != EPERM) {
			error_set(err, STATUS_INTERNAL, "remove %s/%s: %s", path, name,
				  strerror(errno));
			goto out;
		}
		child = openat(dirfd(d), name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
		if (child < 0) {
			error_set(err, STATUS_INTERNAL, "open %s/%s: %s", path, name,
				  strerror(errno));
			goto out;
		}
		if (remove_dir_contents(child, path, depth + 1, err) < 0)
			goto out;
		if (unlinkat(dirfd(d), name, AT_REMOVEDIR) < 0 && errno != ENOENT) {
			error_set(err, STATUS_INTERNAL, "remove %s/%s: %s", path, name,
				  strerror(errno));
			goto out;
		}
	}
	if (errno) {
		error_set(err, STATUS_INTERNAL, "read directory %s: %s", path, strerror(errno));
		goto out;
	}
	ret = 0;
out:
	closedir(d);
	return ret;
}

int fsutil_remove_tree_at(int dirfd, const char *name, struct error *err)
{
	struct stat st;
	int dfd;

	if (fstatat(dirfd, name, &st, AT_SYMLINK_NOFOLLOW) < 0) {
		if (errno == ENOENT)
			return 0;
		return error_set(err, STATUS_INTERNAL, "stat %s: %s", name, strerror(errno));
	}
	if (!S_ISDIR(st.st_mode)) {
		if (unlinkat(dirfd, name, 0) < 0 && errno != ENOENT)
			return error_set(err, STATUS_INTERNAL, "remove %s: %s", name,
					 strerror(errno));
		return 0;
	}
	dfd = openat(dirfd, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	if (dfd < 0)
		return error_set(err, STATUS_INTERNAL, "open %s: %s", name, strerror(errno));
	if (remove_dir_contents(dfd, name, 0, err) < 0)
		return -1;
	if (unlinkat(dirfd, name, AT_REMOVEDIR) < 0 && errno != ENOENT)
		return error_set(err, STATUS_INTERNAL, "remove %s: %s", name, strerror(errno));
	return 0;
}

int fsutil_remove_tree(const char *path, struct error *err)
{
	return fsutil_remove_tree_at(AT_FDCWD, path, err);
}

int fsutil_read_file(const char *path, size_t cap, char **out, size_t *len, struct error *err)
{
	struct strbuf sb;
	char buf[8192];
	int fd, ret = -1;

	strbuf_init(&sb, cap);
	*out = NULL;
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0) {
		error_set(err, errno == ENOENT ? STATUS_NOT_FOUND : STATUS_INTERNAL, "open %s: %s",
			  path, strerror(errno));
		goto out;
	}
	for (;;) {
		ssize_t n = read(fd, buf, sizeof(buf));
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			error_set(err, STATUS_INTERNAL, "read %s: %s", path, strerror(errno));
			goto out;
		}
		if (n == 0)
			break;
		if (strbuf_add(&sb, buf, (size_t)n) < 0) {
			error_set(err, STATUS_RESOURCE_EXHAUSTED, "read %s: file larger than %zu bytes",
				  path, cap);
			goto out;
		}
	}
	*out = strbuf_detach(&sb, len);
	ret = *out ? 0 : error_set(err, STATUS_INTERNAL, "out of memory");
out:
	if (fd >= 0)
		close(fd);
	strbuf_release(&sb);
	return ret;
}

char *fsutil_path_clean(const char *path)
{
	size_t n = strlen(path), w = 0, r = 0, dotdot;
	int rooted = n > 0 && path[0] == '/';
	char *out = malloc(n + 2);

	if (!out)
		return NULL;
	if (rooted) {
		out[w++] = '/';
		r = 1;
	}
	/* dotdot marks where ".." may no longer backtrack past. */
	dotdot = w;
	while (r < n) {
		if (path[r] == '/') {
			r++;
		} else if (path[r] == '.' && (r + 1 == n || path[r + 1] == '/')) {
			r++;
		} else if (path[r] == '.' && path[r + 1] == '.' &&
			   (r + 2 == n || path[r + 2] == '/')) {
			r += 2;
			if (w > dotdot) {
				w--;
				while (w > dotdot && out[w] != '/')
					w--;
			} else if (!rooted) {
				if (w > 0)
					out[w++] = '/';
				out[w++] = '.';
				out[w++] = '.';
				dotdot = w;
			}
		} else {
			if ((rooted && w != 1) || (!rooted && w != 0))
				out[w++] = '/';
			while (r < n && path[r] != '/')
				out[w++] = path[r++];
		}
	}
	if (w == 0)
		out[w++] = '.';
	out[w] = '\0';
	return out;
}

char *fsutil_path_join(const char *a, const char *b)
{
	char *joined = NULL, *clean;

	if (!*a && !*b)
		return strdup("");
	if (!*a)
		return fsutil_path_clean(b);
	if (!*b)
		return fsutil_path_clean(a);
	if (asprintf(&joined, "%s/%s", a, b) < 0)
		return NULL;
	clean = fsutil_path_clean(joined);
	free(joined);
	return clean;
}
