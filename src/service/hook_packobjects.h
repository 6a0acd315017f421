/*
 * HookService/PackObjectsHookWithSidechannel and the process-wide
 * pack-objects cache and limiter behind it (src/packcache).
 */
#ifndef SERVICE_HOOK_PACKOBJECTS_H
#define SERVICE_HOOK_PACKOBJECTS_H

#include "rpc/call.h"
#include "service/service.h"

/*
 * Creates the cache (when [pack_objects_cache] enabled) and the
 * [pack_objects_limiting] limiter from deps->cfg, once per process, and
 * publishes gitaly_pack_objects_cache_enabled. Errors: Internal when the
 * cache directory cannot be created.
 */
int hook_packobjects_setup(const struct service_deps *deps, struct error *err);

/* The RPC handler. */
int hook_packobjects_rpc(struct rpc_call *call, struct error *err);

#endif
