/*
 * Connections of the Gitaly client: address parsing, the socket (unix, TCP,
 * or TLS relayed through src/net/bridge.c), the "backchannel" preface and
 * yamux client session, grpc core's channel on stream 1 (bridged into a
 * socketpair), the thread that accepts server-opened sidechannel streams,
 * and the process-wide registry that matches their ids to waiting calls.
 */
#include "client/client_internal.h"

#include <errno.h>
#include <fcntl.h>
#include <arpa/inet.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <grpc/grpc_posix.h>
#include <grpc/grpc_security.h>
#include <grpc/support/time.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>

#include "base/log.h"
#include "net/bridge.h"
#include "net/sidechannel.h"

#define DIAL_TIMEOUT_MS 10000

/* How long the idle poller drives grpc core after a wake-up. */
#define IDLE_POLL_MS 200

static pthread_once_t init_once = PTHREAD_ONCE_INIT;

/*
 * The idle poller. grpc core reads a descriptor only while some thread
 * polls it, i.e. while a call waits on its queue. A connection without
 * calls would leave gitaly's keepalive ping (sent after 5 minutes of
 * silence) unanswered, and gitaly closes the transport 20 s later. So when
 * bytes arrive on a connection without calls, this thread polls grpc core
 * for a moment: the transport reads them and answers (ping ack, GOAWAY).
 */
static pthread_mutex_t idle_mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t idle_cv = PTHREAD_COND_INITIALIZER;
static int idle_kicks;
static int idle_started;

static void *idle_poller_main(void *arg)
{
	grpc_completion_queue *cq = grpc_completion_queue_create_for_next(NULL);

	(void)arg;
	for (;;) {
		pthread_mutex_lock(&idle_mu);
		while (!idle_kicks)
			pthread_cond_wait(&idle_cv, &idle_mu);
		idle_kicks = 0;
		pthread_mutex_unlock(&idle_mu);
		/* nothing is ever queued on cq: this only polls until the deadline */
		grpc_completion_queue_next(
			cq,
			gpr_time_add(gpr_now(GPR_CLOCK_MONOTONIC),
				     gpr_time_from_millis(IDLE_POLL_MS, GPR_TIMESPAN)),
			NULL);
	}
	return NULL;
}

static void idle_poller_kick(void)
{
	pthread_mutex_lock(&idle_mu);
	idle_kicks++;
	pthread_cond_signal(&idle_cv);
	pthread_mutex_unlock(&idle_mu);
}

static void do_init(void)
{
	pthread_attr_t attr;
	pthread_t t;

	grpc_init();
	bridge_ignore_sigpipe();
	pthread_attr_init(&attr);
	pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
	pthread_attr_setstacksize(&attr, (size_t)256 << 10);
	if (pthread_create(&t, &attr, idle_poller_main, NULL) == 0)
		idle_started = 1;
	else
		log_msg(LOG_WARN, "gitaly client: cannot start the idle poller");
	pthread_attr_destroy(&attr);
}

static void link_put(struct conn_link *l)
{
	if (l && __atomic_sub_fetch(&l->refs, 1, __ATOMIC_ACQ_REL) == 0)
		free(l);
}

/* Bridge hooks of stream 1 (arg: the conn_link). */
static void link_on_recv(void *arg)
{
	struct conn_link *l = arg;

	if (idle_started && __atomic_load_n(&l->calls, __ATOMIC_ACQUIRE) == 0)
		idle_poller_kick();
}

static void link_on_peer_end(void *arg)
{
	struct conn_link *l = arg;

	__atomic_store_n(&l->dead, 1, __ATOMIC_RELEASE);
	/* let grpc core read the end too, so a later call fails at once */
	if (idle_started)
		idle_poller_kick();
}

static void link_on_done(void *arg)
{
	link_put(arg);
}

void conn_calls_add(struct gitaly_conn *c, int delta)
{
	if (c->link)
		__atomic_add_fetch(&c->link->calls, delta, __ATOMIC_ACQ_REL);
}

int conn_dead(struct gitaly_conn *c)
{
	return c->link && __atomic_load_n(&c->link->dead, __ATOMIC_ACQUIRE);
}

