/*
 * One gRPC call from start to end, run on a worker thread. Two paths share
 * handle_call: a call of a streaming (or unknown) method is synchronous:
 * the worker's NEXT completion queue is bound to the call, every operation
 * batch is started and then waited for on that queue, and the
 * RECV_CLOSE_ON_SERVER completion (which grpc core delivers when the client
 * cancels, the deadline passes, or the status went out) is recognised
 * whenever it shows up. A call of a registered unary method arrives with
 * its message already read and is bound to the server's shared queue:
 * nothing is waited for. Its close is requested on its own only once
 * somebody asks whether the call was cancelled (fin_start_close); the
 * access-log line is written, then the response and status go out in one
 * batch, which also carries the close when nobody asked (one completion
 * per call fewer, as a bare grpc core server does); completions are
 * bookkeeping for whichever worker takes them (struct call_fin). The
 * order matches grpc-go with Gitaly's interceptors: method lookup, first
 * request, correlation id, auth, handler, status (with
 * grpc-status-details-bin), access log and metrics.
 */
#include <errno.h>
#include <stddef.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <grpc/byte_buffer.h>
#include <grpc/byte_buffer_reader.h>
#include <grpc/grpc.h>
#include <grpc/slice.h>
#include <grpc/support/alloc.h>
#include <grpc/support/time.h>

#include "base/log.h"
#include "base/strbuf.h"
#include "limit/limit.h"
#include "net/backchannel.h"
#include "rpc/accesslog.h"
#include "rpc/auth.h"
#include "rpc/call.h"
#include "rpc/correlation.h"
#include "rpc/server_internal.h"
#include "rpc/status.h"
#include "rpc/wirecheck.h"

#define ARENA_CHUNK 4096
#define ARENA_FIRST 2048
/* fin_settle_close: longest wait for a completion to come round the queue */
#define SETTLE_WAIT_MS 100

struct arena_chunk {
	struct arena_chunk *next;
	size_t used, size;
	max_align_t data[];
};

struct md_entry {
	char *key;
	char *value;
	size_t value_len;
};

/*
 * What outlives an async (registered unary) call's handler: the grpc call
 * and what its last batches point to, released when the handler is done
 * and both the close and the final batch have completed.
 */
struct call_fin {
	struct rpc_tag close_tag, final_tag, probe_tag;
	grpc_call *gc;
	int refs;       /* atomics */
	int close_started; /* atomic: RECV_CLOSE_ON_SERVER requested */
	int close_done; /* atomics: RECV_CLOSE_ON_SERVER completed on its own */
	/*
	 * Written by grpc core when the close completes, on whichever thread
	 * completes it: read only by the worker that took the completion
	 * (rpc_call_async_event), never while the close may be running.
	 */
	int cancelled;
	/* fin_settle_close: the empty batch's completion was taken (under mu) */
	pthread_mutex_t mu;
	pthread_cond_t cond;
	int probe_done;
	grpc_slice status_slice, trailer_value;
};

struct rpc_call {
	struct rpc_server *srv;
	const struct rpc_server_options *opts;
	grpc_call *gc;
	grpc_completion_queue *cq;
	const struct rpc_service *svc;
	const struct rpc_method *method;
	const void *metrics_key; /* the method's, when it was found (rpc_metrics_started) */
	char *full_method;
	char *service_name;
	char *method_name;

	struct md_entry *md;
	size_t n_md;
	int64_t deadline_ms;      /* CLOCK_MONOTONIC ms, INT64_MAX if none */
	int64_t deadline_unix_ms; /* 0 if none */
	char *peer;
	const char *correlation_id;

	ProtobufCMessage *request;
	ProtobufCMessage **msgs; /* every message received, freed at the end */
	size_t n_msgs, alloc_msgs;

	int close_done;          /* RECV_CLOSE_ON_SERVER completed (atomic) */
	/* Completions taken from cq by one thread for another (see wait_tag). */
	pthread_mutex_t stash_lock;
	pthread_cond_t stash_cond;
	int polling;             /* a thread is inside grpc_completion_queue_next */
	struct {
		void *tag;
		int success;
	} stash[4];
	int n_stash;
	/* Receiving may run on a helper thread while the handler sends; a
	 * receive can be abandoned (rpc_call_recv_abort) and is drained at the
	 * end of the call. */
	grpc_byte_buffer *recv_bb;
	int recv_pending;        /* a RECV_MESSAGE batch is outstanding */
	int recv_abort;          /* under stash_lock */
	int close_cancelled;     /* ... and reported the call as cancelled */
	int initial_md_sent;
	int client_done;         /* client half-closed */
	int raw;                 /* fallback call: no descriptors, bytes only */
	void *raw_data;

	grpc_byte_buffer *unary_resp; /* unary: the response, sent with status */
	/* server streams: the newest message, held back until the next one,
	 * rpc_call_flush or the status (which it then goes out with) */
	grpc_byte_buffer *held;
	size_t held_len;
	/* async calls: the pre-read request, and the final batch, started
	 * after the access log is written */
	struct call_fin *fin;
	grpc_byte_buffer *preread;
	grpc_op final_ops[4]; /* with room for the close */
	size_t n_final;
	grpc_metadata final_trailer;
	size_t request_bytes, response_bytes;

	struct arena_chunk *arena;
	/* the first chunk, inside the call (which lives on the worker's stack):
	 * most calls need no other, so no malloc */
	union {
		struct arena_chunk c;
		char bytes[sizeof(struct arena_chunk) + ARENA_FIRST];
	} arena0;
	json_t *log_fields;

	char tag_op, tag_close, tag_recv, tag_wake; /* addresses used as completion tags */
};

static void *xmalloc(size_t n)
{
	void *p = malloc(n ? n : 1);
	if (!p)
		abort();
	return p;
}

void *rpc_call_alloc(struct rpc_call *call, size_t size)
{
	struct arena_chunk *c = call->arena;
	size_t align = sizeof(max_align_t);
	size_t need = (size + align - 1) / align * align;
	if (need < size)
		abort();
	if (!c || c->size - c->used < need) {
		size_t sz = need > ARENA_CHUNK ? need : ARENA_CHUNK;
		struct arena_chunk *n = xmalloc(sizeof(*n) + sz);
		n->size = sz;
		n->used = 0;
		if (c && need > ARENA_CHUNK) {
			/* Keep the current chunk on top for small allocations. */
			n->next = c->next;
			c->next = n;
		} else {
			n->next = c;
			call->arena = n;
		}
		c = n;
	}
	void *p = (char *)c->data + c->used;
	c->used += need;
	memset(p, 0, size);
	return p;
}

