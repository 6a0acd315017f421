/*
 * Ancestry and counting questions, answered by git itself as upstream
 * does (`git merge-base --is-ancestor`, `git rev-list --count`): git's
 * revision syntax, date filters and pathspec semantics are the product.
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "git/command.h"
#include "git/revision.h"
#include "service/commit_internal.h"

int commit_is_ancestor_rpc(struct rpc_call *call, struct error *err)
{
	const Gitaly__CommitIsAncestorRequest *req =
		(const Gitaly__CommitIsAncestorRequest *)rpc_call_request(call);
	Gitaly__CommitIsAncestorResponse resp = GITALY__COMMIT_IS_ANCESTOR_RESPONSE__INIT;
	struct commit_repo r;
	struct git_cmd *cmd;
	struct git_result res;
	int ret = -1;

	if (commit_repo_locate(call, req->repository, &r, err) < 0)
		goto out;
	if (!req->ancestor_id || !*req->ancestor_id) {
		error_set(err, STATUS_INVALID_ARGUMENT, "empty ancestor sha");
		goto out;
	}
	if (!req->child_id || !*req->child_id) {
		error_set(err, STATUS_INVALID_ARGUMENT, "empty child sha");
		goto out;
	}
	cmd = commit_repo_git(&r, "merge-base");
	git_cmd_flag(cmd, "--is-ancestor");
	git_cmd_arg(cmd, req->ancestor_id);
	git_cmd_arg(cmd, req->child_id);
	if (git_cmd_run(cmd, NULL, 0, NULL, NULL, &res, err) < 0) {
		err->code = STATUS_INTERNAL;
		goto out;
	}
	/* Any failure (unknown object included) means "not an ancestor". */
	resp.value = res.exit_code == 0;
	ret = rpc_call_send(call, &resp.base, err);
out:
	commit_repo_release(&r);
	return ret;
}

/* Go's time.Unix(ts, 0).Format(time.RFC3339), in UTC. */
static void rfc3339(int64_t ts, char *buf, size_t len)
{
	time_t t = (time_t)ts;
	struct tm tm;

	if (!gmtime_r(&t, &tm)) {
		snprintf(buf, len, "@%" PRId64, ts);
		return;
	}
	strftime(buf, len, "%Y-%m-%dT%H:%M:%SZ", &tm);
}

int commit_count_rpc(struct rpc_call *call, struct error *err)
{
	const Gitaly__CountCommitsRequest *req =
		(const Gitaly__CountCommitsRequest *)rpc_call_request(call);
	Gitaly__CountCommitsResponse resp = GITALY__COUNT_COMMITS_RESPONSE__INIT;
	struct commit_repo r;
	struct git_cmd *cmd = NULL;
	struct git_result res;
	struct strbuf out;
	char buf[64], flag[96];
	char *rev = NULL, *path = NULL;
	int ret = -1;

	strbuf_init(&out, 4096);
	if (commit_repo_locate(call, req->repository, &r, err) < 0)
		goto out;
	if (revision_validate((const char *)req->revision.data, req->revision.len,
			      REVISION_ALLOW_EMPTY, err) < 0)
		goto out;
	if (req->revision.len == 0 && !req->all) {
		error_set(err, STATUS_INVALID_ARGUMENT, "empty Revision and false All");
		goto out;
	}
	cmd = commit_repo_git(&r, "rev-list");
	git_cmd_flag(cmd, "--count");
	if (req->all) {
		git_cmd_flag(cmd, "--all");
	} else {
		rev = commit_bytes_dup(&req->revision);
		git_cmd_arg(cmd, rev);
	}
	if (req->before) {
		rfc3339(req->before->seconds, buf, sizeof(buf));
		snprintf(flag, sizeof(flag), "--before=%s", buf);
		git_cmd_flag(cmd, flag);
	}
	if (req->after) {
		rfc3339(req->after->seconds, buf, sizeof(buf));
		snprintf(flag, sizeof(flag), "--after=%s", buf);
		git_cmd_flag(cmd, flag);
	}
	if (req->max_count) {
		snprintf(flag, sizeof(flag), "--max-count=%d", req->max_count);
		git_cmd_flag(cmd, flag);
	}
	if (req->first_parent)
		git_cmd_flag(cmd, "--first-parent");
	if (req->path.len) {
		path = commit_bytes_dup(&req->path);
		git_cmd_path(cmd, path);
	}
	if (req->global_options && req->global_options->literal_pathspecs)
		git_cmd_setenv(cmd, "GIT_LITERAL_PATHSPECS", "1");
	if (git_cmd_run(cmd, NULL, 0, &out, NULL, &res, err) < 0) {
		err->code = STATUS_INTERNAL;
		error_prefix(err, "cmd");
		goto out;
	}
	/* As upstream, a failing rev-list (unknown revision) counts zero. */
	if (res.exit_code == 0) {
		char *end;
		long long n;

		strbuf_rtrim(&out);
		n = strtoll(out.buf ? out.buf : "", &end, 10);
		if (!out.len || *end) {
			error_set(err, STATUS_INTERNAL, "parse count: invalid syntax");
			goto out;
		}
		resp.count = (int32_t)n;
	}
	ret = rpc_call_send(call, &resp.base, err);
out:
	strbuf_release(&out);
	free(rev);
	free(path);
	commit_repo_release(&r);
	return ret;
}

