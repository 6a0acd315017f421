/*
 * Gitaly's config.toml as typed configuration: upstream's keys and defaults
 * (reference/gitaly-server.md section 1). Loading is: TOML -> struct,
 * config_command JSON merged over it, defaults; validation is separate
 * (config_validate for serve/check, config_validate_all for
 * `gitaly configuration validate`).
 *
 * Durations are kept in milliseconds; strings are owned by the struct.
 */
#ifndef CONFIG_CONFIG_H
#define CONFIG_CONFIG_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "base/error.h"

struct config_storage {
	char *name;
	char *path;
};

struct config_git_config {
	char *key;
	char *value;
};

struct config_concurrency {
	char *rpc;
	int64_t max_per_repo;
	int64_t max_queue_size;
	int64_t max_queue_wait_ms;
	int adaptive;
	int64_t initial_limit, min_limit, max_limit;
};

struct config_rate_limiting {
	char *rpc;
	int64_t interval_ms;
	int64_t burst;
};

struct config_cgroup_limits {
	int64_t memory_bytes;
	uint64_t cpu_shares;
	int64_t cpu_quota_us;
};

struct config {
	/* top level */
	char *socket_path;
	char *listen_addr;
	char *tls_listen_addr;
	char *prometheus_listen_addr;
	char *bin_dir;
	char *runtime_dir; /* NULL when unset: the caller picks a temporary dir */
	int64_t graceful_restart_timeout_ms; /* default 1m */
	char *config_command;

	struct {
		char *token;
		int transitioning;
		/* Beyond upstream: tokens still accepted during a rotation. */
		char **previous_tokens;
		size_t n_previous_tokens;
	} auth;

	struct {
		char *certificate_path;
		char *key_path;
		char *key; /* inline PEM, exclusive with key_path */
	} tls;

	struct config_storage *storages;
	size_t n_storages;

	struct {
		char *format; /* "", "text", "json" */
		char *level;  /* default "info" */
		char *dir;
		char *sentry_dsn;
		char *sentry_environment;
	} logging;

	struct {
		double *grpc_latency_buckets;
		size_t n_grpc_latency_buckets;
		int64_t scrape_timeout_ms; /* default 10s */
	} prometheus;

	struct {
		char *bin_path;
		int use_bundled_binaries;
		int64_t catfile_cache_size; /* default 100 when <= 0 */
		struct config_git_config *config;
		size_t n_config;
		char *signing_key;
		char **rotated_signing_keys;
		size_t n_rotated_signing_keys;
		char *committer_name;
		char *committer_email;
	} git;

	struct {
		char *url;
		char *relative_url_root;
		char *secret;
		char *secret_file;
		struct {
			uint64_t read_timeout; /* seconds, default 300 */
			char *user;
			char *password;
			char *ca_file;
			char *ca_path;
		} http_settings;
	} gitlab;

	struct {
		char *dir;
	} gitlab_shell;

	struct {
		char *custom_hooks_dir;
	} hooks;

	struct config_concurrency *concurrency;
	size_t n_concurrency;

	struct config_rate_limiting *rate_limiting;
	size_t n_rate_limiting;

	struct {
		int enabled;
		char *dir;
		int64_t max_age_ms;      /* default 5m */
		int64_t min_occurrences; /* default 1 */
	} pack_objects_cache;

	struct {
		int64_t max_concurrency; /* default 200 */
		int64_t max_queue_length;
		int64_t max_queue_wait_ms;
		int adaptive;
		int64_t initial_limit, min_limit, max_limit;
	} pack_objects_limiting;

	struct {
		double cpu_throttled_threshold; /* default 0.5 */
		double memory_threshold;        /* default 0.9 */
	} adaptive_limiting;

	struct {
		unsigned start_hour, start_minute; /* default 12:00 */
		int64_t duration_ms;               /* default 10m */
		char **storages;                   /* default: all storages */
		size_t n_storages;
		int disabled;
	} daily_maintenance;

	struct {
		char *mountpoint;     /* default /sys/fs/cgroup */
		char *hierarchy_root; /* default gitaly */
		struct config_cgroup_limits limits;
		int metrics_enabled;
		struct {
			uint64_t count;
			uint64_t max_cgroups_per_repo;
			struct config_cgroup_limits limits;
		} repositories;
		/* Deprecated keys ([cgroups] count, [cgroups.cpu], [cgroups.memory]),
		 * folded into repositories by the defaults when its count is 0. */
		struct {
			uint64_t count;
			int cpu_enabled;
			uint64_t cpu_shares;
			int memory_enabled;
			int64_t memory_limit;
		} legacy;
	} cgroups;

