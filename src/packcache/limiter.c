/*
 * The keyed FIFO semaphore behind [pack_objects_limiting] (see limiter.h).
 * One mutex and one condition variable per limiter: waiters take a ticket
 * per key and are admitted strictly in ticket order when a slot is free.
 * Per-key state is created on first use and dropped when idle, so the map
 * only holds keys with running or waiting producers. The limit itself may
 * move (adaptive limiting): an update hook of the adaptive limit stores the
 * new value and wakes the waiters, who compare against it on every wake-up.
 */
#include <arpa/inet.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "base/metrics.h"
#include "limit/adaptive.h"
#include "packcache/limiter.h"

/* A queued request, on its waiter's stack. */
struct waiter {
	struct waiter *next;
};

struct lkey {
	struct lkey *next;
	int64_t running, queued;
	struct waiter *head, **tail; /* FIFO: only the head may be admitted */
	char key[];
};

struct packlimit {
	int64_t max, queue_len, wait_ms;
	int dynamic; /* max follows an adaptive limit */
	pthread_mutex_t mu;
	pthread_cond_t cond;
	struct lkey *keys;
};

static struct metric_family *m_in_progress, *m_queued, *m_acquiring, *m_dropped;

static void metrics_once(void)
{
	static const char *const reason[] = {"reason"};
	m_in_progress = metrics_gauge("gitaly_pack_objects_in_progress",
				      "Gauge of number of concurrent in-progress calls", NULL, 0);
	m_queued = metrics_gauge("gitaly_pack_objects_queued", "Gauge of number of queued calls",
				 NULL, 0);
	m_acquiring = metrics_histogram("gitaly_pack_objects_acquiring_seconds",
					"Histogram of time calls are rate limited (in seconds)",
					NULL, 0, metrics_default_latency_buckets,
					metrics_default_latency_buckets_len);
	m_dropped = metrics_counter("gitaly_pack_objects_dropped_total",
				    "Number of requests dropped from the queue", reason, 1);
}

static int64_t mono_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

struct packlimit *packlimit_new(int64_t max_concurrency, int64_t max_queue_length,
				int64_t max_queue_wait_ms)
{
	static pthread_once_t once = PTHREAD_ONCE_INIT;
	struct packlimit *l = calloc(1, sizeof(*l));
	pthread_condattr_t ca;

	pthread_once(&once, metrics_once);
	if (!l)
		abort();
	l->max = max_concurrency;
	l->queue_len = max_queue_length;
	l->wait_ms = max_queue_wait_ms;
	pthread_mutex_init(&l->mu, NULL);
	pthread_condattr_init(&ca);
	pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
	pthread_cond_init(&l->cond, &ca);
	pthread_condattr_destroy(&ca);
	return l;
}

/* The adaptive limit's update hook (its lock held; we only take ours). */
static void on_limit(void *arg, int value)
{
	packlimit_set_max(arg, value);
}

struct packlimit *packlimit_new_adaptive(struct adaptive_limit *lim, int64_t max_queue_length,
					 int64_t max_queue_wait_ms)
{
	struct packlimit *l = packlimit_new(adaptive_limit_current(lim), max_queue_length,
					    max_queue_wait_ms);

	l->dynamic = 1;
	if (adaptive_limit_on_update(lim, on_limit, l) < 0)
		abort(); /* a fresh limit has room for hooks */
	/* It may have moved between reading it and registering. */
	packlimit_set_max(l, adaptive_limit_current(lim));
	return l;
}

void packlimit_set_max(struct packlimit *l, int64_t max)
{
	pthread_mutex_lock(&l->mu);
	l->max = max;
	pthread_cond_broadcast(&l->cond);
	pthread_mutex_unlock(&l->mu);
}

int64_t packlimit_max(struct packlimit *l)
{
	pthread_mutex_lock(&l->mu);
	int64_t v = l->max;
	pthread_mutex_unlock(&l->mu);
	return v;
}

/* Admission test: first in line and a free slot (no limit: always free). */
static int admissible(const struct packlimit *l, const struct lkey *k, const struct waiter *me)
{
	return k->head == me && (l->max <= 0 || k->running < l->max);
}

void packlimit_free(struct packlimit *l)
{
	if (!l)
		return;
	while (l->keys) {
		struct lkey *k = l->keys;
		l->keys = k->next;
		free(k);
	}
	pthread_mutex_destroy(&l->mu);
	pthread_cond_destroy(&l->cond);
	free(l);
}

static struct lkey *key_get(struct packlimit *l, const char *key, int create)
{
	for (struct lkey *k = l->keys; k; k = k->next)
		if (!strcmp(k->key, key))
			return k;
	if (!create)
		return NULL;
	size_t len = strlen(key);
	struct lkey *k = calloc(1, sizeof(*k) + len + 1);
	if (!k)
		abort();
	memcpy(k->key, key, len + 1);
	k->tail = &k->head;
	k->next = l->keys;
	l->keys = k;
	return k;
}

