/*
 * Token-bucket rate limiter keyed by repository (upstream's RateLimiter on
 * golang.org/x/time/rate): each key has a bucket of `burst` tokens that
 * starts full and refills by one token per `interval`; a request takes one
 * token or is refused. Buckets idle for more than 10 intervals are pruned.
 * Time is passed in by the caller (CLOCK_MONOTONIC microseconds), so the
 * arithmetic is testable without sleeping.
 */
#ifndef LIMIT_RATE_H
#define LIMIT_RATE_H

#include <stddef.h>
#include <stdint.h>

/* Most buckets one limiter keeps; past it, the least recently used goes. */
#define RATE_MAX_BUCKETS 65536

struct rate_limiter;

/* Creates a limiter; interval_ms and burst must be > 0. NULL on bad input
 * or out of memory. */
struct rate_limiter *rate_limiter_new(int64_t interval_ms, int64_t burst);

/* Frees the limiter and its buckets. NULL is fine. */
void rate_limiter_free(struct rate_limiter *r);

/*
 * Takes one token from key's bucket at time now_us. Returns 1 when the
 * request may proceed, 0 when the bucket is empty. Out of memory for a new
 * bucket lets the request through (fails open, and says so with -1).
 */
int rate_limiter_allow(struct rate_limiter *r, const char *key, int64_t now_us);

/* Drops buckets last used more than 10 intervals before now_us. Returns
 * how many were dropped. */
size_t rate_limiter_prune(struct rate_limiter *r, int64_t now_us);

/* Number of live buckets. */
size_t rate_limiter_n_buckets(struct rate_limiter *r);

#endif
