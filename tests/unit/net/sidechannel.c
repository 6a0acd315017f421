/*
 * Tests for src/net/sidechannel.c: the handshake over a real yamux session
 * pair (success, a wrong reply, a client that never answers), and the
 * framing on in-memory pipes, including reads that return one byte at a
 * time so every parser state sees a split.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <pthread.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "net/sidechannel.h"
#include "net/yamux.h"

/* ---- in-memory pipe ---------------------------------------------------- */

struct mem {
	uint8_t *data;
	size_t len, pos, alloc;
	size_t max_read; /* 0: unlimited */
	size_t writes;   /* io->write calls with data */
};

static int mem_read(void *ctx, void *buf, size_t len, size_t *nread, struct error *err)
{
	struct mem *m = ctx;
	size_t n = m->len - m->pos;

	if (n > len)
		n = len;
	if (m->max_read && n > m->max_read)
		n = m->max_read;
	if (n)
		memcpy(buf, m->data + m->pos, n);
	m->pos += n;
	*nread = n;
	return 0;
}

static int mem_write(void *ctx, const void *buf, size_t len, struct error *err)
{
	struct mem *m = ctx;

	if (!len)
		return 0;
	m->writes++;
	if (m->len + len > m->alloc) {
		m->alloc = (m->len + len) * 2;
		m->data = realloc(m->data, m->alloc);
		assert_non_null(m->data);
	}
	memcpy(m->data + m->len, buf, len);
	m->len += len;
	return 0;
}

static struct sidechannel_io mem_io(struct mem *m)
{
	struct sidechannel_io io = { mem_read, mem_write, m };
	return io;
}

static void mem_set(struct mem *m, const void *p, size_t n)
{
	free(m->data);
	memset(m, 0, sizeof(*m));
	mem_write(m, p, n, NULL);
}

/* Unframes everything; returns 0 and fills out, or -1 with err set. */
static int unframe(struct mem *m, uint8_t *out, size_t cap, size_t *outlen, struct error *err)
{
	struct sidechannel_io io = mem_io(m);
	struct sidechannel_reader r;
	size_t n;

	*outlen = 0;
	sidechannel_reader_init(&r, &io);
	for (;;) {
		if (sidechannel_reader_read(&r, out + *outlen, cap - *outlen, &n, err))
			return -1;
		if (!n)
			return 0;
		*outlen += n;
		assert_true(*outlen < cap);
	}
}

static void test_unframe_basic(void **state)
{
	struct mem m = { 0 };
	struct error err = ERROR_INIT;
	uint8_t out[64];
	size_t n;
	int split;

	for (split = 0; split < 2; split++) {
		mem_set(&m, "0009hello0004000a world0000trailing", 35);
		m.max_read = split ? 1 : 0;
		assert_int_equal(unframe(&m, out, sizeof(out), &n, &err), 0);
		assert_int_equal(n, 11);
		assert_memory_equal(out, "hello world", 11);
		/* nothing after the flush is consumed */
		assert_int_equal(m.pos, 27);
	}
	/* uppercase hex is accepted like Go's parser does */
	mem_set(&m, "000Ahello!0000", 14);
	assert_int_equal(unframe(&m, out, sizeof(out), &n, &err), 0);
	assert_int_equal(n, 6);
	free(m.data);
}

static void test_unframe_errors(void **state)
{
	static const char *const bad[] = {
		"0001", "0002", "0003", "fff1", "ffff", "00zz", "-001", " 004",
		"0009hel",    /* EOF inside a frame */
		"0009hello",  /* EOF without 0000 */
		"",           /* EOF before anything */
		"00",         /* EOF inside a length */
	};
	struct mem m = { 0 };
	uint8_t out[64];
	size_t i, n;

	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		struct error err = ERROR_INIT;

		mem_set(&m, bad[i], strlen(bad[i]));
		if (unframe(&m, out, sizeof(out), &n, &err) != -1)
			fail_msg("accepted %s", bad[i]);
		assert_int_equal(err.code, STATUS_INTERNAL);
		if (i >= 8)
			assert_non_null(strstr(err.message, "unexpected EOF"));
		error_release(&err);
	}
	free(m.data);
}

