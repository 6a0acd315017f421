/*
 * gitaly.CommitService: the method table (every method of commit.proto, a
 * NULL handler answers UNIMPLEMENTED) and the helpers the commit_*.c
 * handler files share: locating and opening the request's repository, the
 * 1 MiB item chunker, small string helpers.
 */
#include "service/commit.h"

#include <stdlib.h>
#include <string.h>

#include "base/strbuf.h"
#include "git/repo_cache.h"
#include "service/commit_internal.h"

#define M(name, type, req, resp, fn)                                                           \
	{ name, type, &gitaly__##req##__descriptor, &gitaly__##resp##__descriptor, fn,          \
	  RPC_OP_ACCESSOR, RPC_SCOPE_REPOSITORY }

static const struct rpc_method commit_methods[] = {
	M("ListCommits", RPC_SERVER_STREAM, list_commits_request, list_commits_response, commit_list_rpc),
	M("ListAllCommits", RPC_SERVER_STREAM, list_all_commits_request, list_all_commits_response, commit_list_all_rpc),
	M("CommitIsAncestor", RPC_UNARY, commit_is_ancestor_request, commit_is_ancestor_response, commit_is_ancestor_rpc),
	M("TreeEntry", RPC_SERVER_STREAM, tree_entry_request, tree_entry_response, commit_tree_entry_rpc),
	M("CountCommits", RPC_UNARY, count_commits_request, count_commits_response, commit_count_rpc),
	M("CountDivergingCommits", RPC_UNARY, count_diverging_commits_request, count_diverging_commits_response, commit_count_diverging_rpc),
	M("GetTreeEntries", RPC_SERVER_STREAM, get_tree_entries_request, get_tree_entries_response, commit_get_tree_entries_rpc),
	M("ListFiles", RPC_SERVER_STREAM, list_files_request, list_files_response, commit_list_files_rpc),
	M("FindCommit", RPC_UNARY, find_commit_request, find_commit_response, commit_find_rpc),
	M("CommitStats", RPC_UNARY, commit_stats_request, commit_stats_response, commit_stats_rpc),
	M("FindAllCommits", RPC_SERVER_STREAM, find_all_commits_request, find_all_commits_response, commit_find_all_rpc),
	M("FindCommits", RPC_SERVER_STREAM, find_commits_request, find_commits_response, commit_find_commits_rpc),
	M("CommitLanguages", RPC_UNARY, commit_languages_request, commit_languages_response, commit_languages_rpc),
	M("RawBlame", RPC_SERVER_STREAM, raw_blame_request, raw_blame_response, commit_raw_blame_rpc),
	M("LastCommitForPath", RPC_UNARY, last_commit_for_path_request, last_commit_for_path_response, commit_last_for_path_rpc),
	M("ListLastCommitsForTree", RPC_SERVER_STREAM, list_last_commits_for_tree_request, list_last_commits_for_tree_response, commit_last_for_tree_rpc),
	M("CommitsByMessage", RPC_SERVER_STREAM, commits_by_message_request, commits_by_message_response, commit_by_message_rpc),
	M("ListCommitsByOid", RPC_SERVER_STREAM, list_commits_by_oid_request, list_commits_by_oid_response, commit_list_by_oid_rpc),
	M("ListCommitsByRefName", RPC_SERVER_STREAM, list_commits_by_ref_name_request, list_commits_by_ref_name_response, commit_list_by_ref_name_rpc),
	M("FilterShasWithSignatures", RPC_BIDI_STREAM, filter_shas_with_signatures_request, filter_shas_with_signatures_response, commit_filter_signed_rpc),
	M("GetCommitSignatures", RPC_SERVER_STREAM, get_commit_signatures_request, get_commit_signatures_response, commit_signatures_rpc),
	M("GetCommitMessages", RPC_SERVER_STREAM, get_commit_messages_request, get_commit_messages_response, commit_messages_rpc),
	M("CheckObjectsExist", RPC_BIDI_STREAM, check_objects_exist_request, check_objects_exist_response, commit_check_objects_exist_rpc),
};

