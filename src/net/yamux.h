/*
 * yamux: stream multiplexing over one connected byte stream, wire-compatible
 * with hashicorp/yamux (the library Gitaly, Workhorse and gitlab-shell use for
 * the "backchannel" listen-mux). A session owns its fd, runs one reader thread
 * that demultiplexes frames into per-stream receive buffers and one writer
 * thread for control frames the reader must answer (ping, RST, go-away), so
 * the reader never blocks on the socket's send side. Streams are blocking,
 * thread-safe byte pipes with per-stream flow control: we never send beyond
 * the peer's window and kill the session when the peer overruns ours.
 */
#ifndef NET_YAMUX_H
#define NET_YAMUX_H

#include <stddef.h>
#include <stdint.h>

#include "base/error.h"

/* Wire constants (hashicorp/yamux spec.md). */
#define YAMUX_HEADER_SIZE 12
#define YAMUX_VERSION 0
#define YAMUX_TYPE_DATA 0
#define YAMUX_TYPE_WINDOW_UPDATE 1
#define YAMUX_TYPE_PING 2
#define YAMUX_TYPE_GO_AWAY 3
#define YAMUX_FLAG_SYN 0x1
#define YAMUX_FLAG_ACK 0x2
#define YAMUX_FLAG_FIN 0x4
#define YAMUX_FLAG_RST 0x8
#define YAMUX_GO_AWAY_NORMAL 0
#define YAMUX_GO_AWAY_PROTOCOL_ERROR 1
#define YAMUX_GO_AWAY_INTERNAL_ERROR 2

/* Every stream starts with this window in both directions. */
#define YAMUX_INITIAL_WINDOW (256u * 1024u)
/* What Gitaly's server advertises (MaxStreamWindowSize). */
#define YAMUX_GITALY_SERVER_WINDOW (16u * 1024u * 1024u)

enum yamux_role {
	YAMUX_CLIENT, /* opens odd stream ids */
	YAMUX_SERVER, /* opens even stream ids */
};

struct yamux_config {
	/* Largest receive window per stream; at least YAMUX_INITIAL_WINDOW, at
	 * most 1 GiB. It also bounds the data buffered per stream. */
	uint32_t max_stream_window;
	/* Peer-opened streams waiting for yamux_accept; more are RST. >= 1. */
	unsigned accept_backlog;
};

struct yamux_session;
struct yamux_stream;

/* Fills cfg with our defaults: 256 KiB window, backlog 1 (Gitaly's values,
 * except for the window, which Gitaly's server raises to 16 MiB). */
void yamux_config_default(struct yamux_config *cfg);

/*
 * Starts a session on a connected, blocking stream socket (the fd is made
 * blocking if it was not). The session owns fd from then on, even on error,
 * and closes it in yamux_session_free. cfg may be NULL for the defaults.
 * Errors: InvalidArgument for a bad config, Internal when threads or memory
 * cannot be had.
 */
int yamux_session_new(int fd, enum yamux_role role, const struct yamux_config *cfg,
		      struct yamux_session **out, struct error *err);

/*
 * Waits for the next stream the peer opened and acknowledges it (WindowUpdate
 * with ACK and our window delta). The stream belongs to the caller
 * (yamux_stream_free). Unavailable once the session is closed or dead.
 */
int yamux_accept(struct yamux_session *s, struct yamux_stream **out, struct error *err);

/*
 * Opens a new stream (WindowUpdate with SYN and our window delta); data may
 * be written at once, before the peer's ACK. Unavailable when the session is
 * closed, dead, or the peer sent a go-away.
 */
int yamux_open(struct yamux_session *s, struct yamux_stream **out, struct error *err);

/*
 * Sends a ping and waits up to timeout_ms (< 0: forever) for its ACK.
 * rtt_us (may be NULL) receives the round trip in microseconds.
 * DeadlineExceeded on timeout, Unavailable when the session ends.
 */
int yamux_session_ping(struct yamux_session *s, int timeout_ms, int64_t *rtt_us,
		       struct error *err);

/*
 * Sends a normal go-away, waits briefly (1 s at most) for it to leave, then
 * shuts the socket down; every blocked call returns Unavailable. Streams keep
 * the data they had buffered. Idempotent.
 */
void yamux_session_close(struct yamux_session *s);

/*
 * Closes the session (if not yet), waits for its threads and drops the
 * caller's reference. Streams the caller still holds stay valid (reads return
 * buffered data, then errors) and must still be freed.
 */
void yamux_session_free(struct yamux_session *s);

/*
 * Why the session died, as a copy into err (code OK and no message if it is
 * alive). A go-away received or sent with a protocol error is Unavailable
 * with a message naming it.
 */
void yamux_session_error(struct yamux_session *s, struct error *err);

/* Go-away code the peer sent, or -1 if none arrived. */
int yamux_session_remote_go_away(struct yamux_session *s);

