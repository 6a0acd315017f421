/*
 * RepositoryService below the RPC layer. Each handler decodes its request,
 * validates it (locator, revisions), then calls one of these core functions
 * on resolved paths, and encodes the answer; unit tests drive the core
 * functions directly against real repositories.
 */
#ifndef SERVICE_REPOSITORY_INTERNAL_H
#define SERVICE_REPOSITORY_INTERNAL_H

#include <stddef.h>
#include <stdint.h>

#include "base/error.h"
#include "base/strbuf.h"
#include "rpc/call.h"

struct service_git_env;

/* Checksum of a repository without any well-known reference. */
#define REPO_ZERO_CHECKSUM "0000000000000000000000000000000000000000"

/*
 * Creates a bare repository at target (which must not exist) atomically:
 * `git init --bare --quiet [--initial-branch=B] --object-format=F` in a
 * directory under <storage>/+gitaly/tmp, then a rename into place under a
 * "<target>.lock" lock. Parent directories are created. branch may be
 * empty. Errors: AlreadyExists "repository exists already", Internal for
 * everything else (git's stderr quoted as upstream).
 */
int repo_create(const char *storage_path, const char *target, const char *branch,
		const char *object_format, struct error *err);

/*
 * Removes the repository at target: moves it into <storage>/+gitaly/tmp
 * (so no half-deleted repository is ever visible) and deletes it there.
 * Errors: NotFound "repository does not exist", FailedPrecondition
 * "repository is already locked", Internal.
 */
int repo_remove(const char *storage_path, const char *target, struct error *err);

/*
 * Upstream's reference checksum: XOR of SHA-1("<oid> <refname>") over the
 * `git show-ref --head` lines naming HEAD or a well-known namespace, as hex
 * of the big-endian number (leading zero bytes dropped). An empty but valid
 * repository gives REPO_ZERO_CHECKSUM; an invalid one DataLoss
 * "not a git repository '<path>'". *out is malloc'd.
 */
int repo_checksum(const char *repo_path, const struct service_git_env *genv, char **out, struct error *err);

/* Folds one show-ref line into a 20-byte checksum accumulator; lines outside
 * the well-known namespaces are ignored. Returns 1 when the line counted. */
int repo_checksum_add_line(unsigned char sum[20], const char *line, size_t len);

/* Request validation of WriteRef after the locator (InvalidArgument,
 * upstream's messages). old may be empty. */
int repo_write_ref_validate(const uint8_t *ref, size_t ref_len, const uint8_t *rev,
			    size_t rev_len, const uint8_t *old, size_t old_len, struct error *err);

/*
 * WriteRef on a validated request: HEAD becomes a symbolic ref to rev;
 * any other ref is updated with `git update-ref` to rev^{object} (zero oid
 * deletes), checking old (zero oid: must not exist) when old_len > 0.
 * Errors are Internal as upstream.
 */
int repo_write_ref(const char *repo_path, const struct service_git_env *genv, const char *ref, const char *rev, const char *old,
		   size_t old_len, struct error *err);

/* "sha1" or "sha256" (static string) from `git rev-parse --show-object-format`. */
int repo_object_format(const char *repo_path, const struct service_git_env *genv, const char **out, struct error *err);

/* Whether any refs/heads/ reference exists. */
int repo_has_local_branches(const char *repo_path, const struct service_git_env *genv, int *out, struct error *err);

/* `git merge-base revs...`; *out is malloc'd, "" when git finds none or fails. */
int repo_merge_base(const char *repo_path, const struct service_git_env *genv, const char *const *revs, size_t n, char **out,
		    struct error *err);

/* gitlab.fullpath in the repository's config: set (replace-all) and read. */
int repo_set_full_path(const char *repo_path, const struct service_git_env *genv, const char *path, struct error *err);
int repo_full_path(const char *repo_path, const struct service_git_env *genv, char **out, struct error *err);

struct repo_info {
	uint64_t size;
	uint64_t loose_refs;
	uint64_t packed_refs_size;
	uint64_t objects_size, objects_recent_size, objects_stale_size, objects_keep_size;
};

/* RepositoryInfo's figures from the filesystem, as upstream's stats package. */
int repo_info_compute(const char *repo_path, struct repo_info *out, struct error *err);

/* Handlers, one per implemented method (repository.c builds the table). */
int repository_exists_rpc(struct rpc_call *call, struct error *err);
int repository_object_format_rpc(struct rpc_call *call, struct error *err);
int repository_create_rpc(struct rpc_call *call, struct error *err);
int repository_remove_rpc(struct rpc_call *call, struct error *err);
int repository_size_rpc(struct rpc_call *call, struct error *err);
int repository_object_dir_size_rpc(struct rpc_call *call, struct error *err);
int repository_info_rpc(struct rpc_call *call, struct error *err);
int repository_checksum_rpc(struct rpc_call *call, struct error *err);
int repository_write_ref_rpc(struct rpc_call *call, struct error *err);
int repository_has_local_branches_rpc(struct rpc_call *call, struct error *err);
int repository_find_merge_base_rpc(struct rpc_call *call, struct error *err);
int repository_get_config_rpc(struct rpc_call *call, struct error *err);
int repository_set_full_path_rpc(struct rpc_call *call, struct error *err);
int repository_full_path_rpc(struct rpc_call *call, struct error *err);
int repository_get_custom_hooks_rpc(struct rpc_call *call, struct error *err);
int repository_backup_custom_hooks_rpc(struct rpc_call *call, struct error *err);
int repository_set_custom_hooks_rpc(struct rpc_call *call, struct error *err);
int repository_restore_custom_hooks_rpc(struct rpc_call *call, struct error *err);

