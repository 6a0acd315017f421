/*
 * The keyed FIFO semaphore behind the per-RPC concurrency limiter. One mutex
 * per limiter guards the key map and every semaphore of it. A waiter is a
 * node on its semaphore's list with its own condition variable; releasing a
 * token hands it directly to the head waiter (so arrivals cannot overtake
 * the queue), and a waiter that times out or is cancelled unlinks itself.
 * Waiters sleep in short slices so that a cancelled RPC (which we can only
 * learn by polling) leaves the queue promptly.
 */
#include "limit/concurrency.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "limit/keymap.h"

#define DEFAULT_POLL_MS 20

struct waiter {
	struct waiter *prev, *next;
	int ready; /* a token was handed over */
	pthread_cond_t cond;
};

/* upstream's resizable semaphore: holders = current + leftover */
struct sem {
	int64_t current, leftover, size;
	struct waiter *head, *tail;
};

struct key_state {
	char *key;
	int refcount;
	int has_queue;
	struct sem conc;  /* concurrency tokens */
	struct sem queue; /* queue tokens (running + waiting), if has_queue */
};

struct conc_limiter {
	pthread_mutex_t lock;
	int limit;
	int64_t max_queue_size;
	int64_t max_queue_wait_ms;
	struct keymap keys;
};

struct conc_slot {
	struct conc_limiter *l;
	struct key_state *ks;
	const struct conc_monitor *mon;
	void *mon_arg;
};