/*
 * Extra references for code that looks a session up from another thread
 * (src/net/backchannel.c): hold keeps the memory valid, release drops it.
 * Only the owner's yamux_session_free closes the session and joins its
 * threads; a held session that was freed just reports itself closed.
 */
void yamux_session_hold(struct yamux_session *s);
void yamux_session_release(struct yamux_session *s);

/* True once the session is closed or dead. */
int yamux_session_is_closed(struct yamux_session *s);

/* The stream id (odd: opened by the client, even: by the server). */
uint32_t yamux_stream_id(const struct yamux_stream *st);

/*
 * Sets a deadline timeout_ms from now for every wait in later reads and
 * writes on st (< 0 removes it). A call that hits it fails with
 * DeadlineExceeded; the stream stays usable.
 */
void yamux_stream_set_deadline(struct yamux_stream *st, int timeout_ms);

/*
 * Reads up to len (> 0) bytes, blocking until at least one is available.
 * *nread is 0 only at end of stream (the peer half-closed and everything was
 * read).
 * Replenishes the peer's window once half of the maximum window was consumed.
 * Errors: Unavailable when the stream was reset or the session died (after
 * buffered data is consumed), DeadlineExceeded.
 */
int yamux_stream_read(struct yamux_stream *st, void *buf, size_t len, size_t *nread,
		      struct error *err);

/* Reads exactly len bytes; an early end of stream is Unavailable
 * ("unexpected EOF"). */
int yamux_stream_read_full(struct yamux_stream *st, void *buf, size_t len, struct error *err);

/*
 * Writes all len bytes, blocking while the peer's window is exhausted.
 * Concurrent writers on one stream are serialised. Errors: FailedPrecondition
 * after close_write, Unavailable on reset or dead session, DeadlineExceeded
 * (some bytes may then have been sent).
 */
int yamux_stream_write(struct yamux_stream *st, const void *buf, size_t len, struct error *err);

/*
 * yamux_stream_write for len bytes that are waiting in the pipe pipe_fd
 * (the caller is its only reader and knows they are there, e.g. from
 * FIONREAD): the same frames yamux_stream_write would send for those bytes,
 * but each payload moves from the pipe to the session's socket with
 * splice(2), without passing through user space; where the kernel cannot
 * splice to the session's fd it falls back to read and write. Errors as
 * for yamux_stream_write; after one, how much of the pipe was consumed is
 * unknown (the stream or session is unusable anyway).
 */
int yamux_stream_write_pipe(struct yamux_stream *st, int pipe_fd, size_t len, struct error *err);

/* Half-closes our direction (WindowUpdate with FIN); the peer reads EOF.
 * Idempotent. */
int yamux_stream_close_write(struct yamux_stream *st, struct error *err);

/* Aborts the stream (WindowUpdate with RST); both directions fail from then
 * on. Idempotent, never fails. */
void yamux_stream_reset(struct yamux_stream *st);

/*
 * Releases the caller's handle. A stream we had not half-closed is reset
 * first; one we had half-closed is just forgotten, so data already sent
 * still reaches the peer. NULL is ignored.
 */
void yamux_stream_free(struct yamux_stream *st);

/*
 * Hands st to two pump threads bridging it to one end of a new socketpair;
 * *fd_out (the caller's) is the other end, blocking, close-on-exec. Bytes the
 * peer sends on st come out of *fd_out; bytes written to *fd_out go to the
 * peer. End of stream is forwarded both ways (EOF on st shuts *fd_out's read
 * side down; EOF on *fd_out half-closes st). The bridge owns st from then
 * on, on success and on failure, and frees it when both directions ended.
 * Set O_NONBLOCK on *fd_out yourself before giving it to grpc core.
 */
int yamux_stream_bridge(struct yamux_stream *st, int *fd_out, struct error *err);

/*
 * yamux_stream_bridge, plus on_done(arg) once both directions ended (called
 * on a pump thread, after *fd_out's peer end is closed and while st, and so
 * its session, is still referenced). on_done may be NULL.
 */
int yamux_stream_bridge_notify(struct yamux_stream *st, int *fd_out, void (*on_done)(void *arg),
			       void *arg, struct error *err);

/* Callbacks of a bridge, each called on a pump thread with arg; any may be
 * NULL. */
struct yamux_bridge_hooks {
	/* after each chunk from the peer was written to *fd_out's peer end */
	void (*on_recv)(void *arg);
	/* once, when the peer's direction ended (FIN, RST or a dead session),
	 * before *fd_out sees the end of stream */
	void (*on_peer_end)(void *arg);
	/* as in yamux_stream_bridge_notify */
	void (*on_done)(void *arg);
	void *arg;
};

/* yamux_stream_bridge with hooks (copied; may be NULL). on_done runs exactly
 * once even when this fails. */
int yamux_stream_bridge_hooks(struct yamux_stream *st, int *fd_out,
			      const struct yamux_bridge_hooks *hooks, struct error *err);

#endif
