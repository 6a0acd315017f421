/*
 * History queries answered by `git log` as upstream does (path filters,
 * --follow, author and date filters, message grep are git's own
 * semantics): FindAllCommits, CommitsByMessage and FindCommits. git picks
 * the commits and prints their ids (plus trailers, decorations and
 * shortstats for FindCommits); each commit is then read in-process. Like
 * upstream, a failing git log (an unknown revision) lists nothing.
 */
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "git/command.h"
#include "git/revision.h"
#include "service/commit_internal.h"

static int has_commit(git_repository *repo, const char *name)
{
	git_object *obj = NULL, *peeled = NULL;
	int ok = git_revparse_single(&obj, repo, name) == 0 &&
		 git_object_peel(&peeled, obj, GIT_OBJECT_COMMIT) == 0;

	git_object_free(peeled);
	git_object_free(obj);
	return ok;
}

static int first_branch(const char *name, void *payload)
{
	char **best = payload;

	if (!*best || strcmp(name, *best) < 0) {
		free(*best);
		*best = strdup(name);
		if (!*best)
			abort();
	}
	return 0;
}

/* The first line git prints (malloc'd, "" when none). */
static int git_first_line(struct commit_repo *r, struct git_cmd *cmd, char **out,
			  struct error *err)
{
	struct strbuf buf;
	struct git_result res;
	char *nl;

	(void)r;
	*out = NULL;
	strbuf_init(&buf, 64 * 1024);
	if (git_cmd_run(cmd, NULL, 0, &buf, NULL, &res, err) < 0) {
		strbuf_release(&buf);
		return -1;
	}
	if (res.exit_code != 0)
		strbuf_reset(&buf);
	if (buf.buf && (nl = strchr(buf.buf, '\n')))
		*nl = '\0';
	*out = strdup(buf.buf ? buf.buf : "");
	strbuf_release(&buf);
	if (!*out)
		abort();
	return 0;
}

/* commit_default_branch without libgit2 (SHA-256): git names HEAD's target
 * and the first branch, cat-file tells which candidates hold a commit. */
static int default_branch_git(struct commit_repo *r, char **out, struct error *err)
{
	char *head = NULL, oid[ODB_OID_MAX];
	struct git_cmd *cmd;
	int ret = -1;

	*out = NULL;
	cmd = commit_repo_git(r, "symbolic-ref");
	git_cmd_flag(cmd, "--quiet");
	git_cmd_arg(cmd, "HEAD");
	if (git_first_line(r, cmd, &head, err) < 0)
		goto out;
	{
		const char *candidates[3] = { head, "refs/heads/main", "refs/heads/master" };

		for (int i = 0; i < 3; i++) {
			int rc;

			if (!*candidates[i])
				continue;
			rc = commit_resolve_oid(r, candidates[i], GIT_OBJECT_COMMIT, oid, err);
			if (rc < 0)
				goto out;
			if (rc > 0) {
				*out = strdup(candidates[i]);
				if (!*out)
					abort();
				ret = 0;
				goto out;
			}
		}
	}
	cmd = commit_repo_git(r, "for-each-ref");
	git_cmd_flag(cmd, "--format=%(refname)");
	git_cmd_flag(cmd, "--count=1");
	git_cmd_arg(cmd, "refs/heads/");
	ret = git_first_line(r, cmd, out, err);
out:
	free(head);
	return ret;
}

int commit_default_branch(struct commit_repo *r, char **out, struct error *err)
{
	git_repository *repo = r->git;
	git_reference *head = NULL;
	char *best = NULL;
	const char *candidates[3] = { NULL, "refs/heads/main", "refs/heads/master" };

	if (r->cf)
		return default_branch_git(r, out, err);
	if (git_reference_lookup(&head, repo, "HEAD") == 0 &&
	    git_reference_type(head) == GIT_REFERENCE_SYMBOLIC)
		candidates[0] = git_reference_symbolic_target(head);
	for (int i = 0; i < 3; i++) {
		if (candidates[i] && has_commit(repo, candidates[i])) {
			*out = strdup(candidates[i]);
			git_reference_free(head);
			if (!*out)
				abort();
			return 0;
		}
	}
	git_reference_free(head);
	git_reference_foreach_glob(repo, "refs/heads/*", first_branch, &best);
	*out = best ? best : strdup("");
	if (!*out)
		abort();
	return 0;
}

