/*
 * Smart HTTP in front of Gitaly, the way Workhorse does it, on libmicrohttpd
 * with a thread per connection (handlers block on gRPC and yamux):
 * GET .../info/refs answers from InfoRefsUploadPack/ReceivePack, POST
 * .../git-upload-pack buffers the (possibly gzip'd, possibly chunked) body,
 * writes it into the sidechannel of PostUploadPackWithSidechannel and
 * streams the sidechannel back, POST .../git-receive-pack streams the body
 * into PostReceivePack and its answer back. A request's state is refcounted
 * between the request and its streaming response, which may outlive it.
 */
#include "gateway/gateway.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <errno.h>
#include <netdb.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include <microhttpd.h>
#include <zlib.h>

#include "base/log.h"
#include "base/strbuf.h"
#include "net/sidechannel.h"
#include "smarthttp.pb-c.h"

#define RECEIVE_CHUNK (64u * 1024u)
#define INFLATE_CHUNK (64u * 1024u)
#define FIRST_READ (64u * 1024u)

enum req_kind { REQ_INFO_UPLOAD, REQ_INFO_RECEIVE, REQ_UPLOAD_PACK, REQ_RECEIVE_PACK };

static const char *const kind_names[] = { "info/refs upload-pack", "info/refs receive-pack",
					  "git-upload-pack", "git-receive-pack" };

/* Status of the response last queued on this thread (for the request log;
 * libmicrohttpd runs each connection on its own thread). */
static __thread unsigned queued_status;

static enum MHD_Result queue(struct MHD_Connection *c, unsigned status, struct MHD_Response *resp)
{
	queued_status = status;
	return MHD_queue_response(c, status, resp);
}

struct req {
	struct gateway_config *cfg;
	enum req_kind kind;
	int refs;
	pthread_mutex_t mu;
	struct gateway_repo repo;
	struct gateway_conn *conn;
	char *gl_id;
	char *gl_username;
	char git_protocol[16];
	char correlation_id[65]; /* from X-Request-Id, as Workhorse does; "" = random */
	char remote_ip[64];      /* the HTTP client's IP, sent as remote_ip */
	int gzip;
	z_stream z;
	int z_init, z_end;
	uint64_t body_total;
	struct strbuf body; /* upload-pack request, decompressed */
	struct gitaly_call *call;
	int call_failed;
	struct gitaly_sc_call *sc;
	struct yamux_stream *st;
	char *first; /* upload-pack: the first bytes of the answer */
	size_t first_len, first_off;
	/* info/refs: the first response message, received before answering */
	ProtobufCMessage *first_msg;
	int call_done_early; /* info/refs: the call ended without a message */
	/* a received response message not yet fully written */
	ProtobufCMessage *pending;
	const uint8_t *pend_data;
	size_t pend_len, pend_off;
	/* an error found while reading the body: answered at its end */
	unsigned err_status;
	char *err_msg;
	struct timespec start;
	const char *method;
	int answered; /* a response was queued by the first call */
};

static void req_unref(struct req *r)
{
	int last;

	pthread_mutex_lock(&r->mu);
	last = --r->refs == 0;
	pthread_mutex_unlock(&r->mu);
	if (!last)
		return;
	if (r->pending)
		protobuf_c_message_free_unpacked(r->pending, NULL);
	if (r->first_msg)
		protobuf_c_message_free_unpacked(r->first_msg, NULL);
	gitaly_call_free(r->call);
	gitaly_sc_call_free(r->sc); /* also frees r->st */
	if (r->conn)
		gateway_conn_put(r->repo.storage, r->conn);
	gateway_repo_release(&r->repo);
	if (r->z_init)
		inflateEnd(&r->z);
	strbuf_release(&r->body);
	free(r->gl_id);
	free(r->gl_username);
	free(r->err_msg);
	free(r->first);
	pthread_mutex_destroy(&r->mu);
	free(r);
}

static void req_fail(struct req *r, unsigned status, const char *msg)
{
	if (r->err_status)
		return;
	r->err_status = status;
	r->err_msg = strdup(msg);
}

static enum MHD_Result respond_text(struct MHD_Connection *c, unsigned status, const char *msg)
{
	struct MHD_Response *resp;
	enum MHD_Result ret;
	struct strbuf sb = STRBUF_INIT;
	size_t len;
	char *body;

