/*
 * A minimal SNTP (RFC 4330) client for ServerService.ClockSynced: one query
 * over UDP, the response checked as upstream's NTP library does, and the
 * local clock offset computed from the four timestamps.
 */
#ifndef SERVICE_NTP_H
#define SERVICE_NTP_H

#include <stdint.h>

#include "base/error.h"

struct ntp_response {
	int64_t clock_offset_ns; /* server clock minus local clock */
	int64_t rtt_ns;
	unsigned stratum;
	unsigned leap;
};

/*
 * Queries host ("name", "name:port", "[v6]:port"; port 123 when absent),
 * waiting at most timeout_ms for the answer, and validates the response.
 * Errors are STATUS_INTERNAL (upstream's status handler turns plain errors into Internal) with messages
 * describing the lookup, socket, timeout or validation failure.
 */
int ntp_query(const char *host, int timeout_ms, struct ntp_response *out, struct error *err);

#endif
