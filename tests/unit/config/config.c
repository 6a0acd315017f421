/*
 * Tests of config loading: every key's type, upstream's defaults, Go
 * durations, the unknown-key warning and the config_command JSON merge.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "base/log.h"
#include "config/config.h"
#include "config/config_internal.h"

static int load(struct config *cfg, const char *toml, struct error *err)
{
	return config_load(cfg, toml, strlen(toml), err);
}

static void test_defaults(void **state)
{
	struct config cfg;
	struct error err = ERROR_INIT;
	const char *toml = "socket_path = \"/tmp/s\"\n"
			   "[[storage]]\nname = \"default\"\npath = \"/srv//repos/./x/../\"\n"
			   "[[storage]]\nname = \"other\"\npath = \"rel/dir/\"\n";

	assert_int_equal(load(&cfg, toml, &err), 0);
	assert_int_equal(cfg.graceful_restart_timeout_ms, 60000);
	assert_string_equal(cfg.logging.level, "info");
	assert_int_equal(cfg.prometheus.n_grpc_latency_buckets, 11);
	assert_true(cfg.prometheus.grpc_latency_buckets[0] == 0.001);
	assert_true(cfg.prometheus.grpc_latency_buckets[10] == 1500.0);
	assert_int_equal(cfg.prometheus.scrape_timeout_ms, 10000);
	assert_int_equal(cfg.git.catfile_cache_size, 100);
	assert_string_equal(cfg.gitlab.secret_file, ".gitlab_shell_secret");
	assert_null(cfg.hooks.custom_hooks_dir);
	assert_int_equal(cfg.gitlab.http_settings.read_timeout, 300);
	assert_int_equal(cfg.pack_objects_cache.min_occurrences, 1);
	assert_int_equal(cfg.pack_objects_cache.enabled, 0);
	assert_null(cfg.pack_objects_cache.dir);
	assert_int_equal(cfg.pack_objects_limiting.max_concurrency, 200);
	assert_true(cfg.adaptive_limiting.cpu_throttled_threshold == 0.5);
	assert_true(cfg.adaptive_limiting.memory_threshold == 0.9);
	assert_int_equal(cfg.daily_maintenance.start_hour, 12);
	assert_int_equal(cfg.daily_maintenance.start_minute, 0);
	assert_int_equal(cfg.daily_maintenance.duration_ms, 600000);
	assert_int_equal(cfg.daily_maintenance.n_storages, 2);
	assert_string_equal(cfg.daily_maintenance.storages[0], "default");
	assert_string_equal(cfg.daily_maintenance.storages[1], "other");
	assert_string_equal(cfg.cgroups.mountpoint, "/sys/fs/cgroup");
	assert_string_equal(cfg.cgroups.hierarchy_root, "gitaly");
	assert_int_equal(cfg.cgroups.repositories.count, 0);
	assert_int_equal(cfg.cgroups.repositories.max_cgroups_per_repo, 0);
	assert_string_equal(cfg.backup.layout, "pointer");
	assert_int_equal(cfg.timeout.upload_pack_negotiation_ms, 600000);
	assert_int_equal(cfg.timeout.upload_archive_negotiation_ms, 60000);
	assert_null(cfg.runtime_dir);
	assert_string_equal(cfg.storages[0].path, "/srv/repos");
	assert_string_equal(cfg.storages[1].path, "rel/dir");
	assert_non_null(config_storage_find(&cfg, "other"));
	assert_null(config_storage_find(&cfg, "nope"));
	config_release(&cfg);
}

static void test_defaults_derived(void **state)
{
	struct config cfg;
	struct error err = ERROR_INIT;
	const char *toml = "[[storage]]\nname = \"s\"\npath = \"/srv/s\"\n"
			   "[gitlab-shell]\ndir = \"/opt/shell\"\n"
			   "[pack_objects_cache]\nenabled = true\n"
			   "[daily_maintenance]\ndisabled = true\n"
			   "[cgroups]\ncount = 5\n[cgroups.memory]\nenabled = true\nlimit = 1024\n"
			   "[cgroups.cpu]\nenabled = false\nshares = 7\n"
			   "[git]\ncatfile_cache_size = -3\n";

	assert_int_equal(load(&cfg, toml, &err), 0);
	assert_string_equal(cfg.gitlab.secret_file, "/opt/shell/.gitlab_shell_secret");
	assert_string_equal(cfg.hooks.custom_hooks_dir, "/opt/shell/hooks");
	assert_string_equal(cfg.pack_objects_cache.dir, "/srv/s/+gitaly/PackObjectsCache");
	assert_int_equal(cfg.pack_objects_cache.max_age_ms, 300000);
	/* a non-zero maintenance table keeps its zero duration and storages */
	assert_int_equal(cfg.daily_maintenance.disabled, 1);
	assert_int_equal(cfg.daily_maintenance.duration_ms, 0);
	assert_int_equal(cfg.daily_maintenance.n_storages, 0);
	assert_int_equal(cfg.cgroups.repositories.count, 5);
	assert_int_equal(cfg.cgroups.repositories.max_cgroups_per_repo, 1);
	assert_int_equal(cfg.cgroups.repositories.limits.memory_bytes, 1024);
	assert_int_equal(cfg.cgroups.repositories.limits.cpu_shares, 0);
	assert_int_equal(cfg.git.catfile_cache_size, 100);
	config_release(&cfg);

	/* legacy keys are ignored once repositories.count is set */
	assert_int_equal(load(&cfg, "[cgroups]\ncount = 5\n[cgroups.repositories]\ncount = 2\n"
				    "max_cgroups_per_repo = 2\n", &err), 0);
	assert_int_equal(cfg.cgroups.repositories.count, 2);
	assert_int_equal(cfg.cgroups.repositories.max_cgroups_per_repo, 2);
	config_release(&cfg);

	/* a plain [storage] table fills one element, like go-toml does */
	assert_int_equal(load(&cfg, "[storage]\nname = \"one\"\npath = \"/one\"\n", &err), 0);
	assert_int_equal(cfg.n_storages, 1);
	assert_string_equal(cfg.storages[0].name, "one");
	config_release(&cfg);

	/* secret set: no default secret_file */
	assert_int_equal(load(&cfg, "[gitlab]\nsecret = \"x\"\n", &err), 0);
	assert_null(cfg.gitlab.secret_file);
	config_release(&cfg);
}

