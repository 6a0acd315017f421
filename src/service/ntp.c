/*
 * SNTP client: sends one mode-3 (client) packet, waits for the server's
 * mode-4 answer whose origin timestamp echoes ours, derives the clock offset
 * ((T2-T1)+(T3-T4))/2, and checks answers the way upstream's library
 * validates responses (leap, stratum, dispersion, timestamps).
 */
#include "service/ntp.h"

#include <errno.h>
#include <netdb.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define NTP_PACKET_LEN 48
#define NTP_HOST_CAP 256
/* Seconds between the NTP era (1900) and the Unix epoch. */
#define NTP_EPOCH_OFFSET 2208988800ULL
#define NTP_MAX_STRATUM 16
#define NTP_MAX_DISPERSION_NS (16LL * 1000000000LL)

static int64_t now_realtime_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	return (int64_t)ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

static int64_t now_monotonic_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static uint32_t get_be32(const uint8_t *p)
{
	return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

static void put_be32(uint8_t *p, uint32_t v)
{
	p[0] = v >> 24;
	p[1] = v >> 16;
	p[2] = v >> 8;
	p[3] = v;
}

/* 64-bit NTP timestamp at p to nanoseconds since the Unix epoch. */
static int64_t ntp_ts_to_ns(const uint8_t *p)
{
	uint64_t sec = get_be32(p), frac = get_be32(p + 4);

	return ((int64_t)sec - (int64_t)NTP_EPOCH_OFFSET) * 1000000000LL +
	       (int64_t)((frac * 1000000000ULL) >> 32);
}

static void ns_to_ntp_ts(int64_t ns, uint8_t *p)
{
	uint64_t sec = (uint64_t)(ns / 1000000000LL) + NTP_EPOCH_OFFSET;
	uint64_t rem = (uint64_t)(ns % 1000000000LL);

	put_be32(p, (uint32_t)sec);
	put_be32(p + 4, (uint32_t)((rem << 32) / 1000000000ULL));
}

/* 32-bit NTP short format (16.16 seconds) to nanoseconds. */
static int64_t ntp_short_to_ns(const uint8_t *p)
{
	uint64_t v = get_be32(p);

	return (int64_t)((v * 1000000000ULL) >> 16);
}

/* Splits "host", "host:port", "[v6]:port" into name and port. */
static int split_host(const char *host, char *name, size_t name_cap, char *port, size_t port_cap)
{
	const char *colon = strrchr(host, ':');
	size_t nlen;

	if (host[0] == '[') {
		const char *close = strchr(host, ']');

		if (!close)
			return -1;
		nlen = (size_t)(close - host - 1);
		if (nlen >= name_cap)
			return -1;
		memcpy(name, host + 1, nlen);
		name[nlen] = '\0';
		snprintf(port, port_cap, "%s", close[1] == ':' ? close + 2 : "123");
		return 0;
	}
	if (colon && strchr(host, ':') == colon) {
		nlen = (size_t)(colon - host);
		if (nlen >= name_cap)
			return -1;
		memcpy(name, host, nlen);
		name[nlen] = '\0';
		snprintf(port, port_cap, "%s", colon + 1);
		return 0;
	}
	if (strlen(host) >= name_cap)
		return -1;
	snprintf(name, name_cap, "%s", host);
	snprintf(port, port_cap, "123");
	return 0;
}

int ntp_validate(const struct ntp_response *r, struct error *err)
{
	if (r->leap == 3)
		return error_set(err, STATUS_INTERNAL, "invalid leap second");
	if (r->stratum == 0)
		return error_set(err, STATUS_INTERNAL, "kiss of death received: %s", r->kiss_code);
	if (r->stratum >= NTP_MAX_STRATUM)
		return error_set(err, STATUS_INTERNAL, "invalid stratum in response");
	if (r->transmit_is_zero || r->reference_time_ns > r->transmit_time_ns)
		return error_set(err, STATUS_INTERNAL, "invalid time reported");
	if (r->root_delay_ns / 2 + r->root_dispersion_ns > NTP_MAX_DISPERSION_NS)
		return error_set(err, STATUS_INTERNAL, "invalid dispersion");
	return 0;
}

int ntp_query(const char *host, int timeout_ms, struct ntp_response *out, struct error *err)
{
	char name[NTP_HOST_CAP], port[32];
	struct addrinfo hints = { 0 }, *res = NULL;
	uint8_t req[NTP_PACKET_LEN] = { 0 }, resp[NTP_PACKET_LEN * 2];
	int64_t t1, t4, deadline;
	int fd = -1, rc, ret = -1;

	if (split_host(host, name, sizeof(name), port, sizeof(port)) < 0) {
		error_set(err, STATUS_INTERNAL, "address %s: invalid host", host);
		goto out;
	}
	hints.ai_socktype = SOCK_DGRAM;
	hints.ai_family = AF_UNSPEC;
	rc = getaddrinfo(name, port, &hints, &res);
	if (rc != 0) {
		error_set(err, STATUS_INTERNAL, "dial udp: lookup %s: %s", name, gai_strerror(rc));
		goto out;
	}
	fd = socket(res->ai_family, res->ai_socktype | SOCK_CLOEXEC, res->ai_protocol);
	if (fd < 0 || connect(fd, res->ai_addr, res->ai_addrlen) < 0) {
		error_set(err, STATUS_INTERNAL, "dial udp %s: %s", host, strerror(errno));
		goto out;
	}

	req[0] = (0 << 6) | (4 << 3) | 3; /* no leap warning, version 4, client */
	t1 = now_realtime_ns();
	ns_to_ntp_ts(t1, req + 40);
	if (send(fd, req, sizeof(req), 0) < 0) {
		error_set(err, STATUS_INTERNAL, "write udp %s: %s", host, strerror(errno));
		goto out;
	}

	deadline = now_monotonic_ms() + timeout_ms;
	for (;;) {
		int64_t left = deadline - now_monotonic_ms();
		struct pollfd pfd = { .fd = fd, .events = POLLIN };
		ssize_t n;

		if (left <= 0) {
			error_set(err, STATUS_INTERNAL, "read udp %s: i/o timeout", host);
			goto out;
		}
		rc = poll(&pfd, 1, (int)left);
		if (rc < 0 && errno == EINTR)
			continue;
		if (rc < 0) {
			error_set(err, STATUS_INTERNAL, "read udp %s: %s", host, strerror(errno));
			goto out;
		}
		if (rc == 0)
			continue;
		n = recv(fd, resp, sizeof(resp), 0);
		t4 = now_realtime_ns();
		if (n < 0) {
			if (errno == EINTR)
				continue;
			error_set(err, STATUS_INTERNAL, "read udp %s: %s", host, strerror(errno));
			goto out;
		}
		/* Ignore runts and answers to someone else's request. */
		if (n < NTP_PACKET_LEN || memcmp(resp + 24, req + 40, 8) != 0)
			continue;
		break;
	}
	if ((resp[0] & 7) != 4 && (resp[0] & 7) != 5) {
		error_set(err, STATUS_INTERNAL, "invalid mode in response");
		goto out;
	}
	{
		int64_t t2 = ntp_ts_to_ns(resp + 32), t3 = ntp_ts_to_ns(resp + 40);

		memset(out, 0, sizeof(*out));
		out->clock_offset_ns = ((t2 - t1) + (t3 - t4)) / 2;
		out->rtt_ns = (t4 - t1) - (t3 - t2);
		out->stratum = resp[1];
		out->leap = resp[0] >> 6;
		out->root_delay_ns = ntp_short_to_ns(resp + 4);
		out->root_dispersion_ns = ntp_short_to_ns(resp + 8);
		out->reference_time_ns = ntp_ts_to_ns(resp + 16);
		out->transmit_time_ns = t3;
		out->transmit_is_zero = get_be32(resp + 40) == 0 && get_be32(resp + 44) == 0;
		for (int i = 0; i < 4; i++)
			out->kiss_code[i] = resp[12 + i] >= 0x20 && resp[12 + i] < 0x7f
						    ? (char)resp[12 + i]
						    : '.';
		out->kiss_code[4] = '\0';
	}
	ret = 0;
out:
	if (fd >= 0)
		close(fd);
	if (res)
		freeaddrinfo(res);
	return ret;
}
