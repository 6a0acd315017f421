/*
 * Glue between `gitaly serve` and modules owned elsewhere: storage
 * preparation (src/git/storage.c: .gitaly-metadata, +gitaly/{tmp,cache,state},
 * stale temporary files), the metrics endpoint and `configuration validate`.
 */
#include <stdio.h>

#include "base/log.h"
#include "cmd/gitaly/gitaly.h"
#include "config/config.h"
#include "git/storage.h"
#include "net/metrics_http.h"

int gitaly_configuration_validate(void)
{
	return config_validate_command(stdin, stdout);
}

int gitaly_setup_storages(const struct config *cfg, struct error *err)
{
	for (size_t i = 0; i < cfg->n_storages; i++) {
		const char *root = cfg->storages[i].path;
		struct error e = ERROR_INIT;

		if (storage_setup(root, &e) < 0) {
			/* Upstream logs a metadata failure and carries on; we do the same. */
			log_msg(LOG_ERROR, "Unable to write gitaly metadata file: %s", e.message);
			error_release(&e);
		}
		if (storage_clean_tmp(root, STORAGE_TMP_MAX_AGE_SECONDS, NULL, &e) < 0) {
			log_msg(LOG_WARN, "clean temporary directory of %s: %s", root, e.message);
			error_release(&e);
		}
	}
	(void)err;
	return 0;
}

void gitaly_clean_storages(const struct config *cfg)
{
	for (size_t i = 0; i < cfg->n_storages; i++) {
		struct error e = ERROR_INIT;
		if (storage_clean_tmp(cfg->storages[i].path, STORAGE_TMP_MAX_AGE_SECONDS, NULL,
				      &e) < 0) {
			log_msg(LOG_WARN, "clean temporary directory of %s: %s",
				cfg->storages[i].path, e.message);
			error_release(&e);
		}
	}
}

int gitaly_start_metrics(const char *addr, struct error *err)
{
	/* Serves until the process exits. */
	static struct metrics_http *h;
	return metrics_http_start(addr, &h, err);
}
