/*
 * FindChangedPaths: every revision of the request is resolved first (one
 * `git cat-file --batch-check`, as upstream asks its object info reader for
 * "<rev>^{commit}" or "<rev>^{tree}"), then one
 * `git diff-tree -z --stdin -r --no-renames --no-commit-id
 * --diff-filter=AMDTC` with -m (or -c for ALL_PARENTS) lists the changes;
 * paths go out in messages below 1 MiB, as upstream's chunker.
 */
#include <errno.h>
#include <limits.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "diff.pb-c.h"
#include "git/diffparse.h"
#include "service/diff_internal.h"
#include "service/util.h"

#define CHUNK_MAX ((size_t)1 << 20)
#define CATFILE_OUT_CAP ((size_t)64 << 20)

static int hex_ok(const char *s, size_t len)
{
	for (size_t i = 0; i < len; i++)
		if (!strchr("0123456789abcdef", s[i]) || !s[i])
			return 0;
	return 1;
}

/* Whether line (without newline) is "<oid> <type> <size>" for type. */
static int info_line(const char *l, size_t len, const char *type, size_t *oid_len)
{
	const char *sp = memchr(l, ' ', len);
	size_t olen = sp ? (size_t)(sp - l) : 0, tlen = strlen(type);
	const char *p;

	if (!sp || (olen != 40 && olen != 64) || !hex_ok(l, olen))
		return 0;
	p = sp + 1;
	if ((size_t)(l + len - p) < tlen + 2 || memcmp(p, type, tlen) || p[tlen] != ' ')
		return 0;
	for (p += tlen + 1; p < l + len; p++)
		if (*p < '0' || *p > '9')
			return 0;
	*oid_len = olen;
	return 1;
}

/* One revision to resolve: where it goes in the diff-tree input. */
struct rev_slot {
	const char *rev;
	const char *type;   /* "commit" or "tree" */
	const char *prefix; /* upstream's message prefix */
	char oid[65];
	int found;
};

/* Resolves every slot with one cat-file; slots whose rev cannot be asked
 * (empty, newline) are left unfound. */
static int resolve_all(struct rpc_call *call, const char *path, const struct service_git_env *genv,
		       struct rev_slot *slots, size_t n, struct error *err)
{
	struct strbuf in = STRBUF_INIT, out = STRBUF_INIT;
	struct git_result res;
	struct git_cmd *cmd;
	size_t *asked = NULL, n_asked = 0;
	const char *p, *end;
	int ret = -1;

	strbuf_init(&out, CATFILE_OUT_CAP);
	asked = calloc(n + 1, sizeof(*asked));
	if (!asked) {
		error_set(err, STATUS_INTERNAL, "out of memory");
		goto out;
	}
	for (size_t i = 0; i < n; i++) {
		if (!*slots[i].rev || strchr(slots[i].rev, '\n'))
			continue;
		if (strbuf_addf(&in, "%s^{%s}\n", slots[i].rev, slots[i].type) < 0) {
			error_set(err, STATUS_INTERNAL, "out of memory");
			goto out;
		}
		asked[n_asked++] = i;
	}
	if (!n_asked) {
		ret = 0;
		goto out;
	}
	cmd = diff_git_new(call, path, genv, "cat-file");
	git_cmd_flag(cmd, "--batch-check");
	if (git_cmd_run(cmd, in.buf, in.len, &out, NULL, &res, err) < 0) {
		error_prefix(err, "getting object info reader");
		err->code = STATUS_INTERNAL;
		goto out;
	}
	if (!diff_exit_ok(&res)) {
		diff_exit_error(&res, STATUS_INTERNAL, "getting object info reader", err);
		goto out;
	}
	p = out.buf ? out.buf : "";
	end = p + out.len;
	for (size_t k = 0; k < n_asked && p < end; k++) {
		const char *nl = memchr(p, '\n', (size_t)(end - p));
		size_t len = 0;
		struct rev_slot *s = &slots[asked[k]];

		/* "<oid> <type> <size>" when found; "<rev> missing" otherwise. */
		if (info_line(p, (size_t)((nl ? nl : end) - p), s->type, &len)) {
			memcpy(s->oid, p, len);
			s->oid[len] = '\0';
			s->found = 1;
		}
		p = nl ? nl + 1 : end;
	}
	ret = 0;
out:
	free(asked);
	strbuf_release(&in);
	strbuf_release(&out);
	return ret;
}

/* The diff-tree input fed while its output is read, so neither side can
 * block the other. */
struct feed {
	int out_fd, in_fd;
	const char *data;
	size_t len, off;
};

