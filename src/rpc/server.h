/*
 * The gRPC server runtime on grpc core's C API. A server owns a grpc_server,
 * a table of registered services ("/<service>/<method>" -> rpc_method) and a
 * pool of worker threads. Idle workers take new calls from one shared
 * completion queue and each runs its call to the end synchronously (see
 * src/rpc/call.c), so handlers are plain blocking functions. Connections are
 * fed to the server as connected file descriptors (src/net/listener.c) with
 * rpc_server_add_fd; grpc core never listens itself.
 */
#ifndef RPC_SERVER_H
#define RPC_SERVER_H

#include <stddef.h>
#include <stdint.h>

#include "base/error.h"
#include "rpc/auth.h"
#include "rpc/call.h"

#define RPC_DEFAULT_MAX_RECV_BYTES ((size_t)4 << 20)

struct rpc_server_options {
	int n_workers;            /* <= 0: max(8, 2 * online CPUs) */
	size_t max_recv_bytes;    /* 0: RPC_DEFAULT_MAX_RECV_BYTES */
	struct auth_config auth;  /* borrowed; must outlive the server */
	int64_t keepalive_time_ms; /* server pings; 0: 5 minutes */
	int no_access_log;        /* 1: do not emit access-log lines or rpc metrics */
};

struct rpc_server;

/* Creates a server (not started). Returns 0, or -1 with err set. */
int rpc_server_new(const struct rpc_server_options *opts, struct rpc_server **out,
		   struct error *err);

/*
 * Registers a service; svc (and everything it points to) is borrowed and
 * must outlive the server. Only before rpc_server_start. Returns -1 with
 * err set when a service of that name is already registered.
 */
int rpc_server_register(struct rpc_server *srv, const struct rpc_service *svc, struct error *err);

/*
 * Sends calls to methods no registered service has to fn instead of
 * answering UNIMPLEMENTED (praefect proxies them). Such a call is a bidi
 * stream of raw bytes: nothing is read before fn runs, rpc_call_request is
 * NULL, and fn uses rpc_call_recv_raw / rpc_call_send_raw;
 * rpc_call_service_data returns data. Auth runs first; no access-log line
 * or grpc_server_* metrics are produced for these calls. Before start only.
 */
void rpc_server_set_fallback(struct rpc_server *srv, rpc_handler_fn fn, void *data);

/* Starts grpc core and the worker threads. */
int rpc_server_start(struct rpc_server *srv, struct error *err);

/*
 * Hands a connected byte stream (socket or socketpair end) carrying HTTP/2
 * to grpc core. The fd is made non-blocking here; ownership passes to grpc
 * core, which closes it with the connection. Only after rpc_server_start.
 */
int rpc_server_add_fd(struct rpc_server *srv, int fd, struct error *err);

/*
 * Stops the server: no new calls, in-flight calls get grace_ms to finish,
 * then every remaining call is cancelled and the workers are joined.
 * Returns 0 when every call finished within the grace period, -1 when some
 * had to be cancelled. Idempotent.
 */
int rpc_server_shutdown(struct rpc_server *srv, int64_t grace_ms);

/* Shuts down (grace 0) if still running, then frees the server. NULL is fine. */
void rpc_server_free(struct rpc_server *srv);

/* Number of worker threads (after defaults). */
int rpc_server_n_workers(const struct rpc_server *srv);

#endif
