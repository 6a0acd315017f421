/*
 * Tests for src/rpc/correlation.c: generated ids are 26 Crockford base32
 * characters whose first 10 decode to the current Unix milliseconds, ids do
 * not repeat, and received ids are kept unless empty or oversized.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <time.h>

#include <cmocka.h>

#include "rpc/correlation.h"

static const char alphabet[] = "0123456789ABCDEFGHJKMNPQRSTVWXYZ";

static uint64_t now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

static void test_shape_and_time(void **state)
{
	char id[CORRELATION_ID_LEN + 1];
	uint64_t before = now_ms(), after, ms = 0;

	(void)state;
	assert_int_equal(correlation_id_new(id, sizeof(id)), 0);
	after = now_ms();
	assert_int_equal(strlen(id), 26);
	for (int i = 0; i < 26; i++)
		assert_non_null(strchr(alphabet, id[i]));
	/* 10 characters = 50 bits, the top 2 of which are zero padding */
	for (int i = 0; i < 10; i++)
		ms = ms << 5 | (uint64_t)(strchr(alphabet, id[i]) - alphabet);
	assert_true(ms >= before && ms <= after);
	assert_true(id[0] <= '7');
}

static void test_unique(void **state)
{
	static char ids[2000][CORRELATION_ID_LEN + 1];

	(void)state;
	for (int i = 0; i < 2000; i++)
		assert_int_equal(correlation_id_new(ids[i], sizeof(ids[i])), 0);
	for (int i = 0; i < 2000; i++)
		for (int j = i + 1; j < 2000; j++)
			assert_string_not_equal(ids[i], ids[j]);
}

static void test_small_buffer(void **state)
{
	char small[CORRELATION_ID_LEN] = "x";

	(void)state;
	assert_int_equal(correlation_id_new(small, sizeof(small)), -1);
	assert_string_equal(small, "");
}

static void test_from_metadata(void **state)
{
	char buf[CORRELATION_ID_LEN + 1];
	char big[CORRELATION_MAX_LEN + 2];
	const char *got;

	(void)state;
	assert_string_equal(correlation_from_metadata("abc-123", buf, sizeof(buf)), "abc-123");
	got = correlation_from_metadata(NULL, buf, sizeof(buf));
	assert_ptr_equal(got, buf);
	assert_int_equal(strlen(got), 26);
	got = correlation_from_metadata("", buf, sizeof(buf));
	assert_int_equal(strlen(got), 26);
	memset(big, 'a', sizeof(big) - 1);
	big[sizeof(big) - 1] = '\0';
	got = correlation_from_metadata(big, buf, sizeof(buf));
	assert_int_equal(strlen(got), 26);
	big[CORRELATION_MAX_LEN] = '\0';
	assert_ptr_equal(correlation_from_metadata(big, buf, sizeof(buf)), big);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_shape_and_time),
		cmocka_unit_test(test_unique),
		cmocka_unit_test(test_small_buffer),
		cmocka_unit_test(test_from_metadata),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
