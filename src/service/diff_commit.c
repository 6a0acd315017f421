/*
 * CommitDiff and CommitDelta: `git diff --raw [--patch]` between two
 * revisions, parsed per file (git/diffparse). CommitDiff applies the
 * request's limits and sends each patch in pieces of at most 5 KiB, the
 * first carrying the file's metadata and the last end_of_patch, as
 * upstream; CommitDelta sends the raw entries in batches of about 5 KiB.
 */
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "diff.pb-c.h"
#include "git/diffparse.h"
#include "service/diff_internal.h"
#include "service/util.h"

typedef int (*diff_file_fn)(struct rpc_call *call, const struct diff_file *f, void *ctx,
			    struct error *err);

/* Adds the request's paths as pathspecs (NUL bytes cannot reach argv). */
static int add_paths(struct git_cmd *cmd, const ProtobufCBinaryData *paths, size_t n,
		     struct error *err)
{
	for (size_t i = 0; i < n; i++) {
		char *p;

		if (service_has_nul(paths[i].data, paths[i].len))
			return error_set(err, STATUS_INTERNAL, "cmd: path contains a NUL byte");
		p = strndup((const char *)paths[i].data, paths[i].len);
		if (!p)
			return error_set(err, STATUS_INTERNAL, "out of memory");
		git_cmd_path(cmd, p);
		free(p);
	}
	return 0;
}

/*
 * Upstream's eachDiff: runs cmd, hands every parsed file to fn. Parse
 * failures are Internal "parse failure: ...", a failing git is
 * FailedPrecondition with its exit status. Frees cmd.
 */
static int each_diff(struct rpc_call *call, struct git_cmd *cmd, const struct diff_limits *limits,
		     diff_file_fn fn, void *ctx, struct error *err)
{
	struct diff_reader rd;
	struct diffparse *parser = NULL;
	struct git_result res;
	int out_fd = -1, ret = -1, started = 0, stopped = 0;
	pid_t pid = -1;

	diff_reader_init_fd(&rd, -1);
	git_cmd_config(cmd, "diff.noprefix", "false");
	if (git_cmd_start(cmd, NULL, &out_fd, NULL, &pid, err) < 0) {
		error_prefix(err, "cmd");
		err->code = STATUS_INTERNAL;
		goto out;
	}
	started = 1;
	diff_reader_init_fd(&rd, out_fd);
	if (diffparse_new(&rd, limits, &parser, err) < 0) {
		error_prefix(err, "parse failure");
		goto out;
	}
	for (;;) {
		const struct diff_file *f;
		int got = diffparse_next(parser, &f, err);

		if (got < 0) {
			error_prefix(err, "parse failure");
			goto out;
		}
		if (!got)
			break;
		if (fn(call, f, ctx, err) < 0)
			goto out;
	}
	/* Past the overflow marker nothing more is sent: rather than let git
	 * produce the rest of a huge diff for nothing (upstream reads it all),
	 * stop it; its exit status then means nothing. */
	stopped = diffparse_overflowed(parser);
	ret = 0;
out:
	diffparse_free(parser);
	diff_reader_release(&rd);
	if (out_fd >= 0)
		close(out_fd);
	if (started) {
		if (ret < 0 || stopped)
			git_cmd_kill(pid);
		git_cmd_wait(pid, &res);
		if (ret == 0 && !stopped && !diff_exit_ok(&res))
			ret = diff_exit_error(&res, STATUS_FAILED_PRECONDITION, NULL, err);
	}
	return ret;
}

static int send_diff_file(struct rpc_call *call, const struct diff_file *f, void *ctx,
			  struct error *err)
{
	Gitaly__CommitDiffResponse resp = GITALY__COMMIT_DIFF_RESPONSE__INIT;
	const uint8_t *patch = (const uint8_t *)f->patch.buf;
	size_t left = f->patch.len;

	(void)ctx;
	resp.from_path.data = (uint8_t *)f->from_path.buf;
	resp.from_path.len = f->from_path.len;
	resp.to_path.data = (uint8_t *)f->to_path.buf;
	resp.to_path.len = f->to_path.len;
	resp.from_id = (char *)f->from_id;
	resp.to_id = (char *)f->to_id;
	resp.old_mode = f->old_mode;
	resp.new_mode = f->new_mode;
	resp.binary = f->binary;
	resp.overflow_marker = f->overflow_marker;
	resp.collapsed = f->collapsed;
	resp.too_large = f->too_large;
	do {
		size_t n = left > DIFF_MSG_SIZE_THRESHOLD ? DIFF_MSG_SIZE_THRESHOLD : left;

		resp.raw_patch_data.data = (uint8_t *)patch;
		resp.raw_patch_data.len = n;
		resp.end_of_patch = n == left;
		if (rpc_call_send(call, &resp.base, err) < 0) {
			error_prefix(err, "send");
			err->code = STATUS_ABORTED;
			return -1;
		}
		patch += n;
		left -= n;
		/* Later pieces carry only the patch bytes. */
		gitaly__commit_diff_response__init(&resp);
	} while (left > 0);
	return 0;
}

