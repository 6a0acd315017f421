/*
 * Tests for src/net/listener.c: unix sockets (stale file replaced, directory
 * refused, file removed at stop), tcp on port 0 with the bound address
 * reported (IPv4, IPv6, all interfaces), address errors, that each
 * accepted connection reaches the hook with its listener type and the
 * client's address, and the address notation (Go's net.Addr).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <pthread.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "base/metrics.h"
#include "base/strbuf.h"
#include "net/listener.h"

struct seen {
	pthread_mutex_t lock;
	int n;
	int types[16];
	char peers[16][LISTENER_ADDR_MAX];
};

/* Records the type and peer and answers with one byte naming the type,
 * then closes. */
static void hook(void *ctx, int fd, enum listener_type type, const char *peer)
{
	struct seen *s = ctx;
	char c = (char)('0' + (int)type);
	pthread_mutex_lock(&s->lock);
	if (s->n < 16) {
		snprintf(s->peers[s->n], sizeof(s->peers[0]), "%s", peer);
		s->types[s->n++] = (int)type;
	}
	pthread_mutex_unlock(&s->lock);
	if (write(fd, &c, 1) != 1)
		fail();
	close(fd);
}

static char read_one(int fd)
{
	char c = 0;
	assert_int_equal(read(fd, &c, 1), 1);
	return c;
}