static ssize_t feed_read(void *ctx, void *buf, size_t len)
{
	struct feed *f = ctx;

	for (;;) {
		struct pollfd fds[2] = { { f->out_fd, POLLIN, 0 }, { f->in_fd, POLLOUT, 0 } };

		if (f->in_fd < 0)
			return read(f->out_fd, buf, len);
		if (poll(fds, 2, -1) < 0) {
			if (errno == EINTR)
				continue;
			return -1;
		}
		if (fds[1].revents) {
			size_t n = f->len - f->off;
			ssize_t w;

			if (n > PIPE_BUF)
				n = PIPE_BUF;
			w = (fds[1].revents & POLLOUT) ? write(f->in_fd, f->data + f->off, n) : -1;
			if (w > 0)
				f->off += (size_t)w;
			if (w < 0 && errno == EINTR)
				continue;
			if (w <= 0 || f->off == f->len) {
				close(f->in_fd);
				f->in_fd = -1;
			}
		}
		if (fds[0].revents)
			return read(f->out_fd, buf, len);
	}
}

/* Upstream's chunker: items collect until the next would reach 1 MiB. */
struct chunker {
	Gitaly__ChangedPaths *items;
	Gitaly__ChangedPaths **ptrs;
	size_t n, alloc, size;
};

static void chunker_clear(struct chunker *c)
{
	for (size_t i = 0; i < c->n; i++)
		free(c->items[i].path.data);
	c->n = 0;
	c->size = 0;
}

static int chunker_send(struct rpc_call *call, struct chunker *c, struct error *err)
{
	Gitaly__FindChangedPathsResponse resp = GITALY__FIND_CHANGED_PATHS_RESPONSE__INIT;
	int ret = 0;

	for (size_t i = 0; i < c->n; i++)
		c->ptrs[i] = &c->items[i];
	resp.n_paths = c->n;
	resp.paths = c->ptrs;
	if (rpc_call_send(call, &resp.base, err) < 0) {
		error_prefix(err, "parsing err: err sending to chunker");
		ret = -1;
	}
	chunker_clear(c);
	return ret;
}

static int chunker_add(struct rpc_call *call, struct chunker *c, const struct strbuf *path,
		       const struct diff_tree_change *ch, Gitaly__ChangedPaths__Status status,
		       struct error *err)
{
	Gitaly__ChangedPaths item = GITALY__CHANGED_PATHS__INIT;
	size_t size;

	item.path.data = (uint8_t *)path->buf;
	item.path.len = path->len;
	item.status = status;
	item.old_mode = ch->old_mode;
	item.new_mode = ch->new_mode;
	size = protobuf_c_message_get_packed_size(&item.base);
	if (size + c->size >= CHUNK_MAX && chunker_send(call, c, err) < 0)
		return -1;
	if (c->n == c->alloc) {
		size_t alloc = c->alloc ? c->alloc * 2 : 64;
		Gitaly__ChangedPaths *items = realloc(c->items, alloc * sizeof(*items));
		Gitaly__ChangedPaths **ptrs;

		if (!items)
			return error_set(err, STATUS_INTERNAL, "out of memory");
		c->items = items;
		ptrs = realloc(c->ptrs, alloc * sizeof(*ptrs));
		if (!ptrs)
			return error_set(err, STATUS_INTERNAL, "out of memory");
		c->ptrs = ptrs;
		c->alloc = alloc;
	}
	item.path.data = malloc(path->len + 1);
	if (!item.path.data)
		return error_set(err, STATUS_INTERNAL, "out of memory");
	if (path->len)
		memcpy(item.path.data, path->buf, path->len);
	c->items[c->n++] = item;
	c->size += size;
	return 0;
}

static int status_of(char s, Gitaly__ChangedPaths__Status *out)
{
	switch (s) {
	case 'M': *out = GITALY__CHANGED_PATHS__STATUS__MODIFIED; return 0;
	case 'D': *out = GITALY__CHANGED_PATHS__STATUS__DELETED; return 0;
	case 'T': *out = GITALY__CHANGED_PATHS__STATUS__TYPE_CHANGE; return 0;
	case 'C': *out = GITALY__CHANGED_PATHS__STATUS__COPIED; return 0;
	case 'A': *out = GITALY__CHANGED_PATHS__STATUS__ADDED; return 0;
	default: return -1;
	}
}

