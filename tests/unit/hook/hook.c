/*
 * hook logic without GitLab: the restricted environment of custom hooks,
 * and the validation failures that become exit status 1 with a message
 * (missing payload, no ref updates, missing user, bad object IDs), plus the
 * reference-transaction states.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "config/config.h"
#include "hook/hook.h"
#include "hook/install.h"
#include "hook/payload.h"

static struct config cfg;

static char *payload_env(int with_user, int with_tx)
{
	struct hook_payload p;
	struct error err = ERROR_INIT;
	char *env = NULL;

	memset(&p, 0, sizeof(p));
	p.requested_hooks = HOOK_RECEIVE_PACK;
	p.repo.relative_path = "r.git";
	p.has_user_details = with_user;
	p.userid = "user-1";
	p.username = "jane";
	p.protocol = "ssh";
	assert_int_equal(hook_payload_env(&p, &env, &err), 0);
	if (with_tx) {
		/* Our encoder writes no transaction; build one by hand. */
		free(env);
		env = strdup("GITALY_HOOKS_PAYLOAD=eyJ0cmFuc2FjdGlvbiI6eyJpZCI6MX19"); /* {"transaction":{"id":1}} */
	}
	return env;
}

static void req_init(struct hook_request *r, const char *const *env, size_t n_env,
		     struct strbuf *out, struct strbuf *eo)
{
	memset(r, 0, sizeof(*r));
	r->cfg = &cfg;
	r->repo_path = "/srv/st/r.git";
	r->relative_path = "r.git";
	r->gl_repository = "project-1";
	r->gl_project_path = "g/p";
	r->env = env;
	r->n_env = n_env;
	r->out = out;
	r->err_out = eo;
}

static int has(char **env, const char *entry)
{
	for (; *env; env++)
		if (!strcmp(*env, entry))
			return 1;
	return 0;
}

static void test_custom_env(void **state)
{
	struct hook_request r;
	struct strbuf out = STRBUF_INIT, eo = STRBUF_INIT;
	struct error err = ERROR_INIT;
	char *penv = payload_env(1, 0);
	const char *env[] = { "HOME=/home/git", "PATH=/usr/bin", "SECRET=x", penv,
			      "GIT_OBJECT_DIRECTORY=/q", "GIT_TRACE=1", "TZ=UTC" };
	const char *opts[] = { "ci.skip", "x=y" };
	char **ce = NULL;
	(void)state;

	req_init(&r, env, 7, &out, &eo);
	r.push_options = opts;
	r.n_push_options = 2;
	assert_int_equal(hook_custom_env(&r, "user-1", "jane", "ssh", &ce, &err), 0);
	assert_true(has(ce, "HOME=/home/git"));
	assert_true(has(ce, "GIT_TRACE=1"));
	assert_true(has(ce, "TZ=UTC"));
	assert_true(has(ce, "GIT_OBJECT_DIRECTORY=/q"));
	assert_true(has(ce, "GIT_PUSH_OPTION_COUNT=2"));
	assert_true(has(ce, "GIT_PUSH_OPTION_0=ci.skip"));
	assert_true(has(ce, "GIT_PUSH_OPTION_1=x=y"));
	assert_true(has(ce, "GIT_DIR=/srv/st/r.git"));
	assert_true(has(ce, "GL_REPOSITORY=project-1"));
	assert_true(has(ce, "GL_PROJECT_PATH=g/p"));
	assert_true(has(ce, "GL_ID=user-1"));
	assert_true(has(ce, "GL_USERNAME=jane"));
	assert_true(has(ce, "GL_PROTOCOL=ssh"));
	for (char **e = ce; *e; e++) {
		assert_true(strncmp(*e, "SECRET=", 7));
		assert_true(strncmp(*e, "GITALY_HOOKS_PAYLOAD=", 21));
		if (!strncmp(*e, "PATH=", 5)) {
			/* git's directory first, then the caller's PATH. */
			size_t l = strlen(*e);
			assert_true(l > 14 && !strcmp(*e + l - 9, ":/usr/bin"));
		}
	}
	hook_env_free(ce);
	free(penv);
}

