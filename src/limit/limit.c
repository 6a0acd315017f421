/*
 * Configuration to limiters, and the per-call glue. A limit_set maps full
 * method names to their limiters; the map is built once and only read while
 * serving, so lookups take no lock. The monitor callbacks of a call turn
 * the concurrency limiter's events into upstream's metrics and limit.* log
 * fields. limit_call_* adapt an rpc_call (first request, deadline, cancel
 * check, access-log fields) to limit_set_enter/leave.
 */
#include "limit/limit.h"

#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "base/log.h"
#include "base/metrics.h"
#include "config/config.h"
#include "limit/adaptive.h"
#include "limit/keymap.h"
#include "limit/rate.h"
#include "limit/watcher.h"
#include "rpc/call.h"
#include "rpc/status.h"

#include "errors.pb-c.h"

#define REPLICATE_METHOD "/gitaly.RepositoryService/ReplicateRepository"
#define PRUNE_PERIOD_MS (5 * 60 * 1000)
#define SYSTEM_LABEL "gitaly"

#define MSG_MAX_SIZE "maximum queue size reached"
#define MSG_MAX_TIME "maximum time in concurrency queue reached"
#define MSG_RATE "rate limit reached"

struct method_limits {
	char *method;
	char *service_name, *method_name; /* metric labels */
	struct adaptive_limit *limit;     /* with conc */
	struct conc_limiter *conc;
	struct rate_limiter *rate;
};

struct limit_set {
	struct keymap methods; /* full method -> struct method_limits */
	struct adaptive_limit **adaptive;
	size_t n_adaptive;
	struct adaptive_calc *calc;
	const struct config *cfg;

	pthread_t pruner;
	int pruner_started, stopping;
	pthread_mutex_t lock;
	pthread_cond_t wake;

	struct metric_family *in_progress, *queued, *acquiring, *dropped;
};

struct limit_guard {
	struct method_limits *ml;
	struct limit_set *set;
	struct conc_slot *slot;
	limit_log_fn log;
	void *log_arg;
};

static const char *const method_labels[] = { "system", "grpc_service", "grpc_method" };
static const char *const dropped_labels[] = { "system", "grpc_service", "grpc_method", "reason" };

