/*
 * Listings of RefService: FindLocalBranches, FindAllBranches,
 * FindAllRemoteBranches, ListRefs, FindRefsByOID and the two
 * names-containing-commit RPCs. git for-each-ref chooses and orders the
 * refs (its pattern, sort, --points-at, --contains and --merged semantics
 * are the reference), streamed line by line; the commits behind branches
 * are read in-process from the cached libgit2 handle instead of a cat-file
 * process. Branch listings go out 20 per message, name lists in ~1 MiB
 * chunks, as upstream.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/banned.h"
#include "ref.pb-c.h"
#include "service/gitcommit.h"
#include "service/ref_internal.h"
#include "service/ref_walk.h"
#include "service/repository_internal.h"

enum branch_kind { BRANCH_LOCAL, BRANCH_ALL, BRANCH_REMOTE };

struct branch_writer {
	struct rpc_call *call;
	const struct repo_handle *h;
	enum branch_kind kind;
	struct ref_pager pager;
	Gitaly__Branch *local[REF_ITEMS_PER_MESSAGE];
	Gitaly__FindAllBranchesResponse__Branch *all[REF_ITEMS_PER_MESSAGE];
	size_t n;
	int borrowed; /* target commits belong to a ref_walk cache */
};

static void branch_writer_reset(struct branch_writer *w)
{
	for (size_t i = 0; i < w->n; i++) {
		if (w->kind == BRANCH_ALL) {
			if (w->borrowed)
				w->all[i]->target = NULL;
			protobuf_c_message_free_unpacked(&w->all[i]->base, NULL);
		} else {
			if (w->borrowed)
				w->local[i]->target_commit = NULL;
			protobuf_c_message_free_unpacked(&w->local[i]->base, NULL);
		}
	}
	w->n = 0;
}

static int branch_writer_flush(struct branch_writer *w, struct error *err)
{
	int ret;

	if (w->n == 0)
		return 0;
	if (w->kind == BRANCH_LOCAL) {
		Gitaly__FindLocalBranchesResponse r = GITALY__FIND_LOCAL_BRANCHES_RESPONSE__INIT;

		r.n_local_branches = w->n;
		r.local_branches = w->local;
		ret = rpc_call_send(w->call, &r.base, err);
	} else if (w->kind == BRANCH_REMOTE) {
		Gitaly__FindAllRemoteBranchesResponse r = GITALY__FIND_ALL_REMOTE_BRANCHES_RESPONSE__INIT;

		r.n_branches = w->n;
		r.branches = w->local;
		ret = rpc_call_send(w->call, &r.base, err);
	} else {
		Gitaly__FindAllBranchesResponse r = GITALY__FIND_ALL_BRANCHES_RESPONSE__INIT;

		r.n_branches = w->n;
		r.branches = w->all;
		ret = rpc_call_send(w->call, &r.base, err);
	}
	branch_writer_reset(w);
	return ret;
}

/* "refname\0objectname" -> one branch with its commit. */
static int branch_line(void *arg, char *line, size_t len, struct error *err)
{
	struct branch_writer *w = arg;
	char *nul = memchr(line, '\0', len);
	size_t nlen;
	Gitaly__GitCommit *commit = NULL;
	size_t hexlen;
	int step;

	if (!nul || memchr(nul + 1, '\0', len - (size_t)(nul - line) - 1)) {
		struct strbuf msg = STRBUF_INIT;

		strbuf_adds(&msg, "error parsing ref ");
		service_go_quote(&msg, line, len);
		error_set(err, STATUS_INTERNAL, "%s", msg.buf);
		strbuf_release(&msg);
		return -1;
	}
	nlen = (size_t)(nul - line);
	step = ref_pager_step(&w->pager, line, nlen);
	if (step < 0)
		return 1;
	if (step == 0)
		return 0;
	hexlen = strlen(nul + 1);
	if ((hexlen != 40 && hexlen != 64) || strspn(nul + 1, "0123456789abcdef") != hexlen)
		return error_set(err, STATUS_INTERNAL, "invalid object id %s", nul + 1);
	if (gitcommit_read_h(w->h, nul + 1, &commit, err) < 0)
		return -1;
	if (w->kind == BRANCH_ALL) {
		Gitaly__FindAllBranchesResponse__Branch *b = malloc(sizeof(*b));

		if (!b)
			abort();
		gitaly__find_all_branches_response__branch__init(b);
		b->name.data = (uint8_t *)strndup(line, nlen);
		b->name.len = nlen;
		b->target = commit;
		w->all[w->n++] = b;
	} else {
		Gitaly__Branch *b = malloc(sizeof(*b));

		if (!b)
			abort();
		gitaly__branch__init(b);
		b->name.data = (uint8_t *)strndup(line, nlen);
		b->name.len = nlen;
		b->target_commit = commit;
		w->local[w->n++] = b;
	}
	if (w->n >= REF_ITEMS_PER_MESSAGE && branch_writer_flush(w, err) < 0)
		return -1;
	return 0;
}

