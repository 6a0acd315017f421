/*
 * gitaly.CommitService: commit, tree and history reads. Registered by
 * src/service/service.c like the other services.
 */
#ifndef SERVICE_COMMIT_H
#define SERVICE_COMMIT_H

#include "rpc/call.h"
#include "service/service.h"

/* The CommitService bound to deps (which must outlive the server). The
 * returned table is static: call once per process. */
const struct rpc_service *commit_service(struct service_deps *deps);

#endif
