/*
 * Tests for src/rpc/accesslog.c: the logger writes into a temporary file,
 * each emitted line is parsed back as JSON and its keys and values are
 * compared with what upstream logs for the same call (field names, code
 * names, levels, local timestamps, omitted placeholders), and the method
 * allow/deny filter is exercised including its "errors always log" rule.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "base/log.h"
#include "rpc/accesslog.h"

static int log_fd = -1;

/* Everything logged since the last call, as one string. */
static char *take_log(void)
{
	off_t len = lseek(log_fd, 0, SEEK_END);
	char *buf = calloc(1, (size_t)len + 1);

	assert_non_null(buf);
	assert_int_equal(pread(log_fd, buf, (size_t)len, 0), len);
	assert_int_equal(ftruncate(log_fd, 0), 0);
	lseek(log_fd, 0, SEEK_SET);
	return buf;
}

/* Emits e and returns the parsed line, or NULL when nothing was logged. */
static json_t *emit(const struct accesslog_entry *e)
{
	char *text;
	json_t *line = NULL;
	json_error_t jerr;

	accesslog_emit(e);
	text = take_log();
	if (*text) {
		char *nl = strchr(text, '\n');
		assert_non_null(nl);
		assert_int_equal(nl[1], '\0'); /* exactly one line */
		line = json_loads(text, 0, &jerr);
		assert_non_null(line);
		/* keys sorted and unique, as jansson's JSON_SORT_KEYS writes them
		 * (jansson keeps the order of the text when parsing) */
		{
			const char *key, *prev = NULL;
			json_t *v;
			json_object_foreach(line, key, v) {
				if (prev)
					assert_true(strcmp(prev, key) < 0);
				prev = key;
			}
		}
	}
	free(text);
	return line;
}

static const char *str(json_t *o, const char *key)
{
	json_t *v = json_object_get(o, key);
	if (!v || !json_is_string(v)) {
		print_error("missing string field %s\n", key);
		fail();
	}
	return json_string_value(v);
}

static void base_entry(struct accesslog_entry *e)
{
	memset(e, 0, sizeof(*e));
	e->service = "gitaly.ServerService";
	e->method = "ServerInfo";
	e->type = RPC_UNARY;
	e->op = RPC_OP_ACCESSOR;
	e->scope = RPC_SCOPE_STORAGE;
	e->start.tv_sec = 1700000000; /* 2023-11-14T22:13:20 UTC */
	e->start.tv_nsec = 123999999;
	e->time_ms = 1.2345678;
	e->code = STATUS_OK;
	e->correlation_id = "01HF00000000000000000000AB";
}

