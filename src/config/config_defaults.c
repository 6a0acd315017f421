/*
 * Defaults, in two steps like upstream: values seeded before decoding (so an
 * explicit TOML value can still override them) and SetDefaults after the
 * config_command merge. A few defaults upstream applies later, at use sites
 * (catfile cache size, GitLab read timeout, adaptive thresholds, the
 * pack-objects cache dir and max age), are applied here too so consumers
 * read final values. runtime_dir stays NULL when unset: the caller creates a
 * temporary directory, as upstream's SetupRuntimeDirectory does.
 */
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "base/fsutil.h"
#include "config/config_internal.h"

static const double default_buckets[] = { 0.001, 0.005, 0.025, 0.1, 0.5, 1.0, 10.0, 30.0, 60.0, 300.0, 1500.0 };

int config_seed_defaults(struct config *cfg)
{
	size_t n = sizeof(default_buckets) / sizeof(default_buckets[0]);

	cfg->prometheus.grpc_latency_buckets = malloc(sizeof(default_buckets));
	cfg->logging.level = strdup("info");
	if (!cfg->prometheus.grpc_latency_buckets || !cfg->logging.level)
		return -1;
	memcpy(cfg->prometheus.grpc_latency_buckets, default_buckets, sizeof(default_buckets));
	cfg->prometheus.n_grpc_latency_buckets = n;
	cfg->prometheus.scrape_timeout_ms = 10000;
	cfg->pack_objects_cache.min_occurrences = 1;
	cfg->pack_objects_limiting.max_concurrency = 200;
	return 0;
}

/* filepath.Join(dir, name): name under dir, cleaned; "" dir gives name. */
static char *path_join(const char *dir, const char *name)
{
	size_t dl = dir ? strlen(dir) : 0, nl = strlen(name);
	char *tmp = malloc(dl + nl + 2), *res;

	if (!tmp)
		return NULL;
	if (dl) {
		memcpy(tmp, dir, dl);
		tmp[dl] = '/';
		memcpy(tmp + dl + 1, name, nl + 1);
	} else {
		memcpy(tmp, name, nl + 1);
	}
	res = fsutil_path_clean(tmp);
	free(tmp);
	return res;
}

static int is_empty(const char *s)
{
	return !s || !*s;
}

static int set_str(char **dst, const char *v)
{
	char *d = strdup(v);
	if (!d)
		return -1;
	free(*dst);
	*dst = d;
	return 0;
}

static int maintenance_is_zero(const struct config *cfg)
{
	return cfg->daily_maintenance.start_hour == 0 && cfg->daily_maintenance.start_minute == 0 &&
	       cfg->daily_maintenance.duration_ms == 0 && cfg->daily_maintenance.storages == NULL &&
	       !cfg->daily_maintenance.disabled;
}

