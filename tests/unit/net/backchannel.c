/*
 * Tests for src/net/backchannel.c: the 11-byte listen-mux decision (plain
 * bytes reach "grpc" untouched, "backchannel" starts a yamux session whose
 * stream 1 is bridged), the fd -> session map used to open sidechannels,
 * the peek timeout, extra client streams being reset, and the session going
 * away with its client.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/un.h>

#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "net/backchannel.h"
#include "net/sidechannel.h"
#include "net/yamux.h"

/* The stand-in for grpc core: remembers the fd it was given. */
static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t cv = PTHREAD_COND_INITIALIZER;
static int got_fd = -1;

static int fake_grpc(void *ctx, int fd, struct error *err)
{
	(void)ctx;
	(void)err;
	pthread_mutex_lock(&mu);
	got_fd = fd;
	pthread_cond_broadcast(&cv);
	pthread_mutex_unlock(&mu);
	return 0;
}

/* Waits up to ms for fake_grpc; returns the fd or -1. */
static int wait_grpc_fd(int ms)
{
	struct timespec dl;
	int fd;

	clock_gettime(CLOCK_REALTIME, &dl);
	dl.tv_sec += ms / 1000;
	dl.tv_nsec += (long)(ms % 1000) * 1000000;
	if (dl.tv_nsec >= 1000000000) {
		dl.tv_sec++;
		dl.tv_nsec -= 1000000000;
	}
	pthread_mutex_lock(&mu);
	while (got_fd < 0)
		if (pthread_cond_timedwait(&cv, &mu, &dl) == ETIMEDOUT)
			break;
	fd = got_fd;
	got_fd = -1;
	pthread_mutex_unlock(&mu);
	return fd;
}

#define TEST_PEER "10.9.8.7:4242"

static void serve_pair(int *client, int timeout_ms)
{
	int sv[2];
	struct error err = ERROR_INIT;

	assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
	assert_int_equal(backchannel_serve(sv[0], TEST_PEER, timeout_ms, fake_grpc, NULL, &err), 0);
	*client = sv[1];
}

static void read_exact(int fd, char *buf, size_t len)
{
	size_t got = 0;

	while (got < len) {
		ssize_t n = read(fd, buf + got, len - got);
		assert_true(n > 0);
		got += (size_t)n;
	}
}

static void wait_sessions(int want)
{
	for (int i = 0; i < 500 && backchannel_sessions() != want; i++)
		usleep(10000);
	assert_int_equal(backchannel_sessions(), want);
}

static void test_plain_connection_untouched(void **state)
{
	const char preface[] = "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";
	char buf[sizeof(preface)];
	struct yamux_stream *st = NULL;
	struct error err = ERROR_INIT;
	char peer[32];
	int c, g;

	(void)state;
	serve_pair(&c, 2000);
	assert_int_equal(write(c, preface, sizeof(preface) - 1), (ssize_t)sizeof(preface) - 1);
	g = wait_grpc_fd(2000);
	assert_true(g >= 0);
	read_exact(g, buf, sizeof(preface) - 1);
	assert_memory_equal(buf, preface, sizeof(preface) - 1);

	snprintf(peer, sizeof(peer), "fd:%d", g);
	assert_int_equal(backchannel_open_stream(peer, &st, &err), -1);
	assert_int_equal(err.code, STATUS_FAILED_PRECONDITION);
	assert_string_equal(err.message, "non-multiplexed connection");
	assert_null(st);
	error_release(&err);
	assert_int_equal(backchannel_open_stream("ipv4:127.0.0.1:1", &st, &err), -1);
	error_release(&err);
	close(g);
	close(c);
}

static void test_short_plain_prefix_decides_at_once(void **state)
{
	int c, g;

	(void)state;
	serve_pair(&c, 5000);
	/* one byte that is not 'b' is enough to know */
	assert_int_equal(write(c, "P", 1), 1);
	g = wait_grpc_fd(1000);
	assert_true(g >= 0);
	close(g);
	close(c);
}

static void test_peek_timeout_closes(void **state)
{
	char b;
	int c;

	(void)state;
	serve_pair(&c, 100);
	assert_int_equal(write(c, "back", 4), 4);
	/* nothing more: the server gives up and closes (unread bytes make
	 * that a reset) */
	{
		ssize_t n = read(c, &b, 1);
		assert_true(n == 0 || (n < 0 && errno == ECONNRESET));
	}
	assert_int_equal(wait_grpc_fd(50), -1);
	close(c);
}

struct mux_client {
	int fd;
	struct yamux_session *s;
	struct yamux_stream *grpc;
	int gfd;
};

static void mux_connect(struct mux_client *m, int split_magic)
{
	struct error err = ERROR_INIT;

	serve_pair(&m->fd, 5000);
	if (split_magic) {
		assert_int_equal(write(m->fd, "back", 4), 4);
		usleep(30000);
		assert_int_equal(write(m->fd, "channel", 7), 7);
	} else {
		assert_int_equal(write(m->fd, BACKCHANNEL_MAGIC, BACKCHANNEL_MAGIC_LEN),
				 BACKCHANNEL_MAGIC_LEN);
	}
	assert_int_equal(yamux_session_new(m->fd, YAMUX_CLIENT, NULL, &m->s, &err), 0);
	assert_int_equal(yamux_open(m->s, &m->grpc, &err), 0);
	assert_int_equal(yamux_stream_id(m->grpc), 1);
	assert_int_equal(yamux_stream_write(m->grpc, "PRI *", 5, &err), 0);
	m->gfd = wait_grpc_fd(5000);
	assert_true(m->gfd >= 0);
}

