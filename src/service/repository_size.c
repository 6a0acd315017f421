/*
 * Size reporting of RepositoryService: RepositorySize and
 * GetObjectDirectorySize (KiB of the files beneath the repository or the
 * request's object directory, as upstream's directory walk) and RepositoryInfo
 * (references and object storage figures read from the filesystem).
 */
#include <dirent.h>
#include <fcntl.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include <openssl/evp.h>

#include "base/fsutil.h"
#include "repository.pb-c.h"
#include "service/repository_internal.h"
#include "service/util.h"

/* Loose objects older than this are stale (upstream: 10 days). */
#define STALE_GRACE_SECONDS (10 * 24 * 3600)

/* Counts the non-directory entries beneath dir (loose references). */
static int count_files(const char *dir, uint64_t *count, struct error *err)
{
	DIR *d = opendir(dir);
	struct dirent *de;
	int ret = -1;

	if (!d) {
		if (errno == ENOENT)
			return 0;
		return error_set(err, STATUS_INTERNAL, "counting loose refs: %s", strerror(errno));
	}
	while ((de = readdir(d))) {
		struct stat st;
		char *sub = NULL;

		if (!strcmp(de->d_name, ".") || !strcmp(de->d_name, ".."))
			continue;
		if (asprintf(&sub, "%s/%s", dir, de->d_name) < 0) {
			error_set(err, STATUS_INTERNAL, "out of memory");
			goto out;
		}
		if (lstat(sub, &st) == 0) {
			if (S_ISDIR(st.st_mode)) {
				if (count_files(sub, count, err) < 0) {
					free(sub);
					goto out;
				}
			} else {
				(*count)++;
			}
		}
		free(sub);
	}
	ret = 0;
out:
	closedir(d);
	return ret;
}

static int all_hex(const char *s)
{
	return strspn(s, "0123456789abcdef") == strlen(s);
}

static int loose_objects(const char *repo_path, struct repo_info *info, struct error *err)
{
	time_t cutoff = time(NULL) - STALE_GRACE_SECONDS;

	for (int i = 0; i <= 0xff; i++) {
		char shard[4096];
		DIR *d;
		struct dirent *de;

		snprintf(shard, sizeof(shard), "%s/objects/%02x", repo_path, i);
		d = opendir(shard);
		if (!d) {
			if (errno == ENOENT || errno == ENOTDIR)
				continue;
			return error_set(err, STATUS_INTERNAL, "reading loose object shard: %s",
					 strerror(errno));
		}
		while ((de = readdir(d))) {
			struct stat st;

			if (!strcmp(de->d_name, ".") || !strcmp(de->d_name, ".."))
				continue;
			if (fstatat(dirfd(d), de->d_name, &st, AT_SYMLINK_NOFOLLOW) < 0)
				continue;
			if (!all_hex(de->d_name))
				continue; /* garbage, not reported by RepositoryInfo */
			info->objects_size += (uint64_t)st.st_size;
			if (st.st_mtime < cutoff)
				info->objects_stale_size += (uint64_t)st.st_size;
			else
				info->objects_recent_size += (uint64_t)st.st_size;
		}
		closedir(d);
	}
	return 0;
}

static int has_prefix_suffix(const char *s, const char *prefix, const char *suffix)
{
	size_t n = strlen(s), p = strlen(prefix), q = strlen(suffix);

	return n >= p && n >= q && !strncmp(s, prefix, p) && !strcmp(s + n - q, suffix);
}

/* Whether "<pack basename><ext>" exists next to the .pack entry name. */
static int pack_has(const char *pack_dir, const char *pack_name, const char *ext)
{
	char *path = NULL;
	struct stat st;
	size_t base = strlen(pack_name) - strlen(".pack");
	int found;

	if (asprintf(&path, "%s/%.*s%s", pack_dir, (int)base, pack_name, ext) < 0)
		return 0;
	found = stat(path, &st) == 0;
	free(path);
	return found;
}

