/*
 * Tests for src/net/yamux.c. Two kinds of peer: our own session on the other
 * end of a socketpair, and a "raw" peer where the test writes and reads
 * frames byte by byte, to check exact wire behaviour (windows, RST, go-away,
 * protocol errors). The interop group runs hashicorp/yamux itself (built from
 * tests/interop/yamux_peer.go into the build tree) against our session.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <pthread.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "net/sidechannel.h"
#include "net/yamux.h"

static char *self_path;

/* ---- helpers ----------------------------------------------------------- */

static uint8_t pat(size_t i)
{
	return (uint8_t)((i % 251) ^ (i >> 16));
}

static uint8_t *pattern(size_t n)
{
	uint8_t *b = malloc(n);
	size_t i;

	assert_non_null(b);
	for (i = 0; i < n; i++)
		b[i] = pat(i);
	return b;
}

static int64_t now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void pair(struct yamux_session **client, struct yamux_session **server,
		 uint32_t client_window, uint32_t server_window)
{
	struct yamux_config cc, sc;
	struct error err = ERROR_INIT;
	int sv[2];

	assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
	yamux_config_default(&cc);
	yamux_config_default(&sc);
	cc.max_stream_window = client_window;
	sc.max_stream_window = server_window;
	assert_int_equal(yamux_session_new(sv[0], YAMUX_CLIENT, &cc, client, &err), 0);
	assert_int_equal(yamux_session_new(sv[1], YAMUX_SERVER, &sc, server, &err), 0);
}

/* Our session (role) on one end, the raw fd for the test on the other. */
static struct yamux_session *raw_pair(enum yamux_role role, uint32_t window, int *raw)
{
	struct yamux_config cfg;
	struct yamux_session *s;
	struct error err = ERROR_INIT;
	int sv[2];

	assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
	yamux_config_default(&cfg);
	cfg.max_stream_window = window;
	assert_int_equal(yamux_session_new(sv[0], role, &cfg, &s, &err), 0);
	*raw = sv[1];
	return s;
}

static void write_all(int fd, const void *p, size_t n)
{
	const uint8_t *b = p;

	while (n) {
		ssize_t k = write(fd, b, n);
		if (k < 0 && errno == EPIPE)
			return; /* the session already hung up on a bad frame */
		assert_true(k > 0);
		b += k;
		n -= (size_t)k;
	}
}

static void raw_send(int fd, int type, uint16_t flags, uint32_t id, uint32_t len,
		     const void *payload, size_t plen)
{
	uint8_t h[12] = { 0, (uint8_t)type, (uint8_t)(flags >> 8), (uint8_t)flags,
			  (uint8_t)(id >> 24), (uint8_t)(id >> 16), (uint8_t)(id >> 8), (uint8_t)id,
			  (uint8_t)(len >> 24), (uint8_t)(len >> 16), (uint8_t)(len >> 8), (uint8_t)len };

	write_all(fd, h, 12);
	if (plen)
		write_all(fd, payload, plen);
}

/* Reads exactly n bytes within timeout_ms; returns bytes read (< n on
 * timeout or EOF). */
static size_t read_timeout(int fd, void *buf, size_t n, int timeout_ms)
{
	uint8_t *b = buf;
	size_t got = 0;

	while (got < n) {
		struct pollfd p = { fd, POLLIN, 0 };
		ssize_t k;

		if (poll(&p, 1, timeout_ms) <= 0)
			break;
		k = read(fd, b + got, n - got);
		if (k <= 0)
			break;
		got += (size_t)k;
	}
	return got;
}

struct frame {
	int type;
	uint16_t flags;
	uint32_t id, len;
};

/* Reads one frame header (data payloads are consumed into a scratch area
 * and counted in f->len). Returns 0, or -1 on timeout/EOF. */
static int raw_recv(int fd, struct frame *f, int timeout_ms)
{
	uint8_t h[12];

	if (read_timeout(fd, h, 12, timeout_ms) != 12)
		return -1;
	assert_int_equal(h[0], 0);
	f->type = h[1];
	f->flags = (uint16_t)(h[2] << 8 | h[3]);
	f->id = (uint32_t)h[4] << 24 | (uint32_t)h[5] << 16 | (uint32_t)h[6] << 8 | h[7];
	f->len = (uint32_t)h[8] << 24 | (uint32_t)h[9] << 16 | (uint32_t)h[10] << 8 | h[11];
	if (f->type == YAMUX_TYPE_DATA && f->len) {
		uint8_t *tmp = malloc(f->len);
		assert_non_null(tmp);
		assert_int_equal(read_timeout(fd, tmp, f->len, 5000), f->len);
		free(tmp);
	}
	return 0;
}

/* Expects a go-away with the given code, then the connection's end. */
static void expect_go_away_then_eof(int raw, uint32_t code)
{
	struct frame f;
	uint8_t b;

	for (;;) {
		assert_int_equal(raw_recv(raw, &f, 5000), 0);
		if (f.type == YAMUX_TYPE_GO_AWAY)
			break;
	}
	assert_int_equal(f.len, code);
	assert_int_equal(f.id, 0);
	assert_int_equal(read_timeout(raw, &b, 1, 5000), 0);
}

/* ---- our session on both ends ------------------------------------------ */

static void test_open_accept(void **state)
{
	struct yamux_session *c, *s;
	struct yamux_stream *cs, *ss, *so, *co;
	struct error err = ERROR_INIT;
	char buf[16];
	size_t n;

	pair(&c, &s, YAMUX_INITIAL_WINDOW, YAMUX_GITALY_SERVER_WINDOW);
	assert_int_equal(yamux_open(c, &cs, &err), 0);
	assert_int_equal(yamux_stream_id(cs), 1);
	assert_int_equal(yamux_stream_write(cs, "hello", 5, &err), 0);
	assert_int_equal(yamux_accept(s, &ss, &err), 0);
	assert_int_equal(yamux_stream_id(ss), 1);
	assert_int_equal(yamux_stream_read_full(ss, buf, 5, &err), 0);
	assert_memory_equal(buf, "hello", 5);

	/* server-opened streams use even ids */
	assert_int_equal(yamux_open(s, &so, &err), 0);
	assert_int_equal(yamux_stream_id(so), 2);
	assert_int_equal(yamux_stream_write(so, "hi", 2, &err), 0);
	assert_int_equal(yamux_accept(c, &co, &err), 0);
	assert_int_equal(yamux_stream_id(co), 2);
	assert_int_equal(yamux_stream_read(co, buf, sizeof(buf), &n, &err), 0);
	assert_int_equal(n, 2);
	assert_memory_equal(buf, "hi", 2);

	yamux_stream_free(cs);
	yamux_stream_free(ss);
	yamux_stream_free(so);
	yamux_stream_free(co);
	yamux_session_free(c);
	yamux_session_free(s);
}

