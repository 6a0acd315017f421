/*
 * gitaly-gateway: the front door that lets plain git clients reach Gitaly,
 * playing the parts of GitLab's Workhorse (smart HTTP) and gitlab-shell
 * (SSH forced command). This header holds what its parts share: the
 * configuration (docs/gateway.md), the mapping of a URL or SSH path to a
 * (storage, relative path) pair, and a per-storage pool of Gitaly
 * connections made with src/client.
 */
#ifndef GATEWAY_GATEWAY_H
#define GATEWAY_GATEWAY_H

#include <pthread.h>
#include <stddef.h>
#include <stdint.h>

#include "base/error.h"
#include "client/client.h"
#include "shared.pb-c.h"

#define GATEWAY_CONFIG_ENV "GITALY_GATEWAY_CONFIG"
#define GATEWAY_CLIENT_NAME "gitaly-gateway"

struct gateway_storage {
	char *name;
	char *address; /* unix:/path, tcp://host:port, tls://host:port */
	char *token;   /* may be "" */
	char *ca_file; /* tls only; NULL: system CAs */
	/* the pool: one shared connection, replaced when it breaks */
	pthread_mutex_t mu;
	struct gateway_conn *conn;
};

struct gateway_user {
	char *name;
	char *password;
	char *gl_id;
};

struct gateway_config {
	char *listen_addr;     /* HTTP "host:port" */
	char *default_storage; /* storage for paths without a storage prefix */
	char *log_level;
	int auth_required;     /* every HTTP request needs valid credentials */
	char *anonymous_gl_id; /* gl_id for anonymous HTTP pushes; "" refuses them */
	char *realm;
	uint64_t max_upload_pack_body;  /* decompressed, buffered; bytes */
	uint64_t max_receive_pack_body; /* decompressed, streamed; 0 = unlimited */
	int64_t call_timeout_ms;        /* per git operation; 0 = none */
	char **git_config;              /* "key=value" for git, as GitLab's /allowed gives */
	size_t n_git_config;
	struct gateway_storage *storages;
	size_t n_storages;
	struct gateway_user *users;
	size_t n_users;
};

/* A refcounted pooled connection. */
struct gateway_conn {
	struct gitaly_conn *conn;
	int refs; /* guarded by the storage's mu */
};

/* The repository a request names. */
struct gateway_repo {
	struct gateway_storage *storage;
	char *relative_path;
};

/*
 * Reads and validates the TOML file at path. InvalidArgument with
 * "<path>:<line>:<col>: ..." style messages for syntax errors, unknown keys,
 * wrong types, a missing storage, or a default_storage that is not one.
 */
int gateway_config_load(const char *path, struct gateway_config **out, struct error *err);

/* Same, from text (for tests); name is used in messages. */
int gateway_config_parse(const char *text, size_t len, const char *name,
			 struct gateway_config **out, struct error *err);

void gateway_config_free(struct gateway_config *cfg);

struct gateway_storage *gateway_storage_find(const struct gateway_config *cfg, const char *name,
					     size_t len);

/*
 * Maps a path ("group/repo.git" or "<storage>/group/repo.git"; one leading
 * '/' allowed) to a repository: a first component naming a configured
 * storage selects it, anything else goes to the default storage. Refused
 * (InvalidArgument): empty paths, "..", "." or empty components, a
 * backslash, control characters, more than 1024 bytes.
 */
int gateway_repo_resolve(const struct gateway_config *cfg, const char *path, size_t len,
			 struct gateway_repo *out, struct error *err);

void gateway_repo_release(struct gateway_repo *r);

/* Checks basic-auth credentials; returns the user or NULL. */
const struct gateway_user *gateway_user_check(const struct gateway_config *cfg,
					      const char *name, const char *password);

/*
 * A connection to the storage's Gitaly (dialed on first use, redialed when
 * broken). Give it back with gateway_conn_put.
 */
int gateway_conn_get(struct gateway_storage *st, struct gateway_conn **out, struct error *err);
void gateway_conn_put(struct gateway_storage *st, struct gateway_conn *c);

/* Fills msg (initialised here) to point at r's names (borrowed). */
void gateway_repo_message(const struct gateway_repo *r, Gitaly__Repository *msg);

/* Runs the HTTP server until SIGINT/SIGTERM. */
int gateway_http_serve(struct gateway_config *cfg, struct error *err);

/*
 * SSH forced-command mode: serves SSH_ORIGINAL_COMMAND for user on
 * stdin/stdout/stderr. Returns the process exit code.
 */
int gateway_ssh_command(struct gateway_config *cfg, const char *user);

/*
 * Parses gitlab-shell's accepted command forms: "git-upload-pack 'path'",
 * "git-upload-pack path", "git upload-pack 'path'", double quotes. *service
 * is "git-upload-pack", "git-receive-pack" or "git-upload-archive" (static);
 * *path is malloc'd with the quotes removed.
 */
int gateway_ssh_parse_command(const char *cmd, const char **service, char **path,
			      struct error *err);

/* Creates the repository through gitaly's CreateRepository. */
int gateway_create_repository(struct gateway_config *cfg, const char *path, struct error *err);

/* HTTP status for a gRPC code (404, 401, 403, 500...). */
unsigned gateway_http_status(int grpc_code);

#endif
