/*
 * A string-keyed hash map for the limiters: per-repository semaphores and
 * token buckets. Keys are copied; values are borrowed pointers. Not
 * thread-safe: every limiter holds its own lock around it. It grows by
 * doubling, so lookups stay O(1) however many repositories are active.
 */
#ifndef LIMIT_KEYMAP_H
#define LIMIT_KEYMAP_H

#include <stddef.h>

struct keymap_entry {
	struct keymap_entry *next;
	char *key;
	void *value;
};

struct keymap {
	struct keymap_entry **buckets;
	size_t n_buckets; /* a power of two, 0 until the first insert */
	size_t len;
};

#define KEYMAP_INIT { NULL, 0, 0 }

/* The value stored under key, or NULL. */
void *keymap_get(const struct keymap *m, const char *key);

/*
 * Stores value under key (replacing any previous value, which is not
 * freed). Returns 0, or -1 when memory runs out (the map is unchanged).
 */
int keymap_put(struct keymap *m, const char *key, void *value);

/* Removes key; returns its value, or NULL when absent. */
void *keymap_remove(struct keymap *m, const char *key);

/*
 * Calls fn(key, value, arg) for every entry; when fn returns non-zero the
 * entry is removed (its key freed; the value is the caller's to free,
 * normally inside fn). Returns the number of entries removed.
 */
size_t keymap_filter(struct keymap *m, int (*fn)(const char *key, void *value, void *arg),
		     void *arg);

/* Frees the table and the keys (not the values). */
void keymap_release(struct keymap *m);

#endif
