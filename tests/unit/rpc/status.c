/*
 * Tests for src/rpc/status.c: an error carrying a gitaly.LimitError detail is
 * encoded as google.rpc.Status and decoded back with the generated unpacker,
 * so the bytes are checked against the real message definitions.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "errors.pb-c.h"
#include "rpc/status.h"
#include "status.pb-c.h"

static void test_limit_error_roundtrip(void **state)
{
	struct error err = ERROR_INIT;
	struct strbuf out = STRBUF_INIT;
	Gitaly__LimitError limit = GITALY__LIMIT_ERROR__INIT;
	Google__Protobuf__Duration retry = GOOGLE__PROTOBUF__DURATION__INIT;
	Google__Rpc__Status *st;
	Gitaly__LimitError *back;

	retry.seconds = 7;
	retry.nanos = 250;
	limit.error_message = "maximum queue size reached";
	limit.retry_after = &retry;

	error_set(&err, STATUS_RESOURCE_EXHAUSTED, "%s", "maximum queue size reached");
	assert_int_equal(rpc_error_add_detail(&err, &limit.base), 0);
	assert_int_equal(err.n_details, 1);
	assert_string_equal(err.details[0].type_url, "type.googleapis.com/gitaly.LimitError");

	assert_int_equal(rpc_status_encode(&err, &out), 0);
	assert_true(out.len > 0);

	st = google__rpc__status__unpack(NULL, out.len, (const uint8_t *)out.buf);
	assert_non_null(st);
	assert_int_equal(st->code, STATUS_RESOURCE_EXHAUSTED);
	assert_string_equal(st->message, "maximum queue size reached");
	assert_int_equal(st->n_details, 1);
	assert_string_equal(st->details[0]->type_url, "type.googleapis.com/gitaly.LimitError");

	back = gitaly__limit_error__unpack(NULL, st->details[0]->value.len, st->details[0]->value.data);
	assert_non_null(back);
	assert_string_equal(back->error_message, "maximum queue size reached");
	assert_non_null(back->retry_after);
	assert_int_equal(back->retry_after->seconds, 7);
	assert_int_equal(back->retry_after->nanos, 250);

	gitaly__limit_error__free_unpacked(back, NULL);
	google__rpc__status__free_unpacked(st, NULL);
	strbuf_release(&out);
	error_release(&err);
}

/* Known bytes: code 5, message "x", no details -> 08 05 12 01 78. */
static void test_encode_exact_bytes(void **state)
{
	struct error err = ERROR_INIT;
	struct strbuf out = STRBUF_INIT;
	static const uint8_t want[] = { 0x08, 0x05, 0x12, 0x01, 'x' };

	error_set(&err, STATUS_NOT_FOUND, "x");
	assert_int_equal(rpc_status_encode(&err, &out), 0);
	assert_int_equal(out.len, sizeof(want));
	assert_memory_equal(out.buf, want, sizeof(want));
	strbuf_release(&out);
	error_release(&err);
}

/* Two details keep their order; encoding appends to what out already holds. */
static void test_two_details_append(void **state)
{
	struct error err = ERROR_INIT;
	struct strbuf out = STRBUF_INIT;
	Gitaly__LimitError a = GITALY__LIMIT_ERROR__INIT;
	Gitaly__ReferenceNotFoundError b = GITALY__REFERENCE_NOT_FOUND_ERROR__INIT;
	Google__Rpc__Status *st;
	Gitaly__ReferenceNotFoundError *rb;

	a.error_message = "a";
	b.reference_name.data = (uint8_t *)"refs/heads/main";
	b.reference_name.len = strlen("refs/heads/main");
	error_set(&err, STATUS_FAILED_PRECONDITION, "two");
	assert_int_equal(rpc_error_add_detail(&err, &a.base), 0);
	assert_int_equal(rpc_error_add_detail(&err, &b.base), 0);
	assert_int_equal(rpc_error_add_detail(&err, NULL), -1);
	assert_int_equal(err.n_details, 2);

	assert_int_equal(strbuf_adds(&out, "pre"), 0);
	assert_int_equal(rpc_status_encode(&err, &out), 0);
	assert_memory_equal(out.buf, "pre", 3);
	st = google__rpc__status__unpack(NULL, out.len - 3, (const uint8_t *)out.buf + 3);
	assert_non_null(st);
	assert_int_equal(st->code, STATUS_FAILED_PRECONDITION);
	assert_int_equal(st->n_details, 2);
	assert_string_equal(st->details[0]->type_url, "type.googleapis.com/gitaly.LimitError");
	assert_string_equal(st->details[1]->type_url,
			    "type.googleapis.com/gitaly.ReferenceNotFoundError");
	rb = gitaly__reference_not_found_error__unpack(NULL, st->details[1]->value.len,
						       st->details[1]->value.data);
	assert_non_null(rb);
	assert_int_equal(rb->reference_name.len, strlen("refs/heads/main"));
	assert_memory_equal(rb->reference_name.data, "refs/heads/main", rb->reference_name.len);
	gitaly__reference_not_found_error__free_unpacked(rb, NULL);
	google__rpc__status__free_unpacked(st, NULL);
	strbuf_release(&out);
	error_release(&err);
}

/* A cap too small for the encoding fails and leaves out unchanged. */
static void test_cap_exceeded(void **state)
{
	struct error err = ERROR_INIT;
	struct strbuf out;

	strbuf_init(&out, 4);
	error_set(&err, STATUS_INTERNAL, "a message longer than the cap");
	assert_int_equal(rpc_status_encode(&err, &out), -1);
	assert_int_equal(out.len, 0);
	strbuf_release(&out);
	error_release(&err);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_limit_error_roundtrip),
		cmocka_unit_test(test_encode_exact_bytes),
		cmocka_unit_test(test_two_details_append),
		cmocka_unit_test(test_cap_exceeded),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
