/*
 * Shared plumbing of the RefService handlers: the request context (locator
 * path, quarantine environment, a libgit2 handle from the repository cache),
 * streaming the lines of a git listing command, and upstream's ref
 * pagination rules (no parameter or a negative limit: everything; limit 0:
 * nothing; a page token is a full ref name and results start after it).
 */
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "base/banned.h"
#include "git/catfile.h"
#include "git/command.h"
#include "git/repo_cache.h"
#include "rpc/status.h"
#include "service/ref_internal.h"

#define LINE_CAP ((size_t)1 << 20)

int ref_ctx_init(struct ref_ctx *ctx, struct rpc_call *call, const Gitaly__Repository *repo,
		 struct error *err)
{
	const struct service_deps *deps = call ? rpc_call_service_data(call) : NULL;

	memset(ctx, 0, sizeof(*ctx));
	ctx->call = call;
	if (service_repo_path(deps, repo, 0, &ctx->path, err) < 0)
		return -1;
	return service_git_env_init(&ctx->genv, ctx->path, repo, err);
}

int ref_ctx_handle(struct ref_ctx *ctx, const struct repo_handle **out, struct error *err)
{
	if (!ctx->h.repo && !ctx->h.cf &&
	    repo_cache_get_handle(ctx->path, ctx->genv.object_directory, ctx->genv.alternates,
				  &ctx->h, err) < 0)
		return -1;
	ctx->repo = ctx->h.repo;
	*out = &ctx->h;
	return 0;
}

int ref_ctx_repo(struct ref_ctx *ctx, git_repository **out, struct error *err)
{
	const struct repo_handle *h;

	if (ref_ctx_handle(ctx, &h, err) < 0)
		return -1;
	if (!h->repo)
		return error_set(err, STATUS_INTERNAL,
				 "object format sha256 is not supported by this reader");
	*out = h->repo;
	return 0;
}

int ref_ctx_is_sha256(struct ref_ctx *ctx, int *out, struct error *err)
{
	const struct repo_handle *h;

	if (ref_ctx_handle(ctx, &h, err) < 0)
		return -1;
	*out = h->cf != NULL;
	return 0;
}

int ref_ctx_resolve(struct ref_ctx *ctx, const char *name, char *oid, struct error *err)
{
	const struct repo_handle *h;
	git_object_t type;
	int64_t size;
	git_oid bin;

	if (ref_ctx_handle(ctx, &h, err) < 0)
		return -1;
	if (h->repo) {
		if (git_reference_name_to_id(&bin, h->repo, name) < 0)
			return 0;
		git_oid_tostr(oid, GIT_OID_HEXSZ + 1, &bin);
		return 1;
	}
	/* cat-file would also take abbreviations and DWIM names: only full
	 * ref names (and HEAD) are asked. */
	if (strcmp(name, "HEAD") && strncmp(name, "refs/", 5))
		return 0;
	return catfile_info(h->cf, name, oid, &type, &size, err);
}

int ref_ctx_head_target(struct ref_ctx *ctx, char **out, struct error *err)
{
	const struct repo_handle *h;
	struct strbuf buf;
	int ret = -1;

	*out = NULL;
	if (ref_ctx_handle(ctx, &h, err) < 0)
		return -1;
	if (h->repo) {
		git_reference *head = NULL;

		if (git_reference_lookup(&head, h->repo, "HEAD") == 0 &&
		    git_reference_type(head) == GIT_REFERENCE_SYMBOLIC &&
		    !(*out = strdup(git_reference_symbolic_target(head)))) {
			git_reference_free(head);
			return error_set(err, STATUS_INTERNAL, "out of memory");
		}
		git_reference_free(head);
		return 0;
	}
	strbuf_init(&buf, 4096);
	{
		struct git_cmd *cmd = ref_ctx_git(ctx, "symbolic-ref");
		struct git_result res;

		git_cmd_flag(cmd, "--quiet");
		git_cmd_arg(cmd, "HEAD");
		if (git_cmd_run(cmd, NULL, 0, &buf, NULL, &res, err) < 0)
			goto out;
		strbuf_rtrim(&buf);
		if (res.exit_code == 0 && buf.len && !(*out = strdup(buf.buf))) {
			error_set(err, STATUS_INTERNAL, "out of memory");
			goto out;
		}
	}
	ret = 0;
out:
	strbuf_release(&buf);
	return ret;
}

