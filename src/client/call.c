/*
 * Client calls on grpc core: each call has its own pluck completion queue
 * and one tag per kind of operation (send, receive, status), so a sender and
 * a receiver thread can wait at the same time. The status batch is started
 * with the call, so the server's verdict is always collected. Messages are
 * packed and unpacked with protobuf-c.
 */
#include "client/client_internal.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <grpc/byte_buffer.h>
#include <grpc/byte_buffer_reader.h>
#include <grpc/support/alloc.h>
#include <grpc/support/time.h>
#include <openssl/rand.h>

#include "rpc/auth.h"

#define MAX_MESSAGE (16u << 20)

struct gitaly_call {
	struct gitaly_conn *conn;
	grpc_call *call;
	grpc_completion_queue *cq;
	int md_sent;
	int send_closed;
	int recv_md_done;
	int finished;    /* status batch plucked */
	int status_done; /* the status batch completed */
	grpc_metadata md[6];
	size_t n_md;
	char auth[160];
	char corr[40];
	char scid[24];
	grpc_metadata_array initial_md, trailing_md;
	grpc_status_code status;
	grpc_slice details;
	char tag_send, tag_recv, tag_status;
};

static void random_id(char *out, size_t len)
{
	static const char alphabet[] = "0123456789ABCDEFGHJKMNPQRSTVWXYZ";
	unsigned char rnd[26];
	size_t i;

	if (RAND_bytes(rnd, sizeof(rnd)) != 1)
		memset(rnd, 7, sizeof(rnd));
	for (i = 0; i + 1 < len && i < sizeof(rnd); i++)
		out[i] = alphabet[rnd[i] & 31];
	out[i] = '\0';
}

static void add_md(struct gitaly_call *k, const char *key, const char *value)
{
	k->md[k->n_md].key = grpc_slice_from_static_string(key);
	k->md[k->n_md].value = grpc_slice_from_copied_string(value);
	k->n_md++;
}

/* Waits for tag on the call's queue; returns grpc's success flag. */
static int wait_tag(struct gitaly_call *k, void *tag)
{
	grpc_event ev = grpc_completion_queue_pluck(k->cq, tag, gpr_inf_future(GPR_CLOCK_REALTIME),
						    NULL);
	return ev.type == GRPC_OP_COMPLETE && ev.success;
}

int gitaly_call_start(struct gitaly_conn *c, const char *method,
		      const struct gitaly_call_opts *opts, struct gitaly_call **out,
		      struct error *err)
{
	struct gitaly_call *k;
	gpr_timespec deadline = gpr_inf_future(GPR_CLOCK_REALTIME);
	grpc_slice m;
	grpc_op op;
	grpc_call_error rc;

	/* nothing is sent on a transport gitaly already closed: the caller may
	 * dial again and retry */
	if (conn_dead(c))
		return error_set(err, STATUS_UNAVAILABLE, "connection closed by gitaly");
	k = calloc(1, sizeof(*k));
	if (!k)
		return error_set(err, STATUS_INTERNAL, "out of memory");
	k->conn = c;
	conn_calls_add(c, 1);
	grpc_metadata_array_init(&k->initial_md);
	grpc_metadata_array_init(&k->trailing_md);
	k->details = grpc_empty_slice();
	k->cq = grpc_completion_queue_create_for_pluck(NULL);
	if (opts && opts->timeout_ms > 0)
		deadline = gpr_time_add(gpr_now(GPR_CLOCK_REALTIME),
					gpr_time_from_millis(opts->timeout_ms, GPR_TIMESPAN));
	m = grpc_slice_from_copied_string(method);
	k->call = grpc_channel_create_call(c->channel, NULL, GRPC_PROPAGATE_DEFAULTS, k->cq, m,
					   NULL, deadline, NULL);
	grpc_slice_unref(m);
	if (!k->call) {
		gitaly_call_free(k);
		return error_set(err, STATUS_INTERNAL, "cannot create call %s", method);
	}
	if (c->token && *c->token) {
		int n = snprintf(k->auth, sizeof(k->auth), "Bearer ");
		if (auth_token_v2(c->token, (int64_t)time(NULL), k->auth + n,
				  sizeof(k->auth) - (size_t)n) == 0)
			add_md(k, "authorization", k->auth);
	}
	if (opts && opts->correlation_id && *opts->correlation_id)
		snprintf(k->corr, sizeof(k->corr), "%s", opts->correlation_id);
	else
		random_id(k->corr, sizeof(k->corr));
	add_md(k, "x-gitlab-correlation-id", k->corr);
	add_md(k, "x-gitlab-client-name", c->client_name);
	if (opts && opts->sidechannel_id)
		add_md(k, "gitaly-sidechannel-id", opts->sidechannel_id);
	if (opts && opts->remote_ip && *opts->remote_ip)
		add_md(k, "remote_ip", opts->remote_ip);

