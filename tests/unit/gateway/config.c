/*
 * Tests for src/gateway/config.c (configuration file, path mapping, basic
 * auth users, HTTP status mapping) and the SSH command parser of
 * src/gateway/ssh.c.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <stdlib.h>
#include <string.h>

#include "gateway/gateway.h"

static const char good[] = "listen_addr = \"127.0.0.1:9999\"\n"
			   "default_storage = \"b\"\n"
			   "max_upload_pack_body = 1000\n"
			   "call_timeout = 5\n"
			   "git_config_options = [\"uploadpack.allowFilter=true\", \"a.b=\"]\n"
			   "[auth]\n"
			   "required = true\n"
			   "anonymous_gl_id = \"user-9\"\n"
			   "[[auth.user]]\n"
			   "name = \"alice\"\n"
			   "password = \"pw\"\n"
			   "gl_id = \"user-1\"\n"
			   "[[auth.user]]\n"
			   "name = \"bob\"\n"
			   "password = \"pw2\"\n"
			   "[[storage]]\n"
			   "name = \"a\"\n"
			   "address = \"unix:/tmp/a.sock\"\n"
			   "[[storage]]\n"
			   "name = \"b\"\n"
			   "address = \"tcp://127.0.0.1:1\"\n"
			   "token = \"t\"\n";

static struct gateway_config *load(const char *text)
{
	struct gateway_config *cfg = NULL;
	struct error err = ERROR_INIT;

	assert_int_equal(gateway_config_parse(text, strlen(text), "t.toml", &cfg, &err), 0);
	assert_false(error_is_set(&err));
	return cfg;
}

static void test_parse_good(void **state)
{
	struct gateway_config *cfg = load(good);

	assert_string_equal(cfg->listen_addr, "127.0.0.1:9999");
	assert_string_equal(cfg->default_storage, "b");
	assert_int_equal(cfg->max_upload_pack_body, 1000);
	assert_int_equal(cfg->call_timeout_ms, 5000);
	assert_int_equal(cfg->n_git_config, 2);
	assert_string_equal(cfg->git_config[0], "uploadpack.allowFilter=true");
	assert_string_equal(cfg->git_config[1], "a.b=");
	assert_int_equal(cfg->auth_required, 1);
	assert_string_equal(cfg->anonymous_gl_id, "user-9");
	assert_int_equal(cfg->n_users, 2);
	assert_string_equal(cfg->users[1].gl_id, "username-bob");
	assert_int_equal(cfg->n_storages, 2);
	assert_string_equal(cfg->storages[0].token, "");
	assert_string_equal(cfg->storages[1].token, "t");
	assert_ptr_equal(gateway_user_check(cfg, "alice", "pw"), &cfg->users[0]);
	assert_null(gateway_user_check(cfg, "alice", "pw2"));
	assert_null(gateway_user_check(cfg, "carol", "pw"));
	assert_null(gateway_user_check(cfg, "alice", "p"));
	gateway_config_free(cfg);
}

static void test_defaults(void **state)
{
	struct gateway_config *cfg = load("[[storage]]\nname=\"x\"\naddress=\"unix:/s\"\n");

	assert_string_equal(cfg->default_storage, "x");
	assert_string_equal(cfg->listen_addr, "127.0.0.1:8080");
	assert_string_equal(cfg->anonymous_gl_id, "");
	assert_int_equal(cfg->auth_required, 0);
	assert_int_equal(cfg->max_upload_pack_body, 64u << 20);
	gateway_config_free(cfg);
}

static void expect_bad(const char *text, const char *needle)
{
	struct gateway_config *cfg = NULL;
	struct error err = ERROR_INIT;

	assert_int_equal(gateway_config_parse(text, strlen(text), "t.toml", &cfg, &err), -1);
	assert_null(cfg);
	assert_int_equal(err.code, STATUS_INVALID_ARGUMENT);
	if (!strstr(err.message, needle))
		fail_msg("'%s' not in '%s'", needle, err.message);
	error_release(&err);
}

static void test_parse_bad(void **state)
{
	expect_bad("", "at least one [[storage]]");
	expect_bad("bogus = 1\n[[storage]]\nname=\"x\"\naddress=\"unix:/s\"\n", "unknown key bogus");
	expect_bad("[[storage]]\nname=\"x\"\n", "needs an address");
	expect_bad("[[storage]]\nname=\"x\"\naddress=\"unix:/s\"\n[[storage]]\nname=\"x\"\n"
		   "address=\"unix:/t\"\n",
		   "duplicate storage");
	expect_bad("default_storage=\"y\"\n[[storage]]\nname=\"x\"\naddress=\"unix:/s\"\n",
		   "not a configured storage");
	expect_bad("listen_addr = 5\n[[storage]]\nname=\"x\"\naddress=\"unix:/s\"\n",
		   "t.toml:1:");
	expect_bad("[[storage]]\nname=\"x\"\naddress=\"unix:/s\"\n[[auth.user]]\nname=\"a\"\n",
		   "needs a password");
	expect_bad("x = [\n", "t.toml:");
	expect_bad("git_config_options = [\"nokey\"]\n[[storage]]\nname=\"x\"\naddress=\"unix:/s\"\n",
		   "key=value");
	expect_bad("git_config_options = \"a=b\"\n[[storage]]\nname=\"x\"\naddress=\"unix:/s\"\n",
		   "array of strings");
}

static void expect_repo(struct gateway_config *cfg, const char *path, const char *storage,
			const char *rel)
{
	struct gateway_repo r;
	struct error err = ERROR_INIT;

	assert_int_equal(gateway_repo_resolve(cfg, path, strlen(path), &r, &err), 0);
	assert_string_equal(r.storage->name, storage);
	assert_string_equal(r.relative_path, rel);
	gateway_repo_release(&r);
}

static void expect_repo_bad(struct gateway_config *cfg, const char *path)
{
	struct gateway_repo r;
	struct error err = ERROR_INIT;

	assert_int_equal(gateway_repo_resolve(cfg, path, strlen(path), &r, &err), -1);
	assert_int_equal(err.code, STATUS_INVALID_ARGUMENT);
	error_release(&err);
}

static void test_resolve(void **state)
{
	struct gateway_config *cfg = load(good);
	char big[1100];

	expect_repo(cfg, "/group/demo.git", "b", "group/demo.git");
	expect_repo(cfg, "demo.git", "b", "demo.git");
	expect_repo(cfg, "/a/demo.git", "a", "demo.git");
	expect_repo(cfg, "/b/x/y.git", "b", "x/y.git");
	expect_repo(cfg, "/a", "b", "a"); /* a storage name alone is a path */
	expect_repo(cfg, "/c/demo.git", "b", "c/demo.git");
	expect_repo(cfg, "/..x/demo.git", "b", "..x/demo.git");
	expect_repo_bad(cfg, "");
	expect_repo_bad(cfg, "/");
	expect_repo_bad(cfg, "//etc/passwd");
	expect_repo_bad(cfg, "/../demo.git");
	expect_repo_bad(cfg, "/group/../../demo.git");
	expect_repo_bad(cfg, "/a/..");
	expect_repo_bad(cfg, "/a/./b");
	expect_repo_bad(cfg, "/a//b");
	expect_repo_bad(cfg, "/a/b/");
	expect_repo_bad(cfg, "/a\\b");
	expect_repo_bad(cfg, "/a\nb");
	memset(big, 'x', sizeof(big) - 1);
	big[sizeof(big) - 1] = 0;
	expect_repo_bad(cfg, big);
	gateway_config_free(cfg);
}

