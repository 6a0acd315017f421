/*
 * Tests for src/rpc/server.c and src/rpc/call.c: a real server with a tiny
 * test service (google.protobuf.Timestamp messages) behind a unix listener,
 * driven by a grpc core C client. Checks codes and messages as a client sees
 * them: unary, UNIMPLEMENTED texts, deadline, cancel, bidi, error details,
 * oversized and malformed requests, auth rejections.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <pthread.h>

#include <cmocka.h>

#include <grpc/byte_buffer.h>
#include <grpc/byte_buffer_reader.h>
#include <grpc/grpc.h>
#include <grpc/grpc_security.h>
#include <grpc/slice.h>
#include <grpc/support/time.h>

#include "google/protobuf/timestamp.pb-c.h"
#include "repository.pb-c.h"
#include "shared.pb-c.h"
#include "net/listener.h"
#include "rpc/auth.h"
#include "rpc/server.h"
#include "rpc/server_internal.h"
#include "rpc/status.h"
#include "base/metrics.h"
#include "base/strbuf.h"

static volatile int g_saw_cancel;
static int h_bidi_body(struct rpc_call *call, struct error *err);
static char g_peer[64];
static char g_cid[64];
static char g_md[64];

/* Unary: echoes seconds + 1; special values trigger errors and waits. */
static int h_unary(struct rpc_call *call, struct error *err)
{
	const Google__Protobuf__Timestamp *req = (const void *)rpc_call_request(call);
	Google__Protobuf__Timestamp resp = GOOGLE__PROTOBUF__TIMESTAMP__INIT;

	snprintf(g_peer, sizeof(g_peer), "%s", rpc_call_peer(call));
	snprintf(g_cid, sizeof(g_cid), "%s", rpc_call_correlation_id(call));
	const char *v = rpc_call_metadata(call, "x-test");
	snprintf(g_md, sizeof(g_md), "%s", v ? v : "");
	if (req->seconds == 42) {
		error_set(err, STATUS_FAILED_PRECONDITION, "typed failure");
		Google__Protobuf__Timestamp d = GOOGLE__PROTOBUF__TIMESTAMP__INIT;
		d.seconds = 99;
		rpc_error_add_detail(err, &d.base);
		return -1;
	}
	if (req->seconds == 7) {
		/* Wait for the client to go away (cancel or deadline). */
		for (int i = 0; i < 500 && !rpc_call_cancelled(call); i++)
			usleep(10000);
		if (rpc_call_cancelled(call))
			g_saw_cancel = 1;
		return error_set(err, STATUS_ABORTED, "gave up");
	}
	if (req->seconds == 9) {
		/* Fails late without ever asking whether the client is still there. */
		usleep(400000);
		return error_set(err, STATUS_ABORTED, "gave up");
	}
	resp.seconds = req->seconds + 1;
	resp.nanos = (int32_t)rpc_call_deadline_ms(call) == (int32_t)INT64_MAX ? 0 : 1;
	return rpc_call_send(call, &resp.base, err);
}

struct poller {
	struct rpc_call *call;
	volatile int stop;
	long polls;
};

/* A helper thread polling for cancellation while the handler streams. */
static void *poller_main(void *p)
{
	struct poller *pl = p;
	while (!__atomic_load_n(&pl->stop, __ATOMIC_ACQUIRE)) {
		if (rpc_call_cancelled(pl->call))
			break;
		__atomic_add_fetch(&pl->polls, 1, __ATOMIC_RELEASE);
	}
	return NULL;
}

static long g_polls;

/* Bidi: answers every message with seconds * 2, then ends. */
static int h_bidi(struct rpc_call *call, struct error *err)
{
	struct poller pl = { call, 0, 0 };
	pthread_t th;
	int ret;

	pthread_create(&th, NULL, poller_main, &pl);
	/* Let the poller run at least once: on a loaded machine the whole
	 * exchange could otherwise finish before it is scheduled. */
	for (int i = 0; i < 2000 && !__atomic_load_n(&pl.polls, __ATOMIC_ACQUIRE); i++)
		usleep(1000);
	ret = h_bidi_body(call, err);
	__atomic_store_n(&pl.stop, 1, __ATOMIC_RELEASE);
	pthread_join(th, NULL);
	g_polls = pl.polls;
	return ret;
}

static int h_bidi_body(struct rpc_call *call, struct error *err)
{
	const ProtobufCMessage *first = rpc_call_request(call);
	Google__Protobuf__Timestamp resp = GOOGLE__PROTOBUF__TIMESTAMP__INIT;
	ProtobufCMessage *m = NULL;

	if (!first)
		return 0;
	resp.seconds = ((const Google__Protobuf__Timestamp *)first)->seconds * 2;
	if (rpc_call_send(call, &resp.base, err) < 0)
		return -1;
	for (;;) {
		int r = rpc_call_recv(call, &m, err);
		if (r < 0)
			return -1;
		if (r == 0)
			return 0;
		resp.seconds = ((Google__Protobuf__Timestamp *)m)->seconds * 2;
		rpc_call_free_message(call, m);
		if (rpc_call_send(call, &resp.base, err) < 0)
			return -1;
	}
}

