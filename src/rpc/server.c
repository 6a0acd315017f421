/*
 * The server: grpc core instance, the method table, and the worker pool.
 * The pool has as many call slots as threads. Each slot owns a completion
 * queue bound to the call it carries and keeps one generic
 * grpc_server_request_call outstanding (so any method name arrives and
 * unknown ones get grpc-go's UNIMPLEMENTED texts). All slots are requested
 * on one shared, registered queue that every idle thread waits on: the
 * thread that reads a new call off the socket usually dequeues it itself and
 * runs it to the end, with no hand-off to another thread (per-thread queues
 * cost several context switches per call). When the call is done the thread
 * re-requests with that slot. Calls beyond the pool size wait inside grpc
 * core until a slot is requested again.
 */
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <grpc/grpc.h>
#include <grpc/grpc_posix.h>
#include <grpc/grpc_security.h>
#include <grpc/support/time.h>

#include "base/log.h"
#include "rpc/server.h"
#include "rpc/server_internal.h"

struct method_slot {
	char *full; /* "/svc/method", NULL when empty */
	size_t len;
	const struct rpc_service *svc;
	const struct rpc_method *method;
	void *reg; /* grpc core's handle when registered (unary methods) */
};

/* Outstanding requests per registered unary method. */
#define UNARY_REQS_PER_METHOD 4

/* One outstanding request for a registered unary method. */
struct unary_req {
	struct rpc_tag tag; /* RPC_TAG_UNARY */
	const struct method_slot *ms;
	grpc_call *gc;
	gpr_timespec deadline;
	grpc_metadata_array md;
	grpc_byte_buffer *payload;
	int pending;
};

struct worker {
	struct rpc_server *srv;
	pthread_t thread;
	int started;
};

/* One outstanding call request and the queue its call will be bound to. */
struct slot {
	struct rpc_tag tag; /* RPC_TAG_SLOT */
	grpc_completion_queue *call_cq;
	grpc_call *gc;
	grpc_call_details details;
	grpc_metadata_array md;
	int pending; /* a request is outstanding (or its completion not yet taken) */
};

struct rpc_server {
	struct rpc_server_options opts;
	grpc_server *server;
	grpc_completion_queue *shutdown_cq;
	grpc_completion_queue *notify_cq; /* shared by every slot and thread */
	grpc_server_credentials *creds;

	const struct rpc_service **services;
	size_t n_services;
	struct method_slot *slots; /* open addressing, power of two */
	size_t n_slots, n_used;

	rpc_handler_fn fallback;
	void *fallback_data;

	struct worker *workers;
	struct slot *slots_pool;
	int n_workers;
	int n_reqs; /* call requests (slots) kept outstanding: 2 per thread */
	struct unary_req *unary_reqs; /* registered unary methods' requests */
	size_t n_unary_reqs;
	int started;
	int shut_down; /* written under lock, read with atomics */
	pthread_mutex_t lock;
	/*
	 * Threads waiting on the shared queue (idle: atomics) and threads
	 * parked on the condition variable (parked: under lock, also read
	 * with atomics). Every waiter on a grpc queue is also a potential
	 * poller that grpc core hands work and wake-ups to, so only up to
	 * max_idle threads wait there; the rest park until the last waiter
	 * takes a call. A call taken while another thread still waits needs
	 * no lock at all.
	 */
	int idle, parked, max_idle;
	pthread_cond_t park_cond;
	/*
	 * Threads are started as needed (n_started of n_workers, under lock):
	 * max_idle at start, one more whenever a thread takes a call while
	 * none is left waiting or parked. An idle server keeps a handful of
	 * threads (each costs touched stack and per-thread allocator state).
	 */
	int n_started;
	/*
	 * Async unary calls being handled (atomics), plus ASYNC_CLOSING once
	 * shutdown closes the door: they start batches on the shared queue,
	 * so it is shut down only when none is left, and none starts after.
	 * The last one out wakes the shutdown (async_cond, under lock).
	 */
	int async;
	pthread_cond_t async_cond;
};