void gitaly_client_init(void)
{
	pthread_once(&init_once, do_init);
}

/* ---- registry ------------------------------------------------------------ */

static pthread_mutex_t reg_mu = PTHREAD_MUTEX_INITIALIZER;
static struct sc_waiter *reg_head;
static int64_t reg_next_id;

void sc_registry_add(struct sc_waiter *w)
{
	pthread_mutex_lock(&reg_mu);
	w->id = reg_next_id++;
	w->next = reg_head;
	reg_head = w;
	pthread_mutex_unlock(&reg_mu);
}

void sc_registry_remove(struct sc_waiter *w)
{
	struct sc_waiter **p;

	pthread_mutex_lock(&reg_mu);
	for (p = &reg_head; *p; p = &(*p)->next) {
		if (*p == w) {
			*p = w->next;
			break;
		}
	}
	w->next = NULL;
	pthread_mutex_unlock(&reg_mu);
}

int sc_registry_deliver(int64_t id, struct yamux_stream *st)
{
	struct error err = ERROR_INIT;
	struct sc_waiter *w;
	int ret = -1;

	pthread_mutex_lock(&reg_mu);
	for (w = reg_head; w; w = w->next)
		if (w->id == id)
			break;
	if (!w)
		goto out;
	pthread_mutex_lock(&w->mu);
	if (w->stream || w->call_done) {
		pthread_mutex_unlock(&w->mu);
		goto out;
	}
	if (sidechannel_client_ack(st, &err) < 0) {
		pthread_mutex_unlock(&w->mu);
		log_msg(LOG_WARN, "sidechannel %lld: ack failed: %s", (long long)id,
			err.message ? err.message : "");
		goto out;
	}
	w->stream = st;
	pthread_cond_broadcast(&w->cond);
	pthread_mutex_unlock(&w->mu);
	ret = 0;
out:
	pthread_mutex_unlock(&reg_mu);
	error_release(&err);
	return ret;
}

/* ---- addresses and sockets ---------------------------------------------- */

int gitaly_address_parse(const char *address, char *kind, char **host, char **port,
			 struct error *err)
{
	const char *rest, *colon;
	int ret = -1;

	*host = *port = NULL;
	if (!address)
		return error_set(err, STATUS_INVALID_ARGUMENT, "empty address");
	if (!strncmp(address, "unix://", 7)) {
		*kind = 'u';
		rest = address + 7;
	} else if (!strncmp(address, "unix:", 5)) {
		*kind = 'u';
		rest = address + 5;
	} else if (!strncmp(address, "tcp://", 6)) {
		*kind = 't';
		rest = address + 6;
	} else if (!strncmp(address, "tls://", 6)) {
		*kind = 's';
		rest = address + 6;
	} else {
		error_set(err, STATUS_INVALID_ARGUMENT, "unsupported address %s", address);
		goto out;
	}
	if (*kind == 'u') {
		if (!*rest || strlen(rest) >= sizeof(((struct sockaddr_un *)0)->sun_path)) {
			error_set(err, STATUS_INVALID_ARGUMENT, "bad unix socket path in %s",
				  address);
			goto out;
		}
		*host = strdup(rest);
		ret = *host ? 0 : error_set(err, STATUS_INTERNAL, "out of memory");
		goto out;
	}
	if (*rest == '[') {
		const char *end = strchr(rest, ']');
		if (!end || end[1] != ':')
			goto bad;
		*host = strndup(rest + 1, (size_t)(end - rest - 1));
		colon = end + 1;
	} else {
		colon = strrchr(rest, ':');
		if (!colon)
			goto bad;
		*host = strndup(rest, (size_t)(colon - rest));
	}
	if (!*host || !**host || !colon[1] || strchr(colon + 1, '/'))
		goto bad;
	*port = strdup(colon + 1);
	if (!*port)
		goto bad;
	ret = 0;
	goto out;
bad:
	free(*host);
	free(*port);
	*host = *port = NULL;
	error_set(err, STATUS_INVALID_ARGUMENT, "bad host:port in %s", address);
out:
	return ret;
}