static void test_unary_ok_fields(void **state)
{
	struct accesslog_entry e;
	json_t *l;
	const char *key;
	json_t *v;
	size_t n = 0;
	static const char *const expected_keys[] = {
		"component", "system", "span.kind", "grpc.service", "grpc.method",
		"grpc.start_time", "grpc.meta.deadline_type", "grpc.meta.method_type",
		"grpc.meta.method_operation", "grpc.meta.method_scope", "grpc.request.fullMethod",
		"correlation_id", "grpc.code", "grpc.time_ms", "grpc.request.payload_bytes",
		"grpc.response.payload_bytes", "level", "msg", "pid", "time", "grpc.meta.client_name",
		"remote_ip", "user_id", "username",
	};

	(void)state;
	base_entry(&e);
	e.client_name = "gitlab-web";
	e.call_site = "unknown"; /* upstream's placeholder: omitted */
	e.auth_version = "";
	e.remote_ip = "10.0.0.1";
	e.user_id = "42";
	e.username = "alice";
	e.request_bytes = 17;
	e.response_bytes = 1234;
	l = emit(&e);
	assert_non_null(l);
	assert_string_equal(str(l, "level"), "info");
	assert_string_equal(str(l, "msg"), "finished unary call with code OK");
	assert_string_equal(str(l, "component"), "gitaly.UnaryServerInterceptor");
	assert_string_equal(str(l, "system"), "grpc");
	assert_string_equal(str(l, "span.kind"), "server");
	assert_string_equal(str(l, "grpc.service"), "gitaly.ServerService");
	assert_string_equal(str(l, "grpc.method"), "ServerInfo");
	assert_string_equal(str(l, "grpc.start_time"), "2023-11-14T22:13:20.123");
	assert_string_equal(str(l, "grpc.code"), "OK");
	assert_true(json_is_real(json_object_get(l, "grpc.time_ms")));
	assert_true(json_real_value(json_object_get(l, "grpc.time_ms")) == 1.234);
	assert_string_equal(str(l, "grpc.meta.deadline_type"), "none");
	assert_string_equal(str(l, "grpc.meta.method_type"), "unary");
	assert_string_equal(str(l, "grpc.meta.method_operation"), "accessor");
	assert_string_equal(str(l, "grpc.meta.method_scope"), "storage");
	assert_string_equal(str(l, "grpc.meta.client_name"), "gitlab-web");
	assert_string_equal(str(l, "grpc.request.fullMethod"), "/gitaly.ServerService/ServerInfo");
	assert_string_equal(str(l, "correlation_id"), "01HF00000000000000000000AB");
	assert_string_equal(str(l, "remote_ip"), "10.0.0.1");
	assert_string_equal(str(l, "user_id"), "42");
	assert_string_equal(str(l, "username"), "alice");
	assert_int_equal(json_integer_value(json_object_get(l, "grpc.request.payload_bytes")), 17);
	assert_int_equal(json_integer_value(json_object_get(l, "grpc.response.payload_bytes")), 1234);
	assert_int_equal(json_integer_value(json_object_get(l, "pid")), getpid());
	/* nothing else: no error, deadline, call_site, auth_version, repo fields */
	json_object_foreach(l, key, v) {
		size_t i;
		for (i = 0; i < sizeof(expected_keys) / sizeof(expected_keys[0]); i++)
			if (!strcmp(key, expected_keys[i]))
				break;
		if (i == sizeof(expected_keys) / sizeof(expected_keys[0])) {
			print_error("unexpected key %s\n", key);
			fail();
		}
		n++;
	}
	assert_int_equal(n, sizeof(expected_keys) / sizeof(expected_keys[0]));
	json_decref(l);
}

static void test_stream_error_with_deadline(void **state)
{
	struct accesslog_entry e;
	json_t *l;

	(void)state;
	base_entry(&e);
	e.service = "gitaly.RefService";
	e.method = "FindAllBranches";
	e.type = RPC_SERVER_STREAM;
	e.op = RPC_OP_MUTATOR;
	e.scope = RPC_SCOPE_REPOSITORY;
	e.code = STATUS_NOT_FOUND;
	e.error = "repository not found";
	e.deadline_unix_ms = 1700000055007LL;
	e.deadline_type = "regular";
	e.call_site = "Gitlab::GitalyClient::RefService#branches";
	e.auth_version = "v2";
	e.storage_name = "default";
	e.has_repository = 1;
	e.repo_storage = "default";
	e.repo_path = "@hashed/aa/bb/x.git";
	e.gl_repository = NULL; /* still present, empty */
	e.gl_project_path = "group/project";
	l = emit(&e);
	assert_non_null(l);
	assert_string_equal(str(l, "level"), "info");
	assert_string_equal(str(l, "msg"), "finished streaming call with code NotFound");
	assert_string_equal(str(l, "component"), "gitaly.StreamServerInterceptor");
	assert_string_equal(str(l, "grpc.code"), "NotFound");
	assert_string_equal(str(l, "error"), "repository not found");
	assert_string_equal(str(l, "grpc.request.deadline"), "2023-11-14T22:14:15.007");
	assert_string_equal(str(l, "grpc.meta.deadline_type"), "regular");
	assert_string_equal(str(l, "grpc.meta.method_type"), "server_stream");
	assert_string_equal(str(l, "grpc.meta.method_operation"), "mutator");
	assert_string_equal(str(l, "grpc.meta.method_scope"), "repository");
	assert_string_equal(str(l, "grpc.meta.call_site"), "Gitlab::GitalyClient::RefService#branches");
	assert_string_equal(str(l, "grpc.meta.auth_version"), "v2");
	assert_string_equal(str(l, "grpc.request.StorageName"), "default");
	assert_string_equal(str(l, "grpc.request.repoStorage"), "default");
	assert_string_equal(str(l, "grpc.request.repoPath"), "@hashed/aa/bb/x.git");
	assert_string_equal(str(l, "grpc.request.glRepository"), "");
	assert_string_equal(str(l, "grpc.request.glProjectPath"), "group/project");
	assert_null(json_object_get(l, "grpc.request.pool.storage"));
	json_decref(l);

	/* a deadline without deadline_type metadata: "unknown", so omitted */
	e.deadline_type = NULL;
	l = emit(&e);
	assert_null(json_object_get(l, "grpc.meta.deadline_type"));
	json_decref(l);
}