#define ASYNC_CLOSING 0x40000000

static uint64_t hash_bytes(const char *s, size_t len)
{
	uint64_t h = 1469598103934665603ULL;
	for (size_t i = 0; i < len; i++) {
		h ^= (unsigned char)s[i];
		h *= 1099511628211ULL;
	}
	return h;
}

static int table_insert(struct method_slot *slots, size_t n_slots, const struct method_slot *in)
{
	size_t i = hash_bytes(in->full, in->len) & (n_slots - 1);
	while (slots[i].full) {
		if (slots[i].len == in->len && !memcmp(slots[i].full, in->full, in->len))
			return -1;
		i = (i + 1) & (n_slots - 1);
	}
	slots[i] = *in;
	return 0;
}

static int table_grow(struct rpc_server *srv, size_t need)
{
	if ((srv->n_used + need) * 2 <= srv->n_slots)
		return 0;
	size_t n = srv->n_slots ? srv->n_slots : 64;
	while ((srv->n_used + need) * 2 > n)
		n *= 2;
	struct method_slot *slots = calloc(n, sizeof(*slots));
	if (!slots)
		return -1;
	for (size_t i = 0; i < srv->n_slots; i++)
		if (srv->slots[i].full)
			table_insert(slots, n, &srv->slots[i]);
	free(srv->slots);
	srv->slots = slots;
	srv->n_slots = n;
	return 0;
}

void rpc_server_lookup(const struct rpc_server *srv, const char *full, size_t len,
		       struct rpc_lookup *out)
{
	out->svc = NULL;
	out->method = NULL;
	if (srv->n_slots) {
		size_t i = hash_bytes(full, len) & (srv->n_slots - 1);
		while (srv->slots[i].full) {
			const struct method_slot *s = &srv->slots[i];
			if (s->len == len && !memcmp(s->full, full, len)) {
				out->svc = s->svc;
				out->method = s->method;
				return;
			}
			i = (i + 1) & (srv->n_slots - 1);
		}
	}
	/* Not a known method: tell apart an unknown service (rare path). */
	const char *p = full;
	size_t plen = len;
	if (plen && *p == '/') {
		p++;
		plen--;
	}
	const char *slash = memrchr(p, '/', plen);
	size_t svc_len = slash ? (size_t)(slash - p) : plen;
	for (size_t k = 0; k < srv->n_services; k++) {
		const char *name = srv->services[k]->name;
		if (strlen(name) == svc_len && !memcmp(name, p, svc_len)) {
			out->svc = srv->services[k];
			return;
		}
	}
}

const struct rpc_server_options *rpc_server_opts(const struct rpc_server *srv)
{
	return &srv->opts;
}

void rpc_server_set_fallback(struct rpc_server *srv, rpc_handler_fn fn, void *data)
{
	srv->fallback = fn;
	srv->fallback_data = data;
}

int rpc_server_fallback(const struct rpc_server *srv, rpc_handler_fn *fn, void **data)
{
	if (!srv->fallback)
		return 0;
	*fn = srv->fallback;
	*data = srv->fallback_data;
	return 1;
}

int rpc_server_n_workers(const struct rpc_server *srv)
{
	return srv->n_workers;
}

/*
 * Debian builds abseil without NDEBUG, so every absl::Mutex lock inside grpc
 * core runs abseil's deadlock detector: a process-wide spin lock and a
 * graph update per lock, contended by every thread that touches a call or
 * a completion queue. The detector is a debugging aid (it only reports or
 * aborts); it is switched off here through its C++ entry point, looked up
 * by its mangled names (abseil's inline namespace differs between builds;
 * when none is found nothing changes).
 */