static void test_every_key(void **state)
{
	struct config cfg;
	struct error err = ERROR_INIT;
	const char *toml =
		"config_command = \"\"\n"
		"socket_path = \"/s\"\nlisten_addr = \"l:1\"\ntls_listen_addr = \"t:2\"\n"
		"prometheus_listen_addr = \"p:3\"\nbin_dir = \"/b\"\nruntime_dir = \"/r\"\n"
		"graceful_restart_timeout = \"1h30m\"\n"
		"[auth]\ntoken = \"tok\"\ntransitioning = true\nprevious_tokens = [\"old1\", \"old2\"]\n"
		"[tls]\ncertificate_path = \"/c\"\nkey_path = \"/k\"\nkey = \"PEM\"\n"
		"[[storage]]\nname = \"a\"\npath = \"/a\"\n"
		"[logging]\nformat = \"json\"\nlevel = \"debug\"\ndir = \"/log\"\nsentry_dsn = \"dsn\"\n"
		"sentry_environment = \"env\"\n"
		"[prometheus]\ngrpc_latency_buckets = [1, 2.5]\nscrape_timeout = \"2s\"\n"
		"[git]\nbin_path = \"/g\"\nuse_bundled_binaries = true\ncatfile_cache_size = 7\n"
		"signing_key = \"/sk\"\nrotated_signing_keys = [\"/r1\"]\ncommitter_name = \"n\"\n"
		"committer_email = \"e\"\n[[git.config]]\nkey = \"core.x\"\nvalue = \"1\"\n"
		"[gitlab]\nurl = \"http://u\"\nrelative_url_root = \"/r\"\nsecret_file = \"/sf\"\n"
		"[gitlab.http-settings]\nread_timeout = 9\nuser = \"us\"\npassword = \"pw\"\n"
		"ca_file = \"/caf\"\nca_path = \"/cap\"\n"
		"[gitlab-shell]\ndir = \"/gs\"\n[hooks]\ncustom_hooks_dir = \"/h\"\n"
		"[[concurrency]]\nrpc = \"/x.Y/Z\"\nmax_per_repo = 3\nmax_queue_size = 4\n"
		"max_queue_wait = \"1.5s\"\nadaptive = true\ninitial_limit = 5\nmin_limit = 1\nmax_limit = 9\n"
		"[[rate_limiting]]\nrpc = \"/a.B/C\"\ninterval = \"300ms\"\nburst = 8\n"
		"[pack_objects_cache]\nenabled = true\ndir = \"/poc\"\nmax_age = \"10m\"\nmin_occurrences = 3\n"
		"[pack_objects_limiting]\nmax_concurrency = 11\nmax_queue_length = 12\n"
		"max_queue_wait = \"1m\"\nadaptive = true\ninitial_limit = 2\nmin_limit = 1\nmax_limit = 3\n"
		"[adaptive_limiting]\ncpu_throttled_threshold = 0.25\nmemory_threshold = 0.75\n"
		"[daily_maintenance]\nstart_hour = 3\nstart_minute = 4\nduration = \"45m\"\n"
		"storages = [\"a\"]\ndisabled = false\n"
		"[cgroups]\nmountpoint = \"/m\"\nhierarchy_root = \"hr\"\nmemory_bytes = 100\n"
		"cpu_shares = 200\ncpu_quota_us = 300\nmetrics_enabled = true\n"
		"[cgroups.repositories]\ncount = 4\nmax_cgroups_per_repo = 2\nmemory_bytes = 10\n"
		"cpu_shares = 20\ncpu_quota_us = 30\n"
		"[backup]\ngo_cloud_url = \"s3://b\"\nlayout = \"legacy\"\n"
		"[timeout]\nupload_pack_negotiation = \"2m\"\nupload_archive_negotiation = \"3m\"\n"
		"[transactions]\nenabled = true\n";

	assert_int_equal(load(&cfg, toml, &err), 0);
	assert_string_equal(cfg.socket_path, "/s");
	assert_string_equal(cfg.listen_addr, "l:1");
	assert_string_equal(cfg.tls_listen_addr, "t:2");
	assert_string_equal(cfg.prometheus_listen_addr, "p:3");
	assert_string_equal(cfg.bin_dir, "/b");
	assert_string_equal(cfg.runtime_dir, "/r");
	assert_int_equal(cfg.graceful_restart_timeout_ms, 5400000);
	assert_string_equal(cfg.auth.token, "tok");
	assert_int_equal(cfg.auth.transitioning, 1);
	assert_int_equal(cfg.auth.n_previous_tokens, 2);
	assert_string_equal(cfg.auth.previous_tokens[1], "old2");
	assert_string_equal(cfg.tls.certificate_path, "/c");
	assert_string_equal(cfg.tls.key_path, "/k");
	assert_string_equal(cfg.tls.key, "PEM");
	assert_string_equal(cfg.logging.format, "json");
	assert_string_equal(cfg.logging.level, "debug");
	assert_string_equal(cfg.logging.dir, "/log");
	assert_string_equal(cfg.logging.sentry_dsn, "dsn");
	assert_string_equal(cfg.logging.sentry_environment, "env");
	assert_int_equal(cfg.prometheus.n_grpc_latency_buckets, 2);
	assert_true(cfg.prometheus.grpc_latency_buckets[1] == 2.5);
	assert_int_equal(cfg.prometheus.scrape_timeout_ms, 2000);
	assert_string_equal(cfg.git.bin_path, "/g");
	assert_int_equal(cfg.git.use_bundled_binaries, 1);
	assert_int_equal(cfg.git.catfile_cache_size, 7);
	assert_string_equal(cfg.git.signing_key, "/sk");
	assert_string_equal(cfg.git.rotated_signing_keys[0], "/r1");
	assert_string_equal(cfg.git.committer_name, "n");
	assert_string_equal(cfg.git.committer_email, "e");
	assert_int_equal(cfg.git.n_config, 1);
	assert_string_equal(cfg.git.config[0].key, "core.x");
	assert_string_equal(cfg.git.config[0].value, "1");
	assert_string_equal(cfg.gitlab.url, "http://u");
	assert_string_equal(cfg.gitlab.relative_url_root, "/r");
	assert_string_equal(cfg.gitlab.secret_file, "/sf");
	assert_int_equal(cfg.gitlab.http_settings.read_timeout, 9);
	assert_string_equal(cfg.gitlab.http_settings.user, "us");
	assert_string_equal(cfg.gitlab.http_settings.password, "pw");
	assert_string_equal(cfg.gitlab.http_settings.ca_file, "/caf");
	assert_string_equal(cfg.gitlab.http_settings.ca_path, "/cap");
	assert_string_equal(cfg.gitlab_shell.dir, "/gs");
	assert_string_equal(cfg.hooks.custom_hooks_dir, "/h");
	assert_int_equal(cfg.n_concurrency, 1);
	assert_string_equal(cfg.concurrency[0].rpc, "/x.Y/Z");
	assert_int_equal(cfg.concurrency[0].max_per_repo, 3);
	assert_int_equal(cfg.concurrency[0].max_queue_size, 4);
	assert_int_equal(cfg.concurrency[0].max_queue_wait_ms, 1500);
	assert_int_equal(cfg.concurrency[0].adaptive, 1);
	assert_int_equal(cfg.concurrency[0].initial_limit, 5);
	assert_int_equal(cfg.concurrency[0].min_limit, 1);
	assert_int_equal(cfg.concurrency[0].max_limit, 9);
	assert_string_equal(cfg.rate_limiting[0].rpc, "/a.B/C");
	assert_int_equal(cfg.rate_limiting[0].interval_ms, 300);
	assert_int_equal(cfg.rate_limiting[0].burst, 8);
	assert_int_equal(cfg.pack_objects_cache.enabled, 1);
	assert_string_equal(cfg.pack_objects_cache.dir, "/poc");
	assert_int_equal(cfg.pack_objects_cache.max_age_ms, 600000);
	assert_int_equal(cfg.pack_objects_cache.min_occurrences, 3);
	assert_int_equal(cfg.pack_objects_limiting.max_concurrency, 11);
	assert_int_equal(cfg.pack_objects_limiting.max_queue_length, 12);
	assert_int_equal(cfg.pack_objects_limiting.max_queue_wait_ms, 60000);
	assert_int_equal(cfg.pack_objects_limiting.adaptive, 1);
	assert_int_equal(cfg.pack_objects_limiting.initial_limit, 2);
	assert_int_equal(cfg.pack_objects_limiting.min_limit, 1);
	assert_int_equal(cfg.pack_objects_limiting.max_limit, 3);
	assert_true(cfg.adaptive_limiting.cpu_throttled_threshold == 0.25);
	assert_true(cfg.adaptive_limiting.memory_threshold == 0.75);
	assert_int_equal(cfg.daily_maintenance.start_hour, 3);
	assert_int_equal(cfg.daily_maintenance.start_minute, 4);
	assert_int_equal(cfg.daily_maintenance.duration_ms, 2700000);
	assert_string_equal(cfg.daily_maintenance.storages[0], "a");
	assert_string_equal(cfg.cgroups.mountpoint, "/m");
	assert_string_equal(cfg.cgroups.hierarchy_root, "hr");
	assert_int_equal(cfg.cgroups.limits.memory_bytes, 100);
	assert_int_equal(cfg.cgroups.limits.cpu_shares, 200);
	assert_int_equal(cfg.cgroups.limits.cpu_quota_us, 300);
	assert_int_equal(cfg.cgroups.metrics_enabled, 1);
	assert_int_equal(cfg.cgroups.repositories.count, 4);
	assert_int_equal(cfg.cgroups.repositories.max_cgroups_per_repo, 2);
	assert_int_equal(cfg.cgroups.repositories.limits.memory_bytes, 10);
	assert_int_equal(cfg.cgroups.repositories.limits.cpu_shares, 20);
	assert_int_equal(cfg.cgroups.repositories.limits.cpu_quota_us, 30);
	assert_string_equal(cfg.backup.go_cloud_url, "s3://b");
	assert_string_equal(cfg.backup.layout, "legacy");
	assert_int_equal(cfg.timeout.upload_pack_negotiation_ms, 120000);
	assert_int_equal(cfg.timeout.upload_archive_negotiation_ms, 180000);
	assert_int_equal(cfg.transactions.enabled, 1);
	config_release(&cfg);
}