/* Runs for-each-ref for a branch listing and streams the result. prefix
 * words errors as upstream wraps them. */
static int list_branches(struct ref_ctx *ctx, struct branch_writer *w, struct git_cmd *cmd,
			 struct error *err)
{
	int code = 0, ret = -1;

	if (ref_ctx_handle(ctx, &w->h, err) < 0) {
		git_cmd_free(cmd);
		goto out;
	}
	if (ref_run_lines(cmd, branch_line, w, &code, err) < 0 || ref_pager_finish(&w->pager, err) < 0 ||
	    branch_writer_flush(w, err) < 0) {
		if (err->code != STATUS_CANCELLED && err->code != STATUS_DEADLINE_EXCEEDED) {
			error_prefix(err, "finding refs: sending lines");
			err->code = STATUS_INTERNAL;
		}
		goto out;
	}
	if (code != 0) {
		error_set(err, STATUS_INTERNAL, "finding refs: listing failed with exit code %d", code);
		goto out;
	}
	ret = 0;
out:
	branch_writer_reset(w);
	return ret;
}

/*
 * FindLocalBranches in-process: the same refs, order, pagination and
 * 20-per-message batches as upstream's for-each-ref pipeline.
 */
static int branches_walk(struct ref_ctx *ctx, struct branch_writer *w, const char *const *patterns,
			 size_t n_patterns, int sort_by, struct error *err)
{
	struct ref_walk walk;
	int ret = -1;

	memset(&walk, 0, sizeof(walk));
	if (ref_ctx_handle(ctx, &w->h, err) < 0)
		goto out;
	if (w->h->cf) {
		/* No libgit2 for SHA-256: git lists and sorts. */
		struct git_cmd *cmd = ref_ctx_git(ctx, "for-each-ref");

		git_cmd_flag(cmd, "--format=%(refname)%00%(objectname)");
		if (sort_by == GITALY__FIND_LOCAL_BRANCHES_REQUEST__SORT_BY__UPDATED_ASC)
			git_cmd_flag(cmd, "--sort=committerdate");
		else if (sort_by == GITALY__FIND_LOCAL_BRANCHES_REQUEST__SORT_BY__UPDATED_DESC)
			git_cmd_flag(cmd, "--sort=-committerdate");
		for (size_t i = 0; i < n_patterns; i++)
			git_cmd_arg(cmd, patterns[i]);
		return list_branches(ctx, w, cmd, err);
	}
	w->borrowed = 1;
	if (ref_walk_list(&walk, w->h->repo, patterns, n_patterns, err) < 0)
		goto out;
	if (sort_by == GITALY__FIND_LOCAL_BRANCHES_REQUEST__SORT_BY__UPDATED_ASC ||
	    sort_by == GITALY__FIND_LOCAL_BRANCHES_REQUEST__SORT_BY__UPDATED_DESC) {
		if (ref_walk_sort_by_date(&walk, sort_by == GITALY__FIND_LOCAL_BRANCHES_REQUEST__SORT_BY__UPDATED_DESC,
					  err) < 0)
			goto wrap;
	}
	for (size_t i = 0; i < walk.n; i++) {
		struct ref_walk_entry *e = &walk.entries[i];
		Gitaly__Branch *b;
		size_t nlen = strlen(e->name);
		int step = ref_pager_step(&w->pager, e->name, nlen);

		if (step < 0)
			break;
		if (step == 0)
			continue;
		if (!e->commit && ref_walk_commit(&walk, &e->oid, &e->commit, err) < 0)
			goto wrap;
		if (w->kind == BRANCH_ALL) {
			Gitaly__FindAllBranchesResponse__Branch *a = malloc(sizeof(*a));

			if (!a)
				abort();
			gitaly__find_all_branches_response__branch__init(a);
			a->name.data = (uint8_t *)strndup(e->name, nlen);
			a->name.len = nlen;
			a->target = e->commit;
			w->all[w->n++] = a;
		} else {
			b = malloc(sizeof(*b));
			if (!b)
				abort();
			gitaly__branch__init(b);
			b->name.data = (uint8_t *)strndup(e->name, nlen);
			b->name.len = nlen;
			b->target_commit = e->commit;
			w->local[w->n++] = b;
		}
		if (w->n >= REF_ITEMS_PER_MESSAGE && branch_writer_flush(w, err) < 0)
			goto out;
	}
	if (ref_pager_finish(&w->pager, err) < 0)
		goto wrap;
	ret = branch_writer_flush(w, err);
	goto out;
wrap:
	error_prefix(err, "finding refs: sending lines");
	err->code = STATUS_INTERNAL;
out:
	branch_writer_reset(w);
	ref_walk_release(&walk);
	return ret;
}