static void absl_deadlock_detection_off(void)
{
	static const char *const names[] = {
		"_ZN4absl7debian329SetMutexDeadlockDetectionModeENS0_15OnDeadlockCycleE",
		"_ZN4absl7debian229SetMutexDeadlockDetectionModeENS0_15OnDeadlockCycleE",
		"_ZN4absl12lts_2022062329SetMutexDeadlockDetectionModeENS0_15OnDeadlockCycleE",
		"_ZN4absl29SetMutexDeadlockDetectionModeENS_15OnDeadlockCycleE",
	};
	for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
		void *sym = dlsym(RTLD_DEFAULT, names[i]);
		if (sym) {
			void (*set_mode)(int);
			*(void **)&set_mode = sym;
			set_mode(0); /* absl::OnDeadlockCycle::kIgnore */
			return;
		}
	}
}

int rpc_server_new(const struct rpc_server_options *opts, struct rpc_server **out,
		   struct error *err)
{
	struct rpc_server *srv = calloc(1, sizeof(*srv));
	int ret = -1;

	*out = NULL;
	if (!srv)
		return error_set(err, STATUS_INTERNAL, "out of memory");
	if (opts)
		srv->opts = *opts;
	if (srv->opts.n_workers <= 0) {
		long ncpu = sysconf(_SC_NPROCESSORS_ONLN);
		if (ncpu < 1)
			ncpu = 1;
		/*
		 * Long streaming calls (clones, pushes) hold a worker for their
		 * whole duration, so the pool is generously sized; idle threads
		 * cost little.
		 */
		srv->opts.n_workers = ncpu * 4 > 64 ? (int)(ncpu * 4) : 64;
	}
	if (!srv->opts.max_recv_bytes)
		srv->opts.max_recv_bytes = RPC_DEFAULT_MAX_RECV_BYTES;
	if (srv->opts.keepalive_time_ms <= 0)
		srv->opts.keepalive_time_ms = 5 * 60 * 1000;
	srv->n_workers = srv->opts.n_workers;
	pthread_mutex_init(&srv->lock, NULL);
	pthread_cond_init(&srv->park_cond, NULL);
	pthread_cond_init(&srv->async_cond, NULL);
	{
		long ncpu = sysconf(_SC_NPROCESSORS_ONLN);
		/*
		 * One waiter per CPU, as many as a bare grpc core server uses:
		 * each extra waiter is one more thread grpc core may wake for a
		 * completion (ServerInfo at 8 in flight: 1.43 -> 0.94 context
		 * switches per call against 2 per CPU).
		 */
		srv->max_idle = ncpu > 1 ? (int)ncpu : 2;
	}