static int connect_unix(const char *path, int *fd_out, struct error *err)
{
	struct sockaddr_un sa;
	int fd;

	memset(&sa, 0, sizeof(sa));
	sa.sun_family = AF_UNIX;
	memcpy(sa.sun_path, path, strlen(path));
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return error_set(err, STATUS_UNAVAILABLE, "socket: %s", strerror(errno));
	if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0) {
		int e = errno;
		close(fd);
		return error_set(err, STATUS_UNAVAILABLE, "dial unix %s: %s", path, strerror(e));
	}
	*fd_out = fd;
	return 0;
}

static int connect_tcp(const char *host, const char *port, int *fd_out, struct error *err)
{
	struct addrinfo hints, *res = NULL, *ai;
	int fd = -1, rc, e = 0;

	memset(&hints, 0, sizeof(hints));
	hints.ai_family = AF_UNSPEC;
	hints.ai_socktype = SOCK_STREAM;
	rc = getaddrinfo(host, port, &hints, &res);
	if (rc != 0)
		return error_set(err, STATUS_UNAVAILABLE, "resolve %s: %s", host, gai_strerror(rc));
	for (ai = res; ai; ai = ai->ai_next) {
		fd = socket(ai->ai_family, ai->ai_socktype | SOCK_CLOEXEC, ai->ai_protocol);
		if (fd < 0) {
			e = errno;
			continue;
		}
		if (connect(fd, ai->ai_addr, ai->ai_addrlen) == 0)
			break;
		e = errno;
		close(fd);
		fd = -1;
	}
	freeaddrinfo(res);
	if (fd < 0)
		return error_set(err, STATUS_UNAVAILABLE, "dial tcp %s:%s: %s", host, port,
				 strerror(e));
	rc = 1;
	setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &rc, sizeof(rc));
	*fd_out = fd;
	return 0;
}

/* TLS client handshake on fd, then a relay to a plaintext socketpair end. */
static int tls_wrap(int fd, const char *host, const char *ca_file, int *plain_out,
		    struct error *err)
{
	static const unsigned char alpn[] = { 2, 'h', '2' };
	SSL_CTX *ctx = NULL;
	SSL *ssl = NULL;
	int ret = -1;
	struct timeval tv = { DIAL_TIMEOUT_MS / 1000, 0 }, zero = { 0, 0 };
	struct in6_addr ip;

	ctx = SSL_CTX_new(TLS_client_method());
	if (!ctx) {
		error_set(err, STATUS_INTERNAL, "tls: cannot create context");
		goto out;
	}
	SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION);
	SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER, NULL);
	if (ca_file && *ca_file) {
		if (SSL_CTX_load_verify_locations(ctx, ca_file, NULL) != 1) {
			error_set(err, STATUS_UNAVAILABLE, "tls: cannot load CA file %s", ca_file);
			goto out;
		}
	} else if (SSL_CTX_set_default_verify_paths(ctx) != 1) {
		error_set(err, STATUS_UNAVAILABLE, "tls: cannot load system CAs");
		goto out;
	}
	SSL_CTX_set_alpn_protos(ctx, alpn, sizeof(alpn));
	ssl = SSL_new(ctx);
	if (!ssl || SSL_set_fd(ssl, fd) != 1) {
		error_set(err, STATUS_INTERNAL, "tls: cannot create connection");
		goto out;
	}
	if (inet_pton(AF_INET, host, &ip) == 1 || inet_pton(AF_INET6, host, &ip) == 1) {
		/* an address: match the certificate's IP SANs, no SNI */
		X509_VERIFY_PARAM_set1_ip_asc(SSL_get0_param(ssl), host);
	} else {
		SSL_set_tlsext_host_name(ssl, host);
		SSL_set1_host(ssl, host);
	}
	setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
	if (SSL_connect(ssl) != 1) {
		unsigned long e = ERR_get_error();
		long v = SSL_get_verify_result(ssl);
		error_set(err, STATUS_UNAVAILABLE, "tls handshake with %s failed: %s", host,
			  v != X509_V_OK ? X509_verify_cert_error_string(v)
					 : (e ? ERR_reason_error_string(e) : "connection closed"));
		goto out;
	}
	setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &zero, sizeof(zero));
	setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &zero, sizeof(zero));
	if (bridge_tls_start(ssl, fd, plain_out, err) < 0)
		goto out;
	ssl = NULL; /* the relay owns it and fd now */
	ret = 0;
