/*
 * Tests for src/limit/adaptive.c with fake watchers: additive increase up
 * to the max, multiplicative decrease down to the min, one move per round
 * however many watchers complain, 5 consecutive timeouts counting as a
 * backoff, errors counting as no backoff, update hooks, the metrics, and
 * the calibration thread.
 */
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "base/metrics.h"
#include "limit/adaptive.h"

struct fake {
	struct adaptive_watcher w;
	int result; /* 0, ADAPTIVE_POLL_ERROR, ADAPTIVE_POLL_TIMEOUT */
	int backoff;
	int polls;
};

static int fake_poll(struct adaptive_watcher *w, struct adaptive_event *ev, struct error *err)
{
	struct fake *f = w->state;
	f->polls++;
	if (f->result < 0) {
		error_set(err, STATUS_INTERNAL, "fake failure");
		return f->result;
	}
	ev->backoff = f->backoff;
	if (f->backoff) {
		snprintf(ev->reason, sizeof(ev->reason), "fake pressure");
		ev->stats = json_pack("{s:i}", "level", 7);
	}
	return 0;
}

static void fake_init(struct fake *f, const char *name)
{
	memset(f, 0, sizeof(*f));
	f->w.name = name;
	f->w.poll = fake_poll;
	f->w.state = f;
}

static int hook_value, hook_calls;
static void hook(void *arg, int v)
{
	(void)arg;
	hook_value = v;
	hook_calls++;
}

static double gauge(const char *name)
{
	const char *lv[1] = { name };
	return metrics_get(metrics_gauge("gitaly_concurrency_limiting_current_limit", "", (const char *[]){ "limit" }, 1), lv);
}

static double counter(const char *metric, const char *watcher)
{
	const char *lv[1] = { watcher };
	return metrics_get(metrics_counter(metric, "", (const char *[]){ "watcher" }, 1), lv);
}

static void test_increase_and_backoff(void **state)
{
	(void)state;
	struct fake f1, f2;
	struct adaptive_limit *l = adaptive_limit_new("perRPC/x.Y/Z", 10, 2, 12, 0.5);
	struct adaptive_watcher *ws[2] = { &f1.w, &f2.w };
	struct adaptive_calc *c;

	fake_init(&f1, "FakeCpu");
	fake_init(&f2, "FakeMem");
	hook_calls = 0;
	assert_int_equal(adaptive_limit_on_update(l, hook, NULL), 0);
	c = adaptive_calc_new(&l, 1, ws, 2, 0);
	assert_non_null(c);

	adaptive_calc_step(c);
	assert_int_equal(adaptive_limit_current(l), 11);
	assert_int_equal(hook_value, 11);
	adaptive_calc_step(c);
	adaptive_calc_step(c);
	assert_int_equal(adaptive_limit_current(l), 12); /* capped at max */
	assert_int_equal(hook_calls, 2);                 /* no change, no hook */
	assert_true(gauge("perRPC/x.Y/Z") == 12);

	/* Both watchers complain: the limit halves once, not twice. */
	f1.backoff = f2.backoff = 1;
	adaptive_calc_step(c);
	assert_int_equal(adaptive_limit_current(l), 6);
	assert_true(counter("gitaly_concurrency_limiting_backoff_events_total", "FakeCpu") == 1);
	assert_true(counter("gitaly_concurrency_limiting_backoff_events_total", "FakeMem") == 1);
	adaptive_calc_step(c);
	assert_int_equal(adaptive_limit_current(l), 3);
	adaptive_calc_step(c); /* floor(1.5) = 1, below min */
	assert_int_equal(adaptive_limit_current(l), 2);
	adaptive_calc_step(c);
	assert_int_equal(adaptive_limit_current(l), 2);
	assert_true(gauge("perRPC/x.Y/Z") == 2);

	/* Pressure gone: additive increase again. */
	f1.backoff = f2.backoff = 0;
	adaptive_calc_step(c);
	assert_int_equal(adaptive_limit_current(l), 3);
	assert_int_equal(f1.polls, 8);
	adaptive_calc_free(c);
	adaptive_limit_free(l);
}

static void test_errors_and_timeouts(void **state)
{
	(void)state;
	struct fake f;
	struct adaptive_limit *l = adaptive_limit_new("packObjects", 8, 1, 100, 0.5);
	struct adaptive_watcher *ws[1] = { &f.w };
	struct adaptive_calc *c;
	double errs0 = counter("gitaly_concurrency_limiting_watcher_errors_total", "Flaky");

	fake_init(&f, "Flaky");
	c = adaptive_calc_new(&l, 1, ws, 1, 0);
	/* An error is no backoff. */
	f.result = ADAPTIVE_POLL_ERROR;
	adaptive_calc_step(c);
	assert_int_equal(adaptive_limit_current(l), 9);
	assert_true(counter("gitaly_concurrency_limiting_watcher_errors_total", "Flaky") == errs0 + 1);

	/* Timeouts: four are tolerated, the fifth backs off. */
	f.result = ADAPTIVE_POLL_TIMEOUT;
	for (int i = 0; i < 4; i++)
		adaptive_calc_step(c);
	assert_int_equal(adaptive_limit_current(l), 13);
	adaptive_calc_step(c);
	assert_int_equal(adaptive_limit_current(l), 6);
	/* A success resets the count. */
	for (int i = 0; i < 4; i++)
		adaptive_calc_step(c);
	f.result = 0;
	adaptive_calc_step(c);
	f.result = ADAPTIVE_POLL_TIMEOUT;
	for (int i = 0; i < 4; i++)
		adaptive_calc_step(c);
	assert_int_equal(adaptive_limit_current(l), 6 + 4 + 1 + 4);
	adaptive_calc_free(c);
	adaptive_limit_free(l);
}

static void test_thread_resets_and_calibrates(void **state)
{
	(void)state;
	struct fake f;
	struct adaptive_limit *l = adaptive_limit_new("perRPC/t", 3, 1, 50, 0.5);
	struct adaptive_watcher *ws[1] = { &f.w };
	struct adaptive_calc *c;
	struct error err = ERROR_INIT;

	fake_init(&f, "Tick");
	adaptive_limit_update(l, 40);
	c = adaptive_calc_new(&l, 1, ws, 1, 10);
	assert_int_equal(adaptive_calc_start(c, &err), 0);
	/* Start resets to the initial limit... */
	assert_true(adaptive_limit_current(l) <= 4);
	/* ...and the thread then raises it round after round. */
	for (int i = 0; i < 500 && adaptive_limit_current(l) < 6; i++)
		usleep(10000);
	assert_true(adaptive_limit_current(l) >= 6);
	assert_int_equal(adaptive_calc_start(c, &err), -1);
	assert_string_equal(err.message, "adaptive calculator: already started");
	error_release(&err);
	adaptive_calc_free(c); /* joins the thread promptly */
	adaptive_limit_free(l);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_increase_and_backoff),
		cmocka_unit_test(test_errors_and_timeouts),
		cmocka_unit_test(test_thread_resets_and_calibrates),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
