/*
 * The logic behind HookService (upstream internal/gitaly/hook): what
 * pre-receive, post-receive, update and reference-transaction do once
 * gitaly-hooks has forwarded git's hook invocation. Failures of the hook
 * logic are not gRPC errors: each function reports an exit code and, for
 * errors that are not a custom hook's own exit code, a message the service
 * puts on stderr.
 */
#ifndef HOOK_HOOK_H
#define HOOK_HOOK_H

#include <stddef.h>

#include "base/error.h"
#include "base/strbuf.h"
#include "config/config.h"

struct hook_request {
	const struct config *cfg;
	const char *repo_path;        /* resolved repository directory */
	const char *relative_path;    /* from the request's repository */
	const char *gl_repository;
	const char *gl_project_path;
	const char *const *env;       /* request environment_variables */
	size_t n_env;
	const char *const *push_options;
	size_t n_push_options;
	struct strbuf *out;           /* what goes to the pusher's stdout */
	struct strbuf *err_out;       /* and stderr */
};

/*
 * Each returns 0 with *exit_code set (0 success, or the failing custom
 * hook's code, with its output in out/err_out), or -1 with err set: the
 * service then answers exit_status 1 and stderr = err's message.
 */
int hook_pre_receive(const struct hook_request *r, const void *stdin_data, size_t stdin_len,
		     int *exit_code, struct error *err);
int hook_post_receive(const struct hook_request *r, const void *stdin_data, size_t stdin_len,
		      int *exit_code, struct error *err);
int hook_update(const struct hook_request *r, const char *ref, const char *old_value,
		const char *new_value, int *exit_code, struct error *err);

enum hook_tx_state { HOOK_TX_PREPARED = 0, HOOK_TX_COMMITTED = 1, HOOK_TX_ABORTED = 2 };

/* Without a Praefect transaction in the payload there is nothing to vote on. */
int hook_reference_transaction(const struct hook_request *r, int state,
			       const void *stdin_data, size_t stdin_len, struct error *err);

/* Builds the environment of custom hooks (see hook.c); *out is a
 * NULL-terminated malloc'd array of malloc'd strings, freed with
 * hook_env_free. */
int hook_custom_env(const struct hook_request *r, const char *userid, const char *username,
		    const char *protocol, char ***out, struct error *err);
void hook_env_free(char **env);

#endif
