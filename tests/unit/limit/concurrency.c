/*
 * Tests for src/limit/concurrency.c: FIFO admission, the queue bound, the
 * queue wait and the caller's deadline, cancellation while queued, release
 * handing the slot to the next waiter, independent keys, resizing, the
 * monitor's figures, and per-key state freed after the last caller.
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

#include "limit/concurrency.h"

static int64_t now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Waits (up to 5 s) until key has n waiters. */
static void wait_waiting(struct conc_limiter *l, const char *key, int n)
{
	for (int i = 0; i < 5000 && conc_limiter_waiting(l, key) != n; i++)
		usleep(1000);
	assert_int_equal(conc_limiter_waiting(l, key), n);
}

/* --- a recording monitor -------------------------------------------------- */

struct rec {
	pthread_mutex_t lock;
	int queued, dequeued, entered, exited, dropped;
	int last_qlen, last_inprog;
	char reason[16];
	char key[64];
	int64_t last_acquire_us;
};

static void r_queued(void *arg, const char *key, int qlen)
{
	struct rec *r = arg;
	pthread_mutex_lock(&r->lock);
	r->queued++;
	r->last_qlen = qlen;
	snprintf(r->key, sizeof(r->key), "%s", key);
	pthread_mutex_unlock(&r->lock);
}

static void r_dequeued(void *arg)
{
	struct rec *r = arg;
	pthread_mutex_lock(&r->lock);
	r->dequeued++;
	pthread_mutex_unlock(&r->lock);
}

static void r_enter(void *arg, int inprog, int64_t us)
{
	struct rec *r = arg;
	pthread_mutex_lock(&r->lock);
	r->entered++;
	r->last_inprog = inprog;
	r->last_acquire_us = us;
	pthread_mutex_unlock(&r->lock);
}

static void r_exit(void *arg)
{
	struct rec *r = arg;
	pthread_mutex_lock(&r->lock);
	r->exited++;
	pthread_mutex_unlock(&r->lock);
}

static void r_dropped(void *arg, const char *key, int qlen, int inprog, int64_t us,
		      const char *reason)
{
	struct rec *r = arg;
	pthread_mutex_lock(&r->lock);
	r->dropped++;
	r->last_qlen = qlen;
	r->last_inprog = inprog;
	r->last_acquire_us = us;
	snprintf(r->reason, sizeof(r->reason), "%s", reason);
	snprintf(r->key, sizeof(r->key), "%s", key);
	pthread_mutex_unlock(&r->lock);
}

static const struct conc_monitor rec_monitor = { r_queued, r_dequeued, r_enter, r_exit, r_dropped };

static void rec_init(struct rec *r)
{
	memset(r, 0, sizeof(*r));
	pthread_mutex_init(&r->lock, NULL);
}

/* --- a waiter thread ------------------------------------------------------ */

struct waiter_arg {
	struct conc_limiter *l;
	const char *key;
	int id;
	int rc;
	struct conc_slot *slot;
	int release_at_once;
	int *order;
	int *n_order;
	pthread_mutex_t *order_lock;
	const struct conc_wait *w;
};

static void *waiter_main(void *p)
{
	struct waiter_arg *a = p;
	a->rc = conc_acquire(a->l, a->key, a->w, NULL, NULL, &a->slot);
	if (a->rc == CONC_OK && a->order) {
		pthread_mutex_lock(a->order_lock);
		a->order[(*a->n_order)++] = a->id;
		pthread_mutex_unlock(a->order_lock);
	}
	if (a->rc == CONC_OK && a->release_at_once) {
		conc_release(a->slot);
		a->slot = NULL;
	}
	return NULL;
}

static void test_unlimited(void **state)
{
	(void)state;
	struct conc_limiter *l = conc_limiter_new(0, 1, 10);
	struct conc_slot *s1 = (void *)1, *s2 = (void *)1;
	struct rec r;

	rec_init(&r);
	assert_int_equal(conc_acquire(l, "k", NULL, &rec_monitor, &r, &s1), CONC_OK);
	assert_int_equal(conc_acquire(l, "k", NULL, &rec_monitor, &r, &s2), CONC_OK);
	assert_null(s1);
	assert_null(s2);
	assert_int_equal(r.queued + r.entered + r.dropped, 0);
	assert_int_equal(conc_limiter_n_keys(l), 0);
	conc_release(s1);
	conc_limiter_free(l);
}

