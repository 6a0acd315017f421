/*
 * Single commits by name: FindCommit (an unknown revision is an empty
 * answer, not an error), ListCommitsByOid and ListCommitsByRefName (names
 * that resolve to no commit are skipped). All read in-process.
 */
#include <stdlib.h>
#include <string.h>

#include "git/revision.h"
#include "service/commit_internal.h"

int commit_find_rpc(struct rpc_call *call, struct error *err)
{
	const Gitaly__FindCommitRequest *req = (const Gitaly__FindCommitRequest *)rpc_call_request(call);
	Gitaly__FindCommitResponse resp = GITALY__FIND_COMMIT_RESPONSE__INIT;
	struct commit_repo r;
	Gitaly__GitCommit *c = NULL;
	char *rev = NULL;
	int found, owned = 1, ret = -1;

	if (commit_repo_locate(call, req->repository, &r, err) < 0)
		goto out;
	if (revision_validate((const char *)req->revision.data, req->revision.len, 0, err) < 0)
		goto out;
	if (commit_repo_open(&r, err) < 0)
		goto out;
	rev = commit_bytes_dup(&req->revision);
	/* Trailers are added to the commit: only a commit of its own. */
	found = req->trailers ? commit_read_rev(&r, rev, &c, err)
			      : commit_find_rev(&r, rev, &c, &owned, err);
	if (found < 0)
		goto out;
	if (found && req->trailers && commit_add_trailers(&r, c, err) < 0)
		goto out;
	resp.commit = c;
	ret = rpc_call_send(call, &resp.base, err);
out:
	if (owned)
		commit_gitcommit_free(c);
	free(rev);
	commit_repo_release(&r);
	return ret;
}

static void free_commit_item(void *item)
{
	commit_gitcommit_free(item);
}

int commit_list_by_oid_rpc(struct rpc_call *call, struct error *err)
{
	const Gitaly__ListCommitsByOidRequest *req =
		(const Gitaly__ListCommitsByOidRequest *)rpc_call_request(call);
	struct commit_chunker ch;
	struct commit_repo r;
	int ret = -1;

	commit_chunker_init(&ch, call, commit_send_commits, free_commit_item,
			    (void *)&gitaly__list_commits_by_oid_response__descriptor);
	if (commit_repo_locate(call, req->repository, &r, err) < 0)
		goto out;
	if (commit_repo_open(&r, err) < 0)
		goto out;
	for (size_t i = 0; i < req->n_oid; i++) {
		Gitaly__GitCommit *c = NULL;
		int found = commit_read_rev(&r, req->oid[i], &c, err);

		if (found < 0)
			goto out;
		if (!found)
			continue;
		if (commit_chunker_add(&ch, c, protobuf_c_message_get_packed_size(&c->base), err) < 0)
			goto out;
	}
	ret = commit_chunker_flush(&ch, err);
out:
	commit_chunker_release(&ch);
	commit_repo_release(&r);
	return ret;
}

static void free_ref_item(void *item)
{
	Gitaly__ListCommitsByRefNameResponse__CommitForRef *cr = item;

	if (!cr)
		return;
	commit_gitcommit_free(cr->commit);
	free(cr->ref_name.data);
	free(cr);
}

static int send_refs(struct commit_chunker *ch, void **items, size_t n, struct error *err)
{
	Gitaly__ListCommitsByRefNameResponse resp = GITALY__LIST_COMMITS_BY_REF_NAME_RESPONSE__INIT;

	resp.n_commit_refs = n;
	resp.commit_refs = (Gitaly__ListCommitsByRefNameResponse__CommitForRef **)items;
	return rpc_call_send(ch->call, &resp.base, err);
}

int commit_list_by_ref_name_rpc(struct rpc_call *call, struct error *err)
{
	const Gitaly__ListCommitsByRefNameRequest *req =
		(const Gitaly__ListCommitsByRefNameRequest *)rpc_call_request(call);
	struct commit_chunker ch;
	struct commit_repo r;
	int ret = -1;

	commit_chunker_init(&ch, call, send_refs, free_ref_item, NULL);
	if (commit_repo_locate(call, req->repository, &r, err) < 0)
		goto out;
	if (commit_repo_open(&r, err) < 0) {
		err->code = STATUS_INTERNAL;
		goto out;
	}
	for (size_t i = 0; i < req->n_ref_names; i++) {
		Gitaly__ListCommitsByRefNameResponse__CommitForRef *cr;
		Gitaly__GitCommit *c = NULL;
		char *name = commit_bytes_dup(&req->ref_names[i]);
		int found = commit_read_rev(&r, name, &c, err);

		free(name);
		if (found < 0)
			goto out;
		if (!found)
			continue;
		cr = calloc(1, sizeof(*cr));
		if (!cr)
			abort();
		gitaly__list_commits_by_ref_name_response__commit_for_ref__init(cr);
		cr->commit = c;
		cr->ref_name.len = req->ref_names[i].len;
		cr->ref_name.data = malloc(cr->ref_name.len + 1);
		if (!cr->ref_name.data)
			abort();
		if (cr->ref_name.len)
			memcpy(cr->ref_name.data, req->ref_names[i].data, cr->ref_name.len);
		if (commit_chunker_add(&ch, cr, protobuf_c_message_get_packed_size(&cr->base), err) < 0)
			goto out;
	}
	ret = commit_chunker_flush(&ch, err);
out:
	commit_chunker_release(&ch);
	commit_repo_release(&r);
	return ret;
}
