/*
 * ServerService and Health handlers over a fake call: ServerInfo (versions,
 * readable/writeable probe, filesystem id from .gitaly-metadata, replication
 * factor), DiskStatistics against statvfs, ClockSynced against a fake NTP
 * server on 127.0.0.1 (synced, drifted, bad durations, unreachable host),
 * ReadinessCheck, Health Check and Watch.
 */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "health.pb-c.h"
#include "server.pb-c.h"
#include "git/storage.h"
#include "service/server_internal.h"
#include "service/service.h"
#include "service/util.h"
#include "fake_call.h"

static char tmp[] = "/tmp/svc-server-XXXXXX";
static char path_a[128], path_b[128];
static struct config_storage cfg_storages[2];
static struct config cfg;
static struct locator loc;
static struct service_deps deps;
static const struct rpc_service *all;
static size_t n_all;
/* Watch tests: the fake call reports cancellation after this many sends. */
static int cancel_after;

static const struct rpc_service *service(const char *name)
{
	for (size_t i = 0; i < n_all; i++)
		if (!strcmp(all[i].name, name))
			return &all[i];
	fail_msg("no service %s", name);
	return NULL;
}

static int invoke(const char *svc, const char *name, const ProtobufCMessage *req,
		  struct rpc_call *call, struct error *err)
{
	const struct rpc_service *s = service(svc);

	for (size_t i = 0; i < s->n_methods; i++) {
		if (strcmp(s->methods[i].name, name))
			continue;
		memset(call, 0, sizeof(*call));
		call->cancel_after_sends = cancel_after;
		call->request = req;
		call->data = s->data;
		return s->methods[i].handler(call, err);
	}
	fail_msg("no method %s", name);
	return -1;
}

static int group_setup(void **state)
{
	(void)state;
	if (!mkdtemp(tmp))
		return -1;
	snprintf(path_a, sizeof(path_a), "%s/a", tmp);
	snprintf(path_b, sizeof(path_b), "%s/b-missing", tmp);
	if (mkdir(path_a, 0755) < 0)
		return -1;
	cfg_storages[0].name = "default";
	cfg_storages[0].path = path_a;
	cfg_storages[1].name = "other";
	cfg_storages[1].path = path_b;
	cfg.storages = cfg_storages;
	cfg.n_storages = 2;
	deps.cfg = &cfg;
	deps.locator = &loc;
	all = services_all(&deps, &n_all);
	return 0;
}

static int group_teardown(void **state)
{
	(void)state;
	return service_remove_all(tmp);
}

static void test_server_info(void **state)
{
	Gitaly__ServerInfoRequest req = GITALY__SERVER_INFO_REQUEST__INIT;
	Gitaly__ServerInfoResponse *resp;
	struct rpc_call call;
	struct error err = ERROR_INIT;
	char meta[256], probe[256];
	FILE *f;
	struct stat st;

	(void)state;
	snprintf(meta, sizeof(meta), "%s/.gitaly-metadata", path_a);
	f = fopen(meta, "w");
	assert_non_null(f);
	fputs("{\"gitaly_filesystem_id\":\"4f5c1b4e-1111-4222-8333-944455556666\"}\n", f);
	fclose(f);

	assert_int_equal(invoke("gitaly.ServerService", "ServerInfo", &req.base, &call, &err), 0);
	resp = (Gitaly__ServerInfoResponse *)call.sent[0];
	assert_string_equal(resp->server_version, GITALY_VERSION);
	assert_true(strlen(resp->git_version) >= 4);
	assert_true(resp->git_version[0] >= '2');
	assert_int_equal(resp->n_storage_statuses, 2);
	assert_string_equal(resp->storage_statuses[0]->storage_name, "default");
	assert_true(resp->storage_statuses[0]->readable);
	assert_true(resp->storage_statuses[0]->writeable);
	assert_string_equal(resp->storage_statuses[0]->filesystem_id,
			    "4f5c1b4e-1111-4222-8333-944455556666");
	assert_int_equal(resp->storage_statuses[0]->replication_factor, 1);
	assert_string_equal(resp->storage_statuses[0]->fs_type, storage_fs_type(path_a));
	assert_string_not_equal(resp->storage_statuses[0]->fs_type, "");
	assert_string_equal(resp->storage_statuses[1]->storage_name, "other");
	assert_false(resp->storage_statuses[1]->readable);
	assert_false(resp->storage_statuses[1]->writeable);
	assert_string_equal(resp->storage_statuses[1]->filesystem_id, "");
	fake_call_reset(&call);
	/* The probe file is gone again. */
	snprintf(probe, sizeof(probe), "%s/+testWrite", path_a);
	assert_int_equal(stat(probe, &st), -1);
}

