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
#include "git/command.h"
#include "git/repo_cache.h"
#include "rpc/status.h"
#include "service/ref_internal.h"

#define LINE_CAP ((size_t)1 << 20)

/*
 * Until the repository cache (branch blobs) lands, these weak stand-ins
 * open a fresh handle per request so RefService works and links on its
 * own; the real cache's strong definitions replace them at link time.
 */
__attribute__((weak)) int repo_cache_get(const char *repo_path, const char *object_dir,
					 const char *alternates, git_repository **out,
					 struct error *err)
{
	git_odb *odb = NULL;
	int ret = -1;

	git_libgit2_init();
	*out = NULL;
	if (git_repository_open_bare(out, repo_path) < 0) {
		const git_error *e = git_error_last();

		error_set(err, STATUS_INTERNAL, "opening repository: %s", e ? e->message : "");
		goto out;
	}
	if (object_dir || alternates) {
		if (git_repository_odb(&odb, *out) < 0)
			goto fail;
		if (object_dir && git_odb_add_disk_alternate(odb, object_dir) < 0)
			goto fail;
		for (const char *p = alternates; p && *p;) {
			const char *c = strchr(p, ':');
			char *dir = strndup(p, c ? (size_t)(c - p) : strlen(p));

			if (!dir || git_odb_add_disk_alternate(odb, dir) < 0) {
				free(dir);
				goto fail;
			}
			free(dir);
			p = c ? c + 1 : NULL;
		}
	}
	ret = 0;
	goto out;
fail:
	error_set(err, STATUS_INTERNAL, "opening object directories");
	git_repository_free(*out);
	*out = NULL;
out:
	git_odb_free(odb);
	return ret;
}

__attribute__((weak)) void repo_cache_put(git_repository *repo)
{
	git_repository_free(repo);
}

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

int ref_ctx_repo(struct ref_ctx *ctx, git_repository **out, struct error *err)
{
	if (!ctx->repo && repo_cache_get(ctx->path, ctx->genv.object_directory,
					 ctx->genv.alternates, &ctx->repo, err) < 0)
		return -1;
	*out = ctx->repo;
	return 0;
}

void ref_ctx_release(struct ref_ctx *ctx)
{
	if (ctx->repo)
		repo_cache_put(ctx->repo);
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

void ref_add_detail(struct error *err, const ProtobufCMessage *msg)
{
	(void)rpc_error_add_detail(err, msg);
}