out:
	if (ssl)
		SSL_free(ssl);
	SSL_CTX_free(ctx);
	ERR_clear_error();
	return ret;
}

static int write_all(int fd, const void *buf, size_t len)
{
	const char *p = buf;

	while (len) {
		ssize_t n = write(fd, p, len);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			return -1;
		p += n;
		len -= (size_t)n;
	}
	return 0;
}

/* Accepts server-opened streams: sidechannels for our waiting calls. */
static void *acceptor_main(void *arg)
{
	struct gitaly_conn *c = arg;

	for (;;) {
		struct error err = ERROR_INIT;
		struct yamux_stream *st = NULL;
		int64_t id;

		if (yamux_accept(c->session, &st, &err) < 0) {
			error_release(&err);
			break;
		}
		if (sidechannel_client_read_id(st, SIDECHANNEL_HANDSHAKE_TIMEOUT_MS, &id, &err) <
			    0 ||
		    sc_registry_deliver(id, st) < 0) {
			/* not a sidechannel we wait for: drop it */
			yamux_stream_free(st);
		}
		error_release(&err);
	}
	return NULL;
}

static int set_nonblock(int fd)
{
	int fl = fcntl(fd, F_GETFL);
	return fl < 0 ? -1 : fcntl(fd, F_SETFL, fl | O_NONBLOCK);
}

/* Fills c from a connected socket fd (taken over, even on error). */
static int conn_setup(struct gitaly_conn *c, int fd, const char *target, int plain,
		      struct error *err)
{
	struct yamux_stream *st = NULL;
	grpc_channel_credentials *creds = NULL;
	int chan_fd = -1, ret = -1;
	grpc_arg args[2];
	grpc_channel_args chargs;

	if (plain) {
		chan_fd = fd;
		fd = -1;
	} else {
		if (write_all(fd, "backchannel", 11) < 0) {
			error_set(err, STATUS_UNAVAILABLE, "write backchannel preface: %s",
				  strerror(errno));
			goto out;
		}
		/* hashicorp's default backlog (upstream clients keep it): the
		 * server opens one sidechannel stream per concurrent RPC, and a
		 * backlog of 1 would reset all but one of a burst */
		struct yamux_config ycfg;

		yamux_config_default(&ycfg);
		ycfg.accept_backlog = 256;
		/* a 4 MiB receive window: gitaly streams a clone's pack without
		 * stalling, and we send a window update per 2 MiB read instead of
		 * per 128 KiB (each one a wake-up on both sides) */
		ycfg.max_stream_window = 4u << 20;
		ret = yamux_session_new(fd, YAMUX_CLIENT, &ycfg, &c->session, err);
		fd = -1; /* the session owns it, even on error */
		if (ret < 0)
			goto out;
		ret = -1;
		if (yamux_open(c->session, &st, err) < 0)
			goto out;
		struct yamux_bridge_hooks hooks = {
			.on_recv = link_on_recv,
			.on_peer_end = link_on_peer_end,
			.on_done = link_on_done,
			.arg = c->link,
		};

		__atomic_add_fetch(&c->link->refs, 1, __ATOMIC_ACQ_REL); /* the bridge's */
		if (yamux_stream_bridge_hooks(st, &chan_fd, &hooks, err) < 0) {
			/* the bridge ran on_done: its reference is gone */
			st = NULL;
			goto out;
		}
		st = NULL;
		if (pthread_create(&c->acceptor, NULL, acceptor_main, c) != 0) {
			error_set(err, STATUS_INTERNAL, "cannot start sidechannel acceptor");
			goto out;
		}
		c->has_acceptor = 1;
	}
	if (set_nonblock(chan_fd) < 0) {
		error_set(err, STATUS_INTERNAL, "fcntl: %s", strerror(errno));
		goto out;
	}
	args[0].type = GRPC_ARG_INTEGER;
	args[0].key = (char *)GRPC_ARG_MAX_RECEIVE_MESSAGE_LENGTH;
	args[0].value.integer = 16 << 20;
	args[1].type = GRPC_ARG_STRING;
	args[1].key = (char *)GRPC_ARG_DEFAULT_AUTHORITY;
	args[1].value.string = (char *)"localhost";
	chargs.num_args = 2;
	chargs.args = args;
	creds = grpc_insecure_credentials_create();
	c->channel = grpc_channel_create_from_fd(target, chan_fd, creds, &chargs);
	chan_fd = -1; /* grpc core owns it now, even if the channel is broken */
	if (!c->channel) {
		error_set(err, STATUS_UNAVAILABLE, "cannot create channel to %s", target);
		goto out;
	}
	ret = 0;
out:
	if (creds)
		grpc_channel_credentials_release(creds);
	if (fd >= 0)
		close(fd);
	if (chan_fd >= 0)
		close(chan_fd);
	yamux_stream_free(st);
	return ret;
}

