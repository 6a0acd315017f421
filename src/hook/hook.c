/*
 * Pre-receive, post-receive, update and reference-transaction as upstream's
 * GitLabHookManager runs them without Praefect: the payload comes from the
 * request's environment, GitLab's internal API is asked through
 * src/gitlab/client.c, and custom hooks run through src/hook/custom.c with
 * a restricted environment (never GITALY_HOOKS_PAYLOAD).
 */
#include <ctype.h>
#include <libgen.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "git/command.h"
#include "gitlab/client.h"
#include "hook/custom.h"
#include "hook/hook.h"
#include "hook/payload.h"

/* Variables of the caller's environment that custom hooks may see. */
static const char *const allowed_env[] = {
	"HOME", "LD_LIBRARY_PATH", "TZ", "GIT_TRACE", "GIT_TRACE_PACK_ACCESS",
	"GIT_TRACE_PACKET", "GIT_TRACE_PERFORMANCE", "GIT_TRACE_SETUP", "GIT_EXEC_PATH",
	"all_proxy", "http_proxy", "HTTP_PROXY", "https_proxy", "HTTPS_PROXY", "no_proxy",
	"NO_PROXY",
};

static int env_add(char ***env, size_t *n, const char *fmt, const char *a, const char *b)
{
	char **ne = realloc(*env, (*n + 2) * sizeof(char *));
	struct strbuf sb = STRBUF_INIT;

	if (!ne)
		return -1;
	*env = ne;
	strbuf_adds(&sb, fmt);
	strbuf_addch(&sb, '=');
	if (a)
		strbuf_adds(&sb, a);
	if (b)
		strbuf_adds(&sb, b);
	(*env)[(*n)++] = strbuf_detach(&sb, NULL);
	(*env)[*n] = NULL;
	return 0;
}

int hook_custom_env(const struct hook_request *r, const char *userid, const char *username,
		    const char *protocol, char ***out, struct error *err)
{
	char **env = calloc(1, sizeof(char *));
	size_t n = 0;
	int bad = !env;
	char num[32];

	for (size_t i = 0; !bad && i < sizeof(allowed_env) / sizeof(allowed_env[0]); i++) {
		const char *v = hook_env_get(r->env, r->n_env, allowed_env[i]);
		if (v)
			bad |= env_add(&env, &n, allowed_env[i], v, NULL);
	}
	if (!bad && r->n_push_options) {
		snprintf(num, sizeof(num), "%zu", r->n_push_options);
		bad |= env_add(&env, &n, "GIT_PUSH_OPTION_COUNT", num, NULL);
		for (size_t i = 0; !bad && i < r->n_push_options; i++) {
			char key[48];
			snprintf(key, sizeof(key), "GIT_PUSH_OPTION_%zu", i);
			bad |= env_add(&env, &n, key, r->push_options[i], NULL);
		}
	}
	const char *od = hook_env_get(r->env, r->n_env, "GIT_OBJECT_DIRECTORY");
	const char *alt = hook_env_get(r->env, r->n_env, "GIT_ALTERNATE_OBJECT_DIRECTORIES");
	if (!bad && od)
		bad |= env_add(&env, &n, "GIT_OBJECT_DIRECTORY", od, NULL);
	if (!bad && alt)
		bad |= env_add(&env, &n, "GIT_ALTERNATE_OBJECT_DIRECTORIES", alt, NULL);
	/* git's own directory comes first in PATH so hooks find the same git. */
	const struct git_exec_env *gx = git_exec_env_get();
	const char *path = hook_env_get(r->env, r->n_env, "PATH");
	if (!bad) {
		char gitdir[4096];
		snprintf(gitdir, sizeof(gitdir), "%s",
			 gx && gx->git_binary ? gx->git_binary : "/usr/bin/git");
		char *d = dirname(gitdir);
		struct strbuf p = STRBUF_INIT;
		strbuf_adds(&p, d);
		if (path && *path) {
			strbuf_addch(&p, ':');
			strbuf_adds(&p, path);
		}
		bad |= env_add(&env, &n, "PATH", p.buf, NULL);
		strbuf_release(&p);
	}
	if (!bad)
		bad |= env_add(&env, &n, "GIT_DIR", r->repo_path, NULL);
	if (!bad)
		bad |= env_add(&env, &n, "GL_REPOSITORY", r->gl_repository, NULL);
	if (!bad)
		bad |= env_add(&env, &n, "GL_PROJECT_PATH", r->gl_project_path, NULL);
	if (!bad)
		bad |= env_add(&env, &n, "GL_ID", userid, NULL);
	if (!bad)
		bad |= env_add(&env, &n, "GL_USERNAME", username, NULL);
	if (!bad)
		bad |= env_add(&env, &n, "GL_PROTOCOL", protocol, NULL);
	if (bad) {
		hook_env_free(env);
		*out = NULL;
		return error_set(err, STATUS_INTERNAL, "creating custom hooks env: out of memory");
	}
	*out = env;
	return 0;
}