int diff_commit_diff_rpc(struct rpc_call *call, struct error *err)
{
	const struct service_deps *deps = rpc_call_service_data(call);
	const Gitaly__CommitDiffRequest *req = (const Gitaly__CommitDiffRequest *)rpc_call_request(call);
	struct service_git_env genv = { 0 };
	struct diff_limits limits = { 0 };
	struct diff_ext_limit *ext = NULL;
	struct git_cmd *cmd = NULL;
	char *path = NULL;
	int ret = -1;

	if (diff_validate_request(deps, req->repository, req->left_commit_id,
				  req->right_commit_id, &path, err) < 0)
		goto out;
	if (diff_check_positional(req->left_commit_id, "cmd", err) < 0 ||
	    diff_check_positional(req->right_commit_id, "cmd", err) < 0)
		goto out;
	if (service_git_env_init(&genv, path, req->repository, err) < 0)
		goto out;
	cmd = diff_git_new(call, path, &genv, "diff");
	git_cmd_flag(cmd, "--patch");
	git_cmd_flag(cmd, "--raw");
	git_cmd_flag(cmd, "--no-abbrev");
	git_cmd_flag(cmd, "--full-index");
	git_cmd_flag(cmd, "--find-renames=30%");
	git_cmd_flag(cmd, "--src-prefix=a/");
	git_cmd_flag(cmd, "--dst-prefix=b/");
	if (req->whitespace_changes ==
	    GITALY__COMMIT_DIFF_REQUEST__WHITESPACE_CHANGES__WHITESPACE_CHANGES_IGNORE_ALL)
		git_cmd_flag(cmd, "--ignore-all-space");
	else if (req->whitespace_changes ==
		 GITALY__COMMIT_DIFF_REQUEST__WHITESPACE_CHANGES__WHITESPACE_CHANGES_IGNORE)
		git_cmd_flag(cmd, "--ignore-space-change");
	if (req->diff_mode == GITALY__COMMIT_DIFF_REQUEST__DIFF_MODE__WORDDIFF)
		git_cmd_flag(cmd, "--word-diff=porcelain");
	git_cmd_arg(cmd, req->left_commit_id);
	git_cmd_arg(cmd, req->right_commit_id);
	if (add_paths(cmd, req->paths, req->n_paths, err) < 0)
		goto out;

	if (req->enforce_limits) {
		limits.enforce_limits = 1;
		limits.max_files = req->max_files;
		limits.max_lines = req->max_lines;
		limits.max_bytes = req->max_bytes;
		limits.max_patch_bytes = req->max_patch_bytes;
		if (req->n_max_patch_bytes_for_file_extension) {
			ext = calloc(req->n_max_patch_bytes_for_file_extension, sizeof(*ext));
			if (!ext) {
				error_set(err, STATUS_INTERNAL, "out of memory");
				goto out;
			}
			/* A repeated key is a map entry overwritten: the last one wins. */
			for (size_t i = 0; i < req->n_max_patch_bytes_for_file_extension; i++) {
				size_t k = req->n_max_patch_bytes_for_file_extension - 1 - i;

				ext[i].ext = req->max_patch_bytes_for_file_extension[k]->key;
				ext[i].limit = req->max_patch_bytes_for_file_extension[k]->value;
			}
			limits.ext = ext;
			limits.n_ext = req->n_max_patch_bytes_for_file_extension;
		}
	}
	limits.collapse_diffs = req->collapse_diffs;
	limits.collect_all_paths = req->collect_all_paths;
	limits.safe_max_files = req->safe_max_files;
	limits.safe_max_lines = req->safe_max_lines;
	limits.safe_max_bytes = req->safe_max_bytes;

	ret = each_diff(call, cmd, &limits, send_diff_file, NULL, err);
	cmd = NULL;
out:
	git_cmd_free(cmd);
	free(ext);
	service_git_env_release(&genv);
	free(path);
	return ret;
}

/* CommitDelta's batch: deltas own copies of the paths and ids. */
struct delta_batch {
	Gitaly__CommitDelta *items;
	Gitaly__CommitDelta **ptrs;
	size_t n, alloc;
	size_t size;
};

