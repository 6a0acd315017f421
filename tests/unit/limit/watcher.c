/*
 * Tests for src/limit/watcher.c on fake cgroup and /proc trees in a
 * temporary directory, with a fake clock: the CPU ratio between two polls
 * (cgroup v2 throttled_usec, v1 throttled_time, host PSI total), the
 * first poll and a counter reset never backing off, the load-average
 * fallback, the memory ratio without inactive file pages (v2, v1 with
 * under_oom, host meminfo), "max" meaning no limit, and read errors.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include "limit/watcher.h"
#include "../support/shell.h"

static char root[256];
static int64_t fake_now;

static int64_t clock_fn(void)
{
	return fake_now;
}

static void put(const char *rel, const char *text)
{
	char path[512];
	FILE *f;
	snprintf(path, sizeof(path), "%s/%s", root, rel);
	f = fopen(path, "w");
	assert_non_null(f);
	fputs(text, f);
	fclose(f);
}

static int setup(void **state)
{
	(void)state;
	snprintf(root, sizeof(root), "/tmp/limit-watcher-XXXXXX");
	assert_non_null(mkdtemp(root));
	return 0;
}

static int teardown(void **state)
{
	(void)state;
	test_shell(NULL, 0, 0, "rm -rf '%s'", root);
	return 0;
}

/* Polls w; returns 1 for backoff, 0 for none, -1 for an error. */
static int poll(struct adaptive_watcher *w, char *reason, size_t cap)
{
	struct adaptive_event ev;
	struct error err = ERROR_INIT;
	int rc = w->poll(w, &ev, &err);
	if (rc < 0) {
		assert_true(error_is_set(&err));
		error_release(&err);
		return -1;
	}
	if (reason)
		snprintf(reason, cap, "%s", ev.reason);
	json_decref(ev.stats);
	return ev.backoff;
}

static void test_cpu_cgroup_v2(void **state)
{
	(void)state;
	struct watcher_source src = { root, 0, root, clock_fn, 0 };
	struct adaptive_watcher *w = watcher_cpu_new(&src, 0);
	char reason[128];

	assert_string_equal(w->name, "CgroupCpu");
	put("cpu.stat", "usage_usec 100\nnr_periods 10\nnr_throttled 1\nthrottled_usec 1000000\n");
	fake_now = 10000000;
	assert_int_equal(poll(w, NULL, 0), 0); /* first poll: no clue */
	/* 0.6 s throttled in 1 s > 0.5 */
	put("cpu.stat", "usage_usec 100\nnr_throttled 2\nthrottled_usec 1600000\n");
	fake_now += 1000000;
	assert_int_equal(poll(w, reason, sizeof(reason)), 1);
	assert_string_equal(reason, "cgroup CPU throttled too much");
	/* 0.4 s in 1 s: fine */
	put("cpu.stat", "nr_throttled 3\nthrottled_usec 2000000\n");
	fake_now += 1000000;
	assert_int_equal(poll(w, NULL, 0), 0);
	/* counter reset (cgroup recreated): no conclusion */
	put("cpu.stat", "nr_throttled 0\nthrottled_usec 0\n");
	fake_now += 1000000;
	assert_int_equal(poll(w, NULL, 0), 0);
	/* exactly the threshold is not above it */
	put("cpu.stat", "nr_throttled 0\nthrottled_usec 500000\n");
	fake_now += 1000000;
	assert_int_equal(poll(w, NULL, 0), 0);
	/* unreadable figures are an error */
	put("cpu.stat", "garbage\n");
	assert_int_equal(poll(w, NULL, 0), -1);
	w->free(w);
}

static void test_cpu_cgroup_v1_and_threshold(void **state)
{
	(void)state;
	struct watcher_source src = { root, 1, root, clock_fn, 0 };
	struct adaptive_watcher *w = watcher_cpu_new(&src, 0.2);

	put("cpu.stat", "nr_periods 5\nnr_throttled 1\nthrottled_time 1000000000\n");
	fake_now = 0;
	assert_int_equal(poll(w, NULL, 0), 0);
	put("cpu.stat", "nr_periods 5\nnr_throttled 1\nthrottled_time 1300000000\n");
	fake_now += 1000000; /* 0.3 s of 1 s > 0.2 */
	assert_int_equal(poll(w, NULL, 0), 1);
	w->free(w);
}

static void test_cpu_host_psi_and_loadavg(void **state)
{
	(void)state;
	struct watcher_source src = { NULL, 0, root, clock_fn, 2 };
	struct adaptive_watcher *w = watcher_cpu_new(&src, 0);
	char reason[128];
	char dir[512];

	assert_string_equal(w->name, "HostCpu");
	snprintf(dir, sizeof(dir), "%s/pressure", root);
	mkdir(dir, 0755);
	put("pressure/cpu", "some avg10=1.00 avg60=0.50 avg300=0.10 total=5000000\n"
			    "full avg10=0.00 avg60=0.00 avg300=0.00 total=0\n");
	fake_now = 0;
	assert_int_equal(poll(w, NULL, 0), 0);
	put("pressure/cpu", "some avg10=90.00 avg60=0.50 avg300=0.10 total=14000000\n"
			    "full avg10=0.00 avg60=0.00 avg300=0.00 total=0\n");
	fake_now += 10000000; /* 9 s stalled in 10 s */
	assert_int_equal(poll(w, reason, sizeof(reason)), 1);
	assert_string_equal(reason, "host CPU pressure too high");
	put("pressure/cpu", "some avg10=0 avg60=0 avg300=0 total=15000000\n");
	fake_now += 10000000;
	assert_int_equal(poll(w, NULL, 0), 0);

	/* No PSI: the load average against 2 CPUs. */
	test_shell(NULL, 0, 0, "rm -rf '%s/pressure'", root);
	put("loadavg", "5.00 1.00 0.50 3/100 1234\n"); /* (5-2)/5 = 0.6 > 0.5 */
	assert_int_equal(poll(w, reason, sizeof(reason)), 1);
	assert_string_equal(reason, "host CPU load too high");
	put("loadavg", "3.00 1.00 0.50 3/100 1234\n"); /* 1/3 */
	assert_int_equal(poll(w, NULL, 0), 0);
	put("loadavg", "1.00 1.00 0.50 3/100 1234\n");
	assert_int_equal(poll(w, NULL, 0), 0);
	snprintf(dir, sizeof(dir), "%s/loadavg", root);
	unlink(dir);
	assert_int_equal(poll(w, NULL, 0), -1);
	w->free(w);
}

