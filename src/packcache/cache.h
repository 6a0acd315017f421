/*
 * The pack-objects cache (upstream's streamcache): an in-memory index from a
 * request key to an entry whose bytes live in a file under the cache
 * directory. The first request for a key starts one producer thread that
 * writes the entry; every request for the same key, including the first,
 * is a reader that tails the file while the producer is still writing
 * (waking on each write) and copies it onto its output with sendfile(2).
 * The producer is independent of any one reader: it keeps going while at
 * least one reader is attached; when it fails, the entry is dropped and
 * every reader gets the same error. Keys seen at most min_occurrences times
 * (within two max_age windows) are not cached at all: the producer then
 * writes straight onto the requester's output, nothing touches the disk.
 * Entries and files older than max_age are removed by a cleaner thread.
 */
#ifndef PACKCACHE_CACHE_H
#define PACKCACHE_CACHE_H

#include <stddef.h>
#include <stdint.h>

#include "base/error.h"

struct packcache;

struct packcache_options {
	const char *dir;         /* absolute; created (0700) if missing */
	int64_t max_age_ms;      /* entry and file lifetime; also the occurrence window */
	int64_t min_occurrences; /* a key is cached once seen more than this many times */
	int start_cleaner;       /* run the eviction thread (tests call packcache_clean) */
};

/* Creates the cache and its directory. Internal on filesystem errors. */
int packcache_new(const struct packcache_options *o, struct packcache **out, struct error *err);

/* Waits for running producers, removes every entry file, frees c. */
void packcache_free(struct packcache *c);

/* Where a producer writes: the entry file, or the requester's output. */
struct packcache_sink;

/*
 * Writes all of buf. Fails (Canceled "all readers gone") when nobody reads
 * the entry any more, or with the output's write error; the producer should
 * then stop and return -1.
 */
int packcache_sink_write(struct packcache_sink *s, const void *buf, size_t len,
			 struct error *err);

/* Bytes written so far through s. */
uint64_t packcache_sink_bytes(const struct packcache_sink *s);

/*
 * A producer: run() writes the entry through the sink and returns 0, or -1
 * with err set (its code reaches every reader). release() frees arg; it is
 * called exactly once by packcache_fetch or by the producer thread, after
 * run() (or without run() on a hit).
 */
struct packcache_producer {
	int (*run)(void *arg, struct packcache_sink *sink, struct error *err);
	void (*release)(void *arg);
	void *arg;
};

struct packcache_result {
	int hit;                  /* served from an entry another request created */
	int cached;               /* 0: below min_occurrences, streamed straight through */
	uint64_t served_bytes;    /* bytes copied to out_fd */
	uint64_t generated_bytes; /* the entry's size when this request created it, else 0 */
};

/*
 * Serves key onto out_fd (a blocking socket or pipe), starting p when there
 * is no live entry for key. Blocks until everything was sent. Errors: the
 * producer's error, Internal for file errors, Canceled (with "broken pipe")
 * when out_fd's reader went away.
 */
int packcache_fetch(struct packcache *c, const char *key, int out_fd,
		    const struct packcache_producer *p, struct packcache_result *res,
		    struct error *err);

/*
 * Runs p straight onto out_fd without any cache (the cache is disabled);
 * *bytes receives what it wrote. Consumes p like packcache_fetch.
 */
int packcache_run_direct(int out_fd, const struct packcache_producer *p, uint64_t *bytes,
			 struct error *err);

/* One eviction pass (what the cleaner thread runs every min(max_age, 1m)). */
void packcache_clean(struct packcache *c);

/* Number of entries in the index (for tests). */
size_t packcache_entries(struct packcache *c);

/* The cache directory (borrowed). */
const char *packcache_dir(const struct packcache *c);

#endif
