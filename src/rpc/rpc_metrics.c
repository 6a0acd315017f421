/*
 * The RPC metrics upstream exports: go-grpc-prometheus's grpc_server_*
 * families (same names, help texts, labels and pre-registration),
 * gitaly_connections_total from the listeners, and the request-info
 * handler's gitaly_service_client_requests_total. Families are created on
 * first use so the histogram buckets can be configured before that.
 */
#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "base/metrics.h"
#include "rpc/accesslog.h"
#include "rpc/rpc_metrics.h"

static pthread_once_t families_once = PTHREAD_ONCE_INIT;
static pthread_mutex_t buckets_lock = PTHREAD_MUTEX_INITIALIZER;
static struct metric_family *started, *handled, *received, *sent, *connections, *client_requests;
static struct metric_family *histogram; /* read with atomics: may appear later */
static int histogram_enabled = 1;        /* read with atomics */
static double *cfg_buckets;              /* NULL: the defaults */
static size_t cfg_n_buckets;

static const char *const rpc_labels[] = { "grpc_type", "grpc_service", "grpc_method" };
static const char *const handled_labels[] = { "grpc_type", "grpc_service", "grpc_method",
					      "grpc_code" };
static const char histogram_help[] =
	"Histogram of response latency (seconds) of gRPC that had been application-level "
	"handled by the server.";

static struct metric_family *make_histogram(void)
{
	const double *b = cfg_buckets ? cfg_buckets : metrics_default_latency_buckets;
	size_t n = cfg_buckets ? cfg_n_buckets : metrics_default_latency_buckets_len;

	return metrics_histogram("grpc_server_handling_seconds", histogram_help, rpc_labels, 3, b,
				 n);
}

static void families_init(void)
{
	static const char *const conn_labels[] = { "type" };
	static const char *const client_labels[] = {
		"client_name", "grpc_service", "grpc_method",   "call_site",    "auth_version",
		"grpc_code",   "deadline_type", "method_operation", "method_scope",
	};

	started = metrics_counter("grpc_server_started_total",
				  "Total number of RPCs started on the server.", rpc_labels, 3);
	handled = metrics_counter(
		"grpc_server_handled_total",
		"Total number of RPCs completed on the server, regardless of success or failure.",
		handled_labels, 4);
	received = metrics_counter("grpc_server_msg_received_total",
				   "Total number of RPC stream messages received on the server.",
				   rpc_labels, 3);
	sent = metrics_counter("grpc_server_msg_sent_total",
			       "Total number of gRPC stream messages sent by the server.", rpc_labels,
			       3);
	connections = metrics_counter("gitaly_connections_total",
				      "Total number of connections to Gitaly", conn_labels, 1);
	client_requests = metrics_counter(
		"gitaly_service_client_requests_total",
		"Counter of client requests received by client, call_site, auth version, "
		"response code and deadline_type",
		client_labels, 9);
	pthread_mutex_lock(&buckets_lock);
	if (histogram_enabled)
		__atomic_store_n(&histogram, make_histogram(), __ATOMIC_RELEASE);
	pthread_mutex_unlock(&buckets_lock);
}

static void ensure_families(void)
{
	pthread_once(&families_once, families_init);
}

static struct metric_family *live_histogram(void)
{
	if (!__atomic_load_n(&histogram_enabled, __ATOMIC_ACQUIRE))
		return NULL;
	return __atomic_load_n(&histogram, __ATOMIC_ACQUIRE);
}

void rpc_metrics_set_buckets(const double *buckets, size_t n)
{
	double *copy = NULL;
	int initialised;

	if (n && buckets) {
		copy = calloc(n, sizeof(double));
		if (!copy)
			return;
		memcpy(copy, buckets, n * sizeof(double));
	} else {
		n = 0;
	}
	pthread_mutex_lock(&buckets_lock);
	free(cfg_buckets);
	cfg_buckets = copy;
	cfg_n_buckets = n;
	/* the once-flag is done when started exists; families_init takes this lock too */
	initialised = __atomic_load_n(&started, __ATOMIC_ACQUIRE) != NULL;
	__atomic_store_n(&histogram_enabled, n > 0, __ATOMIC_RELEASE);
	if (initialised && n > 0) {
		struct metric_family *h = __atomic_load_n(&histogram, __ATOMIC_ACQUIRE);
		if (h)
			metrics_histogram_set_buckets(h, copy, n);
		else
			__atomic_store_n(&histogram, make_histogram(), __ATOMIC_RELEASE);
	}
	pthread_mutex_unlock(&buckets_lock);
}

