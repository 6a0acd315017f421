/*
 * What src/rpc/call.c (the per-call state machine) and src/rpc/server.c (the
 * method table and worker pool) share. Not for use outside src/rpc.
 */
#ifndef RPC_SERVER_INTERNAL_H
#define RPC_SERVER_INTERNAL_H

#include <grpc/grpc.h>

#include "rpc/accesslog.h"
#include "rpc/server.h"

/* Result of a method lookup. */
struct rpc_lookup {
	const struct rpc_service *svc; /* NULL: unknown service */
	const struct rpc_method *method; /* NULL: unknown method (or service) */
};

/* Looks up "/<service>/<method>" (len bytes, not NUL-terminated). */
void rpc_server_lookup(const struct rpc_server *srv, const char *full, size_t len,
		       struct rpc_lookup *out);

const struct rpc_server_options *rpc_server_opts(const struct rpc_server *srv);

/* The fallback handler for unknown methods: returns 1 with *fn and *data set, or 0. */
int rpc_server_fallback(const struct rpc_server *srv, rpc_handler_fn *fn, void **data);

/*
 * Fills the request-derived access-log fields from the first request: a
 * top-level string field "storage_name", and a field "repository" of type
 * gitaly.Repository (storage_name, relative_path, gl_repository,
 * gl_project_path). Strings are borrowed from req. req may be NULL.
 */
void rpc_call_request_fields(const ProtobufCMessage *req, struct accesslog_entry *e);

/*
 * Runs one call from start to end on the calling worker thread: dispatch,
 * first request, auth, handler, status, access log. cq is the worker's
 * completion queue bound to the call (a NEXT queue, used only by this call
 * while it runs). Takes ownership of gc (unrefs it).
 */
void rpc_call_handle(struct rpc_server *srv, grpc_call *gc, const grpc_call_details *details,
		     const grpc_metadata_array *md, grpc_completion_queue *cq);

#endif
