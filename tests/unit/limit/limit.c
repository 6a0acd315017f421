/*
 * Tests for src/limit/limit.c: configuration to per-RPC limiters (static,
 * adaptive, duplicates, the implicit ReplicateRepository limit, inactive
 * rate limits), and what a refused call gets: upstream's code and message,
 * the gitaly.LimitError detail, the limit.* log fields, and the metrics.
 */
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "base/metrics.h"
#include "config/config.h"
#include "limit/limit.h"

#include "errors.pb-c.h"

#define REPL "/gitaly.RepositoryService/ReplicateRepository"

static int64_t now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void log_into(void *arg, const char *key, json_t *value)
{
	json_object_set_new(arg, key, value);
}

static const char *const mlabels[] = { "system", "grpc_service", "grpc_method" };
static const char *const dlabels[] = { "system", "grpc_service", "grpc_method", "reason" };

static double gauge(const char *name, const char *svc, const char *meth)
{
	const char *lv[3] = { "gitaly", svc, meth };
	return metrics_get(metrics_gauge(name, "", mlabels, 3), lv);
}

static double dropped(const char *svc, const char *meth, const char *reason)
{
	const char *lv[4] = { "gitaly", svc, meth, reason };
	return metrics_get(metrics_counter("gitaly_requests_dropped_total", "", dlabels, 4), lv);
}

/* Checks err's single detail is LimitError{msg, retry_after: 0s}. */
static void check_limit_detail(const struct error *err, const char *msg)
{
	Gitaly__LimitError *le;

	assert_int_equal(err->n_details, 1);
	assert_string_equal(err->details[0].type_url, "type.googleapis.com/gitaly.LimitError");
	le = gitaly__limit_error__unpack(NULL, err->details[0].len, err->details[0].value);
	assert_non_null(le);
	assert_string_equal(le->error_message, msg);
	assert_non_null(le->retry_after);
	assert_int_equal(le->retry_after->seconds, 0);
	assert_int_equal(le->retry_after->nanos, 0);
	gitaly__limit_error__free_unpacked(le, NULL);
}

static void config_with(struct config *cfg, struct config_concurrency *c, size_t nc,
			struct config_rate_limiting *r, size_t nr)
{
	memset(cfg, 0, sizeof(*cfg));
	cfg->concurrency = c;
	cfg->n_concurrency = nc;
	cfg->rate_limiting = r;
	cfg->n_rate_limiting = nr;
	cfg->adaptive_limiting.cpu_throttled_threshold = 0.5;
	cfg->adaptive_limiting.memory_threshold = 0.9;
}

struct enter_arg {
	struct limit_set *s;
	const char *method, *key;
	struct limit_guard *g;
	int rc;
	json_t *log;
};

static void *enter_main(void *p)
{
	struct enter_arg *a = p;
	struct error err = ERROR_INIT;
	a->rc = limit_set_enter(a->s, a->method, a->key, NULL, log_into, a->log, &a->g, &err);
	error_release(&err);
	return NULL;
}

static void test_not_limited(void **state)
{
	(void)state;
	struct config_concurrency c[] = { { .rpc = "/gitaly.A/Held", .max_per_repo = 1 } };
	struct config cfg;
	struct error err = ERROR_INIT;
	struct limit_set *s;
	struct limit_guard *g1, *g2;

	config_with(&cfg, c, 1, NULL, 0);
	s = limit_set_new(&cfg, &err);
	assert_non_null(s);
	/* unconfigured method */
	assert_int_equal(limit_set_enter(s, "/gitaly.A/Other", "r", NULL, NULL, NULL, &g1, &err), 0);
	assert_null(g1);
	/* no repository: no limit, even past max_per_repo */
	assert_int_equal(limit_set_enter(s, "/gitaly.A/Held", "", NULL, NULL, NULL, &g1, &err), 0);
	assert_int_equal(limit_set_enter(s, "/gitaly.A/Held", NULL, NULL, NULL, NULL, &g2, &err), 0);
	assert_null(g1);
	assert_null(g2);
	assert_false(error_is_set(&err));
	limit_set_free(s);
}