	strbuf_addf(&sb, "%s\n", msg ? msg : "error");
	body = strbuf_detach(&sb, &len);
	resp = MHD_create_response_from_buffer(len, body, MHD_RESPMEM_MUST_FREE);
	if (!resp)
		return MHD_NO;
	MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE, "text/plain; charset=utf-8");
	MHD_add_response_header(resp, MHD_HTTP_HEADER_CACHE_CONTROL, "no-cache");
	ret = queue(c, status, resp);
	MHD_destroy_response(resp);
	return ret;
}

static enum MHD_Result respond_auth(struct req *r, struct MHD_Connection *c)
{
	struct MHD_Response *resp;
	enum MHD_Result ret;
	static char body[] = "HTTP Basic: Access denied\n";

	resp = MHD_create_response_from_buffer(strlen(body), body, MHD_RESPMEM_PERSISTENT);
	if (!resp)
		return MHD_NO;
	MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE, "text/plain; charset=utf-8");
	queued_status = MHD_HTTP_UNAUTHORIZED;
	ret = MHD_queue_basic_auth_fail_response(c, r->cfg->realm, resp);
	MHD_destroy_response(resp);
	return ret;
}

/* The user-visible text of a gRPC error. */
static enum MHD_Result respond_error(struct MHD_Connection *c, const struct error *e)
{
	unsigned status = gateway_http_status(e->code);
	const char *msg = e->message ? e->message : "error";

	if (status == 500) {
		log_msg(LOG_ERROR, "gitaly-gateway: %s", msg);
		if (e->code == STATUS_UNAVAILABLE)
			msg = "gitaly unavailable";
	}
	return respond_text(c, status, msg);
}

/* Splits url into the repository path and the endpoint kind. */
static int route(struct req *r, const char *method, const char *url, struct MHD_Connection *c,
		 struct error *err)
{
	static const struct {
		const char *suffix;
		const char *method;
		int kind; /* -1: info/refs, kind by service */
	} routes[] = {
		{ "/info/refs", "GET", -1 },
		{ "/git-upload-pack", "POST", REQ_UPLOAD_PACK },
		{ "/git-receive-pack", "POST", REQ_RECEIVE_PACK },
	};
	size_t ulen = strlen(url);

	for (size_t i = 0; i < sizeof(routes) / sizeof(routes[0]); i++) {
		size_t sl = strlen(routes[i].suffix);
		if (ulen <= sl || strcmp(url + ulen - sl, routes[i].suffix))
			continue;
		if (strcmp(method, routes[i].method))
			return error_set(err, STATUS_UNIMPLEMENTED, "method not allowed");
		if (routes[i].kind < 0) {
			const char *svc = MHD_lookup_connection_value(c, MHD_GET_ARGUMENT_KIND,
								      "service");
			if (svc && !strcmp(svc, "git-upload-pack"))
				r->kind = REQ_INFO_UPLOAD;
			else if (svc && !strcmp(svc, "git-receive-pack"))
				r->kind = REQ_INFO_RECEIVE;
			else
				return error_set(err, STATUS_FAILED_PRECONDITION,
						 "dumb HTTP is not supported; use git 1.6.6 or newer");
		} else {
			r->kind = routes[i].kind;
		}
		return gateway_repo_resolve(r->cfg, url, ulen - sl, &r->repo, err);
	}
	return error_set(err, STATUS_NOT_FOUND, "not found");
}

/* Basic auth; sets gl_id/gl_username. 0: go on, -1: answer 401. */
static int authenticate(struct req *r, struct MHD_Connection *c)
{
	char *pass = NULL, *user;
	const struct gateway_user *u;
	int push = r->kind == REQ_INFO_RECEIVE || r->kind == REQ_RECEIVE_PACK;
	int ret = -1;

	user = MHD_basic_auth_get_username_password(c, &pass);
	if (user) {
		u = gateway_user_check(r->cfg, user, pass);
		if (!u)
			goto out;
		r->gl_id = strdup(u->gl_id);
		r->gl_username = strdup(u->name);
		ret = r->gl_id && r->gl_username ? 0 : -1;
		goto out;
	}
	if (r->cfg->auth_required || (push && !*r->cfg->anonymous_gl_id))
		goto out;
	r->gl_id = strdup(r->cfg->anonymous_gl_id);
	r->gl_username = strdup("");
	ret = r->gl_id && r->gl_username ? 0 : -1;
out:
	if (user)
		MHD_free(user);
	if (pass) {
		memset(pass, 0, strlen(pass));
		MHD_free(pass);
	}
	return ret;
}

