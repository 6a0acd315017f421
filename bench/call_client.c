/*
 * The browsing benchmark's client (bench/browse.sh): bench/load_client.c
 * with a real request body, server-streaming calls, and a mode that times
 * spawning a command, so the RPC and the git command it replaces are timed
 * by the same program the same way (responses and command output are read
 * in full and discarded, never decoded).
 *
 * Usage:
 *   call_client <target> <method> <reqfile> <conc> <seconds> [stream]
 *       closed loop: conc calls in flight for the given time (after 0.5 s of
 *       warm-up); each call sends the bytes of reqfile (a serialized request
 *       message, "-" for an empty one) and reads every response message.
 *   call_client <target> <method> <reqfile> count <n> [stream]
 *       n sequential calls (one warm-up call first).
 *   call_client spawn <n> <program> [args...]
 *       n sequential runs of program (one warm-up run first), its stdout
 *       read through a pipe until EOF, then waited for.
 * Output, one line:
 *   conc=C calls=N errors=E rps=R p50_us=A p99_us=B msgs=M bytes=S
 * where msgs and bytes are the response messages and payload bytes (or
 * output bytes) of the last call. "stream" selects the streaming protocol
 * (one receive per message); without it a call is one grpc batch as in
 * load_client.c, fit for unary methods only.
 */
#include <errno.h>
#include <fcntl.h>
#include <grpc/byte_buffer.h>
#include <grpc/grpc.h>
#include <grpc/grpc_security.h>
#include <grpc/support/alloc.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

extern char **environ;

struct slot {
	grpc_call *call;
	grpc_metadata_array initial, trailing;
	grpc_byte_buffer *recv;
	grpc_status_code status;
	grpc_slice details;
	double started;
	int stage; /* 0: first batch out, 1: reading messages, 2: status */
	long msgs, bytes;
};

static grpc_channel *channel;
static grpc_completion_queue *cq;
static grpc_slice method;
static char *body;
static size_t body_len;
static int streaming;

static double now_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec + ts.tv_nsec / 1e9;
}

static void batch(struct slot *s, grpc_op *ops, size_t n)
{
	if (grpc_call_start_batch(s->call, ops, n, s, NULL) != GRPC_CALL_OK)
		abort();
}

static void start(struct slot *s)
{
	grpc_op ops[6];
	grpc_slice payload = grpc_slice_from_copied_buffer(body, body_len);
	grpc_byte_buffer *req = grpc_raw_byte_buffer_create(&payload, 1);
	size_t n;

	grpc_slice_unref(payload);
	memset(s, 0, sizeof(*s));
	grpc_metadata_array_init(&s->initial);
	grpc_metadata_array_init(&s->trailing);
	s->call = grpc_channel_create_call(channel, NULL, GRPC_PROPAGATE_DEFAULTS, cq, method,
					   NULL, gpr_inf_future(GPR_CLOCK_REALTIME), NULL);
	memset(ops, 0, sizeof(ops));
	ops[0].op = GRPC_OP_SEND_INITIAL_METADATA;
	ops[1].op = GRPC_OP_SEND_MESSAGE;
	ops[1].data.send_message.send_message = req;
	ops[2].op = GRPC_OP_SEND_CLOSE_FROM_CLIENT;
	ops[3].op = GRPC_OP_RECV_INITIAL_METADATA;
	ops[3].data.recv_initial_metadata.recv_initial_metadata = &s->initial;
	ops[4].op = GRPC_OP_RECV_MESSAGE;
	ops[4].data.recv_message.recv_message = &s->recv;
	n = 5;
	if (!streaming) {
		ops[5].op = GRPC_OP_RECV_STATUS_ON_CLIENT;
		ops[5].data.recv_status_on_client.status = &s->status;
		ops[5].data.recv_status_on_client.status_details = &s->details;
		ops[5].data.recv_status_on_client.trailing_metadata = &s->trailing;
		n = 6;
		s->stage = 2;
	}
	s->started = now_s();
	batch(s, ops, n);
	grpc_byte_buffer_destroy(req);
}

/* Takes the message just received, if any; returns 1 when there was one. */
static int take_message(struct slot *s)
{
	if (!s->recv)
		return 0;
	s->msgs++;
	s->bytes += (long)grpc_byte_buffer_length(s->recv);
	grpc_byte_buffer_destroy(s->recv);
	s->recv = NULL;
	return 1;
}

