/*
 * Commit listings: ListCommits (git rev-list chooses the commits, so every
 * walk option means exactly what git says; each commit is then read
 * in-process), ListAllCommits (every commit object in the object database,
 * quarantine included, as `git cat-file --batch-all-objects` sees them),
 * both with upstream's page token (the last commit id seen) and limit;
 * LastCommitForPath (git log) and CheckObjectsExist (a bidi stream of
 * revisions resolved in-process).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "base/strbuf.h"
#include "git/command.h"
#include "git/revision.h"
#include "service/commit_internal.h"
#include "service/gitcommit.h"

#define STDERR_CAP 4096

static void free_commit_item(void *item)
{
	commit_gitcommit_free(item);
}

void commit_go_time(const Google__Protobuf__Timestamp *ts, char *buf, size_t len)
{
	time_t t = (time_t)ts->seconds;
	struct tm tm;

	if (!gmtime_r(&t, &tm)) {
		snprintf(buf, len, "@%lld", (long long)ts->seconds);
		return;
	}
	strftime(buf, len, "%Y-%m-%d %H:%M:%S +0000 UTC", &tm);
}

int commit_run_lines(struct git_cmd *cmd, const char *what, int delim, int ignore_exit,
		     int (*fn)(void *ctx, char *line, size_t len, struct error *err), void *ctx,
		     struct error *err)
{
	int out_fd = -1, err_fd = -1, stop = 0, ret = -1;
	pid_t pid;
	FILE *f = NULL;
	char *line = NULL;
	size_t cap = 0;
	ssize_t n;
	struct git_result res;
	char ebuf[STDERR_CAP];
	ssize_t elen = 0;

	if (git_cmd_start(cmd, NULL, &out_fd, &err_fd, &pid, err) < 0) {
		err->code = STATUS_INTERNAL;
		return -1;
	}
	f = fdopen(out_fd, "r");
	if (!f) {
		close(out_fd);
		git_cmd_kill(pid);
		error_set(err, STATUS_INTERNAL, "fdopen failed");
		goto wait;
	}
	while (!stop && (n = getdelim(&line, &cap, delim, f)) > 0) {
		if (line[n - 1] == delim)
			line[--n] = '\0';
		stop = fn(ctx, line, (size_t)n, err);
		if (stop < 0)
			break;
	}
	if (stop)
		git_cmd_kill(pid);
wait:
	if (f)
		fclose(f);
	/* Stderr is small; read what there is after stdout closed. */
	if (!stop) {
		ssize_t k;

		while (elen < (ssize_t)sizeof(ebuf) - 1 &&
		       (k = read(err_fd, ebuf + elen, sizeof(ebuf) - 1 - (size_t)elen)) > 0)
			elen += k;
	}
	ebuf[elen] = '\0';
	close(err_fd);
	git_cmd_wait(pid, &res);
	if (stop < 0 || error_is_set(err))
		goto out;
	if (!stop && !ignore_exit && res.exit_code != 0) {
		char *q = commit_quote(ebuf, (size_t)elen);

		error_set(err, STATUS_INTERNAL, "iterating objects: %s pipeline command: exit status %d, stderr: %s",
			  what, res.exit_code, q);
		free(q);
		goto out;
	}
	ret = 0;
out:
	free(line);
	return ret;
}

struct list_state {
	struct commit_chunker ch;
	struct commit_repo *repo;
	const char *token;   /* skip up to and including this id */
	int waiting;
	int commits_only;    /* cat-file lines: "<oid> <type> <size>" */
	int32_t limit;
	int32_t sent;
};

static int list_line(void *ctx, char *line, size_t len, struct error *err)
{
	struct list_state *st = ctx;
	Gitaly__GitCommit *c = NULL;
	char *sp = memchr(line, ' ', len);
	int found;

	if (sp)
		*sp = '\0';
	if (st->waiting) {
		st->waiting = strcmp(line, st->token) != 0;
		return 0;
	}
	if (st->commits_only && (!sp || strncmp(sp + 1, "commit ", 7)))
		return 0;
	if (st->limit > 0 && st->sent >= st->limit)
		return 1;
	if (!commit_is_full_hex(line)) {
		error_set(err, STATUS_INTERNAL, "parsing object id %s", line);
		return -1;
	}
	found = commit_read_hex(st->repo, line, &c, err);
	if (found < 0)
		return -1;
	if (!found) {
		error_set(err, STATUS_INTERNAL, "iterating objects: object not found: %s", line);
		return -1;
	}
	st->sent++;
	if (commit_chunker_add(&st->ch, c, protobuf_c_message_get_packed_size(&c->base), err) < 0)
		return -1;
	return 0;
}