int config_apply_defaults(struct config *cfg, struct error *err)
{
	int ret = -1;

	if (cfg->graceful_restart_timeout_ms == 0)
		cfg->graceful_restart_timeout_ms = 60000;

	if (is_empty(cfg->gitlab.secret_file) && is_empty(cfg->gitlab.secret)) {
		char *p = path_join(cfg->gitlab_shell.dir, ".gitlab_shell_secret");
		if (!p)
			goto oom;
		free(cfg->gitlab.secret_file);
		cfg->gitlab.secret_file = p;
	}
	if (is_empty(cfg->hooks.custom_hooks_dir) && !is_empty(cfg->gitlab_shell.dir)) {
		char *p = path_join(cfg->gitlab_shell.dir, "hooks");
		if (!p)
			goto oom;
		free(cfg->hooks.custom_hooks_dir);
		cfg->hooks.custom_hooks_dir = p;
	}

	/* An all-zero [daily_maintenance] means the default window. Go's
	 * DeepEqual tells a nil storages slice from an empty one; so do we. */
	if (maintenance_is_zero(cfg)) {
		cfg->daily_maintenance.start_hour = 12;
		cfg->daily_maintenance.start_minute = 0;
		cfg->daily_maintenance.duration_ms = 10 * 60000;
		cfg->daily_maintenance.storages = calloc(cfg->n_storages + 1, sizeof(char *));
		if (!cfg->daily_maintenance.storages)
			goto oom;
		for (size_t i = 0; i < cfg->n_storages; i++) {
			cfg->daily_maintenance.storages[i] =
				strdup(cfg->storages[i].name ? cfg->storages[i].name : "");
			if (!cfg->daily_maintenance.storages[i])
				goto oom;
			cfg->daily_maintenance.n_storages = i + 1;
		}
	}

	if (is_empty(cfg->cgroups.mountpoint) && set_str(&cfg->cgroups.mountpoint, "/sys/fs/cgroup") < 0)
		goto oom;
	if (is_empty(cfg->cgroups.hierarchy_root) && set_str(&cfg->cgroups.hierarchy_root, "gitaly") < 0)
		goto oom;
	/* Deprecated cgroups keys apply only when repositories.count is unset. */
	if (cfg->cgroups.repositories.count == 0) {
		cfg->cgroups.repositories.count = cfg->cgroups.legacy.count;
		if (cfg->cgroups.repositories.limits.memory_bytes == 0 && cfg->cgroups.legacy.memory_enabled)
			cfg->cgroups.repositories.limits.memory_bytes = cfg->cgroups.legacy.memory_limit;
		if (cfg->cgroups.repositories.limits.cpu_shares == 0 && cfg->cgroups.legacy.cpu_enabled)
			cfg->cgroups.repositories.limits.cpu_shares = cfg->cgroups.legacy.cpu_shares;
	}
	if (cfg->cgroups.repositories.count != 0 && cfg->cgroups.repositories.max_cgroups_per_repo == 0)
		cfg->cgroups.repositories.max_cgroups_per_repo = 1;

	if (is_empty(cfg->backup.layout) && set_str(&cfg->backup.layout, "pointer") < 0)
		goto oom;
	if (cfg->timeout.upload_pack_negotiation_ms == 0)
		cfg->timeout.upload_pack_negotiation_ms = 10 * 60000;
	if (cfg->timeout.upload_archive_negotiation_ms == 0)
		cfg->timeout.upload_archive_negotiation_ms = 60000;

	/* Defaults upstream applies where the values are used. */
	if (cfg->git.catfile_cache_size <= 0)
		cfg->git.catfile_cache_size = 100;
	if (cfg->gitlab.http_settings.read_timeout == 0)
		cfg->gitlab.http_settings.read_timeout = 300;
	if (cfg->adaptive_limiting.cpu_throttled_threshold == 0)
		cfg->adaptive_limiting.cpu_throttled_threshold = 0.5;
	if (cfg->adaptive_limiting.memory_threshold == 0)
		cfg->adaptive_limiting.memory_threshold = 0.9;

	for (size_t i = 0; i < cfg->n_storages; i++) {
		char *p = fsutil_path_clean(cfg->storages[i].path ? cfg->storages[i].path : "");
		if (!p)
			goto oom;
		free(cfg->storages[i].path);
		cfg->storages[i].path = p;
	}

	/* upstream: configurePackObjectsCache, at Validate time, only if enabled */
	if (cfg->pack_objects_cache.enabled) {
		if (cfg->pack_objects_cache.max_age_ms == 0)
			cfg->pack_objects_cache.max_age_ms = 5 * 60000;
		if (is_empty(cfg->pack_objects_cache.dir) && cfg->n_storages > 0) {
			char *p = path_join(cfg->storages[0].path, "+gitaly/PackObjectsCache");
			if (!p)
				goto oom;
			free(cfg->pack_objects_cache.dir);
			cfg->pack_objects_cache.dir = p;
		}
	}
	ret = 0;
	goto out;
oom:
	error_set(err, STATUS_INTERNAL, "out of memory");
out:
	return ret;
}

int config_absolutize_dirs(struct config *cfg, struct error *err)
{
	char **dirs[2] = { &cfg->bin_dir, &cfg->runtime_dir };

	for (int i = 0; i < 2; i++) {
		char *d = *dirs[i], *abs;
		if (is_empty(d))
			continue;
		if (d[0] == '/') {
			abs = fsutil_path_clean(d);
		} else {
			char *cwd = getcwd(NULL, 0);
			if (!cwd)
				return error_set(err, STATUS_INTERNAL, "getwd: cannot resolve working directory");
			abs = path_join(cwd, d);
			free(cwd);
		}
		if (!abs)
			return error_set(err, STATUS_INTERNAL, "out of memory");
		free(d);
		*dirs[i] = abs;
	}
	return 0;
}
