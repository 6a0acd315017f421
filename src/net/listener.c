/*
 * The accept loop. One thread polls every listening socket plus a wake pipe;
 * accepted unix/tcp connections go straight to the hook, TLS connections get
 * a thread that does the handshake and then relays (src/net/bridge.c), so a
 * slow TLS client never stalls the accept loop.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <pthread.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "base/log.h"
#include "net/bridge.h"
#include "net/listener.h"
#include "rpc/rpc_metrics.h"

#define MAX_LISTENERS 16
#define TLS_HANDSHAKE_TIMEOUT_MS 10000

struct listener {
	int fd;
	enum listener_type type;
	char *unix_path; /* removed at stop */
	struct tls_server *tls;
};

struct tls_conn {
	struct listener_set *ls;
	struct tls_server *tls;
	int fd;
	char peer[LISTENER_ADDR_MAX]; /* the client's address, formatted */
	struct tls_conn *prev, *next;
};

struct listener_set {
	listener_conn_fn fn;
	void *ctx;
	struct listener ls[MAX_LISTENERS];
	int n;
	int wake[2];
	pthread_t thread;
	int running;
	/* TLS handshakes in flight: stop aborts and waits for them. */
	pthread_mutex_t lock;
	pthread_cond_t idle;
	struct tls_conn *handshakes; /* sockets still in their handshake */
	int n_active;                /* handshake threads alive */
	int stopping;
};

const char *listener_type_name(enum listener_type type)
{
	switch (type) {
	case LISTENER_UNIX:
		return "unix";
	case LISTENER_TCP:
		return "tcp";
	case LISTENER_TLS:
		return "tls";
	}
	return "unknown";
}

int listener_set_new(listener_conn_fn fn, void *ctx, struct listener_set **out,
		     struct error *err)
{
	struct listener_set *ls = calloc(1, sizeof(*ls));
	*out = NULL;
	if (!ls)
		return error_set(err, STATUS_INTERNAL, "out of memory");
	ls->fn = fn;
	ls->ctx = ctx;
	pthread_mutex_init(&ls->lock, NULL);
	pthread_cond_init(&ls->idle, NULL);
	if (pipe2(ls->wake, O_CLOEXEC | O_NONBLOCK) < 0) {
		free(ls);
		return error_set(err, STATUS_INTERNAL, "pipe: %s", strerror(errno));
	}
	*out = ls;
	return 0;
}

static int add(struct listener_set *ls, int fd, enum listener_type type, const char *unix_path,
	       struct tls_server *tls, struct error *err)
{
	if (ls->n >= MAX_LISTENERS || ls->running) {
		close(fd);
		return error_set(err, STATUS_INTERNAL, "too many listeners or already started");
	}
	struct listener *l = &ls->ls[ls->n++];
	l->fd = fd;
	l->type = type;
	l->unix_path = unix_path ? strdup(unix_path) : NULL;
	l->tls = tls;
	return 0;
}

