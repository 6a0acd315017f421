/*
 * The floor for unary-call latency: a grpc-core server that answers any
 * method with an empty message and status OK, doing no other work. It is
 * the reference the ServerInfo benchmark divides gitaly's numbers by, so both
 * servers use the same transport (grpc core over a unix socket) and the same
 * client. Usage: echo_server <unix-socket-path> [threads]
 * Runs until SIGTERM/SIGINT.
 */
#include <dlfcn.h>
#include <grpc/grpc.h>
#include <grpc/grpc_security.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

struct echo_call {
	grpc_call *call;
	grpc_call_details details;
	grpc_metadata_array md;
	grpc_byte_buffer *recv;
	int cancelled;
	int stage; /* 0: waiting for a call, 1: answering */
};

static grpc_server *server;
static grpc_completion_queue *cq;
static volatile sig_atomic_t stopping;

static void request_one(void)
{
	struct echo_call *c = calloc(1, sizeof(*c));

	if (!c)
		abort();
	grpc_call_details_init(&c->details);
	grpc_metadata_array_init(&c->md);
	if (grpc_server_request_call(server, &c->call, &c->details, &c->md, cq, cq, c) !=
	    GRPC_CALL_OK)
		abort();
}

static void answer(struct echo_call *c)
{
	grpc_op ops[5];
	grpc_slice empty = grpc_empty_slice();
	grpc_byte_buffer *reply = grpc_raw_byte_buffer_create(&empty, 0);

	memset(ops, 0, sizeof(ops));
	ops[0].op = GRPC_OP_SEND_INITIAL_METADATA;
	ops[1].op = GRPC_OP_RECV_MESSAGE;
	ops[1].data.recv_message.recv_message = &c->recv;
	ops[2].op = GRPC_OP_SEND_MESSAGE;
	ops[2].data.send_message.send_message = reply;
	ops[3].op = GRPC_OP_SEND_STATUS_FROM_SERVER;
	ops[3].data.send_status_from_server.status = GRPC_STATUS_OK;
	ops[4].op = GRPC_OP_RECV_CLOSE_ON_SERVER;
	ops[4].data.recv_close_on_server.cancelled = &c->cancelled;
	c->stage = 1;
	if (grpc_call_start_batch(c->call, ops, 5, c, NULL) != GRPC_CALL_OK)
		abort();
	/* grpc core keeps its own reference to what it sends */
	grpc_byte_buffer_destroy(reply);
}

static void finish(struct echo_call *c)
{
	if (c->recv)
		grpc_byte_buffer_destroy(c->recv);
	grpc_call_details_destroy(&c->details);
	grpc_metadata_array_destroy(&c->md);
	grpc_call_unref(c->call);
	free(c);
}

static void *worker(void *arg)
{
	(void)arg;
	for (;;) {
		grpc_event ev = grpc_completion_queue_next(cq, gpr_inf_future(GPR_CLOCK_MONOTONIC),
							   NULL);
		struct echo_call *c;

		if (ev.type == GRPC_QUEUE_SHUTDOWN)
			break;
		if (ev.type != GRPC_OP_COMPLETE || !ev.tag)
			continue;
		c = ev.tag;
		if (c->stage == 0) {
			if (!ev.success) { /* server shutting down */
				grpc_call_details_destroy(&c->details);
				grpc_metadata_array_destroy(&c->md);
				free(c);
				continue;
			}
			if (!stopping)
				request_one();
			answer(c);
		} else {
			finish(c);
		}
	}
	return NULL;
}

/*
 * gitaly switches off abseil's mutex deadlock detector (on in Debian's
 * abseil build) at startup; the floor does the same so that the comparison
 * is between the two servers, not about that debugging aid.
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
			set_mode(0); /* kIgnore */
			return;
		}
	}
	fprintf(stderr, "echo_server: abseil deadlock detection left as it is\n");
}

static void on_signal(int sig)
{
	(void)sig;
	stopping = 1;
}

int main(int argc, char **argv)
{
	char addr[512];
	int nthreads = argc > 2 ? atoi(argv[2]) : 4;
	pthread_t th[64];
	grpc_server_credentials *creds;
	int i;

	if (argc < 2) {
		fprintf(stderr, "usage: %s <socket> [threads]\n", argv[0]);
		return 2;
	}
	if (nthreads < 1 || nthreads > 64)
		nthreads = 4;
	snprintf(addr, sizeof(addr), "unix:%s", argv[1]);
	unlink(argv[1]);
	signal(SIGTERM, on_signal);
	signal(SIGINT, on_signal);

	absl_deadlock_detection_off();
	grpc_init();
	cq = grpc_completion_queue_create_for_next(NULL);
	server = grpc_server_create(NULL, NULL);
	grpc_server_register_completion_queue(server, cq, NULL);
	creds = grpc_insecure_server_credentials_create();
	if (!grpc_server_add_http2_port(server, addr, creds)) {
		fprintf(stderr, "cannot listen on %s\n", addr);
		return 1;
	}
	grpc_server_credentials_release(creds);
	grpc_server_start(server);
	/* enough outstanding requests for the highest concurrency measured */
	for (i = 0; i < 128; i++)
		request_one();
	for (i = 0; i < nthreads; i++)
		pthread_create(&th[i], NULL, worker, NULL);
	fprintf(stderr, "echo_server listening on %s\n", addr);
	while (!stopping)
		pause();
	/* A benchmark fixture: no graceful drain needed, just go. */
	unlink(argv[1]);
	_exit(0);
}
