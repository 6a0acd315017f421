/*
 * Git objects as the protobuf messages RPCs answer with: a commit becomes a
 * gitaly.GitCommit, an annotated tag a gitaly.Tag. Parsing works on the raw
 * object bytes (read through the cached handle of either kind) exactly as
 * upstream's catfile parser does, so odd headers, non-UTF-8 names and messages, and
 * out-of-range dates come out the way GitLab expects: body and tag message
 * truncated to 10 KiB with the full size alongside, dates outside
 * [0, 2^53] replaced by upstream's fallback, signature type from the first
 * line of gpgsig / the tag's signature block.
 *
 * Every message returned is malloc'd as one tree; free it with
 * protobuf_c_message_free_unpacked(&msg->base, NULL) or the helpers below.
 */
#ifndef SERVICE_GITCOMMIT_H
#define SERVICE_GITCOMMIT_H

#include <git2.h>
#include <stddef.h>

#include "base/error.h"
#include "git/repo_cache.h"
#include "shared.pb-c.h"

/* Upstream's helper.MaxCommitOrTagMessageSize. */
#define GITCOMMIT_MAX_MESSAGE ((size_t)10 * 1024)

/* Date used when a signature's timestamp does not parse (Go's max time). */
#define GITCOMMIT_FALLBACK_SECONDS 9223371974719179007LL

/*
 * Parses a raw commit object (the bytes after git's "commit <size>\0"
 * header) into *out. oid_hex is its id. Never fails on odd content (like
 * upstream, unknown or broken headers are skipped); -1 only when memory ran
 * out (Internal).
 */
int gitcommit_parse(const char *oid_hex, const char *raw, size_t len, Gitaly__GitCommit **out,
		    struct error *err);

/*
 * Reads the commit oid names, peeling annotated tags (rev^{commit}).
 * Errors: NotFound "object not found" when oid or a peeled object is
 * missing, InvalidArgument "expected commit, got <type>" when the peel
 * ends at a tree or blob, Internal on read failures.
 */
int gitcommit_read(git_repository *repo, const git_oid *oid, Gitaly__GitCommit **out,
		   struct error *err);

/* gitcommit_read through either kind of handle (git/repo_cache.h); hex
 * is a full object id of the repository's format. */
int gitcommit_read_h(const struct repo_handle *h, const char *hex, Gitaly__GitCommit **out,
		     struct error *err);

/* gitcommit_read_raw through either kind of handle. */
int gitcommit_read_raw_h(const struct repo_handle *h, const char *hex, git_object_t *type,
			 char **data, size_t *len, struct error *err);

/* The raw bytes and type of an object (libgit2 odb read). *data is
 * malloc'd. Errors as gitcommit_read. */
int gitcommit_read_raw(git_repository *repo, const git_oid *oid, git_object_t *type, char **data,
		       size_t *len, struct error *err);

/*
 * Parses a raw tag object. name/name_len (may be 0) is the tag name to
 * report (the ref name without refs/tags/); when empty the object's own
 * "tag" header is used. *tagged_oid / *tagged_type receive the "object" and
 * "type" headers (malloc'd, may be NULL when absent). The message is kept
 * whole (message_size = its length).
 */
int gitcommit_parse_tag(const char *oid_hex, const char *raw, size_t len, const void *name,
			size_t name_len, Gitaly__Tag **out, char **tagged_oid, char **tagged_type,
			struct error *err);

/*
 * An annotated tag with its target commit filled in as upstream's
 * catfile.GetTag: a tagged commit is read, a tagged tag is peeled until a
 * non-tag (a commit is reported, anything else leaves target_commit NULL).
 * Errors: InvalidArgument "expected tag, got <type>" for a non-tag object,
 * plus gitcommit_read's.
 */
int gitcommit_read_tag(git_repository *repo, const git_oid *oid, const void *name, size_t name_len,
		       Gitaly__Tag **out, struct error *err);
/* gitcommit_read_tag through either kind of handle. */
int gitcommit_read_tag_h(const struct repo_handle *h, const char *oid, const void *name,
			 size_t name_len, Gitaly__Tag **out, struct error *err);

/*
 * Upstream's TrimTagMessage: trailing newlines removed, message_size set to
 * the trimmed length, message cut to GITCOMMIT_MAX_MESSAGE.
 */
void gitcommit_trim_tag_message(Gitaly__Tag *tag);

/*
 * Splits tag content at its signature block (the first "-----BEGIN" not at
 * offset 0): *sig_off is where it starts (the text before it is the signed
 * payload), *sig_len its length without one trailing newline. Returns 0
 * when there is no signature (*sig_off = len).
 */
int gitcommit_tag_signature(const char *content, size_t len, size_t *sig_off, size_t *sig_len);

/* The signature type of a signature's first line. */
Gitaly__SignatureType gitcommit_signature_type(const char *line, size_t len);

/*
 * Upstream's trailerparser: text is git's
 * %(trailers:unfold,separator=%x00) output; every "key: value" item
 * becomes a trailer (value trimmed), at most 64, stopping at a key over 128
 * or a value over 512 bytes. Appends to c->trailers.
 */
void gitcommit_parse_trailers(const char *text, size_t len, Gitaly__GitCommit *c);

/*
 * Fills c->trailers as upstream's GetCommitWithTrailers: runs
 * `git show --format=%(trailers:unfold,separator=%x00) --no-patch <id>` in
 * repo_path (object_dir / alternates: the request's quarantine, or NULL).
 * Errors: Internal when git cannot run or fails.
 */
int gitcommit_add_trailers(const char *repo_path, const char *object_dir, const char *alternates,
			   Gitaly__GitCommit *c, struct error *err);

void gitcommit_free(Gitaly__GitCommit *c);
void gitcommit_tag_free(Gitaly__Tag *t);

#endif
