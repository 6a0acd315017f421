/*
 * BlobService helpers that need no server: upstream's LFS pointer check
 * (odb_is_lfs_pointer, on the pointers git-lfs writes and near misses),
 * the --batch-check line parser and the List* revision validation.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "git/odb.h"
#include "service/blob_internal.h"

#define OID64 "4d7a214614ab2935c943f9e0ff69d22eadbb8f32b1258daaa5e2ca24d17e2393"

static int lfs(const char *s)
{
	return odb_is_lfs_pointer(s, strlen(s));
}

static void test_lfs_pointer(void **state)
{
	(void)state;
	assert_true(lfs("version https://git-lfs.github.com/spec/v1\noid sha256:" OID64
			"\nsize 12345\n"));
	/* No trailing newline, extra keys, other spec versions: still pointers. */
	assert_true(lfs("version https://git-lfs.github.com/spec/v1\noid sha256:" OID64
			"\nsize 1"));
	assert_true(lfs("version https://git-lfs.github.com/spec/v1\next-0-foo sha256:x\noid "
			"sha256:" OID64 "\nsize 0\n"));
	assert_true(lfs("version https://git-lfs.github.com/spec/v2\nsize 3\noid sha256:" OID64
			"\n"));
	/* Near misses. */
	assert_false(lfs(""));
	assert_false(lfs(" version https://git-lfs.github.com/spec/v1\noid sha256:" OID64
			 "\nsize 1\n"));
	assert_false(lfs("version https://hawser.github.com/spec/v1\noid sha256:" OID64
			 "\nsize 1\n"));
	assert_false(lfs("version https://git-lfs.github.com/spec/v1\noid sha256:"
			 "4D7A214614AB2935C943F9E0FF69D22EADBB8F32B1258DAAA5E2CA24D17E2393\nsize 1\n"));
	assert_false(lfs("version https://git-lfs.github.com/spec/v1\noid sha256:" OID64
			 "0\nsize 1\n"));
	assert_false(lfs("version https://git-lfs.github.com/spec/v1\noid sha256:" OID64
			 "\nsize \n"));
	assert_false(lfs("version https://git-lfs.github.com/spec/v1\noid sha256:" OID64
			 "\nsize 12a\n"));
	assert_false(lfs("version https://git-lfs.github.com/spec/v1\n oid sha256:" OID64
			 "\nsize 1\n"));
	assert_false(lfs("version https://git-lfs.github.com/spec/v1\noid sha256:" OID64
			 "\r\nsize 1\n"));
	/* NUL inside the digits is not a digit. */
	assert_false(odb_is_lfs_pointer("version https://git-lfs.github.com/spec/v1\noid sha256:"
					OID64 "\nsize 1\0" "2\n",
					strlen("version https://git-lfs.github.com/spec/v1\noid "
					       "sha256:" OID64 "\nsize 1") + 3));
}

static void test_batch_check_parse(void **state)
{
	char oid[48], type[16];
	int64_t size = -1;

	(void)state;
	assert_int_equal(blob_parse_batch_check("0123456789012345678901234567890123456789 blob 42",
						oid, sizeof(oid), type, sizeof(type), &size),
			 0);
	assert_string_equal(oid, "0123456789012345678901234567890123456789");
	assert_string_equal(type, "blob");
	assert_int_equal(size, 42);
	assert_int_equal(blob_parse_batch_check("abc tree", oid, sizeof(oid), type, sizeof(type),
						&size),
			 -1);
	assert_int_equal(blob_parse_batch_check("abc blob -1", oid, sizeof(oid), type,
						sizeof(type), &size),
			 -1);
	assert_int_equal(blob_parse_batch_check("abc blob 12x", oid, sizeof(oid), type,
						sizeof(type), &size),
			 -1);
	assert_int_equal(blob_parse_batch_check("abc averyveryverylongtype 1", oid, sizeof(oid),
						type, sizeof(type), &size),
			 -1);
}

static void test_revisions(void **state)
{
	struct error err = ERROR_INIT;
	char *ok[] = { "main", "--all", "--not", "^side", "a..b" };
	char *bad[] = { "main", "--branches" };

	(void)state;
	assert_int_equal(blob_validate_revisions(ok, 5, &err), 0);
	assert_int_equal(blob_validate_revisions(ok, 0, &err), -1);
	assert_int_equal(err.code, STATUS_INVALID_ARGUMENT);
	assert_string_equal(err.message, "missing revisions");
	error_release(&err);
	assert_int_equal(blob_validate_revisions(bad, 2, &err), -1);
	assert_string_equal(err.message, "invalid revision: \"--branches\"");
	error_release(&err);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_lfs_pointer),
		cmocka_unit_test(test_batch_check_parse),
		cmocka_unit_test(test_revisions),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
