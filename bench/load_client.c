/*
 * A closed-loop unary load generator on grpc core: keeps C calls in flight
 * on one channel (re-issuing each as soon as it completes) for a fixed time,
 * and prints req/s and latency percentiles. The same binary drives gitaly
 * and the echo floor, so client overhead cancels out in the ratios.
 *
 * Usage: load_client <target> <method> <concurrency> <seconds> [warmup-s]
 *   target: e.g. unix:/tmp/x.sock; method: /gitaly.ServerService/ServerInfo
 * Output (one line): conc=C calls=N errors=E rps=R p50_us=A p99_us=B
 * Also: load_client <target> <method> count <n>  -- n sequential calls,
 * then prints calls/errors only (used by the RSS benchmark).
 */
#include <grpc/grpc.h>
#include <grpc/grpc_security.h>
#include <grpc/support/alloc.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

struct slot {
	grpc_call *call;
	grpc_metadata_array initial, trailing;
	grpc_byte_buffer *recv;
	grpc_status_code status;
	grpc_slice details;
	double started;
};

static grpc_channel *channel;
static grpc_completion_queue *cq;
static grpc_slice method;

static double now_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec + ts.tv_nsec / 1e9;
}

static void start(struct slot *s)
{
	grpc_op ops[6];
	grpc_slice empty = grpc_empty_slice();
	grpc_byte_buffer *req = grpc_raw_byte_buffer_create(&empty, 0);

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
	ops[5].op = GRPC_OP_RECV_STATUS_ON_CLIENT;
	ops[5].data.recv_status_on_client.status = &s->status;
	ops[5].data.recv_status_on_client.status_details = &s->details;
	ops[5].data.recv_status_on_client.trailing_metadata = &s->trailing;
	s->started = now_s();
	if (grpc_call_start_batch(s->call, ops, 6, s, NULL) != GRPC_CALL_OK)
		abort();
	grpc_byte_buffer_destroy(req);
}

/* Waits for one call to finish; returns its slot, fills ok. */
static struct slot *wait_one(int *ok, double *latency)
{
	for (;;) {
		grpc_event ev = grpc_completion_queue_next(cq, gpr_inf_future(GPR_CLOCK_MONOTONIC),
							   NULL);
		struct slot *s;

		if (ev.type != GRPC_OP_COMPLETE)
			continue;
		s = ev.tag;
		*latency = now_s() - s->started;
		*ok = ev.success && s->status == GRPC_STATUS_OK;
		if (!*ok && s->status != GRPC_STATUS_OK) {
			static int shown;
			if (!shown++) {
				char *d = grpc_slice_to_c_string(s->details);
				fprintf(stderr, "call failed: status %d: %s\n", s->status, d);
				gpr_free(d);
			}
		}
		if (s->recv)
			grpc_byte_buffer_destroy(s->recv);
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

int main(int argc, char **argv)
{
	grpc_channel_credentials *creds;
	grpc_arg arg;
	grpc_channel_args args;
	struct slot *slots;
	double *lat = NULL;
	size_t nlat = 0, caplat = 0;
	long errors = 0, calls = 0;
	int conc, i, ok;
	double t_end, t_begin, l;

	if (argc < 5) {
		fprintf(stderr, "usage: %s <target> <method> <concurrency>|count <seconds>|<n>\n",
			argv[0]);
		return 2;
	}
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

	if (strcmp(argv[3], "count") == 0) {
		long n = atol(argv[4]);
		struct slot s;

		for (calls = 0; calls < n; calls++) {
			start(&s);
			wait_one(&ok, &l);
			if (!ok)
				errors++;
		}
		printf("calls=%ld errors=%ld\n", calls, errors);
		return errors ? 1 : 0;
	}

	conc = atoi(argv[3]);
	if (conc < 1 || conc > 1024)
		return 2;
	slots = calloc(conc, sizeof(*slots));
	/* warm-up: connect and run a few calls */
	{
		double warm = argc > 5 ? atof(argv[5]) : 0.5;
		double t = now_s() + warm;

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
	t_end = t_begin + atof(argv[4]);
	for (i = 0; i < conc; i++)
		start(&slots[i]);
	for (;;) {
		struct slot *s = wait_one(&ok, &l);

		calls++;
		if (!ok)
			errors++;
		if (nlat == caplat) {
			caplat = caplat ? caplat * 2 : 65536;
			lat = realloc(lat, caplat * sizeof(*lat));
			if (!lat)
				abort();
		}
		lat[nlat++] = l;
		if (now_s() < t_end) {
			start(s);
		} else if (--conc == 0) {
			break;
		}
	}
	{
		double elapsed = now_s() - t_begin;

		qsort(lat, nlat, sizeof(*lat), cmp_double);
		printf("conc=%s calls=%ld errors=%ld rps=%.0f p50_us=%.1f p99_us=%.1f\n", argv[3],
		       calls, errors, calls / elapsed, lat[nlat / 2] * 1e6,
		       lat[(size_t)(nlat * 0.99)] * 1e6);
	}
	return errors ? 1 : 0;
}
