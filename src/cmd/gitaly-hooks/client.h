/*
 * The small grpc core client gitaly-hooks uses for its calls to gitaly's
 * internal socket (main.c), shared with the pack-objects mode.
 */
#ifndef GITALY_HOOKS_CLIENT_H
#define GITALY_HOOKS_CLIENT_H

#include <grpc/grpc.h>
#include <protobuf-c/protobuf-c.h>

#include "hook/payload.h"

struct client {
	grpc_channel *ch;
	grpc_completion_queue *cq;
	grpc_call *call;
	grpc_metadata md[32];
	size_t n_md;
};

/* Waits for the batch tagged tag; 0 when it succeeded. */
int wait_tag(struct client *c, void *tag);
/* Adds request metadata (skipped when value is empty); before start_call. */
void add_md(struct client *c, const char *key, const char *value);
/* Dials the payload's internal socket, starts the call and sends the
 * metadata (token, user, correlation, feature flags, and any added). */
int start_call(struct client *c, const struct hook_payload *p, const char *method);
/* Sends one message, half-closing when close is set. */
int send_msg(struct client *c, const ProtobufCMessage *m, int close);
void client_close(struct client *c);

/* The pack-objects hook: args are what follows `git` on the command line.
 * Returns the exit code; the grpc call is left open (the caller exits
 * right away). */
int pack_objects_hook(int argc, char **argv, const struct hook_payload *p);

#endif
