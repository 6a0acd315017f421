/*
 * AIMD limits and the calibration thread. The thread sleeps on a condition
 * variable so that adaptive_calc_free stops it at once. Watchers run one
 * after the other on that thread; the last pressure event of a round
 * decides a backoff, and the limits move once per round however many
 * watchers complained (resources are correlated, as upstream notes).
 */
#include "limit/adaptive.h"

#include <math.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "base/log.h"
#include "base/metrics.h"

struct adaptive_limit {
	pthread_mutex_t lock;
	char *name;
	int current, initial, min, max;
	double backoff;
	struct {
		adaptive_hook_fn fn;
		void *arg;
	} hooks[ADAPTIVE_MAX_HOOKS];
	size_t n_hooks;
};

struct adaptive_calc {
	struct adaptive_limit **limits;
	size_t n_limits;
	struct adaptive_watcher **watchers;
	int *timeouts; /* consecutive timeouts per watcher */
	size_t n_watchers;
	int64_t period_ms;

	pthread_mutex_t lock;
	pthread_cond_t wake;
	pthread_t thread;
	int started, stopping;

	struct metric_family *current_limit, *watcher_errors, *backoff_events;
};

struct adaptive_limit *adaptive_limit_new(const char *name, int initial, int min, int max,
					  double backoff_factor)
{
	struct adaptive_limit *l = calloc(1, sizeof(*l));

	if (!l)
		return NULL;
	l->name = strdup(name ? name : "");
	if (!l->name) {
		free(l);
		return NULL;
	}
	pthread_mutex_init(&l->lock, NULL);
	l->current = l->initial = initial;
	l->min = min;
	l->max = max;
	l->backoff = backoff_factor;
	return l;
}

void adaptive_limit_free(struct adaptive_limit *l)
{
	if (!l)
		return;
	pthread_mutex_destroy(&l->lock);
	free(l->name);
	free(l);
}

const char *adaptive_limit_name(const struct adaptive_limit *l)
{
	return l->name;
}

int adaptive_limit_current(struct adaptive_limit *l)
{
	int v;
	pthread_mutex_lock(&l->lock);
	v = l->current;
	pthread_mutex_unlock(&l->lock);
	return v;
}

int adaptive_limit_initial(const struct adaptive_limit *l)
{
	return l->initial;
}

void adaptive_limit_update(struct adaptive_limit *l, int value)
{
	pthread_mutex_lock(&l->lock);
	if (value != l->current) {
		l->current = value;
		for (size_t i = 0; i < l->n_hooks; i++)
			l->hooks[i].fn(l->hooks[i].arg, value);
	}
	pthread_mutex_unlock(&l->lock);
}

int adaptive_limit_on_update(struct adaptive_limit *l, adaptive_hook_fn fn, void *arg)
{
	int ret = -1;
	pthread_mutex_lock(&l->lock);
	if (l->n_hooks < ADAPTIVE_MAX_HOOKS) {
		l->hooks[l->n_hooks].fn = fn;
		l->hooks[l->n_hooks].arg = arg;
		l->n_hooks++;
		ret = 0;
	}
	pthread_mutex_unlock(&l->lock);
	return ret;
}

static const char *const limit_label[] = { "limit" };
static const char *const watcher_label[] = { "watcher" };

struct adaptive_calc *adaptive_calc_new(struct adaptive_limit *const *limits, size_t n_limits,
					struct adaptive_watcher *const *watchers, size_t n_watchers,
					int64_t period_ms)
{
	struct adaptive_calc *c = calloc(1, sizeof(*c));

	if (!c)
		return NULL;
	c->limits = calloc(n_limits ? n_limits : 1, sizeof(*c->limits));
	c->watchers = calloc(n_watchers ? n_watchers : 1, sizeof(*c->watchers));
	c->timeouts = calloc(n_watchers ? n_watchers : 1, sizeof(*c->timeouts));
	if (!c->limits || !c->watchers || !c->timeouts) {
		free(c->limits);
		free(c->watchers);
		free(c->timeouts);
		free(c);
		return NULL;
	}
	memcpy(c->limits, limits, n_limits * sizeof(*limits));
	memcpy(c->watchers, watchers, n_watchers * sizeof(*watchers));
	c->n_limits = n_limits;
	c->n_watchers = n_watchers;
	c->period_ms = period_ms > 0 ? period_ms : ADAPTIVE_CALIBRATE_MS;
	pthread_mutex_init(&c->lock, NULL);
	{
		pthread_condattr_t attr;
		pthread_condattr_init(&attr);
		pthread_condattr_setclock(&attr, CLOCK_MONOTONIC);
		pthread_cond_init(&c->wake, &attr);
		pthread_condattr_destroy(&attr);
	}
	c->current_limit = metrics_gauge("gitaly_concurrency_limiting_current_limit",
					 "The current limit value of an adaptive concurrency limit",
					 limit_label, 1);
	c->watcher_errors = metrics_counter("gitaly_concurrency_limiting_watcher_errors_total",
					    "Counter of the total number of watcher errors",
					    watcher_label, 1);
	c->backoff_events = metrics_counter("gitaly_concurrency_limiting_backoff_events_total",
					    "Counter of the total number of backoff events",
					    watcher_label, 1);
	return c;
}

static void set_limit(struct adaptive_calc *c, struct adaptive_limit *l, int value)
{
	const char *lv[1] = { l->name };
	adaptive_limit_update(l, value);
	metrics_set(c->current_limit, lv, value);
}