static char *arena_strndup(struct rpc_call *call, const char *s, size_t len)
{
	char *p = rpc_call_alloc(call, len + 1);
	memcpy(p, s, len);
	p[len] = 0;
	return p;
}

char *rpc_call_strdup(struct rpc_call *call, const char *s)
{
	return s ? arena_strndup(call, s, strlen(s)) : NULL;
}

static void arena_free(struct rpc_call *call)
{
	struct arena_chunk *c = call->arena;
	while (c) {
		struct arena_chunk *next = c->next;
		if (c != &call->arena0.c)
			free(c);
		c = next;
	}
	call->arena = NULL;
}

static void fin_unref(struct call_fin *fin)
{
	if (__atomic_sub_fetch(&fin->refs, 1, __ATOMIC_ACQ_REL))
		return;
	grpc_call_unref(fin->gc);
	grpc_slice_unref(fin->status_slice);
	grpc_slice_unref(fin->trailer_value);
	pthread_cond_destroy(&fin->cond);
	pthread_mutex_destroy(&fin->mu);
	free(fin);
}

void rpc_call_async_event(struct rpc_tag *tag, int success)
{
	struct call_fin *fin;

	(void)success;
	if (tag->kind == RPC_TAG_CLOSE) {
		fin = (struct call_fin *)((char *)tag - offsetof(struct call_fin, close_tag));
		/* (fin->cancelled is final now; nothing else reads it) */
		__atomic_store_n(&fin->close_done, 1, __ATOMIC_RELEASE);
	} else if (tag->kind == RPC_TAG_PROBE) {
		fin = (struct call_fin *)((char *)tag - offsetof(struct call_fin, probe_tag));
		pthread_mutex_lock(&fin->mu);
		fin->probe_done = 1;
		pthread_cond_broadcast(&fin->cond);
		pthread_mutex_unlock(&fin->mu);
	} else {
		fin = (struct call_fin *)((char *)tag - offsetof(struct call_fin, final_tag));
	}
	fin_unref(fin);
}

/* Starts a batch of an async call with one of fin's tags; 1 when started. */
static int fin_batch(struct call_fin *fin, const grpc_op *ops, size_t n, struct rpc_tag *tag)
{
	__atomic_add_fetch(&fin->refs, 1, __ATOMIC_ACQ_REL);
	if (grpc_call_start_batch(fin->gc, ops, n, tag, NULL) != GRPC_CALL_OK) {
		log_msg(LOG_ERROR, "grpc_call_start_batch failed");
		__atomic_sub_fetch(&fin->refs, 1, __ATOMIC_ACQ_REL);
		return 0;
	}
	return 1;
}

/*
 * async: requests the close on its own, once, the first time anyone asks
 * whether the call was cancelled (rpc_call_cancelled); a call nobody asks
 * about gets it in its final batch instead, one completion fewer. Returns
 * 1 when this call started it.
 */
static int fin_start_close(struct call_fin *fin)
{
	grpc_op op;

	if (__atomic_exchange_n(&fin->close_started, 1, __ATOMIC_ACQ_REL))
		return 0;
	memset(&op, 0, sizeof(op));
	op.op = GRPC_OP_RECV_CLOSE_ON_SERVER;
	op.data.recv_close_on_server.cancelled = &fin->cancelled;
	if (!fin_batch(fin, &op, 1, &fin->close_tag)) {
		__atomic_store_n(&fin->close_done, 1, __ATOMIC_RELEASE);
		return 0;
	}
	return 1;
}

/*
 * async, when a handler failed: the answer to "was the call cancelled?"
 * must be known now, but a close just requested reports through the
 * shared queue. A client already gone makes grpc core complete the close
 * inside grpc_call_start_batch, queueing its completion at once; an empty
 * batch started after it completes at once too, and the queue hands
 * completions out in order, so once the empty batch's completion was taken
 * the close's was taken before it (by this or another worker, which marks
 * close_done right away). A live client's close is not complete, and the
 * wait is one round through the queue.
 */
static void fin_settle_close(struct call_fin *fin)
{
	if (!fin_start_close(fin) || __atomic_load_n(&fin->close_done, __ATOMIC_ACQUIRE))
		return;
	if (!fin_batch(fin, NULL, 0, &fin->probe_tag))
		return;
	/*
	 * Bounded: when every worker is busy in a handler nobody takes
	 * completions off the queue until one finishes.
	 */
	struct timespec until;
	clock_gettime(CLOCK_REALTIME, &until);
	until.tv_nsec += SETTLE_WAIT_MS * 1000000L;
	if (until.tv_nsec >= 1000000000L) {
		until.tv_sec++;
		until.tv_nsec -= 1000000000L;
	}
	pthread_mutex_lock(&fin->mu);
	while (!fin->probe_done)
		if (pthread_cond_timedwait(&fin->cond, &fin->mu, &until) == ETIMEDOUT)
			break;
	pthread_mutex_unlock(&fin->mu);
	/*
	 * (Left open: the worker that took the close's completion may not
	 * have marked it yet, a few instructions' window; the answer is then
	 * "not cancelled", as for a close completing a moment later.)
	 */
}

