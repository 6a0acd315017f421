/*
 * Tests for src/packcache/limiter.c under adaptive limiting: the per-key
 * maximum follows the "packObjects" adaptive limit, a waiter is admitted as
 * soon as the limit grows, a calculator step under a (fake) watcher's
 * backoff signal halves it and the next admissions obey the new value,
 * and a limit of 0 lets everything through without holding slots.
 */
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "base/metrics.h"
#include "limit/adaptive.h"
#include "packcache/limiter.h"

struct acquirer {
	struct packlimit *l;
	const char *key;
	pthread_t t;
	int done; /* 1 admitted, -1 refused (atomic) */
	struct packlimit_info info;
};

static void *acquire_main(void *arg)
{
	struct acquirer *a = arg;
	struct error err = ERROR_INIT;
	int rc = packlimit_acquire(a->l, a->key, &a->info, &err);
	error_release(&err);
	__atomic_store_n(&a->done, rc == 0 ? 1 : -1, __ATOMIC_RELEASE);
	return NULL;
}

static void start(struct acquirer *a, struct packlimit *l, const char *key)
{
	memset(a, 0, sizeof(*a));
	a->l = l;
	a->key = key;
	assert_int_equal(pthread_create(&a->t, NULL, acquire_main, a), 0);
}

static int state_of(struct acquirer *a)
{
	return __atomic_load_n(&a->done, __ATOMIC_ACQUIRE);
}

/* Waits up to 2 s for the acquirer to finish; returns its state. */
static int settle(struct acquirer *a)
{
	for (int i = 0; i < 200 && !state_of(a); i++)
		usleep(10000);
	return state_of(a);
}

static void take(struct packlimit *l, const char *key)
{
	struct packlimit_info info;
	struct error err = ERROR_INIT;
	assert_int_equal(packlimit_acquire(l, key, &info, &err), 0);
	assert_int_equal(info.held, 1);
}

static void test_follows_limit_updates(void **state)
{
	(void)state;
	struct adaptive_limit *al = adaptive_limit_new("packObjects", 1, 1, 3, 0.5);
	struct packlimit *l = packlimit_new_adaptive(al, 0, 0);
	struct acquirer a, other;

	assert_int_equal(packlimit_max(l), 1);
	take(l, "10.0.0.1");
	start(&a, l, "10.0.0.1");
	start(&other, l, "10.0.0.2"); /* another key is not affected */
	assert_int_equal(settle(&other), 1);
	usleep(100000);
	assert_int_equal(state_of(&a), 0); /* queued behind the first */

	adaptive_limit_update(al, 2);
	assert_int_equal(packlimit_max(l), 2);
	assert_int_equal(settle(&a), 1);
	pthread_join(a.t, NULL);
	pthread_join(other.t, NULL);
	assert_int_equal(a.info.in_progress, 1);

	packlimit_release(l, "10.0.0.1");
	packlimit_release(l, "10.0.0.1");
	packlimit_release(l, "10.0.0.2");
	packlimit_free(l);
	adaptive_limit_free(al);
}

struct fake {
	struct adaptive_watcher w;
	int backoff;
};

static int fake_poll(struct adaptive_watcher *w, struct adaptive_event *ev, struct error *err)
{
	struct fake *f = w->state;
	(void)err;
	ev->backoff = f->backoff;
	if (f->backoff)
		snprintf(ev->reason, sizeof(ev->reason), "fake pressure");
	return 0;
}

static void test_calculator_backoff_moves_the_limit(void **state)
{
	(void)state;
	struct fake f = {.w = {.name = "FakeCpu", .poll = fake_poll}};
	struct adaptive_watcher *ws[1] = {&f.w};
	struct adaptive_limit *al = adaptive_limit_new("packObjects", 4, 1, 4, ADAPTIVE_BACKOFF_FACTOR);
	struct packlimit *l = packlimit_new_adaptive(al, 0, 0);
	struct adaptive_calc *c;
	struct acquirer a;
	const char *lv[1] = {"packObjects"};

	f.w.state = &f;
	c = adaptive_calc_new(&al, 1, ws, 1, 0);
	assert_non_null(c);

	f.backoff = 1;
	adaptive_calc_step(c);
	assert_int_equal(adaptive_limit_current(al), 2);
	assert_int_equal(packlimit_max(l), 2);
	assert_int_equal((int)metrics_get(metrics_gauge("gitaly_concurrency_limiting_current_limit", "",
							(const char *[]){"limit"}, 1),
					   lv),
			 2);

	/* Two run, the third waits under the halved limit. */
	take(l, "10.9.9.9");
	take(l, "10.9.9.9");
	start(&a, l, "10.9.9.9");
	usleep(100000);
	assert_int_equal(state_of(&a), 0);

	/* Pressure gone: additive increase admits it. */
	f.backoff = 0;
	adaptive_calc_step(c);
	assert_int_equal(packlimit_max(l), 3);
	assert_int_equal(settle(&a), 1);
	pthread_join(a.t, NULL);
	assert_int_equal(a.info.in_progress, 2);
	assert_true(a.info.queue_ms >= 90);

	for (int i = 0; i < 3; i++)
		packlimit_release(l, "10.9.9.9");
	adaptive_calc_free(c);
	packlimit_free(l);
	adaptive_limit_free(al);
}

static void test_zero_means_unlimited(void **state)
{
	(void)state;
	struct adaptive_limit *al = adaptive_limit_new("packObjects", 1, 0, 2, 0.5);
	struct packlimit *l = packlimit_new_adaptive(al, 1, 0);
	struct acquirer a, b;
	struct packlimit_info info;
	struct error err = ERROR_INIT;

	take(l, "10.1.1.1");
	start(&a, l, "10.1.1.1");
	usleep(50000);
	assert_int_equal(state_of(&a), 0);
	/* The queue (1 + 1) is full: refused with upstream's message. */
	assert_int_equal(packlimit_acquire(l, "10.1.1.1", &info, &err), -1);
	assert_int_equal(err.code, STATUS_RESOURCE_EXHAUSTED);
	assert_string_equal(err.message, "maximum queue size reached");
	assert_string_equal(info.dropped, "max_size");
	error_release(&err);

	/* Backed off to 0: no limit, the waiter goes, new callers hold nothing. */
	adaptive_limit_update(al, 0);
	assert_int_equal(settle(&a), 1);
	pthread_join(a.t, NULL);
	assert_int_equal(packlimit_acquire(l, "10.1.1.1", &info, &err), 0);
	assert_int_equal(info.held, 0);

	/* Back to 1 with two slots still held: the queue (1 + 1) counts them,
	 * so a new caller is refused, and after one release it waits. */
	adaptive_limit_update(al, 1);
	assert_int_equal(packlimit_acquire(l, "10.1.1.1", &info, &err), -1);
	assert_string_equal(info.dropped, "max_size");
	error_release(&err);
	packlimit_release(l, "10.1.1.1");
	start(&b, l, "10.1.1.1");
	usleep(50000);
	assert_int_equal(state_of(&b), 0);
	packlimit_release(l, "10.1.1.1");
	assert_int_equal(settle(&b), 1);
	pthread_join(b.t, NULL);
	assert_int_equal(b.info.held, 1);
	packlimit_release(l, "10.1.1.1");
	packlimit_free(l);
	adaptive_limit_free(al);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_follows_limit_updates),
		cmocka_unit_test(test_calculator_backoff_moves_the_limit),
		cmocka_unit_test(test_zero_means_unlimited),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