/* ---- info/refs ------------------------------------------------------------ */

/* Response reader for server-streamed data messages (InfoRefs, PostReceivePack). */
static ssize_t stream_reader(void *cls, uint64_t pos, char *buf, size_t max)
{
	struct req *r = cls;
	struct error err = ERROR_INIT;
	ssize_t ret;

	while (!r->pending || r->pend_off >= r->pend_len) {
		ProtobufCMessage *m = NULL;
		if (r->pending)
			protobuf_c_message_free_unpacked(r->pending, NULL);
		r->pending = NULL;
		if (gitaly_call_recv(r->call, r->kind == REQ_RECEIVE_PACK
						      ? &gitaly__post_receive_pack_response__descriptor
						      : &gitaly__info_refs_response__descriptor,
				     &m, &err) < 0 ||
		    !m) {
			if (gitaly_call_finish(r->call, &err) < 0 || error_is_set(&err)) {
				log_msg(LOG_ERROR, "gitaly-gateway: %s %s: %s", r->method,
					r->repo.relative_path, err.message ? err.message : "");
				ret = MHD_CONTENT_READER_END_WITH_ERROR;
			} else {
				ret = MHD_CONTENT_READER_END_OF_STREAM;
			}
			error_release(&err);
			return ret;
		}
		r->pending = m;
		r->pend_off = 0;
		if (r->kind == REQ_RECEIVE_PACK) {
			r->pend_data = ((Gitaly__PostReceivePackResponse *)m)->data.data;
			r->pend_len = ((Gitaly__PostReceivePackResponse *)m)->data.len;
		} else {
			r->pend_data = ((Gitaly__InfoRefsResponse *)m)->data.data;
			r->pend_len = ((Gitaly__InfoRefsResponse *)m)->data.len;
		}
	}
	ret = (ssize_t)(r->pend_len - r->pend_off < max ? r->pend_len - r->pend_off : max);
	memcpy(buf, r->pend_data + r->pend_off, (size_t)ret);
	r->pend_off += (size_t)ret;
	return ret;
}

static void response_done(void *cls)
{
	req_unref(cls);
}

/*
 * Waits for the first response message (or the call's end) so errors become
 * HTTP statuses, then answers 200 with the rest streamed.
 */
static enum MHD_Result respond_stream(struct req *r, struct MHD_Connection *c,
				      const char *content_type)
{
	struct error err = ERROR_INIT;
	struct MHD_Response *resp;
	enum MHD_Result ret;
	ProtobufCMessage *m = NULL;
	const ProtobufCMessageDescriptor *d = r->kind == REQ_RECEIVE_PACK
						      ? &gitaly__post_receive_pack_response__descriptor
						      : &gitaly__info_refs_response__descriptor;

	if (r->first_msg) {
		m = r->first_msg;
		r->first_msg = NULL;
	} else if (r->call_done_early) {
		m = NULL;
	} else if (gitaly_call_recv(r->call, d, &m, &err) < 0 || !m) {
		if (gitaly_call_finish(r->call, &err) < 0 || error_is_set(&err)) {
			ret = respond_error(c, &err);
			error_release(&err);
			return ret;
		}
	}
	if (m) {
		r->pending = m;
		r->pend_off = 0;
		if (r->kind == REQ_RECEIVE_PACK) {
			r->pend_data = ((Gitaly__PostReceivePackResponse *)m)->data.data;
			r->pend_len = ((Gitaly__PostReceivePackResponse *)m)->data.len;
		} else {
			r->pend_data = ((Gitaly__InfoRefsResponse *)m)->data.data;
			r->pend_len = ((Gitaly__InfoRefsResponse *)m)->data.len;
		}
	}
	resp = MHD_create_response_from_callback(MHD_SIZE_UNKNOWN, 64 * 1024, stream_reader, r,
						 response_done);
	if (!resp)
		return MHD_NO;
	pthread_mutex_lock(&r->mu);
	r->refs++;
	pthread_mutex_unlock(&r->mu);
	MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE, content_type);
	MHD_add_response_header(resp, MHD_HTTP_HEADER_CACHE_CONTROL, "no-cache");
	ret = queue(c, MHD_HTTP_OK, resp);
	MHD_destroy_response(resp);
	return ret;
}

static struct gitaly_call_opts call_opts(struct req *r)
{
	struct gitaly_call_opts o = { 0 };
	o.timeout_ms = r->cfg->call_timeout_ms;
	o.correlation_id = r->correlation_id;
	o.remote_ip = r->remote_ip;
	return o;
}

