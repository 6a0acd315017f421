/*
 * HookService handlers driven through the fake call: a hook failure is a
 * successful stream whose last message carries exit_status (the custom
 * hook's own code with its output relayed, or 1 with the error on stderr),
 * stdin split over several messages reaches the hooks whole, and a request
 * without a repository is a gRPC InvalidArgument.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>

#include "fake_call.h"
#include "hook.pb-c.h"
#include "hook/install.h"
#include "hook/payload.h"
#include "service/hook.h"

static char tmp[] = "/tmp/hook-svc-XXXXXX";
static char storage_path[256], repo_path[300];
static struct locator_storage storages[1];
static struct locator loc;
static struct config cfg;
static struct service_deps deps;
static const struct rpc_service *svc;
static Gitaly__Repository repo_msg = GITALY__REPOSITORY__INIT;
static char *penv;

static int run_argv(const char *const *argv)
{
	int st = 0;
	pid_t pid = fork();
	if (pid == 0) {
		execv(argv[0], (char *const *)argv);
		_exit(127);
	}
	waitpid(pid, &st, 0);
	return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

static void write_hook(const char *rel, const char *script)
{
	char path[512];
	snprintf(path, sizeof(path), "%s/custom_hooks/%s", repo_path, rel);
	FILE *f = fopen(path, "w");
	assert_non_null(f);
	fprintf(f, "#!/bin/sh\n%s", script);
	fclose(f);
	chmod(path, 0755);
}

static int group_setup(void **state)
{
	struct hook_payload p;
	struct error err = ERROR_INIT;
	char hooks[400];
	(void)state;

	if (!mkdtemp(tmp))
		return -1;
	snprintf(storage_path, sizeof(storage_path), "%s/storage", tmp);
	snprintf(repo_path, sizeof(repo_path), "%s/repo.git", storage_path);
	mkdir(storage_path, 0755);
	const char *init[] = { "/usr/bin/git", "init", "--bare", "-q", repo_path, NULL };
	if (run_argv(init) != 0)
		return -1;
	snprintf(hooks, sizeof(hooks), "%s/custom_hooks", repo_path);
	mkdir(hooks, 0755);
	storages[0].name = "default";
	storages[0].path = storage_path;
	loc.storages = storages;
	loc.n_storages = 1;
	deps.locator = &loc;
	deps.cfg = &cfg; /* no [gitlab] url: every API call fails */
	svc = hook_service(&deps);
	repo_msg.storage_name = "default";
	repo_msg.relative_path = "repo.git";
	repo_msg.gl_repository = "project-1";
	memset(&p, 0, sizeof(p));
	p.requested_hooks = HOOK_RECEIVE_PACK;
	p.has_user_details = 1;
	p.userid = "user-1";
	p.protocol = "web";
	return hook_payload_env(&p, &penv, &err);
}

static int group_teardown(void **state)
{
	(void)state;
	const char *rm[] = { "/bin/rm", "-rf", tmp, NULL };
	run_argv(rm);
	free(penv);
	return 0;
}

static rpc_handler_fn handler(const char *name)
{
	for (size_t i = 0; i < svc->n_methods; i++)
		if (!strcmp(svc->methods[i].name, name))
			return svc->methods[i].handler;
	return NULL;
}

static void release_sent(struct rpc_call *call)
{
	for (size_t i = 0; i < call->n_sent; i++)
		protobuf_c_message_free_unpacked(call->sent[i], NULL);
}

static void test_methods_listed(void **state)
{
	(void)state;
	assert_string_equal(svc->name, "gitaly.HookService");
	assert_int_equal(svc->n_methods, 5);
	assert_non_null(handler("PreReceiveHook"));
	assert_non_null(handler("PostReceiveHook"));
	assert_non_null(handler("UpdateHook"));
	assert_non_null(handler("ReferenceTransactionHook"));
	assert_non_null(handler("PackObjectsHookWithSidechannel"));
}

static void test_update_runs_custom_hook(void **state)
{
	struct rpc_call call;
	struct error err = ERROR_INIT;
	Gitaly__UpdateHookRequest req = GITALY__UPDATE_HOOK_REQUEST__INIT;
	char *env[] = { penv, "PATH=/usr/bin:/bin" };
	char zero[41];
	(void)state;

	memset(zero, '0', 40);
	zero[40] = 0;
	write_hook("update", "echo \"out $1\"\necho \"err $3\" >&2\nexit 4\n");
	req.repository = &repo_msg;
	req.environment_variables = env;
	req.n_environment_variables = 2;
	req.ref.data = (uint8_t *)"refs/heads/main";
	req.ref.len = 15;
	req.old_value = zero;
	req.new_value = zero;
	memset(&call, 0, sizeof(call));
	call.request = &req.base;
	call.data = &deps;
	assert_int_equal(handler("UpdateHook")(&call, &err), 0);
	assert_int_equal(call.n_sent, 3);
	Gitaly__UpdateHookResponse *a = (void *)call.sent[0], *b = (void *)call.sent[1],
				   *c = (void *)call.sent[2];
	assert_memory_equal(a->stdout.data, "out refs/heads/main\n", a->stdout.len);
	assert_int_equal(a->stdout.len, 20);
	assert_null(a->exit_status);
	assert_int_equal(b->stderr.len, strlen("err ") + 41);
	assert_non_null(c->exit_status);
	assert_int_equal(c->exit_status->value, 4);
	assert_int_equal(c->stderr.len, 0);
	release_sent(&call);
}

