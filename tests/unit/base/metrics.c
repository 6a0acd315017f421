/*
 * Tests for src/base/metrics.c: the rendered text is compared byte for byte
 * with what Go's client_golang prints for the same families (sorting,
 * escaping, histogram layout, number formatting), and concurrent updates
 * from several threads must add up exactly.
 */
#include <math.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>

#include <cmocka.h>

#include "base/metrics.h"

static void check_float(double v, const char *want)
{
	char buf[48];

	metrics_format_float(v, buf, sizeof(buf));
	if (strcmp(buf, want)) {
		print_error("format %.17g: got %s want %s\n", v, buf, want);
		fail();
	}
}

static void test_float_format(void **state)
{
	(void)state;
	check_float(0, "0");
	check_float(-0.0, "0");
	check_float(1, "1");
	check_float(-1, "-1");
	check_float(0.005, "0.005");
	check_float(0.001, "0.001");
	check_float(0.0001, "0.0001");
	check_float(0.00001, "1e-05");
	check_float(1.5e-7, "1.5e-07");
	check_float(2.5, "2.5");
	check_float(-2.5, "-2.5");
	check_float(10, "10");
	check_float(1500, "1500");
	check_float(100000, "100000");
	check_float(999999, "999999");
	check_float(1e6, "1e+06");
	check_float(1234567, "1.234567e+06");
	check_float(123456.5, "123456.5");
	check_float(0.1 + 0.2, "0.30000000000000004");
	check_float(1e21, "1e+21");
	check_float(1e100, "1e+100");
	check_float(1.7e9, "1.7e+09");
	check_float(INFINITY, "+Inf");
	check_float(-INFINITY, "-Inf");
	check_float(NAN, "NaN");
}

static char *render(void)
{
	struct strbuf sb = STRBUF_INIT;

	assert_int_equal(metrics_render(&sb), 0);
	return strbuf_detach(&sb, NULL);
}

static void test_counter_layout(void **state)
{
	const char *labels[] = { "zeta", "alpha" };
	struct metric_family *f;
	char *text;

	(void)state;
	metrics_reset();
	f = metrics_counter("t1_requests_total", "Requests \\ seen\nso far", labels, 2);
	assert_non_null(f);
	/* the same name and shape returns the same family */
	assert_ptr_equal(f, metrics_counter("t1_requests_total", "other help", labels, 2));
	/* another shape is refused */
	assert_null(metrics_gauge("t1_requests_total", "x", labels, 2));

	metrics_add(f, (const char *[]){ "b", "x\"y\\z\nw" }, 1);
	metrics_add(f, (const char *[]){ "a", "2" }, 2.5);
	metrics_add(f, (const char *[]){ "a", "1" }, 1);
	metrics_add(f, (const char *[]){ "a", "1" }, 1);
	metrics_add(f, (const char *[]){ "a", "1" }, -5); /* ignored on counters */
	metrics_touch(f, (const char *[]){ "c", NULL });

	text = render();
	assert_non_null(strstr(text,
			       "# HELP t1_requests_total Requests \\\\ seen\\nso far\n"
			       "# TYPE t1_requests_total counter\n"
			       "t1_requests_total{alpha=\"\",zeta=\"c\"} 0\n"
			       "t1_requests_total{alpha=\"1\",zeta=\"a\"} 2\n"
			       "t1_requests_total{alpha=\"2\",zeta=\"a\"} 2.5\n"
			       "t1_requests_total{alpha=\"x\\\"y\\\\z\\nw\",zeta=\"b\"} 1\n"));
	assert_true(metrics_get(f, (const char *[]){ "a", "1" }) == 2);
	assert_true(metrics_get(f, (const char *[]){ "nope", "1" }) == 0);
	free(text);
}

static void test_families_sorted_and_empty_hidden(void **state)
{
	const char *l[] = { "kind" };
	struct metric_family *g, *empty, *plain;
	char *text, *a, *b, *c;

	(void)state;
	metrics_reset();
	g = metrics_gauge("t2_b_gauge", "A gauge", l, 1);
	empty = metrics_counter("t2_c_never", "Never used", l, 1);
	plain = metrics_counter("t2_a_plain_total", "No labels", NULL, 0);
	assert_non_null(empty);
	metrics_set(g, (const char *[]){ "x" }, 7);
	metrics_add(g, (const char *[]){ "x" }, -2);
	text = render();
	a = strstr(text, "# HELP t2_a_plain_total No labels\n# TYPE t2_a_plain_total counter\n"
			 "t2_a_plain_total 0\n");
	b = strstr(text, "# HELP t2_b_gauge A gauge\n# TYPE t2_b_gauge gauge\n"
			 "t2_b_gauge{kind=\"x\"} 5\n");
	c = strstr(text, "t2_c_never");
	assert_non_null(a);
	assert_non_null(b);
	assert_true(a < b);
	assert_null(c);
	free(text);

	metrics_add(plain, NULL, 3);
	text = render();
	assert_non_null(strstr(text, "\nt2_a_plain_total 3\n"));
	free(text);
}