/*
 * After a call failed with err: if gitaly had already closed the pooled
 * connection (so nothing of the request was processed), takes a freshly
 * dialled one and returns 1 (err cleared): the caller sends again.
 */
static int redial_if_dead(struct req *r, struct error *err)
{
	struct error derr = ERROR_INIT;

	if (err->code != STATUS_UNAVAILABLE || !gitaly_conn_broken(r->conn->conn))
		return 0;
	log_msg(LOG_INFO, "gitaly-gateway: connection to gitaly was closed, dialling again");
	gateway_conn_put(r->repo.storage, r->conn);
	r->conn = NULL;
	if (gateway_conn_get(r->repo.storage, &r->conn, &derr) < 0) {
		error_move(err, &derr);
		return 0;
	}
	error_release(err);
	return 1;
}

static enum MHD_Result handle_info_refs(struct req *r, struct MHD_Connection *c)
{
	Gitaly__InfoRefsRequest req = GITALY__INFO_REFS_REQUEST__INIT;
	Gitaly__Repository repo;
	struct gitaly_call_opts o = call_opts(r);
	struct error err = ERROR_INIT;
	const char *method = r->kind == REQ_INFO_UPLOAD
				     ? "/gitaly.SmartHTTPService/InfoRefsUploadPack"
				     : "/gitaly.SmartHTTPService/InfoRefsReceivePack";
	enum MHD_Result ret;

	gateway_repo_message(&r->repo, &repo);
	req.repository = &repo;
	req.git_protocol = r->git_protocol;
	req.git_config_options = r->cfg->git_config;
	req.n_git_config_options = r->cfg->n_git_config;
	for (int attempt = 0;; attempt++) {
		ProtobufCMessage *m = NULL;

		if (gitaly_call_start(r->conn->conn, method, &o, &r->call, &err) == 0 &&
		    gitaly_call_send(r->call, &req.base, 1, &err) == 0 &&
		    gitaly_call_recv(r->call, &gitaly__info_refs_response__descriptor, &m,
				     &err) == 0 &&
		    m) {
			r->first_msg = m;
			break;
		}
		if (r->call && gitaly_call_finish(r->call, &err) == 0 && !error_is_set(&err)) {
			r->call_done_early = 1; /* an empty answer */
			break;
		}
		if (!error_is_set(&err))
			error_set(&err, STATUS_INTERNAL, "call failed");
		gitaly_call_free(r->call);
		r->call = NULL;
		if (attempt == 0 && redial_if_dead(r, &err))
			continue;
		ret = respond_error(c, &err);
		error_release(&err);
		return ret;
	}
	return respond_stream(r, c,
			      r->kind == REQ_INFO_UPLOAD
				      ? "application/x-git-upload-pack-advertisement"
				      : "application/x-git-receive-pack-advertisement");
}

/* ---- request bodies --------------------------------------------------------- */

/* Sends the gathered receive-pack body bytes as one message. */
static void flush_receive_body(struct req *r)
{
	Gitaly__PostReceivePackRequest m = GITALY__POST_RECEIVE_PACK_REQUEST__INIT;
	struct error err = ERROR_INIT;

	if (!r->body.len || r->call_failed)
		return;
	m.data.data = (uint8_t *)r->body.buf;
	m.data.len = r->body.len;
	if (gitaly_call_send(r->call, &m.base, 0, &err) < 0) {
		/* the call ended; its status is read at the end */
		r->call_failed = 1;
		error_release(&err);
	}
	strbuf_reset(&r->body);
}

/* Takes len decompressed body bytes. */
static void body_bytes(struct req *r, const uint8_t *p, size_t len)
{
	if (!len || r->err_status)
		return;
	r->body_total += len;
	if (r->kind == REQ_UPLOAD_PACK) {
		if (r->body_total > r->cfg->max_upload_pack_body ||
		    strbuf_add(&r->body, p, len) < 0)
			req_fail(r, 413, "request body too large");
		return;
	}
	if (r->cfg->max_receive_pack_body && r->body_total > r->cfg->max_receive_pack_body) {
		req_fail(r, 413, "request body too large");
		gitaly_call_cancel(r->call);
		return;
	}
	/*
	 * receive-pack: HTTP hands the body over in pieces of ~16 KiB; they are
	 * gathered into messages of RECEIVE_CHUNK bytes (the rest at the end of
	 * the body), since each message costs gitaly a decode and a write into
	 * receive-pack. A push is one request and one answer: nothing waits
	 * for a partial message.
	 */
	while (len && !r->call_failed) {
		size_t room = RECEIVE_CHUNK - r->body.len;
		size_t n = len < room ? len : room;

		if (strbuf_add(&r->body, p, n) < 0) {
			req_fail(r, 500, "out of memory");
			gitaly_call_cancel(r->call);
			return;
		}
		p += n;
		len -= n;
		if (r->body.len == RECEIVE_CHUNK)
			flush_receive_body(r);
	}
}