	/* the status arrives whenever the call ends; ask for it now */
	memset(&op, 0, sizeof(op));
	op.op = GRPC_OP_RECV_STATUS_ON_CLIENT;
	op.data.recv_status_on_client.trailing_metadata = &k->trailing_md;
	op.data.recv_status_on_client.status = &k->status;
	op.data.recv_status_on_client.status_details = &k->details;
	rc = grpc_call_start_batch(k->call, &op, 1, &k->tag_status, NULL);
	if (rc != GRPC_CALL_OK) {
		k->finished = 1; /* no status will ever arrive */
		gitaly_call_free(k);
		return error_set(err, STATUS_INTERNAL, "start status batch: %d", rc);
	}
	*out = k;
	return 0;
}

/* Packs msg into a byte buffer (NULL on failure). */
static grpc_byte_buffer *pack(const ProtobufCMessage *msg)
{
	size_t len = protobuf_c_message_get_packed_size(msg);
	grpc_slice s = grpc_slice_malloc(len);
	grpc_byte_buffer *bb;

	protobuf_c_message_pack(msg, GRPC_SLICE_START_PTR(s));
	bb = grpc_raw_byte_buffer_create(&s, 1);
	grpc_slice_unref(s);
	return bb;
}

int gitaly_call_send(struct gitaly_call *k, const ProtobufCMessage *msg, int last,
		     struct error *err)
{
	grpc_op ops[3];
	size_t n = 0;
	grpc_byte_buffer *bb = NULL;
	grpc_call_error rc;
	int ret = -1;

	if (k->send_closed)
		return error_set(err, STATUS_FAILED_PRECONDITION, "send after close");
	memset(ops, 0, sizeof(ops));
	if (!k->md_sent) {
		ops[n].op = GRPC_OP_SEND_INITIAL_METADATA;
		ops[n].data.send_initial_metadata.count = k->n_md;
		ops[n].data.send_initial_metadata.metadata = k->md;
		n++;
		k->md_sent = 1;
	}
	if (msg) {
		bb = pack(msg);
		ops[n].op = GRPC_OP_SEND_MESSAGE;
		ops[n].data.send_message.send_message = bb;
		n++;
	}
	if (last) {
		ops[n].op = GRPC_OP_SEND_CLOSE_FROM_CLIENT;
		n++;
		k->send_closed = 1;
	}
	if (!n)
		return 0;
	rc = grpc_call_start_batch(k->call, ops, n, &k->tag_send, NULL);
	if (rc != GRPC_CALL_OK) {
		error_set(err, STATUS_INTERNAL, "start send batch: %d", rc);
		goto out;
	}
	if (!wait_tag(k, &k->tag_send)) {
		error_set(err, STATUS_UNAVAILABLE, "call ended");
		goto out;
	}
	ret = 0;
out:
	if (bb)
		grpc_byte_buffer_destroy(bb);
	return ret;
}

int gitaly_call_close_send(struct gitaly_call *k, struct error *err)
{
	if (k->send_closed)
		return 0;
	return gitaly_call_send(k, NULL, 1, err);
}

