/*
 * What the gRPC services need from the rest of the server, and the list of
 * services this server offers. src/cmd/gitaly registers each with the runtime.
 */
#ifndef SERVICE_SERVICE_H
#define SERVICE_SERVICE_H

#include <stddef.h>

#include "config/config.h"
#include "git/locator.h"
#include "rpc/call.h"

struct service_deps {
	const struct config *cfg;
	const struct locator *locator;
	/* For git commands that run hooks (receive-pack, upload-pack with the
	 * pack-objects hook): the core.hooksPath directory of gitaly-hooks
	 * links (hook/install.h), the gitaly-hooks binary, this process's
	 * runtime directory and its internal socket ("<runtime_dir>/sock.d/
	 * intern"). NULL in unit tests that do not run hooks. */
	const char *hooks_dir;
	const char *gitaly_hooks_bin;
	const char *runtime_dir;
	const char *internal_socket;
};

/*
 * Returns the services (health, ServerService, RepositoryService, ...) bound
 * to deps, which must outlive the server. *n receives the count.
 */
const struct rpc_service *services_all(struct service_deps *deps, size_t *n);

#endif
