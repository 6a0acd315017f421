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

/* Sets the process-wide git settings (called once at startup). */
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
/* A flag after the subcommand; must start with '-' (else the run fails). */
void git_cmd_flag(struct git_cmd *cmd, const char *flag);
/* `--name=value` after the subcommand. */
void git_cmd_option(struct git_cmd *cmd, const char *name, const char *value);
/* Positional arguments; `--end-of-options` is inserted before the first. */
void git_cmd_arg(struct git_cmd *cmd, const char *arg);
/* Pathspecs after `--`. */
void git_cmd_path(struct git_cmd *cmd, const char *path);
/* Extra environment variable for this command. */
void git_cmd_setenv(struct git_cmd *cmd, const char *name, const char *value);
/* Working directory (default: repo_path, else "/"). */
void git_cmd_chdir(struct git_cmd *cmd, const char *dir);
/* Kills the process group after timeout_ms (0: no timeout). */
void git_cmd_timeout(struct git_cmd *cmd, int64_t timeout_ms);

struct git_result {
	int exit_code; /* -1 if killed by a signal or timed out */
	int signal;
	int timed_out;
};

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

void git_cmd_free(struct git_cmd *cmd);

/* The version of the configured git, e.g. "2.39.5" (cached). */
int git_version(char **out, struct error *err);

#endif
