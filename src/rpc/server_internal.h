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

/*
 * Completion tags on the server's shared queue start with one of these, so
 * the worker loop can tell what completed.
 */
enum rpc_tag_kind {
	RPC_TAG_SLOT = 1, /* a generic call request (server.c) */
	RPC_TAG_UNARY,    /* a registered unary call request (server.c) */
	RPC_TAG_CLOSE,    /* an async call's RECV_CLOSE_ON_SERVER (call.c) */
	RPC_TAG_FINAL,    /* an async call's final send batch (call.c) */
	RPC_TAG_PROBE,    /* an async call's empty batch (call.c, fin_settle_close) */
};

struct rpc_tag {
	enum rpc_tag_kind kind;
};

/*
 * Runs a unary call of a registered method (the server registered it with
 * grpc core, which read the request message before handing the call out):
 * the same steps as rpc_call_handle, but the call is bound to the shared
 * queue and nothing is waited for: the response, status and (unless
 * rpc_call_cancelled requested it earlier on its own) the close go out in
 * one batch whose completion (an RPC_TAG_FINAL event, like the
 * RPC_TAG_CLOSE and RPC_TAG_PROBE ones) any worker passes to rpc_call_async_event, which
 * releases the call. full is "/svc/method"; payload (may be NULL: no
 * message) is consumed; gc is taken over.
 */
void rpc_call_handle_unary(struct rpc_server *srv, grpc_call *gc, const struct rpc_lookup *lk,
			   const char *full, gpr_timespec deadline, const grpc_metadata_array *md,
			   grpc_byte_buffer *payload);

/* A completion of kind RPC_TAG_CLOSE, RPC_TAG_FINAL or RPC_TAG_PROBE. */
void rpc_call_async_event(struct rpc_tag *tag, int success);

#endif
