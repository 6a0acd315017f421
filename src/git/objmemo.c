/*
 * Per-handle memo of decoded objects (see objmemo.h).
 */
#include "git/objmemo.h"

#include <stdlib.h>
#include <string.h>

struct memo_slot {
	git_oid id;
	void *value; /* NULL: empty */
	size_t cost;
	void (*free_fn)(void *);
};

struct objmemo {
	struct memo_slot slots[OBJMEMO_SLOTS];
};

static size_t total_bytes;

size_t objmemo_bytes(void)
{
	return __atomic_load_n(&total_bytes, __ATOMIC_RELAXED);
}

struct objmemo *objmemo_new(void)
{
	return calloc(1, sizeof(struct objmemo));
}

static void slot_clear(struct memo_slot *s)
{
	if (!s->value)
		return;
	s->free_fn(s->value);
	__atomic_sub_fetch(&total_bytes, s->cost, __ATOMIC_RELAXED);
	s->value = NULL;
	s->cost = 0;
}

void objmemo_free(struct objmemo *m)
{
	if (!m)
		return;
	for (size_t i = 0; i < OBJMEMO_SLOTS; i++)
		slot_clear(&m->slots[i]);
	free(m);
}

static struct memo_slot *slot_of(struct objmemo *m, const git_oid *id)
{
	/* object ids are uniformly distributed: the last byte will do */
	return &m->slots[id->id[GIT_OID_RAWSZ - 1] % OBJMEMO_SLOTS];
}

void *objmemo_get(struct objmemo *m, const git_oid *id)
{
	struct memo_slot *s = slot_of(m, id);

	return s->value && !git_oid_cmp(&s->id, id) ? s->value : NULL;
}

int objmemo_put(struct objmemo *m, const git_oid *id, void *value, size_t cost,
		void (*free_fn)(void *))
{
	struct memo_slot *s = slot_of(m, id);

	if (cost > OBJMEMO_MAX_COST)
		return 0;
	slot_clear(s);
	git_oid_cpy(&s->id, id);
	s->value = value;
	s->cost = cost;
	s->free_fn = free_fn;
	__atomic_add_fetch(&total_bytes, cost, __ATOMIC_RELAXED);
	return 1;
}