static void free_commit_item(void *item)
{
	commit_gitcommit_free(item);
}

/* One record of git log output; see FindCommits for the extended form. */
struct log_state {
	struct commit_chunker ch;
	struct commit_repo *repo;
	int trailers, refs, shortstat;
	int32_t skip; /* records to drop first (FindCommits with --follow) */
};

static void add_trailers(Gitaly__GitCommit *c, const char *s, size_t len)
{
	/* Reuse the parser of FindCommit's trailers on "k: v\0k: v". */
	const char *end = s + len;

	while (s < end && c->n_trailers < 64) {
		const char *e = memchr(s, '\0', (size_t)(end - s)), *colon;

		if (!e)
			e = end;
		colon = memchr(s, ':', (size_t)(e - s));
		if (colon && colon > s) {
			const char *v = colon + 1, *ve = e;
			Gitaly__CommitTrailer *t;
			Gitaly__CommitTrailer **arr;

			while (v < ve && isspace((unsigned char)*v))
				v++;
			while (ve > v && isspace((unsigned char)ve[-1]))
				ve--;
			if ((size_t)(colon - s) > 128 || (size_t)(ve - v) > 512)
				break;
			t = calloc(1, sizeof(*t));
			arr = realloc(c->trailers, (c->n_trailers + 1) * sizeof(*arr));
			if (!t || !arr)
				abort();
			gitaly__commit_trailer__init(t);
			t->key.len = (size_t)(colon - s);
			t->key.data = malloc(t->key.len + 1);
			t->value.len = (size_t)(ve - v);
			t->value.data = malloc(t->value.len + 1);
			if (!t->key.data || !t->value.data)
				abort();
			memcpy(t->key.data, s, t->key.len);
			memcpy(t->value.data, v, t->value.len);
			c->trailers = arr;
			arr[c->n_trailers++] = t;
		}
		s = e + 1;
	}
}

static void add_ref(Gitaly__GitCommit *c, const char *s, size_t len)
{
	ProtobufCBinaryData *arr = realloc(c->referenced_by, (c->n_referenced_by + 1) * sizeof(*arr));

	if (!arr)
		abort();
	c->referenced_by = arr;
	arr[c->n_referenced_by].len = len;
	arr[c->n_referenced_by].data = malloc(len + 1);
	if (!arr[c->n_referenced_by].data)
		abort();
	memcpy(arr[c->n_referenced_by].data, s, len);
	c->n_referenced_by++;
}

/* %D: "HEAD -> refs/heads/main, tag: refs/tags/v1, refs/heads/x". */
static void add_refs(Gitaly__GitCommit *c, const char *s, size_t len)
{
	const char *end = s + len;

	while (s < end) {
		const char *e = s, *arrow;

		while (e < end && !(e + 1 < end && e[0] == ',' && e[1] == ' '))
			e++;
		if (e > s) {
			if ((size_t)(e - s) > 5 && !memcmp(s, "tag: ", 5))
				s += 5;
			arrow = NULL;
			for (const char *p = s; p + 4 <= e; p++)
				if (!memcmp(p, " -> ", 4)) {
					arrow = p;
					break;
				}
			if (arrow) {
				add_ref(c, s, (size_t)(arrow - s));
				add_ref(c, arrow + 4, (size_t)(e - arrow - 4));
			} else {
				add_ref(c, s, (size_t)(e - s));
			}
		}
		s = e + 2;
	}
}

/* " N files changed, A insertions(+), D deletions(-)" */
static int parse_shortstat(const char *s, Gitaly__CommitStatInfo **out)
{
	Gitaly__CommitStatInfo *st;
	const char *p = strstr(s, " changed");
	const char *q;
	long files;

	if (!p)
		return -1;
	/* The count precedes " file(s) changed". */
	for (q = p; q > s && q[-1] != ' '; q--)
		;
	if (q == s)
		return -1;
	for (q--; q > s && isdigit((unsigned char)q[-1]); q--)
		;
	files = strtol(q, NULL, 10);
	st = calloc(1, sizeof(*st));
	if (!st)
		abort();
	gitaly__commit_stat_info__init(st);
	st->changed_files = (int32_t)files;
	if ((q = strstr(p, ", ")) && isdigit((unsigned char)q[2]) && strstr(q, "insertion"))
		st->additions = (int32_t)strtol(q + 2, NULL, 10);
	if ((q = strstr(p, "deletion"))) {
		const char *d = q;

		while (d > p && d[-1] == ' ')
			d--;
		while (d > p && isdigit((unsigned char)d[-1]))
			d--;
		st->deletions = (int32_t)strtol(d, NULL, 10);
	}
	*out = st;
	return 0;
}