struct pump {
	struct yamux_stream *st;
	size_t size;
	int rc;
	int done;
};

static void *pump_writer(void *arg)
{
	struct pump *p = arg;
	struct error err = ERROR_INIT;
	uint8_t *data = pattern(p->size);
	size_t off = 0;

	/* uneven write sizes */
	while (off < p->size && !p->rc) {
		size_t k = 100003;
		if (k > p->size - off)
			k = p->size - off;
		p->rc = yamux_stream_write(p->st, data + off, k, &err);
		off += k;
	}
	if (!p->rc)
		p->rc = yamux_stream_close_write(p->st, &err);
	__atomic_store_n(&p->done, 1, __ATOMIC_SEQ_CST);
	free(data);
	error_release(&err);
	return NULL;
}

/* Reads to EOF, checking the pattern; returns the byte count. */
static size_t read_check(struct yamux_stream *st, size_t chunk, int delay_us)
{
	struct error err = ERROR_INIT;
	uint8_t *buf = malloc(chunk);
	size_t total = 0, n, i;

	for (;;) {
		assert_int_equal(yamux_stream_read(st, buf, chunk, &n, &err), 0);
		if (!n)
			break;
		for (i = 0; i < n; i++)
			if (buf[i] != pat(total + i))
				fail_msg("byte %zu differs", total + i);
		total += n;
		if (delay_us)
			usleep(delay_us);
	}
	free(buf);
	return total;
}

static void test_bulk_bidirectional(void **state)
{
	const size_t size = 6u << 20;
	struct yamux_session *c, *s;
	struct yamux_stream *cs, *ss;
	struct error err = ERROR_INIT;
	struct pump pc = { 0 }, ps = { 0 };
	pthread_t tc, ts;

	pair(&c, &s, YAMUX_INITIAL_WINDOW, YAMUX_GITALY_SERVER_WINDOW);
	assert_int_equal(yamux_open(c, &cs, &err), 0);
	assert_int_equal(yamux_accept(s, &ss, &err), 0);
	pc.st = cs;
	pc.size = size;
	ps.st = ss;
	ps.size = size;
	pthread_create(&tc, NULL, pump_writer, &pc);
	pthread_create(&ts, NULL, pump_writer, &ps);
	assert_int_equal(read_check(ss, 7000, 0), size);
	assert_int_equal(read_check(cs, 65536, 0), size);
	pthread_join(tc, NULL);
	pthread_join(ts, NULL);
	assert_int_equal(pc.rc, 0);
	assert_int_equal(ps.rc, 0);
	assert_false(yamux_session_is_closed(c));
	assert_false(yamux_session_is_closed(s));
	yamux_stream_free(cs);
	yamux_stream_free(ss);
	yamux_session_free(c);
	yamux_session_free(s);
}

/* A slow reader on a small window: the writer must stall, never overrun. */
static void test_slow_reader(void **state)
{
	const size_t size = 3u << 20;
	struct yamux_session *c, *s;
	struct yamux_stream *cs, *ss;
	struct error err = ERROR_INIT;
	struct pump p = { 0 };
	pthread_t t;

	pair(&c, &s, YAMUX_INITIAL_WINDOW, YAMUX_INITIAL_WINDOW);
	assert_int_equal(yamux_open(c, &cs, &err), 0);
	assert_int_equal(yamux_accept(s, &ss, &err), 0);
	p.st = cs;
	p.size = size;
	pthread_create(&t, NULL, pump_writer, &p);
	usleep(100000);
	assert_int_equal(__atomic_load_n(&p.done, __ATOMIC_SEQ_CST), 0);
	assert_int_equal(read_check(ss, 16384, 50), size);
	pthread_join(t, NULL);
	assert_int_equal(p.rc, 0);
	yamux_stream_free(cs);
	yamux_stream_free(ss);
	yamux_session_free(c);
	yamux_session_free(s);
}

static void test_fin_eof(void **state)
{
	struct yamux_session *c, *s;
	struct yamux_stream *cs, *ss;
	struct error err = ERROR_INIT;
	char buf[8];
	size_t n;

	pair(&c, &s, YAMUX_INITIAL_WINDOW, YAMUX_INITIAL_WINDOW);
	assert_int_equal(yamux_open(c, &cs, &err), 0);
	assert_int_equal(yamux_stream_write(cs, "abc", 3, &err), 0);
	assert_int_equal(yamux_stream_close_write(cs, &err), 0);
	assert_int_equal(yamux_stream_close_write(cs, &err), 0); /* idempotent */
	assert_int_equal(yamux_stream_write(cs, "x", 1, &err), -1);
	assert_int_equal(err.code, STATUS_FAILED_PRECONDITION);
	error_release(&err);

	assert_int_equal(yamux_accept(s, &ss, &err), 0);
	assert_int_equal(yamux_stream_read(ss, buf, sizeof(buf), &n, &err), 0);
	assert_int_equal(n, 3);
	assert_memory_equal(buf, "abc", 3);
	assert_int_equal(yamux_stream_read(ss, buf, sizeof(buf), &n, &err), 0);
	assert_int_equal(n, 0);
	/* the other direction still works after the half-close */
	assert_int_equal(yamux_stream_write(ss, "reply", 5, &err), 0);
	assert_int_equal(yamux_stream_close_write(ss, &err), 0);
	assert_int_equal(yamux_stream_read_full(cs, buf, 5, &err), 0);
	assert_memory_equal(buf, "reply", 5);
	assert_int_equal(yamux_stream_read(cs, buf, sizeof(buf), &n, &err), 0);
	assert_int_equal(n, 0);
	assert_int_equal(yamux_stream_read_full(cs, buf, 1, &err), -1);
	assert_int_equal(err.code, STATUS_UNAVAILABLE);
	error_release(&err);

	yamux_stream_free(cs);
	yamux_stream_free(ss);
	yamux_session_free(c);
	yamux_session_free(s);
}