static int64_t mono_us(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

/* upstream's splitMethodName: "/svc/method" -> svc, method, else unknown. */
static int split_method(const char *full, char **svc, char **method)
{
	const char *s = full[0] == '/' ? full + 1 : full;
	const char *slash = strchr(s, '/');

	if (!slash) {
		*svc = strdup("unknown");
		*method = strdup("unknown");
	} else {
		*svc = strndup(s, (size_t)(slash - s));
		*method = strdup(slash + 1);
	}
	return (*svc && *method) ? 0 : -1;
}

static void method_limits_free(struct method_limits *ml)
{
	if (!ml)
		return;
	conc_limiter_free(ml->conc);
	adaptive_limit_free(ml->limit);
	rate_limiter_free(ml->rate);
	free(ml->method);
	free(ml->service_name);
	free(ml->method_name);
	free(ml);
}

static struct method_limits *get_method(struct limit_set *s, const char *rpc)
{
	struct method_limits *ml = keymap_get(&s->methods, rpc);

	if (ml)
		return ml;
	ml = calloc(1, sizeof(*ml));
	if (!ml)
		return NULL;
	ml->method = strdup(rpc);
	if (!ml->method || split_method(rpc, &ml->service_name, &ml->method_name) < 0 ||
	    keymap_put(&s->methods, rpc, ml) < 0) {
		method_limits_free(ml);
		return NULL;
	}
	return ml;
}

static void on_limit_update(void *arg, int value)
{
	conc_limiter_resize(arg, value);
}

/* Installs a concurrency limiter on ml, replacing an earlier one. */
static int set_concurrency(struct limit_set *s, struct method_limits *ml, struct adaptive_limit *lim,
			   int64_t max_queue_size, int64_t max_queue_wait_ms)
{
	struct conc_limiter *c =
		conc_limiter_new(adaptive_limit_current(lim), max_queue_size, max_queue_wait_ms);
	const char *lv[3] = { SYSTEM_LABEL, ml->service_name, ml->method_name };

	if (!c || adaptive_limit_on_update(lim, on_limit_update, c) < 0) {
		conc_limiter_free(c);
		adaptive_limit_free(lim);
		return -1;
	}
	conc_limiter_free(ml->conc);
	adaptive_limit_free(ml->limit);
	ml->conc = c;
	ml->limit = lim;
	metrics_touch(s->in_progress, lv);
	metrics_touch(s->queued, lv);
	metrics_touch(s->acquiring, lv);
	return 0;
}

/* Adaptive limits kept by other modules (limit_register_adaptive). */
#define MAX_EXTERNAL_ADAPTIVE 4
static pthread_mutex_t external_mu = PTHREAD_MUTEX_INITIALIZER;
static struct adaptive_limit *external[MAX_EXTERNAL_ADAPTIVE];
static size_t n_external;

int limit_register_adaptive(struct adaptive_limit *l)
{
	int ret = -1;

	pthread_mutex_lock(&external_mu);
	if (n_external < MAX_EXTERNAL_ADAPTIVE) {
		external[n_external++] = l;
		ret = 0;
	}
	pthread_mutex_unlock(&external_mu);
	return ret;
}

static int clamp_int(int64_t v)
{
	return v > INT32_MAX ? INT32_MAX : v < INT32_MIN ? INT32_MIN : (int)v;
}

static int build(struct limit_set *s, const struct config *cfg, struct error *err)
{
	const double *buckets = cfg->prometheus.grpc_latency_buckets;
	size_t n_buckets = cfg->prometheus.n_grpc_latency_buckets;

	if (!buckets || !n_buckets) {
		buckets = metrics_default_latency_buckets;
		n_buckets = metrics_default_latency_buckets_len;
	}
	s->in_progress = metrics_gauge("gitaly_concurrency_limiting_in_progress",
				       "Gauge of number of concurrent in-progress calls",
				       method_labels, 3);
	s->queued = metrics_gauge("gitaly_concurrency_limiting_queued",
				  "Gauge of number of queued calls", method_labels, 3);
	s->acquiring = metrics_histogram("gitaly_concurrency_limiting_acquiring_seconds",
					 "Histogram of time calls are rate limited (in seconds)",
					 method_labels, 3, buckets, n_buckets);
	s->dropped = metrics_counter("gitaly_requests_dropped_total",
				     "Number of requests dropped from the queue", dropped_labels, 4);

	s->adaptive = calloc(cfg->n_concurrency + 1 + MAX_EXTERNAL_ADAPTIVE, sizeof(*s->adaptive));
	if (!s->adaptive)
		goto oom;
	pthread_mutex_lock(&external_mu);
	for (size_t i = 0; i < n_external; i++)
		s->adaptive[s->n_adaptive++] = external[i];
	pthread_mutex_unlock(&external_mu);
	for (size_t i = 0; i < cfg->n_concurrency; i++) {
		const struct config_concurrency *c = &cfg->concurrency[i];
		struct method_limits *ml;
		struct adaptive_limit *lim;
		char name[512];

		if (!c->rpc)
			continue;
		snprintf(name, sizeof(name), "perRPC%s", c->rpc);
		if (c->adaptive)
			lim = adaptive_limit_new(name, clamp_int(c->initial_limit), clamp_int(c->min_limit),
						 clamp_int(c->max_limit), ADAPTIVE_BACKOFF_FACTOR);
		else
			lim = adaptive_limit_new(name, clamp_int(c->max_per_repo), clamp_int(c->max_per_repo),
						 clamp_int(c->max_per_repo), ADAPTIVE_BACKOFF_FACTOR);
		ml = get_method(s, c->rpc);
		if (!lim || !ml) {
			adaptive_limit_free(lim);
			goto oom;
		}
		/* A later entry for the same RPC replaces the earlier one. */
		for (size_t k = 0; k < s->n_adaptive; k++)
			if (s->adaptive[k] == ml->limit)
				s->adaptive[k] = s->adaptive[--s->n_adaptive];
		if (set_concurrency(s, ml, lim, c->max_queue_size, c->max_queue_wait_ms) < 0)
			goto oom;
		if (c->adaptive)
			s->adaptive[s->n_adaptive++] = lim;
	}
	{
		struct method_limits *ml = get_method(s, REPLICATE_METHOD);
		if (!ml)
			goto oom;
		if (!ml->conc) {
			struct adaptive_limit *lim = adaptive_limit_new("staticLimit", 1, 1, 1,
									ADAPTIVE_BACKOFF_FACTOR);
			if (!lim || set_concurrency(s, ml, lim, 0, 0) < 0)
				goto oom;
		}
	}
	for (size_t i = 0; i < cfg->n_rate_limiting; i++) {
		const struct config_rate_limiting *r = &cfg->rate_limiting[i];
		struct method_limits *ml;

		if (!r->rpc || r->burst <= 0 || r->interval_ms <= 0)
			continue;
		ml = get_method(s, r->rpc);
		if (!ml)
			goto oom;
		rate_limiter_free(ml->rate);
		ml->rate = rate_limiter_new(r->interval_ms, r->burst);
		if (!ml->rate)
			goto oom;
		{
			const char *lv[4] = { SYSTEM_LABEL, ml->service_name, ml->method_name, "rate" };
			metrics_touch(s->dropped, lv);
		}
	}
	return 0;
oom:
	return error_set(err, STATUS_INTERNAL, "limiter setup: out of memory");
}

struct limit_set *limit_set_new(const struct config *cfg, struct error *err)
{
	struct limit_set *s = calloc(1, sizeof(*s));

	if (!s) {
		error_set(err, STATUS_INTERNAL, "limiter setup: out of memory");
		return NULL;
	}
	pthread_mutex_init(&s->lock, NULL);
	{
		pthread_condattr_t attr;
		pthread_condattr_init(&attr);
		pthread_condattr_setclock(&attr, CLOCK_MONOTONIC);
		pthread_cond_init(&s->wake, &attr);
		pthread_condattr_destroy(&attr);
	}
	s->cfg = cfg;
	if (build(s, cfg, err) < 0) {
		limit_set_free(s);
		return NULL;
	}
	return s;
}

static int prune_one(const char *key, void *value, void *arg)
{
	struct method_limits *ml = value;
	(void)key;
	if (ml->rate)
		rate_limiter_prune(ml->rate, *(int64_t *)arg);
	return 0;
}

static void *pruner_main(void *arg)
{
	struct limit_set *s = arg;

	pthread_mutex_lock(&s->lock);
	while (!s->stopping) {
		struct timespec ts;
		clock_gettime(CLOCK_MONOTONIC, &ts);
		ts.tv_sec += PRUNE_PERIOD_MS / 1000;
		while (!s->stopping && pthread_cond_timedwait(&s->wake, &s->lock, &ts) == 0)
			;
		if (s->stopping)
			break;
		int64_t now = mono_us();
		keymap_filter(&s->methods, prune_one, &now);
	}
	pthread_mutex_unlock(&s->lock);
	return NULL;
}

static int has_rate(const char *key, void *value, void *arg)
{
	const struct method_limits *ml = value;
	(void)key;
	if (ml->rate)
		*(int *)arg = 1;
	return 0;
}

static int is_dir(const char *p)
{
	struct stat st;
	return stat(p, &st) == 0 && S_ISDIR(st.st_mode);
}

/*
 * The watchers: the parent cgroup gitaly-<pid> under the configured
 * hierarchy when cgroups are enabled and it exists, else the host.
 */
static int make_watchers(const struct config *cfg, struct adaptive_watcher **w)
{
	struct watcher_source cpu, mem;
	char v2[4096], v1cpu[4096], v1mem[4096], probe[4096];
	const char *mount = cfg->cgroups.mountpoint ? cfg->cgroups.mountpoint : "/sys/fs/cgroup";
	const char *root = cfg->cgroups.hierarchy_root ? cfg->cgroups.hierarchy_root : "gitaly";
	int pid = (int)getpid();

	memset(&cpu, 0, sizeof(cpu));
	memset(&mem, 0, sizeof(mem));
	cpu.proc_root = mem.proc_root = "/proc";
	if (cfg->cgroups.repositories.count > 0) {
		snprintf(probe, sizeof(probe), "%s/cgroup.controllers", mount);
		snprintf(v2, sizeof(v2), "%s/%s/gitaly-%d", mount, root, pid);
		snprintf(v1cpu, sizeof(v1cpu), "%s/cpu/%s/gitaly-%d", mount, root, pid);
		snprintf(v1mem, sizeof(v1mem), "%s/memory/%s/gitaly-%d", mount, root, pid);
		if (access(probe, F_OK) == 0 && is_dir(v2)) {
			cpu.cgroup_dir = mem.cgroup_dir = v2;
		} else if (is_dir(v1cpu) && is_dir(v1mem)) {
			cpu.cgroup_dir = v1cpu;
			mem.cgroup_dir = v1mem;
			cpu.cgroup_v1 = mem.cgroup_v1 = 1;
		} else {
			log_msg(LOG_WARN, "adaptive limiting: parent cgroup of %s/%s not found, "
					  "watching host pressure instead", mount, root);
		}
	}
	w[0] = watcher_cpu_new(&cpu, cfg->adaptive_limiting.cpu_throttled_threshold);
	w[1] = watcher_memory_new(&mem, cfg->adaptive_limiting.memory_threshold);
	if (!w[0] || !w[1]) {
		if (w[0])
			w[0]->free(w[0]);
		if (w[1])
			w[1]->free(w[1]);
		return -1;
	}
	return 0;
}

int limit_set_start(struct limit_set *s, struct error *err)
{
	int any_rate = 0;

	keymap_filter(&s->methods, has_rate, &any_rate);
	if (any_rate && !s->pruner_started) {
		if (pthread_create(&s->pruner, NULL, pruner_main, s) != 0)
			return error_set(err, STATUS_INTERNAL, "limiter: cannot start the pruner");
		s->pruner_started = 1;
	}
	if (s->n_adaptive > 0 && !s->calc) {
		struct adaptive_watcher *w[2];
		if (make_watchers(s->cfg, w) < 0)
			return error_set(err, STATUS_INTERNAL, "limiter setup: out of memory");
		s->calc = adaptive_calc_new(s->adaptive, s->n_adaptive, w, 2, 0);
		if (!s->calc) {
			w[0]->free(w[0]);
			w[1]->free(w[1]);
			return error_set(err, STATUS_INTERNAL, "limiter setup: out of memory");
		}
		if (adaptive_calc_start(s->calc, err) < 0) {
			/* upstream only warns */
			log_msg(LOG_WARN, "error starting adaptive limiter calculator: %s",
				err->message ? err->message : "");
			error_release(err);
		}
	}
	return 0;
}

static int free_method(const char *key, void *value, void *arg)
{
	(void)key;
	(void)arg;
	method_limits_free(value);
	return 1;
}

void limit_set_free(struct limit_set *s)
{
	if (!s)
		return;
	pthread_mutex_lock(&s->lock);
	s->stopping = 1;
	pthread_cond_broadcast(&s->wake);
	pthread_mutex_unlock(&s->lock);
	if (s->pruner_started)
		pthread_join(s->pruner, NULL);
	adaptive_calc_free(s->calc);
	keymap_filter(&s->methods, free_method, NULL);
	keymap_release(&s->methods);
	free(s->adaptive);
	pthread_cond_destroy(&s->wake);
	pthread_mutex_destroy(&s->lock);
	free(s);
}

struct conc_limiter *limit_set_concurrency(struct limit_set *s, const char *full_method)
{
	struct method_limits *ml = keymap_get(&s->methods, full_method);
	return ml ? ml->conc : NULL;
}

/* --- monitor: metrics and log fields of one call ----------------------- */

static void logf_str(struct limit_guard *g, const char *k, const char *v)
{
	if (g->log)
		g->log(g->log_arg, k, json_string(v));
}

static void logf_int(struct limit_guard *g, const char *k, int64_t v)
{
	if (g->log)
		g->log(g->log_arg, k, json_integer(v));
}

static void mon_queued(void *arg, const char *key, int queue_length)
{
	struct limit_guard *g = arg;
	const char *lv[3] = { SYSTEM_LABEL, g->ml->service_name, g->ml->method_name };
	logf_str(g, "limit.limiting_type", "per-rpc");
	logf_str(g, "limit.limiting_key", key);
	logf_int(g, "limit.concurrency_queue_length", queue_length);
	metrics_add(g->set->queued, lv, 1);
}

static void mon_dequeued(void *arg)
{
	struct limit_guard *g = arg;
	const char *lv[3] = { SYSTEM_LABEL, g->ml->service_name, g->ml->method_name };
	metrics_add(g->set->queued, lv, -1);
}

static void mon_enter(void *arg, int in_progress, int64_t acquire_us)
{
	struct limit_guard *g = arg;
	const char *lv[3] = { SYSTEM_LABEL, g->ml->service_name, g->ml->method_name };
	metrics_add(g->set->in_progress, lv, 1);
	metrics_observe(g->set->acquiring, lv, (double)acquire_us / 1e6);
	logf_int(g, "limit.concurrency_queue_ms", acquire_us / 1000);
	logf_int(g, "limit.concurrency_in_progress", in_progress);
}

static void mon_exit(void *arg)
{
	struct limit_guard *g = arg;
	const char *lv[3] = { SYSTEM_LABEL, g->ml->service_name, g->ml->method_name };
	metrics_add(g->set->in_progress, lv, -1);
}

static void mon_dropped(void *arg, const char *key, int queue_length, int in_progress,
			int64_t acquire_us, const char *reason)
{
	struct limit_guard *g = arg;
	const char *lv[4] = { SYSTEM_LABEL, g->ml->service_name, g->ml->method_name, reason };
	logf_str(g, "limit.limiting_type", "per-rpc");
	logf_str(g, "limit.limiting_key", key);
	logf_int(g, "limit.concurrency_queue_length", queue_length);
	logf_int(g, "limit.concurrency_in_progress", in_progress);
	logf_str(g, "limit.concurrency_dropped", reason);
	logf_int(g, "limit.concurrency_queue_ms", acquire_us / 1000);
	metrics_add(g->set->dropped, lv, 1);
}

static const struct conc_monitor monitor = {
	.queued = mon_queued,
	.dequeued = mon_dequeued,
	.enter = mon_enter,
	.exit = mon_exit,
	.dropped = mon_dropped,
};

/* ResourceExhausted (or code) with message and the LimitError detail. */
static int limit_error(struct error *err, int code, const char *msg)
{
	Gitaly__LimitError le = GITALY__LIMIT_ERROR__INIT;
	Google__Protobuf__Duration zero = GOOGLE__PROTOBUF__DURATION__INIT;

	error_set(err, code, "%s", msg);
	le.error_message = (char *)msg;
	le.retry_after = &zero;
	rpc_error_add_detail(err, &le.base);
	return -1;
}

int limit_set_enter(struct limit_set *s, const char *full_method, const char *key,
		    const struct conc_wait *w, limit_log_fn log, void *log_arg,
		    struct limit_guard **out, struct error *err)
{
	struct method_limits *ml;
	struct limit_guard *g = NULL;
	int ret = -1, rc;

	*out = NULL;
	if (!s || !full_method || !key || !*key)
		return 0;
	ml = keymap_get(&s->methods, full_method);
	if (!ml)
		return 0;
	g = calloc(1, sizeof(*g));
	if (!g)
		return error_set(err, STATUS_RESOURCE_EXHAUSTED, "limiter: out of memory");
	g->ml = ml;
	g->set = s;
	g->log = log;
	g->log_arg = log_arg;

	if (ml->conc) {
		rc = conc_acquire(ml->conc, key, w, &monitor, g, &g->slot);
		switch (rc) {
		case CONC_OK:
			break;
		case CONC_MAX_SIZE:
			limit_error(err, STATUS_RESOURCE_EXHAUSTED, MSG_MAX_SIZE);
			goto out;
		case CONC_MAX_TIME:
			/* Past the caller's own deadline the status says so (statushandler). */
			limit_error(err,
				    w && w->deadline_ms != INT64_MAX &&
						    mono_us() / 1000 >= w->deadline_ms
					    ? STATUS_DEADLINE_EXCEEDED
					    : STATUS_RESOURCE_EXHAUSTED,
				    MSG_MAX_TIME);
			goto out;
		case CONC_CANCELLED:
			error_set(err, STATUS_CANCELLED,
				  "unexpected error when dequeueing request: context canceled");
			goto out;
		default:
			error_set(err, STATUS_RESOURCE_EXHAUSTED, "limiter: out of memory");
			goto out;
		}
	}
	if (ml->rate && rate_limiter_allow(ml->rate, key, mono_us()) == 0) {
		const char *lv[4] = { SYSTEM_LABEL, ml->service_name, ml->method_name, "rate" };
		metrics_add(s->dropped, lv, 1);
		limit_error(err, STATUS_RESOURCE_EXHAUSTED, MSG_RATE);
		conc_release(g->slot);
		g->slot = NULL;
		goto out;
	}
	if (g->slot) { /* else nothing to give back */
		*out = g;
		g = NULL;
	}
	ret = 0;
out:
	free(g);
	return ret;
}

void limit_set_leave(struct limit_guard *g)
{
	if (!g)
		return;
	conc_release(g->slot);
	free(g);
}

/* --- process-wide wiring for the gRPC runtime --------------------------- */

static struct limit_set *installed;

int limit_setup(const struct config *cfg, struct error *err)
{
	struct limit_set *s = limit_set_new(cfg, err);

	if (!s)
		return -1;
	if (limit_set_start(s, err) < 0) {
		limit_set_free(s);
		return -1;
	}
	__atomic_store_n(&installed, s, __ATOMIC_RELEASE);
	return 0;
}

void limit_teardown(void)
{
	struct limit_set *s = __atomic_exchange_n(&installed, NULL, __ATOMIC_ACQ_REL);
	limit_set_free(s);
}

/* upstream's requestinfo: GetRepository().GetRelativePath() of the request */
static const char *request_repo_path(const ProtobufCMessage *req)
{
	const ProtobufCFieldDescriptor *f, *pf;
	const ProtobufCMessage *repo;
	const char *path;

	if (!req)
		return NULL;
	f = protobuf_c_message_descriptor_get_field_by_name(req->descriptor, "repository");
	if (!f || f->type != PROTOBUF_C_TYPE_MESSAGE || f->label == PROTOBUF_C_LABEL_REPEATED ||
	    !f->descriptor || strcmp(((const ProtobufCMessageDescriptor *)f->descriptor)->name,
				     "gitaly.Repository"))
		return NULL;
	repo = *(ProtobufCMessage *const *)((const char *)req + f->offset);
	if (!repo)
		return NULL;
	pf = protobuf_c_message_descriptor_get_field_by_name(repo->descriptor, "relative_path");
	if (!pf || pf->type != PROTOBUF_C_TYPE_STRING)
		return NULL;
	path = *(char *const *)((const char *)repo + pf->offset);
	return path;
}

static int call_cancelled(void *arg)
{
	return rpc_call_cancelled(arg);
}

static void call_log(void *arg, const char *key, json_t *value)
{
	rpc_call_log_field(arg, key, value);
}

int limit_call_enter(struct rpc_call *call, struct limit_guard **out, struct error *err)
{
	struct limit_set *s = __atomic_load_n(&installed, __ATOMIC_ACQUIRE);
	struct conc_wait w;

	*out = NULL;
	/* most calls: no limiter installed or none for this method */
	if (!s || !keymap_get(&s->methods, rpc_call_method_name(call)))
		return 0;
	memset(&w, 0, sizeof(w));
	w.deadline_ms = rpc_call_deadline_ms(call);
	w.cancelled = call_cancelled;
	w.arg = call;
	return limit_set_enter(s, rpc_call_method_name(call), request_repo_path(rpc_call_request(call)),
			       &w, call_log, call, out, err);
}

void limit_call_leave(struct limit_guard *g)
{
	limit_set_leave(g);
}
