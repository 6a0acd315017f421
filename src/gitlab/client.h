/*
 * Client for GitLab's internal API (/api/v4/internal/...), as upstream's
 * internal/gitlab client: an HTTP/1.1 request over tcp, TLS or a unix socket
 * (http+unix), signed with the gitlab-shell secret as a HS256 JWT in the
 * Gitlab-Shell-Api-Request header, optional basic auth. On top of it the
 * three calls the receive hooks make: /allowed, /pre_receive, /post_receive,
 * and the formatting of post-receive messages for the pushing user.
 */
#ifndef GITLAB_CLIENT_H
#define GITLAB_CLIENT_H

#include <stddef.h>

#include "base/error.h"
#include "base/strbuf.h"
#include "config/config.h"

/* Largest response body accepted. */
#define GITLAB_MAX_RESPONSE ((size_t)1 << 20)

struct gitlab_response {
	int status;              /* HTTP status code */
	char content_type[128];  /* media type, lower-cased, without parameters */
	struct strbuf body;      /* de-chunked body */
};

void gitlab_response_release(struct gitlab_response *resp);

/*
 * Sends `method` <url><relative_url_root>/api/v4/internal<path> with json_body
 * (NULL: none) and fills *resp (release it even on error). Transport
 * failures are Unavailable; config problems InvalidArgument. The HTTP status
 * is not judged here.
 */
int gitlab_request(const struct config *cfg, const char *method, const char *path,
		   const char *json_body, struct gitlab_response *resp, struct error *err);

/* The message of an error response: its JSON `message`, or
 * "Internal API error (<status>)". Appended to out. */
void gitlab_error_message(const struct gitlab_response *resp, struct strbuf *out);

struct gitlab_allowed_params {
	const char *repo_path;       /* absolute repository path (project) */
	const char *relative_path;   /* the repository's relative path */
	const char *object_dir_rel;  /* GIT_OBJECT_DIRECTORY relative to the repo, or NULL */
	const char *const *alt_dirs_rel; /* GIT_ALTERNATE_OBJECT_DIRECTORIES, relative */
	size_t n_alt_dirs_rel;
	const char *gl_repository;
	const char *gl_id;           /* user-N, key-N or username-X */
	const char *protocol;
	const char *changes;
};

/* Builds the JSON body of /allowed; *out is malloc'd. InvalidArgument for a
 * malformed gl_id ("gl_id='<id>' is invalid"). */
int gitlab_allowed_body(const struct gitlab_allowed_params *p, char **out, struct error *err);

/*
 * POST /allowed. *allowed and *message (malloc'd, may be "") report GitLab's
 * verdict; -1 with err for a transport, HTTP or decoding error (the message
 * is what upstream would print after "GitLab: ").
 */
int gitlab_allowed(const struct config *cfg, const struct gitlab_allowed_params *p, int *allowed,
		   char **message, struct error *err);

/* POST /pre_receive {gl_repository}; *increased from reference_counter_increased. */
int gitlab_pre_receive(const struct config *cfg, const char *gl_repository, int *increased,
		       struct error *err);

struct gitlab_message {
	char *message;
	char *type; /* "basic" or "alert" */
};

/*
 * POST /post_receive {gl_repository, identifier, changes, push_options}.
 * *decreased from reference_counter_decreased; *msgs (malloc'd array, free
 * with gitlab_messages_free) and *n_msgs from messages.
 */
int gitlab_post_receive(const struct config *cfg, const char *gl_repository, const char *gl_id,
			const char *changes, const char *const *push_options, size_t n_push_options,
			int *decreased, struct gitlab_message **msgs, size_t *n_msgs,
			struct error *err);

void gitlab_messages_free(struct gitlab_message *msgs, size_t n);

/*
 * Appends the messages as upstream prints them to the pusher: "\n", then a
 * basic message as is or an alert box (72 '=', words wrapped at 68 and
 * centred in 72, 72 '='), then "\n\n". An unknown type fails with
 * "invalid message type: <type>".
 */
int gitlab_format_messages(const struct gitlab_message *msgs, size_t n, struct strbuf *out,
			   struct error *err);

#endif