/*
 * ListCommits without git, for the plain case (positive revisions, no
 * option): git rev-list's default walk redone in-process. git keeps the
 * commits to visit in a list ordered by committer date, newest first, a
 * commit going after every queued one of the same or a later date; it
 * pops the head, outputs it, and inserts its not yet seen parents. The
 * start commits are ordered the same way (a stable sort by date). Each
 * commit is read once: its date and parents come from the same object the
 * response is built from. Anything else (ranges, exclusions, options,
 * grafts, shallow repositories, a revision libgit2 cannot
 * resolve to a commit) stays with rev-list. Replace refs are ignored, as
 * by gitaly's git (core.useReplaceRefs=false).
 */
struct walk_node {
	git_oid oid;
	git_odb_object *obj;
	int64_t date;
	struct walk_node *next;
};

struct walk_state {
	git_odb *odb;
	struct walk_node *queue;
	git_oid *seen; /* open addressing; all-zero = empty slot */
	size_t seen_cap, seen_used;
};

static const git_oid zero_oid;

/* Adds oid to the seen set; 0 when it was already there. */
static int walk_see(struct walk_state *w, const git_oid *oid)
{
	size_t mask, h;

	if ((w->seen_used + 1) * 2 > w->seen_cap) {
		git_oid *old = w->seen;
		size_t old_cap = w->seen_cap;

		w->seen_cap = old_cap ? old_cap * 2 : 4096;
		w->seen = calloc(w->seen_cap, sizeof(*w->seen));
		if (!w->seen)
			abort();
		w->seen_used = 0;
		for (size_t i = 0; i < old_cap; i++)
			if (!git_oid_equal(&old[i], &zero_oid))
				walk_see(w, &old[i]);
		free(old);
	}
	mask = w->seen_cap - 1;
	memcpy(&h, oid->id, sizeof(h));
	for (h &= mask; !git_oid_equal(&w->seen[h], &zero_oid); h = (h + 1) & mask)
		if (git_oid_equal(&w->seen[h], oid))
			return 0;
	git_oid_cpy(&w->seen[h], oid);
	w->seen_used++;
	return 1;
}

/* git's parse_commit_date: the committer timestamp, when the header is
 * tree, parents, author, committer in that order; 0 otherwise. */
static int64_t walk_commit_date(const char *p, size_t len)
{
	const char *end = p + len, *nl;

	while (p < end && (nl = memchr(p, '\n', (size_t)(end - p)))) {
		if (!strncmp(p, "tree ", 5) || !strncmp(p, "parent ", 7)) {
			p = nl + 1;
			continue;
		}
		if (strncmp(p, "author", 6))
			return 0;
		p = nl + 1;
		if (p >= end || (size_t)(end - p) < 9 || strncmp(p, "committer", 9))
			return 0;
		nl = memchr(p, '\n', (size_t)(end - p));
		end = nl ? nl : end;
		p = memchr(p, '>', (size_t)(end - p));
		if (!p)
			return 0;
		p++;
		while (p < end && *p == ' ')
			p++;
		{
			int64_t v = 0;

			if (p >= end || *p < '0' || *p > '9')
				return 0;
			for (; p < end && *p >= '0' && *p <= '9'; p++)
				v = v * 10 + (*p - '0');
			return v;
		}
	}
	return 0;
}

/* Reads a commit into a queue node and inserts it by date. */
static int walk_push(struct walk_state *w, const git_oid *oid, struct error *err)
{
	struct walk_node *n, **pp;
	git_odb_object *obj = NULL;
	char hex[GIT_OID_HEXSZ + 1];

	if (git_odb_read(&obj, w->odb, oid) < 0 || git_odb_object_type(obj) != GIT_OBJECT_COMMIT) {
		git_odb_object_free(obj);
		git_oid_tostr(hex, sizeof(hex), oid);
		return error_set(err, STATUS_INTERNAL, "rev-list: could not read commit %s", hex);
	}
	n = malloc(sizeof(*n));
	if (!n)
		abort();
	git_oid_cpy(&n->oid, oid);
	n->obj = obj;
	n->date = walk_commit_date(git_odb_object_data(obj), git_odb_object_size(obj));
	for (pp = &w->queue; *pp && (*pp)->date >= n->date; pp = &(*pp)->next)
		;
	n->next = *pp;
	*pp = n;
	return 0;
}