/* Runs diff-tree on input and streams its records. */
static int list_changes(struct rpc_call *call, const char *path,
			const struct service_git_env *genv, int mode, const struct strbuf *input,
			struct error *err)
{
	struct diff_tree_record rec;
	struct chunker ch = { 0 };
	struct feed feed = { -1, -1, input->buf, input->len, 0 };
	struct diff_reader rd;
	struct git_result res;
	struct git_cmd *cmd;
	pid_t pid = -1;
	int ret = -1, started = 0;

	diff_tree_record_init(&rec);
	diff_reader_init_fd(&rd, -1);
	cmd = diff_git_new(call, path, genv, "diff-tree");
	git_cmd_flag(cmd, "-z");
	git_cmd_flag(cmd, "--stdin");
	git_cmd_flag(cmd, "-r");
	git_cmd_flag(cmd, "--no-renames");
	git_cmd_flag(cmd, "--no-commit-id");
	git_cmd_flag(cmd, "--diff-filter=AMDTC");
	if (mode == GITALY__FIND_CHANGED_PATHS_REQUEST__MERGE_COMMIT_DIFF_MODE__MERGE_COMMIT_DIFF_MODE_UNSPECIFIED ||
	    mode == GITALY__FIND_CHANGED_PATHS_REQUEST__MERGE_COMMIT_DIFF_MODE__MERGE_COMMIT_DIFF_MODE_INCLUDE_MERGES)
		git_cmd_flag(cmd, "-m");
	else if (mode == GITALY__FIND_CHANGED_PATHS_REQUEST__MERGE_COMMIT_DIFF_MODE__MERGE_COMMIT_DIFF_MODE_ALL_PARENTS)
		git_cmd_flag(cmd, "-c");
	if (git_cmd_start(cmd, &feed.in_fd, &feed.out_fd, NULL, &pid, err) < 0) {
		error_prefix(err, "cmd err");
		err->code = STATUS_INTERNAL;
		goto out;
	}
	started = 1;
	rd.read = feed_read;
	rd.ctx = &feed;
	for (;;) {
		int got = diffparse_tree_next(&rd, &rec, err);

		if (got < 0) {
			error_prefix(err, "parsing err: next path err");
			goto out;
		}
		if (!got)
			break;
		for (size_t i = 0; i < rec.n_changes; i++) {
			Gitaly__ChangedPaths__Status st;

			if (status_of(rec.changes[i].status, &st) < 0) {
				char *all = calloc(rec.n_changes + 1, 1);

				for (size_t k = 0; all && k < rec.n_changes; k++)
					all[k] = rec.changes[k].status;
				error_set(err, STATUS_INTERNAL,
					  "parsing err: next path err: unknown changed paths returned: %s",
					  all ? all : "");
				free(all);
				goto out;
			}
			if (chunker_add(call, &ch, &rec.path, &rec.changes[i], st, err) < 0)
				goto out;
		}
	}
	ret = 0;
out:
	diff_reader_release(&rd);
	if (feed.in_fd >= 0)
		close(feed.in_fd);
	if (feed.out_fd >= 0)
		close(feed.out_fd);
	if (started) {
		if (ret < 0)
			git_cmd_kill(pid);
		git_cmd_wait(pid, &res);
		if (ret == 0 && !diff_exit_ok(&res))
			ret = diff_exit_error(&res, STATUS_FAILED_PRECONDITION, "cmd wait err", err);
	}
	if (ret == 0 && ch.size)
		ret = chunker_send(call, &ch, err);
	chunker_clear(&ch);
	free(ch.items);
	free(ch.ptrs);
	diff_tree_record_release(&rec);
	return ret;
}

static int slot_error(const struct rev_slot *s, struct error *err)
{
	struct strbuf q = STRBUF_INIT;

	if (!*s->rev)
		return error_set(err, STATUS_INVALID_ARGUMENT, "%s: revision cannot be empty",
				 s->prefix);
	service_go_quote(&q, s->rev, strlen(s->rev));
	error_set(err, STATUS_NOT_FOUND, "%s: revision can not be found: %s", s->prefix,
		  q.buf ? q.buf : "\"\"");
	strbuf_release(&q);
	return -1;
}

