/*
 * Object reads over a libgit2 handle, with the answers git cat-file gives:
 * revision resolution (full hex ids take the fast path), object headers,
 * bounded content reads, type names, and the LFS pointer check upstream uses.
 * The odb_h_* functions do the same on either kind of cached handle (libgit2
 * for SHA-1, the cat-file reader for SHA-256) with hex object ids, and parse
 * tree objects of both id sizes.
 * Lookups return 1 (found), 0 (missing: the "missing" line of cat-file) or
 * -1 with err set (Internal: corrupt object, I/O error).
 */
#ifndef GIT_ODB_H
#define GIT_ODB_H

#include <git2.h>
#include <stddef.h>
#include <stdint.h>

#include "base/error.h"
#include "git/repo_cache.h"

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

/*
 * The same lookups through either kind of handle (git/repo_cache.h: libgit2
 * for SHA-1, a cat-file reader for SHA-256), with object ids as hex strings
 * (40 or 64 digits) so callers need no libgit2 git_oid, which holds SHA-1
 * only. oid buffers are ODB_OID_MAX bytes.
 */
#define ODB_OID_MAX 65

/* An object's content: data/len borrowed from whichever member owns it. */
struct odb_object {
	git_object_t type;
	const char *data;
	size_t len;
	git_odb_object *lg; /* libgit2 path */
	char *buf;          /* cat-file path */
};

/* odb_resolve: any revision (a full or short id, a ref, rev^{tree},
 * rev:path) to a full id. */
int odb_h_resolve(const struct repo_handle *h, const char *rev, char *oid, struct error *err);

/* odb_header for a full hex id. */
int odb_h_header(const struct repo_handle *h, const char *oid, git_object_t *type, int64_t *size,
		 struct error *err);

/* odb_read for a full hex id; release *out with odb_object_release. */
int odb_h_read(const struct repo_handle *h, const char *oid, struct odb_object *out,
	       struct error *err);
void odb_object_release(struct odb_object *o);

/* One entry of a tree object. */
struct odb_tree_entry {
	uint32_t mode;     /* as written in the tree (e.g. 0100644, 040000) */
	git_object_t type; /* from the mode: blob, tree or commit (submodule) */
	const char *name;  /* not NUL-terminated */
	size_t name_len;
	char oid[ODB_OID_MAX];
};

/* Return 0 to go on, 1 to stop, -1 with err set. */
typedef int (*odb_tree_fn)(void *arg, const struct odb_tree_entry *e, struct error *err);

/*
 * Calls fn for each entry of tree oid, in the tree's order. Returns 1 when
 * the tree was read (even if fn stopped early), 0 when oid is missing or not
 * a tree, -1 on errors (a malformed tree is Internal).
 */
int odb_h_tree_each(const struct repo_handle *h, const char *oid, odb_tree_fn fn, void *arg,
		    struct error *err);

/* odb_h_tree_each over a tree libgit2 has already loaded (returns 0/-1). */
int odb_tree_each_lg(const git_tree *tree, odb_tree_fn fn, void *arg, struct error *err);

/*
 * Parses raw tree bytes with ids of raw_len bytes (20 or 32), as above.
 * Returns 0, or -1 (Internal "malformed tree") / fn's error.
 */
int odb_tree_parse(const char *data, size_t len, size_t raw_len, odb_tree_fn fn, void *arg,
		   struct error *err);

/* The object type a tree entry mode stands for. */
git_object_t odb_mode_type(uint32_t mode);

#endif
