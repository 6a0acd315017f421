/*
 * The string scanner declared in rpc/wirecheck.h: a minimal protobuf wire
 * walker that only looks at length-delimited fields.
 */
#include "rpc/wirecheck.h"

#include <string.h>

#define WIRECHECK_MAX_DEPTH 64

static int read_varint(const uint8_t **p, const uint8_t *end, uint64_t *out)
{
	uint64_t v = 0;

	for (unsigned shift = 0; shift < 64; shift += 7) {
		if (*p >= end)
			return -1;
		uint8_t b = *(*p)++;
		v |= (uint64_t)(b & 0x7f) << shift;
		if (!(b & 0x80)) {
			*out = v;
			return 0;
		}
	}
	return -1;
}

static int scan(const ProtobufCMessageDescriptor *desc, const uint8_t *p, const uint8_t *end,
		int depth, struct error *err)
{
	if (depth > WIRECHECK_MAX_DEPTH)
		return error_set(err, STATUS_INVALID_ARGUMENT, "request nesting too deep");

	while (p < end) {
		uint64_t key, n;
		const ProtobufCFieldDescriptor *field;

		if (read_varint(&p, end, &key) < 0)
			goto malformed;
		field = protobuf_c_message_descriptor_get_field(desc, (unsigned)(key >> 3));
		switch (key & 7) {
		case 0:
			if (read_varint(&p, end, &n) < 0)
				goto malformed;
			break;
		case 1:
			if (end - p < 8)
				goto malformed;
			p += 8;
			break;
		case 5:
			if (end - p < 4)
				goto malformed;
			p += 4;
			break;
		case 2:
			if (read_varint(&p, end, &n) < 0 || n > (uint64_t)(end - p))
				goto malformed;
			if (field && field->type == PROTOBUF_C_TYPE_STRING && memchr(p, '\0', n))
				return error_set(err, STATUS_INVALID_ARGUMENT,
						 "field %s.%s contains a NUL byte", desc->name,
						 field->name);
			if (field && field->type == PROTOBUF_C_TYPE_MESSAGE &&
			    scan(field->descriptor, p, p + n, depth + 1, err) < 0)
				return -1;
			p += n;
			break;
		default:
			goto malformed;
		}
	}
	return 0;

malformed:
	return error_set(err, STATUS_INTERNAL,
			 "grpc: error unmarshalling request: proto: cannot parse invalid wire-format data");
}

int rpc_wire_check_strings(const ProtobufCMessageDescriptor *desc, const uint8_t *data,
			   size_t len, struct error *err)
{
	return scan(desc, data, data + len, 0, err);
}