/* Queues the parents of a commit that were not seen yet, in order. */
static int walk_parents(struct walk_state *w, const char *p, size_t len, struct error *err)
{
	const char *end = p + len, *nl;

	while (p < end && (nl = memchr(p, '\n', (size_t)(end - p))) && nl != p) {
		git_oid parent;

		if ((size_t)(nl - p) == 7 + GIT_OID_HEXSZ && !strncmp(p, "parent ", 7) &&
		    git_oid_fromstrn(&parent, p + 7, GIT_OID_HEXSZ) == 0 && walk_see(w, &parent) &&
		    walk_push(w, &parent, err) < 0)
			return -1;
		p = nl + 1;
	}
	return 0;
}

/* A revision the in-process walk resolves exactly as rev-list would. */
static int walk_plain_revision(const char *rev)
{
	return rev[0] && rev[0] != '-' && rev[0] != '^' && rev[0] != ':' && !strstr(rev, "..") &&
	       !strstr(rev, "^@") && !strstr(rev, "^!") && !strstr(rev, "^-") && !strstr(rev, "@{") &&
	       !strchr(rev, ':') && !strchr(rev, '{');
}

static int list_walkable(const Gitaly__ListCommitsRequest *req)
{
	if (req->order != GITALY__LIST_COMMITS_REQUEST__ORDER__NONE || req->reverse ||
	    req->max_parents || req->disable_walk || req->first_parent || req->before || req->after ||
	    req->author.len || req->n_commit_message_patterns)
		return 0;
	for (size_t i = 0; i < req->n_revisions; i++)
		if (!walk_plain_revision(req->revisions[i]))
			return 0;
	return 1;
}

/* Nothing in the repository that makes rev-list see other parents (replace
 * refs are off in gitaly's git: core.useReplaceRefs=false). */
static int walk_history_plain(git_repository *repo)
{
	struct strbuf path = STRBUF_INIT;
	int plain;

	if (git_repository_is_shallow(repo))
		return 0;
	strbuf_adds(&path, git_repository_commondir(repo));
	strbuf_adds(&path, "info/grafts");
	plain = access(path.buf, F_OK) != 0;
	strbuf_release(&path);
	return plain;
}

static void walk_release(struct walk_state *w)
{
	while (w->queue) {
		struct walk_node *n = w->queue;

		w->queue = n->next;
		git_odb_object_free(n->obj);
		free(n);
	}
	free(w->seen);
	git_odb_free(w->odb);
}

/*
 * Walks the revisions in-process when the request allows it: 1 when done
 * (commits sent through st), 0 when rev-list must answer, -1 on error.
 */
static int list_walk(const Gitaly__ListCommitsRequest *req, git_repository *repo,
		     struct list_state *st, struct error *err)
{
	struct walk_state w;
	int ret = -1;

	memset(&w, 0, sizeof(w));
	if (!list_walkable(req) || !walk_history_plain(repo))
		return 0;
	if (git_repository_odb(&w.odb, repo) < 0)
		return 0;
	for (size_t i = 0; i < req->n_revisions; i++) {
		git_object *obj = NULL, *commit = NULL;
		int found = commit_resolve(repo, req->revisions[i], &obj, err);

		if (found < 0)
			goto out;
		if (!found || git_object_peel(&commit, obj, GIT_OBJECT_COMMIT) < 0) {
			git_object_free(obj);
			ret = 0;
			goto out;
		}
		if (walk_see(&w, git_object_id(commit)) && walk_push(&w, git_object_id(commit), err) < 0) {
			git_object_free(commit);
			git_object_free(obj);
			goto out;
		}
		git_object_free(commit);
		git_object_free(obj);
	}
	while (w.queue) {
		struct walk_node *n = w.queue;
		const char *data = git_odb_object_data(n->obj);
		size_t len = git_odb_object_size(n->obj);
		char hex[GIT_OID_HEXSZ + 1];
		Gitaly__GitCommit *c = NULL;

		w.queue = n->next;
		git_oid_tostr(hex, sizeof(hex), &n->oid);
		if (walk_parents(&w, data, len, err) < 0 ||
		    (!st->waiting && (st->limit <= 0 || st->sent < st->limit) &&
		     gitcommit_parse(hex, data, len, &c, err) < 0)) {
			git_odb_object_free(n->obj);
			free(n);
			goto out;
		}
		git_odb_object_free(n->obj);
		free(n);
		if (st->waiting) {
			st->waiting = strcmp(hex, st->token) != 0;
			continue;
		}
		if (st->limit > 0 && st->sent >= st->limit)
			break;
		st->sent++;
		if (commit_chunker_add(&st->ch, c, protobuf_c_message_get_packed_size(&c->base), err) < 0)
			goto out;
	}
	ret = 1;
out:
	walk_release(&w);
	return ret;
}

