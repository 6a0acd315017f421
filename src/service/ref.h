/*
 * gitaly.RefService: branches, tags and other references of a repository
 * (listing, lookups, containment, tag messages and signatures) plus the two
 * reference mutators, UpdateReferences and DeleteRefs.
 */
#ifndef SERVICE_REF_H
#define SERVICE_REF_H

#include "rpc/call.h"
#include "service/service.h"

/*
 * The RefService method table bound to deps (which must outlive the
 * server). Every method of ref.proto is listed. Returns a static object.
 */
const struct rpc_service *ref_service(struct service_deps *deps);

#endif
