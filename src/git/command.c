/*
 * The git command builder. A command collects typed parts (config pairs,
 * flags, positional arguments, pathspecs, environment) and is turned into an
 * argv only when it runs, so that one validation pass reports the first
 * mistake: a config key failing upstream's regex, a flag without a leading
 * dash, an unknown subcommand. Global configuration mirrors upstream's
 * command factory (internal/git/command_factory.go globalConfiguration and
 * command_description.go): defaults for every command, then defaults of the
 * subcommand, then the caller's pairs, then the admin's [[git.config]] last
 * so the admin can override anything. The environment is built from scratch;
 * only an allow-list of the server's variables passes through.
 */
#include "git/command.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "base/log.h"
#include "base/process.h"

/* A NULL-terminated, growable vector of owned strings. */
struct svec {
	char **v;
	size_t n, alloc;
};

static int svec_push_owned(struct svec *s, char *str)
{
	if (!str)
		return -1;
	if (s->n + 1 >= s->alloc) {
		size_t alloc = s->alloc ? s->alloc * 2 : 16;
		char **v = realloc(s->v, alloc * sizeof(*v));
		if (!v) {
			free(str);
			return -1;
		}
		s->v = v;
		s->alloc = alloc;
	}
	s->v[s->n++] = str;
	s->v[s->n] = NULL;
	return 0;
}

static int svec_push(struct svec *s, const char *str)
{
	return svec_push_owned(s, strdup(str ? str : ""));
}

