/*
 * ULID generation for correlation ids: the time prefix keeps ids roughly
 * sortable in log searches, the random tail (from getrandom(2)) keeps them
 * unique across processes without coordination. Each thread draws kernel
 * randomness in blocks of RANDOM_BLOCK bytes and hands it out 10 bytes per
 * id, so most calls make no system call.
 */
#include "rpc/correlation.h"

#include <string.h>
#include <sys/random.h>
#include <time.h>

#include <stdint.h>

static const char crockford[] = "0123456789ABCDEFGHJKMNPQRSTVWXYZ";

/* Fills buf with random bytes; falls back to a time-seeded mix if the
 * kernel refuses (never fatal: an id only needs to be unlikely to collide). */
static void random_bytes_raw(uint8_t *buf, size_t n)
{
	size_t got = 0;

	while (got < n) {
		ssize_t r = getrandom(buf + got, n - got, 0);
		if (r <= 0)
			break;
		got += (size_t)r;
	}
	if (got < n) {
		struct timespec ts;
		uint64_t x;
		clock_gettime(CLOCK_MONOTONIC, &ts);
		x = (uint64_t)ts.tv_nsec * 0x9E3779B97F4A7C15ULL ^ (uint64_t)(uintptr_t)buf;
		for (; got < n; got++) {
			x ^= x << 13;
			x ^= x >> 7;
			x ^= x << 17;
			buf[got] = (uint8_t)x;
		}
	}
}

#define RANDOM_BLOCK 320

/* Per-thread unused kernel randomness; every byte is handed out once. */
static __thread uint8_t pool[RANDOM_BLOCK];
static __thread size_t pool_left;

static void random_bytes(uint8_t *buf, size_t n)
{
	if (n > RANDOM_BLOCK) {
		random_bytes_raw(buf, n);
		return;
	}
	if (pool_left < n) {
		random_bytes_raw(pool, RANDOM_BLOCK);
		pool_left = RANDOM_BLOCK;
	}
	memcpy(buf, pool + RANDOM_BLOCK - pool_left, n);
	/* wipe what was handed out, so nothing is ever given twice */
	memset(pool + RANDOM_BLOCK - pool_left, 0, n);
	pool_left -= n;
}

int correlation_id_new(char *out, size_t n)
{
	uint8_t id[16];
	struct timespec now;
	uint64_t ms;
	int bit = 0;

	if (!out || n < CORRELATION_ID_LEN + 1) {
		if (out && n)
			out[0] = '\0';
		return -1;
	}
	clock_gettime(CLOCK_REALTIME, &now);
	ms = (uint64_t)now.tv_sec * 1000 + (uint64_t)now.tv_nsec / 1000000;
	for (int i = 0; i < 6; i++)
		id[i] = (uint8_t)(ms >> (8 * (5 - i)));
	random_bytes(id + 6, 10);
	/* 128 bits as 26 base32 digits: the first digit carries the top 3 bits */
	for (int i = 0; i < CORRELATION_ID_LEN; i++) {
		int width = i == 0 ? 3 : 5;
		unsigned v = 0;
		for (int b = 0; b < width; b++, bit++)
			v = v << 1 | ((id[bit / 8] >> (7 - bit % 8)) & 1);
		out[i] = crockford[v];
	}
	out[CORRELATION_ID_LEN] = '\0';
	return 0;
}

const char *correlation_from_metadata(const char *value, char *generated, size_t n)
{
	if (value && *value && strlen(value) <= CORRELATION_MAX_LEN)
		return value;
	if (correlation_id_new(generated, n) < 0)
		return "";
	return generated;
}
