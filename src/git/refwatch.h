/*
 * Loose references known to be absent, without looking. Resolving "main"
 * tries refs/main, refs/tags/main and refs/heads/main as loose files
 * before packed-refs; on a repository whose refs are packed each of those
 * is a failed open(2) (a path walk of the whole repository path) on every
 * request. Here a failed look is remembered per repository, and kept true
 * by an inotify watch on every directory on the way to the name (refs,
 * refs/heads, ...): a file or directory created, renamed in or out,
 * deleted, or an attribute changed in any of them, or a watched directory
 * itself moved or removed, forgets everything remembered for that
 * repository. Each lookup first reads the inotify queue (one read(2), the
 * events of every change that completed before it), so a reference
 * written before a request starts is seen by that request.
 *
 * Facts hold only under the locator's stamp of the repository directory
 * for this request (trusted, and equal to the one they were learned
 * under: a repository removed and recreated, or refs/ replaced, changes
 * it). Only for local file systems (ext2/3/4, xfs, btrfs, tmpfs): inotify
 * does not see what other machines do on a network file system. When
 * inotify is not available (no instance or watch left) nothing is
 * remembered and every candidate is opened as before.
 */
#ifndef GIT_REFWATCH_H
#define GIT_REFWATCH_H

#include <stdint.h>

/* One lookup's view of a repository (refwatch_begin). */
struct refwatch_ticket {
	int slot;     /* -1: nothing remembered or learnable for this lookup */
	uint64_t gen; /* the slot's generation when the lookup began */
};

/*
 * Starts a lookup in gitdir (as git/refread.c names it: no trailing
 * slash): applies every change queued so far. Without a trusted stamp of
 * gitdir taken during this request (locator_recent_stamp), the ticket
 * allows nothing.
 */
void refwatch_begin(const char *gitdir, struct refwatch_ticket *t);

/* 1 when gitdir/name is known not to exist (name relative to gitdir). */
int refwatch_absent(const struct refwatch_ticket *t, const char *name);

/*
 * Before opening gitdir/name: watches every directory on the way to it
 * that exists. Returns 1 when a miss of that open may be remembered with
 * refwatch_note_absent, 0 otherwise.
 */
int refwatch_prepare(const struct refwatch_ticket *t, const char *gitdir, const char *name);

/* The open after refwatch_prepare failed with ENOENT. */
void refwatch_note_absent(const struct refwatch_ticket *t, const char *name);

/* Tests only: answers given from memory so far; forget everything (as an
 * event queue overflow does); watches currently held. */
unsigned long refwatch_test_hits(void);
void refwatch_test_overflow(void);
unsigned refwatch_test_watches(void);

#endif