static void test_pre_receive_gitlab_error_is_exit_1(void **state)
{
	struct rpc_call call;
	struct error err = ERROR_INIT;
	Gitaly__PreReceiveHookRequest req = GITALY__PRE_RECEIVE_HOOK_REQUEST__INIT;
	Gitaly__PreReceiveHookRequest more = GITALY__PRE_RECEIVE_HOOK_REQUEST__INIT;
	ProtobufCMessage *queue[1] = { &more.base };
	char *env[] = { penv };
	(void)state;

	req.repository = &repo_msg;
	req.environment_variables = env;
	req.n_environment_variables = 1;
	req.stdin.data = (uint8_t *)"0000 1111 ";
	req.stdin.len = 10;
	more.stdin.data = (uint8_t *)"refs/heads/main\n";
	more.stdin.len = 16;
	memset(&call, 0, sizeof(call));
	call.request = &req.base;
	call.data = &deps;
	call.recv_queue = queue;
	call.recv_n = 1;
	assert_int_equal(handler("PreReceiveHook")(&call, &err), 0);
	assert_int_equal(call.n_sent, 1);
	Gitaly__PreReceiveHookResponse *r = (void *)call.sent[0];
	assert_non_null(r->exit_status);
	assert_int_equal(r->exit_status->value, 1);
	char *msg = strndup((const char *)r->stderr.data, r->stderr.len);
	assert_string_equal(msg, "GitLab: gitlab: url is not set");
	free(msg);
	release_sent(&call);

	/* Without any ref update the hook fails before asking GitLab. */
	req.stdin.len = 0;
	memset(&call, 0, sizeof(call));
	call.request = &req.base;
	call.data = &deps;
	assert_int_equal(handler("PreReceiveHook")(&call, &err), 0);
	r = (void *)call.sent[call.n_sent - 1];
	msg = strndup((const char *)r->stderr.data, r->stderr.len);
	assert_string_equal(msg, "hook got no reference updates");
	free(msg);
	release_sent(&call);
}

static void test_missing_repository_is_invalid_argument(void **state)
{
	struct rpc_call call;
	struct error err = ERROR_INIT;
	Gitaly__PostReceiveHookRequest req = GITALY__POST_RECEIVE_HOOK_REQUEST__INIT;
	(void)state;

	memset(&call, 0, sizeof(call));
	call.request = &req.base;
	call.data = &deps;
	assert_int_equal(handler("PostReceiveHook")(&call, &err), -1);
	assert_int_equal(err.code, STATUS_INVALID_ARGUMENT);
	assert_int_equal(call.n_sent, 0);
	error_release(&err);
}

static void test_reference_transaction_ok(void **state)
{
	struct rpc_call call;
	struct error err = ERROR_INIT;
	Gitaly__ReferenceTransactionHookRequest req = GITALY__REFERENCE_TRANSACTION_HOOK_REQUEST__INIT;
	char *env[] = { penv };
	(void)state;

	req.repository = &repo_msg;
	req.environment_variables = env;
	req.n_environment_variables = 1;
	req.state = GITALY__REFERENCE_TRANSACTION_HOOK_REQUEST__STATE__COMMITTED;
	memset(&call, 0, sizeof(call));
	call.request = &req.base;
	call.data = &deps;
	assert_int_equal(handler("ReferenceTransactionHook")(&call, &err), 0);
	assert_int_equal(call.n_sent, 1);
	Gitaly__ReferenceTransactionHookResponse *r = (void *)call.sent[0];
	assert_non_null(r->exit_status);
	assert_int_equal(r->exit_status->value, 0);
	release_sent(&call);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_methods_listed),
		cmocka_unit_test(test_update_runs_custom_hook),
		cmocka_unit_test(test_pre_receive_gitlab_error_is_exit_1),
		cmocka_unit_test(test_missing_repository_is_invalid_argument),
		cmocka_unit_test(test_reference_transaction_ok),
	};
	return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
