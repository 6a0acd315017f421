/*
 * The schema of config.toml: one table per TOML table listing each key, its
 * config_command JSON name (upstream's json tags, or Go field names where
 * upstream has none), its Go name and type (for upstream-shaped type errors)
 * and where it lives in struct config. Loading, JSON merging and releasing
 * all walk these tables, so a key is declared exactly once.
 */
#include <stddef.h>
#include <stdlib.h>

#include "config/config_internal.h"

#define C(f) offsetof(struct config, f)
#define NELEM(a) (sizeof(a) / sizeof((a)[0]))
#define SCHEMA(name, go, size, arr) \
	static const struct cschema name = { go, size, arr, NELEM(arr) }

#define FSTR(t, j, g, off) { t, j, g, "string", CF_STR, off, 0, NULL }
#define FBOOL(t, j, g, off) { t, j, g, "bool", CF_BOOL, off, 0, NULL }
#define FINT(t, j, g, ty, off) { t, j, g, ty, CF_INT, off, 0, NULL }
#define FUINT(t, j, g, ty, off) { t, j, g, ty, CF_UINT, off, 0, NULL }
#define FU32(t, j, g, off) { t, j, g, "uint", CF_UINT32, off, 0, NULL }
#define FFLOAT(t, j, g, off) { t, j, g, "float64", CF_FLOAT, off, 0, NULL }
#define FDUR(t, j, g, off) { t, j, g, "duration.Duration", CF_DUR, off, 0, NULL }
#define FSTRARR(t, j, g, off, n) { t, j, g, "[]string", CF_STRARR, off, n, NULL }
#define FFLOATARR(t, j, g, off, n) { t, j, g, "[]float64", CF_FLOATARR, off, n, NULL }
#define FTABLE(t, j, g, ty, sub) { t, j, g, ty, CF_TABLE, 0, 0, &sub }
#define FTABARR(t, j, g, ty, off, n, sub) { t, j, g, ty, CF_TABARR, off, n, &sub }

static const struct cfield auth_fields[] = {
	FSTR("token", "Token", "Token", C(auth.token)),
	FBOOL("transitioning", "Transitioning", "Transitioning", C(auth.transitioning)),
	FSTRARR("previous_tokens", "previous_tokens", "PreviousTokens", C(auth.previous_tokens),
		C(auth.n_previous_tokens)),
};
SCHEMA(auth_schema, "auth.Config", 0, auth_fields);

static const struct cfield tls_fields[] = {
	FSTR("certificate_path", "cert_path", "CertPath", C(tls.certificate_path)),
	FSTR("key_path", "key_path", "KeyPath", C(tls.key_path)),
	FSTR("key", "key", "Key", C(tls.key)),
};
SCHEMA(tls_schema, "config.TLS", 0, tls_fields);

#define S(f) offsetof(struct config_storage, f)
static const struct cfield storage_fields[] = {
	FSTR("name", "Name", "Name", S(name)),
	FSTR("path", "Path", "Path", S(path)),
};
SCHEMA(storage_schema, "config.Storage", sizeof(struct config_storage), storage_fields);

static const struct cfield logging_fields[] = {
	FSTR("format", "format", "Format", C(logging.format)),
	FSTR("level", "level", "Level", C(logging.level)),
	FSTR("dir", "dir", "Dir", C(logging.dir)),
	FSTR("sentry_dsn", "sentry_dsn", "DSN", C(logging.sentry_dsn)),
	FSTR("sentry_environment", "sentry_environment", "Environment",
	     C(logging.sentry_environment)),
};
SCHEMA(logging_schema, "config.Logging", 0, logging_fields);

static const struct cfield prometheus_fields[] = {
	FFLOATARR("grpc_latency_buckets", "grpc_latency_buckets", "GRPCLatencyBuckets",
		  C(prometheus.grpc_latency_buckets), C(prometheus.n_grpc_latency_buckets)),
	FDUR("scrape_timeout", "scrape_timeout", "ScrapeTimeout", C(prometheus.scrape_timeout_ms)),
};
SCHEMA(prometheus_schema, "prometheus.Config", 0, prometheus_fields);

#define G(f) offsetof(struct config_git_config, f)
static const struct cfield gitconfig_fields[] = {
	FSTR("key", "key", "Key", G(key)),
	FSTR("value", "value", "Value", G(value)),
};
SCHEMA(gitconfig_schema, "config.GitConfig", sizeof(struct config_git_config), gitconfig_fields);

