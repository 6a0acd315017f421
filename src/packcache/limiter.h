/*
 * The [pack_objects_limiting] limiter: per key (the client's IP) at most
 * max_concurrency pack-objects producers run at once; further ones wait in
 * a FIFO queue bounded by max_queue_length (0: unbounded) for at most
 * max_queue_wait (0: forever). Refusals are ResourceExhausted with
 * upstream's messages and a gitaly.LimitError detail. With `adaptive =
 * true` the per-key maximum follows upstream's "packObjects" adaptive limit
 * (src/limit/adaptive.h) instead of max_concurrency.
 */
#ifndef PACKCACHE_LIMITER_H
#define PACKCACHE_LIMITER_H

#include <stdint.h>

#include "base/error.h"

struct packlimit;
struct adaptive_limit;

/* Creates a limiter; max_concurrency <= 0 means no limit. Never NULL. */
struct packlimit *packlimit_new(int64_t max_concurrency, int64_t max_queue_length,
				int64_t max_queue_wait_ms);
void packlimit_free(struct packlimit *l);

/*
 * Creates a limiter whose per-key maximum is lim's current value, following
 * every later update of lim (lim must outlive the limiter; a value <= 0
 * means no limit). Never NULL.
 */
struct packlimit *packlimit_new_adaptive(struct adaptive_limit *lim, int64_t max_queue_length,
					 int64_t max_queue_wait_ms);

/* Changes the per-key maximum and re-examines the waiters (<= 0: no limit). */
void packlimit_set_max(struct packlimit *l, int64_t max);

/* The per-key maximum in force. */
int64_t packlimit_max(struct packlimit *l);

/* What an acquisition looked like, for the access log's limit.* fields. */
struct packlimit_info {
	int64_t queue_ms;    /* time spent waiting */
	int64_t queue_len;   /* requests queued before this one */
	int64_t in_progress; /* running when this one was admitted */
	const char *dropped; /* NULL, "max_size" or "max_time" */
	int held;            /* 1: a slot was taken, give it back with packlimit_release */
};

/*
 * Takes a slot for key, waiting if needed. key NULL or "" never waits, nor
 * does anything while there is no limit. Returns 0 (when info->held,
 * release with packlimit_release), or -1 with err set to
 * ResourceExhausted "maximum queue size reached" / "maximum time in
 * concurrency queue reached".
 */
int packlimit_acquire(struct packlimit *l, const char *key, struct packlimit_info *info,
		      struct error *err);
void packlimit_release(struct packlimit *l, const char *key);

/*
 * The limiter key of a remote_ip value ("1.2.3.4", "1.2.3.4:5678", "::1",
 * "[::1]:5678"): the parsed address in *out (at least 64 bytes), or 0 when
 * it is empty, unparseable or loopback, which are not limited.
 */
int packlimit_key_from_ip(const char *remote_ip, char *out, size_t n);

#endif
