/*
 * The TLS-to-plaintext relay. One thread per TLS connection copies bytes
 * both ways with non-blocking I/O and poll(2); OpenSSL may need to read in
 * order to write (and the reverse), so each direction remembers which
 * readiness it is waiting for. Buffers are fixed-size, so a slow side
 * applies back-pressure instead of growing memory.
 */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <openssl/err.h>
#include <openssl/ssl.h>

#include "base/log.h"
#include "net/bridge.h"

#define RELAY_BUF 16384

static int g_active;

int bridge_active(void)
{
	return __atomic_load_n(&g_active, __ATOMIC_SEQ_CST);
}

static void set_nonblock(int fd)
{
	int fl = fcntl(fd, F_GETFL);
	if (fl >= 0)
		fcntl(fd, F_SETFL, fl | O_NONBLOCK);
}

/* Maps an SSL_get_error result to a poll event on the network side, 0 = fatal. */
static short ssl_want(SSL *ssl, int r)
{
	switch (SSL_get_error(ssl, r)) {
	case SSL_ERROR_WANT_READ:
		return POLLIN;
	case SSL_ERROR_WANT_WRITE:
		return POLLOUT;
	default:
		return 0;
	}
}

void bridge_tls_relay(SSL *ssl, int net_fd, int plain_fd)
{
	unsigned char *n2p = malloc(RELAY_BUF), *p2n = malloc(RELAY_BUF);
	size_t n2p_len = 0, n2p_off = 0, p2n_len = 0, p2n_off = 0;
	int net_eof = 0, plain_eof = 0, plain_wr_shut = 0, failed = 0;
	short rd_want = POLLIN, wr_want = POLLOUT;

	if (!n2p || !p2n)
		goto out;
	set_nonblock(net_fd);
	set_nonblock(plain_fd);
	while (!failed) {
		int progress = 1;
		while (progress && !failed) {
			progress = 0;
			if (n2p_len == 0 && !net_eof) {
				int r = SSL_read(ssl, n2p, RELAY_BUF);
				if (r > 0) {
					n2p_len = (size_t)r;
					n2p_off = 0;
					progress = 1;
				} else {
					rd_want = ssl_want(ssl, r);
					if (!rd_want) /* close_notify, EOF or error */
						net_eof = 1;
				}
			}
			if (n2p_len > 0) {
				ssize_t w = send(plain_fd, n2p + n2p_off, n2p_len - n2p_off,
						 MSG_NOSIGNAL);
				if (w > 0) {
					n2p_off += (size_t)w;
					if (n2p_off == n2p_len)
						n2p_len = n2p_off = 0;
					progress = 1;
				} else if (w < 0 && errno != EAGAIN && errno != EINTR) {
					failed = 1;
				}
			}
			if (p2n_len == 0 && !plain_eof) {
				ssize_t r = read(plain_fd, p2n, RELAY_BUF);
				if (r > 0) {
					p2n_len = (size_t)r;
					p2n_off = 0;
					progress = 1;
				} else if (r == 0 || (errno != EAGAIN && errno != EINTR)) {
					plain_eof = 1;
				}
			}
			if (p2n_len > 0) {
				int w = SSL_write(ssl, p2n + p2n_off, (int)(p2n_len - p2n_off));
				if (w > 0) {
					p2n_off += (size_t)w;
					if (p2n_off == p2n_len)
						p2n_len = p2n_off = 0;
					progress = 1;
				} else {
					wr_want = ssl_want(ssl, w);
					if (!wr_want)
						failed = 1;
				}
			}
		}
		if (failed)
			break;
		if (net_eof && n2p_len == 0 && !plain_wr_shut) {
			shutdown(plain_fd, SHUT_WR);
			plain_wr_shut = 1;
		}
		if (plain_eof && p2n_len == 0)
			break; /* grpc core closed the connection: we are done */
		if (net_eof && plain_wr_shut && p2n_len == 0 && plain_eof)
			break;

		struct pollfd pfd[2];
		memset(pfd, 0, sizeof(pfd));
		pfd[0].fd = net_fd;
		pfd[1].fd = plain_fd;
		if (n2p_len == 0 && !net_eof)
			pfd[0].events |= rd_want;
		if (p2n_len > 0)
			pfd[0].events |= wr_want;
		if (p2n_len == 0 && !plain_eof)
			pfd[1].events |= POLLIN;
		if (n2p_len > 0)
			pfd[1].events |= POLLOUT;
		if (!pfd[0].events && !pfd[1].events)
			break;
		if (poll(pfd, 2, -1) < 0 && errno != EINTR)
			break;
		if ((pfd[0].revents & (POLLERR | POLLNVAL)) || (pfd[1].revents & POLLNVAL))
			break;
	}
	if (!failed && !net_eof)
		SSL_shutdown(ssl); /* best effort close_notify */
out:
	ERR_clear_error();
	free(n2p);
	free(p2n);
}

struct relay_arg {
	SSL *ssl;
	int net_fd, plain_fd;
};

static void *relay_main(void *p)
{
	struct relay_arg *a = p;
	bridge_tls_relay(a->ssl, a->net_fd, a->plain_fd);
	SSL_free(a->ssl);
	close(a->net_fd);
	close(a->plain_fd);
	free(a);
	OPENSSL_thread_stop();
	__atomic_sub_fetch(&g_active, 1, __ATOMIC_SEQ_CST);
	return NULL;
}

/*
 * OpenSSL writes with write(2), so a peer that vanished would raise SIGPIPE
 * and kill the process. Unless the program chose a handler, ignore it.
 */
static void ignore_sigpipe_once(void)
{
	struct sigaction sa;
	if (sigaction(SIGPIPE, NULL, &sa) == 0 && sa.sa_handler == SIG_DFL) {
		sa.sa_handler = SIG_IGN;
		sigemptyset(&sa.sa_mask);
		sa.sa_flags = 0;
		sigaction(SIGPIPE, &sa, NULL);
	}
}

void bridge_ignore_sigpipe(void)
{
	static pthread_once_t once = PTHREAD_ONCE_INIT;
	pthread_once(&once, ignore_sigpipe_once);
}

int bridge_tls_start(SSL *ssl, int net_fd, int *plain_fd, struct error *err)
{
	int sv[2];
	pthread_t th;
	pthread_attr_t attr;
	struct relay_arg *a;
	int rc;

	*plain_fd = -1;
	bridge_ignore_sigpipe();
	if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) < 0)
		return error_set(err, STATUS_INTERNAL, "socketpair: %s", strerror(errno));
	a = malloc(sizeof(*a));
	if (!a) {
		close(sv[0]);
		close(sv[1]);
		return error_set(err, STATUS_INTERNAL, "out of memory");
	}
	a->ssl = ssl;
	a->net_fd = net_fd;
	a->plain_fd = sv[1];
	__atomic_add_fetch(&g_active, 1, __ATOMIC_SEQ_CST);
	pthread_attr_init(&attr);
	pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
	pthread_attr_setstacksize(&attr, (size_t)256 << 10);
	rc = pthread_create(&th, &attr, relay_main, a);
	pthread_attr_destroy(&attr);
	if (rc) {
		__atomic_sub_fetch(&g_active, 1, __ATOMIC_SEQ_CST);
		free(a);
		close(sv[0]);
		close(sv[1]);
		return error_set(err, STATUS_INTERNAL, "pthread_create: %s", strerror(rc));
	}
	*plain_fd = sv[0];
	return 0;
}
