/*
 * Tests for src/net/tls.c and src/net/bridge.c through a tls listener: a
 * self-signed certificate made here, raw OpenSSL clients (echo through the
 * bridge, ALPN h2, TLS version floor, bad certificate/key errors) and a grpc
 * core client with TLS credentials calling a real rpc_server.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <cmocka.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <pthread.h>
#include <sys/socket.h>
#include <unistd.h>

#include <grpc/byte_buffer.h>
#include <grpc/byte_buffer_reader.h>
#include <grpc/grpc.h>
#include <grpc/grpc_security.h>
#include <grpc/slice.h>
#include <grpc/support/time.h>
#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>

#include "google/protobuf/timestamp.pb-c.h"
#include "net/bridge.h"
#include "net/listener.h"
#include "net/tls.h"
#include "rpc/server.h"

static char g_dir[64], g_cert[128], g_key[128];
static char *g_cert_pem;

static __attribute__((unused)) void write_file(const char *path, const char *data)
{
	FILE *f = fopen(path, "w");
	assert_non_null(f);
	fputs(data, f);
	fclose(f);
}

static char *read_all(const char *path)
{
	FILE *f = fopen(path, "r");
	assert_non_null(f);
	char *buf = calloc(1, 65536);
	size_t n = fread(buf, 1, 65535, f);
	buf[n] = 0;
	fclose(f);
	return buf;
}

/* A self-signed P-256 certificate for localhost / 127.0.0.1. */
static int make_cert(void **state)
{
	(void)state;
	snprintf(g_dir, sizeof(g_dir), "/tmp/tlstest-XXXXXX");
	assert_non_null(mkdtemp(g_dir));
	snprintf(g_cert, sizeof(g_cert), "%s/cert.pem", g_dir);
	snprintf(g_key, sizeof(g_key), "%s/key.pem", g_dir);

	EVP_PKEY *pkey = EVP_EC_gen("prime256v1");
	assert_non_null(pkey);
	X509 *x = X509_new();
	X509_set_version(x, 2);
	ASN1_INTEGER_set(X509_get_serialNumber(x), 1);
	X509_gmtime_adj(X509_getm_notBefore(x), -3600);
	X509_gmtime_adj(X509_getm_notAfter(x), 86400);
	X509_set_pubkey(x, pkey);
	X509_NAME *n = X509_get_subject_name(x);
	X509_NAME_add_entry_by_txt(n, "CN", MBSTRING_ASC, (const unsigned char *)"localhost", -1,
				   -1, 0);
	X509_set_issuer_name(x, n);
	X509V3_CTX ctx;
	X509V3_set_ctx_nodb(&ctx);
	X509V3_set_ctx(&ctx, x, x, NULL, NULL, 0);
	X509_EXTENSION *ext = X509V3_EXT_conf_nid(NULL, &ctx, NID_subject_alt_name,
						  "DNS:localhost,IP:127.0.0.1");
	X509_add_ext(x, ext, -1);
	X509_EXTENSION_free(ext);
	ext = X509V3_EXT_conf_nid(NULL, &ctx, NID_basic_constraints, "critical,CA:TRUE");
	X509_add_ext(x, ext, -1);
	X509_EXTENSION_free(ext);
	assert_true(X509_sign(x, pkey, EVP_sha256()) > 0);

	FILE *f = fopen(g_cert, "w");
	PEM_write_X509(f, x);
	fclose(f);
	f = fopen(g_key, "w");
	PEM_write_PrivateKey(f, pkey, NULL, NULL, 0, NULL, NULL);
	fclose(f);
	X509_free(x);
	EVP_PKEY_free(pkey);
	g_cert_pem = read_all(g_cert);
	return 0;
}

static int cleanup_cert(void **state)
{
	(void)state;
	unlink(g_cert);
	unlink(g_key);
	rmdir(g_dir);
	free(g_cert_pem);
	return 0;
}

