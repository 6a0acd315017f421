/*
 * Tests for src/client/conn.c: address parsing, and the sidechannel side of
 * a multiplexed connection against a fake server on a socketpair (it reads
 * the "backchannel" preface, runs a yamux server session and opens
 * sidechannel streams): a registered id gets its stream after the "ok",
 * an unknown id is closed without an answer; the end of stream 1 (gitaly
 * closed the transport) marks the connection broken; a PING on an idle
 * connection is answered.
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

/* Reads one HTTP/2 frame (header and up to cap payload bytes) from st;
 * -1 when none comes. */
static int read_frame(struct yamux_stream *st, uint8_t *type, uint8_t *flags, uint8_t *payload,
		       size_t cap, size_t *len)
{
	struct error err = ERROR_INIT;
	uint8_t h[9];
	uint8_t skip[256];
	size_t n;

	if (yamux_stream_read_full(st, h, sizeof(h), &err) < 0) {
		error_release(&err);
		return -1;
	}
	n = ((size_t)h[0] << 16) | ((size_t)h[1] << 8) | h[2];
	*type = h[3];
	*flags = h[4];
	*len = n;
	if (n <= cap) {
		if (n)
			assert_int_equal(yamux_stream_read_full(st, payload, n, &err), 0);
		return 0;
	}
	while (n) {
		size_t k = n < sizeof(skip) ? n : sizeof(skip);
		assert_int_equal(yamux_stream_read_full(st, skip, k, &err), 0);
		n -= k;
	}
	return 0;
}

struct h2_server {
	int fd;
	int fin_stream1; /* 1: end stream 1 like gitaly's bridge does when its
			  * transport closes; 0: send a PING and wait for the ack */
	int acked;
	struct yamux_session *s;
	struct yamux_stream *grpc;
	pthread_mutex_t mu;
	pthread_cond_t cv;
	int done;
};

static void *h2_server_main(void *arg)
{
	static const uint8_t settings[9] = { 0, 0, 0, 4, 0, 0, 0, 0, 0 };
	static const uint8_t ping[17] = { 0, 0, 8, 6, 0, 0, 0, 0, 0, 'k', 'e', 'e', 'p',
					  'a', 'l', 'i', 'v' };
	struct h2_server *sv = arg;
	struct error err = ERROR_INIT;
	char pre[24 + 11];
	uint8_t type, flags, payload[64];
	size_t len;

	assert_int_equal(read(sv->fd, pre, 11), 11);
	assert_int_equal(yamux_session_new(sv->fd, YAMUX_SERVER, NULL, &sv->s, &err), 0);
	assert_int_equal(yamux_accept(sv->s, &sv->grpc, &err), 0);
	if (sv->fin_stream1) {
		assert_int_equal(yamux_stream_close_write(sv->grpc, &err), 0);
	} else {
		assert_int_equal(yamux_stream_read_full(sv->grpc, pre, 24, &err), 0);
		assert_memory_equal(pre, "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n", 24);
		assert_int_equal(yamux_stream_write(sv->grpc, settings, sizeof(settings), &err), 0);
		/* later, once the connection has settled as idle */
		usleep(500000);
		assert_int_equal(yamux_stream_write(sv->grpc, ping, sizeof(ping), &err), 0);
		/* grpc core answers within milliseconds when it reads at all */
		yamux_stream_set_deadline(sv->grpc, 3000);
		while (read_frame(sv->grpc, &type, &flags, payload, sizeof(payload), &len) == 0) {
			if (type == 6 && (flags & 1) && len == 8 &&
			    !memcmp(payload, ping + 9, 8)) {
				__atomic_store_n(&sv->acked, 1, __ATOMIC_SEQ_CST);
				break;
			}
		}
	}
	pthread_mutex_lock(&sv->mu);
	while (!sv->done)
		pthread_cond_wait(&sv->cv, &sv->mu);
	pthread_mutex_unlock(&sv->mu);
	yamux_stream_free(sv->grpc);
	yamux_session_close(sv->s);
	yamux_session_free(sv->s);
	return NULL;
}

static void h2_server_start(struct h2_server *sv, int fin, pthread_t *t, struct gitaly_conn **c)
{
	struct error err = ERROR_INIT;
	int sp[2];

	memset(sv, 0, sizeof(*sv));
	pthread_mutex_init(&sv->mu, NULL);
	pthread_cond_init(&sv->cv, NULL);
	sv->fin_stream1 = fin;
	assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM, 0, sp), 0);
	sv->fd = sp[1];
	assert_int_equal(pthread_create(t, NULL, h2_server_main, sv), 0);
	assert_int_equal(gitaly_conn_from_fd(sp[0], NULL, c, &err), 0);
}

static void h2_server_stop(struct h2_server *sv, pthread_t t)
{
	pthread_mutex_lock(&sv->mu);
	sv->done = 1;
	pthread_cond_broadcast(&sv->cv);
	pthread_mutex_unlock(&sv->mu);
	pthread_join(t, NULL);
	pthread_cond_destroy(&sv->cv);
	pthread_mutex_destroy(&sv->mu);
}

/*
 * gitaly closed the gRPC transport of stream 1 while the yamux session
 * lives on (what its keepalive watchdog does): the connection counts as
 * broken, so the pool dials again, and a new call fails at once with
 * Unavailable without sending anything.
 */
static void test_stream1_end_breaks_connection(void **state)
{
	struct gitaly_conn *c = NULL;
	struct gitaly_call *k = NULL;
	struct error err = ERROR_INIT;
	struct h2_server sv;
	pthread_t t;
	int i;

	h2_server_start(&sv, 1, &t, &c);
	for (i = 0; i < 200 && !gitaly_conn_broken(c); i++)
		usleep(10000);
	assert_true(gitaly_conn_broken(c));
	assert_false(yamux_session_is_closed(c->session));
	assert_int_equal(gitaly_call_start(c, "/gitaly.ServerService/ServerInfo", NULL, &k, &err),
			 -1);
	assert_int_equal(err.code, STATUS_UNAVAILABLE);
	assert_null(k);
	error_release(&err);
	gitaly_conn_free(c);
	h2_server_stop(&sv, t);
}

/*
 * With no call in flight nothing polls grpc core; still, a PING from gitaly
 * is answered (the idle poller), so gitaly's keepalive does not close the
 * connection.
 */
static void test_idle_connection_answers_ping(void **state)
{
	struct gitaly_conn *c = NULL;
	struct h2_server sv;
	pthread_t t;
	int i;

	h2_server_start(&sv, 0, &t, &c);
	for (i = 0; i < 300 && !__atomic_load_n(&sv.acked, __ATOMIC_SEQ_CST); i++)
		usleep(10000);
	assert_true(__atomic_load_n(&sv.acked, __ATOMIC_SEQ_CST));
	assert_false(gitaly_conn_broken(c));
	gitaly_conn_free(c);
	h2_server_stop(&sv, t);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_address),
		cmocka_unit_test(test_sidechannel_delivery),
		cmocka_unit_test(test_stream1_end_breaks_connection),
		cmocka_unit_test(test_idle_connection_answers_ping),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
