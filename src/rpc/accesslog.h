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

#include "base/error.h"
#include "rpc/call.h"
#include "rpc/rpc_metrics.h"

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
	const char *deadline_type; /* metadata deadline_type; ignored without a deadline
				    * (logged as "none" then, like upstream) */
	const char *remote_ip, *user_id, *username;
	const char *peer_address;  /* the client connection's address, or NULL */
	const char *feature_flags; /* space-joined sorted enabled flags, or NULL */
	const char *storage_name;  /* request's top-level storage_name field, or NULL */
	int has_repository;        /* request's repository message was set */
	const char *repo_storage, *repo_path, *gl_repository, *gl_project_path;
	size_t request_bytes, response_bytes;
	json_t *custom_fields;     /* borrowed; may be NULL */
	/* object-pool requests: the request's object_pool.repository was set */
	int has_pool_repository;
	const char *pool_storage, *pool_relative_path, *pool_source_project_path;
};

/*
 * Emits the access-log line (subject to the method allow/deny patterns:
 * GITALY_LOG_REQUEST_METHOD_ALLOW_PATTERN, else
 * GITALY_LOG_REQUEST_METHOD_DENY_PATTERN, default deny
 * "^/grpc.health.v1.Health/Check$"; calls with code != OK always log).
 * Borrows everything in e.
 */
void accesslog_emit(const struct accesslog_entry *e);

/*
 * Replaces the method filter read from the environment (POSIX extended
 * regexes; NULL or "" for none). allow wins over deny, as upstream. Returns
 * 0, or -1 with err InvalidArgument when a pattern does not compile (the
 * previous filter then stays).
 */
int accesslog_set_patterns(const char *allow, const char *deny, struct error *err);

/* Non-zero when a successful call of full_method ("/svc/Method") is logged. */
int accesslog_method_logged(const char *full_method);

/* Upstream's names: "unary", "client_stream", "server_stream", "bidi_stream";
 * "accessor", "mutator", "maintenance" (NULL for RPC_OP_UNKNOWN);
 * "repository", "storage". */
const char *accesslog_method_type_name(enum rpc_method_type type);
const char *accesslog_op_name(enum rpc_op op);
const char *accesslog_scope_name(enum rpc_scope scope);

/*
 * Counts gitaly_service_client_requests_total{client_name, grpc_service,
 * grpc_method, call_site, auth_version, grpc_code, deadline_type,
 * method_operation, method_scope} for one finished call ("unknown" for
 * anything not set). Call it for every call, whether or not it is logged.
 */
void rpc_metrics_client_request(const struct accesslog_entry *e);

/*
 * The grpc_server_* families as go-grpc-prometheus keeps them. Feed them the
 * way its interceptors do: started at call start; msg_received for each
 * request message read (unary: once); msg_sent for each response sent
 * (unary: once, only when the call succeeded); handled once at the end with
 * the final code and the handling time (which feeds the histogram).
 */
/* Registers the grpc_server_* series of every method at 0 (handled_total for
 * all 17 codes, the histogram when enabled), like grpcprometheus.Register. */
void rpc_metrics_preregister(const struct rpc_service *svc);
/*
 * key: NULL, or a pointer that stands for this (type, service, method)
 * for the life of the process (a registered method's descriptor): its
 * series are then found once, not hashed on every event.
 */
void rpc_metrics_started(const void *key, const char *service, const char *method,
			 enum rpc_method_type type);
void rpc_metrics_msg_received(const void *key, const char *service, const char *method,
			      enum rpc_method_type type);
void rpc_metrics_msg_sent(const void *key, const char *service, const char *method,
			  enum rpc_method_type type);
void rpc_metrics_handled(const void *key, const char *service, const char *method,
			 enum rpc_method_type type, int code, double seconds);
/*
 * Sets the buckets of grpc_server_handling_seconds (config
 * [prometheus] grpc_latency_buckets; default
 * metrics_default_latency_buckets). n == 0 disables the histogram, as an
 * empty grpc_latency_buckets does upstream. Best called before the first
 * call; later calls reset the histogram's observations.
 */
void rpc_metrics_set_buckets(const double *buckets, size_t n);

#endif