	absl_deadlock_detection_off();
	grpc_init();
	/*
	 * grpc core enforces a higher cap than ours so that messages between the
	 * two get grpc-go's exact ResourceExhausted text from call.c; anything
	 * beyond 4x is cut by core itself without buffering it.
	 */
	size_t core_max = srv->opts.max_recv_bytes * 4;
	if (core_max > INT32_MAX)
		core_max = INT32_MAX;
	grpc_arg args[] = {
		{ .type = GRPC_ARG_INTEGER, .key = GRPC_ARG_MAX_RECEIVE_MESSAGE_LENGTH,
		  .value.integer = (int)core_max },
		{ .type = GRPC_ARG_INTEGER, .key = GRPC_ARG_MAX_SEND_MESSAGE_LENGTH,
		  .value.integer = -1 },
		{ .type = GRPC_ARG_INTEGER, .key = GRPC_ARG_KEEPALIVE_TIME_MS,
		  .value.integer = (int)srv->opts.keepalive_time_ms },
		{ .type = GRPC_ARG_INTEGER, .key = GRPC_ARG_KEEPALIVE_TIMEOUT_MS,
		  .value.integer = 20000 },
		/* Clients (GitLab, Workhorse) ping every 20 s, even without calls. */
		{ .type = GRPC_ARG_INTEGER, .key = GRPC_ARG_KEEPALIVE_PERMIT_WITHOUT_CALLS,
		  .value.integer = 1 },
		{ .type = GRPC_ARG_INTEGER, .key = GRPC_ARG_HTTP2_MIN_RECV_PING_INTERVAL_WITHOUT_DATA_MS,
		  .value.integer = 10000 },
		{ .type = GRPC_ARG_INTEGER, .key = GRPC_ARG_HTTP2_MAX_PING_STRIKES,
		  .value.integer = 2 },
		{ .type = GRPC_ARG_INTEGER, .key = GRPC_ARG_HTTP2_MAX_PINGS_WITHOUT_DATA,
		  .value.integer = 0 },
	};
	grpc_channel_args cargs = { .num_args = sizeof(args) / sizeof(args[0]), .args = args };
	srv->server = grpc_server_create(&cargs, NULL);
	if (!srv->server) {
		error_set(err, STATUS_INTERNAL, "grpc_server_create failed");
		goto out;
	}
	srv->creds = grpc_insecure_server_credentials_create();
	srv->shutdown_cq = grpc_completion_queue_create_for_pluck(NULL);
	srv->workers = calloc((size_t)srv->n_workers, sizeof(*srv->workers));
	/*
	 * Twice as many requests as threads: a call that arrives while every
	 * request is taken waits in grpc core's pending list and is matched
	 * later by a thread that is not polling (an extra hand-off); with
	 * spare requests it is matched on arrival and waits, if at all, on
	 * the shared queue. Running calls stay bounded by the thread count.
	 */
	srv->n_reqs = srv->n_workers * 2;
	srv->slots_pool = calloc((size_t)srv->n_reqs, sizeof(*srv->slots_pool));
	if (!srv->workers || !srv->slots_pool) {
		error_set(err, STATUS_INTERNAL, "out of memory");
		goto out;
	}
	srv->notify_cq = grpc_completion_queue_create_for_next(NULL);
	grpc_server_register_completion_queue(srv->server, srv->notify_cq, NULL);
	for (int i = 0; i < srv->n_workers; i++)
		srv->workers[i].srv = srv;
	for (int i = 0; i < srv->n_reqs; i++) {
		srv->slots_pool[i].tag.kind = RPC_TAG_SLOT;
		srv->slots_pool[i].call_cq = grpc_completion_queue_create_for_next(NULL);
	}
	ret = 0;
out:
	if (ret < 0) {
		rpc_server_free(srv);
		srv = NULL;
	}
	*out = srv;
	return ret;
}

int rpc_server_register(struct rpc_server *srv, const struct rpc_service *svc, struct error *err)
{
	if (srv->started)
		return error_set(err, STATUS_INTERNAL, "register after start: %s", svc->name);
	for (size_t i = 0; i < srv->n_services; i++)
		if (!strcmp(srv->services[i]->name, svc->name))
			return error_set(err, STATUS_ALREADY_EXISTS,
					 "service %s registered twice", svc->name);
	if (table_grow(srv, svc->n_methods) < 0)
		return error_set(err, STATUS_INTERNAL, "out of memory");
	const struct rpc_service **s =
		realloc(srv->services, (srv->n_services + 1) * sizeof(*s));
	if (!s)
		return error_set(err, STATUS_INTERNAL, "out of memory");
	srv->services = s;
	srv->services[srv->n_services++] = svc;
	for (size_t i = 0; i < svc->n_methods; i++) {
		struct method_slot slot;
		size_t len = strlen(svc->name) + strlen(svc->methods[i].name) + 2;
		slot.full = malloc(len + 1);
		if (!slot.full)
			return error_set(err, STATUS_INTERNAL, "out of memory");
		snprintf(slot.full, len + 1, "/%s/%s", svc->name, svc->methods[i].name);
		slot.len = len;
		slot.svc = svc;
		slot.method = &svc->methods[i];
		if (table_insert(srv->slots, srv->n_slots, &slot) < 0) {
			free(slot.full);
			return error_set(err, STATUS_ALREADY_EXISTS, "method %s/%s registered twice",
					 svc->name, svc->methods[i].name);
		}
		srv->n_used++;
	}
	return 0;
}