static int connect_unix(const char *path)
{
	struct sockaddr_un sa;
	int fd = socket(AF_UNIX, SOCK_STREAM, 0);
	memset(&sa, 0, sizeof(sa));
	sa.sun_family = AF_UNIX;
	assert_true(strlen(path) < sizeof(sa.sun_path));
	memcpy(sa.sun_path, path, strlen(path) + 1);
	assert_int_equal(connect(fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
	return fd;
}

static int connect_tcp(int family, const char *ip, int port)
{
	struct sockaddr_storage ss;
	socklen_t len;
	memset(&ss, 0, sizeof(ss));
	if (family == AF_INET) {
		struct sockaddr_in *s = (struct sockaddr_in *)&ss;
		s->sin_family = AF_INET;
		s->sin_port = htons((uint16_t)port);
		inet_pton(AF_INET, ip, &s->sin_addr);
		len = sizeof(*s);
	} else {
		struct sockaddr_in6 *s = (struct sockaddr_in6 *)&ss;
		s->sin6_family = AF_INET6;
		s->sin6_port = htons((uint16_t)port);
		inet_pton(AF_INET6, ip, &s->sin6_addr);
		len = sizeof(*s);
	}
	int fd = socket(family, SOCK_STREAM, 0);
	if (connect(fd, (struct sockaddr *)&ss, len) < 0) {
		close(fd);
		return -1;
	}
	return fd;
}

static int port_of(const char *bound)
{
	const char *c = strrchr(bound, ':');
	assert_non_null(c);
	return atoi(c + 1);
}

static void test_unix(void **state)
{
	struct seen s = { .lock = PTHREAD_MUTEX_INITIALIZER };
	struct listener_set *ls = NULL;
	struct error err = ERROR_INIT;
	char dir[64], path[128], sub[128];

	(void)state;
	snprintf(dir, sizeof(dir), "/tmp/lstest-XXXXXX");
	assert_non_null(mkdtemp(dir));
	snprintf(path, sizeof(path), "%s/gitaly.socket", dir);
	snprintf(sub, sizeof(sub), "%s/adir", dir);
	/* A stale regular file at the socket path is replaced. */
	FILE *f = fopen(path, "w");
	fputs("stale", f);
	fclose(f);
	assert_int_equal(listener_set_new(hook, &s, &ls, &err), 0);
	assert_int_equal(listener_add_unix(ls, path, &err), 0);
	/* A directory is not removed. */
	assert_int_equal(mkdir(sub, 0700), 0);
	assert_int_equal(listener_add_unix(ls, sub, &err), -1);
	assert_int_equal(err.code, STATUS_FAILED_PRECONDITION);
	error_release(&err);
	assert_int_equal(listener_start(ls, &err), 0);
	struct stat st;
	assert_int_equal(stat(path, &st), 0);
	assert_true(S_ISSOCK(st.st_mode));

	for (int i = 0; i < 3; i++) {
		int fd = connect_unix(path);
		assert_int_equal(read_one(fd), '0' + LISTENER_UNIX);
		close(fd);
	}
	assert_int_equal(s.n, 3);
	/* an unnamed unix client, as Go shows it */
	assert_string_equal(s.peers[0], "@");
	/* Every accept is counted. */
	struct strbuf m = STRBUF_INIT;
	assert_int_equal(metrics_render(&m), 0);
	assert_non_null(strstr(m.buf, "gitaly_connections_total{type=\"unix\"} 3\n"));
	strbuf_release(&m);
	listener_stop(ls);
	assert_int_equal(access(path, F_OK), -1); /* removed at stop */
	listener_stop(ls);                        /* idempotent */
	listener_free(ls);
	rmdir(sub);
	rmdir(dir);
}

static void test_tcp(void **state)
{
	struct seen s = { .lock = PTHREAD_MUTEX_INITIALIZER };
	struct listener_set *ls = NULL;
	struct error err = ERROR_INIT;
	char *b4 = NULL, *b6 = NULL, *ball = NULL;

	(void)state;
	assert_int_equal(listener_set_new(hook, &s, &ls, &err), 0);
	assert_int_equal(listener_add_tcp(ls, "127.0.0.1:0", &b4, &err), 0);
	assert_non_null(b4);
	assert_memory_equal(b4, "127.0.0.1:", 10);
	assert_true(port_of(b4) > 0);
	int have_v6 = listener_add_tcp(ls, "[::1]:0", &b6, &err) == 0;
	if (have_v6) {
		assert_memory_equal(b6, "[::1]:", 6);
	} else {
		error_release(&err);
	}
	assert_int_equal(listener_add_tcp(ls, ":0", &ball, &err), 0);
	assert_true(port_of(ball) > 0);
	assert_int_equal(listener_start(ls, &err), 0);

	int fd = connect_tcp(AF_INET, "127.0.0.1", port_of(b4));
	assert_true(fd >= 0);
	assert_int_equal(read_one(fd), '0' + LISTENER_TCP);
	{
		/* the hook got the client's own address */
		struct sockaddr_in me;
		socklen_t ml = sizeof(me);
		char want[64];
		assert_int_equal(getsockname(fd, (struct sockaddr *)&me, &ml), 0);
		snprintf(want, sizeof(want), "127.0.0.1:%u", (unsigned)ntohs(me.sin_port));
		assert_string_equal(s.peers[0], want);
	}
	close(fd);
	if (have_v6) {
		fd = connect_tcp(AF_INET6, "::1", port_of(b6));
		assert_true(fd >= 0);
		assert_int_equal(read_one(fd), '0' + LISTENER_TCP);
		close(fd);
	}
	/* ":port" listens on every interface, IPv4 included. */
	fd = connect_tcp(AF_INET, "127.0.0.1", port_of(ball));
	assert_true(fd >= 0);
	assert_int_equal(read_one(fd), '0' + LISTENER_TCP);
	close(fd);

	int port = port_of(b4);
	listener_free(ls);
	/* Stopped: nothing listens any more. */
	assert_int_equal(connect_tcp(AF_INET, "127.0.0.1", port), -1);
	free(b4);
	free(b6);
	free(ball);
}

static void test_bad_addresses(void **state)
{
	struct seen s = { .lock = PTHREAD_MUTEX_INITIALIZER };
	struct listener_set *ls = NULL;
	struct error err = ERROR_INIT;
	char *b = NULL;
	static const char *const bad[] = { "127.0.0.1", "localhost:", "::1:80", "[::1]80",
					   "999.1.1.1:0" };

	(void)state;
	assert_int_equal(listener_set_new(hook, &s, &ls, &err), 0);
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		assert_int_equal(listener_add_tcp(ls, bad[i], &b, &err), -1);
		assert_null(b);
		assert_true(error_is_set(&err));
		error_release(&err);
	}
	/* Port in use. */
	char *b1 = NULL;
	assert_int_equal(listener_add_tcp(ls, "127.0.0.1:0", &b1, &err), 0);
	char addr[64];
	snprintf(addr, sizeof(addr), "127.0.0.1:%d", port_of(b1));
	assert_int_equal(listener_add_tcp(ls, addr, &b, &err), -1);
	assert_non_null(strstr(err.message, "bind"));
	error_release(&err);
	assert_int_equal(listener_add_unix(ls, "", &err), -1);
	error_release(&err);
	listener_free(ls);
	free(b1);
	assert_string_equal(listener_type_name(LISTENER_UNIX), "unix");
	assert_string_equal(listener_type_name(LISTENER_TCP), "tcp");
	assert_string_equal(listener_type_name(LISTENER_TLS), "tls");
}

/* peer.address in upstream's (Go's) notation */
static void test_format_addr(void **state)
{
	struct sockaddr_in in;
	struct sockaddr_in6 in6;
	struct sockaddr_un un;
	char out[LISTENER_ADDR_MAX];

	(void)state;
	memset(&in, 0, sizeof(in));
	in.sin_family = AF_INET;
	in.sin_port = htons(54321);
	inet_pton(AF_INET, "10.1.2.3", &in.sin_addr);
	listener_format_addr((struct sockaddr *)&in, sizeof(in), out, sizeof(out));
	assert_string_equal(out, "10.1.2.3:54321");
	memset(&in6, 0, sizeof(in6));
	in6.sin6_family = AF_INET6;
	in6.sin6_port = htons(8075);
	inet_pton(AF_INET6, "::1", &in6.sin6_addr);
	listener_format_addr((struct sockaddr *)&in6, sizeof(in6), out, sizeof(out));
	assert_string_equal(out, "[::1]:8075");
	memset(&un, 0, sizeof(un));
	un.sun_family = AF_UNIX;
	listener_format_addr((struct sockaddr *)&un, sizeof(sa_family_t), out, sizeof(out));
	assert_string_equal(out, "@");
	memcpy(un.sun_path, "/run/x.sock", 11);
	listener_format_addr((struct sockaddr *)&un, sizeof(un), out, sizeof(out));
	assert_string_equal(out, "/run/x.sock");
	/* a too small buffer cuts */
	listener_format_addr((struct sockaddr *)&in, sizeof(in), out, 5);
	assert_string_equal(out, "10.1");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_format_addr),
		cmocka_unit_test(test_unix),
		cmocka_unit_test(test_tcp),
		cmocka_unit_test(test_bad_addresses),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