static int log_record(void *ctx, char *rec, size_t len, struct error *err)
{
	struct log_state *st = ctx;
	Gitaly__GitCommit *c = NULL;
	char *stats = NULL, *refs = NULL, *trailers = NULL, *end = rec + len;
	size_t trailers_len = 0;
	char hex[GIT_OID_HEXSZ_MAX + 1];
	size_t hexlen;
	int found;

	/* Trim surrounding whitespace as upstream's strings.TrimSpace. */
	while (rec < end && isspace((unsigned char)*rec))
		rec++;
	while (end > rec && isspace((unsigned char)end[-1]))
		end--;
	*end = '\0';
	if (rec == end)
		return 0;
	if (st->skip > 0) {
		st->skip--;
		return 0;
	}
	if (st->shortstat && (stats = memchr(rec, '\n', (size_t)(end - rec)))) {
		*stats++ = '\0';
		end = stats - 1;
	}
	if (st->refs && (refs = memchr(rec, '\002', (size_t)(end - rec)))) {
		*refs++ = '\0';
		end = refs - 1;
	}
	if (st->trailers && (trailers = memchr(rec, '\0', (size_t)(end - rec)))) {
		trailers++;
		trailers_len = (size_t)(end - trailers);
	}
	hexlen = strspn(rec, "0123456789abcdef");
	if (hexlen > GIT_OID_HEXSZ_MAX)
		hexlen = GIT_OID_HEXSZ_MAX;
	memcpy(hex, rec, hexlen);
	hex[hexlen] = '\0';
	if (!commit_is_full_hex(hex)) {
		error_set(err, STATUS_INTERNAL, "parsing log output");
		return -1;
	}
	found = commit_read_hex(st->repo, hex, &c, err);
	if (found < 0)
		return -1;
	if (!found) {
		error_set(err, STATUS_INTERNAL, "cat-file get commit %.40s: object not found", rec);
		return -1;
	}
	if (refs)
		add_refs(c, refs, strlen(refs));
	if (trailers && trailers_len)
		add_trailers(c, trailers, trailers_len);
	if (stats && parse_shortstat(stats, &c->short_stats) < 0) {
		commit_gitcommit_free(c);
		error_set(err, STATUS_INTERNAL, "get stats: unexpected stats format");
		return -1;
	}
	return commit_chunker_add(&st->ch, c, protobuf_c_message_get_packed_size(&c->base), err) < 0 ? -1 : 0;
}

static int run_log(struct log_state *st, struct git_cmd *cmd, int delim, struct error *err)
{
	if (commit_run_lines(cmd, "log", delim, 1, log_record, st, err) < 0)
		return -1;
	return commit_chunker_flush(&st->ch, err);
}