static void test_frames_roundtrip_max(void **state)
{
	const size_t size = 200000;
	struct mem m = { 0 };
	struct sidechannel_io io = mem_io(&m);
	struct error err = ERROR_INIT;
	uint8_t *data = malloc(size), *out = malloc(size + 1);
	size_t i, n;

	for (i = 0; i < size; i++)
		data[i] = (uint8_t)(i * 13);
	assert_int_equal(sidechannel_write_frames(&io, data, size, &err), 0);
	assert_int_equal(sidechannel_write_frames(&io, data, 0, &err), 0); /* writes nothing */
	assert_int_equal(sidechannel_write_flush(&io, &err), 0);
	/* 65516 + 4 = 65520 = fff0: the largest frame, three of them */
	assert_memory_equal(m.data, "fff0", 4);
	assert_memory_equal(m.data + 65520, "fff0", 4);
	assert_memory_equal(m.data + 3 * 65520, "0d80", 4); /* 200000 - 3*65516 + 4 */
	assert_int_equal(m.len, size + 4 * 4 + 4);
	assert_int_equal(unframe(&m, out, size + 1, &n, &err), 0);
	assert_int_equal(n, size);
	assert_memory_equal(out, data, size);
	free(data);
	free(out);
	free(m.data);
}

/* A 64 KiB chunk of git's output (two packets) leaves in one write, i.e.
 * one yamux frame and one system call, not a header and a payload apiece. */
static void test_packets_staged_per_write(void **state)
{
	static uint8_t data[3 * 65516];
	struct mem m = { 0 };
	struct sidechannel_io io = mem_io(&m);
	struct error err = ERROR_INIT;

	assert_int_equal(sidechannel_sideband_write(&io, 1, data, 65536, &err), 0);
	assert_int_equal(m.writes, 1);
	assert_int_equal(m.len, 65536 + 2 * 5);
	assert_memory_equal(m.data + 65520, "001a\x01", 5); /* 21 + 5 */
	m.writes = 0;
	m.len = 0;
	assert_int_equal(sidechannel_write_frames(&io, data, 3 * 65516, &err), 0);
	assert_int_equal(m.writes, 2); /* two whole packets, then the third */
	assert_int_equal(m.len, 3 * 65520);
	free(m.data);
}

static void test_sideband(void **state)
{
	const size_t size = 140000;
	struct mem m = { 0 };
	struct sidechannel_io io = mem_io(&m);
	struct error err = ERROR_INIT;
	uint8_t *data = malloc(size), pkt[SIDECHANNEL_SIDEBAND_MAX_DATA];
	size_t i, n, total = 0;
	int band;

	for (i = 0; i < size; i++)
		data[i] = (uint8_t)(i * 7);
	assert_int_equal(sidechannel_sideband_write(&io, 1, data, size, &err), 0);
	assert_int_equal(sidechannel_sideband_write(&io, 2, "oops\n", 5, &err), 0);
	assert_int_equal(sidechannel_sideband_write(&io, 1, data, 0, &err), 0); /* no empty packet */
	assert_int_equal(sidechannel_sideband_write(&io, 3, data, 1, &err), -1);
	assert_int_equal(err.code, STATUS_INVALID_ARGUMENT);
	error_release(&err);
	/* 65515 + 5 = 65520 = fff0 */
	assert_memory_equal(m.data, "fff0\x01", 5);
	assert_memory_equal(m.data + 65520, "fff0\x01", 5);
	assert_memory_equal(m.data + 2 * 65520, "230f\x01", 5); /* 8970 + 5 */
	m.max_read = 3;
	for (;;) {
		assert_int_equal(sidechannel_sideband_read(&io, &band, pkt, &n, &err), 0);
		if (!n)
			break;
		if (band == 2) {
			assert_int_equal(n, 5);
			assert_memory_equal(pkt, "oops\n", 5);
			continue;
		}
		assert_int_equal(band, 1);
		assert_memory_equal(pkt, data + total, n);
		total += n;
	}
	assert_int_equal(total, size);

	/* malformed packets */
	{
		static const char *const bad[] = { "0005\x01", "0000", "0006\x03x", "fff1\x01",
						   "0009\x01" "ab", "00" };
		for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
			mem_set(&m, bad[i], strlen(bad[i]));
			if (sidechannel_sideband_read(&io, &band, pkt, &n, &err) != -1)
				fail_msg("accepted packet %zu", i);
			error_release(&err);
		}
	}
	free(data);
	free(m.data);
}

