/*
 * Server-side TLS with OpenSSL for the tls listener: a context built once
 * from [tls] certificate_path and key_path (or an inline PEM key), TLS 1.2
 * or newer, ALPN "h2" (gRPC clients insist on it), and a blocking handshake
 * with a timeout on an accepted socket.
 */
#ifndef NET_TLS_H
#define NET_TLS_H

#include <openssl/ssl.h>

#include "base/error.h"

struct tls_server;

/*
 * Loads the certificate chain and the private key. key_pem (inline PEM) is
 * used when key_path is NULL or empty. Returns 0, or -1 with err set.
 */
int tls_server_new(const char *cert_path, const char *key_path, const char *key_pem,
		   struct tls_server **out, struct error *err);

/*
 * Runs the server handshake on a connected blocking socket within
 * timeout_ms. On success *out is an SSL object bound to fd (the caller frees
 * it with SSL_free; fd stays the caller's). Returns 0 or -1 with err set.
 */
int tls_server_handshake(struct tls_server *t, int fd, int timeout_ms, SSL **out,
			 struct error *err);

void tls_server_free(struct tls_server *t);

#endif