/* Builds "[a.b]\nkey = <wrong>" (or [[...]]) for every leaf of the schema and
 * checks the error names the key path, the line and the Go type. */
static int type_errors_in(const struct cschema *s, const char *table, int is_arr, int *checked)
{
	for (size_t i = 0; i < s->n; i++) {
		const struct cfield *f = &s->fields[i];
		char path[256], toml[512], want_key[300], want_go[300];
		struct config cfg;
		struct error err = ERROR_INIT;
		const char *wrong;
		int line;

		if (!f->toml)
			continue;
		snprintf(path, sizeof(path), "%s%s%s", table, *table ? "." : "", f->toml);
		if (f->kind == CF_TABLE) {
			type_errors_in(f->sub, path, 0, checked);
			continue;
		}
		if (f->kind == CF_TABARR) {
			type_errors_in(f->sub, path, 1, checked);
			continue;
		}
		wrong = f->kind == CF_STR ? "1" : f->kind == CF_DUR ? "1979-05-27" : "\"x\"";
		if (*table) {
			snprintf(toml, sizeof(toml), "# comment\n%s%s%s\n%s = %s\n", is_arr ? "[[" : "[",
				 table, is_arr ? "]]" : "]", f->toml, wrong);
			line = 3;
		} else {
			snprintf(toml, sizeof(toml), "# comment\n%s = %s\n", f->toml, wrong);
			line = 2;
		}
		assert_int_equal(config_load(&cfg, toml, strlen(toml), &err), -1);
		snprintf(want_key, sizeof(want_key), "line %d column ", line);
		if (!strstr(err.message, want_key))
			fail_msg("%s: no line in %s", path, err.message);
		snprintf(want_key, sizeof(want_key), "key %s:", path);
		if (!strstr(err.message, want_key))
			fail_msg("%s: no key in %s", path, err.message);
		snprintf(want_go, sizeof(want_go), "into struct field %s.%s of type %s", s->goname, f->goname,
			 f->gotype);
		if (!strstr(err.message, want_go))
			fail_msg("%s: no Go field in %s", path, err.message);
		assert_int_equal(err.code, STATUS_INVALID_ARGUMENT);
		error_release(&err);
		(*checked)++;
	}
	return 0;
}