static int take_first_line(void *arg, char *line, size_t len, struct error *err)
{
	char **out = arg;

	(void)err;
	*out = strndup(line, len);
	return 1;
}

int ref_ctx_first_ref(struct ref_ctx *ctx, const char *prefix, char **out, struct error *err)
{
	const struct repo_handle *h;
	struct git_cmd *cmd;

	*out = NULL;
	if (ref_ctx_handle(ctx, &h, err) < 0)
		return -1;
	if (h->repo) {
		/* In-process: the smallest name under prefix, as for-each-ref's first. */
		git_reference_iterator *it = NULL;
		const char *name;
		char *glob = NULL;

		if (asprintf(&glob, "%s*", prefix) < 0)
			return error_set(err, STATUS_INTERNAL, "out of memory");
		if (git_reference_iterator_glob_new(&it, h->repo, glob) == 0) {
			while (git_reference_next_name(&name, it) == 0) {
				if (!*out || strcmp(name, *out) < 0) {
					free(*out);
					if (!(*out = strdup(name)))
						break;
				}
			}
		}
		git_reference_iterator_free(it);
		free(glob);
		return 0;
	}
	cmd = ref_ctx_git(ctx, "for-each-ref");
	git_cmd_flag(cmd, "--format=%(refname)");
	git_cmd_flag(cmd, "--count=1");
	git_cmd_arg(cmd, prefix);
	return ref_run_lines(cmd, take_first_line, out, NULL, err);
}

void ref_ctx_release(struct ref_ctx *ctx)
{
	repo_cache_put_handle(&ctx->h);
	ctx->repo = NULL;
	service_git_env_release(&ctx->genv);
	free(ctx->path);
	ctx->path = NULL;
}

struct git_cmd *ref_ctx_git(struct ref_ctx *ctx, const char *subcommand)
{
	return service_git_new(ctx->path, &ctx->genv, subcommand);
}

int ref_run_lines(struct git_cmd *cmd, ref_line_fn fn, void *arg, int *exit_code,
		  struct error *err)
{
	struct strbuf buf;
	struct git_result res;
	char chunk[65536];
	pid_t pid = -1;
	int out_fd = -1, stopped = 0, ret = -1;

	strbuf_init(&buf, LINE_CAP);
	if (git_cmd_start(cmd, NULL, &out_fd, NULL, &pid, err) < 0)
		goto out;
	while (!stopped) {
		ssize_t n = read(out_fd, chunk, sizeof(chunk));
		size_t start = 0;

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			error_set(err, STATUS_INTERNAL, "reading git output: %s", strerror(errno));
			goto out;
		}
		if (n == 0)
			break;
		for (size_t i = 0; i < (size_t)n && !stopped; i++) {
			int rc;

			if (chunk[i] != '\n')
				continue;
			if (strbuf_add(&buf, chunk + start, i - start) < 0) {
				error_set(err, STATUS_INTERNAL, "git output line too long");
				goto out;
			}
			start = i + 1;
			rc = fn(arg, buf.buf ? buf.buf : (char *)"", buf.len, err);
			strbuf_reset(&buf);
			if (rc < 0)
				goto out;
			if (rc > 0)
				stopped = 1;
		}
		if (!stopped && start < (size_t)n && strbuf_add(&buf, chunk + start, (size_t)n - start) < 0) {
			error_set(err, STATUS_INTERNAL, "git output line too long");
			goto out;
		}
	}
	if (!stopped && buf.len) {
		int rc = fn(arg, buf.buf, buf.len, err);

		if (rc < 0)
			goto out;
	}
	if (stopped)
		git_cmd_kill(pid);
	close(out_fd);
	out_fd = -1;
	git_cmd_wait(pid, &res);
	pid = -1;
	if (!stopped && res.exit_code != 0) {
		if (exit_code) {
			*exit_code = res.exit_code;
		} else {
			error_set(err, STATUS_INTERNAL, "listing failed with exit code %d",
				  res.exit_code);
			goto out;
		}
	} else if (exit_code) {
		*exit_code = 0;
	}
	ret = 0;