static void test_levels(void **state)
{
	static const struct { int code; const char *level; const char *name; } cases[] = {
		{ STATUS_CANCELLED, "info", "Canceled" },
		{ STATUS_INVALID_ARGUMENT, "info", "InvalidArgument" },
		{ STATUS_ALREADY_EXISTS, "info", "AlreadyExists" },
		{ STATUS_UNAUTHENTICATED, "info", "Unauthenticated" },
		{ STATUS_DEADLINE_EXCEEDED, "warning", "DeadlineExceeded" },
		{ STATUS_PERMISSION_DENIED, "warning", "PermissionDenied" },
		{ STATUS_RESOURCE_EXHAUSTED, "warning", "ResourceExhausted" },
		{ STATUS_FAILED_PRECONDITION, "warning", "FailedPrecondition" },
		{ STATUS_ABORTED, "warning", "Aborted" },
		{ STATUS_OUT_OF_RANGE, "warning", "OutOfRange" },
		{ STATUS_UNAVAILABLE, "warning", "Unavailable" },
		{ STATUS_UNKNOWN, "error", "Unknown" },
		{ STATUS_UNIMPLEMENTED, "error", "Unimplemented" },
		{ STATUS_INTERNAL, "error", "Internal" },
		{ STATUS_DATA_LOSS, "error", "DataLoss" },
	};
	struct accesslog_entry e;

	(void)state;
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		json_t *l;
		char msg[128];
		base_entry(&e);
		e.code = cases[i].code;
		e.error = "boom";
		l = emit(&e);
		assert_non_null(l);
		assert_string_equal(str(l, "level"), cases[i].level);
		snprintf(msg, sizeof(msg), "finished unary call with code %s", cases[i].name);
		assert_string_equal(str(l, "msg"), msg);
		assert_string_equal(str(l, "grpc.code"), cases[i].name);
		assert_string_equal(str(l, "error"), "boom");
		json_decref(l);
	}
}

static void test_filter(void **state)
{
	struct accesslog_entry e;
	struct error err = ERROR_INIT;
	json_t *l;

	(void)state;
	/* default: successful health checks are dropped, failing ones kept */
	base_entry(&e);
	e.service = "grpc.health.v1.Health";
	e.method = "Check";
	e.op = RPC_OP_UNKNOWN;
	assert_null(emit(&e));
	assert_false(accesslog_method_logged("/grpc.health.v1.Health/Check"));
	e.code = STATUS_UNAVAILABLE;
	e.error = "down";
	l = emit(&e);
	assert_non_null(l);
	assert_string_equal(str(l, "level"), "warning");
	/* methods outside gitaly's registry have no operation or scope */
	assert_null(json_object_get(l, "grpc.meta.method_operation"));
	assert_null(json_object_get(l, "grpc.meta.method_scope"));
	json_decref(l);

	/* an allow pattern wins over the deny pattern */
	assert_int_equal(accesslog_set_patterns("^/gitaly\\.RefService/", "^/gitaly", &err), 0);
	assert_true(accesslog_method_logged("/gitaly.RefService/FindAllBranches"));
	assert_false(accesslog_method_logged("/gitaly.ServerService/ServerInfo"));
	assert_true(accesslog_method_logged("/gitaly.RefService/X"));
	base_entry(&e);
	assert_null(emit(&e));
	e.code = STATUS_INTERNAL;
	l = emit(&e);
	assert_non_null(l);
	assert_string_equal(str(l, "error"), "Internal"); /* no message: the code name */
	json_decref(l);

	/* a bad pattern is refused and the previous filter stays */
	assert_int_equal(accesslog_set_patterns("([", NULL, &err), -1);
	assert_int_equal(err.code, STATUS_INVALID_ARGUMENT);
	error_release(&err);
	assert_false(accesslog_method_logged("/gitaly.ServerService/ServerInfo"));

	/* deny only */
	assert_int_equal(accesslog_set_patterns(NULL, "Info$", &err), 0);
	assert_false(accesslog_method_logged("/gitaly.ServerService/ServerInfo"));
	assert_true(accesslog_method_logged("/grpc.health.v1.Health/Check"));

	/* no patterns: everything (answers remembered per thread are dropped) */
	assert_int_equal(accesslog_set_patterns("", "", &err), 0);
	assert_true(accesslog_method_logged("/grpc.health.v1.Health/Check"));
	assert_true(accesslog_method_logged("/gitaly.ServerService/ServerInfo"));
	assert_true(accesslog_method_logged("/gitaly.ServerService/ServerInfo"));
	base_entry(&e);
	l = emit(&e);
	assert_non_null(l);
	json_decref(l);
}

