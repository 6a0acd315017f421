/*
 * gitaly.SmartHTTPService: Git over HTTP (info/refs advertisements,
 * upload-pack over a sidechannel, receive-pack with hooks).
 */
#ifndef SERVICE_SMARTHTTP_H
#define SERVICE_SMARTHTTP_H

#include "rpc/call.h"
#include "service/service.h"

/* The service bound to deps (which must outlive the server). */
const struct rpc_service *smarthttp_service(struct service_deps *deps);

#endif
