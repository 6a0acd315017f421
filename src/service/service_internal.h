/*
 * Private glue between service.c (the list of services) and the files that
 * implement each service: every service file fills in its rpc_service.
 */
#ifndef SERVICE_SERVICE_INTERNAL_H
#define SERVICE_SERVICE_INTERNAL_H

#include "rpc/call.h"
#include "service/service.h"

void service_health_init(struct rpc_service *svc, struct service_deps *deps);
void service_server_init(struct rpc_service *svc, struct service_deps *deps);
void service_repository_init(struct rpc_service *svc, struct service_deps *deps);

#endif