static void test_reset(void **state)
{
	struct yamux_session *c, *s;
	struct yamux_stream *cs, *ss;
	struct error err = ERROR_INIT;
	char buf[8];
	size_t n;

	pair(&c, &s, YAMUX_INITIAL_WINDOW, YAMUX_INITIAL_WINDOW);
	assert_int_equal(yamux_open(c, &cs, &err), 0);
	assert_int_equal(yamux_accept(s, &ss, &err), 0);
	yamux_stream_reset(cs);
	assert_int_equal(yamux_stream_read(ss, buf, sizeof(buf), &n, &err), -1);
	assert_int_equal(err.code, STATUS_UNAVAILABLE);
	assert_non_null(strstr(err.message, "reset"));
	error_release(&err);
	assert_int_equal(yamux_stream_write(ss, "x", 1, &err), -1);
	error_release(&err);
	assert_int_equal(yamux_stream_read(cs, buf, sizeof(buf), &n, &err), -1);
	error_release(&err);
	/* the session survives a stream reset */
	assert_int_equal(yamux_session_ping(c, 5000, NULL, &err), 0);
	yamux_stream_free(cs);
	yamux_stream_free(ss);
	yamux_session_free(c);
	yamux_session_free(s);
}

static void test_ping_and_deadline(void **state)
{
	struct yamux_session *c, *s;
	struct yamux_stream *cs;
	struct error err = ERROR_INIT;
	int64_t rtt = -1, t0;
	char buf[4];
	size_t n;

	pair(&c, &s, YAMUX_INITIAL_WINDOW, YAMUX_INITIAL_WINDOW);
	assert_int_equal(yamux_session_ping(c, 5000, &rtt, &err), 0);
	assert_true(rtt >= 0);
	assert_int_equal(yamux_session_ping(s, 5000, NULL, &err), 0);

	assert_int_equal(yamux_open(c, &cs, &err), 0);
	yamux_stream_set_deadline(cs, 150);
	t0 = now_ms();
	assert_int_equal(yamux_stream_read(cs, buf, sizeof(buf), &n, &err), -1);
	assert_int_equal(err.code, STATUS_DEADLINE_EXCEEDED);
	assert_true(now_ms() - t0 >= 140);
	error_release(&err);
	yamux_stream_free(cs);
	yamux_session_free(c);
	yamux_session_free(s);
}

static void test_go_away_on_close(void **state)
{
	struct yamux_session *c, *s;
	struct yamux_stream *st;
	struct error err = ERROR_INIT;

	pair(&c, &s, YAMUX_INITIAL_WINDOW, YAMUX_INITIAL_WINDOW);
	yamux_session_close(c);
	assert_int_equal(yamux_accept(s, &st, &err), -1);
	assert_int_equal(err.code, STATUS_UNAVAILABLE);
	error_release(&err);
	assert_int_equal(yamux_session_remote_go_away(s), YAMUX_GO_AWAY_NORMAL);
	assert_int_equal(yamux_open(s, &st, &err), -1);
	error_release(&err);
	assert_int_equal(yamux_open(c, &st, &err), -1);
	error_release(&err);
	yamux_session_free(c);
	yamux_session_free(s);
}

/* A stream freed without its session going first, and the reverse. */
static void test_free_orders(void **state)
{
	struct yamux_session *c, *s;
	struct yamux_stream *cs, *ss;
	struct error err = ERROR_INIT;
	char buf[4];
	size_t n;

	pair(&c, &s, YAMUX_INITIAL_WINDOW, YAMUX_INITIAL_WINDOW);
	assert_int_equal(yamux_open(c, &cs, &err), 0);
	assert_int_equal(yamux_stream_write(cs, "ab", 2, &err), 0);
	assert_int_equal(yamux_accept(s, &ss, &err), 0);
	usleep(50000);
	yamux_session_free(s);
	/* buffered data survives the session, then the error */
	assert_int_equal(yamux_stream_read(ss, buf, sizeof(buf), &n, &err), 0);
	assert_int_equal(n, 2);
	assert_int_equal(yamux_stream_read(ss, buf, sizeof(buf), &n, &err), -1);
	assert_int_equal(err.code, STATUS_UNAVAILABLE);
	error_release(&err);
	yamux_stream_free(ss);
	assert_int_equal(yamux_stream_read(cs, buf, sizeof(buf), &n, &err), -1);
	error_release(&err);
	yamux_stream_free(cs);
	yamux_session_free(c);
}

/* ---- raw peer ---------------------------------------------------------- */

/* The writer stops at exactly the window the peer granted. */
static void test_writer_respects_window(void **state)
{
	int raw;
	struct yamux_session *c = raw_pair(YAMUX_CLIENT, YAMUX_INITIAL_WINDOW, &raw);
	struct yamux_stream *st;
	struct error err = ERROR_INIT;
	struct pump p = { 0 };
	struct frame f;
	size_t got = 0;
	pthread_t t;

	assert_int_equal(yamux_open(c, &st, &err), 0);
	assert_int_equal(raw_recv(raw, &f, 5000), 0);
	assert_int_equal(f.type, YAMUX_TYPE_WINDOW_UPDATE);
	assert_int_equal(f.flags, YAMUX_FLAG_SYN);
	assert_int_equal(f.id, 1);
	assert_int_equal(f.len, 0); /* default window: nothing to add */

	p.st = st;
	p.size = 1u << 20;
	pthread_create(&t, NULL, pump_writer, &p);
	while (raw_recv(raw, &f, 300) == 0) {
		assert_int_equal(f.type, YAMUX_TYPE_DATA);
		/* a write within the window leaves as one frame, not in 64 KiB
		 * pieces: 100003, 100003, then the window's rest */
		if (got < 200006)
			assert_int_equal(f.len, 100003);
		got += f.len;
	}
	assert_int_equal(got, YAMUX_INITIAL_WINDOW);
	assert_int_equal(__atomic_load_n(&p.done, __ATOMIC_SEQ_CST), 0);

	raw_send(raw, YAMUX_TYPE_WINDOW_UPDATE, YAMUX_FLAG_ACK, 1, 100000, NULL, 0);
	got = 0;
	while (raw_recv(raw, &f, 300) == 0)
		got += f.len;
	assert_int_equal(got, 100000);
	assert_int_equal(__atomic_load_n(&p.done, __ATOMIC_SEQ_CST), 0);

	raw_send(raw, YAMUX_TYPE_WINDOW_UPDATE, 0, 1, (1u << 20) - YAMUX_INITIAL_WINDOW - 100000,
		 NULL, 0);
	got = 0;
	for (;;) {
		assert_int_equal(raw_recv(raw, &f, 5000), 0);
		if (f.type == YAMUX_TYPE_WINDOW_UPDATE) {
			assert_int_equal(f.flags, YAMUX_FLAG_FIN);
			break;
		}
		got += f.len;
	}
	assert_int_equal(got, (1u << 20) - YAMUX_INITIAL_WINDOW - 100000);
	pthread_join(t, NULL);
	assert_int_equal(p.rc, 0);
	yamux_stream_free(st);
	yamux_session_free(c);
	close(raw);
}