static void test_disk_statistics(void **state)
{
	Gitaly__DiskStatisticsRequest req = GITALY__DISK_STATISTICS_REQUEST__INIT;
	Gitaly__DiskStatisticsResponse *resp;
	struct rpc_call call;
	struct error err = ERROR_INIT;
	struct statvfs st;
	int64_t used;

	(void)state;
	assert_int_equal(statvfs(path_a, &st), 0);
	used = ((int64_t)st.f_blocks - (int64_t)st.f_bfree) * (int64_t)st.f_bsize;
	assert_int_equal(invoke("gitaly.ServerService", "DiskStatistics", &req.base, &call, &err),
			 0);
	resp = (Gitaly__DiskStatisticsResponse *)call.sent[0];
	assert_int_equal(resp->n_storage_statuses, 2);
	assert_string_equal(resp->storage_statuses[0]->storage_name, "default");
	assert_true(resp->storage_statuses[0]->available > 0);
	/* Used may move a little between the two statvfs calls. */
	assert_true(llabs(resp->storage_statuses[0]->used - used) < 64 * 1024 * 1024);
	assert_string_equal(resp->storage_statuses[1]->storage_name, "other");
	assert_int_equal(resp->storage_statuses[1]->available, 0);
	assert_int_equal(resp->storage_statuses[1]->used, 0);
	fake_call_reset(&call);
}

/* One-shot fake NTP server answering with the given offset. */
struct fake_ntp {
	int fd, port;
	int64_t offset_ns;
	pthread_t thread;
};

static void put_ts(uint8_t *p, int64_t ns)
{
	uint64_t sec = (uint64_t)(ns / 1000000000LL) + 2208988800ULL;
	uint64_t frac = ((uint64_t)(ns % 1000000000LL) << 32) / 1000000000ULL;

	for (int i = 0; i < 4; i++) {
		p[i] = (uint8_t)(sec >> (24 - 8 * i));
		p[4 + i] = (uint8_t)(frac >> (24 - 8 * i));
	}
}

static void *ntp_serve(void *arg)
{
	struct fake_ntp *f = arg;
	uint8_t req[48], resp[48] = { 0 };
	struct sockaddr_in from;
	socklen_t fromlen = sizeof(from);
	struct timespec ts;
	int64_t t;

	if (recvfrom(f->fd, req, sizeof(req), 0, (struct sockaddr *)&from, &fromlen) < 48)
		return NULL;
	clock_gettime(CLOCK_REALTIME, &ts);
	t = (int64_t)ts.tv_sec * 1000000000LL + ts.tv_nsec + f->offset_ns;
	resp[0] = 4 << 3 | 4;
	resp[1] = 1;
	put_ts(resp + 16, t - 1000000000LL);
	memcpy(resp + 24, req + 40, 8);
	put_ts(resp + 32, t);
	put_ts(resp + 40, t);
	sendto(f->fd, resp, sizeof(resp), 0, (struct sockaddr *)&from, fromlen);
	return NULL;
}

static void ntp_start(struct fake_ntp *f, int64_t offset_ns)
{
	struct sockaddr_in addr = { 0 };
	socklen_t len = sizeof(addr);

	f->offset_ns = offset_ns;
	f->fd = socket(AF_INET, SOCK_DGRAM, 0);
	addr.sin_family = AF_INET;
	addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	assert_int_equal(bind(f->fd, (struct sockaddr *)&addr, sizeof(addr)), 0);
	assert_int_equal(getsockname(f->fd, (struct sockaddr *)&addr, &len), 0);
	f->port = ntohs(addr.sin_port);
	assert_int_equal(pthread_create(&f->thread, NULL, ntp_serve, f), 0);
}

static void ntp_stop(struct fake_ntp *f)
{
	pthread_join(f->thread, NULL);
	close(f->fd);
}

static int clock_synced(int64_t offset_ns, int64_t threshold_s, int *synced, struct error *err)
{
	Gitaly__ClockSyncedRequest req = GITALY__CLOCK_SYNCED_REQUEST__INIT;
	Google__Protobuf__Duration d = GOOGLE__PROTOBUF__DURATION__INIT;
	struct fake_ntp f;
	struct rpc_call call;
	char host[64];
	int ret;

	ntp_start(&f, offset_ns);
	snprintf(host, sizeof(host), "127.0.0.1:%d", f.port);
	d.seconds = threshold_s;
	req.ntp_host = host;
	req.drift_threshold = &d;
	ret = invoke("gitaly.ServerService", "ClockSynced", &req.base, &call, err);
	ntp_stop(&f);
	if (ret == 0)
		*synced = ((Gitaly__ClockSyncedResponse *)call.sent[0])->synced;
	fake_call_reset(&call);
	return ret;
}

