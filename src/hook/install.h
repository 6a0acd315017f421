/*
 * What gitaly does so that git runs gitaly-hooks: a directory of symlinks
 * named after the hooks (pre-receive, post-receive, update,
 * reference-transaction; never proc-receive) pointing at the gitaly-hooks
 * binary, handed to hook-enabled git commands as `-c core.hooksPath=<dir>`,
 * together with GITALY_HOOKS_PAYLOAD in their environment.
 */
#ifndef HOOK_INSTALL_H
#define HOOK_INSTALL_H

#include "base/error.h"
#include "hook/payload.h"

/*
 * Leaner variants inside the hooks directory, for a receive-pack that needs
 * fewer hooks: without reference-transaction (no Praefect transaction to
 * vote on, the only thing that hook does) and also without update (no
 * custom update hook, the only thing that hook runs). git spawns the
 * reference-transaction hook twice and the update hook once per ref, so
 * leaving them out saves hundreds of processes on a large push.
 */
#define HOOK_DIR_NO_TX "no-tx"
#define HOOK_DIR_NO_TX_NO_UPDATE "no-tx-no-update"

/*
 * Creates <runtime_dir>/hooks.d with the hook symlinks to hooks_binary
 * (absolute path of gitaly-hooks, usually <bin_dir>/gitaly-hooks), replacing
 * stale links, and the two variants above as subdirectories of it. *out_dir
 * (malloc'd) is the value for core.hooksPath with every hook.
 */
int hook_install(const char *runtime_dir, const char *hooks_binary, char **out_dir,
		 struct error *err);

/*
 * Builds "GITALY_HOOKS_PAYLOAD=<base64>" for a git command run on behalf of
 * p's user; *out is malloc'd. p->requested_hooks should be HOOK_RECEIVE_PACK
 * for receive-pack, internal_socket "<runtime_dir>/sock.d/intern" and
 * internal_socket_token the [auth] token.
 */
int hook_payload_env(const struct hook_payload *p, char **out, struct error *err);

#endif
