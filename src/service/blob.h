/*
 * gitaly.BlobService: blob contents by id or by revision and path, blob
 * listings over graph walks or the whole object database, and the LFS
 * pointer queries Rails runs on every push.
 */
#ifndef SERVICE_BLOB_H
#define SERVICE_BLOB_H

#include "rpc/call.h"
#include "service/service.h"

/* The service bound to deps (which must outlive the server). */
const struct rpc_service *blob_service(struct service_deps *deps);

#endif