static const struct cfield git_fields[] = {
	FSTR("bin_path", "bin_path", "BinPath", C(git.bin_path)),
	FBOOL("use_bundled_binaries", "use_bundled_binaries", "UseBundledBinaries",
	      C(git.use_bundled_binaries)),
	FINT("catfile_cache_size", "catfile_cache_size", "CatfileCacheSize", "int",
	     C(git.catfile_cache_size)),
	FTABARR("config", "config", "Config", "[]config.GitConfig", C(git.config), C(git.n_config),
		gitconfig_schema),
	FSTR("signing_key", "signing_key", "SigningKey", C(git.signing_key)),
	FSTRARR("rotated_signing_keys", "rotated_signing_keys", "RotatedSigningKeys",
		C(git.rotated_signing_keys), C(git.n_rotated_signing_keys)),
	FSTR("committer_name", "committer_name", "CommitterName", C(git.committer_name)),
	FSTR("committer_email", "committer_email", "CommitterEmail", C(git.committer_email)),
};
SCHEMA(git_schema, "config.Git", 0, git_fields);

static const struct cfield http_fields[] = {
	FUINT("read_timeout", "read_timeout", "ReadTimeout", "uint64",
	      C(gitlab.http_settings.read_timeout)),
	FSTR("user", "user", "User", C(gitlab.http_settings.user)),
	FSTR("password", "password", "Password", C(gitlab.http_settings.password)),
	FSTR("ca_file", "ca_file", "CAFile", C(gitlab.http_settings.ca_file)),
	FSTR("ca_path", "ca_path", "CAPath", C(gitlab.http_settings.ca_path)),
};
SCHEMA(http_schema, "config.HTTPSettings", 0, http_fields);

static const struct cfield gitlab_fields[] = {
	FSTR("url", "url", "URL", C(gitlab.url)),
	FSTR("relative_url_root", "relative_url_root", "RelativeURLRoot", C(gitlab.relative_url_root)),
	FTABLE("http-settings", "http_settings", "HTTPSettings", "config.HTTPSettings", http_schema),
	FSTR("secret_file", "secret_file", "SecretFile", C(gitlab.secret_file)),
	FSTR("secret", "secret", "Secret", C(gitlab.secret)),
};
SCHEMA(gitlab_schema, "config.Gitlab", 0, gitlab_fields);

static const struct cfield shell_fields[] = {
	FSTR("dir", "dir", "Dir", C(gitlab_shell.dir)),
};
SCHEMA(shell_schema, "config.GitlabShell", 0, shell_fields);

static const struct cfield hooks_fields[] = {
	FSTR("custom_hooks_dir", "custom_hooks_dir", "CustomHooksDir", C(hooks.custom_hooks_dir)),
};
SCHEMA(hooks_schema, "config.Hooks", 0, hooks_fields);

#define Q(f) offsetof(struct config_concurrency, f)
static const struct cfield concurrency_fields[] = {
	FSTR("rpc", "rpc", "RPC", Q(rpc)),
	FBOOL("adaptive", "adaptive", "Adaptive", Q(adaptive)),
	FINT("initial_limit", "initial_limit", "InitialLimit", "int", Q(initial_limit)),
	FINT("max_limit", "max_limit", "MaxLimit", "int", Q(max_limit)),
	FINT("min_limit", "min_limit", "MinLimit", "int", Q(min_limit)),
	FINT("max_per_repo", "max_per_repo", "MaxPerRepo", "int", Q(max_per_repo)),
	FINT("max_queue_size", "max_queue_size", "MaxQueueSize", "int", Q(max_queue_size)),
	FDUR("max_queue_wait", "max_queue_wait", "MaxQueueWait", Q(max_queue_wait_ms)),
};
SCHEMA(concurrency_schema, "config.Concurrency", sizeof(struct config_concurrency),
       concurrency_fields);

#define R(f) offsetof(struct config_rate_limiting, f)
static const struct cfield rate_fields[] = {
	FSTR("rpc", "rpc", "RPC", R(rpc)),
	FDUR("interval", "interval", "Interval", R(interval_ms)),
	FINT("burst", "burst", "Burst", "int", R(burst)),
};
SCHEMA(rate_schema, "config.RateLimiting", sizeof(struct config_rate_limiting), rate_fields);

static const struct cfield maint_fields[] = {
	FU32("start_hour", "start_hour", "Hour", C(daily_maintenance.start_hour)),
	FU32("start_minute", "start_minute", "Minute", C(daily_maintenance.start_minute)),
	FDUR("duration", "duration", "Duration", C(daily_maintenance.duration_ms)),
	FSTRARR("storages", "storages", "Storages", C(daily_maintenance.storages),
		C(daily_maintenance.n_storages)),
	FBOOL("disabled", "disabled", "Disabled", C(daily_maintenance.disabled)),
};
SCHEMA(maint_schema, "config.DailyJob", 0, maint_fields);