/* Asks grpc core for the next call on slot sl; returns 0, or -1 when refused. */
static int request_slot(struct rpc_server *srv, struct slot *sl)
{
	sl->gc = NULL;
	grpc_call_details_init(&sl->details);
	grpc_metadata_array_init(&sl->md);
	sl->pending = 1;
	if (grpc_server_request_call(srv->server, &sl->gc, &sl->details, &sl->md, sl->call_cq,
				     srv->notify_cq, sl) != GRPC_CALL_OK) {
		sl->pending = 0;
		grpc_call_details_destroy(&sl->details);
		grpc_metadata_array_destroy(&sl->md);
		return -1;
	}
	return 0;
}

/* Asks grpc core for the next call of u's method; returns 0, or -1 when refused. */
static int request_unary(struct rpc_server *srv, struct unary_req *u)
{
	u->gc = NULL;
	u->payload = NULL;
	grpc_metadata_array_init(&u->md);
	u->pending = 1;
	if (grpc_server_request_registered_call(srv->server, u->ms->reg, &u->gc, &u->deadline,
						&u->md, &u->payload, srv->notify_cq,
						srv->notify_cq, u) != GRPC_CALL_OK) {
		u->pending = 0;
		grpc_metadata_array_destroy(&u->md);
		return -1;
	}
	return 0;
}

/* Drops what a failed (shutdown) or never-taken unary request holds. */
static void unary_req_release(struct unary_req *u)
{
	if (u->gc)
		grpc_call_unref(u->gc);
	if (u->payload)
		grpc_byte_buffer_destroy(u->payload);
	grpc_metadata_array_destroy(&u->md);
	u->gc = NULL;
	u->payload = NULL;
	u->pending = 0;
}

/*
 * A registered unary call arrived (lock not held): the request is renewed
 * first, so the method keeps its requests outstanding while this one runs,
 * then the call runs here without waiting for its last batch.
 */
static void run_unary(struct rpc_server *srv, struct unary_req *u)
{
	grpc_call *gc = u->gc;
	grpc_metadata_array md = u->md;
	grpc_byte_buffer *payload = u->payload;
	gpr_timespec deadline = u->deadline;
	struct rpc_lookup lk = { .svc = u->ms->svc, .method = u->ms->method };

	u->pending = 0;
	if (__atomic_add_fetch(&srv->async, 1, __ATOMIC_ACQ_REL) & ASYNC_CLOSING) {
		/* too late to start anything on the queue: drop the call */
		grpc_call_unref(gc);
		if (payload)
			grpc_byte_buffer_destroy(payload);
		grpc_metadata_array_destroy(&md);
	} else {
		/*
		 * (A request made while shutdown starts fails at once, onto
		 * the queue that this call keeps open.)
		 */
		if (!__atomic_load_n(&srv->shut_down, __ATOMIC_ACQUIRE))
			request_unary(srv, u);
		rpc_call_handle_unary(srv, gc, &lk, u->ms->full, deadline, &md, payload);
		grpc_metadata_array_destroy(&md);
	}
	if (__atomic_sub_fetch(&srv->async, 1, __ATOMIC_ACQ_REL) == ASYNC_CLOSING) {
		pthread_mutex_lock(&srv->lock);
		pthread_cond_broadcast(&srv->async_cond);
		pthread_mutex_unlock(&srv->lock);
	}
}

static void *worker_main(void *arg);

/* Starts the next worker (lock held); 0 or an errno. */
static int start_worker(struct rpc_server *srv)
{
	pthread_attr_t attr;
	struct worker *w = &srv->workers[srv->n_started];
	int rc;

	pthread_attr_init(&attr);
	pthread_attr_setstacksize(&attr, (size_t)2 << 20);
	rc = pthread_create(&w->thread, &attr, worker_main, w);
	pthread_attr_destroy(&attr);
	if (rc)
		return rc;
	w->started = 1;
	srv->n_started++;
	return 0;
}

