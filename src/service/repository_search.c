/*
 * File search of RepositoryService: SearchFilesByName lists the paths of a
 * revision's tree (`git ls-tree --full-tree --name-status -r -z`) under a
 * pathspec, with an optional regular-expression filter, offset and limit;
 * SearchFilesByContent streams `git grep` matches with two lines of context,
 * one match block at a time, each closed by an end_of_match message.
 *
 * The filter is compiled as a POSIX extended regular expression; upstream
 * uses Go's RE2, so RE2-only syntax (\d, \w, (?i), non-greedy repeats) is
 * refused here as not compiling.
 */
#include <errno.h>
#include <regex.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "git/command.h"
#include "repository.pb-c.h"
#include "service/repository_internal.h"
#include "service/util.h"

/* Upstream's cap on the filter's length. */
#define SEARCH_FILTER_MAX 1000
/* Go's bufio.Scanner token limit: a longer line ends the scan. */
#define SEARCH_LINE_MAX ((size_t)64 * 1024)
/* Cap on one match block (its lines between "--" separators). */
#define SEARCH_MATCH_CAP ((size_t)64 * 1024 * 1024)
/* Cap on the list of names sent back. */
#define SEARCH_NAMES_CAP ((size_t)256 * 1024 * 1024)

int repo_search_validate(const Gitaly__Repository *repo, const char *query,
			 const ProtobufCBinaryData *ref, struct error *err)
{
	(void)repo;
	if (!query || !*query)
		return error_set(err, STATUS_INVALID_ARGUMENT, "no query given");
	if (ref->len == 0)
		return error_set(err, STATUS_INVALID_ARGUMENT, "no ref given");
	if (ref->data[0] == '-')
		return error_set(err, STATUS_INVALID_ARGUMENT, "invalid ref argument");
	return 0;
}

/* Reads fd to its end into out (NUL-separated names), applying filter,
 * offset and limit. Stops reading once limit names are kept. */
static int collect_names(int fd, const regex_t *filter, uint32_t offset, uint32_t limit,
			 struct strbuf *names, size_t *count, struct error *err)
{
	struct strbuf pending;
	char buf[65536];
	size_t index = 0;
	int ret = -1, done = 0;

	strbuf_init(&pending, (size_t)8 * 1024 * 1024);
	while (!done) {
		ssize_t n = read(fd, buf, sizeof(buf));
		size_t start = 0;

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			error_set(err, STATUS_INTERNAL, "read: %s", strerror(errno));
			goto out;
		}
		if (n == 0)
			break;
		if (strbuf_add(&pending, buf, (size_t)n) < 0) {
			error_set(err, STATUS_INTERNAL, "path too long");
			goto out;
		}
		for (;;) {
			char *nul = memchr(pending.buf + start, '\0', pending.len - start);
			const char *name = pending.buf + start;

			if (!nul)
				break;
			start = (size_t)(nul - pending.buf) + 1;
			if (filter && regexec(filter, name, 0, NULL, 0) != 0)
				continue;
			index++;
			if (index > offset) {
				if (strbuf_add(names, name, strlen(name) + 1) < 0) {
					error_set(err, STATUS_RESOURCE_EXHAUSTED, "too many files");
					goto out;
				}
				(*count)++;
			}
			if (limit > 0 && *count >= limit) {
				done = 1;
				break;
			}
		}
		memmove(pending.buf, pending.buf + start, pending.len - start);
		pending.len -= start;
		pending.buf[pending.len] = '\0';
	}
	ret = 0;
out:
	strbuf_release(&pending);
	return ret;
}