void hook_env_free(char **env)
{
	if (!env)
		return;
	for (char **e = env; *e; e++)
		free(*e);
	free(env);
}

/* Runs the custom hooks `name` for a request whose payload is p. */
static int run_custom(const struct hook_request *r, const struct hook_payload *p,
		      const char *name, const char *const *args, size_t n_args, const void *in,
		      size_t in_len, int *exit_code, struct error *err)
{
	char **env = NULL;
	int ret = -1;

	if (hook_custom_env(r, p->userid, p->username, p->protocol, &env, err) < 0)
		goto out;
	if (hook_custom_run(r->repo_path, r->cfg->hooks.custom_hooks_dir, name, args, n_args,
			    (const char *const *)env, in, in_len, r->out, r->err_out, exit_code,
			    err) < 0) {
		error_prefix(err, "executing custom hooks");
		goto out;
	}
	ret = 0;
out:
	hook_env_free(env);
	return ret;
}

/*
 * path relative to the repository: an absolute path beneath it loses the
 * repository prefix, then leading "./" segments go (receive-pack's
 * quarantine is "<repo>/./objects/tmp_objdir-incoming-...").
 */
static const char *rel_to_repo(const char *repo, const char *path)
{
	size_t l = strlen(repo);
	if (path[0] == '/') {
		if (strncmp(path, repo, l) || path[l] != '/')
			return path;
		path += l + 1;
	}
	while (path[0] == '.' && path[1] == '/')
		path += 2;
	return path;
}

int hook_pre_receive(const struct hook_request *r, const void *stdin_data, size_t stdin_len,
		     int *exit_code, struct error *err)
{
	struct hook_payload p;
	struct gitlab_allowed_params ap;
	char *changes = NULL, *message = NULL, *alt_copy = NULL;
	const char *alts[64];
	int allowed = 0, increased = 0, ret = -1;

	*exit_code = 0;
	memset(&ap, 0, sizeof(ap));
	if (hook_payload_from_env(r->env, r->n_env, &p, err) < 0) {
		error_prefix(err, "extracting hooks payload");
		err->code = STATUS_INTERNAL;
		return -1;
	}
	if (!stdin_len) {
		error_set(err, STATUS_INTERNAL, "hook got no reference updates");
		goto out;
	}
	if (!r->gl_repository || !*r->gl_repository) {
		error_set(err, STATUS_INTERNAL, "repository not set");
		goto out;
	}
	if (!p.has_user_details) {
		error_set(err, STATUS_INTERNAL, "payload has no receive hooks info");
		goto out;
	}
	if (!p.userid || !*p.userid) {
		error_set(err, STATUS_INTERNAL, "user ID not set");
		goto out;
	}
	if (!p.protocol || !*p.protocol) {
		error_set(err, STATUS_INTERNAL, "protocol not set");
		goto out;
	}
	changes = strndup(stdin_data, stdin_len);
	ap.repo_path = r->repo_path;
	ap.relative_path = r->relative_path;
	ap.gl_repository = r->gl_repository;
	ap.gl_id = p.userid;
	ap.protocol = p.protocol;
	ap.changes = changes;
	/* Receive-pack's quarantine: tell GitLab where the new objects are. */
	const char *od = hook_env_get(r->env, r->n_env, "GIT_OBJECT_DIRECTORY");
	const char *alt = hook_env_get(r->env, r->n_env, "GIT_ALTERNATE_OBJECT_DIRECTORIES");
	if (od && *od && alt && *alt) {
		size_t na = 0;
		ap.object_dir_rel = rel_to_repo(r->repo_path, od);
		alt_copy = strdup(alt);
		for (char *s = alt_copy, *save = NULL, *t; na < 64 && (t = strtok_r(s, ":", &save));
		     s = NULL)
			alts[na++] = rel_to_repo(r->repo_path, t);
		ap.alt_dirs_rel = alts;
		ap.n_alt_dirs_rel = na;
	}
	if (gitlab_allowed(r->cfg, &ap, &allowed, &message, err) < 0) {
		error_prefix(err, "GitLab");
		goto out;
	}
	if (!allowed) {
		error_set(err, STATUS_PERMISSION_DENIED, "GitLab: %s", message);
		goto out;
	}
	if (run_custom(r, &p, "pre-receive", NULL, 0, stdin_data, stdin_len, exit_code, err) < 0)
		goto out;
	if (*exit_code) {
		ret = 0;
		goto out;
	}
	if (gitlab_pre_receive(r->cfg, r->gl_repository, &increased, err) < 0) {
		error_prefix(err, "calling pre_receive endpoint");
		goto out;
	}
	if (!increased) {
		error_set(err, STATUS_INTERNAL, "%s", "");
		goto out;
	}
	ret = 0;
out:
	free(alt_copy);
	free(message);
	free(changes);
	hook_payload_release(&p);
	return ret;
}