/* ---- handshake over yamux ---------------------------------------------- */

struct sessions {
	struct yamux_session *client, *server;
};

static int setup(void **state)
{
	struct sessions *ss = calloc(1, sizeof(*ss));
	struct yamux_config cfg;
	struct error err = ERROR_INIT;
	int sv[2];

	assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
	yamux_config_default(&cfg);
	assert_int_equal(yamux_session_new(sv[0], YAMUX_CLIENT, &cfg, &ss->client, &err), 0);
	cfg.max_stream_window = YAMUX_GITALY_SERVER_WINDOW;
	assert_int_equal(yamux_session_new(sv[1], YAMUX_SERVER, &cfg, &ss->server, &err), 0);
	*state = ss;
	return 0;
}

static int teardown(void **state)
{
	struct sessions *ss = *state;

	yamux_session_free(ss->client);
	yamux_session_free(ss->server);
	free(ss);
	return 0;
}

struct client_job {
	struct yamux_session *c;
	const char *reply; /* NULL: never answer */
	int64_t id;
	int rc;
	struct yamux_stream *st;
};

static void *client_side(void *arg)
{
	struct client_job *j = arg;
	struct error err = ERROR_INIT;

	j->rc = -1;
	if (yamux_accept(j->c, &j->st, &err))
		goto out;
	if (sidechannel_client_read_id(j->st, 5000, &j->id, &err))
		goto out;
	if (j->reply && yamux_stream_write(j->st, j->reply, strlen(j->reply), &err))
		goto out;
	j->rc = 0;
out:
	error_release(&err);
	return NULL;
}

static void test_handshake_and_data(void **state)
{
	struct sessions *ss = *state;
	struct client_job j = { ss->client, "ok", 0, 0, NULL };
	struct yamux_stream *st;
	struct error err = ERROR_INIT;
	struct sidechannel_io sio, cio;
	struct sidechannel_reader rd;
	uint8_t buf[64], pkt[SIDECHANNEL_SIDEBAND_MAX_DATA];
	size_t n, got = 0;
	int band;
	pthread_t t;

	pthread_create(&t, NULL, client_side, &j);
	assert_int_equal(yamux_open(ss->server, &st, &err), 0);
	assert_int_equal(sidechannel_server_handshake(st, 0x0102030405060708LL, 5000, &err), 0);
	pthread_join(t, NULL);
	assert_int_equal(j.rc, 0);
	assert_int_equal(j.id, 0x0102030405060708LL);

	/* client: framed request + flush; server: unframe, answer in side-band */
	sidechannel_io_from_stream(&cio, j.st);
	assert_int_equal(sidechannel_write_frames(&cio, "0009done\n", 9, &err), 0);
	assert_int_equal(sidechannel_write_flush(&cio, &err), 0);
	sidechannel_io_from_stream(&sio, st);
	sidechannel_reader_init(&rd, &sio);
	for (;;) {
		assert_int_equal(sidechannel_reader_read(&rd, buf + got, sizeof(buf) - got, &n, &err), 0);
		if (!n)
			break;
		got += n;
	}
	assert_int_equal(got, 9);
	assert_memory_equal(buf, "0009done\n", 9);
	assert_int_equal(sidechannel_sideband_write(&sio, 1, "PACK", 4, &err), 0);
	assert_int_equal(sidechannel_sideband_write(&sio, 2, "progress", 8, &err), 0);
	assert_int_equal(yamux_stream_close_write(st, &err), 0);

	assert_int_equal(sidechannel_sideband_read(&cio, &band, pkt, &n, &err), 0);
	assert_int_equal(band, 1);
	assert_int_equal(n, 4);
	assert_memory_equal(pkt, "PACK", 4);
	assert_int_equal(sidechannel_sideband_read(&cio, &band, pkt, &n, &err), 0);
	assert_int_equal(band, 2);
	assert_memory_equal(pkt, "progress", 8);
	assert_int_equal(sidechannel_sideband_read(&cio, &band, pkt, &n, &err), 0);
	assert_int_equal(n, 0); /* the server's FIN */
	yamux_stream_free(st);
	yamux_stream_free(j.st);
}