static void test_fifo_order_and_release_wakes_next(void **state)
{
	(void)state;
	struct conc_limiter *l = conc_limiter_new(1, 0, 0);
	struct conc_slot *holder;
	pthread_t th[4];
	struct waiter_arg a[4];
	int order[4], n_order = 0;
	pthread_mutex_t ol = PTHREAD_MUTEX_INITIALIZER;

	assert_int_equal(conc_acquire(l, "repo", NULL, NULL, NULL, &holder), CONC_OK);
	assert_non_null(holder);
	for (int i = 0; i < 4; i++) {
		memset(&a[i], 0, sizeof(a[i]));
		a[i].l = l;
		a[i].key = "repo";
		a[i].id = i;
		a[i].release_at_once = 1;
		a[i].order = order;
		a[i].n_order = &n_order;
		a[i].order_lock = &ol;
		pthread_create(&th[i], NULL, waiter_main, &a[i]);
		wait_waiting(l, "repo", i + 1);
	}
	usleep(20000);
	assert_int_equal(n_order, 0); /* nobody overtook the holder */
	assert_int_equal(conc_limiter_in_progress(l, "repo"), 1);
	conc_release(holder);
	for (int i = 0; i < 4; i++) {
		pthread_join(th[i], NULL);
		assert_int_equal(a[i].rc, CONC_OK);
	}
	assert_int_equal(n_order, 4);
	for (int i = 0; i < 4; i++)
		assert_int_equal(order[i], i);
	assert_int_equal(conc_limiter_n_keys(l), 0);
	conc_limiter_free(l);
}

static void test_queue_full_is_refused_at_once(void **state)
{
	(void)state;
	struct conc_limiter *l = conc_limiter_new(1, 1, 0);
	struct conc_slot *holder, *s = NULL;
	struct rec r;
	pthread_t th;
	struct waiter_arg a;
	int64_t t0;

	rec_init(&r);
	assert_int_equal(conc_acquire(l, "repo", NULL, &rec_monitor, &r, &holder), CONC_OK);
	assert_int_equal(r.queued, 1);
	assert_int_equal(r.last_qlen, 1); /* upstream counts the caller itself */
	assert_int_equal(r.entered, 1);
	assert_int_equal(r.last_inprog, 1);
	assert_string_equal(r.key, "repo");

	memset(&a, 0, sizeof(a));
	a.l = l;
	a.key = "repo";
	pthread_create(&th, NULL, waiter_main, &a);
	wait_waiting(l, "repo", 1);

	t0 = now_ms();
	assert_int_equal(conc_acquire(l, "repo", NULL, &rec_monitor, &r, &s), CONC_MAX_SIZE);
	assert_true(now_ms() - t0 < 100);
	assert_null(s);
	assert_int_equal(r.dropped, 1);
	assert_string_equal(r.reason, "max_size");
	assert_int_equal(r.last_qlen, 1);
	assert_int_equal(r.last_inprog, 1);
	assert_int_equal(r.queued, 1); /* a refused caller never queued */

	/* A different key is independent. */
	assert_int_equal(conc_acquire(l, "other", NULL, &rec_monitor, &r, &s), CONC_OK);
	assert_non_null(s);
	conc_release(s);

	conc_release(holder);
	pthread_join(th, NULL);
	assert_int_equal(a.rc, CONC_OK);
	/* The queue place of the refused caller was never taken: after the
	 * waiter runs, one more can queue behind it. */
	conc_release(a.slot);
	assert_int_equal(r.exited, 2);
	assert_int_equal(conc_limiter_n_keys(l), 0);
	conc_limiter_free(l);
}

static void test_queue_wait_timeout(void **state)
{
	(void)state;
	struct conc_limiter *l = conc_limiter_new(1, 0, 60);
	struct conc_slot *holder, *s = (void *)1;
	struct rec r;
	int64_t t0, waited;

	rec_init(&r);
	assert_int_equal(conc_acquire(l, "repo", NULL, NULL, NULL, &holder), CONC_OK);
	t0 = now_ms();
	assert_int_equal(conc_acquire(l, "repo", NULL, &rec_monitor, &r, &s), CONC_MAX_TIME);
	waited = now_ms() - t0;
	assert_null(s);
	assert_true(waited >= 60);
	assert_true(waited < 1000);
	assert_int_equal(r.queued, 1);
	assert_int_equal(r.dequeued, 1);
	assert_int_equal(r.entered, 0);
	assert_int_equal(r.dropped, 1);
	assert_string_equal(r.reason, "max_time");
	assert_true(r.last_acquire_us >= 60000);
	assert_int_equal(conc_limiter_waiting(l, "repo"), 0);
	/* The slot is still the holder's; releasing frees everything. */
	assert_int_equal(conc_limiter_in_progress(l, "repo"), 1);
	conc_release(holder);
	assert_int_equal(conc_limiter_n_keys(l), 0);
	conc_limiter_free(l);
}

