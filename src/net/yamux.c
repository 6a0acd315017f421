/*
 * yamux session and streams (see yamux.h). One session mutex guards all
 * stream and session state; a second mutex serialises whole frames onto the
 * fd and is never taken while the first is held. The reader thread owns the
 * receive side of the fd: it validates every header before acting on it
 * (window, stream id, length), copies payload into the stream's ring buffer,
 * and queues the control frames it must answer for the writer thread. Window
 * accounting follows hashicorp's: the receive window plus buffered bytes never
 * exceeds the configured maximum, so the buffer never outgrows it either.
 */
#include "net/yamux.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <time.h>
#include <unistd.h>

#define MAX_WINDOW_LIMIT (1u << 30)
#define MAX_BACKLOG 4096
#define CTRL_CAP 128
#define MAX_PINGS 16
#define CHUNK (64u * 1024u)
/* Largest data frame we send (the peer's window bounds it further): a big
 * write leaves in one frame and one system call rather than in 64 KiB
 * pieces. hashicorp's reader takes any length within the window. */
#define MAX_DATA_FRAME (256u * 1024u)
#define RBUF_SIZE (64u * 1024u)
#define CLOSE_FLUSH_MS 1000

struct ping_slot {
	uint32_t id;
	int used;
	int acked;
};

struct yamux_session {
	int fd;
	enum yamux_role role;
	struct yamux_config cfg;

	pthread_mutex_t mu;  /* all state below except the reader's buffers */
	pthread_mutex_t wmu; /* whole frames onto fd; taken before mu, never after */
	pthread_cond_t cv;   /* accept queue, pings, writer exit, ctrl space */
	pthread_cond_t wcv;  /* wakes the writer thread */
	int refs;            /* caller + one per live stream object */

	uint32_t next_id;
	struct yamux_stream **streams;
	size_t n_streams, alloc_streams;
	struct yamux_stream **acceptq;
	size_t n_accept;

	uint8_t ctrl[CTRL_CAP][YAMUX_HEADER_SIZE];
	size_t ctrl_head, ctrl_len;

	struct ping_slot pings[MAX_PINGS];
	uint32_t ping_next;

	int dead;            /* no new traffic; blocked calls fail */
	struct error death;
	int remote_go_away;  /* code, or -1 */
	int writer_done;
	int fd_closed;       /* under wmu */
	int threads_started;
	pthread_t reader, writer;

	/* reader thread only */
	uint8_t rbuf[RBUF_SIZE];
	size_t rpos, rlen;
	uint8_t scratch[CHUNK];
};

struct yamux_stream {
	struct yamux_session *s;
	uint32_t id;
	int refs; /* map + accept queue + caller + reader in flight; under s->mu */
	int in_map;
	int local_fin, remote_fin, reset;
	uint32_t send_window, recv_window;
	uint8_t *buf;
	size_t cap, head, len;
	uint32_t pending; /* announced by a frame header, not yet copied in */
	pthread_cond_t cv;
	pthread_mutex_t wlock; /* one writer at a time, so FIN follows data */
	int has_deadline;
	struct timespec deadline;
};

/* ---- small helpers ----------------------------------------------------- */

static void put32(uint8_t *p, uint32_t v)
{
	p[0] = v >> 24;
	p[1] = v >> 16;
	p[2] = v >> 8;
	p[3] = v;
}