static void test_type_errors(void **state)
{
	int checked = 0;

	type_errors_in(&config_schema_root, "", 0, &checked);
	assert_true(checked >= 90);
}

static void test_type_error_message(void **state)
{
	struct config cfg;
	struct error err = ERROR_INIT;
	const char *toml = "[logging]\nlevel = \"info\"\n\n[git]\ncatfile_cache_size = \"many\"\n";

	assert_int_equal(config_load(&cfg, toml, strlen(toml), &err), -1);
	assert_string_equal(err.message,
			    "load toml: line 5 column 22: key git.catfile_cache_size: toml: cannot decode TOML "
			    "string into struct field config.Git.CatfileCacheSize of type int");
	error_release(&err);

	toml = "[daily_maintenance]\nstart_hour = -1\n";
	assert_int_equal(config_load(&cfg, toml, strlen(toml), &err), -1);
	assert_non_null(strstr(err.message, "key daily_maintenance.start_hour"));
	error_release(&err);

	toml = "[auth]\nprevious_tokens = [\"a\", 2]\n";
	assert_int_equal(config_load(&cfg, toml, strlen(toml), &err), -1);
	assert_non_null(strstr(err.message, "key auth.previous_tokens"));
	error_release(&err);

	/* go-toml's own wording for booleans and floats */
	toml = "socket_path = true\n";
	assert_int_equal(config_load(&cfg, toml, strlen(toml), &err), -1);
	assert_string_equal(err.message, "load toml: line 1 column 15: key socket_path: toml: cannot assign "
					 "boolean to a true");
	error_release(&err);
	toml = "[git]\ncatfile_cache_size = 1.5\n";
	assert_int_equal(config_load(&cfg, toml, strlen(toml), &err), -1);
	assert_non_null(strstr(err.message, "toml: float cannot be assigned to int"));
	error_release(&err);

	/* an integer duration is nanoseconds, as go-toml stores it */
	toml = "graceful_restart_timeout = 90000000000\n";
	assert_int_equal(config_load(&cfg, toml, strlen(toml), &err), 0);
	assert_int_equal(cfg.graceful_restart_timeout_ms, 90000);
	config_release(&cfg);

	toml = "graceful_restart_timeout = \"bad value\"\n";
	assert_int_equal(config_load(&cfg, toml, strlen(toml), &err), -1);
	assert_string_equal(err.message, "load toml: line 1 column 28: key graceful_restart_timeout: toml: "
					 "time: invalid duration \"bad value\"");
	error_release(&err);
}