static void key_drop_if_idle(struct packlimit *l, struct lkey *k)
{
	if (k->running || k->queued)
		return;
	for (struct lkey **pp = &l->keys; *pp; pp = &(*pp)->next)
		if (*pp == k) {
			*pp = k->next;
			free(k);
			return;
		}
}

int packlimit_acquire(struct packlimit *l, const char *key, struct packlimit_info *info,
		      struct error *err)
{
	int64_t start = mono_ms();
	const char *reason = NULL;
	int ret = -1;

	memset(info, 0, sizeof(*info));
	if (!key || !*key)
		return 0;
	pthread_mutex_lock(&l->mu);
	if (l->max <= 0) { /* unlimited right now: nothing to hold */
		pthread_mutex_unlock(&l->mu);
		return 0;
	}
	struct lkey *k = key_get(l, key, 1);
	info->queue_len = k->queued;
	if (l->queue_len > 0 && k->running + k->queued >= l->max + l->queue_len) {
		reason = "max_size";
		error_set(err, STATUS_RESOURCE_EXHAUSTED, "maximum queue size reached");
		key_drop_if_idle(l, k);
		goto out;
	}
	struct waiter me = {NULL};
	*k->tail = &me;
	k->tail = &me.next;
	k->queued++;
	metrics_add(m_queued, NULL, 1);
	struct timespec dl;
	int64_t dl_ms = start + l->wait_ms;
	dl.tv_sec = dl_ms / 1000;
	dl.tv_nsec = (dl_ms % 1000) * 1000000;
	while (!admissible(l, k, &me)) {
		if (l->wait_ms > 0) {
			if (pthread_cond_timedwait(&l->cond, &l->mu, &dl) != 0 && mono_ms() >= dl_ms &&
			    !admissible(l, k, &me)) {
				reason = "max_time";
				break;
			}
		} else {
			pthread_cond_wait(&l->cond, &l->mu);
		}
	}
	/* Out of the line, admitted or not. */
	for (struct waiter **pp = &k->head; *pp; pp = &(*pp)->next)
		if (*pp == &me) {
			*pp = me.next;
			if (k->tail == &me.next)
				k->tail = pp;
			break;
		}
	k->queued--;
	metrics_add(m_queued, NULL, -1);
	if (reason) {
		error_set(err, STATUS_RESOURCE_EXHAUSTED,
			  "maximum time in concurrency queue reached");
		pthread_cond_broadcast(&l->cond);
		key_drop_if_idle(l, k);
		goto out;
	}
	info->in_progress = k->running;
	k->running++;
	info->held = 1;
	metrics_add(m_in_progress, NULL, 1);
	pthread_cond_broadcast(&l->cond);
	ret = 0;
out:
	pthread_mutex_unlock(&l->mu);
	info->queue_ms = mono_ms() - start;
	if (reason) {
		const char *lv[] = {reason};
		info->dropped = reason;
		metrics_add(m_dropped, lv, 1);
	}
	metrics_observe(m_acquiring, NULL, (double)info->queue_ms / 1000.0);
	return ret;
}

void packlimit_release(struct packlimit *l, const char *key)
{
	if (!key || !*key)
		return;
	pthread_mutex_lock(&l->mu);
	struct lkey *k = key_get(l, key, 0);
	if (k && k->running > 0) {
		k->running--;
		metrics_add(m_in_progress, NULL, -1);
		key_drop_if_idle(l, k);
	}
	pthread_cond_broadcast(&l->cond);
	pthread_mutex_unlock(&l->mu);
}

int packlimit_key_from_ip(const char *remote_ip, char *out, size_t n)
{
	char buf[128];
	unsigned char addr[16];
	const char *host = buf;

	if (!remote_ip || !*remote_ip || strlen(remote_ip) >= sizeof(buf) || n < 64)
		return 0;
	snprintf(buf, sizeof(buf), "%s", remote_ip);
	if (buf[0] == '[') {
		char *end = strchr(buf, ']');
		if (!end)
			return 0;
		*end = '\0';
		host = buf + 1;
	} else if (strchr(buf, ':') && strchr(buf, ':') == strrchr(buf, ':')) {
		*strchr(buf, ':') = '\0'; /* ipv4:port */
	}
	if (inet_pton(AF_INET, host, addr) == 1) {
		if (addr[0] == 127)
			return 0;
		inet_ntop(AF_INET, addr, out, (socklen_t)n);
		return 1;
	}
	if (inet_pton(AF_INET6, host, addr) == 1) {
		static const unsigned char loop6[16] = {[15] = 1};
		static const unsigned char mapped[12] = {[10] = 0xff, [11] = 0xff};
		if (!memcmp(addr, loop6, 16) || (!memcmp(addr, mapped, 12) && addr[12] == 127))
			return 0;
		inet_ntop(AF_INET6, addr, out, (socklen_t)n);
		return 1;
	}
	return 0;
}
