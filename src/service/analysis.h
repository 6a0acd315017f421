/*
 * gitaly.AnalysisService: CheckBlobsGenerated, which tells GitLab which
 * files of a merge request diff are generated (and get collapsed).
 */
#ifndef SERVICE_ANALYSIS_H
#define SERVICE_ANALYSIS_H

#include <stddef.h>
#include <stdint.h>

#include "rpc/call.h"
#include "service/service.h"

/* The service bound to deps (which must outlive the server). */
const struct rpc_service *analysis_service(struct service_deps *deps);

/* How much of a blob the generated-file check looks at (upstream: 2048). */
#define ANALYSIS_CONTENT_PREFIX 2048

/*
 * go-enry's IsGenerated (the Go port of linguist's generated.rb that
 * upstream calls): true when the path or the first bytes of the content
 * mark the file as generated. path is not NUL-terminated; content should be
 * at most ANALYSIS_CONTENT_PREFIX bytes, as upstream passes.
 */
int analysis_is_generated(const char *path, size_t path_len, const uint8_t *content,
			  size_t len);

#endif