int commit_find_all_rpc(struct rpc_call *call, struct error *err)
{
	const Gitaly__FindAllCommitsRequest *req = (const Gitaly__FindAllCommitsRequest *)rpc_call_request(call);
	struct log_state st = { 0 };
	struct commit_repo r;
	struct git_cmd *cmd;
	char flag[64], *rev = NULL;
	int ret = -1;

	commit_chunker_init(&st.ch, call, commit_send_commits, free_commit_item,
			    (void *)&gitaly__find_all_commits_response__descriptor);
	if (commit_repo_locate(call, req->repository, &r, err) < 0)
		goto out;
	if (revision_validate((const char *)req->revision.data, req->revision.len, REVISION_ALLOW_EMPTY, err) < 0)
		goto out;
	if (commit_repo_open(&r, err) < 0)
		goto out;
	st.repo = &r;
	cmd = commit_repo_git(&r, "log");
	git_cmd_flag(cmd, "--pretty=%H");
	if (req->max_count > 0) {
		snprintf(flag, sizeof(flag), "--max-count=%d", req->max_count);
		git_cmd_flag(cmd, flag);
	}
	if (req->skip > 0) {
		snprintf(flag, sizeof(flag), "--skip=%d", req->skip);
		git_cmd_flag(cmd, flag);
	}
	if (req->order == GITALY__FIND_ALL_COMMITS_REQUEST__ORDER__DATE)
		git_cmd_flag(cmd, "--date-order");
	else if (req->order == GITALY__FIND_ALL_COMMITS_REQUEST__ORDER__TOPO)
		git_cmd_flag(cmd, "--topo-order");
	if (req->revision.len) {
		rev = commit_bytes_dup(&req->revision);
		git_cmd_arg(cmd, rev);
	} else {
		/* Every branch: the same starting points as listing refs/heads. */
		git_cmd_pseudo_arg(cmd, "--branches");
	}
	ret = run_log(&st, cmd, '\n', err);
out:
	free(rev);
	commit_chunker_release(&st.ch);
	commit_repo_release(&r);
	return ret;
}

int commit_by_message_rpc(struct rpc_call *call, struct error *err)
{
	const Gitaly__CommitsByMessageRequest *req = (const Gitaly__CommitsByMessageRequest *)rpc_call_request(call);
	struct log_state st = { 0 };
	struct commit_repo r;
	struct git_cmd *cmd;
	char flag[64], *rev = NULL, *path = NULL;
	int ret = -1;

	commit_chunker_init(&st.ch, call, commit_send_commits, free_commit_item,
			    (void *)&gitaly__commits_by_message_response__descriptor);
	if (commit_repo_locate(call, req->repository, &r, err) < 0)
		goto out;
	if (revision_validate((const char *)req->revision.data, req->revision.len, REVISION_ALLOW_EMPTY, err) < 0)
		goto out;
	if (!req->query || !*req->query) {
		error_set(err, STATUS_INVALID_ARGUMENT, "empty Query");
		goto out;
	}
	if (commit_repo_open(&r, err) < 0)
		goto out;
	if (req->revision.len)
		rev = commit_bytes_dup(&req->revision);
	else if (commit_default_branch(&r, &rev, err) < 0)
		goto out;
	st.repo = &r;
	cmd = commit_repo_git(&r, "log");
	git_cmd_flag(cmd, "--pretty=%H");
	git_cmd_option(cmd, "--grep", req->query);
	git_cmd_flag(cmd, "--regexp-ignore-case");
	if (req->offset > 0) {
		snprintf(flag, sizeof(flag), "--skip=%d", req->offset);
		git_cmd_flag(cmd, flag);
	}
	if (req->limit > 0) {
		snprintf(flag, sizeof(flag), "--max-count=%d", req->limit);
		git_cmd_flag(cmd, flag);
	}
	if (*rev)
		git_cmd_arg(cmd, rev);
	if (req->path.len) {
		path = commit_bytes_dup(&req->path);
		git_cmd_path(cmd, path);
	}
	if (req->global_options && req->global_options->literal_pathspecs)
		git_cmd_setenv(cmd, "GIT_LITERAL_PATHSPECS", "1");
	ret = run_log(&st, cmd, '\n', err);
out:
	free(rev);
	free(path);
	commit_chunker_release(&st.ch);
	commit_repo_release(&r);
	return ret;
}

