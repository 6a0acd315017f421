/*
 * Chained hash map from strings to pointers (FNV-1a hash, power-of-two
 * table, doubled when the load passes 1). Used by the concurrency and rate
 * limiters, whose keys are repository paths chosen by clients: the table
 * grows with the number of live keys and the limiters bound that number.
 */
#include "limit/keymap.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

static uint64_t hash_str(const char *s)
{
	uint64_t h = 1469598103934665603ULL;
	for (; *s; s++) {
		h ^= (unsigned char)*s;
		h *= 1099511628211ULL;
	}
	return h;
}

static struct keymap_entry **slot_of(const struct keymap *m, const char *key)
{
	struct keymap_entry **p = &m->buckets[hash_str(key) & (m->n_buckets - 1)];
	while (*p && strcmp((*p)->key, key))
		p = &(*p)->next;
	return p;
}

void *keymap_get(const struct keymap *m, const char *key)
{
	if (!m->n_buckets)
		return NULL;
	struct keymap_entry *e = *slot_of(m, key);
	return e ? e->value : NULL;
}

static int grow(struct keymap *m)
{
	size_t n = m->n_buckets ? m->n_buckets * 2 : 16;
	struct keymap_entry **b = calloc(n, sizeof(*b));

	if (!b)
		return -1;
	for (size_t i = 0; i < m->n_buckets; i++) {
		struct keymap_entry *e = m->buckets[i];
		while (e) {
			struct keymap_entry *next = e->next;
			size_t j = hash_str(e->key) & (n - 1);
			e->next = b[j];
			b[j] = e;
			e = next;
		}
	}
	free(m->buckets);
	m->buckets = b;
	m->n_buckets = n;
	return 0;
}

int keymap_put(struct keymap *m, const char *key, void *value)
{
	struct keymap_entry **p, *e;

	if (m->len >= m->n_buckets && grow(m) < 0 && !m->n_buckets)
		return -1;
	p = slot_of(m, key);
	if (*p) {
		(*p)->value = value;
		return 0;
	}
	e = malloc(sizeof(*e));
	if (!e)
		return -1;
	e->key = strdup(key);
	if (!e->key) {
		free(e);
		return -1;
	}
	e->value = value;
	e->next = NULL;
	*p = e;
	m->len++;
	return 0;
}

void *keymap_remove(struct keymap *m, const char *key)
{
	struct keymap_entry **p, *e;
	void *v;

	if (!m->n_buckets)
		return NULL;
	p = slot_of(m, key);
	e = *p;
	if (!e)
		return NULL;
	*p = e->next;
	v = e->value;
	free(e->key);
	free(e);
	m->len--;
	return v;
}

size_t keymap_filter(struct keymap *m, int (*fn)(const char *key, void *value, void *arg),
		     void *arg)
{
	size_t removed = 0;

	for (size_t i = 0; i < m->n_buckets; i++) {
		struct keymap_entry **p = &m->buckets[i];
		while (*p) {
			struct keymap_entry *e = *p;
			if (fn(e->key, e->value, arg)) {
				*p = e->next;
				free(e->key);
				free(e);
				m->len--;
				removed++;
			} else {
				p = &e->next;
			}
		}
	}
	return removed;
}

void keymap_release(struct keymap *m)
{
	for (size_t i = 0; i < m->n_buckets; i++) {
		struct keymap_entry *e = m->buckets[i];
		while (e) {
			struct keymap_entry *next = e->next;
			free(e->key);
			free(e);
			e = next;
		}
	}
	free(m->buckets);
	m->buckets = NULL;
	m->n_buckets = 0;
	m->len = 0;
}
