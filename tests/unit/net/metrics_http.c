/*
 * Tests for src/net/metrics_http.c: a real server on a free port answers a
 * raw HTTP GET over a socket with status 200, upstream's content type and
 * the rendered registry; other paths get 404; the address forms upstream
 * accepts are parsed, bad ones refused, and a taken port reported.
 */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cmocka.h>

#include "base/metrics.h"
#include "net/metrics_http.h"

/* Sends request to family:port on loopback and returns the whole answer. */
static char *http(int family, int port, const char *request)
{
	struct strbuf sb = STRBUF_INIT;
	char buf[4096];
	int fd = socket(family, SOCK_STREAM, 0);
	ssize_t n;

	assert_true(fd >= 0);
	if (family == AF_INET) {
		struct sockaddr_in a = { .sin_family = AF_INET, .sin_port = htons((uint16_t)port) };
		a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
		assert_int_equal(connect(fd, (struct sockaddr *)&a, sizeof(a)), 0);
	} else {
		struct sockaddr_in6 a = { .sin6_family = AF_INET6,
					  .sin6_port = htons((uint16_t)port) };
		a.sin6_addr = in6addr_loopback;
		assert_int_equal(connect(fd, (struct sockaddr *)&a, sizeof(a)), 0);
	}
	assert_int_equal(write(fd, request, strlen(request)), (ssize_t)strlen(request));
	while ((n = read(fd, buf, sizeof(buf))) > 0)
		assert_int_equal(strbuf_add(&sb, buf, (size_t)n), 0);
	close(fd);
	return strbuf_detach(&sb, NULL);
}

static void test_serves_metrics(void **state)
{
	const char *labels[] = { "kind" };
	struct metric_family *f;
	struct metrics_http *h = NULL;
	struct error err = ERROR_INIT;
	char *resp, *body;

	(void)state;
	f = metrics_counter("test_http_scrapes_total", "Scrapes", labels, 1);
	metrics_add(f, (const char *[]){ "a\"b" }, 3);
	assert_int_equal(metrics_http_start("127.0.0.1:0", &h, &err), 0);
	assert_non_null(h);
	assert_true(metrics_http_port(h) > 0);

	resp = http(AF_INET, metrics_http_port(h), "GET /metrics HTTP/1.1\r\nHost: x\r\n"
						   "Connection: close\r\n\r\n");
	assert_true(!strncmp(resp, "HTTP/1.1 200 OK\r\n", 17));
	assert_non_null(strcasestr(resp, "\r\nContent-Type: text/plain; version=0.0.4; "
					 "charset=utf-8\r\n"));
	body = strstr(resp, "\r\n\r\n");
	assert_non_null(body);
	assert_non_null(strstr(body, "\r\n\r\n# HELP test_http_scrapes_total Scrapes\n"
				     "# TYPE test_http_scrapes_total counter\n"
				     "test_http_scrapes_total{kind=\"a\\\"b\"} 3\n"));
	free(resp);

	/* a query string is fine; other paths are 404 */
	resp = http(AF_INET, metrics_http_port(h), "GET /metrics?x=1 HTTP/1.0\r\n\r\n");
	assert_true(!strncmp(resp, "HTTP/1.0 200 OK\r\n", 17) ||
		    !strncmp(resp, "HTTP/1.1 200 OK\r\n", 17));
	free(resp);
	resp = http(AF_INET, metrics_http_port(h), "GET /other HTTP/1.0\r\n\r\n");
	assert_non_null(strstr(resp, " 404 "));
	assert_non_null(strstr(resp, "\r\n\r\n404 page not found\n"));
	free(resp);
	resp = http(AF_INET, metrics_http_port(h), "GET /metrics/ HTTP/1.0\r\n\r\n");
	assert_non_null(strstr(resp, " 404 "));
	free(resp);
	/* a request with a body still gets its answer */
	resp = http(AF_INET, metrics_http_port(h),
		    "POST /metrics HTTP/1.0\r\nContent-Length: 5\r\n\r\nhello");
	assert_non_null(strstr(resp, " 200 "));
	assert_non_null(strstr(resp, "test_http_scrapes_total"));
	free(resp);

	metrics_http_stop(h);
	error_release(&err);
}

