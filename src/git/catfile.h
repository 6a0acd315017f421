/*
 * A long-lived `git cat-file --batch-command` process: the object reader of
 * repositories libgit2 cannot open (SHA-256, see git/objfmt.h). One process
 * per cached handle (git/repo_cache.c), used by one thread at a time.
 * Lookups return 1 (found), 0 (missing or ambiguous, cat-file's "missing"
 * line) or -1 with err set (Internal: the process died or spoke nonsense;
 * the reader is then broken and its handle is dropped when returned).
 */
#ifndef GIT_CATFILE_H
#define GIT_CATFILE_H

#include <git2.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "base/error.h"

/* Longest object id in hex (SHA-256) plus NUL. */
#define CATFILE_OID_MAX 65

struct catfile;

/*
 * Starts cat-file in repo_path with the request's object directory and
 * alternates (NULL when unset), as git/repo_cache.h's key. Internal on
 * spawn failure.
 */
int catfile_open(const char *repo_path, const char *object_dir, const char *alternates,
		 struct catfile **out, struct error *err);

/*
 * Object id, type and size of a revision (anything cat-file resolves: a full
 * or abbreviated id, a ref, rev^{tree}, rev:path). oid receives the full hex
 * id (CATFILE_OID_MAX bytes). A revision holding a newline is missing.
 */
int catfile_info(struct catfile *cf, const char *rev, char *oid, git_object_t *type,
		 int64_t *size, struct error *err);

/*
 * Like catfile_info plus the content: *data is malloc'd (size bytes plus a
 * NUL not counted in *len). Objects larger than max_size are refused with
 * Internal (the caller streams those another way); 0 means no limit.
 */
int catfile_contents(struct catfile *cf, const char *rev, char *oid, git_object_t *type,
		     char **data, size_t *len, size_t max_size, struct error *err);

/* False once the process failed; such a reader must not be reused. */
int catfile_usable(const struct catfile *cf);

/* The process id of the reader's git (for tests and diagnostics). */
pid_t catfile_pid(const struct catfile *cf);

/* Closes stdin, waits for the process (killing it when it lingers). */
void catfile_close(struct catfile *cf);

/* Type from cat-file's type name; GIT_OBJECT_INVALID when unknown. */
git_object_t catfile_type_from_name(const char *name, size_t len);

#endif