static uint32_t get32(const uint8_t *p)
{
	return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

static void encode_header(uint8_t *h, int type, uint16_t flags, uint32_t id, uint32_t length)
{
	h[0] = YAMUX_VERSION;
	h[1] = (uint8_t)type;
	h[2] = flags >> 8;
	h[3] = flags & 0xff;
	put32(h + 4, id);
	put32(h + 8, length);
}

static int cond_init_monotonic(pthread_cond_t *cv)
{
	pthread_condattr_t attr;
	int rc;

	if (pthread_condattr_init(&attr))
		return -1;
	pthread_condattr_setclock(&attr, CLOCK_MONOTONIC);
	rc = pthread_cond_init(cv, &attr);
	pthread_condattr_destroy(&attr);
	return rc ? -1 : 0;
}

static void deadline_in(struct timespec *ts, int ms)
{
	clock_gettime(CLOCK_MONOTONIC, ts);
	ts->tv_sec += ms / 1000;
	ts->tv_nsec += (long)(ms % 1000) * 1000000L;
	if (ts->tv_nsec >= 1000000000L) {
		ts->tv_sec++;
		ts->tv_nsec -= 1000000000L;
	}
}

/* Waits on cv; returns ETIMEDOUT once the optional deadline passed. */
static int wait_until(pthread_cond_t *cv, pthread_mutex_t *mu, const struct timespec *dl)
{
	if (!dl) {
		pthread_cond_wait(cv, mu);
		return 0;
	}
	return pthread_cond_timedwait(cv, mu, dl);
}

static void copy_death(struct yamux_session *s, struct error *err)
{
	error_set(err, s->death.code ? s->death.code : STATUS_UNAVAILABLE, "%s",
		  s->death.message ? s->death.message : "yamux session closed");
}

/* ---- session death and refcounts --------------------------------------- */

/* Marks the session dead (first reason wins) and wakes every waiter. */
static void die_locked(struct yamux_session *s, int code, const char *msg)
{
	size_t i;

	if (!s->dead) {
		s->dead = 1;
		error_set(&s->death, code, "%s", msg);
	}
	pthread_cond_broadcast(&s->cv);
	pthread_cond_signal(&s->wcv);
	for (i = 0; i < s->n_streams; i++)
		pthread_cond_broadcast(&s->streams[i]->cv);
}

static void session_destroy(struct yamux_session *s)
{
	error_release(&s->death);
	free(s->streams);
	free(s->acceptq);
	pthread_mutex_destroy(&s->mu);
	pthread_mutex_destroy(&s->wmu);
	pthread_cond_destroy(&s->cv);
	pthread_cond_destroy(&s->wcv);
	free(s);
}

/* Drops one stream reference; returns 1 when the session lost its last
 * reference too and must be destroyed by the caller after unlocking. */
static int stream_put_locked(struct yamux_stream *st)
{
	struct yamux_session *s = st->s;

	if (--st->refs > 0)
		return 0;
	free(st->buf);
	pthread_cond_destroy(&st->cv);
	pthread_mutex_destroy(&st->wlock);
	free(st);
	return --s->refs == 0;
}

/* Removes st from the stream map (dropping the map's reference). */
static int stream_unlink_locked(struct yamux_stream *st)
{
	struct yamux_session *s = st->s;
	size_t i;

	if (!st->in_map)
		return 0;
	for (i = 0; i < s->n_streams; i++) {
		if (s->streams[i] == st) {
			s->streams[i] = s->streams[--s->n_streams];
			break;
		}
	}
	st->in_map = 0;
	return stream_put_locked(st);
}

static struct yamux_stream *find_stream_locked(struct yamux_session *s, uint32_t id)
{
	size_t i;

	for (i = 0; i < s->n_streams; i++)
		if (s->streams[i]->id == id)
			return s->streams[i];
	return NULL;
}

/* A stream in the map with the given initial reference count (map incl.). */
static struct yamux_stream *stream_new_locked(struct yamux_session *s, uint32_t id, int refs)
{
	struct yamux_stream *st;

	if (s->n_streams == s->alloc_streams) {
		size_t n = s->alloc_streams ? s->alloc_streams * 2 : 8;
		struct yamux_stream **v = realloc(s->streams, n * sizeof(*v));
		if (!v)
			return NULL;
		s->streams = v;
		s->alloc_streams = n;
	}
	st = calloc(1, sizeof(*st));
	if (!st)
		return NULL;
	if (cond_init_monotonic(&st->cv)) {
		free(st);
		return NULL;
	}
	pthread_mutex_init(&st->wlock, NULL);
	st->s = s;
	st->id = id;
	st->refs = refs;
	st->in_map = 1;
	st->send_window = YAMUX_INITIAL_WINDOW;
	st->recv_window = YAMUX_INITIAL_WINDOW;
	s->streams[s->n_streams++] = st;
	s->refs++;
	return st;
}

/* ---- writing frames ---------------------------------------------------- */

/* Writes one whole frame; a failure kills the session. */
static int session_send(struct yamux_session *s, const uint8_t *hdr, const void *data, size_t len,
			struct error *err)
{
	struct iovec iov[2];
	struct msghdr msg;
	size_t total = YAMUX_HEADER_SIZE + len, done = 0;
	int rc = 0;

	pthread_mutex_lock(&s->wmu);
	if (s->fd_closed) {
		rc = error_set(err, STATUS_UNAVAILABLE, "yamux session closed");
		goto out;
	}
	while (done < total) {
		ssize_t n;
		int cnt = 0;

		if (done < YAMUX_HEADER_SIZE) {
			iov[cnt].iov_base = (void *)(hdr + done);
			iov[cnt++].iov_len = YAMUX_HEADER_SIZE - done;
			if (len) {
				iov[cnt].iov_base = (void *)data;
				iov[cnt++].iov_len = len;
			}
		} else {
			iov[cnt].iov_base = (uint8_t *)data + (done - YAMUX_HEADER_SIZE);
			iov[cnt++].iov_len = total - done;
		}
		memset(&msg, 0, sizeof(msg));
		msg.msg_iov = iov;
		msg.msg_iovlen = cnt;
		n = sendmsg(s->fd, &msg, MSG_NOSIGNAL);
		if (n < 0 && errno == ENOTSOCK)
			n = writev(s->fd, iov, cnt);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			rc = error_set(err, STATUS_UNAVAILABLE, "yamux write: %s", strerror(errno));
			pthread_mutex_lock(&s->mu);
			die_locked(s, STATUS_UNAVAILABLE, "yamux connection write failed");
			pthread_mutex_unlock(&s->mu);
			goto out;
		}
		done += (size_t)n;
	}
out:
	pthread_mutex_unlock(&s->wmu);
	return rc;
}

/* Reads exactly len bytes from fd into buf; -1 on error or early EOF. */
static int read_exact(int fd, uint8_t *buf, size_t len)
{
	while (len) {
		ssize_t n = read(fd, buf, len);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0) {
			if (n == 0)
				errno = EPIPE;
			return -1;
		}
		buf += n;
		len -= (size_t)n;
	}
	return 0;
}

/* Writes all of buf to fd (a socket or not); -1 on error. */
static int send_exact(int fd, const uint8_t *buf, size_t len, int more)
{
	while (len) {
		ssize_t n = send(fd, buf, len, MSG_NOSIGNAL | (more ? MSG_MORE : 0));
		if (n < 0 && errno == ENOTSOCK)
			n = write(fd, buf, len);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return -1;
		buf += n;
		len -= (size_t)n;
	}
	return 0;
}

/* Moves exactly len bytes from pipe_fd to fd: splice(2) while the kernel
 * takes it, else through a bounce buffer (only bytes not yet moved). */
static int splice_exact(int pipe_fd, int fd, size_t len)
{
	uint8_t *bounce = NULL;
	int rc = 0;

	while (len) {
		ssize_t n = splice(pipe_fd, NULL, fd, NULL, len, SPLICE_F_MORE);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && errno == EAGAIN) { /* a non-blocking fd is full */
			struct pollfd pf = { .fd = fd, .events = POLLOUT };
			(void)poll(&pf, 1, 1000);
			continue;
		}
		if (n < 0 && (errno == EINVAL || errno == ENOSYS || errno == EOPNOTSUPP))
			break; /* not spliceable: copy the rest */
		if (n <= 0) {
			if (n == 0)
				errno = EPIPE; /* the caller promised bytes that are not there */
			return -1;
		}
		len -= (size_t)n;
	}
	if (len && !(bounce = malloc(CHUNK)))
		return -1;
	while (len && rc == 0) {
		size_t k = len < CHUNK ? len : CHUNK;
		rc = read_exact(pipe_fd, bounce, k) || send_exact(fd, bounce, k, 0) ? -1 : 0;
		len -= k;
	}
	free(bounce);
	return rc;
}

/* session_send for a data frame whose payload waits in pipe_fd. */
static int session_send_pipe(struct yamux_session *s, const uint8_t *hdr, int pipe_fd, size_t len,
			     struct error *err)
{
	int rc = 0;

