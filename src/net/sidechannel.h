/*
 * Sidechannel: the per-RPC byte channel Gitaly opens back to the client over
 * the client's own yamux session (Workhorse, gitlab-shell). This module holds
 * the parts that need no gRPC: the handshake (magic "sidechannel" + 8-byte
 * big-endian id, answered by "ok"), the unframing of the client's 4-hex-length
 * frames ending with "0000", the side-band-64k writer the SSH variant uses,
 * and the client halves of each for tests and the future gateway. Framing
 * code works on a small read/write interface so it runs on memory too.
 */
#ifndef NET_SIDECHANNEL_H
#define NET_SIDECHANNEL_H

#include <stddef.h>
#include <stdint.h>

#include "base/error.h"
#include "net/yamux.h"

#define SIDECHANNEL_MAGIC "sidechannel"
#define SIDECHANNEL_MAGIC_LEN 11
#define SIDECHANNEL_HANDSHAKE_TIMEOUT_MS 5000
/* Client frames: 4 hex digits (payload + 4), at most this in total. */
#define SIDECHANNEL_MAX_FRAME 65520
#define SIDECHANNEL_MAX_PAYLOAD (SIDECHANNEL_MAX_FRAME - 4)
/* side-band-64k: 4 hex digits + band byte + data. */
#define SIDECHANNEL_SIDEBAND_MAX_DATA (SIDECHANNEL_MAX_FRAME - 5)

/*
 * A byte pipe. read: partial reads allowed, *nread 0 only at end of stream.
 * write: writes everything or fails. Both return 0 or -1 with err set.
 */
struct sidechannel_io {
	int (*read)(void *ctx, void *buf, size_t len, size_t *nread, struct error *err);
	int (*write)(void *ctx, const void *buf, size_t len, struct error *err);
	void *ctx;
};

/* Fills io to read and write the yamux stream st (borrowed). */
void sidechannel_io_from_stream(struct sidechannel_io *io, struct yamux_stream *st);

/*
 * Server side, on a stream we just opened: writes the magic and id, reads
 * exactly "ok", all within timeout_ms (the deadline is cleared afterwards).
 * Errors: DeadlineExceeded on timeout, Unavailable when the stream ends or
 * is reset, Internal on any other reply.
 */
int sidechannel_server_handshake(struct yamux_stream *st, int64_t id, int timeout_ms,
				 struct error *err);

/*
 * Client side, on a stream the server opened: reads the magic and the id
 * within timeout_ms. The caller looks the id up and then either answers with
 * sidechannel_client_ack or closes the stream. Internal for a wrong magic.
 */
int sidechannel_client_read_id(struct yamux_stream *st, int timeout_ms, int64_t *id,
			       struct error *err);

/* Client side: writes "ok" and clears the handshake deadline. */
int sidechannel_client_ack(struct yamux_stream *st, struct error *err);

/* Server-side reader of the client's framed request body. */
struct sidechannel_reader {
	struct sidechannel_io io;
	size_t left; /* payload bytes left in the current frame */
	int eof;     /* "0000" seen */
};

void sidechannel_reader_init(struct sidechannel_reader *r, const struct sidechannel_io *io);

/*
 * Reads up to len unframed bytes; *nread is 0 only after the "0000" frame.
 * Errors (Internal): a length of 0001-0003 or above 65520, non-hex digits,
 * end of stream without "0000" ("unexpected EOF"); io errors pass through.
 */
int sidechannel_reader_read(struct sidechannel_reader *r, void *buf, size_t len, size_t *nread,
			    struct error *err);

/* Client side: writes len bytes as frames of at most 65516 payload bytes
 * (nothing for len 0). */
int sidechannel_write_frames(const struct sidechannel_io *io, const void *buf, size_t len,
			     struct error *err);

/* Client side: the "0000" frame, "request body complete". */
int sidechannel_write_flush(const struct sidechannel_io *io, struct error *err);

/*
 * Writes len bytes as side-band-64k packets on band 1 (stdout) or 2
 * (stderr), at most 65515 data bytes each; nothing for len 0, since empty
 * packets are invalid. InvalidArgument for another band.
 */
int sidechannel_sideband_write(const struct sidechannel_io *io, int band, const void *buf,
			       size_t len, struct error *err);

/*
 * Client side: reads one side-band packet into buf (room for
 * SIDECHANNEL_SIDEBAND_MAX_DATA bytes). *len 0 means a clean end of stream
 * between packets. Internal for empty, oversized or malformed packets, a band
 * other than 1/2, or a truncated packet.
 */
int sidechannel_sideband_read(const struct sidechannel_io *io, int *band, uint8_t *buf,
			      size_t *len, struct error *err);

#endif
