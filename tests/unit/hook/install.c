/*
 * hook install: the symlinks git finds through core.hooksPath (and no
 * proc-receive), re-installation over stale links, and the payload
 * environment entry decoding back to what was encoded.
 */
#include <limits.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "hook/install.h"

static void test_install_links(void **state)
{
	char root[] = "/tmp/hook-install-XXXXXX", target[PATH_MAX], path[PATH_MAX];
	struct error err = ERROR_INIT;
	char *dir = NULL;
	(void)state;

	assert_non_null(mkdtemp(root));
	for (int round = 0; round < 2; round++) {
		assert_int_equal(hook_install(root, round ? "/opt/new/gitaly-hooks"
							   : "/opt/old/gitaly-hooks",
					      &dir, &err),
				 0);
		snprintf(path, sizeof(path), "%s/hooks.d", root);
		assert_string_equal(dir, path);
		const char *names[] = { "pre-receive", "post-receive", "update",
					"reference-transaction" };
		for (size_t i = 0; i < 4; i++) {
			snprintf(path, sizeof(path), "%s/%s", dir, names[i]);
			ssize_t n = readlink(path, target, sizeof(target) - 1);
			assert_true(n > 0);
			target[n] = 0;
			assert_string_equal(target, round ? "/opt/new/gitaly-hooks"
							  : "/opt/old/gitaly-hooks");
		}
		snprintf(path, sizeof(path), "%s/proc-receive", dir);
		assert_int_equal(access(path, F_OK), -1);
		if (round) {
			const char *names2[] = { "pre-receive", "post-receive", "update",
						 "reference-transaction" };
			for (size_t i = 0; i < 4; i++) {
				snprintf(path, sizeof(path), "%s/%s", dir, names2[i]);
				unlink(path);
			}
			rmdir(dir);
			rmdir(root);
		}
		free(dir);
	}
}

static void test_payload_env(void **state)
{
	struct hook_payload p, q;
	struct error err = ERROR_INIT;
	char *env = NULL;
	(void)state;

	memset(&p, 0, sizeof(p));
	p.requested_hooks = HOOK_RECEIVE_PACK;
	p.repo.storage_name = "default";
	p.repo.relative_path = "a.git";
	p.repo.gl_repository = "project-3";
	p.internal_socket = "/run/gitaly-1/sock.d/intern";
	p.internal_socket_token = "tok";
	p.has_user_details = 1;
	p.userid = "user-3";
	p.protocol = "http";
	assert_int_equal(hook_payload_env(&p, &env, &err), 0);
	assert_true(!strncmp(env, "GITALY_HOOKS_PAYLOAD=", 21));
	const char *const e[] = { env };
	assert_int_equal(hook_payload_from_env(e, 1, &q, &err), 0);
	assert_int_equal(q.requested_hooks, HOOK_RECEIVE_PACK);
	assert_string_equal(q.repo.gl_repository, "project-3");
	assert_string_equal(q.internal_socket, "/run/gitaly-1/sock.d/intern");
	assert_string_equal(q.userid, "user-3");
	assert_false(hook_payload_is_requested(&q, HOOK_PACK_OBJECTS));
	hook_payload_release(&q);
	free(env);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_install_links),
		cmocka_unit_test(test_payload_env),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
