/*
 * Reference transactions through `git update-ref -z --stdin`: every ref
 * change the server makes goes through one of these, so git's own locking
 * applies and the reference-transaction hook sees the prepared and
 * committed states (upstream's internal/git/updateref). A transaction is
 * begun (git spawned, "start" acknowledged), fed updates and deletions,
 * prepared (all locks taken), then committed or aborted.
 *
 * When git refuses, its stderr is classified as upstream does, so callers
 * can answer with the typed error details RPCs need (ReferencesLockedError,
 * ReferenceStateMismatchError, ...): see refupdate_failure().
 */
#ifndef GIT_REFUPDATE_H
#define GIT_REFUPDATE_H

#include <stddef.h>

#include "base/error.h"

struct refupdate;

/* Why git refused a transaction (parsed from its stderr). */
enum refupdate_failure_kind {
	REFUPDATE_FAIL_NONE = 0,
	REFUPDATE_FAIL_LOCKED,             /* ref: the reference whose lock exists */
	REFUPDATE_FAIL_PACKED_REFS_LOCKED, /* packed-refs.lock / packed-refs.new exists */
	REFUPDATE_FAIL_INVALID_FORMAT,     /* ref: the malformed name */
	REFUPDATE_FAIL_FILE_DIR_CONFLICT,  /* ref: conflicting (new) ref, other: existing one */
	REFUPDATE_FAIL_IN_TX_CONFLICT,     /* ref, other: the two names */
	REFUPDATE_FAIL_NONEXISTENT_OBJECT, /* ref, oid: the missing object */
	REFUPDATE_FAIL_NON_COMMIT,         /* ref (branch), oid: the non-commit */
	REFUPDATE_FAIL_MISMATCH,           /* ref, expected, actual */
	REFUPDATE_FAIL_ALREADY_EXISTS,     /* ref */
	REFUPDATE_FAIL_MULTIPLE_UPDATES,   /* ref */
	REFUPDATE_FAIL_OTHER,              /* anything else; see stderr */
};

struct refupdate_failure {
	enum refupdate_failure_kind kind;
	char *ref;      /* malloc'd or NULL, as described per kind */
	char *other;
	char *oid;
	char *expected;
	char *actual;
	char *stderr_text; /* everything git wrote to stderr ("" if nothing) */
};

struct refupdate_opts {
	const char *object_dir;    /* GIT_OBJECT_DIRECTORY (quarantine), or NULL */
	const char *alternates;    /* GIT_ALTERNATE_OBJECT_DIRECTORIES, or NULL */
	const char *object_format; /* "sha1" (default when NULL) or "sha256" */
	int no_deref;              /* --no-deref: update symbolic refs themselves */
	/* Extra environment (e.g. the hooks payload once hooks are wired):
	 * n_env "NAME=value" strings. */
	const char *const *env;
	size_t n_env;
	/* Extra `-c key=value` (e.g. core.hooksPath): n_config "key=value". */
	const char *const *config;
	size_t n_config;
};

/*
 * Spawns `git update-ref -z --stdin [--no-deref]` in repo_path and starts a
 * transaction. Returns 0 with *out set (free with refupdate_free), or -1
 * with err set (Internal) and *out NULL.
 */
int refupdate_begin(const char *repo_path, const struct refupdate_opts *opts,
		    struct refupdate **out, struct error *err);

/*
 * Queues `update ref new old`. old NULL or "" means "whatever the current
 * value" (a forced update); the zero oid for old means "must not exist",
 * for new means deletion. Nothing is checked until prepare. Errors
 * (Internal; the transaction is then dead): writing to git failed.
 */
int refupdate_update(struct refupdate *u, const char *ref, const char *new_oid,
		     const char *old_oid, struct error *err);
/* Queues a creation: ref must not exist yet. */
int refupdate_create(struct refupdate *u, const char *ref, const char *oid, struct error *err);
/* Queues a forced deletion. */
int refupdate_delete(struct refupdate *u, const char *ref, struct error *err);

/*
 * Takes every lock and checks every expected old value. On refusal returns
 * -1 with err set: code Internal, message as upstream's error ("reference
 * is already locked", "reference does not point to expected object", ...);
 * refupdate_failure() then tells which. The transaction is then dead.
 */
int refupdate_prepare(struct refupdate *u, struct error *err);

/* Commits (preparing first if not yet done). Errors as refupdate_prepare. */
int refupdate_commit(struct refupdate *u, struct error *err);

/* Aborts an open transaction (git rolls everything back) and reaps git.
 * Harmless after commit or failure. */
void refupdate_abort(struct refupdate *u);

/* The classified failure after a refusal (kind NONE before any). Borrowed. */
const struct refupdate_failure *refupdate_failure(const struct refupdate *u);

/* Aborts if still open, reaps git, frees everything. NULL is ignored. */
void refupdate_free(struct refupdate *u);

/*
 * Classifies git update-ref's stderr into f (fields malloc'd; release with
 * refupdate_failure_release). Exposed for tests.
 */
void refupdate_parse_stderr(const char *stderr_text, struct refupdate_failure *f);
void refupdate_failure_release(struct refupdate_failure *f);

/* Upstream's error text for a failure kind ("reference is already locked"). */
const char *refupdate_failure_message(enum refupdate_failure_kind kind);

#endif