static void test_durations(void **state)
{
	static const struct { const char *in; int64_t ms; } ok[] = {
		{ "0", 0 }, { "1m", 60000 }, { "300ms", 300 }, { "1h30m", 5400000 }, { "1.5s", 1500 },
		{ "-2s", -2000 }, { "+3s", 3000 }, { "1h1m1s", 3661000 }, { ".5s", 500 }, { "1.s", 1000 },
		{ "1500us", 1 }, { "1500\xc2\xb5s", 1 }, { "999999ns", 0 }, { "2h45m30.5s", 9930500 },
		{ "0s", 0 }, { "-0", 0 }, { "24h", 86400000 }, { "1m0s", 60000 },
	};
	static const struct { const char *in, *msg; } bad[] = {
		{ "", "time: invalid duration \"\"" },
		{ "bad value", "time: invalid duration \"bad value\"" },
		{ "1", "time: missing unit in duration \"1\"" },
		{ "10", "time: missing unit in duration \"10\"" },
		{ "1x", "time: unknown unit \"x\" in duration \"1x\"" },
		{ "1sec", "time: unknown unit \"sec\" in duration \"1sec\"" },
		{ "-", "time: invalid duration \"-\"" },
		{ ".s", "time: invalid duration \".s\"" },
		{ "s", "time: invalid duration \"s\"" },
		{ "9999999999h", "time: invalid duration \"9999999999h\"" },
		{ "1\xc2\xb5x", "time: unknown unit \"\\xc2\\xb5x\" in duration \"1\\xc2\\xb5x\"" },
		{ "a\"b", "time: invalid duration \"a\\\"b\"" },
	};
	struct error err = ERROR_INIT;
	int64_t ms;

	for (size_t i = 0; i < sizeof(ok) / sizeof(ok[0]); i++) {
		if (config_parse_duration(ok[i].in, &ms, &err) < 0)
			fail_msg("%s: %s", ok[i].in, err.message);
		assert_int_equal(ms, ok[i].ms);
	}
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		assert_int_equal(config_parse_duration(bad[i].in, &ms, &err), -1);
		assert_string_equal(err.message, bad[i].msg);
		error_release(&err);
	}
}

static void test_format_duration(void **state)
{
	static const struct { int64_t ms; const char *out; } cases[] = {
		{ 0, "0s" }, { 300, "300ms" }, { 1500, "1.5s" }, { 60000, "1m0s" }, { 5400000, "1h30m0s" },
		{ -1000, "-1s" }, { 86400000, "24h0m0s" }, { 90500, "1m30.5s" }, { 3600010, "1h0m0.01s" },
	};
	char buf[48];

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		config_format_duration(cases[i].ms, buf, sizeof(buf));
		assert_string_equal(buf, cases[i].out);
	}
}

