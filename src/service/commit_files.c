/*
 * ListFiles: every blob path of a revision's tree (default branch when the
 * revision is empty), as `git ls-tree -r --full-tree` lists them, walked
 * in-process; GetCommitMessages: whole commit messages streamed in 128 KiB
 * chunks after a header message naming the commit.
 */
#include <stdlib.h>
#include <string.h>

#include "git/revision.h"
#include "service/commit_internal.h"

static void free_path(void *item)
{
	ProtobufCBinaryData *b = item;

	free(b->data);
	free(b);
}

static int send_paths(struct commit_chunker *ch, void **items, size_t n, struct error *err)
{
	Gitaly__ListFilesResponse resp = GITALY__LIST_FILES_RESPONSE__INIT;
	ProtobufCBinaryData *paths = malloc((n ? n : 1) * sizeof(*paths));
	int ret;

	if (!paths)
		abort();
	for (size_t i = 0; i < n; i++)
		paths[i] = *(ProtobufCBinaryData *)items[i];
	resp.n_paths = n;
	resp.paths = paths;
	ret = rpc_call_send(ch->call, &resp.base, err);
	free(paths);
	return ret;
}

struct files_walk {
	struct commit_chunker *ch;
	struct error *err;
	int failed;
};

static int files_cb(void *payload, const char *root, const struct odb_tree_entry *te,
		    struct error *err)
{
	struct files_walk *w = payload;
	ProtobufCBinaryData *b;
	size_t rlen = strlen(root), nlen;
	const char *name = te->name;

	(void)err;
	/* Blobs only: trees are walked, submodules skipped. */
	if (te->type != GIT_OBJECT_BLOB)
		return 0;
	nlen = te->name_len;
	b = malloc(sizeof(*b));
	if (!b)
		abort();
	b->len = rlen + nlen;
	b->data = malloc(b->len + 1);
	if (!b->data)
		abort();
	memcpy(b->data, root, rlen);
	memcpy(b->data + rlen, name, nlen);
	/* The packed size of one repeated bytes entry: tag, length, data. */
	if (commit_chunker_add(w->ch, b, 1 + 5 + b->len, w->err) < 0) {
		w->failed = 1;
		return -1;
	}
	return 0;
}

int commit_list_files_rpc(struct rpc_call *call, struct error *err)
{
	const Gitaly__ListFilesRequest *req = (const Gitaly__ListFilesRequest *)rpc_call_request(call);
	struct commit_chunker ch;
	struct commit_repo r;
	char *rev = NULL, tree[ODB_OID_MAX];
	int found, ret = -1;

	commit_chunker_init(&ch, call, send_paths, free_path, NULL);
	if (commit_repo_locate(call, req->repository, &r, err) < 0)
		goto out;
	if (revision_validate((const char *)req->revision.data, req->revision.len, REVISION_ALLOW_EMPTY, err) < 0)
		goto out;
	if (commit_repo_open(&r, err) < 0)
		goto out;
	if (req->revision.len) {
		rev = commit_bytes_dup(&req->revision);
	} else {
		if (commit_default_branch(&r, &rev, err) < 0)
			goto out;
		if (!*rev) {
			error_set(err, STATUS_FAILED_PRECONDITION, "repository does not have a default branch");
			goto out;
		}
	}
	found = commit_resolve_oid(&r, rev, GIT_OBJECT_TREE, tree, err);
	if (found < 0)
		goto out;
	/* An unknown revision is one empty message, as upstream. */
	if (!found) {
		Gitaly__ListFilesResponse empty = GITALY__LIST_FILES_RESPONSE__INIT;

		ret = rpc_call_send(call, &empty.base, err);
		goto out;
	}
	{
		struct files_walk w = { &ch, err, 0 };

		if (commit_tree_walk(&r, tree, files_cb, &w, err) < 0) {
			if (!w.failed)
				error_prefix(err, "listing files");
			err->code = STATUS_INTERNAL;
			goto out;
		}
	}
	ret = commit_chunker_flush(&ch, err);
out:
	free(rev);
	commit_chunker_release(&ch);
	commit_repo_release(&r);
	return ret;
}

int commit_messages_rpc(struct rpc_call *call, struct error *err)
{
	const Gitaly__GetCommitMessagesRequest *req =
		(const Gitaly__GetCommitMessagesRequest *)rpc_call_request(call);
	struct commit_repo r;
	int ret = -1;

	if (commit_repo_locate(call, req->repository, &r, err) < 0)
		goto out;
	if (commit_repo_open(&r, err) < 0)
		goto out;
	for (size_t i = 0; i < req->n_commit_ids; i++) {
		Gitaly__GetCommitMessagesResponse head = GITALY__GET_COMMIT_MESSAGES_RESPONSE__INIT;
		struct odb_object raw;
		char oid[ODB_OID_MAX];
		const char *data, *body;
		size_t len, blen;
		int found = commit_read_raw_commit(&r, req->commit_ids[i], oid, &raw, err);

		if (found < 0)
			goto out;
		if (!found) {
			error_set(err, STATUS_INTERNAL, "failed to get commit message: object not found");
			goto out;
		}
		data = raw.data;
		len = raw.len;
		body = memmem(data, len, "\n\n", 2);
		blen = body ? len - (size_t)(body + 2 - data) : 0;
		body = body ? body + 2 : data;
		head.commit_id = req->commit_ids[i];
		ret = rpc_call_send(call, &head.base, err);
		for (size_t off = 0; ret == 0 && off < blen; off += SERVICE_CHUNK_SIZE) {
			Gitaly__GetCommitMessagesResponse chunk = GITALY__GET_COMMIT_MESSAGES_RESPONSE__INIT;

			chunk.message.data = (uint8_t *)body + off;
			chunk.message.len = blen - off > SERVICE_CHUNK_SIZE ? SERVICE_CHUNK_SIZE : blen - off;
			ret = rpc_call_send(call, &chunk.base, err);
		}
		odb_object_release(&raw);
		if (ret < 0)
			goto out;
	}
	ret = 0;
out:
	commit_repo_release(&r);
	return ret;
}
