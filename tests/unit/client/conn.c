/*
 * Tests for src/client/conn.c: address parsing, and the sidechannel side of
 * a multiplexed connection against a fake server on a socketpair (it reads
 * the "backchannel" preface, runs a yamux server session and opens
 * sidechannel streams): a registered id gets its stream after the "ok",
 * an unknown id is closed without an answer.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "client/client_internal.h"
#include "net/sidechannel.h"

static void expect_addr(const char *a, char kind, const char *host, const char *port)
{
	char k = 0, *h = NULL, *p = NULL;
	struct error err = ERROR_INIT;

	if (gitaly_address_parse(a, &k, &h, &p, &err) < 0)
		fail_msg("%s: %s", a, err.message);
	assert_int_equal(k, kind);
	assert_string_equal(h, host);
	if (port)
		assert_string_equal(p, port);
	else
		assert_null(p);
	free(h);
	free(p);
}

static void expect_addr_bad(const char *a)
{
	char k = 0, *h = NULL, *p = NULL;
	struct error err = ERROR_INIT;

	assert_int_equal(gitaly_address_parse(a, &k, &h, &p, &err), -1);
	assert_int_equal(err.code, STATUS_INVALID_ARGUMENT);
	assert_null(h);
	assert_null(p);
	error_release(&err);
}

static void test_address(void **state)
{
	expect_addr("unix:/run/gitaly.socket", 'u', "/run/gitaly.socket", NULL);
	expect_addr("unix:///run/g.sock", 'u', "/run/g.sock", NULL);
	expect_addr("tcp://127.0.0.1:8075", 't', "127.0.0.1", "8075");
	expect_addr("tls://gitaly.example.com:9999", 's', "gitaly.example.com", "9999");
	expect_addr("tcp://[::1]:8075", 't', "::1", "8075");
	expect_addr_bad(NULL);
	expect_addr_bad("127.0.0.1:8075");
	expect_addr_bad("http://x:1");
	expect_addr_bad("tcp://host");
	expect_addr_bad("tcp://:80");
	expect_addr_bad("tcp://host:");
	expect_addr_bad("tcp://host:80/x");
	expect_addr_bad("tcp://[::1:80");
	expect_addr_bad("unix:");
}

struct server {
	int fd;
	int64_t ids[2];
	int results[2]; /* handshake result per id */
};

static void *server_main(void *arg)
{
	struct server *sv = arg;
	struct error err = ERROR_INIT;
	struct yamux_session *s = NULL;
	struct yamux_stream *grpc = NULL, *st;
	char pre[11];
	size_t got = 0;

	while (got < sizeof(pre)) {
		ssize_t n = read(sv->fd, pre + got, sizeof(pre) - got);
		assert_true(n > 0);
		got += (size_t)n;
	}
	assert_memory_equal(pre, "backchannel", 11);
	assert_int_equal(yamux_session_new(sv->fd, YAMUX_SERVER, NULL, &s, &err), 0);
	assert_int_equal(yamux_accept(s, &grpc, &err), 0); /* grpc core's stream 1 */
	assert_int_equal(yamux_stream_id(grpc), 1);
	for (int i = 0; i < 2; i++) {
		assert_int_equal(yamux_open(s, &st, &err), 0);
		sv->results[i] = sidechannel_server_handshake(st, sv->ids[i], 2000, &err);
		error_release(&err);
		if (sv->results[i] == 0) {
			assert_int_equal(yamux_stream_write(st, "hi", 2, &err), 0);
			yamux_stream_close_write(st, &err);
		}
		yamux_stream_free(st);
	}
	yamux_stream_free(grpc);
	yamux_session_close(s);
	yamux_session_free(s);
	return NULL;
}

static void test_sidechannel_delivery(void **state)
{
	struct gitaly_conn *c = NULL;
	struct error err = ERROR_INIT;
	struct server sv;
	struct sc_waiter w;
	pthread_t t;
	int sp[2];
	char buf[8];
	size_t n = 0, total = 0;

	memset(&w, 0, sizeof(w));
	pthread_mutex_init(&w.mu, NULL);
	pthread_cond_init(&w.cond, NULL);
	sc_registry_add(&w);
	assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM, 0, sp), 0);
	sv.fd = sp[1];
	sv.ids[0] = w.id + 1000; /* nobody waits for this one */
	sv.ids[1] = w.id;
	assert_int_equal(pthread_create(&t, NULL, server_main, &sv), 0);
	assert_int_equal(gitaly_conn_from_fd(sp[0], NULL, &c, &err), 0);

	pthread_mutex_lock(&w.mu);
	while (!w.stream)
		pthread_cond_wait(&w.cond, &w.mu);
	pthread_mutex_unlock(&w.mu);
	while (total < 2) {
		assert_int_equal(yamux_stream_read(w.stream, buf + total, sizeof(buf) - total, &n,
						   &err),
				 0);
		if (!n)
			break;
		total += n;
	}
	assert_int_equal(total, 2);
	assert_memory_equal(buf, "hi", 2);
	pthread_join(t, NULL);
	assert_int_equal(sv.results[0], -1); /* unknown id: no "ok" */
	assert_int_equal(sv.results[1], 0);
	sc_registry_remove(&w);
	yamux_stream_free(w.stream);
	gitaly_conn_free(c);
	pthread_cond_destroy(&w.cond);
	pthread_mutex_destroy(&w.mu);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_address),
		cmocka_unit_test(test_sidechannel_delivery),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