/* ---- writing from a pipe (splice) -------------------------------------- */

static const size_t pipe_writes[] = { 100003, 300000, 7 };

struct pipe_job {
	struct yamux_stream *st;
	int use_pipe;
	int rc;
};

/* Writes pipe_writes (the pattern, consecutively), each either from memory
 * or after putting it into a fresh pipe, then half-closes. */
static void *pipe_job_main(void *arg)
{
	struct pipe_job *j = arg;
	struct error err = ERROR_INIT;
	uint8_t *data = pattern(1u << 20);
	size_t off = 0;

	for (size_t i = 0; i < sizeof(pipe_writes) / sizeof(pipe_writes[0]) && !j->rc; i++) {
		size_t n = pipe_writes[i];
		if (j->use_pipe) {
			int pfd[2];
			assert_int_equal(pipe(pfd), 0);
			assert_true(fcntl(pfd[1], F_SETPIPE_SZ, 1 << 20) >= (int)n);
			write_all(pfd[1], data + off, n);
			j->rc = yamux_stream_write_pipe(j->st, pfd[0], n, &err);
			close(pfd[0]);
			close(pfd[1]);
		} else {
			j->rc = yamux_stream_write(j->st, data + off, n, &err);
		}
		off += n;
	}
	if (!j->rc)
		j->rc = yamux_stream_close_write(j->st, &err);
	free(data);
	error_release(&err);
	return NULL;
}

/* Everything that arrives on fd until it is quiet for quiet_ms. */
static size_t read_until_quiet(int fd, uint8_t *buf, size_t cap, int quiet_ms)
{
	size_t got = 0;

	for (;;) {
		struct pollfd p = { fd, POLLIN, 0 };
		ssize_t k;

		if (poll(&p, 1, quiet_ms) <= 0)
			return got;
		assert_true(got < cap);
		k = read(fd, buf + got, cap - got);
		if (k <= 0)
			return got;
		got += (size_t)k;
	}
}

/* The wire bytes of pipe_writes through a stream whose peer grants the
 * initial window, then (once the writer stalls) 1 MiB more. */
static size_t capture_writes(int use_pipe, uint8_t *wire, size_t cap)
{
	int raw;
	struct yamux_session *c = raw_pair(YAMUX_CLIENT, YAMUX_INITIAL_WINDOW, &raw);
	struct yamux_stream *st;
	struct error err = ERROR_INIT;
	struct pipe_job j = { 0 };
	size_t got;
	pthread_t t;

	assert_int_equal(yamux_open(c, &st, &err), 0);
	j.st = st;
	j.use_pipe = use_pipe;
	pthread_create(&t, NULL, pipe_job_main, &j);
	got = read_until_quiet(raw, wire, cap, 300);
	/* SYN, then data up to the window: 100003 and 162141 */
	assert_int_equal(got, 12 + 12 + 100003 + 12 + (YAMUX_INITIAL_WINDOW - 100003));
	raw_send(raw, YAMUX_TYPE_WINDOW_UPDATE, YAMUX_FLAG_ACK, 1, 1u << 20, NULL, 0);
	got += read_until_quiet(raw, wire + got, cap - got, 300);
	pthread_join(t, NULL);
	assert_int_equal(j.rc, 0);
	yamux_stream_free(st);
	yamux_session_free(c);
	close(raw);
	return got;
}

/* yamux_stream_write_pipe puts the same bytes on the wire as
 * yamux_stream_write: frame headers, window limits, payload, FIN. */
static void test_write_pipe_same_frames(void **state)
{
	size_t cap = 2u << 20, a, b, off = 0, data = 0;
	uint8_t *wa = malloc(cap), *wb = malloc(cap);
	const uint32_t lens[] = { 100003, YAMUX_INITIAL_WINDOW - 100003,
				  300000 - (YAMUX_INITIAL_WINDOW - 100003), 7 };

	assert_non_null(wa);
	assert_non_null(wb);
	a = capture_writes(0, wa, cap);
	b = capture_writes(1, wb, cap);
	assert_int_equal(a, b);
	assert_memory_equal(wa, wb, a);
	/* and those bytes are what they should be */
	off = 12; /* SYN */
	for (size_t i = 0; i < 4; i++) {
		uint32_t len = (uint32_t)wb[off + 8] << 24 | (uint32_t)wb[off + 9] << 16 |
			       (uint32_t)wb[off + 10] << 8 | wb[off + 11];
		assert_int_equal(wb[off + 1], YAMUX_TYPE_DATA);
		assert_int_equal(len, lens[i]);
		for (uint32_t k = 0; k < len; k++)
			if (wb[off + 12 + k] != pat(data + k))
				fail_msg("payload byte %zu differs", (size_t)(data + k));
		data += len;
		off += 12 + len;
	}
	assert_int_equal(wb[off + 1], YAMUX_TYPE_WINDOW_UPDATE);
	assert_int_equal(wb[off + 3], YAMUX_FLAG_FIN);
	assert_int_equal(off + 12, b);
	free(wa);
	free(wb);
}

/* A pipe holding fewer bytes than promised (its writer gone) fails the
 * write and the session: a frame shorter than its header says must never
 * be followed by anything else. */
static void test_write_pipe_short_pipe(void **state)
{
	int raw, pfd[2];
	struct yamux_session *c = raw_pair(YAMUX_CLIENT, YAMUX_INITIAL_WINDOW, &raw);
	struct yamux_stream *st;
	struct error err = ERROR_INIT;
	uint8_t *data = pattern(1000), buf[4096];
	size_t got;

	assert_int_equal(yamux_open(c, &st, &err), 0);
	assert_int_equal(pipe(pfd), 0);
	write_all(pfd[1], data, 1000);
	close(pfd[1]);
	assert_int_equal(yamux_stream_write_pipe(st, pfd[0], 2000, &err), -1);
	assert_int_equal(err.code, STATUS_UNAVAILABLE);
	error_release(&err);
	assert_true(yamux_session_is_closed(c));
	/* the SYN, the header announcing 2000 bytes, the 1000 there were, EOF */
	got = read_until_quiet(raw, buf, sizeof(buf), 300);
	assert_int_equal(got, 12 + 12 + 1000);
	assert_memory_equal(buf + 24, data, 1000);
	assert_int_equal(yamux_stream_write(st, "x", 1, &err), -1);
	error_release(&err);
	close(pfd[0]);
	free(data);
	yamux_stream_free(st);
	yamux_session_free(c);
	close(raw);
}

