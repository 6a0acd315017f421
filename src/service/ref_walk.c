/*
 * In-process reference listing, the fast path of FindLocalBranches and
 * ListRefs: refs come from libgit2's iterator (loose and packed refs, no
 * git spawn), are matched with git for-each-ref's rule for non-glob
 * patterns (a pattern matches the ref itself, or everything beneath it at
 * a '/' boundary, or any ref it prefixes when it ends in '/'), and sorted
 * as for-each-ref sorts: by refname (byte order), or by committer date with
 * ties broken by ascending refname. Broken refs are skipped as git skips
 * them. Commits are parsed once per object id per request (many branches
 * share a commit). Requests this cannot answer exactly (glob patterns,
 * other sort keys, --points-at) stay on the for-each-ref path.
 */
#include <stdlib.h>
#include <string.h>

#include "base/banned.h"
#include "service/gitcommit.h"
#include "service/ref_walk.h"

int ref_walk_pattern_simple(const char *pattern)
{
	return strpbrk(pattern, "*?[\\") == NULL;
}

int ref_walk_match(const char *refname, const char *const *patterns, size_t n)
{
	size_t namelen = strlen(refname);

	if (n == 0)
		return 1;
	for (size_t i = 0; i < n; i++) {
		const char *p = patterns[i];
		size_t plen = strlen(p);

		if (plen <= namelen && strncmp(refname, p, plen) == 0 &&
		    (refname[plen] == '\0' || refname[plen] == '/' || (plen && p[plen - 1] == '/')))
			return 1;
	}
	return 0;
}

static void push(struct ref_walk *w, const char *name, const git_oid *oid)
{
	struct ref_walk_entry *e;

	if (w->n == w->alloc) {
		w->alloc = w->alloc ? w->alloc * 2 : 256;
		w->entries = realloc(w->entries, w->alloc * sizeof(*w->entries));
		if (!w->entries)
			abort();
	}
	e = &w->entries[w->n++];
	memset(e, 0, sizeof(*e));
	e->name = strdup(name);
	if (!e->name)
		abort();
	git_oid_cpy(&e->oid, oid);
}

/* Collects the refs of one iterator that match the patterns. */
static int collect(struct ref_walk *w, git_reference_iterator *it, const char *const *patterns,
		   size_t n)
{
	git_reference *ref;

	while (git_reference_next(&ref, it) == 0) {
		const char *name = git_reference_name(ref);

		if (ref_walk_match(name, patterns, n)) {
			if (git_reference_type(ref) == GIT_REFERENCE_DIRECT) {
				push(w, name, git_reference_target(ref));
			} else {
				git_reference *res = NULL;

				/* A dangling symref is a broken ref: skipped. */
				if (git_reference_resolve(&res, ref) == 0)
					push(w, name, git_reference_target(res));
				git_reference_free(res);
			}
		}
		git_reference_free(ref);
	}
	return 0;
}

static int by_name(const void *a, const void *b)
{
	return strcmp(((const struct ref_walk_entry *)a)->name, ((const struct ref_walk_entry *)b)->name);
}

static int by_name_desc(const void *a, const void *b)
{
	return -by_name(a, b);
}

static int by_date(const void *a, const void *b)
{
	const struct ref_walk_entry *x = a, *y = b;

	if (x->date != y->date)
		return x->date < y->date ? -1 : 1;
	return strcmp(x->name, y->name);
}

static int by_date_desc(const void *a, const void *b)
{
	const struct ref_walk_entry *x = a, *y = b;

	if (x->date != y->date)
		return x->date > y->date ? -1 : 1;
	return strcmp(x->name, y->name);
}

int ref_walk_list(struct ref_walk *w, git_repository *repo, const char *const *patterns, size_t n,
		  struct error *err)
{
	git_reference_iterator *it = NULL;
	int rc;

