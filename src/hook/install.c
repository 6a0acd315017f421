/*
 * Installation of the hook symlinks in the runtime directory and the
 * environment entry carrying the payload (see install.h).
 */
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "hook/install.h"

static const char *const hook_names[] = { "pre-receive", "post-receive", "update",
					  "reference-transaction" };

/* Links the hooks named in mask (enum hook_kind bits) into dir. */
static int link_hooks(const char *dir, const char *hooks_binary, unsigned mask,
		      struct error *err)
{
	static const unsigned bits[] = { HOOK_PRE_RECEIVE, HOOK_POST_RECEIVE, HOOK_UPDATE,
					 HOOK_REFERENCE_TRANSACTION };
	char link[PATH_MAX + 64];

	if (mkdir(dir, 0700) < 0 && errno != EEXIST)
		return error_set(err, STATUS_INTERNAL, "installing hooks: mkdir %s: %s", dir,
				 strerror(errno));
	for (size_t i = 0; i < sizeof(hook_names) / sizeof(hook_names[0]); i++) {
		snprintf(link, sizeof(link), "%s/%s", dir, hook_names[i]);
		if (unlink(link) < 0 && errno != ENOENT)
			return error_set(err, STATUS_INTERNAL, "installing hooks: unlink %s: %s",
					 link, strerror(errno));
		if ((mask & bits[i]) && symlink(hooks_binary, link) < 0)
			return error_set(err, STATUS_INTERNAL, "installing hooks: symlink %s: %s",
					 link, strerror(errno));
	}
	return 0;
}

int hook_install(const char *runtime_dir, const char *hooks_binary, char **out_dir,
		 struct error *err)
{
	char dir[PATH_MAX], sub[PATH_MAX + 64];
	const unsigned pre_post = HOOK_PRE_RECEIVE | HOOK_POST_RECEIVE;

	*out_dir = NULL;
	if ((size_t)snprintf(dir, sizeof(dir), "%s/hooks.d", runtime_dir) >= sizeof(dir))
		return error_set(err, STATUS_INTERNAL, "installing hooks: path too long");
	if (link_hooks(dir, hooks_binary, HOOK_RECEIVE_PACK, err) < 0)
		return -1;
	snprintf(sub, sizeof(sub), "%s/" HOOK_DIR_NO_TX, dir);
	if (link_hooks(sub, hooks_binary, pre_post | HOOK_UPDATE, err) < 0)
		return -1;
	snprintf(sub, sizeof(sub), "%s/" HOOK_DIR_NO_TX_NO_UPDATE, dir);
	if (link_hooks(sub, hooks_binary, pre_post, err) < 0)
		return -1;
	*out_dir = strdup(dir);
	if (!*out_dir)
		return error_set(err, STATUS_RESOURCE_EXHAUSTED, "out of memory");
	return 0;
}

int hook_payload_env(const struct hook_payload *p, char **out, struct error *err)
{
	char *b64 = NULL;
	size_t len;

	*out = NULL;
	if (hook_payload_encode(p, &b64, err) < 0)
		return -1;
	len = strlen(HOOK_PAYLOAD_ENV) + 1 + strlen(b64) + 1;
	*out = malloc(len);
	if (!*out) {
		free(b64);
		return error_set(err, STATUS_RESOURCE_EXHAUSTED, "out of memory");
	}
	snprintf(*out, len, "%s=%s", HOOK_PAYLOAD_ENV, b64);
	free(b64);
	return 0;
}