int ref_find_local_branches_rpc(struct rpc_call *call, struct error *err)
{
	const Gitaly__FindLocalBranchesRequest *req =
		(const Gitaly__FindLocalBranchesRequest *)rpc_call_request(call);
	struct branch_writer w = { .call = call, .kind = BRANCH_LOCAL };
	struct ref_ctx ctx;
	int ret = -1;

	if (ref_ctx_init(&ctx, call, req->repository, err) < 0)
		goto out;
	/* Unknown sort values behave as NAME (upstream panics). */
	ref_pager_init(&w.pager, req->pagination_params);
	{
		const char *pattern = "refs/heads";

		ret = branches_walk(&ctx, &w, &pattern, 1, req->sort_by, err);
	}
out:
	ref_ctx_release(&ctx);
	return ret;
}

int ref_find_all_branches_rpc(struct rpc_call *call, struct error *err)
{
	const Gitaly__FindAllBranchesRequest *req =
		(const Gitaly__FindAllBranchesRequest *)rpc_call_request(call);
	struct branch_writer w = { .call = call, .kind = BRANCH_ALL };
	struct ref_ctx ctx;
	struct git_cmd *cmd = NULL;
	char *def = NULL, *merged = NULL;
	int ret = -1;

	if (ref_ctx_init(&ctx, call, req->repository, err) < 0)
		goto out;
	ref_pager_init(&w.pager, NULL);
	if (req->merged_only) {
		git_repository *repo;

		if (ref_ctx_repo(&ctx, &repo, err) < 0)
			goto out;
		if (ref_default_branch(&ctx, 0, &def, err) < 0) {
			error_prefix(err, "default branch name");
			goto out;
		}
		if (asprintf(&merged, "--merged=%s", def ? def : "") < 0) {
			merged = NULL;
			error_set(err, STATUS_INTERNAL, "out of memory");
			goto out;
		}
	}
	if (!req->merged_only) {
		const char *patterns[] = { "refs/heads", "refs/remotes" };

		ret = branches_walk(&ctx, &w, patterns, 2, 0, err);
		goto out;
	}
	cmd = ref_ctx_git(&ctx, "for-each-ref");
	git_cmd_flag(cmd, "--format=%(refname)%00%(objectname)");
	if (merged)
		git_cmd_flag(cmd, merged);
	if (req->merged_only && req->n_merged_branches > 0) {
		for (size_t i = 0; i < req->n_merged_branches; i++) {
			char *p = strndup((const char *)req->merged_branches[i].data,
					  req->merged_branches[i].len);

			if (!p || service_has_nul(req->merged_branches[i].data,
						  req->merged_branches[i].len)) {
				free(p);
				git_cmd_free(cmd);
				error_set(err, STATUS_INTERNAL, "cmd: invalid argument");
				goto out;
			}
			git_cmd_arg(cmd, p);
			free(p);
		}
	} else {
		git_cmd_arg(cmd, "refs/heads");
		git_cmd_arg(cmd, "refs/remotes");
	}
	ret = list_branches(&ctx, &w, cmd, err);
out:
	free(def);
	free(merged);
	ref_ctx_release(&ctx);
	return ret;
}