	pthread_mutex_lock(&s->wmu);
	if (s->fd_closed) {
		rc = error_set(err, STATUS_UNAVAILABLE, "yamux session closed");
		goto out;
	}
	if (send_exact(s->fd, hdr, YAMUX_HEADER_SIZE, 1) < 0 ||
	    splice_exact(pipe_fd, s->fd, len) < 0) {
		rc = error_set(err, STATUS_UNAVAILABLE, "yamux write: %s", strerror(errno));
		pthread_mutex_lock(&s->mu);
		die_locked(s, STATUS_UNAVAILABLE, "yamux connection write failed");
		pthread_mutex_unlock(&s->mu);
	}
out:
	pthread_mutex_unlock(&s->wmu);
	return rc;
}

static int send_control(struct yamux_session *s, int type, uint16_t flags, uint32_t id,
			uint32_t length, struct error *err)
{
	uint8_t h[YAMUX_HEADER_SIZE];

	encode_header(h, type, flags, id, length);
	return session_send(s, h, NULL, 0, err);
}

/*
 * Queues a control frame for the writer thread (called by the reader, which
 * must not block on the socket). Waits for room when the queue is full;
 * returns -1 if the session died meanwhile.
 */
static int queue_control_locked(struct yamux_session *s, int type, uint16_t flags, uint32_t id,
				uint32_t length)
{
	while (s->ctrl_len == CTRL_CAP && !s->writer_done)
		pthread_cond_wait(&s->cv, &s->mu);
	if (s->writer_done)
		return -1;
	encode_header(s->ctrl[(s->ctrl_head + s->ctrl_len) % CTRL_CAP], type, flags, id, length);
	s->ctrl_len++;
	pthread_cond_signal(&s->wcv);
	return 0;
}

/* Flushes queued control frames; after death, shuts the socket down so the
 * reader and any blocked stream writer wake up. */
static void *writer_main(void *arg)
{
	struct yamux_session *s = arg;
	uint8_t batch[CTRL_CAP][YAMUX_HEADER_SIZE];
	size_t n, i;

	pthread_mutex_lock(&s->mu);
	for (;;) {
		while (!s->ctrl_len && !s->dead)
			pthread_cond_wait(&s->wcv, &s->mu);
		if (!s->ctrl_len)
			break;
		n = s->ctrl_len;
		for (i = 0; i < n; i++)
			memcpy(batch[i], s->ctrl[(s->ctrl_head + i) % CTRL_CAP], YAMUX_HEADER_SIZE);
		s->ctrl_head = (s->ctrl_head + n) % CTRL_CAP;
		s->ctrl_len = 0;
		pthread_cond_broadcast(&s->cv);
		pthread_mutex_unlock(&s->mu);
		for (i = 0; i < n; i++)
			if (session_send(s, batch[i], NULL, 0, NULL))
				break;
		pthread_mutex_lock(&s->mu);
	}
	s->writer_done = 1;
	pthread_cond_broadcast(&s->cv);
	pthread_mutex_unlock(&s->mu);
	pthread_mutex_lock(&s->wmu);
	if (!s->fd_closed)
		shutdown(s->fd, SHUT_RDWR);
	pthread_mutex_unlock(&s->wmu);
	return NULL;
}

/* ---- reading frames (reader thread) ------------------------------------ */

static int rd_fill(struct yamux_session *s)
{
	ssize_t n;

	do {
		n = read(s->fd, s->rbuf, sizeof(s->rbuf));
	} while (n < 0 && errno == EINTR);
	if (n <= 0)
		return -1;
	s->rpos = 0;
	s->rlen = (size_t)n;
	return 0;
}

/* Reads exactly len bytes (into buf, or discards them when buf is NULL). */
static int rd_full(struct yamux_session *s, uint8_t *buf, size_t len)
{
	while (len) {
		size_t k;

		if (s->rpos == s->rlen && rd_fill(s))
			return -1;
		k = s->rlen - s->rpos;
		if (k > len)
			k = len;
		if (buf) {
			memcpy(buf, s->rbuf + s->rpos, k);
			buf += k;
		}
		s->rpos += k;
		len -= k;
	}
	return 0;
}

/* Kills the session for a peer's protocol violation, telling it so. */
static void protocol_error(struct yamux_session *s, const char *what)
{
	char msg[160];

	snprintf(msg, sizeof(msg), "yamux protocol error: %s", what);
	pthread_mutex_lock(&s->mu);
	if (!s->dead)
		queue_control_locked(s, YAMUX_TYPE_GO_AWAY, 0, 0, YAMUX_GO_AWAY_PROTOCOL_ERROR);
	die_locked(s, STATUS_UNAVAILABLE, msg);
	pthread_mutex_unlock(&s->mu);
}

static int ring_reserve(struct yamux_stream *st, size_t need, uint32_t max)
{
	size_t ncap;
	uint8_t *nb;

	if (st->cap >= need)
		return 0;
	ncap = st->cap ? st->cap : 16384;
	while (ncap < need)
		ncap *= 2;
	if (ncap > max)
		ncap = max;
	nb = malloc(ncap);
	if (!nb)
		return -1;
	if (st->len) {
		size_t first = st->cap - st->head;
		if (first > st->len)
			first = st->len;
		memcpy(nb, st->buf + st->head, first);
		memcpy(nb + first, st->buf, st->len - first);
	}
	free(st->buf);
	st->buf = nb;
	st->cap = ncap;
	st->head = 0;
	return 0;
}

static void ring_put(struct yamux_stream *st, const uint8_t *p, size_t n)
{
	size_t tail = (st->head + st->len) % st->cap;
	size_t first = st->cap - tail;

	if (first > n)
		first = n;
	memcpy(st->buf + tail, p, first);
	memcpy(st->buf, p + first, n - first);
	st->len += n;
}

static void ring_get(struct yamux_stream *st, uint8_t *p, size_t n)
{
	size_t first = st->cap - st->head;

	if (first > n)
		first = n;
	memcpy(p, st->buf + st->head, first);
	memcpy(p + first, st->buf, n - first);
	st->head = (st->head + n) % st->cap;
	st->len -= n;
	if (!st->len)
		st->head = 0;
}

