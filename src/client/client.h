/*
 * A Gitaly client in C, dialing the way Workhorse and gitlab-shell do: one
 * connection per address ("unix:/path", "tcp://host:port", "tls://host:port"),
 * multiplexed with the "backchannel" preface and a yamux client session whose
 * stream 1 carries plain HTTP/2 gRPC (grpc core over a socketpair bridge);
 * server-opened streams are sidechannels, matched to waiting calls by the id
 * sent in `gitaly-sidechannel-id`. Calls are grpc core client calls on a
 * per-call pluck queue, so one thread may send while another receives.
 * Every call carries the v2 token (when configured), a correlation id and
 * `x-gitlab-client-name`.
 */
#ifndef CLIENT_CLIENT_H
#define CLIENT_CLIENT_H

#include <stddef.h>
#include <stdint.h>

#include <protobuf-c/protobuf-c.h>

#include "base/error.h"
#include "net/yamux.h"

struct gitaly_conn;
struct gitaly_call;
struct gitaly_sc_call;

struct gitaly_conn_opts {
	const char *token;       /* v2 auth secret; NULL or "" for none */
	const char *ca_file;     /* tls: PEM bundle to verify against; NULL: system CAs */
	const char *client_name; /* x-gitlab-client-name; NULL: "gitaly-client" */
	int plain;               /* 1: no backchannel/yamux (no sidechannels possible) */
};

/* Extra per-call settings; a NULL pointer means the defaults. */
struct gitaly_call_opts {
	const char *correlation_id; /* NULL: a random one */
	int64_t timeout_ms;         /* <= 0: no deadline */
	const char *sidechannel_id; /* internal: set by the sidechannel calls */
	const char *remote_ip;      /* the end user's IP ("remote_ip" metadata, as
				     * Workhorse and gitlab-shell send it); NULL/"": none */
};

/* Initialises grpc core once per process (idempotent, thread-safe). */
void gitaly_client_init(void);

/*
 * Dials address and, unless opts->plain, runs the backchannel preface and
 * the yamux client session with its stream-accepting thread. Errors:
 * InvalidArgument for an unknown address form, Unavailable when the
 * connection or the TLS handshake fails.
 */
int gitaly_conn_dial(const char *address, const struct gitaly_conn_opts *opts,
		     struct gitaly_conn **out, struct error *err);

/* Same on an already connected stream socket (taken over, even on error). */
int gitaly_conn_from_fd(int fd, const struct gitaly_conn_opts *opts, struct gitaly_conn **out,
			struct error *err);

/* True when the connection can no longer be used (yamux session ended). */
int gitaly_conn_broken(struct gitaly_conn *c);

/* Closes the channel and the session and frees everything (NULL ignored).
 * Every call on the connection must have been freed first. */
void gitaly_conn_free(struct gitaly_conn *c);

/*
 * Starts a call of method ("/gitaly.SmartHTTPService/InfoRefsUploadPack").
 * The initial metadata goes out with the first gitaly_call_send.
 */
int gitaly_call_start(struct gitaly_conn *c, const char *method,
		      const struct gitaly_call_opts *opts, struct gitaly_call **out,
		      struct error *err);

/*
 * Sends one message; last != 0 half-closes our side in the same batch.
 * Fails (Unavailable "call ended") once the server finished the call; the
 * status is then available from gitaly_call_finish.
 */
int gitaly_call_send(struct gitaly_call *call, const ProtobufCMessage *msg, int last,
		     struct error *err);

/* Half-closes our side (no more messages). Idempotent. */
int gitaly_call_close_send(struct gitaly_call *call, struct error *err);

/*
 * Receives the next message, unpacked with desc; *out is NULL at the end of
 * the server's stream (then call gitaly_call_finish for the status). Free it
 * with protobuf_c_message_free_unpacked(*out, NULL).
 */
int gitaly_call_recv(struct gitaly_call *call, const ProtobufCMessageDescriptor *desc,
		     ProtobufCMessage **out, struct error *err);

/* Waits for the final status; -1 with err = the server's code and message. */
int gitaly_call_finish(struct gitaly_call *call, struct error *err);

/* Cancels the call from any thread; pending operations fail. */
void gitaly_call_cancel(struct gitaly_call *call);

/* Cancels the call if it has not finished and frees it (NULL ignored). */
void gitaly_call_free(struct gitaly_call *call);

/* One request, one response (*resp to be freed by the caller). */
int gitaly_unary(struct gitaly_conn *c, const char *method, const ProtobufCMessage *req,
		 const ProtobufCMessageDescriptor *resp_desc, const struct gitaly_call_opts *opts,
		 ProtobufCMessage **resp, struct error *err);

/*
 * Sidechannel calls (PostUploadPackWithSidechannel and friends): registers a
 * waiter under a fresh id, starts the unary call with that id in its
 * metadata and runs it on a background thread.
 */
int gitaly_sc_call_start(struct gitaly_conn *c, const char *method, const ProtobufCMessage *req,
			 const ProtobufCMessageDescriptor *resp_desc,
			 const struct gitaly_call_opts *opts, struct gitaly_sc_call **out,
			 struct error *err);

/*
 * Waits until the server opens the sidechannel (the stream is handshaken;
 * it stays owned by sc) or the call ends without one (-1 with the call's
 * error, or Internal "callback de-registered without having run" if it
 * succeeded without using the sidechannel).
 */
int gitaly_sc_call_stream(struct gitaly_sc_call *sc, struct yamux_stream **out,
			  struct error *err);

/* Waits for the call's end; *resp (may be NULL) receives the response. */
int gitaly_sc_call_finish(struct gitaly_sc_call *sc, ProtobufCMessage **resp, struct error *err);

/* Cancels what still runs, resets the stream, frees sc (NULL ignored). */
void gitaly_sc_call_free(struct gitaly_sc_call *sc);

/* Splits "unix:/p", "tcp://h:p", "tls://h:p" (exposed for tests). kind gets
 * 'u', 't' or 's'; host (or path) and port are malloc'd. */
int gitaly_address_parse(const char *address, char *kind, char **host, char **port,
			 struct error *err);

#endif