int hook_post_receive(const struct hook_request *r, const void *stdin_data, size_t stdin_len,
		      int *exit_code, struct error *err)
{
	struct hook_payload p;
	struct gitlab_message *msgs = NULL;
	size_t n_msgs = 0;
	char *changes = NULL;
	int decreased = 0, ret = -1;

	*exit_code = 0;
	if (hook_payload_from_env(r->env, r->n_env, &p, err) < 0) {
		error_prefix(err, "extracting hooks payload");
		err->code = STATUS_INTERNAL;
		return -1;
	}
	if (!stdin_len) {
		error_set(err, STATUS_INTERNAL, "hook got no reference updates");
		goto out;
	}
	if (!p.has_user_details) {
		error_set(err, STATUS_INTERNAL, "payload has no receive hooks info");
		goto out;
	}
	if (!p.userid || !*p.userid) {
		error_set(err, STATUS_INTERNAL, "user ID not set");
		goto out;
	}
	if (!r->gl_repository || !*r->gl_repository) {
		error_set(err, STATUS_INTERNAL, "repository not set");
		goto out;
	}
	changes = strndup(stdin_data, stdin_len);
	if (gitlab_post_receive(r->cfg, r->gl_repository, p.userid, changes, r->push_options,
				r->n_push_options, &decreased, &msgs, &n_msgs, err) < 0) {
		error_prefix(err, "GitLab");
		goto out;
	}
	if (gitlab_format_messages(msgs, n_msgs, r->out, err) < 0) {
		error_prefix(err, "error writing messages to stream");
		goto out;
	}
	if (!decreased) {
		error_set(err, STATUS_INTERNAL, "%s", "");
		goto out;
	}
	if (run_custom(r, &p, "post-receive", NULL, 0, stdin_data, stdin_len, exit_code, err) < 0)
		goto out;
	ret = 0;
out:
	gitlab_messages_free(msgs, n_msgs);
	free(changes);
	hook_payload_release(&p);
	return ret;
}

static int valid_hex(const char *s, size_t len)
{
	if (!s || strlen(s) != len)
		return 0;
	for (; *s; s++)
		if (!isxdigit((unsigned char)*s) || isupper((unsigned char)*s))
			return 0;
	return 1;
}

int hook_update(const struct hook_request *r, const char *ref, const char *old_value,
		const char *new_value, int *exit_code, struct error *err)
{
	struct hook_payload p;
	int ret = -1;

	*exit_code = 0;
	if (hook_payload_from_env(r->env, r->n_env, &p, err) < 0) {
		error_prefix(err, "extracting hooks payload");
		err->code = STATUS_INTERNAL;
		return -1;
	}
	size_t hexlen = p.object_format && !strcmp(p.object_format, "sha256") ? 64 : 40;
	if (!ref || !*ref) {
		error_set(err, STATUS_INTERNAL, "hook got no reference");
		goto out;
	}
	if (!valid_hex(old_value, hexlen)) {
		error_set(err, STATUS_INTERNAL, "hook got invalid old value: invalid object ID: \"%s\"",
			  old_value ? old_value : "");
		goto out;
	}
	if (!valid_hex(new_value, hexlen)) {
		error_set(err, STATUS_INTERNAL, "hook got invalid new value: invalid object ID: \"%s\"",
			  new_value ? new_value : "");
		goto out;
	}
	if (!p.has_user_details) {
		error_set(err, STATUS_INTERNAL, "payload has no receive hooks info");
		goto out;
	}
	const char *args[3] = { ref, old_value, new_value };
	if (run_custom(r, &p, "update", args, 3, "", 0, exit_code, err) < 0)
		goto out;
	ret = 0;
out:
	hook_payload_release(&p);
	return ret;
}

int hook_reference_transaction(const struct hook_request *r, int state,
			       const void *stdin_data, size_t stdin_len, struct error *err)
{
	struct hook_payload p;
	int ret = -1;

	(void)stdin_data;
	(void)stdin_len;
	if (state != HOOK_TX_PREPARED && state != HOOK_TX_COMMITTED && state != HOOK_TX_ABORTED)
		return error_set(err, STATUS_INVALID_ARGUMENT, "invalid hook state");
	if (hook_payload_from_env(r->env, r->n_env, &p, err) < 0) {
		error_prefix(err, "extracting hooks payload");
		err->code = STATUS_INTERNAL;
		return -1;
	}
	if (p.has_transaction) {
		/* Voting needs Praefect's transaction service, which we lack. */
		error_set(err, STATUS_UNIMPLEMENTED,
			  "reference transaction voting is not supported without Praefect");
		goto out;
	}
	ret = 0;
out:
	hook_payload_release(&p);
	return ret;
}