/* Payload of a frame nobody wants: bounded, then skipped without storing. */
static int discard_payload(struct yamux_session *s, uint32_t length)
{
	if (length > s->cfg.max_stream_window) {
		protocol_error(s, "data frame larger than any window");
		return -1;
	}
	if (rd_full(s, NULL, length)) {
		pthread_mutex_lock(&s->mu);
		die_locked(s, STATUS_UNAVAILABLE, "yamux connection closed");
		pthread_mutex_unlock(&s->mu);
		return -1;
	}
	return 0;
}

/* Applies FIN/RST/ACK of an incoming frame; returns the map removal result. */
static void apply_flags_locked(struct yamux_stream *st, uint16_t flags)
{
	if (flags & YAMUX_FLAG_RST) {
		st->reset = 1;
		pthread_cond_broadcast(&st->cv);
		stream_unlink_locked(st);
		return;
	}
	if (flags & YAMUX_FLAG_FIN) {
		st->remote_fin = 1;
		pthread_cond_broadcast(&st->cv);
		if (st->local_fin)
			stream_unlink_locked(st);
	}
}

/* Data and WindowUpdate frames. Returns -1 when the reader must stop. */
static int handle_stream_frame(struct yamux_session *s, int type, uint16_t flags, uint32_t id,
			       uint32_t length)
{
	struct yamux_stream *st;
	uint32_t max = s->cfg.max_stream_window;
	int rc = 0;

	if (id == 0) {
		protocol_error(s, "stream frame on stream 0");
		return -1;
	}
	pthread_mutex_lock(&s->mu);
	if (flags & YAMUX_FLAG_SYN) {
		int theirs = (id & 1) == (s->role == YAMUX_SERVER ? 1u : 0u);

		if (!theirs || find_stream_locked(s, id)) {
			pthread_mutex_unlock(&s->mu);
			protocol_error(s, theirs ? "duplicate stream id" : "stream id of the wrong parity");
			return -1;
		}
		if (s->n_accept >= s->cfg.accept_backlog) {
			/* Backlog full: refuse like hashicorp, then drop the frame. */
			queue_control_locked(s, YAMUX_TYPE_WINDOW_UPDATE, YAMUX_FLAG_RST, id, 0);
			pthread_mutex_unlock(&s->mu);
			return type == YAMUX_TYPE_DATA ? discard_payload(s, length) : 0;
		}
		st = stream_new_locked(s, id, 2); /* map + accept queue */
		if (!st) {
			queue_control_locked(s, YAMUX_TYPE_GO_AWAY, 0, 0, YAMUX_GO_AWAY_INTERNAL_ERROR);
			die_locked(s, STATUS_INTERNAL, "yamux: out of memory");
			pthread_mutex_unlock(&s->mu);
			return -1;
		}
		s->acceptq[s->n_accept++] = st;
		pthread_cond_broadcast(&s->cv);
	}
	st = find_stream_locked(s, id);
	if (!st) {
		/* Most likely a stream we reset or forgot: hashicorp drops these. */
		pthread_mutex_unlock(&s->mu);
		return type == YAMUX_TYPE_DATA ? discard_payload(s, length) : 0;
	}

	if (type == YAMUX_TYPE_WINDOW_UPDATE) {
		if (length > UINT32_MAX - st->send_window) {
			pthread_mutex_unlock(&s->mu);
			protocol_error(s, "send window overflow");
			return -1;
		}
		st->send_window += length;
		pthread_cond_broadcast(&st->cv);
		apply_flags_locked(st, flags);
		pthread_mutex_unlock(&s->mu);
		return 0;
	}

	if (flags & YAMUX_FLAG_RST) {
		apply_flags_locked(st, flags);
		pthread_mutex_unlock(&s->mu);
		return discard_payload(s, length);
	}
	if (length) {
		uint32_t left = length;

		if (st->remote_fin) {
			pthread_mutex_unlock(&s->mu);
			protocol_error(s, "data after FIN");
			return -1;
		}
		if (length > st->recv_window) {
			pthread_mutex_unlock(&s->mu);
			protocol_error(s, "receive window exceeded");
			return -1;
		}
		/* buffered + pending + window <= max, so this stays within max */
		if (ring_reserve(st, st->len + length, max)) {
			queue_control_locked(s, YAMUX_TYPE_GO_AWAY, 0, 0, YAMUX_GO_AWAY_INTERNAL_ERROR);
			die_locked(s, STATUS_INTERNAL, "yamux: out of memory");
			pthread_mutex_unlock(&s->mu);
			return -1;
		}
		st->recv_window -= length;
		st->pending = length;
		st->refs++;
		pthread_mutex_unlock(&s->mu);
		while (left) {
			uint32_t k = left < CHUNK ? left : CHUNK;

			if (rd_full(s, s->scratch, k)) {
				rc = -1;
				break;
			}
			pthread_mutex_lock(&s->mu);
			ring_put(st, s->scratch, k);
			st->pending -= k;
			pthread_cond_broadcast(&st->cv);
			pthread_mutex_unlock(&s->mu);
			left -= k;
		}
		pthread_mutex_lock(&s->mu);
		if (rc)
			die_locked(s, STATUS_UNAVAILABLE, "yamux connection closed");
		else
			apply_flags_locked(st, flags);
		stream_put_locked(st);
		pthread_mutex_unlock(&s->mu);
		return rc;
	}
	apply_flags_locked(st, flags);
	pthread_mutex_unlock(&s->mu);
	return 0;
}

