/*
 * The /metrics HTTP endpoint on libmicrohttpd. We bind the listening socket
 * ourselves (so "host:port" is resolved the way Go's net.Listen does it,
 * with a dual-stack socket for an empty host, and the bound port can be
 * read back) and hand it to an MHD daemon running its own polling thread.
 * Every scrape renders the registry afresh.
 */
#include "net/metrics_http.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netdb.h>
#include <netinet/in.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <microhttpd.h>

#include "base/metrics.h"

#define CONTENT_TYPE_METRICS "text/plain; version=0.0.4; charset=utf-8"
#define NOT_FOUND_BODY "404 page not found\n"
#define MAX_ADDR_LEN 1024

struct metrics_http {
	struct MHD_Daemon *daemon;
	int fd;
	int port;
};

int metrics_http_parse_addr(const char *addr, char *host, size_t host_len, int *port,
			    struct error *err)
{
	const char *colon, *host_start, *host_end, *p;
	size_t len;
	long v = 0;

	if (!addr || !*addr || strlen(addr) > MAX_ADDR_LEN)
		goto bad;
	if (addr[0] == '[') {
		host_start = addr + 1;
		host_end = strchr(addr, ']');
		if (!host_end || host_end[1] != ':')
			goto bad;
		colon = host_end + 1;
	} else {
		colon = strrchr(addr, ':');
		if (!colon)
			goto bad;
		host_start = addr;
		host_end = colon;
		/* an unbracketed IPv6 address is ambiguous: refused like Go does */
		if (memchr(addr, ':', (size_t)(colon - addr)))
			goto bad;
	}
	len = (size_t)(host_end - host_start);
	if (len + 1 > host_len)
		goto bad;
	p = colon + 1;
	if (!*p || strlen(p) > 5)
		goto bad;
	for (; *p; p++) {
		if (*p < '0' || *p > '9')
			goto bad;
		v = v * 10 + (*p - '0');
	}
	if (v > 65535)
		goto bad;
	memcpy(host, host_start, len);
	host[len] = '\0';
	*port = (int)v;
	return 0;
bad:
	return error_set(err, STATUS_INVALID_ARGUMENT, "invalid listen address %s",
			 addr ? addr : "(null)");
}

static int listen_on(const struct sockaddr *sa, socklen_t len, int dual_stack)
{
	int fd = socket(sa->sa_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
	int one = 1, zero = 0;

	if (fd < 0)
		return -1;
	setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	if (dual_stack)
		setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &zero, sizeof(zero));
	if (bind(fd, sa, len) < 0 || listen(fd, 128) < 0) {
		int saved = errno;
		close(fd);
		errno = saved;
		return -1;
	}
	return fd;
}

/* Binds host:port; returns the listening fd, or -1 with err set. */
static int bind_address(const char *addr, const char *host, int port, struct error *err)
{
	struct addrinfo hints, *res = NULL, *ai;
	char service[16];
	int fd = -1, rc, saved = 0;

	if (!*host) {
		struct sockaddr_in6 s6;
		struct sockaddr_in s4;

		memset(&s6, 0, sizeof(s6));
		s6.sin6_family = AF_INET6;
		s6.sin6_addr = in6addr_any;
		s6.sin6_port = htons((uint16_t)port);
		fd = listen_on((struct sockaddr *)&s6, sizeof(s6), 1);
		if (fd < 0 && (errno == EAFNOSUPPORT || errno == EADDRNOTAVAIL)) {
			memset(&s4, 0, sizeof(s4));
			s4.sin_family = AF_INET;
			s4.sin_addr.s_addr = htonl(INADDR_ANY);
			s4.sin_port = htons((uint16_t)port);
			fd = listen_on((struct sockaddr *)&s4, sizeof(s4), 0);
		}
		if (fd < 0)
			error_set(err, STATUS_UNAVAILABLE, "listen tcp %s: %s", addr, strerror(errno));
		return fd;
	}
	memset(&hints, 0, sizeof(hints));
	hints.ai_family = AF_UNSPEC;
	hints.ai_socktype = SOCK_STREAM;
	hints.ai_flags = AI_PASSIVE | AI_NUMERICSERV;
	snprintf(service, sizeof(service), "%d", port);
	rc = getaddrinfo(host, service, &hints, &res);
	if (rc) {
		error_set(err, STATUS_UNAVAILABLE, "listen tcp %s: %s", addr, gai_strerror(rc));
		return -1;
	}
	/* like Go, prefer an IPv4 address when the name has both */
	for (int pass = 0; pass < 2 && fd < 0; pass++) {
		for (ai = res; ai && fd < 0; ai = ai->ai_next) {
			if ((pass == 0) != (ai->ai_family == AF_INET))
				continue;
			fd = listen_on(ai->ai_addr, ai->ai_addrlen, 0);
			if (fd < 0)
				saved = errno;
		}
	}
	freeaddrinfo(res);
	if (fd < 0)
		error_set(err, STATUS_UNAVAILABLE, "listen tcp %s: %s", addr,
			  strerror(saved ? saved : EADDRNOTAVAIL));
	return fd;
}

