/*
 * gitaly.DiffService: CommitDiff, CommitDelta, RawDiff, RawPatch, DiffStats,
 * FindChangedPaths and GetPatchID. Each is git's own output (diff,
 * format-patch, diff-tree, patch-id) parsed and chunked as upstream does.
 */
#ifndef SERVICE_DIFF_H
#define SERVICE_DIFF_H

#include "rpc/call.h"
#include "service/service.h"

/* The service bound to deps (which must outlive it); one per process. */
const struct rpc_service *diff_service(struct service_deps *deps);

#endif