static int packfiles(const char *repo_path, struct repo_info *info, struct error *err)
{
	char dir[4096];
	DIR *d;
	struct dirent *de;

	snprintf(dir, sizeof(dir), "%s/objects/pack", repo_path);
	d = opendir(dir);
	if (!d) {
		if (errno == ENOENT)
			return 0;
		return error_set(err, STATUS_INTERNAL, "deriving repository info: %s",
				 strerror(errno));
	}
	while ((de = readdir(d))) {
		struct stat st;
		uint64_t size;

		if (!has_prefix_suffix(de->d_name, "pack-", ".pack"))
			continue;
		if (fstatat(dirfd(d), de->d_name, &st, 0) < 0)
			continue;
		size = st.st_size > 0 ? (uint64_t)st.st_size : 0;
		info->objects_size += size;
		if (pack_has(dir, de->d_name, ".keep"))
			info->objects_keep_size += size, info->objects_recent_size += size;
		else if (pack_has(dir, de->d_name, ".mtimes"))
			info->objects_stale_size += size; /* cruft pack */
		else
			info->objects_recent_size += size;
	}
	closedir(d);
	return 0;
}

int repo_info_compute(const char *repo_path, struct repo_info *out, struct error *err)
{
	char path[4096];
	struct stat st;

	memset(out, 0, sizeof(*out));
	if (service_dir_size(repo_path, &out->size, err) < 0)
		return error_prefix(err, "calculating repository size");
	snprintf(path, sizeof(path), "%s/refs", repo_path);
	if (count_files(path, &out->loose_refs, err) < 0)
		return error_prefix(err, "deriving repository info");
	snprintf(path, sizeof(path), "%s/packed-refs", repo_path);
	if (stat(path, &st) == 0)
		out->packed_refs_size = (uint64_t)st.st_size;
	else if (errno != ENOENT)
		return error_set(err, STATUS_INTERNAL,
				 "deriving repository info: getting packed-refs size: %s",
				 strerror(errno));
	if (loose_objects(repo_path, out, err) < 0 || packfiles(repo_path, out, err) < 0)
		return -1;
	return 0;
}

int repository_size_rpc(struct rpc_call *call, struct error *err)
{
	const struct service_deps *deps = rpc_call_service_data(call);
	const Gitaly__RepositorySizeRequest *req =
		(const Gitaly__RepositorySizeRequest *)rpc_call_request(call);
	Gitaly__RepositorySizeResponse resp = GITALY__REPOSITORY_SIZE_RESPONSE__INIT;
	char *path = NULL;
	uint64_t size = 0;
	int ret = -1;

	if (service_repo_path(deps, req->repository, 0, &path, err) < 0)
		goto out;
	if (service_dir_size(path, &size, err) < 0) {
		error_prefix(err, "calculating directory size");
		goto out;
	}
	resp.size = (int64_t)(size / 1024);
	ret = rpc_call_send(call, &resp.base, err);
out:
	free(path);
	return ret;
}

/*
 * Upstream's ObjectDirectoryPath: the request must name its object
 * directory; it must lie inside the repository or be this repository's
 * quarantine directory in the storage's +gitaly/tmp
 * ("quarantine-<first 8 bytes of sha1(relative path) in hex>-..."), and it
 * must exist. *out is malloc'd.
 */
