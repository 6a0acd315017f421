/*
 * Sidechannel calls from the client side: a waiter registered under a fresh
 * id, the unary call (with `gitaly-sidechannel-id`) run on a thread of its
 * own, and the caller waiting for whichever comes first: the stream the
 * server opens for that id, or the end of the call.
 */
#include "client/client_internal.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct gitaly_sc_call {
	struct sc_waiter w;
	struct gitaly_conn *conn;
	char *method;
	uint8_t *req;
	size_t req_len;
	const ProtobufCMessageDescriptor *req_desc;
	const ProtobufCMessageDescriptor *resp_desc;
	struct gitaly_call *call;
	pthread_t thread;
	int has_thread;
	int joined;
	int stream_taken;
	ProtobufCMessage *resp;
	struct error result;
};

/* Runs the unary call to its end and wakes the waiter. */
static void *sc_thread(void *arg)
{
	struct gitaly_sc_call *sc = arg;
	ProtobufCMessage *req, *m = NULL;
	struct error rerr = ERROR_INIT;

	req = protobuf_c_message_unpack(sc->req_desc, NULL, sc->req_len, sc->req);
	if (!req) {
		error_set(&sc->result, STATUS_INTERNAL, "cannot re-read request");
		goto done;
	}
	if (gitaly_call_send(sc->call, req, 1, &rerr) == 0)
		gitaly_call_recv(sc->call, sc->resp_desc, &m, &rerr);
	protobuf_c_message_free_unpacked(req, NULL);
	if (gitaly_call_finish(sc->call, &sc->result) == 0) {
		if (m) {
			sc->resp = m;
			m = NULL;
		} else if (error_is_set(&rerr)) {
			error_move(&sc->result, &rerr);
		} else {
			error_set(&sc->result, STATUS_INTERNAL, "no response message");
		}
	}
done:
	if (m)
		protobuf_c_message_free_unpacked(m, NULL);
	error_release(&rerr);
	pthread_mutex_lock(&sc->w.mu);
	sc->w.call_done = 1;
	pthread_cond_broadcast(&sc->w.cond);
	pthread_mutex_unlock(&sc->w.mu);
	return NULL;
}

int gitaly_sc_call_start(struct gitaly_conn *c, const char *method, const ProtobufCMessage *req,
			 const ProtobufCMessageDescriptor *resp_desc,
			 const struct gitaly_call_opts *opts, struct gitaly_sc_call **out,
			 struct error *err)
{
	struct gitaly_sc_call *sc;
	struct gitaly_call_opts o = { 0 };
	char idbuf[24];

	if (!c->session)
		return error_set(err, STATUS_FAILED_PRECONDITION,
				 "sidechannel needs a multiplexed connection");
	sc = calloc(1, sizeof(*sc));
	if (!sc)
		return error_set(err, STATUS_INTERNAL, "out of memory");
	pthread_mutex_init(&sc->w.mu, NULL);
	pthread_cond_init(&sc->w.cond, NULL);
	sc->conn = c;
	sc->req_desc = req->descriptor;
	sc->resp_desc = resp_desc;
	sc->req_len = protobuf_c_message_get_packed_size(req);
	sc->req = malloc(sc->req_len ? sc->req_len : 1);
	if (!sc->req) {
		free(sc);
		return error_set(err, STATUS_INTERNAL, "out of memory");
	}
	protobuf_c_message_pack(req, sc->req);
	sc_registry_add(&sc->w);
	if (opts)
		o = *opts;
	snprintf(idbuf, sizeof(idbuf), "%" PRId64, sc->w.id);
	o.sidechannel_id = idbuf;
	if (gitaly_call_start(c, method, &o, &sc->call, err) < 0) {
		gitaly_sc_call_free(sc);
		return -1;
	}
	if (pthread_create(&sc->thread, NULL, sc_thread, sc) != 0) {
		gitaly_sc_call_free(sc);
		return error_set(err, STATUS_INTERNAL, "cannot start call thread");
	}
	sc->has_thread = 1;
	*out = sc;
	return 0;
}

static void sc_join(struct gitaly_sc_call *sc)
{
	if (sc->has_thread && !sc->joined) {
		pthread_join(sc->thread, NULL);
		sc->joined = 1;
	}
}

int gitaly_sc_call_stream(struct gitaly_sc_call *sc, struct yamux_stream **out,
			  struct error *err)
{
	int ret = -1;

	pthread_mutex_lock(&sc->w.mu);
	while (!sc->w.stream && !sc->w.call_done)
		pthread_cond_wait(&sc->w.cond, &sc->w.mu);
	if (sc->w.stream) {
		*out = sc->w.stream;
		sc->stream_taken = 1;
		ret = 0;
	}
	pthread_mutex_unlock(&sc->w.mu);
	if (ret == 0)
		return 0;
	sc_join(sc);
	if (error_is_set(&sc->result))
		return error_set(err, sc->result.code, "%s", sc->result.message);
	return error_set(err, STATUS_INTERNAL, "callback de-registered without having run");
}

int gitaly_sc_call_finish(struct gitaly_sc_call *sc, ProtobufCMessage **resp, struct error *err)
{
	sc_join(sc);
	sc_registry_remove(&sc->w);
	if (resp)
		*resp = NULL;
	if (error_is_set(&sc->result))
		return error_set(err, sc->result.code, "%s", sc->result.message);
	if (!sc->w.stream)
		return error_set(err, STATUS_INTERNAL,
				 "callback de-registered without having run");
	{
		struct error e2 = ERROR_INIT;
		yamux_stream_close_write(sc->w.stream, &e2);
		error_release(&e2);
	}
	if (resp) {
		*resp = sc->resp;
		sc->resp = NULL;
	}
	return 0;
}

void gitaly_sc_call_free(struct gitaly_sc_call *sc)
{
	if (!sc)
		return;
	sc_registry_remove(&sc->w);
	if (sc->call && !sc->joined)
		gitaly_call_cancel(sc->call);
	sc_join(sc);
	gitaly_call_free(sc->call);
	if (sc->w.stream)
		yamux_stream_free(sc->w.stream);
	if (sc->resp)
		protobuf_c_message_free_unpacked(sc->resp, NULL);
	error_release(&sc->result);
	free(sc->req);
	pthread_cond_destroy(&sc->w.cond);
	pthread_mutex_destroy(&sc->w.mu);
	free(sc);
}
