/*
 * The per-handle memo of decoded objects: a value is found by its id
 * only, a slot's old value is freed when replaced, values over the cost
 * limit stay the caller's, and the byte count follows what is held.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "git/objmemo.h"

static int freed;

static void count_free(void *v)
{
	freed++;
	free(v);
}

static git_oid oid_with(unsigned char first, unsigned char last)
{
	git_oid id;

	memset(&id, 0, sizeof(id));
	id.id[0] = first;
	id.id[GIT_OID_RAWSZ - 1] = last;
	return id;
}

static void test_get_put_replace(void **state)
{
	struct objmemo *m = objmemo_new();
	git_oid a = oid_with(1, 5), b = oid_with(2, 5), c = oid_with(1, 6);
	size_t base = objmemo_bytes();
	char *va = strdup("a"), *vb = strdup("b"), *vc = strdup("c");

	(void)state;
	freed = 0;
	assert_non_null(m);
	assert_null(objmemo_get(m, &a));
	assert_int_equal(objmemo_put(m, &a, va, 100, count_free), 1);
	assert_ptr_equal(objmemo_get(m, &a), va);
	assert_null(objmemo_get(m, &b)); /* same slot, other id */
	assert_int_equal(objmemo_bytes(), base + 100);
	assert_int_equal(objmemo_put(m, &c, vc, 50, count_free), 1);
	assert_ptr_equal(objmemo_get(m, &a), va); /* other slot: both kept */
	assert_ptr_equal(objmemo_get(m, &c), vc);
	/* b takes a's slot: a is freed */
	assert_int_equal(objmemo_put(m, &b, vb, 30, count_free), 1);
	assert_int_equal(freed, 1);
	assert_null(objmemo_get(m, &a));
	assert_ptr_equal(objmemo_get(m, &b), vb);
	assert_int_equal(objmemo_bytes(), base + 80);
	objmemo_free(m);
	assert_int_equal(freed, 3);
	assert_int_equal(objmemo_bytes(), base);
}

static void test_too_costly_stays_callers(void **state)
{
	struct objmemo *m = objmemo_new();
	git_oid a = oid_with(1, 1);
	char *v = strdup("big");

	(void)state;
	freed = 0;
	assert_int_equal(objmemo_put(m, &a, v, OBJMEMO_MAX_COST + 1, count_free), 0);
	assert_null(objmemo_get(m, &a));
	assert_int_equal(freed, 0);
	free(v);
	objmemo_free(m);
	assert_int_equal(freed, 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_get_put_replace),
		cmocka_unit_test(test_too_costly_stays_callers),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
