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
	int64_t root_delay_ns, root_dispersion_ns;
	int64_t reference_time_ns, transmit_time_ns; /* Unix epoch */
	int transmit_is_zero;
	char kiss_code[5]; /* reference id as text, for stratum 0 */
};

/*
 * Queries host ("name", "name:port", "[v6]:port"; port 123 when absent),
 * waiting at most timeout_ms for an answer to our request (mode 4, origin
 * timestamp echoing ours), and fills *out. Errors are STATUS_INTERNAL
 * (upstream's status handler turns plain errors into Internal) describing
 * the lookup, socket, timeout or malformed answer.
 */
int ntp_query(const char *host, int timeout_ms, struct ntp_response *out, struct error *err);

/*
 * Upstream's response checks: "invalid leap second", "kiss of death
 * received: <code>", "invalid stratum in response", "invalid time
 * reported", "invalid dispersion" (STATUS_INTERNAL).
 */
int ntp_validate(const struct ntp_response *resp, struct error *err);

#endif