/* Window updates go out only after half the max window was consumed. */
static void test_window_update_threshold(void **state)
{
	int raw;
	struct yamux_session *s = raw_pair(YAMUX_SERVER, YAMUX_INITIAL_WINDOW, &raw);
	struct yamux_stream *st;
	struct error err = ERROR_INIT;
	uint8_t *data = pattern(YAMUX_INITIAL_WINDOW), *buf = malloc(YAMUX_INITIAL_WINDOW);
	struct frame f;

	raw_send(raw, YAMUX_TYPE_WINDOW_UPDATE, YAMUX_FLAG_SYN, 1, 0, NULL, 0);
	raw_send(raw, YAMUX_TYPE_DATA, 0, 1, YAMUX_INITIAL_WINDOW, data, YAMUX_INITIAL_WINDOW);
	assert_int_equal(yamux_accept(s, &st, &err), 0);
	assert_int_equal(raw_recv(raw, &f, 5000), 0);
	assert_int_equal(f.type, YAMUX_TYPE_WINDOW_UPDATE);
	assert_int_equal(f.flags, YAMUX_FLAG_ACK);
	assert_int_equal(f.len, 0);

	assert_int_equal(yamux_stream_read_full(st, buf, 100000, &err), 0);
	assert_int_equal(raw_recv(raw, &f, 200), -1); /* below half: no update */
	assert_int_equal(yamux_stream_read_full(st, buf + 100000, 40000, &err), 0);
	assert_int_equal(raw_recv(raw, &f, 5000), 0);
	assert_int_equal(f.type, YAMUX_TYPE_WINDOW_UPDATE);
	assert_int_equal(f.id, 1);
	assert_int_equal(f.len, 140000);
	assert_int_equal(yamux_stream_read_full(st, buf + 140000, YAMUX_INITIAL_WINDOW - 140000,
						&err), 0);
	assert_memory_equal(buf, data, YAMUX_INITIAL_WINDOW);
	free(data);
	free(buf);
	yamux_stream_free(st);
	yamux_session_free(s);
	close(raw);
}

/* Gitaly's 16 MiB server window: the ACK advertises the extra 16 MiB-256 KiB,
 * which the peer may use at once; one byte more kills the session. */
static void test_over_window_kills_session(void **state)
{
	int raw;
	struct yamux_session *s = raw_pair(YAMUX_SERVER, YAMUX_GITALY_SERVER_WINDOW, &raw);
	struct yamux_stream *st;
	struct error err = ERROR_INIT;
	uint32_t w = YAMUX_GITALY_SERVER_WINDOW;
	uint8_t *data = calloc(1, w + 1);
	struct frame f;
	char buf[4];
	size_t n;

	raw_send(raw, YAMUX_TYPE_WINDOW_UPDATE, YAMUX_FLAG_SYN, 1, 0, NULL, 0);
	assert_int_equal(yamux_accept(s, &st, &err), 0);
	assert_int_equal(raw_recv(raw, &f, 5000), 0);
	assert_int_equal(f.flags, YAMUX_FLAG_ACK);
	assert_int_equal(f.len, 0x00FC0000);
	raw_send(raw, YAMUX_TYPE_DATA, 0, 1, w, data, w);
	raw_send(raw, YAMUX_TYPE_DATA, 0, 1, 1, data, 1);
	expect_go_away_then_eof(raw, YAMUX_GO_AWAY_PROTOCOL_ERROR);
	yamux_session_error(s, &err);
	assert_int_equal(err.code, STATUS_UNAVAILABLE);
	assert_non_null(strstr(err.message, "receive window exceeded"));
	error_release(&err);
	/* data that was within the window is still readable */
	assert_int_equal(yamux_stream_read(st, buf, sizeof(buf), &n, &err), 0);
	assert_int_equal(n, sizeof(buf));
	free(data);
	yamux_stream_free(st);
	yamux_session_free(s);
	close(raw);
}

static void test_garbage(void **state)
{
	static const struct {
		uint8_t h[12];
		const char *why;
	} cases[] = {
		{ { 1, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0, 0 }, "unknown version" },
		{ { 0, 9, 0, 0, 0, 0, 0, 1, 0, 0, 0, 0 }, "unknown frame type" },
		{ { 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 5 }, "stream 0" },
		/* a data frame of 4 GiB - 1 on an unknown stream: no allocation */
		{ { 0, 0, 0, 0, 0, 0, 0, 9, 0xff, 0xff, 0xff, 0xff }, "larger than any window" },
		/* a SYN with the server's own (even) parity */
		{ { 0, 1, 0, 1, 0, 0, 0, 2, 0, 0, 0, 0 }, "parity" },
	};
	size_t i;

	for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		int raw;
		struct yamux_session *s = raw_pair(YAMUX_SERVER, YAMUX_INITIAL_WINDOW, &raw);
		struct error err = ERROR_INIT;

		write_all(raw, cases[i].h, 12);
		expect_go_away_then_eof(raw, YAMUX_GO_AWAY_PROTOCOL_ERROR);
		yamux_session_error(s, &err);
		assert_non_null(err.message);
		if (!strstr(err.message, cases[i].why))
			fail_msg("case %zu: %s", i, err.message);
		error_release(&err);
		yamux_session_free(s);
		close(raw);
	}
}

static void test_duplicate_syn(void **state)
{
	int raw;
	struct yamux_session *s = raw_pair(YAMUX_SERVER, YAMUX_INITIAL_WINDOW, &raw);
	struct error err = ERROR_INIT;

	raw_send(raw, YAMUX_TYPE_WINDOW_UPDATE, YAMUX_FLAG_SYN, 1, 0, NULL, 0);
	raw_send(raw, YAMUX_TYPE_WINDOW_UPDATE, YAMUX_FLAG_SYN, 1, 0, NULL, 0);
	expect_go_away_then_eof(raw, YAMUX_GO_AWAY_PROTOCOL_ERROR);
	yamux_session_error(s, &err);
	assert_non_null(strstr(err.message, "duplicate"));
	error_release(&err);
	yamux_session_free(s);
	close(raw);
}

