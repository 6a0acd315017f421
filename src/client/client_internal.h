/*
 * Private parts of src/client shared by its files: the connection struct and
 * the process-wide sidechannel waiter registry.
 */
#ifndef CLIENT_CLIENT_INTERNAL_H
#define CLIENT_CLIENT_INTERNAL_H

#include <pthread.h>
#include <stdint.h>

#include <grpc/grpc.h>

#include "client/client.h"

/*
 * State shared between a connection and the bridge of its stream 1 (which
 * may outlive the connection by a moment): freed by the last of the two.
 */
struct conn_link {
	int refs;  /* atomic: the connection and the bridge */
	int dead;  /* atomic: gitaly's side of stream 1 ended */
	int calls; /* atomic: calls in flight on the channel */
};

struct gitaly_conn {
	grpc_channel *channel;
	struct conn_link *link;
	struct yamux_session *session; /* NULL for plain connections */
	pthread_t acceptor;
	int has_acceptor;
	char *token;
	char *client_name;
};

/* Counts a call in flight on c (the idle poller leaves such connections
 * to the call's own polling), or, with delta -1, its end. */
void conn_calls_add(struct gitaly_conn *c, int delta);

/* True when stream 1's transport ended on gitaly's side. */
int conn_dead(struct gitaly_conn *c);

/* A call waiting for its sidechannel stream. */
struct sc_waiter {
	int64_t id;
	pthread_mutex_t mu;
	pthread_cond_t cond;
	struct yamux_stream *stream; /* delivered, handshaken stream */
	int call_done;               /* the unary call has returned */
	struct sc_waiter *next;
};

/* Gives w a fresh id and makes it findable. */
void sc_registry_add(struct sc_waiter *w);

/* Removes w (idempotent). After this no stream is delivered to it. */
void sc_registry_remove(struct sc_waiter *w);

/* Hands st to the waiter of id after answering "ok"; returns -1 (st not
 * taken) when no waiter is registered under id or it already has one. */
int sc_registry_deliver(int64_t id, struct yamux_stream *st);

#endif
