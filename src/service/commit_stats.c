/*
 * CommitStats (git diff --numstat against the first parent, or the empty
 * tree for a root commit) and RawBlame (git blame --porcelain streamed in
 * 128 KiB chunks, upstream's typed errors for a missing path and a range
 * beyond the file). Both are git's own output.
 */
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "git/command.h"
#include "git/revision.h"
#include "service/commit_internal.h"

#define EMPTY_TREE_SHA1 "4b825dc642cb6eb9a060e54bf8d69288fbee4904"
#define EMPTY_TREE_SHA256 "6ef19b41225c5369f1c104d45d8d85efa9b057b53b14b4b9b939dd74decc5321"

int commit_stats_rpc(struct rpc_call *call, struct error *err)
{
	const Gitaly__CommitStatsRequest *req = (const Gitaly__CommitStatsRequest *)rpc_call_request(call);
	Gitaly__CommitStatsResponse resp = GITALY__COMMIT_STATS_RESPONSE__INIT;
	struct commit_repo r;
	Gitaly__GitCommit *c = NULL;
	struct git_cmd *cmd;
	struct git_result res;
	struct strbuf out;
	char *rev = NULL, parent[GIT_OID_HEXSZ * 2 + 2];
	int found, ret = -1;

	strbuf_init(&out, (size_t)256 << 20);
	if (commit_repo_locate(call, req->repository, &r, err) < 0)
		goto out;
	if (revision_validate((const char *)req->revision.data, req->revision.len, 0, err) < 0)
		goto out;
	if (commit_repo_open(&r, err) < 0)
		goto out;
	rev = commit_bytes_dup(&req->revision);
	found = commit_read_rev(&r, rev, &c, err);
	if (found < 0)
		goto out;
	if (!found) {
		error_set(err, STATUS_INTERNAL, "object not found");
		goto out;
	}
	cmd = commit_repo_git(&r, "diff");
	git_cmd_flag(cmd, "--numstat");
	if (c->n_parent_ids == 0) {
		git_cmd_arg(cmd, strlen(c->id) == 64 ? EMPTY_TREE_SHA256 : EMPTY_TREE_SHA1);
	} else {
		snprintf(parent, sizeof(parent), "%s^", c->id);
		git_cmd_arg(cmd, parent);
	}
	git_cmd_arg(cmd, c->id);
	if (git_cmd_run(cmd, NULL, 0, &out, NULL, &res, err) < 0) {
		err->code = STATUS_INTERNAL;
		goto out;
	}
	if (res.exit_code != 0) {
		error_set(err, STATUS_INTERNAL, "exit status %d", res.exit_code);
		goto out;
	}
	for (char *line = out.buf, *nl; line && *line; line = nl + 1) {
		char *tab1, *tab2, *e1, *e2;
		long a, d;

		nl = strchr(line, '\n');
		if (!nl)
			nl = line + strlen(line) - 1;
		tab1 = memchr(line, '\t', (size_t)(nl - line));
		tab2 = tab1 ? memchr(tab1 + 1, '\t', (size_t)(nl - tab1 - 1)) : NULL;
		if (!tab2) {
			error_set(err, STATUS_INTERNAL, "invalid numstat line");
			goto out;
		}
		if (tab1 - line == 1 && line[0] == '-' && tab2 - tab1 == 2 && tab1[1] == '-')
			continue; /* binary file */
		a = strtol(line, &e1, 10);
		d = strtol(tab1 + 1, &e2, 10);
		if (e1 != tab1 || e2 != tab2) {
			error_set(err, STATUS_INTERNAL, "invalid numstat line");
			goto out;
		}
		resp.additions += (int32_t)a;
		resp.deletions += (int32_t)d;
	}
	resp.oid = c->id;
	ret = rpc_call_send(call, &resp.base, err);
out:
	commit_gitcommit_free(c);
	strbuf_release(&out);
	free(rev);
	commit_repo_release(&r);
	return ret;
}

static int blame_error(struct error *err, int code, const char *msg, const ProtobufCBinaryData *path,
		       uint64_t lines)
{
	Gitaly__RawBlameError be = GITALY__RAW_BLAME_ERROR__INIT;
	Gitaly__PathNotFoundError pnf = GITALY__PATH_NOT_FOUND_ERROR__INIT;
	Gitaly__RawBlameError__OutOfRangeError oor = GITALY__RAW_BLAME_ERROR__OUT_OF_RANGE_ERROR__INIT;
	uint8_t *buf;
	size_t len;

	if (path) {
		pnf.path = *path;
		be.error_case = GITALY__RAW_BLAME_ERROR__ERROR_PATH_NOT_FOUND;
		be.path_not_found = &pnf;
	} else {
		oor.actual_lines = lines;
		be.error_case = GITALY__RAW_BLAME_ERROR__ERROR_OUT_OF_RANGE;
		be.out_of_range = &oor;
	}
	error_set(err, code, "%s", msg);
	len = gitaly__raw_blame_error__get_packed_size(&be);
	buf = malloc(len + 1);
	if (!buf)
		abort();
	gitaly__raw_blame_error__pack(&be, buf);
	error_add_detail(err, "type.googleapis.com/gitaly.RawBlameError", buf, len);
	free(buf);
	return -1;
}