/* Data for a stream nobody knows is dropped like hashicorp does; the session
 * stays up (answers a ping afterwards). */
static void test_unknown_stream(void **state)
{
	int raw;
	struct yamux_session *s = raw_pair(YAMUX_SERVER, YAMUX_INITIAL_WINDOW, &raw);
	struct frame f;

	raw_send(raw, YAMUX_TYPE_DATA, 0, 7, 10, "0123456789", 10);
	raw_send(raw, YAMUX_TYPE_WINDOW_UPDATE, 0, 9, 100, NULL, 0);
	raw_send(raw, YAMUX_TYPE_PING, YAMUX_FLAG_SYN, 0, 0xdeadbeef, NULL, 0);
	assert_int_equal(raw_recv(raw, &f, 5000), 0);
	assert_int_equal(f.type, YAMUX_TYPE_PING);
	assert_int_equal(f.flags, YAMUX_FLAG_ACK);
	assert_int_equal(f.id, 0);
	assert_int_equal(f.len, 0xdeadbeef);
	assert_false(yamux_session_is_closed(s));
	yamux_session_free(s);
	close(raw);
}

/* Backlog 1: a second client stream before accept is refused with RST, and
 * the session closes with a normal go-away. */
static void test_backlog_rst_and_go_away(void **state)
{
	int raw;
	struct yamux_session *s = raw_pair(YAMUX_SERVER, YAMUX_GITALY_SERVER_WINDOW, &raw);
	struct yamux_stream *st;
	struct error err = ERROR_INIT;
	struct frame f;
	char buf[3];

	raw_send(raw, YAMUX_TYPE_DATA, YAMUX_FLAG_SYN, 1, 3, "one", 3);
	raw_send(raw, YAMUX_TYPE_DATA, YAMUX_FLAG_SYN, 3, 3, "two", 3);
	assert_int_equal(raw_recv(raw, &f, 5000), 0);
	assert_int_equal(f.type, YAMUX_TYPE_WINDOW_UPDATE);
	assert_int_equal(f.flags, YAMUX_FLAG_RST);
	assert_int_equal(f.id, 3);

	assert_int_equal(yamux_accept(s, &st, &err), 0);
	assert_int_equal(yamux_stream_id(st), 1);
	assert_int_equal(raw_recv(raw, &f, 5000), 0);
	assert_int_equal(f.flags, YAMUX_FLAG_ACK);
	assert_int_equal(f.id, 1);
	/* max - buffered - remaining window = 16 MiB - 3 - (256 KiB - 3) */
	assert_int_equal(f.len, YAMUX_GITALY_SERVER_WINDOW - YAMUX_INITIAL_WINDOW);
	assert_int_equal(yamux_stream_read_full(st, buf, 3, &err), 0);
	assert_memory_equal(buf, "one", 3);

	/* peer resets the stream */
	raw_send(raw, YAMUX_TYPE_WINDOW_UPDATE, YAMUX_FLAG_RST, 1, 0, NULL, 0);
	assert_int_equal(yamux_stream_read_full(st, buf, 1, &err), -1);
	error_release(&err);
	yamux_stream_free(st);

	yamux_session_close(s);
	expect_go_away_then_eof(raw, YAMUX_GO_AWAY_NORMAL);
	yamux_session_free(s);
	close(raw);
}

/* A stream the peer reset while it waited in the backlog is handed out
 * already reset, and gets no ACK. */
static void test_reset_before_accept(void **state)
{
	int raw;
	struct yamux_session *s = raw_pair(YAMUX_SERVER, YAMUX_INITIAL_WINDOW, &raw);
	struct yamux_stream *st;
	struct error err = ERROR_INIT;
	struct frame f;
	char b;

	raw_send(raw, YAMUX_TYPE_WINDOW_UPDATE, YAMUX_FLAG_SYN, 1, 0, NULL, 0);
	raw_send(raw, YAMUX_TYPE_WINDOW_UPDATE, YAMUX_FLAG_RST, 1, 0, NULL, 0);
	raw_send(raw, YAMUX_TYPE_PING, YAMUX_FLAG_SYN, 0, 5, NULL, 0);
	assert_int_equal(raw_recv(raw, &f, 5000), 0); /* both frames were processed */
	assert_int_equal(f.type, YAMUX_TYPE_PING);
	assert_int_equal(yamux_accept(s, &st, &err), 0);
	assert_int_equal(yamux_stream_read_full(st, &b, 1, &err), -1);
	error_release(&err);
	assert_int_equal(raw_recv(raw, &f, 200), -1);
	yamux_stream_free(st);
	assert_int_equal(raw_recv(raw, &f, 200), -1); /* and no RST for it either */
	yamux_session_free(s);
	close(raw);
}

static void test_peer_go_away(void **state)
{
	int raw;
	struct yamux_session *c = raw_pair(YAMUX_CLIENT, YAMUX_INITIAL_WINDOW, &raw);
	struct yamux_stream *st;
	struct error err = ERROR_INIT;

	raw_send(raw, YAMUX_TYPE_GO_AWAY, 0, 0, YAMUX_GO_AWAY_NORMAL, NULL, 0);
	while (yamux_session_remote_go_away(c) < 0)
		usleep(1000);
	assert_int_equal(yamux_open(c, &st, &err), -1);
	assert_int_equal(err.code, STATUS_UNAVAILABLE);
	error_release(&err);
	assert_false(yamux_session_is_closed(c));

	raw_send(raw, YAMUX_TYPE_GO_AWAY, 0, 0, YAMUX_GO_AWAY_INTERNAL_ERROR, NULL, 0);
	while (!yamux_session_is_closed(c))
		usleep(1000);
	yamux_session_error(c, &err);
	assert_non_null(strstr(err.message, "go-away"));
	error_release(&err);
	yamux_session_free(c);
	close(raw);
}

/* ---- bridge ------------------------------------------------------------ */

static void *fd_writer(void *arg)
{
	int *fd = arg;
	uint8_t *want = pattern(2u << 20);

	write_all(*fd, want, 2u << 20);
	close(*fd);
	free(want);
	return NULL;
}

