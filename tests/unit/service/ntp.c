/*
 * SNTP client against a fake NTP server on 127.0.0.1: the offset computed
 * from a server running 3 s ahead, the response checks (kiss of death,
 * unsynchronised leap), a silent server (timeout), a closed port and a
 * malformed host. Everything stays on the loopback interface.
 */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "base/error.h"
#include "service/ntp.h"

enum fake_mode { FAKE_OK, FAKE_KOD, FAKE_LEAP, FAKE_SILENT };

struct fake {
	int fd;
	int port;
	enum fake_mode mode;
	int64_t offset_ns;
	pthread_t thread;
};

static void put_ts(uint8_t *p, int64_t ns)
{
	uint64_t sec = (uint64_t)(ns / 1000000000LL) + 2208988800ULL;
	uint64_t frac = ((uint64_t)(ns % 1000000000LL) << 32) / 1000000000ULL;

	for (int i = 0; i < 4; i++) {
		p[i] = (uint8_t)(sec >> (24 - 8 * i));
		p[4 + i] = (uint8_t)(frac >> (24 - 8 * i));
	}
}

static int64_t now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	return (int64_t)ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

/* Answers exactly one request the way the test asks. */
static void *fake_serve(void *arg)
{
	struct fake *f = arg;
	uint8_t req[48], resp[48] = { 0 };
	struct sockaddr_in from;
	socklen_t fromlen = sizeof(from);
	ssize_t n = recvfrom(f->fd, req, sizeof(req), 0, (struct sockaddr *)&from, &fromlen);
	int64_t t;

	if (n < 48 || f->mode == FAKE_SILENT)
		return NULL;
	t = now_ns() + f->offset_ns;
	resp[0] = (uint8_t)((f->mode == FAKE_LEAP ? 3 : 0) << 6 | 4 << 3 | 4);
	resp[1] = f->mode == FAKE_KOD ? 0 : 2;
	if (f->mode == FAKE_KOD)
		memcpy(resp + 12, "RATE", 4);
	put_ts(resp + 16, t - 1000000000LL); /* reference time */
	memcpy(resp + 24, req + 40, 8);       /* origin = client's transmit */
	put_ts(resp + 32, t);                 /* receive */
	put_ts(resp + 40, t + 1000);          /* transmit */
	sendto(f->fd, resp, sizeof(resp), 0, (struct sockaddr *)&from, fromlen);
	return NULL;
}

static void fake_start(struct fake *f, enum fake_mode mode, int64_t offset_ns)
{
	struct sockaddr_in addr = { 0 };
	socklen_t len = sizeof(addr);

	f->mode = mode;
	f->offset_ns = offset_ns;
	f->fd = socket(AF_INET, SOCK_DGRAM, 0);
	assert_true(f->fd >= 0);
	addr.sin_family = AF_INET;
	addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	assert_int_equal(bind(f->fd, (struct sockaddr *)&addr, sizeof(addr)), 0);
	assert_int_equal(getsockname(f->fd, (struct sockaddr *)&addr, &len), 0);
	f->port = ntohs(addr.sin_port);
	assert_int_equal(pthread_create(&f->thread, NULL, fake_serve, f), 0);
}

static void fake_stop(struct fake *f)
{
	shutdown(f->fd, SHUT_RDWR);
	pthread_join(f->thread, NULL);
	close(f->fd);
}

static void test_offset_from_server_ahead(void **state)
{
	struct fake f;
	struct ntp_response resp;
	struct error err = ERROR_INIT;
	char host[64];

	(void)state;
	fake_start(&f, FAKE_OK, 3000000000LL);
	snprintf(host, sizeof(host), "127.0.0.1:%d", f.port);
	assert_int_equal(ntp_query(host, 2000, &resp, &err), 0);
	assert_int_equal(ntp_validate(&resp, &err), 0);
	fake_stop(&f);
	/* 3 s ahead, give or take the loopback round trip. */
	assert_true(resp.clock_offset_ns > 2900000000LL);
	assert_true(resp.clock_offset_ns < 3100000000LL);
	assert_int_equal(resp.stratum, 2);
}

static void test_in_sync_server(void **state)
{
	struct fake f;
	struct ntp_response resp;
	struct error err = ERROR_INIT;
	char host[64];

	(void)state;
	fake_start(&f, FAKE_OK, 0);
	snprintf(host, sizeof(host), "[127.0.0.1]:%d", f.port);
	assert_int_equal(ntp_query(host, 2000, &resp, &err), 0);
	fake_stop(&f);
	assert_true(resp.clock_offset_ns > -100000000LL && resp.clock_offset_ns < 100000000LL);
}

static void expect_failure(enum fake_mode mode, const char *message)
{
	struct fake f;
	struct ntp_response resp;
	struct error err = ERROR_INIT;
	char host[64];

	fake_start(&f, mode, 0);
	snprintf(host, sizeof(host), "127.0.0.1:%d", f.port);
	if (ntp_query(host, 300, &resp, &err) == 0)
		assert_int_equal(ntp_validate(&resp, &err), -1);
	fake_stop(&f);
	assert_int_equal(err.code, STATUS_INTERNAL);
	assert_non_null(strstr(err.message, message));
	error_release(&err);
}

static void test_kiss_of_death(void **state)
{
	(void)state;
	expect_failure(FAKE_KOD, "kiss of death received: RATE");
}

static void test_unsynchronised_leap(void **state)
{
	(void)state;
	expect_failure(FAKE_LEAP, "invalid leap second");
}

static void test_silent_server_times_out(void **state)
{
	(void)state;
	expect_failure(FAKE_SILENT, "i/o timeout");
}

static void test_closed_port(void **state)
{
	struct ntp_response resp;
	struct error err = ERROR_INIT;
	struct sockaddr_in addr = { 0 };
	socklen_t len = sizeof(addr);
	char host[64];
	int fd = socket(AF_INET, SOCK_DGRAM, 0);

	(void)state;
	/* Grab a free port, then close it so nothing listens there. */
	addr.sin_family = AF_INET;
	addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	assert_int_equal(bind(fd, (struct sockaddr *)&addr, sizeof(addr)), 0);
	assert_int_equal(getsockname(fd, (struct sockaddr *)&addr, &len), 0);
	close(fd);
	snprintf(host, sizeof(host), "127.0.0.1:%d", ntohs(addr.sin_port));
	assert_int_equal(ntp_query(host, 500, &resp, &err), -1);
	assert_int_equal(err.code, STATUS_INTERNAL);
	assert_non_null(strstr(err.message, "udp"));
	error_release(&err);
}

static void test_malformed_host(void **state)
{
	struct ntp_response resp;
	struct error err = ERROR_INIT;

	(void)state;
	assert_int_equal(ntp_query("[::1", 200, &resp, &err), -1);
	assert_int_equal(err.code, STATUS_INTERNAL);
	error_release(&err);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_offset_from_server_ahead),
		cmocka_unit_test(test_in_sync_server),
		cmocka_unit_test(test_kiss_of_death),
		cmocka_unit_test(test_unsynchronised_leap),
		cmocka_unit_test(test_silent_server_times_out),
		cmocka_unit_test(test_closed_port),
		cmocka_unit_test(test_malformed_host),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