static int h_repo(struct rpc_call *call, struct error *err)
{
	Gitaly__RepositoryExistsResponse resp = GITALY__REPOSITORY_EXISTS_RESPONSE__INIT;
	const Gitaly__RepositoryExistsRequest *req = (const void *)rpc_call_request(call);
	resp.exists = req->repository && !strcmp(req->repository->relative_path, "a/b");
	return rpc_call_send(call, &resp.base, err);
}

static const struct rpc_method test_methods[] = {
	{ "Unary", RPC_UNARY, &google__protobuf__timestamp__descriptor,
	  &google__protobuf__timestamp__descriptor, h_unary, RPC_OP_ACCESSOR, RPC_SCOPE_STORAGE },
	{ "Bidi", RPC_BIDI_STREAM, &google__protobuf__timestamp__descriptor,
	  &google__protobuf__timestamp__descriptor, h_bidi, RPC_OP_ACCESSOR, RPC_SCOPE_STORAGE },
	{ "Missing", RPC_UNARY, &google__protobuf__timestamp__descriptor,
	  &google__protobuf__timestamp__descriptor, NULL, RPC_OP_ACCESSOR, RPC_SCOPE_STORAGE },
	{ "Repo", RPC_UNARY, &gitaly__repository_exists_request__descriptor,
	  &gitaly__repository_exists_response__descriptor, h_repo, RPC_OP_ACCESSOR,
	  RPC_SCOPE_REPOSITORY },
};

static const struct rpc_service test_service = {
	.name = "test.Test", .methods = test_methods, .n_methods = 4,
};

struct fixture {
	struct rpc_server *srv;
	struct listener_set *ls;
	char dir[64];
	char sock[128];
	grpc_channel *ch;
	grpc_completion_queue *cq;
};

static void on_conn(void *ctx, int fd, enum listener_type type, const char *peer)
{
	struct error err = ERROR_INIT;
	if (rpc_server_add_fd(ctx, fd, &err) < 0)
		error_release(&err);
}

static char g_fallback_method[128];

/* Fallback: echoes each raw message reversed, then ends with OK. */
static int h_fallback(struct rpc_call *call, struct error *err)
{
	void *buf;
	size_t len;
	int r;

	snprintf(g_fallback_method, sizeof(g_fallback_method), "%s", rpc_call_method_name(call));
	assert_null(rpc_call_request(call));
	assert_ptr_equal(rpc_call_service_data(call), g_fallback_method);
	while ((r = rpc_call_recv_raw(call, &buf, &len, err)) == 1) {
		unsigned char *b = buf;
		for (size_t i = 0; i < len / 2; i++) {
			unsigned char t = b[i];
			b[i] = b[len - 1 - i];
			b[len - 1 - i] = t;
		}
		int w = rpc_call_send_raw(call, buf, len, err);
		free(buf);
		if (w < 0)
			return -1;
	}
	return r;
}

static int g_use_fallback;

static int start(struct fixture *f, const char *token)
{
	struct error err = ERROR_INIT;
	struct rpc_server_options o;

	memset(&o, 0, sizeof(o));
	o.n_workers = 4;
	o.auth.token = token;
	snprintf(f->dir, sizeof(f->dir), "/tmp/rpcsrv-XXXXXX");
	assert_non_null(mkdtemp(f->dir));
	snprintf(f->sock, sizeof(f->sock), "%s/gitaly.socket", f->dir);
	assert_int_equal(rpc_server_new(&o, &f->srv, &err), 0);
	assert_int_equal(rpc_server_register(f->srv, &test_service, &err), 0);
	assert_int_equal(rpc_server_register(f->srv, &test_service, &err), -1);
	assert_int_equal(err.code, STATUS_ALREADY_EXISTS);
	error_release(&err);
	if (g_use_fallback)
		rpc_server_set_fallback(f->srv, h_fallback, g_fallback_method);
	assert_int_equal(rpc_server_start(f->srv, &err), 0);
	assert_int_equal(listener_set_new(on_conn, f->srv, &f->ls, &err), 0);
	assert_int_equal(listener_add_unix(f->ls, f->sock, &err), 0);
	assert_int_equal(listener_start(f->ls, &err), 0);

	char target[160];
	snprintf(target, sizeof(target), "unix:%s", f->sock);
	grpc_channel_credentials *cc = grpc_insecure_credentials_create();
	f->ch = grpc_channel_create(target, cc, NULL);
	grpc_channel_credentials_release(cc);
	f->cq = grpc_completion_queue_create_for_pluck(NULL);
	return 0;
}

static int setup(void **state)
{
	struct fixture *f = calloc(1, sizeof(*f));
	start(f, NULL);
	*state = f;
	return 0;
}