static void test_all_interfaces_and_v6(void **state)
{
	struct metrics_http *h = NULL;
	struct error err = ERROR_INIT;
	char *resp;
	int v6;

	(void)state;
	assert_int_equal(metrics_http_start(":0", &h, &err), 0);
	resp = http(AF_INET, metrics_http_port(h), "GET /metrics HTTP/1.0\r\n\r\n");
	assert_non_null(strstr(resp, " 200 "));
	free(resp);
	metrics_http_stop(h);

	/* IPv6 loopback, when this machine has it */
	v6 = socket(AF_INET6, SOCK_STREAM, 0);
	if (v6 >= 0) {
		struct sockaddr_in6 a = { .sin6_family = AF_INET6 };
		a.sin6_addr = in6addr_loopback;
		if (bind(v6, (struct sockaddr *)&a, sizeof(a)) == 0) {
			close(v6);
			v6 = -2;
			assert_int_equal(metrics_http_start("[::1]:0", &h, &err), 0);
			resp = http(AF_INET6, metrics_http_port(h), "GET /metrics HTTP/1.0\r\n\r\n");
			assert_non_null(strstr(resp, " 200 "));
			free(resp);
			metrics_http_stop(h);
		}
		if (v6 >= 0)
			close(v6);
	}
	assert_int_equal(metrics_http_start("localhost:0", &h, &err), 0);
	metrics_http_stop(h);
	error_release(&err);
}

static void test_parse_addr(void **state)
{
	static const char *const bad[] = {
		"", "9236", "127.0.0.1", "127.0.0.1:", "127.0.0.1:99999", "127.0.0.1:12a",
		"[::1", "[::1]", "[::1]9236", "::1:9236", "host:-1", "host:123456",
	};
	char host[64];
	int port;
	struct error err = ERROR_INIT;
	struct metrics_http *h = (struct metrics_http *)1;

	(void)state;
	assert_int_equal(metrics_http_parse_addr("127.0.0.1:9236", host, sizeof(host), &port, &err), 0);
	assert_string_equal(host, "127.0.0.1");
	assert_int_equal(port, 9236);
	assert_int_equal(metrics_http_parse_addr(":9236", host, sizeof(host), &port, &err), 0);
	assert_string_equal(host, "");
	assert_int_equal(metrics_http_parse_addr("[::1]:0", host, sizeof(host), &port, &err), 0);
	assert_string_equal(host, "::1");
	assert_int_equal(port, 0);
	assert_int_equal(metrics_http_parse_addr("[::]:65535", host, sizeof(host), &port, &err), 0);
	assert_string_equal(host, "::");
	assert_int_equal(port, 65535);
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		assert_int_equal(metrics_http_parse_addr(bad[i], host, sizeof(host), &port, &err), -1);
		assert_int_equal(err.code, STATUS_INVALID_ARGUMENT);
		error_release(&err);
	}
	assert_int_equal(metrics_http_start("nonsense", &h, &err), -1);
	assert_null(h);
	assert_int_equal(err.code, STATUS_INVALID_ARGUMENT);
	error_release(&err);
}

static void test_port_in_use(void **state)
{
	struct metrics_http *a = NULL, *b = NULL;
	struct error err = ERROR_INIT;
	char addr[64];

	(void)state;
	assert_int_equal(metrics_http_start("127.0.0.1:0", &a, &err), 0);
	snprintf(addr, sizeof(addr), "127.0.0.1:%d", metrics_http_port(a));
	assert_int_equal(metrics_http_start(addr, &b, &err), -1);
	assert_null(b);
	assert_int_equal(err.code, STATUS_UNAVAILABLE);
	assert_non_null(strstr(err.message, "in use"));
	error_release(&err);
	metrics_http_stop(a);
	/* once stopped, the port is free again */
	assert_int_equal(metrics_http_start(addr, &b, &err), 0);
	metrics_http_stop(b);
	metrics_http_stop(NULL);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_serves_metrics),
		cmocka_unit_test(test_all_interfaces_and_v6),
		cmocka_unit_test(test_parse_addr),
		cmocka_unit_test(test_port_in_use),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
