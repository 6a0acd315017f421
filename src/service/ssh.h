/*
 * gitaly.SSHService: Git over SSH as gitlab-shell drives it (upload-pack
 * over a sidechannel or a bidi stream, receive-pack with hooks,
 * upload-archive).
 */
#ifndef SERVICE_SSH_H
#define SERVICE_SSH_H

#include "rpc/call.h"
#include "service/service.h"

/* The service bound to deps (which must outlive the server). */
const struct rpc_service *ssh_service(struct service_deps *deps);

#endif