static int setup_auth(void **state)
{
	struct fixture *f = calloc(1, sizeof(*f));
	start(f, "secret-token");
	*state = f;
	return 0;
}

static int setup_fallback(void **state)
{
	struct fixture *f = calloc(1, sizeof(*f));
	g_use_fallback = 1;
	start(f, NULL);
	g_use_fallback = 0;
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	struct fixture *f = *state;
	grpc_channel_destroy(f->ch);
	grpc_completion_queue_shutdown(f->cq);
	grpc_completion_queue_destroy(f->cq);
	listener_free(f->ls);
	assert_int_equal(access(f->sock, F_OK), -1); /* socket file removed */
	rpc_server_shutdown(f->srv, 1000);
	rpc_server_free(f->srv);
	rmdir(f->dir);
	free(f);
	return 0;
}

struct result {
	grpc_status_code code;
	char message[512];
	uint8_t *resp;
	size_t resp_len;
	int got_resp;
	uint8_t *details;
	size_t details_len;
};

static void result_release(struct result *r)
{
	free(r->resp);
	free(r->details);
}

static void wait_tag(grpc_completion_queue *cq, void *tag)
{
	grpc_event ev = grpc_completion_queue_pluck(cq, tag, gpr_inf_future(GPR_CLOCK_REALTIME),
						    NULL);
	assert_int_equal(ev.type, GRPC_OP_COMPLETE);
}

static uint8_t *bb_bytes(grpc_byte_buffer *bb, size_t *len)
{
	grpc_byte_buffer_reader rd;
	assert_true(grpc_byte_buffer_reader_init(&rd, bb));
	grpc_slice s = grpc_byte_buffer_reader_readall(&rd);
	*len = GRPC_SLICE_LENGTH(s);
	uint8_t *p = malloc(*len + 1);
	memcpy(p, GRPC_SLICE_START_PTR(s), *len);
	grpc_slice_unref(s);
	grpc_byte_buffer_reader_destroy(&rd);
	return p;
}

/*
 * One unary exchange with raw request bytes. md: NULL-terminated key/value
 * pairs. timeout_ms 0: no deadline. cancel_after_ms > 0: cancel the call.
 */
static void unary_raw(struct fixture *f, const char *method, const void *req, size_t req_len,
		      const char *const *md, int timeout_ms, int cancel_after_ms, struct result *r)
{
	grpc_metadata mds[8];
	size_t n_md = 0;
	grpc_metadata_array init_md, trail_md;
	grpc_byte_buffer *resp = NULL;
	grpc_slice details;
	grpc_op ops[6];
	char tag;

	memset(r, 0, sizeof(*r));
	gpr_timespec deadline = timeout_ms ? gpr_time_add(gpr_now(GPR_CLOCK_REALTIME),
							  gpr_time_from_millis(timeout_ms,
									       GPR_TIMESPAN))
					   : gpr_inf_future(GPR_CLOCK_REALTIME);
	grpc_slice ms = grpc_slice_from_copied_string(method);
	grpc_call *c = grpc_channel_create_call(f->ch, NULL, GRPC_PROPAGATE_DEFAULTS, f->cq, ms,
						NULL, deadline, NULL);
	grpc_slice_unref(ms);
	for (size_t i = 0; md && md[i]; i += 2) {
		mds[n_md].key = grpc_slice_from_copied_string(md[i]);
		mds[n_md].value = grpc_slice_from_copied_string(md[i + 1]);
		n_md++;
	}
	grpc_slice rs = grpc_slice_from_copied_buffer(req, req_len);
	grpc_byte_buffer *bb = grpc_raw_byte_buffer_create(&rs, 1);
	grpc_slice_unref(rs);
	grpc_metadata_array_init(&init_md);
	grpc_metadata_array_init(&trail_md);
	memset(ops, 0, sizeof(ops));
	ops[0].op = GRPC_OP_SEND_INITIAL_METADATA;
	ops[0].data.send_initial_metadata.count = n_md;
	ops[0].data.send_initial_metadata.metadata = mds;
	ops[1].op = GRPC_OP_SEND_MESSAGE;
	ops[1].data.send_message.send_message = bb;
	ops[2].op = GRPC_OP_SEND_CLOSE_FROM_CLIENT;
	ops[3].op = GRPC_OP_RECV_INITIAL_METADATA;
	ops[3].data.recv_initial_metadata.recv_initial_metadata = &init_md;
	ops[4].op = GRPC_OP_RECV_MESSAGE;
	ops[4].data.recv_message.recv_message = &resp;
	ops[5].op = GRPC_OP_RECV_STATUS_ON_CLIENT;
	ops[5].data.recv_status_on_client.status = &r->code;
	ops[5].data.recv_status_on_client.status_details = &details;
	ops[5].data.recv_status_on_client.trailing_metadata = &trail_md;
	assert_int_equal(grpc_call_start_batch(c, ops, 6, &tag, NULL), GRPC_CALL_OK);
	if (cancel_after_ms) {
		usleep((useconds_t)cancel_after_ms * 1000);
		grpc_call_cancel(c, NULL);
	}
	wait_tag(f->cq, &tag);
	size_t dl = GRPC_SLICE_LENGTH(details);
	if (dl >= sizeof(r->message))
		dl = sizeof(r->message) - 1;
	memcpy(r->message, GRPC_SLICE_START_PTR(details), dl);
	r->message[dl] = 0;
	if (resp) {
		r->got_resp = 1;
		r->resp = bb_bytes(resp, &r->resp_len);
		grpc_byte_buffer_destroy(resp);
	}
	for (size_t i = 0; i < trail_md.count; i++) {
		if (grpc_slice_str_cmp(trail_md.metadata[i].key, "grpc-status-details-bin") == 0) {
			r->details_len = GRPC_SLICE_LENGTH(trail_md.metadata[i].value);
			r->details = malloc(r->details_len + 1);
			memcpy(r->details, GRPC_SLICE_START_PTR(trail_md.metadata[i].value),
			       r->details_len);
		}
	}
	grpc_slice_unref(details);
	grpc_metadata_array_destroy(&init_md);
	grpc_metadata_array_destroy(&trail_md);
	grpc_byte_buffer_destroy(bb);
	for (size_t i = 0; i < n_md; i++) {
		grpc_slice_unref(mds[i].key);
		grpc_slice_unref(mds[i].value);
	}
	grpc_call_unref(c);
}