int ref_find_all_remote_branches_rpc(struct rpc_call *call, struct error *err)
{
	const Gitaly__FindAllRemoteBranchesRequest *req =
		(const Gitaly__FindAllRemoteBranchesRequest *)rpc_call_request(call);
	struct branch_writer w = { .call = call, .kind = BRANCH_REMOTE };
	struct ref_ctx ctx;
	struct git_cmd *cmd;
	struct strbuf pattern = STRBUF_INIT;
	int ret = -1;

	if (ref_ctx_init(&ctx, call, req->repository, err) < 0)
		goto out;
	if (!req->remote_name || !*req->remote_name) {
		error_set(err, STATUS_INVALID_ARGUMENT, "empty RemoteName");
		goto out;
	}
	ref_pager_init(&w.pager, NULL);
	strbuf_adds(&pattern, "refs/remotes/");
	if (strbuf_adds(&pattern, req->remote_name) < 0) {
		error_set(err, STATUS_INVALID_ARGUMENT, "remote name too long");
		goto out;
	}
	if (ref_walk_pattern_simple(pattern.buf)) {
		const char *p = pattern.buf;

		ret = branches_walk(&ctx, &w, &p, 1, 0, err);
		goto out;
	}
	cmd = ref_ctx_git(&ctx, "for-each-ref");
	git_cmd_flag(cmd, "--format=%(refname)%00%(objectname)");
	git_cmd_arg(cmd, pattern.buf);
	ret = list_branches(&ctx, &w, cmd, err);
out:
	strbuf_release(&pattern);
	ref_ctx_release(&ctx);
	return ret;
}

/* ListRefs */

struct refs_writer {
	struct rpc_call *call;
	int peel;
	char head_oid[64 + 1];
	int head_pending;
	Gitaly__ListRefsResponse__Reference items[REF_ITEMS_PER_MESSAGE + 1];
	Gitaly__ListRefsResponse__Reference *ptrs[REF_ITEMS_PER_MESSAGE + 1];
	char *owned[REF_ITEMS_PER_MESSAGE];
	size_t n, n_owned;
};

static int refs_flush(struct refs_writer *w, struct error *err)
{
	Gitaly__ListRefsResponse r = GITALY__LIST_REFS_RESPONSE__INIT;
	int ret = 0;

	if (w->n_owned == 0)
		return 0;
	r.n_references = w->n;
	r.references = w->ptrs;
	ret = rpc_call_send(w->call, &r.base, err);
	for (size_t i = 0; i < w->n_owned; i++)
		free(w->owned[i]);
	w->n = w->n_owned = 0;
	return ret;
}

static void refs_add(struct refs_writer *w, const char *name, size_t nlen, const char *target,
		     const char *peeled)
{
	Gitaly__ListRefsResponse__Reference *r = &w->items[w->n];

	gitaly__list_refs_response__reference__init(r);
	r->name.data = (uint8_t *)name;
	r->name.len = nlen;
	r->target = (char *)target;
	if (peeled)
		r->peeled_target = (char *)peeled;
	w->ptrs[w->n++] = r;
}

static int refs_line(void *arg, char *line, size_t len, struct error *err)
{
	struct refs_writer *w = arg;
	char *f[3];
	size_t nf = 0, want = w->peel ? 3 : 2;
	char *p = line, *end = line + len;

	while (nf < 3) {
		char *nul = memchr(p, '\0', (size_t)(end - p));

		f[nf++] = p;
		if (!nul)
			break;
		p = nul + 1;
	}
	if (nf != want || (nf == 3 && memchr(f[2], '\0', (size_t)(end - f[2])))) {
		struct strbuf msg = STRBUF_INIT;

		strbuf_adds(&msg, "sending lines: error parsing ref ");
		service_go_quote(&msg, line, len);
		error_set(err, STATUS_INTERNAL, "%s", msg.buf);
		strbuf_release(&msg);
		return -1;
	}
	/* Upstream puts HEAD in front of the first batch of refs. */
	if (w->head_pending) {
		refs_add(w, "HEAD", 4, w->head_oid, NULL);
		w->head_pending = 0;
	}
	/* The line buffer is reused: keep a copy for the batch. */
	w->owned[w->n_owned] = malloc(len + 1);
	if (!w->owned[w->n_owned])
		abort();
	memcpy(w->owned[w->n_owned], line, len);
	w->owned[w->n_owned][len] = '\0';
	{
		char *base = w->owned[w->n_owned];
		size_t o1 = (size_t)(f[1] - line), o2 = nf == 3 ? (size_t)(f[2] - line) : 0;

		refs_add(w, base, o1 - 1, base + o1, nf == 3 ? base + o2 : NULL);
	}
	w->n_owned++;
	if (w->n_owned >= REF_ITEMS_PER_MESSAGE && refs_flush(w, err) < 0)
		return -1;
	return 0;
}