static void test_bad_config(void **state)
{
	struct tls_server *t = NULL;
	struct error err = ERROR_INIT;
	char other[160];

	(void)state;
	assert_int_equal(tls_server_new(NULL, g_key, NULL, &t, &err), -1);
	assert_null(t);
	error_release(&err);
	assert_int_equal(tls_server_new("/nonexistent.pem", g_key, NULL, &t, &err), -1);
	assert_int_equal(err.code, STATUS_INVALID_ARGUMENT);
	assert_non_null(strstr(err.message, "/nonexistent.pem"));
	error_release(&err);
	assert_int_equal(tls_server_new(g_cert, NULL, NULL, &t, &err), -1);
	error_release(&err);
	/* A key that does not belong to the certificate. */
	snprintf(other, sizeof(other), "%s/other.pem", g_dir);
	EVP_PKEY *k = EVP_EC_gen("prime256v1");
	FILE *f = fopen(other, "w");
	PEM_write_PrivateKey(f, k, NULL, NULL, 0, NULL, NULL);
	fclose(f);
	EVP_PKEY_free(k);
	assert_int_equal(tls_server_new(g_cert, other, NULL, &t, &err), -1);
	assert_int_equal(err.code, STATUS_INVALID_ARGUMENT);
	error_release(&err);
	unlink(other);
	/* Inline PEM key instead of a path. */
	char *key_pem = read_all(g_key);
	assert_int_equal(tls_server_new(g_cert, "", key_pem, &t, &err), 0);
	tls_server_free(t);
	free(key_pem);
}

/* conn hook: echo everything back on a thread. */
static void *echo_main(void *p)
{
	int fd = (int)(intptr_t)p;
	char buf[4096];
	ssize_t n;
	while ((n = read(fd, buf, sizeof(buf))) > 0)
		if (write(fd, buf, (size_t)n) != n)
			break;
	close(fd);
	return NULL;
}

static volatile int g_last_type = -1;
static char g_last_peer[LISTENER_ADDR_MAX]; /* written before the echo starts */

static void echo_conn(void *ctx, int fd, enum listener_type type, const char *peer)
{
	pthread_t th;
	(void)ctx;
	g_last_type = (int)type;
	snprintf(g_last_peer, sizeof(g_last_peer), "%s", peer);
	pthread_create(&th, NULL, echo_main, (void *)(intptr_t)fd);
	pthread_detach(th);
}

static int port_of(const char *bound)
{
	const char *c = strrchr(bound, ':');
	return c ? atoi(c + 1) : 0;
}