static void unary_ts(struct fixture *f, const char *method, int64_t secs, const char *const *md,
		     int timeout_ms, int cancel_after_ms, struct result *r)
{
	Google__Protobuf__Timestamp t = GOOGLE__PROTOBUF__TIMESTAMP__INIT;
	uint8_t buf[32];
	t.seconds = secs;
	size_t n = protobuf_c_message_pack(&t.base, buf);
	unary_raw(f, method, buf, n, md, timeout_ms, cancel_after_ms, r);
}

static int64_t resp_seconds(const struct result *r)
{
	Google__Protobuf__Timestamp *t =
		google__protobuf__timestamp__unpack(NULL, r->resp_len, r->resp);
	assert_non_null(t);
	int64_t s = t->seconds;
	google__protobuf__timestamp__free_unpacked(t, NULL);
	return s;
}

static void test_unary_ok(void **state)
{
	struct fixture *f = *state;
	struct result r;
	const char *md[] = { "x-test", "hello", "x-gitlab-correlation-id", "cid-123", NULL };

	unary_ts(f, "/test.Test/Unary", 41, md, 5000, 0, &r);
	assert_int_equal(r.code, GRPC_STATUS_OK);
	assert_true(r.got_resp);
	assert_int_equal(resp_seconds(&r), 42);
	assert_string_equal(g_md, "hello");
	assert_string_equal(g_cid, "cid-123");
	assert_memory_equal(g_peer, "fd:", 3);
	result_release(&r);

	/* Without a correlation id one is generated (ULID-shaped, 26 chars). */
	unary_ts(f, "/test.Test/Unary", 1, NULL, 0, 0, &r);
	assert_int_equal(r.code, GRPC_STATUS_OK);
	assert_int_equal(resp_seconds(&r), 2);
	assert_int_equal(strlen(g_cid), 26);
	result_release(&r);
}

static void test_unimplemented(void **state)
{
	struct fixture *f = *state;
	struct result r;

	unary_ts(f, "/test.Nope/Unary", 1, NULL, 5000, 0, &r);
	assert_int_equal(r.code, GRPC_STATUS_UNIMPLEMENTED);
	assert_string_equal(r.message, "unknown service test.Nope");
	result_release(&r);

	unary_ts(f, "/test.Test/Nope", 1, NULL, 5000, 0, &r);
	assert_int_equal(r.code, GRPC_STATUS_UNIMPLEMENTED);
	assert_string_equal(r.message, "unknown method Nope for service test.Test");
	result_release(&r);

	unary_ts(f, "/test.Test/Missing", 1, NULL, 5000, 0, &r);
	assert_int_equal(r.code, GRPC_STATUS_UNIMPLEMENTED);
	assert_string_equal(r.message, "method Missing not implemented");
	result_release(&r);
}

static void test_deadline(void **state)
{
	struct fixture *f = *state;
	struct result r;

	g_saw_cancel = 0;
	unary_ts(f, "/test.Test/Unary", 7, NULL, 300, 0, &r);
	assert_int_equal(r.code, GRPC_STATUS_DEADLINE_EXCEEDED);
	result_release(&r);
	/* The handler noticed and the worker is free again. */
	for (int i = 0; i < 200 && !g_saw_cancel; i++)
		usleep(10000);
	assert_true(g_saw_cancel);
	unary_ts(f, "/test.Test/Unary", 1, NULL, 5000, 0, &r);
	assert_int_equal(r.code, GRPC_STATUS_OK);
	result_release(&r);
}

