/*
 * Sidechannel handshake and framing (see sidechannel.h). Every length read
 * from the peer is parsed from exactly four hex digits and range-checked
 * before a byte of payload is read; nothing here allocates.
 */
#include "net/sidechannel.h"

#include <stdlib.h>
#include <string.h>

static int stream_read(void *ctx, void *buf, size_t len, size_t *nread, struct error *err)
{
	return yamux_stream_read(ctx, buf, len, nread, err);
}

static int stream_write(void *ctx, const void *buf, size_t len, struct error *err)
{
	return yamux_stream_write(ctx, buf, len, err);
}

void sidechannel_io_from_stream(struct sidechannel_io *io, struct yamux_stream *st)
{
	io->read = stream_read;
	io->write = stream_write;
	io->ctx = st;
}

/* Reads exactly len bytes. *got tells how many arrived before an early EOF
 * (which returns 0 with *got < len). */
static int io_read_full(const struct sidechannel_io *io, uint8_t *buf, size_t len, size_t *got,
			struct error *err)
{
	size_t n;

	*got = 0;
	while (*got < len) {
		if (io->read(io->ctx, buf + *got, len - *got, &n, err))
			return -1;
		if (!n)
			break;
		*got += n;
	}
	return 0;
}

static int hexval(uint8_t c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

/* Four hex digits to a number, or -1. */
static long parse_len4(const uint8_t *h)
{
	long v = 0;
	int i;

	for (i = 0; i < 4; i++) {
		int d = hexval(h[i]);
		if (d < 0)
			return -1;
		v = v * 16 + d;
	}
	return v;
}

static void format_len4(uint8_t *h, size_t v)
{
	static const char digits[] = "0123456789abcdef";
	int i;

	for (i = 3; i >= 0; i--) {
		h[i] = (uint8_t)digits[v & 0xf];
		v >>= 4;
	}
}

int sidechannel_server_handshake(struct yamux_stream *st, int64_t id, int timeout_ms,
				 struct error *err)
{
	uint8_t hello[SIDECHANNEL_MAGIC_LEN + 8], reply[2];
	uint64_t v = (uint64_t)id;
	int i, rc = -1;

	memcpy(hello, SIDECHANNEL_MAGIC, SIDECHANNEL_MAGIC_LEN);
	for (i = 0; i < 8; i++)
		hello[SIDECHANNEL_MAGIC_LEN + i] = (uint8_t)(v >> (56 - 8 * i));
	yamux_stream_set_deadline(st, timeout_ms);
	if (yamux_stream_write(st, hello, sizeof(hello), err) ||
	    yamux_stream_read_full(st, reply, sizeof(reply), err)) {
		error_prefix(err, "sidechannel handshake");
		goto out;
	}
	if (memcmp(reply, "ok", 2)) {
		error_set(err, STATUS_INTERNAL, "sidechannel handshake: expected \"ok\", got %02x %02x",
			  reply[0], reply[1]);
		goto out;
	}
	rc = 0;
out:
	yamux_stream_set_deadline(st, -1);
	return rc;
}

int sidechannel_client_read_id(struct yamux_stream *st, int timeout_ms, int64_t *id,
			       struct error *err)
{
	uint8_t hello[SIDECHANNEL_MAGIC_LEN + 8];
	uint64_t v = 0;
	int i, rc = -1;

	yamux_stream_set_deadline(st, timeout_ms);
	if (yamux_stream_read_full(st, hello, sizeof(hello), err)) {
		error_prefix(err, "sidechannel handshake");
		goto out;
	}
	if (memcmp(hello, SIDECHANNEL_MAGIC, SIDECHANNEL_MAGIC_LEN)) {
		error_set(err, STATUS_INTERNAL, "sidechannel handshake: bad magic");
		goto out;
	}
	for (i = 0; i < 8; i++)
		v = v << 8 | hello[SIDECHANNEL_MAGIC_LEN + i];
	*id = (int64_t)v;
	rc = 0;
out:
	if (rc)
		yamux_stream_set_deadline(st, -1);
	return rc;
}

int sidechannel_client_ack(struct yamux_stream *st, struct error *err)
{
	int rc = yamux_stream_write(st, "ok", 2, err);

	yamux_stream_set_deadline(st, -1);
	return rc;
}

void sidechannel_reader_init(struct sidechannel_reader *r, const struct sidechannel_io *io)
{
	r->io = *io;
	r->left = 0;
	r->eof = 0;
}

int sidechannel_reader_read(struct sidechannel_reader *r, void *buf, size_t len, size_t *nread,
			    struct error *err)
{
	uint8_t h[4];
	size_t got;
	long flen;

	*nread = 0;
	while (!r->left) {
		if (r->eof || !len)
			return 0;
		if (io_read_full(&r->io, h, sizeof(h), &got, err))
			return -1;
		if (got < sizeof(h))
			return error_set(err, STATUS_INTERNAL, "sidechannel: unexpected EOF");
		flen = parse_len4(h);
		if (flen < 0)
			return error_set(err, STATUS_INTERNAL, "sidechannel: invalid frame length");
		if (flen == 0) {
			r->eof = 1;
			return 0;
		}
		if (flen < 4 || flen > SIDECHANNEL_MAX_FRAME)
			return error_set(err, STATUS_INTERNAL, "sidechannel: invalid frame length %ld",
					 flen);
		r->left = (size_t)flen - 4;
	}
	if (len > r->left)
		len = r->left;
	if (r->io.read(r->io.ctx, buf, len, &got, err))
		return -1;
	if (!got)
		return error_set(err, STATUS_INTERNAL, "sidechannel: unexpected EOF");
	r->left -= got;
	*nread = got;
	return 0;
}

/* Bytes staged per write: two whole packets, still below malloc's mmap
 * threshold (128 KiB). */
#define STAGE_CAP ((size_t)2 * SIDECHANNEL_MAX_FRAME)

/*
 * Writes buf as pkt-lines of at most max_data payload bytes, each with a
 * 4-hex length and, for band > 0, the band byte. Packets are staged
 * together so each io->write carries many of them (one yamux frame, one
 * system call) instead of a header and a payload apiece.
 */
static int write_packets(const struct sidechannel_io *io, int band, const void *buf,
			 size_t len, size_t max_data, struct error *err)
{
	const uint8_t *p = buf;
	size_t hl = band > 0 ? 5 : 4;
	size_t need = len + hl * (len / max_data + 1);
	size_t cap = need < STAGE_CAP ? need : STAGE_CAP;
	uint8_t *stage = malloc(cap);
	int ret = -1;

	if (!stage) {
		error_set(err, STATUS_INTERNAL, "sidechannel: out of memory");
		goto out;
	}
	while (len) {
		size_t used = 0;

		/* whole packets only (upstream's split); cap holds at least one */
		while (len) {
			size_t n = len < max_data ? len : max_data;

			if (used + hl + n > cap)
				break;
			format_len4(stage + used, n + hl);
			if (band > 0)
				stage[used + 4] = (uint8_t)band;
			memcpy(stage + used + hl, p, n);
			used += hl + n;
			p += n;
			len -= n;
		}
		if (io->write(io->ctx, stage, used, err))
			goto out;
	}
	ret = 0;
out:
	free(stage);
	return ret;
}

int sidechannel_write_frames(const struct sidechannel_io *io, const void *buf, size_t len,
			     struct error *err)
{
	return write_packets(io, 0, buf, len, SIDECHANNEL_MAX_PAYLOAD, err);
}

int sidechannel_write_flush(const struct sidechannel_io *io, struct error *err)
{
	return io->write(io->ctx, "0000", 4, err);
}

int sidechannel_sideband_write(const struct sidechannel_io *io, int band, const void *buf,
			       size_t len, struct error *err)
{
	if (band != 1 && band != 2)
		return error_set(err, STATUS_INVALID_ARGUMENT, "sidechannel: invalid band %d", band);
	return write_packets(io, band, buf, len, SIDECHANNEL_SIDEBAND_MAX_DATA, err);
}

int sidechannel_sideband_read(const struct sidechannel_io *io, int *band, uint8_t *buf,
			      size_t *len, struct error *err)
{
	uint8_t h[5];
	size_t got;
	long plen;

	*len = 0;
	*band = 0;
	if (io_read_full(io, h, sizeof(h), &got, err))
		return -1;
	if (got == 0)
		return 0;
	if (got < sizeof(h))
		return error_set(err, STATUS_INTERNAL, "sidechannel: truncated side-band packet");
	plen = parse_len4(h);
	if (plen < 6 || plen > SIDECHANNEL_MAX_FRAME)
		return error_set(err, STATUS_INTERNAL, "sidechannel: invalid side-band packet length");
	if (h[4] != 1 && h[4] != 2)
		return error_set(err, STATUS_INTERNAL, "sidechannel: invalid side-band band %u", h[4]);
	if (io_read_full(io, buf, (size_t)plen - 5, &got, err))
		return -1;
	if (got < (size_t)plen - 5)
		return error_set(err, STATUS_INTERNAL, "sidechannel: truncated side-band packet");
	*band = h[4];
	*len = got;
	return 0;
}
