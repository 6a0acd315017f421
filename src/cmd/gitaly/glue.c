/*
 * Glue between `gitaly serve` and modules owned elsewhere: storage
 * preparation (.gitaly-metadata, +gitaly/{tmp,cache,state}, stale temporary
 * files), the metrics endpoint and the `configuration validate` subcommand.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "base/log.h"
#include "cmd/gitaly/gitaly.h"
#include "config/config.h"
#include "net/metrics_http.h"

/* Upstream's tempdir cleaner removes entries older than a week. */
#define TMP_MAX_AGE_S (7 * 24 * 3600)

int gitaly_configuration_validate(void)
{
	return config_validate_command(stdin, stdout);
}

static int rm_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
	(void)st;
	(void)ftw;
	if (flag == FTW_DP)
		rmdir(path);
	else
		unlink(path);
	return 0;
}

static int mkdir_if_missing(const char *path, struct error *err)
{
	if (mkdir(path, 0755) < 0 && errno != EEXIST)
		return error_set(err, STATUS_INTERNAL, "mkdir %s: %s", path, strerror(errno));
	return 0;
}

/* Writes <storage>/.gitaly-metadata once: {"gitaly_filesystem_id":"<uuid4>"}. */
static int write_metadata(const char *storage, struct error *err)
{
	char path[PATH_MAX], tmp[PATH_MAX], json[128];
	unsigned char u[16];
	int fd;

	snprintf(path, sizeof(path), "%s/.gitaly-metadata", storage);
	if (access(path, F_OK) == 0)
		return 0;
	if (getrandom(u, sizeof(u), 0) != (ssize_t)sizeof(u))
		return error_set(err, STATUS_INTERNAL, "getrandom: %s", strerror(errno));
	u[6] = (unsigned char)((u[6] & 0x0f) | 0x40);
	u[8] = (unsigned char)((u[8] & 0x3f) | 0x80);
	int n = snprintf(json, sizeof(json),
			 "{\"gitaly_filesystem_id\":\"%02x%02x%02x%02x-%02x%02x-%02x%02x-%02x%02x-"
			 "%02x%02x%02x%02x%02x%02x\"}",
			 u[0], u[1], u[2], u[3], u[4], u[5], u[6], u[7], u[8], u[9], u[10], u[11],
			 u[12], u[13], u[14], u[15]);
	snprintf(tmp, sizeof(tmp), "%s/.gitaly-metadata.%d.tmp", storage, (int)getpid());
	fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	if (fd < 0)
		return error_set(err, STATUS_INTERNAL, "write %s: %s", tmp, strerror(errno));
	if (write(fd, json, (size_t)n) != n || fsync(fd) < 0) {
		int e = errno;
		close(fd);
		unlink(tmp);
		return error_set(err, STATUS_INTERNAL, "write %s: %s", tmp, strerror(e));
	}
	close(fd);
	/* link() fails if another process won the race: the first id stays. */
	if (link(tmp, path) < 0 && errno != EEXIST) {
		int e = errno;
		unlink(tmp);
		return error_set(err, STATUS_INTERNAL, "write %s: %s", path, strerror(e));
	}
	unlink(tmp);
	return 0;
}

static void clean_tmp(const char *storage)
{
	char dir[PATH_MAX];
	DIR *d;
	struct dirent *de;
	time_t now = time(NULL);

	snprintf(dir, sizeof(dir), "%s/+gitaly/tmp", storage);
	d = opendir(dir);
	if (!d)
		return;
	while ((de = readdir(d))) {
		char p[PATH_MAX + 256];
		struct stat st;
		if (!strcmp(de->d_name, ".") || !strcmp(de->d_name, ".."))
			continue;
		snprintf(p, sizeof(p), "%s/%s", dir, de->d_name);
		if (lstat(p, &st) < 0 || now - st.st_mtime < TMP_MAX_AGE_S)
			continue;
		nftw(p, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
	}
	closedir(d);
}

int gitaly_setup_storages(const struct config *cfg, struct error *err)
{
	for (size_t i = 0; i < cfg->n_storages; i++) {
		const char *root = cfg->storages[i].path;
		char p[PATH_MAX];
		struct error e = ERROR_INIT;

		if (write_metadata(root, &e) < 0) {
			/* Upstream logs this and carries on. */
			log_msg(LOG_ERROR, "Unable to write gitaly metadata file: %s", e.message);
			error_release(&e);
		}
		snprintf(p, sizeof(p), "%s/+gitaly", root);
		if (mkdir_if_missing(p, err) < 0)
			return -1;
		static const char *const subs[] = { "tmp", "cache", "state" };
		for (size_t k = 0; k < 3; k++) {
			snprintf(p, sizeof(p), "%s/+gitaly/%s", root, subs[k]);
			if (mkdir_if_missing(p, err) < 0)
				return -1;
		}
		clean_tmp(root);
	}
	return 0;
}

void gitaly_clean_storages(const struct config *cfg)
{
	for (size_t i = 0; i < cfg->n_storages; i++)
		clean_tmp(cfg->storages[i].path);
}

int gitaly_start_metrics(const char *addr, struct error *err)
{
	/* Serves until the process exits. */
	static struct metrics_http *h;
	return metrics_http_start(addr, &h, err);
}
