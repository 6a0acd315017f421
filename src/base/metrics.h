/*
 * A small Prometheus registry: counters, gauges and histograms with label
 * values, rendered in the text exposition format (version 0.0.4). Families
 * are created once at startup; updates are thread-safe and cheap (a family
 * lock plus a hash lookup of the label values).
 *
 * Output matches Go's client_golang byte for byte where it matters to
 * scrapers and dashboards: families sorted by name, families without any
 * series left out, labels printed sorted by name, series sorted by their
 * label values, numbers formatted like Go's strconv 'g' shortest form
 * ("1", "0.005", "1e+06", "+Inf").
 */
#ifndef BASE_METRICS_H
#define BASE_METRICS_H

#include <stddef.h>

#include "base/strbuf.h"

struct metric_family;

/* At most this many series per family; updates creating more are dropped. */
#define METRICS_MAX_SERIES 20000
/* Label values longer than this are cut (they may come from clients). */
#define METRICS_MAX_LABEL_VALUE 512

/*
 * Creates (or returns the existing) family in the global registry. Names,
 * help and label names are copied. A family without labels always shows
 * its single series (at 0 until updated). Returns NULL (and logs) when the
 * name exists with another type or label count; every update function
 * accepts NULL and then does nothing.
 */
struct metric_family *metrics_counter(const char *name, const char *help,
				      const char *const *label_names, size_t n_labels);
struct metric_family *metrics_gauge(const char *name, const char *help,
				    const char *const *label_names, size_t n_labels);
/* buckets: sorted upper bounds without +Inf (copied). */
struct metric_family *metrics_histogram(const char *name, const char *help,
					const char *const *label_names, size_t n_labels,
					const double *buckets, size_t n_buckets);

/* label_values has exactly n_labels entries (NULL when n_labels is 0);
 * a NULL entry counts as "". Counters ignore negative increments. */
void metrics_add(struct metric_family *f, const char *const *label_values, double v);
void metrics_set(struct metric_family *f, const char *const *label_values, double v);
void metrics_observe(struct metric_family *f, const char *const *label_values, double v);
/* Creates the series at 0 so it shows before the first event. */
void metrics_touch(struct metric_family *f, const char *const *label_values);

/*
 * A series remembered by the caller, so that a hot path hashes its label
 * values once instead of on every event: zero-initialise it, keep it for
 * one family and one set of label values, and pass the values along
 * (used only when the series must be found again, e.g. after
 * metrics_reset). Read and written under the family's lock only.
 */
struct metrics_ref {
	void *series;
	unsigned long gen;
};

/* metrics_add / metrics_observe through ref. */
void metrics_add_ref(struct metric_family *f, struct metrics_ref *ref,
		     const char *const *label_values, double v);
void metrics_observe_ref(struct metric_family *f, struct metrics_ref *ref,
			 const char *const *label_values, double v);

/*
 * Current value of a series: the counter or gauge value, or a histogram's
 * sample count. 0 when the series does not exist.
 */
double metrics_get(struct metric_family *f, const char *const *label_values);

/*
 * Replaces a histogram's buckets; every existing series keeps existing but
 * its observations are cleared. For configuration applied after startup.
 */
void metrics_histogram_set_buckets(struct metric_family *f, const double *buckets,
				   size_t n_buckets);

/*
 * Registers fn(data) to run at the start of every metrics_render, before any
 * family is read: the place to refresh gauges computed on demand.
 */
void metrics_register_collector(void (*fn)(void *data), void *data);

/*
 * Registers client_golang's process_* families (cpu seconds, open and max
 * fds, virtual and resident memory, start time), refreshed from /proc at
 * every render. Idempotent.
 */
void metrics_register_process_collector(void);

/* Renders every family, sorted by name, into out. Returns 0, or -1 when out's
 * cap was reached. */
int metrics_render(struct strbuf *out);

/* Formats v like Go's strconv.FormatFloat(v, 'g', -1, 64) (with Prometheus's
 * "+Inf"/"-Inf"/"NaN"). out needs at least 32 bytes. */
void metrics_format_float(double v, char *out, size_t n);

/* Tests only: removes every series of every family (label-less families go
 * back to a single series at 0). Families and collectors stay registered. */
void metrics_reset(void);

/* Upstream's default grpc_latency_buckets. */
extern const double metrics_default_latency_buckets[];
extern const size_t metrics_default_latency_buckets_len;

#endif