static void test_caller_deadline(void **state)
{
	(void)state;
	struct conc_limiter *l = conc_limiter_new(1, 0, 0); /* would wait forever */
	struct conc_slot *holder, *s;
	struct conc_wait w = { 0 };
	int64_t t0;

	assert_int_equal(conc_acquire(l, "repo", NULL, NULL, NULL, &holder), CONC_OK);
	t0 = now_ms();
	w.deadline_ms = t0 + 40;
	assert_int_equal(conc_acquire(l, "repo", &w, NULL, NULL, &s), CONC_MAX_TIME);
	assert_true(now_ms() - t0 >= 40);
	assert_true(now_ms() - t0 < 1000);
	conc_release(holder);
	conc_limiter_free(l);
}

static int cancel_flag;
static int is_cancelled(void *arg)
{
	(void)arg;
	return __atomic_load_n(&cancel_flag, __ATOMIC_ACQUIRE);
}

static void test_cancel_while_queued(void **state)
{
	(void)state;
	struct conc_limiter *l = conc_limiter_new(1, 2, 0);
	struct conc_slot *holder, *s;
	struct conc_wait w = { INT64_MAX, is_cancelled, NULL, 5 };
	struct waiter_arg a, b;
	pthread_t ta, tb;
	struct conc_wait never = { INT64_MAX, NULL, NULL, 0 };

	cancel_flag = 0;
	assert_int_equal(conc_acquire(l, "repo", NULL, NULL, NULL, &holder), CONC_OK);
	memset(&a, 0, sizeof(a));
	a.l = l;
	a.key = "repo";
	a.w = &w;
	pthread_create(&ta, NULL, waiter_main, &a);
	wait_waiting(l, "repo", 1);
	memset(&b, 0, sizeof(b));
	b.l = l;
	b.key = "repo";
	b.w = &never;
	pthread_create(&tb, NULL, waiter_main, &b);
	wait_waiting(l, "repo", 2);
	/* Queue full (1 running + 2 waiting). */
	assert_int_equal(conc_acquire(l, "repo", NULL, NULL, NULL, &s), CONC_MAX_SIZE);

	__atomic_store_n(&cancel_flag, 1, __ATOMIC_RELEASE);
	pthread_join(ta, NULL);
	assert_int_equal(a.rc, CONC_CANCELLED);
	assert_null(a.slot);
	assert_int_equal(conc_limiter_waiting(l, "repo"), 1);

	/* Its queue place is free again, and the next waiter moved up. */
	struct waiter_arg c;
	pthread_t tc;
	memset(&c, 0, sizeof(c));
	c.l = l;
	c.key = "repo";
	pthread_create(&tc, NULL, waiter_main, &c);
	wait_waiting(l, "repo", 2);
	conc_release(holder);
	pthread_join(tb, NULL);
	assert_int_equal(b.rc, CONC_OK);
	conc_release(b.slot);
	pthread_join(tc, NULL);
	assert_int_equal(c.rc, CONC_OK);
	conc_release(c.slot);
	assert_int_equal(conc_limiter_n_keys(l), 0);
	conc_limiter_free(l);
}

