/*
 * Our own reader of loose objects, and the object database built around it.
 *
 * libgit2 1.5's loose backend spins forever inflating a truncated loose
 * object (its zstream loop treats zlib's "no progress" as "try again"), so
 * one corrupt file could hold a worker thread for good. This backend
 * inflates with zlib itself and answers an error on truncated, corrupt or
 * oversized data; everything that does not inflate (existence, prefix
 * lookup, iteration, writes) is delegated to libgit2's loose backend.
 */
#ifndef GIT_ODB_LOOSE_H
#define GIT_ODB_LOOSE_H

#include <git2.h>
#include <git2/sys/odb_backend.h>

#include "base/error.h"

/* libgit2's default priorities: packs are asked before loose objects. */
#define ODB_LOOSE_PRIORITY 1
#define ODB_PACKED_PRIORITY 2

/*
 * A loose-object backend for objects_dir (the "objects" directory). Reads
 * return GIT_ENOTFOUND when the file does not exist (nothing is cached, so
 * objects written later are seen) and -1 with a libgit2 error set when the
 * file is truncated or corrupt. Returns 0, or -1 with the libgit2 error set.
 */
int odb_loose_backend_new(git_odb_backend **out, const char *objects_dir);

/*
 * Builds the object database of objects_dir the way libgit2 and git would:
 * our loose backend plus libgit2's pack backend for objects_dir, its
 * commit-graph when present, the directories of its info/alternates
 * (recursively, 5 levels deep, relative paths taken from the directory that
 * names them), then each directory of extra_alternates (':'-joined, may be
 * NULL) with its own info/alternates. Returns 0 with *out set, or -1 with
 * err set (Internal).
 */
int odb_loose_open(git_odb **out, const char *objects_dir, const char *extra_alternates,
		   struct error *err);

#endif