static void *reader_main(void *arg)
{
	struct yamux_session *s = arg;
	uint8_t h[YAMUX_HEADER_SIZE];

	for (;;) {
		int type;
		uint16_t flags;
		uint32_t id, length;

		if (rd_full(s, h, sizeof(h))) {
			pthread_mutex_lock(&s->mu);
			die_locked(s, STATUS_UNAVAILABLE, "yamux connection closed");
			pthread_mutex_unlock(&s->mu);
			break;
		}
		if (h[0] != YAMUX_VERSION) {
			protocol_error(s, "unknown version");
			break;
		}
		type = h[1];
		flags = (uint16_t)(h[2] << 8 | h[3]);
		id = get32(h + 4);
		length = get32(h + 8);
		if (type == YAMUX_TYPE_DATA || type == YAMUX_TYPE_WINDOW_UPDATE) {
			if (handle_stream_frame(s, type, flags, id, length))
				break;
		} else if (type == YAMUX_TYPE_PING) {
			size_t i;

			pthread_mutex_lock(&s->mu);
			if (flags & YAMUX_FLAG_SYN) {
				queue_control_locked(s, YAMUX_TYPE_PING, YAMUX_FLAG_ACK, 0, length);
			} else if (flags & YAMUX_FLAG_ACK) {
				for (i = 0; i < MAX_PINGS; i++) {
					if (s->pings[i].used && s->pings[i].id == length)
						s->pings[i].acked = 1;
				}
				pthread_cond_broadcast(&s->cv);
			}
			pthread_mutex_unlock(&s->mu);
		} else if (type == YAMUX_TYPE_GO_AWAY) {
			pthread_mutex_lock(&s->mu);
			s->remote_go_away = (int)(length > 1000 ? 1000 : length);
			if (length != YAMUX_GO_AWAY_NORMAL) {
				die_locked(s, STATUS_UNAVAILABLE,
					   length == YAMUX_GO_AWAY_PROTOCOL_ERROR
						   ? "yamux: peer sent go-away (protocol error)"
						   : "yamux: peer sent go-away (error)");
				pthread_mutex_unlock(&s->mu);
				break;
			}
			pthread_cond_broadcast(&s->cv);
			pthread_mutex_unlock(&s->mu);
		} else {
			protocol_error(s, "unknown frame type");
			break;
		}
		pthread_mutex_lock(&s->mu);
		if (s->dead) {
			pthread_mutex_unlock(&s->mu);
			break;
		}
		pthread_mutex_unlock(&s->mu);
	}
	return NULL;
}

/* ---- session API ------------------------------------------------------- */

void yamux_config_default(struct yamux_config *cfg)
{
	cfg->max_stream_window = YAMUX_INITIAL_WINDOW;
	cfg->accept_backlog = 1;
}

int yamux_session_new(int fd, enum yamux_role role, const struct yamux_config *cfg,
		      struct yamux_session **out, struct error *err)
{
	struct yamux_session *s = NULL;
	struct yamux_config def;
	int flags, rc = -1;

	*out = NULL;
	if (!cfg) {
		yamux_config_default(&def);
		cfg = &def;
	}
	if (cfg->max_stream_window < YAMUX_INITIAL_WINDOW ||
	    cfg->max_stream_window > MAX_WINDOW_LIMIT || cfg->accept_backlog < 1 ||
	    cfg->accept_backlog > MAX_BACKLOG) {
		error_set(err, STATUS_INVALID_ARGUMENT, "yamux: invalid configuration");
		goto out;
	}
	flags = fcntl(fd, F_GETFL);
	if (flags >= 0 && (flags & O_NONBLOCK))
		fcntl(fd, F_SETFL, flags & ~O_NONBLOCK);
	s = calloc(1, sizeof(*s));
	if (!s || !(s->acceptq = calloc(cfg->accept_backlog, sizeof(*s->acceptq)))) {
		error_set(err, STATUS_INTERNAL, "yamux: out of memory");
		goto out;
	}
	s->fd = fd;
	s->role = role;
	s->cfg = *cfg;
	s->refs = 1;
	s->next_id = role == YAMUX_CLIENT ? 1 : 2;
	s->remote_go_away = -1;
	pthread_mutex_init(&s->mu, NULL);
	pthread_mutex_init(&s->wmu, NULL);
	if (cond_init_monotonic(&s->cv) || cond_init_monotonic(&s->wcv)) {
		error_set(err, STATUS_INTERNAL, "yamux: condition variable");
		goto out;
	}
	if (pthread_create(&s->writer, NULL, writer_main, s)) {
		error_set(err, STATUS_INTERNAL, "yamux: cannot start writer thread");
		goto out;
	}
	if (pthread_create(&s->reader, NULL, reader_main, s)) {
		pthread_mutex_lock(&s->mu);
		die_locked(s, STATUS_INTERNAL, "yamux: cannot start reader thread");
		pthread_mutex_unlock(&s->mu);
		pthread_join(s->writer, NULL);
		error_set(err, STATUS_INTERNAL, "yamux: cannot start reader thread");
		goto out;
	}
	s->threads_started = 1;
	*out = s;
	s = NULL;
	fd = -1;
	rc = 0;
out:
	if (s) {
		free(s->acceptq);
		free(s);
	}
	if (fd >= 0)
		close(fd);
	return rc;
}

int yamux_accept(struct yamux_session *s, struct yamux_stream **out, struct error *err)
{
	struct yamux_stream *st = NULL;
	uint32_t delta = 0;
	size_t i;
	int rc = -1, reset;

	*out = NULL;
	pthread_mutex_lock(&s->mu);
	while (!s->n_accept && !s->dead)
		pthread_cond_wait(&s->cv, &s->mu);
	if (!s->n_accept) {
		copy_death(s, err);
		pthread_mutex_unlock(&s->mu);
		goto out;
	}
	st = s->acceptq[0];
	for (i = 1; i < s->n_accept; i++)
		s->acceptq[i - 1] = s->acceptq[i];
	s->n_accept--;
	/* the queue's reference becomes the caller's */
	delta = (uint32_t)(s->cfg.max_stream_window - st->len - st->pending) - st->recv_window;
	st->recv_window += delta;
	reset = st->reset; /* reset by the peer while queued: nothing to ACK */
	pthread_mutex_unlock(&s->mu);
	if (!reset &&
	    send_control(s, YAMUX_TYPE_WINDOW_UPDATE, YAMUX_FLAG_ACK, st->id, delta, err)) {
		yamux_stream_free(st);
		goto out;
	}
	*out = st;
	rc = 0;
out:
	return rc;
}