static void test_resize(void **state)
{
	(void)state;
	struct conc_limiter *l = conc_limiter_new(1, 0, 0);
	struct conc_slot *h1, *h2;
	struct waiter_arg a, c;
	pthread_t ta, tc;

	assert_int_equal(conc_acquire(l, "repo", NULL, NULL, NULL, &h1), CONC_OK);
	memset(&a, 0, sizeof(a));
	a.l = l;
	a.key = "repo";
	pthread_create(&ta, NULL, waiter_main, &a);
	wait_waiting(l, "repo", 1);
	/* Growing admits the waiter at once. */
	conc_limiter_resize(l, 2);
	assert_int_equal(conc_limiter_limit(l), 2);
	pthread_join(ta, NULL);
	assert_int_equal(a.rc, CONC_OK);
	h2 = a.slot;
	assert_int_equal(conc_limiter_in_progress(l, "repo"), 2);

	/* Shrinking keeps both holders; a newcomer waits until both left. */
	conc_limiter_resize(l, 1);
	memset(&c, 0, sizeof(c));
	c.l = l;
	c.key = "repo";
	pthread_create(&tc, NULL, waiter_main, &c);
	wait_waiting(l, "repo", 1);
	conc_release(h1);
	usleep(30000);
	assert_int_equal(conc_limiter_waiting(l, "repo"), 1);
	conc_release(h2);
	pthread_join(tc, NULL);
	assert_int_equal(c.rc, CONC_OK);
	assert_int_equal(conc_limiter_in_progress(l, "repo"), 1);
	conc_release(c.slot);
	/* A new key uses the new limit. */
	struct conc_slot *x, *y;
	assert_int_equal(conc_acquire(l, "fresh", NULL, NULL, NULL, &x), CONC_OK);
	struct conc_wait quick = { now_ms() + 20, NULL, NULL, 0 };
	assert_int_equal(conc_acquire(l, "fresh", &quick, NULL, NULL, &y), CONC_MAX_TIME);
	conc_release(x);
	conc_limiter_free(l);
}

static void test_queue_length_reporting(void **state)
{
	(void)state;
	struct conc_limiter *l = conc_limiter_new(2, 5, 0);
	struct conc_slot *s1, *s2;
	struct rec r;

	rec_init(&r);
	assert_int_equal(conc_acquire(l, "k", NULL, &rec_monitor, &r, &s1), CONC_OK);
	assert_int_equal(r.last_qlen, 1);
	assert_int_equal(r.last_inprog, 1);
	assert_int_equal(conc_acquire(l, "k", NULL, &rec_monitor, &r, &s2), CONC_OK);
	/* queue tokens held (2) minus concurrency tokens held (1) at queue time */
	assert_int_equal(r.last_qlen, 1);
	assert_int_equal(r.last_inprog, 2);
	conc_release(s1);
	conc_release(s2);
	assert_int_equal(r.exited, 2);
	conc_limiter_free(l);
}

/* Many threads on few keys: never more than the limit inside at once. */
struct stress {
	struct conc_limiter *l;
	int inside[3];
	int max_inside[3];
	pthread_mutex_t lock;
};

static void *stress_main(void *p)
{
	struct stress *st = p;
	static const char *keys[3] = { "a", "b", "c" };
	for (int i = 0; i < 200; i++) {
		int k = i % 3;
		struct conc_slot *s;
		if (conc_acquire(st->l, keys[k], NULL, NULL, NULL, &s) != CONC_OK)
			continue;
		pthread_mutex_lock(&st->lock);
		st->inside[k]++;
		if (st->inside[k] > st->max_inside[k])
			st->max_inside[k] = st->inside[k];
		pthread_mutex_unlock(&st->lock);
		sched_yield();
		pthread_mutex_lock(&st->lock);
		st->inside[k]--;
		pthread_mutex_unlock(&st->lock);
		conc_release(s);
	}
	return NULL;
}

static void test_stress(void **state)
{
	(void)state;
	struct stress st;
	pthread_t th[8];

	memset(&st, 0, sizeof(st));
	pthread_mutex_init(&st.lock, NULL);
	st.l = conc_limiter_new(2, 0, 0);
	for (int i = 0; i < 8; i++)
		pthread_create(&th[i], NULL, stress_main, &st);
	for (int i = 0; i < 8; i++)
		pthread_join(th[i], NULL);
	for (int k = 0; k < 3; k++) {
		assert_true(st.max_inside[k] <= 2);
		assert_true(st.max_inside[k] >= 1);
	}
	assert_int_equal(conc_limiter_n_keys(st.l), 0);
	conc_limiter_free(st.l);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_unlimited),
		cmocka_unit_test(test_fifo_order_and_release_wakes_next),
		cmocka_unit_test(test_queue_full_is_refused_at_once),
		cmocka_unit_test(test_queue_wait_timeout),
		cmocka_unit_test(test_caller_deadline),
		cmocka_unit_test(test_cancel_while_queued),
		cmocka_unit_test(test_resize),
		cmocka_unit_test(test_queue_length_reporting),
		cmocka_unit_test(test_stress),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
