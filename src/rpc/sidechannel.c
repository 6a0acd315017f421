/*
 * rpc_sidechannel_open: the id from the call's metadata, the session from
 * the call's peer (src/net/backchannel.c), the handshake from
 * src/net/sidechannel.c. Error texts follow upstream's OpenSidechannel.
 */
#include "rpc/sidechannel.h"

#include <stdlib.h>

#include "net/backchannel.h"
#include "net/sidechannel.h"

#define SIDECHANNEL_ID_KEY "gitaly-sidechannel-id"

int rpc_sidechannel_open(struct rpc_call *call, struct yamux_stream **out, struct error *err)
{
	const char *v = rpc_call_metadata_last(call, SIDECHANNEL_ID_KEY);
	struct yamux_stream *st = NULL;
	int64_t id;

	*out = NULL;
	if (!v)
		return error_set(err, STATUS_UNAVAILABLE,
				 "sidechannel: sidechannel-id not found in incoming metadata");
	/* upstream ignores a parse failure and uses id 0 */
	id = strtoll(v, NULL, 10);
	if (backchannel_open_stream(rpc_call_peer(call), &st, err) < 0) {
		int plain = err->code == STATUS_FAILED_PRECONDITION;

		err->code = STATUS_UNAVAILABLE;
		return error_prefix(err, plain ? "sidechannel: fail to extract yamux session"
					       : "sidechannel");
	}
	if (sidechannel_server_handshake(st, id, SIDECHANNEL_HANDSHAKE_TIMEOUT_MS, err) < 0) {
		yamux_stream_free(st);
		return error_prefix(err, "sidechannel");
	}
	*out = st;
	return 0;
}