static void body_chunk(struct req *r, const char *data, size_t len)
{
	uint8_t out[INFLATE_CHUNK];

	if (r->err_status)
		return;
	if (!r->gzip) {
		body_bytes(r, (const uint8_t *)data, len);
		return;
	}
	if (r->z_end) {
		return; /* trailing bytes after the gzip stream are ignored */
	}
	r->z.next_in = (Bytef *)data;
	r->z.avail_in = (uInt)len;
	while (r->z.avail_in && !r->z_end && !r->err_status) {
		int zr;
		r->z.next_out = out;
		r->z.avail_out = sizeof(out);
		zr = inflate(&r->z, Z_NO_FLUSH);
		if (zr != Z_OK && zr != Z_STREAM_END && zr != Z_BUF_ERROR) {
			req_fail(r, 400, "invalid gzip request body");
			return;
		}
		body_bytes(r, out, sizeof(out) - r->z.avail_out);
		if (zr == Z_STREAM_END)
			r->z_end = 1;
		if (zr == Z_BUF_ERROR && r->z.avail_out)
			break;
	}
}

/* ---- upload-pack ---------------------------------------------------------------- */

static ssize_t sidechannel_reader(void *cls, uint64_t pos, char *buf, size_t max)
{
	struct req *r = cls;
	struct error err = ERROR_INIT;
	size_t n = 0;

	if (r->first_off < r->first_len) {
		n = r->first_len - r->first_off < max ? r->first_len - r->first_off : max;
		memcpy(buf, r->first + r->first_off, n);
		r->first_off += n;
		return (ssize_t)n;
	}
	if (r->first_len == 0 && r->first_off == 0 && r->first) {
		r->first_off = 1; /* the answer was empty: end of stream */
		return MHD_CONTENT_READER_END_OF_STREAM;
	}
	if (yamux_stream_read(r->st, buf, max, &n, &err) < 0) {
		log_msg(LOG_ERROR, "gitaly-gateway: upload-pack %s: read sidechannel: %s",
			r->repo.relative_path, err.message ? err.message : "");
		error_release(&err);
		return MHD_CONTENT_READER_END_WITH_ERROR;
	}
	if (n)
		return (ssize_t)n;
	if (gitaly_sc_call_finish(r->sc, NULL, &err) < 0) {
		log_msg(LOG_ERROR, "gitaly-gateway: upload-pack %s: %s", r->repo.relative_path,
			err.message ? err.message : "");
		error_release(&err);
		return MHD_CONTENT_READER_END_WITH_ERROR;
	}
	return MHD_CONTENT_READER_END_OF_STREAM;
}

static enum MHD_Result finish_upload_pack(struct req *r, struct MHD_Connection *c)
{
	Gitaly__PostUploadPackWithSidechannelRequest req =
		GITALY__POST_UPLOAD_PACK_WITH_SIDECHANNEL_REQUEST__INIT;
	Gitaly__Repository repo;
	struct gitaly_call_opts o = call_opts(r);
	struct error err = ERROR_INIT;
	struct sidechannel_io io;
	struct MHD_Response *resp;
	enum MHD_Result ret;