int yamux_open(struct yamux_session *s, struct yamux_stream **out, struct error *err)
{
	struct yamux_stream *st;
	uint32_t delta = s->cfg.max_stream_window - YAMUX_INITIAL_WINDOW;
	int rc = -1;

	*out = NULL;
	pthread_mutex_lock(&s->mu);
	if (s->dead || s->remote_go_away >= 0) {
		if (s->dead)
			copy_death(s, err);
		else
			error_set(err, STATUS_UNAVAILABLE, "yamux: peer is not accepting streams");
		pthread_mutex_unlock(&s->mu);
		goto out;
	}
	if (s->next_id >= UINT32_MAX - 1) {
		error_set(err, STATUS_RESOURCE_EXHAUSTED, "yamux: stream ids exhausted");
		pthread_mutex_unlock(&s->mu);
		goto out;
	}
	st = stream_new_locked(s, s->next_id, 2); /* map + caller */
	if (!st) {
		error_set(err, STATUS_INTERNAL, "yamux: out of memory");
		pthread_mutex_unlock(&s->mu);
		goto out;
	}
	s->next_id += 2;
	st->recv_window = s->cfg.max_stream_window;
	pthread_mutex_unlock(&s->mu);
	if (send_control(s, YAMUX_TYPE_WINDOW_UPDATE, YAMUX_FLAG_SYN, st->id, delta, err)) {
		pthread_mutex_lock(&s->mu);
		st->reset = 1;
		pthread_mutex_unlock(&s->mu);
		yamux_stream_free(st);
		goto out;
	}
	*out = st;
	rc = 0;
out:
	return rc;
}

int yamux_session_ping(struct yamux_session *s, int timeout_ms, int64_t *rtt_us, struct error *err)
{
	struct timespec dl, t0, t1;
	struct ping_slot *slot = NULL;
	uint32_t id;
	size_t i;
	int rc = -1;

	if (timeout_ms >= 0)
		deadline_in(&dl, timeout_ms);
	clock_gettime(CLOCK_MONOTONIC, &t0);
	pthread_mutex_lock(&s->mu);
	for (i = 0; i < MAX_PINGS && !slot; i++)
		if (!s->pings[i].used)
			slot = &s->pings[i];
	if (!slot || s->dead) {
		if (s->dead)
			copy_death(s, err);
		else
			error_set(err, STATUS_RESOURCE_EXHAUSTED, "yamux: too many pings in flight");
		pthread_mutex_unlock(&s->mu);
		return -1;
	}
	id = s->ping_next++;
	slot->id = id;
	slot->used = 1;
	slot->acked = 0;
	pthread_mutex_unlock(&s->mu);

	if (send_control(s, YAMUX_TYPE_PING, YAMUX_FLAG_SYN, 0, id, err))
		goto release;
	pthread_mutex_lock(&s->mu);
	while (!slot->acked && !s->dead) {
		if (wait_until(&s->cv, &s->mu, timeout_ms >= 0 ? &dl : NULL) == ETIMEDOUT)
			break;
	}
	if (slot->acked) {
		clock_gettime(CLOCK_MONOTONIC, &t1);
		if (rtt_us)
			*rtt_us = (int64_t)(t1.tv_sec - t0.tv_sec) * 1000000 +
				  (t1.tv_nsec - t0.tv_nsec) / 1000;
		rc = 0;
	} else if (s->dead) {
		copy_death(s, err);
	} else {
		error_set(err, STATUS_DEADLINE_EXCEEDED, "yamux: ping timed out");
	}
	pthread_mutex_unlock(&s->mu);
release:
	pthread_mutex_lock(&s->mu);
	slot->used = 0;
	pthread_mutex_unlock(&s->mu);
	return rc;
}

void yamux_session_close(struct yamux_session *s)
{
	struct timespec dl;

	pthread_mutex_lock(&s->mu);
	if (!s->dead)
		queue_control_locked(s, YAMUX_TYPE_GO_AWAY, 0, 0, YAMUX_GO_AWAY_NORMAL);
	die_locked(s, STATUS_UNAVAILABLE, "yamux session closed");
	deadline_in(&dl, CLOSE_FLUSH_MS);
	while (!s->writer_done)
		if (pthread_cond_timedwait(&s->cv, &s->mu, &dl) == ETIMEDOUT)
			break;
	pthread_mutex_unlock(&s->mu);
	/* also wakes a stream writer stuck on a peer that does not read; after
	 * yamux_session_free the number may belong to someone else */
	pthread_mutex_lock(&s->wmu);
	if (!s->fd_closed)
		shutdown(s->fd, SHUT_RDWR);
	pthread_mutex_unlock(&s->wmu);
}

void yamux_session_hold(struct yamux_session *s)
{
	pthread_mutex_lock(&s->mu);
	s->refs++;
	pthread_mutex_unlock(&s->mu);
}

void yamux_session_release(struct yamux_session *s)
{
	int destroy;

	if (!s)
		return;
	pthread_mutex_lock(&s->mu);
	destroy = --s->refs == 0;
	pthread_mutex_unlock(&s->mu);
	if (destroy)
		session_destroy(s);
}

void yamux_session_free(struct yamux_session *s)
{
	int destroy;

	if (!s)
		return;
	yamux_session_close(s);
	if (s->threads_started) {
		pthread_join(s->reader, NULL);
		pthread_join(s->writer, NULL);
		s->threads_started = 0;
	}
	pthread_mutex_lock(&s->wmu);
	s->fd_closed = 1;
	close(s->fd);
	pthread_mutex_unlock(&s->wmu);

	pthread_mutex_lock(&s->mu);
	/* break the map's and queue's references so streams can go */
	while (s->n_accept)
		stream_put_locked(s->acceptq[--s->n_accept]);
	while (s->n_streams)
		stream_unlink_locked(s->streams[s->n_streams - 1]);
	destroy = --s->refs == 0;
	pthread_mutex_unlock(&s->mu);
	if (destroy)
		session_destroy(s);
}

void yamux_session_error(struct yamux_session *s, struct error *err)
{
	pthread_mutex_lock(&s->mu);
	if (s->dead)
		copy_death(s, err);
	pthread_mutex_unlock(&s->mu);
}

int yamux_session_remote_go_away(struct yamux_session *s)
{
	int v;

	pthread_mutex_lock(&s->mu);
	v = s->remote_go_away;
	pthread_mutex_unlock(&s->mu);
	return v;
}

int yamux_session_is_closed(struct yamux_session *s)
{
	int v;

	pthread_mutex_lock(&s->mu);
	v = s->dead;
	pthread_mutex_unlock(&s->mu);
	return v;
}

/* ---- stream API -------------------------------------------------------- */

