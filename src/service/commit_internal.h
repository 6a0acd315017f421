/*
 * CommitService below the RPC layer: the pieces shared by the commit_*.c
 * handler files. A request's repository is located (locator, quarantine
 * environment) before anything else is validated, then opened in-process
 * through the handle cache (libgit2, or a cat-file reader for SHA-256
 * repositories; the helpers below take either). Commits are encoded into
 * gitaly.GitCommit by the shared encoder (service/gitcommit.h) from their
 * raw object bytes, and list answers go out through upstream's 1 MiB item
 * chunker.
 */
#ifndef SERVICE_COMMIT_INTERNAL_H
#define SERVICE_COMMIT_INTERNAL_H

#include <git2.h>
#include <stddef.h>
#include <stdint.h>

#include "base/error.h"
#include "commit.pb-c.h"
#include "git/odb.h"
#include "rpc/call.h"
#include "service/util.h"

/* Upstream's helper.MaxCommitOrTagMessageSize. */
#define COMMIT_MAX_BODY ((size_t)10 * 1024)
/* Upstream's chunk.maxMessageSize. */
#define COMMIT_CHUNK_MAX ((size_t)1024 * 1024)

/* A located (and optionally opened) repository of a request. */
struct commit_repo {
	char *path;                 /* absolute repository path */
	struct service_git_env env; /* quarantine object directories */
	git_repository *git;        /* NULL until commit_repo_open (and for SHA-256) */
	struct catfile *cf;         /* SHA-256 repositories: cat-file reader */
};

/* Locates the request's repository (locator codes and messages). */
int commit_repo_locate(struct rpc_call *call, const Gitaly__Repository *repo,
		       struct commit_repo *out, struct error *err);
/* Checks out a handle for a located repository (Internal on failure): a
 * libgit2 one (r->git), or a cat-file reader (r->cf) for SHA-256. */
int commit_repo_open(struct commit_repo *r, struct error *err);
/* Releases the path, environment and handle. */
void commit_repo_release(struct commit_repo *r);
/* A git command for the repository, with its quarantine environment. */
struct git_cmd *commit_repo_git(struct commit_repo *r, const char *subcommand);

/* Frees a GitCommit from the readers below (gitcommit_free). */
void commit_gitcommit_free(Gitaly__GitCommit *c);

/*
 * Reads the commit an object id names, parsed as above. Returns 1 with *out
 * set, 0 when the object is missing or not a commit, -1 with err set
 * (Internal) for other failures.
 */
int commit_read_oid(git_repository *repo, const git_oid *oid, Gitaly__GitCommit **out,
		    struct error *err);

/*
 * Resolves a revision the way `git cat-file` resolves "<rev>^{commit}" and
 * reads that commit. Returns 1 found, 0 not found (unknown revision, not a
 * commit, ambiguous), -1 with err set (Internal).
 */
int commit_read_rev(struct commit_repo *r, const char *rev, Gitaly__GitCommit **out,
		    struct error *err);

/*
 * commit_read_rev through the handle's memo of parsed commits
 * (git/objmemo.h): with *owned = 0, *out belongs to the memo and stays
 * valid, unchanged, until the handle is released (commit_repo_release);
 * with *owned = 1 the caller frees it. For answers sent as they are.
 */
int commit_find_rev(struct commit_repo *r, const char *rev, Gitaly__GitCommit **out, int *owned,
		    struct error *err);

/* The repository's handle of either kind, as odb.h takes it (borrowed). */
struct repo_handle commit_repo_handle(const struct commit_repo *r);

/*
 * Resolves rev to an object id (any type) on either handle kind, with
 * commit_resolve's semantics on libgit2. peel: GIT_OBJECT_ANY, or the type
 * to peel to (cat-file's rev^{commit} / rev^{tree}); a peel that fails is
 * "not found". Returns 1 with oid (ODB_OID_MAX bytes) set, 0, or -1.
 */
int commit_resolve_oid(struct commit_repo *r, const char *rev, git_object_t peel, char *oid,
		       struct error *err);
/* commit_resolve_oid (no peeling) that also reports the object's type. */
int commit_resolve_typed(struct commit_repo *r, const char *rev, char *oid, git_object_t *type,
			 struct error *err);

/* Reads the commit rev names (tags peeled): 1 with *out, 0 not found, -1. */
int commit_read_raw_commit(struct commit_repo *r, const char *rev, char *oid,
			   struct odb_object *out, struct error *err);

/* Called per entry in pre-order (a tree, then what is inside it); root is
 * the entry's directory with a trailing slash ("" at the top). Return 0 to
 * go on, 1 to skip this tree's contents, -1 to fail. */
typedef int (*commit_walk_fn)(void *arg, const char *root, const struct odb_tree_entry *e,
			      struct error *err);

/* Recursive walk of tree oid, as git_tree_walk(GIT_TREEWALK_PRE). Returns 1
 * when walked, 0 when oid is no tree, -1 on errors. */
int commit_tree_walk(struct commit_repo *r, const char *oid, commit_walk_fn fn, void *arg,
		     struct error *err);

/* Longest hex object id (SHA-256). */
#define GIT_OID_HEXSZ_MAX 64

/* True for a full lowercase hex id of either format (40 or 64 digits). */
int commit_is_full_hex(const char *s);

/* commit_read_oid for a full hex id, on either kind of handle. */
int commit_read_hex(struct commit_repo *r, const char *hex, Gitaly__GitCommit **out,
		    struct error *err);

