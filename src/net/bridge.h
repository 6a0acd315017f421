/*
 * Byte-stream bridges into grpc core. grpc core takes connections only as
 * plain file descriptors, so a stream that is not a plain socket (TLS
 * today, a yamux stream later) is relayed through a socketpair: one end goes
 * to grpc core, a relay thread copies between the other end and the source.
 */
#ifndef NET_BRIDGE_H
#define NET_BRIDGE_H

#include <openssl/ssl.h>

#include "base/error.h"

/*
 * Starts relaying between ssl (on the connected socket net_fd) and a new
 * socketpair. *plain_fd receives the plaintext end (caller-owned, blocking,
 * close-on-exec). The relay thread owns ssl and net_fd from here on and
 * frees them when either side closes. Returns 0 or -1 with err set (ssl
 * and net_fd are then still the caller's).
 */
int bridge_tls_start(SSL *ssl, int net_fd, int *plain_fd, struct error *err);

/*
 * Relays between ssl on net_fd and plain_fd on the calling thread until
 * either side closes or fails. Neither is closed or freed here.
 */
void bridge_tls_relay(SSL *ssl, int net_fd, int plain_fd);

/*
 * Sets SIGPIPE to ignored unless the program installed a handler: OpenSSL
 * writes with write(2), and a vanished peer must not kill the process.
 */
void bridge_ignore_sigpipe(void);

/* Number of relays running now (for tests and shutdown). */
int bridge_active(void);

#endif