const struct rpc_service *commit_service(struct service_deps *deps)
{
	static struct rpc_service svc;

	svc.name = "gitaly.CommitService";
	svc.methods = commit_methods;
	svc.n_methods = sizeof(commit_methods) / sizeof(commit_methods[0]);
	svc.data = deps;
	return &svc;
}

int commit_repo_locate(struct rpc_call *call, const Gitaly__Repository *repo,
		       struct commit_repo *out, struct error *err)
{
	const struct service_deps *deps = rpc_call_service_data(call);

	memset(out, 0, sizeof(*out));
	if (service_repo_path(deps, repo, 0, &out->path, err) < 0)
		return -1;
	return service_git_env_init(&out->env, out->path, repo, err);
}

int commit_repo_open(struct commit_repo *r, struct error *err)
{
	struct repo_handle h;

	if (r->git || r->cf)
		return 0;
	if (repo_cache_get_handle(r->path, r->env.object_directory, r->env.alternates, &h, err) < 0)
		return -1;
	r->git = h.repo;
	r->cf = h.cf;
	return 0;
}

void commit_repo_release(struct commit_repo *r)
{
	struct repo_handle h = { r->git, r->cf };

	repo_cache_put_handle(&h);
	r->git = NULL;
	r->cf = NULL;
	service_git_env_release(&r->env);
	free(r->path);
	r->path = NULL;
}

struct git_cmd *commit_repo_git(struct commit_repo *r, const char *subcommand)
{
	return service_git_new(r->path, &r->env, subcommand);
}

void commit_chunker_init(struct commit_chunker *ch, struct rpc_call *call,
			 int (*flush)(struct commit_chunker *, void **, size_t, struct error *),
			 void (*free_item)(void *), void *ctx)
{
	memset(ch, 0, sizeof(*ch));
	ch->call = call;
	ch->flush = flush;
	ch->free_item = free_item;
	ch->ctx = ctx;
}

static void chunker_drop(struct commit_chunker *ch)
{
	for (size_t i = 0; i < ch->n; i++)
		ch->free_item(ch->items[i]);
	ch->n = 0;
	ch->size = 0;
}

int commit_chunker_flush(struct commit_chunker *ch, struct error *err)
{
	int ret;

	if (ch->n == 0)
		return 0;
	ret = ch->flush(ch, ch->items, ch->n, err);
	ch->n_flushes++;
	chunker_drop(ch);
	return ret;
}

int commit_chunker_add(struct commit_chunker *ch, void *item, size_t size, struct error *err)
{
	/* As upstream: the pending message goes out first when this item would
	 * bring it to the limit. */
	if (ch->n && ch->size + size >= COMMIT_CHUNK_MAX && commit_chunker_flush(ch, err) < 0) {
		ch->free_item(item);
		return -1;
	}
	if (ch->n == ch->alloc) {
		size_t alloc = ch->alloc ? ch->alloc * 2 : 64;
		void **items = realloc(ch->items, alloc * sizeof(*items));

		if (!items) {
			ch->free_item(item);
			return error_set(err, STATUS_INTERNAL, "out of memory");
		}
		ch->items = items;
		ch->alloc = alloc;
	}
	ch->items[ch->n++] = item;
	ch->size += size;
	return 0;
}

void commit_chunker_release(struct commit_chunker *ch)
{
	chunker_drop(ch);
	free(ch->items);
	ch->items = NULL;
	ch->alloc = 0;
}

const char *commit_git_error(void)
{
	const git_error *e = git_error_last();

	return e && e->message ? e->message : "unknown error";
}

char *commit_quote(const char *s, size_t len)
{
	struct strbuf sb = STRBUF_INIT;
	char *out;

	service_go_quote(&sb, s, len);
	out = strbuf_detach(&sb, NULL);
	if (!out)
		abort();
	return out;
}

char *commit_bytes_dup(const ProtobufCBinaryData *b)
{
	char *s = malloc(b->len + 1);

	if (!s)
		abort();
	if (b->len)
		memcpy(s, b->data, b->len);
	s[b->len] = '\0';
	return s;
}