	struct {
		char *go_cloud_url;
		char *layout; /* default "pointer" */
	} backup;

	struct {
		int64_t upload_pack_negotiation_ms;    /* default 10m */
		int64_t upload_archive_negotiation_ms; /* default 1m */
	} timeout;

	struct {
		int enabled;
	} transactions;
};

/* One validation problem, as `gitaly configuration validate` prints it. */
struct config_problem {
	char **key; /* path of the field, e.g. {"storage", "[0]", "path"}... as upstream */
	size_t n_key;
	char *message;
};

struct config_problems {
	struct config_problem *items;
	size_t len;
};

/*
 * Parses TOML text into cfg (zeroed first), runs config_command if set,
 * applies defaults. Unknown keys are logged once at warning level.
 * Returns 0, or -1 with err set (TOML syntax errors mention line and column).
 */
int config_load(struct config *cfg, const char *toml, size_t len, struct error *err);

/* config_load on a file's contents. */
int config_load_file(struct config *cfg, const char *path, struct error *err);

/*
 * Startup validation (serve, check): upstream's Validate() order and
 * messages (listeners, storages, git config keys, GitLab secret, bin_dir,
 * runtime_dir, maintenance, cgroups, pack-objects cache); the first problem
 * aborts with err set (InvalidArgument). Beyond upstream: tls_listen_addr
 * without [tls] cert and key, and blank previous_tokens / previous_tokens
 * without a token are rejected right after the listener check.
 */
int config_validate(const struct config *cfg, struct error *err);

/*
 * Validation for `gitaly configuration validate`: upstream's ValidateV2,
 * collecting every problem into out (which the caller releases with
 * config_problems_release) with upstream's key paths and messages. Beyond
 * upstream it also reports [[storage]] missing / not unique / nesting and
 * [auth] previous_tokens problems.
 */
void config_validate_all(const struct config *cfg, struct config_problems *out);
void config_problems_release(struct config_problems *p);

/*
 * Parses a Go duration string ("1m", "300ms", "1h30m", "1.5s", "-2s", "0")
 * into milliseconds (sub-millisecond parts are truncated toward zero).
 * Returns 0, or -1 with err set to Go's message, e.g.
 * `time: invalid duration "x"` (code InvalidArgument).
 */
int config_parse_duration(const char *s, int64_t *ms, struct error *err);

/*
 * Formats milliseconds the way Go's time.Duration.String does ("1m0s",
 * "300ms", "0s"). out must hold at least 40 bytes.
 */
void config_format_duration(int64_t ms, char *out, size_t n);

/*
 * Prints problems as `gitaly configuration validate` does: Go's encoding/json
 * with a 2-space indent, {"errors":[{"key":[...],"message":"..."}]} and a
 * trailing newline; prints nothing when p is empty. Returns 0, or -1 on a
 * write error.
 */
int config_problems_print_json(const struct config_problems *p, FILE *out);

/*
 * Prints a TOML decode error (syntax or type) the way upstream's validate
 * subcommand does: {"errors":[{"message":"line R column C: toml: <msg>"}]}.
 * Returns 0, or -1 on a write error.
 */
int config_print_decode_error_json(int line, int column, const char *msg, FILE *out);

/*
 * `gitaly configuration validate`: reads TOML from in, loads it (running
 * config_command), validates with config_validate_all and prints problems as
 * JSON to out. Read errors other than TOML decoding go to stderr as
 * "processing input data: ...". Returns the exit code: 0 clean, 2 problems
 * or a TOML error, 1 other errors.
 */
int config_validate_command(FILE *in, FILE *out);

/*
 * Makes bin_dir and runtime_dir (when set) absolute against the working
 * directory, as upstream's Validate does after checking them. Call it after
 * config_validate succeeded. Returns 0, or -1 with err set.
 */
int config_absolutize_dirs(struct config *cfg, struct error *err);

/* Looks up a storage by name; NULL if unknown. */
const struct config_storage *config_storage_find(const struct config *cfg, const char *name);

void config_release(struct config *cfg);

#endif