static void test_bridge(void **state)
{
	const size_t size = 2u << 20;
	struct yamux_session *c, *s;
	struct yamux_stream *cs, *ss;
	struct error err = ERROR_INIT;
	struct pump p = { 0 };
	uint8_t *buf = malloc(size), *want = pattern(size);
	pthread_t t;
	size_t n;
	int fd;

	pair(&c, &s, YAMUX_INITIAL_WINDOW, YAMUX_GITALY_SERVER_WINDOW);
	assert_int_equal(yamux_open(c, &cs, &err), 0);
	assert_int_equal(yamux_accept(s, &ss, &err), 0);
	assert_int_equal(yamux_stream_bridge(ss, &fd, &err), 0);

	/* peer -> fd, with EOF forwarded */
	p.st = cs;
	p.size = size;
	pthread_create(&t, NULL, pump_writer, &p);
	assert_int_equal(read_timeout(fd, buf, size, 5000), size);
	assert_memory_equal(buf, want, size);
	assert_int_equal(read_timeout(fd, buf, 1, 5000), 0);
	pthread_join(t, NULL);
	assert_int_equal(p.rc, 0);

	/* fd -> peer, then closing fd half-closes the stream */
	pthread_create(&t, NULL, fd_writer, &fd);
	assert_int_equal(read_check(cs, 65536, 0), size);
	pthread_join(t, NULL);
	yamux_stream_free(cs);
	yamux_session_free(c);
	yamux_session_free(s);
	free(buf);
	free(want);
	(void)n;
}

/* ---- interop with hashicorp/yamux -------------------------------------- */

static char peer_bin[4200];

/* Runs argv, waits; returns the exit status or -1. */
static int run(char *const argv[], char *const envp[])
{
	pid_t pid = fork();
	int st;

	if (pid == 0) {
		execve(argv[0], argv, envp);
		_exit(127);
	}
	if (pid < 0 || waitpid(pid, &st, 0) != pid)
		return -1;
	return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

static const char *find_go(void)
{
	static const char *const cands[] = { "/usr/bin/go", "/usr/lib/go/bin/go",
					     "/usr/local/go/bin/go" };
	size_t i;

	for (i = 0; i < sizeof(cands) / sizeof(cands[0]); i++)
		if (access(cands[i], X_OK) == 0)
			return cands[i];
	return NULL;
}

static int interop_setup(void **state)
{
	const char *go = find_go();
	char dir[4000], gocache[4200], out[4200];
	char *slash;
	int n;

	if (!go) {
		fprintf(stderr, "SKIP: interop with hashicorp/yamux: go not installed\n");
		peer_bin[0] = 0;
		return 0;
	}
	/* build into the build tree, next to this test binary */
	n = snprintf(dir, sizeof(dir), "%s", self_path);
	assert_true(n > 0 && (size_t)n < sizeof(dir));
	slash = strrchr(dir, '/');
	if (slash)
		*slash = 0;
	else
		snprintf(dir, sizeof(dir), ".");
	{
		/* go wants an absolute cache directory */
		char *abs = realpath(dir, NULL);
		assert_non_null(abs);
		snprintf(dir, sizeof(dir), "%s", abs);
		free(abs);
	}
	snprintf(peer_bin, sizeof(peer_bin), "%s/yamux_peer", dir);
	snprintf(gocache, sizeof(gocache), "GOCACHE=%s/.gocache", dir);
	snprintf(out, sizeof(out), "%s", peer_bin);
	{
		char *argv[] = { (char *)go, "build", "-o", out, "tests/interop/yamux_peer.go",
				 NULL };
		char *envp[] = { "GO111MODULE=off", "GOPATH=/usr/share/gocode", gocache,
				 "PATH=/usr/bin:/bin", "HOME=/tmp", "GOFLAGS=", NULL };
		int rc = run(argv, envp);
		if (rc != 0)
			fail_msg("building tests/interop/yamux_peer.go failed (%d); is "
				 "golang-github-hashicorp-yamux-dev installed?", rc);
	}
	return 0;
}

/* Starts the Go peer with our socket end as its fd 3. */
static pid_t spawn_peer(const char *mode, const char *arg, int *ours)
{
	int sv[2];
	pid_t pid;

	assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
	pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		char *argv[] = { peer_bin, (char *)mode, (char *)arg, NULL };
		if (dup2(sv[1], 3) != 3)
			_exit(126);
		execv(peer_bin, argv);
		_exit(127);
	}
	close(sv[1]);
	*ours = sv[0];
	return pid;
}

static int wait_peer(pid_t pid)
{
	int st;

	assert_int_equal(waitpid(pid, &st, 0), pid);
	return WIFEXITED(st) ? WEXITSTATUS(st) : 1000 + WTERMSIG(st);
}

struct echo_job {
	struct yamux_session *c;
	size_t size;
	int rc;
};

static void *echo_job(void *arg)
{
	struct echo_job *j = arg;
	struct error err = ERROR_INIT;
	struct yamux_stream *st;
	struct pump p = { 0 };
	pthread_t t;

	j->rc = -1;
	if (yamux_open(j->c, &st, &err))
		return NULL;
	p.st = st;
	p.size = j->size;
	pthread_create(&t, NULL, pump_writer, &p);
	if (read_check(st, 30000, 0) == j->size)
		j->rc = 0;
	pthread_join(t, NULL);
	if (p.rc)
		j->rc = -1;
	yamux_stream_free(st);
	error_release(&err);
	return NULL;
}

static void *echo_stream(void *arg)
{
	struct yamux_stream *st = arg;
	struct error err = ERROR_INIT;
	uint8_t *buf = malloc(40000);
	size_t n;

	while (yamux_stream_read(st, buf, 40000, &n, &err) == 0 && n)
		if (yamux_stream_write(st, buf, n, &err))
			break;
	yamux_stream_close_write(st, &err);
	error_release(&err);
	free(buf);
	return st;
}