static void test_cancel(void **state)
{
	struct fixture *f = *state;
	struct result r;

	g_saw_cancel = 0;
	unary_ts(f, "/test.Test/Unary", 7, NULL, 0, 200, &r);
	assert_int_equal(r.code, GRPC_STATUS_CANCELLED);
	result_release(&r);
	for (int i = 0; i < 300 && !g_saw_cancel; i++)
		usleep(10000);
	assert_true(g_saw_cancel);
}

/* grpc_server_handled_total of test.Test/Unary with the given code (0 if none). */
static double handled_count(const char *code)
{
	struct strbuf sb = STRBUF_INIT;
	double v = 0;
	char want[128];

	snprintf(want, sizeof(want), "grpc_code=\"%s\"", code);
	assert_int_equal(metrics_render(&sb), 0);
	for (char *line = sb.buf; line && *line;) {
		char *nl = strchr(line, '\n');
		if (nl)
			*nl = 0;
		if (!strncmp(line, "grpc_server_handled_total{", 26) && strstr(line, want) &&
		    strstr(line, "grpc_method=\"Unary\"") && strstr(line, "grpc_service=\"test.Test\""))
			v = strtod(strrchr(line, ' ') + 1, NULL);
		line = nl ? nl + 1 : NULL;
	}
	strbuf_release(&sb);
	return v;
}

/* Waits up to 3 s for the handled count of code to reach want. */
static void wait_handled(const char *code, double want)
{
	for (int i = 0; i < 300 && handled_count(code) < want; i++)
		usleep(10000);
	assert_true(handled_count(code) == want);
}

/*
 * A unary call the client cancels is counted (and logged) as Canceled, both
 * when the handler watched for the cancel and when it failed later without
 * asking (its close is then requested only at that point).
 */
static void test_cancel_code(void **state)
{
	struct fixture *f = *state;
	struct result r;
	double cancelled = handled_count("Canceled"), aborted = handled_count("Aborted");

	g_saw_cancel = 0;
	unary_ts(f, "/test.Test/Unary", 7, NULL, 0, 100, &r);
	assert_int_equal(r.code, GRPC_STATUS_CANCELLED);
	result_release(&r);
	wait_handled("Canceled", cancelled + 1);
	assert_true(g_saw_cancel);

	unary_ts(f, "/test.Test/Unary", 9, NULL, 0, 100, &r);
	assert_int_equal(r.code, GRPC_STATUS_CANCELLED);
	result_release(&r);
	wait_handled("Canceled", cancelled + 2);

	/* Not cancelled: the handler's own code, and the client sees it. */
	unary_ts(f, "/test.Test/Unary", 9, NULL, 5000, 0, &r);
	assert_int_equal(r.code, GRPC_STATUS_ABORTED);
	assert_string_equal(r.message, "gave up");
	result_release(&r);
	wait_handled("Aborted", aborted + 1);
	assert_true(handled_count("Canceled") == cancelled + 2);

	/* A plain call (nobody asks about cancellation) is counted as OK. */
	double ok = handled_count("OK");
	unary_ts(f, "/test.Test/Unary", 1, NULL, 5000, 0, &r);
	assert_int_equal(r.code, GRPC_STATUS_OK);
	assert_int_equal(resp_seconds(&r), 2);
	result_release(&r);
	wait_handled("OK", ok + 1);
}

static void test_details(void **state)
{
	struct fixture *f = *state;
	struct result r;
	struct error e = ERROR_INIT;
	struct strbuf want = STRBUF_INIT;

	unary_ts(f, "/test.Test/Unary", 42, NULL, 5000, 0, &r);
	assert_int_equal(r.code, GRPC_STATUS_FAILED_PRECONDITION);
	assert_string_equal(r.message, "typed failure");
	assert_false(r.got_resp);
	assert_non_null(r.details);
	/* Exactly the google.rpc.Status the status module encodes. */
	error_set(&e, STATUS_FAILED_PRECONDITION, "typed failure");
	Google__Protobuf__Timestamp d = GOOGLE__PROTOBUF__TIMESTAMP__INIT;
	d.seconds = 99;
	assert_int_equal(rpc_error_add_detail(&e, &d.base), 0);
	assert_int_equal(rpc_status_encode(&e, &want), 0);
	assert_int_equal(r.details_len, want.len);
	assert_memory_equal(r.details, want.buf, want.len);
	strbuf_release(&want);
	error_release(&e);
	result_release(&r);
}