void rpc_metrics_preregister(const struct rpc_service *svc)
{
	struct metric_family *h;

	if (!svc)
		return;
	ensure_families();
	h = live_histogram();
	for (size_t i = 0; i < svc->n_methods; i++) {
		const struct rpc_method *m = &svc->methods[i];
		const char *values[4] = { accesslog_method_type_name(m->type), svc->name, m->name,
					  NULL };
		metrics_touch(started, values);
		metrics_touch(received, values);
		metrics_touch(sent, values);
		if (h)
			metrics_touch(h, values);
		for (int code = 0; code <= STATUS_UNAUTHENTICATED; code++) {
			values[3] = status_code_name(code);
			metrics_touch(handled, values);
		}
	}
}

/*
 * Per method, the series its events go to, so that a call does not hash
 * its label values five times: an open-addressed table keyed by the
 * caller's key (a registered method's descriptor), entries created once
 * and never freed. Each ref is used under its family's lock.
 */
#define REF_SLOTS 1024 /* power of two */
#define REF_PROBES 16

struct method_refs {
	const void *key;
	struct metrics_ref started, received, sent, hist;
	struct metrics_ref handled[STATUS_UNAUTHENTICATED + 1];
};

static struct method_refs *ref_table[REF_SLOTS]; /* atomics */

/* key's entry, created on first use; NULL for no key or a full table. */
static struct method_refs *refs_for(const void *key)
{
	uint64_t h;

	if (!key)
		return NULL;
	h = ((uint64_t)(uintptr_t)key >> 4) * 0x9e3779b97f4a7c15ULL;
	for (size_t i = 0; i < REF_PROBES; i++) {
		struct method_refs **slot = &ref_table[(h + i) & (REF_SLOTS - 1)];
		struct method_refs *e = __atomic_load_n(slot, __ATOMIC_ACQUIRE);
		if (!e) {
			struct method_refs *n = calloc(1, sizeof(*n)), *expected = NULL;
			if (!n)
				return NULL;
			n->key = key;
			if (__atomic_compare_exchange_n(slot, &expected, n, 0, __ATOMIC_ACQ_REL,
							__ATOMIC_ACQUIRE))
				return n;
			free(n);
			e = expected;
		}
		if (e->key == key)
			return e;
	}
	return NULL;
}

static void add(struct metric_family *f, struct metrics_ref *ref, const char *const *values)
{
	if (ref)
		metrics_add_ref(f, ref, values, 1);
	else
		metrics_add(f, values, 1);
}

void rpc_metrics_started(const void *key, const char *service, const char *method,
			 enum rpc_method_type type)
{
	const char *values[3] = { accesslog_method_type_name(type), service, method };
	struct method_refs *r;

	ensure_families();
	r = refs_for(key);
	add(started, r ? &r->started : NULL, values);
}

void rpc_metrics_msg_received(const void *key, const char *service, const char *method,
			      enum rpc_method_type type)
{
	const char *values[3] = { accesslog_method_type_name(type), service, method };
	struct method_refs *r;

	ensure_families();
	r = refs_for(key);
	add(received, r ? &r->received : NULL, values);
}

void rpc_metrics_msg_sent(const void *key, const char *service, const char *method,
			  enum rpc_method_type type)
{
	const char *values[3] = { accesslog_method_type_name(type), service, method };
	struct method_refs *r;

	ensure_families();
	r = refs_for(key);
	add(sent, r ? &r->sent : NULL, values);
}

void rpc_metrics_handled(const void *key, const char *service, const char *method,
			 enum rpc_method_type type, int code, double seconds)
{
	const char *values[4] = { accesslog_method_type_name(type), service, method,
				  status_code_name(code) };
	struct metric_family *h;
	struct method_refs *r;

	ensure_families();
	r = refs_for(key);
	add(handled, r && code >= 0 && code <= STATUS_UNAUTHENTICATED ? &r->handled[code] : NULL,
	    values);
	h = live_histogram();
	if (!h)
		return;
	if (r)
		metrics_observe_ref(h, &r->hist, values, seconds);
	else
		metrics_observe(h, values, seconds);
}

void rpc_metrics_connection(const char *type)
{
	const char *values[1] = { type };

	ensure_families();
	metrics_add(connections, values, 1);
}

static const char *or_unknown(const char *s)
{
	return s && *s ? s : "unknown";
}

void rpc_metrics_client_request(const struct accesslog_entry *e)
{
	const char *deadline_type, *op = NULL, *scope = NULL;
	const char *values[9];

	if (!e)
		return;
	ensure_families();
	if (!e->deadline_unix_ms)
		deadline_type = "none";
	else
		deadline_type = or_unknown(e->deadline_type);
	if (e->op != RPC_OP_UNKNOWN) {
		op = accesslog_op_name(e->op);
		scope = accesslog_scope_name(e->scope);
	}
	values[0] = or_unknown(e->client_name);
	values[1] = or_unknown(e->service);
	values[2] = or_unknown(e->method);
	values[3] = or_unknown(e->call_site);
	values[4] = or_unknown(e->auth_version);
	values[5] = status_code_name(e->code);
	values[6] = deadline_type;
	values[7] = or_unknown(op);
	values[8] = or_unknown(scope);
	metrics_add(client_requests, values, 1);
}
