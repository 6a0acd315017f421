/*
 * DiffStats: `git diff --numstat -z` between two revisions, sent in
 * batches of 1000 entries as upstream (binary files count 0/0, renames
 * carry old_path).
 */
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "diff.pb-c.h"
#include "git/diffparse.h"
#include "service/diff_internal.h"
#include "service/util.h"

#define NUMSTAT_BATCH 1000

struct stats_batch {
	Gitaly__DiffStats items[NUMSTAT_BATCH];
	Gitaly__DiffStats *ptrs[NUMSTAT_BATCH];
	size_t n;
};

static void stats_clear(struct stats_batch *b)
{
	for (size_t i = 0; i < b->n; i++) {
		free(b->items[i].path.data);
		free(b->items[i].old_path.data);
	}
	b->n = 0;
}

static int stats_flush(struct rpc_call *call, struct stats_batch *b, struct error *err)
{
	Gitaly__DiffStatsResponse resp = GITALY__DIFF_STATS_RESPONSE__INIT;
	int ret = 0;

	if (!b->n)
		return 0;
	for (size_t i = 0; i < b->n; i++)
		b->ptrs[i] = &b->items[i];
	resp.n_stats = b->n;
	resp.stats = b->ptrs;
	if (rpc_call_send(call, &resp.base, err) < 0) {
		error_prefix(err, "send");
		err->code = STATUS_ABORTED;
		ret = -1;
	}
	stats_clear(b);
	return ret;
}

static uint8_t *copy_sb(const struct strbuf *sb)
{
	uint8_t *p = malloc(sb->len + 1);

	if (p && sb->len)
		memcpy(p, sb->buf, sb->len);
	return p;
}

int diff_stats_rpc(struct rpc_call *call, struct error *err)
{
	const struct service_deps *deps = rpc_call_service_data(call);
	const Gitaly__DiffStatsRequest *req = (const Gitaly__DiffStatsRequest *)rpc_call_request(call);
	struct service_git_env genv = { 0 };
	struct stats_batch *batch = NULL;
	struct diff_numstat ns;
	struct diff_reader rd;
	struct git_result res;
	struct git_cmd *cmd;
	char *path = NULL;
	int out_fd = -1, ret = -1, started = 0;
	pid_t pid = -1;

	diff_numstat_init(&ns);
	diff_reader_init_fd(&rd, -1);
	if (diff_validate_request(deps, req->repository, req->left_commit_id,
				  req->right_commit_id, &path, err) < 0)
		goto out;
	if (diff_check_positional(req->left_commit_id, "cmd", err) < 0 ||
	    diff_check_positional(req->right_commit_id, "cmd", err) < 0)
		goto out;
	if (service_git_env_init(&genv, path, req->repository, err) < 0)
		goto out;
	batch = calloc(1, sizeof(*batch));
	if (!batch) {
		error_set(err, STATUS_INTERNAL, "out of memory");
		goto out;
	}
	cmd = diff_git_new(call, path, &genv, "diff");
	git_cmd_flag(cmd, "--numstat");
	git_cmd_flag(cmd, "-z");
	git_cmd_arg(cmd, req->left_commit_id);
	git_cmd_arg(cmd, req->right_commit_id);
	if (git_cmd_start(cmd, NULL, &out_fd, NULL, &pid, err) < 0) {
		error_prefix(err, "cmd");
		err->code = STATUS_INTERNAL;
		goto out;
	}
	started = 1;
	diff_reader_init_fd(&rd, out_fd);
	for (;;) {
		Gitaly__DiffStats *s;
		int got = diffparse_numstat_next(&rd, &ns, err);

		if (got < 0)
			goto out;
		if (!got)
			break;
		s = &batch->items[batch->n];
		gitaly__diff_stats__init(s);
		s->additions = ns.additions;
		s->deletions = ns.deletions;
		s->path.data = copy_sb(&ns.path);
		s->path.len = ns.path.len;
		s->old_path.data = copy_sb(&ns.old_path);
		s->old_path.len = ns.old_path.len;
		batch->n++;
		if (!s->path.data || !s->old_path.data) {
			error_set(err, STATUS_INTERNAL, "out of memory");
			goto out;
		}
		if (batch->n == NUMSTAT_BATCH && stats_flush(call, batch, err) < 0)
			goto out;
	}
	ret = 0;
out:
	diff_reader_release(&rd);
	if (out_fd >= 0)
		close(out_fd);
	if (started) {
		if (ret < 0)
			git_cmd_kill(pid);
		git_cmd_wait(pid, &res);
		if (ret == 0 && !diff_exit_ok(&res))
			ret = diff_exit_error(&res, STATUS_FAILED_PRECONDITION, NULL, err);
	}
	if (ret == 0 && batch)
		ret = stats_flush(call, batch, err);
	if (batch)
		stats_clear(batch);
	free(batch);
	diff_numstat_release(&ns);
	service_git_env_release(&genv);
	free(path);
	return ret;
}
