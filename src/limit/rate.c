/*
 * Token buckets in integer arithmetic: a bucket holds "credit" in
 * microseconds, one token being worth interval_us; it gains one microsecond
 * of credit per microsecond of wall time up to burst * interval_us, and a
 * request spends interval_us. That is exactly rate.Every(interval) with
 * bucket size burst, without floating-point drift. One mutex per limiter.
 */
#include "limit/rate.h"

#include <pthread.h>
#include <stdlib.h>

#include "limit/keymap.h"

struct bucket {
	int64_t credit_us; /* banked refill time */
	int64_t last_us;   /* time of the last refill */
	int64_t used_us;   /* time of the last request */
};

struct rate_limiter {
	pthread_mutex_t lock;
	int64_t interval_us;
	int64_t cap_us; /* burst * interval_us, saturated */
	struct keymap buckets;
};

struct rate_limiter *rate_limiter_new(int64_t interval_ms, int64_t burst)
{
	struct rate_limiter *r;

	if (interval_ms <= 0 || burst <= 0 || interval_ms > INT64_MAX / 1000)
		return NULL;
	r = calloc(1, sizeof(*r));
	if (!r)
		return NULL;
	pthread_mutex_init(&r->lock, NULL);
	r->interval_us = interval_ms * 1000;
	r->cap_us = burst > INT64_MAX / r->interval_us ? INT64_MAX : burst * r->interval_us;
	return r;
}

static int drop_all(const char *key, void *value, void *arg)
{
	(void)key;
	(void)arg;
	free(value);
	return 1;
}

void rate_limiter_free(struct rate_limiter *r)
{
	if (!r)
		return;
	keymap_filter(&r->buckets, drop_all, NULL);
	keymap_release(&r->buckets);
	pthread_mutex_destroy(&r->lock);
	free(r);
}

struct prune_arg {
	int64_t before_us;
};

static int drop_idle(const char *key, void *value, void *arg)
{
	const struct bucket *b = value;
	const struct prune_arg *pa = arg;
	(void)key;
	if (b->used_us >= pa->before_us)
		return 0;
	free(value);
	return 1;
}

/* Lock held. */
static size_t prune_locked(struct rate_limiter *r, int64_t now_us)
{
	struct prune_arg pa;
	int64_t idle = r->interval_us > INT64_MAX / 10 ? INT64_MAX : 10 * r->interval_us;

	pa.before_us = now_us - idle;
	if (pa.before_us > now_us) /* underflowed */
		return 0;
	return keymap_filter(&r->buckets, drop_idle, &pa);
}

struct lru_arg {
	const char *key;
	int64_t used_us;
};

static int find_lru(const char *key, void *value, void *arg)
{
	const struct bucket *b = value;
	struct lru_arg *la = arg;
	if (!la->key || b->used_us < la->used_us) {
		la->key = key;
		la->used_us = b->used_us;
	}
	return 0;
}

/* Makes room for one more bucket. Lock held. */
static void make_room(struct rate_limiter *r, int64_t now_us)
{
	struct lru_arg la = { NULL, 0 };

	if (r->buckets.len < RATE_MAX_BUCKETS)
		return;
	if (prune_locked(r, now_us) > 0)
		return;
	keymap_filter(&r->buckets, find_lru, &la);
	if (la.key)
		free(keymap_remove(&r->buckets, la.key));
}

int rate_limiter_allow(struct rate_limiter *r, const char *key, int64_t now_us)
{
	struct bucket *b;
	int ret;

	pthread_mutex_lock(&r->lock);
	b = keymap_get(&r->buckets, key);
	if (!b) {
		make_room(r, now_us);
		b = malloc(sizeof(*b));
		if (!b || keymap_put(&r->buckets, key, b) < 0) {
			free(b);
			pthread_mutex_unlock(&r->lock);
			return -1;
		}
		b->credit_us = r->cap_us;
		b->last_us = now_us;
	}
	if (now_us > b->last_us) {
		int64_t gain = now_us - b->last_us;
		b->credit_us = gain > r->cap_us - b->credit_us ? r->cap_us : b->credit_us + gain;
		b->last_us = now_us;
	}
	b->used_us = now_us;
	if (b->credit_us >= r->interval_us) {
		b->credit_us -= r->interval_us;
		ret = 1;
	} else {
		ret = 0;
	}
	pthread_mutex_unlock(&r->lock);
	return ret;
}

size_t rate_limiter_prune(struct rate_limiter *r, int64_t now_us)
{
	size_t n;
	pthread_mutex_lock(&r->lock);
	n = prune_locked(r, now_us);
	pthread_mutex_unlock(&r->lock);
	return n;
}

size_t rate_limiter_n_buckets(struct rate_limiter *r)
{
	size_t n;
	pthread_mutex_lock(&r->lock);
	n = r->buckets.len;
	pthread_mutex_unlock(&r->lock);
	return n;
}