static void test_queue_full(void **state)
{
	(void)state;
	struct config_concurrency c[] = {
		{ .rpc = "/gitaly.Svc/Clone", .max_per_repo = 1, .max_queue_size = 1 },
	};
	struct config cfg;
	struct error err = ERROR_INIT;
	struct limit_set *s;
	struct limit_guard *g1, *g3 = NULL;
	json_t *log1 = json_object(), *log3 = json_object();
	struct enter_arg a = { 0 };
	pthread_t th;
	double dropped0 = dropped("gitaly.Svc", "Clone", "max_size");

	config_with(&cfg, c, 1, NULL, 0);
	s = limit_set_new(&cfg, &err);
	assert_non_null(s);
	assert_true(gauge("gitaly_concurrency_limiting_in_progress", "gitaly.Svc", "Clone") == 0);
	assert_int_equal(limit_set_enter(s, "/gitaly.Svc/Clone", "repo.git", NULL, log_into, log1,
					 &g1, &err), 0);
	assert_non_null(g1);
	assert_string_equal(json_string_value(json_object_get(log1, "limit.limiting_type")), "per-rpc");
	assert_string_equal(json_string_value(json_object_get(log1, "limit.limiting_key")), "repo.git");
	assert_int_equal(json_integer_value(json_object_get(log1, "limit.concurrency_queue_length")), 1);
	assert_int_equal(json_integer_value(json_object_get(log1, "limit.concurrency_in_progress")), 1);
	/* acquired at once (a few ms at most, under ASan) */
	assert_true(json_integer_value(json_object_get(log1, "limit.concurrency_queue_ms")) < 500);
	assert_null(json_object_get(log1, "limit.concurrency_dropped"));
	assert_true(gauge("gitaly_concurrency_limiting_in_progress", "gitaly.Svc", "Clone") == 1);

	a.s = s;
	a.method = "/gitaly.Svc/Clone";
	a.key = "repo.git";
	a.log = json_object();
	pthread_create(&th, NULL, enter_main, &a);
	for (int i = 0; i < 5000 && conc_limiter_waiting(limit_set_concurrency(s, "/gitaly.Svc/Clone"),
							    "repo.git") != 1; i++)
		usleep(1000);
	assert_true(gauge("gitaly_concurrency_limiting_queued", "gitaly.Svc", "Clone") == 1);

	assert_int_equal(limit_set_enter(s, "/gitaly.Svc/Clone", "repo.git", NULL, log_into, log3,
					 &g3, &err), -1);
	assert_null(g3);
	assert_int_equal(err.code, STATUS_RESOURCE_EXHAUSTED);
	assert_string_equal(err.message, "maximum queue size reached");
	check_limit_detail(&err, "maximum queue size reached");
	assert_string_equal(json_string_value(json_object_get(log3, "limit.concurrency_dropped")),
			    "max_size");
	assert_string_equal(json_string_value(json_object_get(log3, "limit.limiting_key")), "repo.git");
	assert_int_equal(json_integer_value(json_object_get(log3, "limit.concurrency_queue_length")), 1);
	assert_int_equal(json_integer_value(json_object_get(log3, "limit.concurrency_in_progress")), 1);
	assert_true(dropped("gitaly.Svc", "Clone", "max_size") == dropped0 + 1);
	error_release(&err);

	usleep(20000);
	limit_set_leave(g1);
	pthread_join(th, NULL);
	assert_int_equal(a.rc, 0);
	assert_non_null(a.g);
	assert_true(json_integer_value(json_object_get(a.log, "limit.concurrency_queue_ms")) >= 20);
	assert_true(gauge("gitaly_concurrency_limiting_queued", "gitaly.Svc", "Clone") == 0);
	assert_true(gauge("gitaly_concurrency_limiting_in_progress", "gitaly.Svc", "Clone") == 1);
	limit_set_leave(a.g);
	assert_true(gauge("gitaly_concurrency_limiting_in_progress", "gitaly.Svc", "Clone") == 0);
	json_decref(a.log);
	json_decref(log1);
	json_decref(log3);
	limit_set_free(s);
}

static int always(void *arg)
{
	(void)arg;
	return 1;
}

