/*
 * Gitaly's listeners: a unix socket (socket_path), TCP (listen_addr) and TLS
 * (tls_listen_addr), served by one accept thread that polls them all. Every
 * accepted connection becomes a plaintext byte stream (TLS is terminated
 * and bridged first, on its own thread) and is handed to one hook, which
 * decides where the stream goes: grpc core today, the 11-byte listen-mux
 * (backchannel) later. Each accept counts gitaly_connections_total{type}.
 */
#ifndef NET_LISTENER_H
#define NET_LISTENER_H

#include <stddef.h>
#include <sys/socket.h>

#include "base/error.h"
#include "net/tls.h"

enum listener_type { LISTENER_UNIX, LISTENER_TCP, LISTENER_TLS };

/* "unix", "tcp" or "tls" (metric label values). */
const char *listener_type_name(enum listener_type type);

/*
 * Receives each accepted plaintext stream; takes ownership of fd (blocking,
 * close-on-exec). peer is the client's address as accepted
 * (listener_format_addr; "" when unknown), also for tls, whose fd is the
 * bridge's socketpair and has no address of its own; borrowed for the
 * call. Called on the accept thread for unix/tcp and on the TLS
 * connection's thread for tls; must not block for long.
 */
typedef void (*listener_conn_fn)(void *ctx, int fd, enum listener_type type, const char *peer);

/* Room for any address listener_format_addr writes. */
#define LISTENER_ADDR_MAX 128

/*
 * Formats a socket address as upstream logs peer.address (Go's net.Addr):
 * "ip:port", "[ip6]:port", a unix peer's path, or "@" (plus the name) for
 * an unnamed or abstract unix peer; "" for other families. Truncated to n.
 */
void listener_format_addr(const struct sockaddr *sa, socklen_t len, char *out, size_t n);

struct listener_set;

int listener_set_new(listener_conn_fn fn, void *ctx, struct listener_set **out,
		     struct error *err);

/*
 * Binds a unix socket at path, removing a stale file first (as upstream
 * does on first boot). Fails when path is a directory.
 */
int listener_add_unix(struct listener_set *ls, const char *path, struct error *err);

/*
 * Binds TCP "host:port", "[v6]:port" or ":port" (all interfaces, dual
 * stack); port 0 picks a free port. *bound (malloc'd, may be NULL) receives
 * the bound "host:port".
 */
int listener_add_tcp(struct listener_set *ls, const char *addr, char **bound, struct error *err);

/* Like listener_add_tcp, with TLS terminated by tls (borrowed; must outlive ls). */
int listener_add_tls(struct listener_set *ls, const char *addr, struct tls_server *tls,
		     char **bound, struct error *err);

/* Starts the accept thread. */
int listener_start(struct listener_set *ls, struct error *err);

/*
 * Stops accepting: joins the accept thread, closes the listening sockets and
 * removes the unix socket files. Connections already handed out are not
 * touched. Idempotent.
 */
void listener_stop(struct listener_set *ls);

/* Stops and frees. NULL is fine. */
void listener_free(struct listener_set *ls);

#endif