static const char *list_refs_key(int key)
{
	switch (key) {
	case GITALY__LIST_REFS_REQUEST__SORT_BY__KEY__REFNAME: return "refname";
	case GITALY__LIST_REFS_REQUEST__SORT_BY__KEY__CREATORDATE: return "creatordate";
	case GITALY__LIST_REFS_REQUEST__SORT_BY__KEY__AUTHORDATE: return "authordate";
	case GITALY__LIST_REFS_REQUEST__SORT_BY__KEY__COMMITTERDATE: return "committerdate";
	}
	return NULL;
}

/* Whether ListRefs can be answered in-process exactly. */
static int list_refs_walkable(const Gitaly__ListRefsRequest *req, const char *key)
{
	if (strcmp(key, "refname") != 0 || req->n_pointing_at_oids > 0)
		return 0;
	for (size_t i = 0; i < req->n_patterns; i++) {
		const ProtobufCBinaryData *p = &req->patterns[i];

		if (p->len == 0 || service_has_nul(p->data, p->len) ||
		    memchr(p->data, '*', p->len) || memchr(p->data, '?', p->len) ||
		    memchr(p->data, '[', p->len) || memchr(p->data, '\\', p->len))
			return 0;
	}
	return 1;
}

/* %(*objectname): what a tag object points at ("" for other objects). */
static void peeled_once(git_repository *repo, git_odb *odb, const git_oid *oid, char *out)
{
	size_t len;
	git_object_t type;
	char *data = NULL;
	struct error err = ERROR_INIT;

	out[0] = '\0';
	if (!odb || git_odb_read_header(&len, &type, odb, oid) < 0 || type != GIT_OBJECT_TAG)
		return;
	if (gitcommit_read_raw(repo, oid, &type, &data, &len, &err) == 0 && len > 7 + GIT_OID_HEXSZ &&
	    memcmp(data, "object ", 7) == 0) {
		memcpy(out, data + 7, GIT_OID_HEXSZ);
		out[GIT_OID_HEXSZ] = '\0';
	}
	free(data);
	error_release(&err);
}

static int list_refs_walk(struct ref_ctx *ctx, const Gitaly__ListRefsRequest *req, int desc,
			  struct refs_writer *w, struct error *err)
{
	struct ref_walk walk;
	git_repository *repo;
	git_odb *odb = NULL;
	char **patterns = NULL;
	int ret = -1;

