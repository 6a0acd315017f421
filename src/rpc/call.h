/*
 * The per-call context every gRPC handler receives. Handlers are plain
 * blocking functions running on a worker thread; they read requests, send
 * responses and return 0 or a negative value with err set. The runtime turns
 * the returned error (code, message, details) into the call's status.
 *
 * Before the handler runs, the runtime has already: received the first
 * request message (so the access log and limiters can see its repository),
 * checked authentication, and set up the correlation id.
 */
#ifndef RPC_CALL_H
#define RPC_CALL_H

#include <protobuf-c/protobuf-c.h>
#include <stdint.h>

#include <jansson.h>

#include "base/error.h"

struct rpc_call;

enum rpc_method_type {
	RPC_UNARY,
	RPC_CLIENT_STREAM,
	RPC_SERVER_STREAM,
	RPC_BIDI_STREAM,
};

/* From lint.proto's op_type option; used for logs and metrics labels. */
enum rpc_op { RPC_OP_UNKNOWN, RPC_OP_ACCESSOR, RPC_OP_MUTATOR, RPC_OP_MAINTENANCE };
enum rpc_scope { RPC_SCOPE_REPOSITORY, RPC_SCOPE_STORAGE };

typedef int (*rpc_handler_fn)(struct rpc_call *call, struct error *err);

struct rpc_method {
	const char *name;                               /* "ServerInfo" */
	enum rpc_method_type type;
	const ProtobufCMessageDescriptor *request;      /* request message type */
	const ProtobufCMessageDescriptor *response;     /* response message type */
	rpc_handler_fn handler;                         /* NULL: answers UNIMPLEMENTED */
	enum rpc_op op;
	enum rpc_scope scope;
};

struct rpc_service {
	const char *name;                 /* "gitaly.ServerService" */
	const struct rpc_method *methods; /* every method of the proto service */
	size_t n_methods;
	void *data;                       /* handed to handlers via rpc_call_service_data */
};

/*
 * The first request message (for unary calls, the request). Borrowed: it
 * lives until the call ends. NULL only for a client stream that closed
 * without sending anything.
 */
const ProtobufCMessage *rpc_call_request(struct rpc_call *call);

/*
 * Receives the next request message of a client or bidi stream (the first
 * one is rpc_call_request). Returns 1 with *out set (owned by the call,
 * valid until the call ends; free early with rpc_call_free_message), 0 at
 * the end of the client's stream, -1 with err set (malformed message,
 * cancelled call, deadline).
 */
int rpc_call_recv(struct rpc_call *call, ProtobufCMessage **out, struct error *err);
void rpc_call_free_message(struct rpc_call *call, ProtobufCMessage *msg);

/*
 * rpc_call_recv may run on one helper thread while the handler thread
 * sends. rpc_call_recv_abort (from the handler) makes a receive in
 * progress, and every later one, fail with Canceled "context canceled"
 * without waiting for the client: how a handler stops its reader when it
 * finishes before the client half-closed. The abandoned receive is drained
 * when the call ends. Join the reader thread before returning.
 */
void rpc_call_recv_abort(struct rpc_call *call);

/*
 * Sends one response message. For unary calls, call it exactly once; the
 * runtime sends the message together with the final status. On a server
 * stream the newest message is held back until the next send, the status
 * (one batch for both) or rpc_call_flush. Returns 0, or -1 with err set
 * when the client went away.
 */
int rpc_call_send(struct rpc_call *call, const ProtobufCMessage *msg, struct error *err);

/*
 * Delivers a held server-stream message now: for handlers that wait on
 * something outside the call after sending (e.g. Health/Watch).
 */
int rpc_call_flush(struct rpc_call *call, struct error *err);

/*
 * Raw-bytes variants for fallback handlers (rpc_server_set_fallback), which
 * have no message descriptors. rpc_call_recv_raw returns 1 with *buf
 * (malloc'd, the caller frees it) and *len, 0 at the end of the client's
 * stream, -1 with err set. rpc_call_send_raw sends one message of len bytes.
 */
int rpc_call_recv_raw(struct rpc_call *call, void **buf, size_t *len, struct error *err);
int rpc_call_send_raw(struct rpc_call *call, const void *buf, size_t len, struct error *err);

/* First value of a request metadata key (lower case), or NULL. Borrowed. */
const char *rpc_call_metadata(struct rpc_call *call, const char *key);
/* Last value of a request metadata key (grpc-go's md.Get(k)[len-1], which
 * upstream uses for gitaly-sidechannel-id), or NULL. Borrowed. */
const char *rpc_call_metadata_last(struct rpc_call *call, const char *key);

/* The call's deadline in CLOCK_MONOTONIC milliseconds, or INT64_MAX if none. */
int64_t rpc_call_deadline_ms(struct rpc_call *call);

/* Non-zero once the client cancelled or the deadline passed. Safe to call
 * from a helper thread while the handler thread sends or receives. */
int rpc_call_cancelled(struct rpc_call *call);

/* Peer string from grpc core, e.g. "fd:12" or "ipv4:127.0.0.1:3345". */
const char *rpc_call_peer(struct rpc_call *call);

/* Full method name, "/gitaly.ServerService/ServerInfo". */
const char *rpc_call_method_name(struct rpc_call *call);

/* The correlation id of this call (received or generated). */
const char *rpc_call_correlation_id(struct rpc_call *call);

/* The rpc_service.data of the service this call belongs to. */
void *rpc_call_service_data(struct rpc_call *call);

/*
 * Per-call arena: memory freed when the call ends. Never returns NULL
 * (aborts on out-of-memory, like git's xmalloc).
 */
void *rpc_call_alloc(struct rpc_call *call, size_t size);
char *rpc_call_strdup(struct rpc_call *call, const char *s);

/* Adds a custom field to the call's access-log line (value is stolen). */
void rpc_call_log_field(struct rpc_call *call, const char *key, json_t *value);

#endif
