/*
 * Single reference lookups of RefService: FindDefaultBranchName,
 * RefExists and FindBranch. All three are answered in-process from the
 * cached libgit2 handle (no git spawn), with git's semantics: HEAD read as
 * `git symbolic-ref`, existence as `git show-ref --verify`, and a branch
 * lookup as upstream's for-each-ref pattern match (so "a" is ambiguous
 * when only "a/b" exists).
 */
#include <stdlib.h>
#include <string.h>

#include "base/banned.h"
#include "errors.pb-c.h"
#include "ref.pb-c.h"
#include "git/refread.h"
#include "service/gitcommit.h"
#include "service/ref_internal.h"

#define MAX_NAME ((size_t)64 * 1024)
#define GIT_OID_HEXSZ_MAX 64

static const char *git_errmsg(void)
{
	const git_error *e = git_error_last();

	return e && e->message ? e->message : "unknown error";
}

/* The target of the symbolic HEAD (malloc'd), as `git symbolic-ref HEAD`. */
static int head_reference(struct ref_ctx *ctx, char **out, struct error *err)
{
	if (ref_ctx_head_target(ctx, out, err) < 0)
		return -1;
	if (!*out)
		return error_set(err, STATUS_INTERNAL, "exit status 128");
	return 0;
}

int ref_default_branch(struct ref_ctx *ctx, int head_only, char **out, struct error *err)
{
	char *head = NULL, *chosen = NULL, oid[GIT_OID_HEXSZ_MAX + 1];
	int ret = -1;

	*out = NULL;
	if (head_reference(ctx, &head, err) < 0)
		return -1;
	if (head_only) {
		*out = head;
		return 0;
	}
	/* GitLab relies on this order: HEAD, then main, then master, then the
	 * first branch by name. */
	{
		const char *candidates[] = { head, "refs/heads/main", "refs/heads/master" };

		for (size_t i = 0; i < 3 && !chosen; i++) {
			int rc = ref_ctx_resolve(ctx, candidates[i], oid, err);

			if (rc < 0)
				goto out;
			if (rc > 0 && !(chosen = strdup(candidates[i]))) {
				error_set(err, STATUS_INTERNAL, "out of memory");
				goto out;
			}
		}
	}
	if (!chosen && ref_ctx_first_ref(ctx, "refs/heads/", &chosen, err) < 0)
		goto out;
	*out = chosen;
	ret = 0;
out:
	free(head);
	return ret;
}

int ref_find_default_branch_name_rpc(struct rpc_call *call, struct error *err)
{
	const Gitaly__FindDefaultBranchNameRequest *req =
		(const Gitaly__FindDefaultBranchNameRequest *)rpc_call_request(call);
	Gitaly__FindDefaultBranchNameResponse resp = GITALY__FIND_DEFAULT_BRANCH_NAME_RESPONSE__INIT;
	struct ref_ctx ctx;
	const struct repo_handle *h;
	char *chosen = NULL;
	int ret = -1;

	if (ref_ctx_init(&ctx, call, req->repository, err) < 0 || ref_ctx_handle(&ctx, &h, err) < 0)
		goto out;
	if (ref_default_branch(&ctx, req->head_only, &chosen, err) < 0) {
		error_prefix(err, req->head_only ? "head reference" : "get default branch");
		goto out;
	}
	if (chosen) {
		resp.name.data = (uint8_t *)chosen;
		resp.name.len = strlen(chosen);
	}
	ret = rpc_call_send(call, &resp.base, err);
out:
	free(chosen);
	ref_ctx_release(&ctx);
	return ret;
}