	memset(&walk, 0, sizeof(walk));
	patterns = calloc(req->n_patterns, sizeof(*patterns));
	if (!patterns)
		abort();
	for (size_t i = 0; i < req->n_patterns; i++) {
		patterns[i] = strndup((const char *)req->patterns[i].data, req->patterns[i].len);
		if (!patterns[i])
			abort();
	}
	if (ref_ctx_repo(ctx, &repo, err) < 0)
		goto out;
	if (ref_walk_list(&walk, repo, (const char *const *)patterns, req->n_patterns, err) < 0)
		goto out;
	if (desc)
		ref_walk_reverse_names(&walk);
	if (req->peel_tags && git_repository_odb(&odb, repo) < 0)
		odb = NULL;
	for (size_t i = 0; i < walk.n; i++) {
		struct ref_walk_entry *e = &walk.entries[i];
		size_t nlen = strlen(e->name);
		char *buf;

		if (w->head_pending) {
			refs_add(w, "HEAD", 4, w->head_oid, NULL);
			w->head_pending = 0;
		}
		/* name \0 target \0 peeled, kept until the batch is sent */
		buf = malloc(nlen + 2 * (GIT_OID_HEXSZ + 1) + 1);
		if (!buf)
			abort();
		memcpy(buf, e->name, nlen + 1);
		git_oid_tostr(buf + nlen + 1, GIT_OID_HEXSZ + 1, &e->oid);
		if (req->peel_tags)
			peeled_once(repo, odb, &e->oid, buf + nlen + 2 + GIT_OID_HEXSZ);
		w->owned[w->n_owned++] = buf;
		refs_add(w, buf, nlen, buf + nlen + 1,
			 req->peel_tags ? buf + nlen + 2 + GIT_OID_HEXSZ : NULL);
		if (w->n_owned >= REF_ITEMS_PER_MESSAGE && refs_flush(w, err) < 0)
			goto out;
	}
	ret = refs_flush(w, err);
out:
	git_odb_free(odb);
	for (size_t i = 0; patterns && i < req->n_patterns; i++)
		free(patterns[i]);
	free(patterns);
	ref_walk_release(&walk);
	return ret;
}

int ref_list_refs_rpc(struct rpc_call *call, struct error *err)
{
	const Gitaly__ListRefsRequest *req = (const Gitaly__ListRefsRequest *)rpc_call_request(call);
	struct refs_writer *w = NULL;
	struct ref_ctx ctx;
	struct git_cmd *cmd = NULL;
	char sort[32];
	const char *key = "refname";
	int desc = 0, ret = -1, sha256 = 0;

	if (ref_ctx_init(&ctx, call, req->repository, err) < 0)
		goto out;
	if (req->n_patterns < 1) {
		error_set(err, STATUS_INVALID_ARGUMENT, "patterns must have at least one entry");
		goto out;
	}
	if (req->sort_by) {
		key = list_refs_key(req->sort_by->key);
		if (!key) {
			error_set(err, STATUS_INVALID_ARGUMENT, "sorting key \"%d\" is not supported",
				  (int)req->sort_by->key);
			goto out;
		}
		if (req->sort_by->direction != GITALY__SORT_DIRECTION__ASCENDING &&
		    req->sort_by->direction != GITALY__SORT_DIRECTION__DESCENDING) {
			error_set(err, STATUS_INVALID_ARGUMENT, "sorting direction is not supported");
			goto out;
		}
		desc = req->sort_by->direction == GITALY__SORT_DIRECTION__DESCENDING;
	}
	w = calloc(1, sizeof(*w));
	if (!w) {
		error_set(err, STATUS_INTERNAL, "out of memory");
		goto out;
	}
	w->call = call;
	w->peel = req->peel_tags;
	if (req->head) {
		int rc = ref_ctx_resolve(&ctx, "HEAD", w->head_oid, err);

		if (rc < 0)
			goto out;
		w->head_pending = rc > 0;
	}
	if (list_refs_walkable(req, key) && ref_ctx_is_sha256(&ctx, &sha256, err) < 0)
		goto out;
	if (!sha256 && list_refs_walkable(req, key)) {
		ret = list_refs_walk(&ctx, req, desc, w, err);
		goto out;
	}
	snprintf(sort, sizeof(sort), "%s%s", desc ? "-" : "", key);
	cmd = ref_ctx_git(&ctx, "for-each-ref");
	git_cmd_option(cmd, "--format", req->peel_tags ? "%(refname)%00%(objectname)%00%(*objectname)"
						       : "%(refname)%00%(objectname)");
	git_cmd_option(cmd, "--sort", sort);
	for (size_t i = 0; i < req->n_pointing_at_oids; i++) {
		char *oid = strndup((const char *)req->pointing_at_oids[i].data,
				    req->pointing_at_oids[i].len);

		if (!oid || service_has_nul(req->pointing_at_oids[i].data, req->pointing_at_oids[i].len)) {
			free(oid);
			error_set(err, STATUS_INTERNAL, "cmd: invalid argument");
			goto out;
		}
		git_cmd_option(cmd, "--points-at", oid);
		free(oid);
	}
	for (size_t i = 0; i < req->n_patterns; i++) {
		char *p = strndup((const char *)req->patterns[i].data, req->patterns[i].len);

		if (!p || service_has_nul(req->patterns[i].data, req->patterns[i].len)) {
			free(p);
			error_set(err, STATUS_INTERNAL, "cmd: invalid argument");
			goto out;
		}
		git_cmd_arg(cmd, p);
		free(p);
	}
	ret = ref_run_lines(cmd, refs_line, w, NULL, err);
	cmd = NULL;
	if (ret == 0)
		ret = refs_flush(w, err);
out:
	git_cmd_free(cmd);
	if (w)
		for (size_t i = 0; i < w->n_owned; i++)
			free(w->owned[i]);
	free(w);
	ref_ctx_release(&ctx);
	return ret;
}

