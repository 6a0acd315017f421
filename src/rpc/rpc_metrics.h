/*
 * Connection-level metrics that the listeners feed, kept apart from
 * accesslog.h so the network layer needs no RPC types. The per-RPC
 * grpc_server_* functions are declared in rpc/accesslog.h.
 */
#ifndef RPC_RPC_METRICS_H
#define RPC_RPC_METRICS_H

/*
 * Counts one accepted (or failed) connection in
 * gitaly_connections_total{type}; type is "unix", "tcp" or "tls".
 */
void rpc_metrics_connection(const char *type);

#endif