/*
 * Resolves a revision to an object (any type). Returns 1 with *out set (a
 * libgit2 object the caller frees), 0 when it names nothing, -1 on failure.
 */
int commit_resolve(git_repository *repo, const char *rev, git_object **out, struct error *err);

/* Adds trailers from `git show --format=%(trailers:unfold,separator=%x00)`. */
int commit_add_trailers(struct commit_repo *r, Gitaly__GitCommit *c, struct error *err);

/*
 * Upstream's chunker: items are appended to a pending response; once the
 * next item would make it reach COMMIT_CHUNK_MAX bytes the pending items
 * are sent first. flush is called with the pending items (borrowed; the
 * chunker frees them with free_item afterwards).
 */
struct commit_chunker {
	struct rpc_call *call;
	int (*flush)(struct commit_chunker *ch, void **items, size_t n, struct error *err);
	void (*free_item)(void *item);
	void *ctx;
	void **items;
	size_t n, alloc;
	size_t size;
	size_t n_flushes;
};

void commit_chunker_init(struct commit_chunker *ch, struct rpc_call *call,
			 int (*flush)(struct commit_chunker *, void **, size_t, struct error *),
			 void (*free_item)(void *), void *ctx);
/* Takes ownership of item (freed even on failure); size is its packed size. */
int commit_chunker_add(struct commit_chunker *ch, void *item, size_t size, struct error *err);
/* Sends what is pending (nothing when empty). */
int commit_chunker_flush(struct commit_chunker *ch, struct error *err);
void commit_chunker_release(struct commit_chunker *ch);

/* A chunker whose items are GitCommits, sent in a response built by build. */
int commit_send_commits(struct commit_chunker *ch, void **items, size_t n, struct error *err);

/* Go's %q of bytes, for messages. malloc'd (never NULL: aborts on OOM). */
char *commit_quote(const char *s, size_t len);

/* NUL-terminated copy of request bytes (NUL bytes are refused by the runtime). */
char *commit_bytes_dup(const ProtobufCBinaryData *b);

/*
 * Runs cmd, feeding each stdout record (split at delim, which is removed)
 * to fn; fn returns 1 to stop early, -1 to fail. A failing git is an
 * Internal error naming what and its stderr, unless ignore_exit (upstream
 * ignores git log failures: unknown revisions list nothing). Frees cmd.
 */
int commit_run_lines(struct git_cmd *cmd, const char *what, int delim, int ignore_exit,
		     int (*fn)(void *ctx, char *line, size_t len, struct error *err), void *ctx,
		     struct error *err);

/* Go's time.Time.String() of a UTC timestamp (git's date parser reads it). */
void commit_go_time(const Google__Protobuf__Timestamp *ts, char *buf, size_t len);

/*
 * Upstream's GetDefaultBranch: HEAD's target when it resolves, else
 * refs/heads/main, refs/heads/master, else the first branch by name.
 * *out is malloc'd, "" when the repository has no branch.
 */
int commit_default_branch(struct commit_repo *r, char **out, struct error *err);

/* Go's path.Clean; malloc'd. */
char *commit_path_clean(const char *s);

/*
 * The last commit touching path from rev (`git log --max-count=1`), *out
 * NULL when none. literal sets GIT_LITERAL_PATHSPECS. A failing git is
 * Internal "logging last commit for path: exit status N".
 */
int commit_last_commit(struct commit_repo *r, const char *rev, const char *path, int literal,
		       Gitaly__GitCommit **out, struct error *err);

/* libgit2's last error message on this thread, never NULL. */
const char *commit_git_error(void);

/* Handlers. */
int commit_find_rpc(struct rpc_call *call, struct error *err);
int commit_list_by_oid_rpc(struct rpc_call *call, struct error *err);
int commit_list_by_ref_name_rpc(struct rpc_call *call, struct error *err);
int commit_is_ancestor_rpc(struct rpc_call *call, struct error *err);
int commit_count_rpc(struct rpc_call *call, struct error *err);
int commit_count_diverging_rpc(struct rpc_call *call, struct error *err);
int commit_tree_entry_rpc(struct rpc_call *call, struct error *err);
int commit_get_tree_entries_rpc(struct rpc_call *call, struct error *err);
int commit_list_rpc(struct rpc_call *call, struct error *err);
int commit_list_all_rpc(struct rpc_call *call, struct error *err);
int commit_check_objects_exist_rpc(struct rpc_call *call, struct error *err);
int commit_messages_rpc(struct rpc_call *call, struct error *err);
int commit_last_for_path_rpc(struct rpc_call *call, struct error *err);
int commit_list_files_rpc(struct rpc_call *call, struct error *err);
int commit_find_all_rpc(struct rpc_call *call, struct error *err);
int commit_by_message_rpc(struct rpc_call *call, struct error *err);
int commit_find_commits_rpc(struct rpc_call *call, struct error *err);
int commit_stats_rpc(struct rpc_call *call, struct error *err);
int commit_raw_blame_rpc(struct rpc_call *call, struct error *err);
int commit_last_for_tree_rpc(struct rpc_call *call, struct error *err);
int commit_signatures_rpc(struct rpc_call *call, struct error *err);
int commit_filter_signed_rpc(struct rpc_call *call, struct error *err);
int commit_languages_rpc(struct rpc_call *call, struct error *err);

#endif