/*
 * Polls every watcher. Returns the index of the watcher whose pressure
 * event decides this round (the last one), or -1; *ev receives that event.
 */
static int poll_watchers(struct adaptive_calc *c, struct adaptive_event *ev)
{
	int decided = -1;

	memset(ev, 0, sizeof(*ev));
	for (size_t i = 0; i < c->n_watchers; i++) {
		struct adaptive_watcher *w = c->watchers[i];
		struct adaptive_event e;
		struct error err = ERROR_INIT;
		const char *lv[1] = { w->name };
		int rc;

		memset(&e, 0, sizeof(e));
		rc = w->poll(w, &e, &err);
		if (rc < 0) {
			if (rc == ADAPTIVE_POLL_TIMEOUT &&
			    ++c->timeouts[i] >= ADAPTIVE_MAX_WATCHER_TIMEOUTS) {
				json_decref(ev->stats);
				memset(ev, 0, sizeof(*ev));
				ev->backoff = 1;
				snprintf(ev->reason, sizeof(ev->reason),
					 "%d consecutive polling timeout errors", c->timeouts[i]);
				c->timeouts[i] = 0;
				decided = (int)i;
				metrics_add(c->backoff_events, lv, 1);
			}
			metrics_add(c->watcher_errors, lv, 1);
			{
				json_t *f = json_object();
				json_object_set_new(f, "watcher", json_string(w->name));
				json_object_set_new(f, "error",
						    json_string(err.message ? err.message : "unknown"));
				log_fields(LOG_ERROR, f, "poll from resource watcher failed");
			}
			json_decref(e.stats);
			error_release(&err);
			continue;
		}
		c->timeouts[i] = 0;
		if (e.backoff) {
			json_decref(ev->stats);
			*ev = e;
			decided = (int)i;
			metrics_add(c->backoff_events, lv, 1);
		} else {
			json_decref(e.stats);
		}
	}
	return decided;
}

void adaptive_calc_step(struct adaptive_calc *c)
{
	struct adaptive_event ev;
	int who = poll_watchers(c, &ev);

	for (size_t i = 0; i < c->n_limits; i++) {
		struct adaptive_limit *l = c->limits[i];
		int prev = adaptive_limit_current(l), next;

		if (who < 0) {
			next = prev + 1;
			if (next > l->max)
				next = l->max;
		} else {
			next = (int)floor((double)prev * l->backoff);
			if (next < l->min)
				next = l->min;
			json_t *f = json_object();
			json_object_set_new(f, "limit", json_string(l->name));
			json_object_set_new(f, "previous_limit", json_integer(prev));
			json_object_set_new(f, "new_limit", json_integer(next));
			json_object_set_new(f, "watcher", json_string(c->watchers[who]->name));
			json_object_set_new(f, "reason", json_string(ev.reason));
			if (ev.stats) {
				const char *k;
				json_t *v;
				json_object_foreach(ev.stats, k, v) {
					char key[96];
					snprintf(key, sizeof(key), "stats.%s", k);
					json_object_set(f, key, v);
				}
			}
			log_fields(LOG_INFO, f, "Multiplicative decrease");
		}
		set_limit(c, l, next);
	}
	json_decref(ev.stats);
}

static void *calc_main(void *arg)
{
	struct adaptive_calc *c = arg;

	pthread_mutex_lock(&c->lock);
	while (!c->stopping) {
		struct timespec ts;
		clock_gettime(CLOCK_MONOTONIC, &ts);
		ts.tv_sec += c->period_ms / 1000;
		ts.tv_nsec += (c->period_ms % 1000) * 1000000;
		if (ts.tv_nsec >= 1000000000) {
			ts.tv_sec++;
			ts.tv_nsec -= 1000000000;
		}
		while (!c->stopping && pthread_cond_timedwait(&c->wake, &c->lock, &ts) == 0)
			;
		if (c->stopping)
			break;
		pthread_mutex_unlock(&c->lock);
		adaptive_calc_step(c);
		pthread_mutex_lock(&c->lock);
	}
	pthread_mutex_unlock(&c->lock);
	return NULL;
}

int adaptive_calc_start(struct adaptive_calc *c, struct error *err)
{
	int ret = -1;

	pthread_mutex_lock(&c->lock);
	if (c->started) {
		error_set(err, STATUS_INTERNAL, "adaptive calculator: already started");
		goto out;
	}
	for (size_t i = 0; i < c->n_limits; i++)
		set_limit(c, c->limits[i], c->limits[i]->initial);
	if (pthread_create(&c->thread, NULL, calc_main, c) != 0) {
		error_set(err, STATUS_INTERNAL, "adaptive calculator: cannot start its thread");
		goto out;
	}
	c->started = 1;
	ret = 0;
out:
	pthread_mutex_unlock(&c->lock);
	return ret;
}

void adaptive_calc_free(struct adaptive_calc *c)
{
	if (!c)
		return;
	pthread_mutex_lock(&c->lock);
	c->stopping = 1;
	pthread_cond_broadcast(&c->wake);
	pthread_mutex_unlock(&c->lock);
	if (c->started)
		pthread_join(c->thread, NULL);
	for (size_t i = 0; i < c->n_watchers; i++)
		if (c->watchers[i]->free)
			c->watchers[i]->free(c->watchers[i]);
	pthread_cond_destroy(&c->wake);
	pthread_mutex_destroy(&c->lock);
	free(c->limits);
	free(c->watchers);
	free(c->timeouts);
	free(c);
}