static void test_oversized_and_malformed(void **state)
{
	struct fixture *f = *state;
	struct result r;
	size_t big = ((size_t)5 << 20) + 5;
	uint8_t *buf = calloc(1, big);

	unary_raw(f, "/test.Test/Unary", buf, big, NULL, 10000, 0, &r);
	assert_int_equal(r.code, GRPC_STATUS_RESOURCE_EXHAUSTED);
	assert_string_equal(r.message,
			    "grpc: received message larger than max (5242885 vs. 4194304)");
	result_release(&r);
	free(buf);

	/* Exactly at the limit passes the size check (and then fails to parse). */
	static const uint8_t bad[] = { 0xff, 0xff, 0xff };
	unary_raw(f, "/test.Test/Unary", bad, sizeof(bad), NULL, 5000, 0, &r);
	assert_int_equal(r.code, GRPC_STATUS_INTERNAL);
	assert_string_equal(r.message, "grpc: error unmarshalling request: proto: cannot parse "
				       "invalid wire-format data");
	result_release(&r);

	/* The server still works. */
	unary_ts(f, "/test.Test/Unary", 3, NULL, 5000, 0, &r);
	assert_int_equal(r.code, GRPC_STATUS_OK);
	assert_int_equal(resp_seconds(&r), 4);
	result_release(&r);
}

/* RepositoryExistsRequest{repository{storage_name "default", relative_path path}}. */
static size_t repo_request(uint8_t *out, const char *path, size_t path_len)
{
	size_t n = 0;
	out[n++] = 0x0a;
	out[n++] = (uint8_t)(2 + 7 + 2 + path_len);
	out[n++] = 0x12;
	out[n++] = 7;
	memcpy(out + n, "default", 7);
	n += 7;
	out[n++] = 0x1a;
	out[n++] = (uint8_t)path_len;
	memcpy(out + n, path, path_len);
	return n + path_len;
}

static void test_string_fields(void **state)
{
	struct fixture *f = *state;
	struct result r;
	uint8_t buf[64];

	unary_raw(f, "/test.Test/Repo", buf, repo_request(buf, "a/b", 3), NULL, 5000, 0, &r);
	assert_int_equal(r.code, GRPC_STATUS_OK);
	assert_int_equal(r.resp_len, 2); /* exists = true */
	result_release(&r);
	/* A NUL inside a string would truncate it in C: refused. */
	unary_raw(f, "/test.Test/Repo", buf, repo_request(buf, "a/b\0/../x", 8), NULL, 5000, 0,
		  &r);
	assert_int_equal(r.code, GRPC_STATUS_INVALID_ARGUMENT);
	assert_string_equal(r.message, "field gitaly.Repository.relative_path contains a NUL byte");
	result_release(&r);
	/* Invalid UTF-8 in a proto3 string, as protobuf-go refuses it. */
	unary_raw(f, "/test.Test/Repo", buf, repo_request(buf, "a/\xff", 3), NULL, 5000, 0, &r);
	assert_int_equal(r.code, GRPC_STATUS_INTERNAL);
	assert_non_null(strstr(r.message, "contains invalid UTF-8"));
	result_release(&r);
	/* Valid multi-byte UTF-8 passes. */
	unary_raw(f, "/test.Test/Repo", buf, repo_request(buf, "\xc3\xa9t\xc3\xa9", 5), NULL,
		  5000, 0, &r);
	assert_int_equal(r.code, GRPC_STATUS_OK);
	result_release(&r);
}

static void test_bidi(void **state)
{
	struct fixture *f = *state;
	grpc_slice ms = grpc_slice_from_static_string("/test.Test/Bidi");
	grpc_call *c = grpc_channel_create_call(f->ch, NULL, GRPC_PROPAGATE_DEFAULTS, f->cq, ms,
						NULL, gpr_inf_future(GPR_CLOCK_REALTIME), NULL);
	grpc_metadata_array init_md, trail_md;
	grpc_op ops[3];
	grpc_status_code code;
	grpc_slice details;
	char tag;

	grpc_metadata_array_init(&init_md);
	grpc_metadata_array_init(&trail_md);
	memset(ops, 0, sizeof(ops));
	ops[0].op = GRPC_OP_SEND_INITIAL_METADATA;
	assert_int_equal(grpc_call_start_batch(c, ops, 1, &tag, NULL), GRPC_CALL_OK);
	wait_tag(f->cq, &tag);
	/* Ping-pong: each answer arrives before the next request is sent. */
	for (int i = 1; i <= 5; i++) {
		Google__Protobuf__Timestamp t = GOOGLE__PROTOBUF__TIMESTAMP__INIT;
		uint8_t buf[32];
		grpc_byte_buffer *resp = NULL;
		t.seconds = i;
		size_t n = protobuf_c_message_pack(&t.base, buf);
		grpc_slice s = grpc_slice_from_copied_buffer((const char *)buf, n);
		grpc_byte_buffer *bb = grpc_raw_byte_buffer_create(&s, 1);
		grpc_slice_unref(s);
		memset(ops, 0, sizeof(ops));
		ops[0].op = GRPC_OP_SEND_MESSAGE;
		ops[0].data.send_message.send_message = bb;
		ops[1].op = GRPC_OP_RECV_MESSAGE;
		ops[1].data.recv_message.recv_message = &resp;
		size_t nops = 2;
		if (i == 1) {
			ops[2].op = GRPC_OP_RECV_INITIAL_METADATA;
			ops[2].data.recv_initial_metadata.recv_initial_metadata = &init_md;
			nops = 3;
		}
		assert_int_equal(grpc_call_start_batch(c, ops, nops, &tag, NULL), GRPC_CALL_OK);
		wait_tag(f->cq, &tag);
		grpc_byte_buffer_destroy(bb);
		assert_non_null(resp);
		struct result r;
		memset(&r, 0, sizeof(r));
		r.resp = bb_bytes(resp, &r.resp_len);
		grpc_byte_buffer_destroy(resp);
		assert_int_equal(resp_seconds(&r), 2 * i);
		result_release(&r);
	}
	memset(ops, 0, sizeof(ops));
	ops[0].op = GRPC_OP_SEND_CLOSE_FROM_CLIENT;
	ops[1].op = GRPC_OP_RECV_STATUS_ON_CLIENT;
	ops[1].data.recv_status_on_client.status = &code;
	ops[1].data.recv_status_on_client.status_details = &details;
	ops[1].data.recv_status_on_client.trailing_metadata = &trail_md;
	assert_int_equal(grpc_call_start_batch(c, ops, 2, &tag, NULL), GRPC_CALL_OK);
	wait_tag(f->cq, &tag);
	assert_int_equal(code, GRPC_STATUS_OK);
	/* A helper thread polled rpc_call_cancelled throughout without stealing events. */
	assert_true(g_polls > 0);
	grpc_slice_unref(details);
	grpc_metadata_array_destroy(&init_md);
	grpc_metadata_array_destroy(&trail_md);
	grpc_call_unref(c);
}

