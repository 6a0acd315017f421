/*
 * In-process reference listing for RefService (see ref_walk.c): the refs
 * matching non-glob for-each-ref patterns, sorted as for-each-ref would,
 * plus a per-request cache of parsed commits.
 */
#ifndef SERVICE_REF_WALK_H
#define SERVICE_REF_WALK_H

#include <git2.h>
#include <stddef.h>
#include <stdint.h>

#include "base/error.h"
#include "shared.pb-c.h"

struct ref_walk_entry {
	char *name;
	git_oid oid;                /* the ref's (resolved) target */
	int64_t date;               /* committer date, after ref_walk_sort_by_date */
	Gitaly__GitCommit *commit;  /* borrowed from the cache, or NULL */
};

struct ref_walk_cached {
	git_oid oid;
	Gitaly__GitCommit *commit;
};

struct ref_walk {
	git_repository *repo;
	struct ref_walk_entry *entries;
	size_t n, alloc;
	struct ref_walk_cached *cache;
	size_t cache_cap, cache_used;
};

/* True when pattern has no glob character (the in-process path applies). */
int ref_walk_pattern_simple(const char *pattern);

/* for-each-ref's match of refname against non-glob patterns (n == 0: all). */
int ref_walk_match(const char *refname, const char *const *patterns, size_t n);

/*
 * Fills w with the refs matching patterns (non-glob, n may be 0 for every
 * ref), sorted by refname. Broken refs are skipped. Release with
 * ref_walk_release. Errors: Internal when refs cannot be listed.
 */
int ref_walk_list(struct ref_walk *w, git_repository *repo, const char *const *patterns, size_t n,
		  struct error *err);

/* Re-sorts by committer date (ties: ascending refname), reading commits. */
int ref_walk_sort_by_date(struct ref_walk *w, int descending, struct error *err);

/* Re-sorts by descending refname. */
void ref_walk_reverse_names(struct ref_walk *w);

/* The commit behind oid (peeled), parsed once per request; borrowed from
 * w. Errors as gitcommit_read. */
int ref_walk_commit(struct ref_walk *w, const git_oid *oid, Gitaly__GitCommit **out,
		    struct error *err);

void ref_walk_release(struct ref_walk *w);

#endif