static int send_blame(struct rpc_call *call, const uint8_t *data, size_t len, void *ctx, struct error *err)
{
	Gitaly__RawBlameResponse resp = GITALY__RAW_BLAME_RESPONSE__INIT;

	(void)ctx;
	resp.data.data = (uint8_t *)data;
	resp.data.len = len;
	return rpc_call_send(call, &resp.base, err);
}

/* \A\d+,\d+\z */
static int valid_range(const ProtobufCBinaryData *b)
{
	size_t i = 0, digits = 0;

	while (i < b->len && isdigit(b->data[i]))
		i++, digits++;
	if (!digits || i == b->len || b->data[i] != ',')
		return 0;
	i++;
	digits = 0;
	while (i < b->len && isdigit(b->data[i]))
		i++, digits++;
	return digits && i == b->len;
}

int commit_raw_blame_rpc(struct rpc_call *call, struct error *err)
{
	const Gitaly__RawBlameRequest *req = (const Gitaly__RawBlameRequest *)rpc_call_request(call);
	struct commit_repo r;
	struct git_cmd *cmd;
	struct git_result res;
	char *rev = NULL, *path = NULL, *range = NULL, *clean;
	char ebuf[4096];
	ssize_t elen = 0, k;
	int out_fd = -1, err_fd = -1, ret = -1, escapes;
	pid_t pid;

	if (commit_repo_locate(call, req->repository, &r, err) < 0)
		goto out;
	if (revision_validate((const char *)req->revision.data, req->revision.len, 0, err) < 0)
		goto out;
	if (req->path.len == 0) {
		error_set(err, STATUS_INVALID_ARGUMENT, "empty Path");
		goto out;
	}
	path = commit_bytes_dup(&req->path);
	clean = commit_path_clean(path);
	escapes = path[0] == '/' || !strcmp(clean, "..") || !strncmp(clean, "../", 3);
	free(clean);
	if (escapes) {
		error_set(err, STATUS_INVALID_ARGUMENT, "path escapes repository root");
		goto out;
	}
	if (req->range.len && !valid_range(&req->range)) {
		error_set(err, STATUS_INVALID_ARGUMENT, "invalid Range");
		goto out;
	}
	rev = commit_bytes_dup(&req->revision);
	if (req->range.len)
		range = commit_bytes_dup(&req->range);
	/* -L<range> joined, so the builder sees one flag. */
	cmd = commit_repo_git(&r, "blame");
	git_cmd_flag(cmd, "-p");
	if (range) {
		struct strbuf l = STRBUF_INIT;

		strbuf_adds(&l, "-L");
		strbuf_adds(&l, range);
		git_cmd_flag(cmd, l.buf);
		strbuf_release(&l);
	}
	git_cmd_arg(cmd, rev);
	git_cmd_path(cmd, path);
	if (git_cmd_start(cmd, NULL, &out_fd, &err_fd, &pid, err) < 0) {
		err->code = STATUS_INTERNAL;
		error_prefix(err, "starting blame");
		goto out;
	}
	ret = service_stream_fd(call, out_fd, send_blame, NULL, err);
	close(out_fd);
	while (elen < (ssize_t)sizeof(ebuf) - 1 && (k = read(err_fd, ebuf + elen, sizeof(ebuf) - 1 - (size_t)elen)) > 0)
		elen += k;
	ebuf[elen] = '\0';
	close(err_fd);
	if (ret < 0)
		git_cmd_kill(pid);
	git_cmd_wait(pid, &res);
	if (ret < 0)
		goto out;
	if (res.exit_code != 0) {
		const char *only = strstr(ebuf, " has only ");

		ret = -1;
		if (!strncmp(ebuf, "fatal: no such path ", 20)) {
			blame_error(err, STATUS_NOT_FOUND, "path not found in revision", &req->path, 0);
		} else if (!strncmp(ebuf, "fatal: file ", 12) && only && isdigit((unsigned char)only[10])) {
			blame_error(err, STATUS_INVALID_ARGUMENT, "range is outside of the file length", NULL,
				    strtoull(only + 10, NULL, 10));
		} else {
			error_set(err, STATUS_UNKNOWN, "blaming file: exit status %d", res.exit_code);
		}
	}
out:
	free(rev);
	free(path);
	free(range);
	commit_repo_release(&r);
	return ret;
}