static void test_go_float(void **state)
{
	static const struct { double v; const char *out; } cases[] = {
		{ 0.001, "0.001" }, { 1, "1" }, { 1500, "1500" }, { 0.5, "0.5" }, { 1e6, "1e+06" },
		{ 123456, "123456" }, { 0.0001, "0.0001" }, { 0.00001, "1e-05" }, { 2.5e21, "2.5e+21" },
		{ -3.25, "-3.25" }, { 100000, "100000" },
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct strbuf sb = STRBUF_INIT;
		config_go_float(&sb, cases[i].v);
		assert_string_equal(sb.buf, cases[i].out);
		strbuf_release(&sb);
	}
}

static void test_unknown_keys(void **state)
{
	char path[] = "/tmp/config-log-XXXXXX";
	int fd = mkstemp(path);
	struct config cfg;
	struct error err = ERROR_INIT;
	char buf[8192];
	ssize_t n;
	const char *toml = "self_signed_cert = true\n[[storage]]\nname = \"a\"\npath = \"/a\"\nnmae = 1\n"
			   "[[storage]]\nname = \"b\"\npath = \"/b\"\nnmae = 2\n"
			   "[gitaly-ruby]\ndir = \"/x\"\n[git]\nignore_gitconfig = true\n";

	assert_true(fd >= 0);
	log_configure(LOG_FORMAT_TEXT, LOG_INFO, fd);
	assert_int_equal(load(&cfg, toml, &err), 0);
	log_configure(LOG_FORMAT_TEXT, LOG_INFO, 2);
	n = pread(fd, buf, sizeof(buf) - 1, 0);
	assert_true(n > 0);
	buf[n] = 0;
	assert_non_null(strstr(buf, "unknown configuration key self_signed_cert"));
	assert_non_null(strstr(buf, "unknown configuration key gitaly-ruby"));
	assert_non_null(strstr(buf, "unknown configuration key git.ignore_gitconfig"));
	/* once per key path, even when it repeats in each [[storage]] */
	char *first = strstr(buf, "unknown configuration key storage.nmae");
	assert_non_null(first);
	assert_null(strstr(first + 1, "unknown configuration key storage.nmae"));
	assert_non_null(strstr(buf, "warn"));
	assert_int_equal(cfg.n_storages, 2);
	config_release(&cfg);
	close(fd);
	unlink(path);
}

/* --- config_command ------------------------------------------------------- */

static char tmpdir[64];

static const char *script(const char *name, const char *body)
{
	static char path[256];
	FILE *f;

	snprintf(path, sizeof(path), "%s/%s", tmpdir, name);
	f = fopen(path, "w");
	assert_non_null(f);
	fprintf(f, "#!/bin/sh\n%s", body);
	fclose(f);
	chmod(path, 0755);
	return path;
}

static int load_with_command(struct config *cfg, const char *name, const char *body, const char *rest,
			     struct error *err)
{
	char toml[4096];

	snprintf(toml, sizeof(toml), "config_command = \"%s\"\n%s", script(name, body), rest);
	return config_load(cfg, toml, strlen(toml), err);
}

static void test_command_merge(void **state)
{
	struct config cfg;
	struct error err = ERROR_INIT;
	const char *body =
		"cat <<'EOF'\n"
		"{\"git\":{\"signing_key\":\"/new/key\"},\n"
		" \"tls\":{\"cert_path\":\"/c.pem\",\"certificate_path\":\"/ignored\"},\n"
		" \"gitlab\":{\"http_settings\":{\"read_timeout\":42,\"user\":\"u\"},\"url\":\"http://gl\"},\n"
		" \"AUTH\":{\"TOKEN\":\"secret\"},\n"
		" \"cgroups\":{\"HierarchyRoot\":\"custom\",\"hierarchy_root\":\"ignored\",\n"
		"   \"Repositories\":{\"Count\":3,\"MemoryBytes\":1000},\"cpushares\":512},\n"
		" \"graceful_restart_timeout\":\"2m\",\n"
		" \"storage\":[{\"name\":\"first\"},{\"Name\":\"second\",\"Path\":\"/s2\"}],\n"
		" \"daily_maintenance\":{\"storages\":[\"second\"]},\n"
		" \"unknown_key\":{\"x\":1}}\n"
		"EOF\n";
	const char *rest = "[git]\nbin_path = \"/usr/bin/git\"\nsigning_key = \"/old\"\n"
			   "[gitlab]\nurl = \"http://old\"\n[gitlab.http-settings]\npassword = \"pw\"\n"
			   "[[storage]]\nname = \"old0\"\npath = \"/p0\"\n"
			   "[[storage]]\nname = \"old1\"\npath = \"/p1\"\n"
			   "[[storage]]\nname = \"old2\"\npath = \"/p2\"\n"
			   "[daily_maintenance]\nstorages = [\"old0\", \"old1\"]\nstart_hour = 5\n";

	if (load_with_command(&cfg, "merge.sh", body, rest, &err) < 0)
		fail_msg("%s", err.message);
	/* nested objects merge field by field */
	assert_string_equal(cfg.git.signing_key, "/new/key");
	assert_string_equal(cfg.git.bin_path, "/usr/bin/git");
	assert_string_equal(cfg.tls.certificate_path, "/c.pem");
	assert_int_equal(cfg.gitlab.http_settings.read_timeout, 42);
	assert_string_equal(cfg.gitlab.http_settings.user, "u");
	assert_string_equal(cfg.gitlab.http_settings.password, "pw");
	assert_string_equal(cfg.gitlab.url, "http://gl");
	assert_string_equal(cfg.auth.token, "secret");
	assert_string_equal(cfg.cgroups.hierarchy_root, "custom");
	assert_int_equal(cfg.cgroups.repositories.count, 3);
	assert_int_equal(cfg.cgroups.repositories.limits.memory_bytes, 1000);
	assert_int_equal(cfg.cgroups.limits.cpu_shares, 512);
	assert_int_equal(cfg.cgroups.repositories.max_cgroups_per_repo, 1);
	assert_int_equal(cfg.graceful_restart_timeout_ms, 120000);
	/* arrays replace; elements reuse the TOML element at the same index */
	assert_int_equal(cfg.n_storages, 2);
	assert_string_equal(cfg.storages[0].name, "first");
	assert_string_equal(cfg.storages[0].path, "/p0");
	assert_string_equal(cfg.storages[1].name, "second");
	assert_string_equal(cfg.storages[1].path, "/s2");
	assert_int_equal(cfg.daily_maintenance.n_storages, 1);
	assert_string_equal(cfg.daily_maintenance.storages[0], "second");
	assert_int_equal(cfg.daily_maintenance.start_hour, 5);
	config_release(&cfg);
}