int commit_list_rpc(struct rpc_call *call, struct error *err)
{
	const Gitaly__ListCommitsRequest *req = (const Gitaly__ListCommitsRequest *)rpc_call_request(call);
	struct list_state st = { 0 };
	struct commit_repo r;
	struct git_cmd *cmd = NULL;
	char buf[128], flag[192];
	char **patterns = NULL;
	int ret = -1;

	commit_chunker_init(&st.ch, call, commit_send_commits, free_commit_item,
			    (void *)&gitaly__list_commits_response__descriptor);
	if (commit_repo_locate(call, req->repository, &r, err) < 0)
		goto out;
	if (req->n_revisions == 0) {
		error_set(err, STATUS_INVALID_ARGUMENT, "missing revisions");
		goto out;
	}
	for (size_t i = 0; i < req->n_revisions; i++) {
		if (revision_validate(req->revisions[i], strlen(req->revisions[i]), REVISION_ALLOW_PSEUDO, err) < 0) {
			error_prefix(err, "invalid revision");
			goto out;
		}
	}
	if (commit_repo_open(&r, err) < 0)
		goto out;
	st.repo = &r;
	if (req->pagination_params) {
		st.limit = req->pagination_params->limit;
		st.token = req->pagination_params->page_token;
		st.waiting = st.token && *st.token;
	}
	/* The in-process walk reads through libgit2 (SHA-1 only); a SHA-256
	 * repository's cat-file handle leaves the request to rev-list. */
	ret = r.git ? list_walk(req, r.git, &st, err) : 0;
	if (ret != 0) {
		if (ret > 0)
			ret = commit_chunker_flush(&st.ch, err);
		goto out;
	}
	ret = -1;
	cmd = commit_repo_git(&r, "rev-list");
	if (req->order == GITALY__LIST_COMMITS_REQUEST__ORDER__TOPO)
		git_cmd_flag(cmd, "--topo-order");
	else if (req->order == GITALY__LIST_COMMITS_REQUEST__ORDER__DATE)
		git_cmd_flag(cmd, "--date-order");
	if (req->reverse)
		git_cmd_flag(cmd, "--reverse");
	if (req->max_parents > 0) {
		snprintf(flag, sizeof(flag), "--max-parents=%u", req->max_parents);
		git_cmd_flag(cmd, flag);
	}
	if (req->disable_walk)
		git_cmd_flag(cmd, "--no-walk");
	if (req->first_parent)
		git_cmd_flag(cmd, "--first-parent");
	if (req->before) {
		commit_go_time(req->before, buf, sizeof(buf));
		snprintf(flag, sizeof(flag), "--before=%s", buf);
		git_cmd_flag(cmd, flag);
	}
	if (req->after) {
		commit_go_time(req->after, buf, sizeof(buf));
		snprintf(flag, sizeof(flag), "--after=%s", buf);
		git_cmd_flag(cmd, flag);
	}
	if (req->author.len) {
		char *a = commit_bytes_dup(&req->author);

		git_cmd_option(cmd, "--author", a);
		free(a);
	}
	if (req->ignore_case)
		git_cmd_flag(cmd, "--regexp-ignore-case");
	patterns = calloc(req->n_commit_message_patterns + 1, sizeof(*patterns));
	if (!patterns)
		abort();
	for (size_t i = 0; i < req->n_commit_message_patterns; i++) {
		patterns[i] = commit_bytes_dup(&req->commit_message_patterns[i]);
		git_cmd_option(cmd, "--grep", patterns[i]);
	}
	for (size_t i = 0; i < req->n_revisions; i++) {
		if (git_pseudo_revision_valid(req->revisions[i]))
			git_cmd_pseudo_arg(cmd, req->revisions[i]);
		else
			git_cmd_arg(cmd, req->revisions[i]);
	}
	ret = commit_run_lines(cmd, "rev-list", '\n', 0, list_line, &st, err);
	cmd = NULL;
	if (ret == 0)
		ret = commit_chunker_flush(&st.ch, err);
out:
	git_cmd_free(cmd);
	for (size_t i = 0; patterns && i < req->n_commit_message_patterns; i++)
		free(patterns[i]);
	free(patterns);
	commit_chunker_release(&st.ch);
	commit_repo_release(&r);
	return ret;
}