/* A thread took the last waiter's place: make sure another one waits. */
static void replace_waiter(struct rpc_server *srv)
{
	pthread_mutex_lock(&srv->lock);
	if (__atomic_load_n(&srv->idle, __ATOMIC_ACQUIRE) > 0 || srv->shut_down)
		goto out;
	if (srv->parked > 0) {
		pthread_cond_signal(&srv->park_cond);
		goto out;
	}
	if (srv->n_started < srv->n_workers) {
		int rc = start_worker(srv);
		if (rc)
			log_msg(LOG_WARN, "cannot start a worker thread: %s", strerror(rc));
	}
out:
	pthread_mutex_unlock(&srv->lock);
}

/* Parks while enough threads wait on the queue. */
static void maybe_park(struct rpc_server *srv)
{
	if (__atomic_load_n(&srv->idle, __ATOMIC_ACQUIRE) < srv->max_idle ||
	    __atomic_load_n(&srv->shut_down, __ATOMIC_ACQUIRE))
		return;
	pthread_mutex_lock(&srv->lock);
	while (!srv->shut_down && __atomic_load_n(&srv->idle, __ATOMIC_ACQUIRE) >= srv->max_idle) {
		__atomic_store_n(&srv->parked, srv->parked + 1, __ATOMIC_RELEASE);
		pthread_cond_wait(&srv->park_cond, &srv->lock);
		__atomic_store_n(&srv->parked, srv->parked - 1, __ATOMIC_RELEASE);
	}
	pthread_mutex_unlock(&srv->lock);
}

static void *worker_main(void *arg)
{
	struct worker *w = arg;
	struct rpc_server *srv = w->srv;

	for (;;) {
		maybe_park(srv);
		__atomic_add_fetch(&srv->idle, 1, __ATOMIC_ACQ_REL);
		grpc_event ev = grpc_completion_queue_next(srv->notify_cq,
							   gpr_inf_future(GPR_CLOCK_REALTIME), NULL);
		int left = __atomic_sub_fetch(&srv->idle, 1, __ATOMIC_ACQ_REL);

		if (ev.type == GRPC_QUEUE_SHUTDOWN)
			break;
		if (ev.type != GRPC_OP_COMPLETE || !ev.tag)
			continue;
		struct rpc_tag *tag = ev.tag;
		if (tag->kind == RPC_TAG_CLOSE || tag->kind == RPC_TAG_FINAL ||
		    tag->kind == RPC_TAG_PROBE) {
			/* an async call's completion: quick bookkeeping, no hand-off */
			rpc_call_async_event(tag, ev.success);
			continue;
		}
		if (tag->kind == RPC_TAG_UNARY) {
			struct unary_req *u = (struct unary_req *)tag;
			if (!ev.success) {
				unary_req_release(u);
				continue;
			}
			if (!left)
				replace_waiter(srv);
			run_unary(srv, u);
			continue;
		}
		struct slot *sl = (struct slot *)tag;
		if (!ev.success) {
			/* The server is shutting down: the slot is not requested again. */
			if (sl->gc)
				grpc_call_unref(sl->gc);
			grpc_call_details_destroy(&sl->details);
			grpc_metadata_array_destroy(&sl->md);
			sl->pending = 0;
			continue;
		}
		/* The last waiter took a call: another takes its place. */
		if (!left)
			replace_waiter(srv);

		rpc_call_handle(srv, sl->gc, &sl->details, &sl->md, sl->call_cq);
		grpc_call_details_destroy(&sl->details);
		grpc_metadata_array_destroy(&sl->md);
		sl->pending = 0;

		pthread_mutex_lock(&srv->lock);
		/*
		 * No request may reach grpc core once shutdown began: the shared
		 * queue is shut down after the server, and a request completing
		 * onto a shut-down queue is a fatal error in grpc core.
		 */
		if (!srv->shut_down)
			request_slot(srv, sl);
		pthread_mutex_unlock(&srv->lock);
	}
	return NULL;
}

