/*
 * A small Prometheus registry: counters, gauges and histograms with label
 * values, rendered in the text exposition format (version 0.0.4). Families
 * are created once at startup; updates are thread-safe and cheap (a family
 * lock plus a hash lookup of the label values).
 */
#ifndef BASE_METRICS_H
#define BASE_METRICS_H

#include <stddef.h>

#include "base/strbuf.h"

struct metric_family;

/* Creates (or returns the existing) family in the global registry. */
struct metric_family *metrics_counter(const char *name, const char *help,
				      const char *const *label_names, size_t n_labels);
struct metric_family *metrics_gauge(const char *name, const char *help,
				    const char *const *label_names, size_t n_labels);
struct metric_family *metrics_histogram(const char *name, const char *help,
					const char *const *label_names, size_t n_labels,
					const double *buckets, size_t n_buckets);

/* label_values has exactly n_labels entries (NULL when n_labels is 0). */
void metrics_add(struct metric_family *f, const char *const *label_values, double v);
void metrics_set(struct metric_family *f, const char *const *label_values, double v);
void metrics_observe(struct metric_family *f, const char *const *label_values, double v);
/* Creates the series at 0 so it shows before the first event. */
void metrics_touch(struct metric_family *f, const char *const *label_values);

/* Renders every family, sorted by name, into out. */
int metrics_render(struct strbuf *out);

/* Upstream's default grpc_latency_buckets. */
extern const double metrics_default_latency_buckets[];
extern const size_t metrics_default_latency_buckets_len;

#endif
