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
#include <arpa/inet.h>
#include <netinet/in.h>
#include <stddef.h>
#include <stdio.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "base/log.h"

struct conn {
	int fd;
	char addr[128]; /* the client's address, formatted */
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
 * (the accepted socket, or the socketpair end of a multiplexed one), in
 * the form upstream logs as peer.address (Go's net.Addr): "ip:port",
 * "[ip6]:port", a unix peer's path or "@" for an unnamed one.
 */
static char **addr_map;
static size_t addr_len;

static void addr_set(int fd, const char *a)
{
	char *dup = strdup(a);

	pthread_mutex_lock(&map_mu);
	if ((size_t)fd >= addr_len) {
		size_t n = addr_len ? addr_len : 64;
		char **m;

		while (n <= (size_t)fd)
			n *= 2;
		m = realloc(addr_map, n * sizeof(*m));
		if (!m) {
			free(dup);
			goto out;
		}
		memset(m + addr_len, 0, (n - addr_len) * sizeof(*m));
		addr_map = m;
		addr_len = n;
	}
	free(addr_map[fd]);
	addr_map[fd] = dup;
out:
	pthread_mutex_unlock(&map_mu);
}

void backchannel_format_addr(const struct sockaddr *sa, socklen_t len, char *out, size_t n)
{
	char ip[INET6_ADDRSTRLEN];

	out[0] = '\0';
	if (sa->sa_family == AF_INET && len >= (socklen_t)sizeof(struct sockaddr_in)) {
		const struct sockaddr_in *in = (const struct sockaddr_in *)sa;
		inet_ntop(AF_INET, &in->sin_addr, ip, sizeof(ip));
		snprintf(out, n, "%s:%u", ip, (unsigned)ntohs(in->sin_port));
	} else if (sa->sa_family == AF_INET6 && len >= (socklen_t)sizeof(struct sockaddr_in6)) {
		const struct sockaddr_in6 *in6 = (const struct sockaddr_in6 *)sa;
		inet_ntop(AF_INET6, &in6->sin6_addr, ip, sizeof(ip));
		snprintf(out, n, "[%s]:%u", ip, (unsigned)ntohs(in6->sin6_port));
	} else if (sa->sa_family == AF_UNIX) {
		const struct sockaddr_un *un = (const struct sockaddr_un *)sa;
		size_t plen = len > offsetof(struct sockaddr_un, sun_path)
				      ? (size_t)len - offsetof(struct sockaddr_un, sun_path)
				      : 0;

		if (!plen || !un->sun_path[0]) {
			/* unnamed, or abstract: Go shows a leading '@' */
			size_t k = plen > 1 ? strnlen(un->sun_path + 1, plen - 1) : 0;
			snprintf(out, n, "@%.*s", (int)k, plen > 1 ? un->sun_path + 1 : "");
		} else {
			snprintf(out, n, "%.*s", (int)strnlen(un->sun_path, plen), un->sun_path);
		}
	}
}

/* The remote address of socket fd, formatted; "" when unknown. */
static void peer_of(int fd, char *out, size_t n)
{
	struct sockaddr_storage ss;
	socklen_t len = sizeof(ss);

	out[0] = '\0';
	memset(&ss, 0, sizeof(ss));
	if (getpeername(fd, (struct sockaddr *)&ss, &len) == 0)
		backchannel_format_addr((struct sockaddr *)&ss, len, out, n);
}

int backchannel_peer_address(const char *peer, char *out, size_t n)
{
	int fd = parse_fd_peer(peer), rc = -1;

	if (!n)
		return -1;
	out[0] = '\0';
	pthread_mutex_lock(&map_mu);
	if (fd >= 0 && (size_t)fd < addr_len && addr_map[fd] && addr_map[fd][0]) {
		snprintf(out, n, "%s", addr_map[fd]);
		rc = 0;
	}
	pthread_mutex_unlock(&map_mu);
	return rc;
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

int backchannel_serve(int fd, int peek_timeout_ms, backchannel_grpc_fn grpc_fn, void *ctx,
		      struct error *err)
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
	peer_of(fd, c->addr, sizeof(c->addr));
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