int rpc_server_start(struct rpc_server *srv, struct error *err)
{

	if (srv->started)
		return 0;
	/*
	 * Unary methods are registered with grpc core, which then reads the
	 * request message before handing a call out, and their calls are
	 * bound to the shared queue (rpc_call_handle_unary): no batch is
	 * waited for. Every other method comes through generic requests.
	 */
	{
		size_t n = 0, k = 0;
		for (size_t i = 0; i < srv->n_slots; i++)
			if (srv->slots[i].full && srv->slots[i].method->type == RPC_UNARY)
				n++;
		srv->unary_reqs = calloc(n * UNARY_REQS_PER_METHOD + 1, sizeof(*srv->unary_reqs));
		if (!srv->unary_reqs)
			return error_set(err, STATUS_INTERNAL, "out of memory");
		for (size_t i = 0; i < srv->n_slots; i++) {
			struct method_slot *ms = &srv->slots[i];
			if (!ms->full || ms->method->type != RPC_UNARY)
				continue;
			ms->reg = grpc_server_register_method(
				srv->server, ms->full, NULL, GRPC_SRM_PAYLOAD_READ_INITIAL_BYTE_BUFFER, 0);
			if (!ms->reg)
				continue; /* served through the generic requests */
			for (int j = 0; j < UNARY_REQS_PER_METHOD; j++) {
				srv->unary_reqs[k].tag.kind = RPC_TAG_UNARY;
				srv->unary_reqs[k].ms = ms;
				k++;
			}
		}
		srv->n_unary_reqs = k;
	}
	grpc_server_start(srv->server);
	srv->started = 1;
	for (int i = 0; i < srv->n_reqs; i++)
		if (request_slot(srv, &srv->slots_pool[i]) < 0)
			return error_set(err, STATUS_INTERNAL, "grpc_server_request_call failed");
	for (size_t i = 0; i < srv->n_unary_reqs; i++)
		if (request_unary(srv, &srv->unary_reqs[i]) < 0)
			return error_set(err, STATUS_INTERNAL,
					 "grpc_server_request_registered_call failed");
	pthread_mutex_lock(&srv->lock);
	while (srv->n_started < srv->n_workers && srv->n_started < srv->max_idle) {
		int rc = start_worker(srv);
		if (rc) {
			pthread_mutex_unlock(&srv->lock);
			return error_set(err, STATUS_INTERNAL, "pthread_create: %s", strerror(rc));
		}
	}
	pthread_mutex_unlock(&srv->lock);
	return 0;
}

int rpc_server_add_fd(struct rpc_server *srv, int fd, struct error *err)
{
	int flags = fcntl(fd, F_GETFL);
	if (flags < 0 || fcntl(fd, F_SETFL, flags | O_NONBLOCK) < 0) {
		int e = errno;
		close(fd);
		return error_set(err, STATUS_INTERNAL, "set O_NONBLOCK: %s", strerror(e));
	}
	/* Pending removal from the accept loop would race with shutdown otherwise. */
	pthread_mutex_lock(&srv->lock);
	if (!srv->started || srv->shut_down) {
		pthread_mutex_unlock(&srv->lock);
		close(fd);
		return error_set(err, STATUS_UNAVAILABLE, "server not running");
	}
	grpc_server_add_channel_from_fd(srv->server, fd, srv->creds);
	pthread_mutex_unlock(&srv->lock);
	return 0;
}

static void drain_cq(grpc_completion_queue *cq)
{
	grpc_completion_queue_shutdown(cq);
	for (;;) {
		grpc_event ev = grpc_completion_queue_next(cq, gpr_inf_future(GPR_CLOCK_REALTIME),
							   NULL);
		if (ev.type == GRPC_QUEUE_SHUTDOWN)
			break;
	}
}