static void test_queue_wait_deadline_cancel(void **state)
{
	(void)state;
	struct config_concurrency c[] = {
		{ .rpc = "/gitaly.Svc/Wait", .max_per_repo = 1, .max_queue_wait_ms = 30 },
	};
	struct config cfg;
	struct error err = ERROR_INIT;
	struct limit_set *s;
	struct limit_guard *g1, *g2;
	struct conc_wait w = { 0 };
	json_t *log = json_object();

	config_with(&cfg, c, 1, NULL, 0);
	s = limit_set_new(&cfg, &err);
	assert_int_equal(limit_set_enter(s, "/gitaly.Svc/Wait", "r", NULL, NULL, NULL, &g1, &err), 0);

	assert_int_equal(limit_set_enter(s, "/gitaly.Svc/Wait", "r", NULL, log_into, log, &g2, &err), -1);
	assert_int_equal(err.code, STATUS_RESOURCE_EXHAUSTED);
	assert_string_equal(err.message, "maximum time in concurrency queue reached");
	check_limit_detail(&err, "maximum time in concurrency queue reached");
	assert_string_equal(json_string_value(json_object_get(log, "limit.concurrency_dropped")),
			    "max_time");
	assert_true(json_integer_value(json_object_get(log, "limit.concurrency_queue_ms")) >= 30);
	assert_true(dropped("gitaly.Svc", "Wait", "max_time") >= 1);
	error_release(&err);

	/* The caller's own deadline first: DeadlineExceeded, same message. */
	w.deadline_ms = now_ms() + 5;
	assert_int_equal(limit_set_enter(s, "/gitaly.Svc/Wait", "r", &w, NULL, NULL, &g2, &err), -1);
	assert_int_equal(err.code, STATUS_DEADLINE_EXCEEDED);
	assert_string_equal(err.message, "maximum time in concurrency queue reached");
	error_release(&err);

	/* Cancelled while queued. */
	w.deadline_ms = INT64_MAX;
	w.cancelled = always;
	json_object_clear(log);
	assert_int_equal(limit_set_enter(s, "/gitaly.Svc/Wait", "r", &w, log_into, log, &g2, &err), -1);
	assert_int_equal(err.code, STATUS_CANCELLED);
	assert_string_equal(err.message, "unexpected error when dequeueing request: context canceled");
	assert_int_equal(err.n_details, 0);
	assert_string_equal(json_string_value(json_object_get(log, "limit.concurrency_dropped")),
			    "other");
	assert_true(dropped("gitaly.Svc", "Wait", "other") >= 1);
	error_release(&err);

	limit_set_leave(g1);
	json_decref(log);
	limit_set_free(s);
}

static void test_replicate_repository_default(void **state)
{
	(void)state;
	struct config_concurrency c[] = { { .rpc = REPL, .max_per_repo = 5 } };
	struct config cfg;
	struct error err = ERROR_INIT;
	struct limit_set *s;

	config_with(&cfg, NULL, 0, NULL, 0);
	s = limit_set_new(&cfg, &err);
	assert_non_null(limit_set_concurrency(s, REPL));
	assert_int_equal(conc_limiter_limit(limit_set_concurrency(s, REPL)), 1);
	assert_null(limit_set_concurrency(s, "/gitaly.RepositoryService/RepositorySize"));
	limit_set_free(s);

	config_with(&cfg, c, 1, NULL, 0);
	s = limit_set_new(&cfg, &err);
	assert_int_equal(conc_limiter_limit(limit_set_concurrency(s, REPL)), 5);
	limit_set_free(s);
}