/* Waits for one call to finish; returns its slot, fills ok and latency. */
static struct slot *wait_one(int *ok, double *latency)
{
	for (;;) {
		grpc_event ev = grpc_completion_queue_next(cq, gpr_inf_future(GPR_CLOCK_MONOTONIC),
							   NULL);
		struct slot *s;
		grpc_op op;

		if (ev.type != GRPC_OP_COMPLETE)
			continue;
		s = ev.tag;
		memset(&op, 0, sizeof(op));
		if (s->stage < 2) {
			if (take_message(s) && ev.success) {
				s->stage = 1;
				op.op = GRPC_OP_RECV_MESSAGE;
				op.data.recv_message.recv_message = &s->recv;
			} else {
				s->stage = 2;
				op.op = GRPC_OP_RECV_STATUS_ON_CLIENT;
				op.data.recv_status_on_client.status = &s->status;
				op.data.recv_status_on_client.status_details = &s->details;
				op.data.recv_status_on_client.trailing_metadata = &s->trailing;
			}
			batch(s, &op, 1);
			continue;
		}
		take_message(s);
		*latency = now_s() - s->started;
		*ok = ev.success && s->status == GRPC_STATUS_OK;
		if (!*ok) {
			static int shown;
			if (!shown++) {
				char *d = grpc_slice_to_c_string(s->details);
				fprintf(stderr, "call failed: status %d: %s\n", s->status, d);
				gpr_free(d);
			}
		}
		grpc_slice_unref(s->details);
		grpc_metadata_array_destroy(&s->initial);
		grpc_metadata_array_destroy(&s->trailing);
		grpc_call_unref(s->call);
		return s;
	}
}

static int cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;

	return x < y ? -1 : x > y;
}

struct lats {
	double *v;
	size_t n, cap;
};

static void lats_add(struct lats *l, double x)
{
	if (l->n == l->cap) {
		l->cap = l->cap ? l->cap * 2 : 4096;
		l->v = realloc(l->v, l->cap * sizeof(*l->v));
		if (!l->v)
			abort();
	}
	l->v[l->n++] = x;
}

static void report(const char *conc, struct lats *l, long errors, double elapsed, long msgs,
		   long bytes)
{
	if (l->n == 0) {
		printf("conc=%s calls=0 errors=%ld\n", conc, errors);
		return;
	}
	qsort(l->v, l->n, sizeof(*l->v), cmp_double);
	printf("conc=%s calls=%zu errors=%ld rps=%.0f p50_us=%.1f p99_us=%.1f msgs=%ld bytes=%ld\n",
	       conc, l->n, errors, l->n / elapsed, l->v[l->n / 2] * 1e6,
	       l->v[(size_t)(l->n * 0.99)] * 1e6, msgs, bytes);
}

/* Runs argv once, reading its stdout to EOF; returns bytes read or -1. */
static long spawn_once(char **argv)
{
	posix_spawn_file_actions_t fa;
	int p[2];
	pid_t pid;
	long total = 0;
	int status;
	char buf[65536];

	if (pipe(p) < 0)
		return -1;
	posix_spawn_file_actions_init(&fa);
	posix_spawn_file_actions_adddup2(&fa, p[1], 1);
	posix_spawn_file_actions_addclose(&fa, p[0]);
	posix_spawn_file_actions_addclose(&fa, p[1]);
	posix_spawn_file_actions_addopen(&fa, 0, "/dev/null", O_RDONLY, 0);
	if (posix_spawnp(&pid, argv[0], &fa, NULL, argv, environ) != 0) {
		posix_spawn_file_actions_destroy(&fa);
		close(p[0]);
		close(p[1]);
		return -1;
	}
	posix_spawn_file_actions_destroy(&fa);
	close(p[1]);
	for (;;) {
		ssize_t n = read(p[0], buf, sizeof(buf));

		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			break;
		total += n;
	}
	close(p[0]);
	while (waitpid(pid, &status, 0) < 0 && errno == EINTR)
		;
	return WIFEXITED(status) && WEXITSTATUS(status) == 0 ? total : -1;
}

