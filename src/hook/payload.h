/*
 * The hooks payload: what gitaly hands to gitaly-hooks through git, in the
 * GITALY_HOOKS_PAYLOAD environment variable, as standard base64 of a JSON
 * document (upstream internal/git/hooks_payload.go). The repository travels
 * as a protojson string inside that JSON.
 */
#ifndef HOOK_PAYLOAD_H
#define HOOK_PAYLOAD_H

#include <stddef.h>

#include "base/error.h"

#define HOOK_PAYLOAD_ENV "GITALY_HOOKS_PAYLOAD"

/* requested_hooks bits. */
enum hook_kind {
	HOOK_REFERENCE_TRANSACTION = 1,
	HOOK_UPDATE = 2,
	HOOK_PRE_RECEIVE = 4,
	HOOK_POST_RECEIVE = 8,
	HOOK_PACK_OBJECTS = 16,
	HOOK_PROC_RECEIVE = 32,
};

/* What a payload of requested_hooks 0 means: every hook but proc-receive. */
#define HOOK_ALL 31u
/* What receive-pack requests. */
#define HOOK_RECEIVE_PACK 15u

struct hook_payload_repo {
	char *storage_name;
	char *relative_path;
	char *git_object_directory;
	char **git_alternate_object_directories;
	size_t n_git_alternate_object_directories;
	char *gl_repository;
	char *gl_project_path;
};

struct hook_payload {
	unsigned requested_hooks; /* 0 after decoding never happens: read as HOOK_ALL */
	struct hook_payload_repo repo;
	char *object_format;      /* "sha1" or "sha256" */
	char *runtime_dir;
	char *internal_socket;
	char *internal_socket_token;
	int has_transaction;      /* a Praefect transaction is attached */
	int has_user_details;
	char *username, *userid, *protocol, *remote_ip;
	char *feature_flags_json; /* feature_flags_with_value as JSON, or NULL */
};

/*
 * Decodes the base64 value of GITALY_HOOKS_PAYLOAD into *p (owned strings;
 * release with hook_payload_release). InvalidArgument on bad base64 or JSON.
 */
int hook_payload_decode(const char *value, struct hook_payload *p, struct error *err);

/* Finds GITALY_HOOKS_PAYLOAD among KEY=VALUE strings and decodes it; a
 * missing variable fails with "no hooks payload found in environment". */
int hook_payload_from_env(const char *const *env, size_t n, struct hook_payload *p,
			  struct error *err);

/* Encodes *p as base64 JSON; *out is malloc'd. */
int hook_payload_encode(const struct hook_payload *p, char **out, struct error *err);

/* Non-zero when hook (one enum hook_kind bit) is requested. */
int hook_payload_is_requested(const struct hook_payload *p, unsigned hook);

void hook_payload_release(struct hook_payload *p);

/* The value of key among KEY=VALUE strings (last wins), or NULL. Borrowed. */
const char *hook_env_get(const char *const *env, size_t n, const char *key);

#endif
