/*
 * ListLastCommitsForTree: for each entry of a directory (as `git ls-tree
 * --full-name <rev> -- <path>` lists them, trees first), the last commit
 * that touched it, in messages of ten, with offset and limit over the
 * entry list. One git log per entry, as upstream.
 */
#include <stdlib.h>
#include <string.h>

#include "git/command.h"
#include "git/revision.h"
#include "service/commit_internal.h"

#define BATCH 10

struct lt_entry {
	int rank; /* tree 1, blob 2, submodule 3 */
	char *path;
};

struct lt_list {
	struct lt_entry *v;
	size_t n, alloc;
};

static int lt_line(void *ctx, char *rec, size_t len, struct error *err)
{
	struct lt_list *l = ctx;
	char *tab = memchr(rec, '\t', len), *sp;

	if (!tab || !(sp = memchr(rec, ' ', (size_t)(tab - rec)))) {
		error_set(err, STATUS_INTERNAL, "parsing ls-tree output");
		return -1;
	}
	if (l->n == l->alloc) {
		size_t alloc = l->alloc ? l->alloc * 2 : 32;
		struct lt_entry *v = realloc(l->v, alloc * sizeof(*v));

		if (!v)
			abort();
		l->v = v;
		l->alloc = alloc;
	}
	sp++;
	l->v[l->n].rank = !strncmp(sp, "tree ", 5) ? 1 : !strncmp(sp, "blob ", 5) ? 2 : 3;
	l->v[l->n].path = strndup(tab + 1, len - (size_t)(tab + 1 - rec));
	if (!l->v[l->n].path)
		abort();
	l->n++;
	return 0;
}

static void free_items(Gitaly__ListLastCommitsForTreeResponse__CommitForTree **items, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		commit_gitcommit_free(items[i]->commit);
		free(items[i]->path_bytes.data);
		free(items[i]);
	}
}

static int send_batch(struct rpc_call *call, Gitaly__ListLastCommitsForTreeResponse__CommitForTree **items,
		      size_t n, struct error *err)
{
	Gitaly__ListLastCommitsForTreeResponse resp = GITALY__LIST_LAST_COMMITS_FOR_TREE_RESPONSE__INIT;
	int ret;

	if (!n)
		return 0;
	resp.n_commits = n;
	resp.commits = items;
	ret = rpc_call_send(call, &resp.base, err);
	free_items(items, n);
	return ret;
}

int commit_last_for_tree_rpc(struct rpc_call *call, struct error *err)
{
	const Gitaly__ListLastCommitsForTreeRequest *req =
		(const Gitaly__ListLastCommitsForTreeRequest *)rpc_call_request(call);
	Gitaly__ListLastCommitsForTreeResponse__CommitForTree *batch[BATCH];
	struct lt_list list = { 0 }, sorted = { 0 };
	struct commit_repo r;
	struct git_cmd *cmd;
	size_t nb = 0, from, to;
	char *path = NULL;
	int literal = req->global_options && req->global_options->literal_pathspecs;
	int ret = -1;

	if (commit_repo_locate(call, req->repository, &r, err) < 0)
		goto out;
	if (revision_validate(req->revision, req->revision ? strlen(req->revision) : 0, 0, err) < 0)
		goto out;
	if (req->offset < 0) {
		error_set(err, STATUS_INVALID_ARGUMENT, "offset negative");
		goto out;
	}
	if (req->limit < 0) {
		error_set(err, STATUS_INVALID_ARGUMENT, "limit negative");
		goto out;
	}
	if (commit_repo_open(&r, err) < 0)
		goto out;
	path = commit_bytes_dup(&req->path);
	if (!*path || !strcmp(path, "/")) {
		free(path);
		path = strdup(".");
	}
	cmd = commit_repo_git(&r, "ls-tree");
	git_cmd_flag(cmd, "-z");
	git_cmd_flag(cmd, "--full-name");
	git_cmd_arg(cmd, req->revision);
	git_cmd_path(cmd, path);
	if (literal)
		git_cmd_setenv(cmd, "GIT_LITERAL_PATHSPECS", "1");
	if (commit_run_lines(cmd, "ls-tree", '\0', 0, lt_line, &list, err) < 0) {
		err->code = STATUS_INTERNAL;
		goto out;
	}
	/* Stable: trees, then blobs, then submodules. */
	sorted.v = calloc(list.n + 1, sizeof(*sorted.v));
	if (!sorted.v)
		abort();
	for (int rank = 1; rank <= 3; rank++)
		for (size_t i = 0; i < list.n; i++)
			if (list.v[i].rank == rank)
				sorted.v[sorted.n++] = list.v[i];
	from = (size_t)req->offset;
	if (from >= sorted.n)
		from = to = 0;
	else
		to = from + (size_t)req->limit > sorted.n ? sorted.n : from + (size_t)req->limit;
	for (size_t i = from; i < to; i++) {
		Gitaly__ListLastCommitsForTreeResponse__CommitForTree *cft;
		Gitaly__GitCommit *c = NULL;

		if (commit_last_commit(&r, req->revision, sorted.v[i].path, literal, &c, err) < 0)
			goto out;
		if (!c) {
			error_set(err, STATUS_INTERNAL, "object not found");
			goto out;
		}
		cft = calloc(1, sizeof(*cft));
		if (!cft)
			abort();
		gitaly__list_last_commits_for_tree_response__commit_for_tree__init(cft);
		cft->commit = c;
		cft->path_bytes.len = strlen(sorted.v[i].path);
		cft->path_bytes.data = (uint8_t *)strdup(sorted.v[i].path);
		if (!cft->path_bytes.data)
			abort();
		batch[nb++] = cft;
		if (nb == BATCH) {
			nb = 0;
			if (send_batch(call, batch, BATCH, err) < 0)
				goto out;
		}
	}
	ret = send_batch(call, batch, nb, err);
	nb = 0;
out:
	free_items(batch, nb);
	for (size_t i = 0; i < list.n; i++)
		free(list.v[i].path);
	free(list.v);
	free(sorted.v);
	free(path);
	commit_repo_release(&r);
	return ret;
}