/* FindRefsByOID */

struct name_list {
	char **names;
	size_t n, alloc;
};

static int collect_name(void *arg, char *line, size_t len, struct error *err)
{
	struct name_list *l = arg;

	if (l->n == l->alloc) {
		size_t na = l->alloc ? l->alloc * 2 : 16;
		char **nn = realloc(l->names, na * sizeof(*nn));

		if (!nn)
			return error_set(err, STATUS_INTERNAL, "out of memory");
		l->names = nn;
		l->alloc = na;
	}
	l->names[l->n] = strndup(line, len);
	if (!l->names[l->n])
		return error_set(err, STATUS_INTERNAL, "out of memory");
	l->n++;
	return 0;
}

static void name_list_release(struct name_list *l)
{
	for (size_t i = 0; i < l->n; i++)
		free(l->names[i]);
	free(l->names);
	memset(l, 0, sizeof(*l));
}

int ref_find_refs_by_oid_rpc(struct rpc_call *call, struct error *err)
{
	const Gitaly__FindRefsByOIDRequest *req =
		(const Gitaly__FindRefsByOIDRequest *)rpc_call_request(call);
	Gitaly__FindRefsByOIDResponse resp = GITALY__FIND_REFS_BY_OIDRESPONSE__INIT;
	struct name_list names = { 0 };
	struct ref_ctx ctx;
	struct git_cmd *cmd;
	int code = 0, ret = -1;

	if (ref_ctx_init(&ctx, call, req->repository, err) < 0)
		goto out;
	if (!req->oid || !*req->oid) {
		error_set(err, STATUS_INVALID_ARGUMENT, "empty Oid");
		goto out;
	}
	cmd = ref_ctx_git(&ctx, "for-each-ref");
	git_cmd_option(cmd, "--format", "%(refname)");
	if (req->sort_field && *req->sort_field)
		git_cmd_option(cmd, "--sort", req->sort_field);
	git_cmd_option(cmd, "--points-at", req->oid);
	if (req->limit > 0) {
		char count[16];

		snprintf(count, sizeof(count), "%u", req->limit);
		git_cmd_option(cmd, "--count", count);
	}
	if (req->n_ref_patterns == 0) {
		git_cmd_arg(cmd, "refs/tags/");
		git_cmd_arg(cmd, "refs/heads/");
	}
	for (size_t i = 0; i < req->n_ref_patterns; i++)
		git_cmd_arg(cmd, req->ref_patterns[i]);
	if (ref_run_lines(cmd, collect_name, &names, &code, err) < 0)
		goto out;
	if (code != 0) {
		/* 129 is git's usage error: the request's fault. */
		error_set(err, code == 129 ? STATUS_INVALID_ARGUMENT : STATUS_INTERNAL,
			  "for-each-ref pipeline command: exit status %d", code);
		goto out;
	}
	resp.n_refs = names.n;
	resp.refs = names.names;
	ret = rpc_call_send(call, &resp.base, err);
out:
	name_list_release(&names);
	ref_ctx_release(&ctx);
	return ret;
}

/* Names containing a commit. */

struct names_writer {
	struct rpc_call *call;
	int tags;
	const char *prefix;
	size_t prefix_len;
	struct name_list batch;
	size_t size;
};