static int64_t mono_us(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

static int64_t sem_count(const struct sem *s)
{
	return s->current + s->leftover;
}

/* Hands free tokens to waiters, oldest first. */
static void sem_notify(struct sem *s)
{
	while (s->head && sem_count(s) < s->size) {
		struct waiter *w = s->head;
		s->head = w->next;
		if (s->head)
			s->head->prev = NULL;
		else
			s->tail = NULL;
		w->next = w->prev = NULL;
		s->current++;
		w->ready = 1;
		pthread_cond_signal(&w->cond);
	}
}

static int sem_try_acquire(struct sem *s)
{
	if (sem_count(s) < s->size && !s->head) {
		s->current++;
		return 1;
	}
	return 0;
}

static void sem_release(struct sem *s)
{
	if (s->leftover > 0)
		s->leftover--;
	else if (s->current > 0)
		s->current--;
	sem_notify(s);
}

static void sem_resize(struct sem *s, int64_t size)
{
	int64_t count = sem_count(s);

	if (size == s->size)
		return;
	s->size = size;
	if (size > count) {
		s->leftover = 0;
		s->current = count;
		sem_notify(s);
	} else {
		s->current = size;
		s->leftover = count - size;
	}
}

static void sem_unlink(struct sem *s, struct waiter *w)
{
	if (w->prev)
		w->prev->next = w->next;
	else
		s->head = w->next;
	if (w->next)
		w->next->prev = w->prev;
	else
		s->tail = w->prev;
	w->next = w->prev = NULL;
}

static size_t sem_waiting(const struct sem *s)
{
	size_t n = 0;
	for (const struct waiter *w = s->head; w; w = w->next)
		n++;
	return n;
}

struct conc_limiter *conc_limiter_new(int limit, int64_t max_queue_size, int64_t max_queue_wait_ms)
{
	struct conc_limiter *l = calloc(1, sizeof(*l));

	if (!l)
		return NULL;
	pthread_mutex_init(&l->lock, NULL);
	l->limit = limit;
	l->max_queue_size = max_queue_size > 0 ? max_queue_size : 0;
	l->max_queue_wait_ms = max_queue_wait_ms > 0 ? max_queue_wait_ms : 0;
	return l;
}

static int free_key(const char *key, void *value, void *arg)
{
	struct key_state *ks = value;
	(void)key;
	(void)arg;
	free(ks->key);
	free(ks);
	return 1;
}

void conc_limiter_free(struct conc_limiter *l)
{
	if (!l)
		return;
	keymap_filter(&l->keys, free_key, NULL);
	keymap_release(&l->keys);
	pthread_mutex_destroy(&l->lock);
	free(l);
}

static int64_t limit_size(int limit)
{
	return limit > 0 ? limit : 0;
}

static int resize_key(const char *key, void *value, void *arg)
{
	struct key_state *ks = value;
	const struct conc_limiter *l = arg;
	(void)key;
	if (ks->has_queue)
		sem_resize(&ks->queue, limit_size(l->limit) + l->max_queue_size);
	sem_resize(&ks->conc, limit_size(l->limit));
	return 0;
}

void conc_limiter_resize(struct conc_limiter *l, int limit)
{
	pthread_mutex_lock(&l->lock);
	if (limit != l->limit) {
		l->limit = limit;
		keymap_filter(&l->keys, resize_key, l);
	}
	pthread_mutex_unlock(&l->lock);
}

int conc_limiter_limit(struct conc_limiter *l)
{
	int v;
	pthread_mutex_lock(&l->lock);
	v = l->limit;
	pthread_mutex_unlock(&l->lock);
	return v;
}

/* Finds or creates the key's state and takes a reference. Lock held. */
static struct key_state *key_get(struct conc_limiter *l, const char *key)
{
	struct key_state *ks = keymap_get(&l->keys, key);

	if (!ks) {
		ks = calloc(1, sizeof(*ks));
		if (!ks)
			return NULL;
		ks->key = strdup(key);
		if (!ks->key || keymap_put(&l->keys, key, ks) < 0) {
			free(ks->key);
			free(ks);
			return NULL;
		}
		ks->conc.size = limit_size(l->limit);
		if (l->max_queue_size > 0) {
			ks->has_queue = 1;
			ks->queue.size = limit_size(l->limit) + l->max_queue_size;
		}
	}
	ks->refcount++;
	return ks;
}

/* Drops a reference; the last one frees the key's state. Lock held. */
static void key_put(struct conc_limiter *l, struct key_state *ks)
{
	if (--ks->refcount > 0)
		return;
	keymap_remove(&l->keys, ks->key);
	free(ks->key);
	free(ks);
}

static int queue_length(const struct key_state *ks)
{
	if (!ks->has_queue)
		return 0;
	return (int)(sem_count(&ks->queue) - sem_count(&ks->conc));
}

static void abs_time(int64_t us, struct timespec *ts)
{
	ts->tv_sec = us / 1000000;
	ts->tv_nsec = (us % 1000000) * 1000;
}

/*
 * Waits for a concurrency token of ks (lock held on entry and exit).
 * Returns CONC_OK, CONC_MAX_TIME or CONC_CANCELLED.
 */
static int wait_token(struct conc_limiter *l, struct key_state *ks, const struct conc_wait *w,
		      int64_t start_us)
{
	struct waiter me;
	pthread_condattr_t attr;
	int64_t wait_deadline = INT64_MAX, client_deadline = INT64_MAX;
	int poll_ms = DEFAULT_POLL_MS;
	int ret = CONC_OK;

	if (sem_count(&ks->conc) < ks->conc.size && !ks->conc.head) {
		ks->conc.current++;
		return CONC_OK;
	}
	/* all in microseconds */
	if (l->max_queue_wait_ms > 0 && l->max_queue_wait_ms < INT64_MAX / 1000 - start_us / 1000)
		wait_deadline = start_us + l->max_queue_wait_ms * 1000;
	if (w && w->deadline_ms > 0 && w->deadline_ms < INT64_MAX / 1000)
		client_deadline = w->deadline_ms * 1000;
	if (w && w->poll_ms > 0)
		poll_ms = w->poll_ms;

	memset(&me, 0, sizeof(me));
	pthread_condattr_init(&attr);
	pthread_condattr_setclock(&attr, CLOCK_MONOTONIC);
	pthread_cond_init(&me.cond, &attr);
	pthread_condattr_destroy(&attr);
	me.prev = ks->conc.tail;
	if (ks->conc.tail)
		ks->conc.tail->next = &me;
	else
		ks->conc.head = &me;
	ks->conc.tail = &me;

	for (;;) {
		if (me.ready)
			break;
		int64_t now = mono_us();
		if (now >= wait_deadline || now >= client_deadline) {
			ret = CONC_MAX_TIME;
			break;
		}
		if (w && w->cancelled) {
			int c;
			pthread_mutex_unlock(&l->lock);
			c = w->cancelled(w->arg);
			pthread_mutex_lock(&l->lock);
			if (me.ready)
				break;
			if (c) {
				ret = CONC_CANCELLED;
				break;
			}
		}
		int64_t until = now + (int64_t)poll_ms * 1000;
		if (!w || !w->cancelled)
			until = INT64_MAX;
		if (wait_deadline < until)
			until = wait_deadline;
		if (client_deadline < until)
			until = client_deadline;
		if (until == INT64_MAX) {
			pthread_cond_wait(&me.cond, &l->lock);
		} else {
			struct timespec ts;
			abs_time(until, &ts);
			pthread_cond_timedwait(&me.cond, &l->lock, &ts);
		}
	}
	if (ret != CONC_OK) {
		if (me.ready) {
			/* The token arrived together with the timeout: keep it. */
			ret = CONC_OK;
		} else {
			int was_head = ks->conc.head == &me;
			sem_unlink(&ks->conc, &me);
			if (was_head)
				sem_notify(&ks->conc);
		}
	}
	pthread_cond_destroy(&me.cond);
	return ret;
}

int conc_acquire(struct conc_limiter *l, const char *key, const struct conc_wait *w,
		 const struct conc_monitor *mon, void *mon_arg, struct conc_slot **out)
{
	static const struct conc_monitor none;
	struct key_state *ks;
	struct conc_slot *slot;
	int64_t start = mono_us();
	int ret, qlen, inprog;
	const char *reason;

	*out = NULL;
	if (!mon)
		mon = &none;
	slot = malloc(sizeof(*slot));
	if (!slot)
		return CONC_NOMEM;
	pthread_mutex_lock(&l->lock);
	if (l->limit <= 0) {
		pthread_mutex_unlock(&l->lock);
		free(slot);
		return CONC_OK;
	}
	ks = key_get(l, key);
	if (!ks) {
		pthread_mutex_unlock(&l->lock);
		free(slot);
		return CONC_NOMEM;
	}
	if (ks->has_queue && !sem_try_acquire(&ks->queue)) {
		qlen = queue_length(ks);
		inprog = (int)sem_count(&ks->conc);
		key_put(l, ks);
		pthread_mutex_unlock(&l->lock);
		free(slot);
		if (mon->dropped)
			mon->dropped(mon_arg, key, qlen, inprog, mono_us() - start, "max_size");
		return CONC_MAX_SIZE;
	}
	/* Under the lock, so that nobody overtakes us between queue and wait. */
	if (mon->queued)
		mon->queued(mon_arg, key, queue_length(ks));
	ret = wait_token(l, ks, w, start);
	if (ret != CONC_OK && ks->has_queue)
		sem_release(&ks->queue);
	qlen = queue_length(ks);
	inprog = (int)sem_count(&ks->conc);
	if (ret != CONC_OK)
		key_put(l, ks);
	pthread_mutex_unlock(&l->lock);
	if (mon->dequeued)
		mon->dequeued(mon_arg);

	if (ret != CONC_OK) {
		free(slot);
		reason = ret == CONC_MAX_TIME ? "max_time" : "other";
		if (mon->dropped)
			mon->dropped(mon_arg, key, qlen, inprog, mono_us() - start, reason);
		return ret;
	}
	slot->l = l;
	slot->ks = ks;
	slot->mon = mon == &none ? NULL : mon;
	slot->mon_arg = mon_arg;
	if (mon->enter)
		mon->enter(mon_arg, inprog, mono_us() - start);
	*out = slot;
	return CONC_OK;
}

void conc_release(struct conc_slot *slot)
{
	struct conc_limiter *l;

	if (!slot)
		return;
	l = slot->l;
	pthread_mutex_lock(&l->lock);
	if (slot->ks->has_queue)
		sem_release(&slot->ks->queue);
	sem_release(&slot->ks->conc);
	key_put(l, slot->ks);
	pthread_mutex_unlock(&l->lock);
	if (slot->mon && slot->mon->exit)
		slot->mon->exit(slot->mon_arg);
	free(slot);
}

size_t conc_limiter_n_keys(struct conc_limiter *l)
{
	size_t n;
	pthread_mutex_lock(&l->lock);
	n = l->keys.len;
	pthread_mutex_unlock(&l->lock);
	return n;
}

int conc_limiter_in_progress(struct conc_limiter *l, const char *key)
{
	int n = 0;
	pthread_mutex_lock(&l->lock);
	struct key_state *ks = keymap_get(&l->keys, key);
	if (ks)
		n = (int)sem_count(&ks->conc);
	pthread_mutex_unlock(&l->lock);
	return n;
}

int conc_limiter_waiting(struct conc_limiter *l, const char *key)
{
	int n = 0;
	pthread_mutex_lock(&l->lock);
	struct key_state *ks = keymap_get(&l->keys, key);
	if (ks)
		n = (int)sem_waiting(&ks->conc);
	pthread_mutex_unlock(&l->lock);
	return n;
}
