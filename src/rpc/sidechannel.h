/*
 * The server half of the per-RPC sidechannel, seen from a handler: find the
 * yamux session of the connection that carried the call (src/net/
 * backchannel.c keeps that map), open a server stream on it and run the
 * handshake with the id from the `gitaly-sidechannel-id` metadata.
 */
#ifndef RPC_SIDECHANNEL_H
#define RPC_SIDECHANNEL_H

#include "base/error.h"
#include "net/yamux.h"
#include "rpc/call.h"

/*
 * Opens the call's sidechannel: *out is a handshaken stream (owned by the
 * caller; half-close it with yamux_stream_close_write when the response is
 * complete, then yamux_stream_free). Errors are STATUS_UNAVAILABLE with
 * upstream's text, prefixed "sidechannel: " (e.g. "sidechannel: fail to
 * extract yamux session: non-multiplexed connection", "sidechannel:
 * sidechannel-id not found in incoming metadata"); handlers wrap them
 * with their own prefix and code ("open sidechannel: %s" Internal for
 * SmartHTTP, "opennig sidechannel: %s" Aborted for SSH, as upstream).
 */
int rpc_sidechannel_open(struct rpc_call *call, struct yamux_stream **out, struct error *err);

#endif