int commit_find_commits_rpc(struct rpc_call *call, struct error *err)
{
	const Gitaly__FindCommitsRequest *req = (const Gitaly__FindCommitsRequest *)rpc_call_request(call);
	struct log_state st = { 0 };
	struct commit_repo r;
	struct git_cmd *cmd;
	struct strbuf fmt = STRBUF_INIT;
	char flag[96], *rev = NULL, **paths = NULL;
	int manual_offset = req->follow && req->offset > 0;
	int32_t limit = req->limit;
	int ret = -1;

	commit_chunker_init(&st.ch, call, commit_send_commits, free_commit_item,
			    (void *)&gitaly__find_commits_response__descriptor);
	if (commit_repo_locate(call, req->repository, &r, err) < 0)
		goto out;
	if (revision_validate((const char *)req->revision.data, req->revision.len, REVISION_ALLOW_EMPTY, err) < 0)
		goto out;
	if (commit_repo_open(&r, err) < 0)
		goto out;
	if (req->revision.len) {
		rev = commit_bytes_dup(&req->revision);
	} else if (!req->all && commit_default_branch(&r, &rev, err) < 0) {
		err->code = STATUS_INTERNAL;
		error_prefix(err, "defaultBranchName");
		goto out;
	}
	for (size_t i = 0; i < req->n_paths; i++) {
		if (req->paths[i].len == 0) {
			error_set(err, STATUS_INVALID_ARGUMENT, "path is empty string");
			goto out;
		}
	}
	st.repo = &r;
	st.trailers = req->trailers;
	st.shortstat = req->include_shortstat;
	st.refs = req->n_include_referenced_by > 0;
	strbuf_adds(&fmt, req->include_shortstat ? "--format=%x01%H" : "--format=%H");
	if (req->trailers)
		strbuf_adds(&fmt, "%x00%(trailers:unfold,separator=%x00)");
	if (st.refs)
		strbuf_adds(&fmt, "%x02%D");
	cmd = commit_repo_git(&r, "log");
	git_cmd_flag(cmd, fmt.buf);
	if (req->offset > 0 && !manual_offset) {
		snprintf(flag, sizeof(flag), "--skip=%d", req->offset);
		git_cmd_flag(cmd, flag);
	}
	if (manual_offset) {
		limit += req->offset;
		st.skip = req->offset;
	}
	snprintf(flag, sizeof(flag), "--max-count=%d", limit);
	git_cmd_flag(cmd, flag);
	if (req->follow && req->n_paths > 0)
		git_cmd_flag(cmd, "--follow");
	if (req->author.len) {
		char *a = commit_bytes_dup(&req->author);

		git_cmd_option(cmd, "--author", a);
		free(a);
	}
	if (req->skip_merges)
		git_cmd_flag(cmd, "--no-merges");
	/* Upstream hands git the protobuf text form of the timestamp
	 * ("seconds:N"), which git's date parser reads as epoch seconds. */
	if (req->before) {
		snprintf(flag, sizeof(flag), "--before=seconds:%lld", (long long)req->before->seconds);
		git_cmd_flag(cmd, flag);
	}
	if (req->after) {
		snprintf(flag, sizeof(flag), "--after=seconds:%lld", (long long)req->after->seconds);
		git_cmd_flag(cmd, flag);
	}
	if (req->all) {
		git_cmd_flag(cmd, "--all");
		git_cmd_flag(cmd, "--reverse");
	}
	if (req->first_parent)
		git_cmd_flag(cmd, "--first-parent");
	if (req->order == GITALY__FIND_COMMITS_REQUEST__ORDER__TOPO)
		git_cmd_flag(cmd, "--topo-order");
	if (req->include_shortstat)
		git_cmd_flag(cmd, "--shortstat");
	if (st.refs) {
		git_cmd_flag(cmd, "--decorate=full");
		for (size_t i = 0; i < req->n_include_referenced_by; i++) {
			char *p = commit_bytes_dup(&req->include_referenced_by[i]);

			git_cmd_option(cmd, "--decorate-refs", p);
			free(p);
		}
	}
	if (rev && *rev)
		git_cmd_arg(cmd, rev);
	paths = calloc(req->n_paths + 1, sizeof(*paths));
	if (!paths)
		abort();
	for (size_t i = 0; i < req->n_paths; i++) {
		paths[i] = commit_bytes_dup(&req->paths[i]);
		git_cmd_path(cmd, paths[i]);
	}
	if (req->global_options && req->global_options->literal_pathspecs)
		git_cmd_setenv(cmd, "GIT_LITERAL_PATHSPECS", "1");
	ret = run_log(&st, cmd, req->include_shortstat ? '\001' : '\n', err);
out:
	for (size_t i = 0; paths && i < req->n_paths; i++)
		free(paths[i]);
	free(paths);
	strbuf_release(&fmt);
	free(rev);
	commit_chunker_release(&st.ch);
	commit_repo_release(&r);
	return ret;
}
