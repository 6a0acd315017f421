/*
 * Validation of revisions and reference names from requests, as upstream's
 * internal/git/revision.go and git check-ref-format.
 */
#ifndef GIT_REVISION_H
#define GIT_REVISION_H

#include <stddef.h>

#include "base/error.h"

enum revision_flags {
	/* Allow --all, --not, --branches[=], --tags[=], --glob=, --alternate-refs. */
	REVISION_ALLOW_PSEUDO = 1 << 0,
	/* Allow a ':' path suffix (treeish:path). */
	REVISION_ALLOW_PATH = 1 << 1,
};

/* InvalidArgument "empty revision", "revision can't start with '-'",
 * "revision can't contain NUL", "revision can't contain whitespace",
 * "revision can't contain ':'", "revision can't contain '\\'". */
int revision_validate(const char *rev, size_t len, unsigned flags, struct error *err);

/* git check-ref-format rules for a full reference name (refs/...), plus HEAD. */
int refname_validate(const char *name, size_t len, struct error *err);

/* True for a full hex object id of the given format ("sha1": 40, "sha256": 64). */
int oid_is_hex(const char *s, size_t len, const char *object_format);

#endif
