/*
 * Tests for src/limit/rate.c: a bucket starts full with `burst` tokens,
 * refills one token per interval and never beyond the burst, keys are
 * independent, idle buckets are pruned after 10 intervals, and the number
 * of buckets is capped by evicting the least recently used.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include <cmocka.h>

#include "limit/rate.h"

#define MS 1000LL
#define T0 (1000000LL * 1000) /* an arbitrary monotonic start */

static void test_rejects_bad_settings(void **state)
{
	(void)state;
	assert_null(rate_limiter_new(0, 1));
	assert_null(rate_limiter_new(1000, 0));
	assert_null(rate_limiter_new(-1, 5));
}

static void test_burst_then_refill(void **state)
{
	(void)state;
	struct rate_limiter *r = rate_limiter_new(1000, 2);

	assert_int_equal(rate_limiter_allow(r, "a", T0), 1);
	assert_int_equal(rate_limiter_allow(r, "a", T0), 1);
	assert_int_equal(rate_limiter_allow(r, "a", T0), 0);
	assert_int_equal(rate_limiter_allow(r, "a", T0 + 999 * MS), 0);
	/* A refused request costs nothing: the token is there at 1 s. */
	assert_int_equal(rate_limiter_allow(r, "a", T0 + 1000 * MS), 1);
	assert_int_equal(rate_limiter_allow(r, "a", T0 + 1000 * MS), 0);
	assert_int_equal(rate_limiter_allow(r, "a", T0 + 1500 * MS), 0);
	assert_int_equal(rate_limiter_allow(r, "a", T0 + 2000 * MS), 1);
	/* A long idle time refills only up to the burst. */
	assert_int_equal(rate_limiter_allow(r, "a", T0 + 60000 * MS), 1);
	assert_int_equal(rate_limiter_allow(r, "a", T0 + 60000 * MS), 1);
	assert_int_equal(rate_limiter_allow(r, "a", T0 + 60000 * MS), 0);
	/* Time going backwards refills nothing. */
	assert_int_equal(rate_limiter_allow(r, "a", T0 + 30000 * MS), 0);
	rate_limiter_free(r);
}

static void test_keys_are_independent(void **state)
{
	(void)state;
	struct rate_limiter *r = rate_limiter_new(60000, 1);

	assert_int_equal(rate_limiter_allow(r, "repo-a", T0), 1);
	assert_int_equal(rate_limiter_allow(r, "repo-a", T0 + MS), 0);
	assert_int_equal(rate_limiter_allow(r, "repo-b", T0 + MS), 1);
	assert_int_equal(rate_limiter_allow(r, "repo-b", T0 + 2 * MS), 0);
	assert_int_equal(rate_limiter_n_buckets(r), 2);
	rate_limiter_free(r);
}

static void test_prune_idle_buckets(void **state)
{
	(void)state;
	struct rate_limiter *r = rate_limiter_new(100, 1);

	assert_int_equal(rate_limiter_allow(r, "old", T0), 1);
	assert_int_equal(rate_limiter_allow(r, "new", T0 + 500 * MS), 1);
	/* exactly 10 intervals idle: kept */
	assert_int_equal(rate_limiter_prune(r, T0 + 1000 * MS), 0);
	assert_int_equal(rate_limiter_n_buckets(r), 2);
	/* beyond: dropped, the recent one stays */
	assert_int_equal(rate_limiter_prune(r, T0 + 1000 * MS + 1), 1);
	assert_int_equal(rate_limiter_n_buckets(r), 1);
	/* a pruned key starts again with a full bucket */
	assert_int_equal(rate_limiter_allow(r, "old", T0 + 1001 * MS), 1);
	assert_int_equal(rate_limiter_allow(r, "old", T0 + 1001 * MS), 0);
	assert_int_equal(rate_limiter_prune(r, T0 + 100000 * MS), 2);
	assert_int_equal(rate_limiter_n_buckets(r), 0);
	rate_limiter_free(r);
}

static void test_bucket_cap_evicts_lru(void **state)
{
	(void)state;
	struct rate_limiter *r = rate_limiter_new(3600 * 1000, 1);
	char key[32];

	for (int i = 0; i < RATE_MAX_BUCKETS; i++) {
		snprintf(key, sizeof(key), "k%d", i);
		assert_int_equal(rate_limiter_allow(r, key, T0 + i), 1);
	}
	assert_int_equal(rate_limiter_n_buckets(r), RATE_MAX_BUCKETS);
	/* k1 used again: the least recently used is now k0 */
	assert_int_equal(rate_limiter_allow(r, "k1", T0 + RATE_MAX_BUCKETS), 0);
	assert_int_equal(rate_limiter_allow(r, "fresh", T0 + RATE_MAX_BUCKETS + 1), 1);
	assert_int_equal(rate_limiter_n_buckets(r), RATE_MAX_BUCKETS);
	/* k0 was evicted (full bucket again), k1 was not (still empty) */
	assert_int_equal(rate_limiter_allow(r, "k1", T0 + RATE_MAX_BUCKETS + 2), 0);
	assert_int_equal(rate_limiter_allow(r, "k0", T0 + RATE_MAX_BUCKETS + 3), 1);
	rate_limiter_free(r);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_rejects_bad_settings),
		cmocka_unit_test(test_burst_then_refill),
		cmocka_unit_test(test_keys_are_independent),
		cmocka_unit_test(test_prune_idle_buckets),
		cmocka_unit_test(test_bucket_cap_evicts_lru),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