	memset(w, 0, sizeof(*w));
	w->repo = repo;
	if (n == 1 && patterns[0][0]) {
		/* One prefix: let libgit2 narrow the walk ('*' spans '/'). */
		size_t plen = strlen(patterns[0]);
		char *glob = malloc(plen + 2);

		if (!glob)
			abort();
		memcpy(glob, patterns[0], plen);
		glob[plen] = '*';
		glob[plen + 1] = '\0';
		rc = git_reference_iterator_glob_new(&it, repo, glob);
		free(glob);
	} else {
		rc = git_reference_iterator_new(&it, repo);
	}
	if (rc < 0) {
		const git_error *e = git_error_last();

		return error_set(err, STATUS_INTERNAL, "listing references: %s",
				 e && e->message ? e->message : "");
	}
	collect(w, it, patterns, n);
	git_reference_iterator_free(it);
	if (w->n > 1)
		qsort(w->entries, w->n, sizeof(*w->entries), by_name);
	return 0;
}

/* Commit cache: open addressing on the object id. */
static size_t slot_of(const struct ref_walk *w, const git_oid *oid)
{
	size_t h;

	memcpy(&h, oid->id, sizeof(h));
	return h & (w->cache_cap - 1);
}

static void cache_grow(struct ref_walk *w)
{
	struct ref_walk_cached *old = w->cache;
	size_t old_cap = w->cache_cap;

	w->cache_cap = old_cap ? old_cap * 2 : 1024;
	w->cache = calloc(w->cache_cap, sizeof(*w->cache));
	if (!w->cache)
		abort();
	for (size_t i = 0; i < old_cap; i++) {
		size_t s;

		if (!old[i].commit)
			continue;
		for (s = slot_of(w, &old[i].oid); w->cache[s].commit; s = (s + 1) & (w->cache_cap - 1))
			;
		w->cache[s] = old[i];
	}
	free(old);
}

int ref_walk_commit(struct ref_walk *w, const git_oid *oid, Gitaly__GitCommit **out,
		    struct error *err)
{
	size_t s;

	if ((w->cache_used + 1) * 2 > w->cache_cap)
		cache_grow(w);
	for (s = slot_of(w, oid); w->cache[s].commit; s = (s + 1) & (w->cache_cap - 1)) {
		if (git_oid_equal(&w->cache[s].oid, oid)) {
			*out = w->cache[s].commit;
			return 0;
		}
	}
	if (gitcommit_read(w->repo, oid, out, err) < 0)
		return -1;
	git_oid_cpy(&w->cache[s].oid, oid);
	w->cache[s].commit = *out;
	w->cache_used++;
	return 0;
}

int ref_walk_sort_by_date(struct ref_walk *w, int descending, struct error *err)
{
	for (size_t i = 0; i < w->n; i++) {
		struct ref_walk_entry *e = &w->entries[i];
		Gitaly__GitCommit *c;
		char hex[GIT_OID_HEXSZ + 1];

		if (ref_walk_commit(w, &e->oid, &c, err) < 0)
			return -1;
		e->commit = c;
		git_oid_tostr(hex, sizeof(hex), &e->oid);
		/* committerdate is empty for refs to tags: for-each-ref sorts
		 * those as 0. */
		e->date = strcmp(c->id, hex) == 0 && c->committer && c->committer->date
				  ? c->committer->date->seconds
				  : 0;
		/* git reads an unparsable date as 0 where upstream reports its
		 * fallback; sort as git does. */
		if (e->date == GITCOMMIT_FALLBACK_SECONDS)
			e->date = 0;
	}
	if (w->n > 1)
		qsort(w->entries, w->n, sizeof(*w->entries), descending ? by_date_desc : by_date);
	return 0;
}

void ref_walk_reverse_names(struct ref_walk *w)
{
	if (w->n > 1)
		qsort(w->entries, w->n, sizeof(*w->entries), by_name_desc);
}

void ref_walk_release(struct ref_walk *w)
{
	for (size_t i = 0; i < w->n; i++)
		free(w->entries[i].name);
	free(w->entries);
	for (size_t i = 0; i < w->cache_cap; i++)
		gitcommit_free(w->cache[i].commit);
	free(w->cache);
	memset(w, 0, sizeof(*w));
}
