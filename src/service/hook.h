/*
 * gitaly.HookService: the server side of gitaly-hooks (pre-receive,
 * post-receive, update, reference-transaction).
 */
#ifndef SERVICE_HOOK_H
#define SERVICE_HOOK_H

#include "rpc/call.h"
#include "service/service.h"

/* The service bound to deps (which must outlive the server). */
const struct rpc_service *hook_service(struct service_deps *deps);

#endif
