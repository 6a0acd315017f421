/*
 * A stand-in for the gRPC runtime's call context, so service handlers can be
 * driven directly: the test sets the request and the service data, the
 * handler's responses are packed and kept for inspection. Include from
 * exactly one test file per binary (it defines the rpc_call_* functions, so
 * the real runtime is not linked in).
 */
#ifndef TESTS_FAKE_CALL_H
#define TESTS_FAKE_CALL_H

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "rpc/call.h"

#define FAKE_MAX_SENT 64

struct rpc_call {
	const ProtobufCMessage *request;
	void *data;
	int cancel_after_sends; /* cancelled once this many messages went out (0: never) */
	size_t n_sent;
	ProtobufCMessage *sent[FAKE_MAX_SENT];
	/* Further client messages of a stream, handed out by rpc_call_recv;
	 * they stay owned by the test. */
	ProtobufCMessage **recv_queue;
	size_t recv_n, recv_pos;
};

const ProtobufCMessage *rpc_call_request(struct rpc_call *call)
{
	return call->request;
}

void *rpc_call_service_data(struct rpc_call *call)
{
	return call->data;
}

/* Nothing is held back here: every message is recorded when sent. */
int rpc_call_flush(struct rpc_call *call, struct error *err)
{
	(void)call;
	(void)err;
	return 0;
}

int rpc_call_send(struct rpc_call *call, const ProtobufCMessage *msg, struct error *err)
{
	size_t len = protobuf_c_message_get_packed_size(msg);
	uint8_t *buf = malloc(len + 1);

	if (call->n_sent == FAKE_MAX_SENT)
		return error_set(err, STATUS_CANCELLED, "too many messages");
	protobuf_c_message_pack(msg, buf);
	/* Round-trip through the wire format, as the real runtime would. */
	call->sent[call->n_sent++] = protobuf_c_message_unpack(msg->descriptor, NULL, len, buf);
	free(buf);
	return 0;
}

int64_t rpc_call_deadline_ms(struct rpc_call *call)
{
	(void)call;
	return INT64_MAX;
}

int rpc_call_cancelled(struct rpc_call *call)
{
	return call->cancel_after_sends && call->n_sent >= (size_t)call->cancel_after_sends;
}

/*
 * The rest of the call API, so the real runtime (src/rpc/call.c) is never
 * pulled from the library when a linked service uses more of it.
 */
int rpc_call_recv(struct rpc_call *call, ProtobufCMessage **out, struct error *err)
{
	(void)err;
	if (call->recv_pos == call->recv_n)
		return 0; /* the fake client's stream has ended */
	*out = call->recv_queue[call->recv_pos++];
	return 1;
}

int rpc_call_recv_raw(struct rpc_call *call, void **data, size_t *len, struct error *err)
{
	(void)call;
	(void)data;
	(void)len;
	(void)err;
	return 0;
}

int rpc_call_send_raw(struct rpc_call *call, const void *data, size_t len, struct error *err)
{
	(void)call;
	(void)data;
	(void)len;
	return error_set(err, STATUS_UNIMPLEMENTED, "raw send not supported by the fake call");
}

void rpc_call_recv_abort(struct rpc_call *call)
{
	call->recv_pos = call->recv_n; /* nothing more for the handler */
}

void rpc_call_free_message(struct rpc_call *call, ProtobufCMessage *msg)
{
	(void)call;
	(void)msg; /* queued messages are owned by the test */
}

const char *rpc_call_metadata(struct rpc_call *call, const char *key)
{
	(void)call;
	(void)key;
	return NULL;
}

const char *rpc_call_metadata_last(struct rpc_call *call, const char *key)
{
	(void)call;
	(void)key;
	return NULL;
}

const char *rpc_call_peer(struct rpc_call *call)
{
	(void)call;
	return "fake";
}

const char *rpc_call_method_name(struct rpc_call *call)
{
	(void)call;
	return "/fake.Service/Method";
}

const char *rpc_call_correlation_id(struct rpc_call *call)
{
	(void)call;
	return "fake-correlation-id";
}

/* The fake never frees arena memory: test processes are short-lived. */
void *rpc_call_alloc(struct rpc_call *call, size_t size)
{
	(void)call;
	void *p = calloc(1, size ? size : 1);
	if (!p)
		abort();
	return p;
}

char *rpc_call_strdup(struct rpc_call *call, const char *s)
{
	size_t n = strlen(s) + 1;
	return memcpy(rpc_call_alloc(call, n), s, n);
}

void rpc_call_log_field(struct rpc_call *call, const char *key, json_t *value)
{
	(void)call;
	(void)key;
	json_decref(value);
}

static inline void fake_call_reset(struct rpc_call *call)
{
	for (size_t i = 0; i < call->n_sent; i++)
		protobuf_c_message_free_unpacked(call->sent[i], NULL);
	call->n_sent = 0;
}

#endif