static int names_flush(struct names_writer *w, struct error *err)
{
	ProtobufCBinaryData *items;
	int ret;

	if (w->size == 0)
		return 0;
	items = calloc(w->batch.n ? w->batch.n : 1, sizeof(*items));
	if (!items)
		return error_set(err, STATUS_INTERNAL, "out of memory");
	for (size_t i = 0; i < w->batch.n; i++) {
		size_t len = strlen(w->batch.names[i]);
		size_t skip = strncmp(w->batch.names[i], w->prefix, w->prefix_len) == 0 ? w->prefix_len : 0;

		items[i].data = (uint8_t *)w->batch.names[i] + skip;
		items[i].len = len - skip;
	}
	if (w->tags) {
		Gitaly__ListTagNamesContainingCommitResponse r =
			GITALY__LIST_TAG_NAMES_CONTAINING_COMMIT_RESPONSE__INIT;

		r.n_tag_names = w->batch.n;
		r.tag_names = items;
		ret = rpc_call_send(w->call, &r.base, err);
	} else {
		Gitaly__ListBranchNamesContainingCommitResponse r =
			GITALY__LIST_BRANCH_NAMES_CONTAINING_COMMIT_RESPONSE__INIT;

		r.n_branch_names = w->batch.n;
		r.branch_names = items;
		ret = rpc_call_send(w->call, &r.base, err);
	}
	free(items);
	name_list_release(&w->batch);
	w->size = 0;
	return ret;
}

/* Size of a StringValue{value: s} as upstream's chunker measures it. */
static size_t string_value_size(size_t len)
{
	size_t v = 1;

	if (len == 0)
		return 0;
	for (size_t l = len; l >= 0x80; l >>= 7)
		v++;
	return 1 + v + len;
}

static int names_line(void *arg, char *line, size_t len, struct error *err)
{
	struct names_writer *w = arg;
	size_t sz = string_value_size(len);

	if (sz + w->size >= REF_CHUNK_BYTES && names_flush(w, err) < 0)
		return -1;
	if (collect_name(&w->batch, line, len, err) < 0)
		return -1;
	w->size += sz;
	return 0;
}

static int names_containing(struct rpc_call *call, const Gitaly__Repository *repository,
			    const char *commit_id, uint32_t limit, int tags, struct error *err)
{
	struct names_writer w = { .call = call, .tags = tags };
	struct ref_ctx ctx;
	struct git_cmd *cmd;
	const char *format = "sha1";
	char *contains = NULL;
	int code = 0, ret = -1;

	if (ref_ctx_init(&ctx, call, repository, err) < 0)
		goto out;
	if (repo_object_format(ctx.path, &ctx.genv, &format, err) < 0)
		goto out;
	if (ref_validate_hex(commit_id ? commit_id : "", format, "", err) < 0)
		goto out;
	if (asprintf(&contains, "--contains=%s", commit_id) < 0) {
		contains = NULL;
		error_set(err, STATUS_INTERNAL, "out of memory");
		goto out;
	}
	w.prefix = tags ? "refs/tags/" : "refs/heads/";
	w.prefix_len = strlen(w.prefix);
	cmd = ref_ctx_git(&ctx, "for-each-ref");
	git_cmd_flag(cmd, "--format=%(refname)");
	git_cmd_flag(cmd, contains);
	if (limit) {
		char count[32];

		snprintf(count, sizeof(count), "--count=%u", limit);
		git_cmd_flag(cmd, count);
	}
	git_cmd_arg(cmd, tags ? "refs/tags" : "refs/heads");
	if (ref_run_lines(cmd, names_line, &w, &code, err) < 0)
		goto out;
	if (code != 0) {
		error_set(err, STATUS_INTERNAL, "exit status %d", code);
		goto out;
	}
	ret = names_flush(&w, err);
out:
	name_list_release(&w.batch);
	free(contains);
	ref_ctx_release(&ctx);
	return ret;
}

int ref_list_branch_names_containing_rpc(struct rpc_call *call, struct error *err)
{
	const Gitaly__ListBranchNamesContainingCommitRequest *req =
		(const Gitaly__ListBranchNamesContainingCommitRequest *)rpc_call_request(call);

	return names_containing(call, req->repository, req->commit_id, req->limit, 0, err);
}

int ref_list_tag_names_containing_rpc(struct rpc_call *call, struct error *err)
{
	const Gitaly__ListTagNamesContainingCommitRequest *req =
		(const Gitaly__ListTagNamesContainingCommitRequest *)rpc_call_request(call);

	return names_containing(call, req->repository, req->commit_id, req->limit, 1, err);
}