static void expect_cmd(const char *cmd, const char *service, const char *path)
{
	const char *s = NULL;
	char *p = NULL;
	struct error err = ERROR_INIT;

	if (gateway_ssh_parse_command(cmd, &s, &p, &err) < 0)
		fail_msg("%s: %s", cmd, err.message);
	assert_string_equal(s, service);
	assert_string_equal(p, path);
	free(p);
}

static void expect_cmd_bad(const char *cmd)
{
	const char *s = NULL;
	char *p = NULL;
	struct error err = ERROR_INIT;

	assert_int_equal(gateway_ssh_parse_command(cmd, &s, &p, &err), -1);
	assert_null(p);
	error_release(&err);
}

static void test_ssh_command(void **state)
{
	expect_cmd("git-upload-pack 'group/demo.git'", "git-upload-pack", "group/demo.git");
	expect_cmd("git-receive-pack '/demo.git'", "git-receive-pack", "/demo.git");
	expect_cmd("git-upload-archive 'demo.git'", "git-upload-archive", "demo.git");
	expect_cmd("git upload-pack 'demo.git'", "git-upload-pack", "demo.git");
	expect_cmd("git-upload-pack demo.git", "git-upload-pack", "demo.git");
	expect_cmd("git-upload-pack \"de\\\"mo.git\"", "git-upload-pack", "de\"mo.git");
	expect_cmd("  git-upload-pack   'a b.git'  ", "git-upload-pack", "a b.git");
	expect_cmd("git-upload-pack 'it'\\''s.git'", "git-upload-pack", "it's.git");
	expect_cmd_bad(NULL);
	expect_cmd_bad("");
	expect_cmd_bad("sh -c id");
	expect_cmd_bad("git-upload-pack");
	expect_cmd_bad("git-upload-pack 'a' 'b'");
	expect_cmd_bad("git-upload-pack 'unterminated");
	expect_cmd_bad("git-shell 'a'");
	expect_cmd_bad("git config 'a'");
	expect_cmd_bad("'' 'a'");
	expect_cmd_bad("git '' 'a'");
	expect_cmd("git-upload-pack ''", "git-upload-pack", ""); /* refused later as a path */
}

static void test_http_status(void **state)
{
	assert_int_equal(gateway_http_status(STATUS_NOT_FOUND), 404);
	assert_int_equal(gateway_http_status(STATUS_PERMISSION_DENIED), 403);
	assert_int_equal(gateway_http_status(STATUS_UNAUTHENTICATED), 401);
	assert_int_equal(gateway_http_status(STATUS_INTERNAL), 500);
	assert_int_equal(gateway_http_status(STATUS_UNAVAILABLE), 500);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_parse_good),  cmocka_unit_test(test_defaults),
		cmocka_unit_test(test_parse_bad),   cmocka_unit_test(test_resolve),
		cmocka_unit_test(test_ssh_command), cmocka_unit_test(test_http_status),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