static void test_histogram_layout(void **state)
{
	const char *l[] = { "op" };
	const double buckets[] = { 0.005, 1, 10 };
	struct metric_family *h;
	char *text;

	(void)state;
	metrics_reset();
	h = metrics_histogram("t3_seconds", "Latency", l, 1, buckets, 3);
	metrics_observe(h, (const char *[]){ "get" }, 0.005); /* le is inclusive */
	metrics_observe(h, (const char *[]){ "get" }, 0.5);
	metrics_observe(h, (const char *[]){ "get" }, 2);
	metrics_observe(h, (const char *[]){ "get" }, 100);
	metrics_touch(h, (const char *[]){ "put" });
	text = render();
	assert_non_null(strstr(text, "# HELP t3_seconds Latency\n"
				     "# TYPE t3_seconds histogram\n"
				     "t3_seconds_bucket{op=\"get\",le=\"0.005\"} 1\n"
				     "t3_seconds_bucket{op=\"get\",le=\"1\"} 2\n"
				     "t3_seconds_bucket{op=\"get\",le=\"10\"} 3\n"
				     "t3_seconds_bucket{op=\"get\",le=\"+Inf\"} 4\n"
				     "t3_seconds_sum{op=\"get\"} 102.505\n"
				     "t3_seconds_count{op=\"get\"} 4\n"
				     "t3_seconds_bucket{op=\"put\",le=\"0.005\"} 0\n"
				     "t3_seconds_bucket{op=\"put\",le=\"1\"} 0\n"
				     "t3_seconds_bucket{op=\"put\",le=\"10\"} 0\n"
				     "t3_seconds_bucket{op=\"put\",le=\"+Inf\"} 0\n"
				     "t3_seconds_sum{op=\"put\"} 0\n"
				     "t3_seconds_count{op=\"put\"} 0\n"));
	assert_true(metrics_get(h, (const char *[]){ "get" }) == 4);
	free(text);

	/* new buckets: series stay, observations cleared */
	metrics_histogram_set_buckets(h, metrics_default_latency_buckets,
				      metrics_default_latency_buckets_len);
	metrics_observe(h, (const char *[]){ "get" }, 0.02);
	text = render();
	assert_non_null(strstr(text, "t3_seconds_bucket{op=\"get\",le=\"0.001\"} 0\n"
				     "t3_seconds_bucket{op=\"get\",le=\"0.005\"} 0\n"
				     "t3_seconds_bucket{op=\"get\",le=\"0.025\"} 1\n"
				     "t3_seconds_bucket{op=\"get\",le=\"0.1\"} 1\n"
				     "t3_seconds_bucket{op=\"get\",le=\"0.5\"} 1\n"
				     "t3_seconds_bucket{op=\"get\",le=\"1\"} 1\n"
				     "t3_seconds_bucket{op=\"get\",le=\"10\"} 1\n"
				     "t3_seconds_bucket{op=\"get\",le=\"30\"} 1\n"
				     "t3_seconds_bucket{op=\"get\",le=\"60\"} 1\n"
				     "t3_seconds_bucket{op=\"get\",le=\"300\"} 1\n"
				     "t3_seconds_bucket{op=\"get\",le=\"1500\"} 1\n"
				     "t3_seconds_bucket{op=\"get\",le=\"+Inf\"} 1\n"
				     "t3_seconds_sum{op=\"get\"} 0.02\n"
				     "t3_seconds_count{op=\"get\"} 1\n"
				     "t3_seconds_bucket{op=\"put\",le=\"0.001\"} 0\n"));
	free(text);
}

static void test_long_label_values_cut(void **state)
{
	const char *l[] = { "v" };
	char longv[METRICS_MAX_LABEL_VALUE + 100];
	struct metric_family *f;

	(void)state;
	metrics_reset();
	memset(longv, 'q', sizeof(longv) - 1);
	longv[sizeof(longv) - 1] = '\0';
	f = metrics_counter("t4_cut_total", "cut", l, 1);
	metrics_add(f, (const char *[]){ longv }, 1);
	longv[METRICS_MAX_LABEL_VALUE + 5] = '\0'; /* same first 512 bytes: same series */
	metrics_add(f, (const char *[]){ longv }, 1);
	assert_true(metrics_get(f, (const char *[]){ longv }) == 2);
}

static void test_series_cap(void **state)
{
	const char *l[] = { "i" };
	struct metric_family *f;
	char v[32];

	(void)state;
	metrics_reset();
	f = metrics_counter("t5_many_total", "many", l, 1);
	for (int i = 0; i < METRICS_MAX_SERIES + 10; i++) {
		snprintf(v, sizeof(v), "%d", i);
		metrics_add(f, (const char *[]){ v }, 1);
	}
	snprintf(v, sizeof(v), "%d", METRICS_MAX_SERIES - 1);
	assert_true(metrics_get(f, (const char *[]){ v }) == 1);
	snprintf(v, sizeof(v), "%d", METRICS_MAX_SERIES + 1);
	assert_true(metrics_get(f, (const char *[]){ v }) == 0);
	metrics_reset();
}

static struct metric_family *thread_family;