int gitaly_call_recv(struct gitaly_call *k, const ProtobufCMessageDescriptor *desc,
		     ProtobufCMessage **out, struct error *err)
{
	grpc_op ops[2];
	size_t n = 0;
	grpc_byte_buffer *bb = NULL;
	grpc_byte_buffer_reader reader;
	grpc_slice s;
	grpc_call_error rc;
	int ret = -1;

	*out = NULL;
	if (!k->md_sent && gitaly_call_send(k, NULL, 0, err) < 0)
		return -1;
	memset(ops, 0, sizeof(ops));
	if (!k->recv_md_done) {
		ops[n].op = GRPC_OP_RECV_INITIAL_METADATA;
		ops[n].data.recv_initial_metadata.recv_initial_metadata = &k->initial_md;
		n++;
		k->recv_md_done = 1;
	}
	ops[n].op = GRPC_OP_RECV_MESSAGE;
	ops[n].data.recv_message.recv_message = &bb;
	n++;
	rc = grpc_call_start_batch(k->call, ops, n, &k->tag_recv, NULL);
	if (rc != GRPC_CALL_OK)
		return error_set(err, STATUS_INTERNAL, "start receive batch: %d", rc);
	wait_tag(k, &k->tag_recv);
	if (!bb) /* end of stream (or failure: the status tells) */
		return 0;
	if (grpc_byte_buffer_length(bb) > MAX_MESSAGE) {
		error_set(err, STATUS_RESOURCE_EXHAUSTED, "response message too large");
		goto out;
	}
	if (!grpc_byte_buffer_reader_init(&reader, bb)) {
		error_set(err, STATUS_INTERNAL, "cannot read response");
		goto out;
	}
	s = grpc_byte_buffer_reader_readall(&reader);
	grpc_byte_buffer_reader_destroy(&reader);
	*out = protobuf_c_message_unpack(desc, NULL, GRPC_SLICE_LENGTH(s),
					 GRPC_SLICE_START_PTR(s));
	grpc_slice_unref(s);
	if (!*out) {
		error_set(err, STATUS_INTERNAL, "cannot parse %s", desc->name);
		goto out;
	}
	ret = 0;
out:
	grpc_byte_buffer_destroy(bb);
	return ret;
}

int gitaly_call_finish(struct gitaly_call *k, struct error *err)
{
	if (!k->finished) {
		k->finished = 1;
		if (!k->md_sent) {
			struct error e2 = ERROR_INIT;
			gitaly_call_send(k, NULL, 1, &e2);
			error_release(&e2);
		}
		k->status_done = wait_tag(k, &k->tag_status);
		if (!k->status_done)
			k->status = GRPC_STATUS_UNKNOWN;
	}
	if (k->status == GRPC_STATUS_OK)
		return 0;
	if (GRPC_SLICE_LENGTH(k->details))
		return error_set(err, (int)k->status, "%.*s", (int)GRPC_SLICE_LENGTH(k->details),
				 (const char *)GRPC_SLICE_START_PTR(k->details));
	return error_set(err, (int)k->status, "%s", status_code_name((int)k->status));
}

void gitaly_call_cancel(struct gitaly_call *k)
{
	if (k && k->call)
		grpc_call_cancel(k->call, NULL);
}

void gitaly_call_free(struct gitaly_call *k)
{
	grpc_event ev;

	if (!k)
		return;
	if (k->call) {
		if (!k->finished) {
			grpc_call_cancel(k->call, NULL);
			k->finished = 1;
			wait_tag(k, &k->tag_status);
		}
		grpc_call_unref(k->call);
	}
	if (k->cq) {
		grpc_completion_queue_shutdown(k->cq);
		do {
			ev = grpc_completion_queue_pluck(k->cq, NULL,
							 gpr_inf_future(GPR_CLOCK_REALTIME), NULL);
		} while (ev.type != GRPC_QUEUE_SHUTDOWN);
		grpc_completion_queue_destroy(k->cq);
	}
	for (size_t i = 0; i < k->n_md; i++)
		grpc_slice_unref(k->md[i].value);
	grpc_metadata_array_destroy(&k->initial_md);
	grpc_metadata_array_destroy(&k->trailing_md);
	grpc_slice_unref(k->details);
	conn_calls_add(k->conn, -1);
	free(k);
}

int gitaly_unary(struct gitaly_conn *c, const char *method, const ProtobufCMessage *req,
		 const ProtobufCMessageDescriptor *resp_desc, const struct gitaly_call_opts *opts,
		 ProtobufCMessage **resp, struct error *err)
{
	struct gitaly_call *k = NULL;
	struct error rerr = ERROR_INIT;
	ProtobufCMessage *m = NULL;
	int ret = -1;

	*resp = NULL;
	if (gitaly_call_start(c, method, opts, &k, err) < 0)
		goto out;
	/* a failed send shows up as the status below */
	if (gitaly_call_send(k, req, 1, &rerr) == 0)
		gitaly_call_recv(k, resp_desc, &m, &rerr);
	if (gitaly_call_finish(k, err) < 0)
		goto out;
	if (!m) {
		if (error_is_set(&rerr))
			error_move(err, &rerr);
		else
			error_set(err, STATUS_INTERNAL, "%s: no response message", method);
		goto out;
	}
	*resp = m;
	m = NULL;
	ret = 0;
out:
	if (m)
		protobuf_c_message_free_unpacked(m, NULL);
	error_release(&rerr);
	gitaly_call_free(k);
	return ret;
}
