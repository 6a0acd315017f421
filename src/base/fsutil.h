/*
 * Filesystem helpers shared by the storage layer and services: crash-safe
 * file replacement (temp file, fsync, rename, fsync of the directory),
 * `mkdir -p`, removal of whole trees without following symlinks, bounded
 * file reads, and lexical path cleaning with Go's filepath.Clean semantics
 * (upstream's containment checks are defined in those terms).
 */
#ifndef BASE_FSUTIL_H
#define BASE_FSUTIL_H

#include <stddef.h>
#include <sys/types.h>

#include "base/error.h"

/*
 * Replaces path with data atomically: writes "<path>.tmp-XXXXXX" in the same
 * directory, fsyncs it, renames it over path and fsyncs the directory. A crash
 * leaves either the old or the new contents. Errors are Internal.
 */
int fsutil_write_atomic(const char *path, const void *data, size_t len, mode_t mode,
			struct error *err);

/* fsync(2) of a directory, so a rename or create inside it is durable. */
int fsutil_fsync_dir(const char *dir, struct error *err);

/* Creates dir and any missing parents (like `mkdir -p`); existing dirs are
 * fine, an existing non-directory is an error. */
int fsutil_mkdir_p(const char *dir, mode_t mode, struct error *err);

/*
 * Removes path and, when it is a directory, everything beneath it. Symlinks
 * are removed, never followed. A missing path is not an error.
 */
int fsutil_remove_tree(const char *path, struct error *err);
/* The same for the entry name inside the directory open as dirfd. */
int fsutil_remove_tree_at(int dirfd, const char *name, struct error *err);

/*
 * Reads a whole file of at most cap bytes into a malloc'd NUL-terminated
 * buffer (*len excludes the NUL; len may be NULL). A larger file is an error
 * (ResourceExhausted); a missing one is NotFound; others Internal.
 */
int fsutil_read_file(const char *path, size_t cap, char **out, size_t *len, struct error *err);

/*
 * Lexically cleans a path as Go's filepath.Clean does: collapses repeated
 * slashes, removes "." elements, resolves ".." against the preceding element
 * (a leading ".." on an absolute path is dropped), and drops a trailing
 * slash. "" becomes ".". Returns a malloc'd string (NULL on OOM).
 */
char *fsutil_path_clean(const char *path);

/* Go's filepath.Join of two elements: joins with '/' and cleans; empty
 * elements are ignored. malloc'd (NULL on OOM). */
char *fsutil_path_join(const char *a, const char *b);

#endif