int listener_add_unix(struct listener_set *ls, const char *path, struct error *err)
{
	struct sockaddr_un sa;
	struct stat st;
	int fd = -1;

	if (!path || !*path)
		return error_set(err, STATUS_INVALID_ARGUMENT, "unix listener: empty path");
	if (strlen(path) >= sizeof(sa.sun_path))
		return error_set(err, STATUS_INVALID_ARGUMENT,
				 "listen unix %s: bind: invalid argument (path too long)", path);
	if (lstat(path, &st) == 0) {
		/* Upstream removes whatever is there; we stop short of directories. */
		if (S_ISDIR(st.st_mode))
			return error_set(err, STATUS_FAILED_PRECONDITION,
					 "listen unix %s: path is a directory", path);
		if (unlink(path) < 0)
			return error_set(err, STATUS_INTERNAL, "remove stale socket %s: %s", path,
					 strerror(errno));
	}
	memset(&sa, 0, sizeof(sa));
	sa.sun_family = AF_UNIX;
	memcpy(sa.sun_path, path, strlen(path) + 1);
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
	if (fd < 0)
		return error_set(err, STATUS_INTERNAL, "socket: %s", strerror(errno));
	if (bind(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0 || listen(fd, SOMAXCONN) < 0) {
		int e = errno;
		close(fd);
		return error_set(err, STATUS_INTERNAL, "listen unix %s: %s", path, strerror(e));
	}
	return add(ls, fd, LISTENER_UNIX, path, NULL, err);
}

/* Splits "host:port" / "[v6]:port" / ":port". host is "" for all interfaces. */
static int split_hostport(const char *addr, char *host, size_t hlen, char *port, size_t plen)
{
	const char *colon;
	const char *h = addr;
	size_t hl;

	if (addr[0] == '[') {
		const char *end = strchr(addr, ']');
		if (!end || end[1] != ':')
			return -1;
		h = addr + 1;
		hl = (size_t)(end - h);
		colon = end + 1;
	} else {
		colon = strrchr(addr, ':');
		if (!colon)
			return -1;
		hl = (size_t)(colon - addr);
		if (memchr(addr, ':', hl))
			return -1; /* bare IPv6 without brackets */
	}
	if (hl >= hlen || strlen(colon + 1) >= plen || !colon[1])
		return -1;
	memcpy(host, h, hl);
	host[hl] = 0;
	memcpy(port, colon + 1, strlen(colon + 1) + 1);
	return 0;
}

void listener_format_addr(const struct sockaddr *sa, socklen_t len, char *out, size_t n)
{
	char ip[INET6_ADDRSTRLEN];

	if (!n)
		return;
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

static char *format_bound(int fd)
{
	struct sockaddr_storage ss;
	socklen_t sl = sizeof(ss);
	char buf[LISTENER_ADDR_MAX];

	memset(&ss, 0, sizeof(ss));
	if (getsockname(fd, (struct sockaddr *)&ss, &sl) < 0)
		return NULL;
	listener_format_addr((struct sockaddr *)&ss, sl, buf, sizeof(buf));
	return strdup(buf);
}

static int bind_tcp(const char *addr, int *out_fd, struct error *err)
{
	char host[256], port[32];
	struct addrinfo hints, *res = NULL, *ai;
	int fd = -1, one = 1, rc, ret = -1;
	int last_errno = 0;

	*out_fd = -1;
	if (!addr || split_hostport(addr, host, sizeof(host), port, sizeof(port)) < 0)
		return error_set(err, STATUS_INVALID_ARGUMENT, "listen tcp %s: missing port in address",
				 addr ? addr : "");
	memset(&hints, 0, sizeof(hints));
	hints.ai_socktype = SOCK_STREAM;
	hints.ai_flags = AI_PASSIVE | AI_NUMERICSERV;
	if (!*host) {
		/* All interfaces: dual-stack IPv6 when available, else IPv4. */
		hints.ai_family = AF_INET6;
		rc = getaddrinfo(NULL, port, &hints, &res);
		if (rc == 0) {
			fd = socket(AF_INET6, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
			if (fd >= 0) {
				int zero = 0;
				setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &zero, sizeof(zero));
				setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
				if (bind(fd, res->ai_addr, res->ai_addrlen) == 0 &&
				    listen(fd, SOMAXCONN) == 0)
					goto done;
				last_errno = errno;
				close(fd);
				fd = -1;
			}
			freeaddrinfo(res);
			res = NULL;
		}
		hints.ai_family = AF_INET;
	} else {
		hints.ai_family = AF_UNSPEC;
	}
	rc = getaddrinfo(*host ? host : NULL, port, &hints, &res);
	if (rc != 0) {
		error_set(err, STATUS_INVALID_ARGUMENT, "listen tcp %s: %s", addr, gai_strerror(rc));
		goto out;
	}
	for (ai = res; ai; ai = ai->ai_next) {
		fd = socket(ai->ai_family, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
		if (fd < 0) {
			last_errno = errno;
			continue;
		}
		setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
		if (bind(fd, ai->ai_addr, ai->ai_addrlen) == 0 && listen(fd, SOMAXCONN) == 0)
			goto done;
		last_errno = errno;
		close(fd);
		fd = -1;
	}
	error_set(err, STATUS_INTERNAL, "listen tcp %s: bind: %s", addr, strerror(last_errno));
	goto out;
done:
	*out_fd = fd;
	ret = 0;
out:
	if (res)
		freeaddrinfo(res);
	return ret;
}

int listener_add_tcp(struct listener_set *ls, const char *addr, char **bound, struct error *err)
{
	int fd;
	if (bound)
		*bound = NULL;
	if (bind_tcp(addr, &fd, err) < 0)
		return -1;
	if (bound)
		*bound = format_bound(fd);
	return add(ls, fd, LISTENER_TCP, NULL, NULL, err);
}

int listener_add_tls(struct listener_set *ls, const char *addr, struct tls_server *tls,
		     char **bound, struct error *err)
{
	int fd;
	if (bound)
		*bound = NULL;
	if (!tls)
		return error_set(err, STATUS_INVALID_ARGUMENT, "tls listener without TLS config");
	if (bind_tcp(addr, &fd, err) < 0)
		return -1;
	if (bound)
		*bound = format_bound(fd);
	return add(ls, fd, LISTENER_TLS, NULL, tls, err);
}

/* Takes c off the list of sockets that stop may shut down. Locked. */
static void unlink_handshake(struct listener_set *ls, struct tls_conn *c)
{
	if (c->prev)
		c->prev->next = c->next;
	else if (ls->handshakes == c)
		ls->handshakes = c->next;
	if (c->next)
		c->next->prev = c->prev;
	c->prev = c->next = NULL;
}

/* Handshake on its own thread, then hand the bridged plaintext to the hook. */
static void *tls_conn_main(void *p)
{
	struct tls_conn *c = p;
	struct listener_set *ls = c->ls;
	struct error err = ERROR_INIT;
	SSL *ssl = NULL;
	int plain = -1;
	int rc;

	rc = tls_server_handshake(c->tls, c->fd, TLS_HANDSHAKE_TIMEOUT_MS, &ssl, &err);
	pthread_mutex_lock(&ls->lock);
	unlink_handshake(ls, c);
	pthread_mutex_unlock(&ls->lock);
	if (rc < 0) {
		log_msg(LOG_DEBUG, "tls: %s", err.message);
		close(c->fd);
		goto out;
	}
	if (bridge_tls_start(ssl, c->fd, &plain, &err) < 0) {
		log_msg(LOG_WARN, "tls bridge: %s", err.message);
		SSL_free(ssl);
		close(c->fd);
		goto out;
	}
	/* The bridge owns ssl and the socket now; closing plain ends it. */
	pthread_mutex_lock(&ls->lock);
	if (ls->stopping)
		close(plain);
	else
		ls->fn(ls->ctx, plain, LISTENER_TLS, c->peer);
	pthread_mutex_unlock(&ls->lock);
out:
	error_release(&err);
	free(c);
	pthread_mutex_lock(&ls->lock);
	if (--ls->n_active == 0)
		pthread_cond_broadcast(&ls->idle);
	pthread_mutex_unlock(&ls->lock);
	return NULL;
}

static void handle_accept(struct listener_set *ls, struct listener *l)
{
	for (;;) {
		struct sockaddr_storage ss;
		socklen_t sl = sizeof(ss);
		char peer[LISTENER_ADDR_MAX];

		memset(&ss, 0, sizeof(ss));
		int fd = accept4(l->fd, (struct sockaddr *)&ss, &sl, SOCK_CLOEXEC);
		if (fd < 0) {
			if (errno == EINTR)
				continue;
			if (errno != EAGAIN && errno != EWOULDBLOCK)
				log_msg(LOG_WARN, "accept: %s", strerror(errno));
			return;
		}
		rpc_metrics_connection(listener_type_name(l->type));
		if (l->type != LISTENER_UNIX) {
			int one = 1;
			setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
		}
		listener_format_addr((struct sockaddr *)&ss, sl > sizeof(ss) ? sizeof(ss) : sl, peer,
				     sizeof(peer));
		if (l->type != LISTENER_TLS) {
			ls->fn(ls->ctx, fd, l->type, peer);
			continue;
		}
		struct tls_conn *c = malloc(sizeof(*c));
		pthread_t th;
		pthread_attr_t attr;
		if (!c) {
			close(fd);
			continue;
		}
		c->ls = ls;
		c->tls = l->tls;
		c->fd = fd;
		memcpy(c->peer, peer, sizeof(peer));
		c->prev = NULL;
		pthread_mutex_lock(&ls->lock);
		c->next = ls->handshakes;
		if (c->next)
			c->next->prev = c;
		ls->handshakes = c;
		ls->n_active++;
		pthread_mutex_unlock(&ls->lock);
		pthread_attr_init(&attr);
		pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
		pthread_attr_setstacksize(&attr, (size_t)256 << 10);
		if (pthread_create(&th, &attr, tls_conn_main, c) != 0) {
			pthread_mutex_lock(&ls->lock);
			unlink_handshake(ls, c);
			ls->n_active--;
			pthread_mutex_unlock(&ls->lock);
			close(fd);
			free(c);
		}
		pthread_attr_destroy(&attr);
	}
}

static void *accept_main(void *p)
{
	struct listener_set *ls = p;
	struct pollfd pfd[MAX_LISTENERS + 1];

	for (;;) {
		for (int i = 0; i < ls->n; i++) {
			pfd[i].fd = ls->ls[i].fd;
			pfd[i].events = POLLIN;
			pfd[i].revents = 0;
		}
		pfd[ls->n].fd = ls->wake[0];
		pfd[ls->n].events = POLLIN;
		pfd[ls->n].revents = 0;
		if (poll(pfd, (nfds_t)ls->n + 1, -1) < 0) {
			if (errno == EINTR)
				continue;
			log_msg(LOG_ERROR, "accept loop: poll: %s", strerror(errno));
			break;
		}
		if (pfd[ls->n].revents)
			break;
		for (int i = 0; i < ls->n; i++)
			if (pfd[i].revents & POLLIN)
				handle_accept(ls, &ls->ls[i]);
	}
	return NULL;
}

int listener_start(struct listener_set *ls, struct error *err)
{
	for (int i = 0; i < ls->n; i++)
		if (ls->ls[i].type == LISTENER_TLS)
			bridge_ignore_sigpipe();
	int rc = pthread_create(&ls->thread, NULL, accept_main, ls);
	if (rc)
		return error_set(err, STATUS_INTERNAL, "pthread_create: %s", strerror(rc));
	ls->running = 1;
	return 0;
}

void listener_stop(struct listener_set *ls)
{
	if (!ls)
		return;
	if (ls->running) {
		char c = 1;
		ssize_t w = write(ls->wake[1], &c, 1);
		(void)w;
		pthread_join(ls->thread, NULL);
		ls->running = 0;
	}
	/* Abort handshakes in flight and wait until their threads let go of ls. */
	pthread_mutex_lock(&ls->lock);
	ls->stopping = 1;
	for (struct tls_conn *c = ls->handshakes; c; c = c->next)
		shutdown(c->fd, SHUT_RDWR);
	while (ls->n_active)
		pthread_cond_wait(&ls->idle, &ls->lock);
	pthread_mutex_unlock(&ls->lock);
	for (int i = 0; i < ls->n; i++) {
		if (ls->ls[i].fd >= 0) {
			close(ls->ls[i].fd);
			ls->ls[i].fd = -1;
		}
		if (ls->ls[i].unix_path) {
			unlink(ls->ls[i].unix_path);
			free(ls->ls[i].unix_path);
			ls->ls[i].unix_path = NULL;
		}
	}
}

void listener_free(struct listener_set *ls)
{
	if (!ls)
		return;
	listener_stop(ls);
	close(ls->wake[0]);
	close(ls->wake[1]);
	pthread_mutex_destroy(&ls->lock);
	pthread_cond_destroy(&ls->idle);
	free(ls);
}