static void test_validation_failures(void **state)
{
	struct hook_request r;
	struct strbuf out = STRBUF_INIT, eo = STRBUF_INIT;
	struct error err = ERROR_INIT;
	char *penv = payload_env(1, 0), *nouser = payload_env(0, 0);
	const char *env[] = { penv };
	const char *env_nouser[] = { nouser };
	const char *none[] = { "PATH=/bin" };
	int code = -1;
	(void)state;

	req_init(&r, none, 1, &out, &eo);
	assert_int_equal(hook_pre_receive(&r, "x", 1, &code, &err), -1);
	assert_string_equal(err.message,
			    "extracting hooks payload: no hooks payload found in environment");
	error_release(&err);

	req_init(&r, env, 1, &out, &eo);
	assert_int_equal(hook_pre_receive(&r, "", 0, &code, &err), -1);
	assert_string_equal(err.message, "hook got no reference updates");
	error_release(&err);
	assert_int_equal(hook_post_receive(&r, "", 0, &code, &err), -1);
	assert_string_equal(err.message, "hook got no reference updates");
	error_release(&err);

	r.gl_repository = "";
	assert_int_equal(hook_pre_receive(&r, "a b c\n", 6, &code, &err), -1);
	assert_string_equal(err.message, "repository not set");
	error_release(&err);

	req_init(&r, env_nouser, 1, &out, &eo);
	assert_int_equal(hook_post_receive(&r, "a b c\n", 6, &code, &err), -1);
	assert_string_equal(err.message, "payload has no receive hooks info");
	error_release(&err);

	req_init(&r, env, 1, &out, &eo);
	char zero[41], bad[41];
	memset(zero, '0', 40);
	zero[40] = 0;
	memset(bad, 'g', 40);
	bad[40] = 0;
	assert_int_equal(hook_update(&r, "refs/heads/x", zero, bad, &code, &err), -1);
	assert_non_null(strstr(err.message, "hook got invalid new value"));
	error_release(&err);
	assert_int_equal(hook_update(&r, "", zero, zero, &code, &err), -1);
	assert_string_equal(err.message, "hook got no reference");
	error_release(&err);
	/* sha1 payload: a 64-hex value is invalid too. */
	char long_hex[65];
	memset(long_hex, 'a', 64);
	long_hex[64] = 0;
	assert_int_equal(hook_update(&r, "refs/heads/x", long_hex, zero, &code, &err), -1);
	error_release(&err);
	/* Valid values and no custom hook: success. */
	assert_int_equal(hook_update(&r, "refs/heads/x", zero, zero, &code, &err), 0);
	assert_int_equal(code, 0);
	free(penv);
	free(nouser);
	strbuf_release(&out);
	strbuf_release(&eo);
}

static void test_reference_transaction(void **state)
{
	struct hook_request r;
	struct strbuf out = STRBUF_INIT, eo = STRBUF_INIT;
	struct error err = ERROR_INIT;
	char *penv = payload_env(1, 0), *tx = payload_env(1, 1);
	const char *env[] = { penv };
	const char *env_tx[] = { tx };
	(void)state;

	req_init(&r, env, 1, &out, &eo);
	assert_int_equal(hook_reference_transaction(&r, HOOK_TX_PREPARED, "a b c\n", 6, &err), 0);
	assert_int_equal(hook_reference_transaction(&r, HOOK_TX_ABORTED, "", 0, &err), 0);
	assert_int_equal(hook_reference_transaction(&r, 7, "", 0, &err), -1);
	assert_int_equal(err.code, STATUS_INVALID_ARGUMENT);
	error_release(&err);
	req_init(&r, env_tx, 1, &out, &eo);
	assert_int_equal(hook_reference_transaction(&r, HOOK_TX_COMMITTED, "a b c\n", 6, &err),
			 -1);
	assert_int_equal(err.code, STATUS_UNIMPLEMENTED);
	error_release(&err);
	free(penv);
	free(tx);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_custom_env),
		cmocka_unit_test(test_validation_failures),
		cmocka_unit_test(test_reference_transaction),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