int commit_list_all_rpc(struct rpc_call *call, struct error *err)
{
	const Gitaly__ListAllCommitsRequest *req = (const Gitaly__ListAllCommitsRequest *)rpc_call_request(call);
	struct list_state st = { 0 };
	struct commit_repo r;
	struct git_cmd *cmd;
	int ret = -1;

	commit_chunker_init(&st.ch, call, commit_send_commits, free_commit_item,
			    (void *)&gitaly__list_all_commits_response__descriptor);
	if (commit_repo_locate(call, req->repository, &r, err) < 0)
		goto out;
	if (commit_repo_open(&r, err) < 0)
		goto out;
	cmd = commit_repo_git(&r, "cat-file");
	git_cmd_flag(cmd, "--batch-check");
	git_cmd_flag(cmd, "--batch-all-objects");
	git_cmd_flag(cmd, "--buffer");
	git_cmd_flag(cmd, "--unordered");
	st.repo = &r;
	st.commits_only = 1;
	if (req->pagination_params) {
		st.limit = req->pagination_params->limit;
		st.token = req->pagination_params->page_token;
		st.waiting = st.token && *st.token;
	}
	ret = commit_run_lines(cmd, "cat-file", '\n', 0, list_line, &st, err);
	if (ret == 0)
		ret = commit_chunker_flush(&st.ch, err);
out:
	commit_chunker_release(&st.ch);
	commit_repo_release(&r);
	return ret;
}

int commit_last_commit(struct commit_repo *r, const char *rev, const char *path, int literal,
		       Gitaly__GitCommit **out, struct error *err)
{
	struct git_cmd *cmd = commit_repo_git(r, "log");
	struct git_result res;
	struct strbuf buf;
	int ret = -1;

	*out = NULL;
	strbuf_init(&buf, 4096);
	git_cmd_flag(cmd, "--format=%H");
	git_cmd_flag(cmd, "--max-count=1");
	git_cmd_arg(cmd, rev);
	git_cmd_path(cmd, path);
	if (literal)
		git_cmd_setenv(cmd, "GIT_LITERAL_PATHSPECS", "1");
	if (git_cmd_run(cmd, NULL, 0, &buf, NULL, &res, err) < 0) {
		err->code = STATUS_INTERNAL;
		goto out;
	}
	if (res.exit_code != 0) {
		error_set(err, STATUS_INTERNAL, "logging last commit for path: exit status %d", res.exit_code);
		goto out;
	}
	if (buf.len) {
		if (buf.buf[buf.len - 1] != '\n' || memchr(buf.buf, '\n', buf.len) != buf.buf + buf.len - 1) {
			error_set(err, STATUS_INTERNAL, "expected object ID terminated by newline");
			goto out;
		}
		buf.buf[--buf.len] = '\0';
		if (!commit_is_full_hex(buf.buf)) {
			error_set(err, STATUS_INTERNAL, "invalid object ID %s", buf.buf);
			goto out;
		}
		if (commit_read_hex(r, buf.buf, out, err) < 0)
			goto out;
	}
	ret = 0;
out:
	strbuf_release(&buf);
	return ret;
}

