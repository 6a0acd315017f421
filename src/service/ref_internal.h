/*
 * Private glue of RefService: the per-request context (resolved path,
 * quarantine environment, libgit2 handle), the for-each-ref line reader,
 * upstream's ref pagination, and the handlers the method table lists.
 */
#ifndef SERVICE_REF_INTERNAL_H
#define SERVICE_REF_INTERNAL_H

#include <git2.h>
#include <stddef.h>

#include "base/error.h"
#include "base/strbuf.h"
#include "git/repo_cache.h"
#include "rpc/call.h"
#include "service/util.h"
#include "shared.pb-c.h"

/* Upstream's lines.ItemsPerMessage and chunk.maxMessageSize. */
#define REF_ITEMS_PER_MESSAGE 20
#define REF_CHUNK_BYTES ((size_t)1024 * 1024)

struct ref_ctx {
	struct rpc_call *call;
	char *path;
	struct service_git_env genv;
	struct repo_handle h; /* from repo_cache, empty until first use */
	git_repository *repo; /* h.repo once checked out (SHA-1) */
};

/*
 * Validates the request's repository with the locator (codes and messages
 * unchanged) and fills ctx. Release with ref_ctx_release even on failure.
 */
int ref_ctx_init(struct ref_ctx *ctx, struct rpc_call *call, const Gitaly__Repository *repo,
		 struct error *err);
/* The cached libgit2 handle (checked out on first use). Borrowed. */
int ref_ctx_repo(struct ref_ctx *ctx, git_repository **out, struct error *err);
void ref_ctx_release(struct ref_ctx *ctx);
/* The cached handle of either object format (h.cf set for SHA-256). */
int ref_ctx_handle(struct ref_ctx *ctx, const struct repo_handle **out, struct error *err);
/* True for a SHA-256 repository (checks the handle out). */
int ref_ctx_is_sha256(struct ref_ctx *ctx, int *out, struct error *err);
/*
 * The object id a full ref name points at (not peeled), as hex: 1 found,
 * 0 no such ref, -1 error. oid must hold 65 bytes.
 */
int ref_ctx_resolve(struct ref_ctx *ctx, const char *name, char *oid, struct error *err);
/* The target of a symbolic HEAD (malloc'd), NULL when detached or absent. */
int ref_ctx_head_target(struct ref_ctx *ctx, char **out, struct error *err);
/* The first ref (by name) under prefix ("refs/heads/"), malloc'd or NULL. */
int ref_ctx_first_ref(struct ref_ctx *ctx, const char *prefix, char **out, struct error *err);

/* A git command in the request's repository with its object directories. */
struct git_cmd *ref_ctx_git(struct ref_ctx *ctx, const char *subcommand);

/*
 * Called per for-each-ref output line (without the newline; fields are
 * NUL-separated when the format uses %00). Returns 0 to go on, 1 to stop
 * reading (git is then killed and its status ignored), -1 with err set.
 */
typedef int (*ref_line_fn)(void *arg, char *line, size_t len, struct error *err);

/*
 * Runs cmd (built by the caller: git for-each-ref / rev-list ...) and feeds
 * its stdout line by line to fn. A non-zero exit after a complete read is
 * Internal "listing failed with exit code N" (*exit_code receives it when
 * exit_code is non-NULL and then no error is set: the caller words it).
 */
int ref_run_lines(struct git_cmd *cmd, ref_line_fn fn, void *arg, int *exit_code,
		  struct error *err);

/* Upstream's ref pagination (internal/gitaly/service/ref/util.go). */
struct ref_pager {
	long limit;        /* INT32_MAX when unlimited */
	const char *token; /* full ref name, or NULL */
	int past;          /* past the token (or no token) */
	long taken;
};

void ref_pager_init(struct ref_pager *p, const Gitaly__PaginationParameter *params);
/* For each candidate in order: -1 stop (limit reached), 0 skip, 1 take. */
int ref_pager_step(struct ref_pager *p, const char *refname, size_t len);
/* After the walk: InvalidArgument "could not find page token" when a
 * token was given and never seen. */
int ref_pager_finish(const struct ref_pager *p, struct error *err);

/* Upstream's ValidateHex error message for oid (sha1 or sha256). */
int ref_validate_hex(const char *oid, const char *object_format, const char *prefix,
		     struct error *err);

/* True for len lowercase hex digits making a full id (40 or 64). */
int ref_is_hex_oid(const char *s, size_t len);

/* Appends a detail message to err (ignores allocation failure). */
void ref_add_detail(struct error *err, const ProtobufCMessage *msg);

/*
 * Upstream's GetDefaultBranch (head_only: HeadReference): HEAD's symbolic
 * target when it resolves, else refs/heads/main, refs/heads/master, else
 * the first branch by name; *out NULL when there is none. A detached or
 * missing HEAD is Internal "exit status 128" (as git symbolic-ref fails).
 */
int ref_default_branch(struct ref_ctx *ctx, int head_only, char **out, struct error *err);

/* Handlers (ref.c lists them). */
int ref_find_default_branch_name_rpc(struct rpc_call *call, struct error *err);
int ref_exists_rpc(struct rpc_call *call, struct error *err);
int ref_find_branch_rpc(struct rpc_call *call, struct error *err);
int ref_find_local_branches_rpc(struct rpc_call *call, struct error *err);
int ref_find_all_branches_rpc(struct rpc_call *call, struct error *err);
int ref_find_all_remote_branches_rpc(struct rpc_call *call, struct error *err);
int ref_list_refs_rpc(struct rpc_call *call, struct error *err);
int ref_find_refs_by_oid_rpc(struct rpc_call *call, struct error *err);
int ref_list_branch_names_containing_rpc(struct rpc_call *call, struct error *err);
int ref_list_tag_names_containing_rpc(struct rpc_call *call, struct error *err);
int ref_find_all_tags_rpc(struct rpc_call *call, struct error *err);
int ref_find_tag_rpc(struct rpc_call *call, struct error *err);
int ref_get_tag_signatures_rpc(struct rpc_call *call, struct error *err);
int ref_get_tag_messages_rpc(struct rpc_call *call, struct error *err);
int ref_update_references_rpc(struct rpc_call *call, struct error *err);
int ref_delete_refs_rpc(struct rpc_call *call, struct error *err);

#endif