/* cgroups has no json tags upstream: JSON keys are the Go field names. */
static const struct cfield cgrepo_fields[] = {
	FUINT("count", "Count", "Count", "uint", C(cgroups.repositories.count)),
	FUINT("max_cgroups_per_repo", "MaxCgroupsPerRepo", "MaxCgroupsPerRepo", "uint",
	      C(cgroups.repositories.max_cgroups_per_repo)),
	FINT("memory_bytes", "MemoryBytes", "MemoryBytes", "int64",
	     C(cgroups.repositories.limits.memory_bytes)),
	FUINT("cpu_shares", "CPUShares", "CPUShares", "uint64", C(cgroups.repositories.limits.cpu_shares)),
	FINT("cpu_quota_us", "CPUQuotaUs", "CPUQuotaUs", "int64",
	     C(cgroups.repositories.limits.cpu_quota_us)),
};
SCHEMA(cgrepo_schema, "cgroups.Repositories", 0, cgrepo_fields);

static const struct cfield cgcpu_fields[] = {
	FBOOL("enabled", "Enabled", "Enabled", C(cgroups.legacy.cpu_enabled)),
	FUINT("shares", "Shares", "Shares", "uint64", C(cgroups.legacy.cpu_shares)),
};
SCHEMA(cgcpu_schema, "cgroups.CPU", 0, cgcpu_fields);

static const struct cfield cgmem_fields[] = {
	FBOOL("enabled", "Enabled", "Enabled", C(cgroups.legacy.memory_enabled)),
	FINT("limit", "Limit", "Limit", "int64", C(cgroups.legacy.memory_limit)),
};
SCHEMA(cgmem_schema, "cgroups.Memory", 0, cgmem_fields);

static const struct cfield cgroups_fields[] = {
	FSTR("mountpoint", "Mountpoint", "Mountpoint", C(cgroups.mountpoint)),
	FSTR("hierarchy_root", "HierarchyRoot", "HierarchyRoot", C(cgroups.hierarchy_root)),
	FTABLE("repositories", "Repositories", "Repositories", "cgroups.Repositories", cgrepo_schema),
	FINT("memory_bytes", "MemoryBytes", "MemoryBytes", "int64", C(cgroups.limits.memory_bytes)),
	FUINT("cpu_shares", "CPUShares", "CPUShares", "uint64", C(cgroups.limits.cpu_shares)),
	FINT("cpu_quota_us", "CPUQuotaUs", "CPUQuotaUs", "int64", C(cgroups.limits.cpu_quota_us)),
	FBOOL("metrics_enabled", "MetricsEnabled", "MetricsEnabled", C(cgroups.metrics_enabled)),
	FUINT("count", "Count", "Count", "uint", C(cgroups.legacy.count)),
	FTABLE("cpu", "CPU", "CPU", "cgroups.CPU", cgcpu_schema),
	FTABLE("memory", "Memory", "Memory", "cgroups.Memory", cgmem_schema),
};
SCHEMA(cgroups_schema, "cgroups.Config", 0, cgroups_fields);

static const struct cfield poc_fields[] = {
	FBOOL("enabled", "enabled", "Enabled", C(pack_objects_cache.enabled)),
	FSTR("dir", "dir", "Dir", C(pack_objects_cache.dir)),
	FDUR("max_age", "max_age", "MaxAge", C(pack_objects_cache.max_age_ms)),
	FINT("min_occurrences", "min_occurrences", "MinOccurrences", "int",
	     C(pack_objects_cache.min_occurrences)),
};
SCHEMA(poc_schema, "config.StreamCacheConfig", 0, poc_fields);

static const struct cfield pol_fields[] = {
	FBOOL("adaptive", "adaptive", "Adaptive", C(pack_objects_limiting.adaptive)),
	FINT("initial_limit", "initial_limit", "InitialLimit", "int", C(pack_objects_limiting.initial_limit)),
	FINT("max_limit", "max_limit", "MaxLimit", "int", C(pack_objects_limiting.max_limit)),
	FINT("min_limit", "min_limit", "MinLimit", "int", C(pack_objects_limiting.min_limit)),
	FINT("max_concurrency", "max_concurrency", "MaxConcurrency", "int",
	     C(pack_objects_limiting.max_concurrency)),
	FDUR("max_queue_wait", "max_queue_wait", "MaxQueueWait", C(pack_objects_limiting.max_queue_wait_ms)),
	FINT("max_queue_length", "max_queue_length", "MaxQueueLength", "int",
	     C(pack_objects_limiting.max_queue_length)),
};
SCHEMA(pol_schema, "config.PackObjectsLimiting", 0, pol_fields);