static int spawn_mode(long n, char **argv)
{
	struct lats l = { 0 };
	long errors = 0, bytes = 0;
	double t0 = now_s(), elapsed;

	if (spawn_once(argv) < 0) {
		fprintf(stderr, "command failed: %s\n", argv[0]);
		return 1;
	}
	t0 = now_s();
	for (long i = 0; i < n; i++) {
		double t = now_s();

		bytes = spawn_once(argv);
		if (bytes < 0)
			errors++;
		lats_add(&l, now_s() - t);
	}
	elapsed = now_s() - t0;
	report("1", &l, errors, elapsed, 0, bytes);
	return errors ? 1 : 0;
}

static int read_body(const char *path)
{
	FILE *f;
	long len;

	if (strcmp(path, "-") == 0)
		return 0;
	f = fopen(path, "rb");
	if (!f || fseek(f, 0, SEEK_END) < 0 || (len = ftell(f)) < 0 || fseek(f, 0, SEEK_SET) < 0) {
		perror(path);
		return -1;
	}
	body = malloc(len ? (size_t)len : 1);
	if (!body || fread(body, 1, (size_t)len, f) != (size_t)len) {
		perror(path);
		return -1;
	}
	body_len = (size_t)len;
	fclose(f);
	return 0;
}

int main(int argc, char **argv)
{
	grpc_channel_credentials *creds;
	grpc_arg arg;
	grpc_channel_args args;
	struct slot *slots;
	struct lats lat = { 0 };
	long errors = 0, msgs = 0, bytes = 0;
	int conc, i, ok;
	double t_end, t_begin, l;

	if (argc >= 4 && strcmp(argv[1], "spawn") == 0)
		return spawn_mode(atol(argv[2]), argv + 3);
	if (argc < 6) {
		fprintf(stderr,
			"usage: %s <target> <method> <reqfile> <conc>|count <seconds>|<n> [stream]\n"
			"       %s spawn <n> <program> [args...]\n",
			argv[0], argv[0]);
		return 2;
	}
	if (read_body(argv[3]) < 0)
		return 2;
	streaming = argc > 6 && strcmp(argv[6], "stream") == 0;
	grpc_init();
	creds = grpc_insecure_credentials_create();
	arg.type = GRPC_ARG_INTEGER;
	arg.key = (char *)GRPC_ARG_USE_LOCAL_SUBCHANNEL_POOL;
	arg.value.integer = 1;
	args.num_args = 1;
	args.args = &arg;
	channel = grpc_channel_create(argv[1], creds, &args);
	grpc_channel_credentials_release(creds);
	cq = grpc_completion_queue_create_for_next(NULL);
	method = grpc_slice_from_static_string(argv[2]);

	if (strcmp(argv[4], "count") == 0) {
		long n = atol(argv[5]);
		struct slot s;
		double t0;

		start(&s); /* warm-up: connects */
		wait_one(&ok, &l);
		t0 = now_s();
		for (long k = 0; k < n; k++) {
			start(&s);
			wait_one(&ok, &l);
			if (!ok)
				errors++;
			lats_add(&lat, l);
			msgs = s.msgs;
			bytes = s.bytes;
		}
		report("1", &lat, errors, now_s() - t0, msgs, bytes);
		return errors ? 1 : 0;
	}

	conc = atoi(argv[4]);
	if (conc < 1 || conc > 1024)
		return 2;
	slots = calloc(conc, sizeof(*slots));
	if (!slots)
		abort();
	{
		double t = now_s() + 0.5;

		for (i = 0; i < conc; i++)
			start(&slots[i]);
		while (now_s() < t) {
			struct slot *s = wait_one(&ok, &l);
			start(s);
		}
		for (i = 0; i < conc; i++)
			wait_one(&ok, &l);
	}
	t_begin = now_s();
	t_end = t_begin + atof(argv[5]);
	for (i = 0; i < conc; i++)
		start(&slots[i]);
	for (;;) {
		struct slot *s = wait_one(&ok, &l);

		if (!ok)
			errors++;
		lats_add(&lat, l);
		msgs = s->msgs;
		bytes = s->bytes;
		if (now_s() < t_end) {
			start(s);
		} else if (--conc == 0) {
			break;
		}
	}
	report(argv[4], &lat, errors, now_s() - t_begin, msgs, bytes);
	return errors ? 1 : 0;
}
