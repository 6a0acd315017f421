/*
 * Helpers shared by the service handlers: turning a request's
 * gitaly.Repository into a locator lookup, streaming bytes in upstream's
 * 128 KiB chunks, walking directories for sizes, removing trees, and quoting
 * strings the way Go's %q does (upstream puts git's stderr into messages so).
 */
#ifndef SERVICE_UTIL_H
#define SERVICE_UTIL_H

#include <stddef.h>
#include <stdint.h>

#include "base/error.h"
#include "base/strbuf.h"
#include "git/command.h"
#include "git/locator.h"
#include "rpc/call.h"
#include "service/service.h"
#include "shared.pb-c.h"

/* Upstream's streamio chunk size for byte streams. */
#define SERVICE_CHUNK_SIZE ((size_t)128 * 1024)

/*
 * Fills *ref from a request's repository message (fields are borrowed from
 * repo). Returns ref, or NULL when repo is NULL (the locator then answers
 * "repository not set").
 */
const struct repo_ref *service_repo_ref(const Gitaly__Repository *repo, struct repo_ref *ref);

/*
 * Resolves the request's repository to its directory with the locator
 * (flags: enum locator_flags). *out is malloc'd. Errors carry the locator's
 * upstream codes and messages unchanged.
 */
int service_repo_path(const struct service_deps *deps, const Gitaly__Repository *repo,
		      unsigned flags, char **out, struct error *err);

/*
 * The object directories a request's repository names (a quarantine
 * directory and alternates, relative to the repository): upstream hands
 * them to every git command as GIT_OBJECT_DIRECTORY and
 * GIT_ALTERNATE_OBJECT_DIRECTORIES (joined with ':').
 */
struct service_git_env {
	char *object_directory; /* NULL when not set */
	char *alternates;       /* NULL when none */
};

/* Fills env from the request's repository (already validated by the locator). */
int service_git_env_init(struct service_git_env *env, const char *repo_path,
			 const Gitaly__Repository *repo, struct error *err);
void service_git_env_release(struct service_git_env *env);

/* git_cmd_new plus the request's object directory environment (env may be NULL). */
struct git_cmd *service_git_new(const char *repo_path, const struct service_git_env *env,
				const char *subcommand);

/* Sends one chunk of a byte stream; ctx is the caller's. */
typedef int (*service_chunk_fn)(struct rpc_call *call, const uint8_t *data, size_t len,
				void *ctx, struct error *err);

/*
 * Reads fd to its end and hands it to send in chunks of at most
 * SERVICE_CHUNK_SIZE bytes. Nothing is sent for empty input, as upstream's
 * chunk writer. Does not close fd. Read failures are Internal.
 */
int service_stream_fd(struct rpc_call *call, int fd, service_chunk_fn send, void *ctx,
		      struct error *err);

/*
 * Sum of the sizes (lstat) of every non-directory entry beneath path,
 * without following symlinks; entries vanishing concurrently are skipped,
 * a missing path counts as 0. Upstream's dirSizeInBytes.
 */
int service_dir_size(const char *path, uint64_t *out, struct error *err);

/* rm -rf path (no symlink following). Missing path is fine. Returns 0/-1. */
int service_remove_all(const char *path);

/* fsyncs every file and directory beneath path, then path itself. */
int service_sync_recursive(const char *path);

/* fsyncs the directory containing path. */
int service_sync_parent(const char *path);

/* mkdir -p with the given mode. Returns 0, or -1 with errno set. */
int service_mkdir_all(const char *path, unsigned mode);

/* Appends s (len bytes) quoted as Go's %q would print it. */
int service_go_quote(struct strbuf *sb, const char *s, size_t len);

/* True when len bytes of s contain a NUL byte. */
int service_has_nul(const void *s, size_t len);

#endif
