/*
 * The [pack_objects_limiting] limiter: per key (the client's IP) at most
 * max_concurrency pack-objects producers run at once; further ones wait in
 * a FIFO queue bounded by max_queue_length (0: unbounded) for at most
 * max_queue_wait (0: forever). Refusals are ResourceExhausted with
 * upstream's messages and a gitaly.LimitError detail. A small keyed
 * semaphore of its own, until the shared src/limit/ module exists.
 */
#ifndef PACKCACHE_LIMITER_H
#define PACKCACHE_LIMITER_H

#include <stdint.h>

#include "base/error.h"

struct packlimit;

/* Creates a limiter; max_concurrency <= 0 means no limit. Never NULL. */
struct packlimit *packlimit_new(int64_t max_concurrency, int64_t max_queue_length,
				int64_t max_queue_wait_ms);
void packlimit_free(struct packlimit *l);

/* What an acquisition looked like, for the access log's limit.* fields. */
struct packlimit_info {
	int64_t queue_ms;    /* time spent waiting */
	int64_t queue_len;   /* requests queued before this one */
	int64_t in_progress; /* running when this one was admitted */
	const char *dropped; /* NULL, "max_size" or "max_time" */
};

/*
 * Takes a slot for key, waiting if needed. key NULL or "" never waits.
 * Returns 0 (release with packlimit_release), or -1 with err set to
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
