/*
 * The on-disk layout of a storage that is not a repository: the
 * `.gitaly-metadata` file holding the filesystem id, the `+gitaly/{tmp,
 * cache,state}` directories, temporary directories and their hourly sweep,
 * and the filesystem type reported by ServerInfo (upstream's statfs magic
 * names, internal/helper/fstype).
 */
#ifndef GIT_STORAGE_H
#define GIT_STORAGE_H

#include <stddef.h>
#include <stdint.h>

#include "base/error.h"

#define STORAGE_METADATA_FILE ".gitaly-metadata"
#define STORAGE_TMP_DIR "+gitaly/tmp"
#define STORAGE_CACHE_DIR "+gitaly/cache"
#define STORAGE_STATE_DIR "+gitaly/state"
/* Upstream removes +gitaly/tmp entries older than this (7 days). */
#define STORAGE_TMP_MAX_AGE_SECONDS ((int64_t)7 * 24 * 3600)

/*
 * Prepares an existing storage directory at startup: creates +gitaly/tmp,
 * +gitaly/cache and +gitaly/state, and writes .gitaly-metadata as
 * {"gitaly_filesystem_id":"<uuid v4>"}\n when it does not exist yet (temp
 * file, fsync, rename without replacing, fsync of the directory). An
 * existing metadata file is never rewritten, even by concurrent starts.
 * A missing storage directory is NotFound; other failures Internal.
 */
int storage_setup(const char *path, struct error *err);

/*
 * Removes the entries of <path>/+gitaly/tmp whose mtime is older than
 * max_age_seconds (whole trees, never following symlinks; neither +gitaly
 * nor tmp may be a symlink). *removed (may be NULL) counts top-level entries
 * removed. A missing tmp directory is not an error.
 */
int storage_clean_tmp(const char *path, int64_t max_age_seconds, size_t *removed,
		      struct error *err);

/*
 * Reads gitaly_filesystem_id from <path>/.gitaly-metadata into a malloc'd
 * string. Missing file: NotFound; unreadable or malformed: Internal
 * (ServerInfo logs these and reports an empty id).
 */
int storage_filesystem_id(const char *path, char **out, struct error *err);

/* Upstream's name of the filesystem holding path ("EXT_2_3_4", "XFS",
 * "BTRFS", "NFS", "TMPFS", "OVERLAYFS", ...) or "unknown". Static string. */
const char *storage_fs_type(const char *path);
/* The name for one statfs f_type magic ("unknown" when not in the table). */
const char *storage_fs_type_name(unsigned long magic);

/*
 * Creates a fresh private directory <path>/+gitaly/tmp/<prefix><random>
 * (like Go's os.MkdirTemp) and returns its malloc'd path. The tmp
 * directory is created when missing. A prefix containing '/' is
 * InvalidArgument.
 */
int storage_tempdir(const char *path, const char *prefix, char **out, struct error *err);

/* A random UUID v4 in canonical lowercase form into buf (37 bytes). */
int storage_uuid4(char buf[37], struct error *err);

#endif