/* --- Repository reads (fsck, sizes, attributes, search, ...) --- */

/* `git fsck --no-progress --no-dangling`: out gets git's stdout and stderr
 * (in that order) when git fails, and stays empty for a sound repository. */
int repo_fsck(const char *repo_path, const struct service_git_env *genv, struct strbuf *out,
	      struct error *err);

/* `git rev-list --disk-usage --objects --stdin` fed revs (newline-separated).
 * NotFound "revision not found" for an unknown revision, Unknown
 * "rev-list failed with error code N" for other failures. */
int repo_objects_size(const char *repo_path, const struct service_git_env *genv,
		      const char *revs, size_t len, uint64_t *size, struct error *err);

/* One specified attribute of a path (path borrowed from the caller). */
struct repo_attr {
	const char *path;
	char *attribute;
	char *value;
};

/* git check-attr of attrs for paths as of rev, without the "unspecified"
 * ones, in path-then-attribute order. *out is freed with repo_attrs_free. */
int repo_check_attr(const char *repo_path, const struct service_git_env *genv, const char *rev,
		    const char *const *attrs, size_t n_attrs, const char *const *paths,
		    size_t n_paths, struct repo_attr **out, size_t *n_out, struct error *err);
void repo_attrs_free(struct repo_attr *list, size_t n);

/* SearchFiles* request checks after the locator: "no query given",
 * "no ref given", "invalid ref argument" (InvalidArgument). */
struct Gitaly__Repository;
int repo_search_validate(const struct Gitaly__Repository *repo, const char *query,
			 const ProtobufCBinaryData *ref, struct error *err);

/* Streams git grep output read from fd as SearchFilesByContent responses. */
int repo_grep_stream(struct rpc_call *call, int fd, struct error *err);

int repository_fsck_rpc(struct rpc_call *call, struct error *err);
int repository_objects_size_rpc(struct rpc_call *call, struct error *err);
int repository_get_file_attributes_rpc(struct rpc_call *call, struct error *err);
int repository_get_info_attributes_rpc(struct rpc_call *call, struct error *err);
int repository_search_files_by_name_rpc(struct rpc_call *call, struct error *err);
int repository_search_files_by_content_rpc(struct rpc_call *call, struct error *err);

/* Runs cmd (freed) feeding it in (NULL: no stdin), sending its stdout to
 * send in chunks of at most SERVICE_CHUNK_SIZE and keeping its stderr in
 * errbuf (up to its cap). Returns 0 once git's output ended (check
 * res->exit_code), -1 when it could not start or a send failed (git killed). */
struct git_cmd;
struct git_result;
int repo_stream_git(struct rpc_call *call, struct git_cmd *cmd, const void *in, size_t in_len,
		    int (*send)(struct rpc_call *, const uint8_t *, size_t, void *, struct error *),
		    void *ctx, struct strbuf *errbuf,
		    struct git_result *res, struct error *err);

/* `git bundle create - --all`, or with patterns (newline-terminated
 * rev-list arguments) `--ignore-missing --stdin`, streamed to send.
 * FailedPrecondition "create bundle: refusing to create empty bundle";
 * Internal "create bundle: exit status N: stderr: "..."" otherwise. */
int repo_create_bundle(struct rpc_call *call, const char *repo_path,
		       const struct service_git_env *genv, const char *patterns, size_t len,
		       int (*send)(struct rpc_call *, const uint8_t *, size_t, void *, struct error *),
		       struct error *err);

int repository_create_bundle_rpc(struct rpc_call *call, struct error *err);
int repository_create_bundle_from_ref_list_rpc(struct rpc_call *call, struct error *err);

/* GetRawChanges after validation: `git diff --raw -z from to` (zero oid
 * from: the empty tree; zero oid to: nothing), blobs resolved with
 * cat-file, sent in messages below 1 MiB. */
int repo_raw_changes(struct rpc_call *call, const char *repo_path,
		     const struct service_git_env *genv, const char *from, const char *to,
		     struct error *err);
int repository_get_raw_changes_rpc(struct rpc_call *call, struct error *err);

/* Upstream's ValidateRelativePath: rel joined to root and cleaned must stay
 * inside root; *out is the cleaned relative path ("." for root itself).
 * InvalidArgument "relative path escapes root directory". */
int repo_archive_relative_path(const char *root, const char *rel, char **out, struct error *err);
int repository_get_archive_rpc(struct rpc_call *call, struct error *err);

int repository_get_snapshot_rpc(struct rpc_call *call, struct error *err);

/* FindLicense's answer; strings are static except path (malloc'd). All
 * NULL when there is no HEAD or no license file. */
struct repo_license {
	const char *short_name, *name, *url, *nickname;
	char *path;
};

/* Detects the license of HEAD's top-level files (see repository_license.c
 * for exactly what is recognised). */
int repo_find_license(const char *repo_path, const struct service_git_env *genv,
		      struct repo_license *out, struct error *err);
/* Whether a file name looks like a license file to go-license-detector. */
int repo_license_file_name(const char *name);
int repository_find_license_rpc(struct rpc_call *call, struct error *err);

#endif
