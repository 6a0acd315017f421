/*
 * In-process object access: a bounded cache of open libgit2 repository
 * handles, the role upstream's cat-file process cache plays
 * ([git] catfile_cache_size, gitaly_catfile_cache_total{type}).
 *
 * A handle is used by one thread at a time: repo_cache_get checks one out
 * (reusing an idle handle for the same key, else opening a new one) and
 * repo_cache_put returns it. The key is (repository path, object directory,
 * alternates), so a quarantined request never shares a handle with a normal
 * one. Handles see new refs and packs written by git underneath them. For
 * SHA-256 repositories the cached handle is a cat-file reader (see
 * struct repo_handle below).
 */
#ifndef GIT_REPO_CACHE_H
#define GIT_REPO_CACHE_H

#include <git2.h>
#include <stddef.h>
#include <stdint.h>

#include "base/error.h"

/* Sets the maximum number of idle cached handles (default 100). Call once
 * at startup, before the first get; also initialises libgit2. */
void repo_cache_configure(size_t max_idle);

/*
 * Checks out a handle for repo_path. object_dir (absolute, or NULL) and
 * alternates (':'-joined absolute paths, or NULL) come from the request's
 * quarantine fields (see locator_object_dirs). Returns 0 with *out set, or
 * -1 with err set (Internal when libgit2 cannot open the repository).
 */
int repo_cache_get(const char *repo_path, const char *object_dir, const char *alternates,
		   git_repository **out, struct error *err);

/* Returns a handle obtained from repo_cache_get (NULL is ignored). */
void repo_cache_put(git_repository *repo);

/*
 * Either kind of handle: libgit2 for SHA-1 repositories, a long-lived
 * `git cat-file --batch-command` reader (git/catfile.h) for SHA-256 ones,
 * which libgit2 1.5 cannot open. Exactly one member is set.
 */
struct catfile;
struct repo_handle {
	git_repository *repo;
	struct catfile *cf;
};

/*
 * Like repo_cache_get, for code that serves both object formats. The SHA-1
 * path is the same libgit2 handle; repo_cache_get itself answers Internal
 * for a SHA-256 repository.
 */
int repo_cache_get_handle(const char *repo_path, const char *object_dir, const char *alternates,
			  struct repo_handle *out, struct error *err);
/* Returns a handle from repo_cache_get_handle and clears *h. */
void repo_cache_put_handle(struct repo_handle *h);

/*
 * The memo of decoded objects kept with a checked-out libgit2 handle
 * (git/objmemo.h), made on first use; NULL when repo is not a checked-out
 * handle of this cache or memory is short. Only the thread holding the
 * handle may use it, until repo_cache_put.
 */
struct objmemo;
struct objmemo *repo_cache_objmemo(git_repository *repo);

/* True when repo_path's config sets extensions.objectFormat = sha256. */
int repo_cache_is_sha256(const char *repo_path);

/* Drops every idle handle of repo_path (after RemoveRepository and similar). */
void repo_cache_evict(const char *repo_path);

/* Number of idle handles currently cached (for tests and diagnostics). */
size_t repo_cache_idle_count(void);

/* Closes every idle handle (checked-out ones are untouched). */
void repo_cache_clear(void);

/* Closes every idle handle and shuts libgit2 down when no handle is checked
 * out. For the end of the process (tests, clean exit); no call after it. */
void repo_cache_shutdown(void);

/* Overrides the idle TTL (default 10 s as upstream; negative restores it).
 * For tests. */
void repo_cache_set_ttl_ms(int64_t ttl_ms);

#endif
