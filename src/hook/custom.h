/*
 * Custom server hooks (upstream internal/gitaly/hook/custom.go): for hook H
 * the candidates are <repo>/custom_hooks/H, then <repo>/custom_hooks/H.d/ entries
 * (sorted), then <custom_hooks_dir>/H.d/ entries (sorted). Each must be a regular
 * executable file whose name does not end in '~'. They run in order with cwd
 * at the repository, the same stdin bytes and the given environment, and
 * the run stops at the first one that fails.
 */
#ifndef HOOK_CUSTOM_H
#define HOOK_CUSTOM_H

#include <stddef.h>

#include "base/error.h"
#include "base/strbuf.h"

/*
 * Lists the hooks to run, in order; *out is a malloc'd NULL-terminated array
 * of malloc'd paths (free with hook_custom_list_free). global_dir may be NULL.
 */
int hook_custom_list(const char *repo_path, const char *global_dir, const char *name,
		     char ***out, size_t *n, struct error *err);
void hook_custom_list_free(char **list, size_t n);

/*
 * Runs the custom hooks `name` with argv[1..] = args and exactly env
 * (KEY=VALUE, NULL-terminated). Their stdout and stderr are appended to out
 * and err_out. *exit_code is 0 when every hook passed (or none exists), else
 * the failing hook's exit code (-1 when killed by a signal, as Go reports).
 * Returns -1 only when a hook could not be started or waited for.
 */
int hook_custom_run(const char *repo_path, const char *global_dir, const char *name,
		    const char *const *args, size_t n_args, const char *const *env,
		    const void *stdin_data, size_t stdin_len, struct strbuf *out,
		    struct strbuf *err_out, int *exit_code, struct error *err);

#endif