static int repo_object_directory(const struct service_deps *deps, const Gitaly__Repository *repo,
				 const char *repo_path, char **out, struct error *err)
{
	const char *objdir = repo->git_object_directory, *storage;
	char *full = NULL, *tmp = NULL, *prefix = NULL, *inside = NULL;
	unsigned char md[EVP_MAX_MD_SIZE];
	unsigned int md_len = 0;
	struct error rerr = ERROR_INIT;
	struct stat st;
	int ret = -1;

	*out = NULL;
	if (!objdir || !*objdir) {
		error_set(err, STATUS_INVALID_ARGUMENT, "object directory path is not set");
		goto out;
	}
	full = fsutil_path_join(repo_path, objdir);
	if (!full) {
		error_set(err, STATUS_INTERNAL, "out of memory");
		goto out;
	}
	if (locator_resolve_beneath(repo_path, objdir, &inside, &rerr) < 0) {
		if (locator_storage_path(deps->locator, repo->storage_name, &storage, err) < 0)
			goto out;
		tmp = fsutil_path_join(storage, "+gitaly/tmp");
		if (!tmp || !EVP_Digest(repo->relative_path, strlen(repo->relative_path), md,
					&md_len, EVP_sha1(), NULL) ||
		    asprintf(&prefix, "%s/quarantine-%02x%02x%02x%02x%02x%02x%02x%02x-", tmp, md[0],
			     md[1], md[2], md[3], md[4], md[5], md[6], md[7]) < 0) {
			prefix = NULL;
			error_set(err, STATUS_INTERNAL, "out of memory");
			goto out;
		}
		if (strncmp(full, prefix, strlen(prefix)) != 0) {
			error_set(err, STATUS_INVALID_ARGUMENT, "not a valid relative path: %s",
				  rerr.message);
			goto out;
		}
	}
	if (stat(full, &st) < 0 && errno == ENOENT) {
		struct strbuf msg = STRBUF_INIT;

		strbuf_adds(&msg, "object directory does not exist: ");
		service_go_quote(&msg, full, strlen(full));
		error_set(err, STATUS_NOT_FOUND, "%s", msg.buf);
		strbuf_release(&msg);
		goto out;
	}
	*out = full;
	full = NULL;
	ret = 0;
out:
	error_release(&rerr);
	free(inside);
	free(prefix);
	free(tmp);
	free(full);
	return ret;
}

int repository_object_dir_size_rpc(struct rpc_call *call, struct error *err)
{
	const struct service_deps *deps = rpc_call_service_data(call);
	const Gitaly__GetObjectDirectorySizeRequest *req =
		(const Gitaly__GetObjectDirectorySizeRequest *)rpc_call_request(call);
	Gitaly__GetObjectDirectorySizeResponse resp = GITALY__GET_OBJECT_DIRECTORY_SIZE_RESPONSE__INIT;
	char *path = NULL, *objdir = NULL;
	uint64_t size = 0;
	int ret = -1;

	if (service_repo_path(deps, req->repository, 0, &path, err) < 0)
		goto out;
	if (repo_object_directory(deps, req->repository, path, &objdir, err) < 0)
		goto out;
	if (service_dir_size(objdir, &size, err) < 0) {
		error_prefix(err, "calculating directory size");
		goto out;
	}
	resp.size = (int64_t)(size / 1024);
	ret = rpc_call_send(call, &resp.base, err);
out:
	free(objdir);
	free(path);
	return ret;
}

int repository_info_rpc(struct rpc_call *call, struct error *err)
{
	const struct service_deps *deps = rpc_call_service_data(call);
	const Gitaly__RepositoryInfoRequest *req =
		(const Gitaly__RepositoryInfoRequest *)rpc_call_request(call);
	Gitaly__RepositoryInfoResponse resp = GITALY__REPOSITORY_INFO_RESPONSE__INIT;
	Gitaly__RepositoryInfoResponse__ReferencesInfo refs =
		GITALY__REPOSITORY_INFO_RESPONSE__REFERENCES_INFO__INIT;
	Gitaly__RepositoryInfoResponse__ObjectsInfo objs =
		GITALY__REPOSITORY_INFO_RESPONSE__OBJECTS_INFO__INIT;
	struct repo_info info;
	char *path = NULL;
	int ret = -1;

	if (service_repo_path(deps, req->repository, 0, &path, err) < 0)
		goto out;
	if (repo_info_compute(path, &info, err) < 0)
		goto out;
	resp.size = info.size;
	refs.loose_count = info.loose_refs;
	refs.packed_size = info.packed_refs_size;
	objs.size = info.objects_size;
	objs.recent_size = info.objects_recent_size;
	objs.stale_size = info.objects_stale_size;
	objs.keep_size = info.objects_keep_size;
	resp.references = &refs;
	resp.objects = &objs;
	ret = rpc_call_send(call, &resp.base, err);
out:
	free(path);
	return ret;
}
