/*
 * Private glue of the DiffService files: the handlers (one file per
 * concern) and the validation and error helpers they share.
 */
#ifndef SERVICE_DIFF_INTERNAL_H
#define SERVICE_DIFF_INTERNAL_H

#include "base/error.h"
#include "git/command.h"
#include "rpc/call.h"
#include "service/service.h"
#include "shared.pb-c.h"

/* Upstream's message size threshold for CommitDiff and CommitDelta. */
#define DIFF_MSG_SIZE_THRESHOLD 5120

/*
 * Upstream's validateRequest: the repository (locator codes and messages),
 * then InvalidArgument "empty LeftCommitId" / "empty RightCommitId".
 * *path is malloc'd on success.
 */
int diff_validate_request(const struct service_deps *deps, const Gitaly__Repository *repo,
			  const char *left, const char *right, char **path, struct error *err);

/*
 * Upstream's positional argument rule for git commands: Internal
 * "<prefix>: positional arg \"-x\" cannot start with dash '-': invalid
 * argument" when arg starts with '-'.
 */
int diff_check_positional(const char *arg, const char *prefix, struct error *err);

/* Sets err to Go's exec error text for a failed git ("exit status 128",
 * "signal: killed"), prefixed with prefix when not NULL. Returns -1. */
int diff_exit_error(const struct git_result *res, int code, const char *prefix,
		    struct error *err);

/* Whether a git run succeeded. */
static inline int diff_exit_ok(const struct git_result *res)
{
	return res->exit_code == 0 && !res->signal && !res->timed_out;
}

struct service_git_env;

/*
 * service_git_new (repo_path may be NULL for commands outside a
 * repository) with a timeout at the call's deadline, so git does not
 * outlive a call nobody waits for anymore.
 */
struct git_cmd *diff_git_new(struct rpc_call *call, const char *repo_path,
			     const struct service_git_env *genv, const char *subcommand);

int diff_commit_diff_rpc(struct rpc_call *call, struct error *err);
int diff_commit_delta_rpc(struct rpc_call *call, struct error *err);
int diff_raw_diff_rpc(struct rpc_call *call, struct error *err);
int diff_raw_patch_rpc(struct rpc_call *call, struct error *err);
int diff_stats_rpc(struct rpc_call *call, struct error *err);
int diff_find_changed_paths_rpc(struct rpc_call *call, struct error *err);
int diff_patch_id_rpc(struct rpc_call *call, struct error *err);

#endif