static void test_auth(void **state)
{
	struct fixture *f = *state;
	struct result r;
	char tok[128], hdr[160];

	unary_ts(f, "/test.Test/Unary", 1, NULL, 5000, 0, &r);
	assert_int_equal(r.code, GRPC_STATUS_UNAUTHENTICATED);
	result_release(&r);

	assert_int_equal(auth_token_v2("wrong-token", (int64_t)time(NULL), tok, sizeof(tok)), 0);
	snprintf(hdr, sizeof(hdr), "Bearer %s", tok);
	const char *bad[] = { "authorization", hdr, NULL };
	unary_ts(f, "/test.Test/Unary", 1, bad, 5000, 0, &r);
	assert_int_equal(r.code, GRPC_STATUS_PERMISSION_DENIED);
	result_release(&r);

	assert_int_equal(auth_token_v2("secret-token", (int64_t)time(NULL), tok, sizeof(tok)), 0);
	snprintf(hdr, sizeof(hdr), "Bearer %s", tok);
	const char *good[] = { "authorization", hdr, NULL };
	unary_ts(f, "/test.Test/Unary", 5, good, 5000, 0, &r);
	assert_int_equal(r.code, GRPC_STATUS_OK);
	assert_int_equal(resp_seconds(&r), 6);
	result_release(&r);

	/* Unknown services are answered before auth, like grpc-go. */
	unary_ts(f, "/test.Nope/Unary", 1, NULL, 5000, 0, &r);
	assert_int_equal(r.code, GRPC_STATUS_UNIMPLEMENTED);
	result_release(&r);
}

static void test_shutdown_with_call_in_flight(void **state)
{
	struct fixture *f = *state;
	grpc_slice ms = grpc_slice_from_static_string("/test.Test/Unary");
	gpr_timespec dl = gpr_time_add(gpr_now(GPR_CLOCK_REALTIME),
				       gpr_time_from_millis(3000, GPR_TIMESPAN));
	grpc_call *c = grpc_channel_create_call(f->ch, NULL, GRPC_PROPAGATE_DEFAULTS, f->cq, ms,
						NULL, dl, NULL);
	Google__Protobuf__Timestamp t = GOOGLE__PROTOBUF__TIMESTAMP__INIT;
	uint8_t buf[32];
	grpc_op ops[4];
	grpc_status_code code = GRPC_STATUS_OK;
	grpc_slice details;
	char tag;

	t.seconds = 7; /* waits until cancelled */
	size_t n = protobuf_c_message_pack(&t.base, buf);
	grpc_slice s = grpc_slice_from_copied_buffer((const char *)buf, n);
	grpc_byte_buffer *bb = grpc_raw_byte_buffer_create(&s, 1);
	grpc_slice_unref(s);
	memset(ops, 0, sizeof(ops));
	ops[0].op = GRPC_OP_SEND_INITIAL_METADATA;
	ops[1].op = GRPC_OP_SEND_MESSAGE;
	ops[1].data.send_message.send_message = bb;
	ops[2].op = GRPC_OP_SEND_CLOSE_FROM_CLIENT;
	ops[3].op = GRPC_OP_RECV_STATUS_ON_CLIENT;
	ops[3].data.recv_status_on_client.status = &code;
	ops[3].data.recv_status_on_client.status_details = &details;
	grpc_metadata_array trail;
	grpc_metadata_array_init(&trail);
	ops[3].data.recv_status_on_client.trailing_metadata = &trail;
	g_saw_cancel = 0;
	assert_int_equal(grpc_call_start_batch(c, ops, 4, &tag, NULL), GRPC_CALL_OK);
	usleep(200000);
	listener_stop(f->ls);
	/*
	 * The call cannot finish within the grace: shutdown cancels it. (grpc
	 * core does not close fd-based transports at shutdown, so the client
	 * sees its own deadline; in the binary the process exit closes them.)
	 */
	assert_int_equal(rpc_server_shutdown(f->srv, 100), -1);
	assert_true(g_saw_cancel);
	wait_tag(f->cq, &tag);
	assert_int_not_equal(code, GRPC_STATUS_OK);
	grpc_slice_unref(details);
	grpc_metadata_array_destroy(&trail);
	grpc_byte_buffer_destroy(bb);
	grpc_call_unref(c);
}