int repository_search_files_by_name_rpc(struct rpc_call *call, struct error *err)
{
	const struct service_deps *deps = rpc_call_service_data(call);
	const Gitaly__SearchFilesByNameRequest *req =
		(const Gitaly__SearchFilesByNameRequest *)rpc_call_request(call);
	Gitaly__SearchFilesByNameResponse resp = GITALY__SEARCH_FILES_BY_NAME_RESPONSE__INIT;
	struct service_git_env genv = { 0 };
	struct strbuf names;
	struct git_cmd *cmd;
	struct git_result res;
	ProtobufCBinaryData *files = NULL;
	regex_t filter;
	int have_filter = 0, fd = -1, ret = -1;
	char *path = NULL, *ref = NULL;
	size_t count = 0;
	pid_t pid = -1;

	strbuf_init(&names, SEARCH_NAMES_CAP);
	if (service_repo_path(deps, req->repository, 0, &path, err) < 0)
		goto out;
	if (repo_search_validate(req->repository, req->query, &req->ref, err) < 0)
		goto out;
	if (req->filter && *req->filter) {
		int rc;

		if (strlen(req->filter) > SEARCH_FILTER_MAX) {
			error_set(err, STATUS_INVALID_ARGUMENT, "filter exceeds maximum length");
			goto out;
		}
		rc = regcomp(&filter, req->filter, REG_EXTENDED | REG_NOSUB);
		if (rc != 0) {
			char msg[256];

			regerror(rc, &filter, msg, sizeof(msg));
			error_set(err, STATUS_INVALID_ARGUMENT, "filter did not compile: %s", msg);
			goto out;
		}
		have_filter = 1;
	}
	if (service_has_nul(req->ref.data, req->ref.len)) {
		error_set(err, STATUS_INTERNAL, "cmd start failed: invalid argument");
		goto out;
	}
	if (service_git_env_init(&genv, path, req->repository, err) < 0)
		goto out;
	ref = strndup((const char *)req->ref.data, req->ref.len);
	if (!ref) {
		error_set(err, STATUS_INTERNAL, "out of memory");
		goto out;
	}
	cmd = service_git_new(path, &genv, "ls-tree");
	git_cmd_flag(cmd, "--full-tree");
	git_cmd_flag(cmd, "--name-status");
	git_cmd_flag(cmd, "-r");
	git_cmd_flag(cmd, "-z");
	git_cmd_arg(cmd, ref);
	git_cmd_path(cmd, req->query);
	if (git_cmd_start(cmd, NULL, &fd, NULL, &pid, err) < 0) {
		error_prefix(err, "cmd start failed");
		err->code = STATUS_INTERNAL;
		pid = -1;
		goto out;
	}
	if (collect_names(fd, have_filter ? &filter : NULL, req->offset, req->limit, &names,
			  &count, err) < 0)
		goto out;
	files = calloc(count + 1, sizeof(*files));
	if (!files) {
		error_set(err, STATUS_INTERNAL, "out of memory");
		goto out;
	}
	for (size_t i = 0, pos = 0; i < count; i++) {
		files[i].data = (uint8_t *)names.buf + pos;
		files[i].len = strlen(names.buf + pos);
		pos += files[i].len + 1;
	}
	resp.n_files = count;
	resp.files = files;
	ret = rpc_call_send(call, &resp.base, err);
out:
	if (fd >= 0)
		close(fd);
	if (pid > 0) {
		git_cmd_kill(pid);
		git_cmd_wait(pid, &res);
	}
	if (have_filter)
		regfree(&filter);
	free(files);
	strbuf_release(&names);
	service_git_env_release(&genv);
	free(ref);
	free(path);
	return ret;
}

static int send_match_chunk(struct rpc_call *call, const uint8_t *data, size_t len,
			    struct error *err)
{
	Gitaly__SearchFilesByContentResponse resp = GITALY__SEARCH_FILES_BY_CONTENT_RESPONSE__INIT;

	resp.match_data.data = (uint8_t *)data;
	resp.match_data.len = len;
	return rpc_call_send(call, &resp.base, err);
}

/* One match block: its bytes in 128 KiB chunks, then end_of_match. */
static int send_match(struct rpc_call *call, const struct strbuf *match, struct error *err)
{
	Gitaly__SearchFilesByContentResponse end = GITALY__SEARCH_FILES_BY_CONTENT_RESPONSE__INIT;

	for (size_t pos = 0; pos < match->len; pos += SERVICE_CHUNK_SIZE) {
		size_t n = match->len - pos;

		if (n > SERVICE_CHUNK_SIZE)
			n = SERVICE_CHUNK_SIZE;
		if (send_match_chunk(call, (const uint8_t *)match->buf + pos, n, err) < 0)
			return -1;
	}
	end.end_of_match = 1;
	return rpc_call_send(call, &end.base, err);
}

/* Handles one output line (without its newline; a trailing CR already cut). */
static int grep_line(struct rpc_call *call, const char *line, size_t len, struct strbuf *match,
		     struct error *err)
{
	if (len == 2 && line[0] == '-' && line[1] == '-') {
		if (send_match(call, match, err) < 0)
			return -1;
		strbuf_reset(match);
		return 0;
	}
	if (strbuf_add(match, line, len) < 0 || strbuf_addch(match, '\n') < 0)
		return error_set(err, STATUS_RESOURCE_EXHAUSTED, "match too large");
	return 0;
}

