/*
 * Keyed concurrency limiter: for each key (a repository's relative path) at
 * most `limit` callers run at once; the others wait in a FIFO queue. As in
 * upstream Gitaly (internal/limiter/concurrency_limiter.go with the
 * resizable semaphore), a key has two semaphores: the concurrency tokens
 * (size = limit) and, when max_queue_size > 0, the queue tokens (size =
 * limit + max_queue_size) that bound running + waiting callers and refuse
 * the excess at once. A waiter gives up after max_queue_wait, at its own
 * deadline, or when its caller is cancelled. The limit can be changed while
 * callers hold tokens (the adaptive calculator does so); per-key state is
 * created on first use and freed when its last caller leaves.
 */
#ifndef LIMIT_CONCURRENCY_H
#define LIMIT_CONCURRENCY_H

#include <stddef.h>
#include <stdint.h>

struct conc_limiter;
struct conc_slot;

/* Outcomes of conc_acquire. */
enum conc_result {
	CONC_OK = 0,
	CONC_MAX_SIZE = -1,  /* the queue is full: "maximum queue size reached" */
	CONC_MAX_TIME = -2,  /* max_queue_wait or the caller's deadline passed */
	CONC_CANCELLED = -3, /* the caller's cancel check fired while waiting */
	CONC_NOMEM = -4,
};

/*
 * Observer of a limited call (upstream's ConcurrencyMonitor): metrics and
 * log fields. Every function may be NULL. They run on the caller's thread;
 * queued runs with the limiter's lock held (it must not call back into the
 * limiter), the others without. acquire_us is the time since the call
 * started acquiring.
 */
struct conc_monitor {
	/* Admitted to the queue; queue_length counts queue tokens held minus
	 * concurrency tokens held for the key (upstream's queueLength). */
	void (*queued)(void *arg, const char *key, int queue_length);
	/* Left the queue, with or without a concurrency token. */
	void (*dequeued)(void *arg);
	/* Got a concurrency token; in_progress counts the key's holders. */
	void (*enter)(void *arg, int in_progress, int64_t acquire_us);
	/* Released its token (conc_release). */
	void (*exit)(void *arg);
	/* Refused; reason is "max_size", "max_time" or "other". */
	void (*dropped)(void *arg, const char *key, int queue_length, int in_progress,
			int64_t acquire_us, const char *reason);
};

/* How long and how a caller waits. */
struct conc_wait {
	int64_t deadline_ms;         /* CLOCK_MONOTONIC ms; INT64_MAX: none */
	int (*cancelled)(void *arg); /* polled while waiting; NULL: never */
	void *arg;
	int poll_ms;                 /* cancel-check period; <= 0: 20 ms */
};

/*
 * Creates a limiter. limit <= 0 means unlimited (conc_acquire then returns
 * at once with no slot); max_queue_size 0 means an unbounded queue;
 * max_queue_wait_ms 0 means waiting forever. Returns NULL when out of memory.
 */
struct conc_limiter *conc_limiter_new(int limit, int64_t max_queue_size, int64_t max_queue_wait_ms);

/* Frees the limiter; no caller may hold or wait for a slot. NULL is fine. */
void conc_limiter_free(struct conc_limiter *l);

/*
 * Changes the limit of every key (existing and future). Growing admits
 * waiters at once; shrinking lets current holders finish, and no one new
 * runs until the number of holders falls below the new limit.
 */
void conc_limiter_resize(struct conc_limiter *l, int limit);

/* The current limit. */
int conc_limiter_limit(struct conc_limiter *l);

/*
 * Waits for a slot of key, in FIFO order among the key's waiters. Returns
 * CONC_OK with *out set (NULL when the limiter is unlimited; pass it to
 * conc_release either way), or a negative enum conc_result with *out NULL.
 * mon (may be NULL) is called with mon_arg; it is also kept for the exit
 * notification of conc_release. w may be NULL (no deadline, no cancel).
 */
int conc_acquire(struct conc_limiter *l, const char *key, const struct conc_wait *w,
		 const struct conc_monitor *mon, void *mon_arg, struct conc_slot **out);

/* Gives the slot back and wakes the next waiter of its key. NULL is fine. */
void conc_release(struct conc_slot *slot);

/* Introspection (tests and gauges): live keys, and a key's holders and
 * waiters (0 for an unknown key). */
size_t conc_limiter_n_keys(struct conc_limiter *l);
int conc_limiter_in_progress(struct conc_limiter *l, const char *key);
int conc_limiter_waiting(struct conc_limiter *l, const char *key);

#endif