static void test_custom_fields_pool_flags(void **state)
{
	struct accesslog_entry e;
	json_t *custom = json_pack("{s:i, s:s}", "command.count", 3, "limit.limiting_key", "k");
	json_t *l;

	(void)state;
	base_entry(&e);
	e.custom_fields = custom;
	e.feature_flags = "flag_a flag_b";
	e.has_pool_repository = 1;
	e.pool_storage = "default";
	e.pool_relative_path = "@pools/aa/bb/cc.git";
	e.pool_source_project_path = "";
	l = emit(&e);
	assert_non_null(l);
	assert_int_equal(json_integer_value(json_object_get(l, "command.count")), 3);
	assert_string_equal(str(l, "limit.limiting_key"), "k");
	assert_string_equal(str(l, "feature_flags"), "flag_a flag_b");
	assert_string_equal(str(l, "grpc.request.pool.storage"), "default");
	assert_string_equal(str(l, "grpc.request.pool.relativePath"), "@pools/aa/bb/cc.git");
	assert_string_equal(str(l, "grpc.request.pool.sourceProjectPath"), "");
	/* borrowed: still ours, unchanged */
	assert_int_equal(custom->refcount, 1);
	assert_int_equal(json_object_size(custom), 2);
	json_decref(l);
	json_decref(custom);
}

static void test_level_threshold(void **state)
{
	struct accesslog_entry e;

	(void)state;
	log_configure(LOG_FORMAT_JSON, LOG_WARN, log_fd);
	base_entry(&e);
	assert_null(emit(&e));
	e.code = STATUS_INTERNAL;
	json_t *l = emit(&e);
	assert_non_null(l);
	json_decref(l);
	log_configure(LOG_FORMAT_JSON, LOG_INFO, log_fd);
}

static void test_names(void **state)
{
	(void)state;
	assert_string_equal(accesslog_method_type_name(RPC_CLIENT_STREAM), "client_stream");
	assert_string_equal(accesslog_method_type_name(RPC_BIDI_STREAM), "bidi_stream");
	assert_string_equal(accesslog_op_name(RPC_OP_MAINTENANCE), "maintenance");
	assert_null(accesslog_op_name(RPC_OP_UNKNOWN));
}

static int setup(void **state)
{
	char path[] = "/tmp/accesslog-test-XXXXXX";

	(void)state;
	unsetenv("GITALY_LOG_REQUEST_METHOD_ALLOW_PATTERN");
	unsetenv("GITALY_LOG_REQUEST_METHOD_DENY_PATTERN");
	setenv("TZ", "UTC", 1);
	tzset();
	log_fd = mkstemp(path);
	if (log_fd < 0)
		return -1;
	unlink(path);
	log_configure(LOG_FORMAT_JSON, LOG_INFO, log_fd);
	return 0;
}

static int teardown(void **state)
{
	(void)state;
	log_configure(LOG_FORMAT_TEXT, LOG_INFO, 2);
	close(log_fd);
	return 0;
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_unary_ok_fields),
		cmocka_unit_test(test_stream_error_with_deadline),
		cmocka_unit_test(test_levels),
		cmocka_unit_test(test_filter),
		cmocka_unit_test(test_custom_fields_pool_flags),
		cmocka_unit_test(test_level_threshold),
		cmocka_unit_test(test_names),
	};
	return cmocka_run_group_tests(tests, setup, teardown);
}
