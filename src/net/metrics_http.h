/*
 * The Prometheus scrape endpoint (config `prometheus_listen_addr`): an HTTP
 * server on its own thread answering GET /metrics with metrics_render() in
 * the text format 0.0.4, and 404 for every other path, like upstream's
 * promhttp handler.
 */
#ifndef NET_METRICS_HTTP_H
#define NET_METRICS_HTTP_H

#include "base/error.h"

struct metrics_http;

/* Most connections served at once; further clients wait in the backlog. */
#define METRICS_HTTP_MAX_CONNECTIONS 64

/*
 * Listens on addr ("127.0.0.1:9236", ":9236" for every interface,
 * "[::1]:9236", "localhost:9236"; port 0 picks a free port) and starts
 * serving. On success *out owns the server (stop it with
 * metrics_http_stop). Errors: InvalidArgument for a malformed address,
 * Unavailable when the address cannot be bound or the server not started.
 */
int metrics_http_start(const char *addr, struct metrics_http **out, struct error *err);

/* The TCP port actually bound (useful with port 0). */
int metrics_http_port(const struct metrics_http *h);

/* Stops serving, closes the socket and frees h. NULL is fine. */
void metrics_http_stop(struct metrics_http *h);

/*
 * Splits "host:port" / "[v6]:port" / ":port" into host (empty for all
 * interfaces) and port. Returns 0, or -1 with err InvalidArgument.
 */
int metrics_http_parse_addr(const char *addr, char *host, size_t host_len, int *port,
			    struct error *err);

#endif
