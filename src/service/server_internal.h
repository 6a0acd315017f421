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
