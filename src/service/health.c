/*
 * grpc.health.v1.Health as grpc-go's stock health server answers it for
 * Gitaly: the overall service "" is SERVING, any other name is unknown
 * (Check: NotFound "unknown service"; Watch: SERVICE_UNKNOWN). Watch sends
 * the current status once and then holds the stream open until the client
 * cancels, since the status never changes while the server runs.
 */
#include <stdint.h>
#include <time.h>

#include "health.pb-c.h"
#include "service/service_internal.h"

#define WATCH_POLL_MS 100

static int health_check(struct rpc_call *call, struct error *err)
{
	const Grpc__Health__V1__HealthCheckRequest *req =
		(const Grpc__Health__V1__HealthCheckRequest *)rpc_call_request(call);
	Grpc__Health__V1__HealthCheckResponse resp = GRPC__HEALTH__V1__HEALTH_CHECK_RESPONSE__INIT;

	if (req && req->service && req->service[0])
		return error_set(err, STATUS_NOT_FOUND, "unknown service");
	resp.status = GRPC__HEALTH__V1__HEALTH_CHECK_RESPONSE__SERVING_STATUS__SERVING;
	return rpc_call_send(call, &resp.base, err);
}

static int health_watch(struct rpc_call *call, struct error *err)
{
	const Grpc__Health__V1__HealthCheckRequest *req =
		(const Grpc__Health__V1__HealthCheckRequest *)rpc_call_request(call);
	Grpc__Health__V1__HealthCheckResponse resp = GRPC__HEALTH__V1__HEALTH_CHECK_RESPONSE__INIT;
	struct timespec pause = { 0, WATCH_POLL_MS * 1000000L }, now;

	if (req && req->service && req->service[0])
		resp.status = GRPC__HEALTH__V1__HEALTH_CHECK_RESPONSE__SERVING_STATUS__SERVICE_UNKNOWN;
	else
		resp.status = GRPC__HEALTH__V1__HEALTH_CHECK_RESPONSE__SERVING_STATUS__SERVING;
	/* delivered now: the call then waits for the client to go away */
	if (rpc_call_send(call, &resp.base, err) < 0 || rpc_call_flush(call, err) < 0)
		return -1;
	while (!rpc_call_cancelled(call))
		nanosleep(&pause, NULL);
	clock_gettime(CLOCK_MONOTONIC, &now);
	if (rpc_call_deadline_ms(call) != INT64_MAX &&
	    (int64_t)now.tv_sec * 1000 + now.tv_nsec / 1000000 >= rpc_call_deadline_ms(call))
		return error_set(err, STATUS_DEADLINE_EXCEEDED, "context deadline exceeded");
	return error_set(err, STATUS_CANCELLED, "context canceled");
}

static const struct rpc_method health_methods[] = {
	{ "Check", RPC_UNARY, &grpc__health__v1__health_check_request__descriptor,
	  &grpc__health__v1__health_check_response__descriptor, health_check, RPC_OP_UNKNOWN,
	  RPC_SCOPE_STORAGE },
	{ "Watch", RPC_SERVER_STREAM, &grpc__health__v1__health_check_request__descriptor,
	  &grpc__health__v1__health_check_response__descriptor, health_watch, RPC_OP_UNKNOWN,
	  RPC_SCOPE_STORAGE },
};

void service_health_init(struct rpc_service *svc, struct service_deps *deps)
{
	svc->name = "grpc.health.v1.Health";
	svc->methods = health_methods;
	svc->n_methods = sizeof(health_methods) / sizeof(health_methods[0]);
	svc->data = deps;
}
