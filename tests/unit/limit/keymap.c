/*
 * Tests for src/limit/keymap.c: put/get/remove, replacing a value, growth
 * past many keys, and filtering entries out.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include <cmocka.h>

#include "limit/keymap.h"

static void test_basic(void **state)
{
	(void)state;
	struct keymap m = KEYMAP_INIT;
	int a, b;

	assert_null(keymap_get(&m, "x"));
	assert_null(keymap_remove(&m, "x"));
	assert_int_equal(keymap_put(&m, "x", &a), 0);
	assert_ptr_equal(keymap_get(&m, "x"), &a);
	assert_int_equal(keymap_put(&m, "x", &b), 0);
	assert_ptr_equal(keymap_get(&m, "x"), &b);
	assert_int_equal(m.len, 1);
	assert_null(keymap_get(&m, "y"));
	assert_ptr_equal(keymap_remove(&m, "x"), &b);
	assert_int_equal(m.len, 0);
	assert_null(keymap_get(&m, "x"));
	keymap_release(&m);
}

static int drop_odd(const char *key, void *value, void *arg)
{
	(void)key;
	(*(int *)arg)++;
	return (int)(intptr_t)value % 2;
}

static void test_growth_and_filter(void **state)
{
	(void)state;
	struct keymap m = KEYMAP_INIT;
	char key[64];
	int visited = 0;

	for (intptr_t i = 1; i <= 5000; i++) {
		snprintf(key, sizeof(key), "@hashed/%ld.git", (long)i);
		assert_int_equal(keymap_put(&m, key, (void *)i), 0);
	}
	assert_int_equal(m.len, 5000);
	for (intptr_t i = 1; i <= 5000; i++) {
		snprintf(key, sizeof(key), "@hashed/%ld.git", (long)i);
		assert_ptr_equal(keymap_get(&m, key), (void *)i);
	}
	assert_int_equal(keymap_filter(&m, drop_odd, &visited), 2500);
	assert_int_equal(visited, 5000);
	assert_int_equal(m.len, 2500);
	assert_null(keymap_get(&m, "@hashed/1.git"));
	assert_ptr_equal(keymap_get(&m, "@hashed/2.git"), (void *)2);
	keymap_release(&m);
	assert_int_equal(m.len, 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_basic),
		cmocka_unit_test(test_growth_and_filter),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
