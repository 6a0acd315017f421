/*
 * Listen-mux and the fd -> yamux session map (see backchannel.h). Each
 * accepted connection gets a short-lived thread for the 11-byte peek; a
 * multiplexed connection keeps that thread as the owner of its session: it
 * accepts the gRPC stream, resets any other stream the client opens, and
 * frees the session when it dies.
 */
#include "net/backchannel.h"

#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <stddef.h>
#include <stdio.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "base/log.h"

struct conn {
	int fd;
	char addr[BACKCHANNEL_ADDR_MAX]; /* the client's address, formatted */
	int peek_timeout_ms;
	backchannel_grpc_fn grpc_fn;
	void *ctx;
};

static int parse_fd_peer(const char *peer);

/* Sessions indexed by the fd grpc core serves their gRPC stream on. */
static pthread_mutex_t map_mu = PTHREAD_MUTEX_INITIALIZER;
static struct yamux_session **map;
static size_t map_len;
static atomic_int live_sessions;

static int map_set(int fd, struct yamux_session *s)
{
	int rc = 0;

	pthread_mutex_lock(&map_mu);
	if ((size_t)fd >= map_len) {
		size_t n = map_len ? map_len : 64;
		struct yamux_session **m;

		while (n <= (size_t)fd)
			n *= 2;
		m = realloc(map, n * sizeof(*m));
		if (!m) {
			rc = -1;
			goto out;
		}
		memset(m + map_len, 0, (n - map_len) * sizeof(*m));
		map = m;
		map_len = n;
	}
	map[fd] = s;
out:
	pthread_mutex_unlock(&map_mu);
	return rc;
}

/* Clears fd's entry if it is s (or any entry, for s NULL). */
static void map_clear(int fd, struct yamux_session *s)
{
	pthread_mutex_lock(&map_mu);
	if ((size_t)fd < map_len && (!s || map[fd] == s))
		map[fd] = NULL;
	pthread_mutex_unlock(&map_mu);
}

/*
 * The client address of the connection behind each fd grpc core serves
 * (the accepted socket, or the socketpair end of a multiplexed one), read
 * for every logged call. A seqlock per fd: writers (a new connection,
 * serialised by map_mu) make seq odd, store the words and make it even
 * again; readers copy the words and retry when seq moved. The slots live
 * in chunks that are never freed, so a reader needs no lock at all.
 */
#define ADDR_WORDS (BACKCHANNEL_ADDR_MAX / 8)
#define ADDR_CHUNK 256
#define ADDR_CHUNKS 8192 /* fds below 2M */

struct addr_slot {
	unsigned seq;
	uint64_t w[ADDR_WORDS]; /* the address, NUL-terminated; all atomics */
};

static struct addr_slot *addr_chunks[ADDR_CHUNKS]; /* atomics: set once */

static void addr_set(int fd, const char *a)
{
	uint64_t w[ADDR_WORDS];
	struct addr_slot *chunk, *slot;
	unsigned seq;

	if (fd < 0 || fd / ADDR_CHUNK >= ADDR_CHUNKS)
		return;
	memset(w, 0, sizeof(w));
	if (a)
		memcpy(w, a, strnlen(a, sizeof(w) - 1));
	pthread_mutex_lock(&map_mu);
	chunk = __atomic_load_n(&addr_chunks[fd / ADDR_CHUNK], __ATOMIC_ACQUIRE);
	if (!chunk) {
		chunk = calloc(ADDR_CHUNK, sizeof(*chunk));
		if (!chunk)
			goto out;
		__atomic_store_n(&addr_chunks[fd / ADDR_CHUNK], chunk, __ATOMIC_RELEASE);
	}
	slot = &chunk[fd % ADDR_CHUNK];
	seq = __atomic_load_n(&slot->seq, __ATOMIC_RELAXED);
	__atomic_store_n(&slot->seq, seq + 1, __ATOMIC_RELAXED);
	__atomic_thread_fence(__ATOMIC_RELEASE);
	for (int i = 0; i < ADDR_WORDS; i++)
		__atomic_store_n(&slot->w[i], w[i], __ATOMIC_RELAXED);
	__atomic_store_n(&slot->seq, seq + 2, __ATOMIC_RELEASE);
out:
	pthread_mutex_unlock(&map_mu);
}