uint32_t yamux_stream_id(const struct yamux_stream *st)
{
	return st->id;
}

void yamux_stream_set_deadline(struct yamux_stream *st, int timeout_ms)
{
	pthread_mutex_lock(&st->s->mu);
	st->has_deadline = timeout_ms >= 0;
	if (timeout_ms >= 0)
		deadline_in(&st->deadline, timeout_ms);
	pthread_mutex_unlock(&st->s->mu);
}

int yamux_stream_read(struct yamux_stream *st, void *buf, size_t len, size_t *nread,
		      struct error *err)
{
	struct yamux_session *s = st->s;
	uint32_t max = s->cfg.max_stream_window, delta = 0;
	int rc = -1;

	*nread = 0;
	pthread_mutex_lock(&s->mu);
	for (;;) {
		if (st->reset) {
			error_set(err, STATUS_UNAVAILABLE, "yamux: stream reset");
			goto unlock;
		}
		if (st->len) {
			size_t n = len < st->len ? len : st->len;

			ring_get(st, buf, n);
			*nread = n;
			delta = (uint32_t)(max - st->len - st->pending) - st->recv_window;
			if (delta >= max / 2 && !st->remote_fin && st->in_map && !s->dead)
				st->recv_window += delta;
			else
				delta = 0;
			rc = 0;
			goto unlock;
		}
		if (!len || st->remote_fin) {
			rc = 0;
			goto unlock;
		}
		if (s->dead) {
			copy_death(s, err);
			goto unlock;
		}
		if (wait_until(&st->cv, &s->mu, st->has_deadline ? &st->deadline : NULL) ==
		    ETIMEDOUT) {
			error_set(err, STATUS_DEADLINE_EXCEEDED, "yamux: read deadline exceeded");
			goto unlock;
		}
	}
unlock:
	pthread_mutex_unlock(&s->mu);
	/* a lost update surfaces as a dead session on the next call */
	if (delta)
		send_control(s, YAMUX_TYPE_WINDOW_UPDATE, 0, st->id, delta, NULL);
	return rc;
}

int yamux_stream_read_full(struct yamux_stream *st, void *buf, size_t len, struct error *err)
{
	size_t got = 0, n;

	while (got < len) {
		if (yamux_stream_read(st, (uint8_t *)buf + got, len - got, &n, err))
			return -1;
		if (!n)
			return error_set(err, STATUS_UNAVAILABLE, "yamux: unexpected EOF");
		got += n;
	}
	return 0;
}

/* The writer behind yamux_stream_write (buf) and yamux_stream_write_pipe
 * (pipe_fd >= 0): frames of at most the peer's window and MAX_DATA_FRAME. */
static int stream_write(struct yamux_stream *st, const uint8_t *p, int pipe_fd, size_t len,
			struct error *err)
{
	struct yamux_session *s = st->s;
	uint8_t h[YAMUX_HEADER_SIZE];
	int rc = -1;

	pthread_mutex_lock(&st->wlock);
	while (len) {
		uint32_t n;

		pthread_mutex_lock(&s->mu);
		for (;;) {
			if (st->local_fin) {
				error_set(err, STATUS_FAILED_PRECONDITION, "yamux: stream closed for writing");
				break;
			}
			if (st->reset) {
				error_set(err, STATUS_UNAVAILABLE, "yamux: stream reset");
				break;
			}
			if (s->dead) {
				copy_death(s, err);
				break;
			}
			if (st->send_window)
				break;
			if (wait_until(&st->cv, &s->mu, st->has_deadline ? &st->deadline : NULL) ==
			    ETIMEDOUT) {
				error_set(err, STATUS_DEADLINE_EXCEEDED, "yamux: write deadline exceeded");
				break;
			}
		}
		if (st->local_fin || st->reset || s->dead || !st->send_window) {
			pthread_mutex_unlock(&s->mu);
			goto out;
		}
		n = st->send_window;
		if (n > MAX_DATA_FRAME)
			n = MAX_DATA_FRAME;
		if (n > len)
			n = (uint32_t)len;
		st->send_window -= n;
		pthread_mutex_unlock(&s->mu);
		encode_header(h, YAMUX_TYPE_DATA, 0, st->id, n);
		if (pipe_fd >= 0 ? session_send_pipe(s, h, pipe_fd, n, err)
				 : session_send(s, h, p, n, err))
			goto out;
		if (p)
			p += n;
		len -= n;
	}
	rc = 0;
out:
	pthread_mutex_unlock(&st->wlock);
	return rc;
}

int yamux_stream_write(struct yamux_stream *st, const void *buf, size_t len, struct error *err)
{
	return stream_write(st, buf, -1, len, err);
}

int yamux_stream_write_pipe(struct yamux_stream *st, int pipe_fd, size_t len, struct error *err)
{
	if (pipe_fd < 0)
		return error_set(err, STATUS_INVALID_ARGUMENT, "yamux: no pipe");
	return stream_write(st, NULL, pipe_fd, len, err);
}

int yamux_stream_close_write(struct yamux_stream *st, struct error *err)
{
	struct yamux_session *s = st->s;
	int rc = 0, send = 0;

	pthread_mutex_lock(&st->wlock);
	pthread_mutex_lock(&s->mu);
	if (!st->local_fin && !st->reset) {
		if (s->dead) {
			copy_death(s, err);
			rc = -1;
		} else {
			st->local_fin = 1;
			send = 1;
			pthread_cond_broadcast(&st->cv);
		}
	}
	pthread_mutex_unlock(&s->mu);
	if (send)
		rc = send_control(s, YAMUX_TYPE_WINDOW_UPDATE, YAMUX_FLAG_FIN, st->id, 0, err);
	pthread_mutex_lock(&s->mu);
	if (send && st->remote_fin)
		stream_unlink_locked(st); /* caller still holds a reference */
	pthread_mutex_unlock(&s->mu);
	pthread_mutex_unlock(&st->wlock);
	return rc;
}

void yamux_stream_reset(struct yamux_stream *st)
{
	struct yamux_session *s = st->s;
	int send = 0;

	pthread_mutex_lock(&s->mu);
	if (!st->reset && !(st->local_fin && st->remote_fin)) {
		st->reset = 1;
		send = !s->dead;
		pthread_cond_broadcast(&st->cv);
		stream_unlink_locked(st);
	}
	pthread_mutex_unlock(&s->mu);
	if (send)
		send_control(s, YAMUX_TYPE_WINDOW_UPDATE, YAMUX_FLAG_RST, st->id, 0, NULL);
}