static void test_command_replace_and_clear(void **state)
{
	struct config cfg;
	struct error err = ERROR_INIT;

	assert_int_equal(load_with_command(&cfg, "clear.sh",
					   "echo '{\"storage\":[],\"prometheus\":{\"grpc_latency_buckets\":[5,6]},"
					   "\"auth\":{\"previous_tokens\":[\"p1\"]},\"git\":{\"config\":null}}'\n",
					   "[[storage]]\nname = \"a\"\npath = \"/a\"\n"
					   "[[git.config]]\nkey = \"a.b\"\nvalue = \"c\"\n",
					   &err),
			 0);
	assert_int_equal(cfg.n_storages, 0);
	assert_int_equal(cfg.git.n_config, 0);
	assert_int_equal(cfg.prometheus.n_grpc_latency_buckets, 2);
	assert_true(cfg.prometheus.grpc_latency_buckets[1] == 6);
	assert_int_equal(cfg.auth.n_previous_tokens, 1);
	assert_string_equal(cfg.auth.previous_tokens[0], "p1");
	/* defaults run after the merge: maintenance sees no storages */
	assert_int_equal(cfg.daily_maintenance.n_storages, 0);
	config_release(&cfg);
}

static void test_command_failures(void **state)
{
	struct config cfg;
	struct error err = ERROR_INIT;
	char want[512];

	assert_int_equal(load_with_command(&cfg, "fail.sh", "echo '{}'\necho 'boom \"x\"' >&2\nexit 3\n", "", &err),
			 -1);
	assert_string_equal(err.message, "running config command: exit status 3, stderr: \"boom \\\"x\\\"\\n\"");
	error_release(&err);

	assert_int_equal(load_with_command(&cfg, "bad.sh", "echo 'not json'\n", "", &err), -1);
	assert_true(strncmp(err.message, "unmarshalling generated config: ", 32) == 0);
	error_release(&err);

	assert_int_equal(load_with_command(&cfg, "empty.sh", "true\n", "", &err), -1);
	assert_string_equal(err.message, "unmarshalling generated config: unexpected end of JSON input");
	error_release(&err);

	assert_int_equal(load_with_command(&cfg, "type.sh", "echo '{\"git\":{\"bin_path\":1}}'\n", "", &err), -1);
	assert_string_equal(err.message, "unmarshalling generated config: json: cannot unmarshal number into Go "
					 "struct field Git.git.bin_path of type string");
	error_release(&err);

	assert_int_equal(load_with_command(&cfg, "dur.sh", "echo '{\"graceful_restart_timeout\":\"soon\"}'\n", "",
					   &err),
			 -1);
	assert_string_equal(err.message, "unmarshalling generated config: time: invalid duration \"soon\"");
	error_release(&err);

	assert_int_equal(load_with_command(&cfg, "arr.sh", "echo '[1]'\n", "", &err), -1);
	assert_string_equal(err.message, "unmarshalling generated config: json: cannot unmarshal array into Go "
					 "value of type config.Cfg");
	error_release(&err);

	/* no shell, no args: a missing or non-executable path fails at exec */
	snprintf(want, sizeof(want), "config_command = \"%s/missing\"\n", tmpdir);
	assert_int_equal(config_load(&cfg, want, strlen(want), &err), -1);
	snprintf(want, sizeof(want), "running config command: fork/exec %s/missing: no such file or directory",
		 tmpdir);
	assert_string_equal(err.message, want);
	error_release(&err);

	script("noexec.sh", "echo '{}'\n");
	{
		char p[256], toml[512];
		snprintf(p, sizeof(p), "%s/noexec.sh", tmpdir);
		chmod(p, 0644);
		snprintf(toml, sizeof(toml), "config_command = \"%s\"\n", p);
		assert_int_equal(config_load(&cfg, toml, strlen(toml), &err), -1);
		snprintf(want, sizeof(want), "running config command: fork/exec %s: permission denied", p);
		assert_string_equal(err.message, want);
		error_release(&err);
	}

	/* a bare name is looked up in $PATH, as exec.Command does */
	{
		const char *toml = "config_command = \"no-such-config-command-xyz\"\n";
		assert_int_equal(config_load(&cfg, toml, strlen(toml), &err), -1);
		assert_string_equal(err.message, "running config command: exec: \"no-such-config-command-xyz\": "
						 "executable file not found in $PATH");
		error_release(&err);
		char *old = getenv("PATH") ? strdup(getenv("PATH")) : NULL;
		setenv("PATH", tmpdir, 1);
		script("pathcmd.sh", "echo '{\"listen_addr\":\"from-path\"}'\n");
		toml = "config_command = \"pathcmd.sh\"\n";
		int r = config_load(&cfg, toml, strlen(toml), &err);
		if (old) {
			setenv("PATH", old, 1);
			free(old);
		}
		assert_int_equal(r, 0);
		assert_string_equal(cfg.listen_addr, "from-path");
		config_release(&cfg);
	}

	/* killed by a signal */
	assert_int_equal(load_with_command(&cfg, "kill.sh", "kill -9 $$\n", "", &err), -1);
	assert_string_equal(err.message, "running config command: signal: killed, stderr: \"\"");
	error_release(&err);

	/* endless output is cut at the cap and the command is killed, not waited for */
	assert_int_equal(load_with_command(&cfg, "endless.sh", "exec yes '{}'\n", "", &err), -1);
	assert_string_equal(err.message, "running config command: output exceeds 16777216 bytes");
	error_release(&err);
}