int ref_exists_rpc(struct rpc_call *call, struct error *err)
{
	const Gitaly__RefExistsRequest *req = (const Gitaly__RefExistsRequest *)rpc_call_request(call);
	Gitaly__RefExistsResponse resp = GITALY__REF_EXISTS_RESPONSE__INIT;
	struct ref_ctx ctx;
	git_repository *repo;
	git_oid oid;
	char *name = NULL;
	int ret = -1, rc, sha256 = 0;

	if (ref_ctx_init(&ctx, call, req->repository, err) < 0)
		goto out;
	if (req->ref.len < 5 || memcmp(req->ref.data, "refs/", 5) != 0) {
		error_set(err, STATUS_INVALID_ARGUMENT, "invalid refname");
		goto out;
	}
	if (ref_ctx_is_sha256(&ctx, &sha256, err) < 0)
		goto out;
	if (sha256 && !service_has_nul(req->ref.data, req->ref.len)) {
		/* cat-file answers a ref that resolves; "missing" is either no
		 * such ref or a ref to a missing object, which upstream's
		 * show-ref --verify tells apart (the latter fails). */
		char hex[GIT_OID_HEXSZ_MAX + 1];

		name = strndup((const char *)req->ref.data, req->ref.len);
		if (!name) {
			error_set(err, STATUS_INTERNAL, "out of memory");
			goto out;
		}
		rc = ref_ctx_resolve(&ctx, name, hex, err);
		if (rc < 0)
			goto out;
		if (rc == 0) {
			struct git_cmd *cmd = ref_ctx_git(&ctx, "show-ref");
			struct git_result res;

			git_cmd_flag(cmd, "--verify");
			git_cmd_flag(cmd, "--quiet");
			git_cmd_arg(cmd, name);
			if (git_cmd_run(cmd, NULL, 0, NULL, NULL, &res, err) < 0)
				goto out;
			if (res.exit_code != 0 && res.exit_code != 1) {
				error_set(err, STATUS_INTERNAL, "exit status %d", res.exit_code);
				goto out;
			}
			rc = res.exit_code == 0;
		}
		resp.value = rc > 0;
	} else if (!service_has_nul(req->ref.data, req->ref.len)) {
		if (ref_ctx_repo(&ctx, &repo, err) < 0)
			goto out;
		name = strndup((const char *)req->ref.data, req->ref.len);
		if (!name) {
			error_set(err, STATUS_INTERNAL, "out of memory");
			goto out;
		}
		switch (refread_lookup(repo, name, &oid)) {
		case REFREAD_FOUND:
			rc = 0;
			break;
		case REFREAD_MISSING:
			rc = GIT_ENOTFOUND;
			break;
		default:
			rc = git_reference_name_to_id(&oid, repo, name);
		}
		if (rc == 0) {
			git_odb *odb = NULL;

			/* show-ref --verify dies on a ref to a missing object. */
			if (git_repository_odb(&odb, repo) == 0 && !git_odb_exists(odb, &oid)) {
				git_odb_free(odb);
				error_set(err, STATUS_INTERNAL, "exit status 128");
				goto out;
			}
			git_odb_free(odb);
			resp.value = 1;
		} else if (rc != GIT_ENOTFOUND && rc != GIT_EINVALIDSPEC) {
			error_set(err, STATUS_INTERNAL, "%s", git_errmsg());
			goto out;
		}
	}
	ret = rpc_call_send(call, &resp.base, err);
out:
	free(name);
	ref_ctx_release(&ctx);
	return ret;
}

/* Glob characters make for-each-ref match patterns, not names. */
static int has_glob(const char *s)
{
	return strpbrk(s, "*?[\\") != NULL;
}

struct first_line {
	char *name;
};

static int take_first(void *arg, char *line, size_t len, struct error *err)
{
	struct first_line *f = arg;

	(void)err;
	f->name = strndup(line, len);
	return 1;
}

/*
 * Upstream's GetReference: the first ref for-each-ref lists for the
 * pattern. *found is the first match (malloc'd) or NULL.
 */