out:
	if (out_fd >= 0)
		close(out_fd);
	if (pid > 0) {
		git_cmd_kill(pid);
		git_cmd_wait(pid, &res);
	}
	strbuf_release(&buf);
	return ret;
}

void ref_pager_init(struct ref_pager *p, const Gitaly__PaginationParameter *params)
{
	p->limit = INT32_MAX;
	p->token = NULL;
	p->past = 1;
	p->taken = 0;
	if (!params)
		return;
	if (params->limit >= 0)
		p->limit = params->limit;
	if (params->page_token && *params->page_token) {
		p->token = params->page_token;
		p->past = 0;
	}
}

int ref_pager_step(struct ref_pager *p, const char *refname, size_t len)
{
	if (p->taken >= p->limit)
		return -1;
	if (!p->past) {
		p->past = strlen(p->token) == len && memcmp(p->token, refname, len) == 0;
		return 0;
	}
	p->taken++;
	return 1;
}

int ref_pager_finish(const struct ref_pager *p, struct error *err)
{
	if (!p->past)
		return error_set(err, STATUS_INVALID_ARGUMENT, "could not find page token");
	return 0;
}

int ref_validate_hex(const char *oid, const char *object_format, const char *prefix,
		     struct error *err)
{
	size_t want = object_format && strcmp(object_format, "sha256") == 0 ? 64 : 40;
	size_t len = strlen(oid);
	struct strbuf msg = STRBUF_INIT;

	if (len == want) {
		size_t i;

		for (i = 0; i < len; i++)
			if (!((oid[i] >= '0' && oid[i] <= '9') || (oid[i] >= 'a' && oid[i] <= 'f')))
				break;
		if (i == len)
			return 0;
		strbuf_adds(&msg, prefix);
		strbuf_adds(&msg, "invalid object ID: ");
		service_go_quote(&msg, oid, len);
		strbuf_adds(&msg, ", invalid character ");
		/* Go's %q of a rune: single quotes. */
		if ((unsigned char)oid[i] >= 0x20 && (unsigned char)oid[i] < 0x7f && oid[i] != '\'' &&
		    oid[i] != '\\')
			strbuf_addf(&msg, "'%c'", oid[i]);
		else if (oid[i] == '\'')
			strbuf_adds(&msg, "'\\''");
		else if (oid[i] == '\\')
			strbuf_adds(&msg, "'\\\\'");
		else
			strbuf_addf(&msg, "'\\x%02x'", (unsigned char)oid[i]);
	} else {
		strbuf_adds(&msg, prefix);
		strbuf_adds(&msg, "invalid object ID: ");
		service_go_quote(&msg, oid, len);
		strbuf_addf(&msg, ", expected length %zu, got %zu", want, len);
	}
	error_set(err, STATUS_INVALID_ARGUMENT, "%s", msg.buf ? msg.buf : "");
	strbuf_release(&msg);
	return -1;
}

int ref_is_hex_oid(const char *s, size_t len)
{
	if (len != 40 && len != 64)
		return 0;
	for (size_t i = 0; i < len; i++)
		if (!((s[i] >= '0' && s[i] <= '9') || (s[i] >= 'a' && s[i] <= 'f')))
			return 0;
	return 1;
}

void ref_add_detail(struct error *err, const ProtobufCMessage *msg)
{
	(void)rpc_error_add_detail(err, msg);
}