int backchannel_peer_address(const char *peer, char *out, size_t n)
{
	int fd = parse_fd_peer(peer);
	uint64_t w[ADDR_WORDS];
	struct addr_slot *chunk, *slot;
	unsigned s1, s2;
	size_t len;

	if (!n)
		return -1;
	out[0] = '\0';
	if (fd < 0 || fd / ADDR_CHUNK >= ADDR_CHUNKS)
		return -1;
	chunk = __atomic_load_n(&addr_chunks[fd / ADDR_CHUNK], __ATOMIC_ACQUIRE);
	if (!chunk)
		return -1;
	slot = &chunk[fd % ADDR_CHUNK];
	do {
		s1 = __atomic_load_n(&slot->seq, __ATOMIC_ACQUIRE);
		for (int i = 0; i < ADDR_WORDS; i++)
			w[i] = __atomic_load_n(&slot->w[i], __ATOMIC_RELAXED);
		__atomic_thread_fence(__ATOMIC_ACQUIRE);
		s2 = __atomic_load_n(&slot->seq, __ATOMIC_RELAXED);
	} while ((s1 & 1) || s1 != s2);
	len = strnlen((const char *)w, sizeof(w) - 1);
	if (!len)
		return -1;
	if (len >= n)
		len = n - 1;
	memcpy(out, w, len);
	out[len] = '\0';
	return 0;
}

static int64_t now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/*
 * Peeks at the first bytes: 1 for "backchannel", 0 for anything else, -1
 * for end of stream, error or timeout before a decision. Most clients
 * decide on the first byte: the HTTP/2 preface starts with 'P'.
 */
static int peek_magic(int fd, int timeout_ms)
{
	char buf[BACKCHANNEL_MAGIC_LEN];
	int64_t deadline = now_ms() + timeout_ms;

	for (;;) {
		struct pollfd p = { .fd = fd, .events = POLLIN };
		int64_t left = deadline - now_ms();
		ssize_t n;

		if (left <= 0)
			return -1;
		n = poll(&p, 1, (int)left);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			return -1;
		n = recv(fd, buf, sizeof(buf), MSG_PEEK);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			return -1;
		if (memcmp(buf, BACKCHANNEL_MAGIC, (size_t)n))
			return 0;
		if (n == BACKCHANNEL_MAGIC_LEN)
			return 1;
		/* a prefix of the magic so far: wait for the rest */
		struct timespec ts = { 0, 1000000 };
		nanosleep(&ts, NULL);
	}
}

static int read_full(int fd, void *buf, size_t len)
{
	char *p = buf;

	while (len) {
		ssize_t n = read(fd, p, len);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			return -1;
		p += n;
		len -= (size_t)n;
	}
	return 0;
}

static void close_session_cb(void *arg)
{
	yamux_session_close(arg);
}