int commit_count_diverging_rpc(struct rpc_call *call, struct error *err)
{
	const Gitaly__CountDivergingCommitsRequest *req =
		(const Gitaly__CountDivergingCommitsRequest *)rpc_call_request(call);
	Gitaly__CountDivergingCommitsResponse resp = GITALY__COUNT_DIVERGING_COMMITS_RESPONSE__INIT;
	struct commit_repo r = { 0 };
	struct git_cmd *cmd;
	struct git_result res;
	struct strbuf out, range;
	long long left, right;
	char flag[64];
	int ret = -1;

	strbuf_init(&out, 4096);
	strbuf_init(&range, 0);
	if (req->from.len == 0 || req->to.len == 0) {
		error_set(err, STATUS_INVALID_ARGUMENT, "from and to are both required");
		goto out;
	}
	if (commit_repo_locate(call, req->repository, &r, err) < 0)
		goto out;
	if (strbuf_add(&range, req->from.data, req->from.len) < 0 || strbuf_adds(&range, "...") < 0 ||
	    strbuf_add(&range, req->to.data, req->to.len) < 0) {
		error_set(err, STATUS_INTERNAL, "out of memory");
		goto out;
	}
	cmd = commit_repo_git(&r, "rev-list");
	git_cmd_flag(cmd, "--count");
	git_cmd_flag(cmd, "--left-right");
	if (req->max_count) {
		snprintf(flag, sizeof(flag), "--max-count=%d", req->max_count);
		git_cmd_flag(cmd, flag);
	}
	git_cmd_arg(cmd, range.buf);
	if (git_cmd_run(cmd, NULL, 0, &out, NULL, &res, err) < 0) {
		err->code = STATUS_INTERNAL;
		error_prefix(err, "git rev-list cmd");
		goto out;
	}
	if (res.exit_code != 0) {
		error_set(err, STATUS_INTERNAL, "gi rev-list error: exit status %d", res.exit_code);
		goto out;
	}
	if (sscanf(out.buf ? out.buf : "", "%lld %lld", &left, &right) != 2) {
		error_set(err, STATUS_INTERNAL, "invalid output from git rev-list --left-right: %s",
			  out.buf ? out.buf : "");
		goto out;
	}
	resp.left_count = (int32_t)left;
	resp.right_count = (int32_t)right;
	ret = rpc_call_send(call, &resp.base, err);
out:
	strbuf_release(&out);
	strbuf_release(&range);
	commit_repo_release(&r);
	return ret;
}
