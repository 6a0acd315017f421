/*
 * Helpers for typed error details: pack a protobuf message as a
 * google.protobuf.Any detail on a struct error, and encode a whole error as
 * the serialized google.rpc.Status sent in grpc-status-details-bin.
 */
#ifndef RPC_STATUS_H
#define RPC_STATUS_H

#include <protobuf-c/protobuf-c.h>

#include "base/error.h"
#include "base/strbuf.h"

/* Packs msg and appends it to err as a detail with type URL
 * "type.googleapis.com/<full message name>". Returns 0, or -1 on allocation
 * failure or a NULL argument (err is then unchanged). */
int rpc_error_add_detail(struct error *err, const ProtobufCMessage *msg);

/* Serializes err as google.rpc.Status{code, message, details}, appending the
 * bytes to out. A NULL message encodes as "". Returns 0, or -1 when out's cap
 * or memory runs out (out is then unchanged). */
int rpc_status_encode(const struct error *err, struct strbuf *out);

#endif