int diff_find_changed_paths_rpc(struct rpc_call *call, struct error *err)
{
	const struct service_deps *deps = rpc_call_service_data(call);
	const Gitaly__FindChangedPathsRequest *req =
		(const Gitaly__FindChangedPathsRequest *)rpc_call_request(call);
	struct service_git_env genv = { 0 };
	struct strbuf input = STRBUF_INIT;
	struct rev_slot *slots = NULL;
	size_t n_slots = 0, cap = 0, k;
	char *path = NULL;
	int ret = -1;
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wdeprecated-declarations"
	size_t n_commits = req->n_commits;
	char **commits = req->commits;
#pragma GCC diagnostic pop

	if (service_repo_path(deps, req->repository, 0, &path, err) < 0)
		goto out;
	if (n_commits && req->n_requests) {
		error_set(err, STATUS_INVALID_ARGUMENT, "cannot specify both commits and requests");
		goto out;
	}
	if (service_git_env_init(&genv, path, req->repository, err) < 0)
		goto out;
	/* Every revision of the request, in upstream's resolution order. */
	cap = n_commits + 1;
	for (size_t i = 0; i < req->n_requests; i++) {
		const Gitaly__FindChangedPathsRequest__Request *r = req->requests[i];

		if (r->type_case == GITALY__FIND_CHANGED_PATHS_REQUEST__REQUEST__TYPE_COMMIT_REQUEST)
			cap += 1 + r->commit_request->n_parent_commit_revisions;
		else if (r->type_case == GITALY__FIND_CHANGED_PATHS_REQUEST__REQUEST__TYPE_TREE_REQUEST)
			cap += 2;
	}
	slots = calloc(cap, sizeof(*slots));
	if (!slots) {
		error_set(err, STATUS_INTERNAL, "out of memory");
		goto out;
	}
	for (size_t i = 0; i < n_commits; i++)
		slots[n_slots++] = (struct rev_slot){ commits[i], "commit", "resolving commit", "", 0 };
	for (size_t i = 0; i < req->n_requests; i++) {
		const Gitaly__FindChangedPathsRequest__Request *r = req->requests[i];

		if (r->type_case == GITALY__FIND_CHANGED_PATHS_REQUEST__REQUEST__TYPE_COMMIT_REQUEST) {
			const Gitaly__FindChangedPathsRequest__Request__CommitRequest *c = r->commit_request;

			slots[n_slots++] = (struct rev_slot){ c->commit_revision, "commit",
							      "resolving commit", "", 0 };
			for (size_t j = 0; j < c->n_parent_commit_revisions; j++)
				slots[n_slots++] = (struct rev_slot){ c->parent_commit_revisions[j],
								      "commit", "resolving commit parent",
								      "", 0 };
		} else if (r->type_case == GITALY__FIND_CHANGED_PATHS_REQUEST__REQUEST__TYPE_TREE_REQUEST) {
			const Gitaly__FindChangedPathsRequest__Request__TreeRequest *t = r->tree_request;

			slots[n_slots++] = (struct rev_slot){ t->left_tree_revision, "tree",
							      "resolving left tree", "", 0 };
			slots[n_slots++] = (struct rev_slot){ t->right_tree_revision, "tree",
							      "resolving right tree", "", 0 };
		}
	}
	if (resolve_all(call, path, &genv, slots, n_slots, err) < 0)
		goto out;
	for (size_t i = 0; i < n_slots; i++)
		if (!slots[i].found) {
			slot_error(&slots[i], err);
			goto out;
		}
	/* One diff-tree input line per request: "<commit> <parents...>" or "<tree> <tree>". */
	k = 0;
	for (size_t i = 0; i < n_commits; i++)
		if (strbuf_addf(&input, "%s\n", slots[k++].oid) < 0)
			goto oom;
	for (size_t i = 0; i < req->n_requests; i++) {
		const Gitaly__FindChangedPathsRequest__Request *r = req->requests[i];
		size_t n;

		if (r->type_case == GITALY__FIND_CHANGED_PATHS_REQUEST__REQUEST__TYPE_COMMIT_REQUEST)
			n = 1 + r->commit_request->n_parent_commit_revisions;
		else if (r->type_case == GITALY__FIND_CHANGED_PATHS_REQUEST__REQUEST__TYPE_TREE_REQUEST)
			n = 2;
		else {
			error_set(err, STATUS_INTERNAL, "unknown FindChangedPathsRequest type");
			goto out;
		}
		for (size_t j = 0; j < n; j++)
			if (strbuf_addf(&input, j ? " %s" : "%s", slots[k++].oid) < 0)
				goto oom;
		if (strbuf_addch(&input, '\n') < 0)
			goto oom;
	}
	if (!input.len && strbuf_addch(&input, '\n') < 0)
		goto oom;
	ret = list_changes(call, path, &genv, req->merge_commit_diff_mode, &input, err);
	goto out;
oom:
	error_set(err, STATUS_INTERNAL, "out of memory");
out:
	strbuf_release(&input);
	free(slots);
	service_git_env_release(&genv);
	free(path);
	return ret;
}
