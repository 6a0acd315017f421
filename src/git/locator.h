/*
 * The locator turns (storage name, relative path) from a request into a safe
 * absolute directory beneath the storage root, with upstream's checks, codes
 * and messages (reference/gitaly-server.md section 12, gitaly-rpcs.md
 * section 4). Containment is checked lexically as upstream does and then
 * again on the real filesystem (openat2 RESOLVE_BENEATH or an equivalent
 * component walk), so a symlink inside a storage cannot lead outside it.
 */
#ifndef GIT_LOCATOR_H
#define GIT_LOCATOR_H

#include <stddef.h>
#include <stdint.h>

#include "base/error.h"

struct locator_storage {
	const char *name;
	const char *path; /* absolute, cleaned */
};

struct locator {
	const struct locator_storage *storages;
	size_t n_storages;
};

/* What the request says about its repository (fields of gitaly.Repository). */
struct repo_ref {
	const char *storage_name;
	const char *relative_path;
	const char *git_object_directory;          /* may be NULL/empty */
	const char *const *git_alternate_object_directories;
	size_t n_alternates;
};

enum locator_flags {
	/* Skip the existence and validity checks (CreateRepository and similar). */
	LOCATOR_SKIP_EXISTS = 1 << 0,
};

/*
 * Resolves a repository. On success *out is a malloc'd absolute path.
 * Errors (code, message): InvalidArgument "repository not set",
 * "repository path not set", "storage name not set", "storage name not
 * found"; NotFound "storage does not exist"; InvalidArgument "relative path
 * escapes root directory"; NotFound "repository not found";
 * FailedPrecondition "repository not valid: \"HEAD\" does not exist".
 * repo == NULL means the request had no repository message.
 *
 * Beyond upstream: the path is also resolved on disk beneath the storage
 * root, so a symlink inside the storage that leads outside it fails with
 * InvalidArgument "relative path escapes root directory" (upstream follows
 * it). git_object_directory and each alternate, joined to the repository
 * path, must stay inside the storage the same way (quarantine directories
 * live in <storage>/+gitaly/tmp, outside the repository but inside the
 * storage). A path component that is a regular file counts as missing.
 * Relative paths are C strings: a proto string with an embedded NUL arrives
 * truncated at the NUL (protobuf-c), so callers holding a length should
 * reject len != strlen() before calling.
 */
int locator_repo_path(const struct locator *loc, const struct repo_ref *repo, unsigned flags,
		      char **out, struct error *err);

/* The root of a storage: InvalidArgument "storage name not set" / "storage
 * name not found". Borrowed. */
int locator_storage_path(const struct locator *loc, const char *storage_name, const char **out,
			 struct error *err);

/*
 * Checks a path relative to a repository (object directories, quarantine
 * dirs): must stay inside base lexically and physically. *out is malloc'd:
 * the lexical Clean(Join(base, rel)) (symlinks inside base are kept, as
 * upstream returns joined paths). A path that does not exist yet is fine as
 * long as its existing part is inside base. Escapes are InvalidArgument
 * "relative path escapes root directory".
 */
int locator_resolve_beneath(const char *base, const char *rel, char **out, struct error *err);

/*
 * The environment values for a repository's object directories, as upstream
 * builds them (internal/git/alternates): *object_dir = Join(repo_path,
 * git_object_directory) for GIT_OBJECT_DIRECTORY, *alternates = the joined
 * alternates separated by ':' for GIT_ALTERNATE_OBJECT_DIRECTORIES. Each is
 * malloc'd, or NULL when the request left it empty. repo_path is what
 * locator_repo_path returned (which already checked containment). An
 * alternate containing ':' is InvalidArgument.
 */
int locator_object_dirs(const char *repo_path, const struct repo_ref *repo, char **object_dir,
			char **alternates, struct error *err);

/*
 * What one look at a repository directory saw: identity (device, inode,
 * birth time) and the change and modification times. Any entry of the
 * directory created, removed or renamed (HEAD, objects, refs, a new
 * packed-refs renamed into place) changes ctime/mtime; removing and
 * recreating the directory changes its identity.
 */
struct locator_stamp {
	uint64_t dev, ino;
	int64_t btime_sec, ctime_sec, mtime_sec;
	uint32_t btime_nsec, ctime_nsec, mtime_nsec;
	/* The times were older than the trust margin when they were taken, so
	 * any later change is bound to move them (coarse clocks cannot hide
	 * it). A stamp that is not trusted proves nothing. */
	int trusted;
};

/*
 * The stamp this thread took of repo_path (an absolute path as
 * locator_repo_path returned it) while validating it during the current
 * request (within the last few milliseconds). Returns 1 with *out set, 0
 * when there is none. Lets the handle cache and the ref reader skip their
 * own look at the directory.
 */
int locator_recent_stamp(const char *repo_path, struct locator_stamp *out);

/* Equal identity and times (trusted flags ignored). */
int locator_stamp_equal(const struct locator_stamp *a, const struct locator_stamp *b);

/* Tests only: use the portable component walk instead of openat2. */
void locator_test_force_walk(int on);

/* Tests only: the age a directory's times must have before a validation is
 * remembered (default 2000 ms; negative restores the default), and the
 * number of validations answered from memory so far. */
void locator_test_set_trust_margin_ms(int64_t ms);
unsigned long locator_test_fast_hits(void);

#endif
