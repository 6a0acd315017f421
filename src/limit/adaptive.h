/*
 * Adaptive concurrency limits (upstream's AdaptiveLimit and
 * AdaptiveCalculator): a limit moves between min and max by AIMD. Every
 * calibration period (30 s) the calculator polls its resource watchers; if
 * none reported pressure, every limit grows by one (up to its max), else
 * every limit is multiplied by its backoff factor (0.5, floored, down to
 * its min). A watcher that times out 5 times in a row counts as pressure.
 * Limits notify their owners (the concurrency limiters) through update
 * hooks. Metrics: gitaly_concurrency_limiting_current_limit{limit},
 * gitaly_concurrency_limiting_watcher_errors_total{watcher},
 * gitaly_concurrency_limiting_backoff_events_total{watcher}.
 */
#ifndef LIMIT_ADAPTIVE_H
#define LIMIT_ADAPTIVE_H

#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

#include "base/error.h"

#define ADAPTIVE_BACKOFF_FACTOR 0.5
#define ADAPTIVE_MAX_WATCHER_TIMEOUTS 5
#define ADAPTIVE_CALIBRATE_MS 30000
#define ADAPTIVE_MAX_HOOKS 4

struct adaptive_limit;

/* Called with the new value after the limit changed (limit lock held: the
 * hook must not call back into the limit). */
typedef void (*adaptive_hook_fn)(void *arg, int new_limit);

/*
 * Creates a limit named name (copied; upstream names them "perRPC<rpc>",
 * "packObjects", "staticLimit") starting at initial. A static limit is one
 * with min = max = initial that no calculator manages. NULL when out of
 * memory.
 */
struct adaptive_limit *adaptive_limit_new(const char *name, int initial, int min, int max,
					  double backoff_factor);
void adaptive_limit_free(struct adaptive_limit *l);

const char *adaptive_limit_name(const struct adaptive_limit *l);
int adaptive_limit_current(struct adaptive_limit *l);
int adaptive_limit_initial(const struct adaptive_limit *l);

/* Sets the value; when it changed, runs every hook with it. */
void adaptive_limit_update(struct adaptive_limit *l, int value);

/* Registers a hook (at most ADAPTIVE_MAX_HOOKS). Returns 0 or -1. */
int adaptive_limit_on_update(struct adaptive_limit *l, adaptive_hook_fn fn, void *arg);

/* What a watcher saw at one poll. */
struct adaptive_event {
	int backoff;       /* 1: the resource is under pressure */
	char reason[128];  /* why, when backoff */
	json_t *stats;     /* optional figures for the log (owned; freed by the caller) */
};

/* Poll results besides 0 (event filled). */
#define ADAPTIVE_POLL_ERROR (-1)
#define ADAPTIVE_POLL_TIMEOUT (-2)

/* A resource watcher: a name for metrics and logs, and a poll function. */
struct adaptive_watcher {
	const char *name;
	/* Returns 0 with ev filled, or ADAPTIVE_POLL_ERROR / _TIMEOUT with err set. */
	int (*poll)(struct adaptive_watcher *w, struct adaptive_event *ev, struct error *err);
	void (*free)(struct adaptive_watcher *w); /* may be NULL */
	void *state;
};

struct adaptive_calc;

/*
 * Creates a calculator over limits and watchers (both arrays copied; the
 * limits stay owned by the caller, the watchers pass to the calculator and
 * are freed with it). period_ms <= 0 means ADAPTIVE_CALIBRATE_MS. NULL when
 * out of memory.
 */
struct adaptive_calc *adaptive_calc_new(struct adaptive_limit *const *limits, size_t n_limits,
					struct adaptive_watcher *const *watchers, size_t n_watchers,
					int64_t period_ms);

/*
 * Resets every limit to its initial value and starts the calibration
 * thread. Returns 0, or -1 with err set (already started, thread failure).
 */
int adaptive_calc_start(struct adaptive_calc *c, struct error *err);

/* One calibration right now: poll every watcher, then move every limit.
 * The thread does this once per period; tests call it directly. */
void adaptive_calc_step(struct adaptive_calc *c);

/* Stops the thread (if started) and frees the calculator and its watchers. */
void adaptive_calc_free(struct adaptive_calc *c);

#endif
