/*
 * The pieces of ServerService below the RPC layer, exposed for unit tests.
 */
#ifndef SERVICE_SERVER_INTERNAL_H
#define SERVICE_SERVER_INTERNAL_H

#include <stdint.h>

#include "base/error.h"
#include "google/protobuf/duration.pb-c.h"

/* readable: the storage path stats; writeable: a "+testWrite" probe file can
 * be written (and is removed again). */
void server_storage_probe(const char *path, int *readable, int *writeable);

/* The id in path/.gitaly-metadata (storage_filesystem_id), served from a
 * cache while a stat of the file shows it unchanged; *out is malloc'd. */
int server_filesystem_id(const char *path, char **out, struct error *err);

/* What ServerInfo reports for one storage. */
struct server_storage_status {
	int readable, writeable;
	const char *fs_type; /* static string */
	char *fsid;          /* malloc'd; NULL when it could not be read ... */
	char *fsid_error;    /* ... and then why (malloc'd) */
};

/* Takes in the changes reported since the last check: call it once before
 * a round of server_storage_status calls. */
void server_storage_status_check(void);

/* Fills *out for the storage at path, reusing the previous answer while no
 * watched change happened (up to the last server_storage_status_check) and
 * it is younger than a second (see server_status.c); release it with
 * server_storage_status_release. */
void server_storage_status(const char *path, struct server_storage_status *out);
void server_storage_status_release(struct server_storage_status *st);
/* Calls answered from the cache and calls that read the storage (tests). */
void server_storage_status_counts(uint64_t *hits, uint64_t *reads);

/* Validates a Duration as Go's CheckValid (InvalidArgument) and converts it. */
int server_check_duration(const Google__Protobuf__Duration *d, int64_t *out_ns,
			  struct error *err);

/* SNTP query against ntp_host ("" or NULL: pool.ntp.org); *synced when
 * |offset| <= threshold_ns. Errors are Internal, worded as upstream. */
int server_clock_synced(const char *ntp_host, int64_t threshold_ns, int timeout_ms, int *synced,
			struct error *err);

/* statvfs of path: available and used bytes as upstream computes them. */
int server_disk_status(const char *path, int64_t *available, int64_t *used);

#endif
