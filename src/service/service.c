/*
 * The list of gRPC services this server offers, each bound to the shared
 * dependencies (config, locator). src/cmd/gitaly registers them all.
 */
#include "service/service.h"

#include "service/analysis.h"
#include "service/blob.h"
#include "service/commit.h"
#include "service/diff.h"
#include "service/hook.h"
#include "service/ref.h"
#include "service/service_internal.h"
#include "service/smarthttp.h"
#include "service/ssh.h"

enum { SVC_HEALTH, SVC_SERVER, SVC_REPOSITORY, SVC_BLOB, SVC_ANALYSIS, SVC_DIFF, SVC_REF, SVC_COMMIT, SVC_HOOK, SVC_SMARTHTTP, SVC_SSH, SVC_COUNT };

const struct rpc_service *services_all(struct service_deps *deps, size_t *n)
{
	/* One table per process: services_all is called once at startup. */
	static struct rpc_service services[SVC_COUNT];

	service_health_init(&services[SVC_HEALTH], deps);
	service_server_init(&services[SVC_SERVER], deps);
	service_repository_init(&services[SVC_REPOSITORY], deps);
	services[SVC_BLOB] = *blob_service(deps);
	services[SVC_ANALYSIS] = *analysis_service(deps);
	services[SVC_DIFF] = *diff_service(deps);
	services[SVC_REF] = *ref_service(deps);
	services[SVC_COMMIT] = *commit_service(deps);
	services[SVC_HOOK] = *hook_service(deps);
	services[SVC_SMARTHTTP] = *smarthttp_service(deps);
	services[SVC_SSH] = *ssh_service(deps);
	*n = SVC_COUNT;
	return services;
}
