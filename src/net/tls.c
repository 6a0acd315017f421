/*
 * OpenSSL server context and handshake for the tls listener. grpc core's fd
 * API takes only insecure credentials, so TLS ends here and the plaintext is
 * relayed to grpc core by src/net/bridge.c.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>

#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/ssl.h>

#include "net/tls.h"

struct tls_server {
	SSL_CTX *ctx;
};

/* Last OpenSSL error as text (thread-local queue). */
static const char *ssl_error_text(char *buf, size_t len)
{
	unsigned long e = ERR_get_error();
	if (!e) {
		snprintf(buf, len, "unknown TLS error");
		return buf;
	}
	ERR_error_string_n(e, buf, len);
	ERR_clear_error();
	return buf;
}

/* Selects "h2" when the client offers it; otherwise no ALPN at all. */
static int alpn_select(SSL *ssl, const unsigned char **out, unsigned char *outlen,
		       const unsigned char *in, unsigned int inlen, void *arg)
{
	static const unsigned char h2[] = { 2, 'h', '2' };
	unsigned char *sel = NULL;
	unsigned char sel_len = 0;
	if (SSL_select_next_proto(&sel, &sel_len, h2, sizeof(h2), in, inlen) !=
	    OPENSSL_NPN_NEGOTIATED)
		return SSL_TLSEXT_ERR_NOACK;
	*out = sel;
	*outlen = sel_len;
	return SSL_TLSEXT_ERR_OK;
}

static int load_inline_key(SSL_CTX *ctx, const char *pem)
{
	BIO *bio = BIO_new_mem_buf(pem, -1);
	EVP_PKEY *key = NULL;
	int ok = 0;
	if (!bio)
		return 0;
	key = PEM_read_bio_PrivateKey(bio, NULL, NULL, NULL);
	if (key)
		ok = SSL_CTX_use_PrivateKey(ctx, key) == 1;
	EVP_PKEY_free(key);
	BIO_free(bio);
	return ok;
}

int tls_server_new(const char *cert_path, const char *key_path, const char *key_pem,
		   struct tls_server **out, struct error *err)
{
	struct tls_server *t = NULL;
	char ebuf[256];
	int ret = -1;

	*out = NULL;
	/* OpenSSL's loaders judge success partly by the thread's error queue. */
	ERR_clear_error();
	if (!cert_path || !*cert_path) {
		error_set(err, STATUS_INVALID_ARGUMENT, "tls: certificate_path is not set");
		goto out;
	}
	t = calloc(1, sizeof(*t));
	if (!t) {
		error_set(err, STATUS_INTERNAL, "out of memory");
		goto out;
	}
	t->ctx = SSL_CTX_new(TLS_server_method());
	if (!t->ctx) {
		error_set(err, STATUS_INTERNAL, "tls: %s", ssl_error_text(ebuf, sizeof(ebuf)));
		goto out;
	}
	SSL_CTX_set_min_proto_version(t->ctx, TLS1_2_VERSION);
	SSL_CTX_set_mode(t->ctx, SSL_MODE_ENABLE_PARTIAL_WRITE |
				     SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER |
				     SSL_MODE_RELEASE_BUFFERS);
	SSL_CTX_set_options(t->ctx, SSL_OP_NO_RENEGOTIATION | SSL_OP_CIPHER_SERVER_PREFERENCE);
	SSL_CTX_set_alpn_select_cb(t->ctx, alpn_select, NULL);
	if (SSL_CTX_use_certificate_chain_file(t->ctx, cert_path) != 1) {
		error_set(err, STATUS_INVALID_ARGUMENT, "tls: load certificate %s: %s", cert_path,
			  ssl_error_text(ebuf, sizeof(ebuf)));
		goto out;
	}
	if (key_path && *key_path) {
		if (SSL_CTX_use_PrivateKey_file(t->ctx, key_path, SSL_FILETYPE_PEM) != 1) {
			error_set(err, STATUS_INVALID_ARGUMENT, "tls: load key %s: %s", key_path,
				  ssl_error_text(ebuf, sizeof(ebuf)));
			goto out;
		}
	} else if (key_pem && *key_pem) {
		if (!load_inline_key(t->ctx, key_pem)) {
			error_set(err, STATUS_INVALID_ARGUMENT, "tls: load inline key: %s",
				  ssl_error_text(ebuf, sizeof(ebuf)));
			goto out;
		}
	} else {
		error_set(err, STATUS_INVALID_ARGUMENT, "tls: key_path is not set");
		goto out;
	}
	if (SSL_CTX_check_private_key(t->ctx) != 1) {
		error_set(err, STATUS_INVALID_ARGUMENT, "tls: key does not match certificate: %s",
			  ssl_error_text(ebuf, sizeof(ebuf)));
		goto out;
	}
	ret = 0;
out:
	if (ret < 0) {
		tls_server_free(t);
		t = NULL;
	}
	*out = t;
	return ret;
}

int tls_server_handshake(struct tls_server *t, int fd, int timeout_ms, SSL **out,
			 struct error *err)
{
	struct timeval tv = { .tv_sec = timeout_ms / 1000, .tv_usec = (timeout_ms % 1000) * 1000 };
	struct timeval zero = { 0, 0 };
	char ebuf[256];
	SSL *ssl = NULL;
	int ret = -1;

	*out = NULL;
	ERR_clear_error();
	/* The socket is blocking here; the timeouts bound a silent client. */
	setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
	ssl = SSL_new(t->ctx);
	if (!ssl || SSL_set_fd(ssl, fd) != 1) {
		error_set(err, STATUS_INTERNAL, "tls: %s", ssl_error_text(ebuf, sizeof(ebuf)));
		goto out;
	}
	int r = SSL_accept(ssl);
	if (r != 1) {
		int e = SSL_get_error(ssl, r);
		if (e == SSL_ERROR_SYSCALL && (errno == EAGAIN || errno == EWOULDBLOCK))
			error_set(err, STATUS_DEADLINE_EXCEEDED, "tls: handshake timed out");
		else
			error_set(err, STATUS_UNAVAILABLE, "tls: handshake failed: %s",
				  ssl_error_text(ebuf, sizeof(ebuf)));
		goto out;
	}
	setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &zero, sizeof(zero));
	setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &zero, sizeof(zero));
	*out = ssl;
	ssl = NULL;
	ret = 0;
out:
	SSL_free(ssl);
	ERR_clear_error();
	return ret;
}

void tls_server_free(struct tls_server *t)
{
	if (!t)
		return;
	SSL_CTX_free(t->ctx);
	free(t);
}