/* Splits git grep's output into lines as Go's bufio.Scanner does and
 * sends the match blocks; a line longer than the scanner's limit ends the
 * scan like upstream's. */
int repo_grep_stream(struct rpc_call *call, int fd, struct error *err)
{
	struct strbuf pending, match;
	char buf[65536];
	int ret = -1, stop = 0;

	strbuf_init(&pending, SEARCH_LINE_MAX + sizeof(buf));
	strbuf_init(&match, SEARCH_MATCH_CAP);
	while (!stop) {
		ssize_t n = read(fd, buf, sizeof(buf));
		size_t start = 0;

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			error_set(err, STATUS_INTERNAL, "read: %s", strerror(errno));
			goto out;
		}
		if (n == 0) {
			if (pending.len) {
				size_t len = pending.len;

				if (pending.buf[len - 1] == '\r')
					len--;
				if (len <= SEARCH_LINE_MAX &&
				    grep_line(call, pending.buf, len, &match, err) < 0)
					goto out;
			}
			break;
		}
		if (strbuf_add(&pending, buf, (size_t)n) < 0)
			break;
		for (;;) {
			char *nl = memchr(pending.buf + start, '\n', pending.len - start);
			size_t len;

			if (!nl)
				break;
			len = (size_t)(nl - (pending.buf + start));
			if (len > SEARCH_LINE_MAX) {
				stop = 1;
				break;
			}
			if (len && pending.buf[start + len - 1] == '\r')
				len--;
			if (grep_line(call, pending.buf + start, len, &match, err) < 0)
				goto out;
			start = (size_t)(nl - pending.buf) + 1;
		}
		memmove(pending.buf, pending.buf + start, pending.len - start);
		pending.len -= start;
		pending.buf[pending.len] = '\0';
		if (pending.len > SEARCH_LINE_MAX)
			stop = 1;
	}
	if (match.len && send_match(call, &match, err) < 0)
		goto out;
	ret = 0;
out:
	strbuf_release(&pending);
	strbuf_release(&match);
	return ret;
}

int repository_search_files_by_content_rpc(struct rpc_call *call, struct error *err)
{
	const struct service_deps *deps = rpc_call_service_data(call);
	const Gitaly__SearchFilesByContentRequest *req =
		(const Gitaly__SearchFilesByContentRequest *)rpc_call_request(call);
	struct service_git_env genv = { 0 };
	struct git_cmd *cmd;
	struct git_result res;
	char *path = NULL, *ref = NULL, *pattern = NULL;
	int fd = -1, ret = -1;
	pid_t pid = -1;

	if (service_repo_path(deps, req->repository, 0, &path, err) < 0)
		goto out;
	if (repo_search_validate(req->repository, req->query, &req->ref, err) < 0)
		goto out;
	if (service_has_nul(req->ref.data, req->ref.len)) {
		error_set(err, STATUS_INTERNAL, "cmd start failed: invalid argument");
		goto out;
	}
	if (service_git_env_init(&genv, path, req->repository, err) < 0)
		goto out;
	ref = strndup((const char *)req->ref.data, req->ref.len);
	if (!ref || asprintf(&pattern, "-e%s", req->query) < 0) {
		pattern = NULL;
		error_set(err, STATUS_INTERNAL, "out of memory");
		goto out;
	}
	cmd = service_git_new(path, &genv, "grep");
	git_cmd_flag(cmd, "--ignore-case");
	git_cmd_flag(cmd, "-I");
	git_cmd_flag(cmd, "--line-number");
	git_cmd_flag(cmd, "--null");
	git_cmd_flag(cmd, "--before-context=2");
	git_cmd_flag(cmd, "--after-context=2");
	git_cmd_flag(cmd, "--perl-regexp");
	git_cmd_flag(cmd, pattern); /* "-e<query>": git's stuck form of -e <query> */
	git_cmd_arg(cmd, ref);
	if (git_cmd_start(cmd, NULL, &fd, NULL, &pid, err) < 0) {
		error_prefix(err, "cmd start failed");
		err->code = STATUS_INTERNAL;
		pid = -1;
		goto out;
	}
	if (repo_grep_stream(call, fd, err) < 0) {
		error_prefix(err, "sending chunked response failed");
		err->code = STATUS_INTERNAL;
		goto out;
	}
	ret = 0;
out:
	if (fd >= 0)
		close(fd);
	if (pid > 0) {
		git_cmd_kill(pid);
		git_cmd_wait(pid, &res);
	}
	service_git_env_release(&genv);
	free(pattern);
	free(ref);
	free(path);
	return ret;
}