static enum MHD_Result respond(struct MHD_Connection *conn, unsigned int status, char *body,
			       size_t len, const char *content_type)
{
	struct MHD_Response *resp;
	enum MHD_Result ret;

	resp = MHD_create_response_from_buffer(len, body, MHD_RESPMEM_MUST_FREE);
	if (!resp) {
		free(body);
		return MHD_NO;
	}
	MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE, content_type);
	if (status == MHD_HTTP_NOT_FOUND)
		MHD_add_response_header(resp, "X-Content-Type-Options", "nosniff");
	ret = MHD_queue_response(conn, status, resp);
	MHD_destroy_response(resp);
	return ret;
}

static enum MHD_Result handle(void *cls, struct MHD_Connection *conn, const char *url,
			      const char *method, const char *version, const char *upload_data,
			      size_t *upload_data_size, void **req_cls)
{
	static int started_marker;
	struct strbuf sb = STRBUF_INIT;
	char *body;
	size_t len;

	(void)cls;
	(void)method;
	(void)version;
	(void)upload_data;
	if (!*req_cls) {
		/* headers only so far; the answer comes once any body is drained */
		*req_cls = &started_marker;
		return MHD_YES;
	}
	if (*upload_data_size) {
		*upload_data_size = 0; /* request bodies are ignored */
		return MHD_YES;
	}
	if (!url || strcmp(url, "/metrics")) {
		body = strdup(NOT_FOUND_BODY);
		if (!body)
			return MHD_NO;
		return respond(conn, MHD_HTTP_NOT_FOUND, body, strlen(body),
			       "text/plain; charset=utf-8");
	}
	if (metrics_render(&sb) < 0) {
		strbuf_release(&sb);
		body = strdup("metrics too large\n");
		if (!body)
			return MHD_NO;
		return respond(conn, MHD_HTTP_INTERNAL_SERVER_ERROR, body, strlen(body),
			       "text/plain; charset=utf-8");
	}
	body = strbuf_detach(&sb, &len);
	return respond(conn, MHD_HTTP_OK, body, len, CONTENT_TYPE_METRICS);
}

int metrics_http_start(const char *addr, struct metrics_http **out, struct error *err)
{
	char host[MAX_ADDR_LEN + 1];
	struct metrics_http *h = NULL;
	struct sockaddr_storage ss;
	socklen_t ss_len = sizeof(ss);
	unsigned int flags;
	int port, ret = -1;

	*out = NULL;
	if (metrics_http_parse_addr(addr, host, sizeof(host), &port, err) < 0)
		goto out;
	h = calloc(1, sizeof(*h));
	if (!h) {
		error_set(err, STATUS_INTERNAL, "out of memory");
		goto out;
	}
	h->fd = -1;
	h->fd = bind_address(addr, host, port, err);
	if (h->fd < 0)
		goto out;
	if (getsockname(h->fd, (struct sockaddr *)&ss, &ss_len) < 0) {
		error_set(err, STATUS_UNAVAILABLE, "getsockname: %s", strerror(errno));
		goto out;
	}
	h->port = ss.ss_family == AF_INET6 ? ntohs(((struct sockaddr_in6 *)&ss)->sin6_port)
					   : ntohs(((struct sockaddr_in *)&ss)->sin_port);
	flags = MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_AUTO;
	if (ss.ss_family == AF_INET6)
		flags |= MHD_USE_IPv6;
	h->daemon = MHD_start_daemon(flags, 0, NULL, NULL, handle, h, MHD_OPTION_LISTEN_SOCKET,
				     (MHD_socket)h->fd, MHD_OPTION_CONNECTION_LIMIT,
				     (unsigned int)METRICS_HTTP_MAX_CONNECTIONS,
				     MHD_OPTION_CONNECTION_TIMEOUT, (unsigned int)30,
				     MHD_OPTION_END);
	if (!h->daemon) {
		error_set(err, STATUS_UNAVAILABLE, "metrics server on %s did not start", addr);
		goto out;
	}
	*out = h;
	h = NULL;
	ret = 0;
out:
	if (h) {
		if (h->fd >= 0)
			close(h->fd);
		free(h);
	}
	return ret;
}

int metrics_http_port(const struct metrics_http *h)
{
	return h ? h->port : 0;
}

void metrics_http_stop(struct metrics_http *h)
{
	if (!h)
		return;
	/* MHD closes the listen socket it was given when it stops */
	if (h->daemon)
		MHD_stop_daemon(h->daemon);
	else if (h->fd >= 0)
		close(h->fd);
	free(h);
}
