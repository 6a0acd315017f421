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
	/* Allow a ':' path suffix (treeish:path); the path may hold anything but NUL. */
	REVISION_ALLOW_PATH = 1 << 1,
	/* Accept an empty revision (upstream's AllowEmptyRevision). */
	REVISION_ALLOW_EMPTY = 1 << 2,
};

/* InvalidArgument "empty revision", "revision can't start with '-'",
 * "revision can't contain NUL", "revision can't contain whitespace",
 * "revision can't contain ':'", "revision can't contain '\\'".
 * Checked in upstream's order: pseudo-revisions (when allowed), leading
 * dash, NUL, path cut, empty, whitespace (space, \t, \n, \r), ':', '\\'.
 * Callers usually prefix the message, as upstream does. */
int revision_validate(const char *rev, size_t len, unsigned flags, struct error *err);

/* git check-ref-format rules for a full reference name (refs/...), plus HEAD.
 * Messages as reference_validate. */
int refname_validate(const char *name, size_t len, struct error *err);

/*
 * Upstream's ValidateReference: HEAD is refused ("HEAD reference not
 * allowed"), then "reference is not fully qualified", "refs/ is not a valid
 * reference", "reference must not end with slash", "... end with dot",
 * "... contain @{", "... contain double dots", "... contain space
 * characters", "... contain special characters", "... contain control
 * characters", "empty component is not allowed", "component must not start
 * with dot", "component must not end with .lock". All InvalidArgument.
 */
int reference_validate(const char *name, size_t len, struct error *err);

/* True for a full hex object id of the given format ("sha1": 40, "sha256": 64;
 * NULL or "" mean sha1). Lowercase hex only, as upstream's ValidateHex. */
int oid_is_hex(const char *s, size_t len, const char *object_format);

#endif