static void test_handshake_bad_reply(void **state)
{
	struct sessions *ss = *state;
	struct client_job j = { ss->client, "no", 0, 0, NULL };
	struct yamux_stream *st;
	struct error err = ERROR_INIT;
	pthread_t t;

	pthread_create(&t, NULL, client_side, &j);
	assert_int_equal(yamux_open(ss->server, &st, &err), 0);
	assert_int_equal(sidechannel_server_handshake(st, 7, 5000, &err), -1);
	assert_int_equal(err.code, STATUS_INTERNAL);
	assert_non_null(strstr(err.message, "expected"));
	error_release(&err);
	pthread_join(t, NULL);
	assert_int_equal(j.id, 7);
	yamux_stream_free(st);
	yamux_stream_free(j.st);
}

static void test_handshake_timeout(void **state)
{
	struct sessions *ss = *state;
	struct client_job j = { ss->client, NULL, 0, 0, NULL };
	struct yamux_stream *st;
	struct error err = ERROR_INIT;
	struct timespec t0, t1;
	long ms;
	pthread_t t;

	pthread_create(&t, NULL, client_side, &j);
	assert_int_equal(yamux_open(ss->server, &st, &err), 0);
	clock_gettime(CLOCK_MONOTONIC, &t0);
	assert_int_equal(sidechannel_server_handshake(st, 1, 200, &err), -1);
	clock_gettime(CLOCK_MONOTONIC, &t1);
	ms = (t1.tv_sec - t0.tv_sec) * 1000 + (t1.tv_nsec - t0.tv_nsec) / 1000000;
	assert_true(ms >= 190 && ms < 3000);
	assert_int_equal(err.code, STATUS_DEADLINE_EXCEEDED);
	error_release(&err);
	pthread_join(t, NULL);
	yamux_stream_free(st);
	yamux_stream_free(j.st);
}

static void test_handshake_client_bad_magic(void **state)
{
	struct sessions *ss = *state;
	struct yamux_stream *st, *cst;
	struct error err = ERROR_INIT;
	int64_t id;

	assert_int_equal(yamux_open(ss->server, &st, &err), 0);
	assert_int_equal(yamux_stream_write(st, "sidechanneX\0\0\0\0\0\0\0\1", 19, &err), 0);
	assert_int_equal(yamux_accept(ss->client, &cst, &err), 0);
	assert_int_equal(sidechannel_client_read_id(cst, 5000, &id, &err), -1);
	assert_int_equal(err.code, STATUS_INTERNAL);
	error_release(&err);
	yamux_stream_free(st);
	yamux_stream_free(cst);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_unframe_basic),
		cmocka_unit_test(test_unframe_errors),
		cmocka_unit_test(test_frames_roundtrip_max),
		cmocka_unit_test(test_sideband),
		cmocka_unit_test(test_packets_staged_per_write),
		cmocka_unit_test_setup_teardown(test_handshake_and_data, setup, teardown),
		cmocka_unit_test_setup_teardown(test_handshake_bad_reply, setup, teardown),
		cmocka_unit_test_setup_teardown(test_handshake_timeout, setup, teardown),
		cmocka_unit_test_setup_teardown(test_handshake_client_bad_magic, setup, teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
