/*
 * Fast reads of references for the hot read paths (FindCommit, TreeEntry,
 * RefExists): a loose ref is one open, packed-refs is mapped and indexed once per
 * repository (a hash of the names over the mapping), and its freshness is
 * checked by one stat, or by none while the locator's stamp of the
 * repository directory for this request is unchanged (packed-refs is only
 * ever replaced by renaming a new file into that directory). Anything out
 * of the ordinary (symbolic refs, unsorted packed-refs, odd names or file
 * contents, worktrees) is "undecided": the caller asks libgit2 instead,
 * so the answers are libgit2's.
 */
#ifndef GIT_REFREAD_H
#define GIT_REFREAD_H

#include <git2.h>

enum refread_result {
	REFREAD_UNDECIDED = -1,
	REFREAD_MISSING = 0,
	REFREAD_FOUND = 1,
};

/*
 * The object id a full reference name (refs/...) points to, like
 * git_reference_name_to_id for a direct reference. MISSING only when the
 * name is well-formed and neither a loose nor a packed ref of that name
 * exists.
 */
enum refread_result refread_lookup(git_repository *repo, const char *name, git_oid *out);

/*
 * A revision that is a plain name (no operators, not hexadecimal),
 * resolved with libgit2's DWIM rules (<name>, refs/<name>,
 * refs/tags/<name>, refs/heads/<name>, refs/remotes/<name>,
 * refs/remotes/<name>/HEAD). FOUND or UNDECIDED (also when nothing
 * matches: libgit2 then tries abbreviations and describe output).
 */
enum refread_result refread_dwim(git_repository *repo, const char *rev, git_oid *out);

/* Tests only: how many times packed-refs was mapped, and stat'ed. */
unsigned long refread_test_maps(void);
unsigned long refread_test_stats(void);

#endif
