/*
 * The access log: one line per finished RPC with upstream's fields and level
 * mapping (reference/gitaly-server.md section 9), and the grpc_server_*
 * Prometheus families fed at the same point.
 */
#ifndef RPC_ACCESSLOG_H
#define RPC_ACCESSLOG_H

#include <stddef.h>
#include <stdint.h>
#include <time.h>

#include <jansson.h>

#include "rpc/call.h"

struct accesslog_entry {
	const char *service;     /* "gitaly.ServerService" */
	const char *method;      /* "ServerInfo" */
	enum rpc_method_type type;
	enum rpc_op op;
	enum rpc_scope scope;
	struct timespec start;   /* CLOCK_REALTIME at call start */
	int64_t deadline_unix_ms; /* 0 when the call has no deadline */
	double time_ms;          /* handling time */
	int code;                /* final status code */
	const char *error;       /* final status message when code != 0 */
	const char *correlation_id;
	const char *client_name;  /* x-gitlab-client-name, else client_name */
	const char *call_site;
	const char *auth_version;
	const char *deadline_type;
	const char *remote_ip, *user_id, *username;
	const char *feature_flags; /* space-joined sorted enabled flags, or NULL */
	const char *storage_name;  /* request's top-level storage_name field, or NULL */
	int has_repository;        /* request's repository message was set */
	const char *repo_storage, *repo_path, *gl_repository, *gl_project_path;
	size_t request_bytes, response_bytes;
	json_t *custom_fields;     /* borrowed; may be NULL */
};

/* Emits the access-log line (subject to the method allow/deny patterns). */
void accesslog_emit(const struct accesslog_entry *e);

/* Registers the grpc_server_* series of every method at 0. */
void rpc_metrics_preregister(const struct rpc_service *svc);
void rpc_metrics_started(const char *service, const char *method, enum rpc_method_type type);
void rpc_metrics_msg_received(const char *service, const char *method, enum rpc_method_type type);
void rpc_metrics_msg_sent(const char *service, const char *method, enum rpc_method_type type);
void rpc_metrics_handled(const char *service, const char *method, enum rpc_method_type type,
			 int code, double seconds);
/* Sets the buckets of grpc_server_handling_seconds (before the first call). */
void rpc_metrics_set_buckets(const double *buckets, size_t n);

#endif
