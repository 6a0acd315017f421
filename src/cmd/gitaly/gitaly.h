/*
 * The pieces of the gitaly binary outside main.c: the `check` and
 * `configuration validate` subcommands and the glue between serve and the
 * storage, metrics and config modules.
 */
#ifndef CMD_GITALY_GITALY_H
#define CMD_GITALY_GITALY_H

#include "base/error.h"
#include "config/config.h"

/* `gitaly check <config>`: validates the config, then GETs GitLab's
 * /api/v4/internal/check. Returns the exit status (0 ok, 1 failure). */
int gitaly_check(const char *config_path);

/* `gitaly configuration validate`: TOML on stdin, problems on stdout.
 * Returns the exit status. */
int gitaly_configuration_validate(void);

/* Prepares every storage (metadata file, +gitaly dirs, stale tmp cleanup). */
int gitaly_setup_storages(const struct config *cfg, struct error *err);

/* Removes stale temporary files of every storage (hourly). */
void gitaly_clean_storages(const struct config *cfg);

/* Serves /metrics on addr ("host:port"). */
int gitaly_start_metrics(const char *addr, struct error *err);

#endif
