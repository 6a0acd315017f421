/*
 * Object reads over a libgit2 handle, with the answers git cat-file gives:
 * revision resolution (full hex ids take the fast path), object headers,
 * bounded content reads, type names, and the LFS pointer check upstream uses.
 * Lookups return 1 (found), 0 (missing: the "missing" line of cat-file) or
 * -1 with err set (Internal: corrupt object, I/O error).
 */
#ifndef GIT_ODB_H
#define GIT_ODB_H

#include <git2.h>
#include <stddef.h>
#include <stdint.h>

#include "base/error.h"

/* Largest LFS pointer upstream considers (lfsPointerMaxSize). */
#define ODB_LFS_POINTER_MAX 200

/* "blob", "tree", "commit", "tag", or "unknown". */
const char *odb_type_name(git_object_t type);

/*
 * Resolves a revision the way cat-file --batch would (a full hex id, an
 * abbreviated one, a ref, rev:path ...) to an object id. An unknown,
 * ambiguous or malformed revision is "missing" (0).
 */
int odb_resolve(git_repository *repo, const char *rev, git_oid *out, struct error *err);

/* Type and size of an object without reading its content. */
int odb_header(git_repository *repo, const git_oid *oid, git_object_t *type, int64_t *size,
	       struct error *err);

/*
 * Reads an object; *out (free with git_odb_object_free) gives type, size and
 * the whole content.
 */
int odb_read(git_repository *repo, const git_oid *oid, git_odb_object **out, struct error *err);

/*
 * Upstream's IsLFSPointer: the content starts with
 * "version https://git-lfs.github.com/spec" and has a line
 * "oid sha256:<64 lower hex>" and a line "size <digits>".
 */
int odb_is_lfs_pointer(const void *data, size_t len);

#endif