static void test_multiplexed_stream1_bridged(void **state)
{
	struct mux_client m;
	struct error err = ERROR_INIT;
	char buf[8];
	size_t n;

	(void)state;
	mux_connect(&m, 1);
	read_exact(m.gfd, buf, 5);
	assert_memory_equal(buf, "PRI *", 5);
	/* and back */
	assert_int_equal(write(m.gfd, "SETTINGS", 8), 8);
	assert_int_equal(yamux_stream_read_full(m.grpc, buf, 8, &err), 0);
	assert_memory_equal(buf, "SETTINGS", 8);
	assert_int_equal(backchannel_sessions(), 1);

	/* the gRPC side closing ends the session */
	close(m.gfd);
	assert_int_equal(yamux_stream_read(m.grpc, buf, sizeof(buf), &n, &err), 0);
	assert_int_equal(n, 0);
	yamux_stream_free(m.grpc);
	yamux_session_free(m.s);
	wait_sessions(0);
}

struct hs {
	struct yamux_stream *st;
	int rc;
};

static void *server_handshake(void *arg)
{
	struct hs *h = arg;
	struct error err = ERROR_INIT;

	h->rc = sidechannel_server_handshake(h->st, 42, 2000, &err);
	error_release(&err);
	return NULL;
}

static void test_sidechannel_on_callers_session(void **state)
{
	struct mux_client m;
	struct error err = ERROR_INIT;
	struct yamux_stream *srv = NULL, *cli = NULL;
	char peer[32];
	int64_t id = 0;

	(void)state;
	mux_connect(&m, 0);
	snprintf(peer, sizeof(peer), "fd:%d", m.gfd);
	assert_int_equal(backchannel_open_stream(peer, &srv, &err), 0);
	assert_int_equal(yamux_stream_id(srv) % 2, 0);
	assert_int_equal(yamux_accept(m.s, &cli, &err), 0);
	assert_int_equal(sidechannel_client_read_id(cli, 100, &id, &err), -1);
	error_release(&err);
	yamux_stream_free(cli);
	yamux_stream_free(srv);

	/* full handshake from both sides, then data to the client */
	assert_int_equal(backchannel_open_stream(peer, &srv, &err), 0);
	assert_int_equal(yamux_accept(m.s, &cli, &err), 0);
	{
		pthread_t t;
		struct hs h = { srv, -1 };
		char buf[4];

		assert_int_equal(pthread_create(&t, NULL, server_handshake, &h), 0);
		assert_int_equal(sidechannel_client_read_id(cli, 2000, &id, &err), 0);
		assert_int_equal(id, 42);
		assert_int_equal(sidechannel_client_ack(cli, &err), 0);
		pthread_join(t, NULL);
		assert_int_equal(h.rc, 0);
		assert_int_equal(yamux_stream_write(srv, "pack", 4, &err), 0);
		assert_int_equal(yamux_stream_read_full(cli, buf, 4, &err), 0);
		assert_memory_equal(buf, "pack", 4);
	}
	yamux_stream_free(cli);
	yamux_stream_free(srv);

	/* the client going away removes the session from the map */
	yamux_stream_free(m.grpc);
	yamux_session_free(m.s);
	wait_sessions(0);
	assert_int_equal(backchannel_open_stream(peer, &srv, &err), -1);
	error_release(&err);
	close(m.gfd);
}

static void test_extra_client_streams_reset(void **state)
{
	struct mux_client m;
	struct error err = ERROR_INIT;
	struct yamux_stream *extra = NULL;
	char b;
	size_t n;

	(void)state;
	mux_connect(&m, 0);
	assert_int_equal(yamux_open(m.s, &extra, &err), 0);
	/* the reset may already be there when we write */
	if (yamux_stream_write(extra, "x", 1, &err) == 0)
		assert_int_equal(yamux_stream_read(extra, &b, 1, &n, &err), -1);
	assert_int_equal(err.code, STATUS_UNAVAILABLE);
	error_release(&err);
	yamux_stream_free(extra);
	yamux_stream_free(m.grpc);
	yamux_session_free(m.s);
	wait_sessions(0);
	close(m.gfd);
}

/* The peer given with the connection is what a call on its fd reports. */
static void test_peer_address(void **state)
{
	struct mux_client m;
	char peer[32], out[BACKCHANNEL_ADDR_MAX], small[6];
	int c, g;

	(void)state;
	assert_int_equal(backchannel_peer_address("fd:notanumber", out, sizeof(out)), -1);
	assert_string_equal(out, "");
	/* plain: the accepted fd itself */
	serve_pair(&c, 2000);
	assert_int_equal(write(c, "P", 1), 1);
	g = wait_grpc_fd(2000);
	assert_true(g >= 0);
	snprintf(peer, sizeof(peer), "fd:%d", g);
	assert_int_equal(backchannel_peer_address(peer, out, sizeof(out)), 0);
	assert_string_equal(out, TEST_PEER);
	assert_int_equal(backchannel_peer_address(peer, small, sizeof(small)), 0);
	assert_string_equal(small, "10.9.");
	close(g);
	close(c);
	/* multiplexed: the socketpair end grpc core reads */
	mux_connect(&m, 0);
	snprintf(peer, sizeof(peer), "fd:%d", m.gfd);
	assert_int_equal(backchannel_peer_address(peer, out, sizeof(out)), 0);
	assert_string_equal(out, TEST_PEER);
	close(m.gfd);
	yamux_stream_free(m.grpc);
	yamux_session_free(m.s);
	wait_sessions(0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_peer_address),
		cmocka_unit_test(test_plain_connection_untouched),
		cmocka_unit_test(test_short_plain_prefix_decides_at_once),
		cmocka_unit_test(test_peek_timeout_closes),
		cmocka_unit_test(test_multiplexed_stream1_bridged),
		cmocka_unit_test(test_sidechannel_on_callers_session),
		cmocka_unit_test(test_extra_client_streams_reset),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