static void test_command_stdin_and_args(void **state)
{
	struct config cfg;
	struct error err = ERROR_INIT;

	/* stdin is empty and there are no arguments */
	assert_int_equal(load_with_command(&cfg, "args.sh",
					   "n=$#\nin=$(cat)\nprintf '{\"socket_path\":\"%s-%s\"}' \"$n\" \"$in\"\n", "",
					   &err),
			 0);
	assert_string_equal(cfg.socket_path, "0-");
	config_release(&cfg);
}

static void test_load_file(void **state)
{
	struct config cfg;
	struct error err = ERROR_INIT;
	char path[256];
	FILE *f;

	snprintf(path, sizeof(path), "%s/config.toml", tmpdir);
	f = fopen(path, "w");
	assert_non_null(f);
	fputs("listen_addr = \"localhost:1\"\n[auth]\ntoken = \"t\"\n", f);
	fclose(f);
	assert_int_equal(config_load_file(&cfg, path, &err), 0);
	assert_string_equal(cfg.listen_addr, "localhost:1");
	assert_string_equal(cfg.auth.token, "t");
	config_release(&cfg);
	unlink(path);

	assert_int_equal(config_load_file(&cfg, path, &err), -1);
	assert_non_null(strstr(err.message, "No such file or directory"));
	error_release(&err);
}

static int setup(void **state)
{
	snprintf(tmpdir, sizeof(tmpdir), "/tmp/config-test-XXXXXX");
	return mkdtemp(tmpdir) ? 0 : -1;
}

static int teardown(void **state)
{
	char cmd[128];
	/* remove the scripts written above */
	snprintf(cmd, sizeof(cmd), "%s", tmpdir);
	const char *names[] = { "merge.sh", "clear.sh", "fail.sh", "bad.sh", "empty.sh", "type.sh",
				"dur.sh", "arr.sh", "noexec.sh", "kill.sh", "args.sh", "pathcmd.sh" };
	for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
		char p[256];
		snprintf(p, sizeof(p), "%s/%s", tmpdir, names[i]);
		unlink(p);
	}
	rmdir(cmd);
	return 0;
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_defaults),
		cmocka_unit_test(test_defaults_derived),
		cmocka_unit_test(test_every_key),
		cmocka_unit_test(test_type_errors),
		cmocka_unit_test(test_type_error_message),
		cmocka_unit_test(test_durations),
		cmocka_unit_test(test_format_duration),
		cmocka_unit_test(test_go_float),
		cmocka_unit_test(test_unknown_keys),
		cmocka_unit_test(test_command_merge),
		cmocka_unit_test(test_command_replace_and_clear),
		cmocka_unit_test(test_command_failures),
		cmocka_unit_test(test_command_stdin_and_args),
		cmocka_unit_test(test_load_file),
	};
	return cmocka_run_group_tests(tests, setup, teardown);
}