static void batch_clear(struct delta_batch *b)
{
	for (size_t i = 0; i < b->n; i++) {
		free(b->items[i].from_path.data);
		free(b->items[i].to_path.data);
		free(b->items[i].from_id);
		free(b->items[i].to_id);
	}
	b->n = 0;
	b->size = 0;
}

static int batch_flush(struct rpc_call *call, struct delta_batch *b, struct error *err)
{
	Gitaly__CommitDeltaResponse resp = GITALY__COMMIT_DELTA_RESPONSE__INIT;
	int ret = 0;

	if (!b->n)
		return 0;
	for (size_t i = 0; i < b->n; i++)
		b->ptrs[i] = &b->items[i];
	resp.n_deltas = b->n;
	resp.deltas = b->ptrs;
	if (rpc_call_send(call, &resp.base, err) < 0) {
		error_prefix(err, "send");
		err->code = STATUS_ABORTED;
		ret = -1;
	}
	batch_clear(b);
	return ret;
}

static uint8_t *dup_bytes(const char *s, size_t len)
{
	uint8_t *p = malloc(len + 1);

	if (p) {
		memcpy(p, s, len);
		p[len] = 0;
	}
	return p;
}

static int add_delta(struct rpc_call *call, const struct diff_file *f, void *ctx,
		     struct error *err)
{
	struct delta_batch *b = ctx;
	Gitaly__CommitDelta *d;

	if (b->n == b->alloc) {
		size_t alloc = b->alloc ? b->alloc * 2 : 32;
		Gitaly__CommitDelta *items = realloc(b->items, alloc * sizeof(*items));
		Gitaly__CommitDelta **ptrs;

		if (!items)
			return error_set(err, STATUS_INTERNAL, "out of memory");
		b->items = items;
		ptrs = realloc(b->ptrs, alloc * sizeof(*ptrs));
		if (!ptrs)
			return error_set(err, STATUS_INTERNAL, "out of memory");
		b->ptrs = ptrs;
		b->alloc = alloc;
	}
	d = &b->items[b->n];
	gitaly__commit_delta__init(d);
	d->from_path.data = dup_bytes(f->from_path.buf ? f->from_path.buf : "", f->from_path.len);
	d->from_path.len = f->from_path.len;
	d->to_path.data = dup_bytes(f->to_path.buf ? f->to_path.buf : "", f->to_path.len);
	d->to_path.len = f->to_path.len;
	d->from_id = strdup(f->from_id);
	d->to_id = strdup(f->to_id);
	d->old_mode = f->old_mode;
	d->new_mode = f->new_mode;
	b->n++;
	if (!d->from_path.data || !d->to_path.data || !d->from_id || !d->to_id)
		return error_set(err, STATUS_INTERNAL, "out of memory");
	/* Upstream's estimate: ids, two 4-byte modes, paths. */
	b->size += strlen(f->from_id) + strlen(f->to_id) + 8 + f->from_path.len + f->to_path.len;
	if (b->size > DIFF_MSG_SIZE_THRESHOLD)
		return batch_flush(call, b, err);
	return 0;
}

int diff_commit_delta_rpc(struct rpc_call *call, struct error *err)
{
	const struct service_deps *deps = rpc_call_service_data(call);
	const Gitaly__CommitDeltaRequest *req = (const Gitaly__CommitDeltaRequest *)rpc_call_request(call);
	struct service_git_env genv = { 0 };
	struct delta_batch batch = { 0 };
	struct git_cmd *cmd = NULL;
	char *path = NULL;
	int ret = -1;

	if (diff_validate_request(deps, req->repository, req->left_commit_id,
				  req->right_commit_id, &path, err) < 0)
		goto out;
	if (diff_check_positional(req->left_commit_id, "cmd", err) < 0 ||
	    diff_check_positional(req->right_commit_id, "cmd", err) < 0)
		goto out;
	if (service_git_env_init(&genv, path, req->repository, err) < 0)
		goto out;
	cmd = diff_git_new(call, path, &genv, "diff");
	git_cmd_flag(cmd, "--raw");
	git_cmd_flag(cmd, "--no-abbrev");
	git_cmd_flag(cmd, "--full-index");
	git_cmd_flag(cmd, "--find-renames");
	git_cmd_arg(cmd, req->left_commit_id);
	git_cmd_arg(cmd, req->right_commit_id);
	if (add_paths(cmd, req->paths, req->n_paths, err) < 0)
		goto out;
	ret = each_diff(call, cmd, NULL, add_delta, &batch, err);
	cmd = NULL;
	if (ret == 0)
		ret = batch_flush(call, &batch, err);
out:
	git_cmd_free(cmd);
	batch_clear(&batch);
	free(batch.items);
	free(batch.ptrs);
	service_git_env_release(&genv);
	free(path);
	return ret;
}
