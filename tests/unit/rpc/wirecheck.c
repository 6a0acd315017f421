/*
 * Tests for rpc/wirecheck.c: NUL bytes in string fields are refused at any
 * depth, NUL in bytes fields is fine, malformed input is refused.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "repository.pb-c.h"
#include "rpc/wirecheck.h"

static size_t pack_create(const char *rel, uint8_t *buf)
{
	Gitaly__Repository repo = GITALY__REPOSITORY__INIT;
	Gitaly__CreateRepositoryRequest req = GITALY__CREATE_REPOSITORY_REQUEST__INIT;

	repo.storage_name = "default";
	repo.relative_path = (char *)rel;
	req.repository = &repo;
	return gitaly__create_repository_request__pack(&req, buf);
}

static void test_clean_request_passes(void **state)
{
	uint8_t buf[256];
	struct error err = ERROR_INIT;
	size_t n = pack_create("a/b.git", buf);

	assert_int_equal(rpc_wire_check_strings(&gitaly__create_repository_request__descriptor, buf, n, &err), 0);
	assert_false(error_is_set(&err));
}

static void test_nul_in_nested_string_refused(void **state)
{
	uint8_t buf[256];
	struct error err = ERROR_INIT;
	size_t n = pack_create("victim.git/../../xx", buf);
	uint8_t *p = memmem(buf, n, "victim.git", 10);

	assert_non_null(p);
	p[10] = '\0'; /* "victim.git\0../../xx" on the wire */
	assert_int_equal(rpc_wire_check_strings(&gitaly__create_repository_request__descriptor, buf, n, &err), -1);
	assert_int_equal(err.code, STATUS_INVALID_ARGUMENT);
	assert_non_null(strstr(err.message, "relative_path"));
	error_release(&err);
}

static void test_nul_in_bytes_field_allowed(void **state)
{
	Gitaly__WriteRefRequest req = GITALY__WRITE_REF_REQUEST__INIT;
	uint8_t buf[256];
	struct error err = ERROR_INIT;
	size_t n;

	req.ref.data = (uint8_t *)"refs/heads/a\0b";
	req.ref.len = 14;
	n = gitaly__write_ref_request__pack(&req, buf);
	assert_int_equal(rpc_wire_check_strings(&gitaly__write_ref_request__descriptor, buf, n, &err), 0);
}

static void test_truncated_input_refused(void **state)
{
	uint8_t buf[256];
	struct error err = ERROR_INIT;
	size_t n = pack_create("a/b.git", buf);

	assert_int_equal(rpc_wire_check_strings(&gitaly__create_repository_request__descriptor, buf, n - 3, &err), -1);
	assert_int_equal(err.code, STATUS_INTERNAL);
	error_release(&err);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_clean_request_passes),
		cmocka_unit_test(test_nul_in_nested_string_refused),
		cmocka_unit_test(test_nul_in_bytes_field_allowed),
		cmocka_unit_test(test_truncated_input_refused),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
