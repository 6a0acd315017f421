/*
 * gitaly.DiffService: the method table and the helpers the handlers share
 * (request validation as upstream's validateRequest, upstream's rule on
 * positional git arguments, Go-shaped exit errors).
 */
#include "service/diff.h"

#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "diff.pb-c.h"
#include "service/diff_internal.h"
#include "service/util.h"

#define M(name, type, req, resp, fn)                                                           \
	{ name, type, &gitaly__##req##__descriptor, &gitaly__##resp##__descriptor, fn,         \
	  RPC_OP_ACCESSOR, RPC_SCOPE_REPOSITORY }

static const struct rpc_method diff_methods[] = {
	M("CommitDiff", RPC_SERVER_STREAM, commit_diff_request, commit_diff_response, diff_commit_diff_rpc),
	M("CommitDelta", RPC_SERVER_STREAM, commit_delta_request, commit_delta_response, diff_commit_delta_rpc),
	M("RawDiff", RPC_SERVER_STREAM, raw_diff_request, raw_diff_response, diff_raw_diff_rpc),
	M("RawPatch", RPC_SERVER_STREAM, raw_patch_request, raw_patch_response, diff_raw_patch_rpc),
	M("DiffStats", RPC_SERVER_STREAM, diff_stats_request, diff_stats_response, diff_stats_rpc),
	M("FindChangedPaths", RPC_SERVER_STREAM, find_changed_paths_request, find_changed_paths_response, diff_find_changed_paths_rpc),
	M("GetPatchID", RPC_UNARY, get_patch_idrequest, get_patch_idresponse, diff_patch_id_rpc),
};

const struct rpc_service *diff_service(struct service_deps *deps)
{
	static struct rpc_service svc;

	svc.name = "gitaly.DiffService";
	svc.methods = diff_methods;
	svc.n_methods = sizeof(diff_methods) / sizeof(diff_methods[0]);
	svc.data = deps;
	return &svc;
}

int diff_validate_request(const struct service_deps *deps, const Gitaly__Repository *repo,
			  const char *left, const char *right, char **path, struct error *err)
{
	*path = NULL;
	if (service_repo_path(deps, repo, 0, path, err) < 0)
		return -1;
	if (!left || !*left || !right || !*right) {
		free(*path);
		*path = NULL;
		return error_set(err, STATUS_INVALID_ARGUMENT, "empty %s",
				 !left || !*left ? "LeftCommitId" : "RightCommitId");
	}
	return 0;
}

int diff_check_positional(const char *arg, const char *prefix, struct error *err)
{
	struct strbuf q = STRBUF_INIT;

	if (arg[0] != '-')
		return 0;
	service_go_quote(&q, arg, strlen(arg));
	error_set(err, STATUS_INTERNAL, "%s: positional arg %s cannot start with dash '-': invalid argument",
		  prefix, q.buf ? q.buf : "\"\"");
	strbuf_release(&q);
	return -1;
}

/* Go's names for the signals git may die of. */
static const char *go_signal_name(int sig)
{
	switch (sig) {
	case 1: return "hangup";
	case 2: return "interrupt";
	case 6: return "aborted";
	case 9: return "killed";
	case 11: return "segmentation fault";
	case 13: return "broken pipe";
	case 15: return "terminated";
	default: return "unknown signal";
	}
}

int diff_exit_error(const struct git_result *res, int code, const char *prefix,
		    struct error *err)
{
	if (res->signal || res->timed_out)
		error_set(err, code, "%s%ssignal: %s", prefix ? prefix : "", prefix ? ": " : "",
			  go_signal_name(res->timed_out && !res->signal ? 9 : res->signal));
	else
		error_set(err, code, "%s%sexit status %d", prefix ? prefix : "", prefix ? ": " : "",
			  res->exit_code);
	return -1;
}

struct git_cmd *diff_git_new(struct rpc_call *call, const char *repo_path,
			     const struct service_git_env *genv, const char *subcommand)
{
	struct git_cmd *cmd = repo_path ? service_git_new(repo_path, genv, subcommand)
					: git_cmd_new(NULL, subcommand);
	int64_t deadline = rpc_call_deadline_ms(call);

	if (deadline != INT64_MAX) {
		struct timespec now;
		int64_t left;

		clock_gettime(CLOCK_MONOTONIC, &now);
		left = deadline - ((int64_t)now.tv_sec * 1000 + now.tv_nsec / 1000000);
		git_cmd_timeout(cmd, left > 0 ? left : 1);
	}
	return cmd;
}