static int tcp_connect(int port)
{
	struct sockaddr_in sa;
	int fd = socket(AF_INET, SOCK_STREAM, 0);
	memset(&sa, 0, sizeof(sa));
	sa.sin_family = AF_INET;
	sa.sin_port = htons((uint16_t)port);
	sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	assert_int_equal(connect(fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
	return fd;
}

/* Client handshake limited to [minv, maxv]; returns SSL or NULL on failure. */
static SSL *client(int port, int minv, int maxv, SSL_CTX **ctx_out, int *fd_out)
{
	SSL_CTX *ctx = SSL_CTX_new(TLS_client_method());
	static const unsigned char alpn[] = { 2, 'h', '2', 8, 'h', 't', 't', 'p', '/', '1', '.', '1' };
	SSL_CTX_set_security_level(ctx, 0);
	SSL_CTX_set_cipher_list(ctx, "DEFAULT:@SECLEVEL=0");
	SSL_CTX_set_min_proto_version(ctx, minv);
	SSL_CTX_set_max_proto_version(ctx, maxv);
	SSL_CTX_set_alpn_protos(ctx, alpn, sizeof(alpn));
	int fd = tcp_connect(port);
	SSL *ssl = SSL_new(ctx);
	SSL_set_fd(ssl, fd);
	*ctx_out = ctx;
	*fd_out = fd;
	if (SSL_connect(ssl) != 1) {
		ERR_clear_error();
		SSL_free(ssl);
		return NULL;
	}
	return ssl;
}

static void test_tls_echo_and_versions(void **state)
{
	struct tls_server *t = NULL;
	struct listener_set *ls = NULL;
	struct error err = ERROR_INIT;
	char *bound = NULL;
	SSL_CTX *ctx;
	int fd;

	(void)state;
	assert_int_equal(tls_server_new(g_cert, g_key, NULL, &t, &err), 0);
	assert_int_equal(listener_set_new(echo_conn, NULL, &ls, &err), 0);
	assert_int_equal(listener_add_tls(ls, "127.0.0.1:0", t, &bound, &err), 0);
	assert_non_null(bound);
	assert_int_equal(listener_start(ls, &err), 0);
	int port = port_of(bound);
	assert_true(port > 0);

	SSL *ssl = client(port, TLS1_2_VERSION, TLS1_3_VERSION, &ctx, &fd);
	assert_non_null(ssl);
	const unsigned char *sel = NULL;
	unsigned int sel_len = 0;
	SSL_get0_alpn_selected(ssl, &sel, &sel_len);
	assert_int_equal(sel_len, 2);
	assert_memory_equal(sel, "h2", 2);
	/* A large payload crosses the bridge in both directions intact. */
	size_t big = 300000;
	unsigned char *out = malloc(big), *in = malloc(big);
	for (size_t i = 0; i < big; i++)
		out[i] = (unsigned char)(i * 7 + 3);
	size_t sent = 0, got = 0;
	while (got < big) {
		if (sent < big) {
			int w = SSL_write(ssl, out + sent, (int)(big - sent > 16384 ? 16384 : big - sent));
			assert_true(w > 0);
			sent += (size_t)w;
		}
		int r = SSL_read(ssl, in + got, (int)(big - got));
		assert_true(r > 0);
		got += (size_t)r;
	}
	assert_memory_equal(in, out, big);
	assert_int_equal(g_last_type, LISTENER_TLS);
	/* the TLS client's address, not the bridge's socketpair */
	assert_memory_equal(g_last_peer, "127.0.0.1:", 10);
	free(in);
	free(out);
	SSL_shutdown(ssl);
	SSL_free(ssl);
	SSL_CTX_free(ctx);
	close(fd);

	/* TLS 1.2 exactly works; TLS 1.1 and older are refused. */
	ssl = client(port, TLS1_2_VERSION, TLS1_2_VERSION, &ctx, &fd);
	assert_non_null(ssl);
	assert_string_equal(SSL_get_version(ssl), "TLSv1.2");
	SSL_free(ssl);
	SSL_CTX_free(ctx);
	close(fd);
	ssl = client(port, TLS1_VERSION, TLS1_1_VERSION, &ctx, &fd);
	assert_null(ssl);
	SSL_CTX_free(ctx);
	close(fd);

	/* A client that never speaks does not block other handshakes. */
	int idle = tcp_connect(port);
	ssl = client(port, TLS1_2_VERSION, TLS1_3_VERSION, &ctx, &fd);
	assert_non_null(ssl);
	SSL_free(ssl);
	SSL_CTX_free(ctx);
	close(fd);

	/* Stopping aborts the silent client's handshake instead of waiting 10 s. */
	struct timespec t0, t1;
	clock_gettime(CLOCK_MONOTONIC, &t0);
	listener_free(ls);
	clock_gettime(CLOCK_MONOTONIC, &t1);
	assert_true(t1.tv_sec - t0.tv_sec < 2);
	close(idle);
	tls_server_free(t);
	free(bound);
}

/* grpc over the TLS listener: a real call through handshake and bridge. */
static int h_echo(struct rpc_call *call, struct error *err)
{
	const Google__Protobuf__Timestamp *req = (const void *)rpc_call_request(call);
	Google__Protobuf__Timestamp resp = GOOGLE__PROTOBUF__TIMESTAMP__INIT;
	resp.seconds = req->seconds * 10;
	return rpc_call_send(call, &resp.base, err);
}

static const struct rpc_method echo_methods[] = {
	{ "Echo", RPC_UNARY, &google__protobuf__timestamp__descriptor,
	  &google__protobuf__timestamp__descriptor, h_echo, RPC_OP_ACCESSOR, RPC_SCOPE_STORAGE },
};
static const struct rpc_service echo_service = { "test.Echo", echo_methods, 1, NULL };

static void grpc_conn(void *ctx, int fd, enum listener_type type, const char *peer)
{
	struct error err = ERROR_INIT;
	(void)type;
	if (rpc_server_add_fd(ctx, fd, &err) < 0)
		error_release(&err);
}

static void test_grpc_over_tls(void **state)
{
	struct rpc_server *srv = NULL;
	struct rpc_server_options o;
	struct tls_server *t = NULL;
	struct listener_set *ls = NULL;
	struct error err = ERROR_INIT;
	char *bound = NULL;

	(void)state;
	memset(&o, 0, sizeof(o));
	o.n_workers = 2;
	assert_int_equal(rpc_server_new(&o, &srv, &err), 0);
	assert_int_equal(rpc_server_register(srv, &echo_service, &err), 0);
	assert_int_equal(rpc_server_start(srv, &err), 0);
	assert_int_equal(tls_server_new(g_cert, g_key, NULL, &t, &err), 0);
	assert_int_equal(listener_set_new(grpc_conn, srv, &ls, &err), 0);
	assert_int_equal(listener_add_tls(ls, "127.0.0.1:0", t, &bound, &err), 0);
	assert_int_equal(listener_start(ls, &err), 0);

	char target[64];
	snprintf(target, sizeof(target), "127.0.0.1:%d", port_of(bound));
	grpc_channel_credentials *cc = grpc_ssl_credentials_create(g_cert_pem, NULL, NULL, NULL);
	grpc_arg arg = { .type = GRPC_ARG_STRING, .key = GRPC_SSL_TARGET_NAME_OVERRIDE_ARG,
			 .value.string = "localhost" };
	grpc_channel_args args = { 1, &arg };
	grpc_channel *ch = grpc_channel_create(target, cc, &args);
	grpc_channel_credentials_release(cc);
	grpc_completion_queue *cq = grpc_completion_queue_create_for_pluck(NULL);

	for (int round = 1; round <= 3; round++) {
		Google__Protobuf__Timestamp req = GOOGLE__PROTOBUF__TIMESTAMP__INIT;
		uint8_t buf[32];
		req.seconds = round;
		size_t n = protobuf_c_message_pack(&req.base, buf);
		grpc_slice s = grpc_slice_from_copied_buffer((const char *)buf, n);
		grpc_byte_buffer *bb = grpc_raw_byte_buffer_create(&s, 1);
		grpc_slice_unref(s);
		grpc_slice m = grpc_slice_from_static_string("/test.Echo/Echo");
		gpr_timespec dl = gpr_time_add(gpr_now(GPR_CLOCK_REALTIME),
					       gpr_time_from_millis(10000, GPR_TIMESPAN));
		grpc_call *c = grpc_channel_create_call(ch, NULL, GRPC_PROPAGATE_DEFAULTS, cq, m, NULL,
							dl, NULL);
		grpc_metadata_array im, tm;
		grpc_metadata_array_init(&im);
		grpc_metadata_array_init(&tm);
		grpc_byte_buffer *resp = NULL;
		grpc_status_code code;
		grpc_slice details;
		grpc_op ops[6];
		char tag;
		memset(ops, 0, sizeof(ops));
		ops[0].op = GRPC_OP_SEND_INITIAL_METADATA;
		ops[1].op = GRPC_OP_SEND_MESSAGE;
		ops[1].data.send_message.send_message = bb;
		ops[2].op = GRPC_OP_SEND_CLOSE_FROM_CLIENT;
		ops[3].op = GRPC_OP_RECV_INITIAL_METADATA;
		ops[3].data.recv_initial_metadata.recv_initial_metadata = &im;
		ops[4].op = GRPC_OP_RECV_MESSAGE;
		ops[4].data.recv_message.recv_message = &resp;
		ops[5].op = GRPC_OP_RECV_STATUS_ON_CLIENT;
		ops[5].data.recv_status_on_client.status = &code;
		ops[5].data.recv_status_on_client.status_details = &details;
		ops[5].data.recv_status_on_client.trailing_metadata = &tm;
		assert_int_equal(grpc_call_start_batch(c, ops, 6, &tag, NULL), GRPC_CALL_OK);
		grpc_event ev = grpc_completion_queue_pluck(cq, &tag,
							    gpr_inf_future(GPR_CLOCK_REALTIME), NULL);
		assert_int_equal(ev.type, GRPC_OP_COMPLETE);
		assert_int_equal(code, GRPC_STATUS_OK);
		assert_non_null(resp);
		grpc_byte_buffer_reader rd;
		grpc_byte_buffer_reader_init(&rd, resp);
		grpc_slice all = grpc_byte_buffer_reader_readall(&rd);
		Google__Protobuf__Timestamp *r = google__protobuf__timestamp__unpack(
			NULL, GRPC_SLICE_LENGTH(all), GRPC_SLICE_START_PTR(all));
		assert_non_null(r);
		assert_int_equal(r->seconds, round * 10);
		google__protobuf__timestamp__free_unpacked(r, NULL);
		grpc_slice_unref(all);
		grpc_byte_buffer_reader_destroy(&rd);
		grpc_byte_buffer_destroy(resp);
		grpc_byte_buffer_destroy(bb);
		grpc_slice_unref(details);
		grpc_metadata_array_destroy(&im);
		grpc_metadata_array_destroy(&tm);
		grpc_call_unref(c);
	}
	grpc_channel_destroy(ch);
	grpc_completion_queue_shutdown(cq);
	grpc_completion_queue_destroy(cq);
	listener_free(ls);
	rpc_server_shutdown(srv, 500);
	rpc_server_free(srv);
	tls_server_free(t);
	free(bound);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_bad_config),
		cmocka_unit_test(test_tls_echo_and_versions),
		cmocka_unit_test(test_grpc_over_tls),
	};
	return cmocka_run_group_tests(tests, make_cert, cleanup_cert);
}
