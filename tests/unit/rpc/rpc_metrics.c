/*
 * Tests for src/rpc/rpc_metrics.c: pre-registration creates exactly the
 * series go-grpc-prometheus creates (started/received/sent and the
 * histogram per method, handled_total for all 17 codes), updates land in
 * the right series, the histogram uses the configured buckets or can be
 * switched off, and the connection and client-request counters carry
 * upstream's labels and "unknown" defaults.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "base/metrics.h"
#include "rpc/accesslog.h"

static char *render(void)
{
	struct strbuf sb = STRBUF_INIT;

	assert_int_equal(metrics_render(&sb), 0);
	return strbuf_detach(&sb, NULL);
}

static void assert_line(const char *text, const char *line)
{
	char *want = NULL;

	assert_true(asprintf(&want, "\n%s\n", line) > 0);
	if (!strstr(text, want)) {
		print_error("missing line: %s\n", line);
		fail();
	}
	free(want);
}

static size_t count_prefix(const char *text, const char *prefix)
{
	size_t n = 0;
	for (const char *p = text; (p = strstr(p, prefix)); p++)
		n++;
	return n;
}

static const struct rpc_method methods[] = {
	{ "ServerInfo", RPC_UNARY, NULL, NULL, NULL, RPC_OP_ACCESSOR, RPC_SCOPE_STORAGE },
	{ "ReadinessCheck", RPC_UNARY, NULL, NULL, NULL, RPC_OP_ACCESSOR, RPC_SCOPE_STORAGE },
	{ "PostUploadPack", RPC_BIDI_STREAM, NULL, NULL, NULL, RPC_OP_ACCESSOR,
	  RPC_SCOPE_REPOSITORY },
};
static const struct rpc_service service = { "gitaly.TestService", methods, 3, NULL };

static void test_preregister_and_update(void **state)
{
	const double buckets[] = { 0.1, 1 };
	char *text;

	(void)state;
	rpc_metrics_set_buckets(buckets, 2);
	rpc_metrics_preregister(&service);
	text = render();
	assert_line(text, "grpc_server_started_total{grpc_method=\"ServerInfo\","
			  "grpc_service=\"gitaly.TestService\",grpc_type=\"unary\"} 0");
	assert_line(text, "grpc_server_msg_received_total{grpc_method=\"PostUploadPack\","
			  "grpc_service=\"gitaly.TestService\",grpc_type=\"bidi_stream\"} 0");
	assert_line(text, "grpc_server_msg_sent_total{grpc_method=\"ReadinessCheck\","
			  "grpc_service=\"gitaly.TestService\",grpc_type=\"unary\"} 0");
	assert_line(text, "grpc_server_handled_total{grpc_code=\"Canceled\","
			  "grpc_method=\"ServerInfo\",grpc_service=\"gitaly.TestService\","
			  "grpc_type=\"unary\"} 0");
	assert_line(text, "grpc_server_handled_total{grpc_code=\"Unauthenticated\","
			  "grpc_method=\"PostUploadPack\",grpc_service=\"gitaly.TestService\","
			  "grpc_type=\"bidi_stream\"} 0");
	assert_line(text, "grpc_server_handling_seconds_bucket{grpc_method=\"ServerInfo\","
			  "grpc_service=\"gitaly.TestService\",grpc_type=\"unary\",le=\"0.1\"} 0");
	assert_int_equal(count_prefix(text, "\ngrpc_server_handled_total{"), 3 * 17);
	assert_int_equal(count_prefix(text, "\ngrpc_server_started_total{"), 3);
	assert_int_equal(count_prefix(text, "\ngrpc_server_handling_seconds_count{"), 3);
	assert_non_null(strstr(text, "# HELP grpc_server_handled_total Total number of RPCs "
				     "completed on the server, regardless of success or failure.\n"
				     "# TYPE grpc_server_handled_total counter\n"));
	assert_non_null(strstr(text, "# HELP grpc_server_handling_seconds Histogram of response "
				     "latency (seconds) of gRPC that had been application-level "
				     "handled by the server.\n"
				     "# TYPE grpc_server_handling_seconds histogram\n"));
	free(text);

	rpc_metrics_started(NULL, "gitaly.TestService", "ServerInfo", RPC_UNARY);
	rpc_metrics_msg_received(NULL, "gitaly.TestService", "ServerInfo", RPC_UNARY);
	rpc_metrics_msg_sent(NULL, "gitaly.TestService", "ServerInfo", RPC_UNARY);
	rpc_metrics_handled(NULL, "gitaly.TestService", "ServerInfo", RPC_UNARY, STATUS_OK, 0.05);
	/* with a key (as a registered method's calls): the same series */
	static const int key;
	rpc_metrics_started(&key, "gitaly.TestService", "ServerInfo", RPC_UNARY);
	rpc_metrics_msg_received(&key, "gitaly.TestService", "ServerInfo", RPC_UNARY);
	rpc_metrics_handled(&key, "gitaly.TestService", "ServerInfo", RPC_UNARY, STATUS_NOT_FOUND, 2);
	text = render();
	assert_line(text, "grpc_server_started_total{grpc_method=\"ServerInfo\","
			  "grpc_service=\"gitaly.TestService\",grpc_type=\"unary\"} 2");
	assert_line(text, "grpc_server_msg_received_total{grpc_method=\"ServerInfo\","
			  "grpc_service=\"gitaly.TestService\",grpc_type=\"unary\"} 2");
	assert_line(text, "grpc_server_msg_sent_total{grpc_method=\"ServerInfo\","
			  "grpc_service=\"gitaly.TestService\",grpc_type=\"unary\"} 1");
	assert_line(text, "grpc_server_handled_total{grpc_code=\"OK\",grpc_method=\"ServerInfo\","
			  "grpc_service=\"gitaly.TestService\",grpc_type=\"unary\"} 1");
	assert_line(text, "grpc_server_handled_total{grpc_code=\"NotFound\","
			  "grpc_method=\"ServerInfo\",grpc_service=\"gitaly.TestService\","
			  "grpc_type=\"unary\"} 1");
	assert_line(text, "grpc_server_handling_seconds_bucket{grpc_method=\"ServerInfo\","
			  "grpc_service=\"gitaly.TestService\",grpc_type=\"unary\",le=\"0.1\"} 1");
	assert_line(text, "grpc_server_handling_seconds_bucket{grpc_method=\"ServerInfo\","
			  "grpc_service=\"gitaly.TestService\",grpc_type=\"unary\",le=\"1\"} 1");
	assert_line(text, "grpc_server_handling_seconds_bucket{grpc_method=\"ServerInfo\","
			  "grpc_service=\"gitaly.TestService\",grpc_type=\"unary\",le=\"+Inf\"} 2");
	assert_line(text, "grpc_server_handling_seconds_sum{grpc_method=\"ServerInfo\","
			  "grpc_service=\"gitaly.TestService\",grpc_type=\"unary\"} 2.05");
	free(text);

	/* new buckets after start: observations restart under the new layout */
	rpc_metrics_set_buckets(metrics_default_latency_buckets,
				metrics_default_latency_buckets_len);
	rpc_metrics_handled(NULL, "gitaly.TestService", "ServerInfo", RPC_UNARY, STATUS_OK, 0.003);
	text = render();
	assert_line(text, "grpc_server_handling_seconds_bucket{grpc_method=\"ServerInfo\","
			  "grpc_service=\"gitaly.TestService\",grpc_type=\"unary\",le=\"0.005\"} 1");
	assert_line(text, "grpc_server_handling_seconds_count{grpc_method=\"ServerInfo\","
			  "grpc_service=\"gitaly.TestService\",grpc_type=\"unary\"} 1");
	free(text);

	/* disabled: no more observations */
	rpc_metrics_set_buckets(NULL, 0);
	rpc_metrics_handled(NULL, "gitaly.TestService", "ServerInfo", RPC_UNARY, STATUS_OK, 0.003);
	text = render();
	assert_line(text, "grpc_server_handling_seconds_count{grpc_method=\"ServerInfo\","
			  "grpc_service=\"gitaly.TestService\",grpc_type=\"unary\"} 1");
	assert_line(text, "grpc_server_handled_total{grpc_code=\"OK\",grpc_method=\"ServerInfo\","
			  "grpc_service=\"gitaly.TestService\",grpc_type=\"unary\"} 3");
	free(text);
	rpc_metrics_set_buckets(metrics_default_latency_buckets,
				metrics_default_latency_buckets_len);
}