static int first_matching_ref(struct ref_ctx *ctx, git_repository *repo, const char *refname,
			      char **found, struct error *err)
{
	git_reference_iterator *it = NULL;
	struct strbuf glob = STRBUF_INIT;
	const char *name;
	git_oid oid;
	int ret = -1;

	*found = NULL;
	if (has_glob(refname) || !repo) {
		struct git_cmd *cmd = ref_ctx_git(ctx, "for-each-ref");
		struct first_line f = { NULL };

		git_cmd_flag(cmd, "--format=%(refname)");
		git_cmd_flag(cmd, "--count=1");
		git_cmd_arg(cmd, refname);
		if (ref_run_lines(cmd, take_first, &f, NULL, err) < 0)
			goto out;
		*found = f.name;
		ret = 0;
		goto out;
	}
	if (git_reference_name_to_id(&oid, repo, refname) == 0) {
		*found = strdup(refname);
		ret = *found ? 0 : error_set(err, STATUS_INTERNAL, "out of memory");
		goto out;
	}
	/* Not there itself: any ref beneath it matches the pattern too. */
	if (strbuf_adds(&glob, refname) < 0 || strbuf_adds(&glob, "/*") < 0) {
		error_set(err, STATUS_INTERNAL, "out of memory");
		goto out;
	}
	if (git_reference_iterator_glob_new(&it, repo, glob.buf) < 0) {
		ret = 0;
		goto out;
	}
	while (git_reference_next_name(&name, it) == 0) {
		if (!*found || strcmp(name, *found) < 0) {
			free(*found);
			*found = strdup(name);
		}
	}
	ret = 0;
out:
	git_reference_iterator_free(it);
	strbuf_release(&glob);
	return ret;
}

int ref_find_branch_rpc(struct rpc_call *call, struct error *err)
{
	const Gitaly__FindBranchRequest *req = (const Gitaly__FindBranchRequest *)rpc_call_request(call);
	Gitaly__FindBranchResponse resp = GITALY__FIND_BRANCH_RESPONSE__INIT;
	Gitaly__Branch branch = GITALY__BRANCH__INIT;
	struct ref_ctx ctx;
	struct strbuf refname = STRBUF_INIT;
	const struct repo_handle *h;
	git_repository *repo;
	char *found = NULL, hex[GIT_OID_HEXSZ_MAX + 1];
	int ret = -1, rc;

	if (ref_ctx_init(&ctx, call, req->repository, err) < 0)
		goto out;
	if (req->name.len == 0) {
		error_set(err, STATUS_INVALID_ARGUMENT, "Branch name cannot be empty");
		goto out;
	}
	if (req->name.len > MAX_NAME || service_has_nul(req->name.data, req->name.len)) {
		/* No such branch can exist. */
		ret = rpc_call_send(call, &resp.base, err);
		goto out;
	}
	if (ref_ctx_handle(&ctx, &h, err) < 0)
		goto out;
	repo = h->repo;
	if (strbuf_adds(&refname, "refs/heads/") < 0 ||
	    strbuf_add(&refname, req->name.data, req->name.len) < 0) {
		error_set(err, STATUS_INTERNAL, "out of memory");
		goto out;
	}
	if (first_matching_ref(&ctx, repo, refname.buf, &found, err) < 0)
		goto out;
	if (!found) {
		ret = rpc_call_send(call, &resp.base, err);
		goto out;
	}
	if (strcmp(found, refname.buf) != 0) {
		struct strbuf msg = STRBUF_INIT;

		strbuf_adds(&msg, "target reference is ambiguous: reference is ambiguous: conflicts with ");
		service_go_quote(&msg, found, strlen(found));
		error_set(err, STATUS_INVALID_ARGUMENT, "%s", msg.buf);
		strbuf_release(&msg);
		goto out;
	}
	rc = ref_ctx_resolve(&ctx, found, hex, err);
	if (rc < 0)
		goto out;
	if (rc == 0) {
		ret = rpc_call_send(call, &resp.base, err);
		goto out;
	}
	if (gitcommit_read_h(h, hex, &branch.target_commit, err) < 0)
		goto out;
	branch.name.data = req->name.data;
	branch.name.len = req->name.len;
	resp.branch = &branch;
	ret = rpc_call_send(call, &resp.base, err);
out:
	gitcommit_free(branch.target_commit);
	free(found);
	strbuf_release(&refname);
	ref_ctx_release(&ctx);
	return ret;
}
