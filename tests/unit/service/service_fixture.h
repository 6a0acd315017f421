/*
 * The fixture of service tests that drive handlers directly: one storage
 * "default" in a fresh temporary directory, the real locator and config
 * over it, one service found by name among services_all, and a runner that
 * calls a method's handler with a fake call (any `struct rpc_call` with
 * `request` and `data`, e.g. fake_call.h's, included before this).
 *
 * Define FIXTURE_TMP (the mkdtemp template) and FIXTURE_SERVICE (the full
 * service name) before including it from one test file per binary. It
 * defines tmp, storage_path, fixture_svc, method(), invoke() and the cmocka
 * group_setup/group_teardown.
 */
#ifndef TESTS_SERVICE_FIXTURE_H
#define TESTS_SERVICE_FIXTURE_H

#include <string.h>
#include <sys/stat.h>

#include "service/service.h"
#include "service/util.h"

static char tmp[] = FIXTURE_TMP;
static char storage_path[128];
static struct locator_storage fixture_storages[1];
static struct locator fixture_loc;
static struct config fixture_cfg;
static struct config_storage fixture_cfg_storages[1];
static struct service_deps fixture_deps;
static const struct rpc_service *fixture_svc;

static const struct rpc_method *method(const char *name)
{
	for (size_t i = 0; i < fixture_svc->n_methods; i++)
		if (!strcmp(fixture_svc->methods[i].name, name))
			return &fixture_svc->methods[i];
	fail_msg("no method %s", name);
	return NULL;
}

/* Runs a handler on a cleared call; returns its result with err filled. */
static int invoke(const char *name, const ProtobufCMessage *req, struct rpc_call *call,
		  struct error *err)
{
	const struct rpc_method *m = method(name);

	memset(call, 0, sizeof(*call));
	call->request = req;
	call->data = fixture_svc->data;
	assert_non_null(m->handler);
	return m->handler(call, err);
}

static int group_setup(void **state)
{
	size_t n = 0;
	const struct rpc_service *all;

	(void)state;
	if (!mkdtemp(tmp))
		return -1;
	snprintf(storage_path, sizeof(storage_path), "%s/storage", tmp);
	if (mkdir(storage_path, 0755) < 0)
		return -1;
	fixture_storages[0].name = "default";
	fixture_storages[0].path = storage_path;
	fixture_loc.storages = fixture_storages;
	fixture_loc.n_storages = 1;
	fixture_cfg_storages[0].name = "default";
	fixture_cfg_storages[0].path = storage_path;
	fixture_cfg.storages = fixture_cfg_storages;
	fixture_cfg.n_storages = 1;
	fixture_deps.cfg = &fixture_cfg;
	fixture_deps.locator = &fixture_loc;
	all = services_all(&fixture_deps, &n);
	for (size_t i = 0; i < n; i++)
		if (!strcmp(all[i].name, FIXTURE_SERVICE))
			fixture_svc = &all[i];
	return fixture_svc ? 0 : -1;
}

static int group_teardown(void **state)
{
	(void)state;
	return service_remove_all(tmp);
}

#endif