int commit_last_for_path_rpc(struct rpc_call *call, struct error *err)
{
	const Gitaly__LastCommitForPathRequest *req =
		(const Gitaly__LastCommitForPathRequest *)rpc_call_request(call);
	Gitaly__LastCommitForPathResponse resp = GITALY__LAST_COMMIT_FOR_PATH_RESPONSE__INIT;
	struct commit_repo r;
	Gitaly__GitCommit *c = NULL;
	char *rev = NULL, *path = NULL;
	int ret = -1;

	if (commit_repo_locate(call, req->repository, &r, err) < 0)
		goto out;
	if (revision_validate((const char *)req->revision.data, req->revision.len, 0, err) < 0)
		goto out;
	path = commit_bytes_dup(&req->path);
	if (!*path || !strcmp(path, "/")) {
		free(path);
		path = strdup(".");
	} else if (path[0] == '/') {
		error_set(err, STATUS_INVALID_ARGUMENT, "path is an absolute path");
		goto out;
	} else {
		char *clean = commit_path_clean(path);
		int escapes = !strcmp(clean, "..") || !strncmp(clean, "../", 3);

		free(clean);
		if (escapes) {
			error_set(err, STATUS_INVALID_ARGUMENT, "path escapes repository");
			goto out;
		}
	}
	if (commit_repo_open(&r, err) < 0)
		goto out;
	rev = commit_bytes_dup(&req->revision);
	if (commit_last_commit(&r, rev, path,
			       req->literal_pathspec || (req->global_options && req->global_options->literal_pathspecs),
			       &c, err) < 0)
		goto out;
	resp.commit = c;
	ret = rpc_call_send(call, &resp.base, err);
out:
	commit_gitcommit_free(c);
	free(rev);
	free(path);
	commit_repo_release(&r);
	return ret;
}

static void free_existence(void *item)
{
	Gitaly__CheckObjectsExistResponse__RevisionExistence *e = item;

	free(e->name.data);
	free(e);
}

static int send_existence(struct commit_chunker *ch, void **items, size_t n, struct error *err)
{
	Gitaly__CheckObjectsExistResponse resp = GITALY__CHECK_OBJECTS_EXIST_RESPONSE__INIT;

	resp.n_revisions = n;
	resp.revisions = (Gitaly__CheckObjectsExistResponse__RevisionExistence **)items;
	return rpc_call_send(ch->call, &resp.base, err);
}

int commit_check_objects_exist_rpc(struct rpc_call *call, struct error *err)
{
	const Gitaly__CheckObjectsExistRequest *req =
		(const Gitaly__CheckObjectsExistRequest *)rpc_call_request(call);
	struct commit_chunker ch;
	struct commit_repo r = { 0 };
	ProtobufCMessage *next = NULL;
	int ret = -1;

	commit_chunker_init(&ch, call, send_existence, free_existence, NULL);
	if (!req) {
		/* Upstream (and Praefect) return io.EOF itself here. */
		error_set(err, STATUS_UNKNOWN, "EOF");
		goto out;
	}
	if (commit_repo_locate(call, req->repository, &r, err) < 0)
		goto out;
	if (commit_repo_open(&r, err) < 0)
		goto out;
	for (;;) {
		for (size_t i = 0; i < req->n_revisions; i++) {
			if (revision_validate((const char *)req->revisions[i].data, req->revisions[i].len,
					      REVISION_ALLOW_PATH, err) < 0) {
				error_prefix(err, "invalid revision");
				goto out;
			}
		}
		for (size_t i = 0; i < req->n_revisions; i++) {
			Gitaly__CheckObjectsExistResponse__RevisionExistence *e = calloc(1, sizeof(*e));
			char *rev = commit_bytes_dup(&req->revisions[i]), oid[ODB_OID_MAX];
			int found = commit_resolve_oid(&r, rev, GIT_OBJECT_ANY, oid, err);

			free(rev);
			if (!e)
				abort();
			gitaly__check_objects_exist_response__revision_existence__init(e);
			e->name.len = req->revisions[i].len;
			e->name.data = malloc(e->name.len + 1);
			if (!e->name.data)
				abort();
			if (e->name.len)
				memcpy(e->name.data, req->revisions[i].data, e->name.len);
			if (found < 0) {
				free_existence(e);
				error_prefix(err, "checking object existence");
				goto out;
			}
			e->exists = found;
			if (commit_chunker_add(&ch, e, protobuf_c_message_get_packed_size(&e->base), err) < 0)
				goto out;
		}
		if (next)
			rpc_call_free_message(call, next);
		next = NULL;
		ret = rpc_call_recv(call, &next, err);
		if (ret < 0) {
			err->code = STATUS_INTERNAL;
			error_prefix(err, "receiving request");
			goto out;
		}
		if (ret == 0)
			break;
		req = (const Gitaly__CheckObjectsExistRequest *)next;
	}
	ret = commit_chunker_flush(&ch, err);
out:
	if (next)
		rpc_call_free_message(call, next);
	commit_chunker_release(&ch);
	commit_repo_release(&r);
	return ret;
}
