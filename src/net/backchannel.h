/*
 * The listen-mux of every Gitaly listener: the first 11 bytes of a
 * connection decide whether it is plain HTTP/2 gRPC or the literal
 * "backchannel", after which the rest is a yamux session (Workhorse and
 * gitlab-shell always dial that way). On a multiplexed connection the
 * client's first stream carries gRPC; it is bridged to a socketpair whose
 * other end goes to grpc core, so a call on it has the peer "fd:<N>". This
 * module remembers which yamux session stands behind each such fd, so a
 * handler can open a server stream (the sidechannel) on its own client's
 * session.
 */
#ifndef NET_BACKCHANNEL_H
#define NET_BACKCHANNEL_H

#include <stddef.h>
#include <sys/socket.h>

#include "base/error.h"
#include "net/yamux.h"

#define BACKCHANNEL_MAGIC "backchannel"
#define BACKCHANNEL_MAGIC_LEN 11
/* How long a new connection may take to send its first 11 bytes (grpc-go's
 * default connection timeout, which bounds upstream's listen-mux). */
#define BACKCHANNEL_PEEK_TIMEOUT_MS 120000

/* Hands a plaintext gRPC byte stream to grpc core; owns fd from then on,
 * even on failure. */
typedef int (*backchannel_grpc_fn)(void *ctx, int fd, struct error *err);

/* Longest client address kept (with its NUL; longer ones are cut). */
#define BACKCHANNEL_ADDR_MAX 128

/*
 * Serves one accepted plaintext connection (owned from here on) on a
 * detached thread, remembering peer (the client's address as the listener
 * accepted it, see listener_format_addr; NULL or "" when unknown) for
 * backchannel_peer_address: waits for 11 bytes (at most peek_timeout_ms; < 0 for the
 * default), then gives a plain connection to grpc_fn as is, or runs the
 * multiplexed protocol: yamux server session (16 MiB stream windows,
 * backlog 1), client stream 1 bridged to grpc_fn, further client streams
 * reset, the session closed when the gRPC stream ends and vice versa.
 * Fails only when no thread can be started (fd is closed then).
 */
int backchannel_serve(int fd, const char *peer, int peek_timeout_ms, backchannel_grpc_fn grpc_fn,
		      void *ctx, struct error *err);

/*
 * Opens a new server stream on the yamux session behind a call's peer
 * string ("fd:<N>"). FailedPrecondition "non-multiplexed connection" when
 * the peer is not a multiplexed connection; "open stream: <yamux error>"
 * (Unavailable) when the session is gone.
 */
int backchannel_open_stream(const char *peer, struct yamux_stream **out, struct error *err);

/*
 * The address of the client connection behind a call's peer string ("fd:<N>"
 * of a connection served by backchannel_serve, plain or multiplexed): the
 * peer given to backchannel_serve. Takes no lock (it runs for every logged
 * call). Returns 0, or -1 (out "") when the peer is unknown.
 */
int backchannel_peer_address(const char *peer, char *out, size_t n);

/* Multiplexed sessions alive now (tests, shutdown). */
int backchannel_sessions(void);

#endif