	gateway_repo_message(&r->repo, &repo);
	req.repository = &repo;
	req.git_protocol = r->git_protocol;
	req.git_config_options = r->cfg->git_config;
	req.n_git_config_options = r->cfg->n_git_config;
	if (gitaly_sc_call_start(r->conn->conn,
				 "/gitaly.SmartHTTPService/PostUploadPackWithSidechannel", &req.base,
				 &gitaly__post_upload_pack_with_sidechannel_response__descriptor, &o,
				 &r->sc, &err) < 0 &&
	    (!redial_if_dead(r, &err) ||
	     gitaly_sc_call_start(r->conn->conn,
				  "/gitaly.SmartHTTPService/PostUploadPackWithSidechannel", &req.base,
				  &gitaly__post_upload_pack_with_sidechannel_response__descriptor, &o,
				  &r->sc, &err) < 0))
		goto fail;
	if (gitaly_sc_call_stream(r->sc, &r->st, &err) < 0)
		goto fail;
	/* Workhorse's order: the whole request, the flush, then the answer */
	sidechannel_io_from_stream(&io, r->st);
	if (sidechannel_write_frames(&io, r->body.buf, r->body.len, &err) < 0 ||
	    sidechannel_write_flush(&io, &err) < 0) {
		struct error e2 = ERROR_INIT;
		if (gitaly_sc_call_finish(r->sc, NULL, &e2) < 0)
			error_move(&err, &e2);
		error_release(&e2);
		goto fail;
	}
	strbuf_release(&r->body);
	/* like Workhorse, a failure before the first byte is still an HTTP error */
	r->first = malloc(FIRST_READ);
	if (!r->first) {
		error_set(&err, STATUS_INTERNAL, "out of memory");
		goto fail;
	}
	if (yamux_stream_read(r->st, r->first, FIRST_READ, &r->first_len, &err) < 0) {
		/* a failed call drops its sidechannel: its status says why */
		struct error cerr = ERROR_INIT;
		if (gitaly_sc_call_finish(r->sc, NULL, &cerr) < 0)
			error_move(&err, &cerr);
		error_release(&cerr);
		goto fail;
	}
	if (!r->first_len) {
		if (gitaly_sc_call_finish(r->sc, NULL, &err) < 0)
			goto fail;
	}
	resp = MHD_create_response_from_callback(MHD_SIZE_UNKNOWN, 64 * 1024, sidechannel_reader,
						 r, response_done);
	if (!resp)
		return MHD_NO;
	pthread_mutex_lock(&r->mu);
	r->refs++;
	pthread_mutex_unlock(&r->mu);
	MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE,
				"application/x-git-upload-pack-result");
	MHD_add_response_header(resp, MHD_HTTP_HEADER_CACHE_CONTROL, "no-cache");
	ret = queue(c, MHD_HTTP_OK, resp);
	MHD_destroy_response(resp);
	return ret;
fail:
	ret = respond_error(c, &err);
	error_release(&err);
	return ret;
}

/* ---- receive-pack --------------------------------------------------------------- */

static int start_receive_pack(struct req *r, struct error *err)
{
	Gitaly__PostReceivePackRequest m = GITALY__POST_RECEIVE_PACK_REQUEST__INIT;
	Gitaly__Repository repo;
	struct gitaly_call_opts o = call_opts(r);

	gateway_repo_message(&r->repo, &repo);
	m.repository = &repo;
	m.gl_id = r->gl_id;
	m.gl_username = r->gl_username;
	m.gl_repository = r->repo.relative_path;
	m.git_protocol = r->git_protocol;
	m.git_config_options = r->cfg->git_config;
	m.n_git_config_options = r->cfg->n_git_config;
	if (gitaly_call_start(r->conn->conn, "/gitaly.SmartHTTPService/PostReceivePack", &o,
			      &r->call, err) < 0 &&
	    (!redial_if_dead(r, err) ||
	     gitaly_call_start(r->conn->conn, "/gitaly.SmartHTTPService/PostReceivePack", &o,
			       &r->call, err) < 0))
		return -1;
	if (gitaly_call_send(r->call, &m.base, 0, err) < 0) {
		error_release(err);
		r->call_failed = 1;
	}
	return 0;
}

static enum MHD_Result finish_receive_pack(struct req *r, struct MHD_Connection *c)
{
	struct error err = ERROR_INIT;

	flush_receive_body(r);
	gitaly_call_close_send(r->call, &err);
	error_release(&err);
	return respond_stream(r, c, "application/x-git-receive-pack-result");
}

/* ---- the handler ---------------------------------------------------------------- */

/* The HTTP client's IP address (no port), "" when unknown. */
static void client_ip(struct MHD_Connection *c, char *out, size_t n)
{
	const union MHD_ConnectionInfo *ci =
		MHD_get_connection_info(c, MHD_CONNECTION_INFO_CLIENT_ADDRESS);
	const struct sockaddr *sa = ci ? ci->client_addr : NULL;

	out[0] = '\0';
	if (sa && sa->sa_family == AF_INET)
		inet_ntop(AF_INET, &((const struct sockaddr_in *)sa)->sin_addr, out,
			  (socklen_t)n);
	else if (sa && sa->sa_family == AF_INET6)
		inet_ntop(AF_INET6, &((const struct sockaddr_in6 *)sa)->sin6_addr, out,
			  (socklen_t)n);
}