static void *hammer(void *arg)
{
	const char *names[] = { "a", "b", "c", "d" };

	for (int i = 0; i < 20000; i++) {
		metrics_add(thread_family, (const char *[]){ names[i % 4] }, 1);
		if (i % 1000 == 0) {
			struct strbuf sb = STRBUF_INIT;
			metrics_render(&sb);
			strbuf_release(&sb);
		}
	}
	(void)arg;
	return NULL;
}

static void test_concurrent_updates(void **state)
{
	const char *l[] = { "n" };
	pthread_t th[8];

	(void)state;
	metrics_reset();
	thread_family = metrics_counter("t6_concurrent_total", "c", l, 1);
	for (int i = 0; i < 8; i++)
		assert_int_equal(pthread_create(&th[i], NULL, hammer, NULL), 0);
	for (int i = 0; i < 8; i++)
		pthread_join(th[i], NULL);
	assert_true(metrics_get(thread_family, (const char *[]){ "a" }) == 8 * 5000);
	assert_true(metrics_get(thread_family, (const char *[]){ "d" }) == 8 * 5000);
}

static int collector_runs;
static struct metric_family *collected;

static void collect(void *data)
{
	collector_runs++;
	metrics_set(collected, NULL, *(double *)data);
}

static void test_collector_and_cap(void **state)
{
	static double value = 42;
	struct strbuf small;
	char *text;

	(void)state;
	metrics_reset();
	collected = metrics_gauge("t7_collected", "on demand", NULL, 0);
	metrics_register_collector(collect, &value);
	text = render();
	assert_int_equal(collector_runs, 1);
	assert_non_null(strstr(text, "\nt7_collected 42\n"));
	free(text);

	strbuf_init(&small, 16);
	assert_int_equal(metrics_render(&small), -1);
	assert_int_equal(small.len, 0);
	strbuf_release(&small);
}

/* Value of an unlabelled sample line "name value". */
static double sample(const char *text, const char *name)
{
	char *want = NULL;
	const char *p;
	double v;

	assert_true(asprintf(&want, "\n%s ", name) > 0);
	p = strstr(text, want);
	if (!p) {
		print_error("no sample %s\n", name);
		fail();
	}
	v = strtod(p + strlen(want), NULL);
	free(want);
	return v;
}

static void test_process_collector(void **state)
{
	struct rlimit rl;
	char *text;
	double start;

	(void)state;
	metrics_register_process_collector();
	metrics_register_process_collector(); /* idempotent */
	text = render();
	assert_non_null(strstr(text, "# HELP process_resident_memory_bytes Resident memory size "
				     "in bytes.\n# TYPE process_resident_memory_bytes gauge\n"));
	assert_non_null(strstr(text, "# TYPE process_cpu_seconds_total counter\n"));
	assert_true(sample(text, "process_resident_memory_bytes") > 1e5);
	assert_true(sample(text, "process_virtual_memory_bytes") >=
		    sample(text, "process_resident_memory_bytes"));
	assert_true(sample(text, "process_open_fds") >= 3);
	assert_int_equal(getrlimit(RLIMIT_NOFILE, &rl), 0);
	assert_true(sample(text, "process_max_fds") == (double)rl.rlim_cur);
	start = sample(text, "process_start_time_seconds");
	assert_true(start > (double)time(NULL) - 600 && start <= (double)time(NULL) + 1);
	assert_true(sample(text, "process_cpu_seconds_total") >= 0);
	free(text);
}

/* A remembered series keeps counting the same series, also across a reset. */
static void test_ref(void **state)
{
	static const char *const l[] = { "method" };
	const char *a[] = { "A" }, *b[] = { "B" };
	struct metrics_ref ra = { 0 }, rh = { 0 };
	struct metric_family *f, *h;
	static const double buckets[] = { 1, 2 };

	(void)state;
	f = metrics_counter("t9_ref_total", "ref", l, 1);
	h = metrics_histogram("t9_ref_seconds", "ref", l, 1, buckets, 2);
	metrics_add_ref(f, &ra, a, 2);
	metrics_add_ref(f, &ra, a, 1);
	metrics_add(f, b, 5);
	assert_true(metrics_get(f, a) == 3);
	assert_true(metrics_get(f, b) == 5);
	metrics_observe_ref(h, &rh, a, 1.5);
	assert_true(metrics_get(h, a) == 1);
	metrics_reset();
	assert_true(metrics_get(f, a) == 0);
	/* the freed series is found again, not written to */
	metrics_add_ref(f, &ra, a, 1);
	metrics_observe_ref(h, &rh, a, 0.5);
	assert_true(metrics_get(f, a) == 1);
	assert_true(metrics_get(f, b) == 0);
	assert_true(metrics_get(h, a) == 1);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_float_format),
		cmocka_unit_test(test_ref),
		cmocka_unit_test(test_counter_layout),
		cmocka_unit_test(test_families_sorted_and_empty_hidden),
		cmocka_unit_test(test_histogram_layout),
		cmocka_unit_test(test_long_label_values_cut),
		cmocka_unit_test(test_series_cap),
		cmocka_unit_test(test_concurrent_updates),
		cmocka_unit_test(test_collector_and_cap),
		cmocka_unit_test(test_process_collector),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