/* Runs a multiplexed connection until its session ends. Owns c->fd. */
static void serve_multiplexed(struct conn *c)
{
	char magic[BACKCHANNEL_MAGIC_LEN];
	struct yamux_config cfg;
	struct yamux_session *s = NULL;
	struct yamux_stream *st = NULL;
	struct error err = ERROR_INIT;
	int gfd = -1, registered = 0;

	if (read_full(c->fd, magic, sizeof(magic))) {
		close(c->fd);
		return;
	}
	yamux_config_default(&cfg);
	cfg.max_stream_window = YAMUX_GITALY_SERVER_WINDOW;
	cfg.accept_backlog = 1;
	if (yamux_session_new(c->fd, YAMUX_SERVER, &cfg, &s, &err) < 0)
		goto out;
	atomic_fetch_add(&live_sessions, 1);
	if (yamux_accept(s, &st, &err) < 0)
		goto out;
	if (yamux_stream_bridge_notify(st, &gfd, close_session_cb, s, &err) < 0)
		goto out;
	if (map_set(gfd, s) < 0) {
		error_set(&err, STATUS_INTERNAL, "backchannel: out of memory");
		close(gfd);
		goto out;
	}
	registered = 1;
	addr_set(gfd, c->addr);
	if (c->grpc_fn(c->ctx, gfd, &err) < 0)
		goto out;
	/* Only the first stream is the client's; upstream's backlog of one
	 * leaves others unanswered, we reset them. */
	while (yamux_accept(s, &st, &err) == 0) {
		yamux_stream_reset(st);
		yamux_stream_free(st);
	}
	error_release(&err);
out:
	if (err.code != STATUS_OK && (!s || !yamux_session_is_closed(s)))
		log_msg(LOG_WARN, "backchannel: %s", err.message);
	error_release(&err);
	if (registered)
		map_clear(gfd, s);
	if (s) {
		yamux_session_free(s);
		atomic_fetch_sub(&live_sessions, 1);
	}
}

static void *conn_main(void *arg)
{
	struct conn *c = arg;
	struct error err = ERROR_INIT;
	int mux = peek_magic(c->fd, c->peek_timeout_ms);

	if (mux < 0) {
		close(c->fd);
	} else if (!mux) {
		map_clear(c->fd, NULL);
		addr_set(c->fd, c->addr);
		if (c->grpc_fn(c->ctx, c->fd, &err) < 0)
			log_msg(LOG_WARN, "dropping connection: %s", err.message);
	} else {
		serve_multiplexed(c);
	}
	error_release(&err);
	free(c);
	return NULL;
}

int backchannel_serve(int fd, const char *peer, int peek_timeout_ms, backchannel_grpc_fn grpc_fn,
		      void *ctx, struct error *err)
{
	struct conn *c = calloc(1, sizeof(*c));
	pthread_attr_t attr;
	pthread_t t;
	int rc;

	if (!c) {
		close(fd);
		return error_set(err, STATUS_INTERNAL, "backchannel: out of memory");
	}
	c->fd = fd;
	if (peer)
		memcpy(c->addr, peer, strnlen(peer, sizeof(c->addr) - 1));
	c->peek_timeout_ms = peek_timeout_ms < 0 ? BACKCHANNEL_PEEK_TIMEOUT_MS : peek_timeout_ms;
	c->grpc_fn = grpc_fn;
	c->ctx = ctx;
	pthread_attr_init(&attr);
	pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
	pthread_attr_setstacksize(&attr, 256 * 1024);
	rc = pthread_create(&t, &attr, conn_main, c);
	pthread_attr_destroy(&attr);
	if (rc) {
		close(fd);
		free(c);
		return error_set(err, STATUS_INTERNAL, "backchannel: cannot start thread: %s",
				 strerror(rc));
	}
	return 0;
}

static int parse_fd_peer(const char *peer)
{
	char *end;
	long v;

	if (!peer || strncmp(peer, "fd:", 3))
		return -1;
	errno = 0;
	v = strtol(peer + 3, &end, 10);
	if (errno || end == peer + 3 || *end || v < 0 || v > INT32_MAX)
		return -1;
	return (int)v;
}

int backchannel_open_stream(const char *peer, struct yamux_stream **out, struct error *err)
{
	struct yamux_session *s = NULL;
	int fd = parse_fd_peer(peer), rc;

	*out = NULL;
	pthread_mutex_lock(&map_mu);
	if (fd >= 0 && (size_t)fd < map_len && map[fd]) {
		s = map[fd];
		yamux_session_hold(s);
	}
	pthread_mutex_unlock(&map_mu);
	if (!s)
		return error_set(err, STATUS_FAILED_PRECONDITION, "non-multiplexed connection");
	rc = yamux_open(s, out, err);
	if (rc < 0)
		error_prefix(err, "open stream");
	yamux_session_release(s);
	return rc;
}

int backchannel_sessions(void)
{
	return atomic_load(&live_sessions);
}