static int svec_pushf(struct svec *s, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static int svec_pushf(struct svec *s, const char *fmt, ...)
{
	va_list ap;
	char *str = NULL;
	int n;

	va_start(ap, fmt);
	n = vasprintf(&str, fmt, ap);
	va_end(ap);
	if (n < 0)
		return -1;
	return svec_push_owned(s, str);
}

static void svec_release(struct svec *s)
{
	for (size_t i = 0; i < s->n; i++)
		free(s->v[i]);
	free(s->v);
	memset(s, 0, sizeof(*s));
}

struct git_cmd {
	char *repo_path;
	char *subcommand;
	char *action;       /* word right after the subcommand, or NULL */
	char *cwd;
	struct svec config; /* "key=value", caller's pairs */
	struct svec flags;
	struct svec args;
	struct svec paths;
	struct svec env;    /* "NAME=value" */
	int pseudo_args;    /* a pseudo-revision was added: no --end-of-options */
	int shallow_empty;  /* global `--shallow-file ""` (pack-objects hook) */
	int stdin_given;    /* stdin_fd replaces the stdin pipe */
	int stdin_fd;
	char *cgroup_dir;
	int64_t timeout_ms;
	int oom;
	struct error build_err; /* first mistake while building */
	/* Built on demand. */
	struct svec argv;
	struct svec envp;
	int built;
};

/* ---- process-wide settings ---------------------------------------------- */

static pthread_mutex_t exec_env_lock = PTHREAD_MUTEX_INITIALIZER;
static struct git_exec_env exec_env;
static struct svec exec_env_config;
static char *exec_env_binary;

static char *find_in_path(const char *name)
{
	const char *path = getenv("PATH");
	char *copy, *save = NULL, *found = NULL;

	if (!path || !*path)
		path = "/usr/local/bin:/usr/bin:/bin";
	copy = strdup(path);
	if (!copy)
		return NULL;
	for (char *dir = strtok_r(copy, ":", &save); dir; dir = strtok_r(NULL, ":", &save)) {
		char *cand = NULL;

		if (dir[0] != '/' || asprintf(&cand, "%s/%s", dir, name) < 0)
			continue;
		if (access(cand, X_OK) == 0) {
			found = cand;
			break;
		}
		free(cand);
	}
	free(copy);
	return found;
}

void git_exec_env_set(const struct git_exec_env *env)
{
	pthread_mutex_lock(&exec_env_lock);
	svec_release(&exec_env_config);
	free(exec_env_binary);
	exec_env_binary = NULL;
	if (env && env->git_binary && *env->git_binary)
		exec_env_binary = strdup(env->git_binary);
	for (size_t i = 0; env && i < env->n_config; i++)
		svec_push(&exec_env_config, env->config[i]);
	exec_env.git_binary = exec_env_binary;
	exec_env.config = (const char *const *)exec_env_config.v;
	exec_env.n_config = exec_env_config.n;
	pthread_mutex_unlock(&exec_env_lock);
}

const struct git_exec_env *git_exec_env_get(void)
{
	pthread_mutex_lock(&exec_env_lock);
	if (!exec_env_binary) {
		exec_env_binary = find_in_path("git");
		if (!exec_env_binary)
			exec_env_binary = strdup("/usr/bin/git");
		exec_env.git_binary = exec_env_binary;
	}
	pthread_mutex_unlock(&exec_env_lock);
	return &exec_env;
}

/* ---- subcommand descriptions ------------------------------------------------ */

enum {
	SC_NO_END_OF_OPTIONS = 1 << 0,
	SC_PACK = 1 << 1,        /* pack configuration */
	SC_FETCH_FSCK = 1 << 2,  /* fetch.fsck* */
	SC_RECEIVE_FSCK = 1 << 3,
	SC_NO_REDIRECTS = 1 << 4, /* http.followRedirects=false */
};

struct subcommand_desc {
	const char *name;
	unsigned flags;
	const char *const *config; /* NULL-terminated "key=value" */
};

static const char *const clone_config[] = { "init.templateDir=", NULL };
static const char *const fetch_config[] = {
	"core.alternateRefsCommand=exit 0 #",
	"fetch.writeCommitGraph=false",
	"fetch.recurseSubmodules=no",
	NULL,
};
static const char *const init_config[] = {
	"init.defaultBranch=main",
	"init.templateDir=",
	NULL,
};
/* Internal reference namespaces hidden from pushes (read-only and hidden
 * ones) and from fetches (hidden ones only), as upstream's
 * InternalRefPrefixes, in sorted order. */
static const char *const receive_pack_config[] = {
	"core.alternateRefsCommand=exit 0 #",
	"receive.advertisePushOptions=true",
	"receive.hideRefs=refs/environments/",
	"receive.hideRefs=refs/keep-around/",
	"receive.hideRefs=refs/merge-requests/",
	"receive.hideRefs=refs/pipelines/",
	"receive.hideRefs=refs/remotes/",
	"receive.hideRefs=refs/tmp/",
	NULL,
};
static const char *const repack_config[] = {
	"repack.writeBitmaps=true",
	"repack.updateServerInfo=false",
	NULL,
};
static const char *const upload_pack_config[] = {
	"uploadpack.allowFilter=true",
	"uploadpack.allowAnySHA1InWant=true",
	"uploadpack.hideRefs=refs/keep-around/",
	"uploadpack.hideRefs=refs/remotes/",
	"uploadpack.hideRefs=refs/tmp/",
	NULL,
};

/* Sorted by name (bsearch). */
static const struct subcommand_desc subcommands[] = {
	{ "am", 0, NULL },
	{ "apply", 0, NULL },
	{ "archive", SC_NO_END_OF_OPTIONS, NULL },
	{ "blame", SC_NO_END_OF_OPTIONS, NULL },
	{ "bundle", SC_PACK, NULL },
	{ "cat-file", 0, NULL },
	{ "check-attr", SC_NO_END_OF_OPTIONS, NULL },
	{ "check-ref-format", SC_NO_END_OF_OPTIONS, NULL },
	{ "checkout", SC_NO_END_OF_OPTIONS, NULL },
	{ "clone", SC_PACK | SC_FETCH_FSCK | SC_NO_REDIRECTS, clone_config },
	{ "commit", 0, NULL },
	{ "commit-graph", 0, NULL },
	{ "commit-tree", 0, NULL },
	{ "config", 0, NULL },
	{ "count-objects", 0, NULL },
	{ "diff", 0, NULL },
	{ "diff-tree", 0, NULL },
	{ "fetch", SC_PACK | SC_FETCH_FSCK | SC_NO_REDIRECTS, fetch_config },
	{ "for-each-ref", 0, NULL },
	{ "format-patch", 0, NULL },
	{ "fsck", 0, NULL },
	{ "gc", SC_PACK, NULL },
	{ "grep", SC_NO_END_OF_OPTIONS, NULL }, /* grep.threads added below */
	{ "hash-object", 0, NULL },
	{ "index-pack", 0, NULL },
	{ "init", 0, init_config },
	{ "log", 0, NULL },
	{ "ls-files", 0, NULL },
	{ "ls-remote", SC_NO_REDIRECTS, NULL },
	{ "ls-tree", 0, NULL },
	{ "merge-base", 0, NULL },
	{ "merge-file", 0, NULL },
	{ "merge-tree", 0, NULL },
	{ "mktag", 0, NULL },
	{ "mktree", 0, NULL },
	{ "multi-pack-index", 0, NULL },
	{ "name-rev", 0, NULL },
	{ "pack-objects", SC_PACK, NULL },
	{ "pack-refs", 0, NULL },
	{ "patch-id", SC_NO_END_OF_OPTIONS, NULL },
	{ "prune", 0, NULL },
	{ "prune-packed", 0, NULL },
	{ "push", SC_NO_REDIRECTS, NULL },
	{ "read-tree", 0, NULL },
	{ "receive-pack", SC_PACK | SC_RECEIVE_FSCK, receive_pack_config },
	{ "remote", SC_NO_END_OF_OPTIONS | SC_NO_REDIRECTS, NULL },
	{ "repack", SC_PACK, repack_config },
	{ "rev-list", SC_NO_END_OF_OPTIONS, NULL },
	{ "rev-parse", SC_NO_END_OF_OPTIONS, NULL },
	{ "show", 0, NULL },
	{ "show-ref", 0, NULL },
	{ "symbolic-ref", 0, NULL },
	{ "tag", 0, NULL },
	{ "unpack-objects", 0, NULL },
	{ "update-index", 0, NULL },
	{ "update-ref", 0, NULL },
	{ "upload-archive", SC_NO_END_OF_OPTIONS, NULL },
	{ "upload-pack", SC_PACK, upload_pack_config },
	{ "var", 0, NULL },
	{ "version", 0, NULL },
	{ "worktree", 0, NULL },
	{ "write-tree", 0, NULL },
};

static int desc_cmp(const void *key, const void *elem)
{
	return strcmp(key, ((const struct subcommand_desc *)elem)->name);
}

static const struct subcommand_desc *find_subcommand(const char *name)
{
	return bsearch(name, subcommands, sizeof(subcommands) / sizeof(subcommands[0]),
		       sizeof(subcommands[0]), desc_cmp);
}

/* floor(log2(CPUs)), at least 1: upstream's thread count for pack and grep. */
static int threads_value(void)
{
	long cpus = sysconf(_SC_NPROCESSORS_ONLN);
	int t = 0;

	while (cpus > 1) {
		cpus >>= 1;
		t++;
	}
	return t < 1 ? 1 : t;
}

/* ---- validation ------------------------------------------------------------ */

/* Upstream's ^[[:alnum:]]+(\.[*-/_:@a-zA-Z0-9]+)+$ : an alnum section, then
 * at least one '.'-led part of [*+,-./_:@A-Za-z0-9]. */
int git_config_key_valid(const char *key)
{
	const char *p = key;

	if (!key)
		return 0;
	while ((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') || (*p >= '0' && *p <= '9'))
		p++;
	if (p == key || *p != '.' || !p[1])
		return 0;
	for (p++; *p; p++) {
		unsigned char c = (unsigned char)*p;
		int ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
			 (c >= '0' && c <= '9') || (c >= '*' && c <= '/') || c == '_' ||
			 c == ':' || c == '@';
		if (!ok)
			return 0;
	}
	/* "a.." passes the class check; upstream's regex too (dots are in it). */
	return 1;
}

static int env_name_valid(const char *name)
{
	if (!name || !*name)
		return 0;
	for (const char *p = name; *p; p++)
		if (*p == '=')
			return 0;
	return 1;
}

/* The first building mistake wins; later ones are dropped. */
static void build_fail(struct git_cmd *cmd, const char *fmt, const char *what)
{
	if (error_is_set(&cmd->build_err))
		return;
	error_set(&cmd->build_err, STATUS_INVALID_ARGUMENT, fmt, what);
}

/* ---- building ------------------------------------------------------------- */

struct git_cmd *git_cmd_new(const char *repo_path, const char *subcommand)
{
	struct git_cmd *cmd = calloc(1, sizeof(*cmd));

	if (!cmd)
		abort(); /* the contract promises non-NULL; nothing sensible to do */
	if (repo_path && *repo_path) {
		cmd->repo_path = strdup(repo_path);
		if (!cmd->repo_path)
			cmd->oom = 1;
	}
	cmd->subcommand = strdup(subcommand ? subcommand : "");
	if (!cmd->subcommand)
		cmd->oom = 1;
	else if (!find_subcommand(cmd->subcommand))
		build_fail(cmd, "invalid sub command name \"%s\"", cmd->subcommand);
	return cmd;
}

void git_cmd_shallow_file_empty(struct git_cmd *cmd)
{
	cmd->shallow_empty = 1;
}

void git_cmd_stdin_fd(struct git_cmd *cmd, int fd)
{
	cmd->stdin_given = 1;
	cmd->stdin_fd = fd;
}

void git_cmd_config(struct git_cmd *cmd, const char *key, const char *value)
{
	if (!git_config_key_valid(key)) {
		build_fail(cmd, "config key \"%s\" failed regexp validation", key ? key : "");
		return;
	}
	if (svec_pushf(&cmd->config, "%s=%s", key, value ? value : "") < 0)
		cmd->oom = 1;
}

void git_cmd_action(struct git_cmd *cmd, const char *action)
{
	if (!action || !*action || action[0] == '-' || cmd->action) {
		build_fail(cmd, "invalid action \"%s\"", action ? action : "");
		return;
	}
	cmd->action = strdup(action);
	if (!cmd->action)
		cmd->oom = 1;
}

void git_cmd_flag(struct git_cmd *cmd, const char *flag)
{
	if (!flag || flag[0] != '-') {
		build_fail(cmd, "flag \"%s\" must start with '-'", flag ? flag : "");
		return;
	}
	if (svec_push(&cmd->flags, flag) < 0)
		cmd->oom = 1;
}

void git_cmd_option(struct git_cmd *cmd, const char *name, const char *value)
{
	const char *dashes = "--";

	if (!name || !*name || !strcmp(name, "-") || !strcmp(name, "--")) {
		build_fail(cmd, "invalid option name \"%s\"", name ? name : "");
		return;
	}
	if (name[0] == '-')
		dashes = "";
	if (strchr(name, '=')) {
		build_fail(cmd, "invalid option name \"%s\"", name);
		return;
	}
	if (svec_pushf(&cmd->flags, "%s%s=%s", dashes, name, value ? value : "") < 0)
		cmd->oom = 1;
}

void git_cmd_arg(struct git_cmd *cmd, const char *arg)
{
	if (svec_push(&cmd->args, arg ? arg : "") < 0)
		cmd->oom = 1;
}

int git_pseudo_revision_valid(const char *arg)
{
	static const char *const exact[] = { "--all", "--not", "--branches", "--tags",
					     "--alternate-refs" };
	static const char *const prefixed[] = { "--branches=", "--tags=", "--glob=" };

	if (!arg)
		return 0;
	for (size_t i = 0; i < sizeof(exact) / sizeof(exact[0]); i++)
		if (!strcmp(arg, exact[i]))
			return 1;
	for (size_t i = 0; i < sizeof(prefixed) / sizeof(prefixed[0]); i++)
		if (!strncmp(arg, prefixed[i], strlen(prefixed[i])))
			return 1;
	return 0;
}

void git_cmd_pseudo_arg(struct git_cmd *cmd, const char *arg)
{
	if (!git_pseudo_revision_valid(arg)) {
		build_fail(cmd, "invalid pseudo-revision \"%s\"", arg ? arg : "");
		return;
	}
	cmd->pseudo_args = 1;
	if (svec_push(&cmd->args, arg) < 0)
		cmd->oom = 1;
}

void git_cmd_path(struct git_cmd *cmd, const char *path)
{
	if (svec_push(&cmd->paths, path ? path : "") < 0)
		cmd->oom = 1;
}

void git_cmd_setenv(struct git_cmd *cmd, const char *name, const char *value)
{
	if (!env_name_valid(name)) {
		build_fail(cmd, "invalid environment variable name \"%s\"", name ? name : "");
		return;
	}
	if (svec_pushf(&cmd->env, "%s=%s", name, value ? value : "") < 0)
		cmd->oom = 1;
}

void git_cmd_chdir(struct git_cmd *cmd, const char *dir)
{
	free(cmd->cwd);
	cmd->cwd = dir ? strdup(dir) : NULL;
	if (dir && !cmd->cwd)
		cmd->oom = 1;
}

void git_cmd_timeout(struct git_cmd *cmd, int64_t timeout_ms)
{
	cmd->timeout_ms = timeout_ms > 0 ? timeout_ms : 0;
}

void git_cmd_cgroup(struct git_cmd *cmd, const char *cgroup_dir)
{
	free(cmd->cgroup_dir);
	cmd->cgroup_dir = cgroup_dir && *cgroup_dir ? strdup(cgroup_dir) : NULL;
	if (cgroup_dir && *cgroup_dir && !cmd->cgroup_dir)
		cmd->oom = 1;
}

void git_cmd_free(struct git_cmd *cmd)
{
	if (!cmd)
		return;
	free(cmd->cgroup_dir);
	free(cmd->repo_path);
	free(cmd->subcommand);
	free(cmd->action);
	free(cmd->cwd);
	svec_release(&cmd->config);
	svec_release(&cmd->flags);
	svec_release(&cmd->args);
	svec_release(&cmd->paths);
	svec_release(&cmd->env);
	svec_release(&cmd->argv);
	svec_release(&cmd->envp);
	error_release(&cmd->build_err);
	free(cmd);
}

/* Global configuration applied to every command, as upstream's
 * globalConfiguration for a git with granular fsync (>= 2.36). */
static const char *const global_config[] = {
	"gc.auto=0",
	"maintenance.auto=0",
	"core.autocrlf=false",
	"core.useReplaceRefs=false",
	"core.bigFileThreshold=50m",
	"core.fsync=objects,derived-metadata,reference",
	"core.fsyncMethod=fsync",
	NULL,
};

static int push_config(struct svec *argv, const char *pair)
{
	if (svec_push(argv, "-c") < 0)
		return -1;
	return svec_push(argv, pair);
}

static int build_argv(struct git_cmd *cmd, const struct git_exec_env *ge)
{
	const struct subcommand_desc *desc = find_subcommand(cmd->subcommand);
	struct svec *a = &cmd->argv;
	int threads = threads_value();
	int eoo;

	if (svec_push(a, ge->git_binary) < 0)
		return -1;
	if (cmd->repo_path && svec_pushf(a, "--git-dir=%s", cmd->repo_path) < 0)
		return -1;
	for (size_t i = 0; global_config[i]; i++)
		if (push_config(a, global_config[i]) < 0)
			return -1;
	for (size_t i = 0; desc->config && desc->config[i]; i++)
		if (push_config(a, desc->config[i]) < 0)
			return -1;
	if (desc->flags & SC_NO_REDIRECTS)
		if (push_config(a, "http.followRedirects=false") < 0)
			return -1;
	if (desc->flags & (SC_FETCH_FSCK | SC_RECEIVE_FSCK)) {
		const char *p = desc->flags & SC_FETCH_FSCK ? "fetch" : "receive";

		if (svec_push(a, "-c") < 0 || svec_pushf(a, "%s.fsckObjects=true", p) < 0 ||
		    svec_push(a, "-c") < 0 || svec_pushf(a, "%s.fsck.badTimezone=ignore", p) < 0 ||
		    svec_push(a, "-c") < 0 ||
		    svec_pushf(a, "%s.fsck.missingSpaceBeforeDate=ignore", p) < 0 ||
		    svec_push(a, "-c") < 0 ||
		    svec_pushf(a, "%s.fsck.zeroPaddedFilemode=ignore", p) < 0)
			return -1;
	}
	if (desc->flags & SC_PACK) {
		if (push_config(a, "pack.windowMemory=100m") < 0 ||
		    push_config(a, "pack.writeReverseIndex=true") < 0 ||
		    svec_push(a, "-c") < 0 || svec_pushf(a, "pack.threads=%d", threads) < 0)
			return -1;
	}
	if (!strcmp(desc->name, "grep") &&
	    (svec_push(a, "-c") < 0 || svec_pushf(a, "grep.threads=%d", threads) < 0))
		return -1;
	for (size_t i = 0; i < cmd->config.n; i++)
		if (push_config(a, cmd->config.v[i]) < 0)
			return -1;
	for (size_t i = 0; i < ge->n_config; i++)
		if (push_config(a, ge->config[i]) < 0)
			return -1;
	if (cmd->shallow_empty &&
	    (svec_push(a, "--shallow-file") < 0 || svec_push(a, "") < 0))
		return -1;
	if (svec_push(a, cmd->subcommand) < 0)
		return -1;
	if (cmd->action && svec_push(a, cmd->action) < 0)
		return -1;
	for (size_t i = 0; i < cmd->flags.n; i++)
		if (svec_push(a, cmd->flags.v[i]) < 0)
			return -1;
	eoo = !(desc->flags & SC_NO_END_OF_OPTIONS) && !cmd->pseudo_args;
	if (cmd->args.n && eoo && svec_push(a, "--end-of-options") < 0)
		return -1;
	for (size_t i = 0; i < cmd->args.n; i++)
		if (svec_push(a, cmd->args.v[i]) < 0)
			return -1;
	if (cmd->paths.n && svec_push(a, "--") < 0)
		return -1;
	for (size_t i = 0; i < cmd->paths.n; i++)
		if (svec_push(a, cmd->paths.v[i]) < 0)
			return -1;
	return 0;
}

/* Server variables a git process may inherit (upstream's allow-list, minus
 * GIT_* tracing which would pollute stderr that callers parse). */
static const char *const passthrough_env[] = {
	"HOME", "LD_LIBRARY_PATH", "TZ",
	"all_proxy", "ALL_PROXY", "http_proxy", "HTTP_PROXY", "https_proxy", "HTTPS_PROXY",
	"no_proxy", "NO_PROXY", "SSL_CERT_FILE", "SSL_CERT_DIR",
	NULL,
};

/* Adds or replaces NAME=value (keyed by the text before '='). */
static int env_put(struct svec *e, const char *kv)
{
	size_t nlen = strcspn(kv, "=");

	for (size_t i = 0; i < e->n; i++) {
		if (!strncmp(e->v[i], kv, nlen) && e->v[i][nlen] == '=') {
			char *dup = strdup(kv);
			if (!dup)
				return -1;
			free(e->v[i]);
			e->v[i] = dup;
			return 0;
		}
	}
	return svec_push(e, kv);
}

static int build_envp(struct git_cmd *cmd)
{
	struct svec *e = &cmd->envp;
	const char *path = getenv("PATH");

	if (svec_pushf(e, "PATH=%s", path && *path ? path : "/usr/local/bin:/usr/bin:/bin") < 0)
		return -1;
	for (size_t i = 0; passthrough_env[i]; i++) {
		const char *v = getenv(passthrough_env[i]);
		if (v && svec_pushf(e, "%s=%s", passthrough_env[i], v) < 0)
			return -1;
	}
	if (env_put(e, "LANG=en_US.UTF-8") < 0 || env_put(e, "GIT_TERMINAL_PROMPT=0") < 0 ||
	    env_put(e, "GIT_CONFIG_GLOBAL=/dev/null") < 0 ||
	    env_put(e, "GIT_CONFIG_SYSTEM=/dev/null") < 0 ||
	    env_put(e, "XDG_CONFIG_HOME=/dev/null") < 0)
		return -1;
	for (size_t i = 0; i < cmd->env.n; i++)
		if (env_put(e, cmd->env.v[i]) < 0)
			return -1;
	return 0;
}

static int git_cmd_build(struct git_cmd *cmd, struct error *err)
{
	const struct git_exec_env *ge;
	int ret = -1;

	if (cmd->built)
		return 0;
	if (error_is_set(&cmd->build_err)) {
		error_set(err, cmd->build_err.code, "%s", cmd->build_err.message);
		goto out;
	}
	if (cmd->oom) {
		error_set(err, STATUS_INTERNAL, "git command: out of memory");
		goto out;
	}
	/* Without --end-of-options, a positional argument could pass as an option. */
	{
		const struct subcommand_desc *desc = find_subcommand(cmd->subcommand);
		int eoo = !(desc->flags & SC_NO_END_OF_OPTIONS) && !cmd->pseudo_args;

		for (size_t i = 0; !eoo && i < cmd->args.n; i++) {
			const char *arg = cmd->args.v[i];
			if (arg[0] == '-' && !(cmd->pseudo_args && git_pseudo_revision_valid(arg))) {
				error_set(err, STATUS_INVALID_ARGUMENT,
					  "positional arg \"%s\" cannot start with dash '-'", arg);
				goto out;
			}
		}
	}
	ge = git_exec_env_get();
	pthread_mutex_lock(&exec_env_lock);
	if (build_argv(cmd, ge) < 0 || build_envp(cmd) < 0) {
		pthread_mutex_unlock(&exec_env_lock);
		svec_release(&cmd->argv);
		svec_release(&cmd->envp);
		error_set(err, STATUS_INTERNAL, "git command: out of memory");
		goto out;
	}
	pthread_mutex_unlock(&exec_env_lock);
	cmd->built = 1;
	ret = 0;
out:
	return ret;
}

const char *const *git_cmd_argv(struct git_cmd *cmd, struct error *err)
{
	if (git_cmd_build(cmd, err) < 0)
		return NULL;
	return (const char *const *)cmd->argv.v;
}

const char *const *git_cmd_envp(struct git_cmd *cmd, struct error *err)
{
	if (git_cmd_build(cmd, err) < 0)
		return NULL;
	return (const char *const *)cmd->envp.v;
}

/* ---- running -------------------------------------------------------------- */

static __thread void (*stats_fn)(void *arg, const struct git_result *res);
static __thread void *stats_arg;

void git_cmd_stats_sink(void (*fn)(void *arg, const struct git_result *res), void *arg)
{
	stats_fn = fn;
	stats_arg = fn ? arg : NULL;
}

/* Spawn times of commands started for streaming, so git_cmd_wait can report
 * their real time. */
struct started {
	pid_t pid;
	int64_t start_ms;
	struct started *next;
};
static pthread_mutex_t started_lock = PTHREAD_MUTEX_INITIALIZER;
static struct started *started_list;

static void started_add(pid_t pid, int64_t start_ms)
{
	struct started *s = malloc(sizeof(*s));

	if (!s)
		return; /* only the real time is lost */
	s->pid = pid;
	s->start_ms = start_ms;
	pthread_mutex_lock(&started_lock);
	s->next = started_list;
	started_list = s;
	pthread_mutex_unlock(&started_lock);
}

static int64_t started_take(pid_t pid)
{
	int64_t start = 0;

	pthread_mutex_lock(&started_lock);
	for (struct started **pp = &started_list; *pp; pp = &(*pp)->next) {
		if ((*pp)->pid == pid) {
			struct started *s = *pp;
			*pp = s->next;
			start = s->start_ms;
			free(s);
			break;
		}
	}
	pthread_mutex_unlock(&started_lock);
	return start;
}

static void join_cgroup(const char *dir, pid_t pid)
{
	char *procs = NULL;
	char buf[32];
	int fd, n;

	if (asprintf(&procs, "%s/cgroup.procs", dir) < 0)
		return;
	fd = open(procs, O_WRONLY | O_CLOEXEC);
	n = snprintf(buf, sizeof(buf), "%d\n", (int)pid);
	/* ESRCH: the process already finished, nothing to account */
	if (fd < 0 || (write(fd, buf, (size_t)n) != n && errno != ESRCH))
		log_msg(LOG_WARN, "adding command to cgroup %s: %s", dir, strerror(errno));
	if (fd >= 0)
		close(fd);
	free(procs);
}

static void close_pair(int p[2])
{
	if (p[0] >= 0)
		close(p[0]);
	if (p[1] >= 0)
		close(p[1]);
	p[0] = p[1] = -1;
}

static int spawn_cmd(struct git_cmd *cmd, int want_in, int want_out, int want_err, int pin[2],
		     int pout[2], int perr[2], pid_t *pid, struct error *err)
{
	struct process_spawn_opts o;
	int ret = -1;

	pin[0] = pin[1] = pout[0] = pout[1] = perr[0] = perr[1] = -1;
	if (git_cmd_build(cmd, err) < 0)
		goto out;
	if ((want_in && pipe2(pin, O_CLOEXEC) < 0) || (want_out && pipe2(pout, O_CLOEXEC) < 0) ||
	    (want_err && pipe2(perr, O_CLOEXEC) < 0)) {
		error_set(err, STATUS_INTERNAL, "git %s: pipe: %s", cmd->subcommand, strerror(errno));
		goto out;
	}
	memset(&o, 0, sizeof(o));
	o.path = cmd->argv.v[0];
	o.argv = (const char *const *)cmd->argv.v;
	o.envp = (const char *const *)cmd->envp.v;
	o.cwd = cmd->cwd ? cmd->cwd : cmd->repo_path ? cmd->repo_path : "/";
	o.stdin_fd = cmd->stdin_given ? cmd->stdin_fd : pin[0];
	o.stdout_fd = pout[1];
	o.stderr_fd = perr[1];
	o.new_pgroup = 1;
	if (process_spawn(&o, pid, err) < 0) {
		error_prefix(err, "git %s", cmd->subcommand);
		goto out;
	}
	if (cmd->cgroup_dir)
		join_cgroup(cmd->cgroup_dir, *pid);
	/* The child's ends. */
	if (pin[0] >= 0)
		close(pin[0]);
	if (pout[1] >= 0)
		close(pout[1]);
	if (perr[1] >= 0)
		close(perr[1]);
	pin[0] = pout[1] = perr[1] = -1;
	ret = 0;
out:
	if (ret < 0) {
		close_pair(pin);
		close_pair(pout);
		close_pair(perr);
	}
	return ret;
}

static void fill_result(const struct process_status *st, int timed_out, int64_t start_ms,
			struct git_result *res)
{
	res->exit_code = timed_out ? -1 : st->exit_code;
	res->signal = st->signal;
	res->timed_out = timed_out;
	res->real_time_ms = start_ms ? process_now_ms() - start_ms : 0;
	res->user_time_ms = st->user_time_ms;
	res->system_time_ms = st->system_time_ms;
	res->maxrss_kb = st->maxrss_kb;
	res->inblock = st->inblock;
	res->oublock = st->oublock;
	res->minflt = st->minflt;
	res->majflt = st->majflt;
	if (stats_fn)
		stats_fn(stats_arg, res);
}

int git_cmd_run(struct git_cmd *cmd, const void *stdin_data, size_t stdin_len,
		struct strbuf *out, struct strbuf *err_out, struct git_result *res,
		struct error *err)
{
	struct process_pump_io io;
	struct process_status st;
	int pin[2], pout[2], perr[2];
	int64_t deadline = 0, start;
	int timed_out = 0, pumped, ret = -1;
	pid_t pid = -1;

	memset(res, 0, sizeof(*res));
	res->exit_code = -1;
	start = process_now_ms();
	if (cmd->timeout_ms)
		deadline = start + cmd->timeout_ms;
	if (spawn_cmd(cmd, stdin_data && stdin_len, out != NULL, err_out != NULL, pin, pout, perr,
		      &pid, err) < 0)
		goto out;
	memset(&io, 0, sizeof(io));
	io.stdin_fd = pin[1];
	io.stdin_data = stdin_data;
	io.stdin_len = stdin_len;
	io.stdout_fd = pout[0];
	io.out = out;
	io.stderr_fd = perr[0];
	io.err_out = err_out;
	io.deadline_ms = deadline;
	pumped = process_pump(&io, err);
	if (pumped != 0) {
		/* Timed out or broken pipes: the group goes down either way. */
		process_kill_group(pid);
		process_wait(pid, 0, &st);
		if (pumped < 0) {
			error_prefix(err, "git %s", cmd->subcommand);
			goto out;
		}
		timed_out = 1;
	} else if (process_wait(pid, deadline, &st) == 1) {
		process_kill_group(pid);
		process_wait(pid, 0, &st);
		timed_out = 1;
	}
	fill_result(&st, timed_out, start, res);
	ret = 0;
out:
	git_cmd_free(cmd);
	return ret;
}

int git_cmd_start(struct git_cmd *cmd, int *stdin_fd, int *stdout_fd, int *stderr_fd,
		  pid_t *pid, struct error *err)
{
	int pin[2], pout[2], perr[2];
	int ret = -1;

	int64_t start = process_now_ms();

	*pid = -1;
	if (spawn_cmd(cmd, stdin_fd != NULL, stdout_fd != NULL, stderr_fd != NULL, pin, pout,
		      perr, pid, err) < 0)
		goto out;
	started_add(*pid, start);
	if (stdin_fd)
		*stdin_fd = pin[1];
	if (stdout_fd)
		*stdout_fd = pout[0];
	if (stderr_fd)
		*stderr_fd = perr[0];
	ret = 0;
out:
	git_cmd_free(cmd);
	return ret;
}

int git_cmd_wait(pid_t pid, struct git_result *res)
{
	struct process_status st;

	memset(res, 0, sizeof(*res));
	res->exit_code = -1;
	if (process_wait(pid, 0, &st) != 0)
		return -1;
	fill_result(&st, 0, started_take(pid), res);
	return 0;
}

void git_cmd_kill(pid_t pid)
{
	process_kill_group(pid);
}

/* ---- version -------------------------------------------------------------- */

static pthread_mutex_t version_lock = PTHREAD_MUTEX_INITIALIZER;
static char *version_cache;
static char *version_binary; /* the binary the cache belongs to */

int git_version_parse(const char *output, char **out)
{
	const char *prefix = "git version ";
	size_t n;

	*out = NULL;
	if (strncmp(output, prefix, strlen(prefix)) != 0)
		return -1;
	output += strlen(prefix);
	n = strcspn(output, " \t\r\n");
	if (!n)
		return -1;
	*out = strndup(output, n);
	return *out ? 0 : -1;
}

int git_version(char **out, struct error *err)
{
	struct strbuf sb;
	struct git_result res;
	const char *binary;
	char *parsed = NULL;
	int ret = -1;

	*out = NULL;
	binary = git_exec_env_get()->git_binary;
	pthread_mutex_lock(&version_lock);
	if (version_cache && version_binary && !strcmp(version_binary, binary)) {
		*out = strdup(version_cache);
		pthread_mutex_unlock(&version_lock);
		return *out ? 0 : error_set(err, STATUS_INTERNAL, "out of memory");
	}
	pthread_mutex_unlock(&version_lock);

	strbuf_init(&sb, 4096);
	if (git_cmd_run(git_cmd_new(NULL, "version"), NULL, 0, &sb, NULL, &res, err) < 0)
		goto out;
	if (res.exit_code != 0) {
		error_set(err, STATUS_INTERNAL, "git version: exit status %d", res.exit_code);
		goto out;
	}
	if (git_version_parse(sb.buf ? sb.buf : "", &parsed) < 0) {
		error_set(err, STATUS_INTERNAL, "git version: unexpected output \"%s\"",
			  sb.buf ? sb.buf : "");
		goto out;
	}
	pthread_mutex_lock(&version_lock);
	free(version_cache);
	free(version_binary);
	version_cache = strdup(parsed);
	version_binary = strdup(binary);
	pthread_mutex_unlock(&version_lock);
	*out = parsed;
	parsed = NULL;
	ret = 0;
out:
	free(parsed);
	strbuf_release(&sb);
	return ret;
}