static const struct cfield backup_fields[] = {
	FSTR("go_cloud_url", "go_cloud_url", "GoCloudURL", C(backup.go_cloud_url)),
	FSTR("layout", "layout", "Layout", C(backup.layout)),
};
SCHEMA(backup_schema, "config.BackupConfig", 0, backup_fields);

static const struct cfield timeout_fields[] = {
	FDUR("upload_pack_negotiation", "upload_pack_negotiation", "UploadPackNegotiation",
	     C(timeout.upload_pack_negotiation_ms)),
	FDUR("upload_archive_negotiation", "upload_archive_negotiation", "UploadArchiveNegotiation",
	     C(timeout.upload_archive_negotiation_ms)),
};
SCHEMA(timeout_schema, "config.TimeoutConfig", 0, timeout_fields);

static const struct cfield tx_fields[] = {
	FBOOL("enabled", "enabled", "Enabled", C(transactions.enabled)),
};
SCHEMA(tx_schema, "config.Transactions", 0, tx_fields);

static const struct cfield al_fields[] = {
	FFLOAT("cpu_throttled_threshold", "cpu_throttled_threshold", "CPUThrottledThreshold",
	       C(adaptive_limiting.cpu_throttled_threshold)),
	FFLOAT("memory_threshold", "memory_threshold", "MemoryThreshold",
	       C(adaptive_limiting.memory_threshold)),
};
SCHEMA(al_schema, "config.AdaptiveLimiting", 0, al_fields);

static const struct cfield root_fields[] = {
	FSTR("config_command", "config_command", "ConfigCommand", C(config_command)),
	FSTR("socket_path", "socket_path", "SocketPath", C(socket_path)),
	FSTR("listen_addr", "listen_addr", "ListenAddr", C(listen_addr)),
	FSTR("tls_listen_addr", "tls_listen_addr", "TLSListenAddr", C(tls_listen_addr)),
	FSTR("prometheus_listen_addr", "prometheus_listen_addr", "PrometheusListenAddr",
	     C(prometheus_listen_addr)),
	FSTR("bin_dir", "bin_dir", "BinDir", C(bin_dir)),
	FSTR("runtime_dir", "runtime_dir", "RuntimeDir", C(runtime_dir)),
	FTABLE("git", "git", "Git", "config.Git", git_schema),
	FTABARR("storage", "storage", "Storages", "[]config.Storage", C(storages), C(n_storages),
		storage_schema),
	FTABLE("logging", "logging", "Logging", "config.Logging", logging_schema),
	FTABLE("prometheus", "prometheus", "Prometheus", "prometheus.Config", prometheus_schema),
	FTABLE("auth", "auth", "Auth", "auth.Config", auth_schema),
	FTABLE("tls", "tls", "TLS", "config.TLS", tls_schema),
	FTABLE("gitlab", "gitlab", "Gitlab", "config.Gitlab", gitlab_schema),
	FTABLE("gitlab-shell", "gitlab-shell", "GitlabShell", "config.GitlabShell", shell_schema),
	FTABLE("hooks", "hooks", "Hooks", "config.Hooks", hooks_schema),
	FTABARR("concurrency", "concurrency", "Concurrency", "[]config.Concurrency", C(concurrency),
		C(n_concurrency), concurrency_schema),
	FTABARR("rate_limiting", "rate_limiting", "RateLimiting", "[]config.RateLimiting",
		C(rate_limiting), C(n_rate_limiting), rate_schema),
	FDUR("graceful_restart_timeout", "graceful_restart_timeout", "GracefulRestartTimeout",
	     C(graceful_restart_timeout_ms)),
	FTABLE("daily_maintenance", "daily_maintenance", "DailyMaintenance", "config.DailyJob",
	       maint_schema),
	FTABLE("cgroups", "cgroups", "Cgroups", "cgroups.Config", cgroups_schema),
	FTABLE("pack_objects_cache", "pack_objects_cache", "PackObjectsCache",
	       "config.StreamCacheConfig", poc_schema),
	FTABLE("pack_objects_limiting", "pack_objects_limiting", "PackObjectsLimiting",
	       "config.PackObjectsLimiting", pol_schema),
	FTABLE("backup", "backup", "Backup", "config.BackupConfig", backup_schema),
	FTABLE("timeout", "timeout", "Timeout", "config.TimeoutConfig", timeout_schema),
	FTABLE("transactions", "transactions", "Transactions", "config.Transactions", tx_schema),
	FTABLE("adaptive_limiting", "adaptive_limiting", "AdaptiveLimiting", "config.AdaptiveLimiting",
	       al_schema),
};
const struct cschema config_schema_root = { "config.Cfg", sizeof(struct config), root_fields,
					    NELEM(root_fields) };