/* Eight concurrent echoed streams between two of our own sessions. */
static void test_many_streams(void **state)
{
	enum { N = 8 };
	struct yamux_session *c, *s;
	struct yamux_config cc, sc;
	struct error err = ERROR_INIT;
	struct echo_job jobs[N];
	pthread_t tj[N], te[N];
	int sv[2], i;

	assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
	yamux_config_default(&cc);
	yamux_config_default(&sc);
	sc.accept_backlog = N;
	sc.max_stream_window = 1u << 20;
	assert_int_equal(yamux_session_new(sv[0], YAMUX_CLIENT, &cc, &c, &err), 0);
	assert_int_equal(yamux_session_new(sv[1], YAMUX_SERVER, &sc, &s, &err), 0);
	for (i = 0; i < N; i++) {
		jobs[i].c = c;
		jobs[i].size = (size_t)(i + 1) * 300000;
		pthread_create(&tj[i], NULL, echo_job, &jobs[i]);
	}
	for (i = 0; i < N; i++) {
		struct yamux_stream *st;

		assert_int_equal(yamux_accept(s, &st, &err), 0);
		pthread_create(&te[i], NULL, echo_stream, st);
	}
	for (i = 0; i < N; i++) {
		void *st;

		pthread_join(tj[i], NULL);
		assert_int_equal(jobs[i].rc, 0);
		pthread_join(te[i], &st);
		yamux_stream_free(st);
	}
	yamux_session_free(c);
	yamux_session_free(s);
}

/* Our client against hashicorp's server: three concurrent echoed streams. */
static void interop_server_echo(const char *window)
{
	struct yamux_session *c;
	struct yamux_config cfg;
	struct error err = ERROR_INIT;
	struct echo_job jobs[3];
	pthread_t t[3];
	int fd, i;
	pid_t pid;

	if (!peer_bin[0]) {
		skip();
		return;
	}
	pid = spawn_peer("server-echo", window, &fd);
	yamux_config_default(&cfg);
	assert_int_equal(yamux_session_new(fd, YAMUX_CLIENT, &cfg, &c, &err), 0);
	assert_int_equal(yamux_session_ping(c, 5000, NULL, &err), 0);
	for (i = 0; i < 3; i++) {
		jobs[i].c = c;
		jobs[i].size = (size_t)(i + 1) << 20;
		pthread_create(&t[i], NULL, echo_job, &jobs[i]);
	}
	for (i = 0; i < 3; i++) {
		pthread_join(t[i], NULL);
		assert_int_equal(jobs[i].rc, 0);
	}
	assert_false(yamux_session_is_closed(c));
	yamux_session_free(c);
	assert_int_equal(wait_peer(pid), 0);
}

static void test_interop_hashicorp_server_default_window(void **state)
{
	interop_server_echo("262144");
}

static void test_interop_hashicorp_server_large_window(void **state)
{
	interop_server_echo("16777216");
}

/* hashicorp's client against our server configured like Gitaly: stream 1
 * echoed, plus a server-opened sidechannel with the full handshake. */
static void test_interop_hashicorp_client(void **state)
{
	const size_t size = 3u << 20;
	struct yamux_session *s;
	struct yamux_stream *st, *side;
	struct yamux_config cfg;
	struct error err = ERROR_INIT;
	struct sidechannel_io io;
	struct sidechannel_reader rd;
	uint8_t *buf = malloc(size + 1), *want = pattern(size);
	size_t got = 0, n;
	int fd;
	pid_t pid;

	if (!peer_bin[0]) {
		skip();
		return;
	}
	pid = spawn_peer("client", "3145728", &fd);
	yamux_config_default(&cfg);
	cfg.max_stream_window = YAMUX_GITALY_SERVER_WINDOW;
	assert_int_equal(yamux_session_new(fd, YAMUX_SERVER, &cfg, &s, &err), 0);
	assert_int_equal(yamux_accept(s, &st, &err), 0);
	assert_int_equal(yamux_stream_id(st), 1);

	/* sidechannel: handshake, unframe the request, answer in side-band */
	assert_int_equal(yamux_open(s, &side, &err), 0);
	assert_int_equal(yamux_stream_id(side), 2);
	if (sidechannel_server_handshake(side, 42, SIDECHANNEL_HANDSHAKE_TIMEOUT_MS, &err))
		fail_msg("handshake: %s", err.message);
	sidechannel_io_from_stream(&io, side);
	sidechannel_reader_init(&rd, &io);
	for (;;) {
		assert_int_equal(sidechannel_reader_read(&rd, buf + got, size - got + (got == size),
							 &n, &err), 0);
		if (!n)
			break;
		got += n;
	}
	assert_int_equal(got, size);
	assert_memory_equal(buf, want, size);
	assert_int_equal(sidechannel_sideband_write(&io, 1, buf, size, &err), 0);
	assert_int_equal(yamux_stream_close_write(side, &err), 0);

	/* stream 1: echo until EOF */
	for (;;) {
		assert_int_equal(yamux_stream_read(st, buf, 65536, &n, &err), 0);
		if (!n)
			break;
		assert_int_equal(yamux_stream_write(st, buf, n, &err), 0);
	}
	/* the peer may have ended the whole session by now: no assertion */
	yamux_stream_close_write(st, &err);
	error_release(&err);
	assert_int_equal(wait_peer(pid), 0);
	yamux_stream_free(side);
	yamux_stream_free(st);
	yamux_session_free(s);
	free(buf);
	free(want);
}

int main(int argc, char **argv)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_open_accept),
		cmocka_unit_test(test_bulk_bidirectional),
		cmocka_unit_test(test_slow_reader),
		cmocka_unit_test(test_fin_eof),
		cmocka_unit_test(test_reset),
		cmocka_unit_test(test_ping_and_deadline),
		cmocka_unit_test(test_go_away_on_close),
		cmocka_unit_test(test_free_orders),
		cmocka_unit_test(test_writer_respects_window),
		cmocka_unit_test(test_write_pipe_same_frames),
		cmocka_unit_test(test_write_pipe_short_pipe),
		cmocka_unit_test(test_window_update_threshold),
		cmocka_unit_test(test_over_window_kills_session),
		cmocka_unit_test(test_garbage),
		cmocka_unit_test(test_duplicate_syn),
		cmocka_unit_test(test_unknown_stream),
		cmocka_unit_test(test_backlog_rst_and_go_away),
		cmocka_unit_test(test_reset_before_accept),
		cmocka_unit_test(test_peer_go_away),
		cmocka_unit_test(test_bridge),
		cmocka_unit_test(test_many_streams),
	};
	const struct CMUnitTest interop[] = {
		cmocka_unit_test(test_interop_hashicorp_server_default_window),
		cmocka_unit_test(test_interop_hashicorp_server_large_window),
		cmocka_unit_test(test_interop_hashicorp_client),
	};
	int rc;

	(void)argc;
	self_path = argv[0];
	signal(SIGPIPE, SIG_IGN);
	rc = cmocka_run_group_tests(tests, NULL, NULL);
	rc |= cmocka_run_group_tests_name("yamux_interop", interop, interop_setup, NULL);
	return rc;
}
