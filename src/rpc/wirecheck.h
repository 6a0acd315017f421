/*
 * Checks on a request's raw protobuf bytes that protobuf-c's unpacker cannot
 * make. protobuf-c stores `string` fields as NUL-terminated C strings, so a
 * string with an embedded NUL would silently reach a handler shortened
 * ("a\0/../../x" becomes "a"). The scanner walks the wire format with the
 * message descriptor and refuses any string field holding a NUL byte.
 */
#ifndef RPC_WIRECHECK_H
#define RPC_WIRECHECK_H

#include <protobuf-c/protobuf-c.h>
#include <stddef.h>
#include <stdint.h>

#include "base/error.h"

/*
 * Scans data (a serialized desc message), recursing into sub-messages.
 * Returns 0 when every string field is free of NUL bytes, -1 with err set to
 * InvalidArgument naming the field otherwise, or when the bytes are not
 * well-formed protobuf.
 */
int rpc_wire_check_strings(const ProtobufCMessageDescriptor *desc, const uint8_t *data,
			   size_t len, struct error *err);

#endif
