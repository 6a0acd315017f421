/*
 * hooks payload: a payload encoded the way upstream writes it decodes to
 * the same fields, the repository is a protojson string, requested_hooks 0
 * means every hook but proc-receive, and bad input is refused.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <jansson.h>
#include <openssl/evp.h>

#include "hook/payload.h"

static char *b64(const char *s)
{
	size_t l = strlen(s);
	char *out = malloc((l + 2) / 3 * 4 + 1);
	EVP_EncodeBlock((unsigned char *)out, (const unsigned char *)s, (int)l);
	return out;
}

static void test_decode_upstream_form(void **state)
{
	struct hook_payload p;
	struct error err = ERROR_INIT;
	(void)state;

	char *v = b64("{\"requested_hooks\":15,\"feature_flags_with_value\":[{\"flag\":{\"name\":\"x\","
		      "\"on_by_default\":true},\"enabled\":false}],"
		      "\"repository\":\"{\\\"storageName\\\":\\\"default\\\",\\\"relativePath\\\":"
		      "\\\"a/b.git\\\",\\\"glRepository\\\":\\\"project-1\\\",\\\"glProjectPath\\\":"
		      "\\\"g/p\\\",\\\"gitAlternateObjectDirectories\\\":[\\\"objects\\\"]}\","
		      "\"object_format\":\"sha1\",\"runtime_dir\":\"/run/g\",\"internal_socket\":"
		      "\"/run/g/sock.d/intern\",\"internal_socket_token\":\"tok\",\"transaction\":null,"
		      "\"user_details\":{\"username\":\"jane\",\"userid\":\"user-1\",\"protocol\":"
		      "\"ssh\",\"remote_ip\":\"1.2.3.4\"}}");
	assert_int_equal(hook_payload_decode(v, &p, &err), 0);
	assert_int_equal(p.requested_hooks, 15);
	assert_string_equal(p.repo.storage_name, "default");
	assert_string_equal(p.repo.relative_path, "a/b.git");
	assert_string_equal(p.repo.gl_repository, "project-1");
	assert_string_equal(p.repo.gl_project_path, "g/p");
	assert_int_equal(p.repo.n_git_alternate_object_directories, 1);
	assert_string_equal(p.repo.git_alternate_object_directories[0], "objects");
	assert_string_equal(p.internal_socket, "/run/g/sock.d/intern");
	assert_string_equal(p.internal_socket_token, "tok");
	assert_int_equal(p.has_transaction, 0);
	assert_int_equal(p.has_user_details, 1);
	assert_string_equal(p.userid, "user-1");
	assert_string_equal(p.protocol, "ssh");
	assert_string_equal(p.remote_ip, "1.2.3.4");
	assert_non_null(strstr(p.feature_flags_json, "on_by_default"));
	assert_true(hook_payload_is_requested(&p, HOOK_PRE_RECEIVE));
	assert_false(hook_payload_is_requested(&p, HOOK_PACK_OBJECTS));

	/* Round trip through our encoder. */
	char *enc = NULL;
	struct hook_payload q;
	assert_int_equal(hook_payload_encode(&p, &enc, &err), 0);
	assert_int_equal(hook_payload_decode(enc, &q, &err), 0);
	assert_string_equal(q.repo.relative_path, "a/b.git");
	assert_string_equal(q.username, "jane");
	assert_int_equal(q.requested_hooks, 15);
	hook_payload_release(&q);
	free(enc);
	hook_payload_release(&p);
	free(v);
}

static void test_requested_zero_means_all_but_proc_receive(void **state)
{
	struct hook_payload p;
	struct error err = ERROR_INIT;
	(void)state;

	char *v = b64("{\"requested_hooks\":0,\"repository\":\"{}\"}");
	assert_int_equal(hook_payload_decode(v, &p, &err), 0);
	assert_int_equal(p.requested_hooks, HOOK_ALL);
	assert_true(hook_payload_is_requested(&p, HOOK_PACK_OBJECTS));
	assert_true(hook_payload_is_requested(&p, HOOK_UPDATE));
	assert_false(hook_payload_is_requested(&p, HOOK_PROC_RECEIVE));
	assert_int_equal(p.has_user_details, 0);
	hook_payload_release(&p);
	free(v);

	/* Only the requested hook runs. */
	v = b64("{\"requested_hooks\":1}");
	assert_int_equal(hook_payload_decode(v, &p, &err), 0);
	assert_true(hook_payload_is_requested(&p, HOOK_REFERENCE_TRANSACTION));
	assert_false(hook_payload_is_requested(&p, HOOK_PRE_RECEIVE));
	hook_payload_release(&p);
	free(v);
}

static void test_bad_input(void **state)
{
	struct hook_payload p;
	struct error err = ERROR_INIT;
	const char *env[] = { "A=b", "PATH=/bin" };
	(void)state;

	assert_int_equal(hook_payload_decode("not base64!", &p, &err), -1);
	assert_int_equal(err.code, STATUS_INVALID_ARGUMENT);
	error_release(&err);
	char *v = b64("[1,2]");
	assert_int_equal(hook_payload_decode(v, &p, &err), -1);
	error_release(&err);
	free(v);
	assert_int_equal(hook_payload_from_env(env, 2, &p, &err), -1);
	assert_string_equal(err.message, "no hooks payload found in environment");
	error_release(&err);
	assert_string_equal(hook_env_get(env, 2, "PATH"), "/bin");
	assert_null(hook_env_get(env, 2, "PAT"));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_decode_upstream_form),
		cmocka_unit_test(test_requested_zero_means_all_but_proc_receive),
		cmocka_unit_test(test_bad_input),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