static void test_clock_synced(void **state)
{
	struct error err = ERROR_INIT;
	int synced = -1;

	(void)state;
	assert_int_equal(clock_synced(0, 2, &synced, &err), 0);
	assert_int_equal(synced, 1);
	assert_int_equal(clock_synced(5000000000LL, 2, &synced, &err), 0);
	assert_int_equal(synced, 0);
	assert_int_equal(clock_synced(-5000000000LL, 2, &synced, &err), 0);
	assert_int_equal(synced, 0);
	assert_int_equal(clock_synced(-5000000000LL, 10, &synced, &err), 0);
	assert_int_equal(synced, 1);
}

static void test_clock_synced_errors(void **state)
{
	Gitaly__ClockSyncedRequest req = GITALY__CLOCK_SYNCED_REQUEST__INIT;
	Google__Protobuf__Duration d = GOOGLE__PROTOBUF__DURATION__INIT;
	struct rpc_call call;
	struct error err = ERROR_INIT;
	int synced = 0;

	(void)state;
	/* No threshold. */
	assert_int_equal(invoke("gitaly.ServerService", "ClockSynced", &req.base, &call, &err),
			 -1);
	assert_int_equal(err.code, STATUS_INVALID_ARGUMENT);
	assert_string_equal(err.message, "invalid nil Duration");
	error_release(&err);

	req.drift_threshold = &d;
	d.seconds = 1;
	d.nanos = -5;
	assert_int_equal(invoke("gitaly.ServerService", "ClockSynced", &req.base, &call, &err),
			 -1);
	assert_int_equal(err.code, STATUS_INVALID_ARGUMENT);
	assert_non_null(strstr(err.message, "has seconds and nanos with different signs"));
	error_release(&err);
	d.nanos = 1000000000;
	assert_int_equal(invoke("gitaly.ServerService", "ClockSynced", &req.base, &call, &err),
			 -1);
	assert_non_null(strstr(err.message, "has out-of-range nanos"));
	error_release(&err);

	/* Unreachable host: Internal, worded as upstream. */
	assert_int_equal(server_clock_synced("[::1", 1000000000LL, 200, &synced, &err), -1);
	assert_int_equal(err.code, STATUS_INTERNAL);
	assert_non_null(strstr(err.message, "query ntp host [::1: "));
	error_release(&err);
}

static void test_readiness(void **state)
{
	Gitaly__ReadinessCheckRequest req = GITALY__READINESS_CHECK_REQUEST__INIT;
	Gitaly__ReadinessCheckResponse *resp;
	struct rpc_call call;
	struct error err = ERROR_INIT;

	(void)state;
	assert_int_equal(invoke("gitaly.ServerService", "ReadinessCheck", &req.base, &call, &err),
			 0);
	resp = (Gitaly__ReadinessCheckResponse *)call.sent[0];
	assert_int_equal(resp->result_case, GITALY__READINESS_CHECK_RESPONSE__RESULT_OK_RESPONSE);
	fake_call_reset(&call);
}

static void test_health(void **state)
{
	Grpc__Health__V1__HealthCheckRequest req = GRPC__HEALTH__V1__HEALTH_CHECK_REQUEST__INIT;
	struct rpc_call call;
	struct error err = ERROR_INIT;

	(void)state;
	assert_int_equal(invoke("grpc.health.v1.Health", "Check", &req.base, &call, &err), 0);
	assert_int_equal(((Grpc__Health__V1__HealthCheckResponse *)call.sent[0])->status,
			 GRPC__HEALTH__V1__HEALTH_CHECK_RESPONSE__SERVING_STATUS__SERVING);
	fake_call_reset(&call);

	req.service = "gitaly.Nope";
	assert_int_equal(invoke("grpc.health.v1.Health", "Check", &req.base, &call, &err), -1);
	assert_int_equal(err.code, STATUS_NOT_FOUND);
	assert_string_equal(err.message, "unknown service");
	error_release(&err);

	/* Watch: one SERVING message, then it holds until cancelled. */
	req.service = "";
	cancel_after = 1;
	assert_int_equal(invoke("grpc.health.v1.Health", "Watch", &req.base, &call, &err), -1);
	cancel_after = 0;
	assert_int_equal(err.code, STATUS_CANCELLED);
	assert_int_equal(call.n_sent, 1);
	assert_int_equal(((Grpc__Health__V1__HealthCheckResponse *)call.sent[0])->status,
			 GRPC__HEALTH__V1__HEALTH_CHECK_RESPONSE__SERVING_STATUS__SERVING);
	error_release(&err);
	fake_call_reset(&call);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_server_info),
		cmocka_unit_test(test_disk_statistics),
		cmocka_unit_test(test_clock_synced),
		cmocka_unit_test(test_clock_synced_errors),
		cmocka_unit_test(test_readiness),
		cmocka_unit_test(test_health),
	};

	return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