static enum MHD_Result first_call(struct gateway_config *cfg, struct MHD_Connection *c,
				  const char *url, const char *method, void **con_cls)
{
	struct error err = ERROR_INIT;
	struct req *r;
	const char *proto, *enc, *rid;
	enum MHD_Result ret;

	r = calloc(1, sizeof(*r));
	if (!r)
		return MHD_NO;
	r->cfg = cfg;
	client_ip(c, r->remote_ip, sizeof(r->remote_ip));
	r->refs = 1;
	r->method = method;
	pthread_mutex_init(&r->mu, NULL);
	clock_gettime(CLOCK_MONOTONIC, &r->start);
	strbuf_init(&r->body, (size_t)cfg->max_upload_pack_body + 1);
	*con_cls = r;
	if (route(r, method, url, c, &err) < 0) {
		/* the client's mistake: 405, 404, or 400 */
		ret = respond_text(c,
				   err.code == STATUS_UNIMPLEMENTED ? MHD_HTTP_METHOD_NOT_ALLOWED
				   : err.code == STATUS_NOT_FOUND   ? MHD_HTTP_NOT_FOUND
								    : MHD_HTTP_BAD_REQUEST,
				   err.message);
		goto out;
	}
	if (authenticate(r, c) < 0) {
		ret = respond_auth(r, c);
		goto out;
	}
	rid = MHD_lookup_connection_value(c, MHD_HEADER_KIND, "X-Request-Id");
	if (rid && *rid && strlen(rid) < sizeof(r->correlation_id) &&
	    strspn(rid, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_.") ==
		    strlen(rid))
		snprintf(r->correlation_id, sizeof(r->correlation_id), "%s", rid);
	proto = MHD_lookup_connection_value(c, MHD_HEADER_KIND, "Git-Protocol");
	if (proto && (!strcmp(proto, "version=2") || !strcmp(proto, "version=1")))
		snprintf(r->git_protocol, sizeof(r->git_protocol), "%s", proto);
	enc = MHD_lookup_connection_value(c, MHD_HEADER_KIND, MHD_HTTP_HEADER_CONTENT_ENCODING);
	/* gzip, or zlib ("deflate" in HTTP): inflate tells them apart */
	if (enc && (!strcasecmp(enc, "gzip") || !strcasecmp(enc, "x-gzip") ||
		    !strcasecmp(enc, "deflate"))) {
		r->gzip = 1;
		if (inflateInit2(&r->z, 15 + 32) != Z_OK) {
			ret = respond_text(c, 500, "inflate init failed");
			goto out;
		}
		r->z_init = 1;
	} else if (enc && strcasecmp(enc, "identity")) {
		ret = respond_text(c, 415, "unsupported Content-Encoding");
		goto out;
	}
	if (gateway_conn_get(r->repo.storage, &r->conn, &err) < 0) {
		ret = respond_error(c, &err);
		goto out;
	}
	if (r->kind == REQ_INFO_UPLOAD || r->kind == REQ_INFO_RECEIVE) {
		ret = handle_info_refs(r, c);
		goto out;
	}
	if (r->kind == REQ_RECEIVE_PACK && start_receive_pack(r, &err) < 0) {
		ret = respond_error(c, &err);
		goto out;
	}
	error_release(&err);
	return MHD_YES; /* the body follows */
out:
	r->answered = 1;
	error_release(&err);
	return ret;
}

static enum MHD_Result handler(void *cls, struct MHD_Connection *c, const char *url,
			       const char *method, const char *version, const char *upload_data,
			       size_t *upload_data_size, void **con_cls)
{
	struct req *r = *con_cls;

	if (!r)
		return first_call(cls, c, url, method, con_cls);
	if (*upload_data_size) {
		if (!r->answered)
			body_chunk(r, upload_data, *upload_data_size);
		*upload_data_size = 0;
		return MHD_YES;
	}
	if (r->answered)
		return MHD_YES;
	r->answered = 1;
	if (!r->err_status && r->gzip && !r->z_end)
		req_fail(r, 400, "truncated gzip request body");
	if (r->err_status) {
		if (r->call)
			gitaly_call_cancel(r->call);
		return respond_text(c, r->err_status, r->err_msg);
	}
	if (r->kind == REQ_UPLOAD_PACK)
		return finish_upload_pack(r, c);
	return finish_receive_pack(r, c);
}

static void completed(void *cls, struct MHD_Connection *c, void **con_cls,
		      enum MHD_RequestTerminationCode toe)
{
	struct req *r = *con_cls;

	if (!r)
		return;
	if (toe != MHD_REQUEST_TERMINATED_COMPLETED_OK) {
		/* client gone or error: stop gitaly's side too */
		if (r->call)
			gitaly_call_cancel(r->call);
		if (r->st)
			yamux_stream_reset(r->st);
	}
	{
		struct timespec now;
		clock_gettime(CLOCK_MONOTONIC, &now);
		log_msg(LOG_INFO, "gitaly-gateway: %s %s %s:%s %u %.3fs%s", r->method,
			r->repo.relative_path ? kind_names[r->kind] : "-",
			r->repo.storage ? r->repo.storage->name : "-",
			r->repo.relative_path ? r->repo.relative_path : "-", queued_status,
			(double)(now.tv_sec - r->start.tv_sec) +
				(double)(now.tv_nsec - r->start.tv_nsec) / 1e9,
			toe == MHD_REQUEST_TERMINATED_COMPLETED_OK ? "" : " (aborted)");
		queued_status = 0;
	}
	*con_cls = NULL;
	req_unref(r);
}

static int parse_listen(const char *addr, struct sockaddr_storage *ss, socklen_t *len,
			struct error *err)
{
	struct addrinfo hints, *res = NULL;
	char host[256];
	const char *colon = strrchr(addr, ':');
	size_t hl;
	int rc;

	if (!colon)
		return error_set(err, STATUS_INVALID_ARGUMENT, "listen_addr needs host:port: %s",
				 addr);
	hl = (size_t)(colon - addr);
	if (hl >= 2 && addr[0] == '[' && addr[hl - 1] == ']') {
		addr++;
		hl -= 2;
	}
	if (hl >= sizeof(host))
		return error_set(err, STATUS_INVALID_ARGUMENT, "listen_addr too long");
	memcpy(host, addr, hl);
	host[hl] = 0;
	memset(&hints, 0, sizeof(hints));
	hints.ai_socktype = SOCK_STREAM;
	hints.ai_flags = AI_PASSIVE;
	rc = getaddrinfo(hl ? host : NULL, colon + 1, &hints, &res);
	if (rc)
		return error_set(err, STATUS_INVALID_ARGUMENT, "listen_addr %s: %s", addr,
				 gai_strerror(rc));
	memcpy(ss, res->ai_addr, res->ai_addrlen);
	*len = res->ai_addrlen;
	freeaddrinfo(res);
	return 0;
}

int gateway_http_serve(struct gateway_config *cfg, struct error *err)
{
	struct sockaddr_storage ss;
	socklen_t sl;
	struct MHD_Daemon *d;
	const union MHD_DaemonInfo *info;
	unsigned flags = MHD_USE_THREAD_PER_CONNECTION | MHD_USE_INTERNAL_POLLING_THREAD |
			 MHD_USE_ERROR_LOG;
	sigset_t set;
	int sig;

	if (parse_listen(cfg->listen_addr, &ss, &sl, err) < 0)
		return -1;
	if (ss.ss_family == AF_INET6)
		flags |= MHD_USE_IPv6;
	gitaly_client_init();
	d = MHD_start_daemon(flags, 0, NULL, NULL, handler, cfg, MHD_OPTION_SOCK_ADDR,
			     (struct sockaddr *)&ss, MHD_OPTION_NOTIFY_COMPLETED, completed, cfg,
			     MHD_OPTION_CONNECTION_TIMEOUT, (unsigned)600,
			     MHD_OPTION_CONNECTION_MEMORY_LIMIT, (size_t)(256 * 1024), MHD_OPTION_END);
	if (!d)
		return error_set(err, STATUS_UNAVAILABLE, "cannot listen on %s", cfg->listen_addr);
	info = MHD_get_daemon_info(d, MHD_DAEMON_INFO_BIND_PORT);
	log_msg(LOG_INFO, "gitaly-gateway: listening on http %s (port %u)", cfg->listen_addr,
		info ? (unsigned)info->port : 0);
	sigemptyset(&set);
	sigaddset(&set, SIGINT);
	sigaddset(&set, SIGTERM);
	sigwait(&set, &sig);
	log_msg(LOG_INFO, "gitaly-gateway: stopping on signal %d", sig);
	MHD_stop_daemon(d);
	return 0;
}