static void test_connections(void **state)
{
	char *text;

	(void)state;
	metrics_reset();
	rpc_metrics_connection("unix");
	rpc_metrics_connection("tcp");
	rpc_metrics_connection("tcp");
	text = render();
	assert_non_null(strstr(text, "# HELP gitaly_connections_total Total number of connections "
				     "to Gitaly\n# TYPE gitaly_connections_total counter\n"
				     "gitaly_connections_total{type=\"tcp\"} 2\n"
				     "gitaly_connections_total{type=\"unix\"} 1\n"));
	free(text);
}

static void test_client_requests(void **state)
{
	struct accesslog_entry e;
	char *text;

	(void)state;
	metrics_reset();
	memset(&e, 0, sizeof(e));
	e.service = "gitaly.RefService";
	e.method = "FindAllBranches";
	e.type = RPC_SERVER_STREAM;
	e.op = RPC_OP_ACCESSOR;
	e.scope = RPC_SCOPE_REPOSITORY;
	e.code = STATUS_NOT_FOUND;
	rpc_metrics_client_request(&e);
	e.client_name = "gitlab-web";
	e.call_site = "site";
	e.auth_version = "v2";
	e.deadline_unix_ms = 1;
	e.deadline_type = "regular";
	e.code = STATUS_OK;
	e.op = RPC_OP_UNKNOWN;
	rpc_metrics_client_request(&e);
	text = render();
	assert_line(text, "gitaly_service_client_requests_total{auth_version=\"unknown\","
			  "call_site=\"unknown\",client_name=\"unknown\",deadline_type=\"none\","
			  "grpc_code=\"NotFound\",grpc_method=\"FindAllBranches\","
			  "grpc_service=\"gitaly.RefService\",method_operation=\"accessor\","
			  "method_scope=\"repository\"} 1");
	assert_line(text, "gitaly_service_client_requests_total{auth_version=\"v2\","
			  "call_site=\"site\",client_name=\"gitlab-web\",deadline_type=\"regular\","
			  "grpc_code=\"OK\",grpc_method=\"FindAllBranches\","
			  "grpc_service=\"gitaly.RefService\",method_operation=\"unknown\","
			  "method_scope=\"unknown\"} 1");
	free(text);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_preregister_and_update),
		cmocka_unit_test(test_connections),
		cmocka_unit_test(test_client_requests),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