static void test_request_fields(void **state)
{
	struct accesslog_entry e;
	Gitaly__Repository repo = GITALY__REPOSITORY__INIT;
	Gitaly__RepositoryExistsRequest req = GITALY__REPOSITORY_EXISTS_REQUEST__INIT;
	Gitaly__RemoveAllRequest rm = GITALY__REMOVE_ALL_REQUEST__INIT;
	Google__Protobuf__Timestamp ts = GOOGLE__PROTOBUF__TIMESTAMP__INIT;

	(void)state;
	repo.storage_name = "default";
	repo.relative_path = "@hashed/aa/bb.git";
	repo.gl_repository = "project-1";
	repo.gl_project_path = "group/proj";
	memset(&e, 0, sizeof(e));
	rpc_call_request_fields(&req.base, &e);
	assert_false(e.has_repository); /* repository unset */
	req.repository = &repo;
	rpc_call_request_fields(&req.base, &e);
	assert_true(e.has_repository);
	assert_string_equal(e.repo_storage, "default");
	assert_string_equal(e.repo_path, "@hashed/aa/bb.git");
	assert_string_equal(e.gl_repository, "project-1");
	assert_string_equal(e.gl_project_path, "group/proj");
	assert_null(e.storage_name);

	memset(&e, 0, sizeof(e));
	rm.storage_name = "other";
	rpc_call_request_fields(&rm.base, &e);
	assert_string_equal(e.storage_name, "other");
	assert_false(e.has_repository);

	memset(&e, 0, sizeof(e));
	rpc_call_request_fields(&ts.base, &e);
	rpc_call_request_fields(NULL, &e);
	assert_false(e.has_repository);
	assert_null(e.storage_name);
}

static void test_fallback(void **state)
{
	struct fixture *f = *state;
	struct result r;
	static const char msg[] = "hello raw";

	/* Unknown services and methods reach the fallback as raw bytes. */
	unary_raw(f, "/other.Proxy/Anything", msg, 9, NULL, 5000, 0, &r);
	assert_int_equal(r.code, GRPC_STATUS_OK);
	assert_int_equal(r.resp_len, 9);
	assert_memory_equal(r.resp, "war olleh", 9);
	assert_string_equal(g_fallback_method, "/other.Proxy/Anything");
	result_release(&r);
	unary_raw(f, "/test.Test/Nope", msg, 5, NULL, 5000, 0, &r);
	assert_int_equal(r.code, GRPC_STATUS_OK);
	assert_memory_equal(r.resp, "olleh", 5);
	result_release(&r);
	/* Registered methods are untouched. */
	unary_ts(f, "/test.Test/Unary", 8, NULL, 5000, 0, &r);
	assert_int_equal(r.code, GRPC_STATUS_OK);
	assert_int_equal(resp_seconds(&r), 9);
	result_release(&r);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_request_fields),
		cmocka_unit_test_setup_teardown(test_unary_ok, setup, teardown),
		cmocka_unit_test_setup_teardown(test_unimplemented, setup, teardown),
		cmocka_unit_test_setup_teardown(test_deadline, setup, teardown),
		cmocka_unit_test_setup_teardown(test_cancel, setup, teardown),
		cmocka_unit_test_setup_teardown(test_cancel_code, setup, teardown),
		cmocka_unit_test_setup_teardown(test_details, setup, teardown),
		cmocka_unit_test_setup_teardown(test_oversized_and_malformed, setup, teardown),
		cmocka_unit_test_setup_teardown(test_bidi, setup, teardown),
		cmocka_unit_test_setup_teardown(test_string_fields, setup, teardown),
		cmocka_unit_test_setup_teardown(test_fallback, setup_fallback, teardown),
		cmocka_unit_test_setup_teardown(test_auth, setup_auth, teardown),
		cmocka_unit_test_setup_teardown(test_shutdown_with_call_in_flight, setup, teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