static int64_t now_ms(clockid_t clk)
{
	struct timespec ts;
	clock_gettime(clk, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/*
 * Several threads may wait on the call's queue at once: the handler, a
 * helper receiving the client's stream, rpc_call_cancelled from anywhere.
 * One of them at a time polls the queue (leader/followers); every completion
 * it takes is parked in the stash, and the others are woken to look for
 * theirs, so no completion is delayed by another thread's poll.
 */
static int stash_take_locked(struct rpc_call *call, void *tag, int *success)
{
	for (int i = 0; i < call->n_stash; i++) {
		if (call->stash[i].tag != tag)
			continue;
		*success = call->stash[i].success;
		call->stash[i] = call->stash[--call->n_stash];
		return 1;
	}
	return 0;
}

/* Records a completion taken from the queue (stash_lock held). */
static void record_event_locked(struct rpc_call *call, const grpc_event *ev)
{
	if (ev->type != GRPC_OP_COMPLETE)
		return;
	if (ev->tag == &call->tag_close) {
		__atomic_store_n(&call->close_done, 1, __ATOMIC_RELEASE);
		return;
	}
	if (ev->tag == &call->tag_wake)
		return; /* only there to end a poll */
	if (call->n_stash < (int)(sizeof(call->stash) / sizeof(call->stash[0]))) {
		call->stash[call->n_stash].tag = ev->tag;
		call->stash[call->n_stash].success = ev->success;
		call->n_stash++;
	}
}

/*
 * Waits for tag on the call's queue; returns the completion's success, or
 * -1 when tag is the receive tag and rpc_call_recv_abort was called.
 */
static int wait_tag(struct rpc_call *call, void *tag)
{
	int success = 0;

	pthread_mutex_lock(&call->stash_lock);
	for (;;) {
		if (tag == &call->tag_close && __atomic_load_n(&call->close_done, __ATOMIC_ACQUIRE)) {
			success = 1;
			break;
		}
		if (stash_take_locked(call, tag, &success))
			break;
		if (tag == &call->tag_recv && call->recv_abort) {
			success = -1;
			break;
		}
		if (call->polling) {
			pthread_cond_wait(&call->stash_cond, &call->stash_lock);
			continue;
		}
		call->polling = 1;
		pthread_mutex_unlock(&call->stash_lock);
		gpr_timespec until = gpr_time_add(gpr_now(GPR_CLOCK_MONOTONIC),
						  gpr_time_from_millis(500, GPR_TIMESPAN));
		grpc_event ev = grpc_completion_queue_next(call->cq, until, NULL);
		pthread_mutex_lock(&call->stash_lock);
		call->polling = 0;
		record_event_locked(call, &ev);
		pthread_cond_broadcast(&call->stash_cond);
		if (ev.type == GRPC_QUEUE_SHUTDOWN)
			break; /* cannot happen while the call runs */
	}
	pthread_mutex_unlock(&call->stash_lock);
	return success;
}

/* Non-blocking check whether the close completion arrived. */
static void poll_close(struct rpc_call *call)
{
	if (call->fin) {
		/* async: a worker reports the close (rpc_call_async_event) */
		fin_start_close(call->fin);
		if (__atomic_load_n(&call->fin->close_done, __ATOMIC_ACQUIRE))
			__atomic_store_n(&call->close_done, 1, __ATOMIC_RELEASE);
		return;
	}
	if (__atomic_load_n(&call->close_done, __ATOMIC_ACQUIRE))
		return;
	pthread_mutex_lock(&call->stash_lock);
	if (!call->polling) {
		/* (While another thread polls, it records the close itself.) */
		call->polling = 1;
		pthread_mutex_unlock(&call->stash_lock);
		grpc_event ev = grpc_completion_queue_next(call->cq,
							   gpr_inf_past(GPR_CLOCK_MONOTONIC), NULL);
		pthread_mutex_lock(&call->stash_lock);
		call->polling = 0;
		record_event_locked(call, &ev);
		pthread_cond_broadcast(&call->stash_cond);
	}
	pthread_mutex_unlock(&call->stash_lock);
}

void rpc_call_recv_abort(struct rpc_call *call)
{
	pthread_mutex_lock(&call->stash_lock);
	call->recv_abort = 1;
	pthread_cond_broadcast(&call->stash_cond);
	pthread_mutex_unlock(&call->stash_lock);
	/* An empty batch completes at once: it ends a poll in progress. */
	grpc_call_start_batch(call->gc, NULL, 0, &call->tag_wake, NULL);
}

static int start_batch(struct rpc_call *call, const grpc_op *ops, size_t n, void *tag)
{
	grpc_call_error rc = grpc_call_start_batch(call->gc, ops, n, tag, NULL);
	if (rc != GRPC_CALL_OK) {
		log_msg(LOG_ERROR, "grpc_call_start_batch failed: %d", (int)rc);
		return 0;
	}
	return wait_tag(call, tag);
}

int rpc_call_cancelled(struct rpc_call *call)
{
	if (call->deadline_ms != INT64_MAX && now_ms(CLOCK_MONOTONIC) >= call->deadline_ms)
		return 1;
	poll_close(call);
	/* Before the status is sent, a finished close means the call was cancelled. */
	return __atomic_load_n(&call->close_done, __ATOMIC_ACQUIRE);
}

/* rpc_call_cancelled for a failed handler: an async call's answer is settled first. */
static int cancelled_at_failure(struct rpc_call *call)
{
	if (call->fin) {
		fin_settle_close(call->fin);
		if (__atomic_load_n(&call->fin->close_done, __ATOMIC_ACQUIRE))
			__atomic_store_n(&call->close_done, 1, __ATOMIC_RELEASE);
	}
	return rpc_call_cancelled(call);
}

/* The error a failed stream operation maps to, as grpc-go's context errors. */
static int gone_error(struct rpc_call *call, struct error *err)
{
	if (call->deadline_ms != INT64_MAX && now_ms(CLOCK_MONOTONIC) >= call->deadline_ms)
		return error_set(err, STATUS_DEADLINE_EXCEEDED, "context deadline exceeded");
	return error_set(err, STATUS_CANCELLED, "context canceled");
}

static void track_msg(struct rpc_call *call, ProtobufCMessage *m)
{
	if (call->n_msgs == call->alloc_msgs) {
		size_t n = call->alloc_msgs ? call->alloc_msgs * 2 : 4;
		ProtobufCMessage **p = realloc(call->msgs, n * sizeof(*p));
		if (!p)
			abort();
		call->msgs = p;
		call->alloc_msgs = n;
	}
	call->msgs[call->n_msgs++] = m;
}

void rpc_call_free_message(struct rpc_call *call, ProtobufCMessage *msg)
{
	if (!msg)
		return;
	for (size_t i = 0; i < call->n_msgs; i++) {
		if (call->msgs[i] == msg) {
			call->msgs[i] = call->msgs[--call->n_msgs];
			if (msg == call->request)
				call->request = NULL;
			protobuf_c_message_free_unpacked(msg, NULL);
			return;
		}
	}
}

/*
 * protobuf-go refuses proto3 strings that are not valid UTF-8; so do we,
 * walking the wire bytes with the descriptors before unpacking (NUL bytes
 * and malformed input are refused by rpc_wire_check_strings first).
 * Returns 0 (fine, or malformed: the unpack reports that), -1 with err set.
 */
static int read_varint(const uint8_t **p, const uint8_t *end, uint64_t *out)
{
	uint64_t v = 0;
	for (int shift = 0; shift < 64 && *p < end; shift += 7) {
		uint8_t b = *(*p)++;
		v |= (uint64_t)(b & 0x7f) << shift;
		if (!(b & 0x80)) {
			*out = v;
			return 0;
		}
	}
	return -1;
}

static int valid_utf8(const uint8_t *s, size_t len)
{
	size_t i = 0;
	while (i < len) {
		uint8_t c = s[i];
		size_t n;
		uint32_t cp;
		if (c < 0x80) {
			i++;
			continue;
		} else if ((c & 0xe0) == 0xc0) {
			n = 1;
			cp = c & 0x1f;
		} else if ((c & 0xf0) == 0xe0) {
			n = 2;
			cp = c & 0x0f;
		} else if ((c & 0xf8) == 0xf0) {
			n = 3;
			cp = c & 0x07;
		} else {
			return 0;
		}
		if (len - i <= n)
			return 0;
		for (size_t k = 1; k <= n; k++) {
			if ((s[i + k] & 0xc0) != 0x80)
				return 0;
			cp = cp << 6 | (s[i + k] & 0x3f);
		}
		if ((n == 1 && cp < 0x80) || (n == 2 && cp < 0x800) || (n == 3 && cp < 0x10000) ||
		    cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff))
			return 0;
		i += n + 1;
	}
	return 1;
}

static int check_strings(const ProtobufCMessageDescriptor *desc, const uint8_t *p,
			 const uint8_t *end, int depth, struct error *err)
{
	if (depth > 64)
		return 0;
	while (p < end) {
		uint64_t key, len;
		if (read_varint(&p, end, &key) < 0)
			return 0;
		switch (key & 7) {
		case 0:
			if (read_varint(&p, end, &len) < 0)
				return 0;
			continue;
		case 1:
			if (end - p < 8)
				return 0;
			p += 8;
			continue;
		case 5:
			if (end - p < 4)
				return 0;
			p += 4;
			continue;
		case 2:
			break;
		default:
			return 0; /* groups and garbage: left to the unpacker */
		}
		if (read_varint(&p, end, &len) < 0 || len > (uint64_t)(end - p))
			return 0;
		const ProtobufCFieldDescriptor *f =
			key >> 3 <= UINT32_MAX
				? protobuf_c_message_descriptor_get_field(desc, (unsigned)(key >> 3))
				: NULL;
		if (f && f->type == PROTOBUF_C_TYPE_STRING) {
			if (!valid_utf8(p, len))
				return error_set(err, STATUS_INTERNAL,
						 "grpc: error unmarshalling request: proto: field "
						 "%s.%s contains invalid UTF-8",
						 desc->name, f->name);
		} else if (f && f->type == PROTOBUF_C_TYPE_MESSAGE && f->descriptor) {
			if (check_strings(f->descriptor, p, p + len, depth + 1, err) < 0)
				return -1;
		}
		p += len;
	}
	return 0;
}

/*
 * Receives the next message's bytes. Returns 1 with *out (unref it), 0 at
 * the end of the client's stream, -1 with err set.
 */
static int recv_bytes(struct rpc_call *call, grpc_slice *out, struct error *err)
{
	grpc_byte_buffer *bb = NULL;
	grpc_op op;
	int ret = -1, ok;
	grpc_byte_buffer_reader reader;
	int reader_init = 0;

	*out = grpc_empty_slice();
	if (call->client_done)
		return 0;
	if (call->fin) {
		/* async: grpc core read the one message before the call started */
		bb = call->preread;
		call->preread = NULL;
	} else {
		pthread_mutex_lock(&call->stash_lock);
		ok = !call->recv_abort;
		pthread_mutex_unlock(&call->stash_lock);
		if (!ok) {
			error_set(err, STATUS_CANCELLED, "context canceled");
			goto out;
		}
		memset(&op, 0, sizeof(op));
		op.op = GRPC_OP_RECV_MESSAGE;
		call->recv_bb = NULL;
		op.data.recv_message.recv_message = &call->recv_bb;
		if (grpc_call_start_batch(call->gc, &op, 1, &call->tag_recv, NULL) != GRPC_CALL_OK) {
			gone_error(call, err);
			goto out;
		}
		call->recv_pending = 1;
		ok = wait_tag(call, &call->tag_recv);
		if (ok < 0) {
			/* Abandoned: the batch completes when the call ends (drained there). */
			error_set(err, STATUS_CANCELLED, "context canceled");
			goto out;
		}
		call->recv_pending = 0;
		bb = call->recv_bb;
		call->recv_bb = NULL;
		if (!ok) {
			gone_error(call, err);
			goto out;
		}
	}
	if (!bb) {
		call->client_done = 1;
		ret = 0;
		goto out;
	}
	size_t len = grpc_byte_buffer_length(bb);
	size_t max = call->opts->max_recv_bytes;
	if (len > max) {
		error_set(err, STATUS_RESOURCE_EXHAUSTED,
			  "grpc: received message larger than max (%zu vs. %zu)", len, max);
		goto out;
	}
	if (!grpc_byte_buffer_reader_init(&reader, bb)) {
		error_set(err, STATUS_INTERNAL, "grpc: failed to decompress the received message");
		goto out;
	}
	reader_init = 1;
	*out = grpc_byte_buffer_reader_readall(&reader);
	call->request_bytes += GRPC_SLICE_LENGTH(*out);
	if (!call->opts->no_access_log && !call->raw)
		rpc_metrics_msg_received(call->metrics_key, call->service_name, call->method_name,
					 call->method->type);
	ret = 1;
out:
	if (reader_init)
		grpc_byte_buffer_reader_destroy(&reader);
	if (bb)
		grpc_byte_buffer_destroy(bb);
	return ret;
}

/*
 * Receives one message. Returns 1 with *out, 0 at the end of the client's
 * stream, -1 with err set.
 */
static int recv_one(struct rpc_call *call, ProtobufCMessage **out, struct error *err)
{
	grpc_slice slice;
	int ret = recv_bytes(call, &slice, err);

	*out = NULL;
	if (ret <= 0)
		return ret;
	ret = -1;
	if (rpc_wire_check_strings(call->method->request, GRPC_SLICE_START_PTR(slice),
				   GRPC_SLICE_LENGTH(slice), err) < 0 ||
	    check_strings(call->method->request, GRPC_SLICE_START_PTR(slice),
			  GRPC_SLICE_START_PTR(slice) + GRPC_SLICE_LENGTH(slice), 0, err) < 0)
		goto out;
	ProtobufCMessage *m = protobuf_c_message_unpack(call->method->request, NULL,
							GRPC_SLICE_LENGTH(slice),
							GRPC_SLICE_START_PTR(slice));
	if (!m) {
		error_set(err, STATUS_INTERNAL,
			  "grpc: error unmarshalling request: proto: cannot parse invalid wire-format data");
		goto out;
	}
	track_msg(call, m);
	*out = m;
	ret = 1;
out:
	grpc_slice_unref(slice);
	return ret;
}

int rpc_call_recv_raw(struct rpc_call *call, void **buf, size_t *len, struct error *err)
{
	grpc_slice slice;
	int ret = recv_bytes(call, &slice, err);

	*buf = NULL;
	*len = 0;
	if (ret == 1) {
		*len = GRPC_SLICE_LENGTH(slice);
		*buf = xmalloc(*len);
		memcpy(*buf, GRPC_SLICE_START_PTR(slice), *len);
		grpc_slice_unref(slice);
	}
	return ret;
}

int rpc_call_recv(struct rpc_call *call, ProtobufCMessage **out, struct error *err)
{
	*out = NULL;
	if (call->method->type == RPC_UNARY || call->method->type == RPC_SERVER_STREAM)
		return 0;
	return recv_one(call, out, err);
}

const ProtobufCMessage *rpc_call_request(struct rpc_call *call)
{
	return call->request;
}

static grpc_byte_buffer *pack_message(const ProtobufCMessage *msg, size_t *len_out)
{
	size_t len = protobuf_c_message_get_packed_size(msg);
	uint8_t *buf = xmalloc(len);
	protobuf_c_message_pack(msg, buf);
	grpc_slice s = grpc_slice_new(buf, len, free);
	grpc_byte_buffer *bb = grpc_raw_byte_buffer_create(&s, 1);
	grpc_slice_unref(s);
	*len_out = len;
	return bb;
}

static int send_buffer(struct rpc_call *call, grpc_byte_buffer *bb, size_t len, struct error *err);

int rpc_call_send(struct rpc_call *call, const ProtobufCMessage *msg, struct error *err)
{
	size_t len;

	if (call->method->type == RPC_UNARY || call->method->type == RPC_CLIENT_STREAM) {
		if (call->unary_resp)
			grpc_byte_buffer_destroy(call->unary_resp);
		call->unary_resp = pack_message(msg, &len);
		call->response_bytes = len;
		return 0;
	}
	grpc_byte_buffer *bb = pack_message(msg, &len);
	if (call->method->type == RPC_SERVER_STREAM && !call->fin) {
		/* one batch less for the common single-message answer */
		if (rpc_call_flush(call, err) < 0) {
			grpc_byte_buffer_destroy(bb);
			return -1;
		}
		call->held = bb;
		call->held_len = len;
		return 0;
	}
	return send_buffer(call, bb, len, err);
}

int rpc_call_flush(struct rpc_call *call, struct error *err)
{
	grpc_byte_buffer *bb = call->held;

	if (!bb)
		return 0;
	call->held = NULL;
	return send_buffer(call, bb, call->held_len, err);
}

int rpc_call_send_raw(struct rpc_call *call, const void *buf, size_t len, struct error *err)
{
	grpc_slice s = grpc_slice_from_copied_buffer(buf, len);
	grpc_byte_buffer *bb = grpc_raw_byte_buffer_create(&s, 1);
	grpc_slice_unref(s);
	return send_buffer(call, bb, len, err);
}

/* Sends one stream message (bb is consumed). */
static int send_buffer(struct rpc_call *call, grpc_byte_buffer *bb, size_t len, struct error *err)
{
	grpc_op ops[2];
	size_t n = 0;
	int ok;

	memset(ops, 0, sizeof(ops));
	if (!call->initial_md_sent) {
		ops[n].op = GRPC_OP_SEND_INITIAL_METADATA;
		n++;
		call->initial_md_sent = 1;
	}
	ops[n].op = GRPC_OP_SEND_MESSAGE;
	ops[n].data.send_message.send_message = bb;
	n++;
	ok = start_batch(call, ops, n, &call->tag_op);
	grpc_byte_buffer_destroy(bb);
	if (!ok)
		return gone_error(call, err);
	call->response_bytes += len;
	if (!call->opts->no_access_log && !call->raw)
		rpc_metrics_msg_sent(call->metrics_key, call->service_name, call->method_name,
				     call->method->type);
	return 0;
}

const char *rpc_call_metadata(struct rpc_call *call, const char *key)
{
	for (size_t i = 0; i < call->n_md; i++)
		if (!strcmp(call->md[i].key, key))
			return call->md[i].value;
	return NULL;
}

const char *rpc_call_metadata_last(struct rpc_call *call, const char *key)
{
	for (size_t i = call->n_md; i > 0; i--)
		if (!strcmp(call->md[i - 1].key, key))
			return call->md[i - 1].value;
	return NULL;
}

int64_t rpc_call_deadline_ms(struct rpc_call *call)
{
	return call->deadline_ms;
}

const char *rpc_call_peer(struct rpc_call *call)
{
	return call->peer;
}

const char *rpc_call_method_name(struct rpc_call *call)
{
	return call->full_method;
}

const char *rpc_call_correlation_id(struct rpc_call *call)
{
	return call->correlation_id;
}

void *rpc_call_service_data(struct rpc_call *call)
{
	if (call->raw)
		return call->raw_data;
	return call->svc ? call->svc->data : NULL;
}

void rpc_call_log_field(struct rpc_call *call, const char *key, json_t *value)
{
	if (!call->log_fields)
		call->log_fields = json_object();
	json_object_set_new(call->log_fields, key, value);
}

/* Sends the final status (and the unary response when ok). */
static void send_status(struct rpc_call *call, const struct error *e)
{
	grpc_op ops[3];
	size_t n = 0;
	grpc_metadata trailer;
	struct strbuf details = STRBUF_INIT;
	int code = e ? e->code : STATUS_OK;
	const char *msg = (e && e->message) ? e->message : "";
	grpc_slice status_slice = grpc_slice_from_copied_string(msg);

	memset(ops, 0, sizeof(ops));
	memset(&trailer, 0, sizeof(trailer));
	if (!call->initial_md_sent) {
		ops[n].op = GRPC_OP_SEND_INITIAL_METADATA;
		n++;
		call->initial_md_sent = 1;
	}
	if (call->held) {
		/* a server stream's last message goes out with the status */
		ops[n].op = GRPC_OP_SEND_MESSAGE;
		ops[n].data.send_message.send_message = call->held;
		n++;
	} else if (code == STATUS_OK && (call->method->type == RPC_UNARY ||
					 call->method->type == RPC_CLIENT_STREAM)) {
		if (!call->unary_resp) {
			/* The handler sent nothing: an empty message of the response type. */
			grpc_slice s = grpc_empty_slice();
			call->unary_resp = grpc_raw_byte_buffer_create(&s, 1);
		}
		ops[n].op = GRPC_OP_SEND_MESSAGE;
		ops[n].data.send_message.send_message = call->unary_resp;
		n++;
	}
	ops[n].op = GRPC_OP_SEND_STATUS_FROM_SERVER;
	ops[n].data.send_status_from_server.status = (grpc_status_code)code;
	ops[n].data.send_status_from_server.status_details = &status_slice;
	if (code != STATUS_OK && e->n_details > 0 && rpc_status_encode(e, &details) == 0) {
		trailer.key = grpc_slice_from_static_string("grpc-status-details-bin");
		trailer.value = grpc_slice_from_copied_buffer(details.buf, details.len);
		ops[n].data.send_status_from_server.trailing_metadata_count = 1;
		ops[n].data.send_status_from_server.trailing_metadata = &trailer;
	}
	n++;
	if (call->fin) {
		/*
		 * async: kept for the end of the call, which starts the batch
		 * after the access-log line (the slices live in fin until the
		 * batch completes).
		 */
		struct call_fin *fin = call->fin;
		grpc_slice_unref(fin->status_slice);
		grpc_slice_unref(fin->trailer_value);
		fin->status_slice = status_slice;
		fin->trailer_value = trailer.value;
		call->final_trailer = trailer;
		memcpy(call->final_ops, ops, sizeof(ops));
		call->n_final = n;
		call->final_ops[n - 1].data.send_status_from_server.status_details =
			&fin->status_slice;
		if (call->final_ops[n - 1].data.send_status_from_server.trailing_metadata)
			call->final_ops[n - 1].data.send_status_from_server.trailing_metadata =
				&call->final_trailer;
		strbuf_release(&details);
		return;
	}
	if (start_batch(call, ops, n, &call->tag_op) && !call->opts->no_access_log &&
	    (call->held || (code == STATUS_OK && call->unary_resp)))
		rpc_metrics_msg_sent(call->metrics_key, call->service_name, call->method_name,
				     call->method->type);
	if (call->held) {
		call->response_bytes += call->held_len;
		grpc_byte_buffer_destroy(call->held);
		call->held = NULL;
	}
	grpc_slice_unref(status_slice);
	grpc_slice_unref(trailer.value);
	strbuf_release(&details);
}

static void copy_metadata(struct rpc_call *call, const grpc_metadata_array *md)
{
	call->md = rpc_call_alloc(call, (md->count ? md->count : 1) * sizeof(*call->md));
	for (size_t i = 0; i < md->count; i++) {
		const grpc_metadata *m = &md->metadata[i];
		struct md_entry *e = &call->md[call->n_md++];
		e->key = arena_strndup(call, (const char *)GRPC_SLICE_START_PTR(m->key),
				       GRPC_SLICE_LENGTH(m->key));
		e->value = arena_strndup(call, (const char *)GRPC_SLICE_START_PTR(m->value),
					 GRPC_SLICE_LENGTH(m->value));
		e->value_len = GRPC_SLICE_LENGTH(m->value);
	}
}

static void set_deadline(struct rpc_call *call, gpr_timespec d)
{
	call->deadline_ms = INT64_MAX;
	call->deadline_unix_ms = 0;
	if (gpr_time_cmp(d, gpr_inf_future(d.clock_type)) == 0)
		return;
	gpr_timespec left = gpr_time_sub(d, gpr_now(d.clock_type));
	int64_t left_ms = (int64_t)left.tv_sec * 1000 + left.tv_nsec / 1000000;
	call->deadline_ms = now_ms(CLOCK_MONOTONIC) + left_ms;
	call->deadline_unix_ms = now_ms(CLOCK_REALTIME) + left_ms;
}

/* Space-joined sorted names of the gitaly-feature-* flags set to "true". */
static int cmp_str(const void *a, const void *b)
{
	return strcmp(*(const char *const *)a, *(const char *const *)b);
}

static const char *feature_flags(struct rpc_call *call)
{
	static const char prefix[] = "gitaly-feature-";
	const char **names = rpc_call_alloc(call, (call->n_md + 1) * sizeof(*names));
	size_t n = 0, total = 0;
	for (size_t i = 0; i < call->n_md; i++) {
		if (strncmp(call->md[i].key, prefix, sizeof(prefix) - 1) ||
		    strcmp(call->md[i].value, "true"))
			continue;
		char *name = rpc_call_strdup(call, call->md[i].key + sizeof(prefix) - 1);
		for (char *p = name; *p; p++)
			if (*p == '-')
				*p = '_';
		names[n++] = name;
		total += strlen(name) + 1;
	}
	if (!n)
		return NULL;
	qsort(names, n, sizeof(*names), cmp_str);
	char *out = rpc_call_alloc(call, total), *p = out;
	for (size_t i = 0; i < n; i++) {
		size_t l = strlen(names[i]);
		if (i)
			*p++ = ' ';
		memcpy(p, names[i], l);
		p += l;
	}
	*p = 0;
	return out;
}

static const char *string_field(const ProtobufCMessage *m, const char *name)
{
	const ProtobufCFieldDescriptor *f =
		protobuf_c_message_descriptor_get_field_by_name(m->descriptor, name);
	if (!f || f->type != PROTOBUF_C_TYPE_STRING || f->label == PROTOBUF_C_LABEL_REPEATED)
		return NULL;
	const char *s = *(char *const *)((const char *)m + f->offset);
	return (s && *s) ? s : NULL;
}

void rpc_call_request_fields(const ProtobufCMessage *req, struct accesslog_entry *e)
{
	if (!req)
		return;
	e->storage_name = string_field(req, "storage_name");
	const ProtobufCFieldDescriptor *f =
		protobuf_c_message_descriptor_get_field_by_name(req->descriptor, "repository");
	if (!f || f->type != PROTOBUF_C_TYPE_MESSAGE || f->label == PROTOBUF_C_LABEL_REPEATED)
		return;
	const ProtobufCMessageDescriptor *rd = f->descriptor;
	if (!rd || strcmp(rd->name, "gitaly.Repository"))
		return;
	const ProtobufCMessage *repo = *(ProtobufCMessage *const *)((const char *)req + f->offset);
	if (!repo)
		return;
	e->has_repository = 1;
	e->repo_storage = string_field(repo, "storage_name");
	e->repo_path = string_field(repo, "relative_path");
	e->gl_repository = string_field(repo, "gl_repository");
	e->gl_project_path = string_field(repo, "gl_project_path");
}

static void finish_log(struct rpc_call *call, const struct timespec *start_rt,
		       const struct timespec *start_mono, const struct error *e,
		       const char *auth_version)
{
	struct timespec end;
	clock_gettime(CLOCK_MONOTONIC, &end);
	double secs = (double)(end.tv_sec - start_mono->tv_sec) +
		      (double)(end.tv_nsec - start_mono->tv_nsec) / 1e9;
	int code = e ? e->code : STATUS_OK;
	struct accesslog_entry le;
	char peer_addr[128];

	memset(&le, 0, sizeof(le));
	le.service = call->service_name;
	le.method = call->method_name;
	le.type = call->method->type;
	le.op = call->method->op;
	le.scope = call->method->scope;
	le.start = *start_rt;
	le.deadline_unix_ms = call->deadline_unix_ms;
	le.time_ms = secs * 1000.0;
	le.code = code;
	le.error = code ? (e->message ? e->message : "") : NULL;
	le.correlation_id = call->correlation_id;
	le.client_name = rpc_call_metadata(call, "x-gitlab-client-name");
	if (!le.client_name)
		le.client_name = rpc_call_metadata(call, "client_name");
	le.call_site = rpc_call_metadata(call, "call_site");
	le.auth_version = auth_version;
	le.deadline_type = rpc_call_metadata(call, "deadline_type");
	le.remote_ip = rpc_call_metadata(call, "remote_ip");
	/* the real client address, also behind a multiplexed connection's
	 * socketpair (whose grpc peer is "fd:N") */
	if (backchannel_peer_address(call->peer, peer_addr, sizeof(peer_addr)) == 0)
		le.peer_address = peer_addr;
	le.user_id = rpc_call_metadata(call, "user_id");
	le.username = rpc_call_metadata(call, "username");
	le.feature_flags = feature_flags(call);
	rpc_call_request_fields(call->request, &le);
	le.request_bytes = call->request_bytes;
	le.response_bytes = call->response_bytes;
	le.custom_fields = call->log_fields;
	accesslog_emit(&le);
	rpc_metrics_client_request(&le);
	rpc_metrics_handled(call->metrics_key, call->service_name, call->method_name,
			    call->method->type, code, secs);
}

/* Answers a call that never reaches a handler (unknown service/method). */
static void reject(struct rpc_call *call, const struct error *e)
{
	static const struct rpc_method dummy = { .name = "", .type = RPC_BIDI_STREAM };
	if (!call->method)
		call->method = &dummy;
	send_status(call, e);
}

/* A call for the fallback handler: auth, then the handler on raw bytes. */
static void run_fallback(struct rpc_call *call, rpc_handler_fn fn, struct error *err)
{
	static const struct rpc_method raw_method = { .name = "", .type = RPC_BIDI_STREAM };
	const char *auth_version = NULL;
	char buf[CORRELATION_ID_LEN + 1];
	const char *cid = correlation_from_metadata(
		rpc_call_metadata(call, CORRELATION_METADATA_KEY), buf, sizeof(buf));

	call->correlation_id = cid == buf ? rpc_call_strdup(call, buf) : cid;
	call->raw = 1;
	call->method = &raw_method;
	if (auth_check(&call->opts->auth, rpc_call_metadata(call, "authorization"),
		       (int64_t)time(NULL), &auth_version, err) < 0) {
		if (!error_is_set(err))
			error_set(err, STATUS_UNAUTHENTICATED, "authentication required");
		send_status(call, err);
		return;
	}
	if (fn(call, err) < 0 || error_is_set(err)) {
		if (!error_is_set(err))
			error_set(err, STATUS_INTERNAL, "handler failed without an error");
		send_status(call, err);
	} else {
		send_status(call, NULL);
	}
}

/*
 * Both kinds of call: cq is the slot's queue of a generic call (every batch
 * waited for there), or NULL for an async registered unary call, whose
 * method (known) and first message (payload, consumed) come with it.
 */
static void handle_call(struct rpc_server *srv, grpc_call *gc, const char *mptr, size_t mlen,
			gpr_timespec deadline, const grpc_metadata_array *md,
			grpc_completion_queue *cq, const struct rpc_lookup *known,
			grpc_byte_buffer *payload)
{
	struct rpc_call call_s, *call = &call_s;
	struct error err = ERROR_INIT;
	struct rpc_lookup lk;
	struct timespec start_rt, start_mono;
	grpc_op op;
	int cancelled_flag = 0;
	const char *auth_version = NULL;
	int logged = 0;
	rpc_handler_fn fallback = NULL;

	clock_gettime(CLOCK_REALTIME, &start_rt);
	clock_gettime(CLOCK_MONOTONIC, &start_mono);
	memset(call, 0, offsetof(struct rpc_call, arena0));
	memset((char *)call + offsetof(struct rpc_call, arena0) + sizeof(call->arena0), 0,
	       sizeof(*call) - offsetof(struct rpc_call, arena0) - sizeof(call->arena0));
	call->arena0.c.size = ARENA_FIRST;
	call->arena0.c.used = 0;
	call->arena0.c.next = NULL;
	call->arena = &call->arena0.c;
	pthread_mutex_init(&call->stash_lock, NULL);
	pthread_cond_init(&call->stash_cond, NULL);
	call->srv = srv;
	call->opts = rpc_server_opts(srv);
	call->gc = gc;
	call->cq = cq;

	/* The close op reports cancellation; it completes at the very end otherwise. */
	memset(&op, 0, sizeof(op));
	op.op = GRPC_OP_RECV_CLOSE_ON_SERVER;
	if (!cq) {
		struct call_fin *fin = calloc(1, sizeof(*fin));
		if (!fin)
			abort();
		fin->close_tag.kind = RPC_TAG_CLOSE;
		fin->final_tag.kind = RPC_TAG_FINAL;
		fin->probe_tag.kind = RPC_TAG_PROBE;
		pthread_mutex_init(&fin->mu, NULL);
		pthread_cond_init(&fin->cond, NULL);
		fin->gc = gc;
		fin->refs = 1; /* this function's */
		fin->status_slice = grpc_empty_slice();
		fin->trailer_value = grpc_empty_slice();
		call->fin = fin;
		call->preread = payload;
		/* the close is requested later: fin_start_close or the final batch */
	} else {
		op.data.recv_close_on_server.cancelled = &cancelled_flag;
		if (grpc_call_start_batch(gc, &op, 1, &call->tag_close, NULL) != GRPC_CALL_OK)
			call->close_done = 1;
	}

	call->full_method = arena_strndup(call, mptr, mlen);
	copy_metadata(call, md);
	set_deadline(call, deadline);
	{
		char *peer = grpc_call_get_peer(gc);
		call->peer = rpc_call_strdup(call, peer ? peer : "");
		gpr_free(peer);
	}
	/* Split "/svc/method" for the log and for error messages. */
	{
		const char *s = call->full_method;
		if (*s == '/')
			s++;
		const char *slash = strrchr(s, '/');
		if (slash) {
			call->service_name = arena_strndup(call, s, (size_t)(slash - s));
			call->method_name = rpc_call_strdup(call, slash + 1);
		} else {
			call->service_name = rpc_call_strdup(call, "");
			call->method_name = rpc_call_strdup(call, s);
		}
	}

	if (known)
		lk = *known;
	else
		rpc_server_lookup(srv, call->full_method, strlen(call->full_method), &lk);
	call->svc = lk.svc;
	call->method = lk.method;
	call->metrics_key = lk.method; /* (names and type fixed per registered method) */
	if (!lk.method && rpc_server_fallback(srv, &fallback, &call->raw_data)) {
		run_fallback(call, fallback, &err);
		goto out;
	}
	if (!lk.svc) {
		error_set(&err, STATUS_UNIMPLEMENTED, "unknown service %s", call->service_name);
		reject(call, &err);
		goto out;
	}
	if (!lk.method) {
		error_set(&err, STATUS_UNIMPLEMENTED, "unknown method %s for service %s",
			  call->method_name, call->service_name);
		reject(call, &err);
		goto out;
	}

	/* Correlation id: the client's, or a fresh one. */
	{
		char buf[CORRELATION_ID_LEN + 1];
		const char *cid = correlation_from_metadata(
			rpc_call_metadata(call, CORRELATION_METADATA_KEY), buf, sizeof(buf));
		call->correlation_id = cid == buf ? rpc_call_strdup(call, buf) : cid;
	}
	logged = !call->opts->no_access_log;
	if (logged)
		rpc_metrics_started(call->metrics_key, call->service_name, call->method_name,
				    call->method->type);

	/* Auth runs for every method, before anything is read. */
	if (auth_check(&call->opts->auth, rpc_call_metadata(call, "authorization"),
		       (int64_t)time(NULL), &auth_version, &err) < 0) {
		if (!error_is_set(&err))
			error_set(&err, STATUS_UNAUTHENTICATED, "authentication required");
		send_status(call, &err);
		goto out;
	}

	{
		ProtobufCMessage *first = NULL;
		int r = recv_one(call, &first, &err);
		if (r < 0) {
			send_status(call, &err);
			goto out;
		}
		if (r == 0 && (call->method->type == RPC_UNARY ||
			       call->method->type == RPC_SERVER_STREAM)) {
			error_set(&err, STATUS_INTERNAL,
				  "grpc: error unmarshalling request: EOF");
			send_status(call, &err);
			goto out;
		}
		call->request = first;
	}

	if (!call->method->handler) {
		error_set(&err, STATUS_UNIMPLEMENTED, "method %s not implemented",
			  call->method_name);
		send_status(call, &err);
		goto out;
	}

	/* limits (src/limit): concurrency and rate, held while the handler runs */
	struct limit_guard *limit_guard = NULL;
	if (limit_call_enter(call, &limit_guard, &err) < 0) {
		send_status(call, &err);
		goto out;
	}
	int handler_rc = call->method->handler(call, &err);
	limit_call_leave(limit_guard);

	if (handler_rc < 0 || error_is_set(&err)) {
		if (!error_is_set(&err))
			error_set(&err, STATUS_INTERNAL, "handler failed without an error");
		/*
		 * A handler failing after its deadline or a cancel almost always
		 * fails because of it (killed git, closed stream); as with Go's
		 * context errors, the status then says so.
		 */
		if (err.code != STATUS_DEADLINE_EXCEEDED && err.code != STATUS_CANCELLED &&
		    cancelled_at_failure(call)) {
			struct error ctx_err = ERROR_INIT;
			gone_error(call, &ctx_err);
			log_msg(LOG_DEBUG, "%s failed after the call ended: %s", call->full_method,
				err.message ? err.message : "");
			error_move(&err, &ctx_err);
		}
		send_status(call, &err);
	} else {
		send_status(call, NULL);
	}

out:
	if (!call->fin) {
		wait_tag(call, &call->tag_close);
		if (call->recv_pending) {
			/* A receive abandoned by the handler completes now that the call is over. */
			call->recv_abort = 0;
			wait_tag(call, &call->tag_recv);
			if (call->recv_bb)
				grpc_byte_buffer_destroy(call->recv_bb);
		}
	}
	if (logged)
		finish_log(call, &start_rt, &start_mono, error_is_set(&err) ? &err : NULL,
			   auth_version);
	if (call->fin) {
		/* async: the answer leaves now; the last completion frees the call */
		if (call->n_final &&
		    !__atomic_exchange_n(&call->fin->close_started, 1, __ATOMIC_ACQ_REL)) {
			/* nobody asked about cancellation: the close rides along */
			grpc_op *c = &call->final_ops[call->n_final++];
			memset(c, 0, sizeof(*c));
			c->op = GRPC_OP_RECV_CLOSE_ON_SERVER;
			c->data.recv_close_on_server.cancelled = &call->fin->cancelled;
		}
		if (call->n_final && fin_batch(call->fin, call->final_ops, call->n_final,
					       &call->fin->final_tag) &&
		    !error_is_set(&err) && call->unary_resp && !call->opts->no_access_log)
			rpc_metrics_msg_sent(call->metrics_key, call->service_name, call->method_name,
					     call->method->type);
		if (call->preread)
			grpc_byte_buffer_destroy(call->preread);
		fin_unref(call->fin);
	} else {
		grpc_call_unref(gc);
	}
	for (size_t i = 0; i < call->n_msgs; i++)
		protobuf_c_message_free_unpacked(call->msgs[i], NULL);
	free(call->msgs);
	if (call->unary_resp)
		grpc_byte_buffer_destroy(call->unary_resp);
	if (call->held)
		grpc_byte_buffer_destroy(call->held);
	json_decref(call->log_fields);
	error_release(&err);
	arena_free(call);
	pthread_cond_destroy(&call->stash_cond);
	pthread_mutex_destroy(&call->stash_lock);
}

void rpc_call_handle(struct rpc_server *srv, grpc_call *gc, const grpc_call_details *details,
		     const grpc_metadata_array *md, grpc_completion_queue *cq)
{
	handle_call(srv, gc, (const char *)GRPC_SLICE_START_PTR(details->method),
		    GRPC_SLICE_LENGTH(details->method), details->deadline, md, cq, NULL, NULL);
}

void rpc_call_handle_unary(struct rpc_server *srv, grpc_call *gc, const struct rpc_lookup *lk,
			   const char *full, gpr_timespec deadline, const grpc_metadata_array *md,
			   grpc_byte_buffer *payload)
{
	handle_call(srv, gc, full, strlen(full), deadline, md, NULL, lk, payload);
}