static struct gitaly_conn *conn_alloc(const struct gitaly_conn_opts *opts, struct error *err)
{
	struct gitaly_conn *c = calloc(1, sizeof(*c));

	if (c) {
		c->link = calloc(1, sizeof(*c->link));
		if (c->link)
			c->link->refs = 1;
		c->token = strdup(opts->token ? opts->token : "");
		c->client_name = strdup(opts->client_name ? opts->client_name : "gitaly-client");
	}
	if (!c || !c->link || !c->token || !c->client_name) {
		gitaly_conn_free(c);
		error_set(err, STATUS_INTERNAL, "out of memory");
		return NULL;
	}
	return c;
}

int gitaly_conn_from_fd(int fd, const struct gitaly_conn_opts *opts, struct gitaly_conn **out,
			struct error *err)
{
	struct gitaly_conn_opts none = { 0 };
	struct gitaly_conn *c;

	gitaly_client_init();
	c = conn_alloc(opts ? opts : &none, err);
	if (!c) {
		close(fd);
		return -1;
	}
	if (conn_setup(c, fd, "fd", opts ? opts->plain : 0, err) < 0) {
		gitaly_conn_free(c);
		return -1;
	}
	*out = c;
	return 0;
}

int gitaly_conn_dial(const char *address, const struct gitaly_conn_opts *opts,
		     struct gitaly_conn **out, struct error *err)
{
	struct gitaly_conn_opts none = { 0 };
	struct gitaly_conn *c = NULL;
	char kind, *host = NULL, *port = NULL;
	int fd = -1, ret = -1;

	gitaly_client_init();
	if (!opts)
		opts = &none;
	if (gitaly_address_parse(address, &kind, &host, &port, err) < 0)
		goto out;
	c = conn_alloc(opts, err);
	if (!c)
		goto out;
	if (kind == 'u') {
		if (connect_unix(host, &fd, err) < 0)
			goto out;
	} else {
		if (connect_tcp(host, port, &fd, err) < 0)
			goto out;
		if (kind == 's') {
			int plain;
			if (tls_wrap(fd, host, opts->ca_file, &plain, err) < 0)
				goto out;
			fd = plain;
		}
	}
	ret = conn_setup(c, fd, address, opts->plain, err);
	fd = -1;
	if (ret < 0)
		goto out;
	*out = c;
	c = NULL;
out:
	if (fd >= 0)
		close(fd);
	gitaly_conn_free(c);
	free(host);
	free(port);
	return ret;
}

int gitaly_conn_broken(struct gitaly_conn *c)
{
	if (!c->session)
		return grpc_channel_check_connectivity_state(c->channel, 0) ==
		       GRPC_CHANNEL_SHUTDOWN;
	/* a channel made from a descriptor never reconnects: once gitaly ended
	 * stream 1 the connection is useless, even while the session lives */
	return conn_dead(c) || yamux_session_is_closed(c->session);
}

void gitaly_conn_free(struct gitaly_conn *c)
{
	if (!c)
		return;
	if (c->channel)
		grpc_channel_destroy(c->channel);
	if (c->session)
		yamux_session_close(c->session);
	if (c->has_acceptor)
		pthread_join(c->acceptor, NULL);
	if (c->session)
		yamux_session_free(c->session);
	link_put(c->link);
	free(c->token);
	free(c->client_name);
	free(c);
}