int rpc_server_shutdown(struct rpc_server *srv, int64_t grace_ms)
{
	int ret = 0;

	pthread_mutex_lock(&srv->lock);
	if (srv->shut_down || !srv->server) {
		pthread_mutex_unlock(&srv->lock);
		return 0;
	}
	__atomic_store_n(&srv->shut_down, 1, __ATOMIC_RELEASE);
	pthread_cond_broadcast(&srv->park_cond); /* parked threads go and see the end */
	pthread_mutex_unlock(&srv->lock);

	if (srv->started) {
		char tag;
		grpc_server_shutdown_and_notify(srv->server, srv->shutdown_cq, &tag);
		gpr_timespec until = gpr_time_add(gpr_now(GPR_CLOCK_REALTIME),
						  gpr_time_from_millis(grace_ms, GPR_TIMESPAN));
		grpc_event ev = grpc_completion_queue_pluck(srv->shutdown_cq, &tag, until, NULL);
		if (ev.type == GRPC_QUEUE_TIMEOUT) {
			ret = -1;
			grpc_server_cancel_all_calls(srv->server);
			grpc_completion_queue_pluck(srv->shutdown_cq, &tag,
						    gpr_inf_future(GPR_CLOCK_REALTIME), NULL);
		}
		/*
		 * Every outstanding request has failed by now (the threads take
		 * those events first); shutting the shared queue down then ends
		 * every thread's loop.
		 */
		__atomic_or_fetch(&srv->async, ASYNC_CLOSING, __ATOMIC_ACQ_REL);
		pthread_mutex_lock(&srv->lock);
		while (__atomic_load_n(&srv->async, __ATOMIC_ACQUIRE) != ASYNC_CLOSING)
			pthread_cond_wait(&srv->async_cond, &srv->lock);
		pthread_mutex_unlock(&srv->lock);
		grpc_completion_queue_shutdown(srv->notify_cq);
		for (int i = 0; i < srv->n_workers; i++) {
			if (srv->workers[i].started) {
				pthread_join(srv->workers[i].thread, NULL);
				srv->workers[i].started = 0;
			}
		}
	}
	return ret;
}

void rpc_server_free(struct rpc_server *srv)
{
	if (!srv)
		return;
	if (srv->server) {
		if (srv->started) {
			rpc_server_shutdown(srv, 0);
		} else {
			/* Never started: grpc core still wants a shutdown before destroy. */
			char tag;
			grpc_server_shutdown_and_notify(srv->server, srv->shutdown_cq, &tag);
			grpc_completion_queue_pluck(srv->shutdown_cq, &tag,
						    gpr_inf_future(GPR_CLOCK_REALTIME), NULL);
		}
		grpc_server_destroy(srv->server);
	}
	if (srv->notify_cq) {
		drain_cq(srv->notify_cq);
		grpc_completion_queue_destroy(srv->notify_cq);
	}
	for (int i = 0; srv->slots_pool && i < srv->n_reqs; i++) {
		struct slot *sl = &srv->slots_pool[i];
		if (sl->pending) {
			/* Requested but its failure never taken (threads not started). */
			if (sl->gc)
				grpc_call_unref(sl->gc);
			grpc_call_details_destroy(&sl->details);
			grpc_metadata_array_destroy(&sl->md);
		}
		if (sl->call_cq) {
			drain_cq(sl->call_cq);
			grpc_completion_queue_destroy(sl->call_cq);
		}
	}
	free(srv->slots_pool);
	for (size_t i = 0; srv->unary_reqs && i < srv->n_unary_reqs; i++)
		if (srv->unary_reqs[i].pending)
			unary_req_release(&srv->unary_reqs[i]);
	free(srv->unary_reqs);
	if (srv->shutdown_cq) {
		grpc_completion_queue_shutdown(srv->shutdown_cq);
		grpc_completion_queue_destroy(srv->shutdown_cq);
	}
	if (srv->creds)
		grpc_server_credentials_release(srv->creds);
	for (size_t i = 0; i < srv->n_slots; i++)
		free(srv->slots[i].full);
	free(srv->slots);
	free(srv->services);
	free(srv->workers);
	pthread_mutex_destroy(&srv->lock);
	pthread_cond_destroy(&srv->park_cond);
	pthread_cond_destroy(&srv->async_cond);
	grpc_shutdown();
	free(srv);
}