static void test_memory_cgroup_v2(void **state)
{
	(void)state;
	struct watcher_source src = { root, 0, root, NULL, 0 };
	struct adaptive_watcher *w = watcher_memory_new(&src, 0);
	char reason[128];

	assert_string_equal(w->name, "CgroupMemory");
	put("memory.current", "950\n");
	put("memory.max", "1000\n");
	put("memory.stat", "anon 800\nfile 150\nactive_file 100\ninactive_file 0\n");
	assert_int_equal(poll(w, reason, sizeof(reason)), 1);
	assert_string_equal(reason, "cgroup memory exceeds threshold");
	/* inactive file pages can be reclaimed: 850/1000 < 0.9 */
	put("memory.stat", "anon 800\nfile 150\nactive_file 50\ninactive_file 100\n");
	assert_int_equal(poll(w, NULL, 0), 0);
	/* exactly the threshold backs off (>=) */
	put("memory.stat", "inactive_file 50\n");
	assert_int_equal(poll(w, NULL, 0), 1);
	put("memory.max", "max\n");
	assert_int_equal(poll(w, NULL, 0), 0);
	{
		char path[512];
		snprintf(path, sizeof(path), "%s/memory.current", root);
		unlink(path);
	}
	assert_int_equal(poll(w, NULL, 0), -1);
	w->free(w);
}

static void test_memory_cgroup_v1(void **state)
{
	(void)state;
	struct watcher_source src = { root, 1, root, NULL, 0 };
	struct adaptive_watcher *w = watcher_memory_new(&src, 0.5);
	char reason[128];

	put("memory.oom_control", "oom_kill_disable 0\nunder_oom 0\noom_kill 0\n");
	put("memory.usage_in_bytes", "600\n");
	put("memory.limit_in_bytes", "1000\n");
	put("memory.stat", "cache 10\nrss 500\ntotal_inactive_file 200\n");
	assert_int_equal(poll(w, NULL, 0), 0); /* 400/1000 < 0.5 */
	put("memory.stat", "cache 10\nrss 500\ntotal_inactive_file 0\n");
	assert_int_equal(poll(w, NULL, 0), 1);
	put("memory.stat", "total_inactive_file 500\n");
	put("memory.oom_control", "oom_kill_disable 0\nunder_oom 1\n");
	assert_int_equal(poll(w, reason, sizeof(reason)), 1);
	assert_string_equal(reason, "cgroup is under OOM");
	w->free(w);
}

static void test_memory_host(void **state)
{
	(void)state;
	struct watcher_source src = { NULL, 0, root, NULL, 0 };
	struct adaptive_watcher *w = watcher_memory_new(&src, 0);
	char reason[128];

	assert_string_equal(w->name, "HostMemory");
	put("meminfo", "MemTotal:       1000 kB\nMemFree:          50 kB\nMemAvailable:     80 kB\n");
	assert_int_equal(poll(w, reason, sizeof(reason)), 1);
	assert_string_equal(reason, "host memory exceeds threshold");
	put("meminfo", "MemTotal:       1000 kB\nMemFree:          50 kB\nMemAvailable:    500 kB\n");
	assert_int_equal(poll(w, NULL, 0), 0);
	put("meminfo", "MemTotal:       1000 kB\n");
	assert_int_equal(poll(w, NULL, 0), -1);
	w->free(w);
}

static void test_real_host_figures_parse(void **state)
{
	(void)state;
	/* The machine's own /proc must be readable by both host watchers. */
	struct watcher_source src = { NULL, 0, "/proc", NULL, 0 };
	struct adaptive_watcher *c = watcher_cpu_new(&src, 0);
	struct adaptive_watcher *m = watcher_memory_new(&src, 0);
	assert_true(poll(c, NULL, 0) >= 0);
	assert_true(poll(c, NULL, 0) >= 0);
	assert_true(poll(m, NULL, 0) >= 0);
	c->free(c);
	m->free(m);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_cpu_cgroup_v2, setup, teardown),
		cmocka_unit_test_setup_teardown(test_cpu_cgroup_v1_and_threshold, setup, teardown),
		cmocka_unit_test_setup_teardown(test_cpu_host_psi_and_loadavg, setup, teardown),
		cmocka_unit_test_setup_teardown(test_memory_cgroup_v2, setup, teardown),
		cmocka_unit_test_setup_teardown(test_memory_cgroup_v1, setup, teardown),
		cmocka_unit_test_setup_teardown(test_memory_host, setup, teardown),
		cmocka_unit_test(test_real_host_figures_parse),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
