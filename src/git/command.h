/*
 * The typed git command builder: the only way the server runs git. No shell;
 * argv is built from typed parts: global `-c key=value` options, the
 * subcommand, flags (which must start with '-'), `--end-of-options`, positional
 * arguments, and `--` plus pathspecs. The environment is hardened as upstream
 * does (no global/system config, no prompts, fixed locale) and a timeout kills
 * the whole process group.
 */
#ifndef GIT_COMMAND_H
#define GIT_COMMAND_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "base/error.h"
#include "base/strbuf.h"

/* Process-wide settings for every git invocation. */
struct git_exec_env {
	const char *git_binary;     /* absolute path of git */
	const char *const *config;  /* "key=value" strings appended last ([[git.config]]) */
	size_t n_config;
};

/* Sets the process-wide git settings (called once at startup, before any
 * command runs; the strings are copied). Without it, git is looked up in PATH
 * (falling back to /usr/bin/git) and no admin config is added. */
void git_exec_env_set(const struct git_exec_env *env);
const struct git_exec_env *git_exec_env_get(void);

struct git_cmd;

/*
 * Starts building `git [--git-dir=<repo_path>] <subcommand>`. repo_path may
 * be NULL (commands outside a repository). Never returns NULL.
 */
struct git_cmd *git_cmd_new(const char *repo_path, const char *subcommand);

/* `-c key=value` before the subcommand. Rejects keys that fail upstream's
 * config-key regex (the error is reported by git_cmd_run). */
void git_cmd_config(struct git_cmd *cmd, const char *key, const char *value);
/* The global option `--shallow-file ""` before the subcommand: what
 * upload-pack passes to pack-objects for shallow fetches (the pack-objects
 * hook replays it). */
void git_cmd_shallow_file_empty(struct git_cmd *cmd);
/* Gives the command fd (borrowed, the caller closes it) as its stdin
 * instead of a pipe or /dev/null; git_cmd_start's stdin_fd must then be
 * NULL. */
void git_cmd_stdin_fd(struct git_cmd *cmd, int fd);
/* A sub-action right after the subcommand (`bundle create`, upstream's
 * Command.Action); at most one, must not start with '-'. */
void git_cmd_action(struct git_cmd *cmd, const char *action);
/* A flag after the subcommand; must start with '-' (else the run fails). */
void git_cmd_flag(struct git_cmd *cmd, const char *flag);
/* `--name=value` after the subcommand; name may be given with or without
 * its leading dashes ("format" and "--format" both give --format=value). */
void git_cmd_option(struct git_cmd *cmd, const char *name, const char *value);
/* Positional arguments; `--end-of-options` is inserted before the first.
 * Subcommands that do not understand it (upstream's list: archive, blame,
 * check-ref-format, checkout, grep, remote, rev-list, rev-parse,
 * upload-archive) get no marker, and then an argument starting with '-'
 * fails the run instead. */
void git_cmd_arg(struct git_cmd *cmd, const char *arg);
/* A pseudo-revision positional argument for rev-list and friends: --all,
 * --not, --branches[=..], --tags[=..], --glob=.., --alternate-refs (else the
 * run fails). Using one drops `--end-of-options` (git would read the pseudo
 * revision as a name after it); the other arguments may then not start
 * with '-'. */
void git_cmd_pseudo_arg(struct git_cmd *cmd, const char *arg);
/* Pathspecs after `--`. */
void git_cmd_path(struct git_cmd *cmd, const char *path);
/* Extra environment variable for this command; replaces a hardened default
 * or an earlier value of the same name (e.g. GIT_OBJECT_DIRECTORY for a
 * quarantine is set here explicitly). */
void git_cmd_setenv(struct git_cmd *cmd, const char *name, const char *value);
/* Working directory (default: repo_path, else "/"). */
void git_cmd_chdir(struct git_cmd *cmd, const char *dir);
/* Kills the process group after timeout_ms (0: no timeout). */
void git_cmd_timeout(struct git_cmd *cmd, int64_t timeout_ms);
/* Moves the started process into this cgroup directory (writes its pid to
 * <dir>/cgroup.procs right after the spawn, as upstream does without
 * CLONE_INTO_CGROUP). A failure is logged, not fatal. */
void git_cmd_cgroup(struct git_cmd *cmd, const char *cgroup_dir);

struct git_result {
	int exit_code; /* -1 if killed by a signal or timed out */
	int signal;
	int timed_out;
	/* Resource usage of the git process (wait4), for the access log's
	 * command.* fields. real_time_ms spans spawn to reap. */
	int64_t real_time_ms, user_time_ms, system_time_ms;
	int64_t maxrss_kb, inblock, oublock, minflt, majflt;
};

/*
 * A per-thread observer called with every reaped command's result (from
 * git_cmd_run and git_cmd_wait on this thread), so an RPC can sum its
 * children's usage into the access log. fn NULL removes it.
 */
void git_cmd_stats_sink(void (*fn)(void *arg, const struct git_result *res), void *arg);

/*
 * Runs the command to completion: feeds stdin_data, captures stdout into out
 * and stderr into err_out (either may be NULL to discard; both capped by their
 * strbuf cap, excess is drained and dropped). Returns 0 when the process ran
 * (check res->exit_code), -1 with err set when it could not be started or the
 * argv was invalid. Frees cmd.
 */
int git_cmd_run(struct git_cmd *cmd, const void *stdin_data, size_t stdin_len,
		struct strbuf *out, struct strbuf *err_out, struct git_result *res,
		struct error *err);

/*
 * Starts the command with pipes for streaming use. *pid, and the fds
 * (stdin_fd may be NULL to give /dev/null; stdout_fd / stderr_fd likewise
 * NULL to discard). Frees cmd. Wait with git_cmd_wait.
 */
int git_cmd_start(struct git_cmd *cmd, int *stdin_fd, int *stdout_fd, int *stderr_fd,
		  pid_t *pid, struct error *err);
int git_cmd_wait(pid_t pid, struct git_result *res);

/* SIGKILLs the process group of a started command (streaming users with a
 * deadline); still git_cmd_wait for it afterwards. */
void git_cmd_kill(pid_t pid);

void git_cmd_free(struct git_cmd *cmd);

/*
 * The argv and environment the command will run with (NULL-terminated,
 * borrowed from cmd, valid until it is run or freed); NULL with err set
 * when the command is invalid. For tests and debug logging.
 */
const char *const *git_cmd_argv(struct git_cmd *cmd, struct error *err);
const char *const *git_cmd_envp(struct git_cmd *cmd, struct error *err);

/* The version of the configured git, e.g. "2.39.5" (cached per binary). */
int git_version(char **out, struct error *err);
/* Parses `git version 2.39.5[ (extra)]\n` into "2.39.5" (malloc'd); -1 when
 * the text has another shape. */
int git_version_parse(const char *output, char **out);

/* Upstream's config-key rule ^[[:alnum:]]+(\.[*-/_:@a-zA-Z0-9]+)+$ . */
int git_config_key_valid(const char *key);
/* True for the pseudo-revisions git_cmd_pseudo_arg accepts. */
int git_pseudo_revision_valid(const char *arg);

#endif