static void test_duplicates_and_adaptive(void **state)
{
	(void)state;
	struct config_concurrency c[] = {
		{ .rpc = "/gitaly.Svc/Dup", .max_per_repo = 3 },
		{ .rpc = "/gitaly.Svc/Dup", .max_per_repo = 7 },
		{ .rpc = "/gitaly.Svc/Adaptive", .max_per_repo = 100, .adaptive = 1,
		  .initial_limit = 4, .min_limit = 2, .max_limit = 9 },
		{ .rpc = "/gitaly.Svc/Zero", .max_per_repo = 0 },
	};
	struct config cfg;
	struct error err = ERROR_INIT;
	struct limit_set *s;
	struct limit_guard *g[3];

	config_with(&cfg, c, 4, NULL, 0);
	s = limit_set_new(&cfg, &err);
	assert_int_equal(conc_limiter_limit(limit_set_concurrency(s, "/gitaly.Svc/Dup")), 7);
	assert_int_equal(conc_limiter_limit(limit_set_concurrency(s, "/gitaly.Svc/Adaptive")), 4);
	/* max_per_repo = 0: unlimited */
	for (int i = 0; i < 3; i++) {
		assert_int_equal(limit_set_enter(s, "/gitaly.Svc/Zero", "r", NULL, NULL, NULL, &g[i],
						 &err), 0);
		assert_null(g[i]);
	}
	/* The calculator starts (on host figures here) and keeps the limit in range. */
	assert_int_equal(limit_set_start(s, &err), 0);
	int v = conc_limiter_limit(limit_set_concurrency(s, "/gitaly.Svc/Adaptive"));
	assert_true(v >= 2 && v <= 9);
	{
		const char *lv[1] = { "perRPC/gitaly.Svc/Adaptive" };
		const char *ln[1] = { "limit" };
		assert_true(metrics_get(metrics_gauge("gitaly_concurrency_limiting_current_limit", "",
						      ln, 1), lv) == 4);
	}
	limit_set_free(s);
}

static void test_rate(void **state)
{
	(void)state;
	struct config_concurrency c[] = { { .rpc = "/gitaly.Svc/Both", .max_per_repo = 1 } };
	struct config_rate_limiting r[] = {
		{ .rpc = "/gitaly.Svc/Rate", .interval_ms = 3600000, .burst = 1 },
		{ .rpc = "/gitaly.Svc/Both", .interval_ms = 3600000, .burst = 1 },
		{ .rpc = "/gitaly.Svc/Inactive", .interval_ms = 0, .burst = 5 },
	};
	struct config cfg;
	struct error err = ERROR_INIT;
	struct limit_set *s;
	struct limit_guard *g;

	config_with(&cfg, c, 1, r, 3);
	s = limit_set_new(&cfg, &err);
	assert_true(dropped("gitaly.Svc", "Rate", "rate") == 0);
	assert_int_equal(limit_set_enter(s, "/gitaly.Svc/Rate", "a", NULL, NULL, NULL, &g, &err), 0);
	assert_null(g); /* a rate check holds nothing */
	assert_int_equal(limit_set_enter(s, "/gitaly.Svc/Rate", "a", NULL, NULL, NULL, &g, &err), -1);
	assert_int_equal(err.code, STATUS_RESOURCE_EXHAUSTED);
	assert_string_equal(err.message, "rate limit reached");
	check_limit_detail(&err, "rate limit reached");
	error_release(&err);
	assert_true(dropped("gitaly.Svc", "Rate", "rate") == 1);
	assert_int_equal(limit_set_enter(s, "/gitaly.Svc/Rate", "b", NULL, NULL, NULL, &g, &err), 0);
	limit_set_leave(g);

	/* Refused by the rate after the concurrency slot: the slot is given back. */
	assert_int_equal(limit_set_enter(s, "/gitaly.Svc/Both", "a", NULL, NULL, NULL, &g, &err), 0);
	limit_set_leave(g);
	assert_int_equal(limit_set_enter(s, "/gitaly.Svc/Both", "a", NULL, NULL, NULL, &g, &err), -1);
	error_release(&err);
	assert_int_equal(conc_limiter_in_progress(limit_set_concurrency(s, "/gitaly.Svc/Both"), "a"), 0);
	assert_true(gauge("gitaly_concurrency_limiting_in_progress", "gitaly.Svc", "Both") == 0);

	/* interval 0: inactive */
	for (int i = 0; i < 10; i++) {
		assert_int_equal(limit_set_enter(s, "/gitaly.Svc/Inactive", "a", NULL, NULL, NULL, &g,
						 &err), 0);
		assert_null(g);
	}
	assert_int_equal(limit_set_start(s, &err), 0); /* pruner thread */
	limit_set_free(s);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_not_limited),
		cmocka_unit_test(test_queue_full),
		cmocka_unit_test(test_queue_wait_deadline_cancel),
		cmocka_unit_test(test_replicate_repository_default),
		cmocka_unit_test(test_duplicates_and_adaptive),
		cmocka_unit_test(test_rate),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
