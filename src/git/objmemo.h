/*
 * A small memo of decoded objects kept with one repository handle (see
 * repo_cache_objmemo): object id -> a caller's value built from that
 * object (FindCommit keeps its parsed gitaly.GitCommit). An object id
 * names the same bytes forever, so nothing is ever invalidated; the memo
 * lives and dies with its handle, like libgit2's own object cache in that
 * handle (a handle is per repository path and quarantine directories, and
 * is replaced when the repository is). Only the thread that has the
 * handle checked out touches its memo: no lock.
 *
 * Bounded: OBJMEMO_SLOTS values per handle (direct-mapped by id), each of
 * at most OBJMEMO_MAX_COST bytes as the caller counts them; the total held
 * by all memos is objmemo_bytes().
 */
#ifndef GIT_OBJMEMO_H
#define GIT_OBJMEMO_H

#include <git2.h>
#include <stddef.h>

#define OBJMEMO_SLOTS 8
#define OBJMEMO_MAX_COST 4096

struct objmemo;

struct objmemo *objmemo_new(void);
void objmemo_free(struct objmemo *m);

/* The value kept for id (borrowed: valid until the next objmemo_put on m
 * or the handle is returned), or NULL. */
void *objmemo_get(struct objmemo *m, const git_oid *id);

/*
 * Keeps value for id, replacing what its slot held, and returns 1: the
 * memo owns it now (free_fn(value) when replaced or the memo is freed).
 * Returns 0 when cost exceeds OBJMEMO_MAX_COST: the caller keeps it.
 */
int objmemo_put(struct objmemo *m, const git_oid *id, void *value, size_t cost,
		void (*free_fn)(void *));

/* Bytes (as counted by the callers) held by every memo together. */
size_t objmemo_bytes(void);

#endif
