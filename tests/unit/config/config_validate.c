/*
 * Tests of the two validators: startup validation (first error, upstream's
 * messages, upstream's order) and `gitaly configuration validate` (every
 * problem, printed byte for byte as upstream's Go JSON encoder does).
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "config/config.h"

static char dir[64];     /* a temp dir holding storages, bin, file */
static char toml[8192];

static void ok_base(void)
{
	snprintf(toml, sizeof(toml),
		 "socket_path = \"%s/sock\"\nbin_dir = \"%s/bin\"\n"
		 "[[storage]]\nname = \"default\"\npath = \"%s/s1\"\n"
		 "[[storage]]\nname = \"second\"\npath = \"%s/s2\"\n"
		 "[gitlab]\nurl = \"http://localhost\"\nsecret = \"x\"\n"
		 "[gitlab-shell]\ndir = \"%s/bin\"\n",
		 dir, dir, dir, dir, dir);
}

static void append(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static void append(const char *fmt, ...)
{
	va_list ap;
	size_t n = strlen(toml);

	va_start(ap, fmt);
	vsnprintf(toml + n, sizeof(toml) - n, fmt, ap);
	va_end(ap);
}

/* Loads toml and returns the first validation error (NULL when valid). */
static char *first_error(void)
{
	struct config cfg;
	struct error err = ERROR_INIT;
	char *msg = NULL;

	if (config_load(&cfg, toml, strlen(toml), &err) < 0)
		fail_msg("load: %s", err.message);
	if (config_validate(&cfg, &err) < 0) {
		msg = strdup(err.message);
		assert_int_equal(err.code, STATUS_INVALID_ARGUMENT);
	}
	error_release(&err);
	config_release(&cfg);
	return msg;
}

static void expect_first(const char *want)
{
	char *got = first_error();
	if (!want) {
		if (got)
			fail_msg("unexpected error: %s", got);
		return;
	}
	if (!got)
		fail_msg("no error, want %s", want);
	assert_string_equal(got, want);
	free(got);
}

static void test_validate_ok(void **state)
{
	ok_base();
	expect_first(NULL);
}

static void test_validate_listeners(void **state)
{
	/* no listener, and a bad storage: listeners come first */
	snprintf(toml, sizeof(toml), "bin_dir = \"/nonexistent\"\n");
	expect_first("at least one of socket_path, listen_addr or tls_listen_addr must be set");

	ok_base();
	append("tls_listen_addr = \"localhost:9999\"\n");
	/* appended after a table: lands in [gitlab-shell] as an unknown key */
	expect_first(NULL);

	snprintf(toml, sizeof(toml), "tls_listen_addr = \"localhost:9999\"\n");
	expect_first("tls_listen_addr is set but [tls] certificate_path and key_path (or key) are not");
}

static void test_validate_storages(void **state)
{
	char want[512];

	snprintf(toml, sizeof(toml), "listen_addr = \"l:1\"\n");
	expect_first("no storage configurations found. Are you using the right format? "
		     "https://gitlab.com/gitlab-org/gitaly/issues/397");

	snprintf(toml, sizeof(toml), "listen_addr = \"l:1\"\n[[storage]]\npath = \"%s/s1\"\n", dir);
	expect_first("empty storage name at declaration 1");

	snprintf(toml, sizeof(toml), "listen_addr = \"l:1\"\n[[storage]]\nname = \"a\"\npath = \"%s/none\"\n", dir);
	snprintf(want, sizeof(want), "storage path \"%s/none\" for storage \"a\" doesn't exist", dir);
	expect_first(want);

	snprintf(toml, sizeof(toml), "listen_addr = \"l:1\"\n[[storage]]\nname = \"a\"\npath = \"%s/file\"\n", dir);
	snprintf(want, sizeof(want), "storage path \"%s/file\" for storage \"a\" is not a dir", dir);
	expect_first(want);

	snprintf(toml, sizeof(toml),
		 "listen_addr = \"l:1\"\n[[storage]]\nname = \"a\"\npath = \"%s/s1\"\n"
		 "[[storage]]\nname = \"a\"\npath = \"%s/s2\"\n", dir, dir);
	expect_first("storage \"a\" is defined more than once");

	snprintf(toml, sizeof(toml),
		 "listen_addr = \"l:1\"\n[[storage]]\nname = \"a\"\npath = \"%s\"\n"
		 "[[storage]]\nname = \"b\"\npath = \"%s/s2\"\n", dir, dir);
	expect_first("storage paths may not nest: \"b\" and \"a\"");

	/* same parent directory (s1 vs s1x prefix) and identical paths are allowed */
	snprintf(toml, sizeof(toml),
		 "listen_addr = \"l:1\"\nbin_dir = \"%s/bin\"\n[gitlab]\nsecret=\"x\"\n"
		 "[[storage]]\nname = \"a\"\npath = \"%s/s1\"\n"
		 "[[storage]]\nname = \"b\"\npath = \"%s/s1x\"\n"
		 "[[storage]]\nname = \"c\"\npath = \"%s/s1\"\n", dir, dir, dir, dir);
	expect_first(NULL);
}

static void test_validate_order(void **state)
{
	char want[512];

	/* git config keys come after storages and before bin_dir */
	ok_base();
	append("[[git.config]]\nkey = \"nodot\"\nvalue = \"v\"\n");
	expect_first("invalid configuration key \"nodot\": key: key \"nodot\" must contain at least one section");

	ok_base();
	append("[[git.config]]\nkey = \"a=b.c\"\n");
	expect_first("invalid configuration key \"a=b.c\": key: key \"a=b.c\" cannot contain \"=\"");
	ok_base();
	append("[[git.config]]\nkey = \"core.x.\"\n");
	expect_first("invalid configuration key \"core.x.\": key: key \"core.x.\" must not start or end with a dot");
	ok_base();
	append("[[git.config]]\nkey = \"core.a b\"\n");
	expect_first("invalid configuration key \"core.a b\": key: key \"core.a b\" failed regexp validation");
	ok_base();
	append("[[git.config]]\nkey = \"http.https://example.com/*.proxy\"\n");
	expect_first(NULL);

	/* bin_dir: required (we ship no bundled binaries but keep upstream's rule) */
	snprintf(toml, sizeof(toml), "listen_addr = \"l\"\n[[storage]]\nname = \"a\"\npath = \"%s/s1\"\n", dir);
	expect_first("bin_dir: is not set");
	snprintf(toml, sizeof(toml), "listen_addr = \"l\"\nbin_dir = \"%s/nobin\"\n[[storage]]\nname = \"a\"\n"
				     "path = \"%s/s1\"\n", dir, dir);
	snprintf(want, sizeof(want), "bin_dir: path doesn't exist: \"%s/nobin\"", dir);
	expect_first(want);
	snprintf(toml, sizeof(toml), "listen_addr = \"l\"\nbin_dir = \"%s/file\"\n[[storage]]\nname = \"a\"\n"
				     "path = \"%s/s1\"\n", dir, dir);
	snprintf(want, sizeof(want), "bin_dir: not a directory: \"%s/file\"", dir);
	expect_first(want);

	snprintf(toml, sizeof(toml),
		 "runtime_dir = \"%s/nort\"\nlisten_addr = \"l\"\nbin_dir = \"%s/bin\"\n"
		 "[[storage]]\nname = \"a\"\npath = \"%s/s1\"\n", dir, dir, dir);
	snprintf(want, sizeof(want), "runtime_dir: path doesn't exist: \"%s/nort\"", dir);
	expect_first(want);

	ok_base();
	append("[daily_maintenance]\nstorages = [\"nope\"]\nstart_hour = 30\n");
	expect_first("daily maintenance specified storage \"nope\" does not exist in configuration");
	ok_base();
	append("[daily_maintenance]\nstart_hour = 30\n");
	expect_first("daily maintenance specified hour '30' outside range (0-23)");
	ok_base();
	append("[daily_maintenance]\nstart_minute = 60\n");
	expect_first("daily maintenance specified minute '60' outside range (0-59)");
	ok_base();
	append("[daily_maintenance]\nduration = \"25h\"\n");
	expect_first("daily maintenance specified duration 25h0m0s must be less than 24 hours");

	ok_base();
	append("[cgroups]\nmemory_bytes = 10\n[cgroups.repositories]\ncount = 1\nmemory_bytes = 20\n");
	expect_first("cgroups.repositories: memory limit cannot exceed parent");
	ok_base();
	append("[cgroups]\ncpu_shares = 10\n[cgroups.repositories]\ncount = 1\ncpu_shares = 20\n");
	expect_first("cgroups.repositories: cpu shares cannot exceed parent");
	ok_base();
	append("[cgroups]\ncpu_quota_us = 10\n[cgroups.repositories]\ncount = 1\ncpu_quota_us = 20\n");
	expect_first("cgroups.repositories: cpu quota cannot exceed parent");

	ok_base();
	append("[pack_objects_cache]\nenabled = true\nmax_age = \"-1m\"\n");
	expect_first("pack_objects_cache.max_age cannot be negative");
	ok_base();
	append("[pack_objects_cache]\nenabled = true\ndir = \"relative\"\n");
	expect_first("pack_objects_cache: storage directory must be absolute path");
	ok_base();
	append("[pack_objects_cache]\nenabled = true\n");
	expect_first(NULL);
}

/* --- configuration validate ---------------------------------------------- */

static char *run_validate(const char *input, int *code)
{
	FILE *in = fmemopen((void *)input, strlen(input), "r");
	char *buf = NULL;
	size_t len = 0;
	FILE *out = open_memstream(&buf, &len);

	assert_non_null(in);
	assert_non_null(out);
	*code = config_validate_command(in, out);
	fclose(in);
	fclose(out);
	return buf;
}

static void test_validate_all_json(void **state)
{
	char input[4096], want[4096];
	int code;
	char *out;

	/* Several problems; the expected text is what upstream's ValidateV2 and
	 * cmd.Validate print for the same file (order, keys, vocabulary). */
	snprintf(input, sizeof(input),
		 "bin_dir = \"%s/nobin\"\n"
		 "[[git.config]]\nkey = \"bad\"\nvalue = \"v\"\n"
		 "[[storage]]\nname = \"\"\npath = \"%s/s1\"\n"
		 "[[storage]]\nname = \"b\"\npath = \"%s/file\"\n"
		 "[prometheus]\ngrpc_latency_buckets = [1, 0.5]\n"
		 "[gitlab]\nurl = \" \"\nsecret_file = \"%s/nosecret\"\n"
		 "[daily_maintenance]\nstart_hour = 25\n"
		 "[cgroups.repositories]\ncount = 1\nmax_cgroups_per_repo = 2\n"
		 "[[concurrency]]\nrpc = \"/x\"\nmax_per_repo = -1\nmax_queue_wait = \"-1s\"\n",
		 dir, dir, dir, dir);
	out = run_validate(input, &code);
	assert_int_equal(code, 2);
	snprintf(want, sizeof(want),
		 "{\n"
		 "  \"errors\": [\n"
		 "    {\n"
		 "      \"message\": \"none of \\\"socket_path\\\", \\\"listen_addr\\\" or \\\"tls_listen_addr\\\" is set\"\n"
		 "    },\n"
		 "    {\n"
		 "      \"key\": [\n"
		 "        \"bin_dir\"\n"
		 "      ],\n"
		 "      \"message\": \"doesn't exist: \\\"%s/nobin\\\"\"\n"
		 "    },\n"
		 "    {\n"
		 "      \"key\": [\n"
		 "        \"git\",\n"
		 "        \"config\",\n"
		 "        \"key\"\n"
		 "      ],\n"
		 "      \"message\": \"key \\\"bad\\\" must contain at least one section\"\n"
		 "    },\n"
		 "    {\n"
		 "      \"key\": [\n"
		 "        \"storage\",\n"
		 "        \"[0]\",\n"
		 "        \"name\"\n"
		 "      ],\n"
		 "      \"message\": \"not set\"\n"
		 "    },\n"
		 "    {\n"
		 "      \"key\": [\n"
		 "        \"storage\",\n"
		 "        \"[1]\",\n"
		 "        \"path\"\n"
		 "      ],\n"
		 "      \"message\": \"not a dir: \\\"%s/file\\\"\"\n"
		 "    },\n"
		 "    {\n"
		 "      \"key\": [\n"
		 "        \"prometheus\",\n"
		 "        \"grpc_latency_buckets\"\n"
		 "      ],\n"
		 "      \"message\": \"bad order: expected asc: [1 0.5]\"\n"
		 "    },\n"
		 "    {\n"
		 "      \"key\": [\n"
		 "        \"gitlab\",\n"
		 "        \"url\"\n"
		 "      ],\n"
		 "      \"message\": \"blank or empty\"\n"
		 "    },\n"
		 "    {\n"
		 "      \"key\": [\n"
		 "        \"gitlab\",\n"
		 "        \"secret_file\"\n"
		 "      ],\n"
		 "      \"message\": \"doesn't exist: \\\"%s/nosecret\\\"\"\n"
		 "    },\n"
		 "    {\n"
		 "      \"key\": [\n"
		 "        \"gitlab-shell\",\n"
		 "        \"dir\"\n"
		 "      ],\n"
		 "      \"message\": \"doesn't exist: \\\"\\\"\"\n"
		 "    },\n"
		 "    {\n"
		 "      \"key\": [\n"
		 "        \"daily_maintenance\",\n"
		 "        \"start_hour\"\n"
		 "      ],\n"
		 "      \"message\": \"not in range: 25 out of [0, 23]\"\n"
		 "    },\n"
		 "    {\n"
		 "      \"key\": [\n"
		 "        \"cgroups\",\n"
		 "        \"repositories\",\n"
		 "        \"max_cgroups_per_repo\"\n"
		 "      ],\n"
		 "      \"message\": \"not in range: 2 out of [0, 1]\"\n"
		 "    },\n"
		 "    {\n"
		 "      \"key\": [\n"
		 "        \"concurrency\",\n"
		 "        \"[0]\",\n"
		 "        \"max_per_repo\"\n"
		 "      ],\n"
		 "      \"message\": \"not in range: -1 is not greater than or equal to 0\"\n"
		 "    },\n"
		 "    {\n"
		 "      \"key\": [\n"
		 "        \"concurrency\",\n"
		 "        \"[0]\",\n"
		 "        \"max_queue_wait\"\n"
		 "      ],\n"
		 "      \"message\": \"not in range: -1s is not greater than or equal to 0s\"\n"
		 "    }\n"
		 "  ]\n"
		 "}\n",
		 dir, dir, dir);
	assert_string_equal(out, want);
	free(out);
}

static void test_validate_command_codes(void **state)
{
	char input[2048];
	int code;
	char *out;

	/* upstream's own test case for a bad value */
	out = run_validate("graceful_restart_timeout = \"bad value\"", &code);
	assert_int_equal(code, 2);
	assert_string_equal(out, "{\n"
				 "  \"errors\": [\n"
				 "    {\n"
				 "      \"message\": \"line 1 column 28: toml: time: invalid duration \\\"bad value\\\"\"\n"
				 "    }\n"
				 "  ]\n"
				 "}\n");
	free(out);

	out = run_validate("socket_path = 1\n", &code);
	assert_int_equal(code, 2);
	assert_string_equal(out, "{\n"
				 "  \"errors\": [\n"
				 "    {\n"
				 "      \"message\": \"line 1 column 15: toml: cannot decode TOML integer into struct field "
				 "config.Cfg.SocketPath of type string\"\n"
				 "    }\n"
				 "  ]\n"
				 "}\n");
	free(out);

	/* a syntax error is reported the same way, with its position */
	out = run_validate("[storage\nname = 1\n", &code);
	assert_int_equal(code, 2);
	assert_non_null(strstr(out, "\"message\": \"line 1 column "));
	free(out);

	/* go-toml reports these as plain errors: exit 1, nothing on stdout */
	out = run_validate("[daily_maintenance]\nstart_hour = -1\n", &code);
	assert_int_equal(code, 1);
	assert_string_equal(out, "");
	free(out);
	out = run_validate("socket_path = [\"a\"]\n", &code);
	assert_int_equal(code, 1);
	assert_string_equal(out, "");
	free(out);

	/* a config_command failure is a read error: exit 1, nothing on stdout */
	snprintf(input, sizeof(input), "config_command = \"%s/missing\"\n", dir);
	out = run_validate(input, &code);
	assert_int_equal(code, 1);
	assert_string_equal(out, "");
	free(out);

	/* clean: exit 0, no output */
	ok_base();
	out = run_validate(toml, &code);
	if (code != 0)
		fail_msg("%s", out);
	assert_string_equal(out, "");
	free(out);
}

static void test_problems_json_escaping(void **state)
{
	char *k[] = { "a<b>", "c&d" };
	struct config_problem p = { k, 2, "tab\there \"q\" \\ \x01 \xff \xe2\x80\xa8 é" };
	struct config_problems ps = { &p, 1 };
	char *buf = NULL;
	size_t len = 0;
	FILE *out = open_memstream(&buf, &len);

	assert_int_equal(config_problems_print_json(&ps, out), 0);
	fclose(out);
	assert_string_equal(buf, "{\n"
				 "  \"errors\": [\n"
				 "    {\n"
				 "      \"key\": [\n"
				 "        \"a\\u003cb\\u003e\",\n"
				 "        \"c\\u0026d\"\n"
				 "      ],\n"
				 "      \"message\": \"tab\\there \\\"q\\\" \\\\ \\u0001 \\ufffd \\u2028 é\"\n"
				 "    }\n"
				 "  ]\n"
				 "}\n");
	free(buf);

	/* nothing to print: no output at all */
	ps.len = 0;
	buf = NULL;
	out = open_memstream(&buf, &len);
	assert_int_equal(config_problems_print_json(&ps, out), 0);
	fclose(out);
	assert_int_equal(len, 0);
	free(buf);
}

static void test_validate_all_more(void **state)
{
	struct config cfg;
	struct config_problems ps;
	struct error err = ERROR_INIT;
	char want[512];

	ok_base();
	append("[[concurrency]]\nrpc = \"/a\"\nadaptive = true\nmin_limit = 0\ninitial_limit = 5\nmax_limit = 3\n");
	append("[pack_objects_cache]\nenabled = true\ndir = \"rel\"\n");
	append("[tls]\ncertificate_path = \"%s/nocert\"\nkey_path = \"%s/nokey\"\n", dir, dir);
	append("[daily_maintenance]\nstorages = [\"default\", \"ghost\"]\nduration = \"25h\"\n");
	assert_int_equal(config_load(&cfg, toml, strlen(toml), &err), 0);
	config_validate_all(&cfg, &ps);
	/* tls (2), maintenance (2), concurrency (2), pack_objects_cache (1) */
	assert_int_equal(ps.len, 7);
	assert_string_equal(ps.items[0].key[0], "tls");
	assert_string_equal(ps.items[0].key[1], "certificate_path");
	snprintf(want, sizeof(want), "doesn't exist: \"%s/nocert\"", dir);
	assert_string_equal(ps.items[0].message, want);
	assert_string_equal(ps.items[1].key[1], "key_path");
	assert_string_equal(ps.items[2].key[1], "duration");
	assert_string_equal(ps.items[2].message, "not in range: 25h0m0s out of [0s, 24h0m0s]");
	assert_int_equal(ps.items[3].n_key, 3);
	assert_string_equal(ps.items[3].key[2], "[1]");
	assert_string_equal(ps.items[3].message, "doesn't exist: \"ghost\"");
	assert_string_equal(ps.items[4].key[2], "min_limit");
	assert_string_equal(ps.items[4].message, "not in range: 0 is not greater than 0");
	assert_string_equal(ps.items[5].key[2], "max_limit");
	assert_string_equal(ps.items[5].message, "not in range: 3 is not greater than or equal to 5");
	assert_string_equal(ps.items[6].key[0], "pack_objects_cache");
	assert_string_equal(ps.items[6].message, "not an absolute path: \"rel\"");
	config_problems_release(&ps);
	config_release(&cfg);

	/* beyond upstream: previous_tokens need a current token and content */
	ok_base();
	append("[auth]\nprevious_tokens = [\"old\", \" \"]\n");
	assert_int_equal(config_load(&cfg, toml, strlen(toml), &err), 0);
	config_validate_all(&cfg, &ps);
	assert_int_equal(ps.len, 2);
	assert_string_equal(ps.items[0].key[0], "auth");
	assert_string_equal(ps.items[0].key[1], "previous_tokens");
	assert_string_equal(ps.items[0].key[2], "[1]");
	assert_string_equal(ps.items[0].message, "blank or empty");
	assert_string_equal(ps.items[1].key[1], "token");
	assert_string_equal(ps.items[1].message, "not set");
	config_problems_release(&ps);
	assert_int_equal(config_validate(&cfg, &err), -1);
	assert_string_equal(err.message, "auth.previous_tokens[1]: blank or empty");
	error_release(&err);
	config_release(&cfg);

	ok_base();
	append("[auth]\ntoken = \"new\"\nprevious_tokens = [\"old\"]\n");
	assert_int_equal(config_load(&cfg, toml, strlen(toml), &err), 0);
	config_validate_all(&cfg, &ps);
	assert_int_equal(ps.len, 0);
	config_problems_release(&ps);
	assert_int_equal(config_validate(&cfg, &err), 0);
	config_release(&cfg);

	/* beyond upstream's ValidateV2: its unused validateStorages checks */
	snprintf(toml, sizeof(toml),
		 "listen_addr = \"l\"\nbin_dir = \"%s/bin\"\n[gitlab]\nurl = \"http://x\"\nsecret = \"s\"\n"
		 "[gitlab-shell]\ndir = \"%s/bin\"\n"
		 "[[storage]]\nname = \"a\"\npath = \"%s\"\n"
		 "[[storage]]\nname = \"a\"\npath = \"%s/s1\"\n", dir, dir, dir, dir);
	assert_int_equal(config_load(&cfg, toml, strlen(toml), &err), 0);
	config_validate_all(&cfg, &ps);
	assert_int_equal(ps.len, 2);
	assert_string_equal(ps.items[0].key[1], "[1]");
	assert_string_equal(ps.items[0].key[2], "name");
	assert_string_equal(ps.items[0].message, "not unique: \"a\"");
	assert_string_equal(ps.items[1].key[2], "path");
	snprintf(want, sizeof(want), "can't nest: \"%s/s1\" and \"%s\"", dir, dir);
	assert_string_equal(ps.items[1].message, want);
	config_problems_release(&ps);
	config_release(&cfg);

	snprintf(toml, sizeof(toml), "listen_addr = \"l\"\n");
	assert_int_equal(config_load(&cfg, toml, strlen(toml), &err), 0);
	config_validate_all(&cfg, &ps);
	assert_true(ps.len >= 1);
	int found = 0;
	for (size_t i = 0; i < ps.len; i++) {
		if (ps.items[i].n_key == 1 && !strcmp(ps.items[i].key[0], "storage") &&
		    !strcmp(ps.items[i].message, "not set"))
			found = 1;
	}
	assert_true(found);
	config_problems_release(&ps);
	config_release(&cfg);

	/* key and key_path together */
	ok_base();
	append("[tls]\ncertificate_path = \"/c\"\nkey_path = \"/k\"\nkey = \"pem\"\n");
	assert_int_equal(config_load(&cfg, toml, strlen(toml), &err), 0);
	config_validate_all(&cfg, &ps);
	assert_int_equal(ps.len, 1);
	assert_int_equal(ps.items[0].n_key, 3);
	assert_string_equal(ps.items[0].key[2], "key");
	assert_string_equal(ps.items[0].message, "key_path and key cannot both be set");
	config_problems_release(&ps);
	config_release(&cfg);

	/* a certificate file that holds no PEM */
	ok_base();
	append("[tls]\ncertificate_path = \"%s/file\"\nkey_path = \"%s/file\"\n", dir, dir);
	assert_int_equal(config_load(&cfg, toml, strlen(toml), &err), 0);
	config_validate_all(&cfg, &ps);
	assert_int_equal(ps.len, 1);
	assert_string_equal(ps.items[0].key[1], "certificate_path");
	assert_string_equal(ps.items[0].message,
			    "loading x509 keypair: tls: failed to find any PEM data in certificate input");
	config_problems_release(&ps);
	config_release(&cfg);
}

static int setup(void **state)
{
	char p[128];
	FILE *f;

	snprintf(dir, sizeof(dir), "/tmp/config-validate-XXXXXX");
	if (!mkdtemp(dir))
		return -1;
	const char *sub[] = { "s1", "s1x", "s2", "bin" };
	for (size_t i = 0; i < 4; i++) {
		snprintf(p, sizeof(p), "%s/%s", dir, sub[i]);
		mkdir(p, 0755);
	}
	snprintf(p, sizeof(p), "%s/file", dir);
	f = fopen(p, "w");
	if (!f)
		return -1;
	fputs("not a pem\n", f);
	fclose(f);
	return 0;
}

static int teardown(void **state)
{
	char p[128];
	const char *sub[] = { "s1", "s1x", "s2", "bin" };

	for (size_t i = 0; i < 4; i++) {
		snprintf(p, sizeof(p), "%s/%s", dir, sub[i]);
		rmdir(p);
	}
	snprintf(p, sizeof(p), "%s/file", dir);
	unlink(p);
	rmdir(dir);
	return 0;
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_validate_ok),
		cmocka_unit_test(test_validate_listeners),
		cmocka_unit_test(test_validate_storages),
		cmocka_unit_test(test_validate_order),
		cmocka_unit_test(test_validate_all_json),
		cmocka_unit_test(test_validate_command_codes),
		cmocka_unit_test(test_problems_json_escaping),
		cmocka_unit_test(test_validate_all_more),
	};
	return cmocka_run_group_tests(tests, setup, teardown);
}