void yamux_stream_free(struct yamux_stream *st)
{
	struct yamux_session *s;
	int destroy;

	if (!st)
		return;
	s = st->s;
	pthread_mutex_lock(&s->mu);
	if (!st->local_fin && !st->reset) {
		pthread_mutex_unlock(&s->mu);
		yamux_stream_reset(st);
		pthread_mutex_lock(&s->mu);
	}
	stream_unlink_locked(st);
	destroy = stream_put_locked(st);
	pthread_mutex_unlock(&s->mu);
	if (destroy)
		session_destroy(s);
}

/* ---- bridge ------------------------------------------------------------ */

struct bridge {
	struct yamux_stream *st;
	struct yamux_bridge_hooks hooks;
	int fd;
	int live; /* pump threads still running, under mu */
	pthread_mutex_t mu;
};

static void bridge_done(struct bridge *b)
{
	int last;

	pthread_mutex_lock(&b->mu);
	last = --b->live == 0;
	pthread_mutex_unlock(&b->mu);
	if (!last)
		return;
	close(b->fd);
	if (b->hooks.on_done)
		b->hooks.on_done(b->hooks.arg);
	yamux_stream_free(b->st);
	pthread_mutex_destroy(&b->mu);
	free(b);
}

static int write_all_fd(int fd, const uint8_t *p, size_t len)
{
	while (len) {
		ssize_t n = send(fd, p, len, MSG_NOSIGNAL);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			return -1;
		}
		p += n;
		len -= (size_t)n;
	}
	return 0;
}

/* stream -> socketpair */
static void *bridge_up(void *arg)
{
	struct bridge *b = arg;
	uint8_t *buf = malloc(CHUNK);
	struct error err = ERROR_INIT;
	size_t n;

	for (;;) {
		if (!buf || yamux_stream_read(b->st, buf, CHUNK, &n, &err)) {
			if (b->hooks.on_peer_end)
				b->hooks.on_peer_end(b->hooks.arg);
			shutdown(b->fd, SHUT_RDWR);
			break;
		}
		if (!n) {
			/* told before the fd's reader can see the EOF */
			if (b->hooks.on_peer_end)
				b->hooks.on_peer_end(b->hooks.arg);
			shutdown(b->fd, SHUT_WR);
			break;
		}
		if (write_all_fd(b->fd, buf, n)) {
			yamux_stream_reset(b->st);
			shutdown(b->fd, SHUT_RDWR);
			break;
		}
		if (b->hooks.on_recv)
			b->hooks.on_recv(b->hooks.arg);
	}
	error_release(&err);
	free(buf);
	bridge_done(b);
	return NULL;
}

/* socketpair -> stream */
static void *bridge_down(void *arg)
{
	struct bridge *b = arg;
	uint8_t *buf = malloc(CHUNK);
	struct error err = ERROR_INIT;

	for (;;) {
		ssize_t n = buf ? read(b->fd, buf, CHUNK) : -1;

		if (n < 0 && errno == EINTR)
			continue;
		if (n == 0) {
			yamux_stream_close_write(b->st, &err);
			break;
		}
		if (n < 0) {
			yamux_stream_reset(b->st);
			break;
		}
		if (yamux_stream_write(b->st, buf, (size_t)n, &err)) {
			shutdown(b->fd, SHUT_RDWR);
			break;
		}
	}
	error_release(&err);
	free(buf);
	bridge_done(b);
	return NULL;
}

int yamux_stream_bridge(struct yamux_stream *st, int *fd_out, struct error *err)
{
	return yamux_stream_bridge_notify(st, fd_out, NULL, NULL, err);
}

int yamux_stream_bridge_notify(struct yamux_stream *st, int *fd_out, void (*on_done)(void *arg),
			       void *arg, struct error *err)
{
	struct yamux_bridge_hooks h = { .on_done = on_done, .arg = arg };

	return yamux_stream_bridge_hooks(st, fd_out, &h, err);
}

int yamux_stream_bridge_hooks(struct yamux_stream *st, int *fd_out,
			      const struct yamux_bridge_hooks *hooks, struct error *err)
{
	struct bridge *b = NULL;
	pthread_attr_t attr;
	pthread_t t;
	int sv[2] = { -1, -1 }, rc = -1;

	*fd_out = -1;
	if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv)) {
		error_set(err, STATUS_INTERNAL, "yamux bridge: socketpair: %s", strerror(errno));
		goto out;
	}
	b = calloc(1, sizeof(*b));
	if (!b) {
		error_set(err, STATUS_INTERNAL, "yamux bridge: out of memory");
		goto out;
	}
	b->st = st;
	if (hooks)
		b->hooks = *hooks;
	b->fd = sv[0];
	b->live = 2;
	pthread_mutex_init(&b->mu, NULL);
	pthread_attr_init(&attr);
	pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
	if (pthread_create(&t, &attr, bridge_up, b)) {
		pthread_attr_destroy(&attr);
		if (b->hooks.on_done)
			b->hooks.on_done(b->hooks.arg);
		pthread_mutex_destroy(&b->mu);
		free(b);
		b = NULL;
		error_set(err, STATUS_INTERNAL, "yamux bridge: cannot start thread");
		goto out;
	}
	if (pthread_create(&t, &attr, bridge_down, b)) {
		/* the up pump ends once the stream is reset, and then frees it all */
		yamux_stream_reset(st);
		shutdown(sv[0], SHUT_RDWR);
		sv[0] = -1;
		st = NULL;
		bridge_done(b);
		error_set(err, STATUS_INTERNAL, "yamux bridge: cannot start thread");
	} else {
		*fd_out = sv[1];
		sv[1] = -1;
		sv[0] = -1;
		st = NULL;
		rc = 0;
	}
	pthread_attr_destroy(&attr);
out:
	if (sv[0] >= 0)
		close(sv[0]);
	if (sv[1] >= 0)
		close(sv[1]);
	if (st)
		yamux_stream_free(st);
	return rc;
}
